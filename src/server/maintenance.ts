import type { WharfConfig } from '../config/config.js';
import { collectGarbage, type CollectionOptions, type CollectionReport } from '../gc/garbage-collector.js';
import { checkIntegrity, type IntegrityOptions, type IntegrityReport } from '../gc/integrity-check.js';
import { createRegistry, gcSettings, openStores } from './server.js';

export type { CollectionReport, IntegrityReport };

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
