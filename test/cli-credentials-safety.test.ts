import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cliUser, type CliUser } from './support/cli.js';
import { startFaultProxy, type FaultProxy } from './support/fault-proxy.js';
import { startReferenceRegistry, type ReferenceRegistry } from './support/reference-registry.js';
import { writeTestLayout, type TestLayout } from './support/test-images.js';

describe('credentials stay where they belong', () => {
  let registry: ReferenceRegistry;
  let proxy: FaultProxy;
  let images: TestLayout;
  let user: CliUser;
  let work: string;
  /** A second loopback host (127.0.0.2) serving blob bytes, as object storage behind a redirect. */
  let blobHost: Server;
  let blobHostPort: number;
  const blobHostSaw: IncomingHttpHeaders[] = [];

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'wharf-cli-safety-'));
    images = await writeTestLayout(join(work, 'layout'));
    registry = await startReferenceRegistry({ mode: 'htpasswd' });
    proxy = await startFaultProxy(registry.host);
    user = cliUser();
    blobHost = createServer((req, res) => {
      blobHostSaw.push(req.headers);
      const digest = (req.url ?? '').split('/').pop() ?? '';
      try {
        res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(readFileSync(join(images.dir, 'blobs', 'sha256', digest.replace('sha256:', ''))));
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => blobHost.listen(0, '127.0.0.2', resolve));
    blobHostPort = (blobHost.address() as { port: number }).port;
    for (const host of [registry.host, proxy.host]) {
      await user.ok(['login', host, '-u', registry.username!, '--password-stdin'], { input: registry.password! });
    }
    await user.ok(['copy', `oci:${images.dir}:small`, `${registry.host}/private/small:v1`]);
  });

  after(async () => {
    user?.dispose();
    await proxy?.close();
    await registry?.stop();
    await new Promise<void>((resolve) => (blobHost ? blobHost.close(() => resolve()) : resolve()));
    rmSync(work, { recursive: true, force: true });
  });

  test('a redirect to another host does not carry the Authorization header', async () => {
    const layer = images.small.layers![0]!;
    proxy.redirectNext(new RegExp(`/blobs/${layer.digest}$`), `http://127.0.0.2:${blobHostPort}/storage/${layer.digest}`);
    const pull = await user.ok(['pull', `${proxy.host}/private/small:v1`]);
    assert.match(pull.stdout, new RegExp(`Digest: ${images.small.digest}`));
    assert.equal(blobHostSaw.length, 1, 'the layer was fetched from the redirect target');
    assert.equal(blobHostSaw[0]!.authorization, undefined);
    const toRegistry = proxy.requests.filter((r) => r.path.startsWith('/v2/private/'));
    assert.ok(toRegistry.every((r) => typeof r.headers.authorization === 'string' && r.headers.authorization.startsWith('Basic ')), 'the registry itself got credentials');
  });

  test('credentials are never sent over plain HTTP to a host that is not loopback', async () => {
    // 0.0.0.0 reaches this machine but is not a loopback name: to wharf it is a remote host.
    const remoteName = registry.host.replace('127.0.0.1', '0.0.0.0');
    const config = JSON.parse(readFileSync(join(user.dockerConfig, 'config.json'), 'utf8')) as { auths: Record<string, unknown> };
    config.auths[remoteName] = config.auths[registry.host];
    writeFileSync(join(user.dockerConfig, 'config.json'), JSON.stringify(config));
    const plain = await user.run(['--plain-http', 'digest', `${remoteName}/private/small:v1`]);
    assert.equal(plain.code, 1);
    assert.match(plain.stderr, /refusing to send credentials to 0\.0\.0\.0:\d+ over plain HTTP/);
    // Without --plain-http a non-loopback host gets HTTPS only: no silent fall back to HTTP.
    const https = await user.run(['digest', `${remoteName}/private/small:v1`]);
    assert.equal(https.code, 1);
    assert.match(https.stderr, /cannot reach 0\.0\.0\.0:\d+/);
    // The same registry by its loopback name falls back to plain HTTP and works, as docker does.
    const loopback = await user.ok(['digest', `${registry.host}/private/small:v1`]);
    assert.equal(loopback.stdout.trim(), images.small.digest);
  });
});
