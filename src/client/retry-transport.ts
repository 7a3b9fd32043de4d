import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { discard, header } from './http-message.js';
import type { RegistryRequest, RoundTripper } from './round-tripper.js';

/** Statuses that say "try again later": rate limits and a server or gateway in trouble. */
export const RETRYABLE_STATUS: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);

/** Socket errors after which the same request may well succeed (including our own idle timeout). */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNABORTED']);

export interface RetryOptions {
  /** Retries after a 5xx, a 429 or a dropped connection; 4 by default. */
  maxRetries?: number;
  /** First backoff delay in milliseconds, doubled each retry up to 8 s; 250 by default. */
  baseDelayMs?: number;
  /** The longest wait, whatever Retry-After asks for; 60 s by default. */
  maxWaitMs?: number;
}

/** True for a network error worth another attempt (a reset, a refusal, a timeout). */
export function isRetryableNetworkError(error: unknown): boolean {
  return NETWORK_CODES.has((error as NodeJS.ErrnoException | undefined)?.code ?? '');
}

/** A jittered exponential delay: between half and all of `baseMs · 2^attempt`, at most 8 s. */
export function backoff(baseMs: number, attempt: number): number {
  const delay = Math.min(baseMs * 2 ** attempt, 8_000);
  return delay / 2 + Math.random() * (delay / 2);
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * Sends a request again after a dropped connection, a 429 or a 5xx, waiting as Retry-After asks
 * (else a jittered backoff). After the last retry the final response is returned as it came (a
 * 503 is still a response) or the last network error is thrown. A request with `retry: false`
 * goes exactly once; a body given as a function is opened afresh for each attempt.
 */
export class RetryTransport implements RoundTripper {
  readonly maxRetries: number;
  readonly baseDelayMs: number;
  private readonly maxWaitMs: number;

  constructor(
    private readonly inner: RoundTripper,
    options: RetryOptions = {},
  ) {
    this.maxRetries = options.maxRetries ?? 4;
    this.baseDelayMs = options.baseDelayMs ?? 250;
    this.maxWaitMs = options.maxWaitMs ?? 60_000;
  }

  async roundTrip(request: RegistryRequest): Promise<IncomingMessage> {
    const maxRetries = request.retry === false ? 0 : this.maxRetries;
    for (let attempt = 0; ; attempt++) {
      let res: IncomingMessage;
      try {
        res = await this.inner.roundTrip(request);
      } catch (error) {
        if (attempt < maxRetries && isRetryableNetworkError(error)) {
          await sleep(backoff(this.baseDelayMs, attempt));
          continue;
        }
        throw error;
      }
      if (!RETRYABLE_STATUS.has(res.statusCode ?? 0) || attempt >= maxRetries) return res;
      const wait = retryAfter(header(res, 'retry-after')) ?? backoff(this.baseDelayMs, attempt);
      discard(res);
      await sleep(Math.min(wait, this.maxWaitMs));
    }
  }
}
