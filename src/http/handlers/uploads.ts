import { requireDigest } from '../../registry/validation.js';
import { RegistryError, isRegistryError } from '../../errors/index.js';
import type { Chunk, UploadState } from '../../registry/upload-service.js';
import { contentLength, hasBody, send, type Exchange, type Handler } from '../exchange.js';

type UploadsRoute = { kind: 'uploads'; name: string };
type UploadRoute = { kind: 'upload'; name: string; id: string };

/** `Location`, `Range` and `Docker-Upload-UUID` for a session holding `size` bytes. */
function sessionHeaders(repository: string, id: string, size: number): Record<string, string> {
  return {
    Location: `/v2/${repository}/blobs/uploads/${id}`,
    // Distribution reports an empty upload as 0-0, and clients expect that.
    Range: `0-${size > 0 ? size - 1 : 0}`,
    'Docker-Upload-UUID': id,
  };
}

function blobCreated(ex: Exchange, repository: string, digest: string): void {
  send(ex, 201, { Location: `/v2/${repository}/blobs/${digest}`, 'Docker-Content-Digest': digest });
}

/** The request body as an upload chunk, with Content-Range and Content-Length when present. */
function chunkOf(ex: Exchange): Chunk {
  // Not destroyed when the service stops reading early (an error): the error seam reads the rest.
  const chunk: Chunk = { body: ex.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer> };
  const length = contentLength(ex.req);
  if (length !== undefined) chunk.length = length;
  const header = ex.req.headers['content-range'];
  if (header !== undefined) {
    const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
    if (!m) throw new RegistryError('RANGE_INVALID', { message: 'malformed Content-Range', detail: { 'Content-Range': header } });
    chunk.range = { start: Number(m[1]), end: Number(m[2]) };
  }
  return chunk;
}

/** Adds the session's Location and Range to a 416, so the client can see where to resume. */
async function withSessionOnRangeError<T>(ex: Exchange<UploadRoute>, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isRegistryError(error) && error.code === 'RANGE_INVALID') {
      const size = (error.detail as { size?: number } | undefined)?.size ?? (await ex.registry.uploads.get(ex.route.name, ex.route.id)).size;
      throw new RegistryError('RANGE_INVALID', {
        message: error.message,
        detail: error.detail,
        headers: sessionHeaders(ex.route.name, ex.route.id, size),
      });
    }
    throw error;
  }
}

function sessionAccepted(ex: Exchange, state: UploadState, status: 202 | 204): void {
  send(ex, status, sessionHeaders(state.repository, state.id, state.size));
}

/** POST: mount, monolithic upload (`?digest=` with a body), or a new session. */
export const startUpload: Handler<UploadsRoute> = async (ex) => {
  const { name } = ex.route;
  const mount = ex.query.get('mount');
  if (mount !== null) {
    const from = ex.query.get('from') ?? undefined;
    const digest = requireDigest(mount);
    if (await ex.registry.blobs.mount(name, digest, from, ex.context)) {
      blobCreated(ex, name, digest);
      return;
    }
  }
  const digest = ex.query.get('digest');
  if (digest !== null && mount === null) {
    await ex.registry.uploads.monolithic(name, requireDigest(digest), chunkOf(ex), ex.context);
    blobCreated(ex, name, digest);
    return;
  }
  const state = await ex.registry.uploads.start(name);
  sessionAccepted(ex, state, 202);
};

export const getUploadStatus: Handler<UploadRoute> = async (ex) => {
  sessionAccepted(ex, await ex.registry.uploads.get(ex.route.name, ex.route.id), 204);
};

export const patchUpload: Handler<UploadRoute> = async (ex) => {
  const state = await withSessionOnRangeError(ex, () => ex.registry.uploads.append(ex.route.name, ex.route.id, chunkOf(ex), ex.context));
  sessionAccepted(ex, state, 202);
};

export const putUpload: Handler<UploadRoute> = async (ex) => {
  const given = ex.query.get('digest');
  if (given === null) throw new RegistryError('DIGEST_INVALID', { message: 'digest query parameter is required' });
  const digest = requireDigest(given);
  const chunk = hasBody(ex.req) ? chunkOf(ex) : undefined;
  await withSessionOnRangeError(ex, () => ex.registry.uploads.finish(ex.route.name, ex.route.id, digest, chunk, ex.context));
  blobCreated(ex, ex.route.name, digest);
};

export const cancelUpload: Handler<UploadRoute> = async (ex) => {
  await ex.registry.uploads.cancel(ex.route.name, ex.route.id);
  send(ex, 204, {});
};
