import type { MetadataStore } from '../metadata/metadata-store.js';
import type { BlobStore } from '../storage/blob-store.js';
import { BlobService } from './blob-service.js';
import { DiscoveryService, type PaginationLimits } from './discovery-service.js';
import type { EventSink } from './events.js';
import { DEFAULT_MAX_MANIFEST_BYTES, ManifestService } from './manifest-service.js';
import { UploadService } from './upload-service.js';

export interface RegistryOptions {
  deleteEnabled: boolean;
  maxManifestBytes?: number;
  pagination?: Partial<PaginationLimits>;
  /** Told of every push, mount, tag move and delete once it is durable (the audit log listens). */
  onEvent?: EventSink;
}

/** What a registry does, with no HTTP in it: the services the HTTP handlers (and tools) call. */
export class Registry {
  readonly blobs: BlobService;
  readonly uploads: UploadService;
  readonly manifests: ManifestService;
  readonly discovery: DiscoveryService;

  constructor(
    readonly metadata: MetadataStore,
    readonly store: BlobStore,
    options: RegistryOptions,
  ) {
    const emit = options.onEvent;
    this.blobs = new BlobService(metadata, store, { deleteEnabled: options.deleteEnabled, ...(emit ? { emit } : {}) });
    this.uploads = new UploadService(metadata, store, emit);
    this.manifests = new ManifestService(metadata, {
      deleteEnabled: options.deleteEnabled,
      maxManifestBytes: options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST_BYTES,
      ...(emit ? { emit } : {}),
    });
    this.discovery = new DiscoveryService(metadata, {
      maxPage: options.pagination?.maxPage ?? 10_000,
      defaultCatalogPage: options.pagination?.defaultCatalogPage ?? 1000,
    });
  }

  async close(): Promise<void> {
    await this.metadata.close();
  }
}
