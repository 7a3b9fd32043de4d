import type { Socket } from 'node:net';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, type Metric, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { AuditEntry, AuditSink } from '../auth/audit-log.js';
import type { Exchange } from '../http/exchange.js';
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
  /** Request series, counted in plain numbers on the hot path and read out at scrape time. */
  private readonly requestTally = new HistogramTally(
    'wharf_http_request_duration_seconds',
    'Time from a request arriving to its response being sent, by route family, method and status.',
    ['family', 'method', 'status'],
    REQUEST_BUCKETS,
  );
  private readonly receivedTally = new CounterTally('wharf_http_received_bytes_total', 'Bytes read from clients (headers and bodies), by route family.', ['family']);
  private readonly sentTally = new CounterTally('wharf_http_sent_bytes_total', 'Bytes written to clients (headers and bodies), by route family.', ['family']);
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
  readonly databaseTransactionSeconds = new Histogram({
    name: 'wharf_postgres_transaction_duration_seconds',
    help: 'Time each PostgreSQL metadata write transaction took, from BEGIN to COMMIT (database.enabled).',
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
  readonly notificationEvents = new Counter({
    name: 'wharf_notification_events_total',
    help: 'Notification events sent to each endpoint, by outcome: delivered, failed (retried later) or parked.',
    labelNames: ['endpoint', 'outcome'],
    registers: [this.registry],
  });
  readonly gcBytesFreed = new Counter({
    name: 'wharf_gc_freed_bytes_total',
    help: 'Blob bytes deleted by scheduled garbage collections.',
    registers: [this.registry],
  });

  constructor() {
    for (const tally of [this.requestTally.counter('wharf_http_requests_total', 'Requests answered, by route family, method and status.'), this.requestTally, this.receivedTally, this.sentTally]) {
      this.registry.registerMetric(tally as unknown as Metric);
    }
  }

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
   * code saw the request). An observer, not a middleware: it only watches, so it costs no
   * promise per request.
   */
  observer(): (exchange: Exchange) => void {
    const counted = new WeakMap<Socket, { read: number; written: number }>();
    return (ex) => {
      const { req, res } = ex;
      const family = routeFamily(ex.route);
      const socket = req.socket;
      const started = performance.now();
      const uploading = family === 'upload' && req.method !== 'GET' && req.method !== 'DELETE';
      if (uploading) this.uploadsInProgress.inc();
      res.once('close', () => {
        if (uploading) this.uploadsInProgress.dec();
        const status = res.writableFinished ? res.statusCode : 499;
        this.requestTally.observe([family, req.method ?? '', String(status)], (performance.now() - started) / 1000);
        const before = counted.get(socket) ?? { read: 0, written: 0 };
        const now = { read: socket.bytesRead, written: socket.bytesWritten };
        counted.set(socket, now);
        this.receivedTally.add([family], Math.max(0, now.read - before.read));
        this.sentTally.add([family], Math.max(0, now.written - before.written));
      });
    };
  }
}

/** One metric as a prom-client registry reads it from `get()`, and as processes exchange it. */
interface MetricJson {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
}

/**
 * A counter kept as plain numbers by label values, read out by prom-client at scrape time: a
 * Map lookup per request where prom-client's own Counter hashes the label object every time.
 */
class CounterTally {
  readonly type = 'counter' as const;
  readonly aggregator = 'sum' as const;
  private readonly series = new Map<string, { labels: Record<string, string>; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
  ) {}

  add(values: readonly string[], amount: number): void {
    const key = values.join('\n');
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!])), value: 0 };
      this.series.set(key, entry);
    }
    entry.value += amount;
  }

  get(): MetricJson {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [...this.series.values()].map(({ labels, value }) => ({ labels, value })) };
  }

  reset(): void {
    this.series.clear();
  }
}

/** A histogram kept the same way: per series, a count per bucket, the sum and the count. */
class HistogramTally {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  private readonly series = new Map<string, { labels: Record<string, string>; buckets: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly bounds: readonly number[],
  ) {}

  observe(values: readonly string[], value: number): void {
    const key = values.join('\n');
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!])), buckets: this.bounds.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, entry);
    }
    const at = this.bounds.findIndex((bound) => value <= bound);
    if (at >= 0) entry.buckets[at]! += 1;
    entry.sum += value;
    entry.count += 1;
  }

  /** The series' counts alone, as a counter of their own (`wharf_http_requests_total`). */
  counter(name: string, help: string): { name: string; help: string; get(): MetricJson; reset(): void } {
    return {
      name,
      help,
      get: () => ({ name, help, type: 'counter', aggregator: 'sum', values: [...this.series.values()].map(({ labels, count }) => ({ labels, value: count })) }),
      reset: () => {},
    };
  }

  get(): MetricJson {
    const values: MetricJson['values'] = [];
    for (const { labels, buckets, sum, count } of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += buckets[i]!;
        values.push({ labels: { le: bound, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
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

/**
 * Each notification endpoint's line: outbox entries after its position and parked entries, read
 * from metadata at scrape time (so one process reports them for all).
 */
export function registerNotificationQueue(registry: Registry, report: () => Promise<Array<{ name: string; pending: number; parked: number }>>): void {
  let pending: ReturnType<typeof report> | undefined;
  const read = () => (pending ??= report().finally(() => setImmediate(() => (pending = undefined))));
  const gauge = (name: string, help: string, pick: (endpoint: { pending: number; parked: number }) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['endpoint'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const endpoint of await read()) this.set({ endpoint: endpoint.name }, pick(endpoint));
      },
    });
  gauge('wharf_notification_pending', 'Outbox entries an endpoint has not been sent yet (some may not concern it).', (e) => e.pending);
  gauge('wharf_notification_parked', 'Entries parked for an endpoint after their attempts, until replayed.', (e) => e.parked);
}

/** Merges the snapshots of every process into one Prometheus text page. */
export async function aggregate(snapshots: MetricsSnapshot[]): Promise<{ contentType: string; text: string }> {
  const merged = AggregatorRegistry.aggregate(snapshots);
  return { contentType: merged.contentType, text: await merged.metrics() };
}
