import assert from 'node:assert/strict';
import { after } from 'node:test';
import { startPostgres, type PostgresServer } from './postgres-server.js';

/** `REGISTRY_DATABASE_*` that point `wharf serve` at a database of `server` (GitLab's registry keys). */
export function databaseEnv(server: PostgresServer, dbname: string): Record<string, string> {
  return {
    REGISTRY_DATABASE_ENABLED: 'true',
    REGISTRY_DATABASE_HOST: server.host,
    REGISTRY_DATABASE_PORT: String(server.port),
    REGISTRY_DATABASE_USER: server.user,
    REGISTRY_DATABASE_PASSWORD: server.password,
    REGISTRY_DATABASE_DBNAME: dbname,
    REGISTRY_DATABASE_SSLMODE: 'disable',
  };
}

/**
 * Runs an existing API test file, unchanged, against `wharf serve` with PostgreSQL metadata: starts
 * a throwaway cluster, puts REGISTRY_DATABASE_* in this process's environment (which every
 * `startWharf` passes on to the server it starts), then loads the file so that its hooks and tests
 * register as they would on their own.
 */
export async function runOnPostgres(load: () => Promise<unknown>, options: { wrote: 'manifests' | 'blobs' }): Promise<void> {
  const server = await startPostgres();
  const dbname = await server.createDatabase();
  Object.assign(process.env, databaseEnv(server, dbname));
  await load();
  // Registered after the file's own hooks, so it runs after its servers have stopped.
  after(async () => {
    try {
      const [row] = await server.sql<{ n: number }>(dbname, `SELECT count(*)::int AS n FROM ${options.wrote}`);
      assert.ok(row!.n > 0, `the suite's writes are in PostgreSQL (${options.wrote}: ${row!.n})`);
    } finally {
      await server.stop();
    }
  });
}
