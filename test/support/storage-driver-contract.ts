import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
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

    it('a file being written is not visible, and replaces the old one only when committed', async () => {
      const driver = await create();
      await put(driver, 'swap', Buffer.from('old'));
      const writer = await driver.writer('swap');
      await writer.write(Buffer.from('new content'));
      assert.equal((await readAll(await driver.reader('swap'))).toString(), 'old');
      assert.deepEqual(await driver.list(''), ['swap']);
      await writer.commit();
      assert.equal((await readAll(await driver.reader('swap'))).toString(), 'new content');
      const absent = await driver.writer('fresh/file');
      await absent.write(Buffer.from('x'));
      assert.equal(await driver.stat('fresh/file'), undefined);
      await absent.cancel();
      assert.equal(await driver.stat('fresh/file'), undefined);
    });

    it('cancel of a replacement keeps the old file', async () => {
      const driver = await create();
      await put(driver, 'kept', Buffer.from('old'));
      const writer = await driver.writer('kept');
      await writer.write(Buffer.from('never'));
      await writer.cancel();
      assert.equal((await readAll(await driver.reader('kept'))).toString(), 'old');
    });

    it('stores empty files and every byte value', async () => {
      const driver = await create();
      await put(driver, 'empty', Buffer.alloc(0));
      assert.equal((await driver.stat('empty'))?.size, 0);
      assert.equal((await readAll(await driver.reader('empty'))).length, 0);
      const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await put(driver, 'bytes', all);
      assert.ok((await readAll(await driver.reader('bytes'))).equals(all));
      assert.ok((await driver.stat('bytes'))!.modifiedAt instanceof Date);
    });

    it('streams a large file in and out unchanged', async () => {
      const driver = await create();
      const data = randomBytes(24 * 1024 * 1024 + 11);
      const writer = await driver.writer('large');
      for (let offset = 0; offset < data.length; offset += 1_000_003) await writer.write(data.subarray(offset, offset + 1_000_003));
      await writer.commit();
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of (await driver.reader('large')) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        size += chunk.length;
      }
      assert.equal(size, data.length);
      assert.equal(hash.digest('hex'), createHash('sha256').update(data).digest('hex'));
    });

    it('reads ranges at the boundaries', async () => {
      const driver = await create();
      const data = Buffer.from('0123456789');
      await put(driver, 'ranges', data);
      assert.equal((await readAll(await driver.reader('ranges', { offset: 9, length: 1 }))).toString(), '9');
      assert.equal((await readAll(await driver.reader('ranges', { offset: 0, length: 1 }))).toString(), '0');
      assert.equal((await readAll(await driver.reader('ranges', { offset: 10 }))).length, 0);
      assert.equal((await readAll(await driver.reader('ranges', { offset: 4, length: 100 }))).toString(), '456789');
      assert.equal((await readAll(await driver.reader('ranges', { offset: 0, length: 10 }))).toString(), '0123456789');
    });

    it('serves many readers of one file at once', async () => {
      const driver = await create();
      const data = randomBytes(3 * 1024 * 1024);
      await put(driver, 'shared', data);
      const results = await Promise.all(Array.from({ length: 8 }, async (_, i) => readAll(await driver.reader('shared', { offset: i * 1000 }))));
      results.forEach((result, i) => assert.ok(result.equals(data.subarray(i * 1000))));
    });

    it('concurrent writers of one path: the file is wholly one of them', async () => {
      const driver = await create();
      const a = Buffer.alloc(2 * 1024 * 1024, 0x61);
      const b = Buffer.alloc(3 * 1024 * 1024, 0x62);
      await Promise.all([put(driver, 'contended', a), put(driver, 'contended', b)]);
      const result = await readAll(await driver.reader('contended'));
      assert.ok(result.equals(a) || result.equals(b));
    });

    it('a reader opened before a move or delete reads the old file whole or fails, never a mix', async () => {
      const driver = await create();
      const old = Buffer.alloc(2 * 1024 * 1024, 0x6f);
      await put(driver, 'target', old);
      await put(driver, 'incoming', Buffer.alloc(2 * 1024 * 1024, 0x6e));
      const before = await driver.reader('target');
      await driver.move('incoming', 'target');
      const read = await readAll(before).catch(() => undefined);
      if (read) assert.ok(read.equals(old));
      const doomed = await driver.reader('target');
      await driver.delete('target');
      const after = await readAll(doomed).catch(() => undefined);
      if (after) assert.equal(after.length, 2 * 1024 * 1024);
      assert.equal(await driver.stat('target'), undefined);
    });

    it('concatenates byte ranges of files into a new file, leaving the sources', async () => {
      const driver = await create();
      await put(driver, 'parts/a', Buffer.from('alpha'));
      await put(driver, 'parts/b', Buffer.from('betaXXXX'));
      await put(driver, 'parts/c', Buffer.from(''));
      await put(driver, 'joined', Buffer.from('old'));
      await driver.concat(
        [
          { path: 'parts/a', length: 5 },
          { path: 'parts/b', length: 4 },
          { path: 'parts/c', length: 0 },
          { path: 'parts/a', length: 2 },
        ],
        'joined',
      );
      assert.equal((await readAll(await driver.reader('joined'))).toString(), 'alphabetaal');
      assert.equal((await readAll(await driver.reader('parts/b'))).toString(), 'betaXXXX');
      await driver.concat([], 'nothing');
      assert.equal((await driver.stat('nothing'))?.size, 0);
    });

    it('a concat with a missing or short source fails and leaves the destination as it was', async () => {
      const driver = await create();
      await put(driver, 'p/a', Buffer.from('abc'));
      await put(driver, 'dest', Buffer.from('kept'));
      await assert.rejects(driver.concat([{ path: 'p/a', length: 3 }, { path: 'p/missing', length: 1 }], 'dest'), PathNotFoundError);
      await assert.rejects(driver.concat([{ path: 'p/a', length: 4 }], 'dest'), PathNotFoundError);
      assert.equal((await readAll(await driver.reader('dest'))).toString(), 'kept');
    });

    it('walks every file under a prefix with its size, and nothing under a missing one', async () => {
      const driver = await create();
      await put(driver, 'w/one', Buffer.from('1'));
      await put(driver, 'w/two/three', Buffer.from('333'));
      await put(driver, 'w/two/four/five', Buffer.from('55555'));
      await put(driver, 'other/six', Buffer.from('666666'));
      const inProgress = await driver.writer('w/unfinished');
      await inProgress.write(Buffer.from('x'));
      const seen = new Map<string, number>();
      for await (const entry of driver.walk('w')) seen.set(entry.path, entry.size);
      assert.deepEqual(
        [...seen].sort(),
        [
          ['w/one', 1],
          ['w/two/four/five', 5],
          ['w/two/three', 3],
        ],
      );
      const everything: string[] = [];
      for await (const entry of driver.walk('')) everything.push(entry.path);
      assert.deepEqual(everything.sort(), ['other/six', 'w/one', 'w/two/four/five', 'w/two/three']);
      const none: string[] = [];
      for await (const entry of driver.walk('no/such')) none.push(entry.path);
      assert.deepEqual(none, []);
      await inProgress.cancel();
    });

    it('lists a directory of many files', async () => {
      const driver = await create();
      await Promise.all(Array.from({ length: 150 }, (_, i) => put(driver, `many/${String(i).padStart(3, '0')}`, Buffer.from([i]))));
      const names = await driver.list('many');
      assert.equal(names.length, 150);
      assert.ok(names.includes('149'));
    });

    it('moves into a new deep directory, and a missing source fails', async () => {
      const driver = await create();
      await put(driver, 'm/src', Buffer.from('m'));
      await driver.move('m/src', 'm/a/b/c/d');
      assert.equal((await readAll(await driver.reader('m/a/b/c/d'))).toString(), 'm');
      await assert.rejects(driver.move('m/src', 'm/x'), PathNotFoundError);
      await assert.rejects(driver.reader('m/src'), PathNotFoundError);
    });

    it('overwriting with shorter content leaves no tail, and stat follows', async () => {
      const driver = await create();
      await put(driver, 'shrink', Buffer.from('a long first version'));
      const first = (await driver.stat('shrink'))!;
      await put(driver, 'shrink', Buffer.from('short'));
      assert.equal((await readAll(await driver.reader('shrink'))).toString(), 'short');
      const second = (await driver.stat('shrink'))!;
      assert.equal(second.size, 5);
      assert.ok(second.modifiedAt.getTime() >= first.modifiedAt.getTime());
    });

    it('a directory-like prefix is not a file: stat is undefined and reader throws PathNotFoundError', async () => {
      const driver = await create();
      await put(driver, 'prefix/child', Buffer.from('x'));
      assert.equal(await driver.stat('prefix'), undefined);
      await assert.rejects(driver.reader('prefix'), PathNotFoundError);
    });

    it('deleting a file leaves its siblings; deleting a prefix spares names that only start alike', async () => {
      const driver = await create();
      await put(driver, 'd/a', Buffer.from('1'));
      await put(driver, 'd/b', Buffer.from('2'));
      await put(driver, 'd/bc/x', Buffer.from('3'));
      await put(driver, 'dd/a', Buffer.from('4'));
      await driver.delete('d/a');
      assert.equal(await driver.stat('d/a'), undefined);
      assert.equal((await driver.stat('d/b'))?.size, 1);
      await driver.delete('d/b');
      assert.equal((await driver.stat('d/bc/x'))?.size, 1, 'd/b is not a prefix of d/bc');
      await driver.delete('d');
      assert.equal(await driver.stat('d/bc/x'), undefined);
      assert.equal((await driver.stat('dd/a'))?.size, 1, 'd is not a prefix of dd');
    });

    it('listing or walking a file path finds nothing under it', async () => {
      const driver = await create();
      await put(driver, 'plain/file', Buffer.from('x'));
      assert.deepEqual(await driver.list('plain/file'), []);
      const walked: string[] = [];
      for await (const entry of driver.walk('plain/file')) walked.push(entry.path);
      assert.deepEqual(walked, []);
    });

    it('moves over a larger destination without leaving its tail', async () => {
      const driver = await create();
      await put(driver, 'mv/small', Buffer.from('small'));
      await put(driver, 'mv/large', Buffer.alloc(100_000, 0x6c));
      await driver.move('mv/small', 'mv/large');
      assert.equal((await readAll(await driver.reader('mv/large'))).toString(), 'small');
      assert.equal((await driver.stat('mv/large'))?.size, 5);
    });

    it('concatenates one whole source, many small ones, and sources larger than an object store part', async () => {
      const driver = await create();
      await put(driver, 'one', Buffer.from('only'));
      await driver.concat([{ path: 'one', length: 4 }], 'one-copy');
      assert.equal((await readAll(await driver.reader('one-copy'))).toString(), 'only');
      const pieces = Array.from({ length: 100 }, (_, i) => Buffer.from(`piece ${i};`));
      await Promise.all(pieces.map((piece, i) => put(driver, `pieces/${i}`, piece)));
      await driver.concat(pieces.map((piece, i) => ({ path: `pieces/${i}`, length: piece.length })), 'pieces-joined');
      assert.ok((await readAll(await driver.reader('pieces-joined'))).equals(Buffer.concat(pieces)));
      const big = [randomBytes(6 * 1024 * 1024 + 1), randomBytes(5 * 1024 * 1024 + 7)];
      await put(driver, 'big/0', big[0]!);
      await put(driver, 'big/1', big[1]!);
      await driver.concat([{ path: 'big/0', length: big[0]!.length }, { path: 'big/1', length: big[1]!.length }], 'big/joined');
      const joined = await readAll(await driver.reader('big/joined'));
      assert.equal(createHash('sha256').update(joined).digest('hex'), createHash('sha256').update(Buffer.concat(big)).digest('hex'));
    });

    it('concatenates into one of its own sources', async () => {
      const driver = await create();
      await put(driver, 'self', Buffer.from('ab'));
      await driver.concat([{ path: 'self', length: 2 }, { path: 'self', length: 1 }], 'self');
      assert.equal((await readAll(await driver.reader('self'))).toString(), 'aba');
    });

    it('a writer refuses writes after commit, and a cancel after a commit keeps the file', async () => {
      const driver = await create();
      const writer = await driver.writer('done');
      await writer.write(Buffer.from('final'));
      assert.equal(writer.size, 5);
      await writer.commit();
      await assert.rejects(writer.write(Buffer.from('more')));
      await writer.cancel();
      assert.equal((await readAll(await driver.reader('done'))).toString(), 'final');
    });

    it('writes ten thousand one-byte chunks in order', async () => {
      const driver = await create();
      const writer = await driver.writer('tiny');
      const expected = Buffer.alloc(10_000);
      for (let i = 0; i < 10_000; i += 1) {
        expected[i] = i % 251;
        await writer.write(Buffer.from([i % 251]));
      }
      await writer.commit();
      assert.ok((await readAll(await driver.reader('tiny'))).equals(expected));
    });

    it('many writers of different files in one directory at once', async () => {
      const driver = await create();
      const files = Array.from({ length: 40 }, (_, i) => randomBytes(10_000 + i));
      await Promise.all(files.map((data, i) => put(driver, `crowd/${i}`, data)));
      const read = await Promise.all(files.map(async (_, i) => readAll(await driver.reader(`crowd/${i}`))));
      read.forEach((data, i) => assert.ok(data.equals(files[i]!)));
      assert.equal((await driver.list('crowd')).length, 40);
    });

    it('keeps deep paths and names with dots, dashes and underscores', async () => {
      const driver = await create();
      const path = 'a/b/c/d/e/f/g/h/i/j/file.name-with_parts.0';
      await put(driver, path, Buffer.from('deep'));
      assert.equal((await readAll(await driver.reader(path))).toString(), 'deep');
      const walked: string[] = [];
      for await (const entry of driver.walk('a/b/c')) walked.push(entry.path);
      assert.deepEqual(walked, [path]);
    });

    it('walks hundreds of files across directories, each once, with the sizes stat gives', async () => {
      const driver = await create();
      const expected = new Map<string, number>();
      for (let dir = 0; dir < 10; dir += 1) {
        for (let file = 0; file < 30; file += 1) {
          const path = `walk/${String(dir).padStart(2, '0')}/${file}`;
          expected.set(path, dir + file);
        }
      }
      await Promise.all([...expected].map(([path, size]) => put(driver, path, Buffer.alloc(size, 1))));
      const seen = new Map<string, number>();
      for await (const entry of driver.walk('walk')) {
        assert.equal(seen.has(entry.path), false, `walked twice: ${entry.path}`);
        seen.set(entry.path, entry.size);
        assert.ok(entry.modifiedAt instanceof Date);
      }
      assert.deepEqual([...seen].sort(), [...expected].sort());
      assert.equal((await driver.stat('walk/03/7'))?.size, seen.get('walk/03/7'));
    });

    it('reads a range from the middle of a large file across chunk boundaries', async () => {
      const driver = await create();
      const data = randomBytes(5 * 1024 * 1024);
      await put(driver, 'middle', data);
      const part = await readAll(await driver.reader('middle', { offset: 1_000_001, length: 3_000_000 }));
      assert.ok(part.equals(data.subarray(1_000_001, 4_000_001)));
    });

    it('an empty file reads as nothing, whole or by a zero-length range', async () => {
      const driver = await create();
      await put(driver, 'nothing', Buffer.alloc(0));
      assert.equal((await readAll(await driver.reader('nothing', { offset: 0, length: 0 }))).length, 0);
      assert.equal((await readAll(await driver.reader('nothing', { offset: 0 }))).length, 0);
    });

    it('deleteMany, where a driver has it, deletes each file given, skips absent ones and spares the rest', async () => {
      const driver = await create();
      if (!driver.deleteMany) return; // optional: callers fall back to delete
      const paths = Array.from({ length: 150 }, (_, i) => `many/${(i % 7).toString()}/f${i}`);
      for (const path of paths) await put(driver, path, Buffer.from(path));
      await put(driver, 'many/keep', Buffer.from('keep'));
      await driver.deleteMany([...paths, 'many/absent', 'never/there']);
      for (const path of paths) assert.equal(await driver.stat(path), undefined, path);
      assert.equal((await driver.stat('many/keep'))?.size, 4);
      await driver.deleteMany([]);
    });

    it('a stat and a listing after delete no longer see the file', async () => {
      const driver = await create();
      await put(driver, 'gone/file', Buffer.from('x'));
      await driver.delete('gone/file');
      assert.equal(await driver.stat('gone/file'), undefined);
      assert.deepEqual(await driver.list('gone'), []);
      await assert.rejects(driver.reader('gone/file'), PathNotFoundError);
    });

    it('a reader destroyed early releases the file, which can then be deleted', async () => {
      const driver = await create();
      await put(driver, 'early', randomBytes(4 * 1024 * 1024));
      const stream = await driver.reader('early');
      for await (const _chunk of stream as AsyncIterable<Buffer>) break;
      stream.destroy();
      await driver.delete('early');
      assert.equal(await driver.stat('early'), undefined);
    });

    it('readers of a concat destination see the old file or the whole new one', async () => {
      const driver = await create();
      const old = Buffer.alloc(1024 * 1024, 0x30);
      await put(driver, 'cdest', old);
      await put(driver, 'csrc/a', Buffer.alloc(1024 * 1024, 0x31));
      await put(driver, 'csrc/b', Buffer.alloc(1024 * 1024, 0x32));
      const reads = Array.from({ length: 5 }, async () => readAll(await driver.reader('cdest')));
      await driver.concat([{ path: 'csrc/a', length: 1024 * 1024 }, { path: 'csrc/b', length: 1024 * 1024 }], 'cdest');
      for (const read of await Promise.all(reads)) assert.ok(read.equals(old) || read.length === 2 * 1024 * 1024);
      assert.equal((await driver.stat('cdest'))?.size, 2 * 1024 * 1024);
    });

    it('a delete of the path while a writer writes it does not stop the writer\'s commit', async () => {
      const driver = await create();
      await put(driver, 'raced', Buffer.from('old'));
      const writer = await driver.writer('raced');
      await writer.write(Buffer.from('new'));
      await driver.delete('raced');
      await writer.commit();
      assert.equal((await readAll(await driver.reader('raced'))).toString(), 'new');
    });

    it('walks while files are being written and deleted, without failing', async () => {
      const driver = await create();
      await Promise.all(Array.from({ length: 50 }, (_, i) => put(driver, `busy/${i}`, Buffer.from([i]))));
      const churn = (async () => {
        for (let i = 0; i < 50; i += 1) {
          await put(driver, `busy/new-${i}`, Buffer.from([i]));
          await driver.delete(`busy/${i}`);
        }
      })();
      const seen: string[] = [];
      for await (const entry of driver.walk('busy')) seen.push(entry.path);
      await churn;
      assert.ok(seen.every((path) => path.startsWith('busy/')));
      let after = 0;
      for await (const _entry of driver.walk('busy')) after += 1;
      assert.equal(after, 50);
    });

    it('lists a thousand files in one directory', async () => {
      const driver = await create();
      for (let batch = 0; batch < 10; batch += 1) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => put(driver, `thousand/${batch * 100 + i}`, Buffer.from('x'))));
      }
      const names = await driver.list('thousand');
      assert.equal(names.length, 1000);
      assert.equal(new Set(names).size, 1000);
    });

    it('reads the last byte of a file by offset alone', async () => {
      const driver = await create();
      await put(driver, 'last', Buffer.from('xyz'));
      assert.equal((await readAll(await driver.reader('last', { offset: 2 }))).toString(), 'z');
      await put(driver, 'single', Buffer.from('1'));
      assert.equal((await readAll(await driver.reader('single', { offset: 0 }))).toString(), '1');
    });

    it('moves a file away and back', async () => {
      const driver = await create();
      await put(driver, 'there/file', Buffer.from('round trip'));
      await driver.move('there/file', 'back/again/file');
      await driver.move('back/again/file', 'there/file');
      assert.equal((await readAll(await driver.reader('there/file'))).toString(), 'round trip');
      assert.equal(await driver.stat('back/again/file'), undefined);
    });

    it('fifty overwrites in a row leave the last', async () => {
      const driver = await create();
      for (let i = 0; i < 50; i += 1) await put(driver, 'again', Buffer.from(`version ${i}`));
      assert.equal((await readAll(await driver.reader('again'))).toString(), 'version 49');
    });

    it('an optional redirect URL, where a driver offers one, is an absolute URL or nothing', async () => {
      const driver = await create();
      await put(driver, 'redirected', Buffer.from('r'));
      if (!driver.redirectURL) return assert.equal(driver.redirectURL, undefined);
      const url = await driver.redirectURL('redirected', { expiresInSeconds: 60 });
      if (url !== undefined) assert.ok(/^https?:\/\//.test(url), url);
    });

    it('a move of a missing source fails and leaves the destination as it was', async () => {
      const driver = await create();
      await put(driver, 'kept', Buffer.from('still here'));
      await assert.rejects(driver.move('absent', 'kept'), PathNotFoundError);
      assert.equal((await readAll(await driver.reader('kept'))).toString(), 'still here');
    });

    it('deleting, listing and walking absent paths is not an error', async () => {
      const driver = await create();
      await driver.delete('never/was');
      await driver.delete('never/was');
      assert.deepEqual(await driver.list('never'), []);
      const walked: string[] = [];
      for await (const entry of driver.walk('never')) walked.push(entry.path);
      assert.deepEqual(walked, []);
    });

    it('a writer counts the bytes it took, and stat gives the same size and a recent time', async () => {
      const driver = await create();
      const before = Date.now();
      const writer = await driver.writer('counted');
      assert.equal(writer.size, 0);
      await writer.write(Buffer.alloc(1000, 1));
      await writer.write(Buffer.alloc(24, 2));
      assert.equal(writer.size, 1024);
      await writer.commit();
      const info = await driver.stat('counted');
      assert.equal(info?.size, 1024);
      // Clocks of a remote store may differ a little from ours.
      assert.ok(info && Math.abs(info.modifiedAt.getTime() - before) < 5 * 60_000, String(info?.modifiedAt));
    });

    it('readers of a file being replaced see the old bytes or the new ones, whole', async () => {
      const driver = await create();
      const older = randomBytes(256 * 1024);
      const newer = randomBytes(256 * 1024);
      await put(driver, 'swapped', older);
      const reads = Array.from({ length: 8 }, async () => {
        try {
          return await readAll(await driver.reader('swapped'));
        } catch (error) {
          if (error instanceof PathNotFoundError) return undefined;
          throw error;
        }
      });
      await put(driver, 'swapped', newer);
      for (const got of await Promise.all(reads)) {
        if (got === undefined) continue;
        assert.ok(got.equals(older) || got.equals(newer), 'a read mixed two versions');
      }
      assert.ok((await readAll(await driver.reader('swapped'))).equals(newer));
    });

    it('a concat from a range shorter than its source takes only that prefix', async () => {
      const driver = await create();
      await put(driver, 'long', Buffer.from('0123456789'));
      await driver.concat([{ path: 'long', length: 4 }, { path: 'long', length: 0 }, { path: 'long', length: 2 }], 'prefixes');
      assert.equal((await readAll(await driver.reader('prefixes'))).toString(), '012301');
      assert.equal((await driver.stat('prefixes'))?.size, 6);
    });

    it('paths that differ only in case or by a trailing segment are different files', async () => {
      const driver = await create();
      await put(driver, 'Case/File', Buffer.from('upper'));
      await put(driver, 'case/file', Buffer.from('lower'));
      await put(driver, 'case/file2', Buffer.from('other'));
      assert.equal((await readAll(await driver.reader('Case/File'))).toString(), 'upper');
      assert.equal((await readAll(await driver.reader('case/file'))).toString(), 'lower');
      assert.deepEqual((await driver.list('case')).sort(), ['file', 'file2']);
    });

    it('a writer cancelled after more than an object store part leaves the old file and nothing else', async () => {
      const driver = await create();
      await put(driver, 'big-cancel/file', Buffer.from('old'));
      const writer = await driver.writer('big-cancel/file');
      for (let i = 0; i < 12; i += 1) await writer.write(randomBytes(1024 * 1024));
      assert.equal(writer.size, 12 * 1024 * 1024);
      await writer.cancel();
      assert.equal((await readAll(await driver.reader('big-cancel/file'))).toString(), 'old');
      assert.deepEqual(await driver.list('big-cancel'), ['file']);
    });

    it('concatenates small ranges before, between and after large ones, and a large range cut short', async () => {
      const driver = await create();
      const small = randomBytes(300 * 1024);
      const large = randomBytes(11 * 1024 * 1024 + 5);
      await put(driver, 'mix/small', small);
      await put(driver, 'mix/large', large);
      const ranges = [
        { path: 'mix/small', length: small.length },
        { path: 'mix/large', length: large.length },
        { path: 'mix/small', length: 10 },
        { path: 'mix/large', length: 7 * 1024 * 1024 + 1 },
        { path: 'mix/small', length: small.length },
      ];
      await driver.concat(ranges, 'mix/joined');
      const expected = Buffer.concat(ranges.map((range) => (range.path === 'mix/small' ? small : large).subarray(0, range.length)));
      const joined = await readAll(await driver.reader('mix/joined'));
      assert.equal(joined.length, expected.length);
      assert.equal(createHash('sha256').update(joined).digest('hex'), createHash('sha256').update(expected).digest('hex'));
    });

    it('walks, lists and deletes more files than one listing page holds', async () => {
      const driver = await create();
      for (let batch = 0; batch < 11; batch += 1) {
        await Promise.all(Array.from({ length: 100 }, (_, i) => put(driver, `paged/${String(batch * 100 + i).padStart(4, '0')}`, Buffer.from([i]))));
      }
      assert.equal((await driver.list('paged')).length, 1100);
      let walked = 0;
      for await (const _entry of driver.walk('paged')) walked += 1;
      assert.equal(walked, 1100);
      await driver.delete('paged');
      assert.deepEqual(await driver.list('paged'), []);
    });

    it('a redirect URL, where offered, serves the bytes and byte ranges to a plain HTTP client', async () => {
      const driver = await create();
      await put(driver, 'presigned/file', Buffer.from('0123456789'));
      const url = await driver.redirectURL?.('presigned/file', { expiresInSeconds: 60 });
      if (url === undefined) return;
      const whole = await fetch(url);
      assert.equal(whole.status, 200);
      assert.equal(await whole.text(), '0123456789');
      const ranged = await fetch(url, { headers: { Range: 'bytes=3-5' } });
      assert.equal(ranged.status, 206);
      assert.equal(await ranged.text(), '345');
    });

    it('never resolves a path outside its root', async () => {
      const driver = await create();
      await assert.rejects(driver.stat('../../etc/passwd'));
    });
  });
}
