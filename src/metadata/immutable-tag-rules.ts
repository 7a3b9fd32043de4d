import { RegistryError } from '../errors/index.js';

/**
 * Immutable-tag rules: a repository pattern and a tag pattern. A tag that a rule matches may be
 * created, and pushed again with the digest it already has, but never moved to another digest
 * nor deleted (nor removed with its manifest). Every MetadataStore checks the rules inside the
 * transaction that would move or remove the tag, so a rule added through the admin API holds for
 * every process and replica from its commit on.
 *
 * Patterns are globs: `*` matches within one path component (no `/`), `**` across components,
 * `?` one character other than `/`; everything else matches itself.
 */
export interface ImmutableTagRule {
  id: number;
  /** A repository pattern: `release/*`, `team/**`, `**`. */
  repository: string;
  /** A tag pattern: `v*`, `1.?`, `*`. */
  tag: string;
  /** `config` rules come from config.yml (replaced at each start); `api` rules from the admin API. */
  source: 'config' | 'api';
  createdAt: number;
  createdBy?: string;
}

export interface ImmutableTagPattern {
  repository: string;
  tag: string;
}

const REPOSITORY_PATTERN = /^[a-z0-9._\-/*?]{1,255}$/;
const TAG_PATTERN = /^[A-Za-z0-9._\-*?]{1,128}$/;

/** Checks a rule's two patterns; throws INVALID_REQUEST naming what is wrong. */
export function checkImmutableTagPattern(pattern: ImmutableTagPattern): ImmutableTagPattern {
  if (typeof pattern.repository !== 'string' || !REPOSITORY_PATTERN.test(pattern.repository)) {
    throw new RegistryError('INVALID_REQUEST', {
      message: 'repository must be a pattern of lowercase name characters, / and the wildcards * ** ?',
      detail: { repository: pattern.repository },
    });
  }
  if (typeof pattern.tag !== 'string' || !TAG_PATTERN.test(pattern.tag)) {
    throw new RegistryError('INVALID_REQUEST', { message: 'tag must be a pattern of tag characters and the wildcards * ?', detail: { tag: pattern.tag } });
  }
  return { repository: pattern.repository, tag: pattern.tag };
}

/** `release/*:v*` → { repository: 'release/*', tag: 'v*' } (repository patterns never hold `:`). */
export function parseImmutableTagRule(text: string): ImmutableTagPattern {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) {
    throw new RegistryError('INVALID_REQUEST', { message: `"${text}" is not REPOSITORY_PATTERN:TAG_PATTERN (for example release/*:v*)` });
  }
  return checkImmutableTagPattern({ repository: text.slice(0, colon), tag: text.slice(colon + 1) });
}

export function formatImmutableTagRule(rule: ImmutableTagPattern): string {
  return `${rule.repository}:${rule.tag}`;
}

const compiled = new Map<string, RegExp>();

/** Whether `value` matches the glob `pattern` (see the module comment). */
export function globMatches(pattern: string, value: string): boolean {
  let regex = compiled.get(pattern);
  if (!regex) {
    let source = '';
    for (let i = 0; i < pattern.length; i += 1) {
      const c = pattern[i]!;
      if (c === '*' && pattern[i + 1] === '*') {
        // `a/**/b` also matches `a/b`, as Harbor's doublestar does.
        if (pattern[i + 2] === '/') {
          source += '(?:.*/)?';
          i += 2;
        } else {
          source += '.*';
          i += 1;
        }
      } else if (c === '*') source += '[^/]*';
      else if (c === '?') source += '[^/]';
      else source += c.replace(/[.\\+^$()[\]{}|-]/g, '\\$&');
    }
    regex = new RegExp(`^${source}$`);
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, regex);
  }
  return regex.test(value);
}

/** The first rule (lowest id) that makes `tag` in `repository` immutable; undefined when none. */
export function immutableRuleFor(rules: readonly ImmutableTagRule[], repository: string, tag: string): ImmutableTagRule | undefined {
  return rules.find((rule) => globMatches(rule.repository, repository) && globMatches(rule.tag, tag));
}

/** The DENIED error a refused move or delete answers with; the message names the rule. */
export function immutableTagDenied(rule: ImmutableTagRule, repository: string, tag: string, change: 'move' | 'delete'): RegistryError {
  const what = change === 'move' ? 'moved to another digest' : 'deleted';
  return new RegistryError('DENIED', {
    message: `tag ${tag} of ${repository} is immutable (rule ${rule.id}, ${rule.source}: ${formatImmutableTagRule(rule)}) and cannot be ${what}`,
    detail: { repository, tag, rule: { id: rule.id, repository: rule.repository, tag: rule.tag, source: rule.source } },
  });
}
