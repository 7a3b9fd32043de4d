import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { raw } from './support/http.js';
import { OCI_MANIFEST, blob, configBlob, imageManifest, randomBlob } from './support/oci-fixtures.js';
import { pushBlob, putManifest, startUpload, withQuery } from './support/push.js';
import { startPostgres, type PostgresServer } from './support/postgres-server.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';
import { startReceiver, type WebhookReceiver } from './support/webhook-receiver.js';
import { writeTestLayout } from './support/oci-layout.js';
import { ok, requireTool, waitFor } from './support/tools.js';

// Two `wharf serve` replicas (each with its worker processes) on different ports, sharing one
// PostgreSQL database and one storage directory, as two hosts behind a load balancer would share
// a database and an object store. No sticky sessions: requests of one push alternate replicas.
let server: PostgresServer;
let receiver: WebhookReceiver;
let dbname: string;
let dir: string;
let a: WharfProcess;
let b: WharfProcess;

before(async () => {
  server = await startPostgres();
  receiver = await startReceiver();
  dbname = await server.createDatabase();
  dir = mkdtempSync(join(tmpdir(), 'wharf-replicas-'));
  const config = join(dir, 'config.yml');
  writeFileSync(
    config,
    `version: 0.1
http:
  draintimeout: 1s
database:
  enabled: true
  host: ${server.host}
  port: ${server.port}
  user: ${server.user}
  password: ${server.password}
  dbname: ${dbname}
  sslmode: disable
  pool:
    maxopen: 4
    maxidle: 1
storage:
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: true
      age: 3s
      interval: 1s
notifications:
  endpoints:
    - name: hook
      url: ${receiver.url}
      timeout: 2s
      backoff: 200ms
`,
  );
  const data = join(dir, 'data');
  // Started together: both migrate the empty database at once; the migration lock lets one do it.
  [a, b] = await Promise.all([startWharf({ dataDir: data, args: [config] }), startWharf({ dataDir: data, args: [config] })]);
});

after(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await receiver?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('two replicas on one PostgreSQL database', () => {
  it('continues a chunked upload whose PATCHes alternate replicas, and commits it on the other', async () => {
    const content = randomBlob(300_000);
    let location = await startUpload(a.url, 'scale/chunked');
    const replicas = [b, a, b];
    const size = Math.ceil(content.data.length / replicas.length);
    for (let i = 0, offset = 0; i < replicas.length; i += 1) {
      const chunk = content.data.subarray(offset, offset + size);
      const res = await raw(replicas[i]!.url, 'PATCH', location, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
      assert.equal(res.status, 202, `PATCH ${i} on ${replicas[i]!.port}: ${res.status} ${res.body}`);
      offset += chunk.length;
      assert.equal(res.header('range'), `0-${offset - 1}`);
      location = res.header('location')!;
    }
    // A stale chunk sent to the other replica is refused there: the offset is shared.
    const stale = await raw(b.url, 'PATCH', location, { headers: { 'Content-Range': '0-9' }, body: content.data.subarray(0, 10) });
    assert.equal(stale.status, 416);
    assert.equal((await raw(b.url, 'GET', location)).header('range'), `0-${content.data.length - 1}`);
    const done = await raw(a.url, 'PUT', withQuery(location, `digest=${content.digest}`));
    assert.equal(done.status, 201, `PUT: ${done.body}`);
    for (const replica of [a, b]) {
      const got = await raw(replica.url, 'GET', `/v2/scale/chunked/blobs/${content.digest}`);
      assert.equal(got.status, 200);
      assert.ok(got.body.equals(content.data), 'both replicas serve the blob');
    }
    // A manifest pushed to one is served by the other at once.
    const config = configBlob({ created: 'chunked' });
    await pushBlob(b.url, 'scale/chunked', config);
    const manifest = imageManifest(config, [content]);
    assert.equal((await putManifest(a.url, 'scale/chunked', 'v1', manifest, OCI_MANIFEST)).status, 201);
    assert.equal((await raw(b.url, 'GET', '/v2/scale/chunked/manifests/v1', { headers: { Accept: OCI_MANIFEST } })).header('docker-content-digest'), manifest.digest);
  });

  it('moves one tag from both replicas at once: one order, every move in the history with the move before it', async () => {
    const repo = 'scale/race';
    const layer = blob('race layer');
    await pushBlob(a.url, repo, layer);
    const manifests = [];
    for (let i = 0; i < 12; i += 1) {
      const config = configBlob({ created: `race ${i}` });
      await pushBlob(i % 2 ? a.url : b.url, repo, config);
      manifests.push(imageManifest(config, [layer]));
    }
    const puts = await Promise.all(manifests.map((m, i) => putManifest(i % 2 ? a.url : b.url, repo, 'latest', m, OCI_MANIFEST)));
    assert.deepEqual(puts.map((p) => p.status), manifests.map(() => 201));
    const [onA, onB] = await Promise.all([a, b].map((r) => raw(r.url, 'HEAD', `/v2/${repo}/manifests/latest`, { headers: { Accept: OCI_MANIFEST } })));
    assert.equal(onA!.header('docker-content-digest'), onB!.header('docker-content-digest'), 'both replicas agree where the tag points');
    const history = await server.sql<{ digest: string; previous: string | null }>(
      dbname,
      "SELECT h.digest, h.previous FROM tag_history h JOIN repositories r ON r.id = h.repository_id WHERE r.name = $1 AND h.tag = 'latest' ORDER BY h.id",
      [repo],
    );
    assert.equal(history.length, 12, 'every move recorded once');
    assert.equal(history[0]!.previous, null);
    for (let i = 1; i < history.length; i += 1) assert.equal(history[i]!.previous, history[i - 1]!.digest, 'each move starts where the one before ended');
    assert.equal(history.at(-1)!.digest, onA!.header('docker-content-digest'));
  });

  it('skopeo pushes an image (with an index) through one replica and copies it back through the other', async () => {
    requireTool('skopeo');
    const layout = writeTestLayout(join(dir, 'layout'));
    const env = { ...process.env, HOME: dir, REGISTRY_AUTH_FILE: join(dir, 'auth.json'), TMPDIR: dir };
    writeFileSync(join(dir, 'auth.json'), '{"auths":{}}');
    await ok('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout.dir}:multi`, `docker://${a.host}/scale/skopeo:multi`], { env });
    const back = join(dir, 'back');
    await ok('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${b.host}/scale/skopeo:multi`, `oci:${back}:multi`], { env });
    const pushed = await ok('skopeo', ['inspect', '--raw', `oci:${layout.dir}:multi`], { env });
    const copied = await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${b.host}/scale/skopeo:multi`], { env });
    assert.equal(copied, pushed, 'the other replica serves the exact index bytes');
    assert.equal(await ok('skopeo', ['inspect', '--raw', `oci:${back}:multi`], { env }), pushed);
  });

  it('delivers each notification once, whichever replica made the change; background jobs run once', async () => {
    const pushed = [];
    for (let i = 0; i < 4; i += 1) {
      const replica = i % 2 ? a : b;
      const config = configBlob({ created: `notify ${i}` });
      const layer = blob(`notify layer ${i}`);
      await pushBlob(replica.url, 'scale/notify', config);
      await pushBlob(replica.url, 'scale/notify', layer);
      const manifest = imageManifest(config, [layer]);
      assert.equal((await putManifest(replica.url, 'scale/notify', `t${i}`, manifest, OCI_MANIFEST)).status, 201);
      pushed.push(manifest.digest);
    }
    const manifestPushes = () => receiver.events().filter((e) => e.action === 'push' && e.target?.repository === 'scale/notify' && e.target?.tag !== undefined);
    await receiver.waitFor(() => manifestPushes().length >= 4);
    // Give a second deliverer the time to (wrongly) send them again.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const ids = receiver.events().map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, 'no event delivered twice');
    assert.deepEqual(manifestPushes().map((e) => e.target.digest).sort(), [...pushed].sort());

    // Recurring jobs: one row per job, whichever replicas scheduled it.
    const jobs = await server.sql<{ key: string; n: number }>(dbname, 'SELECT key, count(*)::int AS n FROM jobs WHERE key IS NOT NULL GROUP BY key');
    assert.ok(jobs.some((j) => j.key === 'uploads.purge'));
    assert.ok(jobs.every((j) => j.n === 1));
    // An abandoned upload is purged once, by whichever replica holds the job's lease then.
    const location = await startUpload(a.url, 'scale/abandoned');
    await waitFor(async () => (await raw(b.url, 'GET', location)).status === 404, 'the abandoned upload to be purged', 20_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const purged = [a, b].flatMap((r) => r.output().split('\n')).filter((line) => line.includes('purged abandoned uploads')).map((line) => JSON.parse(line) as { sessions: number });
    assert.equal(purged.reduce((sum, line) => sum + line.sessions, 0), 1, 'purged by one replica, once');
  });

  it('answers 503 UNAVAILABLE, not 500, while the database is down, and is not ready', async () => {
    await server.stop();
    const pulled = await raw(a.url, 'GET', '/v2/scale/chunked/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
    assert.equal(pulled.status, 503, pulled.body.toString());
    assert.equal(pulled.json().errors[0].code, 'UNAVAILABLE');
    const pushed = await raw(b.url, 'POST', '/v2/scale/down/blobs/uploads/');
    assert.equal(pushed.status, 503, pushed.body.toString());
    assert.equal((await raw(b.url, 'GET', '/readyz')).status, 503);
  });

  it('never logs the database password, and opens no SQLite file', () => {
    assert.equal(existsSync(join(dir, 'data', 'wharf.db')), false);
    for (const replica of [a, b]) {
      assert.match(replica.output(), /"metadata":"postgres".*wharf registry listening/);
      assert.ok(!replica.output().includes(server.password));
    }
  });
});
