import type { Command } from 'commander';
import type { ConfigFlags } from '../config/config.js';
import { runIntegrityCheck } from '../server/maintenance.js';
import { loadServerConfig } from './server-config.js';

interface FsckOptions {
  data?: string;
  dryRun?: boolean;
  json?: boolean;
}

/**
 * `wharf fsck [config.yml]`: hashes every stored blob again and quarantines those whose bytes do
 * not match their digest. Exit status: 0 all good, 1 problems found (and, without --dry-run,
 * quarantined), 2 invalid configuration.
 */
export function registerFsck(program: Command): void {
  program
    .command('fsck')
    .description('check every stored blob against its digest; quarantine and report the ones that do not match (safe while serving)')
    .argument('[config]', 'the registry\'s config.yml (the same as for wharf serve)')
    .option('--data <dir>', 'storage root (storage.filesystem.rootdirectory), default ./data')
    .option('-d, --dry-run', 'report only: move nothing, mark nothing')
    .option('--json', 'print the report as JSON')
    .action(async (file: string | undefined, options: FsckOptions, command: Command) => {
      const flags: ConfigFlags = {};
      if (options.data !== undefined) flags.data = options.data;
      const { config } = loadServerConfig(file, flags);
      const json = options.json === true || command.optsWithGlobals<{ json?: boolean }>().json === true;
      const dryRun = options.dryRun === true;
      const report = await runIntegrityCheck(config, {
        dryRun,
        onFinding: (finding) => {
          if (json) return;
          if (finding.kind === 'missing') {
            process.stdout.write(`blob ${finding.digest}: missing from storage${dryRun ? '' : '; marked quarantined'}\n`);
          } else {
            const { blob } = finding;
            const where = blob.quarantinedTo ? `; quarantined to ${blob.quarantinedTo}` : '';
            process.stdout.write(`blob ${blob.digest}: corrupt, its ${blob.size} bytes hash to ${blob.actual}${where}\n`);
          }
        },
      });
      if (json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        process.stdout.write(
          `${report.checked} blobs checked (${report.bytes} bytes): ${report.corrupt.length} corrupt, ${report.missing.length} missing, ` +
            `${report.unrecorded} files without a record${dryRun ? ' (dry run: nothing changed)' : ''}\n`,
        );
      }
      process.exitCode = report.corrupt.length + report.missing.length > 0 ? 1 : 0;
    });
}
