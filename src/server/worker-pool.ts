import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { WharfConfig } from '../config/config.js';
import type { RateCharge } from '../http/rate-limit.js';
import type { Logger } from '../log/logger.js';
import type { MetricsSnapshot } from './metrics.js';

/**
 * What the parent tells a worker: first its configuration, then connections to serve, one
 * message each; between them, requests for its metrics and answers to its rate-limit charges.
 */
export type ParentMessage =
  | { kind: 'configure'; config: WharfConfig }
  | { kind: 'connection' }
  | { kind: 'metrics'; id: number }
  | { kind: 'rate'; id: number; wait: number };
/**
 * What a worker says: that its stack is built and it can take connections; its metrics when
 * asked; a request to charge against the rate limits, whose buckets the parent holds.
 */
export type WorkerReply = { kind: 'ready' } | { kind: 'metrics'; id: number; snapshot: MetricsSnapshot } | { kind: 'rate'; id: number; charge: RateCharge };

/** How long a scrape waits for a worker's metrics; one busy or dying worker must not stall it. */
const METRICS_TIMEOUT_MS = 2_000;

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));

/** A crashed worker is replaced, but no faster than this, so a worker that cannot start does not spin. */
const RESTART_DELAY_MS = 1000;

/**
 * V8 flags every worker starts with, each unless the operator gave the same flag.
 *
 * `--max-semi-space-size=1`: left alone, V8 doubles a busy process's young generation up to two
 * 16 MiB semi-spaces and never gives them back; and the larger they are, the rarer the scavenges
 * that free the buffers requests leave behind outside V8's heap (upload chunks), so tens of MiB of
 * those wait dead at a time and the C allocator keeps their high-water mark resident. In the
 * bench's soak that was the whole of the memory growth (see bench/README.md). Only a flag at
 * start caps it: V8 resets a growth factor set later whenever a thread (such as the hash thread)
 * starts an isolate.
 *
 * `--heap-growing-percent=10`: after each full collection V8 lets the old generation grow by up
 * to 4× what was live before the next one. Under a manifest GET load a worker's old generation
 * went from 10 to over 30 MiB of mostly garbage that way; growing by 10 % (and V8's minimum
 * step) keeps it near 19 MiB, for more frequent full collections of a small heap (see
 * docs/memory.md).
 */
const WORKER_V8_FLAGS = [
  // Any young-generation flag of the operator's replaces it (a minimum above 1 MiB would conflict).
  { flag: '--max-semi-space-size=1', chosen: /semi[-_]space/ },
  { flag: '--heap-growing-percent=10', chosen: /heap[-_]growing/ },
];

/** The worker's Node.js flags: this process's, after the defaults above unless they set the same. */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, nodeOptions ?? ''];
  const defaults = WORKER_V8_FLAGS.filter(({ chosen }) => !given.some((flag) => chosen.test(flag))).map(({ flag }) => flag);
  return [...defaults, ...execArgv];
}

/**
 * glibc gives each thread that allocates its own malloc arena, up to 8 per core, and keeps what
 * each one grew to. A worker has a dozen threads (libuv's pool, V8's helpers, the hash thread):
 * two arenas serve them as fast (they allocate little; the main thread allocates most) and keep
 * each worker several MiB smaller. The operator's own setting (MALLOC_ARENA_MAX, or
 * glibc.malloc.arena_max in GLIBC_TUNABLES) wins.
 */
const WORKER_MALLOC_ARENAS = '2';

/** The worker's environment: this process's, with the malloc arenas capped unless it chose already. */
export function workerEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (env.MALLOC_ARENA_MAX !== undefined || /arena_max/.test(env.GLIBC_TUNABLES ?? '')) return env;
  return { ...env, MALLOC_ARENA_MAX: WORKER_MALLOC_ARENAS };
}

export interface WorkerPool {
  /**
   * Settles once every worker started with the pool is ready or has gone: accepting before then
   * would leave the first connections (a proxy's keep-alive pool, say) all to the first worker.
   */
  started: Promise<void>;
  /**
   * Gives a new connection to the next ready worker in turn; with none ready (all starting or
   * gone), to `serveHere`. The socket must not have been read from (accept with `pauseOnConnect`).
   */
  dispatch(socket: Socket): void;
  /** Asks every worker to re-read its certificate and credentials (SIGHUP). */
  reload(): void;
  /** Asks every worker to finish its requests and exit; resolves when they have. */
  close(): Promise<void>;
  /** Every live worker's metrics (those that answer in time). */
  snapshots(): Promise<MetricsSnapshot[]>;
}

/** What the pool asks of the process that forked it. */
export interface PoolHooks {
  /** Charges a worker's request against the shared rate limits (see TokenBuckets). */
  takeRate?: (charge: RateCharge) => number;
}

/**
 * Forks `count` worker processes and hands them connections in turn, as Node's cluster module
 * does with SCHED_RR. Left to the kernel (every process accepting on one shared socket),
 * connections that arrive together all go to whichever process wakes first: a burst of 64
 * keep-alive connections split 56 to 8, or 64 to 0, and that process kept the load for as long
 * as they stayed open. Handing them round costs a message per connection, not per request.
 *
 * Each worker opens its own SQLite connection; WAL mode and busy_timeout make the processes
 * share the database safely.
 */
export function startWorkerPool(config: WharfConfig, count: number, log: Logger, serveHere: (socket: Socket) => void, hooks: PoolHooks = {}): WorkerPool {
  let nextRequest = 0;
  /** Scrapes waiting for a worker's answer, by request id. */
  const awaitingMetrics = new Map<number, (snapshot: MetricsSnapshot) => void>();
  const workers = new Set<ChildProcess>();
  /** The ready workers, who take the next connections in turn. */
  const turns: ChildProcess[] = [];
  let next = 0;
  let closing = false;
  const leave = (child: ChildProcess) => {
    const at = turns.indexOf(child);
    if (at < 0) return;
    turns.splice(at, 1);
    if (next > at) next -= 1;
  };
  /** Workers of the first generation that are neither ready nor gone yet. */
  const starting = new Set<ChildProcess>();
  let started!: () => void;
  const startedPromise = new Promise<void>((resolve) => (started = resolve));
  const settle = (child: ChildProcess) => {
    if (starting.delete(child) && starting.size === 0) started();
  };
  const start = () => {
    const child = fork(WORKER_MAIN, [], { execArgv: workerExecArgv(process.execArgv, process.env.NODE_OPTIONS), env: workerEnv(process.env), stdio: 'inherit' });
    workers.add(child);
    child.send({ kind: 'configure', config } satisfies ParentMessage);
    child.on('message', (reply: WorkerReply) => {
      if (reply.kind === 'rate') {
        const wait = hooks.takeRate ? hooks.takeRate(reply.charge) : 0;
        if (child.connected) child.send({ kind: 'rate', id: reply.id, wait } satisfies ParentMessage);
        return;
      }
      if (reply.kind === 'metrics') {
        awaitingMetrics.get(reply.id)?.(reply.snapshot);
        return;
      }
      if (reply.kind === 'ready' && !closing && !turns.includes(child)) turns.push(child);
      settle(child);
    });
    // A worker that stops, by signal or by crashing, takes no more connections from the moment it goes.
    child.once('disconnect', () => leave(child));
    child.once('exit', (code, signal) => {
      leave(child);
      workers.delete(child);
      settle(child);
      if (closing) return;
      log.error({ pid: child.pid, code, signal }, 'worker process exited; starting another');
      setTimeout(() => {
        if (!closing) start();
      }, RESTART_DELAY_MS).unref();
    });
    return child;
  };
  for (let i = 0; i < count; i += 1) starting.add(start());
  if (count === 0) started();
  return {
    started: startedPromise,
    dispatch(socket) {
      const child = turns.length > 0 ? turns[next % turns.length] : undefined;
      next = turns.length > 0 ? (next + 1) % turns.length : 0;
      if (!child?.connected) {
        serveHere(socket);
        return;
      }
      child.send({ kind: 'connection' } satisfies ParentMessage, socket, (error) => {
        // The worker went away before it took the socket: serve the connection here instead.
        if (error && !socket.destroyed) serveHere(socket);
      });
    },
    reload() {
      for (const child of workers) child.kill('SIGHUP');
    },
    async snapshots() {
      const asks = [...workers]
        .filter((child) => child.connected)
        .map(
          (child) =>
            new Promise<MetricsSnapshot | undefined>((resolve) => {
              const id = (nextRequest += 1);
              const done = (snapshot: MetricsSnapshot | undefined) => {
                clearTimeout(timer);
                awaitingMetrics.delete(id);
                child.off('exit', gone);
                resolve(snapshot);
              };
              const gone = () => done(undefined);
              const timer = setTimeout(gone, METRICS_TIMEOUT_MS);
              awaitingMetrics.set(id, done);
              child.once('exit', gone);
              child.send({ kind: 'metrics', id } satisfies ParentMessage, (error) => {
                if (error) gone();
              });
            }),
        );
      return (await Promise.all(asks)).filter((snapshot): snapshot is MetricsSnapshot => snapshot !== undefined);
    },
    async close() {
      closing = true;
      turns.splice(0);
      await Promise.all(
        [...workers].map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}
