import type { IncomingMessage, ServerResponse } from 'node:http';
import { actorOf } from '../../auth/identity.js';
import type { Auth } from '../../auth/setup.js';
import { RegistryError } from '../../errors/index.js';
import { accessRequestOf } from '../access-gate.js';
import { readJsonBody } from '../body.js';
import { send, sendJson } from '../exchange.js';

export const ADMIN_PREFIX = '/admin/v1/';

/**
 * The admin API behind `wharf user|robot|policy`: JSON in and out, for registry-wide
 * administrators only (admin on `**`), with Basic credentials or a token from the built-in issuer
 * that carries the `registry:admin:*` scope.
 */
export async function adminEndpoint(auth: Auth, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const request = accessRequestOf(req);
  const identity = await auth.access.identify(request);
  auth.access.authorizeAdmin(identity, request);
  const actor = actorOf(identity)!;
  const exchange = { req, res };
  const parts = path.slice(ADMIN_PREFIX.length).split('/').map(decodeSegment);
  const { admin } = auth;
  switch (`${req.method ?? 'GET'} ${shapeOf(parts)}`) {
    case 'GET users':
      return sendJson(exchange, 200, { users: await admin.listUsers() });
    case 'POST users':
      return sendJson(exchange, 201, await admin.addUser(await readJsonBody(req), actor));
    case 'DELETE users/:':
      await admin.removeUser(parts[1]!, actor);
      return send(exchange, 204, {});
    case 'PUT users/:/password':
      await admin.changePassword(parts[1]!, await readJsonBody(req), actor);
      return send(exchange, 204, {});
    case 'PUT users/:/groups':
      await admin.setGroups(parts[1]!, await readJsonBody(req), actor);
      return send(exchange, 204, {});
    case 'GET robots':
      return sendJson(exchange, 200, { robots: await admin.listRobots() });
    case 'POST robots':
      return sendJson(exchange, 201, await admin.createRobot(await readJsonBody(req), actor));
    case 'DELETE robots/:':
      await admin.revokeRobot(parts[1]!, actor);
      return send(exchange, 204, {});
    case 'GET policy':
      return sendJson(exchange, 200, await admin.listPolicy());
    case 'POST policy/rules':
      return sendJson(exchange, 201, await admin.addRule(await readJsonBody(req), actor));
    case 'DELETE policy/rules/:':
      await admin.removeRule(Number(parts[2]), actor);
      return send(exchange, 204, {});
    default:
      throw new RegistryError('NOT_FOUND');
  }
}

/** The path with its variable segment (a user, robot or rule id) written as `:`. */
function shapeOf(parts: string[]): string {
  const [collection, second, third] = parts;
  if (parts.length > 3) return '';
  if (collection === 'policy') return ['policy', second, third === undefined ? undefined : ':'].filter((p) => p !== undefined).join('/');
  return [collection, second === undefined ? undefined : ':', third].filter((p) => p !== undefined).join('/');
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new RegistryError('NOT_FOUND');
  }
}
