//! The job queue: leased jobs with heartbeat, progress, cancel, retry with
//! backoff, and reclaiming of jobs whose worker died.
//!
//! A worker [`claim`](Catalog::claim_job)s a job and receives a [`Lease`];
//! every later call for that job presents the lease. The lease names the
//! worker *and* the attempt number, so a worker whose lease expired (and
//! whose job was reclaimed and claimed again, possibly by the same worker
//! id) gets [`Error::LeaseLost`] instead of overwriting the new attempt.
//!
//! Claiming and reclaiming work across accounts (workers serve every
//! account); everything else is scoped by account.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::db::{Backend, Catalog, RowExt, Sql, args, micros, q, to_json, u64_to_i64};
use crate::error::{Error, Result};
use crate::types::{AccountId, EntityId, JobId, JobKind, JobStatus, Service, TaskId};

/// Largest page of jobs a listing returns.
pub const MAX_JOB_PAGE: u32 = 1000;

/// How far back the jobs page looks (F-F1).
pub const JOBS_PAGE_WINDOW: chrono::Duration = chrono::Duration::days(7);

/// Progress of a job.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Items done.
    pub done_items: u64,
    /// Items in total, when known.
    pub total_items: Option<u64>,
    /// Bytes done.
    pub done_bytes: u64,
    /// Bytes in total, when known.
    pub total_bytes: Option<u64>,
    /// What is happening now, for a person.
    pub message: Option<String>,
}

/// A job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// Owning account.
    pub account_id: AccountId,
    /// What it does.
    pub kind: JobKind,
    /// Its parameters (kind-specific JSON).
    pub payload: serde_json::Value,
    /// Lifecycle status.
    pub status: JobStatus,
    /// Higher runs first.
    pub priority: i32,
    /// Not claimable before this time (retry backoff, scheduling).
    pub not_before: DateTime<Utc>,
    /// Claims so far.
    pub attempts: u32,
    /// Claims allowed before the job fails for good.
    pub max_attempts: u32,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// When the lease runs out unless extended.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Last heartbeat.
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Progress (kept across attempts, so a reclaimed job resumes).
    pub progress: JobProgress,
    /// A cancel was requested.
    pub cancel_requested: bool,
    /// Result (kind-specific JSON), when succeeded.
    pub result: Option<serde_json::Value>,
    /// Last error, for a person.
    pub error: Option<String>,
    /// At most one pending/running job per account has a given key.
    pub dedupe_key: Option<String>,
    /// Service, for filtering.
    pub service: Option<Service>,
    /// Task, for filtering.
    pub task_id: Option<TaskId>,
    /// Entity, for filtering.
    pub entity_id: Option<EntityId>,
    /// Who started it (user email, "schedule", ...).
    pub initiator: Option<String>,
    /// Display name.
    pub title: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// First claimed.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished (succeeded, failed or cancelled).
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job to enqueue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewJob {
    /// What it does.
    pub kind: JobKind,
    /// Parameters.
    pub payload: serde_json::Value,
    /// Higher runs first (default 0).
    pub priority: i32,
    /// Not before this time (default: now).
    pub not_before: Option<DateTime<Utc>>,
    /// Attempts allowed (default 3).
    pub max_attempts: u32,
    /// Deduplication key: enqueueing while a pending/running job has the
    /// same key returns that job instead.
    pub dedupe_key: Option<String>,
    /// Service.
    pub service: Option<Service>,
    /// Task.
    pub task_id: Option<TaskId>,
    /// Entity.
    pub entity_id: Option<EntityId>,
    /// Initiator.
    pub initiator: Option<String>,
    /// Display name.
    pub title: Option<String>,
}

impl NewJob {
    /// A job with default settings.
    pub fn new(kind: JobKind, payload: serde_json::Value) -> Self {
        Self {
            kind,
            payload,
            priority: 0,
            not_before: None,
            max_attempts: 3,
            dedupe_key: None,
            service: None,
            task_id: None,
            entity_id: None,
            initiator: None,
            title: None,
        }
    }

    /// A backup job of one entity, deduplicated so that the entity is never
    /// backed up twice at once.
    pub fn backup(
        task: TaskId,
        entity: EntityId,
        service: Service,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            dedupe_key: Some(backup_dedupe_key(entity)),
            service: Some(service),
            task_id: Some(task),
            entity_id: Some(entity),
            ..Self::new(JobKind::Backup, payload)
        }
    }
}

/// The dedupe key of an entity's backup jobs.
pub fn backup_dedupe_key(entity: EntityId) -> String {
    format!("backup:{entity}")
}

/// What enqueueing did.
#[derive(Clone, Debug, PartialEq)]
pub enum Enqueued {
    /// A new job was created.
    Created(Job),
    /// An active job with the same dedupe key exists; here it is.
    Duplicate(Job),
}

impl Enqueued {
    /// The job, new or existing.
    pub fn job(&self) -> &Job {
        match self {
            Enqueued::Created(j) | Enqueued::Duplicate(j) => j,
        }
    }
}

/// A worker's hold on a claimed job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The job.
    pub job_id: JobId,
    /// Its account.
    pub account_id: AccountId,
    /// The worker.
    pub worker: String,
    /// The attempt this lease belongs to.
    pub attempt: u32,
}

/// A claimed job and the lease to present for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Claimed {
    /// The job (status Running).
    pub job: Job,
    /// The lease.
    pub lease: Lease,
}

/// Filters of the jobs page (F-F1).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct JobFilter {
    /// Created at or after (the jobs page uses now - 7 days).
    pub since: Option<DateTime<Utc>>,
    /// Any of these statuses (empty = any).
    pub statuses: Vec<JobStatus>,
    /// Any of these kinds (empty = any).
    pub kinds: Vec<JobKind>,
    /// Service.
    pub service: Option<Service>,
    /// Task.
    pub task_id: Option<TaskId>,
    /// Entity.
    pub entity_id: Option<EntityId>,
    /// Initiator.
    pub initiator: Option<String>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    /// Page size (default and maximum [`MAX_JOB_PAGE`]).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: u32,
}

/// Number of jobs per status (the counters of the jobs page).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    /// Pending.
    pub pending: u64,
    /// Running.
    pub running: u64,
    /// Succeeded.
    pub succeeded: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

const COLS: &str = "id, account_id, kind, payload, status, priority, not_before, attempts, max_attempts, lease_owner, \
    lease_expires_at, heartbeat_at, done_items, total_items, done_bytes, total_bytes, progress_message, cancel_requested, \
    result, error, dedupe_key, service, task_id, entity_id, initiator, title, created_at, started_at, finished_at";

fn small(r: &AnyRow, col: &str) -> Result<u32> {
    let v = r.int(col)?;
    u32::try_from(v).map_err(|_| Error::Corrupt(format!("{col}: {v} out of range")))
}

fn job_from_row(r: &AnyRow) -> Result<Job> {
    let priority = r.int("priority")?;
    Ok(Job {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        kind: r.parse("kind")?,
        payload: r.json("payload")?,
        status: r.parse("status")?,
        priority: i32::try_from(priority)
            .map_err(|_| Error::Corrupt(format!("priority: {priority}")))?,
        not_before: r.time("not_before")?,
        attempts: small(r, "attempts")?,
        max_attempts: small(r, "max_attempts")?,
        lease_owner: r.opt_text("lease_owner")?,
        lease_expires_at: r.opt_time("lease_expires_at")?,
        heartbeat_at: r.opt_time("heartbeat_at")?,
        progress: JobProgress {
            done_items: r.uint("done_items")?,
            total_items: r.opt_uint("total_items")?,
            done_bytes: r.uint("done_bytes")?,
            total_bytes: r.opt_uint("total_bytes")?,
            message: r.opt_text("progress_message")?,
        },
        cancel_requested: r.bool("cancel_requested")?,
        result: r.opt_json("result")?,
        error: r.opt_text("error")?,
        dedupe_key: r.opt_text("dedupe_key")?,
        service: r.opt_parse("service")?,
        task_id: r.opt_parse("task_id")?,
        entity_id: r.opt_parse("entity_id")?,
        initiator: r.opt_text("initiator")?,
        title: r.opt_text("title")?,
        created_at: r.time("created_at")?,
        started_at: r.opt_time("started_at")?,
        finished_at: r.opt_time("finished_at")?,
    })
}

fn lease_micros(d: Duration) -> Result<i64> {
    let m =
        i64::try_from(d.as_micros()).map_err(|_| Error::InvalidInput("lease too long".into()))?;
    if m <= 0 {
        return Err(Error::InvalidInput("lease must be positive".into()));
    }
    Ok(m)
}

impl Catalog {
    /// Enqueue a job. With a dedupe key, an existing pending/running job
    /// with the same key in the account is returned instead of a new one.
    pub async fn enqueue_job(&self, account: AccountId, new: NewJob) -> Result<Enqueued> {
        if new.max_attempts == 0 {
            return Err(Error::InvalidInput(
                "max_attempts must be at least 1".into(),
            ));
        }
        let payload = to_json(&new.payload)?;
        // The duplicate may finish between our insert and our look-up; then
        // inserting again succeeds. Bounded, never a loop forever.
        for _ in 0..3 {
            let now = self.now();
            let id = JobId::random();
            let not_before = new.not_before.map(micros).unwrap_or(micros(now));
            let done = q(
                &format!(
                    "INSERT INTO jobs ({COLS}) VALUES ($1, $2, $3, $4, 'pending', $5, $6, 0, $7, NULL, NULL, NULL, 0, NULL, 0, NULL, NULL, 0, \
                     NULL, NULL, $8, $9, $10, $11, $12, $13, $14, NULL, NULL) ON CONFLICT DO NOTHING"
                ),
                args![
                    id.to_string(),
                    account.to_string(),
                    new.kind.as_str(),
                    payload.clone(),
                    i64::from(new.priority),
                    not_before,
                    i64::from(new.max_attempts),
                    new.dedupe_key.clone(),
                    new.service.map(|s| s.as_str().to_string()),
                    new.task_id.map(|t| t.to_string()),
                    new.entity_id.map(|e| e.to_string()),
                    new.initiator.clone(),
                    new.title.clone(),
                    micros(now)
                ],
            )
            .query()
            .execute(&self.pool)
            .await
            .map_err(|e| match Error::from(e) {
                Error::NotFound(_) => Error::NotFound("account"),
                other => other,
            })?;
            if done.rows_affected() == 1 {
                return Ok(Enqueued::Created(self.get_job(account, id).await?));
            }
            let Some(key) = new.dedupe_key.as_deref() else {
                return Err(Error::Conflict("job id collision".into()));
            };
            let existing = q(
                &format!(
                    "SELECT {COLS} FROM jobs WHERE account_id = $1 AND dedupe_key = $2 AND status IN ('pending', 'running')"
                ),
                args![account.to_string(), key],
            )
            .query()
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = existing {
                return Ok(Enqueued::Duplicate(job_from_row(&row)?));
            }
        }
        Err(Error::Conflict(
            "job with this dedupe key keeps changing; retry".into(),
        ))
    }

    /// A job of the account.
    pub async fn get_job(&self, account: AccountId, id: JobId) -> Result<Job> {
        let row = q(
            &format!("SELECT {COLS} FROM jobs WHERE account_id = $1 AND id = $2"),
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("job"))?;
        job_from_row(&row)
    }

    /// Claim the next due job (highest priority, then oldest) of any account
    /// for `worker`, leased for `lease`. `kinds` empty = any kind. Two
    /// claimers never get the same job.
    pub async fn claim_job(
        &self,
        worker: &str,
        lease: Duration,
        kinds: &[JobKind],
    ) -> Result<Option<Claimed>> {
        let worker = worker.trim();
        if worker.is_empty() {
            return Err(Error::InvalidInput("worker id must not be empty".into()));
        }
        let lease_us = lease_micros(lease)?;
        let now = micros(self.now());
        let mut sql = q(
            &format!(
                "UPDATE jobs SET status = 'running', lease_owner = $1, lease_expires_at = $2, heartbeat_at = $3, \
                 attempts = attempts + 1, started_at = COALESCE(started_at, $3) \
                 WHERE status = 'pending' AND id = (SELECT id FROM jobs WHERE status = 'pending' AND not_before <= $3{}",
                if kinds.is_empty() {
                    ""
                } else {
                    " AND kind IN "
                }
            ),
            args![worker, now.saturating_add(lease_us), now],
        );
        if !kinds.is_empty() {
            sql.bind_list(kinds.iter().map(|k| k.as_str()));
        }
        sql.push(" ORDER BY priority DESC, not_before, created_at, id LIMIT 1");
        // DIALECT: PostgreSQL lets concurrent claimers skip each other's
        // candidate rows; SQLite runs the whole UPDATE under its single
        // write lock, which is atomic by itself.
        if self.backend == Backend::Postgres {
            sql.push(" FOR UPDATE SKIP LOCKED");
        }
        sql.push(&format!(") RETURNING {COLS}"));
        let Some(row) = sql.query().fetch_optional(&self.pool).await? else {
            return Ok(None);
        };
        let job = job_from_row(&row)?;
        let lease = Lease {
            job_id: job.id,
            account_id: job.account_id,
            worker: worker.to_string(),
            attempt: job.attempts,
        };
        Ok(Some(Claimed { job, lease }))
    }

    /// Run `set` on the leased job; `None` if the lease no longer holds.
    async fn with_lease(
        &self,
        lease: &Lease,
        set: &str,
        values: Vec<crate::db::Arg>,
    ) -> Result<Job> {
        let mut sql = q(&format!("UPDATE jobs SET {set}"), values);
        sql.push_bind(" WHERE account_id = ", lease.account_id.to_string())
            .push_bind(" AND id = ", lease.job_id.to_string())
            .push(" AND status = 'running'")
            .push_bind(" AND lease_owner = ", lease.worker.clone())
            .push_bind(" AND attempts = ", i64::from(lease.attempt))
            .push(&format!(" RETURNING {COLS}"));
        match sql.query().fetch_optional(&self.pool).await? {
            Some(row) => job_from_row(&row),
            None => {
                // Distinguish "no such job in this account" from "lease gone".
                self.get_job(lease.account_id, lease.job_id).await?;
                Err(Error::LeaseLost)
            }
        }
    }

    /// Extend the lease by `extend` from now. Returns whether a cancel was
    /// requested (the worker should then stop and call
    /// [`Catalog::finish_cancelled`]).
    pub async fn heartbeat(&self, lease: &Lease, extend: Duration) -> Result<bool> {
        let now = micros(self.now());
        let job = self
            .with_lease(
                lease,
                "heartbeat_at = $1, lease_expires_at = $2",
                args![now, now.saturating_add(lease_micros(extend)?)],
            )
            .await?;
        Ok(job.cancel_requested)
    }

    /// Record progress (also a heartbeat of sorts, without extending the
    /// lease). Returns whether a cancel was requested.
    pub async fn update_progress(&self, lease: &Lease, p: &JobProgress) -> Result<bool> {
        let job = self
            .with_lease(
                lease,
                "done_items = $1, total_items = $2, done_bytes = $3, total_bytes = $4, progress_message = $5, heartbeat_at = $6",
                args![
                    u64_to_i64(p.done_items, "done_items")?,
                    p.total_items.map(|v| u64_to_i64(v, "total_items")).transpose()?,
                    u64_to_i64(p.done_bytes, "done_bytes")?,
                    p.total_bytes.map(|v| u64_to_i64(v, "total_bytes")).transpose()?,
                    p.message.clone(),
                    micros(self.now())
                ],
            )
            .await?;
        Ok(job.cancel_requested)
    }

    /// The job succeeded.
    pub async fn complete_job(&self, lease: &Lease, result: &serde_json::Value) -> Result<Job> {
        self.with_lease(
            lease,
            "status = 'succeeded', result = $1, finished_at = $2, lease_owner = NULL, lease_expires_at = NULL",
            args![to_json(result)?, micros(self.now())],
        )
        .await
    }

    /// The attempt failed. If `retryable` and attempts remain (and no cancel
    /// was requested), the job goes back to pending, claimable after the
    /// retry policy's backoff; otherwise it fails for good.
    pub async fn fail_job(&self, lease: &Lease, error: &str, retryable: bool) -> Result<Job> {
        let now = self.now();
        let delay = chrono::Duration::from_std(self.retry.delay(lease.attempt))
            .map_err(|_| Error::InvalidInput("retry delay too long".into()))?;
        let retry_at = micros(now + delay);
        let retry = "($1 = 1 AND attempts < max_attempts AND cancel_requested = 0)";
        self.with_lease(
            lease,
            &format!(
                "status = CASE WHEN {retry} THEN 'pending' ELSE 'failed' END, \
                 not_before = CASE WHEN {retry} THEN $2 ELSE not_before END, \
                 finished_at = CASE WHEN {retry} THEN NULL ELSE $3 END, \
                 error = $4, lease_owner = NULL, lease_expires_at = NULL"
            ),
            args![
                i64::from(retryable),
                retry_at,
                micros(now),
                error.to_string()
            ],
        )
        .await
    }

    /// The worker stopped the job after a cancel request.
    pub async fn finish_cancelled(&self, lease: &Lease) -> Result<Job> {
        self.with_lease(
            lease,
            "status = 'cancelled', finished_at = $1, lease_owner = NULL, lease_expires_at = NULL",
            args![micros(self.now())],
        )
        .await
    }

    /// Request cancellation: a pending job is cancelled at once; a running
    /// job's worker sees the request at its next heartbeat. A finished job
    /// is returned unchanged.
    pub async fn request_cancel(&self, account: AccountId, id: JobId) -> Result<Job> {
        let now = micros(self.now());
        q(
            "UPDATE jobs SET cancel_requested = 1, \
             status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END, \
             finished_at = CASE WHEN status = 'pending' THEN $1 ELSE finished_at END \
             WHERE account_id = $2 AND id = $3 AND status IN ('pending', 'running')",
            args![now, account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        self.get_job(account, id).await
    }

    /// Jobs whose lease ran out (their worker died or hung) become pending
    /// again, keeping their progress so the next attempt resumes; a job out
    /// of attempts fails, and one whose cancel was requested is cancelled.
    /// Works across accounts (run it from any worker). Returns how many.
    pub async fn reclaim_expired_leases(&self) -> Result<u64> {
        let now = micros(self.now());
        let done = q(
            "UPDATE jobs SET \
             status = CASE WHEN cancel_requested = 1 THEN 'cancelled' WHEN attempts < max_attempts THEN 'pending' ELSE 'failed' END, \
             finished_at = CASE WHEN cancel_requested = 0 AND attempts < max_attempts THEN NULL ELSE $1 END, \
             error = CASE WHEN cancel_requested = 0 AND attempts >= max_attempts THEN 'the worker stopped responding (lease expired)' ELSE error END, \
             lease_owner = NULL, lease_expires_at = NULL \
             WHERE status = 'running' AND lease_expires_at < $1",
            args![now],
        )
        .query()
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    fn job_filter_sql(account: AccountId, f: &JobFilter, select: &str) -> Sql {
        let mut sql = Sql::new(select);
        sql.push(" FROM jobs WHERE account_id = ")
            .bind(account.to_string());
        if let Some(t) = f.since {
            sql.push_bind(" AND created_at >= ", micros(t));
        }
        if !f.statuses.is_empty() {
            sql.push(" AND status IN ")
                .bind_list(f.statuses.iter().map(|s| s.as_str()));
        }
        if !f.kinds.is_empty() {
            sql.push(" AND kind IN ")
                .bind_list(f.kinds.iter().map(|s| s.as_str()));
        }
        if let Some(s) = f.service {
            sql.push_bind(" AND service = ", s.as_str());
        }
        if let Some(t) = f.task_id {
            sql.push_bind(" AND task_id = ", t.to_string());
        }
        if let Some(e) = f.entity_id {
            sql.push_bind(" AND entity_id = ", e.to_string());
        }
        if let Some(i) = &f.initiator {
            sql.push_bind(" AND initiator = ", i.clone());
        }
        sql
    }

    /// The account's jobs matching `filter` (newest first by default).
    pub async fn list_jobs(&self, account: AccountId, filter: &JobFilter) -> Result<Vec<Job>> {
        let mut sql = Self::job_filter_sql(account, filter, &format!("SELECT {COLS}"));
        sql.push(if filter.oldest_first {
            " ORDER BY created_at, id"
        } else {
            " ORDER BY created_at DESC, id DESC"
        });
        let limit = filter.limit.unwrap_or(MAX_JOB_PAGE).min(MAX_JOB_PAGE);
        sql.push_bind(" LIMIT ", i64::from(limit))
            .push_bind(" OFFSET ", i64::from(filter.offset));
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Jobs per status created at or after `since` (the counters of F-F1).
    pub async fn job_counts(&self, account: AccountId, since: DateTime<Utc>) -> Result<JobCounts> {
        let rows = q(
            "SELECT status, COUNT(*) AS n FROM jobs WHERE account_id = $1 AND created_at >= $2 GROUP BY status",
            args![account.to_string(), micros(since)],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        let mut c = JobCounts::default();
        for r in &rows {
            let n = r.uint("n")?;
            match r.parse::<JobStatus>("status")? {
                JobStatus::Pending => c.pending = n,
                JobStatus::Running => c.running = n,
                JobStatus::Succeeded => c.succeeded = n,
                JobStatus::Failed => c.failed = n,
                JobStatus::Cancelled => c.cancelled = n,
            }
        }
        Ok(c)
    }
}
