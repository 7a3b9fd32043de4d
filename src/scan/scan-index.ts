import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Platform } from '../oci/manifest.js';
import type { InstalledPackage, OsRelease } from './installed-package.js';
import type { Finding } from './matcher.js';
import type { Severity } from './severity.js';

/** Where one image manifest of a repository stands with scanning. */
export interface ScanRecord {
  repository: string;
  digest: string;
  state: 'done' | 'failed';
  /** Why the scan failed (a hostile layer, a package database over its bound). */
  reason?: string;
  platform?: Platform;
  os?: OsRelease;
  packages: number;
  /** The vulnerability database generation the findings were matched against (0: none yet). */
  generation: number;
  scannedAt: number;
  sbomDigest?: string;
  reportDigest?: string;
  bySeverity?: Record<Severity, number>;
  findings: Array<Pick<Finding, 'id' | 'aliases' | 'severity' | 'fixedVersion'> & { package: string }>;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS scan (
  repository TEXT NOT NULL, digest TEXT NOT NULL, state TEXT NOT NULL, reason TEXT,
  platform TEXT, os TEXT, packages INTEGER NOT NULL, generation INTEGER NOT NULL, scanned_at INTEGER NOT NULL,
  sbom_digest TEXT, report_digest TEXT, by_severity TEXT, findings TEXT NOT NULL, inventory TEXT,
  PRIMARY KEY (repository, digest));
CREATE TABLE IF NOT EXISTS scan_package (repository TEXT NOT NULL, digest TEXT NOT NULL, key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS scan_package_by_key ON scan_package (key);
CREATE INDEX IF NOT EXISTS scan_package_by_image ON scan_package (repository, digest);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/**
 * What the registry knows from its scans, derived from the referrers it attached: per image
 * manifest, the state, the findings (for pull policies) and the inventory (to rescan without
 * reading layers again), and an index from package keys (`Debian/openssl`, `npm/lodash`) to the
 * images that hold them, so that a database update rescans only the images it affects. It can
 * be rebuilt by scanning again; the reports themselves are referrers in the registry.
 */
export class ScanIndex {
  private readonly db: Database.Database;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 10000');
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
  }

  /** Records a scan and the package keys of its image, replacing any earlier scan of it. */
  record(record: ScanRecord, inventory: { packages: InstalledPackage[]; keys: string[] } | undefined): void {
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO scan (repository, digest, state, reason, platform, os, packages, generation, scanned_at, sbom_digest, report_digest, by_severity, findings, inventory)
           VALUES (@repository, @digest, @state, @reason, @platform, @os, @packages, @generation, @scannedAt, @sbomDigest, @reportDigest, @bySeverity, @findings, @inventory)
           ON CONFLICT (repository, digest) DO UPDATE SET state = excluded.state, reason = excluded.reason, platform = excluded.platform, os = excluded.os,
             packages = excluded.packages, generation = excluded.generation, scanned_at = excluded.scanned_at, sbom_digest = excluded.sbom_digest,
             report_digest = excluded.report_digest, by_severity = excluded.by_severity, findings = excluded.findings,
             inventory = COALESCE(excluded.inventory, scan.inventory)`,
        )
        .run({
          repository: record.repository,
          digest: record.digest,
          state: record.state,
          reason: record.reason ?? null,
          platform: record.platform ? JSON.stringify(record.platform) : null,
          os: record.os ? JSON.stringify(record.os) : null,
          packages: record.packages,
          generation: record.generation,
          scannedAt: record.scannedAt,
          sbomDigest: record.sbomDigest ?? null,
          reportDigest: record.reportDigest ?? null,
          bySeverity: record.bySeverity ? JSON.stringify(record.bySeverity) : null,
          findings: JSON.stringify(record.findings),
          inventory: inventory ? JSON.stringify(inventory.packages) : null,
        });
      if (inventory) {
        this.db.prepare('DELETE FROM scan_package WHERE repository = ? AND digest = ?').run(record.repository, record.digest);
        const add = this.db.prepare('INSERT INTO scan_package (repository, digest, key) VALUES (?, ?, ?)');
        for (const key of new Set(inventory.keys)) add.run(record.repository, record.digest, key);
      }
    })();
  }

  /** The last scan of an image manifest in a repository; undefined when it was never scanned. */
  get(repository: string, digest: string): ScanRecord | undefined {
    const row = this.db.prepare('SELECT * FROM scan WHERE repository = ? AND digest = ?').get(repository, digest) as ScanRow | undefined;
    return row ? fromRow(row) : undefined;
  }

  /** The packages of an image as last inventoried (for a rescan against a new database). */
  inventory(repository: string, digest: string): InstalledPackage[] | undefined {
    const text = this.db.prepare('SELECT inventory FROM scan WHERE repository = ? AND digest = ?').pluck().get(repository, digest) as string | null | undefined;
    return text ? (JSON.parse(text) as InstalledPackage[]) : undefined;
  }

  /** Images holding any of the package keys (`Ecosystem/name`). */
  imagesWith(keys: readonly string[]): Array<{ repository: string; digest: string }> {
    const found = new Map<string, { repository: string; digest: string }>();
    const query = this.db.prepare('SELECT DISTINCT repository, digest FROM scan_package WHERE key = ?');
    for (const key of keys) {
      for (const row of query.all(key) as Array<{ repository: string; digest: string }>) found.set(`${row.repository}@${row.digest}`, row);
    }
    return [...found.values()];
  }

  /** Images inventoried but never matched (no database, or none loaded at the time). */
  unmatched(): Array<{ repository: string; digest: string }> {
    return this.db.prepare("SELECT repository, digest FROM scan WHERE state = 'done' AND report_digest IS NULL AND inventory IS NOT NULL").all() as Array<{ repository: string; digest: string }>;
  }

  /** Scans of a repository (or all), newest first. */
  list(options: { repository?: string; limit: number }): ScanRecord[] {
    const rows = (
      options.repository === undefined
        ? this.db.prepare('SELECT * FROM scan ORDER BY scanned_at DESC LIMIT ?').all(options.limit)
        : this.db.prepare('SELECT * FROM scan WHERE repository = ? ORDER BY scanned_at DESC LIMIT ?').all(options.repository, options.limit)
    ) as ScanRow[];
    return rows.map(fromRow);
  }

  /** A named number kept with the index (the database generation last acted on). */
  getNumber(key: string): number {
    const value = this.db.prepare('SELECT value FROM state WHERE key = ?').pluck().get(key) as string | undefined;
    return value === undefined ? 0 : Number(value);
  }

  setNumber(key: string, value: number): void {
    this.db.prepare('INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, String(value));
  }
}

interface ScanRow {
  repository: string;
  digest: string;
  state: 'done' | 'failed';
  reason: string | null;
  platform: string | null;
  os: string | null;
  packages: number;
  generation: number;
  scanned_at: number;
  sbom_digest: string | null;
  report_digest: string | null;
  by_severity: string | null;
  findings: string;
}

function fromRow(row: ScanRow): ScanRecord {
  const record: ScanRecord = {
    repository: row.repository,
    digest: row.digest,
    state: row.state,
    packages: row.packages,
    generation: row.generation,
    scannedAt: row.scanned_at,
    findings: JSON.parse(row.findings) as ScanRecord['findings'],
  };
  if (row.reason !== null) record.reason = row.reason;
  if (row.platform !== null) record.platform = JSON.parse(row.platform) as Platform;
  if (row.os !== null) record.os = JSON.parse(row.os) as OsRelease;
  if (row.sbom_digest !== null) record.sbomDigest = row.sbom_digest;
  if (row.report_digest !== null) record.reportDigest = row.report_digest;
  if (row.by_severity !== null) record.bySeverity = JSON.parse(row.by_severity) as Record<Severity, number>;
  return record;
}
