import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { runParallel } from './http.js';
import { durableWrite } from './machine.js';
import type { Figures, FigureSpec } from './figures.js';
import type { BenchOptions } from './options.js';
import {
  makeVariant,
  megabytesPerSecond,
  mount,
  pull,
  pushChunked,
  pushMonolithic,
  putManifest,
  readAllPages,
  timed,
  type SmallImage,
} from './registry-ops.js';
import type { RssSampler, ServerName, ServerProcess } from './servers.js';
import { startNodeCeiling } from './servers.js';
import { runHeadLoad } from './head-load.js';
import { busiestShare, measureShare } from './process-share.js';
import { runWrk } from './wrk.js';

const MiB = 1024 * 1024;

export interface BenchContext {
  options: BenchOptions;
  figures: Figures;
  sampler: RssSampler;
  servers: Record<ServerName, ServerProcess>;
  /** Only when machine limits are measured. */
  nginx: ServerProcess | undefined;
  image: SmallImage;
  /** Machine limits measured between workloads, by label. */
  limits: Map<string, { unit: string; samples: number[] }>;
  wrk: string;
  curl: string;
  /** Distribution's executable (its garbage-collect command) and Wharf's CLI entry point (dist/cli/main.js). */
  registryBinary: string;
  wharfCli: string;
  scratch: string;
  log(line: string): void;
  /** Starts a fresh server of that kind, with the settings of this run (the caller stops it). */
  launch(name: ServerName): Promise<ServerProcess>;
  /** More than figures, for the results JSON (the soak's per-process series). */
  details: Record<string, unknown>;
}

/**
 * Writes back every dirty page before a timed push. Distribution never fsyncs, so the gigabytes
 * it just took are still being written out; without this, that writeback would slow whichever
 * server pushes next (Wharf waits for its own fsyncs, so it would pay for both).
 */
function settleDisk(): void {
  execFileSync('sync');
}

function recordLimit(ctx: BenchContext, label: string, unit: string, value: number): void {
  const entry = ctx.limits.get(label) ?? { unit, samples: [] };
  entry.samples.push(value);
  ctx.limits.set(label, entry);
}

/** Servers in the order of repetition `rep`: alternating, so neither always runs on a warmer machine. */
function order(rep: number): ServerName[] {
  return rep % 2 === 0 ? ['wharf', 'distribution'] : ['distribution', 'wharf'];
}

function sizeLabel(mib: number): string {
  return mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024} GiB` : `${mib} MiB`;
}

/** Figure definitions; labels carry the sizes of this run. */
export function figureSpecs(o: BenchOptions) {
  const blob = sizeLabel(o.blobMiB);
  const spec = (id: string, label: string, unit: string, better: 'higher' | 'lower', targets?: FigureSpec['targets']): FigureSpec =>
    targets ? { id, label, unit, better, targets } : { id, label, unit, better };
  // Issue 18: pushes at the disk's durable speed (the machine limit measured before each
  // repetition, recorded on push.monolithic) and at twice Distribution's.
  const pushTargets: FigureSpec['targets'] = [
    { kind: 'disk-ratio-at-least', value: 0.9, disk: 'push.monolithic' },
    { kind: 'ratio-at-least', value: 2 },
  ];
  return {
    pushMonolithic: spec('push.monolithic', `blob push ${blob}, monolithic (POST + PUT)`, 'MB/s', 'higher', pushTargets),
    pushChunked: spec('push.chunked', `blob push ${blob}, chunked (PATCH ${sizeLabel(o.chunkMiB)})`, 'MB/s', 'higher', pushTargets),
    pushRss: spec('rss.push.max', `RSS during the ${blob} pushes, max`, 'MiB', 'lower'),
    pushRssGrowth: spec('rss.push.growth', `RSS growth during the ${blob} pushes`, 'MiB', 'lower', [{ kind: 'at-most', value: 32 }]),
    pullFull: spec('pull.full', `blob pull ${blob}`, 'MB/s', 'higher', [
      { kind: 'ratio-at-least', value: 1 },
      { kind: 'nginx-ratio-at-least', value: 1, nginx: 'pull.full' },
    ]),
    pullRange: spec('pull.range', `blob pull, Range of ${sizeLabel(o.blobMiB / 2)}`, 'MB/s', 'higher'),
    manifestRps: spec('load.manifest.rps', `manifest GET by tag, ${o.connections} conns`, 'req/s', 'higher', [
      { kind: 'ratio-at-least', value: 10 },
      { kind: 'nginx-ratio-at-least', value: 0.75, nginx: 'load.manifest.rps' },
    ]),
    manifestP50: spec('load.manifest.p50', 'manifest GET p50', 'ms', 'lower'),
    manifestP99: spec('load.manifest.p99', 'manifest GET p99', 'ms', 'lower', [{ kind: 'at-most', value: 10 }]),
    headRps: spec('load.head.rps', `blob HEAD, ${o.connections} conns`, 'req/s', 'higher', [
      { kind: 'ratio-at-least', value: 10 },
      { kind: 'nginx-ratio-at-least', value: 0.85, nginx: 'load.head.rps' },
    ]),
    headP50: spec('load.head.p50', 'blob HEAD p50', 'ms', 'lower'),
    headP99: spec('load.head.p99', 'blob HEAD p99', 'ms', 'lower', [{ kind: 'at-most', value: 10 }]),
    manifestCpu: spec('load.manifest.cpu', 'manifest GET: CPU share of the busiest process', '%', 'lower'),
    manifestConns: spec('load.manifest.conns', 'manifest GET: connections held by the busiest process', '%', 'lower'),
    headCpu: spec('load.head.cpu', 'blob HEAD: CPU share of the busiest process', '%', 'lower'),
    headConns: spec('load.head.conns', 'blob HEAD: connections held by the busiest process', '%', 'lower'),
    tagPush: spec('tags.push', `tag push (${o.tagBatch} tags, ${o.parallelism} in parallel)`, 'tags/s', 'higher', [{ kind: 'ratio-at-least', value: 3 }]),
    tagListFull: spec('tags.list.full', `tag list, all at once, ${o.tagList} tags`, 'ms', 'lower'),
    tagListFirst: spec('tags.list.first', `tag list, first page n=${o.pageSize}, ${o.tagList} tags`, 'ms', 'lower'),
    tagListPages: spec('tags.list.pages', `tag list, all pages n=${o.pageSize}, ${o.tagList} tags`, 'ms', 'lower'),
    tagListLargeFirst: spec('tags.large.first', `tag list, first page n=${o.pageSize}, ${o.tagListLarge} tags`, 'ms', 'lower', [{ kind: 'at-most', value: 5 }]),
    tagListLargeMiddle: spec('tags.large.middle', `tag list, middle page n=${o.pageSize}, ${o.tagListLarge} tags`, 'ms', 'lower', [{ kind: 'at-most', value: 5 }]),
    repoCreate: spec('repos.create', `repository creation (${o.repoBatch} by mount + manifest)`, 'repos/s', 'higher'),
    catalogSmallFirst: spec('catalog.small.first', `_catalog first page n=${o.pageSize}, ${o.catalogSmall} repos`, 'ms', 'lower'),
    catalogSmallPages: spec('catalog.small.pages', `_catalog all pages n=${o.pageSize}, ${o.catalogSmall} repos`, 'ms', 'lower', [{ kind: 'ratio-at-most', value: 0.05 }]),
    catalogLargeFirst: spec('catalog.large.first', `_catalog first page n=${o.pageSize}, ${o.catalogLarge} repos`, 'ms', 'lower'),
    catalogLargePages: spec('catalog.large.pages', `_catalog all pages n=${o.pageSize}, ${o.catalogLarge} repos`, 'ms', 'lower'),
    catalogHugeFirst: spec('catalog.huge.first', `_catalog first page n=${o.pageSize}, ${o.catalogHuge} repos`, 'ms', 'lower', [{ kind: 'at-most', value: 5 }]),
    catalogHugeMiddle: spec('catalog.huge.middle', `_catalog middle page n=${o.pageSize}, ${o.catalogHuge} repos`, 'ms', 'lower', [{ kind: 'at-most', value: 5 }]),
    parallelPush: spec('parallel.push', `${o.pushClients} clients pushing ${sizeLabel(o.pushClientMiB)} blobs at once`, 'MB/s', 'higher'),
    // Issue 18: RSS within 2× Distribution's with one process (`--wharf-workers 1`), PSS within
    // 2.5× with the defaults (workers share the executable's pages, which PSS counts once).
    rssPeak: spec('rss.peak', 'peak RSS over the run (sum over processes)', 'MiB', 'lower', o.wharfWorkers === 1 ? [{ kind: 'ratio-at-most', value: 2 }] : undefined),
    pssPeak: spec('pss.peak', 'peak PSS over the run (shared pages counted once; sampled at 1 Hz)', 'MiB', 'lower', o.wharfWorkers === undefined ? [{ kind: 'ratio-at-most', value: 2.5 }] : undefined),
  };
}

/** Pushes (monolithic, chunked) and pulls (full, Range) of one large blob, alternating servers. */
export async function blobWorkloads(ctx: BenchContext): Promise<void> {
  const { options: o, figures, servers, sampler } = ctx;
  const f = figureSpecs(o);
  const data = randomBytes(o.blobMiB * MiB);
  const repository = 'bench/blob';
  const range = { offset: Math.floor(data.length / 4), length: Math.floor(data.length / 2) };
  for (let rep = 0; rep < o.repetitions; rep += 1) {
    ctx.log(`blobs: repetition ${rep + 1}/${o.repetitions}`);
    // Fresh content for every push, so no server can skip work it has done before.
    const monolithicDigest = makeVariant(data, rep * 2);
    settleDisk();
    const disk = durableWrite(ctx.scratch, data.length);
    recordLimit(ctx, `disk, ${sizeLabel(o.blobMiB)} written and fdatasync'd (before each repetition's pushes)`, 'MB/s', disk);
    figures.add(f.pushMonolithic, 'disk', disk);
    for (const name of order(rep)) {
      const server = servers[name];
      settleDisk();
      const window = await sampler.during(server, () => timed(() => pushMonolithic(server.target, repository, data, monolithicDigest)));
      figures.add(f.pushMonolithic, name, megabytesPerSecond(data.length, window.result));
      figures.add(f.pushRss, name, window.max / MiB);
      figures.add(f.pushRssGrowth, name, (window.max - window.before) / MiB);
    }
    const chunkedDigest = makeVariant(data, rep * 2 + 1);
    for (const name of order(rep)) {
      const server = servers[name];
      settleDisk();
      const window = await sampler.during(server, () => timed(() => pushChunked(server.target, repository, data, chunkedDigest, o.chunkMiB * MiB)));
      figures.add(f.pushChunked, name, megabytesPerSecond(data.length, window.result));
      figures.add(f.pushRss, name, window.max / MiB);
      figures.add(f.pushRssGrowth, name, (window.max - window.before) / MiB);
    }
    const sources: Array<{ name: ServerName | 'nginx'; server: ServerProcess; path: string }> = order(rep).map((name) => ({
      name,
      server: servers[name],
      path: `/v2/${repository}/blobs/${monolithicDigest}`,
    }));
    if (ctx.nginx) sources.push({ name: 'nginx', server: ctx.nginx, path: '/blob' });
    for (const { name, server, path } of sources) {
      const url = `http://${server.target.hostPort}${path}`;
      figures.add(f.pullFull, name, await pull(ctx.curl, url, data.length));
      figures.add(f.pullRange, name, await pull(ctx.curl, url, range.length, range));
    }
  }
}

/** Manifest GET by tag and blob HEAD under keep-alive load (wrk), alternating servers. */
export async function loadWorkloads(ctx: BenchContext): Promise<void> {
  const { options: o, figures, servers } = ctx;
  const f = figureSpecs(o);
  const load = (url: string, method: 'GET' | 'HEAD', headers?: Record<string, string>) =>
    runWrk(ctx.wrk, { url, method, connections: o.connections, seconds: o.loadSeconds, scratch: ctx.scratch, ...(headers ? { headers } : {}) });
  const headLoad = { connections: o.connections, seconds: o.loadSeconds };
  for (let rep = 0; rep < o.repetitions; rep += 1) {
    ctx.log(`load: repetition ${rep + 1}/${o.repetitions}`);
    // How the load spreads over the server's processes: CPU, and connections held midway.
    const midway = (o.loadSeconds * 1000) / 2;
    for (const name of order(rep)) {
      const server = servers[name];
      const { result: manifest, share } = await measureShare(server, midway, () =>
        load(`http://${server.target.hostPort}/v2/bench/small/manifests/latest`, 'GET', { Accept: 'application/vnd.oci.image.manifest.v1+json' }),
      );
      figures.add(f.manifestRps, name, manifest.requestsPerSecond);
      figures.add(f.manifestP50, name, manifest.p50Ms);
      figures.add(f.manifestP99, name, manifest.p99Ms);
      if (name === 'wharf') {
        figures.add(f.manifestCpu, name, busiestShare(share.cpuSeconds));
        figures.add(f.manifestConns, name, busiestShare(share.connections));
      }
    }
    for (const name of order(rep)) {
      const server = servers[name];
      const { result: head, share } = await measureShare(server, midway, () =>
        runHeadLoad({ ...headLoad, host: server.target.host, port: server.target.port, path: `/v2/bench/small/blobs/${ctx.image.layer.digest}` }),
      );
      figures.add(f.headRps, name, head.requestsPerSecond);
      figures.add(f.headP50, name, head.p50Ms);
      figures.add(f.headP99, name, head.p99Ms);
      if (name === 'wharf') {
        figures.add(f.headCpu, name, busiestShare(share.cpuSeconds));
        figures.add(f.headConns, name, busiestShare(share.connections));
      }
    }
    if (ctx.nginx) {
      // The bound for any Node.js server here: bare node:http, one process and two handed connections in turn.
      for (const processes of [1, 2]) {
        const bare = await startNodeCeiling(ctx.image.manifest, processes);
        try {
          const get = await load(`http://${bare.target.hostPort}/small`, 'GET');
          recordLimit(ctx, `bare node:http, manifest bytes, ${o.connections} conns, ${processes} process${processes > 1 ? 'es' : ''}`, 'req/s', get.requestsPerSecond);
          recordLimit(ctx, `bare node:http, manifest bytes p99, ${processes} process${processes > 1 ? 'es' : ''}`, 'ms', get.p99Ms);
          const head = await runHeadLoad({ ...headLoad, host: bare.target.host, port: bare.target.port, path: '/small' });
          recordLimit(ctx, `bare node:http, HEAD, ${o.connections} conns, ${processes} process${processes > 1 ? 'es' : ''}`, 'req/s', head.requestsPerSecond);
          recordLimit(ctx, `bare node:http, HEAD p99, ${processes} process${processes > 1 ? 'es' : ''}`, 'ms', head.p99Ms);
        } finally {
          await bare.stop();
        }
      }
      const small = await load(`http://${ctx.nginx.target.hostPort}/small`, 'GET');
      figures.add(f.manifestRps, 'nginx', small.requestsPerSecond);
      figures.add(f.manifestP99, 'nginx', small.p99Ms);
      const head = await runHeadLoad({ ...headLoad, host: ctx.nginx.target.host, port: ctx.nginx.target.port, path: '/small' });
      figures.add(f.headRps, 'nginx', head.requestsPerSecond);
      figures.add(f.headP99, 'nginx', head.p99Ms);
    }
  }
}

/** Pushes `count` tags (the small manifest) from `first` on, `parallelism` at a time; returns tags/s. */
async function pushTags(ctx: BenchContext, server: ServerProcess, repository: string, first: number, count: number): Promise<number> {
  const ms = await timed(() =>
    runParallel(count, ctx.options.parallelism, (i) => putManifest(server.target, repository, `t${String(first + i).padStart(7, '0')}`, ctx.image.manifest)),
  );
  return count / (ms / 1000);
}

/** Median-worthy samples of one request's latency: `reads` timed GETs. */
async function readLatency(server: ServerProcess, path: string, reads: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < reads; i += 1) out.push(await timed(() => server.target.request('GET', path, { expect: [200] })));
  return out;
}

/** Tag push rate in batches up to the listed size, then the tag list read in full and by pages. */
export async function tagWorkloads(ctx: BenchContext): Promise<void> {
  const { options: o, figures, servers } = ctx;
  const f = figureSpecs(o);
  const repository = 'bench/tags';
  for (const name of ['wharf', 'distribution'] as const) {
    await mount(servers[name].target, repository, ctx.image.config.digest, 'bench/small');
    await mount(servers[name].target, repository, ctx.image.layer.digest, 'bench/small');
  }
  const batches = Math.max(o.repetitions, Math.ceil(o.tagList / o.tagBatch));
  let pushed = 0;
  for (let batch = 0; batch < batches; batch += 1) {
    ctx.log(`tags: batch ${batch + 1}/${batches} (${pushed + o.tagBatch} tags)`);
    for (const name of order(batch)) figures.add(f.tagPush, name, await pushTags(ctx, servers[name], repository, pushed, o.tagBatch));
    pushed += o.tagBatch;
  }
  for (let rep = 0; rep < o.repetitions; rep += 1) {
    for (const name of order(rep)) {
      const server = servers[name];
      let listed = 0;
      figures.add(f.tagListFull, name, await timed(async () => {
        const reply = await server.target.request('GET', `/v2/${repository}/tags/list`, { expect: [200] });
        listed = (JSON.parse(reply.body.toString()) as { tags: string[] }).tags.length;
      }));
      if (listed !== pushed) throw new Error(`${name}: tag list has ${listed} tags, expected ${pushed}`);
      for (const sample of await readLatency(server, `/v2/${repository}/tags/list?n=${o.pageSize}`, 3)) figures.add(f.tagListFirst, name, sample);
      let items = 0;
      figures.add(f.tagListPages, name, await timed(async () => {
        items = (await readAllPages(server.target, `/v2/${repository}/tags/list?n=${o.pageSize}`, 'tags')).items;
      }));
      if (items !== pushed) throw new Error(`${name}: tag pages list ${items} tags, expected ${pushed}`);
    }
  }
  if (o.tagListLarge > pushed) {
    // Wharf only: Distribution has no tag paging to measure at this scale.
    const wharf = servers.wharf;
    ctx.log(`tags: growing Wharf's list to ${o.tagListLarge} tags`);
    while (pushed < o.tagListLarge) {
      const count = Math.min(10_000, o.tagListLarge - pushed);
      figures.add(f.tagPush, 'wharf', await pushTags(ctx, wharf, repository, pushed, count));
      pushed += count;
    }
    const middle = `t${String(Math.floor(pushed / 2)).padStart(7, '0')}`;
    for (const sample of await readLatency(wharf, `/v2/${repository}/tags/list?n=${o.pageSize}`, 20)) figures.add(f.tagListLargeFirst, 'wharf', sample);
    for (const sample of await readLatency(wharf, `/v2/${repository}/tags/list?n=${o.pageSize}&last=${middle}`, 20)) figures.add(f.tagListLargeMiddle, 'wharf', sample);
  }
}

/** Creates `count` repositories (mount config and layer, push the manifest); returns repos/s. */
async function createRepositories(ctx: BenchContext, server: ServerProcess, first: number, count: number): Promise<number> {
  const { image } = ctx;
  const ms = await timed(() =>
    runParallel(count, ctx.options.parallelism, async (i) => {
      const repository = `catalog/r${String(first + i).padStart(7, '0')}`;
      await mount(server.target, repository, image.config.digest, 'bench/small');
      await mount(server.target, repository, image.layer.digest, 'bench/small');
      await putManifest(server.target, repository, 'latest', image.manifest);
    }),
  );
  return count / (ms / 1000);
}

/** Repository creation in batches, with the catalog read at the small and large sizes. */
export async function repositoryWorkloads(ctx: BenchContext): Promise<void> {
  const { options: o, figures, servers } = ctx;
  const f = figureSpecs(o);
  let created = 0;
  let batch = 0;
  const growTo = async (total: number, names: readonly ServerName[]) => {
    while (created < total) {
      const count = Math.min(o.repoBatch, total - created);
      ctx.log(`repos: creating ${created + count} of ${total}`);
      for (const name of batch % 2 === 0 ? names : [...names].reverse()) {
        const rate = await createRepositories(ctx, servers[name], created, count);
        if (count === o.repoBatch) figures.add(f.repoCreate, name, rate);
      }
      created += count;
      batch += 1;
    }
  };
  const readCatalog = async (first: FigureSpec, pages: FigureSpec, names: readonly ServerName[]) => {
    for (let rep = 0; rep < o.repetitions; rep += 1) {
      for (const name of rep % 2 === 0 ? names : [...names].reverse()) {
        const server = servers[name];
        for (const sample of await readLatency(server, `/v2/_catalog?n=${o.pageSize}`, 3)) figures.add(first, name, sample);
        let items = 0;
        figures.add(pages, name, await timed(async () => {
          items = (await readAllPages(server.target, `/v2/_catalog?n=${o.pageSize}`, 'repositories')).items;
        }));
        // The bench's other repositories (bench/*) are listed too.
        if (items < created) throw new Error(`${name}: catalog lists ${items} repositories, expected at least ${created}`);
      }
    }
  };
  const both = ['wharf', 'distribution'] as const;
  await growTo(o.catalogSmall, both);
  await readCatalog(f.catalogSmallFirst, f.catalogSmallPages, both);
  if (o.catalogLarge > o.catalogSmall) {
    await growTo(o.catalogLarge, both);
    await readCatalog(f.catalogLargeFirst, f.catalogLargePages, both);
  }
  if (o.catalogHuge > created) {
    const target = o.catalogHuge;
    ctx.log(`repos: growing Wharf to ${target} repositories`);
    while (created < target) {
      const count = Math.min(10_000, target - created);
      figures.add(f.repoCreate, 'wharf', await createRepositories(ctx, servers.wharf, created, count));
      created += count;
    }
    const middle = `catalog/r${String(Math.floor(created / 2)).padStart(7, '0')}`;
    for (const sample of await readLatency(servers.wharf, `/v2/_catalog?n=${o.pageSize}`, 20)) figures.add(f.catalogHugeFirst, 'wharf', sample);
    for (const sample of await readLatency(servers.wharf, `/v2/_catalog?n=${o.pageSize}&last=${encodeURIComponent(middle)}`, 20)) {
      figures.add(f.catalogHugeMiddle, 'wharf', sample);
    }
  }
}

/** Many clients pushing distinct blobs at the same moment; aggregate MB/s. */
export async function parallelPushWorkloads(ctx: BenchContext): Promise<void> {
  const { options: o, figures, servers } = ctx;
  const f = figureSpecs(o);
  const blobs = Array.from({ length: o.pushClients }, () => randomBytes(o.pushClientMiB * MiB));
  const total = blobs.length * o.pushClientMiB * MiB;
  for (let rep = 0; rep < o.repetitions; rep += 1) {
    ctx.log(`parallel: repetition ${rep + 1}/${o.repetitions}`);
    const digests = blobs.map((blob, i) => makeVariant(blob, rep * o.pushClients + i));
    for (const name of order(rep)) {
      const target = servers[name].target;
      settleDisk();
      const ms = await timed(() => Promise.all(blobs.map((blob, i) => pushMonolithic(target, 'bench/parallel', blob, digests[i]!))));
      figures.add(f.parallelPush, name, megabytesPerSecond(total, ms));
    }
  }
}
