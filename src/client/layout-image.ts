import type { Readable } from 'node:stream';
import { digestOf } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { Descriptor } from '../oci/manifest.js';
import { ClientError } from './client-error.js';
import type { BlobOutcome, ImageDestination, ImageSource } from './image-transport.js';
import type { BlobOpener, OciLayout } from './oci-layout.js';
import type { FetchedManifest } from './registry-client.js';

/** An image in an OCI layout, named by its `org.opencontainers.image.ref.name`. */
export class LayoutSource implements ImageSource {
  readonly description: string;

  constructor(readonly layout: OciLayout, readonly refName: string | undefined, description?: string) {
    this.description = description ?? `oci:${layout.dir}${refName ? `:${refName}` : ''}`;
  }

  async getManifest(digest?: string): Promise<FetchedManifest> {
    let descriptor: Descriptor | undefined;
    if (digest) {
      descriptor = { mediaType: '', digest, size: 0 };
    } else {
      if (!this.layout.exists()) throw new ClientError('not-found', `${this.layout.dir} is not an OCI image layout`);
      descriptor = this.layout.resolve(this.refName);
      if (!descriptor) {
        const what = this.refName === undefined ? `${this.description}: the layout holds more than one image; name one` : `${this.description}`;
        throw new ClientError('manifest-unknown', `manifest unknown: ${what}`);
      }
    }
    const bytes = this.layout.readBlob(descriptor.digest);
    const actual = digestOf(bytes, descriptor.digest.startsWith('sha512:') ? 'sha512' : 'sha256');
    if (actual !== descriptor.digest) throw new ClientError('digest-mismatch', `${this.description}: manifest ${descriptor.digest} is corrupt`);
    return { bytes, digest: descriptor.digest, mediaType: manifestTypeOf(bytes, descriptor.mediaType) };
  }

  async openBlob(descriptor: Descriptor, offset: number): Promise<Readable> {
    return this.layout.openBlob(descriptor.digest, offset);
  }

  async close(): Promise<void> {}
}

export class LayoutDestination implements ImageDestination {
  readonly description: string;

  constructor(readonly layout: OciLayout, readonly refName: string | undefined, description?: string) {
    this.description = description ?? `oci:${layout.dir}${refName ? `:${refName}` : ''}`;
    layout.init();
  }

  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    return this.layout.hasBlob(descriptor.digest);
  }

  async putBlob(descriptor: Descriptor, open: BlobOpener, options: { onBytes?: (n: number) => void }): Promise<BlobOutcome> {
    const result = await this.layout.writeBlob(descriptor, open, options.onBytes);
    return { status: result };
  }

  async putManifest(manifest: FetchedManifest, options: { root: boolean }): Promise<void> {
    this.layout.writeBlobBytes(manifest.bytes, manifest.digest);
    if (options.root) this.layout.setRef({ mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.length }, this.refName);
  }

  async commit(): Promise<void> {}
  async close(): Promise<void> {}
}

function manifestTypeOf(bytes: Buffer, fallback: string): string {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof doc.mediaType === 'string') return doc.mediaType;
    if (fallback) return fallback;
    return Array.isArray(doc.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  } catch {
    return fallback;
  }
}
