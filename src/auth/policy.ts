import type { AccountStore, RuleRecord } from '../metadata/account-store.js';
import { expandActions, isValidPattern, matchesPattern, parseActions, type Action } from './access.js';
import { ROBOT_PREFIX, type Identity } from './identity.js';

/**
 * A subject of a rule: `user:NAME`, `group:NAME`, `robot:NAME`, `authenticated` (any signed-in
 * user, robots excluded) or `anonymous` (everyone, signed in or not).
 */
export type Subject = string;

export interface Rule {
  /** Present for rules managed through the admin API; config rules cannot be removed there. */
  id?: number;
  source: 'config' | 'api';
  subject: Subject;
  repository: string;
  actions: Action[];
}

export interface PolicySettings {
  admins: string[];
  public: string[];
  /** Actions every signed-in user has on every repository; undefined keeps registry:2's "all but admin". */
  defaultActions: string[] | undefined;
  groups: unknown;
  rules: unknown;
}

export class PolicyError extends Error {}

const SUBJECT = /^(?:anonymous|authenticated|(?:user|group|robot):[^\s:]{1,128})$/;

export function isValidSubject(subject: string): boolean {
  return SUBJECT.test(subject);
}

/**
 * Who may do what on which repository: rules from the config file plus rules kept in the
 * database, each granting actions on a repository pattern to a subject. Permissions only add
 * up; nothing is granted unless a rule says so. Without a policy section in the config, every
 * signed-in user may pull, push and delete everywhere (registry:2's htpasswd behaviour).
 */
export class Policy {
  private readonly configRules: Rule[];
  private readonly configGroups: Map<string, Set<string>>;
  private storedRules: Rule[] = [];
  /** The store's rules generation when storedRules was read. */
  private loadedGeneration: number | undefined;

  private constructor(
    private readonly store: AccountStore | undefined,
    configRules: Rule[],
    configGroups: Map<string, Set<string>>,
  ) {
    this.configRules = configRules;
    this.configGroups = configGroups;
  }

  /** Validates the config's policy section; throws PolicyError naming the bad entry. */
  static async create(settings: PolicySettings | undefined, store?: AccountStore): Promise<Policy> {
    const rules: Rule[] = [];
    const add = (subject: string, repository: string, actions: Action[], where: string) => {
      if (!isValidSubject(subject)) throw new PolicyError(`${where}: "${subject}" is not a subject (user:NAME, group:NAME, robot:NAME, authenticated, anonymous)`);
      if (!isValidPattern(repository)) throw new PolicyError(`${where}: "${repository}" is not a repository pattern (names, * and **)`);
      rules.push({ source: 'config', subject, repository, actions });
    };
    const wrap = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (error) {
        throw error instanceof PolicyError ? error : new PolicyError((error as Error).message);
      }
    };
    const defaults = settings === undefined ? ['pull', 'push', 'delete'] : (settings.defaultActions ?? []);
    if (defaults.length > 0) add('authenticated', '**', wrap(() => parseActions(defaults, 'auth.policy.defaultactions')), 'auth.policy.defaultactions');
    const groups = new Map<string, Set<string>>();
    if (settings) {
      for (const admin of settings.admins) add(admin.includes(':') ? admin : `user:${admin}`, '**', ['admin'], 'auth.policy.admins');
      for (const pattern of settings.public) add('anonymous', pattern, ['pull'], 'auth.policy.public');
      if (settings.groups !== null && settings.groups !== undefined) {
        if (typeof settings.groups !== 'object' || Array.isArray(settings.groups)) throw new PolicyError('auth.policy.groups must map group names to lists of users');
        for (const [group, members] of Object.entries(settings.groups as Record<string, unknown>)) {
          if (!Array.isArray(members) || members.some((m) => typeof m !== 'string')) throw new PolicyError(`auth.policy.groups.${group} must be a list of user names`);
          groups.set(group, new Set(members as string[]));
        }
      }
      const list = settings.rules ?? [];
      if (!Array.isArray(list)) throw new PolicyError('auth.policy.rules must be a list');
      list.forEach((entry: unknown, i) => {
        const where = `auth.policy.rules[${i}]`;
        if (entry === null || typeof entry !== 'object') throw new PolicyError(`${where} must be a mapping`);
        const rule = entry as Record<string, unknown>;
        const subjects = listOf(rule.subjects ?? rule.subject, `${where}.subject`);
        const repositories = listOf(rule.repositories ?? rule.repository, `${where}.repository`);
        const actions = wrap(() => parseActions(rule.actions, `${where}.actions`));
        for (const subject of subjects) for (const repository of repositories) add(subject, repository, actions, where);
      });
    }
    const policy = new Policy(store, rules, groups);
    await policy.refresh(true);
    return policy;
  }

  /** Every rule, config first, for listing. */
  async rules(): Promise<Rule[]> {
    await this.refresh(true);
    return [...this.configRules, ...this.storedRules];
  }

  /** Members named in the config's groups for one user. */
  configGroupsOf(user: string): string[] {
    const out: string[] = [];
    for (const [group, members] of this.configGroups) if (members.has(user)) out.push(group);
    return out;
  }

  groupNames(): Record<string, string[]> {
    return Object.fromEntries([...this.configGroups].map(([g, m]) => [g, [...m].sort()]));
  }

  /**
   * Reloads the database rules when any process has changed them since the last load (call
   * before a burst of decisions): a rule revoked through one worker binds every worker at once.
   */
  async refresh(force = false): Promise<void> {
    if (!this.store) return;
    const generation = await this.store.rulesGeneration();
    if (!force && generation === this.loadedGeneration) return;
    const records = await this.store.listRules();
    this.storedRules = records.flatMap((record) => toRule(record) ?? []);
    this.loadedGeneration = generation;
  }

  /** What the identity may do on a repository, by policy alone (token claims are checked elsewhere). */
  actionsOn(identity: Identity, repository: string): Set<Action> {
    const subjects = this.subjectsOf(identity);
    const granted = new Set<Action>();
    for (const rule of this.allRules()) {
      if (!subjects.has(rule.subject) || !matchesPattern(rule.repository, repository)) continue;
      for (const action of expandActions(rule.actions)) granted.add(action);
    }
    if (identity.kind === 'robot') {
      for (const permission of identity.permissions) {
        if (!matchesPattern(permission.repository, repository)) continue;
        for (const action of expandActions(permission.actions)) if (action !== 'admin') granted.add(action);
      }
    }
    return granted;
  }

  can(identity: Identity, repository: string, action: Action): boolean {
    return this.actionsOn(identity, repository).has(action);
  }

  /** Registry-wide administrators: `admin` on `**`. Only they reach the admin API. */
  isAdministrator(identity: Identity): boolean {
    if (identity.kind !== 'user') return false;
    const subjects = this.subjectsOf(identity);
    return this.allRules().some((rule) => rule.repository === '**' && rule.actions.includes('admin') && subjects.has(rule.subject));
  }

  private allRules(): Rule[] {
    return this.storedRules.length === 0 ? this.configRules : [...this.configRules, ...this.storedRules];
  }

  private subjectsOf(identity: Identity): Set<Subject> {
    const subjects = new Set<Subject>(['anonymous']);
    if (identity.kind === 'user') {
      subjects.add('authenticated');
      subjects.add(`user:${identity.name}`);
      for (const group of identity.groups) subjects.add(`group:${group}`);
      for (const group of this.configGroupsOf(identity.name)) subjects.add(`group:${group}`);
    } else if (identity.kind === 'robot') {
      subjects.add(`robot:${identity.name}`);
      subjects.add(`robot:${ROBOT_PREFIX}${identity.name}`);
    }
    return subjects;
  }
}

function listOf(value: unknown, where: string): string[] {
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? value : undefined;
  if (!list || list.length === 0 || list.some((v) => typeof v !== 'string')) throw new PolicyError(`${where} is required (a string or a list of strings)`);
  return list as string[];
}

function toRule(record: RuleRecord): Rule | undefined {
  try {
    if (!isValidSubject(record.subject) || !isValidPattern(record.repository)) return undefined;
    return { id: record.id, source: 'api', subject: record.subject, repository: record.repository, actions: parseActions(record.actions, 'rule') };
  } catch {
    return undefined;
  }
}
