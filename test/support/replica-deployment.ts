import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPostgres, type PostgresServer } from './postgres-server.js';
import type { LoggedRequest } from './registries-under-test.js';
import { startS3Server, type S3Server } from './rgw-server.js';
import { requireTool, waitFor } from './tools.js';
import { startWharfProcess, substituteStartWharf, type WharfOptions, type WharfProcess } from './wharf-process.js';

/** The HAProxy configuration that docs/deployment.md shows; the tests run this very file. */
export const HAPROXY_CONFIG = fileURLToPath(new URL('../../deploy/haproxy/haproxy.cfg', import.meta.url));

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A `server` line of the backend, e.g. `server wharf1 127.0.0.1:5001 check`. */
const SERVER_LINE = /^(\s*)server\s+wharf\d+\s+\S+(.*)$/;

/**
 * deploy/haproxy/haproxy.cfg with the test's addresses: the frontend binds `bind`, and the
 * backend's `server` lines (one per replica, same options as the file's) point at `replicas`.
 * Everything else is the file as it is.
 */
export function renderHaproxyConfig(template: string, bind: string, replicas: string[]): string {
  const lines = template.split('\n');
  const binds = lines.filter((line) => /^\s*bind\s/.test(line));
  const servers = lines.filter((line) => SERVER_LINE.test(line));
  if (binds.length !== 1 || servers.length === 0) throw new Error('deploy/haproxy/haproxy.cfg: expected one bind line and server lines for the replicas');
  const [, indent, options] = SERVER_LINE.exec(servers[0]!)!;
  const out: string[] = [];
  for (const line of lines) {
    if (/^\s*bind\s/.test(line)) out.push(line.replace(/bind\s+\S+/, `bind ${bind}`));
    else if (line === servers[0]) replicas.forEach((address, i) => out.push(`${indent}server wharf${i + 1} ${address}${options}`));
    else if (!SERVER_LINE.test(line)) out.push(line);
  }
  return out.join('\n');
}

export function haproxyBinary(): string {
  requireTool('haproxy');
  return spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).stdout.trim();
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface Haproxy {
  pid: number;
  host: string;
  url: string;
  port: number;
  output(): string;
  stop(): Promise<void>;
}

/** Runs HAProxy in the foreground with `config`; resolves once it accepts connections. */
export async function startHaproxy(configFile: string, port: number): Promise<Haproxy> {
  const child: ChildProcess = spawn(haproxyBinary(), ['-db', '-f', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (child.exitCode !== null) throw new Error(`haproxy exited:\n${output}`);
    try {
      await fetch(`${url}/healthz`);
      return true;
    } catch {
      return false;
    }
  }, 'haproxy to listen');
  return {
    pid: child.pid!,
    host: `127.0.0.1:${port}`,
    url,
    port,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export interface ReplicaDeploymentOptions {
  replicas: number;
  /** Lines added to every replica's config.yml (top-level YAML). */
  extraConfig?: string;
  /** Lines added to the `storage` section (indented by two spaces already). */
  storageConfig?: string;
  /** An RGW and a PostgreSQL cluster to reuse (the bench starts them once for several deployments). */
  s3?: S3Server;
  postgres?: PostgresServer;
  /** `server.workers` of each replica (1: three replicas on two cores already make six processes). */
  workers?: number;
}

/** N `wharf serve` replicas on one bucket and one PostgreSQL database behind HAProxy. */
export interface ReplicaDeployment {
  /** The load balancer: `http://127.0.0.1:PORT`. */
  url: string;
  host: string;
  port: number;
  replicas: WharfProcess[];
  haproxy: Haproxy;
  s3: S3Server;
  bucket: string;
  /** The key prefix in the bucket (storage.s3.rootdirectory without the leading slash). */
  root: string;
  postgres: PostgresServer;
  dbname: string;
  /** The config.yml every replica runs. */
  configFile: string;
  /** Requests replica `i` logged (its access log). */
  requests(i: number): LoggedRequest[];
  /** Everything every replica printed. */
  output(): string;
  /** Starts replica `i` again (after a kill) with the same config, and puts it back behind HAProxy. */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** The config.yml of the replicas (the same shape as deploy/kubernetes/configmap.yaml's). */
function replicaConfig(s3: S3Server, bucket: string, postgres: PostgresServer, dbname: string, options: ReplicaDeploymentOptions): string {
  return `version: 0.1
log:
  level: info
http:
  draintimeout: 2s
storage:
  s3:
    region: ${s3.region}
    regionendpoint: ${s3.endpoint}
    forcepathstyle: true
    bucket: ${bucket}
    rootdirectory: /wharf
    chunksize: 5242880
    accesskey: ${s3.accessKey}
    secretkey: ${s3.secretKey}
  redirect:
    disable: true
  delete:
    enabled: true
${options.storageConfig ?? ''}
database:
  enabled: true
  host: ${postgres.host}
  port: ${postgres.port}
  user: ${postgres.user}
  password: ${postgres.password}
  dbname: ${dbname}
  sslmode: disable
  pool:
    maxopen: 4
    maxidle: 1
server:
  workers: ${options.workers ?? 1}
${options.extraConfig ?? ''}
`;
}

/** Wharf logs one JSON line per request: `{"method":…,"path":…,"msg":"request"}`. */
export function loggedRequests(output: string): LoggedRequest[] {
  const requests: LoggedRequest[] = [];
  for (const line of output.split('\n')) {
    if (!line.includes('"msg":"request"')) continue;
    try {
      const entry = JSON.parse(line) as { method?: string; path?: string };
      if (entry.method && entry.path) requests.push({ method: entry.method, path: entry.path });
    } catch {
      // a line cut by the end of the buffer
    }
  }
  return requests;
}

/**
 * Starts RGW (scripts/start-rgw.sh) and a PostgreSQL cluster unless given, then `replicas`
 * `wharf serve` processes with one config.yml, each with a data directory of its own (as on
 * separate hosts), and HAProxy with deploy/haproxy/haproxy.cfg in front of them.
 */
export async function startReplicaDeployment(options: ReplicaDeploymentOptions): Promise<ReplicaDeployment> {
  haproxyBinary();
  const [s3, postgres] = await Promise.all([options.s3 ?? startS3Server(), options.postgres ?? startPostgres()]);
  const ownS3 = options.s3 === undefined;
  const ownPostgres = options.postgres === undefined;
  const dir = mkdtempSync(join(tmpdir(), 'wharf-replicas-'));
  const replicas: WharfProcess[] = [];
  let haproxy: Haproxy | undefined;
  try {
    const [bucket, dbname] = await Promise.all([s3.createBucket('wharf-replicas'), postgres.createDatabase()]);
    const configFile = join(dir, 'config.yml');
    writeFileSync(configFile, replicaConfig(s3, bucket, postgres, dbname, options));
    const ports = await Promise.all(Array.from({ length: options.replicas }, () => freePort()));
    const start = (i: number) => startWharfProcess({ dataDir: join(dir, `replica-${i + 1}`), args: [configFile], addr: `127.0.0.1:${ports[i]}` });
    for (let i = 0; i < options.replicas; i += 1) mkdirSync(join(dir, `replica-${i + 1}`));
    // Started together: all of them migrate the empty database at once; the migration lock lets one do it.
    replicas.push(...(await Promise.all(ports.map((_, i) => start(i)))));
    const lbPort = await freePort();
    const haproxyFile = join(dir, 'haproxy.cfg');
    writeFileSync(haproxyFile, renderHaproxyConfig(readFileSync(HAPROXY_CONFIG, 'utf8'), `127.0.0.1:${lbPort}`, ports.map((p) => `127.0.0.1:${p}`)));
    haproxy = await startHaproxy(haproxyFile, lbPort);
    const lb = haproxy;
    // Every replica passed its first health check (`rise 2` at `inter 1s`) before a test counts on round-robin.
    await waitFor(async () => {
      const seen = new Set<number>();
      for (let i = 0; i < options.replicas * 2; i += 1) {
        await fetch(`${lb.url}/v2/`);
      }
      replicas.forEach((r, i) => loggedRequests(r.output()).some((q) => q.path === '/v2/') && seen.add(i));
      return seen.size === options.replicas;
    }, 'haproxy to send requests to every replica', 20_000);
    return {
      url: lb.url,
      host: lb.host,
      port: lb.port,
      replicas,
      haproxy: lb,
      s3,
      bucket,
      root: 'wharf',
      postgres,
      dbname,
      configFile,
      requests: (i) => loggedRequests(replicas[i]!.output()),
      output: () => replicas.map((r) => r.output()).join('\n'),
      async restart(i) {
        await replicas[i]!.stop();
        replicas[i] = await start(i);
        const restarted = replicas[i]!;
        // Back behind HAProxy once its health checks pass again: requests reach it.
        await waitFor(async () => {
          await fetch(`${lb.url}/v2/`);
          return loggedRequests(restarted.output()).some((q) => q.path === '/v2/');
        }, `replica ${i + 1} back behind haproxy`, 20_000);
      },
      async stop() {
        await haproxy?.stop();
        await Promise.all(replicas.map((r) => r.stop()));
        if (ownS3) await s3.stop();
        if (ownPostgres) await postgres.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await haproxy?.stop();
    await Promise.all(replicas.map((r) => r.stop()));
    if (ownS3) await s3.stop();
    if (ownPostgres) await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Makes `startWharf` in a test file loaded after this call answer with `deployment` (through its
 * load balancer) instead of starting a process: how an existing API suite runs, unchanged, against
 * the replicas. Its `dataDir` is a directory of empty files named like the objects in the bucket, so
 * that a test that counts stored blob files counts objects in S3. Stopping it leaves the deployment
 * running (the file that started it stops it).
 */
export function answerStartWharfWith(deployment: ReplicaDeployment): void {
  substituteStartWharf(async (options: WharfOptions) => {
    const known = (options.args ?? []).every((arg) => arg === '--delete') && options.env === undefined && options.dataDir === undefined && !options.tls;
    if (!known) throw new Error(`the replica deployment cannot start a registry with ${JSON.stringify(options)}`);
    const mirror = mkdtempSync(join(tmpdir(), 'wharf-bucket-mirror-'));
    return {
      url: deployment.url,
      host: deployment.host,
      port: deployment.port,
      get dataDir() {
        mirrorBucket(deployment, mirror);
        return mirror;
      },
      child: deployment.replicas[0]!.child,
      output: () => deployment.output(),
      stop: async () => null,
      kill: async () => undefined,
      dispose: async () => rmSync(mirror, { recursive: true, force: true }),
    };
  });
}

/** Lists the bucket (synchronously, in a child process: `dataDir` is read synchronously) into `mirror`. */
function mirrorBucket(deployment: ReplicaDeployment, mirror: string): void {
  const script = `
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
const [endpoint, region, accessKeyId, secretAccessKey, bucket, prefix] = process.argv.slice(1);
const client = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
let token;
do {
  const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
  for (const o of page.Contents ?? []) console.log(o.Key.slice(prefix.length));
  token = page.IsTruncated ? page.NextContinuationToken : undefined;
} while (token);
client.destroy();`;
  const { s3 } = deployment;
  const listed = spawnSync(process.execPath, ['--input-type=module', '-e', script, s3.endpoint, s3.region, s3.accessKey, s3.secretKey, deployment.bucket, `${deployment.root}/`], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
  });
  if (listed.status !== 0) throw new Error(`listing the bucket failed: ${listed.stderr}`);
  rmSync(mirror, { recursive: true, force: true });
  for (const key of listed.stdout.split('\n').filter(Boolean)) {
    mkdirSync(dirname(join(mirror, key)), { recursive: true });
    writeFileSync(join(mirror, key), '');
  }
}
