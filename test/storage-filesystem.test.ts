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
  it('places verified parts content-addressed: one part is moved, several are concatenated', async () => {
    const driver = freshDriver();
    const store = new BlobStore(driver);
    const one = await store.writePart('u1', { offset: 0, body: chunks('hello ', 'world') });
    assert.equal(one.part?.size, 11);
    assert.equal(await store.digestOf('u1', [one.part!], one.hashState, 'sha256'), digestOf('hello world'));
    await store.placeBlob('u1', [one.part!], digestOf('hello world'));
    assert.equal(await store.stat(digestOf('hello world')), 11);
    assert.equal(store.blobPath(digestOf('hello world')), `blobs/sha256/${digestOf('hello world').slice(7, 9)}/${digestOf('hello world').slice(7)}`);

    const a = await store.writePart('u2', { offset: 0, body: chunks('abc') });
    const b = await store.writePart('u2', { offset: 3, body: chunks('def'), hashState: a.hashState! });
    await store.placeBlob('u2', [a.part!, b.part!], digestOf('abcdef'));
    assert.equal((await readAll(await store.reader(digestOf('abcdef')))).toString(), 'abcdef');
    const walked = [];
    for await (const blob of store.walkBlobs()) walked.push(blob.digest);
    assert.deepEqual(walked.sort(), [digestOf('abcdef'), digestOf('hello world')].sort());
  });

  it('computes the digest from the parts when the hash state is unknown, and for sha512', async () => {
    const store = new BlobStore(freshDriver());
    const a = await store.writePart('u2', { offset: 0, body: chunks('abc') });
    // A later part without the state (an upload from before hash states were kept) is not hashed.
    const b = await store.writePart('u2', { offset: 3, body: chunks('def') });
    assert.equal(b.hashState, undefined);
    assert.equal(await store.digestOf('u2', [a.part!, b.part!], undefined, 'sha256'), digestOf('abcdef'));
    assert.equal(await store.digestOf('u2', [a.part!, b.part!], a.hashState, 'sha512'), digestOf('abcdef', 'sha512'));
  });

  it('two parts written at the same offset at the same time are separate files', async () => {
    const store = new BlobStore(freshDriver());
    const [x, y] = await Promise.all([
      store.writePart('u3', { offset: 0, body: chunks('xxxx', 'xxxx') }),
      store.writePart('u3', { offset: 0, body: chunks('yyyy', 'yyyy') }),
    ]);
    assert.notEqual(x.part!.name, y.part!.name);
    assert.equal(await store.digestOf('u3', [x.part!], undefined, 'sha256'), digestOf('xxxxxxxx'));
    assert.equal(await store.digestOf('u3', [y.part!], undefined, 'sha256'), digestOf('yyyyyyyy'));
    assert.equal(await store.digestOf('u3', [x.part!], x.hashState, 'sha256'), digestOf('xxxxxxxx'));
  });

  it('enforces an expected length, and an empty body makes no part', async () => {
    const store = new BlobStore(freshDriver());
    await assert.rejects(store.writePart('u4', { offset: 0, body: chunks('toolong'), expectedLength: 3 }), (e: unknown) => e instanceof RegistryError && e.code === 'SIZE_INVALID');
    await assert.rejects(store.writePart('u4', { offset: 0, body: chunks('ab'), expectedLength: 3 }), (e: unknown) => e instanceof RegistryError && e.code === 'SIZE_INVALID');
    assert.equal((await store.writePart('u4', { offset: 0, body: chunks() })).part, undefined);
  });

  it('quarantines a blob, keeping its bytes aside', async () => {
    const driver = freshDriver();
    const store = new BlobStore(driver);
    const one = await store.writePart('u5', { offset: 0, body: chunks('bad') });
    await store.placeBlob('u5', [one.part!], digestOf('good'));
    assert.equal((await store.rehash(digestOf('good'))).digest, digestOf('bad'));
    const aside = await store.quarantine(digestOf('good'));
    assert.equal(await store.stat(digestOf('good')), undefined);
    assert.equal((await driver.stat(aside))?.size, 3);
  });

  it('refuses upload ids that could name a path', async () => {
    const store = new BlobStore(freshDriver());
    assert.throws(() => store.uploadDirectory('../../etc'), RegistryError);
  });
});

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of stream) out.push(chunk);
  return Buffer.concat(out);
}

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
