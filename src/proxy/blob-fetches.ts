import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryError } from '../errors/index.js';
import { digestParts, type Digest } from '../oci/digest.js';

/**
 * How often a reader in another process than the download's, once caught up, looks for more
 * bytes (readers in the download's own process are woken when bytes arrive: they never poll).
 */
const FOLLOW_POLL_MS = 4;
/** A fetch whose file has not grown for this long is taken to be dead (its process crashed). */
const STALLED_MS = 60_000;
/** How long a reader waits for the upstream to answer a fetch another request started. */
const ANSWER_PATIENCE_MS = 60_000;
/**
 * How long the outcome of a finished fetch stays readable for readers still sending it (a slow
 * client on a large blob); after that a reader asks the cache instead (`isKept`).
 */
const OUTCOME_KEPT_MS = 15 * 60_000;
const READ_CHUNK = 1024 * 1024;
/**
 * The latest bytes of a download kept in memory for the readers of its process that keep up: they
 * send them as they arrive instead of reading them back from the file. Readers further behind
 * read the file, so a slow client never holds more of the blob in memory than this.
 */
const RECENT_BYTES = 8 * 1024 * 1024;
/** Bytes received and waiting to be written to the data file before the upstream is read slower. */
const WRITE_BACKLOG_BYTES = 4 * 1024 * 1024;
/** Readers that caught up are woken when this many bytes have arrived since, or after WAKE_DELAY_MS. */
const WAKE_BYTES = 512 * 1024;
const WAKE_DELAY_MS = 2;

/** Tuning for the tests. */
export interface BlobFetchesOptions {
  /** How often readers in other processes poll the data file (FOLLOW_POLL_MS). */
  pollMs?: number;
}

/** What the process that fetches a blob does with it: the upstream response, then keeping it. */
export interface BlobSource {
  /** Opens the upstream's bytes; undefined when the upstream does not have the blob. */
  open(signal: AbortSignal): Promise<{ size: number; body: AsyncIterable<Buffer> & { destroy(): void } } | undefined>;
  /**
   * Makes the verified file the cached blob (it may be hard-linked away; it is removed after).
   */
  keep(path: string): Promise<void>;
}

/** Why a fetch failed, as readers learn it from the outcome file. */
interface Outcome {
  ok: boolean;
  /** The OCI code for the client: BLOB_UNKNOWN (404 upstream) or UNAVAILABLE. */
  code?: 'BLOB_UNKNOWN' | 'UNAVAILABLE';
  message?: string;
}

/**
 * A download this process runs, as the readers of this process follow it: told of each chunk as it
 * arrives (no polling, no reading of the claim files), they send the latest bytes from memory and
 * read older ones from the data file.
 */
class LiveFetch {
  size: number | undefined;
  /** Bytes received from the upstream so far. */
  received = 0;
  /** Bytes in the data file so far (a reader behind the chunks in memory reads them there). */
  written = 0;
  outcome: Outcome | undefined;
  /** Resolves once the download is over: kept or cleaned up, its claim released. */
  over: Promise<void> = Promise.resolve();
  /** Resolves with the size once the upstream answered and the data file exists. */
  readonly answered: Promise<number>;
  /** Resolves with the outcome once the bytes are verified (or the download failed). */
  readonly settled: Promise<Outcome>;
  private resolveAnswer!: (size: number) => void;
  private rejectAnswer!: (error: Error) => void;
  private resolveSettled!: (outcome: Outcome) => void;
  /** The latest chunks, oldest first, each with its offset in the blob. */
  private recent: Array<{ offset: number; chunk: Buffer }> = [];
  private recentBytes = 0;
  private wakers: Array<() => void> = [];
  /** Bytes received when the readers were last woken. */
  private wokenAt = 0;
  private wakeTimer: NodeJS.Timeout | undefined;

  constructor() {
    this.answered = new Promise<number>((resolve, reject) => {
      this.resolveAnswer = resolve;
      this.rejectAnswer = reject;
    });
    // A download nobody waits for the answer of (every reader left) must not be an unhandled rejection.
    this.answered.catch(() => undefined);
    this.settled = new Promise<Outcome>((resolve) => (this.resolveSettled = resolve));
  }

  answer(size: number): void {
    this.size = size;
    this.resolveAnswer(size);
  }

  /**
   * A chunk from the upstream. The first wakes the readers at once (the client's first byte);
   * later ones when WAKE_BYTES have gathered, or after WAKE_DELAY_MS: a reader sends bigger
   * writes, and is not woken for every socket read.
   */
  receive(chunk: Buffer): void {
    this.recent.push({ offset: this.received, chunk });
    this.recentBytes += chunk.length;
    this.received += chunk.length;
    this.trim();
    if (this.received - this.wokenAt >= WAKE_BYTES || this.wokenAt === 0) this.wake();
    else this.wakeSoon();
  }

  wrote(bytes: number): void {
    this.written = bytes;
    this.trim();
  }

  settle(outcome: Outcome): void {
    if (this.outcome) return;
    this.outcome = outcome;
    this.recent = [];
    this.recentBytes = 0;
    if (!outcome.ok) this.rejectAnswer(failure(outcome));
    this.resolveSettled(outcome);
    this.wake();
  }

  /**
   * The bytes from `position` on (up to `end`, at most READ_CHUNK) when they are still in memory,
   * as the chunks they arrived in (no copies: the response writes them out together).
   */
  bytesAt(position: number, end: number): Buffer[] | undefined {
    const first = this.recent[0];
    if (!first || position < first.offset || position >= this.received) return undefined;
    const last = Math.min(end, position + READ_CHUNK);
    const pieces: Buffer[] = [];
    for (const { offset, chunk } of this.recent) {
      if (offset + chunk.length <= position) continue;
      if (offset >= last) break;
      pieces.push(chunk.subarray(Math.max(0, position - offset), Math.min(chunk.length, last - offset)));
    }
    return pieces;
  }

  /** Resolves when something happens to the download (bytes, an outcome), or after `ms`. */
  changed(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wakers.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private wakeSoon(): void {
    if (this.wakeTimer || this.wakers.length === 0) return;
    this.wakeTimer = setTimeout(() => this.wake(), WAKE_DELAY_MS);
  }

  private wake(): void {
    clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.wokenAt = this.received;
    if (this.wakers.length === 0) return;
    const wakers = this.wakers;
    this.wakers = [];
    for (const wake of wakers) wake();
  }

  /** Drops the oldest chunks beyond RECENT_BYTES once they are in the file. */
  private trim(): void {
    while (this.recent.length > 1) {
      const { offset, chunk } = this.recent[0]!;
      if (this.recentBytes - chunk.length < RECENT_BYTES || offset + chunk.length > this.written) return;
      this.recent.shift();
      this.recentBytes -= chunk.length;
    }
  }
}

/**
 * Blob downloads from upstreams, shared by every request (and every process over the same storage
 * root) that wants the same blob while it comes in: the first claims the digest with an exclusive
 * lock file and downloads into `<dir>/<hex>.data`, hashing as it writes; the others follow it, each
 * at its own pace, so a slow client holds up nobody and no blob is ever held in memory. Readers in
 * the download's process are told of each chunk as it arrives and send the latest bytes straight
 * from memory (LiveFetch); readers in other processes find the lock and follow the growing file.
 * The last bytes of any read are held back until the digest is verified, so a reader gets either
 * the right bytes or an error, never wrong bytes. A failed or short download leaves nothing cached.
 *
 * Files per digest: `.lock` (the claim), `.size` (the upstream's Content-Length, once it answered),
 * `.data` (the bytes), `.outcome` (JSON: verified and kept, or why not).
 */
export class BlobFetches {
  /** The downloads this process runs, by digest, until they are over. */
  private readonly live = new Map<Digest, LiveFetch>();
  private readonly pollMs: number;

  constructor(
    private readonly dir: string,
    options: BlobFetchesOptions = {},
  ) {
    mkdirSync(dir, { recursive: true });
    this.pollMs = options.pollMs ?? FOLLOW_POLL_MS;
  }

  async close(): Promise<void> {
    // Downloads under way finish on their own; nothing is held open between them.
  }

  private path(digest: Digest, ext: 'lock' | 'size' | 'data' | 'outcome'): string {
    const { algorithm, hex } = digestParts(digest);
    return join(this.dir, `${algorithm}-${hex}.${ext}`);
  }

  /**
   * The blob's size once the upstream answered: starts the download when nobody else has, else
   * joins the one under way. Undefined when a download of it finished meanwhile (the cache has
   * it now). Throws BLOB_UNKNOWN when the upstream does not have it, UNAVAILABLE when it cannot
   * be fetched.
   */
  async size(digest: Digest, source: BlobSource): Promise<number | undefined> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const here = this.live.get(digest);
      if (here?.outcome && !here.outcome.ok) {
        // A failed download is not joined: once its files are gone, this request fetches again.
        await here.over;
        continue;
      }
      if (here) return here.answered;
      if (await this.claim(digest)) {
        const live = new LiveFetch();
        this.live.set(digest, live);
        live.over = this.download(digest, source, live)
          .catch(() => live.settle({ ok: false, code: 'UNAVAILABLE', message: 'the blob could not be fetched from the upstream' }))
          .finally(() => {
            if (this.live.get(digest) === live) this.live.delete(digest);
          });
        return live.answered;
      }
      const size = await this.waitForSize(digest);
      if (size !== 'restart') return size;
    }
    throw new RegistryError('UNAVAILABLE', { message: 'the blob could not be fetched from the upstream; try again' });
  }

  /**
   * The blob's bytes (or a range of them) as they arrive; call after `size()`. The stream ends
   * with an error when the download fails or does not match the digest. Undefined when the
   * download has finished already (read the cache instead).
   */
  async read(digest: Digest, size: number, range?: { offset: number; length: number }, isKept?: () => Promise<boolean>): Promise<Readable | undefined> {
    const live = this.live.get(digest);
    let handle: FileHandle;
    try {
      handle = await open(this.path(digest, 'data'), 'r');
    } catch {
      if (live?.outcome && !live.outcome.ok) throw failure(live.outcome);
      const outcome = await this.outcome(digest);
      if (outcome && !outcome.ok) throw failure(outcome);
      return undefined;
    }
    const start = range?.offset ?? 0;
    const end = range ? range.offset + range.length : size;
    const chunks = live ? this.followLive(live, handle, start, end) : this.follow(digest, handle, size, start, end, isKept);
    // The first bytes are awaited here: a download that fails before any bytes could be sent
    // (a small blob is held back whole until verified) is an error response, not a cut one.
    const first = await chunks.next();
    async function* all(): AsyncGenerator<Buffer> {
      if (!first.done) yield first.value;
      yield* chunks;
    }
    return Readable.from(all(), { objectMode: false });
  }

  /** The size of a download under way, without starting one; undefined when none is. */
  async fetchingSize(digest: Digest): Promise<number | undefined> {
    const live = this.live.get(digest);
    if (live?.size !== undefined) return live.size;
    const text = await readFile(this.path(digest, 'size'), 'utf8').catch(() => undefined);
    return text ? Number(text) : undefined;
  }

  /** Waits until the download of a digest is over (kept or failed): its claim is released. */
  async settled(digest: Digest): Promise<void> {
    const live = this.live.get(digest);
    if (live) {
      await live.over;
      return;
    }
    while (await stat(this.path(digest, 'lock')).then(() => true, () => false)) {
      if (await this.stalled(digest)) return;
      await sleep(50);
    }
  }

  /** Takes the claim on a digest; false when another request (or process) holds a live one. */
  private async claim(digest: Digest): Promise<boolean> {
    const lock = this.path(digest, 'lock');
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        const handle = await open(lock, 'wx');
        await handle.writeFile(JSON.stringify({ pid: process.pid, at: Date.now() }));
        await handle.close();
        return true;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      if (!(await this.stalled(digest))) return false;
      await rm(lock, { force: true });
    }
    return false;
  }

  /** Whether the fetch holding the claim has made no progress for STALLED_MS (its process died). */
  private async stalled(digest: Digest): Promise<boolean> {
    const times = await Promise.all((['lock', 'data'] as const).map((ext) => stat(this.path(digest, ext)).then((s) => s.mtimeMs, () => 0)));
    return Date.now() - Math.max(...times) > STALLED_MS;
  }

  private async outcome(digest: Digest): Promise<Outcome | undefined> {
    try {
      return JSON.parse(await readFile(this.path(digest, 'outcome'), 'utf8')) as Outcome;
    } catch {
      return undefined;
    }
  }

  /** The size the downloader wrote, or 'restart' when the claim vanished without an outcome. */
  private async waitForSize(digest: Digest): Promise<number | undefined | 'restart'> {
    const deadline = Date.now() + ANSWER_PATIENCE_MS;
    for (;;) {
      const text = await readFile(this.path(digest, 'size'), 'utf8').catch(() => undefined);
      if (text !== undefined && text !== '') return Number(text);
      const outcome = await this.outcome(digest);
      if (outcome && !outcome.ok) throw failure(outcome);
      if (outcome?.ok) return undefined;
      const locked = await stat(this.path(digest, 'lock')).then(() => true, () => false);
      if (!locked) return 'restart';
      if (Date.now() > deadline) throw new RegistryError('UNAVAILABLE', { message: 'the upstream did not answer in time' });
      await sleep(this.pollMs);
    }
  }

  /**
   * The download: upstream to the data file while hashing, verified, kept, then the claim released.
   * Each chunk reaches this process's readers as it arrives, before it is written.
   */
  private async download(digest: Digest, source: BlobSource, live: LiveFetch): Promise<void> {
    const controller = new AbortController();
    let handle: FileHandle | undefined;
    const fail = async (outcome: Outcome) => {
      live.settle(outcome);
      await this.finish(digest, outcome);
    };
    // Leftovers of an earlier fetch of the same digest go while the upstream is asked.
    const leftovers = Promise.all((['size', 'data', 'outcome'] as const).map((ext) => rm(this.path(digest, ext), { force: true })));
    try {
      const opened = await source.open(controller.signal).catch(async (error: unknown) => {
        await leftovers.catch(() => undefined);
        throw error instanceof RegistryError ? error : new RegistryError('UNAVAILABLE', { message: 'the upstream cannot be reached' });
      });
      await leftovers;
      if (!opened) {
        await fail({ ok: false, code: 'BLOB_UNKNOWN', message: 'blob unknown to the upstream' });
        return;
      }
      const dataPath = this.path(digest, 'data');
      const file = await open(dataPath, 'w');
      handle = file;
      // This process's readers start now; readers elsewhere once the size file says so.
      live.answer(opened.size);
      await writeAtomically(this.path(digest, 'size'), String(opened.size));
      const { algorithm, hex } = digestParts(digest);
      const hash = createHash(algorithm);
      let received = 0;
      // Streamed as a pipeline (socket, hash, file) so that receiving, hashing and writing overlap.
      const measure = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          if (received + chunk.length > opened.size) {
            done(new Error('the upstream sent more bytes than it announced'));
            return;
          }
          hash.update(chunk);
          received += chunk.length;
          live.receive(chunk);
          done(null, chunk);
        },
      });
      let written = 0;
      const writeBatch = async (chunks: Buffer[]) => {
        written = await writeAll(file, chunks, written);
        live.wrote(written);
      };
      // Chunks that arrive while a write is under way are written together (writev) after it.
      const sink = new Writable({
        highWaterMark: WRITE_BACKLOG_BYTES,
        write(chunk: Buffer, _encoding, done) {
          writeBatch([chunk]).then(() => done(), done);
        },
        writev(entries, done) {
          writeBatch(entries.map((entry) => entry.chunk as Buffer)).then(() => done(), done);
        },
      });
      try {
        await pipeline(opened.body, measure, sink);
      } catch {
        opened.body.destroy();
        await fail({ ok: false, code: 'UNAVAILABLE', message: `the upstream transfer failed after ${received} of ${opened.size} bytes` });
        return;
      }
      if (received !== opened.size) {
        await fail({ ok: false, code: 'UNAVAILABLE', message: `the upstream transfer ended after ${received} of ${opened.size} bytes` });
        return;
      }
      if (hash.digest('hex') !== hex) {
        await fail({ ok: false, code: 'UNAVAILABLE', message: 'the upstream sent bytes that do not match the digest; nothing was cached' });
        return;
      }
      // Readers may send their last bytes now: the bytes are verified. Making them durable is
      // the cache's business (keeping them), not the readers'.
      live.settle({ ok: true });
      await writeAtomically(this.path(digest, 'outcome'), JSON.stringify({ ok: true } satisfies Outcome));
      try {
        await file.sync();
        await file.close();
        handle = undefined;
        await source.keep(dataPath);
      } finally {
        await this.cleanUp(digest, { keepOutcome: true });
      }
    } catch (error) {
      const code = error instanceof RegistryError && error.code === 'BLOB_UNKNOWN' ? 'BLOB_UNKNOWN' : 'UNAVAILABLE';
      const message = error instanceof RegistryError ? error.message : 'the blob could not be fetched from the upstream';
      live.settle({ ok: false, code, message });
      if (!(await this.outcome(digest))) await fail({ ok: false, code, message }).catch(() => undefined);
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  /** Records a failed outcome and removes the bytes: nothing of a failed download stays. */
  private async finish(digest: Digest, outcome: Outcome): Promise<void> {
    await writeAtomically(this.path(digest, 'outcome'), JSON.stringify(outcome));
    await this.cleanUp(digest, { keepOutcome: true });
  }

  /** Removes the fetch's files; the outcome stays a while for readers still catching up, then goes too. */
  private async cleanUp(digest: Digest, options: { keepOutcome: boolean }): Promise<void> {
    await Promise.all((['size', 'data'] as const).map((ext) => rm(this.path(digest, ext), { force: true })));
    await rm(this.path(digest, 'lock'), { force: true });
    if (options.keepOutcome) {
      const outcomePath = this.path(digest, 'outcome');
      setTimeout(() => {
        // Only if no newer fetch of the digest has started meanwhile.
        void stat(this.path(digest, 'lock')).then(
          () => undefined,
          () => rm(outcomePath, { force: true }),
        );
      }, OUTCOME_KEPT_MS).unref();
    }
  }

  /**
   * Reads bytes [start, end) of a download of this process as they arrive: from memory while the
   * reader keeps up, else from the data file (whose descriptor stays valid when the downloader
   * removes the file after keeping it). Woken by the download, never by a timer.
   */
  private async *followLive(live: LiveFetch, handle: FileHandle, start: number, end: number): AsyncGenerator<Buffer> {
    try {
      let position = start;
      let idleSince = Date.now();
      while (position < end) {
        if (live.outcome && !live.outcome.ok) throw failure(live.outcome);
        let pieces = live.bytesAt(position, end);
        if (!pieces && position < live.written) {
          const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, live.written - position, end - position));
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
          if (bytesRead > 0) pieces = [buffer.subarray(0, bytesRead)];
        }
        if (!pieces) {
          if (Date.now() - idleSince > STALLED_MS) throw new RegistryError('UNAVAILABLE', { message: 'the upstream transfer stalled' });
          await live.changed(STALLED_MS);
          continue;
        }
        idleSince = Date.now();
        const length = pieces.reduce((sum, piece) => sum + piece.length, 0);
        if (position + length >= end) {
          // The last bytes of this read wait for the verdict on the whole blob.
          const outcome = await live.settled;
          if (!outcome.ok) throw failure(outcome);
        }
        position += length;
        for (const piece of pieces) yield piece;
      }
    } finally {
      await handle.close();
    }
  }

  /**
   * Reads bytes [start, end) of the data file of a download in another process as they arrive.
   * The file descriptor stays valid when the downloader removes the file after keeping it, so a
   * reader that opened it reads to the end.
   */
  private async *follow(digest: Digest, handle: FileHandle, size: number, start: number, end: number, isKept?: () => Promise<boolean>): AsyncGenerator<Buffer> {
    try {
      let position = start;
      let idleSince = Date.now();
      // Reused while reads find nothing new: a reader waiting on the download makes no garbage.
      let buffer: Buffer | undefined;
      while (position < end) {
        buffer ??= Buffer.allocUnsafe(READ_CHUNK);
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position), position);
        if (bytesRead > 0) {
          idleSince = Date.now();
          const chunk = buffer.subarray(0, bytesRead);
          buffer = undefined;
          if (position + bytesRead >= end) {
            // The last bytes of this read wait for the verdict on the whole blob.
            await this.awaitVerified(digest, handle, size, isKept);
          }
          position += bytesRead;
          yield chunk;
          continue;
        }
        const outcome = await this.outcome(digest);
        if (outcome && !outcome.ok) throw failure(outcome);
        if (Date.now() - idleSince > STALLED_MS) throw new RegistryError('UNAVAILABLE', { message: 'the upstream transfer stalled' });
        await sleep(this.pollMs);
      }
    } finally {
      await handle.close();
    }
  }

  /** Waits until the download is verified; throws when it failed. */
  private async awaitVerified(digest: Digest, handle: FileHandle, size: number, isKept?: () => Promise<boolean>): Promise<void> {
    const started = Date.now();
    for (;;) {
      const outcome = await this.outcome(digest);
      if (outcome?.ok) return;
      if (outcome && !outcome.ok) throw failure(outcome);
      // No outcome and no claim: the cache has the blob (kept, its outcome since removed), or the
      // downloader died after writing everything.
      const { size: have } = await handle.stat();
      if (have === size && !(await stat(this.path(digest, 'lock')).then(() => true, () => false))) {
        if (isKept && (await isKept())) return;
        throw new RegistryError('UNAVAILABLE', { message: 'the download ended without a verdict; try again' });
      }
      if (Date.now() - started > STALLED_MS) throw new RegistryError('UNAVAILABLE', { message: 'the upstream transfer stalled' });
      await sleep(this.pollMs);
    }
  }
}

/** Writes `chunks` at `position`, all of them (a write may take fewer bytes); the position after them. */
async function writeAll(file: FileHandle, chunks: Buffer[], position: number): Promise<number> {
  let pending = chunks;
  while (pending.length > 0) {
    const { bytesWritten } = await file.writev(pending, position);
    if (bytesWritten === 0) throw new Error('the disk took no bytes');
    position += bytesWritten;
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const chunk of pending) {
      if (skip >= chunk.length) skip -= chunk.length;
      else {
        rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
        skip = 0;
      }
    }
    pending = rest;
  }
  return position;
}

function failure(outcome: Outcome): RegistryError {
  return new RegistryError(outcome.code === 'BLOB_UNKNOWN' ? 'BLOB_UNKNOWN' : 'UNAVAILABLE', { message: outcome.message ?? 'the upstream transfer failed' });
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(temporary, text);
  await rename(temporary, path);
}
