/**
 * Where `wharf serve`'s memory goes, process by process: RSS, PSS and anonymous memory from
 * /proc/PID/smaps_rollup, and each process's own view (V8 heap, external, array buffers, asked
 * for with SIGUSR2 through a module loaded with --import), at rest and at the peak of the bench's
 * heavy workloads. Not part of `npm run bench`: run it alone, on a quiet machine if possible.
 *
 *   node --import tsx bench/memory-probe.ts [--workers N] [--steps idle,push,chunked,pull,parallel,get]
 *                                          [--root DIR] [--settle SECONDS] [--node-arg FLAG]...
 *
 * --root runs another build (a checkout with dist/ built), for before/after comparisons.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { runHeadLoad } from './head-load.js';
import { OCI_MANIFEST, pull, pushChunked, pushMonolithic, pushSmallImage, sha256, smallImage } from './registry-ops.js';
import { processRss, processTree, startWharf } from './servers.js';
import { runWrk } from './wrk.js';

const MiB = 2 ** 20;
const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '2' },
    steps: { type: 'string', default: 'idle,push,chunked,pull,parallel,get' },
    root: { type: 'string', default: new URL('..', import.meta.url).pathname },
    settle: { type: 'string', default: '0' },
    seconds: { type: 'string', default: '8' },
    'node-arg': { type: 'string', multiple: true, default: [] },
  },
});
const steps = new Set(values.steps.split(','));
const scratch = mkdtempSync(join(tmpdir(), 'wharf-memory-probe-'));

// Loaded into every process of the server (workers inherit the parent's flags).
const reporter = join(scratch, 'report-memory.mjs');
writeFileSync(
  reporter,
  `import { writeFileSync } from 'node:fs';
process.on('SIGUSR2', () => writeFileSync(${JSON.stringify(scratch)} + '/memory-' + process.pid + '.json', JSON.stringify(process.memoryUsage())));
`,
);

interface Row {
  pid: number;
  rss: number;
  pss: number;
  anon: number;
  heapTotal?: number;
  heapUsed?: number;
  external?: number;
  arrayBuffers?: number;
}

function smaps(pid: number): { rss: number; pss: number; anon: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) / 1024;
    return { rss: kb('Rss'), pss: kb('Pss'), anon: kb('Anonymous') };
  } catch {
    return undefined;
  }
}

async function ownView(pid: number): Promise<Partial<Row>> {
  const file = join(scratch, `memory-${pid}.json`);
  rmSync(file, { force: true });
  try {
    process.kill(pid, 'SIGUSR2');
  } catch {
    return {};
  }
  for (let i = 0; i < 40 && !existsSync(file); i += 1) await sleep(25);
  await sleep(20);
  if (!existsSync(file)) return {};
  const usage = JSON.parse(readFileSync(file, 'utf8')) as NodeJS.MemoryUsage;
  const mib = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;
  return { heapTotal: mib(usage.heapTotal), heapUsed: mib(usage.heapUsed), external: mib(usage.external), arrayBuffers: mib(usage.arrayBuffers) };
}

async function report(label: string, pids: number[]): Promise<void> {
  const rows: Row[] = [];
  for (const pid of pids) {
    const m = smaps(pid);
    if (m) rows.push({ pid, ...m, ...(await ownView(pid)) });
  }
  const sum = (key: 'rss' | 'pss' | 'anon') => rows.reduce((total, row) => total + row[key], 0).toFixed(1);
  console.log(`${label}: RSS ${sum('rss')} MiB, PSS ${sum('pss')} MiB, anonymous ${sum('anon')} MiB`);
  for (const row of rows) {
    console.log(
      `  pid ${row.pid}: RSS ${row.rss.toFixed(1)}, PSS ${row.pss.toFixed(1)}, anon ${row.anon.toFixed(1)}; V8 heap ${row.heapUsed}/${row.heapTotal}, external ${row.external}, array buffers ${row.arrayBuffers}`,
    );
  }
}

/** Runs `work` while sampling the tree's RSS (20 Hz) and PSS/anonymous memory (2 Hz); prints the peaks of their sums. */
async function peak<T>(label: string, pids: () => number[], work: () => Promise<T>): Promise<T> {
  let rss = 0;
  let pss = 0;
  let anon = 0;
  let samples = 0;
  const timer = setInterval(() => {
    const now = pids();
    rss = Math.max(rss, now.reduce((total, pid) => total + processRss(pid), 0));
    if (samples++ % 10 === 0) {
      const all = now.map(smaps);
      pss = Math.max(pss, all.reduce((total, m) => total + (m?.pss ?? 0), 0));
      anon = Math.max(anon, all.reduce((total, m) => total + (m?.anon ?? 0), 0));
    }
  }, 50);
  const started = performance.now();
  try {
    return await work();
  } finally {
    clearInterval(timer);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`${label} (${seconds} s): peak RSS ${(rss / MiB).toFixed(1)} MiB, PSS ${pss.toFixed(1)} MiB, anonymous ${anon.toFixed(1)} MiB`);
  }
}

const server = await startWharf(values.root, { workers: Number(values.workers), nodeArgs: ['--import', reporter, ...values['node-arg']] });
const pids = () => processTree(server.pid);
try {
  const { target } = server;
  await sleep(1500);
  if (steps.has('idle')) await report('at rest', pids());
  const blob = randomBytes(1024 * MiB);
  let variant = 0;
  const fresh = () => {
    blob.writeUInt32BE((variant += 1), 0);
    return sha256(blob);
  };
  let pushed: string | undefined;
  if (steps.has('push')) {
    const digest = fresh();
    await peak('1 GiB push, monolithic', pids, () => pushMonolithic(target, 'probe/big', blob, digest));
    pushed = digest;
  }
  if (steps.has('chunked')) {
    const digest = fresh();
    await peak('1 GiB push, chunked (64 MiB PATCHes)', pids, () => pushChunked(target, 'probe/big', blob, digest, 64 * MiB));
    pushed = digest;
  }
  if (steps.has('pull') && pushed) {
    const url = `http://${target.hostPort}/v2/probe/big/blobs/${pushed}`;
    await peak('1 GiB pull (curl)', pids, () => pull('curl', url, blob.length));
  }
  if (steps.has('parallel')) {
    const blobs = Array.from({ length: 32 }, () => randomBytes(16 * MiB));
    await peak('32 parallel 16 MiB pushes', pids, () => Promise.all(blobs.map((data) => pushMonolithic(target, 'probe/parallel', data, sha256(data)))));
  }
  if (steps.has('push') || steps.has('chunked') || steps.has('parallel')) await report('after the pushes', pids());
  if (Number(values.settle) > 0) {
    await sleep(Number(values.settle) * 1000);
    await report(`${values.settle} s later`, pids());
  }
  if (steps.has('get')) {
    const image = smallImage();
    await pushSmallImage(target, 'probe/small', image, 'latest');
    const seconds = Number(values.seconds);
    const url = `http://${target.hostPort}/v2/probe/small/manifests/latest`;
    const get = await peak(`manifest GET, 64 connections, ${seconds} s`, pids, () =>
      runWrk('wrk', { url, method: 'GET', headers: { Accept: OCI_MANIFEST }, connections: 64, seconds, scratch }),
    );
    console.log(`  ${get.requestsPerSecond.toFixed(0)} req/s, p50 ${get.p50Ms} ms, p99 ${get.p99Ms} ms`);
    const head = await peak(`blob HEAD, 64 connections, ${seconds} s`, pids, () =>
      runHeadLoad({ host: target.host, port: target.port, path: `/v2/probe/small/blobs/${image.layer.digest}`, connections: 64, seconds }),
    );
    console.log(`  ${head.requestsPerSecond.toFixed(0)} req/s, p50 ${head.p50Ms.toFixed(2)} ms, p99 ${head.p99Ms.toFixed(2)} ms`);
    await report('after the GET and HEAD loads', pids());
  }
} finally {
  await server.stop();
  rmSync(scratch, { recursive: true, force: true });
}
