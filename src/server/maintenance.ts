import type { WharfConfig } from '../config/config.js';
import { checkIntegrity, type IntegrityOptions, type IntegrityReport } from '../gc/integrity-check.js';
import { openStores } from './server.js';

export type { IntegrityReport };

/** `wharf fsck`: checks every stored blob against its digest, on the configured storage. */
export async function runIntegrityCheck(config: WharfConfig, options: IntegrityOptions): Promise<IntegrityReport> {
  const { metadata, store } = openStores(config);
  try {
    return await checkIntegrity(metadata, store, options);
  } finally {
    await metadata.close();
  }
}
