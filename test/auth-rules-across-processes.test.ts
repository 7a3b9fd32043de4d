import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Policy } from '../src/auth/policy.js';
import { SqliteAccountStore } from '../src/metadata/sqlite/sqlite-account-store.js';
import { SqliteMetadataStore } from '../src/metadata/sqlite/sqlite-metadata-store.js';

test('a rule granted or revoked through one connection binds a policy on another at its next refresh', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wharf-rules-'));
  const path = join(dir, 'registry.db');
  const metadata = new SqliteMetadataStore({ path });
  // Two connections to one file, as two worker processes (or replicas) have.
  const here = new SqliteAccountStore({ path });
  const there = new SqliteAccountStore({ path });
  try {
    const policy = await Policy.create({ admins: [], public: [], rules: [], groups: {}, defaultActions: [] }, here);
    const erin = { kind: 'user' as const, name: 'erin', groups: [] };
    assert.equal(policy.can(erin, 'team/app', 'pull'), false);

    const before = await here.rulesGeneration();
    const rule = await there.addRule({ subject: 'user:erin', repository: 'team/**', actions: ['pull'] });
    assert.notEqual(await here.rulesGeneration(), before);
    await policy.refresh();
    assert.equal(policy.can(erin, 'team/app', 'pull'), true);

    // Delete and add again: the same count and, without the counter, possibly the same id.
    assert.equal(await there.deleteRule(rule.id), true);
    await there.addRule({ subject: 'user:erin', repository: 'other/**', actions: ['pull'] });
    await policy.refresh();
    assert.equal(policy.can(erin, 'team/app', 'pull'), false);
    assert.equal(policy.can(erin, 'other/app', 'pull'), true);
  } finally {
    await there.close();
    await here.close();
    await metadata.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
