import { RegistryError } from '../errors/index.js';
import { formatByteSize } from '../oci/byte-size.js';
import type { QuotaViolation } from './metadata-store.js';

/** Whether a quota name is a namespace (a prefix ending in `/`) rather than one repository. */
export function quotaScope(name: string): 'repository' | 'namespace' {
  return name.endsWith('/') ? 'namespace' : 'repository';
}

/**
 * The error every store throws for a quota a change would exceed: DENIED (403), naming the quota,
 * its limit, its usage and what the change adds, so that the person pushing knows what to free or
 * whom to ask. Shared by every MetadataStore so the wording is the same whichever one refuses.
 */
export function quotaExceeded(violation: QuotaViolation): RegistryError {
  const { name, scope, limit, usage, adds } = violation;
  return new RegistryError('DENIED', {
    message: `${scope} quota "${name}" exceeded: limit ${formatByteSize(limit)}, usage ${formatByteSize(usage)}, this push adds ${formatByteSize(adds)}`,
    detail: { quota: name, scope, limit, usage, adds },
  });
}

/** Of the rules over their limit after adding `adds`, the one with least room; undefined when all fit. */
export function firstViolation(rules: ReadonlyArray<{ name: string; limit: number; usage: number }>, adds: number): QuotaViolation | undefined {
  if (adds <= 0) return undefined;
  let worst: QuotaViolation | undefined;
  for (const rule of rules) {
    if (rule.usage + adds <= rule.limit) continue;
    if (worst === undefined || rule.limit - rule.usage < worst.limit - worst.usage) {
      worst = { name: rule.name, scope: quotaScope(rule.name), limit: rule.limit, usage: rule.usage, adds };
    }
  }
  return worst;
}
