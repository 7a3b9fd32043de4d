import type { Command } from 'commander';
import { LocalStore, parsePlatform, resolveImage, verifyImage } from '../../client/index.js';
import { familiarName } from '../../oci/reference.js';
import { withContext } from '../context.js';
import { renderFormat } from '../output.js';
import { collect, verifiersFromFiles } from '../signing-keys.js';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('show an image: digest, repo digests, platform and config (local, else remote)')
    .argument('<image...>', 'image references, oci:DIR[:TAG] or docker-archive:FILE')
    .option('-f, --format <template>', 'a Go template, e.g. {{.Id}} or {{index .RepoDigests 0}}')
    .option('--platform <os/arch[/variant]>', 'which image of a multi-arch index')
    .option('--remote', 'read the registry even when the image is local')
    .option('--key <file>', "check the image's signatures against this public key (repeatable)", collect)
    .action(async (images: string[], options: { format?: string; platform?: string; remote?: boolean; key?: string[] }, command: Command) =>
      withContext(command, async (context) => {
        const verifiers = options.key ? verifiersFromFiles(options.key) : undefined;
        const results: Array<Record<string, unknown>> = [];
        for (const image of images) {
          const { source, location } = context.openNamedSource(image, options.remote ? { remote: true } : {});
          try {
            const resolved = await resolveImage(source, options.platform ? { platform: parsePlatform(options.platform) } : {});
            const ref = location.transport === 'registry' || location.transport === 'local' ? location.ref : undefined;
            let repoTags = ref?.tag ? [`${familiarName(ref)}:${ref.tag}`] : [];
            let repoDigests = ref ? [`${familiarName(ref)}@${resolved.root.digest}`] : [];
            if (location.transport === 'local') {
              // Every local name of the image, as docker lists them; digests as the registry knows them.
              const store = context.store;
              const names = store.namesOf(store.imageId(store.find(location.ref)!));
              repoTags = [...new Set(names.filter((n) => n.ref.tag !== undefined).map((n) => `${familiarName(n.ref)}:${n.ref.tag}`))].sort();
              repoDigests = [...new Set(names.map((n) => `${familiarName(n.ref)}@${LocalStore.repoDigest(n)}`))].sort();
            }
            const { config } = resolved;
            const size = resolved.parsed.layers.reduce((sum, l) => sum + l.size, 0);
            results.push({
              Id: resolved.configDescriptor.digest,
              RepoTags: repoTags,
              RepoDigests: repoDigests,
              Created: config.created ?? '',
              Author: config.author ?? '',
              Architecture: config.architecture ?? '',
              Os: config.os ?? '',
              ...(config.variant ? { Variant: config.variant } : {}),
              Config: config.config ?? {},
              RootFS: { Type: config.rootfs?.type ?? 'layers', Layers: config.rootfs?.diff_ids ?? [] },
              Size: size,
              Digest: resolved.root.digest,
              Descriptor: { mediaType: resolved.manifest.mediaType, digest: resolved.manifest.digest, size: resolved.manifest.bytes.length },
              Platform: { os: config.os ?? '', architecture: config.architecture ?? '', ...(config.variant ? { variant: config.variant } : {}) },
              Source: source.description,
              ...(verifiers && ref ? { Signatures: await signatureSummary(context.client(ref.registry), ref.repository, resolved.root.digest, verifiers) } : {}),
            });
          } finally {
            await source.close();
          }
        }
        if (options.format) {
          process.stdout.write(renderFormat(options.format, results));
        } else {
          process.stdout.write(JSON.stringify(results, null, 4) + '\n');
        }
      }),
    );
}

/** Whether the image is signed by one of the keys, and by which (the registry's signatures, checked here). */
export async function signatureSummary(
  client: Parameters<typeof verifyImage>[0],
  repository: string,
  digest: string,
  verifiers: Parameters<typeof verifyImage>[3],
): Promise<{ Signed: boolean; KeyIds: string[]; Found: number; Problems: string[] }> {
  const result = await verifyImage(client, repository, digest, verifiers);
  return { Signed: result.verified.length > 0, KeyIds: [...new Set(result.verified.map((v) => v.identity))], Found: result.found, Problems: result.rejected };
}
