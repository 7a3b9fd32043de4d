import { runOnPostgres } from './support/postgres-wharf.js';

// The blob and upload API suite (test/api-blobs-uploads.test.ts), as it is, against a Wharf whose
// metadata is in PostgreSQL (database.enabled) rather than SQLite.
await runOnPostgres(() => import('./api-blobs-uploads.test.js'), { wrote: 'blobs' });
