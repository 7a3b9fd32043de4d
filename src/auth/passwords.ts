import bcrypt from 'bcryptjs';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Cost for hashes Wharf writes (`wharf user add`); htpasswd -B writes 5, registry:2 accepts any. */
export const BCRYPT_COST = 10;

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** A well-formed bcrypt hash, of a cost bcrypt accepts (4 to 31). */
export function isBcryptHash(hash: string): boolean {
  if (!/^\$2[abxy]\$\d{2}\$[./A-Za-z0-9]{53}$/.test(hash)) return false;
  const cost = bcryptCost(hash);
  return cost >= 4 && cost <= 31;
}

/** The cost factor of a bcrypt hash (`$2y$05$…` is 5); the work doubles with each step. */
export function bcryptCost(hash: string): number {
  return Number(hash.slice(4, 6));
}

/**
 * A hash of `cost` that no password matches: random salt and digest. Checking against it costs
 * exactly what checking a real hash of that cost does, and making one costs nothing.
 */
function decoyHash(cost: number): string {
  let tail = '';
  for (const byte of randomBytes(53)) tail += BCRYPT_ALPHABET[byte & 63];
  return `$2b$${String(cost).padStart(2, '0')}$${tail}`;
}

/**
 * Checks a password against a bcrypt hash. Every failure costs as much as a hash of
 * `failureCost` (the highest cost in use), so the time does not tell whether the user exists or
 * how their hash was made: with no hash it checks a decoy of that cost; after a mismatch against a
 * cheaper hash of cost c it checks decoys of costs c, c+1 … failureCost-1, and
 * 2^c + (2^c + … + 2^(failureCost-1)) = 2^failureCost. A success returns at once.
 */
export async function verifyPassword(password: string, hash: string | undefined, options: { failureCost: number }): Promise<boolean> {
  if (hash === undefined || !isBcryptHash(hash)) {
    await bcrypt.compare(password, decoyHash(options.failureCost));
    return false;
  }
  if (await bcrypt.compare(password, hash)) return true;
  for (let cost = bcryptCost(hash); cost < options.failureCost; cost += 1) await bcrypt.compare(password, decoyHash(cost));
  return false;
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
