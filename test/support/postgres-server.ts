import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { PostgresOptions } from '../../src/metadata/postgres/postgres-database.js';

/**
 * A throwaway PostgreSQL cluster from Debian's packages (scripts/install-test-tools.sh installs
 * `postgresql`): `initdb` into a temporary directory, run as the unprivileged `postgres` user when
 * the tests run as root, listening on 127.0.0.1 at a free port with its unix socket in the same
 * directory. Password authentication over TCP, as a real deployment has it. Fails (never skips)
 * when the binaries are missing.
 */
export interface PostgresServer {
  host: string;
  port: number;
  user: string;
  password: string;
  /** The directory holding the cluster and its socket. */
  dir: string;
  /** Connection settings for a database of this cluster (GitLab's `database` keys, as Wharf reads them). */
  options(dbname: string): PostgresOptions;
  /** Creates an empty database (optionally copied from `template`); returns its name. */
  createDatabase(name?: string, options?: { template?: string }): Promise<string>;
  /** Runs SQL as the superuser on `dbname`. */
  sql<R extends pg.QueryResultRow = pg.QueryResultRow>(dbname: string, text: string, values?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
}

/** Debian installs each major version under /usr/lib/postgresql/N/bin; the newest wins. */
export function postgresBinaries(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  assert.ok(versions.length > 0, 'PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run .ci/run (or scripts/install-test-tools.sh) to install the test tools');
  return join(root, versions[0]!, 'bin');
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** As root, the cluster runs as `postgres` (initdb refuses root); otherwise as whoever runs the tests. */
function asClusterUser(command: string, args: string[]): [string, string[]] {
  return userInfo().uid === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
}

let counter = 0;

export async function startPostgres(): Promise<PostgresServer> {
  const bin = postgresBinaries();
  const dir = mkdtempSync(join(tmpdir(), 'wharf-pg-'));
  const data = join(dir, 'data');
  const user = 'wharf';
  const password = `pw-${process.pid}-${Date.now()}`;
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, `${password}\n`);
  if (userInfo().uid === 0) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    assert.equal(ids.status, 0, 'the postgres user is missing: install the postgresql package (scripts/install-test-tools.sh)');
    const uid = Number(ids.stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    chownSync(dir, uid, gid);
    chownSync(pwfile, uid, gid);
  }
  const [initCommand, initArgs] = asClusterUser(join(bin, 'initdb'), [
    '-D', data, '-U', user, `--pwfile=${pwfile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync',
  ]);
  const init = spawnSync(initCommand, initArgs, { encoding: 'utf8' });
  assert.equal(init.status, 0, `initdb failed:\n${init.stdout}\n${init.stderr}`);
  const port = await freePort();
  // Durability settings off: a throwaway cluster for tests, not the data anyone keeps.
  const [command, args] = asClusterUser(join(bin, 'postgres'), [
    '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off',
    '-c', 'full_page_writes=off', '-c', 'max_connections=300', '-c', 'shared_buffers=32MB',
  ]);
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString()).slice(-20_000)));
  // The server outlives nothing: a test process that dies takes it down too.
  const kill = () => {
    const pid = postmasterPid(data);
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        // gone already
      }
    }
  };
  process.once('exit', kill);
  const admin = (dbname: string) => new pg.Client({ host: '127.0.0.1', port, user, password, database: dbname });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = admin('postgres');
    try {
      await client.connect();
      await client.end();
      break;
    } catch (error) {
      await client.end().catch(() => {});
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`PostgreSQL did not start: ${(error as Error).message}\n${log}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const sql = async <R extends pg.QueryResultRow>(dbname: string, text: string, values?: unknown[]): Promise<R[]> => {
    const client = admin(dbname);
    await client.connect();
    try {
      return (await client.query<R>(text, values)).rows;
    } finally {
      await client.end();
    }
  };
  return {
    host: '127.0.0.1',
    port,
    user,
    password,
    dir,
    options: (dbname) => ({ host: '127.0.0.1', port, user, password, dbname, sslmode: 'disable', pool: { maxOpen: 10, maxIdle: 2, maxLifetimeMs: 0 } }),
    async createDatabase(name = `wharf_${process.pid}_${(counter += 1)}`, options = {}) {
      await sql('postgres', `CREATE DATABASE "${name}"${options.template ? ` TEMPLATE "${options.template}"` : ''}`);
      return name;
    },
    sql,
    async stop() {
      process.removeListener('exit', kill);
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        kill();
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postmasterPid(data: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
