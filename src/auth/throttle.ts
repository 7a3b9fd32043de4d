import { createHash } from 'node:crypto';
import type { AccountStore, LoginFailures } from '../metadata/account-store.js';

export interface ThrottleOptions {
  /** Failed logins for one user name from one address within `windowMs` before that pair is refused. */
  maxFailures: number;
  /** Failed logins from one address within `windowMs` before it is refused. */
  maxFailuresPerAddress: number;
  windowMs: number;
  now?: () => number;
}

/** What the throttle needs of the account store. */
export type LoginFailureStore = Pick<AccountStore, 'loginFailures' | 'countLoginFailure' | 'forgiveLoginFailures'>;

/**
 * Failed-login throttling per user name at a client address, and per client address, with the
 * counters in the account store so that every worker process (and replica) shares them. A key
 * that failed too often is refused until its window ends, before any password is checked (so
 * bcrypt is not a lever for overload either). There is deliberately no count per user alone: an
 * attacker could then lock anyone out by name, even from someone who knows the password.
 */
export class LoginThrottle {
  private readonly now: () => number;

  constructor(
    private readonly store: LoginFailureStore,
    private readonly options: ThrottleOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Reads only, for every sign-in: seconds until `user` may try again from `address` (0: now),
   * and whether the pair has failures on record that a success should clear.
   */
  async check(user: string, address: string | undefined): Promise<{ wait: number; failed: boolean }> {
    const limits = this.limits(user, address);
    const now = this.now();
    const live = await this.store.loginFailures(limits.map((l) => l.key), { now, windowMs: this.options.windowMs });
    return { wait: this.waitFor(limits, live, now), failed: live.has(limits[0]!.key) };
  }

  /**
   * Counts an attempt as failed, before its password is checked: attempts in flight at the same
   * time, in any process, then cannot pass the limits together. Returns seconds to wait when a
   * limit is reached (nothing is counted then), else 0.
   */
  async charge(user: string, address: string | undefined): Promise<number> {
    const limits = this.limits(user, address);
    const now = this.now();
    const live = await this.store.countLoginFailure(limits, { now, windowMs: this.options.windowMs });
    return live ? Math.max(1, this.waitFor(limits, live, now)) : 0;
  }

  /**
   * The password was right: clears the pair's count and, when this attempt was `charged`, takes
   * its charge back from the address (a success is not a failure of the address either).
   */
  async succeeded(user: string, address: string | undefined, options: { charged: boolean }): Promise<void> {
    const [pair, from] = this.limits(user, address);
    await this.store.forgiveLoginFailures({ clear: [pair!.key], refund: options.charged ? [from!.key] : [] });
  }

  /** The pair first, then the address. */
  private limits(user: string, address: string | undefined): Array<{ key: string; max: number }> {
    const at = address ?? 'unknown';
    return [
      { key: keyOf('user', at, user), max: this.options.maxFailures },
      { key: keyOf('address', at), max: this.options.maxFailuresPerAddress },
    ];
  }

  private waitFor(limits: Array<{ key: string; max: number }>, live: Map<string, LoginFailures>, now: number): number {
    let wait = 0;
    for (const { key, max } of limits) {
      const counter = live.get(key);
      if (counter && counter.failures >= max) wait = Math.max(wait, Math.ceil((counter.startedAt + this.options.windowMs - now) / 1000));
    }
    return wait;
  }
}

/**
 * Counters are stored under a hash: names typed at a login prompt (now and then a password typed
 * into the wrong field) never reach the database, and keys stay short whatever was sent.
 */
function keyOf(...parts: string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('base64url');
}
