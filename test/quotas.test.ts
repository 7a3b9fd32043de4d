import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../src/config/config.js';
import { parseConfigQuotas } from '../src/registry/quota-rules.js';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { cliUser, type CliUser } from './support/cli.js';
import { errorCode, raw, type RawResponse } from './support/http.js';
import { blob, configBlob, imageManifest, OCI_MANIFEST, randomBlob, type Blob } from './support/oci-fixtures.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';
import { requireTool, run } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const ROOT_PW = 'quota-root-password-1';
const root = { Authorization: basic('root', ROOT_PW) };

/**
 * Sends only a request's head, promising `length` bytes of body that never come, and resolves with
 * the answer: a quota refusal must come before the body is read.
 */
function headOnly(port: number, method: string, path: string, length: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${root.Authorization}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`,
      );
    });
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /^HTTP\/1\.1 (\d+)[^]*?\r\n\r\n([^]*)$/.exec(text);
      const declared = /content-length: (\d+)/i.exec(text);
      if (m && declared && Buffer.byteLength(m[2]!) >= Number(declared[1])) {
        socket.destroy();
        resolve({ status: Number(m[1]), body: m[2]! });
      }
    });
    socket.on('error', reject);
  });
}

async function pushBlob(base: string, repo: string, b: Blob): Promise<RawResponse> {
  return raw(base, 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, { headers: { ...root, 'Content-Type': 'application/octet-stream' }, body: b.data });
}

function putManifest(base: string, repo: string, tag: string, m: Blob): Promise<RawResponse> {
  return raw(base, 'PUT', `/v2/${repo}/manifests/${tag}`, { headers: { ...root, 'Content-Type': OCI_MANIFEST }, body: m.data });
}

function assertDenied(res: RawResponse, message: RegExp): void {
  assert.equal(res.status, 403, res.body.toString());
  assert.equal(errorCode(res), 'DENIED');
  assert.match(res.json().errors[0].message, message);
}

describe('quotas and usage', () => {
  let dir: string;
  let wharf: WharfProcess;
  let user: CliUser;
  let layout: TestLayout;
  const admin = (args: string[]) => user.run(['admin', ...args]);

  before(async () => {
    requireTool('skopeo');
    dir = mkdtempSync(join(tmpdir(), 'wharf-quotas-'));
    writeHtpasswd(join(dir, 'htpasswd'), { root: ROOT_PW });
    writeFileSync(
      join(dir, 'config.yml'),
      `storage:
  delete:
    enabled: true
auth:
  htpasswd:
    realm: quotas
    path: ${join(dir, 'htpasswd')}
  policy:
    admins: [root]
quotas:
  - prefix: team/
    limit: 20KiB
  - repository: solo/app
    limit: 1000
`,
    );
    wharf = await startWharf({ args: [join(dir, 'config.yml')] });
    user = cliUser({ WHARF_REGISTRY: wharf.url, WHARF_USERNAME: 'root', WHARF_PASSWORD: ROOT_PW });
    layout = await writeTestLayout(join(dir, 'layout'));
  });

  after(async () => {
    await wharf?.dispose();
    user?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a monolithic upload over a repository quota is refused with DENIED before its body is read', async () => {
    const res = await headOnly(wharf.port, 'POST', `/v2/solo/app/blobs/uploads/?digest=sha256:${'0'.repeat(64)}`, 5000);
    assert.equal(res.status, 403);
    const error = JSON.parse(res.body).errors[0];
    assert.equal(error.code, 'DENIED');
    assert.equal(error.message, 'repository quota "solo/app" exceeded: limit 1000 B, usage 0 B, this push adds 4.9 KiB');
    assert.deepEqual(error.detail, { quota: 'solo/app', scope: 'repository', limit: 1000, usage: 0, adds: 5000 });
    // Within the limit it is accepted.
    assert.equal((await pushBlob(wharf.url, 'solo/app', blob('x'.repeat(900)))).status, 201);
    assertDenied(await pushBlob(wharf.url, 'solo/app', blob('y'.repeat(101))), /usage 900 B, this push adds 101 B/);
  });

  test('a chunk with Content-Length that would go over is refused before its body; one without, at the commit', async () => {
    const start = await raw(wharf.url, 'POST', '/v2/solo/app/blobs/uploads/', { headers: root });
    assert.equal(start.status, 202);
    const location = start.header('location')!;
    const patched = await headOnly(wharf.port, 'PATCH', location, 200);
    assert.equal(patched.status, 403);
    assert.match(JSON.parse(patched.body).errors[0].message, /^repository quota "solo\/app" exceeded/);
    // Streamed without a length: only the commit can tell, and it refuses, leaving nothing linked.
    const big = randomBlob(300);
    const streamed = await raw(wharf.url, 'PATCH', location, { headers: { ...root, 'Content-Type': 'application/octet-stream' }, body: Readable.from([big.data]) });
    assert.equal(streamed.status, 202, streamed.body.toString());
    assertDenied(await raw(wharf.url, 'PUT', `${location}?digest=${big.digest}`, { headers: root }), /this push adds 300 B/);
    assert.equal((await raw(wharf.url, 'HEAD', `/v2/solo/app/blobs/${big.digest}`, { headers: root })).status, 404);
    // Refused before anything moved: the session stays (a raised quota lets the PUT be retried) until cancelled or purged.
    assert.equal((await raw(wharf.url, 'GET', location, { headers: root })).status, 204);
    assert.equal((await raw(wharf.url, 'DELETE', location, { headers: root })).status, 204);
  });

  test('a last chunk of unknown length is refused at the commit, in the transaction that would link it; the digest can be pushed again later', async () => {
    const start = await raw(wharf.url, 'POST', '/v2/solo/late/blobs/uploads/', { headers: root });
    const location = start.header('location')!;
    await admin(['quota', 'set', 'solo/late', '100']);
    const late = randomBlob(150);
    // Chunked transfer encoding: no Content-Length, so nothing can be said before the bytes are in.
    const res = await raw(wharf.url, 'PUT', `${location}?digest=${late.digest}`, { headers: { ...root, 'Content-Type': 'application/octet-stream' }, body: Readable.from([late.data]) });
    assertDenied(res, /^repository quota "solo\/late" exceeded: limit 100 B, usage 0 B, this push adds 150 B$/);
    assert.equal((await raw(wharf.url, 'HEAD', `/v2/solo/late/blobs/${late.digest}`, { headers: root })).status, 404);
    assert.equal((await raw(wharf.url, 'GET', location, { headers: root })).status, 404, 'the session cannot finish: it is discarded');
    await admin(['quota', 'set', 'solo/late', '1KiB']);
    assert.equal((await pushBlob(wharf.url, 'solo/late', late)).status, 201);
    const pulled = await raw(wharf.url, 'GET', `/v2/solo/late/blobs/${late.digest}`, { headers: root });
    assert.equal(pulled.status, 200);
    assert.deepEqual(pulled.body, late.data);
  });

  test('a namespace quota counts each repository, a shared blob once in each; a mount over it is refused; deletes free usage', async () => {
    const layer = randomBlob(12 * 1024);
    const config = configBlob({ created: 'team' });
    assert.equal((await pushBlob(wharf.url, 'team/a', layer)).status, 201);
    assert.equal((await pushBlob(wharf.url, 'team/a', config)).status, 201);
    const manifest = imageManifest(config, [layer]);
    assert.equal((await putManifest(wharf.url, 'team/a', 'v1', manifest)).status, 201);
    const mount = await raw(wharf.url, 'POST', `/v2/team/b/blobs/uploads/?mount=${layer.digest}&from=team/a`, { headers: root });
    assertDenied(mount, /^namespace quota "team\/" exceeded: limit 20\.0 KiB, usage 12\.\d KiB, this push adds 12\.0 KiB$/);
    // The same blob in another namespace is no business of team/.
    assert.equal((await raw(wharf.url, 'POST', `/v2/other/b/blobs/uploads/?mount=${layer.digest}&from=team/a`, { headers: root })).status, 201);
    assert.equal((await raw(wharf.url, 'DELETE', `/v2/team/a/manifests/${manifest.digest}`, { headers: root })).status, 202);
    assert.equal((await raw(wharf.url, 'DELETE', `/v2/team/a/blobs/${layer.digest}`, { headers: root })).status, 202);
    assert.equal((await raw(wharf.url, 'POST', `/v2/team/b/blobs/uploads/?mount=${layer.digest}&from=other/b`, { headers: root })).status, 201);
  });

  test('a manifest that would go over is refused atomically; quota changes through the CLI apply without a restart', async () => {
    const layer = blob('manifest quota layer');
    const config = configBlob({ created: 'mf' });
    const manifest = imageManifest(config, [layer]);
    const blobs = layer.data.length + config.data.length;
    let r = await admin(['quota', 'set', 'mf/app', String(blobs + manifest.data.length - 1)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^set repository quota "mf\/app" \(api\): limit .+, usage 0 B$/m);
    assert.equal((await pushBlob(wharf.url, 'mf/app', layer)).status, 201);
    assert.equal((await pushBlob(wharf.url, 'mf/app', config)).status, 201);
    assertDenied(await putManifest(wharf.url, 'mf/app', 'v1', manifest), new RegExp(`usage ${blobs} B, this push adds ${manifest.data.length} B`));
    assert.equal((await raw(wharf.url, 'GET', '/v2/mf/app/tags/list', { headers: root })).json().tags.length, 0, 'no tag written');
    r = await admin(['quota', 'set', 'mf/app', '1KiB']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await putManifest(wharf.url, 'mf/app', 'v1', manifest)).status, 201);
    r = await admin(['quota', 'list']);
    assert.match(r.stdout, /^NAME\s+SCOPE\s+SOURCE\s+LIMIT\s+USAGE\s+USED$/m);
    assert.match(r.stdout, /^mf\/app\s+repository\s+api\s+1\.0 KiB\s+/m);
    assert.match(r.stdout, /^team\/\s+namespace\s+config\s+20\.0 KiB\s+/m);
    r = await admin(['quota', 'remove', 'mf/app']);
    assert.equal(r.code, 0, r.stderr);
    r = await admin(['quota', 'remove', 'team/']);
    assert.notEqual(r.code, 0, 'a config-file quota is removed only from the file');
    assert.match(r.stderr, /404 NOT_FOUND/);
    r = await admin(['quota', 'set', 'bad//', '1GiB']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /PARAMETER_INVALID/);
    r = await admin(['quota', 'set', 'ok/', 'lots']);
    assert.match(r.stderr, /INVALID_REQUEST: limit must be a size/);
  });

  test('the admin API: administrators only, limits as sizes or bytes, names with / percent-encoded', async () => {
    assert.equal((await raw(wharf.url, 'GET', '/admin/v1/quotas')).status, 401);
    const body = JSON.stringify({ limit: 4096 });
    let res = await raw(wharf.url, 'PUT', '/admin/v1/quotas/api%2F', { headers: { ...root, 'Content-Type': 'application/json' }, body });
    assert.equal(res.status, 200, res.body.toString());
    assert.deepEqual(res.json(), { name: 'api/', limit: 4096, source: 'api', scope: 'namespace', usage: 0 });
    res = await raw(wharf.url, 'PUT', '/admin/v1/quotas/api%2Fone', { headers: { ...root, 'Content-Type': 'application/json' }, body: JSON.stringify({ limit: '1.5 KiB' }) });
    assert.equal(res.json().limit, 1536);
    assert.equal(errorCode(await raw(wharf.url, 'PUT', '/admin/v1/quotas/api%2Fone', { headers: { ...root, 'Content-Type': 'application/json' }, body: '{}' })), 'INVALID_REQUEST');
    assert.equal((await raw(wharf.url, 'DELETE', '/admin/v1/quotas/api%2Fone', { headers: root })).status, 204);
    assert.equal((await raw(wharf.url, 'DELETE', '/admin/v1/quotas/api%2Fone', { headers: root })).status, 404);
    res = await raw(wharf.url, 'GET', '/admin/v1/usage?prefix=solo%2F', { headers: root });
    assert.deepEqual(res.json().repositories.map((u: { repository: string }) => u.repository).sort(), ['solo/app', 'solo/late']);
  });

  test('wharf admin usage lists repositories largest first with the numbers quotas enforce', async () => {
    await admin(['quota', 'set', 'us/', '1GiB']);
    const small = blob('usage small');
    const large = randomBlob(4000);
    assert.equal((await pushBlob(wharf.url, 'us/small', small)).status, 201);
    assert.equal((await pushBlob(wharf.url, 'us/large', large)).status, 201);
    assert.equal((await pushBlob(wharf.url, 'us/large', small)).status, 201);
    let r = await admin(['usage', 'us/', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).repositories, [
      { repository: 'us/large', bytes: 4000 + small.data.length, blobs: 2, manifests: 0 },
      { repository: 'us/small', bytes: small.data.length, blobs: 1, manifests: 0 },
    ]);
    r = await admin(['usage', 'us/']);
    assert.match(r.stdout, /^REPOSITORY\s+USAGE\s+BYTES\s+BLOBS\s+MANIFESTS\n/);
    assert.match(r.stdout, new RegExp(`^us/large\\s+3\\.9 KiB\\s+${4000 + small.data.length}\\s+2\\s+0\\nus/small\\s+`, 'm'));
    const quotas = JSON.parse((await admin(['quota', 'list', '--json'])).stdout).quotas as Array<{ name: string; usage: number }>;
    assert.equal(quotas.find((q) => q.name === 'us/')!.usage, 4000 + 2 * small.data.length, 'the namespace quota sees the same numbers');
    r = await admin(['usage']);
    assert.match(r.stdout, /^us\/large\s/m);
    assert.match(r.stdout, /^team\/a\s/m);
  });

  test('skopeo pushing over a quota fails with the quota named', async () => {
    let r = await admin(['quota', 'set', 'sk/', '100']);
    assert.equal(r.code, 0, r.stderr);
    const push = await run('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `root:${ROOT_PW}`, `oci:${layout.dir}:small`, `docker://${wharf.host}/sk/small:1`]);
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /denied: namespace quota \\?"sk\/\\?" exceeded: limit 100 B, usage \d+ B, this push adds/);
    r = await admin(['quota', 'set', 'sk/', '100MiB']);
    assert.equal(r.code, 0, r.stderr);
    const again = await run('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `root:${ROOT_PW}`, `oci:${layout.dir}:small`, `docker://${wharf.host}/sk/small:1`]);
    assert.equal(again.code, 0, again.stderr);
  });
});

describe('quotas in the configuration file', () => {
  test('the quotas key is known: no warning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-quota-config-'));
    try {
      writeFileSync(join(dir, 'config.yml'), 'quotas:\n  - prefix: team/\n    limit: 1GiB\n');
      const { config, warnings } = loadConfig({ file: join(dir, 'config.yml'), env: {} });
      assert.deepEqual(warnings, []);
      assert.deepEqual(parseConfigQuotas(config.quotas), [{ name: 'team/', limit: 2 ** 30 }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });


  test('an invalid entry stops the server with the entry named', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-quota-config-'));
    try {
      writeFileSync(join(dir, 'config.yml'), 'quotas:\n  - prefix: team\n    limit: 1GiB\n');
      await assert.rejects(startWharf({ args: [join(dir, 'config.yml')] }), /quotas\[0\]\.prefix: \\?"team\\?" must be a repository-name prefix ending in \//);
      writeFileSync(join(dir, 'config.yml'), 'quotas:\n  - repository: team/app\n    limit: ten\n');
      await assert.rejects(startWharf({ args: [join(dir, 'config.yml')] }), /quotas\[0\]\.limit: \\?"ten\\?" is not a size/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
