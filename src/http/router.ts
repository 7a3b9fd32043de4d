/**
 * Maps a raw request path onto an OCI endpoint. Matching runs on the undecoded path so that
 * `%2f`, `%2e%2e` and friends inside a repository name can never turn into path separators:
 * the name is handed on exactly as sent and the grammar check refuses it.
 */
export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'referrers'; name: string; digest: string };

// Greedy names: a repository may itself contain "blobs" or "manifests" as a component.
const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const UPLOADS = /^\/v2\/(.+)\/blobs\/uploads\/?$/;
const UPLOAD = /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/;
const BLOB = /^\/v2\/(.+)\/blobs\/([^/]+)$/;
const TAGS = /^\/v2\/(.+)\/tags\/list$/;
const REFERRERS = /^\/v2\/(.+)\/referrers\/([^/]+)$/;

/** Decodes one path segment that is not a name (a tag, digest or id); `%3A` is common in digests. */
function segment(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

export function matchRoute(path: string): Route | undefined {
  if (path === '/v2/' || path === '/v2') return { kind: 'base' };
  if (!path.startsWith('/v2/')) return undefined;
  if (path === '/v2/_catalog') return { kind: 'catalog' };
  let m: RegExpExecArray | null;
  if ((m = MANIFEST.exec(path))) return { kind: 'manifest', name: m[1]!, reference: segment(m[2]!) };
  if ((m = UPLOADS.exec(path))) return { kind: 'uploads', name: m[1]! };
  if ((m = UPLOAD.exec(path))) return { kind: 'upload', name: m[1]!, id: segment(m[2]!) };
  if ((m = BLOB.exec(path))) return { kind: 'blob', name: m[1]!, digest: segment(m[2]!) };
  if ((m = TAGS.exec(path))) return { kind: 'tags', name: m[1]! };
  if ((m = REFERRERS.exec(path))) return { kind: 'referrers', name: m[1]!, digest: segment(m[2]!) };
  return undefined;
}
