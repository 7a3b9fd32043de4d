import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliUser, type CliUser } from './support/cli.js';
import { startReferenceRegistry, type ReferenceRegistry } from './support/reference-registry.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';
import { startTokenServer, type TokenServer } from './support/token-server.js';

let images: TestLayout;
let work: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'wharf-cli-auth-'));
  images = await writeTestLayout(join(work, 'layout'));
});
after(() => rmSync(work, { recursive: true, force: true }));

describe('docker-registry with htpasswd basic auth', () => {
  let registry: ReferenceRegistry;
  let user: CliUser;
  before(async () => {
    registry = await startReferenceRegistry({ mode: 'htpasswd' });
    user = cliUser();
  });
  after(async () => {
    user?.dispose();
    await registry?.stop();
  });

  test('without a login, a push fails with unauthorized and a hint to log in', async () => {
    const result = await user.run(['copy', `oci:${images.dir}:small`, `${registry.host}/private/small:v1`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /unauthorized/);
    assert.match(result.stderr, new RegExp(`wharf login ${registry.host.replace('.', '\\.')}`));
  });

  test('a wrong password is refused and nothing is stored', async () => {
    const result = await user.run(['login', registry.host, '-u', registry.username!, '--password-stdin'], { input: 'not-the-password\n' });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /unauthorized/);
    assert.throws(() => readFileSync(join(user.dockerConfig, 'config.json')), /ENOENT/);
  });

  test('login verifies and stores credentials in config.json; push and pull then work; logout forgets', async () => {
    const login = await user.ok(['login', registry.host, '-u', registry.username!, '--password-stdin'], { input: `${registry.password}\n` });
    assert.equal(login.stdout.trim(), 'Login Succeeded');
    assert.doesNotMatch(login.stdout + login.stderr, new RegExp(registry.password!), 'the password is never printed');
    const config = JSON.parse(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(config.auths[registry.host]!.auth, 'base64').toString(), `${registry.username}:${registry.password}`);

    await user.ok(['copy', `oci:${images.dir}:small`, `${registry.host}/private/small:v1`]);
    const pull = await user.ok(['pull', `${registry.host}/private/small:v1`]);
    assert.match(pull.stdout, new RegExp(`Digest: ${images.small.digest}`));
    assert.equal((await user.ok(['catalog', registry.host])).stdout.trim(), 'private/small');

    const logout = await user.ok(['logout', registry.host]);
    assert.match(logout.stdout, new RegExp(`Removing login credentials for ${registry.host.replace('.', '\\.')}`));
    const after = JSON.parse(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, unknown> };
    assert.equal(after.auths[registry.host], undefined);
    const denied = await user.run(['digest', `${registry.host}/private/small:v1`]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /unauthorized/);
  });

  test('credentials come from a credential helper named in credHelpers', async () => {
    // A real docker-credential-* program speaking the helper protocol, holding one secret.
    const bin = join(user.home, 'bin');
    mkdirSync(bin, { recursive: true });
    const helper = join(bin, 'docker-credential-wharftest');
    writeFileSync(
      helper,
      `#!/bin/sh\ncase "$1" in\n  get) read server; if [ "$server" = "${registry.host}" ]; then printf '{"ServerURL":"%s","Username":"${registry.username}","Secret":"${registry.password}"}' "$server"; else echo "credentials not found in native keychain"; exit 1; fi ;;\n  store) cat > "${join(user.home, 'stored.json')}" ;;\n  erase) read server; echo "$server" > "${join(user.home, 'erased.txt')}" ;;\nesac\n`,
    );
    chmodSync(helper, 0o755);
    writeFileSync(join(user.dockerConfig, 'config.json'), JSON.stringify({ credHelpers: { [registry.host]: 'wharftest' } }));
    const env = { PATH: `${bin}:${process.env.PATH}` };
    const digest = await user.ok(['digest', `${registry.host}/private/small:v1`], { env });
    assert.equal(digest.stdout.trim(), images.small.digest);
    // login stores through the helper, not in config.json.
    await user.ok(['login', registry.host, '-u', registry.username!, '--password-stdin'], { input: registry.password!, env });
    const stored = JSON.parse(readFileSync(join(user.home, 'stored.json'), 'utf8')) as { ServerURL: string; Username: string; Secret: string };
    assert.deepEqual(stored, { ServerURL: registry.host, Username: registry.username, Secret: registry.password });
    assert.doesNotMatch(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8'), /auth"\s*:\s*"[A-Za-z0-9+/=]{8,}/);
    await user.ok(['logout', registry.host], { env });
    assert.equal(readFileSync(join(user.home, 'erased.txt'), 'utf8').trim(), registry.host);
    // credsStore: the same helper as the default store for every registry.
    writeFileSync(join(user.dockerConfig, 'config.json'), JSON.stringify({ credsStore: 'wharftest' }));
    const viaStore = await user.ok(['tags', `${registry.host}/private/small`], { env });
    assert.equal(viaStore.stdout.trim(), 'v1');
    writeFileSync(join(user.dockerConfig, 'config.json'), '{}');
  });
});

describe('docker-registry over TLS with a self-signed CA', () => {
  let registry: ReferenceRegistry;
  let user: CliUser;
  before(async () => {
    registry = await startReferenceRegistry({ mode: 'tls' });
    user = cliUser();
  });
  after(async () => {
    user?.dispose();
    await registry?.stop();
  });

  test('an unknown CA is refused with a hint', async () => {
    const result = await user.run(['copy', `oci:${images.dir}:small`, `${registry.host}/tls/small:v1`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /certificate/);
    assert.match(result.stderr, /--ca-cert/);
  });

  test('--ca-cert trusts the CA', async () => {
    await user.ok(['--ca-cert', registry.caFile!, 'copy', `oci:${images.dir}:small`, `${registry.host}/tls/small:v1`]);
    const digest = await user.ok(['digest', '--ca-cert', registry.caFile!, `${registry.host}/tls/small:v1`]);
    assert.equal(digest.stdout.trim(), images.small.digest);
  });

  test('certs.d/HOST:PORT/ca.crt is read as docker and podman read it', async () => {
    const dir = join(user.home, 'certs.d', registry.host);
    mkdirSync(dir, { recursive: true });
    copyFileSync(registry.caFile!, join(dir, 'ca.crt'));
    try {
      const pull = await user.ok(['pull', `${registry.host}/tls/small:v1`]);
      assert.match(pull.stdout, new RegExp(`Digest: ${images.small.digest}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--insecure skips verification', async () => {
    const tags = await user.ok(['--insecure', 'tags', `${registry.host}/tls/small`]);
    assert.equal(tags.stdout.trim(), 'v1');
  });
});

describe("docker-registry with Docker's token auth", () => {
  let registry: ReferenceRegistry;
  let tokens: TokenServer;
  let user: CliUser;
  const account = { username: 'tokenuser', password: 'token-secret-pw', refreshToken: 'identity-token-for-tokenuser' };
  before(async () => {
    tokens = await startTokenServer(work, account);
    registry = await startReferenceRegistry({ mode: 'token', token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.rootCertBundle } });
    user = cliUser();
  });
  after(async () => {
    user?.dispose();
    await registry?.stop();
    await tokens?.close();
  });

  test('anonymous access gets a token without rights and fails with a login hint', async () => {
    const result = await user.run(['digest', `${registry.host}/team/app:v1`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /unauthorized/);
    assert.match(result.stderr, /wharf login/);
    const anonymous = tokens.requests.at(-1)!;
    assert.equal(anonymous.authenticated, false);
    assert.deepEqual(anonymous.scopes, ['repository:team/app:pull']);
  });

  test('login, push with pull+push scopes, mount with a repository:FROM:pull scope, pull', async () => {
    await user.ok(['login', registry.host, '-u', account.username, '--password-stdin'], { input: account.password });
    assert.equal(tokens.requests.at(-1)!.authenticated, true);
    await user.ok(['copy', `oci:${images.dir}:base`, `${registry.host}/team/app:v1`]);
    assert.ok(tokens.requests.some((r) => r.authenticated && r.service === tokens.service && r.scopes.includes('repository:team/app:pull,push')));
    const copy = await user.ok(['copy', `${registry.host}/team/app:v1`, `${registry.host}/team/other:v1`]);
    assert.match(copy.stderr, /Mounted from team\/app/);
    const mountRequest = tokens.requests.find((r) => r.scopes.includes('repository:team/app:pull') && r.scopes.includes('repository:team/other:pull,push'));
    assert.ok(mountRequest, `a token asked for both scopes: ${JSON.stringify(tokens.requests.map((r) => r.scopes))}`);
    const pull = await user.ok(['pull', `${registry.host}/team/other:v1`]);
    assert.match(pull.stdout, new RegExp(`Digest: ${images.base.digest}`));
    const catalog = await user.ok(['catalog', registry.host]);
    assert.deepEqual(catalog.stdout.trim().split('\n'), ['team/app', 'team/other']);
    assert.ok(tokens.requests.some((r) => r.scopes.includes('registry:catalog:*')));
  });

  test('an identity token in config.json is traded with the OAuth2 refresh grant', async () => {
    const other = cliUser();
    try {
      writeFileSync(
        join(other.dockerConfig, 'config.json'),
        JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${account.username}:`).toString('base64'), identitytoken: account.refreshToken } } }),
      );
      const digest = await other.ok(['digest', `${registry.host}/team/app:v1`]);
      assert.equal(digest.stdout.trim(), images.base.digest);
      const refresh = tokens.requests.filter((r) => r.grant === 'refresh_token');
      assert.ok(refresh.length >= 1 && refresh.every((r) => r.authenticated), JSON.stringify(refresh));
      assert.ok(refresh.some((r) => r.scopes.includes('repository:team/app:pull')));
    } finally {
      other.dispose();
    }
  });

  test('a wrong password fails the login', async () => {
    const result = await user.run(['login', registry.host, '-u', account.username, '-p', 'wrong']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /refused the credentials/);
  });
});
