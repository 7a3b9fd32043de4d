import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorCode, raw } from './support/http.js';
import { OCI_INDEX, OCI_MANIFEST, blob, configBlob, imageIndex, imageManifest, randomBlob, sha256 } from './support/oci-fixtures.js';
import { pushBlob, putManifest } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

let wharf: WharfProcess;
let url: string;
const config = configBlob();
const layer = randomBlob(512);
const image = imageManifest(config, [layer]);
const tags = ['1.0', '1.1', '2.0', 'Latest', 'a', 'b_c', 'latest', 'z-9'];
const lexical = [...tags].sort((x, y) => (Buffer.from(x) < Buffer.from(y) ? -1 : 1));

async function pushImage(repo: string, tag: string): Promise<void> {
  await pushBlob(url, repo, config);
  await pushBlob(url, repo, layer);
  const res = await putManifest(url, repo, tag, image, OCI_MANIFEST);
  assert.equal(res.status, 201);
}

before(async () => {
  wharf = await startWharf({ args: ['--delete'] });
  url = wharf.url;
  for (const tag of tags) await pushImage('tagged', tag);
  for (const name of ['zeta', 'alpha/one', 'alpha/two', 'beta', 'alpha']) await pushImage(`cat/${name}`, 'v1');
});
after(async () => wharf.dispose());

describe('tag list', () => {
  it('lists every tag in lexical order without n', async () => {
    const res = await raw(url, 'GET', '/v2/tagged/tags/list');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { name: 'tagged', tags: lexical });
    assert.equal(res.header('link'), undefined);
  });

  it('pages with n and last, with a Link header to the next page', async () => {
    const first = await raw(url, 'GET', '/v2/tagged/tags/list?n=3');
    assert.deepEqual(first.json().tags, lexical.slice(0, 3));
    assert.equal(first.header('link'), `</v2/tagged/tags/list?n=3&last=${encodeURIComponent(lexical[2]!)}>; rel="next"`);
    const next = await raw(url, 'GET', `/v2/tagged/tags/list?n=3&last=${encodeURIComponent(lexical[2]!)}`);
    assert.deepEqual(next.json().tags, lexical.slice(3, 6));
    const rest = await raw(url, 'GET', `/v2/tagged/tags/list?n=100&last=${lexical[5]}`);
    assert.deepEqual(rest.json().tags, lexical.slice(6));
    assert.equal(rest.header('link'), undefined);
    const afterAll = await raw(url, 'GET', '/v2/tagged/tags/list?last=zzz');
    assert.deepEqual(afterAll.json().tags, []);
  });

  it('follows Link headers to collect exactly every tag once', async () => {
    const seen: string[] = [];
    let path: string | undefined = '/v2/tagged/tags/list?n=2';
    while (path) {
      const res = await raw(url, 'GET', path);
      seen.push(...(res.json().tags as string[]));
      path = /<([^>]+)>/.exec(res.header('link') ?? '')?.[1];
    }
    assert.deepEqual(seen, lexical);
  });

  it('answers n=0 with an empty list', async () => {
    const res = await raw(url, 'GET', '/v2/tagged/tags/list?n=0');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json().tags, []);
  });

  it('clamps a huge n instead of allocating for it', async () => {
    const res = await raw(url, 'GET', '/v2/tagged/tags/list?n=999999999999999');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json().tags, lexical);
  });

  it('refuses a malformed n with PAGINATION_NUMBER_INVALID', async () => {
    for (const n of ['-1', 'abc', '1e3', '9999999999999999999999']) {
      const res = await raw(url, 'GET', `/v2/tagged/tags/list?n=${n}`);
      assert.equal(res.status, 400, n);
      assert.equal(errorCode(res), 'PAGINATION_NUMBER_INVALID', n);
    }
  });

  it('answers NAME_UNKNOWN for a repository that does not exist', async () => {
    const res = await raw(url, 'GET', '/v2/no/such/repo/tags/list');
    assert.equal(res.status, 404);
    assert.equal(errorCode(res), 'NAME_UNKNOWN');
    assert.equal(errorCode(await raw(url, 'GET', '/v2/no/such/repo/tags/list?n=0')), 'NAME_UNKNOWN');
  });
});

describe('catalog', () => {
  const repos = ['cat/alpha', 'cat/alpha/one', 'cat/alpha/two', 'cat/beta', 'cat/zeta', 'tagged'];

  it('lists repositories with manifests in lexical order', async () => {
    const res = await raw(url, 'GET', '/v2/_catalog');
    assert.deepEqual(res.json(), { repositories: repos });
  });

  it('pages with n and last and Link', async () => {
    const first = await raw(url, 'GET', '/v2/_catalog?n=4');
    assert.deepEqual(first.json().repositories, repos.slice(0, 4));
    assert.equal(first.header('link'), `</v2/_catalog?n=4&last=${encodeURIComponent('cat/beta')}>; rel="next"`);
    const second = await raw(url, 'GET', '/v2/_catalog?n=4&last=cat%2Fbeta');
    assert.deepEqual(second.json().repositories, repos.slice(4));
    assert.equal(second.header('link'), undefined);
  });

  it('does not list a repository that only has blobs', async () => {
    await pushBlob(url, 'blobs/only', randomBlob(8));
    assert.ok(!(await raw(url, 'GET', '/v2/_catalog')).json().repositories.includes('blobs/only'));
  });

  it('refuses a malformed n', async () => {
    assert.equal(errorCode(await raw(url, 'GET', '/v2/_catalog?n=-5')), 'PAGINATION_NUMBER_INVALID');
  });
});

describe('referrers', () => {
  const repo = 'refs';
  const empty = blob('{}');
  const subject = image;
  const sigConfig = blob('{"sig":1}');
  const signature = imageManifest(sigConfig, [], { configMediaType: 'application/vnd.example.signature.config', subject: { digest: subject.digest, size: subject.data.length }, annotations: { kind: 'sig' } });

  before(async () => {
    await pushImage(repo, 'subject');
    await pushBlob(url, repo, empty);
    await pushBlob(url, repo, sigConfig);
  });

  it('answers 200 with an empty index when nothing refers to the digest', async () => {
    const res = await raw(url, 'GET', `/v2/${repo}/referrers/${sha256('nothing')}`);
    assert.equal(res.status, 200);
    assert.equal(res.header('content-type'), OCI_INDEX);
    assert.deepEqual(res.json(), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
  });

  it('lists manifests whose subject is the digest, with artifactType and annotations', async () => {
    const layerBlob = randomBlob(30);
    const sbomWithLayer = imageManifest(empty, [layerBlob], { artifactType: 'application/vnd.example.sbom', configMediaType: 'application/vnd.oci.empty.v1+json', subject: { digest: subject.digest, size: subject.data.length }, annotations: { kind: 'sbom' } });
    await pushBlob(url, repo, layerBlob);
    const put1 = await putManifest(url, repo, sbomWithLayer.digest, sbomWithLayer, OCI_MANIFEST);
    assert.equal(put1.header('oci-subject'), subject.digest);
    const put2 = await putManifest(url, repo, signature.digest, signature, OCI_MANIFEST);
    assert.equal(put2.status, 201);
    const index = imageIndex([{ digest: sbomWithLayer.digest, size: sbomWithLayer.data.length }], { artifactType: 'application/vnd.example.bundle', subject: { digest: subject.digest, size: subject.data.length } });
    const put3 = await putManifest(url, repo, index.digest, index, OCI_INDEX);
    assert.equal(put3.status, 201);
    assert.equal(put3.header('oci-subject'), subject.digest);

    const res = await raw(url, 'GET', `/v2/${repo}/referrers/${subject.digest}`);
    const manifests = res.json().manifests as Array<Record<string, unknown>>;
    const byDigest = new Map(manifests.map((m) => [m.digest, m]));
    assert.equal(manifests.length, 3);
    assert.deepEqual(byDigest.get(sbomWithLayer.digest), { mediaType: OCI_MANIFEST, digest: sbomWithLayer.digest, size: sbomWithLayer.data.length, artifactType: 'application/vnd.example.sbom', annotations: { kind: 'sbom' } });
    assert.equal(byDigest.get(signature.digest)!.artifactType, 'application/vnd.example.signature.config', 'config media type stands in for artifactType');
    assert.equal(byDigest.get(index.digest)!.mediaType, OCI_INDEX);
    assert.equal(res.header('oci-filters-applied'), undefined);

    const filtered = await raw(url, 'GET', `/v2/${repo}/referrers/${subject.digest}?artifactType=${encodeURIComponent('application/vnd.example.sbom')}`);
    assert.equal(filtered.header('oci-filters-applied'), 'artifactType');
    assert.deepEqual((filtered.json().manifests as Array<{ digest: string }>).map((m) => m.digest), [sbomWithLayer.digest]);
  });

  it('drops a referrer when its manifest is deleted', async () => {
    const before = (await raw(url, 'GET', `/v2/${repo}/referrers/${subject.digest}`)).json().manifests.length as number;
    assert.equal((await raw(url, 'DELETE', `/v2/${repo}/manifests/${signature.digest}`)).status, 202);
    const afterDelete = (await raw(url, 'GET', `/v2/${repo}/referrers/${subject.digest}`)).json().manifests.length as number;
    assert.equal(afterDelete, before - 1);
  });

  it('refuses a malformed digest', async () => {
    const res = await raw(url, 'GET', `/v2/${repo}/referrers/sha256:short`);
    assert.equal(res.status, 400);
    assert.equal(errorCode(res), 'DIGEST_INVALID');
  });
});
