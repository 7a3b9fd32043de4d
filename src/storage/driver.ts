import type { Readable } from 'node:stream';

/**
 * A path-keyed byte store: everything content addressing, upload sessions and
 * verification need, and nothing more. Paths are relative, `/`-separated, never
 * contain `..`, and are built only by the blob store (never from client input).
 */
export interface StorageDriver {
  /** Short name for logs and metrics: `filesystem`, `s3`. */
  readonly name: string;
  /** Size and time of a file; undefined when there is none. */
  stat(path: string): Promise<FileInfo | undefined>;
  /**
   * A stream of the file's bytes from `offset` (default 0), `length` bytes long (default: to the end).
   * Throws PathNotFoundError when there is no file. Destroying the stream releases the file.
   */
  reader(path: string, options?: ReadOptions): Promise<Readable>;
  /**
   * Opens a file for writing. With `resumeAt`, keeps the first `resumeAt` bytes of an existing file
   * and discards the rest (the tail of a write cut off mid-way); without it, starts empty.
   * Throws PathNotFoundError when resuming a file that is not there or is shorter than `resumeAt`.
   */
  writer(path: string, options?: WriteOptions): Promise<FileWriter>;
  /** Moves a file, replacing the destination; durable when it returns. */
  move(source: string, destination: string): Promise<void>;
  /** Deletes a file or a whole directory tree; absent paths are not an error. */
  delete(path: string): Promise<void>;
  /** Names (not paths) of the direct children of a directory; empty when there is none. */
  list(path: string): Promise<string[]>;
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

export interface ReadOptions {
  offset?: number;
  length?: number;
}

export interface WriteOptions {
  resumeAt?: number;
}

/**
 * A file being written. Call exactly one of commit, close or cancel; cancel may follow a failed
 * commit or close, so it belongs in a finally.
 */
export interface FileWriter {
  /** Bytes in the file so far, including those kept when resuming. */
  readonly size: number;
  /** Resolves once the chunk is accepted; waits when too much is still in flight (backpressure). */
  write(chunk: Buffer): Promise<void>;
  /** Writes out everything and makes it durable (fsync). */
  commit(): Promise<void>;
  /** Writes out everything and makes it durable, keeping the file for a later resume. */
  close(): Promise<void>;
  /** Stops and removes the file. */
  cancel(): Promise<void>;
}

export class PathNotFoundError extends Error {
  constructor(readonly path: string) {
    super(`storage path not found: ${path}`);
    this.name = 'PathNotFoundError';
  }
}
