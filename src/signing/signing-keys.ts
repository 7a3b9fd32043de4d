import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, scrypt, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';

/**
 * Signing keys in the formats cosign reads and writes: the public key as PEM SubjectPublicKeyInfo,
 * the private key as PKCS#8 DER sealed with a password (scrypt for the key, NaCl secretbox for
 * the bytes, the parameters as JSON, the JSON in a PEM block), or as plain PEM (PKCS#8, SEC 1).
 */

/** The PEM label cosign writes today, and the one its older versions wrote. */
export const SIGSTORE_KEY_LABEL = 'ENCRYPTED SIGSTORE PRIVATE KEY';
export const COSIGN_KEY_LABEL = 'ENCRYPTED COSIGN PRIVATE KEY';

/** scrypt cost cosign uses when it writes a key; reading also takes the two others of its family. */
const WRITE_SCRYPT = { N: 65536, r: 8, p: 1 } as const;
const READABLE_SCRYPT_N = new Set([32768, 65536, 131072]);
const SALT_BYTES = 32;
const KEY_BYTES = 32;

/** A key file that cannot be used, with the reason said plainly (wrong password, unknown format). */
export class KeyFormatError extends Error {}

/** The sealed private key's JSON, field for field as cosign writes it. */
interface SealedKey {
  kdf: { name: 'scrypt'; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: 'nacl/secretbox'; nonce: string };
  ciphertext: string;
}

export interface PemBlock {
  label: string;
  der: Buffer;
}

/** The first PEM block of `text`; undefined when there is none. */
export function readPem(text: string): PemBlock | undefined {
  const match = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (!match) return undefined;
  return { label: match[1]!, der: Buffer.from(match[2]!.replace(/\s+/g, ''), 'base64') };
}

export function writePem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

function deriveKey(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    // Node's default memory cap (32 MiB) is below what N=65536, r=8 needs (64 MiB).
    scrypt(Buffer.from(password, 'utf8'), salt, KEY_BYTES, { ...params, maxmem: 512 * 1024 * 1024 }, (error, key) => (error ? reject(error) : resolve(key))),
  );
}

/** Seals `plaintext` under `password` as cosign's encrypted-key JSON (bytes of the PEM body). */
export async function sealWithPassword(plaintext: Buffer, password: string): Promise<Buffer> {
  const salt = randomBytes(SALT_BYTES);
  const nonce = randomBytes(nacl.secretbox.nonceLength);
  const key = await deriveKey(password, salt, WRITE_SCRYPT);
  const ciphertext = nacl.secretbox(plaintext, nonce, key);
  const sealed: SealedKey = {
    kdf: { name: 'scrypt', params: { ...WRITE_SCRYPT }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ciphertext).toString('base64'),
  };
  return Buffer.from(JSON.stringify(sealed), 'utf8');
}

/** Opens cosign's encrypted-key JSON; throws KeyFormatError for a wrong password or unknown parameters. */
export async function openWithPassword(sealedJson: Buffer, password: string): Promise<Buffer> {
  let sealed: SealedKey;
  try {
    sealed = JSON.parse(sealedJson.toString('utf8')) as SealedKey;
  } catch {
    throw new KeyFormatError('the encrypted key is not the JSON cosign writes');
  }
  const params = sealed?.kdf?.params;
  if (sealed?.kdf?.name !== 'scrypt' || sealed.cipher?.name !== 'nacl/secretbox' || !params) {
    throw new KeyFormatError(`unsupported key encryption (kdf ${String(sealed?.kdf?.name)}, cipher ${String(sealed?.cipher?.name)}); expected scrypt and nacl/secretbox`);
  }
  if (!READABLE_SCRYPT_N.has(params.N) || params.r !== 8 || params.p !== 1) {
    throw new KeyFormatError(`unsupported scrypt parameters N=${params.N} r=${params.r} p=${params.p}`);
  }
  const salt = Buffer.from(sealed.kdf.salt, 'base64');
  const nonce = Buffer.from(sealed.cipher.nonce, 'base64');
  if (nonce.length !== nacl.secretbox.nonceLength) throw new KeyFormatError('the encrypted key has a nonce of the wrong length');
  const key = await deriveKey(password, salt, params);
  const opened = nacl.secretbox.open(Buffer.from(sealed.ciphertext, 'base64'), nonce, key);
  if (!opened) throw new KeyFormatError('wrong password for the private key (or the key file is damaged)');
  return Buffer.from(opened);
}

/**
 * A private key from a key file's text: cosign's encrypted format (the password is asked for only
 * then, through `password()`), or unencrypted PKCS#8 / SEC 1 PEM.
 */
export async function readPrivateKey(text: string, password: () => Promise<string>): Promise<KeyObject> {
  const pem = readPem(text);
  if (!pem) throw new KeyFormatError('not a PEM key file');
  let der: Buffer;
  let type: 'pkcs8' | 'sec1';
  switch (pem.label) {
    case SIGSTORE_KEY_LABEL:
    case COSIGN_KEY_LABEL:
      der = await openWithPassword(pem.der, await password());
      type = 'pkcs8';
      break;
    case 'PRIVATE KEY':
      der = pem.der;
      type = 'pkcs8';
      break;
    case 'EC PRIVATE KEY':
      der = pem.der;
      type = 'sec1';
      break;
    case 'ENCRYPTED PRIVATE KEY':
      throw new KeyFormatError('PKCS#8 keys encrypted with PBES2 are not read; use cosign\'s format (wharf generate-key-pair) or an unencrypted PKCS#8 key');
    default:
      throw new KeyFormatError(`"${pem.label}" is not a private key label this reads (${SIGSTORE_KEY_LABEL}, ${COSIGN_KEY_LABEL}, PRIVATE KEY, EC PRIVATE KEY)`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: der, format: 'der', type });
  } catch (error) {
    throw new KeyFormatError(`the private key cannot be parsed: ${(error as Error).message}`);
  }
  checkSupported(key);
  return key;
}

/** A public key from PEM SubjectPublicKeyInfo (cosign.pub), or the public half of a certificate. */
export function readPublicKey(text: string): KeyObject {
  const pem = readPem(text);
  if (!pem) throw new KeyFormatError('not a PEM public key');
  let key: KeyObject;
  try {
    if (pem.label === 'PUBLIC KEY') key = createPublicKey({ key: pem.der, format: 'der', type: 'spki' });
    else if (pem.label === 'CERTIFICATE') key = createPublicKey(text);
    else throw new KeyFormatError(`"${pem.label}" is not a public key (expected PUBLIC KEY)`);
  } catch (error) {
    if (error instanceof KeyFormatError) throw error;
    throw new KeyFormatError(`the public key cannot be parsed: ${(error as Error).message}`);
  }
  checkSupported(key);
  return key;
}

/** ECDSA on P-256, P-384 or P-521, RSA of 2048 bits or more, or Ed25519, as cosign accepts. */
function checkSupported(key: KeyObject): void {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'ec' && ['prime256v1', 'secp384r1', 'secp521r1'].includes(details.namedCurve ?? '')) return;
  if (type === 'rsa' && (details.modulusLength ?? 0) >= 2048) return;
  if (type === 'ed25519') return;
  throw new KeyFormatError(`unsupported key type ${type}${details.namedCurve ? ` (${details.namedCurve})` : ''}; use ECDSA P-256 (wharf generate-key-pair)`);
}

/** The hash that goes with a key: the curve's own size for ECDSA, SHA-256 otherwise (none for Ed25519). */
export function hashFor(key: KeyObject): 'sha256' | 'sha384' | 'sha512' | null {
  if (key.asymmetricKeyType === 'ed25519') return null;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : 'sha256';
}

/**
 * A short name for a public key: the first 16 hex digits of SHA-256 over its DER
 * SubjectPublicKeyInfo (the same key always has the same id, whatever file it came from).
 */
export function keyIdOf(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(publicKey.export({ format: 'der', type: 'spki' })).digest('hex').slice(0, 16);
}

export function publicKeyPem(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return publicKey.export({ format: 'pem', type: 'spki' }).toString();
}

export interface GeneratedKeyPair {
  /** cosign.key: PKCS#8 sealed with the password, under cosign's current PEM label. */
  privateKeyPem: string;
  /** cosign.pub: PEM SubjectPublicKeyInfo. */
  publicKeyPem: string;
  keyId: string;
}

/** A new ECDSA P-256 key pair in cosign's formats. */
export async function generateKeyPair(password: string): Promise<GeneratedKeyPair> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  const sealed = await sealWithPassword(pkcs8, password);
  return { privateKeyPem: writePem(SIGSTORE_KEY_LABEL, sealed), publicKeyPem: publicKeyPem(publicKey), keyId: keyIdOf(publicKey) };
}
