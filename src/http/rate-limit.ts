import { RegistryError } from '../errors/index.js';
import type { Admission } from './app.js';
import type { Exchange } from './exchange.js';

/** The route families that have limits of their own (`ratelimit.pulls`, `.pushes`, `.auth`). */
export type RateFamily = 'pulls' | 'pushes' | 'auth';

/** One request to charge: its family, and who it counts against (the user, else the address). */
export interface RateCharge {
  family: RateFamily;
  user?: string;
  address: string;
}

/** Whoever holds the buckets: charges one request and says how long to wait (0: go on). */
export interface RateLimiter {
  /** Seconds until the request would be allowed; 0 when it was, and a token was taken. */
  take(charge: RateCharge): Promise<number>;
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Which bucket a request draws from; undefined for the admin API and the probes, never limited. */
export function rateFamily(ex: Pick<Exchange, 'req' | 'route'>): RateFamily | undefined {
  const kind = ex.route.kind;
  if (kind === 'token') return 'auth';
  if (kind.startsWith('admin.') || kind === 'healthz' || kind === 'readyz') return undefined;
  return WRITE_METHODS.has(ex.req.method ?? 'GET') ? 'pushes' : 'pulls';
}

/**
 * Refuses a request over its limit with 429 TOOMANYREQUESTS and `Retry-After`. Runs after the
 * access gate, so a signed-in user or robot is charged by name (wherever it connects from) and
 * anyone else by address; the token endpoint, which checks credentials itself, by address.
 */
export function rateLimits(limiter: RateLimiter, onRefused?: (family: RateFamily) => void): Admission {
  return async (ex) => {
    const family = rateFamily(ex);
    if (family === undefined) return;
    const charge: RateCharge = { family, address: ex.req.socket.remoteAddress ?? 'unknown' };
    if (ex.context.actor !== undefined) charge.user = ex.context.actor;
    const wait = await limiter.take(charge);
    if (wait <= 0) return;
    onRefused?.(family);
    throw new RegistryError('TOOMANYREQUESTS', {
      message: `too many ${family === 'auth' ? 'sign-in' : family === 'pulls' ? 'pull' : 'push'} requests; retry after ${wait} s`,
      headers: { 'Retry-After': String(wait) },
      detail: { family, retryAfter: wait },
    });
  };
}
