import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { availableParallelism, hostname } from 'node:os';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import type { TlsConfig, WharfConfig } from '../config/config.js';
import { isRegistryError, isStorageFull } from '../errors/index.js';
import { collectGarbage, type CollectionOptions } from '../gc/garbage-collector.js';
import { AuditLog, NO_AUDIT, type AuditSink } from '../auth/audit-log.js';
import type { Auth } from '../auth/setup.js';
import { Notifier } from '../events/notifier.js';
import { PullRecorder, recordingServices } from '../events/pull-recorder.js';
import type { Digest } from '../oci/digest.js';
import type { PullThroughCache } from '../proxy/pull-through-cache.js';
import { createApp, type Admission } from '../http/app.js';
import { rateLimits, type RateLimiter } from '../http/rate-limit.js';
import type { Logger } from '../log/logger.js';
import type { AccountStore } from '../metadata/account-store.js';
import { SqliteAccountStore } from '../metadata/sqlite/sqlite-account-store.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { SqliteMetadataStore } from '../metadata/sqlite/sqlite-metadata-store.js';
import { DatabaseUnavailableError } from '../metadata/postgres/postgres-database.js';
import { PostgresAccountStore } from '../metadata/postgres/postgres-account-store.js';
import { PostgresMetadataStore } from '../metadata/postgres/postgres-metadata-store.js';
import { parseConfigQuotas } from '../registry/quota-rules.js';
import { parseSignaturePolicies, signaturePolicyServices } from '../registry/signature-policy.js';
import { Registry } from '../registry/registry.js';
import type { RegistryServices } from '../registry/services.js';
import { BlobStore } from '../storage/blob-store.js';
import type { StorageDriver } from '../storage/driver.js';
import { FilesystemDriver, hasRoomToWrite, probeWrite } from '../storage/filesystem-driver.js';
import { DeferredDriver } from '../storage/deferred-driver.js';
import { JobRunner, type JobHandler } from '../jobs/job-runner.js';
import { parseConfigRetentionPolicies } from '../registry/retention-service.js';
import { findDistributionStorage, importDistributionStorage, isMetadataEmpty } from '../migrate/distribution-import.js';
import { FreeSpaceWatch, StorageDriverCheck, readinessProbes, rootAccessProbe } from './health.js';
import { checkScanConfig, createScanService, openScanning, ScanConfigError, scanJobHandlers, scheduleScanJobs, withScanPolicies, type ScanWiring } from './scanning.js';
import type { MetricsSnapshot, ServerMetrics } from './metrics.js';
import { TokenBuckets } from './token-buckets.js';
import { startWorkerPool } from './worker-pool.js';
import { matchRoute } from '../http/router.js';
import { createUi } from '../ui/ui.js';
import { SessionKeys } from '../ui/session.js';

/** Inactivity after which a connection is dropped, even mid-request. */
const SOCKET_IDLE_TIMEOUT_MS = 5 * 60_000;

export interface RunningServer {
  server: Server | HttpsServer;
  registry: Registry;
  /** The bound address (useful with port 0). */
  address: AddressInfo;
  /** The debug server's bound address, when `http.debug.addr` is set. */
  debugAddress?: AddressInfo;
  /** Stops accepting, lets in-flight requests finish (up to the drain timeout), closes storage. */
  close(): Promise<void>;
  /**
   * Re-reads what may change under a running server (the TLS certificate and key): new
   * connections get the new certificate, open ones keep theirs. Throws, keeping the old
   * certificate, when the new files are unreadable or do not match.
   */
  reload(): void;
}

/** Whether `http.tls.minimumtls` allows TLS 1.0 or 1.1. */
export function allowsLegacyTls(tls: TlsConfig): boolean {
  return tls.minimumTls === 'TLSv1' || tls.minimumTls === 'TLSv1.1';
}

/** The certificate, key and client CAs as Node's TLS layer takes them, read from disk now. */
export function readTlsFiles(tls: TlsConfig): SecureContextOptions {
  const options: SecureContextOptions = {
    cert: readFileSync(tls.certificate),
    key: readFileSync(tls.key),
    minVersion: tls.minimumTls,
  };
  // OpenSSL's default security level refuses every TLS 1.0/1.1 handshake (their signatures use
  // SHA-1), so minVersion alone changes nothing: honouring the setting means lowering the level,
  // for this server only and only when asked.
  if (allowsLegacyTls(tls)) options.ciphers = 'DEFAULT@SECLEVEL=0';
  if (tls.clientCas.length > 0) options.ca = tls.clientCas.map((path) => readFileSync(path));
  return options;
}

/** The stores that configuration names. */
export interface Stores {
  metadata: MetadataStore;
  store: BlobStore;
  /** Opens the account store beside the metadata (auth); the caller closes it. */
  openAccounts(): AccountStore;
  /**
   * Settles once the metadata store can serve (PostgreSQL: connected and migrated); rejects with
   * the reason it cannot. SQLite opens synchronously, so it is settled from the start.
   */
  ready: Promise<void>;
}

/**
 * Opens the metadata store and blob store. With `exclusive`, this process alone holds the
 * database and SQLite needs no shared-memory file (see SqliteOptions.exclusive).
 */
export function openStores(config: WharfConfig, options: { exclusive?: boolean; onCommit?: (seconds: number) => void } = {}): Stores {
  const store = new BlobStore(openStorageDriver(config));
  switch (config.metadata.kind) {
    case 'sqlite': {
      const { path, synchronous } = config.metadata.sqlite;
      const metadata = new SqliteMetadataStore({
        path,
        synchronous,
        ...(options.exclusive ? { exclusive: true } : {}),
        ...(options.onCommit ? { onCommit: options.onCommit } : {}),
      });
      return {
        metadata,
        store,
        openAccounts: () => (options.exclusive ? new SqliteAccountStore({ connection: metadata.connection }) : new SqliteAccountStore({ path })),
        ready: Promise.resolve(),
      };
    }
    case 'postgres': {
      // Each process (every worker, every replica) has a pool of its own; the schema is migrated
      // by the first to get the migration lock.
      const database = { ...config.metadata.postgres!, applicationName: `wharf ${hostname()} ${process.pid}` };
      const metadata = new PostgresMetadataStore({ ...database, ...(options.onCommit ? { onCommit: options.onCommit } : {}) });
      return { metadata, store, openAccounts: () => new PostgresAccountStore(database), ready: metadata.ready };
    }
  }
}

/**
 * The registry's listener with the web UI in front of it: paths under `ui.path` that are none of
 * the registry's endpoints (which always win) go to the UI.
 */
function withUi(app: (req: IncomingMessage, res: ServerResponse) => void, registry: Registry, config: WharfConfig, auth: Auth | undefined, log: Logger, mode: { readOnly: boolean }) {
  let sessionKeys: SessionKeys;
  try {
    sessionKeys = SessionKeys.load(`${config.storage.rootDirectory}/ui/session.key`);
  } catch (error) {
    log.warn({ err: error }, 'cannot keep the web UI session key in the storage root: sign-ins hold only on the process that made them');
    sessionKeys = SessionKeys.ephemeral();
  }
  const base = config.ui.path;
  const signaturePolicies = readSignaturePolicies(config);
  const ui = createUi(registry, { basePath: base, deleteEnabled: config.storage.deleteEnabled, readOnly: mode.readOnly, sessionKeys, log, signaturePolicies, ...(auth ? { auth } : {}) });
  const routeOptions = { ...(auth?.tokens ? { tokenPath: auth.tokens.route } : {}), admin: auth !== undefined };
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q >= 0 ? url.slice(0, q) : url;
    const method = req.method ?? 'GET';
    const forUi = (path.startsWith(base) || `${path}/` === base) && !/^\/(v1|v2)(\/|$)/.test(path) && !path.startsWith('/admin/') && matchRoute(path, routeOptions) === undefined;
    if (forUi && (method === 'GET' || method === 'HEAD' || method === 'POST')) {
      if (`${path}/` === base) {
        res.writeHead(308, { Location: base, 'Content-Length': 0 });
        res.end();
        return;
      }
      ui(req, res);
      return;
    }
    app(req, res);
  };
}

/** The storage driver configuration names (the filesystem today; S3 will be another). */
export function openStorageDriver(config: WharfConfig): StorageDriver {
  switch (config.storage.driver) {
    case 'filesystem':
      return new FilesystemDriver(config.storage.rootDirectory);
    case 's3': {
      const options = config.storage.s3!;
      return new DeferredDriver('s3', async () => new (await import('../storage/s3-driver.js')).S3Driver(options));
    }
  }
}

/** registry:2's lifetime for S3 presigned blob URLs. */
const REDIRECT_EXPIRY_SECONDS = 20 * 60;

/** How the storage is checked for /readyz and /debug/health: a file written under the root, or a listing of the bucket. */
function storageProbe(config: WharfConfig, driver: StorageDriver): () => Promise<void> {
  if (driver.probe) return () => driver.probe!();
  return () => probeWrite(config.storage.rootDirectory);
}

/** Builds the registry from configuration (or from stores already open): services over storage and metadata. */
export function createRegistry(
  config: WharfConfig,
  audit: AuditSink = NO_AUDIT,
  stores: Stores = openStores(config),
  events: NotificationWiring = {},
  scanning?: ScanWiring,
  log?: Logger,
  cache?: PullThroughCache,
): Registry {
  const { metadata, store } = stores;
  const { notifier, recorder } = events;
  const signaturePolicies = readSignaturePolicies(config);
  // The pull-through cache wraps the local services; pull policies (vulnerabilities, then
  // signatures) judge what either serves, first, so that a refused pull is not recorded as one;
  // notifications record what they let through, under the name asked.
  const wrap = (local: RegistryServices): RegistryServices => {
    const served = cache ? cache.wrap(local) : local;
    const guarded = signaturePolicyServices(withScanPolicies(served, scanning), signaturePolicies, {
      parents: metadata,
      ...(log ? { onWarning: (fields) => log.warn(fields, 'served a manifest that no trusted key signed (security.signatures warn mode)') } : {}),
    });
    return recorder ? recordingServices(guarded, recorder, { pulls: Notifier.wantsPulls(config.notifications.endpoints) }) : guarded;
  };
  return new Registry(metadata, store, {
    deleteEnabled: config.storage.deleteEnabled,
    historyRetentionMs: config.history.retentionMs,
    recordPulls: config.retention.recordPulls,
    pagination: { defaultCatalogPage: config.catalog.maxEntries },
    officialPrefixes: config.search.official,
    ...(config.storage.redirectDisabled ? {} : { blobRedirect: { expiresInSeconds: REDIRECT_EXPIRY_SECONDS } }),
    ...(audit !== NO_AUDIT ? { onEvent: (event) => audit.record({ event: event.action, ...event, action: undefined }) } : {}),
    ...(notifier ? { notifications: notifier } : {}),
    ...(recorder || scanning || cache || signaturePolicies.length > 0 ? { wrap } : {}),
  });
}

/** `security.signatures` with its key files read; a StartupError naming the entry when one is wrong. */
function readSignaturePolicies(config: WharfConfig) {
  try {
    return parseSignaturePolicies(config.security.signatures, (path) => {
      try {
        return readFileSync(path, 'utf8');
      } catch (error) {
        throw new Error(`cannot read the key file ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    });
  } catch (error) {
    throw new StartupError((error as Error).message);
  }
}

/** A serving process's part in notifications: its deliveries and its record of pulls. */
interface NotificationWiring {
  notifier?: Notifier;
  recorder?: PullRecorder;
}

/** How long a stopping process goes on delivering what is pending before it hands over. */
const NOTIFICATION_FLUSH_MS = 2_000;

/** The notifier and pull recorder when `notifications.endpoints` names any (none on a full disk). */
function createNotifications(config: WharfConfig, metadata: MetadataStore, log: Logger, metrics: ServerMetrics | undefined): NotificationWiring {
  const { endpoints, includeReferences } = config.notifications;
  if (endpoints.length === 0) return {};
  const scheme = config.http.tls ? 'https' : 'http';
  const host = config.http.host ?? hostname();
  const notifier = new Notifier(metadata, {
    endpoints,
    includeReferences,
    // Distribution's source: the machine and port, and an id for this process.
    source: { addr: `${hostname()}:${config.http.port}`, instanceID: randomUUID() },
    baseUrl: `${scheme}://${host.includes(':') ? `[${host}]` : host}:${config.http.port}`,
    log,
    ...(metrics ? { onOutcome: (endpoint: string, outcome: string, events: number) => metrics.notificationEvents.inc({ endpoint, outcome }, events) } : {}),
  });
  const recorder = new PullRecorder(metadata, (err, lost) => log.error({ err, lost }, 'pull and refusal events could not be recorded'));
  return { notifier, recorder };
}

/** Thrown when the configuration would hand out credentials unsafely. */
export class UnsafeConfigError extends Error {}

/** A reason the server cannot start that one line explains (no stack trace needed). */
export class StartupError extends Error {}

/** What must exist before anything is opened: a missing htpasswd file is a mistake, not an empty user list. */
function checkStartingPoint(config: WharfConfig): void {
  const htpasswd = config.auth?.htpasswd?.path;
  if (htpasswd !== undefined && !existsSync(htpasswd)) {
    throw new StartupError(
      `auth.htpasswd.path: ${htpasswd} does not exist; create it with "htpasswd -cB ${htpasswd} USER" (Debian package apache2-utils), ` +
        `or "touch ${htpasswd}" to start with no htpasswd users and add them later with "wharf user add"`,
    );
  }
}

/** The usual reasons a start fails (address taken, storage not writable) as one line; anything else as it is. */
function explainStartFailure(error: unknown, config: WharfConfig): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const address = `${config.http.host ?? ''}:${config.http.port}`;
  if (code === 'EADDRINUSE') {
    return new StartupError(`${address} is already in use (another registry running?); choose another address with --addr or http.addr`);
  }
  if (code === 'EACCES' && (error as { syscall?: string }).syscall === 'listen') {
    return new StartupError(`not allowed to listen on ${address} (ports below 1024 need privileges); choose another with --addr or http.addr`);
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    const path = (error as NodeJS.ErrnoException).path;
    // A file named in the configuration (a certificate, the htpasswd file) rather than the storage.
    if (path !== undefined && !path.startsWith(config.storage.rootDirectory)) return new StartupError(`cannot open ${path} (${code}): ${(error as Error).message}`);
    return new StartupError(
      `the storage root ${config.storage.rootDirectory} is not writable (${code}${path ? ` on ${path}` : ''}); ` +
        'give the user running wharf write access, or choose another with --data or storage.filesystem.rootdirectory',
    );
  }
  if (error instanceof DatabaseUnavailableError || (error as Error | undefined)?.message?.includes('is newer than this wharf')) {
    return new StartupError(`${(error as Error).message}; check the database section of the configuration (host, port, user, password, dbname, sslmode)`);
  }
  if (isSqliteAccessError(error)) {
    return new StartupError(
      `the metadata database ${config.metadata.sqlite.path} cannot be written (${(error as Error).message}); ` +
        'give the user running wharf write access to the storage root, or choose another with --data or storage.filesystem.rootdirectory',
    );
  }
  return error;
}

function isSqliteAccessError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY') || code === 'SQLITE_PERM');
}

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
  /** The disk was too full to open the database normally: pulls only, one process. */
  storageFull: boolean;
  /** This process's metrics; absent when Prometheus metrics are off. */
  metrics: ServerMetrics | undefined;
  reload(): void;
  /**
   * Writes the recorded pulls and delivers pending notifications (where this process delivers)
   * until caught up, a delivery fails, or `timeoutMs` passes: the outbox flush of a shutdown.
   */
  flushEvents(options: { timeoutMs: number }): Promise<void>;
  /** Closes what the stack opened, after the server has stopped. */
  dispose(): Promise<void>;
}

/** What a serving process is given by the one that started it. */
interface StackOptions {
  /** Where requests are charged against the rate limits (when `ratelimit` is on). */
  rateLimiter?: RateLimiter;
  /** Whether this process logs what every process notices alike (free space running low): the listening one does. */
  announce?: boolean;
}

async function createServingStack(config: WharfConfig, log: Logger, options: StackOptions = {}): Promise<ServingStack> {
  const audit: AuditSink = config.audit.enabled ? new AuditLog(config.audit.path) : NO_AUDIT;
  // What a feature that is off would load (prom-client, the pull-through cache's client, token
  // signing) is imported only when it is on: each serving process would carry its heap otherwise.
  const metrics = config.http.debug?.prometheus.enabled ? new (await import('./metrics.js')).ServerMetrics() : undefined;
  const { stores, storageFull } = openStoresForServing(config, log, metrics);
  try {
    await stores.ready;
  } catch (error) {
    await stores.metadata.close();
    throw error;
  }
  const events = storageFull ? {} : createNotifications(config, stores.metadata, log, metrics);
  let ingest: ((repository: string, digest: Digest, path: string) => Promise<void>) | undefined;
  const pullThrough = config.proxy ? await import('./pull-through.js') : undefined;
  const cache = config.proxy && pullThrough
    ? pullThrough.createPullThroughCache(config.proxy, {
        rootDirectory: config.storage.rootDirectory,
        metadata: stores.metadata,
        log,
        metrics,
        ingest: async (repository, digest, path) => {
          if (!ingest) throw new Error('the registry is not ready');
          await ingest(repository, digest, path);
        },
      })
    : undefined;
  // The listening process starts first: outages an earlier run told of are over as far as it knows.
  if (options.announce) cache?.forgetOutages();
  cache?.warmUp();
  const scanning = storageFull ? undefined : openScanning(config);
  const registry = createRegistry(config, audit, stores, events, scanning, log, cache);
  const scans = scanning ? await createScanService(registry, config, scanning, log) : undefined;
  ingest = async (repository, digest, path) => {
    await registry.localUploads.importFile(repository, digest, path);
  };
  // Each serving process writes the same rules; the store leaves them alone when they are current.
  if (!storageFull) {
    try {
      await registry.localTags.applyConfigRules(config.immutable.rules);
    } catch (error) {
      await registry.close();
      await audit.close();
      scanning?.index.close();
      throw error;
    }
  }
  const scanHandlers = scans ? await scanJobHandlers(registry.metadata, scans, config) : {};
  const jobs = storageFull || config.storage.readOnly ? undefined : startJobs(registry, config, log, metrics, events.recorder, scanHandlers);
  const room = new FreeSpaceWatch(config.storage.rootDirectory, {
    minimumBytes: config.storage.freeSpace.minimumBytes,
    intervalMs: config.storage.freeSpace.intervalMs,
    log,
    announce: options.announce ?? false,
    ...(metrics ? { onChange: (low: boolean) => metrics.storageReadOnly.set(low ? 1 : 0) } : {}),
  });
  await room.start();
  events.notifier?.start();
  let accounts: AccountStore | undefined;
  let auth: Auth | undefined;
  if (config.auth) {
    accounts = stores.openAccounts();
    try {
      const { createAuth } = await import('../auth/setup.js');
      auth = await createAuth(config.auth, { accounts, audit: metrics ? metrics.countingAuthFailures(audit) : audit, log, announce: options.announce === true });
    } catch (error) {
      room.stop();
      await jobs?.stop();
      await events.notifier?.stop();
      await accounts.close();
      await registry.close();
      await audit.close();
      scanning?.index.close();
      throw error;
    }
  }
  const admitted: Admission[] = config.rateLimit && options.rateLimiter ? [rateLimits(options.rateLimiter, metrics && ((family) => metrics.rateLimited.inc({ family })))] : [];
  const app = createApp(registry, {
    log,
    accessLog: config.log.accessLog,
    extraHeaders: config.http.headers,
    readOnly: storageFull ? 'storage-full' : config.storage.readOnly,
    storageRoom: () => room.refusalNow(),
    health: readinessProbes(storageProbe(config, registry.store.driver), registry.metadata, room),
    ...(metrics ? { observers: [metrics.observer()] } : {}),
    admitted,
    ...(cache && pullThrough ? { middleware: [pullThrough.mirrorNamespaces(cache)] } : {}),
    ...(auth ? { auth } : {}),
    ...(scans ? { scans } : {}),
  });
  const listener = config.ui.enabled ? withUi(app, registry, config, auth, log, { readOnly: storageFull || config.storage.readOnly }) : app;
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
        listener,
      )
    : createServer(serverOptions, listener);
  if (tls && tls.clientCas.length > 0 && tls.clientAuth === 'verify-client-cert-if-given') {
    // Node can ask for a certificate without demanding one only by accepting any certificate at
    // all (rejectUnauthorized: false). Go's VerifyClientCertIfGiven refuses one that does not
    // verify against clientcas: drop such a connection before it can send a request.
    server.prependListener('secureConnection', (socket: TLSSocket) => {
      if (socket.authorized || socket.getPeerX509Certificate() === undefined) return;
      log.info({ remote: socket.remoteAddress, reason: socket.authorizationError }, 'client certificate refused');
      socket.destroy();
    });
  }
  // A client that stops sending mid-body must not hold its connection (and upload) forever.
  server.setTimeout(SOCKET_IDLE_TIMEOUT_MS);
  return {
    server,
    tls: tls !== undefined,
    registry,
    storageFull,
    metrics,
    reload() {
      if (tls) (server as HttpsServer).setSecureContext(readTlsFiles(tls));
      auth?.reload();
    },
    flushEvents: (options) => flushEvents(events, options),
    async dispose() {
      room.stop();
      cache?.close();
      await jobs?.stop();
      await flushEvents(events, { timeoutMs: NOTIFICATION_FLUSH_MS });
      await events.notifier?.stop();
      await accounts?.close();
      await registry.close();
      await audit.close();
      scanning?.index.close();
    },
  };
}

/**
 * Opens the stores; on a disk too full for SQLite's shared-memory file (or any full-disk failure
 * while opening), opens them for this process alone instead, so that pulls keep working.
 */
function openStoresForServing(config: WharfConfig, log: Logger, metrics: ServerMetrics | undefined): { stores: Stores; storageFull: boolean } {
  const histogram = config.metadata.kind === 'postgres' ? metrics?.databaseTransactionSeconds : metrics?.commitSeconds;
  const onCommit = histogram ? (seconds: number) => histogram.observe(seconds) : undefined;
  const full = (err: unknown) =>
    log.error(
      { err, storage: config.storage.rootDirectory },
      'storage is full: serving pulls only, in one process; pushes get 507 STORAGE_FULL until space is freed and the registry restarted',
    );
  let stores: Stores;
  try {
    stores = openStores(config, onCommit ? { onCommit } : {});
  } catch (error) {
    if (!isStorageFull(error)) throw error;
    full(error);
    return { stores: openStores(config, { exclusive: true, ...(onCommit ? { onCommit } : {}) }), storageFull: true };
  }
  // SQLite opens on a full disk when its shared-memory file is still there from a previous run.
  if (config.storage.driver === 'filesystem' && !hasRoomToWrite(config.storage.rootDirectory, isStorageFull)) {
    full(new Error('ENOSPC: no space left to write a file under the storage root'));
    return { stores, storageFull: true };
  }
  return { stores, storageFull: false };
}

/**
 * Starts `wharf serve` and resolves once it is listening. With one worker, this process serves.
 * With more, it forks that many workers and serves nothing itself: it accepts every connection
 * and hands them round in turn, and watches the workers. (It serves only when no worker can: all
 * of them starting again or gone.) Every process runs background jobs (see startJobs).
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
  if (config.http.tls && allowsLegacyTls(config.http.tls)) {
    log.warn({ minimumtls: config.http.tls.minimumTls }, 'legacy TLS enabled: TLS 1.0/1.1 accepted, with OpenSSL security level 0 for this server');
  }
  const configQuotas = parseConfigQuotas(config.quotas);
  const configRetention = parseConfigRetentionPolicies([...((config.retention.policies as unknown[] | null) ?? []), ...(config.proxy ? (await import('./pull-through.js')).proxyTtlPolicies(config.proxy) : [])]);
  try {
    checkScanConfig(config);
  } catch (error) {
    throw error instanceof ScanConfigError ? new StartupError(error.message) : error;
  }
  readSignaturePolicies(config);
  // The rate limits' buckets live here, for this process and every worker.
  const buckets = config.rateLimit ? new TokenBuckets(config.rateLimit) : undefined;
  // Built here first: schema migrations and the token signing key exist before any worker starts.
  // With workers, it serves only the connections no worker could take.
  checkStartingPoint(config);
  let stack: ServingStack;
  try {
    stack = await createServingStack(config, log, { announce: true, ...(buckets ? { rateLimiter: buckets } : {}) });
  } catch (error) {
    throw explainStartFailure(error, config);
  }
  // Quotas are enforced from metadata (so API changes apply at once, in every process and
  // replica); the config file's rules replace the previous config-set ones at every start.
  if (!stack.storageFull) {
    try {
      await stack.registry.metadata.replaceConfigQuotas(configQuotas);
      await stack.registry.metadata.replaceConfigRetentionPolicies(configRetention);
    } catch (error) {
      await stack.dispose();
      throw error;
    }
  }
  try {
    await checkObjectStore(stack, config);
    await importDistributionStorageAtStart(stack, config, log);
  } catch (error) {
    await stack.dispose();
    throw error;
  }
  const serving = serve(stack, config);
  const target = { port: config.http.port, host: config.http.host };
  // A full disk leaves the database to this process alone (see openStoresForServing).
  const workers = stack.storageFull ? 1 : workerCount(config);
  if (!stack.storageFull && !config.storage.readOnly) {
    await scheduleRecurringJobs(stack.registry, config);
    await scheduleScanJobs(stack.registry.metadata, config);
  }
  if (workers === 1) {
    // Over TLS, connections come through `accept`, which answers plain HTTP as Go's server does.
    const listener = stack.tls ? createNetServer((socket) => serving.accept(socket)) : stack.server;
    try {
      await listen(listener, target);
    } catch (error) {
      await serving.close();
      throw explainStartFailure(error, config);
    }
    let debug: DebugServer | undefined;
    try {
      debug = await startDebugServer(config, stack, async () => []);
    } catch (error) {
      await serving.close();
      listener.close();
      throw error;
    }
    return running(stack, serving, listener, debug ? { after: () => debug.close(), debug: debug.address } : {});
  }
  // Connections are accepted without reading from them, so that any process can take them over.
  const acceptor = createNetServer({ pauseOnConnect: true });
  const pool = startWorkerPool(config, workers, log, (socket) => serving.accept(socket), buckets ? { takeRate: (charge) => buckets.takeNow(charge) } : {});
  // Until every worker is ready, connections wait, so that the first ones are shared out too.
  let waiting: Socket[] | undefined = [];
  acceptor.on('connection', (socket: Socket) => (waiting ? waiting.push(socket) : pool.dispatch(socket)));
  try {
    await listen(acceptor, target);
  } catch (error) {
    await Promise.all([pool.close(), serving.close()]);
    throw explainStartFailure(error, config);
  }
  await pool.started;
  for (const socket of waiting) pool.dispatch(socket);
  waiting = undefined;
  let debug: DebugServer | undefined;
  try {
    debug = await startDebugServer(config, stack, () => pool.snapshots());
  } catch (error) {
    acceptor.close();
    await Promise.all([pool.close(), serving.close()]);
    throw error;
  }
  return running(stack, serving, acceptor, { reload: () => pool.reload(), alongside: () => pool.close(), ...(debug ? { after: () => debug.close(), debug: debug.address } : {}) });
}

interface DebugServer {
  address: AddressInfo;
  close(): Promise<void>;
}

/**
 * registry:2's debug server, on `http.debug.addr`: `/debug/health` (the storage driver check)
 * and, when enabled, Prometheus metrics, this process's merged with every worker's. Plain HTTP,
 * for the operator's network only. Undefined when no address is configured.
 */
async function startDebugServer(config: WharfConfig, stack: ServingStack, workerSnapshots: () => Promise<MetricsSnapshot[]>): Promise<DebugServer | undefined> {
  const debug = config.http.debug;
  if (!debug) return undefined;
  const { Registry: MetricsRegistry } = await import('prom-client');
  const { aggregate, registerInventory, registerNotificationQueue } = await import('./metrics.js');
  const inventory = new MetricsRegistry();
  registerInventory(inventory, stack.registry.metadata);
  if (config.notifications.endpoints.length > 0) {
    registerNotificationQueue(inventory, async () => (await stack.registry.operations.notifications({})).endpoints);
  }
  const storageCheck = config.health.storageDriver.enabled
    ? new StorageDriverCheck(config.storage.driver === 's3' ? storageProbe(config, stack.registry.store.driver) : rootAccessProbe(config.storage.rootDirectory), { intervalMs: config.health.storageDriver.intervalMs, threshold: config.health.storageDriver.threshold })
    : undefined;
  storageCheck?.start();
  const answer = (res: ServerResponse, status: number, contentType: string, body: string) => {
    res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    res.end(body);
  };
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(res, 405, 'text/plain', 'method not allowed\n');
    if (path === '/debug/health') {
      const problem = storageCheck?.problem();
      // registry:2's shape: {} when healthy, each failing check by name otherwise.
      return problem === undefined
        ? answer(res, 200, 'application/json; charset=utf-8', '{}\n')
        : answer(res, 503, 'application/json; charset=utf-8', `${JSON.stringify({ [`storagedriver_${config.storage.driver}`]: problem })}\n`);
    }
    if (path === debug.prometheus.path && debug.prometheus.enabled && stack.metrics) {
      const own = stack.metrics;
      void Promise.all([own.snapshot(), inventory.getMetricsAsJSON(), workerSnapshots()])
        .then(([mine, held, theirs]) => aggregate([mine, held as MetricsSnapshot, ...theirs]))
        .then(
          ({ contentType, text }) => answer(res, 200, contentType, text),
          (error: unknown) => answer(res, 500, 'text/plain', `cannot collect metrics: ${(error as Error).message}\n`),
        );
      return;
    }
    answer(res, 404, 'text/plain', 'not found\n');
  });
  try {
    await listen(server, { host: debug.host, port: debug.port });
  } catch (error) {
    storageCheck?.stop();
    throw error;
  }
  return {
    address: server.address() as AddressInfo,
    async close() {
      storageCheck?.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** With S3, a bucket that is missing or refuses the credentials stops the start with one line, not every push later. */
async function checkObjectStore(stack: ServingStack, config: WharfConfig): Promise<void> {
  const driver = stack.registry.store.driver;
  if (!driver.probe || !config.storage.s3) return;
  const { bucket, endpoint } = config.storage.s3;
  try {
    await driver.probe();
  } catch (error) {
    const reason = (error as { name?: string }).name === 'NoSuchBucket' ? 'the bucket does not exist' : (error as Error).message || (error as Error).name;
    throw new StartupError(`storage.s3: cannot list bucket ${bucket}${endpoint ? ` at ${endpoint}` : ''}: ${reason}; check storage.s3.bucket, the endpoint and the credentials`);
  }
}

/**
 * On the first start over a registry:2 storage root (docker/registry/v2 under the storage root,
 * and metadata still empty), imports it before serving, so that its images are served rather
 * than an empty catalog; an interrupted import resumes at the next start. Runs in the first
 * process only, before any worker starts.
 */
async function importDistributionStorageAtStart(stack: ServingStack, config: WharfConfig, log: Logger): Promise<void> {
  if (config.storage.driver !== 'filesystem') return;
  const source = findDistributionStorage(config.storage.rootDirectory);
  if (!source) return;
  const metadata = stack.registry.metadata;
  const previous = await metadata.getStorageImport(source);
  if (previous?.finishedAt !== undefined) return;
  if (!previous && !(await isMetadataEmpty(metadata))) {
    log.warn({ source }, 'the storage root also holds registry:2 storage that was never imported; import it with: wharf migrate ' + config.storage.rootDirectory);
    return;
  }
  if (stack.storageFull || config.storage.readOnly) {
    throw new StartupError(
      `the storage root holds registry:2 storage (${source}) that is not imported yet, and ${stack.storageFull ? 'the disk is full' : 'storage.maintenance.readonly is on'}: ` +
        `import it first with: wharf migrate ${config.storage.rootDirectory}`,
    );
  }
  log.info({ source, resuming: previous !== undefined }, 'importing registry:2 storage found under the storage root (one time; bytes are hard-linked, not copied)');
  const report = await importDistributionStorage(stack.registry, source, {
    onEvent: (event) => {
      if (event.kind === 'repository') log.info({ repository: event.repository, blobs: event.blobs, manifests: event.manifests, tags: event.tags }, 'imported repository');
      else if (event.kind === 'problem') log.warn({ repository: event.repository, item: event.item, problem: event.problem }, 'cannot import');
    },
  });
  const { problems, ...counts } = report;
  log.info({ ...counts, problems: problems.length }, 'registry:2 storage imported');
}

/**
 * In a worker process: builds a serving stack that takes the connections the parent hands over
 * (see worker-pool.ts). Resolves once it can serve them.
 */
export async function prepareWorker(config: WharfConfig, log: Logger, options: StackOptions = {}): Promise<ServingProcess> {
  return serve(await createServingStack(config, log, options), config);
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
  /** This process's metrics (none when Prometheus metrics are off). */
  metrics(): Promise<MetricsSnapshot>;
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
      if (stack.tls) {
        startTlsOrRefusePlainHttp(socket, () => server.emit('connection', socket));
        return;
      }
      server.emit('connection', socket);
      // Accepted paused (pauseOnConnect): start reading now that the server listens for data.
      if (socket.isPaused()) socket.resume();
    },
    reload: () => stack.reload(),
    metrics: async () => (stack.metrics ? stack.metrics.snapshot() : []),
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

/** Every TLS connection starts with a handshake record, whose first byte is this content type. */
const TLS_HANDSHAKE_RECORD = 0x16;
/** Go's net/http answer to plain HTTP on a TLS port, byte for byte, which clients and operators recognise. */
const PLAIN_HTTP_TO_TLS_ANSWER = 'HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n';
/** A connection that sends nothing at all is dropped after this long (as the HTTP server's headersTimeout). */
const FIRST_BYTE_TIMEOUT_MS = 60_000;

/**
 * Reads the connection's first bytes: a TLS handshake goes on to `startTls` (the bytes are put
 * back, and the TLS socket replays them); plain HTTP gets Go's 400 answer; anything else is
 * dropped.
 */
function startTlsOrRefusePlainHttp(socket: Socket, startTls: () => void): void {
  const drop = () => socket.destroy();
  socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, drop);
  socket.once('error', drop);
  socket.once('data', (chunk: Buffer) => {
    socket.pause();
    socket.setTimeout(0);
    socket.off('timeout', drop);
    socket.off('error', drop);
    if (chunk[0] === TLS_HANDSHAKE_RECORD) {
      socket.unshift(chunk);
      startTls();
    } else if (/^[A-Z]{3,7} /.test(chunk.subarray(0, 8).toString('latin1'))) {
      socket.end(PLAIN_HTTP_TO_TLS_ANSWER);
    } else {
      socket.destroy();
    }
  });
  socket.resume();
}

/**
 * The running server: `close` stops `listener` accepting, then drains this process's connections
 * and, `alongside`, whatever else serves (the workers).
 */
function running(
  stack: ServingStack,
  serving: ServingProcess,
  listener: NetServer,
  hooks: { reload?: () => void; alongside?: () => Promise<void>; after?: () => Promise<void>; debug?: AddressInfo },
): RunningServer {
  return {
    server: stack.server,
    registry: stack.registry,
    address: listener.address() as AddressInfo,
    ...(hooks.debug ? { debugAddress: hooks.debug } : {}),
    reload() {
      serving.reload();
      hooks.reload?.();
    },
    async close() {
      listener.close();
      await Promise.all([serving.close(), hooks.alongside?.()]);
      await hooks.after?.();
    },
  };
}

async function flushEvents(events: NotificationWiring, options: { timeoutMs: number }): Promise<void> {
  await events.recorder?.flush();
  await events.notifier?.flush(options);
}

/** The job that removes abandoned upload sessions (registry:2's storage.maintenance.uploadpurging). */
const UPLOAD_PURGE_JOB = 'uploads.purge';
/** registry:2 purges for the first time a while after start (or after one interval, if shorter). */
const FIRST_PURGE_DELAY_MS = 60_000;

/**
 * This process's runner of background jobs. Every serving process runs one; the job queue's
 * leases make sure that each run of a job happens in exactly one of them (or one replica).
 */
function startJobs(
  registry: Registry,
  config: WharfConfig,
  log: Logger,
  metrics: ServerMetrics | undefined,
  recorder: PullRecorder | undefined,
  extraHandlers: Record<string, JobHandler> = {},
): JobRunner {
  const purging = config.storage.uploadPurging;
  const handlers: Record<string, JobHandler> = { ...extraHandlers };
  if (purging.enabled) {
    handlers[UPLOAD_PURGE_JOB] = async () => {
      const purged = await registry.localUploads.purgeStale(Date.now() - purging.ageMs, { dryRun: purging.dryRun });
      if (purged.sessions + purged.orphans > 0) {
        log.info({ ...purged, dryRun: purging.dryRun }, purging.dryRun ? 'abandoned uploads found (dry run: nothing removed)' : 'purged abandoned uploads');
      }
    };
  }
  const gc = config.storage.gc;
  if (gc.enabled) {
    handlers[GC_JOB] = async ({ signal }) => {
      try {
        const report = await collectGarbage(registry.metadata, registry.store, {
          dryRun: false,
          deleteUntagged: gc.deleteUntagged,
          signal,
          ...gcSettings(config, registry),
        });
        log.info(
          { deleted: report.deleted, rescued: report.rescued, young: report.young, bytesFreed: report.bytesFreed, durationMs: report.durationMs },
          'garbage collection finished',
        );
        metrics?.gcRuns.inc({ outcome: 'finished' });
        metrics?.gcBytesFreed.inc(report.bytesFreed);
        const { blobs, manifests, repositories } = report.deleted;
        recorder?.record({ action: 'gc.collect', deleted: { blobs, manifests, repositories }, bytesFreed: report.bytesFreed, durationMs: report.durationMs });
      } catch (error) {
        // `wharf garbage-collect` is at work: this run has nothing to add.
        if (isRegistryError(error) && error.code === 'UNAVAILABLE' && signal.aborted === false) {
          log.info({ reason: error.message }, 'garbage collection skipped');
          metrics?.gcRuns.inc({ outcome: 'skipped' });
          return;
        }
        metrics?.gcRuns.inc({ outcome: 'failed' });
        throw error;
      }
    };
  }
  const retention = config.retention;
  if (retention.intervalMs > 0) {
    handlers[RETENTION_JOB] = async ({ signal }) => {
      const report = await registry.localRetention.run({ dryRun: retention.dryRun, signal });
      if (report.repositories.length === 0) return;
      log.info(
        { ...report.totals, dryRun: report.dryRun, durationMs: report.durationMs },
        retention.dryRun ? 'retention dry run: nothing removed (see wharf policy retention run --dry-run)' : 'retention applied',
      );
    };
  }
  const runner = new JobRunner(registry.metadata, {
    handlers,
    onError: (error, job) => log.error({ err: error, job: job?.kind, jobId: job?.id }, job ? 'background job failed' : 'cannot reach the job queue'),
  });
  runner.start();
  return runner;
}

/** The scheduled garbage collection (storage.gc). */
const GC_JOB = 'gc.collect';
/** The scheduled run of the retention policies (retention.interval). */
const RETENTION_JOB = 'retention.apply';

/** Puts the recurring jobs that configuration asks for on the queue (once for all processes). */
async function scheduleRecurringJobs(registry: Registry, config: WharfConfig): Promise<void> {
  const gc = config.storage.gc;
  if (gc.enabled) {
    const every = Math.max(gc.intervalMs, 1000);
    await registry.metadata.enqueueJob({ kind: GC_JOB, key: GC_JOB, repeatMs: every, runAt: Date.now() + every });
  }
  if (config.retention.intervalMs > 0) {
    const every = Math.max(config.retention.intervalMs, 1000);
    await registry.metadata.enqueueJob({ kind: RETENTION_JOB, key: RETENTION_JOB, repeatMs: every, runAt: Date.now() + every });
  }
  const purging = config.storage.uploadPurging;
  if (purging.enabled) {
    const every = Math.max(purging.intervalMs, 1000);
    await registry.metadata.enqueueJob({ kind: UPLOAD_PURGE_JOB, key: UPLOAD_PURGE_JOB, repeatMs: every, runAt: Date.now() + Math.min(FIRST_PURGE_DELAY_MS, every) });
  }
}

/** What a collection takes from configuration (the same for the CLI and the scheduled job). */
export function gcSettings(config: WharfConfig, registry: Registry): Pick<CollectionOptions, 'delayMs' | 'historyRetentionMs' | 'purgeUploads'> {
  const purging = config.storage.uploadPurging;
  const settings = { delayMs: config.storage.gc.delayMs, historyRetentionMs: config.history.retentionMs };
  if (!purging.enabled) return settings;
  return {
    ...settings,
    purgeUploads: ({ dryRun }) => registry.localUploads.purgeStale(Date.now() - purging.ageMs, { dryRun: dryRun || purging.dryRun }),
  };
}
