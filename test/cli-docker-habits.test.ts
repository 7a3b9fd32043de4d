import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliUser, type CliUser } from './support/cli.js';
import { startDistributionUnderTest, startWharfUnderTest, type RegistryUnderTest } from './support/registries-under-test.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';
import { WHARF_BIN } from './support/wharf-process.js';
import { formatSize } from '../src/cli/output.js';
import { startForwardProxy, type ForwardProxy } from './support/forward-proxy.js';
import { runOnTerminal, screenOf, startOnTerminal } from './support/terminal.js';
import { ok, requireTool, run } from './support/tools.js';

/**
 * What a docker, crane, regctl or skopeo user expects of the `wharf` client, item by item
 * (issue 11 section 2), against `wharf serve` on loopback.
 */

/** Runs wharf with its stdout closed before it writes: every write meets EPIPE. */
function runWithClosedStdout(user: CliUser, args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WHARF_BIN, ...args], { env: user.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('wharf client habits of docker users', () => {
  let registry: RegistryUnderTest;
  let images: TestLayout;
  let user: CliUser;
  let work: string;
  let R: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'wharf-habits-'));
    images = await writeTestLayout(join(work, 'layout'));
    registry = await startWharfUnderTest('plain');
    R = registry.host;
    user = cliUser();
    await user.ok(['copy', `oci:${images.dir}:base`, `${R}/seed/base:v1`]);
    await user.ok(['copy', '--all-platforms', `oci:${images.dir}:multi`, `${R}/seed/multi:v1`]);
    await user.ok(['copy', `oci:${images.dir}:small`, `${R}/seed/small:v1`]);
  });

  after(async () => {
    user?.dispose();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('writing to a closed pipe exits quietly with status 0', async () => {
    await user.ok(['pull', `${R}/seed/small:v1`]);
    for (const args of [['tags', `${R}/seed/base`], ['images', '-q'], ['images'], ['catalog', R]]) {
      const result = await runWithClosedStdout(user, args);
      assert.equal(result.stderr, '', `wharf ${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.code, 0, `wharf ${args.join(' ')}`);
    }
    // And as a shell user writes it: the pipeline's first command succeeds, silently.
    const shell = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
      const child = spawn('bash', ['-c', `"${process.execPath}" "${WHARF_BIN}" tags ${R}/seed/base | head -1; echo "status=\${PIPESTATUS[0]}" >&2`], { env: user.env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', () => resolve({ stdout, stderr }));
    });
    assert.equal(shell.stdout, 'v1\n');
    assert.equal(shell.stderr, 'status=0\n');
  });
  test('image IDs: images shows config digests; tag, inspect, history and rmi take IDs and unique prefixes; rmi of several names needs -f', async () => {
    const me = cliUser();
    try {
      await me.ok(['pull', `${R}/seed/base:v1`]);
      await me.ok(['tag', `${R}/seed/base:v1`, `${R}/seed/base:v2`]);
      const id = images.base.configDigest!;
      const short = id.slice(7, 19);
      assert.equal((await me.ok(['images', '-q'])).stdout, `${short}\n`);
      assert.equal((await me.ok(['images', '--no-trunc', '--format', '{{.ID}}'])).stdout, `${id}\n${id}\n`);
      // tag by a short ID into another repository; inspect and history by prefixes of the ID.
      await me.ok(['tag', short, `${R}/other/base:x`]);
      await me.ok(['tag', id, `${R}/other/base:y`]);
      const inspected = JSON.parse((await me.ok(['inspect', id.slice(7, 15)])).stdout) as Array<{ Id: string; RepoTags: string[] }>;
      assert.equal(inspected[0]!.Id, id);
      assert.deepEqual(inspected[0]!.RepoTags, [`${R}/other/base:x`, `${R}/other/base:y`, `${R}/seed/base:v1`, `${R}/seed/base:v2`]);
      const history = await me.ok(['history', '--format', '{{.ID}}', short]);
      assert.equal(history.stdout.split('\n')[0], short);
      // Several repositories name the image: docker refuses to remove it by ID without -f.
      const refused = await me.run(['rmi', short]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, new RegExp(`unable to delete ${short} \\(must be forced\\) - image is referenced in multiple repositories`));
      assert.equal((await me.ok(['images', '-q'])).stdout, `${short}\n`, 'nothing was removed');
      // A name removes that name only.
      const one = await me.ok(['rmi', `${R}/other/base:y`]);
      assert.equal(one.stdout, `Untagged: ${R}/other/base:y\n`);
      const forced = await me.ok(['rmi', '-f', short]);
      assert.equal(forced.stdout.match(/^Untagged: /gm)?.length, 3, forced.stdout);
      assert.match(forced.stdout, new RegExp(`Deleted: ${images.base.digest}`));
      assert.equal((await me.ok(['images', '-q'])).stdout, '');
      const missing = await me.run(['rmi', short]);
      assert.match(missing.stderr, new RegExp(`No such image: ${short}`));
    } finally {
      me.dispose();
    }
  });

  test('a multi-arch image is known by its index digest everywhere; pulling by that digest adds no row', async () => {
    const me = cliUser();
    const file = join(work, 'compose.yaml');
    try {
      const index = images.multi.digest;
      const pull = await me.ok(['pull', '--platform', 'linux/amd64', `${R}/seed/multi:v1`]);
      assert.match(pull.stdout, new RegExp(`Digest: ${index}`));
      assert.equal((await me.ok(['digest', `${R}/seed/multi:v1`])).stdout.trim(), index);
      const local = JSON.parse((await me.ok(['inspect', `${R}/seed/multi:v1`])).stdout) as Array<{ RepoDigests: string[] }>;
      assert.deepEqual(local[0]!.RepoDigests, [`${R}/seed/multi@${index}`]);
      const remote = JSON.parse((await me.ok(['inspect', '--remote', `${R}/seed/multi:v1`])).stdout) as Array<{ RepoDigests: string[] }>;
      assert.deepEqual(remote[0]!.RepoDigests, [`${R}/seed/multi@${index}`]);
      writeFileSync(file, `services:\n  app:\n    image: ${R}/seed/multi:v1\n`);
      await me.ok(['pin', file]);
      assert.equal(readFileSync(file, 'utf8'), `services:\n  app:\n    image: ${R}/seed/multi:v1@${index}\n`);
      const byDigest = await me.ok(['pull', '--platform', 'linux/amd64', `${R}/seed/multi@${index}`]);
      assert.match(byDigest.stdout, /Status: Image is up to date/);
      const rows = (await me.ok(['images', '--digests', '--format', '{{.Repository}} {{.Tag}} {{.Digest}}'])).stdout;
      assert.equal(rows, `${R}/seed/multi v1 ${index}\n`);
    } finally {
      me.dispose();
    }
  });

  test('pull of a tag new to the local store says "Downloaded newer image" even when every layer is there', async () => {
    const me = cliUser();
    try {
      await me.ok(['copy', `${R}/seed/small:v1`, `${R}/seed/small:v2`]);
      await me.ok(['pull', `${R}/seed/small:v1`]);
      const second = await me.ok(['pull', `${R}/seed/small:v2`]);
      assert.match(second.stdout, new RegExp(`Status: Downloaded newer image for ${R}/seed/small:v2`));
      const again = await me.ok(['pull', `${R}/seed/small:v2`]);
      assert.match(again.stdout, /Status: Image is up to date/);
    } finally {
      me.dispose();
    }
  });
  test('--format takes Go templates as docker users write them: table, range, if, json, slices and maps', async () => {
    const me = cliUser();
    try {
      await me.ok(['pull', `${R}/seed/base:v1`]);
      await me.ok(['tag', `${R}/seed/base:v1`, `${R}/seed/base:v2`]);
      const table = await me.ok(['images', '--format', 'table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}']);
      const width = `${R}/seed/base`.length + 3;
      assert.equal(
        table.stdout,
        `${'REPOSITORY'.padEnd(width)}TAG       IMAGE ID\n${`${R}/seed/base`.padEnd(width)}v1        ${images.base.configDigest!.slice(7, 19)}\n${`${R}/seed/base`.padEnd(width)}v2        ${images.base.configDigest!.slice(7, 19)}\n`,
      );
      const inspect = await me.ok(['inspect', '--format', '{{range .RepoTags}}[{{.}}]{{end}} {{if .Config.Labels}}labelled{{else}}bare{{end}} {{json .Config.Cmd}} {{.Config.Cmd}} {{.Config.Labels}}', `${R}/seed/base:v1`]);
      assert.equal(inspect.stdout, `[${R}/seed/base:v1][${R}/seed/base:v2] labelled ["/bin/sh"] [/bin/sh] map[org.example.test:base]\n`);
      const bad = await me.run(['inspect', '--format', '{{range .RepoTags}}', `${R}/seed/base:v1`]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^wharf: template: .*\{\{end\}\}/);
    } finally {
      me.dispose();
    }
  });
  test('on a terminal the final "TAG: digest: … size: N" line of push and copy stays; a Docker-format config is no layer', async () => {
    const me = cliUser();
    try {
      await me.ok(['pull', `${R}/seed/base:v1`]);
      await me.ok(['tag', `${R}/seed/base:v1`, `${R}/onscreen/base:v1`]);
      const push = await runOnTerminal(['push', `${R}/onscreen/base:v1`], me.env);
      assert.equal(push.code, 0, push.raw);
      const screen = screenOf(push.raw);
      assert.equal(screen.at(-1), `v1: digest: ${images.base.digest} size: ${images.base.size}`, screen.join('\n'));
      assert.equal(screen.filter((l) => /Mounted from seed\/base/.test(l)).length, 3, screen.join('\n'));

      const copy = await runOnTerminal(['copy', `${R}/seed/small:v1`, `${R}/onscreen/small:v1`], me.env);
      assert.equal(copy.code, 0, copy.raw);
      assert.deepEqual(screenOf(copy.raw).slice(-2), [`Copied ${R}/seed/small:v1 to ${R}/onscreen/small:v1`, `Digest: ${images.small.digest}`]);

      // skopeo writes a Docker-format (v2s2) image: its config's media type says nothing of "config".
      requireTool('skopeo');
      await ok('skopeo', ['--insecure-policy', 'copy', '--format', 'v2s2', '--dest-tls-verify=false', `oci:${images.dir}:small`, `docker://${R}/docker-format/small:v1`]);
      const pull = await runOnTerminal(['pull', `${R}/docker-format/small:v1`], me.env);
      assert.equal(pull.code, 0, pull.raw);
      const bars = screenOf(pull.raw).filter((l) => /^[0-9a-f]{12}: /.test(l));
      assert.equal(bars.length, 1, `one layer, no config: ${bars.join('\n')}`);
      const piped = await me.ok(['pull', `${R}/docker-format/small:v1`, `oci:${join(work, 'docker-format')}`]);
      assert.equal(piped.stderr.match(/: Pull complete/g)?.length, 1, piped.stderr);
    } finally {
      me.dispose();
    }
  });
  test('copy takes a multi-arch image whole by default; --platform copies one and says so', async () => {
    const whole = await user.ok(['copy', `${R}/seed/multi:v1`, `${R}/copied/multi:whole`]);
    assert.equal(whole.stdout, `Copied ${R}/seed/multi:v1 to ${R}/copied/multi:whole\nDigest: ${images.multi.digest}\n`);
    assert.equal((await user.ok(['digest', `${R}/copied/multi:whole`])).stdout.trim(), images.multi.digest);
    const arm = images.multi.children!.find((c) => c.platform === 'linux/arm64/v8')!;
    const one = await user.ok(['copy', '--platform', 'linux/arm64', `${R}/seed/multi:v1`, `${R}/copied/multi:arm`]);
    assert.equal(one.stdout, `Copied ${R}/seed/multi:v1 to ${R}/copied/multi:arm (only linux/arm64/v8 of the multi-arch image ${images.multi.digest})\nDigest: ${arm.digest}\n`);
    assert.equal((await user.ok(['digest', `${R}/copied/multi:arm`])).stdout.trim(), arm.digest);
  });
  test('version and info: the client, and what answers at a registry (Wharf or Distribution)', async () => {
    const version = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    const client = await user.ok(['version']);
    assert.match(client.stdout, new RegExp(`^Client: Wharf\\n Version: +${version.version.replace(/\./g, '\\.')}\\n`));
    const server = await user.ok(['version', R]);
    assert.match(server.stdout, /\nServer: Wharf\n/);
    assert.match(server.stdout, new RegExp(` URL: +http://${R}/\\n`));
    assert.match(server.stdout, / API version: +registry\/2\.0\n/);
    assert.equal(JSON.parse((await user.ok(['--json', 'version', R])).stdout).Server.Version, version.version);
    const distribution = await startDistributionUnderTest('plain');
    try {
      const other = await user.ok(['version', distribution.host]);
      assert.match(other.stdout, /\nServer: a registry that does not say what it is\n/);
      const info = await user.ok(['info', distribution.host]);
      assert.match(info.stdout, new RegExp(` Image store: +${user.wharfHome}/images\\n`));
      assert.match(info.stdout, / Product: +not Wharf/);
    } finally {
      await distribution.stop();
    }
    const unreachable = await user.run(['version', '127.0.0.1:1']);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /^wharf: .*127\.0\.0\.1:1/);
    assert.equal(unreachable.stdout, '', 'nothing half-printed');
  });

  test('`wharf image …` translates `docker image …` word for word', async () => {
    const me = cliUser();
    try {
      await me.ok(['image', 'pull', `${R}/seed/small:v1`]);
      await me.ok(['image', 'tag', `${R}/seed/small:v1`, `${R}/lab/small:v1`]);
      const push = await me.ok(['image', 'push', `${R}/lab/small:v1`]);
      assert.match(push.stdout, new RegExp(`v1: digest: ${images.small.digest}`));
      const list = await me.ok(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']);
      assert.equal(list.stdout, `${R}/lab/small:v1\n${R}/seed/small:v1\n`);
      assert.equal((await me.ok(['image', 'inspect', '--format', '{{.Id}}', `${R}/lab/small:v1`])).stdout.trim(), images.small.configDigest);
      assert.equal((await me.ok(['image', 'history', '--format', '{{.CreatedBy}}', `${R}/lab/small:v1`])).stdout.trim(), 'COPY hello.txt /');
      await me.ok(['image', 'rm', `${R}/lab/small:v1`]);
      await me.ok(['image', 'remove', `${R}/seed/small:v1`]);
      assert.equal((await me.ok(['image', 'list', '-q'])).stdout, '');
    } finally {
      me.dispose();
    }
  });
  test('history and images count layers unpacked, as docker and podman do; -H=false prints bytes and ISO dates', async () => {
    const me = cliUser();
    try {
      await me.ok(['pull', `${R}/seed/base:v1`]);
      const unpacked = images.base.layers!.map((l) => gunzipSync(readFileSync(join(images.dir, 'blobs', 'sha256', l.digest.slice(7)))).length);
      const total = unpacked.reduce((a, b) => a + b, 0);
      assert.equal((await me.ok(['images', '--format', '{{.SizeBytes}} {{.Size}}'])).stdout, `${total} ${formatSize(total)}\n`);
      const local = await me.ok(['history', '--format', '{{.SizeBytes}}', `${R}/seed/base:v1`]);
      assert.deepEqual(local.stdout.trim().split('\n'), ['0', String(unpacked[2]), String(unpacked[1]), '0', String(unpacked[0])]);
      // A remote image is not downloaded to count it: its sizes are the stored ones.
      const remote = await me.ok(['history', '--remote', '--format', '{{.SizeBytes}}', `${R}/seed/base:v1`]);
      assert.deepEqual(remote.stdout.trim().split('\n'), ['0', ...images.base.layers!.map((l) => String(l.size)).reverse().slice(0, 2), '0', String(images.base.layers![0]!.size)]);
      for (const flag of [['-H=false'], ['--human=false'], ['-H', 'false']]) {
        const plain = await me.ok(['history', ...flag, `${R}/seed/base:v1`]);
        const lines = plain.stdout.trim().split('\n');
        assert.match(lines[2]!, new RegExp(`^<missing>\\s+2024-01-01T00:00:00Z\\s+COPY random\\.bin /data/ # buildkit\\s+${unpacked[2]}\\s*$`), `${flag.join(' ')}: ${plain.stdout}`);
      }
      const human = await me.ok(['history', `${R}/seed/base:v1`]);
      assert.match(human.stdout.trim().split('\n')[2]!, new RegExp(` years? ago\\s+COPY random\\.bin /data/ # buildkit\\s+${formatSize(unpacked[2]!).replace('.', '\\.')}\\s*$`));
    } finally {
      me.dispose();
    }
  });
  test('delete names the other tags it takes along and refuses a manifest an index lists; tag rm removes one tag', async () => {
    await user.ok(['copy', `${R}/seed/small:v1`, `${R}/del/app:a`]);
    await user.ok(['tag', `${R}/del/app:a`, `${R}/del/app:b`]);
    await user.ok(['tag', `${R}/del/app:a`, `${R}/del/app:c`]);
    const untag = await user.ok(['tag', 'rm', `${R}/del/app:b`]);
    assert.equal(untag.stdout, `Untagged: ${R}/del/app:b\n`);
    assert.deepEqual((await user.ok(['tags', `${R}/del/app`])).stdout.trim().split('\n').sort(), ['a', 'c']);
    assert.equal((await user.ok(['digest', `${R}/del/app:a`])).stdout.trim(), images.small.digest, 'the manifest stays');
    await user.ok(['untag', `${R}/del/app:c`]);
    assert.deepEqual((await user.ok(['tags', `${R}/del/app`])).stdout.trim().split('\n'), ['a']);
    await user.ok(['tag', `${R}/del/app:a`, `${R}/del/app:d`]);
    const deleted = await user.ok(['delete', `${R}/del/app:a`]);
    assert.equal(deleted.stdout, `Deleted: ${R}/del/app@${images.small.digest}\nAlso removed with it, the tags: d\n`);

    await user.ok(['copy', `${R}/seed/multi:v1`, `${R}/del/multi:v1`]);
    const child = images.multi.children![0]!.digest;
    const refused = await user.run(['delete', `${R}/del/multi@${child}`]);
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, `wharf: refusing to delete ${R}/del/multi@${child}: the index ${images.multi.digest} (v1) in the repository lists it; --force deletes it anyway\n`);
    assert.equal((await user.ok(['digest', `${R}/del/multi@${child}`])).stdout.trim(), child, 'still there');
    await user.ok(['delete', '--force', `${R}/del/multi@${child}`]);
    assert.notEqual((await user.run(['digest', `${R}/del/multi@${child}`])).code, 0);

    // Distribution deletes manifests, never a tag alone: wharf says so.
    const distribution = await startDistributionUnderTest('plain');
    try {
      const D = distribution.host;
      await user.ok(['copy', `${R}/seed/small:v1`, `${D}/del/app:a`]);
      const refusedByDistribution = await user.run(['tag', 'rm', `${D}/del/app:a`]);
      assert.equal(refusedByDistribution.code, 1);
      assert.match(refusedByDistribution.stderr, new RegExp(`^wharf: ${D} does not delete a tag alone`));
    } finally {
      await distribution.stop();
    }
  });
  test('manifest create builds locally, annotate edits, push pushes; imagetools create --dry-run, --append, --annotation', async () => {
    const me = cliUser();
    try {
      const [amd, arm] = images.multi.children!;
      await me.ok(['copy', `${R}/seed/multi@${amd!.digest}`, `${R}/mparts/app:amd64`]);
      await me.ok(['copy', `${R}/seed/multi@${arm!.digest}`, `${R}/mparts/app:arm64`]);
      assert.equal((await me.ok(['manifest', 'create', `${R}/mlist/app:v1`, `${R}/mparts/app:amd64`])).stdout, `Created manifest list ${R}/mlist/app:v1\n`);
      assert.notEqual((await me.run(['digest', `${R}/mlist/app:v1`])).code, 0, 'nothing was pushed yet');
      const again = await me.run(['manifest', 'create', `${R}/mlist/app:v1`, `${R}/mparts/app:arm64`]);
      assert.match(again.stderr, /exists already: --amend adds to it/);
      await me.ok(['manifest', 'create', '--amend', `${R}/mlist/app:v1`, `${R}/mparts/app:arm64`]);
      await me.ok(['manifest', 'annotate', '--variant', 'v8', '--os-features', 'sse4', `${R}/mlist/app:v1`, `${R}/mparts/app:arm64`]);
      const local = JSON.parse((await me.ok(['manifest', 'inspect', `${R}/mlist/app:v1`])).stdout) as { manifests: Array<{ digest: string; platform: Record<string, unknown> }> };
      assert.deepEqual(local.manifests.map((m) => m.digest), [amd!.digest, arm!.digest]);
      assert.deepEqual(local.manifests[1]!.platform, { os: 'linux', architecture: 'arm64', variant: 'v8', 'os.features': ['sse4'] });
      const pushed = (await me.ok(['manifest', 'push', `${R}/mlist/app:v1`])).stdout.trim();
      assert.equal((await me.ok(['digest', `${R}/mlist/app:v1`])).stdout.trim(), pushed);

      // imagetools: --dry-run pushes nothing; --append keeps what the target lists; --annotation.
      const dry = await me.ok(['imagetools', 'create', '--dry-run', '--annotation', 'org.opencontainers.image.description=two arches', '-t', `${R}/tools/app:v1`, `${R}/mparts/app:amd64`]);
      const dryIndex = JSON.parse(dry.stdout) as { manifests: unknown[]; annotations: Record<string, string> };
      assert.equal(dryIndex.manifests.length, 1);
      assert.deepEqual(dryIndex.annotations, { 'org.opencontainers.image.description': 'two arches' });
      assert.notEqual((await me.run(['digest', `${R}/tools/app:v1`])).code, 0, '--dry-run pushed nothing');
      await me.ok(['imagetools', 'create', '-t', `${R}/tools/app:v1`, `${R}/mparts/app:amd64`]);
      await me.ok(['imagetools', 'create', '--append', '--annotation', 'index:org.example.k=v', '--annotation', 'manifest-descriptor:org.example.d=e', '-t', `${R}/tools/app:v1`, `${R}/mparts/app:arm64`]);
      const appended = JSON.parse((await me.ok(['manifest', 'inspect', `${R}/tools/app:v1`])).stdout) as { manifests: Array<{ digest: string; annotations: Record<string, string> }>; annotations: Record<string, string> };
      assert.deepEqual(appended.manifests.map((m) => m.digest), [amd!.digest, arm!.digest]);
      assert.deepEqual(appended.annotations, { 'org.example.k': 'v' });
      assert.deepEqual(appended.manifests[1]!.annotations, { 'org.example.d': 'e' });
    } finally {
      me.dispose();
    }
  });
  test('containers-storage: and oci-archive: — buildah bud -t NAME . && wharf push NAME, podman reads what wharf writes; unknown transports are named', async () => {
    requireTool('buildah');
    requireTool('podman');
    requireTool('skopeo');
    const context = join(work, 'bud');
    mkdirSync(context, { recursive: true });
    writeFileSync(join(context, 'hello.txt'), 'built by buildah\n');
    writeFileSync(join(context, 'Containerfile'), 'FROM scratch\nCOPY hello.txt /\nCMD ["/hello"]\n');
    const built = `${R}/bud/app:v1`;
    const stored = 'localhost/wharf-habits/small:v1';
    try {
      await ok('buildah', ['bud', '--isolation', 'chroot', '-q', '-t', built, context]);
      const push = await user.ok(['push', built]);
      assert.match(push.stdout, /\(from containers-storage\)/);
      const pushedDigest = /v1: digest: (sha256:[a-f0-9]{64}) size: \d+/.exec(push.stdout)?.[1];
      assert.ok(pushedDigest, push.stdout);
      assert.equal((await user.ok(['digest', built])).stdout.trim(), pushedDigest);
      assert.equal((await user.ok(['history', '--remote', '--format', '{{.CreatedBy}}', built])).stdout.split('\n')[0], '/bin/sh -c #(nop) CMD ["/hello"]');

      // containers-storage → oci-archive → registry, the archive read by skopeo as well.
      const archive = join(work, 'app.tar');
      await user.ok(['copy', `containers-storage:${built}`, `oci-archive:${archive}`]);
      const inArchive = JSON.parse(await ok('skopeo', ['inspect', `oci-archive:${archive}`])) as { Digest: string; Layers: string[] };
      assert.equal(inArchive.Layers.length, 1);
      await user.ok(['copy', `oci-archive:${archive}`, `${R}/from-archive/app:v1`]);
      assert.equal((await user.ok(['digest', `${R}/from-archive/app:v1`])).stdout.trim(), inArchive.Digest, 'the archive\'s manifest went up unchanged');

      // registry → containers-storage: podman sees the image under its ID (the config digest).
      await user.ok(['copy', `${R}/seed/small:v1`, `containers-storage:${stored}`]);
      const id = (await ok('podman', ['image', 'inspect', '--format', '{{.Id}}', stored])).trim();
      assert.equal(`sha256:${id}`, images.small.configDigest);
      // podman save's oci-archive is read by wharf.
      const saved = join(work, 'saved.tar');
      await ok('podman', ['save', '--format', 'oci-archive', '-o', saved, stored]);
      await user.ok(['copy', `oci-archive:${saved}`, `${R}/from-podman/small:v1`]);
      assert.equal((await user.ok(['inspect', '--remote', '--format', '{{.Id}}', `${R}/from-podman/small:v1`])).stdout.trim(), images.small.configDigest);

      const missing = await user.run(['copy', 'containers-storage:localhost/wharf-habits/none:v1', `${R}/x/y:v1`]);
      assert.equal(missing.code, 1);
      assert.equal(missing.stderr, 'wharf: containers-storage:localhost/wharf-habits/none:v1: no such image\n');
      for (const [text, name] of [['dir:/tmp/image', 'dir:'], ['ftp://example.com/image', 'ftp://'], ['docker-daemon:app:v1', 'docker-daemon:']] as const) {
        const unknown = await user.run(['copy', text, `${R}/x/y:v1`]);
        assert.equal(unknown.code, 1);
        assert.match(unknown.stderr, new RegExp(`unknown transport "${name}" \\(wharf knows docker://, local:, oci:, oci-archive:, docker-archive:, containers-storage:\\)`), unknown.stderr);
      }
    } finally {
      await run('buildah', ['rmi', '-f', built, stored]);
    }
  });
});

describe('wharf login as docker users know it', () => {
  let registry: RegistryUnderTest;
  before(async () => {
    registry = await startWharfUnderTest('htpasswd');
  });
  after(async () => {
    await registry?.stop();
  });

  test('prompts visibly for the username, hides the password, warns that config.json holds it in the clear', async () => {
    const me = cliUser();
    try {
      const session = startOnTerminal(['login', registry.host], me.env);
      await session.waitFor('Username: ');
      session.type(`${registry.username}\r`);
      const typed = session.raw().length;
      await session.waitFor('Password: ', typed);
      session.type(`${registry.password}\r`);
      const { code, raw } = await session.result;
      assert.equal(code, 0, raw);
      const screen = screenOf(raw);
      assert.ok(screen.includes(`Username: ${registry.username}`), screen.join('\n'));
      assert.ok(screen.includes('Password:'), screen.join('\n'));
      assert.ok(!raw.includes(registry.password!), 'the password never reaches the screen');
      const configFile = join(me.dockerConfig, 'config.json');
      assert.ok(screen.includes(`WARNING! Your credentials are stored unencrypted in ${configFile}.`), screen.join('\n'));
      assert.equal(screen.at(-1), 'Login Succeeded');
      assert.ok(readFileSync(configFile, 'utf8').includes(Buffer.from(`${registry.username}:${registry.password}`).toString('base64')));
    } finally {
      me.dispose();
    }
  });

  test('a wrong password says "incorrect username or password", with no hint to run the command that failed', async () => {
    const me = cliUser();
    try {
      const result = await me.run(['login', '-u', registry.username!, '--password-stdin', registry.host], { input: 'not-the-password\n' });
      assert.equal(result.code, 1);
      assert.equal(result.stderr, `wharf: login to ${registry.host} failed: unauthorized: incorrect username or password\n`);
      assert.equal(result.stdout, '');
    } finally {
      me.dispose();
    }
  });
});

describe('wharf pin on references it cannot resolve', () => {
  let registry: RegistryUnderTest;
  let images: TestLayout;
  let work: string;
  let user: CliUser;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'wharf-pin-'));
    images = await writeTestLayout(join(work, 'layout'));
    registry = await startWharfUnderTest('plain');
    user = cliUser();
    await user.ok(['copy', `oci:${images.dir}:small`, `${registry.host}/app/small:v1`]);
  });
  after(async () => {
    user?.dispose();
    await registry?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('variables and unreachable registries fail, naming the reference, and the file is not written unless told to skip them', async () => {
    const R = registry.host;
    const file = join(work, 'compose.yaml');
    const original = `services:\n  app:\n    image: ${R}/app/small:v1\n  db:\n    image: \${DB_IMAGE}\n  gone:\n    image: 127.0.0.1:1/nowhere/app:v1\n`;
    writeFileSync(file, original);
    const failed = await user.run(['pin', file]);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, new RegExp(`${file}:5: \\$\\{DB_IMAGE\\} cannot be resolved: it holds a variable`));
    assert.match(failed.stderr, new RegExp(`${file}:7: 127\\.0\\.0\\.1:1/nowhere/app:v1 cannot be resolved: .*127\\.0\\.0\\.1:1`));
    assert.match(failed.stderr, new RegExp(`${file} was not written\\n$`));
    assert.equal(readFileSync(file, 'utf8'), original, 'not even the reference that resolved was written');

    const check = await user.run(['pin', '--check', file]);
    assert.equal(check.code, 1);
    assert.match(check.stderr, /:3: .* is not pinned to a digest/);
    assert.match(check.stderr, /:5: \$\{DB_IMAGE\} cannot be resolved/);
    assert.match(check.stderr, /:7: 127\.0\.0\.1:1\/nowhere\/app:v1 is not pinned to a digest/);
    assert.equal(readFileSync(file, 'utf8'), original);

    const skipped = await user.ok(['pin', '--skip-unresolvable', file]);
    assert.match(skipped.stderr, /:5: \$\{DB_IMAGE\} skipped: /);
    assert.match(skipped.stderr, /:7: 127\.0\.0\.1:1\/nowhere\/app:v1 skipped: /);
    assert.equal(readFileSync(file, 'utf8'), original.replace(`${R}/app/small:v1`, `${R}/app/small:v1@${images.small.digest}`));
    // Skipping spares the variable; a reference left unpinned still fails the check.
    const recheck = await user.run(['pin', '--check', '--skip-unresolvable', file]);
    assert.equal(recheck.code, 1);
    assert.match(recheck.stderr, /:5: \$\{DB_IMAGE\} skipped: /);
    assert.equal(recheck.stderr.match(/is not pinned/g)?.length, 1, recheck.stderr);

    // A pinned digest is checked against its registry: absent, or not reachable, fails.
    const missing = join(work, 'missing.yaml');
    writeFileSync(missing, `a:\n  image: ${R}/app/small:v1@sha256:${'0'.repeat(64)}\nb:\n  image: 127.0.0.1:1/nowhere/app@sha256:${'1'.repeat(64)}\n`);
    const absent = await user.run(['pin', '--check', missing]);
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, new RegExp(`${missing}:2: .*: no manifest sha256:0{64} in ${R}/app/small`));
    assert.match(absent.stderr, new RegExp(`${missing}:4: 127\\.0\\.0\\.1:1/nowhere/app@sha256:1{64} cannot be checked: `));
  });
});

describe('wharf through HTTP_PROXY, HTTPS_PROXY and NO_PROXY', () => {
  let plain: RegistryUnderTest;
  let tls: RegistryUnderTest;
  let proxy: ForwardProxy;
  let user: CliUser;
  let work: string;
  // Only the proxy knows this name: reaching it proves the request went through the proxy.
  const NAME = 'registry.wharf-proxy-test';
  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'wharf-proxy-'));
    const images = await writeTestLayout(join(work, 'layout'));
    plain = await startWharfUnderTest('plain');
    tls = await startWharfUnderTest('tls');
    proxy = await startForwardProxy([NAME]);
    user = cliUser();
    await user.ok(['copy', `oci:${images.dir}:small`, `${plain.host}/seed/small:v1`]);
    await user.ok(['--ca-cert', tls.caFile!, 'copy', `oci:${images.dir}:small`, `${tls.host}/seed/small:v1`]);
  });
  after(async () => {
    user?.dispose();
    await proxy?.close();
    await plain?.stop();
    await tls?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('plain HTTP goes through HTTP_PROXY unless NO_PROXY names the host', async () => {
    const ref = `${NAME}:${plain.host.split(':')[1]}/seed/small`;
    const direct = await user.run(['--plain-http', 'tags', ref]);
    assert.equal(direct.code, 1, 'the name does not resolve without the proxy');
    const proxied = await user.ok(['--plain-http', 'tags', ref], { env: { HTTP_PROXY: proxy.url } });
    assert.equal(proxied.stdout, 'v1\n');
    assert.ok(proxy.seen.includes(`GET http://${NAME}:${plain.host.split(':')[1]}/v2/seed/small/tags/list`), proxy.seen.join('\n'));
    const before = proxy.seen.length;
    const excluded = await user.run(['--plain-http', 'tags', ref], { env: { http_proxy: proxy.url, NO_PROXY: `localhost,${NAME}` } });
    assert.equal(excluded.code, 1);
    assert.equal(proxy.seen.length, before, 'NO_PROXY kept the request off the proxy');
  });

  test('HTTPS goes through a CONNECT tunnel of HTTPS_PROXY, with TLS end to end', async () => {
    const ref = `${NAME}:${tls.host.split(':')[1]}/seed/small:v1`;
    const earlier = proxy.seen.length;
    const digest = await user.ok(['--insecure', 'digest', ref], { env: { HTTPS_PROXY: proxy.url } });
    assert.match(digest.stdout, /^sha256:[a-f0-9]{64}\n$/);
    assert.ok(proxy.seen.includes(`CONNECT ${NAME}:${tls.host.split(':')[1]}`), proxy.seen.join('\n'));
    assert.ok(!proxy.seen.slice(earlier).some((l) => l.startsWith('GET ')), 'nothing of the TLS traffic is visible to the proxy');
  });

  test('loopback is never proxied, as Go clients never proxy it', async () => {
    const dead = 'http://127.0.0.1:1';
    const result = await user.ok(['tags', `${plain.host}/seed/small`], { env: { HTTP_PROXY: dead, HTTPS_PROXY: dead } });
    assert.equal(result.stdout, 'v1\n');
  });
});
