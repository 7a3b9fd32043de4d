/**
 * The `gc` workload group: garbage collection of many small blobs in many repositories.
 *
 * Both registries get the same content over HTTP: `gcRepos` repositories of `gcBlobsPerRepo`
 * small blobs each. In every repository a manifest tagged `keep` references the first half of
 * its blobs; a second manifest, tagged `old`, references the other half and is then deleted, so
 * half of all blobs are garbage. Wharf then collects online (`wharf garbage-collect --json`
 * beside the running server, delay 0) while clients keep reading manifests and blobs and
 * pushing new images; Distribution is stopped and collects offline
 * (`docker-registry garbage-collect CONFIG`), as its documentation requires. Both runs are
 * without --delete-untagged, so both delete the same blobs.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FigureSpec } from './figures.js';
import { runParallel, type HttpTarget } from './http.js';
import type { BenchOptions } from './options.js';
import { OCI_MANIFEST, pushMonolithic, putManifest, sha256 } from './registry-ops.js';
import type { ServerName, ServerProcess } from './servers.js';
import type { BenchContext } from './workloads.js';

/** Bytes of each blob: small, so that the collection's cost is per blob, not per byte. */
const BLOB_BYTES = 512;
/** Requests in flight while populating each registry. */
const POPULATE_LANES = 32;

export function gcFigureSpecs(o: BenchOptions) {
  const blobs = o.gcRepos * o.gcBlobsPerRepo;
  const spec = (id: string, label: string, unit: string, better: 'higher' | 'lower', targets?: FigureSpec['targets']): FigureSpec =>
    targets ? { id, label, unit, better, targets } : { id, label, unit, better };
  return {
    time: spec('gc.time', `garbage collection, ${blobs} blobs in ${o.gcRepos} repos (Wharf online, Distribution offline)`, 's', 'lower', [{ kind: 'faster-at-least', value: 10 }]),
    own: spec('gc.time.own', 'garbage collection as Wharf reports it (durationMs: without starting the process)', 's', 'lower'),
    rate: spec('gc.rate', 'garbage collection: blobs in the registry per second of collection', 'blobs/s', 'higher'),
    deleted: spec('gc.deleted', 'garbage collection: blobs deleted (configs and layers)', 'blobs', 'higher'),
    getP50: spec('gc.get.p50', `manifest GET p50 during the collection (${o.gcGetClients} clients)`, 'ms', 'lower'),
    getP99: spec('gc.get.p99', `manifest GET p99 during the collection (${o.gcGetClients} clients)`, 'ms', 'lower'),
    getRate: spec('gc.get.rate', 'manifest GETs served during the collection', 'req/s', 'higher'),
    failures: spec('gc.failures', 'requests failed during the collection (GETs, pulls, pushes)', 'requests', 'lower', [{ kind: 'at-most', value: 0 }]),
  };
}

interface Blob {
  data: Buffer;
  digest: string;
}

/** The content of one repository: its blobs, the kept manifest and the deleted one. */
interface RepoContent {
  name: string;
  blobs: Blob[];
  /** How many of the blobs (the first ones) the kept manifest references. */
  kept: number;
  keep: { data: Buffer; digest: string };
  old: { data: Buffer; digest: string };
}

function manifestOf(config: Blob, layers: Blob[]): { data: Buffer; digest: string } {
  const data = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.data.length },
      layers: layers.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.data.length })),
    }),
  );
  return { data, digest: sha256(data) };
}

/** Deterministic content from the run's salt, so both registries get exactly the same bytes. */
function repoContent(salt: Buffer, index: number, blobsPerRepo: number): RepoContent {
  const blobs: Blob[] = [];
  for (let i = 0; i < blobsPerRepo; i += 1) {
    const data = Buffer.alloc(BLOB_BYTES);
    // Filler from a hash of (salt, repository, blob), so blobs do not compress to nothing.
    const seed = createHash('sha512').update(salt).update(`${index}/${i}`).digest();
    for (let at = 0; at < BLOB_BYTES; at += seed.length) seed.copy(data, at);
    data.writeUInt32BE(index, 0);
    data.writeUInt32BE(i, 4);
    blobs.push({ data, digest: sha256(data) });
  }
  const kept = Math.ceil(blobsPerRepo / 2);
  return {
    name: `gc/r${String(index).padStart(6, '0')}`,
    blobs,
    kept,
    keep: manifestOf(blobs[0]!, blobs.slice(1, kept)),
    old: manifestOf(blobs[kept]!, blobs.slice(kept + 1)),
  };
}

/** Pushes every repository's blobs and manifests, tags `keep` and `old`, then deletes `old`. */
async function populate(target: HttpTarget, salt: Buffer, o: BenchOptions, log: (line: string) => void): Promise<void> {
  let done = 0;
  const step = Math.max(1, Math.floor(o.gcRepos / 5));
  await runParallel(o.gcRepos, POPULATE_LANES, async (index) => {
    const repo = repoContent(salt, index, o.gcBlobsPerRepo);
    for (const blob of repo.blobs) await pushMonolithic(target, repo.name, blob.data, blob.digest);
    await putManifest(target, repo.name, 'keep', repo.keep.data);
    await putManifest(target, repo.name, 'old', repo.old.data);
    await target.request('DELETE', `/v2/${repo.name}/manifests/${repo.old.digest}`, { expect: [202] });
    done += 1;
    if (done % step === 0) log(`gc: ${target.name} populated ${done}/${o.gcRepos} repositories`);
  });
}

/** Runs a command to its end; returns its wall time, exit code and output (stdout line by line). */
function runTimed(command: string, args: string[], env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Promise<{ ms: number; code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let partial = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      if (!onLine) {
        stdout += d.toString();
        return;
      }
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) onLine(line);
    });
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    child.once('error', reject);
    child.once('close', (code) => {
      if (onLine && partial) onLine(partial);
      resolve({ ms: performance.now() - started, code, stdout, stderr });
    });
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface LoadResult {
  getLatencies: number[];
  gets: number;
  pulls: number;
  pushes: number;
  /** Pushes whose blob was collected before their manifest came (uploaded again, as clients do). */
  repushed: number;
  failures: number;
  errors: string[];
  /** Repositories and blobs the live pushes created, checked afterwards. */
  pushed: Array<{ repository: string; tag: string; blob: Blob; manifest: string }>;
}

/**
 * Clients while Wharf collects: `gcGetClients` reading kept manifests by tag (and checking their digest),
 * one pulling kept blobs (and checking their length), one pushing new images. Runs until `until` settles.
 */
async function driveLoad(target: HttpTarget, salt: Buffer, o: BenchOptions, until: Promise<unknown>): Promise<LoadResult> {
  const result: LoadResult = { getLatencies: [], gets: 0, pulls: 0, pushes: 0, repushed: 0, failures: 0, errors: [], pushed: [] };
  let running = true;
  const stop = () => (running = false);
  until.then(stop, stop);
  const fail = (what: string, error: unknown) => {
    result.failures += 1;
    if (result.errors.length < 10) result.errors.push(`${what}: ${(error as Error).message}`);
  };
  const pick = () => repoContent(salt, Math.floor(Math.random() * o.gcRepos), o.gcBlobsPerRepo);
  const getLane = async () => {
    while (running) {
      const repo = pick();
      const started = performance.now();
      try {
        const reply = await target.request('GET', `/v2/${repo.name}/manifests/keep`, { headers: { Accept: OCI_MANIFEST }, expect: [200] });
        result.getLatencies.push(performance.now() - started);
        result.gets += 1;
        if (sha256(reply.body) !== repo.keep.digest) throw new Error(`${repo.name}:keep is not the manifest pushed`);
      } catch (error) {
        fail(`GET ${repo.name}:keep`, error);
      }
    }
  };
  const pullLane = async () => {
    while (running) {
      const repo = pick();
      const blob = repo.blobs[Math.floor(Math.random() * repo.kept)]!;
      try {
        const reply = await target.request('GET', `/v2/${repo.name}/blobs/${blob.digest}`, { expect: [200] });
        result.pulls += 1;
        if (!reply.body.equals(blob.data)) throw new Error('wrong content');
      } catch (error) {
        fail(`pull ${repo.name}@${blob.digest}`, error);
      }
    }
  };
  const pushLane = async () => {
    for (let n = 0; running; n += 1) {
      const repository = `gc/live${String(n % 16).padStart(2, '0')}`;
      const data = randomBytes(BLOB_BYTES);
      const blob = { data, digest: sha256(data) };
      const manifest = manifestOf(blob, []);
      const tag = `t${n}`;
      try {
        await pushMonolithic(target, repository, blob.data, blob.digest);
        try {
          await putManifest(target, repository, tag, manifest.data);
        } catch {
          // A blob uploaded just before the collection took its start time is unreferenced at
          // that time, and with no delay it is garbage: the manifest is refused (blob unknown).
          // Clients push the blob again and retry, as docker and skopeo do.
          await pushMonolithic(target, repository, blob.data, blob.digest);
          await putManifest(target, repository, tag, manifest.data);
          result.repushed += 1;
        }
        result.pushes += 1;
        result.pushed.push({ repository, tag, blob, manifest: manifest.digest });
      } catch (error) {
        fail(`push ${repository}:${tag}`, error);
      }
    }
  };
  await Promise.all([...Array.from({ length: o.gcGetClients }, getLane), ...(o.gcGetClients > 0 ? [pullLane(), pushLane()] : [])]);
  return result;
}

/** After Wharf's collection: every kept manifest and blob is there, every garbage blob is gone. */
async function verifyWharf(target: HttpTarget, salt: Buffer, o: BenchOptions, pushed: LoadResult['pushed']): Promise<void> {
  const broken: string[] = [];
  const check = async (path: string, method: 'GET' | 'HEAD', expected: number, what: string) => {
    const reply = await target.request(method, path, { headers: { Accept: OCI_MANIFEST }, expect: [200, 404] });
    if (reply.status !== expected && broken.length < 20) broken.push(`${what}: ${method} ${path} answered ${reply.status}, expected ${expected}`);
  };
  await runParallel(o.gcRepos, POPULATE_LANES, async (index) => {
    const repo = repoContent(salt, index, o.gcBlobsPerRepo);
    await check(`/v2/${repo.name}/manifests/keep`, 'GET', 200, 'kept manifest');
    for (const [i, blob] of repo.blobs.entries()) {
      await check(`/v2/${repo.name}/blobs/${blob.digest}`, 'HEAD', i < repo.kept ? 200 : 404, i < repo.kept ? 'kept blob' : 'garbage blob');
    }
  });
  await runParallel(pushed.length, POPULATE_LANES, async (i) => {
    const p = pushed[i]!;
    await check(`/v2/${p.repository}/manifests/${p.tag}`, 'GET', 200, 'manifest pushed during the collection');
    await check(`/v2/${p.repository}/blobs/${p.blob.digest}`, 'HEAD', 200, 'blob pushed during the collection');
  });
  if (broken.length > 0) throw new Error(`gc: Wharf's collection broke content:\n${broken.join('\n')}`);
}

/** Waits for a process (not necessarily a child of ours that we can await) to be gone. */
async function waitGone(pid: number, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (existsSync(`/proc/${pid}`)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} did not exit`);
    await sleep(20);
  }
}

export interface GcResult {
  server: ServerName;
  repositories: number;
  blobs: number;
  expectedGarbage: number;
  wallMs: number;
  /** What the collector says it deleted (configs and layers; manifests not counted). */
  deletedBlobs: number;
  /** Distribution: the deleted manifests' own blobs it also removed. */
  deletedManifestBlobs?: number;
  /** Wharf: the collection's own durationMs, the requests served during it and any errors. */
  reportedMs?: number;
  load?: Omit<LoadResult, 'getLatencies' | 'pushed' | 'errors'> & { errors: string[]; p50Ms: number; p99Ms: number; maxMs: number };
  notes: string[];
}

/** Runs the gc group on a fresh pair of servers and records its figures. */
export async function gcWorkloads(ctx: BenchContext): Promise<void> {
  const { options: o, figures } = ctx;
  const f = gcFigureSpecs(o);
  const salt = randomBytes(8);
  const blobs = o.gcRepos * o.gcBlobsPerRepo;
  const expectedGarbage = o.gcRepos * (o.gcBlobsPerRepo - Math.ceil(o.gcBlobsPerRepo / 2));
  // Fresh servers: what the other groups left behind would be garbage too.
  const wharf = await ctx.launch('wharf');
  let distribution: ServerProcess | undefined;
  const results: GcResult[] = [];
  try {
    distribution = await ctx.launch('distribution');
    ctx.log(`gc: populating both registries with ${o.gcRepos} repositories × ${o.gcBlobsPerRepo} blobs (${expectedGarbage} of them garbage)`);
    const populateStarted = Date.now();
    await Promise.all([populate(wharf.target, salt, o, ctx.log), populate(distribution.target, salt, o, ctx.log)]);
    ctx.log(`gc: populated in ${((Date.now() - populateStarted) / 1000).toFixed(1)} s`);
    // Let the last writes (and Distribution's unsynced pages) settle before anything is timed.
    await runTimed('sync', [], process.env);

    // --- Wharf, online, under load ---
    ctx.log('gc: Wharf collecting while serving');
    const env: NodeJS.ProcessEnv = { ...process.env, REGISTRY_STORAGE_GC_DELAY: '0s', REGISTRY_LOG_LEVEL: 'warn' };
    const collection = runTimed(process.execPath, [ctx.wharfCli, 'garbage-collect', '--data', join(wharf.dir, 'data'), '--json'], env);
    const load = await driveLoad(wharf.target, salt, o, collection);
    const run = await collection;
    if (run.code !== 0) throw new Error(`wharf garbage-collect exited ${run.code}:\n${run.stderr}`);
    const report = JSON.parse(run.stdout) as { durationMs: number; deleted: { blobs: number; manifests: number }; eligibleBlobs: string[] };
    const sorted = [...load.getLatencies].sort((a, b) => a - b);
    const wharfResult: GcResult = {
      server: 'wharf',
      repositories: o.gcRepos,
      blobs,
      expectedGarbage,
      wallMs: run.ms,
      deletedBlobs: report.deleted.blobs,
      reportedMs: report.durationMs,
      load: {
        gets: load.gets,
        pulls: load.pulls,
        pushes: load.pushes,
        repushed: load.repushed,
        failures: load.failures,
        errors: load.errors,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        maxMs: sorted[sorted.length - 1] ?? 0,
      },
      notes: [],
    };
    for (const error of load.errors) ctx.log(`gc: FAILED during Wharf's collection: ${error}`);
    ctx.log(`gc: Wharf collected in ${(run.ms / 1000).toFixed(2)} s (its own report: ${(report.durationMs / 1000).toFixed(2)} s), deleted ${report.deleted.blobs} blobs; ${load.gets} GETs, ${load.pulls} pulls, ${load.pushes} pushes, ${load.failures} failed`);
    ctx.log('gc: checking every kept and garbage blob on Wharf');
    await verifyWharf(wharf.target, salt, o, load.pushed);
    results.push(wharfResult);

    // --- Distribution, offline: stopped, then its own command on its storage root ---
    ctx.log('gc: stopping Distribution and collecting offline');
    process.kill(distribution.pid, 'SIGTERM');
    await waitGone(distribution.pid);
    const oldManifests = new Set<string>();
    const garbage = new Set<string>();
    for (let index = 0; index < o.gcRepos; index += 1) {
      const repo = repoContent(salt, index, o.gcBlobsPerRepo);
      oldManifests.add(repo.old.digest);
      for (const blob of repo.blobs.slice(repo.kept)) garbage.add(blob.digest);
    }
    let deletedBlobs = 0;
    let deletedManifestBlobs = 0;
    const unexpected: string[] = [];
    const prefix = 'blob eligible for deletion: ';
    const distRun = await runTimed(
      ctx.registryBinary,
      ['garbage-collect', join(distribution.dir, 'config.yml'), '--delete-untagged=false'],
      { ...process.env, OTEL_TRACES_EXPORTER: 'none' },
      (line) => {
        if (!line.startsWith(prefix)) return;
        const digest = line.slice(prefix.length).trim();
        if (oldManifests.has(digest)) deletedManifestBlobs += 1;
        else if (garbage.has(digest)) deletedBlobs += 1;
        else if (unexpected.length < 10) unexpected.push(digest);
      },
    );
    if (distRun.code !== 0) throw new Error(`docker-registry garbage-collect exited ${distRun.code}:\n${distRun.stderr}`);
    if (unexpected.length > 0) throw new Error(`gc: Distribution deleted blobs that are not garbage: ${unexpected.join(', ')}`);
    const distResult: GcResult = { server: 'distribution', repositories: o.gcRepos, blobs, expectedGarbage, wallMs: distRun.ms, deletedBlobs, deletedManifestBlobs, notes: [] };
    ctx.log(`gc: Distribution collected in ${(distRun.ms / 1000).toFixed(2)} s, deleted ${deletedBlobs} blobs and ${deletedManifestBlobs} deleted manifests' own blobs`);
    results.push(distResult);

    // The same deletions, or the reason why not.
    const wharfGarbage = report.eligibleBlobs.filter((digest) => garbage.has(digest)).length;
    // gc.deleted counts the populated garbage on both sides. With no delay, a live push's blob
    // uploaded just before the collection took its start time is garbage too (its push then
    // uploads it again); those are told apart, not counted.
    const inFlight = report.eligibleBlobs.length - wharfGarbage;
    wharfResult.deletedBlobs = Math.min(report.deleted.blobs, wharfGarbage);
    if (inFlight > 0) wharfResult.notes.push(`Wharf also collected ${inFlight} blobs of pushes in flight when it started (pushed again: ${load.repushed})`);
    if (wharfResult.deletedBlobs !== expectedGarbage) {
      wharfResult.notes.push(`Wharf deleted ${report.deleted.blobs} blobs, expected ${expectedGarbage} (${wharfGarbage} of the garbage eligible)`);
    }
    if (deletedBlobs !== expectedGarbage) distResult.notes.push(`Distribution deleted ${deletedBlobs} blobs, expected ${expectedGarbage}`);
    distResult.notes.push(
      `Distribution stores manifests as blobs: it also deleted the ${deletedManifestBlobs} deleted manifests' own blobs, not counted in gc.deleted (Wharf removed those manifests at DELETE time)`,
    );
    for (const result of results) for (const note of result.notes) ctx.log(`gc: ${note}`);

    for (const result of results) {
      figures.add(f.time, result.server, result.wallMs / 1000);
      figures.add(f.rate, result.server, blobs / (result.wallMs / 1000));
      figures.add(f.deleted, result.server, result.deletedBlobs);
    }
    figures.add(f.own, 'wharf', report.durationMs / 1000);
    if (load.gets > 0) {
      figures.add(f.getP50, 'wharf', wharfResult.load!.p50Ms);
      figures.add(f.getP99, 'wharf', wharfResult.load!.p99Ms);
      figures.add(f.getRate, 'wharf', load.gets / (run.ms / 1000));
      figures.add(f.failures, 'wharf', load.failures);
    }
    ctx.details.gc = results;
  } finally {
    await wharf.stop();
    await distribution?.stop();
  }
}

/** A few lines on the collection for the printed report. */
export function renderGc(results: GcResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    const extra = r.load && r.load.gets > 0
      ? `; ${r.load.gets} manifest GETs, ${r.load.pulls} blob pulls and ${r.load.pushes} pushes served meanwhile, ${r.load.failures} failed (GET p50 ${r.load.p50Ms.toFixed(2)} ms, p99 ${r.load.p99Ms.toFixed(2)} ms, max ${r.load.maxMs.toFixed(1)} ms)`
      : r.load
        ? '; no requests meanwhile (--gc-get-clients 0)'
        : '';
    lines.push(`- ${r.server}: ${r.blobs} blobs in ${r.repositories} repositories, ${r.expectedGarbage} garbage; collected in ${(r.wallMs / 1000).toFixed(2)} s, deleted ${r.deletedBlobs}${extra}.`);
    for (const note of r.notes) lines.push(`  - ${note}`);
  }
  return lines.join('\n');
}
