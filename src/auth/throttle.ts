interface Window {
  failures: number;
  startedAt: number;
}

export interface ThrottleOptions {
  /** Failed logins for one user name within `windowMs` before it is refused. */
  maxFailures: number;
  /** Failed logins from one address within `windowMs` before it is refused. */
  maxFailuresPerAddress: number;
  windowMs: number;
  now?: () => number;
}

/** Tracked keys at most; beyond it the oldest windows are forgotten first. */
const MAX_TRACKED = 100_000;

/**
 * Failed-login throttling per user name and per client address. A key that failed too often is
 * refused until its window ends, before any password is checked (so bcrypt is not a lever for
 * overload either). A success clears the user's count, not the address's.
 */
export class LoginThrottle {
  private readonly windows = new Map<string, Window>();
  private readonly now: () => number;

  constructor(private readonly options: ThrottleOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Seconds until another attempt is allowed; 0 when it is allowed now. */
  retryAfter(user: string | undefined, address: string | undefined): number {
    let wait = 0;
    if (user !== undefined) wait = Math.max(wait, this.blockedFor(`u:${user}`, this.options.maxFailures));
    if (address !== undefined) wait = Math.max(wait, this.blockedFor(`a:${address}`, this.options.maxFailuresPerAddress));
    return wait;
  }

  recordFailure(user: string | undefined, address: string | undefined): void {
    if (user !== undefined) this.bump(`u:${user}`);
    if (address !== undefined) this.bump(`a:${address}`);
  }

  recordSuccess(user: string): void {
    this.windows.delete(`u:${user}`);
  }

  private blockedFor(key: string, max: number): number {
    const window = this.windows.get(key);
    if (!window) return 0;
    const remaining = window.startedAt + this.options.windowMs - this.now();
    if (remaining <= 0) {
      this.windows.delete(key);
      return 0;
    }
    return window.failures >= max ? Math.ceil(remaining / 1000) : 0;
  }

  private bump(key: string): void {
    const now = this.now();
    const window = this.windows.get(key);
    if (window && window.startedAt + this.options.windowMs > now) {
      window.failures += 1;
      return;
    }
    if (this.windows.size >= MAX_TRACKED) {
      // Maps iterate in insertion order: drop the oldest tenth.
      let drop = MAX_TRACKED / 10;
      for (const k of this.windows.keys()) {
        this.windows.delete(k);
        if (--drop <= 0) break;
      }
    }
    this.windows.delete(key);
    this.windows.set(key, { failures: 1, startedAt: now });
  }
}
