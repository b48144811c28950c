//! The worker's error type.

use thiserror::Error;

/// What can go wrong setting up or running jobs.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// The catalog failed.
    #[error("catalog: {0}")]
    Catalog(#[from] catalog::Error),
    /// The vault failed.
    #[error("vault: {0}")]
    Vault(#[from] vault::Error),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    /// The Graph client could not be set up.
    #[error(transparent)]
    Graph(#[from] graph::GraphError),
    /// Configuration is missing or wrong (key file, data directory, URLs).
    #[error("{0}")]
    Config(String),
    /// Reading or writing a local file failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The search index failed.
    #[error("search index: {0}")]
    Search(String),
    /// A job's payload or state does not make sense.
    #[error("{0}")]
    Invalid(String),
}

impl WorkerError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        WorkerError::Io {
            what: what.into(),
            source,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            WorkerError::Catalog(e) => e.is_retryable() || matches!(e, catalog::Error::Database(_)),
            WorkerError::Vault(_) => true,
            WorkerError::Engine(e) => e.is_retryable(),
            WorkerError::Graph(e) => e.class() == graph::ErrorClass::Transient,
            WorkerError::Io { .. } | WorkerError::Search(_) => true,
            WorkerError::Config(_) | WorkerError::Invalid(_) => false,
        }
    }
}

/// Worker result.
pub type Result<T, E = WorkerError> = std::result::Result<T, E>;
