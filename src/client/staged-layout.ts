import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import type { Descriptor } from '../oci/manifest.js';
import { ClientError } from './client-error.js';
import type { BlobOutcome, ImageDestination, ImageSource } from './image-transport.js';
import { LayoutDestination, LayoutSource } from './layout-image.js';
import { OciLayout, type BlobOpener } from './oci-layout.js';
import type { FetchedManifest } from './registry-client.js';

/** The name an image has inside a staging layout. */
const STAGED = 'image';

/**
 * An image that is read through a temporary OCI layout: `stage` fills the directory (unpacks an
 * oci-archive, asks skopeo for a containers-storage image) on first use; close() removes it.
 */
export class StagedLayoutSource implements ImageSource {
  private readonly dir = mkdtempSync(join(tmpdir(), 'wharf-stage-'));
  private staged: Promise<LayoutSource> | undefined;

  constructor(
    readonly description: string,
    private readonly stage: (dir: string) => Promise<string | undefined>,
  ) {}

  private source(): Promise<LayoutSource> {
    return (this.staged ??= this.stage(this.dir).then((refName) => new LayoutSource(new OciLayout(this.dir), refName, this.description)));
  }

  async getManifest(digest?: string): Promise<FetchedManifest> {
    return (await this.source()).getManifest(digest);
  }

  async openBlob(descriptor: Descriptor, offset: number): Promise<Readable> {
    return (await this.source()).openBlob(descriptor, offset);
  }

  async close(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An image written to a temporary OCI layout, then handed on by `publish` at commit. */
export class StagedLayoutDestination implements ImageDestination {
  private readonly dir = mkdtempSync(join(tmpdir(), 'wharf-stage-'));
  private readonly layout: LayoutDestination;

  constructor(
    readonly description: string,
    private readonly publish: (dir: string, refName: string) => Promise<void>,
  ) {
    this.layout = new LayoutDestination(new OciLayout(this.dir), STAGED, description);
  }

  hasBlob(descriptor: Descriptor): Promise<boolean> {
    return this.layout.hasBlob(descriptor);
  }

  putBlob(descriptor: Descriptor, open: BlobOpener, options: { onBytes?: (n: number) => void }): Promise<BlobOutcome> {
    return this.layout.putBlob(descriptor, open, options);
  }

  putManifest(manifest: FetchedManifest, options: { root: boolean }): Promise<void> {
    return this.layout.putManifest(manifest, options);
  }

  async commit(): Promise<void> {
    await this.publish(this.dir, STAGED);
  }

  async close(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An oci-archive (a tar of an OCI layout, as podman save and buildah push write them) to read. */
export function ociArchiveSource(file: string, refName: string | undefined): ImageSource {
  return new StagedLayoutSource(`oci-archive:${file}${refName ? `:${refName}` : ''}`, async (dir) => {
    await unpackTar(file, dir);
    return refName;
  });
}

/** An oci-archive to write: the layout is packed into `file` at commit. */
export function ociArchiveDestination(file: string, refName: string | undefined): ImageDestination {
  return new StagedLayoutDestination(`oci-archive:${file}${refName ? `:${refName}` : ''}`, async (dir, staged) => {
    // The archive names its image as asked (or not at all): rename the staged entry.
    const layout = new OciLayout(dir);
    const index = layout.readIndex();
    for (const entry of index.manifests) {
      if (entry.annotations?.['org.opencontainers.image.ref.name'] !== staged) continue;
      if (refName) entry.annotations['org.opencontainers.image.ref.name'] = refName;
      else delete entry.annotations['org.opencontainers.image.ref.name'];
    }
    layout.writeIndex(index);
    await packTar(dir, file);
  });
}

/**
 * An image in containers-storage, where podman and buildah keep theirs, read and written
 * through skopeo (which speaks that storage natively). `name` is as podman names images.
 */
export function containersStorageSource(name: string): ImageSource {
  return new StagedLayoutSource(`containers-storage:${name}`, async (dir) => {
    await skopeo(['copy', '-q', `containers-storage:${name}`, `oci:${dir}:${STAGED}`], name);
    return STAGED;
  });
}

export function containersStorageDestination(name: string): ImageDestination {
  return new StagedLayoutDestination(`containers-storage:${name}`, (dir, staged) => skopeo(['copy', '-q', `oci:${dir}:${staged}`, `containers-storage:${name}`], name));
}

/** Whether containers-storage has an image of this name (false when skopeo is not installed). */
export async function containersStorageHas(name: string): Promise<boolean> {
  try {
    await skopeo(['inspect', '--raw', `containers-storage:${name}`], name);
    return true;
  } catch {
    return false;
  }
}

function skopeo(args: string[], name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('skopeo', ['--insecure-policy', ...args], { maxBuffer: 16 * 1024 * 1024 }, (error, _stdout, stderr) => {
      if (!error) return resolve();
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new ClientError('unsupported', 'containers-storage: needs skopeo (apt-get install skopeo), which reads and writes podman and buildah storage'));
      }
      const reason = /does not resolve to an image ID|identifier is not an image|not known/.test(stderr) ? 'no such image' : stderr.trim().split('\n').at(-1) ?? error.message;
      reject(new ClientError('not-found', `containers-storage:${name}: ${reason}`));
    });
  });
}

async function unpackTar(file: string, dir: string): Promise<void> {
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    const path = join(dir, header.name);
    // Nothing may land outside the staging directory.
    if (relative(dir, path).startsWith('..') || header.name.startsWith('/')) {
      stream.resume();
      next(new ClientError('invalid', `oci-archive:${file}: entry ${header.name} points outside the archive`));
      return;
    }
    if (header.type === 'directory') {
      mkdirSync(path, { recursive: true });
      stream.resume();
      stream.on('end', () => next());
      return;
    }
    if (header.type !== 'file') {
      stream.resume();
      stream.on('end', () => next());
      return;
    }
    mkdirSync(dirname(path), { recursive: true });
    pipeline(stream, createWriteStream(path)).then(() => next(), next);
  });
  try {
    await pipeline(createReadStream(file), extract);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ClientError('not-found', `oci-archive:${file}: no such file`);
    throw error;
  }
  if (!new OciLayout(dir).exists()) throw new ClientError('invalid', `oci-archive:${file} holds no OCI image layout (no oci-layout file)`);
}

async function packTar(dir: string, file: string): Promise<void> {
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(file));
  const walk = (at: string): string[] =>
    readdirSync(at, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(at, d.name)) : d.isFile() ? [join(at, d.name)] : []));
  for (const path of walk(dir).filter((p) => !relative(dir, p).startsWith(`ingest${sep}`))) {
    const name = relative(dir, path).split(sep).join('/');
    const entry = pack.entry({ name, size: statSync(path).size, mode: 0o644, mtime: new Date(0) });
    await pipeline(createReadStream(path), entry);
  }
  pack.finalize();
  await written;
}
