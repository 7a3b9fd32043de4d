import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3ClientConfig,
  type ServerSideEncryption,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { PathNotFoundError, type FileEntry, type FileInfo, type FileRange, type FileWriter, type ReadOptions, type StorageDriver } from './driver.js';

/** S3's smallest part, except the last of a multipart upload. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** S3's largest part, and the largest object a single CopyObject copies. */
const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;
/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;

/** Where the bucket is and how to reach it: registry:2's `storage.s3` keys, typed. */
export interface S3DriverOptions {
  bucket: string;
  region: string;
  /** `regionendpoint`: an S3-compatible endpoint (RGW, MinIO), with or without a scheme. */
  endpoint?: string;
  forcePathStyle: boolean;
  /** Without them, the SDK's default chain (environment, profile, web identity, instance role). */
  accessKey?: string;
  secretKey?: string;
  sessionToken?: string;
  /** Key prefix every path lives under; empty for the bucket's root. */
  rootDirectory: string;
  /** Server-side encryption: SSE-S3, or SSE-KMS with `keyId`. */
  encrypt: boolean;
  keyId?: string;
  /** https for an endpoint given without a scheme (and for AWS itself). */
  secure: boolean;
  /** Accept any TLS certificate from the endpoint (self-signed test stores). */
  skipVerify: boolean;
  /** Bytes a writer gathers before it sends them as one part (at least 5 MiB). */
  chunkSize: number;
  /** Undefined leaves it to the bucket (registry:2's `NONE`). */
  storageClass?: string;
  /** Bytes per UploadPartCopy when a large file is copied in parts. */
  copyPartBytes: number;
  /** UploadPartCopy requests in flight at once. */
  copyConcurrency: number;
}

/**
 * A StorageDriver over an S3 bucket (AWS, Ceph RGW, MinIO...). Paths are keys under the root
 * prefix; "directories" are key prefixes. Every file appears whole or not at all: small files are
 * one PutObject, larger ones a multipart upload completed on commit; moves are copies followed by
 * a delete, and concatenation is a multipart upload of server-side copied ranges (small ranges
 * are read and sent again, as S3 wants parts of at least 5 MiB). Nothing here buffers more than a
 * part or two per writer.
 */
export class S3Driver implements StorageDriver {
  readonly name = 's3';
  readonly client: S3Client;
  private readonly prefix: string;

  constructor(private readonly options: S3DriverOptions) {
    if (options.chunkSize < MIN_PART_BYTES || options.chunkSize > MAX_PART_BYTES) throw new Error(`S3 chunk size must be between 5 MiB and 5 GiB, not ${options.chunkSize}`);
    const root = options.rootDirectory.replace(/^\/+|\/+$/g, '');
    this.prefix = root === '' ? '' : `${root}/`;
    this.client = new S3Client(clientConfig(options));
  }

  /** The object key of a path; throws on paths that could leave the root (the contract forbids them). */
  private key(path: string): string {
    if (path.startsWith('/') || path.split('/').some((segment) => segment === '..' || segment === '.')) throw new Error(`invalid storage path: ${path}`);
    return this.prefix + path;
  }

  /** The key prefix of a "directory": everything below it, never names that only start alike. */
  private directoryPrefix(path: string): string {
    return path === '' ? this.prefix : `${this.key(path.replace(/\/+$/, ''))}/`;
  }

  private get bucket(): string {
    return this.options.bucket;
  }

  /** Headers every new object carries: encryption and storage class. */
  private get writeParams(): { ServerSideEncryption?: ServerSideEncryption; SSEKMSKeyId?: string; StorageClass?: StorageClass } {
    return {
      ...(this.options.encrypt ? { ServerSideEncryption: (this.options.keyId ? 'aws:kms' : 'AES256') as ServerSideEncryption } : {}),
      ...(this.options.encrypt && this.options.keyId ? { SSEKMSKeyId: this.options.keyId } : {}),
      ...(this.options.storageClass ? { StorageClass: this.options.storageClass as StorageClass } : {}),
    };
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(path) }));
      return { size: head.ContentLength ?? 0, modifiedAt: head.LastModified ?? new Date(0) };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    const offset = options.offset ?? 0;
    if (options.length === 0) {
      if (!(await this.stat(path))) throw new PathNotFoundError(path);
      return Readable.from([]);
    }
    const range = offset > 0 || options.length !== undefined ? `bytes=${offset}-${options.length !== undefined ? offset + options.length - 1 : ''}` : undefined;
    try {
      // The GET starts now, not on the first read: a reader opened before a move or delete reads
      // the object as it was when opened (S3 serves a GET from one version).
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path), ...(range ? { Range: range } : {}) }));
      if (!(response.Body instanceof Readable)) throw new Error('the S3 client returned a body that is not a Node.js stream');
      return response.Body;
    } catch (error) {
      if (isNotFound(error)) throw new PathNotFoundError(path);
      // A range starting at the end of the file: nothing to read, if the file is there.
      if (httpStatus(error) === 416) {
        if (!(await this.stat(path))) throw new PathNotFoundError(path);
        return Readable.from([]);
      }
      throw error;
    }
  }

  async writer(path: string): Promise<FileWriter> {
    return new S3FileWriter(this.client, { Bucket: this.bucket, Key: this.key(path), ...this.writeParams }, this.options.chunkSize);
  }

  async move(source: string, destination: string): Promise<void> {
    const info = await this.stat(source);
    if (!info) throw new PathNotFoundError(source);
    if (info.size <= MAX_PART_BYTES) {
      try {
        await this.client.send(
          new CopyObjectCommand({ Bucket: this.bucket, Key: this.key(destination), CopySource: this.copySource(source), MetadataDirective: 'COPY', ...this.writeParams }),
        );
      } catch (error) {
        if (isNotFound(error)) throw new PathNotFoundError(source);
        throw error;
      }
    } else {
      await this.concat([{ path: source, length: info.size }], destination);
    }
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(source) }));
  }

  private copySource(path: string): string {
    return `${this.bucket}/${this.key(path).split('/').map(encodeURIComponent).join('/')}`;
  }

  async concat(sources: readonly FileRange[], destination: string): Promise<void> {
    // Every source is checked first, so a missing or short one fails before anything is written.
    const sizes = new Map<string, number>();
    for (const source of sources) {
      if (!sizes.has(source.path)) {
        const info = await this.stat(source.path);
        if (!info) throw new PathNotFoundError(source.path);
        sizes.set(source.path, info.size);
      }
      if (sizes.get(source.path)! < source.length) throw new PathNotFoundError(source.path);
    }
    const ranges = sources.filter((source) => source.length > 0);
    const total = ranges.reduce((sum, range) => sum + range.length, 0);
    if (total < MIN_PART_BYTES) {
      // Too small for a multipart upload of copies: read it (under 5 MiB) and put it whole.
      const pieces: Buffer[] = [];
      for (const range of ranges) pieces.push(await this.readRange(range.path, 0, range.length));
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(destination), Body: Buffer.concat(pieces), ...this.writeParams }));
      return;
    }
    if (ranges.length === 1 && ranges[0]!.length === sizes.get(ranges[0]!.path) && total <= MAX_PART_BYTES) {
      await this.client.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: this.key(destination), CopySource: this.copySource(ranges[0]!.path), MetadataDirective: 'COPY', ...this.writeParams }),
      );
      return;
    }
    const upload = new MultipartUpload(this.client, { Bucket: this.bucket, Key: this.key(destination), ...this.writeParams }, { concurrency: this.options.copyConcurrency, bufferedParts: 2 });
    try {
      // Bytes read from small ranges, waiting to make up a part of at least MIN_PART_BYTES.
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      const flush = async () => {
        const body = Buffer.concat(pending);
        pending = [];
        pendingBytes = 0;
        await upload.part(body);
      };
      for (const range of ranges) {
        let position = 0;
        while (position < range.length) {
          const remaining = range.length - position;
          if (pendingBytes === 0 && remaining >= MIN_PART_BYTES) {
            // Large enough to copy inside the store without its bytes passing through here.
            let length = Math.min(remaining, Math.max(this.options.copyPartBytes, 2 * MIN_PART_BYTES));
            // Never leave a tail that would have to be read when one more copy can take it.
            if (remaining - length > 0 && remaining - length < MIN_PART_BYTES) length = remaining <= MAX_PART_BYTES ? remaining : length - MIN_PART_BYTES;
            await upload.copy(this.copySource(range.path), position, length, range.path);
            position += length;
          } else {
            const length = Math.min(remaining, this.options.chunkSize - pendingBytes);
            pending.push(await this.readRange(range.path, position, length));
            pendingBytes += length;
            position += length;
            if (pendingBytes >= MIN_PART_BYTES) await flush();
          }
        }
      }
      if (pendingBytes > 0) await flush();
      await upload.complete();
    } catch (error) {
      await upload.abort();
      throw error;
    }
  }

  private async readRange(path: string, offset: number, length: number): Promise<Buffer> {
    const stream = await this.reader(path, { offset, length });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
    }
    if (size !== length) throw new PathNotFoundError(path);
    return Buffer.concat(chunks, size);
  }

  async delete(path: string): Promise<void> {
    if (path !== '') await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(path) }));
    let batch: string[] = [];
    const send = async () => {
      const keys = batch;
      batch = [];
      const result = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true } }));
      const failed = (result.Errors ?? []).filter((error) => error.Code !== 'NoSuchKey');
      if (failed.length > 0) throw new Error(`S3 could not delete ${failed.length} objects under ${path}: ${failed[0]!.Code ?? ''} ${failed[0]!.Message ?? ''}`);
    };
    for await (const object of this.objects(this.directoryPrefix(path))) {
      batch.push(object.key);
      if (batch.length === DELETE_BATCH) await send();
    }
    if (batch.length > 0) await send();
  }

  async list(path: string): Promise<string[]> {
    const prefix = this.directoryPrefix(path);
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: '/', ...(token ? { ContinuationToken: token } : {}) }));
      for (const common of page.CommonPrefixes ?? []) if (common.Prefix) names.push(common.Prefix.slice(prefix.length).replace(/\/$/, ''));
      for (const object of page.Contents ?? []) if (object.Key && object.Key !== prefix) names.push(object.Key.slice(prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return names;
  }

  async *walk(prefix: string): AsyncIterable<FileEntry> {
    const keyPrefix = this.directoryPrefix(prefix);
    for await (const object of this.objects(keyPrefix)) {
      yield { path: object.key.slice(this.prefix.length), size: object.size, modifiedAt: object.modifiedAt };
    }
  }

  /** Every object under a key prefix, a page (up to 1000) at a time. */
  private async *objects(prefix: string): AsyncIterable<{ key: string; size: number; modifiedAt: Date }> {
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
      for (const object of page.Contents ?? []) {
        if (object.Key) yield { key: object.Key, size: object.Size ?? 0, modifiedAt: object.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async redirectURL(path: string, options: { expiresInSeconds: number }): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.key(path) }), { expiresIn: options.expiresInSeconds });
  }

  /** Whether the bucket answers to these credentials (one listing of at most one key); throws otherwise. */
  async probe(): Promise<void> {
    await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }));
  }

  /** Closes the client's idle connections. */
  close(): void {
    this.client.destroy();
  }
}

function clientConfig(options: S3DriverOptions): S3ClientConfig {
  let endpoint = options.endpoint;
  if (endpoint !== undefined && endpoint !== '' && !/^https?:\/\//i.test(endpoint)) endpoint = `${options.secure ? 'https' : 'http'}://${endpoint}`;
  if ((endpoint === undefined || endpoint === '') && !options.secure) endpoint = `http://s3.${options.region}.amazonaws.com`;
  const agentOptions = { keepAlive: true, maxSockets: 128 };
  return {
    region: options.region,
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: options.forcePathStyle,
    ...(options.accessKey && options.secretKey
      ? { credentials: { accessKeyId: options.accessKey, secretAccessKey: options.secretKey, ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}) } }
      : {}),
    // Checksums only where S3 requires them: stores other than AWS (RGW, older MinIO) do not all
    // take the newer flexible checksums, and TLS and SigV4 already cover the bytes in transit.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent({ ...agentOptions, rejectUnauthorized: !options.skipVerify }),
      // A store that stops answering fails the request (and the client's) instead of holding it
      // forever; the idle limit is generous because a large server-side copy answers only when done.
      connectionTimeout: 10_000,
      requestTimeout: 5 * 60_000,
    },
  };
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

/** A missing key (HEAD answers a bare 404, GET NoSuchKey); a missing bucket is a real failure. */
function isNotFound(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  if (name === 'NoSuchBucket') return false;
  return name === 'NotFound' || name === 'NoSuchKey' || httpStatus(error) === 404;
}

interface ObjectTarget {
  Bucket: string;
  Key: string;
  ServerSideEncryption?: ServerSideEncryption;
  SSEKMSKeyId?: string;
  StorageClass?: StorageClass;
}

/**
 * A multipart upload whose parts are numbered in the order they are given and may be sent
 * concurrently: up to `concurrency` copies inside the store, and up to `bufferedParts` parts of
 * bytes held here. The object appears only on `complete`.
 */
class MultipartUpload {
  private uploadId: Promise<string> | undefined;
  private readonly parts: CompletedPart[] = [];
  private readonly copies = new Set<Promise<void>>();
  private readonly sends = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly client: S3Client,
    private readonly target: ObjectTarget,
    private readonly limits: { concurrency: number; bufferedParts: number },
  ) {}

  private start(): Promise<string> {
    this.uploadId ??= this.client.send(new CreateMultipartUploadCommand(this.target)).then((created) => {
      if (!created.UploadId) throw new Error('S3 started a multipart upload without an upload id');
      return created.UploadId;
    });
    return this.uploadId;
  }

  get started(): boolean {
    return this.uploadId !== undefined;
  }

  /** Sends the next part's bytes (the caller gives `body` up); waits while too many are in flight. */
  async part(body: Buffer): Promise<void> {
    const number = this.nextPart();
    await this.track(this.sends, this.limits.bufferedParts, async () => {
      const sent = await this.client.send(new UploadPartCommand({ Bucket: this.target.Bucket, Key: this.target.Key, UploadId: await this.start(), PartNumber: number, Body: body }));
      this.parts[number - 1]!.ETag = sent.ETag;
    });
  }

  /** The next part, copied inside the store from `length` bytes of `source` at `offset`. */
  async copy(source: string, offset: number, length: number, path: string): Promise<void> {
    const number = this.nextPart();
    await this.track(this.copies, this.limits.concurrency, async () => {
      try {
        const copied = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.target.Bucket,
            Key: this.target.Key,
            UploadId: await this.start(),
            PartNumber: number,
            CopySource: source,
            CopySourceRange: `bytes=${offset}-${offset + length - 1}`,
          }),
        );
        this.parts[number - 1]!.ETag = copied.CopyPartResult?.ETag;
      } catch (error) {
        throw isNotFound(error) || httpStatus(error) === 416 ? new PathNotFoundError(path) : error;
      }
    });
  }

  private nextPart(): number {
    if (this.failure) throw this.failure.error;
    this.parts.push({ PartNumber: this.parts.length + 1 });
    return this.parts.length;
  }

  private async track(group: Set<Promise<void>>, limit: number, send: () => Promise<void>): Promise<void> {
    const running: Promise<void> = send().then(
      () => void group.delete(running),
      (error: unknown) => {
        group.delete(running);
        this.failure ??= { error };
      },
    );
    group.add(running);
    while (group.size >= limit) await Promise.race(group);
    if (this.failure) throw this.failure.error;
  }

  async complete(): Promise<void> {
    await Promise.all([...this.copies, ...this.sends]);
    if (this.failure) throw this.failure.error;
    await this.client.send(
      new CompleteMultipartUploadCommand({ Bucket: this.target.Bucket, Key: this.target.Key, UploadId: await this.start(), MultipartUpload: { Parts: this.parts } }),
    );
  }

  /** Drops the parts sent so far; never throws (it runs on the failure path). */
  async abort(): Promise<void> {
    await Promise.allSettled([...this.copies, ...this.sends]);
    if (!this.uploadId) return;
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.target.Bucket, Key: this.target.Key, UploadId: await this.uploadId }));
    } catch {
      // Nothing was started, or S3 is unreachable: an abandoned upload is left to the bucket's lifecycle rule.
    }
  }
}

/** The first buffer of a writer; it doubles up to the chunk size, so small files stay small. */
const FIRST_BUFFER_BYTES = 64 * 1024;

/**
 * Gathers written bytes into parts of `chunkSize`: a file that stays smaller is one PutObject on
 * commit; a larger one becomes a multipart upload, each full part sent while the next one is
 * gathered (so at most two parts are held), completed on commit. Each byte is copied once, into
 * the part buffer, so the caller may reuse its chunk when `write` resolves.
 */
class S3FileWriter implements FileWriter {
  private written = 0;
  private buffer = Buffer.alloc(0);
  private filled = 0;
  private readonly upload: MultipartUpload;
  private state: 'open' | 'committed' | 'cancelled' = 'open';

  constructor(
    private readonly client: S3Client,
    private readonly target: ObjectTarget,
    private readonly chunkSize: number,
  ) {
    this.upload = new MultipartUpload(client, target, { concurrency: 1, bufferedParts: 2 });
  }

  get size(): number {
    return this.written;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.state !== 'open') throw new Error(`write after ${this.state}`);
    let offset = 0;
    while (offset < chunk.length) {
      if (this.filled === this.buffer.length) {
        if (this.buffer.length === this.chunkSize) await this.sendPart();
        else this.grow();
      }
      const length = Math.min(chunk.length - offset, this.buffer.length - this.filled);
      chunk.copy(this.buffer, this.filled, offset, offset + length);
      this.filled += length;
      offset += length;
      this.written += length;
    }
    if (this.filled === this.chunkSize) await this.sendPart();
  }

  private grow(): void {
    const size = Math.min(this.chunkSize, Math.max(FIRST_BUFFER_BYTES, this.buffer.length * 2));
    const larger = Buffer.allocUnsafe(size);
    this.buffer.copy(larger, 0, 0, this.filled);
    this.buffer = larger;
  }

  private async sendPart(): Promise<void> {
    const body = this.buffer.subarray(0, this.filled);
    // The next part will be full-sized too: no need to grow into it.
    this.buffer = Buffer.allocUnsafe(this.chunkSize);
    this.filled = 0;
    await this.upload.part(body);
  }

  async commit(): Promise<void> {
    if (this.state !== 'open') throw new Error(`commit after ${this.state}`);
    try {
      if (!this.upload.started && this.written < this.chunkSize) {
        await this.client.send(new PutObjectCommand({ ...this.target, Body: this.buffer.subarray(0, this.filled) }));
      } else {
        if (this.filled > 0) await this.sendPart();
        await this.upload.complete();
      }
      this.state = 'committed';
    } catch (error) {
      await this.cancel();
      throw error;
    } finally {
      this.buffer = Buffer.alloc(0);
      this.filled = 0;
    }
  }

  async cancel(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'cancelled';
    this.buffer = Buffer.alloc(0);
    this.filled = 0;
    await this.upload.abort();
  }
}
