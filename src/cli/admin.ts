import type { Command } from 'commander';
import { formatByteSize } from '../oci/byte-size.js';
import { AdminClient, addAdminFlags, run, stdinReader, type AdminFlags } from './admin-client.js';
import { registerAdminScans } from './admin-scans.js';
import { renderTable } from './output.js';

interface JsonFlags extends AdminFlags {
  json?: boolean;
}

interface Quota {
  name: string;
  scope: 'repository' | 'namespace';
  source: 'config' | 'api';
  limit: number;
  usage: number;
}

interface Usage {
  repository: string;
  bytes: number;
  blobs: number;
  manifests: number;
}

/** A quota's path segment: the name whole, its `/` encoded (`team%2F`). */
const quotaPath = (name: string) => `quotas/${encodeURIComponent(name)}`;

const describeQuota = (q: Quota) =>
  `${q.scope} quota "${q.name}" (${q.source}): limit ${formatByteSize(q.limit)}, usage ${formatByteSize(q.usage)}`;

/**
 * `wharf admin quota set|list|remove` and `wharf admin usage [PREFIX]`: storage quotas and what
 * each repository uses, through the admin API. The usage shown is the number quotas enforce.
 */
export function registerAdmin(program: Command): void {
  const admin = program.command('admin').description('registry administration through the admin API: quotas, usage and notification events');
  registerEvents(admin);
  registerAdminScans(admin);
  const quota = admin.command('quota').description('storage quotas per repository or namespace (a prefix ending in /)');

  addAdminFlags(
    quota
      .command('set')
      .argument('<name>', 'a repository (team/app) or a namespace ending in / (team/)')
      .argument('<limit>', 'a size: 10GiB, 500MiB, 2GB or bytes')
      .description('set (or change) a quota; it applies to the next push'),
  ).action((name: string, limit: string, flags: AdminFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const set = (await client.call('PUT', quotaPath(name), { limit })) as Quota;
      process.stdout.write(`set ${describeQuota(set)}\n`);
    }),
  );

  addAdminFlags(quota.command('list').alias('ls').description('list quotas (from the config file and the API) with their usage'))
    .option('--json', 'print JSON')
    .action((flags: JsonFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        const { quotas } = (await client.call('GET', 'quotas')) as { quotas: Quota[] };
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ quotas }, null, 2)}\n`);
          return;
        }
        const rows = quotas.map((q) => [q.name, q.scope, q.source, formatByteSize(q.limit), formatByteSize(q.usage), percent(q.usage, q.limit)]);
        process.stdout.write(renderTable(['NAME', 'SCOPE', 'SOURCE', 'LIMIT', 'USAGE', 'USED'], rows));
      }),
    );

  addAdminFlags(quota.command('remove').alias('rm').argument('<name>', 'the quota to remove').description('remove a quota set through the API (config-file quotas change only there)')).action(
    (name: string, flags: AdminFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        await client.call('DELETE', quotaPath(name));
        process.stdout.write(`removed quota "${name}"\n`);
      }),
  );

  addAdminFlags(admin.command('usage').argument('[prefix]', 'only repositories whose name starts with this').description('storage used per repository, largest first'))
    .option('--json', 'print JSON')
    .action((prefix: string | undefined, flags: JsonFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        const query = prefix !== undefined ? `?prefix=${encodeURIComponent(prefix)}` : '';
        const { repositories } = (await client.call('GET', `usage${query}`)) as { repositories: Usage[] };
        if (flags.json) {
          process.stdout.write(`${JSON.stringify({ repositories }, null, 2)}\n`);
          return;
        }
        const rows = repositories.map((u) => [u.repository, formatByteSize(u.bytes), String(u.bytes), String(u.blobs), String(u.manifests)]);
        const total = repositories.reduce((sum, u) => sum + u.bytes, 0);
        process.stdout.write(renderTable(['REPOSITORY', 'USAGE', 'BYTES', 'BLOBS', 'MANIFESTS'], rows));
        process.stdout.write(`total ${formatByteSize(total)} (${total} bytes) in ${repositories.length} repositories\n`);
      }),
    );
}

interface EndpointRow {
  name: string;
  url: string;
  disabled: boolean;
  position: number;
  pending: number;
  attempts: number;
  nextAttemptAt?: number;
  lastError?: string;
  parked: number;
}

interface ParkedRow {
  id: number;
  endpoint: string;
  entry: { id: number; at: number; event: { action: string; repository?: string } };
  attempts: number;
  lastError?: string;
  parkedAt: number;
  events: Array<{ id: string; action: string; target: { repository?: string; digest?: string; tag?: string } }>;
}

/** `wharf admin events [ENDPOINT]` and `wharf admin events replay ENDPOINT [ID...]`: notification deliveries. */
function registerEvents(admin: Command): void {
  const events = admin.command('events').description('notification deliveries: pending and parked events per endpoint, and replays');
  addAdminFlags(
    events
      .command('list', { isDefault: true })
      .argument('[endpoint]', 'only this endpoint')
      .description('each endpoint with its pending and failing deliveries, then the events it parked'),
  )
    .option('--json', 'print JSON')
    .action((endpoint: string | undefined, flags: JsonFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        const path = endpoint !== undefined ? `events/${encodeURIComponent(endpoint)}` : 'events';
        const report = (await client.call('GET', path)) as { endpoints: EndpointRow[]; parked: ParkedRow[] };
        if (flags.json) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          return;
        }
        const rows = report.endpoints.map((e) => [
          e.name,
          e.disabled ? 'disabled' : e.attempts > 0 ? 'failing' : 'ok',
          String(e.pending),
          String(e.attempts),
          e.nextAttemptAt !== undefined && e.attempts > 0 ? new Date(e.nextAttemptAt).toISOString() : '',
          String(e.parked),
          e.lastError ?? '',
        ]);
        process.stdout.write(renderTable(['ENDPOINT', 'STATE', 'PENDING', 'ATTEMPTS', 'NEXT ATTEMPT', 'PARKED', 'LAST ERROR'], rows));
        if (report.parked.length === 0) return;
        process.stdout.write('\nparked:\n');
        const parked = report.parked.flatMap((p) =>
          p.events.map((e) => [String(p.id), p.endpoint, e.action, describeTarget(e.target), String(p.attempts), new Date(p.parkedAt).toISOString(), p.lastError ?? '', e.id]),
        );
        process.stdout.write(renderTable(['ID', 'ENDPOINT', 'ACTION', 'TARGET', 'ATTEMPTS', 'PARKED AT', 'LAST ERROR', 'EVENT ID'], parked));
      }),
    );
  addAdminFlags(
    events
      .command('replay')
      .argument('<endpoint>', 'the endpoint whose parked events to send again')
      .argument('[ids...]', 'parked event ids (from `wharf admin events`); all of them when none')
      .description('send parked events again, after whatever is pending, with their original event ids'),
  ).action((endpoint: string, ids: string[], flags: AdminFlags) =>
    run(async () => {
      const numbers = ids.map((id) => {
        const n = Number(id);
        if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`"${id}" is not a parked event id`);
        return n;
      });
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const { replayed } = (await client.call('POST', `events/${encodeURIComponent(endpoint)}/replay`, numbers.length > 0 ? { ids: numbers } : {})) as { replayed: number };
      process.stdout.write(`${replayed} parked event${replayed === 1 ? '' : 's'} of ${endpoint} put back in line\n`);
    }),
  );
}

function describeTarget(target: { repository?: string; digest?: string; tag?: string }): string {
  if (target.repository === undefined) return '';
  if (target.tag !== undefined) return `${target.repository}:${target.tag}`;
  return target.digest !== undefined ? `${target.repository}@${target.digest}` : target.repository;
}

function percent(usage: number, limit: number): string {
  return limit === 0 ? (usage > 0 ? '∞' : '0%') : `${Math.round((usage / limit) * 100)}%`;
}
