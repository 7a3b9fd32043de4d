import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { cliUser, type CliUser } from './support/cli.js';
import { errorCode, raw } from './support/http.js';
import { OCI_MANIFEST, blob, configBlob, imageManifest } from './support/oci-fixtures.js';
import { ok, requireTool } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';

const ALICE = { Authorization: basic('alice', 'alice-secret') };

/** Pushes a one-layer image whose manifest carries `annotations` and whose config carries `labels`. */
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

describe('search: /v1/search, stars, READMEs, wharf search and podman search', () => {
  let dir: string;
  let wharf: WharfProcess;
  let user: CliUser;

  before(async () => {
    requireTool('podman');
    dir = mkdtempSync(join(tmpdir(), 'wharf-search-'));
    writeHtpasswd(join(dir, 'htpasswd'), { alice: 'alice-secret', bob: 'bob-secret' });
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
search:
  official: ["library/"]
`,
    );
    wharf = await startWharf({ args: [join(dir, 'config.yml')] });
    await pushDescribed(wharf.url, 'library/redis', { annotations: { 'org.opencontainers.image.description': 'In-memory data store' } });
    await pushDescribed(wharf.url, 'public/redis-tools', { labels: { 'org.opencontainers.image.description': 'Tools for redis, from a label' } });
    await pushDescribed(wharf.url, 'team/redis-secret');
    user = cliUser();
  });

  after(async () => {
    await wharf?.dispose();
    user?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('answers in Docker Hub format, best first, only what the caller may pull', async () => {
    const anonymous = await raw(wharf.url, 'GET', '/v1/search?q=redis&n=10');
    assert.equal(anonymous.status, 200);
    const doc = anonymous.json();
    assert.deepEqual(Object.keys(doc).sort(), ['num_pages', 'num_results', 'page', 'page_size', 'query', 'results']);
    assert.equal(doc.query, 'redis');
    assert.deepEqual(doc.results, [
      { name: 'library/redis', description: 'In-memory data store', star_count: 0, is_official: true, is_automated: false },
      { name: 'public/redis-tools', description: 'Tools for redis, from a label', star_count: 0, is_official: false, is_automated: false },
    ]);
    assert.equal(doc.num_results, 2);
    const signedIn = (await raw(wharf.url, 'GET', '/v1/search?q=redis', { headers: ALICE })).json();
    assert.deepEqual(signedIn.results.map((r: { name: string }) => r.name).sort(), ['library/redis', 'public/redis-tools', 'team/redis-secret']);
    const byDescription = (await raw(wharf.url, 'GET', '/v1/search?q=memory')).json();
    assert.deepEqual(byDescription.results.map((r: { name: string }) => r.name), ['library/redis']);
    const paged = (await raw(wharf.url, 'GET', '/v1/search?q=redis&n=1&page=2', { headers: ALICE })).json();
    assert.equal(paged.page, 2);
    assert.equal(paged.num_pages, 3);
    assert.equal(paged.results.length, 1);
    assert.equal(errorCode(await raw(wharf.url, 'GET', '/v1/search?q=x&n=abc')), 'PARAMETER_INVALID');
    assert.equal((await raw(wharf.url, 'GET', '/v1/search?q=x', { headers: { Authorization: basic('alice', 'wrong') } })).status, 401);
    const ping = await raw(wharf.url, 'GET', '/v1/_ping');
    assert.equal(ping.status, 200);
    assert.equal(ping.body.toString(), 'true');
  });

  test('wharf star, repo set-readme and search: docker search columns, filters, limit and Go templates', async () => {
    await user.ok(['login', wharf.host, '-u', 'alice', '--password-stdin'], { input: 'alice-secret' });
    const starred = await user.ok(['star', `${wharf.host}/library/redis`]);
    assert.match(starred.stdout, /Starred .*library\/redis \(1 star\)/);
    writeFileSync(join(dir, 'README.md'), '# Tools\n\nEverything **redis** operators need.\n');
    await user.ok(['repo', 'set-readme', `${wharf.host}/team/redis-secret`, join(dir, 'README.md')]);
    const profile = (await raw(wharf.url, 'GET', '/v2/team/redis-secret/_wharf/repository', { headers: ALICE })).json();
    assert.equal(profile.description, 'Everything redis operators need.');
    assert.match(profile.readme, /^# Tools/);
    // bob may not push to team/: the README is the owner's.
    assert.equal((await raw(wharf.url, 'PUT', '/v2/library/redis/_wharf/readme', { headers: { Authorization: basic('bob', 'bob-secret') }, body: 'x' })).status, 403);
    assert.equal((await raw(wharf.url, 'PUT', '/v2/library/redis/_wharf/star')).status, 401, 'anonymous callers cannot star');

    const table = await user.ok(['search', `${wharf.host}/redis`]);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL$/);
    assert.match(lines[1]!, /^library\/redis\s+In-memory data store\s+1\s+\[OK\]$/);
    assert.equal(lines.length, 4);
    const popular = await user.ok(['search', `${wharf.host}/redis`, '--filter', 'stars=1']);
    assert.deepEqual(popular.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['library/redis']);
    const official = await user.ok(['search', `${wharf.host}/redis`, '--filter', 'is-official=true', '--format', '{{.Name}}|{{.StarCount}}|{{.IsOfficial}}']);
    assert.equal(official.stdout, 'library/redis|1|true\n');
    const limited = await user.ok(['search', `${wharf.host}/redis`, '--limit', '1', '--format', '{{.Name}}']);
    assert.equal(limited.stdout, 'library/redis\n');
    // Nothing here is signed: the registry's signed=true filter leaves no results.
    const signedOnly = await user.ok(['search', `${wharf.host}/redis`, '--filter', 'is-signed=true', '--format', '{{.Name}}']);
    assert.equal(signedOnly.stdout, '');
    await user.ok(['unstar', `${wharf.host}/library/redis`]);
    assert.equal((await raw(wharf.url, 'GET', '/v1/search?q=library/redis')).json().results[0].star_count, 0);
    await user.ok(['star', `${wharf.host}/library/redis`]);
  });

  test('podman search lists the results with stars and the official flag', async () => {
    const out = await ok('podman', ['search', '--tls-verify=false', '--format', '{{.Name}}|{{.Stars}}|{{.Official}}|{{.Description}}', `${wharf.host}/redis`]);
    const rows = out.trim().split('\n');
    assert.ok(rows.includes(`${wharf.host}/library/redis|1|[OK]|In-memory data store`), out);
    assert.ok(rows.some((row) => row.startsWith(`${wharf.host}/public/redis-tools|0||`)), out);
    assert.ok(!out.includes('redis-secret'), 'podman asks without credentials: private repositories stay hidden');
  });
});

describe('search behind bearer tokens (what docker search asks for: registry:catalog:search)', () => {
  test('a token from the built-in issuer shows its subject the repositories they may pull', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-search-token-'));
    writeHtpasswd(join(dir, 'htpasswd'), { alice: 'alice-secret' });
    writeFileSync(
      join(dir, 'config.yml'),
      `auth:
  htpasswd: { path: ${join(dir, 'htpasswd')} }
  token: { service: search-test, issuer: search-test-issuer }
  policy:
    public: ["library/**"]
    rules:
      - { subject: user:alice, repository: "team/**", actions: [pull] }
`,
    );
    const wharf = await startWharf({ args: [join(dir, 'config.yml')] });
    try {
      const store = new SqliteMetadataStore({ path: join(wharf.dataDir, 'wharf.db') });
      const content = Buffer.from('{"schemaVersion":2}');
      await store.putManifest({ repository: 'team/app', digest: `sha256:${'1'.repeat(64)}`, mediaType: OCI_MANIFEST, content, blobs: [], children: [], tags: ['v1'] });
      await store.putManifest({ repository: 'library/app', digest: `sha256:${'2'.repeat(64)}`, mediaType: OCI_MANIFEST, content, blobs: [], children: [], tags: ['v1'] });
      await store.close();
      const query = new URLSearchParams({ service: 'search-test', scope: 'registry:catalog:search' });
      const issued = await raw(wharf.url, 'GET', `/auth/token?${query}`, { headers: { Authorization: basic('alice', 'alice-secret') } });
      assert.equal(issued.status, 200, issued.body.toString());
      const names = async (headers: Record<string, string>) => (await raw(wharf.url, 'GET', '/v1/search?q=app', { headers })).json().results.map((r: { name: string }) => r.name);
      assert.deepEqual(await names({ Authorization: `Bearer ${issued.json().token}` }), ['team/app', 'library/app']);
      assert.deepEqual(await names({}), ['library/app']);
      assert.equal((await raw(wharf.url, 'GET', '/v1/search?q=app', { headers: { Authorization: 'Bearer not-a-token' } })).status, 401);
    } finally {
      await wharf.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
