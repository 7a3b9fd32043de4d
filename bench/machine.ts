import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, release, totalmem } from 'node:os';

/** The programs the bench drives, and the Debian packages that provide them. */
const TOOLS = {
  'docker-registry': 'docker-registry',
  nginx: 'nginx-light',
  wrk: 'wrk',
  openssl: 'openssl',
  curl: 'curl',
} as const;

export type ToolName = keyof typeof TOOLS;

function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const path = `${dir}/${name}`;
    if (existsSync(path)) return path;
  }
  return undefined;
}

/**
 * Paths of every tool, installing the missing ones with apt-get (a clean Debian 12 has none of
 * them). Throws with the command to run when it cannot install them itself.
 */
export function ensureTools(log: (line: string) => void): Record<ToolName, string> {
  const missing = (Object.keys(TOOLS) as ToolName[]).filter((tool) => !which(tool));
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((tool) => TOOLS[tool]))];
    // As root (CI, containers) apt-get runs directly; otherwise through sudo, without prompting.
    const apt = process.getuid?.() === 0 ? ['apt-get'] : ['sudo', '-n', 'apt-get'];
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const aptGet = (...args: string[]) => spawnSync(apt[0]!, [...apt.slice(1), ...args], { stdio: 'inherit', env });
    log(`installing ${packages.join(' ')} (missing: ${missing.join(', ')})`);
    let result = aptGet('install', '-y', '--no-install-recommends', ...packages);
    if (result.status !== 0) {
      // A fresh machine has no package lists yet.
      aptGet('update');
      result = aptGet('install', '-y', '--no-install-recommends', ...packages);
    }
    if (result.status !== 0) throw new Error(`cannot install ${packages.join(' ')}; run: apt-get install -y ${packages.join(' ')}`);
  }
  const paths = {} as Record<ToolName, string>;
  for (const tool of Object.keys(TOOLS) as ToolName[]) {
    const path = which(tool);
    if (!path) throw new Error(`${tool} is still missing after installing ${TOOLS[tool]}`);
    paths[tool] = path;
  }
  return paths;
}

function firstLine(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  versions: Record<string, string>;
}

export function machineInfo(tools: Record<ToolName, string>, wharfVersion: string): MachineInfo {
  let os = '';
  try {
    os = /^PRETTY_NAME="?(.*?)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    // not Linux-like; leave it empty
  }
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryBytes: totalmem(),
    kernel: release(),
    versions: {
      os,
      node: process.version,
      wharf: wharfVersion,
      distribution: firstLine(tools['docker-registry'], ['--version']),
      nginx: firstLine(tools.nginx, ['-v']),
      wrk: firstLine(tools.wrk, ['--version']),
      openssl: firstLine(tools.openssl, ['version']),
      curl: firstLine(tools.curl, ['--version']),
    },
  };
}

/** OpenSSL's sha256 throughput on 16 KiB blocks, MB/s (10^6 bytes). */
export function opensslSha256(openssl: string, seconds: number): number {
  const out = execFileSync(openssl, ['speed', '-evp', 'sha256', '-bytes', '16384', '-seconds', String(seconds), '-mr'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const m = /^\+F:\d+:sha256:([\d.]+)/m.exec(out);
  if (!m) throw new Error(`unexpected openssl speed output:\n${out}`);
  return Number(m[1]) / 1e6;
}

/** Node's own sha256 (what Wharf hashes with) over 1 MiB updates, MB/s. */
export function nodeSha256(totalBytes: number): number {
  const block = randomBytes(1 << 20);
  const hash = createHash('sha256');
  const started = performance.now();
  for (let done = 0; done < totalBytes; done += block.length) hash.update(block);
  hash.digest();
  return totalBytes / 1e6 / ((performance.now() - started) / 1000);
}

/**
 * The disk's durable write speed, MB/s: `bytes` written in 1 MiB blocks to a new file in `dir` and
 * fdatasync'd, as Wharf must before it acknowledges a blob. A virtual disk may be fast until the
 * host's cache fills and much slower after, so the bench measures it beside every push.
 */
export function durableWrite(dir: string, bytes: number): number {
  const block = Buffer.alloc(1 << 20, 1);
  const path = join(dir, `disk-probe-${process.pid}`);
  const started = performance.now();
  const fd = openSync(path, 'w');
  try {
    for (let written = 0; written < bytes; written += block.length) writeSync(fd, block);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  const seconds = (performance.now() - started) / 1000;
  rmSync(path, { force: true });
  return bytes / 1e6 / seconds;
}
