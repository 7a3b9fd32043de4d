import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SecretWatch, basic, writeHtpasswd } from './support/auth-fixtures.js';
import { errorCode, raw } from './support/http.js';
import { blob } from './support/oci-fixtures.js';
import { pushImage } from './support/push.js';
import { WHARF_BIN, startWharf, type WharfProcess } from './support/wharf-process.js';

const watch = new SecretWatch();
const ROOT_PW = watch.credentials('root', 'root-password-1');
const ALICE_PW = watch.credentials('alice', 'alice-password-1');
const BOB_PW = watch.credentials('bob', 'bob-password-1');
const DAVE_PW = watch.credentials('dave', 'dave-password-1');
const ERIN_PW = watch.credentials('erin', 'erin-password-1');
const ERIN_PW2 = watch.credentials('erin', 'erin-password-2');

const cleanup: Array<() => void> = [];
after(() => cleanup.forEach((step) => step()));
const root = { Authorization: basic('root', ROOT_PW) };
const alice = { Authorization: basic('alice', ALICE_PW) };
const bob = { Authorization: basic('bob', BOB_PW) };

/** Runs the wharf CLI; resolves with its exit code and output. */
function cli(args: string[], env: Record<string, string>, stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WHARF_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('per-repository policy from the config file', () => {
  let dir: string;
  let wharf: WharfProcess;
  let privateImage: Awaited<ReturnType<typeof pushImage>>;
  let publicImage: Awaited<ReturnType<typeof pushImage>>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wharf-policy-'));
    writeHtpasswd(join(dir, 'htpasswd'), { root: ROOT_PW, alice: ALICE_PW, bob: BOB_PW });
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1
storage:
  delete:
    enabled: true
auth:
  htpasswd:
    realm: policy-test
    path: ${join(dir, 'htpasswd')}
  policy:
    admins: [root]
    public: ["public/**"]
    groups:
      team: [alice]
    rules:
      - subject: group:team
        repository: team/*
        actions: [pull, push]
      - subject: user:bob
        repository: team/*
        actions: [pull]
      - subject: user:alice
        repository: team/app
        actions: [delete]
`,
    );
    wharf = watch.server(await startWharf({ args: [join(dir, 'config.yml')] }));
    privateImage = await pushImage(wharf.url, 'private/secret', 'v1', root);
    publicImage = await pushImage(wharf.url, 'public/base', 'v1', root);
  });

  after(async () => {
    await wharf?.stop();
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  });

  test('anonymous may pull a public repository but gets 401 on a private one', async () => {
    assert.equal((await raw(wharf.url, 'GET', '/v2/public/base/manifests/v1')).status, 200);
    assert.equal((await raw(wharf.url, 'GET', `/v2/public/base/blobs/${publicImage.layer.digest}`)).status, 200);
    const res = await raw(wharf.url, 'GET', '/v2/private/secret/manifests/v1');
    assert.equal(res.status, 401);
    assert.equal(errorCode(res), 'UNAUTHORIZED');
    assert.match(res.header('www-authenticate')!, /^Basic realm="policy-test"/);
    assert.equal((await raw(wharf.url, 'PUT', '/v2/public/base/manifests/v2', { body: '{}' })).status, 401);
  });

  test('a signed-in user without the permission gets 403 DENIED', async () => {
    const res = await raw(wharf.url, 'GET', '/v2/private/secret/manifests/v1', { headers: alice });
    assert.equal(res.status, 403);
    assert.equal(errorCode(res), 'DENIED');
    const push = await raw(wharf.url, 'POST', '/v2/team/app/blobs/uploads/', { headers: bob });
    assert.equal(push.status, 403);
    assert.equal(errorCode(push), 'DENIED');
  });

  test('group members push where their group may; others pull', async () => {
    await pushImage(wharf.url, 'team/app', 'v1', alice);
    await pushImage(wharf.url, 'team/lib', 'v1', alice);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/app/manifests/v1', { headers: bob })).status, 200);
    // team/* is one component: team/app/sub is not covered.
    assert.equal((await raw(wharf.url, 'POST', '/v2/team/app/sub/blobs/uploads/', { headers: alice })).status, 403);
  });

  test('DELETE needs the delete permission, not push', async () => {
    const lib = await raw(wharf.url, 'DELETE', '/v2/team/lib/manifests/v1', { headers: alice });
    assert.equal(lib.status, 403);
    assert.equal(errorCode(lib), 'DENIED');
    const app = await raw(wharf.url, 'DELETE', '/v2/team/app/manifests/v1', { headers: alice });
    assert.equal(app.status, 202);
  });

  test('a mount from a repository the caller cannot pull falls back to an upload (202)', async () => {
    const denied = await raw(wharf.url, 'POST', `/v2/team/lib/blobs/uploads/?mount=${privateImage.layer.digest}&from=private/secret`, { headers: alice });
    assert.equal(denied.status, 202);
    assert.ok(denied.header('location'));
    const allowed = await raw(wharf.url, 'POST', `/v2/team/lib/blobs/uploads/?mount=${publicImage.layer.digest}&from=public/base`, { headers: alice });
    assert.equal(allowed.status, 201);
  });

  test('an automatic mount (no from) only takes blobs from repositories the caller can pull', async () => {
    const hidden = await raw(wharf.url, 'POST', `/v2/team/lib/blobs/uploads/?mount=${privateImage.config.digest}`, { headers: alice });
    assert.equal(hidden.status, 202);
    assert.equal((await raw(wharf.url, 'HEAD', `/v2/team/lib/blobs/${privateImage.config.digest}`, { headers: alice })).status, 404);
    const visible = await raw(wharf.url, 'POST', `/v2/team/lib/blobs/uploads/?mount=${publicImage.config.digest}`, { headers: alice });
    assert.equal(visible.status, 201);
  });

  test('the catalog lists only repositories the caller may pull', async () => {
    const list = async (headers: Record<string, string>) => (await raw(wharf.url, 'GET', '/v2/_catalog', { headers })).json().repositories as string[];
    // team/app lost only its tag above: its manifest (and so the repository) is still there.
    assert.deepEqual(await list(alice), ['public/base', 'team/app', 'team/lib']);
    assert.deepEqual(await list(root), ['private/secret', 'public/base', 'team/app', 'team/lib']);
    const paged = await raw(wharf.url, 'GET', '/v2/_catalog?n=1', { headers: alice });
    assert.deepEqual(paged.json().repositories, ['public/base']);
    assert.match(paged.header('link')!, /last=public%2Fbase/);
    assert.equal((await raw(wharf.url, 'GET', '/v2/_catalog')).status, 401);
  });

  test('path tricks are refused before authorization, for signed-in users too', async () => {
    for (const path of ['/v2/team/%2e%2e/private/secret/manifests/v1', '/v2/team%2F..%2Fprivate/secret/manifests/v1', '/v2/team//app/manifests/v1']) {
      for (const headers of [{}, alice]) {
        const res = await raw(wharf.url, 'GET', path, { headers });
        assert.equal(res.status, 400, path);
        assert.equal(errorCode(res), 'NAME_INVALID');
      }
    }
  });

  test('the admin API is for administrators and ignores privileged fields', async () => {
    assert.equal((await raw(wharf.url, 'GET', '/admin/v1/users')).status, 401);
    const denied = await raw(wharf.url, 'GET', '/admin/v1/users', { headers: alice });
    assert.equal(denied.status, 403);
    const created = await raw(wharf.url, 'POST', '/admin/v1/users', {
      headers: { ...root, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'dave', password: DAVE_PW, groups: ['team'], admin: true, role: 'admin', permissions: [{ repository: '**', actions: ['admin'] }] }),
    });
    assert.equal(created.status, 201, created.body.toString());
    assert.deepEqual(created.json(), { name: 'dave', groups: ['team'] });
    const dave = { Authorization: basic('dave', DAVE_PW) };
    assert.equal((await raw(wharf.url, 'GET', '/admin/v1/users', { headers: dave })).status, 403);
    assert.equal((await raw(wharf.url, 'GET', '/v2/private/secret/manifests/v1', { headers: dave })).status, 403);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/lib/manifests/v1', { headers: dave })).status, 200);
    const users = (await raw(wharf.url, 'GET', '/admin/v1/users', { headers: root })).json().users;
    assert.deepEqual(users.find((u: { name: string }) => u.name === 'dave'), { name: 'dave', groups: ['team'], source: 'wharf' });
    assert.deepEqual(users.find((u: { name: string }) => u.name === 'alice'), { name: 'alice', groups: ['team'], source: 'htpasswd' });
    assert.ok(!JSON.stringify(users).includes('$2'), 'no password hashes in the listing');
  });

  test('the admin API shows the background job queue to administrators only', async () => {
    assert.equal((await raw(wharf.url, 'GET', '/admin/v1/jobs', { headers: alice })).status, 403);
    const listed = await raw(wharf.url, 'GET', '/admin/v1/jobs?state=ready,running', { headers: root });
    assert.equal(listed.status, 200, listed.body.toString());
    const jobs = listed.json().jobs as Array<{ kind: string; state: string; repeatMs: number }>;
    // Upload purging and the retention policies' runs are recurring jobs, both daily by default.
    assert.deepEqual(jobs.map((job) => job.kind).sort(), ['retention.apply', 'uploads.purge']);
    for (const job of jobs) assert.equal(job.repeatMs, 24 * 3_600_000, job.kind);
    assert.equal((await raw(wharf.url, 'GET', '/admin/v1/jobs?state=bogus', { headers: root })).status, 400);
    assert.equal((await raw(wharf.url, 'DELETE', '/admin/v1/jobs', { headers: root })).status, 405);
  });

  test('robot accounts have long-lived tokens scoped to repositories, and can be revoked', async () => {
    const created = await raw(wharf.url, 'POST', '/admin/v1/robots', {
      headers: { ...root, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'ci', repositories: ['team/*'], actions: ['pull'], admin: true }),
    });
    assert.equal(created.status, 201);
    const { name, token } = created.json();
    watch.credentials(name, token);
    assert.equal(name, 'robot$ci');
    const robot = { Authorization: basic(name, token) };
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/lib/manifests/v1', { headers: robot })).status, 200);
    assert.equal((await raw(wharf.url, 'POST', '/v2/team/lib/blobs/uploads/', { headers: robot })).status, 403);
    assert.equal((await raw(wharf.url, 'GET', '/v2/private/secret/manifests/v1', { headers: robot })).status, 403);
    assert.equal((await raw(wharf.url, 'GET', '/admin/v1/robots', { headers: robot })).status, 403);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/lib/manifests/v1', { headers: { Authorization: basic(name, `${token}x`) } })).status, 401);
    assert.equal((await raw(wharf.url, 'DELETE', '/admin/v1/robots/robot$ci', { headers: root })).status, 204);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/lib/manifests/v1', { headers: robot })).status, 401);
  });

  test('wharf user, robot and policy commands manage accounts through the admin API', async () => {
    const env = { WHARF_REGISTRY: wharf.url, WHARF_USERNAME: 'root', WHARF_PASSWORD: ROOT_PW };
    let r = await cli(['user', 'add', 'erin', '--group', 'readers', '--new-password-stdin'], env, `${ERIN_PW}\n`);
    assert.equal(r.code, 0, r.stderr);
    r = await cli(['user', 'ls'], env);
    assert.match(r.stdout, /^erin\twharf\treaders$/m);
    const erin = (pw: string) => ({ Authorization: basic('erin', pw) });
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: erin(ERIN_PW) })).status, 200);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/lib/tags/list', { headers: erin(ERIN_PW) })).status, 403);

    r = await cli(['policy', 'grant', 'group:readers', 'team/**', 'pull'], env);
    assert.equal(r.code, 0, r.stderr);
    const id = /^rule (\d+):/.exec(r.stdout)![1]!;
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/lib/tags/list', { headers: erin(ERIN_PW) })).status, 200);
    r = await cli(['policy', 'ls'], env);
    assert.match(r.stdout, new RegExp(`^${id}\\tapi\\tgroup:readers\\tteam/\\*\\*\\tpull$`, 'm'));
    assert.match(r.stdout, /^-\tconfig\tuser:root\t\*\*\tadmin$/m);
    r = await cli(['policy', 'revoke', id], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/lib/tags/list', { headers: erin(ERIN_PW) })).status, 403);

    r = await cli(['policy', 'public', 'team/lib'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/lib/tags/list')).status, 200);

    r = await cli(['user', 'passwd', 'erin', '--new-password-stdin'], env, `${ERIN_PW2}\n`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: erin(ERIN_PW) })).status, 401);
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: erin(ERIN_PW2) })).status, 200);

    r = await cli(['robot', 'create', 'deployer', '--repository', 'team/*', '--actions', 'pull,push', '--expires', '30d'], env);
    assert.equal(r.code, 0, r.stderr);
    const robotToken = watch.secret(r.stdout.trim());
    watch.credentials('robot$deployer', robotToken);
    assert.match(robotToken, /^wharf_rbt_/);
    assert.equal((await raw(wharf.url, 'POST', '/v2/team/lib/blobs/uploads/', { headers: { Authorization: basic('robot$deployer', robotToken) } })).status, 202);
    r = await cli(['robot', 'ls'], env);
    assert.match(r.stdout, /^robot\$deployer\tteam\/\*:pull,push\texpires /m);
    assert.ok(!r.stdout.includes(robotToken));
    r = await cli(['robot', 'revoke', 'robot$deployer'], env);
    assert.equal(r.code, 0, r.stderr);

    r = await cli(['user', 'rm', 'erin'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await raw(wharf.url, 'GET', '/v2/', { headers: erin(ERIN_PW2) })).status, 401);

    r = await cli(['user', 'ls'], { ...env, WHARF_USERNAME: 'alice', WHARF_PASSWORD: ALICE_PW });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /403 DENIED/);
  });

  test('the audit log records pushes, tag moves and deletes with the actor, and denials', async () => {
    const moved = await pushImage(wharf.url, 'team/lib', 'v1', alice, blob('another layer'));
    await wharf.stop();
    const lines = readFileSync(join(wharf.dataDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const find = (predicate: (l: Record<string, unknown>) => boolean) => lines.find(predicate);
    assert.ok(find((l) => l.event === 'manifest.push' && l.repository === 'team/app' && l.actor === 'alice'));
    assert.ok(find((l) => l.event === 'blob.push' && l.repository === 'team/app' && l.actor === 'alice'));
    const move = find((l) => l.event === 'tag.move' && l.repository === 'team/lib' && l.digest === moved.manifest.digest);
    assert.equal(move?.actor, 'alice');
    assert.ok(typeof move?.previous === 'string');
    assert.ok(find((l) => l.event === 'tag.delete' && l.repository === 'team/app' && l.tag === 'v1' && l.actor === 'alice'));
    assert.ok(find((l) => l.event === 'blob.mount' && l.repository === 'team/lib' && l.from === 'public/base'));
    assert.ok(find((l) => l.event === 'access' && l.outcome === 'deny' && l.actor === 'bob' && l.action === 'push'));
    assert.ok(find((l) => l.event === 'admin' && l.action === 'user.add' && l.actor === 'root' && l.target === 'dave'));
    assert.ok(find((l) => l.event === 'admin' && l.action === 'robot.revoke' && l.target === 'robot$ci'));
  });
});

test('no password or robot token of this suite appears in any log it wrote', async () => {
  assert.ok(watch.sources() >= 2);
  assert.deepEqual(watch.leaks(), []);
});

// Data directories are removed last, after the leak check has read them.
after(() => watch.dispose());
