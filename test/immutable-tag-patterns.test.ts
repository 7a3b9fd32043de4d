import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegistryError } from '../src/errors/index.js';
import { globMatches, immutableRuleFor, parseImmutableTagRule, type ImmutableTagRule } from '../src/metadata/immutable-tag-rules.js';

describe('immutable-tag patterns', () => {
  it('* stays within a component, ** crosses them, ? is one character', () => {
    assert.equal(globMatches('release/*', 'release/app'), true);
    assert.equal(globMatches('release/*', 'release/team/app'), false);
    assert.equal(globMatches('release/**', 'release/team/app'), true);
    assert.equal(globMatches('**', 'any/depth/at/all'), true);
    assert.equal(globMatches('a/**/b', 'a/b'), true);
    assert.equal(globMatches('a/**/b', 'a/x/y/b'), true);
    assert.equal(globMatches('v*', 'v1.2.3'), true);
    assert.equal(globMatches('v*', 'latest'), false);
    assert.equal(globMatches('1.?', '1.2'), true);
    assert.equal(globMatches('1.?', '1.22'), false);
    assert.equal(globMatches('v1.0', 'v1x0'), false, 'a dot is a dot');
  });

  it('parses REPOSITORY:TAG and refuses malformed rules', () => {
    assert.deepEqual(parseImmutableTagRule('release/*:v*'), { repository: 'release/*', tag: 'v*' });
    for (const bad of ['release', ':v*', 'release/*:', 'Release/*:v*', 'release/*:v*:x', 'a b:c']) {
      assert.throws(() => parseImmutableTagRule(bad), (e: unknown) => e instanceof RegistryError && e.code === 'INVALID_REQUEST', bad);
    }
  });

  it('the lowest-numbered matching rule is the one named', () => {
    const rules: ImmutableTagRule[] = [
      { id: 1, repository: 'team/*', tag: 'prod-*', source: 'api', createdAt: 0 },
      { id: 2, repository: '**', tag: 'v*', source: 'config', createdAt: 0 },
    ];
    assert.equal(immutableRuleFor(rules, 'team/app', 'v1')?.id, 2);
    assert.equal(immutableRuleFor(rules, 'team/app', 'prod-1')?.id, 1);
    assert.equal(immutableRuleFor(rules, 'team/app', 'latest'), undefined);
  });
});
