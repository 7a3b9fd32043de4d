/**
 * Entry point of a worker process (see worker-pool.ts): waits for the configuration and the
 * parent's listening socket, serves it, and stops on SIGTERM or SIGINT, or when the parent goes away.
 */
import type { Server } from 'node:net';
import { createLogger } from '../log/logger.js';
import { serveHandle } from './server.js';
import type { WorkerMessage } from './worker-pool.js';

process.once('message', (message: WorkerMessage, handle: Server) => {
  if (message.kind !== 'serve') return;
  const { config } = message;
  const log = createLogger({ level: config.log.level, format: config.log.format });
  let stopping = false;
  serveHandle(config, log, handle).then(
    (running) => {
      const stop = () => {
        if (stopping) return;
        stopping = true;
        running.close().then(
          () => process.exit(0),
          (error: unknown) => {
            log.error({ err: error }, 'error while shutting down a worker');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
      process.on('disconnect', stop);
    },
    (error: unknown) => {
      log.fatal({ err: error }, 'worker cannot start');
      process.exit(1);
    },
  );
});
