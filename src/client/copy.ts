import { parseManifest, type Descriptor, type Platform } from '../oci/manifest.js';
import { ClientError } from './client-error.js';
import type { BlobOutcome, ImageDestination, ImageSource } from './image-transport.js';
import { formatPlatform, hostPlatform, selectPlatform } from './platform.js';
import type { FetchedManifest } from './registry-client.js';

/** What copy() reports as it goes, for progress bars and `--json`. */
export type CopyEvent =
  | { type: 'blob-start'; digest: string; size: number; mediaType: string; /** the image's config, not a layer */ config: boolean }
  | { type: 'blob-progress'; digest: string; bytes: number; size: number }
  | { type: 'blob-done'; digest: string; size: number; outcome: BlobOutcome }
  | { type: 'manifest'; digest: string; mediaType: string; platform?: Platform; root: boolean };

export interface CopyOptions {
  /** Copy one platform's image out of an index (the host's by default); ignored for single images. */
  platform?: Platform;
  /** Copy every child of an index and the index itself. */
  allPlatforms?: boolean;
  /** Other repositories on the destination's registry that may hold the blobs (for mounting). */
  mountFrom?: (digest: string) => string[];
  /** Blobs transferred at once; 3 as docker does. */
  concurrency?: number;
  onEvent?: (event: CopyEvent) => void;
}

export interface CopyResult {
  /** The manifest written as the destination's root (the index, or the chosen platform's image). */
  manifest: FetchedManifest;
  /** The manifest the source named (an index when a platform was picked out of it). */
  sourceManifest: FetchedManifest;
  platform?: Platform;
}

/**
 * Copies an image from a source to a destination, blobs first (skipped when present, mounted when
 * another repository on the same registry has them, streamed otherwise), then manifests exactly as
 * they were, so digests are preserved. Indexes are copied whole with `allPlatforms`, else reduced
 * to the one image for the wanted platform.
 */
export async function copyImage(source: ImageSource, destination: ImageDestination, options: CopyOptions = {}): Promise<CopyResult> {
  const root = await source.getManifest();
  const parsed = parseManifest(root.bytes, root.mediaType);
  const emit = options.onEvent ?? (() => {});
  const sameRegistry =
    source.registryLocation !== undefined &&
    destination.registryLocation !== undefined &&
    source.registryLocation.registry === destination.registryLocation.registry &&
    source.registryLocation.repository !== destination.registryLocation.repository;
  const mountFrom = (digest: string): string[] => {
    const fromCaller = options.mountFrom?.(digest) ?? [];
    return sameRegistry ? [source.registryLocation!.repository, ...fromCaller] : fromCaller;
  };
  const context: Context = { source, destination, emit, mountFrom, concurrency: options.concurrency ?? 3, done: new Map() };

  if (parsed.kind === 'index' && !options.allPlatforms) {
    const wanted = options.platform ?? hostPlatform();
    const child = selectPlatform(parsed.manifests, wanted);
    if (!child) {
      const available = parsed.manifests.map((m) => formatPlatform(m.platform)).join(', ');
      throw new ClientError('manifest-unknown', `no image for platform ${formatPlatform(wanted)} in ${source.description} (it has ${available})`);
    }
    const manifest = await source.getManifest(child.digest);
    await copyManifestTree(context, manifest, true, child.platform);
    await destination.commit();
    return { manifest, sourceManifest: root, ...(child.platform ? { platform: child.platform } : {}) };
  }
  await copyManifestTree(context, root, true, undefined);
  await destination.commit();
  return { manifest: root, sourceManifest: root };
}

interface Context {
  source: ImageSource;
  destination: ImageDestination;
  emit: (event: CopyEvent) => void;
  mountFrom: (digest: string) => string[];
  concurrency: number;
  /** Blobs already handled in this copy (children of an index share layers). */
  done: Map<string, Promise<void>>;
}

async function copyManifestTree(context: Context, manifest: FetchedManifest, root: boolean, platform: Platform | undefined): Promise<void> {
  const parsed = parseManifest(manifest.bytes, manifest.mediaType);
  if (parsed.kind === 'index') {
    for (const child of parsed.manifests) {
      const childManifest = await context.source.getManifest(child.digest);
      await copyManifestTree(context, childManifest, false, child.platform);
    }
  } else {
    const blobs = parsed.config ? [parsed.config, ...parsed.layers] : [...parsed.layers];
    await runPool(blobs, context.concurrency, (blob) => copyBlob(context, blob, blob === parsed.config));
  }
  await context.destination.putManifest(manifest, { root });
  context.emit({ type: 'manifest', digest: manifest.digest, mediaType: manifest.mediaType, root, ...(platform ? { platform } : {}) });
}

function copyBlob(context: Context, blob: Descriptor, config: boolean): Promise<void> {
  const existing = context.done.get(blob.digest);
  if (existing) return existing;
  const work = (async () => {
    context.emit({ type: 'blob-start', digest: blob.digest, size: blob.size, mediaType: blob.mediaType, config });
    let transferred = 0;
    const outcome = await context.destination.putBlob(blob, (offset) => {
      transferred = offset;
      return context.source.openBlob(blob, offset);
    }, {
      mountFrom: context.mountFrom(blob.digest),
      onBytes: (n) => {
        transferred += n;
        context.emit({ type: 'blob-progress', digest: blob.digest, bytes: transferred, size: blob.size });
      },
    });
    context.emit({ type: 'blob-done', digest: blob.digest, size: blob.size, outcome });
  })();
  context.done.set(blob.digest, work);
  return work;
}

/** Runs `task` over items with at most `limit` at once; the first failure rejects. */
export async function runPool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await task(item);
    }
  });
  await Promise.all(workers);
}
