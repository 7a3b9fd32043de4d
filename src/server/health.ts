import { constants } from 'node:fs';
import { access, statfs } from 'node:fs/promises';
import type { CheckResult, HealthProbes } from '../http/handlers/health.js';
import type { Logger } from '../log/logger.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { formatByteSize } from '../oci/byte-size.js';

/** Bytes that an unprivileged process may still write on the file system holding `path`. */
export async function freeBytes(path: string): Promise<number> {
  const stats = await statfs(path);
  return stats.bavail * stats.bsize;
}

/**
 * Watches the free space under the storage root. Below `minimumBytes`, registry writes are
 * refused (pushes get 507 STORAGE_FULL, pulls go on) until space returns; each change is logged
 * once. Every serving process runs its own: a statfs every few seconds costs nothing, and no
 * process has to tell another.
 */
export class FreeSpaceWatch {
  private low = false;
  private free: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly root: string,
    private readonly options: {
      minimumBytes: number;
      intervalMs: number;
      log: Logger;
      /** Whether this process logs the changes (one of the serving processes does, for all). */
      announce: boolean;
      onChange?: (low: boolean) => void;
    },
  ) {}

  /** Checks now, then every interval. Off (never refuses) when the minimum is 0. */
  async start(): Promise<void> {
    if (this.options.minimumBytes <= 0) return;
    await this.check();
    this.timer = setInterval(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The sentence pushes are refused with while space is low; undefined while there is room. */
  refusal(): string | undefined {
    if (!this.low) return undefined;
    return `free space under the storage root (${formatByteSize(this.free ?? 0)}) is below storage.freespace.minimum (${formatByteSize(this.options.minimumBytes)}): pushes are refused until space is freed; pulls are served`;
  }

  /**
   * Reads the free space now, then answers as `refusal`: asked before every registry write, so
   * that no process lets a push through on a reading one interval old (a statfs costs
   * microseconds; a push, far more).
   */
  async refusalNow(): Promise<string | undefined> {
    if (this.options.minimumBytes <= 0) return undefined;
    await this.check();
    return this.refusal();
  }

  /** Reads the free space and switches mode when it crossed the minimum. */
  async check(): Promise<void> {
    let free: number;
    try {
      free = await freeBytes(this.root);
    } catch (error) {
      this.options.log.warn({ err: error, storage: this.root }, 'cannot read the free space under the storage root');
      return;
    }
    this.free = free;
    const low = free < this.options.minimumBytes;
    if (low === this.low) return;
    this.low = low;
    const fields = { storage: this.root, freeBytes: free, minimumBytes: this.options.minimumBytes };
    this.options.onChange?.(low);
    if (!this.options.announce) return;
    if (low) this.options.log.warn(fields, 'free space is below storage.freespace.minimum: refusing pushes, serving pulls');
    else this.options.log.info(fields, 'free space is back above storage.freespace.minimum: accepting pushes again');
  }
}

/** The checks behind /readyz: storage takes a file, metadata takes its write lock, free space is above the minimum. */
export function readinessProbes(probeStorage: () => Promise<void>, metadata: Pick<MetadataStore, 'checkWritable'>, room: FreeSpaceWatch): HealthProbes {
  const run = async (probe: () => Promise<void>): Promise<CheckResult> => {
    try {
      await probe();
      return { ok: true, detail: 'ok' };
    } catch (error) {
      return { ok: false, detail: (error as Error).message };
    }
  };
  return {
    async readiness() {
      const [storage, metadataCheck] = await Promise.all([run(probeStorage), run(() => metadata.checkWritable())]);
      const refusal = room.refusal();
      return { storage, metadata: metadataCheck, freeSpace: refusal === undefined ? { ok: true, detail: 'ok' } : { ok: false, detail: refusal } };
    },
  };
}

/** Whether the storage root may be read and written (the filesystem's `health.storagedriver` check). */
export function rootAccessProbe(root: string): () => Promise<void> {
  return () => access(root, constants.R_OK | constants.W_OK);
}

/**
 * registry:2's `health.storagedriver` check: every interval, whether the storage answers
 * (`probe`); unhealthy after `threshold` failures in a row, healthy again after a success.
 */
export class StorageDriverCheck {
  private failures = 0;
  private lastError = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly probe: () => Promise<void>,
    private readonly options: { intervalMs: number; threshold: number },
  ) {}

  start(): void {
    void this.check();
    this.timer = setInterval(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Undefined while healthy; the last failure otherwise. */
  problem(): string | undefined {
    return this.failures >= this.options.threshold ? this.lastError : undefined;
  }

  private async check(): Promise<void> {
    try {
      await this.probe();
      this.failures = 0;
    } catch (error) {
      this.failures += 1;
      this.lastError = (error as Error).message;
    }
  }
}
