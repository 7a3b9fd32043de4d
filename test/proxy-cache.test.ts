import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { raw } from './support/http.js';
import { blob, configBlob, imageManifest, OCI_MANIFEST, type Blob } from './support/oci-fixtures.js';
import { pushImage as pushToWharf } from './support/push.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { startReferenceRegistry, type ReferenceRegistry } from './support/reference-registry.js';
import { createServer, get, type Server } from 'node:http';
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
  let fault: FaultProxy;
  let liar: Server;
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
    fault = await startFaultProxy(upstream.host);
    // An upstream that answers every blob with the right length and the wrong bytes.
    liar = createServer((req, res) => {
      const m = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? '');
      if (req.url === '/v2/' || req.url === '/v2') res.writeHead(200).end('{}');
      else if (m) res.writeHead(200, { 'Content-Length': 4096, 'Docker-Content-Digest': m[1] }).end(Buffer.alloc(4096, 1));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
    const liarPort = (liar.address() as { port: number }).port;
    writeFileSync(
      join(work, 'config.yml'),
      `version: 0.1
proxy:
  upstreams:
    - prefix: mirror.example
      remoteurl: http://${fault.host}
      username: ${upstream.username}
      password: ${upstream.password}
      tagttl: 3s
    - prefix: small.example
      remoteurl: http://${fault.host}
      username: ${upstream.username}
      password: ${upstream.password}
      maxsize: 3MiB
    - prefix: liar.example
      remoteurl: http://127.0.0.1:${liarPort}
`,
    );
    wharf = await startWharf({ args: [join(work, 'config.yml')] });
  });
  after(async () => {
    await wharf?.dispose();
    await fault?.close();
    liar?.close();
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
    // The cache fetches the new image's blobs itself and then moves its tag (recorded in the tag's history).
    const history = async () => (await raw(wharf.url, 'GET', '/v2/mirror.example/team/app/_wharf/tags/v1/history')).json().history?.[0]?.digest;
    for (let i = 0; i < 100 && (await history()) !== moved.manifest.digest; i += 1) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await history(), moved.manifest.digest);
    image = moved;
  });

  test('20 concurrent pulls of one 256 MiB blob make one upstream GET, and all get the right bytes', async () => {
    const big = blob(pseudoRandomBytes(256 * 1024 * 1024));
    const pushed = await pushImage(upstream.url, 'team/big', 'v1', auth, big);
    const path = `/v2/mirror.example/team/big/blobs/${pushed.layer.digest}`;
    const seen = fault.requests.length;
    const digests = await Promise.all(Array.from({ length: 20 }, (_, i) => streamDigest(`${wharf.url}${path}`, i === 0 ? 10 : 0)));
    for (const d of digests) assert.deepEqual(d, { status: 200, digest: pushed.layer.digest, size: big.data.length });
    const gets = fault.requests.slice(seen).filter((r) => r.method === 'GET' && r.path.endsWith(`/blobs/${pushed.layer.digest}`));
    assert.equal(gets.length, 1, JSON.stringify(fault.requests.slice(seen).map((r) => `${r.method} ${r.path}`)));
    const logged = upstream.output().split('\n').filter((line) => line.includes('response completed') && line.includes('http.request.method=GET') && line.includes(`/blobs/${pushed.layer.digest}`));
    assert.equal(logged.length, 1, 'one blob GET in the upstream\'s access log');
  });

  test('an upstream that cuts the connection mid-blob or sends wrong bytes: an error, nothing cached', async () => {
    const data = pseudoRandomBytes(2 * 1024 * 1024);
    const pushed = await pushImage(upstream.url, 'team/cut', 'v1', auth, blob(data));
    fault.cutAfter(new RegExp(`/blobs/${pushed.layer.digest}$`), 1024 * 1024);
    const path = `/v2/mirror.example/team/cut/blobs/${pushed.layer.digest}`;
    const cut = await streamDigest(`${wharf.url}${path}`);
    assert.notEqual(cut.digest, pushed.layer.digest, 'the client must not get a complete, successful body');
    assert.ok(cut.error || cut.size < data.length, JSON.stringify(cut));
    // Nothing cached: the next pull fetches again, and gets the right bytes.
    const again = await streamDigest(`${wharf.url}${path}`);
    assert.deepEqual(again, { status: 200, digest: pushed.layer.digest, size: data.length });

    const wanted = sha256(pseudoRandomBytes(4096));
    const lie = await streamDigest(`${wharf.url}/v2/liar.example/some/image/blobs/${wanted}`);
    assert.notEqual(lie.digest, wanted);
    assert.ok(lie.error || lie.size < 4096 || lie.status !== 200, JSON.stringify(lie));
    const head = await raw(wharf.url, 'GET', `/v2/liar.example/some/image/blobs/${wanted}`);
    assert.notEqual(sha256(head.body), sha256(Buffer.alloc(4096, 1)), 'wrong bytes are never served whole');
  });

  test('maxsize: the least recently pulled content is evicted first', async () => {
    const pull = async (repository: string) => {
      const m = await raw(wharf.url, 'GET', `/v2/small.example/${repository}/manifests/v1`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(m.status, 200);
      for (const d of [m.json().config.digest, ...m.json().layers.map((l: { digest: string }) => l.digest)]) {
        assert.equal((await raw(wharf.url, 'GET', `/v2/small.example/${repository}/blobs/${d}`)).status, 200);
      }
    };
    const tagsOf = async (repository: string) => (await raw(wharf.url, 'GET', `/v2/small.example/${repository}/tags/list`)).json().tags ?? [];
    await pushImage(upstream.url, 'team/one', 'v1', auth, blob(pseudoRandomBytes(2 * 1024 * 1024 + 1)));
    await pushImage(upstream.url, 'team/two', 'v1', auth, blob(pseudoRandomBytes(2 * 1024 * 1024 + 2)));
    await pull('team/one');
    for (let i = 0; i < 100 && (await tagsOf('team/one')).length === 0; i += 1) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await tagsOf('team/one'), ['v1']);
    await pull('team/two');
    for (let i = 0; i < 100 && (await tagsOf('team/one')).length > 0; i += 1) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await tagsOf('team/one'), [], 'the older image was evicted');
    for (let i = 0; i < 100 && (await tagsOf('team/two')).length === 0; i += 1) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await tagsOf('team/two'), ['v1']);
  });

  test('the upstream stopped: cached tags and digests still pull (marked stale), uncached ones fail cleanly', async () => {
    const logBefore = wharf.output().length;
    await fault.close();
    await new Promise((r) => setTimeout(r, 3200));
    const tag = await raw(wharf.url, 'GET', '/v2/mirror.example/team/app/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
    assert.equal(tag.status, 200, tag.body.toString());
    assert.equal(tag.header('wharf-proxy-cache'), 'stale');
    assert.equal(tag.header('docker-content-digest'), image.manifest.digest, wharf.output().split('\n').filter((l) => l.includes('"component":"proxy"') || l.includes('manifests/v1')).join('\n'));
    const again = await raw(wharf.url, 'GET', '/v2/mirror.example/team/app/manifests/v1', { headers: { Accept: OCI_MANIFEST } });
    assert.equal(again.header('wharf-proxy-cache'), 'stale');
    const byDigest = await raw(wharf.url, 'GET', `/v2/mirror.example/team/app/manifests/${image.manifest.digest}`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(byDigest.status, 200);
    const layer = await raw(wharf.url, 'GET', `/v2/mirror.example/team/app/blobs/${image.layer.digest}`);
    assert.ok(layer.body.equals(image.layer.data));
    const uncached = await raw(wharf.url, 'GET', '/v2/mirror.example/team/never-pulled/manifests/v1');
    assert.equal(uncached.status, 503);
    assert.equal(uncached.json().errors[0].code, 'UNAVAILABLE');
    const outageLines = wharf.output().slice(logBefore).split('\n').filter((line) => line.includes('upstream registry unavailable'));
    assert.equal(outageLines.length, 1, `the outage is logged once, not per request: ${outageLines.join('\n')}`);
    assert.ok(!wharf.output().includes(upstream.password!));
  });
});

/** Deterministic bytes that do not compress: a blob's worth without a random source. */
function pseudoRandomBytes(size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let block = createHash('sha256').update('seed').digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** GETs a URL and hashes the body as it streams (a slow reader when `delayMs` is set); never holds the body. */
function streamDigest(url: string, delayMs = 0): Promise<{ status: number; digest: string; size: number; error?: string }> {
  return new Promise((resolve) => {
    get(url, (res) => {
      const hash = createHash('sha256');
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
        if (delayMs > 0) {
          res.pause();
          setTimeout(() => res.resume(), delayMs);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, digest: `sha256:${hash.digest('hex')}`, size }));
      res.on('error', (error) => resolve({ status: res.statusCode ?? 0, digest: 'incomplete', size, error: error.message }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, digest: 'incomplete', size, error: 'aborted' }));
    }).on('error', (error) => resolve({ status: 0, digest: 'none', size: 0, error: error.message }));
  });
}
