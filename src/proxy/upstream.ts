import type { IncomingMessage } from 'node:http';
import { discard, header, readBody } from '../client/http-message.js';
import { isClientError } from '../client/client-error.js';
import { RegistryTransport } from '../client/registry-transport.js';
import { RegistryError } from '../errors/index.js';
import { digestOf, digestParts, type Digest } from '../oci/digest.js';
import { MANIFEST_TYPES } from '../oci/media-types.js';

/** What the cache needs to know of one upstream registry (src/config/proxy-config.ts builds it). */
export interface UpstreamSettings {
  /** The repository prefix it is mirrored under; empty when the whole registry mirrors it. */
  prefix: string;
  /** `https://registry-1.docker.io`. */
  remoteUrl: string;
  username?: string;
  password?: string;
  caCerts?: string[];
}

/** Counts what the cache asks of an upstream (metrics), by upstream and kind of request. */
export interface UpstreamObserver {
  request?(upstream: string, kind: 'manifest' | 'blob' | 'ping'): void;
}

/** The manifest media types asked for: every one the registry stores. */
const ACCEPT_MANIFESTS = [...MANIFEST_TYPES].join(', ');
/** The largest manifest fetched (as a registry accepts by default). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** Docker Hub's rate limit headers (`ratelimit-limit`, `ratelimit-remaining`, `docker-ratelimit-source`), passed on to clients. */
export function rateLimitHeaders(res: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(res.headers)) {
    if (name.startsWith('ratelimit-') || name === 'docker-ratelimit-source') {
      const value = header(res, name);
      if (value !== undefined) out[name] = value;
    }
  }
  return out;
}

/** An upstream manifest as fetched. */
export interface UpstreamManifest {
  content: Buffer;
  mediaType: string;
  digest: Digest;
  rateLimits: Record<string, string>;
}

/** An upstream blob response, its body unread. */
export interface UpstreamBlob {
  size: number;
  body: IncomingMessage;
}

/**
 * One upstream registry, reached through src/client's transport stack (ping, Basic or bearer
 * tokens reused until they expire, redirects). Errors thrown are RegistryErrors fit to show a
 * client: they never carry the upstream's credentials or tokens. `UNAVAILABLE` means the
 * upstream could not answer (unreachable, 5xx, 429): the cache may serve what it has.
 */
export class Upstream {
  readonly name: string;
  private readonly transport: RegistryTransport;

  constructor(
    readonly settings: UpstreamSettings,
    private readonly observer: UpstreamObserver = {},
  ) {
    const url = new URL(settings.remoteUrl);
    this.name = settings.prefix || url.host;
    this.transport = new RegistryTransport({
      registry: url.host,
      scheme: url.protocol === 'http:' ? 'http' : 'https',
      ...(settings.caCerts ? { tls: { caCerts: settings.caCerts } } : {}),
      ...(settings.username !== undefined && settings.password !== undefined ? { credentials: { username: settings.username, password: settings.password } } : {}),
      // The cache answers from what it holds when the upstream struggles, rather than waiting on backoff.
      maxRetries: 1,
      retryBaseMs: 100,
      idleTimeoutMs: 30_000,
    });
  }

  /** The upstream's host (`registry-1.docker.io`), as containerd's `?ns=` and mirror configs name it. */
  get host(): string {
    return new URL(this.settings.remoteUrl).host;
  }

  /**
   * True when the upstream is Docker Hub, or mirrored as `docker.io` (a mirror of Docker Hub
   * names images as Docker Hub does): one-component names live under `library/`.
   */
  get isDockerHub(): boolean {
    return this.settings.prefix === 'docker.io' || ['registry-1.docker.io', 'index.docker.io', 'docker.io', 'registry.hub.docker.com'].includes(this.host);
  }

  /** HEAD of a manifest: its digest, or undefined when the upstream does not have it. */
  async headManifest(repository: string, reference: string): Promise<{ digest: Digest; rateLimits: Record<string, string> } | undefined> {
    const res = await this.send('manifest', { method: 'HEAD', path: `/v2/${repository}/manifests/${reference}`, repository, accept: ACCEPT_MANIFESTS });
    discard(res);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw await this.failure(res, 'manifest', reference);
    const digest = header(res, 'docker-content-digest');
    if (!digest || !/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest)) {
      // Registries that leave the digest out get a GET, whose body says it.
      const manifest = await this.getManifest(repository, reference);
      return manifest && { digest: manifest.digest, rateLimits: manifest.rateLimits };
    }
    return { digest: digest as Digest, rateLimits: rateLimitHeaders(res) };
  }

  /** A manifest by tag or digest (verified against the digest when asked by digest); undefined when unknown upstream. */
  async getManifest(repository: string, reference: string): Promise<UpstreamManifest | undefined> {
    const res = await this.send('manifest', { method: 'GET', path: `/v2/${repository}/manifests/${reference}`, repository, accept: ACCEPT_MANIFESTS });
    if (res.statusCode === 404) {
      discard(res);
      return undefined;
    }
    if (res.statusCode !== 200) throw await this.failure(res, 'manifest', reference);
    let content: Buffer;
    try {
      content = await readBody(res, MAX_MANIFEST_BYTES);
    } catch (error) {
      throw new RegistryError('UNAVAILABLE', { message: `the upstream ${this.name} sent an unreadable manifest`, cause: error });
    }
    const mediaType = (header(res, 'content-type') ?? '').split(';')[0]!.trim();
    let digest: Digest;
    if (reference.includes(':')) {
      const algorithm = digestParts(reference as Digest).algorithm;
      digest = digestOf(content, algorithm);
      if (digest !== reference) throw new RegistryError('UNAVAILABLE', { message: `the upstream ${this.name} sent a manifest that does not match its digest` });
    } else {
      digest = digestOf(content);
    }
    return { content, mediaType, digest, rateLimits: rateLimitHeaders(res) };
  }

  /** A blob's size from a HEAD; undefined when unknown upstream. */
  async headBlob(repository: string, digest: Digest): Promise<number | undefined> {
    const res = await this.send('blob', { method: 'HEAD', path: `/v2/${repository}/blobs/${digest}`, repository });
    discard(res);
    if (res.statusCode === 404) return undefined;
    if (res.statusCode !== 200) throw await this.failure(res, 'blob', digest);
    const length = Number(header(res, 'content-length'));
    if (!Number.isSafeInteger(length) || length < 0) throw new RegistryError('UNAVAILABLE', { message: `the upstream ${this.name} did not say the blob's size` });
    return length;
  }

  /** Starts a blob GET; undefined when unknown upstream. The caller reads (or destroys) the body. */
  async openBlob(repository: string, digest: Digest, signal?: AbortSignal): Promise<UpstreamBlob | undefined> {
    const res = await this.send('blob', { method: 'GET', path: `/v2/${repository}/blobs/${digest}`, repository, ...(signal ? { signal } : {}) });
    if (res.statusCode === 404) {
      discard(res);
      return undefined;
    }
    if (res.statusCode !== 200) throw await this.failure(res, 'blob', digest);
    const length = Number(header(res, 'content-length'));
    if (!Number.isSafeInteger(length) || length < 0) {
      res.destroy();
      throw new RegistryError('UNAVAILABLE', { message: `the upstream ${this.name} did not say the blob's size` });
    }
    return { size: length, body: res };
  }

  /**
   * Pings the upstream now (its scheme, its auth challenge, a kept-alive connection) so that the
   * first pull does not wait on it; a failure is forgotten (the first request pings again).
   */
  warmUp(): void {
    this.transport.baseUrl().catch(() => undefined);
  }

  close(): void {
    this.transport.close();
  }

  private async send(
    kind: 'manifest' | 'blob',
    request: { method: string; path: string; repository: string; accept?: string; signal?: AbortSignal },
  ): Promise<IncomingMessage> {
    this.observer.request?.(this.name, kind);
    try {
      const url = await this.transport.resolve(request.path);
      return await this.transport.roundTrip({
        method: request.method,
        url,
        scopes: [`repository:${request.repository}:pull`],
        followRedirects: true,
        ...(request.accept ? { headers: { accept: request.accept } } : {}),
        ...(request.signal ? { signal: request.signal } : {}),
      });
    } catch (error) {
      if (error instanceof RegistryError) throw error;
      // Client errors name the upstream host and what failed, never the credentials.
      const why = isClientError(error) ? error.kind : 'network';
      throw new RegistryError('UNAVAILABLE', { message: `the upstream ${this.name} cannot be reached (${why})` });
    }
  }

  /** The error a client sees for an upstream answer other than 200 and 404. */
  private async failure(res: IncomingMessage, what: 'manifest' | 'blob', reference: string): Promise<RegistryError> {
    discard(res);
    const status = res.statusCode ?? 0;
    if (status === 401 || status === 403) {
      return new RegistryError('UNAVAILABLE', { message: `the upstream ${this.name} refused the cache's credentials for this ${what} (HTTP ${status})`, detail: { reference } });
    }
    return new RegistryError('UNAVAILABLE', { message: `the upstream ${this.name} answered HTTP ${status} for the ${what}`, detail: { reference, status } });
  }
}
