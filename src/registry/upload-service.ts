import { randomUUID } from 'node:crypto';
import { RegistryError } from '../errors/index.js';
import type { MetadataStore, UploadRecord } from '../metadata/metadata-store.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { RequestContext } from './context.js';
import type { EventSink } from './events.js';
import { checkDigest, checkRepositoryName } from './validation.js';

/** A chunk of upload data as the client framed it. */
export interface Chunk {
  body: AsyncIterable<Buffer>;
  /** `Content-Range: start-end` (inclusive), when the client sent one. */
  range?: { start: number; end: number };
  /** `Content-Length`, when the client sent one. */
  length?: number;
}

export interface UploadState {
  id: string;
  repository: string;
  /** Bytes received so far. */
  size: number;
}

/**
 * Blob upload sessions: monolithic, chunked and streamed, resumable across restarts because
 * both the bytes (storage) and the offset (metadata) are durable after every chunk.
 */
export class UploadService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly store: BlobStore,
    private readonly emit?: EventSink,
  ) {}

  async start(repository: string): Promise<UploadState> {
    checkRepositoryName(repository);
    const id = randomUUID();
    await this.store.createUpload(id);
    await this.metadata.createUpload({ id, repository, startedAt: Date.now() });
    return { id, repository, size: 0 };
  }

  /** The session, if it exists and belongs to `repository`; throws BLOB_UPLOAD_UNKNOWN otherwise. */
  async get(repository: string, id: string): Promise<UploadState> {
    checkRepositoryName(repository);
    const upload = await this.lookup(repository, id);
    return { id, repository, size: upload.size };
  }

  /** Appends a chunk; an out-of-order or repeated chunk gets 416 with the current Range. */
  async append(repository: string, id: string, chunk: Chunk, context: RequestContext = {}): Promise<UploadState> {
    checkRepositoryName(repository);
    const upload = await this.lookup(repository, id);
    const size = await this.write(upload, chunk, context);
    return { id, repository, size };
  }

  /**
   * Finishes an upload with an optional last chunk: verifies the digest and makes the blob
   * visible in the repository. On a digest mismatch the session is discarded.
   */
  async finish(repository: string, id: string, digest: string, chunk: Chunk | undefined, context: RequestContext = {}): Promise<void> {
    checkRepositoryName(repository);
    checkDigest(digest);
    const upload = await this.lookup(repository, id);
    const size = chunk ? await this.write(upload, chunk, context) : upload.size;
    try {
      await this.store.commit(id, { size, digest });
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'DIGEST_INVALID') await this.discard(id);
      throw error;
    }
    await this.metadata.completeUpload(id, digest, size);
    this.emit?.({ action: 'blob.push', repository, digest, ...(context.actor ? { actor: context.actor } : {}) });
  }

  /** A whole blob in one request (`POST ?digest=` with a body). */
  async monolithic(repository: string, digest: string, chunk: Chunk, context: RequestContext = {}): Promise<void> {
    checkRepositoryName(repository);
    checkDigest(digest);
    const upload = await this.start(repository);
    try {
      await this.finish(repository, upload.id, digest, chunk, context);
    } catch (error) {
      await this.discard(upload.id);
      throw error;
    }
  }

  async cancel(repository: string, id: string): Promise<void> {
    checkRepositoryName(repository);
    await this.lookup(repository, id);
    await this.discard(id);
  }

  /** Removes sessions idle since before `before`; returns how many. */
  async purgeStale(before: number): Promise<number> {
    let purged = 0;
    for (;;) {
      const stale = await this.metadata.staleUploads(before, 100);
      for (const upload of stale) {
        await this.discard(upload.id);
        purged += 1;
      }
      if (stale.length < 100) return purged;
    }
  }

  private async lookup(repository: string, id: string): Promise<UploadRecord> {
    const upload = /^[0-9a-f-]{36}$/.test(id) ? await this.metadata.getUpload(id) : undefined;
    if (!upload || upload.repository !== repository) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { id } });
    return upload;
  }

  private async write(upload: UploadRecord, chunk: Chunk, context: RequestContext): Promise<number> {
    let expectedLength = chunk.length;
    if (chunk.range) {
      const { start, end } = chunk.range;
      if (start !== upload.size || end < start - 1) {
        throw new RegistryError('RANGE_INVALID', {
          status: 416,
          message: `chunk starts at ${start}, the upload has ${upload.size} bytes`,
          detail: { size: upload.size },
        });
      }
      const rangeLength = end - start + 1;
      if (expectedLength !== undefined && expectedLength !== rangeLength) {
        throw new RegistryError('RANGE_INVALID', {
          status: 416,
          message: 'Content-Range and Content-Length disagree',
          detail: { size: upload.size },
        });
      }
      expectedLength = rangeLength;
    }
    const options: Parameters<BlobStore['append']>[1] = { offset: upload.size, body: chunk.body };
    if (expectedLength !== undefined) options.expectedLength = expectedLength;
    if (context.signal) options.signal = context.signal;
    const size = await this.store.append(upload.id, options);
    if (!(await this.metadata.advanceUpload(upload.id, upload.size, size))) {
      throw new RegistryError('RANGE_INVALID', {
        status: 416,
        message: 'another request wrote to this upload at the same time',
        detail: { size: upload.size },
      });
    }
    return size;
  }

  private async discard(id: string): Promise<void> {
    await this.metadata.deleteUpload(id);
    await this.store.deleteUpload(id);
  }
}
