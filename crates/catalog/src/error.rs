//! One error type for the catalog, with guidance.

/// Result alias used throughout the catalog.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the catalog.
///
/// Error text never contains secrets: URLs are reduced to their scheme and
/// client secrets never reach an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The catalog URL could not be used (unknown scheme, malformed).
    #[error("invalid catalog URL ({0})")]
    InvalidUrl(String),
    /// The requested object does not exist in this account.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller passed a value the catalog refuses.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The change conflicts with existing data (for example a duplicate name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored row could not be understood (unknown enum value, bad JSON, bad
    /// time): the database was changed outside the catalog or by a newer
    /// version.
    #[error("corrupt catalog data: {0}")]
    Corrupt(String),
    /// Sign-in failed: unknown email, wrong password or disabled user (one
    /// error for all three, so a caller learns nothing about which).
    #[error("wrong email or password")]
    InvalidCredentials,
    /// The worker no longer holds the job's lease (it expired and the job was
    /// reclaimed, or the job was finished by someone else).
    #[error("job lease lost")]
    LeaseLost,
    /// A client secret could not be decrypted (wrong catalog key or damaged
    /// row).
    #[error("client secret cannot be decrypted with this catalog key")]
    Decrypt,
    /// The database reported an error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Writing CSV failed.
    #[error("CSV export failed: {0}")]
    Csv(#[from] csv::Error),
}

impl Error {
    /// Whether retrying the same operation later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(db)) => {
                // SQLite busy/locked; PostgreSQL serialization failure,
                // deadlock, too many connections, shutting down.
                matches!(
                    db.code().as_deref(),
                    Some("5" | "6" | "40001" | "40P01" | "53300" | "57P01")
                )
            }
            Error::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Tls(_)
            ),
            _ => false,
        }
    }

    /// What a person can do about this error.
    pub fn guidance(&self) -> &'static str {
        match self {
            Error::InvalidUrl(_) => {
                "use sqlite://PATH?mode=rwc or postgres://USER@HOST:PORT/DATABASE"
            }
            Error::NotFound(_) => "check the id and the account it belongs to",
            Error::InvalidInput(_) => "correct the value and try again",
            Error::Conflict(_) => "choose another name or wait for the running job to finish",
            Error::Corrupt(_) => {
                "the catalog holds data this version does not understand; check for a newer version or a manual change"
            }
            Error::InvalidCredentials => "check the email and password",
            Error::LeaseLost => "stop working on the job; another worker may have taken it",
            Error::Decrypt => "open the catalog with the key it was created with",
            Error::Database(_) if self.is_retryable() => {
                "the database is unreachable or busy; retry later"
            }
            Error::Database(_) => "see the database error; this is usually a bug",
            Error::Migrate(_) => {
                "the schema could not be brought up to date; check database permissions and version"
            }
            Error::Csv(_) => "check the destination of the export",
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::RowNotFound => Error::NotFound("row"),
            sqlx::Error::ColumnDecode { index, source } => {
                Error::Corrupt(format!("column {index}: {source}"))
            }
            sqlx::Error::Decode(source) => Error::Corrupt(source.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                Error::Conflict(db.message().to_string())
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Error::NotFound("referenced object")
            }
            other => Error::Database(other),
        }
    }
}
