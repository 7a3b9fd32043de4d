import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WharfConfig } from '../config/config.js';
import { createApp } from '../http/app.js';
import type { Logger } from '../log/logger.js';
import { SqliteMetadataStore } from '../metadata/sqlite/sqlite-metadata-store.js';
import { Registry } from '../registry/registry.js';
import { BlobStore } from '../storage/blob-store.js';
import { FilesystemDriver } from '../storage/filesystem-driver.js';

/** Inactivity after which a connection is dropped, even mid-request. */
const SOCKET_IDLE_TIMEOUT_MS = 5 * 60_000;

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

/** Starts `wharf serve` in this process and resolves once it is listening. */
export async function startServer(config: WharfConfig, log: Logger): Promise<RunningServer> {
  const registry = createRegistry(config);
  const app = createApp(registry, { log, accessLog: config.log.accessLog, extraHeaders: config.http.headers, readOnly: config.storage.readOnly });
  const server = createServer(
    {
      // Uploads of many gigabytes take as long as they take; slow headers do not.
      requestTimeout: 0,
      headersTimeout: 60_000,
      keepAliveTimeout: 30_000,
    },
    app,
  );
  // A client that stops sending mid-body must not hold its connection (and upload) forever.
  server.setTimeout(SOCKET_IDLE_TIMEOUT_MS);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: config.http.port, host: config.http.host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const purge = schedulePurge(registry, config, log);
  const address = server.address() as AddressInfo;
  return {
    server,
    registry,
    address,
    async close() {
      if (purge) clearInterval(purge);
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
