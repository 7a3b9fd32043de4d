import { rmSync } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRegistryError, RegistryError } from '../errors/index.js';
import type { ManifestRecord, MetadataStore } from '../metadata/metadata-store.js';
import type { Digest } from '../oci/digest.js';
import { parseManifest, requiredBlobs } from '../oci/manifest.js';
import type { BlobRange, OpenedBlob } from '../registry/blob-service.js';
import type { RequestContext } from '../registry/context.js';
import type { Blobs, Discovery, Manifests, RegistryServices, Tags, Uploads } from '../registry/services.js';
import type { ManifestReference } from '../registry/validation.js';
import { BlobFetches, type BlobSource } from './blob-fetches.js';
import { evictOverLimit } from './size-limit.js';
import { Upstream, type UpstreamManifest, type UpstreamSettings } from './upstream.js';

/** The response header that says how the cache answered: hit, miss, revalidated or stale. */
export const CACHE_STATUS_HEADER = 'Wharf-Proxy-Cache';

/** One mirrored upstream, as the cache is configured. */
export interface CachedUpstream extends UpstreamSettings {
  /** A cached tag older than this is revalidated with the upstream (a HEAD); 0 asks every time. */
  tagTtlMs: number;
  /** Bytes its cached content may take (`maxsize`); the least recently pulled goes first. */
  maxSizeBytes?: number;
}

export interface PullThroughOptions {
  upstreams: CachedUpstream[];
  /** registry:2's form: every repository mirrors the first upstream, and nothing can be pushed. */
  wholeRegistry: boolean;
  /** Where blob downloads are written while they arrive (on the storage's filesystem, shared by the server's processes). */
  fetchDirectory: string;
  /**
   * Makes a downloaded, verified blob file part of the registry: linked into `repository` as a
   * push would (the file may be hard-linked away).
   */
  ingest(repository: string, digest: Digest, path: string): Promise<void>;
  log: { warn(fields: object, message: string): void; info(fields: object, message: string): void };
  /** For the size limits (`maxsize`): the store whose content is evicted. */
  metadata?: MetadataStore;
  /** Counts upstream requests and cache outcomes, per upstream (metrics). */
  observer?: {
    request?(upstream: string, kind: 'manifest' | 'blob'): void;
    cache?(upstream: string, kind: 'manifest' | 'blob', outcome: 'hit' | 'miss' | 'stale'): void;
  };
}

/** Where a repository of this registry comes from. */
interface Location {
  upstream: MirroredUpstream;
  /** The name upstream: `library/alpine`. */
  remote: string;
  /** The name the cache keeps it under: `docker.io/library/alpine`. */
  local: string;
}

interface MirroredUpstream {
  client: Upstream;
  settings: CachedUpstream;
  /** The size limit's check under way in this process, if any (one at a time). */
  evicting?: Promise<void>;
  /** When the upstream stopped answering; undefined while it answers (the log says so once per outage). */
  downSince?: number;
}

/** A manifest fetched from upstream whose blobs (or child manifests) are not all cached yet. */
interface PendingManifest {
  record: ManifestRecord;
  tag?: string;
}

/**
 * The pull-through cache as a wrapper of the registry services: repositories under an upstream's
 * prefix (every repository, in registry:2's form) are read from the cache, filled from the
 * upstream on a miss, and cannot be pushed to (405 UNSUPPORTED); every other repository is the
 * local registry's, untouched. What it caches is ordinary registry content (catalog, tags,
 * collection, retention).
 *
 * Manifests by digest are cached for good. A tag is trusted for `tagTtlMs`, then revalidated
 * with a HEAD; when the upstream is unreachable or answers 5xx/429, the cached manifest is served
 * with `Wharf-Proxy-Cache: stale`. Blob downloads are shared (see BlobFetches).
 */
export class PullThroughCache {
  private readonly upstreams: MirroredUpstream[];
  private readonly fetches: BlobFetches;
  /** When each cached tag (`local:tag`) was last confirmed with its upstream, in this process. */
  private readonly validated = new Map<string, number>();
  /** Manifests served but not yet storable, by `local@digest`; and tags pointing at them, by `local:tag`. */
  private readonly pending = new Map<string, PendingManifest>();
  private readonly pendingTags = new Map<string, string>();
  /** The local manifests, for storing pending manifests once their blobs arrive. */
  private localManifests: Manifests | undefined;

  constructor(private readonly options: PullThroughOptions) {
    const observer = options.observer;
    this.upstreams = options.upstreams.map((settings) => ({
      settings,
      client: new Upstream(settings, { request: (name, kind) => kind !== 'ping' && observer?.request?.(name, kind) }),
    }));
    this.fetches = new BlobFetches(options.fetchDirectory);
  }

  /** Gets ready to answer the first pull quickly: each upstream is pinged in the background. */
  warmUp(): void {
    for (const upstream of this.upstreams) upstream.client.warmUp();
  }

  /** Forgets outages told by an earlier run (the server starts before any request is served). */
  forgetOutages(): void {
    for (const upstream of this.upstreams) {
      rmSync(join(this.options.fetchDirectory, `outage-${upstream.client.name.replace(/[^a-zA-Z0-9.-]/g, '_')}`), { force: true });
    }
  }

  /**
   * The upstream a repository of this registry mirrors, or undefined for a local repository.
   * Docker Hub's official images are found with and without `library/`.
   */
  locate(repository: string): Location | undefined {
    if (this.options.wholeRegistry) {
      const upstream = this.upstreams[0]!;
      const remote = hubName(upstream, repository);
      return { upstream, remote, local: remote };
    }
    for (const upstream of this.upstreams) {
      const prefix = upstream.settings.prefix;
      if (repository.startsWith(`${prefix}/`)) {
        const remote = hubName(upstream, repository.slice(prefix.length + 1));
        return { upstream, remote, local: `${prefix}/${remote}` };
      }
    }
    return undefined;
  }

  /**
   * The repository a mirror request names, for containerd's `?ns=HOST` (a hosts.toml mirror):
   * `library/alpine` with `ns=docker.io` is `docker.io/library/alpine`. Undefined when no
   * upstream mirrors that host (the name is then taken as it is).
   */
  namespaced(ns: string, repository: string): string | undefined {
    if (this.options.wholeRegistry) return undefined;
    const host = ns.toLowerCase();
    const upstream = this.upstreams.find(
      (u) => u.settings.prefix === host || u.client.host === host || (host === 'docker.io' && u.client.isDockerHub),
    );
    return upstream ? `${upstream.settings.prefix}/${repository}` : undefined;
  }

  /** The registry's services with the cache around them. */
  wrap(local: RegistryServices): RegistryServices {
    this.localManifests = local.manifests;
    return {
      ...local,
      blobs: this.blobs(local.blobs),
      uploads: this.uploads(local.uploads),
      manifests: this.manifests(local.manifests, local.blobs),
      tags: this.tags(local.tags),
      discovery: this.discovery(local.discovery),
    };
  }

  /** Listings under the name the cache keeps (`docker.io/alpine` lists `docker.io/library/alpine`). */
  private discovery(local: Discovery): Discovery {
    const name = (repository: string) => this.locate(repository)?.local ?? repository;
    return {
      tags: (repository, request) => local.tags(name(repository), request),
      allTags: (repository, after) => local.allTags(name(repository), after),
      catalog: (request, visible) => local.catalog(request, visible),
      referrers: (repository, digest, artifactType) => local.referrers(name(repository), digest, artifactType),
    };
  }

  close(): void {
    for (const upstream of this.upstreams) upstream.client.close();
    void this.fetches.close();
  }

  private refuse(repository: string): never {
    throw new RegistryError('UNSUPPORTED', {
      message: `${repository} mirrors an upstream registry (pull-through cache): it cannot be pushed to or deleted from`,
    });
  }

  private uploads(local: Uploads): Uploads {
    const guard = (repository: string) => {
      if (this.locate(repository)) this.refuse(repository);
    };
    return {
      start: async (repository) => (guard(repository), local.start(repository)),
      get: async (repository, id) => (guard(repository), local.get(repository, id)),
      append: async (repository, id, chunk, context) => (guard(repository), local.append(repository, id, chunk, context)),
      finish: async (repository, id, digest, chunk, context) => (guard(repository), local.finish(repository, id, digest, chunk, context)),
      monolithic: async (repository, digest, chunk, context) => (guard(repository), local.monolithic(repository, digest, chunk, context)),
      cancel: async (repository, id) => (guard(repository), local.cancel(repository, id)),
    };
  }

  private tags(local: Tags): Tags {
    return {
      history: (repository, tag, limit) => local.history(this.locate(repository)?.local ?? repository, tag, limit),
      restore: async (repository, tag, target, context) => {
        if (this.locate(repository)) this.refuse(repository);
        return local.restore(repository, tag, target, context);
      },
      listImmutableRules: () => local.listImmutableRules(),
      addImmutableRule: (input, context) => local.addImmutableRule(input, context),
      removeImmutableRule: (id) => local.removeImmutableRule(id),
    };
  }

  // --- blobs ---------------------------------------------------------------------------------

  private blobs(local: Blobs): Blobs {
    return {
      stat: async (repository, digest, context) => {
        const at = this.locate(repository);
        if (!at) return local.stat(repository, digest, context);
        const cached = await this.cachedBlobSize(local, at, digest, context);
        if (cached !== undefined) {
          this.options.observer?.cache?.(at.upstream.client.name, 'blob', 'hit');
          return cached;
        }
        this.options.observer?.cache?.(at.upstream.client.name, 'blob', 'miss');
        // A HEAD is answered from the upstream's HEAD, unless a download is under way already.
        if (context?.request?.method === 'HEAD') {
          const fetching = await this.fetches.fetchingSize(digest);
          if (fetching !== undefined) return fetching;
          const size = await this.upstreamCall(at, () => at.upstream.client.headBlob(at.remote, digest));
          if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest } });
          return size;
        }
        const size = await this.upstreamCall(at, () => this.fetches.size(digest, this.blobSource(at, digest)));
        return size ?? local.stat(at.local, digest, context);
      },
      open: async (repository, digest, range) => {
        const at = this.locate(repository);
        if (!at) return local.open(repository, digest, range);
        return this.openBlob(local, at, digest, range);
      },
      mount: async (repository, digest, from, context) => {
        if (this.locate(repository)) this.refuse(repository);
        return local.mount(repository, digest, from === undefined ? undefined : (this.locate(from)?.local ?? from), context);
      },
      delete: async (repository, digest, context) => {
        if (this.locate(repository)) this.refuse(repository);
        return local.delete(repository, digest, context);
      },
    };
  }

  /**
   * The size of a blob the cache holds for this repository, linking it first when the cache holds
   * it for another repository of the same upstream (a layer shared by two images); undefined
   * when it must be fetched.
   */
  private async cachedBlobSize(local: Blobs, at: Location, digest: Digest, context?: RequestContext): Promise<number | undefined> {
    try {
      return await local.stat(at.local, digest, context);
    } catch (error) {
      if (!isRegistryError(error) || error.code !== 'BLOB_UNKNOWN') throw error;
    }
    const prefix = at.upstream.settings.prefix;
    const sameUpstream = (name: string) => this.options.wholeRegistry || name.startsWith(`${prefix}/`);
    if (!(await local.mount(at.local, digest, undefined, { canRead: sameUpstream }))) return undefined;
    return local.stat(at.local, digest, context);
  }

  private async openBlob(local: Blobs, at: Location, digest: Digest, range?: BlobRange): Promise<OpenedBlob> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      try {
        return await local.open(at.local, digest, range);
      } catch (error) {
        if (!isRegistryError(error) || error.code !== 'BLOB_UNKNOWN') throw error;
      }
      const size = await this.upstreamCall(at, () => this.fetches.size(digest, this.blobSource(at, digest)));
      if (size === undefined) continue;
      // Only verified bytes are kept: a blob in the cache vouches for the bytes being followed.
      const isKept = () => local.stat(at.local, digest).then(() => true, () => false);
      const stream = await this.fetches.read(digest, size, range, isKept);
      if (stream) return { size, stream };
    }
    throw new RegistryError('UNAVAILABLE', { message: 'the blob could not be fetched from the upstream; try again' });
  }

  private blobSource(at: Location, digest: Digest): BlobSource {
    return {
      open: async (signal) => {
        const blob = await at.upstream.client.openBlob(at.remote, digest, signal);
        return blob && { size: blob.size, body: blob.body };
      },
      keep: async (path) => {
        await this.options.ingest(at.local, digest, path);
        await this.retryPending(at.local);
        this.enforceSizeLimit(at.upstream);
      },
    };
  }

  /** Starts the size limit's check for an upstream with `maxsize`, unless one is under way. */
  private enforceSizeLimit(upstream: MirroredUpstream): void {
    const { maxSizeBytes } = upstream.settings;
    const metadata = this.options.metadata;
    if (maxSizeBytes === undefined || !metadata || upstream.evicting) return;
    upstream.evicting = evictOverLimit(metadata, { prefix: upstream.settings.prefix, maxBytes: maxSizeBytes })
      .then(
        (evicted) => {
          if (evicted > 0) this.options.log.info({ upstream: upstream.client.name, evicted, maxsize: maxSizeBytes }, 'evicted the least recently pulled manifests to stay within maxsize');
        },
        (error: unknown) => this.options.log.warn({ upstream: upstream.client.name, reason: (error as Error).message }, 'could not enforce maxsize'),
      )
      .finally(() => (upstream.evicting = undefined));
  }

  // --- manifests -----------------------------------------------------------------------------

  private manifests(local: Manifests, blobs: Blobs): Manifests {
    return {
      maxManifestBytes: local.maxManifestBytes,
      get: async (repository, reference, accept, context) => {
        const at = this.locate(repository);
        if (!at) return local.get(repository, reference, accept, context);
        return 'digest' in reference
          ? this.manifestByDigest(local, blobs, at, reference.digest as Digest, accept, context)
          : this.manifestByTag(local, blobs, at, reference.tag, accept, context);
      },
      put: async (repository, reference, content, contentType, extraTags, context) => {
        if (this.locate(repository)) this.refuse(repository);
        return local.put(repository, reference, content, contentType, extraTags, context);
      },
      delete: async (repository, reference, context) => {
        if (this.locate(repository)) this.refuse(repository);
        return local.delete(repository, reference, context);
      },
    };
  }

  /**
   * The cached manifest for a tag or digest, undefined when there is none. A manifest fetched by
   * this process but not storable yet (its blobs are on the way) is newer than the stored one
   * for its tag, so it comes first.
   */
  private async cachedManifest(local: Manifests, at: Location, reference: ManifestReference, accept?: readonly string[], context?: RequestContext): Promise<ManifestRecord | undefined> {
    const pendingDigest = 'digest' in reference ? reference.digest : this.pendingTags.get(`${at.local}:${reference.tag}`);
    const pending = pendingDigest === undefined ? undefined : this.pending.get(`${at.local}@${pendingDigest}`)?.record;
    if (pending) return pending;
    try {
      return await local.get(at.local, reference, accept, context);
    } catch (error) {
      if (!isRegistryError(error) || error.code !== 'MANIFEST_UNKNOWN') throw error;
    }
    return undefined;
  }

  private async manifestByDigest(
    local: Manifests,
    blobs: Blobs,
    at: Location,
    digest: Digest,
    accept: readonly string[] | undefined,
    context: RequestContext | undefined,
  ): Promise<ManifestRecord> {
    const name = at.upstream.client.name;
    const cached = await this.cachedManifest(local, at, { digest }, accept, context);
    if (cached) {
      this.options.observer?.cache?.(name, 'manifest', 'hit');
      this.status(context, 'hit');
      return cached;
    }
    this.options.observer?.cache?.(name, 'manifest', 'miss');
    const fetched = await this.upstreamCall(at, () => at.upstream.client.getManifest(at.remote, digest));
    if (!fetched) throw new RegistryError('MANIFEST_UNKNOWN', { detail: { reference: digest } });
    this.passRateLimits(context, fetched.rateLimits);
    this.status(context, 'miss');
    return this.keep(local, blobs, at, fetched, undefined);
  }

  private async manifestByTag(
    local: Manifests,
    blobs: Blobs,
    at: Location,
    tag: string,
    accept: readonly string[] | undefined,
    context: RequestContext | undefined,
  ): Promise<ManifestRecord> {
    const name = at.upstream.client.name;
    const key = `${at.local}:${tag}`;
    const cached = await this.cachedManifest(local, at, { tag });
    const checkedAt = this.validated.get(key);
    if (cached && checkedAt !== undefined && Date.now() - checkedAt < at.upstream.settings.tagTtlMs) {
      this.options.observer?.cache?.(name, 'manifest', 'hit');
      this.status(context, 'hit');
      return (await this.cachedManifest(local, at, { tag }, accept, context)) ?? cached;
    }
    try {
      let fetched: UpstreamManifest | undefined;
      if (cached) {
        const head = await this.upstreamCall(at, () => at.upstream.client.headManifest(at.remote, tag));
        if (!head) throw new RegistryError('MANIFEST_UNKNOWN', { message: 'the tag is no longer known upstream', detail: { reference: tag } });
        this.passRateLimits(context, head.rateLimits);
        if (head.digest === cached.digest) {
          this.validated.set(key, Date.now());
          this.options.observer?.cache?.(name, 'manifest', 'hit');
          this.status(context, 'revalidated');
          return (await this.cachedManifest(local, at, { tag }, accept, context)) ?? cached;
        }
        fetched = await this.upstreamCall(at, () => at.upstream.client.getManifest(at.remote, head.digest));
      } else {
        fetched = await this.upstreamCall(at, () => at.upstream.client.getManifest(at.remote, tag));
      }
      if (!fetched) throw new RegistryError('MANIFEST_UNKNOWN', { detail: { reference: tag } });
      this.passRateLimits(context, fetched.rateLimits);
      this.options.observer?.cache?.(name, 'manifest', 'miss');
      this.status(context, 'miss');
      const record = await this.keep(local, blobs, at, fetched, tag);
      this.validated.set(key, Date.now());
      return record;
    } catch (error) {
      if (!cached || !isRegistryError(error) || error.code !== 'UNAVAILABLE') throw error;
      // Serve-stale: the upstream is away, the cache still has the tag.
      this.options.observer?.cache?.(name, 'manifest', 'stale');
      this.status(context, 'stale');
      context?.setResponseHeader?.('Warning', '110 - "Response is Stale"');
      return (await this.cachedManifest(local, at, { tag }, accept, context)) ?? cached;
    }
  }

  /**
   * Stores a fetched manifest (and its tag) in the cache. When its blobs or child manifests are not
   * all cached yet, it is kept aside (served from memory meanwhile) and stored once they are; an
   * image's missing blobs are fetched in the background, so the cache ends up complete even when
   * the client had some layers already.
   */
  private async keep(local: Manifests, blobs: Blobs, at: Location, fetched: UpstreamManifest, tag: string | undefined): Promise<ManifestRecord> {
    const record: ManifestRecord = { digest: fetched.digest, mediaType: fetched.mediaType, content: fetched.content, totalSize: fetched.content.length, createdAt: Date.now() };
    if (await this.store(local, at, record, tag)) {
      return (await this.cachedManifest(local, at, tag !== undefined ? { tag } : { digest: fetched.digest })) ?? record;
    }
    this.pending.set(`${at.local}@${record.digest}`, { record, ...(tag !== undefined ? { tag } : {}) });
    if (tag !== undefined) this.pendingTags.set(`${at.local}:${tag}`, record.digest);
    void this.fillIn(local, blobs, at, record).catch((error: unknown) => {
      this.options.log.warn({ upstream: at.upstream.client.name, repository: at.local, digest: record.digest, reason: (error as Error).message }, 'could not cache all of a manifest\'s blobs');
    });
    return record;
  }

  /** Puts a manifest into the cache; false when something it references is not cached yet. */
  private async store(local: Manifests, at: Location, record: ManifestRecord, tag: string | undefined): Promise<boolean> {
    try {
      await local.put(at.local, tag !== undefined ? { tag } : { digest: record.digest as Digest }, record.content, record.mediaType);
    } catch (error) {
      if (isRegistryError(error) && error.code === 'MANIFEST_BLOB_UNKNOWN') return false;
      throw error;
    }
    this.pending.delete(`${at.local}@${record.digest}`);
    if (tag !== undefined && this.pendingTags.get(`${at.local}:${tag}`) === record.digest) this.pendingTags.delete(`${at.local}:${tag}`);
    return true;
  }

  /** Fetches an image manifest's blobs that the cache lacks, then stores the manifest. */
  private async fillIn(local: Manifests, blobs: Blobs, at: Location, record: ManifestRecord): Promise<void> {
    const parsed = parseManifest(record.content, record.mediaType);
    for (const descriptor of requiredBlobs(parsed)) {
      const digest = descriptor.digest as Digest;
      if ((await this.cachedBlobSize(blobs, at, digest)) !== undefined) continue;
      const size = await this.upstreamCall(at, () => this.fetches.size(digest, this.blobSource(at, digest)));
      if (size !== undefined) await this.fetches.settled(digest);
    }
    await this.retryPending(at.local);
  }

  /** Stores the pending manifests of a repository that have become storable (children before indexes). */
  private async retryPending(repository: string): Promise<void> {
    const local = this.localManifests;
    if (!local) return;
    const at = this.locate(repository);
    if (!at) return;
    for (let progress = true; progress; ) {
      progress = false;
      for (const [key, entry] of [...this.pending]) {
        if (!key.startsWith(`${repository}@`)) continue;
        if (await this.store(local, at, entry.record, entry.tag)) progress = true;
      }
    }
  }

  /**
   * Runs an upstream request. The first failure of an outage is logged once, however many
   * requests and server processes see it (a marker file next to the downloads says who told),
   * and so is its end.
   */
  private async upstreamCall<T>(at: Location, call: () => Promise<T>): Promise<T> {
    const upstream = at.upstream;
    const marker = join(this.options.fetchDirectory, `outage-${upstream.client.name.replace(/[^a-zA-Z0-9.-]/g, '_')}`);
    try {
      const result = await call();
      if (upstream.downSince !== undefined) {
        const since = upstream.downSince;
        upstream.downSince = undefined;
        const told = await unlink(marker).then(() => true, () => false);
        if (told) this.options.log.info({ upstream: upstream.client.name, downForMs: Date.now() - since }, 'upstream registry answers again');
      }
      return result;
    } catch (error) {
      if (isRegistryError(error) && error.code === 'UNAVAILABLE' && upstream.downSince === undefined) {
        upstream.downSince = Date.now();
        const first = await writeFile(marker, String(Date.now()), { flag: 'wx' }).then(() => true, () => false);
        if (first) this.options.log.warn({ upstream: upstream.client.name, reason: error.message }, 'upstream registry unavailable: serving cached content only until it answers');
      }
      throw error;
    }
  }

  private status(context: RequestContext | undefined, status: 'hit' | 'miss' | 'revalidated' | 'stale'): void {
    context?.setResponseHeader?.(CACHE_STATUS_HEADER, status);
  }

  private passRateLimits(context: RequestContext | undefined, headers: Record<string, string>): void {
    for (const [name, value] of Object.entries(headers)) context?.setResponseHeader?.(name, value);
  }
}

/** Docker Hub keeps official images under `library/`: `alpine` is `library/alpine` there. */
function hubName(upstream: MirroredUpstream, name: string): string {
  return upstream.client.isDockerHub && !name.includes('/') ? `library/${name}` : name;
}
