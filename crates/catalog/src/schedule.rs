//! The scheduler's memory: the last slot each task was scheduled for.
//!
//! Claiming a slot moves it forward in one statement, so a slot is claimed
//! once however many schedulers tick (and across restarts).

use chrono::{DateTime, Utc};

use crate::db::{Catalog, RowExt, args, from_micros, micros, q};
use crate::error::{Error, Result};
use crate::types::{AccountId, TaskId};

fn check_kind(kind: &str) -> Result<&str> {
    let k = kind.trim();
    if k.is_empty() || k.len() > 64 {
        return Err(Error::InvalidInput(
            "schedule kind must be 1 to 64 characters".into(),
        ));
    }
    Ok(k)
}

impl Catalog {
    /// The last slot of `kind` ("backup", "discovery", ...) the task was
    /// scheduled for, if any.
    pub async fn last_schedule_slot(
        &self,
        account: AccountId,
        task: TaskId,
        kind: &str,
    ) -> Result<Option<DateTime<Utc>>> {
        let row = q(
            "SELECT last_slot FROM schedule_slots WHERE account_id = $1 AND task_id = $2 AND kind = $3",
            args![account.to_string(), task.to_string(), check_kind(kind)?],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.int("last_slot").and_then(from_micros))
            .transpose()
    }

    /// Claim `slot` of `kind` for the task: true if it is later than the
    /// last claimed slot (which then becomes `slot`), false if it was
    /// claimed already (by this or another scheduler).
    pub async fn claim_schedule_slot(
        &self,
        account: AccountId,
        task: TaskId,
        kind: &str,
        slot: DateTime<Utc>,
    ) -> Result<bool> {
        let done = q(
            "INSERT INTO schedule_slots (account_id, task_id, kind, last_slot) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id, task_id, kind) DO UPDATE SET last_slot = excluded.last_slot \
             WHERE schedule_slots.last_slot < excluded.last_slot",
            args![account.to_string(), task.to_string(), check_kind(kind)?, micros(slot)],
        )
        .query()
        .execute(&self.pool)
        .await
        .map_err(|e| match Error::from(e) {
            Error::NotFound(_) => Error::NotFound("task"),
            other => other,
        })?;
        Ok(done.rows_affected() == 1)
    }
}
