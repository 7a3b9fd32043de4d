import type { Command } from 'commander';
import { ClientError, isClientError, parseImageLocation, type RegistryClient } from '../../client/index.js';
import { parseManifest } from '../../oci/manifest.js';
import { isDigest } from '../../oci/digest.js';
import { formatReference, parseReference } from '../../oci/reference.js';
import { normaliseServer } from './login.js';
import { withContext } from '../context.js';

export function registerRegistryCommands(program: Command): void {
  program
    .command('tags')
    .description("list a repository's tags")
    .argument('<repository>', 'e.g. localhost:5000/app')
    .action(async (repository: string, _options: unknown, command: Command) =>
      withContext(command, async (context) => {
        const ref = parseReference(repository.replace(/^docker:\/\//, ''), { defaultTag: false });
        const tags: string[] = [];
        for await (const tag of context.client(ref.registry).tags(ref.repository)) {
          if (context.options.json) tags.push(tag);
          else process.stdout.write(`${tag}\n`);
        }
        if (context.options.json) process.stdout.write(JSON.stringify(tags) + '\n');
      }),
    );

  program
    .command('catalog')
    .description("list a registry's repositories")
    .argument('<registry>', 'registry host, e.g. localhost:5000')
    .option('-n, --limit <n>', 'at most this many', (v) => Number.parseInt(v, 10))
    .action(async (registry: string, options: { limit?: number }, command: Command) =>
      withContext(command, async (context) => {
        const host = normaliseServer(registry);
        const names: string[] = [];
        for await (const name of context.client(host).catalog()) {
          if (options.limit !== undefined && names.length >= options.limit) break;
          names.push(name);
          if (!context.options.json) process.stdout.write(`${name}\n`);
        }
        if (context.options.json) process.stdout.write(JSON.stringify(names) + '\n');
      }),
    );

  program
    .command('digest')
    .description('print the digest of the manifest a reference names (asks the registry)')
    .argument('<image>', 'image reference, oci:DIR[:TAG], docker-archive:FILE or local:REF')
    .action(async (image: string, _options: unknown, command: Command) =>
      withContext(command, async (context) => {
        const location = parseImageLocation(image, 'registry');
        if (location.transport === 'registry') {
          const { ref } = location;
          const head = await context.client(ref.registry).headManifest(ref.repository, ref.digest ?? ref.tag ?? 'latest');
          if (!head) throw new ClientError('manifest-unknown', `manifest unknown: ${formatReference(ref)}`, { registry: ref.registry });
          process.stdout.write(`${head.digest}\n`);
          return;
        }
        const source = context.openSource(location);
        try {
          process.stdout.write(`${(await source.getManifest()).digest}\n`);
        } finally {
          await source.close();
        }
      }),
    );

  program
    .command('delete')
    .description('delete a manifest (and so every tag on it) from a registry; "wharf tag rm" removes one tag')
    .argument('<image>', 'image reference (tag or digest)')
    .option('-f, --force', 'delete even a manifest that an index in the repository still lists')
    .action(async (image: string, options: { force?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const ref = parseReference(image.replace(/^docker:\/\//, ''));
        const client = context.client(ref.registry);
        let digest = ref.digest;
        if (!digest) {
          const head = await client.headManifest(ref.repository, ref.tag ?? 'latest');
          if (!head) throw new ClientError('manifest-unknown', `manifest unknown: ${formatReference(ref)}`, { registry: ref.registry });
          digest = head.digest;
        }
        if (!isDigest(digest)) throw new Error(`bad digest ${digest}`);
        const { tagsOnIt, parents } = await manifestUsers(context.client(ref.registry), ref.repository, digest);
        if (parents.length > 0 && !options.force) {
          const which = parents.map((p) => `${p.digest} (${p.tags.join(', ')})`).join('; ');
          throw new ClientError('denied', `refusing to delete ${ref.registry}/${ref.repository}@${digest}: the index ${which} in the repository lists it; --force deletes it anyway`);
        }
        await client.deleteManifest(ref.repository, digest);
        const others = tagsOnIt.filter((t) => t !== ref.tag);
        if (context.options.json) {
          process.stdout.write(JSON.stringify({ deleted: `${ref.registry}/${ref.repository}@${digest}`, tags: tagsOnIt }) + '\n');
          return;
        }
        process.stdout.write(`Deleted: ${ref.registry}/${ref.repository}@${digest}\n`);
        // Deleting by tag deletes the manifest: say which other tags went with it.
        if (others.length > 0) process.stdout.write(`Also removed with it, the tags: ${others.join(', ')}\n`);
      }),
    );
}

/**
 * Who uses a manifest in its repository: the tags that point at it, and the tagged indexes that
 * list it (untagged indexes cannot be found through the API, so they are not seen).
 */
async function manifestUsers(client: RegistryClient, repository: string, digest: string): Promise<{ tagsOnIt: string[]; parents: Array<{ digest: string; tags: string[] }> }> {
  const tagsOnIt: string[] = [];
  const parents = new Map<string, string[]>();
  for await (const tag of client.tags(repository)) {
    const manifest = await client.getManifest(repository, tag).catch((error: unknown) => {
      if (isClientError(error, 'manifest-unknown')) return undefined;
      throw error;
    });
    if (!manifest) continue;
    if (manifest.digest === digest) {
      tagsOnIt.push(tag);
      continue;
    }
    const parsed = parseManifest(manifest.bytes, manifest.mediaType);
    if (parsed.kind === 'index' && parsed.manifests.some((m) => m.digest === digest)) parents.set(manifest.digest, [...(parents.get(manifest.digest) ?? []), tag]);
  }
  return { tagsOnIt, parents: [...parents].map(([d, tags]) => ({ digest: d, tags })) };
}
