/**
 * What notifications cost the hottest reads: manifest GET by tag (wrk) and blob HEAD, each a pull
 * event. Three servers, alternating as the main bench does: without notifications (`off`); with
 * an endpoint that is down (`recorded`: every pull recorded in the outbox, nothing delivered: the
 * cost on the serving path); with a receiver taking everything (`delivered`: recording plus the
 * delivering process and the receiver on the same machine). Prints medians and ratios to `off`.
 *
 *   npm run build && node --import tsx bench/notifications-cost.ts [--seconds 5] [--repetitions 3] [--connections 64]
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runHeadLoad } from './head-load.js';
import { processCpuSeconds, processTree, startWharf, type ServerProcess } from './servers.js';
import { runWrk, type LoadResult } from './wrk.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, repetitions: { type: 'string', default: '3' }, connections: { type: 'string', default: '64' } } });
const seconds = Number(values.seconds);
const repetitions = Number(values.repetitions);
const connections = Number(values.connections);
const root = fileURLToPath(new URL('..', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'wharf-bench-notify-'));

// A receiver that accepts everything and counts the events, as a real one would acknowledge them;
// in a process of its own, so that its work does not slow this process's HEAD load generator.
const RECEIVER = `
const { createServer } = require('node:http');
let received = 0;
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET') return res.end(String(received));
    received += JSON.parse(Buffer.concat(chunks).toString()).events.length;
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));
`;
const receiver = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
const receiverPort = await new Promise<number>((resolve) => receiver.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
const receivedSoFar = async () => Number(await (await fetch(`http://127.0.0.1:${receiverPort}/count`)).text());
const endpoint = (url: string, extra = '') => `notifications:\n  endpoints:\n    - name: bench\n      url: ${url}\n${extra}`;
const delivering = join(scratch, 'delivered.yml');
writeFileSync(delivering, endpoint(`http://127.0.0.1:${receiverPort}/events`));
// Nothing listens on port 9 (discard) on loopback: every attempt fails at once, then waits a minute.
const recording = join(scratch, 'recorded.yml');
writeFileSync(recording, endpoint('http://127.0.0.1:9/events', '      threshold: 1\n      backoff: 60s\n      maxattempts: 0\n'));

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
/** One small image, pushed as the main bench's load workloads push theirs. */
async function pushImage(server: ServerProcess): Promise<string> {
  const layer = Buffer.from('notification cost layer');
  const configBlob = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [layer, configBlob]) {
    await server.target.request('POST', `/v2/bench/small/blobs/uploads/?digest=${sha256(blob)}`, { body: blob, expect: [201] });
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(configBlob), size: configBlob.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  await server.target.request('PUT', '/v2/bench/small/manifests/latest', {
    body: manifest,
    headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    expect: [201],
  });
  return sha256(layer);
}

type Mode = 'off' | 'recorded' | 'delivered';
const MODES: Mode[] = ['off', 'recorded', 'delivered'];
const servers: Record<Mode, ServerProcess> = {
  off: await startWharf(root),
  recorded: await startWharf(root, { configFile: recording }),
  delivered: await startWharf(root, { configFile: delivering }),
};
const layers = { off: await pushImage(servers.off), recorded: await pushImage(servers.recorded), delivered: await pushImage(servers.delivered) };
const samples = Object.fromEntries(MODES.map((m) => [m, { manifest: [] as LoadResult[], head: [] as LoadResult[], cpu: [] as number[] }])) as Record<
  Mode,
  { manifest: LoadResult[]; head: LoadResult[]; cpu: number[] }
>;
/**
 * CPU seconds used by a server's whole process tree: per request, a figure other jobs on a shared
 * machine move far less than throughput.
 */
const cpuOf = (server: ServerProcess) => processTree(server.pid).reduce((sum, pid) => sum + (processCpuSeconds(pid) ?? 0), 0);
let served = 0;
let received = 0;
/** Waits until the receiver has every pull served so far: all of them must come, or the figures are of a broken path. */
async function caughtUp(): Promise<void> {
  const deadline = Date.now() + 120_000;
  while ((await receivedSoFar()) < served && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
}
try {
  for (let rep = 0; rep < repetitions; rep += 1) {
    for (const name of rep % 2 === 0 ? MODES : [...MODES].reverse()) {
      const server = servers[name];
      const cpuBefore = cpuOf(server);
      const manifest = await runWrk('wrk', {
        url: `http://${server.target.hostPort}/v2/bench/small/manifests/latest`,
        method: 'GET',
        headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' },
        connections,
        seconds,
        scratch,
      });
      const head = await runHeadLoad({ host: server.target.host, port: server.target.port, path: `/v2/bench/small/blobs/${layers[name]}`, connections, seconds });
      if (name === 'delivered') {
        served += manifest.requests + head.requests;
        // Its backlog must not spill into the next server's run (and its delivery counts in its CPU).
        await caughtUp();
      }
      samples[name].cpu.push(((cpuOf(server) - cpuBefore) / (manifest.requests + head.requests)) * 1e6);
      samples[name].manifest.push(manifest);
      samples[name].head.push(head);
      process.stderr.write(`rep ${rep + 1} ${name}: manifest ${manifest.requestsPerSecond.toFixed(0)} req/s p99 ${manifest.p99Ms} ms, head ${head.requestsPerSecond.toFixed(0)} req/s p99 ${head.p99Ms} ms\n`);
    }
  }
  received = await receivedSoFar();
} finally {
  for (const server of Object.values(servers)) await server.stop();
  receiver.kill();
  rmSync(scratch, { recursive: true, force: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const row = (label: string, pick: (r: LoadResult) => number, of: 'manifest' | 'head') => cells(label, MODES.map((m) => median(samples[m][of].map(pick))) as [number, number, number]);
const cells = (label: string, [off, recorded, delivered]: [number, number, number]) => {
  const ratio = (x: number) => `${((x / off) * 100).toFixed(1)}%`;
  return `| ${label} | ${off.toFixed(2)} | ${recorded.toFixed(2)} (${ratio(recorded)}) | ${delivered.toFixed(2)} (${ratio(delivered)}) |`;
};
process.stdout.write(
  [
    `${repetitions} x ${seconds} s, ${connections} connections; medians`,
    '',
    '| figure | off | recorded, receiver down (/ off) | recorded and delivered (/ off) |',
    '|---|---|---|---|',
    row('manifest GET req/s', (r) => r.requestsPerSecond, 'manifest'),
    row('manifest GET p99 ms', (r) => r.p99Ms, 'manifest'),
    row('blob HEAD req/s', (r) => r.requestsPerSecond, 'head'),
    row('blob HEAD p99 ms', (r) => r.p99Ms, 'head'),
    cells('server CPU µs per request (all processes)', MODES.map((m) => median(samples[m].cpu)) as [number, number, number]),
    '',
    `events delivered: ${received} for ${served} pulls counted by the load generators (plus the image push and the requests in flight when each run ended)`,
    '',
  ].join('\n'),
);
if (received < served) process.exitCode = 1;
