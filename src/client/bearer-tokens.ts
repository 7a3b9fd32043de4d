import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { AuthChallenge } from './auth-challenge.js';
import { mergeScopes } from './auth-challenge.js';
import { ClientError, networkFailure } from './client-error.js';
import { assertMaySendCredentials, basicAuthorization, type Credentials } from './credentials.js';
import { readBody } from './http-message.js';
import type { RoundTripper } from './round-tripper.js';

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** The token endpoint's answer (Docker's `token`, OAuth2's `access_token`). */
interface TokenResponse {
  token?: string;
  access_token?: string;
  expires_in?: number;
  refresh_token?: string;
}

export interface BearerTokensOptions {
  /** For messages and errors. */
  registry: string;
  /** Where token requests go (the plain HTTP layer: no auth, no redirects). */
  transport: RoundTripper;
  credentials: () => Promise<Credentials | undefined>;
}

/**
 * Docker's token flow for one registry: asks the challenge's realm for a token covering the
 * wanted scopes, with Basic credentials (or anonymously) by GET, or by trading an identity token
 * with the OAuth2 refresh grant by POST. Tokens are cached per realm, service and scope set until
 * shortly before they expire, and concurrent requests for the same set share one token request
 * (parallel layer uploads all want `pull,push` at once).
 */
export class BearerTokens {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();
  /** While set, password grants ask for an offline (refresh) token too, as `docker login` does. */
  askOfflineToken = false;
  /** The refresh token the server handed out while `askOfflineToken` was set. */
  refreshToken: string | undefined;

  constructor(private readonly options: BearerTokensOptions) {}

  /**
   * A token for these scopes plus the challenge's own; `fresh` skips the cache (the registry has
   * just refused the cached one). Throws ClientError('unauthorized') when the token server refuses.
   */
  async token(challenge: AuthChallenge, scopes: string[], options: { fresh?: boolean } = {}): Promise<string> {
    const wanted = mergeScopes([...scopes, ...(challenge.params.scope ? challenge.params.scope.split(' ') : [])]);
    const key = `${challenge.params.realm ?? ''} ${challenge.params.service ?? ''} ${wanted.join(' ')}`;
    const cached = this.tokens.get(key);
    if (!options.fresh && cached && cached.expiresAt > Date.now()) return cached.token;
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.fetch(challenge, wanted).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    const token = await pending;
    this.tokens.set(key, token);
    return token.token;
  }

  private async fetch(challenge: AuthChallenge, scopes: string[]): Promise<CachedToken> {
    const { registry, transport } = this.options;
    const realm = challenge.params.realm;
    if (!realm) throw new ClientError('unauthorized', `${registry} sent a bearer challenge without a realm`, { registry });
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new ClientError('unauthorized', `${registry} sent a bad token realm "${realm}"`, { registry });
    }
    const creds = await this.options.credentials();
    const service = challenge.params.service;
    let res: IncomingMessage;
    try {
      if (creds?.identityToken) {
        // An identity token is an OAuth2 refresh token: POST it, as docker does.
        assertMaySendCredentials(realmUrl, registry);
        const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'wharf' });
        if (service) form.set('service', service);
        if (scopes.length > 0) form.set('scope', scopes.join(' '));
        const headers = { 'content-type': 'application/x-www-form-urlencoded' };
        res = await transport.roundTrip({ method: 'POST', url: realmUrl, headers, body: Buffer.from(form.toString()) });
      } else {
        const url = new URL(realmUrl);
        if (service) url.searchParams.set('service', service);
        if (this.askOfflineToken) {
          url.searchParams.set('offline_token', 'true');
          url.searchParams.set('client_id', 'wharf');
        }
        for (const scope of scopes) url.searchParams.append('scope', scope);
        const headers: OutgoingHttpHeaders = {};
        if (creds && creds.password !== undefined) {
          assertMaySendCredentials(url, registry);
          headers.authorization = basicAuthorization({ username: creds.username, password: creds.password });
          url.searchParams.set('account', creds.username);
        }
        res = await transport.roundTrip({ method: 'GET', url, headers });
      }
    } catch (error) {
      throw networkFailure(error, realmUrl, registry);
    }
    const body = await readBody(res, 1024 * 1024);
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw new ClientError('unauthorized', `${registry}: the token server refused the credentials (${res.statusCode})`, { status: 401, registry });
    }
    if (res.statusCode !== 200) {
      throw new ClientError('unauthorized', `${registry}: token request failed with HTTP ${res.statusCode}`, { status: res.statusCode, registry });
    }
    let doc: TokenResponse;
    try {
      doc = JSON.parse(body.toString('utf8')) as TokenResponse;
    } catch {
      throw new ClientError('unauthorized', `${registry}: the token server answered with something that is not JSON`, { registry });
    }
    const token = doc.token ?? doc.access_token;
    if (this.askOfflineToken && typeof doc.refresh_token === 'string' && doc.refresh_token) this.refreshToken = doc.refresh_token;
    if (!token) throw new ClientError('unauthorized', `${registry}: the token server answered without a token`, { registry });
    // Renew 10 s early; servers that say nothing (or less than a minute) are taken as 60 s, as the spec says.
    const lifetime = Math.max(60, doc.expires_in ?? 60) * 1000;
    return { token, expiresAt: Date.now() + lifetime - 10_000 };
  }
}
