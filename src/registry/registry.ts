import type { MetadataStore } from '../metadata/metadata-store.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { Digest } from '../oci/digest.js';
import { BlobService } from './blob-service.js';
import { DiscoveryService, type PaginationLimits } from './discovery-service.js';
import type { EventSink } from './events.js';
import { DEFAULT_MAX_MANIFEST_BYTES, ManifestService } from './manifest-service.js';
import { RegistryError } from '../errors/index.js';
import { PullTimes } from './pull-times.js';
import { RetentionService } from './retention-service.js';
import type { Blobs, Discovery, Manifests, NotificationAdmin, Operations, RegistryServices, Retention, Search, Tags, Uploads } from './services.js';
import { requireQuotaLimit, requireQuotaName } from './quota-rules.js';
import { TagService } from './tag-service.js';
import { SearchService } from './search-service.js';
import type { BlobText } from './image-description.js';
import { UploadService } from './upload-service.js';

export interface RegistryOptions {
  deleteEnabled: boolean;
  maxManifestBytes?: number;
  pagination?: Partial<PaginationLimits>;
  /** Told of every push, mount, tag move and delete once it is durable (the audit log listens). */
  onEvent?: EventSink;
  /**
   * Wraps the services the fronts see (a cache, metrics, a notifier around the local ones). The
   * maintenance work (purging uploads) keeps using the local services.
   */
  wrap?: (local: RegistryServices) => RegistryServices;
  /** `history.retention` (ms): retention keeps untagged manifests a restore may still need. */
  historyRetentionMs?: number;
  /** Record when manifests are pulled, for retention (`retention.recordpulls`); on by default. */
  recordPulls?: boolean;
  /** How often recorded pulls are written (default PULL_FLUSH_MS). */
  pullFlushMs?: number;
  /** Notification deliveries, for the admin API; absent when none are configured. */
  notifications?: NotificationAdmin;
  /** Repositories under these prefixes are flagged official in search (`search.official`); default `library/`. */
  officialPrefixes?: readonly string[];
  /** Blob GETs redirect to storage URLs valid this long (`storage.redirect.disable: false`); absent: served through. */
  blobRedirect?: { expiresInSeconds: number };
}

/**
 * What a registry does, with no HTTP in it: the services the HTTP handlers (and tools) call,
 * composed from the local implementations over metadata and storage, or wrappers around them.
 */
export class Registry implements RegistryServices {
  readonly blobs: Blobs;
  readonly uploads: Uploads;
  readonly manifests: Manifests;
  readonly discovery: Discovery;
  readonly tags: Tags;
  readonly operations: Operations;
  readonly retention: Retention;
  readonly search: Search;
  /** Retention over this registry's own metadata (for the config policies and scheduled runs). */
  readonly localRetention: RetentionService;
  /** Batches manifest pull times into metadata; absent when `recordPulls` is off. */
  readonly pulls: PullTimes | undefined;
  /** The tag service over this registry's own metadata (for the config rules at start-up). */
  readonly localTags: TagService;
  /** The upload service over this registry's own storage (for purging). */
  readonly localUploads: UploadService;

  constructor(
    readonly metadata: MetadataStore,
    readonly store: BlobStore,
    options: RegistryOptions,
  ) {
    const emit = options.onEvent;
    this.localUploads = new UploadService(metadata, store, emit);
    this.localTags = new TagService(metadata, emit ? { emit } : {});
    this.localRetention = new RetentionService(metadata, { historyRetentionMs: options.historyRetentionMs ?? 0 });
    this.pulls = options.recordPulls === false ? undefined : new PullTimes(metadata, options.pullFlushMs !== undefined ? { flushMs: options.pullFlushMs } : {});
    const retention = this.localRetention;
    const local: RegistryServices = {
      blobs: new BlobService(metadata, store, {
        deleteEnabled: options.deleteEnabled,
        ...(emit ? { emit } : {}),
        ...(options.blobRedirect ? { redirect: options.blobRedirect } : {}),
      }),
      uploads: this.localUploads,
      manifests: new ManifestService(metadata, {
        deleteEnabled: options.deleteEnabled,
        maxManifestBytes: options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES,
        ...(emit ? { emit } : {}),
        ...(this.pulls ? { pulls: this.pulls } : {}),
        readBlob: configReader(store),
      }),
      discovery: new DiscoveryService(metadata, {
        maxPage: options.pagination?.maxPage ?? 10_000,
        defaultCatalogPage: options.pagination?.defaultCatalogPage ?? 1000,
      }),
      tags: this.localTags,
      operations: {
        jobs: (query) => metadata.listJobs(query),
        quotas: () => metadata.listQuotas(),
        async setQuota(name, limit) {
          const bytes = requireQuotaLimit(limit);
          await metadata.setQuota(requireQuotaName(name), bytes);
          return (await metadata.listQuotas()).find((q) => q.name === name && q.source === 'api')!;
        },
        removeQuota: (name) => metadata.removeQuota(name),
        usage: (query) => metadata.repositoryUsage(query),
        async notifications({ endpoint }) {
          const notifier = options.notifications;
          if (!notifier) return { endpoints: [], parked: [] };
          const endpoints = (await notifier.report()).filter((e) => endpoint === undefined || e.name === endpoint);
          if (endpoint !== undefined && endpoints.length === 0) throw unknownEndpoint(endpoint);
          return { endpoints, parked: await notifier.parked(endpoint) };
        },
        async replayNotifications(endpoint, ids) {
          const replayed = await options.notifications?.replay(endpoint, ids);
          if (replayed === undefined) throw unknownEndpoint(endpoint);
          return replayed;
        },
      },
      search: new SearchService(metadata, {
        officialPrefixes: options.officialPrefixes ?? ['library/'],
        // Through the composed tag list, so that under a security.signatures policy "signed" means verified.
        hasSignedTag: async (repository) => (await this.discovery.tags(repository, { signed: true, limit: 1 })).items.length > 0,
      }),
      retention: {
        policies: () => retention.list(),
        addPolicy: (input, context) => retention.add(input, context),
        removePolicy: (id) => retention.remove(id),
        run: (options) => retention.run(options),
      },
    };
    const services = options.wrap ? options.wrap(local) : local;
    this.blobs = services.blobs;
    this.uploads = services.uploads;
    this.manifests = services.manifests;
    this.discovery = services.discovery;
    this.tags = services.tags;
    this.operations = services.operations;
    this.retention = services.retention;
    this.search = services.search;
  }

  async close(): Promise<void> {
    await this.pulls?.close();
    await this.metadata.close();
  }
}

/** Reads a small blob whole (an image config, for its labels); undefined when storage lacks it. */
function configReader(store: BlobStore): BlobText {
  return async (digest, size) => {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of await store.reader(digest as Digest, { length: size })) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    } catch {
      return undefined;
    }
  };
}

function unknownEndpoint(name: string): RegistryError {
  return new RegistryError('NOT_FOUND', { message: `no notification endpoint is named "${name}"`, detail: { endpoint: name } });
}
