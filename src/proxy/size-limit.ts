import { isRegistryError } from '../errors/index.js';
import type { MetadataStore } from '../metadata/metadata-store.js';

/** Who the metadata (tag history, audit) says removed what the size limit evicted. */
export const EVICTION_ACTOR = 'proxy-maxsize';
const PAGE = 500;

/**
 * Keeps an upstream's cached content within `maxBytes` (`maxsize`): while the repositories under
 * `prefix` hold more, the least recently pulled manifest (never pulled: the oldest cached) is
 * removed with its tags, and the blobs no remaining manifest of its repository references are
 * unlinked. Garbage collection then frees the bytes. Manifests an immutable-tag rule protects are
 * skipped. Returns how many manifests went.
 */
export async function evictOverLimit(metadata: MetadataStore, options: { prefix: string; maxBytes: number }): Promise<number> {
  const under = options.prefix === '' ? '' : `${options.prefix}/`;
  const usage = async () => (await metadata.repositoryUsage({ ...(under ? { prefix: under } : {}), limit: 100_000 })).reduce((sum, r) => sum + r.bytes, 0);
  if ((await usage()) <= options.maxBytes) return 0;
  const candidates: Array<{ repository: string; digest: string; lastUse: number }> = [];
  for (let after: string | undefined; ; ) {
    const page = await metadata.listRepositoryGraphs({ ...(after !== undefined ? { after } : {}), limit: PAGE });
    for (const graph of page) {
      if (!graph.name.startsWith(under)) continue;
      // Children of an index go with it, not before it.
      const children = new Set(graph.manifests.flatMap((m) => m.children));
      for (const m of graph.manifests) {
        if (!children.has(m.digest)) candidates.push({ repository: graph.name, digest: m.digest, lastUse: m.pulledAt ?? m.touchedAt });
      }
    }
    if (page.length < PAGE) break;
    after = page[page.length - 1]!.name;
  }
  candidates.sort((a, b) => a.lastUse - b.lastUse);
  let evicted = 0;
  for (const candidate of candidates) {
    if ((await usage()) <= options.maxBytes) break;
    try {
      if ((await metadata.deleteManifest(candidate.repository, candidate.digest, { actor: EVICTION_ACTOR })) === undefined) continue;
    } catch (error) {
      if (isRegistryError(error) && (error.code === 'DENIED' || error.code === 'MANIFEST_UNKNOWN')) continue;
      throw error;
    }
    evicted += 1;
    await unlinkUnreferenced(metadata, candidate.repository);
  }
  return evicted;
}

/** Unlinks the blobs of a repository that none of its manifests references any more. */
async function unlinkUnreferenced(metadata: MetadataStore, repository: string): Promise<void> {
  const [graph] = await metadata.listRepositoryGraphs({ after: beforeName(repository), limit: 1 });
  if (!graph || graph.name !== repository) return;
  const referenced = new Set(graph.manifests.flatMap((m) => m.blobs));
  for (const digest of graph.linked) {
    if (!referenced.has(digest)) await metadata.unlinkBlob(repository, digest, { actor: EVICTION_ACTOR });
  }
}

/** A name that sorts just before `name`, so that a page `after` it starts with `name`. */
function beforeName(name: string): string {
  const last = name.charCodeAt(name.length - 1);
  return `${name.slice(0, -1)}${String.fromCharCode(last - 1)}\uffff`;
}
