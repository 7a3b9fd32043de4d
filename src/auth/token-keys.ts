import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, type JWK } from 'jose';

/** A public key tokens may be signed with, and the algorithms it may sign with. */
export interface TrustedKey {
  /** Key IDs a token header may name: a JWKS `kid` and the libtrust fingerprint registry:2 uses. */
  ids: string[];
  key: KeyObject;
  algorithms: string[];
  /** Wharf's own issuer key. */
  builtIn: boolean;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

/**
 * The key ID registry:2 and docker/libtrust compute for a public key: SHA-256 of its DER
 * SubjectPublicKeyInfo, first 240 bits, base32, in twelve groups of four joined by colons.
 */
export function libtrustKeyId(key: KeyObject): string {
  const der = key.export({ type: 'spki', format: 'der' });
  const encoded = base32(createHash('sha256').update(der).digest().subarray(0, 30));
  return encoded.match(/.{4}/g)!.join(':');
}

/** Asymmetric algorithms a key of this type can verify; symmetric ones never. */
export function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (curve === 'prime256v1' || curve === 'P-256') return ['ES256'];
      if (curve === 'secp384r1' || curve === 'P-384') return ['ES384'];
      if (curve === 'secp521r1' || curve === 'P-521') return ['ES512'];
      return [];
    }
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'ed25519':
      return ['EdDSA'];
    default:
      return [];
  }
}

/** Public keys of every certificate in a PEM bundle (registry:2's auth.token.rootcertbundle). */
export function keysFromCertificateBundle(pem: string): TrustedKey[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error('no PEM certificate found');
  return blocks.map((block) => {
    const key = new X509Certificate(block).publicKey;
    return { ids: [libtrustKeyId(key)], key, algorithms: algorithmsFor(key), builtIn: false };
  });
}

/** Public keys of a JSON Web Key Set file (registry:2's auth.token.jwks); private parts are dropped. */
export function keysFromJwks(text: string): TrustedKey[] {
  const set = JSON.parse(text) as { keys?: JWK[] };
  if (!Array.isArray(set.keys) || set.keys.length === 0) throw new Error('not a JSON Web Key Set (no "keys")');
  const out: TrustedKey[] = [];
  for (const jwk of set.keys) {
    if (jwk.kty === 'oct') continue; // shared secrets are never accepted
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicPart } = jwk;
    const key = createPublicKey({ key: publicPart as import('node:crypto').JsonWebKey, format: 'jwk' });
    const ids = [libtrustKeyId(key)];
    if (typeof jwk.kid === 'string') ids.unshift(jwk.kid);
    const algorithms = algorithmsFor(key).filter((a) => jwk.alg === undefined || a === jwk.alg);
    out.push({ ids, key, algorithms, builtIn: false });
  }
  return out;
}

/** The built-in issuer's signing key, with the files an external registry needs to trust it. */
export interface SigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  kid: string;
  algorithm: 'ES256' | 'RS256';
}

/**
 * Loads the issuer's signing key from `directory`, generating it at first start. The private
 * key file is created exclusively with mode 0600, so several workers starting together agree on
 * one key. `token-jwks.json` beside it holds the public key for other registries' auth.token.jwks.
 */
export async function loadSigningKey(directory: string, algorithm: 'ES256' | 'RS256'): Promise<SigningKey> {
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  const path = join(directory, `token-signing-key-${algorithm.toLowerCase()}.pem`);
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    const pair =
      algorithm === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 3072 });
    pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    try {
      writeFileSync(path, pem, { flag: 'wx', mode: 0o600 });
    } catch (writeError) {
      if ((writeError as NodeJS.ErrnoException).code !== 'EEXIST') throw writeError;
      pem = readFileSync(path, 'utf8');
    }
  }
  const privateKey = createPrivateKey(pem);
  const publicKey = createPublicKey(privateKey);
  const kid = libtrustKeyId(publicKey);
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: algorithm, use: 'sig' };
  writeFileSync(join(directory, 'token-jwks.json'), `${JSON.stringify({ keys: [jwk] }, null, 2)}\n`);
  return { privateKey, publicKey, kid, algorithm };
}
