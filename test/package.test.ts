/**
 * What `npm install -g wharf-registry` and `npx wharf-registry serve` rely on: the package's name
 * is ours (`wharf` on the npm registry is an unrelated package), its one bin is `wharf` and is in
 * the packed files, and the README and the install script say what a fresh Debian machine needs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { ok } from './support/tools.js';

const root = new URL('../', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', root), 'utf8')) as {
  name: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
};
const readme = readFileSync(new URL('README.md', root), 'utf8');

it('is published as wharf-registry with the one bin wharf, which the packed files include', async () => {
  assert.equal(pkg.name, 'wharf-registry');
  // npx runs a package's only bin whatever its name: `npx wharf-registry serve` needs exactly one.
  assert.deepEqual(Object.keys(pkg.bin), ['wharf']);
  const packed = JSON.parse(await ok('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: new URL('.', root).pathname })) as Array<{
    name: string;
    files: Array<{ path: string }>;
  }>;
  assert.equal(packed[0]!.name, 'wharf-registry');
  assert.ok(packed[0]!.files.some((f) => f.path === pkg.bin.wharf), `${pkg.bin.wharf} is packed`);
  assert.match(readFileSync(new URL(pkg.bin.wharf!, root), 'utf8'), /^#!\/usr\/bin\/env node\n/);
});

it('tells a newcomer how to install it and what npm ci needs to build', () => {
  assert.match(readme, /npm install -g wharf-registry/);
  assert.match(readme, /npx wharf-registry serve/);
  assert.doesNotMatch(readme, /npx wharf serve|npm install -g wharf\b(?!-)/);
  assert.match(readme, /python3.*make.*g\+\+/s);
  const script = readFileSync(new URL('scripts/install-test-tools.sh', root), 'utf8');
  for (const tool of ['python3', 'make', 'g++']) assert.match(script, new RegExp(`^\\s+[^#]*\\b${tool.replace(/\+/g, '\\+')}(\\s|$)`, 'm'), `${tool} installed`);
});

it('has no dependency that only pretty-prints logs', () => {
  assert.equal(pkg.dependencies['pino-pretty'], undefined);
});
