import { createServer, type Server } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { availableParallelism } from 'node:os';
import type { WharfConfig } from '../config/config.js';
import { createApp } from '../http/app.js';
import type { Logger } from '../log/logger.js';
import { SqliteMetadataStore } from '../metadata/sqlite/sqlite-metadata-store.js';
import { Registry } from '../registry/registry.js';
import { BlobStore } from '../storage/blob-store.js';
import { FilesystemDriver } from '../storage/filesystem-driver.js';
import { startWorkerPool } from './worker-pool.js';

export interface RunningServer {
  server: Server;
  registry: Registry;
  /** The bound address (useful with port 0). */
  address: AddressInfo;
  /** Stops accepting, lets in-flight requests finish (up to the drain timeout), closes storage. */
  close(): Promise<void>;
}

/** Builds the registry from configuration: storage, metadata, services, HTTP. */
export function createRegistry(config: WharfConfig): Registry {
  const metadata = new SqliteMetadataStore({ path: config.metadata.sqlite.path, synchronous: config.metadata.sqlite.synchronous });
  const store = new BlobStore(new FilesystemDriver(config.storage.rootDirectory));
  return new Registry(metadata, store, {
    deleteEnabled: config.storage.deleteEnabled,
    pagination: { defaultCatalogPage: config.catalog.maxEntries },
  });
}

/** The HTTP server of one serving process, not yet listening. */
function createHttpServer(config: WharfConfig, registry: Registry, log: Logger): Server {
  const app = createApp(registry, { log, accessLog: config.log.accessLog, extraHeaders: config.http.headers, readOnly: config.storage.readOnly });
  return createServer(
    {
      // Uploads of many gigabytes take as long as they take; slow headers do not.
      requestTimeout: 0,
      headersTimeout: 60_000,
      keepAliveTimeout: 30_000,
    },
    app,
  );
}

/** How many processes serve: `server.workers`, where 0 means one per core. */
export function workerCount(config: WharfConfig): number {
  return config.server.workers === 0 ? availableParallelism() : config.server.workers;
}

/**
 * Starts `wharf serve` and resolves once it is listening. With more than one worker, this process
 * serves too and forks the others onto the same listening socket.
 */
export async function startServer(config: WharfConfig, log: Logger): Promise<RunningServer> {
  // Opening the store here first also runs any schema migration before a worker opens it.
  const registry = createRegistry(config);
  const server = createHttpServer(config, registry, log);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: config.http.port, host: config.http.host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const workers = workerCount(config);
  const pool = workers > 1 ? startWorkerPool(server, config, workers - 1, log) : undefined;
  const purge = schedulePurge(registry, config, log);
  return running(server, registry, config, async () => {
    if (purge) clearInterval(purge);
    await pool?.close();
  });
}

/** In a worker process: serves the parent's listening socket with a registry of its own. */
export async function serveHandle(config: WharfConfig, log: Logger, handle: NetServer): Promise<RunningServer> {
  const registry = createRegistry(config);
  const server = createHttpServer(config, registry, log);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(handle, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return running(server, registry, config, async () => undefined);
}

function running(server: Server, registry: Registry, config: WharfConfig, beforeClose: () => Promise<void>): RunningServer {
  return {
    server,
    registry,
    address: server.address() as AddressInfo,
    async close() {
      await beforeClose();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), config.http.drainTimeoutMs);
      await closed;
      clearTimeout(timer);
      await registry.close();
    },
  };
}

/** registry:2's storage.maintenance.uploadpurging: abandoned upload sessions are removed. */
function schedulePurge(registry: Registry, config: WharfConfig, log: Logger): NodeJS.Timeout | undefined {
  const settings = config.storage.uploadPurging;
  if (!settings.enabled || config.storage.readOnly) return undefined;
  const run = async () => {
    if (settings.dryRun) return;
    try {
      const purged = await registry.uploads.purgeStale(Date.now() - settings.ageMs);
      if (purged > 0) log.info({ purged }, 'purged abandoned uploads');
    } catch (error) {
      log.error({ err: error }, 'upload purge failed');
    }
  };
  const timer = setInterval(run, settings.intervalMs);
  timer.unref();
  setTimeout(run, 60_000).unref();
  return timer;
}
