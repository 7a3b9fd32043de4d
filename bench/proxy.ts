/**
 * The `proxy` workload group: the pull-through cache, Wharf's and Distribution's proxy mode side
 * by side, both in registry:2's form (`proxy.remoteurl`) in front of the same upstream, a plain
 * Distribution on loopback. A byte-counting TCP relay between each cache and the upstream says how
 * many bytes each cache took from the upstream.
 *
 * Per repetition, a fresh blob of `blobMiB` (so that every cold pull is cold for both):
 *   - the upstream pulled directly (the figure a cache's cold pull is compared with), and through
 *     the cache's relay alone (what any cache can get at most on this machine),
 *   - a cold pull through each cache (MB/s and time to first byte), then a warm pull,
 *   - 20 concurrent cold pulls of another fresh blob through each cache: upstream bytes / blob size.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import type { FigureSpec } from './figures.js';
import { HttpTarget } from './http.js';
import type { BenchOptions } from './options.js';
import { pushMonolithic } from './registry-ops.js';
import { startWharf, type ServerName, type ServerProcess } from './servers.js';
import { startReferenceRegistry, type ReferenceRegistry } from '../test/support/reference-registry.js';
import type { BenchContext } from './workloads.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
const CONCURRENT_PULLS = 20;

export function proxyFigureSpecs(o: BenchOptions) {
  const blob = `${o.blobMiB} MiB`;
  const spec = (id: string, label: string, unit: string, better: 'higher' | 'lower', targets?: FigureSpec['targets']): FigureSpec =>
    targets ? { id, label, unit, better, targets } : { id, label, unit, better };
  return {
    direct: spec('proxy.upstream.direct', `proxy: the upstream pulled directly, ${blob} blob (same for both; the reference)`, 'MB/s', 'higher'),
    relayed: spec('proxy.upstream.relayed', `proxy: the upstream pulled through the cache's byte-counting relay alone, ${blob} blob (the most a cache can get here)`, 'MB/s', 'higher'),
    coldShare: spec('proxy.cold.share', `proxy: cold pull of a ${blob} blob as a share of the upstream's direct pull`, '×', 'higher'),
    cold: spec('proxy.cold', `proxy: cold pull of a ${blob} blob through the cache`, 'MB/s', 'higher'),
    ttfb: spec('proxy.cold.ttfb', 'proxy: time to first byte of that cold pull', 'ms', 'lower', [{ kind: 'at-most', value: 50 }]),
    warm: spec('proxy.warm', `proxy: warm pull of the ${blob} blob from the cache`, 'MB/s', 'higher'),
    fanoutBytes: spec('proxy.fanout.upstream', `proxy: ${CONCURRENT_PULLS} concurrent cold pulls of one ${blob} blob, upstream bytes ÷ blob size`, '×', 'lower', [{ kind: 'at-most', value: 1.05 }]),
    fanoutTime: spec('proxy.fanout.time', `proxy: ${CONCURRENT_PULLS} concurrent cold pulls of one ${blob} blob, until the last client has it`, 's', 'lower'),
  };
}

/** A TCP relay to `target` that counts the bytes coming back from it. */
async function countingRelay(targetHost: string, targetPort: number): Promise<{ port: number; bytesFromUpstream: () => number; close: () => Promise<void> }> {
  let bytes = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    sockets.add(client).add(upstream);
    upstream.on('data', (chunk: Buffer) => (bytes += chunk.length));
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    bytesFromUpstream: () => bytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A blob of `size` bytes that no earlier repetition used (cheap to make: one hashed block repeated with a counter). */
function freshBlob(size: number, seed: string): { data: Buffer; digest: string } {
  const data = Buffer.allocUnsafe(size);
  const block = createHash('sha512').update(seed).digest();
  for (let offset = 0; offset < size; offset += 64) {
    block.copy(data, offset);
    data.writeUInt32LE(offset / 64, offset);
  }
  return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
}

/** curl into /dev/null: MB/s, and the time to the first byte in ms. */
async function curlPull(curl: string, url: string, expectedBytes: number): Promise<{ mbps: number; ttfbMs: number; seconds: number }> {
  const { stdout } = await execFileAsync(curl, ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total} %{time_starttransfer}', url], { maxBuffer: 1024 * 1024 });
  const [status, size, total, first] = stdout.trim().split(' ').map(Number) as [number, number, number, number];
  if (status !== 200 || size !== expectedBytes) throw new Error(`GET ${url}: HTTP ${status}, ${size} of ${expectedBytes} bytes`);
  return { mbps: size / 1e6 / total, ttfbMs: first * 1000, seconds: total };
}

export async function proxyWorkloads(ctx: BenchContext, wharfRoot: string): Promise<void> {
  const { options, figures, log } = ctx;
  const f = proxyFigureSpecs(options);
  const size = options.blobMiB * MiB;
  log(`proxy: upstream (Distribution), Wharf's and Distribution's pull-through caches, ${options.blobMiB} MiB blobs`);
  const upstream: ReferenceRegistry = await startReferenceRegistry({ mode: 'plain', tuned: true, binary: ctx.registryBinary });
  const [upHost, upPort] = upstream.host.split(':') as [string, string];
  const upTarget = new HttpTarget('distribution', upHost, Number(upPort), 8);
  const relays = { wharf: await countingRelay(upHost, Number(upPort)), distribution: await countingRelay(upHost, Number(upPort)) };
  const caches: Record<ServerName, { url: string; stop: () => Promise<void> }> = {} as never;
  let wharf: ServerProcess | undefined;
  let distribution: ReferenceRegistry | undefined;
  try {
    wharf = await startWharf(wharfRoot, { workers: options.wharfWorkers, nodeArgs: options.wharfNodeArgs, env: { REGISTRY_PROXY_REMOTEURL: `http://127.0.0.1:${relays.wharf.port}` } });
    caches.wharf = { url: `http://127.0.0.1:${wharf.target.port}`, stop: () => wharf!.stop() };
    distribution = await startReferenceRegistry({ mode: 'plain', tuned: true, binary: ctx.registryBinary, extraConfig: `proxy:\n  remoteurl: http://127.0.0.1:${relays.distribution.port}\n` });
    caches.distribution = { url: distribution.url, stop: () => distribution!.stop() };
    for (let rep = 0; rep < options.repetitions; rep += 1) {
      for (const name of ['wharf', 'distribution'] as const) {
        const one = freshBlob(size, `cold ${rep} ${name} ${Date.now()}`);
        await pushMonolithic(upTarget, 'bench/proxied', one.data, one.digest);
        const direct = await curlPull(ctx.curl, `${upstream.url}/v2/bench/proxied/blobs/${one.digest}`, size);
        figures.add(f.direct, name, direct.mbps);
        // The relay each cache reaches the upstream through, without the cache: its ceiling.
        figures.add(f.relayed, name, (await curlPull(ctx.curl, `http://127.0.0.1:${relays[name].port}/v2/bench/proxied/blobs/${one.digest}`, size)).mbps);
        const path = `/v2/bench/proxied/blobs/${one.digest}`;
        const cold = await curlPull(ctx.curl, `${caches[name].url}${path}`, size);
        figures.add(f.cold, name, cold.mbps);
        figures.add(f.coldShare, name, cold.mbps / direct.mbps);
        figures.add(f.ttfb, name, cold.ttfbMs);
        // Distribution stores the blob after streaming it; give both a moment to settle.
        await new Promise((r) => setTimeout(r, 500));
        figures.add(f.warm, name, (await curlPull(ctx.curl, `${caches[name].url}${path}`, size)).mbps);

        const shared = freshBlob(size, `fanout ${rep} ${name} ${Date.now()}`);
        await pushMonolithic(upTarget, 'bench/fanout', shared.data, shared.digest);
        const before = relays[name].bytesFromUpstream();
        const started = performance.now();
        await Promise.all(Array.from({ length: CONCURRENT_PULLS }, () => curlPull(ctx.curl, `${caches[name].url}/v2/bench/fanout/blobs/${shared.digest}`, size)));
        figures.add(f.fanoutTime, name, (performance.now() - started) / 1000);
        // Distribution may still be fetching for clients it served from the upstream directly.
        await new Promise((r) => setTimeout(r, 500));
        figures.add(f.fanoutBytes, name, (relays[name].bytesFromUpstream() - before) / size);
        log(`proxy ${name} rep ${rep + 1}: cold ${cold.mbps.toFixed(0)} MB/s (direct ${direct.mbps.toFixed(0)}), ttfb ${cold.ttfbMs.toFixed(1)} ms, fan-out ${((relays[name].bytesFromUpstream() - before) / size).toFixed(2)}×`);
      }
    }
  } finally {
    upTarget.close();
    await caches.wharf?.stop();
    await caches.distribution?.stop();
    await relays.wharf.close();
    await relays.distribution.close();
    await upstream.stop();
  }
}
