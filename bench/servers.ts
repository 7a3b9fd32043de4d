import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startReferenceRegistry } from '../test/support/reference-registry.js';
import { HttpTarget } from './http.js';

export type ServerName = 'wharf' | 'distribution';

/** A server under test: its process tree, a client, and its own temporary storage. */
export interface ServerProcess {
  name: ServerName | 'nginx' | 'node';
  pid: number;
  target: HttpTarget;
  dir: string;
  /** Resident memory of the whole process tree now, in bytes: RSS (cheap) and PSS (costlier). */
  memory: { rss(): number; pss(): number };
  /** Everything it wrote to stdout and stderr (the tail, for error messages). */
  output(): string;
  stop(): Promise<void>;
}

/** A free loopback port (the tiny race until the server binds it is acceptable in a bench). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** The pid and every descendant of it, found through /proc (workers forked by the server count too). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(entry));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.pop()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** VmRSS of one process in bytes; 0 when it is gone. Cheap enough to read 20 times a second. */
export function processRss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * PSS of one process in bytes: shared pages (such as the executable every worker maps) divided
 * among the processes sharing them. Reading it walks the page tables (about a millisecond).
 */
export function processPss(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Clock ticks per second of /proc/PID/stat's times (USER_HZ: 100 on every Linux the bench meets). */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU seconds one process has used so far, user plus system, over all its threads (the hash
 * thread and libuv's pool included); undefined when it is gone.
 */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm) ": state is the 3rd field, utime the 14th and stime the 15th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

function treeMemory(root: number): { rss(): number; pss(): number } {
  let pids = processTree(root);
  let listedAt = Date.now();
  const current = () => {
    // Re-listing /proc costs a few milliseconds; workers do not come and go during a run.
    if (Date.now() - listedAt > 1000) {
      pids = processTree(root);
      listedAt = Date.now();
    }
    return pids;
  };
  return {
    rss: () => current().reduce((sum, pid) => sum + processRss(pid), 0),
    pss: () => current().reduce((sum, pid) => sum + processPss(pid), 0),
  };
}

async function waitUntilServing(target: HttpTarget, child: ChildProcess, output: () => string, path: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${target.name} exited before serving:\n${output()}`);
    try {
      await target.request('GET', path, { expect: [200] });
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${target.name} did not start: ${(error as Error).message}\n${output()}`);
      await sleep(50);
    }
  }
}

function launch(name: ServerProcess['name'], command: string, args: string[], env: NodeJS.ProcessEnv, dir: string, port: number, readyPath: string) {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const keep = (data: Buffer) => {
    tail = (tail + data.toString()).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      keep(Buffer.from(`\n[${name} exited: code ${code}, signal ${signal}]\n`));
      resolve();
    }),
  );
  const target = new HttpTarget(name, '127.0.0.1', port, 256);
  const server: ServerProcess = {
    name,
    pid: child.pid!,
    target,
    dir,
    memory: treeMemory(child.pid!),
    output: () => tail,
    async stop() {
      target.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return { server, ready: waitUntilServing(target, child, () => tail, readyPath) };
}

/** `wharf serve` from dist/, the embedded default, with delete on and the access log off. */
export async function startWharf(
  root: string,
  options: { workers?: number | undefined; nodeArgs?: string[] | undefined; env?: Record<string, string>; configFile?: string } = {},
): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-bench-'));
  const port = await freePort();
  // Scanning is off unless a workload asks (the scan group): Distribution does not scan.
  const env: NodeJS.ProcessEnv = { ...process.env, REGISTRY_LOG_ACCESSLOG_DISABLED: 'true', REGISTRY_LOG_LEVEL: 'warn', REGISTRY_SECURITY_SCANNING_ENABLED: 'false', ...options.env };
  if (options.workers !== undefined) env.REGISTRY_SERVER_WORKERS = String(options.workers);
  const args = [...(options.nodeArgs ?? []), join(root, 'dist/cli/main.js'), 'serve', ...(options.configFile ? [options.configFile] : []), '--addr', `127.0.0.1:${port}`, '--data', join(dir, 'data'), '--delete'];
  const { server, ready } = launch('wharf', process.execPath, args, env, dir, port, '/v2/');
  await ready.catch(async (error) => {
    await server.stop();
    throw error;
  });
  return server;
}

/**
 * CNCF Distribution as Debian packages it, configured like Wharf: filesystem storage in a fresh
 * directory, delete on, access log off, log level warn, and the in-memory blob descriptor cache of
 * Debian's own config (its fastest setting for HEAD and GET). The tests start it the same way.
 */
export async function startDistribution(binary: string): Promise<ServerProcess> {
  const registry = await startReferenceRegistry({ mode: 'plain', tuned: true, binary });
  const port = Number(registry.host.split(':')[1]);
  const target = new HttpTarget('distribution', '127.0.0.1', port, 256);
  return {
    name: 'distribution',
    pid: registry.pid,
    target,
    dir: registry.dir,
    memory: treeMemory(registry.pid),
    output: registry.output,
    async stop() {
      target.close();
      await registry.stop();
    },
  };
}

/** nginx serving a directory of files over loopback: the machine's limit for moving the same bytes. */
export async function startNginx(binary: string, files: Record<string, Buffer | string>): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'nginx-bench-'));
  // nginx workers may run as nobody: they must be able to read the files.
  chmodSync(dir, 0o755);
  const www = join(dir, 'www');
  mkdirSync(www, { mode: 0o755 });
  mkdirSync(join(dir, 'temp'));
  for (const [name, data] of Object.entries(files)) writeFileSync(join(www, name), data, { mode: 0o644 });
  const port = await freePort();
  const temp = (kind: string) => `  ${kind}_temp_path ${join(dir, 'temp', kind)};`;
  writeFileSync(
    join(dir, 'nginx.conf'),
    [
      'daemon off;',
      'worker_processes auto;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'events { worker_connections 4096; }',
      'http {',
      '  access_log off;',
      '  sendfile on;',
      '  tcp_nopush on;',
      '  keepalive_requests 100000000;',
      '  keepalive_timeout 120s;',
      '  default_type application/octet-stream;',
      temp('client_body'),
      temp('proxy'),
      temp('fastcgi'),
      temp('uwsgi'),
      temp('scgi'),
      `  server { listen 127.0.0.1:${port}; root ${www}; }`,
      '}',
      '',
    ].join('\n'),
  );
  const firstFile = Object.keys(files)[0] ?? '';
  const args = ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
  const { server, ready } = launch('nginx', binary, args, { ...process.env }, dir, port, `/${firstFile}`);
  await ready.catch(async (error) => {
    await server.stop();
    throw error;
  });
  return server;
}

/**
 * The bare `node:http` server of bench/node-ceiling.ts answering `body` (the manifest) on every
 * path, in `processes` processes handed connections in turn as Wharf's workers are.
 */
export async function startNodeCeiling(body: Buffer, processes: number): Promise<ServerProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'node-ceiling-'));
  const file = join(dir, 'body');
  writeFileSync(file, body);
  const port = await freePort();
  const script = fileURLToPath(new URL('./node-ceiling.ts', import.meta.url));
  const { server, ready } = launch('node', process.execPath, ['--import', 'tsx', script, String(port), String(processes), file], { ...process.env }, dir, port, '/ready');
  await ready.catch(async (error) => {
    await server.stop();
    throw error;
  });
  return server;
}

/**
 * Samples the resident memory of servers while the bench runs: the peak RSS and PSS over the run,
 * and the RSS series inside a window (such as the 1 GiB push) when one is open.
 */
export class RssSampler {
  private readonly peaks = new Map<string, { rss: number; pss: number }>();
  private window: { server: ServerProcess; samples: number[] } | undefined;
  private readonly timer: NodeJS.Timeout;

  private samples = 0;

  /** RSS every `intervalMs`; PSS every 20th sample, since reading it costs more. */
  constructor(private readonly servers: ServerProcess[], intervalMs = 50) {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    const withPss = this.samples % 20 === 0;
    this.samples += 1;
    for (const server of this.servers) {
      const rss = server.memory.rss();
      const pss = withPss ? server.memory.pss() : 0;
      const peak = this.peaks.get(server.name) ?? { rss: 0, pss: 0 };
      this.peaks.set(server.name, { rss: Math.max(peak.rss, rss), pss: Math.max(peak.pss, pss) });
      if (this.window?.server === server) this.window.samples.push(rss);
    }
  }

  peak(name: string): { rss: number; pss: number } {
    return this.peaks.get(name) ?? { rss: 0, pss: 0 };
  }

  /** Runs `work` while recording the RSS series of one server; returns before, max and after. */
  async during<T>(server: ServerProcess, work: () => Promise<T>): Promise<{ result: T; before: number; max: number; after: number }> {
    const before = server.memory.rss();
    this.window = { server, samples: [before] };
    try {
      const result = await work();
      const after = server.memory.rss();
      this.window.samples.push(after);
      return { result, before, max: Math.max(...this.window.samples), after };
    } finally {
      this.window = undefined;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.samples = 0;
    this.sample();
  }
}
