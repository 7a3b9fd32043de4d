/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
 * Append new steps; never edit one that has shipped.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE repositories (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE blobs (
    digest TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE repository_blobs (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest TEXT NOT NULL REFERENCES blobs(digest),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
  ) WITHOUT ROWID;
  CREATE INDEX repository_blobs_by_digest ON repository_blobs(digest);
  CREATE TABLE manifests (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    content BLOB NOT NULL,
    size INTEGER NOT NULL,
    total_size INTEGER NOT NULL,
    subject TEXT,
    artifact_type TEXT,
    annotations TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repository_id, digest)
  );
  CREATE INDEX manifests_by_subject ON manifests(repository_id, subject) WHERE subject IS NOT NULL;
  CREATE TABLE manifest_references (
    repository_id INTEGER NOT NULL,
    manifest_digest TEXT NOT NULL,
    child_digest TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
    PRIMARY KEY (repository_id, manifest_digest, child_digest),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
  ) WITHOUT ROWID;
  CREATE INDEX manifest_references_by_child ON manifest_references(child_digest);
  CREATE TABLE tags (
    repository_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, digest) REFERENCES manifests(repository_id, digest) ON DELETE CASCADE
  ) WITHOUT ROWID;
  CREATE INDEX tags_by_digest ON tags(repository_id, digest);
  CREATE TABLE tag_history (
    id INTEGER PRIMARY KEY,
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag TEXT NOT NULL,
    digest TEXT,
    action TEXT NOT NULL CHECK (action IN ('push', 'delete')),
    actor TEXT,
    at INTEGER NOT NULL
  );
  CREATE INDEX tag_history_by_tag ON tag_history(repository_id, tag, id);
  CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    size INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX uploads_by_update ON uploads(updated_at);
  `,
  // 2: accounts and policy managed through the admin API (src/auth reads them through AccountStore).
  `
  CREATE TABLE auth_users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    groups TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE auth_robots (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    permissions TEXT NOT NULL,
    description TEXT,
    created_at INTEGER NOT NULL,
    created_by TEXT,
    expires_at INTEGER
  ) WITHOUT ROWID;
  CREATE TABLE auth_rules (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    repository TEXT NOT NULL,
    actions TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT
  );
  CREATE TABLE auth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX auth_refresh_tokens_by_subject ON auth_refresh_tokens(subject);
  `,
  // 3: a counter that every change to auth_rules bumps, so each serving process (and replica)
  // can tell with one cheap read whether its copy of the rules is current.
  `
  CREATE TABLE auth_rules_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
  );
  INSERT INTO auth_rules_generation (id, generation) VALUES (1, 0);
  CREATE TRIGGER auth_rules_inserted AFTER INSERT ON auth_rules
    BEGIN UPDATE auth_rules_generation SET generation = generation + 1; END;
  CREATE TRIGGER auth_rules_updated AFTER UPDATE ON auth_rules
    BEGIN UPDATE auth_rules_generation SET generation = generation + 1; END;
  CREATE TRIGGER auth_rules_deleted AFTER DELETE ON auth_rules
    BEGIN UPDATE auth_rules_generation SET generation = generation + 1; END;
  `,
  // 4: uploads as immutable parts with the running hash saved beside them, and blob lifecycle
  // states (see BlobState in metadata-store.ts). An upload from before keeps its single data file
  // as its one part; its hash is unknown, so its commit reads the bytes again.
  `
  ALTER TABLE uploads ADD COLUMN parts TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE uploads ADD COLUMN hash_state BLOB;
  UPDATE uploads SET parts = json_array(json_object('name', 'data', 'size', size)) WHERE size > 0;
  ALTER TABLE blobs ADD COLUMN state TEXT NOT NULL DEFAULT 'present'
    CHECK (state IN ('pending', 'present', 'deleting', 'sweeping', 'quarantined'));
  ALTER TABLE blobs ADD COLUMN state_since INTEGER NOT NULL DEFAULT 0;
  UPDATE blobs SET state_since = created_at;
  CREATE INDEX blobs_by_state ON blobs(state, state_since) WHERE state <> 'present';
  `,
  // 5: the outbox (every change, written in the transaction that makes it, for notifications,
  // search and metrics to consume at their own pace) and the job queue with leases.
  `
  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    action TEXT NOT NULL,
    repository TEXT,
    event TEXT NOT NULL
  );
  CREATE TABLE outbox_consumers (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT UNIQUE,
    payload TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL CHECK (state IN ('ready', 'running', 'done', 'failed')),
    run_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    repeat_ms INTEGER,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX jobs_due ON jobs(state, run_at);
  `,
  // 6: failed-login counters, shared by every serving process so that the throttle's limits hold
  // for all of them together. Keys are hashes (src/auth/throttle.ts); rows older than the window
  // are deleted as new failures come in.
  `
  CREATE TABLE auth_login_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    started_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX auth_login_failures_by_start ON auth_login_failures(started_at);
  `,
  // 7: garbage collection. When a blob or manifest was last pushed, mounted or linked (a
  // collector leaves anything touched within its delay alone), and named leases so that one
  // collector runs at a time across processes and replicas.
  `
  ALTER TABLE blobs ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
  UPDATE blobs SET touched_at = max(created_at, state_since);
  ALTER TABLE manifests ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
  UPDATE manifests SET touched_at = created_at;
  CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 8: storage quotas per repository or namespace (a name ending in `/`), from the
  // configuration file or the admin API, and the one definition of a repository's usage that
  // enforcement and `wharf admin usage` both read (see RepositoryUsage in metadata-store.ts).
  // Only new objects: safe to apply in any order with other migrations.
  `
  CREATE TABLE quotas (
    name TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('config', 'api')),
    limit_bytes INTEGER NOT NULL CHECK (limit_bytes >= 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (name, source)
  ) WITHOUT ROWID;
  CREATE VIEW repository_usage AS
    SELECT r.id AS repository_id,
           r.name AS name,
           coalesce((SELECT sum(b.size) FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = r.id), 0)
             + coalesce((SELECT sum(m.size) FROM manifests m WHERE m.repository_id = r.id), 0) AS bytes,
           (SELECT count(*) FROM repository_blobs rb WHERE rb.repository_id = r.id) AS blobs,
           (SELECT count(*) FROM manifests m WHERE m.repository_id = r.id) AS manifests
      FROM repositories r;
  `,
  // 9: immutable-tag rules (from config.yml and the admin API, read inside every transaction that
  // moves or removes a tag), and the digest a tag pointed at before each recorded move, indexed
  // by digest so that a collector can tell which manifests a restore may still need.
  `
  CREATE TABLE immutable_tag_rules (
    id INTEGER PRIMARY KEY,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('config', 'api')),
    created_at INTEGER NOT NULL,
    created_by TEXT,
    UNIQUE (source, repository, tag)
  );
  ALTER TABLE tag_history ADD COLUMN previous TEXT;
  UPDATE tag_history SET previous = digest WHERE action = 'delete';
  CREATE INDEX tag_history_by_digest ON tag_history(repository_id, digest, at);
  CREATE INDEX tag_history_by_previous ON tag_history(repository_id, previous, at) WHERE previous IS NOT NULL;
  `,
  // 10: retention. When each manifest was last pulled (written in batches by the serving
  // processes, see src/registry/pull-times.ts), and retention policies from config.yml and
  // the admin API (their rules as JSON, see src/metadata/retention-policies.ts).
  `
  ALTER TABLE manifests ADD COLUMN pulled_at INTEGER;
  CREATE TABLE retention_policies (
    id INTEGER PRIMARY KEY,
    repositories TEXT NOT NULL,
    rules TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('config', 'api')),
    created_at INTEGER NOT NULL,
    created_by TEXT
  );
  `,
  // 11: imports of another registry's storage (a registry:2 root): which were begun, which
  // finished, and which repositories of each are wholly in, so that an interrupted import
  // resumes where it stopped. Only new objects: safe to apply in any order with other migrations.
  `
  CREATE TABLE IF NOT EXISTS storage_imports (
    source TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    finished_at INTEGER
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS storage_import_repositories (
    source TEXT NOT NULL,
    repository TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    PRIMARY KEY (source, repository)
  ) WITHOUT ROWID;
  `,
  // 12: notification deliveries (docs/notifications.md): each endpoint's failures on the entry
  // it is stuck at, and the entries it gave up on (parked) until an operator replays them. The
  // endpoints' positions are outbox consumers. Only new objects: safe in any order.
  `
  CREATE TABLE IF NOT EXISTS notification_status (
    endpoint TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS notification_parked (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    outbox_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    parked_at INTEGER NOT NULL
  );
  CREATE INDEX IF NOT EXISTS notification_parked_by_endpoint ON notification_parked(endpoint, id);
  `,
  // 13: search, stars and READMEs (docs/search.md). A full-text index over each repository's
  // name and description (rowid = repository id), kept by triggers for names and by the store for
  // descriptions; the description the newest tagged manifest gave, the owner's README, and who
  // starred what; existing repositories get the description their newest tagged manifest's
  // annotation gives (config labels wait for the next push). Only new objects: safe in any order.
  `
  CREATE TABLE IF NOT EXISTS repository_profiles (
    repository_id INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    image_description TEXT,
    readme TEXT,
    readme_updated_at INTEGER,
    readme_updated_by TEXT
  );
  CREATE TABLE IF NOT EXISTS repository_stars (
    repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    user TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (repository_id, user)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS repository_stars_by_user ON repository_stars(user, repository_id);
  CREATE VIRTUAL TABLE IF NOT EXISTS repository_search USING fts5(name, description, tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3');
  INSERT INTO repository_search (rowid, name, description) SELECT id, name, '' FROM repositories WHERE id NOT IN (SELECT rowid FROM repository_search);
  CREATE TRIGGER IF NOT EXISTS repository_search_add AFTER INSERT ON repositories BEGIN
    INSERT INTO repository_search (rowid, name, description) VALUES (new.id, new.name, '');
  END;
  CREATE TRIGGER IF NOT EXISTS repository_search_remove AFTER DELETE ON repositories BEGIN
    DELETE FROM repository_search WHERE rowid = old.id;
  END;
  CREATE INDEX IF NOT EXISTS tags_by_update ON tags(repository_id, updated_at);
  INSERT OR IGNORE INTO repository_profiles (repository_id, image_description)
    SELECT id, description FROM (
      SELECT r.id AS id, (
        SELECT json_extract(m.annotations, '$."org.opencontainers.image.description"')
          FROM tags t JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
         WHERE t.repository_id = r.id ORDER BY t.updated_at DESC LIMIT 1) AS description
      FROM repositories r)
    WHERE description IS NOT NULL AND trim(description) <> '';
  UPDATE repository_search SET description = (SELECT substr(image_description, 1, 200) FROM repository_profiles p WHERE p.repository_id = repository_search.rowid)
    WHERE rowid IN (SELECT repository_id FROM repository_profiles WHERE image_description IS NOT NULL);
  `,
];
