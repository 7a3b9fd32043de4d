import type { MetadataStore } from '../metadata/metadata-store.js';
import { parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { MediaType } from '../oci/media-types.js';

/** The annotation (and config label) that says what an image is (OCI image-spec annotations). */
export const DESCRIPTION_KEY = 'org.opencontainers.image.description';

/** Image configs larger than this are not read for their labels. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** Reads a small blob of the registry (an image config); undefined when it cannot. */
export type BlobText = (digest: string, size: number) => Promise<Buffer | undefined>;

const IMAGE_CONFIG_TYPES = new Set<string>([MediaType.OciConfig, MediaType.DockerConfig]);

/**
 * What a manifest pushed with a tag says of itself: its own description annotation, else its
 * config's label of the same name; for an index, the index's annotation, else its first
 * platform image's. Null when none says anything (the repository's description is then cleared,
 * so that it never describes an image the tags no longer point at).
 */
export async function imageDescription(repository: string, manifest: ParsedManifest, deps: { metadata: MetadataStore; readBlob?: BlobText }): Promise<string | null> {
  const own = manifest.annotations?.[DESCRIPTION_KEY];
  if (own !== undefined && own.trim() !== '') return own;
  if (manifest.kind === 'image') return configLabel(manifest, deps.readBlob);
  const child = manifest.manifests.find((d) => d.platform?.os !== 'unknown');
  if (!child) return null;
  const record = await deps.metadata.getManifest(repository, child.digest);
  if (!record) return null;
  let parsed: ParsedManifest;
  try {
    parsed = parseManifest(record.content, record.mediaType);
  } catch {
    return null;
  }
  if (parsed.kind !== 'image') return null;
  const annotated = parsed.annotations?.[DESCRIPTION_KEY];
  if (annotated !== undefined && annotated.trim() !== '') return annotated;
  return configLabel(parsed, deps.readBlob);
}

async function configLabel(manifest: ParsedManifest, readBlob: BlobText | undefined): Promise<string | null> {
  const config = manifest.config;
  if (!readBlob || !config || !IMAGE_CONFIG_TYPES.has(config.mediaType) || config.size > MAX_CONFIG_BYTES) return null;
  const bytes = await readBlob(config.digest, config.size);
  if (!bytes) return null;
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { config?: { Labels?: Record<string, unknown> } };
    const label = doc.config?.Labels?.[DESCRIPTION_KEY];
    return typeof label === 'string' && label.trim() !== '' ? label : null;
  } catch {
    return null;
  }
}
