//! Microsoft 365 tenant connections. The client secret is stored encrypted
//! (see [`crate::crypto`]) and is only handed out by
//! [`Catalog::connection_secret`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::accounts::non_empty;
use crate::crypto::Secret;
use crate::db::{Catalog, RowExt, args, micros, q};
use crate::error::{Error, Result};
use crate::types::{AccountId, ConnectionId};

/// Whether a connection works.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// Consent given, credentials work.
    Connected,
    /// Consent revoked, secret expired, ...: re-authorise to continue.
    Disconnected {
        /// Why, in words a person understands.
        reason: String,
    },
}

/// A tenant connection (the secret is not part of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Id.
    pub id: ConnectionId,
    /// Owning account.
    pub account_id: AccountId,
    /// Microsoft Entra tenant id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Base URL of Microsoft Graph (configurable for the simulator).
    pub graph_url: String,
    /// Base URL of the login (token) endpoint.
    pub login_url: String,
    /// Connected or not.
    pub status: ConnectionStatus,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// What is needed to create a connection.
#[derive(Clone, Debug, Deserialize)]
pub struct NewConnection {
    /// Tenant id.
    pub tenant_id: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret (stored encrypted).
    pub client_secret: Secret,
    /// Graph base URL.
    pub graph_url: String,
    /// Login base URL.
    pub login_url: String,
}

const COLS: &str = "id, account_id, tenant_id, client_id, graph_url, login_url, status, status_reason, created_at, updated_at";

fn connection_from_row(r: &AnyRow) -> Result<Connection> {
    let status = match r.text("status")?.as_str() {
        "connected" => ConnectionStatus::Connected,
        "disconnected" => ConnectionStatus::Disconnected {
            reason: r.opt_text("status_reason")?.unwrap_or_default(),
        },
        other => {
            return Err(Error::Corrupt(format!(
                "status: unknown connection status {other:?}"
            )));
        }
    };
    Ok(Connection {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        tenant_id: r.text("tenant_id")?,
        client_id: r.text("client_id")?,
        graph_url: r.text("graph_url")?,
        login_url: r.text("login_url")?,
        status,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

fn status_cols(s: &ConnectionStatus) -> (&'static str, Option<String>) {
    match s {
        ConnectionStatus::Connected => ("connected", None),
        ConnectionStatus::Disconnected { reason } => ("disconnected", Some(reason.clone())),
    }
}

/// Additional data binding a sealed secret to its row.
fn aad(account: AccountId, id: ConnectionId) -> String {
    format!("lifeboat/connection/{account}/{id}")
}

fn check_url(what: &str, s: &str) -> Result<String> {
    let s = non_empty(what, s)?;
    if !(s.starts_with("https://") || s.starts_with("http://")) {
        return Err(Error::InvalidInput(format!(
            "{what} must be an http(s) URL"
        )));
    }
    Ok(s)
}

impl Catalog {
    /// Store a new connection (status Connected).
    pub async fn create_connection(
        &self,
        account: AccountId,
        new: NewConnection,
    ) -> Result<Connection> {
        let now = self.now();
        let id = ConnectionId::random();
        let c = Connection {
            id,
            account_id: account,
            tenant_id: non_empty("tenant id", &new.tenant_id)?,
            client_id: non_empty("client id", &new.client_id)?,
            graph_url: check_url("graph URL", &new.graph_url)?,
            login_url: check_url("login URL", &new.login_url)?,
            status: ConnectionStatus::Connected,
            created_at: now,
            updated_at: now,
        };
        let sealed = self.secrets.seal(&new.client_secret, &aad(account, id))?;
        q(
            "INSERT INTO connections (id, account_id, tenant_id, client_id, client_secret, graph_url, login_url, status, status_reason, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'connected', NULL, $8, $8)",
            args![
                id.to_string(),
                account.to_string(),
                c.tenant_id.clone(),
                c.client_id.clone(),
                sealed,
                c.graph_url.clone(),
                c.login_url.clone(),
                micros(now)
            ],
        )
        .query()
        .execute(&self.pool)
        .await
        .map_err(|e| match Error::from(e) {
            Error::NotFound(_) => Error::NotFound("account"),
            Error::Conflict(_) => Error::Conflict("this tenant is already connected".into()),
            other => other,
        })?;
        Ok(c)
    }

    /// A connection of the account.
    pub async fn get_connection(&self, account: AccountId, id: ConnectionId) -> Result<Connection> {
        let row = q(
            &format!("SELECT {COLS} FROM connections WHERE account_id = $1 AND id = $2"),
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("connection"))?;
        connection_from_row(&row)
    }

    /// The account's connections, oldest first.
    pub async fn list_connections(&self, account: AccountId) -> Result<Vec<Connection>> {
        let rows = q(
            &format!(
                "SELECT {COLS} FROM connections WHERE account_id = $1 ORDER BY created_at, id"
            ),
            args![account.to_string()],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(connection_from_row).collect()
    }

    /// Decrypt a connection's client secret.
    pub async fn connection_secret(&self, account: AccountId, id: ConnectionId) -> Result<Secret> {
        let row = q(
            "SELECT client_secret FROM connections WHERE account_id = $1 AND id = $2",
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("connection"))?;
        let sealed: Vec<u8> = sqlx::Row::try_get(&row, "client_secret")
            .map_err(|e| Error::Corrupt(format!("client_secret: {e}")))?;
        self.secrets.open(&sealed, &aad(account, id))
    }

    /// Mark a connection connected or disconnected.
    pub async fn set_connection_status(
        &self,
        account: AccountId,
        id: ConnectionId,
        status: ConnectionStatus,
    ) -> Result<Connection> {
        let (s, reason) = status_cols(&status);
        let done = q(
            "UPDATE connections SET status = $1, status_reason = $2, updated_at = $3 WHERE account_id = $4 AND id = $5",
            args![s, reason, micros(self.now()), account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("connection"));
        }
        self.get_connection(account, id).await
    }

    /// Re-authorise a connection with new credentials (history is kept);
    /// it becomes Connected.
    pub async fn reauthorize_connection(
        &self,
        account: AccountId,
        id: ConnectionId,
        client_id: &str,
        client_secret: &Secret,
    ) -> Result<Connection> {
        let client_id = non_empty("client id", client_id)?;
        let sealed = self.secrets.seal(client_secret, &aad(account, id))?;
        let done = q(
            "UPDATE connections SET client_id = $1, client_secret = $2, status = 'connected', status_reason = NULL, updated_at = $3 \
             WHERE account_id = $4 AND id = $5",
            args![client_id, sealed, micros(self.now()), account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("connection"));
        }
        self.get_connection(account, id).await
    }
}
