import { RegistryError } from '../errors/index.js';
import { globMatches } from '../metadata/immutable-tag-rules.js';
import type { ManifestRecord } from '../metadata/metadata-store.js';
import { parseManifest } from '../oci/manifest.js';
import type { Manifests } from '../registry/services.js';
import type { VulnerabilityPolicy } from './scan-config.js';
import type { ScanIndex, ScanRecord } from './scan-index.js';
import { severityRank } from './severity.js';

/** Why a pull is refused, or undefined when it is allowed. */
export interface PolicyVerdict {
  policy: VulnerabilityPolicy;
  reason: 'vulnerable' | 'unscanned';
  /** The blocking vulnerability ids (vulnerable), or the image manifests with no scan (unscanned). */
  ids: string[];
}

/** The first policy whose pattern matches the repository. */
export function policyFor(policies: readonly VulnerabilityPolicy[], repository: string): VulnerabilityPolicy | undefined {
  return policies.find((p) => globMatches(p.repository, repository));
}

/**
 * Judges one image manifest's last scan against a policy. Artifacts (SBOMs, signatures,
 * reports: anything with a subject, or not a container image) are never judged.
 */
export function judge(policy: VulnerabilityPolicy, scans: Array<{ digest: string; scan: ScanRecord | undefined }>): PolicyVerdict | undefined {
  // Scanned means matched: an inventory without a vulnerability report (no database yet) is not.
  const unscanned = scans.filter((s) => !s.scan || s.scan.state !== 'done' || s.scan.reportDigest === undefined).map((s) => s.digest);
  if (unscanned.length > 0 && policy.unscanned === 'deny') return { policy, reason: 'unscanned', ids: unscanned };
  const allowed = new Set(policy.allowlist.map((a) => a.toUpperCase()));
  const ids = new Set<string>();
  for (const { scan } of scans) {
    for (const f of scan?.findings ?? []) {
      if (severityRank(f.severity) < severityRank(policy.severity)) continue;
      if (policy.ignoreUnfixed && f.fixedVersion === undefined) continue;
      const names = [f.id, ...(f.aliases ?? [])];
      if (names.some((n) => allowed.has(n.toUpperCase()))) continue;
      ids.add(f.id);
    }
  }
  return ids.size > 0 ? { policy, reason: 'vulnerable', ids: [...ids].sort() } : undefined;
}

/** The image manifests a pulled manifest stands for: itself, or an index's image children. */
export function imageManifestsOf(record: ManifestRecord): string[] | undefined {
  if (record.subject) return undefined;
  let parsed;
  try {
    parsed = parseManifest(record.content, record.mediaType);
  } catch {
    return undefined;
  }
  if (parsed.kind === 'index') {
    const children = parsed.manifests.filter((m) => !(m.platform?.os === 'unknown' && m.platform.architecture === 'unknown') && !m.artifactType).map((m) => m.digest);
    return children.length > 0 ? children : undefined;
  }
  if (!isContainerImage(parsed.config?.mediaType, parsed.artifactType)) return undefined;
  return [record.digest];
}

const IMAGE_CONFIG_TYPES = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

/** Container images have an image config and no artifact type of their own. */
export function isContainerImage(configMediaType: string | undefined, artifactType: string | undefined): boolean {
  return configMediaType !== undefined && IMAGE_CONFIG_TYPES.has(configMediaType) && (artifactType === undefined || IMAGE_CONFIG_TYPES.has(artifactType));
}

/** The error a refused pull gets: DENIED (403), saying which policy and which ids. */
export function deniedError(repository: string, verdict: PolicyVerdict): RegistryError {
  const message =
    verdict.reason === 'vulnerable'
      ? `pull refused by the vulnerability policy for "${verdict.policy.repository}": vulnerabilities at or above ${verdict.policy.severity}: ${verdict.ids.join(', ')}`
      : `pull refused by the vulnerability policy for "${verdict.policy.repository}": the image has not been scanned`;
  return new RegistryError('DENIED', {
    message,
    detail: { repository, policy: verdict.policy.repository, severity: verdict.policy.severity, reason: verdict.reason, ...(verdict.reason === 'vulnerable' ? { vulnerabilities: verdict.ids } : { unscanned: verdict.ids }) },
  });
}

/**
 * Manifests whose pulls (a `get` with a request context: serving a client) obey the
 * vulnerability policies; reads without a context (the registry's own work) are not judged.
 */
export function withPullPolicy(inner: Manifests, policies: readonly VulnerabilityPolicy[], index: () => ScanIndex): Manifests {
  return {
    get maxManifestBytes() {
      return inner.maxManifestBytes;
    },
    async get(repository, reference, accept, context) {
      const record = await inner.get(repository, reference, accept, context);
      if (!context) return record;
      const policy = policyFor(policies, repository);
      if (!policy) return record;
      const images = imageManifestsOf(record);
      if (!images) return record;
      const scans = images.map((digest) => ({ digest, scan: index().get(repository, digest) }));
      const verdict = judge(policy, scans);
      if (verdict) throw deniedError(repository, verdict);
      return record;
    },
    put: (...args) => inner.put(...args),
    delete: (...args) => inner.delete(...args),
  };
}
