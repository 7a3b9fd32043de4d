import type { Logger } from 'pino';
import type { AuthConfig } from '../config/config.js';
import type { AccountStore } from '../metadata/account-store.js';
import { AccessControl } from './access-control.js';
import { AccountAdmin } from './account-admin.js';
import type { AuditSink } from './audit-log.js';
import { HtpasswdFile } from './htpasswd.js';
import { Policy } from './policy.js';
import { LoginThrottle } from './throttle.js';
import { TokenIssuer } from './token-issuer.js';
import { loadSigningKey } from './token-keys.js';
import { TokenService } from './token-service.js';
import { TokenVerifier } from './token-verifier.js';

/** Above this bcrypt cost a refused sign-in takes a noticeable share of a second (see verifyPassword). */
const SLOW_BCRYPT_COST = 12;

/** Everything the HTTP layer needs to guard the registry, built from auth configuration. */
export interface Auth {
  access: AccessControl;
  admin: AccountAdmin;
  /** The built-in token server, when enabled, and the path it answers on. */
  tokens?: { service: TokenService; route: string };
  /** Re-reads files that may change (htpasswd); verification keys need a restart. */
  reload(): void;
}

/**
 * Builds access control: the htpasswd file, the policy, the verifier for bearer tokens (from
 * rootcertbundle, jwks and the built-in issuer's key) and the issuer itself. Throws on invalid
 * policy or unreadable key material, so a misconfigured registry does not start open.
 */
export async function createAuth(config: AuthConfig, deps: { accounts: AccountStore; audit: AuditSink; log: Logger; announce?: boolean }): Promise<Auth> {
  const { accounts, audit, log } = deps;
  // Every serving process reads the file; only the first says so at info (one line, not one per worker).
  const announce = deps.announce ?? true;
  const htpasswd = config.htpasswd
    ? new HtpasswdFile(config.htpasswd.path, (info) => {
        if (info.error) log.warn({ path: config.htpasswd!.path, error: info.error }, 'htpasswd file unreadable: no htpasswd users');
        else log[announce ? 'info' : 'debug']({ path: config.htpasswd!.path, users: info.users }, 'htpasswd file loaded');
        if (info.ignored.length > 0) log.warn({ users: info.ignored }, 'htpasswd entries that are not bcrypt are ignored');
        if (info.maxCost > SLOW_BCRYPT_COST) {
          log.warn({ cost: info.maxCost }, 'htpasswd has costly bcrypt hashes: every refused sign-in costs as much, so that timing does not tell who exists');
        }
      })
    : undefined;
  const policy = await Policy.create(config.policy, accounts);
  const token = config.token;
  const signingKey = config.issuer ? await loadSigningKey(config.stateDirectory, config.issuer.algorithm) : undefined;
  const verifier = token
    ? new TokenVerifier({
        issuer: token.issuer,
        service: token.service,
        signingAlgorithms: token.signingAlgorithms,
        ...(token.rootCertBundle ? { rootCertBundle: token.rootCertBundle } : {}),
        ...(token.jwks ? { jwks: token.jwks } : {}),
        ...(signingKey ? { builtIn: { kid: signingKey.kid, publicKey: signingKey.publicKey, algorithm: signingKey.algorithm } } : {}),
      })
    : undefined;
  const access = new AccessControl({
    policy,
    accounts,
    throttle: new LoginThrottle(accounts, config.throttle),
    audit,
    ...(htpasswd ? { htpasswd } : {}),
    ...(verifier ? { verifier } : {}),
    challenge: token
      ? {
          scheme: 'bearer',
          realm: token.realm,
          service: token.service,
          ...(config.issuer ? { issuerRoute: config.issuer.route } : {}),
          ...(token.autoRedirect ? { autoRedirect: { path: token.autoRedirectPath } } : {}),
        }
      : { scheme: 'basic', realm: config.htpasswd?.realm, service: 'wharf' },
  });
  const admin = new AccountAdmin({ accounts, policy, audit, ...(htpasswd ? { htpasswd } : {}) });
  let tokens: Auth['tokens'];
  if (signingKey && config.issuer && token) {
    const issuer = new TokenIssuer(signingKey, { issuer: token.issuer, service: token.service, expirationMs: config.issuer.expirationMs });
    tokens = {
      route: config.issuer.route,
      service: new TokenService({ access, issuer, accounts, audit, service: token.service, refreshExpirationMs: config.issuer.refreshExpirationMs }),
    };
  }
  return {
    access,
    admin,
    ...(tokens ? { tokens } : {}),
    reload() {
      htpasswd?.refresh(true);
    },
  };
}
