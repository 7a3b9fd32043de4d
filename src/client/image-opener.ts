import { formatReference, type ImageReference } from '../oci/reference.js';
import { ClientError } from './client-error.js';
import { DockerArchiveDestination, DockerArchiveSource } from './docker-archive.js';
import { familiarTag, parseImageLocation, type ImageLocation } from './image-location.js';
import type { ImageDestination, ImageSource } from './image-transport.js';
import { LayoutDestination, LayoutSource } from './layout-image.js';
import { LocalStore, type LocalImage } from './local-store.js';
import { OciLayout, REF_NAME } from './oci-layout.js';
import type { RegistryConnector } from './registry-connector.js';
import { RegistryDestination, RegistrySource } from './registry-image.js';
import { containersStorageDestination, containersStorageSource, ociArchiveDestination, ociArchiveSource } from './staged-layout.js';

export interface ImageOpenerOptions {
  /** Where registry locations get their clients. */
  registries: RegistryConnector;
  /** The local image store, opened only when a location needs it. */
  localStore: () => LocalStore;
}

/**
 * Opens the image a location names as something to read from or write to: a registry repository
 * (through the connector's shared clients), the local store, an OCI layout or a docker-archive.
 */
export class ImageOpener {
  constructor(private readonly options: ImageOpenerOptions) {}

  /** Throws ClientError('manifest-unknown') for a local image the store does not have. */
  openSource(location: ImageLocation): ImageSource {
    switch (location.transport) {
      case 'registry':
        return new RegistrySource(this.options.registries.client(location.ref.registry), location.ref);
      case 'local': {
        const image = this.options.localStore().find(location.ref);
        if (!image) throw new ClientError('manifest-unknown', `No such image: ${formatReference(location.ref)}`);
        return new LayoutSource(this.options.localStore().layout, image.descriptor.annotations?.[REF_NAME], formatReference(location.ref));
      }
      case 'oci':
        return new LayoutSource(new OciLayout(location.dir), location.refName);
      case 'docker-archive':
        return new DockerArchiveSource(location.file, location.refName);
      case 'oci-archive':
        return ociArchiveSource(location.file, location.refName);
      case 'containers-storage':
        return containersStorageSource(location.name);
    }
  }

  /**
   * The image a user names on the command line: a local image when the store has it (unless
   * `remote`, or the text says `docker://`), else the registry; `oci:` and `docker-archive:` as written.
   */
  openNamedSource(text: string, options: { remote?: boolean } = {}): { source: ImageSource; location: ImageLocation } {
    const byId = (): LocalImage | undefined => (options.remote || !isImageIdLike(text) ? undefined : this.options.localStore().findById(text)[0]);
    let location: ImageLocation;
    try {
      location = parseImageLocation(text, 'registry');
    } catch (error) {
      // An ID with `sha256:` or upper-case letters is no reference; it may still name a local image.
      const local = byId();
      if (local) return this.openLocal(local.ref);
      throw error;
    }
    if (location.transport === 'registry' && !options.remote && !text.startsWith('docker://')) {
      const local = this.options.localStore().find(location.ref) ?? byId();
      if (local) return this.openLocal(local.ref);
    }
    return { source: this.openSource(location), location };
  }

  private openLocal(ref: ImageReference): { source: ImageSource; location: ImageLocation } {
    return { source: this.openSource({ transport: 'local', ref }), location: { transport: 'local', ref } };
  }

  /** `nameForArchive` is what a docker-archive records as RepoTags when the destination names none. */
  openDestination(location: ImageLocation, nameForArchive?: ImageReference): ImageDestination {
    switch (location.transport) {
      case 'registry':
        return new RegistryDestination(this.options.registries.client(location.ref.registry), location.ref);
      case 'local':
        return new LayoutDestination(this.options.localStore().layout, LocalStore.refName(location.ref), formatReference(location.ref));
      case 'oci':
        return new LayoutDestination(new OciLayout(location.dir), location.refName);
      case 'docker-archive': {
        const tags = location.refName ? [location.refName] : nameForArchive?.tag ? [familiarTag(nameForArchive)] : [];
        return new DockerArchiveDestination(location.file, tags);
      }
      case 'oci-archive':
        return ociArchiveDestination(location.file, location.refName ?? (nameForArchive ? familiarTag(nameForArchive) : undefined));
      case 'containers-storage':
        return containersStorageDestination(location.name);
    }
  }
}

/** Text that could be an image ID or a prefix of one (`3f57d9401f8d`, `sha256:3f57…`). */
export function isImageIdLike(text: string): boolean {
  return /^(sha256:)?[a-f0-9]{4,64}$/.test(text);
}
