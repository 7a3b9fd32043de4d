import { createHash } from 'node:crypto';
import type { SignatureLayer } from './signature-manifest.js';
import type { PayloadVerifier } from './signers.js';
import { readPayload, repositoryPath } from './simple-signing-payload.js';

/** A signature found for an image: its layer, and the payload bytes fetched for it (undefined when missing). */
export interface SignatureCandidate {
  layer: SignatureLayer;
  payload: Buffer | undefined;
  /** Where it was found, for messages: the `.sig` tag or a referrer's digest. */
  source: string;
}

/** What the signatures must say about the image. */
export interface SignatureExpectation {
  /** The manifest digest the payload must name. */
  digest: string;
  /** The repository path (no registry host) the payload's docker-reference must name. */
  repository: string;
  /** Annotations a verified signature must carry (in the payload's `optional`), all of them. */
  annotations?: Record<string, string>;
}

export interface VerifiedSignature {
  /** Which verifier (key id) accepted it. */
  identity: string;
  source: string;
  payload: Buffer;
  dockerReference: string;
  annotations: Record<string, unknown>;
}

export interface VerificationResult {
  verified: VerifiedSignature[];
  /** Why each other signature was not accepted (empty when there were none). */
  rejected: string[];
}

/** Checks every candidate against the verifiers and the expectation; pure and synchronous. */
export function verifySignatures(candidates: readonly SignatureCandidate[], verifiers: readonly PayloadVerifier[], expected: SignatureExpectation): VerificationResult {
  const verified: VerifiedSignature[] = [];
  const rejected: string[] = [];
  const ids = verifiers.map((v) => v.identity).join(', ');
  for (const { layer, payload, source } of candidates) {
    const where = `signature in ${source}`;
    if (payload === undefined) {
      rejected.push(`${where}: its payload ${layer.payloadDigest} is missing from the registry`);
      continue;
    }
    const actual = `sha256:${createHash('sha256').update(payload).digest('hex')}`;
    if (layer.payloadDigest.startsWith('sha256:') && actual !== layer.payloadDigest) {
      rejected.push(`${where}: the payload does not match its digest ${layer.payloadDigest} (tampered payload)`);
      continue;
    }
    const verifier = verifiers.find((v) => v.verify(payload, layer.signature, layer.annotations));
    if (!verifier) {
      rejected.push(`${where}: the signature does not verify with key ${ids} (signed with another key, or the payload was tampered with after signing)`);
      continue;
    }
    let claims;
    try {
      claims = readPayload(payload);
    } catch (error) {
      rejected.push(`${where}: ${(error as Error).message}`);
      continue;
    }
    if (claims.digest !== expected.digest) {
      rejected.push(`${where}: the signed payload is for another digest (${claims.digest}, not ${expected.digest})`);
      continue;
    }
    const signedRepository = repositoryPath(claims.dockerReference);
    if (signedRepository !== expected.repository.replace(/^library\//, '')) {
      rejected.push(`${where}: the signed payload is for another repository (${claims.dockerReference}, not ${expected.repository})`);
      continue;
    }
    const missing = Object.entries(expected.annotations ?? {}).filter(([k, v]) => String(claims.annotations[k]) !== v);
    if (missing.length > 0) {
      rejected.push(`${where}: the signed payload lacks the annotation${missing.length > 1 ? 's' : ''} ${missing.map(([k, v]) => `${k}=${v}`).join(', ')}`);
      continue;
    }
    verified.push({ identity: verifier.identity, source, payload, dockerReference: claims.dockerReference, annotations: claims.annotations });
  }
  return { verified, rejected };
}
