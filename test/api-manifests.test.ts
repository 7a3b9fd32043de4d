import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorCode, raw } from './support/http.js';
import {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  OCI_INDEX,
  OCI_MANIFEST,
  blob,
  configBlob,
  imageIndex,
  imageManifest,
  randomBlob,
  sha256,
  sha512,
} from './support/oci-fixtures.js';
import { pushBlob, putManifest } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

let wharf: WharfProcess;
let url: string;
const repo = 'team/app/api';
const config = configBlob();
const layer = randomBlob(4096);
const image = imageManifest(config, [layer]);

before(async () => {
  wharf = await startWharf({ args: ['--delete'] });
  url = wharf.url;
  await pushBlob(url, repo, config);
  await pushBlob(url, repo, layer);
});
after(async () => wharf.dispose());

describe('manifest push and pull', () => {
  it('PUT by tag stores the exact bytes; GET and HEAD by tag and digest return them', async () => {
    const put = await putManifest(url, repo, 'v1', image, OCI_MANIFEST);
    assert.equal(put.status, 201);
    assert.equal(put.header('docker-content-digest'), image.digest);
    assert.equal(put.header('location'), `/v2/${repo}/manifests/${image.digest}`);
    for (const ref of ['v1', image.digest]) {
      const get = await raw(url, 'GET', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      assert.equal(get.status, 200);
      assert.ok(get.body.equals(image.data), 'exact bytes');
      assert.equal(get.header('content-type'), OCI_MANIFEST);
      assert.equal(get.header('docker-content-digest'), image.digest);
      const head = await raw(url, 'HEAD', `/v2/${repo}/manifests/${ref}`);
      assert.equal(head.status, 200);
      assert.equal(head.header('content-length'), String(image.data.length));
      assert.equal(head.body.length, 0);
    }
  });

  it('keeps whitespace and key order exactly as pushed', async () => {
    const pretty = blob(JSON.stringify(image.json, null, '\t') + '\n');
    assert.equal((await putManifest(url, repo, 'pretty', pretty, OCI_MANIFEST)).status, 201);
    const get = await raw(url, 'GET', `/v2/${repo}/manifests/pretty`);
    assert.ok(get.body.equals(pretty.data));
    assert.equal(get.header('docker-content-digest'), pretty.digest);
  });

  it('PUT by digest verifies the digest, sha256 and sha512', async () => {
    assert.equal((await putManifest(url, repo, image.digest, image, OCI_MANIFEST)).status, 201);
    const wrong = await putManifest(url, repo, sha256('not this'), image, OCI_MANIFEST);
    assert.equal(wrong.status, 400);
    assert.equal(errorCode(wrong), 'DIGEST_INVALID');
    const digest512 = sha512(image.data);
    const put512 = await putManifest(url, repo, digest512, image, OCI_MANIFEST);
    assert.equal(put512.status, 201);
    assert.equal(put512.header('docker-content-digest'), digest512);
    assert.equal((await raw(url, 'GET', `/v2/${repo}/manifests/${digest512}`)).status, 200);
  });

  it('tags several names at once with ?tag=', async () => {
    const res = await raw(url, 'PUT', `/v2/${repo}/manifests/${image.digest}?tag=multi-a&tag=multi-b`, {
      headers: { 'Content-Type': OCI_MANIFEST },
      body: image.data,
    });
    assert.equal(res.status, 201);
    // The spec requires OCI-Tag naming each tag set; a client that finds none pushes every tag itself.
    assert.deepEqual(ociTags(res.header('oci-tag')), ['multi-a', 'multi-b']);
    for (const tag of ['multi-a', 'multi-b']) {
      assert.equal((await raw(url, 'HEAD', `/v2/${repo}/manifests/${tag}`)).header('docker-content-digest'), image.digest);
    }
  });

  it('?tag= on a sha512 push: OCI-Tag names each tag once, and the tags resolve to the sha512 digest', async () => {
    const pinned = imageManifest(config, [layer], { annotations: { pinned: 'sha512' } });
    const digest512 = sha512(pinned.data);
    const res = await raw(url, 'PUT', `/v2/${repo}/manifests/${digest512}?tag=s512-a&tag=s512-b&tag=s512-a`, {
      headers: { 'Content-Type': OCI_MANIFEST },
      body: pinned.data,
    });
    assert.equal(res.status, 201);
    assert.equal(res.header('docker-content-digest'), digest512);
    assert.deepEqual(ociTags(res.header('oci-tag')), ['s512-a', 's512-b']);
    for (const tag of ['s512-a', 's512-b']) {
      const get = await raw(url, 'GET', `/v2/${repo}/manifests/${tag}`);
      assert.equal(get.header('docker-content-digest'), digest512);
      assert.ok(get.body.equals(pinned.data));
    }
    // A push without tag parameters answers no OCI-Tag.
    assert.equal((await putManifest(url, repo, 'plain', pinned, OCI_MANIFEST)).header('oci-tag'), undefined);
  });

  it('moves a tag when it is pushed again with other content', async () => {
    const other = imageManifest(config, [layer], { annotations: { version: '2' } });
    await putManifest(url, repo, 'moving', image, OCI_MANIFEST);
    await putManifest(url, repo, 'moving', other, OCI_MANIFEST);
    assert.equal((await raw(url, 'HEAD', `/v2/${repo}/manifests/moving`)).header('docker-content-digest'), other.digest);
  });

  it('accepts Docker schema2 manifests and manifest lists', async () => {
    const docker = imageManifest(config, [layer], { mediaType: DOCKER_MANIFEST });
    assert.equal((await putManifest(url, repo, 'docker', docker, DOCKER_MANIFEST)).status, 201);
    const list = imageIndex([{ digest: docker.digest, size: docker.data.length, platform: { os: 'linux', architecture: 'amd64' } }], { mediaType: DOCKER_LIST });
    assert.equal((await putManifest(url, repo, 'docker-list', list, DOCKER_LIST)).status, 201);
    const get = await raw(url, 'GET', `/v2/${repo}/manifests/docker-list`, { headers: { Accept: `${DOCKER_LIST}, ${DOCKER_MANIFEST}` } });
    assert.equal(get.header('content-type'), DOCKER_LIST);
  });

  it('accepts an OCI index of manifests in the repository (multi-arch)', async () => {
    const arm = imageManifest(config, [layer], { annotations: { arch: 'arm64' } });
    await putManifest(url, repo, arm.digest, arm, OCI_MANIFEST);
    const index = imageIndex([
      { digest: image.digest, size: image.data.length, platform: { os: 'linux', architecture: 'amd64' } },
      { digest: arm.digest, size: arm.data.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    ]);
    assert.equal((await putManifest(url, repo, 'multi', index, OCI_INDEX)).status, 201);
    const get = await raw(url, 'GET', `/v2/${repo}/manifests/multi`, { headers: { Accept: `${OCI_INDEX}, ${OCI_MANIFEST}` } });
    assert.ok(get.body.equals(index.data));
  });

  it('negotiates on Accept: an index asked for by an image-only client yields its linux/amd64 child', async () => {
    const get = await raw(url, 'GET', `/v2/${repo}/manifests/multi`, { headers: { Accept: OCI_MANIFEST } });
    assert.equal(get.status, 200);
    assert.equal(get.header('docker-content-digest'), image.digest);
    const refuse = await raw(url, 'GET', `/v2/${repo}/manifests/docker`, { headers: { Accept: OCI_INDEX } });
    assert.equal(refuse.status, 404);
    assert.equal(errorCode(refuse), 'MANIFEST_UNKNOWN');
    const wildcard = await raw(url, 'GET', `/v2/${repo}/manifests/docker`, { headers: { Accept: '*/*' } });
    assert.equal(wildcard.status, 200);
  });

  it('accepts artifact manifests with artifactType, an empty config and a subject that does not exist', async () => {
    const empty = blob('{}');
    await pushBlob(url, repo, empty);
    const artifact = imageManifest(empty, [layer], {
      artifactType: 'application/vnd.example.sbom',
      configMediaType: 'application/vnd.oci.empty.v1+json',
      subject: { digest: sha256('a subject never pushed'), size: 123 },
    });
    const res = await putManifest(url, repo, artifact.digest, artifact, OCI_MANIFEST);
    assert.equal(res.status, 201);
    assert.equal(res.header('oci-subject'), sha256('a subject never pushed'));
  });

  it('accepts a manifest without mediaType, taking it from Content-Type, and with no layers', async () => {
    const bare = imageManifest(config, [], { mediaType: null });
    assert.equal((await putManifest(url, repo, 'bare', bare, OCI_MANIFEST)).status, 201);
    assert.equal((await raw(url, 'HEAD', `/v2/${repo}/manifests/bare`)).header('content-type'), OCI_MANIFEST);
  });
});

describe('manifest validation', () => {
  const invalid = async (body: string | Buffer, contentType = OCI_MANIFEST, ref = 'bad') => {
    const res = await raw(url, 'PUT', `/v2/${repo}/manifests/${ref}`, { headers: { 'Content-Type': contentType }, body });
    return { status: res.status, code: errorCode(res) };
  };

  it('refuses malformed JSON with MANIFEST_INVALID', async () => {
    assert.deepEqual(await invalid('{"schemaVersion": 2,'), { status: 400, code: 'MANIFEST_INVALID' });
    assert.deepEqual(await invalid('[]'), { status: 400, code: 'MANIFEST_INVALID' });
    assert.deepEqual(await invalid(Buffer.from([0xff, 0xfe, 0x00])), { status: 400, code: 'MANIFEST_INVALID' });
  });

  it('refuses a document that is both manifest and index', async () => {
    const both = { ...image.json, manifests: [] };
    assert.deepEqual(await invalid(JSON.stringify(both)), { status: 400, code: 'MANIFEST_INVALID' });
  });

  it('refuses a mediaType that contradicts Content-Type', async () => {
    assert.deepEqual(await invalid(image.data, OCI_INDEX), { status: 400, code: 'MANIFEST_INVALID' });
    assert.deepEqual(await invalid(image.data, DOCKER_MANIFEST), { status: 400, code: 'MANIFEST_INVALID' });
  });

  it('refuses schema 1 and bad descriptors', async () => {
    assert.equal((await invalid(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }))).code, 'MANIFEST_INVALID');
    const badDigest = { ...image.json, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:nope', size: 1 } };
    assert.equal((await invalid(JSON.stringify(badDigest))).code, 'MANIFEST_INVALID');
    const negative = { ...image.json, config: { ...(image.json.config as object), size: -1 } };
    assert.equal((await invalid(JSON.stringify(negative))).code, 'MANIFEST_INVALID');
  });

  it('refuses a config or layer the repository does not have with 400 MANIFEST_BLOB_UNKNOWN', async () => {
    // The config is there, the layer is not: the manifest is what is wrong, so 400, as the spec and Distribution say.
    const missing = imageManifest(config, [randomBlob(10)]);
    assert.deepEqual(await invalid(missing.data), { status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
    assert.deepEqual(await invalid(imageManifest(randomBlob(10), [layer]).data), { status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
    // The blob exists in another repository, but not in this one.
    const elsewhere = randomBlob(10);
    await pushBlob(url, 'someone/else', elsewhere);
    assert.deepEqual(await invalid(imageManifest(config, [elsewhere]).data), { status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
  });

  it('refuses a descriptor whose size contradicts the blob', async () => {
    const lying = { ...image.json, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: 1 }] };
    assert.deepEqual(await invalid(JSON.stringify(lying)), { status: 400, code: 'MANIFEST_INVALID' });
  });

  it('refuses an index whose child is not in the repository with 400 MANIFEST_BLOB_UNKNOWN, as Distribution does', async () => {
    const index = imageIndex([{ digest: sha256('no such manifest'), size: 10, platform: { os: 'linux', architecture: 'amd64' } }]);
    assert.deepEqual(await invalid(index.data, OCI_INDEX), { status: 400, code: 'MANIFEST_BLOB_UNKNOWN' });
  });

  it('refuses duplicate keys at any depth with MANIFEST_INVALID, since parsers disagree on which one counts', async () => {
    const text = image.data.toString();
    const layers = JSON.stringify(image.json.layers);
    const configJson = JSON.stringify(image.json.config);
    const duplicates = [
      // Two layers lists: one parser would check the first, another pull the second.
      text.replace('"layers":', `"layers":[],"layers":`),
      text.replace('"mediaType":', `"mediaType":"${DOCKER_MANIFEST}","mediaType":`),
      text.replace(configJson, configJson.replace('"size":', '"size":1,"size":')),
      text.replace(layers, layers.replace('"digest":', `"digest":"${sha256('other')}","digest":`)),
      // The same key spelled with an escape.
      text.replace('"layers":', `"l\\u0061yers":[],"layers":`),
      JSON.stringify({ ...image.json, annotations: { a: '1' } }).replace('{"a":"1"}', '{"a":"1","b":{"c":1,"c":2}}'),
    ];
    for (const body of duplicates) {
      JSON.parse(body); // still valid JSON: only the duplicate is wrong
      assert.deepEqual(await invalid(body), { status: 400, code: 'MANIFEST_INVALID' }, body);
    }
  });

  it('is not fooled by key-like text inside strings or by escaped quotes', async () => {
    const annotations = {
      'a"b': 'x',
      a: '"a": "b", "layers": [], "mediaType": "x"',
      'a\\': '\\',
      'a\\"': '"',
      b: '{"b": 1, "b": 2}',
    };
    const tricky = imageManifest(config, [layer], { annotations });
    assert.equal((await putManifest(url, repo, 'tricky', tricky, OCI_MANIFEST)).status, 201);
    // The same key in different objects is not a duplicate.
    const nested = blob(image.data.toString().replace(/}$/, ',"annotations":{"mediaType":"x","size":"1"}}'));
    assert.equal((await putManifest(url, repo, 'nested', nested, OCI_MANIFEST)).status, 201);
  });

  it('refuses invalid tags with TAG_INVALID', async () => {
    for (const tag of ['-leading-dash', '.dot', 'a'.repeat(129), 'sp%20ace']) {
      assert.deepEqual(await invalid(image.data, OCI_MANIFEST, tag), { status: 400, code: 'TAG_INVALID' }, tag);
    }
    const res = await raw(url, 'PUT', `/v2/${repo}/manifests/${image.digest}?tag=bad..tag&tag=-x`, { headers: { 'Content-Type': OCI_MANIFEST }, body: image.data });
    assert.equal(errorCode(res), 'TAG_INVALID');
  });

  it('answers 413 to a manifest over 4 MiB, by Content-Length, without reading it', async () => {
    const res = await raw(url, 'PUT', `/v2/${repo}/manifests/huge`, {
      headers: { 'Content-Type': OCI_MANIFEST, 'Content-Length': 4 * 1024 * 1024 + 1 },
      body: (async function* () {
        yield Buffer.alloc(1024, 0x20);
      })(),
    });
    assert.equal(res.status, 413);
    assert.equal((await raw(url, 'GET', '/v2/')).status, 200);
  });

  it('answers 413 to a chunked manifest body once it passes 4 MiB', async () => {
    const res = await raw(url, 'PUT', `/v2/${repo}/manifests/huge`, {
      headers: { 'Content-Type': OCI_MANIFEST, 'Transfer-Encoding': 'chunked' },
      body: (async function* () {
        for (let i = 0; i < 5; i += 1) yield Buffer.alloc(1024 * 1024, 0x20);
      })(),
    });
    assert.equal(res.status, 413);
    assert.equal((await raw(url, 'GET', `/v2/${repo}/manifests/huge`)).status, 404);
  });

  it('accepts a manifest of just under 4 MiB', async () => {
    const padded = { ...image.json, annotations: { pad: 'x'.repeat(4 * 1024 * 1024 - 1024) } };
    const body = Buffer.from(JSON.stringify(padded));
    assert.ok(body.length < 4 * 1024 * 1024);
    const res = await raw(url, 'PUT', `/v2/${repo}/manifests/large`, { headers: { 'Content-Type': OCI_MANIFEST }, body });
    assert.equal(res.status, 201);
  });
});

describe('unknown manifests', () => {
  it('404 MANIFEST_UNKNOWN for a missing tag, a missing digest, and a name that cannot be a tag', async () => {
    for (const ref of ['nope', sha256('nope'), '.INVALID_MANIFEST_NAME']) {
      const res = await raw(url, 'GET', `/v2/${repo}/manifests/${ref}`);
      assert.equal(res.status, 404, ref);
      assert.equal(errorCode(res), 'MANIFEST_UNKNOWN', ref);
    }
    assert.equal((await raw(url, 'HEAD', `/v2/${repo}/manifests/nope`)).status, 404);
  });

  it('400 DIGEST_INVALID for a malformed digest', async () => {
    const res = await raw(url, 'GET', `/v2/${repo}/manifests/sha256:totallywrong`);
    assert.equal(res.status, 400);
    assert.equal(errorCode(res), 'DIGEST_INVALID');
    assert.ok(Array.isArray(res.json().errors) && typeof res.json().errors[0].message === 'string');
  });

  it('accepts a URL-encoded colon in a digest reference', async () => {
    const res = await raw(url, 'HEAD', `/v2/${repo}/manifests/${image.digest.replace(':', '%3A')}`);
    assert.equal(res.status, 200);
  });
});

/** The tags an OCI-Tag header lists (comma-separated, RFC 9110 list syntax). */
function ociTags(header: string | undefined): string[] {
  return (header ?? '').split(',').map((t) => t.trim()).filter(Boolean).sort();
}
