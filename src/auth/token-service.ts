import { RegistryError } from '../errors/index.js';
import type { AccountStore } from '../metadata/account-store.js';
import { isValidRepositoryName } from '../oci/names.js';
import { ACTIONS, ADMIN_SCOPE, formatScope, parseScope, type AccessEntry } from './access.js';
import type { AccessControl, AccessRequest } from './access-control.js';
import type { AuditSink } from './audit-log.js';
import { actorOf, type Identity } from './identity.js';
import { newSecret, sha256Hex } from './passwords.js';
import type { TokenIssuer } from './token-issuer.js';

export interface TokenResponse {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  scope?: string;
  refresh_token?: string;
}

/**
 * The built-in token server's logic (no HTTP): who may get which `access` claims. A token
 * carries the subset of the requested scopes that policy allows: nothing more, possibly
 * nothing at all, as the Docker token spec asks.
 */
export class TokenService {
  constructor(
    private readonly deps: {
      access: AccessControl;
      issuer: TokenIssuer;
      accounts: AccountStore;
      audit: AuditSink;
      service: string;
      refreshExpirationMs: number;
    },
  ) {}

  get service(): string {
    return this.deps.service;
  }

  /** Signs a token for `identity` with the allowed part of `scopes`, plus a refresh token when asked. */
  async issue(identity: Identity, scopes: string[], options: { offline: boolean; service?: string; request: AccessRequest }): Promise<TokenResponse> {
    if (options.service !== undefined && options.service !== '' && options.service !== this.deps.service) {
      throw new RegistryError('PARAMETER_INVALID', { message: 'unknown service', detail: { service: options.service } });
    }
    await this.deps.access.policy.refresh();
    const access = this.allowed(identity, scopes);
    const subject = actorOf(identity) ?? '';
    const signed = await this.deps.issuer.sign(subject, access);
    const response: TokenResponse = { token: signed.token, access_token: signed.token, expires_in: signed.expiresIn, issued_at: signed.issuedAt };
    if (access.length > 0) response.scope = access.map(formatScope).join(' ');
    if (options.offline && identity.kind !== 'anonymous') {
      const refresh = newSecret('wharf_rt_');
      const now = Date.now();
      await this.deps.accounts.addRefreshToken({ tokenHash: sha256Hex(refresh), subject, createdAt: now, expiresAt: now + this.deps.refreshExpirationMs });
      response.refresh_token = refresh;
    }
    this.deps.audit.record({
      event: 'token',
      outcome: 'success',
      ...(subject ? { actor: subject } : {}),
      remote: options.request.remote,
      requested: scopes,
      granted: access.map(formatScope),
      ...(response.refresh_token ? { refresh: true } : {}),
    });
    return response;
  }

  /** The account a refresh token (a docker identity token) stands for; throws UNAUTHORIZED. */
  async redeem(refreshToken: string, request: AccessRequest): Promise<Identity> {
    const record = refreshToken.startsWith('wharf_rt_') ? await this.deps.accounts.getRefreshToken(sha256Hex(refreshToken)) : undefined;
    const identity = record && record.expiresAt > Date.now() ? await this.deps.access.accountFor(record.subject) : undefined;
    if (!identity || identity.kind === 'anonymous') {
      this.deps.audit.record({ event: 'refresh', outcome: 'failure', remote: request.remote });
      throw new RegistryError('UNAUTHORIZED', { message: 'invalid or expired refresh token' });
    }
    return identity;
  }

  private allowed(identity: Identity, scopes: string[]): AccessEntry[] {
    const merged = new Map<string, Set<string>>();
    const policy = this.deps.access.policy;
    for (const raw of scopes) {
      const entry = parseScope(raw);
      if (!entry) continue;
      let actions: string[] = [];
      if (entry.type === 'repository' && isValidRepositoryName(entry.name)) {
        const held = policy.actionsOn(identity, entry.name);
        const wanted = entry.actions.includes('*') ? ACTIONS.filter((a) => a !== 'admin') : entry.actions;
        actions = wanted.filter((a) => held.has(a as never));
        if (entry.actions.includes('*') && ['pull', 'push', 'delete'].every((a) => held.has(a as never))) actions.push('*');
      } else if (entry.type === 'registry' && entry.name === 'catalog' && entry.actions.includes('*') && identity.kind !== 'anonymous') {
        actions = ['*'];
      } else if (raw === ADMIN_SCOPE && policy.isAdministrator(identity)) {
        actions = ['*'];
      }
      if (actions.length === 0) continue;
      const key = `${entry.type}\0${entry.name}`;
      const set = merged.get(key) ?? new Set<string>();
      for (const a of actions) set.add(a);
      merged.set(key, set);
    }
    return [...merged].map(([key, set]) => {
      const [type, name] = key.split('\0') as [string, string];
      return { type, name, actions: [...set] };
    });
  }
}
