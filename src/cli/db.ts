import type { Command } from 'commander';
import type { ConfigFlags } from '../config/config.js';
import { DatabaseNotConfiguredError, runDatabaseImport, runDatabaseMigrate } from '../server/maintenance.js';
import { TargetNotEmptyError } from '../migrate/sqlite-to-postgres.js';
import { loadServerConfig } from './server-config.js';

interface DbOptions {
  data?: string;
  json?: boolean;
}

interface ImportOptions extends DbOptions {
  from: string;
  sqlite?: string;
  replace?: boolean;
}

function load(file: string | undefined, options: DbOptions) {
  const flags: ConfigFlags = {};
  if (options.data !== undefined) flags.data = options.data;
  const { config } = loadServerConfig(file, flags);
  return config;
}

/** A known reason as one line on stderr and status 1, rather than a stack. */
function refuse(error: unknown): never | void {
  if (error instanceof DatabaseNotConfiguredError || error instanceof TargetNotEmptyError) {
    process.stderr.write(`wharf: ${error.message}\n`);
    process.exitCode = 1;
    return;
  }
  throw error;
}

/**
 * `wharf db migrate [config.yml]` and `wharf db import [config.yml] --from DIR`: the PostgreSQL
 * metadata database configured under `database` (docs/scale-out.md).
 */
export function registerDb(program: Command): void {
  const db = program.command('db').description('the PostgreSQL metadata database (database.enabled): schema migrations and imports from the embedded SQLite');
  db.command('migrate')
    .description('apply the schema migrations the database lacks (wharf serve also does at start); safe to run while replicas serve')
    .argument('[config]', "the registry's config.yml (the same as for wharf serve)")
    .option('--json', 'print the result as JSON')
    .action(async (file: string | undefined, options: DbOptions, command: Command) => {
      const config = load(file, options);
      const json = options.json === true || command.optsWithGlobals<{ json?: boolean }>().json === true;
      try {
        const result = await runDatabaseMigrate(config);
        if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        else if (result.applied.length === 0) process.stdout.write(`${result.database}: schema is current (version ${result.current})\n`);
        else process.stdout.write(`${result.database}: applied migrations ${result.applied.join(', ')}; schema version ${result.current}\n`);
      } catch (error) {
        refuse(error);
      }
    });
  db.command('import')
    .description("move an embedded registry's metadata (SQLite) into PostgreSQL, ids and all, in one transaction; blobs stay or are copied to the configured storage")
    .argument('[config]', "the registry's config.yml, with database.enabled (the same as for wharf serve)")
    .requiredOption('--from <dir>', "the embedded registry's storage root (its --data directory, holding wharf.db)")
    .option('--sqlite <file>', 'its SQLite file, when not <dir>/wharf.db (metadata.sqlite.path)')
    .option('--data <dir>', 'storage root to serve from (storage.filesystem.rootdirectory); blobs are copied there unless it is --from')
    .option('--replace', 'replace what the PostgreSQL database holds (it is refused when not empty otherwise)')
    .option('--json', 'print the report as JSON')
    .action(async (file: string | undefined, options: ImportOptions, command: Command) => {
      const config = load(file, options);
      const json = options.json === true || command.optsWithGlobals<{ json?: boolean }>().json === true;
      try {
        const report = await runDatabaseImport(config, { from: options.from, ...(options.sqlite !== undefined ? { sqlitePath: options.sqlite } : {}) }, {
          ...(options.replace ? { replace: true } : {}),
          onTable: (table, rows) => {
            if (!json && rows > 0) process.stdout.write(`${table}: ${rows} rows\n`);
          },
        });
        if (json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          return;
        }
        const rows = Object.values(report.tables).reduce((sum, n) => sum + n, 0);
        const storage =
          report.storage === 'shared'
            ? 'blobs stay where they are (same storage root)'
            : `${report.filesCopied} storage files copied (${report.bytesCopied} bytes), ${report.filesPresent} already there`;
        process.stdout.write(
          `imported ${report.sqlitePath} into ${report.database}: ${rows} rows; ${report.tables.repositories ?? 0} repositories, ` +
            `${report.tables.manifests ?? 0} manifests, ${report.tables.tags ?? 0} tags, ${report.tables.blobs ?? 0} blobs; ${storage}\n`,
        );
      } catch (error) {
        refuse(error);
      }
    });
}
