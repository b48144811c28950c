//! Microsoft 365 groups and Microsoft Teams (SPEC F-D4): discovery and the
//! backup of one group or team.
//!
//! A group or team backup is one vault snapshot (kind `group` or `team`)
//! laid out as
//!
//! ```text
//! metadata/group                         the group's Graph JSON
//! metadata/team                          the team's Graph JSON: settings, visibility, description (teams)
//! metadata/members                       the group's members: [{id, displayName, userPrincipalName, mail}]
//! metadata/owners                        the group's owners, same shape
//! metadata/teamMembers                   the team's conversationMembers, with their roles (teams)
//! metadata/channels                      every channel's Graph JSON; private and shared ones
//!                                        carry their `members` (conversationMembers with roles)
//! conversations/<thread id>/             folder meta: the conversationThread JSON
//! conversations/<thread id>/<post id>    the post's JSON; `attachments` lists its attachments
//! conversations/<thread id>/<post id>.attachments/<attachment id>
//!                                        the fileAttachment JSON as Graph returns it (contentBytes)
//! calendar/<event id>                    the event's JSON (series masters hold their exceptions);
//!                                        meta: {changeKey}
//! channels/<channel id>/                 folder meta: the channel's JSON
//! channels/<channel id>/<message id>     the top-level chatMessage JSON (a deleted one is kept as
//!                                        Graph shows it, with deletedDateTime, so that its
//!                                        replies keep their thread)
//! channels/<channel id>/<message id>.replies/<reply id>
//!                                        each live reply's chatMessage JSON
//! drives/                                folder meta: the group's drives (JSON array)
//! drives/<drive id>/...                  the document library, as `drive::backup_drive` lays it out
//! ```
//!
//! Every JSON record is stored without Graph's top-level `@odata.*`
//! annotations. Ids are Graph's own (immutable) ids; an id that cannot be a
//! path segment is an item failure, never a path.
//!
//! Incremental backups start from the parent snapshot and touch only what
//! changed:
//! - conversations: threads are listed (Graph has no delta for them), and only
//!   threads whose `lastDeliveredDateTime` moved have their posts read again;
//! - calendar: a listing of ids and change keys, then only changed events
//!   (in `$batch`es of 20), as the Exchange calendar does;
//! - channels: `messages/delta` per channel. Delta returns top-level messages
//!   without their replies (and, on Microsoft 365, only the last eight
//!   months), so a first backup (or one after the delta token expired) reads
//!   the whole channel from `messages?$expand=replies` and takes a delta link
//!   from a delta round filtered to `lastModifiedDateTime gt <now>` (nearly
//!   empty); later backups read the delta and fetch the replies of the
//!   messages it reports (a new or edited reply marks its message changed);
//! - drives: `drive::backup_drive`, whose per-drive state is kept here by
//!   drive id.
//!
//! Metadata (group, team, members, owners, channels) is small and read in
//! full every time: a handful of requests per group.

mod backup;
mod discovery;

pub use backup::backup_group;
pub use discovery::discover_groups;

pub use crate::report::{BackupReport, ItemCounts, SubService, SubServiceReport};

use serde::{Deserialize, Serialize};

use crate::Cancel;
use crate::progress::Progress;

/// Whether a Microsoft 365 group has a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// A Microsoft 365 group without a team.
    Group,
    /// A group with a team (`resourceProvisioningOptions` holds "Team").
    Team,
}

/// A Microsoft 365 group (or team) found in the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredGroup {
    /// The group's Graph id (a team has its group's id).
    pub graph_id: String,
    /// Display name.
    pub display_name: String,
    /// The group's SMTP address.
    pub mail: Option<String>,
    /// Group or team.
    pub kind: GroupKind,
    /// `Public`, `Private` or `HiddenMembership`, as Graph says.
    pub visibility: Option<String>,
    /// Properties for filters and rules (description, mailNickname,
    /// createdDateTime, classification, visibility).
    pub properties: serde_json::Value,
}

/// How a group or team backup runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupBackupOptions {
    /// Which sub-services to back up, among Metadata, Conversations,
    /// Calendar, Drive and Channels (Channels only for teams); others are
    /// carried from the parent.
    pub sub_services: Vec<SubService>,
    /// Requests in flight per channel or conversation list. Teams allows a
    /// few requests per second on one team or channel, and Outlook four
    /// concurrent requests per group mailbox: keep this small.
    pub concurrency: usize,
}

impl GroupBackupOptions {
    /// Every sub-service a group or team has, in backup order.
    pub const ALL: [SubService; 5] = [
        SubService::Metadata,
        SubService::Conversations,
        SubService::Calendar,
        SubService::Drive,
        SubService::Channels,
    ];
}

impl Default for GroupBackupOptions {
    fn default() -> Self {
        Self {
            sub_services: Self::ALL.to_vec(),
            concurrency: 2,
        }
    }
}

/// One group or team backup.
pub struct GroupBackup<'a> {
    /// The tenant's Graph client.
    pub graph: &'a graph::GraphClient,
    /// The account's vault.
    pub vault: &'a vault::Account,
    /// The group's Graph id.
    pub group_id: &'a str,
    /// Whether the group has a team (its channels and team settings are then
    /// backed up too; the snapshot kind is `team`).
    pub is_team: bool,
    /// The snapshot of the previous backup of this group, if any.
    pub parent: Option<&'a vault::SnapshotId>,
    /// Options.
    pub options: &'a GroupBackupOptions,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
    /// Checked between items.
    pub cancel: &'a Cancel,
    /// Caller metadata stored with the snapshot (task, entity ids), merged
    /// into the engine's own.
    pub meta: serde_json::Value,
}
