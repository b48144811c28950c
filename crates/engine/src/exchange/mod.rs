//! Exchange Online (SPEC F-D1): mailbox discovery and mailbox backup.
//!
//! A mailbox backup is one vault snapshot laid out as
//!
//! ```text
//! mail/<folder id>/                 folder metadata: the Graph mailFolder JSON
//! mail/<folder id>/<message id>     content: the message's MIME ($value); meta: Graph JSON
//! contacts/<folder id>/<contact id> content: the contact's Graph JSON
//! calendar/<calendar id>/<event id> content: the event's Graph JSON, exceptions expanded
//! tasks/<list id>/<task id>         content: the To Do task's Graph JSON
//! ```
//!
//! Folders are flat under each sub-service and keyed by their (immutable)
//! Graph id; the hierarchy lives in each folder's `parentFolderId`. A moved
//! or renamed folder is then a metadata change: its messages stay where they
//! are and are carried by reference.
//!
//! Incremental backups start from the parent snapshot and apply what Graph's
//! delta reports (per mail folder, contact folder and task list); calendars,
//! which have no general delta in v1.0, are compared by change key from a
//! listing of ids. The delta links are kept in the snapshot's metadata, so
//! the snapshot and the state that continues from it can never disagree.

mod backup;
mod discovery;

pub use backup::backup_mailbox;
pub(crate) use discovery::directory_properties;
pub use discovery::discover_mailboxes;

pub use crate::report::{BackupReport, ItemCounts, SubServiceReport};

use serde::{Deserialize, Serialize};

use crate::Cancel;
use crate::progress::Progress;

/// What the product tells an administrator looking for public folders.
pub const PUBLIC_FOLDERS_NOTICE: &str = "Public folders are not backed up: Microsoft ended API access \
to Exchange Online public folders in October 2026, so no backup product can read them any more.";

/// The parts of a mailbox a backup covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeSubService {
    /// Mail folders and messages (including hidden folders and Recoverable Items).
    Mail,
    /// Contact folders and contacts.
    Contacts,
    /// Calendars and events.
    Calendar,
    /// To Do lists and tasks.
    Tasks,
}

impl ExchangeSubService {
    /// Every sub-service, in backup order.
    pub const ALL: [ExchangeSubService; 4] = [
        ExchangeSubService::Mail,
        ExchangeSubService::Contacts,
        ExchangeSubService::Calendar,
        ExchangeSubService::Tasks,
    ];

    /// The name used in the catalog and in snapshot paths.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeSubService::Mail => "mail",
            ExchangeSubService::Contacts => "contacts",
            ExchangeSubService::Calendar => "calendar",
            ExchangeSubService::Tasks => "tasks",
        }
    }
}

/// What discovery looks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DiscoveryOptions {
    /// Offer mailboxes of users without a license (SPEC F-D1: "when the task says so").
    pub include_unlicensed: bool,
}

/// The kind of a discovered mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailboxKind {
    /// A person's mailbox.
    User,
    /// A shared mailbox.
    Shared,
}

/// A mailbox found in the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredMailbox {
    /// The user's Graph id (the mailbox is addressed as `/users/{id}`).
    pub graph_id: String,
    /// Display name.
    pub display_name: String,
    /// Primary SMTP address (or the UPN when the user has no mail attribute).
    pub email: Option<String>,
    /// User or shared.
    pub kind: MailboxKind,
    /// Whether the user has a license.
    pub licensed: bool,
    /// False for disabled accounts (leavers): still backed up, shown as disabled.
    pub account_enabled: bool,
    /// Directory properties for filters and rules (department, city, ...).
    pub properties: serde_json::Value,
}

/// How a mailbox backup runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupOptions {
    /// Which sub-services to back up (others are carried from the parent).
    pub sub_services: Vec<ExchangeSubService>,
    /// Item downloads in flight per mailbox. Exchange allows 4 concurrent
    /// requests per mailbox; the Graph client enforces that in any case.
    pub concurrency: usize,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            sub_services: ExchangeSubService::ALL.to_vec(),
            concurrency: 4,
        }
    }
}

/// One mailbox backup.
pub struct MailboxBackup<'a> {
    /// The tenant's Graph client.
    pub graph: &'a graph::GraphClient,
    /// The account's vault.
    pub vault: &'a vault::Account,
    /// The mailbox (the user's Graph id).
    pub mailbox_id: &'a str,
    /// The snapshot of the previous backup of this mailbox, if any: the new
    /// one starts from it and its delta links.
    pub parent: Option<&'a vault::SnapshotId>,
    /// Options.
    pub options: &'a BackupOptions,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
    /// Checked between items.
    pub cancel: &'a Cancel,
    /// Caller metadata stored with the snapshot (task, entity ids), merged
    /// into the engine's own.
    pub meta: serde_json::Value,
}

impl From<ExchangeSubService> for crate::report::SubService {
    fn from(s: ExchangeSubService) -> Self {
        match s {
            ExchangeSubService::Mail => Self::Mail,
            ExchangeSubService::Contacts => Self::Contacts,
            ExchangeSubService::Calendar => Self::Calendar,
            ExchangeSubService::Tasks => Self::Tasks,
        }
    }
}
