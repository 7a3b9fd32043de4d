import { createHash, type Hash } from 'node:crypto';

/** Digest algorithms a registry must accept (OCI image-spec descriptor.md). */
export type DigestAlgorithm = 'sha256' | 'sha512';

const ENCODED_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const GRAMMAR = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  /** Lower-case hex, of the length the algorithm produces. */
  hex: string;
}

/**
 * Parses `algorithm:encoded`. Returns undefined when the string breaks the grammar,
 * names an algorithm other than sha256/sha512, or carries an encoding of the wrong length or case.
 */
export function parseDigest(value: string): ParsedDigest | undefined {
  if (value.length > 7 + 1 + 128 || !GRAMMAR.test(value)) return undefined;
  const colon = value.indexOf(':');
  const algorithm = value.slice(0, colon);
  const hex = value.slice(colon + 1);
  if (algorithm !== 'sha256' && algorithm !== 'sha512') return undefined;
  if (hex.length !== ENCODED_LENGTH[algorithm] || !/^[a-f0-9]+$/.test(hex)) return undefined;
  return { algorithm, hex };
}

declare const validDigest: unique symbol;

/**
 * A digest that has been parsed and found valid (sha256 or sha512, lower-case hex of the right
 * length). At run time it is the same string; the type records that it was checked, so a value is
 * parsed once where it enters (an HTTP request) and trusted everywhere after.
 */
export type Digest = string & { readonly [validDigest]: true };

/** The string as a Digest, or undefined when it is not a valid one. */
export function asDigest(value: string): Digest | undefined {
  return parseDigest(value) ? (value as Digest) : undefined;
}

/**
 * For digests the registry checked when it first saw them and reads back now (from metadata or
 * from a content-addressed file name): no second check.
 */
export function storedDigest(value: string): Digest {
  return value as Digest;
}

/** The algorithm and hex of a valid digest, without checking it again. */
export function digestParts(digest: Digest): ParsedDigest {
  const colon = digest.indexOf(':');
  return { algorithm: digest.slice(0, colon) as DigestAlgorithm, hex: digest.slice(colon + 1) };
}

/** True when the string has the general digest grammar, whatever its algorithm. */
export function looksLikeDigest(value: string): boolean {
  return GRAMMAR.test(value) && value.includes(':');
}

export function isDigest(value: string): boolean {
  return parseDigest(value) !== undefined;
}

export function createDigester(algorithm: DigestAlgorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

export function digestOf(data: Buffer | Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

/** The digest of zero bytes, which registries must serve without an upload. */
export const EMPTY_SHA256 = 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
