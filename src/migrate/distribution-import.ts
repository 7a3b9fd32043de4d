/**
 * Imports the storage of a CNCF Distribution registry (`registry:2`, Debian's docker-registry)
 * into Wharf: its repositories, layer links, manifests (tagged or not) and tags, through the
 * same services a push goes through, so that what is imported is exactly what pushing it would
 * have made (blob states, links, manifest references, referrers, tag history, events).
 *
 * Distribution's layout, under its root directory:
 *   docker/registry/v2/blobs/<alg>/<first two hex>/<hex>/data            the bytes of every blob and manifest
 *   docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link       the repository may read that blob
 *   docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link   a manifest of the repository
 *   docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link      where a tag points
 *
 * Bytes are never copied twice: every blob file is hard-linked into Wharf's blob tree when both
 * are on one filesystem (Distribution's tree stays whole), copied once otherwise, and blobs that
 * several repositories share are imported once and linked into the others. Every blob is
 * re-hashed against its digest before it becomes visible; every manifest is checked against its
 * digest and validated as a push would be.
 *
 * Progress is kept in metadata: a repository is recorded as imported once all of it is in, and
 * blobs already present are only linked, so an import stopped anywhere (even by SIGKILL) resumes
 * with the next run and finishes with the same result.
 */
import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { isRegistryError } from '../errors/index.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { asDigest, digestParts, type Digest } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { Registry } from '../registry/registry.js';
import { PathNotFoundError } from '../storage/driver.js';

/** Where Distribution keeps everything, below its storage root directory. */
const LAYOUT_PATH = join('docker', 'registry', 'v2');

/**
 * The `docker/registry/v2` directory of a Distribution storage root, given the root itself or the
 * `v2` directory; undefined when `dir` holds no such layout.
 */
export function findDistributionStorage(dir: string): string | undefined {
  for (const candidate of [join(dir, LAYOUT_PATH), dir]) {
    if (isDirectory(join(candidate, 'repositories')) && isDirectory(join(candidate, 'blobs'))) return resolve(candidate);
  }
  return undefined;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** What happened along the way, for a log or a terminal. */
export type ImportEvent =
  | { kind: 'start'; source: string; repositories: number; alreadyImported: number }
  | { kind: 'repository'; repository: string; blobs: number; manifests: number; tags: number }
  | { kind: 'problem'; repository: string; item: string; problem: string };

export interface ImportReport {
  source: string;
  repositories: number;
  /** Repositories a previous, interrupted run had imported already (skipped). */
  skipped: number;
  /** Blob files brought in (each once, however many repositories link it). */
  blobsImported: number;
  /** Of those, how many were hard-linked rather than copied. */
  blobsLinked: number;
  /** Links of blobs already imported into more repositories. */
  blobsMounted: number;
  manifests: number;
  tags: number;
  /** Layer links whose blob Distribution no longer has (its garbage collection leaves them). */
  danglingLinks: number;
  /** Items that could not be imported (bad bytes, schema 1 manifests, missing children). */
  problems: Array<{ repository: string; item: string; problem: string }>;
}

export interface ImportOptions {
  onEvent?: (event: ImportEvent) => void;
}

/**
 * Imports the Distribution storage at `v2Directory` (see findDistributionStorage) into `registry`.
 * Resumes an earlier run of the same source. Throws only when the import cannot go on (metadata
 * or storage failing); content that cannot be imported is listed in the report's problems.
 */
export async function importDistributionStorage(registry: Registry, v2Directory: string, options: ImportOptions = {}): Promise<ImportReport> {
  const source = resolve(v2Directory);
  const metadata = registry.metadata;
  await metadata.beginStorageImport(source);
  const done = new Set((await metadata.getStorageImport(source))?.repositories ?? []);
  const repositories = await listRepositories(join(source, 'repositories'));
  const report: ImportReport = {
    source,
    repositories: repositories.length,
    skipped: 0,
    blobsImported: 0,
    blobsLinked: 0,
    blobsMounted: 0,
    manifests: 0,
    tags: 0,
    danglingLinks: 0,
    problems: [],
  };
  const emit = options.onEvent ?? (() => undefined);
  emit({ kind: 'start', source, repositories: repositories.length, alreadyImported: repositories.filter((r) => done.has(r)).length });
  for (const repository of repositories) {
    if (done.has(repository)) {
      report.skipped += 1;
      continue;
    }
    const counts = await importRepository(registry, source, repository, report, emit);
    await metadata.markRepositoryImported(source, repository);
    emit({ kind: 'repository', repository, ...counts });
  }
  await metadata.finishStorageImport(source);
  return report;
}

/** Whether the metadata holds nothing yet (no repository has a manifest). */
export async function isMetadataEmpty(metadata: MetadataStore): Promise<boolean> {
  return (await metadata.listRepositories({ limit: 1 })).length === 0;
}

/** Repository names under `repositories/`, sorted: a directory with `_manifests` or `_layers` is one (and may hold others). */
async function listRepositories(root: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string, name: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    if (name !== '' && entries.some((e) => e.isDirectory() && (e.name === '_manifests' || e.name === '_layers'))) found.push(name);
    for (const entry of entries) {
      if (!entry.isDirectory() || entry.name.startsWith('_')) continue;
      await visit(join(dir, entry.name), name === '' ? entry.name : `${name}/${entry.name}`);
    }
  };
  await visit(root, '');
  return found.sort();
}

/** Digests named by `<dir>/<alg>/<hex>/link` files (Distribution's layer links and manifest revisions). */
async function readLinks(dir: string): Promise<Digest[]> {
  const digests: Digest[] = [];
  for (const algorithm of await readdir(dir).catch(() => [] as string[])) {
    for (const hex of await readdir(join(dir, algorithm)).catch(() => [] as string[])) {
      const digest = await readLink(join(dir, algorithm, hex, 'link'));
      if (digest && digest === `${algorithm}:${hex}`) digests.push(digest);
    }
  }
  return digests.sort();
}

async function readLink(path: string): Promise<Digest | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : asDigest(text.trim());
}

function blobFile(source: string, digest: Digest): string {
  const { algorithm, hex } = digestParts(digest);
  return join(source, 'blobs', algorithm, hex.slice(0, 2), hex, 'data');
}

async function importRepository(
  registry: Registry,
  source: string,
  repository: string,
  report: ImportReport,
  emit: (event: ImportEvent) => void,
): Promise<{ blobs: number; manifests: number; tags: number }> {
  const dir = join(source, 'repositories', ...repository.split('/'));
  const problem = (item: string, what: string) => {
    report.problems.push({ repository, item, problem: what });
    emit({ kind: 'problem', repository, item, problem: what });
  };
  let blobs = 0;
  for (const digest of await readLinks(join(dir, '_layers'))) {
    try {
      const outcome = await importBlob(registry, source, repository, digest);
      if (outcome === 'missing') report.danglingLinks += 1;
      else {
        blobs += 1;
        if (outcome === 'mounted') report.blobsMounted += 1;
        else if (outcome !== 'already') {
          report.blobsImported += 1;
          if (outcome === 'linked') report.blobsLinked += 1;
        }
      }
    } catch (error) {
      if (!isRegistryError(error)) throw error;
      problem(digest, error.message);
    }
  }

  // Tags by the manifest they point at, so that each manifest is stored once with its tags.
  const tagsByDigest = new Map<string, string[]>();
  const tagsDir = join(dir, '_manifests', 'tags');
  for (const tag of (await readdir(tagsDir).catch(() => [] as string[])).sort()) {
    const digest = await readLink(join(tagsDir, tag, 'current', 'link'));
    if (!digest) continue;
    tagsByDigest.set(digest, [...(tagsByDigest.get(digest) ?? []), tag]);
  }

  // Children before the indexes that list them: store what can be stored, then try the rest again.
  const pending = new Map<Digest, { content: Buffer; mediaType: string; children: string[] }>();
  for (const digest of await readLinks(join(dir, '_manifests', 'revisions'))) {
    let content: Buffer;
    try {
      content = await readFile(blobFile(source, digest));
    } catch {
      if (tagsByDigest.has(digest)) problem(digest, 'the manifest is missing from blob storage');
      else report.danglingLinks += 1;
      continue;
    }
    const described = describeManifest(content);
    if (typeof described === 'string') {
      problem(digest, described);
      continue;
    }
    pending.set(digest, described);
  }
  let manifests = 0;
  let tags = 0;
  const stored = new Set<string>();
  for (let progress = true; pending.size > 0 && progress; ) {
    progress = false;
    for (const [digest, manifest] of pending) {
      if (manifest.children.some((child) => pending.has(child as Digest) && !stored.has(child))) continue;
      pending.delete(digest);
      progress = true;
      const tagged = tagsByDigest.get(digest) ?? [];
      try {
        await registry.manifests.put(repository, { digest }, manifest.content, manifest.mediaType, tagged);
        stored.add(digest);
        manifests += 1;
        tags += tagged.length;
      } catch (error) {
        if (!isRegistryError(error)) throw error;
        problem(digest, error.message);
      }
    }
  }
  for (const digest of pending.keys()) problem(digest, 'the index lists itself among its children');
  for (const [digest, tagged] of tagsByDigest) {
    if (!stored.has(digest) && !report.problems.some((p) => p.repository === repository && p.item === digest)) {
      for (const tag of tagged) problem(tag, `the tag points at ${digest}, which the repository does not have`);
    }
  }
  report.manifests += manifests;
  report.tags += tags;
  return { blobs, manifests, tags };
}

/**
 * One layer link: `already` when the repository links the blob, `mounted` when another repository
 * brought its bytes in, `linked`/`copied` when its file was imported now, `missing` when
 * Distribution no longer has the bytes.
 */
async function importBlob(
  registry: Registry,
  source: string,
  repository: string,
  digest: Digest,
): Promise<'already' | 'mounted' | 'linked' | 'copied' | 'missing'> {
  if ((await registry.metadata.repositoryBlobSize(repository, digest)) !== undefined) return 'already';
  if ((await registry.metadata.blobSize(digest)) !== undefined && (await registry.blobs.mount(repository, digest, undefined))) return 'mounted';
  const file = blobFile(source, digest);
  if (!existsSync(file)) return 'missing';
  try {
    return await registry.localUploads.importFile(repository, digest, file);
  } catch (error) {
    if (error instanceof PathNotFoundError) return 'missing';
    throw error;
  }
}

/** The media type a push would have sent and the children of a stored manifest, or why it cannot be imported. */
function describeManifest(content: Buffer): { content: Buffer; mediaType: string; children: string[] } | string {
  let json: { schemaVersion?: unknown; mediaType?: unknown; manifests?: unknown; config?: unknown };
  try {
    json = JSON.parse(content.toString('utf8')) as typeof json;
  } catch {
    return 'the manifest is not JSON';
  }
  if (json === null || typeof json !== 'object') return 'the manifest is not a JSON object';
  if (json.schemaVersion === 1) return 'schema 1 manifests are not supported (convert the image and push it again)';
  const children = Array.isArray(json.manifests)
    ? json.manifests.flatMap((m: unknown) => (m && typeof m === 'object' && typeof (m as { digest?: unknown }).digest === 'string' ? [(m as { digest: string }).digest] : []))
    : [];
  const mediaType =
    typeof json.mediaType === 'string' ? json.mediaType : Array.isArray(json.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
  return { content, mediaType, children };
}
