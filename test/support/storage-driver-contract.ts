import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PathNotFoundError, type StorageDriver } from '../../src/storage/driver.js';

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function put(driver: StorageDriver, path: string, data: Buffer): Promise<void> {
  const writer = await driver.writer(path);
  await writer.write(data);
  await writer.commit();
}

/**
 * The behaviour every StorageDriver must have. Each implementation's test file calls this with a
 * factory that returns a fresh, empty driver.
 */
export function storageDriverContract(name: string, create: () => Promise<StorageDriver>): void {
  describe(`StorageDriver contract: ${name}`, () => {
    it('stat of a missing path is undefined; reader throws PathNotFoundError', async () => {
      const driver = await create();
      assert.equal(await driver.stat('nothing/here'), undefined);
      await assert.rejects(driver.reader('nothing/here'), PathNotFoundError);
    });

    it('writes, stats and reads back, whole and by range', async () => {
      const driver = await create();
      const data = Buffer.from('hello, storage driver');
      await put(driver, 'a/b/c', data);
      assert.equal((await driver.stat('a/b/c'))?.size, data.length);
      assert.ok((await readAll(await driver.reader('a/b/c'))).equals(data));
      assert.equal((await readAll(await driver.reader('a/b/c', { offset: 7, length: 7 }))).toString(), 'storage');
      assert.equal((await readAll(await driver.reader('a/b/c', { offset: 14 }))).toString(), ' driver');
      assert.equal((await readAll(await driver.reader('a/b/c', { offset: 3, length: 0 }))).length, 0);
    });

    it('writes many chunks in order', async () => {
      const driver = await create();
      const writer = await driver.writer('many');
      const parts: Buffer[] = [];
      for (let i = 0; i < 200; i += 1) {
        const part = Buffer.alloc(10_000, i);
        parts.push(part);
        await writer.write(part);
      }
      assert.equal(writer.size, 2_000_000);
      await writer.commit();
      assert.ok((await readAll(await driver.reader('many'))).equals(Buffer.concat(parts)));
    });

    it('resumes a file, discarding what lies beyond the resume point', async () => {
      const driver = await create();
      await put(driver, 'resume', Buffer.from('0123456789'));
      const writer = await driver.writer('resume', { resumeAt: 4 });
      assert.equal(writer.size, 4);
      await writer.write(Buffer.from('abc'));
      await writer.close();
      assert.equal((await readAll(await driver.reader('resume'))).toString(), '0123abc');
    });

    it('refuses to resume a missing file or past its end', async () => {
      const driver = await create();
      await assert.rejects(driver.writer('absent', { resumeAt: 0 }), PathNotFoundError);
      await put(driver, 'short', Buffer.from('abc'));
      await assert.rejects(driver.writer('short', { resumeAt: 10 }), PathNotFoundError);
    });

    it('cancel removes the file', async () => {
      const driver = await create();
      const writer = await driver.writer('cancelled');
      await writer.write(Buffer.from('x'));
      await writer.cancel();
      assert.equal(await driver.stat('cancelled'), undefined);
    });

    it('moves a file over another, and deletes trees', async () => {
      const driver = await create();
      await put(driver, 'src/file', Buffer.from('new'));
      await put(driver, 'dst/deep/file', Buffer.from('old'));
      await driver.move('src/file', 'dst/deep/file');
      assert.equal(await driver.stat('src/file'), undefined);
      assert.equal((await readAll(await driver.reader('dst/deep/file'))).toString(), 'new');
      await assert.rejects(driver.move('src/file', 'elsewhere'), PathNotFoundError);
      await driver.delete('dst');
      assert.equal(await driver.stat('dst/deep/file'), undefined);
      await driver.delete('never/existed');
    });

    it('lists the children of a directory', async () => {
      const driver = await create();
      await put(driver, 'dir/one', Buffer.from('1'));
      await put(driver, 'dir/two/three', Buffer.from('3'));
      assert.deepEqual((await driver.list('dir')).sort(), ['one', 'two']);
      assert.deepEqual(await driver.list('no/such/dir'), []);
    });

    it('never resolves a path outside its root', async () => {
      const driver = await create();
      await assert.rejects(driver.stat('../../etc/passwd'));
    });
  });
}
