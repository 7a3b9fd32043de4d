import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorCode, raw } from './support/http.js';
import { OCI_MANIFEST, configBlob, imageManifest, randomBlob } from './support/oci-fixtures.js';
import { pushBlob, putManifest } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const config = configBlob();
const layer = randomBlob(256);
const image = imageManifest(config, [layer]);

async function pushImage(url: string, repo: string, tags: string[]): Promise<void> {
  await pushBlob(url, repo, config);
  await pushBlob(url, repo, layer);
  for (const tag of tags) assert.equal((await putManifest(url, repo, tag, image, OCI_MANIFEST)).status, 201);
}

describe('deletion disabled (the default)', () => {
  let wharf: WharfProcess;
  before(async () => {
    wharf = await startWharf();
    await pushImage(wharf.url, 'keep', ['v1']);
  });
  after(async () => wharf.dispose());

  it('answers every DELETE with 405 UNSUPPORTED and deletes nothing', async () => {
    for (const path of [`/v2/keep/manifests/${image.digest}`, '/v2/keep/manifests/v1', `/v2/keep/blobs/${layer.digest}`]) {
      const res = await raw(wharf.url, 'DELETE', path);
      assert.equal(res.status, 405, path);
      assert.equal(errorCode(res), 'UNSUPPORTED', path);
    }
    assert.equal((await raw(wharf.url, 'HEAD', '/v2/keep/manifests/v1')).status, 200);
    assert.equal((await raw(wharf.url, 'HEAD', `/v2/keep/blobs/${layer.digest}`)).status, 200);
  });
});

describe('deletion enabled by environment variable', () => {
  let wharf: WharfProcess;
  before(async () => {
    wharf = await startWharf({ env: { REGISTRY_STORAGE_DELETE_ENABLED: 'true' } });
    await pushImage(wharf.url, 'gone', ['v1', 'v2', 'v3']);
  });
  after(async () => wharf.dispose());

  it('DELETE by tag removes only that tag', async () => {
    assert.equal((await raw(wharf.url, 'DELETE', '/v2/gone/manifests/v3')).status, 202);
    assert.equal((await raw(wharf.url, 'HEAD', '/v2/gone/manifests/v3')).status, 404);
    assert.equal((await raw(wharf.url, 'HEAD', `/v2/gone/manifests/${image.digest}`)).status, 200);
    assert.deepEqual((await raw(wharf.url, 'GET', '/v2/gone/tags/list')).json().tags, ['v1', 'v2']);
    assert.equal(errorCode(await raw(wharf.url, 'DELETE', '/v2/gone/manifests/v3')), 'MANIFEST_UNKNOWN');
  });

  it('DELETE by digest removes the manifest and every tag on it', async () => {
    assert.equal((await raw(wharf.url, 'DELETE', `/v2/gone/manifests/${image.digest}`)).status, 202);
    assert.equal((await raw(wharf.url, 'GET', `/v2/gone/manifests/${image.digest}`)).status, 404);
    assert.equal((await raw(wharf.url, 'GET', '/v2/gone/manifests/v1')).status, 404);
    assert.deepEqual((await raw(wharf.url, 'GET', '/v2/gone/tags/list')).json().tags, []);
    assert.equal(errorCode(await raw(wharf.url, 'DELETE', `/v2/gone/manifests/${image.digest}`)), 'MANIFEST_UNKNOWN');
  });
});

describe('hostile names, paths and methods', () => {
  let wharf: WharfProcess;
  before(async () => {
    wharf = await startWharf({ args: ['--delete'] });
    await pushImage(wharf.url, 'victim', ['v1']);
  });
  after(async () => wharf.dispose());

  const names = [
    '..',
    '../victim',
    'a/../victim',
    '%2e%2e',
    '%2e%2e/victim',
    'a%2fb',
    'victim%2f..%2f..',
    'a//b',
    'a/./b',
    'UPPER',
    'trailing-',
    '-leading',
    'a'.repeat(256),
    'sp ace',
    'x%00y',
  ];

  it('refuses each bad repository name with NAME_INVALID on every endpoint, before touching storage', async () => {
    for (const name of names) {
      const encoded = name.replace(/ /g, '%20');
      for (const [method, path] of [
        ['GET', `/v2/${encoded}/manifests/v1`],
        ['PUT', `/v2/${encoded}/manifests/v1`],
        ['GET', `/v2/${encoded}/blobs/${layer.digest}`],
        ['POST', `/v2/${encoded}/blobs/uploads/`],
        ['GET', `/v2/${encoded}/tags/list`],
        ['GET', `/v2/${encoded}/referrers/${image.digest}`],
      ] as const) {
        const res = await raw(wharf.url, method, path, method === 'PUT' ? { headers: { 'Content-Type': OCI_MANIFEST }, body: image.data } : {});
        assert.equal(res.status, 400, `${method} ${path}: ${res.status}`);
        assert.equal(errorCode(res), 'NAME_INVALID', `${method} ${path}`);
      }
    }
    assert.equal((await raw(wharf.url, 'HEAD', '/v2/victim/manifests/v1')).status, 200, 'victim intact');
  });

  it('accepts multi-component names', async () => {
    await pushImage(wharf.url, 'org/team/app/api', ['v1']);
    assert.equal((await raw(wharf.url, 'GET', '/v2/org/team/app/api/manifests/v1')).status, 200);
  });

  it('answers unknown paths with 404 and wrong methods with 405, in the OCI error format', async () => {
    const notFound = await raw(wharf.url, 'GET', '/v2/victim/nothing/here');
    assert.equal(notFound.status, 404);
    assert.ok(errorCode(notFound));
    // `/` is the web UI's (docs/web-ui.md); other methods there are no endpoint.
    const root = await raw(wharf.url, 'GET', '/');
    assert.equal(root.status, 200);
    assert.match(root.header('content-type') ?? '', /^text\/html/);
    const elsewhere = await raw(wharf.url, 'PUT', '/');
    assert.equal(elsewhere.status, 404);
    assert.equal(errorCode(elsewhere), 'NOT_FOUND');
    const wrong = await raw(wharf.url, 'PATCH', '/v2/victim/manifests/v1');
    assert.equal(wrong.status, 405);
    assert.ok(wrong.header('allow')?.includes('GET'));
  });

  it('never answers 500 to garbage, and stays up', async () => {
    const probes: Array<[string, string, Record<string, string>?, string?]> = [
      ['GET', '/v2/victim/blobs/sha256:'],
      ['GET', `/v2/victim/blobs/${'sha256:' + 'a'.repeat(64)}`],
      ['POST', '/v2/victim/blobs/uploads/?mount=garbage&from=..'],
      ['POST', '/v2/victim/blobs/uploads/?digest=sha256:zz', {}, 'x'],
      ['PUT', '/v2/victim/manifests/v1', { 'Content-Type': 'text/plain' }, 'not json'],
      ['PUT', '/v2/victim/manifests/v1', { 'Content-Type': OCI_MANIFEST }, '{"schemaVersion":2,"config":{"digest":42}}'],
      ['PUT', '/v2/victim/manifests/v1', { 'Content-Type': OCI_MANIFEST }, '{"schemaVersion":2,"layers":"no"}'],
      ['PUT', '/v2/victim/manifests/v1', { 'Content-Type': OCI_MANIFEST }, '{"schemaVersion":2,"mediaType":42}'],
      ['PUT', '/v2/victim/manifests/v1', { 'Content-Type': OCI_MANIFEST }, 'null'],
      ['GET', '/v2/_catalog?last=%ff%fe'],
      ['GET', '/v2/victim/referrers/sha256:zz?artifactType=%00'],
      ['GET', '/v2/victim/manifests/%ZZ'],
      ['DELETE', '/v2/victim/blobs/uploads/not-a-uuid'],
      ['PATCH', '/v2/victim/blobs/uploads/00000000-0000-0000-0000-000000000000', { 'Content-Range': '0-0' }, 'x'],
      ['GET', '/v2/victim/blobs/' + 'sha256:' + 'a'.repeat(64), { Range: 'bytes=9-1' }],
    ];
    for (const [method, path, headers, body] of probes) {
      const res = await raw(wharf.url, method, path, { headers: headers ?? {}, ...(body !== undefined ? { body } : {}) });
      assert.ok(res.status < 500, `${method} ${path}: ${res.status} ${res.body}`);
      if (res.status >= 400) assert.ok(errorCode(res), `${method} ${path} has an OCI error body`);
    }
    const repeated = await raw(wharf.url, 'GET', '/v2/victim/tags/list?n=1&n=2&last=');
    assert.equal(repeated.status, 200, 'repeated parameters: the first one counts');
    assert.equal((await raw(wharf.url, 'GET', '/v2/')).status, 200);
    assert.doesNotMatch(wharf.output(), /unexpected error/);
  });
});
