-- Lifeboat catalog, schema version 3: the scheduler's memory.
--
-- The last slot (BIGINT microseconds, UTC) each task was scheduled for, per
-- kind of scheduled work ('backup', 'discovery'). A scheduler claims a slot
-- by moving last_slot forward in one statement, so two schedulers (or one
-- restarted) never enqueue the same slot twice. Identical in both dialects.

CREATE TABLE schedule_slots (
    account_id  TEXT NOT NULL,
    task_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    last_slot   BIGINT NOT NULL,
    PRIMARY KEY (account_id, task_id, kind),
    FOREIGN KEY (account_id, task_id) REFERENCES backup_tasks (account_id, id) ON DELETE CASCADE
);
