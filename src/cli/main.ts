#!/usr/bin/env node
import { Command } from 'commander';
import { registerServe } from './serve.js';
import { WHARF_VERSION } from '../version.js';

const program = new Command();
program
  .name('wharf')
  .description('Wharf: a container registry (wharf serve) and a registry client')
  .version(WHARF_VERSION);
registerServe(program);

await program.parseAsync(process.argv);
