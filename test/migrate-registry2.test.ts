/**
 * Importing registry:2 storage: content pushed with skopeo through the Debian docker-registry
 * (CNCF Distribution), imported by `wharf migrate` or automatically at the first start, then
 * pulled back from Wharf with skopeo, digest for digest. And an import killed mid-way (SIGKILL)
 * that a second run finishes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { raw } from './support/http.js';
import { blob, configBlob, imageManifest, OCI_MANIFEST, type Blob } from './support/oci-fixtures.js';
import { writeTestLayout, type TestLayout } from './support/oci-layout.js';
import { putManifest, startUpload, withQuery } from './support/push.js';
import { startReferenceRegistry, tool, type ReferenceRegistry } from './support/reference-registry.js';
import { ok, requireTool, run, waitFor } from './support/tools.js';
import { startWharf, WHARF_BIN } from './support/wharf-process.js';

let reference: ReferenceRegistry;
let layout: TestLayout;
let work: string;
let env: NodeJS.ProcessEnv;
/** A copy of docker-registry's storage root after the pushes. */
let distributionRoot: string;
/** The referrer pushed beside library/base:1. */
let referrerDigest: string;
/** The one layer only zz/last has: the last blob an import reaches. */
let lastLayer: string;

const sha = (data: Buffer | string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const layerFile = (root: string, digest: string) => join(root, 'docker', 'registry', 'v2', 'blobs', 'sha256', digest.slice(7, 9), digest.slice(7), 'data');

async function rawManifest(host: string, ref: string): Promise<string> {
  return ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/${ref}`], { env });
}

/** Pulls every image back from `host` and checks it is what was pushed to docker-registry. */
async function assertServesEverything(host: string): Promise<void> {
  assert.equal(sha(await rawManifest(host, 'library/base:1')), layout.base.manifestDigest);
  assert.equal(sha(await rawManifest(host, 'library/base:latest')), layout.base.manifestDigest);
  assert.equal(sha(await rawManifest(host, 'team/app:v1')), layout.base.manifestDigest);
  assert.equal(sha(await rawManifest(host, 'multi:1')), layout.multi.indexDigest);
  const back = mkdtempSync(join(work, 'pulled-'));
  await ok('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${host}/multi:1`, `oci:${back}:multi`], { env });
  await ok('skopeo', ['copy', '--src-tls-verify=false', `docker://${host}/library/base:1`, `oci:${back}:base`], { env });
  const index = JSON.parse(readFileSync(join(back, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [layout.base.manifestDigest, layout.multi.indexDigest].sort());
  const pulled = readdirSync(join(back, 'blobs', 'sha256'));
  for (const file of pulled) assert.equal(sha(readFileSync(join(back, 'blobs', 'sha256', file))), `sha256:${file}`);
  for (const digest of [...layout.base.layerDigests, layout.multi.arm64.configDigest, ...layout.multi.arm64.layerDigests]) {
    assert.ok(pulled.includes(digest.slice(7)), `${digest} pulled back`);
  }
  const url = `http://${host}`;
  const catalog = await raw(url, 'GET', '/v2/_catalog');
  assert.deepEqual(catalog.json().repositories, ['library/base', 'multi', 'team/app', 'zz/last']);
  const tags = await raw(url, 'GET', '/v2/library/base/tags/list');
  assert.deepEqual(tags.json().tags, ['1', 'latest']);
  const referrers = await raw(url, 'GET', `/v2/library/base/referrers/${layout.base.manifestDigest}`);
  assert.equal(referrers.status, 200);
  assert.deepEqual(
    referrers.json<{ manifests: Array<{ digest: string }> }>().manifests.map((m) => m.digest),
    [referrerDigest],
  );
  const last = await raw(url, 'GET', `/v2/zz/last/blobs/${lastLayer}`);
  assert.equal(last.status, 200);
  assert.equal(sha(last.body), lastLayer);
}

/** POST then PUT with the digest: docker-registry 2.8 takes no single-request (monolithic) upload. */
async function pushBlob(base: string, repository: string, content: Blob): Promise<void> {
  const location = await startUpload(base, repository);
  const res = await raw(base, 'PUT', withQuery(location, `digest=${content.digest}`), { headers: { 'Content-Type': 'application/octet-stream' }, body: content.data });
  assert.equal(res.status, 201, `blob push to ${repository}: ${res.status} ${res.body.toString()}`);
}

function migrate(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [WHARF_BIN, 'migrate', ...args]);
}

before(async () => {
  requireTool('skopeo');
  work = mkdtempSync(join(tmpdir(), 'wharf-migrate-'));
  mkdirSync(join(work, 'home'));
  writeFileSync(join(work, 'auth.json'), '{"auths":{}}');
  env = { ...process.env, HOME: join(work, 'home'), REGISTRY_AUTH_FILE: join(work, 'auth.json'), TMPDIR: work };
  layout = writeTestLayout(join(work, 'layout'));
  reference = await startReferenceRegistry({ mode: 'plain' });
  const R = reference.host;
  await ok('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.dir}:base`, `docker://${R}/library/base:1`], { env });
  await ok('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${R}/library/base:1`, `docker://${R}/library/base:latest`], { env });
  await ok('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.dir}:base`, `docker://${R}/team/app:v1`], { env });
  await ok('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout.dir}:multi`, `docker://${R}/multi:1`], { env });
  // An untagged artifact whose subject is library/base:1 (an SBOM, say).
  const sbom = blob('{"sbom":"of base"}');
  const emptyConfig = blob('{}');
  await pushBlob(reference.url, 'library/base', sbom);
  await pushBlob(reference.url, 'library/base', emptyConfig);
  const baseSize = Buffer.byteLength(await rawManifest(R, 'library/base:1'));
  const referrer = imageManifest(emptyConfig, [sbom], {
    artifactType: 'application/vnd.example.sbom',
    configMediaType: 'application/vnd.oci.empty.v1+json',
    subject: { digest: layout.base.manifestDigest, size: baseSize },
  });
  const put = await putManifest(reference.url, 'library/base', referrer.digest, referrer, OCI_MANIFEST);
  assert.equal(put.status, 201, put.body.toString());
  referrerDigest = referrer.digest;
  const layer = blob(`the last layer ${'x'.repeat(4096)}`);
  const config = configBlob({ created: 'zz/last' });
  for (const b of [layer, config]) await pushBlob(reference.url, 'zz/last', b);
  const last = await putManifest(reference.url, 'zz/last', '1', imageManifest(config, [layer]), OCI_MANIFEST);
  assert.equal(last.status, 201, last.body.toString());
  lastLayer = layer.digest;
  // docker-registry is idle from here; its storage root is copied as an operator would stop and move it.
  distributionRoot = join(work, 'registry2');
  cpSync(join(reference.dir, 'data'), distributionRoot, { recursive: true });
});

after(async () => {
  await reference?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('wharf migrate', () => {
  it('imports repositories, tags, manifests, referrers and layer links, hard-linking every blob once', async () => {
    const data = join(work, 'migrated');
    const result = await migrate([distributionRoot, '--data', data]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /importing 4 repositories/);
    assert.match(result.stdout, /done: 4 repositories \(0 imported before\)/);
    assert.match(result.stdout, / 0 copied, /);
    assert.match(result.stdout, / 0 problems/);
    // Every Wharf blob is Distribution's file itself (one inode, two names): nothing copied.
    let blobs = 0;
    for (const prefix of readdirSync(join(data, 'blobs', 'sha256'))) {
      for (const hex of readdirSync(join(data, 'blobs', 'sha256', prefix))) {
        const ours = statSync(join(data, 'blobs', 'sha256', prefix, hex));
        const theirs = statSync(layerFile(distributionRoot, `sha256:${hex}`));
        assert.equal(ours.ino, theirs.ino, `sha256:${hex} is hard-linked`);
        blobs += 1;
      }
    }
    // base's 3 layers and config (shared by library/base and team/app, stored once), multi's
    // 3 distinct layers and 2 configs, the referrer's 2 blobs, zz/last's layer and config.
    assert.equal(blobs, 4 + 5 + 2 + 2);

    const again = await migrate([distributionRoot, '--data', data]);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /done: 4 repositories \(4 imported before\)/);

    const wharf = await startWharf({ dataDir: data });
    try {
      await assertServesEverything(wharf.host);
    } finally {
      await wharf.stop();
    }
  });

  it('says what it needs when the directory holds no registry:2 storage', async () => {
    const result = await migrate([join(work, 'layout'), '--data', join(work, 'nothing')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /holds no registry:2 storage/);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  });
});

describe('wharf serve over a registry:2 storage root', () => {
  it('imports it at the first start, logs it, serves it, and does not import again', async () => {
    const root = join(work, 'in-place');
    cpSync(distributionRoot, root, { recursive: true });
    const first = await startWharf({ dataDir: root });
    try {
      assert.match(first.output(), /importing registry:2 storage/);
      assert.match(first.output(), /"msg":"registry:2 storage imported"/);
      await assertServesEverything(first.host);
    } finally {
      await first.stop();
    }
    const second = await startWharf({ dataDir: root });
    try {
      assert.doesNotMatch(second.output(), /importing registry:2 storage/);
      assert.equal(sha(await rawManifest(second.host, 'multi:1')), layout.multi.indexDigest);
    } finally {
      await second.stop();
    }
  });
});

describe('an interrupted import', () => {
  it('killed with SIGKILL mid-way, finishes on the next run with everything verified', async () => {
    const root = join(work, 'interrupted-source');
    cpSync(distributionRoot, root, { recursive: true });
    // zz/last's layer becomes a FIFO: reading it blocks, so the import is certainly mid-way,
    // after the other repositories, when it is killed.
    const fifo = layerFile(root, lastLayer);
    rmSync(fifo);
    tool('mkfifo', [fifo]);
    const data = join(work, 'interrupted');
    const child = spawn(process.execPath, [WHARF_BIN, 'migrate', root, '--data', data], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await waitFor(() => /imported team\/app/.test(output), 'the import to reach zz/last', 60_000);
    child.kill('SIGKILL');
    await exited;
    assert.doesNotMatch(output, /done:/);

    cpSync(layerFile(distributionRoot, lastLayer), join(work, 'layer'));
    rmSync(fifo);
    cpSync(join(work, 'layer'), fifo);
    const result = await migrate([root, '--data', data]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /resuming: 3 already imported/);
    assert.match(result.stdout, /done: 4 repositories \(3 imported before\)/);
    assert.match(result.stdout, /imported zz\/last: 2 blobs, 1 manifests, 1 tags/);

    const wharf = await startWharf({ dataDir: data });
    try {
      await assertServesEverything(wharf.host);
    } finally {
      await wharf.stop();
    }
  });

  it('refuses a blob whose bytes do not match its digest, and imports the rest', async () => {
    const root = join(work, 'corrupt-source');
    cpSync(distributionRoot, root, { recursive: true });
    const bad = layerFile(root, lastLayer);
    rmSync(bad);
    writeFileSync(bad, 'not the bytes the digest names');
    // And a tag whose manifest Distribution no longer has.
    const ghost = join(root, 'docker', 'registry', 'v2', 'repositories', 'multi', '_manifests', 'tags', 'ghost', 'current');
    mkdirSync(ghost, { recursive: true });
    writeFileSync(join(ghost, 'link'), `sha256:${'0'.repeat(64)}`);
    const result = await migrate([root, '--data', join(work, 'corrupt')]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, new RegExp(`cannot import zz/last ${lastLayer}: .*digest`, 'i'));
    assert.match(result.stdout, /cannot import multi ghost: the tag points at sha256:0{64}, which the repository does not have/);
    assert.match(result.stdout, /done: 4 repositories/);
    assert.match(result.stdout, /[1-9]\d* problems/);
  });
});
