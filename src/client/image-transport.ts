import type { Readable } from 'node:stream';
import type { Descriptor } from '../oci/manifest.js';
import type { BlobOpener } from './oci-layout.js';
import type { FetchedManifest } from './registry-client.js';

/** Where a blob ended up at a destination. */
export type BlobOutcome = { status: 'exists' } | { status: 'mounted'; from: string } | { status: 'written' };

/** Somewhere images are read from: a registry repository, an OCI layout, a docker-archive. */
export interface ImageSource {
  /** For messages: `localhost:5000/app:v1`, `oci:/tmp/x:tag`. */
  readonly description: string;
  /** The registry repository behind this source, so a destination on the same registry can mount. */
  readonly registryLocation?: { registry: string; repository: string };
  /** The named image's top manifest, or the manifest with a digest. */
  getManifest(digest?: string): Promise<FetchedManifest>;
  /** Opens a blob from an offset (for resuming). */
  openBlob(descriptor: Descriptor, offset: number): Promise<Readable>;
  close(): Promise<void>;
}

/** Somewhere images are written. Blobs first, then manifests children first, then commit(). */
export interface ImageDestination {
  readonly description: string;
  readonly registryLocation?: { registry: string; repository: string };
  hasBlob(descriptor: Descriptor): Promise<boolean>;
  putBlob(descriptor: Descriptor, open: BlobOpener, options: { mountFrom?: string[]; onBytes?: (n: number) => void }): Promise<BlobOutcome>;
  /** `root` is the manifest the destination's name (tag) points at; children are stored by digest. */
  putManifest(manifest: FetchedManifest, options: { root: boolean }): Promise<void>;
  commit(): Promise<void>;
  close(): Promise<void>;
}
