import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliUser, type CliUser } from './support/cli.js';
import { makeCertificates, makeHtpasswd } from './support/reference-registry.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

/** The client against Wharf's own auth and TLS, configured with registry:2's variable names. */

const USER = { username: 'wharfuser', password: 'wharf-secret-pw' };

let images: TestLayout;
let work: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'wharf-cli-wharf-auth-'));
  images = await writeTestLayout(join(work, 'layout'));
});
after(() => rmSync(work, { recursive: true, force: true }));

describe('wharf client against wharf serve with htpasswd (REGISTRY_AUTH=htpasswd)', () => {
  let server: WharfProcess;
  let user: CliUser;
  before(async () => {
    const htpasswd = makeHtpasswd(work, USER.username, USER.password);
    server = await startWharf({ env: { REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_REALM: 'wharf-test', REGISTRY_AUTH_HTPASSWD_PATH: htpasswd } });
    user = cliUser();
  });
  after(async () => {
    user?.dispose();
    await server?.dispose();
  });

  test('unauthenticated push fails with a login hint', async () => {
    const result = await user.run(['copy', `oci:${images.dir}:small`, `${server.host}/private/small:v1`]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /unauthorized/);
    assert.match(result.stderr, /wharf login/);
  });

  test('login is verified, stored, and push/pull work', async () => {
    const bad = await user.run(['login', server.host, '-u', USER.username, '--password-stdin'], { input: 'wrong' });
    assert.equal(bad.code, 1);
    await user.ok(['login', server.host, '-u', USER.username, '--password-stdin'], { input: USER.password });
    const config = JSON.parse(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.ok(config.auths[server.host]);
    await user.ok(['copy', `oci:${images.dir}:base`, `${server.host}/private/base:v1`]);
    const pull = await user.ok(['pull', `${server.host}/private/base:v1`]);
    assert.match(pull.stdout, new RegExp(`Digest: ${images.base.digest}`));
    const history = await user.ok(['history', '--format', '{{.CreatedBy}}', `${server.host}/private/base:v1`]);
    assert.equal(history.stdout.trim().split('\n').length, 5);
  });
});

describe('wharf client against wharf serve over TLS (REGISTRY_HTTP_TLS_*)', () => {
  let server: WharfProcess;
  let user: CliUser;
  let caFile: string;
  before(async () => {
    const dir = mkdtempSync(join(work, 'tls-'));
    const certs = makeCertificates(dir);
    caFile = certs.caFile;
    server = await startWharf({ env: { REGISTRY_HTTP_TLS_CERTIFICATE: certs.certFile, REGISTRY_HTTP_TLS_KEY: certs.keyFile } });
    user = cliUser();
  });
  after(async () => {
    user?.dispose();
    await server?.dispose();
  });

  test('an untrusted certificate is refused; --ca-cert makes it work', async () => {
    const refused = await user.run(['digest', `${server.host}/none/here:v1`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /certificate/);
    await user.ok(['--ca-cert', caFile, 'copy', `oci:${images.dir}:small`, `${server.host}/tls/small:v1`]);
    const digest = await user.ok(['--ca-cert', caFile, 'digest', `${server.host}/tls/small:v1`]);
    assert.equal(digest.stdout.trim(), images.small.digest);
  });
});

describe("wharf client against wharf serve's token issuer (htpasswd users, Docker token flow)", () => {
  let server: WharfProcess;
  let user: CliUser;
  before(async () => {
    const htpasswd = makeHtpasswd(work, USER.username, USER.password);
    server = await startWharf({
      env: {
        REGISTRY_AUTH_HTPASSWD_REALM: 'wharf-test',
        REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
        REGISTRY_AUTH_TOKEN_SERVICE: 'wharf-test',
        REGISTRY_AUTH_ISSUER_ENABLED: 'true',
      },
    });
    user = cliUser();
  });
  after(async () => {
    user?.dispose();
    await server?.dispose();
  });

  test('login through the token flow, push, mount across repositories, pull', async () => {
    const anonymous = await user.run(['copy', `oci:${images.dir}:small`, `${server.host}/team/app:v0`]);
    assert.equal(anonymous.code, 1, 'the registry must ask for credentials');
    assert.match(anonymous.stderr, /unauthorized/);
    await user.ok(['login', server.host, '-u', USER.username, '--password-stdin'], { input: USER.password });
    // Wharf's issuer hands out a refresh token at login: docker config keeps it, not the password.
    const config = JSON.parse(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string; identitytoken?: string }> };
    const entry = config.auths[server.host]!;
    assert.match(entry.identitytoken ?? '', /^wharf_rt_/);
    assert.equal(Buffer.from(entry.auth, 'base64').toString(), `${USER.username}:`);
    assert.doesNotMatch(JSON.stringify(config), new RegExp(USER.password));
    await user.ok(['copy', `oci:${images.dir}:base`, `${server.host}/team/app:v1`]);
    const copy = await user.ok(['copy', `${server.host}/team/app:v1`, `${server.host}/team/other:v1`]);
    assert.match(copy.stderr, /Mounted from team\/app/);
    const pull = await user.ok(['pull', `${server.host}/team/other:v1`]);
    assert.match(pull.stdout, new RegExp(`Digest: ${images.base.digest}`));
  });
});
