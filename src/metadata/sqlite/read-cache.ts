import type Database from 'better-sqlite3';

/** Entries held at most; past it the cache starts again empty (a scan of many names must not grow it). */
const MAX_ENTRIES = 4096;

/**
 * Results of the hottest small reads (a manifest by tag or digest, a blob's size in a repository),
 * kept while the database is unchanged. Each lookup first asks SQLite whether anything was
 * committed since the entries were read: `PRAGMA data_version` moves when another connection
 * (another worker process, `wharf garbage-collect`, a replica's import) commits, and
 * `total_changes()` when this connection writes. Either moving empties the cache, so a read
 * never returns what an earlier commit replaced. The check is one read transaction without a
 * table: about a third of the joins it saves.
 *
 * Values are shared between callers: they are frozen, and callers copy rather than change them.
 */
export class ReadCache {
  private entries = new Map<string, unknown>();
  private dataVersion = -1;
  private changes = -1;
  private readonly version: Database.Statement<[], number>;
  private readonly totalChanges: Database.Statement<[], number>;

  constructor(db: Database.Database) {
    this.version = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.totalChanges = db.prepare<[], number>('SELECT total_changes()').pluck();
  }

  /** The value for `key` as `load` reads it now: from the cache while nothing was committed since. */
  get<T>(key: string, load: () => T): T {
    // Read before `load`, so that a commit landing in between only empties the cache needlessly.
    const changes = this.totalChanges.get()!;
    const dataVersion = this.version.get()!;
    if (dataVersion !== this.dataVersion || changes !== this.changes) {
      this.entries.clear();
      this.dataVersion = dataVersion;
      this.changes = changes;
    } else if (this.entries.has(key)) {
      return this.entries.get(key) as T;
    }
    const value = load();
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(key, typeof value === 'object' && value !== null ? Object.freeze(value) : value);
    return value;
  }
}
