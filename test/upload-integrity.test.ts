import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { raw } from './support/http.js';
import { startUpload, withQuery } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** One keep-alive HTTP/1.1 connection driven byte by byte, so a test can hold a body half-sent. */
class RawConnection {
  private buffered = Buffer.alloc(0);
  private waiting: (() => void) | undefined;
  private constructor(private readonly socket: Socket) {
    socket.on('data', (data: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, data]);
      this.waiting?.();
    });
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a request head; the body follows with `send`. */
  head(method: string, path: string, headers: Record<string, string | number>): void {
    const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    this.socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  }

  send(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (error) => (error ? reject(error) : resolve())));
  }

  /** Reads one whole response (status, headers, Content-Length body). */
  async response(): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    for (;;) {
      const end = this.buffered.indexOf('\r\n\r\n');
      if (end >= 0) {
        const lines = this.buffered.subarray(0, end).toString('latin1').split('\r\n');
        const status = Number(lines[0]!.split(' ')[1]);
        const headers: Record<string, string> = {};
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
        }
        const length = Number(headers['content-length'] ?? 0);
        if (this.buffered.length >= end + 4 + length) {
          const body = this.buffered.subarray(end + 4, end + 4 + length);
          this.buffered = this.buffered.subarray(end + 4 + length);
          return { status, headers, body };
        }
      }
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no response within 10 s')), 10_000);
        this.waiting = () => {
          clearTimeout(timer);
          this.waiting = undefined;
          resolve();
        };
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

describe('the bytes stored under a digest are the bytes that were verified', () => {
  let wharf: WharfProcess;
  before(async () => {
    // The default two processes: the race must be impossible across processes as within one.
    wharf = await startWharf({ args: ['--workers', '2'] });
  });
  after(() => wharf.dispose());

  it('two connections racing PATCHes on one upload cannot store one body under the other body\'s digest', async () => {
    for (let round = 0; round < 6; round += 1) {
      const repository = `race/r${round}`;
      const size = 65_536;
      const honest = Buffer.alloc(size, 0x59); // Y
      honest.writeUInt32BE(round, 0);
      const forged = Buffer.alloc(size, 0x58); // X: same last byte as Y
      forged[size - 1] = honest[size - 1]!;
      forged.writeUInt32BE(round, 0);
      const honestDigest = sha256(honest);

      const location = await startUpload(wharf.url, repository);
      const c1 = await RawConnection.open(wharf.port);
      const c2 = await RawConnection.open(wharf.port);
      try {
        // C1 sends all but the last byte and holds it.
        c1.head('PATCH', location, { 'Content-Length': size, 'Content-Type': 'application/octet-stream' });
        await c1.send(honest.subarray(0, size - 1));
        await new Promise((resolve) => setTimeout(resolve, 150));
        // C2 writes the whole forged body meanwhile.
        c2.head('PATCH', location, { 'Content-Length': size, 'Content-Type': 'application/octet-stream' });
        await c2.send(forged);
        const second = await c2.response();
        // C1 finishes; one of the two loses the race.
        await c1.send(honest.subarray(size - 1));
        const first = await c1.response();
        assert.ok([202, 416].includes(first.status) && [202, 416].includes(second.status), `${first.status} / ${second.status}`);
        assert.ok(first.status === 416 || second.status === 416, 'exactly one PATCH may take offset 0');
        // C1 claims the honest digest.
        c1.head('PUT', withQuery(location, `digest=${honestDigest}`), { 'Content-Length': 0 });
        const put = await c1.response();
        const served = await raw(wharf.url, 'GET', `/v2/${repository}/blobs/${honestDigest}`);
        if (put.status === 201) {
          assert.equal(served.status, 200);
          assert.equal(sha256(served.body), honestDigest, `round ${round}: the registry serves other bytes under ${honestDigest}`);
        } else {
          assert.equal(put.status, 400, `round ${round}: ${put.status} ${put.body.toString()}`);
          assert.equal(served.status, 404);
        }
        // A later honest push of the same digest elsewhere is never poisoned.
        const clean = await raw(wharf.url, 'POST', `/v2/${repository}-clean/blobs/uploads/?digest=${honestDigest}`, { body: honest });
        assert.equal(clean.status, 201);
        const pulled = await raw(wharf.url, 'GET', `/v2/${repository}-clean/blobs/${honestDigest}`);
        assert.equal(sha256(pulled.body), honestDigest, `round ${round}: a later push of ${honestDigest} serves other bytes`);
      } finally {
        c1.close();
        c2.close();
      }
    }
  });
});
