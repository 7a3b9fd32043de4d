import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { RegistryError } from '../errors/index.js';
import { asDigest, createDigester, digestParts, type Digest, type DigestAlgorithm } from '../oci/digest.js';
import { PathNotFoundError, type StorageDriver } from './driver.js';
import { finishSavedSha256 } from './hash-state.js';
import { HashThread } from './hash-thread.js';

/**
 * Bytes gathered before they go to the hash thread in one message. Every upload in flight holds
 * up to this much of its request's buffers: at 1 MiB, 16 uploads at once took a worker 50 MiB
 * higher (and the C allocator kept it); at 256 KiB the messages cost as little.
 */
const HASH_BATCH = 256 * 1024;
/** Uploads whose last part this process remembers it may continue (see BlobStore.tails). */
const MAX_TAILS = 1024;
/** Blob files deleted at once by deleteBlobs on a driver without deleteMany. */
const DELETE_LANES = 16;

/**
 * One accepted chunk of an upload: a file of its own, written by exactly one request and never
 * changed afterwards. Concurrent requests at the same offset write different parts, and only the
 * one that the metadata records counts, which is what keeps verification sound (issue: two
 * connections writing one file while a hash of only one of them was kept).
 */
export interface UploadPart {
  /** File name inside the upload's directory. */
  name: string;
  size: number;
}

export interface WritePartOptions {
  /** Bytes already in the upload: where this part begins. */
  offset: number;
  body: AsyncIterable<Buffer>;
  /** When set, the body must be exactly this long (Content-Range / Content-Length). */
  expectedLength?: number;
  signal?: AbortSignal;
  /**
   * The upload's running sha256 state after `offset` bytes, when one was saved. At offset 0 the
   * hash starts fresh; elsewhere it goes on from the running hash this process kept, or from this
   * state; without either the part is not hashed and the digest is computed at commit.
   */
  hashState?: Uint8Array;
  /** The upload's last recorded part (the one ending at `offset`), which this part may continue. */
  lastPart?: UploadPart;
}

export interface WrittenPart {
  /**
   * Undefined when the body was empty: nothing to record. When `extends` is set, this is the
   * upload's last part grown by the new bytes (same name, new size), which replaces it.
   */
  part: UploadPart | undefined;
  /** The running sha256 state after this part, when it was saved (resumable hashing). */
  hashState: Uint8Array | undefined;
  /** Whether `part` is the last part continued rather than a new file. */
  extends: boolean;
  /** The hash stream to keep once the part is recorded (see BlobStore.recorded). */
  stream?: string;
  /** The continued part's size before this request (0 for a new part). */
  previousSize?: number;
}

/** A blob file found in storage. */
export interface StoredBlob {
  digest: Digest;
  size: number;
  modifiedAt: Date;
}

/**
 * Content-addressed blobs over a StorageDriver: one copy per digest for the whole registry, and
 * upload sessions whose parts become a blob only after they are durable and verified. Which parts
 * count, and the running hash over them, live in metadata; this class keeps only bytes.
 *
 * Layout: `blobs/<algorithm>/<first two hex>/<hex>`, `uploads/<id>/<offset>-<random>` (one file
 * per part) and `quarantine/<algorithm>/<hex>.<time>` (blobs whose bytes failed a check).
 */
export class BlobStore {
  /**
   * Per upload whose last part this process is writing or wrote: that part's file may be continued
   * in place by the upload's next request here (see writePart). `busy` while a request writes it.
   */
  private readonly tails = new Map<string, { name: string; busy: boolean }>();
  /** Whether hash states are saved for other processes (a remote driver: re-reading costs a transfer). */
  private readonly resumableHashes: boolean;

  constructor(
    readonly driver: StorageDriver,
    private readonly hashThread: HashThread = new HashThread(),
    /** Save hash states even on a local driver (tests of several processes sharing a disk). */
    options: { resumableHashes?: boolean } = {},
  ) {
    this.resumableHashes = options.resumableHashes ?? driver.local !== true;
  }

  blobPath(digest: Digest): string {
    const { algorithm, hex } = digestParts(digest);
    return `blobs/${algorithm}/${hex.slice(0, 2)}/${hex}`;
  }

  uploadDirectory(id: string): string {
    if (!/^[a-zA-Z0-9-]+$/.test(id)) throw new RegistryError('BLOB_UPLOAD_INVALID', { detail: { id } });
    return `uploads/${id}`;
  }

  private partPath(id: string, name: string): string {
    if (!/^[a-zA-Z0-9.-]+$/.test(name) || name.startsWith('.')) throw new RegistryError('BLOB_UPLOAD_INVALID', { detail: { id } });
    return `${this.uploadDirectory(id)}/${name}`;
  }

  /** The stored size of a blob; undefined when storage does not have it. */
  async stat(digest: Digest): Promise<number | undefined> {
    return (await this.driver.stat(this.blobPath(digest)))?.size;
  }

  /** A stream of a blob's bytes; throws BLOB_UNKNOWN when storage has lost it. */
  async reader(digest: Digest, range: { offset?: number; length?: number } = {}): Promise<Readable> {
    try {
      return await this.driver.reader(this.blobPath(digest), range);
    } catch (error) {
      if (error instanceof PathNotFoundError) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest }, cause: error });
      throw error;
    }
  }

  /** A URL the driver offers for reading a blob directly (see StorageDriver.redirectURL); undefined when none. */
  async redirectURL(digest: Digest, expiresInSeconds: number): Promise<string | undefined> {
    return this.driver.redirectURL?.(this.blobPath(digest), { expiresInSeconds });
  }

  async deleteBlob(digest: Digest): Promise<void> {
    await this.driver.delete(this.blobPath(digest));
  }

  /** Deletes many blobs' bytes, in one call where the driver can (see StorageDriver.deleteMany). */
  async deleteBlobs(digests: readonly Digest[]): Promise<void> {
    if (digests.length === 0) return;
    if (this.driver.deleteMany) {
      await this.driver.deleteMany(digests.map((digest) => this.blobPath(digest)));
      return;
    }
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < digests.length) await this.driver.delete(this.blobPath(digests[next++]!));
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_LANES, digests.length) }, lane));
  }

  /**
   * Streams a chunk into the upload's storage, hashing it on the way: a new part file, or, where
   * the driver can append and this process wrote the last part and nothing else writes it now,
   * that part's file continued in place (so a chunked upload ends as one file that its commit
   * moves, with no copy). Nothing about the upload changes until the caller records the part and
   * calls `recorded`; on failure (client gone, wrong length) the new bytes are removed and the
   * upload is as it was.
   */
  async writePart(id: string, options: WritePartOptions): Promise<WrittenPart> {
    const tail = this.tails.get(id);
    const continues = this.driver.appender !== undefined && options.lastPart !== undefined && tail !== undefined && !tail.busy && tail.name === options.lastPart.name;
    const name = continues ? options.lastPart!.name : `${options.offset}-${randomBytes(8).toString('hex')}`;
    const base = continues ? options.lastPart!.size : 0;
    let writer;
    if (continues) {
      tail!.busy = true;
      try {
        writer = await this.driver.appender!(this.partPath(id, name), base);
      } catch (error) {
        tail!.busy = false;
        throw error;
      }
    } else {
      writer = await this.driver.writer(this.partPath(id, name));
    }
    const stream = `${id}/${name}/${base}`;
    this.hashThread.open(stream, { upload: id, offset: options.offset, state: options.hashState, resumable: this.resumableHashes });
    let received = 0;
    let committed = false;
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
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= HASH_BATCH) {
          const full = batch;
          batch = [];
          batchBytes = 0;
          await this.hashThread.update(stream, full);
        }
      }
      options.signal?.throwIfAborted();
      if (options.expectedLength !== undefined && received !== options.expectedLength) {
        throw new RegistryError('SIZE_INVALID', { detail: { expected: options.expectedLength, received } });
      }
      if (received === 0) return { part: undefined, hashState: options.hashState, extends: false };
      await this.hashThread.update(stream, batch);
      await writer.commit();
      committed = true;
      // A hash thread that died meanwhile costs a re-read at commit, not the upload.
      const { state } = await this.hashThread.finish(stream).catch(() => ({ state: undefined }));
      return { part: { name, size: base + received }, hashState: state, extends: continues, stream, previousSize: base };
    } finally {
      if (!committed) {
        this.hashThread.drop(stream);
        await writer.cancel();
        if (continues) tail!.busy = false;
      }
    }
  }

  /**
   * The caller recorded `written` as the upload's new last part (after `offset` bytes in all):
   * this process may continue its file and its running hash with the upload's next request.
   */
  recorded(id: string, written: WrittenPart, offset: number): void {
    if (!written.part) return;
    this.tails.delete(id);
    this.tails.set(id, { name: written.part.name, busy: false });
    // Sessions abandoned here and purged elsewhere leave entries: the oldest go beyond a bound.
    if (this.tails.size > MAX_TAILS) this.tails.delete(this.tails.keys().next().value!);
    if (written.stream) this.hashThread.keep(written.stream, id, offset);
  }

  /**
   * Removes bytes that were written but not recorded (another request won the offset): a new
   * part's file, or what was appended to the last part's file (cut back to `previousSize`).
   */
  async discardPart(id: string, written: WrittenPart): Promise<void> {
    if (!written.part) return;
    if (written.stream) this.hashThread.drop(written.stream);
    if (written.extends) {
      const path = this.partPath(id, written.part.name);
      try {
        const writer = await this.driver.appender!(path, written.previousSize ?? 0);
        await writer.cancel();
      } finally {
        // The file is still this process's; whether it is still the last part, the next request's
        // lastPart tells.
        const tail = this.tails.get(id);
        if (tail?.name === written.part.name) tail.busy = false;
      }
      return;
    }
    if (this.tails.get(id)?.name === written.part.name) this.tails.delete(id);
    await this.driver.delete(this.partPath(id, written.part.name));
  }

  /**
   * Makes an existing file outside the store (another registry's blob) the first part of upload
   * `id`, hard-linked where the driver can (see StorageDriver.adopt), else written once through
   * `writer`. Unverified, like any part: the commit re-hashes it. Throws PathNotFoundError.
   */
  async adoptPart(id: string, source: string): Promise<{ part: UploadPart; how: 'linked' | 'copied' }> {
    const name = `0-${randomBytes(8).toString('hex')}`;
    const path = this.partPath(id, name);
    let how: 'linked' | 'copied' = 'copied';
    if (this.driver.adopt) {
      how = await this.driver.adopt(source, path);
    } else {
      const writer = await this.driver.writer(path);
      try {
        for await (const chunk of createReadStream(source) as AsyncIterable<Buffer>) await writer.write(chunk);
        await writer.commit();
      } catch (error) {
        await writer.cancel();
        throw error;
      }
    }
    const size = (await stat(source)).size;
    return { part: { name, size }, how };
  }

  /**
   * The digest of an upload's parts: for sha256, from the running hash this process kept or from
   * the saved state, else computed by reading the parts (another algorithm, an upload continued
   * from another process without a saved state, or a state that was lost).
   */
  async digestOf(id: string, parts: readonly UploadPart[], hashState: Uint8Array | undefined, algorithm: DigestAlgorithm): Promise<Digest> {
    if (algorithm === 'sha256') {
      const size = parts.reduce((sum, part) => sum + part.size, 0);
      const hex = await this.hashThread.digestAt(id, size).catch(() => undefined);
      if (hex !== undefined) return `sha256:${hex}` as Digest;
    }
    if (algorithm === 'sha256' && hashState !== undefined) {
      const hex = await finishSavedSha256(hashState);
      if (hex !== undefined) return `sha256:${hex}` as Digest;
    }
    const hash = createDigester(algorithm);
    for (const part of parts) {
      let stream: Readable;
      try {
        stream = await this.driver.reader(this.partPath(id, part.name), { offset: 0, length: part.size });
      } catch (error) {
        if (error instanceof PathNotFoundError) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { id }, cause: error });
        throw error;
      }
      let seen = 0;
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        hash.update(chunk);
        seen += chunk.length;
      }
      if (seen !== part.size) throw new RegistryError('BLOB_UPLOAD_INVALID', { detail: { id, reason: 'an upload part is shorter than recorded' } });
    }
    return `${algorithm}:${hash.digest('hex')}` as Digest;
  }

  /**
   * Makes the parts the bytes of blob `digest`, replacing whatever file is there (only a caller
   * that has verified the parts against `digest` may call this). One part is moved; several are
   * concatenated. Durable when it resolves.
   */
  async placeBlob(id: string, parts: readonly UploadPart[], digest: Digest): Promise<void> {
    const target = this.blobPath(digest);
    try {
      if (parts.length === 1) {
        const path = this.partPath(id, parts[0]!.name);
        if ((await this.driver.stat(path))?.size === parts[0]!.size) {
          await this.driver.move(path, target);
          return;
        }
      }
      await this.driver.concat(parts.map((part) => ({ path: this.partPath(id, part.name), length: part.size })), target);
    } catch (error) {
      if (error instanceof PathNotFoundError) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { detail: { id }, cause: error });
      throw error;
    }
  }

  async deleteUpload(id: string): Promise<void> {
    this.tails.delete(id);
    this.hashThread.forgetUpload(id);
    await this.driver.delete(this.uploadDirectory(id));
  }

  /** Upload ids that have data in storage (for purging abandoned ones). */
  async listUploads(): Promise<string[]> {
    return this.driver.list('uploads');
  }

  /** Every blob file in storage, by digest (files that are not named as a digest are skipped). */
  async *walkBlobs(): AsyncIterable<StoredBlob> {
    for await (const entry of this.driver.walk('blobs')) {
      const m = /^blobs\/([a-z0-9]+)\/([a-f0-9]{2})\/([a-f0-9]+)$/.exec(entry.path);
      if (!m || !m[3]!.startsWith(m[2]!)) continue;
      const digest = asDigest(`${m[1]}:${m[3]}`);
      if (!digest) continue;
      yield { digest, size: entry.size, modifiedAt: entry.modifiedAt };
    }
  }

  /** The digest of a stored blob's bytes as they are now, under the algorithm its name says. */
  async rehash(digest: Digest): Promise<{ digest: Digest; size: number }> {
    return this.hashFile(this.blobPath(digest), digest);
  }

  /** The digest of a file moved aside by `quarantine`, under `digest`'s algorithm. */
  async rehashQuarantined(path: string, digest: Digest): Promise<Digest> {
    return (await this.hashFile(path, digest)).digest;
  }

  /** Puts a quarantined file back as blob `digest` (it turned out to be good). */
  async restoreFromQuarantine(path: string, digest: Digest): Promise<void> {
    await this.driver.move(path, this.blobPath(digest));
  }

  private async hashFile(path: string, digest: Digest): Promise<{ digest: Digest; size: number }> {
    const { algorithm } = digestParts(digest);
    let stream: Readable;
    try {
      stream = await this.driver.reader(path);
    } catch (error) {
      if (error instanceof PathNotFoundError) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest }, cause: error });
      throw error;
    }
    const hash = createDigester(algorithm);
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
    }
    return { digest: `${algorithm}:${hash.digest('hex')}` as Digest, size };
  }

  /** Moves a blob's file out of the content-addressed tree, keeping it for inspection; returns where. */
  async quarantine(digest: Digest): Promise<string> {
    const { algorithm, hex } = digestParts(digest);
    const destination = `quarantine/${algorithm}/${hex}.${Date.now()}`;
    await this.driver.move(this.blobPath(digest), destination);
    return destination;
  }
}
