/**
 * Entry point of a worker process (see worker-pool.ts). It builds its serving stack from the
 * configuration it is sent, says it is ready, then serves the connections the parent hands over.
 * It drains and stops on SIGTERM or SIGINT (the parent sends SIGTERM when it stops), and exits at
 * once when the parent dies without stopping it: the server has crashed, and its connections go
 * with it.
 */
import type { Socket } from 'node:net';
import { createLogger } from '../log/logger.js';
import { prepareWorker, type ServingProcess } from './server.js';
import { RemoteRateLimiter } from './token-buckets.js';
import type { ParentMessage, WorkerReply } from './worker-pool.js';

/** Beyond the configured drain timeout, how long closing may take before the worker exits anyway. */
const EXIT_GRACE_MS = 5_000;

let drainTimeoutMs = 30_000;
let serving: ServingProcess | undefined;
let stopping = false;
let log = createLogger({ level: 'info', format: 'json' });

function reply(message: WorkerReply): void {
  if (process.connected) process.send?.(message);
}

/** The rate limits' buckets are the parent's; this asks it. */
const rateLimiter = new RemoteRateLimiter(reply);

function stop(code = 0): void {
  if (stopping) return;
  stopping = true;
  // Whatever happens while draining, the process goes: an orphaned worker must not linger.
  setTimeout(() => process.exit(code), drainTimeoutMs + EXIT_GRACE_MS).unref();
  if (!serving) process.exit(code);
  // Out of the parent's turns at once: no connection should arrive while this one drains.
  if (process.connected) process.disconnect();
  rateLimiter.release();
  serving.close().then(
    () => process.exit(code),
    (error: unknown) => {
      log.error({ err: error }, 'error while shutting down a worker');
      process.exit(1);
    },
  );
}

process.on('message', (message: ParentMessage, socket: Socket | undefined) => {
  if (message.kind === 'configure') {
    log = createLogger({ level: message.config.log.level, format: message.config.log.format });
    drainTimeoutMs = message.config.http.drainTimeoutMs;
    prepareWorker(message.config, log, { rateLimiter }).then(
      (ready) => {
        serving = ready;
        reply({ kind: 'ready' });
      },
      (error: unknown) => {
        log.fatal({ err: error }, 'worker cannot start');
        process.exit(1);
      },
    );
  } else if (message.kind === 'rate') {
    rateLimiter.answer(message.id, message.wait);
  } else if (message.kind === 'metrics') {
    void (serving?.metrics() ?? Promise.resolve([])).then((snapshot) => reply({ kind: 'metrics', id: message.id, snapshot }));
  } else if (message.kind === 'connection' && socket) {
    // Only sent after 'ready'; a connection that arrives while stopping is still served, then closed.
    if (serving) serving.accept(socket);
    else socket.destroy();
  }
});

process.on('SIGHUP', () => {
  try {
    serving?.reload();
    log.info('worker reloaded its certificate and credentials');
  } catch (error) {
    log.error({ err: error }, 'reload failed; keeping the previous certificate');
  }
});
process.on('SIGTERM', () => stop());
process.on('SIGINT', () => stop());
process.on('disconnect', () => {
  if (stopping) return;
  log.error('the parent process went away; exiting');
  log.flush();
  process.exit(1);
});
