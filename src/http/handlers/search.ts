import { RegistryError } from '../../errors/index.js';
import { MAX_README_BYTES } from '../../registry/search-service.js';
import { readSmallBody } from '../body.js';
import { send, sendJson, type Handler } from '../exchange.js';

type RepositoryRoute = { kind: 'repository.profile' | 'repository.readme' | 'repository.star'; name: string };

/** A positive integer query parameter, or `fallback` when absent; PARAMETER_INVALID otherwise. */
function positive(query: URLSearchParams, key: string, fallback: number, max: number): number {
  const raw = query.get(key);
  if (raw === null || raw === '') return fallback;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1) throw new RegistryError('PARAMETER_INVALID', { message: `${key} must be a positive integer`, detail: { [key]: raw } });
  return Math.min(Number(raw), max);
}

/**
 * `GET /v1/search?q=TERM&n=N&page=P[&signed=true]`: Docker Hub's search, as `docker search` and
 * `podman search` read it, over what the caller may pull; `signed=true` keeps repositories with a
 * signed tagged image.
 */
export const search: Handler = async (ex) => {
  const query = ex.query.get('q') ?? '';
  const pageSize = positive(ex.query, 'n', 25, 100);
  const page = positive(ex.query, 'page', 1, 1_000_000);
  const signed = ex.query.get('signed');
  if (signed !== null && signed !== 'true' && signed !== 'false') throw new RegistryError('PARAMETER_INVALID', { message: 'signed must be true or false', detail: { signed } });
  const result = await ex.registry.search.search({
    query,
    page,
    pageSize,
    ...(signed === 'true' ? { signed: true } : {}),
    ...(ex.context.canList ? { visible: ex.context.canList } : {}),
  });
  sendJson(ex, 200, result);
};

/** `GET /v1/_ping`: what v1 clients ask before searching; registries answer `true`. */
export const pingV1: Handler = async (ex) => {
  send(ex, 200, { 'Content-Type': 'application/json', 'X-Docker-Registry-Version': '0.6.0', 'X-Docker-Registry-Standalone': 'true' }, 'true');
};

/** `GET /v2/<name>/_wharf/repository`: description, README, stars (and whether the caller starred it). */
export const getRepositoryProfile: Handler<RepositoryRoute> = async (ex) => {
  const { name } = ex.route;
  const profile = await ex.registry.search.profile(name);
  const starred = ex.context.actor !== undefined && (await ex.registry.search.starredBy(ex.context.actor, [name])).has(name);
  sendJson(ex, 200, {
    name,
    description: profile.description ?? '',
    readme: profile.readme ?? null,
    readmeUpdatedAt: profile.readmeUpdatedAt !== undefined ? new Date(profile.readmeUpdatedAt).toISOString() : null,
    readmeUpdatedBy: profile.readmeUpdatedBy ?? null,
    star_count: profile.stars,
    starred,
    is_official: ex.registry.search.isOfficial(name),
    tags: profile.tagCount,
    bytes: profile.bytes,
    lastPushed: profile.lastPushedAt !== undefined ? new Date(profile.lastPushedAt).toISOString() : null,
  });
};

/** `PUT /v2/<name>/_wharf/readme` with the markdown as the body; `DELETE` removes it (push rights). */
export const putReadme: Handler<RepositoryRoute> = async (ex) => {
  const text = ex.req.method === 'DELETE' ? '' : await readSmallBody(ex.req, MAX_README_BYTES);
  await ex.registry.search.setReadme(ex.route.name, text, ex.context);
  send(ex, 204, {});
};

/** `PUT /v2/<name>/_wharf/star` stars for the signed-in caller, `DELETE` unstars (pull rights). */
export const putStar: Handler<RepositoryRoute> = async (ex) => {
  if (ex.context.actor === undefined && ex.auth) {
    throw ex.auth.access.unauthorized({ authorization: undefined, remote: ex.req.socket.remoteAddress, host: ex.req.headers.host, secure: false }, undefined, 'sign in to star repositories');
  }
  const result = await ex.registry.search.star(ex.route.name, ex.req.method === 'PUT', ex.context);
  sendJson(ex, 200, { name: ex.route.name, ...result });
};
