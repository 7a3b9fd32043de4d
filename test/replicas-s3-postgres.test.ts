import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clientScenarios } from './support/client-scenarios.js';
import { raw } from './support/http.js';
import { OCI_MANIFEST, blob, configBlob, imageManifest, randomBlob } from './support/oci-fixtures.js';
import { writeTestLayout, type TestLayout } from './support/oci-layout.js';
import { pushBlob, putManifest, startUpload, withQuery } from './support/push.js';
import { startReplicaDeployment, type ReplicaDeployment } from './support/replica-deployment.js';
import { background, ok, requireTool, run, waitFor } from './support/tools.js';
import { startReceiver, type WebhookReceiver } from './support/webhook-receiver.js';

/**
 * Three `wharf serve` replicas on S3 (Ceph RADOS Gateway) and PostgreSQL behind HAProxy
 * (deploy/haproxy/haproxy.cfg: round-robin, no sticky sessions). Real clients push and pull
 * through the load balancer; an upload's PATCHes land on different replicas; a replica killed
 * with SIGKILL in the middle of an upload does not stop it; background jobs run once.
 */
let deployment: ReplicaDeployment;
let receiver: WebhookReceiver;
let layout: TestLayout;
let work: string;
let env: NodeJS.ProcessEnv;
let R: string;

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

before(async () => {
  for (const tool of ['skopeo', 'podman', 'ctr', 'containerd']) requireTool(tool);
  receiver = await startReceiver();
  deployment = await startReplicaDeployment({
    replicas: 3,
    extraConfig: `notifications:
  endpoints:
    - name: hook
      url: ${receiver.url}
      timeout: 2s
      backoff: 200ms
`,
    // Recurring jobs, set short so that runs happen during the test.
    storageConfig: `  maintenance:
    uploadpurging:
      enabled: true
      age: 10s
      interval: 1s
  gc:
    enabled: true
    interval: 2s
`,
  });
  R = `${deployment.host}/replicas`;
  work = mkdtempSync(join(tmpdir(), 'wharf-replicas-clients-'));
  layout = writeTestLayout(join(work, 'layout'));
  mkdirSync(join(work, 'home'));
  writeFileSync(join(work, 'auth.json'), '{"auths":{}}');
  env = { ...process.env, HOME: join(work, 'home'), REGISTRY_AUTH_FILE: join(work, 'auth.json'), TMPDIR: work };
});

after(async () => {
  await deployment?.stop();
  await receiver?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

// The wharf client scenarios (pull, push, copy, tag, inspect... as against one `wharf serve` in
// cli-wharf.test.ts), through the load balancer of this file's deployment.
clientScenarios('three replicas behind HAProxy', async () => ({
  host: deployment.host,
  requests: () => deployment.replicas.flatMap((_, i) => deployment.requests(i)),
  logs: () => deployment.output(),
  stop: async () => undefined,
}), { modes: ['plain'] });

/** How many requests matching `path` each replica logged. */
function spread(match: (method: string, path: string) => boolean): number[] {
  return deployment.replicas.map((_, i) => deployment.requests(i).filter((q) => match(q.method, q.path)).length);
}

describe('real clients through the load balancer', () => {
  it('skopeo copies an image and an index in and back out with identical digests; the requests spread over all replicas', async () => {
    await ok('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.dir}:base`, `docker://${R}/base:1`], { env });
    await ok('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout.dir}:multi`, `docker://${R}/multi:1`], { env });
    const back = join(work, 'back');
    await ok('skopeo', ['copy', '--src-tls-verify=false', `docker://${R}/base:1`, `oci:${back}:base`], { env });
    const index = JSON.parse(readFileSync(join(back, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    assert.equal(index.manifests[0]!.digest, layout.base.manifestDigest);
    for (const digest of [layout.base.configDigest, ...layout.base.layerDigests]) {
      assert.equal(sha(readFileSync(join(back, 'blobs', 'sha256', digest.slice(7)))), digest);
    }
    const multi = await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${R}/multi:1`], { env });
    assert.equal(sha(Buffer.from(multi)), layout.multi.indexDigest);
    const perReplica = spread((_, path) => path.startsWith('/v2/replicas/'));
    assert.ok(perReplica.every((n) => n > 0), `every replica served part of the copies: ${perReplica.join(', ')}`);
  });

  it('podman pulls and pushes', async () => {
    const podman = ['--root', join(work, 'podman', 'root'), '--runroot', join(work, 'podman', 'run'), '--tmpdir', join(work, 'podman', 'tmp'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
    await ok('podman', [...podman, 'pull', '--tls-verify=false', `${R}/base:1`], { env });
    const digest = (await ok('podman', [...podman, 'image', 'inspect', '--format', '{{.Digest}}', `${R}/base:1`], { env })).trim();
    assert.equal(digest, layout.base.manifestDigest);
    await ok('podman', [...podman, 'tag', `${R}/base:1`, `${R}/from-podman:1`], { env });
    await ok('podman', [...podman, 'push', '--tls-verify=false', `${R}/from-podman:1`], { env });
    const config = JSON.parse(await ok('skopeo', ['inspect', '--config', '--raw', '--tls-verify=false', `docker://${R}/from-podman:1`], { env })) as { history: unknown[] };
    assert.equal(config.history.length, 5);
  });

  it('ctr pulls an image and an index and pushes them back', async () => {
    const dir = join(work, 'ctrd');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'config.toml'),
      `version = 2\nroot = "${dir}/root"\nstate = "${dir}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${dir}/containerd.sock"\n[ttrpc]\n  address = "${dir}/containerd.sock.ttrpc"\n[debug]\n  address = ""\n[metrics]\n  address = ""\n`,
    );
    const containerd: ChildProcess = background('containerd', ['--config', join(dir, 'config.toml')], { env });
    try {
      const ctrEnv = { ...env, CONTAINERD_ADDRESS: join(dir, 'containerd.sock'), CONTAINERD_NAMESPACE: 'wharf-replicas' };
      await waitFor(async () => (await run('ctr', ['version'], { env: ctrEnv })).code === 0, 'containerd');
      await ok('ctr', ['images', 'pull', '--plain-http', '--snapshotter', 'native', `${R}/base:1`], { env: ctrEnv });
      assert.match(await ok('ctr', ['images', 'ls'], { env: ctrEnv }), new RegExp(`${R}/base:1\\s.*${layout.base.manifestDigest}`));
      await ok('ctr', ['images', 'pull', '--plain-http', '--all-platforms', `${R}/multi:1`], { env: ctrEnv });
      await ok('ctr', ['images', 'tag', `${R}/multi:1`, `${R}/ctr-multi:1`], { env: ctrEnv });
      await ok('ctr', ['images', 'push', '--plain-http', `${R}/ctr-multi:1`], { env: ctrEnv });
      const pushed = await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${R}/ctr-multi:1`], { env });
      assert.equal(sha(Buffer.from(pushed)), layout.multi.indexDigest);
    } finally {
      containerd.kill('SIGTERM');
    }
  });
});

/** PATCHes `data` in chunks of `size` through `url`, from `offset`; returns the last Location. */
async function patchChunks(url: string, location: string, data: Buffer, offset: number, size: number): Promise<string> {
  for (let at = offset; at < data.length; at += size) {
    const chunk = data.subarray(at, Math.min(at + size, data.length));
    const res = await raw(url, 'PATCH', location, {
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${at}-${at + chunk.length - 1}` },
      body: chunk,
    });
    assert.equal(res.status, 202, `PATCH at ${at}: ${res.status} ${res.body}`);
    assert.equal(res.header('range'), `0-${at + chunk.length - 1}`);
    location = res.header('location')!;
  }
  return location;
}

describe('uploads across replicas', () => {
  it('a chunked upload whose PATCHes alternate replicas (S3 parts of 5 MiB) commits with the right digest', async () => {
    const content = randomBlob(11 * 1024 * 1024 + 3);
    const location = await startUpload(deployment.url, 'replicas/chunked');
    const id = location.split('/').at(-1)!.split('?')[0]!;
    const last = await patchChunks(deployment.url, location, content.data, 0, 1024 * 1024 + 512);
    const done = await raw(deployment.url, 'PUT', withQuery(last, `digest=${content.digest}`));
    assert.equal(done.status, 201, `PUT: ${done.body}`);
    const patches = spread((method, path) => method === 'PATCH' && path.includes(id));
    assert.equal(patches.reduce((a, b) => a + b, 0), 11);
    assert.ok(patches.every((n) => n >= 3), `round-robin: each replica took a share of the 11 PATCHes (${patches.join(', ')})`);
    const got = await raw(deployment.url, 'GET', `/v2/replicas/chunked/blobs/${content.digest}`);
    assert.equal(got.status, 200);
    assert.equal(sha(got.body), content.digest);
  });

  it('goes on through another replica when the one receiving a PATCH is killed (SIGKILL) mid-body', async () => {
    const content = randomBlob(8 * 1024 * 1024 + 11);
    const victim = deployment.replicas[1]!;
    const location = await startUpload(deployment.url, 'replicas/killed');
    let next = await patchChunks(deployment.url, location, content.data.subarray(0, 2 * 1024 * 1024), 0, 1024 * 1024);
    // The third chunk goes straight to one replica, which dies half-way through the body.
    const chunk = content.data.subarray(2 * 1024 * 1024, 5 * 1024 * 1024);
    const cut = new Promise<void>((resolve) => {
      const req = request(`${victim.url}${next}`, {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${2 * 1024 * 1024}-${5 * 1024 * 1024 - 1}`, 'Content-Length': chunk.length },
      });
      req.on('error', () => resolve());
      req.on('response', (res) => {
        res.resume();
        resolve();
      });
      req.write(chunk.subarray(0, 1024 * 1024), () => void victim.kill());
    });
    await cut;
    // The client asks where the upload stands (through the load balancer) and resumes from there.
    const status = await raw(deployment.url, 'GET', next);
    assert.equal(status.status, 204, `upload status after the kill: ${status.status} ${status.body}`);
    const range = /^0-(\d+)$/.exec(status.header('range') ?? '');
    assert.ok(range, `Range: ${status.header('range')}`);
    const offset = Number(range[1]) + 1;
    assert.equal(offset, 2 * 1024 * 1024, 'the cut chunk was not taken in part');
    next = await patchChunks(deployment.url, status.header('location') ?? next, content.data, offset, 1024 * 1024);
    const done = await raw(deployment.url, 'PUT', withQuery(next, `digest=${content.digest}`));
    assert.equal(done.status, 201, `PUT: ${done.body}`);
    const got = await raw(deployment.url, 'GET', `/v2/replicas/killed/blobs/${content.digest}`);
    assert.equal(sha(got.body), content.digest);
    // Back to three replicas for what follows.
    await deployment.restart(1);
  });
});

describe('background work runs once across the replicas', () => {
  it('delivers each notification once, whichever replica took the push', async () => {
    const pushed: string[] = [];
    for (let i = 0; i < 4; i += 1) {
      const config = configBlob({ created: `notify ${i}` });
      const layer = blob(`notify layer ${i}`);
      await pushBlob(deployment.url, 'replicas/notify', config);
      await pushBlob(deployment.url, 'replicas/notify', layer);
      const manifest = imageManifest(config, [layer]);
      assert.equal((await putManifest(deployment.url, 'replicas/notify', `t${i}`, manifest, OCI_MANIFEST)).status, 201);
      pushed.push(manifest.digest);
    }
    const manifestPushes = () => receiver.events().filter((e) => e.action === 'push' && e.target?.repository === 'replicas/notify' && e.target?.tag !== undefined);
    await receiver.waitFor(() => manifestPushes().length >= 4);
    // Time for a second deliverer to (wrongly) send them again.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const ids = receiver.events().map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, 'no event delivered twice');
    assert.deepEqual(manifestPushes().map((e) => e.target.digest).sort(), [...pushed].sort());
  });

  it('schedules each recurring job once; an abandoned upload is purged; one replica collects garbage per run', async () => {
    const jobs = await deployment.postgres.sql<{ key: string; n: number }>(deployment.dbname, 'SELECT key, count(*)::int AS n FROM jobs WHERE key IS NOT NULL GROUP BY key');
    assert.ok(jobs.some((j) => j.key === 'uploads.purge'), JSON.stringify(jobs));
    assert.ok(jobs.some((j) => j.key === 'gc.collect'), JSON.stringify(jobs));
    assert.ok(jobs.every((j) => j.n === 1), JSON.stringify(jobs));
    const location = await startUpload(deployment.url, 'replicas/abandoned');
    await waitFor(async () => (await raw(deployment.url, 'GET', location)).status === 404, 'the abandoned upload to be purged', 40_000);
    const lines = (text: string) => text.split('\n').filter((line) => line.startsWith('{'));
    // Either the purge job or a collection (which purges stale uploads too) removed it; one of them, once.
    const purged = lines(deployment.output()).filter((line) => line.includes('purged abandoned uploads')).map((line) => JSON.parse(line) as { sessions: number });
    assert.ok(purged.reduce((sum, line) => sum + line.sessions, 0) <= 1, 'never purged twice');
    // Garbage collection every 2 s: three replicas that each ran it would log about three times as many runs.
    const since = Date.now();
    const runs = () => lines(deployment.output()).filter((line) => line.includes('garbage collection finished') && Date.parse((JSON.parse(line) as { time: string }).time) >= since).length;
    await new Promise((resolve) => setTimeout(resolve, 7000));
    // At least one (a loaded machine slows runs down), and well below the ~10 that three replicas each running it would log.
    assert.ok(runs() >= 1 && runs() <= 5, `about one run per 2 s across all replicas, not one per replica: ${runs()} in 7 s`);
  });
});
