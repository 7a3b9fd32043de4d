import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Descriptor } from '../oci/manifest.js';
import { formatReference, parseReference, type ImageReference } from '../oci/reference.js';
import { OciLayout, REF_NAME } from './oci-layout.js';

/** `$WHARF_HOME`, else `$XDG_DATA_HOME/wharf`, else `~/.local/share/wharf`. */
export function wharfHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.WHARF_HOME) return env.WHARF_HOME;
  const data = env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share');
  return join(data, 'wharf');
}

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
      return images.find((i) => i.descriptor.digest === ref.digest && i.ref.registry === ref.registry && i.ref.repository === ref.repository);
    }
    const name = LocalStore.refName(ref);
    return images.find((i) => LocalStore.refName(i.ref) === name);
  }

  /** Finds by reference, or by (a unique prefix of) an image digest as docker accepts IDs. */
  findByNameOrId(text: string): LocalImage | undefined {
    if (!this.layout.exists()) return undefined;
    const id = text.replace(/^sha256:/, '');
    if (/^[a-f0-9]{6,64}$/.test(id)) {
      const matches = this.list().filter((i) => i.descriptor.digest.slice('sha256:'.length).startsWith(id));
      const digests = new Set(matches.map((m) => m.descriptor.digest));
      if (digests.size === 1) return matches[0];
    }
    try {
      return this.find(parseReference(text));
    } catch {
      return undefined;
    }
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
    this.layout.setRef(descriptor, LocalStore.refName(ref));
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
    mkdirSync(this.home, { recursive: true });
    const temp = `${this.sourcesFile}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(sources));
    renameSync(temp, this.sourcesFile);
  }

  private readSources(): Record<string, string[]> {
    if (!existsSync(this.sourcesFile)) return {};
    try {
      return JSON.parse(readFileSync(this.sourcesFile, 'utf8')) as Record<string, string[]>;
    } catch {
      return {};
    }
  }
}
