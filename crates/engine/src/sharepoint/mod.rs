//! SharePoint Online (SPEC F-D3): site discovery and site backup.
//!
//! A site backup is one vault snapshot (kind `sharepoint-site`, `format` 1)
//! laid out as
//!
//! ```text
//! site                          content: the site's Graph JSON (GET /sites/{id})
//! lists/<list id>/              folder metadata: the list's Graph JSON with its columns
//! lists/<list id>/<item id>     content: the list item's Graph JSON with its fields;
//!                               meta: {"eTag", "lastModifiedDateTime"}
//! pages/<page id>               content: the sitePage JSON (title, layout, canvas when
//!                               Graph exposes it); meta: {"eTag", "lastModifiedDateTime"}
//! drives/<drive id>/...         a document library, in the drive module's own layout
//! ```
//!
//! Two parts: [`SiteSubService::Drive`] (every document library, through
//! [`crate::drive::backup_drive`]; its delta state is a map drive id → that
//! drive's state) and [`SiteSubService::Site`] (site JSON, generic lists and
//! their items, pages; its delta state holds each list's item delta link).
//!
//! Lists whose template is a library (`documentLibrary`, `webPageLibrary`,
//! ...) are left out of `lists/`: their content is a drive (the Drive part)
//! or the site's pages (`pages/`).
//!
//! List item attachments: Microsoft Graph v1.0 has no endpoint for them (a
//! listItem has no attachments navigation; only the `Attachments` field
//! says that an item has some), so they cannot be backed up through Graph.
//! The item and its fields are backed up, and the part's notes say how many
//! items have attachments that were left out.
//!
//! A sub-site is an entity of its own (discovered with its parent, backed up
//! by its own [`backup_site`] call): a site's backup never recurses into it.
//!
//! Incremental backups start from the parent snapshot: list items through
//! Graph's list item delta (a 410 for an expired link falls back to a full
//! enumeration, and whatever it does not list is removed); list metadata
//! and columns are read again only for lists whose eTag or modification
//! time changed; pages (no delta in Graph) are listed and only the changed
//! ones fetched.

mod backup;
mod discovery;

pub use backup::backup_site;
pub use discovery::discover_sites;

pub use crate::report::{BackupReport, ItemCounts, SubServiceReport};

use serde::{Deserialize, Serialize};

use crate::Cancel;
use crate::progress::Progress;

/// The snapshot kind of a site backup.
pub const SNAPSHOT_KIND: &str = "sharepoint-site";

/// The version of the layout above, stored as `format` in each snapshot's
/// metadata so that a later layout can still read older snapshots.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// A site found in the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredSite {
    /// The site's Graph id (`host,collection id,web id`).
    pub graph_id: String,
    /// Display name (the URL name when the site has none).
    pub display_name: String,
    /// The site's URL.
    pub web_url: String,
    /// Whether this is a sub-site (a web below a site collection's root).
    pub is_sub_site: bool,
    /// The parent site's Graph id, for a sub-site.
    pub parent_id: Option<String>,
    /// The Microsoft 365 group whose team site this is, if any: such a site
    /// is also backed up with its group.
    pub group_id: Option<String>,
    /// Properties for filters and rules (hostname, URL path, created, ...).
    pub properties: serde_json::Value,
}

/// The parts of a site a backup covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteSubService {
    /// Document libraries (their drives).
    Drive,
    /// Site metadata, lists and list items, pages.
    Site,
}

impl SiteSubService {
    /// Every sub-service, in backup order.
    pub const ALL: [SiteSubService; 2] = [SiteSubService::Site, SiteSubService::Drive];
}

impl From<SiteSubService> for crate::report::SubService {
    fn from(s: SiteSubService) -> Self {
        match s {
            SiteSubService::Drive => Self::Drive,
            SiteSubService::Site => Self::Site,
        }
    }
}

/// How a site backup runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteBackupOptions {
    /// Which sub-services to back up (others are carried from the parent).
    pub sub_services: Vec<SiteSubService>,
}

impl Default for SiteBackupOptions {
    fn default() -> Self {
        Self {
            sub_services: SiteSubService::ALL.to_vec(),
        }
    }
}

/// One site backup.
pub struct SiteBackup<'a> {
    /// The tenant's Graph client.
    pub graph: &'a graph::GraphClient,
    /// The account's vault.
    pub vault: &'a vault::Account,
    /// The site's Graph id.
    pub site_id: &'a str,
    /// The snapshot of the previous backup of this site, if any: the new
    /// one starts from it and its delta state.
    pub parent: Option<&'a vault::SnapshotId>,
    /// Options.
    pub options: &'a SiteBackupOptions,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
    /// Checked between items.
    pub cancel: &'a Cancel,
    /// Caller metadata stored with the snapshot (task, entity ids), merged
    /// into the engine's own.
    pub meta: serde_json::Value,
}
