/**
 * The `scale` workload group (opt-in: `--only scale`): blob push, blob pull, manifest GET and tag
 * push through HAProxy (deploy/haproxy/haproxy.cfg) in front of 1 and then 3 `wharf serve`
 * replicas on S3 (one Ceph RADOS Gateway, scripts/start-rgw.sh) and PostgreSQL, and Distribution
 * 2.8 with its S3 driver on the same gateway behind the same HAProxy configuration. Every process
 * shares the machine's cores, so what 3 replicas gain over 1 is bounded by whichever process runs
 * out of CPU first: the group reports each process group's CPU during each workload.
 *
 * Figures: `scale.*.1r` compares 1 replica with Distribution, `scale.*.3r` 3 replicas with
 * Distribution (the same Distribution figure in both); the 3-to-1 ratios are in the log and in
 * the results' details. It runs the Wharf of this checkout (the test support starts it).
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startPostgres, type PostgresServer } from '../test/support/postgres-server.js';
import { startReferenceRegistry } from '../test/support/reference-registry.js';
import { HAPROXY_CONFIG, freePort, renderHaproxyConfig, startHaproxy, startReplicaDeployment, type Haproxy } from '../test/support/replica-deployment.js';
import type { S3Server } from '../test/support/rgw-server.js';
import type { FigureSpec } from './figures.js';
import { HttpTarget, runParallel } from './http.js';
import { OCI_MANIFEST, makeVariant, megabytesPerSecond, pull, pushMonolithic, timed } from './registry-ops.js';
import { startGateway, stopGateway, type Gateway } from './s3.js';
import type { ServerName } from './servers.js';
import type { BenchContext } from './workloads.js';
import { runWrk } from './wrk.js';

const MiB = 1024 * 1024;
/** Small on purpose: the group must finish in a few minutes. */
const BLOB_MIB = 8;
const BLOBS = 12;
const PARALLEL = 6;
const TAGS = 300;
const WRK_SECONDS = 5;
const WRK_CONNECTIONS = 16;

function specs(replicas: number) {
  const spec = (id: string, label: string, unit: string): FigureSpec => ({ id: `scale.${id}.${replicas}r`, label: `scale, ${replicas} replica${replicas > 1 ? 's' : ''} vs Distribution: ${label}`, unit, better: 'higher' });
  return {
    push: spec('push', `blob push ${BLOBS} × ${BLOB_MIB} MiB, ${PARALLEL} at a time`, 'MB/s'),
    pull: spec('pull', `blob pull ${BLOBS} × ${BLOB_MIB} MiB, ${PARALLEL} at a time`, 'MB/s'),
    manifest: spec('manifest', `manifest GET, ${WRK_CONNECTIONS} connections`, 'req/s'),
    tags: spec('tags', `tag push (manifest PUT to a new tag), ${PARALLEL} at a time`, 'tags/s'),
  };
}

/**
 * CPU ticks of a process and all its descendants, from /proc: user + system of each live process,
 * plus what its children that exited had used (cutime + cstime), so that PostgreSQL backends and
 * worker processes that end during a workload still count.
 */
function treeTicks(root: number): number {
  const children = new Map<number, number[]>();
  const ticks = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pid = Number(entry);
      const parent = Number(fields[1]);
      ticks.set(pid, Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]));
      children.set(parent, [...(children.get(parent) ?? []), pid]);
    } catch {
      // exited meanwhile
    }
  }
  let total = 0;
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    total += ticks.get(pid) ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

type Groups = Record<string, number[]>;

/** Runs `work` and returns each process group's CPU during it, in cores (1.0 = one core busy). */
async function cpuDuring(groups: Groups, work: () => Promise<void>): Promise<Record<string, number>> {
  const sample = () => Object.fromEntries(Object.entries(groups).map(([name, pids]) => [name, pids.reduce((sum, pid) => sum + treeTicks(pid), 0)]));
  const before = sample();
  const self = process.cpuUsage();
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  const after = sample();
  const usage = process.cpuUsage(self);
  const ticksPerSecond = 100; // USER_HZ on Linux
  const cores: Record<string, number> = {};
  for (const name of Object.keys(groups)) cores[name] = (after[name]! - before[name]!) / ticksPerSecond / seconds;
  cores['bench client'] = (usage.user + usage.system) / 1e6 / seconds;
  return cores;
}

function describeCpu(cores: Record<string, number>): string {
  return Object.entries(cores)
    .sort((a, b) => b[1] - a[1])
    .map(([name, value]) => `${name} ${value.toFixed(2)}`)
    .join(', ');
}

interface Target {
  name: string;
  target: HttpTarget;
  groups: Groups;
}

/** The four workloads against one registry; adds figures under `source` and returns the CPU per workload. */
async function measure(ctx: BenchContext, registry: Target, source: ServerName, f: ReturnType<typeof specs>): Promise<Record<string, Record<string, number>>> {
  const { target } = registry;
  const repository = `bench/scale-${registry.name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/-+$/, '')}`;
  // One buffer per blob: makeVariant writes the variant into the buffer it is given.
  const blobs = Array.from({ length: BLOBS }, () => Buffer.alloc(BLOB_MIB * MiB, 1));
  const digests = blobs.map((blob, i) => makeVariant(blob, 5000 + i));
  const size = BLOB_MIB * MiB;
  const cpu: Record<string, Record<string, number>> = {};
  let ms = 0;
  cpu.push = await cpuDuring(registry.groups, async () => {
    ms = await timed(() => runParallel(BLOBS, PARALLEL, (i) => pushMonolithic(target, repository, blobs[i]!, digests[i]!)));
  });
  ctx.figures.add(f.push, source, megabytesPerSecond(BLOBS * size, ms));
  cpu.pull = await cpuDuring(registry.groups, async () => {
    ms = await timed(() => runParallel(BLOBS, PARALLEL, async (i) => void (await pull(ctx.curl, `http://${target.hostPort}/v2/${repository}/blobs/${digests[i]}`, size))));
  });
  ctx.figures.add(f.pull, source, megabytesPerSecond(BLOBS * size, ms));
  // A small image to tag: its config and layer are the first two blobs.
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digests[0], size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digests[1], size }],
    }),
  );
  await target.request('PUT', `/v2/${repository}/manifests/latest`, { body: manifest, headers: { 'Content-Type': OCI_MANIFEST }, expect: [201] });
  let rps = 0;
  cpu.manifest = await cpuDuring(registry.groups, async () => {
    rps = (await runWrk(ctx.wrk, { url: `http://${target.hostPort}/v2/${repository}/manifests/latest`, method: 'GET', headers: { Accept: OCI_MANIFEST }, connections: WRK_CONNECTIONS, seconds: WRK_SECONDS, scratch: ctx.scratch })).requestsPerSecond;
  });
  ctx.figures.add(f.manifest, source, rps);
  cpu.tags = await cpuDuring(registry.groups, async () => {
    ms = await timed(() =>
      runParallel(TAGS, PARALLEL, async (i) => {
        await target.request('PUT', `/v2/${repository}/manifests/t${i}`, { body: manifest, headers: { 'Content-Type': OCI_MANIFEST }, expect: [201] });
      }),
    );
  });
  ctx.figures.add(f.tags, source, TAGS / (ms / 1000));
  for (const [workload, cores] of Object.entries(cpu)) ctx.log(`scale: ${registry.name}, ${workload}: CPU in cores: ${describeCpu(cores)}`);
  return cpu;
}

function postmasterPid(postgres: PostgresServer): number {
  return Number(readFileSync(join(postgres.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/** The S3Server shape the test support takes, over the bench's gateway. */
function s3Server(gateway: Gateway, client: S3Client): S3Server {
  let buckets = 0;
  return {
    endpoint: gateway.endpoint,
    accessKey: gateway.accessKey,
    secretKey: gateway.secretKey,
    region: 'us-east-1',
    async createBucket(prefix = 'bench') {
      buckets += 1;
      const name = `${prefix}-${buckets}`;
      await client.send(new CreateBucketCommand({ Bucket: name }));
      return name;
    },
    stop: async () => undefined,
  };
}

export async function scaleWorkloads(ctx: BenchContext): Promise<void> {
  const dir = join(ctx.scratch, 'scale');
  const memoryBytes = 4096 * MiB;
  ctx.log(`scale: starting a RADOS Gateway and PostgreSQL`);
  const gateway = await startGateway(join(dir, 'rgw'), memoryBytes);
  const client = new S3Client({ region: 'us-east-1', endpoint: gateway.endpoint, forcePathStyle: true, credentials: { accessKeyId: gateway.accessKey, secretAccessKey: gateway.secretKey } });
  const postgres = await startPostgres();
  const s3 = s3Server(gateway, client);
  const common: Groups = { rgw: gateway.pids, postgres: [postmasterPid(postgres)] };
  const cpu: Record<string, unknown> = {};
  let distributionHaproxy: Haproxy | undefined;
  let stopDistribution: (() => Promise<void>) | undefined;
  try {
    // Distribution behind the same HAProxy configuration (its health check on /v2/: it has no /readyz).
    await client.send(new CreateBucketCommand({ Bucket: 'bench-scale-distribution' }));
    const registry = await startReferenceRegistry({
      mode: 'plain',
      tuned: true,
      binary: ctx.registryBinary,
      storageDriver: ['  s3:', '    bucket: bench-scale-distribution', '    region: us-east-1', `    regionendpoint: ${gateway.endpoint}`, `    accesskey: ${gateway.accessKey}`, `    secretkey: ${gateway.secretKey}`, '    secure: false', '  redirect:', '    disable: true'],
      env: { AWS_CA_BUNDLE: undefined },
    });
    stopDistribution = () => registry.stop();
    const port = await freePort();
    const cfg = join(dir, 'haproxy-distribution.cfg');
    writeFileSync(cfg, renderHaproxyConfig(readFileSync(HAPROXY_CONFIG, 'utf8'), `127.0.0.1:${port}`, [registry.host]).replace('GET /readyz', 'GET /v2/'));
    distributionHaproxy = await startHaproxy(cfg, port);
    const distribution: Target = { name: 'Distribution', target: new HttpTarget('distribution', '127.0.0.1', port, 64), groups: { ...common, distribution: [registry.pid], haproxy: [distributionHaproxy.pid] } };
    const distributionRuns: Array<Record<string, Record<string, number>>> = [];
    for (const replicas of [1, 3]) {
      const f = specs(replicas);
      ctx.log(`scale: ${replicas} replica(s) on S3 + PostgreSQL behind HAProxy`);
      const deployment = await startReplicaDeployment({ replicas, s3, postgres, workers: 1 });
      try {
        const groups: Groups = { ...common, haproxy: [deployment.haproxy.pid], ...Object.fromEntries(deployment.replicas.map((r, i) => [`wharf replica ${i + 1}`, [r.child.pid!]])) };
        const wharf: Target = { name: `Wharf ×${replicas}`, target: new HttpTarget('wharf', '127.0.0.1', deployment.port, 64), groups };
        cpu[`wharf-${replicas}`] = await measure(ctx, wharf, 'wharf', f);
        wharf.target.close();
        // Distribution measured beside each, so that both see the machine in the same state.
        distributionRuns.push(await measure(ctx, { ...distribution, name: `Distribution (run ${replicas})` }, 'distribution', f));
      } finally {
        await deployment.stop();
      }
    }
    cpu.distribution = distributionRuns;
    distribution.target.close();
    const ratios: Record<string, number> = {};
    for (const id of ['push', 'pull', 'manifest', 'tags']) {
      const one = ctx.figures.median(`scale.${id}.1r`, 'wharf');
      const three = ctx.figures.median(`scale.${id}.3r`, 'wharf');
      if (one && three) ratios[id] = three / one;
    }
    ctx.log(`scale: 3 replicas / 1 replica: ${Object.entries(ratios).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')} (noisy on a shared machine)`);
    ctx.details.scale = { ratios3to1: ratios, cpuCores: cpu, blobMiB: BLOB_MIB, blobs: BLOBS, parallel: PARALLEL, tags: TAGS, wrkSeconds: WRK_SECONDS, wrkConnections: WRK_CONNECTIONS };
  } finally {
    await distributionHaproxy?.stop();
    await stopDistribution?.();
    await postgres.stop();
    client.destroy();
    await stopGateway(gateway);
  }
}
