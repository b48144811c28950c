//! The `Catalog` handle: opening, migrations, and the helpers every query uses.
//!
//! One codebase serves SQLite and PostgreSQL through sqlx's `Any` driver. All
//! queries use `$N` placeholders (understood by both) and portable SQL. The
//! dialect differences are confined to the places marked `DIALECT:` — the
//! migration directory, SQLite's journal mode, the transaction start
//! statement, and the row lock of the job claim.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::clock::{Clock, SystemClock};
use crate::crypto::{CatalogKey, SecretBox};
use crate::error::{Error, Result};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database is behind the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (embedded default).
    Sqlite,
    /// PostgreSQL (production, shared by many processes).
    Postgres,
}

impl Backend {
    /// The backend a URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or("");
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "" => Err(Error::InvalidUrl("no scheme".into())),
            other if other.len() <= 16 && other.chars().all(|c| c.is_ascii_alphanumeric()) => {
                Err(Error::InvalidUrl(format!("unsupported scheme {other:?}")))
            }
            _ => Err(Error::InvalidUrl("unsupported scheme".into())),
        }
    }
}

/// Retry policy for failed jobs: exponential backoff from `base`, capped.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub base: Duration,
    /// Largest delay between retries.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `attempt` (1 = after the first failure).
    pub fn delay(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << shift).min(self.max)
    }
}

/// Options for [`Catalog::open_with`].
#[derive(Clone, Debug)]
pub struct CatalogOptions {
    /// Largest number of pooled connections.
    pub max_connections: u32,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// Backoff of failed jobs.
    pub retry: RetryPolicy,
    /// How long to wait for a connection (also when opening).
    pub acquire_timeout: Duration,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            clock: Arc::new(SystemClock),
            retry: RetryPolicy::default(),
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

/// The catalog: Lifeboat's metadata in SQL.
///
/// Every method that reads or changes an account's data takes the
/// [`AccountId`](crate::AccountId) and scopes its SQL by it: an id of another
/// account's object is simply not found. The few methods that work across
/// accounts are operator/worker operations and say so (claiming jobs,
/// reclaiming leases, listing accounts, finding tasks due for purge).
#[derive(Clone)]
pub struct Catalog {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) secrets: SecretBox,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) retry: RetryPolicy,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Open the catalog at `url` (`sqlite://PATH?mode=rwc` or
    /// `postgres://...`) and bring its schema up to date.
    pub async fn open(url: &str, key: CatalogKey) -> Result<Self> {
        Self::open_with(url, key, CatalogOptions::default()).await
    }

    /// [`Catalog::open`] with options.
    pub async fn open_with(url: &str, key: CatalogKey, options: CatalogOptions) -> Result<Self> {
        let backend = Backend::from_url(url)?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await
            .map_err(|e| match e {
                sqlx::Error::Configuration(_) => Error::InvalidUrl("malformed".into()),
                other => Error::from(other),
            })?;
        // DIALECT: each backend has its own migration directory (they differ
        // only in the binary column type).
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        if backend == Backend::Sqlite {
            // DIALECT: write-ahead logging lets readers go on while a writer
            // commits. The mode is stored in the database file, so setting it
            // once here covers every later connection.
            if let Err(e) = sqlx::query("PRAGMA journal_mode = WAL")
                .fetch_all(&pool)
                .await
            {
                tracing::warn!(error = %e, "could not switch the SQLite catalog to WAL mode");
            }
        }
        Ok(Self {
            pool,
            backend,
            secrets: SecretBox::new(&key),
            clock: options.clock,
            retry: options.retry,
        })
    }

    /// Which database this catalog runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Close all connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The current time, truncated to the stored precision (microseconds).
    pub fn now(&self) -> DateTime<Utc> {
        let t = self.clock.now();
        from_micros(t.timestamp_micros()).unwrap_or(t)
    }

    /// Start a write transaction.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        // DIALECT: SQLite must take the write lock up front, or two
        // read-then-write transactions deadlock with SQLITE_BUSY.
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }
}

// ----- values -------------------------------------------------------------

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(v)
        .ok_or_else(|| Error::Corrupt(format!("time {v} out of range")))
}

pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v)
        .map_err(|e| Error::InvalidInput(format!("not serialisable as JSON: {e}")))
}

pub(crate) fn u64_to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidInput(format!("{what} too large")))
}

/// Escape `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn like_contains(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

// ----- reading rows ---------------------------------------------------------

/// Typed, error-returning accessors for rows (never panics on bad data).
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    fn uint(&self, col: &str) -> Result<u64> {
        let v = self.int(col)?;
        u64::try_from(v).map_err(|_| Error::Corrupt(format!("{col}: negative value {v}")))
    }
    fn opt_uint(&self, col: &str) -> Result<Option<u64>> {
        self.opt_int(col)?
            .map(|v| {
                u64::try_from(v).map_err(|_| Error::Corrupt(format!("{col}: negative value {v}")))
            })
            .transpose()
    }
    fn bool(&self, col: &str) -> Result<bool> {
        match self.int(col)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(Error::Corrupt(format!("{col}: {v} is not a flag"))),
        }
    }
    fn time(&self, col: &str) -> Result<DateTime<Utc>> {
        from_micros(self.int(col)?)
    }
    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        self.opt_int(col)?.map(from_micros).transpose()
    }
    fn parse<T>(&self, col: &str) -> Result<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let s = self.text(col)?;
        s.parse().map_err(|e| Error::Corrupt(format!("{col}: {e}")))
    }
    fn opt_parse<T>(&self, col: &str) -> Result<Option<T>>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.opt_text(col)?
            .map(|s| s.parse().map_err(|e| Error::Corrupt(format!("{col}: {e}"))))
            .transpose()
    }
    fn json<T: DeserializeOwned>(&self, col: &str) -> Result<T> {
        let s = self.text(col)?;
        serde_json::from_str(&s).map_err(|e| Error::Corrupt(format!("{col}: {e}")))
    }
    fn opt_json<T: DeserializeOwned>(&self, col: &str) -> Result<Option<T>> {
        self.opt_text(col)?
            .map(|s| serde_json::from_str(&s).map_err(|e| Error::Corrupt(format!("{col}: {e}"))))
            .transpose()
    }
}

fn col_err(col: &str, e: sqlx::Error) -> Error {
    Error::Corrupt(format!("{col}: {e}"))
}

impl RowExt for AnyRow {
    fn text(&self, col: &str) -> Result<String> {
        self.try_get::<String, _>(col).map_err(|e| col_err(col, e))
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.try_get::<Option<String>, _>(col)
            .map_err(|e| col_err(col, e))
    }
    fn int(&self, col: &str) -> Result<i64> {
        self.try_get::<i64, _>(col).map_err(|e| col_err(col, e))
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.try_get::<Option<i64>, _>(col)
            .map_err(|e| col_err(col, e))
    }
}

// ----- building queries ---------------------------------------------------

/// A bind value.
#[derive(Clone, Debug)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Blob(Vec<u8>),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::Text(Some(s.to_string()))
    }
}
impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::Text(Some(s))
    }
}
impl From<Option<String>> for Arg {
    fn from(s: Option<String>) -> Self {
        Arg::Text(s)
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Blob(v)
    }
}

/// SQL text with `$N` placeholders and their values, for queries whose shape
/// depends on filters.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    /// Append raw SQL.
    pub(crate) fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    /// Append a placeholder bound to `v`.
    pub(crate) fn bind(&mut self, v: impl Into<Arg>) -> &mut Self {
        self.args.push(v.into());
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// Append `sql` then a placeholder bound to `v`.
    pub(crate) fn push_bind(&mut self, sql: &str, v: impl Into<Arg>) -> &mut Self {
        self.push(sql);
        self.bind(v)
    }

    /// Append `(... $a, $b, ...)` — a parenthesised list of placeholders.
    pub(crate) fn bind_list<I, A>(&mut self, items: I) -> &mut Self
    where
        I: IntoIterator<Item = A>,
        A: Into<Arg>,
    {
        self.push("(");
        for (i, a) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(a);
        }
        self.push(")")
    }

    pub(crate) fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.text);
        for a in &self.args {
            q = match a {
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Int(v) => q.bind(*v),
                Arg::Blob(v) => q.bind(v.clone()),
            };
        }
        q
    }
}

/// A shortcut: a query with fixed text and the given args.
pub(crate) fn q(text: &str, args: Vec<Arg>) -> Sql {
    Sql {
        text: text.to_string(),
        args,
    }
}

/// Build a `Vec<Arg>` from heterogeneous values.
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::db::Arg::from($v)),*] };
}
pub(crate) use args;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite://x.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("sqlite::memory:").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        for bad in ["", "x", "mysql://u:pw@h/db", "://", "\u{e9}t\u{e9}://pw"] {
            let e = Backend::from_url(bad).expect_err(bad);
            assert!(matches!(e, Error::InvalidUrl(_)));
            assert!(!e.to_string().contains("pw"), "{e}");
        }
    }

    #[test]
    fn retry_backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(300),
        };
        assert_eq!(p.delay(1), Duration::from_secs(30));
        assert_eq!(p.delay(2), Duration::from_secs(60));
        assert_eq!(p.delay(3), Duration::from_secs(120));
        assert_eq!(p.delay(5), Duration::from_secs(300));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("A%b_c\\"), "%a\\%b\\_c\\\\%");
    }

    #[test]
    fn placeholders_number_in_order() {
        let mut s = Sql::new("SELECT 1 WHERE a = ");
        s.bind(1i64)
            .push(" AND b IN ")
            .bind_list(["x", "y"])
            .push_bind(" AND c = ", "z");
        assert_eq!(s.text, "SELECT 1 WHERE a = $1 AND b IN ($2, $3) AND c = $4");
        assert_eq!(s.args.len(), 4);
    }
}
