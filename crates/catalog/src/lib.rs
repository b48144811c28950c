//! Lifeboat's catalog: metadata in SQL (SQLite or PostgreSQL, one codebase)
//! and the job queue.
//!
//! Open a [`Catalog`] from a URL; it migrates the schema. Every method that
//! touches an account's data takes its [`AccountId`] and cannot see or
//! change another account's rows. Domain types are plain serde structs; SQL
//! stays inside this crate.

#![warn(missing_docs)]

mod accounts;
mod activity;
mod clock;
mod connections;
mod crypto;
mod db;
mod entities;
mod error;
mod jobs;
mod recovery;
mod rules;
mod runs;
mod schedule;
mod tags;
mod tasks;
mod types;
mod users;

pub use accounts::Account;
pub use activity::{Activity, ActivityFilter, MAX_ACTIVITY_PAGE, NewActivity, write_activity_csv};
pub use clock::{Clock, ManualClock, SystemClock};
pub use connections::{Connection, ConnectionStatus, NewConnection};
pub use crypto::{CatalogKey, Secret};
pub use db::{Backend, Catalog, CatalogOptions, RetryPolicy};
pub use entities::{DiscoveredEntity, Entity, EntityFilter, MAX_PAGE};
pub use error::{Error, Result};
pub use jobs::{
    Claimed, Enqueued, JOBS_PAGE_WINDOW, Job, JobCounts, JobFilter, JobProgress, Lease,
    MAX_JOB_PAGE, NewJob, backup_dedupe_key,
};
pub use recovery::{CalendarDay, CalendarSnapshot, EntitySnapshot, JobItem, MAX_JOB_ITEMS_PAGE};
pub use rules::{
    ActivationRule, CsvProblem, Deactivation, NewRule, RuleDefinition, RuleKind, RuleMode,
    UrlMatch, parse_account_csv,
};
pub use runs::{BackupRun, DailyItems, ItemFailure, RunCounts, RunFinish};
pub use tags::Tag;
pub use tasks::{DELETION_GRACE, NewTask, Retention, Task, TaskSettings};
pub use types::{
    AccountId, AccountStatus, ActivityId, ActivityKind, ActivityStatus, ApiTokenId, BadId,
    ConnectionId, EntityId, EntityKind, EntityStatus, EntityType, Frequency, JobId, JobKind,
    JobStatus, Permission, Role, RuleId, RunId, RunOutcome, Service, SessionId, SubService, TagId,
    TaskId, TaskStatus, UnknownVariant, UserId,
};
pub use users::{
    ApiToken, ApiTokenPrincipal, IssuedApiToken, IssuedSession, MIN_PASSWORD_LEN, NewApiToken,
    NewUser, SESSION_IDLE, SESSION_MAX, Session, SessionUser, User,
};
