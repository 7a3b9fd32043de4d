import { RegistryError, isRegistryError } from '../errors/index.js';
import type { ManifestRecord } from '../metadata/metadata-store.js';
import { globMatches } from '../metadata/immutable-tag-rules.js';
import type { Digest } from '../oci/digest.js';
import {
  KeyVerifier,
  SIGNATURE_ARTIFACT_TYPE,
  isSignatureManifest,
  readPublicKey,
  signatureLayers,
  signatureTag,
  signedDigestOfTag,
  verifySignatures,
  type PayloadVerifier,
  type SignatureCandidate,
} from '../signing/index.js';
import type { RequestContext } from './context.js';
import { filterTags } from './discovery-service.js';
import type { Blobs, Discovery, Manifests, RegistryServices, ServedManifest } from './services.js';
import type { ManifestReference } from './validation.js';

/**
 * `security.signatures`: which repositories must serve only images that a listed key signed
 * (cosign's format, docs/signing.md). In `enforce` mode an unsigned manifest is refused with
 * DENIED; in `warn` mode it is served with a Warning header and a log line. Signatures themselves
 * (the `.sig` tags and signature referrers) stay readable so that clients can verify.
 */
export interface SignaturePolicy {
  /** A glob over repository names: `prod/**`, `team/*`, `**`. */
  repository: string;
  mode: 'enforce' | 'warn';
  verifiers: PayloadVerifier[];
}

/** Reads the config list; a key is PEM text or a path to a PEM file (read with `readKeyFile`). Throws Error naming the entry. */
export function parseSignaturePolicies(raw: unknown, readKeyFile: (path: string) => string): SignaturePolicy[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new Error('security.signatures: expected a list of {repository, keys, mode}');
  return raw.map((entry: unknown, i) => {
    const where = `security.signatures[${i}]`;
    if (!entry || typeof entry !== 'object') throw new Error(`${where}: expected {repository, keys, mode}`);
    const { repository, keys, mode, ...rest } = entry as Record<string, unknown>;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw new Error(`${where}: unknown key ${unknown[0]} (expected repository, keys, mode)`);
    if (typeof repository !== 'string' || !/^[a-z0-9._\-/*?]+$/.test(repository)) throw new Error(`${where}.repository: expected a repository pattern such as prod/**`);
    const chosen = mode ?? 'enforce';
    if (chosen !== 'enforce' && chosen !== 'warn') throw new Error(`${where}.mode: expected enforce or warn, not ${String(mode)}`);
    const list = typeof keys === 'string' ? [keys] : keys;
    if (!Array.isArray(list) || list.length === 0 || !list.every((k) => typeof k === 'string')) throw new Error(`${where}.keys: expected a list of PEM public keys or paths to them`);
    const verifiers = (list as string[]).map((key, k) => {
      const text = key.includes('-----BEGIN') ? key : readKeyFile(key);
      try {
        return new KeyVerifier(readPublicKey(text));
      } catch (error) {
        throw new Error(`${where}.keys[${k}]: ${(error as Error).message}`);
      }
    });
    return { repository, mode: chosen, verifiers };
  });
}

/** Where the policy learns which indexes hold a manifest (a platform image of a signed index is covered by its signature). */
export interface ManifestParents {
  manifestParents(repository: string, digest: string): Promise<string[]>;
}

export interface SignaturePolicyOptions {
  parents: ManifestParents;
  /** Told of every manifest served unsigned in warn mode. */
  onWarning?: (fields: { repository: string; digest: string; reason: string }) => void;
}

/** What the policy concluded about one manifest's own signatures. */
interface Verdict {
  signed: boolean;
  /** Key ids that verified it, or why nothing did. */
  keyIds: string[];
  reason: string;
}

const PAYLOAD_LIMIT = 1024 * 1024;
/** Verdicts kept; each is a few hundred bytes. */
const CACHE_LIMIT = 50_000;

/**
 * The registry's services with the signature policies in front of manifest reads. Verdicts are
 * cached per repository and digest together with the state of the image's signatures (the `.sig`
 * tag's target and the signature referrers' digests): a signature pushed or deleted in any
 * process changes that state, so the next read verifies again, with no message between workers.
 */
export function signaturePolicyServices(inner: RegistryServices, policies: readonly SignaturePolicy[], options: SignaturePolicyOptions): RegistryServices {
  if (policies.length === 0) return inner;
  const manifests = new SignaturePolicyManifests(inner.manifests, inner.discovery, inner.blobs, policies, options);
  const discovery = inner.discovery;
  return {
    ...inner,
    manifests,
    discovery: {
      // `?signed=true` under a policy lists the tags whose image its keys verify.
      async tags(repository, request) {
        if (!request.signed || !manifests.covers(repository)) return discovery.tags(repository, request);
        const { signed: _signed, ...plain } = request;
        const limit = request.limit ?? Number.MAX_SAFE_INTEGER;
        return filterTags((r) => discovery.tags(repository, r), plain, limit, (tag) => manifests.isTagSigned(repository, tag));
      },
      allTags: (repository, after) => discovery.allTags(repository, after),
      catalog: (request, visible) => discovery.catalog(request, visible),
      referrers: (repository, digest, artifactType) => discovery.referrers(repository, digest, artifactType),
    },
  };
}

class SignaturePolicyManifests implements Manifests {
  private readonly verdicts = new Map<string, { state: string; verdict: Verdict }>();

  constructor(
    private readonly inner: Manifests,
    private readonly discovery: Discovery,
    private readonly blobs: Blobs,
    private readonly policies: readonly SignaturePolicy[],
    private readonly options: SignaturePolicyOptions,
  ) {}

  get maxManifestBytes(): number {
    return this.inner.maxManifestBytes;
  }

  async get(repository: string, reference: ManifestReference, accept?: readonly string[], context?: RequestContext): Promise<ServedManifest> {
    const record = await this.inner.get(repository, reference, accept, context);
    const policy = this.policies.find((p) => globMatches(p.repository, repository));
    if (!policy) return record;
    const verdict = await this.judge(repository, record.digest as Digest, policy);
    // Signatures must stay readable for clients to verify anything. Known by their content, not
    // by a `.sig` tag name, which anyone who can push could give to an image.
    if (verdict.signed || isSignatureManifest(record.content)) return record;
    const reason = `manifest ${record.digest} in ${repository} is not signed by a key that security.signatures trusts for ${policy.repository} (${verdict.reason})`;
    if (policy.mode === 'warn') {
      this.options.onWarning?.({ repository, digest: record.digest, reason: verdict.reason });
      return { ...record, warning: reason };
    }
    throw new RegistryError('DENIED', { message: reason, detail: { repository, digest: record.digest, policy: policy.repository, reason: verdict.reason } });
  }

  put(...args: Parameters<Manifests['put']>): ReturnType<Manifests['put']> {
    return this.inner.put(...args);
  }

  delete(...args: Parameters<Manifests['delete']>): ReturnType<Manifests['delete']> {
    return this.inner.delete(...args);
  }

  covers(repository: string): boolean {
    return this.policies.some((p) => globMatches(p.repository, repository));
  }

  /** Whether the image under `tag` is signed by a key of the policy covering the repository (never a signature tag itself). */
  async isTagSigned(repository: string, tag: string): Promise<boolean> {
    const policy = this.policies.find((p) => globMatches(p.repository, repository));
    if (!policy || signedDigestOfTag(tag) !== undefined) return false;
    let record: ManifestRecord;
    try {
      record = await this.inner.get(repository, { tag });
    } catch (error) {
      if (isRegistryError(error) && error.code === 'MANIFEST_UNKNOWN') return false;
      throw error;
    }
    return (await this.judge(repository, record.digest as Digest, policy)).signed;
  }

  /** Signed by its own signatures, or a platform image of an index that is. */
  private async judge(repository: string, digest: Digest, policy: SignaturePolicy): Promise<Verdict> {
    const own = await this.ownVerdict(repository, digest, policy);
    if (own.signed) return own;
    for (const parent of await this.options.parents.manifestParents(repository, digest)) {
      const viaIndex = await this.ownVerdict(repository, parent as Digest, policy);
      if (viaIndex.signed) return { ...viaIndex, reason: `signed through its index ${parent}` };
    }
    return own;
  }

  private async ownVerdict(repository: string, digest: Digest, policy: SignaturePolicy): Promise<Verdict> {
    const tagged = await this.signatureTagTarget(repository, digest);
    const referrers = await this.signatureReferrers(repository, digest);
    const state = `${tagged?.digest ?? ''}|${referrers.join(',')}`;
    const key = `${policy.repository}\n${repository}@${digest}`;
    const cached = this.verdicts.get(key);
    if (cached && cached.state === state) return cached.verdict;
    const verdict = await this.verify(repository, digest, policy, tagged, referrers);
    if (this.verdicts.size >= CACHE_LIMIT) this.verdicts.delete(this.verdicts.keys().next().value!);
    this.verdicts.set(key, { state, verdict });
    return verdict;
  }

  private async signatureTagTarget(repository: string, digest: Digest): Promise<ManifestRecord | undefined> {
    try {
      return await this.inner.get(repository, { tag: signatureTag(digest) });
    } catch (error) {
      if (isRegistryError(error) && error.code === 'MANIFEST_UNKNOWN') return undefined;
      throw error;
    }
  }

  private async signatureReferrers(repository: string, digest: Digest): Promise<string[]> {
    return (await this.discovery.referrers(repository, digest, SIGNATURE_ARTIFACT_TYPE)).map((d) => d.digest).sort();
  }

  private async verify(repository: string, digest: Digest, policy: SignaturePolicy, tagged: ManifestRecord | undefined, referrers: readonly string[]): Promise<Verdict> {
    const manifests: Array<{ source: string; content: Buffer }> = [];
    if (tagged) manifests.push({ source: `tag ${signatureTag(digest)}`, content: tagged.content });
    for (const referrer of referrers) {
      try {
        manifests.push({ source: `referrer ${referrer}`, content: (await this.inner.get(repository, { digest: referrer as Digest })).content });
      } catch (error) {
        if (!isRegistryError(error) || error.code !== 'MANIFEST_UNKNOWN') throw error;
      }
    }
    const candidates: SignatureCandidate[] = [];
    for (const { source, content } of manifests) {
      for (const layer of signatureLayers(content)) candidates.push({ layer, source, payload: await this.payload(repository, layer.payloadDigest) });
    }
    if (candidates.length === 0) return { signed: false, keyIds: [], reason: 'no signatures' };
    const result = verifySignatures(candidates, policy.verifiers, { digest, repository });
    if (result.verified.length > 0) return { signed: true, keyIds: [...new Set(result.verified.map((v) => v.identity))], reason: 'signed' };
    return { signed: false, keyIds: [], reason: result.rejected.join('; ') };
  }

  private async payload(repository: string, digest: string): Promise<Buffer | undefined> {
    let opened;
    try {
      opened = await this.blobs.open(repository, digest as Digest);
    } catch (error) {
      if (isRegistryError(error) && error.code === 'BLOB_UNKNOWN') return undefined;
      throw error;
    }
    if (opened.size > PAYLOAD_LIMIT) {
      opened.stream.destroy();
      return undefined;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of opened.stream as AsyncIterable<Buffer>) chunks.push(chunk);
    return Buffer.concat(chunks);
  }
}

