import { constants } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { FileRangeStream } from './file-range-stream.js';
import { PathNotFoundError, type FileInfo, type FileWriter, type ReadOptions, type StorageDriver, type WriteOptions } from './driver.js';

/** Bytes read per chunk when streaming a file out: large enough that socket writes stay cheap. */
const READ_CHUNK = 1024 * 1024;
/** Bytes a writer queues before write() waits: bounds memory per upload (plus the batch being written). */
const WRITE_HIGH_WATER = 256 * 1024;
/** Bytes written between background datasyncs (see FilesystemFileWriter). */
const SYNC_EVERY = 16 * 1024 * 1024;

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Files under one root directory; every write is fsynced before it counts. */
export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  private full(path: string): string {
    const full = resolve(this.root, path);
    if (full !== this.root && !full.startsWith(this.root + sep)) throw new Error(`path escapes the storage root: ${path}`);
    return full;
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    try {
      const info = await stat(this.full(path));
      return { size: info.size, modifiedAt: info.mtime };
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async reader(path: string, options: ReadOptions = {}): Promise<Readable> {
    let handle: FileHandle;
    try {
      handle = await open(this.full(path), constants.O_RDONLY);
    } catch (error) {
      if (isMissing(error)) throw new PathNotFoundError(path);
      throw error;
    }
    if (options.length === 0) {
      await handle.close();
      return Readable.from([]);
    }
    const start = options.offset ?? 0;
    // The stream owns the handle and closes it when it ends or is destroyed.
    return new FileRangeStream(handle, start, options.length, READ_CHUNK);
  }

  async writer(path: string, options: WriteOptions = {}): Promise<FileWriter> {
    const full = this.full(path);
    let handle: FileHandle;
    let size = 0;
    if (options.resumeAt !== undefined) {
      try {
        handle = await open(full, 'r+');
      } catch (error) {
        if (isMissing(error)) throw new PathNotFoundError(path);
        throw error;
      }
      const info = await handle.stat();
      if (info.size < options.resumeAt) {
        await handle.close();
        throw new PathNotFoundError(path);
      }
      if (info.size > options.resumeAt) await handle.truncate(options.resumeAt);
      size = options.resumeAt;
    } else {
      await mkdir(dirname(full), { recursive: true });
      handle = await open(full, 'w');
    }
    return new FilesystemFileWriter(handle, full, size);
  }

  async move(source: string, destination: string): Promise<void> {
    const from = this.full(source);
    const to = this.full(destination);
    await mkdir(dirname(to), { recursive: true });
    try {
      await rename(from, to);
    } catch (error) {
      if (isMissing(error)) throw new PathNotFoundError(source);
      throw error;
    }
    await syncDirectory(dirname(to));
  }

  async delete(path: string): Promise<void> {
    await rm(this.full(path), { recursive: true, force: true });
  }

  async list(path: string): Promise<string[]> {
    try {
      return await readdir(this.full(path));
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }
}

/** A rename is durable only once its directory is. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Queues chunks and writes them in batches (writev) while the producer goes on reading: while one
 * batch is being written in the thread pool, the next fills up, so hashing on the main thread and
 * disk writes overlap. Every SYNC_EVERY bytes a datasync starts in the background, so the disk
 * writes the file out as it arrives and the final, blocking datasync has little left to do.
 */
class FilesystemFileWriter implements FileWriter {
  size: number;
  private position: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> | undefined;
  /** Producers waiting for the queue to drop below the high-water mark. */
  private waiters: Array<() => void> = [];
  private unsyncedBytes = 0;
  private syncing: Promise<void> | undefined;
  private failure: Error | undefined;
  private finished = false;

  constructor(
    private readonly handle: FileHandle,
    private readonly path: string,
    size: number,
  ) {
    this.size = size;
    this.position = size;
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.finished) throw new Error('write after the writer finished');
    if (chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.size += chunk.length;
    this.writing ??= this.drain();
    while (this.pendingBytes >= WRITE_HIGH_WATER && !this.failure) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.failure) throw this.failure;
  }

  /** Writes batches until the queue is empty; one batch at a time, in order. */
  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        this.pendingBytes = 0;
        this.wake();
        let buffers = batch;
        while (buffers.length > 0) {
          const { bytesWritten } = await this.handle.writev(buffers, this.position);
          this.position += bytesWritten;
          this.unsyncedBytes += bytesWritten;
          buffers = dropWritten(buffers, bytesWritten);
        }
        if (this.unsyncedBytes >= SYNC_EVERY && !this.syncing) this.startSync();
      }
    } catch (error) {
      this.failure = error as Error;
    } finally {
      this.writing = undefined;
      this.wake();
    }
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** An early datasync, overlapping further writes; only its failure matters (close syncs again). */
  private startSync(): void {
    this.unsyncedBytes = 0;
    this.syncing = this.handle.datasync().then(
      () => {
        this.syncing = undefined;
      },
      (error: unknown) => {
        this.failure ??= error as Error;
        this.syncing = undefined;
      },
    );
  }

  private async flush(): Promise<void> {
    while (this.writing || this.syncing) await Promise.all([this.writing, this.syncing]);
    if (this.failure) throw this.failure;
  }

  async commit(): Promise<void> {
    await this.close();
  }

  async close(): Promise<void> {
    if (this.finished) return;
    try {
      await this.flush();
      await this.handle.datasync();
    } finally {
      this.finished = true;
      await this.handle.close().catch(() => undefined);
    }
  }

  async cancel(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    while (this.writing || this.syncing) await Promise.all([this.writing, this.syncing]);
    if (!this.finished) {
      this.finished = true;
      await this.handle.close().catch(() => undefined);
    }
    await rm(this.path, { force: true });
  }
}

function dropWritten(buffers: Buffer[], written: number): Buffer[] {
  let rest = written;
  let index = 0;
  while (index < buffers.length && rest >= buffers[index]!.length) {
    rest -= buffers[index]!.length;
    index += 1;
  }
  const remaining = buffers.slice(index);
  if (rest > 0 && remaining.length > 0) remaining[0] = remaining[0]!.subarray(rest);
  return remaining;
}

