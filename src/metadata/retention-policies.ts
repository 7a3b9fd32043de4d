import { RegistryError } from '../errors/index.js';
import { globMatches } from './immutable-tag-rules.js';

/**
 * Retention policies: which tags and untagged manifests of the repositories matching a pattern
 * go when retention runs (docs/lifecycle.md). The rules are the union of Harbor's, Zot's and
 * GitLab's cleanup policies:
 *
 * - A tag is kept when an immutable-tag rule covers it, when it matches one of `keepTags`, or
 *   when it is among the `keepLastPushed` most recently pushed or the `keepLastPulled` most
 *   recently pulled tags of its repository.
 * - Every other tag goes, except that `olderThanMs` spares tags pushed within that time and
 *   `notPulledWithinMs` spares tags pulled (or, never pulled, pushed) within that time; with both,
 *   a tag must be old on both counts to go. A policy that sets none of the tag rules leaves tags alone.
 * - With `untaggedOlderThanMs`, manifests that no tag keeps and that were pushed longer ago go,
 *   unless something kept needs them (an index's children, a subject and its referrers) or a tag
 *   pointed at them within `history.retention` (so a restore still finds them).
 *
 * The first policy (config ones first, then by id) whose repository pattern matches a repository
 * governs it.
 */
export interface RetentionRules {
  keepLastPushed?: number;
  keepLastPulled?: number;
  /** Tag globs (`v*`, `release-?`, `latest`). */
  keepTags?: string[];
  olderThanMs?: number;
  notPulledWithinMs?: number;
  untaggedOlderThanMs?: number;
}

export interface RetentionPolicySpec extends RetentionRules {
  /** A repository glob as in immutable-tag rules: `team/*`, `team/**`, `**`. */
  repositories: string;
}

export interface RetentionPolicy extends RetentionPolicySpec {
  id: number;
  /** `config` policies come from config.yml (replaced at each start); `api` ones from the admin API. */
  source: 'config' | 'api';
  createdAt: number;
  createdBy?: string;
}

const REPOSITORY_PATTERN = /^[a-z0-9._\-/*?]{1,255}$/;
const TAG_PATTERN = /^[A-Za-z0-9._\-*?]{1,128}$/;
const COUNT_MAX = 1_000_000;

/** The keys a policy is written with, in config.yml and the admin API's JSON alike. */
const KEYS = ['repositories', 'keeplastpushed', 'keeplastpulled', 'keeptags', 'olderthan', 'notpulledwithin', 'untaggedolderthan'] as const;

/** Parses `30d`, `720h`, `1w`, `12h30m`, `90s` into milliseconds; undefined when malformed. */
export function parseRetentionDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  if (typeof value !== 'string') return undefined;
  const units: Record<string, number> = { w: 604_800_000, d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  const part = /(\d+(?:\.\d+)?)(ms|w|d|h|m|s)/y;
  const text = value.trim();
  let total = 0;
  let index = 0;
  while (index < text.length) {
    part.lastIndex = index;
    const m = part.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * units[m[2]!]!;
    index = part.lastIndex;
  }
  return index > 0 ? Math.round(total) : undefined;
}

/** The shortest exact rendering: `30d`, `36h`, `90m`, `45s`, `1500ms`. */
export function formatRetentionDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function invalid(where: string, message: string, detail?: Record<string, unknown>): RegistryError {
  return new RegistryError('INVALID_REQUEST', { message: `${where}${message}`, ...(detail ? { detail } : {}) });
}

/**
 * Reads a policy written as `{repositories, keeplastpushed, keeplastpulled, keeptags, olderthan,
 * notpulledwithin, untaggedolderthan}`; throws INVALID_REQUEST naming the key that is wrong.
 * `where` prefixes messages (`retention.policies[2]: `).
 */
export function parseRetentionPolicy(input: unknown, where = ''): RetentionPolicySpec {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw invalid(where, 'a retention policy is a mapping of repositories and rules');
  const raw = input as Record<string, unknown>;
  const unknown = Object.keys(raw).filter((key) => !(KEYS as readonly string[]).includes(key));
  if (unknown.length > 0) throw invalid(where, `unknown key ${unknown[0]} (known: ${KEYS.join(', ')})`, { key: unknown[0] });
  const { repositories } = raw;
  if (typeof repositories !== 'string' || !REPOSITORY_PATTERN.test(repositories)) {
    throw invalid(where, 'repositories must be a pattern of lowercase name characters, / and the wildcards * ** ?', { repositories });
  }
  const spec: RetentionPolicySpec = { repositories };
  const count = (key: 'keeplastpushed' | 'keeplastpulled'): number | undefined => {
    const value = raw[key];
    if (value === undefined || value === null) return undefined;
    const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > COUNT_MAX) throw invalid(where, `${key} must be a whole number from 0 to ${COUNT_MAX}`, { [key]: value });
    return n;
  };
  const duration = (key: 'olderthan' | 'notpulledwithin' | 'untaggedolderthan'): number | undefined => {
    const value = raw[key];
    if (value === undefined || value === null) return undefined;
    const ms = parseRetentionDuration(value);
    if (ms === undefined) throw invalid(where, `${key} must be a duration such as 30d, 720h or 90m`, { [key]: value });
    return ms;
  };
  const pushed = count('keeplastpushed');
  if (pushed !== undefined) spec.keepLastPushed = pushed;
  const pulled = count('keeplastpulled');
  if (pulled !== undefined) spec.keepLastPulled = pulled;
  if (raw.keeptags !== undefined && raw.keeptags !== null) {
    const tags = typeof raw.keeptags === 'string' ? raw.keeptags.split(',').map((t) => t.trim()).filter(Boolean) : raw.keeptags;
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && TAG_PATTERN.test(t))) {
      throw invalid(where, 'keeptags must be a list of tag patterns (tag characters and the wildcards * ?)', { keeptags: raw.keeptags });
    }
    spec.keepTags = tags as string[];
  }
  const older = duration('olderthan');
  if (older !== undefined) spec.olderThanMs = older;
  const notPulled = duration('notpulledwithin');
  if (notPulled !== undefined) spec.notPulledWithinMs = notPulled;
  const untagged = duration('untaggedolderthan');
  if (untagged !== undefined) spec.untaggedOlderThanMs = untagged;
  if (!governsTags(spec) && spec.untaggedOlderThanMs === undefined) {
    throw invalid(where, 'a retention policy needs at least one rule: keeplastpushed, keeplastpulled, keeptags, olderthan, notpulledwithin or untaggedolderthan');
  }
  return spec;
}

/** The policy as it is written (config.yml keys, durations as text), for listings and the API. */
export function describeRetentionPolicy(policy: RetentionPolicySpec): Record<string, unknown> {
  const out: Record<string, unknown> = { repositories: policy.repositories };
  if (policy.keepLastPushed !== undefined) out.keeplastpushed = policy.keepLastPushed;
  if (policy.keepLastPulled !== undefined) out.keeplastpulled = policy.keepLastPulled;
  if (policy.keepTags !== undefined) out.keeptags = policy.keepTags;
  if (policy.olderThanMs !== undefined) out.olderthan = formatRetentionDuration(policy.olderThanMs);
  if (policy.notPulledWithinMs !== undefined) out.notpulledwithin = formatRetentionDuration(policy.notPulledWithinMs);
  if (policy.untaggedOlderThanMs !== undefined) out.untaggedolderthan = formatRetentionDuration(policy.untaggedOlderThanMs);
  return out;
}

/** Whether the policy says anything about tags (otherwise it only removes untagged manifests). */
export function governsTags(rules: RetentionRules): boolean {
  return (
    rules.keepLastPushed !== undefined ||
    rules.keepLastPulled !== undefined ||
    rules.keepTags !== undefined ||
    rules.olderThanMs !== undefined ||
    rules.notPulledWithinMs !== undefined
  );
}

/** The policy that governs `repository`: the first in the given order whose pattern matches it. */
export function retentionPolicyFor<P extends RetentionPolicySpec>(policies: readonly P[], repository: string): P | undefined {
  return policies.find((policy) => globMatches(policy.repositories, repository));
}
