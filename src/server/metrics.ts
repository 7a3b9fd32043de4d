import type { Socket } from 'node:net';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, type Metric, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { AuditEntry, AuditSink } from '../auth/audit-log.js';
import type { Middleware } from '../http/app.js';
import type { Route } from '../http/router.js';
import type { MetadataStore } from '../metadata/metadata-store.js';

/** A scrape's worth of one process's series, as prom-client exchanges them between processes. */
export type MetricsSnapshot = MetricObjectWithValues<MetricValue<string>>[];

/** Request durations from a cached HEAD (well under a millisecond) to a large blob (minutes). */
const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** Group commits: one WAL fsync, or a wait for another process's write lock. */
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

/**
 * One process's metrics. Every serving process has its own; the process that listens merges
 * them at each scrape (see `aggregate`), so counters are totals over the worker processes.
 * Features that come later (notifications) add series with `register`.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'wharf_http_requests_total',
    help: 'Requests answered, by route family, method and status.',
    labelNames: ['family', 'method', 'status'] as const,
    registers: [this.registry],
  });
  readonly requestSeconds = new Histogram({
    name: 'wharf_http_request_duration_seconds',
    help: 'Time from a request arriving to its response being sent, by route family, method and status.',
    labelNames: ['family', 'method', 'status'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });
  readonly bytesReceived = new Counter({
    name: 'wharf_http_received_bytes_total',
    help: 'Bytes read from clients (headers and bodies), by route family.',
    labelNames: ['family'] as const,
    registers: [this.registry],
  });
  readonly bytesSent = new Counter({
    name: 'wharf_http_sent_bytes_total',
    help: 'Bytes written to clients (headers and bodies), by route family.',
    labelNames: ['family'] as const,
    registers: [this.registry],
  });
  readonly uploadsInProgress = new Gauge({
    name: 'wharf_uploads_in_progress',
    help: 'Upload requests (POST, PATCH, PUT of blob data) being received now.',
    registers: [this.registry],
  });
  readonly commitSeconds = new Histogram({
    name: 'wharf_sqlite_commit_duration_seconds',
    help: 'Time each SQLite group commit held the write lock, from BEGIN to a durable COMMIT.',
    buckets: COMMIT_BUCKETS,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'wharf_auth_failures_total',
    help: 'Failed sign-ins and refused tokens, by kind (login, token, refresh) and reason.',
    labelNames: ['kind', 'reason'] as const,
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'wharf_rate_limited_total',
    help: 'Requests refused with 429 TOOMANYREQUESTS, by route family.',
    labelNames: ['family'] as const,
    registers: [this.registry],
  });
  readonly storageReadOnly = new Gauge({
    name: 'wharf_storage_read_only',
    help: '1 while pushes are refused because free space is below storage.freespace.minimum.',
    registers: [this.registry],
    aggregator: 'max',
  });
  readonly gcRuns = new Counter({
    name: 'wharf_gc_runs_total',
    help: 'Scheduled garbage collections, by outcome (finished, skipped, failed).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly gcBytesFreed = new Counter({
    name: 'wharf_gc_freed_bytes_total',
    help: 'Blob bytes deleted by scheduled garbage collections.',
    registers: [this.registry],
  });

  /** Adds a feature's own series to this process's scrapes. */
  register(metric: Metric): void {
    this.registry.registerMetric(metric);
  }

  /** This process's series, to hand to the process that answers scrapes. */
  snapshot(): Promise<MetricsSnapshot> {
    return this.registry.getMetricsAsJSON();
  }

  /** Counts the audit log's failures (whether or not the audit log itself is on), then passes them on. */
  countingAuthFailures(audit: AuditSink): AuditSink {
    return {
      record: (entry: AuditEntry) => {
        if (entry.outcome === 'failure') this.authFailures.inc({ kind: String(entry.event), reason: typeof entry.reason === 'string' ? entry.reason : 'refused' });
        audit.record(entry);
      },
      close: () => audit.close(),
    };
  }

  /**
   * Times and counts every routed request, with the bytes its connection carried. Requests on
   * one connection follow each other, so each is charged what the connection read and wrote
   * since the previous one ended (its headers and the start of its body were read before any
   * code saw the request).
   */
  middleware(): Middleware {
    const counted = new WeakMap<Socket, { read: number; written: number }>();
    // prom-client hashes a label set on every call; the series seen so far are kept by key instead.
    const series = new Map<string, { requests: Counter.Internal; seconds: Histogram.Internal<string> }>();
    const families = new Map<string, { received: Counter.Internal; sent: Counter.Internal }>();
    const seriesOf = (family: string, method: string, status: string) => {
      const key = `${family} ${method} ${status}`;
      let found = series.get(key);
      if (!found) {
        found = { requests: this.requests.labels(family, method, status), seconds: this.requestSeconds.labels(family, method, status) };
        series.set(key, found);
      }
      return found;
    };
    const bytesOf = (family: string) => {
      let found = families.get(family);
      if (!found) {
        found = { received: this.bytesReceived.labels(family), sent: this.bytesSent.labels(family) };
        families.set(family, found);
      }
      return found;
    };
    return async (ex, next) => {
      const { req, res } = ex;
      const family = routeFamily(ex.route);
      const socket = req.socket;
      const started = performance.now();
      const uploading = family === 'upload' && req.method !== 'GET' && req.method !== 'DELETE';
      if (uploading) this.uploadsInProgress.inc();
      res.once('close', () => {
        if (uploading) this.uploadsInProgress.dec();
        const one = seriesOf(family, req.method ?? '', String(res.writableFinished ? res.statusCode : 499));
        one.requests.inc();
        one.seconds.observe((performance.now() - started) / 1000);
        const before = counted.get(socket) ?? { read: 0, written: 0 };
        const now = { read: socket.bytesRead, written: socket.bytesWritten };
        counted.set(socket, now);
        const bytes = bytesOf(family);
        bytes.received.inc(Math.max(0, now.read - before.read));
        bytes.sent.inc(Math.max(0, now.written - before.written));
      });
      await next();
    };
  }
}

/** Routes grouped the way operators read them: the admin API as one family, upload steps as one. */
export function routeFamily(route: Route): string {
  if (route.kind.startsWith('admin.')) return 'admin';
  if (route.kind === 'uploads') return 'upload';
  if (route.kind.startsWith('tag.')) return 'tag.history';
  return route.kind;
}

/**
 * Series about what the registry holds, read from metadata at scrape time. Registered in the
 * process that answers scrapes only: every process reads the same database, and summing their
 * answers would count everything once per process.
 */
export function registerInventory(registry: Registry, metadata: Pick<MetadataStore, 'inventory'>): void {
  let pending: ReturnType<MetadataStore['inventory']> | undefined;
  // One read per scrape, shared by the four gauges.
  const read = () => (pending ??= metadata.inventory().finally(() => setImmediate(() => (pending = undefined))));
  const gauge = (name: string, help: string, pick: (inventory: Awaited<ReturnType<MetadataStore['inventory']>>) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set(pick(await read()));
      },
    });
  gauge('wharf_repositories', 'Repositories in the registry.', (i) => i.repositories);
  gauge('wharf_manifests', 'Manifests stored, counted once per repository that holds them.', (i) => i.manifests);
  gauge('wharf_blobs', 'Blobs present in storage (each stored once for the whole registry).', (i) => i.blobs);
  gauge('wharf_blob_bytes', 'Bytes of the blobs present in storage.', (i) => i.blobBytes);
}

/** Merges the snapshots of every process into one Prometheus text page. */
export async function aggregate(snapshots: MetricsSnapshot[]): Promise<{ contentType: string; text: string }> {
  const merged = AggregatorRegistry.aggregate(snapshots);
  return { contentType: merged.contentType, text: await merged.metrics() };
}
