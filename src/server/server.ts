import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import type { SecureContextOptions } from 'node:tls';
import type { TlsConfig, WharfConfig } from '../config/config.js';
import { AuditLog, NO_AUDIT, type AuditSink } from '../auth/audit-log.js';
import { createAuth, type Auth } from '../auth/setup.js';
import { createApp } from '../http/app.js';
import type { Logger } from '../log/logger.js';
import { SqliteAccountStore } from '../metadata/sqlite/sqlite-account-store.js';
import { SqliteMetadataStore } from '../metadata/sqlite/sqlite-metadata-store.js';
import { Registry } from '../registry/registry.js';
import { BlobStore } from '../storage/blob-store.js';
import { FilesystemDriver } from '../storage/filesystem-driver.js';
import { startWorkerPool } from './worker-pool.js';

/** Inactivity after which a connection is dropped, even mid-request. */
const SOCKET_IDLE_TIMEOUT_MS = 5 * 60_000;

export interface RunningServer {
  server: Server | HttpsServer;
  registry: Registry;
  /** The bound address (useful with port 0). */
  address: AddressInfo;
  /** Stops accepting, lets in-flight requests finish (up to the drain timeout), closes storage. */
  close(): Promise<void>;
  /**
   * Re-reads what may change under a running server (the TLS certificate and key): new
   * connections get the new certificate, open ones keep theirs. Throws, keeping the old
   * certificate, when the new files are unreadable or do not match.
   */
  reload(): void;
}

/** The certificate, key and client CAs as Node's TLS layer takes them, read from disk now. */
export function readTlsFiles(tls: TlsConfig): SecureContextOptions {
  const options: SecureContextOptions = {
    cert: readFileSync(tls.certificate),
    key: readFileSync(tls.key),
    minVersion: tls.minimumTls,
  };
  if (tls.clientCas.length > 0) options.ca = tls.clientCas.map((path) => readFileSync(path));
  return options;
}

/** Builds the registry from configuration: storage, metadata, services, HTTP. */
export function createRegistry(config: WharfConfig, audit: AuditSink = NO_AUDIT): Registry {
  const metadata = new SqliteMetadataStore({ path: config.metadata.sqlite.path, synchronous: config.metadata.sqlite.synchronous });
  const store = new BlobStore(new FilesystemDriver(config.storage.rootDirectory));
  return new Registry(metadata, store, {
    deleteEnabled: config.storage.deleteEnabled,
    pagination: { defaultCatalogPage: config.catalog.maxEntries },
    ...(audit !== NO_AUDIT ? { onEvent: (event) => audit.record({ event: event.action, ...event, action: undefined }) } : {}),
  });
}

/** Thrown when the configuration would hand out credentials unsafely. */
export class UnsafeConfigError extends Error {}

function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return false;
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** How many processes serve: `server.workers`, where 0 means one per core. */
export function workerCount(config: WharfConfig): number {
  return config.server.workers === 0 ? availableParallelism() : config.server.workers;
}

/** Everything one serving process runs: audit log, registry, access control, HTTP(S) server. */
interface ServingStack {
  server: Server | HttpsServer;
  tls: boolean;
  registry: Registry;
  reload(): void;
  /** Closes what the stack opened, after the server has stopped. */
  dispose(): Promise<void>;
}

async function createServingStack(config: WharfConfig, log: Logger): Promise<ServingStack> {
  const audit: AuditSink = config.audit.enabled ? new AuditLog(config.audit.path) : NO_AUDIT;
  const registry = createRegistry(config, audit);
  let accounts: SqliteAccountStore | undefined;
  let auth: Auth | undefined;
  if (config.auth) {
    accounts = new SqliteAccountStore({ path: config.metadata.sqlite.path });
    try {
      auth = await createAuth(config.auth, { accounts, audit, log });
    } catch (error) {
      await accounts.close();
      await registry.close();
      await audit.close();
      throw error;
    }
  }
  const app = createApp(registry, {
    log,
    accessLog: config.log.accessLog,
    extraHeaders: config.http.headers,
    readOnly: config.storage.readOnly,
    ...(auth ? { auth } : {}),
  });
  const serverOptions = {
    // Uploads of many gigabytes take as long as they take; slow headers do not.
    requestTimeout: 0,
    headersTimeout: 60_000,
    keepAliveTimeout: 30_000,
  };
  const tls = config.http.tls;
  const server = tls
    ? createHttpsServer(
        {
          ...serverOptions,
          ...readTlsFiles(tls),
          requestCert: tls.clientCas.length > 0,
          rejectUnauthorized: tls.clientCas.length > 0 && tls.clientAuth === 'require-and-verify-client-cert',
        },
        app,
      )
    : createServer(serverOptions, app);
  // A client that stops sending mid-body must not hold its connection (and upload) forever.
  server.setTimeout(SOCKET_IDLE_TIMEOUT_MS);
  return {
    server,
    tls: tls !== undefined,
    registry,
    reload() {
      if (tls) (server as HttpsServer).setSecureContext(readTlsFiles(tls));
      auth?.reload();
    },
    async dispose() {
      await accounts?.close();
      await registry.close();
      await audit.close();
    },
  };
}

/**
 * Starts `wharf serve` and resolves once it is listening. With one worker, this process serves.
 * With more, it forks that many workers and serves nothing itself: it accepts every connection
 * and hands them round in turn, watches the workers, and runs the upload purge. (It serves only
 * when no worker can: all of them starting again or gone.)
 */
export async function startServer(config: WharfConfig, log: Logger): Promise<RunningServer> {
  if (config.auth && !config.http.tls && !isLoopback(config.http.host)) {
    if (!config.auth.allowPlainHttp) {
      throw new UnsafeConfigError(
        'credentials would travel in clear text: configure http.tls, listen on a loopback address, or set auth.allowplainhttp: true (for example behind a TLS-terminating proxy)',
      );
    }
    log.warn({ addr: config.http.host ?? '*' }, 'auth.allowplainhttp: passwords and tokens cross the network unencrypted');
  }
  // Built here first: schema migrations and the token signing key exist before any worker starts.
  // With workers, it serves only the connections no worker could take.
  const stack = await createServingStack(config, log);
  const serving = serve(stack, config);
  const target = { port: config.http.port, host: config.http.host };
  const workers = workerCount(config);
  const purge = schedulePurge(stack.registry, config, log);
  const stopPurge = () => {
    if (purge) clearInterval(purge);
  };
  if (workers === 1) {
    await listen(stack.server, target);
    return running(stack, serving, stack.server, { stop: stopPurge });
  }
  // Connections are accepted without reading from them, so that any process can take them over.
  const acceptor = createNetServer({ pauseOnConnect: true });
  const pool = startWorkerPool(config, workers, log, (socket) => serving.accept(socket));
  // Until every worker is ready, connections wait, so that the first ones are shared out too.
  let waiting: Socket[] | undefined = [];
  acceptor.on('connection', (socket: Socket) => (waiting ? waiting.push(socket) : pool.dispatch(socket)));
  try {
    await listen(acceptor, target);
  } catch (error) {
    stopPurge();
    await Promise.all([pool.close(), serving.close()]);
    throw error;
  }
  await pool.started;
  for (const socket of waiting) pool.dispatch(socket);
  waiting = undefined;
  return running(stack, serving, acceptor, { stop: stopPurge, reload: () => pool.reload(), alongside: () => pool.close() });
}

/**
 * In a worker process: builds a serving stack that takes the connections the parent hands over
 * (see worker-pool.ts). Resolves once it can serve them.
 */
export async function prepareWorker(config: WharfConfig, log: Logger): Promise<ServingProcess> {
  return serve(await createServingStack(config, log), config);
}

function listen(server: NetServer, target: { port: number; host: string | undefined }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: target.port, host: target.host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** A serving stack that also takes connections accepted elsewhere, and drains them on close. */
export interface ServingProcess {
  /** Serves a connection accepted by another server (paused or not); the socket must not have been read from. */
  accept(socket: Socket): void;
  reload(): void;
  /**
   * Lets requests in flight finish (up to the drain timeout), closing each connection as it
   * falls idle, then closes storage. Stops nothing that listens: that is the caller's.
   */
  close(): Promise<void>;
}

function serve(stack: ServingStack, config: WharfConfig): ServingProcess {
  const { server } = stack;
  /**
   * Connections that have carried a request: the ones a close waits for. (A server handed its
   * connections does not count them, so its own close would not wait.)
   */
  const busy = new Set<Socket>();
  let drained: (() => void) | undefined;
  server.on('request', (req: IncomingMessage) => {
    const socket = req.socket;
    if (busy.has(socket)) return;
    busy.add(socket);
    socket.once('close', () => {
      busy.delete(socket);
      if (busy.size === 0) drained?.();
    });
  });
  return {
    accept(socket) {
      // What the HTTP server would have set on a socket it had accepted itself.
      socket.setNoDelay(true);
      socket.allowHalfOpen = !stack.tls;
      server.emit('connection', socket);
      // Accepted paused (pauseOnConnect): start reading now that the server listens for data.
      if (socket.isPaused()) socket.resume();
    },
    reload: () => stack.reload(),
    async close() {
      server.closeIdleConnections();
      if (busy.size > 0) {
        await new Promise<void>((resolve) => {
          // A keep-alive connection goes as soon as its last response is out.
          const sweep = setInterval(() => server.closeIdleConnections(), 100);
          const deadline = setTimeout(() => {
            server.closeAllConnections();
            for (const socket of busy) socket.destroy();
            drained?.();
          }, config.http.drainTimeoutMs);
          drained = () => {
            clearInterval(sweep);
            clearTimeout(deadline);
            resolve();
          };
        });
      }
      await stack.dispose();
    },
  };
}

/**
 * The running server: `close` stops `listener` accepting, then drains this process's connections
 * and, `alongside`, whatever else serves (the workers).
 */
function running(
  stack: ServingStack,
  serving: ServingProcess,
  listener: NetServer,
  hooks: { stop: () => void; reload?: () => void; alongside?: () => Promise<void> },
): RunningServer {
  return {
    server: stack.server,
    registry: stack.registry,
    address: listener.address() as AddressInfo,
    reload() {
      serving.reload();
      hooks.reload?.();
    },
    async close() {
      hooks.stop();
      listener.close();
      await Promise.all([serving.close(), hooks.alongside?.()]);
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
