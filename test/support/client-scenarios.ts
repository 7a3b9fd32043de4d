import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { cliUser, type CliUser } from './cli.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { sha256 } from './oci-fixtures.js';
import { tool } from './reference-registry.js';
import type { RegistryMode, RegistryUnderTest, StartRegistry } from './registries-under-test.js';
import { writeTestLayout, type TestLayout } from './test-images.js';
import { ok as runOk, run } from './tools.js';

/**
 * The wharf client's scenarios, written once and run against every registry: `wharf serve` and
 * the reference registry (Debian's docker-registry, CNCF Distribution). Each group starts the
 * registry in the mode it needs; what only one registry can show stays in that registry's file.
 *
 *   plain         the CLI end to end over plain HTTP on loopback, with skopeo and docker reading
 *                 what wharf wrote and the other way round
 *   faults        a fault-injecting proxy in front: cut, stalled and failing responses
 *   htpasswd      Basic auth: login, the credential store and helpers, logout
 *   tls           a self-signed CA: refused, --ca-cert, certs.d, --insecure
 *   token         Docker's token flow (Wharf's own issuer; a test token server for Distribution)
 *   tls-htpasswd  real clients (skopeo, podman, ctr) over HTTPS with a password
 */
export interface ScenarioOptions {
  modes: Array<RegistryMode | 'faults'>;
  /** Another registry to copy from (registry to registry); the plain group needs it. */
  peer?: { name: string; start: StartRegistry };
}

/** Escapes a host for a RegExp. */
const rx = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function skopeo(args: string[]): string {
  return tool('skopeo', ['--insecure-policy', ...args]);
}

function ociIndexDigest(dir: string, refName: string): string {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === refName);
  assert.ok(entry, `no ${refName} in ${dir}/index.json`);
  return entry.digest;
}

export function clientScenarios(name: string, start: StartRegistry, options: ScenarioOptions): void {
  let images: TestLayout;
  let work: string;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'wharf-scenarios-'));
    images = await writeTestLayout(join(work, 'layout'));
  });
  after(() => rmSync(work, { recursive: true, force: true }));
  const context = { images: () => images, work: () => work };
  for (const mode of options.modes) {
    if (mode === 'plain') plainScenarios(name, start, context, options.peer);
    if (mode === 'faults') faultScenarios(name, start, context);
    if (mode === 'htpasswd') htpasswdScenarios(name, start, context);
    if (mode === 'tls') tlsScenarios(name, start, context);
    if (mode === 'token') tokenScenarios(name, start, context);
    if (mode === 'tls-htpasswd') realClientScenarios(name, start, context);
  }
}

interface Shared {
  images(): TestLayout;
  work(): string;
}

function plainScenarios(name: string, start: StartRegistry, shared: Shared, peer: ScenarioOptions['peer']): void {
  describe(`wharf client against ${name} (plain HTTP)`, () => {
    let registry: RegistryUnderTest;
    let images: TestLayout;
    let user: CliUser;
    let work: string;
    let R: string;

    before(async () => {
      images = shared.images();
      work = shared.work();
      registry = await start('plain');
      R = registry.host;
      user = cliUser();
      // Seed the registry the way a CI job would: wharf copy from an OCI layout.
      await user.ok(['copy', `oci:${images.dir}:base`, `${R}/seed/base:v1`]);
      await user.ok(['copy', '--all-platforms', `oci:${images.dir}:multi`, `${R}/seed/multi:v1`]);
      await user.ok(['copy', `oci:${images.dir}:small`, `${R}/seed/small:v1`]);
    });

    after(async () => {
      user?.dispose();
      await registry?.stop();
    });

    test('copy from a layout keeps every digest: skopeo sees the same manifests', () => {
      const base = JSON.parse(skopeo(['inspect', '--tls-verify=false', `docker://${R}/seed/base:v1`])) as { Digest: string };
      assert.equal(base.Digest, images.base.digest);
      const multiRaw = skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${R}/seed/multi:v1`]);
      assert.equal(JSON.parse(multiRaw).manifests.length, 2);
      const rawFile = join(work, `${name}-multi-raw.json`);
      writeFileSync(rawFile, multiRaw);
      assert.equal(tool('skopeo', ['manifest-digest', rawFile]).trim(), images.multi.digest);
    });

    test('pull stores the image locally; images lists it; history prints its 5 rows', async () => {
      const pull = await user.ok(['pull', `${R}/seed/base:v1`]);
      assert.match(pull.stdout, /v1: Pulling from 127\.0\.0\.1:\d+\/seed\/base/);
      assert.match(pull.stdout, new RegExp(`Digest: ${images.base.digest}`));
      assert.match(pull.stdout, /Status: Downloaded newer image/);
      assert.match(pull.stderr, /: Pull complete/);
      const again = await user.ok(['pull', `${R}/seed/base:v1`]);
      assert.match(again.stdout, /Status: Image is up to date/);

      const list = await user.ok(['images']);
      assert.match(list.stdout, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/m);
      assert.match(list.stdout, new RegExp(`${rx(R)}/seed/base\\s+v1\\s+${images.base.configDigest!.slice(7, 19)}`));

      const history = await user.ok(['history', `${R}/seed/base:v1`]);
      const lines = history.stdout.trim().split('\n');
      assert.match(lines[0]!, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
      assert.equal(lines.length, 1 + 5, history.stdout);
      assert.match(lines[1]!, new RegExp(`^${images.base.configDigest!.slice(7, 19)}\\s.*CMD \\["/bin/sh"\\]\\s+0B`));
      assert.match(lines[5]!, /^<missing>.*ADD rootfs\.tar.*base layer$/);
      assert.match(history.stdout, /RUN \/bin\/sh -c echo two > \/usr\/share\/test\/b\.…/, 'CREATED BY is cut at 45 characters');
      const full = await user.ok(['history', '--no-trunc', '--format', '{{.CreatedBy}}|{{.SizeBytes}}', `${R}/seed/base:v1`]);
      const rows = full.stdout.trim().split('\n');
      assert.equal(rows.length, 5);
      // A local image's layer sizes are counted unpacked, as docker counts them.
      const unpacked = gunzipSync(readFileSync(join(images.dir, 'blobs', 'sha256', images.base.layers![2]!.digest.slice(7)))).length;
      assert.equal(rows[1], `COPY random.bin /data/ # buildkit|${unpacked}`);
    });

    test('history works on a remote image without pulling its layers', async () => {
      const other = cliUser();
      try {
        const history = await other.ok(['history', '--format', 'json', `${R}/seed/base:v1`]);
        assert.equal((JSON.parse(history.stdout) as unknown[]).length, 5);
        const short = await other.ok(['history', '--format', '{{.CreatedBy}}', `${R}/seed/base:v1`]);
        assert.equal(short.stdout.trim().split('\n').length, 5);
        assert.equal(existsSync(join(other.wharfHome, 'images', 'blobs', 'sha256', images.base.layers![2]!.digest.slice(7))), false);
      } finally {
        other.dispose();
      }
    });

    test('--platform picks the right child of a multi-arch index', async () => {
      const arm = images.multi.children!.find((c) => c.platform === 'linux/arm64/v8')!;
      const amd = images.multi.children!.find((c) => c.platform === 'linux/amd64')!;
      const other = cliUser();
      try {
        const remoteArm = await other.ok(['inspect', '--platform', 'linux/arm64/v8', '--format', '{{.Descriptor.digest}}', `${R}/seed/multi:v1`]);
        assert.equal(remoteArm.stdout.trim(), arm.digest);
      } finally {
        other.dispose();
      }
      await user.ok(['pull', '--platform', 'linux/arm64', `${R}/seed/multi:v1`]);
      const inspect = await user.ok(['inspect', '--format', '{{.Id}} {{.Os}}/{{.Architecture}}/{{.Variant}} {{.Descriptor.digest}}', `${R}/seed/multi:v1`]);
      assert.equal(inspect.stdout.trim(), `${arm.configDigest} linux/arm64/v8 ${arm.digest}`);
      const remote = await user.ok(['inspect', '--remote', '--platform', 'linux/amd64', '--format', '{{.Descriptor.digest}} {{index .RepoDigests 0}}', `${R}/seed/multi:v1`]);
      assert.equal(remote.stdout.trim(), `${amd.digest} ${R}/seed/multi@${images.multi.digest}`);
      const missing = await user.run(['pull', '--platform', 'linux/s390x', `${R}/seed/multi:v1`]);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /no image for platform linux\/s390x.*linux\/amd64, linux\/arm64\/v8/);
    });

    test('pull --all-platforms into an OCI layout keeps the index digest', async () => {
      const dir = join(work, `${name}-pulled-multi`);
      await user.ok(['pull', '--all-platforms', `${R}/seed/multi:v1`, `oci:${dir}:multi`]);
      assert.equal(ociIndexDigest(dir, 'multi'), images.multi.digest);
      for (const child of images.multi.children!) assert.ok(existsSync(join(dir, 'blobs', 'sha256', child.digest.slice(7))));
      // skopeo reads what wharf wrote.
      const seen = JSON.parse(skopeo(['inspect', '--raw', `oci:${dir}:multi`])) as { manifests: unknown[] };
      assert.equal(seen.manifests.length, 2);
    });

    test('tag and push: existing blobs are skipped, blobs of another repository are mounted', async () => {
      await user.ok(['tag', `${R}/seed/base:v1`, `${R}/team/app:1.0`]);
      const push = await user.ok(['push', `${R}/team/app:1.0`]);
      assert.match(push.stdout, new RegExp(`The push refers to repository \\[${rx(R)}/team/app\\]`));
      assert.match(push.stdout, new RegExp(`1\\.0: digest: ${images.base.digest} size: ${images.base.size}`));
      const mounted = push.stderr.match(/Mounted from seed\/base/g) ?? [];
      assert.equal(mounted.length, 3, push.stderr);
      await user.ok(['tag', `${R}/team/app:1.0`, `${R}/team/app:1.1`]);
      const again = await user.ok(['push', `${R}/team/app:1.1`]);
      assert.equal((again.stderr.match(/Layer already exists/g) ?? []).length, 3, again.stderr);
      const digest = await user.ok(['digest', `${R}/team/app:1.1`]);
      assert.equal(digest.stdout.trim(), images.base.digest);
    });

    test('push --all-tags pushes every local tag of the repository', async () => {
      await user.ok(['pull', `${R}/seed/small:v1`]);
      await user.ok(['tag', `${R}/seed/small:v1`, `${R}/many/small:a`]);
      await user.ok(['tag', `${R}/seed/small:v1`, `${R}/many/small:b`]);
      const push = await user.ok(['push', '--all-tags', `${R}/many/small`]);
      assert.match(push.stdout, /a: digest: sha256:/);
      assert.match(push.stdout, /b: digest: sha256:/);
      const tags = await user.ok(['tags', `${R}/many/small`]);
      assert.deepEqual(tags.stdout.trim().split('\n').sort(), ['a', 'b']);
      const bad = await user.run(['push', '--all-tags', `${R}/many/small:a`]);
      assert.notEqual(bad.code, 0);
    });

    test('tag with two remote references on one registry retags without moving blobs; tag --remote within a repository', async () => {
      const other = cliUser();
      try {
        const result = await other.ok(['tag', `${R}/seed/base:v1`, `${R}/retagged/base:prod`]);
        assert.match(result.stdout, new RegExp(`Tagged ${rx(R)}/retagged/base:prod@${images.base.digest}`));
        assert.equal((await other.ok(['digest', `${R}/retagged/base:prod`])).stdout.trim(), images.base.digest);
        // Nothing was stored locally: the image never came to this machine.
        assert.equal((await other.ok(['images', '--format', 'json'])).stdout.trim(), '[]');
        const blobGets = registry.requests().filter((r) => r.method === 'GET' && r.path.startsWith('/v2/retagged/base/blobs/'));
        assert.equal(blobGets.length, 0);
        const retag = await other.ok(['tag', '--remote', `${R}/retagged/base:prod`, `${R}/retagged/base:stable`]);
        assert.match(retag.stdout, /Tagged .*retagged\/base:stable@sha256:/);
        const tags = (await other.ok(['tags', `${R}/retagged/base`])).stdout.trim().split('\n');
        assert.deepEqual(tags.sort(), ['prod', 'stable']);
      } finally {
        other.dispose();
      }
    });

    test('what skopeo pushes, wharf pulls with identical digests, and the other way round', async () => {
      skopeo(['copy', '--dest-tls-verify=false', `oci:${images.dir}:small`, `docker://${R}/from-skopeo/small:v1`]);
      const dir = join(work, `${name}-wharf-from-skopeo`);
      await user.ok(['pull', `${R}/from-skopeo/small:v1`, `oci:${dir}:small`]);
      assert.equal(ociIndexDigest(dir, 'small'), images.small.digest);
      assert.equal((await user.ok(['digest', `${R}/from-skopeo/small:v1`])).stdout.trim(), images.small.digest);

      await user.ok(['copy', `oci:${images.dir}:base`, `${R}/from-wharf/base:v1`]);
      const skopeoDir = join(work, `${name}-skopeo-from-wharf`);
      skopeo(['copy', '--src-tls-verify=false', `docker://${R}/from-wharf/base:v1`, `oci:${skopeoDir}:base`]);
      assert.equal(ociIndexDigest(skopeoDir, 'base'), images.base.digest);
    });

    test('a docker-archive written by skopeo round-trips through wharf', async () => {
      const archive = join(work, `${name}-skopeo-base.tar`);
      skopeo(['copy', `oci:${images.dir}:base`, `docker-archive:${archive}:example/base:v1`]);
      // skopeo writes a docker-format config, so the image ID is the digest of the archive's config file.
      const skopeoManifest = JSON.parse(tool('tar', ['-xOf', archive, 'manifest.json'])) as Array<{ Config: string }>;
      const imageId = `sha256:${createHash('sha256').update(execFileSync('tar', ['-xOf', archive, skopeoManifest[0]!.Config])).digest('hex')}`;
      await user.ok(['copy', `docker-archive:${archive}`, `${R}/archive/base:v1`]);
      const inspect = await user.ok(['inspect', '--remote', '--format', '{{.Id}} {{.Architecture}}', `${R}/archive/base:v1`]);
      assert.equal(inspect.stdout.trim(), `${imageId} amd64`, 'the image ID (config digest) survives the archive');
      const skopeoSees = JSON.parse(skopeo(['inspect', '--config', '--tls-verify=false', `docker://${R}/archive/base:v1`])) as { history: unknown[] };
      assert.equal(skopeoSees.history.length, 5);

      // And back out: wharf writes a docker-archive that skopeo reads to the same image ID.
      const out = join(work, `${name}-wharf-base.tar`);
      await user.ok(['copy', `${R}/archive/base:v1`, `docker-archive:${out}`]);
      const manifest = JSON.parse(tool('tar', ['-xOf', out, 'manifest.json'])) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
      assert.deepEqual(manifest[0]!.RepoTags, [`${R}/archive/base:v1`]);
      assert.equal(manifest[0]!.Layers.length, 3);
      const skopeoReads = JSON.parse(skopeo(['inspect', '--raw', `docker-archive:${out}`])) as { config: { digest: string }; layers: unknown[] };
      assert.equal(skopeoReads.config.digest, imageId);
      assert.equal(skopeoReads.layers.length, 3);
      // wharf pull straight into an archive, then read it back with wharf.
      const pulled = join(work, `${name}-pulled.tar`);
      await user.ok(['pull', `${R}/seed/small:v1`, `docker-archive:${pulled}`]);
      const history = await user.ok(['history', '--format', '{{.CreatedBy}}', `docker-archive:${pulled}`]);
      assert.equal(history.stdout.trim(), 'COPY hello.txt /');
    });

    test('manifest inspect prints the manifest; --raw the exact bytes; --verbose each platform', async () => {
      const pretty = await user.ok(['manifest', 'inspect', `${R}/seed/multi:v1`]);
      assert.equal(JSON.parse(pretty.stdout).manifests.length, 2);
      const raw = await user.ok(['manifest', 'inspect', '--raw', `${R}/seed/multi:v1`]);
      assert.equal(raw.stdout.trimEnd(), readFileSync(join(images.dir, 'blobs', 'sha256', images.multi.digest.slice(7)), 'utf8'));
      const verbose = JSON.parse((await user.ok(['manifest', 'inspect', '--verbose', `${R}/seed/multi:v1`])).stdout) as Array<{ Ref: string; Descriptor: { platform: { architecture: string } }; OCIManifest: { layers: unknown[] } }>;
      assert.equal(verbose.length, 2);
      assert.equal(verbose[1]!.Descriptor.platform.architecture, 'arm64');
      assert.equal(verbose[1]!.OCIManifest.layers.length, 2);
      assert.match(verbose[0]!.Ref, new RegExp(`^${rx(R)}/seed/multi@sha256:`));
    });

    test('inspect shows digest, repo digests, platform and config as JSON', async () => {
      const out = JSON.parse((await user.ok(['inspect', `${R}/seed/base:v1`])).stdout) as Array<Record<string, any>>;
      assert.equal(out.length, 1);
      assert.equal(out[0]!.Id, images.base.configDigest);
      // Every local name of the image is listed (team/app took its tags from seed/base earlier).
      assert.ok(out[0]!.RepoDigests.includes(`${R}/seed/base@${images.base.digest}`), out[0]!.RepoDigests);
      assert.ok(out[0]!.RepoTags.includes(`${R}/seed/base:v1`), out[0]!.RepoTags);
      assert.equal(out[0]!.Os, 'linux');
      assert.deepEqual(out[0]!.Config.Cmd, ['/bin/sh']);
      assert.equal(out[0]!.RootFS.Layers.length, 3);
    });

    test('manifest create and imagetools create build an index without moving layers', async () => {
      const [amd, arm] = images.multi.children!;
      await user.ok(['copy', `${R}/seed/multi@${amd!.digest}`, `${R}/parts/app:amd64`]);
      await user.ok(['copy', `${R}/seed/multi@${arm!.digest}`, `${R}/parts/app:arm64`]);
      // As docker: create builds the list locally, push sends it.
      const created = await user.ok(['manifest', 'create', `${R}/combined/app:v1`, `${R}/parts/app:amd64`, `${R}/parts/app:arm64`]);
      assert.equal(created.stdout, `Created manifest list ${R}/combined/app:v1\n`);
      const digest = (await user.ok(['manifest', 'push', '--purge', `${R}/combined/app:v1`])).stdout.trim();
      assert.match(digest, /^sha256:[a-f0-9]{64}$/);
      assert.equal((await user.ok(['digest', `${R}/combined/app:v1`])).stdout.trim(), digest);
      const index = JSON.parse((await user.ok(['manifest', 'inspect', `${R}/combined/app:v1`])).stdout) as { manifests: Array<{ digest: string; platform: { architecture: string; variant?: string } }> };
      assert.deepEqual(index.manifests.map((m) => m.digest), [amd!.digest, arm!.digest]);
      assert.equal(index.manifests[1]!.platform.variant, 'v8');
      // The layers arrived by mount, not by upload: no blob PUT to combined/app.
      assert.ok(!registry.requests().some((r) => r.method === 'PUT' && r.path.startsWith('/v2/combined/app/blobs/uploads')), 'layers were uploaded instead of mounted');
      const pulled = await user.ok(['inspect', '--remote', '--platform', 'linux/arm64', '--format', '{{.Architecture}}', `${R}/combined/app:v1`]);
      assert.equal(pulled.stdout.trim(), 'arm64');
      const tools = await user.ok(['imagetools', 'create', '-t', `${R}/combined/app:v2`, `${R}/parts/app:amd64`, `${R}/parts/app:arm64`]);
      assert.equal(tools.stdout.trim(), digest, 'the same index has the same digest');
      // Straight from the children of another repository's index, by digest.
      const direct = await user.ok(['imagetools', 'create', '-t', `${R}/combined/direct:v1`, `${R}/seed/multi@${amd!.digest}`, `${R}/seed/multi@${arm!.digest}`]);
      assert.equal(direct.stdout.trim(), digest);
      // The docker CLI reads the index wharf built (docker manifest needs no engine).
      const dockerSees = JSON.parse(
        execFileSync('docker', ['manifest', 'inspect', '--insecure', `${R}/combined/app:v1`], { encoding: 'utf8', env: { ...process.env, HOME: user.home, DOCKER_CONFIG: user.dockerConfig } }),
      ) as { manifests: Array<{ digest: string; platform: { architecture: string } }> };
      assert.deepEqual(dockerSees.manifests.map((m) => `${m.platform.architecture} ${m.digest}`), [`amd64 ${amd!.digest}`, `arm64 ${arm!.digest}`]);
    });

    test('tags, catalog and search (/v1/search where the registry answers it, else the catalog)', async () => {
      const catalog = (await user.ok(['catalog', R])).stdout.trim().split('\n');
      for (const repo of ['seed/base', 'seed/multi', 'seed/small', 'team/app']) assert.ok(catalog.includes(repo), `${repo} in ${catalog}`);
      const tags = JSON.parse((await user.ok(['--json', 'tags', `${R}/team/app`])).stdout) as string[];
      assert.deepEqual(tags.sort(), ['1.0', '1.1']);
      // Wharf answers /v1/search (names as the registry gives them, as docker shows them);
      // Distribution has none, and the catalog's names are shown with the registry in front.
      const probe = JSON.parse((await user.ok(['search', '--format', 'json', `${R}/seed`])).stdout) as Array<{ name: string; source: string }>;
      const viaSearch = probe[0]?.source === 'search';
      const shown = (name: string) => (viaSearch ? name : `${R}/${name}`);
      const search = await user.ok(['search', `${R}/seed`]);
      const lines = search.stdout.trim().split('\n');
      assert.match(lines[0]!, /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL$/);
      assert.deepEqual(lines.slice(1).map((l) => l.split(/\s+/)[0]).sort(), ['seed/base', 'seed/multi', 'seed/small'].map(shown));
      const json = JSON.parse((await user.ok(['search', '--format', 'json', `${R}/base`])).stdout) as Array<{ name: string }>;
      if (!viaSearch) {
        // Without /v1/search, the answer is exactly the catalog's names that hold the term.
        assert.deepEqual(json.map((r) => r.name).sort(), catalog.filter((n) => n.includes('base')).map((n) => `${R}/${n}`).sort());
      }
      assert.ok(json.some((r) => r.name === shown('seed/base')) && json.some((r) => r.name === shown('retagged/base')));
      const limited = await user.ok(['search', '--limit', '1', '--format', 'json', `${R}/seed`]);
      const results = JSON.parse(limited.stdout) as Array<{ name: string; source: string }>;
      assert.equal(results.length, 1);
      assert.equal(results[0]!.source, viaSearch ? 'search' : 'catalog');
      const official = await user.ok(['search', '--filter', 'is-official=true', `${R}/seed`]);
      assert.equal(official.stdout.trim().split('\n').length, 1, 'only the header: nothing under seed/ is official');
    });

    test('pin rewrites compose and Kubernetes YAML to digests; --check fails on unpinned tags', async () => {
      const compose = join(work, `${name}-compose.yaml`);
      const k8s = join(work, `${name}-deploy.yaml`);
      writeFileSync(compose, `# our stack\nservices:\n  web:\n    image: ${R}/seed/base:v1   # the app\n    ports: ["80:80"]\n  cache:\n    image: "${R}/seed/small:v1"\n  db:\n    image: \${DB_IMAGE}\n`);
      writeFileSync(k8s, `apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: init\n          image: ${R}/seed/small:v1\n      containers:\n        - name: app\n          image: ${R}/seed/multi:v1\n---\napiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - image: ${R}/seed/base@${images.base.digest}\n`);
      const check = await user.run(['pin', '--check', compose, k8s]);
      assert.equal(check.code, 1);
      assert.match(check.stderr, new RegExp(`compose\\.yaml:4: ${rx(R)}/seed/base:v1 is not pinned`));
      assert.match(check.stderr, /deploy\.yaml:11: /);
      assert.equal((check.stderr.match(/is not pinned/g) ?? []).length, 4);
      assert.match(check.stderr, /compose\.yaml:9: \$\{DB_IMAGE\} cannot be resolved: it holds a variable/);

      await user.ok(['pin', '--skip-unresolvable', compose, k8s]);
      const pinnedCompose = readFileSync(compose, 'utf8');
      assert.match(pinnedCompose, new RegExp(`image: ${rx(R)}/seed/base:v1@${images.base.digest}   # the app`));
      assert.match(pinnedCompose, new RegExp(`image: "${rx(R)}/seed/small:v1@${images.small.digest}"`));
      assert.match(pinnedCompose, /^# our stack$/m, 'comments are kept');
      assert.match(pinnedCompose, /image: \$\{DB_IMAGE\}/, 'variables are left alone');
      assert.match(readFileSync(k8s, 'utf8'), new RegExp(`image: ${rx(R)}/seed/multi:v1@${images.multi.digest}`));
      const pinned = await user.run(['pin', '--check', '--skip-unresolvable', compose, k8s]);
      assert.equal(pinned.code, 0, pinned.stderr);
    });

    test('delete removes a manifest; unknown images fail with a clear error and a non-zero exit', async () => {
      await user.ok(['copy', `${R}/seed/small:v1`, `${R}/doomed/small:v1`]);
      const deleted = await user.ok(['delete', `${R}/doomed/small:v1`]);
      assert.equal(deleted.stdout.trim(), `Deleted: ${R}/doomed/small@${images.small.digest}`);
      const gone = await user.run(['pull', `${R}/doomed/small:v1`]);
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, new RegExp(`manifest unknown: ${rx(R)}/doomed/small:v1`));
      const inspectGone = await user.run(['manifest', 'inspect', `${R}/doomed/small:v1`]);
      assert.equal(inspectGone.code, 1);
      assert.match(inspectGone.stderr, /manifest unknown/);
      const digest = await user.run(['digest', `${R}/nothing/here:v9`]);
      assert.equal(digest.code, 1);
      assert.match(digest.stderr, /manifest unknown/);
      const noLocal = await user.run(['tag', 'nothing-local:1', 'mine:1']);
      assert.equal(noLocal.code, 1);
      assert.match(noLocal.stderr, /No such image: docker\.io\/library\/nothing-local:1/);
      const badRef = await user.run(['pull', 'UPPER/Case:x']);
      assert.notEqual(badRef.code, 0);
      assert.match(badRef.stderr, /invalid reference/);
    });

    test('rmi untags and deletes blobs no other image uses', async () => {
      const other = cliUser();
      try {
        await other.ok(['pull', `${R}/seed/small:v1`]);
        await other.ok(['tag', `${R}/seed/small:v1`, 'mine/small:v1']);
        const first = await other.ok(['rmi', `${R}/seed/small:v1`]);
        assert.match(first.stdout, new RegExp(`Untagged: ${rx(R)}/seed/small:v1`));
        assert.doesNotMatch(first.stdout, /Deleted/, 'still tagged as mine/small');
        const second = await other.ok(['rmi', 'mine/small:v1']);
        assert.match(second.stdout, /Untagged: mine\/small:v1/);
        assert.equal((second.stdout.match(/Deleted: sha256:/g) ?? []).length, 3, 'manifest, config and layer');
        const missing = await other.run(['rmi', 'mine/small:v1']);
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /No such image: mine\/small:v1/);
      } finally {
        other.dispose();
      }
    });

    test('images shows multi-arch images and digests; rmi takes an image ID prefix', async () => {
      const other = cliUser();
      try {
        await other.ok(['pull', '--all-platforms', `${R}/seed/multi:v1`]);
        await other.ok(['pull', `${R}/seed/small:v1`]);
        const table = await other.ok(['images', '--digests']);
        assert.match(table.stdout, /^REPOSITORY\s+TAG\s+DIGEST\s+IMAGE ID\s+CREATED\s+SIZE$/m);
        assert.match(table.stdout, new RegExp(`seed/multi\\s+v1\\s+${images.multi.digest}\\s+${images.multi.digest.slice(7, 19)}`));
        const ids = (await other.ok(['images', '-q'])).stdout.trim().split('\n');
        assert.deepEqual(ids.sort(), [images.multi.digest.slice(7, 19), images.small.configDigest!.slice(7, 19)].sort());
        const only = JSON.parse((await other.ok(['images', '--format', 'json', `${R}/seed/small`])).stdout) as Array<{ Repository: string; SizeBytes: number }>;
        assert.equal(only.length, 1);
        assert.ok(only[0]!.SizeBytes > 0);
        const removed = await other.ok(['rmi', images.multi.digest.slice(7, 17)]);
        assert.match(removed.stdout, new RegExp(`Untagged: ${rx(R)}/seed/multi:v1`));
        assert.ok((removed.stdout.match(/Deleted: /g) ?? []).length >= 6, removed.stdout);
        assert.equal((await other.ok(['images', '-q'])).stdout.trim(), images.small.configDigest!.slice(7, 19));
      } finally {
        other.dispose();
      }
    });

    test('--json and --quiet change the output for scripts', async () => {
      const other = cliUser();
      try {
        const quiet = await other.ok(['--quiet', 'pull', `${R}/seed/small:v1`]);
        assert.equal(quiet.stderr, '');
        assert.equal(quiet.stdout.trim(), `${R}/seed/small:v1`);
        await other.ok(['rmi', `${R}/seed/small:v1`]);
        const json = await other.ok(['--json', 'pull', `${R}/seed/small:v1`]);
        const result = JSON.parse(json.stdout) as { digest: string };
        assert.equal(result.digest, images.small.digest);
        const events = json.stderr.trim().split('\n').map((l) => JSON.parse(l) as { type: string; action: string });
        assert.ok(events.some((e) => e.type === 'blob-done' && e.action === 'pull'));
      } finally {
        other.dispose();
      }
    });

    if (peer) {
      test(`copy streams registry to registry: ${peer.name} to ${name}, every platform, digests kept`, async () => {
        const upstream = await peer.start('plain');
        try {
          await user.ok(['copy', '--all-platforms', `oci:${images.dir}:multi`, `${upstream.host}/upstream/multi:v1`]);
          const other = cliUser();
          try {
            const copy = await other.ok(['copy', '--all-platforms', `${upstream.host}/upstream/multi:v1`, `${R}/mirror/multi:v1`]);
            assert.match(copy.stdout, new RegExp(`Digest: ${images.multi.digest}`));
            assert.equal((await other.ok(['digest', `${R}/mirror/multi:v1`])).stdout.trim(), images.multi.digest);
            for (const child of images.multi.children!) {
              const inspect = await other.ok(['inspect', '--remote', '--format', '{{.Id}}', `${R}/mirror/multi@${child.digest}`]);
              assert.equal(inspect.stdout.trim(), child.configDigest);
            }
            assert.equal(existsSync(join(other.wharfHome, 'images', 'blobs', 'sha256', images.multi.digest.slice(7))), false, 'nothing was stored locally on the way');
          } finally {
            other.dispose();
          }
        } finally {
          await upstream.stop();
        }
      });
    }
  });
}

function faultScenarios(name: string, start: StartRegistry, shared: Shared): void {
  describe(`wharf over a faulty network (a proxy in front of ${name})`, () => {
    let registry: RegistryUnderTest;
    let proxy: FaultProxy;
    let images: TestLayout;
    let user: CliUser;

    before(async () => {
      images = shared.images();
      registry = await start('plain');
      proxy = await startFaultProxy(registry.host);
      user = cliUser();
      await user.ok(['copy', `oci:${images.dir}:base`, `${registry.host}/faults/base:v1`]);
    });

    after(async () => {
      user?.dispose();
      await proxy?.close();
      await registry?.stop();
    });

    test('a pull interrupted mid-layer resumes with Range and verifies the digest', async () => {
      const big = images.base.layers![2]!;
      proxy.cutAfter(new RegExp(`/blobs/${big.digest}$`), 1024 * 1024);
      const pull = await user.ok(['pull', `${proxy.host}/faults/base:v1`]);
      assert.match(pull.stdout, new RegExp(`Digest: ${images.base.digest}`));
      const gets = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith(big.digest));
      assert.ok(gets.length >= 2, `expected a second request for the cut layer, saw ${gets.length}`);
      const resumed = gets.find((r) => typeof r.headers.range === 'string');
      assert.ok(resumed, 'the second request asked for a Range');
      const startAt = Number(/bytes=(\d+)-/.exec(resumed.headers.range as string)?.[1]);
      assert.ok(startAt >= 512 * 1024 && startAt <= 1024 * 1024, `resumed at ${startAt}`);
      assert.equal(resumed.status, 206);
      // The whole layer arrived: it unpacks to its full size.
      const history = await user.ok(['history', '--format', '{{.SizeBytes}}', `${proxy.host}/faults/base:v1`]);
      const unpacked = gunzipSync(readFileSync(join(images.dir, 'blobs', 'sha256', big.digest.slice(7)))).length;
      assert.match(history.stdout, new RegExp(`^${unpacked}$`, 'm'));
    });

    test('a stalled download is cut after --timeout and resumed with Range', async () => {
      const other = cliUser();
      try {
        const big = images.base.layers![2]!;
        const before = proxy.requests.length;
        proxy.stallAfter(new RegExp(`/blobs/${big.digest}$`), 700 * 1024);
        const pull = await other.ok(['--timeout', '1', 'pull', `${proxy.host}/faults/base:v1`]);
        assert.match(pull.stdout, new RegExp(`Digest: ${images.base.digest}`));
        assert.equal(proxy.stalled(), 1);
        const gets = proxy.requests.slice(before).filter((r) => r.method === 'GET' && r.path.endsWith(big.digest));
        assert.equal(gets.length, 2, 'one stalled request, one resumed request');
        assert.equal(gets[1]!.headers.range, `bytes=${700 * 1024}-`);
      } finally {
        other.dispose();
      }
    });

    test('layers download in parallel: while one layer stalls, the others arrive', async () => {
      const other = cliUser();
      try {
        const [first, , big] = images.base.layers!;
        const before = proxy.requests.length;
        proxy.stallAfter(new RegExp(`/blobs/${first!.digest}$`), 100);
        await other.ok(['--timeout', '2', 'pull', `${proxy.host}/faults/base:v1`]);
        const requests = proxy.requests.slice(before);
        const stalled = requests.find((r) => r.path.endsWith(first!.digest))!;
        const bigGet = requests.find((r) => r.method === 'GET' && r.path.endsWith(big!.digest))!;
        assert.ok(stalled.endedAt !== undefined && bigGet.endedAt !== undefined);
        assert.ok(bigGet.endedAt! < stalled.endedAt!, 'the big layer finished while the first one was still stalled');
      } finally {
        other.dispose();
      }
    });

    test('a pull killed mid-layer resumes from its partial file on the next run', async () => {
      const other = cliUser();
      try {
        const big = images.base.layers![2]!;
        const stalledBefore = proxy.stalled();
        proxy.stallAfter(new RegExp(`/blobs/${big.digest}$`), 900 * 1024);
        const first = other.start(['pull', `${proxy.host}/faults/base:v1`]);
        const deadline = Date.now() + 15_000;
        while (proxy.stalled() === stalledBefore && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        assert.equal(proxy.stalled(), stalledBefore + 1, 'the layer download reached the stall');
        // Let the received bytes reach the disk (a fixed pause raced on a busy machine).
        const partial = join(other.wharfHome, 'images', 'ingest', `sha256-${big.digest.slice(7)}.partial`);
        const written = () => (existsSync(partial) ? statSync(partial).size : 0);
        const flushDeadline = Date.now() + 15_000;
        while (written() < 900 * 1024 && Date.now() < flushDeadline) await new Promise((r) => setTimeout(r, 50));
        first.child.kill('SIGKILL');
        await first.result;
        assert.equal(statSync(partial).size, 900 * 1024);
        const before = proxy.requests.length;
        const second = await other.ok(['pull', `${proxy.host}/faults/base:v1`]);
        assert.match(second.stdout, new RegExp(`Digest: ${images.base.digest}`));
        const gets = proxy.requests.slice(before).filter((r) => r.method === 'GET' && r.path.endsWith(big.digest));
        assert.equal(gets.length, 1);
        assert.equal(gets[0]!.headers.range, `bytes=${900 * 1024}-`);
        assert.equal(existsSync(partial), false, 'the partial file became the blob');
        assert.equal(statSync(join(other.wharfHome, 'images', 'blobs', 'sha256', big.digest.slice(7))).size, big.size);
      } finally {
        other.dispose();
      }
    });

    test('503 and 429 with Retry-After are retried', async () => {
      const before = proxy.requests.length;
      proxy.failNext(/\/manifests\/v1$/, 2, 503);
      proxy.failNext(/\/tags\/list/, 1, 429, '1');
      const started = Date.now();
      const digest = await user.ok(['digest', `${proxy.host}/faults/base:v1`]);
      assert.equal(digest.stdout.trim(), images.base.digest);
      const tags = await user.ok(['tags', `${proxy.host}/faults/base`]);
      assert.equal(tags.stdout.trim(), 'v1');
      assert.ok(Date.now() - started >= 1000, 'Retry-After: 1 was honoured');
      const seen = proxy.requests.slice(before);
      assert.equal(seen.filter((r) => r.status === 503).length, 2);
      assert.equal(seen.filter((r) => r.status === 429).length, 1);
    });

    test('a registry that keeps failing ends in an error, not a hang', async () => {
      proxy.failNext(/\/manifests\/v1$/, 50, 500);
      const result = await user.run(['digest', `${proxy.host}/faults/base:v1`]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /HTTP 500/);
    });
  });
}

function htpasswdScenarios(name: string, start: StartRegistry, shared: Shared): void {
  describe(`wharf client against ${name} with htpasswd basic auth`, () => {
    let registry: RegistryUnderTest;
    let images: TestLayout;
    let user: CliUser;
    let R: string;
    before(async () => {
      images = shared.images();
      registry = await start('htpasswd');
      R = registry.host;
      user = cliUser();
    });
    after(async () => {
      user?.dispose();
      await registry?.stop();
    });

    test('without a login, a push fails with unauthorized and a hint to log in', async () => {
      const result = await user.run(['copy', `oci:${images.dir}:small`, `${R}/private/small:v1`]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /unauthorized/);
      assert.match(result.stderr, new RegExp(`wharf login ${rx(R)}`));
    });

    test('a wrong password is refused and nothing is stored', async () => {
      const result = await user.run(['login', R, '-u', registry.username!, '--password-stdin'], { input: 'not-the-password\n' });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /unauthorized/);
      assert.throws(() => readFileSync(join(user.dockerConfig, 'config.json')), /ENOENT/);
    });

    test('login verifies and stores credentials in config.json; push, pull, history and catalog then work; logout forgets', async () => {
      const login = await user.ok(['login', R, '-u', registry.username!, '--password-stdin'], { input: `${registry.password}\n` });
      assert.equal(login.stdout.trim(), 'Login Succeeded');
      assert.doesNotMatch(login.stdout + login.stderr, new RegExp(rx(registry.password!)), 'the password is never printed');
      const config = JSON.parse(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
      assert.equal(Buffer.from(config.auths[R]!.auth, 'base64').toString(), `${registry.username}:${registry.password}`);

      await user.ok(['copy', `oci:${images.dir}:small`, `${R}/private/small:v1`]);
      const pull = await user.ok(['pull', `${R}/private/small:v1`]);
      assert.match(pull.stdout, new RegExp(`Digest: ${images.small.digest}`));
      await user.ok(['copy', `oci:${images.dir}:base`, `${R}/private/base:v1`]);
      const pullBase = await user.ok(['pull', `${R}/private/base:v1`]);
      assert.match(pullBase.stdout, new RegExp(`Digest: ${images.base.digest}`));
      const history = await user.ok(['history', '--format', '{{.CreatedBy}}', `${R}/private/base:v1`]);
      assert.equal(history.stdout.trim().split('\n').length, 5);
      assert.deepEqual((await user.ok(['catalog', R])).stdout.trim().split('\n').sort(), ['private/base', 'private/small']);

      const logout = await user.ok(['logout', R]);
      assert.match(logout.stdout, new RegExp(`Removing login credentials for ${rx(R)}`));
      const afterLogout = JSON.parse(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, unknown> };
      assert.equal(afterLogout.auths[R], undefined);
      const denied = await user.run(['digest', `${R}/private/small:v1`]);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /unauthorized/);
    });

    test('credentials come from a credential helper named in credHelpers, or from credsStore', async () => {
      // A real docker-credential-* program speaking the helper protocol, holding one secret.
      const bin = join(user.home, 'bin');
      mkdirSync(bin, { recursive: true });
      const helper = join(bin, 'docker-credential-wharftest');
      writeFileSync(
        helper,
        `#!/bin/sh\ncase "$1" in\n  get) read server; if [ "$server" = "${R}" ]; then printf '{"ServerURL":"%s","Username":"${registry.username}","Secret":"${registry.password}"}' "$server"; else echo "credentials not found in native keychain"; exit 1; fi ;;\n  store) cat > "${join(user.home, 'stored.json')}" ;;\n  erase) read server; echo "$server" > "${join(user.home, 'erased.txt')}" ;;\nesac\n`,
      );
      chmodSync(helper, 0o755);
      writeFileSync(join(user.dockerConfig, 'config.json'), JSON.stringify({ credHelpers: { [R]: 'wharftest' } }));
      const env = { PATH: `${bin}:${process.env.PATH}` };
      const digest = await user.ok(['digest', `${R}/private/small:v1`], { env });
      assert.equal(digest.stdout.trim(), images.small.digest);
      // login stores through the helper, not in config.json.
      await user.ok(['login', R, '-u', registry.username!, '--password-stdin'], { input: registry.password!, env });
      const stored = JSON.parse(readFileSync(join(user.home, 'stored.json'), 'utf8')) as { ServerURL: string; Username: string; Secret: string };
      assert.deepEqual(stored, { ServerURL: R, Username: registry.username, Secret: registry.password });
      assert.doesNotMatch(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8'), /auth"\s*:\s*"[A-Za-z0-9+/=]{8,}/);
      await user.ok(['logout', R], { env });
      assert.equal(readFileSync(join(user.home, 'erased.txt'), 'utf8').trim(), R);
      // credsStore: the same helper as the default store for every registry.
      writeFileSync(join(user.dockerConfig, 'config.json'), JSON.stringify({ credsStore: 'wharftest' }));
      const viaStore = await user.ok(['tags', `${R}/private/small`], { env });
      assert.equal(viaStore.stdout.trim(), 'v1');
      writeFileSync(join(user.dockerConfig, 'config.json'), '{}');
    });

    test('the password never reaches the registry log (no secret in a URL or a logged header)', () => {
      const logs = registry.logs();
      assert.ok(logs.length > 0);
      assert.ok(!logs.includes(registry.password!));
      assert.ok(!logs.includes(Buffer.from(registry.password!).toString('base64')));
      assert.ok(!logs.includes(Buffer.from(`${registry.username}:${registry.password}`).toString('base64')));
    });
  });
}

function tlsScenarios(name: string, start: StartRegistry, shared: Shared): void {
  describe(`wharf client against ${name} over TLS with a self-signed CA`, () => {
    let registry: RegistryUnderTest;
    let images: TestLayout;
    let user: CliUser;
    let R: string;
    before(async () => {
      images = shared.images();
      registry = await start('tls');
      R = registry.host;
      user = cliUser();
    });
    after(async () => {
      user?.dispose();
      await registry?.stop();
    });

    test('an unknown CA is refused with a hint', async () => {
      const copy = await user.run(['copy', `oci:${images.dir}:small`, `${R}/tls/small:v1`]);
      assert.equal(copy.code, 1);
      assert.match(copy.stderr, /certificate/);
      assert.match(copy.stderr, /--ca-cert/);
      const digest = await user.run(['digest', `${R}/none/here:v1`]);
      assert.equal(digest.code, 1);
      assert.match(digest.stderr, /certificate/);
    });

    test('--ca-cert trusts the CA, before or after the command', async () => {
      await user.ok(['--ca-cert', registry.caFile!, 'copy', `oci:${images.dir}:small`, `${R}/tls/small:v1`]);
      assert.equal((await user.ok(['digest', '--ca-cert', registry.caFile!, `${R}/tls/small:v1`])).stdout.trim(), images.small.digest);
      assert.equal((await user.ok(['--ca-cert', registry.caFile!, 'digest', `${R}/tls/small:v1`])).stdout.trim(), images.small.digest);
    });

    test('certs.d/HOST:PORT/ca.crt is read as docker and podman read it', async () => {
      const dir = join(user.home, 'certs.d', R);
      mkdirSync(dir, { recursive: true });
      copyFileSync(registry.caFile!, join(dir, 'ca.crt'));
      try {
        const pull = await user.ok(['pull', `${R}/tls/small:v1`]);
        assert.match(pull.stdout, new RegExp(`Digest: ${images.small.digest}`));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test('--insecure skips verification', async () => {
      const tags = await user.ok(['--insecure', 'tags', `${R}/tls/small`]);
      assert.equal(tags.stdout.trim(), 'v1');
    });
  });
}

function tokenScenarios(name: string, start: StartRegistry, shared: Shared): void {
  describe(`wharf client against ${name} with Docker's token auth`, () => {
    let registry: RegistryUnderTest;
    let images: TestLayout;
    let user: CliUser;
    let R: string;
    before(async () => {
      images = shared.images();
      registry = await start('token');
      R = registry.host;
      user = cliUser();
    });
    after(async () => {
      user?.dispose();
      await registry?.stop();
    });

    test('anonymous access fails with unauthorized and a login hint', async () => {
      const digest = await user.run(['digest', `${R}/team/app:v1`]);
      assert.equal(digest.code, 1);
      assert.match(digest.stderr, /unauthorized/);
      assert.match(digest.stderr, /wharf login/);
      const push = await user.run(['copy', `oci:${images.dir}:small`, `${R}/team/app:v0`]);
      assert.equal(push.code, 1, 'the registry must ask for credentials');
      assert.match(push.stderr, /unauthorized/);
    });

    test('a wrong password fails the login', async () => {
      const result = await user.run(['login', R, '-u', registry.username!, '-p', 'wrong']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /unauthorized: incorrect username or password/);
    });

    test('login, push, mount across repositories, pull, catalog', async () => {
      await user.ok(['login', R, '-u', registry.username!, '--password-stdin'], { input: registry.password! });
      await user.ok(['copy', `oci:${images.dir}:base`, `${R}/team/app:v1`]);
      const copy = await user.ok(['copy', `${R}/team/app:v1`, `${R}/team/other:v1`]);
      assert.match(copy.stderr, /Mounted from team\/app/);
      const pull = await user.ok(['pull', `${R}/team/other:v1`]);
      assert.match(pull.stdout, new RegExp(`Digest: ${images.base.digest}`));
      const catalog = await user.ok(['catalog', R]);
      assert.deepEqual(catalog.stdout.trim().split('\n'), ['team/app', 'team/other']);
    });
  });
}

/** A one-layer OCI image layout with a real gzip tar layer, so podman and ctr can unpack it. */
async function runnableLayout(dir: string): Promise<string> {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(join(dir, 'content'), { recursive: true });
  mkdirSync(blobs, { recursive: true });
  writeFileSync(join(dir, 'content', 'hello.txt'), 'hello from wharf\n');
  await runOk('tar', ['--sort=name', '--mtime=2020-01-01', '--owner=0', '--group=0', '-C', join(dir, 'content'), '-cf', join(dir, 'layer.tar'), 'hello.txt']);
  await runOk('gzip', ['-n', '-f', join(dir, 'layer.tar')]);
  const tar = readFileSync(join(dir, 'layer.tar.gz'));
  const diffId = sha256(gunzipSync(tar));
  const put = (data: Buffer | string) => {
    const digest = sha256(data);
    writeFileSync(join(blobs, digest.slice('sha256:'.length)), data);
    return { digest, size: Buffer.byteLength(data) };
  };
  const layer = put(tar);
  const config = put(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/hello.txt'] }, rootfs: { type: 'layers', diff_ids: [diffId] } }));
  const manifest = put(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  );
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'hello' } }] }),
  );
  return manifest.digest;
}

export { runnableLayout };

function realClientScenarios(name: string, start: StartRegistry, shared: Shared): void {
  describe(`real clients against ${name} over HTTPS with htpasswd`, () => {
    let registry: RegistryUnderTest;
    let work: string;
    let layout: string;
    let digest: string;
    let authFile: string;
    let host: string;
    let password: string;

    before(async () => {
      // Short: podman refuses a runroot path longer than 50 characters.
      work = mkdtempSync(join(tmpdir(), 'wrc-'));
      registry = await start('tls-htpasswd');
      host = registry.host;
      password = registry.password!;
      mkdirSync(join(work, 'cadir'));
      copyFileSync(registry.caFile!, join(work, 'cadir', 'ca.crt'));
      layout = join(work, 'layout');
      digest = await runnableLayout(layout);
      authFile = join(work, 'auth.json');
      writeFileSync(authFile, '{"auths":{}}');
    });
    after(async () => {
      await registry?.stop();
      rmSync(work, { recursive: true, force: true });
    });

    const output = (r: { stdout: string; stderr: string }) => `${r.stdout}${r.stderr}`;

    test('skopeo login with --cert-dir, push with the stored login, and --creds', async () => {
      const user = registry.username!;
      const bad = await run('skopeo', ['login', '--cert-dir', join(work, 'cadir'), '--authfile', join(work, 'bad.json'), '-u', user, '-p', 'not-the-password', host]);
      assert.notEqual(bad.code, 0);
      assert.match(output(bad), /401|unauthorized|invalid username/i);
      await runOk('skopeo', ['login', '--cert-dir', join(work, 'cadir'), '--authfile', authFile, '-u', user, '-p', password, host]);
      await runOk('skopeo', ['copy', '--dest-cert-dir', join(work, 'cadir'), '--authfile', authFile, `oci:${layout}:hello`, `docker://${host}/team/hello:1`]);
      const inspected = JSON.parse(await runOk('skopeo', ['inspect', '--cert-dir', join(work, 'cadir'), '--creds', `${user}:${password}`, `docker://${host}/team/hello:1`])) as { Digest: string };
      assert.equal(inspected.Digest, digest);
      const anonymous = await run('skopeo', ['inspect', '--cert-dir', join(work, 'cadir'), '--no-creds', `docker://${host}/team/hello:1`]);
      assert.notEqual(anonymous.code, 0);
      assert.match(output(anonymous), /401|unauthorized|authentication required/i);
      const untrusted = await run('skopeo', ['inspect', '--creds', `${user}:${password}`, `docker://${host}/team/hello:1`], { env: { ...process.env, HOME: join(work, 'empty-home') } });
      assert.notEqual(untrusted.code, 0);
      assert.match(output(untrusted), /x509|certificate/i);
    });

    test('podman login and pull trusting the CA through certs.d, and pull with --creds', async () => {
      const user = registry.username!;
      const home = join(work, 'podman-home');
      mkdirSync(join(home, '.config', 'containers', 'certs.d', host), { recursive: true });
      copyFileSync(registry.caFile!, join(home, '.config', 'containers', 'certs.d', host, 'ca.crt'));
      const storage = ['--root', join(work, 'podman', 'root'), '--runroot', join(work, 'podman', 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
      const env = { ...process.env, HOME: home, REGISTRY_AUTH_FILE: join(work, 'podman-auth.json') };
      writeFileSync(env.REGISTRY_AUTH_FILE, '{"auths":{}}');
      const podman = (args: string[]) => runOk('podman', [...storage, ...args], { env });
      await podman(['login', '-u', user, '-p', password, host]);
      await podman(['pull', `${host}/team/hello:1`]);
      const id = await podman(['image', 'inspect', '--format', '{{.Digest}}', `${host}/team/hello:1`]);
      assert.equal(id.trim(), digest);
      await podman(['tag', `${host}/team/hello:1`, `${host}/team/hello:2`]);
      await podman(['push', `${host}/team/hello:2`]);
      await podman(['logout', host]);
      await podman(['pull', '--creds', `${user}:${password}`, `${host}/team/hello:2`]);
    });

    test('ctr pulls and pushes with a hosts.toml naming the CA', async () => {
      const user = registry.username!;
      const root = join(work, 'ctrd');
      mkdirSync(root, { recursive: true });
      const socket = join(root, 'containerd.sock');
      writeFileSync(
        join(root, 'config.toml'),
        `version = 2\nroot = "${root}/root"\nstate = "${root}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${socket}"\n[ttrpc]\n  address = "${socket}.ttrpc"\n`,
      );
      const containerd: ChildProcess = spawn('containerd', ['--config', join(root, 'config.toml')], { stdio: 'ignore' });
      try {
        const env = { ...process.env, CONTAINERD_ADDRESS: socket, CONTAINERD_NAMESPACE: 'wharf-test' };
        let up = false;
        for (let i = 0; i < 50 && !up; i += 1) {
          up = (await run('ctr', ['version'], { env })).code === 0;
          if (!up) await new Promise((r) => setTimeout(r, 200));
        }
        assert.ok(up, 'containerd did not start');
        const hosts = join(work, 'hosts', host);
        mkdirSync(hosts, { recursive: true });
        writeFileSync(join(hosts, 'hosts.toml'), `server = "https://${host}"\n[host."https://${host}"]\n  capabilities = ["pull", "resolve", "push"]\n  ca = "${registry.caFile}"\n`);
        const net = ['--hosts-dir', join(work, 'hosts'), '--user', `${user}:${password}`];
        await runOk('ctr', ['images', 'pull', ...net, '--snapshotter', 'native', `${host}/team/hello:1`], { env });
        const list = await runOk('ctr', ['images', 'ls'], { env });
        assert.match(list, new RegExp(`${rx(host)}/team/hello:1 .*${digest}`));
        await runOk('ctr', ['images', 'tag', `${host}/team/hello:1`, `${host}/team/ctr:1`], { env });
        await runOk('ctr', ['images', 'push', ...net, `${host}/team/ctr:1`], { env });
        const denied = await run('ctr', ['images', 'pull', '--hosts-dir', join(work, 'hosts'), '--user', `${user}:wrong-password`, `${host}/team/hello:1`], { env });
        assert.notEqual(denied.code, 0);
      } finally {
        containerd.kill('SIGTERM');
        await new Promise((r) => containerd.once('exit', r));
      }
    });

    test('no password of these clients appears in anything the registry logged', () => {
      const logs = registry.logs();
      assert.ok(logs.length > 0);
      for (const secret of [password, Buffer.from(password).toString('base64'), Buffer.from(`${registry.username}:${password}`).toString('base64')]) {
        assert.ok(!logs.includes(secret), `the registry's log holds ${secret.slice(0, 4)}…`);
      }
    });
  });
}
