import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { ClientError } from './client-error.js';
import { formatReference, parseReference, type ImageReference } from '../oci/reference.js';
import { OciLayout, REF_NAME } from './oci-layout.js';

/** `$WHARF_HOME`, else `$XDG_DATA_HOME/wharf`, else `~/.local/share/wharf`. */
export function wharfHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WHARF_HOME) return env.WHARF_HOME;
  const data = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(data, 'wharf');
}

/**
 * Index entry annotation: the digest the registry knows a pulled image by, when it differs from
 * the stored manifest's (the index digest of a multi-arch image pulled for one platform).
 */
export const REPO_DIGEST = 'dev.wharf.repo-digest';

export interface LocalImage {
  /** The reference the image is stored under (tag, or digest for images pulled by digest). */
  ref: ImageReference;
  descriptor: Descriptor;
}

/**
 * The local image store: one OCI image layout under `$WHARF_HOME/images`, each entry named by its
 * full reference in `org.opencontainers.image.ref.name`. Also remembers which repository each blob
 * came from, so a later push to the same registry can mount it instead of uploading (docker keeps
 * the same "v2 metadata").
 */
export class LocalStore {
  readonly layout: OciLayout;
  private readonly sourcesFile: string;

  constructor(readonly home: string = wharfHome()) {
    this.layout = new OciLayout(join(home, 'images'));
    this.sourcesFile = join(home, 'blob-sources.json');
    this.sizesFile = join(home, 'layer-sizes.json');
  }

  private readonly sizesFile: string;

  /**
   * A layer's size unpacked, as docker and podman count image sizes: gzip layers are read through
   * once and the answer remembered (`layer-sizes.json`). Undefined for a layer that is not stored
   * here or is in a compression Node cannot read (zstd): callers fall back to the stored size.
   */
  async uncompressedSize(layer: Descriptor): Promise<number | undefined> {
    if (!this.layout.hasBlob(layer.digest)) return undefined;
    if (/\.tar$|tar$/.test(layer.mediaType) && !/gzip|zstd/.test(layer.mediaType)) return layer.size;
    if (!/gzip/.test(layer.mediaType)) return undefined;
    const known = this.readJson<Record<string, number>>(this.sizesFile)[layer.digest];
    if (known !== undefined) return known;
    let size = 0;
    try {
      await pipeline(
        createReadStream(this.layout.blobPath(layer.digest)),
        createGunzip(),
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            size += chunk.length;
            done();
          },
        }),
      );
    } catch {
      return undefined;
    }
    const sizes = this.readJson<Record<string, number>>(this.sizesFile);
    sizes[layer.digest] = size;
    this.writeJson(this.sizesFile, sizes);
    return size;
  }

  /** The name an image is stored under: `host/repo:tag`, or `host/repo@digest` without a tag. */
  static refName(ref: ImageReference): string {
    if (ref.tag !== undefined) return formatReference({ registry: ref.registry, repository: ref.repository, tag: ref.tag });
    return formatReference(ref);
  }

  /** The stored image a reference names; undefined when there is none. */
  find(ref: ImageReference): LocalImage | undefined {
    if (!this.layout.exists()) return undefined;
    const images = this.list();
    if (ref.digest !== undefined) {
      return images.find((i) => (i.descriptor.digest === ref.digest || LocalStore.repoDigest(i) === ref.digest) && i.ref.registry === ref.registry && i.ref.repository === ref.repository);
    }
    const name = LocalStore.refName(ref);
    return images.find((i) => LocalStore.refName(i.ref) === name);
  }

  /**
   * Finds by reference first (as docker does, a name wins), else by image ID: the full ID or a
   * unique prefix of it (or of the manifest digest). Undefined when nothing matches; throws
   * ClientError('invalid') when a prefix names several images.
   */
  findByNameOrId(text: string): LocalImage | undefined {
    if (!this.layout.exists()) return undefined;
    try {
      const byName = this.find(parseReference(text));
      if (byName) return byName;
    } catch {
      // Not a reference: it may still be an ID.
    }
    return this.findById(text)[0];
  }

  /**
   * Every stored name of the image a (prefix of an) image ID or manifest digest names: empty when
   * none; throws ClientError('invalid') when the prefix is ambiguous.
   */
  findById(text: string): LocalImage[] {
    const hex = text.replace(/^sha256:/, '');
    if (!/^[a-f0-9]{4,64}$/.test(hex)) return [];
    const matches = this.list().filter((i) => this.imageId(i).slice('sha256:'.length).startsWith(hex) || i.descriptor.digest.slice('sha256:'.length).startsWith(hex));
    const ids = new Set(matches.map((m) => this.imageId(m)));
    if (ids.size > 1) throw new ClientError('invalid', `${text} is ambiguous: it is the start of ${ids.size} image IDs; give more of it`);
    return matches;
  }

  /** The digest the image's registry names it by (an index's, when one platform was pulled from it). */
  static repoDigest(image: LocalImage): string {
    return image.descriptor.annotations?.[REPO_DIGEST] ?? image.descriptor.digest;
  }

  /** Records the registry's digest for a stored name (see REPO_DIGEST). */
  setRepoDigest(ref: ImageReference, digest: string): void {
    const index = this.layout.readIndex();
    const name = LocalStore.refName(ref);
    const entry = index.manifests.find((m) => m.annotations?.[REF_NAME] === name);
    if (!entry) return;
    if (digest === entry.digest) delete entry.annotations![REPO_DIGEST];
    else entry.annotations = { ...entry.annotations, [REPO_DIGEST]: digest };
    this.layout.writeIndex(index);
  }

  /**
   * The names worth showing: a name by digest only is left out when a tag of the same repository
   * names the same image, as docker lists one row for `name:tag` pulled again as `name@digest`.
   */
  listShown(): LocalImage[] {
    const all = this.list();
    return all.filter(
      (i) =>
        i.ref.tag !== undefined ||
        !all.some((t) => t.ref.tag !== undefined && t.ref.registry === i.ref.registry && t.ref.repository === i.ref.repository && t.descriptor.digest === i.descriptor.digest),
    );
  }

  /** Every stored name (tags and digests) of the image with this ID. */
  namesOf(id: string): LocalImage[] {
    return this.list().filter((i) => this.imageId(i) === id);
  }

  private readonly ids = new Map<string, string>();

  /**
   * The image ID docker shows: the config digest of an image manifest; an index (a multi-arch
   * image kept whole) is known by its own digest, as docker's containerd store does.
   */
  imageId(image: LocalImage): string {
    const digest = image.descriptor.digest;
    let id = this.ids.get(digest);
    if (id === undefined) {
      id = digest;
      try {
        const parsed = parseManifest(this.layout.readBlob(digest), image.descriptor.mediaType);
        if (parsed.kind === 'image' && parsed.config) id = parsed.config.digest;
      } catch {
        // A manifest we cannot read keeps its own digest as its ID.
      }
      this.ids.set(digest, id);
    }
    return id;
  }

  list(): LocalImage[] {
    if (!this.layout.exists()) return [];
    const images: LocalImage[] = [];
    for (const descriptor of this.layout.readIndex().manifests) {
      const name = descriptor.annotations?.[REF_NAME];
      if (!name) continue;
      try {
        images.push({ ref: parseReference(name, { defaultTag: false }), descriptor });
      } catch {
        // A name written by another tool that is not a reference: not ours to show.
      }
    }
    return images;
  }

  /** Names a stored manifest. */
  tag(ref: ImageReference, descriptor: Descriptor): void {
    this.layout.init();
    // A new name starts without a registry digest: it is known there only once pushed or pulled.
    const { annotations: _annotations, ...plain } = descriptor;
    this.layout.setRef(plain, LocalStore.refName(ref));
  }

  /** Drops a name; returns what it pointed at. */
  untag(ref: ImageReference): Descriptor | undefined {
    if (!this.layout.exists()) return undefined;
    return this.layout.removeRef(LocalStore.refName(ref));
  }

  /** Repositories on `registry` that a blob was pulled from or pushed to. */
  blobSources(digest: string, registry: string): string[] {
    const all = this.readSources()[digest] ?? [];
    return all.filter((s) => s.startsWith(`${registry}/`)).map((s) => s.slice(registry.length + 1));
  }

  /** Remembers that these blobs live in a registry repository. */
  recordBlobSources(digests: Iterable<string>, registry: string, repository: string): void {
    const sources = this.readSources();
    const where = `${registry}/${repository}`;
    let changed = false;
    for (const digest of digests) {
      const list = (sources[digest] ??= []);
      if (list.includes(where)) continue;
      list.push(where);
      if (list.length > 8) list.shift();
      changed = true;
    }
    if (!changed) return;
    this.writeJson(this.sourcesFile, sources);
  }

  private readSources(): Record<string, string[]> {
    return this.readJson<Record<string, string[]>>(this.sourcesFile);
  }

  private readJson<T extends object>(file: string): T {
    if (!existsSync(file)) return {} as T;
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as T;
    } catch {
      return {} as T;
    }
  }

  /** Written whole and renamed into place, so a reader never sees half a file. */
  private writeJson(file: string, value: unknown): void {
    mkdirSync(this.home, { recursive: true });
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(value));
    renameSync(temp, file);
  }
}
