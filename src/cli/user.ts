import type { Command } from 'commander';
import { AdminClient, addAdminFlags, run, stdinReader, type AdminFlags } from './admin-client.js';

interface UserFlags extends AdminFlags {
  group?: string[];
  newPasswordStdin?: boolean;
}

/**
 * `wharf user add|passwd|rm|ls`: users kept by the registry (htpasswd users are listed, and
 * changed in their file). New passwords are read from stdin, never from the command line.
 */
export function registerUser(program: Command): void {
  const user = program.command('user').description('manage registry users through the admin API');
  const collect = (value: string, previous: string[] = []) => [...previous, value];
  const newPasswordHelp = 'read the new password from stdin (the line after the admin password with --password-stdin)';

  addAdminFlags(user.command('add').argument('<name>').description('add a user').option('-g, --group <group>', 'a group to join (repeatable)', collect))
    .option('--new-password-stdin', newPasswordHelp)
    .action((name: string, flags: UserFlags) =>
      run(async () => {
        const stdin = stdinReader();
        const client = await AdminClient.fromFlags(flags, stdin);
        const password = await newPassword(flags, stdin);
        const created = await client.call('POST', 'users', { name, password, groups: flags.group ?? [] });
        process.stdout.write(`added user ${created.name}${created.groups.length ? ` (groups: ${created.groups.join(', ')})` : ''}\n`);
      }),
    );

  addAdminFlags(user.command('passwd').argument('<name>').description("change a user's password"))
    .option('--new-password-stdin', newPasswordHelp)
    .action((name: string, flags: UserFlags) =>
      run(async () => {
        const stdin = stdinReader();
        const client = await AdminClient.fromFlags(flags, stdin);
        await client.call('PUT', `users/${encodeURIComponent(name)}/password`, { password: await newPassword(flags, stdin) });
        process.stdout.write(`changed the password of ${name}\n`);
      }),
    );

  addAdminFlags(user.command('rm').argument('<name>').description('remove a user')).action((name: string, flags: UserFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      await client.call('DELETE', `users/${encodeURIComponent(name)}`);
      process.stdout.write(`removed user ${name}\n`);
    }),
  );

  addAdminFlags(user.command('ls').description('list users')).action((flags: UserFlags) =>
    run(async () => {
      const client = await AdminClient.fromFlags(flags, stdinReader());
      const { users } = await client.call('GET', 'users');
      for (const u of users as Array<{ name: string; groups: string[]; source: string }>) {
        process.stdout.write(`${u.name}\t${u.source}\t${u.groups.join(',')}\n`);
      }
    }),
  );
}

async function newPassword(flags: UserFlags, stdin: () => Promise<string[]>): Promise<string> {
  if (!flags.newPasswordStdin) throw new Error('pass --new-password-stdin and write the new password to stdin');
  const lines = await stdin();
  const password = flags.passwordStdin ? lines[1] : lines[0];
  if (!password) throw new Error('no new password on stdin');
  return password;
}
