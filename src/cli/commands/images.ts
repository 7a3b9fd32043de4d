import type { Command } from 'commander';
import { ClientError, type ImageConfig } from '../../client/index.js';
import { parseManifest } from '../../oci/manifest.js';
import { familiarName, formatReference, parseReference } from '../../oci/reference.js';
import { LocalStore, type LocalImage } from '../../client/local-store.js';
import { isImageIdLike } from '../../client/index.js';
import { withContext } from '../context.js';
import { formatSize, renderFormat, renderTable, timeAgo } from '../output.js';
import { shortDigest } from '../progress.js';

/** Column headers for `--format 'table …'`, as docker names them. */
const IMAGE_HEADERS = { Repository: 'REPOSITORY', Tag: 'TAG', Digest: 'DIGEST', ID: 'IMAGE ID', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE' };

interface ImageRow {
  Repository: string;
  Tag: string;
  Digest: string;
  ID: string;
  CreatedAt: string;
  CreatedSince: string;
  Size: string;
  SizeBytes: number;
}

/**
 * Creation time and size of a stored image (an index: its stored children's), the size counted
 * unpacked as docker and podman count it (the stored size for a layer that cannot be unpacked).
 */
async function describe(store: LocalStore, digest: string, mediaType: string): Promise<{ id: string; created?: string; size: number }> {
  const parsed = parseManifest(store.layout.readBlob(digest), mediaType);
  if (parsed.kind === 'index') {
    let size = 0;
    let created: string | undefined;
    for (const child of parsed.manifests) {
      if (!store.layout.hasBlob(child.digest)) continue;
      const inner = await describe(store, child.digest, child.mediaType);
      size += inner.size;
      created ??= inner.created;
    }
    return { id: digest, size, ...(created ? { created } : {}) };
  }
  let size = 0;
  for (const layer of parsed.layers) size += (await store.uncompressedSize(layer)) ?? layer.size;
  let created: string | undefined;
  if (parsed.config && store.layout.hasBlob(parsed.config.digest)) {
    created = (JSON.parse(store.layout.readBlob(parsed.config.digest).toString('utf8')) as ImageConfig).created;
  }
  return { id: parsed.config?.digest ?? digest, size, ...(created ? { created } : {}) };
}

export function registerImages(program: Command): void {
  program
    .command('images')
    .alias('ls')
    .description('list images in the local store')
    .argument('[repository]', 'only this repository')
    .option('--digests', 'show digests')
    .option('--no-trunc', "don't truncate IDs")
    .option('--format <format>', 'table (default), json, or a Go template per image')
    .option('-q, --quiet', 'only image IDs')
    .action(async (repository: string | undefined, options: { digests?: boolean; trunc: boolean; format?: string; quiet?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const filter = repository ? parseReference(repository, { defaultTag: false }) : undefined;
        const rows: ImageRow[] = [];
        for (const image of context.store.listShown()) {
          if (filter && (filter.registry !== image.ref.registry || filter.repository !== image.ref.repository)) continue;
          if (filter?.tag && filter.tag !== image.ref.tag) continue;
          const info = await describe(context.store, image.descriptor.digest, image.descriptor.mediaType);
          info.id = context.store.imageId(image);
          rows.push({
            Repository: familiarName(image.ref),
            Tag: image.ref.tag ?? '<none>',
            Digest: LocalStore.repoDigest(image),
            ID: options.trunc ? shortDigest(info.id) : info.id,
            CreatedAt: info.created ?? '',
            CreatedSince: timeAgo(info.created),
            Size: formatSize(info.size),
            SizeBytes: info.size,
          });
        }
        rows.sort((a, b) => a.Repository.localeCompare(b.Repository) || a.Tag.localeCompare(b.Tag));
        const format = options.format ?? (context.options.json ? 'json' : 'table');
        // -q may be taken by the program-wide --quiet; either way it means "IDs only" here.
        if (options.quiet || context.options.quiet) {
          for (const id of new Set(rows.map((r) => r.ID))) process.stdout.write(`${id}\n`);
        } else if (format === 'json') {
          process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        } else if (format === 'table') {
          const headers = ['REPOSITORY', 'TAG', ...(options.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
          const cells = rows.map((r) => [r.Repository, r.Tag, ...(options.digests ? [r.Digest] : []), r.ID, r.CreatedSince, r.Size]);
          process.stdout.write(renderTable(headers, cells));
        } else {
          process.stdout.write(renderFormat(format, rows, IMAGE_HEADERS));
        }
      }),
    );

  program
    .command('rmi')
    .description('remove images from the local store (blobs nothing else uses are deleted)')
    .argument('<images...>', 'references or image IDs (or unique prefixes of them)')
    .option('-f, --force', 'remove every name of an image given by ID, even across repositories')
    .action(async (images: string[], options: { force?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        let failed = false;
        const store = context.store;
        for (const text of images) {
          let named: LocalImage | undefined;
          try {
            named = store.find(parseReference(text));
          } catch {
            named = undefined;
          }
          let removed: string[];
          if (named) {
            // A name removes that name only, as `docker rmi name:tag` does.
            store.untag(named.ref);
            removed = [formatReference(named.ref)];
          } else {
            let all: LocalImage[];
            try {
              all = store.findById(text);
            } catch (error) {
              process.stderr.write(`Error: ${(error as Error).message}\n`);
              failed = true;
              continue;
            }
            if (all.length === 0) {
              process.stderr.write(`Error: No such image: ${text}\n`);
              failed = true;
              continue;
            }
            const repositories = new Set(all.map((i) => `${i.ref.registry}/${i.ref.repository}`));
            if (repositories.size > 1 && !options.force) {
              const id = shortDigest(store.imageId(all[0]!));
              process.stderr.write(`Error: conflict: unable to delete ${id} (must be forced) - image is referenced in multiple repositories\n`);
              failed = true;
              continue;
            }
            removed = [];
            for (const image of all) {
              store.untag(image.ref);
              removed.push(formatReference(image.ref));
            }
          }
          for (const name of removed) process.stdout.write(`Untagged: ${familiarize(name)}\n`);
          for (const digest of store.layout.collectGarbage()) process.stdout.write(`Deleted: ${digest}\n`);
        }
        if (failed) throw new ClientError('not-found', 'some images could not be removed');
      }),
    );
}

function familiarize(name: string): string {
  try {
    const ref = parseReference(name, { defaultTag: false });
    return `${familiarName(ref)}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
  } catch {
    return name;
  }
}
