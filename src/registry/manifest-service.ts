import { RegistryError } from '../errors/index.js';
import type { ManifestRecord, MetadataStore } from '../metadata/metadata-store.js';
import { digestOf, parseDigest } from '../oci/digest.js';
import { ManifestFormatError, parseManifest, requiredBlobs, type ParsedManifest } from '../oci/manifest.js';
import { IMAGE_MANIFEST_TYPES, INDEX_MANIFEST_TYPES, MANIFEST_TYPES, bareMediaType } from '../oci/media-types.js';
import type { RequestContext } from './context.js';
import type { EventSink } from './events.js';
import { checkRepositoryName, checkTag, classifyReference } from './validation.js';

/** The spec's minimum a registry must accept; Distribution uses the same. */
export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface PutManifestResult {
  digest: string;
  subject?: string;
}

/** Manifests by tag or digest: validation against the repository's blobs, content negotiation, deletion. */
export class ManifestService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: { deleteEnabled: boolean; maxManifestBytes: number; emit?: EventSink },
  ) {}

  get maxManifestBytes(): number {
    return this.options.maxManifestBytes;
  }

  /**
   * The manifest for a tag or digest. `accept` lists the media types the client takes (empty: any).
   * An index asked for by a client that takes only image manifests yields its linux/amd64 child,
   * as Distribution does for old clients. Throws MANIFEST_UNKNOWN.
   */
  async get(repository: string, reference: string, accept: readonly string[] = []): Promise<ManifestRecord> {
    checkRepositoryName(repository);
    const ref = classifyReference(reference, 'read');
    const record =
      'digest' in ref
        ? await this.metadata.getManifest(repository, ref.digest)
        : await this.metadata.getTaggedManifest(repository, ref.tag);
    if (!record) throw new RegistryError('MANIFEST_UNKNOWN', { detail: { reference } });
    if (accepts(accept, record.mediaType)) return record;
    if ('tag' in ref && INDEX_MANIFEST_TYPES.has(record.mediaType) && accept.some((t) => IMAGE_MANIFEST_TYPES.has(t))) {
      const child = await this.defaultPlatformChild(repository, record);
      if (child && accepts(accept, child.mediaType)) return child;
    }
    throw new RegistryError('MANIFEST_UNKNOWN', {
      message: `manifest is ${record.mediaType}, which the Accept header does not allow`,
      detail: { reference, mediaType: record.mediaType },
    });
  }

  /**
   * Stores a manifest pushed by tag or digest (plus `extraTags` from `?tag=`), exactly as sent.
   * Validates the document and that everything it references is in the repository.
   */
  async put(
    repository: string,
    reference: string,
    content: Buffer,
    contentType: string | undefined,
    extraTags: readonly string[] = [],
    context: RequestContext = {},
  ): Promise<PutManifestResult> {
    checkRepositoryName(repository);
    const ref = classifyReference(reference, 'write');
    for (const tag of extraTags) checkTag(tag);
    if (content.length > this.options.maxManifestBytes) {
      throw new RegistryError('MANIFEST_TOO_LARGE', { detail: { limit: this.options.maxManifestBytes } });
    }
    let digest: string;
    if ('digest' in ref) {
      digest = digestOf(content, parseDigest(ref.digest)!.algorithm);
      if (digest !== ref.digest) {
        throw new RegistryError('DIGEST_INVALID', { message: 'manifest content does not match the digest in the URL', detail: { expected: ref.digest, actual: digest } });
      }
    } else {
      digest = digestOf(content);
    }
    let manifest: ParsedManifest;
    try {
      manifest = parseManifest(content, contentType);
    } catch (error) {
      if (error instanceof ManifestFormatError) throw new RegistryError('MANIFEST_INVALID', { message: error.message, cause: error });
      throw error;
    }
    const totalSize = await this.verifyReferences(repository, manifest, content.length);
    const tags = new Set(extraTags);
    if ('tag' in ref) tags.add(ref.tag);
    const emit = this.options.emit;
    // Where each tag pointed before, for the audit trail of tag moves (only looked up when someone listens).
    const previous = new Map<string, string | undefined>();
    if (emit) for (const tag of tags) previous.set(tag, (await this.metadata.getTaggedManifest(repository, tag))?.digest);
    await this.metadata.putManifest({
      repository,
      digest,
      mediaType: manifest.mediaType,
      content,
      ...(manifest.subject ? { subject: manifest.subject.digest } : {}),
      ...(manifest.artifactType ? { artifactType: manifest.artifactType } : {}),
      ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
      totalSize,
      blobs: requiredBlobs(manifest).map((d) => d.digest),
      children: manifest.manifests.map((d) => d.digest),
      tags: [...tags],
      ...(context.actor ? { actor: context.actor } : {}),
    });
    if (emit) {
      const actor = context.actor ? { actor: context.actor } : {};
      emit({ action: 'manifest.push', repository, digest, tags: [...tags], ...actor });
      for (const [tag, before] of previous) {
        if (before !== digest) emit({ action: 'tag.move', repository, tag, digest, ...(before ? { previous: before } : {}), ...actor });
      }
    }
    return manifest.subject ? { digest, subject: manifest.subject.digest } : { digest };
  }

  /** By digest: the manifest and all its tags. By tag: only the tag. */
  async delete(repository: string, reference: string, context: RequestContext = {}): Promise<void> {
    if (!this.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', { message: 'deletion is disabled' });
    checkRepositoryName(repository);
    const ref = classifyReference(reference, 'read');
    const actor = context.actor ? { actor: context.actor } : {};
    if ('digest' in ref) {
      const removed = await this.metadata.deleteManifest(repository, ref.digest, context.actor);
      if (removed === undefined) throw new RegistryError('MANIFEST_UNKNOWN', { detail: { reference } });
      this.options.emit?.({ action: 'manifest.delete', repository, digest: ref.digest, tags: removed, ...actor });
    } else if (!(await this.metadata.deleteTag(repository, ref.tag, context.actor))) {
      throw new RegistryError('MANIFEST_UNKNOWN', { detail: { reference } });
    } else {
      this.options.emit?.({ action: 'tag.delete', repository, tag: ref.tag, ...actor });
    }
  }

  /** Checks that referenced blobs and child manifests are in the repository; returns the total size. */
  private async verifyReferences(repository: string, manifest: ParsedManifest, ownSize: number): Promise<number> {
    let total = ownSize;
    for (const blob of requiredBlobs(manifest)) {
      const size = await this.metadata.repositoryBlobSize(repository, blob.digest);
      if (size === undefined) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'manifest references a blob unknown to this repository', detail: { digest: blob.digest } });
      }
      if (size !== blob.size) {
        throw new RegistryError('MANIFEST_INVALID', { message: `descriptor size ${blob.size} does not match blob ${blob.digest} (${size} bytes)`, detail: { digest: blob.digest } });
      }
      total += size;
    }
    if (manifest.manifests.length > 0) {
      const missing = await this.metadata.missingManifests(repository, [...new Set(manifest.manifests.map((d) => d.digest))]);
      if (missing.length > 0) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'index references a manifest unknown to this repository', detail: { digest: missing[0] } });
      }
      for (const child of manifest.manifests) total += child.size;
    }
    return total;
  }

  private async defaultPlatformChild(repository: string, index: ManifestRecord): Promise<ManifestRecord | undefined> {
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(index.content, index.mediaType);
    } catch {
      return undefined;
    }
    const child = parsed.manifests.find((d) => d.platform?.os === 'linux' && d.platform.architecture === 'amd64');
    return child ? this.metadata.getManifest(repository, child.digest) : undefined;
  }
}

/** Whether an Accept list allows `mediaType`: empty, a wildcard, the type itself, or no manifest type named at all. */
function accepts(accept: readonly string[], mediaType: string): boolean {
  if (accept.length === 0) return true;
  let namesManifestType = false;
  for (const item of accept) {
    if (item === mediaType || item === '*/*' || item === 'application/*') return true;
    if (MANIFEST_TYPES.has(item)) namesManifestType = true;
  }
  return !namesManifestType;
}

/** Splits Accept headers into bare media types. */
export function parseAccept(header: string | string[] | undefined): string[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: string[] = [];
  for (const value of values) for (const item of value.split(',')) {
    const type = bareMediaType(item);
    if (type) out.push(type);
  }
  return out;
}
