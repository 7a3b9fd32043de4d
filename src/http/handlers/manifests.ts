import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../../errors/index.js';
import { classifyReference } from '../../registry/validation.js';
import { parseAccept } from '../accept.js';
import { contentLength, send, type Handler } from '../exchange.js';

type ManifestRoute = { kind: 'manifest'; name: string; reference: string };

export const getManifest: Handler<ManifestRoute> = async (ex) => {
  const record = await ex.registry.manifests.get(ex.route.name, classifyReference(ex.route.reference, 'read'), parseAccept(ex.req.headers.accept), ex.context);
  const etag = `"${record.digest}"`;
  // RFC 9111 warn-code 299 ("miscellaneous persistent warning"), as Kubernetes uses for deprecations.
  const warning = record.warning ? `299 - "${record.warning.replace(/["\\]/g, "'")}"` : undefined;
  if (ex.req.headers['if-none-match'] === etag) {
    const headers: Record<string, string> = { 'Docker-Content-Digest': record.digest, ETag: etag };
    if (warning !== undefined) headers.Warning = warning;
    send(ex, 304, headers);
    return;
  }
  const headers: Record<string, string | number> = { 'Content-Type': record.mediaType, 'Docker-Content-Digest': record.digest, ETag: etag, 'Content-Length': record.content.length };
  if (warning !== undefined) headers.Warning = warning;
  send(ex, 200, headers, record.content);
};

export const putManifest: Handler<ManifestRoute> = async (ex) => {
  const { name } = ex.route;
  const reference = classifyReference(ex.route.reference, 'write');
  const limit = ex.registry.manifests.maxManifestBytes;
  const content = await readLimited(ex.req, limit);
  const tagParams = ex.query.getAll('tag');
  const result = await ex.registry.manifests.put(name, reference, content, ex.req.headers['content-type'], tagParams, ex.context);
  const headers: Record<string, string> = {
    Location: `/v2/${name}/manifests/${result.digest}`,
    'Docker-Content-Digest': result.digest,
  };
  if (result.subject) headers['OCI-Subject'] = result.subject;
  // The spec's `?tag=` push: OCI-Tag names every tag set, which tells the client the parameters were honoured
  // (a client that sees none pushes each tag itself). The push is all or nothing, so that is every tag asked for.
  if (tagParams.length > 0) headers['OCI-Tag'] = [...new Set('tag' in reference ? [reference.tag, ...tagParams] : tagParams)].join(', ');
  send(ex, 201, headers);
};

export const deleteManifest: Handler<ManifestRoute> = async (ex) => {
  await ex.registry.manifests.delete(ex.route.name, classifyReference(ex.route.reference, 'read'), ex.context);
  send(ex, 202, {});
};

/**
 * Reads a request body of at most `limit` bytes. A larger one is refused with 413 as soon as
 * its Content-Length (or its running size) says so, without reading the rest; the connection
 * is then closed so the unread remainder is never parsed as a request.
 */
async function readLimited(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new RegistryError('MANIFEST_TOO_LARGE', { detail: { limit }, headers: { Connection: 'close' } });
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  // Not destroyed on the way out: the error seam answers 413 first, then drops the connection.
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}
