import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { cliUser, type CliUser } from './support/cli.js';
import { errorCode, raw } from './support/http.js';
import { OCI_INDEX, OCI_MANIFEST, configBlob, imageIndex, imageManifest, type Blob } from './support/oci-fixtures.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const ROOT_PW = 'root-password-retention';
const root = { Authorization: basic('root', ROOT_PW) };
const DAY = 86_400_000;

function configFile(dir: string, extra = ''): string {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.yml`);
  writeFileSync(
    path,
    `version: 0.1
storage:
  delete:
    enabled: true
immutable:
  rules: ["imm/*:stable"]
auth:
  htpasswd:
    realm: retention
    path: ${join(dir, 'htpasswd')}
  policy:
    admins: [root]
${extra}`,
  );
  return path;
}

async function pushBlob(base: string, repository: string, content: Blob): Promise<void> {
  const res = await raw(base, 'POST', `/v2/${repository}/blobs/uploads/?digest=${content.digest}`, {
    headers: { ...root, 'Content-Type': 'application/octet-stream' },
    body: content.data,
  });
  assert.equal(res.status, 201, res.body.toString());
}

/** Pushes a distinct small image manifest (one config blob shared per repository) under `reference`. */
async function pushVariant(wharf: WharfProcess, repository: string, reference: string, config: Blob, n: string, extra: Parameters<typeof imageManifest>[2] = {}) {
  const manifest = imageManifest(config, [], { ...extra, annotations: { n } });
  const res = await raw(wharf.url, 'PUT', `/v2/${repository}/manifests/${reference}`, { headers: { ...root, 'Content-Type': OCI_MANIFEST }, body: manifest.data });
  assert.equal(res.status, 201, `${repository}:${reference}: ${res.status} ${res.body}`);
  return manifest;
}

async function tagsOf(wharf: WharfProcess, repository: string): Promise<string[]> {
  const res = await raw(wharf.url, 'GET', `/v2/${repository}/tags/list`, { headers: root });
  return (JSON.parse(res.body.toString()).tags ?? []).sort();
}

async function manifestStatus(wharf: WharfProcess, repository: string, digest: string): Promise<number> {
  return (await raw(wharf.url, 'HEAD', `/v2/${repository}/manifests/${digest}`, { headers: { ...root, Accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } })).status;
}

/**
 * Makes content look old: the server records real times, and retention's rules are in days, so the
 * test moves the recorded times back in the same database the server uses.
 */
class Clock {
  private readonly db: Database.Database;
  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('busy_timeout = 5000');
  }
  tagPushed(repository: string, tag: string, agoMs: number): void {
    const changed = this.db
      .prepare('UPDATE tags SET updated_at = ? WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND name = ?')
      .run(Date.now() - agoMs, repository, tag).changes;
    assert.equal(changed, 1, `${repository}:${tag}`);
  }
  manifestPushed(repository: string, digest: string, agoMs: number): void {
    const at = Date.now() - agoMs;
    const changed = this.db
      .prepare('UPDATE manifests SET touched_at = ?, created_at = ? WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?')
      .run(at, at, repository, digest).changes;
    assert.equal(changed, 1, `${repository}@${digest}`);
  }
  pulledAt(repository: string, digest: string): number | null {
    return (
      this.db.prepare('SELECT pulled_at FROM manifests WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?').get(repository, digest) as {
        pulled_at: number | null;
      }
    ).pulled_at;
  }
  close(): void {
    this.db.close();
  }
}

interface Report {
  dryRun: boolean;
  repositories: Array<{
    repository: string;
    policy: number;
    deletedTags: Array<{ tag: string; reason: string }>;
    keptTags: Array<{ tag: string; reason: string }>;
    deletedManifests: string[];
    restorableManifests: string[];
  }>;
  totals: { tagsDeleted: number; manifestsDeleted: number };
}

describe('retention policies (wharf serve, the admin API and wharf policy retention)', () => {
  let dir: string;
  let wharf: WharfProcess;
  let clock: Clock;
  let user: CliUser;
  let adminEnv: Record<string, string>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wharf-retention-'));
    writeHtpasswd(join(dir, 'htpasswd'), { root: ROOT_PW });
    const config = configFile(
      dir,
      `retention:
  interval: 0
  policies:
    - repositories: "cfg/*"
      keeplastpushed: 1
`,
    );
    wharf = await startWharf({ args: [config] });
    clock = new Clock(join(wharf.dataDir, 'wharf.db'));
    user = cliUser();
    adminEnv = { WHARF_REGISTRY: wharf.url, WHARF_USERNAME: 'root', WHARF_PASSWORD: ROOT_PW };
  });

  after(async () => {
    clock?.close();
    await wharf?.dispose();
    user?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const run = async (body: Record<string, unknown>): Promise<Report> => {
    const res = await raw(wharf.url, 'POST', '/admin/v1/policy/retention/run', { headers: { ...root, 'Content-Type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) });
    assert.equal(res.status, 200, res.body.toString());
    return JSON.parse(res.body.toString()) as Report;
  };

  test('policies are added, listed and removed through the admin API and the CLI; bad ones get INVALID_REQUEST; config ones stay', async () => {
    const added = await user.ok(['policy', 'retention', 'add', 'tmp/*', '--keep-last-pushed', '3', '--older-than', '30d', '--keep-tags', 'latest,v*'], { env: adminEnv });
    const id = /retention policy (\d+): tmp\/\* keeplastpushed=3 keeptags=latest,v\* olderthan=30d/.exec(added.stdout)?.[1];
    assert.ok(id, added.stdout);
    const list = await user.ok(['policy', 'retention', 'list'], { env: adminEnv });
    assert.match(list.stdout, /^\d+\tconfig\tcfg\/\*\tkeeplastpushed=1\t-$/m);
    assert.match(list.stdout, new RegExp(`^${id}\\tapi\\ttmp/\\*\\t.*\\troot$`, 'm'));
    const configId = /^(\d+)\tconfig/m.exec(list.stdout)![1]!;
    const refused = await user.run(['policy', 'retention', 'remove', configId], { env: adminEnv });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /403 DENIED: .*config\.yml/);
    await user.ok(['policy', 'retention', 'remove', id], { env: adminEnv });
    assert.doesNotMatch((await user.ok(['policy', 'retention', 'list'], { env: adminEnv })).stdout, /tmp\//);
    for (const [body, pattern] of [
      [{ repositories: 'x/*', keeplastpushed: -1 }, /keeplastpushed/],
      [{ repositories: 'x/*', olderthan: 'ten days' }, /olderthan/],
      [{ repositories: 'x/*', keepall: true }, /unknown key keepall/],
      [{ repositories: 'X/*', keeplastpushed: 1 }, /repositories/],
      [{ repositories: 'x/*' }, /at least one rule/],
    ] as const) {
      const res = await raw(wharf.url, 'POST', '/admin/v1/policy/retention', { headers: { ...root, 'Content-Type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(errorCode(res), 'INVALID_REQUEST');
      assert.match(res.body.toString(), pattern);
    }
    const bad = await user.run(['policy', 'retention', 'remove', '99999'], { env: adminEnv });
    assert.match(bad.stderr, /404 NOT_FOUND/);
  });

  test('keeplastpushed: a dry run lists what would go and changes nothing; the run removes the rest, recorded in the tag history, restorable', async () => {
    const config = configBlob({ keep: true });
    await pushBlob(wharf.url, 'keep/app', config);
    const digests: Record<string, string> = {};
    for (const [i, tag] of ['t1', 't2', 't3', 't4', 't5'].entries()) {
      digests[tag] = (await pushVariant(wharf, 'keep/app', tag, config, tag)).digest;
      clock.tagPushed('keep/app', tag, (10 - i) * DAY);
    }
    await user.ok(['policy', 'retention', 'add', 'keep/*', '--keep-last-pushed', '2'], { env: adminEnv });

    const dry = await user.ok(['policy', 'retention', 'run', '--dry-run', '--repositories', 'keep/*'], { env: adminEnv });
    for (const tag of ['t1', 't2', 't3']) assert.match(dry.stdout, new RegExp(`^keep/app:${tag}\\twould delete\\t${digests[tag]}\\tnot kept by any rule$`, 'm'));
    for (const tag of ['t4', 't5']) assert.match(dry.stdout, new RegExp(`^keep/app:${tag}\\tkept\\t.*among the 2 most recently pushed$`, 'm'));
    assert.match(dry.stdout, /^dry run: 3 tags and 0 untagged manifests would delete/m);
    assert.deepEqual(await tagsOf(wharf, 'keep/app'), ['t1', 't2', 't3', 't4', 't5'], 'a dry run changes nothing');

    const applied = await user.ok(['policy', 'retention', 'run', '--repositories', 'keep/*', '--json'], { env: adminEnv });
    const report = JSON.parse(applied.stdout) as Report;
    assert.equal(report.dryRun, false);
    assert.deepEqual(report.repositories[0]!.deletedTags.map((t) => t.tag).sort(), ['t1', 't2', 't3']);
    assert.deepEqual(await tagsOf(wharf, 'keep/app'), ['t4', 't5']);
    assert.equal(await manifestStatus(wharf, 'keep/app', digests.t1!), 200, 'retention removes tags; the manifest stays for a restore');

    const history = await raw(wharf.url, 'GET', '/admin/v1/history?repository=keep/app&tag=t1', { headers: root });
    assert.equal(history.status, 200);
    const events = JSON.parse(history.body.toString()).history as Array<{ action: string; actor?: string; digest?: string }>;
    assert.deepEqual(events[0], { ...events[0], action: 'delete', actor: 'retention', digest: digests.t1 });
    const restored = await raw(wharf.url, 'POST', '/admin/v1/history/restore', {
      headers: { ...root, 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify({ repository: 'keep/app', tag: 't1', digest: digests.t1 })),
    });
    assert.equal(restored.status, 200, restored.body.toString());
    assert.deepEqual(await tagsOf(wharf, 'keep/app'), ['t1', 't4', 't5']);
  });

  test('keeptags patterns and immutable tags are never deleted; olderthan spares recent tags', async () => {
    const config = configBlob({ imm: true });
    await pushBlob(wharf.url, 'imm/app', config);
    for (const tag of ['v1', 'v2', 'stable', 'dev-old', 'dev-new']) {
      await pushVariant(wharf, 'imm/app', tag, config, tag);
      clock.tagPushed('imm/app', tag, tag === 'dev-new' ? 2 * DAY : 40 * DAY);
    }
    const res = await raw(wharf.url, 'POST', '/admin/v1/policy/retention', {
      headers: { ...root, 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify({ repositories: 'imm/*', keeptags: ['v*'], olderthan: '30d' })),
    });
    assert.equal(res.status, 201, res.body.toString());
    const report = await run({ repositories: 'imm/*' });
    const repo = report.repositories.find((r) => r.repository === 'imm/app')!;
    assert.deepEqual(repo.deletedTags.map((t) => t.tag), ['dev-old']);
    assert.match(repo.deletedTags[0]!.reason, /pushed 40d ago, older than 30d/);
    const kept = Object.fromEntries(repo.keptTags.map((t) => [t.tag, t.reason]));
    assert.match(kept.stable!, /immutable \(rule \d+: imm\/\*:stable\)/);
    assert.match(kept.v1!, /matches keeptags v\*/);
    assert.match(kept['dev-new']!, /within olderthan 30d/);
    assert.deepEqual(await tagsOf(wharf, 'imm/app'), ['dev-new', 'stable', 'v1', 'v2']);
  });

  test('pulls are recorded (GET, not HEAD), batched; keeplastpulled and notpulledwithin follow them', async () => {
    const config = configBlob({ pulls: true });
    await pushBlob(wharf.url, 'pulls/app', config);
    const digests: Record<string, string> = {};
    for (const tag of ['a', 'b', 'c', 'd']) {
      digests[tag] = (await pushVariant(wharf, 'pulls/app', tag, config, tag)).digest;
      clock.tagPushed('pulls/app', tag, 30 * DAY);
    }
    const get = await raw(wharf.url, 'GET', '/v2/pulls/app/manifests/a', { headers: { ...root, Accept: OCI_MANIFEST } });
    assert.equal(get.status, 200);
    assert.equal((await raw(wharf.url, 'GET', `/v2/pulls/app/manifests/${digests.b}`, { headers: { ...root, Accept: OCI_MANIFEST } })).status, 200);
    assert.equal((await raw(wharf.url, 'HEAD', '/v2/pulls/app/manifests/c', { headers: { ...root, Accept: OCI_MANIFEST } })).status, 200);
    // Pull times are written in batches every few seconds.
    let waited = 0;
    while ((clock.pulledAt('pulls/app', digests.a!) === null || clock.pulledAt('pulls/app', digests.b!) === null) && waited < 20_000) {
      await sleep(250);
      waited += 250;
    }
    assert.ok(clock.pulledAt('pulls/app', digests.a!)! > Date.now() - 60_000, 'a GET by tag is a pull');
    assert.ok(clock.pulledAt('pulls/app', digests.b!)! > Date.now() - 60_000, 'a GET by digest is a pull');
    assert.equal(clock.pulledAt('pulls/app', digests.c!), null, 'a HEAD is not a pull');

    await user.ok(['policy', 'retention', 'add', 'pulls/*', '--not-pulled-within', '7d'], { env: adminEnv });
    const report = await run({ repositories: 'pulls/*', dryRun: true });
    const repo = report.repositories[0]!;
    assert.deepEqual(repo.deletedTags.map((t) => t.tag).sort(), ['c', 'd']);
    assert.match(repo.deletedTags.find((t) => t.tag === 'c')!.reason, /never pulled, pushed 30d ago, not within 7d/);
    assert.match(repo.keptTags.find((t) => t.tag === 'a')!.reason, /last pulled \d+s ago, within notpulledwithin 7d/);

    // The first matching policy governs: put a keeplastpulled one for this repository first.
    const policies = JSON.parse((await raw(wharf.url, 'GET', '/admin/v1/policy/retention', { headers: root })).body.toString()).policies as Array<{ id: number; repositories: string }>;
    const id = policies.find((p) => p.repositories === 'pulls/*')!.id;
    assert.equal((await raw(wharf.url, 'DELETE', `/admin/v1/policy/retention/${id}`, { headers: root })).status, 204);
    await user.ok(['policy', 'retention', 'add', 'pulls/*', '--keep-last-pulled', '1'], { env: adminEnv });
    const second = (await run({ repositories: 'pulls/*', dryRun: true })).repositories[0]!;
    assert.equal(second.keptTags.length, 1);
    assert.ok(['a', 'b'].includes(second.keptTags[0]!.tag), 'the most recently pulled one stays');
    assert.match(second.keptTags[0]!.reason, /among the 1 most recently pulled/);
  });

  test('untaggedolderthan removes old untagged manifests, but not what a kept one needs nor what a restore may need', async () => {
    const config = configBlob({ untagged: true });
    await pushBlob(wharf.url, 'untagged/app', config);
    const old = imageManifest(config, [], { annotations: { n: 'old-untagged' } });
    assert.equal((await raw(wharf.url, 'PUT', `/v2/untagged/app/manifests/${old.digest}`, { headers: { ...root, 'Content-Type': OCI_MANIFEST }, body: old.data })).status, 201);
    const young = imageManifest(config, [], { annotations: { n: 'young-untagged' } });
    assert.equal((await raw(wharf.url, 'PUT', `/v2/untagged/app/manifests/${young.digest}`, { headers: { ...root, 'Content-Type': OCI_MANIFEST }, body: young.data })).status, 201);
    const child = imageManifest(config, [], { annotations: { n: 'child' } });
    assert.equal((await raw(wharf.url, 'PUT', `/v2/untagged/app/manifests/${child.digest}`, { headers: { ...root, 'Content-Type': OCI_MANIFEST }, body: child.data })).status, 201);
    const index = imageIndex([{ digest: child.digest, size: child.data.length, platform: { os: 'linux', architecture: 'amd64' } }]);
    assert.equal((await raw(wharf.url, 'PUT', '/v2/untagged/app/manifests/multi', { headers: { ...root, 'Content-Type': 'application/vnd.oci.image.index.v1+json' }, body: index.data })).status, 201);
    const subject = await pushVariant(wharf, 'untagged/app', 'signed', config, 'signed');
    const signature = imageManifest(config, [], { annotations: { n: 'signature' }, subject: { digest: subject.digest, size: subject.data.length }, artifactType: 'application/example.signature' });
    assert.equal((await raw(wharf.url, 'PUT', `/v2/untagged/app/manifests/${signature.digest}`, { headers: { ...root, 'Content-Type': OCI_MANIFEST }, body: signature.data })).status, 201);
    const retired = await pushVariant(wharf, 'untagged/app', 'retired', config, 'retired');
    for (const m of [old, child, signature, retired, subject]) clock.manifestPushed('untagged/app', m.digest, 20 * DAY);
    clock.manifestPushed('untagged/app', young.digest, 1 * DAY);
    clock.tagPushed('untagged/app', 'retired', 20 * DAY);
    clock.tagPushed('untagged/app', 'signed', 1 * DAY);
    clock.tagPushed('untagged/app', 'multi', 1 * DAY);

    await user.ok(['policy', 'retention', 'add', 'untagged/*', '--older-than', '10d', '--untagged-older-than', '7d'], { env: adminEnv });
    const dry = (await run({ repositories: 'untagged/*', dryRun: true })).repositories[0]!;
    assert.deepEqual(dry.deletedTags.map((t) => t.tag), ['retired']);
    assert.deepEqual(dry.deletedManifests, [old.digest], 'only the old untagged manifest nothing needs');
    assert.deepEqual(dry.restorableManifests, [retired.digest], 'the manifest whose tag retention removes stays restorable');
    const report = (await run({ repositories: 'untagged/*' })).repositories[0]!;
    assert.deepEqual(report.deletedManifests, [old.digest]);
    assert.equal(await manifestStatus(wharf, 'untagged/app', old.digest), 404);
    for (const m of [young, child, index, subject, signature, retired]) assert.equal(await manifestStatus(wharf, 'untagged/app', m.digest), 200, m.json.annotations ? JSON.stringify(m.json.annotations) : 'index');
    // Restoring to where the tag pointed now answers that it points nowhere: retention removed it.
    const res = await raw(wharf.url, 'POST', '/admin/v1/history/restore', {
      headers: { ...root, 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify({ repository: 'untagged/app', tag: 'retired', at: new Date().toISOString() })),
    });
    assert.equal(res.status, 404, 'after the run the tag points at nothing');
    assert.equal(errorCode(res), 'MANIFEST_UNKNOWN');
    const back = await raw(wharf.url, 'POST', '/admin/v1/history/restore', {
      headers: { ...root, 'Content-Type': 'application/json' },
      body: Buffer.from(JSON.stringify({ repository: 'untagged/app', tag: 'retired', digest: retired.digest })),
    });
    assert.equal(back.status, 200, back.body.toString());
    assert.ok((await tagsOf(wharf, 'untagged/app')).includes('retired'));
  });

  test('the admin API refuses malformed history and run requests', async () => {
    for (const [method, path, body] of [
      ['GET', '/admin/v1/history?repository=keep/app', undefined],
      ['POST', '/admin/v1/history/restore', { repository: 'keep/app', tag: 't4' }],
      ['POST', '/admin/v1/history/restore', { repository: 'keep/app', tag: 't4', at: 'yesterday' }],
      ['POST', '/admin/v1/policy/retention/run', { dryRun: 'yes' }],
      ['POST', '/admin/v1/policy/retention/run', { repositories: 'NOT VALID' }],
    ] as const) {
      const res = await raw(wharf.url, method, path, {
        headers: { ...root, 'Content-Type': 'application/json' },
        ...(body ? { body: Buffer.from(JSON.stringify(body)) } : {}),
      });
      assert.equal(res.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${res.body}`);
      assert.equal(errorCode(res), 'INVALID_REQUEST');
    }
  });
});

describe('retention on a schedule', () => {
  test('a policy added through the API is applied by the next scheduled run, without a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-retention-schedule-'));
    writeHtpasswd(join(dir, 'htpasswd'), { root: ROOT_PW });
    const wharf = await startWharf({ args: [configFile(dir, 'retention:\n  interval: 1s\n')] });
    try {
      const config = configBlob({ schedule: true });
      await pushBlob(wharf.url, 'sched/app', config);
      for (const tag of ['one', 'two', 'three']) {
        await pushVariant(wharf, 'sched/app', tag, config, tag);
        await sleep(20); // distinct push times: 'three' is the most recent
      }
      await sleep(2500);
      assert.equal((await tagsOf(wharf, 'sched/app')).length, 3, 'no policy, nothing goes');
      const res = await raw(wharf.url, 'POST', '/admin/v1/policy/retention', {
        headers: { ...root, 'Content-Type': 'application/json' },
        body: Buffer.from(JSON.stringify({ repositories: 'sched/*', keeplastpushed: 1 })),
      });
      assert.equal(res.status, 201);
      let tags = await tagsOf(wharf, 'sched/app');
      for (let i = 0; i < 60 && tags.length > 1; i += 1) {
        await sleep(250);
        tags = await tagsOf(wharf, 'sched/app');
      }
      assert.deepEqual(tags, ['three']);
      // The run logs once it has finished.
      for (let i = 0; i < 40 && !/retention applied/.test(wharf.output()); i += 1) await sleep(250);
      assert.match(wharf.output(), /retention applied/);
    } finally {
      await wharf.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a malformed retention.policies entry stops the server with a message naming it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-retention-bad-'));
    writeHtpasswd(join(dir, 'htpasswd'), { root: ROOT_PW });
    try {
      await assert.rejects(
        startWharf({ args: [configFile(dir, 'retention:\n  policies:\n    - repositories: "a/*"\n      keeplast: 3\n')] }),
        (error: Error) => /retention\.policies\[0\]: unknown key keeplast/.test(error.message),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
