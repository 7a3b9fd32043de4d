import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basic, writeHtpasswd } from './support/auth-fixtures.js';
import { cliUser, type CliUser } from './support/cli.js';
import { errorCode, raw } from './support/http.js';
import { sendJson, startLoopbackServer, type LoopbackServer } from './support/loopback-server.js';
import { osvFixtures, writeOsvDirectory, writeOsvZip } from './support/osv-fixtures.js';
import { DEBIAN_IMAGE_FILES, gzip, layerTar, writeScanLayout } from './support/scan-images.js';
import { waitFor } from './support/tools.js';
import { startWharf, type WharfProcess } from './support/wharf-process.js';

const SBOM = 'application/vnd.cyclonedx+json';
const REPORT = 'application/vnd.wharf.vulnerability-report+json';
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';

/**
 * The registry scans what is pushed (in the background), attaches the SBOM and the report as
 * referrers, rescans only what a database import affects, refuses pulls that a policy forbids,
 * and asks an external scanner (Harbor's Pluggable Scanner API) for more findings.
 */
describe('scanning inside the registry', () => {
  const work = mkdtempSync(join(tmpdir(), 'wharf-scan-registry-'));
  const auth = { Authorization: basic('admin', 'secret') };
  let wharf: WharfProcess;
  let adapter: LoopbackServer;
  let user: CliUser;
  let config: string;
  const digests: Record<string, string> = {};

  const manifestDigest = async (repository: string, tag: string) => {
    const res = await raw(wharf.url, 'HEAD', `/v2/${repository}/manifests/${tag}`, { headers: { ...auth, Accept: ACCEPT } });
    return res.header('docker-content-digest')!;
  };
  const referrers = async (repository: string, digest: string, artifactType: string) => {
    const res = await raw(wharf.url, 'GET', `/v2/${repository}/referrers/${digest}?artifactType=${encodeURIComponent(artifactType)}`, { headers: auth });
    assert.equal(res.status, 200);
    return res.json<{ manifests: Array<{ digest: string; artifactType: string }> }>().manifests;
  };
  const artifactContent = async (repository: string, digest: string) => {
    const manifest = (await raw(wharf.url, 'GET', `/v2/${repository}/manifests/${digest}`, { headers: { ...auth, Accept: ACCEPT } })).json<{ layers: Array<{ digest: string }>; subject: { digest: string } }>();
    const blob = await raw(wharf.url, 'GET', `/v2/${repository}/blobs/${manifest.layers[0]!.digest}`, { headers: auth });
    return { manifest, content: blob.json<Record<string, any>>() };
  };
  const push = async (name: string, platforms: Parameters<typeof writeScanLayout>[2], target: string) => {
    const layout = join(work, `layout-${name}`);
    writeScanLayout(layout, name, platforms);
    await user.ok(['--plain-http', 'copy', `oci:${layout}:${name}`, `${wharf.host}/${target}`]);
  };

  before(async () => {
    // A fake scanner adapter: Harbor's Pluggable Scanner API v1.1, answering "not ready" once.
    const polled = new Set<string>();
    adapter = await startLoopbackServer((req, res) => {
      if (req.method === 'GET' && req.url === '/api/v1/metadata') {
        return sendJson(res, 200, {
          scanner: { name: 'Fake', vendor: 'Wharf tests', version: '1.0' },
          capabilities: [{ consumes_mime_types: ['application/vnd.oci.image.manifest.v1+json'], produces_mime_types: ['application/vnd.security.vulnerability.report; version=1.1'] }],
        });
      }
      if (req.method === 'POST' && req.url === '/api/v1/scan') {
        const body = JSON.parse(req.body.toString()) as { artifact: { digest: string } };
        return sendJson(res, 202, { id: `scan-${body.artifact.digest.slice(7, 19)}-${Math.random().toString(36).slice(2)}` });
      }
      const m = /^\/api\/v1\/scan\/([^/]+)\/report$/.exec(req.url);
      if (req.method === 'GET' && m) {
        if (!polled.has(m[1]!)) {
          polled.add(m[1]!);
          res.writeHead(302, { 'Refresh-After': '0.1', Location: req.url }).end();
          return;
        }
        return sendJson(res, 200, {
          generated_at: new Date().toISOString(),
          severity: 'Low',
          vulnerabilities: [{ id: 'CVE-2099-0001', package: 'openssl', version: '3.0.0', fix_version: '3.0.1', severity: 'Low', description: 'found by the external scanner' }],
        });
      }
      res.writeHead(404).end();
    });
    const htpasswd = join(work, 'htpasswd');
    writeHtpasswd(htpasswd, { admin: 'secret' });
    config = join(work, 'config.yml');
    const data = join(work, 'data');
    writeFileSync(
      config,
      [
        'version: 0.1',
        'storage:',
        `  filesystem: {rootdirectory: ${data}}`,
        '  delete: {enabled: true}',
        'auth:',
        `  htpasswd: {realm: wharf, path: ${htpasswd}}`,
        '  policy: {admins: [admin]}',
        'security:',
        '  scanning: {enabled: true}',
        '  vulnerabilities:',
        '    policies:',
        '      - repository: "prod/**"',
        '        severity: high',
        '        allowlist: [CVE-2021-23337]',
        '        unscanned: deny',
        '      - {repository: "strict/*", severity: critical, unscanned: deny}',
        '  scanners:',
        `    - {name: fake, url: "${adapter.url}", auth: "Bearer adapter-token", registry: "http://registry.example:5000"}`,
        '',
      ].join('\n'),
    );
    wharf = await startWharf({ args: [config], dataDir: data, scanning: true });
    user = cliUser();
    await user.ok(['--plain-http', 'login', wharf.host, '-u', 'admin', '--password-stdin'], { input: 'secret' });
  });
  after(async () => {
    await wharf?.stop();
    await adapter?.close();
    user?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it('attaches a CycloneDX SBOM on push, without a vulnerability database', async () => {
    const layer = gzip(await layerTar(DEBIAN_IMAGE_FILES));
    await push('app', [{ layers: [layer] }], 'prod/app:v1');
    await push('app', [{ layers: [layer] }], 'dev/app:v1');
    await push('alpine', [{ layers: [gzip(await layerTar([{ name: 'etc/os-release', data: 'ID=alpine\nVERSION_ID=3.18.4\n' }, { name: 'lib/apk/db/installed', data: 'P:musl\nV:1.2.4-r2\no:musl\n\n' }]))] }], 'dev/alpine:v1');
    for (const [key, repo] of [['prod', 'prod/app'], ['dev', 'dev/app'], ['alpine', 'dev/alpine']] as const) digests[key] = await manifestDigest(repo, 'v1');
    await waitFor(async () => (await referrers('dev/alpine', digests.alpine!, SBOM)).length === 1 && (await referrers('dev/app', digests.dev!, SBOM)).length === 1, 'the SBOMs', 30_000);
    const [sbom] = await referrers('dev/app', digests.dev!, SBOM);
    const { manifest, content } = await artifactContent('dev/app', sbom!.digest);
    assert.equal(manifest.subject.digest, digests.dev);
    assert.equal(content.bomFormat, 'CycloneDX');
    assert.equal(content.specVersion, '1.5');
    assert.deepEqual(content.components.map((c: { purl?: string }) => c.purl).filter(Boolean).sort(), [
      'pkg:deb/debian/libc6@2.36-9+deb12u4?arch=amd64&distro=debian-12&upstream=glibc',
      'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib',
      'pkg:npm/lodash@4.17.20',
    ]);
  });

  it('refuses pulls of images whose scan failed (a hostile layer) where the policy denies unscanned ones', async () => {
    await push('bad', [{ layers: [gzip(await layerTar([{ name: '../../etc/passwd', data: 'root:x:0:0' }]))] }], 'strict/bad:v1');
    digests.bad = await manifestDigest('strict/bad', 'v1');
    await waitFor(async () => {
      const scans = (await raw(wharf.url, 'GET', '/admin/v1/scans?repository=strict/bad', { headers: auth })).json<{ scans: unknown[] }>().scans;
      return scans.length === 1;
    }, 'the failed scan', 30_000);
    const [scan] = (await raw(wharf.url, 'GET', '/admin/v1/scans?repository=strict/bad', { headers: auth })).json<{ scans: Array<{ state: string; reason: string }> }>().scans;
    assert.equal(scan!.state, 'failed');
    assert.match(scan!.reason, /leaves the root: "\.\.\/\.\.\/etc\/passwd"/);
    const res = await raw(wharf.url, 'GET', '/v2/strict/bad/manifests/v1', { headers: { ...auth, Accept: ACCEPT } });
    assert.equal(res.status, 403);
    assert.equal(errorCode(res), 'DENIED');
    assert.match(res.body.toString(), /has not been scanned/);
    assert.equal((await raw(wharf.url, 'GET', '/v2/dev/app/manifests/v1', { headers: { ...auth, Accept: ACCEPT } })).status, 200);
  });

  it('matches after a database import into the registry, and refuses vulnerable pulls naming the ids', async () => {
    const imported = await user.ok(['vulndb', 'import', writeOsvDirectory(join(work, 'osv')), '--config', config]);
    assert.match(imported.stdout, /10 added/);
    const status = JSON.parse((await user.ok(['--json', 'vulndb', 'status', '--config', config])).stdout) as { path: string; generation: number };
    assert.equal(status.path, join(wharf.dataDir, 'vulndb.sqlite'));
    await waitFor(async () => {
      const reports = await referrers('prod/app', digests.prod!, REPORT);
      if (reports.length !== 1) return false;
      return (await artifactContent('prod/app', reports[0]!.digest)).content.database.generation === 1;
    }, 'the report after the import', 30_000);
    const [report] = await referrers('prod/app', digests.prod!, REPORT);
    const { content } = await artifactContent('prod/app', report!.digest);
    assert.equal(content.source, 'wharf+fake');
    assert.deepEqual(content.vulnerabilities.map((v: { id: string }) => v.id).sort(), ['CVE-2099-0001', 'DEBIAN-CVE-2024-9002', 'DSA-9001-1', 'GHSA-35jh-r3h4-6jhm']);
    assert.deepEqual(content.summary.bySeverity, { UNKNOWN: 0, LOW: 2, MEDIUM: 0, HIGH: 1, CRITICAL: 1 });

    const refused = await raw(wharf.url, 'GET', '/v2/prod/app/manifests/v1', { headers: { ...auth, Accept: ACCEPT } });
    assert.equal(refused.status, 403);
    assert.equal(errorCode(refused), 'DENIED');
    const error = refused.json<{ errors: Array<{ message: string; detail: { vulnerabilities: string[]; severity: string } }> }>().errors[0]!;
    // The lodash advisory is allowlisted by its CVE alias; the LOW ones are below the bar.
    assert.deepEqual(error.detail.vulnerabilities, ['DSA-9001-1']);
    assert.match(error.message, /vulnerabilities at or above HIGH: DSA-9001-1/);
    // Its referrers (the SBOM, the report) stay readable, and other repositories are not judged.
    assert.equal((await raw(wharf.url, 'GET', `/v2/prod/app/manifests/${report!.digest}`, { headers: { ...auth, Accept: ACCEPT } })).status, 200);
    assert.equal((await raw(wharf.url, 'GET', '/v2/dev/app/manifests/v1', { headers: { ...auth, Accept: ACCEPT } })).status, 200);

    // The external scanner was asked with its token, and told how to reach the registry.
    const scanRequest = adapter.requests.find((r) => r.method === 'POST' && r.url === '/api/v1/scan')!;
    assert.equal(scanRequest.headers.authorization, 'Bearer adapter-token');
    assert.match(String(scanRequest.headers['content-type']), /application\/vnd\.scanner\.adapter\.scan\.request\+json; version=1\.1/);
    const body = JSON.parse(scanRequest.body.toString()) as { registry: { url: string }; artifact: { repository: string; digest: string } };
    assert.equal(body.registry.url, 'http://registry.example:5000');
  });

  it('serves scans and reports through the admin API, and scans on demand', async () => {
    const list = await raw(wharf.url, 'GET', '/admin/v1/scans?repository=prod/app', { headers: auth });
    assert.equal(list.status, 200);
    const [scan] = list.json<{ scans: Array<{ digest: string; state: string; packages: number; generation: number; findings: unknown[] }> }>().scans;
    assert.deepEqual([scan!.digest, scan!.state, scan!.packages, scan!.generation], [digests.prod, 'done', 3, 1]);
    const report = await raw(wharf.url, 'GET', `/admin/v1/scans/report?repository=prod/app&digest=${digests.prod}`, { headers: auth });
    assert.equal(report.status, 200);
    assert.equal(report.json<{ summary: { total: number } }>().summary.total, 4);
    const missing = await raw(wharf.url, 'GET', `/admin/v1/scans/report?repository=prod/app&digest=sha256:${'0'.repeat(64)}`, { headers: auth });
    assert.equal(missing.status, 404);
    const now = await raw(wharf.url, 'POST', '/admin/v1/scans', { headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ repository: 'dev/alpine', reference: 'v1' }) });
    assert.equal(now.status, 200);
    assert.deepEqual(now.json<{ scans: Array<{ digest: string; state: string }> }>().scans.map((s) => [s.digest, s.state]), [[digests.alpine, 'done']]);
    const cli = await user.ok(['admin', 'scans', 'prod/app', '--registry', wharf.url, '-u', 'admin', '--password-stdin'], { input: 'secret\n' });
    assert.match(cli.stdout, /^REPOSITORY\s+DIGEST\s+PLATFORM\s+STATE\s+PACKAGES\s+DB\s+SCANNED\s+VULNERABILITIES\nprod\/app\s+sha256:\S+\s+linux\/amd64\s+done\s+3\s+1\s+.+C:1 H:1 M:0 L:2 U:0\n$/);
    const cliReport = await user.ok(['admin', 'scan-report', 'prod/app', digests.prod!, '--registry', wharf.url, '-u', 'admin', '--password-stdin'], { input: 'secret\n' });
    assert.equal(JSON.parse(cliReport.stdout).summary.total, 4);
    const bad = await raw(wharf.url, 'POST', '/admin/v1/scans', { headers: { ...auth, 'Content-Type': 'application/json' }, body: '{"repository": 1}' });
    assert.equal(bad.status, 400);
  });

  it('rescans only the images whose packages a database update touches', async () => {
    const before = { app: (await referrers('dev/app', digests.dev!, REPORT))[0]!.digest, alpine: (await referrers('dev/alpine', digests.alpine!, REPORT))[0]!.digest };
    const lodash = osvFixtures().find((r) => r.id === 'GHSA-35jh-r3h4-6jhm')!;
    await user.ok(['vulndb', 'import', await writeOsvZip(join(work, 'npm.zip'), [{ ...lodash, modified: '2024-09-01T00:00:00Z', severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }] }]), '--config', config]);
    await waitFor(async () => (await referrers('dev/app', digests.dev!, REPORT))[0]?.digest !== before.app, 'the rescan of dev/app', 30_000);
    const [report] = await referrers('dev/app', digests.dev!, REPORT);
    const { content } = await artifactContent('dev/app', report!.digest);
    assert.equal(content.database.generation, 2);
    assert.equal(content.vulnerabilities.find((v: { id: string }) => v.id === 'GHSA-35jh-r3h4-6jhm').severity, 'CRITICAL');
    // The old report was replaced, and the Alpine image (no npm package) was left alone.
    assert.equal((await referrers('dev/app', digests.dev!, REPORT)).length, 1);
    assert.equal((await referrers('dev/alpine', digests.alpine!, REPORT))[0]!.digest, before.alpine);
  });

  it('attaches one SBOM per platform of a multi-arch image', async () => {
    const amd = gzip(await layerTar([{ name: 'etc/os-release', data: 'ID=alpine\nVERSION_ID=3.18.4\n' }, { name: 'lib/apk/db/installed', data: 'P:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\n' }]));
    const arm = gzip(await layerTar([{ name: 'etc/os-release', data: 'ID=alpine\nVERSION_ID=3.18.4\n' }, { name: 'lib/apk/db/installed', data: 'P:musl\nV:1.2.4-r2\nA:aarch64\no:musl\n\n' }]));
    const layout = join(work, 'layout-multi');
    const written = writeScanLayout(layout, 'multi', [{ layers: [amd] }, { layers: [arm], platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }]);
    await user.ok(['--plain-http', 'copy', `oci:${layout}:multi`, `${wharf.host}/dev/multi:v1`]);
    await waitFor(async () => {
      const counts = await Promise.all(written.children.map(async (d) => (await referrers('dev/multi', d, SBOM)).length));
      return counts.every((n) => n === 1);
    }, 'an SBOM per platform', 30_000);
    const archs = [];
    for (const child of written.children) {
      const [sbom] = await referrers('dev/multi', child, SBOM);
      const { content } = await artifactContent('dev/multi', sbom!.digest);
      archs.push(content.components.find((c: { name: string }) => c.name === 'musl').purl);
    }
    assert.deepEqual(archs, ['pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.18.4', 'pkg:apk/alpine/musl@1.2.4-r2?arch=aarch64&distro=alpine-3.18.4']);
  });
});

describe('scanning configuration', () => {
  it('is on by default, off with REGISTRY_SECURITY_SCANNING_ENABLED=false, with the database under the root', async () => {
    const { loadConfig } = await import('../src/config/config.js');
    const on = loadConfig({ env: {}, flags: { data: '/srv/wharf' } }).config.security;
    assert.deepEqual(on.scanning, { enabled: true, onPush: true, databasePath: '/srv/wharf/vulndb.sqlite', rescan: true });
    const off = loadConfig({ env: { REGISTRY_SECURITY_SCANNING_ENABLED: 'false' }, flags: { data: '/srv/wharf' } }).config.security;
    assert.equal(off.scanning.enabled, false);
  });

  it('refuses to start with a policy or scanner it cannot read, naming the key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wharf-scan-config-'));
    try {
      const config = join(dir, 'config.yml');
      writeFileSync(config, 'version: 0.1\nsecurity:\n  vulnerabilities:\n    policies:\n      - {repository: "prod/*", severity: severe}\n');
      await assert.rejects(startWharf({ args: [config], dataDir: join(dir, 'data') }), /cannot start the registry: security\.vulnerabilities\.policies\[0\]\.severity: \\"severe\\" is not one of low, medium, high, critical/);
      writeFileSync(config, 'version: 0.1\nsecurity:\n  scanners:\n    - {name: trivy, url: "ftp://x"}\n');
      await assert.rejects(startWharf({ args: [config], dataDir: join(dir, 'data') }), /security\.scanners\[0\]\.url: an http\(s\) URL is required/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** `mode: replace`: an external scanner's findings stand alone, the built-in matcher's are left out. */
describe('an external scanner in replace mode', () => {
  const work = mkdtempSync(join(tmpdir(), 'wharf-scan-replace-'));
  let wharf: WharfProcess;
  let adapter: LoopbackServer;
  let user: CliUser;
  let config: string;

  before(async () => {
    adapter = await startLoopbackServer((req, res) => {
      if (req.method === 'GET' && req.url === '/api/v1/metadata') {
        return sendJson(res, 200, {
          scanner: { name: 'Solo', vendor: 'Wharf tests', version: '1.0' },
          capabilities: [{ consumes_mime_types: ['application/vnd.oci.image.manifest.v1+json'], produces_mime_types: ['application/vnd.security.vulnerability.report; version=1.1'] }],
        });
      }
      if (req.method === 'POST' && req.url === '/api/v1/scan') return sendJson(res, 202, { id: `solo-${Math.random().toString(36).slice(2)}` });
      if (req.method === 'GET' && /^\/api\/v1\/scan\/[^/]+\/report$/.test(req.url)) {
        return sendJson(res, 200, {
          generated_at: new Date().toISOString(),
          severity: 'Medium',
          vulnerabilities: [{ id: 'CVE-2099-0002', package: 'zlib1g', version: '1:1.2.13.dfsg-1', fix_version: '', severity: 'Medium', description: 'found by the replacing scanner' }],
        });
      }
      res.writeHead(404).end();
    });
    config = join(work, 'config.yml');
    const data = join(work, 'data');
    writeFileSync(
      config,
      [
        'version: 0.1',
        'storage:',
        `  filesystem: {rootdirectory: ${data}}`,
        'security:',
        '  scanning: {enabled: true}',
        '  scanners:',
        `    - {name: solo, url: "${adapter.url}", mode: replace, registry: "http://registry.example:5000"}`,
        '',
      ].join('\n'),
    );
    wharf = await startWharf({ args: [config], dataDir: data, scanning: true });
    user = cliUser();
  });
  after(async () => {
    await wharf?.stop();
    await adapter?.close();
    user?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it("reports only the external scanner's findings, though the built-in database matches the image", async () => {
    // The database holds advisories for this image's packages (the add-mode suite above finds them).
    await user.ok(['vulndb', 'import', writeOsvDirectory(join(work, 'osv')), '--config', config]);
    const layout = join(work, 'layout');
    writeScanLayout(layout, 'app', [{ layers: [gzip(await layerTar(DEBIAN_IMAGE_FILES))] }]);
    await user.ok(['--plain-http', 'copy', `oci:${layout}:app`, `${wharf.host}/solo/app:v1`]);
    const head = await raw(wharf.url, 'HEAD', '/v2/solo/app/manifests/v1', { headers: { Accept: ACCEPT } });
    const digest = head.header('docker-content-digest')!;
    const reports = async () =>
      (await raw(wharf.url, 'GET', `/v2/solo/app/referrers/${digest}?artifactType=${encodeURIComponent(REPORT)}`)).json<{ manifests: Array<{ digest: string }> }>().manifests;
    await waitFor(async () => (await reports()).length === 1, 'the report', 30_000);
    const [report] = await reports();
    const manifest = (await raw(wharf.url, 'GET', `/v2/solo/app/manifests/${report!.digest}`, { headers: { Accept: ACCEPT } })).json<{ layers: Array<{ digest: string }> }>();
    const content = (await raw(wharf.url, 'GET', `/v2/solo/app/blobs/${manifest.layers[0]!.digest}`)).json<{ source: string; vulnerabilities: Array<{ id: string }> }>();
    assert.equal(content.source, 'solo');
    assert.deepEqual(content.vulnerabilities.map((v) => v.id), ['CVE-2099-0002']);
  });
});
