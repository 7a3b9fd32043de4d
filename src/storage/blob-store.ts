import type { Readable } from 'node:stream';
import { RegistryError } from '../errors/index.js';
import { createDigester, parseDigest, type DigestAlgorithm } from '../oci/digest.js';
import { PathNotFoundError, type StorageDriver } from './driver.js';
import { HashThread } from './hash-thread.js';

/** How many in-progress upload hashes one process keeps; older ones are re-hashed from storage. */
const MAX_CACHED_HASHERS = 4096;

/** The hash thread holds a running sha256 over this upload's first `size` bytes. */
interface HashState {
  size: number;
  /** The thread's generation when it started; a restarted thread has lost the hash. */
  generation: number;
}

/** Bytes gathered before they go to the hash thread in one message. */
const HASH_BATCH = 1024 * 1024;

export interface AppendOptions {
  /** Bytes already in the upload; anything stored beyond this is the tail of a cut-off write. */
  offset: number;
  body: AsyncIterable<Buffer>;
  /** When set, the body must be exactly this long (Content-Range / Content-Length). */
  expectedLength?: number;
  signal?: AbortSignal;
}

export interface CommitOptions {
  /** The upload's size as recorded when its last append finished. */
  size: number;
  /** The digest the client claims; the content must hash to it. */
  digest: string;
}

/**
 * Content-addressed blobs over a StorageDriver: one copy per digest for the whole registry,
 * and upload sessions that become a blob only after their bytes are durable and verified.
 *
 * Layout: `blobs/<algorithm>/<first two hex>/<hex>` and `uploads/<id>/data`.
 */
export class BlobStore {
  private readonly hashers = new Map<string, HashState>();

  constructor(
    readonly driver: StorageDriver,
    private readonly hashThread: HashThread = new HashThread(),
  ) {}

  blobPath(digest: string): string {
    const parsed = parseDigest(digest);
    if (!parsed) throw new RegistryError('DIGEST_INVALID', { detail: { digest } });
    return `blobs/${parsed.algorithm}/${parsed.hex.slice(0, 2)}/${parsed.hex}`;
  }

  uploadPath(id: string): string {
    if (!/^[a-zA-Z0-9-]+$/.test(id)) throw new RegistryError('BLOB_UPLOAD_INVALID', { detail: { id } });
    return `uploads/${id}/data`;
  }

  /** The stored size of a blob; undefined when storage does not have it. */
  async stat(digest: string): Promise<number | undefined> {
    return (await this.driver.stat(this.blobPath(digest)))?.size;
  }

  /** A stream of a blob's bytes; throws BLOB_UNKNOWN when storage has lost it. */
  async reader(digest: string, range: { offset?: number; length?: number } = {}): Promise<Readable> {
    try {
      return await this.driver.reader(this.blobPath(digest), range);
    } catch (error) {
      if (error instanceof PathNotFoundError) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest }, cause: error });
      throw error;
    }
  }

  async deleteBlob(digest: string): Promise<void> {
    await this.driver.delete(this.blobPath(digest));
  }

  /** Creates the empty data file of a new upload session. */
  async createUpload(id: string): Promise<void> {
    const writer = await this.driver.writer(this.uploadPath(id));
    await writer.close();
    this.rememberHash(id, { size: 0, generation: this.hashThread.generation });
  }

  /**
   * Streams a chunk into an upload at `offset`, hashing it on the way. Returns the new size.
   * On failure (client gone, wrong length) the bytes after `offset` do not count: the next
   * append starts again at `offset` and discards them.
   */
  async append(id: string, options: AppendOptions): Promise<number> {
    const path = this.uploadPath(id);
    let writer;
    try {
      writer = await this.driver.writer(path, { resumeAt: options.offset });
    } catch (error) {
      if (error instanceof PathNotFoundError) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { id }, cause: error });
      throw error;
    }
    const cached = this.hashers.get(id);
    this.hashers.delete(id);
    const hashing = cached !== undefined && cached.size === options.offset && cached.generation === this.hashThread.generation;
    if (cached && !hashing) this.hashThread.drop(id);
    let received = 0;
    let ok = false;
    // Chunks go to disk at once and to the hash thread in batches, one copy per batch.
    let batch: Buffer[] = [];
    let batchBytes = 0;
    try {
      for await (const chunk of options.body) {
        received += chunk.length;
        if (options.expectedLength !== undefined && received > options.expectedLength) {
          throw new RegistryError('SIZE_INVALID', { detail: { expected: options.expectedLength } });
        }
        await writer.write(chunk);
        if (hashing) {
          batch.push(chunk);
          batchBytes += chunk.length;
          if (batchBytes >= HASH_BATCH) {
            const full = batch;
            batch = [];
            batchBytes = 0;
            await this.hashThread.update(id, full);
          }
        }
      }
      options.signal?.throwIfAborted();
      if (options.expectedLength !== undefined && received !== options.expectedLength) {
        throw new RegistryError('SIZE_INVALID', { detail: { expected: options.expectedLength, received } });
      }
      if (hashing) await this.hashThread.update(id, batch);
      ok = true;
    } finally {
      // Keep what is on disk either way: the recorded offset decides what counts.
      await writer.close();
      // A failed chunk does not count, but the thread may have hashed part of it.
      if (hashing && !ok) this.hashThread.drop(id);
    }
    if (ok && hashing) this.rememberHash(id, { size: options.offset + received, generation: cached.generation });
    return options.offset + received;
  }

  /**
   * Verifies an upload against `digest` and moves it into place as that blob. Throws
   * DIGEST_INVALID when the content does not match; the upload is left for the caller to discard.
   */
  async commit(id: string, options: CommitOptions): Promise<void> {
    const parsed = parseDigest(options.digest);
    if (!parsed) throw new RegistryError('DIGEST_INVALID', { detail: { digest: options.digest } });
    const path = this.uploadPath(id);
    const actual = await this.digestUpload(id, path, options.size, parsed.algorithm);
    if (actual !== options.digest) {
      throw new RegistryError('DIGEST_INVALID', { detail: { expected: options.digest, actual } });
    }
    const stored = await this.driver.stat(path);
    if (!stored) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { id } });
    if (stored.size !== options.size) {
      // Drop the tail of a write that was cut off after the last recorded append.
      const writer = await this.driver.writer(path, { resumeAt: options.size });
      await writer.close();
    }
    const target = this.blobPath(options.digest);
    if ((await this.driver.stat(target))?.size === options.size) {
      await this.deleteUpload(id);
      return;
    }
    await this.driver.move(path, target);
    await this.deleteUpload(id);
  }

  async deleteUpload(id: string): Promise<void> {
    if (this.hashers.delete(id)) this.hashThread.drop(id);
    await this.driver.delete(`uploads/${this.uploadPath(id).split('/')[1]}`);
  }

  /** Upload ids that have data in storage (for purging abandoned ones). */
  async listUploads(): Promise<string[]> {
    return this.driver.list('uploads');
  }

  private async digestUpload(id: string, path: string, size: number, algorithm: DigestAlgorithm): Promise<string> {
    const cached = this.hashers.get(id);
    if (cached) {
      this.hashers.delete(id);
      if (algorithm === 'sha256' && cached.size === size && cached.generation === this.hashThread.generation) {
        try {
          return `sha256:${await this.hashThread.digest(id)}`;
        } catch {
          // The hash thread died with this session's state: hash the file instead, below.
        }
      } else {
        this.hashThread.drop(id);
      }
    }
    // Another process took some chunks, the server restarted, or the client chose sha512.
    const hash = createDigester(algorithm);
    if (size > 0) {
      let stream: Readable;
      try {
        stream = await this.driver.reader(path, { offset: 0, length: size });
      } catch (error) {
        if (error instanceof PathNotFoundError) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { id }, cause: error });
        throw error;
      }
      let seen = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        hash.update(chunk);
        seen += chunk.length;
      }
      if (seen !== size) throw new RegistryError('BLOB_UPLOAD_INVALID', { detail: { id, reason: 'upload data is shorter than recorded' } });
    }
    return `${algorithm}:${hash.digest('hex')}`;
  }

  private rememberHash(id: string, state: HashState): void {
    if (this.hashers.size >= MAX_CACHED_HASHERS) {
      const oldest = this.hashers.keys().next().value;
      if (oldest !== undefined) {
        this.hashers.delete(oldest);
        this.hashThread.drop(oldest);
      }
    }
    this.hashers.set(id, state);
  }
}
