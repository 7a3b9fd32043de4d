import type { Command } from 'commander';
import { ClientError, LayoutSource, RegistryDestination, containersStorageHas, containersStorageSource, copyImage, parseImageLocation, type CopyEvent, type LocalImage } from '../../client/index.js';
import type { ImageReference } from '../../oci/reference.js';
import type { CliContext } from '../context.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { REF_NAME } from '../../client/oci-layout.js';
import { withContext } from '../context.js';
import { TransferProgress, progressMode } from '../progress.js';

export function registerPush(program: Command): void {
  program
    .command('push')
    .description('upload a local image (or every tag of its repository) to its registry')
    .argument('<image>', 'local image reference, e.g. localhost:5000/app:v1')
    .option('-a, --all-tags', 'push every local tag of the repository')
    .action(async (image: string, options: { allTags?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const location = parseImageLocation(image, 'local');
        if (location.transport !== 'local' && location.transport !== 'registry') throw new Error(`push sends local images; use "wharf copy" for ${image}`);
        const ref = location.ref;
        let images: LocalImage[];
        if (options.allTags) {
          const named = parseReference(image.replace(/^(local:|docker:\/\/)/, ''), { defaultTag: false });
          if (named.tag !== undefined || named.digest !== undefined) throw new Error('--all-tags takes a repository name without a tag');
          images = context.store.list().filter((i) => i.ref.registry === ref.registry && i.ref.repository === ref.repository && i.ref.tag !== undefined);
          images.sort((a, b) => a.ref.tag!.localeCompare(b.ref.tag!));
          if (images.length === 0) throw new ClientError('manifest-unknown', `No such image: no local tags of ${ref.registry}/${ref.repository}`);
        } else {
          const found = context.store.find(ref);
          if (!found) {
            // Not ours: podman's or buildah's, then (`buildah bud -t app . && wharf push app`).
            const name = formatReference(ref);
            if (location.transport === 'local' && (await containersStorageHas(name))) return pushFromContainersStorage(context, name, ref);
            throw new ClientError('manifest-unknown', `No such image: ${name}`);
          }
          images = [found];
        }
        const quiet = context.options.quiet || context.options.json;
        const say = (line: string) => !quiet && process.stdout.write(`${line}\n`);
        say(`The push refers to repository [${ref.registry}/${ref.repository}]`);
        const client = context.client(ref.registry);
        for (const local of images) {
          const source = new LayoutSource(context.store.layout, local.descriptor.annotations?.[REF_NAME], formatReference(local.ref));
          const target = { ...local.ref };
          const destination = new RegistryDestination(client, target);
          const progress = new TransferProgress(progressMode(context.options), 'push');
          const present: string[] = [];
          try {
            const result = await copyImage(source, destination, {
              allPlatforms: true,
              mountFrom: (digest) => context.store.blobSources(digest, ref.registry),
              onEvent: (event: CopyEvent) => {
                if (event.type === 'blob-done') present.push(event.digest);
                progress.handle(event);
              },
            });
            progress.finish();
            context.store.recordBlobSources(present, ref.registry, ref.repository);
            const name = local.ref.tag ?? local.ref.digest ?? 'latest';
            if (context.options.json) {
              process.stdout.write(JSON.stringify({ reference: formatReference(local.ref), digest: result.manifest.digest, size: result.manifest.bytes.length }) + '\n');
            } else {
              say(`${name}: digest: ${result.manifest.digest} size: ${result.manifest.bytes.length}`);
            }
          } finally {
            progress.finish();
            await source.close();
          }
        }
      }),
    );
}

/** Pushes an image that podman or buildah holds, read through containers-storage. */
async function pushFromContainersStorage(context: CliContext, name: string, ref: ImageReference): Promise<void> {
  const quiet = context.options.quiet || context.options.json;
  if (!quiet) process.stdout.write(`The push refers to repository [${ref.registry}/${ref.repository}] (from containers-storage)\n`);
  const source = containersStorageSource(name);
  const progress = new TransferProgress(progressMode(context.options), 'push');
  try {
    const result = await copyImage(source, new RegistryDestination(context.client(ref.registry), ref), { allPlatforms: true, onEvent: progress.handle });
    progress.finish();
    if (context.options.json) process.stdout.write(JSON.stringify({ reference: name, digest: result.manifest.digest, size: result.manifest.bytes.length }) + '\n');
    else if (!quiet) process.stdout.write(`${ref.tag ?? ref.digest ?? 'latest'}: digest: ${result.manifest.digest} size: ${result.manifest.bytes.length}\n`);
  } finally {
    progress.finish();
    await source.close();
  }
}
