import assert from 'node:assert/strict';
import { it } from 'node:test';
import { TokenBuckets } from '../src/server/token-buckets.js';

/** Buckets on a clock the test moves by hand. */
function buckets(config: ConstructorParameters<typeof TokenBuckets>[0]) {
  let now = 1_000_000;
  const limiter = new TokenBuckets(config, () => now);
  return { limiter, advance: (ms: number) => (now += ms) };
}

it('a bucket lets its burst through, then says how many whole seconds until the next token', () => {
  const { limiter, advance } = buckets({ limits: { pulls: { rate: 2, burst: 3 } }, overrides: {} });
  const charge = { family: 'pulls', address: '10.0.0.1' } as const;
  assert.deepEqual([1, 2, 3].map(() => limiter.takeNow(charge)), [0, 0, 0]);
  assert.equal(limiter.takeNow(charge), 1, 'half a second rounds up to one');
  advance(499);
  assert.equal(limiter.takeNow(charge), 1);
  advance(1);
  assert.equal(limiter.takeNow(charge), 0, 'one token after half a second at 2/s');
  assert.equal(limiter.takeNow(charge), 1);
  // Refilling stops at the burst.
  advance(60_000);
  assert.deepEqual([1, 2, 3, 4].map(() => limiter.takeNow(charge)), [0, 0, 0, 1]);
});

it('separate buckets per family, per address, and per user wherever the user comes from', () => {
  const { limiter } = buckets({ limits: { pulls: { rate: 1, burst: 1 }, pushes: { rate: 1, burst: 1 } }, overrides: {} });
  assert.equal(limiter.takeNow({ family: 'pulls', address: 'a' }), 0);
  assert.equal(limiter.takeNow({ family: 'pulls', address: 'a' }), 1);
  assert.equal(limiter.takeNow({ family: 'pushes', address: 'a' }), 0);
  assert.equal(limiter.takeNow({ family: 'pulls', address: 'b' }), 0);
  assert.equal(limiter.takeNow({ family: 'pulls', address: 'a', user: 'alice' }), 0);
  assert.equal(limiter.takeNow({ family: 'pulls', address: 'b', user: 'alice' }), 1, 'alice from another address shares her bucket');
  // A family without a limit is never refused.
  for (let i = 0; i < 100; i += 1) assert.equal(limiter.takeNow({ family: 'auth', address: 'a' }), 0);
});

it('an override gives a user limits of its own for the families it names', () => {
  const { limiter } = buckets({ limits: { pulls: { rate: 1, burst: 1 }, pushes: { rate: 1, burst: 1 } }, overrides: { ci: { pulls: { rate: 1, burst: 5 } } } });
  const passed = (user: string, family: 'pulls' | 'pushes') => Array.from({ length: 10 }, () => limiter.takeNow({ family, address: 'x', user })).filter((w) => w === 0).length;
  assert.equal(passed('ci', 'pulls'), 5);
  assert.equal(passed('ci', 'pushes'), 1);
  assert.equal(passed('alice', 'pulls'), 1);
});

it('forgets buckets that have filled up again, and starts them full', () => {
  const { limiter, advance } = buckets({ limits: { pulls: { rate: 1, burst: 2 } }, overrides: {} });
  for (let i = 0; i < 1000; i += 1) limiter.takeNow({ family: 'pulls', address: `10.0.${i >> 8}.${i & 255}` });
  advance(120_000);
  limiter.takeNow({ family: 'pulls', address: 'sweeper' });
  assert.equal((limiter as unknown as { buckets: Map<string, unknown> }).buckets.size, 1);
  assert.deepEqual([1, 2, 3].map(() => limiter.takeNow({ family: 'pulls', address: '10.0.0.0' })), [0, 0, 1]);
});
