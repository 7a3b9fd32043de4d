import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { digestOf, isDigest } from '../oci/digest.js';
import { ACCEPT_ALL_MANIFESTS, bareMediaType } from '../oci/media-types.js';
import { DOCKER_HUB, DOCKER_HUB_API } from '../oci/reference.js';
import { mergeScopes, parseChallenges, repositoryScope, type AuthChallenge } from './auth-challenge.js';
import { ClientError, parseErrorBody, type ClientErrorKind } from './client-error.js';
import type { Credentials } from './credentials.js';
import { Transport, discard, header, hostnameOf, isLoopbackHost, readBody, type TlsSettings } from './transport.js';
import { WHARF_VERSION } from '../version.js';

export interface RegistryClientOptions {
  /** `host[:port]` as a reference names it; `docker.io` is reached at registry-1.docker.io. */
  registry: string;
  /** Credentials, or a function that finds them the first time the registry asks. */
  credentials?: Credentials | (() => Promise<Credentials | undefined>);
  tls?: TlsSettings;
  /** Talk plain HTTP from the start (`--plain-http`). */
  plainHttp?: boolean;
  /** Skip TLS verification and allow falling back to plain HTTP (`--insecure`). */
  insecure?: boolean;
  /** Retries after a 5xx, a 429 or a dropped connection; 4 by default. */
  maxRetries?: number;
  /** First backoff delay in milliseconds, doubled each retry; 250 by default. */
  retryBaseMs?: number;
  userAgent?: string;
  /** Cut a connection that sends nothing for this long; 60 s by default. */
  idleTimeoutMs?: number;
}

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

interface RequestOptions {
  method: string;
  /** A path under the registry root, or an absolute URL (upload locations). */
  path: string | URL;
  scopes: string[];
  headers?: OutgoingHttpHeaders;
  /** A Buffer, or a function that opens the body afresh for each attempt. */
  body?: Buffer | (() => Readable);
  /** Follow 3xx (blob GETs): credentials go along only to the same origin. */
  followRedirects?: boolean;
  /** False for requests that must not be repeated blindly. */
  retry?: boolean;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNABORTED']);

/**
 * Speaks the OCI distribution API to one registry: picks HTTPS or (for loopback and insecure
 * registries) plain HTTP, answers auth challenges (Basic, and Docker's bearer token flow with
 * pull/push/mount scopes), retries 5xx/429 with backoff honouring Retry-After, follows blob
 * redirects without leaking credentials, and pages lists as async iterables.
 */
export class RegistryClient {
  readonly registry: string;
  private readonly transport: Transport;
  private readonly options: RegistryClientOptions;
  private base: URL | undefined;
  private basePromise: Promise<URL> | undefined;
  private challenge: AuthChallenge | undefined;
  private credentials: Credentials | undefined;
  private credentialsLoaded = false;
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pendingTokens = new Map<string, Promise<CachedToken>>();
  /** Set while verifying a login: token requests then ask for a refresh token (`offline_token`). */
  private askOfflineToken = false;
  private refreshToken: string | undefined;

  constructor(options: RegistryClientOptions) {
    this.options = options;
    this.registry = options.registry;
    this.transport = new Transport(
      { ...options.tls, ...(options.insecure ? { skipVerify: true } : {}) },
      options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {},
    );
  }

  close(): void {
    this.transport.close();
  }

  /** The host the API answers on (Docker Hub's differs from its reference name). */
  private get apiHost(): string {
    return this.registry === DOCKER_HUB ? DOCKER_HUB_API : this.registry;
  }

  /** The registry root, `https://host/` or `http://host/`, found once by probing `/v2/`. */
  baseUrl(): Promise<URL> {
    if (this.base) return Promise.resolve(this.base);
    this.basePromise ??= this.probe().then((url) => (this.base = url));
    return this.basePromise;
  }

  private async probe(): Promise<URL> {
    const https = new URL(`https://${this.apiHost}/`);
    const http = new URL(`http://${this.apiHost}/`);
    if (this.options.plainHttp) {
      await this.probeOne(http);
      return http;
    }
    try {
      await this.probeOne(https);
      return https;
    } catch (error) {
      const mayFallBack = this.options.insecure || isLoopbackHost(hostnameOf(this.apiHost));
      if (!mayFallBack || error instanceof ClientError) throw this.networkError(error, https);
      // Only a registry answering on plain HTTP counts: a TLS server's "400 plain HTTP to HTTPS
      // port" must not hide the certificate error the user needs to see.
      let answered = false;
      try {
        answered = await this.probeOne(http);
      } catch {
        // fall through to the HTTPS error
      }
      if (answered) return http;
      throw this.networkError(error, https);
    }
  }

  /**
   * GET /v2/ to see that a registry answers there; remembers its challenge. Returns whether the
   * answer looks like a registry's (200, 401, or the API version header). Throws on network errors.
   */
  private async probeOne(base: URL): Promise<boolean> {
    const res = await this.transport.send({ method: 'GET', url: new URL('/v2/', base), headers: this.commonHeaders() });
    discard(res);
    if (res.statusCode === 401) {
      const value = header(res, 'www-authenticate');
      if (value) this.challenge = pickChallenge(parseChallenges(value));
    }
    return res.statusCode === 200 || res.statusCode === 401 || header(res, 'docker-distribution-api-version') !== undefined;
  }

  private networkError(error: unknown, url: URL): ClientError {
    if (error instanceof ClientError) return error;
    const err = error as NodeJS.ErrnoException;
    const tls = /certificate|SSL|TLS|self.signed|EPROTO|wrong version/i.test(`${err.code ?? ''} ${err.message}`);
    const hint = tls ? ' (use --ca-cert, put the CA in /etc/docker/certs.d/HOST/ca.crt, or --insecure)' : '';
    return new ClientError(tls ? 'tls' : 'network', `cannot reach ${url.host}: ${err.message}${hint}`, { registry: this.registry, cause: error });
  }

  private commonHeaders(): OutgoingHttpHeaders {
    return { 'user-agent': this.options.userAgent ?? `wharf/${WHARF_VERSION}` };
  }

  private async loadCredentials(): Promise<Credentials | undefined> {
    if (!this.credentialsLoaded) {
      const source = this.options.credentials;
      this.credentials = typeof source === 'function' ? await source() : source;
      this.credentialsLoaded = true;
    }
    return this.credentials;
  }

  /** Refuses to send secrets over plain HTTP anywhere but loopback. */
  private assertMaySendCredentials(url: URL): void {
    if (url.protocol === 'https:' || isLoopbackHost(url.hostname)) return;
    throw new ClientError(
      'insecure-credentials',
      `refusing to send credentials to ${url.host} over plain HTTP; use HTTPS for this registry`,
      { registry: this.registry },
    );
  }

  /** The Authorization header for these scopes, fetching a token when the registry wants one. */
  private async authorization(scopes: string[], url: URL, fresh: boolean): Promise<string | undefined> {
    const challenge = this.challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === 'basic') {
      const creds = await this.loadCredentials();
      if (!creds || creds.password === undefined) return undefined;
      this.assertMaySendCredentials(url);
      return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    }
    if (challenge.scheme === 'bearer') {
      const wanted = mergeScopes([...scopes, ...(challenge.params.scope ? challenge.params.scope.split(' ') : [])]);
      const key = wanted.join(' ');
      const cached = this.tokens.get(key);
      if (!fresh && cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
      // Parallel layer transfers want the same token at once: ask the token server once.
      let pending = this.pendingTokens.get(key);
      if (!pending) {
        pending = this.fetchToken(challenge, wanted).finally(() => this.pendingTokens.delete(key));
        this.pendingTokens.set(key, pending);
      }
      const token = await pending;
      this.tokens.set(key, token);
      return `Bearer ${token.token}`;
    }
    return undefined;
  }

  /** Docker's token flow: GET the realm with service and scopes, with Basic credentials when we have them. */
  private async fetchToken(challenge: AuthChallenge, scopes: string[]): Promise<CachedToken> {
    const realm = challenge.params.realm;
    if (!realm) throw new ClientError('unauthorized', `${this.registry} sent a bearer challenge without a realm`, { registry: this.registry });
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new ClientError('unauthorized', `${this.registry} sent a bad token realm "${realm}"`, { registry: this.registry });
    }
    const creds = await this.loadCredentials();
    const headers: OutgoingHttpHeaders = { ...this.commonHeaders() };
    let res: IncomingMessage;
    const service = challenge.params.service;
    try {
      if (creds?.identityToken) {
        // An identity token is an OAuth2 refresh token: POST it, as docker does.
        this.assertMaySendCredentials(realmUrl);
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'wharf' });
        if (service) form.set('service', service);
        if (scopes.length > 0) form.set('scope', scopes.join(' '));
        headers['content-type'] = 'application/x-www-form-urlencoded';
        res = await this.transport.send({ method: 'POST', url: realmUrl, headers, body: Buffer.from(form.toString()) });
      } else {
        const url = new URL(realmUrl);
        if (service) url.searchParams.set('service', service);
        if (this.askOfflineToken) {
          url.searchParams.set('offline_token', 'true');
          url.searchParams.set('client_id', 'wharf');
        }
        for (const scope of scopes) url.searchParams.append('scope', scope);
        if (creds && creds.password !== undefined) {
          this.assertMaySendCredentials(url);
          headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
          url.searchParams.set('account', creds.username);
        }
        res = await this.transport.send({ method: 'GET', url, headers });
      }
    } catch (error) {
      throw this.networkError(error, realmUrl);
    }
    const body = await readBody(res, 1024 * 1024);
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new ClientError('unauthorized', `${this.registry}: the token server refused the credentials (${res.statusCode})`, {
        status: 401,
        registry: this.registry,
      });
    }
    if (res.statusCode !== 200) {
      throw new ClientError('unauthorized', `${this.registry}: token request failed with HTTP ${res.statusCode}`, { status: res.statusCode, registry: this.registry });
    }
    const doc = JSON.parse(body.toString('utf8')) as { token?: string; access_token?: string; expires_in?: number; refresh_token?: string };
    const token = doc.token ?? doc.access_token;
    if (this.askOfflineToken && typeof doc.refresh_token === 'string' && doc.refresh_token) this.refreshToken = doc.refresh_token;
    if (!token) throw new ClientError('unauthorized', `${this.registry}: the token server answered without a token`, { registry: this.registry });
    const lifetime = Math.max(60, doc.expires_in ?? 60) * 1000;
    return { token, expiresAt: Date.now() + lifetime - 10_000 };
  }

  /**
   * Sends one request with auth, retries and redirects. Returns the final response whatever its
   * status (callers decide which are errors); throws ClientError on network failure.
   */
  private async request(options: RequestOptions): Promise<IncomingMessage> {
    const base = await this.baseUrl();
    const maxRetries = options.retry === false ? 0 : this.options.maxRetries ?? 4;
    const baseDelay = this.options.retryBaseMs ?? 250;
    let url = typeof options.path === 'string' ? new URL(options.path, base) : options.path;
    let attempt = 0;
    let reauthenticated = false;
    let redirects = 0;
    let authOrigin = url.origin;
    for (;;) {
      const headers: OutgoingHttpHeaders = { ...this.commonHeaders(), ...options.headers };
      if (url.origin === authOrigin) {
        const auth = await this.authorization(options.scopes, url, false);
        if (auth) headers.authorization = auth;
      }
      const body = typeof options.body === 'function' ? options.body() : options.body;
      let res: IncomingMessage;
      try {
        res = await this.transport.send({ method: options.method, url, headers, ...(body ? { body } : {}) });
      } catch (error) {
        body && !Buffer.isBuffer(body) && body.destroy();
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (attempt < maxRetries && NETWORK_CODES.has(code)) {
          await sleep(backoff(baseDelay, attempt++));
          continue;
        }
        throw this.networkError(error, url);
      }
      const status = res.statusCode ?? 0;
      if (status === 401 && !reauthenticated && url.origin === authOrigin) {
        const value = header(res, 'www-authenticate');
        const challenge = value ? pickChallenge(parseChallenges(value)) : undefined;
        const creds = await this.loadCredentials();
        // Retry once with the challenge's scheme, unless Basic was already tried and there is nothing new to send.
        const hadAuth = headers.authorization !== undefined;
        if (challenge && !(challenge.scheme === 'basic' && (hadAuth || !creds))) {
          discard(res);
          this.challenge = challenge;
          reauthenticated = true;
          if (challenge.scheme === 'bearer') {
            const auth = await this.authorization(options.scopes, url, true);
            if (!auth) return res;
          }
          continue;
        }
        return res;
      }
      if (options.followRedirects && status >= 300 && status < 400 && status !== 304) {
        const location = header(res, 'location');
        discard(res);
        if (!location || ++redirects > 5) throw new ClientError('http', `too many or bad redirects from ${url.host}`, { registry: this.registry });
        const next = new URL(location, url);
        if (next.origin !== url.origin) authOrigin = ''; // never carry credentials to another host
        url = next;
        continue;
      }
      if (RETRYABLE_STATUS.has(status) && attempt < maxRetries) {
        const wait = retryAfter(header(res, 'retry-after')) ?? backoff(baseDelay, attempt);
        attempt++;
        discard(res);
        await sleep(Math.min(wait, 60_000));
        continue;
      }
      return res;
    }
  }

  /** Turns an unexpected response into a ClientError that names what was asked for. */
  private async failure(res: IncomingMessage, what: string): Promise<ClientError> {
    const body = await readBody(res, 1024 * 1024).catch(() => Buffer.alloc(0));
    const errors = parseErrorBody(body);
    const status = res.statusCode ?? 0;
    const codes = new Set(errors.map((e) => e.code));
    let kind: ClientErrorKind = 'http';
    let message: string;
    if (status === 401 || codes.has('UNAUTHORIZED')) {
      kind = 'unauthorized';
      message = `unauthorized: authentication required for ${what}`;
    } else if (status === 403 || codes.has('DENIED')) {
      kind = 'denied';
      message = `denied: requested access to ${what} is denied`;
    } else if (codes.has('MANIFEST_UNKNOWN') || (status === 404 && what.startsWith('manifest'))) {
      kind = 'manifest-unknown';
      message = `manifest unknown: ${what.replace(/^manifest /, '')}`;
    } else if (codes.has('BLOB_UNKNOWN')) {
      kind = 'blob-unknown';
      message = `blob unknown: ${what}`;
    } else if (codes.has('NAME_UNKNOWN')) {
      kind = 'name-unknown';
      message = `repository name not known to registry: ${what}`;
    } else if (status === 405 || codes.has('UNSUPPORTED')) {
      kind = 'unsupported';
      message = `${what}: the registry does not support this operation${errors[0]?.message ? ` (${errors[0].message})` : ''}`;
    } else if (status === 404) {
      kind = 'not-found';
      message = `not found: ${what}`;
    } else {
      const detail = errors.map((e) => `${e.code}: ${e.message ?? ''}`.trim()).join('; ');
      message = `${what}: HTTP ${status}${detail ? ` (${detail})` : ''}`;
    }
    return new ClientError(kind, message, { status, registryErrors: errors, registry: this.registry });
  }

  /**
   * Checks that the registry answers and, when it asks for credentials, that ours are accepted
   * (`wharf login`). Throws ClientError('unauthorized') when they are refused.
   */
  async verifyLogin(): Promise<{ identityToken?: string }> {
    // As docker login does: ask the token server for an offline (refresh) token too, so that the
    // stored credential can be an identity token rather than the password.
    this.askOfflineToken = true;
    try {
      const res = await this.request({ method: 'GET', path: '/v2/', scopes: [] });
      if (res.statusCode === 200) {
        discard(res);
        return this.refreshToken ? { identityToken: this.refreshToken } : {};
      }
      throw await this.failure(res, `${this.registry}`);
    } finally {
      this.askOfflineToken = false;
    }
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

  /** Deletes a manifest by digest (registries refuse deletes by tag). */
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
        location = this.uploadLocation(res);
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
        location = this.uploadLocation(res);
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
        if (!RETRYABLE_STATUS.has(res.statusCode ?? 0) || attempt >= (this.options.maxRetries ?? 4)) throw error;
      } catch (error) {
        if (!(error instanceof ClientError) || (error.kind !== 'network' && error.kind !== 'http') || attempt >= (this.options.maxRetries ?? 4)) throw error;
        if (error.kind === 'http' && !RETRYABLE_STATUS.has(error.status ?? 0)) throw error;
      }
      // A failed PUT leaves the session unusable: start a new one.
      location = undefined;
      await sleep(backoff(this.options.retryBaseMs ?? 250, attempt++));
    }
  }

  private uploadLocation(res: IncomingMessage): URL {
    const location = header(res, 'location');
    if (!location) throw new ClientError('http', `${this.registry} started an upload without a Location`, { registry: this.registry });
    return new URL(location, this.base);
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

  private async *pages(first: string, scopes: string[], what: string, items: (doc: unknown) => string[]): AsyncGenerator<string> {
    let path: string | undefined = first;
    while (path) {
      const res = await this.request({ method: 'GET', path, scopes });
      if (res.statusCode !== 200) throw await this.failure(res, what);
      const doc = JSON.parse((await readBody(res)).toString('utf8')) as unknown;
      yield* items(doc);
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res, 'link') ?? '');
      path = link ? link[1] : undefined;
    }
  }

  /** Docker's `/v1/search`; undefined when the registry has no such endpoint. */
  async search(term: string, limit = 25): Promise<SearchResult[] | undefined> {
    const query = new URLSearchParams({ q: term, n: String(limit) });
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

/** Prefers a bearer challenge (it carries scopes), else basic. */
function pickChallenge(challenges: AuthChallenge[]): AuthChallenge | undefined {
  return challenges.find((c) => c.scheme === 'bearer') ?? challenges.find((c) => c.scheme === 'basic');
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

function backoff(baseMs: number, attempt: number): number {
  const delay = Math.min(baseMs * 2 ** attempt, 8_000);
  return delay / 2 + Math.random() * (delay / 2);
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}
