import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WHARF_BIN } from './wharf-process.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A user's world for the CLI: a temporary HOME, DOCKER_CONFIG and WHARF_HOME. */
export interface CliUser {
  home: string;
  dockerConfig: string;
  wharfHome: string;
  env: Record<string, string>;
  /** Runs `wharf ARGS…` as a spawned process, as a user would. */
  run(args: string[], options?: { input?: string; env?: Record<string, string>; cwd?: string }): Promise<CliResult>;
  /** Starts `wharf ARGS…` and hands back the process (to kill it mid-way) and its result. */
  start(args: string[], options?: { env?: Record<string, string> }): { child: ChildProcess; result: Promise<CliResult> };
  /** Like run(), but throws with the output when the exit code is not 0. */
  ok(args: string[], options?: { input?: string; env?: Record<string, string>; cwd?: string }): Promise<CliResult>;
  dispose(): void;
}

export function cliUser(extraEnv: Record<string, string> = {}): CliUser {
  const home = mkdtempSync(join(tmpdir(), 'wharf-cli-home-'));
  const dockerConfig = join(home, '.docker');
  const wharfHome = join(home, 'wharf');
  mkdirSync(dockerConfig, { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    DOCKER_CONFIG: dockerConfig,
    WHARF_HOME: wharfHome,
    // Certificates only from the test's own certs.d, never the machine's.
    WHARF_CERTS_D: join(home, 'certs.d'),
    ...extraEnv,
  };
  const start = (args: string[], options: { input?: string; env?: Record<string, string>; cwd?: string } = {}) => {
    const child = spawn(process.execPath, [WHARF_BIN, ...args], { env: { ...env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'], ...(options.cwd ? { cwd: options.cwd } : {}) });
    const result = new Promise<CliResult>((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    child.stdin.end(options.input ?? '');
    return { child, result };
  };
  const run = (args: string[], options: { input?: string; env?: Record<string, string>; cwd?: string } = {}) => start(args, options).result;
  return {
    home,
    dockerConfig,
    wharfHome,
    env,
    run,
    start,
    async ok(args, options) {
      const result = await run(args, options);
      if (result.code !== 0) throw new Error(`wharf ${args.join(' ')} exited ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`);
      return result;
    },
    dispose() {
      rmSync(home, { recursive: true, force: true });
    },
  };
}
