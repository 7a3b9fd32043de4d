import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, readdirSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { parseDigest } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { ClientError } from './client-error.js';

/** The annotation that names an index entry in an image layout (image-spec annotations.md). */
export const REF_NAME = 'org.opencontainers.image.ref.name';

export interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** Opens a blob's bytes from an offset; the destination passes how much it already holds. */
export type BlobOpener = (offset: number) => Promise<Readable>;

/**
 * An OCI image layout directory (image-spec image-layout.md): `oci-layout`, `index.json` and
 * `blobs/ALG/HEX`. Blobs are written to an ingest file, verified, then renamed into place, so a
 * half-written blob is never visible; an interrupted ingest is resumed from where it stopped.
 */
export class OciLayout {
  constructor(readonly dir: string) {}

  exists(): boolean {
    return existsSync(join(this.dir, 'oci-layout'));
  }

  /** Creates the layout's skeleton when it is not there yet. */
  init(): void {
    mkdirSync(join(this.dir, 'blobs', 'sha256'), { recursive: true });
    if (!existsSync(join(this.dir, 'oci-layout'))) writeFileSync(join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (!existsSync(join(this.dir, 'index.json'))) this.writeIndex({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
  }

  readIndex(): LayoutIndex {
    try {
      const index = JSON.parse(readFileSync(join(this.dir, 'index.json'), 'utf8')) as LayoutIndex;
      index.manifests ??= [];
      return index;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new ClientError('not-found', `${this.dir} is not an OCI image layout (no index.json)`);
      }
      throw error;
    }
  }

  writeIndex(index: LayoutIndex): void {
    const temp = join(this.dir, `.index.json.${process.pid}.tmp`);
    writeFileSync(temp, JSON.stringify(index));
    renameSync(temp, join(this.dir, 'index.json'));
  }

  blobPath(digest: string): string {
    const parsed = parseDigest(digest);
    if (!parsed) throw new ClientError('invalid', `bad digest "${digest}"`);
    return join(this.dir, 'blobs', parsed.algorithm, parsed.hex);
  }

  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  blobSize(digest: string): number | undefined {
    try {
      return statSync(this.blobPath(digest)).size;
    } catch {
      return undefined;
    }
  }

  readBlob(digest: string): Buffer {
    try {
      return readFileSync(this.blobPath(digest));
    } catch {
      throw new ClientError('blob-unknown', `blob ${digest} is missing from ${this.dir}`);
    }
  }

  openBlob(digest: string, offset = 0): Readable {
    if (!this.hasBlob(digest)) throw new ClientError('blob-unknown', `blob ${digest} is missing from ${this.dir}`);
    return createReadStream(this.blobPath(digest), { start: offset });
  }

  /** Writes small content (manifests, configs) whose bytes are at hand. */
  writeBlobBytes(bytes: Buffer, digest: string): void {
    const path = this.blobPath(digest);
    if (existsSync(path)) return;
    mkdirSync(join(path, '..'), { recursive: true });
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, bytes);
    renameSync(temp, path);
  }

  /**
   * Streams a blob in, verifying size and digest. Resumes an earlier interrupted ingest of the same
   * blob by asking `open` for the bytes after those already on disk. `onBytes` sees new bytes only.
   */
  async writeBlob(descriptor: Descriptor, open: BlobOpener, onBytes?: (count: number) => void): Promise<'exists' | 'written'> {
    const path = this.blobPath(descriptor.digest);
    if (existsSync(path)) return 'exists';
    const parsed = parseDigest(descriptor.digest)!;
    const ingestDir = join(this.dir, 'ingest');
    mkdirSync(ingestDir, { recursive: true });
    mkdirSync(join(path, '..'), { recursive: true });
    const partial = join(ingestDir, `${parsed.algorithm}-${parsed.hex}.partial`);
    const hash = createHash(parsed.algorithm);
    let have = 0;
    if (existsSync(partial)) {
      have = statSync(partial).size;
      if (have > descriptor.size) {
        unlinkSync(partial);
        have = 0;
      } else {
        for await (const chunk of createReadStream(partial) as AsyncIterable<Buffer>) hash.update(chunk);
      }
    }
    const source = await open(have);
    let written = have;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        written += chunk.length;
        hash.update(chunk);
        onBytes?.(chunk.length);
        done(null, chunk);
      },
    });
    await pipeline(source, meter, createWriteStream(partial, { flags: have > 0 ? 'a' : 'w' }));
    const actual = `${parsed.algorithm}:${hash.digest('hex')}`;
    if (actual !== descriptor.digest || written !== descriptor.size) {
      unlinkSync(partial);
      throw new ClientError(
        'digest-mismatch',
        `blob ${descriptor.digest} failed verification: got ${written} bytes with digest ${actual}, expected ${descriptor.size} bytes`,
      );
    }
    const fd = openSync(partial, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(partial, path);
    return 'written';
  }

  /** The index entry named `refName`; with no name, the only entry when there is exactly one. */
  resolve(refName?: string): Descriptor | undefined {
    const manifests = this.readIndex().manifests;
    if (refName === undefined) return manifests.length === 1 ? manifests[0] : undefined;
    return manifests.find((m) => m.annotations?.[REF_NAME] === refName);
  }

  /** Points `refName` at a manifest, taking the name from any entry that had it. */
  setRef(descriptor: Descriptor, refName: string | undefined): void {
    const index = this.readIndex();
    const entry: Descriptor = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
    if (descriptor.platform) entry.platform = descriptor.platform;
    if (refName !== undefined) {
      index.manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME] !== refName);
      entry.annotations = { ...descriptor.annotations, [REF_NAME]: refName };
    } else if (index.manifests.some((m) => m.digest === descriptor.digest)) {
      return;
    }
    index.manifests.push(entry);
    this.writeIndex(index);
  }

  /** Drops the entry named `refName`; returns the descriptor it pointed at. */
  removeRef(refName: string): Descriptor | undefined {
    const index = this.readIndex();
    const found = index.manifests.find((m) => m.annotations?.[REF_NAME] === refName);
    if (!found) return undefined;
    index.manifests = index.manifests.filter((m) => m !== found);
    this.writeIndex(index);
    return found;
  }

  /** Drops every entry that points at a digest; returns the names they had. */
  removeDigest(digest: string): string[] {
    const index = this.readIndex();
    const removed = index.manifests.filter((m) => m.digest === digest);
    index.manifests = index.manifests.filter((m) => m.digest !== digest);
    this.writeIndex(index);
    return removed.map((m) => m.annotations?.[REF_NAME]).filter((n): n is string => n !== undefined);
  }

  /** Every blob reachable from the index: manifests, their children, configs, layers. */
  reachable(): Set<string> {
    const seen = new Set<string>();
    const visit = (descriptor: Descriptor) => {
      if (seen.has(descriptor.digest)) return;
      seen.add(descriptor.digest);
      if (!isManifestType(descriptor.mediaType) || !this.hasBlob(descriptor.digest)) return;
      let parsed;
      try {
        parsed = parseManifest(this.readBlob(descriptor.digest), descriptor.mediaType);
      } catch {
        return;
      }
      if (parsed.config) visit(parsed.config);
      for (const layer of parsed.layers) visit(layer);
      for (const child of parsed.manifests) visit(child);
      if (parsed.subject) seen.add(parsed.subject.digest);
    };
    for (const entry of this.readIndex().manifests) visit(entry);
    return seen;
  }

  /** Deletes blobs nothing reaches any more; returns their digests. */
  collectGarbage(): string[] {
    const keep = this.reachable();
    const deleted: string[] = [];
    const root = join(this.dir, 'blobs');
    for (const algorithm of readdirSync(root)) {
      for (const hex of readdirSync(join(root, algorithm))) {
        const digest = `${algorithm}:${hex}`;
        if (keep.has(digest) || !parseDigest(digest)) continue;
        unlinkSync(join(root, algorithm, hex));
        deleted.push(digest);
      }
    }
    return deleted;
  }
}

export function isManifestType(mediaType: string): boolean {
  return (
    mediaType === MediaType.OciManifest ||
    mediaType === MediaType.OciIndex ||
    mediaType === MediaType.DockerManifest ||
    mediaType === MediaType.DockerManifestList ||
    mediaType === MediaType.OciArtifactManifest
  );
}
