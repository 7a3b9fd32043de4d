import type { Command } from 'commander';
import type { AddressInfo } from 'node:net';
import type { ConfigFlags } from '../config/config.js';
import { createLogger } from '../log/logger.js';
import { StartupError, UnsafeConfigError, startServer } from '../server/server.js';
import { WHARF_VERSION } from '../version.js';
import { loadServerConfig } from './server-config.js';

interface ServeOptions {
  addr?: string;
  data?: string;
  logLevel?: string;
  workers?: string;
  delete?: boolean;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the registry (the embedded default: blobs on disk and metadata in SQLite under ./data)')
    .argument('[config]', 'a registry:2-style config.yml')
    .option('--addr <host:port>', 'listen address (http.addr), default :5000')
    .option('--data <dir>', 'storage root (storage.filesystem.rootdirectory), default ./data')
    .option('--log-level <level>', 'log.level: error, warn, info, debug')
    .option('--delete', 'allow DELETE (storage.delete.enabled)')
    .option('--workers <n>', 'processes serving requests (server.workers); 0 means one per core, default 2')
    .action(async (file: string | undefined, options: ServeOptions) => {
      const flags: ConfigFlags = {};
      if (options.addr !== undefined) flags.addr = options.addr;
      if (options.data !== undefined) flags.data = options.data;
      if (options.logLevel !== undefined) flags.logLevel = options.logLevel;
      if (options.workers !== undefined) flags.workers = options.workers;
      if (options.delete) flags.deleteEnabled = true;
      const { config, warnings } = loadServerConfig(file, flags);
      const log = createLogger({ level: config.log.level, format: config.log.format });
      log.info({ version: WHARF_VERSION, node: process.version, pid: process.pid }, `starting Wharf ${WHARF_VERSION}`);
      for (const warning of warnings) log.warn(warning);
      let running;
      try {
        running = await startServer(config, log);
      } catch (error) {
        // A reason the operator can act on is one line; anything else keeps its stack for a bug report.
        if (error instanceof StartupError || error instanceof UnsafeConfigError) log.fatal(`cannot start the registry: ${error.message}`);
        else log.fatal({ err: error }, 'cannot start the registry');
        log.flush?.();
        process.exitCode = 1;
        setTimeout(() => process.exit(1), 100).unref();
        return;
      }
      const { address, debugAddress } = running;
      const hostPort = (a: AddressInfo) => `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
      log.info(
        {
          addr: hostPort(address),
          ...(debugAddress ? { debug: hostPort(debugAddress) } : {}),
          storage: config.storage.s3 ? `s3://${config.storage.s3.bucket}/${config.storage.s3.rootDirectory.replace(/^\/+/, '')}` : config.storage.rootDirectory,
          ...(config.storage.s3 ? { data: config.storage.rootDirectory, redirect: !config.storage.redirectDisabled } : {}),
          metadata: config.metadata.kind,
          delete: config.storage.deleteEnabled,
          tls: config.http.tls !== undefined,
          auth: config.auth ? (config.auth.token ? 'token' : 'htpasswd') : 'none',
          version: WHARF_VERSION,
        },
        'wharf registry listening',
      );
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal, drainTimeoutMs: config.http.drainTimeoutMs }, 'shutting down: no new connections; finishing requests in flight');
        const began = performance.now();
        running.close().then(
          () => {
            // The last line, once every process has finished or cut its requests and stopped.
            log.info({ signal, durationMs: Math.round(performance.now() - began) }, 'wharf registry stopped');
            log.flush?.();
            process.exit(0);
          },
          (error: unknown) => {
            log.error({ err: error }, 'error while shutting down');
            process.exit(1);
          },
        );
      };
      // SIGHUP re-reads the TLS certificate and the htpasswd file; open connections are kept.
      process.on('SIGHUP', () => {
        try {
          running.reload();
          log.info('reloaded TLS certificate and credentials files');
        } catch (error) {
          log.error({ err: error }, 'reload failed; keeping the previous certificate');
        }
      });
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
