import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { raw } from './support/http.js';
import { OCI_MANIFEST, blob, configBlob, imageManifest } from './support/oci-fixtures.js';
import { startPostgres, type PostgresServer } from './support/postgres-server.js';
import { databaseEnv } from './support/postgres-wharf.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

// Search, READMEs, stars and the web UI's repository page through `wharf serve` with its metadata
// in PostgreSQL: what the search-ui HTTP tests check on SQLite, without the clients (test/search.test.ts).
const ALICE = { Authorization: basic('alice', 'alice-secret') };

async function pushDescribed(url: string, repository: string, options: { annotations?: Record<string, string>; labels?: Record<string, string> } = {}): Promise<void> {
  const layer = blob(`layer of ${repository}`);
  const config = configBlob(options.labels ? { config: { Labels: options.labels } } : {});
  for (const b of [layer, config]) {
    const res = await raw(url, 'POST', `/v2/${repository}/blobs/uploads/?digest=${b.digest}`, { headers: { ...ALICE, 'Content-Type': 'application/octet-stream' }, body: b.data });
    assert.equal(res.status, 201, res.body.toString());
  }
  const manifest = imageManifest(config, [layer], options.annotations ? { annotations: options.annotations } : {});
  const res = await raw(url, 'PUT', `/v2/${repository}/manifests/latest`, { headers: { ...ALICE, 'Content-Type': OCI_MANIFEST }, body: manifest.data });
  assert.equal(res.status, 201, res.body.toString());
}

describe('search on PostgreSQL metadata: /v1/search, READMEs, stars, the repository page', () => {
  let server: PostgresServer;
  let dbname: string;
  let dir: string;
  let wharf: WharfProcess;

  before(async () => {
    server = await startPostgres();
    dbname = await server.createDatabase();
    dir = mkdtempSync(join(tmpdir(), 'wharf-search-pg-'));
    writeHtpasswd(join(dir, 'htpasswd'), { alice: 'alice-secret' });
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1
auth:
  htpasswd:
    realm: search-test
    path: ${join(dir, 'htpasswd')}
  policy:
    public: ["library/**", "public/**"]
    rules:
      - subject: user:alice
        repository: "**"
        actions: [pull, push, delete]
`,
    );
    wharf = await startWharf({ args: [join(dir, 'config.yml')], env: databaseEnv(server, dbname) });
    await pushDescribed(wharf.url, 'library/redis', { annotations: { 'org.opencontainers.image.description': 'In-memory data store' } });
    await pushDescribed(wharf.url, 'public/redis-tools', { labels: { 'org.opencontainers.image.description': 'Tools for redis, from a label' } });
    await pushDescribed(wharf.url, 'team/redis-secret');
  });

  after(async () => {
    await wharf?.dispose();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('ranks and filters as on SQLite; READMEs and stars are kept in PostgreSQL', async () => {
    const anonymous = (await raw(wharf.url, 'GET', '/v1/search?q=redis&n=10')).json();
    assert.deepEqual(anonymous.results, [
      { name: 'library/redis', description: 'In-memory data store', star_count: 0, is_official: true, is_automated: false },
      { name: 'public/redis-tools', description: 'Tools for redis, from a label', star_count: 0, is_official: false, is_automated: false },
    ]);
    const names = async (q: string) => (await raw(wharf.url, 'GET', `/v1/search?q=${encodeURIComponent(q)}`, { headers: ALICE })).json().results.map((r: { name: string }) => r.name);
    assert.deepEqual(await names('redis'), ['library/redis', 'team/redis-secret', 'public/redis-tools']);
    assert.deepEqual(await names('memo'), ['library/redis']);
    assert.deepEqual(await names('label tools'), ['public/redis-tools']);

    const readme = await raw(wharf.url, 'PUT', '/v2/team/redis-secret/_wharf/readme', { headers: ALICE, body: '# Tools\n\nEverything **redis** operators need.\n' });
    assert.equal(readme.status, 204, readme.body.toString());
    const profile = (await raw(wharf.url, 'GET', '/v2/team/redis-secret/_wharf/repository', { headers: ALICE })).json();
    assert.equal(profile.description, 'Everything redis operators need.');
    assert.equal(profile.readmeUpdatedBy, 'alice');
    assert.equal(profile.tags, 1);
    assert.ok(profile.bytes > 0);
    assert.deepEqual(await names('operators'), ['team/redis-secret']);

    const starred = await raw(wharf.url, 'PUT', '/v2/library/redis/_wharf/star', { headers: ALICE });
    assert.deepEqual(starred.json(), { name: 'library/redis', starred: true, stars: 1 });
    assert.equal((await raw(wharf.url, 'GET', '/v1/search?q=library/redis')).json().results[0].star_count, 1);
    const [row] = await server.sql<{ n: number }>(dbname, 'SELECT count(*)::int AS n FROM repository_stars');
    assert.equal(row!.n, 1, 'the star is in PostgreSQL');

    const page = await raw(wharf.url, 'GET', '/r/library/redis');
    assert.equal(page.status, 200);
    const html = page.body.toString();
    assert.match(html, /In-memory data store/);
    assert.match(html, /latest/);
  });
});
