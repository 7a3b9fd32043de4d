import type { BucketLimit, RateLimitConfig } from '../config/config.js';
import type { RateCharge, RateLimiter } from '../http/rate-limit.js';

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
  /** When the bucket will be full again, after which it can be forgotten (ms). */
  fullAt: number;
}

/** How often buckets that have filled up again are dropped, so memory follows active clients only. */
const SWEEP_EVERY_MS = 60_000;

/**
 * The rate limits' token buckets, held by one process for all: the listening process when
 * there are workers (they ask it over IPC, see worker-pool.ts), else the only one. A bucket
 * per family and client (a user by name, else an address) starts full at `burst`, refills at
 * `rate` tokens a second, and each request takes one.
 */
export class TokenBuckets implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep: number;

  constructor(
    private readonly config: RateLimitConfig,
    private readonly now: () => number = Date.now,
  ) {
    this.lastSweep = now();
  }

  async take(charge: RateCharge): Promise<number> {
    return this.takeNow(charge);
  }

  /** Synchronous `take`, for the process that holds the buckets. */
  takeNow(charge: RateCharge): number {
    const limit = this.limitFor(charge);
    if (!limit) return 0;
    const now = this.now();
    if (now - this.lastSweep > SWEEP_EVERY_MS) this.sweep(now);
    const key = `${charge.family}\n${charge.user !== undefined ? `user\n${charge.user}` : `address\n${charge.address}`}`;
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { tokens: limit.burst, at: now, fullAt: now };
      this.buckets.set(key, bucket);
    }
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * limit.rate);
    bucket.at = now;
    if (bucket.tokens < 1) return Math.max(1, Math.ceil((1 - bucket.tokens) / limit.rate));
    bucket.tokens -= 1;
    bucket.fullAt = now + ((limit.burst - bucket.tokens) / limit.rate) * 1000;
    return 0;
  }

  private limitFor(charge: RateCharge): BucketLimit | undefined {
    const own = charge.user !== undefined ? this.config.overrides[charge.user]?.[charge.family] : undefined;
    return own ?? this.config.limits[charge.family];
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, bucket] of this.buckets) if (bucket.fullAt <= now) this.buckets.delete(key);
  }
}

/**
 * A worker's view of the buckets the parent holds: each charge is a message and its answer.
 * Without the parent (it went away, or this worker is draining after leaving it) requests are
 * let through: a limit is a protection against floods, not a reason to fail pulls.
 */
export class RemoteRateLimiter implements RateLimiter {
  private nextId = 0;
  private readonly waiting = new Map<number, (wait: number) => void>();

  constructor(private readonly send: (message: { kind: 'rate'; id: number; charge: RateCharge }) => void) {}

  take(charge: RateCharge): Promise<number> {
    if (!process.connected) return Promise.resolve(0);
    const id = (this.nextId += 1);
    return new Promise<number>((resolve) => {
      this.waiting.set(id, resolve);
      this.send({ kind: 'rate', id, charge });
    });
  }

  /** The parent's answer to charge `id`. */
  answer(id: number, wait: number): void {
    const resolve = this.waiting.get(id);
    this.waiting.delete(id);
    resolve?.(wait);
  }

  /** The parent is gone: let every waiting request through. */
  release(): void {
    for (const resolve of this.waiting.values()) resolve(0);
    this.waiting.clear();
  }
}
