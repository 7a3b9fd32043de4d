import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { VulnerabilityDatabase } from '../scan/vuln-db.js';
import { renderTable, timeAgo } from './output.js';
import { loadServerConfig } from './server-config.js';

interface DatabaseOptions {
  config?: string;
  db?: string;
}

/** The client's own database (what `wharf scan` uses): $XDG_CACHE_HOME/wharf/vulndb.sqlite. */
export function clientDatabasePath(): string {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'wharf', 'vulndb.sqlite');
}

/** Which database a command means: `--db`, the registry's (`--config`), else the client's. */
export function databasePath(options: DatabaseOptions): string {
  if (options.db) return options.db;
  if (options.config) return loadServerConfig(options.config, {}).config.security.scanning.databasePath;
  return clientDatabasePath();
}

/**
 * `wharf vulndb import PATH` and `wharf vulndb status`: the offline OSV database, the client's
 * (for `wharf scan`) or, with `--config`, the registry's (the server notices an import and
 * rescans the images it affects).
 */
export function registerVulnDb(program: Command): void {
  const vulndb = program.command('vulndb').description('the offline vulnerability database (OSV): import and status');
  vulndb
    .command('import')
    .description("import OSV records: an OSV all.zip, a directory of OSV JSON, or one JSON file (all or nothing; only changed records)")
    .argument('<path...>', 'all.zip files, directories or JSON files')
    .option('--config <file>', "import into the registry's database (security.scanning.database of this config.yml)")
    .option('--db <file>', 'import into this database file')
    .action(async (paths: string[], options: DatabaseOptions, command: Command) => {
      const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
      const db = VulnerabilityDatabase.open(databasePath(options));
      try {
        for (const path of paths) {
          const result = await db.import(path);
          const { changedPackages, ...counts } = result;
          if (json) process.stdout.write(`${JSON.stringify({ path, ...counts, changedPackages: changedPackages.length })}\n`);
          else
            process.stdout.write(
              `${path}: ${counts.added} added, ${counts.updated} updated, ${counts.withdrawn} withdrawn, ${counts.unchanged} unchanged${counts.rejected ? `, ${counts.rejected} not OSV` : ''} (generation ${counts.generation}, ${changedPackages.length} packages changed)\n`,
            );
        }
      } finally {
        db.close();
      }
    });
  vulndb
    .command('status')
    .description('show the database generation and, per ecosystem, its advisories and age')
    .option('--config <file>', "the registry's database (security.scanning.database of this config.yml)")
    .option('--db <file>', 'this database file')
    .action(async (options: DatabaseOptions, command: Command) => {
      const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
      const path = databasePath(options);
      const db = VulnerabilityDatabase.openExisting(path);
      const status = db ? db.status() : { path, generation: 0, ecosystems: [] };
      db?.close();
      if (json) {
        process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
        return;
      }
      process.stdout.write(`database: ${status.path}\ngeneration: ${status.generation}${status.updatedAt ? `, updated ${timeAgo(new Date(status.updatedAt).toISOString())}` : ' (empty: run wharf vulndb import)'}\n`);
      if (status.ecosystems.length > 0) {
        process.stdout.write(
          `${renderTable(
            ['ECOSYSTEM', 'ADVISORIES', 'IMPORTED', 'NEWEST RECORD'],
            status.ecosystems.map((e) => [e.ecosystem, String(e.advisories), timeAgo(new Date(e.importedAt).toISOString()), e.newestModified]),
          )}`,
        );
      }
    });
}
