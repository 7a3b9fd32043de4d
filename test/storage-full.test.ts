import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fill } from './support/disk.js';
import { errorCode, raw } from './support/http.js';
import { randomBlob } from './support/oci-fixtures.js';
import { pushBlob, startUpload } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const MiB = 1024 * 1024;
/** These cases fill the disk for real: the free-space minimum (test/disk-space-read-only.test.ts) would refuse first. */
const NO_FREE_SPACE_MINIMUM = { REGISTRY_STORAGE_FREESPACE_MINIMUM: '0' };

/** Files left anywhere under the upload and temporary areas of a data directory. */
function leftovers(dataDir: string): string[] {
  const out: string[] = [];
  for (const area of ['.tmp', 'uploads']) {
    const walk = (dir: string) => {
      if (!existsSync(dir)) return;
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else out.push(path);
      }
    };
    walk(join(dataDir, area));
  }
  return out;
}

describe('a full disk: a clear 507, a log line with the cause, nothing left behind, and pulls keep working', () => {
  // A small file system of the test's own: a tmpfs (the test runs as root, as CI does).
  const mountPoint = mkdtempSync(join(tmpdir(), 'wharf-full-'));
  const dataDir = join(mountPoint, 'data');
  const filler = join(mountPoint, 'filler');
  let wharf: WharfProcess;
  const kept = randomBlob(2 * MiB);
  const big = randomBlob(30 * MiB);

  before(async () => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mountPoint]);
    mkdirSync(dataDir);
    wharf = await startWharf({ dataDir, env: NO_FREE_SPACE_MINIMUM });
    await pushBlob(wharf.url, 'full/app', kept);
  });
  after(async () => {
    await wharf?.stop();
    execFileSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  /** The registry said it found the disk full, serves the blob it has and refuses new ones with 507. */
  async function assertServesPullsOnly(): Promise<void> {
    assert.match(wharf.output(), /storage is full: serving pulls only/);
    const pulled = await raw(wharf.url, 'GET', `/v2/full/app/blobs/${kept.digest}`);
    assert.equal(pulled.status, 200);
    assert.ok(pulled.body.equals(kept.data));
    const push = await raw(wharf.url, 'POST', '/v2/full/app/blobs/uploads/');
    assert.equal(push.status, 507);
    assert.equal(errorCode(push), 'STORAGE_FULL');
  }

  it('a 30 MiB push onto 20 MB of free space gets 507 STORAGE_FULL, not a reset, and leaves no partial data', async () => {
    fill(filler, mountPoint, 20 * 1000 * 1000);
    const monolithic = await raw(wharf.url, 'POST', `/v2/full/app/blobs/uploads/?digest=${big.digest}`, {
      headers: { 'Content-Type': 'application/octet-stream' },
      body: big.data,
    });
    assert.equal(monolithic.status, 507);
    assert.equal(errorCode(monolithic), 'STORAGE_FULL');
    // The log line may trail the response by a moment.
    for (let i = 0; i < 50 && !/ENOSPC/.test(wharf.output()); i += 1) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.match(wharf.output(), /ENOSPC/, 'the log says why');

    const location = await startUpload(wharf.url, 'full/app');
    const chunk = await raw(wharf.url, 'PATCH', location, { headers: { 'Content-Type': 'application/octet-stream' }, body: big.data });
    assert.equal(chunk.status, 507);
    assert.equal(errorCode(chunk), 'STORAGE_FULL');
    // The session itself survives, empty, for a retry once there is room.
    const status = await raw(wharf.url, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.header('range'), '0-0');
    assert.deepEqual(leftovers(dataDir), []);
    assert.equal((await raw(wharf.url, 'HEAD', `/v2/full/app/blobs/${big.digest}`)).status, 404);

    rmSync(filler);
    const retry = await raw(wharf.url, 'PATCH', location, { headers: { 'Content-Type': 'application/octet-stream' }, body: big.data });
    assert.equal(retry.status, 202);
    assert.equal((await raw(wharf.url, 'PUT', `${location}?digest=${big.digest}`)).status, 201);
    assert.ok((await raw(wharf.url, 'GET', `/v2/full/app/blobs/${big.digest}`)).body.equals(big.data));
  });

  it('started on a 100 % full disk, it serves pulls and answers pushes with 507', async () => {
    await wharf.stop();
    fill(filler, mountPoint, 0);
    wharf = await startWharf({ dataDir, env: NO_FREE_SPACE_MINIMUM });
    await assertServesPullsOnly();
  });

  it('after a crash that left SQLite\'s shared-memory file, a full disk is still found at start', async () => {
    await wharf.stop();
    rmSync(filler, { force: true });
    wharf = await startWharf({ dataDir, env: NO_FREE_SPACE_MINIMUM });
    assert.equal((await raw(wharf.url, 'HEAD', `/v2/full/app/blobs/${kept.digest}`)).status, 200);
    await wharf.kill();
    // A killed process leaves the -shm file, so opening the database needs no new space.
    assert.ok(readdirSync(dataDir).some((name) => name.endsWith('-shm')), `no -shm file in ${readdirSync(dataDir).join(', ')}`);
    fill(filler, mountPoint, 0);
    wharf = await startWharf({ dataDir, env: NO_FREE_SPACE_MINIMUM });
    await assertServesPullsOnly();
  });
});
