//! Backup runs: one per entity and sub-service and backup, with counts,
//! item failures, and the delta state the run produced.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::db::{Catalog, RowExt, args, from_micros, micros, q, to_json, u64_to_i64};
use crate::error::{Error, Result};
use crate::types::{AccountId, EntityId, RunId, RunOutcome, SubService, TaskId};

const DAY_MICROS: i64 = 86_400_000_000;

/// Item counts and bytes of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounts {
    /// New items stored.
    pub items_new: u64,
    /// Changed items stored.
    pub items_changed: u64,
    /// Items recorded as deleted.
    pub items_deleted: u64,
    /// Items that failed.
    pub items_failed: u64,
    /// Bytes read from Microsoft 365.
    pub bytes_read: u64,
    /// Bytes added to the vault (after dedup and compression).
    pub bytes_stored: u64,
}

/// One failed item of a run (F-D6: named in the log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    /// Graph id of the item.
    pub item_id: String,
    /// Where it lives (folder path, drive path).
    pub path: String,
    /// Why it failed, in words a person understands.
    pub reason: String,
}

/// A backup run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupRun {
    /// Id.
    pub id: RunId,
    /// Owning account.
    pub account_id: AccountId,
    /// Task.
    pub task_id: TaskId,
    /// Entity.
    pub entity_id: EntityId,
    /// Sub-service.
    pub sub_service: SubService,
    /// The vault snapshot it produced.
    pub snapshot_id: Option<String>,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End (None while running).
    pub finished_at: Option<DateTime<Utc>>,
    /// Outcome (None while running).
    pub outcome: Option<RunOutcome>,
    /// Counts.
    pub counts: RunCounts,
    /// Why it failed, for a person.
    pub error_summary: Option<String>,
    /// The delta links the run produced (kept with the snapshot).
    pub delta_state: Option<serde_json::Value>,
}

/// The end of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunFinish {
    /// Snapshot id from the vault.
    pub snapshot_id: Option<String>,
    /// Outcome (required).
    pub outcome: Option<RunOutcome>,
    /// Counts.
    pub counts: RunCounts,
    /// Summary of the error, for a person.
    pub error_summary: Option<String>,
    /// Failed items.
    pub failures: Vec<ItemFailure>,
    /// Delta state.
    pub delta_state: Option<serde_json::Value>,
}

/// Items backed up (new + changed) on one day for one sub-service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyItems {
    /// The day (UTC).
    pub day: NaiveDate,
    /// The sub-service.
    pub sub_service: SubService,
    /// New + changed items.
    pub items: u64,
}

const COLS: &str = "id, account_id, task_id, entity_id, sub_service, snapshot_id, started_at, finished_at, outcome, \
    items_new, items_changed, items_deleted, items_failed, bytes_read, bytes_stored, error_summary, delta_state";

fn run_from_row(r: &AnyRow) -> Result<BackupRun> {
    Ok(BackupRun {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        task_id: r.parse("task_id")?,
        entity_id: r.parse("entity_id")?,
        sub_service: r.parse("sub_service")?,
        snapshot_id: r.opt_text("snapshot_id")?,
        started_at: r.time("started_at")?,
        finished_at: r.opt_time("finished_at")?,
        outcome: r.opt_parse("outcome")?,
        counts: RunCounts {
            items_new: r.uint("items_new")?,
            items_changed: r.uint("items_changed")?,
            items_deleted: r.uint("items_deleted")?,
            items_failed: r.uint("items_failed")?,
            bytes_read: r.uint("bytes_read")?,
            bytes_stored: r.uint("bytes_stored")?,
        },
        error_summary: r.opt_text("error_summary")?,
        delta_state: r.opt_json("delta_state")?,
    })
}

impl Catalog {
    /// Record the start of a run of an entity's sub-service (now).
    pub async fn start_run(
        &self,
        account: AccountId,
        entity: EntityId,
        sub_service: SubService,
    ) -> Result<BackupRun> {
        self.start_run_at(account, entity, sub_service, self.now())
            .await
    }

    /// Record the start of a run at a given time (imports, tests).
    pub async fn start_run_at(
        &self,
        account: AccountId,
        entity: EntityId,
        sub_service: SubService,
        started_at: DateTime<Utc>,
    ) -> Result<BackupRun> {
        let e = self.get_entity(account, entity).await?;
        let run = BackupRun {
            id: RunId::random(),
            account_id: account,
            task_id: e.task_id,
            entity_id: entity,
            sub_service,
            snapshot_id: None,
            started_at: from_micros(micros(started_at))?,
            finished_at: None,
            outcome: None,
            counts: RunCounts::default(),
            error_summary: None,
            delta_state: None,
        };
        q(
            &format!(
                "INSERT INTO backup_runs ({COLS}) VALUES ($1, $2, $3, $4, $5, NULL, $6, NULL, NULL, 0, 0, 0, 0, 0, 0, NULL, NULL)"
            ),
            args![
                run.id.to_string(),
                account.to_string(),
                run.task_id.to_string(),
                entity.to_string(),
                sub_service.as_str(),
                micros(run.started_at)
            ],
        )
        .query()
        .execute(&self.pool)
        .await?;
        Ok(run)
    }

    /// Record the end of a run (now), with its failures.
    pub async fn finish_run(
        &self,
        account: AccountId,
        run: RunId,
        finish: &RunFinish,
    ) -> Result<BackupRun> {
        self.finish_run_at(account, run, finish, self.now()).await
    }

    /// Record the end of a run at a given time. A run is finished once.
    pub async fn finish_run_at(
        &self,
        account: AccountId,
        run: RunId,
        f: &RunFinish,
        finished_at: DateTime<Utc>,
    ) -> Result<BackupRun> {
        let outcome = f
            .outcome
            .ok_or_else(|| Error::InvalidInput("a finished run needs an outcome".into()))?;
        let c = &f.counts;
        let delta = f.delta_state.as_ref().map(to_json).transpose()?;
        let mut tx = self.begin_write().await?;
        let done = q(
            "UPDATE backup_runs SET snapshot_id = $1, finished_at = $2, outcome = $3, items_new = $4, items_changed = $5, \
             items_deleted = $6, items_failed = $7, bytes_read = $8, bytes_stored = $9, error_summary = $10, delta_state = $11 \
             WHERE account_id = $12 AND id = $13 AND outcome IS NULL",
            args![
                f.snapshot_id.clone(),
                micros(finished_at),
                outcome.as_str(),
                u64_to_i64(c.items_new, "items_new")?,
                u64_to_i64(c.items_changed, "items_changed")?,
                u64_to_i64(c.items_deleted, "items_deleted")?,
                u64_to_i64(c.items_failed, "items_failed")?,
                u64_to_i64(c.bytes_read, "bytes_read")?,
                u64_to_i64(c.bytes_stored, "bytes_stored")?,
                f.error_summary.clone(),
                delta,
                account.to_string(),
                run.to_string()
            ],
        )
        .query()
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("unfinished run"));
        }
        for (seq, fail) in f.failures.iter().enumerate() {
            q(
                "INSERT INTO backup_run_failures (account_id, run_id, seq, item_id, path, reason) VALUES ($1, $2, $3, $4, $5, $6)",
                args![
                    account.to_string(),
                    run.to_string(),
                    seq as i64,
                    fail.item_id.clone(),
                    fail.path.clone(),
                    fail.reason.clone()
                ],
            )
            .query()
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get_run(account, run).await
    }

    /// A run of the account.
    pub async fn get_run(&self, account: AccountId, id: RunId) -> Result<BackupRun> {
        let row = q(
            &format!("SELECT {COLS} FROM backup_runs WHERE account_id = $1 AND id = $2"),
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("run"))?;
        run_from_row(&row)
    }

    /// The failed items of a run, in the order they were recorded.
    pub async fn run_failures(&self, account: AccountId, run: RunId) -> Result<Vec<ItemFailure>> {
        // Scoping: a run of another account is not found (rather than empty).
        self.get_run(account, run).await?;
        let rows = q(
            "SELECT item_id, path, reason FROM backup_run_failures WHERE account_id = $1 AND run_id = $2 ORDER BY seq",
            args![account.to_string(), run.to_string()],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ItemFailure {
                    item_id: r.text("item_id")?,
                    path: r.text("path")?,
                    reason: r.text("reason")?,
                })
            })
            .collect()
    }

    /// Runs of an entity that started in `[from, to)`, oldest first (the
    /// backup calendar of F-E1).
    pub async fn runs_for_entity(
        &self,
        account: AccountId,
        entity: EntityId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<BackupRun>> {
        let rows = q(
            &format!(
                "SELECT {COLS} FROM backup_runs WHERE account_id = $1 AND entity_id = $2 AND started_at >= $3 AND started_at < $4 \
                 ORDER BY started_at, id"
            ),
            args![account.to_string(), entity.to_string(), micros(from), micros(to)],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// The latest successful run of an entity's sub-service: outcome Success
    /// or Partial (a partial run still produced a usable snapshot; its failed
    /// items are retried next time).
    pub async fn latest_successful_run(
        &self,
        account: AccountId,
        entity: EntityId,
        sub_service: SubService,
    ) -> Result<Option<BackupRun>> {
        let row = q(
            &format!(
                "SELECT {COLS} FROM backup_runs WHERE account_id = $1 AND entity_id = $2 AND sub_service = $3 \
                 AND outcome IN ('success', 'partial') ORDER BY started_at DESC, id DESC LIMIT 1"
            ),
            args![account.to_string(), entity.to_string(), sub_service.as_str()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    /// The latest successful run of each sub-service of an entity (the
    /// tiles of F-C7), by sub-service name.
    pub async fn latest_successful_runs(
        &self,
        account: AccountId,
        entity: EntityId,
    ) -> Result<Vec<BackupRun>> {
        let rows = q(
            &format!(
                "SELECT {COLS} FROM backup_runs r WHERE account_id = $1 AND entity_id = $2 AND outcome IN ('success', 'partial') \
                 AND NOT EXISTS (SELECT 1 FROM backup_runs n WHERE n.account_id = r.account_id AND n.entity_id = r.entity_id \
                   AND n.sub_service = r.sub_service AND n.outcome IN ('success', 'partial') \
                   AND (n.started_at > r.started_at OR (n.started_at = r.started_at AND n.id > r.id))) \
                 ORDER BY sub_service"
            ),
            args![account.to_string(), entity.to_string()],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Items backed up (new + changed) per UTC day and sub-service over the
    /// `days` days ending today (F-C7). Days without runs are absent.
    pub async fn daily_items(
        &self,
        account: AccountId,
        entity: EntityId,
        days: u32,
    ) -> Result<Vec<DailyItems>> {
        if !(1..=366).contains(&days) {
            return Err(Error::InvalidInput(format!(
                "days must be 1..=366, got {days}"
            )));
        }
        let today = micros(self.now()).div_euclid(DAY_MICROS);
        let first_day = today - i64::from(days) + 1;
        let rows = q(
            // The day number is integer division of epoch microseconds, the
            // same in both dialects; the literal is DAY_MICROS.
            "SELECT started_at / 86400000000 AS day, sub_service, CAST(SUM(items_new + items_changed) AS BIGINT) AS items \
             FROM backup_runs WHERE account_id = $1 AND entity_id = $2 AND started_at >= $3 AND started_at < $4 \
             AND outcome IS NOT NULL \
             GROUP BY started_at / 86400000000, sub_service ORDER BY day, sub_service",
            args![account.to_string(), entity.to_string(), first_day * DAY_MICROS, (today + 1) * DAY_MICROS],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let day = r.int("day")?;
                let date = from_micros(day * DAY_MICROS)?.date_naive();
                Ok(DailyItems {
                    day: date,
                    sub_service: r.parse("sub_service")?,
                    items: r.uint("items")?,
                })
            })
            .collect()
    }
}
