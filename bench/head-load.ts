import { connect, type Socket } from 'node:net';
import type { LoadResult } from './wrk.js';

/**
 * Closed-loop keep-alive HEAD load: `connections` sockets, each sending the next request as soon
 * as the previous response's headers are in, for `seconds`. wrk 4.1 cannot do this (it waits for
 * the body that a HEAD response's Content-Length announces), so HEAD gets this small generator:
 * raw sockets, no HTTP client objects, one pre-built request buffer.
 */
export async function runHeadLoad(options: { host: string; port: number; path: string; connections: number; seconds: number }): Promise<LoadResult> {
  const request = Buffer.from(`HEAD ${options.path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\n\r\n`);
  const latencies: number[] = [];
  let failures = 0;
  let stopping = false;
  const lanes: Promise<void>[] = [];
  for (let i = 0; i < options.connections; i += 1) {
    lanes.push(
      new Promise<void>((resolve, reject) => {
        const socket: Socket = connect({ host: options.host, port: options.port, noDelay: true });
        let pending = '';
        let sentAt = 0;
        const send = () => {
          sentAt = performance.now();
          socket.write(request);
        };
        socket.setEncoding('latin1');
        socket.once('connect', send);
        socket.on('data', (text: string) => {
          pending += text;
          // A HEAD response ends with its headers; keep-alive responses arrive one at a time.
          let end;
          while ((end = pending.indexOf('\r\n\r\n')) >= 0) {
            if (!pending.startsWith('HTTP/1.1 200')) failures += 1;
            pending = pending.slice(end + 4);
            latencies.push(performance.now() - sentAt);
            if (stopping) {
              socket.end();
              return;
            }
            send();
          }
        });
        socket.on('error', reject);
        socket.on('close', () => resolve());
      }),
    );
  }
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000));
  stopping = true;
  const elapsed = (performance.now() - started) / 1000;
  const counted = latencies.length;
  await Promise.all(lanes);
  if (failures > 0) throw new Error(`HEAD ${options.path}: ${failures} responses were not 200`);
  const sorted = latencies.slice(0, counted).sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { requestsPerSecond: counted / elapsed, p50Ms: at(0.5), p99Ms: at(0.99), requests: counted };
}
