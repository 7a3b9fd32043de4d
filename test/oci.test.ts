import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { digestOf, parseDigest } from '../src/oci/digest.js';
import { ManifestFormatError, findDuplicateKey, parseManifest, requiredBlobs } from '../src/oci/manifest.js';
import { isValidRepositoryName, isValidTag } from '../src/oci/names.js';
import { familiarName, formatReference, parseReference, ReferenceError } from '../src/oci/reference.js';

describe('digests', () => {
  it('accepts sha256 and sha512 of the right length, lower-case hex', () => {
    assert.deepEqual(parseDigest(digestOf('x')), { algorithm: 'sha256', hex: digestOf('x').slice(7) });
    assert.equal(parseDigest(digestOf('x', 'sha512'))?.algorithm, 'sha512');
    for (const bad of ['sha256:' + 'A'.repeat(64), 'sha256:' + 'a'.repeat(63), 'sha384:' + 'a'.repeat(96), 'sha256', ':abc', 'SHA256:' + 'a'.repeat(64), '']) {
      assert.equal(parseDigest(bad), undefined, bad);
    }
  });
});

describe('names and tags', () => {
  it('follows the distribution-spec grammar', () => {
    for (const good of ['a', 'library/nginx', 'team/app/api', 'a.b', 'a_b', 'a__b', 'a---b', '0', 'x/y/z/w']) assert.ok(isValidRepositoryName(good), good);
    for (const bad of ['', 'A', 'a/', '/a', 'a//b', 'a/../b', '..', '.a', 'a.', 'a___b', 'a..b', 'a/-b', 'a b', 'a%2fb', 'a'.repeat(256)]) assert.ok(!isValidRepositoryName(bad), bad);
    for (const good of ['latest', 'v1.0', '_x', 'A-b.c_d', 'a'.repeat(128)]) assert.ok(isValidTag(good), good);
    for (const bad of ['', '.x', '-x', 'a:b', 'a/b', 'a'.repeat(129)]) assert.ok(!isValidTag(bad), bad);
  });
});

describe('image references as docker parses them', () => {
  const cases: Array<[string, string]> = [
    ['nginx', 'docker.io/library/nginx:latest'],
    ['nginx:1.25', 'docker.io/library/nginx:1.25'],
    ['user/app', 'docker.io/user/app:latest'],
    ['docker.io/nginx', 'docker.io/library/nginx:latest'],
    ['index.docker.io/library/nginx', 'docker.io/library/nginx:latest'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
    ['127.0.0.1:5000/team/app:v2', '127.0.0.1:5000/team/app:v2'],
    ['[::1]:5000/app', '[::1]:5000/app:latest'],
    ['ghcr.io/org/app@sha256:' + 'a'.repeat(64), 'ghcr.io/org/app@sha256:' + 'a'.repeat(64)],
    ['registry.example.com/app:v1@sha256:' + 'b'.repeat(64), 'registry.example.com/app:v1@sha256:' + 'b'.repeat(64)],
  ];
  for (const [input, normalised] of cases) {
    it(`${input} -> ${normalised}`, () => assert.equal(formatReference(parseReference(input)), normalised));
  }

  it('prints familiar names as docker does', () => {
    assert.equal(familiarName(parseReference('nginx')), 'nginx');
    assert.equal(familiarName(parseReference('user/app')), 'user/app');
    assert.equal(familiarName(parseReference('localhost:5000/app')), 'localhost:5000/app');
  });

  it('refuses what docker refuses', () => {
    for (const bad of ['', 'Nginx', 'nginx:', 'nginx@sha256:abc', 'a//b', 'host:port:5000/app', 'app:-tag']) {
      assert.throws(() => parseReference(bad), ReferenceError, bad);
    }
  });
});

describe('manifest parsing', () => {
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf('c'), size: 1 };
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf('l'), size: 1 };
  const doc = (value: unknown) => Buffer.from(JSON.stringify(value));

  it('reads image manifests, indexes, subjects and artifact types', () => {
    const image = parseManifest(doc({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer], subject: { ...config, mediaType: 'application/vnd.oci.image.manifest.v1+json' } }), undefined);
    assert.equal(image.kind, 'image');
    assert.equal(image.subject?.digest, config.digest);
    assert.equal(image.artifactType, config.mediaType, 'config media type stands in for artifactType');
    assert.deepEqual(requiredBlobs(image).map((b) => b.digest), [config.digest, layer.digest]);
    const index = parseManifest(doc({ schemaVersion: 2, manifests: [{ ...config, mediaType: 'application/vnd.oci.image.manifest.v1+json' }], artifactType: 'application/x-a' }), 'application/vnd.oci.image.index.v1+json');
    assert.equal(index.kind, 'index');
    assert.equal(index.artifactType, 'application/x-a');
  });

  it('skips foreign layers that carry URLs when listing required blobs', () => {
    const foreign = { mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', digest: digestOf('f'), size: 1, urls: ['https://example.com/layer'] };
    const parsed = parseManifest(doc({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config, layers: [foreign, layer] }), undefined);
    assert.deepEqual(requiredBlobs(parsed).map((b) => b.digest), [config.digest, layer.digest]);
  });

  it('refuses what is not a valid manifest', () => {
    const bad: Array<[Buffer, string | undefined]> = [
      [Buffer.from('not json'), undefined],
      [doc({ schemaVersion: 2, config, layers: [], manifests: [] }), undefined],
      [doc({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] }), 'application/vnd.oci.image.manifest.v1+json'],
      [doc({ schemaVersion: 2, mediaType: 'application/x-unknown', config }), undefined],
      [doc({ schemaVersion: 3, config }), undefined],
      [doc({ schemaVersion: 2, config: { ...config, size: 1.5 } }), undefined],
      [doc({ schemaVersion: 2, config: { ...config, mediaType: 'not a type' } }), undefined],
      [doc({ schemaVersion: 2, config, layers: [layer], annotations: { a: 1 } }), undefined],
      [doc({ schemaVersion: 2 }), undefined],
    ];
    for (const [bytes, type] of bad) assert.throws(() => parseManifest(bytes, type), ManifestFormatError, bytes.toString());
  });
});

describe('duplicate JSON keys', () => {
  it('finds a duplicate at any depth and names where it is', () => {
    assert.equal(findDuplicateKey('{"a":1,"a":2}'), 'a');
    assert.equal(findDuplicateKey('{"x":{"y":[1,{"z":0,"z":1}]}}'), 'x.y[1].z');
    assert.equal(findDuplicateKey('[{}, {"k": true, "k": null}]'), '[1].k');
    assert.equal(findDuplicateKey('{ "a" : 1 , "b" : { } , "a" : [ ] }'), 'a');
    // Keys compare as decoded strings: an escape spells the same key.
    assert.equal(findDuplicateKey('{"ab":1,"a\\u0062":2}'), 'ab');
    assert.equal(findDuplicateKey('{"\\"":1,"\\u0022":2}'), '"');
  });

  it('is not fooled by strings that look like keys, or by escaped quotes and backslashes', () => {
    for (const text of [
      '{"a":"\\"a\\": 1, \\"a\\": 2"}',
      '{"a\\"b":1,"a":2,"b":3}',
      '{"a\\\\":1,"a":2}',
      '{"a\\\\\\"":1,"a\\\\":2,"a":3}',
      '{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}',
      '{"a":"}","b":"{","c":"[","d":"]","e":",","f":":"}',
      '"just a string"',
      '[1, 2, 3]',
      '{}',
    ]) {
      JSON.parse(text);
      assert.equal(findDuplicateKey(text), undefined, text);
    }
  });

  it('scans a 4 MiB manifest quickly', () => {
    const annotations: Record<string, string> = {};
    for (let i = 0; i < 35_000; i += 1) annotations[`org.example.key.${i}`] = `value "${i}" with \\ and \\"quotes\\"`;
    const layers = Array.from({ length: 2000 }, (_, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(String(i)), size: i }));
    let text = JSON.stringify({ schemaVersion: 2, layers, annotations, pad: 'x'.repeat(1024 * 1024) });
    text = text.slice(0, -1) + `,"more":"${'\\"'.repeat(200_000)}"}`;
    assert.ok(text.length > 3.9 * 1024 * 1024 && text.length < 4 * 1024 * 1024, String(text.length));
    const started = performance.now();
    assert.equal(findDuplicateKey(text), undefined);
    const ms = performance.now() - started;
    // Generous for a loaded machine; a scan that went quadratic would take minutes.
    assert.ok(ms < 1000, `${ms} ms`);
    assert.equal(findDuplicateKey(text.slice(0, -1) + ',"layers":[]}'), 'layers');
  });
});

