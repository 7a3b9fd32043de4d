import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { cliUser, type CliUser } from './support/cli.js';
import { errorCode, raw } from './support/http.js';
import { OCI_MANIFEST, configBlob, imageManifest, type Blob } from './support/oci-fixtures.js';
import { pushImage } from './support/push.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const ROOT_PW = 'root-password-lifecycle';
const DEV_PW = 'dev-password-lifecycle';
const READER_PW = 'reader-password-lifecycle';
const root = { Authorization: basic('root', ROOT_PW) };
const dev = { Authorization: basic('dev', DEV_PW) };
const reader = { Authorization: basic('reader', READER_PW) };

/** Pushes another manifest over the same config (a new digest) under `reference` and `?tag=`s. */
async function pushVariant(wharf: WharfProcess, repository: string, reference: string, config: Blob, n: string, extraTags: string[] = [], headers = root) {
  const manifest = imageManifest(config, [], { annotations: { n } });
  const query = extraTags.length > 0 ? '?' + extraTags.map((t) => `tag=${t}`).join('&') : '';
  const res = await raw(wharf.url, 'PUT', `/v2/${repository}/manifests/${reference}${query}`, {
    headers: { ...headers, 'Content-Type': OCI_MANIFEST },
    body: manifest.data,
  });
  return { res, manifest };
}

async function digestOfTag(wharf: WharfProcess, repository: string, tag: string, headers = root): Promise<string | undefined> {
  const res = await raw(wharf.url, 'HEAD', `/v2/${repository}/manifests/${tag}`, { headers: { ...headers, Accept: OCI_MANIFEST } });
  return res.status === 200 ? res.header('docker-content-digest') : undefined;
}

describe('immutable tags, tag history and restore (wharf serve, the CLI)', () => {
  let dir: string;
  let wharf: WharfProcess;
  let user: CliUser;
  let adminEnv: Record<string, string>;
  let config: Blob;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wharf-lifecycle-'));
    writeHtpasswd(join(dir, 'htpasswd'), { root: ROOT_PW, dev: DEV_PW, reader: READER_PW });
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1
storage:
  delete:
    enabled: true
immutable:
  rules: ["base/**:stable"]
auth:
  htpasswd:
    realm: lifecycle
    path: ${join(dir, 'htpasswd')}
  policy:
    admins: [root]
    rules:
      - subject: user:dev
        repository: "**"
        actions: [pull, push, delete]
      - subject: user:reader
        repository: "**"
        actions: [pull]
`,
    );
    wharf = await startWharf({ args: [join(dir, 'config.yml')] });
    user = cliUser();
    adminEnv = { WHARF_REGISTRY: wharf.url, WHARF_USERNAME: 'root', WHARF_PASSWORD: ROOT_PW };
    config = configBlob({ lifecycle: true });
    await pushImage(wharf.url, 'release/app', 'seed', root);
    await pushImage(wharf.url, 'base/os', 'stable', root);
    for (const repository of ['release/app', 'team/app']) {
      const res = await raw(wharf.url, 'POST', `/v2/${repository}/blobs/uploads/?digest=${config.digest}`, {
        headers: { ...root, 'Content-Type': 'application/octet-stream' },
        body: config.data,
      });
      assert.equal(res.status, 201);
    }
  });

  after(async () => {
    await wharf?.dispose();
    user?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('wharf policy immutable add|list|remove manage rules through the admin API; config rules are listed and stay', async () => {
    const added = await user.ok(['policy', 'immutable', 'add', 'release/*:v*'], { env: adminEnv });
    assert.match(added.stdout, /immutable rule (\d+): release\/\*:v\*/);
    const list = await user.ok(['policy', 'immutable', 'list'], { env: adminEnv });
    assert.match(list.stdout, /\tconfig\tbase\/\*\*:stable\t/);
    assert.match(list.stdout, /\tapi\trelease\/\*:v\*\troot\n/);
    const configId = /^(\d+)\tconfig/m.exec(list.stdout)![1]!;
    const refused = await user.run(['policy', 'immutable', 'remove', configId], { env: adminEnv });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /403 DENIED: .*config\.yml/);
    const bad = await user.run(['policy', 'immutable', 'add', 'release/*'], { env: adminEnv });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /400 INVALID_REQUEST/);
    const asDev = await raw(wharf.url, 'GET', '/admin/v1/policy/immutable', { headers: dev });
    assert.equal(asDev.status, 403, 'only administrators manage rules');
  });

  test('a push that would move an immutable tag is refused with DENIED naming the rule; the same digest again is allowed', async () => {
    const first = await pushVariant(wharf, 'release/app', 'v1', config, 'one');
    assert.equal(first.res.status, 201);
    const again = await pushVariant(wharf, 'release/app', 'v1', config, 'one');
    assert.equal(again.res.status, 201, 'pushing the digest it already has is allowed');
    const moved = await pushVariant(wharf, 'release/app', 'v1', config, 'two');
    assert.equal(moved.res.status, 403);
    assert.equal(errorCode(moved.res), 'DENIED');
    assert.match(moved.res.body.toString(), /release\/\*:v\*/, 'the message names the rule');
    assert.equal(await digestOfTag(wharf, 'release/app', 'v1'), first.manifest.digest);
    // The config rule holds too: base/**:stable.
    const base = await pushImage(wharf.url, 'base/os', 'other', root);
    const res = await raw(wharf.url, 'PUT', '/v2/base/os/manifests/stable', { headers: { ...root, 'Content-Type': OCI_MANIFEST }, body: base.manifest.data });
    assert.equal(res.status, 403);
    assert.match(res.body.toString(), /base\/\*\*:stable/);
  });

  test('a multi-tag push (?tag=) touching one immutable tag is refused whole: no tag moves, no manifest is stored', async () => {
    const latest = await pushVariant(wharf, 'release/app', 'latest', config, 'latest-1');
    assert.equal(latest.res.status, 201);
    const multi = await pushVariant(wharf, 'release/app', 'latest', config, 'multi', ['v1', 'edge']);
    assert.equal(multi.res.status, 403);
    assert.equal(errorCode(multi.res), 'DENIED');
    assert.equal(await digestOfTag(wharf, 'release/app', 'latest'), latest.manifest.digest);
    assert.equal(await digestOfTag(wharf, 'release/app', 'edge'), undefined);
    const byDigest = await raw(wharf.url, 'HEAD', `/v2/release/app/manifests/${multi.manifest.digest}`, { headers: root });
    assert.equal(byDigest.status, 404, 'the refused manifest was not stored');
  });

  test('deleting an immutable tag, or its manifest by digest, is refused with DENIED', async () => {
    const v1 = await digestOfTag(wharf, 'release/app', 'v1');
    const tagDelete = await raw(wharf.url, 'DELETE', '/v2/release/app/manifests/v1', { headers: dev });
    assert.equal(tagDelete.status, 403);
    assert.equal(errorCode(tagDelete), 'DENIED');
    assert.match(tagDelete.body.toString(), /cannot be deleted/);
    const manifestDelete = await raw(wharf.url, 'DELETE', `/v2/release/app/manifests/${v1}`, { headers: dev });
    assert.equal(manifestDelete.status, 403);
    assert.equal(errorCode(manifestDelete), 'DENIED');
    assert.equal(await digestOfTag(wharf, 'release/app', 'v1'), v1);
  });

  test('a rule removed through the admin API stops applying at once, without a restart', async () => {
    const list = await user.ok(['policy', 'immutable', 'ls'], { env: adminEnv });
    await user.ok(['policy', 'immutable', 'add', 'scratch/*:keep'], { env: adminEnv });
    const first = await pushImage(wharf.url, 'scratch/x', 'keep', root);
    const other = await pushImage(wharf.url, 'scratch/x', 'other', root);
    let res = await raw(wharf.url, 'PUT', '/v2/scratch/x/manifests/keep', { headers: { ...root, 'Content-Type': OCI_MANIFEST }, body: other.manifest.data });
    assert.equal(res.status, 403);
    const id = /^(\d+)\tapi\tscratch\/\*:keep/m.exec((await user.ok(['policy', 'immutable', 'list'], { env: adminEnv })).stdout)![1]!;
    assert.match((await user.ok(['policy', 'immutable', 'rm', id], { env: adminEnv })).stdout, new RegExp(`removed immutable rule ${id}`));
    res = await raw(wharf.url, 'PUT', '/v2/scratch/x/manifests/keep', { headers: { ...root, 'Content-Type': OCI_MANIFEST }, body: other.manifest.data });
    assert.equal(res.status, 201);
    assert.notEqual(first.manifest.digest, other.manifest.digest);
    assert.ok(list.stdout.length > 0);
  });

  test('wharf tag history prints every move (time, digest, previous, who), and --json', async () => {
    await user.ok(['login', wharf.host, '-u', 'dev', '--password-stdin'], { input: DEV_PW });
    const a = await pushVariant(wharf, 'team/app', 'prod', config, 'a', [], dev);
    assert.equal(a.res.status, 201, a.res.body.toString());
    const b = await pushVariant(wharf, 'team/app', 'prod', config, 'b', [], dev);
    assert.equal(b.res.status, 201);
    const table = await user.ok(['tag', 'history', `${wharf.host}/team/app:prod`]);
    const lines = table.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^TIME\s+DIGEST\s+PREVIOUS\s+WHO$/);
    assert.match(lines[1]!, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\S+Z\\s+${b.manifest.digest}\\s+${a.manifest.digest}\\s+dev$`));
    assert.match(lines[2]!, new RegExp(`\\s${a.manifest.digest}\\s+-\\s+dev$`));
    const json = JSON.parse((await user.ok(['tag', 'history', `${wharf.host}/team/app:prod`, '--json'])).stdout) as { history: Array<Record<string, unknown>> };
    assert.deepEqual(
      json.history.map((e) => [e.action, e.digest, e.previous, e.actor]),
      [
        ['push', b.manifest.digest, a.manifest.digest, 'dev'],
        ['push', a.manifest.digest, null, 'dev'],
      ],
    );
  });

  test('wharf tag restore --to DIGEST and --at TIME move the tag back and are recorded; push rights are needed', async () => {
    const events = JSON.parse((await user.ok(['tag', 'history', `${wharf.host}/team/app:prod`, '--json'])).stdout).history as Array<{ at: string; digest: string; previous: string }>;
    const [latest, firstPush] = events as [{ at: string; digest: string; previous: string }, { at: string; digest: string }];
    const restored = await user.ok(['tag', 'restore', `${wharf.host}/team/app:prod`, '--to', latest.previous]);
    assert.match(restored.stdout, new RegExp(`${latest.digest} -> ${latest.previous}`));
    assert.equal(await digestOfTag(wharf, 'team/app', 'prod'), latest.previous);
    // Where it pointed at the time of the latest push: the second digest again.
    await user.ok(['tag', 'restore', `${wharf.host}/team/app:prod`, '--at', latest.at]);
    assert.equal(await digestOfTag(wharf, 'team/app', 'prod'), latest.digest);
    const history = JSON.parse((await user.ok(['tag', 'history', `${wharf.host}/team/app:prod`, '--json'])).stdout).history as Array<{ digest: string; previous: string; actor: string }>;
    assert.deepEqual(history.slice(0, 2).map((e) => [e.digest, e.previous, e.actor]), [
      [latest.digest, latest.previous, 'dev'],
      [latest.previous, latest.digest, 'dev'],
    ]);
    assert.ok(firstPush.at <= latest.at);
    const before = await user.run(['tag', 'restore', `${wharf.host}/team/app:prod`, '--at', '2000-01-01T00:00:00Z']);
    assert.equal(before.code, 1);
    assert.match(before.stderr, /MANIFEST_UNKNOWN/);
    // A reader may read the history but not restore.
    const readerRes = await raw(wharf.url, 'POST', '/v2/team/app/_wharf/tags/prod/restore', {
      headers: { ...reader, 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify({ digest: latest.previous })),
    });
    assert.equal(readerRes.status, 403);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/app/_wharf/tags/prod/history', { headers: reader })).status, 200);
    assert.equal((await raw(wharf.url, 'GET', '/v2/team/app/_wharf/tags/prod/history')).status, 401);
  });

  test('restore is refused with DENIED for an immutable tag that would move, and MANIFEST_UNKNOWN for a digest that is gone', async () => {
    const denied = await user.run(['tag', 'restore', `${wharf.host}/release/app:v1`, '--to', (await digestOfTag(wharf, 'release/app', 'seed'))!]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /DENIED: .*release\/\*:v\*/);
    const gone = await pushVariant(wharf, 'team/app', 'short', config, 'gone', [], dev);
    await pushVariant(wharf, 'team/app', 'short', config, 'stays', [], dev);
    const del = await raw(wharf.url, 'DELETE', `/v2/team/app/manifests/${gone.manifest.digest}`, { headers: dev });
    assert.equal(del.status, 202);
    const missing = await user.run(['tag', 'restore', `${wharf.host}/team/app:short`, '--to', gone.manifest.digest]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /MANIFEST_UNKNOWN/);
  });
});

describe('immutable.rules in config.yml', () => {
  test('a rule with a pattern outside the grammar stops wharf serve with a message naming the key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-lifecycle-bad-'));
    try {
      writeFileSync(join(dir, 'config.yml'), 'version: 0.1\nimmutable:\n  rules: ["Release/*:v*"]\n');
      await assert.rejects(startWharf({ args: [join(dir, 'config.yml')], dataDir: join(dir, 'data') }), /exited with 1[\s\S]*immutable\.rules: \\"Release\/\*:v\*\\"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tag history and restore through the built-in token issuer', () => {
  test('wharf tag history and restore ask for pull and push scopes and get them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-lifecycle-token-'));
    writeHtpasswd(join(dir, 'htpasswd'), { dev: DEV_PW });
    const wharf = await startWharf({
      dataDir: join(dir, 'data'),
      env: {
        REGISTRY_AUTH_HTPASSWD_REALM: 'lifecycle',
        REGISTRY_AUTH_HTPASSWD_PATH: join(dir, 'htpasswd'),
        REGISTRY_AUTH_TOKEN_SERVICE: 'lifecycle',
        REGISTRY_AUTH_ISSUER_ENABLED: 'true',
      },
    });
    const user = cliUser();
    try {
      const first = await pushImage(wharf.url, 'tok/app', 'prod', dev);
      await pushImage(wharf.url, 'tok/app', 'prod', dev);
      assert.equal((await raw(wharf.url, 'GET', '/v2/tok/app/_wharf/tags/prod/history')).status, 401);
      await user.ok(['login', wharf.host, '-u', 'dev', '--password-stdin'], { input: DEV_PW });
      const history = JSON.parse((await user.ok(['--json', 'tag', 'history', `${wharf.host}/tok/app:prod`])).stdout) as { history: unknown[] };
      assert.equal(history.history.length, 2);
      await user.ok(['tag', 'restore', `${wharf.host}/tok/app:prod`, '--to', first.manifest.digest]);
      assert.equal(await digestOfTag(wharf, 'tok/app', 'prod', dev), first.manifest.digest);
    } finally {
      user.dispose();
      await wharf.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
