import type { Platform } from '../oci/manifest.js';
import type { InstalledPackage, OsRelease } from './installed-package.js';
import type { ImageInventory } from './inventory.js';
import { cvss3BaseScore, parseSeverity, ratingOfScore, SEVERITIES, severityRank, type Severity } from './severity.js';
import { versionOrderFor, type VersionOrder } from './version-order.js';
import type { OsvAffected, OsvRecord, VulnerabilityDatabase } from './vuln-db.js';

/** The media type of a vulnerability report (and the artifact type of its referrer). */
export const VULNERABILITY_REPORT_MEDIA_TYPE = 'application/vnd.wharf.vulnerability-report+json';

/** One vulnerability found in one installed package. */
export interface Finding {
  id: string;
  aliases: string[];
  severity: Severity;
  /** The CVSS v3 base score, when the advisory gives a vector. */
  score?: number;
  summary?: string;
  package: { name: string; type: string; purl: string; location: string; source?: string };
  installedVersion: string;
  /** The first version without the vulnerability; absent when none is known. */
  fixedVersion?: string;
  ecosystem: string;
}

export interface VulnerabilityReport {
  schemaVersion: 1;
  scanner: { name: string; version: string };
  /** The database the report was made against. */
  database: { generation: number; updatedAt?: string };
  /** Where the findings came from: the built-in matcher, or an external scanner by name. */
  source: string;
  generatedAt: string;
  image: { digest: string; platform?: Platform; os?: OsRelease };
  packages: number;
  vulnerabilities: Finding[];
  summary: { total: number; fixable: number; bySeverity: Record<Severity, number> };
}

/** Where an installed package is looked up in OSV: ecosystem, package name, the version to compare. */
export interface OsvKey {
  base: string;
  /** Advisories of the base ecosystem apply when their ecosystem names this release (or none). */
  release?: string;
  name: string;
  version: string;
}

/** The OSV key of a package, or undefined for a package OSV does not cover. */
export function osvKeyOf(pkg: InstalledPackage, os: OsRelease | undefined): OsvKey | undefined {
  switch (pkg.type) {
    case 'deb': {
      // Debian's advisories are keyed by source package and source version.
      const base = os?.id === 'ubuntu' ? 'Ubuntu' : 'Debian';
      const release = os?.versionId ? (base === 'Debian' ? os.versionId.split('.')[0] : os.versionId) : undefined;
      const key: OsvKey = { base, name: pkg.source?.name ?? pkg.name, version: pkg.source?.version ?? pkg.version };
      if (release) key.release = release;
      return key;
    }
    case 'apk': {
      const key: OsvKey = { base: 'Alpine', name: pkg.source?.name ?? pkg.name, version: pkg.version };
      const m = os?.versionId ? /^(\d+)\.(\d+)/.exec(os.versionId) : null;
      if (m) key.release = `v${m[1]}.${m[2]}`;
      return key;
    }
    case 'rpm': {
      const base = { rhel: 'Red Hat', rocky: 'Rocky Linux', almalinux: 'AlmaLinux', opensuse: 'openSUSE', 'opensuse-leap': 'openSUSE', sles: 'SUSE' }[os?.id ?? ''];
      if (!base) return undefined;
      const key: OsvKey = { base, name: pkg.name, version: pkg.epoch ? `${pkg.epoch}:${pkg.version}` : pkg.version };
      const major = os?.versionId?.split('.')[0];
      if (major) key.release = major;
      return key;
    }
    case 'npm':
      return { base: 'npm', name: pkg.namespace ? `${pkg.namespace}/${pkg.name}` : pkg.name, version: pkg.version };
    case 'pypi':
      return { base: 'PyPI', name: pkg.name, version: pkg.version };
    case 'golang':
      return { base: 'Go', name: pkg.namespace ? `${pkg.namespace}/${pkg.name}` : pkg.name, version: pkg.version.replace(/^v/, '').replace(/\+incompatible$/, '') };
    case 'maven':
      return { base: 'Maven', name: `${pkg.namespace}:${pkg.name}`, version: pkg.version };
  }
}

/** The index key of a package for rescans: `base/name`, as the database reports changes. */
export function matchKey(key: Pick<OsvKey, 'base' | 'name'>): string {
  return `${key.base}/${key.name}`;
}

function releaseMatches(ecosystem: string, release: string | undefined): boolean {
  const parts = ecosystem.split(':').slice(1).filter((p) => p !== '');
  if (parts.length === 0 || release === undefined) return true;
  return parts.includes(release);
}

/**
 * Whether `version` falls in an affected entry, and the fix if one is known. OSV's rule: events
 * sorted by version; `introduced` opens, `fixed` closes at that version, `last_affected` closes
 * after it. GIT ranges are commits, not versions, and are not evaluated.
 */
export function affectedBy(entry: OsvAffected, version: string, order: VersionOrder): { affected: boolean; fixed?: string } {
  if (entry.versions?.includes(version)) return { affected: true, ...fixedIn(entry, version, order) };
  for (const range of entry.ranges ?? []) {
    if (range.type !== 'ECOSYSTEM' && range.type !== 'SEMVER') continue;
    const events = range.events
      .map((e) => ({ event: e, at: e.introduced ?? e.fixed ?? e.last_affected ?? e.limit }))
      .filter((e): e is { event: (typeof range.events)[number]; at: string } => typeof e.at === 'string')
      .sort((a, b) => (a.event.introduced === '0' ? -1 : b.event.introduced === '0' ? 1 : order(a.at, b.at)));
    let affected = false;
    let fix: string | undefined;
    for (const { event, at } of events) {
      if (event.introduced !== undefined) {
        if (at === '0' || order(version, at) >= 0) {
          affected = true;
          fix = undefined;
        } else break;
      } else if (event.fixed !== undefined) {
        if (order(version, at) >= 0) affected = false;
        else {
          if (affected) fix = at;
          break;
        }
      } else if (event.last_affected !== undefined) {
        if (order(version, at) > 0) affected = false;
        else break;
      }
    }
    if (affected) return fix !== undefined ? { affected, fixed: fix } : { affected };
  }
  return { affected: false };
}

function fixedIn(entry: OsvAffected, version: string, order: VersionOrder): { fixed?: string } {
  const fixes = (entry.ranges ?? []).flatMap((r) => r.events.map((e) => e.fixed).filter((f): f is string => f !== undefined)).filter((f) => order(f, version) > 0);
  fixes.sort(order);
  return fixes[0] !== undefined ? { fixed: fixes[0] } : {};
}

/** The severity of an advisory for one affected entry: CVSS v3 first, then the database's word. */
export function severityOf(record: OsvRecord, entry?: OsvAffected): { severity: Severity; score?: number } {
  for (const list of [entry?.severity, record.severity]) {
    for (const s of list ?? []) {
      if (s.type === 'CVSS_V3') {
        const score = cvss3BaseScore(s.score);
        if (score !== undefined) return { severity: ratingOfScore(score), score };
      }
    }
  }
  for (const bag of [entry?.ecosystem_specific, entry?.database_specific, record.database_specific]) {
    for (const field of ['severity', 'urgency', 'cvss_severity']) {
      const value = bag?.[field];
      const parsed = typeof value === 'string' ? parseSeverity(value) : undefined;
      if (parsed) return { severity: parsed };
    }
  }
  return { severity: 'UNKNOWN' };
}

/** Matches an inventory against the database: one report for one image. */
export function matchInventory(inventory: ImageInventory, db: VulnerabilityDatabase, options: { scannerVersion: string }): VulnerabilityReport {
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const cache = new Map<string, OsvRecord[]>();
  for (const pkg of inventory.packages) {
    const key = osvKeyOf(pkg, inventory.os);
    if (!key) continue;
    const cacheKey = matchKey(key);
    let records = cache.get(cacheKey);
    if (!records) {
      records = db.advisoriesFor(key.base, key.name);
      cache.set(cacheKey, records);
    }
    for (const record of records) {
      for (const entry of record.affected ?? []) {
        const ecosystem = entry.package?.ecosystem;
        if (!ecosystem || entry.package?.name !== key.name || ecosystem.split(':')[0] !== key.base || !releaseMatches(ecosystem, key.release)) continue;
        const hit = affectedBy(entry, key.version, versionOrderFor(ecosystem));
        if (!hit.affected) continue;
        const dedupe = `${record.id}\u0000${pkg.purl}`;
        if (seen.has(dedupe)) continue;
        seen.add(dedupe);
        const { severity, score } = severityOf(record, entry);
        const finding: Finding = {
          id: record.id,
          aliases: record.aliases ?? [],
          severity,
          package: { name: pkg.namespace && pkg.type !== 'maven' ? `${pkg.namespace}/${pkg.name}` : pkg.type === 'maven' ? `${pkg.namespace}:${pkg.name}` : pkg.name, type: pkg.type, purl: pkg.purl, location: pkg.location },
          installedVersion: pkg.version,
          ecosystem,
        };
        if (pkg.source && pkg.source.name !== pkg.name) finding.package.source = pkg.source.name;
        if (score !== undefined) finding.score = score;
        if (record.summary) finding.summary = record.summary;
        if (hit.fixed !== undefined) finding.fixedVersion = hit.fixed;
        findings.push(finding);
      }
    }
  }
  findings.sort((a, b) => severityRank(b.severity) - severityRank(a.severity) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) || (a.package.name < b.package.name ? -1 : 1));
  const version = db.version();
  const database: VulnerabilityReport['database'] = { generation: version.generation };
  if (version.updatedAt) database.updatedAt = new Date(version.updatedAt).toISOString();
  return buildReport(inventory, findings, { scannerVersion: options.scannerVersion, database, source: 'wharf' });
}

/** A report from findings (the built-in matcher's, or an external scanner's). */
export function buildReport(
  inventory: Pick<ImageInventory, 'digest' | 'platform' | 'os'> & { packages: unknown[] },
  findings: Finding[],
  options: { scannerVersion: string; database: VulnerabilityReport['database']; source: string },
): VulnerabilityReport {
  const bySeverity = Object.fromEntries(SEVERITIES.map((s) => [s, 0])) as Record<Severity, number>;
  for (const f of findings) bySeverity[f.severity]++;
  const image: VulnerabilityReport['image'] = { digest: inventory.digest };
  if (inventory.platform) image.platform = inventory.platform;
  if (inventory.os) image.os = inventory.os;
  return {
    schemaVersion: 1,
    scanner: { name: 'wharf', version: options.scannerVersion },
    database: options.database,
    source: options.source,
    generatedAt: new Date().toISOString(),
    image,
    packages: inventory.packages.length,
    vulnerabilities: findings,
    summary: { total: findings.length, fixable: findings.filter((f) => f.fixedVersion !== undefined).length, bySeverity },
  };
}
