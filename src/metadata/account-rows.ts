import type { RobotRecord, RuleRecord, UserRecord } from './account-store.js';

/**
 * The account tables' rows, as both account stores read them (the SQLite and PostgreSQL schemas
 * give the columns the same names and JSON text), and the records they make.
 */
export interface UserRow {
  name: string;
  password_hash: string;
  groups: string;
  created_at: number;
  updated_at: number;
}

export interface RobotRow {
  name: string;
  token_hash: string;
  permissions: string;
  description: string | null;
  created_at: number;
  created_by: string | null;
  expires_at: number | null;
}

export interface RuleRow {
  id: number;
  subject: string;
  repository: string;
  actions: string;
  created_at: number;
  created_by: string | null;
}

export const toUser = (row: UserRow): UserRecord => ({
  name: row.name,
  passwordHash: row.password_hash,
  groups: JSON.parse(row.groups) as string[],
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

export function toRobot(row: RobotRow): RobotRecord {
  const robot: RobotRecord = { name: row.name, tokenHash: row.token_hash, permissions: JSON.parse(row.permissions), createdAt: row.created_at };
  if (row.description !== null) robot.description = row.description;
  if (row.created_by !== null) robot.createdBy = row.created_by;
  if (row.expires_at !== null) robot.expiresAt = row.expires_at;
  return robot;
}

export function toRule(row: RuleRow): RuleRecord {
  const rule: RuleRecord = { id: row.id, subject: row.subject, repository: row.repository, actions: JSON.parse(row.actions), createdAt: row.created_at };
  if (row.created_by !== null) rule.createdBy = row.created_by;
  return rule;
}
