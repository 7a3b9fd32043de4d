import { randomBytes } from 'node:crypto';
import type { JobRecord, MetadataStore, NewJob } from '../metadata/metadata-store.js';

/** What a job's code is given: the job, and a signal that fires when the runner stops or loses the lease. */
export interface JobContext {
  job: JobRecord;
  signal: AbortSignal;
}

export type JobHandler = (context: JobContext) => Promise<void>;

export interface JobRunnerOptions {
  /** Code per job kind; the runner claims only these kinds. */
  handlers: Record<string, JobHandler>;
  /** How long a claim holds before another process may take the job (renewed while it runs). */
  leaseMs?: number;
  /** How often an idle runner looks for due jobs. */
  pollMs?: number;
  /** Retry delay after the first failure; doubled per attempt, at most `maxBackoffMs`. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Told of failures, for the log: a job's (with the job) or the queue's own. */
  onError?: (error: unknown, job?: JobRecord) => void;
}

const DEFAULTS = { leaseMs: 60_000, pollMs: 1_000, backoffMs: 5_000, maxBackoffMs: 15 * 60_000 };

/**
 * Runs background jobs from the metadata store's queue in this process: claims a due job with a
 * lease, renews the lease while the job runs, and records how it ended. Every process (and every
 * replica) may run one; the store hands each claim to exactly one of them, and a job whose runner
 * died is taken over once its lease runs out.
 */
export class JobRunner {
  private readonly options: Required<Omit<JobRunnerOptions, 'onError'>> & Pick<JobRunnerOptions, 'onError'>;
  private readonly identity = `${process.pid}-${randomBytes(4).toString('hex')}`;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly stopping = new AbortController();

  constructor(
    private readonly metadata: MetadataStore,
    options: JobRunnerOptions,
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /** Queues a job (see MetadataStore.enqueueJob). */
  enqueue(job: NewJob): Promise<JobRecord> {
    return this.metadata.enqueueJob(job);
  }

  /** Starts polling; the first look is after `pollMs`. */
  start(): void {
    if (this.timer || this.stopping.signal.aborted) return;
    this.schedule(this.options.pollMs);
  }

  /** Stops polling and waits for the job in hand, whose signal fires. */
  async stop(): Promise<void> {
    this.stopping.abort();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Claims and runs due jobs until none is left; resolves with how many ran. For tests and the loop. */
  async runDue(): Promise<number> {
    let ran = 0;
    while (!this.stopping.signal.aborted) {
      const owner = `${this.identity}-${randomBytes(4).toString('hex')}`;
      const job = await this.metadata.claimJob({ kinds: Object.keys(this.options.handlers), owner, leaseMs: this.options.leaseMs });
      if (!job) return ran;
      await this.runOne(job, owner);
      ran += 1;
    }
    return ran;
  }

  private schedule(delay: number): void {
    this.timer = setTimeout(() => {
      this.running = this.runDue()
        .catch((error: unknown) => {
          // The store is unavailable (busy, full disk): try again at the next poll.
          this.options.onError?.(error);
        })
        .then(() => {
          this.running = undefined;
          if (!this.stopping.signal.aborted) this.schedule(this.options.pollMs);
        });
    }, delay);
    this.timer.unref();
  }

  private async runOne(job: JobRecord, owner: string): Promise<void> {
    const lost = new AbortController();
    const signal = AbortSignal.any([lost.signal, this.stopping.signal]);
    const renewal = setInterval(() => {
      this.metadata.renewJobLease(job.id, owner, this.options.leaseMs).then(
        (held) => {
          if (!held) lost.abort(new Error('the job lease was lost'));
        },
        () => undefined,
      );
    }, Math.max(10, Math.floor(this.options.leaseMs / 3)));
    renewal.unref();
    try {
      await this.options.handlers[job.kind]!({ job, signal });
      await this.metadata.finishJob(job.id, owner, { kind: 'done' });
    } catch (error) {
      this.options.onError?.(error, job);
      const delay = Math.min(this.options.backoffMs * 2 ** Math.max(0, job.attempts - 1), this.options.maxBackoffMs);
      const message = error instanceof Error ? error.message : String(error);
      await this.metadata.finishJob(job.id, owner, { kind: 'retry', error: message, runAt: Date.now() + delay }).catch(() => undefined);
    } finally {
      clearInterval(renewal);
    }
  }
}
