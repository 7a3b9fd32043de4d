import type { Command } from 'commander';
import { ClientError, isClientError } from '../../client/index.js';
import { parseDuration } from '../../config/duration.js';
import { formatReference, parseReference, type ImageReference } from '../../oci/reference.js';
import { withContext } from '../context.js';
import { renderTable } from '../output.js';

/** REGISTRY/REPOSITORY:TAG, with the tag required (a history is a tag's). */
function taggedReference(text: string): ImageReference & { tag: string } {
  const ref = parseReference(text, { defaultTag: false });
  if (ref.digest !== undefined || ref.tag === undefined) throw new Error(`${text}: name a tag (REPOSITORY:TAG), not a digest`);
  return ref as ImageReference & { tag: string };
}

/**
 * `--at`: an RFC 3339 time, or a duration meaning that long ago (`2h`, `90m`, `3d`). Returned as
 * RFC 3339, so the registry never depends on this machine's idea of "now" beyond this line.
 */
export function restoreTime(text: string, now = Date.now()): string {
  const days = /^(\d+)d$/.exec(text);
  const ago = days ? Number(days[1]) * 86_400_000 : /^\d/.test(text) && !text.includes('-') ? parseDuration(text) : undefined;
  if (ago !== undefined) return new Date(now - ago).toISOString();
  if (/^\d{4}-\d\d-\d\dT/.test(text) && !Number.isNaN(Date.parse(text))) return new Date(Date.parse(text)).toISOString();
  throw new Error(`--at: "${text}" is neither an RFC 3339 time (2026-01-31T12:00:00Z) nor a duration (2h, 3d)`);
}

/** The registry's own code and message (it names the immutable rule), rather than a generic "denied". */
function withRegistryMessage(error: unknown): unknown {
  if (!isClientError(error) || error.kind === 'unauthorized') return error;
  const first = error.registryErrors[0];
  if (!first) return error;
  return new ClientError(error.kind, `${first.code}: ${first.message ?? ''}`.trim(), {
    ...(error.status !== undefined ? { status: error.status } : {}),
    registryErrors: error.registryErrors,
    ...(error.registry !== undefined ? { registry: error.registry } : {}),
  });
}

/** `wharf tag rm REF…` (also `wharf tag untag` and `wharf untag`): one tag off a registry. */
export function registerUntag(command: Command): void {
  command
    .description('remove one tag from a registry, leaving the manifest and its other tags (on registries that allow it)')
    .argument('<refs...>', 'REGISTRY/REPOSITORY:TAG')
    .action(async (texts: string[], _options: unknown, command: Command) =>
      withContext(command, async (context) => {
        for (const text of texts) {
          const ref = taggedReference(text);
          await context.client(ref.registry).deleteTag(ref.repository, ref.tag);
          if (context.options.json) process.stdout.write(JSON.stringify({ untagged: formatReference(ref) }) + '\n');
          else process.stdout.write(`Untagged: ${formatReference(ref)}\n`);
        }
      }),
    );
}

/** `wharf tag history REF` and `wharf tag restore REF --to DIGEST|--at TIME`, on a Wharf registry. */
export function registerTagHistory(tag: Command): void {
  registerUntag(tag.command('rm').alias('untag'));
  tag
    .command('history')
    .description("a tag's recorded moves on a Wharf registry, newest first: time, digest, previous digest, who")
    .argument('<ref>', 'REGISTRY/REPOSITORY:TAG')
    .option('-n, --limit <count>', 'at most this many moves (default 100)')
    .action(async (text: string, options: { limit?: string }, command: Command) =>
      withContext(command, async (context) => {
        const ref = taggedReference(text);
        const limit = options.limit === undefined ? undefined : Number(options.limit);
        if (limit !== undefined && !(Number.isSafeInteger(limit) && limit > 0)) throw new Error(`--limit: "${options.limit}" is not a positive number`);
        const history = await context
          .client(ref.registry)
          .tagHistory(ref.repository, ref.tag, limit !== undefined ? { limit } : {})
          .catch((error: unknown) => Promise.reject(withRegistryMessage(error)));
        if (context.options.json) {
          process.stdout.write(JSON.stringify({ reference: formatReference(ref), history }, null, 2) + '\n');
          return;
        }
        const rows = history.map((e) => [e.at, e.action === 'delete' ? '(deleted)' : (e.digest ?? ''), e.previous ?? '-', e.actor ?? '-']);
        process.stdout.write(renderTable(['TIME', 'DIGEST', 'PREVIOUS', 'WHO'], rows));
      }),
    );

  tag
    .command('restore')
    .description('point a tag on a Wharf registry back at a digest from its history, or where it pointed at a time (needs push rights)')
    .argument('<ref>', 'REGISTRY/REPOSITORY:TAG')
    .option('--to <digest>', 'the digest to point the tag at')
    .option('--at <time>', 'where the tag pointed at this time: RFC 3339, or a duration ago (2h, 3d)')
    .action(async (text: string, options: { to?: string; at?: string }, command: Command) =>
      withContext(command, async (context) => {
        const ref = taggedReference(text);
        if ((options.to === undefined) === (options.at === undefined)) throw new Error('pass exactly one of --to DIGEST and --at TIME');
        const target = options.to !== undefined ? { digest: options.to } : { at: restoreTime(options.at!) };
        const result = await context
          .client(ref.registry)
          .restoreTag(ref.repository, ref.tag, target)
          .catch((error: unknown) => Promise.reject(withRegistryMessage(error)));
        if (context.options.json) process.stdout.write(JSON.stringify({ reference: formatReference(ref), ...result }) + '\n');
        else if (!result.moved) process.stdout.write(`${formatReference(ref)} already points at ${result.digest}\n`);
        else process.stdout.write(`${formatReference(ref)}: ${result.previous ?? '(no tag)'} -> ${result.digest}\n`);
      }),
    );
}
