import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/**
 * Packages that only a feature which is off by default needs. Every serving process would carry
 * their heap from the start if a static import reached them (docs/memory.md); they are loaded
 * with `await import()` (or, for pg, at the first pool) where the feature is used.
 */
const OPTIONAL_PACKAGES = [
  'pg', // metadata on PostgreSQL
  'prom-client', // http.debug.prometheus
  'jose', // token auth
  'bcryptjs', // htpasswd
  'http-proxy-agent', // the pull-through cache's upstream client
  'https-proxy-agent',
  '@cyclonedx/cyclonedx-library', // scanning
  'packageurl-js',
  'yauzl',
  'tar-stream',
  'fzstd',
  'marked', // the web UI's README pages
  'sanitize-html',
  'commander', // the CLI
];

/** The static value imports (not `import type`) of a source file: relative paths and package names. */
function staticImports(file: string): string[] {
  const source = readFileSync(file, 'utf8');
  const specifiers = [...source.matchAll(/^(?:import|export)\s+(?!type\b)(?:[^'";]*?\s+from\s+)?'([^']+)'/gm)].map((m) => m[1]!);
  return specifiers;
}

/** Every package a chain of static imports from `entry` reaches, with one such chain. */
function reachedPackages(entry: string): Map<string, string[]> {
  const via = new Map<string, string | undefined>([[entry, undefined]]);
  const queue = [entry];
  const packages = new Map<string, string[]>();
  const chain = (file: string) => {
    const files: string[] = [];
    for (let at: string | undefined = file; at; at = via.get(at)) files.unshift(relative(SRC, at));
    return files;
  };
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const specifier of staticImports(file)) {
      if (specifier.startsWith('.')) {
        const target = join(dirname(file), specifier).replace(/\.js$/, '.ts');
        if (!existsSync(target) || via.has(target)) continue;
        via.set(target, file);
        queue.push(target);
      } else if (!specifier.startsWith('node:')) {
        const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
        if (!packages.has(name)) packages.set(name, chain(file));
      }
    }
  }
  return packages;
}

it('a serving process loads no package that only an optional feature needs', () => {
  const reached = reachedPackages(join(SRC, 'server/worker-main.ts'));
  const offenders = OPTIONAL_PACKAGES.filter((name) => reached.has(name)).map((name) => `${name}: ${reached.get(name)!.join(' > ')}`);
  assert.deepEqual(offenders, []);
  // The check must see the packages a worker does need, or it proves nothing.
  for (const needed of ['better-sqlite3', 'hash-wasm', 'pino']) assert.ok(reached.has(needed), `${needed} not found: the import scan is broken`);
});

it('`wharf serve` (the CLI entry) loads the other commands only when it runs one of them', () => {
  const reached = reachedPackages(join(SRC, 'cli/main.ts'));
  const offenders = [...OPTIONAL_PACKAGES, 'cli-progress'].filter((name) => name !== 'commander' && reached.has(name)).map((name) => `${name}: ${reached.get(name)!.join(' > ')}`);
  assert.deepEqual(offenders, []);
  assert.ok(reached.has('commander'), 'commander not found: the import scan is broken');
});
