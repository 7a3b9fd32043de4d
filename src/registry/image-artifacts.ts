import { isRegistryError } from '../errors/index.js';
import { globMatches } from '../metadata/immutable-tag-rules.js';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { SIGNATURE_ARTIFACT_TYPE, readPayload, signatureLayers, signatureTag, verifySignatures } from '../signing/index.js';
import type { SignaturePolicy } from './signature-policy.js';
import type { Blobs, Discovery, Manifests } from './services.js';

/**
 * What the web UI shows beside an image: its cosign signatures (both stored forms) and the
 * SBOM and vulnerability report referrers the scanner attaches. Reads are bounded: a payload or
 * report larger than its cap is left unread and shown without its details.
 */

/** The scanner's artifact types (docs/scanning.md); written here because the registry layer does not import the scanner. */
export const SBOM_ARTIFACT_TYPE = 'application/vnd.cyclonedx+json';
export const VULNERABILITY_REPORT_ARTIFACT_TYPE = 'application/vnd.wharf.vulnerability-report+json';

const MAX_PAYLOAD_BYTES = 64 * 1024;
const MAX_REPORT_BYTES = 8 * 1024 * 1024;
/** Signatures shown per image; an image with more is a curiosity, and the page stays small. */
const MAX_SIGNATURES = 50;

type Readers = { manifests: Manifests; discovery: Discovery; blobs: Blobs };

export interface ImageSignature {
  /** Where it is stored: `tag sha256-….sig` or `referrer sha256:…`. */
  source: string;
  /** The manifest holding it (the `.sig` tag's target or the referrer). */
  manifestDigest: string;
  /** Key ids of the `security.signatures` policy that verify it; empty when none does (or no policy covers the repository). */
  keyIds: string[];
  /** When it was made: the payload's `timestamp` annotation when it has one, else when its manifest was pushed (ms). */
  time: number;
  timeSource: 'payload' | 'pushed';
  /** The payload's optional annotations, as strings. */
  annotations: Record<string, string>;
  /** Why the payload could not be read (missing, too large, not a cosign payload); absent when it was. */
  problem?: string;
}

/** Every cosign signature stored for `digest` in `repository`, with what the configured keys say of each. */
export async function listImageSignatures(services: Readers, policies: readonly SignaturePolicy[], repository: string, digest: Digest): Promise<ImageSignature[]> {
  const holders: Array<{ source: string; digest: string; content: Buffer; createdAt: number }> = [];
  const tagged = await manifestOrUndefined(services, repository, { tag: signatureTag(digest) });
  if (tagged) holders.push({ source: `tag ${signatureTag(digest)}`, digest: tagged.digest, content: tagged.content, createdAt: tagged.createdAt });
  for (const referrer of await services.discovery.referrers(repository, digest, SIGNATURE_ARTIFACT_TYPE)) {
    const record = await manifestOrUndefined(services, repository, { digest: referrer.digest as Digest });
    if (record) holders.push({ source: `referrer ${record.digest}`, digest: record.digest, content: record.content, createdAt: record.createdAt });
  }
  const verifiers = policies.find((p) => globMatches(p.repository, repository))?.verifiers ?? [];
  const found: ImageSignature[] = [];
  for (const holder of holders) {
    for (const layer of signatureLayers(holder.content)) {
      if (found.length >= MAX_SIGNATURES) return found;
      const read = await readBounded(services.blobs, repository, layer.payloadDigest, MAX_PAYLOAD_BYTES);
      const signature: ImageSignature = { source: holder.source, manifestDigest: holder.digest, keyIds: [], time: holder.createdAt, timeSource: 'pushed', annotations: {} };
      if (read.bytes === undefined) {
        signature.problem = read.problem;
        found.push(signature);
        continue;
      }
      try {
        const claims = readPayload(read.bytes);
        for (const [key, value] of Object.entries(claims.annotations)) signature.annotations[key] = typeof value === 'string' ? value : JSON.stringify(value);
        const stamped = timestampOf(claims.annotations);
        if (stamped !== undefined) Object.assign(signature, { time: stamped, timeSource: 'payload' });
      } catch (error) {
        signature.problem = (error as Error).message;
      }
      if (verifiers.length > 0) {
        const result = verifySignatures([{ layer, payload: read.bytes, source: holder.source }], verifiers, { digest, repository });
        signature.keyIds = [...new Set(result.verified.map((v) => v.identity))];
      }
      found.push(signature);
    }
  }
  return found;
}

/** A payload annotation `timestamp` (seconds since the epoch, or an ISO time), as ms; undefined otherwise. */
function timestampOf(annotations: Record<string, unknown>): number | undefined {
  const raw = annotations.timestamp ?? annotations.Timestamp;
  if (typeof raw === 'number' && Number.isFinite(raw) && raw > 0) return raw * 1000;
  if (typeof raw !== 'string') return undefined;
  if (/^\d{9,11}$/.test(raw)) return Number(raw) * 1000;
  const parsed = Date.parse(raw);
  return Number.isNaN(parsed) ? undefined : parsed;
}

export type ScanArtifact =
  | { kind: 'sbom'; digest: string; created?: string; components?: number; problem?: string }
  | { kind: 'vulnerabilities'; digest: string; created?: string; total?: number; bySeverity?: Record<string, number>; problem?: string };

/** The SBOM and vulnerability report referrers among `referrers`, with a summary read from each. */
export async function summarizeScanArtifacts(services: Readers, repository: string, referrers: readonly Descriptor[]): Promise<ScanArtifact[]> {
  const artifacts: ScanArtifact[] = [];
  for (const referrer of referrers) {
    const kind = referrer.artifactType === SBOM_ARTIFACT_TYPE ? 'sbom' : referrer.artifactType === VULNERABILITY_REPORT_ARTIFACT_TYPE ? 'vulnerabilities' : undefined;
    if (!kind) continue;
    const created = referrer.annotations?.['org.opencontainers.image.created'];
    const base = { digest: referrer.digest, ...(created !== undefined ? { created } : {}) };
    const doc = await readArtifactDocument(services, repository, referrer);
    if ('problem' in doc) {
      artifacts.push({ kind, ...base, problem: doc.problem });
      continue;
    }
    const json = doc.json as Record<string, unknown>;
    if (kind === 'sbom') {
      artifacts.push({ kind, ...base, ...(Array.isArray(json.components) ? { components: json.components.length } : { problem: 'no components list' }) });
      continue;
    }
    const summary = json.summary as { total?: unknown; bySeverity?: unknown } | undefined;
    const bySeverity: Record<string, number> = {};
    if (summary && typeof summary.bySeverity === 'object' && summary.bySeverity !== null) {
      for (const [severity, count] of Object.entries(summary.bySeverity)) if (typeof count === 'number') bySeverity[severity] = count;
    }
    if (typeof summary?.total !== 'number') artifacts.push({ kind, ...base, problem: 'no summary in the report' });
    else artifacts.push({ kind, ...base, total: summary.total, bySeverity });
  }
  return artifacts;
}

/** The JSON of an artifact's one layer of its own type, read up to the cap. */
async function readArtifactDocument(services: Readers, repository: string, referrer: Descriptor): Promise<{ json: unknown } | { problem: string }> {
  let record;
  try {
    record = await services.manifests.get(repository, { digest: referrer.digest as Digest });
  } catch (error) {
    if (isRegistryError(error)) return { problem: `its manifest cannot be read (${error.code})` };
    throw error;
  }
  let layers: unknown;
  try {
    layers = (JSON.parse(record.content.toString('utf8')) as { layers?: unknown }).layers;
  } catch {
    return { problem: 'its manifest is not JSON' };
  }
  const layer = Array.isArray(layers) ? (layers as Array<Partial<Descriptor> | null>).find((l) => l?.mediaType === referrer.artifactType && typeof l?.digest === 'string') : undefined;
  if (!layer) return { problem: 'it has no layer of its type' };
  const read = await readBounded(services.blobs, repository, layer.digest!, MAX_REPORT_BYTES);
  if (read.bytes === undefined) return { problem: read.problem };
  try {
    return { json: JSON.parse(read.bytes.toString('utf8')) };
  } catch {
    return { problem: 'it is not JSON' };
  }
}

async function manifestOrUndefined(services: Readers, repository: string, reference: { tag: string } | { digest: Digest }) {
  try {
    return await services.manifests.get(repository, reference);
  } catch (error) {
    if (isRegistryError(error) && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'DENIED')) return undefined;
    throw error;
  }
}

/** A blob's bytes when it is at most `cap`; otherwise why not (never read past the cap). */
async function readBounded(blobs: Blobs, repository: string, digest: string, cap: number): Promise<{ bytes: Buffer; problem?: undefined } | { bytes?: undefined; problem: string }> {
  let opened;
  try {
    opened = await blobs.open(repository, digest as Digest);
  } catch (error) {
    if (isRegistryError(error)) return { problem: `blob ${digest} is missing` };
    throw error;
  }
  if (opened.size > cap) {
    opened.stream.destroy();
    return { problem: `blob ${digest} is larger than ${cap} bytes; not read` };
  }
  const chunks: Buffer[] = [];
  for await (const chunk of opened.stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return { bytes: Buffer.concat(chunks) };
}
