import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fill } from './support/disk.js';
import { errorCode, raw } from './support/http.js';
import { randomBlob } from './support/oci-fixtures.js';
import { pushBlob, pushImage } from './support/push.js';
import { waitFor } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const MiB = 1024 * 1024;

/** One request on a connection of its own, so that successive ones go to the workers in turn. */
function fresh(base: string, method: string, path: string): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, agent: false, headers: { Connection: 'close' } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function readiness(base: string): Promise<{ status: number; checks: Record<string, string> }> {
  const res = await raw(base, 'GET', '/readyz');
  return { status: res.status, checks: res.json().checks };
}

describe('below storage.freespace.minimum, pushes are refused and pulls served, until space returns', () => {
  // A small file system of the test's own: a tmpfs (the test runs as root, as CI does).
  const mountPoint = mkdtempSync(join(tmpdir(), 'wharf-low-space-'));
  const dataDir = join(mountPoint, 'data');
  const filler = join(mountPoint, 'filler');
  let wharf: WharfProcess;
  let image: Awaited<ReturnType<typeof pushImage>>;
  const spare = randomBlob(100_000);

  before(async () => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mountPoint]);
    mkdirSync(dataDir);
    const config = join(mountPoint, 'config.yml');
    writeFileSync(config, 'storage:\n  freespace: {minimum: 24MiB, interval: 200ms}\n  delete: {enabled: true}\nserver: {workers: 2}\n');
    wharf = await startWharf({ dataDir, args: [config] });
    image = await pushImage(wharf.url, 'low/app', 'v1', {}, randomBlob(2 * MiB));
    await pushBlob(wharf.url, 'low/app', spare);
  });
  after(async () => {
    await wharf?.stop();
    execFileSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  it('turns read-only for pushes in every worker, says why in /readyz and the log, and keeps serving pulls', async () => {
    assert.deepEqual(await readiness(wharf.url), { status: 200, checks: { storage: 'ok', metadata: 'ok', freeSpace: 'ok' } });
    // 10 MB left: well below the 24 MiB minimum, yet room enough for anything to be written.
    fill(filler, mountPoint, 10 * 1000 * 1000);
    await waitFor(async () => (await readiness(wharf.url)).status === 503, '/readyz to report the low space');
    const ready = await readiness(wharf.url);
    assert.match(ready.checks.freeSpace!, /below storage\.freespace\.minimum \(24\.0 MiB\)/);
    assert.equal(ready.checks.storage, 'ok');
    await waitFor(() => /free space is below storage\.freespace\.minimum: refusing pushes, serving pulls/.test(wharf.output()), 'the log line');
    // Every process watches, one says so.
    assert.equal(wharf.output().match(/free space is below/g)?.length, 1);

    // Each on a connection of its own: both workers refuse.
    for (let i = 0; i < 4; i += 1) {
      const push = await fresh(wharf.url, 'POST', '/v2/low/app/blobs/uploads/');
      assert.equal(push.status, 507);
      assert.match(push.body, /"code":"STORAGE_FULL"/);
      assert.match(push.body, /pushes are refused until space is freed; pulls are served/);
    }
    const tagPush = await raw(wharf.url, 'PUT', '/v2/low/app/manifests/v2', { headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: image.manifest.data });
    assert.equal(errorCode(tagPush), 'STORAGE_FULL');
    for (let i = 0; i < 4; i += 1) {
      const manifest = await fresh(wharf.url, 'GET', '/v2/low/app/manifests/v1');
      assert.equal(manifest.status, 200);
    }
    const layer = await raw(wharf.url, 'GET', `/v2/low/app/blobs/${image.layer.digest}`);
    assert.equal(layer.status, 200);
    assert.ok(layer.body.equals(image.layer.data));
    // Deletes go through: they are how an operator makes room.
    assert.equal((await raw(wharf.url, 'DELETE', `/v2/low/app/blobs/${spare.digest}`)).status, 202);
    // The probe for liveness stays green: the process is fine, it only cannot take pushes.
    assert.equal((await raw(wharf.url, 'GET', '/healthz')).status, 200);
  });

  it('turns writable again once space is freed, and says so', async () => {
    rmSync(filler);
    await waitFor(async () => (await readiness(wharf.url)).status === 200, '/readyz to report ready again');
    await waitFor(() => /free space is back above storage\.freespace\.minimum: accepting pushes again/.test(wharf.output()), 'the log line');
    for (let i = 0; i < 4; i += 1) await pushBlob(wharf.url, 'low/app', randomBlob(100_000));
    const tag = await raw(wharf.url, 'PUT', '/v2/low/app/manifests/v2', { headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: image.manifest.data });
    assert.equal(tag.status, 201);
  });
});
