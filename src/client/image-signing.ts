import { Readable } from 'node:stream';
import { digestOf } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { INDEX_MANIFEST_TYPES, MediaType } from '../oci/media-types.js';
import {
  SIGNATURE_ARTIFACT_TYPE,
  buildSignatureManifest,
  createPayload,
  signatureLayers,
  signatureTag,
  verifySignatures,
  type PayloadSigner,
  type PayloadVerifier,
  type SignatureCandidate,
  type SignatureExpectation,
  type SignatureLayer,
  type VerificationResult,
} from '../signing/index.js';
import { isClientError } from './client-error.js';
import { readBody } from './http-message.js';
import { referrersTag, type ManifestHead, type RegistryClient } from './registry-client.js';

/** Where a signature goes: the `sha256-HEX.sig` tag (cosign's default, any registry) or an OCI 1.1 referrer. */
export type SignatureAttachment = 'tag' | 'referrers';

export interface SignImageOptions {
  signer: PayloadSigner;
  /** `-a key=value`: claims put in the payload's `optional` section. */
  annotations?: Record<string, string>;
  attach?: SignatureAttachment;
  /** Also sign every manifest of an index (each platform's image). */
  recursive?: boolean;
}

export interface SignedManifest {
  digest: string;
  /** The signature manifest's digest and, in the tag form, its tag. */
  signatureManifest: string;
  tag?: string;
}

/** Payloads are a few hundred bytes; anything near this is not one. */
const PAYLOAD_LIMIT = 1024 * 1024;

/**
 * Signs the manifest `target` of `registry/repository` as cosign does (SIGNATURE_SPEC.md): the
 * payload goes up as a blob, its signature into a layer of the signature manifest. In the tag
 * form the layer is appended to the manifest already under `sha256-HEX.sig`, so earlier
 * signatures stay (two signers racing can still lose one, as with cosign).
 */
export async function signImage(client: RegistryClient, registry: string, repository: string, target: ManifestHead, options: SignImageOptions): Promise<SignedManifest[]> {
  const signed = [await signOne(client, registry, repository, target, options)];
  if (options.recursive && INDEX_MANIFEST_TYPES.has(target.mediaType)) {
    const index = await client.getManifest(repository, target.digest);
    const children = (JSON.parse(index.bytes.toString('utf8')) as { manifests?: Descriptor[] }).manifests ?? [];
    for (const child of children) {
      signed.push(...(await signImage(client, registry, repository, { digest: child.digest, mediaType: child.mediaType, size: child.size }, options)));
    }
  }
  return signed;
}

async function signOne(client: RegistryClient, registry: string, repository: string, target: ManifestHead, options: SignImageOptions): Promise<SignedManifest> {
  const payload = createPayload(`${registry}/${repository}`, target.digest, options.annotations ?? {});
  const { signature, annotations } = await options.signer.sign(payload);
  const payloadDigest = digestOf(payload);
  await client.uploadBlob(repository, { digest: payloadDigest, size: payload.length }, () => Readable.from([payload]));
  const layer: SignatureLayer = { payloadDigest, payloadSize: payload.length, signature, annotations };

  if (options.attach === 'referrers') {
    const built = buildSignatureManifest([layer], { subject: { mediaType: target.mediaType, digest: target.digest, size: target.size } });
    await client.uploadBlob(repository, built.config, () => Readable.from([built.config.bytes]));
    const digest = digestOf(built.bytes);
    await client.putManifest(repository, digest, built.bytes, built.mediaType);
    await ensureListedAsReferrer(client, repository, target.digest, { mediaType: built.mediaType, digest, size: built.bytes.length, artifactType: SIGNATURE_ARTIFACT_TYPE });
    return { digest: target.digest, signatureManifest: digest };
  }

  const tag = signatureTag(target.digest);
  let existing: SignatureLayer[] = [];
  try {
    existing = signatureLayers((await client.getManifest(repository, tag)).bytes);
  } catch (error) {
    if (!isClientError(error, 'manifest-unknown')) throw error;
  }
  const built = buildSignatureManifest([...existing, layer]);
  await client.uploadBlob(repository, built.config, () => Readable.from([built.config.bytes]));
  const digest = await client.putManifest(repository, tag, built.bytes, built.mediaType);
  return { digest: target.digest, signatureManifest: digest, tag };
}

/**
 * On a registry without the referrers API, a referrer is found through the index under the
 * `sha256-HEX` tag (distribution-spec 1.1, "referrers tag schema"), which the pusher keeps:
 * when the new referrer is not listed, it is added there.
 */
async function ensureListedAsReferrer(client: RegistryClient, repository: string, subject: string, referrer: Descriptor): Promise<void> {
  for await (const listed of client.referrers(repository, subject)) if (listed.digest === referrer.digest) return;
  const tag = referrersTag(subject);
  let index: { schemaVersion: number; mediaType: string; manifests: Descriptor[] } = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
  try {
    const existing = JSON.parse((await client.getManifest(repository, tag, { accept: MediaType.OciIndex })).bytes.toString('utf8')) as typeof index;
    if (Array.isArray(existing.manifests)) index = { ...index, manifests: existing.manifests };
  } catch (error) {
    if (!isClientError(error, 'manifest-unknown')) throw error;
  }
  index.manifests.push(referrer);
  await client.putManifest(repository, tag, Buffer.from(JSON.stringify(index), 'utf8'), MediaType.OciIndex);
}

/**
 * Every signature stored for `digest` in the repository: the layers of its `.sig` manifest and of
 * its signature referrers, each with its payload (undefined when the payload blob is missing).
 */
export async function findSignatures(client: RegistryClient, repository: string, digest: string): Promise<SignatureCandidate[]> {
  const manifests: Array<{ source: string; bytes: Buffer }> = [];
  const tag = signatureTag(digest);
  try {
    manifests.push({ source: `${repository}:${tag}`, bytes: (await client.getManifest(repository, tag)).bytes });
  } catch (error) {
    if (!isClientError(error, 'manifest-unknown')) throw error;
  }
  for await (const referrer of client.referrers(repository, digest, { artifactType: SIGNATURE_ARTIFACT_TYPE })) {
    try {
      manifests.push({ source: `referrer ${referrer.digest}`, bytes: (await client.getManifest(repository, referrer.digest)).bytes });
    } catch (error) {
      if (!isClientError(error, 'manifest-unknown')) throw error;
    }
  }
  const candidates: SignatureCandidate[] = [];
  for (const { source, bytes } of manifests) {
    for (const layer of signatureLayers(bytes)) {
      candidates.push({ layer, source, payload: await fetchPayload(client, repository, layer.payloadDigest) });
    }
  }
  return candidates;
}

async function fetchPayload(client: RegistryClient, repository: string, digest: string): Promise<Buffer | undefined> {
  try {
    const blob = await client.openBlob(repository, digest);
    return await readBody(blob.stream, PAYLOAD_LIMIT);
  } catch (error) {
    if (isClientError(error, 'blob-unknown')) return undefined;
    throw error;
  }
}

export interface ImageVerification extends VerificationResult {
  digest: string;
  /** Signatures found at all, verified or not. */
  found: number;
}

/** Finds and checks the signatures of `digest`; the caller decides what an empty `verified` means. */
export async function verifyImage(client: RegistryClient, repository: string, digest: string, verifiers: readonly PayloadVerifier[], expected: Omit<SignatureExpectation, 'digest' | 'repository'> = {}): Promise<ImageVerification> {
  const candidates = await findSignatures(client, repository, digest);
  const result = verifySignatures(candidates, verifiers, { ...expected, digest, repository });
  return { ...result, digest, found: candidates.length };
}
