import { randomUUID } from 'node:crypto';
import { RegistryError } from '../errors/index.js';
import type { MetadataStore, UploadRecord } from '../metadata/metadata-store.js';
import { quotaExceeded } from '../metadata/quota.js';
import type { BlobStore, WritePartOptions } from '../storage/blob-store.js';
import { digestParts, type Digest } from '../oci/digest.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { changeOptions, type RequestContext } from './context.js';
import type { EventSink } from './events.js';
import { checkRepositoryName } from './validation.js';

/** How long a commit waits for a collector that is deleting the same digest's old bytes. */
const PLACEMENT_PATIENCE_MS = 30_000;
const PLACEMENT_RETRY_MS = 50;
/** How many stale sessions a dry-run purge counts at most. */
const DRY_RUN_COUNT_LIMIT = 100_000;

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
    const current = await this.lookup(repository, id);
    // Whatever else follows, the blob will be at least this big: refuse before reading the body.
    if (chunk.length !== undefined) await this.checkQuota(repository, current.size + chunk.length);
    const upload = await this.write(current, chunk, context);
    return { id, repository, size: upload.size };
  }

  /**
   * Finishes an upload with an optional last chunk: verifies the digest and makes the blob
   * visible in the repository. On a digest mismatch the session is discarded.
   */
  async finish(repository: string, id: string, digest: Digest, chunk: Chunk | undefined, context: RequestContext = {}): Promise<void> {
    checkRepositoryName(repository);
    let upload = await this.lookup(repository, id);
    if (!chunk) await this.checkQuota(repository, upload.size, digest);
    else if (chunk.length !== undefined) await this.checkQuota(repository, upload.size + chunk.length, digest);
    if (chunk) upload = await this.write(upload, chunk, context);
    // The parts and the hash over them were recorded together, and parts never change: the bytes
    // verified here are exactly the bytes placed below, whatever other requests do meanwhile.
    const actual = await this.store.digestOf(id, upload.parts, upload.hashState, digestParts(digest).algorithm);
    if (actual !== digest) {
      await this.discard(id);
      throw new RegistryError('DIGEST_INVALID', { detail: { expected: digest, actual } });
    }
    try {
      await this.place(upload, digest, context);
    } catch (error) {
      // Over a quota found at the commit (a body of unknown length, or a race): the session cannot finish.
      if (error instanceof RegistryError && error.code === 'DENIED') await this.discard(id);
      throw error;
    }
    this.emit?.({ action: 'blob.push', repository, digest, ...(context.actor ? { actor: context.actor } : {}) });
  }

  /**
   * Makes a verified upload the blob `digest`: bytes already present are only linked; otherwise
   * the parts are moved into place while the blob's row says `pending`, then it becomes present,
   * linked and the upload forgotten in one transaction (see BlobState).
   */
  private async place(upload: UploadRecord, digest: Digest, context: RequestContext): Promise<void> {
    const deadline = Date.now() + PLACEMENT_PATIENCE_MS;
    for (;;) {
      const reservation = await this.metadata.reserveBlob(digest, upload.size);
      if (reservation === 'busy') {
        if (Date.now() > deadline) throw new RegistryError('UNAVAILABLE', { message: 'the blob is being collected; try again' });
        await sleep(PLACEMENT_RETRY_MS);
        continue;
      }
      if (reservation === 'place') await this.store.placeBlob(upload.id, upload.parts, digest);
      const outcome = await this.metadata.completeUpload(upload.id, upload.size, digest, changeOptions(context));
      if (outcome === 'done') break;
      if (outcome === 'gone') {
        throw new RegistryError('BLOB_UPLOAD_INVALID', { message: 'another request changed or ended this upload meanwhile', detail: { id: upload.id } });
      }
      if (Date.now() > deadline) throw new RegistryError('UNAVAILABLE', { message: 'the blob is being collected; try again' });
    }
    await this.store.deleteUpload(upload.id);
  }

  /** A whole blob in one request (`POST ?digest=` with a body). */
  async monolithic(repository: string, digest: Digest, chunk: Chunk, context: RequestContext = {}): Promise<void> {
    checkRepositoryName(repository);
    if (chunk.length !== undefined) await this.checkQuota(repository, chunk.length, digest);
    const upload = await this.start(repository);
    try {
      await this.finish(repository, upload.id, digest, chunk, context);
    } catch (error) {
      await this.discard(upload.id);
      throw error;
    }
  }

  /**
   * Imports a blob file from another registry's storage into `repository` as a push would: a
   * session whose one part is the file (hard-linked where possible), verified against `digest`
   * by re-hashing, placed and linked by the usual commit. Throws DIGEST_INVALID (the session is
   * discarded) when the bytes are not `digest`, PathNotFoundError when the file is missing.
   * Resolves to how the bytes came in: hard-linked, or copied (another filesystem).
   */
  async importFile(repository: string, digest: Digest, source: string, context: RequestContext = {}): Promise<'linked' | 'copied'> {
    const upload = await this.start(repository);
    try {
      const { part, how } = await this.store.adoptPart(upload.id, source);
      if (!(await this.metadata.advanceUpload(upload.id, { from: 0, part, hashState: undefined, extendsLast: false }))) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', { message: 'another request wrote to this upload', detail: { id: upload.id } });
      }
      await this.finish(repository, upload.id, digest, undefined, context);
      return how;
    } catch (error) {
      await this.discard(upload.id).catch(() => undefined);
      throw error;
    }
  }

  async cancel(repository: string, id: string): Promise<void> {
    checkRepositoryName(repository);
    await this.lookup(repository, id);
    await this.discard(id);
  }

  /**
   * Removes sessions idle since before `before`, and upload directories that no session owns (a
   * crash between forgetting a session and deleting its files). With `dryRun`, only counts.
   */
  async purgeStale(before: number, options: { dryRun?: boolean } = {}): Promise<{ sessions: number; orphans: number }> {
    let sessions = 0;
    if (options.dryRun) {
      sessions = (await this.metadata.staleUploads(before, DRY_RUN_COUNT_LIMIT)).length;
    } else {
      for (;;) {
        const stale = await this.metadata.staleUploads(before, 100);
        for (const upload of stale) await this.discard(upload.id);
        sessions += stale.length;
        if (stale.length < 100) break;
      }
    }
    let orphans = 0;
    for (const id of await this.store.listUploads()) {
      // A session's row exists before any of its files, so files without a row are left over.
      if (!/^[0-9a-f-]{36}$/.test(id) || (await this.metadata.getUpload(id)) !== undefined) continue;
      if (!options.dryRun) await this.store.deleteUpload(id);
      orphans += 1;
    }
    return { sessions, orphans };
  }

  /**
   * Refuses, before a body is read, an upload whose blob would take the repository over a quota
   * (nothing when the repository already links `digest`). Advisory: the commit re-checks in the
   * transaction that links the blob.
   */
  private async checkQuota(repository: string, bytes: number, digest?: Digest): Promise<void> {
    const violation = await this.metadata.checkQuota(repository, { bytes, ...(digest !== undefined ? { digest } : {}) });
    if (violation) throw quotaExceeded(violation);
  }

  private async lookup(repository: string, id: string): Promise<UploadRecord> {
    const upload = /^[0-9a-f-]{36}$/.test(id) ? await this.metadata.getUpload(id) : undefined;
    if (!upload || upload.repository !== repository) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { id } });
    return upload;
  }

  /** Writes a chunk as the upload's next part and records it; returns the upload as it is now. */
  private async write(upload: UploadRecord, chunk: Chunk, context: RequestContext): Promise<UploadRecord> {
    let expectedLength = chunk.length;
    if (chunk.range) {
      const { start, end } = chunk.range;
      if (start !== upload.size || end < start - 1) {
        throw new RegistryError('RANGE_INVALID', {
          message: `chunk starts at ${start}, the upload has ${upload.size} bytes`,
          detail: { size: upload.size },
        });
      }
      const rangeLength = end - start + 1;
      if (expectedLength !== undefined && expectedLength !== rangeLength) {
        throw new RegistryError('RANGE_INVALID', {
          message: 'Content-Range and Content-Length disagree',
          detail: { size: upload.size },
        });
      }
      expectedLength = rangeLength;
    }
    const options: WritePartOptions = { offset: upload.size, body: chunk.body };
    if (expectedLength !== undefined) options.expectedLength = expectedLength;
    if (context.signal) options.signal = context.signal;
    if (upload.hashState) options.hashState = upload.hashState;
    const lastPart = upload.parts.at(-1);
    if (lastPart) options.lastPart = lastPart;
    const written = await this.store.writePart(upload.id, options);
    const { part, hashState } = written;
    if (!part) return upload;
    let advanced: boolean;
    try {
      advanced = await this.metadata.advanceUpload(upload.id, { from: upload.size, part, hashState, extendsLast: written.extends });
    } catch (error) {
      await this.store.discardPart(upload.id, written).catch(() => undefined);
      throw error;
    }
    if (!advanced) {
      await this.store.discardPart(upload.id, written);
      throw new RegistryError('RANGE_INVALID', {
        message: 'another request wrote to this upload at the same time',
        detail: { size: upload.size },
      });
    }
    const added = part.size - (written.previousSize ?? 0);
    this.store.recorded(upload.id, written, upload.size + added);
    const parts = written.extends ? [...upload.parts.slice(0, -1), part] : [...upload.parts, part];
    const next: UploadRecord = { ...upload, size: upload.size + added, parts };
    if (hashState) next.hashState = hashState;
    else delete next.hashState;
    return next;
  }

  private async discard(id: string): Promise<void> {
    await this.metadata.deleteUpload(id);
    await this.store.deleteUpload(id);
  }
}
