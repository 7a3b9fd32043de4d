import type { Descriptor } from '../oci/manifest.js';
import type { ImmutableTagPattern, ImmutableTagRule } from './immutable-tag-rules.js';
import type { RetentionPolicy, RetentionPolicySpec } from './retention-policies.js';

export type { ImmutableTagPattern, ImmutableTagRule, RetentionPolicy, RetentionPolicySpec };

/** A manifest as stored: the exact bytes pushed and what was learned from them. */
export interface ManifestRecord {
  digest: string;
  mediaType: string;
  /** The exact bytes pushed. */
  content: Buffer;
  subject?: string;
  artifactType?: string;
  /** Bytes of the manifest plus every blob it references (for quotas and listings). */
  totalSize: number;
  createdAt: number;
}

/** A reference from a manifest, with the size its descriptor claims. */
export interface SizedReference {
  digest: string;
  size: number;
}

/**
 * What a manifest push records, in one transaction that first checks, under the same lock, that
 * every referenced blob is present and linked to the repository with the size the descriptor
 * says, and every child manifest is in the repository.
 */
export interface ManifestPut {
  repository: string;
  digest: string;
  mediaType: string;
  content: Buffer;
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** Blobs the manifest references (config, layers). */
  blobs: SizedReference[];
  /** Manifests an index references. */
  children: SizedReference[];
  /** Tags to point at the manifest (moved if they pointed elsewhere). */
  tags: string[];
  /** Who pushed (for history and audit); absent when anonymous. */
  actor?: string;
  /** The request that pushed, for notifications. */
  request?: ChangeRequest;
  /** The manifest's references as notifications list them. */
  references?: ChangeReference[];
  /**
   * What the image says of itself (`org.opencontainers.image.description`), when pushed with a
   * tag: the newest tagged manifest sets the repository's description (null clears it).
   */
  description?: string | null;
}

/** What a manifest push changed, read inside its transaction. */
export interface ManifestPutResult {
  /** Bytes of the manifest and everything it references. */
  totalSize: number;
  /** Every tag that now points at the manifest and did not before, with where it pointed. */
  moved: Array<{ tag: string; previous?: string }>;
}

export interface UploadRecord {
  id: string;
  repository: string;
  /** Bytes received and recorded so far: the sum of the parts' sizes. */
  size: number;
  /** The accepted parts, in order (files in the upload's storage directory). */
  parts: UploadPart[];
  /** The running sha256 over the parts (saved hash state); undefined when unknown. */
  hashState?: Uint8Array;
  startedAt: number;
  updatedAt: number;
}

/** One accepted chunk of an upload (see storage/blob-store.ts). */
export interface UploadPart {
  name: string;
  size: number;
}

/** What an upload's next part changes, applied only when the upload still has `from` bytes. */
/** An import of another registry's storage, as recorded in metadata. */
export interface StorageImport {
  source: string;
  startedAt: number;
  /** Undefined while the import is unfinished (running, or interrupted). */
  finishedAt?: number;
  /** Repositories wholly imported so far. */
  repositories: string[];
}

export interface UploadAdvance {
  /** The upload's size this advance expects (it fails when another request moved it meanwhile). */
  from: number;
  /**
   * The new part; with `extendsLast`, the upload's last part grown in place (same name, larger
   * size), which replaces it, and only if the last part is still that one.
   */
  part: UploadPart;
  hashState: Uint8Array | undefined;
  extendsLast?: boolean;
}

/**
 * Where a blob is in its life. Only `present` blobs are served, linked or mounted.
 * - `pending`: a commit is moving verified bytes into place (since `stateSince`);
 * - `present`: the bytes are in storage and were verified when they were written;
 * - `deleting`: unreferenced, marked for collection; a new upload, link or manifest revives it,
 *   bytes still there;
 * - `sweeping`: a collector is deleting the bytes; nothing may use or revive it;
 * - `quarantined`: the bytes failed a check (or are missing) and were moved aside; a new upload
 *   of the same digest puts good bytes back.
 * A row never says `present` while its bytes are missing, except when storage lost them behind
 * the registry's back, which `wharf fsck` finds.
 */
export type BlobState = 'pending' | 'present' | 'deleting' | 'sweeping' | 'quarantined';

export interface BlobRecord {
  digest: string;
  size: number;
  state: BlobState;
  stateSince: number;
  /**
   * When the blob was last uploaded, mounted or linked (ms since epoch): a collector leaves blobs
   * touched within its delay alone, so that a push between its blob uploads and its manifest PUT
   * never loses a blob.
   */
  touchedAt: number;
}

/**
 * What a commit must do for a digest (from reserveBlob): `present` — the bytes are there,
 * only link; `place` — the row is now `pending` and the caller moves verified bytes into place
 * before completing; `busy` — a collector is deleting the bytes right now: wait and ask again.
 */
export type BlobReservation = 'present' | 'place' | 'busy';

export interface Page {
  /** Return names strictly after this one. */
  after?: string;
  /** At most this many. */
  limit: number;
}

export interface TagRecord {
  name: string;
  digest: string;
  updatedAt: number;
}

/**
 * One move of a tag. `push`: the tag now points at `digest` and pointed at `previous` before
 * (absent for a new tag); a restore is a push too. `delete`: the tag was removed; `digest` and
 * `previous` both name where it pointed.
 */
export interface TagEvent {
  tag: string;
  digest: string | undefined;
  previous?: string;
  action: 'push' | 'delete';
  at: number;
  actor?: string;
}

/**
 * The HTTP request that made a change or a pull, as notifications report it (Distribution's
 * `request` block, plus the scheme so that target URLs can be built later).
 */
export interface ChangeRequest {
  id: string;
  addr: string;
  host: string;
  method: string;
  useragent: string;
  scheme?: 'http' | 'https';
}

/** A manifest's reference as a push event lists it (Distribution's `target.references`). */
export interface ChangeReference {
  mediaType: string;
  digest: string;
  size: number;
}

/**
 * A change to the registry, as the outbox records it: written in the transaction that makes the
 * change, so a consumer (notifications, search, metrics) sees every change exactly as committed,
 * crash or not. `actor` is the user or robot who made it (absent when anonymous); `request` the
 * HTTP request (absent for background work). Pulls, quota refusals and collections are recorded
 * too, in batches after the fact (see appendOutbox): they change nothing to commit with.
 */
export type ChangeEvent = ChangeKind & { actor?: string; request?: ChangeRequest };

/** One pull inside a `pull.batch` entry: when it was served (ms since epoch). */
export type RecordedPull = Extract<ChangeEvent, { action: 'manifest.pull' | 'blob.pull' }> & { at: number };

type ChangeKind =
  | { action: 'repository.create'; repository: string }
  | { action: 'blob.push'; repository: string; digest: string; size: number }
  | { action: 'blob.mount'; repository: string; digest: string; size: number; from?: string }
  | { action: 'blob.delete'; repository: string; digest: string }
  | {
      action: 'manifest.push';
      repository: string;
      digest: string;
      mediaType: string;
      size: number;
      tags: string[];
      subject?: string;
      artifactType?: string;
      /** The config and layers, or an index's manifests (absent in entries written before notifications). */
      references?: ChangeReference[];
    }
  /** A tag pointed at `previous` (absent for a new tag) and now points at `digest`; `restore` when put back from its history. */
  | { action: 'tag.move'; repository: string; tag: string; digest: string; previous?: string; restore?: boolean }
  | { action: 'manifest.delete'; repository: string; digest: string; tags: string[] }
  | { action: 'tag.delete'; repository: string; tag: string; digest: string }
  /** A collector removed a repository that had nothing left in it. */
  | { action: 'repository.delete'; repository: string }
  /** A manifest was served (GET or HEAD), by `tag` when asked by tag. */
  | { action: 'manifest.pull'; repository: string; digest: string; mediaType: string; size: number; tag?: string }
  /** A blob was served (GET, HEAD or a range of it). */
  | { action: 'blob.pull'; repository: string; digest: string; size: number }
  /**
   * Pulls served by one process within a few milliseconds, as one entry (one insert for many
   * pulls keeps recording them off the serving path's bill); each keeps its own time and origin.
   */
  | { action: 'pull.batch'; repository?: undefined; pulls: RecordedPull[] }
  /** A push refused by a quota (nothing was written). */
  | { action: 'quota.refuse'; repository: string; quota: string; limit: number; usage: number; adds: number; digest?: string }
  /** A garbage collection finished. */
  | { action: 'gc.collect'; repository?: undefined; deleted: { blobs: number; manifests: number; repositories: number }; bytesFreed: number; durationMs: number }
  /** A parked notification put back in line for one endpoint (`wharf admin events replay`). */
  | { action: 'notification.replay'; repository?: string; endpoint: string; original: OutboxEntry };

export interface OutboxEntry {
  /** Increasing; a consumer remembers the last one it handled. */
  id: number;
  at: number;
  event: ChangeEvent;
}

/** Who makes a change, for the outbox and tag history, and through which request. */
export interface ChangeOptions {
  actor?: string;
  request?: ChangeRequest;
}

/** Where deliveries to one notification endpoint stand after failures (none: all is well). */
export interface DeliveryStatus {
  /** Failed attempts at the entry after the endpoint's position. */
  attempts: number;
  /** Not before this time (ms since epoch). */
  nextAttemptAt: number;
  lastError?: string;
}

/** An outbox entry one endpoint gave up on after its attempts, kept until replayed. */
export interface ParkedEvent {
  id: number;
  endpoint: string;
  entry: OutboxEntry;
  attempts: number;
  lastError?: string;
  parkedAt: number;
}

export type JobState = 'ready' | 'running' | 'done' | 'failed';

/** A unit of background work (purge, collection, delivery, rescan), run by one process at a time. */
export interface JobRecord {
  id: number;
  kind: string;
  /** At most one job has a given key (recurring jobs, deduplicated work). */
  key?: string;
  payload: unknown;
  state: JobState;
  /** Not before this time (ms since epoch). */
  runAt: number;
  attempts: number;
  maxAttempts: number;
  /** For recurring jobs: run again this long after each run. */
  repeatMs?: number;
  /** The claim that holds the job while it runs, and until when. */
  leaseOwner?: string;
  leaseUntil?: number;
  lastError?: string;
  createdAt: number;
  updatedAt: number;
}

export interface NewJob {
  kind: string;
  key?: string;
  payload?: unknown;
  runAt?: number;
  /** Failed runs before the job is given up (`failed`); default 5. */
  maxAttempts?: number;
  repeatMs?: number;
}

/** How a claimed job's run ended. */
export type JobOutcome =
  | { kind: 'done' }
  /** Failed: run again at `runAt`, unless attempts are used up. */
  | { kind: 'retry'; error: string; runAt: number };

/** One manifest as a collector sees it: what keeps it, and what it keeps. */
export interface ManifestNode {
  digest: string;
  mediaType: string;
  /** Bytes of the manifest itself. */
  size: number;
  subject?: string;
  tags: string[];
  /** When the manifest was last pushed (ms since epoch). */
  touchedAt: number;
  /** Blobs it references (config, layers), sorted. */
  blobs: string[];
  /** Manifests it references (an index's children), sorted. */
  children: string[];
  /**
   * The last time a tag of the repository pointed at it or moved away from it, from the tag
   * history (ms since epoch); absent when no recorded tag move names it. A collector keeps a
   * manifest within the history retention of this time, so that a restore finds it.
   */
  taggedAt?: number;
  /** When it was last pulled (a GET by tag or digest; recorded in batches), absent if never. */
  pulledAt?: number;
}

/** A repository as a collector marks it, read in one snapshot. */
export interface RepositoryGraph {
  name: string;
  createdAt: number;
  /** Manifests in digest order. */
  manifests: ManifestNode[];
  /** Upload sessions open in it. */
  uploads: number;
  /** Blobs linked into it, sorted. */
  linked: string[];
  /** Its tags with when each was last pushed (moved), in name order. */
  tagged: Array<{ name: string; digest: string; pushedAt: number }>;
}

/** A named lease (one collector at a time): who holds it and until when. */
export type LeaseClaim = { acquired: true } | { acquired: false; holder: string; until: number };

/**
 * A storage quota. `name` is a repository (`team-a/app`) or a namespace: a prefix ending in `/`
 * (`team-a/`) that covers every repository whose name starts with it. Rules come from the
 * configuration file (`config`, replaced at every start) or the admin API (`api`); every rule
 * that covers a repository is enforced, so where both set one on the same name the smaller wins.
 */
export interface QuotaRule {
  name: string;
  /** Bytes (see RepositoryUsage for what counts). */
  limit: number;
  source: 'config' | 'api';
}

/** A rule with what it covers now. */
export interface QuotaStatus extends QuotaRule {
  scope: 'repository' | 'namespace';
  /** Bytes used by what the rule covers, by the same measure enforcement uses. */
  usage: number;
}

/**
 * What a repository uses. Defined once, here, for enforcement and for `wharf admin usage`: the
 * sizes of the distinct blobs linked to the repository (layers, configs; uploaded or mounted,
 * whether or not a manifest references them yet) plus the sizes of its manifests. A blob linked to
 * two repositories counts in each; a namespace uses the sum over its repositories.
 */
export interface RepositoryUsage {
  repository: string;
  bytes: number;
  blobs: number;
  manifests: number;
}

/** A quota that a change would take over its limit (turned into DENIED by metadata/quota.ts). */
export interface QuotaViolation {
  name: string;
  scope: 'repository' | 'namespace';
  limit: number;
  usage: number;
  /** Bytes the refused change would have added. */
  adds: number;
}

/**
 * The registry's source of truth: repositories, blob links, manifests, tags, uploads.
 * Absence is `undefined` (or `false` for a delete that found nothing); failures throw.
 * Every implementation (SQLite, PostgreSQL) passes test/metadata-contract.ts.
 */
/** Counts for metrics (`inventory`): blobs present, their bytes, manifests, repositories. */
export interface Inventory {
  repositories: number;
  manifests: number;
  blobs: number;
  blobBytes: number;
}

/** A repository as search and listings show it. */
export interface RepositorySummary {
  name: string;
  /** The newest tagged manifest's description, else the README's first paragraph; absent when neither says anything. */
  description?: string;
  stars: number;
}

/** A repository's page: what it says of itself, its stars, its size and when it last changed. */
export interface RepositoryProfile extends RepositorySummary {
  /** Markdown set by the owner; absent when none. */
  readme?: string;
  readmeUpdatedAt?: number;
  readmeUpdatedBy?: string;
  createdAt: number;
  /** When a tag last moved (ms since epoch); absent without tags. */
  lastPushedAt?: number;
  tagCount: number;
  /** Bytes, as quotas count them (see RepositoryUsage). */
  bytes: number;
}

/** One tag as the web UI lists it, with what its manifest says. */
export interface TagDetail {
  name: string;
  digest: string;
  mediaType: string;
  /** Bytes of the manifest and everything it references. */
  totalSize: number;
  /** When the tag was last moved here (ms since epoch). */
  pushedAt: number;
  /** When its manifest was last pulled; absent if never (or pull recording is off). */
  pulledAt?: number;
  /** The manifest's exact bytes (an index lists its platforms). */
  content: Buffer;
}

export interface TagDetailQuery {
  sort: 'name' | 'pushed' | 'size';
  descending: boolean;
  offset: number;
  limit: number;
}

export interface MetadataStore {
  readonly name: string;
  close(): Promise<void>;

  // --- blobs -------------------------------------------------------------------------------
  /** Size of a blob present in the registry, in any repository. */
  blobSize(digest: string): Promise<number | undefined>;
  /** A blob's row whatever its state; undefined when there is none. */
  getBlob(digest: string): Promise<BlobRecord | undefined>;
  /** Blob rows in digest order after `after` (for checks and collection). */
  listBlobs(page: Page): Promise<BlobRecord[]>;
  /** Size of a present blob that `repository` links (the access boundary). */
  repositoryBlobSize(repository: string, digest: string): Promise<number | undefined>;
  /** Records a stored, verified blob as present and links it into `repository` (creating the repository). */
  addBlob(repository: string, digest: string, size: number, options?: ChangeOptions): Promise<void>;
  /**
   * Links a present blob (reviving a `deleting` one); false when the registry has no present
   * blob of that digest, in one transaction with the check.
   */
  linkBlob(repository: string, digest: string, options?: ChangeOptions & { from?: string }): Promise<boolean>;
  /** Before a commit moves bytes into place: see BlobReservation. */
  reserveBlob(digest: string, size: number): Promise<BlobReservation>;
  /**
   * Marks a present blob `quarantined` (its bytes failed a check and were moved aside); false
   * when it was not present.
   */
  quarantineBlob(digest: string): Promise<boolean>;
  /** Removes a repository's link to a blob; false when there was none. */
  unlinkBlob(repository: string, digest: string, options?: ChangeOptions): Promise<boolean>;
  /** Repositories that link a blob, in lexical order, at most `limit` (for authorised automatic mounts). */
  repositoriesLinkingBlob(digest: string, limit: number): Promise<string[]>;
  /** Which of `digests` the repository does not link. */
  missingBlobs(repository: string, digests: string[]): Promise<string[]>;

  // --- uploads -----------------------------------------------------------------------------
  createUpload(upload: { id: string; repository: string; startedAt: number }): Promise<void>;
  getUpload(id: string): Promise<UploadRecord | undefined>;
  /**
   * Records the upload's next part and running hash, only if the upload still has `from` bytes:
   * false when another request got there first (or the upload is gone). Sizes only grow, so
   * exactly one request wins each offset.
   */
  advanceUpload(id: string, advance: UploadAdvance): Promise<boolean>;
  /**
   * In one transaction: checks that the upload still has `size` bytes, marks blob `digest`
   * present (it must be `present`, `deleting` or `pending` with its bytes in place), links it into
   * the upload's repository and forgets the upload. `gone` when the upload vanished or changed
   * size meanwhile; `retry` when the blob's bytes can no longer be relied on (a collector or a
   * check took them): reserve and place again.
   */
  completeUpload(id: string, size: number, digest: string, options?: ChangeOptions): Promise<'done' | 'gone' | 'retry'>;
  deleteUpload(id: string): Promise<boolean>;
  /** Uploads not touched since `before` (ms since epoch). */
  staleUploads(before: number, limit: number): Promise<UploadRecord[]>;

  // --- manifests and tags ------------------------------------------------------------------
  getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined>;
  /** The manifest a tag points at, in one lookup. */
  getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | undefined>;
  /** Which of `digests` are not manifests of the repository. */
  missingManifests(repository: string, digests: string[]): Promise<string[]>;
  /**
   * Throws MANIFEST_BLOB_UNKNOWN or MANIFEST_INVALID when a reference check fails (nothing is
   * written). A referenced blob in state `deleting` is revived (made `present`) in the same
   * transaction; one in state `sweeping` makes it throw UNAVAILABLE: the caller waits and tries
   * again, and finds the blob gone (MANIFEST_BLOB_UNKNOWN) once the sweep has finished. Throws
   * DENIED (nothing written, no tag moved) when an immutable-tag rule covers one of `tags` and it
   * points at another digest.
   */
  putManifest(put: ManifestPut): Promise<ManifestPutResult>;
  /**
   * Deletes a manifest and every tag on it; returns the tags removed, undefined when absent.
   * Throws DENIED (nothing changed) when an immutable-tag rule covers one of its tags.
   */
  deleteManifest(repository: string, digest: string, options?: ChangeOptions): Promise<string[] | undefined>;
  /**
   * Removes a tag; returns the digest it pointed at, undefined when there was no such tag.
   * Throws DENIED (nothing changed) when an immutable-tag rule covers it.
   */
  deleteTag(repository: string, tag: string, options?: ChangeOptions): Promise<string | undefined>;
  /**
   * Points a tag at a manifest already in the repository (a restore), recording the move in the
   * tag history and the outbox, in one transaction that checks the manifest is there
   * (MANIFEST_UNKNOWN otherwise) and that no immutable-tag rule forbids the move (DENIED).
   * Returns where the tag pointed before; `moved` is false when it already pointed there.
   */
  moveTag(repository: string, tag: string, digest: string, options?: ChangeOptions): Promise<{ previous?: string; moved: boolean }>;
  /** Tag names in lexical (byte) order; undefined when the repository does not exist. */
  listTags(repository: string, page: Page): Promise<string[] | undefined>;
  /** The tag's moves, newest first, at most `limit`; empty when there were none. */
  tagHistory(repository: string, tag: string, limit: number): Promise<TagEvent[]>;

  // --- immutable tags ----------------------------------------------------------------------
  /** Every rule, config and API ones, by id (the order in which they are matched). */
  listImmutableTagRules(): Promise<ImmutableTagRule[]>;
  /**
   * Adds an API rule; the same patterns added twice give the existing rule back. Takes effect for
   * every write that commits after it. The caller has checked the patterns.
   */
  addImmutableTagRule(pattern: ImmutableTagPattern, options?: ChangeOptions): Promise<ImmutableTagRule>;
  /** Removes an API rule; false when there is no API rule with that id (config rules stay). */
  removeImmutableTagRule(id: number): Promise<boolean>;
  /** Replaces the config rules with `patterns` (at start-up, from config.yml); API rules stay. */
  replaceConfigImmutableTagRules(patterns: readonly ImmutableTagPattern[]): Promise<void>;
  /** Manifests whose subject is `digest`, as descriptors for the referrers index. */
  listReferrers(repository: string, digest: string, options: { artifactType?: string }): Promise<Descriptor[]>;
  /** The indexes of the repository that list `digest` as a child, sorted; empty when none (or no such repository). */
  manifestParents(repository: string, digest: string): Promise<string[]>;

  // --- outbox ------------------------------------------------------------------------------
  /** Changes after `after` (an entry id; 0 for the start), oldest first, at most `limit`. */
  readOutbox(after: number, limit: number): Promise<OutboxEntry[]>;
  /** Where a named consumer is: the id of the last entry it handled (0 when new). */
  consumerPosition(consumer: string): Promise<number>;
  /** Moves a consumer from `from` to `to`; false when it was not at `from` (another process moved it). */
  advanceConsumer(consumer: string, from: number, to: number): Promise<boolean>;
  /** Deletes entries up to `upTo` that every consumer has passed; returns how many. */
  pruneOutbox(upTo: number): Promise<number>;
  /**
   * Appends entries that record no change of their own (pulls, refusals, collections, replays),
   * many in one transaction. The store may commit them without waiting for the disk: a power
   * failure (not a process crash) may lose the last ones.
   */
  appendOutbox(entries: ReadonlyArray<{ at: number; event: ChangeEvent }>): Promise<void>;
  /**
   * A consumer's position, creating the consumer at the end of the outbox when it is new (so that
   * a new notification endpoint is told of what happens from now on, not of all history).
   */
  ensureConsumer(consumer: string): Promise<number>;
  /** How many entries come after `after`. */
  countOutbox(after: number): Promise<number>;

  // --- notification deliveries -------------------------------------------------------------
  getDeliveryStatus(endpoint: string): Promise<DeliveryStatus | undefined>;
  /** Records (or, with undefined, clears) an endpoint's failures. */
  setDeliveryStatus(endpoint: string, status: DeliveryStatus | undefined): Promise<void>;
  /**
   * Gives up on `entry` for `endpoint`: keeps it as parked, moves `consumer` from `from` past it
   * and clears the endpoint's failures, in one transaction; false (nothing changed) when the
   * consumer was not at `from`.
   */
  parkEvent(endpoint: string, consumer: string, from: number, entry: OutboxEntry, failure: { attempts: number; lastError?: string }): Promise<boolean>;
  /** Parked entries, oldest first, of one endpoint or all, at most `limit`. */
  listParkedEvents(options: { endpoint?: string; limit: number }): Promise<ParkedEvent[]>;
  /**
   * Puts parked entries of `endpoint` (all, or those with `ids`) back in line: each becomes a
   * `notification.replay` entry at the end of the outbox and leaves the parked list, in one
   * transaction. Returns how many.
   */
  replayParkedEvents(endpoint: string, options: { ids?: readonly number[] }): Promise<number>;

  // --- jobs --------------------------------------------------------------------------------
  /**
   * Queues a job. With a `key` already queued (and not done or failed), returns that job instead,
   * taking the new `repeatMs` if it differs (a changed interval applies from the next run).
   */
  enqueueJob(job: NewJob): Promise<JobRecord>;
  /**
   * Claims the next due job of one of `kinds` for `owner` until now + `leaseMs`: a ready job whose
   * time has come, or a running one whose lease ran out (its runner died). Exactly one caller
   * gets each claim. Undefined when nothing is due.
   */
  claimJob(options: { kinds: readonly string[]; owner: string; leaseMs: number }): Promise<JobRecord | undefined>;
  /** Extends a lease still held by `owner`; false when the job was taken from it. */
  renewJobLease(id: number, owner: string, leaseMs: number): Promise<boolean>;
  /**
   * Ends a run held by `owner`: done (a recurring job is rescheduled `repeatMs` later), or retried
   * later, or failed once `maxAttempts` runs have failed. False when the lease was lost.
   */
  finishJob(id: number, owner: string, outcome: JobOutcome): Promise<boolean>;
  /** Jobs by id, newest first, optionally only in some states. */
  listJobs(options: { states?: readonly JobState[]; limit: number }): Promise<JobRecord[]>;

  // --- retention -----------------------------------------------------------------------------
  /**
   * Records manifest pulls, a batch at a time (see src/registry/pull-times.ts): each
   * manifest's last-pull time becomes the latest of its own and the batch's. Pulls of manifests
   * that are gone are ignored.
   */
  recordPulls(pulls: ReadonlyArray<{ repository: string; digest: string; at: number }>): Promise<void>;
  /** Every retention policy, in the order they apply: config ones, then API ones, each by id. */
  listRetentionPolicies(): Promise<RetentionPolicy[]>;
  /** Adds an API policy; every process sees it from its commit on. */
  addRetentionPolicy(spec: RetentionPolicySpec, options?: ChangeOptions): Promise<RetentionPolicy>;
  /** Removes an API policy; false when there is none with that id (config ones stay). */
  removeRetentionPolicy(id: number): Promise<boolean>;
  /** At start-up: config.yml's `retention.policies` replace the previous config ones. */
  replaceConfigRetentionPolicies(specs: readonly RetentionPolicySpec[]): Promise<void>;
  /**
   * Removes tags for retention, one commit for the batch, each only if it still points at the
   * digest given (a tag pushed again since stays) and no immutable-tag rule covers it. Each
   * removal is recorded in the tag history and the outbox like a DELETE. Returns the tags removed.
   */
  retireTags(repository: string, tags: ReadonlyArray<{ tag: string; digest: string }>, options?: ChangeOptions): Promise<string[]>;

  // --- garbage collection ------------------------------------------------------------------
  /**
   * Every repository (with or without manifests) in name order after `page.after`, at most
   * `page.limit`, each with its manifests, tags and references (see src/gc). Each repository is
   * read in one snapshot; the collector re-checks every decision in the transaction that acts on it.
   */
  listRepositoryGraphs(page: Page): Promise<RepositoryGraph[]>;
  /**
   * Deletes manifests that nothing keeps, each checked in the transaction that deletes it: no tag
   * points at it, no manifest of the repository lists it as a child or names it as subject, it
   * was pushed before `touchedBefore` and, with `historySince`, no tag move recorded at or after
   * that time names it (see ManifestNode.taggedAt). The batch is one commit; the result lists
   * those deleted, in the order given (a referrer or index given before its subject or child
   * frees it for the same batch). The others are unchanged.
   */
  deleteUntaggedManifests(
    manifests: ReadonlyArray<{ repository: string; digest: string }>,
    options: { touchedBefore: number; historySince?: number },
  ): Promise<Array<{ repository: string; digest: string }>>;
  /**
   * Marks `present` blobs `deleting` — hidden from pulls, HEAD and mounts, revived by any new
   * upload, mount or manifest that references them — each only if, in the same transaction, no
   * manifest in any repository references it and it was last touched before `touchedBefore`.
   * One commit for the batch; returns the digests marked (the others are kept).
   */
  markBlobsDeleting(digests: readonly string[], options: { touchedBefore: number }): Promise<string[]>;
  /**
   * Moves blobs to `sweeping` — after which nothing can use or revive them — each only if, in
   * the same transaction, no manifest in any repository references it, it was last touched
   * before `touchedBefore`, and it is `deleting` since `markedBefore` or earlier (or
   * `quarantined`, or `pending` since before `touchedBefore`: a commit that died). Returns the rows
   * taken, as they were; a blob kept, revived, not marked long enough or already being swept is
   * left out. The caller then deletes the bytes and calls finishBlobSweeps.
   */
  beginBlobSweeps(digests: readonly string[], options: { touchedBefore: number; markedBefore: number }): Promise<BlobRecord[]>;
  /** Removes `sweeping` blobs' rows and every link to them; returns the digests removed. */
  finishBlobSweeps(digests: readonly string[]): Promise<string[]>;
  /**
   * Deletes a repository with no manifests, no upload sessions and no blob links (sweeps remove
   * the links of the blobs they delete), created before `touchedBefore`; false (nothing changed)
   * otherwise.
   */
  deleteEmptyRepository(repository: string, options: { touchedBefore: number }): Promise<boolean>;
  /**
   * Takes or renews the lease `name` for `owner` until now + `ms`: granted when it is free,
   * expired, already `owner`'s, or held by `replacing` (a holder known to be dead).
   */
  acquireLease(name: string, owner: string, ms: number, options?: { replacing?: string }): Promise<LeaseClaim>;
  /** Gives a lease up; false when `owner` did not hold it. */
  releaseLease(name: string, owner: string): Promise<boolean>;

  // --- quotas and usage --------------------------------------------------------------------
  // Every write that adds bytes to a repository (addBlob, linkBlob, completeUpload, putManifest)
  // checks, in its own transaction and before it writes anything, every quota covering the
  // repository; when the bytes it adds (0 for a blob already linked or a manifest already there)
  // would take one over its limit it throws DENIED (see metadata/quota.ts) and changes nothing.
  // Two such writes racing for a quota's last bytes must not both pass: SQLite serialises every
  // write; a PostgreSQL store must lock the covering rules' rows (FOR UPDATE) before summing.
  /**
   * Usage per repository whose name starts with `prefix` (every repository without one), largest
   * first, then by name; at most `limit`.
   */
  repositoryUsage(options: { prefix?: string; limit: number }): Promise<RepositoryUsage[]>;
  /**
   * The quota that linking `bytes` more (none when `digest` is already linked) into `repository`
   * would exceed, the one with least room left; undefined when it fits. For refusing an upload
   * before its body is read; the write that links re-checks in its own transaction.
   */
  checkQuota(repository: string, change: { bytes: number; digest?: string }): Promise<QuotaViolation | undefined>;
  /** Every rule with its usage, by name then source. */
  listQuotas(): Promise<QuotaStatus[]>;
  /** Creates or changes the API's rule on `name`. */
  setQuota(name: string, limit: number): Promise<void>;
  /** Removes the API's rule on `name`; false when there was none (config rules stay). */
  removeQuota(name: string): Promise<boolean>;
  /** Replaces every `config` rule with these (at start, from the configuration file). */
  replaceConfigQuotas(rules: ReadonlyArray<{ name: string; limit: number }>): Promise<void>;

  // --- imports of another registry's storage ----------------------------------------------
  /** The import of `source` (an absolute directory), or undefined when none was begun. */
  getStorageImport(source: string): Promise<StorageImport | undefined>;
  /** Records that an import of `source` began; a rerun keeps the first record. */
  beginStorageImport(source: string): Promise<void>;
  /** Records one repository of `source` as wholly imported (a resumed import skips it). */
  markRepositoryImported(source: string, repository: string): Promise<void>;
  /** Records the import of `source` as finished. */
  finishStorageImport(source: string): Promise<void>;
  /** Imports begun and not finished (an automatic import resumes them at start). */
  unfinishedStorageImports(): Promise<string[]>;

  // --- operations --------------------------------------------------------------------------
  /** What the registry holds, for metrics: counted in one read, so the figures agree with each other. */
  inventory(): Promise<Inventory>;
  /**
   * Throws when the store cannot take a write now (read-only file, disk error); for readiness
   * probes. Takes and releases the write lock without writing; another writer holding it is fine.
   */
  checkWritable(): Promise<void>;

  // --- repositories ------------------------------------------------------------------------
  /** Repositories with at least one manifest, in lexical order. */
  listRepositories(page: Page): Promise<string[]>;
  /**
   * Repositories holding manifests whose name or description matches `text` (every word, the last
   * one as a prefix, case-insensitive), best first (see rankByName in repository-profile.ts): name
   * matches before description matches. An empty `text` lists all by name. Only names `visible`
   * accepts count. At most SEARCH_RESULT_CAP matches are considered: `total` counts the visible
   * ones among them, and `repositories` is the page `offset`..`offset + limit` of those, with stars.
   */
  searchRepositories(query: { text: string; offset: number; limit: number; visible?: (repository: string) => boolean }): Promise<{ total: number; repositories: RepositorySummary[] }>;
  /** Undefined when the repository does not exist. */
  repositoryProfile(repository: string): Promise<RepositoryProfile | undefined>;
  /** Sets (or with undefined, removes) the README; false when the repository does not exist. */
  setReadme(repository: string, readme: string | undefined, options?: ChangeOptions): Promise<boolean>;
  /** Stars or unstars a repository for a user; undefined when the repository does not exist, else whether it is starred now. */
  setStar(repository: string, user: string, starred: boolean): Promise<boolean | undefined>;
  /** Which of `repositories` the user starred. */
  starredBy(user: string, repositories: readonly string[]): Promise<Set<string>>;
  /** One page of a repository's tags with their manifests; undefined when the repository does not exist. */
  listTagDetails(repository: string, query: TagDetailQuery): Promise<{ total: number; tags: TagDetail[] } | undefined>;
  repositoryExists(repository: string): Promise<boolean>;
}
