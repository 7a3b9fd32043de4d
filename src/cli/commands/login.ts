import type { Command } from 'commander';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { ClientError, isClientError } from '../../client/index.js';
import { DOCKER_HUB } from '../../oci/reference.js';
import { withContext } from '../context.js';

/** `https://host:5000/v2/` or `index.docker.io` → the registry host as references name it. */
export function normaliseServer(server: string | undefined): string {
  if (!server) return DOCKER_HUB;
  let host = server.replace(/^https?:\/\//, '');
  const slash = host.indexOf('/');
  if (slash >= 0) host = host.slice(0, slash);
  if (host === 'index.docker.io' || host === 'registry-1.docker.io') return DOCKER_HUB;
  return host;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * Asks on the terminal; `secret` keeps the answer off the screen. The question is readline's own
 * prompt, so that readline's redraws of the line keep it in view.
 */
export function prompt(question: string, secret: boolean): Promise<string> {
  if (!process.stdin.isTTY) return Promise.reject(new Error(`cannot prompt for ${secret ? 'a password' : 'a username'}: stdin is not a terminal (use -u and --password-stdin)`));
  const muted = new Writable({ write: (_chunk, _encoding, done) => done() });
  const rl = createInterface({ input: process.stdin, output: secret ? muted : process.stderr, terminal: true });
  // Asked only now that readline holds the terminal without echo: a password typed at once stays hidden.
  if (secret) process.stderr.write(question);
  return new Promise((resolve) => {
    rl.question(secret ? '' : question, (answer) => {
      rl.close();
      if (secret) process.stderr.write('\n');
      resolve(answer);
    });
  });
}

export function registerLogin(program: Command): void {
  program
    .command('login')
    .description('log in to a registry (credentials go to the docker config or its credential helper)')
    .argument('[server]', 'registry host, Docker Hub by default')
    .option('-u, --username <user>', 'username')
    .option('-p, --password <password>', 'password (prefer --password-stdin)')
    .option('--password-stdin', 'read the password from stdin')
    .action(async (server: string | undefined, options: { username?: string; password?: string; passwordStdin?: boolean }, command: Command) =>
      withContext(command, async (context) => {
        const registry = normaliseServer(server);
        if (options.password !== undefined && options.passwordStdin) throw new Error('--password and --password-stdin are mutually exclusive');
        if (options.password !== undefined) process.stderr.write('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
        let password = options.password;
        if (options.passwordStdin) {
          if (!options.username) throw new Error('--password-stdin needs --username');
          password = await readStdin();
        }
        const username = options.username ?? (await prompt('Username: ', false));
        password ??= await prompt('Password: ', true);
        if (!username || !password) throw new Error('username and password are required');
        const client = context.registries.connect(registry, { credentials: { username, password } });
        let identityToken: string | undefined;
        try {
          ({ identityToken } = await client.verifyLogin());
        } catch (error) {
          // Say what went wrong, not "run wharf login": that is the command that just failed.
          if (isClientError(error, 'unauthorized')) throw new ClientError('unauthorized', `login to ${registry} failed: unauthorized: incorrect username or password`);
          throw error;
        } finally {
          client.close();
        }
        // A registry that hands out an identity token gets that stored instead of the password.
        const where = await context.credentials.store(registry, identityToken ? { username, identityToken } : { username, password });
        if (where.plainFile) {
          process.stderr.write(
            `WARNING! Your credentials are stored unencrypted in ${where.plainFile}.\n` +
              'Set "credsStore" (or "credHelpers") there to keep them in a credential helper instead, and this warning goes away.\n',
          );
        }
        process.stdout.write('Login Succeeded\n');
      }),
    );

  program
    .command('logout')
    .description('remove the stored credentials for a registry')
    .argument('[server]', 'registry host, Docker Hub by default')
    .action(async (server: string | undefined, _options: unknown, command: Command) =>
      withContext(command, async (context) => {
        const registry = normaliseServer(server);
        const removed = await context.credentials.erase(registry);
        if (removed) process.stdout.write(`Removing login credentials for ${registry}\n`);
        else process.stdout.write(`Not logged in to ${registry}\n`);
      }),
    );
}
