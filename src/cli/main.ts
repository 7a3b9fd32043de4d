#!/usr/bin/env node
import { Command } from 'commander';
import { registerPolicy } from './policy.js';
import { registerRobot } from './robot.js';
import { registerServe } from './serve.js';
import { registerUser } from './user.js';
import { WHARF_VERSION } from '../version.js';

const program = new Command();
program
  .name('wharf')
  .description('Wharf: a container registry (wharf serve) and a registry client')
  .version(WHARF_VERSION);
registerServe(program);
registerUser(program);
registerRobot(program);
registerPolicy(program);

await program.parseAsync(process.argv);
