import { RegistryError } from '../errors/index.js';
import { parseByteSize } from '../oci/byte-size.js';
import { isValidRepositoryName } from '../oci/names.js';

/**
 * Quota names and limits as operators give them, in the configuration file and through the
 * admin API. A name is a repository (`team-a/app`) or a namespace: a repository-name prefix
 * ending in `/` (`team-a/`), so that `team-a/` never covers `team-ab/x`.
 */
export function isValidQuotaName(name: string): boolean {
  return name.endsWith('/') ? isValidRepositoryName(name.slice(0, -1)) : isValidRepositoryName(name);
}

/** A limit in bytes from `10GiB`, `500MB`, `1.5 GiB` or a number of bytes; undefined when it is none. */
export function parseQuotaLimit(value: unknown): number | undefined {
  return typeof value === 'string' || typeof value === 'number' ? parseByteSize(value) : undefined;
}

/** The admin API's checks: PARAMETER_INVALID / INVALID_REQUEST naming what is wrong. */
export function requireQuotaName(name: string): string {
  if (!isValidQuotaName(name)) {
    throw new RegistryError('PARAMETER_INVALID', { message: 'a quota names a repository (team/app) or a namespace ending in / (team/)', detail: { name } });
  }
  return name;
}

export function requireQuotaLimit(value: unknown): number {
  const limit = parseQuotaLimit(value);
  if (limit === undefined) throw new RegistryError('INVALID_REQUEST', { message: 'limit must be a size such as 10GiB, 500MB or a number of bytes', detail: { limit: value } });
  return limit;
}

/** Thrown for a `quotas` section that cannot be read; the message names the entry. */
export class QuotaConfigError extends Error {}

/**
 * The configuration file's `quotas` list: each entry `{repository: NAME, limit: SIZE}` or
 * `{prefix: NAME/, limit: SIZE}`.
 */
export function parseConfigQuotas(raw: unknown): Array<{ name: string; limit: number }> {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new QuotaConfigError('quotas must be a list of {repository|prefix, limit}');
  const seen = new Set<string>();
  return raw.map((entry: unknown, i) => {
    const where = `quotas[${i}]`;
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw new QuotaConfigError(`${where} must be a mapping`);
    const { repository, prefix, limit, ...rest } = entry as Record<string, unknown>;
    const unknown = Object.keys(rest);
    if (unknown.length > 0) throw new QuotaConfigError(`${where}: unknown key ${unknown[0]} (expected repository or prefix, and limit)`);
    if ((repository === undefined) === (prefix === undefined)) throw new QuotaConfigError(`${where} needs exactly one of repository and prefix`);
    let name: string;
    if (repository !== undefined) {
      if (typeof repository !== 'string' || !isValidRepositoryName(repository)) throw new QuotaConfigError(`${where}.repository: "${String(repository)}" is not a repository name`);
      name = repository;
    } else {
      if (typeof prefix !== 'string' || !prefix.endsWith('/') || !isValidQuotaName(prefix)) {
        throw new QuotaConfigError(`${where}.prefix: "${String(prefix)}" must be a repository-name prefix ending in / (team-a/)`);
      }
      name = prefix;
    }
    const bytes = parseQuotaLimit(limit);
    if (bytes === undefined) throw new QuotaConfigError(`${where}.limit: "${String(limit)}" is not a size such as 10GiB or 500MB`);
    if (seen.has(name)) throw new QuotaConfigError(`${where}: "${name}" has a quota already`);
    seen.add(name);
    return { name, limit: bytes };
  });
}
