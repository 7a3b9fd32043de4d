/**
 * The `search` workload group: `/v1/search` latency with many repositories. A fresh Wharf's
 * metadata store is filled directly (through the MetadataStore contract, not over HTTP: creating
 * 100,000 repositories by pushes would take most of an hour), then a few clients ask a mix of
 * queries in closed loops and the p99 of each kind is reported.
 */
import { request, Agent } from 'node:http';
import { join } from 'node:path';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import type { FigureSpec } from './figures.js';
import type { BenchOptions } from './options.js';
import { startWharf } from './servers.js';
import type { BenchContext } from './workloads.js';

const WORDS = ['postgres', 'proxy', 'cache', 'gateway', 'worker', 'scheduler', 'frontend', 'backend', 'metrics', 'logging', 'queue', 'auth', 'search', 'billing', 'mailer', 'images', 'storage', 'builder', 'runner', 'agent'];

export function searchFigureSpecs(o: BenchOptions) {
  const spec = (id: string, label: string): FigureSpec => ({ id, label, unit: 'ms', better: 'lower', targets: [{ kind: 'at-most', value: 20 }] });
  const n = o.searchRepos.toLocaleString('en');
  return {
    name: spec('search.name.p99', `/v1/search p99, a team name (${Math.round(o.searchRepos / 1000)} matches), ${n} repos`),
    word: spec('search.word.p99', `/v1/search p99, a description word (1 in ${WORDS.length} repos), ${n} repos`),
    exact: spec('search.exact.p99', `/v1/search p99, one repository's full name, ${n} repos`),
  };
}

/** Fills `store` with `count` repositories, each with one tagged manifest and a description. */
async function populate(store: SqliteMetadataStore, count: number): Promise<void> {
  const batch = 500;
  for (let start = 0; start < count; start += batch) {
    const puts = [];
    for (let i = start; i < Math.min(count, start + batch); i += 1) {
      const digest = `sha256:${i.toString(16).padStart(64, '0')}`;
      puts.push(
        store.putManifest({
          repository: `team-${i % 1000}/${WORDS[i % WORDS.length]}-service-${i}`,
          digest,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          content: Buffer.from(`{"schemaVersion":2,"n":${i}}`),
          blobs: [],
          children: [],
          tags: ['latest'],
          description: `The ${WORDS[(i * 7) % WORDS.length]} component of system ${i % 97}, built nightly`,
        }),
      );
    }
    await Promise.all(puts);
  }
}

/** Latencies (ms) of `total` GETs of `path`, from `clients` closed-loop clients on keep-alive connections. */
async function measure(port: number, paths: string[], total: number, clients: number): Promise<number[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const latencies: number[] = [];
  let next = 0;
  const one = (path: string) =>
    new Promise<void>((resolve, reject) => {
      const started = performance.now();
      const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) reject(new Error(`${path}: ${res.statusCode}`));
          latencies.push(performance.now() - started);
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < total) {
        const i = next++;
        await one(paths[i % paths.length]!);
      }
    }),
  );
  agent.destroy();
  return latencies;
}

function p99(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)]!;
}

export async function searchWorkloads(ctx: BenchContext, root: string): Promise<void> {
  const { options: o, figures } = ctx;
  const f = searchFigureSpecs(o);
  const wharf = await startWharf(root, { workers: o.wharfWorkers, nodeArgs: o.wharfNodeArgs });
  try {
    ctx.log(`search: filling metadata with ${o.searchRepos} repositories`);
    const began = performance.now();
    const store = new SqliteMetadataStore({ path: join(wharf.dir, 'data', 'wharf.db'), synchronous: 'normal' });
    try {
      await populate(store, o.searchRepos);
    } finally {
      await store.close();
    }
    ctx.log(`search: filled in ${((performance.now() - began) / 1000).toFixed(1)} s`);
    const port = wharf.target.port;
    const teams = Array.from({ length: 50 }, (_, i) => `/v1/search?q=team-${(i * 37) % 1000}&n=25`);
    const words = WORDS.map((word) => `/v1/search?q=${word}&n=25`);
    const exact = Array.from({ length: 50 }, (_, i) => {
      const n = (i * 1999) % o.searchRepos;
      return `/v1/search?q=${encodeURIComponent(`team-${n % 1000}/${WORDS[n % WORDS.length]}-service-${n}`)}&n=25`;
    });
    const requests = o.quick ? 200 : 2000;
    await measure(port, words, 100, 4); // warm the page cache and the JIT
    for (let rep = 0; rep < o.repetitions; rep += 1) {
      ctx.log(`search: repetition ${rep + 1}/${o.repetitions}`);
      figures.add(f.name, 'wharf', p99(await measure(port, teams, requests, 4)));
      figures.add(f.word, 'wharf', p99(await measure(port, words, requests, 4)));
      figures.add(f.exact, 'wharf', p99(await measure(port, exact, requests, 4)));
    }
  } finally {
    await wharf.stop();
  }
}
