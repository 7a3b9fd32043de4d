import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { raw } from './support/http.js';
import { randomBlob } from './support/oci-fixtures.js';
import { waitFor } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const MiB = 1024 * 1024;

/** Whether a TCP connection to `port` is accepted now (false: refused). */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Bytes in the files under `dir` (where an upload's data lands while it streams in). */
function bytesUnder(dir: string): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? bytesUnder(path) : statSync(path).size;
  }
  return total;
}

/** A request body sent in two halves: the second only once `release` is called. */
function heldBody(data: Buffer): { body: AsyncIterable<Buffer>; release: () => void } {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  async function* body() {
    const half = data.length / 2;
    yield data.subarray(0, half);
    await released;
    for (let at = half; at < data.length; at += 256 * 1024) yield data.subarray(at, Math.min(at + 256 * 1024, data.length));
  }
  return { body: body(), release };
}

describe('SIGTERM: new connections are refused at once, transfers in flight finish, one last log line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-drain-'));
  const dataDir = join(dir, 'data');
  let wharf: WharfProcess | undefined;
  after(async () => {
    await wharf?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('an upload half-sent when SIGTERM arrives completes, in a worker process, while new connections are refused', async () => {
    writeFileSync(join(dir, 'config.yml'), 'http: {draintimeout: 60s}\nserver: {workers: 2}\n');
    wharf = await startWharf({ dataDir, args: [join(dir, 'config.yml')] });
    const content = randomBlob(8 * MiB);
    const { body, release } = heldBody(content.data);
    const upload = raw(wharf.url, 'POST', `/v2/drain/app/blobs/uploads/?digest=${content.digest}`, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': content.data.length },
      body,
    });
    // The server is writing the first half to disk: the transfer is in flight.
    await waitFor(() => bytesUnder(join(dataDir, 'uploads')) + bytesUnder(join(dataDir, '.tmp')) >= 2 * MiB, 'the first half to reach the disk');

    wharf.child.kill('SIGTERM');
    await waitFor(() => /shutting down/.test(wharf!.output()), 'the shutdown to begin');
    assert.equal(await accepts(wharf.port), false, 'a new connection is refused');
    assert.equal(wharf.child.exitCode, null, 'the server waits for the upload');

    release();
    const done = await upload;
    assert.equal(done.status, 201, done.body.toString());
    assert.equal(await wharf.stop(), 0);
    const lines = wharf.output().trim().split('\n');
    assert.match(lines.at(-1)!, /"msg":"wharf registry stopped"/);
    assert.equal(wharf.output().match(/wharf registry stopped/g)?.length, 1);

    // The blob was committed whole.
    wharf = await startWharf({ dataDir, args: [join(dir, 'config.yml')] });
    const pulled = await raw(wharf.url, 'GET', `/v2/drain/app/blobs/${content.digest}`);
    assert.equal(pulled.status, 200);
    assert.ok(pulled.body.equals(content.data));
    await wharf.stop();
    wharf = undefined;
  });

  it('a transfer that outlasts http.draintimeout is cut, and the server stops', async () => {
    writeFileSync(join(dir, 'config.yml'), 'http: {draintimeout: 1s}\nserver: {workers: 2}\n');
    wharf = await startWharf({ dataDir, args: [join(dir, 'config.yml')] });
    const content = randomBlob(8 * MiB);
    const { body } = heldBody(content.data);
    const upload = raw(wharf.url, 'POST', `/v2/drain/stuck/blobs/uploads/?digest=${content.digest}`, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': content.data.length },
      body,
    }).then(
      (res) => res.status,
      () => 'cut',
    );
    await waitFor(() => bytesUnder(join(dataDir, 'uploads')) + bytesUnder(join(dataDir, '.tmp')) >= 2 * MiB, 'the first half to reach the disk');
    wharf.child.kill('SIGTERM');
    assert.equal(await wharf.stop(), 0);
    assert.equal(await upload, 'cut');
    assert.match(wharf.output().trim().split('\n').at(-1)!, /wharf registry stopped/);
    wharf = undefined;
  });
});
