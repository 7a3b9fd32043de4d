import assert from 'node:assert/strict';
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT, exportJWK } from 'jose';
import { SecretWatch, basic, makeCertificates, writeHtpasswd } from './support/auth-fixtures.js';
import { errorCode, raw } from './support/http.js';
import { pushImage } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const watch = new SecretWatch();
const ADMIN_PW = watch.credentials('admin', 'admin-password-1');
const DEV_PW = watch.credentials('dev', 'dev-password-1');
const OPS_PW = watch.credentials('ops', 'ops-password-1');
const cleanup: Array<() => void> = [];
after(async () => {
  await watch.dispose();
  cleanup.forEach((step) => step());
});

const SERVICE = 'wharf-test';
const ISSUER = 'wharf-test-issuer';

function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

function claims(access: unknown[], overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: ISSUER, sub: 'dev', aud: SERVICE, iat: now, nbf: now - 5, exp: now + 300, jti: `t${Math.random()}`, access, ...overrides };
}

async function sign(key: KeyObject, header: Record<string, unknown>, payload: Record<string, unknown>): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', ...header } as never).sign(key);
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('bearer tokens from the built-in issuer', () => {
  let dir: string;
  let wharf: WharfProcess;
  let signingKey: KeyObject;
  let kid: string;
  const pushScope = (repo: string) => [{ type: 'repository', name: repo, actions: ['pull', 'push'] }];

  async function token(user: string | undefined, password: string | undefined, ...scopes: string[]): Promise<{ token: string; body: any }> {
    const query = new URLSearchParams([['service', SERVICE], ...scopes.map((s) => ['scope', s] as [string, string])]);
    const res = await raw(wharf.url, 'GET', `/auth/token?${query}`, { headers: user ? { Authorization: basic(user, password!) } : {} });
    assert.equal(res.status, 200, res.body.toString());
    const body = res.json();
    watch.secret(body.token);
    return { token: body.token, body };
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wharf-token-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    writeHtpasswd(join(dir, 'htpasswd'), { admin: ADMIN_PW, dev: DEV_PW });
    writeFileSync(
      join(dir, 'config.yml'),
      `storage: { delete: { enabled: true } }
auth:
  htpasswd: { path: ${join(dir, 'htpasswd')} }
  token: { service: ${SERVICE}, issuer: ${ISSUER} }
  policy:
    admins: [admin]
    public: [public/*]
    rules:
      - { subject: user:dev, repository: "team/**", actions: [pull, push] }
`,
    );
    wharf = watch.server(await startWharf({ args: [join(dir, 'config.yml')] }));
    signingKey = createPrivateKey(readFileSync(join(wharf.dataDir, 'auth', 'token-signing-key-es256.pem')));
    kid = JSON.parse(readFileSync(join(wharf.dataDir, 'auth', 'token-jwks.json'), 'utf8')).keys[0].kid;
    const admin = await token('admin', ADMIN_PW, 'repository:team/app:pull,push', 'repository:public/base:pull,push');
    await pushImage(wharf.url, 'team/app', 'v1', bearer(admin.token));
    await pushImage(wharf.url, 'public/base', 'v1', bearer(admin.token));
  });

  test('anonymous requests get a Bearer challenge naming realm, service and scope', async () => {
    const res = await raw(wharf.url, 'GET', '/v2/team/app/manifests/v1');
    assert.equal(res.status, 401);
    assert.equal(res.header('www-authenticate'), `Bearer realm="${wharf.url}/auth/token",service="${SERVICE}",scope="repository:team/app:pull"`);
    const base = await raw(wharf.url, 'GET', '/v2/');
    assert.equal(base.header('www-authenticate'), `Bearer realm="${wharf.url}/auth/token",service="${SERVICE}"`);
  });

  test('the issuer grants only the part of the requested scope that policy allows', async () => {
    const { body } = await token('dev', DEV_PW, 'repository:team/app:pull,push,delete', 'repository:private/x:pull', 'registry:catalog:*');
    assert.equal(body.expires_in, 300);
    assert.equal(body.scope, 'repository:team/app:pull,push registry:catalog:*');
    const [, payload] = body.token.split('.');
    const decoded = JSON.parse(Buffer.from(payload, 'base64url').toString());
    assert.deepEqual(decoded.access, [
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    assert.equal(decoded.exp - decoded.iat, 300);
    const header = JSON.parse(Buffer.from(body.token.split('.')[0], 'base64url').toString());
    assert.equal(header.alg, 'ES256');
    assert.equal(header.kid, kid);

    const anonymous = await token(undefined, undefined, 'repository:public/base:pull,push', 'repository:team/app:pull');
    assert.equal(anonymous.body.scope, 'repository:public/base:pull');
    assert.equal((await raw(wharf.url, 'GET', '/v2/public/base/manifests/v1', { headers: bearer(anonymous.token) })).status, 200);

    const wrong = await raw(wharf.url, 'GET', '/auth/token?scope=repository:team/app:pull', { headers: { Authorization: basic('dev', 'not-the-password') } });
    assert.equal(wrong.status, 401);
    assert.match(wrong.header('www-authenticate')!, /^Basic /);
  });

  test('a token works for exactly its scope', async () => {
    const { token: t } = await token('dev', DEV_PW, 'repository:team/app:pull,push');
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/app/manifests/v1', { headers: bearer(t) })).status, 200);
    assert.equal((await raw(wharf.url, 'POST', '/v2/team/app/blobs/uploads/', { headers: bearer(t) })).status, 202);
    const catalog = await raw(wharf.url, 'GET', '/v2/_catalog', { headers: bearer((await token('dev', DEV_PW, 'registry:catalog:*')).token) });
    assert.deepEqual(catalog.json().repositories, ['public/base', 'team/app']);
  });

  test('the admin API takes a token only with the registry:admin:* scope, which only administrators get, and only by asking', async () => {
    const ADMIN_SCOPE = 'registry:admin:*';
    const challenge = `Bearer realm="${wharf.url}/auth/token",service="${SERVICE}",scope="${ADMIN_SCOPE}",error="insufficient_scope"`;
    const password = watch.secret('scoped-user-password-1');
    const addUser = (headers: Record<string, string>, name: string) =>
      raw(wharf.url, 'POST', '/admin/v1/users', { headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify({ name, password }) });
    // An administrator's token for anything else, or for nothing, opens nothing there: no other scope implies admin.
    for (const scopes of [['repository:library/x:pull'], [], ['registry:catalog:*'], ['repository:team/app:*'], ['registry:admin:pull'], ['registry:*:*']]) {
      const { token: t, body } = await token('admin', ADMIN_PW, ...scopes);
      assert.ok(!String(body.scope ?? '').includes('registry:admin'), `${scopes}: ${body.scope}`);
      for (const res of [await addUser(bearer(t), 'scoped'), await raw(wharf.url, 'GET', '/admin/v1/users', { headers: bearer(t) })]) {
        assert.equal(res.status, 401, `${scopes.join(' ') || 'no scope'}: ${res.status}`);
        assert.equal(errorCode(res), 'UNAUTHORIZED');
        assert.equal(res.header('www-authenticate'), challenge);
      }
    }
    // Asked for, an administrator gets it, and it works.
    const admin = await token('admin', ADMIN_PW, ADMIN_SCOPE, 'repository:team/app:pull');
    assert.equal(admin.body.scope, `${ADMIN_SCOPE} repository:team/app:pull`);
    assert.equal((await addUser(bearer(admin.token), 'scoped')).status, 201);
    assert.equal((await raw(wharf.url, 'DELETE', '/admin/v1/users/scoped', { headers: bearer(admin.token) })).status, 204);
    // Nobody else gets it; a non-administrator's token is refused whatever it carries.
    const dev = await token('dev', DEV_PW, ADMIN_SCOPE, 'repository:team/app:pull');
    assert.equal(dev.body.scope, 'repository:team/app:pull');
    const denied = await addUser(bearer(dev.token), 'scoped');
    assert.equal(denied.status, 403);
    assert.equal(errorCode(denied), 'DENIED');
    const anonymous = await token(undefined, undefined, ADMIN_SCOPE);
    assert.equal(anonymous.body.scope, undefined);
    assert.equal((await addUser(bearer(anonymous.token), 'scoped')).status, 401);
    // Basic credentials of an administrator, as wharf user|robot|policy send them, still work.
    assert.equal((await raw(wharf.url, 'GET', '/admin/v1/users', { headers: { Authorization: basic('admin', ADMIN_PW) } })).status, 200);
    assert.equal((await raw(wharf.url, 'GET', '/admin/v1/users', { headers: { Authorization: basic('dev', DEV_PW) } })).status, 403);
  });

  describe('refused tokens', () => {
    const refused = async (t: string, method = 'GET', path = '/v2/team/app/manifests/v1') => {
      const res = await raw(wharf.url, method, path, { headers: bearer(t) });
      assert.ok(res.status === 401 || res.status === 403, `${method} ${path}: ${res.status}`);
      assert.ok(['UNAUTHORIZED', 'DENIED'].includes(errorCode(res)!));
      return res;
    };

    test('signed by another key under our kid', async () => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const res = await refused(await sign(privateKey, { kid }, claims(pushScope('team/app'))));
      assert.match(res.header('www-authenticate')!, /error="invalid_token"/);
    });

    test('carrying its own key in a jwk header', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const jwk = await exportJWK(publicKey);
      await refused(await sign(privateKey, { jwk }, claims(pushScope('team/app'))));
      await refused(await sign(privateKey, { jwk, kid }, claims(pushScope('team/app'))));
    });

    test('with alg none', async () => {
      await refused(`${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims(pushScope('team/app')))}.`);
      await refused(`${b64url({ alg: 'none', kid })}.${b64url(claims(pushScope('team/app')))}.`);
    });

    test('with HS256 keyed by the public key', async () => {
      const jwks = readFileSync(join(wharf.dataDir, 'auth', 'token-jwks.json'), 'utf8');
      const publicPem = createPublicKey(signingKey).export({ type: 'spki', format: 'pem' });
      for (const secret of [jwks, JSON.stringify(JSON.parse(jwks).keys[0]), String(publicPem)]) {
        const input = `${b64url({ alg: 'HS256', kid })}.${b64url(claims(pushScope('team/app')))}`;
        await refused(`${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`);
      }
    });

    test('expired, not yet valid, for another audience or from another issuer', async () => {
      const now = Math.floor(Date.now() / 1000);
      await refused(await sign(signingKey, { kid }, claims(pushScope('team/app'), { exp: now - 120, nbf: now - 600 })));
      await refused(await sign(signingKey, { kid }, claims(pushScope('team/app'), { nbf: now + 600, exp: now + 900 })));
      await refused(await sign(signingKey, { kid }, claims(pushScope('team/app'), { aud: 'another-registry' })));
      await refused(await sign(signingKey, { kid }, claims(pushScope('team/app'), { iss: 'someone-else' })));
      // The same claims signed properly pass, so the refusals above are about the claims.
      const good = await sign(signingKey, { kid }, claims(pushScope('team/app')));
      assert.equal((await raw(wharf.url, 'GET', '/v2/team/app/manifests/v1', { headers: bearer(good) })).status, 200);
    });

    test('scoped to another repository', async () => {
      const { token: t } = await token('dev', DEV_PW, 'repository:team/other:pull,push');
      const res = await refused(t);
      assert.equal(res.status, 401);
      assert.match(res.header('www-authenticate')!, /scope="repository:team\/app:pull",error="insufficient_scope"/);
    });

    test('a push token used to DELETE, and a pull token used to push', async () => {
      const { token: push } = await token('admin', ADMIN_PW, 'repository:team/app:pull,push');
      await refused(push, 'DELETE', '/v2/team/app/manifests/v1');
      const { token: pull } = await token('dev', DEV_PW, 'repository:team/app:pull');
      await refused(pull, 'POST', '/v2/team/app/blobs/uploads/');
      await refused(pull, 'PUT', '/v2/team/app/manifests/v2');
      // dev's policy has no delete: a token cannot help, so the answer is 403 DENIED.
      const { token: devPush } = await token('dev', DEV_PW, 'repository:team/app:pull,push,delete');
      const res = await refused(devPush, 'DELETE', '/v2/team/app/manifests/v1');
      assert.equal(res.status, 403);
      assert.equal(errorCode(res), 'DENIED');
      const { token: del } = await token('admin', ADMIN_PW, 'repository:team/app:delete');
      assert.equal((await raw(wharf.url, 'DELETE', '/v2/team/app/manifests/v1', { headers: bearer(del) })).status, 202);
    });

    test('for an account removed since it was issued', async () => {
      const created = await raw(wharf.url, 'POST', '/admin/v1/users', {
        headers: { Authorization: basic('admin', ADMIN_PW), 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'temp', password: 'temp-password-1' }),
      });
      assert.equal(created.status, 201);
      watch.credentials('temp', 'temp-password-1');
      const { token: t } = await token('temp', 'temp-password-1', 'repository:public/base:pull');
      assert.equal((await raw(wharf.url, 'GET', '/v2/public/base/manifests/v1', { headers: bearer(t) })).status, 200);
      assert.equal((await raw(wharf.url, 'DELETE', '/admin/v1/users/temp', { headers: { Authorization: basic('admin', ADMIN_PW) } })).status, 204);
      await refused(t, 'GET', '/v2/public/base/manifests/v1');
    });
  });

  test('the OAuth2 POST form issues refresh tokens (docker identity tokens) that die with the password', async () => {
    const admin = { Authorization: basic('admin', ADMIN_PW), 'Content-Type': 'application/json' };
    assert.equal((await raw(wharf.url, 'POST', '/admin/v1/users', { headers: admin, body: JSON.stringify({ name: 'ops', password: OPS_PW }) })).status, 201);
    assert.equal((await raw(wharf.url, 'POST', '/admin/v1/policy/rules', { headers: admin, body: JSON.stringify({ subject: 'user:ops', repository: 'team/*', actions: ['pull'] }) })).status, 201);
    const form = (fields: Record<string, string>) => ({ headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() });
    const login = await raw(wharf.url, 'POST', '/auth/token', form({ grant_type: 'password', username: 'ops', password: OPS_PW, service: SERVICE, client_id: 'docker', access_type: 'offline', scope: 'repository:team/app:pull,push' }));
    assert.equal(login.status, 200, login.body.toString());
    const { access_token, refresh_token, scope } = login.json();
    watch.secret(access_token);
    watch.secret(refresh_token);
    assert.match(refresh_token, /^wharf_rt_/);
    assert.equal(scope, 'repository:team/app:pull');
    const refreshed = await raw(wharf.url, 'POST', '/auth/token', form({ grant_type: 'refresh_token', refresh_token, service: SERVICE, client_id: 'docker', scope: 'repository:team/app:pull' }));
    assert.equal(refreshed.status, 200);
    watch.secret(refreshed.json().access_token);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/app/tags/list', { headers: bearer(refreshed.json().access_token) })).status, 200);
    const bad = await raw(wharf.url, 'POST', '/auth/token', form({ grant_type: 'password', username: 'ops', password: 'not-it', service: SERVICE }));
    assert.equal(bad.status, 401);
    assert.equal((await raw(wharf.url, 'PUT', '/admin/v1/users/ops/password', { headers: admin, body: JSON.stringify({ password: 'ops-password-2' }) })).status, 204);
    watch.credentials('ops', 'ops-password-2');
    const revoked = await raw(wharf.url, 'POST', '/auth/token', form({ grant_type: 'refresh_token', refresh_token, service: SERVICE }));
    assert.equal(revoked.status, 401);
  });

  test('the audit log records token issuance and refusals without the tokens', async () => {
    await wharf.stop();
    const lines = readFileSync(join(wharf.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.event === 'token' && l.outcome === 'success' && l.actor === 'dev' && l.granted.includes('repository:team/app:pull,push')));
    assert.ok(lines.some((l) => l.event === 'token' && l.outcome === 'failure' && l.reason === 'expired'));
    assert.ok(lines.some((l) => l.event === 'token' && l.outcome === 'failure' && l.reason === 'signature'));
  });
});

describe("tokens from an external issuer (registry:2's rootcertbundle and jwks)", () => {
  test('are verified against the configured certificates and keys only', async () => {
    const certs = makeCertificates(undefined, 'issuer');
    cleanup.push(() => rmSync(certs.dir, { recursive: true, force: true }));
    const issuerKey = createPrivateKey(readFileSync(certs.serverKey));
    const { privateKey: jwksKey, publicKey: jwksPublic } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwksPath = join(certs.dir, 'jwks.json');
    writeFileSync(jwksPath, JSON.stringify({ keys: [{ ...(await exportJWK(jwksPublic)), kid: 'external-key-1', alg: 'ES256' }] }));
    const wharf = watch.server(
      await startWharf({
        env: {
          REGISTRY_AUTH: 'token',
          REGISTRY_AUTH_TOKEN_REALM: 'https://auth.example.test/token',
          REGISTRY_AUTH_TOKEN_SERVICE: SERVICE,
          REGISTRY_AUTH_TOKEN_ISSUER: ISSUER,
          REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE: certs.caCert.replace('ca.crt', 'issuer.crt'),
          REGISTRY_AUTH_TOKEN_JWKS: jwksPath,
        },
      }),
    );
    const challenge = await raw(wharf.url, 'GET', '/v2/team/app/tags/list');
    assert.equal(challenge.header('www-authenticate'), `Bearer realm="https://auth.example.test/token",service="${SERVICE}",scope="repository:team/app:pull"`);
    assert.equal((await raw(wharf.url, 'GET', '/auth/token')).status, 404, 'no built-in issuer when keys are configured');

    const pushAccess = [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }];
    const viaCert = await sign(issuerKey, {}, claims(pushAccess, { sub: 'ci-bot' }));
    await pushImage(wharf.url, 'team/app', 'v1', bearer(viaCert));
    const viaJwks = await sign(jwksKey, { kid: 'external-key-1' }, claims([{ type: 'repository', name: 'team/app', actions: ['pull'] }]));
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/app/manifests/v1', { headers: bearer(viaJwks) })).status, 200);
    assert.equal((await raw(wharf.url, 'POST', '/v2/team/app/blobs/uploads/', { headers: bearer(viaJwks) })).status, 401);
    // A certificate in x5c is not trusted just because the token carries it.
    const { privateKey: rogue } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const certDer = readFileSync(certs.caCert.replace('ca.crt', 'issuer.crt'), 'utf8').replace(/-----[^-]+-----|\s/g, '');
    const x5c = await sign(rogue, { x5c: [certDer] }, claims(pushAccess));
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/app/manifests/v1', { headers: bearer(x5c) })).status, 401);
    const jku = await sign(rogue, { jku: 'https://attacker.example.test/jwks.json', kid: 'external-key-1' }, claims(pushAccess));
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/app/manifests/v1', { headers: bearer(jku) })).status, 401);
    for (const t of [viaCert, viaJwks, x5c, jku]) watch.secret(t);
    await wharf.stop();
  });
});

test('no password or token of this suite appears in any log it wrote', () => {
  assert.ok(watch.sources() >= 2);
  assert.deepEqual(watch.leaks(), []);
});
