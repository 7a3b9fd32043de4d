import type { AccountStore, LoginFailures, LoginWindow, RefreshTokenRecord, RobotRecord, RuleRecord, UserRecord } from '../account-store.js';
import { toRobot, toRule, toUser, type RobotRow, type RuleRow, type UserRow } from '../account-rows.js';
import { PostgresDatabase, type PostgresOptions, type Transaction } from './postgres-database.js';

/** Every throttle count takes this advisory lock, so that racing replicas never count a key past its limit. */
const THROTTLE_LOCK = 0x74687274; // "thrt"

/**
 * Accounts in the metadata database, through a small pool of their own (the tables come with
 * the metadata migrations, which this store also applies when they have not run). Keeps no
 * cache: the policy's copy of the rules is checked against `rulesGeneration` (a trigger bumps it
 * on every change), which every replica reads from here.
 */
export class PostgresAccountStore implements AccountStore {
  private readonly db: PostgresDatabase;

  constructor(options: PostgresOptions) {
    // Sign-ins and admin changes are few: a fraction of the metadata pool is plenty.
    const maxOpen = Math.max(2, Math.ceil(options.pool.maxOpen / 4));
    this.db = new PostgresDatabase({ ...options, pool: { ...options.pool, maxOpen, maxIdle: Math.min(options.pool.maxIdle, maxOpen) } });
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async getUser(name: string): Promise<UserRecord | undefined> {
    const row = await this.db.one<UserRow>('SELECT * FROM auth_users WHERE name = $1', [name]);
    return row ? toUser(row) : undefined;
  }

  async listUsers(): Promise<UserRecord[]> {
    return (await this.db.query<UserRow>('SELECT * FROM auth_users ORDER BY name')).rows.map(toUser);
  }

  async createUser(user: { name: string; passwordHash: string; groups: string[] }): Promise<boolean> {
    const now = Date.now();
    const result = await this.db.query(
      'INSERT INTO auth_users (name, password_hash, groups, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (name) DO NOTHING',
      [user.name, user.passwordHash, JSON.stringify(user.groups), now],
    );
    return result.rowCount === 1;
  }

  async updateUser(name: string, changes: { passwordHash?: string; groups?: string[] }): Promise<boolean> {
    const result = await this.db.query(
      'UPDATE auth_users SET password_hash = coalesce($1, password_hash), groups = coalesce($2, groups), updated_at = $3 WHERE name = $4',
      [changes.passwordHash ?? null, changes.groups !== undefined ? JSON.stringify(changes.groups) : null, Date.now(), name],
    );
    return result.rowCount === 1;
  }

  async deleteUser(name: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM auth_users WHERE name = $1', [name])).rowCount === 1;
  }

  async getRobot(name: string): Promise<RobotRecord | undefined> {
    const row = await this.db.one<RobotRow>('SELECT * FROM auth_robots WHERE name = $1', [name]);
    return row ? toRobot(row) : undefined;
  }

  async listRobots(): Promise<RobotRecord[]> {
    return (await this.db.query<RobotRow>('SELECT * FROM auth_robots ORDER BY name')).rows.map(toRobot);
  }

  async createRobot(robot: Omit<RobotRecord, 'createdAt'>): Promise<boolean> {
    const result = await this.db.query(
      `INSERT INTO auth_robots (name, token_hash, permissions, description, created_at, created_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING`,
      [robot.name, robot.tokenHash, JSON.stringify(robot.permissions), robot.description ?? null, Date.now(), robot.createdBy ?? null, robot.expiresAt ?? null],
    );
    return result.rowCount === 1;
  }

  async deleteRobot(name: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM auth_robots WHERE name = $1', [name])).rowCount === 1;
  }

  async listRules(): Promise<RuleRecord[]> {
    return (await this.db.query<RuleRow>('SELECT * FROM auth_rules ORDER BY id')).rows.map(toRule);
  }

  async rulesGeneration(): Promise<number> {
    return (await this.db.one<{ generation: number }>('SELECT generation FROM auth_rules_generation WHERE id = 1'))?.generation ?? 0;
  }

  async addRule(rule: { subject: string; repository: string; actions: string[]; createdBy?: string }): Promise<RuleRecord> {
    const row = await this.db.one<RuleRow>(
      'INSERT INTO auth_rules (subject, repository, actions, created_at, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING *',
      [rule.subject, rule.repository, JSON.stringify(rule.actions), Date.now(), rule.createdBy ?? null],
    );
    return toRule(row!);
  }

  async deleteRule(id: number): Promise<boolean> {
    return (await this.db.query('DELETE FROM auth_rules WHERE id = $1', [id])).rowCount === 1;
  }

  async addRefreshToken(token: RefreshTokenRecord): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('DELETE FROM auth_refresh_tokens WHERE expires_at < $1', [Date.now()]);
      await tx.query('INSERT INTO auth_refresh_tokens (token_hash, subject, created_at, expires_at) VALUES ($1, $2, $3, $4)', [token.tokenHash, token.subject, token.createdAt, token.expiresAt]);
    });
  }

  async getRefreshToken(tokenHash: string): Promise<RefreshTokenRecord | undefined> {
    const row = await this.db.one<{ token_hash: string; subject: string; created_at: number; expires_at: number }>('SELECT * FROM auth_refresh_tokens WHERE token_hash = $1', [tokenHash]);
    return row ? { tokenHash: row.token_hash, subject: row.subject, createdAt: row.created_at, expiresAt: row.expires_at } : undefined;
  }

  async deleteRefreshTokens(subject: string): Promise<number> {
    return (await this.db.query('DELETE FROM auth_refresh_tokens WHERE subject = $1', [subject])).rowCount!;
  }

  async loginFailures(keys: string[], window: LoginWindow): Promise<Map<string, LoginFailures>> {
    return this.liveCounters(this.db, keys, window);
  }

  async countLoginFailure(limits: Array<{ key: string; max: number }>, window: LoginWindow): Promise<Map<string, LoginFailures> | undefined> {
    return this.db.transaction(
      async (tx) => {
        // Held until commit: a racing count in any process waits, then reads this one's.
        await tx.query('SELECT pg_advisory_xact_lock($1)', [THROTTLE_LOCK]);
        await tx.query('DELETE FROM auth_login_failures WHERE started_at <= $1', [window.now - window.windowMs]);
        const live = await this.liveCounters(tx, limits.map((l) => l.key), window);
        if (limits.some((l) => (live.get(l.key)?.failures ?? 0) >= l.max)) return live;
        for (const { key } of limits) {
          await tx.query(
            'INSERT INTO auth_login_failures (key, failures, started_at) VALUES ($1, 1, $2) ON CONFLICT (key) DO UPDATE SET failures = auth_login_failures.failures + 1',
            [key, window.now],
          );
        }
        return undefined;
      },
      // No fsync is worth a counter: a crash of the database server at worst forgets a few failures.
      { lazy: true },
    );
  }

  async forgiveLoginFailures(changes: { clear: string[]; refund: string[] }): Promise<void> {
    await this.db.transaction(
      async (tx) => {
        await tx.query('SELECT pg_advisory_xact_lock($1)', [THROTTLE_LOCK]);
        if (changes.clear.length > 0) await tx.query('DELETE FROM auth_login_failures WHERE key = ANY($1::text[])', [changes.clear]);
        for (const key of changes.refund) {
          await tx.query('UPDATE auth_login_failures SET failures = failures - 1 WHERE key = $1', [key]);
          await tx.query('DELETE FROM auth_login_failures WHERE key = $1 AND failures <= 0', [key]);
        }
      },
      { lazy: true },
    );
  }

  private async liveCounters(q: Pick<Transaction, 'query'>, keys: string[], window: LoginWindow): Promise<Map<string, LoginFailures>> {
    const out = new Map<string, LoginFailures>();
    if (keys.length === 0) return out;
    const rows = await q.query<{ key: string; failures: number; started_at: number }>(
      'SELECT key, failures, started_at FROM auth_login_failures WHERE key = ANY($1::text[]) AND started_at > $2',
      [keys, window.now - window.windowMs],
    );
    for (const key of keys) {
      const row = rows.rows.find((r) => r.key === key);
      if (row) out.set(key, { failures: row.failures, startedAt: row.started_at });
    }
    return out;
  }
}
