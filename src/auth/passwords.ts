import bcrypt from 'bcryptjs';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Cost for hashes Wharf writes (`wharf user add`); htpasswd -B writes 5, registry:2 accepts any. */
const BCRYPT_COST = 10;

/** A bcrypt hash to compare against when the user does not exist, so timing does not tell. */
const DECOY_HASH = bcrypt.hashSync(randomBytes(16).toString('hex'), 5);

export function isBcryptHash(hash: string): boolean {
  return /^\$2[abxy]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(hash);
}

/** Checks a password against a bcrypt hash; with no hash, burns the same time and fails. */
export async function verifyPassword(password: string, hash: string | undefined): Promise<boolean> {
  if (hash === undefined || !isBcryptHash(hash)) {
    await bcrypt.compare(password, DECOY_HASH);
    return false;
  }
  return bcrypt.compare(password, hash);
}

export function hashPassword(password: string): Promise<string> {
  return bcrypt.hash(password, BCRYPT_COST);
}

/** SHA-256 in hex: for long random secrets (robot and refresh tokens), which need no slow hash. */
export function sha256Hex(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Compares two strings in time that depends only on their lengths. */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  if (x.length !== y.length) {
    timingSafeEqual(x, x);
    return false;
  }
  return timingSafeEqual(x, y);
}

/** A fresh random secret with a recognisable prefix (so leaked ones can be found by scanners). */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}
