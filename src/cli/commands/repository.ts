import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { parseReference } from '../../oci/reference.js';
import { withContext } from '../context.js';

/** `REGISTRY/REPOSITORY` as the commands below take it (no tag or digest). */
function repositoryOf(text: string): { registry: string; repository: string } {
  const ref = parseReference(text.replace(/^docker:\/\//, ''), { defaultTag: false });
  return { registry: ref.registry, repository: ref.repository };
}

/** `wharf star` / `wharf unstar` and `wharf repo set-readme`: Wharf's repository extras (docs/search.md). */
export function registerRepositoryCommands(program: Command): void {
  for (const [name, starred] of [['star', true], ['unstar', false]] as const) {
    program
      .command(name)
      .description(starred ? 'star a repository (as the signed-in user)' : 'remove your star from a repository')
      .argument('<repository>', 'e.g. localhost:5000/team/app')
      .action(async (text: string, _options: unknown, command: Command) =>
        withContext(command, async (context) => {
          const { registry, repository } = repositoryOf(text);
          const stars = await context.client(registry).star(repository, starred);
          if (context.options.json) process.stdout.write(JSON.stringify({ repository: `${registry}/${repository}`, starred, stars }) + '\n');
          else process.stdout.write(`${starred ? 'Starred' : 'Unstarred'} ${registry}/${repository} (${stars} star${stars === 1 ? '' : 's'})\n`);
        }),
      );
  }
  const repo = program.command('repo').description("a repository's README (Wharf registries)");
  repo
    .command('set-readme')
    .description("set a repository's README from a markdown file ('-' reads stdin; an empty file removes it)")
    .argument('<repository>', 'e.g. localhost:5000/team/app')
    .argument('<file>', 'markdown file, or - for standard input')
    .action(async (text: string, file: string, _options: unknown, command: Command) =>
      withContext(command, async (context) => {
        const { registry, repository } = repositoryOf(text);
        const markdown = file === '-' ? await readStdin() : await readFile(file, 'utf8');
        await context.client(registry).setReadme(repository, markdown.trim() === '' ? '' : markdown);
        if (!context.options.quiet) process.stderr.write(`README of ${registry}/${repository} ${markdown.trim() === '' ? 'removed' : 'set'}\n`);
      }),
    );
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
