import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { after, before, it } from 'node:test';
import { raw } from './support/http.js';
import { startUpload, withQuery } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const GIB = 1024 * 1024 * 1024;
/** How far above its idle size the server's peak RSS may go while moving a 1 GiB blob. */
const ALLOWED_GROWTH = 64 * 1024 * 1024;

let wharf: WharfProcess;
before(async () => {
  wharf = await startWharf();
});
after(async () => wharf.dispose());

/** Resident and peak-resident bytes of a process, from /proc. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** 1 GiB of varied bytes, generated in 1 MiB pieces so the test process holds little either. */
async function* gibibyte(hash: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  const piece = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < GIB / piece.length; i += 1) {
    piece.writeUInt32BE(i, (i * 4096) % (piece.length - 4));
    for (let j = 0; j < piece.length; j += 65536) piece[j] = (i + j) & 0xff;
    const copy = Buffer.from(piece);
    hash.update(copy);
    yield copy;
  }
}

it('pushing and pulling a 1 GiB blob keeps the server near its idle memory', async () => {
  const pid = wharf.child.pid!;
  for (let i = 0; i < 20; i += 1) await raw(wharf.url, 'GET', '/v2/');
  const idle = memoryOf(pid).rss;

  const hash = createHash('sha256');
  const location = await startUpload(wharf.url, 'big/blob');
  const patched = await raw(wharf.url, 'PATCH', location, { body: gibibyte(hash) });
  assert.equal(patched.status, 202);
  const digest = `sha256:${hash.digest('hex')}`;
  assert.equal((await raw(wharf.url, 'PUT', withQuery(patched.header('location')!, `digest=${digest}`))).status, 201);
  const afterPush = memoryOf(pid);

  const pulled = createHash('sha256');
  let bytes = 0;
  await new Promise<void>((resolve, reject) => {
    request(`${wharf.url}/v2/big/blob/blobs/${digest}`, (res) => {
      assert.equal(res.statusCode, 200);
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        pulled.update(chunk);
      });
      res.on('end', resolve);
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
  assert.equal(bytes, GIB);
  assert.equal(`sha256:${pulled.digest('hex')}`, digest, 'pulled bytes hash to the pushed digest');
  const afterPull = memoryOf(pid);
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  process.stderr.write(`# server RSS idle ${mib(idle)}, peak after push ${mib(afterPush.peak)}, peak after pull ${mib(afterPull.peak)}\n`);
  assert.ok(afterPush.peak - idle < ALLOWED_GROWTH, `push: peak ${mib(afterPush.peak)} vs idle ${mib(idle)}`);
  assert.ok(afterPull.peak - idle < ALLOWED_GROWTH, `pull: peak ${mib(afterPull.peak)} vs idle ${mib(idle)}`);
});
