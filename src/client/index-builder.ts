import { digestOf } from '../oci/digest.js';
import { parseManifest, type Descriptor, type Platform } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { formatReference, type ImageReference } from '../oci/reference.js';
import { ClientError } from './client-error.js';
import { copyImage, type CopyEvent } from './copy.js';
import { readSmallBlob } from './image-info.js';
import { RegistryDestination, RegistrySource } from './registry-image.js';
import type { FetchedManifest, RegistryClient } from './registry-client.js';

/** One image of an index being built: where it is, and its descriptor (with platform) in the index. */
export interface IndexEntry {
  source: ImageReference;
  descriptor: Descriptor;
}

/**
 * Reads per-platform images (or indexes, whose children are taken) and describes each as an
 * index entry, its platform from the image's config. Throws ClientError('invalid') for a source
 * that is no image or names no platform.
 */
export async function resolveIndexEntries(clientFor: (registry: string) => RegistryClient, sources: ImageReference[]): Promise<IndexEntry[]> {
  const entries: IndexEntry[] = [];
  for (const sourceRef of sources) {
    const source = new RegistrySource(clientFor(sourceRef.registry), sourceRef);
    const root = await source.getManifest();
    const parsed = parseManifest(root.bytes, root.mediaType);
    if (parsed.kind === 'index') {
      for (const child of parsed.manifests) entries.push({ source: { ...sourceRef, tag: undefined, digest: child.digest }, descriptor: child });
      continue;
    }
    if (!parsed.config) throw new ClientError('invalid', `${formatReference(sourceRef)} is not an image`);
    const config = JSON.parse((await readSmallBlob(source, parsed.config)).toString('utf8')) as { os?: string; architecture?: string; variant?: string };
    if (!config.os || !config.architecture) throw new ClientError('invalid', `${formatReference(sourceRef)} has no platform in its config`);
    const platform: Platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
    entries.push({ source: sourceRef, descriptor: { mediaType: root.mediaType, digest: root.digest, size: root.bytes.length, platform } });
  }
  return entries;
}

/** The index document for these entries (each digest once), Docker's list type when all are Docker's. */
export function buildIndex(entries: IndexEntry[], annotations?: Record<string, string>): FetchedManifest {
  const children: Descriptor[] = [];
  for (const { descriptor } of entries) {
    if (children.some((c) => c.digest === descriptor.digest)) continue;
    const child: Descriptor = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
    if (descriptor.platform) child.platform = descriptor.platform;
    if (descriptor.annotations) child.annotations = descriptor.annotations;
    children.push(child);
  }
  if (children.length === 0) throw new ClientError('invalid', 'an index needs at least one image');
  const docker = children.every((c) => c.mediaType === MediaType.DockerManifest || c.mediaType === MediaType.DockerManifestList);
  const mediaType = docker ? MediaType.DockerManifestList : MediaType.OciIndex;
  const doc: Record<string, unknown> = { schemaVersion: 2, mediaType, manifests: children };
  if (annotations && Object.keys(annotations).length > 0 && !docker) doc.annotations = annotations;
  const bytes = Buffer.from(JSON.stringify(doc, null, 2));
  return { bytes, mediaType, digest: digestOf(bytes) };
}

/**
 * Pushes an index of `entries` as `target`. Images from another repository are copied into the
 * target's by digest first, mounted when on the same registry, so no layer passes through this
 * machine then.
 */
export async function pushIndex(
  clientFor: (registry: string) => RegistryClient,
  target: ImageReference,
  entries: IndexEntry[],
  options: { onEvent?: (event: CopyEvent) => void; annotations?: Record<string, string> } = {},
): Promise<FetchedManifest> {
  const index = buildIndex(entries, options.annotations);
  const targetClient = clientFor(target.registry);
  for (const { source, descriptor } of entries) {
    if (source.registry === target.registry && source.repository === target.repository) continue;
    const from = new RegistrySource(clientFor(source.registry), { registry: source.registry, repository: source.repository, digest: descriptor.digest });
    const to = new RegistryDestination(targetClient, { registry: target.registry, repository: target.repository, digest: descriptor.digest });
    await copyImage(from, to, { allPlatforms: true, ...(options.onEvent ? { onEvent: options.onEvent } : {}) });
  }
  const digest = await targetClient.putManifest(target.repository, target.tag ?? index.digest, index.bytes, index.mediaType);
  return { ...index, digest };
}

/** Builds a multi-platform index from per-platform images (or indexes) and pushes it as `target`. */
export async function createIndex(
  clientFor: (registry: string) => RegistryClient,
  target: ImageReference,
  sources: ImageReference[],
  options: { onEvent?: (event: CopyEvent) => void; annotations?: Record<string, string> } = {},
): Promise<FetchedManifest> {
  return pushIndex(clientFor, target, await resolveIndexEntries(clientFor, sources), options);
}
