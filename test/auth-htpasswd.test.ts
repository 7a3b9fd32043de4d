import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SecretWatch, basic, htpasswdLine, writeHtpasswd } from './support/auth-fixtures.js';
import { errorCode, raw } from './support/http.js';
import { WHARF_BIN, startWharf, type WharfProcess } from './support/wharf-process.js';

const watch = new SecretWatch();
const PASSWORD = watch.credentials('alice', 'correct-horse-battery');
const WRONG = watch.secret('wrong-horse-battery');
const LATER = watch.credentials('bob', 'added-later-password');
/** Run after the leak check, which reads the logs these would remove. */
const cleanup: Array<() => unknown> = [];
after(async () => {
  await watch.dispose();
  for (const step of cleanup) await step();
});

describe('htpasswd basic auth with registry:2 environment variables', () => {
  let dir: string;
  let wharf: WharfProcess;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wharf-htpasswd-'));
    writeHtpasswd(join(dir, 'htpasswd'), { alice: PASSWORD });
    wharf = watch.server(
      await startWharf({
        env: {
          REGISTRY_AUTH: 'htpasswd',
          REGISTRY_AUTH_HTPASSWD_REALM: 'Wharf Test Realm',
          REGISTRY_AUTH_HTPASSWD_PATH: join(dir, 'htpasswd'),
          REGISTRY_AUTH_THROTTLE_MAXFAILURES: '3',
        },
      }),
    );
  });

  after(async () => {
    await wharf?.stop();
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  });

  test('anonymous requests get 401 with a Basic challenge and an UNAUTHORIZED body', async () => {
    for (const path of ['/v2/', '/v2/_catalog', '/v2/team/app/tags/list', '/v2/team/app/manifests/latest']) {
      const res = await raw(wharf.url, 'GET', path);
      assert.equal(res.status, 401, path);
      assert.equal(res.header('www-authenticate'), 'Basic realm="Wharf Test Realm",charset="UTF-8"');
      assert.equal(errorCode(res), 'UNAUTHORIZED');
    }
  });

  test('the right password is accepted and a wrong one refused', async () => {
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: { Authorization: basic('alice', PASSWORD) } })).status, 200);
    const wrong = await raw(wharf.url, 'GET', '/v2/', { headers: { Authorization: basic('alice', WRONG) } });
    assert.equal(wrong.status, 401);
    assert.equal(errorCode(wrong), 'UNAUTHORIZED');
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: { Authorization: basic('nobody', PASSWORD) } })).status, 401);
  });

  test('without a policy section a signed-in user may push, pull and delete, as with registry:2', async () => {
    const auth = { Authorization: basic('alice', PASSWORD) };
    const start = await raw(wharf.url, 'POST', '/v2/team/app/blobs/uploads/', { headers: auth });
    assert.equal(start.status, 202);
    const cancel = await raw(wharf.url, 'DELETE', start.header('location')!, { headers: auth });
    assert.equal(cancel.status, 204);
  });

  test('path tricks are refused as invalid names before any authorization decision', async () => {
    for (const path of [
      '/v2/team/%2e%2e/secret/tags/list',
      '/v2/team/../secret/tags/list',
      '/v2/team%2fsecret/tags/list',
      '/v2/team//secret/tags/list',
      '/v2/team/./secret/tags/list',
      '/v2/../v2/team/tags/list',
    ]) {
      const res = await raw(wharf.url, 'GET', path);
      assert.ok(res.status === 400 || res.status === 404, `${path}: ${res.status}`);
      assert.notEqual(res.status, 401, path);
      if (res.status === 400) assert.equal(errorCode(res), 'NAME_INVALID');
    }
  });

  test('the htpasswd file is re-read when it changes', async () => {
    const auth = { Authorization: basic('bob', LATER) };
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: auth })).status, 401);
    appendFileSync(join(dir, 'htpasswd'), `${htpasswdLine('bob', LATER)}\n`);
    // The file is checked for changes at most once a second; one more failure stays under the throttle.
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: auth })).status, 200);
  });

  test('failed logins are throttled per user with 429 TOOMANYREQUESTS and Retry-After', async () => {
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: { Authorization: basic('carol', WRONG) } })).status, 401);
    }
    const res = await raw(wharf.url, 'GET', '/v2/', { headers: { Authorization: basic('carol', WRONG) } });
    assert.equal(res.status, 429);
    assert.equal(errorCode(res), 'TOOMANYREQUESTS');
    assert.ok(Number(res.header('retry-after')) > 0);
    // Another user from the same address is not blocked by carol's count.
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: { Authorization: basic('alice', PASSWORD) } })).status, 200);
  });

  test('authentication decisions reach the audit log, without secrets', async () => {
    await wharf.stop();
    const audit = (await import('node:fs')).readFileSync(join(wharf.dataDir, 'audit.log'), 'utf8');
    const lines = audit.trim().split('\n').map((l) => JSON.parse(l));
    assert.ok(lines.some((l) => l.event === 'login' && l.outcome === 'success' && l.actor === 'alice'));
    assert.ok(lines.some((l) => l.event === 'login' && l.outcome === 'failure' && l.actor === 'carol' && l.reason === 'throttled'));
  });
});

describe('credentials over plain HTTP on a non-loopback address', () => {
  test('are refused unless auth.allowplainhttp is set, which logs a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-plain-'));
    writeHtpasswd(join(dir, 'htpasswd'), { alice: PASSWORD });
    const env = { ...process.env, REGISTRY_AUTH: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: join(dir, 'htpasswd') };
    const child = spawn(process.execPath, [WHARF_BIN, 'serve', '--addr', '0.0.0.0:0', '--data', join(dir, 'data')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.notEqual(code, 0);
    assert.match(output, /allowplainhttp/);

    const allowed = watch.server(await startWharf({ addr: '0.0.0.0:0', dataDir: join(dir, 'data2'), env: { ...env, REGISTRY_AUTH_ALLOWPLAINHTTP: 'true' } as Record<string, string> }));
    try {
      assert.match(allowed.output(), /"level":"warn".*unencrypted/);
      assert.equal((await raw(`http://127.0.0.1:${allowed.port}`, 'GET', '/v2/', { headers: { Authorization: basic('alice', PASSWORD) } })).status, 200);
    } finally {
      await allowed.stop();
    }
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  });
});

test('no password of this suite appears in any log it wrote', () => {
  assert.ok(watch.sources() >= 3);
  assert.deepEqual(watch.leaks(), []);
});
