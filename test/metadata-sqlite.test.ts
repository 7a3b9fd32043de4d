import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';
import { SqliteAccountStore } from '../src/metadata/sqlite/sqlite-account-store.js';
import { MIGRATIONS } from '../src/metadata/sqlite/schema.js';
import { accountStoreContract } from './support/account-contract.js';
import { metadataStoreContract } from './support/metadata-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'wharf-sqlite-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

metadataStoreContract('sqlite', async () => new SqliteMetadataStore({ path: join(dir, `contract-${(n += 1)}.db`) }));

accountStoreContract('sqlite', async () => {
  const path = join(dir, `accounts-${(n += 1)}.db`);
  // The account tables come with the metadata migrations.
  await new SqliteMetadataStore({ path }).close();
  return { store: new SqliteAccountStore({ path }), other: async () => new SqliteAccountStore({ path }) };
});

describe('SQLite specifics', () => {
  it('an account write waiting for another process\'s lock does not stop the event loop', async () => {
    const path = join(dir, 'account-lock.db');
    await new SqliteMetadataStore({ path }).close();
    const store = new SqliteAccountStore({ path });
    const rival = new Database(path);
    rival.prepare('BEGIN IMMEDIATE').run();
    let ticks = 0;
    const ticker = setInterval(() => (ticks += 1), 10);
    try {
      const started = Date.now();
      const created = store.createUser({ name: 'waits', passwordHash: 'x', groups: [] });
      await new Promise((resolve) => setTimeout(resolve, 300));
      rival.prepare('COMMIT').run();
      assert.equal(await created, true);
      assert.ok(Date.now() - started >= 300, 'the write waited for the lock');
      assert.ok(ticks >= 15, `the event loop kept running while it waited (${ticks} ticks)`);
    } finally {
      clearInterval(ticker);
      if (rival.inTransaction) rival.prepare('ROLLBACK').run();
      rival.close();
      await store.close();
    }
  });

  it('a read served from the cache never outlives a commit, its own or another process\'s', async () => {
    const path = join(dir, 'read-cache.db');
    const a = new SqliteMetadataStore({ path });
    const b = new SqliteMetadataStore({ path });
    const digest = (c: string) => `sha256:${c.repeat(64)}`;
    const put = (store: SqliteMetadataStore, manifestDigest: string) =>
      store.putManifest({ repository: 'cached', digest: manifestDigest, mediaType: 'application/vnd.oci.image.manifest.v1+json', content: Buffer.from(manifestDigest), blobs: [], children: [], tags: ['latest'] });
    try {
      await a.addBlob('cached', digest('1'), 5);
      await put(a, digest('a'));
      // Read twice through `a`: the second comes from its cache.
      assert.equal((await a.getTaggedManifest('cached', 'latest'))?.digest, digest('a'));
      assert.equal((await a.getTaggedManifest('cached', 'latest'))?.digest, digest('a'));
      assert.equal(await a.repositoryBlobSize('cached', digest('1')), 5);
      assert.equal(await a.getTaggedManifest('cached', 'missing'), undefined);
      // Another connection (another worker) moves the tag, removes the link and adds the missing tag.
      await put(b, digest('b'));
      await b.unlinkBlob('cached', digest('1'));
      assert.equal((await a.getTaggedManifest('cached', 'latest'))?.digest, digest('b'));
      assert.equal(await a.repositoryBlobSize('cached', digest('1')), undefined);
      // This connection's own writes.
      await a.addBlob('cached', digest('1'), 5);
      assert.equal(await a.repositoryBlobSize('cached', digest('1')), 5);
      await put(a, digest('c'));
      assert.equal((await a.getTaggedManifest('cached', 'latest'))?.digest, digest('c'));
      assert.equal((await a.getManifest('cached', digest('c')))?.digest, digest('c'));
      await a.deleteTag('cached', 'latest');
      assert.equal(await a.getTaggedManifest('cached', 'latest'), undefined);
      assert.ok(Object.isFrozen(await a.getManifest('cached', digest('c'))), 'shared records cannot be changed by one caller');
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('two connections (two processes) share one database file', async () => {
    const path = join(dir, 'shared.db');
    const a = new SqliteMetadataStore({ path });
    const b = new SqliteMetadataStore({ path });
    await a.addBlob('shared', `sha256:${'1'.repeat(64)}`, 5);
    assert.equal(await b.repositoryBlobSize('shared', `sha256:${'1'.repeat(64)}`), 5);
    await a.close();
    await b.close();
  });

  it('reopens an existing database without migrating it again', async () => {
    const path = join(dir, 'reopen.db');
    const first = new SqliteMetadataStore({ path });
    await first.addBlob('kept', `sha256:${'2'.repeat(64)}`, 7);
    await first.close();
    const second = new SqliteMetadataStore({ path });
    assert.equal(await second.blobSize(`sha256:${'2'.repeat(64)}`), 7);
    await second.close();
  });

  it('migration 9 keeps the tag history of a database from before migrations 8 and 9, and adds rules and previous digests', async () => {
    const path = join(dir, 'before-8.db');
    const old = new Database(path);
    for (const step of MIGRATIONS.slice(0, 7)) old.exec(step);
    old.pragma('user_version = 7');
    const digest = `sha256:${'3'.repeat(64)}`;
    old.prepare("INSERT INTO repositories (id, name, created_at) VALUES (1, 'old/app', 1)").run();
    old.prepare("INSERT INTO tag_history (repository_id, tag, digest, action, actor, at) VALUES (1, 'v1', ?, 'push', 'alice', 10)").run(digest);
    old.prepare("INSERT INTO tag_history (repository_id, tag, digest, action, actor, at) VALUES (1, 'v1', ?, 'delete', 'bob', 20)").run(digest);
    old.close();
    const store = new SqliteMetadataStore({ path });
    assert.deepEqual(await store.tagHistory('old/app', 'v1', 10), [
      { tag: 'v1', digest, previous: digest, action: 'delete', at: 20, actor: 'bob' },
      { tag: 'v1', digest, action: 'push', at: 10, actor: 'alice' },
    ]);
    assert.deepEqual(await store.listImmutableTagRules(), []);
    await store.close();
  });
});
