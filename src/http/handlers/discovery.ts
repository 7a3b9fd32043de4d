import { requireDigest } from '../../registry/validation.js';
import { RegistryError } from '../../errors/index.js';
import type { ListRequest } from '../../registry/discovery-service.js';
import { MediaType } from '../../oci/media-types.js';
import { send, sendJson, type Exchange, type Handler } from '../exchange.js';
import { WHARF_VERSION } from '../../version.js';

type TagsRoute = { kind: 'tags'; name: string };
type ReferrersRoute = { kind: 'referrers'; name: string; digest: string };

/** `n` and `last` from the query; `n` must be a plain non-negative integer. */
function listRequest(query: URLSearchParams): ListRequest {
  const request: ListRequest = {};
  const n = query.get('n');
  if (n !== null) {
    if (!/^\d{1,15}$/.test(n)) throw new RegistryError('PAGINATION_NUMBER_INVALID', { detail: { n } });
    request.limit = Number(n);
  }
  const last = query.get('last');
  if (last !== null && last !== '') request.after = last;
  const signed = query.get('signed');
  if (signed !== null) {
    if (signed !== 'true' && signed !== 'false') throw new RegistryError('PARAMETER_INVALID', { message: 'signed must be true or false', detail: { signed } });
    if (signed === 'true') request.signed = true;
  }
  return request;
}

function nextLink(path: string, limit: number, last: string, extra = ''): string {
  return `<${path}?n=${limit}&last=${encodeURIComponent(last)}${extra}>; rel="next"`;
}

export const listTags: Handler<TagsRoute> = async (ex) => {
  const { name } = ex.route;
  const request = listRequest(ex.query);
  if (request.limit !== undefined || request.signed) {
    const page = await ex.registry.discovery.tags(name, request);
    const headers: Record<string, string> = {};
    if (page.next !== undefined) headers.Link = nextLink(`/v2/${name}/tags/list`, page.items.length, page.next, request.signed ? '&signed=true' : '');
    sendJson(ex, 200, { name, tags: page.items }, headers);
    return;
  }
  await streamAllTags(ex, name, request.after);
};

/** Without `n`, every tag: written page by page so memory stays flat however many there are. */
async function streamAllTags(ex: Exchange, name: string, after: string | undefined): Promise<void> {
  const pages = ex.registry.discovery.allTags(name, after);
  const first = await pages.next(); // NAME_UNKNOWN surfaces here, before any header is sent
  ex.res.writeHead(200, { 'Content-Type': 'application/json' });
  if (ex.req.method === 'HEAD') {
    ex.res.end();
    return;
  }
  let separator = '';
  const write = async (items: string[]) => {
    if (items.length === 0) return;
    const text = separator + items.map((t) => JSON.stringify(t)).join(',');
    separator = ',';
    if (!ex.res.write(text)) await new Promise<void>((resolve) => ex.res.once('drain', resolve));
  };
  ex.res.write(`{"name":${JSON.stringify(name)},"tags":[`);
  if (!first.done) await write(first.value);
  for await (const items of pages) await write(items);
  ex.res.end(']}');
}

export const catalog: Handler = async (ex) => {
  const page = await ex.registry.discovery.catalog(listRequest(ex.query), ex.context.canList);
  const headers: Record<string, string> = {};
  if (page.next !== undefined) headers.Link = nextLink('/v2/_catalog', page.items.length, page.next);
  sendJson(ex, 200, { repositories: page.items }, headers);
};

export const listReferrers: Handler<ReferrersRoute> = async (ex) => {
  const artifactType = ex.query.get('artifactType') ?? undefined;
  const manifests = await ex.registry.discovery.referrers(ex.route.name, requireDigest(ex.route.digest), artifactType);
  const headers: Record<string, string> = { 'Content-Type': MediaType.OciIndex };
  if (artifactType !== undefined) headers['OCI-Filters-Applied'] = 'artifactType';
  send(ex, 200, headers, JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
};

/** `/v2/`: also says which Wharf answers (to a caller already let in), for `wharf version REGISTRY`. */
export const base: Handler = async (ex) => {
  ex.res.setHeader('Wharf-Version', WHARF_VERSION);
  sendJson(ex, 200, {});
};
