import { runOnPostgres } from './support/postgres-wharf.js';

// The manifest API suite (test/api-manifests.test.ts), as it is, against a Wharf whose metadata is
// in PostgreSQL (database.enabled) rather than SQLite.
await runOnPostgres(() => import('./api-manifests.test.js'), { wrote: 'manifests' });
