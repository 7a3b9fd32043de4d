import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { digestOf } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { ClientError } from './client-error.js';
import type { BlobOutcome, ImageDestination, ImageSource } from './image-transport.js';
import type { BlobOpener } from './oci-layout.js';
import type { FetchedManifest } from './registry-client.js';

interface ArchiveManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** Hashes a file and reports whether it starts with the gzip magic. */
async function fileFacts(path: string): Promise<{ digest: string; size: number; gzip: boolean }> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hash.update(chunk);
  const head = Buffer.alloc(2);
  const fd = openSync(path, 'r');
  readSync(fd, head, 0, 2, 0);
  closeSync(fd);
  return { digest: `sha256:${hash.digest('hex')}`, size: statSync(path).size, gzip: head[0] === 0x1f && head[1] === 0x8b };
}

/**
 * What `docker save` writes (and skopeo's docker-archive): a tar with manifest.json naming a config
 * and layer tars. Read by unpacking to a temporary directory, then presented as an OCI image whose
 * layers keep their bytes (uncompressed layers stay uncompressed, so diff_ids are their digests).
 */
export class DockerArchiveSource implements ImageSource {
  readonly description: string;
  private dir: string | undefined;
  private manifest: FetchedManifest | undefined;
  private readonly files = new Map<string, string>();

  constructor(readonly file: string, readonly refName?: string) {
    this.description = `docker-archive:${file}${refName ? `:${refName}` : ''}`;
  }

  private async unpack(): Promise<string> {
    if (this.dir) return this.dir;
    if (!existsSync(this.file)) throw new ClientError('not-found', `${this.file}: no such file`);
    const dir = mkdtempSync(join(tmpdir(), 'wharf-archive-'));
    this.dir = dir;
    const extract = tar.extract();
    const done = pipeline(createReadStream(this.file), extract);
    for await (const entry of extract) {
      const name = normalize(entry.header.name);
      if (entry.header.type !== 'file' || isAbsolute(name) || name.startsWith('..')) {
        entry.resume();
        continue;
      }
      const target = join(dir, name);
      mkdirSync(dirname(target), { recursive: true });
      await pipeline(entry, createWriteStream(target));
    }
    await done;
    return dir;
  }

  async getManifest(digest?: string): Promise<FetchedManifest> {
    if (!this.manifest) this.manifest = await this.build();
    if (digest && digest !== this.manifest.digest) throw new ClientError('manifest-unknown', `manifest unknown: ${digest} in ${this.description}`);
    return this.manifest;
  }

  private async build(): Promise<FetchedManifest> {
    const dir = await this.unpack();
    let entries: ArchiveManifestEntry[];
    try {
      entries = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as ArchiveManifestEntry[];
    } catch {
      throw new ClientError('invalid', `${this.file} is not a docker-archive (no manifest.json)`);
    }
    let entry = entries[0];
    if (this.refName) {
      const wanted = this.refName;
      entry = entries.find((e) => (e.RepoTags ?? []).some((t) => t === wanted || t === `${wanted}:latest` || t.endsWith(`/${wanted}`)));
      if (!entry) throw new ClientError('manifest-unknown', `manifest unknown: ${wanted} is not in ${this.file}`);
    }
    if (!entry) throw new ClientError('invalid', `${this.file} holds no image`);
    const configPath = join(dir, normalize(entry.Config));
    const configBytes = readFileSync(configPath);
    const configDigest = digestOf(configBytes);
    this.files.set(configDigest, configPath);
    const layers: Descriptor[] = [];
    for (const layer of entry.Layers) {
      const path = join(dir, normalize(layer));
      const facts = await fileFacts(path);
      this.files.set(facts.digest, path);
      layers.push({ mediaType: facts.gzip ? MediaType.OciLayerGzip : MediaType.OciLayerTar, digest: facts.digest, size: facts.size });
    }
    const doc = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: configDigest, size: configBytes.length },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(doc));
    return { bytes, mediaType: MediaType.OciManifest, digest: digestOf(bytes) };
  }

  async openBlob(descriptor: Descriptor, offset: number): Promise<Readable> {
    await this.getManifest();
    const path = this.files.get(descriptor.digest);
    if (!path) throw new ClientError('blob-unknown', `blob ${descriptor.digest} is not in ${this.file}`);
    return createReadStream(path, { start: offset });
  }

  async close(): Promise<void> {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}

/**
 * Writes one image as `docker save` does: manifest.json, the config as HEX.json and each layer
 * uncompressed as DIFFID.tar (what docker load and skopeo expect).
 */
export class DockerArchiveDestination implements ImageDestination {
  readonly description: string;
  private readonly dir = mkdtempSync(join(tmpdir(), 'wharf-archive-out-'));
  /** Blob digest → file in the work directory (uncompressed for layers). */
  private readonly files = new Map<string, { path: string; diffId?: string }>();
  private image: { config: string; layers: string[] } | undefined;

  constructor(readonly file: string, readonly repoTags: string[]) {
    this.description = `docker-archive:${file}`;
  }

  async hasBlob(): Promise<boolean> {
    return false;
  }

  async putBlob(descriptor: Descriptor, open: BlobOpener, options: { onBytes?: (n: number) => void }): Promise<BlobOutcome> {
    if (this.files.has(descriptor.digest)) return { status: 'exists' };
    if (descriptor.mediaType.endsWith('+zstd') || descriptor.mediaType.endsWith('.zstd')) {
      throw new ClientError('unsupported', `docker-archive cannot hold zstd layer ${descriptor.digest}`);
    }
    const compressed = createHash('sha256');
    const uncompressed = createHash('sha256');
    const temp = join(this.dir, `${descriptor.digest.replace(':', '-')}.tmp`);
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        size += chunk.length;
        compressed.update(chunk);
        options.onBytes?.(chunk.length);
        done(null, chunk);
      },
    });
    const hashOut = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        uncompressed.update(chunk);
        done(null, chunk);
      },
    });
    const gzip = descriptor.mediaType.endsWith('gzip');
    const stages: NodeJS.ReadWriteStream[] = gzip ? [meter, createGunzip(), hashOut] : [meter, hashOut];
    await pipeline(await open(0), ...(stages as [Transform]), createWriteStream(temp));
    const actual = `sha256:${compressed.digest('hex')}`;
    if (actual !== descriptor.digest || size !== descriptor.size) {
      throw new ClientError('digest-mismatch', `blob ${descriptor.digest} failed verification (got ${actual}, ${size} bytes)`);
    }
    this.files.set(descriptor.digest, { path: temp, diffId: `sha256:${uncompressed.digest('hex')}` });
    return { status: 'written' };
  }

  async putManifest(manifest: FetchedManifest, options: { root: boolean }): Promise<void> {
    const parsed = parseManifest(manifest.bytes, manifest.mediaType);
    if (parsed.kind !== 'image' || !parsed.config) {
      throw new ClientError('unsupported', 'a docker-archive holds single-platform images: choose one with --platform');
    }
    if (!options.root) return;
    this.image = { config: parsed.config.digest, layers: parsed.layers.map((l) => l.digest) };
  }

  async commit(): Promise<void> {
    if (!this.image) throw new ClientError('invalid', 'no image was written to the archive');
    const pack = tar.pack();
    const output = pipeline(pack, createWriteStream(this.file));
    const add = async (name: string, path: string) => {
      const size = statSync(path).size;
      const entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) });
      await pipeline(createReadStream(path), entry);
    };
    const config = this.files.get(this.image.config)!;
    const configName = `${this.image.config.slice('sha256:'.length)}.json`;
    await add(configName, config.path);
    const layerNames: string[] = [];
    const written = new Set<string>();
    for (const digest of this.image.layers) {
      const layer = this.files.get(digest)!;
      const name = `${layer.diffId!.slice('sha256:'.length)}.tar`;
      layerNames.push(name);
      if (written.has(name)) continue;
      written.add(name);
      await add(name, layer.path);
    }
    const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: this.repoTags, Layers: layerNames }]));
    pack.entry({ name: 'manifest.json', size: manifest.length, mode: 0o644, mtime: new Date(0) }, manifest);
    pack.finalize();
    await output;
  }

  async close(): Promise<void> {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
