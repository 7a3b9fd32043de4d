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

/**
 * Users, robots, policy rules and refresh tokens. Absence is `undefined` (or `false` for a
 * create that found the name taken or a delete that found nothing); failures throw.
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
}
