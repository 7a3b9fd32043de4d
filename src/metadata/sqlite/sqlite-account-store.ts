import Database from 'better-sqlite3';
import type { AccountStore, LoginFailures, LoginWindow, RefreshTokenRecord, RobotRecord, RuleRecord, UserRecord } from '../account-store.js';
import { toRobot, toRule, toUser, type RobotRow, type RuleRow, type UserRow } from '../account-rows.js';

/** How long a throttle read or write keeps retrying while another process holds the write lock. */
const THROTTLE_BUSY_LIMIT_MS = 10_000;

function isBusy(error: unknown): boolean {
  return String((error as { code?: unknown }).code ?? '').startsWith('SQLITE_BUSY');
}

/**
 * Accounts in the registry's SQLite file, through a connection of their own. The tables come
 * from the metadata migrations, so open SqliteMetadataStore on the same file first.
 */
export class SqliteAccountStore implements AccountStore {
  private readonly db: Database.Database;
  private readonly statements;
  /**
   * The login throttle's connection, consulted on every signed-in request: busy_timeout 0, so a
   * write lock held by another process is waited for by retrying on a timer, never in SQLite's
   * busy handler with the event loop stopped; synchronous NORMAL, since no fsync is worth a
   * counter (a crash of the machine at worst forgets a few failures).
   */
  private readonly throttleDb: Database.Database;
  private readonly throttle;

  /** False when the connection is borrowed (see SqliteMetadataStore.connection) and not ours to close. */
  private readonly ownsConnection: boolean;

  /**
   * Opens connections of its own to `path`, or shares `connection` (one process alone on the
   * file, as on a full disk; then the throttle's writes share it too).
   */
  constructor(options: { path: string } | { connection: Database.Database }) {
    if ('connection' in options) {
      this.db = options.connection;
      this.throttleDb = options.connection;
      this.ownsConnection = false;
    } else {
      this.db = new Database(options.path);
      // Like the throttle's: a lock held by another process is waited for on a timer (withoutBlocking).
      this.db.pragma('busy_timeout = 0');
      this.db.pragma('synchronous = FULL');
      this.throttleDb = new Database(options.path);
      this.throttleDb.pragma('busy_timeout = 0');
      this.throttleDb.pragma('synchronous = NORMAL');
      this.ownsConnection = true;
    }
    const t = this.throttleDb;
    this.throttle = {
      get: t.prepare<[string, number], { failures: number; started_at: number }>(
        'SELECT failures, started_at FROM auth_login_failures WHERE key = ? AND started_at > ?',
      ),
      purge: t.prepare('DELETE FROM auth_login_failures WHERE started_at <= ?'),
      count: t.prepare(
        'INSERT INTO auth_login_failures (key, failures, started_at) VALUES (?, 1, ?) ON CONFLICT(key) DO UPDATE SET failures = failures + 1',
      ),
      refund: t.prepare('UPDATE auth_login_failures SET failures = failures - 1 WHERE key = ?'),
      clear: t.prepare('DELETE FROM auth_login_failures WHERE key = ?'),
      clearSpent: t.prepare('DELETE FROM auth_login_failures WHERE key = ? AND failures <= 0'),
    };
    const db = this.db;
    this.statements = {
      getUser: db.prepare<[string], UserRow>('SELECT * FROM auth_users WHERE name = ?'),
      listUsers: db.prepare<[], UserRow>('SELECT * FROM auth_users ORDER BY name'),
      insertUser: db.prepare(
        'INSERT INTO auth_users (name, password_hash, groups, created_at, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING',
      ),
      updatePassword: db.prepare('UPDATE auth_users SET password_hash = ?, updated_at = ? WHERE name = ?'),
      updateGroups: db.prepare('UPDATE auth_users SET groups = ?, updated_at = ? WHERE name = ?'),
      deleteUser: db.prepare('DELETE FROM auth_users WHERE name = ?'),
      getRobot: db.prepare<[string], RobotRow>('SELECT * FROM auth_robots WHERE name = ?'),
      listRobots: db.prepare<[], RobotRow>('SELECT * FROM auth_robots ORDER BY name'),
      insertRobot: db.prepare(
        `INSERT INTO auth_robots (name, token_hash, permissions, description, created_at, created_by, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING`,
      ),
      deleteRobot: db.prepare('DELETE FROM auth_robots WHERE name = ?'),
      listRules: db.prepare<[], RuleRow>('SELECT * FROM auth_rules ORDER BY id'),
      rulesGeneration: db.prepare<[], { generation: number }>('SELECT generation FROM auth_rules_generation WHERE id = 1'),
      insertRule: db.prepare<[string, string, string, number, string | null], RuleRow>(
        'INSERT INTO auth_rules (subject, repository, actions, created_at, created_by) VALUES (?, ?, ?, ?, ?) RETURNING *',
      ),
      deleteRule: db.prepare('DELETE FROM auth_rules WHERE id = ?'),
      insertRefresh: db.prepare('INSERT INTO auth_refresh_tokens (token_hash, subject, created_at, expires_at) VALUES (?, ?, ?, ?)'),
      getRefresh: db.prepare<[string], { token_hash: string; subject: string; created_at: number; expires_at: number }>(
        'SELECT * FROM auth_refresh_tokens WHERE token_hash = ?',
      ),
      deleteRefresh: db.prepare('DELETE FROM auth_refresh_tokens WHERE subject = ?'),
      purgeRefresh: db.prepare('DELETE FROM auth_refresh_tokens WHERE expires_at < ?'),
    };
  }

  async close(): Promise<void> {
    if (!this.ownsConnection) return;
    this.throttleDb.close();
    this.db.close();
  }

  async getUser(name: string): Promise<UserRecord | undefined> {
    return this.withoutBlocking(() => {
      const row = this.statements.getUser.get(name);
      return row ? toUser(row) : undefined;
    });
  }

  async listUsers(): Promise<UserRecord[]> {
    return this.withoutBlocking(() => {
      return this.statements.listUsers.all().map(toUser);
    });
  }

  async createUser(user: { name: string; passwordHash: string; groups: string[] }): Promise<boolean> {
    return this.withoutBlocking(() => {
      const now = Date.now();
      return this.statements.insertUser.run(user.name, user.passwordHash, JSON.stringify(user.groups), now, now).changes === 1;
    });
  }

  async updateUser(name: string, changes: { passwordHash?: string; groups?: string[] }): Promise<boolean> {
    return this.withoutBlocking(() => {
      const now = Date.now();
      return this.db.transaction(() => {
        if (!this.statements.getUser.get(name)) return false;
        if (changes.passwordHash !== undefined) this.statements.updatePassword.run(changes.passwordHash, now, name);
        if (changes.groups !== undefined) this.statements.updateGroups.run(JSON.stringify(changes.groups), now, name);
        return true;
      }).immediate();
    });
  }

  async deleteUser(name: string): Promise<boolean> {
    return this.withoutBlocking(() => {
      return this.statements.deleteUser.run(name).changes === 1;
    });
  }

  async getRobot(name: string): Promise<RobotRecord | undefined> {
    return this.withoutBlocking(() => {
      const row = this.statements.getRobot.get(name);
      return row ? toRobot(row) : undefined;
    });
  }

  async listRobots(): Promise<RobotRecord[]> {
    return this.withoutBlocking(() => {
      return this.statements.listRobots.all().map(toRobot);
    });
  }

  async createRobot(robot: Omit<RobotRecord, 'createdAt'>): Promise<boolean> {
    return this.withoutBlocking(() => {
      const result = this.statements.insertRobot.run(
        robot.name,
        robot.tokenHash,
        JSON.stringify(robot.permissions),
        robot.description ?? null,
        Date.now(),
        robot.createdBy ?? null,
        robot.expiresAt ?? null,
      );
      return result.changes === 1;
    });
  }

  async deleteRobot(name: string): Promise<boolean> {
    return this.withoutBlocking(() => {
      return this.statements.deleteRobot.run(name).changes === 1;
    });
  }

  async listRules(): Promise<RuleRecord[]> {
    return this.withoutBlocking(() => {
      return this.statements.listRules.all().map(toRule);
    });
  }

  async rulesGeneration(): Promise<number> {
    return this.withoutBlocking(() => {
      return this.statements.rulesGeneration.get()?.generation ?? 0;
    });
  }

  async addRule(rule: { subject: string; repository: string; actions: string[]; createdBy?: string }): Promise<RuleRecord> {
    return this.withoutBlocking(() => {
      return toRule(this.statements.insertRule.get(rule.subject, rule.repository, JSON.stringify(rule.actions), Date.now(), rule.createdBy ?? null)!);
    });
  }

  async deleteRule(id: number): Promise<boolean> {
    return this.withoutBlocking(() => {
      return this.statements.deleteRule.run(id).changes === 1;
    });
  }

  async addRefreshToken(token: RefreshTokenRecord): Promise<void> {
    return this.withoutBlocking(() => {
      this.statements.purgeRefresh.run(Date.now());
      this.statements.insertRefresh.run(token.tokenHash, token.subject, token.createdAt, token.expiresAt);
    });
  }

  async getRefreshToken(tokenHash: string): Promise<RefreshTokenRecord | undefined> {
    return this.withoutBlocking(() => {
      const row = this.statements.getRefresh.get(tokenHash);
      return row ? { tokenHash: row.token_hash, subject: row.subject, createdAt: row.created_at, expiresAt: row.expires_at } : undefined;
    });
  }

  async deleteRefreshTokens(subject: string): Promise<number> {
    return this.withoutBlocking(() => {
      return this.statements.deleteRefresh.run(subject).changes;
    });
  }

  async loginFailures(keys: string[], window: LoginWindow): Promise<Map<string, LoginFailures>> {
    return this.withoutBlocking(() => this.liveCounters(keys, window));
  }

  async countLoginFailure(limits: Array<{ key: string; max: number }>, window: LoginWindow): Promise<Map<string, LoginFailures> | undefined> {
    const count = this.throttleDb.transaction(() => {
      this.throttle.purge.run(window.now - window.windowMs);
      const live = this.liveCounters(limits.map((l) => l.key), window);
      if (limits.some((l) => (live.get(l.key)?.failures ?? 0) >= l.max)) return live;
      for (const { key } of limits) this.throttle.count.run(key, window.now);
      return undefined;
    });
    // IMMEDIATE takes the write lock before reading, so two processes cannot both read the count under the limit.
    return this.withoutBlocking(() => count.immediate());
  }

  async forgiveLoginFailures(changes: { clear: string[]; refund: string[] }): Promise<void> {
    const forgive = this.throttleDb.transaction(() => {
      for (const key of changes.clear) this.throttle.clear.run(key);
      for (const key of changes.refund) {
        this.throttle.refund.run(key);
        this.throttle.clearSpent.run(key);
      }
    });
    return this.withoutBlocking(() => forgive.immediate());
  }

  private liveCounters(keys: string[], window: LoginWindow): Map<string, LoginFailures> {
    const out = new Map<string, LoginFailures>();
    for (const key of keys) {
      const row = this.throttle.get.get(key, window.now - window.windowMs);
      if (row) out.set(key, { failures: row.failures, startedAt: row.started_at });
    }
    return out;
  }

  /**
   * Runs `work` (on either connection); while another process holds the lock it fails at once
   * (busy_timeout 0) and is retried a millisecond later, so this process goes on serving meanwhile.
   * Gives up with SQLITE_BUSY after THROTTLE_BUSY_LIMIT_MS.
   */
  private async withoutBlocking<T>(work: () => T): Promise<T> {
    const started = Date.now();
    for (;;) {
      try {
        return work();
      } catch (error) {
        if (!isBusy(error) || Date.now() - started >= THROTTLE_BUSY_LIMIT_MS) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }
}
