/**
 * The `s3` workload group (opt-in: `--only s3`): Wharf and Distribution 2.8, each with its S3
 * driver on the same Ceph RADOS Gateway (scripts/start-rgw.sh, objects in memory), push and pull
 * one large blob. Both stream blobs through (`storage.redirect.disable: true`) so that the pulls
 * measure the registries, not the gateway; each has a bucket of its own.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startReferenceRegistry } from '../test/support/reference-registry.js';
import type { FigureSpec } from './figures.js';
import { HttpTarget } from './http.js';
import { makeVariant, megabytesPerSecond, pull, pushChunked, pushMonolithic, timed } from './registry-ops.js';
import { freePort, startWharf, type ServerName, type ServerProcess } from './servers.js';
import type { BenchContext } from './workloads.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;

export function s3FigureSpecs(o: BenchContext['options']) {
  const spec = (id: string, label: string): FigureSpec => ({ id, label, unit: 'MB/s', better: 'higher' });
  return {
    pushMonolithic: spec('s3.push.monolithic', `S3 (RGW): blob push ${o.s3BlobMiB} MiB, monolithic (POST + PUT)`),
    pushChunked: spec('s3.push.chunked', `S3 (RGW): blob push ${o.s3BlobMiB} MiB, chunked (PATCH ${o.chunkMiB} MiB)`),
    pullFull: spec('s3.pull.full', `S3 (RGW): blob pull ${o.s3BlobMiB} MiB, streamed through the registry`),
    pullRange: spec('s3.pull.range', `S3 (RGW): blob pull, Range of ${o.s3BlobMiB / 2} MiB`),
  };
}

export interface Gateway {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  pids: number[];
}

/** This checkout's script, also when the Wharf under test is another checkout (--wharf-root). */
const START_GATEWAY = fileURLToPath(new URL('../scripts/start-rgw.sh', import.meta.url));

export async function startGateway(dir: string, memoryBytes: number): Promise<Gateway> {
  const port = await freePort();
  const { stdout } = await execFileAsync(START_GATEWAY, [dir, String(port)], {
    env: { ...process.env, RGW_MEMORY_BYTES: String(memoryBytes) },
    timeout: 180_000,
  });
  const field = (name: string) => {
    const m = new RegExp(`${name}=(?:"([^"]*)"|(\\S+))`).exec(stdout);
    return m?.[1] ?? m?.[2] ?? '';
  };
  return { endpoint: field('S3_ENDPOINT'), accessKey: field('S3_ACCESS_KEY'), secretKey: field('S3_SECRET_KEY'), pids: field('RGW_PIDS').split(' ').map(Number) };
}

export async function stopGateway(gateway: Gateway): Promise<void> {
  for (const pid of [...gateway.pids].reverse()) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (const pid of gateway.pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** The registry:2 `storage.s3` lines both registries get (Distribution 2.8 ignores `forcepathstyle`: it uses path style with any regionendpoint). */
function s3Lines(gateway: Gateway, bucket: string): string[] {
  return [
    '  s3:',
    `    bucket: ${bucket}`,
    '    region: us-east-1',
    `    regionendpoint: ${gateway.endpoint}`,
    `    accesskey: ${gateway.accessKey}`,
    `    secretkey: ${gateway.secretKey}`,
    '    secure: false',
    '    forcepathstyle: true',
    '  redirect:',
    '    disable: true',
  ];
}

export async function s3Workloads(ctx: BenchContext, root: string): Promise<void> {
  const { options: o, figures } = ctx;
  const f = s3FigureSpecs(o);
  const dir = join(ctx.scratch, 's3');
  mkdirSync(dir, { recursive: true });
  // Everything pushed stays in the gateway's memory (deleted objects too, until its own collector runs).
  const memoryBytes = Math.max(4 * 1024, o.s3BlobMiB * 4 * o.repetitions * 2 + 1024) * MiB;
  ctx.log(`s3: starting a RADOS Gateway (${memoryBytes / MiB} MiB in memory)`);
  const gateway = await startGateway(join(dir, 'rgw'), memoryBytes);
  const client = new S3Client({ region: 'us-east-1', endpoint: gateway.endpoint, forcePathStyle: true, credentials: { accessKeyId: gateway.accessKey, secretAccessKey: gateway.secretKey } });
  const servers: Partial<Record<ServerName, ServerProcess>> = {};
  try {
    for (const bucket of ['bench-wharf', 'bench-distribution']) await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const wharfConfig = join(dir, 'wharf.yml');
    writeFileSync(wharfConfig, `${['version: 0.1', 'storage:', ...s3Lines(gateway, 'bench-wharf')].join('\n')}\n`);
    servers.wharf = await startWharf(root, { workers: o.wharfWorkers, nodeArgs: o.wharfNodeArgs, configFile: wharfConfig });
    const registry = await startReferenceRegistry({ mode: 'plain', tuned: true, binary: ctx.registryBinary, storageDriver: s3Lines(gateway, 'bench-distribution'),
      // Distribution 2.8's AWS SDK for Go panics on a custom CA bundle with its own transport; the gateway speaks plain HTTP anyway.
      env: { AWS_CA_BUNDLE: undefined },
    });
    const port = Number(registry.host.split(':')[1]);
    servers.distribution = {
      name: 'distribution',
      pid: registry.pid,
      target: new HttpTarget('distribution', '127.0.0.1', port, 256),
      dir: registry.dir,
      memory: { rss: () => 0, pss: () => 0 },
      output: registry.output,
      stop: () => registry.stop(),
    };
    const data = randomBytes(o.s3BlobMiB * MiB);
    const repository = 'bench/s3';
    const range = { offset: Math.floor(data.length / 4), length: Math.floor(data.length / 2) };
    for (let rep = 0; rep < o.repetitions; rep += 1) {
      ctx.log(`s3: repetition ${rep + 1}/${o.repetitions}`);
      const names: ServerName[] = rep % 2 === 0 ? ['wharf', 'distribution'] : ['distribution', 'wharf'];
      const monolithic = makeVariant(data, 1000 + rep * 2);
      for (const name of names) {
        const ms = await timed(() => pushMonolithic(servers[name]!.target, repository, data, monolithic));
        figures.add(f.pushMonolithic, name, megabytesPerSecond(data.length, ms));
      }
      const chunked = makeVariant(data, 1000 + rep * 2 + 1);
      for (const name of names) {
        const ms = await timed(() => pushChunked(servers[name]!.target, repository, data, chunked, o.chunkMiB * MiB));
        figures.add(f.pushChunked, name, megabytesPerSecond(data.length, ms));
      }
      for (const name of names) {
        const url = `http://${servers[name]!.target.hostPort}/v2/${repository}/blobs/${monolithic}`;
        figures.add(f.pullFull, name, await pull(ctx.curl, url, data.length));
        figures.add(f.pullRange, name, await pull(ctx.curl, url, range.length, range));
      }
    }
  } catch (error) {
    for (const server of Object.values(servers)) ctx.log(`${server.name} output (tail):\n${server.output().slice(-2000)}`);
    throw error;
  } finally {
    for (const server of Object.values(servers)) {
      server.target.close();
      await server.stop();
    }
    client.destroy();
    await stopGateway(gateway);
  }
}
