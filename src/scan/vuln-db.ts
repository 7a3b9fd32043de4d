import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import yauzl from 'yauzl';
import { ScanError } from './scan-error.js';

/** The parts of an OSV record (https://ossf.github.io/osv-schema/) that matching reads. */
export interface OsvRecord {
  id: string;
  modified: string;
  withdrawn?: string;
  aliases?: string[];
  summary?: string;
  details?: string;
  severity?: Array<{ type: string; score: string }>;
  affected?: OsvAffected[];
  database_specific?: Record<string, unknown>;
}

export interface OsvAffected {
  package?: { ecosystem: string; name: string; purl?: string };
  ranges?: Array<{ type: string; events: Array<{ introduced?: string; fixed?: string; last_affected?: string; limit?: string }> }>;
  versions?: string[];
  severity?: Array<{ type: string; score: string }>;
  ecosystem_specific?: Record<string, unknown>;
  database_specific?: Record<string, unknown>;
}

/** What an import did. */
export interface ImportResult {
  /** The database generation after the import (it moves only when something changed). */
  generation: number;
  added: number;
  updated: number;
  withdrawn: number;
  unchanged: number;
  /** Records that were not OSV (no id, no modified time, not JSON). */
  rejected: number;
  /** The packages whose advisories changed, as `Ecosystem/name` (for rescans). */
  changedPackages: Array<{ ecosystem: string; name: string }>;
}

export interface EcosystemStatus {
  ecosystem: string;
  advisories: number;
  /** When an import last brought records of this ecosystem (ms since epoch). */
  importedAt: number;
  /** The newest `modified` time among them. */
  newestModified: string;
}

export interface DatabaseStatus {
  path: string;
  generation: number;
  updatedAt?: number;
  ecosystems: EcosystemStatus[];
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS advisory (id TEXT PRIMARY KEY, modified TEXT NOT NULL, document TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS affected (advisory TEXT NOT NULL, ecosystem TEXT NOT NULL, base TEXT NOT NULL, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS affected_by_package ON affected (base, name);
CREATE INDEX IF NOT EXISTS affected_by_advisory ON affected (advisory);
CREATE TABLE IF NOT EXISTS ecosystem (base TEXT PRIMARY KEY, imported_at INTEGER NOT NULL, newest_modified TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS change (generation INTEGER NOT NULL, base TEXT NOT NULL, name TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS change_by_generation ON change (generation);
`;

/** Largest single OSV record read (the biggest real ones are a few hundred KiB). */
const MAX_RECORD_BYTES = 16 * 1024 * 1024;

/**
 * The offline vulnerability database: OSV records in one SQLite file, indexed by ecosystem and
 * package. An import runs in one transaction, so a scan (on another connection, WAL) sees the
 * database before it or after it, never half of it; records are replaced only when their
 * `modified` time moved, so importing a newer all.zip over an older one is incremental.
 */
export class VulnerabilityDatabase {
  private readonly db: Database.Database;

  private constructor(readonly path: string, options: { readonly: boolean }) {
    if (!options.readonly) mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path, { readonly: options.readonly, fileMustExist: options.readonly });
    if (!options.readonly) {
      this.db.pragma('journal_mode = WAL');
      this.db.exec(SCHEMA);
    }
    this.db.pragma('busy_timeout = 10000');
  }

  /** Opens (creating when absent) the database at `path` for import and matching. */
  static open(path: string): VulnerabilityDatabase {
    return new VulnerabilityDatabase(path, { readonly: false });
  }

  /** Opens an existing database to read; undefined when there is none yet. */
  static openExisting(path: string): VulnerabilityDatabase | undefined {
    try {
      statSync(path);
    } catch {
      return undefined;
    }
    return VulnerabilityDatabase.open(path);
  }

  close(): void {
    this.db.close();
  }

  get generation(): number {
    const row = this.db.prepare("SELECT value FROM state WHERE key = 'generation'").get() as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  /** The generation and when it was made, cheaply (a report names them). */
  version(): { generation: number; updatedAt?: number } {
    const updated = this.db.prepare("SELECT value FROM state WHERE key = 'updated_at'").pluck().get() as string | undefined;
    return { generation: this.generation, ...(updated ? { updatedAt: Number(updated) } : {}) };
  }

  status(): DatabaseStatus {
    const ecosystems = this.db
      .prepare(
        `SELECT e.base AS ecosystem, e.imported_at AS importedAt, e.newest_modified AS newestModified,
                (SELECT COUNT(DISTINCT advisory) FROM affected f WHERE f.base = e.base) AS advisories
         FROM ecosystem e ORDER BY e.base`,
      )
      .all() as EcosystemStatus[];
    const updated = this.db.prepare("SELECT value FROM state WHERE key = 'updated_at'").get() as { value: string } | undefined;
    const status: DatabaseStatus = { path: this.path, generation: this.generation, ecosystems };
    if (updated) status.updatedAt = Number(updated.value);
    return status;
  }

  /** The packages (`Ecosystem/name`) whose advisories changed after `generation`. */
  changedSince(generation: number): string[] {
    const rows = this.db.prepare('SELECT DISTINCT base, name FROM change WHERE generation > ?').all(generation) as Array<{ base: string; name: string }>;
    return rows.map((r) => `${r.base}/${r.name}`);
  }

  /** Advisories naming a package of an ecosystem (the base name: `Debian`, `npm`). */
  advisoriesFor(base: string, name: string): OsvRecord[] {
    const rows = this.db
      .prepare('SELECT DISTINCT a.document FROM affected f JOIN advisory a ON a.id = f.advisory WHERE f.base = ? AND f.name = ?')
      .pluck()
      .all(base, name) as string[];
    return rows.map((text) => JSON.parse(text) as OsvRecord);
  }

  /**
   * Imports OSV records from `path`: an OSV `all.zip` (or any zip of OSV JSON files), a directory
   * of them (searched recursively), or one JSON file. All or nothing: a failure leaves the
   * database as it was.
   */
  async import(path: string, options: { signal?: AbortSignal } = {}): Promise<ImportResult> {
    const result: ImportResult = { generation: this.generation, added: 0, updated: 0, withdrawn: 0, unchanged: 0, rejected: 0, changedPackages: [] };
    const changed = new Map<string, { ecosystem: string; name: string }>();
    const touched = new Map<string, string>();
    const existing = this.db.prepare('SELECT modified FROM advisory WHERE id = ?').pluck();
    const oldPackages = this.db.prepare('SELECT base, name FROM affected WHERE advisory = ?');
    const upsert = this.db.prepare('INSERT INTO advisory (id, modified, document) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET modified = excluded.modified, document = excluded.document');
    const removeAdvisory = this.db.prepare('DELETE FROM advisory WHERE id = ?');
    const removeAffected = this.db.prepare('DELETE FROM affected WHERE advisory = ?');
    const addAffected = this.db.prepare('INSERT INTO affected (advisory, ecosystem, base, name) VALUES (?, ?, ?, ?)');
    const noteChanged = (base: string, name: string): void => {
      changed.set(`${base}\u0000${name}`, { ecosystem: base, name });
    };
    this.db.exec('BEGIN IMMEDIATE');
    try {
      for await (const text of osvDocuments(path)) {
        options.signal?.throwIfAborted();
        let record: OsvRecord;
        try {
          record = JSON.parse(text) as OsvRecord;
        } catch {
          result.rejected++;
          continue;
        }
        if (typeof record?.id !== 'string' || typeof record.modified !== 'string') {
          result.rejected++;
          continue;
        }
        const before = existing.get(record.id) as string | undefined;
        if (before !== undefined && before >= record.modified) {
          result.unchanged++;
          continue;
        }
        for (const row of oldPackages.all(record.id) as Array<{ base: string; name: string }>) noteChanged(row.base, row.name);
        removeAffected.run(record.id);
        if (record.withdrawn) {
          removeAdvisory.run(record.id);
          if (before !== undefined) result.withdrawn++;
          continue;
        }
        upsert.run(record.id, record.modified, text);
        if (before === undefined) result.added++;
        else result.updated++;
        const seen = new Set<string>();
        for (const affected of record.affected ?? []) {
          const ecosystem = affected.package?.ecosystem;
          const name = affected.package?.name;
          if (typeof ecosystem !== 'string' || typeof name !== 'string') continue;
          const base = ecosystem.split(':')[0]!;
          const key = `${ecosystem}\u0000${name}`;
          if (!seen.has(key)) {
            seen.add(key);
            addAffected.run(record.id, ecosystem, base, name);
          }
          noteChanged(base, name);
          const newest = touched.get(base);
          if (newest === undefined || record.modified > newest) touched.set(base, record.modified);
        }
      }
      const now = Date.now();
      const markEcosystem = this.db.prepare(
        `INSERT INTO ecosystem (base, imported_at, newest_modified) VALUES (?, ?, ?)
         ON CONFLICT (base) DO UPDATE SET imported_at = excluded.imported_at, newest_modified = MAX(newest_modified, excluded.newest_modified)`,
      );
      for (const [base, newest] of touched) markEcosystem.run(base, now, newest);
      if (result.added + result.updated + result.withdrawn > 0) {
        result.generation = this.generation + 1;
        const setState = this.db.prepare('INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
        setState.run('generation', String(result.generation));
        setState.run('updated_at', String(now));
        // The registry's rescans read which packages each generation touched.
        const addChange = this.db.prepare('INSERT INTO change (generation, base, name) VALUES (?, ?, ?)');
        for (const { ecosystem, name } of changed.values()) addChange.run(result.generation, ecosystem, name);
      }
      this.db.exec('COMMIT');
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    }
    result.changedPackages = [...changed.values()];
    return result;
  }
}

/** The JSON texts of the OSV records at `path` (zip, directory or file). */
async function* osvDocuments(path: string): AsyncGenerator<string> {
  let info;
  try {
    info = statSync(path);
  } catch {
    throw new ScanError(`${path}: no such file or directory`);
  }
  if (info.isDirectory()) {
    for (const file of jsonFiles(path)) yield await readRecord(file);
    return;
  }
  const handle = await open(path, 'r');
  const magic = Buffer.alloc(4);
  await handle.read(magic, 0, 4, 0);
  await handle.close();
  if (magic.readUInt32LE(0) !== 0x04034b50) {
    yield await readRecord(path);
    return;
  }
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => yauzl.open(path, { lazyEntries: true, validateEntrySizes: true }, (e, z) => (e ? reject(e) : resolve(z))));
  try {
    for (;;) {
      const entry = await new Promise<yauzl.Entry | undefined>((resolve, reject) => {
        const cleanup = (): void => {
          zip.removeAllListeners('entry');
          zip.removeAllListeners('end');
          zip.removeAllListeners('error');
        };
        zip.once('entry', (e: yauzl.Entry) => (cleanup(), resolve(e)));
        zip.once('end', () => (cleanup(), resolve(undefined)));
        zip.once('error', (e: Error) => (cleanup(), reject(e)));
        zip.readEntry();
      });
      if (!entry) return;
      if (!entry.fileName.endsWith('.json')) continue;
      if (entry.uncompressedSize > MAX_RECORD_BYTES) throw new ScanError(`${path}: ${entry.fileName} is larger than ${MAX_RECORD_BYTES} bytes`);
      const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) => zip.openReadStream(entry, (e, s) => (e ? reject(e) : resolve(s))));
      const chunks: Buffer[] = [];
      for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
      yield Buffer.concat(chunks).toString('utf8');
    }
  } finally {
    zip.close();
  }
}

async function readRecord(file: string): Promise<string> {
  if (statSync(file).size > MAX_RECORD_BYTES) throw new ScanError(`${file} is larger than ${MAX_RECORD_BYTES} bytes`);
  return readFile(file, 'utf8');
}

function jsonFiles(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...jsonFiles(path));
    else if (entry.isFile() && entry.name.endsWith('.json')) found.push(path);
  }
  return found.sort();
}
