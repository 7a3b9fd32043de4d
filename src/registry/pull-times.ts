import type { MetadataStore } from '../metadata/metadata-store.js';

/** How often a process writes the pulls it has seen, and how many it holds before writing early. */
export const PULL_FLUSH_MS = 5_000;
const MAX_PENDING = 10_000;

/**
 * Remembers when manifests were last pulled, for retention's "most recently pulled" and "not
 * pulled within" rules, without a write per pull: a GET only updates an in-memory map, and the
 * latest pull of each manifest goes to the metadata store in one batch every few seconds (and at
 * close). A crash loses at most the last few seconds of pull times, which retention's day-scale
 * rules do not notice.
 */
export class PullTimes {
  private pending = new Map<string, { repository: string; digest: string; at: number }>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: { flushMs?: number; onError?: (error: unknown) => void } = {},
  ) {
    this.timer = setInterval(() => void this.flush(), options.flushMs ?? PULL_FLUSH_MS);
    this.timer.unref();
  }

  record(repository: string, digest: string, at = Date.now()): void {
    // One key per manifest: a burst of pulls of the same image costs one row update (and, on
    // the hot path, no new entry per pull).
    const key = `${repository}@${digest}`;
    const pending = this.pending.get(key);
    if (pending) pending.at = Math.max(pending.at, at);
    else this.pending.set(key, { repository, digest, at });
    if (this.pending.size >= MAX_PENDING) void this.flush();
  }

  /** Writes what has been recorded so far; resolves once it is committed. */
  flush(): Promise<void> {
    if (this.pending.size === 0) return this.flushing;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.flushing = this.flushing.then(() =>
      this.metadata.recordPulls(batch).catch((error: unknown) => {
        this.options.onError?.(error);
      }),
    );
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
