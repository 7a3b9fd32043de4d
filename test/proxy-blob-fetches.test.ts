import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import type { Digest } from '../src/oci/digest.js';
import { BlobFetches, type BlobSource } from '../src/proxy/blob-fetches.js';

/**
 * The shared blob downloads of the pull-through cache (src/proxy/blob-fetches.ts), in process: an
 * upstream whose bytes the test hands over piece by piece, readers in the download's own process
 * (woken as bytes arrive; the file poll is set to ten minutes so that a polling reader would
 * hang) and a second BlobFetches over the same directory standing for another server process.
 */
const digestOf = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
const NO_POLL = { pollMs: 600_000 };

/** An upstream whose body the test writes; `kept` holds the kept files' bytes. */
function upstream(size: number) {
  const body = new PassThrough();
  const kept: Buffer[] = [];
  let opens = 0;
  const source: BlobSource = {
    open: async () => {
      opens += 1;
      return { size, body };
    },
    keep: async (path) => {
      kept.push(readFileSync(path));
    },
  };
  return { body, source, kept, opens: () => opens };
}

/** The next chunk a stream gives, or a timeout. */
function nextChunk(stream: Readable, ms: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no bytes within ${ms} ms`)), ms);
    stream.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      stream.pause();
      resolve(chunk);
    });
  });
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('blob downloads shared by the requests that want them', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-fetches-'));
    dirs.push(dir);
    return dir;
  };
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test('the first bytes reach a reader before the upstream transfer ends; readers of the same process are woken, not polling', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const digest = digestOf(data);
    const fetches = new BlobFetches(tempDir(), NO_POLL);
    const up = upstream(data.length);
    assert.equal(await fetches.size(digest, up.source), data.length);
    up.body.write(data.subarray(0, 64 * 1024));
    const first = (await fetches.read(digest, data.length))!;
    const head = await nextChunk(first, 2000);
    assert.deepEqual(head, data.subarray(0, head.length), 'the first bytes, while the upstream has sent 64 KiB of 3 MiB');
    // A second request joins the same download (no second upstream GET) and reads along.
    assert.equal(await fetches.size(digest, up.source), data.length);
    const second = (await fetches.read(digest, data.length))!;
    const rest = collect(first);
    const all = collect(second);
    for (let offset = 64 * 1024; offset < data.length; offset += 256 * 1024) {
      up.body.write(data.subarray(offset, Math.min(data.length, offset + 256 * 1024)));
      await new Promise((resolve) => setImmediate(resolve));
    }
    up.body.end();
    assert.ok(Buffer.concat([head, await rest]).equals(data));
    assert.ok((await all).equals(data));
    await fetches.settled(digest);
    assert.equal(up.opens(), 1);
    assert.equal(up.kept.length, 1);
    assert.ok(up.kept[0]!.equals(data));
  });

  test('a slow reader holds up nobody: the others finish while it has read nothing', async () => {
    const data = randomBytes(12 * 1024 * 1024);
    const digest = digestOf(data);
    const fetches = new BlobFetches(tempDir(), NO_POLL);
    const up = upstream(data.length);
    await fetches.size(digest, up.source);
    up.body.write(data.subarray(0, 1024));
    const slow = (await fetches.read(digest, data.length))!;
    slow.pause();
    const fast = (await fetches.read(digest, data.length))!;
    const fastBytes = collect(fast);
    up.body.end(data.subarray(1024));
    assert.ok((await fastBytes).equals(data));
    await fetches.settled(digest);
    // The slow one reads the rest from the file afterwards (the download dropped its memory).
    assert.ok((await collect(slow)).equals(data));
  });

  test('a reader in another process follows the file, and a range of it', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const digest = digestOf(data);
    const dir = tempDir();
    const downloader = new BlobFetches(dir, NO_POLL);
    const elsewhere = new BlobFetches(dir);
    const up = upstream(data.length);
    await downloader.size(digest, up.source);
    up.body.write(data.subarray(0, 512 * 1024));
    assert.equal(await elsewhere.size(digest, up.source), data.length);
    const whole = elsewhere.read(digest, data.length);
    const range = elsewhere.read(digest, data.length, { offset: 1000, length: 1024 * 1024 });
    up.body.end(data.subarray(512 * 1024));
    assert.ok((await collect((await whole)!)).equals(data));
    assert.ok((await collect((await range)!)).equals(data.subarray(1000, 1000 + 1024 * 1024)));
    assert.equal(up.opens(), 1);
  });

  test('a short transfer or wrong bytes: readers get an error, nothing is kept, the next request fetches again', async () => {
    const data = randomBytes(2 * 1024 * 1024);
    const digest = digestOf(data);
    const dir = tempDir();
    const fetches = new BlobFetches(dir, NO_POLL);
    const short = upstream(data.length);
    await fetches.size(digest, short.source);
    short.body.write(data.subarray(0, 1024 * 1024));
    const reader = (await fetches.read(digest, data.length))!;
    const got = collect(reader);
    short.body.end();
    await assert.rejects(got, /ended after 1048576 of 2097152 bytes/);
    await fetches.settled(digest);
    assert.equal(short.kept.length, 0);
    assert.deepEqual(readdirSync(dir).filter((name) => !name.endsWith('.outcome')), []);

    // Wrong bytes of the right length, small enough to be held back whole: an error before any byte.
    const liar = upstream(4096);
    const wanted = digestOf(Buffer.alloc(4096, 2));
    await fetches.size(wanted, liar.source);
    liar.body.end(Buffer.alloc(4096, 1));
    await assert.rejects(fetches.read(wanted, 4096), /do not match the digest/);
    await fetches.settled(wanted);
    assert.equal(liar.kept.length, 0);

    const good = upstream(data.length);
    assert.equal(await fetches.size(digest, good.source), data.length);
    good.body.end(data);
    const again = await fetches.read(digest, data.length);
    assert.ok((await collect(again!)).equals(data));
    await fetches.settled(digest);
    assert.equal(good.kept.length, 1);
  });

  test('a kept blob stays readable by a reader that opened it before the file went', async () => {
    const data = randomBytes(1024 * 1024);
    const digest = digestOf(data);
    const dir = tempDir();
    const fetches = new BlobFetches(dir, NO_POLL);
    const up = upstream(data.length);
    up.source.keep = async (path) => copyFileSync(path, join(dir, 'kept'));
    await fetches.size(digest, up.source);
    up.body.write(data.subarray(0, 100));
    const reader = (await fetches.read(digest, data.length))!;
    reader.pause();
    up.body.end(data.subarray(100));
    await fetches.settled(digest);
    assert.ok((await collect(reader)).equals(data));
    assert.equal(await fetches.read(digest, data.length), undefined, 'once kept, the cache answers');
  });
});
