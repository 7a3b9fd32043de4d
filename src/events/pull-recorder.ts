import { RegistryError } from '../errors/index.js';
import type { ChangeEvent, MetadataStore, RecordedPull } from '../metadata/metadata-store.js';
import type { RequestContext } from '../registry/context.js';
import type { Blobs, Manifests, RegistryServices, Uploads } from '../registry/services.js';

/** How long a recorded pull may wait for its batch, and how many make a batch at once. */
const FLUSH_AFTER_MS = 100;
const FLUSH_AT = 1000;

/**
 * Records what happens without changing anything — pulls, quota refusals — in the outbox, many at
 * a time: serving a manifest or blob costs one push onto an array, and every 100 ms the pulls
 * waiting become one `pull.batch` entry (one insert, committed without waiting for the disk). The
 * price: a crash loses the pulls of the last 100 ms. `flush` writes what waits (for a shutdown).
 */
export class PullRecorder {
  private pending: Array<{ at: number; event: ChangeEvent }> = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly metadata: MetadataStore,
    private readonly onError: (error: unknown, lost: number) => void = () => undefined,
  ) {}

  record(event: ChangeEvent): void {
    this.pending.push({ at: Date.now(), event });
    if (this.pending.length >= FLUSH_AT) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), FLUSH_AFTER_MS);
      this.timer.unref();
    }
  }

  /** Writes every event recorded so far; resolves when they are in the outbox (or reported lost). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = gatherPulls(this.pending.splice(0));
    if (batch.length > 0) {
      // In order: one batch after the other, so the outbox keeps the order they were served in.
      this.writing = this.writing.then(() => this.metadata.appendOutbox(batch).catch((error: unknown) => this.onError(error, batch.length)));
    }
    return this.writing;
  }
}

/** Consecutive pulls become one `pull.batch` entry; anything else stays an entry of its own, in order. */
function gatherPulls(recorded: ReadonlyArray<{ at: number; event: ChangeEvent }>): Array<{ at: number; event: ChangeEvent }> {
  const out: Array<{ at: number; event: ChangeEvent }> = [];
  let pulls: RecordedPull[] | undefined;
  for (const { at, event } of recorded) {
    if (event.action === 'manifest.pull' || event.action === 'blob.pull') {
      if (!pulls) {
        pulls = [];
        out.push({ at, event: { action: 'pull.batch', pulls } });
      }
      pulls.push({ ...event, at });
    } else {
      pulls = undefined;
      out.push({ at, event });
    }
  }
  return out;
}

/** Who made a request, as an outbox entry keeps it. */
function origin(context: RequestContext | undefined): Pick<ChangeEvent, 'actor' | 'request'> {
  if (!context) return {};
  return { ...(context.actor !== undefined ? { actor: context.actor } : {}), ...(context.request !== undefined ? { request: context.request } : {}) };
}

/**
 * The registry's services, recording each manifest and blob served to a client as a pull, and each
 * push refused by a quota, through `recorder` (wrap, don't branch: the services know nothing of it).
 * `pulls` false records only the refusals.
 */
export function recordingServices(local: RegistryServices, recorder: PullRecorder, options: { pulls: boolean }): RegistryServices {
  const refusals = async <T>(repository: string, digest: string | undefined, context: RequestContext | undefined, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      if (error instanceof RegistryError && error.code === 'DENIED') {
        const detail = error.detail as { quota?: string; limit?: number; usage?: number; adds?: number } | undefined;
        if (detail?.quota !== undefined) {
          recorder.record({
            action: 'quota.refuse',
            repository,
            quota: detail.quota,
            limit: detail.limit ?? 0,
            usage: detail.usage ?? 0,
            adds: detail.adds ?? 0,
            ...(digest !== undefined ? { digest } : {}),
            ...origin(context),
          });
        }
      }
      throw error;
    }
  };
  const blobs: Blobs = {
    async stat(repository, digest, context) {
      const size = await local.blobs.stat(repository, digest, context);
      if (options.pulls && context) recorder.record({ action: 'blob.pull', repository, digest, size, ...origin(context) });
      return size;
    },
    open: (repository, digest, range) => local.blobs.open(repository, digest, range),
    redirectURL: async (repository, digest) => local.blobs.redirectURL?.(repository, digest),
    mount: (repository, digest, from, context) => refusals(repository, digest, context, () => local.blobs.mount(repository, digest, from, context)),
    delete: (repository, digest, context) => local.blobs.delete(repository, digest, context),
  };
  const manifests: Manifests = {
    get maxManifestBytes() {
      return local.manifests.maxManifestBytes;
    },
    async get(repository, reference, accept, context) {
      const record = await local.manifests.get(repository, reference, accept, context);
      if (options.pulls && context) {
        recorder.record({
          action: 'manifest.pull',
          repository,
          digest: record.digest,
          mediaType: record.mediaType,
          size: record.content.length,
          ...('tag' in reference ? { tag: reference.tag } : {}),
          ...origin(context),
        });
      }
      return record;
    },
    put: (repository, reference, content, contentType, extraTags, context) =>
      refusals(repository, 'digest' in reference ? reference.digest : undefined, context, () => local.manifests.put(repository, reference, content, contentType, extraTags, context)),
    delete: (repository, reference, context) => local.manifests.delete(repository, reference, context),
  };
  const uploads: Uploads = {
    start: (repository) => local.uploads.start(repository),
    get: (repository, id) => local.uploads.get(repository, id),
    append: (repository, id, chunk, context) => refusals(repository, undefined, context, () => local.uploads.append(repository, id, chunk, context)),
    finish: (repository, id, digest, chunk, context) => refusals(repository, digest, context, () => local.uploads.finish(repository, id, digest, chunk, context)),
    monolithic: (repository, digest, chunk, context) => refusals(repository, digest, context, () => local.uploads.monolithic(repository, digest, chunk, context)),
    cancel: (repository, id) => local.uploads.cancel(repository, id),
  };
  return { ...local, blobs, manifests, uploads };
}
