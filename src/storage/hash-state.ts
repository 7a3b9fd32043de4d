import { createSHA256, type IHasher } from 'hash-wasm';

let hasher: Promise<IHasher> | undefined;

/**
 * The hex sha256 that a saved running hash (from HashThread.save) finishes with; undefined when
 * the state cannot be read (another hash-wasm version wrote it, or it is damaged), so the caller
 * hashes the bytes again instead.
 */
export async function finishSavedSha256(state: Uint8Array): Promise<string | undefined> {
  const instance = await (hasher ??= createSHA256());
  try {
    instance.load(state);
  } catch {
    return undefined;
  }
  return instance.digest('hex');
}
