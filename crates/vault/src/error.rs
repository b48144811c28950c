//! The vault's one error type. Each variant says what went wrong and, through
//! [`Error::is_temporary`], whether retrying can help. Secrets never appear in
//! error text.

use thiserror::Error;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the vault.
#[derive(Debug, Error)]
pub enum Error {
    /// The object store failed (network, permissions, missing bucket...).
    #[error("object store error on {path}: {source}")]
    Store {
        /// Object (or prefix) being accessed.
        path: String,
        /// Underlying error.
        #[source]
        source: object_store::Error,
    },
    /// An object that must exist does not.
    #[error("object {0} not found")]
    NotFound(String),
    /// The repository has not been initialised at this location.
    #[error("no vault repository at {0} (run `lifeboat vault init`)")]
    NoRepository(String),
    /// `init` on a location that already holds a repository.
    #[error("a vault repository already exists at {0}")]
    AlreadyExists(String),
    /// No key file of this account could be opened with the given key.
    #[error("wrong key for account, or damaged key file (none of {0} opens with it)")]
    WrongKey(String),
    /// The account has never been initialised in this repository.
    #[error("account is not initialised in this repository")]
    NoAccount,
    /// A stored object failed authentication or is malformed.
    #[error("damaged object {object}: {reason}")]
    Damaged {
        /// Object path in the store.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Written by a newer version of Lifeboat.
    #[error("object {object} has format version {found}, this build reads up to {supported}")]
    UnsupportedVersion {
        /// Object path.
        object: String,
        /// Version found.
        found: u16,
        /// Highest supported version.
        supported: u16,
    },
    /// A path inside a snapshot does not exist.
    #[error("no entry {0} in snapshot")]
    NoSuchEntry(String),
    /// A path names a folder where an item was expected, or the reverse.
    #[error("{0}")]
    WrongKind(String),
    /// Invalid argument (bad path, bad URL, bad policy).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Reading the caller's input stream failed.
    #[error("reading input: {0}")]
    Input(#[source] std::io::Error),
    /// The writer lost its lock (it was not refreshed in time), so a
    /// concurrent garbage collection may have removed data it references.
    #[error("writer lock expired; snapshot not committed, start a new one")]
    LockExpired,
    /// The snapshot is under Object Lock retention.
    #[error("snapshot {0} is under object-lock retention until {1}")]
    Retained(String, String),
    /// Another gc or index compaction of the account is running (they run
    /// one at a time). Retry later; a lock left by a killed process stops
    /// counting after the lock stale time (30 minutes by default).
    #[error("another gc or index compaction is running ({0}); retry later")]
    Busy(String),
    /// A background task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn store(path: impl ToString, source: object_store::Error) -> Self {
        match source {
            object_store::Error::NotFound { .. } => Error::NotFound(path.to_string()),
            source => Error::Store {
                path: path.to_string(),
                source,
            },
        }
    }

    pub(crate) fn damaged(object: impl ToString, reason: impl ToString) -> Self {
        Error::Damaged {
            object: object.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Whether retrying the same operation later can succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Error::Store { .. } | Error::Task(_) | Error::LockExpired | Error::Busy(_)
        )
    }
}
