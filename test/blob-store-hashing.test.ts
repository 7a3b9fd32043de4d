import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BlobStore } from '../src/storage/blob-store.js';
import { FilesystemDriver } from '../src/storage/filesystem-driver.js';

const digestOf = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function* chunks(data: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let offset = 0;
  for (let i = 0; offset < data.length; i += 1) {
    const size = Math.min(sizes[i % sizes.length]!, data.length - offset);
    yield data.subarray(offset, offset + size);
    offset += size;
  }
}

function withStore(work: (store: BlobStore, root: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const root = mkdtempSync(join(tmpdir(), 'wharf-blobs-'));
    try {
      await work(new BlobStore(new FilesystemDriver(root)), root);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
}

test(
  'an upload in several appends of every chunk size is hashed on the hash thread and committed',
  withStore(async (store, root) => {
    const parts = [randomBytes(5 * 1024 * 1024 + 3), randomBytes(3 * 1024 * 1024), Buffer.from('x')];
    await store.createUpload('u1');
    let size = 0;
    // One chunk larger than a ring slot, then socket-sized chunks, then a single byte.
    const shapes = [[5 * 1024 * 1024 + 3], [65_536, 1, 300_000], [1]];
    for (const [i, part] of parts.entries()) {
      size = await store.append('u1', { offset: size, body: chunks(part, shapes[i]!), expectedLength: part.length });
    }
    const all = Buffer.concat(parts);
    assert.equal(size, all.length);
    await assert.rejects(store.commit('u1', { size, digest: digestOf(Buffer.from('other')) }), /DIGEST_INVALID|digest/i);
    await store.createUpload('u2');
    const size2 = await store.append('u2', { offset: 0, body: chunks(all, [65_536]) });
    await store.commit('u2', { size: size2, digest: digestOf(all) });
    const hex = digestOf(all).slice('sha256:'.length);
    assert.equal(digestOf(readFileSync(join(root, 'blobs/sha256', hex.slice(0, 2), hex))), digestOf(all));
  }),
);

test(
  'a chunk cut off mid-way does not count: the retry from the recorded offset commits the right digest',
  withStore(async (store) => {
    const first = randomBytes(2 * 1024 * 1024);
    const second = randomBytes(3 * 1024 * 1024);
    await store.createUpload('u3');
    const size = await store.append('u3', { offset: 0, body: chunks(first, [65_536]) });
    async function* broken(): AsyncGenerator<Buffer> {
      yield* chunks(second.subarray(0, 1_500_000), [65_536]);
      throw new Error('client went away');
    }
    await assert.rejects(store.append('u3', { offset: size, body: broken() }), /client went away/);
    const final = await store.append('u3', { offset: size, body: chunks(second, [100_000]) });
    await store.commit('u3', { size: final, digest: digestOf(Buffer.concat([first, second])) });
  }),
);
