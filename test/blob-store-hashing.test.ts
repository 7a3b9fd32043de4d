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
  'resumable hashing: parts of every chunk size hashed on the hash thread chain their saved state to the digest of the whole',
  withRoot(async (root) => {
    const store = new BlobStore(new FilesystemDriver(root), new HashThread(), { resumableHashes: true });
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
    const first = new BlobStore(driver, new HashThread(), { resumableHashes: true });
    const second = new BlobStore(driver, new HashThread(), { resumableHashes: true });
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
    const store = new BlobStore(new FilesystemDriver(root), new HashThread(), { resumableHashes: true });
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

/** Writes a chunk as the upload service does: continuing from `parts`, then recording it. */
async function append(store: BlobStore, id: string, parts: UploadPart[], data: Buffer, record = true): Promise<UploadPart[]> {
  const offset = parts.reduce((sum, part) => sum + part.size, 0);
  const lastPart = parts.at(-1);
  const written = await store.writePart(id, { offset, body: chunks(data, [65_536]), ...(lastPart ? { lastPart } : {}) });
  if (!record) {
    await store.discardPart(id, written);
    return parts;
  }
  store.recorded(id, written, offset + data.length);
  return written.extends ? [...parts.slice(0, -1), written.part!] : [...parts, written.part!];
}

test(
  'on a local disk, the chunks of an upload in one process grow one file and keep their hash in memory',
  withRoot(async (root) => {
    const store = new BlobStore(new FilesystemDriver(root));
    const pieces = [randomBytes(3 * 1024 * 1024 + 1), randomBytes(1024 * 1024), randomBytes(77)];
    let parts: UploadPart[] = [];
    for (const piece of pieces) parts = await append(store, 'l1', parts, piece);
    assert.equal(parts.length, 1, 'one part, grown');
    assert.equal(parts[0]!.size, 4 * 1024 * 1024 + 78);
    assert.deepEqual(readdirSync(join(root, 'uploads/l1')), [parts[0]!.name]);
    const all = Buffer.concat(pieces);
    // No saved state: the digest comes from the running hash kept by this process.
    assert.equal(await store.digestOf('l1', parts, undefined, 'sha256'), digestOf(all));
    await store.placeBlob('l1', parts, digestOf(all));
    const hex = digestOf(all).slice('sha256:'.length);
    assert.equal(digestOf(readFileSync(join(root, 'blobs/sha256', hex.slice(0, 2), hex))), digestOf(all));
  }),
);

test(
  'an upload continued by another process starts a new part there, and its digest is read back from the disk',
  withRoot(async (root) => {
    const driver = new FilesystemDriver(root);
    const first = new BlobStore(driver, new HashThread());
    const second = new BlobStore(driver, new HashThread());
    const a = randomBytes(2 * 1024 * 1024 + 5);
    const b = randomBytes(1024 * 1024);
    const c = randomBytes(300);
    let parts = await append(first, 'l2', [], a);
    parts = await append(second, 'l2', parts, b);
    assert.equal(parts.length, 2, 'the second process does not touch the first one\'s file');
    // Back in the first process: its running hash is for an older offset, and the last part is not its own.
    parts = await append(first, 'l2', parts, c);
    assert.equal(parts.length, 3);
    const all = Buffer.concat([a, b, c]);
    assert.equal(await first.digestOf('l2', parts, undefined, 'sha256'), digestOf(all));
    assert.equal(await second.digestOf('l2', parts, undefined, 'sha256'), digestOf(all));
  }),
);

test(
  'bytes appended but not recorded are cut off again, and two requests at one offset never share a file',
  withRoot(async (root) => {
    const store = new BlobStore(new FilesystemDriver(root));
    const a = randomBytes(1024 * 1024);
    let parts = await append(store, 'l3', [], a);
    // Another request won the offset: what this one appended is cut, the recorded bytes stay.
    await append(store, 'l3', parts, randomBytes(500_000), false);
    assert.equal(readFileSync(join(root, 'uploads/l3', parts[0]!.name)).length, a.length);
    async function* broken(): AsyncGenerator<Buffer> {
      yield randomBytes(200_000);
      throw new Error('client went away');
    }
    await assert.rejects(store.writePart('l3', { offset: a.length, body: broken(), lastPart: parts[0]! }), /client went away/);
    assert.equal(readFileSync(join(root, 'uploads/l3', parts[0]!.name)).length, a.length, 'a cut-off chunk leaves the part as recorded');
    // Two requests at the same offset at once: one continues the file, the other writes its own.
    const x = randomBytes(700_000);
    const y = randomBytes(700_000);
    const [wx, wy] = await Promise.all([
      store.writePart('l3', { offset: a.length, body: chunks(x, [65_536]), lastPart: parts[0]! }),
      store.writePart('l3', { offset: a.length, body: chunks(y, [65_536]), lastPart: parts[0]! }),
    ]);
    assert.notEqual(wx.extends, wy.extends, 'only one of them grows the last part');
    const grown = wx.extends ? wx : wy;
    const separate = wx.extends ? wy : wx;
    // The separate part wins the offset; the growth is discarded.
    await store.discardPart('l3', grown);
    store.recorded('l3', separate, a.length + 700_000);
    parts = [...parts, separate.part!];
    assert.equal(readFileSync(join(root, 'uploads/l3', parts[0]!.name)).length, a.length);
    const won = separate === wx ? x : y;
    assert.equal(await store.digestOf('l3', parts, undefined, 'sha256'), digestOf(Buffer.concat([a, won])));
  }),
);

test('an idle hash thread stops, and the next stream starts another that hashes alike', async () => {
  const hashes = new HashThread({ idleStopMs: 50 });
  const data = randomBytes(300_000);
  const expected = createHash('sha256').update(data).digest('hex');
  const hashOnce = async (id: string) => {
    hashes.open(id, { upload: id, offset: 0, resumable: true });
    await hashes.update(id, [data.subarray(0, 70_000), data.subarray(70_000)]);
    const { state } = await hashes.finish(id);
    hashes.drop(id);
    assert.ok(state);
    return finishSavedSha256(state);
  };
  try {
    assert.equal(await hashOnce('first'), expected);
    assert.equal(hashes.running, true);
    // An open stream keeps it: its state lives in the thread.
    hashes.open('held', { upload: 'held', offset: 0, resumable: false });
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
