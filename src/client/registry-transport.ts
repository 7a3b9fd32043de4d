import type { IncomingMessage } from 'node:http';
import { AuthTransport } from './auth-transport.js';
import { networkFailure } from './client-error.js';
import type { CredentialsSource } from './credentials.js';
import { HttpTransport, type TlsSettings } from './http-transport.js';
import { pingRegistry } from './ping.js';
import { RedirectTransport } from './redirect-transport.js';
import { RetryTransport } from './retry-transport.js';
import type { RegistryRequest, RoundTripper } from './round-tripper.js';
import { WHARF_VERSION } from '../version.js';

export interface RegistryTransportOptions {
  /** `host[:port]` as a reference names it; `docker.io` is reached at registry-1.docker.io. */
  registry: string;
  /** Credentials, or a function that finds them the first time the registry asks. */
  credentials?: CredentialsSource;
  tls?: TlsSettings;
  /** Only this scheme, no probing of the other (a registry named by URL). */
  scheme?: 'https' | 'http';
  /** Talk plain HTTP from the start (`--plain-http`); the same as `scheme: 'http'`. */
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
  /** Send Basic credentials before any challenge (see AuthTransport). */
  preemptiveBasic?: boolean;
}

/**
 * The transport stack for one registry, layered as go-containerregistry layers it:
 *
 *     RedirectTransport   follows blob redirects; credentials stay on the registry's origin
 *       AuthTransport     answers the challenge: Basic, or bearer tokens per scope set
 *         RetryTransport  429/5xx with Retry-After, dropped connections, backoff
 *           HttpTransport TLS trust, keep-alive, idle timeout, User-Agent
 *
 * The registry's scheme and first challenge are found by a ping on first use (pingRegistry goes
 * straight to the HTTP layer), so building a transport does no I/O. Requests may name a URL under
 * `baseUrl()` or an absolute URL the registry handed out (an upload Location).
 */
export class RegistryTransport implements RoundTripper {
  readonly registry: string;
  readonly http: HttpTransport;
  readonly retry: RetryTransport;
  readonly auth: AuthTransport;
  private readonly top: RoundTripper;
  private readonly options: RegistryTransportOptions;
  private base: Promise<URL> | undefined;

  constructor(options: RegistryTransportOptions) {
    this.options = options;
    this.registry = options.registry;
    this.http = new HttpTransport({
      tls: { ...options.tls, ...(options.insecure ? { skipVerify: true } : {}) },
      userAgent: options.userAgent ?? `wharf/${WHARF_VERSION}`,
      ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    });
    this.retry = new RetryTransport(this.http, {
      ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
      ...(options.retryBaseMs !== undefined ? { baseDelayMs: options.retryBaseMs } : {}),
    });
    this.auth = new AuthTransport(this.retry, {
      registry: options.registry,
      tokenTransport: this.http,
      ...(options.credentials !== undefined ? { credentials: options.credentials } : {}),
      ...(options.preemptiveBasic ? { preemptiveBasic: true } : {}),
    });
    this.top = new RedirectTransport(this.auth);
  }

  /** The registry root, `https://host/` or `http://host/`, found once by pinging `/v2/`. */
  baseUrl(): Promise<URL> {
    this.base ??= (async () => {
      const scheme = this.options.scheme ?? (this.options.plainHttp ? 'http' : undefined);
      const ping = await pingRegistry(this.http, this.registry, { ...(scheme ? { scheme } : {}), ...(this.options.insecure ? { insecure: true } : {}) });
      this.auth.challenge ??= ping.challenge;
      return ping.base;
    })();
    // A failed ping is not remembered: the next request pings again.
    this.base.catch(() => (this.base = undefined));
    return this.base;
  }

  /** A path under the registry root (`/v2/…`, with its query) as a URL. */
  async resolve(path: string): Promise<URL> {
    return new URL(path, await this.baseUrl());
  }

  /** Sends a request down the stack; a failure without a response becomes ClientError('network' | 'tls'). */
  async roundTrip(request: RegistryRequest): Promise<IncomingMessage> {
    await this.baseUrl();
    try {
      return await this.top.roundTrip(request);
    } catch (error) {
      throw networkFailure(error, request.url, this.registry);
    }
  }

  /** Closes pooled connections. */
  close(): void {
    this.http.close();
  }
}

/** The transport stack for one registry (see RegistryTransport). */
export function createRegistryTransport(options: RegistryTransportOptions): RegistryTransport {
  return new RegistryTransport(options);
}
