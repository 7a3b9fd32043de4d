import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { mergeScopes, parseChallenges } from '../src/client/auth-challenge.js';
import { certsDirectories, registryCaCerts } from '../src/client/registry-connector.js';
import { CredentialStore } from '../src/client/credentials.js';
import { parseImageLocation } from '../src/client/image-location.js';
import { parsePlatform, platformMatches, selectPlatform } from '../src/client/platform.js';
import { manifestMediaType } from '../src/client/registry-client.js';
import { retryAfter } from '../src/client/retry-transport.js';
import { isLoopbackHost } from '../src/client/registry-host.js';
import { findImageFields } from '../src/cli/commands/pin.js';
import { splitSearchTerm } from '../src/cli/commands/search.js';
import { renderFormat, renderTable, truncate } from '../src/cli/output.js';
import { formatReference, parseReference } from '../src/oci/reference.js';

describe('WWW-Authenticate challenges', () => {
  test('a bearer challenge with realm, service and scope', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/nginx:pull' } });
  });

  test('several challenges in one header, unquoted values, escapes and odd spacing', () => {
    const challenges = parseChallenges('Basic realm="Registry \\"Realm\\"" , Bearer realm=https://x/token, service=svc,  error="insufficient_scope"');
    assert.equal(challenges.length, 2);
    assert.deepEqual(challenges[0], { scheme: 'basic', params: { realm: 'Registry "Realm"' } });
    assert.deepEqual(challenges[1], { scheme: 'bearer', params: { realm: 'https://x/token', service: 'svc', error: 'insufficient_scope' } });
  });

  test('scopes on one repository merge; equal sets give equal keys', () => {
    assert.deepEqual(mergeScopes(['repository:a:push', 'repository:a:pull', 'repository:b:pull']), ['repository:a:pull,push', 'repository:b:pull']);
    assert.deepEqual(mergeScopes(['repository:b:pull', 'repository:a:pull,push']), mergeScopes(['repository:a:push,pull', 'repository:b:pull']));
    assert.deepEqual(mergeScopes(['registry:catalog:*']), ['registry:catalog:*']);
  });
});

test('Retry-After as seconds or an HTTP date', () => {
  assert.equal(retryAfter('3'), 3000);
  assert.equal(retryAfter(undefined), undefined);
  assert.equal(retryAfter('soon'), undefined);
  const inTwo = new Date(Date.now() + 2000).toUTCString();
  const ms = retryAfter(inTwo)!;
  assert.ok(ms > 0 && ms <= 2000, String(ms));
});

test('loopback hosts are localhost, 127.0.0.0/8 and ::1 only', () => {
  for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', '::ffff:127.0.0.1']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '10.0.0.1', 'example.com', 'localhost.example.com', '::ffff:10.0.0.1', '128.0.0.1']) assert.ok(!isLoopbackHost(host), host);
});

describe('platforms', () => {
  test('parse os/arch[/variant] with common spellings', () => {
    assert.deepEqual(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(parsePlatform('linux/x86_64'), { os: 'linux', architecture: 'amd64' });
    assert.throws(() => parsePlatform('linux'), /os\/arch/);
  });

  test('arm64 without a variant is v8; a wanted variant must match', () => {
    assert.ok(platformMatches(parsePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' }));
    assert.ok(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' }));
    assert.ok(!platformMatches(parsePlatform('linux/arm/v6'), { os: 'linux', architecture: 'arm', variant: 'v7' }));
    const manifests = [
      { mediaType: 'x/y', digest: 'sha256:a', size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
      { mediaType: 'x/y', digest: 'sha256:b', size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
    ];
    assert.equal(selectPlatform(manifests, parsePlatform('linux/arm/v6'))?.digest, 'sha256:b');
    assert.equal(selectPlatform(manifests, parsePlatform('windows/amd64')), undefined);
  });
});

test('image locations: registry references, oci:, docker-archive:, local:', () => {
  assert.deepEqual(parseImageLocation('oci:/tmp/x:v1'), { transport: 'oci', dir: '/tmp/x', refName: 'v1' });
  assert.deepEqual(parseImageLocation('oci:/tmp/x'), { transport: 'oci', dir: '/tmp/x' });
  assert.deepEqual(parseImageLocation('docker-archive:/tmp/a.tar:app:v1'), { transport: 'docker-archive', file: '/tmp/a.tar', refName: 'app:v1' });
  const remote = parseImageLocation('docker://localhost:5000/app');
  assert.equal(remote.transport, 'registry');
  assert.equal(remote.transport === 'registry' && formatReference(remote.ref), 'localhost:5000/app:latest');
  assert.equal(parseImageLocation('nginx', 'local').transport, 'local');
});

describe('references as docker reads them', () => {
  const cases: Array<[string, string]> = [
    ['nginx', 'docker.io/library/nginx:latest'],
    ['docker.io/nginx', 'docker.io/library/nginx:latest'],
    ['index.docker.io/library/nginx:1.25', 'docker.io/library/nginx:1.25'],
    ['user/app', 'docker.io/user/app:latest'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
    ['127.0.0.1:5000/team/app:v1', '127.0.0.1:5000/team/app:v1'],
    ['[::1]:5000/app', '[::1]:5000/app:latest'],
    [`ghcr.io/o/r:v1@sha256:${'a'.repeat(64)}`, `ghcr.io/o/r:v1@sha256:${'a'.repeat(64)}`],
    [`nginx@sha256:${'b'.repeat(64)}`, `docker.io/library/nginx@sha256:${'b'.repeat(64)}`],
  ];
  for (const [input, expected] of cases) {
    test(input, () => assert.equal(formatReference(parseReference(input)), expected));
  }
  test('refuses what docker refuses', () => {
    for (const bad of ['Nginx', 'nginx:', 'nginx@sha256:abc', 'a//b', '']) assert.throws(() => parseReference(bad), { name: 'ReferenceError' }, bad);
  });
});

describe('credentials in the docker config', () => {
  test('auths entries (by host or URL), identity tokens, and writing back with mode 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-creds-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(
        file,
        JSON.stringify({
          auths: {
            'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hubpass').toString('base64') },
            'https://reg.example.com:5000/v2/': { auth: Buffer.from('u:p:with:colons').toString('base64') },
            'tok.example.com': { auth: Buffer.from('someone:').toString('base64'), identitytoken: 'refresh-me' },
          },
          psFormat: 'keep me',
        }),
      );
      const store = new CredentialStore(file);
      assert.deepEqual(await store.get('docker.io'), { username: 'hubuser', password: 'hubpass' });
      assert.deepEqual(await store.get('reg.example.com:5000'), { username: 'u', password: 'p:with:colons' });
      assert.deepEqual(await store.get('tok.example.com'), { username: 'someone', identityToken: 'refresh-me' });
      assert.equal(await store.get('nowhere.example.com'), undefined);
      await store.store('localhost:5000', { username: 'me', password: 'secret' });
      const written = JSON.parse(readFileSync(file, 'utf8')) as { auths: Record<string, { auth: string }>; psFormat: string };
      assert.equal(written.psFormat, 'keep me', 'other settings survive');
      assert.equal(Buffer.from(written.auths['localhost:5000']!.auth, 'base64').toString(), 'me:secret');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(await store.erase('localhost:5000'), true);
      assert.equal(await store.erase('localhost:5000'), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('CA certificates are looked up where docker and podman keep them', () => {
  const dirs = certsDirectories({ HOME: '/home/u' });
  assert.deepEqual(dirs, ['/etc/docker/certs.d', '/etc/containers/certs.d', '/home/u/.config/containers/certs.d']);
  assert.deepEqual(certsDirectories({ HOME: '/home/u', WHARF_CERTS_D: '/a:/b' }), ['/a', '/b']);
  const root = mkdtempSync(join(tmpdir(), 'wharf-certs-'));
  try {
    mkdirSync(join(root, 'reg.example:5000'));
    writeFileSync(join(root, 'reg.example:5000', 'ca.crt'), 'PEM-A');
    writeFileSync(join(root, 'reg.example:5000', 'extra.crt'), 'PEM-B');
    writeFileSync(join(root, 'reg.example:5000', 'client.key'), 'not a CA');
    assert.deepEqual(registryCaCerts('reg.example:5000', { WHARF_CERTS_D: root }), ['PEM-A', 'PEM-B']);
    assert.deepEqual(registryCaCerts('other:5000', { WHARF_CERTS_D: root }), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('manifest media type from the document, else the header', () => {
  assert.equal(manifestMediaType(Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'), 'application/json'), 'application/vnd.oci.image.index.v1+json');
  assert.equal(manifestMediaType(Buffer.from('{"schemaVersion":2,"config":{}}'), 'application/vnd.docker.distribution.manifest.v2+json; charset=utf-8'), 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(manifestMediaType(Buffer.from('{"schemaVersion":2,"manifests":[]}'), ''), 'application/vnd.oci.image.index.v1+json');
});

describe('output', () => {
  test('Go-template subset', () => {
    const data = { Id: 'sha256:x', RepoDigests: ['a@1', 'b@2'], Config: { Cmd: ['/bin/sh'] }, Os: 'linux' };
    assert.equal(renderFormat('{{.Id}}\\t{{index .RepoDigests 1}}', [data]), 'sha256:x\tb@2\n');
    assert.equal(renderFormat('{{json .Config.Cmd}} {{upper .Os}} {{join .RepoDigests ","}}', [data]), '["/bin/sh"] LINUX a@1,b@2\n');
    assert.equal(renderFormat('{{.Missing}}', [data]), '<no value>\n');
  });

  test('tables and truncation as docker prints them', () => {
    assert.equal(renderTable(['A', 'BB'], [['xxxx', 'y']]), 'A      BB\nxxxx   y\n');
    assert.equal(truncate('x'.repeat(50), 45).length, 45);
    assert.ok(truncate('x'.repeat(50), 45).endsWith('…'));
  });
});

test('search terms: [REGISTRY/]TERM', () => {
  assert.deepEqual(splitSearchTerm('nginx'), { registry: 'docker.io', term: 'nginx' });
  assert.deepEqual(splitSearchTerm('localhost:5000/app'), { registry: 'localhost:5000', term: 'app' });
  assert.deepEqual(splitSearchTerm('user/app'), { registry: 'docker.io', term: 'user/app' });
});

test('pin finds image fields in compose and multi-document Kubernetes YAML', () => {
  const text = 'services:\n  a:\n    image: nginx:1.25\n  b:\n    image: "redis"\n---\nspec:\n  containers:\n    - image: app@sha256:' + 'c'.repeat(64) + '\n';
  const fields = findImageFields(text);
  assert.deepEqual(fields.map((f) => [f.value, f.line]), [['nginx:1.25', 3], ['redis', 5], [`app@sha256:${'c'.repeat(64)}`, 9]]);
  assert.equal(text.slice(fields[1]!.start, fields[1]!.end), '"redis"');
});
