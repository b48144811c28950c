//! Lifeboat's worker: the glue between the catalog (tasks, entities, jobs,
//! runs), the engine, the vault and the Graph client.
//!
//! - [`Runtime`]: catalog, vault, master key and the per-connection Graph
//!   clients, opened from a data directory (embedded defaults) or from a
//!   database URL and a vault URL (production).
//! - [`jobs`]: what discovery and backup jobs do and record.
//! - [`rules`]: bulk activation rules, applied once or after every discovery.
//! - [`purge`]: backups no longer kept (archived past retention, deletions past grace).
//! - [`Worker`]: claims leased jobs and runs them; reclaims dead workers' jobs.
//! - [`Scheduler`]: enqueues due backups and the daily discovery.

mod error;
pub mod export;
pub mod jobs;
pub mod progress;
pub mod purge;
pub mod restore;
pub mod rules;
mod runtime;
pub mod scheduler;
pub mod search;
mod worker;

pub use error::{Result, WorkerError};
pub use export::{
    ExportRequest, ExportSummary, ExportedFileView, enqueue_export, sweep_expired_downloads,
};
pub use jobs::{BackupSummary, DiscoverySummary, PartSummary, discover_task, task_entities};
pub use restore::{RestoreDestination, RestoreRequest, RestoreSummary, enqueue_restore};
pub use rules::{RuleOutcome, apply_rule};
pub use runtime::{KeySource, MASTER_KEY_FILE, Runtime, RuntimeOptions, Storage};
pub use scheduler::{EnqueuedBackups, Scheduler, TickReport, enqueue_backups, is_protected};
pub use worker::{Worker, execute};
