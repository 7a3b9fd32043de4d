import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { RegistryError } from '../src/errors/index.js';
import { digestOf } from '../src/oci/digest.js';
import { BlobStore } from '../src/storage/blob-store.js';
import { FilesystemDriver } from '../src/storage/filesystem-driver.js';
import { FileRangeStream } from '../src/storage/file-range-stream.js';
import { isSendable } from '../src/storage/driver.js';
import { storageDriverContract } from './support/storage-driver-contract.js';

const roots: string[] = [];
after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
function freshDriver(): FilesystemDriver {
  const root = mkdtempSync(join(tmpdir(), 'wharf-fs-'));
  roots.push(root);
  return new FilesystemDriver(root);
}

storageDriverContract('filesystem', async () => freshDriver());

async function* chunks(...parts: string[]): AsyncGenerator<Buffer> {
  for (const part of parts) yield Buffer.from(part);
}

describe('BlobStore over the filesystem', () => {
  it('commits an upload only when it hashes to the digest, and stores it content-addressed', async () => {
    const store = new BlobStore(freshDriver());
    await store.createUpload('u1');
    const size = await store.append('u1', { offset: 0, body: chunks('hello ', 'world') });
    assert.equal(size, 11);
    await assert.rejects(store.commit('u1', { size, digest: digestOf('other') }), (e: unknown) => e instanceof RegistryError && e.code === 'DIGEST_INVALID');
    await store.commit('u1', { size, digest: digestOf('hello world') });
    assert.equal(await store.stat(digestOf('hello world')), 11);
    assert.equal(store.blobPath(digestOf('hello world')), `blobs/sha256/${digestOf('hello world').slice(7, 9)}/${digestOf('hello world').slice(7)}`);
  });

  it('verifies uploads whose hash state is not in memory (after a restart) and sha512 digests', async () => {
    const driver = freshDriver();
    const first = new BlobStore(driver);
    await first.createUpload('u2');
    await first.append('u2', { offset: 0, body: chunks('abc') });
    const restarted = new BlobStore(driver);
    const size = await restarted.append('u2', { offset: 3, body: chunks('def') });
    await restarted.commit('u2', { size, digest: digestOf('abcdef', 'sha512') });
    assert.equal(await restarted.stat(digestOf('abcdef', 'sha512')), 6);
  });

  it('discards the tail of a cut-off append and counts only recorded bytes', async () => {
    const store = new BlobStore(freshDriver());
    await store.createUpload('u3');
    await store.append('u3', { offset: 0, body: chunks('keep') });
    await assert.rejects(
      store.append('u3', {
        offset: 4,
        body: (async function* () {
          yield Buffer.from('garbage');
          throw new Error('client went away');
        })(),
      }),
    );
    const size = await store.append('u3', { offset: 4, body: chunks('-me') });
    await store.commit('u3', { size, digest: digestOf('keep-me') });
    assert.equal(await store.stat(digestOf('keep-me')), 7);
  });

  it('enforces an expected length', async () => {
    const store = new BlobStore(freshDriver());
    await store.createUpload('u4');
    await assert.rejects(store.append('u4', { offset: 0, body: chunks('toolong'), expectedLength: 3 }), (e: unknown) => e instanceof RegistryError && e.code === 'SIZE_INVALID');
    await assert.rejects(store.append('u4', { offset: 0, body: chunks('ab'), expectedLength: 3 }), (e: unknown) => e instanceof RegistryError && e.code === 'SIZE_INVALID');
  });

  it('refuses upload ids that could name a path', async () => {
    const store = new BlobStore(freshDriver());
    assert.throws(() => store.uploadPath('../../etc'), RegistryError);
  });
});

describe('FileRangeStream', () => {
  const root = mkdtempSync(join(tmpdir(), 'wharf-range-'));
  roots.push(root);
  const file = join(root, 'data');
  const content = Buffer.from('The quick brown fox jumps over the lazy dog, twice: the quick brown fox.');
  writeFileSync(file, content);

  it('sends a whole file and a range through two reused buffers', async () => {
    for (const [offset, length] of [[0, undefined], [5, 40], [0, content.length], [70, 2]] as const) {
      const handle = await open(file);
      const stream = new FileRangeStream(handle, offset, length, 7);
      assert.ok(isSendable(stream));
      const received: Buffer[] = [];
      const backing = new Set<ArrayBufferLike>();
      await stream.sendTo(async (chunk) => {
        backing.add(chunk.buffer);
        received.push(Buffer.from(chunk)); // a copy: the chunk's buffer is reused
      });
      assert.equal(Buffer.concat(received).toString(), content.subarray(offset, length === undefined ? undefined : offset + length).toString());
      assert.ok(backing.size <= 2, `${backing.size} buffers for ${received.length} chunks`);
      assert.equal(handle.fd, -1, 'the file is closed');
    }
  });

  it('stops and closes the file when the sink fails', async () => {
    const handle = await open(file);
    const stream = new FileRangeStream(handle, 0, undefined, 8);
    let calls = 0;
    await assert.rejects(
      stream.sendTo(async () => {
        calls += 1;
        if (calls === 3) throw new Error('client went away');
      }),
      /client went away/,
    );
    assert.ok(calls <= 4);
    assert.equal(handle.fd, -1);
  });

  it('reads as an ordinary stream whose chunks stay valid after later reads', async () => {
    const handle = await open(file);
    const chunks: Buffer[] = [];
    // Kept without copying: a reused buffer would show up as wrong bytes here.
    for await (const chunk of new FileRangeStream(handle, 4, 30, 8)) chunks.push(chunk as Buffer);
    assert.equal(chunks.length, 4);
    assert.equal(Buffer.concat(chunks).toString(), content.subarray(4, 34).toString());
    assert.equal(handle.fd, -1);
  });
});
