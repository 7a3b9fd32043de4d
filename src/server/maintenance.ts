import type { WharfConfig } from '../config/config.js';
import { collectGarbage, type CollectionOptions, type CollectionReport } from '../gc/garbage-collector.js';
import { checkIntegrity, type IntegrityOptions, type IntegrityReport } from '../gc/integrity-check.js';
import { findDistributionStorage, importDistributionStorage, type ImportOptions, type ImportReport } from '../migrate/distribution-import.js';
import { importSqliteIntoPostgres, type DatabaseImportOptions, type DatabaseImportReport } from '../migrate/sqlite-to-postgres.js';
import { PostgresMetadataStore } from '../metadata/postgres/postgres-metadata-store.js';
import { PostgresDatabase, describeDatabase } from '../metadata/postgres/postgres-database.js';
import { FilesystemDriver } from '../storage/filesystem-driver.js';
import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { createRegistry, gcSettings, openStorageDriver, openStores } from './server.js';

export type { CollectionReport, DatabaseImportReport, ImportReport, IntegrityReport };

/** Thrown when a database command runs without `database.enabled`. */
export class DatabaseNotConfiguredError extends Error {}

function databaseOf(config: WharfConfig) {
  if (config.metadata.kind !== 'postgres' || !config.metadata.postgres) {
    throw new DatabaseNotConfiguredError('no PostgreSQL database is configured: set database.enabled: true with host, dbname, user and password (or REGISTRY_DATABASE_*)');
  }
  return config.metadata.postgres;
}

/**
 * `wharf db migrate`: brings the configured PostgreSQL database's schema up to this Wharf's;
 * returns where it is (`database` names it without the password) and the versions applied now.
 */
export async function runDatabaseMigrate(config: WharfConfig): Promise<{ database: string; applied: number[]; current: number }> {
  const options = databaseOf(config);
  const db = new PostgresDatabase(options, { migrate: false });
  try {
    const applied = await db.migrate();
    const versions = await db.appliedMigrations();
    return { database: describeDatabase(options), applied, current: Math.max(0, ...versions) };
  } finally {
    await db.close();
  }
}

/**
 * `wharf db import`: moves an embedded registry (its SQLite file under `from`, or `sqlitePath`)
 * into the configured PostgreSQL database; blobs are copied into the configured storage unless
 * it is the same directory (see src/migrate/sqlite-to-postgres.ts).
 */
export async function runDatabaseImport(
  config: WharfConfig,
  source: { from: string; sqlitePath?: string },
  options: DatabaseImportOptions = {},
): Promise<DatabaseImportReport & { database: string; sqlitePath: string }> {
  const database = databaseOf(config);
  const storageRoot = resolve(source.from);
  const sqlitePath = resolve(source.sqlitePath ?? join(storageRoot, 'wharf.db'));
  if (!existsSync(sqlitePath)) throw new Error(`${sqlitePath} does not exist: name the embedded registry's storage root (its --data directory) or its SQLite file with --sqlite`);
  const metadata = new PostgresMetadataStore(database);
  try {
    const report = await importSqliteIntoPostgres(
      { sqlitePath, storageRoot, driver: new FilesystemDriver(storageRoot) },
      { metadata, driver: openStorageDriver(config), ...(config.storage.driver === 'filesystem' ? { storageRoot: config.storage.rootDirectory } : {}) },
      options,
    );
    return { ...report, database: describeDatabase(database), sqlitePath };
  } finally {
    await metadata.close();
  }
}

/** `wharf fsck`: checks every stored blob against its digest, on the configured storage. */
export async function runIntegrityCheck(config: WharfConfig, options: IntegrityOptions): Promise<IntegrityReport> {
  const { metadata, store } = openStores(config);
  try {
    return await checkIntegrity(metadata, store, options);
  } finally {
    await metadata.close();
  }
}

/**
 * `wharf garbage-collect`: one collection over the configured storage, safe beside a running
 * `wharf serve` on the same data directory. Expired upload sessions go too, when upload
 * purging is enabled.
 */
export async function runGarbageCollection(
  config: WharfConfig,
  options: Pick<CollectionOptions, 'dryRun' | 'deleteUntagged' | 'onLine'>,
): Promise<CollectionReport> {
  const stores = openStores(config);
  const registry = createRegistry(config, undefined, stores);
  try {
    return await collectGarbage(stores.metadata, stores.store, { ...options, ...gcSettings(config, registry) });
  } finally {
    await registry.close();
  }
}

/**
 * `wharf migrate FROM_DIR`: imports a registry:2 storage root into the configured storage (see
 * src/migrate/distribution-import.ts). Resumes an interrupted import of the same directory.
 * Throws when `fromDirectory` holds no registry:2 layout.
 */
export async function runStorageImport(config: WharfConfig, fromDirectory: string, options: ImportOptions = {}): Promise<ImportReport> {
  const source = findDistributionStorage(fromDirectory);
  if (!source) throw new Error(`${fromDirectory} holds no registry:2 storage (no docker/registry/v2 with repositories and blobs)`);
  const stores = openStores(config);
  const registry = createRegistry(config, undefined, stores);
  try {
    return await importDistributionStorage(registry, source, options);
  } finally {
    await registry.close();
  }
}
