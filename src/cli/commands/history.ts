import type { Command } from 'commander';
import { parsePlatform, resolveImage } from '../../client/index.js';
import { withContext } from '../context.js';
import { formatSize, renderFormat, renderTable, timeAgo, truncate } from '../output.js';
import { shortDigest } from '../progress.js';
import { collect, verifiersFromFiles } from '../signing-keys.js';
import { signatureSummary } from './inspect.js';

/** Column headers for `--format 'table …'`, as docker names them. */
const HISTORY_HEADERS = { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' };

interface HistoryRow {
  ID: string;
  CreatedAt: string;
  CreatedSince: string;
  CreatedBy: string;
  Size: string;
  /** Bytes of the layer this step added: unpacked for a local image, as stored for a remote one. */
  SizeBytes: number;
  Comment: string;
  EmptyLayer: boolean;
}

export function registerHistory(program: Command): void {
  program
    .command('history')
    .description("show an image's history (local, or remote without pulling layers)")
    .argument('<image>', 'image reference, oci:DIR[:TAG] or docker-archive:FILE')
    .option('--no-trunc', "don't truncate output")
    // Docker's boolean flag, written -H=false, --human=false or -H false.
    .option('-H, --human [bool]', 'print sizes and dates in human readable format (-H=false for bytes and ISO dates)', (v: string) => v.replace(/^=/, ''), 'true')
    .option('--format <format>', 'table (default), json, or a Go template per row')
    .option('--platform <os/arch[/variant]>', 'which image of a multi-arch index')
    .option('--remote', 'read the registry even when the image is local')
    .option('--key <file>', "say on stderr whether the image is signed by this public key (repeatable)", collect)
    .action(async (image: string, options: { trunc: boolean; human: string | boolean; format?: string; platform?: string; remote?: boolean; key?: string[] }, command: Command) =>
      withContext(command, async (context) => {
        const { source, location } = context.openNamedSource(image, options.remote ? { remote: true } : {});
        try {
          const resolved = await resolveImage(source, options.platform ? { platform: parsePlatform(options.platform) } : {});
          if (options.key && (location.transport === 'registry' || location.transport === 'local')) {
            const ref = location.ref;
            const summary = await signatureSummary(context.client(ref.registry), ref.repository, resolved.root.digest, verifiersFromFiles(options.key));
            process.stderr.write(
              summary.Signed ? `${resolved.root.digest}: signed by key ${summary.KeyIds.join(', ')}\n` : `${resolved.root.digest}: not signed by the given key (${summary.Found} signature${summary.Found === 1 ? '' : 's'} found)\n`,
            );
          }
          const human = !['false', '0', 'f', 'F', 'FALSE', 'False'].includes(String(options.human));
          // A local image's layers are counted unpacked, as docker does; a remote one's as stored.
          const sizeOf = async (layer: (typeof resolved.parsed.layers)[number] | undefined) =>
            layer === undefined ? 0 : location.transport === 'local' ? ((await context.store.uncompressedSize(layer)) ?? layer.size) : layer.size;
          const layers = [...resolved.parsed.layers];
          const history = resolved.config.history ?? [];
          const rows: HistoryRow[] = [];
          let layerIndex = 0;
          for (const entry of history) {
            const empty = entry.empty_layer === true;
            const size = empty ? 0 : await sizeOf(layers[layerIndex++]);
            rows.push({
              ID: '<missing>',
              CreatedAt: entry.created ?? '',
              CreatedSince: timeAgo(entry.created),
              CreatedBy: entry.created_by ?? '',
              Size: human ? formatSize(size) : String(size),
              SizeBytes: size,
              Comment: entry.comment ?? '',
              EmptyLayer: empty,
            });
          }
          rows.reverse();
          if (rows[0]) rows[0].ID = options.trunc ? shortDigest(resolved.configDescriptor.digest) : resolved.configDescriptor.digest;
          const format = options.format ?? (context.options.json ? 'json' : 'table');
          if (format === 'json') {
            process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
          } else if (format === 'table') {
            const cells = rows.map((r) => [
              r.ID,
              human ? r.CreatedSince : r.CreatedAt,
              options.trunc ? truncate(r.CreatedBy, 45) : r.CreatedBy,
              r.Size,
              options.trunc ? truncate(r.Comment, 45) : r.Comment,
            ]);
            process.stdout.write(renderTable(['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT'], cells));
          } else {
            process.stdout.write(renderFormat(format, rows, HISTORY_HEADERS));
          }
        } finally {
          await source.close();
        }
      }),
    );
}
