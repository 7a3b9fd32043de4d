import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliUser, type CliUser } from './support/cli.js';
import { clientScenarios } from './support/client-scenarios.js';
import { distributionStarter, startDistributionUnderTest, type RegistryUnderTest } from './support/registries-under-test.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';
import type { TokenServer } from './support/token-server.js';

/** The client's auth and TLS scenarios against Distribution; the same run against Wharf in cli-wharf-auth.test.ts. */
clientScenarios('Distribution', startDistributionUnderTest, { modes: ['htpasswd', 'tls', 'token', 'tls-htpasswd'] });

/**
 * Distribution only: its token mode runs the test token server, which records what each token
 * request asked for, so the scopes the client asks for can be seen here (Wharf's issuer keeps no
 * such record), and a hand-written identity token can be traded (Wharf's are its own).
 */
describe('the token requests wharf makes, as the test token server saw them', () => {
  let tokens: TokenServer;
  let registry: RegistryUnderTest;
  let images: TestLayout;
  let user: CliUser;
  let work: string;
  let R: string;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'wharf-token-scopes-'));
    images = await writeTestLayout(join(work, 'layout'));
    registry = await distributionStarter((server) => (tokens = server))('token');
    R = registry.host;
    user = cliUser();
  });
  after(async () => {
    user?.dispose();
    await registry?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  test('anonymous access gets a token without rights, asked for the pull scope', async () => {
    const result = await user.run(['digest', `${R}/team/app:v1`]);
    assert.equal(result.code, 1);
    const anonymous = tokens.requests.at(-1)!;
    assert.equal(anonymous.authenticated, false);
    assert.deepEqual(anonymous.scopes, ['repository:team/app:pull']);
  });

  test('login, push with pull+push scopes, mount with a repository:FROM:pull scope, catalog with registry:catalog:*', async () => {
    await user.ok(['login', R, '-u', registry.username!, '--password-stdin'], { input: registry.password! });
    assert.equal(tokens.requests.at(-1)!.authenticated, true);
    await user.ok(['copy', `oci:${images.dir}:base`, `${R}/team/app:v1`]);
    assert.ok(tokens.requests.some((r) => r.authenticated && r.service === tokens.service && r.scopes.includes('repository:team/app:pull,push')));
    const copy = await user.ok(['copy', `${R}/team/app:v1`, `${R}/team/other:v1`]);
    assert.match(copy.stderr, /Mounted from team\/app/);
    const mountRequest = tokens.requests.find((r) => r.scopes.includes('repository:team/app:pull') && r.scopes.includes('repository:team/other:pull,push'));
    assert.ok(mountRequest, `a token asked for both scopes: ${JSON.stringify(tokens.requests.map((r) => r.scopes))}`);
    await user.ok(['catalog', R]);
    assert.ok(tokens.requests.some((r) => r.scopes.includes('registry:catalog:*')));
  });

  test('an identity token in config.json is traded with the OAuth2 refresh grant', async () => {
    const other = cliUser();
    try {
      writeFileSync(
        join(other.dockerConfig, 'config.json'),
        JSON.stringify({ auths: { [R]: { auth: Buffer.from(`${registry.username}:`).toString('base64'), identitytoken: 'identity-token-for-wharfuser' } } }),
      );
      const digest = await other.ok(['digest', `${R}/team/app:v1`]);
      assert.equal(digest.stdout.trim(), images.base.digest);
      const refresh = tokens.requests.filter((r) => r.grant === 'refresh_token');
      assert.ok(refresh.length >= 1 && refresh.every((r) => r.authenticated), JSON.stringify(refresh));
      assert.ok(refresh.some((r) => r.scopes.includes('repository:team/app:pull')));
    } finally {
      other.dispose();
    }
  });
});
