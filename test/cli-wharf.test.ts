import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliUser, type CliUser } from './support/cli.js';
import { startReferenceRegistry, tool } from './support/reference-registry.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

function skopeo(args: string[]): string {
  return tool('skopeo', ['--insecure-policy', ...args]);
}

function ociIndexDigest(dir: string, refName: string): string {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === refName);
  assert.ok(entry, `no ${refName} in ${dir}`);
  return entry.digest;
}

describe('wharf client against wharf serve (plain HTTP)', () => {
  let server: WharfProcess;
  let images: TestLayout;
  let user: CliUser;
  let work: string;
  let R: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'wharf-cli-self-'));
    images = await writeTestLayout(join(work, 'layout'));
    server = await startWharf({ args: ['--delete'] });
    R = server.host;
    user = cliUser();
  });

  after(async () => {
    user?.dispose();
    await server?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  test('copy a layout in, pull it back: digests identical, and skopeo agrees', async () => {
    await user.ok(['copy', `oci:${images.dir}:base`, `${R}/app/base:v1`]);
    await user.ok(['copy', '--all-platforms', `oci:${images.dir}:multi`, `${R}/app/multi:v1`]);
    const pull = await user.ok(['pull', `${R}/app/base:v1`]);
    assert.match(pull.stdout, new RegExp(`Digest: ${images.base.digest}`));
    const seen = JSON.parse(skopeo(['inspect', '--tls-verify=false', `docker://${R}/app/base:v1`])) as { Digest: string };
    assert.equal(seen.Digest, images.base.digest);
    skopeo(['copy', '--dest-tls-verify=false', `oci:${images.dir}:small`, `docker://${R}/by-skopeo/small:v1`]);
    const dir = join(work, 'from-wharf-serve');
    await user.ok(['pull', `${R}/by-skopeo/small:v1`, `oci:${dir}:small`]);
    assert.equal(ociIndexDigest(dir, 'small'), images.small.digest);
  });

  test('history prints 5 rows; --platform picks the arm64 child', async () => {
    const history = await user.ok(['history', '--format', '{{.CreatedBy}}', `${R}/app/base:v1`]);
    assert.equal(history.stdout.trim().split('\n').length, 5);
    const arm = images.multi.children!.find((c) => c.platform === 'linux/arm64/v8')!;
    const inspect = await user.ok(['inspect', '--platform', 'linux/arm64/v8', '--format', '{{.Descriptor.digest}}', `${R}/app/multi:v1`]);
    assert.equal(inspect.stdout.trim(), arm.digest);
  });

  test('push mounts blobs from another repository; remote tag moves no blobs', async () => {
    await user.ok(['tag', `${R}/app/base:v1`, `${R}/team/base:v2`]);
    const push = await user.ok(['push', `${R}/team/base:v2`]);
    assert.equal((push.stderr.match(/Mounted from app\/base/g) ?? []).length, 3, push.stderr);
    const retag = await user.ok(['tag', '--remote', `${R}/team/base:v2`, `${R}/team/base:stable`]);
    assert.match(retag.stdout, /Tagged .*team\/base:stable@sha256:/);
    const tags = (await user.ok(['tags', `${R}/team/base`])).stdout.trim().split('\n');
    assert.deepEqual(tags.sort(), ['stable', 'v2']);
  });

  test('copy streams registry to registry: Distribution to Wharf, every platform, digests kept', async () => {
    const distribution = await startReferenceRegistry({ mode: 'plain' });
    try {
      await user.ok(['copy', '--all-platforms', `oci:${images.dir}:multi`, `${distribution.host}/upstream/multi:v1`]);
      const copy = await user.ok(['copy', '--all-platforms', `${distribution.host}/upstream/multi:v1`, `${R}/mirror/multi:v1`]);
      assert.match(copy.stdout, new RegExp(`Digest: ${images.multi.digest}`));
      assert.equal((await user.ok(['digest', `${R}/mirror/multi:v1`])).stdout.trim(), images.multi.digest);
      for (const child of images.multi.children!) {
        const inspect = await user.ok(['inspect', '--remote', '--format', '{{.Id}}', `${R}/mirror/multi@${child.digest}`]);
        assert.equal(inspect.stdout.trim(), child.configDigest);
      }
      assert.equal(existsSync(join(user.wharfHome, 'images', 'blobs', 'sha256', images.multi.digest.slice(7))), false, 'nothing was stored locally on the way');
    } finally {
      await distribution.stop();
    }
  });

  test('catalog, search (catalog fallback until Wharf has search), manifest create, delete', async () => {
    const catalog = (await user.ok(['catalog', R])).stdout.trim().split('\n');
    assert.ok(catalog.includes('app/base') && catalog.includes('team/base'), catalog.join(','));
    const search = await user.ok(['search', '--format', 'json', `${R}/base`]);
    const names = (JSON.parse(search.stdout) as Array<{ name: string }>).map((r) => r.name).sort();
    assert.deepEqual(names, [`${R}/app/base`, `${R}/team/base`]);
    const [amd, arm] = images.multi.children!;
    const created = await user.ok(['imagetools', 'create', '-t', `${R}/combined/app:v1`, `${R}/app/multi@${amd!.digest}`, `${R}/app/multi@${arm!.digest}`]);
    const index = JSON.parse((await user.ok(['manifest', 'inspect', `${R}/combined/app:v1`])).stdout) as { manifests: Array<{ digest: string }> };
    assert.deepEqual(index.manifests.map((m) => m.digest), [amd!.digest, arm!.digest]);
    assert.equal((await user.ok(['digest', `${R}/combined/app:v1`])).stdout.trim(), created.stdout.trim());
    await user.ok(['delete', `${R}/combined/app:v1`]);
    const gone = await user.run(['manifest', 'inspect', `${R}/combined/app:v1`]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /manifest unknown/);
  });
});
