import type { MetadataStore, NewJob } from '../metadata/metadata-store.js';
import { INDEX_MANIFEST_TYPES } from '../oci/media-types.js';
import { SCAN_CONSUMER, SCAN_IMAGE_JOB } from './scan-service.js';

/** Outbox entries read per run of the feed. */
const BATCH = 500;

/**
 * Reads the outbox from the scanner's position and queues a scan job for each pushed image
 * manifest: the scan runs later, in whichever process claims it, so a push never waits for it.
 * Artifacts with a subject (the scanner's own SBOMs and reports among them) are not queued, nor
 * indexes, whose images arrive as pushes of their own. Returns how many scans were queued.
 */
export async function feedScans(metadata: MetadataStore, enqueue: (job: NewJob) => Promise<unknown>): Promise<number> {
  const position = await metadata.consumerPosition(SCAN_CONSUMER);
  const entries = await metadata.readOutbox(position, BATCH);
  let queued = 0;
  for (const entry of entries) {
    const event = entry.event;
    if (event.action !== 'manifest.push' || event.subject || INDEX_MANIFEST_TYPES.has(event.mediaType)) continue;
    await enqueue({ kind: SCAN_IMAGE_JOB, key: `scan:${event.repository}@${event.digest}`, payload: { repository: event.repository, digest: event.digest }, maxAttempts: 3 });
    queued++;
  }
  const last = entries[entries.length - 1];
  if (last) await metadata.advanceConsumer(SCAN_CONSUMER, position, last.id);
  return queued;
}
