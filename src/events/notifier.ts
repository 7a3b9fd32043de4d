import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChangeReference, DeliveryStatus, MetadataStore, OutboxEntry, ParkedEvent } from '../metadata/metadata-store.js';
import { manifestReferences, parseManifest } from '../oci/manifest.js';
import type { EndpointReport, NotificationAdmin } from '../registry/services.js';
import { encodeBody, renderEntry, signBody, wanted, type NotificationEvent, type RenderOptions } from './notification-event.js';

/** One webhook endpoint (config.ts's `notifications.endpoints[]`, typed there). */
export interface NotificationEndpoint {
  name: string;
  url: string;
  headers: Record<string, string[]>;
  timeoutMs: number;
  threshold: number;
  backoffMs: number;
  disabled: boolean;
  ignoredMediaTypes: string[];
  ignoredActions: string[];
  maxAttempts: number;
  format: 'distribution' | 'cloudevents';
  secret?: string;
  signatureHeader: string;
}

/** Where the notifier reports; it never logs a secret or a body. */
export interface NotifierLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
}

export interface NotifierOptions {
  endpoints: readonly NotificationEndpoint[];
  includeReferences: boolean;
  /** Distribution's `source` block: this registry's address and this process's instance id. */
  source: { addr: string; instanceID: string };
  baseUrl: string;
  log?: NotifierLog;
  /** How often the delivering process looks for new entries. */
  pollMs?: number;
  /** Outbox entries per request when all is well (after a failure, one at a time). */
  batchSize?: number;
  /** Told of each send's outcome with the events it carried (for metrics). */
  onOutcome?: (endpoint: string, outcome: DeliveryOutcome, events: number) => void;
}

/** What became of a request to an endpoint: sent, failed (to be retried), or its entry parked. */
export type DeliveryOutcome = 'delivered' | 'failed' | 'parked';

const LEASE_MIN_MS = 15_000;
const PRUNE_EVERY_MS = 60_000;
const PARKED_SHOWN = 1000;
/** How long a delivery that emptied the line waits before the next request. */
const GATHER_MS = 100;
/** Events in one request at most, unless one outbox entry alone holds more. */
const MAX_EVENTS = 1000;

/**
 * Delivers the outbox to each configured endpoint, in outbox order, from a position kept in the
 * metadata store: so deliveries survive restarts, and a crash between a send and the advance of
 * the position sends again, with the same event ids (at least once). Every serving process runs a
 * Notifier; per endpoint, the one holding the lease `notifications/NAME` delivers and the others
 * wait for the lease to fall free, so two processes never deliver the same entries. After
 * `threshold` failures in a row the endpoint waits `backoff` between attempts; after `maxattempts`
 * the entry is parked (kept aside for `wharf admin events replay`) and delivery goes on.
 */
export class Notifier implements NotificationAdmin {
  private readonly owner = `${process.pid}-${randomBytes(6).toString('hex')}`;
  private readonly stopping = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly deliveries: EndpointDelivery[];

  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: NotifierOptions,
  ) {
    this.deliveries = options.endpoints.filter((e) => !e.disabled).map((endpoint) => new EndpointDelivery(metadata, endpoint, options, this.owner));
  }

  /** Whether some endpoint listens to pulls (otherwise pulls need not be recorded at all). */
  static wantsPulls(endpoints: readonly NotificationEndpoint[]): boolean {
    return endpoints.some((e) => !e.disabled && !e.ignoredActions.includes('pull'));
  }

  start(): void {
    for (const delivery of this.deliveries) this.loops.push(delivery.run(this.stopping.signal, this.options.pollMs ?? 200));
  }

  /**
   * Delivers what is pending now, for the endpoints this process delivers to, until each is
   * caught up, fails, or `timeoutMs` passes (for a shutdown: call before stop).
   */
  async flush(options: { timeoutMs: number }): Promise<void> {
    const deadline = Date.now() + options.timeoutMs;
    await Promise.all(this.deliveries.map((delivery) => delivery.drain(deadline)));
  }

  /** Stops delivering and gives the leases up, so that another process takes over at once. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await Promise.all(this.loops);
    await Promise.all(this.deliveries.map((delivery) => delivery.release()));
  }

  /** Every configured endpoint's state, read from the metadata store (so any process can answer). */
  async report(): Promise<EndpointReport[]> {
    const parked = await this.metadata.listParkedEvents({ limit: Number.MAX_SAFE_INTEGER });
    return Promise.all(
      this.options.endpoints.map(async (endpoint): Promise<EndpointReport> => {
        const position = await this.metadata.consumerPosition(consumerName(endpoint.name));
        const status = await this.metadata.getDeliveryStatus(endpoint.name);
        return {
          name: endpoint.name,
          url: redactUrl(endpoint.url),
          disabled: endpoint.disabled,
          position,
          pending: await this.metadata.countOutbox(position),
          attempts: status?.attempts ?? 0,
          ...(status ? { nextAttemptAt: status.nextAttemptAt } : {}),
          ...(status?.lastError !== undefined ? { lastError: status.lastError } : {}),
          parked: parked.filter((p) => p.endpoint === endpoint.name).length,
        };
      }),
    );
  }

  /** Parked entries with the events they stand for, of one endpoint or all. */
  async parked(endpoint?: string): Promise<Array<ParkedEvent & { events: NotificationEvent[] }>> {
    const rows = await this.metadata.listParkedEvents({ ...(endpoint !== undefined ? { endpoint } : {}), limit: PARKED_SHOWN });
    return rows.map((row) => ({ ...row, events: renderEntry(row.entry, this.renderOptions(row.endpoint)) }));
  }

  /** Puts parked entries back in line; undefined when no endpoint has that name. */
  async replay(endpoint: string, ids?: readonly number[]): Promise<number | undefined> {
    if (!this.options.endpoints.some((e) => e.name === endpoint)) return undefined;
    return this.metadata.replayParkedEvents(endpoint, ids ? { ids } : {});
  }

  private renderOptions(endpoint: string): RenderOptions {
    return { source: this.options.source, includeReferences: this.options.includeReferences, baseUrl: this.options.baseUrl, endpoint };
  }
}

/** The outbox consumer that keeps an endpoint's position. */
export function consumerName(endpoint: string): string {
  return `notifications/${endpoint}`;
}

/** An endpoint's URL without credentials in it, for reports. */
function redactUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.username || parsed.password) {
    parsed.username = '';
    parsed.password = '';
  }
  return parsed.href;
}

/** Deliveries to one endpoint from this process, one step at a time. */
class EndpointDelivery {
  private readonly consumer: string;
  private readonly lease: string;
  private readonly leaseMs: number;
  private heldUntil = 0;
  private renewAt = 0;
  /** When another process holds the lease: not worth asking before then. */
  private waitUntil = 0;
  private lastPrune = 0;
  /** Steps run one after another even when a flush and the loop both ask. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly metadata: MetadataStore,
    private readonly endpoint: NotificationEndpoint,
    private readonly options: NotifierOptions,
    private readonly owner: string,
  ) {
    this.consumer = consumerName(endpoint.name);
    this.lease = `notifications/${endpoint.name}`;
    this.leaseMs = Math.max(LEASE_MIN_MS, endpoint.timeoutMs * 3);
  }

  async run(signal: AbortSignal, pollMs: number): Promise<void> {
    while (!signal.aborted) {
      let delay = pollMs;
      try {
        const outcome = await this.serial(() => this.step());
        if (outcome === 'more') delay = 0;
        else if (typeof outcome === 'number') delay = Math.max(0, Math.min(outcome - Date.now(), pollMs * 5));
      } catch (error) {
        // The store is busy or unavailable: try again at the next poll.
        this.options.log?.warn({ endpoint: this.endpoint.name, err: error }, 'notification delivery could not run');
      }
      if (delay > 0) await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
  }

  async drain(deadline: number): Promise<void> {
    while (Date.now() < deadline) {
      const outcome = await this.serial(() => this.step()).catch(() => 'idle' as const);
      if (outcome !== 'more') return;
    }
  }

  async release(): Promise<void> {
    if (this.heldUntil > Date.now()) await this.metadata.releaseLease(this.lease, this.owner).catch(() => false);
    this.heldUntil = 0;
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * One delivery attempt: `more` when it made progress (or should retry at once), `idle` when
   * there is nothing to do, or the time before which there is no point trying.
   */
  private async step(): Promise<'more' | 'idle' | number> {
    if (!(await this.holdLease())) return this.waitUntil;
    const now = Date.now();
    const status = await this.metadata.getDeliveryStatus(this.endpoint.name);
    if (status && status.nextAttemptAt > now) return status.nextAttemptAt;
    const position = await this.metadata.ensureConsumer(this.consumer);
    await this.prune(position);
    const batchSize = status ? 1 : (this.options.batchSize ?? 500);
    const read = await this.metadata.readOutbox(position, batchSize);
    if (read.length === 0) return 'idle';
    // Whole entries, up to MAX_EVENTS events a request (a batch of pulls may hold hundreds).
    const rendered = await this.render(read);
    const events: NotificationEvent[] = [];
    let taken = 0;
    while (taken < read.length && (taken === 0 || events.length + rendered[taken]!.length <= MAX_EVENTS)) events.push(...rendered[taken++]!);
    const entries = read.slice(0, taken);
    const full = taken < read.length || read.length >= batchSize;
    const last = entries[entries.length - 1]!.id;
    if (events.length === 0) {
      await this.metadata.advanceConsumer(this.consumer, position, last);
      return 'more';
    }
    // A send must end before the lease could pass to another process.
    if (this.heldUntil - Date.now() < this.endpoint.timeoutMs + 1000) return 'more';
    try {
      await this.send(events);
    } catch (error) {
      return this.failed(position, entries[0]!, status, error, events.length);
    }
    this.options.onOutcome?.(this.endpoint.name, 'delivered', events.length);
    if (!(await this.metadata.advanceConsumer(this.consumer, position, last))) {
      this.options.log?.warn({ endpoint: this.endpoint.name }, 'notification position moved by another process');
    }
    if (status) await this.metadata.setDeliveryStatus(this.endpoint.name, undefined);
    // Caught up: let entries gather for a moment, so that a busy registry sends full batches
    // (one request and one position write per batch) rather than a request per few pulls.
    return full ? 'more' : Date.now() + GATHER_MS;
  }

  private async failed(position: number, head: OutboxEntry, status: DeliveryStatus | undefined, error: unknown, events: number): Promise<'more' | number> {
    const attempts = (status?.attempts ?? 0) + 1;
    const lastError = error instanceof Error ? error.message : String(error);
    const name = this.endpoint.name;
    this.options.onOutcome?.(name, 'failed', events);
    if (this.endpoint.maxAttempts > 0 && attempts >= this.endpoint.maxAttempts) {
      this.options.onOutcome?.(name, 'parked', events);
      await this.metadata.parkEvent(name, this.consumer, position, head, { attempts, lastError });
      this.options.log?.warn({ endpoint: name, entry: head.id, attempts, error: lastError }, 'notification parked after its attempts');
      return 'more';
    }
    const nextAttemptAt = Date.now() + (attempts < this.endpoint.threshold ? 0 : this.endpoint.backoffMs);
    await this.metadata.setDeliveryStatus(name, { attempts, nextAttemptAt, lastError });
    if (attempts === 1 || attempts === this.endpoint.threshold) {
      this.options.log?.warn({ endpoint: name, entry: head.id, attempts, error: lastError }, 'notification delivery failed; retrying');
    }
    return nextAttemptAt;
  }

  private async holdLease(): Promise<boolean> {
    const now = Date.now();
    if (this.heldUntil > now && now < this.renewAt) return true;
    if (this.heldUntil <= now && now < this.waitUntil) return false;
    const claim = await this.metadata.acquireLease(this.lease, this.owner, this.leaseMs);
    if (claim.acquired) {
      if (this.heldUntil <= now) this.options.log?.info({ endpoint: this.endpoint.name }, 'delivering notifications from this process');
      this.heldUntil = now + this.leaseMs;
      this.renewAt = now + this.leaseMs / 3;
      return true;
    }
    this.heldUntil = 0;
    this.waitUntil = Math.min(claim.until, now + this.leaseMs);
    return false;
  }

  private async prune(position: number): Promise<void> {
    const now = Date.now();
    if (now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    // Below every consumer's position (the store checks): entries nobody needs any more.
    await this.metadata.pruneOutbox(position);
  }

  /** The events of each entry that this endpoint wants, entry by entry. */
  private async render(entries: readonly OutboxEntry[]): Promise<NotificationEvent[][]> {
    const references = new Map<string, ChangeReference[] | undefined>();
    if (this.options.includeReferences) {
      // Pulls record no references (that would cost every GET); read them now from the manifest.
      const pulls = entries.flatMap((entry) => {
        const event = entry.event.action === 'notification.replay' ? entry.event.original.event : entry.event;
        return event.action === 'pull.batch' ? event.pulls : [event];
      });
      for (const event of pulls) {
        if (event.action !== 'manifest.pull') continue;
        const key = `${event.repository}@${event.digest}`;
        if (references.has(key)) continue;
        const record = await this.metadata.getManifest(event.repository, event.digest);
        let refs: ChangeReference[] | undefined;
        try {
          refs = record ? manifestReferences(parseManifest(record.content, record.mediaType)).map((d) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size })) : undefined;
        } catch {
          refs = undefined;
        }
        references.set(key, refs);
      }
    }
    const options: RenderOptions = {
      source: this.options.source,
      includeReferences: this.options.includeReferences,
      baseUrl: this.options.baseUrl,
      endpoint: this.endpoint.name,
      referencesOf: (repository, digest) => references.get(`${repository}@${digest}`),
    };
    return entries.map((entry) => renderEntry(entry, options).filter((event) => wanted(event, this.endpoint)));
  }

  /** POSTs the events; throws unless the endpoint answers 2xx or 3xx in time (as registry:2 counts it). */
  private async send(events: readonly NotificationEvent[]): Promise<void> {
    const { body, contentType } = encodeBody(events, this.endpoint.format);
    const headers = new Headers();
    for (const [name, values] of Object.entries(this.endpoint.headers)) for (const value of values) headers.append(name, value);
    headers.set('Content-Type', contentType);
    if (this.endpoint.secret !== undefined) headers.set(this.endpoint.signatureHeader, signBody(body, this.endpoint.secret));
    let response: Response;
    try {
      response = await fetch(this.endpoint.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(this.endpoint.timeoutMs) });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new Error(`POST failed: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
    }
    await response.arrayBuffer().catch(() => undefined);
    if (response.status < 200 || response.status >= 400) throw new Error(`endpoint answered ${response.status}`);
  }
}
