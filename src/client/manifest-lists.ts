import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatReference, type ImageReference } from '../oci/reference.js';
import type { IndexEntry } from './index-builder.js';

/** A multi-platform index being put together locally (`manifest create`, `annotate`), not pushed yet. */
export interface ManifestList {
  target: ImageReference;
  entries: IndexEntry[];
}

/**
 * The manifest lists `wharf manifest create` builds before `manifest push`, as docker keeps them
 * under ~/.docker/manifests: one JSON file per target in `$WHARF_HOME/manifests`.
 */
export class ManifestListStore {
  private readonly dir: string;

  constructor(home: string) {
    this.dir = join(home, 'manifests');
  }

  private file(target: ImageReference): string {
    return join(this.dir, `${encodeURIComponent(formatReference(target))}.json`);
  }

  /** The list for `target`; undefined when none was created. */
  load(target: ImageReference): ManifestList | undefined {
    const file = this.file(target);
    if (!existsSync(file)) return undefined;
    return JSON.parse(readFileSync(file, 'utf8')) as ManifestList;
  }

  save(list: ManifestList): void {
    mkdirSync(this.dir, { recursive: true });
    const file = this.file(list.target);
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(list, null, 2));
    renameSync(temp, file);
  }

  /** Returns false when there was no such list. */
  remove(target: ImageReference): boolean {
    const file = this.file(target);
    if (!existsSync(file)) return false;
    rmSync(file);
    return true;
  }
}
