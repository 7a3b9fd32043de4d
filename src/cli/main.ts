#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { registerAdmin } from './admin.js';
import { registerClientCommands } from './commands/index.js';
import { reportError } from './errors.js';
import { registerDb } from './db.js';
import { registerFsck } from './fsck.js';
import { registerGarbageCollect } from './garbage-collect.js';
import { registerMigrate } from './migrate.js';
import { registerPolicy } from './policy.js';
import { registerRobot } from './robot.js';
import { registerServe } from './serve.js';
import { registerUser } from './user.js';
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
registerFsck(program);
registerGarbageCollect(program);
registerMigrate(program);
registerDb(program);
registerUser(program);
registerRobot(program);
registerPolicy(program);
registerAdmin(program);
registerClientCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else {
    process.exitCode = reportError(error);
  }
}
