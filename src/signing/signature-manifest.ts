import { createHash } from 'node:crypto';
import type { Descriptor } from '../oci/manifest.js';

/**
 * Where and how cosign stores signatures (SIGNATURE_SPEC.md, Storage): an OCI image manifest with
 * one layer per signature, the payload as the layer blob and the base64 signature in an
 * annotation, tagged `sha256-HEX.sig` beside the image; or, in the OCI 1.1 form, the same
 * manifest with the image as its `subject` and cosign's artifact type, found by the referrers API.
 */

export const SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';
export const CERTIFICATE_ANNOTATION = 'dev.sigstore.cosign/certificate';
export const CHAIN_ANNOTATION = 'dev.sigstore.cosign/chain';
/** The artifactType of cosign's signature referrers (`--registry-referrers-mode=oci-1-1`). */
export const SIGNATURE_ARTIFACT_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

const SIGNATURE_TAG = /^(sha256|sha512)-([a-f0-9]{64}|[a-f0-9]{128})\.sig$/;

/** `sha256:abc…` → `sha256-abc….sig`. */
export function signatureTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/** The digest a `sha256-HEX.sig` tag names; undefined for any other tag. */
export function signedDigestOfTag(tag: string): string | undefined {
  const match = SIGNATURE_TAG.exec(tag);
  return match ? `${match[1]}:${match[2]}` : undefined;
}

/** One signature layer, as stored: the payload blob's descriptor and the signature annotations. */
export interface SignatureLayer {
  payloadDigest: string;
  payloadSize: number;
  /** Base64 signature over the payload bytes. */
  signature: string;
  annotations: Record<string, string>;
}

/** A blob the manifest references, with its bytes, for the caller to upload. */
export interface ManifestBlob {
  mediaType: string;
  digest: string;
  size: number;
  bytes: Buffer;
}

export interface BuiltSignatureManifest {
  bytes: Buffer;
  mediaType: string;
  /** The config blob (the layers' blobs are the payloads, which the caller has). */
  config: ManifestBlob;
}

function blob(mediaType: string, bytes: Buffer): ManifestBlob {
  return { mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`, size: bytes.length, bytes };
}

/**
 * The signature manifest holding `layers`, in order. The config is the image config that
 * go-containerregistry gives an image of those layers (cosign's choice), so that tools reading it
 * as an image find nothing strange. `subject` makes it the OCI 1.1 referrer form.
 */
export function buildSignatureManifest(layers: readonly SignatureLayer[], options: { subject?: Descriptor } = {}): BuiltSignatureManifest {
  const configDoc = {
    architecture: '',
    created: '0001-01-01T00:00:00Z',
    history: layers.map(() => ({ created: '0001-01-01T00:00:00Z' })),
    os: '',
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.payloadDigest) },
    config: {},
  };
  const referrer = options.subject !== undefined;
  const config = blob(referrer ? SIGNATURE_ARTIFACT_TYPE : OCI_CONFIG, Buffer.from(JSON.stringify(configDoc), 'utf8'));
  const manifest: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    ...(referrer ? { artifactType: SIGNATURE_ARTIFACT_TYPE } : {}),
    config: { mediaType: config.mediaType, size: config.size, digest: config.digest },
    layers: layers.map((l) => ({
      mediaType: SIMPLE_SIGNING_MEDIA_TYPE,
      size: l.payloadSize,
      digest: l.payloadDigest,
      annotations: { ...l.annotations, [SIGNATURE_ANNOTATION]: l.signature },
    })),
    ...(options.subject ? { subject: { mediaType: options.subject.mediaType, digest: options.subject.digest, size: options.subject.size } } : {}),
  };
  return { bytes: Buffer.from(JSON.stringify(manifest), 'utf8'), mediaType: OCI_MANIFEST, config };
}

/** The signature layers of a manifest (layers of the simple-signing type with a signature); empty for anything else. */
export function signatureLayers(manifestBytes: Buffer): SignatureLayer[] {
  let doc: { layers?: unknown };
  try {
    doc = JSON.parse(manifestBytes.toString('utf8')) as { layers?: unknown };
  } catch {
    return [];
  }
  if (!Array.isArray(doc.layers)) return [];
  const found: SignatureLayer[] = [];
  for (const layer of doc.layers as Array<Partial<Descriptor> | null>) {
    if (!layer || layer.mediaType !== SIMPLE_SIGNING_MEDIA_TYPE || typeof layer.digest !== 'string' || typeof layer.size !== 'number') continue;
    const annotations = layer.annotations ?? {};
    const signature = annotations[SIGNATURE_ANNOTATION];
    if (typeof signature !== 'string') continue;
    const rest = { ...annotations };
    delete rest[SIGNATURE_ANNOTATION];
    found.push({ payloadDigest: layer.digest, payloadSize: layer.size, signature, annotations: rest });
  }
  return found;
}

/**
 * Whether a manifest is only signatures: at least one layer, every one a signed payload, so that
 * nothing in it can be run as an image (a `.sig` tag name alone proves nothing).
 */
export function isSignatureManifest(manifestBytes: Buffer): boolean {
  let layers: unknown;
  try {
    layers = (JSON.parse(manifestBytes.toString('utf8')) as { layers?: unknown }).layers;
  } catch {
    return false;
  }
  return Array.isArray(layers) && layers.length > 0 && layers.length === signatureLayers(manifestBytes).length;
}
