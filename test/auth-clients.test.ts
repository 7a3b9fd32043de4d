import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { SecretWatch, makeCertificates, writeHtpasswd, type TestCertificates } from './support/auth-fixtures.js';
import { sha256 } from './support/oci-fixtures.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

/**
 * Real clients against an HTTPS registry with htpasswd, and against the built-in token issuer:
 * skopeo and podman (login, --creds, --cert-dir, certs.d) and containerd's ctr with a hosts.toml.
 */

const watch = new SecretWatch();
const PASSWORD = watch.credentials('builder', 'builder-password-1');
const work = mkdtempSync(join(tmpdir(), 'wharf-clients-'));
after(async () => {
  await watch.dispose();
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  output: string;
}

function run(command: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(command, args, { env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

async function ok(command: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await run(command, args, env);
  assert.equal(r.code, 0, `${command} ${args.slice(0, 3).join(' ')} failed:\n${r.output.slice(-2000)}`);
  return r.output;
}

/** A one-layer OCI image layout with a real gzip tar layer, so podman and ctr can unpack it. */
async function buildLayout(dir: string): Promise<string> {
  const blobs = join(dir, 'blobs', 'sha256');
  mkdirSync(join(dir, 'content'), { recursive: true });
  mkdirSync(blobs, { recursive: true });
  writeFileSync(join(dir, 'content', 'hello.txt'), 'hello from wharf\n');
  await ok('tar', ['--sort=name', '--mtime=2020-01-01', '--owner=0', '--group=0', '-C', join(dir, 'content'), '-cf', join(dir, 'layer.tar'), 'hello.txt']);
  await ok('gzip', ['-n', '-f', join(dir, 'layer.tar')]);
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

describe('real clients over HTTPS with htpasswd', () => {
  let certs: TestCertificates;
  let wharf: WharfProcess;
  let layout: string;
  let digest: string;
  let authFile: string;
  let host: string;

  before(async () => {
    certs = makeCertificates(join(work, 'certs'));
    mkdirSync(join(work, 'cadir'));
    copyFileSync(certs.caCert, join(work, 'cadir', 'ca.crt'));
    writeHtpasswd(join(work, 'htpasswd'), { builder: PASSWORD });
    wharf = watch.server(
      await startWharf({
        tls: true,
        args: ['--delete'],
        env: {
          REGISTRY_HTTP_TLS_CERTIFICATE: certs.serverCert,
          REGISTRY_HTTP_TLS_KEY: certs.serverKey,
          REGISTRY_AUTH: 'htpasswd',
          REGISTRY_AUTH_HTPASSWD_REALM: 'clients',
          REGISTRY_AUTH_HTPASSWD_PATH: join(work, 'htpasswd'),
        },
      }),
    );
    host = wharf.host;
    layout = join(work, 'layout');
    digest = await buildLayout(layout);
    authFile = join(work, 'auth.json');
    writeFileSync(authFile, '{"auths":{}}');
  });

  test('skopeo login with --cert-dir, push with the stored login, and --creds', async () => {
    const bad = await run('skopeo', ['login', '--cert-dir', join(work, 'cadir'), '--authfile', join(work, 'bad.json'), '-u', 'builder', '-p', 'not-the-password', host]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.output, /401|unauthorized|invalid username/i);
    await ok('skopeo', ['login', '--cert-dir', join(work, 'cadir'), '--authfile', authFile, '-u', 'builder', '-p', PASSWORD, host]);
    await ok('skopeo', ['copy', '--dest-cert-dir', join(work, 'cadir'), '--authfile', authFile, `oci:${layout}:hello`, `docker://${host}/team/hello:1`]);
    const inspected = JSON.parse(await ok('skopeo', ['inspect', '--cert-dir', join(work, 'cadir'), '--creds', `builder:${PASSWORD}`, `docker://${host}/team/hello:1`]));
    assert.equal(inspected.Digest, digest);
    const anonymous = await run('skopeo', ['inspect', '--cert-dir', join(work, 'cadir'), '--no-creds', `docker://${host}/team/hello:1`]);
    assert.notEqual(anonymous.code, 0);
    assert.match(anonymous.output, /401|unauthorized|authentication required/i);
    const untrusted = await run('skopeo', ['inspect', '--creds', `builder:${PASSWORD}`, `docker://${host}/team/hello:1`], { HOME: join(work, 'empty-home') });
    assert.notEqual(untrusted.code, 0);
    assert.match(untrusted.output, /x509|certificate/i);
  });

  test('podman login and pull trusting the CA through certs.d, and pull with --creds', async () => {
    const home = join(work, 'podman-home');
    mkdirSync(join(home, '.config', 'containers', 'certs.d', host), { recursive: true });
    copyFileSync(certs.caCert, join(home, '.config', 'containers', 'certs.d', host, 'ca.crt'));
    const storage = ['--root', join(work, 'podman', 'root'), '--runroot', join(work, 'podman', 'run'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
    const env = { HOME: home, REGISTRY_AUTH_FILE: join(work, 'podman-auth.json') };
    writeFileSync(env.REGISTRY_AUTH_FILE, '{"auths":{}}');
    await ok('podman', [...storage, 'login', '-u', 'builder', '-p', PASSWORD, host], env);
    await ok('podman', [...storage, 'pull', `${host}/team/hello:1`], env);
    const id = await ok('podman', [...storage, 'image', 'inspect', '--format', '{{.Digest}}', `${host}/team/hello:1`], env);
    assert.equal(id.trim(), digest);
    await ok('podman', [...storage, 'tag', `${host}/team/hello:1`, `${host}/team/hello:2`], env);
    await ok('podman', [...storage, 'push', `${host}/team/hello:2`], env);
    await ok('podman', [...storage, 'logout', host], env);
    await ok('podman', [...storage, 'pull', '--creds', `builder:${PASSWORD}`, `${host}/team/hello:2`], env);
  });

  test('ctr pulls and pushes with a hosts.toml naming the CA', async () => {
    const root = join(work, 'ctrd');
    mkdirSync(root, { recursive: true });
    const socket = join(root, 'containerd.sock');
    writeFileSync(
      join(root, 'config.toml'),
      `version = 2\nroot = "${root}/root"\nstate = "${root}/state"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${socket}"\n[ttrpc]\n  address = "${socket}.ttrpc"\n`,
    );
    const containerd: ChildProcess = spawn('containerd', ['--config', join(root, 'config.toml')], { stdio: 'ignore' });
    try {
      const env = { CONTAINERD_ADDRESS: socket, CONTAINERD_NAMESPACE: 'wharf-test' };
      let up = false;
      for (let i = 0; i < 50 && !up; i += 1) {
        up = (await run('ctr', ['version'], env)).code === 0;
        if (!up) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(up, 'containerd did not start');
      const hosts = join(work, 'hosts', host);
      mkdirSync(hosts, { recursive: true });
      writeFileSync(join(hosts, 'hosts.toml'), `server = "https://${host}"\n[host."https://${host}"]\n  capabilities = ["pull", "resolve", "push"]\n  ca = "${certs.caCert}"\n`);
      const net = ['--hosts-dir', join(work, 'hosts'), '--user', `builder:${PASSWORD}`];
      await ok('ctr', ['images', 'pull', ...net, '--snapshotter', 'native', `${host}/team/hello:1`], env);
      const list = await ok('ctr', ['images', 'ls'], env);
      assert.match(list, new RegExp(`${host}/team/hello:1 .*${digest}`));
      await ok('ctr', ['images', 'tag', `${host}/team/hello:1`, `${host}/team/ctr:1`], env);
      await ok('ctr', ['images', 'push', ...net, `${host}/team/ctr:1`], env);
      const denied = await run('ctr', ['images', 'pull', '--hosts-dir', join(work, 'hosts'), '--user', 'builder:wrong-password', `${host}/team/hello:1`], env);
      assert.notEqual(denied.code, 0);
    } finally {
      containerd.kill('SIGTERM');
      await new Promise((r) => containerd.once('exit', r));
    }
  });
});

describe('real clients with the built-in token issuer', () => {
  test('skopeo follows the Bearer challenge with --creds, and pulls a public repository anonymously', async () => {
    writeHtpasswd(join(work, 'htpasswd-token'), { builder: PASSWORD });
    writeFileSync(
      join(work, 'token.yml'),
      `auth:\n  htpasswd: { path: ${join(work, 'htpasswd-token')} }\n  token: { service: wharf-clients }\n  policy:\n    public: [public/*]\n    rules:\n      - { subject: user:builder, repository: "**", actions: [pull, push] }\n`,
    );
    const wharf = watch.server(await startWharf({ args: [join(work, 'token.yml')] }));
    const layout = join(work, 'layout-token');
    const digest = await buildLayout(layout);
    const push = await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:hello`, `docker://${wharf.host}/public/hello:1`]);
    assert.notEqual(push.code, 0, 'anonymous push must fail');
    await ok('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `builder:${PASSWORD}`, `oci:${layout}:hello`, `docker://${wharf.host}/public/hello:1`]);
    await ok('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', `builder:${PASSWORD}`, `oci:${layout}:hello`, `docker://${wharf.host}/private/hello:1`]);
    const anonymous = JSON.parse(await ok('skopeo', ['inspect', '--tls-verify=false', '--no-creds', `docker://${wharf.host}/public/hello:1`]));
    assert.equal(anonymous.Digest, digest);
    const hidden = await run('skopeo', ['inspect', '--tls-verify=false', '--no-creds', `docker://${wharf.host}/private/hello:1`]);
    assert.notEqual(hidden.code, 0);
    assert.match(hidden.output, /401|unauthorized|authentication required/i);
    await wharf.stop();
  });
});

test('no password of this suite appears in any log it wrote', () => {
  assert.ok(watch.sources() >= 2);
  assert.deepEqual(watch.leaks(), []);
});
