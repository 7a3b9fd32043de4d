import type { Command } from 'commander';
import { AdminClient, addAdminFlags, run, stdinReader, type AdminFlags } from './admin-client.js';

/**
 * `wharf policy ls|grant|revoke|public`: rules granting actions on repository patterns.
 * `wharf policy immutable list|add|remove`: immutable-tag rules (docs/lifecycle.md).
 * `wharf policy retention list|add|remove|run`: retention policies (docs/lifecycle.md).
 * Rules from the config file are listed too; they change only there.
 */
export function registerPolicy(program: Command): void {
  const policy = program.command('policy').description('manage access rules through the admin API');

  addAdminFlags(policy.command('ls').description('list rules and groups')).action((flags: AdminFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const { rules, groups } = await client.call('GET', 'policy');
      for (const r of rules as Array<{ id?: number; source: string; subject: string; repository: string; actions: string[] }>) {
        process.stdout.write(`${r.id ?? '-'}\t${r.source}\t${r.subject}\t${r.repository}\t${r.actions.join(',')}\n`);
      }
      for (const [group, members] of Object.entries(groups as Record<string, string[]>)) {
        process.stdout.write(`group ${group}: ${members.join(', ')}\n`);
      }
    }),
  );

  addAdminFlags(
    policy
      .command('grant')
      .argument('<subject>', 'user:NAME, group:NAME, robot:NAME, authenticated or anonymous')
      .argument('<repository>', 'a repository pattern: team/app, team/*, team/** or **')
      .argument('<actions>', 'pull, push, delete, admin (comma-separated)')
      .description('grant actions on repositories'),
  ).action((subject: string, repository: string, actions: string, flags: AdminFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const rule = await client.call('POST', 'policy/rules', { subject, repository, actions: actions.split(',') });
      process.stdout.write(`rule ${rule.id}: ${rule.subject} may ${rule.actions.join(',')} ${rule.repository}\n`);
    }),
  );

  addAdminFlags(policy.command('revoke').argument('<id>', 'a rule id from `wharf policy ls`').description('remove a rule')).action((id: string, flags: AdminFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      await client.call('DELETE', `policy/rules/${encodeURIComponent(id)}`);
      process.stdout.write(`removed rule ${id}\n`);
    }),
  );

  addAdminFlags(policy.command('public').argument('<repository>', 'a repository pattern').description('let anyone pull, without signing in')).action(
    (repository: string, flags: AdminFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        const rule = await client.call('POST', 'policy/rules', { subject: 'anonymous', repository, actions: ['pull'] });
        process.stdout.write(`rule ${rule.id}: anyone may pull ${rule.repository}\n`);
      }),
  );

  registerImmutable(policy);
  registerRetention(policy);
}

interface ImmutableRuleView {
  id: number;
  repository: string;
  tag: string;
  source: string;
  createdBy?: string;
}

/** `wharf policy immutable list|add|remove`, over /admin/v1/policy/immutable. */
function registerImmutable(policy: Command): void {
  const immutable = policy.command('immutable').description('tags that may be pushed once and never moved or deleted');

  addAdminFlags(immutable.command('list').alias('ls').description('list immutable-tag rules (config and API ones)')).action((flags: AdminFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const { rules } = (await client.call('GET', 'policy/immutable')) as { rules: ImmutableRuleView[] };
      for (const r of rules) process.stdout.write(`${r.id}\t${r.source}\t${r.repository}:${r.tag}\t${r.createdBy ?? '-'}\n`);
    }),
  );

  addAdminFlags(
    immutable
      .command('add')
      .argument('<rule>', 'REPOSITORY_PATTERN:TAG_PATTERN, e.g. release/*:v* or team/**:prod-*')
      .description('make matching tags immutable, from the next push on, in every serving process'),
  ).action((rule: string, flags: AdminFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const colon = rule.indexOf(':');
      const body = colon > 0 ? { repository: rule.slice(0, colon), tag: rule.slice(colon + 1) } : { repository: rule, tag: '' };
      const added = (await client.call('POST', 'policy/immutable', body)) as ImmutableRuleView;
      process.stdout.write(`immutable rule ${added.id}: ${added.repository}:${added.tag}\n`);
    }),
  );

  addAdminFlags(immutable.command('remove').alias('rm').argument('<id>', 'a rule id from `wharf policy immutable list`').description('remove an immutable-tag rule')).action(
    (id: string, flags: AdminFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        await client.call('DELETE', `policy/immutable/${encodeURIComponent(id)}`);
        process.stdout.write(`removed immutable rule ${id}\n`);
      }),
  );
}

interface RetentionPolicyView {
  id: number;
  source: string;
  repositories: string;
  createdBy?: string;
  [rule: string]: unknown;
}

interface TagDecision {
  tag: string;
  digest: string;
  reason: string;
}

interface RetentionReport {
  dryRun: boolean;
  durationMs: number;
  repositories: Array<{
    repository: string;
    policy: number;
    deletedTags: TagDecision[];
    keptTags: TagDecision[];
    skippedTags: TagDecision[];
    deletedManifests: string[];
    restorableManifests: string[];
  }>;
  totals: { repositories: number; tagsDeleted: number; tagsKept: number; manifestsDeleted: number };
}

const RULE_KEYS = ['keeplastpushed', 'keeplastpulled', 'keeptags', 'olderthan', 'notpulledwithin', 'untaggedolderthan'];

function describeRules(policy: RetentionPolicyView): string {
  return RULE_KEYS.filter((key) => policy[key] !== undefined)
    .map((key) => `${key}=${Array.isArray(policy[key]) ? (policy[key] as string[]).join(',') : String(policy[key])}`)
    .join(' ');
}

/** `wharf policy retention list|add|remove|run`, over /admin/v1/policy/retention. */
function registerRetention(policy: Command): void {
  const retention = policy.command('retention').description('which tags and untagged manifests go, per repository pattern, on a schedule or on demand');

  addAdminFlags(retention.command('list').alias('ls').description('list retention policies in the order they apply (config ones first)')).action((flags: AdminFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const { policies } = (await client.call('GET', 'policy/retention')) as { policies: RetentionPolicyView[] };
      for (const p of policies) process.stdout.write(`${p.id}\t${p.source}\t${p.repositories}\t${describeRules(p)}\t${p.createdBy ?? '-'}\n`);
    }),
  );

  addAdminFlags(
    retention
      .command('add')
      .argument('<repositories>', 'a repository pattern: team/app, team/*, team/** or **')
      .option('--keep-last-pushed <n>', 'keep the N most recently pushed tags')
      .option('--keep-last-pulled <n>', 'keep the N most recently pulled tags')
      .option('--keep-tags <patterns>', 'keep tags matching these patterns (comma-separated, e.g. latest,v*)')
      .option('--older-than <duration>', 'delete only tags pushed longer ago than this (30d, 720h)')
      .option('--not-pulled-within <duration>', 'delete only tags not pulled (or, never pulled, pushed) within this')
      .option('--untagged-older-than <duration>', 'delete untagged manifests pushed longer ago than this')
      .description('add a policy; it applies from the next run, in every serving process'),
  ).action((repositories: string, options: Record<string, string | undefined> & AdminFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(options, stdinReader());
      const body: Record<string, unknown> = { repositories };
      const number = (value: string | undefined) => (value !== undefined && /^\d+$/.test(value) ? Number(value) : value);
      if (options.keepLastPushed !== undefined) body.keeplastpushed = number(options.keepLastPushed);
      if (options.keepLastPulled !== undefined) body.keeplastpulled = number(options.keepLastPulled);
      if (options.keepTags !== undefined) body.keeptags = options.keepTags.split(',').map((t) => t.trim()).filter(Boolean);
      if (options.olderThan !== undefined) body.olderthan = options.olderThan;
      if (options.notPulledWithin !== undefined) body.notpulledwithin = options.notPulledWithin;
      if (options.untaggedOlderThan !== undefined) body.untaggedolderthan = options.untaggedOlderThan;
      const added = (await client.call('POST', 'policy/retention', body)) as RetentionPolicyView;
      process.stdout.write(`retention policy ${added.id}: ${added.repositories} ${describeRules(added)}\n`);
    }),
  );

  addAdminFlags(retention.command('remove').alias('rm').argument('<id>', 'a policy id from `wharf policy retention list`').description('remove a retention policy')).action(
    (id: string, flags: AdminFlags) =>
      run(async () => {
        const client = await AdminClient.fromFlags(flags, stdinReader());
        await client.call('DELETE', `policy/retention/${encodeURIComponent(id)}`);
        process.stdout.write(`removed retention policy ${id}\n`);
      }),
  );

  addAdminFlags(
    retention
      .command('run')
      .option('-d, --dry-run', 'list what would go; change nothing')
      .option('--repositories <pattern>', 'only repositories matching this pattern')
      .option('--json', 'print the report as JSON')
      .description('apply the policies now (the freed blobs go at the next garbage collection)'),
  ).action((options: { dryRun?: boolean; repositories?: string; json?: boolean } & AdminFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(options, stdinReader());
      const report = (await client.call('POST', 'policy/retention/run', {
        dryRun: options.dryRun === true,
        ...(options.repositories !== undefined ? { repositories: options.repositories } : {}),
      })) as RetentionReport;
      if (options.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const would = report.dryRun ? 'would delete' : 'deleted';
      for (const repo of report.repositories) {
        for (const t of repo.deletedTags) process.stdout.write(`${repo.repository}:${t.tag}\t${would}\t${t.digest}\t${t.reason}\n`);
        for (const t of repo.skippedTags) process.stdout.write(`${repo.repository}:${t.tag}\tskipped (changed since the decision)\t${t.digest}\n`);
        for (const t of repo.keptTags) process.stdout.write(`${repo.repository}:${t.tag}\tkept\t${t.digest}\t${t.reason}\n`);
        for (const d of repo.deletedManifests) process.stdout.write(`${repo.repository}@${d}\t${would} (untagged)\n`);
        for (const d of repo.restorableManifests) process.stdout.write(`${repo.repository}@${d}\tkept (restorable within history.retention)\n`);
      }
      const t = report.totals;
      process.stdout.write(
        `${report.dryRun ? 'dry run: ' : ''}${t.tagsDeleted} tags and ${t.manifestsDeleted} untagged manifests ${would}, ${t.tagsKept} tags kept, in ${t.repositories} repositories (${report.durationMs} ms)\n`,
      );
    }),
  );
}
