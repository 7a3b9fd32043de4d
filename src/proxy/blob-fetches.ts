import { createHash } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryError } from '../errors/index.js';
import { digestParts, type Digest } from '../oci/digest.js';

/** How often a reader that has caught up with the download looks for more bytes. */
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
 * Blob downloads from upstreams, shared by every request (and every process over the same storage
 * root) that wants the same blob while it comes in: the first claims the digest with an exclusive
 * lock file and downloads into `<dir>/<hex>.data`, hashing as it writes; the others find the
 * lock and follow the growing file, each at its own pace, so a slow client holds up nobody and
 * no blob is ever held in memory. The last bytes of any read are held back until the digest is
 * verified, so a reader gets either the right bytes or an error, never wrong bytes. A failed or
 * short download leaves nothing cached.
 *
 * Files per digest: `.lock` (the claim), `.size` (the upstream's Content-Length, once it answered),
 * `.data` (the bytes), `.outcome` (JSON: verified and kept, or why not).
 */
export class BlobFetches {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
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
      if (await this.claim(digest)) void this.download(digest, source);
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
    let handle: FileHandle;
    try {
      handle = await open(this.path(digest, 'data'), 'r');
    } catch {
      const outcome = await this.outcome(digest);
      if (outcome && !outcome.ok) throw failure(outcome);
      return undefined;
    }
    const start = range?.offset ?? 0;
    const end = range ? range.offset + range.length : size;
    return Readable.from(this.follow(digest, handle, size, start, end, isKept), { objectMode: false });
  }

  /** The size of a download under way, without starting one; undefined when none is. */
  async fetchingSize(digest: Digest): Promise<number | undefined> {
    const text = await readFile(this.path(digest, 'size'), 'utf8').catch(() => undefined);
    return text ? Number(text) : undefined;
  }

  /** Waits until the download of a digest is over (kept or failed): its claim is released. */
  async settled(digest: Digest): Promise<void> {
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
        // Leftovers of an earlier fetch of the same digest.
        await Promise.all((['size', 'data', 'outcome'] as const).map((ext) => rm(this.path(digest, ext), { force: true })));
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
      await sleep(FOLLOW_POLL_MS);
    }
  }

  /** The download: upstream to the data file while hashing, verified, kept, then the claim released. */
  private async download(digest: Digest, source: BlobSource): Promise<void> {
    const controller = new AbortController();
    let handle: FileHandle | undefined;
    const fail = async (outcome: Outcome) => {
      await this.finish(digest, outcome);
    };
    try {
      const opened = await source.open(controller.signal).catch((error: unknown) => {
        throw error instanceof RegistryError ? error : new RegistryError('UNAVAILABLE', { message: 'the upstream cannot be reached' });
      });
      if (!opened) {
        await fail({ ok: false, code: 'BLOB_UNKNOWN', message: 'blob unknown to the upstream' });
        return;
      }
      const dataPath = this.path(digest, 'data');
      handle = await open(dataPath, 'w');
      await writeAtomically(this.path(digest, 'size'), String(opened.size));
      const { algorithm, hex } = digestParts(digest);
      const hash = createHash(algorithm);
      let written = 0;
      // Streamed as a pipeline (socket, hash, file) so that receiving, hashing and writing overlap.
      const measure = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          if (written + chunk.length > opened.size) {
            done(new Error('the upstream sent more bytes than it announced'));
            return;
          }
          hash.update(chunk);
          written += chunk.length;
          done(null, chunk);
        },
      });
      try {
        await pipeline(opened.body, measure, createWriteStream(dataPath, { flags: 'r+', highWaterMark: 1024 * 1024 }));
      } catch {
        opened.body.destroy();
        await fail({ ok: false, code: 'UNAVAILABLE', message: `the upstream transfer failed after ${written} of ${opened.size} bytes` });
        return;
      }
      if (written !== opened.size) {
        await fail({ ok: false, code: 'UNAVAILABLE', message: `the upstream transfer ended after ${written} of ${opened.size} bytes` });
        return;
      }
      if (hash.digest('hex') !== hex) {
        await fail({ ok: false, code: 'UNAVAILABLE', message: 'the upstream sent bytes that do not match the digest; nothing was cached' });
        return;
      }
      // Readers may send their last bytes now: the bytes are verified. Making them durable is
      // the cache's business (keeping them), not the readers'.
      await writeAtomically(this.path(digest, 'outcome'), JSON.stringify({ ok: true } satisfies Outcome));
      try {
        await handle.sync();
        await handle.close();
        handle = undefined;
        await source.keep(dataPath);
      } finally {
        await this.cleanUp(digest, { keepOutcome: true });
      }
    } catch (error) {
      const code = error instanceof RegistryError && error.code === 'BLOB_UNKNOWN' ? 'BLOB_UNKNOWN' : 'UNAVAILABLE';
      const message = error instanceof RegistryError ? error.message : 'the blob could not be fetched from the upstream';
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
   * Reads bytes [start, end) of the data file as they arrive. The file descriptor stays valid when
   * the downloader removes the file after keeping it, so a reader that opened it reads to the end.
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
        await sleep(FOLLOW_POLL_MS);
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
      await sleep(FOLLOW_POLL_MS);
    }
  }

}

function failure(outcome: Outcome): RegistryError {
  return new RegistryError(outcome.code === 'BLOB_UNKNOWN' ? 'BLOB_UNKNOWN' : 'UNAVAILABLE', { message: outcome.message ?? 'the upstream transfer failed' });
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(temporary, text);
  await rename(temporary, path);
}
