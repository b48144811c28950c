//! The search crate's error type.

use thiserror::Error;

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong with a search index.
#[derive(Debug, Error)]
pub enum Error {
    /// The vault failed (store unreachable, damaged or foreign object:
    /// an index of another account does not open with this account's key).
    #[error("vault: {0}")]
    Vault(#[from] vault::Error),
    /// The index engine failed (damaged cache: delete the cache directory,
    /// the index is downloaded again from the vault).
    #[error("index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// A query could not be built.
    #[error("query: {0}")]
    Query(#[from] tantivy::query::QueryParserError),
    /// The local cache directory could not be used.
    #[error("local index cache: {0}")]
    Cache(#[from] std::io::Error),
    /// tantivy refused to open the cache directory.
    #[error("local index cache: {0}")]
    CacheDir(#[from] tantivy::directory::error::OpenDirectoryError),
    /// A stored record does not parse (damaged index: rebuild it).
    #[error("damaged index record: {0}")]
    Record(#[from] serde_json::Error),
    /// Another writer holds this account's index lease. Retry later; a
    /// lease left by a killed writer expires after ten minutes.
    #[error("another writer is updating this account's search index; retry later")]
    Busy,
    /// This writer's lease was taken over (it was not renewed in time);
    /// nothing more is uploaded. Open a new writer.
    #[error("the search index lease was taken over by another writer")]
    LeaseLost,
    /// The index was opened for reading only.
    #[error("the search index was opened read-only")]
    ReadOnly,
}
