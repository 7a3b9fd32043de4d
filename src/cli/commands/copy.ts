import type { Command } from 'commander';
import { copyImage, formatPlatform, parseImageLocation, parsePlatform } from '../../client/index.js';
import { withContext } from '../context.js';
import { TransferProgress, progressMode } from '../progress.js';

export function registerCopy(program: Command): void {
  program
    .command('copy')
    .alias('cp')
    .description('copy an image between registries, OCI layouts (oci:DIR[:TAG]), docker archives (docker-archive:FILE[:REF]) and the local store (local:REF)')
    .argument('<source>', 'where the image is')
    .argument('<destination>', 'where it goes')
    .option('--platform <os/arch[/variant]>', 'copy only this platform out of a multi-arch image')
    .option('-a, --all-platforms', 'copy a multi-arch image whole (the default, as crane and regctl do)')
    .action(async (sourceText: string, destinationText: string, options: { platform?: string; allPlatforms?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const from = parseImageLocation(sourceText, 'registry');
        const to = parseImageLocation(destinationText, 'registry');
        const source = context.openSource(from);
        const destination = context.openDestination(to, from.transport === 'registry' || from.transport === 'local' ? from.ref : undefined);
        const progress = new TransferProgress(progressMode(context.options), 'copy');
        try {
          const result = await copyImage(source, destination, {
            // A multi-arch image is copied whole unless one platform is asked for (or the
            // destination is a docker-archive, which holds one image: the host's, as docker save).
            ...(options.platform && !options.allPlatforms
              ? { platform: parsePlatform(options.platform) }
              : to.transport === 'docker-archive' && !options.allPlatforms
                ? {}
                : { allPlatforms: true }),
            onEvent: progress.handle,
          });
          progress.finish();
          if (context.options.json) {
            process.stdout.write(JSON.stringify({ source: source.description, destination: destination.description, digest: result.manifest.digest, mediaType: result.manifest.mediaType, ...(result.platform ? { platform: formatPlatform(result.platform), sourceDigest: result.sourceManifest.digest } : {}) }) + '\n');
          } else if (!context.options.quiet) {
            const picked = result.platform ? ` (only ${formatPlatform(result.platform)} of the multi-arch image ${result.sourceManifest.digest})` : '';
            process.stdout.write(`Copied ${source.description} to ${destination.description}${picked}\nDigest: ${result.manifest.digest}\n`);
          }
        } finally {
          progress.finish();
          await source.close();
          await destination.close();
        }
      }),
    );
}
