import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliUser, type CliUser } from './support/cli.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';
import { ok, requireTool, run } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

/**
 * security.signatures with real clients: skopeo and podman pulls of unsigned images refused in
 * enforce mode and served with a warning in warn mode; signed images (and the signatures
 * themselves) served; verdicts follow signatures pushed and deleted, across the server's two
 * worker processes.
 */
const PASSWORD = { COSIGN_PASSWORD: 'policy-pw' };
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

let wharf: WharfProcess;
let user: CliUser;
let work: string;
let images: TestLayout;
let env: NodeJS.ProcessEnv;
let R: string;

before(async () => {
  for (const tool of ['skopeo', 'podman']) requireTool(tool);
  work = mkdtempSync(join(tmpdir(), 'wharf-signing-policy-'));
  user = cliUser();
  await user.ok(['generate-key-pair'], { cwd: work, env: PASSWORD });
  const publicKey = readFileSync(join(work, 'cosign.pub'), 'utf8');
  const config = join(work, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'server:',
      '  workers: 2',
      'security:',
      '  signatures:',
      '    - repository: "prod/**"',
      `      keys: [${join(work, 'cosign.pub')}]`,
      '      mode: enforce',
      '    - repository: "staging/**"',
      '      mode: warn',
      '      keys:',
      '        - |',
      ...publicKey.trimEnd().split('\n').map((line) => `          ${line}`),
      '',
    ].join('\n'),
  );
  wharf = await startWharf({ args: [config, '--delete'] });
  R = wharf.host;
  images = await writeTestLayout(join(work, 'layout'));
  await user.ok(['copy', `oci:${images.dir}:small`, `${R}/prod/app:signed`]);
  await user.ok(['copy', `oci:${images.dir}:base`, `${R}/prod/app:unsigned`]);
  await user.ok(['copy', '--all-platforms', `oci:${images.dir}:multi`, `${R}/prod/multi:v1`]);
  await user.ok(['copy', `oci:${images.dir}:small`, `${R}/staging/app:v1`]);
  await user.ok(['copy', `oci:${images.dir}:small`, `${R}/open/app:v1`]);
  // Enforced repositories do not show unsigned manifests, even to their signer: sign by digest.
  await user.ok(['sign', '--key', join(work, 'cosign.key'), `${R}/prod/app@${images.small.digest}`], { env: PASSWORD });
  // The index only: its platform images are covered by its signature.
  await user.ok(['sign', '--key', join(work, 'cosign.key'), `${R}/prod/multi@${images.multi.digest}`], { env: PASSWORD });
  mkdirSync(join(work, 'home'));
  writeFileSync(join(work, 'auth.json'), '{"auths":{}}');
  env = { ...process.env, HOME: join(work, 'home'), REGISTRY_AUTH_FILE: join(work, 'auth.json'), TMPDIR: work };
});

after(async () => {
  await wharf?.dispose();
  user?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

const podman = () => ['--root', join(work, 'podman', 'root'), '--runroot', join(work, 'podman', 'run'), '--tmpdir', join(work, 'podman', 'tmp'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];

async function manifestStatus(path: string, method = 'GET'): Promise<{ status: number; body: string; warning: string | null }> {
  const res = await fetch(`${wharf.url}/v2/${path}`, { method, headers: { accept: ACCEPT } });
  return { status: res.status, body: await res.text(), warning: res.headers.get('warning') };
}

describe('enforce', () => {
  test('skopeo and podman pull a signed image', async () => {
    await ok('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${R}/prod/app:signed`, `dir:${join(work, 'signed')}`], { env });
    await ok('podman', [...podman(), 'pull', '--tls-verify=false', `${R}/prod/app:signed`], { env });
  });

  test('skopeo and podman are refused an unsigned image, with the reason', async () => {
    const copy = await run('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${R}/prod/app:unsigned`, `dir:${join(work, 'unsigned')}`], { env });
    assert.notEqual(copy.code, 0);
    assert.match(copy.stderr, /denied|not signed/i);
    const pull = await run('podman', [...podman(), 'pull', '--tls-verify=false', `${R}/prod/app:unsigned`], { env });
    assert.notEqual(pull.code, 0);
    assert.match(pull.stderr, /denied|not signed/i);
    const inspect = await user.run(['inspect', '--remote', `${R}/prod/app:unsigned`]);
    assert.equal(inspect.code, 1);
    assert.match(inspect.stderr, /denied: .*\(manifest sha256:[0-9a-f]{64} in prod\/app is not signed by a key that security\.signatures trusts for prod\/\*\* \(no signatures\)\)/);
  });

  test('GET and HEAD by tag or digest answer 403 DENIED saying why; signatures stay readable', async () => {
    const unsigned = images.base.digest;
    for (const ref of ['unsigned', unsigned]) {
      const got = await manifestStatus(`prod/app/manifests/${ref}`);
      assert.equal(got.status, 403);
      const error = JSON.parse(got.body).errors[0];
      assert.equal(error.code, 'DENIED');
      assert.match(error.message, /not signed by a key that security\.signatures trusts for prod\/\*\* \(no signatures\)/);
      assert.equal((await manifestStatus(`prod/app/manifests/${ref}`, 'HEAD')).status, 403);
    }
    const signed = images.small.digest;
    assert.equal((await manifestStatus(`prod/app/manifests/${signed.replace(':', '-')}.sig`)).status, 200);
    const sig = JSON.parse((await manifestStatus(`prod/app/manifests/${signed.replace(':', '-')}.sig`)).body);
    // By digest too (cosign reads the tag; other tools the digest).
    const sigDigest = (await fetch(`${wharf.url}/v2/prod/app/manifests/${signed.replace(':', '-')}.sig`, { method: 'HEAD', headers: { accept: ACCEPT } })).headers.get('docker-content-digest')!;
    assert.equal((await manifestStatus(`prod/app/manifests/${sigDigest}`)).status, 200);
    assert.equal(sig.layers[0].mediaType, 'application/vnd.dev.cosign.simplesigning.v1+json');
    // A tag that only looks like a signature's does not make an image readable.
    const disguised = `sha256-${'a'.repeat(64)}.sig`;
    await user.ok(['copy', `oci:${images.dir}:base`, `${R}/prod/app:${disguised}`]);
    assert.equal((await manifestStatus(`prod/app/manifests/${disguised}`)).status, 403);
  });

  test('a signed index serves its platform images: podman pulls the multi-arch image', async () => {
    await ok('podman', [...podman(), 'pull', '--tls-verify=false', '--arch', 'arm64', '--variant', 'v8', `${R}/prod/multi:v1`], { env });
    for (const child of images.multi.children!) assert.equal((await manifestStatus(`prod/multi/manifests/${child.digest}`)).status, 200);
  });

  test('signing lets the image through and deleting the signature shuts it again, in every worker', async () => {
    const digest = images.base.digest;
    const byTag = await user.run(['sign', '--key', join(work, 'cosign.key'), `${R}/prod/app:unsigned`], { env: PASSWORD });
    assert.equal(byTag.code, 1);
    assert.match(byTag.stderr, /sign by digest/);
    await user.ok(['sign', '--key', join(work, 'cosign.key'), `${R}/prod/app@${digest}`], { env: PASSWORD });
    // Enough requests that both workers answer some.
    for (let i = 0; i < 8; i++) assert.equal((await manifestStatus(`prod/app/manifests/${digest}`)).status, 200);
    await ok('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${R}/prod/app:unsigned`, `dir:${join(work, 'now-signed')}`], { env });
    const removed = await fetch(`${wharf.url}/v2/prod/app/manifests/${digest.replace(':', '-')}.sig`, { method: 'DELETE' });
    assert.equal(removed.status, 202);
    for (let i = 0; i < 8; i++) assert.equal((await manifestStatus(`prod/app/manifests/${digest}`)).status, 403);
  });

  test('a signature by another key does not count', async () => {
    await user.ok(['generate-key-pair', '--output-key-prefix', join(work, 'other')], { env: PASSWORD });
    await user.ok(['sign', '--key', join(work, 'other.key'), `${R}/prod/app@${images.base.digest}`], { env: PASSWORD });
    const got = await manifestStatus('prod/app/manifests/unsigned');
    assert.equal(got.status, 403);
    assert.match(JSON.parse(got.body).errors[0].message, /does not verify with key/);
  });

  test('repositories outside every policy are served as before', async () => {
    assert.equal((await manifestStatus('open/app/manifests/v1')).status, 200);
  });

  test('tags/list?signed=true lists the tags whose image a trusted key signed, a page at a time', async () => {
    const tags = async (path: string) => {
      const res = await fetch(`${wharf.url}/v2/${path}`);
      return { status: res.status, link: res.headers.get('link'), body: (await res.json()) as { tags?: string[] } };
    };
    assert.deepEqual((await tags('prod/app/tags/list?signed=true')).body.tags, ['signed']);
    assert.deepEqual((await tags('prod/multi/tags/list?signed=true')).body.tags, ['v1']);
    await user.ok(['copy', `oci:${images.dir}:small`, `${R}/prod/app:signed-too`]);
    const first = await tags('prod/app/tags/list?signed=true&n=1');
    assert.deepEqual(first.body.tags, ['signed']);
    assert.match(first.link ?? '', /signed=true/);
    assert.deepEqual((await tags('prod/app/tags/list?signed=true&n=1&last=signed')).body.tags, ['signed-too']);
    // Outside every policy, "signed" means a signature is stored (the registry has no keys to check it).
    assert.deepEqual((await tags('open/app/tags/list?signed=true')).body.tags, []);
    await user.ok(['sign', '--key', join(work, 'other.key'), `${R}/open/app:v1`], { env: PASSWORD });
    assert.deepEqual((await tags('open/app/tags/list?signed=true')).body.tags, ['v1']);
    assert.equal((await tags('open/app/tags/list?signed=maybe')).status, 400);
  });
});

describe('warn', () => {
  test('an unsigned image is served with a Warning header and a log line; podman pulls it', async () => {
    const got = await manifestStatus('staging/app/manifests/v1');
    assert.equal(got.status, 200);
    assert.match(got.warning ?? '', /^299 - ".*not signed by a key that security\.signatures trusts for staging\/\*\*/);
    await ok('podman', [...podman(), 'pull', '--tls-verify=false', `${R}/staging/app:v1`], { env });
    assert.match(wharf.output(), /served a manifest that no trusted key signed/);
  });

  test('once signed, no warning', async () => {
    await user.ok(['sign', '--key', join(work, 'cosign.key'), `${R}/staging/app:v1`], { env: PASSWORD });
    const got = await manifestStatus('staging/app/manifests/v1');
    assert.equal(got.status, 200);
    assert.equal(got.warning, null);
  });
});

test('a policy naming a key file that does not exist stops the server with one line', async () => {
  const config = join(work, 'bad.yml');
  writeFileSync(config, 'version: 0.1\nsecurity:\n  signatures:\n    - repository: "prod/**"\n      keys: [/nonexistent/cosign.pub]\n');
  await assert.rejects(startWharf({ args: [config] }), /security\.signatures\[0\]|cannot read the key file \/nonexistent\/cosign\.pub/);
});
