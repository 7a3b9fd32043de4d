import type { Readable } from 'node:stream';

/**
 * A path-keyed byte store shaped like an object store: whole files are written once and never
 * changed in place (no truncation; appending only where a driver offers `appender`), then moved,
 * concatenated, read, walked and deleted. That is everything content addressing, upload sessions and verification need, and a
 * filesystem and S3 can both do it. Paths are relative, `/`-separated, never contain `..`, and are
 * built only by the blob store (never from client input).
 */
export interface StorageDriver {
  /** Short name for logs and metrics: `filesystem`, `s3`. */
  readonly name: string;
  /**
   * Whether the files are on this host's disk, so reading one back costs a page-cache read
   * rather than a network transfer. Uploads on a local driver keep their running hash in the
   * process (fast) instead of saving it after every chunk for other replicas (see BlobStore).
   */
  readonly local?: boolean;
  /** Size and time of a file; undefined when there is none. */
  stat(path: string): Promise<FileInfo | undefined>;
  /**
   * A stream of the file's bytes from `offset` (default 0), `length` bytes long (default: to the end).
   * Throws PathNotFoundError when there is no file. Destroying the stream releases the file.
   */
  reader(path: string, options?: ReadOptions): Promise<Readable>;
  /**
   * Starts a new file at `path`, replacing any there once committed. Until `commit` resolves the
   * file may be absent or partial, so a caller publishes the path (in metadata) only afterwards.
   */
  writer(path: string): Promise<FileWriter>;
  /**
   * Continues an existing file at byte `offset`: whatever the file holds beyond `offset` is cut
   * first, and `commit` makes the new bytes durable in place; `cancel` cuts them again, leaving
   * the first `offset` bytes as they were. The first `offset` bytes are never touched, so readers
   * of only that much see no change. Only one writer may continue a file at a time: the caller
   * ensures it. Optional (a filesystem can; an object store cannot change a written object).
   * Throws PathNotFoundError when there is no file or it is shorter than `offset`.
   */
  appender?(path: string, offset: number): Promise<FileWriter>;
  /** Moves a file, replacing the destination; durable when it returns. Throws PathNotFoundError. */
  move(source: string, destination: string): Promise<void>;
  /**
   * Writes `destination` as the given byte ranges of other files, in order (S3: a multipart upload
   * of copied parts). The destination appears whole or not at all, replacing any file there, and
   * is durable when this resolves; the sources are left as they are. Throws PathNotFoundError when
   * a source is missing or shorter than its range.
   */
  concat(sources: readonly FileRange[], destination: string): Promise<void>;
  /** Deletes a file or a whole directory tree; absent paths are not an error. */
  delete(path: string): Promise<void>;
  /**
   * Deletes many files (not directories) at once, as `delete` would one by one; absent paths are
   * not an error. Optional: object stores delete up to a thousand keys in one request, and the
   * filesystem saves a thread-pool round trip per file. Without it, callers call `delete`.
   */
  deleteMany?(paths: readonly string[]): Promise<void>;
  /** Names (not paths) of the direct children of a directory; empty when there is none. */
  list(path: string): Promise<string[]>;
  /**
   * Every file under `prefix` (recursively), in no particular order, with its size and time;
   * nothing when the prefix does not exist. Files written or deleted during the walk may or may
   * not appear.
   */
  walk(prefix: string): AsyncIterable<FileEntry>;
  /**
   * Makes the file at `source`, an absolute path outside the store that is left as it is, the
   * file at `destination`: a hard link when both are on one filesystem (no bytes copied), else a
   * copy. Durable when it resolves. Throws PathNotFoundError when `source` is missing. Optional:
   * without it, callers stream the file through `writer`.
   */
  adopt?(source: string, destination: string): Promise<'linked' | 'copied'>;
  /**
   * A URL from which a client may GET the file directly for a while (S3's presigned URLs), or
   * undefined when this driver serves bytes only through `reader`. Optional.
   */
  redirectURL?(path: string, options: { expiresInSeconds: number }): Promise<string | undefined>;
  /**
   * Checks that the store answers and accepts this driver's credentials (S3: one listing of the
   * bucket); throws with the store's reason otherwise. Optional: the server checks a filesystem
   * root by writing a file.
   */
  probe?(): Promise<void>;
}

/**
 * Where `SendableStream.sendTo` writes: takes a chunk and resolves once the chunk has been handed
 * on (to the kernel, for a socket), so its buffer may be overwritten; rejects when the
 * destination has gone away.
 */
export type ChunkSink = (chunk: Buffer) => Promise<void>;

/** A stream a driver may return from `reader` that can also copy itself out without allocating per chunk. */
export interface SendableStream extends Readable {
  sendTo(sink: ChunkSink): Promise<void>;
}

export function isSendable(stream: Readable): stream is SendableStream {
  return typeof (stream as Partial<SendableStream>).sendTo === 'function';
}

export interface FileInfo {
  size: number;
  modifiedAt: Date;
}

export interface FileEntry extends FileInfo {
  path: string;
}

export interface ReadOptions {
  offset?: number;
  length?: number;
}

/** The first `length` bytes of the file at `path`. */
export interface FileRange {
  path: string;
  length: number;
}

/**
 * A file being written. Call exactly one of commit or cancel; cancel may follow a failed commit,
 * so it belongs in a finally.
 */
export interface FileWriter {
  /** Bytes written so far. */
  readonly size: number;
  /** Resolves once the chunk is accepted; waits when too much is still in flight (backpressure). */
  write(chunk: Buffer): Promise<void>;
  /** Writes out everything and makes the file durable (fsync). */
  commit(): Promise<void>;
  /** Stops and removes the file. */
  cancel(): Promise<void>;
}

export class PathNotFoundError extends Error {
  constructor(readonly path: string) {
    super(`storage path not found: ${path}`);
    this.name = 'PathNotFoundError';
  }
}
