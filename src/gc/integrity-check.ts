import { isRegistryError } from '../errors/index.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { storedDigest, type Digest } from '../oci/digest.js';
import type { BlobStore } from '../storage/blob-store.js';

/** One blob whose bytes are not what its digest says. */
export interface CorruptBlob {
  digest: string;
  /** What the stored bytes hash to. */
  actual: string;
  size: number;
  /** Where the bytes were moved; absent in a dry run. */
  quarantinedTo?: string;
}

export interface IntegrityReport {
  dryRun: boolean;
  /** Blobs recorded as present whose bytes were read and hashed. */
  checked: number;
  /** Bytes read while checking. */
  bytes: number;
  corrupt: CorruptBlob[];
  /** Recorded as present, but storage has no bytes for them. */
  missing: string[];
  /** Files in the blob tree that no record names (left for the garbage collector). */
  unrecorded: number;
}

export interface IntegrityOptions {
  dryRun: boolean;
  /** Told of each finding as it is made (for progress output). */
  onFinding?: (finding: { kind: 'corrupt'; blob: CorruptBlob } | { kind: 'missing'; digest: string }) => void;
}

const PAGE = 500;

/**
 * `wharf fsck`: reads every blob the metadata says is present, hashes its bytes and moves any
 * that do not match their digest into quarantine, marking the blob `quarantined` so that it is no
 * longer served and the next push of that digest stores good bytes again. Safe while the registry
 * serves: a commit replaces a blob's bytes only when its row is not `present`, and a file moved
 * aside is hashed again before the row changes, so good bytes that arrived meanwhile go back.
 */
export async function checkIntegrity(metadata: MetadataStore, store: BlobStore, options: IntegrityOptions): Promise<IntegrityReport> {
  const report: IntegrityReport = { dryRun: options.dryRun, checked: 0, bytes: 0, corrupt: [], missing: [], unrecorded: 0 };
  let after: string | undefined;
  for (;;) {
    const page = await metadata.listBlobs({ ...(after !== undefined ? { after } : {}), limit: PAGE });
    for (const row of page) {
      if (row.state !== 'present') continue;
      const blob = { ...row, digest: storedDigest(row.digest) };
      let stored: { digest: string; size: number };
      try {
        stored = await store.rehash(blob.digest);
      } catch (error) {
        if (!isRegistryError(error) || error.code !== 'BLOB_UNKNOWN') throw error;
        report.missing.push(blob.digest);
        if (!options.dryRun) await metadata.quarantineBlob(blob.digest);
        options.onFinding?.({ kind: 'missing', digest: blob.digest });
        continue;
      }
      report.checked += 1;
      report.bytes += stored.size;
      if (stored.digest === blob.digest && stored.size === blob.size) continue;
      const finding: CorruptBlob = { digest: blob.digest, actual: stored.digest, size: stored.size };
      if (!options.dryRun) {
        const aside = await quarantine(metadata, store, blob.digest);
        if (aside === undefined) continue;
        finding.quarantinedTo = aside;
      }
      report.corrupt.push(finding);
      options.onFinding?.({ kind: 'corrupt', blob: finding });
    }
    if (page.length < PAGE) break;
    after = page[page.length - 1]!.digest;
  }
  for await (const file of store.walkBlobs()) {
    if ((await metadata.getBlob(file.digest)) === undefined) report.unrecorded += 1;
  }
  return report;
}

/** Moves bad bytes aside and marks the blob; undefined when the bytes turned out good after all. */
async function quarantine(metadata: MetadataStore, store: BlobStore, digest: Digest): Promise<string | undefined> {
  const aside = await store.quarantine(digest);
  // Hash what was moved: if a commit put good bytes in place since the first hash, restore them.
  const moved = await store.rehashQuarantined(aside, digest);
  if (moved === digest) {
    await store.restoreFromQuarantine(aside, digest);
    return undefined;
  }
  await metadata.quarantineBlob(digest);
  return aside;
}
