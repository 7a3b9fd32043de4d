import type { Command } from 'commander';
import type { ConfigFlags } from '../config/config.js';
import { runGarbageCollection } from '../server/maintenance.js';
import { loadServerConfig } from './server-config.js';

interface GarbageCollectOptions {
  data?: string;
  dryRun?: boolean;
  deleteUntagged?: boolean;
  json?: boolean;
}

/**
 * `wharf garbage-collect [config.yml] [--dry-run|-d] [--delete-untagged|-m] [--json]`: the
 * command `registry garbage-collect` is, with the same flags and report lines, but safe while
 * `wharf serve` runs on the same data directory (see docs/garbage-collection.md). Exit status:
 * 0 done, 1 failed (another collection running, storage errors), 2 invalid configuration.
 */
export function registerGarbageCollect(program: Command): void {
  program
    .command('garbage-collect')
    .description('delete blobs (and, with -m, manifests) that nothing references; safe while serving')
    .argument('[config]', "the registry's config.yml (the same as for wharf serve)")
    .option('--data <dir>', 'storage root (storage.filesystem.rootdirectory), default ./data')
    .option('-d, --dry-run', 'report what would be deleted; delete nothing')
    .option('-m, --delete-untagged', 'also delete manifests that no tag keeps (nor a tagged index, nor a kept referrer)')
    .option('--json', 'print the report as JSON (with the bytes freed) instead of the lines')
    .action(async (file: string | undefined, options: GarbageCollectOptions, command: Command) => {
      // The sweep deletes blob files many at a time, each waiting on the filesystem's journal;
      // more threads than libuv's 4 overlap those waits. Read when the pool first starts, which
      // has not happened yet in this process.
      process.env.UV_THREADPOOL_SIZE ??= '16';
      const flags: ConfigFlags = {};
      if (options.data !== undefined) flags.data = options.data;
      const { config } = loadServerConfig(file, flags);
      const globals = command.optsWithGlobals<{ json?: boolean; quiet?: boolean }>();
      const json = options.json === true || globals.json === true;
      const report = await runGarbageCollection(config, {
        dryRun: options.dryRun === true,
        deleteUntagged: options.deleteUntagged === true,
        ...(json || globals.quiet ? {} : { onLine: (line: string) => process.stdout.write(`${line}\n`) }),
      });
      if (json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const { deleted, young, uploads } = report;
      const lines: string[] = [];
      if (report.eligibleRepositories.length > 0 || deleted.repositories > 0) lines.push(`${report.eligibleRepositories.length} repositories eligible for deletion`);
      if (report.awaitingSweep > 0) lines.push(`${report.awaitingSweep} blobs marked for deletion: hidden now, deleted by a collection ${seconds(report.delayMs)} after the mark unless used again`);
      if (young.blobs + young.manifests > 0) lines.push(`${young.blobs} blobs and ${young.manifests} manifests kept: touched within the last ${seconds(report.delayMs)}`);
      if (report.history.manifests > 0) lines.push(`${report.history.manifests} untagged manifests kept: in a tag's history within the last ${seconds(report.history.retentionMs)} (history.retention)`);
      if (uploads.sessions + uploads.orphans > 0) lines.push(`${uploads.sessions} expired upload sessions and ${uploads.orphans} orphaned upload directories ${report.dryRun ? 'found' : 'removed'}`);
      const verb = report.dryRun ? 'would free' : 'freed';
      lines.push(`${verb} ${report.bytesFreed} bytes in ${seconds(report.durationMs)}${report.dryRun ? ' (dry run: nothing deleted)' : ''}`);
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3).replace(/\.?0+$/, '')}s`;
}
