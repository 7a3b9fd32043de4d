import type { Descriptor } from '../oci/manifest.js';

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

/** What a manifest push records, in one transaction. */
export interface ManifestPut {
  repository: string;
  digest: string;
  mediaType: string;
  content: Buffer;
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
  totalSize: number;
  /** Blobs the manifest references (config, layers). */
  blobs: string[];
  /** Manifests an index references. */
  children: string[];
  /** Tags to point at the manifest (moved if they pointed elsewhere). */
  tags: string[];
  /** Who pushed (for history and audit); absent when anonymous. */
  actor?: string;
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
export interface UploadAdvance {
  from: number;
  part: UploadPart;
  hashState: Uint8Array | undefined;
}

/**
 * Where a blob is in its life. Only `present` blobs are served, linked or mounted.
 * - `pending`: a commit is moving verified bytes into place (since `stateSince`);
 * - `present`: the bytes are in storage and were verified when they were written;
 * - `deleting`: unreferenced, marked for collection; a new link revives it, bytes still there;
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

export interface TagEvent {
  tag: string;
  digest: string | undefined;
  action: 'push' | 'delete';
  at: number;
  actor?: string;
}

/**
 * The registry's source of truth: repositories, blob links, manifests, tags, uploads.
 * Absence is `undefined` (or `false` for a delete that found nothing); failures throw.
 * Every implementation (SQLite, PostgreSQL) passes test/metadata-contract.ts.
 */
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
  addBlob(repository: string, digest: string, size: number): Promise<void>;
  /**
   * Links a present blob (reviving a `deleting` one); false when the registry has no present
   * blob of that digest, in one transaction with the check.
   */
  linkBlob(repository: string, digest: string): Promise<boolean>;
  /** Before a commit moves bytes into place: see BlobReservation. */
  reserveBlob(digest: string, size: number): Promise<BlobReservation>;
  /**
   * Marks a present blob `quarantined` (its bytes failed a check and were moved aside); false
   * when it was not present.
   */
  quarantineBlob(digest: string): Promise<boolean>;
  /** Removes a repository's link to a blob; false when there was none. */
  unlinkBlob(repository: string, digest: string): Promise<boolean>;
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
  completeUpload(id: string, size: number, digest: string): Promise<'done' | 'gone' | 'retry'>;
  deleteUpload(id: string): Promise<boolean>;
  /** Uploads not touched since `before` (ms since epoch). */
  staleUploads(before: number, limit: number): Promise<UploadRecord[]>;

  // --- manifests and tags ------------------------------------------------------------------
  getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined>;
  /** The manifest a tag points at, in one lookup. */
  getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | undefined>;
  /** Which of `digests` are not manifests of the repository. */
  missingManifests(repository: string, digests: string[]): Promise<string[]>;
  putManifest(put: ManifestPut): Promise<void>;
  /** Deletes a manifest and every tag on it; returns the tags removed, undefined when absent. */
  deleteManifest(repository: string, digest: string, actor?: string): Promise<string[] | undefined>;
  deleteTag(repository: string, tag: string, actor?: string): Promise<boolean>;
  /** Tag names in lexical (byte) order; undefined when the repository does not exist. */
  listTags(repository: string, page: Page): Promise<string[] | undefined>;
  tagHistory(repository: string, tag: string, limit: number): Promise<TagEvent[]>;
  /** Manifests whose subject is `digest`, as descriptors for the referrers index. */
  listReferrers(repository: string, digest: string, options: { artifactType?: string }): Promise<Descriptor[]>;

  // --- repositories ------------------------------------------------------------------------
  /** Repositories with at least one manifest, in lexical order. */
  listRepositories(page: Page): Promise<string[]>;
  repositoryExists(repository: string): Promise<boolean>;
}
