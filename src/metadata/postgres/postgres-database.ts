import { createRequire } from 'node:module';
import type pg from 'pg';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { POSTGRES_MIGRATIONS } from './schema.js';

/**
 * node-postgres, loaded with the first pool: every serving process imports this module (the
 * stores are chosen by configuration at run time), and most of them use SQLite, so they need
 * not carry pg's few MiB of heap.
 */
let pgModule: typeof pg | undefined;
function loadPg(): typeof pg {
  pgModule ??= createRequire(import.meta.url)('pg') as typeof pg;
  return pgModule;
}

/**
 * How to reach the database: GitLab's registry `database` keys (see src/config). The password is
 * never logged; errors name the host, port, database and user only.
 */
export interface PostgresOptions {
  host: string;
  port: number;
  user: string;
  password?: string;
  dbname: string;
  /** libpq's modes; `prefer` and `allow` connect without TLS (node-postgres cannot fall back). */
  sslmode: 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
  sslcert?: string;
  sslkey?: string;
  sslrootcert?: string;
  pool: {
    /** Connections open at most (per process). */
    maxOpen: number;
    /** Idle connections kept open; more close after `maxIdleTimeMs` idle. */
    maxIdle: number;
    /** How long a connection beyond `maxIdle` stays open idle (default 10 s). */
    maxIdleTimeMs?: number;
    /** A connection older than this (ms) is closed once released; 0 keeps them. */
    maxLifetimeMs: number;
  };
  /** How long opening a connection may take (default 10 s). */
  connectTimeoutMs?: number;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
}

/**
 * The database cannot be reached (refused, unknown host, bad credentials, timeout) or the
 * connection was lost mid-query. Its `code` makes the HTTP seam answer 503 UNAVAILABLE.
 */
export class DatabaseUnavailableError extends Error {
  readonly code = 'DATABASE_UNAVAILABLE';
}

/**
 * Errors from the server carry a SQLSTATE (pg's DatabaseError) and stay as they are; a socket
 * error (an errno code) or node-postgres saying the connection ended or timed out is the
 * database being away. Anything else (a bug) stays as it is too.
 */
function connectionFailure(error: unknown, what: string): unknown {
  // Without pg loaded, no error can be one of its own.
  if ((pgModule !== undefined && error instanceof pgModule.DatabaseError) || !(error instanceof Error)) return error;
  const errno = typeof (error as NodeJS.ErrnoException).code === 'string' && /^E[A-Z]+$/.test((error as NodeJS.ErrnoException).code!);
  if (!errno && !/connection|terminated|timeout|not queryable/i.test(error.message)) return error;
  return new DatabaseUnavailableError(`${what}: ${error.message}`, { cause: error });
}

/** How long a connection above `maxIdle` stays open idle, unless configured. */
const POOL_IDLE_MS = 10_000;
/** How long getting a connection may take before the request fails, unless configured. */
const CONNECT_TIMEOUT_MS = 10_000;

/** Migrations across processes and replicas take this advisory lock, one at a time. */
const MIGRATION_LOCK = 0x77686172; // "whar"
/** Every transaction that appends to the outbox takes this advisory lock until it commits (see Transaction.record). */
export const OUTBOX_LOCK = 0x6f757462; // "outb"

/** BIGINT and NUMERIC (sums) as JavaScript numbers: sizes and times stay far below 2^53. */
const TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    const { types } = loadPg();
    if (oid === types.builtins.INT8 || oid === types.builtins.NUMERIC) return (value: string) => Number(value);
    return types.getTypeParser(oid, format as 'text');
  },
};

/** Errors after which the whole transaction is run again: its work read nothing outside the database. */
const RETRIED_CODES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  // A row this transaction references (a repository) was deleted by a collector meanwhile:
  // running again creates it afresh.
  '23503', // foreign_key_violation
]);
const MAX_ATTEMPTS = 5;

/** A transaction in progress: queries, and the outbox entries it will append just before it commits. */
export interface Transaction {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  one<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R | undefined>;
  /**
   * Appends an outbox row at commit. Ids must become visible in order (a consumer reads "after
   * id N"), so appends take OUTBOX_LOCK and hold it until the commit: deferring them to the end
   * keeps that window to the insert and the commit.
   */
  record(at: number, action: string, repository: string | null, event: string): void;
}

function sslOptions(options: PostgresOptions): boolean | ConnectionOptions {
  switch (options.sslmode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      return false;
    default: {
      const tls: ConnectionOptions = { rejectUnauthorized: options.sslmode !== 'require' };
      if (options.sslrootcert) tls.ca = readFileSync(options.sslrootcert);
      if (options.sslcert) tls.cert = readFileSync(options.sslcert);
      if (options.sslkey) tls.key = readFileSync(options.sslkey);
      // verify-ca checks the chain but not the name, as libpq does.
      if (options.sslmode === 'verify-ca') tls.checkServerIdentity = () => undefined;
      return tls;
    }
  }
}

/** Where the database is, for messages: never the password. */
export function describeDatabase(options: Pick<PostgresOptions, 'host' | 'port' | 'dbname' | 'user'>): string {
  return `postgresql://${options.user}@${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}/${options.dbname}`;
}

/**
 * One process's pool of connections to the metadata database, with the schema migrated before
 * the first query runs (`ready`).
 */
export class PostgresDatabase {
  readonly pool: pg.Pool;
  /** Settles once the schema is current; every query waits for it. Rejects when the database cannot be reached or migrated. */
  readonly ready: Promise<void>;
  private closed = false;

  constructor(
    readonly options: PostgresOptions,
    private readonly hooks: { onCommit?: (seconds: number, writes: number) => void; migrate?: boolean } = {},
  ) {
    this.pool = new (loadPg().Pool)({
      host: options.host,
      port: options.port,
      user: options.user,
      ...(options.password !== undefined ? { password: options.password } : {}),
      database: options.dbname,
      ssl: sslOptions(options),
      max: options.pool.maxOpen,
      min: Math.min(options.pool.maxIdle, options.pool.maxOpen),
      idleTimeoutMillis: options.pool.maxIdleTimeMs ?? POOL_IDLE_MS,
      connectionTimeoutMillis: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
      ...(options.pool.maxLifetimeMs > 0 ? { maxLifetimeSeconds: Math.max(1, Math.round(options.pool.maxLifetimeMs / 1000)) } : {}),
      application_name: options.applicationName ?? 'wharf',
      types: TYPES,
    });
    // An idle connection that the server drops (restart, failover) must not crash the process:
    // the pool discards it and opens another for the next query.
    this.pool.on('error', () => {});
    this.ready = hooks.migrate === false ? Promise.resolve() : this.migrate().then(() => undefined);
    // Surfaced by the first query (or by whoever awaits `ready`), not as an unhandled rejection.
    this.ready.catch(() => {});
  }

  /**
   * Applies the migrations this database lacks, in one transaction under an advisory lock (so
   * replicas starting together migrate once); returns the versions applied. Throws when the
   * database has a newer schema than this Wharf knows.
   */
  async migrate(): Promise<number[]> {
    const client = await this.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
      const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((row) => row.version));
      const newest = Math.max(0, ...done);
      if (newest > POSTGRES_MIGRATIONS.length) {
        throw new Error(`metadata database schema ${newest} is newer than this wharf (${POSTGRES_MIGRATIONS.length})`);
      }
      const applied: number[] = [];
      for (let i = 0; i < POSTGRES_MIGRATIONS.length; i += 1) {
        const version = i + 1;
        if (done.has(version)) continue;
        await client.query(POSTGRES_MIGRATIONS[i]!);
        await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [version, Date.now()]);
        applied.push(version);
      }
      await client.query('COMMIT');
      return applied;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** The schema versions applied, in order. */
  async appliedMigrations(): Promise<number[]> {
    await this.ready;
    return (await this.pool.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).rows.map((row) => row.version);
  }

  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (error) {
      throw new DatabaseUnavailableError(`cannot connect to the metadata database ${describeDatabase(this.options)}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** One statement outside any transaction (reads that need no snapshot with others). */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    await this.ready;
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw connectionFailure(error, `the metadata database ${describeDatabase(this.options)} failed`);
    }
  }

  async one<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<R | undefined> {
    return (await this.query<R>(text, values)).rows[0];
  }

  /**
   * Runs `work` in a transaction (READ COMMITTED with the row locks `work` takes, or a
   * REPEATABLE READ snapshot with `snapshot`), committing when it returns. Run again from the
   * start after a deadlock or serialization failure, so `work` must change nothing outside the
   * database. With `lazy`, the commit does not wait for the WAL to reach disk
   * (synchronous_commit off): a crash of the database server (not of Wharf) may lose it.
   */
  async transaction<T>(work: (tx: Transaction) => Promise<T>, options: { lazy?: boolean; snapshot?: boolean } = {}): Promise<T> {
    await this.ready;
    for (let attempt = 1; ; attempt += 1) {
      const client = await this.connect();
      const began = performance.now();
      const outbox: unknown[][] = [];
      const run = async <R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> => {
        try {
          return (await client.query(text, values)) as pg.QueryResult<R>;
        } catch (error) {
          throw connectionFailure(error, `the metadata database ${describeDatabase(this.options)} failed`);
        }
      };
      const tx: Transaction = {
        query: run,
        one: (async (text: string, values?: unknown[]) => (await run(text, values)).rows[0]) as Transaction['one'],
        record: (at, action, repository, event) => void outbox.push([at, action, repository, event]),
      };
      let broken = false;
      try {
        await client.query(options.snapshot ? 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' : 'BEGIN');
        if (options.lazy) await client.query('SET LOCAL synchronous_commit = off');
        const result = await work(tx);
        if (outbox.length > 0) {
          await client.query('SELECT pg_advisory_xact_lock($1)', [OUTBOX_LOCK]);
          await client.query(
            `INSERT INTO outbox (at, action, repository, event)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])`,
            [outbox.map((e) => e[0]), outbox.map((e) => e[1]), outbox.map((e) => e[2]), outbox.map((e) => e[3])],
          );
        }
        await client.query('COMMIT');
        if (!options.snapshot) this.hooks.onCommit?.((performance.now() - began) / 1000, 1);
        return result;
      } catch (error) {
        try {
          await client.query('ROLLBACK');
        } catch {
          broken = true;
        }
        const code = (error as { code?: string }).code;
        if (code !== undefined && RETRIED_CODES.has(code) && attempt < MAX_ATTEMPTS) continue;
        throw error;
      } finally {
        client.release(broken);
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ready.catch(() => {});
    await this.pool.end();
  }
}
