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
  /** Bytes received and recorded so far. */
  size: number;
  startedAt: number;
  updatedAt: number;
}

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
  /** Size of a blob known to the registry, in any repository. */
  blobSize(digest: string): Promise<number | undefined>;
  /** Size of a blob that `repository` links (the access boundary). */
  repositoryBlobSize(repository: string, digest: string): Promise<number | undefined>;
  /** Records a stored blob and links it into `repository` (creating the repository). */
  addBlob(repository: string, digest: string, size: number): Promise<void>;
  /** Links a blob the registry already has; false when the registry has no such blob. */
  linkBlob(repository: string, digest: string): Promise<boolean>;
  /** Removes a repository's link to a blob; false when there was none. */
  unlinkBlob(repository: string, digest: string): Promise<boolean>;
  /** Repositories that link a blob, in lexical order, at most `limit` (for authorised automatic mounts). */
  repositoriesLinkingBlob(digest: string, limit: number): Promise<string[]>;
  /** Which of `digests` the repository does not link. */
  missingBlobs(repository: string, digests: string[]): Promise<string[]>;

  // --- uploads -----------------------------------------------------------------------------
  createUpload(upload: { id: string; repository: string; startedAt: number }): Promise<void>;
  getUpload(id: string): Promise<UploadRecord | undefined>;
  /** Moves an upload from `from` bytes to `to` bytes; false when its size was not `from` (a race). */
  advanceUpload(id: string, from: number, to: number): Promise<boolean>;
  /** Atomically: records the blob, links it into the upload's repository, forgets the upload. */
  completeUpload(id: string, digest: string, size: number): Promise<void>;
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
