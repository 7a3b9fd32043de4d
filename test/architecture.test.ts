import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/** Which top-level modules each module may import (ARCHITECTURE.md: dependencies point one way). */
const ALLOWED: Record<string, string[]> = {
  oci: [],
  errors: ['oci'],
  log: [],
  storage: ['oci', 'errors'],
  metadata: ['oci', 'errors'],
  signing: ['oci', 'errors'],
  registry: ['oci', 'errors', 'storage', 'metadata', 'signing'],
  auth: ['oci', 'errors', 'metadata', 'registry', 'log', 'config'],
  client: ['oci', 'errors', 'signing'],
  proxy: ['oci', 'errors', 'storage', 'metadata', 'registry', 'client'],
  gc: ['oci', 'errors', 'storage', 'metadata', 'registry', 'signing'],
  jobs: ['oci', 'errors', 'metadata'],
  events: ['oci', 'errors', 'metadata', 'registry'],
  migrate: ['oci', 'errors', 'storage', 'metadata', 'registry'],
  config: ['log', 'oci'],
  http: ['oci', 'errors', 'registry', 'auth', 'log', 'proxy', 'events'],
  // The web UI: pages over the registry services, behind the same access control; no HTTP layer of its own.
  ui: ['oci', 'errors', 'metadata', 'registry', 'auth', 'log'],
  server: ['oci', 'errors', 'storage', 'metadata', 'registry', 'auth', 'http', 'config', 'log', 'proxy', 'gc', 'events', 'client', 'jobs', 'migrate', 'ui', 'signing'],
  cli: ['oci', 'errors', 'client', 'config', 'log', 'server', 'auth', 'migrate', 'signing'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

it('imports point one way between modules', () => {
  const violations: string[] = [];
  for (const file of files(SRC)) {
    const rel = relative(SRC, file);
    const module = rel.includes('/') ? rel.split('/')[0]! : undefined;
    if (!module) continue;
    const allowed = ALLOWED[module];
    assert.ok(allowed, `src/${module} is not in the dependency table of test/architecture.test.ts`);
    for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
      const target = relative(SRC, join(file, '..', m[1]!));
      const targetModule = target.includes('/') ? target.split('/')[0]! : undefined;
      if (!targetModule || targetModule === module || targetModule.startsWith('..')) continue;
      if (!allowed.includes(targetModule)) violations.push(`src/${rel} imports src/${target}`);
    }
  }
  assert.deepEqual(violations, []);
});

it('digests are parsed once, where they enter: services take a Digest and never parse one again', () => {
  const offenders: string[] = [];
  for (const file of files(join(SRC, 'registry')).concat(files(join(SRC, 'metadata')))) {
    if (file.endsWith('validation.ts')) continue;
    const text = readFileSync(file, 'utf8');
    if (/\b(parseDigest|asDigest|checkDigest)\(/.test(text)) offenders.push(relative(SRC, file));
  }
  assert.deepEqual(offenders, []);
});

it('the HTTP layer reaches the registry only through its service interfaces', () => {
  const offenders: string[] = [];
  for (const file of files(join(SRC, 'http'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/^import (type )?[^;]*?from '(\.{1,2}\/[^']+)';/gms)) {
      const target = relative(SRC, join(file, '..', m[2]!));
      // Types (request and result shapes) are fine; the classes are the registry's to compose.
      if (m[1] === undefined && /^registry\/(blob|upload|manifest|discovery)-service\.js$/.test(target)) offenders.push(`${relative(SRC, file)} imports ${target}`);
    }
  }
  assert.deepEqual(offenders, []);
});
