//! The system activity log (F-G1): every backup, restore and export per
//! entity and sub-service, filterable and exportable as CSV.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::db::{Catalog, RowExt, Sql, args, like_contains, micros, q, to_json};
use crate::error::{Error, Result};
use crate::types::{
    AccountId, ActivityId, ActivityKind, ActivityStatus, EntityId, JobId, Service, TaskId,
};

/// Largest page of activity a listing returns.
pub const MAX_ACTIVITY_PAGE: u32 = 10_000;

/// One activity log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Id.
    pub id: ActivityId,
    /// Owning account.
    pub account_id: AccountId,
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub activity: ActivityKind,
    /// Which service.
    pub service: Option<Service>,
    /// How it went.
    pub status: ActivityStatus,
    /// The task.
    pub task_id: Option<TaskId>,
    /// The task's name at the time.
    pub task_name: Option<String>,
    /// The entity.
    pub entity_id: Option<EntityId>,
    /// The item or entity as shown (mailbox address, site URL, ...).
    pub item: Option<String>,
    /// The job it belongs to.
    pub job_id: Option<JobId>,
    /// Details (duration, stored size, item count, summary, ...).
    pub details: serde_json::Value,
}

/// A new activity entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewActivity {
    /// When (defaults to now).
    pub at: Option<DateTime<Utc>>,
    /// What.
    pub activity: ActivityKind,
    /// Which service.
    pub service: Option<Service>,
    /// How it went.
    pub status: ActivityStatus,
    /// The task.
    pub task_id: Option<TaskId>,
    /// The task's name.
    pub task_name: Option<String>,
    /// The entity.
    pub entity_id: Option<EntityId>,
    /// The item as shown.
    pub item: Option<String>,
    /// The job.
    pub job_id: Option<JobId>,
    /// Details.
    pub details: serde_json::Value,
}

impl NewActivity {
    /// A minimal entry; set the optional fields directly.
    pub fn new(activity: ActivityKind, status: ActivityStatus) -> Self {
        Self {
            at: None,
            activity,
            service: None,
            status,
            task_id: None,
            task_name: None,
            entity_id: None,
            item: None,
            job_id: None,
            details: serde_json::Value::Object(Default::default()),
        }
    }
}

/// Filters of the activity log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ActivityFilter {
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
    /// Only this activity.
    pub activity: Option<ActivityKind>,
    /// Only this service.
    pub service: Option<Service>,
    /// Only this status.
    pub status: Option<ActivityStatus>,
    /// Task name contains (case-insensitive).
    pub task_name: Option<String>,
    /// Item contains (case-insensitive).
    pub item: Option<String>,
    /// Only this job.
    pub job_id: Option<JobId>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    /// Page size (default and maximum [`MAX_ACTIVITY_PAGE`]).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: u32,
}

const COLS: &str = "id, account_id, at, activity, service, status, task_id, task_name, entity_id, item, job_id, details";

fn activity_from_row(r: &AnyRow) -> Result<Activity> {
    Ok(Activity {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        at: r.time("at")?,
        activity: r.parse("activity")?,
        service: r.opt_parse("service")?,
        status: r.parse("status")?,
        task_id: r.opt_parse("task_id")?,
        task_name: r.opt_text("task_name")?,
        entity_id: r.opt_parse("entity_id")?,
        item: r.opt_text("item")?,
        job_id: r.opt_parse("job_id")?,
        details: r.json("details")?,
    })
}

impl Catalog {
    /// Append an entry to the account's activity log.
    pub async fn log_activity(&self, account: AccountId, new: NewActivity) -> Result<Activity> {
        let a = Activity {
            id: ActivityId::random(),
            account_id: account,
            at: match new.at {
                Some(t) => crate::db::from_micros(micros(t))?,
                None => self.now(),
            },
            activity: new.activity,
            service: new.service,
            status: new.status,
            task_id: new.task_id,
            task_name: new.task_name,
            entity_id: new.entity_id,
            item: new.item,
            job_id: new.job_id,
            details: if new.details.is_null() {
                serde_json::Value::Object(Default::default())
            } else {
                new.details
            },
        };
        q(
            &format!("INSERT INTO activity ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"),
            args![
                a.id.to_string(),
                account.to_string(),
                micros(a.at),
                a.activity.as_str(),
                a.service.map(|s| s.as_str().to_string()),
                a.status.as_str(),
                a.task_id.map(|t| t.to_string()),
                a.task_name.clone(),
                a.entity_id.map(|e| e.to_string()),
                a.item.clone(),
                a.job_id.map(|j| j.to_string()),
                to_json(&a.details)?
            ],
        )
        .query()
        .execute(&self.pool)
        .await
        .map_err(|e| match Error::from(e) {
            Error::NotFound(_) => Error::NotFound("account"),
            other => other,
        })?;
        Ok(a)
    }

    fn activity_sql(account: AccountId, f: &ActivityFilter) -> Sql {
        let mut sql = Sql::new(&format!("SELECT {COLS} FROM activity WHERE account_id = "));
        sql.bind(account.to_string());
        if let Some(t) = f.from {
            sql.push_bind(" AND at >= ", micros(t));
        }
        if let Some(t) = f.to {
            sql.push_bind(" AND at < ", micros(t));
        }
        if let Some(a) = f.activity {
            sql.push_bind(" AND activity = ", a.as_str());
        }
        if let Some(s) = f.service {
            sql.push_bind(" AND service = ", s.as_str());
        }
        if let Some(s) = f.status {
            sql.push_bind(" AND status = ", s.as_str());
        }
        if let Some(t) = f
            .task_name
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            sql.push_bind(
                " AND LOWER(COALESCE(task_name, '')) LIKE ",
                like_contains(t),
            )
            .push(" ESCAPE '\\'");
        }
        if let Some(i) = f.item.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            sql.push_bind(" AND LOWER(COALESCE(item, '')) LIKE ", like_contains(i))
                .push(" ESCAPE '\\'");
        }
        if let Some(j) = f.job_id {
            sql.push_bind(" AND job_id = ", j.to_string());
        }
        sql.push(if f.oldest_first {
            " ORDER BY at, id"
        } else {
            " ORDER BY at DESC, id DESC"
        });
        let limit = f.limit.unwrap_or(MAX_ACTIVITY_PAGE).min(MAX_ACTIVITY_PAGE);
        sql.push_bind(" LIMIT ", i64::from(limit))
            .push_bind(" OFFSET ", i64::from(f.offset));
        sql
    }

    /// The account's activity matching `filter` (newest first by default).
    pub async fn list_activity(
        &self,
        account: AccountId,
        filter: &ActivityFilter,
    ) -> Result<Vec<Activity>> {
        let rows = Self::activity_sql(account, filter)
            .query()
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(activity_from_row).collect()
    }

    /// Write the account's activity matching `filter` as CSV (with a header
    /// row) to `out`. Returns the number of entries written.
    pub async fn export_activity_csv<W: Write>(
        &self,
        account: AccountId,
        filter: &ActivityFilter,
        out: W,
    ) -> Result<u64> {
        let entries = self.list_activity(account, filter).await?;
        write_activity_csv(&entries, out)
    }
}

/// Write activity entries as CSV: time (RFC 3339, UTC), activity, service,
/// status, task, item, details (JSON).
pub fn write_activity_csv<W: Write>(entries: &[Activity], out: W) -> Result<u64> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "time", "activity", "service", "status", "task", "item", "details",
    ])?;
    for a in entries {
        let details = to_json(&a.details)?;
        w.write_record([
            a.at.to_rfc3339_opts(SecondsFormat::Secs, true).as_str(),
            a.activity.as_str(),
            a.service.map(|s| s.as_str()).unwrap_or(""),
            a.status.as_str(),
            a.task_name.as_deref().unwrap_or(""),
            a.item.as_deref().unwrap_or(""),
            details.as_str(),
        ])?;
    }
    w.flush().map_err(|e| Error::Csv(e.into()))?;
    Ok(entries.len() as u64)
}
