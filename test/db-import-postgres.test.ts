import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { raw } from './support/http.js';
import { OCI_MANIFEST, randomBlob } from './support/oci-fixtures.js';
import { pushImage, startUpload } from './support/push.js';
import { startPostgres, type PostgresServer } from './support/postgres-server.js';
import { databaseEnv } from './support/postgres-wharf.js';
import { WHARF_BIN, startWharf } from './support/wharf-process.js';

// `wharf db migrate` and `wharf db import`: an embedded registry (filesystem + SQLite) moves to
// PostgreSQL without a push, and serves the same digests from there.
let server: PostgresServer;
let dir: string;

before(async () => {
  server = await startPostgres();
  dir = mkdtempSync(join(tmpdir(), 'wharf-db-import-'));
});
after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function wharf(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WHARF_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('wharf db', () => {
  it('migrate applies the schema once, then finds it current; without a database it says what to set', async () => {
    const env = databaseEnv(server, await server.createDatabase());
    const first = await wharf(['db', 'migrate', '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    const result = JSON.parse(first.stdout) as { database: string; applied: number[]; current: number };
    assert.deepEqual(result.applied, [1]);
    assert.match(result.database, /^postgresql:\/\/wharf@127\.0\.0\.1:\d+\//);
    const again = await wharf(['db', 'migrate'], env);
    assert.equal(again.code, 0);
    assert.match(again.stdout, /schema is current \(version 1\)/);
    assert.ok(!`${first.stdout}${again.stdout}${again.stderr}`.includes(server.password), 'the password is never printed');
    const none = await wharf(['db', 'migrate'], {});
    assert.equal(none.code, 1);
    assert.match(none.stderr, /database\.enabled/);
  });

  it('imports an embedded registry, refuses a non-empty target, replaces on request, and serves the same digests from PostgreSQL', async () => {
    const embedded = join(dir, 'embedded');
    const source = await startWharf({ dataDir: embedded, args: ['--workers', '1'] });
    const images = [];
    let pending: string;
    try {
      images.push(await pushImage(source.url, 'team/app', 'v1', {}, randomBlob(70_000)));
      images.push(await pushImage(source.url, 'team/app', 'v2', {}));
      images.push(await pushImage(source.url, 'other', 'latest', {}));
      // v1 moved: the history has two moves for it.
      const moved = await raw(source.url, 'PUT', '/v2/team/app/manifests/v1', { headers: { 'Content-Type': OCI_MANIFEST }, body: images[1]!.manifest.data });
      assert.equal(moved.status, 201);
      pending = await startUpload(source.url, 'team/app');
    } finally {
      await source.stop();
    }

    // The outbox pruned (as it is once every consumer has passed its entries): ids carry on after
    // the pruned ones in PostgreSQL too, or a consumer's position would hide new entries.
    const sqlite = new Database(join(embedded, 'wharf.db'));
    const lastOutboxId = sqlite.prepare<[], { id: number }>('SELECT max(id) AS id FROM outbox').get()!.id;
    sqlite.prepare('DELETE FROM outbox').run();
    sqlite.close();

    const dbname = await server.createDatabase();
    const env = databaseEnv(server, dbname);
    const copied = join(dir, 'copied');
    const imported = await wharf(['db', 'import', '--from', embedded, '--data', copied, '--json'], env);
    assert.equal(imported.code, 0, imported.stderr);
    const report = JSON.parse(imported.stdout) as { tables: Record<string, number>; storage: string; filesCopied: number };
    assert.equal(report.tables.repositories, 2);
    assert.equal(report.tables.manifests, 3);
    assert.equal(report.tables.tags, 3);
    assert.equal(report.tables.uploads, 1);
    assert.equal(report.tables.tag_history, 4);
    assert.equal(report.storage, 'copied');
    assert.ok(report.filesCopied >= 6, `blobs copied into the new storage root (${report.filesCopied})`);

    const refused = await wharf(['db', 'import', '--from', embedded, '--data', copied], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already holds metadata.*--replace/);

    const serving = await startWharf({ dataDir: copied, args: ['--workers', '1'], env });
    try {
      for (const { manifest, layer, config } of images) {
        const repository = manifest === images[2]!.manifest ? 'other' : 'team/app';
        const got = await raw(serving.url, 'GET', `/v2/${repository}/manifests/${manifest.digest}`, { headers: { Accept: OCI_MANIFEST } });
        assert.equal(got.status, 200);
        assert.ok(got.body.equals(manifest.data), 'the exact manifest bytes');
        for (const b of [layer, config]) assert.ok((await raw(serving.url, 'GET', `/v2/${repository}/blobs/${b.digest}`)).body.equals(b.data));
      }
      assert.equal((await raw(serving.url, 'HEAD', '/v2/team/app/manifests/v1', { headers: { Accept: OCI_MANIFEST } })).header('docker-content-digest'), images[1]!.manifest.digest);
      assert.deepEqual((await raw(serving.url, 'GET', '/v2/team/app/tags/list')).json().tags, ['v1', 'v2']);
      // The upload begun on the embedded registry goes on here.
      assert.equal((await raw(serving.url, 'GET', pending)).status, 204);
      // New rows continue after the copied ids.
      const next = await pushImage(serving.url, 'team/app', 'v1', {});
      assert.equal((await raw(serving.url, 'HEAD', '/v2/team/app/manifests/v1', { headers: { Accept: OCI_MANIFEST } })).header('docker-content-digest'), next.manifest.digest);
      const history = await server.sql<{ n: number }>(dbname, "SELECT count(*)::int AS n FROM tag_history WHERE tag = 'v1'");
      assert.equal(history[0]!.n, 3);
      const [outbox] = await server.sql<{ first: number }>(dbname, 'SELECT min(id)::int AS first FROM outbox');
      assert.ok(outbox!.first > lastOutboxId, `new outbox entries come after the pruned ones (${outbox!.first} > ${lastOutboxId})`);
    } finally {
      await serving.stop();
    }
    // The maintenance commands work on the same database and storage.
    const fsck = await wharf(['fsck', '--data', copied, '--json'], env);
    assert.equal(fsck.code, 0, `${fsck.stdout}${fsck.stderr}`);
    const gc = await wharf(['garbage-collect', '--data', copied, '--delete-untagged', '--json'], env);
    assert.equal(gc.code, 0, `${gc.stdout}${gc.stderr}`);

    // Again with --replace, keeping the blobs where they are (the same storage root): same rows.
    const replaced = await wharf(['db', 'import', '--from', embedded, '--data', embedded, '--replace'], env);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.match(replaced.stdout, /2 repositories, 3 manifests, 3 tags, \d+ blobs; blobs stay where they are/);
    assert.ok(existsSync(join(embedded, 'wharf.db')), 'the SQLite file is left as it was');
    const again = await startWharf({ dataDir: embedded, args: ['--workers', '1'], env });
    try {
      assert.equal((await raw(again.url, 'GET', `/v2/other/manifests/latest`, { headers: { Accept: OCI_MANIFEST } })).header('docker-content-digest'), images[2]!.manifest.digest);
    } finally {
      await again.stop();
    }
  });
});
