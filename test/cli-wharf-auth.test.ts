import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SecretWatch, writeHtpasswd } from './support/auth-fixtures.js';
import { cliUser, type CliUser } from './support/cli.js';
import { clientScenarios, runnableLayout } from './support/client-scenarios.js';
import { makeCertificates } from './support/reference-registry.js';
import { startWharfUnderTest } from './support/registries-under-test.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';
import { ok, run } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

/** The client's auth and TLS scenarios against `wharf serve`; the same run against Distribution in cli-distribution-auth.test.ts. */
clientScenarios('wharf serve', startWharfUnderTest, { modes: ['htpasswd', 'tls', 'token', 'tls-htpasswd'] });

/*
 * Wharf only, each for the reason given: what its built-in token issuer hands out (Distribution
 * has no issuer), its per-repository policy, and its admin API.
 */

const watch = new SecretWatch();
const PASSWORD = watch.credentials('builder', 'builder-password-1');
let work: string;
let images: TestLayout;
before(async () => {
  work = mkdtempSync(join(tmpdir(), 'wharf-only-auth-'));
  images = await writeTestLayout(join(work, 'layout'));
  writeHtpasswd(join(work, 'htpasswd'), { builder: PASSWORD });
});
after(async () => {
  await watch.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe("wharf serve's token issuer hands out refresh tokens", () => {
  let server: WharfProcess;
  let user: CliUser;
  before(async () => {
    server = watch.server(
      await startWharf({
        env: {
          REGISTRY_AUTH_HTPASSWD_REALM: 'wharf-test',
          REGISTRY_AUTH_HTPASSWD_PATH: join(work, 'htpasswd'),
          REGISTRY_AUTH_TOKEN_SERVICE: 'wharf-test',
          REGISTRY_AUTH_ISSUER_ENABLED: 'true',
        },
      }),
    );
    user = cliUser();
  });
  after(() => user?.dispose());

  test('login keeps the identity token, not the password, and later commands trade it', async () => {
    await user.ok(['login', server.host, '-u', 'builder', '--password-stdin'], { input: PASSWORD });
    const config = JSON.parse(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string; identitytoken?: string }> };
    const entry = config.auths[server.host]!;
    assert.match(entry.identitytoken ?? '', /^wharf_rt_/);
    assert.equal(Buffer.from(entry.auth, 'base64').toString(), 'builder:');
    assert.doesNotMatch(JSON.stringify(config), new RegExp(PASSWORD));
    // With only the identity token stored, these work through the refresh grant.
    await user.ok(['copy', `oci:${images.dir}:base`, `${server.host}/team/app:v1`]);
    const copy = await user.ok(['copy', `${server.host}/team/app:v1`, `${server.host}/team/other:v1`]);
    assert.match(copy.stderr, /Mounted from team\/app/);
    const pull = await user.ok(['pull', `${server.host}/team/other:v1`]);
    assert.match(pull.stdout, new RegExp(`Digest: ${images.base.digest}`));
  });
});

describe('real clients with the built-in token issuer and a public repository', () => {
  test('skopeo follows the Bearer challenge with --creds, and pulls a public repository anonymously', async () => {
    writeFileSync(
      join(work, 'token.yml'),
      `auth:\n  htpasswd: { path: ${join(work, 'htpasswd')} }\n  token: { service: wharf-clients }\n  policy:\n    public: [public/*]\n    rules:\n      - { subject: user:builder, repository: "**", actions: [pull, push] }\n`,
    );
    const wharf = watch.server(await startWharf({ args: [join(work, 'token.yml')] }));
    const layout = join(work, 'layout-token');
    const digest = await runnableLayout(layout);
    const push = await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:hello`, `docker://${wharf.host}/public/hello:1`]);
    assert.notEqual(push.code, 0, 'anonymous push must fail');
    await ok('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `builder:${PASSWORD}`, `oci:${layout}:hello`, `docker://${wharf.host}/public/hello:1`]);
    await ok('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `builder:${PASSWORD}`, `oci:${layout}:hello`, `docker://${wharf.host}/private/hello:1`]);
    const anonymous = JSON.parse(await ok('skopeo', ['inspect', '--tls-verify=false', '--no-creds', `docker://${wharf.host}/public/hello:1`])) as { Digest: string };
    assert.equal(anonymous.Digest, digest);
    const hidden = await run('skopeo', ['inspect', '--tls-verify=false', '--no-creds', `docker://${wharf.host}/private/hello:1`]);
    assert.notEqual(hidden.code, 0);
    assert.match(`${hidden.stdout}${hidden.stderr}`, /401|unauthorized|authentication required/i);
    await wharf.stop();
  });
});

describe('the admin commands over HTTPS share the client TLS handling', () => {
  let server: WharfProcess;
  let caFile: string;
  let env: Record<string, string>;
  let user: CliUser;
  before(async () => {
    const dir = mkdtempSync(join(work, 'admin-tls-'));
    const certs = makeCertificates(dir);
    caFile = certs.caFile;
    writeFileSync(
      join(dir, 'config.yml'),
      `http:\n  tls: { certificate: ${certs.certFile}, key: ${certs.keyFile} }\nauth:\n  htpasswd: { realm: admin-tls, path: ${join(work, 'htpasswd')} }\n  policy:\n    admins: [builder]\n`,
    );
    server = watch.server(await startWharf({ tls: true, args: [join(dir, 'config.yml')] }));
    user = cliUser();
    env = { WHARF_REGISTRY: server.url, WHARF_USERNAME: 'builder', WHARF_PASSWORD: PASSWORD };
  });
  after(() => user?.dispose());

  test('refused without the CA, with a hint; --ca-cert (before or after the command), --cacert and --insecure work', async () => {
    const refused = await user.run(['user', 'ls'], { env });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /certificate/);
    assert.match(refused.stderr, /--ca-cert/);
    for (const args of [
      ['user', 'ls', '--ca-cert', caFile],
      ['--ca-cert', caFile, 'user', 'ls'],
      ['user', 'ls', '--cacert', caFile],
      ['user', 'ls', '--insecure'],
    ]) {
      const listed = await user.run(args, { env });
      assert.equal(listed.code, 0, `${args.join(' ')}: ${listed.stderr}`);
      assert.match(listed.stdout, /^builder\thtpasswd\t/m);
    }
    const help = await user.run(['user', 'ls', '--help']);
    assert.match(help.stdout, /--ca-cert <file>/);
    assert.doesNotMatch(help.stdout, /--cacert/);
  });

  test('a bare host means HTTPS, and a wrong password is the registry\'s 401', async () => {
    const bare = await user.run(['user', 'ls', '--ca-cert', caFile], { env: { ...env, WHARF_REGISTRY: server.host } });
    assert.equal(bare.code, 0, bare.stderr);
    const wrong = await user.run(['user', 'ls', '--ca-cert', caFile], { env: { ...env, WHARF_PASSWORD: 'wrong-password' } });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^wharf: 401 UNAUTHORIZED/m);
  });
});

test('no password of these Wharf-only suites appears in any log Wharf wrote', () => {
  assert.ok(watch.sources() >= 3);
  assert.deepEqual(watch.leaks(), []);
});
