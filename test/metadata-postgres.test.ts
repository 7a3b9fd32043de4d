import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { collectGarbage } from '../src/gc/garbage-collector.js';
import { BlobStore } from '../src/storage/blob-store.js';
import { FilesystemDriver } from '../src/storage/filesystem-driver.js';
import { Policy } from '../src/auth/policy.js';
import { registryErrorForSystemError } from '../src/errors/index.js';
import { PostgresAccountStore } from '../src/metadata/postgres/postgres-account-store.js';
import { DatabaseUnavailableError } from '../src/metadata/postgres/postgres-database.js';
import { PostgresMetadataStore } from '../src/metadata/postgres/postgres-metadata-store.js';
import { POSTGRES_MIGRATIONS } from '../src/metadata/postgres/schema.js';
import { accountStoreContract } from './support/account-contract.js';
import { metadataStoreContract } from './support/metadata-contract.js';
import { startPostgres, type PostgresServer } from './support/postgres-server.js';

// The same contract suites as test/metadata-sqlite.test.ts, against a real PostgreSQL 15 cluster.
let server: PostgresServer;
const TEMPLATE = 'wharf_template';

before(async () => {
  server = await startPostgres();
  // Migrated once; every store below gets a fresh copy (CREATE DATABASE ... TEMPLATE), empty but current.
  await server.createDatabase(TEMPLATE);
  const store = new PostgresMetadataStore(server.options(TEMPLATE));
  await store.ready;
  await store.close();
});
after(async () => server?.stop());

async function freshDatabase(): Promise<string> {
  return server.createDatabase(undefined, { template: TEMPLATE });
}

metadataStoreContract('postgres', async () => new PostgresMetadataStore(server.options(await freshDatabase())));

accountStoreContract('postgres', async () => {
  const dbname = await freshDatabase();
  return { store: new PostgresAccountStore(server.options(dbname)), other: async () => new PostgresAccountStore(server.options(dbname)) };
});

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

describe('PostgreSQL specifics', () => {
  it('migrates an empty database on open, once, and records the version', async () => {
    const dbname = await server.createDatabase();
    // Replicas starting together: the advisory lock lets one migrate, the others find it done.
    const stores = Array.from({ length: 3 }, () => new PostgresMetadataStore(server.options(dbname)));
    await Promise.all(stores.map((s) => s.ready));
    const versions = await server.sql<{ version: number }>(dbname, 'SELECT version FROM schema_migrations ORDER BY version');
    assert.deepEqual(versions.map((v) => v.version), POSTGRES_MIGRATIONS.map((_, i) => i + 1));
    assert.deepEqual(await stores[0]!.db.migrate(), [], 'nothing left to apply');
    await Promise.all(stores.map((s) => s.close()));
  });

  it('search folds case and diacritics, keeps non-Latin words, and needs every word in the name for a name match', async () => {
    const store = new PostgresMetadataStore(server.options(await freshDatabase()));
    const put = (repository: string, n: number, description: string) =>
      store.putManifest({ repository, digest: digest(n), mediaType: 'application/vnd.oci.image.manifest.v1+json', content: Buffer.from(`{"n":${n}}`), blobs: [], children: [], tags: ['v1'], description });
    await put('team/cafe', 1, 'Un café für Ünïcode');
    await put('team/greeting', 2, 'Привет, мир: it\'s a "quoted" \\ word');
    await put('team/other', 3, 'Mentions team and cafe in passing');
    const names = async (text: string) => (await store.searchRepositories({ text, offset: 0, limit: 10 })).repositories.map((r) => r.name);
    assert.deepEqual(await names('CAFÉ'), ['team/cafe', 'team/other'], 'the name match first, then by description');
    assert.deepEqual(await names('unicode fur'), ['team/cafe']);
    assert.deepEqual(await names('привет'), ['team/greeting']);
    assert.deepEqual(await names('quot'), ['team/greeting']);
    assert.deepEqual(await names('team cafe'), ['team/cafe', 'team/other']);
    assert.deepEqual(await names('x'.repeat(3000)), []);
    const [greeting] = (await store.searchRepositories({ text: 'мир', offset: 0, limit: 1 })).repositories;
    assert.equal(greeting!.description, 'Привет, мир: it\'s a "quoted" \\ word');
    await store.close();
  });

  it('migration 2 describes existing repositories from their newest tagged manifest and indexes them', async () => {
    const dbname = await server.createDatabase();
    await server.sql(dbname, 'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)');
    await server.sql(dbname, POSTGRES_MIGRATIONS[0]!);
    await server.sql(dbname, 'INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)');
    await server.sql(dbname, "INSERT INTO repositories (id, name, created_at) VALUES (1, 'team/app', 0), (2, 'team/plain', 0)");
    const annotated = (text: string) => JSON.stringify({ 'org.opencontainers.image.description': text });
    await server.sql(
      dbname,
      `INSERT INTO manifests (repository_id, digest, media_type, content, size, total_size, annotations, created_at)
       VALUES (1, $1, 'application/vnd.oci.image.manifest.v1+json', '\\x7b7d', 2, 2, $3, 0),
              (1, $2, 'application/vnd.oci.image.manifest.v1+json', '\\x7b7d', 2, 2, $4, 0),
              (2, $1, 'application/vnd.oci.image.manifest.v1+json', '\\x7b7d', 2, 2, NULL, 0)`,
      [digest(1), digest(2), annotated('Old words'), annotated('  Fresh   builds\nnightly ')],
    );
    await server.sql(dbname, "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (1, 'old', $1, 1), (1, 'new', $2, 2), (2, 'v1', $1, 1)", [digest(1), digest(2)]);
    const store = new PostgresMetadataStore(server.options(dbname));
    await store.ready;
    const names = async (text: string) => (await store.searchRepositories({ text, offset: 0, limit: 10 })).repositories;
    assert.deepEqual(await names('nightly'), [{ name: 'team/app', description: 'Fresh builds nightly', stars: 0 }]);
    assert.deepEqual(await names('old'), []);
    assert.deepEqual((await names('team')).map((r) => r.name), ['team/app', 'team/plain']);
    assert.equal((await store.repositoryProfile('team/app'))!.description, 'Fresh builds nightly');
    await store.close();
  });

  it('refuses a database whose schema is newer than this wharf', async () => {
    const dbname = await freshDatabase();
    await server.sql(dbname, 'INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)', [POSTGRES_MIGRATIONS.length + 1]);
    const store = new PostgresMetadataStore(server.options(dbname));
    await assert.rejects(store.ready, /newer than this wharf/);
    await store.close();
  });

  it('names the database but never the password when it cannot connect', async () => {
    const options = { ...server.options('postgres'), password: 'the-wrong-secret' };
    const store = new PostgresMetadataStore(options);
    await assert.rejects(store.ready, (error: Error) => {
      assert.match(error.message, /postgresql:\/\/wharf@127\.0\.0\.1:\d+\/postgres/);
      assert.doesNotMatch(error.message, /the-wrong-secret/);
      return true;
    });
    await store.close();
  });

  it('a database that cannot be reached is DATABASE_UNAVAILABLE, which the HTTP seam answers 503 UNAVAILABLE', async () => {
    const store = new PostgresMetadataStore({ ...server.options('postgres'), port: 1, connectTimeoutMs: 2000 });
    const failure = await store.ready.then(() => undefined, (error: unknown) => error);
    assert.ok(failure instanceof DatabaseUnavailableError);
    assert.equal(registryErrorForSystemError(failure)?.code, 'UNAVAILABLE');
    await store.close();
  });

  it('two stores (two replicas) racing: one claim per job, one winner per upload offset, tags and outbox in commit order', async () => {
    const dbname = await freshDatabase();
    const a = new PostgresMetadataStore(server.options(dbname));
    const b = new PostgresMetadataStore(server.options(dbname));
    for (let i = 0; i < 20; i += 1) await a.enqueueJob({ kind: 'race', payload: { i } });
    const claims = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).claimJob({ kinds: ['race'], owner: `o${i}`, leaseMs: 60_000 })));
    const claimed = claims.filter((c) => c !== undefined).map((c) => c.id);
    assert.equal(claimed.length, 20, 'every job claimed');
    assert.equal(new Set(claimed).size, 20, 'none twice');

    await a.createUpload({ id: 'race-up', repository: 'race', startedAt: Date.now() });
    const advances = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).advanceUpload('race-up', { from: 0, part: { name: `p${i}`, size: 5 }, hashState: undefined })));
    assert.equal(advances.filter(Boolean).length, 1, 'one request wins the offset');
    assert.equal((await b.getUpload('race-up'))!.parts.length, 1);

    // Many pushes moving one tag from both replicas: the history has every move, each one's
    // `previous` is the move before it, and the outbox lists them in the same order.
    for (let i = 1; i <= 8; i += 1) await a.putManifest({ repository: 'race', digest: digest(i), mediaType: 'application/vnd.oci.image.manifest.v1+json', content: Buffer.from(`{"n":${i}}`), blobs: [], children: [], tags: [] });
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 ? a : b).putManifest({ repository: 'race', digest: digest(i + 1), mediaType: 'application/vnd.oci.image.manifest.v1+json', content: Buffer.from(`{"n":${i + 1}}`), blobs: [], children: [], tags: ['latest'] }),
      ),
    );
    const history = (await a.tagHistory('race', 'latest', 100)).reverse();
    assert.equal(history.length, 8);
    assert.equal(history[0]!.previous, undefined);
    for (let i = 1; i < history.length; i += 1) assert.equal(history[i]!.previous, history[i - 1]!.digest, 'each move starts where the one before ended');
    assert.equal((await b.getTaggedManifest('race', 'latest'))!.digest, history.at(-1)!.digest);
    const moves = (await b.readOutbox(0, 1000)).filter((e) => e.event.action === 'tag.move').map((e) => (e.event as { digest: string }).digest);
    assert.deepEqual(moves, history.map((h) => h.digest), 'the outbox lists the moves in the order they committed');
    await Promise.all([a.close(), b.close()]);
  });

  it('a rule granted or revoked on one replica binds the policy of another at its next refresh', async () => {
    const dbname = await freshDatabase();
    const here = new PostgresAccountStore(server.options(dbname));
    const there = new PostgresAccountStore(server.options(dbname));
    const policy = await Policy.create({ admins: [], public: [], rules: [], groups: {}, defaultActions: [] }, here);
    const erin = { kind: 'user' as const, name: 'erin', groups: [] };
    assert.equal(policy.can(erin, 'team/app', 'pull'), false);
    const rule = await there.addRule({ subject: 'user:erin', repository: 'team/**', actions: ['pull'] });
    await policy.refresh();
    assert.equal(policy.can(erin, 'team/app', 'pull'), true);
    assert.equal(await there.deleteRule(rule.id), true);
    await there.addRule({ subject: 'user:erin', repository: 'other/**', actions: ['pull'] });
    await policy.refresh();
    assert.equal(policy.can(erin, 'team/app', 'pull'), false);
    assert.equal(policy.can(erin, 'other/app', 'pull'), true);
    await Promise.all([here.close(), there.close()]);
  });

  it('two replicas racing for the last bytes of a quota: one wins', async () => {
    const dbname = await freshDatabase();
    const a = new PostgresMetadataStore(server.options(dbname));
    const b = new PostgresMetadataStore(server.options(dbname));
    await a.setQuota('team/', 100);
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => (i % 2 ? a : b).addBlob(`team/r${i}`, digest(100 + i), 60)));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    assert.equal((await a.repositoryUsage({ prefix: 'team/', limit: 10 })).reduce((sum, u) => sum + u.bytes, 0), 60);
    await Promise.all([a.close(), b.close()]);
  });

  it('a collection with no delay sweeps every unreferenced blob in one run, though its mark and take run on two connections', async () => {
    const metadata = new PostgresMetadataStore(server.options(await freshDatabase()));
    const root = mkdtempSync(join(tmpdir(), 'wharf-pg-gc-'));
    try {
      const store = new BlobStore(new FilesystemDriver(root));
      const garbage = Array.from({ length: 40 }, (_, i) => digest(700 + i));
      for (const blob of garbage) await metadata.addBlob('gc-fused', blob, 3);
      await metadata.addBlob('gc-fused', digest(800), 3);
      await metadata.putManifest({ repository: 'gc-fused', digest: digest(801), mediaType: 'application/vnd.oci.image.manifest.v1+json', content: Buffer.from('{"keep":1}'), blobs: [{ digest: digest(800), size: 3 }], children: [], tags: ['v1'] });
      await sleep(2);
      const report = await collectGarbage(metadata, store, { dryRun: false, deleteUntagged: false, delayMs: 0 });
      assert.equal(report.deleted.blobs, garbage.length);
      assert.equal(report.awaitingSweep, 0);
      for (const blob of garbage) assert.equal(await metadata.getBlob(blob), undefined, blob);
      assert.equal((await metadata.getBlob(digest(800)))?.state, 'present');
    } finally {
      await metadata.close();
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a collector marking a blob and a push referencing it take turns: the blob is kept', async () => {
    const dbname = await freshDatabase();
    const a = new PostgresMetadataStore(server.options(dbname));
    const b = new PostgresMetadataStore(server.options(dbname));
    for (let round = 0; round < 10; round += 1) {
      const blob = digest(500 + round);
      await a.addBlob('gc-race', blob, 3);
      const [marked] = await Promise.all([
        a.markBlobsDeleting([blob], { touchedBefore: Date.now() + 60_000 }),
        b.putManifest({ repository: 'gc-race', digest: digest(600 + round), mediaType: 'application/vnd.oci.image.manifest.v1+json', content: Buffer.from(`{"r":${round}}`), blobs: [{ digest: blob, size: 3 }], children: [], tags: [] }),
      ]);
      // Whichever went first, the referenced blob ends present and cannot be swept.
      assert.equal((await a.getBlob(blob))!.state, 'present', `round ${round} (marked: ${marked.length})`);
      assert.deepEqual(await a.beginBlobSweeps([blob], { touchedBefore: Date.now() + 60_000, markedBefore: Date.now() + 60_000 }), []);
    }
    await Promise.all([a.close(), b.close()]);
  });
});
