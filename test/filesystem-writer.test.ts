import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FilesystemDriver } from '../src/storage/filesystem-driver.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

test('a writer fed uneven chunks past several batches and background syncs stores every byte in order, visible only once committed', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wharf-fs-'));
  try {
    const driver = new FilesystemDriver(root);
    // 40 MiB crosses the 16 MiB background datasync twice and the write batches many times.
    const data = randomBytes(40 * 1024 * 1024);
    const writer = await driver.writer('uploads/x/data');
    const sizes = [1, 65_536, 7, 300_000, 1_048_576, 3, 2_000_000];
    let offset = 0;
    for (let i = 0; offset < data.length; i += 1) {
      const size = Math.min(sizes[i % sizes.length]!, data.length - offset);
      await writer.write(data.subarray(offset, offset + size));
      offset += size;
      if (i === 3) assert.equal(existsSync(join(root, 'uploads/x/data')), false, 'nothing at the path before commit');
    }
    assert.equal(writer.size, data.length);
    await writer.commit();
    assert.equal(sha256(readFileSync(join(root, 'uploads/x/data'))), sha256(data));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('cancel in the middle of writing leaves no file, and the old file in place', async () => {
  const root = mkdtempSync(join(tmpdir(), 'wharf-fs-'));
  try {
    const driver = new FilesystemDriver(root);
    const old = await driver.writer('uploads/y/data');
    await old.write(Buffer.from('old'));
    await old.commit();
    const writer = await driver.writer('uploads/y/data');
    for (let i = 0; i < 20; i += 1) await writer.write(randomBytes(1024 * 1024));
    await writer.cancel();
    assert.equal(readFileSync(join(root, 'uploads/y/data'), 'utf8'), 'old');
    let leftovers = 0;
    for await (const _ of driver.walk('')) leftovers += 1;
    assert.equal(leftovers, 1, 'no temporary file is left (or walked)');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
