import type { Command } from 'commander';
import { parsePlatform } from '../client/index.js';
import { inventoryImage, scanTargets, type ImageInventory } from '../scan/inventory.js';
import { buildReport, matchInventory, type VulnerabilityReport } from '../scan/matcher.js';
import { countAtSeverities, parseSeverityList, REPORT_FORMATS, reportCycloneDx, reportSarif, reportTable, type ReportFormat } from '../scan/report-formats.js';
import { VulnerabilityDatabase } from '../scan/vuln-db.js';
import { WHARF_VERSION } from '../version.js';
import { withContext } from './context.js';
import { databasePath } from './vulndb.js';

interface ScanOptions {
  format: string;
  exitCode?: string;
  severity?: string;
  db?: string;
  platform?: string;
  sbom?: boolean;
}

/**
 * `wharf scan REF`: reads the image's layers from any registry (or the local store, an OCI
 * layout, a docker-archive), lists what is installed and matches it against the client's offline
 * database, all on this machine, as Trivy and grype do. `--exit-code N` with `--severity` makes CI
 * fail on findings at those severities.
 */
export function registerScan(program: Command): void {
  program
    .command('scan')
    .description('list the packages in an image and its known vulnerabilities (offline, client-side)')
    .argument('<image>', 'image reference (localhost:5000/app:v1, oci:DIR:TAG, docker-archive:FILE)')
    .option('--format <format>', `output: ${REPORT_FORMATS.join(', ')}`, 'table')
    .option('--exit-code <n>', 'exit with this status when findings at --severity exist (default 0)')
    .option('--severity <list>', 'severities that count for --exit-code and are shown, comma-separated (CRITICAL,HIGH,MEDIUM,LOW,UNKNOWN)')
    .option('--db <file>', 'the vulnerability database (default: the one `wharf vulndb import` fills)')
    .option('--platform <os/arch[/variant]>', 'scan only this platform of a multi-arch image')
    .option('--sbom', 'inventory only: do not match (no database needed)')
    .action(async (image: string, options: ScanOptions, command: Command) =>
      withContext(command, async (context) => {
        const format = options.format as ReportFormat;
        if (!REPORT_FORMATS.includes(format)) throw new Error(`--format: "${options.format}" is not one of ${REPORT_FORMATS.join(', ')}`);
        const exitCode = options.exitCode === undefined ? 0 : Number(options.exitCode);
        if (!Number.isInteger(exitCode) || exitCode < 0 || exitCode > 255) throw new Error(`--exit-code: "${options.exitCode}" is not a status from 0 to 255`);
        const severities = options.severity ? parseSeverityList(options.severity) : [];
        const { source } = context.openNamedSource(image);
        const db = options.sbom ? undefined : VulnerabilityDatabase.openExisting(databasePath(options));
        if (!options.sbom && !db) process.stderr.write('wharf: no vulnerability database yet (run "wharf vulndb import PATH"); listing packages only\n');
        try {
          let targets = await scanTargets(source);
          if (options.platform) {
            const wanted = parsePlatform(options.platform);
            targets = targets.filter((t) => t.platform?.os === wanted.os && t.platform.architecture === wanted.architecture && (!wanted.variant || t.platform.variant === wanted.variant));
            if (targets.length === 0) throw new Error(`${image} has no ${options.platform} image`);
          }
          const inventories: ImageInventory[] = [];
          const reports: VulnerabilityReport[] = [];
          for (const target of targets) {
            const inventory = await inventoryImage(source, target);
            inventories.push(inventory);
            const report = db
              ? matchInventory(inventory, db, { scannerVersion: WHARF_VERSION })
              : buildReport(inventory, [], { scannerVersion: WHARF_VERSION, database: { generation: 0 }, source: 'wharf' });
            if (severities.length > 0) {
              report.vulnerabilities = report.vulnerabilities.filter((f) => severities.includes(f.severity));
            }
            reports.push(report);
          }
          process.stdout.write(render(format, image, inventories, reports));
          if (exitCode !== 0 && countAtSeverities(reports, severities) > 0) process.exitCode = exitCode;
        } finally {
          db?.close();
          await source.close();
        }
      }),
    );
}

function render(format: ReportFormat, name: string, inventories: ImageInventory[], reports: VulnerabilityReport[]): string {
  switch (format) {
    case 'table':
      return reportTable(reports, name);
    case 'json':
      return `${JSON.stringify(reports.length === 1 ? { ...reports[0], inventory: inventories[0]!.packages } : reports.map((r, i) => ({ ...r, inventory: inventories[i]!.packages })), null, 2)}\n`;
    case 'sarif':
      return `${reportSarif(reports, name, WHARF_VERSION)}\n`;
    case 'cyclonedx':
      // One document per platform, one per line.
      return inventories.map((inventory, i) => `${reportCycloneDx(inventory, reports[i], name)}\n`).join('');
  }
}
