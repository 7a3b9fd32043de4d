import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { parseChallenges, pickChallenge, type AuthChallenge } from './auth-challenge.js';
import { BearerTokens } from './bearer-tokens.js';
import { assertMaySendCredentials, basicAuthorization, type Credentials, type CredentialsSource } from './credentials.js';
import { discard, header } from './http-message.js';
import type { RegistryRequest, RoundTripper } from './round-tripper.js';

export interface AuthTransportOptions {
  /** For messages and errors. */
  registry: string;
  credentials?: CredentialsSource;
  /** Where token requests go: the plain HTTP layer, since a token realm is another server. */
  tokenTransport: RoundTripper;
  /**
   * Basic credentials on every request from the first one, and no challenge followed (the admin
   * API, which is signed in to with a password). Otherwise credentials go only once a challenge asks.
   */
  preemptiveBasic?: boolean;
}

const BASIC: AuthChallenge = { scheme: 'basic', params: {} };

/**
 * Answers the registry's auth challenge on every request: Basic with the user's password, or a
 * bearer token for the request's scopes (see BearerTokens). The challenge comes from the ping and
 * is replaced by any later 401's; a 401 is answered once with the new challenge (a fresh token
 * for bearer), then returned as it is for the caller to report.
 *
 * Credentials never go with a request marked `credentials: false` (a redirect off the registry)
 * nor over plain HTTP to a host that is not loopback: that throws ClientError('insecure-credentials').
 */
export class AuthTransport implements RoundTripper {
  /** The challenge in force: set from the ping, replaced by later 401s. */
  challenge: AuthChallenge | undefined;
  readonly tokens: BearerTokens;
  private readonly registry: string;
  private credentials: Promise<Credentials | undefined> | undefined;

  constructor(
    private readonly inner: RoundTripper,
    private readonly options: AuthTransportOptions,
  ) {
    this.registry = options.registry;
    this.tokens = new BearerTokens({ registry: options.registry, transport: options.tokenTransport, credentials: () => this.loadCredentials() });
  }

  /** The credentials, looked up once (a credential helper is a process to run); a failed lookup is tried again next time. */
  loadCredentials(): Promise<Credentials | undefined> {
    const source = this.options.credentials;
    if (!this.credentials) {
      const lookup = typeof source === 'function' ? source() : Promise.resolve(source);
      this.credentials = lookup;
      lookup.catch(() => (this.credentials = undefined));
    }
    return this.credentials;
  }

  async roundTrip(request: RegistryRequest): Promise<IncomingMessage> {
    if (request.credentials === false) return this.inner.roundTrip(request);
    const first = await this.send(request, false);
    if (first.res.statusCode !== 401 || this.options.preemptiveBasic) return first.res;
    const value = header(first.res, 'www-authenticate');
    const challenge = value ? pickChallenge(parseChallenges(value)) : undefined;
    // Basic already tried (or nothing to send) has nothing new to offer: the 401 stands.
    if (!challenge || (challenge.scheme === 'basic' && (first.authorized || !(await this.loadCredentials())))) return first.res;
    discard(first.res);
    this.challenge = challenge;
    return (await this.send(request, challenge.scheme === 'bearer')).res;
  }

  private async send(request: RegistryRequest, freshToken: boolean): Promise<{ res: IncomingMessage; authorized: boolean }> {
    const authorization = await this.authorization(request, freshToken);
    if (!authorization) return { res: await this.inner.roundTrip(request), authorized: false };
    const headers: OutgoingHttpHeaders = { ...request.headers, authorization };
    return { res: await this.inner.roundTrip({ ...request, headers }), authorized: true };
  }

  /** The Authorization header for a request under the challenge in force; undefined for none. */
  private async authorization(request: RegistryRequest, freshToken: boolean): Promise<string | undefined> {
    const challenge = this.options.preemptiveBasic ? BASIC : this.challenge;
    if (challenge?.scheme === 'basic') {
      const creds = await this.loadCredentials();
      if (!creds || creds.password === undefined) return undefined;
      assertMaySendCredentials(request.url, this.registry);
      return basicAuthorization({ username: creds.username, password: creds.password });
    }
    if (challenge?.scheme === 'bearer') {
      return `Bearer ${await this.tokens.token(challenge, request.scopes ?? [], { fresh: freshToken })}`;
    }
    return undefined;
  }
}
