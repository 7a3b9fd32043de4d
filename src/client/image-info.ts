import { digestOf } from '../oci/digest.js';
import { parseManifest, type Descriptor, type ParsedManifest, type Platform } from '../oci/manifest.js';
import { ClientError } from './client-error.js';
import type { ImageSource } from './image-transport.js';
import { formatPlatform, hostPlatform, selectPlatform } from './platform.js';
import type { FetchedManifest } from './registry-client.js';

/** The parts of an image config (image-spec config.md) the client reads. */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture?: string;
  os?: string;
  variant?: string;
  config?: Record<string, unknown>;
  rootfs?: { type: string; diff_ids: string[] };
  history?: Array<{ created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }>;
  [other: string]: unknown;
}

/** One image resolved for a platform: its manifest, parsed, and its config. */
export interface ResolvedImage {
  /** What the reference named (an index, or the image itself). */
  root: FetchedManifest;
  manifest: FetchedManifest;
  parsed: ParsedManifest;
  config: ImageConfig;
  configDescriptor: Descriptor;
}

/** Reads a small blob whole and checks its digest. */
export async function readSmallBlob(source: ImageSource, descriptor: Descriptor): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of (await source.openBlob(descriptor, 0)) as AsyncIterable<Buffer>) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const actual = digestOf(bytes, descriptor.digest.startsWith('sha512:') ? 'sha512' : 'sha256');
  if (actual !== descriptor.digest) throw new ClientError('digest-mismatch', `blob ${descriptor.digest} has digest ${actual}`);
  return bytes;
}

/**
 * Resolves a source to one image: through an index to the wanted platform (the host's by default),
 * then fetches and parses its config. Layers are never read.
 */
export async function resolveImage(source: ImageSource, options: { platform?: Platform } = {}): Promise<ResolvedImage> {
  const root = await source.getManifest();
  let manifest = root;
  let parsed = parseManifest(root.bytes, root.mediaType);
  if (parsed.kind === 'index') {
    const wanted = options.platform ?? hostPlatform();
    const child = selectPlatform(parsed.manifests, wanted) ?? (options.platform ? undefined : parsed.manifests.find((m) => m.platform?.os !== 'unknown'));
    if (!child) throw new ClientError('manifest-unknown', `no image for platform ${formatPlatform(wanted)} in ${source.description}`);
    manifest = await source.getManifest(child.digest);
    parsed = parseManifest(manifest.bytes, manifest.mediaType);
  }
  if (!parsed.config) throw new ClientError('invalid', `${source.description} is not an image (no config)`);
  const config = JSON.parse((await readSmallBlob(source, parsed.config)).toString('utf8')) as ImageConfig;
  return { root, manifest, parsed, config, configDescriptor: parsed.config };
}
