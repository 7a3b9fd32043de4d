import { digestOf } from '../oci/digest.js';
import { parseManifest, type Descriptor, type Platform } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';
import { formatReference, type ImageReference } from '../oci/reference.js';
import { ClientError } from './client-error.js';
import { copyImage, type CopyEvent } from './copy.js';
import { readSmallBlob } from './image-info.js';
import { RegistryDestination, RegistrySource } from './registry-image.js';
import type { FetchedManifest, RegistryClient } from './registry-client.js';

/**
 * Builds a multi-platform index from per-platform images (or indexes, whose children are taken)
 * and pushes it as `target`. Images from another repository are copied into the target's by
 * digest first, mounted when on the same registry, so no layer passes through this machine then.
 */
export async function createIndex(
  clientFor: (registry: string) => RegistryClient,
  target: ImageReference,
  sources: ImageReference[],
  options: { onEvent?: (event: CopyEvent) => void; annotations?: Record<string, string> } = {},
): Promise<FetchedManifest> {
  const targetClient = clientFor(target.registry);
  const children: Descriptor[] = [];
  for (const sourceRef of sources) {
    const client = clientFor(sourceRef.registry);
    const source = new RegistrySource(client, sourceRef);
    const root = await source.getManifest();
    const parsed = parseManifest(root.bytes, root.mediaType);
    const entries: Descriptor[] = [];
    if (parsed.kind === 'index') {
      entries.push(...parsed.manifests);
    } else {
      if (!parsed.config) throw new ClientError('invalid', `${formatReference(sourceRef)} is not an image`);
      const config = JSON.parse((await readSmallBlob(source, parsed.config)).toString('utf8')) as { os?: string; architecture?: string; variant?: string };
      if (!config.os || !config.architecture) throw new ClientError('invalid', `${formatReference(sourceRef)} has no platform in its config`);
      const platform: Platform = { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) };
      entries.push({ mediaType: root.mediaType, digest: root.digest, size: root.bytes.length, platform });
    }
    const elsewhere = sourceRef.registry !== target.registry || sourceRef.repository !== target.repository;
    for (const entry of entries) {
      if (elsewhere) {
        const from = new RegistrySource(client, { registry: sourceRef.registry, repository: sourceRef.repository, digest: entry.digest });
        const to = new RegistryDestination(targetClient, { registry: target.registry, repository: target.repository, digest: entry.digest });
        await copyImage(from, to, { allPlatforms: true, ...(options.onEvent ? { onEvent: options.onEvent } : {}) });
      }
      if (children.some((c) => c.digest === entry.digest)) continue;
      const child: Descriptor = { mediaType: entry.mediaType, digest: entry.digest, size: entry.size };
      if (entry.platform) child.platform = entry.platform;
      if (entry.annotations) child.annotations = entry.annotations;
      children.push(child);
    }
  }
  if (children.length === 0) throw new ClientError('invalid', 'an index needs at least one image');
  const docker = children.every((c) => c.mediaType === MediaType.DockerManifest || c.mediaType === MediaType.DockerManifestList);
  const mediaType = docker ? MediaType.DockerManifestList : MediaType.OciIndex;
  const doc: Record<string, unknown> = { schemaVersion: 2, mediaType, manifests: children };
  if (options.annotations && !docker) doc.annotations = options.annotations;
  const bytes = Buffer.from(JSON.stringify(doc, null, 2));
  const digest = await targetClient.putManifest(target.repository, target.tag ?? digestOf(bytes), bytes, mediaType);
  return { bytes, mediaType, digest };
}
