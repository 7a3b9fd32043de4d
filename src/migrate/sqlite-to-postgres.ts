import { realpathSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { PostgresMetadataStore } from '../metadata/postgres/postgres-metadata-store.js';
import { COPIED_TABLES } from '../metadata/postgres/schema.js';
import { SqliteMetadataStore } from '../metadata/sqlite/sqlite-metadata-store.js';
import type { StorageDriver } from '../storage/driver.js';

/** Rows inserted per statement (well under PostgreSQL's 65,535 parameters at 14 columns). */
const BATCH_ROWS = 500;
/** What blob storage holds besides the database: content-addressed blobs and upload parts. */
const STORAGE_PREFIXES = ['blobs', 'uploads'];

export interface DatabaseImportOptions {
  /** Empty a target that holds rows first; without it, such a target is refused (nothing written). */
  replace?: boolean;
  onTable?: (table: string, rows: number) => void;
}

export interface DatabaseImportReport {
  /** Rows copied, per table. */
  tables: Record<string, number>;
  /** `shared`: source and target storage are the same directory, nothing moved; `copied`: files copied into the target driver. */
  storage: 'shared' | 'copied';
  /** Storage files written to the target (missing there, or of another size). */
  filesCopied: number;
  /** Storage files already in the target with the same size, left alone. */
  filesPresent: number;
  bytesCopied: number;
}

/** A target that already holds metadata: refused unless `replace`. */
export class TargetNotEmptyError extends Error {}

/**
 * Moves a registry's metadata from its SQLite file into PostgreSQL, in one PostgreSQL
 * transaction: every table row for row, with the same ids, so that tag history, outbox
 * positions, jobs and accounts carry on as they were; identity sequences then continue after the
 * copied ids. Blob bytes stay where they are when the target storage is the source directory;
 * otherwise every blob and upload part is copied into the target driver (files already there with
 * the same size are skipped, so a rerun resumes). Stop the SQLite registry (or make it read-only)
 * first: what it writes after the copy began is not moved.
 */
export async function importSqliteIntoPostgres(
  source: { sqlitePath: string; storageRoot: string; driver: StorageDriver },
  target: { metadata: PostgresMetadataStore; storageRoot?: string; driver: StorageDriver },
  options: DatabaseImportOptions = {},
): Promise<DatabaseImportReport> {
  // Opening the store brings an older SQLite file to the schema the copy expects.
  const sqlite = new SqliteMetadataStore({ path: source.sqlitePath });
  const tables: Record<string, number> = {};
  try {
    const db = sqlite.connection;
    await target.metadata.ready;
    const pool = target.metadata.db;
    const known = new Set(COPIED_TABLES.map((t) => t.table));
    const skipped = new Set(['auth_rules_generation', 'sqlite_sequence']);
    const unknown = db
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .all()
      .map((row) => row.name)
      .filter((name) => !known.has(name) && !skipped.has(name));
    if (unknown.length > 0) throw new Error(`the SQLite database has tables this Wharf's PostgreSQL schema lacks: ${unknown.join(', ')}`);
    const hasSequences = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").get() !== undefined;
    // One snapshot of the source for the whole copy.
    db.prepare('BEGIN').run();
    try {
      await pool.transaction(async (tx) => {
        const holding: string[] = [];
        for (const { table } of COPIED_TABLES) {
          if (await tx.one(`SELECT 1 FROM ${table} LIMIT 1`)) holding.push(table);
        }
        if (holding.length > 0) {
          if (!options.replace) {
            throw new TargetNotEmptyError(`the PostgreSQL database already holds metadata (${holding.join(', ')}); pass --replace to replace it with the SQLite registry's`);
          }
          await tx.query(`TRUNCATE ${COPIED_TABLES.map((t) => t.table).join(', ')} RESTART IDENTITY`);
        }
        for (const { table, identity } of COPIED_TABLES) {
          const targetColumns = new Set(
            (await tx.query<{ column_name: string }>('SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1', [table])).rows.map(
              (row) => row.column_name,
            ),
          );
          const columns = db.prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`).all().map((row) => row.name);
          const missing = columns.filter((column) => !targetColumns.has(column));
          if (missing.length > 0) throw new Error(`the PostgreSQL schema lacks ${table}.${missing.join(`, ${table}.`)}`);
          let count = 0;
          let batch: unknown[][] = [];
          const flush = async () => {
            if (batch.length === 0) return;
            const values = batch.map((row, r) => `(${row.map((_, c) => `$${r * columns.length + c + 1}`).join(', ')})`).join(', ');
            await tx.query(`INSERT INTO ${table} (${columns.map((c) => `"${c}"`).join(', ')}) VALUES ${values}`, batch.flat());
            count += batch.length;
            batch = [];
          };
          for (const row of db.prepare(`SELECT * FROM ${table}`).raw().iterate() as IterableIterator<unknown[]>) {
            batch.push(row.map((value) => (typeof value === 'bigint' ? Number(value) : value)));
            if (batch.length === BATCH_ROWS) await flush();
          }
          await flush();
          if (identity) {
            // Past every id SQLite ever gave (AUTOINCREMENT remembers ids of pruned rows: outbox
            // consumers' positions may point beyond the rows left), not just the highest copied.
            const given = hasSequences ? (db.prepare<[string], { seq: number }>('SELECT seq FROM sqlite_sequence WHERE name = ?').get(table)?.seq ?? 0) : 0;
            await tx.query(`SELECT setval(pg_get_serial_sequence('${table}', '${identity}'), greatest(coalesce((SELECT max(${identity}) FROM ${table}), 0), $1::bigint) + 1, false)`, [given]);
          }
          tables[table] = count;
          options.onTable?.(table, count);
        }
        // Every process's copy of the access rules is stale now.
        await tx.query('UPDATE auth_rules_generation SET generation = generation + 1 WHERE id = 1');
      });
    } finally {
      db.prepare('ROLLBACK').run();
    }
  } finally {
    await sqlite.close();
  }
  const shared = target.storageRoot !== undefined && sameDirectory(source.storageRoot, target.storageRoot);
  const report: DatabaseImportReport = { tables, storage: shared ? 'shared' : 'copied', filesCopied: 0, filesPresent: 0, bytesCopied: 0 };
  if (shared) return report;
  for (const prefix of STORAGE_PREFIXES) {
    for await (const entry of source.driver.walk(prefix)) {
      const there = await target.driver.stat(entry.path);
      if (there && there.size === entry.size) {
        report.filesPresent += 1;
        continue;
      }
      await copyFile(source.driver, target.driver, entry.path);
      report.filesCopied += 1;
      report.bytesCopied += entry.size;
    }
  }
  return report;
}

function sameDirectory(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return a === b;
  }
}

/** Streams one file from a driver to another; the target file appears only once whole (commit). */
async function copyFile(from: StorageDriver, to: StorageDriver, path: string): Promise<void> {
  const writer = await to.writer(path);
  try {
    await pipeline(
      await from.reader(path),
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          writer.write(chunk).then(() => done(), done);
        },
      }),
    );
    await writer.commit();
  } catch (error) {
    await writer.cancel().catch(() => {});
    throw error;
  }
}
