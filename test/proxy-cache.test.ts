import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { raw } from './support/http.js';
import { blob, configBlob, imageManifest, OCI_MANIFEST, type Blob } from './support/oci-fixtures.js';
import { pushImage as pushToWharf } from './support/push.js';
import { startReferenceRegistry, type ReferenceRegistry } from './support/reference-registry.js';
import { ok, requireTool } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

/**
 * The pull-through cache (docs/pull-through-cache.md) in Wharf's multi-upstream form, in front of
 * Distribution's docker-registry with htpasswd on loopback: misses, hits, tag revalidation after
 * tagttl, serve-stale, shared blob downloads, and what a broken upstream transfer leaves.
 */
const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Pushes a one-layer image the way every registry takes it: POST, then PUT ?digest= per blob. */
async function pushImage(base: string, repository: string, tag: string, headers: Record<string, string>, layer: Blob = blob(`layer ${Math.random()}`)) {
  const config = configBlob({ created: `${repository}:${tag} ${Math.random()}` });
  for (const b of [layer, config]) {
    const start = await raw(base, 'POST', `/v2/${repository}/blobs/uploads/`, { headers });
    assert.equal(start.status, 202, start.body.toString());
    const location = start.header('location')!;
    const url = new URL(location, base);
    url.searchParams.set('digest', b.digest);
    const put = await raw(base, 'PUT', url.pathname + url.search, { headers: { ...headers, 'Content-Type': 'application/octet-stream' }, body: b.data });
    assert.equal(put.status, 201, put.body.toString());
  }
  const manifest = imageManifest(config, [layer]);
  const res = await raw(base, 'PUT', `/v2/${repository}/manifests/${tag}`, { headers: { ...headers, 'Content-Type': OCI_MANIFEST }, body: manifest.data });
  assert.equal(res.status, 201, res.body.toString());
  return { manifest, layer, config };
}

describe('pull-through cache over a docker-registry upstream with htpasswd', () => {
  let upstream: ReferenceRegistry;
  let wharf: WharfProcess;
  let work: string;
  let auth: Record<string, string>;
  let image: Awaited<ReturnType<typeof pushImage>>;

  before(async () => {
    requireTool('skopeo');
    work = mkdtempSync(join(tmpdir(), 'wharf-proxy-'));
    upstream = await startReferenceRegistry({ mode: 'htpasswd' });
    auth = { Authorization: `Basic ${Buffer.from(`${upstream.username}:${upstream.password}`).toString('base64')}` };
    image = await pushImage(upstream.url, 'team/app', 'v1', auth);
    writeFileSync(
      join(work, 'config.yml'),
      `version: 0.1
proxy:
  upstreams:
    - prefix: mirror.example
      remoteurl: ${upstream.url}
      username: ${upstream.username}
      password: ${upstream.password}
      tagttl: 3s
`,
    );
    wharf = await startWharf({ args: [join(work, 'config.yml')] });
  });
  after(async () => {
    await wharf?.dispose();
    await upstream?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('a miss is fetched from the upstream, then served from the cache, as ordinary registry content', async () => {
    const first = await raw(wharf.url, 'GET', '/v2/mirror.example/team/app/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
    assert.equal(first.status, 200, first.body.toString());
    assert.equal(first.header('wharf-proxy-cache'), 'miss');
    assert.equal(first.header('docker-content-digest'), image.manifest.digest);
    assert.ok(first.body.equals(image.manifest.data));
    for (const b of [image.config, image.layer]) {
      const res = await raw(wharf.url, 'GET', `/v2/mirror.example/team/app/blobs/${b.digest}`);
      assert.equal(res.status, 200);
      assert.ok(res.body.equals(b.data));
    }
    const again = await raw(wharf.url, 'GET', '/v2/mirror.example/team/app/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
    assert.equal(again.header('wharf-proxy-cache'), 'hit');
    // The manifest is stored once its blobs are: shortly after they were served.
    let repositories: string[] = [];
    for (let i = 0; i < 100 && repositories.length === 0; i += 1) {
      repositories = (await raw(wharf.url, 'GET', '/v2/_catalog')).json().repositories;
      if (repositories.length === 0) await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(repositories, ['mirror.example/team/app']);
    const tags = await raw(wharf.url, 'GET', '/v2/mirror.example/team/app/tags/list');
    assert.deepEqual(tags.json().tags, ['v1']);
    // The credentials never show.
    assert.ok(!wharf.output().includes(upstream.password!));
  });

  test('repositories under the prefix refuse pushes and deletes (405 UNSUPPORTED); others are ordinary', async () => {
    const push = await raw(wharf.url, 'POST', '/v2/mirror.example/team/app/blobs/uploads/');
    assert.equal(push.status, 405);
    assert.equal(push.json().errors[0].code, 'UNSUPPORTED');
    const del = await raw(wharf.url, 'DELETE', `/v2/mirror.example/team/app/manifests/${image.manifest.digest}`);
    assert.equal(del.status, 405);
    await pushToWharf(wharf.url, 'own/app', 'v1', {});
  });

  test('skopeo copies an image through the cache with identical digests', async () => {
    const out = join(work, 'copied');
    const manifest = await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${wharf.host}/mirror.example/team/app:v1`]);
    assert.equal(sha256(Buffer.from(manifest)), image.manifest.digest);
    await ok('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${wharf.host}/mirror.example/team/app:v1`, `dir:${out}`]);
    assert.ok(readFileSync(join(out, 'manifest.json')).equals(image.manifest.data));
    assert.ok(readFileSync(join(out, image.layer.digest.slice(7))).equals(image.layer.data));
  });

  test('a blob never asked for: HEAD answered from the upstream, Range served while it streams', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024, 7);
    const big = blob(data);
    const pushed = await pushImage(upstream.url, 'team/range', 'v1', auth, big);
    const head = await raw(wharf.url, 'HEAD', `/v2/mirror.example/team/range/blobs/${pushed.layer.digest}`);
    assert.equal(head.status, 200);
    assert.equal(head.header('content-length'), String(data.length));
    const part = await raw(wharf.url, 'GET', `/v2/mirror.example/team/range/blobs/${pushed.layer.digest}`, { headers: { Range: 'bytes=1000-1999' } });
    assert.equal(part.status, 206);
    assert.equal(part.body.length, 1000);
    assert.equal(sha256(part.body), sha256(data.subarray(1000, 2000)));
  });

  test('a tag moved upstream shows after tagttl, not before', async () => {
    const moved = await pushImage(upstream.url, 'team/app', 'v1', auth);
    const before = await raw(wharf.url, 'GET', '/v2/mirror.example/team/app/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
    assert.equal(before.header('docker-content-digest'), image.manifest.digest);
    await new Promise((r) => setTimeout(r, 3200));
    const afterTtl = await raw(wharf.url, 'GET', '/v2/mirror.example/team/app/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
    assert.equal(afterTtl.header('docker-content-digest'), moved.manifest.digest);
    image = moved;
  });
});
