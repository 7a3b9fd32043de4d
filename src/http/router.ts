/**
 * Maps a raw request path onto an OCI endpoint. Matching runs on the undecoded path so that
 * `%2f`, `%2e%2e` and friends inside a repository name can never turn into path separators:
 * the name is handed on exactly as sent and the grammar check refuses it.
 */
export type RegistryRoute =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'referrers'; name: string; digest: string }
  /** Wharf's extension: a tag's recorded moves (`GET`) and putting it back (`POST .../restore`). */
  | { kind: 'tag.history'; name: string; tag: string }
  | { kind: 'tag.restore'; name: string; tag: string }
  /** Wharf's extension: a repository's description, README and stars (`GET`), its README (`PUT`, `DELETE`), the caller's star (`PUT`, `DELETE`). */
  | { kind: 'repository.profile'; name: string }
  | { kind: 'repository.readme'; name: string }
  | { kind: 'repository.star'; name: string };

/** Docker Hub's v1 search API and ping, which `docker search` and `podman search` use. */
export type SearchRoute = { kind: 'search' } | { kind: 'ping.v1' };

/** The admin API (`/admin/v1/...`): `subject` is the user or robot name, or the rule id. */
export type AdminRoute =
  | { kind: 'admin.users' }
  | { kind: 'admin.user'; subject: string }
  | { kind: 'admin.user.password'; subject: string }
  | { kind: 'admin.user.groups'; subject: string }
  | { kind: 'admin.robots' }
  | { kind: 'admin.robot'; subject: string }
  | { kind: 'admin.policy' }
  | { kind: 'admin.policy.rules' }
  | { kind: 'admin.policy.rule'; subject: string }
  | { kind: 'admin.immutable' }
  | { kind: 'admin.immutable.rule'; subject: string }
  | { kind: 'admin.jobs' }
  | { kind: 'admin.quotas' }
  /** `subject` is the quota's name, percent-encoded in the path when it holds `/` (`team%2F`). */
  | { kind: 'admin.quota'; subject: string }
  | { kind: 'admin.usage' }
  | { kind: 'admin.retention' }
  | { kind: 'admin.retention.policy'; subject: string }
  | { kind: 'admin.retention.run' }
  | { kind: 'admin.history' }
  | { kind: 'admin.history.restore' }
  | { kind: 'admin.events' }
  | { kind: 'admin.events.endpoint'; subject: string }
  | { kind: 'admin.events.replay'; subject: string };

/** Probes for load balancers and Kubernetes: `healthz` (the process answers), `readyz` (it can serve). */
export type HealthRoute = { kind: 'healthz' } | { kind: 'readyz' };

/** Every endpoint the server answers: the registry API, the built-in token issuer, the admin API, the probes. */
export type Route = RegistryRoute | AdminRoute | HealthRoute | SearchRoute | { kind: 'token' };

export const ADMIN_PREFIX = '/admin/v1/';

// Greedy names: a repository may itself contain "blobs" or "manifests" as a component.
const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const UPLOADS = /^\/v2\/(.+)\/blobs\/uploads\/?$/;
const UPLOAD = /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/;
const BLOB = /^\/v2\/(.+)\/blobs\/([^/]+)$/;
const TAGS = /^\/v2\/(.+)\/tags\/list$/;
const REFERRERS = /^\/v2\/(.+)\/referrers\/([^/]+)$/;
// `_wharf` cannot be a name component (components start with a letter or digit), so these never
// collide with a repository's own paths.
const TAG_HISTORY = /^\/v2\/(.+)\/_wharf\/tags\/([^/]+)\/(history|restore)$/;
const REPOSITORY_EXTRAS = /^\/v2\/(.+)\/_wharf\/(repository|readme|star)$/;

/** Decodes one path segment that is not a name (a tag, digest or id); `%3A` is common in digests. */
function segment(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/**
 * The endpoint a path names. `tokenPath` is where the built-in token issuer answers, when it is
 * on; the admin API exists only with `admin` (access control configured).
 */
export function matchRoute(path: string, options: { tokenPath?: string; admin?: boolean } = {}): Route | undefined {
  if (options.tokenPath !== undefined && path === options.tokenPath) return { kind: 'token' };
  if (options.admin && path.startsWith(ADMIN_PREFIX)) return matchAdminRoute(path.slice(ADMIN_PREFIX.length));
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  if (path === '/healthz') return { kind: 'healthz' };
  if (path === '/readyz') return { kind: 'readyz' };
  if (path === '/v1/search') return { kind: 'search' };
  if (path === '/v1/_ping') return { kind: 'ping.v1' };
  if (!path.startsWith('/v2/')) return undefined;
  if (path === '/v2/_catalog') return { kind: 'catalog' };
  let m: RegExpExecArray | null;
  if ((m = TAG_HISTORY.exec(path))) return { kind: m[3] === 'history' ? 'tag.history' : 'tag.restore', name: m[1]!, tag: segment(m[2]!) };
  if ((m = REPOSITORY_EXTRAS.exec(path))) return { kind: `repository.${m[2] === 'repository' ? 'profile' : (m[2] as 'readme' | 'star')}`, name: m[1]! };
  if ((m = MANIFEST.exec(path))) return { kind: 'manifest', name: m[1]!, reference: segment(m[2]!) };
  if ((m = UPLOADS.exec(path))) return { kind: 'uploads', name: m[1]! };
  if ((m = UPLOAD.exec(path))) return { kind: 'upload', name: m[1]!, id: segment(m[2]!) };
  if ((m = BLOB.exec(path))) return { kind: 'blob', name: m[1]!, digest: segment(m[2]!) };
  if ((m = TAGS.exec(path))) return { kind: 'tags', name: m[1]! };
  if ((m = REFERRERS.exec(path))) return { kind: 'referrers', name: m[1]!, digest: segment(m[2]!) };
  return undefined;
}

function matchAdminRoute(rest: string): AdminRoute | undefined {
  const parts = rest.split('/');
  if (parts.length > 3) return undefined;
  const decoded: string[] = [];
  for (const part of parts) {
    try {
      decoded.push(decodeURIComponent(part));
    } catch {
      return undefined;
    }
  }
  const [collection, second, third] = decoded;
  switch (collection) {
    case 'users':
      if (second === undefined) return { kind: 'admin.users' };
      if (third === undefined) return { kind: 'admin.user', subject: second };
      if (third === 'password') return { kind: 'admin.user.password', subject: second };
      if (third === 'groups') return { kind: 'admin.user.groups', subject: second };
      return undefined;
    case 'robots':
      if (second === undefined) return { kind: 'admin.robots' };
      return third === undefined ? { kind: 'admin.robot', subject: second } : undefined;
    case 'policy':
      if (second === undefined) return { kind: 'admin.policy' };
      if (second === 'immutable') return third === undefined ? { kind: 'admin.immutable' } : { kind: 'admin.immutable.rule', subject: third };
      if (second === 'retention') {
        if (third === undefined) return { kind: 'admin.retention' };
        return third === 'run' ? { kind: 'admin.retention.run' } : { kind: 'admin.retention.policy', subject: third };
      }
      if (second !== 'rules') return undefined;
      return third === undefined ? { kind: 'admin.policy.rules' } : { kind: 'admin.policy.rule', subject: third };
    case 'jobs':
      return second === undefined ? { kind: 'admin.jobs' } : undefined;
    case 'quotas':
      if (second === undefined) return { kind: 'admin.quotas' };
      return third === undefined ? { kind: 'admin.quota', subject: second } : undefined;
    case 'usage':
      return second === undefined ? { kind: 'admin.usage' } : undefined;
    case 'history':
      if (second === undefined) return { kind: 'admin.history' };
      return second === 'restore' && third === undefined ? { kind: 'admin.history.restore' } : undefined;
    case 'events':
      if (second === undefined) return { kind: 'admin.events' };
      if (third === undefined) return { kind: 'admin.events.endpoint', subject: second };
      return third === 'replay' ? { kind: 'admin.events.replay', subject: second } : undefined;
    default:
      return undefined;
  }
}
