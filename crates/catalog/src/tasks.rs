//! Backup tasks (F-B): one per protected service and tenant connection.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::accounts::non_empty;
use crate::db::{Catalog, RowExt, Sql, args, flag, micros, q};
use crate::error::{Error, Result};
use crate::types::{AccountId, ConnectionId, Frequency, Service, TaskId, TaskStatus};

/// Grace period between a deletion request and the purge (F-B4, F-C3).
pub const DELETION_GRACE: chrono::Duration = chrono::Duration::days(7);

/// How long snapshots are kept (F-B3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "unit", content = "value", rename_all = "snake_case")]
pub enum Retention {
    /// Forever (default).
    #[default]
    Unlimited,
    /// N days.
    Days(u32),
    /// N months.
    Months(u32),
    /// N years.
    Years(u32),
}

impl Retention {
    fn cols(self) -> (Option<String>, Option<i64>) {
        match self {
            Retention::Unlimited => (None, None),
            Retention::Days(n) => (Some("days".into()), Some(n.into())),
            Retention::Months(n) => (Some("months".into()), Some(n.into())),
            Retention::Years(n) => (Some("years".into()), Some(n.into())),
        }
    }

    fn from_cols(unit: Option<String>, value: Option<i64>) -> Result<Self> {
        let n = |v: Option<i64>| {
            v.and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| Error::Corrupt("retention_value: missing or out of range".into()))
        };
        match unit.as_deref() {
            None => Ok(Retention::Unlimited),
            Some("days") => Ok(Retention::Days(n(value)?)),
            Some("months") => Ok(Retention::Months(n(value)?)),
            Some("years") => Ok(Retention::Years(n(value)?)),
            Some(other) => Err(Error::Corrupt(format!(
                "retention_unit: unknown unit {other:?}"
            ))),
        }
    }
}

/// Task settings (F-B3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TaskSettings {
    /// Index backed-up data for search (on by default).
    pub index_for_search: bool,
    /// Back up unlicensed accounts (Exchange).
    pub backup_unlicensed: bool,
    /// Activate newly discovered mailboxes / sites / groups automatically.
    pub auto_activate_new: bool,
    /// Keep archived (deleted-in-tenant) backups this many days; `None` =
    /// forever.
    pub archived_retention_days: Option<u32>,
    /// How often to back up.
    pub frequency: Frequency,
    /// Hour of the day (UTC, 0..=23) backups start.
    pub backup_hour_utc: u8,
    /// Data-centre region (display only).
    pub region: String,
    /// Retention of snapshots.
    pub retention: Retention,
}

impl Default for TaskSettings {
    fn default() -> Self {
        Self {
            index_for_search: true,
            backup_unlicensed: false,
            auto_activate_new: false,
            archived_retention_days: None,
            frequency: Frequency::Daily,
            backup_hour_utc: 0,
            region: String::new(),
            retention: Retention::Unlimited,
        }
    }
}

impl TaskSettings {
    fn validate(&self) -> Result<()> {
        if self.backup_hour_utc > 23 {
            return Err(Error::InvalidInput(format!(
                "backup hour {} is not 0..=23",
                self.backup_hour_utc
            )));
        }
        if matches!(
            self.retention,
            Retention::Days(0) | Retention::Months(0) | Retention::Years(0)
        ) {
            return Err(Error::InvalidInput("retention must be at least 1".into()));
        }
        Ok(())
    }
}

/// A backup task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Id.
    pub id: TaskId,
    /// Owning account.
    pub account_id: AccountId,
    /// The tenant connection it uses.
    pub connection_id: ConnectionId,
    /// The protected service.
    pub service: Service,
    /// Display name (editable).
    pub name: String,
    /// Settings.
    pub settings: TaskSettings,
    /// Active or paused.
    pub status: TaskStatus,
    /// When deletion was requested (the task is purged 7 days later unless
    /// cancelled).
    pub deletion_requested_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// When the task will be purged, if deletion was requested.
    pub fn purge_after(&self) -> Option<DateTime<Utc>> {
        self.deletion_requested_at.map(|t| t + DELETION_GRACE)
    }
}

/// What is needed to create a task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewTask {
    /// The connection (of the same account).
    pub connection_id: ConnectionId,
    /// The service.
    pub service: Service,
    /// Name.
    pub name: String,
    /// Settings.
    #[serde(default)]
    pub settings: TaskSettings,
}

const COLS: &str = "id, account_id, connection_id, service, name, index_for_search, backup_unlicensed, auto_activate_new, \
    archived_retention_days, frequency, backup_hour_utc, region, retention_unit, retention_value, status, \
    deletion_requested_at, created_at, updated_at";

fn task_from_row(r: &AnyRow) -> Result<Task> {
    let hour = r.int("backup_hour_utc")?;
    Ok(Task {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        connection_id: r.parse("connection_id")?,
        service: r.parse("service")?,
        name: r.text("name")?,
        settings: TaskSettings {
            index_for_search: r.bool("index_for_search")?,
            backup_unlicensed: r.bool("backup_unlicensed")?,
            auto_activate_new: r.bool("auto_activate_new")?,
            archived_retention_days: r
                .opt_int("archived_retention_days")?
                .map(|v| {
                    u32::try_from(v)
                        .map_err(|_| Error::Corrupt("archived_retention_days out of range".into()))
                })
                .transpose()?,
            frequency: r.parse("frequency")?,
            backup_hour_utc: u8::try_from(hour)
                .ok()
                .filter(|h| *h <= 23)
                .ok_or_else(|| Error::Corrupt(format!("backup_hour_utc: {hour}")))?,
            region: r.text("region")?,
            retention: Retention::from_cols(
                r.opt_text("retention_unit")?,
                r.opt_int("retention_value")?,
            )?,
        },
        status: r.parse("status")?,
        deletion_requested_at: r.opt_time("deletion_requested_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

impl Catalog {
    /// Create a task on one of the account's connections.
    pub async fn create_task(&self, account: AccountId, new: NewTask) -> Result<Task> {
        new.settings.validate()?;
        let now = self.now();
        let t = Task {
            id: TaskId::random(),
            account_id: account,
            connection_id: new.connection_id,
            service: new.service,
            name: non_empty("task name", &new.name)?,
            settings: new.settings,
            status: TaskStatus::Active,
            deletion_requested_at: None,
            created_at: now,
            updated_at: now,
        };
        let s = &t.settings;
        let (unit, value) = s.retention.cols();
        q(
            &format!(
                "INSERT INTO backup_tasks ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, $16, $16)"
            ),
            args![
                t.id.to_string(),
                account.to_string(),
                t.connection_id.to_string(),
                t.service.as_str(),
                t.name.clone(),
                flag(s.index_for_search),
                flag(s.backup_unlicensed),
                flag(s.auto_activate_new),
                s.archived_retention_days.map(i64::from),
                s.frequency.as_str(),
                i64::from(s.backup_hour_utc),
                s.region.clone(),
                unit,
                value,
                t.status.as_str(),
                micros(now)
            ],
        )
        .query()
        .execute(&self.pool)
        .await
        .map_err(|e| match Error::from(e) {
            Error::NotFound(_) => Error::NotFound("connection"),
            other => other,
        })?;
        Ok(t)
    }

    /// A task of the account.
    pub async fn get_task(&self, account: AccountId, id: TaskId) -> Result<Task> {
        let row = q(
            &format!("SELECT {COLS} FROM backup_tasks WHERE account_id = $1 AND id = $2"),
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("task"))?;
        task_from_row(&row)
    }

    /// The account's tasks (optionally of one service), oldest first.
    pub async fn list_tasks(
        &self,
        account: AccountId,
        service: Option<Service>,
    ) -> Result<Vec<Task>> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLS} FROM backup_tasks WHERE account_id = "
        ));
        sql.bind(account.to_string());
        if let Some(s) = service {
            sql.push_bind(" AND service = ", s.as_str());
        }
        sql.push(" ORDER BY created_at, id");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(task_from_row).collect()
    }

    async fn update_task(
        &self,
        account: AccountId,
        id: TaskId,
        set: &str,
        mut values: Vec<crate::db::Arg>,
    ) -> Result<Task> {
        let n = values.len();
        let text = format!(
            "UPDATE backup_tasks SET {set}, updated_at = ${} WHERE account_id = ${} AND id = ${}",
            n + 1,
            n + 2,
            n + 3
        );
        values.extend(args![
            micros(self.now()),
            account.to_string(),
            id.to_string()
        ]);
        let done = q(&text, values).query().execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("task"));
        }
        self.get_task(account, id).await
    }

    /// Rename a task.
    pub async fn rename_task(&self, account: AccountId, id: TaskId, name: &str) -> Result<Task> {
        let name = non_empty("task name", name)?;
        self.update_task(account, id, "name = $1", args![name])
            .await
    }

    /// Replace a task's settings.
    pub async fn update_task_settings(
        &self,
        account: AccountId,
        id: TaskId,
        s: &TaskSettings,
    ) -> Result<Task> {
        s.validate()?;
        let (unit, value) = s.retention.cols();
        self.update_task(
            account,
            id,
            "index_for_search = $1, backup_unlicensed = $2, auto_activate_new = $3, archived_retention_days = $4, \
             frequency = $5, backup_hour_utc = $6, region = $7, retention_unit = $8, retention_value = $9",
            args![
                flag(s.index_for_search),
                flag(s.backup_unlicensed),
                flag(s.auto_activate_new),
                s.archived_retention_days.map(i64::from),
                s.frequency.as_str(),
                i64::from(s.backup_hour_utc),
                s.region.clone(),
                unit,
                value
            ],
        )
        .await
    }

    /// Pause or resume a task.
    pub async fn set_task_status(
        &self,
        account: AccountId,
        id: TaskId,
        status: TaskStatus,
    ) -> Result<Task> {
        self.update_task(account, id, "status = $1", args![status.as_str()])
            .await
    }

    /// Request deletion of a task: it is purged after [`DELETION_GRACE`]
    /// unless cancelled. Requesting again keeps the first request's time.
    pub async fn request_task_deletion(&self, account: AccountId, id: TaskId) -> Result<Task> {
        self.update_task(
            account,
            id,
            "deletion_requested_at = COALESCE(deletion_requested_at, $1)",
            args![micros(self.now())],
        )
        .await
    }

    /// Cancel a pending deletion; nothing is lost.
    pub async fn cancel_task_deletion(&self, account: AccountId, id: TaskId) -> Result<Task> {
        self.update_task(account, id, "deletion_requested_at = NULL", args![])
            .await
    }

    /// Tasks of every account whose deletion grace period is over (for the
    /// purge worker; crosses accounts by design).
    pub async fn tasks_due_for_purge(&self) -> Result<Vec<Task>> {
        let cutoff = micros(self.now() - DELETION_GRACE);
        let rows = q(
            &format!(
                "SELECT {COLS} FROM backup_tasks WHERE deletion_requested_at IS NOT NULL AND deletion_requested_at <= $1 ORDER BY deletion_requested_at"
            ),
            args![cutoff],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// Delete a task and everything under it (entities, rules, runs, tags of
    /// its entities) from the catalog. Vault data is purged separately.
    pub async fn purge_task(&self, account: AccountId, id: TaskId) -> Result<()> {
        let done = q(
            "DELETE FROM backup_tasks WHERE account_id = $1 AND id = $2",
            args![account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("task"));
        }
        Ok(())
    }
}
