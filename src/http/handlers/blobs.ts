import { requireDigest } from '../../registry/validation.js';
import type { ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { ChunkSink } from '../../registry/blob-service.js';
import { RegistryError } from '../../errors/index.js';
import { send, type Handler } from '../exchange.js';

type BlobRoute = { kind: 'blob'; name: string; digest: string };

/** One byte range of `size` bytes; undefined to serve everything; null when unsatisfiable. */
export function parseRange(header: string | undefined, size: number): { offset: number; length: number } | undefined | null {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Multiple ranges or other units: serving the whole entity is allowed (RFC 9110 14.2).
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return null;
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    // A last byte before the first is an invalid range (RFC 9110 14.1.1), refused with 416 as Go's
    // net/http (so registry:2) and the conformance suite expect rather than ignored.
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size || end < start) return null;
  return { offset: start, length: end - start + 1 };
}

export const getBlob: Handler<BlobRoute> = async (ex) => {
  const { name } = ex.route;
  const digest = requireDigest(ex.route.digest);
  const size = await ex.registry.blobs.stat(name, digest, ex.context);
  const etag = `"${digest}"`;
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest,
    ETag: etag,
    'Accept-Ranges': 'bytes',
    'Cache-Control': 'max-age=31536000',
  };
  if (ex.req.headers['if-none-match'] === etag) {
    send(ex, 304, headers);
    return;
  }
  const range = parseRange(ex.req.headers.range, size);
  if (range === null) {
    throw new RegistryError('RANGE_INVALID', { message: 'requested range not satisfiable', headers: { 'Content-Range': `bytes */${size}` } });
  }
  let status = 200;
  if (range) {
    status = 206;
    headers['Content-Range'] = `bytes ${range.offset}-${range.offset + range.length - 1}/${size}`;
  }
  headers['Content-Length'] = range ? range.length : size;
  if (ex.req.method === 'HEAD') {
    send(ex, status, headers);
    return;
  }
  // registry:2 with S3: the client fetches the bytes from the store itself (and sends its Range there).
  const location = await ex.registry.blobs.redirectURL?.(name, digest);
  if (location !== undefined) {
    send(ex, 307, { Location: location, 'Docker-Content-Digest': digest, 'Cache-Control': 'no-store' });
    return;
  }
  const blob = await ex.registry.blobs.open(name, digest, range);
  ex.res.writeHead(status, headers);
  if (blob.sendTo) {
    await blob.sendTo(responseSink(ex.res));
    ex.res.end();
  } else {
    await pipeline(blob.stream, ex.res);
  }
};

/** Writes chunks to the client, each settling once the socket has taken it (or the client left). */
function responseSink(res: ServerResponse): ChunkSink {
  return (chunk) =>
    new Promise<void>((resolve, reject) => {
      if (res.destroyed) {
        reject(new Error('the client closed the connection'));
        return;
      }
      const onClose = () => reject(new Error('the client closed the connection'));
      res.once('close', onClose);
      res.write(chunk, (error) => {
        res.off('close', onClose);
        if (error) reject(error);
        else resolve();
      });
    });
}

export const deleteBlob: Handler<BlobRoute> = async (ex) => {
  await ex.registry.blobs.delete(ex.route.name, requireDigest(ex.route.digest), ex.context);
  send(ex, 202, {});
};
