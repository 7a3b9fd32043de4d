import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Action } from '../auth/access.js';
import type { AccessRequest, AccessTarget } from '../auth/access-control.js';
import { actorOf, type Identity } from '../auth/identity.js';
import type { Auth } from '../auth/setup.js';
import { RegistryError } from '../errors/index.js';
import { isValidRepositoryName } from '../oci/names.js';
import type { RequestContext } from '../registry/context.js';
import type { RegistryRoute, Route } from './router.js';

/** The action each endpoint needs on its repository. DELETE needs `delete`, never just `push`. */
const REQUIRED: Record<Exclude<RegistryRoute['kind'], 'base' | 'catalog'>, Partial<Record<string, Action>>> = {
  tags: { GET: 'pull', HEAD: 'pull' },
  manifest: { GET: 'pull', HEAD: 'pull', PUT: 'push', DELETE: 'delete' },
  blob: { GET: 'pull', HEAD: 'pull', DELETE: 'delete' },
  uploads: { POST: 'push' },
  upload: { GET: 'push', PATCH: 'push', PUT: 'push', DELETE: 'push' },
  referrers: { GET: 'pull', HEAD: 'pull' },
  // Reading a tag's history is reading the repository; a restore moves a tag as a push does.
  'tag.history': { GET: 'pull' },
  'tag.restore': { POST: 'push' },
  // The README is the owner's to write: push rights. A star is a reader's opinion: pull rights.
  'repository.profile': { GET: 'pull', HEAD: 'pull' },
  'repository.readme': { PUT: 'push', DELETE: 'push' },
  'repository.star': { PUT: 'pull', DELETE: 'pull' },
};

export function accessRequestOf(req: IncomingMessage): AccessRequest {
  return {
    authorization: req.headers.authorization,
    remote: req.socket?.remoteAddress,
    host: req.headers.host,
    secure: (req.socket as TLSSocket | undefined)?.encrypted === true,
  };
}

/**
 * Refuses names outside the grammar (`..`, `%2e%2e`, `%2f`, `//`, `/./` included) before any
 * authorization decision, so a path trick can never be judged against a pattern.
 */
export function checkRouteName(route: Route): void {
  if ('name' in route && !isValidRepositoryName(route.name)) throw new RegistryError('NAME_INVALID', { detail: { name: route.name } });
}

/**
 * Decides whether the request may reach its handler, for every route the server has: the registry
 * API by repository and action, the admin API for administrators only, the token endpoint for
 * anyone (its handlers check credentials), the health probes for anyone. Without access control, everything but the admin API
 * and the token endpoint is open, and those two do not exist. Returns what the services need to
 * know about the caller; throws UNAUTHORIZED, DENIED, TOOMANYREQUESTS or NOT_FOUND.
 */
export function guard(auth: Auth | undefined, req: IncomingMessage, route: Route): RequestContext | Promise<RequestContext> {
  // Without access control the answer needs no lookup: given at once, it spares every request
  // of an open registry a turn of the event loop.
  return auth === undefined ? openAccess(route) : guardWith(auth, req, route);
}

/** guard's answer without access control: everything is open but the token endpoint and the admin API, which do not exist. */
function openAccess(route: Route): RequestContext {
  if (route.kind === 'token' || route.kind.startsWith('admin.')) throw new RegistryError('NOT_FOUND');
  return {};
}

async function guardWith(auth: Auth, req: IncomingMessage, route: Route): Promise<RequestContext> {
  if (route.kind === 'token') {
    if (!auth.tokens) throw new RegistryError('NOT_FOUND');
    return {};
  }
  // Probes answer anyone: they say whether the process can serve, nothing about its content.
  if (route.kind === 'healthz' || route.kind === 'readyz' || route.kind === 'ping.v1') return {};
  // Search answers anyone (podman asks without credentials); it shows only what the caller may pull.
  if (route.kind === 'search') {
    const identity = await auth.access.identify(accessRequestOf(req));
    return contextFor(auth, identity);
  }
  if (route.kind.startsWith('admin.')) {
    const request = accessRequestOf(req);
    const identity = await auth.access.identify(request);
    auth.access.authorizeAdmin(identity, request);
    return contextFor(auth, identity);
  }
  const request = accessRequestOf(req);
  const identity = await auth.access.identify(request);
  auth.access.authorize(identity, targetOf(route as RegistryRoute, req.method ?? 'GET'), request);
  return contextFor(auth, identity);
}

function targetOf(route: RegistryRoute, method: string): AccessTarget {
  if (route.kind === 'base') return { kind: 'base' };
  if (route.kind === 'catalog') return { kind: 'catalog' };
  const action = REQUIRED[route.kind][method];
  // Methods outside the table were answered 405 before this; refuse rather than guess.
  if (action === undefined) throw new RegistryError('DENIED');
  return { kind: 'repository', name: route.name, action };
}

export function contextFor(auth: Auth, identity: Identity): RequestContext {
  const context: RequestContext = {
    canRead: (repository) => auth.access.canPull(identity, repository),
  };
  const actor = actorOf(identity);
  if (actor) context.actor = actor;
  const canList = auth.access.catalogFilter(identity);
  if (canList) context.canList = canList;
  return context;
}
