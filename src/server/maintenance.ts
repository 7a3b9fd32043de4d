import type { WharfConfig } from '../config/config.js';
import { collectGarbage, type CollectionOptions, type CollectionReport } from '../gc/garbage-collector.js';
import { checkIntegrity, type IntegrityOptions, type IntegrityReport } from '../gc/integrity-check.js';
import { findDistributionStorage, importDistributionStorage, type ImportOptions, type ImportReport } from '../migrate/distribution-import.js';
import { createRegistry, gcSettings, openStores } from './server.js';

export type { CollectionReport, ImportReport, IntegrityReport };

/** `wharf fsck`: checks every stored blob against its digest, on the configured storage. */
export async function runIntegrityCheck(config: WharfConfig, options: IntegrityOptions): Promise<IntegrityReport> {
  const { metadata, store } = openStores(config);
  try {
    return await checkIntegrity(metadata, store, options);
  } finally {
    await metadata.close();
  }
}

/**
 * `wharf garbage-collect`: one collection over the configured storage, safe beside a running
 * `wharf serve` on the same data directory. Expired upload sessions go too, when upload
 * purging is enabled.
 */
export async function runGarbageCollection(
  config: WharfConfig,
  options: Pick<CollectionOptions, 'dryRun' | 'deleteUntagged' | 'onLine'>,
): Promise<CollectionReport> {
  const stores = openStores(config);
  const registry = createRegistry(config, undefined, stores);
  try {
    return await collectGarbage(stores.metadata, stores.store, { ...options, ...gcSettings(config, registry) });
  } finally {
    await registry.close();
  }
}

/**
 * `wharf migrate FROM_DIR`: imports a registry:2 storage root into the configured storage (see
 * src/migrate/distribution-import.ts). Resumes an interrupted import of the same directory.
 * Throws when `fromDirectory` holds no registry:2 layout.
 */
export async function runStorageImport(config: WharfConfig, fromDirectory: string, options: ImportOptions = {}): Promise<ImportReport> {
  const source = findDistributionStorage(fromDirectory);
  if (!source) throw new Error(`${fromDirectory} holds no registry:2 storage (no docker/registry/v2 with repositories and blobs)`);
  const stores = openStores(config);
  const registry = createRegistry(config, undefined, stores);
  try {
    return await importDistributionStorage(registry, source, options);
  } finally {
    await registry.close();
  }
}
