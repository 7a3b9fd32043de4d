import { inventoryToCycloneDx } from './cyclonedx.js';
import type { ImageInventory } from './inventory.js';
import type { VulnerabilityReport } from './matcher.js';
import { SEVERITIES, severityRank, type Severity } from './severity.js';

export const REPORT_FORMATS = ['table', 'json', 'cyclonedx', 'sarif'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];

/** A human-readable table per image, with counts by severity, as CI logs show it. */
export function reportTable(reports: readonly VulnerabilityReport[], name: string): string {
  const lines: string[] = [];
  for (const report of reports) {
    const platform = report.image.platform ? ` (${[report.image.platform.os, report.image.platform.architecture, report.image.platform.variant].filter(Boolean).join('/')})` : '';
    const os = report.image.os ? `${report.image.os.id} ${report.image.os.versionId ?? ''}`.trim() : 'unknown OS';
    lines.push(`${name}${platform} ${report.image.digest}`);
    lines.push(`${os}, ${report.packages} packages, database generation ${report.database.generation}${report.database.updatedAt ? ` (${report.database.updatedAt})` : ''}`);
    const counts = [...SEVERITIES].reverse().map((s) => `${s}: ${report.summary.bySeverity[s]}`).join(', ');
    lines.push(`Total: ${report.summary.total} (${counts}), fixable: ${report.summary.fixable}`);
    if (report.vulnerabilities.length > 0) {
      const rows = report.vulnerabilities.map((f) => [f.package.name, f.id, f.severity, f.installedVersion, f.fixedVersion ?? '', f.aliases.filter((a) => a !== f.id).join(' ')]);
      const header = ['PACKAGE', 'VULNERABILITY', 'SEVERITY', 'INSTALLED', 'FIXED', 'ALIASES'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const format = (row: string[]) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd();
      lines.push('', format(header), ...rows.map(format));
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** CycloneDX 1.5 JSON of one image: its inventory, and its vulnerabilities when matched. */
export function reportCycloneDx(inventory: ImageInventory, report: VulnerabilityReport | undefined, name: string): string {
  const bom = JSON.parse(inventoryToCycloneDx(inventory, { name })) as Record<string, unknown>;
  if (report) {
    bom.vulnerabilities = report.vulnerabilities.map((f) => ({
      'bom-ref': `${f.id}/${f.package.purl}`,
      id: f.id,
      source: { name: f.ecosystem },
      ...(f.aliases.length > 0 ? { references: f.aliases.map((id) => ({ id, source: { name: id.startsWith('CVE-') ? 'NVD' : 'OSV' } })) } : {}),
      ratings: [{ severity: f.severity === 'UNKNOWN' ? 'unknown' : f.severity.toLowerCase(), ...(f.score !== undefined ? { score: f.score, method: 'CVSSv31' } : {}) }],
      ...(f.summary ? { description: f.summary } : {}),
      ...(f.fixedVersion ? { recommendation: `Upgrade ${f.package.name} to ${f.fixedVersion}` } : {}),
      affects: [{ ref: f.package.purl, versions: [{ version: f.installedVersion, status: 'affected' }] }],
    }));
  }
  return JSON.stringify(bom);
}

const SARIF_LEVEL: Record<Severity, string> = { CRITICAL: 'error', HIGH: 'error', MEDIUM: 'warning', LOW: 'note', UNKNOWN: 'note' };

/** SARIF 2.1.0, one rule per vulnerability id, one result per affected package. */
export function reportSarif(reports: readonly VulnerabilityReport[], name: string, version: string): string {
  const rules = new Map<string, object>();
  const results: object[] = [];
  for (const report of reports) {
    for (const f of report.vulnerabilities) {
      if (!rules.has(f.id)) {
        rules.set(f.id, {
          id: f.id,
          name: f.id.replace(/[^A-Za-z0-9]/g, ''),
          shortDescription: { text: f.summary ?? `${f.id} in ${f.package.name}` },
          helpUri: `https://osv.dev/vulnerability/${encodeURIComponent(f.id)}`,
          properties: { 'security-severity': String(f.score ?? { CRITICAL: 9.5, HIGH: 8, MEDIUM: 5.5, LOW: 2, UNKNOWN: 0 }[f.severity]), tags: ['vulnerability', 'security', f.severity] },
        });
      }
      results.push({
        ruleId: f.id,
        level: SARIF_LEVEL[f.severity],
        message: { text: `${f.package.name} ${f.installedVersion} is affected by ${f.id} (${f.severity})${f.fixedVersion ? `; fixed in ${f.fixedVersion}` : '; no fix known'} [${name} ${report.image.digest}]` },
        locations: [{ physicalLocation: { artifactLocation: { uri: f.package.location.replace(/^\//, '') } }, message: { text: f.package.purl } }],
      });
    }
  }
  return JSON.stringify({
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [{ tool: { driver: { name: 'wharf', version, rules: [...rules.values()] } }, results }],
  });
}

/** Parses `--severity` (comma-separated names); throws naming what is not a severity. */
export function parseSeverityList(text: string): Severity[] {
  const list = text.split(',').map((s) => s.trim().toUpperCase()).filter((s) => s !== '');
  for (const s of list) if (!(SEVERITIES as readonly string[]).includes(s)) throw new Error(`--severity: "${s}" is not one of ${SEVERITIES.join(', ')}`);
  return list as Severity[];
}

/** Findings at the listed severities (all when the list is empty). */
export function countAtSeverities(reports: readonly VulnerabilityReport[], severities: readonly Severity[]): number {
  return reports.reduce((n, r) => n + r.vulnerabilities.filter((f) => severities.length === 0 || severities.includes(f.severity)).length, 0);
}

export { severityRank };
