import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';

const DIGEST = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;

function tempDb(): { path: string; dispose(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-sqlite-'));
  return { path: join(dir, 'wharf.db'), dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

test('writes queued together commit together, and one failing write rolls back alone', async () => {
  const db = tempDb();
  const store = new SqliteMetadataStore({ path: db.path });
  try {
    const results = await Promise.allSettled([
      store.addBlob('a/one', DIGEST(1), 10),
      store.addBlob('a/two', DIGEST(2), 20),
      store.createUpload({ id: 'u1', repository: 'a/one', startedAt: 1 }),
      // The same id again breaks the primary key.
      store.createUpload({ id: 'u1', repository: 'a/three', startedAt: 2 }),
      // Creates its repository, then breaks a NOT NULL constraint: the repository must go too.
      store.putManifest({
        repository: 'a/broken',
        digest: DIGEST(9),
        mediaType: null as unknown as string,
        content: Buffer.from('{}'),
        blobs: [],
        children: [],
        tags: ['t'],
      }),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);

    // Another connection (another process, in production) sees exactly the successful writes.
    const other = new SqliteMetadataStore({ path: db.path });
    try {
      assert.equal(await other.repositoryBlobSize('a/one', DIGEST(1)), 10);
      assert.equal(await other.repositoryBlobSize('a/two', DIGEST(2)), 20);
      assert.equal(await other.repositoryExists('a/three'), false);
      assert.equal((await other.getUpload('u1'))?.repository, 'a/one');
      assert.equal(await other.repositoryExists('a/broken'), false);
    } finally {
      await other.close();
    }
  } finally {
    await store.close();
    db.dispose();
  }
});

test('a write waiting for another process to release the lock does not block the event loop', async () => {
  const db = tempDb();
  const store = new SqliteMetadataStore({ path: db.path });
  const rival = new Database(db.path);
  try {
    rival.prepare('BEGIN IMMEDIATE').run();
    let written = false;
    const write = store.addBlob('b/held', DIGEST(4), 40).then(() => {
      written = true;
    });
    // While the rival holds the lock, this process still runs timers (and would serve reads).
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(written, false);
    assert.equal(await store.repositoryBlobSize('b/held', DIGEST(4)), undefined);
    rival.prepare('COMMIT').run();
    await write;
    assert.equal(written, true);
    assert.equal(await store.repositoryBlobSize('b/held', DIGEST(4)), 40);
  } finally {
    if (rival.inTransaction) rival.prepare('ROLLBACK').run();
    rival.close();
    await store.close();
    db.dispose();
  }
});

test('close commits writes that are still queued', async () => {
  const db = tempDb();
  const store = new SqliteMetadataStore({ path: db.path });
  const pending = store.addBlob('c/late', DIGEST(5), 50);
  await store.close();
  await pending;
  const reopened = new SqliteMetadataStore({ path: db.path });
  try {
    assert.equal(await reopened.repositoryBlobSize('c/late', DIGEST(5)), 50);
  } finally {
    await reopened.close();
    db.dispose();
  }
});
