import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccountStore } from '../../src/metadata/account-store.js';

/**
 * The behaviour every AccountStore must have (SQLite, PostgreSQL). Each implementation's test
 * file calls this with a factory returning a fresh, empty store (and a second store on the same
 * data, as another process or replica would have it).
 */
export function accountStoreContract(name: string, create: () => Promise<{ store: AccountStore; other: () => Promise<AccountStore> }>): void {
  describe(`AccountStore contract: ${name}`, () => {
    it('creates, changes, lists and deletes users; a taken name is refused', async () => {
      const { store } = await create();
      assert.equal(await store.getUser('ann'), undefined);
      assert.equal(await store.createUser({ name: 'ann', passwordHash: '$2b$10$hash', groups: ['dev'] }), true);
      assert.equal(await store.createUser({ name: 'ann', passwordHash: 'other', groups: [] }), false);
      assert.equal(await store.createUser({ name: 'bob', passwordHash: '$2b$10$bob', groups: [] }), true);
      const ann = (await store.getUser('ann'))!;
      assert.deepEqual([ann.name, ann.passwordHash, ann.groups], ['ann', '$2b$10$hash', ['dev']]);
      assert.ok(ann.createdAt > 0 && ann.updatedAt >= ann.createdAt);
      assert.equal(await store.updateUser('ann', { groups: ['dev', 'ops'] }), true);
      assert.equal(await store.updateUser('ann', { passwordHash: '$2b$10$new' }), true);
      assert.equal(await store.updateUser('nobody', { groups: [] }), false);
      assert.deepEqual(await store.getUser('ann').then((u) => [u!.passwordHash, u!.groups]), ['$2b$10$new', ['dev', 'ops']]);
      assert.deepEqual((await store.listUsers()).map((u) => u.name), ['ann', 'bob']);
      assert.equal(await store.deleteUser('ann'), true);
      assert.equal(await store.deleteUser('ann'), false);
      assert.deepEqual((await store.listUsers()).map((u) => u.name), ['bob']);
      await store.close();
    });

    it('keeps robots with their permissions, description, creator and expiry', async () => {
      const { store } = await create();
      const robot = { name: 'ci', tokenHash: 'a'.repeat(64), permissions: [{ repository: 'team/*', actions: ['pull', 'push'] }], description: 'builds', createdBy: 'ann', expiresAt: 4_000_000_000_000 };
      assert.equal(await store.createRobot(robot), true);
      assert.equal(await store.createRobot({ name: 'ci', tokenHash: 'b'.repeat(64), permissions: [] }), false);
      assert.equal(await store.createRobot({ name: 'plain', tokenHash: 'c'.repeat(64), permissions: [] }), true);
      const stored = (await store.getRobot('ci'))!;
      assert.deepEqual({ ...stored, createdAt: 0 }, { ...robot, createdAt: 0 });
      const plain = (await store.getRobot('plain'))!;
      assert.equal(plain.expiresAt, undefined);
      assert.equal(plain.description, undefined);
      assert.deepEqual((await store.listRobots()).map((r) => r.name), ['ci', 'plain']);
      assert.equal(await store.deleteRobot('ci'), true);
      assert.equal(await store.deleteRobot('ci'), false);
      assert.equal(await store.getRobot('ci'), undefined);
      await store.close();
    });

    it('numbers policy rules and changes the generation on every change, seen by other processes', async () => {
      const { store, other } = await create();
      const second = await other();
      const start = await second.rulesGeneration();
      const rule = await store.addRule({ subject: 'group:dev', repository: 'team/**', actions: ['pull'], createdBy: 'ann' });
      assert.ok(rule.id > 0);
      assert.deepEqual({ ...rule, createdAt: 0 }, { id: rule.id, subject: 'group:dev', repository: 'team/**', actions: ['pull'], createdAt: 0, createdBy: 'ann' });
      const afterAdd = await second.rulesGeneration();
      assert.notEqual(afterAdd, start);
      const next = await store.addRule({ subject: 'bob', repository: 'bob/*', actions: ['pull', 'push'] });
      assert.ok(next.id > rule.id);
      assert.deepEqual((await second.listRules()).map((r) => r.id), [rule.id, next.id]);
      assert.equal(await store.deleteRule(rule.id), true);
      assert.equal(await store.deleteRule(rule.id), false);
      assert.notEqual(await second.rulesGeneration(), afterAdd);
      assert.deepEqual((await second.listRules()).map((r) => r.subject), ['bob']);
      await Promise.all([store.close(), second.close()]);
    });

    it('keeps refresh tokens until they expire or their subject\'s are revoked', async () => {
      const { store } = await create();
      const now = Date.now();
      await store.addRefreshToken({ tokenHash: 'h1', subject: 'ann', createdAt: now, expiresAt: now + 60_000 });
      await store.addRefreshToken({ tokenHash: 'h2', subject: 'ann', createdAt: now, expiresAt: now + 60_000 });
      await store.addRefreshToken({ tokenHash: 'h3', subject: 'bob', createdAt: now, expiresAt: now + 60_000 });
      assert.deepEqual(await store.getRefreshToken('h1'), { tokenHash: 'h1', subject: 'ann', createdAt: now, expiresAt: now + 60_000 });
      assert.equal(await store.getRefreshToken('nope'), undefined);
      assert.equal(await store.deleteRefreshTokens('ann'), 2);
      assert.equal(await store.getRefreshToken('h2'), undefined);
      assert.equal((await store.getRefreshToken('h3'))?.subject, 'bob');
      await store.close();
    });

    it('counts failed sign-ins per key up to a limit, across processes, within a window', async () => {
      const { store, other } = await create();
      const second = await other();
      const now = Date.now();
      const window = { now, windowMs: 60_000 };
      const limits = [{ key: 'k1', max: 3 }];
      const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? store : second).countLoginFailure(limits, window)));
      assert.equal(outcomes.filter((o) => o === undefined).length, 3);
      assert.equal(outcomes.find((o) => o !== undefined)?.get('k1')?.failures, 3);
      assert.deepEqual(await second.loginFailures(['k1', 'k2'], window), new Map([['k1', { failures: 3, startedAt: now }]]));
      await store.forgiveLoginFailures({ clear: [], refund: ['k1'] });
      assert.equal((await store.loginFailures(['k1'], window)).get('k1')?.failures, 2);
      await store.forgiveLoginFailures({ clear: ['k1'], refund: [] });
      assert.deepEqual(await store.loginFailures(['k1'], window), new Map());
      await store.countLoginFailure([{ key: 'old', max: 5 }], { now: now - 120_000, windowMs: 60_000 });
      assert.deepEqual(await store.loginFailures(['old'], window), new Map(), 'a counter older than the window is forgotten');
      await Promise.all([store.close(), second.close()]);
    });
  });
}
