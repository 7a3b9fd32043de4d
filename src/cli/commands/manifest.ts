import type { Command } from 'commander';
import { ClientError, ManifestListStore, buildIndex, parseImageLocation, pushIndex, resolveIndexEntries, wharfHome, type IndexEntry } from '../../client/index.js';
import { parseManifest } from '../../oci/manifest.js';
import { MediaType } from '../../oci/media-types.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { withContext, type CliContext } from '../context.js';
import { TransferProgress, progressMode } from '../progress.js';

function manifestKey(mediaType: string): string {
  return mediaType === MediaType.DockerManifest ? 'SchemaV2Manifest' : 'OCIManifest';
}

/**
 * `--annotation KEY=VALUE` as buildx reads it: bare or `index:` for the index,
 * `manifest-descriptor:` for each entry's descriptor.
 */
function parseAnnotations(texts: string[]): { index: Record<string, string>; descriptor: Record<string, string> } {
  const index: Record<string, string> = {};
  const descriptor: Record<string, string> = {};
  for (const text of texts) {
    const m = /^(?:(index|manifest-descriptor):)?([^=]+)=(.*)$/s.exec(text);
    if (!m) throw new ClientError('invalid', `--annotation "${text}": write KEY=VALUE, index:KEY=VALUE or manifest-descriptor:KEY=VALUE`);
    (m[1] === 'manifest-descriptor' ? descriptor : index)[m[2]!] = m[3]!;
  }
  return { index, descriptor };
}

async function runImagetoolsCreate(context: CliContext, targetText: string, sourceTexts: string[], options: { dryRun?: boolean; append?: boolean; annotation?: string[] }): Promise<void> {
  const target = parseReference(targetText);
  const annotations = parseAnnotations(options.annotation ?? []);
  const clientFor = (registry: string) => context.client(registry);
  // --append: what the target already lists comes first, then the new images.
  const sources = [...(options.append ? [target] : []), ...sourceTexts.map((s) => parseReference(s))];
  const entries: IndexEntry[] = (await resolveIndexEntries(clientFor, sources)).map((e) =>
    Object.keys(annotations.descriptor).length > 0 ? { ...e, descriptor: { ...e.descriptor, annotations: { ...e.descriptor.annotations, ...annotations.descriptor } } } : e,
  );
  if (options.dryRun) {
    process.stdout.write(buildIndex(entries, annotations.index).bytes.toString('utf8') + '\n');
    return;
  }
  const progress = new TransferProgress(progressMode(context.options), 'copy');
  try {
    const index = await pushIndex(clientFor, target, entries, { onEvent: progress.handle, annotations: annotations.index });
    progress.finish();
    if (context.options.json) {
      process.stdout.write(JSON.stringify({ reference: formatReference(target), digest: index.digest, mediaType: index.mediaType, manifests: parseManifest(index.bytes, index.mediaType).manifests }) + '\n');
    } else {
      process.stdout.write(`${index.digest}\n`);
    }
  } finally {
    progress.finish();
  }
}

function manifestLists(): ManifestListStore {
  return new ManifestListStore(wharfHome());
}

export function registerManifest(program: Command): void {
  const manifest = program.command('manifest').description('inspect manifests; create, annotate and push multi-platform manifest lists (as docker manifest)');

  manifest
    .command('inspect')
    .description('print the manifest (or index) a reference names, from the registry')
    .argument('<image>', 'image reference, oci:DIR[:TAG] or docker-archive:FILE')
    .option('-v, --verbose', 'each image of an index with its descriptor and manifest')
    .option('--raw', 'the exact bytes the registry served')
    .action(async (image: string, options: { verbose?: boolean; raw?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const location = parseImageLocation(image, 'registry');
        // A list created locally and not pushed yet is what docker shows first, too.
        const local = location.transport === 'registry' ? manifestLists().load(location.ref) : undefined;
        if (local) {
          const index = buildIndex(local.entries);
          process.stdout.write(options.raw ? index.bytes : JSON.stringify(JSON.parse(index.bytes.toString('utf8')), null, 3) + '\n');
          return;
        }
        const source = context.openSource(location);
        try {
          const root = await source.getManifest();
          if (options.raw) {
            process.stdout.write(root.bytes);
            if (!root.bytes.subarray(-1).equals(Buffer.from('\n'))) process.stdout.write('\n');
            return;
          }
          const parsed = parseManifest(root.bytes, root.mediaType);
          if (!options.verbose) {
            process.stdout.write(JSON.stringify(JSON.parse(root.bytes.toString('utf8')), null, 3) + '\n');
            return;
          }
          const name = location.transport === 'registry' ? `${location.ref.registry}/${location.ref.repository}` : source.description;
          if (parsed.kind === 'index') {
            const entries = [];
            for (const child of parsed.manifests) {
              const childManifest = await source.getManifest(child.digest);
              entries.push({
                Ref: `${name}@${child.digest}`,
                Descriptor: child,
                [manifestKey(childManifest.mediaType)]: JSON.parse(childManifest.bytes.toString('utf8')) as unknown,
              });
            }
            process.stdout.write(JSON.stringify(entries, null, 3) + '\n');
          } else {
            const entry = {
              Ref: location.transport === 'registry' ? formatReference(location.ref) : source.description,
              Descriptor: { mediaType: root.mediaType, digest: root.digest, size: root.bytes.length },
              [manifestKey(root.mediaType)]: JSON.parse(root.bytes.toString('utf8')) as unknown,
            };
            process.stdout.write(JSON.stringify(entry, null, 3) + '\n');
          }
        } finally {
          await source.close();
        }
      }),
    );

  manifest
    .command('create')
    .description('create a manifest list locally from per-platform images (indexes give their children); "manifest push" sends it')
    .argument('<target>', 'the list to create, e.g. localhost:5000/app:v1')
    .argument('<sources...>', 'per-platform images')
    .option('-a, --amend', 'add to a list that already exists')
    .action(async (targetText: string, sourceTexts: string[], options: { amend?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const target = parseReference(targetText);
        const lists = manifestLists();
        const existing = lists.load(target);
        if (existing && !options.amend) throw new ClientError('invalid', `a manifest list ${formatReference(target)} exists already: --amend adds to it, "wharf manifest rm" drops it`);
        const added = await resolveIndexEntries((registry) => context.client(registry), sourceTexts.map((s) => parseReference(s)));
        const entries = [...(existing?.entries ?? []).filter((e) => !added.some((a) => a.descriptor.digest === e.descriptor.digest)), ...added];
        lists.save({ target, entries });
        process.stdout.write(`Created manifest list ${formatReference(target)}\n`);
      }),
    );

  manifest
    .command('annotate')
    .description("set an image's platform (and features) in a manifest list created locally")
    .argument('<target>', 'the manifest list')
    .argument('<image>', 'one of its images, as given to "manifest create" (or its digest)')
    .option('--os <os>', 'operating system')
    .option('--arch <arch>', 'architecture')
    .option('--variant <variant>', 'architecture variant')
    .option('--os-version <version>', 'operating system version')
    .option('--os-features <features>', 'operating system features, comma-separated')
    .action(async (targetText: string, imageText: string, options: { os?: string; arch?: string; variant?: string; osVersion?: string; osFeatures?: string }, command: Command) =>
      withContext(command, async () => {
        const target = parseReference(targetText);
        const lists = manifestLists();
        const list = lists.load(target);
        if (!list) throw new ClientError('not-found', `no manifest list ${formatReference(target)}: create it with "wharf manifest create"`);
        const wanted = imageText.startsWith('sha256:') ? undefined : formatReference(parseReference(imageText));
        const entry = list.entries.find((e) => e.descriptor.digest === imageText || formatReference(e.source) === wanted);
        if (!entry) throw new ClientError('not-found', `${imageText} is not in the manifest list ${formatReference(target)}`);
        const platform = { ...(entry.descriptor.platform ?? { os: '', architecture: '' }) };
        if (options.os) platform.os = options.os;
        if (options.arch) platform.architecture = options.arch;
        if (options.variant) platform.variant = options.variant;
        if (options.osVersion) platform['os.version'] = options.osVersion;
        if (options.osFeatures) platform['os.features'] = options.osFeatures.split(',');
        entry.descriptor.platform = platform;
        lists.save(list);
      }),
    );

  manifest
    .command('push')
    .description('push a manifest list created locally (its images are copied into the target repository first, mounted where they can be)')
    .argument('<target>', 'the manifest list')
    .option('-p, --purge', 'drop the local list once pushed')
    .action(async (targetText: string, options: { purge?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const target = parseReference(targetText);
        const lists = manifestLists();
        const list = lists.load(target);
        if (!list) throw new ClientError('not-found', `no manifest list ${formatReference(target)}: create it with "wharf manifest create"`);
        const progress = new TransferProgress(progressMode(context.options), 'copy');
        try {
          const index = await pushIndex((registry) => context.client(registry), target, list.entries, { onEvent: progress.handle });
          progress.finish();
          if (options.purge) lists.remove(target);
          if (context.options.json) process.stdout.write(JSON.stringify({ reference: formatReference(target), digest: index.digest, mediaType: index.mediaType }) + '\n');
          else process.stdout.write(`${index.digest}\n`);
        } finally {
          progress.finish();
        }
      }),
    );

  manifest
    .command('rm')
    .description('drop manifest lists created locally')
    .argument('<targets...>', 'the manifest lists')
    .action(async (targets: string[]) => {
      const lists = manifestLists();
      const missing = targets.filter((t) => !lists.remove(parseReference(t)));
      if (missing.length > 0) throw new ClientError('not-found', `no manifest list ${missing.join(', ')}`);
    });

  const imagetools = program.command('imagetools').description('multi-platform image tools (as docker buildx imagetools)');
  imagetools
    .command('create')
    .description('create a multi-platform index from per-platform images and push it')
    .requiredOption('-t, --tag <target>', 'the index to create')
    .argument('[sources...]', 'per-platform images')
    .option('--dry-run', 'print the index instead of pushing it')
    .option('--append', "keep the images the target already lists and add these")
    .option('--annotation <key=value>', 'annotate the index (KEY=VALUE or index:KEY=VALUE) or each entry (manifest-descriptor:KEY=VALUE); repeatable', (v: string, all: string[] = []) => [...all, v])
    .action(async (sources: string[], options: { tag: string; dryRun?: boolean; append?: boolean; annotation?: string[] }, command: Command) =>
      withContext(command, (context) => runImagetoolsCreate(context, options.tag, sources, options)),
    );
  imagetools
    .command('inspect')
    .description('print the manifest a reference names')
    .argument('<image>', 'image reference')
    .option('--raw', 'the exact bytes')
    .action(async (image: string, options: { raw?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const source = context.openSource(parseImageLocation(image, 'registry'));
        const root = await source.getManifest();
        if (options.raw) process.stdout.write(root.bytes);
        else {
          process.stdout.write(`Name:      ${source.description}\nMediaType: ${root.mediaType}\nDigest:    ${root.digest}\n`);
          const parsed = parseManifest(root.bytes, root.mediaType);
          for (const child of parsed.manifests) {
            const p = child.platform;
            process.stdout.write(`\n  Name:      ${source.description.replace(/[:@][^/]*$/, '')}@${child.digest}\n  MediaType: ${child.mediaType}\n  Platform:  ${p ? [p.os, p.architecture, p.variant].filter(Boolean).join('/') : 'unknown'}\n`);
          }
        }
      }),
    );
}
