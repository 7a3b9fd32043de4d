import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { raw } from './support/http.js';
import { waitFor } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

async function status(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

describe('health probes: /healthz and /readyz on the main address, /debug/health on the debug address', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-health-'));
  const dataDir = join(dir, 'data');
  let wharf: WharfProcess;
  let debugUrl: string;
  let readOnly = false;

  before(async () => {
    mkdirSync(dataDir);
    writeFileSync(
      join(dir, 'config.yml'),
      [
        'http:',
        '  debug: {addr: "127.0.0.1:0"}',
        'health:',
        '  storagedriver: {enabled: true, interval: 100ms, threshold: 2}',
        'server: {workers: 2}',
      ].join('\n'),
    );
    wharf = await startWharf({ dataDir, args: [join(dir, 'config.yml')] });
    debugUrl = `http://${/"debug":"([^"]+)"/.exec(wharf.output())![1]}`;
  });
  after(async () => {
    if (readOnly) execFileSync('umount', [dataDir]);
    await wharf?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answer 200 while all is well, to anyone, for GET and HEAD', async () => {
    assert.deepEqual(await status(`${wharf.url}/healthz`), { status: 200, body: { status: 'ok' } });
    assert.deepEqual(await status(`${wharf.url}/readyz`), { status: 200, body: { status: 'ready', checks: { storage: 'ok', metadata: 'ok', freeSpace: 'ok' } } });
    assert.equal((await raw(wharf.url, 'HEAD', '/readyz')).status, 200);
    assert.equal((await raw(wharf.url, 'POST', '/readyz')).status, 405);
    assert.deepEqual(await status(`${debugUrl}/debug/health`), { status: 200, body: {} });
    // Prometheus metrics are off unless enabled: the debug server has no page for them.
    assert.equal((await fetch(`${debugUrl}/metrics`)).status, 404);
  });

  it('a storage root that turns read-only fails /readyz and, after the threshold, /debug/health; both recover', async () => {
    // A read-only bind mount of the data directory over itself: refused even to root.
    execFileSync('mount', ['--bind', dataDir, dataDir]);
    execFileSync('mount', ['-o', 'remount,ro,bind', dataDir]);
    readOnly = true;
    const ready = await status(`${wharf.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.status, 'not ready');
    assert.match(ready.body.checks.storage, /EROFS|read-only/i);
    await waitFor(async () => (await fetch(`${debugUrl}/debug/health`)).status === 503, '/debug/health to fail');
    const health = await status(`${debugUrl}/debug/health`);
    assert.match(health.body.storagedriver_filesystem, /EROFS|read-only/i);
    // Alive all the same: a liveness probe must not restart a process for its disk.
    assert.equal((await fetch(`${wharf.url}/healthz`)).status, 200);

    execFileSync('umount', [dataDir]);
    readOnly = false;
    assert.equal((await status(`${wharf.url}/readyz`)).status, 200);
    await waitFor(async () => (await fetch(`${debugUrl}/debug/health`)).status === 200, '/debug/health to recover');
  });
});
