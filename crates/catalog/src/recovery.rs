//! What recovery reads from the catalog: an entity's snapshots (one per
//! backup, made of one run per sub-service), the backup calendar of F-E1,
//! the snapshot to restore "as of" a date, and the per-item log of restore
//! and export jobs.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::db::{Catalog, RowExt, args, q, u64_to_i64};
use crate::error::{Error, Result};
use crate::runs::BackupRun;
use crate::types::{AccountId, EntityId, JobId, RunOutcome};

/// One backup of an entity: the runs of its sub-services that wrote one
/// vault snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntitySnapshot {
    /// The vault snapshot.
    pub snapshot_id: String,
    /// When it was taken: the end of its last run.
    pub time: DateTime<Utc>,
    /// The worst outcome of its runs.
    pub outcome: RunOutcome,
    /// Its runs, by sub-service name.
    pub runs: Vec<BackupRun>,
}

impl EntitySnapshot {
    /// Whether it can be restored from: every part is usable (success or
    /// partial); failed parts wrote nothing new.
    pub fn is_restorable(&self) -> bool {
        matches!(self.outcome, RunOutcome::Success | RunOutcome::Partial)
    }
}

/// One day of the backup calendar (F-E1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalendarDay {
    /// The day, in the caller's time zone.
    pub day: NaiveDate,
    /// The worst outcome of the day's backups.
    pub outcome: RunOutcome,
    /// The day's backups, earliest first.
    pub snapshots: Vec<CalendarSnapshot>,
}

/// A backup on the calendar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalendarSnapshot {
    /// The vault snapshot.
    pub snapshot_id: String,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// Its worst outcome.
    pub outcome: RunOutcome,
}

/// One line of a restore or export job's per-item log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobItem {
    /// Order within the job.
    pub seq: u64,
    /// Snapshot path.
    pub path: String,
    /// What a person calls it.
    pub name: String,
    /// restored, overwritten, skipped, failed, exported.
    pub outcome: String,
    /// Why, or where it went.
    pub detail: Option<String>,
    /// Bytes written.
    pub bytes: u64,
}

/// The largest page of job items returned at once.
pub const MAX_JOB_ITEMS_PAGE: u32 = 1000;

fn severity(o: RunOutcome) -> u8 {
    match o {
        RunOutcome::Success => 0,
        RunOutcome::Partial => 1,
        RunOutcome::Cancelled => 2,
        RunOutcome::Failed => 3,
    }
}

impl Catalog {
    /// The snapshots of an entity whose runs started in `[from, to)`,
    /// newest first. Runs without a snapshot (failed before committing,
    /// still running) are left out.
    pub async fn entity_snapshots(
        &self,
        account: AccountId,
        entity: EntityId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<EntitySnapshot>> {
        let runs = self.runs_for_entity(account, entity, from, to).await?;
        let mut by_snapshot: BTreeMap<String, Vec<BackupRun>> = BTreeMap::new();
        for r in runs {
            if let (Some(s), Some(_)) = (r.snapshot_id.clone(), r.outcome) {
                by_snapshot.entry(s).or_default().push(r);
            }
        }
        let mut out: Vec<EntitySnapshot> = by_snapshot
            .into_iter()
            .filter_map(|(snapshot_id, mut runs)| {
                runs.sort_by(|a, b| a.sub_service.as_str().cmp(b.sub_service.as_str()));
                let time = runs
                    .iter()
                    .map(|r| r.finished_at.unwrap_or(r.started_at))
                    .max()?;
                let outcome = runs
                    .iter()
                    .filter_map(|r| r.outcome)
                    .max_by_key(|o| severity(*o))?;
                Some(EntitySnapshot {
                    snapshot_id,
                    time,
                    outcome,
                    runs,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.time
                .cmp(&a.time)
                .then_with(|| b.snapshot_id.cmp(&a.snapshot_id))
        });
        Ok(out)
    }

    /// One snapshot of the entity, or NotFound when the entity has no such
    /// snapshot in this account (so an id from another entity or account
    /// can never be used to read its data).
    pub async fn entity_snapshot(
        &self,
        account: AccountId,
        entity: EntityId,
        snapshot_id: &str,
    ) -> Result<EntitySnapshot> {
        self.entity_snapshots(account, entity, DateTime::UNIX_EPOCH, far_future())
            .await?
            .into_iter()
            .find(|s| s.snapshot_id == snapshot_id)
            .ok_or(Error::NotFound("snapshot"))
    }

    /// The newest restorable snapshot taken at or before `at` ("restore as
    /// of this date"), or NotFound when there is none.
    pub async fn snapshot_at(
        &self,
        account: AccountId,
        entity: EntityId,
        at: DateTime<Utc>,
    ) -> Result<EntitySnapshot> {
        self.entity_snapshots(account, entity, DateTime::UNIX_EPOCH, far_future())
            .await?
            .into_iter()
            .find(|s| s.time <= at && s.is_restorable())
            .ok_or(Error::NotFound("backup at or before that time"))
    }

    /// The backup calendar of an entity (F-E1): the days in `[from, to)`
    /// with backups, each with its backups by time and its worst outcome.
    /// Days are cut in the caller's time zone `tz`.
    pub async fn backup_calendar(
        &self,
        account: AccountId,
        entity: EntityId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tz: FixedOffset,
    ) -> Result<Vec<CalendarDay>> {
        let mut days: BTreeMap<NaiveDate, Vec<CalendarSnapshot>> = BTreeMap::new();
        for s in self.entity_snapshots(account, entity, from, to).await? {
            days.entry(s.time.with_timezone(&tz).date_naive())
                .or_default()
                .push(CalendarSnapshot {
                    snapshot_id: s.snapshot_id,
                    time: s.time,
                    outcome: s.outcome,
                });
        }
        Ok(days
            .into_iter()
            .filter_map(|(day, mut snapshots)| {
                snapshots.sort_by_key(|s| s.time);
                let outcome = snapshots
                    .iter()
                    .map(|s| s.outcome)
                    .max_by_key(|o| severity(*o))?;
                Some(CalendarDay {
                    day,
                    outcome,
                    snapshots,
                })
            })
            .collect())
    }

    /// Appends to a job's per-item log, after what is already there (a
    /// reclaimed job continues its log).
    pub async fn append_job_items(
        &self,
        account: AccountId,
        job: JobId,
        items: &[JobItem],
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        // The job must be the account's: an item log is never attached to
        // another account's job.
        self.get_job(account, job).await?;
        let mut tx = self.begin_write().await?;
        let next: i64 = q(
            "SELECT COALESCE(MAX(seq) + 1, 0) AS next FROM job_items WHERE job_id = $1",
            args![job.to_string()],
        )
        .query()
        .fetch_one(&mut *tx)
        .await?
        .int("next")?;
        for (i, item) in items.iter().enumerate() {
            q(
                "INSERT INTO job_items (account_id, job_id, seq, path, name, outcome, detail, bytes) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                args![
                    account.to_string(),
                    job.to_string(),
                    next + i as i64,
                    item.path.clone(),
                    item.name.clone(),
                    item.outcome.clone(),
                    item.detail.clone(),
                    u64_to_i64(item.bytes, "bytes")?
                ],
            )
            .query()
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A page of a job's per-item log, in order, optionally only the items
    /// with one outcome ("failed").
    pub async fn job_items(
        &self,
        account: AccountId,
        job: JobId,
        outcome: Option<&str>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<JobItem>> {
        if limit == 0 || limit > MAX_JOB_ITEMS_PAGE {
            return Err(Error::InvalidInput(format!(
                "a page holds 1 to {MAX_JOB_ITEMS_PAGE} items"
            )));
        }
        let mut sql = String::from(
            "SELECT seq, path, name, outcome, detail, bytes FROM job_items WHERE account_id = $1 AND job_id = $2",
        );
        let mut a = args![account.to_string(), job.to_string()];
        if let Some(o) = outcome {
            sql.push_str(" AND outcome = $3");
            a.extend(args![o.to_string()]);
        }
        let n = a.len();
        sql.push_str(&format!(" ORDER BY seq LIMIT ${} OFFSET ${}", n + 1, n + 2));
        a.extend(args![i64::from(limit), u64_to_i64(offset, "offset")?]);
        let rows = q(&sql, a).query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(JobItem {
                    seq: r.uint("seq")?,
                    path: r.text("path")?,
                    name: r.text("name")?,
                    outcome: r.text("outcome")?,
                    detail: r.opt_text("detail")?,
                    bytes: r.uint("bytes")?,
                })
            })
            .collect()
    }
}

/// Later than any backup ("no upper bound" for run queries).
fn far_future() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
