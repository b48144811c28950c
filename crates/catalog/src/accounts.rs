//! Accounts: the tenants of Lifeboat. Users, sessions and API tokens
//! (`users.rs`) hang off `accounts.id`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::db::{Catalog, RowExt, args, micros, q};
use crate::error::{Error, Result};
use crate::types::{AccountId, AccountStatus};

/// A Lifeboat account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Id.
    pub id: AccountId,
    /// Organisation name.
    pub name: String,
    /// Data-centre region chosen at sign-up.
    pub region: String,
    /// Lifecycle status.
    pub status: AccountStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

const COLS: &str = "id, name, region, status, created_at, updated_at";

fn account_from_row(r: &AnyRow) -> Result<Account> {
    Ok(Account {
        id: r.parse("id")?,
        name: r.text("name")?,
        region: r.text("region")?,
        status: r.parse("status")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

pub(crate) fn non_empty(what: &str, s: &str) -> Result<String> {
    let t = s.trim();
    if t.is_empty() {
        return Err(Error::InvalidInput(format!("{what} must not be empty")));
    }
    Ok(t.to_string())
}

impl Catalog {
    /// Create an account (it starts in the trial).
    pub async fn create_account(&self, name: &str, region: &str) -> Result<Account> {
        let now = self.now();
        let a = Account {
            id: AccountId::random(),
            name: non_empty("account name", name)?,
            region: non_empty("region", region)?,
            status: AccountStatus::Trial,
            created_at: now,
            updated_at: now,
        };
        q(
            "INSERT INTO accounts (id, name, region, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
            args![a.id.to_string(), a.name.clone(), a.region.clone(), a.status.as_str(), micros(now), micros(now)],
        )
        .query()
        .execute(&self.pool)
        .await?;
        Ok(a)
    }

    /// An account by id.
    pub async fn get_account(&self, id: AccountId) -> Result<Account> {
        let row = q(
            &format!("SELECT {COLS} FROM accounts WHERE id = $1"),
            args![id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("account"))?;
        account_from_row(&row)
    }

    /// Every account (operator view), oldest first.
    pub async fn list_accounts(&self) -> Result<Vec<Account>> {
        let rows = q(
            &format!("SELECT {COLS} FROM accounts ORDER BY created_at, id"),
            args![],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(account_from_row).collect()
    }

    /// Rename an account.
    pub async fn rename_account(&self, id: AccountId, name: &str) -> Result<Account> {
        let name = non_empty("account name", name)?;
        let done = q(
            "UPDATE accounts SET name = $1, updated_at = $2 WHERE id = $3",
            args![name, micros(self.now()), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("account"));
        }
        self.get_account(id).await
    }

    /// Change an account's status.
    pub async fn set_account_status(
        &self,
        id: AccountId,
        status: AccountStatus,
    ) -> Result<Account> {
        let done = q(
            "UPDATE accounts SET status = $1, updated_at = $2 WHERE id = $3",
            args![status.as_str(), micros(self.now()), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("account"));
        }
        self.get_account(id).await
    }
}
