import type { Readable } from 'node:stream';
import { RegistryError } from '../errors/index.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { BlobStore } from '../storage/blob-store.js';
import { isSendable, type ChunkSink } from '../storage/driver.js';
import { isValidRepositoryName } from '../oci/names.js';
import { changeOptions, type RequestContext } from './context.js';
import type { EventSink } from './events.js';
import { checkRepositoryName } from './validation.js';
import type { Digest } from '../oci/digest.js';

/** How far an automatic mount looks for a readable repository holding the blob. */
const AUTOMATIC_MOUNT_CANDIDATES = 1000;


export type { ChunkSink };

/** An opened blob: a stream, and where the storage can do better, a cheaper way to copy it out. */
export interface OpenedBlob {
  size: number;
  stream: Readable;
  /** Copies the bytes into `sink` through reused buffers (then `stream` must not be read). */
  sendTo?: (sink: ChunkSink) => Promise<void>;
}

export interface BlobRange {
  offset: number;
  length: number;
}

/** Reading and deleting blobs through a repository's links. */
export class BlobService {
  constructor(
    private readonly metadata: MetadataStore,
    private readonly store: BlobStore,
    private readonly options: {
      deleteEnabled: boolean;
      emit?: EventSink;
      /** Redirect blob GETs to the storage's own URLs (when it has them), valid this long. */
      redirect?: { expiresInSeconds: number };
    },
  ) {}

  /** A presigned storage URL for the blob when redirects are on and the driver offers them; else undefined. */
  async redirectURL(_repository: string, digest: Digest): Promise<string | undefined> {
    if (!this.options.redirect) return undefined;
    return this.store.redirectURL(digest, this.options.redirect.expiresInSeconds);
  }

  /** The size of a blob the repository links; throws BLOB_UNKNOWN otherwise. */
  async stat(repository: string, digest: Digest, _context?: RequestContext): Promise<number> {
    checkRepositoryName(repository);
    const size = await this.metadata.repositoryBlobSize(repository, digest);
    if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest } });
    return size;
  }

  /** Opens a blob (or a range of it) the repository links. */
  async open(repository: string, digest: Digest, range?: BlobRange): Promise<OpenedBlob> {
    const size = await this.stat(repository, digest);
    const stream = await this.store.reader(digest, range ?? {});
    return isSendable(stream) ? { size, stream, sendTo: (sink) => stream.sendTo(sink) } : { size, stream };
  }

  /**
   * Cross-repository mount: links a blob into `repository` without moving bytes. With `from`,
   * only a blob that `from` links and the caller may read (`context.canRead`); without it
   * (automatic mount), a blob that some repository the caller may read links. Returns false
   * when there is nothing to mount, so the caller starts an ordinary upload.
   */
  async mount(repository: string, digest: Digest, from: string | undefined, context: RequestContext = {}): Promise<boolean> {
    checkRepositoryName(repository);
    const { canRead } = context;
    let source: string | undefined = from;
    if (from !== undefined) {
      if (!isValidRepositoryName(from)) return false;
      if (canRead && !canRead(from)) return false;
      if ((await this.metadata.repositoryBlobSize(from, digest)) === undefined) return false;
    } else if (canRead) {
      if ((await this.metadata.repositoryBlobSize(repository, digest)) === undefined) {
        const holders = await this.metadata.repositoriesLinkingBlob(digest, AUTOMATIC_MOUNT_CANDIDATES);
        source = holders.find((name) => canRead(name));
        if (source === undefined) return false;
      }
    }
    const actor = context.actor;
    if (!(await this.metadata.linkBlob(repository, digest, { ...changeOptions(context), ...(source !== undefined ? { from: source } : {}) }))) return false;
    this.options.emit?.({ action: 'blob.mount', repository, digest, from: source ?? '', ...(actor ? { actor } : {}) });
    return true;
  }

  /** Removes the repository's link; the bytes stay until garbage collection finds them unreferenced. */
  async delete(repository: string, digest: Digest, context: RequestContext = {}): Promise<void> {
    if (!this.options.deleteEnabled) throw new RegistryError('UNSUPPORTED', { message: 'deletion is disabled' });
    checkRepositoryName(repository);
    const actor = context.actor ? { actor: context.actor } : {};
    if (!(await this.metadata.unlinkBlob(repository, digest, changeOptions(context)))) throw new RegistryError('BLOB_UNKNOWN', { detail: { digest } });
    this.options.emit?.({ action: 'blob.delete', repository, digest, ...actor });
  }
}
