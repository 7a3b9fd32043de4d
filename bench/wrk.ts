import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LoadOptions {
  url: string;
  method: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  connections: number;
  seconds: number;
  /** wrk threads: one keeps the load generator's share of a 2-core machine small. */
  threads?: number;
  /** A directory for the Lua script. */
  scratch: string;
}

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
}

/** Milliseconds from wrk's "530.00us", "1.23ms", "2.00s". */
function millis(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) throw new Error(`cannot read wrk latency "${text}"`);
  const value = Number(m[1]);
  return m[2] === 'us' ? value / 1000 : m[2] === 'ms' ? value : m[2] === 's' ? value * 1000 : value * 60_000;
}

/** Reads wrk's report; throws when any request failed, so a broken endpoint never looks fast. */
export function parseWrk(output: string): LoadResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  const total = /(\d+) requests in/.exec(output);
  const p50 = /^\s*50%\s+(\S+)/m.exec(output);
  const p99 = /^\s*99%\s+(\S+)/m.exec(output);
  if (!rps || !total || !p50 || !p99) throw new Error(`unexpected wrk output:\n${output}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  if (non2xx) throw new Error(`wrk saw ${non2xx[1]} error responses:\n${output}`);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  if (socketErrors && socketErrors.slice(1).some((n) => Number(n) > 0)) throw new Error(`wrk saw socket errors:\n${output}`);
  return { requestsPerSecond: Number(rps[1]), p50Ms: millis(p50[1]!), p99Ms: millis(p99[1]!), requests: Number(total[1]) };
}

/** Keep-alive load with wrk for a fixed time: requests per second and the latency distribution. */
export async function runWrk(binary: string, options: LoadOptions): Promise<LoadResult> {
  const script = join(options.scratch, `wrk-${options.method.toLowerCase()}.lua`);
  const lines = [`wrk.method = "${options.method}"`];
  for (const [name, value] of Object.entries(options.headers ?? {})) lines.push(`wrk.headers["${name}"] = "${value}"`);
  writeFileSync(script, `${lines.join('\n')}\n`);
  const threads = Math.min(options.threads ?? 1, options.connections);
  const args = ['-t', String(threads), '-c', String(options.connections), '-d', `${options.seconds}s`, '--latency', '--timeout', '10s', '-s', script, options.url];
  const { stdout } = await run(binary, args, { maxBuffer: 1 << 20 });
  return parseWrk(stdout);
}
