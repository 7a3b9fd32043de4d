import type { Command } from 'commander';
import { ClientError, RegistryDestination, RegistrySource, copyImage, parseImageLocation } from '../../client/index.js';
import { DOCKER_HUB, formatReference } from '../../oci/reference.js';
import { withContext } from '../context.js';
import { registerTagHistory, registerUntag } from './tag-history.js';

export function registerTag(program: Command): void {
  const tag = program
    .command('tag')
    .description('name a local image anew; with two references on one registry and no local SOURCE (or --remote), retag it there without moving blobs')
    .argument('<source>', 'image to tag')
    .argument('<target>', 'new name')
    .option('--remote', 'retag on the registry even when the image is also local')
    .action(async (sourceText: string, targetText: string, options: { remote?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        // A local image by name, else by image ID (or a unique prefix), as docker looks it up.
        const local = options.remote || sourceText.startsWith('docker://') ? undefined : context.store.findByNameOrId(sourceText.replace(/^local:/, ''));
        const target = parseImageLocation(targetText, 'local');
        if (local && (target.transport === 'local' || target.transport === 'registry')) {
          context.store.tag(target.ref, local.descriptor);
          if (context.options.json) process.stdout.write(JSON.stringify({ source: formatReference(local.ref), target: formatReference(target.ref), digest: local.descriptor.digest }) + '\n');
          return;
        }
        const source = parseImageLocation(sourceText, 'local');
        if ((source.transport !== 'local' && source.transport !== 'registry') || (target.transport !== 'local' && target.transport !== 'registry')) {
          throw new Error('tag takes image references; use "wharf copy" for layouts and archives');
        }
        // Without a local image, two names on one registry mean a remote retag; Docker Hub only on
        // request (--remote), so that `wharf tag typo x` says "No such image" as docker does.
        if (source.ref.registry !== target.ref.registry || (source.ref.registry === DOCKER_HUB && !options.remote)) {
          throw new ClientError('manifest-unknown', `No such image: ${formatReference(source.ref)}`);
        }
        // Remote retag: the manifest is put again under the new name; blobs are mounted, never moved.
        const client = context.client(source.ref.registry);
        const result = await copyImage(new RegistrySource(client, source.ref), new RegistryDestination(client, target.ref), { allPlatforms: true });
        if (context.options.json) process.stdout.write(JSON.stringify({ source: formatReference(source.ref), target: formatReference(target.ref), digest: result.manifest.digest, remote: true }) + '\n');
        else if (!context.options.quiet) process.stdout.write(`Tagged ${formatReference(target.ref)}@${result.manifest.digest}\n`);
      }),
    );
  // `wharf tag history|restore REF`: subcommands; any other first argument is an image to tag.
  registerTagHistory(tag);
  registerUntag(program.command('untag'));
}
