import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI that users run; tests drive the same binary. */
export const WHARF_BIN = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export interface WharfProcess {
  /** `http://127.0.0.1:PORT` (`https://` with `tls`) */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  /** Everything the server printed so far. */
  output(): string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Stops the server and removes its data directory unless it was given. */
  dispose(): Promise<void>;
}

export interface WharfOptions {
  /** Reuse a data directory (to test restarts); a fresh temporary one otherwise. */
  dataDir?: string;
  /** Extra arguments after `serve` (a config file path, flags). */
  args?: string[];
  env?: Record<string, string>;
  /** Listen address; 127.0.0.1:0 (a free port) by default. */
  addr?: string;
  /** Leave out --addr/--data so that a config file or the environment decides them. */
  noFlags?: boolean;
  /** The server was configured for HTTPS: `url` says https. */
  tls?: boolean;
  /**
   * Image scanning on push (on by default in the product). Off unless asked, so that other tests'
   * repositories hold only what they pushed (no SBOM or report referrers).
   */
  scanning?: boolean;
}

/**
 * With WHARF_TEST_S3_ENDPOINT (and _ACCESS_KEY, _SECRET_KEY, _BUCKET) set, as scripts/test-on-s3.sh
 * sets them, every server keeps its blobs in that bucket, under a root directory of its own.
 */
function s3Environment(dataDir: string): Record<string, string> {
  const endpoint = process.env.WHARF_TEST_S3_ENDPOINT;
  if (!endpoint) return {};
  return {
    REGISTRY_STORAGE_S3_REGIONENDPOINT: endpoint,
    REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
    REGISTRY_STORAGE_S3_ACCESSKEY: process.env.WHARF_TEST_S3_ACCESS_KEY ?? '',
    REGISTRY_STORAGE_S3_SECRETKEY: process.env.WHARF_TEST_S3_SECRET_KEY ?? '',
    REGISTRY_STORAGE_S3_BUCKET: process.env.WHARF_TEST_S3_BUCKET ?? '',
    REGISTRY_STORAGE_S3_ROOTDIRECTORY: basename(dataDir),
    // The tests read blobs with plain requests and expect their bytes; WHARF_TEST_S3_REDIRECT=true tests the redirects instead.
    REGISTRY_STORAGE_REDIRECT_DISABLE: process.env.WHARF_TEST_S3_REDIRECT === 'true' ? 'false' : 'true',
  };
}

/** What `startWharf` answers with instead, when a test file runs a suite against another deployment. */
let substitute: ((options: WharfOptions) => Promise<WharfProcess>) | undefined;

/** Used by support/replica-deployment.ts to run an existing suite, unchanged, through a load balancer. */
export function substituteStartWharf(start: (options: WharfOptions) => Promise<WharfProcess>): void {
  substitute = start;
}

/** Starts `wharf serve` as a child process and resolves when it is listening. */
export async function startWharf(options: WharfOptions = {}): Promise<WharfProcess> {
  return substitute ? substitute(options) : startWharfProcess(options);
}

/** `startWharf` itself, whatever the test file substituted. */
export async function startWharfProcess(options: WharfOptions = {}): Promise<WharfProcess> {
  const ownData = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'wharf-test-'));
  const args = [WHARF_BIN, 'serve', ...(options.args ?? [])];
  if (!options.noFlags) args.push('--addr', options.addr ?? '127.0.0.1:0', '--data', dataDir);
  const child = spawn(process.execPath, args, {
    env: { ...process.env, REGISTRY_SECURITY_SCANNING_ENABLED: options.scanning ? 'true' : 'false', ...s3Environment(dataDir), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`wharf did not start:\n${output}`)), 15_000);
    const check = () => {
      const m = /"addr":"[^"]*:(\d+)".*wharf registry listening/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`wharf exited with ${code} before listening:\n${output}`));
    });
  });
  const host = `127.0.0.1:${port}`;
  const wharf: WharfProcess = {
    url: `${options.tls ? 'https' : 'http'}://${host}`,
    host,
    port,
    dataDir,
    child,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    async dispose() {
      await wharf.stop();
      if (ownData) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return wharf;
}
