import type { BlobRecord, BlobState, JobRecord, JobState, ManifestRecord, TagDetail } from './metadata-store.js';

/**
 * Rows of the metadata tables that both stores read the same way (the SQLite and PostgreSQL
 * schemas give the columns the same names), and the records they make.
 */

export interface ManifestRow {
  digest: string;
  media_type: string;
  content: Buffer;
  subject: string | null;
  artifact_type: string | null;
  total_size: number;
  created_at: number;
}

export interface BlobRow {
  digest: string;
  size: number;
  state: BlobState;
  state_since: number;
  touched_at: number;
}

export interface JobRow {
  id: number;
  kind: string;
  key: string | null;
  payload: string;
  state: JobState;
  run_at: number;
  attempts: number;
  max_attempts: number;
  repeat_ms: number | null;
  lease_owner: string | null;
  lease_until: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

export function toRecord(row: ManifestRow): ManifestRecord {
  const record: ManifestRecord = {
    digest: row.digest,
    mediaType: row.media_type,
    content: row.content,
    totalSize: row.total_size,
    createdAt: row.created_at,
  };
  if (row.subject !== null) record.subject = row.subject;
  if (row.artifact_type !== null) record.artifactType = row.artifact_type;
  return record;
}

export function toBlob(row: BlobRow): BlobRecord {
  return { digest: row.digest, size: row.size, state: row.state, stateSince: row.state_since, touchedAt: row.touched_at };
}

export function toJob(row: JobRow): JobRecord {
  const job: JobRecord = {
    id: row.id,
    kind: row.kind,
    payload: JSON.parse(row.payload) as unknown,
    state: row.state,
    runAt: row.run_at,
    attempts: row.attempts,
    maxAttempts: row.max_attempts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
  if (row.key !== null) job.key = row.key;
  if (row.repeat_ms !== null) job.repeatMs = row.repeat_ms;
  if (row.lease_owner !== null) job.leaseOwner = row.lease_owner;
  if (row.lease_until !== null) job.leaseUntil = row.lease_until;
  if (row.last_error !== null) job.lastError = row.last_error;
  return job;
}

/** A tag joined with its manifest, as the tag detail listing reads it. */
export interface TagDetailRow {
  name: string;
  digest: string;
  media_type: string;
  total_size: number;
  updated_at: number;
  pulled_at: number | null;
  content: Buffer;
}

export function toTagDetail(row: TagDetailRow): TagDetail {
  return {
    name: row.name,
    digest: row.digest,
    mediaType: row.media_type,
    totalSize: row.total_size,
    pushedAt: row.updated_at,
    ...(row.pulled_at !== null ? { pulledAt: row.pulled_at } : {}),
    content: row.content,
  };
}
