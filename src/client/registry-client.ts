import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { digestOf, isDigest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { ACCEPT_ALL_MANIFESTS, MediaType, bareMediaType } from '../oci/media-types.js';
import { repositoryScope } from './auth-challenge.js';
import { ClientError, responseError } from './client-error.js';
import { discard, header, readBody } from './http-message.js';
import { RegistryTransport, type RegistryTransportOptions } from './registry-transport.js';
import { RETRYABLE_STATUS, backoff } from './retry-transport.js';
import type { RegistryRequest } from './round-tripper.js';

export type RegistryClientOptions = RegistryTransportOptions;

/** A manifest exactly as the registry served it. */
export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

export interface ManifestHead {
  digest: string;
  mediaType: string;
  size: number;
}

/** A blob body, possibly starting past the first byte when a Range request was honoured. */
export interface BlobStream {
  stream: IncomingMessage;
  /** Where the body starts in the blob: the requested offset on 206, 0 on a full 200. */
  offset: number;
  /** The whole blob's size when the registry said it, else undefined. */
  size: number | undefined;
}

export type UploadOutcome = { status: 'exists' } | { status: 'mounted'; from: string } | { status: 'uploaded' };

/** One row of Docker's `/v1/search` answer. */
export interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated?: boolean;
}

/** One recorded move of a tag, as a Wharf registry reports it. */
export interface TagHistoryEntry {
  at: string;
  action: 'push' | 'delete';
  /** Where the tag points after the move; null for a delete. */
  digest: string | null;
  /** Where it pointed before; null for a new tag. */
  previous: string | null;
  actor: string | null;
}

export interface TagRestoreResult {
  tag: string;
  digest: string;
  previous?: string;
  moved: boolean;
}

/** What the API layer asks of the transport: a path under the registry root or an absolute URL. */
type ApiRequest = Omit<RegistryRequest, 'url'> & { path: string | URL; scopes: string[] };

/**
 * The OCI distribution API of one registry, on top of its transport stack (RegistryTransport:
 * ping, auth, retry, redirects): manifests, blobs, uploads with cross-repository mounts, tags and
 * the catalog paged as async iterables, referrers, deletes and Docker's `/v1/search`.
 * Each call names the token scopes it needs; statuses are read here and nowhere below.
 * Absence is `undefined` where a method says so; every other failure throws ClientError.
 */
export class RegistryClient {
  readonly registry: string;
  readonly transport: RegistryTransport;

  constructor(options: RegistryClientOptions | { transport: RegistryTransport }) {
    this.transport = 'transport' in options ? options.transport : new RegistryTransport(options);
    this.registry = this.transport.registry;
  }

  close(): void {
    this.transport.close();
  }

  /** The registry root, `https://host/` or `http://host/`, found once by probing `/v2/`. */
  baseUrl(): Promise<URL> {
    return this.transport.baseUrl();
  }

  private async request(options: ApiRequest): Promise<IncomingMessage> {
    const { path, ...rest } = options;
    const url = typeof path === 'string' ? await this.transport.resolve(path) : path;
    return this.transport.roundTrip({ ...rest, url });
  }

  private failure(res: IncomingMessage, what: string): Promise<ClientError> {
    return responseError(res, what, this.registry);
  }

  /**
   * Checks that the registry answers and, when it asks for credentials, that ours are accepted
   * (`wharf login`). Throws ClientError('unauthorized') when they are refused.
   */
  async verifyLogin(): Promise<{ identityToken?: string }> {
    // As docker login does: ask the token server for an offline (refresh) token too, so that the
    // stored credential can be an identity token rather than the password.
    const tokens = this.transport.auth.tokens;
    tokens.askOfflineToken = true;
    try {
      const res = await this.request({ method: 'GET', path: '/v2/', scopes: [] });
      if (res.statusCode === 200) {
        discard(res);
        return tokens.refreshToken ? { identityToken: tokens.refreshToken } : {};
      }
      throw await this.failure(res, `${this.registry}`);
    } finally {
      tokens.askOfflineToken = false;
    }
  }

  /**
   * What the registry says of itself at `/v2/` (authenticated when it asks): its URL, the API
   * version header, and the Wharf version when it is a Wharf. Throws ClientError on refusal.
   */
  async serverInfo(): Promise<{ url: string; apiVersion?: string; wharfVersion?: string }> {
    const res = await this.request({ method: 'GET', path: '/v2/', scopes: [] });
    if (res.statusCode !== 200) throw await this.failure(res, `${this.registry}`);
    discard(res);
    const apiVersion = header(res, 'docker-distribution-api-version');
    const wharfVersion = header(res, 'wharf-version');
    return { url: (await this.baseUrl()).toString(), ...(apiVersion ? { apiVersion } : {}), ...(wharfVersion ? { wharfVersion } : {}) };
  }

  async getManifest(repository: string, reference: string, options: { accept?: string } = {}): Promise<FetchedManifest> {
    const what = `manifest ${this.registry}/${repository}${isDigest(reference) ? '@' : ':'}${reference}`;
    const res = await this.request({
      method: 'GET',
      path: `/v2/${repository}/manifests/${reference}`,
      scopes: [repositoryScope(repository, ['pull'])],
      headers: { accept: options.accept ?? ACCEPT_ALL_MANIFESTS },
    });
    if (res.statusCode !== 200) throw await this.failure(res, what);
    const bytes = await readBody(res);
    let digest: string = digestOf(bytes);
    if (isDigest(reference)) {
      const expected = reference;
      const actual = expected.startsWith('sha512:') ? digestOf(bytes, 'sha512') : digest;
      if (actual !== expected) throw new ClientError('digest-mismatch', `${what}: content has digest ${actual}`, { registry: this.registry });
      digest = expected;
    }
    return { bytes, mediaType: manifestMediaType(bytes, header(res, 'content-type')), digest };
  }

  /** HEAD a manifest; undefined when the registry does not have it. */
  async headManifest(repository: string, reference: string): Promise<ManifestHead | undefined> {
    const res = await this.request({
      method: 'HEAD',
      path: `/v2/${repository}/manifests/${reference}`,
      scopes: [repositoryScope(repository, ['pull'])],
      headers: { accept: ACCEPT_ALL_MANIFESTS },
    });
    discard(res);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw await this.failure(res, `manifest ${this.registry}/${repository}:${reference}`);
    const digest = header(res, 'docker-content-digest');
    if (!digest) {
      const manifest = await this.getManifest(repository, reference);
      return { digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
    }
    return { digest, mediaType: bareMediaType(header(res, 'content-type') ?? ''), size: Number(header(res, 'content-length') ?? 0) };
  }

  /** Uploads a manifest under a tag or its digest; returns its digest. */
  async putManifest(repository: string, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
    const res = await this.request({
      method: 'PUT',
      path: `/v2/${repository}/manifests/${reference}`,
      scopes: [repositoryScope(repository, ['pull', 'push'])],
      headers: { 'content-type': mediaType },
      body: bytes,
    });
    if (res.statusCode !== 201 && res.statusCode !== 200 && res.statusCode !== 202) {
      throw await this.failure(res, `pushing manifest ${this.registry}/${repository}:${reference}`);
    }
    discard(res);
    return header(res, 'docker-content-digest') ?? digestOf(bytes);
  }

  /**
   * Removes one tag, leaving the manifest and its other tags (distribution-spec 1.1 allows
   * `DELETE /manifests/<tag>`). Throws ClientError('unsupported') on a registry that refuses
   * deletes by tag (Distribution does), ClientError('manifest-unknown') for an unknown tag.
   */
  async deleteTag(repository: string, tag: string): Promise<void> {
    const res = await this.request({
      method: 'DELETE',
      path: `/v2/${repository}/manifests/${tag}`,
      scopes: [repositoryScope(repository, ['delete', 'pull', 'push'])],
    });
    if (res.statusCode === 202 || res.statusCode === 200) {
      discard(res);
      return;
    }
    const error = await this.failure(res, `tag ${this.registry}/${repository}:${tag}`);
    if (error.kind === 'manifest-unknown' || error.kind === 'unauthorized' || error.kind === 'denied') throw error;
    // Distribution answers a delete by tag with 400/405 UNSUPPORTED or a digest error.
    if (res.statusCode === 400 || res.statusCode === 405 || error.kind === 'unsupported') {
      throw new ClientError('unsupported', `${this.registry} does not delete a tag alone (it deletes manifests, with every tag on them)`, { registry: this.registry });
    }
    throw error;
  }

  /** Deletes a manifest by digest, and so every tag on it. */
  async deleteManifest(repository: string, digest: string): Promise<void> {
    const res = await this.request({
      method: 'DELETE',
      path: `/v2/${repository}/manifests/${digest}`,
      scopes: [repositoryScope(repository, ['delete', 'pull', 'push'])],
    });
    if (res.statusCode !== 202 && res.statusCode !== 200) throw await this.failure(res, `manifest ${this.registry}/${repository}@${digest}`);
    discard(res);
  }

  /** The blob's size when the repository has it; undefined when it does not. */
  async headBlob(repository: string, digest: string): Promise<number | undefined> {
    const res = await this.request({
      method: 'HEAD',
      path: `/v2/${repository}/blobs/${digest}`,
      scopes: [repositoryScope(repository, ['pull'])],
      followRedirects: true,
    });
    discard(res);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw await this.failure(res, `blob ${this.registry}/${repository}@${digest}`);
    return Number(header(res, 'content-length') ?? 0);
  }

  /** Opens a blob, from `offset` when given and the registry honours Range. The caller verifies the digest. */
  async openBlob(repository: string, digest: string, options: { offset?: number } = {}): Promise<BlobStream> {
    const offset = options.offset ?? 0;
    const res = await this.request({
      method: 'GET',
      path: `/v2/${repository}/blobs/${digest}`,
      scopes: [repositoryScope(repository, ['pull'])],
      followRedirects: true,
      ...(offset > 0 ? { headers: { range: `bytes=${offset}-` } } : {}),
    });
    if (res.statusCode === 206 && offset > 0) {
      const range = /\/(\d+)\s*$/.exec(header(res, 'content-range') ?? '');
      return { stream: res, offset, size: range ? Number(range[1]) : undefined };
    }
    if (res.statusCode === 200) {
      const length = header(res, 'content-length');
      return { stream: res, offset: 0, size: length === undefined ? undefined : Number(length) };
    }
    throw await this.failure(res, `blob ${this.registry}/${repository}@${digest}`);
  }

  /**
   * Makes a blob present in a repository: nothing when it is there already, a cross-repository
   * mount when one of `mountFrom` has it on this registry, else a monolithic upload of `open()`.
   */
  async uploadBlob(
    repository: string,
    descriptor: { digest: string; size: number },
    open: () => Readable,
    options: { mountFrom?: string[] } = {},
  ): Promise<UploadOutcome> {
    if ((await this.headBlob(repository, descriptor.digest)) !== undefined) return { status: 'exists' };
    const base = await this.baseUrl();
    const push = repositoryScope(repository, ['pull', 'push']);
    let location: URL | undefined;
    for (const from of options.mountFrom ?? []) {
      if (from === repository) continue;
      const query = new URLSearchParams({ mount: descriptor.digest, from });
      const res = await this.request({
        method: 'POST',
        path: `/v2/${repository}/blobs/uploads/?${query}`,
        scopes: [push, repositoryScope(from, ['pull'])],
        headers: { 'content-length': 0 },
      });
      discard(res);
      if (res.statusCode === 201) return { status: 'mounted', from };
      if (res.statusCode === 202) {
        location = this.uploadLocation(res, base);
        break;
      }
      if (res.statusCode !== 401 && res.statusCode !== 403 && res.statusCode !== 404) {
        throw await this.failure(res, `mounting ${descriptor.digest} into ${repository}`);
      }
    }
    let attempt = 0;
    for (;;) {
      if (!location) {
        const res = await this.request({ method: 'POST', path: `/v2/${repository}/blobs/uploads/`, scopes: [push], headers: { 'content-length': 0 } });
        if (res.statusCode !== 202 && res.statusCode !== 201) throw await this.failure(res, `starting upload to ${this.registry}/${repository}`);
        discard(res);
        location = this.uploadLocation(res, base);
      }
      const target = new URL(location);
      target.searchParams.set('digest', descriptor.digest);
      try {
        const res = await this.request({
          method: 'PUT',
          path: target,
          scopes: [push],
          headers: { 'content-type': 'application/octet-stream', 'content-length': descriptor.size },
          body: open,
          retry: false,
        });
        if (res.statusCode === 201 || res.statusCode === 204) {
          discard(res);
          return { status: 'uploaded' };
        }
        const error = await this.failure(res, `uploading ${descriptor.digest} to ${this.registry}/${repository}`);
        if (!RETRYABLE_STATUS.has(res.statusCode ?? 0) || attempt >= this.transport.retry.maxRetries) throw error;
      } catch (error) {
        if (!(error instanceof ClientError) || (error.kind !== 'network' && error.kind !== 'http') || attempt >= this.transport.retry.maxRetries) throw error;
        if (error.kind === 'http' && !RETRYABLE_STATUS.has(error.status ?? 0)) throw error;
      }
      // A failed PUT leaves the session unusable: start a new one.
      location = undefined;
      await sleep(backoff(this.transport.retry.baseDelayMs, attempt++));
    }
  }

  /** Where an upload session continues; a relative Location is under the registry root. */
  private uploadLocation(res: IncomingMessage, base: URL): URL {
    const location = header(res, 'location');
    if (!location) throw new ClientError('http', `${this.registry} started an upload without a Location`, { registry: this.registry });
    return new URL(location, base);
  }

  /** Every tag of a repository, page by page as the registry's Link headers lead. */
  tags(repository: string, options: { pageSize?: number } = {}): AsyncIterable<string> {
    const first = `/v2/${repository}/tags/list${options.pageSize ? `?n=${options.pageSize}` : ''}`;
    return this.pages(first, [repositoryScope(repository, ['pull'])], `repository ${this.registry}/${repository}`, (doc) => (doc as { tags?: string[] | null }).tags ?? []);
  }

  /** Every repository of the registry (`/v2/_catalog`), page by page. */
  catalog(options: { pageSize?: number } = {}): AsyncIterable<string> {
    const first = `/v2/_catalog${options.pageSize ? `?n=${options.pageSize}` : ''}`;
    return this.pages(first, ['registry:catalog:*'], `catalog of ${this.registry}`, (doc) => (doc as { repositories?: string[] | null }).repositories ?? []);
  }

  /**
   * The manifests that name `digest` as their subject (OCI 1.1 referrers), page by page, only
   * those of `artifactType` when given. A registry without the referrers API answers 404 there;
   * then the fallback tag that the spec has clients maintain (`sha256-HEX`, an index) is read, and
   * a missing fallback tag means no referrers.
   */
  async *referrers(repository: string, digest: string, options: { artifactType?: string } = {}): AsyncGenerator<Descriptor> {
    const { artifactType } = options;
    const scopes = [repositoryScope(repository, ['pull'])];
    const wanted = (d: Descriptor) => !artifactType || d.artifactType === artifactType;
    const query = artifactType ? `?${new URLSearchParams({ artifactType })}` : '';
    const first = await this.request({ method: 'GET', path: `/v2/${repository}/referrers/${digest}${query}`, scopes, headers: { accept: MediaType.OciIndex } });
    if (first.statusCode === 404) {
      discard(first);
      let fallback: FetchedManifest;
      try {
        fallback = await this.getManifest(repository, referrersTag(digest), { accept: MediaType.OciIndex });
      } catch (error) {
        if (error instanceof ClientError && error.kind === 'manifest-unknown') return;
        throw error;
      }
      yield* (JSON.parse(fallback.bytes.toString('utf8')) as { manifests?: Descriptor[] }).manifests?.filter(wanted) ?? [];
      return;
    }
    const what = `referrers of ${this.registry}/${repository}@${digest}`;
    yield* this.pages(first, scopes, what, (doc, res) => {
      const manifests = (doc as { manifests?: Descriptor[] | null }).manifests ?? [];
      // A registry that filtered says so; one that did not leaves the filtering to us.
      const filtered = (header(res, 'oci-filters-applied') ?? '').split(',').some((f) => f.trim() === 'artifactType');
      return filtered ? manifests : manifests.filter(wanted);
    });
  }

  /**
   * The items of a paged list, following `Link: <…>; rel="next"` until there is none. `first` is
   * the first page's path, or its response when the caller has already sent the request.
   */
  private async *pages<T>(first: string | IncomingMessage, scopes: string[], what: string, items: (doc: unknown, res: IncomingMessage) => T[]): AsyncGenerator<T> {
    let next: string | IncomingMessage | undefined = first;
    while (next) {
      const res: IncomingMessage = typeof next === 'string' ? await this.request({ method: 'GET', path: next, scopes }) : next;
      if (res.statusCode !== 200) throw await this.failure(res, what);
      const doc = JSON.parse((await readBody(res)).toString('utf8')) as unknown;
      yield* items(doc, res);
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res, 'link') ?? '');
      next = link ? link[1] : undefined;
    }
  }

  /** A tag's recorded moves, newest first (Wharf's extension; pull rights). */
  async tagHistory(repository: string, tag: string, options: { limit?: number } = {}): Promise<TagHistoryEntry[]> {
    const query = options.limit !== undefined ? `?n=${options.limit}` : '';
    const res = await this.request({
      method: 'GET',
      path: `/v2/${repository}/_wharf/tags/${encodeURIComponent(tag)}/history${query}`,
      scopes: [repositoryScope(repository, ['pull'])],
      headers: { accept: 'application/json' },
    });
    if (res.statusCode !== 200) throw await this.failure(res, `tag history of ${this.registry}/${repository}:${tag}`);
    const doc = JSON.parse((await readBody(res)).toString('utf8')) as { history?: TagHistoryEntry[] };
    return doc.history ?? [];
  }

  /**
   * Points a tag back at `digest`, or where it pointed at `at` (RFC 3339), on a Wharf registry
   * (push rights). Throws ClientError with the registry's code: DENIED for an immutable tag,
   * MANIFEST_UNKNOWN when the manifest is gone.
   */
  async restoreTag(repository: string, tag: string, target: { digest: string } | { at: string }): Promise<TagRestoreResult> {
    const res = await this.request({
      method: 'POST',
      path: `/v2/${repository}/_wharf/tags/${encodeURIComponent(tag)}/restore`,
      scopes: [repositoryScope(repository, ['pull', 'push'])],
      headers: { accept: 'application/json', 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(target)),
    });
    if (res.statusCode !== 200) throw await this.failure(res, `restore of ${this.registry}/${repository}:${tag}`);
    return JSON.parse((await readBody(res)).toString('utf8')) as TagRestoreResult;
  }

  /** Wharf's extension: stars (or unstars) a repository for the signed-in user; returns its star count. */
  async star(repository: string, starred: boolean): Promise<number> {
    const res = await this.request({
      method: starred ? 'PUT' : 'DELETE',
      path: `/v2/${repository}/_wharf/star`,
      scopes: [repositoryScope(repository, ['pull'])],
    });
    if (res.statusCode !== 200) throw await this.failure(res, `${starred ? 'starring' : 'unstarring'} ${this.registry}/${repository}`);
    const doc = JSON.parse((await readBody(res)).toString('utf8')) as { stars?: number };
    return doc.stars ?? 0;
  }

  /** Wharf's extension: sets a repository's README (markdown); an empty text removes it. Needs push rights. */
  async setReadme(repository: string, markdown: string): Promise<void> {
    const res = await this.request({
      method: markdown === '' ? 'DELETE' : 'PUT',
      path: `/v2/${repository}/_wharf/readme`,
      scopes: [repositoryScope(repository, ['pull', 'push'])],
      ...(markdown === '' ? {} : { headers: { 'content-type': 'text/markdown; charset=utf-8' }, body: Buffer.from(markdown) }),
    });
    if (res.statusCode !== 204 && res.statusCode !== 200) throw await this.failure(res, `setting the README of ${this.registry}/${repository}`);
    discard(res);
  }

  /** Docker's `/v1/search` (with Wharf's `signed=true` when asked); undefined when the registry has no such endpoint. */
  async search(term: string, limit = 25, options: { signed?: boolean } = {}): Promise<SearchResult[] | undefined> {
    const query = new URLSearchParams({ q: term, n: String(limit), ...(options.signed ? { signed: 'true' } : {}) });
    const res = await this.request({ method: 'GET', path: `/v1/search?${query}`, scopes: [] });
    if (res.statusCode === 404 || res.statusCode === 405) {
      discard(res);
      return undefined;
    }
    if (res.statusCode !== 200) throw await this.failure(res, `search on ${this.registry}`);
    let doc: { results?: SearchResult[] };
    try {
      doc = JSON.parse((await readBody(res)).toString('utf8')) as { results?: SearchResult[] };
    } catch {
      return undefined;
    }
    return Array.isArray(doc.results) ? doc.results : undefined;
  }
}

/** The manifest's media type: the document's own field, else the Content-Type it came with. */
export function manifestMediaType(bytes: Buffer, contentType: string | undefined): string {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof doc.mediaType === 'string') return doc.mediaType;
    const header = bareMediaType(contentType ?? '');
    if (header && header !== 'application/json' && header !== 'text/plain') return header;
    return Array.isArray(doc.manifests) ? 'application/vnd.oci.image.index.v1+json' : 'application/vnd.oci.image.manifest.v1+json';
  } catch {
    return bareMediaType(contentType ?? '');
  }
}

/** The tag that stands in for the referrers API on registries without it: `sha256-HEX`. */
export function referrersTag(digest: string): string {
  return digest.replace(':', '-');
}
