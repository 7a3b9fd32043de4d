import { RegistryError } from '../errors/index.js';
import type { AccountStore, PermissionRecord } from '../metadata/account-store.js';
import { parseDuration } from '../config/duration.js';
import { isValidPattern, parseActions } from './access.js';
import type { AuditSink } from './audit-log.js';
import type { HtpasswdFile } from './htpasswd.js';
import { ROBOT_PREFIX } from './identity.js';
import { hashPassword, newSecret, sha256Hex } from './passwords.js';
import { isValidSubject, type Policy } from './policy.js';

const USER_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const ROBOT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MIN_PASSWORD = 8;
const MAX_PASSWORD = 72; // bcrypt reads no further

type Body = Record<string, unknown>;

function invalid(message: string): RegistryError {
  return new RegistryError('INVALID_REQUEST', { message });
}

function bodyOf(input: unknown): Body {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw invalid('the body must be a JSON object');
  return input as Body;
}

function password(body: Body): string {
  const value = body.password;
  if (typeof value !== 'string' || value.length < MIN_PASSWORD || Buffer.byteLength(value) > MAX_PASSWORD) {
    throw invalid(`password must be a string of ${MIN_PASSWORD} to ${MAX_PASSWORD} bytes`);
  }
  return value;
}

function groups(body: Body): string[] {
  const value = body.groups ?? [];
  if (!Array.isArray(value) || value.some((g) => typeof g !== 'string' || !GROUP_NAME.test(g))) throw invalid('groups must be a list of group names');
  return [...new Set(value as string[])];
}

/**
 * Users, robots and policy rules as the admin API manages them. Bodies are read field by field:
 * anything unknown (or privileged, such as `admin` or `permissions` on a user) is ignored.
 */
export class AccountAdmin {
  constructor(
    private readonly deps: { accounts: AccountStore; policy: Policy; htpasswd?: HtpasswdFile; audit: AuditSink },
  ) {}

  /** Audits an admin change made elsewhere (immutable-tag rules live in the registry's metadata). */
  recordChange(action: string, actor: string, detail: Record<string, unknown>): void {
    this.deps.audit.record({ event: 'admin', action, actor, ...detail });
  }

  async listUsers(): Promise<Array<{ name: string; groups: string[]; source: 'htpasswd' | 'wharf' }>> {
    const out: Array<{ name: string; groups: string[]; source: 'htpasswd' | 'wharf' }> = [];
    const stored = await this.deps.accounts.listUsers();
    const fromFile = new Set(this.deps.htpasswd?.names() ?? []);
    const groupsOf = (name: string, own: string[]) => [...new Set([...own, ...this.deps.policy.configGroupsOf(name)])].sort();
    for (const name of fromFile) out.push({ name, groups: groupsOf(name, stored.find((u) => u.name === name)?.groups ?? []), source: 'htpasswd' });
    for (const user of stored) if (!fromFile.has(user.name)) out.push({ name: user.name, groups: groupsOf(user.name, user.groups), source: 'wharf' });
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async addUser(input: unknown, actor: string): Promise<{ name: string; groups: string[] }> {
    const body = bodyOf(input);
    const name = body.name;
    if (typeof name !== 'string' || !USER_NAME.test(name)) throw invalid('name must be 1 to 64 letters, digits, ".", "_", "@" or "-"');
    if (this.deps.htpasswd?.has(name)) throw new RegistryError('CONFLICT', { message: 'the user is in the htpasswd file' });
    const user = { name, passwordHash: await hashPassword(password(body)), groups: groups(body) };
    if (!(await this.deps.accounts.createUser(user))) throw new RegistryError('CONFLICT', { detail: { name } });
    this.deps.audit.record({ event: 'admin', action: 'user.add', actor, target: name, groups: user.groups });
    return { name, groups: user.groups };
  }

  async changePassword(name: string, input: unknown, actor: string): Promise<void> {
    const body = bodyOf(input);
    const hash = await hashPassword(password(body));
    if (!(await this.deps.accounts.updateUser(name, { passwordHash: hash }))) throw this.noUser(name);
    await this.deps.accounts.deleteRefreshTokens(name);
    this.deps.audit.record({ event: 'admin', action: 'user.passwd', actor, target: name });
  }

  async setGroups(name: string, input: unknown, actor: string): Promise<void> {
    const list = groups(bodyOf(input));
    if (!(await this.deps.accounts.updateUser(name, { groups: list }))) throw this.noUser(name);
    this.deps.audit.record({ event: 'admin', action: 'user.groups', actor, target: name, groups: list });
  }

  async removeUser(name: string, actor: string): Promise<void> {
    if (!(await this.deps.accounts.deleteUser(name))) throw this.noUser(name);
    await this.deps.accounts.deleteRefreshTokens(name);
    this.deps.audit.record({ event: 'admin', action: 'user.remove', actor, target: name });
  }

  async listRobots(): Promise<Array<Record<string, unknown>>> {
    return (await this.deps.accounts.listRobots()).map((robot) => ({
      name: `${ROBOT_PREFIX}${robot.name}`,
      permissions: robot.permissions,
      createdAt: new Date(robot.createdAt).toISOString(),
      ...(robot.createdBy ? { createdBy: robot.createdBy } : {}),
      ...(robot.expiresAt !== undefined ? { expiresAt: new Date(robot.expiresAt).toISOString(), expired: robot.expiresAt <= Date.now() } : {}),
      ...(robot.description ? { description: robot.description } : {}),
    }));
  }

  /** Creates a robot and returns its token, which is never shown again. */
  async createRobot(input: unknown, actor: string): Promise<{ name: string; token: string; permissions: PermissionRecord[]; expiresAt?: string }> {
    const body = bodyOf(input);
    const raw = typeof body.name === 'string' && body.name.startsWith(ROBOT_PREFIX) ? body.name.slice(ROBOT_PREFIX.length) : body.name;
    if (typeof raw !== 'string' || !ROBOT_NAME.test(raw)) throw invalid('name must be 1 to 64 lowercase letters, digits, ".", "_" or "-"');
    const permissions = this.robotPermissions(body);
    let expiresAt: number | undefined;
    if (body.expires !== undefined && body.expires !== null && body.expires !== '') {
      const ms = typeof body.expires === 'string' ? parseExpiry(body.expires) : undefined;
      if (ms === undefined || ms <= 0) throw invalid('expires must be a duration such as 90d, 720h or 30m');
      expiresAt = Date.now() + ms;
    }
    const token = newSecret('wharf_rbt_');
    const description = typeof body.description === 'string' ? body.description.slice(0, 256) : undefined;
    const created = await this.deps.accounts.createRobot({
      name: raw,
      tokenHash: sha256Hex(token),
      permissions,
      createdBy: actor,
      ...(expiresAt !== undefined ? { expiresAt } : {}),
      ...(description ? { description } : {}),
    });
    if (!created) throw new RegistryError('CONFLICT', { detail: { name: `${ROBOT_PREFIX}${raw}` } });
    this.deps.audit.record({ event: 'admin', action: 'robot.create', actor, target: `${ROBOT_PREFIX}${raw}`, permissions });
    return { name: `${ROBOT_PREFIX}${raw}`, token, permissions, ...(expiresAt !== undefined ? { expiresAt: new Date(expiresAt).toISOString() } : {}) };
  }

  async revokeRobot(name: string, actor: string): Promise<void> {
    const raw = name.startsWith(ROBOT_PREFIX) ? name.slice(ROBOT_PREFIX.length) : name;
    if (!(await this.deps.accounts.deleteRobot(raw))) throw new RegistryError('NOT_FOUND', { message: 'no such robot', detail: { name } });
    await this.deps.accounts.deleteRefreshTokens(`${ROBOT_PREFIX}${raw}`);
    this.deps.audit.record({ event: 'admin', action: 'robot.revoke', actor, target: `${ROBOT_PREFIX}${raw}` });
  }

  async listPolicy(): Promise<{ rules: Array<Record<string, unknown>>; groups: Record<string, string[]> }> {
    const rules = (await this.deps.policy.rules()).map((rule) => ({
      ...(rule.id !== undefined ? { id: rule.id } : {}),
      source: rule.source,
      subject: rule.subject,
      repository: rule.repository,
      actions: rule.actions,
    }));
    return { rules, groups: this.deps.policy.groupNames() };
  }

  async addRule(input: unknown, actor: string): Promise<Record<string, unknown>> {
    const body = bodyOf(input);
    const { subject, repository } = body;
    if (typeof subject !== 'string' || !isValidSubject(subject)) throw invalid('subject must be user:NAME, group:NAME, robot:NAME, authenticated or anonymous');
    if (typeof repository !== 'string' || !isValidPattern(repository)) throw invalid('repository must be a repository pattern such as team/*, team/** or **');
    let actions;
    try {
      actions = parseActions(body.actions, 'actions');
    } catch (error) {
      throw invalid((error as Error).message);
    }
    if (subject === 'anonymous' && actions.some((a) => a !== 'pull')) throw invalid('anonymous may only be granted pull');
    if (subject.startsWith('robot:') && actions.includes('admin')) throw invalid('robots cannot be administrators');
    const record = await this.deps.accounts.addRule({ subject, repository, actions, createdBy: actor });
    await this.deps.policy.refresh(true);
    this.deps.audit.record({ event: 'admin', action: 'policy.add', actor, rule: { id: record.id, subject, repository, actions } });
    return { id: record.id, source: 'api', subject, repository, actions };
  }

  async removeRule(id: number, actor: string): Promise<void> {
    if (!Number.isSafeInteger(id) || !(await this.deps.accounts.deleteRule(id))) throw new RegistryError('NOT_FOUND', { message: 'no such rule (rules from the config file are changed there)', detail: { id } });
    await this.deps.policy.refresh(true);
    this.deps.audit.record({ event: 'admin', action: 'policy.remove', actor, rule: { id } });
  }

  private robotPermissions(body: Body): PermissionRecord[] {
    const repositories = typeof body.repositories === 'string' ? [body.repositories] : body.repositories;
    if (!Array.isArray(repositories) || repositories.length === 0 || repositories.some((r) => typeof r !== 'string' || !isValidPattern(r))) {
      throw invalid('repositories must be a list of repository patterns such as ci/* or team/**');
    }
    let actions;
    try {
      actions = parseActions(body.actions ?? ['pull'], 'actions');
    } catch (error) {
      throw invalid((error as Error).message);
    }
    if (actions.includes('admin')) throw invalid('robots cannot be administrators');
    return (repositories as string[]).map((repository) => ({ repository, actions }));
  }

  private noUser(name: string): RegistryError {
    const inFile = this.deps.htpasswd?.has(name);
    return new RegistryError('NOT_FOUND', { message: inFile ? 'the user is in the htpasswd file; change it there' : 'no such user', detail: { name } });
  }
}

/** `90d`, `2w` or any Go duration (`720h`). */
function parseExpiry(text: string): number | undefined {
  const m = /^(\d+)([dw])$/.exec(text.trim());
  if (m) return Number(m[1]) * (m[2] === 'd' ? 86_400_000 : 7 * 86_400_000);
  return parseDuration(text);
}
