import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PullThroughCache } from '../src/proxy/pull-through-cache.js';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { runnableLayout } from './support/client-scenarios.js';
import { raw } from './support/http.js';
import { scrape, total } from './support/prometheus.js';
import { background, ok, requireTool, run, waitFor } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

/**
 * The pull-through cache in front of a second Wharf that wants bearer tokens from its own
 * issuer: registry:2's form from the environment (REGISTRY_PROXY_*) pulled with skopeo, and
 * Wharf's multi-upstream form as the mirror of podman's registries.conf and of containerd's
 * hosts.toml (`?ns=`).
 */
const PASSWORD = 'proxy-upstream-pw';

let work: string;
let upstream: WharfProcess;
let digest: string;

before(async () => {
  for (const tool of ['skopeo', 'podman', 'ctr', 'containerd']) requireTool(tool);
  // Short: podman refuses a runroot path longer than 50 characters.
  work = mkdtempSync(join(tmpdir(), 'wpm-'));
  writeHtpasswd(join(work, 'htpasswd'), { puller: PASSWORD });
  writeFileSync(
    join(work, 'upstream.yml'),
    `auth:\n  htpasswd: { path: ${join(work, 'htpasswd')} }\n  token: { service: upstream-test, issuer: upstream-issuer }\n  policy:\n    admins: [puller]\n`,
  );
  upstream = await startWharf({ args: [join(work, 'upstream.yml')] });
  digest = await runnableLayout(join(work, 'layout'));
  await ok('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', '--dest-creds', `puller:${PASSWORD}`, `oci:${join(work, 'layout')}:hello`, `docker://${upstream.host}/team/hello:1`]);
  const anonymous = await raw(upstream.url, 'GET', '/v2/team/hello/manifests/1');
  assert.equal(anonymous.status, 401, 'the upstream wants a token');
});
after(async () => {
  await upstream?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("registry:2's form: REGISTRY_PROXY_REMOTEURL, the whole registry mirrors one upstream", () => {
  let cache: WharfProcess;
  before(async () => {
    cache = await startWharf({
      env: { REGISTRY_PROXY_REMOTEURL: upstream.url, REGISTRY_PROXY_USERNAME: 'puller', REGISTRY_PROXY_PASSWORD: PASSWORD, REGISTRY_PROXY_TTL: '168h' },
    });
  });
  after(async () => cache?.dispose());

  test('skopeo pulls through it (bearer tokens fetched and reused upstream), and it refuses pushes with 405', async () => {
    const upstreamLog = upstream.output().length;
    const raw1 = await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${cache.host}/team/hello:1`]);
    assert.equal(JSON.parse(raw1).schemaVersion, 2);
    await ok('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${cache.host}/team/hello:1`, `dir:${join(work, 'r2')}`]);
    const manifest = readFileSync(join(work, 'r2', 'manifest.json'));
    assert.equal(`sha256:${(await import('node:crypto')).createHash('sha256').update(manifest).digest('hex')}`, digest);
    const push = await raw(cache.url, 'POST', '/v2/team/other/blobs/uploads/');
    assert.equal(push.status, 405);
    assert.equal(push.json().errors[0].code, 'UNSUPPORTED');
    const catalog = await raw(cache.url, 'GET', '/v2/_catalog');
    assert.deepEqual(catalog.json().repositories, ['team/hello']);
    // One token per scope, reused: far fewer token requests than registry requests.
    const lines = upstream.output().slice(upstreamLog).split('\n');
    const tokenRequests = lines.filter((line) => line.includes('"path":"/auth/token"')).length;
    const registryRequests = lines.filter((line) => line.includes('"path":"/v2/team/hello/')).length;
    // At most one token per serving process (two by default) for the one scope.
    assert.ok(tokenRequests >= 1 && tokenRequests <= 2 && registryRequests >= 3, `token requests: ${tokenRequests}, registry requests: ${registryRequests}`);
    assert.ok(!cache.output().includes(PASSWORD));
  });
});

describe("Wharf's multi-upstream form as a podman and containerd mirror", () => {
  let cache: WharfProcess;
  before(async () => {
    writeFileSync(
      join(work, 'cache.yml'),
      `proxy:\n  upstreams:\n    - prefix: upstream.test\n      remoteurl: ${upstream.url}\n      username: puller\n      password: ${PASSWORD}\n      tagttl: 1m\n`,
    );
    cache = await startWharf({ args: [join(work, 'cache.yml')] });
  });
  after(async () => cache?.dispose());

  test('podman pull with a registries.conf mirror entry', async () => {
    const conf = join(work, 'registries.conf');
    writeFileSync(
      conf,
      `[[registry]]\nprefix = "${upstream.host}"\nlocation = "${upstream.host}"\ninsecure = true\n[[registry.mirror]]\nlocation = "${cache.host}/upstream.test"\ninsecure = true\n`,
    );
    const storage = ['--root', join(work, 'p', 'root'), '--runroot', join(work, 'p', 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
    const env = { ...process.env, HOME: join(work, 'home'), CONTAINERS_REGISTRIES_CONF: conf, REGISTRY_AUTH_FILE: join(work, 'auth.json') };
    writeFileSync(env.REGISTRY_AUTH_FILE, '{"auths":{}}');
    // No credentials for the upstream itself: only the mirror can serve this pull.
    await ok('podman', [...storage, 'pull', `${upstream.host}/team/hello:1`], { env });
    const id = await ok('podman', [...storage, 'image', 'inspect', '--format', '{{.Digest}}', `${upstream.host}/team/hello:1`], { env });
    assert.equal(id.trim(), digest);
    const served = cache.output().split('\n').filter((line) => line.includes('"path":"/v2/upstream.test/team/hello/manifests/1"'));
    assert.ok(served.length >= 1, 'the mirror served the manifest');
  });

  test('ctr pull --hosts-dir with a hosts.toml mirror entry (containerd asks with ?ns=)', async () => {
    const dir = join(work, 'ctrd');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.toml'), `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${dir}/containerd.sock"\n[ttrpc]\n  address = "${dir}/containerd.sock.ttrpc"\n[debug]\n  address = ""\n[metrics]\n  address = ""\n`);
    const containerd: ChildProcess = background('containerd', ['--config', join(dir, 'config.toml')]);
    try {
      const env = { ...process.env, CONTAINERD_ADDRESS: join(dir, 'containerd.sock'), CONTAINERD_NAMESPACE: 'wharf-proxy-test' };
      await waitFor(async () => (await run('ctr', ['version'], { env })).code === 0, 'containerd');
      const hosts = join(work, 'hosts', upstream.host);
      mkdirSync(hosts, { recursive: true });
      writeFileSync(join(hosts, 'hosts.toml'), `server = "${upstream.url}"\n\n[host."${cache.url}"]\n  capabilities = ["pull", "resolve"]\n`);
      await ok('ctr', ['images', 'pull', '--hosts-dir', join(work, 'hosts'), '--snapshotter', 'native', `${upstream.host}/team/hello:1`], { env });
      const list = await ok('ctr', ['images', 'ls'], { env });
      assert.ok(list.includes(digest), list);
      const served = cache.output().split('\n').filter((line) => line.includes('"path":"/v2/team/hello/manifests/1"') && line.includes('ns='));
      assert.ok(served.length >= 1, 'containerd asked the mirror with ?ns=');
    } finally {
      containerd.kill('SIGTERM');
      await new Promise((r) => containerd.once('exit', r));
    }
  });

  test('the cached image is ordinary content of the cache: catalog and tags', async () => {
    const catalog = await raw(cache.url, 'GET', '/v2/_catalog');
    assert.ok(catalog.json().repositories.includes('upstream.test/team/hello'), JSON.stringify(catalog.json()));
    const tags = await raw(cache.url, 'GET', '/v2/upstream.test/team/hello/tags/list');
    assert.deepEqual(tags.json().tags, ['1']);
    assert.equal((await raw(cache.url, 'GET', '/v2/upstream.test/team/hello/manifests/1', { headers: { Authorization: basic('x', 'y') } })).status, 200);
  });
});

describe('ttl, garbage collection and metrics', () => {
  let cache: WharfProcess;
  before(async () => {
    writeFileSync(
      join(work, 'ttl.yml'),
      [
        'http:',
        '  debug:',
        '    addr: 127.0.0.1:0',
        '    prometheus: {enabled: true, path: /metrics}',
        'proxy:',
        '  upstreams:',
        '    - prefix: upstream.test',
        `      remoteurl: ${upstream.url}`,
        '      username: puller',
        `      password: ${PASSWORD}`,
        '      ttl: 2s',
        // Retention (which applies ttl) and collection every second, with no safety delay.
        'retention: {interval: 1s}',
        'storage:',
        '  gc: {enabled: true, interval: 1s, delay: 0s, deleteuntagged: true}',
        'history: {retention: 0s}',
      ].join('\n'),
    );
    cache = await startWharf({ args: [join(work, 'ttl.yml')] });
  });
  after(async () => cache?.dispose());

  test('upstream requests and cache hits are counted per upstream; content nobody pulled within ttl is expired and collected', async () => {
    await ok('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${cache.host}/upstream.test/team/hello:1`, `dir:${join(work, 'ttl-copy')}`]);
    // A client has its last bytes once they are verified; the cache stores the image just after
    // (the blob made durable, then the manifest), which another worker process sees only then.
    await waitFor(async () => (await raw(cache.url, 'GET', '/v2/_catalog')).json().repositories.length > 0, 'the image cached', 10_000);
    await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${cache.host}/upstream.test/team/hello@${digest}`]);
    const debug = /"debug":"([^"]+)"/.exec(cache.output());
    assert.ok(debug, 'the debug address');
    const families = await scrape(`http://${debug[1]}/metrics`);
    assert.ok(total(families, 'wharf_proxy_upstream_requests_total', { upstream: 'upstream.test', kind: 'blob' }) >= 2, families.text);
    assert.ok(total(families, 'wharf_proxy_upstream_requests_total', { upstream: 'upstream.test', kind: 'manifest' }) >= 1, 'manifest requests');
    assert.ok(total(families, 'wharf_proxy_cache_requests_total', { upstream: 'upstream.test', kind: 'manifest', outcome: 'hit' }) >= 1, families.text.split('\n').filter((l) => l.includes('proxy')).join('\n'));
    const blobFiles = () => readdirSync(join(cache.dataDir, 'blobs', 'sha256'), { recursive: true }).filter((name) => /(^|\/)[0-9a-f]{64}$/.test(String(name)));
    await waitFor(async () => (await raw(cache.url, 'GET', '/v2/_catalog')).json().repositories.length > 0, 'the image cached', 10_000);
    assert.ok(blobFiles().length >= 2, `blob files: ${blobFiles().join(' ')}`);
    // Nobody pulls it again: after ttl, retention removes the tag, collection the manifest and blobs.
    await waitFor(async () => blobFiles().length === 0, 'the expired image collected', 30_000);
    const tags = await raw(cache.url, 'GET', '/v2/upstream.test/team/hello/tags/list');
    assert.deepEqual(tags.json().tags ?? [], []);
  });
});

describe('names: Docker Hub official images with and without library/, containerd namespaces', () => {
  test('docker.io/alpine and docker.io/library/alpine are the same cached repository', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-names-'));
    try {
      const cache = new PullThroughCache({
        wholeRegistry: false,
        upstreams: [
          { prefix: 'docker.io', remoteUrl: 'https://registry-1.docker.io', tagTtlMs: 60_000 },
          { prefix: 'ghcr.io', remoteUrl: 'https://ghcr.io', tagTtlMs: 60_000 },
        ],
        fetchDirectory: dir,
        ingest: async () => undefined,
        log: { warn: () => undefined, info: () => undefined },
      });
      assert.deepEqual(cache.locate('docker.io/alpine') && { remote: cache.locate('docker.io/alpine')!.remote, local: cache.locate('docker.io/alpine')!.local }, { remote: 'library/alpine', local: 'docker.io/library/alpine' });
      assert.equal(cache.locate('docker.io/library/alpine')?.local, 'docker.io/library/alpine');
      assert.equal(cache.locate('docker.io/bitnami/redis')?.remote, 'bitnami/redis');
      assert.equal(cache.locate('ghcr.io/alpine')?.remote, 'alpine', 'library/ is Docker Hub only');
      assert.equal(cache.locate('team/app'), undefined, 'local repositories stay local');
      assert.equal(cache.namespaced('docker.io', 'library/alpine'), 'docker.io/library/alpine');
      assert.equal(cache.namespaced('ghcr.io', 'org/tool'), 'ghcr.io/org/tool');
      assert.equal(cache.namespaced('quay.io', 'org/tool'), undefined);
      cache.close();
      const whole = new PullThroughCache({
        wholeRegistry: true,
        upstreams: [{ prefix: '', remoteUrl: 'https://registry-1.docker.io', tagTtlMs: 60_000 }],
        fetchDirectory: dir,
        ingest: async () => undefined,
        log: { warn: () => undefined, info: () => undefined },
      });
      assert.equal(whole.locate('alpine')?.remote, 'library/alpine');
      assert.equal(whole.locate('library/alpine')?.local, 'library/alpine');
      whole.close();
      const hubMirror = new PullThroughCache({
        wholeRegistry: false,
        upstreams: [{ prefix: 'docker.io', remoteUrl: 'https://hub-mirror.internal.example', tagTtlMs: 60_000 }],
        fetchDirectory: dir,
        ingest: async () => undefined,
        log: { warn: () => undefined, info: () => undefined },
      });
      assert.equal(hubMirror.locate('docker.io/alpine')?.remote, 'library/alpine', 'a mirror of Docker Hub under docker.io names images as Docker Hub does');
      hubMirror.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
