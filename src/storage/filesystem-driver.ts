import { closeSync, constants, createReadStream, fsyncSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { FileRangeStream } from './file-range-stream.js';
import { PathNotFoundError, type FileEntry, type FileInfo, type FileRange, type FileWriter, type ReadOptions, type StorageDriver } from './driver.js';

/** Bytes read per chunk when streaming a file out: large enough that socket writes stay cheap. */
const READ_CHUNK = 1024 * 1024;
/** Bytes a writer queues before write() waits: bounds memory per upload (plus the batch being written). */
const WRITE_HIGH_WATER = 256 * 1024;
/** Bytes written between background datasyncs (see FilesystemFileWriter). */
const SYNC_EVERY = 16 * 1024 * 1024;
/** Files being written live here until their commit renames them into place. */
const TEMPORARY_DIRECTORY = '.tmp';
/** Unlinks in flight in deleteMany. */
const UNLINK_LANES = 32;
const ABANDONED_TEMPORARY_MS = 60 * 60_000;

/** What `hasRoomToWrite` writes: enough to need a fresh block, small enough to cost nothing. */
const ROOM_PROBE_BYTES = 64 * 1024;

/**
 * Whether a small file can be written and fsynced under `root` now: false on ENOSPC or EDQUOT.
 * Opening SQLite is no test of a full disk when its shared-memory file is left from a previous
 * run, so the server asks this at start. Synchronous: it runs once, before serving.
 */
export function hasRoomToWrite(root: string, isFull: (error: unknown) => boolean): boolean {
  const directory = join(resolve(root), TEMPORARY_DIRECTORY);
  const path = join(directory, `room-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  let fd: number | undefined;
  try {
    mkdirSync(directory, { recursive: true });
    fd = openSync(path, 'w');
    writeSync(fd, Buffer.alloc(ROOM_PROBE_BYTES));
    fsyncSync(fd);
    return true;
  } catch (error) {
    if (isFull(error)) return false;
    throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
    rmSync(path, { force: true });
  }
}

/**
 * Writes, fsyncs and removes a small file under `root` without blocking the event loop, for
 * readiness probes; throws what the file system said (ENOSPC, EROFS, EACCES...).
 */
export async function probeWrite(root: string): Promise<void> {
  const directory = join(resolve(root), TEMPORARY_DIRECTORY);
  const path = join(directory, `ready-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  let handle: FileHandle | undefined;
  try {
    await mkdir(directory, { recursive: true });
    handle = await open(path, 'w');
    await handle.write(Buffer.alloc(ROOM_PROBE_BYTES));
    await handle.sync();
  } finally {
    await handle?.close();
    await rm(path, { force: true });
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Files under one root directory; every write is fsynced before it counts. */
export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly local = true;
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    void this.removeAbandonedTemporaryFiles();
  }

  /**
   * Temporary files of writes that a crash cut off. A live writer touches its file at least every
   * few minutes (idle connections are cut after five), so an hour untouched means abandoned.
   */
  private async removeAbandonedTemporaryFiles(): Promise<void> {
    const directory = join(this.root, TEMPORARY_DIRECTORY);
    const cutoff = Date.now() - ABANDONED_TEMPORARY_MS;
    try {
      for (const name of await readdir(directory)) {
        const path = join(directory, name);
        const info = await stat(path).catch(() => undefined);
        if (info && info.mtimeMs < cutoff) await rm(path, { force: true });
      }
    } catch {
      // Nothing to clean, or not now: the next start tries again.
    }
  }

  private full(path: string): string {
    const full = resolve(this.root, path);
    if (full !== this.root && !full.startsWith(this.root + sep)) throw new Error(`path escapes the storage root: ${path}`);
    return full;
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    try {
      const info = await stat(this.full(path));
      // A directory is a prefix of other paths, as in an object store, not a file.
      if (!info.isFile()) return undefined;
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
    if (!(await handle.stat()).isFile()) {
      await handle.close();
      throw new PathNotFoundError(path);
    }
    if (options.length === 0) {
      await handle.close();
      return Readable.from([]);
    }
    const start = options.offset ?? 0;
    // The stream owns the handle and closes it when it ends or is destroyed.
    return new FileRangeStream(handle, start, options.length, READ_CHUNK);
  }

  async writer(path: string): Promise<FileWriter> {
    const full = this.full(path);
    // Written beside the root under a unique name and renamed into place on commit, so a reader
    // of `path` sees the old file or the whole new one, never a part.
    const temporary = join(this.root, TEMPORARY_DIRECTORY, `${randomBytes(12).toString('hex')}`);
    await mkdir(dirname(temporary), { recursive: true });
    const handle = await open(temporary, 'wx');
    return new FilesystemFileWriter(handle, { temporary, destination: full });
  }

  async appender(path: string, offset: number): Promise<FileWriter> {
    let handle: FileHandle;
    try {
      handle = await open(this.full(path), constants.O_RDWR);
    } catch (error) {
      if (isMissing(error)) throw new PathNotFoundError(path);
      throw error;
    }
    try {
      if ((await handle.stat()).size < offset) throw new PathNotFoundError(path);
      await handle.truncate(offset);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return new FilesystemFileWriter(handle, { offset });
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

  async adopt(source: string, destination: string): Promise<'linked' | 'copied'> {
    const to = this.full(destination);
    await mkdir(dirname(to), { recursive: true });
    try {
      await rm(to, { force: true });
      await link(source, to);
      await syncDirectory(dirname(to));
      return 'linked';
    } catch (error) {
      if (isMissing(error)) throw new PathNotFoundError(source);
      // EXDEV: another filesystem; EPERM and others: links not allowed there. Copy once instead.
    }
    const writer = await this.writer(destination);
    try {
      for await (const chunk of createReadStream(source, { highWaterMark: READ_CHUNK }) as AsyncIterable<Buffer>) await writer.write(chunk);
      await writer.commit();
    } catch (error) {
      await writer.cancel();
      if (isMissing(error)) throw new PathNotFoundError(source);
      throw error;
    }
    return 'copied';
  }

  async concat(sources: readonly FileRange[], destination: string): Promise<void> {
    const writer = await this.writer(destination);
    try {
      for (const source of sources) {
        if (source.length === 0) continue;
        const stream = await this.reader(source.path, { offset: 0, length: source.length });
        let copied = 0;
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          copied += chunk.length;
          await writer.write(chunk);
        }
        if (copied !== source.length) throw new PathNotFoundError(source.path);
      }
      await writer.commit();
    } catch (error) {
      await writer.cancel();
      throw error;
    }
  }

  async delete(path: string): Promise<void> {
    const full = this.full(path);
    // Most deletes are of one blob file: one unlink, without rm's lstat first.
    try {
      await unlink(full);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EISDIR' && code !== 'EPERM') throw error;
    }
    await rm(full, { recursive: true, force: true });
  }

  /**
   * Many unlinks in flight: freeing a file's blocks waits on the filesystem journal, which other
   * writers (fsyncs) hold often, so overlapping the waits is what makes a batch fast; the thread
   * pool bounds how many really run at once.
   */
  async deleteMany(paths: readonly string[]): Promise<void> {
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < paths.length) await this.delete(paths[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(UNLINK_LANES, paths.length) }, lane));
  }

  async list(path: string): Promise<string[]> {
    const full = this.full(path);
    try {
      const names = await readdir(full);
      return full === this.root ? names.filter((name) => name !== TEMPORARY_DIRECTORY) : names;
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
  }

  async *walk(prefix: string): AsyncIterable<FileEntry> {
    const start = this.full(prefix);
    const pending = [start];
    while (pending.length > 0) {
      const directory = pending.pop()!;
      let entries;
      try {
        entries = await readdir(directory, { withFileTypes: true });
      } catch (error) {
        if (isMissing(error)) continue;
        throw error;
      }
      for (const entry of entries) {
        const full = join(directory, entry.name);
        if (entry.isDirectory()) {
          if (full !== join(this.root, TEMPORARY_DIRECTORY)) pending.push(full);
          continue;
        }
        if (!entry.isFile()) continue;
        let info;
        try {
          info = await stat(full);
        } catch (error) {
          if (isMissing(error)) continue;
          throw error;
        }
        yield { path: relative(this.root, full).split(sep).join('/'), size: info.size, modifiedAt: info.mtime };
      }
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
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private writing: Promise<void> | undefined;
  /** Producers waiting for the queue to drop below the high-water mark. */
  private waiters: Array<() => void> = [];
  private unsyncedBytes = 0;
  private syncing: Promise<void> | undefined;
  private failure: Error | undefined;
  private finished = false;

  size = 0;
  private position: number;

  constructor(
    private readonly handle: FileHandle,
    /**
     * A new file: written at `temporary`, renamed to `destination` on commit. Or an existing file
     * continued from `offset`: written in place, cut back to `offset` on cancel.
     */
    private readonly target: { temporary: string; destination: string } | { offset: number },
  ) {
    this.position = 'offset' in target ? target.offset : 0;
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
    if (this.finished) throw new Error('commit after the writer finished');
    try {
      await this.flush();
      await this.handle.datasync();
    } finally {
      this.finished = true;
      await this.handle.close().catch(() => undefined);
    }
    if ('offset' in this.target) return;
    const { temporary, destination } = this.target;
    await mkdir(dirname(destination), { recursive: true });
    await rename(temporary, destination);
    await syncDirectory(dirname(destination));
  }

  async cancel(): Promise<void> {
    this.pending = [];
    this.pendingBytes = 0;
    while (this.writing || this.syncing) await Promise.all([this.writing, this.syncing]);
    if ('offset' in this.target) {
      if (!this.finished) await this.handle.truncate(this.target.offset).catch(() => undefined);
    }
    if (!this.finished) {
      this.finished = true;
      await this.handle.close().catch(() => undefined);
    }
    if ('temporary' in this.target) await rm(this.target.temporary, { force: true });
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

