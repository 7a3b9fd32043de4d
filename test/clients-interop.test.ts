import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import { writeTestLayout, type TestLayout } from './support/oci-layout.js';
import { background, existsSync, ok, requireTool, run, waitFor } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

let wharf: WharfProcess;
let layout: TestLayout;
let work: string;
let env: NodeJS.ProcessEnv;
let R: string;

const sha = (file: string) => `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;

before(async () => {
  for (const tool of ['skopeo', 'podman', 'buildah', 'ctr', 'containerd', 'docker']) requireTool(tool);
  work = mkdtempSync(join(tmpdir(), 'wharf-clients-'));
  layout = writeTestLayout(join(work, 'layout'));
  wharf = await startWharf({ args: ['--delete'] });
  R = `${wharf.host}/clients`;
  // Every client gets a private HOME, auth file, docker config and temp dir.
  mkdirSync(join(work, 'home'));
  mkdirSync(join(work, 'docker'));
  writeFileSync(join(work, 'docker', 'config.json'), '{"auths":{}}');
  writeFileSync(join(work, 'auth.json'), '{"auths":{}}');
  env = { ...process.env, HOME: join(work, 'home'), DOCKER_CONFIG: join(work, 'docker'), REGISTRY_AUTH_FILE: join(work, 'auth.json'), TMPDIR: work };
});
after(async () => {
  await wharf?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('skopeo', () => {
  it('copies a single-arch image from an OCI layout and back with identical digests', async () => {
    await ok('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.dir}:base`, `docker://${R}/base:1`], { env });
    const manifest = join(work, 'base.json');
    writeFileSync(manifest, await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${R}/base:1`], { env }));
    assert.equal(sha(manifest), layout.base.manifestDigest);
    const back = join(work, 'back');
    await ok('skopeo', ['copy', '--src-tls-verify=false', `docker://${R}/base:1`, `oci:${back}:base`], { env });
    const index = JSON.parse(readFileSync(join(back, 'index.json'), 'utf8'));
    assert.equal(index.manifests[0].digest, layout.base.manifestDigest);
    for (const digest of [layout.base.configDigest, ...layout.base.layerDigests]) {
      const file = join(back, 'blobs', 'sha256', digest.slice(7));
      assert.equal(sha(file), digest);
      assert.ok(readFileSync(file).equals(readFileSync(join(layout.dir, 'blobs', 'sha256', digest.slice(7)))));
    }
  });

  it('inspects the image: digest, platform, layers, history', async () => {
    const info = JSON.parse(await ok('skopeo', ['inspect', '--tls-verify=false', `docker://${R}/base:1`], { env }));
    assert.equal(info.Digest, layout.base.manifestDigest);
    assert.equal(`${info.Os}/${info.Architecture}`, 'linux/amd64');
    assert.deepEqual(info.Layers, layout.base.layerDigests);
    const config = JSON.parse(await ok('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${R}/base:1`], { env }));
    assert.equal(config.history.length, 5);
  });

  it('copies a multi-arch index with --all and back with identical digests', async () => {
    await ok('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout.dir}:multi`, `docker://${R}/multi:1`], { env });
    const raw = join(work, 'multi.json');
    writeFileSync(raw, await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${R}/multi:1`], { env }));
    assert.equal(sha(raw), layout.multi.indexDigest);
    const arm = JSON.parse(await ok('skopeo', ['inspect', '--tls-verify=false', '--override-arch', 'arm64', '--override-variant', 'v8', `docker://${R}/multi:1`], { env }));
    assert.equal(arm.Architecture, 'arm64');
    assert.equal(arm.Digest, layout.multi.indexDigest, 'skopeo reports the digest of the reference it was given');
    const back = join(work, 'backmulti');
    await ok('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${R}/multi:1`, `oci:${back}:multi`], { env });
    assert.equal(JSON.parse(readFileSync(join(back, 'index.json'), 'utf8')).manifests[0].digest, layout.multi.indexDigest);
    for (const file of readdirSync(join(back, 'blobs', 'sha256'))) assert.equal(sha(join(back, 'blobs', 'sha256', file)), `sha256:${file}`);
    assert.ok(existsSync(join(back, 'blobs', 'sha256', layout.multi.arm64.configDigest.slice(7))));
  });

  it('lists tags and deletes', async () => {
    await ok('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${R}/base:1`, `docker://${R}/base:2`], { env });
    const tags = JSON.parse(await ok('skopeo', ['list-tags', '--tls-verify=false', `docker://${R}/base`], { env }));
    assert.deepEqual(tags.Tags.sort(), ['1', '2']);
    for (const [source, all] of [['base', false], ['multi', true]] as const) {
      const target = `docker://${R}/todelete-${source}:1`;
      await ok('skopeo', ['copy', ...(all ? ['--all'] : []), '--dest-tls-verify=false', `oci:${layout.dir}:${source}`, target], { env });
      await ok('skopeo', ['delete', '--tls-verify=false', target], { env });
      const gone = await run('skopeo', ['inspect', '--tls-verify=false', target], { env });
      assert.notEqual(gone.code, 0);
      assert.match(gone.stderr, /manifest unknown/i);
      const tags = JSON.parse(await ok('skopeo', ['list-tags', '--tls-verify=false', `docker://${R}/todelete-${source}`], { env }));
      assert.deepEqual(tags.Tags, []);
    }
  });

  it('mounts blobs across repositories instead of uploading them', async () => {
    const copy = await run('skopeo', ['--debug', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${R}/base:1`, `docker://${R}/mounted:1`], { env });
    assert.equal(copy.code, 0, copy.stderr);
    // skopeo mounts every layer; it re-uploads only the small config, which it never mounts.
    assert.equal(copy.stderr.match(/mount OK/g)?.length, layout.base.layerDigests.length);
    assert.equal(copy.stderr.match(/PATCH \S+\/mounted\/blobs\/uploads/g)?.length ?? 0, 1);
  });
});

describe('podman', () => {
  const podman = () => ['--root', join(work, 'podman', 'root'), '--runroot', join(work, 'podman', 'run'), '--tmpdir', join(work, 'podman', 'tmp'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];

  it('pulls, shows the image history, and pushes', async () => {
    await ok('podman', [...podman(), 'pull', '--tls-verify=false', `${R}/base:1`], { env });
    const digest = (await ok('podman', [...podman(), 'image', 'inspect', '--format', '{{.Digest}}', `${R}/base:1`], { env })).trim();
    assert.equal(digest, layout.base.manifestDigest);
    const history = JSON.parse(await ok('podman', [...podman(), 'image', 'history', '--format', 'json', `${R}/base:1`], { env }));
    assert.equal(history.length, 5);
    assert.deepEqual(history.map((h: { comment?: string }) => h.comment ?? '').filter(Boolean), ['layer three (2 MiB)', 'layer two (whiteout)', 'layer one']);
    await ok('podman', [...podman(), 'tag', `${R}/base:1`, `${R}/from-podman:1`], { env });
    await ok('podman', [...podman(), 'push', '--tls-verify=false', `${R}/from-podman:1`], { env });
    const config = JSON.parse(await ok('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${R}/from-podman:1`], { env }));
    assert.equal(config.rootfs.diff_ids.length, 3);
  });

  it('pulls the arm64 child of a multi-arch image', async () => {
    await ok('podman', [...podman(), 'pull', '--tls-verify=false', '--arch', 'arm64', '--variant', 'v8', `${R}/multi:1`], { env });
    const id = (await ok('podman', [...podman(), 'image', 'inspect', '--format', '{{.Architecture}} {{.Id}}', `${R}/multi:1`], { env })).trim();
    assert.equal(id, `arm64 ${layout.multi.arm64.configDigest.slice(7)}`);
  });
});

describe('buildah', () => {
  const buildah = () => ['--root', join(work, 'buildah', 'root'), '--runroot', join(work, 'buildah', 'run'), '--storage-driver', 'vfs'];

  it('builds on a pulled image and pushes it; pushes a scratch image as Docker v2s2', async () => {
    await ok('buildah', [...buildah(), 'from', '--tls-verify=false', '--name', 'wharf-w1', `${R}/base:1`], { env });
    writeFileSync(join(work, 'added.txt'), 'added by buildah\n');
    await ok('buildah', [...buildah(), 'copy', 'wharf-w1', join(work, 'added.txt'), '/added.txt'], { env });
    await ok('buildah', [...buildah(), 'config', '--label', 'built.by=buildah', 'wharf-w1'], { env });
    await ok('buildah', [...buildah(), 'commit', 'wharf-w1', `${R}/built:1`], { env });
    await ok('buildah', [...buildah(), 'push', '--tls-verify=false', `${R}/built:1`], { env });
    const built = JSON.parse(await ok('skopeo', ['inspect', '--tls-verify=false', `docker://${R}/built:1`], { env }));
    assert.equal(built.Layers.length, 4);
    assert.equal(built.Labels['built.by'], 'buildah');
    await ok('buildah', [...buildah(), 'from', '--name', 'wharf-w2', 'scratch'], { env });
    await ok('buildah', [...buildah(), 'copy', 'wharf-w2', join(work, 'added.txt'), '/added.txt'], { env });
    await ok('buildah', [...buildah(), 'commit', '--format', 'docker', 'wharf-w2', `${R}/scratch:1`], { env });
    await ok('buildah', [...buildah(), 'push', '--tls-verify=false', `${R}/scratch:1`], { env });
    const manifest = JSON.parse(await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${R}/scratch:1`], { env }));
    assert.equal(manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    await run('buildah', [...buildah(), 'rm', '--all'], { env });
  });
});

describe('containerd ctr', () => {
  let containerd: ChildProcess;
  let ctrEnv: NodeJS.ProcessEnv;
  before(async () => {
    const dir = join(work, 'ctrd');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.toml'), `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${dir}/containerd.sock"\n[ttrpc]\n  address = "${dir}/containerd.sock.ttrpc"\n[debug]\n  address = ""\n[metrics]\n  address = ""\n`);
    containerd = background('containerd', ['--config', join(dir, 'config.toml')], { env });
    ctrEnv = { ...env, CONTAINERD_ADDRESS: join(dir, 'containerd.sock'), CONTAINERD_NAMESPACE: 'wharf-test' };
    await waitFor(async () => (await run('ctr', ['version'], { env: ctrEnv })).code === 0, 'containerd');
  });
  after(() => {
    containerd?.kill('SIGTERM');
  });

  it('pulls by tag (HEAD resolve) and pushes an image and an index with digests preserved', async () => {
    await ok('ctr', ['images', 'pull', '--plain-http', '--snapshotter', 'native', `${R}/base:1`], { env: ctrEnv });
    const list = await ok('ctr', ['images', 'ls'], { env: ctrEnv });
    assert.match(list, new RegExp(`${R}/base:1\\s.*${layout.base.manifestDigest}`));
    await ok('ctr', ['images', 'tag', `${R}/base:1`, `${R}/from-ctr:1`], { env: ctrEnv });
    await ok('ctr', ['images', 'push', '--plain-http', `${R}/from-ctr:1`], { env: ctrEnv });
    await ok('ctr', ['images', 'pull', '--plain-http', '--all-platforms', `${R}/multi:1`], { env: ctrEnv });
    await ok('ctr', ['images', 'tag', `${R}/multi:1`, `${R}/ctr-multi:1`], { env: ctrEnv });
    await ok('ctr', ['images', 'push', '--plain-http', `${R}/ctr-multi:1`], { env: ctrEnv });
    for (const [ref, digest] of [[`${R}/from-ctr:1`, layout.base.manifestDigest], [`${R}/ctr-multi:1`, layout.multi.indexDigest]] as const) {
      const raw = await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { env });
      assert.equal(`sha256:${createHash('sha256').update(raw).digest('hex')}`, digest, ref);
    }
    const missing = await run('ctr', ['images', 'pull', '--plain-http', `${R}/base:nope`], { env: ctrEnv });
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr + missing.stdout, /not found/);
  });
});

describe('docker CLI (no engine)', () => {
  it('manifest inspect shows an image and a multi-arch list', async () => {
    const image = JSON.parse(await ok('docker', ['manifest', 'inspect', '--insecure', `${R}/base:1`], { env }));
    assert.equal(image.config.digest, layout.base.configDigest);
    assert.equal(image.layers.length, 3);
    const list = JSON.parse(await ok('docker', ['manifest', 'inspect', '--insecure', '-v', `${R}/multi:1`], { env }));
    assert.deepEqual(list.map((m: { Descriptor: { platform: { architecture: string } } }) => m.Descriptor.platform.architecture), ['amd64', 'arm64']);
    const missing = await run('docker', ['manifest', 'inspect', '--insecure', `${R}/base:nope`], { env });
    assert.notEqual(missing.code, 0);
  });
});
