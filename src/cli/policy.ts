import type { Command } from 'commander';
import { AdminClient, addAdminFlags, run, stdinReader, type AdminFlags } from './admin-client.js';

/**
 * `wharf policy ls|grant|revoke|public`: rules granting actions on repository patterns.
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
}
