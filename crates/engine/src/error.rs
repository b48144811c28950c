//! The engine's error type.

use thiserror::Error;

/// Why a backup (or a step of it) could not go on.
#[derive(Debug, Error)]
pub enum EngineError {
    /// Microsoft Graph refused or failed (after the pipeline's retries).
    #[error(transparent)]
    Graph(#[from] graph::GraphError),
    /// The vault failed.
    #[error("vault: {0}")]
    Vault(#[from] vault::Error),
    /// The entity no longer exists in Microsoft 365 (deleted user, site, group).
    #[error("{0} no longer exists in Microsoft 365")]
    EntityGone(String),
    /// The work was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// Something we read does not make sense (a snapshot without the data
    /// its metadata promises, a malformed stored record).
    #[error("{0}")]
    Invalid(String),
}

impl EngineError {
    /// Whether trying again later may succeed (transient service trouble)
    /// rather than needing a person (consent revoked, entity gone).
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Graph(g) => g.class() == graph::ErrorClass::Transient,
            EngineError::Vault(_) => true,
            _ => false,
        }
    }
}

/// Engine result.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
