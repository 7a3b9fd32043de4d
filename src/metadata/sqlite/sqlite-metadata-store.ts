import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Descriptor } from '../../oci/manifest.js';
import { RegistryError } from '../../errors/index.js';
import type {
  BlobRecord,
  BlobReservation,
  BlobState,
  ChangeEvent,
  ChangeOptions,
  DeliveryStatus,
  JobOutcome,
  JobRecord,
  JobState,
  LeaseClaim,
  ManifestNode,
  ManifestPutResult,
  NewJob,
  OutboxEntry,
  ParkedEvent,
  ManifestPut,
  ManifestRecord,
  Inventory,
  MetadataStore,
  Page,
  StorageImport,
  QuotaStatus,
  QuotaViolation,
  RepositoryGraph,
  RepositoryProfile,
  RepositorySummary,
  RepositoryUsage,
  TagDetail,
  TagDetailQuery,
  TagEvent,
  UploadAdvance,
  UploadRecord,
} from '../metadata-store.js';
import { immutableRuleFor, immutableTagDenied, type ImmutableTagPattern, type ImmutableTagRule } from '../immutable-tag-rules.js';
import type { RetentionPolicy, RetentionPolicySpec, RetentionRules } from '../retention-policies.js';
import { firstViolation, quotaExceeded, quotaScope } from '../quota.js';
import { SEARCH_RESULT_CAP, compareText, ftsQuery, normalizeDescription, rankByName, readmeSummary, searchWords } from '../repository-profile.js';
import { toBlob, toJob, toRecord, toTagDetail, type BlobRow, type JobRow, type ManifestRow, type TagDetailRow } from '../rows.js';
import { MIGRATIONS } from './schema.js';
import { ReadCache } from './read-cache.js';

/** The most candidates one search reads from the index, per pass (names, then descriptions). */
const SEARCH_CANDIDATES = 600;

export interface SqliteOptions {
  /** Database file; `:memory:` for tests. */
  path: string;
  /**
   * `full` (default) fsyncs the write-ahead log on every commit, so nothing acknowledged is
   * lost even on power failure; `normal` survives process crashes only.
   */
  synchronous?: 'full' | 'normal';
  /**
   * Holds the file for this process alone and keeps SQLite's shared-memory index in the heap
   * instead of a `-shm` file: the only way to open a WAL database on a disk too full for that file.
   * Other processes (and other connections) cannot open the database meanwhile: share
   * `connection` within the process.
   */
  exclusive?: boolean;
  /** Told the seconds each group commit held the write lock (BEGIN to COMMIT) and how many writes it carried. */
  onCommit?: (seconds: number, writes: number) => void;
}

/** How long any statement waits for another process's lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 10_000;

interface PendingWrite {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** May be lost on a power failure (not on a crash): committed without waiting for the disk. */
  lazy?: boolean;
}

interface UploadRow {
  id: string;
  repository: string;
  size: number;
  parts: string;
  hash_state: Buffer | null;
  started_at: number;
  updated_at: number;
}

function toUpload(row: UploadRow): UploadRecord {
  const upload: UploadRecord = {
    id: row.id,
    repository: row.repository,
    size: row.size,
    parts: JSON.parse(row.parts) as UploadRecord['parts'],
    startedAt: row.started_at,
    updatedAt: row.updated_at,
  };
  if (row.hash_state !== null) upload.hashState = new Uint8Array(row.hash_state);
  return upload;
}

/** Runs of a job that may fail before it is given up, unless the job says otherwise. */
const DEFAULT_JOB_ATTEMPTS = 5;

interface RuleRow {
  id: number;
  repository: string;
  tag: string;
  source: 'config' | 'api';
  created_at: number;
  created_by: string | null;
}

interface RetentionRow {
  id: number;
  repositories: string;
  rules: string;
  source: 'config' | 'api';
  created_at: number;
  created_by: string | null;
}

function toRetentionPolicy(row: RetentionRow): RetentionPolicy {
  const policy: RetentionPolicy = { id: row.id, repositories: row.repositories, ...(JSON.parse(row.rules) as RetentionRules), source: row.source, createdAt: row.created_at };
  if (row.created_by !== null) policy.createdBy = row.created_by;
  return policy;
}

function toRule(row: RuleRow): ImmutableTagRule {
  const rule: ImmutableTagRule = { id: row.id, repository: row.repository, tag: row.tag, source: row.source, createdAt: row.created_at };
  if (row.created_by !== null) rule.createdBy = row.created_by;
  return rule;
}

/** Who made a change and through which request, as the outbox entry carries them. */
function actorOf(options: ChangeOptions): Pick<ChangeEvent, 'actor' | 'request'> {
  return { ...(options.actor !== undefined ? { actor: options.actor } : {}), ...(options.request !== undefined ? { request: options.request } : {}) };
}

interface ParkedRow {
  id: number;
  endpoint: string;
  outbox_id: number;
  at: number;
  event: string;
  attempts: number;
  last_error: string | null;
  parked_at: number;
}

function toParked(row: ParkedRow): ParkedEvent {
  return {
    id: row.id,
    endpoint: row.endpoint,
    entry: { id: row.outbox_id, at: row.at, event: JSON.parse(row.event) as ChangeEvent },
    attempts: row.attempts,
    ...(row.last_error !== null ? { lastError: row.last_error } : {}),
    parkedAt: row.parked_at,
  };
}

/**
 * The embedded metadata store: one SQLite file in WAL mode. Several processes (cluster workers)
 * may open the same file; SQLite serialises their writes and `busy_timeout` makes them wait.
 */
export class SqliteMetadataStore implements MetadataStore {
  readonly name = 'sqlite';
  private readonly db: Database.Database;
  private readonly statements;
  private readonly profiles;
  /** The reads every pull makes (manifest by tag or digest, blob size), while nothing has changed. */
  private readonly reads: ReadCache;
  /** Writes waiting for the next group commit. */
  private queue: PendingWrite[] = [];
  /** Set while a commit waits for another process to release the write lock. */
  private retrying: NodeJS.Timeout | undefined;
  private busySince: number | undefined;
  private readonly onCommit: SqliteOptions['onCommit'];
  /** `synchronous` as configured, restored after a lazy commit. */
  private readonly synchronous: 'NORMAL' | 'FULL';

  constructor(options: SqliteOptions) {
    this.onCommit = options.onCommit;
    this.synchronous = options.synchronous === 'normal' ? 'NORMAL' : 'FULL';
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    try {
      // Before the first access: after it, SQLite has created the shared-memory file.
      if (options.exclusive) this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${this.synchronous}`);
      this.db.pragma('foreign_keys = ON');
      this.migrate();
    } catch (error) {
      // A half-opened connection would keep its locks and block the next attempt.
      this.db.close();
      throw error;
    }
    const db = this.db;
    this.reads = new ReadCache(db);
    this.statements = {
      beginImmediate: db.prepare('BEGIN IMMEDIATE'),
      commit: db.prepare('COMMIT'),
      rollback: db.prepare('ROLLBACK'),
      repositoryId: db.prepare<[string], { id: number }>('SELECT id FROM repositories WHERE name = ?'),
      insertRepository: db.prepare('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING'),
      blobSize: db.prepare<[string], { size: number }>("SELECT size FROM blobs WHERE digest = ? AND state = 'present'"),
      getBlob: db.prepare<[string], BlobRow>('SELECT digest, size, state, state_since, touched_at FROM blobs WHERE digest = ?'),
      listBlobs: db.prepare<[string, number], BlobRow>('SELECT digest, size, state, state_since, touched_at FROM blobs WHERE digest > ? ORDER BY digest LIMIT ?'),
      repositoryBlobSize: db.prepare<[string, string], { size: number }>(
        `SELECT b.size FROM repositories r
           JOIN repository_blobs rb ON rb.repository_id = r.id
           JOIN blobs b ON b.digest = rb.digest
         WHERE r.name = ? AND rb.digest = ? AND b.state = 'present'`,
      ),
      insertBlob: db.prepare<[string, number, number, BlobState, number, number]>(
        'INSERT INTO blobs (digest, size, created_at, state, state_since, touched_at) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      touchBlob: db.prepare<[number, string]>('UPDATE blobs SET touched_at = max(touched_at, ?) WHERE digest = ?'),
      touchLink: db.prepare<[number, number, string]>('UPDATE repository_blobs SET created_at = max(created_at, ?) WHERE repository_id = ? AND digest = ?'),
      setBlobState: db.prepare<[BlobState, number, string]>('UPDATE blobs SET state = ?, state_since = ? WHERE digest = ?'),
      quarantineBlob: db.prepare<[number, string]>("UPDATE blobs SET state = 'quarantined', state_since = ? WHERE digest = ? AND state = 'present'"),
      linkBlob: db.prepare(
        'INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      unlinkBlob: db.prepare('DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?'),
      repositoriesLinkingBlob: db.prepare<[string, number], { name: string }>(
        `SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
         WHERE rb.digest = ? ORDER BY r.name LIMIT ?`,
      ),
      hasLink: db.prepare<[number, string], { one: number }>(
        `SELECT 1 AS one FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
         WHERE rb.repository_id = ? AND rb.digest = ? AND b.state = 'present'`,
      ),
      insertUpload: db.prepare('INSERT INTO uploads (id, repository_id, size, started_at, updated_at) VALUES (?, ?, 0, ?, ?)'),
      getUpload: db.prepare<[string], UploadRow>(
        `SELECT u.id, r.name AS repository, u.size, u.parts, u.hash_state, u.started_at, u.updated_at
           FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.id = ?`,
      ),
      advanceUpload: db.prepare<[number, string, Buffer | null, number, string, number]>(
        `UPDATE uploads SET size = size + ?, parts = json_insert(parts, '$[#]', json(?)), hash_state = ?, updated_at = ?
         WHERE id = ? AND size = ?`,
      ),
      extendUpload: db.prepare<[number, string, Buffer | null, number, string, number, string]>(
        `UPDATE uploads SET size = size + ? - json_extract(parts, '$[#-1].size'), parts = json_set(parts, '$[#-1]', json(?)), hash_state = ?, updated_at = ?
         WHERE id = ? AND size = ? AND json_extract(parts, '$[#-1].name') = ?`,
      ),
      deleteUpload: db.prepare('DELETE FROM uploads WHERE id = ?'),
      uploadSize: db.prepare<[string], { repository_id: number; size: number }>('SELECT repository_id, size FROM uploads WHERE id = ?'),
      staleUploads: db.prepare<[number, number], UploadRow>(
        `SELECT u.id, r.name AS repository, u.size, u.parts, u.hash_state, u.started_at, u.updated_at
           FROM uploads u JOIN repositories r ON r.id = u.repository_id
         WHERE u.updated_at < ? ORDER BY u.updated_at LIMIT ?`,
      ),
      getManifest: db.prepare<[string, string], ManifestRow>(
        `SELECT m.digest, m.media_type, m.content, m.subject, m.artifact_type, m.total_size, m.created_at
           FROM repositories r JOIN manifests m ON m.repository_id = r.id
         WHERE r.name = ? AND m.digest = ?`,
      ),
      getTaggedManifest: db.prepare<[string, string], ManifestRow>(
        `SELECT m.digest, m.media_type, m.content, m.subject, m.artifact_type, m.total_size, m.created_at
           FROM repositories r
           JOIN tags t ON t.repository_id = r.id
           JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
         WHERE r.name = ? AND t.name = ?`,
      ),
      hasManifest: db.prepare<[number, string], { one: number }>(
        'SELECT 1 AS one FROM manifests WHERE repository_id = ? AND digest = ?',
      ),
      insertManifest: db.prepare(
        `INSERT INTO manifests (repository_id, digest, media_type, content, size, total_size, subject, artifact_type, annotations, created_at, touched_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
      ),
      insertReference: db.prepare(
        'INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, kind) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      tagDigest: db.prepare<[number, string], { digest: string }>('SELECT digest FROM tags WHERE repository_id = ? AND name = ?'),
      upsertTag: db.prepare(
        `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
      ),
      deleteTag: db.prepare('DELETE FROM tags WHERE repository_id = ? AND name = ?'),
      tagsOfManifest: db.prepare<[number, string], { name: string }>(
        'SELECT name FROM tags WHERE repository_id = ? AND digest = ? ORDER BY name',
      ),
      deleteManifest: db.prepare('DELETE FROM manifests WHERE repository_id = ? AND digest = ?'),
      insertTagEvent: db.prepare<[number, string, string, 'push' | 'delete', string | null, number, string | null]>(
        'INSERT INTO tag_history (repository_id, tag, digest, action, actor, at, previous) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      tagHistory: db.prepare<[number, string, number], { tag: string; digest: string | null; previous: string | null; action: 'push' | 'delete'; actor: string | null; at: number }>(
        'SELECT tag, digest, previous, action, actor, at FROM tag_history WHERE repository_id = ? AND tag = ? ORDER BY id DESC LIMIT ?',
      ),
      listRules: db.prepare<[], RuleRow>('SELECT id, repository, tag, source, created_at, created_by FROM immutable_tag_rules ORDER BY id'),
      ruleByPatterns: db.prepare<[string, string, string], RuleRow>(
        'SELECT id, repository, tag, source, created_at, created_by FROM immutable_tag_rules WHERE source = ? AND repository = ? AND tag = ?',
      ),
      ruleById: db.prepare<[number], RuleRow>('SELECT id, repository, tag, source, created_at, created_by FROM immutable_tag_rules WHERE id = ?'),
      insertRule: db.prepare<[string, string, string, number, string | null]>(
        'INSERT INTO immutable_tag_rules (repository, tag, source, created_at, created_by) VALUES (?, ?, ?, ?, ?)',
      ),
      deleteApiRule: db.prepare<[number]>("DELETE FROM immutable_tag_rules WHERE id = ? AND source = 'api'"),
      deleteConfigRules: db.prepare<[]>("DELETE FROM immutable_tag_rules WHERE source = 'config'"),
      graphHistory: db.prepare<[number, number], { digest: string; at: number }>(
        `SELECT digest, max(at) AS at FROM (
           SELECT digest, at FROM tag_history WHERE repository_id = ? AND digest IS NOT NULL
           UNION ALL
           SELECT previous AS digest, at FROM tag_history WHERE repository_id = ? AND previous IS NOT NULL
         ) GROUP BY digest`,
      ),
      inHistorySince: db.prepare<[number, string, number, number, string, number], { one: number }>(
        `SELECT 1 AS one WHERE EXISTS (SELECT 1 FROM tag_history WHERE repository_id = ? AND digest = ? AND at >= ?)
            OR EXISTS (SELECT 1 FROM tag_history WHERE repository_id = ? AND previous = ? AND at >= ?)`,
      ),
      listTags: db.prepare<[number, string, number], { name: string }>(
        'SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?',
      ),
      listReferrers: db.prepare<[number, string], { digest: string; media_type: string; size: number; artifact_type: string | null; annotations: string | null }>(
        `SELECT digest, media_type, size, artifact_type, annotations FROM manifests
         WHERE repository_id = ? AND subject = ? ORDER BY created_at, digest`,
      ),
      repositoryName: db.prepare<[number], { name: string }>('SELECT name FROM repositories WHERE id = ?'),
      linkedBlob: db.prepare<[number, string], { size: number; state: BlobState }>(
        `SELECT b.size, b.state FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
         WHERE rb.repository_id = ? AND rb.digest = ?`,
      ),
      touchManifest: db.prepare<[number, number, string]>('UPDATE manifests SET touched_at = max(touched_at, ?) WHERE repository_id = ? AND digest = ?'),
      graphRepositories: db.prepare<[string, number], { id: number; name: string; created_at: number }>(
        'SELECT id, name, created_at FROM repositories WHERE name > ? ORDER BY name LIMIT ?',
      ),
      graphManifests: db.prepare<[number], { digest: string; media_type: string; size: number; subject: string | null; touched_at: number; pulled_at: number | null }>(
        'SELECT digest, media_type, size, subject, touched_at, pulled_at FROM manifests WHERE repository_id = ? ORDER BY digest',
      ),
      graphTags: db.prepare<[number], { name: string; digest: string; updated_at: number }>('SELECT name, digest, updated_at FROM tags WHERE repository_id = ? ORDER BY name'),
      recordPull: db.prepare<[number, string, string, number]>(
        'UPDATE manifests SET pulled_at = ? WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ? AND (pulled_at IS NULL OR pulled_at < ?)',
      ),
      listRetentionPolicies: db.prepare<[], RetentionRow>(
        "SELECT id, repositories, rules, source, created_at, created_by FROM retention_policies ORDER BY source = 'api', id",
      ),
      retentionPolicyById: db.prepare<[number], RetentionRow>('SELECT id, repositories, rules, source, created_at, created_by FROM retention_policies WHERE id = ?'),
      insertRetentionPolicy: db.prepare<[string, string, string, number, string | null]>(
        'INSERT INTO retention_policies (repositories, rules, source, created_at, created_by) VALUES (?, ?, ?, ?, ?)',
      ),
      deleteApiRetentionPolicy: db.prepare<[number]>("DELETE FROM retention_policies WHERE id = ? AND source = 'api'"),
      deleteConfigRetentionPolicies: db.prepare<[]>("DELETE FROM retention_policies WHERE source = 'config'"),
      graphReferences: db.prepare<[number], { manifest_digest: string; child_digest: string; kind: 'blob' | 'manifest' }>(
        'SELECT manifest_digest, child_digest, kind FROM manifest_references WHERE repository_id = ? ORDER BY child_digest',
      ),
      uploadCount: db.prepare<[number], { n: number }>('SELECT count(*) AS n FROM uploads WHERE repository_id = ?'),
      linkedDigests: db.prepare<[number], { digest: string }>('SELECT digest FROM repository_blobs WHERE repository_id = ? ORDER BY digest'),
      anyLink: db.prepare<[number], { one: number }>('SELECT 1 AS one FROM repository_blobs WHERE repository_id = ? LIMIT 1'),
      manifestTouched: db.prepare<[number, string], { touched_at: number }>('SELECT touched_at FROM manifests WHERE repository_id = ? AND digest = ?'),
      anyTagOn: db.prepare<[number, string], { one: number }>('SELECT 1 AS one FROM tags WHERE repository_id = ? AND digest = ? LIMIT 1'),
      isChild: db.prepare<[number, string], { one: number }>(
        "SELECT 1 AS one FROM manifest_references WHERE repository_id = ? AND child_digest = ? AND kind = 'manifest' LIMIT 1",
      ),
      manifestParents: db.prepare<[number, string], { manifest_digest: string }>(
        "SELECT manifest_digest FROM manifest_references WHERE repository_id = ? AND child_digest = ? AND kind = 'manifest' ORDER BY manifest_digest",
      ),
      hasReferrer: db.prepare<[number, string], { one: number }>('SELECT 1 AS one FROM manifests WHERE repository_id = ? AND subject = ? LIMIT 1'),
      // The sweep's steps, set-based: one statement decides a whole batch (given as a JSON array),
      // each row on its own condition, so a batch costs a few calls instead of a few per blob.
      markBlobsDeleting: db.prepare<[number, string, number], { digest: string }>(
        `UPDATE blobs SET state = 'deleting', state_since = ?
           WHERE digest IN (SELECT value FROM json_each(?)) AND state = 'present' AND touched_at < ?
             AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child_digest = blobs.digest AND r.kind = 'blob')
           RETURNING digest`,
      ),
      sweepableBlobs: db.prepare<[string, number, number, number], BlobRow>(
        `SELECT digest, size, state, state_since, touched_at FROM blobs
           WHERE digest IN (SELECT value FROM json_each(?)) AND touched_at < ?
             AND ((state = 'deleting' AND state_since <= ?) OR (state = 'pending' AND state_since < ?) OR state = 'quarantined')
             AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child_digest = blobs.digest AND r.kind = 'blob')`,
      ),
      setBlobsSweeping: db.prepare<[number, string]>("UPDATE blobs SET state = 'sweeping', state_since = ? WHERE digest IN (SELECT value FROM json_each(?))"),
      deleteSweptLinks: db.prepare<[string]>(
        "DELETE FROM repository_blobs WHERE digest IN (SELECT digest FROM blobs WHERE digest IN (SELECT value FROM json_each(?)) AND state = 'sweeping')",
      ),
      deleteSweptBlobs: db.prepare<[string], { digest: string }>(
        "DELETE FROM blobs WHERE digest IN (SELECT value FROM json_each(?)) AND state = 'sweeping' RETURNING digest",
      ),
      repositoryRow: db.prepare<[string], { id: number; created_at: number }>('SELECT id, created_at FROM repositories WHERE name = ?'),
      deleteRepository: db.prepare<[number]>('DELETE FROM repositories WHERE id = ?'),
      getLease: db.prepare<[string], { owner: string; until: number }>('SELECT owner, until FROM leases WHERE name = ?'),
      putLease: db.prepare<[string, string, number]>(
        'INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, until = excluded.until',
      ),
      deleteLease: db.prepare<[string, string]>('DELETE FROM leases WHERE name = ? AND owner = ?'),
      anyManifest: db.prepare<[number], { one: number }>('SELECT 1 AS one FROM manifests WHERE repository_id = ? LIMIT 1'),
      appendOutbox: db.prepare<[number, string, string | null, string]>('INSERT INTO outbox (at, action, repository, event) VALUES (?, ?, ?, ?)'),
      readOutbox: db.prepare<[number, number], { id: number; at: number; event: string }>('SELECT id, at, event FROM outbox WHERE id > ? ORDER BY id LIMIT ?'),
      consumerPosition: db.prepare<[string], { position: number }>('SELECT position FROM outbox_consumers WHERE name = ?'),
      insertConsumer: db.prepare<[string, number, number]>('INSERT INTO outbox_consumers (name, position, updated_at) VALUES (?, ?, ?)'),
      advanceConsumer: db.prepare<[number, number, string, number]>('UPDATE outbox_consumers SET position = ?, updated_at = ? WHERE name = ? AND position = ?'),
      slowestConsumer: db.prepare<[], { position: number | null }>('SELECT min(position) AS position FROM outbox_consumers'),
      pruneOutbox: db.prepare<[number]>('DELETE FROM outbox WHERE id <= ?'),
      lastOutboxId: db.prepare<[], { id: number | null }>('SELECT max(id) AS id FROM outbox'),
      countOutbox: db.prepare<[number], { n: number }>('SELECT count(*) AS n FROM outbox WHERE id > ?'),
      getDeliveryStatus: db.prepare<[string], { attempts: number; next_attempt_at: number; last_error: string | null }>(
        'SELECT attempts, next_attempt_at, last_error FROM notification_status WHERE endpoint = ?',
      ),
      putDeliveryStatus: db.prepare<[string, number, number, string | null, number]>(
        `INSERT INTO notification_status (endpoint, attempts, next_attempt_at, last_error, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(endpoint) DO UPDATE SET attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
           last_error = excluded.last_error, updated_at = excluded.updated_at`,
      ),
      deleteDeliveryStatus: db.prepare<[string]>('DELETE FROM notification_status WHERE endpoint = ?'),
      insertParked: db.prepare<[string, number, number, string, number, string | null, number]>(
        'INSERT INTO notification_parked (endpoint, outbox_id, at, event, attempts, last_error, parked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      listParked: db.prepare<{ endpoint: string | null; limit: number }, ParkedRow>(
        `SELECT id, endpoint, outbox_id, at, event, attempts, last_error, parked_at FROM notification_parked
         WHERE @endpoint IS NULL OR endpoint = @endpoint ORDER BY id LIMIT @limit`,
      ),
      deleteParked: db.prepare<[number]>('DELETE FROM notification_parked WHERE id = ?'),
      jobById: db.prepare<[number], JobRow>('SELECT * FROM jobs WHERE id = ?'),
      jobByKey: db.prepare<[string], JobRow>('SELECT * FROM jobs WHERE key = ?'),
      deleteJob: db.prepare<[number]>('DELETE FROM jobs WHERE id = ?'),
      setJobRepeat: db.prepare<[number, number, number, number]>('UPDATE jobs SET repeat_ms = ?, run_at = ?, updated_at = ? WHERE id = ?'),
      insertJob: db.prepare<[string, string | null, string, number, number, number | null, number, number]>(
        `INSERT INTO jobs (kind, key, payload, state, run_at, max_attempts, repeat_ms, created_at, updated_at)
         VALUES (?, ?, ?, 'ready', ?, ?, ?, ?, ?)`,
      ),
      dueJob: db.prepare<[string, number, number], { id: number }>(
        `SELECT id FROM jobs
         WHERE kind IN (SELECT value FROM json_each(?))
           AND ((state = 'ready' AND run_at <= ?) OR (state = 'running' AND lease_until < ?))
         ORDER BY run_at, id LIMIT 1`,
      ),
      claimJob: db.prepare<[string, number, number, number]>(
        "UPDATE jobs SET state = 'running', lease_owner = ?, lease_until = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
      ),
      renewJob: db.prepare<[number, number, number, string]>(
        "UPDATE jobs SET lease_until = ?, updated_at = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
      ),
      settleJob: db.prepare<[JobState, number, number, string | null, number, number]>(
        'UPDATE jobs SET state = ?, run_at = ?, attempts = ?, last_error = ?, lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ?',
      ),
      listJobs: db.prepare<[string, number], JobRow>(
        'SELECT * FROM jobs WHERE state IN (SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT ?',
      ),
      // A rule covers a repository when it names it, or names a prefix of it ending in '/'.
      quotasCovering: db.prepare<{ repository: string }, { name: string; limit_bytes: number }>(
        `SELECT name, min(limit_bytes) AS limit_bytes FROM quotas
         WHERE name = @repository OR (substr(name, -1) = '/' AND substr(@repository, 1, length(name)) = name)
         GROUP BY name`,
      ),
      repositoryUsageBytes: db.prepare<[string], { bytes: number }>('SELECT bytes FROM repository_usage WHERE name = ?'),
      namespaceUsageBytes: db.prepare<{ prefix: string }, { bytes: number }>(
        'SELECT coalesce(sum(bytes), 0) AS bytes FROM repository_usage WHERE substr(name, 1, length(@prefix)) = @prefix',
      ),
      usageList: db.prepare<{ prefix: string; limit: number }, { name: string; bytes: number; blobs: number; manifests: number }>(
        `SELECT name, bytes, blobs, manifests FROM repository_usage
         WHERE substr(name, 1, length(@prefix)) = @prefix ORDER BY bytes DESC, name LIMIT @limit`,
      ),
      listQuotas: db.prepare<[], { name: string; source: 'config' | 'api'; limit_bytes: number }>(
        'SELECT name, source, limit_bytes FROM quotas ORDER BY name, source',
      ),
      upsertQuota: db.prepare<[string, string, number, number]>(
        `INSERT INTO quotas (name, source, limit_bytes, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(name, source) DO UPDATE SET limit_bytes = excluded.limit_bytes, updated_at = excluded.updated_at`,
      ),
      deleteQuota: db.prepare<[string, string]>('DELETE FROM quotas WHERE name = ? AND source = ?'),
      deleteConfigQuotas: db.prepare("DELETE FROM quotas WHERE source = 'config'"),
      isLinked: db.prepare<[number, string], { one: number }>('SELECT 1 AS one FROM repository_blobs WHERE repository_id = ? AND digest = ?'),
      listRepositories: db.prepare<[string, number], { name: string }>(
        `SELECT name FROM repositories r
         WHERE name > ? AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
         ORDER BY name LIMIT ?`,
      ),
    };
    this.profiles = {
      profile: db.prepare<[number], { image_description: string | null; readme: string | null; readme_updated_at: number | null; readme_updated_by: string | null }>(
        'SELECT image_description, readme, readme_updated_at, readme_updated_by FROM repository_profiles WHERE repository_id = ?',
      ),
      setImageDescription: db.prepare<[number, string | null]>(
        `INSERT INTO repository_profiles (repository_id, image_description) VALUES (?, ?)
         ON CONFLICT(repository_id) DO UPDATE SET image_description = excluded.image_description`,
      ),
      setReadme: db.prepare<[number, string | null, number, string | null]>(
        `INSERT INTO repository_profiles (repository_id, readme, readme_updated_at, readme_updated_by) VALUES (?, ?, ?, ?)
         ON CONFLICT(repository_id) DO UPDATE SET readme = excluded.readme, readme_updated_at = excluded.readme_updated_at, readme_updated_by = excluded.readme_updated_by`,
      ),
      indexDescription: db.prepare<[string, number]>('UPDATE repository_search SET description = ? WHERE rowid = ?'),
      // Candidates in index order, no ranking in SQL: bounded work however common the words are
      // (ranking every match of a word that 100,000 repositories share would not be).
      search: db.prepare<{ match: string; limit: number }, { id: number; name: string; description: string }>(
        `SELECT rowid AS id, name, description FROM repository_search
         WHERE repository_search MATCH @match AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = repository_search.rowid) LIMIT @limit`,
      ),
      listNames: db.prepare<{ after: string; limit: number }, { id: number; name: string; description: string }>(
        `SELECT r.id, r.name, s.description FROM repositories r JOIN repository_search s ON s.rowid = r.id
         WHERE r.name > @after AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id) ORDER BY r.name LIMIT @limit`,
      ),
      starCount: db.prepare<[number], { n: number }>('SELECT count(*) AS n FROM repository_stars WHERE repository_id = ?'),
      addStar: db.prepare<[number, string, number]>('INSERT INTO repository_stars (repository_id, user, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
      removeStar: db.prepare<[number, string]>('DELETE FROM repository_stars WHERE repository_id = ? AND user = ?'),
      starred: db.prepare<[string, string], { one: number }>(
        'SELECT 1 AS one FROM repository_stars WHERE user = ? AND repository_id = (SELECT id FROM repositories WHERE name = ?)',
      ),
      tagSummary: db.prepare<[number], { n: number; last: number | null }>('SELECT count(*) AS n, max(updated_at) AS last FROM tags WHERE repository_id = ?'),
      usage: db.prepare<[number], { bytes: number }>('SELECT bytes FROM repository_usage WHERE repository_id = ?'),
    };
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    if (current > MIGRATIONS.length) {
      throw new Error(`metadata database schema ${current} is newer than this wharf (${MIGRATIONS.length})`);
    }
    if (current === MIGRATIONS.length) return;
    const run = this.db.transaction(() => {
      // Re-read inside the write transaction: another process may have migrated meanwhile.
      const version = this.db.pragma('user_version', { simple: true }) as number;
      for (let i = version; i < MIGRATIONS.length; i += 1) this.db.exec(MIGRATIONS[i]!);
      this.db.pragma(`user_version = ${MIGRATIONS.length}`);
    });
    run.immediate();
  }

  /** The open connection, for an account store that must share it (see `exclusive`). */
  get connection(): Database.Database {
    return this.db;
  }

  async inventory(): Promise<Inventory> {
    const row = this.db
      .prepare<[], Inventory>(
        `SELECT (SELECT count(*) FROM repositories) AS repositories,
                (SELECT count(*) FROM manifests) AS manifests,
                count(*) AS blobs, coalesce(sum(size), 0) AS blobBytes
           FROM blobs WHERE state = 'present'`,
      )
      .get()!;
    return row;
  }

  async checkWritable(): Promise<void> {
    // Between event-loop turns no group commit holds a transaction open (they run synchronously).
    this.db.pragma('busy_timeout = 0');
    try {
      this.statements.beginImmediate.run();
      this.statements.rollback.run();
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY') throw error;
    } finally {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  async close(): Promise<void> {
    if (this.retrying) clearTimeout(this.retrying);
    // The last writes wait for the lock like any statement rather than being dropped.
    this.flush({ block: true });
    this.db.close();
  }

  /**
   * Runs `work` in a write transaction shared with every other write queued in the same turn of
   * the event loop (group commit): concurrent requests pay for one WAL fsync between them, not one
   * each. Each write runs in its own savepoint, so one that throws rolls back alone; none resolves
   * before the commit is durable.
   */
  private write<T>(work: () => T, options: { lazy?: boolean } = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject, ...(options.lazy ? { lazy: true } : {}) });
      if (this.queue.length === 1 && !this.retrying) setImmediate(() => this.flush());
    });
  }

  /**
   * Commits the queued writes. When another process holds the write lock, SQLite's busy handler
   * would sleep with the event loop blocked; instead the attempt fails at once and is retried a
   * millisecond later, while this process goes on serving reads and queueing more writes into the
   * same batch. After BUSY_TIMEOUT_MS of retries the batch fails with SQLITE_BUSY. With `block`
   * (on close) it waits in the busy handler like any other statement.
   */
  private flush(options: { block?: boolean } = {}): void {
    this.retrying = undefined;
    if (this.queue.length === 0 || !this.db.open) return;
    // A batch of lazy writes only (recorded pulls) need not wait for the disk: in WAL mode,
    // NORMAL still survives a crash of the process, and the serving event loop is not held by
    // an fsync per batch. Any other write in the batch makes the whole commit durable.
    const lazy = this.synchronous === 'FULL' && this.queue.every((item) => item.lazy === true);
    if (lazy) this.db.pragma('synchronous = NORMAL');
    try {
      if (!this.begin(options.block === true)) return;
      this.commitQueued();
    } finally {
      if (lazy) this.db.pragma(`synchronous = ${this.synchronous}`);
    }
  }

  private commitQueued(): void {
    const began = this.onCommit ? performance.now() : 0;
    const batch = this.queue.splice(0);
    const outcomes: Array<{ value: unknown } | { error: unknown }> = [];
    try {
      for (const item of batch) {
        try {
          // Inside the open transaction, this is a savepoint of its own.
          outcomes.push({ value: this.db.transaction(item.work)() });
        } catch (error) {
          outcomes.push({ error });
        }
      }
      this.statements.commit.run();
    } catch (error) {
      if (this.db.inTransaction) this.statements.rollback.run();
      this.settle(batch, error);
      return;
    }
    this.onCommit?.((performance.now() - began) / 1000, batch.length);
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if ('error' in outcome) item.reject(outcome.error);
      else item.resolve(outcome.value);
    });
  }

  /** BEGIN IMMEDIATE; false when it scheduled a retry or failed the queued writes instead. */
  private begin(block: boolean): boolean {
    if (!block) this.db.pragma('busy_timeout = 0');
    try {
      this.statements.beginImmediate.run();
      this.busySince = undefined;
      return true;
    } catch (error) {
      this.busySince ??= Date.now();
      if (!block && (error as { code?: string }).code === 'SQLITE_BUSY' && Date.now() - this.busySince < BUSY_TIMEOUT_MS) {
        this.retrying = setTimeout(() => this.flush(), 1);
        return false;
      }
      this.busySince = undefined;
      this.settle(this.queue.splice(0), error);
      return false;
    } finally {
      if (!block) this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    }
  }

  private settle(batch: PendingWrite[], error: unknown): void {
    for (const item of batch) item.reject(error);
  }

  private repositoryId(name: string): number | undefined {
    return this.statements.repositoryId.get(name)?.id;
  }

  private ensureRepository(name: string): number {
    const existing = this.repositoryId(name);
    if (existing !== undefined) return existing;
    this.statements.insertRepository.run(name, Date.now());
    return this.repositoryId(name)!;
  }

  async blobSize(digest: string): Promise<number | undefined> {
    return this.statements.blobSize.get(digest)?.size;
  }

  async getBlob(digest: string): Promise<BlobRecord | undefined> {
    const row = this.statements.getBlob.get(digest);
    return row ? toBlob(row) : undefined;
  }

  async listBlobs(page: Page): Promise<BlobRecord[]> {
    return this.statements.listBlobs.all(page.after ?? '', page.limit).map(toBlob);
  }

  async repositoryBlobSize(repository: string, digest: string): Promise<number | undefined> {
    return this.reads.get(`blob\0${repository}\0${digest}`, () => this.statements.repositoryBlobSize.get(repository, digest)?.size);
  }

  async addBlob(repository: string, digest: string, size: number, options: ChangeOptions = {}): Promise<void> {
    return this.write(() => {
      const now = Date.now();
      const id = this.ensureRepository(repository);
      this.enforceQuota(repository, this.statements.isLinked.get(id, digest) ? 0 : size);
      const row = this.statements.getBlob.get(digest);
      if (!row) this.statements.insertBlob.run(digest, size, now, 'present', now, now);
      else if (row.state !== 'present') this.statements.setBlobState.run('present', now, digest);
      this.statements.touchBlob.run(now, digest);
      if (this.link(id, digest, now)) this.record({ action: 'blob.push', repository, digest, size, ...actorOf(options) }, now);
    });
  }

  async linkBlob(repository: string, digest: string, options: ChangeOptions & { from?: string } = {}): Promise<boolean> {
    return this.write(() => {
      const row = this.statements.getBlob.get(digest);
      if (!row || (row.state !== 'present' && row.state !== 'deleting')) return false;
      const existing = this.repositoryId(repository);
      this.enforceQuota(repository, existing !== undefined && this.statements.isLinked.get(existing, digest) ? 0 : row.size);
      const now = Date.now();
      if (row.state === 'deleting') this.statements.setBlobState.run('present', now, digest);
      this.statements.touchBlob.run(now, digest);
      const id = this.ensureRepository(repository);
      if (this.link(id, digest, now)) {
        this.record({ action: 'blob.mount', repository, digest, size: row.size, ...(options.from !== undefined ? { from: options.from } : {}), ...actorOf(options) }, now);
      }
      return true;
    });
  }

  async reserveBlob(digest: string, size: number): Promise<BlobReservation> {
    return this.write((): BlobReservation => {
      const now = Date.now();
      const row = this.statements.getBlob.get(digest);
      if (!row) {
        this.statements.insertBlob.run(digest, size, now, 'pending', now, now);
        return 'place';
      }
      // A commit on its way: a collector must leave the bytes until it has linked them.
      this.statements.touchBlob.run(now, digest);
      switch (row.state) {
        case 'present':
          return 'present';
        case 'deleting':
          // Its bytes are still there: a new link brings it back.
          this.statements.setBlobState.run('present', now, digest);
          return 'present';
        case 'sweeping':
          return 'busy';
        default:
          // pending (another commit, or one that died) or quarantined: put verified bytes in place.
          this.statements.setBlobState.run('pending', now, digest);
          return 'place';
      }
    });
  }

  async quarantineBlob(digest: string): Promise<boolean> {
    return this.write(() => this.statements.quarantineBlob.run(Date.now(), digest).changes > 0);
  }

  async unlinkBlob(repository: string, digest: string, options: ChangeOptions = {}): Promise<boolean> {
    return this.write(() => {
      const id = this.repositoryId(repository);
      if (id === undefined || this.statements.unlinkBlob.run(id, digest).changes === 0) return false;
      this.record({ action: 'blob.delete', repository, digest, ...actorOf(options) }, Date.now());
      return true;
    });
  }

  /** Links a blob into a repository, or refreshes the link's time; true when the link is new. */
  private link(repositoryId: number, digest: string, now: number): boolean {
    if (this.statements.linkBlob.run(repositoryId, digest, now).changes > 0) return true;
    this.statements.touchLink.run(now, repositoryId, digest);
    return false;
  }

  async repositoriesLinkingBlob(digest: string, limit: number): Promise<string[]> {
    return this.statements.repositoriesLinkingBlob.all(digest, limit).map((row) => row.name);
  }

  async missingBlobs(repository: string, digests: string[]): Promise<string[]> {
    const id = this.repositoryId(repository);
    if (id === undefined) return [...digests];
    return digests.filter((digest) => !this.statements.hasLink.get(id, digest));
  }

  async createUpload(upload: { id: string; repository: string; startedAt: number }): Promise<void> {
    return this.write(() => {
      const id = this.ensureRepository(upload.repository);
      this.statements.insertUpload.run(upload.id, id, upload.startedAt, upload.startedAt);
    });
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    const row = this.statements.getUpload.get(id);
    return row ? toUpload(row) : undefined;
  }

  async advanceUpload(id: string, advance: UploadAdvance): Promise<boolean> {
    const { from, part, hashState } = advance;
    const state = hashState === undefined ? null : Buffer.from(hashState.buffer, hashState.byteOffset, hashState.byteLength);
    const record = JSON.stringify({ name: part.name, size: part.size });
    if (advance.extendsLast) {
      return this.write(() => this.statements.extendUpload.run(part.size, record, state, Date.now(), id, from, part.name).changes > 0);
    }
    return this.write(() => this.statements.advanceUpload.run(part.size, record, state, Date.now(), id, from).changes > 0);
  }

  async completeUpload(id: string, size: number, digest: string, options: ChangeOptions = {}): Promise<'done' | 'gone' | 'retry'> {
    return this.write(() => {
      const upload = this.statements.uploadSize.get(id);
      if (!upload || upload.size !== size) return 'gone';
      const blob = this.statements.getBlob.get(digest);
      if (!blob || blob.state === 'sweeping' || blob.state === 'quarantined') return 'retry';
      const repository = this.statements.repositoryName.get(upload.repository_id)!.name;
      this.enforceQuota(repository, this.statements.isLinked.get(upload.repository_id, digest) ? 0 : blob.size);
      const now = Date.now();
      if (blob.state !== 'present') this.statements.setBlobState.run('present', now, digest);
      this.statements.touchBlob.run(now, digest);
      this.link(upload.repository_id, digest, now);
      this.statements.deleteUpload.run(id);
      this.record({ action: 'blob.push', repository, digest, size, ...actorOf(options) }, now);
      return 'done';
    });
  }

  async deleteUpload(id: string): Promise<boolean> {
    return this.write(() => this.statements.deleteUpload.run(id).changes > 0);
  }

  async staleUploads(before: number, limit: number): Promise<UploadRecord[]> {
    return this.statements.staleUploads.all(before, limit).map(toUpload);
  }

  async getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined> {
    return this.reads.get(`manifest\0${repository}\0${digest}`, () => {
      const row = this.statements.getManifest.get(repository, digest);
      return row ? toRecord(row) : undefined;
    });
  }

  async getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | undefined> {
    return this.reads.get(`tag\0${repository}\0${tag}`, () => {
      const row = this.statements.getTaggedManifest.get(repository, tag);
      return row ? toRecord(row) : undefined;
    });
  }

  async missingManifests(repository: string, digests: string[]): Promise<string[]> {
    const id = this.repositoryId(repository);
    if (id === undefined) return [...digests];
    return digests.filter((digest) => !this.statements.hasManifest.get(id, digest));
  }

  async putManifest(put: ManifestPut): Promise<ManifestPutResult> {
    return this.write((): ManifestPutResult => {
      const now = Date.now();
      const id = this.ensureRepository(put.repository);
      // The checks and the write are one transaction: a blob unlinked or collected after a check
      // outside it could otherwise leave a manifest that references nothing.
      let totalSize = put.content.length;
      for (const blob of put.blobs) {
        const linked = this.statements.linkedBlob.get(id, blob.digest);
        if (linked?.state === 'sweeping') {
          // A collector is deleting the bytes: the caller waits for it to finish, then finds the blob gone.
          throw new RegistryError('UNAVAILABLE', { message: 'a blob the manifest references is being garbage-collected; push it again', detail: { digest: blob.digest, state: 'sweeping' } });
        }
        if (linked === undefined || (linked.state !== 'present' && linked.state !== 'deleting')) {
          throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'manifest references a blob unknown to this repository', detail: { digest: blob.digest } });
        }
        // Marked for collection but its bytes are still there: this reference keeps it.
        if (linked.state === 'deleting') this.statements.setBlobState.run('present', now, blob.digest);
        const size = linked.size;
        if (size !== blob.size) {
          throw new RegistryError('MANIFEST_INVALID', { message: `descriptor size ${blob.size} does not match blob ${blob.digest} (${size} bytes)`, detail: { digest: blob.digest } });
        }
        totalSize += size;
      }
      for (const child of put.children) {
        if (!this.statements.hasManifest.get(id, child.digest)) {
          throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'index references a manifest unknown to this repository', detail: { digest: child.digest } });
        }
        totalSize += child.size;
      }
      const previousOf = new Map(put.tags.map((tag) => [tag, this.statements.tagDigest.get(id, tag)?.digest]));
      this.refuseImmutable(put.repository, [...previousOf].filter(([, previous]) => previous !== undefined && previous !== put.digest).map(([tag]) => tag), 'move');
      // Last of the checks: a reference error tells the client more than a quota would.
      this.enforceQuota(put.repository, this.statements.hasManifest.get(id, put.digest) ? 0 : put.content.length);
      const firstManifest = !this.statements.anyManifest.get(id);
      const inserted = this.statements.insertManifest.run(
        id,
        put.digest,
        put.mediaType,
        put.content,
        put.content.length,
        totalSize,
        put.subject ?? null,
        put.artifactType ?? null,
        put.annotations ? JSON.stringify(put.annotations) : null,
        now,
        now,
      );
      if (inserted.changes > 0) {
        for (const blob of put.blobs) this.statements.insertReference.run(id, put.digest, blob.digest, 'blob');
        for (const child of put.children) this.statements.insertReference.run(id, put.digest, child.digest, 'manifest');
      } else {
        // Pushed again (say, a child before its index): a collector must not take it meanwhile.
        this.statements.touchManifest.run(now, id, put.digest);
      }
      const actor = actorOf(put);
      if (firstManifest) this.record({ action: 'repository.create', repository: put.repository, ...actor }, now);
      this.record(
        {
          action: 'manifest.push',
          repository: put.repository,
          digest: put.digest,
          mediaType: put.mediaType,
          size: put.content.length,
          tags: put.tags,
          ...(put.subject ? { subject: put.subject } : {}),
          ...(put.artifactType ? { artifactType: put.artifactType } : {}),
          ...(put.references ? { references: put.references } : {}),
          ...actor,
        },
        now,
      );
      if (put.tags.length > 0 && put.description !== undefined) this.setImageDescription(id, put.description);
      const moved: ManifestPutResult['moved'] = [];
      for (const tag of put.tags) {
        const previous = previousOf.get(tag);
        if (previous === put.digest) continue;
        this.statements.upsertTag.run(id, tag, put.digest, now);
        this.statements.insertTagEvent.run(id, tag, put.digest, 'push', put.actor ?? null, now, previous ?? null);
        moved.push(previous === undefined ? { tag } : { tag, previous });
        this.record({ action: 'tag.move', repository: put.repository, tag, digest: put.digest, ...(previous !== undefined ? { previous } : {}), ...actor }, now);
      }
      return { totalSize, moved };
    });
  }

  async deleteManifest(repository: string, digest: string, options: ChangeOptions = {}): Promise<string[] | undefined> {
    return this.write(() => {
      const id = this.repositoryId(repository);
      if (id === undefined || !this.statements.hasManifest.get(id, digest)) return undefined;
      const now = Date.now();
      const tags = this.statements.tagsOfManifest.all(id, digest).map((row) => row.name);
      this.refuseImmutable(repository, tags, 'delete');
      for (const tag of tags) {
        this.statements.deleteTag.run(id, tag);
        this.statements.insertTagEvent.run(id, tag, digest, 'delete', options.actor ?? null, now, digest);
      }
      this.statements.deleteManifest.run(id, digest);
      this.record({ action: 'manifest.delete', repository, digest, tags, ...actorOf(options) }, now);
      return tags;
    });
  }

  async deleteTag(repository: string, tag: string, options: ChangeOptions = {}): Promise<string | undefined> {
    return this.write(() => {
      const id = this.repositoryId(repository);
      if (id === undefined) return undefined;
      const current = this.statements.tagDigest.get(id, tag);
      if (!current) return undefined;
      this.refuseImmutable(repository, [tag], 'delete');
      const now = Date.now();
      this.statements.deleteTag.run(id, tag);
      this.statements.insertTagEvent.run(id, tag, current.digest, 'delete', options.actor ?? null, now, current.digest);
      this.record({ action: 'tag.delete', repository, tag, digest: current.digest, ...actorOf(options) }, now);
      return current.digest;
    });
  }

  async moveTag(repository: string, tag: string, digest: string, options: ChangeOptions = {}): Promise<{ previous?: string; moved: boolean }> {
    return this.write(() => {
      const id = this.repositoryId(repository);
      if (id === undefined || !this.statements.hasManifest.get(id, digest)) {
        throw new RegistryError('MANIFEST_UNKNOWN', { message: `manifest ${digest} is not in ${repository} any more`, detail: { reference: digest } });
      }
      const previous = this.statements.tagDigest.get(id, tag)?.digest;
      if (previous === digest) return { previous, moved: false };
      if (previous !== undefined) this.refuseImmutable(repository, [tag], 'move');
      const now = Date.now();
      this.statements.upsertTag.run(id, tag, digest, now);
      // A restore keeps what it restored from collection like any push does.
      this.statements.touchManifest.run(now, id, digest);
      this.statements.insertTagEvent.run(id, tag, digest, 'push', options.actor ?? null, now, previous ?? null);
      this.record({ action: 'tag.move', repository, tag, digest, ...(previous !== undefined ? { previous } : {}), restore: true, ...actorOf(options) }, now);
      return previous !== undefined ? { previous, moved: true } : { moved: true };
    });
  }

  async recordPulls(pulls: ReadonlyArray<{ repository: string; digest: string; at: number }>): Promise<void> {
    if (pulls.length === 0) return;
    // Lazy: pull times need not wait for the disk (see write's `lazy`).
    await this.write(
      () => {
        for (const pull of pulls) this.statements.recordPull.run(pull.at, pull.repository, pull.digest, pull.at);
      },
      { lazy: true },
    );
  }

  async listRetentionPolicies(): Promise<RetentionPolicy[]> {
    return this.statements.listRetentionPolicies.all().map(toRetentionPolicy);
  }

  async addRetentionPolicy(spec: RetentionPolicySpec, options: ChangeOptions = {}): Promise<RetentionPolicy> {
    return this.write(() => {
      const { repositories, ...rules } = spec;
      const id = this.statements.insertRetentionPolicy.run(repositories, JSON.stringify(rules), 'api', Date.now(), options.actor ?? null).lastInsertRowid;
      return toRetentionPolicy(this.statements.retentionPolicyById.get(Number(id))!);
    });
  }

  async removeRetentionPolicy(id: number): Promise<boolean> {
    return this.write(() => this.statements.deleteApiRetentionPolicy.run(id).changes > 0);
  }

  async replaceConfigRetentionPolicies(specs: readonly RetentionPolicySpec[]): Promise<void> {
    return this.write(() => {
      const wanted = specs.map(({ repositories, ...rules }) => [repositories, JSON.stringify(rules)] as const);
      const current = this.statements.listRetentionPolicies.all().filter((row) => row.source === 'config');
      // Every serving process does this at start: leave the ids alone when nothing changed.
      if (current.length === wanted.length && current.every((row, i) => row.repositories === wanted[i]![0] && row.rules === wanted[i]![1])) return;
      this.statements.deleteConfigRetentionPolicies.run();
      const now = Date.now();
      for (const [repositories, rules] of wanted) this.statements.insertRetentionPolicy.run(repositories, rules, 'config', now, null);
    });
  }

  async retireTags(repository: string, tags: ReadonlyArray<{ tag: string; digest: string }>, options: ChangeOptions = {}): Promise<string[]> {
    if (tags.length === 0) return [];
    return this.write(() => {
      const id = this.repositoryId(repository);
      if (id === undefined) return [];
      const rules = this.statements.listRules.all().map(toRule);
      const now = Date.now();
      const removed: string[] = [];
      for (const { tag, digest } of tags) {
        if (this.statements.tagDigest.get(id, tag)?.digest !== digest) continue;
        if (immutableRuleFor(rules, repository, tag)) continue;
        this.statements.deleteTag.run(id, tag);
        this.statements.insertTagEvent.run(id, tag, digest, 'delete', options.actor ?? null, now, digest);
        this.record({ action: 'tag.delete', repository, tag, digest, ...actorOf(options) }, now);
        removed.push(tag);
      }
      return removed;
    });
  }

  async listImmutableTagRules(): Promise<ImmutableTagRule[]> {
    return this.statements.listRules.all().map(toRule);
  }

  async addImmutableTagRule(pattern: ImmutableTagPattern, options: ChangeOptions = {}): Promise<ImmutableTagRule> {
    return this.write(() => {
      const existing = this.statements.ruleByPatterns.get('api', pattern.repository, pattern.tag);
      if (existing) return toRule(existing);
      const id = this.statements.insertRule.run(pattern.repository, pattern.tag, 'api', Date.now(), options.actor ?? null).lastInsertRowid;
      return toRule(this.statements.ruleById.get(Number(id))!);
    });
  }

  async removeImmutableTagRule(id: number): Promise<boolean> {
    return this.write(() => this.statements.deleteApiRule.run(id).changes > 0);
  }

  async replaceConfigImmutableTagRules(patterns: readonly ImmutableTagPattern[]): Promise<void> {
    return this.write(() => {
      const wanted = new Set(patterns.map((p) => JSON.stringify([p.repository, p.tag])));
      const current = this.statements.listRules.all().filter((row) => row.source === 'config');
      const same = current.length === wanted.size && current.every((row) => wanted.has(JSON.stringify([row.repository, row.tag])));
      // Every serving process does this at start: leave the ids alone when nothing changed.
      if (same) return;
      this.statements.deleteConfigRules.run();
      const now = Date.now();
      for (const key of wanted) {
        const [repository, tag] = JSON.parse(key) as [string, string];
        this.statements.insertRule.run(repository, tag, 'config', now, null);
      }
    });
  }

  /** Throws DENIED when a rule makes one of `tags` immutable; runs inside the write's transaction. */
  private refuseImmutable(repository: string, tags: readonly string[], change: 'move' | 'delete'): void {
    if (tags.length === 0) return;
    const rules = this.statements.listRules.all().map(toRule);
    if (rules.length === 0) return;
    for (const tag of tags) {
      const rule = immutableRuleFor(rules, repository, tag);
      if (rule) throw immutableTagDenied(rule, repository, tag, change);
    }
  }

  async listTags(repository: string, page: Page): Promise<string[] | undefined> {
    const id = this.repositoryId(repository);
    if (id === undefined) return undefined;
    return this.statements.listTags.all(id, page.after ?? '', page.limit).map((row) => row.name);
  }

  async tagHistory(repository: string, tag: string, limit: number): Promise<TagEvent[]> {
    const id = this.repositoryId(repository);
    if (id === undefined) return [];
    return this.statements.tagHistory.all(id, tag, limit).map((row) => {
      const event: TagEvent = { tag: row.tag, digest: row.digest ?? undefined, action: row.action, at: row.at };
      if (row.previous !== null) event.previous = row.previous;
      if (row.actor !== null) event.actor = row.actor;
      return event;
    });
  }

  async listReferrers(repository: string, digest: string, options: { artifactType?: string }): Promise<Descriptor[]> {
    const id = this.repositoryId(repository);
    if (id === undefined) return [];
    const out: Descriptor[] = [];
    for (const row of this.statements.listReferrers.all(id, digest)) {
      if (options.artifactType !== undefined && row.artifact_type !== options.artifactType) continue;
      const descriptor: Descriptor = { mediaType: row.media_type, digest: row.digest, size: row.size };
      if (row.artifact_type !== null) descriptor.artifactType = row.artifact_type;
      if (row.annotations !== null) descriptor.annotations = JSON.parse(row.annotations) as Record<string, string>;
      out.push(descriptor);
    }
    return out;
  }

  async manifestParents(repository: string, digest: string): Promise<string[]> {
    const id = this.repositoryId(repository);
    if (id === undefined) return [];
    return this.statements.manifestParents.all(id, digest).map((row) => row.manifest_digest);
  }

  async readOutbox(after: number, limit: number): Promise<OutboxEntry[]> {
    return this.statements.readOutbox.all(after, limit).map((row) => ({ id: row.id, at: row.at, event: JSON.parse(row.event) as ChangeEvent }));
  }

  async consumerPosition(consumer: string): Promise<number> {
    return this.statements.consumerPosition.get(consumer)?.position ?? 0;
  }

  async advanceConsumer(consumer: string, from: number, to: number): Promise<boolean> {
    return this.write(() => {
      const now = Date.now();
      if (this.statements.consumerPosition.get(consumer) === undefined) {
        if (from !== 0) return false;
        this.statements.insertConsumer.run(consumer, to, now);
        return true;
      }
      return this.statements.advanceConsumer.run(to, now, consumer, from).changes > 0;
    });
  }

  async pruneOutbox(upTo: number): Promise<number> {
    return this.write(() => {
      const slowest = this.statements.slowestConsumer.get()?.position;
      const limit = slowest === null || slowest === undefined ? upTo : Math.min(upTo, slowest);
      return this.statements.pruneOutbox.run(limit).changes;
    });
  }

  async enqueueJob(job: NewJob): Promise<JobRecord> {
    return this.write(() => {
      const now = Date.now();
      if (job.key !== undefined) {
        const existing = this.statements.jobByKey.get(job.key);
        if (existing && (existing.state === 'ready' || existing.state === 'running')) {
          // A recurring job keeps its place but takes the interval configured now.
          if (job.repeatMs !== undefined && existing.repeat_ms !== job.repeatMs) {
            this.statements.setJobRepeat.run(job.repeatMs, Math.min(existing.run_at, now + job.repeatMs), now, existing.id);
            return toJob(this.statements.jobById.get(existing.id)!);
          }
          return toJob(existing);
        }
        // A finished job with the same key makes room for the new one.
        if (existing) this.statements.deleteJob.run(existing.id);
      }
      const id = this.statements.insertJob.run(
        job.kind,
        job.key ?? null,
        JSON.stringify(job.payload ?? {}),
        job.runAt ?? now,
        job.maxAttempts ?? DEFAULT_JOB_ATTEMPTS,
        job.repeatMs ?? null,
        now,
        now,
      ).lastInsertRowid;
      return toJob(this.statements.jobById.get(Number(id))!);
    });
  }

  async claimJob(options: { kinds: readonly string[]; owner: string; leaseMs: number }): Promise<JobRecord | undefined> {
    if (options.kinds.length === 0) return undefined;
    const kinds = JSON.stringify(options.kinds);
    // Most polls find nothing: look first without taking the write lock.
    const at = Date.now();
    if (!this.statements.dueJob.get(kinds, at, at)) return undefined;
    return this.write(() => {
      const now = Date.now();
      // Runs inside the write transaction: no other process can claim between this read and the update.
      const due = this.statements.dueJob.get(kinds, now, now);
      if (!due) return undefined;
      this.statements.claimJob.run(options.owner, now + options.leaseMs, now, due.id);
      return toJob(this.statements.jobById.get(due.id)!);
    });
  }

  async renewJobLease(id: number, owner: string, leaseMs: number): Promise<boolean> {
    return this.write(() => {
      const now = Date.now();
      return this.statements.renewJob.run(now + leaseMs, now, id, owner).changes > 0;
    });
  }

  async finishJob(id: number, owner: string, outcome: JobOutcome): Promise<boolean> {
    return this.write(() => {
      const job = this.statements.jobById.get(id);
      if (!job || job.state !== 'running' || job.lease_owner !== owner) return false;
      const now = Date.now();
      if (outcome.kind === 'done') {
        if (job.repeat_ms !== null) this.statements.settleJob.run('ready', now + job.repeat_ms, 0, null, now, id);
        else this.statements.settleJob.run('done', job.run_at, job.attempts, null, now, id);
      } else if (job.attempts >= job.max_attempts) {
        // A recurring job goes on at its next time; a one-off one is given up.
        if (job.repeat_ms !== null) this.statements.settleJob.run('ready', now + job.repeat_ms, 0, outcome.error, now, id);
        else this.statements.settleJob.run('failed', job.run_at, job.attempts, outcome.error, now, id);
      } else {
        this.statements.settleJob.run('ready', outcome.runAt, job.attempts, outcome.error, now, id);
      }
      return true;
    });
  }

  async listJobs(options: { states?: readonly JobState[]; limit: number }): Promise<JobRecord[]> {
    const states = JSON.stringify(options.states ?? ['ready', 'running', 'done', 'failed']);
    return this.statements.listJobs.all(states, options.limit).map(toJob);
  }

  async listRepositoryGraphs(page: Page): Promise<RepositoryGraph[]> {
    // One read transaction: the repository's manifests, tags and references agree with each other.
    const read = this.db.transaction((): RepositoryGraph[] =>
      this.statements.graphRepositories.all(page.after ?? '', page.limit).map((repo) => {
        const nodes = new Map<string, ManifestNode>();
        for (const row of this.statements.graphManifests.all(repo.id)) {
          const node: ManifestNode = { digest: row.digest, mediaType: row.media_type, size: row.size, tags: [], touchedAt: row.touched_at, blobs: [], children: [] };
          if (row.subject !== null) node.subject = row.subject;
          if (row.pulled_at !== null) node.pulledAt = row.pulled_at;
          nodes.set(row.digest, node);
        }
        const tagged = this.statements.graphTags.all(repo.id).map((tag) => ({ name: tag.name, digest: tag.digest, pushedAt: tag.updated_at }));
        for (const tag of tagged) nodes.get(tag.digest)?.tags.push(tag.name);
        for (const moved of this.statements.graphHistory.all(repo.id, repo.id)) {
          const node = nodes.get(moved.digest);
          if (node) node.taggedAt = moved.at;
        }
        for (const ref of this.statements.graphReferences.all(repo.id)) {
          const node = nodes.get(ref.manifest_digest);
          if (node) (ref.kind === 'blob' ? node.blobs : node.children).push(ref.child_digest);
        }
        return {
          name: repo.name,
          createdAt: repo.created_at,
          manifests: [...nodes.values()],
          uploads: this.statements.uploadCount.get(repo.id)!.n,
          linked: this.statements.linkedDigests.all(repo.id).map((row) => row.digest),
          tagged,
        };
      }),
    );
    return read.deferred();
  }

  async deleteUntaggedManifests(
    manifests: ReadonlyArray<{ repository: string; digest: string }>,
    options: { touchedBefore: number; historySince?: number },
  ): Promise<Array<{ repository: string; digest: string }>> {
    if (manifests.length === 0) return [];
    return this.write(() => {
      const now = Date.now();
      const since = options.historySince;
      const deleted: Array<{ repository: string; digest: string }> = [];
      for (const { repository, digest } of manifests) {
        const id = this.repositoryId(repository);
        if (id === undefined) continue;
        const row = this.statements.manifestTouched.get(id, digest);
        if (!row || row.touched_at >= options.touchedBefore) continue;
        if (this.statements.anyTagOn.get(id, digest) || this.statements.isChild.get(id, digest) || this.statements.hasReferrer.get(id, digest)) continue;
        if (since !== undefined && this.statements.inHistorySince.get(id, digest, since, id, digest, since)) continue;
        this.statements.deleteManifest.run(id, digest);
        this.record({ action: 'manifest.delete', repository, digest, tags: [] }, now);
        deleted.push({ repository, digest });
      }
      return deleted;
    });
  }

  async markBlobsDeleting(digests: readonly string[], options: { touchedBefore: number }): Promise<string[]> {
    if (digests.length === 0) return [];
    return this.write(() => {
      const marked = new Set(this.statements.markBlobsDeleting.all(Date.now(), JSON.stringify(digests), options.touchedBefore).map((row) => row.digest));
      return digests.filter((digest) => marked.has(digest));
    });
  }

  async beginBlobSweeps(digests: readonly string[], options: { touchedBefore: number; markedBefore: number }): Promise<BlobRecord[]> {
    if (digests.length === 0) return [];
    return this.write(() => {
      // Present rows (not marked, or revived since) and rows already sweeping are left out; a
      // pending row belongs to a commit moving bytes in, unless that commit died long ago.
      const rows = this.statements.sweepableBlobs.all(JSON.stringify(digests), options.touchedBefore, options.markedBefore, options.touchedBefore);
      if (rows.length > 0) this.statements.setBlobsSweeping.run(Date.now(), JSON.stringify(rows.map((row) => row.digest)));
      const byDigest = new Map(rows.map((row) => [row.digest, row]));
      return digests.flatMap((digest) => {
        const row = byDigest.get(digest);
        return row ? [toBlob(row)] : [];
      });
    });
  }

  async finishBlobSweeps(digests: readonly string[]): Promise<string[]> {
    if (digests.length === 0) return [];
    return this.write(() => {
      const batch = JSON.stringify(digests);
      this.statements.deleteSweptLinks.run(batch);
      const removed = new Set(this.statements.deleteSweptBlobs.all(batch).map((row) => row.digest));
      return digests.filter((digest) => removed.has(digest));
    });
  }

  async deleteEmptyRepository(repository: string, options: { touchedBefore: number }): Promise<boolean> {
    return this.write(() => {
      const repo = this.statements.repositoryRow.get(repository);
      if (!repo || repo.created_at >= options.touchedBefore) return false;
      if (this.statements.anyManifest.get(repo.id) || this.statements.uploadCount.get(repo.id)!.n > 0) return false;
      if (this.statements.anyLink.get(repo.id)) return false;
      this.statements.deleteRepository.run(repo.id);
      this.record({ action: 'repository.delete', repository }, Date.now());
      return true;
    });
  }

  async acquireLease(name: string, owner: string, ms: number, options: { replacing?: string } = {}): Promise<LeaseClaim> {
    return this.write((): LeaseClaim => {
      const now = Date.now();
      const held = this.statements.getLease.get(name);
      if (held && held.owner !== owner && held.until > now && held.owner !== options.replacing) {
        return { acquired: false, holder: held.owner, until: held.until };
      }
      this.statements.putLease.run(name, owner, now + ms);
      return { acquired: true };
    });
  }

  async releaseLease(name: string, owner: string): Promise<boolean> {
    return this.write(() => this.statements.deleteLease.run(name, owner).changes > 0);
  }

  async repositoryUsage(options: { prefix?: string; limit: number }): Promise<RepositoryUsage[]> {
    return this.statements.usageList.all({ prefix: options.prefix ?? '', limit: options.limit }).map((row) => ({
      repository: row.name,
      bytes: row.bytes,
      blobs: row.blobs,
      manifests: row.manifests,
    }));
  }

  async checkQuota(repository: string, change: { bytes: number; digest?: string }): Promise<QuotaViolation | undefined> {
    const id = this.repositoryId(repository);
    if (change.digest !== undefined && id !== undefined && this.statements.isLinked.get(id, change.digest)) return undefined;
    return this.quotaViolation(repository, change.bytes);
  }

  async listQuotas(): Promise<QuotaStatus[]> {
    const read = this.db.transaction(() =>
      this.statements.listQuotas.all().map((row) => ({
        name: row.name,
        limit: row.limit_bytes,
        source: row.source,
        scope: quotaScope(row.name),
        usage: this.usageOf(row.name),
      })),
    );
    return read.deferred();
  }

  async setQuota(name: string, limit: number): Promise<void> {
    return this.write(() => {
      this.statements.upsertQuota.run(name, 'api', limit, Date.now());
    });
  }

  async removeQuota(name: string): Promise<boolean> {
    return this.write(() => this.statements.deleteQuota.run(name, 'api').changes > 0);
  }

  async replaceConfigQuotas(rules: ReadonlyArray<{ name: string; limit: number }>): Promise<void> {
    return this.write(() => {
      const now = Date.now();
      this.statements.deleteConfigQuotas.run();
      for (const rule of rules) this.statements.upsertQuota.run(rule.name, 'config', rule.limit, now);
    });
  }

  async appendOutbox(entries: ReadonlyArray<{ at: number; event: ChangeEvent }>): Promise<void> {
    if (entries.length === 0) return;
    return this.write(
      () => {
        for (const { at, event } of entries) this.record(event, at);
      },
      { lazy: true },
    );
  }

  async ensureConsumer(consumer: string): Promise<number> {
    const existing = this.statements.consumerPosition.get(consumer);
    if (existing) return existing.position;
    return this.write(() => {
      const current = this.statements.consumerPosition.get(consumer);
      if (current) return current.position;
      const end = this.statements.lastOutboxId.get()?.id ?? 0;
      this.statements.insertConsumer.run(consumer, end, Date.now());
      return end;
    });
  }

  async countOutbox(after: number): Promise<number> {
    return this.statements.countOutbox.get(after)!.n;
  }

  async getDeliveryStatus(endpoint: string): Promise<DeliveryStatus | undefined> {
    const row = this.statements.getDeliveryStatus.get(endpoint);
    if (!row) return undefined;
    return { attempts: row.attempts, nextAttemptAt: row.next_attempt_at, ...(row.last_error !== null ? { lastError: row.last_error } : {}) };
  }

  async setDeliveryStatus(endpoint: string, status: DeliveryStatus | undefined): Promise<void> {
    return this.write(() => {
      if (status === undefined) this.statements.deleteDeliveryStatus.run(endpoint);
      else this.statements.putDeliveryStatus.run(endpoint, status.attempts, status.nextAttemptAt, status.lastError ?? null, Date.now());
    });
  }

  async parkEvent(endpoint: string, consumer: string, from: number, entry: OutboxEntry, failure: { attempts: number; lastError?: string }): Promise<boolean> {
    return this.write(() => {
      const now = Date.now();
      if (this.statements.advanceConsumer.run(entry.id, now, consumer, from).changes === 0) return false;
      this.statements.insertParked.run(endpoint, entry.id, entry.at, JSON.stringify(entry.event), failure.attempts, failure.lastError ?? null, now);
      this.statements.deleteDeliveryStatus.run(endpoint);
      return true;
    });
  }

  async listParkedEvents(options: { endpoint?: string; limit: number }): Promise<ParkedEvent[]> {
    return this.statements.listParked.all({ endpoint: options.endpoint ?? null, limit: options.limit }).map(toParked);
  }

  async replayParkedEvents(endpoint: string, options: { ids?: readonly number[] }): Promise<number> {
    return this.write(() => {
      const wanted = options.ids ? new Set(options.ids) : undefined;
      const now = Date.now();
      let replayed = 0;
      for (const row of this.statements.listParked.all({ endpoint, limit: Number.MAX_SAFE_INTEGER })) {
        if (wanted && !wanted.has(row.id)) continue;
        const parked = toParked(row);
        const repository = parked.entry.event.repository;
        this.record({ action: 'notification.replay', endpoint, original: parked.entry, ...(repository !== undefined ? { repository } : {}) }, now);
        this.statements.deleteParked.run(row.id);
        replayed += 1;
      }
      return replayed;
    });
  }

  /** Bytes used under a quota name: one repository, or the sum over a namespace. */
  private usageOf(name: string): number {
    return quotaScope(name) === 'namespace'
      ? this.statements.namespaceUsageBytes.get({ prefix: name })!.bytes
      : (this.statements.repositoryUsageBytes.get(name)?.bytes ?? 0);
  }

  private quotaViolation(repository: string, adds: number): QuotaViolation | undefined {
    if (adds <= 0) return undefined;
    const rules = this.statements.quotasCovering.all({ repository });
    if (rules.length === 0) return undefined;
    return firstViolation(rules.map((rule) => ({ name: rule.name, limit: rule.limit_bytes, usage: this.usageOf(rule.name) })), adds);
  }

  /** Throws DENIED when adding `adds` bytes to `repository` would exceed a quota; called inside the write's transaction. */
  private enforceQuota(repository: string, adds: number): void {
    const violation = this.quotaViolation(repository, adds);
    if (violation) throw quotaExceeded(violation);
  }

  /** Appends a change to the outbox; called inside the transaction that makes the change. */
  private record(event: ChangeEvent, at: number): void {
    this.statements.appendOutbox.run(at, event.action, event.repository ?? null, JSON.stringify(event));
  }

  async getStorageImport(source: string): Promise<StorageImport | undefined> {
    const row = this.db.prepare<[string], { started_at: number; finished_at: number | null }>('SELECT started_at, finished_at FROM storage_imports WHERE source = ?').get(source);
    if (!row) return undefined;
    const repositories = this.db
      .prepare<[string], { repository: string }>('SELECT repository FROM storage_import_repositories WHERE source = ? ORDER BY repository')
      .all(source)
      .map((r) => r.repository);
    return { source, startedAt: row.started_at, ...(row.finished_at !== null ? { finishedAt: row.finished_at } : {}), repositories };
  }

  async beginStorageImport(source: string): Promise<void> {
    await this.write(() => this.db.prepare('INSERT INTO storage_imports (source, started_at) VALUES (?, ?) ON CONFLICT(source) DO NOTHING').run(source, Date.now()));
  }

  async markRepositoryImported(source: string, repository: string): Promise<void> {
    await this.write(() =>
      this.db.prepare('INSERT INTO storage_import_repositories (source, repository, imported_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(source, repository, Date.now()),
    );
  }

  async finishStorageImport(source: string): Promise<void> {
    await this.write(() => this.db.prepare('UPDATE storage_imports SET finished_at = ? WHERE source = ? AND finished_at IS NULL').run(Date.now(), source));
  }

  async unfinishedStorageImports(): Promise<string[]> {
    return this.db
      .prepare<[], { source: string }>('SELECT source FROM storage_imports WHERE finished_at IS NULL ORDER BY source')
      .all()
      .map((r) => r.source);
  }

  async listRepositories(page: Page): Promise<string[]> {
    return this.statements.listRepositories.all(page.after ?? '', page.limit).map((row) => row.name);
  }

  async searchRepositories(query: { text: string; offset: number; limit: number; visible?: (repository: string) => boolean }): Promise<{ total: number; repositories: RepositorySummary[] }> {
    const visible = query.visible ?? (() => true);
    const words = searchWords(query.text);
    let rows: Array<{ id: number; name: string; description: string }> = [];
    if (words.length === 0 && query.text.trim() === '') {
      // Every repository by name, read in batches until the cap is reached (the caller may see few).
      let after = '';
      for (;;) {
        const batch = this.profiles.listNames.all({ after, limit: SEARCH_CANDIDATES });
        for (const row of batch) if (rows.length < SEARCH_RESULT_CAP && visible(row.name)) rows.push(row);
        if (batch.length < SEARCH_CANDIDATES || rows.length >= SEARCH_RESULT_CAP) break;
        after = batch[batch.length - 1]!.name;
      }
    } else if (words.length > 0) {
      const terms = ftsQuery(words);
      // Name matches first, ranked; then matches through the description, by name.
      const byName = this.profiles.search.all({ match: `{name} : (${terms})`, limit: SEARCH_CANDIDATES }).filter((row) => visible(row.name));
      rows = rankByName(byName, query.text.trim().toLowerCase(), words);
      if (rows.length < SEARCH_RESULT_CAP) {
        const seen = new Set(rows.map((row) => row.id));
        const byDescription = this.profiles.search.all({ match: terms, limit: SEARCH_CANDIDATES }).filter((row) => !seen.has(row.id) && visible(row.name));
        byDescription.sort((a, b) => compareText(a.name, b.name));
        rows = rows.concat(byDescription);
      }
      rows = rows.slice(0, SEARCH_RESULT_CAP);
    }
    return { total: rows.length, repositories: rows.slice(query.offset, query.offset + query.limit).map((row) => this.summary(row)) };
  }

  private summary(row: { id: number; name: string; description: string }): RepositorySummary {
    return { name: row.name, ...(row.description !== '' ? { description: row.description } : {}), stars: this.profiles.starCount.get(row.id)!.n };
  }

  async repositoryProfile(repository: string): Promise<RepositoryProfile | undefined> {
    const row = this.statements.repositoryRow.get(repository);
    if (!row) return undefined;
    const stored = this.profiles.profile.get(row.id);
    const tags = this.profiles.tagSummary.get(row.id)!;
    const description = this.descriptionOf(stored);
    return {
      name: repository,
      ...(description !== undefined ? { description } : {}),
      stars: this.profiles.starCount.get(row.id)!.n,
      ...(stored?.readme != null ? { readme: stored.readme } : {}),
      ...(stored?.readme_updated_at != null ? { readmeUpdatedAt: stored.readme_updated_at } : {}),
      ...(stored?.readme_updated_by != null ? { readmeUpdatedBy: stored.readme_updated_by } : {}),
      createdAt: row.created_at,
      ...(tags.last !== null ? { lastPushedAt: tags.last } : {}),
      tagCount: tags.n,
      bytes: this.profiles.usage.get(row.id)?.bytes ?? 0,
    };
  }

  async setReadme(repository: string, readme: string | undefined, options: ChangeOptions = {}): Promise<boolean> {
    return this.write(() => {
      const id = this.repositoryId(repository);
      if (id === undefined) return false;
      this.profiles.setReadme.run(id, readme ?? null, Date.now(), options.actor ?? null);
      this.profiles.indexDescription.run(this.descriptionOf(this.profiles.profile.get(id)) ?? '', id);
      return true;
    });
  }

  async setStar(repository: string, user: string, starred: boolean): Promise<boolean | undefined> {
    return this.write(() => {
      const id = this.repositoryId(repository);
      if (id === undefined) return undefined;
      if (starred) this.profiles.addStar.run(id, user, Date.now());
      else this.profiles.removeStar.run(id, user);
      return starred;
    });
  }

  async starredBy(user: string, repositories: readonly string[]): Promise<Set<string>> {
    return new Set(repositories.filter((name) => this.profiles.starred.get(user, name) !== undefined));
  }

  async listTagDetails(repository: string, query: TagDetailQuery): Promise<{ total: number; tags: TagDetail[] } | undefined> {
    const id = this.repositoryId(repository);
    if (id === undefined) return undefined;
    // The sort column comes from a closed set, never from the caller's text.
    const column = { name: 't.name', pushed: 't.updated_at', size: 'm.total_size' }[query.sort];
    const direction = query.descending ? 'DESC' : 'ASC';
    const rows = this.db
      .prepare<[number, number, number], TagDetailRow>(
        `SELECT t.name, t.digest, m.media_type, m.total_size, t.updated_at, m.pulled_at, m.content
           FROM tags t JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
          WHERE t.repository_id = ? ORDER BY ${column} ${direction}, t.name ${direction} LIMIT ? OFFSET ?`,
      )
      .all(id, query.limit, query.offset);
    return {
      total: this.profiles.tagSummary.get(id)!.n,
      tags: rows.map(toTagDetail),
    };
  }

  /** Inside a write: the newest tagged manifest's description, indexed for search. */
  private setImageDescription(id: number, description: string | null): void {
    this.profiles.setImageDescription.run(id, normalizeDescription(description) ?? null);
    this.profiles.indexDescription.run(this.descriptionOf(this.profiles.profile.get(id)) ?? '', id);
  }

  private descriptionOf(stored: { image_description: string | null; readme: string | null } | undefined): string | undefined {
    if (!stored) return undefined;
    return stored.image_description ?? (stored.readme !== null ? readmeSummary(stored.readme) : undefined);
  }

  async repositoryExists(repository: string): Promise<boolean> {
    return this.repositoryId(repository) !== undefined;
  }
}
