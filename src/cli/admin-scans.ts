import type { Command } from 'commander';
import { AdminClient, addAdminFlags, run, stdinReader, type AdminFlags } from './admin-client.js';
import { renderTable, timeAgo } from './output.js';

interface JsonFlags extends AdminFlags {
  json?: boolean;
}

interface Scan {
  repository: string;
  digest: string;
  state: 'done' | 'failed';
  reason?: string;
  platform?: { os: string; architecture: string; variant?: string };
  packages: number;
  generation: number;
  scannedAt: number;
  reportDigest?: string;
  bySeverity?: Record<string, number>;
}

const counts = (s: Scan) => (s.bySeverity ? ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'].map((k) => `${k[0]}:${s.bySeverity![k] ?? 0}`).join(' ') : s.state === 'failed' ? (s.reason ?? '') : 'no report yet');

function printScans(scans: Scan[], json: boolean | undefined): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(scans, null, 2)}\n`);
    return;
  }
  process.stdout.write(
    renderTable(
      ['REPOSITORY', 'DIGEST', 'PLATFORM', 'STATE', 'PACKAGES', 'DB', 'SCANNED', 'VULNERABILITIES'],
      scans.map((s) => [
        s.repository,
        s.digest.slice(0, 19),
        s.platform ? [s.platform.os, s.platform.architecture, s.platform.variant].filter(Boolean).join('/') : '',
        s.state,
        String(s.packages),
        String(s.generation),
        timeAgo(new Date(s.scannedAt).toISOString()),
        counts(s),
      ]),
    ),
  );
}

/**
 * `wharf admin scans [REPOSITORY]`, `wharf admin scan REPOSITORY REFERENCE` and
 * `wharf admin scan-report REPOSITORY DIGEST`: the registry's image scans through the admin API.
 */
export function registerAdminScans(admin: Command): void {
  addAdminFlags(admin.command('scans').argument('[repository]', 'only this repository').description("list the registry's last image scans, newest first"))
    .option('--json', 'print JSON')
    .action((repository: string | undefined, flags: JsonFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        const { scans } = (await client.call('GET', `scans${repository ? `?repository=${encodeURIComponent(repository)}` : ''}`)) as { scans: Scan[] };
        printScans(scans, flags.json);
      }),
    );
  addAdminFlags(admin.command('scan').argument('<repository>').argument('<reference>', 'a tag or digest').description('scan an image now (each platform of a multi-arch image)'))
    .option('--json', 'print JSON')
    .action((repository: string, reference: string, flags: JsonFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        const { scans } = (await client.call('POST', 'scans', { repository, reference })) as { scans: Scan[] };
        printScans(scans, flags.json);
      }),
    );
  addAdminFlags(admin.command('scan-report').argument('<repository>').argument('<digest>', 'an image manifest digest').description("print an image's vulnerability report (JSON)")).action(
    (repository: string, digest: string, flags: AdminFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        const report = await client.call('GET', `scans/report?repository=${encodeURIComponent(repository)}&digest=${encodeURIComponent(digest)}`);
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      }),
  );
}
