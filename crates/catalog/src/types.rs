//! Ids, enums and the small helpers shared by the domain types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A stored string that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {type_name} value {value:?}")]
pub struct UnknownVariant {
    /// The enum's name.
    pub type_name: &'static str,
    /// The value that was not recognised.
    pub value: String,
}

/// A malformed id string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {type_name} {value:?}")]
pub struct BadId {
    /// The id type's name.
    pub type_name: &'static str,
    /// The value that was not a UUID.
    pub value: String,
}

macro_rules! id_type {
    ($($(#[$m:meta])* $name:ident;)+) => {$(
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = BadId;
            fn from_str(s: &str) -> Result<Self, BadId> {
                Uuid::parse_str(s).map(Self).map_err(|_| BadId {
                    type_name: stringify!($name),
                    value: s.to_string(),
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    )+};
}

id_type! {
    /// A Lifeboat account (a customer organisation).
    AccountId;
    /// A Microsoft 365 tenant connection.
    ConnectionId;
    /// A backup task.
    TaskId;
    /// A protected entity (mailbox, drive, site, group, team).
    EntityId;
    /// A tag.
    TagId;
    /// An activation rule.
    RuleId;
    /// A backup run of one entity and sub-service.
    RunId;
    /// An activity log entry.
    ActivityId;
    /// A queued job.
    JobId;
    /// A user of an account.
    UserId;
    /// A signed-in session.
    SessionId;
    /// An API token.
    ApiTokenId;
}

macro_rules! str_enum {
    ($($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? })+) => {$(
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $s)] $var),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The stored (snake_case) form.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $s),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::types::UnknownVariant;
            fn from_str(s: &str) -> ::std::result::Result<Self, $crate::types::UnknownVariant> {
                match s {
                    $($s => Ok($name::$var),)+
                    _ => Err($crate::types::UnknownVariant { type_name: stringify!($name), value: s.to_string() }),
                }
            }
        }
    )+};
}

pub(crate) use str_enum;

str_enum! {
    /// Lifecycle of an account.
    AccountStatus {
        /// In the 14-day trial.
        Trial = "trial",
        /// Subscribed.
        Active = "active",
        /// Access limited (trial over, unpaid).
        Suspended = "suspended",
        /// Removal requested; data is deleted after the grace period.
        Closing = "closing",
    }

    /// A protected Microsoft 365 service (one per backup task).
    Service {
        /// Exchange Online: mail, contacts, calendars, tasks, notes.
        Exchange = "exchange",
        /// OneDrive for Business.
        OneDrive = "onedrive",
        /// SharePoint Online.
        SharePoint = "sharepoint",
        /// Microsoft Teams and Microsoft 365 Groups.
        Teams = "teams",
    }

    /// How often a task backs up.
    Frequency {
        /// Once a day at the backup hour.
        Daily = "daily",
        /// Every third day.
        Every3Days = "every_3_days",
        /// Once a week.
        Weekly = "weekly",
        /// Three times a day, eight hours apart.
        ThreeTimesADay = "three_times_a_day",
    }

    /// Whether a task runs.
    TaskStatus {
        /// Scheduled backups run.
        Active = "active",
        /// No scheduled backups.
        Paused = "paused",
    }

    /// What kind of thing an entity is.
    EntityKind {
        /// An Exchange mailbox.
        Mailbox = "mailbox",
        /// A user's OneDrive.
        OneDrive = "onedrive",
        /// A SharePoint site.
        Site = "site",
        /// A Microsoft 365 group.
        Group = "group",
        /// A team.
        Team = "team",
    }

    /// The finer type shown next to an entity.
    EntityType {
        /// A user's mailbox or drive.
        User = "user",
        /// A shared mailbox.
        Shared = "shared",
        /// A group (mailbox, site or conversations).
        Group = "group",
        /// A team.
        Team = "team",
        /// A SharePoint site that belongs to no group.
        Site = "site",
    }

    /// Status of an entity (F-C2).
    EntityStatus {
        /// Discovered, not protected.
        NotActive = "not_active",
        /// Protected, waiting for its next backup.
        Scheduled = "scheduled",
        /// A backup is running.
        InProcess = "in_process",
        /// Last backup succeeded.
        Success = "success",
        /// Last backup finished with some failed items.
        Partial = "partial",
        /// Last backup failed.
        Failed = "failed",
        /// Protection paused.
        Paused = "paused",
        /// Deleted in Microsoft 365; its backups are kept.
        Archived = "archived",
        /// Protected by another task.
        BackedUpInAnotherTask = "backed_up_in_another_task",
    }

    /// How a finished run ended (F-D6).
    RunOutcome {
        /// Every item was backed up.
        Success = "success",
        /// Some items failed; they are named in the run's failures.
        Partial = "partial",
        /// The run failed (see its error summary).
        Failed = "failed",
        /// The run was cancelled.
        Cancelled = "cancelled",
    }

    /// A sub-service of an entity's backup.
    SubService {
        /// Mail folders and messages.
        Mail = "mail",
        /// Contacts.
        Contacts = "contacts",
        /// Calendars and events.
        Calendar = "calendar",
        /// To Do / Outlook tasks.
        Tasks = "tasks",
        /// OneNote notes.
        Notes = "notes",
        /// In-Place Archive.
        Archive = "archive",
        /// A drive (OneDrive or a document library).
        Drive = "drive",
        /// A SharePoint site (libraries, lists, pages).
        Site = "site",
        /// Group conversations.
        Conversations = "conversations",
        /// Team channels and messages.
        Channels = "channels",
        /// Team or group metadata.
        Metadata = "metadata",
    }

    /// What an activity log entry records.
    ActivityKind {
        /// A backup of an entity / sub-service.
        Backup = "backup",
        /// A restore.
        Restore = "restore",
        /// An export.
        Export = "export",
        /// Discovery of entities.
        Discovery = "discovery",
        /// Activation or deactivation of entities.
        Activation = "activation",
        /// Deletion or purge of backups.
        Deletion = "deletion",
    }

    /// Status of an activity log entry.
    ActivityStatus {
        /// Started, not finished.
        InProgress = "in_progress",
        /// Succeeded.
        Success = "success",
        /// Finished with some failures.
        Partial = "partial",
        /// Failed.
        Failed = "failed",
        /// Cancelled.
        Cancelled = "cancelled",
    }

    /// What a job does.
    JobKind {
        /// Back up an entity (or a task).
        Backup = "backup",
        /// Restore.
        Restore = "restore",
        /// Export.
        Export = "export",
        /// Discover the entities of a task.
        Discovery = "discovery",
        /// Purge deleted tasks/entities or expired snapshots.
        Purge = "purge",
        /// Verify stored data.
        Verify = "verify",
    }

    /// What a user or API token may do. Each role includes the ones below it.
    Role {
        /// Created the account; everything, including the account itself.
        Owner = "owner",
        /// Everything in the account: users, tokens, tasks.
        Admin = "admin",
        /// Runs the service: tasks, backups, restores, jobs.
        Operator = "operator",
        /// Reads only.
        Viewer = "viewer",
    }

    /// Lifecycle of a job.
    JobStatus {
        /// Waiting to be claimed.
        Pending = "pending",
        /// Claimed by a worker holding a lease.
        Running = "running",
        /// Finished successfully.
        Succeeded = "succeeded",
        /// Failed for good.
        Failed = "failed",
        /// Cancelled.
        Cancelled = "cancelled",
    }
}

str_enum! {
    /// What a user may do, beyond reading (SPEC F-H2). A user with a custom
    /// permission list has exactly those; others have their role's.
    Permission {
        /// Change tasks, activate and pause entities, run backups.
        ManageBackups = "manage_backups",
        /// See the content of backed-up items (mail bodies, file text).
        PreviewData = "preview_data",
        /// Restore backed-up data into Microsoft 365.
        Restore = "restore",
        /// Export backed-up data to files.
        Export = "export",
    }
}

impl Role {
    /// Whether the role grants `p` when the user has no custom list.
    /// Owners and administrators may do everything; operators run backups,
    /// restores and exports but see item contents only when granted
    /// preview, because reading people's mail is a separate trust; viewers
    /// read the catalog only.
    pub fn grants(self, p: Permission) -> bool {
        match self {
            Role::Owner | Role::Admin => true,
            Role::Operator => p != Permission::PreviewData,
            Role::Viewer => false,
        }
    }

    fn rank(self) -> u8 {
        match self {
            Role::Owner => 3,
            Role::Admin => 2,
            Role::Operator => 1,
            Role::Viewer => 0,
        }
    }

    /// Whether this role includes everything `other` may do.
    pub fn includes(self, other: Role) -> bool {
        self.rank() >= other.rank()
    }
}
