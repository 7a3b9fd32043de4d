import { fork, type ChildProcess } from 'node:child_process';
import type { Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { WharfConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';

/** What the serving process tells a worker: first its configuration, then (with the socket) to serve. */
export type ParentMessage = { kind: 'configure'; config: WharfConfig } | { kind: 'listen' };
/** What a worker answers once its stack is built. */
export type WorkerReply = { kind: 'ready' };

const WORKER_MAIN = fileURLToPath(new URL('./worker-main.js', import.meta.url));

/** A crashed worker is replaced, but no faster than this, so a worker that cannot start does not spin. */
const RESTART_DELAY_MS = 1000;

export interface WorkerPool {
  /** Asks every worker to re-read its certificate and credentials (SIGHUP). */
  reload(): void;
  /** Asks every worker to finish its requests and exit; resolves when they have. */
  close(): Promise<void>;
}

/**
 * Forks `count` helper processes that accept connections from the same listening socket as this
 * one (the kernel hands each new connection to whichever process accepts first, so a busy process
 * takes fewer). Each worker opens its own SQLite connection; WAL mode and busy_timeout make the
 * processes share the database safely.
 */
export function startWorkerPool(server: Server, config: WharfConfig, count: number, log: Logger): WorkerPool {
  const workers = new Set<ChildProcess>();
  let closing = false;
  const start = () => {
    const child = fork(WORKER_MAIN, [], { execArgv: process.execArgv, stdio: 'inherit' });
    workers.add(child);
    child.send({ kind: 'configure', config } satisfies ParentMessage);
    // The socket goes only to a worker that can serve it at once (see prepareWorker).
    child.on('message', (reply: WorkerReply) => {
      if (reply.kind === 'ready' && !closing) child.send({ kind: 'listen' } satisfies ParentMessage, server);
    });
    child.once('exit', (code, signal) => {
      workers.delete(child);
      if (closing) return;
      log.error({ pid: child.pid, code, signal }, 'worker process exited; starting another');
      setTimeout(() => {
        if (!closing) start();
      }, RESTART_DELAY_MS).unref();
    });
  };
  for (let i = 0; i < count; i += 1) start();
  return {
    reload() {
      for (const child of workers) child.kill('SIGHUP');
    },
    async close() {
      closing = true;
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
