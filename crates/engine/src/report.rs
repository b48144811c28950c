//! What a backup of one entity reports, whatever the workload: one part per
//! sub-service, each with its outcome (SPEC F-D6), counts and failures.

use serde::{Deserialize, Serialize};

use crate::faults::{ItemFailure, Outcome};

/// The parts of an entity a backup covers, across every workload. The names
/// are the ones used in the catalog, in snapshot metadata and in snapshot
/// paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubService {
    /// Exchange mail folders and messages.
    Mail,
    /// Exchange contact folders and contacts.
    Contacts,
    /// A mailbox's calendars, or a group's calendar.
    Calendar,
    /// Exchange To Do lists and tasks.
    Tasks,
    /// Files: a OneDrive, or the document libraries of a site.
    Drive,
    /// A site's lists, list items and pages.
    Site,
    /// A group's conversations (threads and posts).
    Conversations,
    /// A team's channels, messages and replies.
    Channels,
    /// A group's or team's own settings, members and owners.
    Metadata,
}

impl SubService {
    /// The name used in the catalog and in snapshot paths.
    pub fn as_str(self) -> &'static str {
        match self {
            SubService::Mail => "mail",
            SubService::Contacts => "contacts",
            SubService::Calendar => "calendar",
            SubService::Tasks => "tasks",
            SubService::Drive => "drive",
            SubService::Site => "site",
            SubService::Conversations => "conversations",
            SubService::Channels => "channels",
            SubService::Metadata => "metadata",
        }
    }
}

impl std::fmt::Display for SubService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts of one sub-service of a backup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemCounts {
    /// Items seen for the first time.
    pub new: u64,
    /// Items whose content or metadata changed.
    pub changed: u64,
    /// Items gone since the parent snapshot.
    pub deleted: u64,
    /// Items that could not be backed up.
    pub failed: u64,
    /// Items in the snapshot (after the backup).
    pub total: u64,
    /// Bytes downloaded from Microsoft 365.
    pub bytes_read: u64,
}

/// What one sub-service of a backup did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubServiceReport {
    /// Which sub-service.
    pub sub_service: SubService,
    /// Its outcome (SPEC F-D6).
    pub outcome: Outcome,
    /// Counts.
    pub counts: ItemCounts,
    /// Items that failed, with reasons a person understands.
    pub failures: Vec<ItemFailure>,
    /// Recovered trouble worth showing (an expired delta token, say).
    pub notes: Vec<String>,
    /// Why it stopped, when it did.
    pub error: Option<String>,
}

/// What the backup of one entity did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupReport {
    /// The snapshot written (always, unless the backup was cancelled or
    /// failed before anything could be committed).
    pub snapshot_id: Option<vault::SnapshotId>,
    /// One report per sub-service.
    pub parts: Vec<SubServiceReport>,
    /// The delta state stored with the snapshot, keyed by sub-service name.
    pub delta_state: serde_json::Value,
    /// Bytes the vault stored for this snapshot (after dedup and compression).
    pub bytes_stored: u64,
    /// Graph requests this backup made.
    pub requests: u64,
}

impl BackupReport {
    /// The worst outcome of its parts.
    pub fn outcome(&self) -> Outcome {
        let rank = |o: Outcome| match o {
            Outcome::Success => 0,
            Outcome::Partial => 1,
            Outcome::Failed => 2,
            Outcome::Cancelled => 3,
        };
        self.parts
            .iter()
            .map(|p| p.outcome)
            .max_by_key(|o| rank(*o))
            .unwrap_or(Outcome::Success)
    }

    /// The part of one sub-service.
    pub fn part(&self, sub: SubService) -> Option<&SubServiceReport> {
        self.parts.iter().find(|p| p.sub_service == sub)
    }
}
