/**
 * The soak: a few minutes of a realistic mix from several clients at once, watching the memory
 * and CPU of every server process (parent and workers apart). It answers whether memory settles
 * (drift from warm-up to the end, trend, what is left after an idle spell) and whether the
 * processes share the work.
 */
import { createHash } from 'node:crypto';
import { connectionOwners } from './connections.js';
import type { FigureSpec } from './figures.js';
import { HttpTarget, locationPath, UnexpectedStatusError, withQuery, type Reply } from './http.js';
import { OCI_MANIFEST } from './registry-ops.js';
import { processCpuSeconds, processPss, processRss, processTree, type ServerName, type ServerProcess } from './servers.js';
import type { BenchContext } from './workloads.js';

const MiB = 1024 * 1024;
const KiB = 1024;

/** Repositories the clients share, and live images per repository the mix keeps around. */
const REPOSITORIES = 8;
const IMAGES_PER_REPOSITORY = 6;
/** Tags and catalog are read in pages this small, so that paging is exercised. */
const PAGE = 10;
/** RSS "after warm-up" and "at the end" are means over this many seconds, to smooth out GC's sawtooth. */
const SMOOTHING_SECONDS = 5;

export interface SoakSettings {
  clients: number;
  warmupSeconds: number;
  seconds: number;
  idleSeconds: number;
}

/** One process's figures over the soak. */
export interface SoakProcess {
  role: string;
  pid: number;
  rssWarmMiB: number;
  rssEndMiB: number;
  rssIdleMiB: number;
  driftPercent: number;
  /** CPU seconds (user + system, all threads) during the measured part. */
  cpuSeconds: number;
  cpuShare: number;
  /** Requests whose connection this process held, as a share of those attributed. */
  requestShare: number;
}

export interface SoakResult {
  server: ServerName;
  settings: SoakSettings;
  requests: number;
  requestsPerSecond: number;
  /** Requests of the measured part whose connection had closed before it could be attributed. */
  unattributedRequests: number;
  operations: Record<string, number>;
  total: Omit<SoakProcess, 'role' | 'pid' | 'requestShare'> & { pssWarmMiB: number; pssEndMiB: number; slopeMiBPerMinute: number };
  processes: SoakProcess[];
  /** Every sample: seconds since the start, and per pid RSS, PSS (MiB) and CPU seconds so far. */
  series: Array<{ t: number; phase: Phase; processes: Array<{ pid: number; rss: number; pss: number; cpu: number }> }>;
}

type Phase = 'warmup' | 'measure' | 'idle';

/** The soak's figures; labels carry the settings of this run. */
export function soakFigureSpecs(s: SoakSettings) {
  const spec = (id: string, label: string, unit: string, better: 'higher' | 'lower', targets?: FigureSpec['targets']): FigureSpec =>
    targets ? { id, label, unit, better, targets } : { id, label, unit, better };
  return {
    rate: spec('soak.rate', `soak: requests served, ${s.clients} clients, mixed (${s.seconds} s after ${s.warmupSeconds} s warm-up)`, 'req/s', 'higher'),
    rssWarm: spec('soak.rss.warm', 'soak: RSS after warm-up (sum over processes)', 'MiB', 'lower'),
    rssEnd: spec('soak.rss.end', 'soak: RSS at the end', 'MiB', 'lower'),
    rssIdle: spec('soak.rss.idle', `soak: RSS after ${s.idleSeconds} s idle`, 'MiB', 'lower'),
    drift: spec('soak.rss.drift', 'soak: RSS drift, warm-up to end', '%', 'lower', [{ kind: 'at-most', value: 10 }]),
    slope: spec('soak.rss.slope', 'soak: RSS trend over the measured part (least squares)', 'MiB/min', 'lower'),
    pssEnd: spec('soak.pss.end', 'soak: PSS at the end (shared pages counted once)', 'MiB', 'lower'),
    busiestCpu: spec('soak.cpu.busiest', 'soak: CPU share of the busiest process', '%', 'lower'),
  };
}

/** Runs the soak on a fresh Wharf, then on a fresh Distribution, and records the figures. */
export async function soakWorkloads(ctx: BenchContext): Promise<void> {
  const { options: o } = ctx;
  const settings: SoakSettings = { clients: o.soakClients, warmupSeconds: o.soakWarmupSeconds, seconds: o.soakSeconds, idleSeconds: o.soakIdleSeconds };
  const f = soakFigureSpecs(settings);
  const results: SoakResult[] = [];
  for (const name of o.soakServers) {
    // A fresh server, so that what the other workloads left behind does not count.
    const server = await ctx.launch(name);
    try {
      ctx.log(`soak: ${name}, ${settings.clients} clients, ${settings.warmupSeconds} s warm-up + ${settings.seconds} s + ${settings.idleSeconds} s idle`);
      const result = await runSoak(server, settings, ctx.log);
      results.push(result);
      ctx.figures.add(f.rate, name, result.requestsPerSecond);
      ctx.figures.add(f.rssWarm, name, result.total.rssWarmMiB);
      ctx.figures.add(f.rssEnd, name, result.total.rssEndMiB);
      ctx.figures.add(f.rssIdle, name, result.total.rssIdleMiB);
      ctx.figures.add(f.drift, name, result.total.driftPercent);
      ctx.figures.add(f.slope, name, result.total.slopeMiBPerMinute);
      ctx.figures.add(f.pssEnd, name, result.total.pssEndMiB);
      ctx.figures.add(f.busiestCpu, name, Math.max(...result.processes.map((p) => p.cpuShare)) * 100);
    } finally {
      await server.stop();
    }
  }
  ctx.details.soak = results;
}

/** The soak's per-process table as Markdown. */
export function renderSoak(results: SoakResult[]): string {
  const fmt = (n: number, digits = 1) => n.toFixed(digits);
  const lines = [
    '| server | process | RSS after warm-up | RSS at the end | RSS after idle | drift | CPU s | CPU share | requests share |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    for (const p of r.processes) {
      lines.push(
        `| ${r.server} | ${p.role} (${p.pid}) | ${fmt(p.rssWarmMiB)} MiB | ${fmt(p.rssEndMiB)} MiB | ${fmt(p.rssIdleMiB)} MiB | ${fmt(p.driftPercent)} % | ${fmt(p.cpuSeconds)} | ${fmt(p.cpuShare * 100)} % | ${fmt(p.requestShare * 100)} % |`,
      );
    }
    const t = r.total;
    lines.push(
      `| ${r.server} | **all** | ${fmt(t.rssWarmMiB)} MiB | ${fmt(t.rssEndMiB)} MiB | ${fmt(t.rssIdleMiB)} MiB | ${fmt(t.driftPercent)} % | ${fmt(t.cpuSeconds)} | 100 % | ${r.requests} req, ${fmt(r.requestsPerSecond, 0)}/s |`,
    );
  }
  return lines.join('\n');
}

/** A small seeded generator (mulberry32), so every run draws the same mix. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface BlobRef {
  digest: string;
  size: number;
}

interface Image {
  repository: string;
  tag: string;
  digest: string;
  config: BlobRef;
  layers: BlobRef[];
  /** Clients reading (or mounting from) it right now; only an unread image may be deleted. */
  readers: number;
}

/** What the clients share: the live images and which blobs each repository links. */
class Pool {
  readonly images: Image[] = [];
  readonly linked = new Map<string, Set<string>>();
  readonly target = REPOSITORIES * IMAGES_PER_REPOSITORY;

  links(repository: string): Set<string> {
    let set = this.linked.get(repository);
    if (!set) this.linked.set(repository, (set = new Set()));
    return set;
  }

  /** An image to read, held until released. */
  borrow(pick: () => number, except?: string): Image | undefined {
    const candidates = except === undefined ? this.images : this.images.filter((image) => image.repository !== except);
    const image = candidates[Math.floor(pick() * candidates.length)];
    if (image) image.readers += 1;
    return image;
  }

  /** Takes an image nobody reads out of the pool, for deletion. */
  take(pick: () => number): Image | undefined {
    const free = this.images.filter((image) => image.readers === 0);
    const image = free[Math.floor(pick() * free.length)];
    if (image) this.images.splice(this.images.indexOf(image), 1);
    return image;
  }
}

/** Random bytes that blobs are cut from (each blob gets a unique header, so every push is new content). */
const NOISE = (() => {
  const rng = random(42);
  const buffer = Buffer.allocUnsafe(32 * MiB);
  for (let i = 0; i < buffer.length; i += 4) buffer.writeUInt32LE(Math.floor(rng() * 4294967296), i);
  return buffer;
})();

/**
 * Blob sizes as registries see them: mostly small (configs, small layers), some of a few MiB,
 * a few large. Log-uniform inside each band; about 1 MiB on average.
 */
function blobSize(pick: () => number): number {
  const r = pick();
  const band: [number, number] = r < 0.5 ? [512, 64 * KiB] : r < 0.85 ? [64 * KiB, MiB] : r < 0.97 ? [MiB, 8 * MiB] : [8 * MiB, 24 * MiB];
  return Math.round(Math.exp(Math.log(band[0]) + pick() * (Math.log(band[1]) - Math.log(band[0]))));
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Who served which request: counts per client port, attributed to a process at each scan. */
class Attribution {
  /** Requests per client port not yet attributed. */
  private pending = new Map<number, number>();
  private retired: HttpTarget[] = [];
  readonly perPid = new Map<number, number>();
  unattributed = 0;
  counting = false;

  constructor(
    private readonly root: number,
    private readonly port: number,
  ) {}

  count(reply: Reply): void {
    if (!this.counting) return;
    this.pending.set(reply.localPort, (this.pending.get(reply.localPort) ?? 0) + 1);
  }

  /** A client's connection it no longer uses: closed after the next scan has seen it. */
  retire(target: HttpTarget): void {
    this.retired.push(target);
  }

  /** Attributes the counted requests to the processes holding their connections; closes retired ones. */
  scan(): void {
    const owners = connectionOwners(processTree(this.root), this.port);
    for (const [port, requests] of this.pending) {
      const pid = owners.get(port);
      if (pid === undefined) this.unattributed += requests;
      else this.perPid.set(pid, (this.perPid.get(pid) ?? 0) + requests);
    }
    this.pending = new Map();
    for (const target of this.retired.splice(0)) target.close();
  }
}

/** One client: a loop of operations drawn from the mix, over a connection it replaces now and then. */
class SoakClient {
  private target: HttpTarget;
  private opsOnConnection = 0;
  private connectionLife: number;
  private counter = 0;
  readonly operations = new Map<string, number>();

  constructor(
    private readonly id: number,
    private readonly server: ServerProcess,
    private readonly pool: Pool,
    private readonly attribution: Attribution,
    private readonly pick: () => number,
    private readonly persistent: boolean,
  ) {
    this.target = this.connect();
    this.connectionLife = this.newLife();
  }

  private connect(): HttpTarget {
    return new HttpTarget(this.server.name, this.server.target.host, this.server.target.port, 1);
  }

  /**
   * Persistent clients keep one connection for the whole soak (a proxy's upstream connections, a
   * long CI job); the others come and go, as a docker pull or push is a process of its own with
   * its own connections.
   */
  private newLife(): number {
    return this.persistent ? Infinity : 1 + Math.floor(this.pick() * 24);
  }

  async run(stopped: () => boolean): Promise<void> {
    while (!stopped()) {
      const operation = this.choose();
      try {
        await this[operation]();
        this.operations.set(operation, (this.operations.get(operation) ?? 0) + 1);
      } catch (error) {
        // Distribution's filesystem storage races its own tag and repository directories when
        // pushes and deletes meet, and now and then answers 500 (a failed mkdir). Its soak counts
        // those instead of stopping; Wharf's gets no such allowance.
        if (this.server.name !== 'distribution' || !(error instanceof UnexpectedStatusError) || error.status < 500) throw error;
        this.operations.set('server error', (this.operations.get('server error') ?? 0) + 1);
      }
      if (++this.opsOnConnection >= this.connectionLife) {
        this.attribution.retire(this.target);
        this.target = this.connect();
        this.opsOnConnection = 0;
        this.connectionLife = this.newLife();
      }
    }
    this.attribution.retire(this.target);
  }

  /** Reads dominate; pushes and deletes balance so the registry's content stays about the same size. */
  private choose(): 'pull' | 'head' | 'tags' | 'catalog' | 'push' | 'remove' | 'abandon' {
    const r = this.pick() * 100;
    const size = this.pool.images.length;
    if (size === 0) return 'push';
    if (r < 24) return 'pull';
    if (r < 46) return 'head';
    if (r < 56) return 'tags';
    if (r < 60) return 'catalog';
    if (r < 62) return 'abandon';
    const push = r < 81;
    if (push && size > this.pool.target * 1.25) return 'remove';
    if (!push && size < this.pool.target * 0.75) return 'push';
    return push ? 'push' : 'remove';
  }

  private async request(method: string, path: string, options: Parameters<HttpTarget['request']>[2] = {}): Promise<Reply> {
    const reply = await this.target.request(method, path, options);
    this.attribution.count(reply);
    return reply;
  }

  private repository(): string {
    return `soak/app${Math.floor(this.pick() * REPOSITORIES)}`;
  }

  private blob(size: number): Buffer {
    const data = Buffer.allocUnsafe(size);
    const start = Math.floor(this.pick() * (NOISE.length - size));
    NOISE.copy(data, 0, start, start + size);
    // Unique content: client, counter and time in the first bytes.
    const header = Buffer.from(`${this.id}:${this.counter++}:${process.hrtime.bigint()}:`);
    header.copy(data, 0, 0, Math.min(header.length, size));
    return data;
  }

  /** Pushes one blob the way clients do: in one POST, POST + PUT, or POST + PATCHes + PUT. */
  private async pushBlob(repository: string, data: Buffer): Promise<BlobRef> {
    const digest = sha256(data);
    const way = this.pick();
    const octets = { 'Content-Type': 'application/octet-stream' };
    if (way < 0.2) {
      // A registry that does not take a blob in one POST opens a session instead: finish it with a PUT.
      const reply = await this.request('POST', `/v2/${repository}/blobs/uploads/?digest=${digest}`, { body: data, headers: octets, expect: [201, 202] });
      if (reply.status === 202) await this.request('PUT', withQuery(locationPath(reply), 'digest', digest), { body: data, headers: octets, expect: [201] });
    } else if (way < 0.6) {
      const started = await this.request('POST', `/v2/${repository}/blobs/uploads/`, { expect: [202] });
      await this.request('PUT', withQuery(locationPath(started), 'digest', digest), { body: data, headers: octets, expect: [201] });
    } else {
      const chunkBytes = [256 * KiB, MiB, 5 * MiB][Math.floor(this.pick() * 3)]!;
      let reply = await this.request('POST', `/v2/${repository}/blobs/uploads/`, { expect: [202] });
      for (let start = 0; start < data.length; start += chunkBytes) {
        const chunk = data.subarray(start, Math.min(start + chunkBytes, data.length));
        reply = await this.request('PATCH', locationPath(reply), {
          body: chunk,
          headers: { ...octets, 'Content-Range': `${start}-${start + chunk.length - 1}` },
          expect: [202],
        });
      }
      await this.request('PUT', withQuery(locationPath(reply), 'digest', digest), { expect: [201] });
    }
    return { digest, size: data.length };
  }

  /** An image of one to three layers (some mounted from another repository), tagged, sometimes also `latest`. */
  private async push(): Promise<void> {
    const repository = this.repository();
    const links = this.pool.links(repository);
    const layers: BlobRef[] = [];
    const count = 1 + Math.floor(this.pick() * 3);
    for (let i = 0; i < count; i += 1) {
      if (this.pick() < 0.15) {
        const source = this.pool.borrow(this.pick, repository);
        if (source) {
          try {
            const layer = source.layers[Math.floor(this.pick() * source.layers.length)]!;
            if (!links.has(layer.digest)) {
              // Claimed now: two pushes to one repository must not link the same blob (a delete would take both).
              links.add(layer.digest);
              const q = `?mount=${encodeURIComponent(layer.digest)}&from=${encodeURIComponent(source.repository)}`;
              await this.request('POST', `/v2/${repository}/blobs/uploads/${q}`, { expect: [201] });
              layers.push(layer);
              continue;
            }
          } finally {
            source.readers -= 1;
          }
        }
      }
      layers.push(await this.pushBlob(repository, this.blob(blobSize(this.pick))));
    }
    const configData = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', created: `${this.id}-${this.counter++}-${Date.now()}`, rootfs: { type: 'layers', diff_ids: [] } }));
    const config = await this.pushBlob(repository, configData);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
      }),
    );
    const tag = `c${this.id}-${this.counter++}`;
    const headers = { 'Content-Type': OCI_MANIFEST };
    await this.request('PUT', `/v2/${repository}/manifests/${tag}`, { body: manifest, headers, expect: [201] });
    if (this.pick() < 0.2) await this.request('PUT', `/v2/${repository}/manifests/latest`, { body: manifest, headers, expect: [201] });
    for (const blob of [config, ...layers]) links.add(blob.digest);
    this.pool.images.push({ repository, tag, digest: sha256(manifest), config, layers, readers: 0 });
  }

  /** A pull: manifest by tag, then the config and every layer. */
  private async pull(): Promise<void> {
    const image = this.pool.borrow(this.pick);
    if (!image) return;
    try {
      const manifest = await this.request('GET', `/v2/${image.repository}/manifests/${image.tag}`, { headers: { Accept: OCI_MANIFEST }, expect: [200] });
      if (sha256(manifest.body) !== image.digest) throw new Error(`${this.server.name}: ${image.repository}:${image.tag} changed`);
      for (const blob of [image.config, ...image.layers]) {
        const reply = await this.request('GET', `/v2/${image.repository}/blobs/${blob.digest}`, { discard: true, expect: [200] });
        if (reply.received !== blob.size) throw new Error(`${this.server.name}: blob ${blob.digest} came back with ${reply.received} of ${blob.size} bytes`);
      }
    } finally {
      image.readers -= 1;
    }
  }

  /** What a client does to see whether it needs to pull or push: HEAD the manifest and the blobs. */
  private async head(): Promise<void> {
    const image = this.pool.borrow(this.pick);
    if (!image) return;
    try {
      await this.request('HEAD', `/v2/${image.repository}/manifests/${image.tag}`, { headers: { Accept: OCI_MANIFEST }, expect: [200] });
      for (const blob of [image.config, ...image.layers]) await this.request('HEAD', `/v2/${image.repository}/blobs/${blob.digest}`, { expect: [200] });
    } finally {
      image.readers -= 1;
    }
  }

  /** Follows Link headers from `path` to the last page. */
  private async pages(path: string, expect: number[]): Promise<void> {
    let next: string | undefined = path;
    while (next !== undefined) {
      const reply = await this.request('GET', next, { expect });
      const link = reply.headers.link;
      const m = typeof link === 'string' ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
      next = m ? (m[1]!.startsWith('/') ? m[1]! : new URL(m[1]!).pathname + new URL(m[1]!).search) : undefined;
    }
  }

  private async tags(): Promise<void> {
    // A repository whose images were all deleted may be unknown.
    await this.pages(`/v2/${this.repository()}/tags/list?n=${PAGE}`, [200, 404]);
  }

  private async catalog(): Promise<void> {
    await this.pages(`/v2/_catalog?n=${PAGE}`, [200]);
  }

  /** Deletes an image: its manifest (and so its tags), then its blobs' links in the repository. */
  private async remove(): Promise<void> {
    const image = this.pool.take(this.pick);
    if (!image) return;
    await this.request('DELETE', `/v2/${image.repository}/manifests/${image.digest}`, { expect: [202] });
    const links = this.pool.links(image.repository);
    for (const blob of [image.config, ...image.layers]) {
      await this.request('DELETE', `/v2/${image.repository}/blobs/${blob.digest}`, { expect: [202] });
      links.delete(blob.digest);
    }
  }

  /** A push that gives up after its first chunk and cancels the session (as a client does when interrupted). */
  private async abandon(): Promise<void> {
    const repository = this.repository();
    const started = await this.request('POST', `/v2/${repository}/blobs/uploads/`, { expect: [202] });
    const data = this.blob(64 * KiB);
    const patched = await this.request('PATCH', locationPath(started), {
      body: data,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `0-${data.length - 1}` },
      expect: [202],
    });
    await this.request('DELETE', locationPath(patched), { expect: [204] });
  }
}

interface Sample {
  t: number;
  phase: Phase;
  processes: Array<{ pid: number; rss: number; pss: number; cpu: number }>;
}

/** Runs the soak against one server; the server is left running. */
export async function runSoak(server: ServerProcess, settings: SoakSettings, log: (line: string) => void): Promise<SoakResult> {
  const pool = new Pool();
  const attribution = new Attribution(server.pid, server.target.port);
  // The first half of the clients keep their connection, the others reconnect now and then.
  const clients = Array.from({ length: settings.clients }, (_, i) => new SoakClient(i, server, pool, attribution, random(1000 + i), i < settings.clients / 2));
  const samples: Sample[] = [];
  const started = performance.now();
  let phase: Phase = 'warmup';
  let warmIndex = 0;
  const sample = () => {
    const t = (performance.now() - started) / 1000;
    samples.push({
      t,
      phase,
      processes: processTree(server.pid).map((pid) => ({ pid, rss: processRss(pid) / MiB, pss: processPss(pid) / MiB, cpu: processCpuSeconds(pid) ?? 0 })),
    });
  };
  sample();
  const sampler = setInterval(() => {
    sample();
    attribution.scan();
  }, 1000);
  let stop = false;
  let failure: unknown;
  const running = Promise.all(
    clients.map((client) =>
      client.run(() => stop).catch((error: unknown) => {
        failure ??= error;
        stop = true;
      }),
    ),
  );
  const wait = (seconds: number) => new Promise<void>((resolve) => {
    const deadline = performance.now() + seconds * 1000;
    const check = setInterval(() => {
      if (stop || performance.now() >= deadline) {
        clearInterval(check);
        resolve();
      }
    }, 100);
  });
  try {
    await wait(settings.warmupSeconds);
    sample();
    warmIndex = samples.length - 1;
    attribution.scan();
    phase = 'measure';
    attribution.counting = true;
    const measureStarted = performance.now();
    let lastReport = measureStarted;
    while (!stop && performance.now() - measureStarted < settings.seconds * 1000) {
      await wait(Math.min(1, settings.seconds - (performance.now() - measureStarted) / 1000));
      if (performance.now() - lastReport >= 30_000) {
        lastReport = performance.now();
        const last = samples[samples.length - 1]!;
        log(`soak: ${server.name} at ${Math.round(last.t)} s: RSS ${last.processes.map((p) => `${p.pid} ${p.rss.toFixed(1)}`).join(', ')} MiB`);
      }
    }
    const measuredSeconds = (performance.now() - measureStarted) / 1000;
    sample();
    stop = true;
    await running;
    attribution.counting = false;
    attribution.scan();
    if (failure !== undefined) throw failure;
    phase = 'idle';
    await wait(settings.idleSeconds);
    sample();
    const requests = [...attribution.perPid.values()].reduce((a, b) => a + b, 0) + attribution.unattributed;
    const operations: Record<string, number> = {};
    for (const client of clients) for (const [name, n] of client.operations) operations[name] = (operations[name] ?? 0) + n;
    return summarizeSoak(server, settings, samples, attribution, { requests, measuredSeconds, operations, warmIndex });
  } finally {
    stop = true;
    clearInterval(sampler);
    await running;
    attribution.scan();
  }
}

function mean(values: number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const mx = mean(points.map((p) => p[0]));
  const my = mean(points.map((p) => p[1]));
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function summarizeSoak(
  server: ServerProcess,
  settings: SoakSettings,
  samples: Sample[],
  attribution: Attribution,
  run: { requests: number; measuredSeconds: number; operations: Record<string, number>; warmIndex: number },
): SoakResult {
  const measured = samples.filter((s) => s.phase === 'measure');
  const atWarm = samples[run.warmIndex]!;
  const warmEnd = atWarm.t;
  const end = measured[measured.length - 1]?.t ?? warmEnd;
  const finalT = samples[samples.length - 1]!.t;
  const inWindow = (from: number, to: number) => samples.filter((s) => s.t > from - 1e-9 && s.t <= to + 1e-9);
  const warmWindow = inWindow(warmEnd - SMOOTHING_SECONDS, warmEnd);
  const endWindow = inWindow(end - SMOOTHING_SECONDS, end);
  const idleWindow = inWindow(finalT - 3, finalT);
  const valueOf = (window: Sample[], pid: number | undefined, field: 'rss' | 'pss') =>
    mean(window.map((s) => s.processes.filter((p) => pid === undefined || p.pid === pid).reduce((sum, p) => sum + p[field], 0)));
  const cpuAt = (s: Sample | undefined, pid: number) => s?.processes.find((p) => p.pid === pid)?.cpu ?? 0;
  const atEnd = endWindow[endWindow.length - 1];
  const pids = [...new Set(samples.flatMap((s) => s.processes.map((p) => p.pid)))];
  const cpu = new Map(pids.map((pid) => [pid, Math.max(0, cpuAt(atEnd, pid) - cpuAt(atWarm, pid))]));
  const totalCpu = [...cpu.values()].reduce((a, b) => a + b, 0);
  const attributed = [...attribution.perPid.values()].reduce((a, b) => a + b, 0);
  const workers = pids.filter((pid) => pid !== server.pid).sort((a, b) => a - b);
  const processes: SoakProcess[] = [server.pid, ...workers].map((pid, i) => {
    const rssWarmMiB = valueOf(warmWindow, pid, 'rss');
    const rssEndMiB = valueOf(endWindow, pid, 'rss');
    return {
      role: i === 0 ? (workers.length > 0 ? 'parent' : 'main') : `worker ${i}`,
      pid,
      rssWarmMiB,
      rssEndMiB,
      rssIdleMiB: valueOf(idleWindow, pid, 'rss'),
      driftPercent: rssWarmMiB > 0 ? ((rssEndMiB - rssWarmMiB) / rssWarmMiB) * 100 : 0,
      cpuSeconds: cpu.get(pid) ?? 0,
      cpuShare: totalCpu > 0 ? (cpu.get(pid) ?? 0) / totalCpu : 0,
      requestShare: attributed > 0 ? (attribution.perPid.get(pid) ?? 0) / attributed : 0,
    };
  });
  const rssWarmMiB = valueOf(warmWindow, undefined, 'rss');
  const rssEndMiB = valueOf(endWindow, undefined, 'rss');
  const trend = measured.map((s): [number, number] => [s.t / 60, s.processes.reduce((sum, p) => sum + p.rss, 0)]);
  return {
    server: server.name as ServerName,
    settings,
    requests: run.requests,
    requestsPerSecond: run.requests / run.measuredSeconds,
    unattributedRequests: attribution.unattributed,
    operations: run.operations,
    total: {
      rssWarmMiB,
      rssEndMiB,
      rssIdleMiB: valueOf(idleWindow, undefined, 'rss'),
      driftPercent: ((rssEndMiB - rssWarmMiB) / rssWarmMiB) * 100,
      pssWarmMiB: valueOf(warmWindow, undefined, 'pss'),
      pssEndMiB: valueOf(endWindow, undefined, 'pss'),
      slopeMiBPerMinute: slope(trend),
      cpuSeconds: totalCpu,
      cpuShare: 1,
    },
    processes,
    series: samples.map((s) => ({ ...s, processes: s.processes.map((p) => ({ pid: p.pid, rss: round(p.rss), pss: round(p.pss), cpu: round(p.cpu) })) })),
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
