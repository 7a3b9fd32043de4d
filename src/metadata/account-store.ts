/** A user managed through the admin API (htpasswd users live in their file). */
export interface UserRecord {
  name: string;
  /** bcrypt. */
  passwordHash: string;
  groups: string[];
  createdAt: number;
  updatedAt: number;
}

/** What a robot may do: actions on repositories matching a pattern. */
export interface PermissionRecord {
  repository: string;
  actions: string[];
}

/** A robot account: a long-lived token for CI, scoped to repositories. */
export interface RobotRecord {
  name: string;
  /** SHA-256 (hex) of the token; the token itself is shown once and never stored. */
  tokenHash: string;
  permissions: PermissionRecord[];
  description?: string;
  createdAt: number;
  createdBy?: string;
  /** ms since epoch; absent when the robot does not expire. */
  expiresAt?: number;
}

/** A policy rule added through the admin API: `subject` may do `actions` on `repository` (a pattern). */
export interface RuleRecord {
  id: number;
  subject: string;
  repository: string;
  actions: string[];
  createdAt: number;
  createdBy?: string;
}

export interface RefreshTokenRecord {
  tokenHash: string;
  subject: string;
  createdAt: number;
  expiresAt: number;
}

/** Failed sign-ins counted under one key since `startedAt` (ms since epoch). */
export interface LoginFailures {
  failures: number;
  startedAt: number;
}

/** Which counters are live: one that started `windowMs` or more before `now` is forgotten. */
export interface LoginWindow {
  now: number;
  windowMs: number;
}

/**
 * Users, robots, policy rules, refresh tokens and failed-login counters. Absence is `undefined`
 * (or `false` for a create that found the name taken or a delete that found nothing); failures throw.
 */
export interface AccountStore {
  close(): Promise<void>;

  getUser(name: string): Promise<UserRecord | undefined>;
  listUsers(): Promise<UserRecord[]>;
  /** False when the name is taken. */
  createUser(user: { name: string; passwordHash: string; groups: string[] }): Promise<boolean>;
  /** False when there is no such user. */
  updateUser(name: string, changes: { passwordHash?: string; groups?: string[] }): Promise<boolean>;
  deleteUser(name: string): Promise<boolean>;

  getRobot(name: string): Promise<RobotRecord | undefined>;
  listRobots(): Promise<RobotRecord[]>;
  createRobot(robot: Omit<RobotRecord, 'createdAt'>): Promise<boolean>;
  deleteRobot(name: string): Promise<boolean>;

  listRules(): Promise<RuleRecord[]>;
  /** A number that changes whenever any rule is added or removed, by any process. */
  rulesGeneration(): Promise<number>;
  addRule(rule: { subject: string; repository: string; actions: string[]; createdBy?: string }): Promise<RuleRecord>;
  deleteRule(id: number): Promise<boolean>;

  addRefreshToken(token: RefreshTokenRecord): Promise<void>;
  getRefreshToken(tokenHash: string): Promise<RefreshTokenRecord | undefined>;
  /** Revokes every refresh token of a subject (on password change or removal); returns how many. */
  deleteRefreshTokens(subject: string): Promise<number>;

  /**
   * The login throttle's counters, shared by every process and replica using this store, so that
   * a limit holds for all of them together. Keys are opaque to the store. Returns the live counters
   * of `keys`; expired and absent ones are left out. Sits on every signed-in request: must not
   * block the event loop waiting for another writer.
   */
  loginFailures(keys: string[], window: LoginWindow): Promise<Map<string, LoginFailures>>;
  /**
   * Counts one failed sign-in under every key (starting a counter where none is live), unless a
   * key has already reached its `max`: then counts nothing and returns the live counters, so the
   * caller can tell how long to wait. Returns undefined when it counted. Atomic across processes:
   * however many calls race, no key ends up counted past its `max`.
   */
  countLoginFailure(limits: Array<{ key: string; max: number }>, window: LoginWindow): Promise<Map<string, LoginFailures> | undefined>;
  /** Forgets the counters under `clear`, and takes one failure back from each counter under `refund`. */
  forgiveLoginFailures(changes: { clear: string[]; refund: string[] }): Promise<void>;
}
