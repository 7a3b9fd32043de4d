import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { RegistryError } from '../errors/index.js';
import type { BlobRecord, MetadataStore, RepositoryGraph } from '../metadata/metadata-store.js';
import { storedDigest } from '../oci/digest.js';
import type { BlobStore } from '../storage/blob-store.js';
import { isSignatureManifest, signedDigestOfTag } from '../signing/signature-manifest.js';

/** The lease every collector takes first, so that one collection runs at a time (CLI, job, replica). */
export const COLLECTION_LEASE = 'gc.collect';
const LEASE_MS = 30_000;
const PAGE = 200;
/** Rows per sweep transaction: one commit (one fsync) decides this many blobs or manifests. */
const BATCH = 1000;

export interface CollectionOptions {
  /** Report only: delete nothing, take no lease. */
  dryRun: boolean;
  /** Also delete manifests that no tag keeps (Distribution's --delete-untagged). */
  deleteUntagged: boolean;
  /** Anything uploaded, mounted, linked or pushed this recently is kept, referenced or not. */
  delayMs: number;
  /**
   * `history.retention`: with deleteUntagged, an untagged manifest that a tag pointed at within
   * this long is kept (with what it keeps), so that `wharf tag restore` finds it. 0 or absent: off.
   */
  historyRetentionMs?: number;
  /** Told each report line, worded as Distribution's `registry garbage-collect` prints it. */
  onLine?: (line: string) => void;
  /** Removes expired upload sessions (the upload service does it); its counts go in the report. */
  purgeUploads?: (options: { dryRun: boolean }) => Promise<{ sessions: number; orphans: number }>;
  /** Stops the collection between two steps (every step is a transaction of its own). */
  signal?: AbortSignal;
  /**
   * Seams for tests that drive races one step at a time: called before a blob is marked, once
   * it is `deleting`, and once it is `sweeping` (before its bytes are deleted).
   */
  hooks?: {
    beforeBlobSweep?(digest: string): Promise<void>;
    whileMarked?(digest: string): Promise<void>;
    whileSweeping?(digest: string): Promise<void>;
  };
}

export interface CollectionReport {
  dryRun: boolean;
  deleteUntagged: boolean;
  delayMs: number;
  startedAt: string;
  durationMs: number;
  /** Digests in use: kept manifests and everything they reference (Distribution's mark set). */
  marked: string[];
  /**
   * Digests nothing references: blobs, plus the eligible manifests' own digests, which
   * Distribution stores (and therefore counts) as blobs.
   */
  eligibleBlobs: string[];
  eligibleManifests: Array<{ repository: string; digest: string }>;
  /** Repositories left with nothing in them. */
  eligibleRepositories: string[];
  /** Kept because they were touched within the delay. */
  young: { blobs: number; manifests: number };
  /** Untagged manifests kept because a tag pointed at them within the history retention. */
  history: { retentionMs: number; manifests: number };
  /** Blobs marked `deleting` less than the delay ago: a later collection sweeps them. */
  awaitingSweep: number;
  deleted: { blobs: number; manifests: number; repositories: number; resumedSweeps: number };
  /** Eligible when marked, kept after all: referenced or touched again before they could go. */
  rescued: { blobs: number; manifests: number; repositories: number };
  uploads: { sessions: number; orphans: number };
  /** Bytes of the blobs and manifests deleted (what would be, in a dry run). */
  bytesFreed: number;
}

/**
 * Mark and sweep over metadata, safe while the registry serves (docs/garbage-collection.md):
 *
 * 1. Mark, from the metadata: kept manifests are every manifest (or, deleting untagged ones, the
 *    tagged ones and those pushed within the delay) and, transitively, their index children,
 *    their subjects and their referrers; marked digests are those and every blob they reference.
 * 2. Sweep, one transaction per step, each re-checking its own condition: an untagged manifest
 *    goes only if still untagged and unreferenced; a blob is marked `deleting` only if no manifest
 *    references it and it was not touched within the delay (hidden from pulls, revived by any new
 *    reference), and moves on to `sweeping` only if still so, once marked for the delay too; its
 *    bytes are deleted, then its row.
 *
 * Invariant: a blob row leaves `present` only in a transaction that sees no reference to it, and a
 * manifest referencing a blob is written only in a transaction that sees the blob present or
 * `deleting` (and revives it; see MetadataStore.putManifest). Transactions are serialised, so no
 * committed manifest ever references a swept blob. A collector that dies leaves rows in
 * `sweeping`, which nothing can use; the next collection finishes them.
 */
export async function collectGarbage(metadata: MetadataStore, store: BlobStore, options: CollectionOptions): Promise<CollectionReport> {
  const started = Date.now();
  const emit = options.onLine ?? (() => undefined);
  const lease = options.dryRun ? undefined : await holdLease(metadata);
  const signal = lease ? (options.signal ? AbortSignal.any([options.signal, lease.lost]) : lease.lost) : options.signal;
  try {
    const cutoff = started - options.delayMs;
    const historySince = options.historyRetentionMs ? started - options.historyRetentionMs : undefined;
    const report: CollectionReport = {
      dryRun: options.dryRun,
      deleteUntagged: options.deleteUntagged,
      delayMs: options.delayMs,
      startedAt: new Date(started).toISOString(),
      durationMs: 0,
      marked: [],
      eligibleBlobs: [],
      eligibleManifests: [],
      eligibleRepositories: [],
      young: { blobs: 0, manifests: 0 },
      history: { retentionMs: options.historyRetentionMs ?? 0, manifests: 0 },
      awaitingSweep: 0,
      deleted: { blobs: 0, manifests: 0, repositories: 0, resumedSweeps: 0 },
      rescued: { blobs: 0, manifests: 0, repositories: 0 },
      uploads: { sessions: 0, orphans: 0 },
      bytesFreed: 0,
    };

    // Expired sessions first: a repository that only they kept is then empty.
    if (options.purgeUploads) report.uploads = await options.purgeUploads({ dryRun: options.dryRun });

    // --- mark ---------------------------------------------------------------------------------
    const marked = new Set<string>();
    const doomedManifests: Array<{ repository: string; digest: string; size: number }> = [];
    const doomedSignatures: DoomedSignature[] = [];
    const emptied: RepositoryGraph[] = [];
    for await (const repo of repositoryGraphs(metadata)) {
      emit(repo.name);
      const kept = keptManifests(repo, { deleteUntagged: options.deleteUntagged, cutoff, historySince }, report);
      for (const node of repo.manifests) {
        const signedDigests = signatureTagTargets(node.tags);
        if (!kept.has(node.digest) && signedDigests !== undefined) {
          // Kept by its .sig tags alone, and its image is going or gone: it goes after the image.
          emit(`signature manifest eligible for deletion with its image: ${node.digest}`);
          doomedSignatures.push({ repository: repo.name, digest: node.digest, size: node.size, tags: node.tags, signs: signedDigests });
          continue;
        }
        if (!kept.has(node.digest)) {
          emit(`manifest eligible for deletion: ${node.digest}`);
          doomedManifests.push({ repository: repo.name, digest: node.digest, size: node.size });
          continue;
        }
        emit(`${repo.name}: marking manifest ${node.digest} `);
        marked.add(node.digest);
        for (const reference of [...node.blobs, ...node.children]) {
          marked.add(reference);
          emit(`${repo.name}: marking blob ${reference}`);
        }
      }
      if (kept.size === 0 && repo.uploads === 0 && repo.createdAt < cutoff) emptied.push(repo);
    }

    const eligible: BlobRecord[] = [];
    const unfinished: BlobRecord[] = [];
    for await (const blob of allBlobs(metadata)) {
      if (blob.state === 'sweeping') unfinished.push(blob);
      else if (marked.has(blob.digest)) continue;
      else if (blob.touchedAt >= cutoff || (blob.state === 'pending' && blob.stateSince >= cutoff)) report.young.blobs += 1;
      else eligible.push(blob);
    }
    const eligibleDigests = new Set([...eligible, ...unfinished].map((blob) => blob.digest));
    for (const manifest of doomedManifests) if (!marked.has(manifest.digest)) eligibleDigests.add(manifest.digest);
    report.marked = [...marked].sort();
    report.eligibleBlobs = [...eligibleDigests].sort();
    report.eligibleManifests = doomedManifests.map(({ repository, digest }) => ({ repository, digest }));
    emit('');
    emit(`${marked.size} blobs marked, ${eligibleDigests.size} blobs and ${doomedManifests.length} manifests eligible for deletion`);

    // --- sweep --------------------------------------------------------------------------------
    // Manifests first: their blobs are unreferenced only once they are gone. Referrers and
    // indexes go before their subjects and children, so repeat until a pass deletes nothing.
    // Every step acts on a batch in one commit; each row's condition is checked in that commit.
    let pending = doomedManifests;
    while (!options.dryRun && pending.length > 0) {
      const gone = new Set<string>();
      for (const batch of chunks(pending, BATCH)) {
        signal?.throwIfAborted();
        for (const m of await metadata.deleteUntaggedManifests(batch, { touchedBefore: cutoff, ...(historySince !== undefined ? { historySince } : {}) })) {
          gone.add(`${m.repository}@${m.digest}`);
        }
      }
      const left = pending.filter((m) => !gone.has(`${m.repository}@${m.digest}`));
      for (const m of pending) {
        if (!gone.has(`${m.repository}@${m.digest}`)) continue;
        report.deleted.manifests += 1;
        report.bytesFreed += m.size;
      }
      if (left.length === pending.length) break;
      pending = left;
    }
    const signaturesDeleted = options.dryRun ? 0 : await deleteSignaturesOfGoneImages(metadata, doomedSignatures, cutoff, signal);
    report.deleted.manifests += signaturesDeleted;
    for (const m of doomedSignatures) {
      report.eligibleManifests.push({ repository: m.repository, digest: m.digest });
      if (options.dryRun) report.bytesFreed += m.size;
    }
    if (!options.dryRun) {
      report.bytesFreed += doomedSignatures.filter((m) => m.deleted).reduce((sum, m) => sum + m.size, 0);
      report.rescued.manifests = doomedManifests.length + doomedSignatures.length - report.deleted.manifests;
    } else report.bytesFreed += doomedManifests.reduce((sum, m) => sum + m.size, 0);

    const rows = new Map([...eligible, ...unfinished].map((blob) => [blob.digest, blob]));
    const swept = new Set<string>();
    for (const digest of report.eligibleBlobs) emit(`blob eligible for deletion: ${digest}`);
    const sweepable = report.eligibleBlobs.flatMap((digest) => rows.get(digest) ?? []);
    if (options.dryRun) {
      for (const blob of sweepable) report.bytesFreed += blob.state === 'quarantined' ? 0 : blob.size;
    }
    for (const batch of options.dryRun ? [] : chunks(sweepable, BATCH)) {
      signal?.throwIfAborted();
      // Left by a collector that died (this one holds the lease, so no other is at work).
      const resumed = batch.filter((blob) => blob.state === 'sweeping');
      await deleteBytes(store, resumed);
      for (const digest of await metadata.finishBlobSweeps(resumed.map((blob) => blob.digest))) {
        swept.add(digest);
        report.deleted.resumedSweeps += 1;
        report.bytesFreed += bytesOf(rows.get(digest)!);
      }

      // Marked first: hidden from pulls and HEAD, but a manifest, upload or mount still revives it.
      const fresh = batch.filter((blob) => blob.state !== 'sweeping');
      for (const blob of fresh) await options.hooks?.beforeBlobSweep?.(blob.digest);
      const present = fresh.filter((blob) => blob.state === 'present').map((blob) => blob.digest);
      const marking = metadata.markBlobsDeleting(present, { touchedBefore: cutoff });
      // With no delay to wait out between the mark and the take, the take is asked for at once:
      // a store that commits queued writes together (SQLite's group commit) decides both in one
      // commit, in order. The take re-checks every row itself, so a present row that the mark
      // passed over (referenced, or touched) is passed over again, as if only the marked were asked.
      const fused = options.delayMs === 0 && !options.hooks?.whileMarked;
      const early = fused ? metadata.beginBlobSweeps(fresh.map((blob) => blob.digest), { touchedBefore: cutoff, markedBefore: Number.MAX_SAFE_INTEGER }) : undefined;
      const [markedDigests, earlyTaken] = await Promise.all([marking, early]);
      const marked = new Set(markedDigests);
      report.rescued.blobs += present.length - marked.size;
      const candidates = fresh.filter((blob) => blob.state !== 'present' || marked.has(blob.digest)).map((blob) => blob.digest);
      for (const digest of candidates) await options.hooks?.whileMarked?.(digest);

      let taken = earlyTaken ?? (await metadata.beginBlobSweeps(candidates, { touchedBefore: cutoff, markedBefore: Date.now() - options.delayMs }));
      if (earlyTaken) {
        // A store that runs the two concurrently (PostgreSQL: two connections) may have decided
        // the take before the mark committed: the marked rows it missed are asked for again.
        const early = new Set(earlyTaken.map((blob) => blob.digest));
        const missed = candidates.filter((digest) => !early.has(digest));
        if (missed.length > 0) taken = [...taken, ...(await metadata.beginBlobSweeps(missed, { touchedBefore: cutoff, markedBefore: Number.MAX_SAFE_INTEGER }))];
      }
      const takenDigests = new Set(taken.map((blob) => blob.digest));
      for (const digest of candidates) {
        if (takenDigests.has(digest)) continue;
        // Revived since, or marked less than the delay ago: a later collection sweeps it.
        if ((await metadata.getBlob(digest))?.state === 'deleting') report.awaitingSweep += 1;
        else report.rescued.blobs += 1;
      }
      for (const blob of taken) await options.hooks?.whileSweeping?.(blob.digest);
      await deleteBytes(store, taken);
      for (const digest of await metadata.finishBlobSweeps(taken.map((blob) => blob.digest))) {
        swept.add(digest);
        report.deleted.blobs += 1;
      }
      for (const blob of taken) report.bytesFreed += bytesOf(blob);
    }

    // Empty once its manifests are gone and its links went with the blobs swept.
    for (const repo of emptied) {
      if (!repo.linked.every((digest) => (options.dryRun ? eligibleDigests : swept).has(digest))) continue;
      emit(`repository eligible for deletion: ${repo.name}`);
      report.eligibleRepositories.push(repo.name);
      if (options.dryRun) continue;
      signal?.throwIfAborted();
      if (await metadata.deleteEmptyRepository(repo.name, { touchedBefore: cutoff })) report.deleted.repositories += 1;
      else report.rescued.repositories += 1;
    }

    report.durationMs = Date.now() - started;
    return report;
  } finally {
    await lease?.release();
  }
}

/**
 * The manifests of a repository that stay. Without deleteUntagged, all of them (as Distribution).
 * With it: tagged ones, those pushed within the delay and those a tag pointed at within the
 * history retention, then everything they keep: an index's
 * children, a manifest's subject chain, and the referrers of anything kept.
 */
function keptManifests(
  repo: RepositoryGraph,
  { deleteUntagged, cutoff, historySince }: { deleteUntagged: boolean; cutoff: number; historySince: number | undefined },
  report: CollectionReport,
): Set<string> {
  const present = new Set(repo.manifests.map((m) => m.digest));
  if (!deleteUntagged) {
    // Everything stays, as in Distribution, except signatures whose image was deleted.
    const orphans = repo.manifests.filter((m) => m.touchedAt < cutoff && signatureTagTargets(m.tags)?.every((d) => !present.has(d)));
    for (const m of orphans) present.delete(m.digest);
    return present;
  }
  const byDigest = new Map(repo.manifests.map((m) => [m.digest, m]));
  const referrers = new Map<string, string[]>();
  for (const node of repo.manifests) {
    if (node.subject !== undefined) referrers.set(node.subject, [...(referrers.get(node.subject) ?? []), node.digest]);
  }
  const queue: string[] = [];
  // Manifests that only `sha256-HEX.sig` tags hold are kept with the image they sign (below).
  const signatures = repo.manifests.filter((node) => node.touchedAt < cutoff && signatureTagTargets(node.tags) !== undefined);
  const signatureDigests = new Set(signatures.map((node) => node.digest));
  for (const node of repo.manifests) {
    if (node.tags.length > 0 && !signatureDigests.has(node.digest)) queue.push(node.digest);
    else if (node.tags.length > 0) continue;
    else if (node.touchedAt >= cutoff) {
      report.young.manifests += 1;
      queue.push(node.digest);
    } else if (historySince !== undefined && node.taggedAt !== undefined && node.taggedAt >= historySince) {
      // A restore may still point a tag back at it.
      report.history.manifests += 1;
      queue.push(node.digest);
    }
  }
  const kept = new Set<string>();
  const close = () => {
    while (queue.length > 0) {
      const digest = queue.pop()!;
      const node = byDigest.get(digest);
      if (!node || kept.has(digest)) continue;
      kept.add(digest);
      queue.push(...node.children, ...(referrers.get(digest) ?? []));
      if (node.subject !== undefined) queue.push(node.subject);
    }
  };
  close();
  // A signature of a signature (rare) waits for the pass that keeps what it signs.
  for (let added = true; added; ) {
    added = false;
    for (const node of signatures) {
      if (kept.has(node.digest) || !signatureTagTargets(node.tags)!.some((d) => kept.has(d))) continue;
      queue.push(node.digest);
      added = true;
    }
    close();
  }
  return kept;
}

/** The digests a manifest's tags sign when every tag is a cosign `sha256-HEX.sig` tag; undefined otherwise (or untagged). */
function signatureTagTargets(tags: readonly string[]): string[] | undefined {
  if (tags.length === 0) return undefined;
  const digests = tags.map(signedDigestOfTag);
  return digests.every((d) => d !== undefined) ? (digests as string[]) : undefined;
}

interface DoomedSignature {
  repository: string;
  digest: string;
  size: number;
  tags: string[];
  /** The images its tags name. */
  signs: string[];
  deleted?: boolean;
}

/**
 * Deletes signature manifests whose images are gone: once the image sweep is done, and only
 * when no image they sign is in the repository any more (an image rescued by a new tag keeps
 * its signatures) and the manifest is truly a signature manifest, their `.sig` tags first (each only while it still points at the signature),
 * then the manifest as any untagged one. No tag history is kept for them: a signature of an
 * image that no longer exists has nothing to restore. Returns how many went.
 */
async function deleteSignaturesOfGoneImages(metadata: MetadataStore, doomed: DoomedSignature[], cutoff: number, signal: AbortSignal | undefined): Promise<number> {
  let deleted = 0;
  for (const signature of doomed) {
    signal?.throwIfAborted();
    const { repository, digest } = signature;
    const imagesLeft = await Promise.all(signature.signs.map((d) => metadata.getManifest(repository, d)));
    if (imagesLeft.some((m) => m !== undefined)) continue;
    // An image pushed under a tag that only looks like a signature's is kept as any tagged image.
    const manifest = await metadata.getManifest(repository, digest);
    if (!manifest || !isSignatureManifest(manifest.content)) continue;
    for (const tag of signature.tags) {
      if ((await metadata.getTaggedManifest(repository, tag))?.digest === digest) await metadata.deleteTag(repository, tag);
    }
    const gone = await metadata.deleteUntaggedManifests([{ repository, digest }], { touchedBefore: cutoff });
    if (gone.length > 0) {
      signature.deleted = true;
      deleted += 1;
    }
  }
  return deleted;
}

function* chunks<T>(items: readonly T[], size: number): Iterable<T[]> {
  for (let at = 0; at < items.length; at += size) yield items.slice(at, at + size);
}

function bytesOf(blob: BlobRecord): number {
  return blob.state === 'quarantined' ? 0 : blob.size;
}

/** Deletes the blobs' bytes. */
async function deleteBytes(store: BlobStore, blobs: readonly BlobRecord[]): Promise<void> {
  await store.deleteBlobs(blobs.map((blob) => storedDigest(blob.digest)));
}

async function* repositoryGraphs(metadata: MetadataStore): AsyncIterable<RepositoryGraph> {
  let after: string | undefined;
  for (;;) {
    const page = await metadata.listRepositoryGraphs({ ...(after !== undefined ? { after } : {}), limit: PAGE });
    yield* page;
    if (page.length < PAGE) return;
    after = page[page.length - 1]!.name;
  }
}

async function* allBlobs(metadata: MetadataStore): AsyncIterable<BlobRecord> {
  let after: string | undefined;
  for (;;) {
    const page = await metadata.listBlobs({ ...(after !== undefined ? { after } : {}), limit: PAGE * 5 });
    yield* page;
    if (page.length < PAGE * 5) return;
    after = page[page.length - 1]!.digest;
  }
}

interface HeldLease {
  /** Fires when the lease could not be renewed: another collector may have taken over. */
  lost: AbortSignal;
  release(): Promise<void>;
}

/**
 * Takes the collection lease and keeps renewing it. A holder on this host whose process is gone
 * (killed mid-collection) is replaced at once instead of after its lease runs out.
 */
async function holdLease(metadata: MetadataStore): Promise<HeldLease> {
  const owner = `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
  let claim = await metadata.acquireLease(COLLECTION_LEASE, owner, LEASE_MS);
  if (!claim.acquired && holderIsDead(claim.holder)) {
    claim = await metadata.acquireLease(COLLECTION_LEASE, owner, LEASE_MS, { replacing: claim.holder });
  }
  if (!claim.acquired) {
    throw new RegistryError('UNAVAILABLE', {
      message: `another garbage collection is running (${claim.holder}); try again once it has finished`,
      detail: { holder: claim.holder, until: new Date(claim.until).toISOString() },
    });
  }
  const lost = new AbortController();
  const renewal = setInterval(() => {
    metadata.acquireLease(COLLECTION_LEASE, owner, LEASE_MS).then(
      (renewed) => {
        if (!renewed.acquired) lost.abort(new RegistryError('UNAVAILABLE', { message: 'the garbage collection lease was lost to another collector' }));
      },
      () => undefined,
    );
  }, LEASE_MS / 3);
  renewal.unref();
  return {
    lost: lost.signal,
    async release() {
      clearInterval(renewal);
      await metadata.releaseLease(COLLECTION_LEASE, owner).catch(() => undefined);
    },
  };
}

function holderIsDead(holder: string): boolean {
  const [host, pid] = holder.split('/');
  const id = Number(pid);
  if (host !== hostname() || !Number.isInteger(id) || id <= 0 || id === process.pid) return false;
  try {
    process.kill(id, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
