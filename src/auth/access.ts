/**
 * The vocabulary of access control: actions, repository patterns and the Docker token
 * protocol's scopes (`repository:team/app:pull,push`, `registry:catalog:*`).
 */

export const ACTIONS = ['pull', 'push', 'delete', 'admin'] as const;
export type Action = (typeof ACTIONS)[number];

export function isAction(value: string): value is Action {
  return (ACTIONS as readonly string[]).includes(value);
}

/** `admin` on a repository includes everything else on it. */
export function expandActions(actions: Iterable<string>): Set<Action> {
  const out = new Set<Action>();
  for (const action of actions) {
    if (action === 'admin' || action === '*') for (const a of ACTIONS) out.add(a);
    else if (isAction(action)) out.add(action);
  }
  return out;
}

/**
 * Parses an action list from config or an API body; throws with the offending word so the
 * caller can report it.
 */
export function parseActions(input: unknown, what: string): Action[] {
  const list = typeof input === 'string' ? input.split(',') : Array.isArray(input) ? input : undefined;
  if (!list || list.length === 0) throw new Error(`${what}: a list of actions (pull, push, delete, admin) is required`);
  const out = new Set<Action>();
  for (const item of list) {
    const action = typeof item === 'string' ? item.trim().toLowerCase() : '';
    if (!isAction(action)) throw new Error(`${what}: "${String(item)}" is not one of pull, push, delete, admin`);
    out.add(action);
  }
  return [...out];
}

const PATTERN = /^(?:\*\*|\*|[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)(?:\/(?:\*\*|\*|[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*))*$/;
const compiled = new Map<string, RegExp>();

/**
 * A repository pattern: path components that are names, `*` (exactly one component) or `**`
 * (any number of components, at least one): `team/*`, `team/**`, `**`.
 */
export function isValidPattern(pattern: string): boolean {
  return pattern.length <= 255 && PATTERN.test(pattern);
}

export function matchesPattern(pattern: string, repository: string): boolean {
  let regex = compiled.get(pattern);
  if (!regex) {
    const source = pattern
      .split('/')
      .map((part) => (part === '**' ? '.+' : part === '*' ? '[^/]+' : part.replace(/[.]/g, '\\.')))
      .join('/');
    regex = new RegExp(`^${source}$`);
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(pattern, regex);
  }
  return regex.test(repository);
}

/** One grant of a token's `access` claim, as the Docker token spec writes it. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/**
 * Parses a `scope` parameter (`repository:name:pull,push`; the name may itself hold colons only
 * as a `host:port/` prefix, which registry names never do, so the last colon splits actions).
 * Returns undefined for anything malformed.
 */
export function parseScope(scope: string): AccessEntry | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  let type = scope.slice(0, first);
  // `repository(plugin):name:pull` is a resource class; it names the same repositories.
  const paren = /^([a-z0-9]+)\([a-z0-9]+\)$/.exec(type);
  if (paren) type = paren[1]!;
  const name = scope.slice(first + 1, last);
  const actions = scope
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  if (!/^[a-z0-9]+$/.test(type) || name === '' || actions.length === 0) return undefined;
  return { type, name, actions };
}

/**
 * The scope a bearer token needs for the admin API. The built-in issuer grants it to registry
 * administrators only, and only when asked for by name: no other scope (`*` actions, catalog,
 * repositories) implies it, so a token fetched for a pull cannot manage accounts.
 */
export const ADMIN_SCOPE = 'registry:admin:*';

/** Whether token claims carry ADMIN_SCOPE. */
export function grantsAdmin(access: readonly AccessEntry[]): boolean {
  return access.some((entry) => entry.type === 'registry' && entry.name === 'admin' && entry.actions.includes('*'));
}

export function formatScope(entry: AccessEntry): string {
  return `${entry.type}:${entry.name}:${entry.actions.join(',')}`;
}

/** Whether a token's access claims allow `action` on a resource. */
export function grants(access: readonly AccessEntry[], type: string, name: string, action: string): boolean {
  return access.some((entry) => entry.type === type && entry.name === name && (entry.actions.includes(action) || entry.actions.includes('*')));
}
