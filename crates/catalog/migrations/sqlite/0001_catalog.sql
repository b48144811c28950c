-- Lifeboat catalog, schema version 1 (SQLite).
--
-- Kept column-for-column identical to migrations/postgres/0001_catalog.sql; the
-- only dialect difference is the binary type (BLOB here, BYTEA there).
-- Conventions shared by both backends so that one set of queries serves both:
--   * ids are UUID v4 strings (TEXT);
--   * times are BIGINT microseconds since the Unix epoch, UTC;
--   * flags are BIGINT 0/1;
--   * JSON documents are TEXT;
--   * enums are TEXT in snake_case, checked when read back.
-- Every child table carries account_id and references its parent through
-- (account_id, id), so a row can never point at another account's row.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    region      TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE connections (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    tenant_id      TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    client_secret  BLOB NOT NULL,
    graph_url      TEXT NOT NULL,
    login_url      TEXT NOT NULL,
    status         TEXT NOT NULL,
    status_reason  TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    UNIQUE (account_id, id),
    UNIQUE (account_id, tenant_id)
);

CREATE TABLE backup_tasks (
    id                       TEXT PRIMARY KEY,
    account_id               TEXT NOT NULL,
    connection_id            TEXT NOT NULL,
    service                  TEXT NOT NULL,
    name                     TEXT NOT NULL,
    index_for_search         BIGINT NOT NULL,
    backup_unlicensed        BIGINT NOT NULL,
    auto_activate_new        BIGINT NOT NULL,
    archived_retention_days  BIGINT,
    frequency                TEXT NOT NULL,
    backup_hour_utc          BIGINT NOT NULL CHECK (backup_hour_utc BETWEEN 0 AND 23),
    region                   TEXT NOT NULL,
    retention_unit           TEXT,
    retention_value          BIGINT,
    status                   TEXT NOT NULL,
    deletion_requested_at    BIGINT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, connection_id) REFERENCES connections(account_id, id)
);
CREATE INDEX backup_tasks_account ON backup_tasks(account_id, created_at);

CREATE TABLE entities (
    id                     TEXT PRIMARY KEY,
    account_id             TEXT NOT NULL,
    task_id                TEXT NOT NULL,
    kind                   TEXT NOT NULL,
    external_id            TEXT NOT NULL,
    name                   TEXT NOT NULL,
    email_or_url           TEXT,
    entity_type            TEXT NOT NULL,
    properties             TEXT NOT NULL,
    status                 TEXT NOT NULL,
    active                 BIGINT NOT NULL,
    last_backup_at         BIGINT,
    backup_size_bytes      BIGINT NOT NULL,
    last_outcome           TEXT,
    deleted_in_tenant_at   BIGINT,
    deletion_requested_at  BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    UNIQUE (account_id, id),
    UNIQUE (task_id, external_id),
    FOREIGN KEY (account_id, task_id) REFERENCES backup_tasks(account_id, id) ON DELETE CASCADE
);
CREATE INDEX entities_account_task ON entities(account_id, task_id, name);

CREATE TABLE tags (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (account_id, id),
    UNIQUE (account_id, name)
);

CREATE TABLE entity_tags (
    account_id  TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    tag_id      TEXT NOT NULL,
    PRIMARY KEY (entity_id, tag_id),
    FOREIGN KEY (account_id, entity_id) REFERENCES entities(account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, tag_id) REFERENCES tags(account_id, id) ON DELETE CASCADE
);
CREATE INDEX entity_tags_tag ON entity_tags(tag_id);

CREATE TABLE activation_rules (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL,
    task_id            TEXT NOT NULL,
    kind               TEXT NOT NULL,
    definition         TEXT NOT NULL,
    mode               TEXT NOT NULL,
    deactivation       TEXT NOT NULL,
    last_evaluated_at  BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, task_id) REFERENCES backup_tasks(account_id, id) ON DELETE CASCADE
);
CREATE INDEX activation_rules_task ON activation_rules(account_id, task_id);

CREATE TABLE backup_runs (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    task_id        TEXT NOT NULL,
    entity_id      TEXT NOT NULL,
    sub_service    TEXT NOT NULL,
    snapshot_id    TEXT,
    started_at     BIGINT NOT NULL,
    finished_at    BIGINT,
    outcome        TEXT,
    items_new      BIGINT NOT NULL,
    items_changed  BIGINT NOT NULL,
    items_deleted  BIGINT NOT NULL,
    items_failed   BIGINT NOT NULL,
    bytes_read     BIGINT NOT NULL,
    bytes_stored   BIGINT NOT NULL,
    error_summary  TEXT,
    delta_state    TEXT,
    UNIQUE (account_id, id),
    FOREIGN KEY (account_id, task_id) REFERENCES backup_tasks(account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, entity_id) REFERENCES entities(account_id, id) ON DELETE CASCADE
);
CREATE INDEX backup_runs_entity ON backup_runs(account_id, entity_id, started_at);
CREATE INDEX backup_runs_latest ON backup_runs(account_id, entity_id, sub_service, outcome, started_at);

CREATE TABLE backup_run_failures (
    account_id  TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    item_id     TEXT NOT NULL,
    path        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq),
    FOREIGN KEY (account_id, run_id) REFERENCES backup_runs(account_id, id) ON DELETE CASCADE
);

CREATE TABLE activity (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    activity    TEXT NOT NULL,
    service     TEXT,
    status      TEXT NOT NULL,
    task_id     TEXT,
    task_name   TEXT,
    entity_id   TEXT,
    item        TEXT,
    job_id      TEXT,
    details     TEXT NOT NULL
);
CREATE INDEX activity_account_at ON activity(account_id, at);

CREATE TABLE jobs (
    id                    TEXT PRIMARY KEY,
    account_id            TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind                  TEXT NOT NULL,
    payload               TEXT NOT NULL,
    status                TEXT NOT NULL,
    priority              BIGINT NOT NULL,
    not_before            BIGINT NOT NULL,
    attempts              BIGINT NOT NULL,
    max_attempts          BIGINT NOT NULL,
    lease_owner           TEXT,
    lease_expires_at      BIGINT,
    heartbeat_at          BIGINT,
    done_items            BIGINT NOT NULL,
    total_items           BIGINT,
    done_bytes            BIGINT NOT NULL,
    total_bytes           BIGINT,
    progress_message      TEXT,
    cancel_requested      BIGINT NOT NULL,
    result                TEXT,
    error                 TEXT,
    dedupe_key            TEXT,
    service               TEXT,
    task_id               TEXT,
    entity_id             TEXT,
    initiator             TEXT,
    title                 TEXT,
    created_at            BIGINT NOT NULL,
    started_at            BIGINT,
    finished_at           BIGINT
);
CREATE INDEX jobs_claim ON jobs(status, priority, not_before);
CREATE INDEX jobs_account_created ON jobs(account_id, created_at);
-- At most one pending/running job per (account, dedupe key): one entity is
-- never backed up twice at once.
CREATE UNIQUE INDEX jobs_active_dedupe ON jobs(account_id, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'running');
