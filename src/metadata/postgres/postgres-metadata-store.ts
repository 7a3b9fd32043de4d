import type { Descriptor } from '../../oci/manifest.js';
import { RegistryError } from '../../errors/index.js';
import type {
  BlobRecord,
  BlobReservation,
  BlobState,
  ChangeEvent,
  ChangeOptions,
  DeliveryStatus,
  Inventory,
  JobOutcome,
  JobRecord,
  JobState,
  LeaseClaim,
  ManifestNode,
  ManifestPut,
  ManifestPutResult,
  ManifestRecord,
  MetadataStore,
  NewJob,
  OutboxEntry,
  Page,
  ParkedEvent,
  QuotaStatus,
  QuotaViolation,
  RepositoryGraph,
  RepositoryProfile,
  RepositorySummary,
  RepositoryUsage,
  StorageImport,
  TagDetail,
  TagDetailQuery,
  TagEvent,
  UploadAdvance,
  UploadRecord,
} from '../metadata-store.js';
import { immutableRuleFor, immutableTagDenied, type ImmutableTagPattern, type ImmutableTagRule } from '../immutable-tag-rules.js';
import type { RetentionPolicy, RetentionPolicySpec, RetentionRules } from '../retention-policies.js';
import { firstViolation, quotaExceeded, quotaScope } from '../quota.js';
import { SEARCH_RESULT_CAP, compareText, normalizeDescription, rankByName, readmeSummary, searchWords } from '../repository-profile.js';
import { toBlob, toJob, toRecord, toTagDetail, type BlobRow, type JobRow, type ManifestRow, type TagDetailRow } from '../rows.js';
import { PostgresDatabase, type PostgresOptions, type Transaction } from './postgres-database.js';
import { descriptionLexemes, searchQuery } from './search-document.js';

/** The most candidates one search reads from the index, per pass (names, then descriptions), as SQLite's store. */
const SEARCH_CANDIDATES = 600;

interface SearchRow {
  id: number;
  name: string;
  description: string;
}

/** Runs of a job that may fail before it is given up, unless the job says otherwise. */
const DEFAULT_JOB_ATTEMPTS = 5;

/** A deadlock-free order for locking several rows: always the same, whoever locks. */
const sorted = (values: Iterable<string>) => [...new Set(values)].sort();

interface UploadRow {
  id: string;
  repository: string;
  size: number;
  parts: UploadRecord['parts'];
  hash_state: Buffer | null;
  started_at: number;
  updated_at: number;
}

function toUpload(row: UploadRow): UploadRecord {
  const upload: UploadRecord = { id: row.id, repository: row.repository, size: row.size, parts: row.parts, startedAt: row.started_at, updatedAt: row.updated_at };
  if (row.hash_state !== null) upload.hashState = new Uint8Array(row.hash_state);
  return upload;
}


interface RuleRow {
  id: number;
  repository: string;
  tag: string;
  source: 'config' | 'api';
  created_at: number;
  created_by: string | null;
}

function toRule(row: RuleRow): ImmutableTagRule {
  const rule: ImmutableTagRule = { id: row.id, repository: row.repository, tag: row.tag, source: row.source, createdAt: row.created_at };
  if (row.created_by !== null) rule.createdBy = row.created_by;
  return rule;
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

/** Who made a change and through which request, as the outbox entry carries them. */
function actorOf(options: ChangeOptions): Pick<ChangeEvent, 'actor' | 'request'> {
  return { ...(options.actor !== undefined ? { actor: options.actor } : {}), ...(options.request !== undefined ? { request: options.request } : {}) };
}

const JOB_COLUMNS = 'id, kind, key, payload, state, run_at, attempts, max_attempts, repeat_ms, lease_owner, lease_until, last_error, created_at, updated_at';
const BLOB_COLUMNS = 'digest, size, state, state_since, touched_at';
const MANIFEST_COLUMNS = 'm.digest, m.media_type, m.content, m.subject, m.artifact_type, m.total_size, m.created_at';
const UPLOAD_COLUMNS = 'u.id, r.name AS repository, u.size, u.parts, u.hash_state, u.started_at, u.updated_at';
/** A quota rule covers a repository when it names it, or names a prefix of it ending in '/'. */
/** What a repository says of itself: its newest tagged manifest's description, else its README's first paragraph. */
function describedBy(stored: { image_description: string | null; readme: string | null }): string | undefined {
  return stored.image_description ?? (stored.readme !== null ? readmeSummary(stored.readme) : undefined);
}

/**
 * Sets every described repository's search description and words from its profile (after
 * `wharf db import` copied the profiles: SQLite's FTS5 index itself is not copied).
 */
export async function reindexRepositoryDescriptions(tx: Transaction): Promise<number> {
  const rows = (await tx.query<{ repository_id: number; image_description: string | null; readme: string | null }>('SELECT repository_id, image_description, readme FROM repository_profiles')).rows;
  const described = rows.map((row) => ({ id: row.repository_id, text: describedBy(row) ?? '' })).filter((row) => row.text !== '');
  for (let i = 0; i < described.length; i += 1000) {
    const batch = described.slice(i, i + 1000);
    await tx.query(
      `UPDATE repositories r SET search_description = d.text, search_words = d.words::tsvector
         FROM unnest($1::bigint[], $2::text[], $3::text[]) AS d(id, text, words) WHERE r.id = d.id`,
      [batch.map((row) => row.id), batch.map((row) => row.text), batch.map((row) => descriptionLexemes(row.text))],
    );
  }
  return described.length;
}

const COVERING = "(name = $1 OR (right(name, 1) = '/' AND left($1, length(name)) = name))";

export interface PostgresStoreOptions extends PostgresOptions {
  /** Told the seconds each transaction took (BEGIN to COMMIT) and how many writes it carried (one). */
  onCommit?: (seconds: number, writes: number) => void;
}

/**
 * The metadata store for many replicas: PostgreSQL, through a pool per process. Every write is
 * one READ COMMITTED transaction that takes row locks on what it decides about before it reads
 * it (`FOR UPDATE`), always in the same order (repository, then blobs by digest), so that two
 * replicas acting at once serialise where they conflict and nowhere else:
 * - tag and manifest writes lock their repository's row (`FOR NO KEY UPDATE`, which leaves blob
 *   links and uploads into it free to go on);
 * - blob state changes lock the blob's row, so a collector marking or sweeping a blob and a push
 *   reviving it take turns;
 * - quota checks lock the covering rules' rows before summing usage;
 * - jobs are claimed with `FOR UPDATE SKIP LOCKED`; uploads advance with a compare-and-set.
 * Outbox entries are appended at the end of the transaction that makes the change (see
 * Transaction.record). The store keeps no cache of its own: every read goes to the database, so
 * nothing needs invalidating across replicas.
 */
export class PostgresMetadataStore implements MetadataStore {
  readonly name = 'postgres';
  readonly db: PostgresDatabase;

  constructor(options: PostgresStoreOptions, database?: PostgresDatabase) {
    this.db = database ?? new PostgresDatabase(options, options.onCommit ? { onCommit: options.onCommit } : {});
  }

  /** Settles once the schema is migrated; rejects when the database cannot be reached. */
  get ready(): Promise<void> {
    return this.db.ready;
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  // --- helpers ------------------------------------------------------------------------------

  private async repositoryId(q: Pick<Transaction, 'one'>, name: string): Promise<number | undefined> {
    return (await q.one<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [name]))?.id;
  }

  private async ensureRepository(tx: Transaction, name: string): Promise<number> {
    const inserted = await tx.one<{ id: number }>('INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id', [name, Date.now()]);
    if (inserted) return inserted.id;
    const existing = await this.repositoryId(tx, name);
    if (existing === undefined) throw Object.assign(new Error(`repository ${name} vanished while being written`), { code: '40001' });
    return existing;
  }

  /**
   * The repository's id with its row locked for tag and manifest writes (creating it when asked):
   * two replicas moving tags of one repository take turns, so each sees where the tag points now.
   */
  private async lockRepository(tx: Transaction, name: string, options: { create: boolean }): Promise<number | undefined> {
    if (options.create) await this.ensureRepository(tx, name);
    const id = (await tx.one<{ id: number }>('SELECT id FROM repositories WHERE name = $1 FOR NO KEY UPDATE', [name]))?.id;
    // A collector removed the (empty) repository between the two statements: run again, creating it afresh.
    if (id === undefined && options.create) throw Object.assign(new Error(`repository ${name} vanished while being written`), { code: '40001' });
    return id;
  }

  private async lockBlob(tx: Transaction, digest: string): Promise<BlobRow | undefined> {
    return tx.one<BlobRow>(`SELECT ${BLOB_COLUMNS} FROM blobs WHERE digest = $1 FOR UPDATE`, [digest]);
  }

  private async isLinked(q: Pick<Transaction, 'one'>, repositoryId: number, digest: string): Promise<boolean> {
    return (await q.one('SELECT 1 FROM repository_blobs WHERE repository_id = $1 AND digest = $2', [repositoryId, digest])) !== undefined;
  }

  private async hasManifest(q: Pick<Transaction, 'one'>, repositoryId: number, digest: string): Promise<boolean> {
    return (await q.one('SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2', [repositoryId, digest])) !== undefined;
  }

  private record(tx: Transaction, event: ChangeEvent, at: number): void {
    tx.record(at, event.action, event.repository ?? null, JSON.stringify(event));
  }

  /** Links a blob into a repository, or refreshes the link's time; true when the link is new. */
  private async link(tx: Transaction, repositoryId: number, digest: string, now: number): Promise<boolean> {
    const inserted = await tx.query(
      'INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      [repositoryId, digest, now],
    );
    if (inserted.rowCount! > 0) return true;
    await tx.query('UPDATE repository_blobs SET created_at = greatest(created_at, $1) WHERE repository_id = $2 AND digest = $3', [now, repositoryId, digest]);
    return false;
  }

  private async setBlobState(tx: Transaction, digest: string, state: BlobState, now: number): Promise<void> {
    await tx.query('UPDATE blobs SET state = $1, state_since = $2 WHERE digest = $3', [state, now, digest]);
  }

  private async touchBlob(tx: Transaction, digest: string, now: number): Promise<void> {
    await tx.query('UPDATE blobs SET touched_at = greatest(touched_at, $1) WHERE digest = $2', [now, digest]);
  }

  /** Bytes used under a quota name: one repository, or the sum over a namespace. */
  private async usageOf(q: Pick<Transaction, 'one'>, name: string): Promise<number> {
    if (quotaScope(name) === 'namespace') {
      return (await q.one<{ bytes: number }>('SELECT coalesce(sum(bytes), 0) AS bytes FROM repository_usage WHERE left(name, length($1)) = $1', [name]))!.bytes;
    }
    return (await q.one<{ bytes: number }>('SELECT bytes FROM repository_usage WHERE name = $1', [name]))?.bytes ?? 0;
  }

  /** The quota `adds` bytes would exceed; with `lock`, the covering rules stay locked until commit, so a racing write waits and then counts this one's bytes. */
  private async quotaViolation(q: Pick<Transaction, 'query' | 'one'>, repository: string, adds: number, options: { lock: boolean }): Promise<QuotaViolation | undefined> {
    if (adds <= 0) return undefined;
    const rows = (
      await q.query<{ name: string; limit_bytes: number }>(
        `SELECT name, limit_bytes FROM quotas WHERE ${COVERING} ORDER BY name, source${options.lock ? ' FOR UPDATE' : ''}`,
        [repository],
      )
    ).rows;
    if (rows.length === 0) return undefined;
    const limits = new Map<string, number>();
    for (const row of rows) limits.set(row.name, Math.min(limits.get(row.name) ?? Infinity, row.limit_bytes));
    const rules: Array<{ name: string; limit: number; usage: number }> = [];
    for (const [name, limit] of limits) rules.push({ name, limit, usage: await this.usageOf(q, name) });
    return firstViolation(rules, adds);
  }

  private async enforceQuota(tx: Transaction, repository: string, adds: number): Promise<void> {
    const violation = await this.quotaViolation(tx, repository, adds, { lock: true });
    if (violation) throw quotaExceeded(violation);
  }

  private async immutableRules(q: Pick<Transaction, 'query'>): Promise<ImmutableTagRule[]> {
    return (await q.query<RuleRow>('SELECT id, repository, tag, source, created_at, created_by FROM immutable_tag_rules ORDER BY id')).rows.map(toRule);
  }

  /** Throws DENIED when a rule makes one of `tags` immutable; runs inside the write's transaction. */
  private async refuseImmutable(tx: Transaction, repository: string, tags: readonly string[], change: 'move' | 'delete'): Promise<void> {
    if (tags.length === 0) return;
    const rules = await this.immutableRules(tx);
    for (const tag of tags) {
      const rule = immutableRuleFor(rules, repository, tag);
      if (rule) throw immutableTagDenied(rule, repository, tag, change);
    }
  }

  private async insertTagEvent(tx: Transaction, repositoryId: number, tag: string, digest: string, action: 'push' | 'delete', actor: string | undefined, at: number, previous: string | undefined): Promise<void> {
    await tx.query('INSERT INTO tag_history (repository_id, tag, digest, action, actor, at, previous) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      repositoryId,
      tag,
      digest,
      action,
      actor ?? null,
      at,
      previous ?? null,
    ]);
  }

  // --- blobs -----------------------------------------------------------------------------------

  async blobSize(digest: string): Promise<number | undefined> {
    return (await this.db.one<{ size: number }>("SELECT size FROM blobs WHERE digest = $1 AND state = 'present'", [digest]))?.size;
  }

  async getBlob(digest: string): Promise<BlobRecord | undefined> {
    const row = await this.db.one<BlobRow>(`SELECT ${BLOB_COLUMNS} FROM blobs WHERE digest = $1`, [digest]);
    return row ? toBlob(row) : undefined;
  }

  async listBlobs(page: Page): Promise<BlobRecord[]> {
    return (await this.db.query<BlobRow>(`SELECT ${BLOB_COLUMNS} FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2`, [page.after ?? '', page.limit])).rows.map(toBlob);
  }

  async repositoryBlobSize(repository: string, digest: string): Promise<number | undefined> {
    const row = await this.db.one<{ size: number }>(
      `SELECT b.size FROM repositories r
         JOIN repository_blobs rb ON rb.repository_id = r.id
         JOIN blobs b ON b.digest = rb.digest
       WHERE r.name = $1 AND rb.digest = $2 AND b.state = 'present'`,
      [repository, digest],
    );
    return row?.size;
  }

  async addBlob(repository: string, digest: string, size: number, options: ChangeOptions = {}): Promise<void> {
    await this.db.transaction(async (tx) => {
      const now = Date.now();
      const id = await this.ensureRepository(tx, repository);
      const { row } = await this.insertOrLockBlob(tx, digest, size, 'present', now);
      await this.enforceQuota(tx, repository, (await this.isLinked(tx, id, digest)) ? 0 : size);
      if (row.state !== 'present') await this.setBlobState(tx, digest, 'present', now);
      await this.touchBlob(tx, digest, now);
      if (await this.link(tx, id, digest, now)) this.record(tx, { action: 'blob.push', repository, digest, size, ...actorOf(options) }, now);
    });
  }

  /**
   * The blob's row, locked: inserted in `state` when there was none. A row a collector deletes
   * while this waits for its lock is inserted afresh.
   */
  private async insertOrLockBlob(tx: Transaction, digest: string, size: number, state: BlobState, now: number): Promise<{ row: BlobRow; inserted: boolean }> {
    for (;;) {
      const inserted = await tx.one<BlobRow>(
        `INSERT INTO blobs (digest, size, created_at, state, state_since, touched_at) VALUES ($1, $2, $3, $4, $3, $3)
         ON CONFLICT (digest) DO NOTHING RETURNING ${BLOB_COLUMNS}`,
        [digest, size, now, state],
      );
      if (inserted) return { row: inserted, inserted: true };
      const row = await this.lockBlob(tx, digest);
      if (row) return { row, inserted: false };
    }
  }

  async linkBlob(repository: string, digest: string, options: ChangeOptions & { from?: string } = {}): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const row = await this.lockBlob(tx, digest);
      if (!row || (row.state !== 'present' && row.state !== 'deleting')) return false;
      const existing = await this.repositoryId(tx, repository);
      await this.enforceQuota(tx, repository, existing !== undefined && (await this.isLinked(tx, existing, digest)) ? 0 : row.size);
      const now = Date.now();
      if (row.state === 'deleting') await this.setBlobState(tx, digest, 'present', now);
      await this.touchBlob(tx, digest, now);
      const id = await this.ensureRepository(tx, repository);
      if (await this.link(tx, id, digest, now)) {
        this.record(tx, { action: 'blob.mount', repository, digest, size: row.size, ...(options.from !== undefined ? { from: options.from } : {}), ...actorOf(options) }, now);
      }
      return true;
    });
  }

  async reserveBlob(digest: string, size: number): Promise<BlobReservation> {
    return this.db.transaction(async (tx): Promise<BlobReservation> => {
      const now = Date.now();
      const { row, inserted } = await this.insertOrLockBlob(tx, digest, size, 'pending', now);
      if (inserted) return 'place';
      // A commit on its way: a collector must leave the bytes until it has linked them.
      await this.touchBlob(tx, digest, now);
      switch (row.state) {
        case 'present':
          return 'present';
        case 'deleting':
          // Its bytes are still there: a new link brings it back.
          await this.setBlobState(tx, digest, 'present', now);
          return 'present';
        case 'sweeping':
          return 'busy';
        default:
          // pending (another commit, or one that died) or quarantined: put verified bytes in place.
          await this.setBlobState(tx, digest, 'pending', now);
          return 'place';
      }
    });
  }

  async quarantineBlob(digest: string): Promise<boolean> {
    const result = await this.db.query("UPDATE blobs SET state = 'quarantined', state_since = $1 WHERE digest = $2 AND state = 'present'", [Date.now(), digest]);
    return result.rowCount! > 0;
  }

  async unlinkBlob(repository: string, digest: string, options: ChangeOptions = {}): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const id = await this.repositoryId(tx, repository);
      if (id === undefined) return false;
      const deleted = await tx.query('DELETE FROM repository_blobs WHERE repository_id = $1 AND digest = $2', [id, digest]);
      if (deleted.rowCount === 0) return false;
      this.record(tx, { action: 'blob.delete', repository, digest, ...actorOf(options) }, Date.now());
      return true;
    });
  }

  async repositoriesLinkingBlob(digest: string, limit: number): Promise<string[]> {
    const rows = await this.db.query<{ name: string }>(
      'SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id WHERE rb.digest = $1 ORDER BY r.name LIMIT $2',
      [digest, limit],
    );
    return rows.rows.map((row) => row.name);
  }

  async missingBlobs(repository: string, digests: string[]): Promise<string[]> {
    if (digests.length === 0) return [];
    const rows = await this.db.query<{ digest: string }>(
      `SELECT rb.digest FROM repositories r
         JOIN repository_blobs rb ON rb.repository_id = r.id
         JOIN blobs b ON b.digest = rb.digest
       WHERE r.name = $1 AND rb.digest = ANY($2::text[]) AND b.state = 'present'`,
      [repository, digests],
    );
    const linked = new Set(rows.rows.map((row) => row.digest));
    return digests.filter((digest) => !linked.has(digest));
  }

  // --- uploads ---------------------------------------------------------------------------------

  async createUpload(upload: { id: string; repository: string; startedAt: number }): Promise<void> {
    await this.db.transaction(async (tx) => {
      const id = await this.ensureRepository(tx, upload.repository);
      await tx.query('INSERT INTO uploads (id, repository_id, size, started_at, updated_at) VALUES ($1, $2, 0, $3, $3)', [upload.id, id, upload.startedAt]);
    });
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    const row = await this.db.one<UploadRow>(`SELECT ${UPLOAD_COLUMNS} FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.id = $1`, [id]);
    return row ? toUpload(row) : undefined;
  }

  async advanceUpload(id: string, advance: UploadAdvance): Promise<boolean> {
    const { from, part, hashState } = advance;
    const state = hashState === undefined ? null : Buffer.from(hashState.buffer, hashState.byteOffset, hashState.byteLength);
    // One statement: the row lock makes a racing request wait, then see the new size and match nothing.
    if (advance.extendsLast) {
      const extended = await this.db.query(
        `UPDATE uploads SET size = size + $1 - (parts->-1->>'size')::bigint,
           parts = jsonb_set(parts, ARRAY[(jsonb_array_length(parts) - 1)::text], jsonb_build_object('name', $2::text, 'size', $1::bigint)),
           hash_state = $3, updated_at = $4
         WHERE id = $5 AND size = $6 AND parts->-1->>'name' = $2::text`,
        [part.size, part.name, state, Date.now(), id, from],
      );
      return extended.rowCount! > 0;
    }
    const result = await this.db.query(
      `UPDATE uploads SET size = size + $1, parts = parts || jsonb_build_array(jsonb_build_object('name', $2::text, 'size', $1::bigint)),
         hash_state = $3, updated_at = $4
       WHERE id = $5 AND size = $6`,
      [part.size, part.name, state, Date.now(), id, from],
    );
    return result.rowCount! > 0;
  }

  async completeUpload(id: string, size: number, digest: string, options: ChangeOptions = {}): Promise<'done' | 'gone' | 'retry'> {
    return this.db.transaction(async (tx) => {
      const upload = await tx.one<{ repository_id: number; size: number; repository: string }>(
        'SELECT u.repository_id, u.size, r.name AS repository FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.id = $1 FOR UPDATE OF u',
        [id],
      );
      if (!upload || upload.size !== size) return 'gone';
      const blob = await this.lockBlob(tx, digest);
      if (!blob || blob.state === 'sweeping' || blob.state === 'quarantined') return 'retry';
      await this.enforceQuota(tx, upload.repository, (await this.isLinked(tx, upload.repository_id, digest)) ? 0 : blob.size);
      const now = Date.now();
      if (blob.state !== 'present') await this.setBlobState(tx, digest, 'present', now);
      await this.touchBlob(tx, digest, now);
      await this.link(tx, upload.repository_id, digest, now);
      await tx.query('DELETE FROM uploads WHERE id = $1', [id]);
      this.record(tx, { action: 'blob.push', repository: upload.repository, digest, size, ...actorOf(options) }, now);
      return 'done';
    });
  }

  async deleteUpload(id: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM uploads WHERE id = $1', [id])).rowCount! > 0;
  }

  async staleUploads(before: number, limit: number): Promise<UploadRecord[]> {
    const rows = await this.db.query<UploadRow>(
      `SELECT ${UPLOAD_COLUMNS} FROM uploads u JOIN repositories r ON r.id = u.repository_id WHERE u.updated_at < $1 ORDER BY u.updated_at LIMIT $2`,
      [before, limit],
    );
    return rows.rows.map(toUpload);
  }

  // --- manifests and tags ------------------------------------------------------------------------

  async getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined> {
    const row = await this.db.one<ManifestRow>(
      `SELECT ${MANIFEST_COLUMNS} FROM repositories r JOIN manifests m ON m.repository_id = r.id WHERE r.name = $1 AND m.digest = $2`,
      [repository, digest],
    );
    return row ? toRecord(row) : undefined;
  }

  async getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | undefined> {
    const row = await this.db.one<ManifestRow>(
      `SELECT ${MANIFEST_COLUMNS} FROM repositories r
         JOIN tags t ON t.repository_id = r.id
         JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
       WHERE r.name = $1 AND t.name = $2`,
      [repository, tag],
    );
    return row ? toRecord(row) : undefined;
  }

  async missingManifests(repository: string, digests: string[]): Promise<string[]> {
    if (digests.length === 0) return [];
    const rows = await this.db.query<{ digest: string }>(
      'SELECT m.digest FROM repositories r JOIN manifests m ON m.repository_id = r.id WHERE r.name = $1 AND m.digest = ANY($2::text[])',
      [repository, digests],
    );
    const present = new Set(rows.rows.map((row) => row.digest));
    return digests.filter((digest) => !present.has(digest));
  }

  async putManifest(put: ManifestPut): Promise<ManifestPutResult> {
    return this.db.transaction(async (tx): Promise<ManifestPutResult> => {
      const now = Date.now();
      const id = (await this.lockRepository(tx, put.repository, { create: true }))!;
      // The checks and the write are one transaction, with the referenced blobs' rows locked (in
      // digest order): a collector marking or sweeping one waits for this commit, or this push
      // waits for its and then sees the state it left.
      const blobDigests = sorted(put.blobs.map((blob) => blob.digest));
      const linked = new Map(
        (
          await tx.query<{ digest: string; size: number; state: BlobState }>(
            `SELECT b.digest, b.size, b.state FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
             WHERE rb.repository_id = $1 AND rb.digest = ANY($2::text[]) ORDER BY b.digest FOR UPDATE OF b`,
            [id, blobDigests],
          )
        ).rows.map((row) => [row.digest, row]),
      );
      let totalSize = put.content.length;
      for (const blob of put.blobs) {
        const found = linked.get(blob.digest);
        if (found?.state === 'sweeping') {
          throw new RegistryError('UNAVAILABLE', { message: 'a blob the manifest references is being garbage-collected; push it again', detail: { digest: blob.digest, state: 'sweeping' } });
        }
        if (found === undefined || (found.state !== 'present' && found.state !== 'deleting')) {
          throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'manifest references a blob unknown to this repository', detail: { digest: blob.digest } });
        }
        if (found.state === 'deleting') {
          await this.setBlobState(tx, blob.digest, 'present', now);
          found.state = 'present';
        }
        if (found.size !== blob.size) {
          throw new RegistryError('MANIFEST_INVALID', { message: `descriptor size ${blob.size} does not match blob ${blob.digest} (${found.size} bytes)`, detail: { digest: blob.digest } });
        }
        totalSize += found.size;
      }
      if (put.children.length > 0) {
        const present = new Set(
          (await tx.query<{ digest: string }>('SELECT digest FROM manifests WHERE repository_id = $1 AND digest = ANY($2::text[])', [id, put.children.map((c) => c.digest)])).rows.map(
            (row) => row.digest,
          ),
        );
        for (const child of put.children) {
          if (!present.has(child.digest)) {
            throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'index references a manifest unknown to this repository', detail: { digest: child.digest } });
          }
          totalSize += child.size;
        }
      }
      const current = new Map(
        (await tx.query<{ name: string; digest: string }>('SELECT name, digest FROM tags WHERE repository_id = $1 AND name = ANY($2::text[])', [id, put.tags])).rows.map((row) => [
          row.name,
          row.digest,
        ]),
      );
      const previousOf = new Map(put.tags.map((tag) => [tag, current.get(tag)]));
      await this.refuseImmutable(tx, put.repository, [...previousOf].filter(([, previous]) => previous !== undefined && previous !== put.digest).map(([tag]) => tag), 'move');
      const held = (await tx.one<{ existed: boolean; any: boolean }>(
        'SELECT EXISTS (SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2) AS existed, EXISTS (SELECT 1 FROM manifests WHERE repository_id = $1) AS any',
        [id, put.digest],
      ))!;
      // Last of the checks: a reference error tells the client more than a quota would.
      await this.enforceQuota(tx, put.repository, held.existed ? 0 : put.content.length);
      const firstManifest = !held.any;
      const inserted = await tx.query(
        `INSERT INTO manifests (repository_id, digest, media_type, content, size, total_size, subject, artifact_type, annotations, created_at, touched_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) ON CONFLICT DO NOTHING`,
        [id, put.digest, put.mediaType, put.content, put.content.length, totalSize, put.subject ?? null, put.artifactType ?? null, put.annotations ? JSON.stringify(put.annotations) : null, now],
      );
      if (inserted.rowCount! > 0) {
        const refs = [...put.blobs.map((b) => [b.digest, 'blob'] as const), ...put.children.map((c) => [c.digest, 'manifest'] as const)];
        if (refs.length > 0) {
          await tx.query(
            `INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, kind)
             SELECT $1, $2, child, kind FROM unnest($3::text[], $4::text[]) AS r(child, kind) ON CONFLICT DO NOTHING`,
            [id, put.digest, refs.map((r) => r[0]), refs.map((r) => r[1])],
          );
        }
      } else {
        // Pushed again (say, a child before its index): a collector must not take it meanwhile.
        await tx.query('UPDATE manifests SET touched_at = greatest(touched_at, $1) WHERE repository_id = $2 AND digest = $3', [now, id, put.digest]);
      }
      const actor = actorOf(put);
      if (firstManifest) this.record(tx, { action: 'repository.create', repository: put.repository, ...actor }, now);
      this.record(
        tx,
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
      // Every tag that moves, in two statements whatever their number: the tags, then their history in order.
      const moving = [...new Set(put.tags)].filter((tag) => previousOf.get(tag) !== put.digest);
      if (moving.length > 0) {
        await tx.query(
          `INSERT INTO tags (repository_id, name, digest, updated_at) SELECT $1, name, $2, $3 FROM unnest($4::text[]) AS t(name)
           ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
          [id, put.digest, now, moving],
        );
        await tx.query(
          `INSERT INTO tag_history (repository_id, tag, digest, action, actor, at, previous)
           SELECT $1, tag, $2, 'push', $3, $4, previous FROM unnest($5::text[], $6::text[]) WITH ORDINALITY AS h(tag, previous, n) ORDER BY n`,
          [id, put.digest, put.actor ?? null, now, moving, moving.map((tag) => previousOf.get(tag) ?? null)],
        );
      }
      if (put.tags.length > 0 && put.description !== undefined) await this.setImageDescription(tx, id, put.description);
      const moved: ManifestPutResult['moved'] = [];
      for (const tag of moving) {
        const previous = previousOf.get(tag);
        moved.push(previous === undefined ? { tag } : { tag, previous });
        this.record(tx, { action: 'tag.move', repository: put.repository, tag, digest: put.digest, ...(previous !== undefined ? { previous } : {}), ...actor }, now);
      }
      return { totalSize, moved };
    });
  }

  async deleteManifest(repository: string, digest: string, options: ChangeOptions = {}): Promise<string[] | undefined> {
    return this.db.transaction(async (tx) => {
      const id = await this.lockRepository(tx, repository, { create: false });
      if (id === undefined || !(await this.hasManifest(tx, id, digest))) return undefined;
      const now = Date.now();
      const tags = (await tx.query<{ name: string }>('SELECT name FROM tags WHERE repository_id = $1 AND digest = $2 ORDER BY name', [id, digest])).rows.map((row) => row.name);
      await this.refuseImmutable(tx, repository, tags, 'delete');
      for (const tag of tags) {
        await tx.query('DELETE FROM tags WHERE repository_id = $1 AND name = $2', [id, tag]);
        await this.insertTagEvent(tx, id, tag, digest, 'delete', options.actor, now, digest);
      }
      await tx.query('DELETE FROM manifests WHERE repository_id = $1 AND digest = $2', [id, digest]);
      this.record(tx, { action: 'manifest.delete', repository, digest, tags, ...actorOf(options) }, now);
      return tags;
    });
  }

  async deleteTag(repository: string, tag: string, options: ChangeOptions = {}): Promise<string | undefined> {
    return this.db.transaction(async (tx) => {
      const id = await this.lockRepository(tx, repository, { create: false });
      if (id === undefined) return undefined;
      const current = await tx.one<{ digest: string }>('SELECT digest FROM tags WHERE repository_id = $1 AND name = $2', [id, tag]);
      if (!current) return undefined;
      await this.refuseImmutable(tx, repository, [tag], 'delete');
      const now = Date.now();
      await tx.query('DELETE FROM tags WHERE repository_id = $1 AND name = $2', [id, tag]);
      await this.insertTagEvent(tx, id, tag, current.digest, 'delete', options.actor, now, current.digest);
      this.record(tx, { action: 'tag.delete', repository, tag, digest: current.digest, ...actorOf(options) }, now);
      return current.digest;
    });
  }

  async moveTag(repository: string, tag: string, digest: string, options: ChangeOptions = {}): Promise<{ previous?: string; moved: boolean }> {
    return this.db.transaction(async (tx) => {
      const id = await this.lockRepository(tx, repository, { create: false });
      if (id === undefined || !(await this.hasManifest(tx, id, digest))) {
        throw new RegistryError('MANIFEST_UNKNOWN', { message: `manifest ${digest} is not in ${repository} any more`, detail: { reference: digest } });
      }
      const previous = (await tx.one<{ digest: string }>('SELECT digest FROM tags WHERE repository_id = $1 AND name = $2', [id, tag]))?.digest;
      if (previous === digest) return { previous, moved: false };
      if (previous !== undefined) await this.refuseImmutable(tx, repository, [tag], 'move');
      const now = Date.now();
      await tx.query(
        `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
        [id, tag, digest, now],
      );
      // A restore keeps what it restored from collection like any push does.
      await tx.query('UPDATE manifests SET touched_at = greatest(touched_at, $1) WHERE repository_id = $2 AND digest = $3', [now, id, digest]);
      await this.insertTagEvent(tx, id, tag, digest, 'push', options.actor, now, previous);
      this.record(tx, { action: 'tag.move', repository, tag, digest, ...(previous !== undefined ? { previous } : {}), restore: true, ...actorOf(options) }, now);
      return previous !== undefined ? { previous, moved: true } : { moved: true };
    });
  }

  async listTags(repository: string, page: Page): Promise<string[] | undefined> {
    const id = await this.repositoryId(this.db, repository);
    if (id === undefined) return undefined;
    return (await this.db.query<{ name: string }>('SELECT name FROM tags WHERE repository_id = $1 AND name > $2 ORDER BY name LIMIT $3', [id, page.after ?? '', page.limit])).rows.map(
      (row) => row.name,
    );
  }

  async tagHistory(repository: string, tag: string, limit: number): Promise<TagEvent[]> {
    const rows = await this.db.query<{ tag: string; digest: string | null; previous: string | null; action: 'push' | 'delete'; actor: string | null; at: number }>(
      `SELECT h.tag, h.digest, h.previous, h.action, h.actor, h.at FROM tag_history h JOIN repositories r ON r.id = h.repository_id
       WHERE r.name = $1 AND h.tag = $2 ORDER BY h.id DESC LIMIT $3`,
      [repository, tag, limit],
    );
    return rows.rows.map((row) => {
      const event: TagEvent = { tag: row.tag, digest: row.digest ?? undefined, action: row.action, at: row.at };
      if (row.previous !== null) event.previous = row.previous;
      if (row.actor !== null) event.actor = row.actor;
      return event;
    });
  }

  // --- immutable tags --------------------------------------------------------------------------

  async listImmutableTagRules(): Promise<ImmutableTagRule[]> {
    return this.immutableRules(this.db);
  }

  async addImmutableTagRule(pattern: ImmutableTagPattern, options: ChangeOptions = {}): Promise<ImmutableTagRule> {
    return this.db.transaction(async (tx) => {
      await tx.query(
        "INSERT INTO immutable_tag_rules (repository, tag, source, created_at, created_by) VALUES ($1, $2, 'api', $3, $4) ON CONFLICT (source, repository, tag) DO NOTHING",
        [pattern.repository, pattern.tag, Date.now(), options.actor ?? null],
      );
      const row = await tx.one<RuleRow>(
        "SELECT id, repository, tag, source, created_at, created_by FROM immutable_tag_rules WHERE source = 'api' AND repository = $1 AND tag = $2",
        [pattern.repository, pattern.tag],
      );
      return toRule(row!);
    });
  }

  async removeImmutableTagRule(id: number): Promise<boolean> {
    return (await this.db.query("DELETE FROM immutable_tag_rules WHERE id = $1 AND source = 'api'", [id])).rowCount! > 0;
  }

  async replaceConfigImmutableTagRules(patterns: readonly ImmutableTagPattern[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      // Every serving process of every replica does this at start: one at a time.
      await tx.query("LOCK TABLE immutable_tag_rules IN SHARE ROW EXCLUSIVE MODE");
      const wanted = new Set(patterns.map((p) => JSON.stringify([p.repository, p.tag])));
      const current = (await this.immutableRules(tx)).filter((rule) => rule.source === 'config');
      // Leave the ids alone when nothing changed.
      if (current.length === wanted.size && current.every((rule) => wanted.has(JSON.stringify([rule.repository, rule.tag])))) return;
      await tx.query("DELETE FROM immutable_tag_rules WHERE source = 'config'");
      const now = Date.now();
      for (const key of wanted) {
        const [repository, tag] = JSON.parse(key) as [string, string];
        await tx.query("INSERT INTO immutable_tag_rules (repository, tag, source, created_at) VALUES ($1, $2, 'config', $3)", [repository, tag, now]);
      }
    });
  }

  async listReferrers(repository: string, digest: string, options: { artifactType?: string }): Promise<Descriptor[]> {
    const rows = await this.db.query<{ digest: string; media_type: string; size: number; artifact_type: string | null; annotations: string | null }>(
      `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations FROM repositories r JOIN manifests m ON m.repository_id = r.id
       WHERE r.name = $1 AND m.subject = $2 ORDER BY m.created_at, m.digest`,
      [repository, digest],
    );
    const out: Descriptor[] = [];
    for (const row of rows.rows) {
      if (options.artifactType !== undefined && row.artifact_type !== options.artifactType) continue;
      const descriptor: Descriptor = { mediaType: row.media_type, digest: row.digest, size: row.size };
      if (row.artifact_type !== null) descriptor.artifactType = row.artifact_type;
      if (row.annotations !== null) descriptor.annotations = JSON.parse(row.annotations) as Record<string, string>;
      out.push(descriptor);
    }
    return out;
  }

  async manifestParents(repository: string, digest: string): Promise<string[]> {
    const rows = await this.db.query<{ manifest_digest: string }>(
      `SELECT mr.manifest_digest FROM repositories r JOIN manifest_references mr ON mr.repository_id = r.id
       WHERE r.name = $1 AND mr.child_digest = $2 AND mr.kind = 'manifest' ORDER BY mr.manifest_digest`,
      [repository, digest],
    );
    return rows.rows.map((row) => row.manifest_digest);
  }

  // --- outbox ----------------------------------------------------------------------------------

  async readOutbox(after: number, limit: number): Promise<OutboxEntry[]> {
    const rows = await this.db.query<{ id: number; at: number; event: string }>('SELECT id, at, event FROM outbox WHERE id > $1 ORDER BY id LIMIT $2', [after, limit]);
    return rows.rows.map((row) => ({ id: row.id, at: row.at, event: JSON.parse(row.event) as ChangeEvent }));
  }

  async consumerPosition(consumer: string): Promise<number> {
    return (await this.db.one<{ position: number }>('SELECT position FROM outbox_consumers WHERE name = $1', [consumer]))?.position ?? 0;
  }

  async advanceConsumer(consumer: string, from: number, to: number): Promise<boolean> {
    const now = Date.now();
    const moved = await this.db.query('UPDATE outbox_consumers SET position = $1, updated_at = $2 WHERE name = $3 AND position = $4', [to, now, consumer, from]);
    if (moved.rowCount! > 0) return true;
    if (from !== 0) return false;
    const created = await this.db.query('INSERT INTO outbox_consumers (name, position, updated_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING', [consumer, to, now]);
    return created.rowCount! > 0;
  }

  async pruneOutbox(upTo: number): Promise<number> {
    const result = await this.db.query(
      'DELETE FROM outbox WHERE id <= least($1::bigint, coalesce((SELECT min(position) FROM outbox_consumers), $1::bigint))',
      [upTo],
    );
    return result.rowCount!;
  }

  async appendOutbox(entries: ReadonlyArray<{ at: number; event: ChangeEvent }>): Promise<void> {
    if (entries.length === 0) return;
    await this.db.transaction(
      async (tx) => {
        for (const { at, event } of entries) this.record(tx, event, at);
      },
      { lazy: true },
    );
  }

  async ensureConsumer(consumer: string): Promise<number> {
    const existing = await this.db.one<{ position: number }>('SELECT position FROM outbox_consumers WHERE name = $1', [consumer]);
    if (existing) return existing.position;
    await this.db.query(
      'INSERT INTO outbox_consumers (name, position, updated_at) SELECT $1, coalesce(max(id), 0), $2 FROM outbox ON CONFLICT (name) DO NOTHING',
      [consumer, Date.now()],
    );
    return this.consumerPosition(consumer);
  }

  async countOutbox(after: number): Promise<number> {
    return (await this.db.one<{ n: number }>('SELECT count(*) AS n FROM outbox WHERE id > $1', [after]))!.n;
  }

  // --- notification deliveries -------------------------------------------------------------------

  async getDeliveryStatus(endpoint: string): Promise<DeliveryStatus | undefined> {
    const row = await this.db.one<{ attempts: number; next_attempt_at: number; last_error: string | null }>(
      'SELECT attempts, next_attempt_at, last_error FROM notification_status WHERE endpoint = $1',
      [endpoint],
    );
    if (!row) return undefined;
    return { attempts: row.attempts, nextAttemptAt: row.next_attempt_at, ...(row.last_error !== null ? { lastError: row.last_error } : {}) };
  }

  async setDeliveryStatus(endpoint: string, status: DeliveryStatus | undefined): Promise<void> {
    if (status === undefined) {
      await this.db.query('DELETE FROM notification_status WHERE endpoint = $1', [endpoint]);
      return;
    }
    await this.db.query(
      `INSERT INTO notification_status (endpoint, attempts, next_attempt_at, last_error, updated_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (endpoint) DO UPDATE SET attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
         last_error = excluded.last_error, updated_at = excluded.updated_at`,
      [endpoint, status.attempts, status.nextAttemptAt, status.lastError ?? null, Date.now()],
    );
  }

  async parkEvent(endpoint: string, consumer: string, from: number, entry: OutboxEntry, failure: { attempts: number; lastError?: string }): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const now = Date.now();
      const moved = await tx.query('UPDATE outbox_consumers SET position = $1, updated_at = $2 WHERE name = $3 AND position = $4', [entry.id, now, consumer, from]);
      if (moved.rowCount === 0) return false;
      await tx.query('INSERT INTO notification_parked (endpoint, outbox_id, at, event, attempts, last_error, parked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
        endpoint,
        entry.id,
        entry.at,
        JSON.stringify(entry.event),
        failure.attempts,
        failure.lastError ?? null,
        now,
      ]);
      await tx.query('DELETE FROM notification_status WHERE endpoint = $1', [endpoint]);
      return true;
    });
  }

  async listParkedEvents(options: { endpoint?: string; limit: number }): Promise<ParkedEvent[]> {
    const rows = await this.db.query<ParkedRow>(
      `SELECT id, endpoint, outbox_id, at, event, attempts, last_error, parked_at FROM notification_parked
       WHERE $1::text IS NULL OR endpoint = $1 ORDER BY id LIMIT $2`,
      [options.endpoint ?? null, options.limit],
    );
    return rows.rows.map(toParked);
  }

  async replayParkedEvents(endpoint: string, options: { ids?: readonly number[] }): Promise<number> {
    return this.db.transaction(async (tx) => {
      const wanted = options.ids ? new Set(options.ids) : undefined;
      const now = Date.now();
      // Locked, so that two operators replaying at once put each entry back once.
      const rows = (
        await tx.query<ParkedRow>(
          'SELECT id, endpoint, outbox_id, at, event, attempts, last_error, parked_at FROM notification_parked WHERE endpoint = $1 ORDER BY id FOR UPDATE',
          [endpoint],
        )
      ).rows;
      let replayed = 0;
      for (const row of rows) {
        if (wanted && !wanted.has(row.id)) continue;
        const parked = toParked(row);
        const repository = parked.entry.event.repository;
        this.record(tx, { action: 'notification.replay', endpoint, original: parked.entry, ...(repository !== undefined ? { repository } : {}) }, now);
        await tx.query('DELETE FROM notification_parked WHERE id = $1', [row.id]);
        replayed += 1;
      }
      return replayed;
    });
  }

  // --- jobs ------------------------------------------------------------------------------------

  async enqueueJob(job: NewJob): Promise<JobRecord> {
    return this.db.transaction(async (tx) => {
      const now = Date.now();
      for (;;) {
        if (job.key !== undefined) {
          const existing = await tx.one<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE key = $1 FOR UPDATE`, [job.key]);
          if (existing && (existing.state === 'ready' || existing.state === 'running')) {
            // A recurring job keeps its place but takes the interval configured now.
            if (job.repeatMs !== undefined && existing.repeat_ms !== job.repeatMs) {
              const row = await tx.one<JobRow>(`UPDATE jobs SET repeat_ms = $1, run_at = least(run_at, $2), updated_at = $3 WHERE id = $4 RETURNING ${JOB_COLUMNS}`, [
                job.repeatMs,
                now + job.repeatMs,
                now,
                existing.id,
              ]);
              return toJob(row!);
            }
            return toJob(existing);
          }
          // A finished job with the same key makes room for the new one.
          if (existing) await tx.query('DELETE FROM jobs WHERE id = $1', [existing.id]);
        }
        const row = await tx.one<JobRow>(
          `INSERT INTO jobs (kind, key, payload, state, run_at, max_attempts, repeat_ms, created_at, updated_at)
           VALUES ($1, $2, $3, 'ready', $4, $5, $6, $7, $7) ON CONFLICT (key) DO NOTHING RETURNING ${JOB_COLUMNS}`,
          [job.kind, job.key ?? null, JSON.stringify(job.payload ?? {}), job.runAt ?? now, job.maxAttempts ?? DEFAULT_JOB_ATTEMPTS, job.repeatMs ?? null, now],
        );
        // Another replica queued the same key meanwhile: take that one (the loop locks and reads it).
        if (row) return toJob(row);
      }
    });
  }

  async claimJob(options: { kinds: readonly string[]; owner: string; leaseMs: number }): Promise<JobRecord | undefined> {
    if (options.kinds.length === 0) return undefined;
    return this.db.transaction(async (tx) => {
      const now = Date.now();
      // SKIP LOCKED: a job another replica is claiming right now is passed over, not waited for.
      const due = await tx.one<{ id: number }>(
        `SELECT id FROM jobs
         WHERE kind = ANY($1::text[]) AND ((state = 'ready' AND run_at <= $2) OR (state = 'running' AND lease_until < $2))
         ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [options.kinds, now],
      );
      if (!due) return undefined;
      const row = await tx.one<JobRow>(
        `UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated_at = $3 WHERE id = $4 RETURNING ${JOB_COLUMNS}`,
        [options.owner, now + options.leaseMs, now, due.id],
      );
      return toJob(row!);
    });
  }

  async renewJobLease(id: number, owner: string, leaseMs: number): Promise<boolean> {
    const now = Date.now();
    const result = await this.db.query("UPDATE jobs SET lease_until = $1, updated_at = $2 WHERE id = $3 AND lease_owner = $4 AND state = 'running'", [now + leaseMs, now, id, owner]);
    return result.rowCount! > 0;
  }

  async finishJob(id: number, owner: string, outcome: JobOutcome): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const job = await tx.one<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE`, [id]);
      if (!job || job.state !== 'running' || job.lease_owner !== owner) return false;
      const now = Date.now();
      const settle = (state: JobState, runAt: number, attempts: number, error: string | null) =>
        tx.query('UPDATE jobs SET state = $1, run_at = $2, attempts = $3, last_error = $4, lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE id = $6', [
          state,
          runAt,
          attempts,
          error,
          now,
          id,
        ]);
      if (outcome.kind === 'done') {
        if (job.repeat_ms !== null) await settle('ready', now + job.repeat_ms, 0, null);
        else await settle('done', job.run_at, job.attempts, null);
      } else if (job.attempts >= job.max_attempts) {
        // A recurring job goes on at its next time; a one-off one is given up.
        if (job.repeat_ms !== null) await settle('ready', now + job.repeat_ms, 0, outcome.error);
        else await settle('failed', job.run_at, job.attempts, outcome.error);
      } else {
        await settle('ready', outcome.runAt, job.attempts, outcome.error);
      }
      return true;
    });
  }

  async listJobs(options: { states?: readonly JobState[]; limit: number }): Promise<JobRecord[]> {
    const states = options.states ?? ['ready', 'running', 'done', 'failed'];
    return (await this.db.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM jobs WHERE state = ANY($1::text[]) ORDER BY id DESC LIMIT $2`, [states, options.limit])).rows.map(toJob);
  }

  // --- retention -------------------------------------------------------------------------------

  async recordPulls(pulls: ReadonlyArray<{ repository: string; digest: string; at: number }>): Promise<void> {
    if (pulls.length === 0) return;
    // Lazy: pull times need not wait for the disk. One statement; the latest pull of each manifest wins.
    await this.db.transaction(
      async (tx) => {
        await tx.query(
          `UPDATE manifests m SET pulled_at = p.at
             FROM (SELECT repository, digest, max(at) AS at FROM unnest($1::text[], $2::text[], $3::bigint[]) AS x(repository, digest, at) GROUP BY repository, digest) p,
                  repositories r
           WHERE r.name = p.repository AND m.repository_id = r.id AND m.digest = p.digest AND (m.pulled_at IS NULL OR m.pulled_at < p.at)`,
          [pulls.map((p) => p.repository), pulls.map((p) => p.digest), pulls.map((p) => p.at)],
        );
      },
      { lazy: true },
    );
  }

  async listRetentionPolicies(): Promise<RetentionPolicy[]> {
    const rows = await this.db.query<RetentionRow>("SELECT id, repositories, rules, source, created_at, created_by FROM retention_policies ORDER BY source = 'api', id");
    return rows.rows.map(toRetentionPolicy);
  }

  async addRetentionPolicy(spec: RetentionPolicySpec, options: ChangeOptions = {}): Promise<RetentionPolicy> {
    const { repositories, ...rules } = spec;
    const row = await this.db.one<RetentionRow>(
      "INSERT INTO retention_policies (repositories, rules, source, created_at, created_by) VALUES ($1, $2, 'api', $3, $4) RETURNING id, repositories, rules, source, created_at, created_by",
      [repositories, JSON.stringify(rules), Date.now(), options.actor ?? null],
    );
    return toRetentionPolicy(row!);
  }

  async removeRetentionPolicy(id: number): Promise<boolean> {
    return (await this.db.query("DELETE FROM retention_policies WHERE id = $1 AND source = 'api'", [id])).rowCount! > 0;
  }

  async replaceConfigRetentionPolicies(specs: readonly RetentionPolicySpec[]): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query('LOCK TABLE retention_policies IN SHARE ROW EXCLUSIVE MODE');
      const wanted = specs.map(({ repositories, ...rules }) => [repositories, JSON.stringify(rules)] as const);
      const current = (await tx.query<RetentionRow>("SELECT id, repositories, rules FROM retention_policies WHERE source = 'config' ORDER BY id")).rows;
      // Every serving process does this at start: leave the ids alone when nothing changed.
      if (current.length === wanted.length && current.every((row, i) => row.repositories === wanted[i]![0] && row.rules === wanted[i]![1])) return;
      await tx.query("DELETE FROM retention_policies WHERE source = 'config'");
      const now = Date.now();
      for (const [repositories, rules] of wanted) {
        await tx.query("INSERT INTO retention_policies (repositories, rules, source, created_at) VALUES ($1, $2, 'config', $3)", [repositories, rules, now]);
      }
    });
  }

  async retireTags(repository: string, tags: ReadonlyArray<{ tag: string; digest: string }>, options: ChangeOptions = {}): Promise<string[]> {
    if (tags.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const id = await this.lockRepository(tx, repository, { create: false });
      if (id === undefined) return [];
      const rules = await this.immutableRules(tx);
      const now = Date.now();
      const removed: string[] = [];
      for (const { tag, digest } of tags) {
        if (immutableRuleFor(rules, repository, tag)) continue;
        const deleted = await tx.query('DELETE FROM tags WHERE repository_id = $1 AND name = $2 AND digest = $3', [id, tag, digest]);
        if (deleted.rowCount === 0) continue;
        await this.insertTagEvent(tx, id, tag, digest, 'delete', options.actor, now, digest);
        this.record(tx, { action: 'tag.delete', repository, tag, digest, ...actorOf(options) }, now);
        removed.push(tag);
      }
      return removed;
    });
  }

  // --- garbage collection ----------------------------------------------------------------------

  async listRepositoryGraphs(page: Page): Promise<RepositoryGraph[]> {
    // One snapshot for the page: a repository's manifests, tags and references agree with each other.
    return this.db.transaction(
      async (tx) => {
        const repos = (await tx.query<{ id: number; name: string; created_at: number }>('SELECT id, name, created_at FROM repositories WHERE name > $1 ORDER BY name LIMIT $2', [page.after ?? '', page.limit])).rows;
        if (repos.length === 0) return [];
        const ids = repos.map((repo) => repo.id);
        const nodesOf = new Map<number, Map<string, ManifestNode>>(ids.map((id) => [id, new Map()]));
        const manifests = await tx.query<{ repository_id: number; digest: string; media_type: string; size: number; subject: string | null; touched_at: number; pulled_at: number | null }>(
          'SELECT repository_id, digest, media_type, size, subject, touched_at, pulled_at FROM manifests WHERE repository_id = ANY($1::bigint[]) ORDER BY repository_id, digest',
          [ids],
        );
        for (const row of manifests.rows) {
          const node: ManifestNode = { digest: row.digest, mediaType: row.media_type, size: row.size, tags: [], touchedAt: row.touched_at, blobs: [], children: [] };
          if (row.subject !== null) node.subject = row.subject;
          if (row.pulled_at !== null) node.pulledAt = row.pulled_at;
          nodesOf.get(row.repository_id)!.set(row.digest, node);
        }
        const taggedOf = new Map<number, RepositoryGraph['tagged']>(ids.map((id) => [id, []]));
        const tags = await tx.query<{ repository_id: number; name: string; digest: string; updated_at: number }>(
          'SELECT repository_id, name, digest, updated_at FROM tags WHERE repository_id = ANY($1::bigint[]) ORDER BY repository_id, name',
          [ids],
        );
        for (const row of tags.rows) {
          taggedOf.get(row.repository_id)!.push({ name: row.name, digest: row.digest, pushedAt: row.updated_at });
          nodesOf.get(row.repository_id)!.get(row.digest)?.tags.push(row.name);
        }
        const history = await tx.query<{ repository_id: number; digest: string; at: number }>(
          `SELECT repository_id, digest, max(at) AS at FROM (
             SELECT repository_id, digest, at FROM tag_history WHERE repository_id = ANY($1::bigint[]) AND digest IS NOT NULL
             UNION ALL
             SELECT repository_id, previous AS digest, at FROM tag_history WHERE repository_id = ANY($1::bigint[]) AND previous IS NOT NULL
           ) h GROUP BY repository_id, digest`,
          [ids],
        );
        for (const row of history.rows) {
          const node = nodesOf.get(row.repository_id)!.get(row.digest);
          if (node) node.taggedAt = row.at;
        }
        const refs = await tx.query<{ repository_id: number; manifest_digest: string; child_digest: string; kind: 'blob' | 'manifest' }>(
          'SELECT repository_id, manifest_digest, child_digest, kind FROM manifest_references WHERE repository_id = ANY($1::bigint[]) ORDER BY child_digest',
          [ids],
        );
        for (const ref of refs.rows) {
          const node = nodesOf.get(ref.repository_id)!.get(ref.manifest_digest);
          if (node) (ref.kind === 'blob' ? node.blobs : node.children).push(ref.child_digest);
        }
        const uploads = new Map(
          (await tx.query<{ repository_id: number; n: number }>('SELECT repository_id, count(*) AS n FROM uploads WHERE repository_id = ANY($1::bigint[]) GROUP BY repository_id', [ids])).rows.map(
            (row) => [row.repository_id, row.n],
          ),
        );
        const linkedOf = new Map<number, string[]>(ids.map((id) => [id, []]));
        const links = await tx.query<{ repository_id: number; digest: string }>(
          'SELECT repository_id, digest FROM repository_blobs WHERE repository_id = ANY($1::bigint[]) ORDER BY repository_id, digest',
          [ids],
        );
        for (const row of links.rows) linkedOf.get(row.repository_id)!.push(row.digest);
        return repos.map((repo) => ({
          name: repo.name,
          createdAt: repo.created_at,
          manifests: [...nodesOf.get(repo.id)!.values()],
          uploads: uploads.get(repo.id) ?? 0,
          linked: linkedOf.get(repo.id)!,
          tagged: taggedOf.get(repo.id)!,
        }));
      },
      { snapshot: true },
    );
  }

  async deleteUntaggedManifests(
    manifests: ReadonlyArray<{ repository: string; digest: string }>,
    options: { touchedBefore: number; historySince?: number },
  ): Promise<Array<{ repository: string; digest: string }>> {
    if (manifests.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const now = Date.now();
      const since = options.historySince;
      const deleted: Array<{ repository: string; digest: string }> = [];
      const locked = new Map<string, number | undefined>();
      // Repositories locked in name order, before any decision: a push moving a tag onto one of
      // these manifests waits for this commit, or this waits for it and sees the tag.
      for (const name of sorted(manifests.map((m) => m.repository))) locked.set(name, await this.lockRepository(tx, name, { create: false }));
      for (const { repository, digest } of manifests) {
        const id = locked.get(repository);
        if (id === undefined) continue;
        const row = await tx.one<{ touched_at: number }>('SELECT touched_at FROM manifests WHERE repository_id = $1 AND digest = $2', [id, digest]);
        if (!row || row.touched_at >= options.touchedBefore) continue;
        const kept = await tx.one(
          `SELECT 1 WHERE EXISTS (SELECT 1 FROM tags WHERE repository_id = $1 AND digest = $2)
              OR EXISTS (SELECT 1 FROM manifest_references WHERE repository_id = $1 AND child_digest = $2 AND kind = 'manifest')
              OR EXISTS (SELECT 1 FROM manifests WHERE repository_id = $1 AND subject = $2)
              OR ($3::bigint IS NOT NULL AND (
                   EXISTS (SELECT 1 FROM tag_history WHERE repository_id = $1 AND digest = $2 AND at >= $3)
                OR EXISTS (SELECT 1 FROM tag_history WHERE repository_id = $1 AND previous = $2 AND at >= $3)))`,
          [id, digest, since ?? null],
        );
        if (kept) continue;
        await tx.query('DELETE FROM manifests WHERE repository_id = $1 AND digest = $2', [id, digest]);
        this.record(tx, { action: 'manifest.delete', repository, digest, tags: [] }, now);
        deleted.push({ repository, digest });
      }
      return deleted;
    });
  }

  /**
   * The blobs' rows locked in digest order, for a collector's decisions. A statement of its own:
   * the statements after it take their snapshot once the locks are held, so they see every
   * reference a push committed while this waited for it.
   */
  private async lockBlobs(tx: Transaction, digests: readonly string[]): Promise<Map<string, BlobRow>> {
    const rows = await tx.query<BlobRow>(`SELECT ${BLOB_COLUMNS} FROM blobs WHERE digest = ANY($1::text[]) ORDER BY digest FOR UPDATE`, [sorted(digests)]);
    return new Map(rows.rows.map((row) => [row.digest, row]));
  }

  /** `digests` in the order given, once each, keeping those in `chosen`. */
  private static inOrder(digests: readonly string[], chosen: Iterable<string>): string[] {
    const keep = new Set(chosen);
    return [...new Set(digests)].filter((digest) => keep.has(digest));
  }

  async markBlobsDeleting(digests: readonly string[], options: { touchedBefore: number }): Promise<string[]> {
    if (digests.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const locked = await this.lockBlobs(tx, digests);
      if (locked.size === 0) return [];
      // One statement decides the batch, each row on its own condition.
      const marked = await tx.query<{ digest: string }>(
        `UPDATE blobs b SET state = 'deleting', state_since = $2
         WHERE b.digest = ANY($1::text[]) AND b.state = 'present' AND b.touched_at < $3
           AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child_digest = b.digest AND r.kind = 'blob')
         RETURNING b.digest`,
        [[...locked.keys()], Date.now(), options.touchedBefore],
      );
      return PostgresMetadataStore.inOrder(digests, marked.rows.map((row) => row.digest));
    });
  }

  async beginBlobSweeps(digests: readonly string[], options: { touchedBefore: number; markedBefore: number }): Promise<BlobRecord[]> {
    if (digests.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const locked = await this.lockBlobs(tx, digests);
      if (locked.size === 0) return [];
      // Present rows (not marked, or revived since) and rows already sweeping are left out; a
      // pending row belongs to a commit moving bytes in, unless that commit died long ago.
      const taken = await tx.query<{ digest: string }>(
        `UPDATE blobs b SET state = 'sweeping', state_since = $2
         WHERE b.digest = ANY($1::text[]) AND b.touched_at < $3
           AND ((b.state = 'deleting' AND b.state_since <= $4) OR (b.state = 'pending' AND b.state_since < $3) OR b.state = 'quarantined')
           AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.child_digest = b.digest AND r.kind = 'blob')
         RETURNING b.digest`,
        [[...locked.keys()], Date.now(), options.touchedBefore, options.markedBefore],
      );
      // The rows as they were before this (locked, so as read above).
      return PostgresMetadataStore.inOrder(digests, taken.rows.map((row) => row.digest)).map((digest) => toBlob(locked.get(digest)!));
    });
  }

  async finishBlobSweeps(digests: readonly string[]): Promise<string[]> {
    if (digests.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const locked = await this.lockBlobs(tx, digests);
      const sweeping = [...locked.values()].filter((row) => row.state === 'sweeping').map((row) => row.digest);
      if (sweeping.length === 0) return [];
      await tx.query('DELETE FROM repository_blobs WHERE digest = ANY($1::text[])', [sweeping]);
      const removed = await tx.query<{ digest: string }>("DELETE FROM blobs WHERE digest = ANY($1::text[]) AND state = 'sweeping' RETURNING digest", [sweeping]);
      return PostgresMetadataStore.inOrder(digests, removed.rows.map((row) => row.digest));
    });
  }

  async deleteEmptyRepository(repository: string, options: { touchedBefore: number }): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      // FOR UPDATE: an upload or link being inserted into it (which takes a key-share lock for its
      // foreign key) is waited for and then seen; one that comes after finds the row gone and retries.
      const repo = await tx.one<{ id: number; created_at: number }>('SELECT id, created_at FROM repositories WHERE name = $1 FOR UPDATE', [repository]);
      if (!repo || repo.created_at >= options.touchedBefore) return false;
      const busy = await tx.one(
        `SELECT 1 WHERE EXISTS (SELECT 1 FROM manifests WHERE repository_id = $1)
            OR EXISTS (SELECT 1 FROM uploads WHERE repository_id = $1)
            OR EXISTS (SELECT 1 FROM repository_blobs WHERE repository_id = $1)`,
        [repo.id],
      );
      if (busy) return false;
      await tx.query('DELETE FROM repositories WHERE id = $1', [repo.id]);
      this.record(tx, { action: 'repository.delete', repository }, Date.now());
      return true;
    });
  }

  async acquireLease(name: string, owner: string, ms: number, options: { replacing?: string } = {}): Promise<LeaseClaim> {
    const now = Date.now();
    // One statement: the upsert's row lock decides between replicas asking at once.
    const taken = await this.db.one(
      `INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
       WHERE leases.owner = excluded.owner OR leases.until <= $4 OR leases.owner = $5
       RETURNING 1 AS one`,
      [name, owner, now + ms, now, options.replacing ?? null],
    );
    if (taken) return { acquired: true };
    const held = await this.db.one<{ owner: string; until: number }>('SELECT owner, until FROM leases WHERE name = $1', [name]);
    // Released between the two statements: ask again.
    if (!held) return this.acquireLease(name, owner, ms, options);
    return { acquired: false, holder: held.owner, until: held.until };
  }

  async releaseLease(name: string, owner: string): Promise<boolean> {
    return (await this.db.query('DELETE FROM leases WHERE name = $1 AND owner = $2', [name, owner])).rowCount! > 0;
  }

  // --- quotas and usage --------------------------------------------------------------------------

  async repositoryUsage(options: { prefix?: string; limit: number }): Promise<RepositoryUsage[]> {
    const rows = await this.db.query<{ name: string; bytes: number; blobs: number; manifests: number }>(
      'SELECT name, bytes, blobs, manifests FROM repository_usage WHERE left(name, length($1)) = $1 ORDER BY bytes DESC, name LIMIT $2',
      [options.prefix ?? '', options.limit],
    );
    return rows.rows.map((row) => ({ repository: row.name, bytes: row.bytes, blobs: row.blobs, manifests: row.manifests }));
  }

  async checkQuota(repository: string, change: { bytes: number; digest?: string }): Promise<QuotaViolation | undefined> {
    if (change.digest !== undefined) {
      const id = await this.repositoryId(this.db, repository);
      if (id !== undefined && (await this.isLinked(this.db, id, change.digest))) return undefined;
    }
    return this.quotaViolation(this.db, repository, change.bytes, { lock: false });
  }

  async listQuotas(): Promise<QuotaStatus[]> {
    return this.db.transaction(
      async (tx) => {
        const rows = (await tx.query<{ name: string; source: 'config' | 'api'; limit_bytes: number }>('SELECT name, source, limit_bytes FROM quotas ORDER BY name, source')).rows;
        const out: QuotaStatus[] = [];
        for (const row of rows) out.push({ name: row.name, limit: row.limit_bytes, source: row.source, scope: quotaScope(row.name), usage: await this.usageOf(tx, row.name) });
        return out;
      },
      { snapshot: true },
    );
  }

  async setQuota(name: string, limit: number): Promise<void> {
    await this.db.query(
      `INSERT INTO quotas (name, source, limit_bytes, updated_at) VALUES ($1, 'api', $2, $3)
       ON CONFLICT (name, source) DO UPDATE SET limit_bytes = excluded.limit_bytes, updated_at = excluded.updated_at`,
      [name, limit, Date.now()],
    );
  }

  async removeQuota(name: string): Promise<boolean> {
    return (await this.db.query("DELETE FROM quotas WHERE name = $1 AND source = 'api'", [name])).rowCount! > 0;
  }

  async replaceConfigQuotas(rules: ReadonlyArray<{ name: string; limit: number }>): Promise<void> {
    await this.db.transaction(async (tx) => {
      const now = Date.now();
      await tx.query("DELETE FROM quotas WHERE source = 'config'");
      for (const rule of rules) {
        await tx.query(
          `INSERT INTO quotas (name, source, limit_bytes, updated_at) VALUES ($1, 'config', $2, $3)
           ON CONFLICT (name, source) DO UPDATE SET limit_bytes = excluded.limit_bytes, updated_at = excluded.updated_at`,
          [rule.name, rule.limit, now],
        );
      }
    });
  }

  // --- imports of another registry's storage -------------------------------------------------------

  async getStorageImport(source: string): Promise<StorageImport | undefined> {
    const row = await this.db.one<{ started_at: number; finished_at: number | null }>('SELECT started_at, finished_at FROM storage_imports WHERE source = $1', [source]);
    if (!row) return undefined;
    const repositories = (await this.db.query<{ repository: string }>('SELECT repository FROM storage_import_repositories WHERE source = $1 ORDER BY repository', [source])).rows.map(
      (r) => r.repository,
    );
    return { source, startedAt: row.started_at, ...(row.finished_at !== null ? { finishedAt: row.finished_at } : {}), repositories };
  }

  async beginStorageImport(source: string): Promise<void> {
    await this.db.query('INSERT INTO storage_imports (source, started_at) VALUES ($1, $2) ON CONFLICT (source) DO NOTHING', [source, Date.now()]);
  }

  async markRepositoryImported(source: string, repository: string): Promise<void> {
    await this.db.query('INSERT INTO storage_import_repositories (source, repository, imported_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [source, repository, Date.now()]);
  }

  async finishStorageImport(source: string): Promise<void> {
    await this.db.query('UPDATE storage_imports SET finished_at = $1 WHERE source = $2 AND finished_at IS NULL', [Date.now(), source]);
  }

  async unfinishedStorageImports(): Promise<string[]> {
    return (await this.db.query<{ source: string }>('SELECT source FROM storage_imports WHERE finished_at IS NULL ORDER BY source')).rows.map((r) => r.source);
  }

  // --- operations ------------------------------------------------------------------------------

  async inventory(): Promise<Inventory> {
    const row = await this.db.one<Inventory>(
      `SELECT (SELECT count(*) FROM repositories) AS repositories,
              (SELECT count(*) FROM manifests) AS manifests,
              count(*) AS blobs, coalesce(sum(size), 0) AS "blobBytes"
         FROM blobs WHERE state = 'present'`,
    );
    return row!;
  }

  async checkWritable(): Promise<void> {
    // A standby (or a server in read-only mode) takes no writes: a replica pointed at one is not ready.
    const row = await this.db.one<{ recovery: boolean; read_only: string }>("SELECT pg_is_in_recovery() AS recovery, current_setting('default_transaction_read_only') AS read_only");
    if (row!.recovery || row!.read_only === 'on') throw new Error('the metadata database is read-only (a standby, or default_transaction_read_only is on)');
  }

  // --- repositories ----------------------------------------------------------------------------

  async listRepositories(page: Page): Promise<string[]> {
    const rows = await this.db.query<{ name: string }>(
      `SELECT name FROM repositories r
       WHERE name > $1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
       ORDER BY name LIMIT $2`,
      [page.after ?? '', page.limit],
    );
    return rows.rows.map((row) => row.name);
  }

  async searchRepositories(query: { text: string; offset: number; limit: number; visible?: (repository: string) => boolean }): Promise<{ total: number; repositories: RepositorySummary[] }> {
    const visible = query.visible ?? (() => true);
    const words = searchWords(query.text);
    let rows: SearchRow[] = [];
    if (words.length === 0 && query.text.trim() === '') {
      // Every repository by name, read in batches until the cap is reached (the caller may see few).
      let after = '';
      for (;;) {
        const batch = (
          await this.db.query<SearchRow>(
            `SELECT r.id, r.name, r.search_description AS description FROM repositories r
             WHERE r.name > $1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id) ORDER BY r.name LIMIT $2`,
            [after, SEARCH_CANDIDATES],
          )
        ).rows;
        for (const row of batch) if (rows.length < SEARCH_RESULT_CAP && visible(row.name)) rows.push(row);
        if (batch.length < SEARCH_CANDIDATES || rows.length >= SEARCH_RESULT_CAP) break;
        after = batch[batch.length - 1]!.name;
      }
    } else if (words.length > 0) {
      const byName = searchQuery(words, { nameOnly: true });
      const any = searchQuery(words, { nameOnly: false });
      if (byName !== undefined && any !== undefined) {
        // Candidates as the index gives them, no ranking in SQL: bounded work however common the
        // words are. Name matches first, ranked; then matches through the description, by name.
        // The first matches by id, as SQLite's FTS5 gives them (rowid order): the same candidates
        // every time, so that pages of one search agree (a plain scan's order may vary from one
        // query to the next).
        const candidates = async (match: string) =>
          (
            await this.db.query<SearchRow>(
              `SELECT r.id, r.name, r.search_description AS description FROM repositories r
               WHERE r.search_document @@ $1::tsquery AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id) ORDER BY r.id LIMIT $2`,
              [match, SEARCH_CANDIDATES],
            )
          ).rows;
        rows = rankByName((await candidates(byName)).filter((row) => visible(row.name)), query.text.trim().toLowerCase(), words);
        if (rows.length < SEARCH_RESULT_CAP) {
          const seen = new Set(rows.map((row) => row.id));
          const byDescription = (await candidates(any)).filter((row) => !seen.has(row.id) && visible(row.name));
          byDescription.sort((a, b) => compareText(a.name, b.name));
          rows = rows.concat(byDescription);
        }
        rows = rows.slice(0, SEARCH_RESULT_CAP);
      }
    }
    const page = rows.slice(query.offset, query.offset + query.limit);
    const stars = await this.starCounts(page.map((row) => row.id));
    return {
      total: rows.length,
      repositories: page.map((row) => ({ name: row.name, ...(row.description !== '' ? { description: row.description } : {}), stars: stars.get(row.id) ?? 0 })),
    };
  }

  private async starCounts(ids: readonly number[]): Promise<Map<number, number>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db.query<{ repository_id: number; n: number }>(
      'SELECT repository_id, count(*) AS n FROM repository_stars WHERE repository_id = ANY($1::bigint[]) GROUP BY repository_id',
      [ids],
    );
    return new Map(rows.rows.map((row) => [row.repository_id, row.n]));
  }

  async repositoryProfile(repository: string): Promise<RepositoryProfile | undefined> {
    return this.db.transaction(
      async (tx) => {
        const row = await tx.one<{ id: number; created_at: number; image_description: string | null; readme: string | null; readme_updated_at: number | null; readme_updated_by: string | null }>(
          `SELECT r.id, r.created_at, p.image_description, p.readme, p.readme_updated_at, p.readme_updated_by
             FROM repositories r LEFT JOIN repository_profiles p ON p.repository_id = r.id WHERE r.name = $1`,
          [repository],
        );
        if (!row) return undefined;
        const facts = (await tx.one<{ tags: number; last: number | null; stars: number; bytes: number | null }>(
          `SELECT (SELECT count(*) FROM tags WHERE repository_id = $1) AS tags,
                  (SELECT max(updated_at) FROM tags WHERE repository_id = $1) AS last,
                  (SELECT count(*) FROM repository_stars WHERE repository_id = $1) AS stars,
                  (SELECT bytes FROM repository_usage WHERE repository_id = $1) AS bytes`,
          [row.id],
        ))!;
        const description = describedBy(row);
        return {
          name: repository,
          ...(description !== undefined ? { description } : {}),
          stars: facts.stars,
          ...(row.readme !== null ? { readme: row.readme } : {}),
          ...(row.readme_updated_at !== null ? { readmeUpdatedAt: row.readme_updated_at } : {}),
          ...(row.readme_updated_by !== null ? { readmeUpdatedBy: row.readme_updated_by } : {}),
          createdAt: row.created_at,
          ...(facts.last !== null ? { lastPushedAt: facts.last } : {}),
          tagCount: facts.tags,
          bytes: facts.bytes ?? 0,
        };
      },
      { snapshot: true },
    );
  }

  async setReadme(repository: string, readme: string | undefined, options: ChangeOptions = {}): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const id = await this.lockRepository(tx, repository, { create: false });
      if (id === undefined) return false;
      const stored = (await tx.one<{ image_description: string | null; readme: string | null }>(
        `INSERT INTO repository_profiles (repository_id, readme, readme_updated_at, readme_updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (repository_id) DO UPDATE SET readme = excluded.readme, readme_updated_at = excluded.readme_updated_at, readme_updated_by = excluded.readme_updated_by
         RETURNING image_description, readme`,
        [id, readme ?? null, Date.now(), options.actor ?? null],
      ))!;
      await this.indexDescription(tx, id, describedBy(stored));
      return true;
    });
  }

  async setStar(repository: string, user: string, starred: boolean): Promise<boolean | undefined> {
    return this.db.transaction(async (tx) => {
      const id = await this.repositoryId(tx, repository);
      if (id === undefined) return undefined;
      if (starred) await tx.query('INSERT INTO repository_stars (repository_id, "user", created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [id, user, Date.now()]);
      else await tx.query('DELETE FROM repository_stars WHERE repository_id = $1 AND "user" = $2', [id, user]);
      return starred;
    });
  }

  async starredBy(user: string, repositories: readonly string[]): Promise<Set<string>> {
    if (repositories.length === 0) return new Set();
    const rows = await this.db.query<{ name: string }>(
      'SELECT r.name FROM repository_stars s JOIN repositories r ON r.id = s.repository_id WHERE s."user" = $1 AND r.name = ANY($2::text[])',
      [user, repositories],
    );
    const starred = new Set(rows.rows.map((row) => row.name));
    return new Set(repositories.filter((name) => starred.has(name)));
  }

  async listTagDetails(repository: string, query: TagDetailQuery): Promise<{ total: number; tags: TagDetail[] } | undefined> {
    return this.db.transaction(
      async (tx) => {
        const id = await this.repositoryId(tx, repository);
        if (id === undefined) return undefined;
        // The sort column comes from a closed set, never from the caller's text.
        const column = { name: 't.name', pushed: 't.updated_at', size: 'm.total_size' }[query.sort];
        const direction = query.descending ? 'DESC' : 'ASC';
        const rows = (
          await tx.query<TagDetailRow>(
            `SELECT t.name, t.digest, m.media_type, m.total_size, t.updated_at, m.pulled_at, m.content
               FROM tags t JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
              WHERE t.repository_id = $1 ORDER BY ${column} ${direction}, t.name ${direction} LIMIT $2 OFFSET $3`,
            [id, query.limit, query.offset],
          )
        ).rows;
        const total = (await tx.one<{ n: number }>('SELECT count(*) AS n FROM tags WHERE repository_id = $1', [id]))!.n;
        return {
          total,
          tags: rows.map(toTagDetail),
        };
      },
      { snapshot: true },
    );
  }

  /** Inside a manifest push (repository row locked): the newest tagged manifest's description, indexed for search when it changed. */
  private async setImageDescription(tx: Transaction, id: number, description: string | null): Promise<void> {
    const changed = await tx.one<{ image_description: string | null; readme: string | null }>(
      `INSERT INTO repository_profiles (repository_id, image_description) VALUES ($1, $2)
       ON CONFLICT (repository_id) DO UPDATE SET image_description = excluded.image_description
         WHERE repository_profiles.image_description IS DISTINCT FROM excluded.image_description
       RETURNING image_description, readme`,
      [id, normalizeDescription(description) ?? null],
    );
    if (changed) await this.indexDescription(tx, id, describedBy(changed));
  }

  /** The description search shows and matches, with its words in the repository's search document. */
  private async indexDescription(tx: Transaction, id: number, description: string | undefined): Promise<void> {
    await tx.query('UPDATE repositories SET search_description = $2, search_words = $3::tsvector WHERE id = $1 AND search_description IS DISTINCT FROM $2', [
      id,
      description ?? '',
      descriptionLexemes(description ?? ''),
    ]);
  }

  async repositoryExists(repository: string): Promise<boolean> {
    return (await this.repositoryId(this.db, repository)) !== undefined;
  }
}
