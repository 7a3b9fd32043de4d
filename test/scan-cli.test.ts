import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cliUser, type CliUser } from './support/cli.js';
import { writeOsvDirectory } from './support/osv-fixtures.js';
import { startReferenceRegistry, type ReferenceRegistry } from './support/reference-registry.js';
import { DEBIAN_IMAGE_FILES, gzip, layerTar, writeScanLayout } from './support/scan-images.js';


/** `wharf scan` works client-side against any registry: here Distribution (docker-registry). */
describe('wharf scan and wharf vulndb (client-side, against Distribution)', () => {
  let registry: ReferenceRegistry;
  let user: CliUser;
  let image: string;

  before(async () => {
    registry = await startReferenceRegistry({ mode: 'plain' });
    user = cliUser();
    const layout = join(user.home, 'layout');
    writeScanLayout(layout, 'app', [{ layers: [gzip(await layerTar(DEBIAN_IMAGE_FILES))] }]);
    image = `${registry.host}/team/app:v1`;
    await user.ok(['--plain-http', 'copy', `oci:${layout}:app`, image]);
  });
  after(async () => {
    user?.dispose();
    await registry?.stop();
  });

  it('lists packages without a database, and says so', async () => {
    const result = await user.ok(['--plain-http', 'scan', image, '--format', 'json']);
    assert.match(result.stderr, /no vulnerability database yet/);
    const report = JSON.parse(result.stdout) as { inventory: Array<{ name: string; version: string }>; vulnerabilities: unknown[] };
    assert.deepEqual(report.inventory.map((p) => `${p.name} ${p.version}`).sort(), ['libc6 2.36-9+deb12u4', 'lodash 4.17.20', 'zlib1g 1:1.2.13.dfsg-1']);
    assert.deepEqual(report.vulnerabilities, []);
  });

  it('reads images from an OCI layout too, and --sbom needs no database', async () => {
    const result = await user.ok(['scan', `oci:${join(user.home, 'layout')}:app`, '--sbom', '--format', 'cyclonedx']);
    assert.equal(result.stderr, '');
    const bom = JSON.parse(result.stdout) as { specVersion: string; components: Array<{ purl?: string }>; vulnerabilities?: unknown[] };
    assert.equal(bom.specVersion, '1.5');
    assert.deepEqual(bom.components.map((c) => c.purl).filter(Boolean).length, 3);
    assert.deepEqual(bom.vulnerabilities, []);
  });

  it('imports OSV data into the client database and tells its age per ecosystem', async () => {
    const imported = await user.ok(['vulndb', 'import', writeOsvDirectory(join(user.home, 'osv'))]);
    assert.match(imported.stdout, /10 added, 0 updated, 0 withdrawn, 0 unchanged \(generation 1/);
    const status = JSON.parse((await user.ok(['--json', 'vulndb', 'status'])).stdout) as { path: string; generation: number; ecosystems: Array<{ ecosystem: string; advisories: number; importedAt: number }> };
    assert.equal(status.path, join(user.home, '.cache', 'wharf', 'vulndb.sqlite'));
    assert.equal(status.generation, 1);
    assert.deepEqual(status.ecosystems.map((e) => e.ecosystem), ['Alpine', 'Debian', 'Go', 'Maven', 'PyPI', 'npm']);
    assert.ok(status.ecosystems.every((e) => Date.now() - e.importedAt < 60_000));
    assert.match((await user.ok(['vulndb', 'status'])).stdout, /generation: 1, updated .*\nECOSYSTEM\s+ADVISORIES\s+IMPORTED\s+NEWEST RECORD\nAlpine\s+1\s+/);
  });

  it('reports vulnerabilities as a table, JSON, SARIF and CycloneDX', async () => {
    const table = await user.ok(['--plain-http', 'scan', image]);
    assert.match(table.stdout, /debian 12, 3 packages, database generation 1/);
    assert.match(table.stdout, /Total: 3 \(CRITICAL: 1, HIGH: 1, MEDIUM: 0, LOW: 1, UNKNOWN: 0\), fixable: 2/);
    assert.match(table.stdout, /lodash\s+GHSA-35jh-r3h4-6jhm\s+HIGH\s+4\.17\.20\s+4\.17\.21\s+CVE-2021-23337/);

    const json = JSON.parse((await user.ok(['--plain-http', 'scan', image, '--format', 'json'])).stdout) as {
      database: { generation: number };
      vulnerabilities: Array<{ id: string; aliases: string[]; package: { name: string }; installedVersion: string; fixedVersion?: string; severity: string }>;
    };
    assert.equal(json.database.generation, 1);
    assert.deepEqual(
      json.vulnerabilities.map((v) => [v.id, v.package.name, v.installedVersion, v.fixedVersion, v.severity]),
      [
        ['DSA-9001-1', 'zlib1g', '1:1.2.13.dfsg-1', '1:1.2.13.dfsg-1+deb12u1', 'CRITICAL'],
        ['GHSA-35jh-r3h4-6jhm', 'lodash', '4.17.20', '4.17.21', 'HIGH'],
        ['DEBIAN-CVE-2024-9002', 'libc6', '2.36-9+deb12u4', undefined, 'LOW'],
      ],
    );

    const sarif = JSON.parse((await user.ok(['--plain-http', 'scan', image, '--format', 'sarif'])).stdout) as { version: string; runs: Array<{ tool: { driver: { name: string } }; results: unknown[] }> };
    assert.equal(sarif.version, '2.1.0');
    assert.equal(sarif.runs[0]!.tool.driver.name, 'wharf');
    assert.equal(sarif.runs[0]!.results.length, 3);

    const bom = JSON.parse((await user.ok(['--plain-http', 'scan', image, '--format', 'cyclonedx'])).stdout) as { bomFormat: string; specVersion: string; components: Array<{ purl?: string }>; vulnerabilities: Array<{ id: string }> };
    assert.equal(bom.bomFormat, 'CycloneDX');
    assert.equal(bom.specVersion, '1.5');
    assert.ok(bom.components.some((c) => c.purl === 'pkg:npm/lodash@4.17.20'));
    assert.deepEqual(bom.vulnerabilities.map((v) => v.id), ['DSA-9001-1', 'GHSA-35jh-r3h4-6jhm', 'DEBIAN-CVE-2024-9002']);
  });

  it('--exit-code with --severity fails a CI step only on the listed severities', async () => {
    const critical = await user.run(['--plain-http', 'scan', image, '--exit-code', '3', '--severity', 'CRITICAL', '--format', 'json']);
    assert.equal(critical.code, 3);
    assert.deepEqual((JSON.parse(critical.stdout) as { vulnerabilities: Array<{ id: string }> }).vulnerabilities.map((v) => v.id), ['DSA-9001-1']);
    const medium = await user.run(['--plain-http', 'scan', image, '--exit-code', '3', '--severity', 'MEDIUM']);
    assert.equal(medium.code, 0, medium.stderr);
    const any = await user.run(['--plain-http', 'scan', image, '--exit-code', '5']);
    assert.equal(any.code, 5);
    const wrong = await user.run(['--plain-http', 'scan', image, '--severity', 'SEVERE']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /--severity: "SEVERE" is not one of/);
  });
});
