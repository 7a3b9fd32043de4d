import type { IncomingMessage } from 'node:http';
import type { Identity } from '../../auth/identity.js';
import { ANONYMOUS } from '../../auth/identity.js';
import type { Auth } from '../../auth/setup.js';
import { RegistryError, isRegistryError } from '../../errors/index.js';
import { accessRequestOf } from '../access-gate.js';
import { readSmallBody } from '../body.js';
import { sendJson, type Exchange, type Handler } from '../exchange.js';

/**
 * The built-in token server: GET with Basic credentials (or none, for anonymous access) and
 * `scope` parameters, as the Docker token spec describes, and the OAuth2 POST form with
 * `grant_type=password` or `refresh_token` that `docker login` uses to keep an identity token.
 * The route exists only when the issuer is on; the gate lets every request through, since the
 * credentials are what these handlers check.
 */
function tokensOf(ex: Exchange): { auth: Auth; tokens: NonNullable<Auth['tokens']> } {
  if (!ex.auth?.tokens) throw new RegistryError('NOT_FOUND');
  ex.res.setHeader('Cache-Control', 'no-store');
  return { auth: ex.auth, tokens: ex.auth.tokens };
}

export const issueToken: Handler = async (ex) => {
  const { auth, tokens } = tokensOf(ex);
  const identity = await basicIdentity(auth, ex.req);
  const response = await tokens.service.issue(identity, ex.query.getAll('scope'), {
    offline: ex.query.get('offline_token') === 'true',
    ...(ex.query.get('service') !== null ? { service: ex.query.get('service')! } : {}),
    request: accessRequestOf(ex.req),
  });
  sendJson(ex, 200, response);
};

export const exchangeToken: Handler = async (ex) => {
  const { auth, tokens } = tokensOf(ex);
  const request = accessRequestOf(ex.req);
  const form = new URLSearchParams(await readSmallBody(ex.req));
  const grant = form.get('grant_type');
  let identity: Identity;
  if (grant === 'password') {
    identity = await withBasicChallenge(() => auth.access.login(form.get('username') ?? '', form.get('password') ?? '', request));
  } else if (grant === 'refresh_token') {
    identity = await tokens.service.redeem(form.get('refresh_token') ?? '', request);
  } else {
    throw new RegistryError('INVALID_REQUEST', { message: 'grant_type must be password or refresh_token' });
  }
  const scopes = (form.get('scope') ?? '').split(' ').filter((s) => s !== '');
  const response = await tokens.service.issue(identity, scopes, {
    offline: grant === 'password' && form.get('access_type') === 'offline',
    ...(form.get('service') !== null ? { service: form.get('service')! } : {}),
    request,
  });
  if (grant === 'refresh_token') response.refresh_token = form.get('refresh_token')!;
  sendJson(ex, 200, response);
};

/** Basic credentials on the token endpoint; anything else there counts as anonymous. */
async function basicIdentity(auth: Auth, req: IncomingMessage): Promise<Identity> {
  const header = req.headers.authorization;
  if (header === undefined || !/^basic /i.test(header)) return ANONYMOUS;
  return withBasicChallenge(() => auth.access.identify(accessRequestOf(req)));
}

/** The token server's own challenge is Basic, whatever the registry's is. */
async function withBasicChallenge<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isRegistryError(error) && error.code === 'UNAUTHORIZED') {
      throw new RegistryError('UNAUTHORIZED', { message: error.message, headers: { 'WWW-Authenticate': 'Basic realm="wharf token service",charset="UTF-8"' } });
    }
    throw error;
  }
}
