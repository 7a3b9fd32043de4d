import { createHmac, randomBytes } from 'node:crypto';
import { RegistryError } from '../errors/index.js';
import type { AccountStore } from '../metadata/account-store.js';
import { isValidRepositoryName } from '../oci/names.js';
import { ADMIN_SCOPE, grants, grantsAdmin, type Action } from './access.js';
import type { AuditSink } from './audit-log.js';
import type { HtpasswdFile } from './htpasswd.js';
import { ANONYMOUS, ROBOT_PREFIX, actorOf, type Identity, type TokenGrant } from './identity.js';
import { BCRYPT_COST, bcryptCost, constantTimeEqual, isBcryptHash, sha256Hex, verifyPassword } from './passwords.js';
import type { Policy } from './policy.js';
import type { LoginThrottle } from './throttle.js';
import { TokenRejected, type TokenVerifier } from './token-verifier.js';

/** What a request wants to do, as the HTTP layer's route table says. */
export type AccessTarget =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'repository'; name: string; action: Action };

/** The parts of a request access control reads; no HTTP types cross this line. */
export interface AccessRequest {
  authorization: string | undefined;
  remote: string | undefined;
  /** The Host header, for the built-in issuer's realm URL. */
  host: string | undefined;
  secure: boolean;
}

export interface ChallengeSettings {
  /** `basic`: htpasswd (registry:2 auth.htpasswd); `bearer`: the token protocol (auth.token). */
  scheme: 'basic' | 'bearer';
  realm: string | undefined;
  service: string;
  /** The built-in issuer's path, used for the realm when none is configured. */
  issuerRoute?: string;
  autoRedirect?: { path: string };
}

/** How long a verified password is remembered, so bcrypt does not run on every request. */
const VERIFIED_TTL_MS = 60_000;
const MAX_VERIFIED = 10_000;

interface Verified {
  /** The stored hash it was verified against: a changed password invalidates the entry. */
  hash: string;
  expires: number;
}

/**
 * The gate in front of the registry: who is asking (Basic credentials, a bearer token, or
 * nobody) and whether they may do what the route needs. Throws RegistryError UNAUTHORIZED
 * (with the challenge), DENIED or TOOMANYREQUESTS; the HTTP error seam writes it.
 */
export class AccessControl {
  private readonly verified = new Map<string, Verified>();
  private readonly cacheKey = randomBytes(32);
  /** The highest cost of any stored hash checked so far (see failureCost). */
  private costliestSeen = 0;

  constructor(
    private readonly deps: {
      policy: Policy;
      accounts: AccountStore;
      htpasswd?: HtpasswdFile;
      verifier?: TokenVerifier;
      throttle: LoginThrottle;
      audit: AuditSink;
      challenge: ChallengeSettings;
    },
  ) {}

  get policy(): Policy {
    return this.deps.policy;
  }

  get scheme(): 'basic' | 'bearer' {
    return this.deps.challenge.scheme;
  }

  /** Who the request comes from: anonymous without credentials; throws on bad credentials. */
  async identify(request: AccessRequest): Promise<Identity> {
    await this.deps.policy.refresh();
    const header = request.authorization;
    if (header === undefined || header === '') return ANONYMOUS;
    const space = header.indexOf(' ');
    const scheme = (space > 0 ? header.slice(0, space) : header).toLowerCase();
    const value = space > 0 ? header.slice(space + 1).trim() : '';
    if (scheme === 'basic') {
      let decoded: string;
      try {
        decoded = Buffer.from(value, 'base64').toString('utf8');
      } catch {
        decoded = '';
      }
      const colon = decoded.indexOf(':');
      if (colon < 0) throw this.unauthorized(request, undefined, 'malformed Basic credentials');
      return this.login(decoded.slice(0, colon), decoded.slice(colon + 1), request);
    }
    if (scheme === 'bearer') return this.identifyToken(value, request);
    throw this.unauthorized(request, undefined, 'unsupported authorization scheme');
  }

  /**
   * Checks a user name and password (or robot name and token): htpasswd file first, then users
   * managed through the admin API. Throttled per user at an address and per address, across all
   * processes; every bcrypt decision is audited.
   */
  async login(username: string, password: string, request: AccessRequest): Promise<Identity> {
    const { throttle } = this.deps;
    const before = await throttle.check(username, request.remote);
    if (before.wait > 0) throw this.throttled(username, request, before.wait);
    let charged = false;
    // A password about to go through bcrypt counts as failed until it succeeds: attempts in
    // flight together, in any process, then cannot get past the limit.
    const charge = async () => {
      const wait = await throttle.charge(username, request.remote);
      if (wait > 0) throw this.throttled(username, request, wait);
      charged = true;
    };
    const identity = username.startsWith(ROBOT_PREFIX)
      ? await this.checkRobot(username.slice(ROBOT_PREFIX.length), password)
      : await this.checkUser(username, password, { beforeHashing: charge });
    if (!identity) {
      // A robot token check is one SHA-256, not worth a charge in advance: counted now.
      if (!charged) await throttle.charge(username, request.remote);
      this.deps.audit.record({ event: 'login', outcome: 'failure', actor: username, remote: request.remote, reason: 'bad credentials' });
      throw this.unauthorized(request, undefined, 'invalid username or password');
    }
    if (charged || before.failed) await throttle.succeeded(username, request.remote, { charged });
    return identity;
  }

  private throttled(username: string, request: AccessRequest, wait: number): RegistryError {
    this.deps.audit.record({ event: 'login', outcome: 'failure', actor: username, remote: request.remote, reason: 'throttled' });
    return new RegistryError('TOOMANYREQUESTS', { message: 'too many failed logins; try again later', headers: { 'Retry-After': String(wait) } });
  }

  /**
   * Allows the request or throws: 401 with a challenge when signing in (or a token with more
   * scope) could help, 403 DENIED when the caller is known and not allowed.
   */
  authorize(identity: Identity, target: AccessTarget, request: AccessRequest): void {
    if (target.kind === 'base') {
      if (identity.kind === 'anonymous' && !identity.token) throw this.unauthorized(request, undefined);
      return;
    }
    if (target.kind === 'catalog') {
      if (identity.token) {
        if (grants(identity.token.access, 'registry', 'catalog', '*')) return;
        throw this.insufficient(identity, request, 'registry:catalog:*', false);
      }
      if (identity.kind === 'anonymous') throw this.unauthorized(request, 'registry:catalog:*');
      return;
    }
    const { name, action } = target;
    const scope = `repository:${name}:${action === 'push' ? 'pull,push' : action}`;
    if (identity.token) {
      if (grants(identity.token.access, 'repository', name, action)) return;
      // A token from our own issuer names one of our accounts: when policy would refuse anyway,
      // say so (403) instead of sending the client for a token that cannot carry the scope.
      const hopeless = identity.token.builtIn && identity.kind !== 'anonymous' && !this.deps.policy.can(identity, name, action);
      this.deny(identity, target, request);
      throw this.insufficient(identity, request, scope, hopeless);
    }
    if (this.deps.policy.can(identity, name, action)) return;
    this.deny(identity, target, request);
    if (identity.kind === 'anonymous') throw this.unauthorized(request, scope);
    throw new RegistryError('DENIED', { detail: { name, action } });
  }

  /**
   * Allows the admin API or throws: registry administrators only, with Basic credentials or a
   * token that carries ADMIN_SCOPE. A token without it gets 401 naming that scope, so a client
   * can fetch one; a caller who is no administrator gets 403, since no token would help.
   */
  authorizeAdmin(identity: Identity, request: AccessRequest): void {
    if (identity.kind === 'anonymous' && !identity.token) {
      throw new RegistryError('UNAUTHORIZED', { headers: { 'WWW-Authenticate': 'Basic realm="wharf admin",charset="UTF-8"' } });
    }
    if (identity.kind !== 'anonymous' && !this.deps.policy.isAdministrator(identity)) {
      throw new RegistryError('DENIED', { message: 'registry administrators only' });
    }
    if (identity.token && !grantsAdmin(identity.token.access)) {
      throw this.unauthorized(request, ADMIN_SCOPE, `the token does not grant ${ADMIN_SCOPE}`, 'insufficient_scope');
    }
  }

  /** Whether the caller may pull a repository (mount sources, catalog filtering). */
  canPull(identity: Identity, repository: string): boolean {
    if (!isValidRepositoryName(repository)) return false;
    if (identity.token) {
      if (identity.kind === 'external' || !identity.token.builtIn) return grants(identity.token.access, 'repository', repository, 'pull');
      return grants(identity.token.access, 'repository', repository, 'pull') || this.deps.policy.can(identity, repository, 'pull');
    }
    return this.deps.policy.can(identity, repository, 'pull');
  }

  /** Whether the catalog should show a repository: an external issuer's catalog grant shows all. */
  catalogFilter(identity: Identity): ((repository: string) => boolean) | undefined {
    if (identity.kind === 'external') return undefined;
    return (repository) => this.deps.policy.can(identity, repository, 'pull');
  }

  /** The WWW-Authenticate value for this registry (optionally naming a scope and an error). */
  challengeFor(request: AccessRequest, scope?: string, error?: string): string {
    const settings = this.deps.challenge;
    if (settings.scheme === 'basic') return `Basic realm=${quote(settings.realm ?? 'Registry Realm')},charset="UTF-8"`;
    let realm = settings.realm;
    const origin = `${request.secure ? 'https' : 'http'}://${request.host ?? 'localhost'}`;
    if (settings.autoRedirect) realm = `${origin}${settings.autoRedirect.path}`;
    else if (realm === undefined) realm = `${origin}${settings.issuerRoute ?? '/auth/token'}`;
    let value = `Bearer realm=${quote(realm)},service=${quote(settings.service)}`;
    if (scope) value += `,scope=${quote(scope)}`;
    if (error) value += `,error=${quote(error)}`;
    return value;
  }

  /** A 401 carrying this registry's challenge. */
  unauthorized(request: AccessRequest, scope?: string, message?: string, error?: string): RegistryError {
    return new RegistryError('UNAUTHORIZED', {
      ...(message ? { message } : {}),
      headers: { 'WWW-Authenticate': this.challengeFor(request, scope, error) },
    });
  }

  /** Resolves a token subject named by our own issuer to the account it names now. */
  async accountFor(subject: string): Promise<Identity | undefined> {
    if (subject === '') return ANONYMOUS;
    if (subject.startsWith(ROBOT_PREFIX)) {
      const robot = await this.deps.accounts.getRobot(subject.slice(ROBOT_PREFIX.length));
      if (!robot || (robot.expiresAt !== undefined && robot.expiresAt <= Date.now())) return undefined;
      return { kind: 'robot', name: robot.name, permissions: robot.permissions, ...(robot.expiresAt !== undefined ? { expiresAt: robot.expiresAt } : {}) };
    }
    if (this.deps.htpasswd?.has(subject)) return { kind: 'user', name: subject, groups: (await this.deps.accounts.getUser(subject))?.groups ?? [] };
    const user = await this.deps.accounts.getUser(subject);
    return user ? { kind: 'user', name: user.name, groups: user.groups } : undefined;
  }

  private async identifyToken(token: string, request: AccessRequest): Promise<Identity> {
    if (!this.deps.verifier || token === '') throw this.unauthorized(request, undefined, 'bearer tokens are not accepted here', 'invalid_token');
    let verified;
    try {
      verified = await this.deps.verifier.verify(token);
    } catch (error) {
      if (!(error instanceof TokenRejected)) throw error;
      this.deps.audit.record({ event: 'token', outcome: 'failure', remote: request.remote, reason: error.reason });
      throw this.unauthorized(request, undefined, `invalid token (${error.reason})`, 'invalid_token');
    }
    const grant: TokenGrant = { access: verified.access, builtIn: verified.builtIn };
    if (!verified.builtIn) return { kind: 'external', name: verified.subject, token: grant };
    // Our own token: the account must still exist (a removed user or revoked robot loses access at once).
    const account = await this.accountFor(verified.subject);
    if (!account) {
      this.deps.audit.record({ event: 'token', outcome: 'failure', actor: verified.subject, remote: request.remote, reason: 'account gone' });
      throw this.unauthorized(request, undefined, 'invalid token (account no longer exists)', 'invalid_token');
    }
    return { ...account, token: grant } as Identity;
  }

  private async checkUser(name: string, password: string, hooks: { beforeHashing: () => Promise<void> }): Promise<Identity | undefined> {
    const fromFile = this.deps.htpasswd?.hashFor(name);
    const stored = fromFile === undefined ? await this.deps.accounts.getUser(name) : undefined;
    const hash = fromFile ?? stored?.passwordHash;
    if (!(await this.checkPassword(name, password, hash, hooks))) return undefined;
    const groups = stored?.groups ?? (fromFile !== undefined ? ((await this.deps.accounts.getUser(name))?.groups ?? []) : []);
    return { kind: 'user', name, groups };
  }

  private async checkRobot(name: string, secret: string): Promise<Identity | undefined> {
    const robot = await this.deps.accounts.getRobot(name);
    // Hash first either way, so an unknown robot costs the same as a wrong token.
    const presented = sha256Hex(secret);
    if (!robot || !constantTimeEqual(presented, robot.tokenHash)) return undefined;
    if (robot.expiresAt !== undefined && robot.expiresAt <= Date.now()) return undefined;
    const identity: Identity = { kind: 'robot', name: robot.name, permissions: robot.permissions };
    if (robot.expiresAt !== undefined) identity.expiresAt = robot.expiresAt;
    return identity;
  }

  /**
   * bcrypt, remembered briefly under an HMAC of the credentials (never the password itself).
   * `beforeHashing` runs only when bcrypt is about to, and may throw to stop it.
   */
  private async checkPassword(name: string, password: string, hash: string | undefined, hooks: { beforeHashing: () => Promise<void> }): Promise<boolean> {
    const key = createHmac('sha256', this.cacheKey).update(name).update('\0').update(password).digest('base64');
    const now = Date.now();
    const hit = this.verified.get(key);
    if (hit && hash !== undefined && hit.expires > now && constantTimeEqual(hit.hash, hash)) return true;
    if (hit) this.verified.delete(key);
    await hooks.beforeHashing();
    if (hash !== undefined && isBcryptHash(hash)) this.costliestSeen = Math.max(this.costliestSeen, bcryptCost(hash));
    const ok = await verifyPassword(password, hash, { failureCost: this.failureCost() });
    if (ok && hash !== undefined) {
      if (this.verified.size >= MAX_VERIFIED) this.verified.clear();
      this.verified.set(key, { hash, expires: now + VERIFIED_TTL_MS });
      this.deps.audit.record({ event: 'login', outcome: 'success', actor: name });
    }
    return ok;
  }

  /**
   * What every failed password check costs: the highest bcrypt cost in use, so that neither an
   * unknown name nor a cheap htpasswd entry answers faster than Wharf's own hashes. Stored users
   * are hashed at BCRYPT_COST; a costlier stored hash raises it once it has been seen.
   */
  private failureCost(): number {
    return Math.max(BCRYPT_COST, this.deps.htpasswd?.maxCost() ?? 0, this.costliestSeen);
  }

  private insufficient(identity: Identity, request: AccessRequest, scope: string, hopeless: boolean): RegistryError {
    if (hopeless) return new RegistryError('DENIED', { detail: { scope } });
    return this.unauthorized(request, scope, 'the token does not grant this access', 'insufficient_scope');
  }

  private deny(identity: Identity, target: AccessTarget & { kind: 'repository' }, request: AccessRequest): void {
    // An anonymous first try is the normal start of the challenge dance, not a decision about anyone.
    if (identity.kind === 'anonymous' && !identity.token) return;
    const actor = actorOf(identity);
    this.deps.audit.record({
      event: 'access',
      outcome: 'deny',
      ...(actor ? { actor } : {}),
      remote: request.remote,
      repository: target.name,
      action: target.action,
    });
  }
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}
