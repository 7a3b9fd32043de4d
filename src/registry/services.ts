import type { ImmutableTagRule, JobRecord, JobState, ManifestRecord, ParkedEvent, QuotaStatus, RepositoryUsage, TagEvent } from '../metadata/metadata-store.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { BlobRange, OpenedBlob } from './blob-service.js';
import type { RequestContext } from './context.js';
import type { ListPage, ListRequest } from './discovery-service.js';
import type { PutManifestResult } from './manifest-service.js';
import type { RetentionPolicyView, RetentionReport, RetentionRunOptions } from './retention-service.js';
import type { RestoreResult, RestoreTarget } from './tag-service.js';
import type { Chunk, UploadState } from './upload-service.js';
import type { ManifestReference } from './validation.js';

/**
 * What the HTTP layer (and any other front) asks of a registry, as small role interfaces. The
 * classes in this directory implement them over metadata and storage; a pull-through cache, a
 * metrics layer or a notifier implements the same interface around another one (wrap, don't
 * branch), and `Registry` composes whatever it is given.
 */

/** Reading blobs through a repository's links. */
export interface BlobReader {
  /**
   * The size of a blob the repository links; throws BLOB_UNKNOWN otherwise. With `context`, the
   * caller is serving the blob to a client (GET or HEAD: once per request), which is a pull.
   */
  stat(repository: string, digest: Digest, context?: RequestContext): Promise<number>;
  /** Opens a blob (or a range of it) the repository links. */
  open(repository: string, digest: Digest, range?: BlobRange): Promise<OpenedBlob>;
  /**
   * Where a client may fetch the blob directly for a while (a presigned S3 URL), or undefined to
   * serve it through `open`. Only after `stat` has found the repository's link. Optional.
   */
  redirectURL?(repository: string, digest: Digest): Promise<string | undefined>;
}

export interface Blobs extends BlobReader {
  /** Cross-repository mount; false when there is nothing to mount (the caller starts an upload). */
  mount(repository: string, digest: Digest, from: string | undefined, context?: RequestContext): Promise<boolean>;
  /** Removes the repository's link to a blob. */
  delete(repository: string, digest: Digest, context?: RequestContext): Promise<void>;
}

export interface Uploads {
  start(repository: string): Promise<UploadState>;
  get(repository: string, id: string): Promise<UploadState>;
  append(repository: string, id: string, chunk: Chunk, context?: RequestContext): Promise<UploadState>;
  finish(repository: string, id: string, digest: Digest, chunk: Chunk | undefined, context?: RequestContext): Promise<void>;
  monolithic(repository: string, digest: Digest, chunk: Chunk, context?: RequestContext): Promise<void>;
  cancel(repository: string, id: string): Promise<void>;
}

export interface Manifests {
  /** The largest manifest body accepted, so the edge can refuse a bigger one unread. */
  readonly maxManifestBytes: number;
  /** With `context`, the caller is serving the manifest to a client (a pull, for notifications). */
  get(repository: string, reference: ManifestReference, accept?: readonly string[], context?: RequestContext): Promise<ManifestRecord>;
  put(
    repository: string,
    reference: ManifestReference,
    content: Buffer,
    contentType: string | undefined,
    extraTags?: readonly string[],
    context?: RequestContext,
  ): Promise<PutManifestResult>;
  delete(repository: string, reference: ManifestReference, context?: RequestContext): Promise<void>;
}

export interface Discovery {
  tags(repository: string, request: ListRequest): Promise<ListPage>;
  allTags(repository: string, after?: string): AsyncGenerator<string[]>;
  catalog(request: ListRequest, visible?: (repository: string) => boolean): Promise<ListPage>;
  referrers(repository: string, digest: Digest, artifactType?: string): Promise<Descriptor[]>;
}

/** A tag's recorded moves, putting it back, and the rules that make tags immutable. */
export interface Tags {
  history(repository: string, tag: string, limit?: number): Promise<TagEvent[]>;
  restore(repository: string, tag: string, target: RestoreTarget, context?: RequestContext): Promise<RestoreResult>;
  listImmutableRules(): Promise<ImmutableTagRule[]>;
  addImmutableRule(input: unknown, context?: RequestContext): Promise<ImmutableTagRule>;
  removeImmutableRule(id: number): Promise<void>;
}

/** What operators look at and set: the background job queue, quotas and usage. */
export interface Operations {
  jobs(options: { states?: readonly JobState[]; limit: number }): Promise<JobRecord[]>;
  /** Every quota rule with its usage. */
  quotas(): Promise<QuotaStatus[]>;
  /** Sets the API's quota on a repository or namespace (`team/`); throws PARAMETER_INVALID / INVALID_REQUEST. */
  setQuota(name: string, limit: unknown): Promise<QuotaStatus>;
  /** Removes the API's quota on `name`; false when there was none. */
  removeQuota(name: string): Promise<boolean>;
  /** Usage per repository whose name starts with `prefix`, largest first. */
  usage(options: { prefix?: string; limit: number }): Promise<RepositoryUsage[]>;
  /** Notification endpoints and their parked events (of one endpoint, or all). */
  notifications(options: { endpoint?: string }): Promise<NotificationsReport>;
  /** Puts an endpoint's parked events (all, or `ids`) back in line; NOT_FOUND for an unknown endpoint. */
  replayNotifications(endpoint: string, ids?: readonly number[]): Promise<number>;
}

/** One notification endpoint's deliveries, as operators see them. */
export interface EndpointReport {
  name: string;
  url: string;
  disabled: boolean;
  /** The id of the last outbox entry handled. */
  position: number;
  /** Outbox entries after the position (some may not concern the endpoint). */
  pending: number;
  /** Failed attempts at the next entry. */
  attempts: number;
  nextAttemptAt?: number;
  lastError?: string;
  parked: number;
}

export interface NotificationsReport {
  endpoints: EndpointReport[];
  /** Parked entries, each with the notification events it stands for. */
  parked: Array<ParkedEvent & { events: unknown[] }>;
}

/** What the notifier offers the admin API (src/events/notifier.ts). */
export interface NotificationAdmin {
  report(): Promise<EndpointReport[]>;
  parked(endpoint?: string): Promise<Array<ParkedEvent & { events: unknown[] }>>;
  /** Undefined when no endpoint has that name. */
  replay(endpoint: string, ids?: readonly number[]): Promise<number | undefined>;
}

/** Retention policies (docs/lifecycle.md) and running them, on demand or on a schedule. */
export interface Retention {
  policies(): Promise<RetentionPolicyView[]>;
  /** Adds a policy from config.yml-shaped JSON; INVALID_REQUEST naming what is wrong. */
  addPolicy(input: unknown, context?: RequestContext): Promise<RetentionPolicyView>;
  /** NOT_FOUND when there is none; DENIED for a config.yml policy. */
  removePolicy(id: number): Promise<void>;
  run(options: RetentionRunOptions): Promise<RetentionReport>;
}

export type { RetentionPolicyView, RetentionReport, RetentionRunOptions };
export type { Digest, ImmutableTagRule, JobRecord, JobState, ManifestReference, QuotaStatus, RepositoryUsage, RestoreResult, RestoreTarget, TagEvent };

/** The registry as its fronts see it. */
export interface RegistryServices {
  readonly blobs: Blobs;
  readonly uploads: Uploads;
  readonly manifests: Manifests;
  readonly discovery: Discovery;
  readonly tags: Tags;
  readonly operations: Operations;
  readonly retention: Retention;
}
