import { readFileSync } from 'node:fs';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { KeyObject } from 'node:crypto';
import type { AccessEntry } from './access.js';
import { keysFromCertificateBundle, keysFromJwks, type TrustedKey } from './token-keys.js';

/** Clock skew tolerated on exp and nbf, as registry:2's leeway. */
const CLOCK_TOLERANCE_S = 30;

export interface VerifiedToken {
  subject: string;
  access: AccessEntry[];
  /** Signed by Wharf's own issuer key. */
  builtIn: boolean;
}

/** Why a token was refused; a short word for the audit log, never the token. */
export class TokenRejected extends Error {
  constructor(readonly reason: string) {
    super(`token rejected: ${reason}`);
    this.name = 'TokenRejected';
  }
}

export interface VerifierOptions {
  issuer: string;
  /** The registry's service name: the token's audience must include it. */
  service: string;
  rootCertBundle?: string;
  jwks?: string;
  /** The built-in issuer's public key and kid. */
  builtIn?: { kid: string; publicKey: KeyObject; algorithm: string };
  /** registry:2 3.x's auth.token.signingalgorithms: when set, only these are accepted. */
  signingAlgorithms?: string[];
}

/**
 * Verifies bearer tokens as the Docker token spec describes: signature by a configured key
 * (chosen by `kid` only: `jwk`, `x5c` and `jku` headers are never used to find or trust a key),
 * an asymmetric algorithm that fits that key (never `none` or HS*), issuer, audience, expiry
 * and not-before. The `access` claim is returned for per-request checks.
 */
export class TokenVerifier {
  private readonly keys: TrustedKey[];

  constructor(private readonly options: VerifierOptions) {
    const keys: TrustedKey[] = [];
    if (options.builtIn) keys.push({ ids: [options.builtIn.kid], key: options.builtIn.publicKey, algorithms: [options.builtIn.algorithm], builtIn: true });
    if (options.rootCertBundle) keys.push(...keysFromCertificateBundle(readFileSync(options.rootCertBundle, 'utf8')));
    if (options.jwks) keys.push(...keysFromJwks(readFileSync(options.jwks, 'utf8')));
    const allowed = options.signingAlgorithms?.length ? new Set(options.signingAlgorithms.map((a) => a.toUpperCase())) : undefined;
    this.keys = keys.map((k) => ({ ...k, algorithms: allowed ? k.algorithms.filter((a) => allowed.has(a.toUpperCase())) : k.algorithms }));
    if (this.keys.length === 0) throw new Error('no token verification keys configured');
  }

  async verify(token: string): Promise<VerifiedToken> {
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new TokenRejected('malformed');
    }
    const alg = typeof header.alg === 'string' ? header.alg : '';
    if (alg === '' || alg.toLowerCase() === 'none' || alg.toUpperCase().startsWith('HS')) throw new TokenRejected('algorithm');
    const candidates = typeof header.kid === 'string' ? this.keys.filter((k) => k.ids.includes(header.kid as string)) : this.keys;
    if (candidates.length === 0) throw new TokenRejected('unknown key');
    let last: TokenRejected = new TokenRejected('signature');
    for (const candidate of candidates) {
      if (!candidate.algorithms.includes(alg)) {
        last = new TokenRejected('algorithm');
        continue;
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, candidate.key, {
          algorithms: [alg],
          issuer: this.options.issuer,
          audience: this.options.service,
          clockTolerance: CLOCK_TOLERANCE_S,
          requiredClaims: ['exp'],
        }));
      } catch (error) {
        last = new TokenRejected(reasonOf(error));
        if (last.reason !== 'signature') throw last; // the signature held: the claims are what failed
        continue;
      }
      return { subject: typeof payload.sub === 'string' ? payload.sub : '', access: accessOf(payload.access), builtIn: candidate.builtIn };
    }
    throw last;
  }
}

function reasonOf(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return error.claim === 'nbf' ? 'not yet valid' : `claim ${error.claim}`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm';
  return 'malformed';
}

/** The `access` claim, keeping only well-formed entries. */
function accessOf(claim: unknown): AccessEntry[] {
  if (!Array.isArray(claim)) return [];
  const out: AccessEntry[] = [];
  for (const entry of claim) {
    if (entry === null || typeof entry !== 'object') continue;
    const { type, name, actions } = entry as Record<string, unknown>;
    if (typeof type !== 'string' || typeof name !== 'string' || !Array.isArray(actions)) continue;
    out.push({ type, name, actions: actions.filter((a): a is string => typeof a === 'string') });
  }
  return out;
}
