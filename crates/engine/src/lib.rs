//! Lifeboat's engine: backup, restore and export per workload. It knows
//! neither HTTP nor SQL: it reads Microsoft 365 through the `graph` client,
//! writes the `vault`, and reports through traits ([`progress::Progress`],
//! and the catalog port), so the CLI, a worker and tests each plug in their
//! own.
//!
//! Built so far: discovery and backup of every workload ([`exchange`],
//! [`onedrive`], [`sharepoint`], [`teams`]), browsing snapshots
//! ([`browse`]), restore of every workload with every restore type
//! ([`restore`]), progress reporting, the fault bus that turns item
//! failures into a run outcome (SPEC F-D6), and backup scheduling (SPEC
//! F-B3).

pub mod browse;
pub mod cancel;
pub mod drive;
pub mod error;
pub mod exchange;
pub mod export;
pub mod faults;
pub mod onedrive;
pub mod progress;
pub mod report;
pub mod restore;
pub mod run;
pub mod schedule;
pub mod sharepoint;
pub mod teams;

pub use cancel::Cancel;
pub use error::{EngineError, Result};
pub use report::{BackupReport, ItemCounts, SubService, SubServiceReport};
