#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { reportError } from './errors.js';
import { registerServe } from './serve.js';
import { WHARF_VERSION } from '../version.js';

// A reader that went away (`wharf tags x | head -1`) is the end of the output, not an error:
// exit quietly with status 0 as other Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
}

const program = new Command();
program
  .name('wharf')
  .description('Wharf: a container registry (wharf serve) and a registry client')
  .version(WHARF_VERSION)
  .option('--ca-cert <file>', 'trust this CA certificate for registries (repeatable)', (v: string, all: string[] = []) => [...all, v])
  .option('--insecure', 'skip TLS verification and allow plain HTTP')
  .option('--plain-http', 'talk plain HTTP to the registry')
  .option('-q, --quiet', 'no progress output')
  .option('--json', 'machine-readable output')
  .option('--timeout <seconds>', 'cut and retry a connection silent this long (default 60)', (v: string) => {
    const seconds = Number(v);
    if (!(seconds > 0)) throw new Error(`--timeout: "${v}" is not a positive number of seconds`);
    return seconds;
  })
  .exitOverride();
registerServe(program);
// `wharf serve` registers nothing else: the other commands' modules (the client, the scanner's
// and the admin CLI) would stay in the server's memory for as long as it runs.
if (process.argv[2] !== 'serve') {
  const [{ registerFsck }, { registerGarbageCollect }, { registerMigrate }, { registerDb }, { registerUser }, { registerRobot }, { registerPolicy }, { registerAdmin }, { registerClientCommands }, { registerScan }, { registerVulnDb }] =
    await Promise.all([
      import('./fsck.js'),
      import('./garbage-collect.js'),
      import('./migrate.js'),
      import('./db.js'),
      import('./user.js'),
      import('./robot.js'),
      import('./policy.js'),
      import('./admin.js'),
      import('./commands/index.js'),
      import('./scan.js'),
      import('./vulndb.js'),
    ]);
  registerFsck(program);
  registerGarbageCollect(program);
  registerMigrate(program);
  registerDb(program);
  registerUser(program);
  registerRobot(program);
  registerPolicy(program);
  registerAdmin(program);
  registerClientCommands(program);
  registerScan(program);
  registerVulnDb(program);
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else {
    process.exitCode = reportError(error);
  }
}
