import { setTimeout as sleep } from 'node:timers/promises';
import { isRegistryError, RegistryError } from '../errors/index.js';
import type { ManifestPut, ManifestPutResult, ManifestRecord, MetadataStore } from '../metadata/metadata-store.js';
import { digestOf, digestParts, type Digest } from '../oci/digest.js';
import { ManifestFormatError, manifestReferences, parseManifest, requiredBlobs, type ParsedManifest } from '../oci/manifest.js';
import { IMAGE_MANIFEST_TYPES, INDEX_MANIFEST_TYPES, MANIFEST_TYPES } from '../oci/media-types.js';
import { changeOptions, type RequestContext } from './context.js';
import type { EventSink } from './events.js';
import { imageDescription, type BlobText } from './image-description.js';
import type { PullTimes } from './pull-times.js';
import { checkRepositoryName, checkTag, type ManifestReference } from './validation.js';

/** The spec's minimum a registry must accept; Distribution uses the same. */
export const DEFAULT_MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** How long a manifest push waits for a collector deleting a blob it references (a sweep takes one file delete). */
const SWEEP_PATIENCE_MS = 30_000;
const SWEEP_RETRY_MS = 20;

export interface PutManifestResult {
  digest: Digest;
  subject?: string;
}

/** Manifests by tag or digest: validation against the repository's blobs, content negotiation, deletion. */
export class ManifestService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly options: { deleteEnabled: boolean; maxManifestBytes: number; emit?: EventSink; pulls?: PullTimes; readBlob?: BlobText },
  ) {}

  get maxManifestBytes(): number {
    return this.options.maxManifestBytes;
  }

  /**
   * The manifest for a tag or digest. `accept` lists the media types the client takes (empty: any).
   * An index asked for by a client that takes only image manifests yields its linux/amd64 child,
   * as Distribution does for old clients. Throws MANIFEST_UNKNOWN.
   */
  async get(repository: string, ref: ManifestReference, accept: readonly string[] = [], context?: RequestContext): Promise<ManifestRecord> {
    const record = await this.negotiate(repository, ref, accept);
    // A GET hands the manifest out: a pull, whose time retention keeps (a HEAD only looks).
    if (context?.request?.method === 'GET') this.options.pulls?.record(repository, record.digest);
    return record;
  }

  private async negotiate(repository: string, ref: ManifestReference, accept: readonly string[]): Promise<ManifestRecord> {
    checkRepositoryName(repository);
    const reference = 'digest' in ref ? ref.digest : ref.tag;
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
    ref: ManifestReference,
    content: Buffer,
    contentType: string | undefined,
    extraTags: readonly string[] = [],
    context: RequestContext = {},
  ): Promise<PutManifestResult> {
    checkRepositoryName(repository);
    for (const tag of extraTags) checkTag(tag);
    if (content.length > this.options.maxManifestBytes) {
      throw new RegistryError('MANIFEST_TOO_LARGE', { detail: { limit: this.options.maxManifestBytes } });
    }
    let digest: Digest;
    if ('digest' in ref) {
      digest = digestOf(content, digestParts(ref.digest).algorithm);
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
    const tags = new Set(extraTags);
    if ('tag' in ref) tags.add(ref.tag);
    // Only a tagged push describes the repository (the newest tagged manifest's description).
    const description =
      tags.size > 0 && !manifest.subject
        ? await imageDescription(repository, manifest, { metadata: this.metadata, ...(this.options.readBlob ? { readBlob: this.options.readBlob } : {}) })
        : undefined;
    // The store checks the references and reads the old tag targets in the transaction that writes.
    const result = await this.putWaitingForSweeps({
      repository,
      digest,
      mediaType: manifest.mediaType,
      content,
      ...(manifest.subject ? { subject: manifest.subject.digest } : {}),
      ...(manifest.artifactType ? { artifactType: manifest.artifactType } : {}),
      ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
      blobs: requiredBlobs(manifest).map((d) => ({ digest: d.digest, size: d.size })),
      children: manifest.manifests.map((d) => ({ digest: d.digest, size: d.size })),
      tags: [...tags],
      ...(description !== undefined ? { description } : {}),
      references: manifestReferences(manifest).map((d) => ({ mediaType: d.mediaType, digest: d.digest, size: d.size })),
      ...changeOptions(context),
    });
    const emit = this.options.emit;
    if (emit) {
      const actor = context.actor ? { actor: context.actor } : {};
      emit({ action: 'manifest.push', repository, digest, tags: [...tags], ...actor });
      for (const { tag, previous } of result.moved) emit({ action: 'tag.move', repository, tag, digest, ...(previous ? { previous } : {}), ...actor });
    }
    return manifest.subject ? { digest, subject: manifest.subject.digest } : { digest };
  }

  /**
   * Stores the manifest; while a blob it references is being swept (UNAVAILABLE from the store),
   * waits for the collector's decision and asks again: the blob is then gone, and the push gets
   * MANIFEST_BLOB_UNKNOWN, so the client uploads it again.
   */
  private async putWaitingForSweeps(put: ManifestPut): Promise<ManifestPutResult> {
    const deadline = Date.now() + SWEEP_PATIENCE_MS;
    for (;;) {
      try {
        return await this.metadata.putManifest(put);
      } catch (error) {
        if (!isRegistryError(error) || error.code !== 'UNAVAILABLE' || Date.now() > deadline) throw error;
      }
      await sleep(SWEEP_RETRY_MS);
    }
  }

  /** By digest: the manifest and all its tags. By tag: only the tag. */
  async delete(repository: string, ref: ManifestReference, context: RequestContext = {}): Promise<void> {
    if (!this.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', { message: 'deletion is disabled' });
    checkRepositoryName(repository);
    const reference = 'digest' in ref ? ref.digest : ref.tag;
    const actor = context.actor ? { actor: context.actor } : {};
    if ('digest' in ref) {
      const removed = await this.metadata.deleteManifest(repository, ref.digest, changeOptions(context));
      if (removed === undefined) throw new RegistryError('MANIFEST_UNKNOWN', { detail: { reference } });
      this.options.emit?.({ action: 'manifest.delete', repository, digest: ref.digest, tags: removed, ...actor });
    } else if ((await this.metadata.deleteTag(repository, ref.tag, changeOptions(context))) === undefined) {
      throw new RegistryError('MANIFEST_UNKNOWN', { detail: { reference } });
    } else {
      this.options.emit?.({ action: 'tag.delete', repository, tag: ref.tag, ...actor });
    }
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
