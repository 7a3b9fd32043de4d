import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Digest } from '../src/oci/digest.js';
import { BlobStore, type UploadPart } from '../src/storage/blob-store.js';
import { FilesystemDriver } from '../src/storage/filesystem-driver.js';
import { finishSavedSha256 } from '../src/storage/hash-state.js';
import { HashThread } from '../src/storage/hash-thread.js';

const digestOf = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;

async function* chunks(data: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let offset = 0;
  for (let i = 0; offset < data.length; i += 1) {
    const size = Math.min(sizes[i % sizes.length]!, data.length - offset);
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}

function withRoot(work: (root: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), 'wharf-blobs-'));
    try {
      await work(root);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

test(
  'parts of every chunk size hashed on the hash thread chain their saved state to the digest of the whole',
  withRoot(async (root) => {
    const store = new BlobStore(new FilesystemDriver(root));
    const pieces = [randomBytes(5 * 1024 * 1024 + 3), randomBytes(3 * 1024 * 1024), Buffer.from('x')];
    // One chunk larger than a ring slot, then socket-sized chunks, then a single byte.
    const shapes = [[5 * 1024 * 1024 + 3], [65_536, 1, 300_000], [1]];
    const parts: UploadPart[] = [];
    let state: Uint8Array | undefined;
    let size = 0;
    for (const [i, piece] of pieces.entries()) {
      const written = await store.writePart('u1', { offset: size, body: chunks(piece, shapes[i]!), expectedLength: piece.length, ...(state ? { hashState: state } : {}) });
      assert.ok(written.part && written.hashState, 'each part is recorded with the running hash after it');
      parts.push(written.part);
      state = written.hashState;
      size += written.part.size;
    }
    const all = Buffer.concat(pieces);
    assert.equal(await store.digestOf('u1', parts, state, 'sha256'), digestOf(all));
    await store.placeBlob('u1', parts, digestOf(all));
    const hex = digestOf(all).slice('sha256:'.length);
    assert.equal(digestOf(readFileSync(join(root, 'blobs/sha256', hex.slice(0, 2), hex))), digestOf(all));
  }),
);

test(
  'a saved hash state goes on in another hash thread (another process or replica)',
  withRoot(async (root) => {
    const driver = new FilesystemDriver(root);
    const first = new BlobStore(driver, new HashThread());
    const second = new BlobStore(driver, new HashThread());
    const a = randomBytes(2 * 1024 * 1024 + 17);
    const b = randomBytes(1024 * 1024 + 5);
    const one = await first.writePart('u2', { offset: 0, body: chunks(a, [65_536]) });
    const two = await second.writePart('u2', { offset: a.length, body: chunks(b, [100_000]), hashState: one.hashState! });
    assert.equal(await second.digestOf('u2', [one.part!, two.part!], two.hashState, 'sha256'), digestOf(Buffer.concat([a, b])));
  }),
);

test(
  'a part cut off mid-way leaves nothing behind; the retry from the same offset is what counts',
  withRoot(async (root) => {
    const store = new BlobStore(new FilesystemDriver(root));
    const first = randomBytes(2 * 1024 * 1024);
    const second = randomBytes(3 * 1024 * 1024);
    const one = await store.writePart('u3', { offset: 0, body: chunks(first, [65_536]) });
    async function* broken(): AsyncGenerator<Buffer> {
      yield* chunks(second.subarray(0, 1_500_000), [65_536]);
      throw new Error('client went away');
    }
    await assert.rejects(store.writePart('u3', { offset: first.length, body: broken(), hashState: one.hashState! }), /client went away/);
    assert.deepEqual(readdirSync(join(root, 'uploads/u3')), [one.part!.name], 'the broken part is removed');
    const two = await store.writePart('u3', { offset: first.length, body: chunks(second, [100_000]), hashState: one.hashState! });
    assert.equal(await store.digestOf('u3', [one.part!, two.part!], two.hashState, 'sha256'), digestOf(Buffer.concat([first, second])));
  }),
);

test('an idle hash thread stops, and the next stream starts another that hashes alike', async () => {
  const hashes = new HashThread({ idleStopMs: 50 });
  const data = randomBytes(300_000);
  const expected = createHash('sha256').update(data).digest('hex');
  const hashOnce = async (id: string) => {
    hashes.open(id);
    await hashes.update(id, [data.subarray(0, 70_000), data.subarray(70_000)]);
    const state = await hashes.save(id);
    assert.ok(state);
    return finishSavedSha256(state);
  };
  try {
    assert.equal(await hashOnce('first'), expected);
    assert.equal(hashes.running, true);
    // An open stream keeps it: its state lives in the thread.
    hashes.open('held');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(hashes.running, true, 'a stream is still open');
    hashes.drop('held');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(hashes.running, false, 'idle, it stopped');
    assert.equal(await hashOnce('second'), expected);
    assert.equal(hashes.running, true);
  } finally {
    await hashes.close();
  }
});
