import { RegistryError } from '../errors/index.js';
import { asDigest, type Digest } from '../oci/digest.js';
import { isValidRepositoryName, isValidTag } from '../oci/names.js';

export function checkRepositoryName(name: string): void {
  if (!isValidRepositoryName(name)) throw new RegistryError('NAME_INVALID', { detail: { name } });
}

/** Parses a digest where it enters the registry; throws DIGEST_INVALID. */
export function requireDigest(digest: string): Digest {
  const valid = asDigest(digest);
  if (!valid) throw new RegistryError('DIGEST_INVALID', { message: 'invalid or unsupported digest', detail: { digest } });
  return valid;
}

/** A manifest named by digest or by tag. */
export type ManifestReference = { digest: Digest } | { tag: string };

export function checkTag(tag: string): void {
  if (!isValidTag(tag)) throw new RegistryError('TAG_INVALID', { message: 'invalid tag', detail: { tag } });
}

/**
 * A manifest reference is a digest when it has a colon (tags cannot), else a tag. A malformed
 * digest is DIGEST_INVALID. A malformed tag is TAG_INVALID when writing; when reading it names
 * nothing that could exist, so it is MANIFEST_UNKNOWN (404), as clients and the conformance suite expect.
 */
export function classifyReference(reference: string, use: 'read' | 'write'): ManifestReference {
  if (reference.includes(':')) return { digest: requireDigest(reference) };
  if (use === 'read' && !isValidTag(reference)) {
    throw new RegistryError('MANIFEST_UNKNOWN', { message: 'no such tag (not a valid tag name)', detail: { tag: reference } });
  }
  checkTag(reference);
  return { tag: reference };
}
