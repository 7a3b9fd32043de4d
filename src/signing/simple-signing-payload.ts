/**
 * The payload a cosign signature signs: containers' "simple signing" JSON, naming the image by
 * repository and manifest digest (SIGNATURE_SPEC.md, Payloads). The signature covers the exact
 * bytes stored in the registry, so a payload is parsed only after its signature checks out.
 */

export const COSIGN_SIGNATURE_TYPE = 'cosign container image signature';

export interface SimpleSigningPayload {
  critical: {
    identity: { 'docker-reference': string };
    image: { 'docker-manifest-digest': string };
    type: string;
  };
  optional: Record<string, unknown> | null;
}

/** The payload bytes for `dockerReference` (registry/repository, no tag) at `digest`. */
export function createPayload(dockerReference: string, digest: string, annotations: Record<string, string> = {}): Buffer {
  const payload: SimpleSigningPayload = {
    critical: {
      identity: { 'docker-reference': dockerReference },
      image: { 'docker-manifest-digest': digest },
      type: COSIGN_SIGNATURE_TYPE,
    },
    // cosign writes null when there is nothing optional.
    optional: Object.keys(annotations).length > 0 ? { ...annotations } : null,
  };
  return Buffer.from(JSON.stringify(payload), 'utf8');
}

/** What a payload claims; throws Error naming what is missing when it is not a cosign payload. */
export interface PayloadClaims {
  dockerReference: string;
  digest: string;
  annotations: Record<string, unknown>;
}

export function readPayload(bytes: Buffer): PayloadClaims {
  let doc: SimpleSigningPayload;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as SimpleSigningPayload;
  } catch {
    throw new Error('the signed payload is not JSON');
  }
  const critical = doc?.critical;
  // containers/image spells it Docker-manifest-digest in places; both are read.
  const image = critical?.image as Record<string, unknown> | undefined;
  const digest = image?.['docker-manifest-digest'] ?? image?.['Docker-manifest-digest'];
  const reference = critical?.identity?.['docker-reference'];
  if (typeof digest !== 'string' || typeof reference !== 'string') throw new Error('the signed payload has no critical.image.docker-manifest-digest or critical.identity.docker-reference');
  if (critical.type !== COSIGN_SIGNATURE_TYPE) throw new Error(`the signed payload's critical.type is "${String(critical.type)}", not "${COSIGN_SIGNATURE_TYPE}"`);
  const optional = doc.optional && typeof doc.optional === 'object' ? doc.optional : {};
  return { dockerReference: reference, digest, annotations: optional };
}

/**
 * The repository path of a docker reference, without registry host, tag or digest:
 * `localhost:5000/prod/app:1` → `prod/app`. Signatures name the registry they were made on, and
 * an image copied to a mirror keeps them, so comparisons use the path.
 */
export function repositoryPath(dockerReference: string): string {
  let rest = dockerReference.split('@')[0]!;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost') rest = rest.slice(slash + 1);
  }
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) rest = rest.slice(0, colon);
  // Docker Hub's official images are library/NAME.
  return rest.startsWith('library/') ? rest.slice('library/'.length) : rest;
}
