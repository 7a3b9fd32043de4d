import type { Command } from 'commander';
import { copyImage, parseImageLocation, parsePlatform, LocalStore, type CopyEvent } from '../../client/index.js';
import { parseManifest } from '../../oci/manifest.js';
import { familiarName, formatReference } from '../../oci/reference.js';
import { withContext } from '../context.js';
import { TransferProgress, progressMode } from '../progress.js';

interface PullOptions {
  platform?: string;
  allPlatforms?: boolean;
}

export function registerPull(program: Command): void {
  program
    .command('pull')
    .description('download an image into the local store, or to oci:DIR[:TAG] / docker-archive:FILE')
    .argument('<image>', 'image reference (nginx, localhost:5000/app:v1, name@sha256:…)')
    .argument('[destination]', 'oci:DIR[:TAG] or docker-archive:FILE[:REF]; the local store by default')
    .option('--platform <os/arch[/variant]>', 'pick this platform out of a multi-arch image')
    .option('-a, --all-platforms', 'pull every platform of a multi-arch image')
    .action(async (image: string, destination: string | undefined, options: PullOptions, command: Command) =>
      withContext(command, async (context) => {
        const location = parseImageLocation(image, 'registry');
        if (location.transport !== 'registry') throw new Error(`pull reads from a registry; use "wharf copy" for ${image}`);
        const ref = location.ref;
        const target = destination ? parseImageLocation(destination, 'local') : ({ transport: 'local', ref } as const);
        const platform = options.platform ? parsePlatform(options.platform) : undefined;
        const quiet = context.options.quiet || context.options.json;
        const say = (line: string) => !quiet && process.stdout.write(`${line}\n`);
        say(`${ref.tag ?? ref.digest}: Pulling from ${familiarName(ref)}`);
        const source = context.openSource(location);
        const sink = context.openDestination(target, ref);
        const before = target.transport === 'local' ? context.store.find(ref) : undefined;
        const progress = new TransferProgress(progressMode(context.options), 'pull');
        const pulled: string[] = [];
        let written = 0;
        const onEvent = (event: CopyEvent) => {
          if (event.type === 'blob-done') {
            pulled.push(event.digest);
            if (event.outcome.status === 'written') written++;
          }
          progress.handle(event);
        };
        let result;
        try {
          result = await copyImage(source, sink, {
            ...(platform ? { platform } : {}),
            ...(options.allPlatforms ? { allPlatforms: true } : {}),
            onEvent,
          });
        } finally {
          progress.finish();
          await source.close();
          await sink.close();
        }
        if (target.transport === 'local') {
          context.store.recordBlobSources(pulled, ref.registry, ref.repository);
          // The registry's digest (the index's, when one platform was picked) is the one docker users compare.
          context.store.setRepoDigest(ref, result.sourceManifest.digest);
        }
        // As docker says: new bytes, or a name new to the store or moved, is a newer image.
        const downloaded = written > 0 || before?.descriptor.digest !== result.manifest.digest;
        say(`Digest: ${result.sourceManifest.digest}`);
        if (target.transport === 'local') {
          say(downloaded ? `Status: Downloaded newer image for ${formatReference(ref)}` : `Status: Image is up to date for ${formatReference(ref)}`);
        } else {
          say(`Status: Saved ${formatReference(ref)} to ${sink.description}`);
        }
        const parsed = parseManifest(result.manifest.bytes, result.manifest.mediaType);
        if (context.options.json) {
          process.stdout.write(
            JSON.stringify({ reference: formatReference(ref), digest: result.sourceManifest.digest, manifestDigest: result.manifest.digest, mediaType: result.manifest.mediaType, kind: parsed.kind, platform: result.platform, destination: target.transport === 'local' ? LocalStore.refName(ref) : sink.description }) + '\n',
          );
        } else {
          process.stdout.write(`${formatReference(ref)}\n`);
        }
      }),
    );
}
