import type { Command } from 'commander';
import { AdminClient, addAdminFlags, run, stdinReader, type AdminFlags } from './admin-client.js';

interface RobotFlags extends AdminFlags {
  repository?: string[];
  actions?: string;
  expires?: string;
  description?: string;
}

/** `wharf robot create|revoke|ls`: long-lived, repository-scoped tokens for CI. */
export function registerRobot(program: Command): void {
  const robot = program.command('robot').description('manage robot accounts (tokens for CI) through the admin API');
  const collect = (value: string, previous: string[] = []) => [...previous, value];

  addAdminFlags(
    robot
      .command('create')
      .argument('<name>')
      .description('create a robot and print its token (shown once); log in as robot$NAME with the token as password')
      .requiredOption('-r, --repository <pattern>', 'a repository pattern it may use, e.g. ci/* (repeatable)', collect)
      .option('-a, --actions <list>', 'pull, push and/or delete, comma-separated', 'pull')
      .option('--expires <duration>', 'lifetime such as 90d or 720h (default: no expiry)')
      .option('--description <text>', 'what the robot is for'),
  ).action((name: string, flags: RobotFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const created = await client.call('POST', 'robots', {
        name,
        repositories: flags.repository,
        actions: flags.actions!.split(','),
        ...(flags.expires ? { expires: flags.expires } : {}),
        ...(flags.description ? { description: flags.description } : {}),
      });
      process.stderr.write(`created ${created.name}${created.expiresAt ? ` (expires ${created.expiresAt})` : ''}; the token is shown only now:\n`);
      process.stdout.write(`${created.token}\n`);
    }),
  );

  addAdminFlags(robot.command('revoke').argument('<name>').description('revoke a robot and its token')).action((name: string, flags: RobotFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      await client.call('DELETE', `robots/${encodeURIComponent(name)}`);
      process.stdout.write(`revoked ${name}\n`);
    }),
  );

  addAdminFlags(robot.command('ls').description('list robots')).action((flags: RobotFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const { robots } = await client.call('GET', 'robots');
      for (const r of robots as Array<{ name: string; permissions: Array<{ repository: string; actions: string[] }>; expiresAt?: string; expired?: boolean }>) {
        const scopes = r.permissions.map((p) => `${p.repository}:${p.actions.join(',')}`).join(' ');
        process.stdout.write(`${r.name}\t${scopes}\t${r.expiresAt ? `${r.expired ? 'expired ' : 'expires '}${r.expiresAt}` : 'no expiry'}\n`);
      }
    }),
  );
}
