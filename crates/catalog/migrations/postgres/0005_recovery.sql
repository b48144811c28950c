-- Lifeboat catalog, schema version 5: recovery.
--
-- job_items is the per-item log of restore and export jobs (SPEC F-E4..F-E8,
-- F-F): one row per item the job handled, in order, so a person can see what
-- was restored, overwritten, skipped or failed and why. A job that is
-- reclaimed after a crash appends after the highest seq it finds.
--
-- users.permissions holds a custom user's permissions (F-H2) as a JSON array
-- of permission names; NULL means the role's defaults. Identical in both
-- dialects.

CREATE TABLE job_items (
    account_id  TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    path        TEXT NOT NULL,
    name        TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    bytes       BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq),
    FOREIGN KEY (job_id) REFERENCES jobs (id) ON DELETE CASCADE
);

CREATE INDEX job_items_account ON job_items (account_id, job_id, outcome);

ALTER TABLE users ADD COLUMN permissions TEXT;
