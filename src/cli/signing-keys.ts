import { readFileSync } from 'node:fs';
import { KeySigner, KeyVerifier, readPrivateKey, readPublicKey, type PayloadSigner, type PayloadVerifier } from '../signing/index.js';
import { prompt } from './commands/login.js';

/**
 * The private key's password as cosign finds it: COSIGN_PASSWORD when set (even empty), else a
 * prompt on the terminal; with `confirm`, asked twice and compared (a new key's password).
 */
export async function keyPassword(options: { confirm: boolean }): Promise<string> {
  const fromEnv = process.env.COSIGN_PASSWORD;
  if (fromEnv !== undefined) return fromEnv;
  if (!process.stdin.isTTY) throw new Error('the private key needs a password: set COSIGN_PASSWORD, or run on a terminal to be asked for it');
  const first = await prompt('Enter password for private key: ', true);
  if (!options.confirm) return first;
  const again = await prompt('Enter password for private key again: ', true);
  if (first !== again) throw new Error('passwords do not match');
  return first;
}

/** A signer from a key file (cosign.key, or PEM PKCS#8 / SEC 1); the password is asked only for an encrypted key. */
export async function signerFromFile(path: string): Promise<PayloadSigner> {
  const key = await readPrivateKey(readKeyFile(path), () => keyPassword({ confirm: false })).catch((error: Error) => {
    throw new Error(`${path}: ${error.message}`);
  });
  return new KeySigner(key);
}

/** Verifiers from public key files (cosign.pub: PEM SubjectPublicKeyInfo). */
export function verifiersFromFiles(paths: readonly string[]): PayloadVerifier[] {
  return paths.map((path) => {
    try {
      return new KeyVerifier(readPublicKey(readKeyFile(path)));
    } catch (error) {
      throw new Error(`${path}: ${(error as Error).message}`);
    }
  });
}

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read key file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** `-a key=value` pairs (repeatable) as a record; throws on a pair without `=`. */
export function parseAnnotations(pairs: readonly string[] | undefined, flag: string): Record<string, string> {
  const annotations: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`${flag} ${pair}: expected key=value`);
    annotations[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return annotations;
}

export const collect = (value: string, all: string[] = []): string[] => [...all, value];
