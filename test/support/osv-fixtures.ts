import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yazl from 'yazl';

/**
 * OSV records in the OSV schema (1.6), shaped like the real feeds: Debian keyed by source package
 * with ECOSYSTEM ranges, Alpine by origin, npm/Go/PyPI/Maven with SEMVER or ECOSYSTEM ranges,
 * GHSA database_specific severities and CVSS v3 vectors.
 */
export function osvFixtures(): Array<Record<string, unknown>> {
  return [
    {
      schema_version: '1.6.0',
      id: 'DSA-9001-1',
      modified: '2024-03-01T00:00:00Z',
      published: '2024-02-01T00:00:00Z',
      aliases: ['CVE-2024-9001'],
      summary: 'zlib - security update',
      affected: [
        {
          package: { ecosystem: 'Debian:12', name: 'zlib', purl: 'pkg:deb/debian/zlib?arch=source' },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1:1.2.13.dfsg-1+deb12u1' }] }],
        },
      ],
      severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H' }],
    },
    {
      schema_version: '1.6.0',
      id: 'DEBIAN-CVE-2024-9002',
      modified: '2024-03-01T00:00:00Z',
      upstream: ['CVE-2024-9002'],
      aliases: ['CVE-2024-9002'],
      affected: [
        // Unfixed in bookworm: only an introduced event.
        { package: { ecosystem: 'Debian:12', name: 'glibc' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }] },
        { package: { ecosystem: 'Debian:11', name: 'glibc' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '2.31-13+deb11u9' }] }] },
      ],
      database_specific: { severity: 'low' },
    },
    {
      schema_version: '1.6.0',
      id: 'DEBIAN-CVE-2024-9003',
      modified: '2024-03-01T00:00:00Z',
      aliases: ['CVE-2024-9003'],
      affected: [
        // Fixed long ago (a tilde version sorts before its release): not a finding on 12.
        { package: { ecosystem: 'Debian:12', name: 'glibc' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '2.30~rc1-1' }] }] },
      ],
    },
    {
      schema_version: '1.6.0',
      id: 'ALPINE-CVE-2024-9010',
      modified: '2024-03-01T00:00:00Z',
      aliases: ['CVE-2024-9010'],
      affected: [{ package: { ecosystem: 'Alpine:v3.18', name: 'busybox' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '1.36.1-r6' }] }] }],
      severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N' }],
    },
    {
      schema_version: '1.6.0',
      id: 'GHSA-35jh-r3h4-6jhm',
      modified: '2024-03-01T00:00:00Z',
      aliases: ['CVE-2021-23337'],
      summary: 'Command Injection in lodash',
      affected: [{ package: { ecosystem: 'npm', name: 'lodash', purl: 'pkg:npm/lodash' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '4.17.21' }] }] }],
      severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H' }],
      database_specific: { severity: 'HIGH', github_reviewed: true },
    },
    {
      schema_version: '1.6.0',
      id: 'GHSA-babel-last-affected',
      modified: '2024-03-01T00:00:00Z',
      aliases: [],
      summary: 'pre-release range ending at last_affected',
      affected: [{ package: { ecosystem: 'npm', name: '@babel/core' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '7.0.0-beta.1' }, { last_affected: '7.22.0' }] }] }],
      database_specific: { severity: 'MODERATE' },
    },
    {
      schema_version: '1.6.0',
      id: 'GHSA-semver-prerelease',
      modified: '2024-03-01T00:00:00Z',
      affected: [{ package: { ecosystem: 'npm', name: 'semver' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '7.0.0-rc.1' }, { fixed: '7.5.2' }] }] }],
      database_specific: { severity: 'MODERATE' },
    },
    {
      schema_version: '1.6.0',
      id: 'PYSEC-2023-9020',
      modified: '2024-03-01T00:00:00Z',
      aliases: ['CVE-2023-9020'],
      affected: [{ package: { ecosystem: 'PyPI', name: 'django' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '4.2' }, { fixed: '4.2.2rc1' }] }], versions: ['4.2', '4.2.1'] }],
    },
    {
      schema_version: '1.6.0',
      id: 'GO-2024-9030',
      modified: '2024-03-01T00:00:00Z',
      aliases: ['CVE-2024-9030'],
      affected: [{ package: { ecosystem: 'Go', name: 'stdlib' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '1.21.8' }, { introduced: '1.22.0-0' }, { fixed: '1.22.1' }] }] }],
    },
    {
      schema_version: '1.6.0',
      id: 'GHSA-jfh8-c2jp-5v3q',
      modified: '2024-03-01T00:00:00Z',
      aliases: ['CVE-2021-44228'],
      summary: 'Remote code injection in Log4j',
      affected: [
        {
          package: { ecosystem: 'Maven', name: 'org.apache.logging.log4j:log4j-core' },
          ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '2.0-beta9' }, { fixed: '2.15.0' }] }],
        },
      ],
      severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H' }],
      database_specific: { severity: 'CRITICAL' },
    },
  ];
}

/** Writes the fixtures as a directory of `<id>.json` files (as OSV's per-ecosystem zips unpack). */
export function writeOsvDirectory(dir: string, records = osvFixtures()): string {
  mkdirSync(dir, { recursive: true });
  for (const record of records) writeFileSync(join(dir, `${String(record.id)}.json`), JSON.stringify(record, null, 2));
  return dir;
}

/** Writes the records as an `all.zip`, as OSV publishes per ecosystem. */
export async function writeOsvZip(file: string, records: Array<Record<string, unknown>>): Promise<string> {
  const zip = new yazl.ZipFile();
  for (const record of records) zip.addBuffer(Buffer.from(JSON.stringify(record)), `${String(record.id)}.json`);
  zip.end();
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve());
    zip.outputStream.on('error', reject);
  });
  writeFileSync(file, Buffer.concat(chunks));
  return file;
}
