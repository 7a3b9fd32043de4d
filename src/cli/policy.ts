import type { Command } from 'commander';
import { AdminClient, addAdminFlags, run, stdinReader, type AdminFlags } from './admin-client.js';

/**
 * `wharf policy ls|grant|revoke|public`: rules granting actions on repository patterns.
 * `wharf policy immutable list|add|remove`: immutable-tag rules (docs/lifecycle.md).
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
