import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { raw } from './support/http.js';
import { blob, configBlob, imageManifest, OCI_MANIFEST } from './support/oci-fixtures.js';
import { seededBytes, writeTestLayout, type TestLayout } from './support/oci-layout.js';
import { startS3Server, type S3Server } from './support/rgw-server.js';
import { ok, requireTool, run } from './support/tools.js';
import { startWharf, WHARF_BIN, type WharfProcess } from './support/wharf-process.js';

/**
 * Wharf on S3 (a real Ceph RADOS Gateway): two `wharf serve` processes over one bucket and one
 * metadata directory (redirecting blob GETs to presigned URLs, registry:2's default), and a third
 * that streams blobs through (`storage.redirect.disable: true`). Real clients push and pull; an
 * upload's chunks alternate between the two processes, and goes on after one is killed.
 */
let s3: S3Server;
let bucket: string;
let client: S3Client;
let work: string;
let layout: TestLayout;
let env: NodeJS.ProcessEnv;
let first: WharfProcess;
let second: WharfProcess;
let streaming: WharfProcess;
let redirectingConfig: string;
let sharedData: string;

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function s3Config(name: string, rootDirectory: string, extra: string[] = []): string {
  const path = join(work, `${name}.yml`);
  const lines = [
    'version: 0.1',
    'storage:',
    '  s3:',
    `    bucket: ${bucket}`,
    `    regionendpoint: ${s3.endpoint}`,
    '    forcepathstyle: true',
    `    accesskey: ${s3.accessKey}`,
    `    secretkey: ${s3.secretKey}`,
    `    rootdirectory: ${rootDirectory}`,
    '    chunksize: 5242880',
    '  delete:',
    '    enabled: true',
    '  gc:',
    '    delay: 0s',
    ...extra,
    'server:',
    '  workers: 1',
  ];
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

async function objectKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
    for (const object of page.Contents ?? []) keys.push(object.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

before(async () => {
  for (const tool of ['skopeo', 'podman']) requireTool(tool);
  s3 = await startS3Server();
  bucket = await s3.createBucket('wharf-e2e');
  client = new S3Client({ region: s3.region, endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey } });
  work = mkdtempSync(join(tmpdir(), 'wharf-s3-e2e-'));
  layout = writeTestLayout(join(work, 'layout'));
  mkdirSync(join(work, 'home'));
  writeFileSync(join(work, 'auth.json'), '{"auths":{}}');
  env = { ...process.env, HOME: join(work, 'home'), REGISTRY_AUTH_FILE: join(work, 'auth.json'), TMPDIR: work };
  sharedData = join(work, 'shared-data');
  redirectingConfig = s3Config('redirecting', 'replicated');
  first = await startWharf({ args: [redirectingConfig], dataDir: sharedData });
  second = await startWharf({ args: [redirectingConfig], dataDir: sharedData });
  streaming = await startWharf({ args: [s3Config('streaming', '/streaming/', ['  redirect:', '    disable: true'])] });
});

after(async () => {
  await Promise.all([first?.dispose(), second?.dispose(), streaming?.dispose()]);
  client?.destroy();
  await s3?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('Wharf on S3 with redirects (registry:2 default)', () => {
  it('skopeo pushes to one process and pulls from the other, following the redirects to the store', async () => {
    await ok('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.dir}:base`, `docker://${first.host}/s3/base:1`], { env });
    const back = join(work, 'back');
    await ok('skopeo', ['copy', '--src-tls-verify=false', `docker://${second.host}/s3/base:1`, `oci:${back}:base`], { env });
    const index = JSON.parse(readFileSync(join(back, 'index.json'), 'utf8'));
    assert.equal(index.manifests[0].digest, layout.base.manifestDigest);
    for (const digest of [layout.base.configDigest, ...layout.base.layerDigests]) {
      assert.equal(sha(readFileSync(join(back, 'blobs', 'sha256', digest.slice(7)))), digest);
    }
    // The blobs are in the bucket under the root directory, content-addressed; no upload is left.
    const keys = await objectKeys('replicated/');
    for (const digest of layout.base.layerDigests) assert.ok(keys.includes(`replicated/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`), keys.join('\n'));
    assert.deepEqual(keys.filter((key) => key.startsWith('replicated/uploads/')), []);
  });

  it('a blob GET answers 307 to a presigned URL that a plain HTTP client follows, with Range', async () => {
    const digest = layout.base.layerDigests[2]!;
    const expected = readFileSync(join(layout.dir, 'blobs', 'sha256', digest.slice(7)));
    const res = await raw(first.url, 'GET', `/v2/s3/base/blobs/${digest}`);
    assert.equal(res.status, 307);
    assert.equal(res.header('docker-content-digest'), digest);
    const location = res.header('location')!;
    assert.match(location, new RegExp(`^${s3.endpoint}/${bucket}/replicated/blobs/sha256/`));
    const whole = await fetch(location);
    assert.equal(whole.status, 200);
    assert.equal(sha(Buffer.from(await whole.arrayBuffer())), digest);
    const ranged = await fetch(location, { headers: { Range: 'bytes=1000-1999' } });
    assert.equal(ranged.status, 206);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(expected.subarray(1000, 2000)));
    // Followed automatically, as registry clients do; HEAD is answered by Wharf itself.
    const followed = await fetch(`${first.url}/v2/s3/base/blobs/${digest}`, { headers: { Range: 'bytes=-10' } });
    assert.equal(followed.status, 206);
    assert.ok(Buffer.from(await followed.arrayBuffer()).equals(expected.subarray(expected.length - 10)));
    const head = await raw(first.url, 'HEAD', `/v2/s3/base/blobs/${digest}`);
    assert.equal(head.status, 200);
    assert.equal(head.header('content-length'), String(expected.length));
    // An unknown blob is still an OCI error, not a redirect.
    const missing = await raw(first.url, 'GET', `/v2/s3/base/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(missing.status, 404);
    assert.equal(missing.json().errors[0].code, 'BLOB_UNKNOWN');
  });

  it('podman pulls through the redirects', async () => {
    const podman = ['--root', join(work, 'podman', 'root'), '--runroot', join(work, 'podman', 'run'), '--tmpdir', join(work, 'podman', 'tmp'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
    await ok('podman', [...podman, 'pull', '--tls-verify=false', `${second.host}/s3/base:1`], { env });
    const digest = (await ok('podman', [...podman, 'image', 'inspect', '--format', '{{.Digest}}', `${second.host}/s3/base:1`], { env })).trim();
    assert.equal(digest, layout.base.manifestDigest);
  });

  it('a chunked upload whose PATCHes alternate between the two processes, one of them killed midway, completes on the other', async () => {
    // Chunks smaller and larger than an S3 part, so that the commit copies some and re-sends others.
    const chunks = [seededBytes(6 * 1024 * 1024, 1), seededBytes(300 * 1024, 2), seededBytes(5 * 1024 * 1024 + 17, 3), seededBytes(64 * 1024, 4), seededBytes(2 * 1024 * 1024, 5)];
    const whole = Buffer.concat(chunks);
    const digest = sha(whole);
    const started = await raw(first.url, 'POST', '/v2/s3/chunked/blobs/uploads/');
    assert.equal(started.status, 202);
    let location = started.header('location')!;
    let offset = 0;
    for (const [i, chunk] of chunks.entries()) {
      if (i === 3) await first.kill();
      const target = i % 2 === 1 || i >= 3 ? second : first;
      const res = await raw(target.url, 'PATCH', location, {
        headers: { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
      assert.equal(res.status, 202, `PATCH ${i} on ${target.host}: ${res.status} ${res.body}`);
      offset += chunk.length;
      assert.equal(res.header('range'), `0-${offset - 1}`);
      location = res.header('location')!;
    }
    const status = await raw(second.url, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.header('range'), `0-${offset - 1}`);
    const sep = location.includes('?') ? '&' : '?';
    const put = await raw(second.url, 'PUT', `${location}${sep}digest=${digest}`);
    assert.equal(put.status, 201, `${put.status} ${put.body}`);
    const config = configBlob({ created: 'chunked' });
    const pushedConfig = await raw(second.url, 'POST', `/v2/s3/chunked/blobs/uploads/?digest=${config.digest}`, { headers: { 'Content-Type': 'application/octet-stream' }, body: config.data });
    assert.equal(pushedConfig.status, 201, 'monolithic upload');
    const manifest = imageManifest(config, [blob(whole)]);
    const tagged = await raw(second.url, 'PUT', '/v2/s3/chunked/manifests/1', { headers: { 'Content-Type': OCI_MANIFEST }, body: manifest.data });
    assert.equal(tagged.status, 201, `${tagged.status} ${tagged.body}`);
    const pulled = await fetch(`${second.url}/v2/s3/chunked/blobs/${digest}`);
    assert.equal(pulled.status, 200);
    assert.equal(sha(Buffer.from(await pulled.arrayBuffer())), digest);
    // The first process comes back over the same bucket and metadata and serves it too.
    first = await startWharf({ args: [redirectingConfig], dataDir: sharedData });
    assert.equal((await raw(first.url, 'HEAD', `/v2/s3/chunked/blobs/${digest}`)).status, 200);
  });
});

describe('Wharf on S3: health and start', () => {
  it('/readyz checks the bucket', async () => {
    const res = await raw(second.url, 'GET', '/readyz');
    assert.equal(res.status, 200);
    assert.equal(res.json().checks.storage, 'ok');
  });

  it('a bucket that does not exist stops the start with one line naming it', async () => {
    const config = s3Config('missing-bucket', 'x');
    writeFileSync(config, readFileSync(config, 'utf8').replace(`bucket: ${bucket}`, 'bucket: no-such-bucket'));
    const result = await run(process.execPath, [WHARF_BIN, 'serve', config, '--addr', '127.0.0.1:0', '--data', join(work, 'missing-bucket-data')], { env, timeoutMs: 30_000 });
    assert.notEqual(result.code, 0);
    assert.match(result.stdout + result.stderr, /storage\.s3: cannot list bucket no-such-bucket at http:\/\/127\.0\.0\.1:\d+: the bucket does not exist/);
  });
});

describe('Wharf on S3 streaming blobs through (storage.redirect.disable: true)', () => {
  it('skopeo pushes and pulls; GETs answer 200 and 206 from Wharf itself', async () => {
    await ok('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.dir}:base`, `docker://${streaming.host}/s3/base:1`], { env });
    const back = join(work, 'back-streaming');
    await ok('skopeo', ['copy', '--src-tls-verify=false', `docker://${streaming.host}/s3/base:1`, `oci:${back}:base`], { env });
    assert.equal(JSON.parse(readFileSync(join(back, 'index.json'), 'utf8')).manifests[0].digest, layout.base.manifestDigest);
    const digest = layout.base.layerDigests[2]!;
    const expected = readFileSync(join(layout.dir, 'blobs', 'sha256', digest.slice(7)));
    const whole = await raw(streaming.url, 'GET', `/v2/s3/base/blobs/${digest}`);
    assert.equal(whole.status, 200);
    assert.equal(sha(whole.body), digest);
    const ranged = await raw(streaming.url, 'GET', `/v2/s3/base/blobs/${digest}`, { headers: { Range: `bytes=${expected.length - 100}-` } });
    assert.equal(ranged.status, 206);
    assert.ok(ranged.body.equals(expected.subarray(expected.length - 100)));
    assert.equal(ranged.header('content-range'), `bytes ${expected.length - 100}-${expected.length - 1}/${expected.length}`);
  });

  it('garbage collection deletes unreferenced blobs from the bucket', async () => {
    const layer = blob(`to be collected ${Date.now()}`);
    const config = configBlob({ created: 'collected' });
    for (const b of [layer, config]) {
      const res = await raw(streaming.url, 'POST', `/v2/s3/gc/blobs/uploads/?digest=${b.digest}`, { headers: { 'Content-Type': 'application/octet-stream' }, body: b.data });
      assert.equal(res.status, 201);
    }
    const manifest = imageManifest(config, [layer]);
    assert.equal((await raw(streaming.url, 'PUT', '/v2/s3/gc/manifests/1', { headers: { 'Content-Type': OCI_MANIFEST }, body: manifest.data })).status, 201);
    const key = `streaming/blobs/sha256/${layer.digest.slice(7, 9)}/${layer.digest.slice(7)}`;
    assert.ok((await objectKeys('streaming/blobs/')).includes(key));
    assert.equal((await raw(streaming.url, 'DELETE', `/v2/s3/gc/manifests/${manifest.digest}`)).status, 202);
    const configFile = join(work, 'streaming.yml');
    for (let run = 0; run < 3 && (await objectKeys('streaming/blobs/')).includes(key); run += 1) {
      await ok(process.execPath, [WHARF_BIN, 'garbage-collect', configFile, '--data', streaming.dataDir], { env });
    }
    assert.ok(!(await objectKeys('streaming/blobs/')).includes(key), 'the unreferenced layer is gone from the bucket');
    const kept = layout.base.layerDigests[0]!;
    assert.ok((await objectKeys('streaming/blobs/')).includes(`streaming/blobs/sha256/${kept.slice(7, 9)}/${kept.slice(7)}`), 'referenced blobs stay');
  });
});
