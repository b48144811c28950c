//! Restore (SPEC F-E4, F-E5, F-E6): put what a snapshot holds back into
//! Microsoft 365, whole or in part, into the original entity or another one,
//! with one of the restore types.
//!
//! What every workload shares lives here: the [`Selection`] of what to
//! restore (snapshot paths, as browse and search return them), the
//! [`RestoreMode`], the [`RestoreOptions`], the per-item log
//! ([`RestoreLog`]) and the [`Tally`] that turns what each item did into a
//! [`RestoreReport`]. Each workload's module restores its snapshot layout
//! (documented in the backup module of the same workload).
//!
//! Cancellation is checked between items, never inside one: an item is
//! either fully written to the destination or not at all (drive uploads go
//! through upload sessions that are abandoned on cancel), so a cancelled
//! restore leaves a destination that is consistent, holding a subset of what
//! was asked.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use graph::GraphClient;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use vault::SnapshotInfo;

use crate::Cancel;
use crate::faults::Outcome;
use crate::progress::Progress;
use crate::report::SubService;

pub mod drive;
pub mod exchange;
pub mod onedrive;
mod series;
pub mod sharepoint;
pub mod teams;

/// How restored items meet what the destination already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreMode {
    /// Into a new folder/location named for the restore, the original
    /// structure kept below it; nothing existing is touched.
    NonDestructive,
    /// Missing items and folders come back; existing items are overwritten
    /// with the snapshot's version.
    Replace,
    /// Missing items and folders come back; existing items are left alone.
    Bypass,
    /// Drives and sites: every restored file is written beside what exists,
    /// its name carrying the restore's timestamp (`report 20230401000525.docx`).
    Duplicate,
}

impl RestoreMode {
    /// Every mode.
    pub const ALL: [RestoreMode; 4] = [
        RestoreMode::NonDestructive,
        RestoreMode::Replace,
        RestoreMode::Bypass,
        RestoreMode::Duplicate,
    ];

    /// The name used in the API, the CLI and job payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            RestoreMode::NonDestructive => "non-destructive",
            RestoreMode::Replace => "replace",
            RestoreMode::Bypass => "bypass",
            RestoreMode::Duplicate => "duplicate",
        }
    }
}

impl std::fmt::Display for RestoreMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A restore type name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown restore type {0:?}: expected non-destructive, replace, bypass or duplicate")]
pub struct UnknownMode(pub String);

impl FromStr for RestoreMode {
    type Err = UnknownMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RestoreMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_string()))
    }
}

/// What part of a snapshot to restore (or export). Paths are snapshot paths
/// ("mail/<folder id>", "drive/items/<item id>"), as browse and search give
/// them. Nothing chosen means the whole snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// Sub-services restored whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_services: Vec<SubService>,
    /// Folders restored with everything below them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<String>,
    /// Single items.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

impl Selection {
    /// The whole snapshot.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether nothing in particular was chosen, so everything is restored.
    pub fn is_everything(&self) -> bool {
        self.sub_services.is_empty() && self.folders.is_empty() && self.items.is_empty()
    }

    /// Whether any of `sub`'s data is selected.
    pub fn touches(&self, sub: SubService) -> bool {
        self.is_everything()
            || self.sub_services.contains(&sub)
            || self
                .folders
                .iter()
                .chain(&self.items)
                .any(|p| sub_service_of(p) == Some(sub))
    }

    /// Whether the item or folder at snapshot path `path` is selected: it
    /// is named, lies below a named folder, or lies in a named sub-service.
    pub fn covers(&self, path: &str) -> bool {
        let path = path.trim_matches('/');
        if self.is_everything() {
            return true;
        }
        if self
            .sub_services
            .iter()
            .any(|s| sub_service_of(path) == Some(*s))
        {
            return true;
        }
        self.items.iter().any(|i| i.trim_matches('/') == path)
            || self.folders.iter().any(|f| {
                let f = f.trim_matches('/');
                path == f || path.starts_with(&format!("{f}/"))
            })
    }

    /// Whether the folder at `path` must be entered to reach what is
    /// selected (it is covered, or something selected lies below it).
    pub fn reaches(&self, path: &str) -> bool {
        let path = path.trim_matches('/');
        if self.covers(path) {
            return true;
        }
        let below = format!("{path}/");
        self.folders
            .iter()
            .chain(&self.items)
            .any(|p| p.trim_matches('/').starts_with(&below))
    }

    /// Checks every path names a sub-service that `allowed` holds, so a
    /// request for "mail/…" against a drive snapshot is refused up front.
    pub fn validate(&self, allowed: &[SubService]) -> Result<(), String> {
        for s in &self.sub_services {
            if !allowed.contains(s) {
                return Err(format!("this snapshot has no {s} to restore"));
            }
        }
        for p in self.folders.iter().chain(&self.items) {
            if p.trim_matches('/').is_empty() {
                return Err("an empty path was selected".into());
            }
            if !sub_service_of(p).is_some_and(|s| allowed.contains(&s)) {
                return Err(format!("{p:?} is not in this snapshot's layout"));
            }
        }
        Ok(())
    }
}

/// The sub-service a snapshot path belongs to: its first segment, where a
/// site's or group's libraries (`drives/…`) are its Drive part and a site's
/// lists and pages its Site part.
pub fn sub_service_of(path: &str) -> Option<SubService> {
    Some(match first_segment(path) {
        "mail" => SubService::Mail,
        "contacts" => SubService::Contacts,
        "calendar" => SubService::Calendar,
        "tasks" => SubService::Tasks,
        "drive" | "drives" => SubService::Drive,
        "site" | "lists" | "pages" => SubService::Site,
        "conversations" => SubService::Conversations,
        "channels" => SubService::Channels,
        "metadata" => SubService::Metadata,
        _ => return None,
    })
}

fn first_segment(path: &str) -> &str {
    path.trim_matches('/').split('/').next().unwrap_or("")
}

/// How a restore is carried out, beyond what and where.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOptions {
    /// The restore type.
    pub mode: RestoreMode,
    /// When the restore was asked for: the non-destructive folder's name and
    /// the duplicate suffix are made from it, so a retried job reuses them.
    pub requested_at: DateTime<Utc>,
    /// Exchange: a category added to every restored item.
    #[serde(default)]
    pub tag: Option<String>,
    /// Exchange: folders and calendars the restore creates are marked
    /// " (Restored)" so a user tells them from their own.
    #[serde(default)]
    pub mark_restored: bool,
    /// Drives: restore each file's earlier versions too, oldest first.
    #[serde(default)]
    pub include_versions: bool,
    /// Items restored at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_concurrency() -> usize {
    4
}

impl RestoreOptions {
    /// Options for `mode`, asked for now.
    pub fn new(mode: RestoreMode) -> Self {
        Self {
            mode,
            requested_at: Utc::now(),
            tag: None,
            mark_restored: false,
            include_versions: false,
            concurrency: default_concurrency(),
        }
    }

    /// The folder a non-destructive restore writes into ("Restored
    /// 2026-11-29 14:05:09"), or the restored team's suffix.
    pub fn restore_folder_name(&self) -> String {
        format!("Restored {}", self.requested_at.format("%Y-%m-%d %H:%M:%S"))
    }

    /// The suffix of duplicated files (`20230401000525`).
    pub fn duplicate_suffix(&self) -> String {
        self.requested_at.format("%Y%m%d%H%M%S").to_string()
    }

    /// `name` with the duplicate suffix before its extension
    /// ("report.docx" → "report 20230401000525.docx").
    pub fn duplicate_name(&self, name: &str) -> String {
        let suffix = self.duplicate_suffix();
        match name.rfind('.') {
            Some(dot) if dot > 0 => format!("{} {suffix}{}", &name[..dot], &name[dot..]),
            _ => format!("{name} {suffix}"),
        }
    }
}

/// What happened to one item of a restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    /// Written where nothing was (created).
    Restored,
    /// Written over what existed (replace).
    Overwritten,
    /// Left alone on purpose (bypass found it present, or the item type
    /// cannot be restored); the detail says why.
    Skipped,
    /// Could not be restored; the detail says why.
    Failed,
    /// Written into an export's files.
    Exported,
}

impl ItemOutcome {
    /// The name used in the catalog and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::Restored => "restored",
            ItemOutcome::Exported => "exported",
            ItemOutcome::Overwritten => "overwritten",
            ItemOutcome::Skipped => "skipped",
            ItemOutcome::Failed => "failed",
        }
    }
}

/// One line of a restore's per-item log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemLogEntry {
    /// The item's snapshot path.
    pub path: String,
    /// What a person calls it (subject, file path, contact name).
    pub name: String,
    /// What happened.
    pub outcome: ItemOutcome,
    /// Why, for skipped and failed items; the new id or location otherwise.
    pub detail: Option<String>,
    /// Bytes written.
    pub bytes: u64,
}

/// Receives the per-item log: the catalog in a worker, memory in tests.
pub trait RestoreLog: Send + Sync {
    /// One item is done.
    fn record(&self, entry: ItemLogEntry);
}

/// A log kept in memory.
#[derive(Default)]
pub struct MemoryLog(Mutex<Vec<ItemLogEntry>>);

impl MemoryLog {
    /// Everything logged so far.
    pub fn entries(&self) -> Vec<ItemLogEntry> {
        self.0.lock().clone()
    }
}

impl RestoreLog for MemoryLog {
    fn record(&self, entry: ItemLogEntry) {
        self.0.lock().push(entry);
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    /// Items created in the destination.
    pub restored: u64,
    /// Items written over existing ones.
    pub overwritten: u64,
    /// Items left alone.
    pub skipped: u64,
    /// Items that failed.
    pub failed: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Folders, lists, channels and calendars created.
    pub containers_created: u64,
    /// Graph requests made.
    pub requests: u64,
    /// The destination entity's Graph id, when the restore created it (a
    /// re-created team) or chose it (the non-destructive folder's id).
    pub destination: Option<String>,
    /// Where a person finds what was restored ("Restored 2026-11-29 14:05:09").
    pub location: Option<String>,
    /// Things a person should know (what could not be restored and why).
    pub notes: Vec<String>,
    /// Whether the restore stopped early because it was cancelled.
    pub cancelled: bool,
}

impl RestoreReport {
    /// Success, Partial (some items failed), Failed (nothing could be
    /// restored), or Cancelled.
    pub fn outcome(&self) -> Outcome {
        let done = self.restored + self.overwritten + self.skipped;
        if self.cancelled {
            Outcome::Cancelled
        } else if self.failed == 0 {
            Outcome::Success
        } else if done == 0 {
            Outcome::Failed
        } else {
            Outcome::Partial
        }
    }

    /// Adds another part's report to this one.
    pub fn absorb(&mut self, other: RestoreReport) {
        self.restored += other.restored;
        self.overwritten += other.overwritten;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.bytes += other.bytes;
        self.containers_created += other.containers_created;
        self.requests += other.requests;
        self.destination = self.destination.take().or(other.destination);
        self.location = self.location.take().or(other.location);
        self.notes.extend(other.notes);
        self.cancelled |= other.cancelled;
    }
}

/// Everything a workload's restore needs.
pub struct RestoreCtx<'a> {
    /// Graph client of the destination's tenant.
    pub graph: &'a GraphClient,
    /// The account's vault.
    pub vault: &'a vault::Account,
    /// The snapshot restored from.
    pub snapshot: &'a SnapshotInfo,
    /// What of it.
    pub selection: &'a Selection,
    /// How.
    pub options: &'a RestoreOptions,
    /// The destination entity's Graph id: a user (mailbox, OneDrive), a
    /// site, or a group. `None` restores into the snapshot's own entity, or
    /// (teams whose original is gone) into a new one the restore creates.
    pub destination: Option<&'a str>,
    /// Progress: items and bytes done of the total.
    pub progress: &'a dyn Progress,
    /// The per-item log.
    pub log: &'a dyn RestoreLog,
    /// Checked between items.
    pub cancel: &'a Cancel,
}

/// Counts what each item did, logs it and advances progress. Shared by a
/// restore's concurrent item tasks.
pub struct Tally<'a> {
    log: &'a dyn RestoreLog,
    progress: &'a dyn Progress,
    restored: AtomicU64,
    overwritten: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    containers: AtomicU64,
    requests: AtomicU64,
    notes: Mutex<Vec<String>>,
    /// Items the restore expects before it has looked: see [`estimated_items`].
    estimate: u64,
    /// Items and bytes the restore has found to do so far.
    planned_items: AtomicU64,
    planned_bytes: AtomicU64,
}

impl<'a> Tally<'a> {
    /// A tally logging to `ctx`'s log and progress.
    pub fn new(ctx: &RestoreCtx<'a>) -> Self {
        Self {
            log: ctx.log,
            progress: ctx.progress,
            restored: AtomicU64::new(0),
            overwritten: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            containers: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            notes: Mutex::new(Vec::new()),
            estimate: estimated_items(ctx.snapshot, ctx.selection),
            planned_items: AtomicU64::new(0),
            planned_bytes: AtomicU64::new(0),
        }
    }

    /// `items` more items of `bytes` bytes are to be restored. Progress
    /// shows the items found so far, or the estimate from the snapshot's
    /// counts while that is larger (so the total never shrinks while the
    /// restore looks), and the bytes found so far.
    pub fn plan(&self, items: u64, bytes: u64) {
        let i = self.planned_items.fetch_add(items, Ordering::Relaxed) + items;
        let b = self.planned_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.progress.set_total(i.max(self.estimate), b);
    }

    /// One item is done with `outcome`.
    pub fn item(
        &self,
        path: &str,
        name: &str,
        outcome: ItemOutcome,
        detail: Option<String>,
        bytes: u64,
    ) {
        let counter = match outcome {
            // A restore writes nothing it would call exported.
            ItemOutcome::Restored | ItemOutcome::Exported => &self.restored,
            ItemOutcome::Overwritten => &self.overwritten,
            ItemOutcome::Skipped => &self.skipped,
            ItemOutcome::Failed => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.progress.advance(1, bytes);
        self.log.record(ItemLogEntry {
            path: path.to_string(),
            name: name.to_string(),
            outcome,
            detail,
            bytes,
        });
    }

    /// A folder, list, channel or calendar was created.
    pub fn container_created(&self) {
        self.containers.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` Graph requests were made.
    pub fn requests(&self, n: u64) {
        self.requests.fetch_add(n, Ordering::Relaxed);
    }

    /// Something a person should know.
    pub fn note(&self, note: impl Into<String>) {
        let note = note.into();
        let mut notes = self.notes.lock();
        // Said once: the same thing met again (say, per item) adds nothing.
        if !notes.contains(&note) {
            notes.push(note);
        }
    }

    /// The report of everything tallied.
    pub fn report(&self, cancelled: bool) -> RestoreReport {
        RestoreReport {
            restored: self.restored.load(Ordering::Relaxed),
            overwritten: self.overwritten.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            containers_created: self.containers.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            destination: None,
            location: None,
            notes: self.notes.lock().clone(),
            cancelled,
        }
    }
}

/// The workload a snapshot belongs to, from its metadata's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// A mailbox (`exchange-mailbox`).
    Mailbox,
    /// A user's OneDrive (`onedrive`).
    OneDrive,
    /// A SharePoint site.
    Site,
    /// A Microsoft 365 group without a team (`group`).
    Group,
    /// A team (`team`).
    Team,
}

impl SnapshotKind {
    /// The kind of `snapshot`, or an error naming what it says.
    pub fn of(snapshot: &SnapshotInfo) -> crate::Result<Self> {
        let kind = snapshot
            .meta
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("");
        match kind {
            "exchange-mailbox" => Ok(SnapshotKind::Mailbox),
            "onedrive" => Ok(SnapshotKind::OneDrive),
            k if k == crate::sharepoint::SNAPSHOT_KIND => Ok(SnapshotKind::Site),
            "group" => Ok(SnapshotKind::Group),
            "team" => Ok(SnapshotKind::Team),
            other => Err(crate::EngineError::Invalid(format!(
                "snapshot {} is of an unknown kind {other:?}",
                snapshot.id.0
            ))),
        }
    }

    /// The sub-services a snapshot of this kind can hold.
    pub fn sub_services(self) -> &'static [SubService] {
        match self {
            SnapshotKind::Mailbox => &[
                SubService::Mail,
                SubService::Contacts,
                SubService::Calendar,
                SubService::Tasks,
            ],
            SnapshotKind::OneDrive => &[SubService::Drive],
            SnapshotKind::Site => &[SubService::Site, SubService::Drive],
            SnapshotKind::Group => &[
                SubService::Metadata,
                SubService::Conversations,
                SubService::Calendar,
                SubService::Drive,
            ],
            SnapshotKind::Team => &[
                SubService::Metadata,
                SubService::Channels,
                SubService::Conversations,
                SubService::Calendar,
                SubService::Drive,
            ],
        }
    }
}

/// Restores what `ctx` asks from its snapshot, whatever the workload.
pub async fn restore(ctx: &RestoreCtx<'_>) -> crate::Result<RestoreReport> {
    let kind = SnapshotKind::of(ctx.snapshot)?;
    ctx.selection
        .validate(kind.sub_services())
        .map_err(crate::EngineError::Invalid)?;
    ctx.progress
        .set_total(estimated_items(ctx.snapshot, ctx.selection), 0);
    let report = match kind {
        SnapshotKind::Mailbox => exchange::restore_mailbox(ctx).await,
        SnapshotKind::OneDrive => onedrive::restore_onedrive(ctx).await,
        SnapshotKind::Site => sharepoint::restore_site(ctx).await,
        SnapshotKind::Group | SnapshotKind::Team => teams::restore_group(ctx).await,
    };
    ctx.progress.finish();
    report
}

/// How many items a restore will handle, for progress before it starts:
/// the named items, or the item counts the snapshot's parts recorded for
/// the sub-services touched (an upper bound when folders are chosen).
pub fn estimated_items(snapshot: &SnapshotInfo, selection: &Selection) -> u64 {
    if selection.sub_services.is_empty()
        && selection.folders.is_empty()
        && !selection.items.is_empty()
    {
        return selection.items.len() as u64;
    }
    snapshot
        .meta
        .get("parts")
        .and_then(|p| p.as_array())
        .map(|parts| {
            parts
                .iter()
                .filter(|p| {
                    let sub = p.get("subService").and_then(|s| s.as_str()).unwrap_or("");
                    selection.is_everything()
                        || selection.sub_services.iter().any(|s| s.as_str() == sub)
                        || selection
                            .folders
                            .iter()
                            .any(|f| sub_service_of(f).is_some_and(|s| s.as_str() == sub))
                })
                .filter_map(|p| p.get("items").and_then(|i| i.as_u64()))
                .sum::<u64>()
                + selection.items.len() as u64
        })
        .unwrap_or(selection.items.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_and_unknown_is_refused() {
        for m in RestoreMode::ALL {
            assert_eq!(m.as_str().parse::<RestoreMode>().unwrap(), m);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
        }
        let e = "overwrite".parse::<RestoreMode>().unwrap_err();
        assert!(e.to_string().contains("overwrite"), "{e}");
    }

    #[test]
    fn selection_covers_and_reaches() {
        let all = Selection::everything();
        assert!(all.covers("mail/AAA/BBB"));
        assert!(all.touches(SubService::Tasks));

        let sel = Selection {
            sub_services: vec![SubService::Contacts],
            folders: vec!["mail/F1".into()],
            items: vec!["calendar/C1/E1".into()],
        };
        assert!(sel.covers("contacts/X/Y"));
        assert!(sel.covers("mail/F1"));
        assert!(sel.covers("mail/F1/M1"));
        assert!(
            !sel.covers("mail/F10/M1"),
            "a prefix of a name is not a folder"
        );
        assert!(!sel.covers("mail/F2/M1"));
        assert!(sel.covers("calendar/C1/E1"));
        assert!(!sel.covers("calendar/C1/E2"));
        assert!(sel.reaches("calendar/C1"));
        assert!(sel.reaches("calendar"));
        assert!(!sel.reaches("tasks"));
        assert!(sel.touches(SubService::Mail));
        assert!(!sel.touches(SubService::Tasks));
    }

    #[test]
    fn selection_is_checked_against_the_snapshot_kind() {
        let sel = Selection {
            items: vec!["mail/F/M".into()],
            ..Default::default()
        };
        assert!(sel.validate(SnapshotKind::Mailbox.sub_services()).is_ok());
        let e = sel
            .validate(SnapshotKind::OneDrive.sub_services())
            .unwrap_err();
        assert!(e.contains("mail/F/M"), "{e}");
        let lists = Selection {
            folders: vec!["lists/L1".into()],
            ..Default::default()
        };
        assert!(lists.validate(SnapshotKind::Site.sub_services()).is_ok());
    }

    #[test]
    fn duplicate_names_carry_the_timestamp_before_the_extension() {
        let mut o = RestoreOptions::new(RestoreMode::Duplicate);
        o.requested_at = "2023-04-01T00:05:25Z".parse().unwrap();
        assert_eq!(o.duplicate_suffix(), "20230401000525");
        assert_eq!(
            o.duplicate_name("report.docx"),
            "report 20230401000525.docx"
        );
        assert_eq!(o.duplicate_name("README"), "README 20230401000525");
        assert_eq!(o.duplicate_name(".env"), ".env 20230401000525");
        assert_eq!(o.restore_folder_name(), "Restored 2023-04-01 00:05:25");
    }

    #[test]
    fn report_outcomes() {
        let mut r = RestoreReport {
            restored: 3,
            ..Default::default()
        };
        assert_eq!(r.outcome(), Outcome::Success);
        r.failed = 1;
        assert_eq!(r.outcome(), Outcome::Partial);
        let only_failed = RestoreReport {
            failed: 2,
            ..Default::default()
        };
        assert_eq!(only_failed.outcome(), Outcome::Failed);
        r.cancelled = true;
        assert_eq!(r.outcome(), Outcome::Cancelled);
    }
}
