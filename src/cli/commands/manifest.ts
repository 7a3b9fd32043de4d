import type { Command } from 'commander';
import { createIndex, parseImageLocation } from '../../client/index.js';
import { parseManifest } from '../../oci/manifest.js';
import { MediaType } from '../../oci/media-types.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { withContext, type CliContext } from '../context.js';
import { TransferProgress, progressMode } from '../progress.js';

function manifestKey(mediaType: string): string {
  return mediaType === MediaType.DockerManifest ? 'SchemaV2Manifest' : 'OCIManifest';
}

async function runCreate(context: CliContext, targetText: string, sourceTexts: string[]): Promise<void> {
  const target = parseReference(targetText);
  const sources = sourceTexts.map((s) => parseReference(s));
  const progress = new TransferProgress(progressMode(context.options), 'copy');
  try {
    const index = await createIndex((registry) => context.client(registry), target, sources, { onEvent: progress.handle });
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

export function registerManifest(program: Command): void {
  const manifest = program.command('manifest').description('inspect manifests and create multi-platform indexes on a registry');

  manifest
    .command('inspect')
    .description('print the manifest (or index) a reference names, from the registry')
    .argument('<image>', 'image reference, oci:DIR[:TAG] or docker-archive:FILE')
    .option('-v, --verbose', 'each image of an index with its descriptor and manifest')
    .option('--raw', 'the exact bytes the registry served')
    .action(async (image: string, options: { verbose?: boolean; raw?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const location = parseImageLocation(image, 'registry');
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
    .description('create a multi-platform index TARGET from per-platform images and push it')
    .argument('<target>', 'the index to create, e.g. localhost:5000/app:v1')
    .argument('<sources...>', 'per-platform images (indexes contribute their children)')
    .action(async (target: string, sources: string[], _options: unknown, command: Command) =>
      withContext(command, (context) => runCreate(context, target, sources)),
    );

  const imagetools = program.command('imagetools').description('multi-platform image tools (as docker buildx imagetools)');
  imagetools
    .command('create')
    .description('create a multi-platform index from per-platform images and push it')
    .requiredOption('-t, --tag <target>', 'the index to create')
    .argument('<sources...>', 'per-platform images')
    .action(async (sources: string[], options: { tag: string }, command: Command) =>
      withContext(command, (context) => runCreate(context, options.tag, sources)),
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
