import type { Command } from 'commander';
import type { ConfigFlags } from '../config/config.js';
import { runStorageImport } from '../server/maintenance.js';
import { loadServerConfig } from './server-config.js';

interface MigrateOptions {
  data?: string;
  json?: boolean;
}

/**
 * `wharf migrate FROM_DIR [config.yml]`: imports a registry:2 storage root into Wharf's storage.
 * Exit status: 0 everything imported, 1 some content could not be (listed), 2 invalid configuration.
 */
export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('import a registry:2 storage root (docker/registry/v2/...): repositories, tags, manifests and layers, every digest verified; resumable')
    .argument('<from>', 'the registry:2 storage root directory (its storage.filesystem.rootdirectory)')
    .argument('[config]', "Wharf's config.yml (the same as for wharf serve)")
    .option('--data <dir>', 'storage root to import into (storage.filesystem.rootdirectory), default ./data')
    .option('--json', 'print the report as JSON')
    .action(async (from: string, file: string | undefined, options: MigrateOptions, command: Command) => {
      const flags: ConfigFlags = {};
      if (options.data !== undefined) flags.data = options.data;
      const { config } = loadServerConfig(file, flags);
      const json = options.json === true || command.optsWithGlobals<{ json?: boolean }>().json === true;
      const say = (line: string) => {
        if (!json) process.stdout.write(`${line}\n`);
      };
      const report = await runStorageImport(config, from, {
        onEvent: (event) => {
          if (event.kind === 'start') {
            say(`importing ${event.repositories} repositories from ${event.source} into ${config.storage.rootDirectory}` + (event.alreadyImported > 0 ? ` (resuming: ${event.alreadyImported} already imported)` : ''));
          } else if (event.kind === 'repository') {
            say(`imported ${event.repository}: ${event.blobs} blobs, ${event.manifests} manifests, ${event.tags} tags`);
          } else {
            say(`cannot import ${event.repository} ${event.item}: ${event.problem}`);
          }
        },
      });
      if (json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        say(
          `done: ${report.repositories} repositories (${report.skipped} imported before), ${report.blobsImported} blobs ` +
            `(${report.blobsLinked} hard-linked, ${report.blobsImported - report.blobsLinked} copied, ${report.blobsMounted} shared), ` +
            `${report.manifests} manifests, ${report.tags} tags, ${report.problems.length} problems`,
        );
      }
      process.exitCode = report.problems.length > 0 ? 1 : 0;
    });
}
