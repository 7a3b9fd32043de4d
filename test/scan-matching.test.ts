import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { inventoryLayers } from '../src/scan/inventory.js';
import { affectedBy, matchInventory } from '../src/scan/matcher.js';
import { countAtSeverities, reportCycloneDx, reportSarif, reportTable } from '../src/scan/report-formats.js';
import { cvss3BaseScore } from '../src/scan/severity.js';
import { compareApk, compareDpkg, compareMaven, comparePep440, compareRpm, compareSemver, type VersionOrder } from '../src/scan/version-order.js';
import { VulnerabilityDatabase } from '../src/scan/vuln-db.js';
import { osvFixtures, writeOsvDirectory, writeOsvZip } from './support/osv-fixtures.js';
import { gzip, layerTar, memoryLayers } from './support/scan-images.js';

const work = mkdtempSync(join(tmpdir(), 'wharf-scan-matching-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Asserts that each version sorts strictly before the next one. */
function ascending(order: VersionOrder, versions: string[]): void {
  for (let i = 0; i + 1 < versions.length; i++) {
    assert.ok(order(versions[i]!, versions[i + 1]!) < 0, `${versions[i]} < ${versions[i + 1]}`);
    assert.ok(order(versions[i + 1]!, versions[i]!) > 0, `${versions[i + 1]} > ${versions[i]}`);
  }
}

describe('version ordering per ecosystem', () => {
  it('dpkg: epochs, tildes, revisions', () => {
    ascending(compareDpkg, ['1.0~~', '1.0~~a', '1.0~', '1.0~rc1', '1.0', '1.0-1', '1.0-1+deb12u1', '1.0a', '1.0+dfsg', '1.1', '1.10', '0:2.0', '1:0.1']);
    assert.equal(compareDpkg('1.0', '0:1.0'), 0);
    assert.equal(compareDpkg('1.01', '1.1'), 0);
    assert.ok(compareDpkg('2.36-9+deb12u4', '2.30~rc1-1') > 0);
  });

  it('rpm: rpmvercmp with tilde and caret, epochs and releases', () => {
    ascending(compareRpm, ['1.0~rc1', '1.0', '1.0^git1', '1.0a', '1.0.1', '1.9', '1.10', '2:0.1']);
    ascending(compareRpm, ['3.0.7-24.el9', '3.0.7-25.el9', '3.0.7-25.el9_2', '1:3.0.7-1']);
    assert.equal(compareRpm('1.0', '0:1.0'), 0);
  });

  it('apk: suffixes, letters, revisions', () => {
    ascending(compareApk, ['1.2.3_alpha1', '1.2.3_beta', '1.2.3_rc1', '1.2.3', '1.2.3-r1', '1.2.3_p1', '1.2.3a', '1.2.4', '1.10']);
    ascending(compareApk, ['1.36.1-r5', '1.36.1-r6']);
  });

  it('SemVer (npm, Go): pre-releases and the v prefix', () => {
    ascending(compareSemver, ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.10.0']);
    assert.equal(compareSemver('v1.2.3', '1.2.3'), 0);
    assert.equal(compareSemver('1.2.3+build.5', '1.2.3'), 0);
    ascending(compareSemver, ['1.22.0-0', '1.22.0']);
  });

  it('PEP 440: dev, pre, post, epochs, normal forms', () => {
    ascending(comparePep440, ['1.0.dev0', '1.0a1', '1.0a2.dev1', '1.0a2', '1.0b1', '1.0rc1', '1.0', '1.0.post1.dev0', '1.0.post1', '1.1', '1!0.1']);
    assert.equal(comparePep440('1.0', '1.0.0'), 0);
    assert.equal(comparePep440('1.0RC1', '1.0rc1'), 0);
    assert.equal(comparePep440('4.2', '4.2.0'), 0);
  });

  it('Maven: qualifiers, trailing zeros', () => {
    ascending(compareMaven, ['1.0-alpha', '1.0-beta', '1.0-milestone-1', '1.0-rc', '1.0-SNAPSHOT', '1.0', '1.0-sp', '1.0.1', '1.9', '1.10']);
    assert.equal(compareMaven('1.0', '1.0.0'), 0);
    assert.equal(compareMaven('1', '1-ga'), 0);
    ascending(compareMaven, ['2.0-beta9', '2.0', '2.14.1', '2.15.0']);
  });

  it('OSV ranges: introduced, fixed, last_affected and versions lists', () => {
    const range = (events: Array<Record<string, string>>) => ({ ranges: [{ type: 'SEMVER', events }] });
    assert.deepEqual(affectedBy(range([{ introduced: '0' }, { fixed: '1.2.0' }]), '1.1.9', compareSemver), { affected: true, fixed: '1.2.0' });
    assert.deepEqual(affectedBy(range([{ introduced: '0' }, { fixed: '1.2.0' }]), '1.2.0', compareSemver), { affected: false });
    assert.deepEqual(affectedBy(range([{ introduced: '1.0.0' }, { last_affected: '1.1.0' }]), '1.1.0', compareSemver), { affected: true });
    assert.deepEqual(affectedBy(range([{ introduced: '1.0.0' }, { last_affected: '1.1.0' }]), '1.1.1', compareSemver), { affected: false });
    assert.deepEqual(affectedBy(range([{ introduced: '1.0.0' }, { fixed: '1.1.0' }]), '1.0.0-rc.1', compareSemver), { affected: false });
    // Two windows: the second opens again.
    const twice = range([{ introduced: '0' }, { fixed: '1.21.8' }, { introduced: '1.22.0-0' }, { fixed: '1.22.1' }]);
    assert.deepEqual(affectedBy(twice, '1.21.9', compareSemver), { affected: false });
    assert.deepEqual(affectedBy(twice, '1.22.0', compareSemver), { affected: true, fixed: '1.22.1' });
    assert.deepEqual(affectedBy({ versions: ['2.0.1'], ranges: [{ type: 'GIT', events: [{ introduced: 'abc' }] }] }, '2.0.1', compareSemver), { affected: true });
  });

  it('CVSS v3 base scores from vectors', () => {
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), 9.8);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H'), 10);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H'), 7.2);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N'), 5.5);
    assert.equal(cvss3BaseScore('CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N'), 3.1);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N'), 0);
    assert.equal(cvss3BaseScore('CVSS:2.0/AV:N'), undefined);
  });
});

const DPKG_STATUS = `Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4

Package: removed-one
Status: deinstall ok config-files
Version: 1.0

`;

describe('matching against an imported OSV database', () => {
  const dbPath = join(work, 'vulndb.sqlite');

  it('imports a directory of OSV JSON, then the same records as all.zip incrementally', async () => {
    const db = VulnerabilityDatabase.open(dbPath);
    try {
      const first = await db.import(writeOsvDirectory(join(work, 'osv')));
      assert.equal(first.added, osvFixtures().length);
      assert.equal(first.generation, 1);
      const again = await db.import(await writeOsvZip(join(work, 'all.zip'), osvFixtures()));
      assert.deepEqual([again.added, again.updated, again.unchanged, again.generation], [0, 0, osvFixtures().length, 1]);
      const status = db.status();
      assert.deepEqual(status.ecosystems.map((e) => [e.ecosystem, e.advisories]), [['Alpine', 1], ['Debian', 3], ['Go', 1], ['Maven', 1], ['PyPI', 1], ['npm', 3]]);
    } finally {
      db.close();
    }
  });

  it('reports findings with fixed versions, severities and counts', async () => {
    const layer = await layerTar([
      { name: 'etc/os-release', data: 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n' },
      { name: 'var/lib/dpkg/status', data: DPKG_STATUS },
      {
        name: 'app/package-lock.json',
        data: JSON.stringify({
          lockfileVersion: 3,
          packages: { 'node_modules/lodash': { version: '4.17.20' }, 'node_modules/@babel/core': { version: '7.22.0' }, 'node_modules/semver': { version: '6.3.0' } },
        }),
      },
      { name: 'usr/lib/python3/site-packages/Django-4.2.1.dist-info/METADATA', data: 'Name: Django\nVersion: 4.2.1\n' },
      { name: 'app/lib/META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties', data: 'groupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n' },
    ]);
    const inventory = await inventoryLayers(memoryLayers([gzip(layer)]), { digest: 'sha256:img' });
    inventory.packages.push({ type: 'golang', name: 'stdlib', version: 'v1.19.8', location: '/usr/local/bin/prog', purl: 'pkg:golang/stdlib@v1.19.8' });
    const db = VulnerabilityDatabase.open(dbPath);
    const report = matchInventory(inventory, db, { scannerVersion: 'test' });
    db.close();
    const rows = report.vulnerabilities.map((f) => `${f.id} ${f.package.name} ${f.installedVersion} -> ${f.fixedVersion ?? 'none'} ${f.severity}${f.score !== undefined ? ` ${f.score}` : ''}`);
    assert.deepEqual(rows, [
      'DSA-9001-1 zlib1g 1:1.2.13.dfsg-1 -> 1:1.2.13.dfsg-1+deb12u1 CRITICAL 9.8',
      'GHSA-jfh8-c2jp-5v3q org.apache.logging.log4j:log4j-core 2.14.1 -> 2.15.0 CRITICAL 10',
      'GHSA-35jh-r3h4-6jhm lodash 4.17.20 -> 4.17.21 HIGH 7.2',
      'GHSA-babel-last-affected @babel/core 7.22.0 -> none MEDIUM',
      'DEBIAN-CVE-2024-9002 libc6 2.36-9+deb12u4 -> none LOW',
      'GO-2024-9030 stdlib v1.19.8 -> 1.21.8 UNKNOWN',
      'PYSEC-2023-9020 django 4.2.1 -> 4.2.2rc1 UNKNOWN',
    ]);
    assert.deepEqual(report.summary, { total: 7, fixable: 5, bySeverity: { UNKNOWN: 2, LOW: 1, MEDIUM: 1, HIGH: 1, CRITICAL: 2 } });
    assert.deepEqual(report.vulnerabilities[0]!.aliases, ['CVE-2024-9001']);
    assert.equal(report.vulnerabilities[0]!.package.source, 'zlib');
    assert.equal(report.database.generation, 1);
    assert.equal(countAtSeverities([report], ['CRITICAL', 'HIGH']), 3);

    const table = reportTable([report], 'app:1');
    assert.match(table, /Total: 7 \(CRITICAL: 2, HIGH: 1, MEDIUM: 1, LOW: 1, UNKNOWN: 2\), fixable: 5/);
    assert.match(table, /zlib1g\s+DSA-9001-1\s+CRITICAL\s+1:1\.2\.13\.dfsg-1\s+1:1\.2\.13\.dfsg-1\+deb12u1\s+CVE-2024-9001/);
    const sarif = JSON.parse(reportSarif([report], 'app:1', 'test')) as { version: string; runs: Array<{ results: Array<{ ruleId: string; level: string }> }> };
    assert.equal(sarif.version, '2.1.0');
    assert.equal(sarif.runs[0]!.results.length, 7);
    assert.equal(sarif.runs[0]!.results[0]!.level, 'error');
    const cdx = JSON.parse(reportCycloneDx(inventory, report, 'app:1')) as { specVersion: string; vulnerabilities: Array<{ id: string; affects: Array<{ ref: string }> }> };
    assert.equal(cdx.specVersion, '1.5');
    assert.equal(cdx.vulnerabilities[0]!.id, 'DSA-9001-1');
    assert.match(cdx.vulnerabilities[0]!.affects[0]!.ref, /^pkg:deb\/debian\/zlib1g@/);
  });

  it('matches Alpine packages by origin in their release only', async () => {
    const installed = 'P:busybox-binsh\nV:1.36.1-r5\nA:x86_64\no:busybox\n\nP:ssl_client\nV:1.36.1-r6\no:busybox\n\n';
    const image = async (version: string) =>
      inventoryLayers(memoryLayers([gzip(await layerTar([{ name: 'etc/os-release', data: `ID=alpine\nVERSION_ID=${version}\n` }, { name: 'lib/apk/db/installed', data: installed }]))]), { digest: 'sha256:a' });
    const db = VulnerabilityDatabase.open(dbPath);
    try {
      const inRelease = matchInventory(await image('3.18.4'), db, { scannerVersion: 'test' });
      assert.deepEqual(inRelease.vulnerabilities.map((f) => `${f.id} ${f.package.name} ${f.fixedVersion} ${f.severity} ${f.score}`), ['ALPINE-CVE-2024-9010 busybox-binsh 1.36.1-r6 MEDIUM 5.5']);
      const otherRelease = matchInventory(await image('3.19.1'), db, { scannerVersion: 'test' });
      assert.equal(otherRelease.vulnerabilities.length, 0);
    } finally {
      db.close();
    }
  });

  it('an update is atomic: a reader sees the database before or after, never between', async () => {
    const writer = VulnerabilityDatabase.open(dbPath);
    const reader = VulnerabilityDatabase.open(dbPath);
    try {
      const before = reader.advisoriesFor('npm', 'many').length;
      const records = Array.from({ length: 1000 }, (_, i) => ({
        id: `GHSA-many-${i}`,
        modified: '2024-04-01T00:00:00Z',
        affected: [{ package: { ecosystem: 'npm', name: 'many' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: `1.0.${i}` }] }] }],
      }));
      const seen = new Set<number>();
      let importing = true;
      const watching = (async () => {
        while (importing) {
          seen.add(reader.advisoriesFor('npm', 'many').length);
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      const result = await writer.import(writeOsvDirectory(join(work, 'osv-many'), records));
      importing = false;
      await watching;
      seen.add(reader.advisoriesFor('npm', 'many').length);
      assert.equal(result.added, 1000);
      assert.deepEqual([...seen].sort((a, b) => a - b), [before, 1000]);
      assert.deepEqual(result.changedPackages, [{ ecosystem: 'npm', name: 'many' }]);

      // An import that fails half-way leaves nothing behind.
      const aborted = new AbortController();
      const failing = writer.import(writeOsvDirectory(join(work, 'osv-more'), records.map((r) => ({ ...r, id: `${r.id}-x` }))), { signal: aborted.signal });
      aborted.abort();
      await assert.rejects(failing);
      assert.equal(reader.advisoriesFor('npm', 'many').length, 1000);
      assert.equal(reader.generation, result.generation);
    } finally {
      writer.close();
      reader.close();
    }
  });

  it('a newer record replaces the old one and withdrawn ones go away', async () => {
    const db = VulnerabilityDatabase.open(dbPath);
    try {
      const lodash = osvFixtures().find((r) => r.id === 'GHSA-35jh-r3h4-6jhm')!;
      const newer = { ...lodash, modified: '2024-05-01T00:00:00Z', affected: [{ package: { ecosystem: 'npm', name: 'lodash' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '4.17.22' }] }] }] };
      const updated = await db.import(await writeOsvZip(join(work, 'npm.zip'), [newer]));
      assert.deepEqual([updated.updated, updated.added], [1, 0]);
      assert.deepEqual(updated.changedPackages, [{ ecosystem: 'npm', name: 'lodash' }]);
      const withdrawn = await db.import(await writeOsvZip(join(work, 'npm2.zip'), [{ ...newer, modified: '2024-06-01T00:00:00Z', withdrawn: '2024-06-01T00:00:00Z' }]));
      assert.equal(withdrawn.withdrawn, 1);
      assert.equal(db.advisoriesFor('npm', 'lodash').length, 0);
    } finally {
      db.close();
    }
  });
});
