//! Export (SPEC F-E7): turn what a snapshot holds into files a person opens
//! without Lifeboat: PST, EML, ICS and VCF for mailboxes, ZIP for drives,
//! sites, groups and teams.
//!
//! Which format fits which part of a snapshot is decided by [`check`] before
//! anything runs:
//!
//! | snapshot / selection               | formats                          |
//! |------------------------------------|----------------------------------|
//! | whole mailbox, several sub-services| PST                              |
//! | mail only                          | PST, EML (one `.eml` or a ZIP)   |
//! | calendars only                     | PST, ICS (one `.ics` or a ZIP)   |
//! | contacts only                      | PST, VCF (one `.vcf` or a ZIP)   |
//! | tasks                              | PST                              |
//! | OneDrive, site, group, team        | ZIP                              |
//!
//! Items are read one at a time from the vault and written straight to the
//! output in `staging_dir`, so memory does not grow with the mailbox or
//! drive beyond the PST writer's own index (and, with `include_deleted`, a
//! set of the current snapshot's item ids). A damaged stored item becomes a
//! Failed log entry with its reason; the rest is exported. On cancellation
//! (checked between items) every file written so far is deleted.
//!
//! The files are written with blocking I/O from the async task: each write
//! is a buffered append to a local file, far shorter than the vault reads
//! between them.

mod files;
mod mailbox;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use vault::SnapshotInfo;

use crate::Cancel;
use crate::error::{EngineError, Result};
use crate::faults::Outcome;
use crate::progress::Progress;
use crate::report::SubService;
use crate::restore::{ItemLogEntry, ItemOutcome, RestoreLog, Selection, SnapshotKind};

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Outlook data file (mailboxes).
    Pst,
    /// One MIME message per file (mail).
    Eml,
    /// iCalendar (calendars).
    Ics,
    /// vCard (contacts).
    Vcf,
    /// ZIP archive of files (drives, sites, groups, teams).
    Zip,
}

impl ExportFormat {
    /// Every format.
    pub const ALL: [ExportFormat; 5] = [
        ExportFormat::Pst,
        ExportFormat::Eml,
        ExportFormat::Ics,
        ExportFormat::Vcf,
        ExportFormat::Zip,
    ];

    /// The name used in the API, the CLI and job payloads (also the file
    /// extension).
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Pst => "pst",
            ExportFormat::Eml => "eml",
            ExportFormat::Ics => "ics",
            ExportFormat::Vcf => "vcf",
            ExportFormat::Zip => "zip",
        }
    }

    fn upper(self) -> String {
        self.as_str().to_ascii_uppercase()
    }
}

impl std::fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An export format name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown export format {0:?}: expected pst, eml, ics, vcf or zip")]
pub struct UnknownFormat(pub String);

impl FromStr for ExportFormat {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == lower)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Where a PST export is cut into parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PstSplit {
    /// Parts of at most 5 GB.
    #[serde(rename = "5gb")]
    Gb5,
    /// Parts of at most 20 GB (the default).
    #[default]
    #[serde(rename = "20gb")]
    Gb20,
}

/// A PST split name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("unknown PST split {0:?}: expected 5gb or 20gb")]
pub struct UnknownSplit(pub String);

impl FromStr for PstSplit {
    type Err = UnknownSplit;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "5gb" => Ok(PstSplit::Gb5),
            "20gb" => Ok(PstSplit::Gb20),
            _ => Err(UnknownSplit(s.to_string())),
        }
    }
}

impl PstSplit {
    /// The name used in the API, the CLI and job payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            PstSplit::Gb5 => "5gb",
            PstSplit::Gb20 => "20gb",
        }
    }

    /// The size limit of one part, in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            PstSplit::Gb5 => formats::pst::SPLIT_5_GB,
            PstSplit::Gb20 => formats::pst::SPLIT_20_GB,
        }
    }
}

/// How an export is made.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportOptions {
    /// The output format.
    pub format: ExportFormat,
    /// Where PST output is cut into parts.
    #[serde(default)]
    pub pst_split: PstSplit,
    /// Mailbox PST: include Recoverable Items (legal hold / litigation hold
    /// content: Purges, DiscoveryHolds, Versions…).
    #[serde(default)]
    pub include_legal_holds: bool,
    /// Mailbox PST and drive/site/team ZIP: also items that earlier backups
    /// of this entity held but this snapshot no longer does (deleted before
    /// it), each in its latest backed-up version, under a "Previously
    /// deleted items" folder.
    #[serde(default)]
    pub include_deleted: bool,
    /// When the export was asked for: file names carry it
    /// ("<entity> 2026-11-29 1405.pst").
    pub requested_at: DateTime<Utc>,
    /// Tests only: a PST part limit in bytes instead of `pst_split`'s (at
    /// least 1 MB), so that splitting is exercised with small mailboxes.
    #[doc(hidden)]
    #[serde(skip)]
    pub pst_split_bytes: Option<u64>,
}

impl ExportOptions {
    /// Options for `format`, asked for now, nothing extra included.
    pub fn new(format: ExportFormat) -> Self {
        Self {
            format,
            pst_split: PstSplit::default(),
            include_legal_holds: false,
            include_deleted: false,
            requested_at: Utc::now(),
            pst_split_bytes: None,
        }
    }

    /// The PST part size limit in bytes.
    pub fn split_limit(&self) -> u64 {
        self.pst_split_bytes.unwrap_or(self.pst_split.bytes())
    }
}

/// The name of the folder (PST) or top directory (ZIP) that holds items
/// only earlier snapshots have.
pub const PREVIOUSLY_DELETED: &str = "Previously deleted items";

/// Everything an export needs.
pub struct ExportCtx<'a> {
    /// The account's vault.
    pub vault: &'a vault::Account,
    /// The snapshot exported.
    pub snapshot: &'a SnapshotInfo,
    /// The entity's earlier snapshots (older than `snapshot`), newest
    /// first; only read when `include_deleted`.
    pub earlier: &'a [SnapshotInfo],
    /// What of it.
    pub selection: &'a Selection,
    /// How.
    pub options: &'a ExportOptions,
    /// A person's name for the entity (mailbox address, site name): PST
    /// display name and file names.
    pub entity_name: &'a str,
    /// An empty local directory where output files are written (PST needs
    /// seek; the worker uploads them after).
    pub staging_dir: &'a Path,
    /// Items done of the total.
    pub progress: &'a dyn Progress,
    /// One entry per item: Restored = exported, Skipped/Failed with a reason.
    pub log: &'a dyn RestoreLog,
    /// Checked between items.
    pub cancel: &'a Cancel,
}

/// One file an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedFile {
    /// Its name in the staging directory (no '/').
    pub name: String,
    /// Its full local path.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Items it holds.
    pub items: u64,
}

/// A file of an export, as the report lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedFileSummary {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Items it holds.
    pub items: u64,
}

/// What an export did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    /// Items written to the output.
    pub exported: u64,
    /// Items left out on purpose (the detail in the log says why).
    pub skipped: u64,
    /// Items that could not be exported.
    pub failed: u64,
    /// Total size of the output files.
    pub bytes: u64,
    /// The output files.
    pub files: Vec<ExportedFileSummary>,
    /// Things a person should know.
    pub notes: Vec<String>,
    /// Whether the export stopped early because it was cancelled (no files
    /// are then left).
    pub cancelled: bool,
}

impl ExportReport {
    /// Success, Partial (some items failed), Failed (nothing could be
    /// exported), or Cancelled.
    pub fn outcome(&self) -> Outcome {
        if self.cancelled {
            Outcome::Cancelled
        } else if self.failed == 0 {
            Outcome::Success
        } else if self.exported + self.skipped == 0 {
            Outcome::Failed
        } else {
            Outcome::Partial
        }
    }
}

/// The sub-services a selection reaches in a snapshot of `kind`.
fn selected_sub_services(kind: SnapshotKind, selection: &Selection) -> Vec<SubService> {
    kind.sub_services()
        .iter()
        .copied()
        .filter(|s| selection.touches(*s))
        .collect()
}

/// Checks that `format` fits a snapshot of `kind` and the `selection`
/// (SPEC F-E7), before anything runs; the error is a message for a person.
pub fn check(
    kind: SnapshotKind,
    selection: &Selection,
    format: ExportFormat,
) -> std::result::Result<(), String> {
    selection.validate(kind.sub_services())?;
    let subs = selected_sub_services(kind, selection);
    if subs.is_empty() {
        return Err("nothing to export was selected".into());
    }
    match kind {
        SnapshotKind::Mailbox => {
            let only = |s: SubService| subs == [s];
            let fits = match format {
                ExportFormat::Pst => true,
                ExportFormat::Eml => only(SubService::Mail),
                ExportFormat::Ics => only(SubService::Calendar),
                ExportFormat::Vcf => only(SubService::Contacts),
                ExportFormat::Zip => false,
            };
            if fits {
                return Ok(());
            }
            if format == ExportFormat::Zip {
                return Err(
                    "a mailbox cannot be exported as ZIP; choose PST (or EML for mail, ICS for \
                     calendars, VCF for contacts)"
                        .into(),
                );
            }
            if subs.len() > 1 {
                return Err(format!(
                    "a whole mailbox or several of its parts ({}) cannot be exported as {}; \
                     choose PST",
                    subs.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    format.upper()
                ));
            }
            let (what, choose) = match subs[0] {
                SubService::Mail => ("mail", "EML or PST"),
                SubService::Calendar => ("calendars", "ICS or PST"),
                SubService::Contacts => ("contacts", "VCF or PST"),
                _ => ("tasks", "PST"),
            };
            Err(format!(
                "{what} cannot be exported as {}; choose {choose}",
                format.upper()
            ))
        }
        SnapshotKind::OneDrive | SnapshotKind::Site | SnapshotKind::Group | SnapshotKind::Team => {
            if format == ExportFormat::Zip {
                Ok(())
            } else {
                let what = match kind {
                    SnapshotKind::OneDrive => "a OneDrive",
                    SnapshotKind::Site => "a site",
                    SnapshotKind::Group => "a group",
                    _ => "a team",
                };
                Err(format!(
                    "{what} cannot be exported as {}; choose ZIP",
                    format.upper()
                ))
            }
        }
    }
}

/// Runs the export; returns the report and the files written in
/// `staging_dir`. A cancelled export returns no files (those begun are
/// deleted) and a report marked cancelled.
pub async fn export(ctx: &ExportCtx<'_>) -> Result<(ExportReport, Vec<ExportedFile>)> {
    let kind = SnapshotKind::of(ctx.snapshot)?;
    check(kind, ctx.selection, ctx.options.format).map_err(EngineError::Invalid)?;
    ctx.progress.set_total(
        crate::restore::estimated_items(ctx.snapshot, ctx.selection),
        0,
    );
    let out = Output::new(ctx);
    let result = match kind {
        SnapshotKind::Mailbox => mailbox::export_mailbox(ctx, &out).await,
        _ => files::export_files(ctx, kind, &out).await,
    };
    ctx.progress.finish();
    let cancelled = ctx.cancel.is_cancelled() || matches!(result, Err(EngineError::Cancelled));
    match result {
        Err(e) if !cancelled => {
            out.discard();
            Err(e)
        }
        _ if cancelled => {
            out.discard();
            let mut report = out.report();
            report.cancelled = true;
            report.files.clear();
            report.bytes = 0;
            Ok((report, Vec::new()))
        }
        _ => {
            let files = out.files.lock().clone();
            let mut report = out.report();
            report.bytes = files.iter().map(|f| f.size).sum();
            report.files = files
                .iter()
                .map(|f| ExportedFileSummary {
                    name: f.name.clone(),
                    size: f.size,
                    items: f.items,
                })
                .collect();
            Ok((report, files))
        }
    }
}

/// Counts, logs and tracks the files of one export.
pub(crate) struct Output<'a> {
    log: &'a dyn RestoreLog,
    progress: &'a dyn Progress,
    dir: &'a Path,
    exported: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    notes: Mutex<Vec<String>>,
    /// Every path created so far (deleted on cancel or error).
    created: Mutex<Vec<PathBuf>>,
    files: Mutex<Vec<ExportedFile>>,
}

impl<'a> Output<'a> {
    fn new(ctx: &ExportCtx<'a>) -> Self {
        Self {
            log: ctx.log,
            progress: ctx.progress,
            dir: ctx.staging_dir,
            exported: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            notes: Mutex::new(Vec::new()),
            created: Mutex::new(Vec::new()),
            files: Mutex::new(Vec::new()),
        }
    }

    /// One item is done.
    pub(crate) fn item(
        &self,
        path: &str,
        name: &str,
        outcome: ItemOutcome,
        detail: Option<String>,
        bytes: u64,
    ) {
        let counter = match outcome {
            ItemOutcome::Skipped => &self.skipped,
            ItemOutcome::Failed => &self.failed,
            ItemOutcome::Exported | ItemOutcome::Restored | ItemOutcome::Overwritten => {
                &self.exported
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.progress.advance(1, bytes);
        self.log.record(ItemLogEntry {
            path: path.to_string(),
            name: name.to_string(),
            outcome,
            detail,
            bytes,
        });
    }

    /// An item was written to the output.
    pub(crate) fn exported(&self, path: &str, name: &str, bytes: u64) {
        self.item(path, name, ItemOutcome::Exported, None, bytes);
    }

    /// An item could not be exported.
    pub(crate) fn failed(&self, path: &str, name: &str, reason: impl Into<String>) {
        self.item(path, name, ItemOutcome::Failed, Some(reason.into()), 0);
    }

    /// Something a person should know.
    pub(crate) fn note(&self, note: impl Into<String>) {
        self.notes.lock().push(note.into());
    }

    /// Creates the output file `name` (made safe) in the staging directory,
    /// remembering it for clean-up.
    pub(crate) fn create(&self, name: &str) -> Result<(std::fs::File, PathBuf)> {
        let path = self.dir.join(name);
        let file = std::fs::File::create(&path).map_err(|e| {
            EngineError::Invalid(format!("{} cannot be created: {e}", path.display()))
        })?;
        self.created.lock().push(path.clone());
        Ok((file, path))
    }

    /// Renames a created file within the staging directory.
    pub(crate) fn rename(&self, from: &Path, to_name: &str) -> Result<PathBuf> {
        let to = self.dir.join(to_name);
        std::fs::rename(from, &to).map_err(|e| {
            EngineError::Invalid(format!("{} cannot be renamed: {e}", from.display()))
        })?;
        self.created.lock().push(to.clone());
        Ok(to)
    }

    /// A finished output file.
    pub(crate) fn finished(&self, path: PathBuf, items: u64) -> Result<()> {
        let size = std::fs::metadata(&path)
            .map_err(|e| EngineError::Invalid(format!("{}: {e}", path.display())))?
            .len();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.files.lock().push(ExportedFile {
            name,
            path,
            size,
            items,
        });
        Ok(())
    }

    /// Deletes every file created (cancel, error).
    fn discard(&self) {
        for p in self.created.lock().drain(..) {
            let _ = std::fs::remove_file(p);
        }
        self.files.lock().clear();
    }

    fn report(&self) -> ExportReport {
        ExportReport {
            exported: self.exported.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            bytes: 0,
            files: Vec::new(),
            notes: self.notes.lock().clone(),
            cancelled: false,
        }
    }
}

/// `s` made safe as a file or folder name on every common file system:
/// control characters and `<>:"/\|?*` become '_', surrounding blanks and
/// trailing dots go, at most 120 characters; never empty, "." or "..".
pub fn safe_name(s: &str) -> String {
    let replaced: String = s
        .chars()
        .map(|c| {
            if c.is_control() || "<>:\"/\\|?*".contains(c) {
                '_'
            } else {
                c
            }
        })
        .take(120)
        .collect();
    let trimmed = replaced.trim().trim_end_matches('.').trim();
    if trimmed.is_empty() {
        "_".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The base of output file names: "<entity> 2026-11-29 1405".
pub(crate) fn base_name(ctx: &ExportCtx<'_>) -> String {
    format!(
        "{} {}",
        safe_name(ctx.entity_name),
        ctx.options.requested_at.format("%Y-%m-%d %H%M")
    )
}

/// Keeps paths in one archive unique: a second "a/b.txt" becomes
/// "a/b (2).txt".
#[derive(Default)]
pub(crate) struct UniquePaths(std::collections::HashSet<String>);

impl UniquePaths {
    pub(crate) fn claim(&mut self, path: &str) -> String {
        if self.0.insert(path.to_lowercase()) {
            return path.to_string();
        }
        let (dir, file) = match path.rsplit_once('/') {
            Some((d, f)) => (format!("{d}/"), f),
            None => (String::new(), path),
        };
        let (stem, ext) = match file.rfind('.') {
            Some(i) if i > 0 => (&file[..i], &file[i..]),
            _ => (file, ""),
        };
        for n in 2.. {
            let candidate = format!("{dir}{stem} ({n}){ext}");
            if self.0.insert(candidate.to_lowercase()) {
                return candidate;
            }
        }
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(subs: &[SubService], folders: &[&str], items: &[&str]) -> Selection {
        Selection {
            sub_services: subs.to_vec(),
            folders: folders.iter().map(|s| s.to_string()).collect(),
            items: items.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn formats_round_trip() {
        for f in ExportFormat::ALL {
            assert_eq!(f.as_str().parse::<ExportFormat>().unwrap(), f);
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.as_str())
            );
        }
        assert!("PST".parse::<ExportFormat>().is_ok());
        assert!("msg".parse::<ExportFormat>().is_err());
        assert_eq!(serde_json::to_string(&PstSplit::Gb5).unwrap(), "\"5gb\"");
        let o: ExportOptions =
            serde_json::from_str(r#"{"format":"pst","requestedAt":"2026-11-29T14:05:00Z"}"#)
                .unwrap();
        assert_eq!(o.pst_split, PstSplit::Gb20);
        assert_eq!(o.split_limit(), 20_000_000_000);
    }

    #[test]
    fn check_follows_the_format_rules() {
        use ExportFormat::*;
        use SnapshotKind::*;
        let all = Selection::everything();
        assert!(check(Mailbox, &all, Pst).is_ok());
        let e = check(Mailbox, &all, Eml).unwrap_err();
        assert!(e.contains("choose PST"), "{e}");
        let mail = sel(&[], &[], &["mail/F/M1", "mail/F/M2"]);
        assert!(check(Mailbox, &mail, Eml).is_ok());
        assert!(check(Mailbox, &mail, Pst).is_ok());
        let contacts = sel(&[SubService::Contacts], &[], &[]);
        assert_eq!(
            check(Mailbox, &contacts, Eml).unwrap_err(),
            "contacts cannot be exported as EML; choose VCF or PST"
        );
        assert!(check(Mailbox, &contacts, Vcf).is_ok());
        let cal = sel(&[], &["calendar/C1"], &[]);
        assert!(check(Mailbox, &cal, Ics).is_ok());
        assert!(check(Mailbox, &cal, Vcf).is_err());
        let tasks = sel(&[SubService::Tasks], &[], &[]);
        assert_eq!(
            check(Mailbox, &tasks, Ics).unwrap_err(),
            "tasks cannot be exported as ICS; choose PST"
        );
        assert!(check(Mailbox, &all, Zip).unwrap_err().contains("ZIP"));
        assert!(check(OneDrive, &all, Zip).is_ok());
        assert_eq!(
            check(OneDrive, &all, Pst).unwrap_err(),
            "a OneDrive cannot be exported as PST; choose ZIP"
        );
        assert!(check(Team, &all, Zip).is_ok());
        assert!(check(Site, &all, Eml).is_err());
        let wrong = sel(&[], &[], &["mail/F/M"]);
        assert!(check(OneDrive, &wrong, Zip).is_err());
    }

    #[test]
    fn names_are_safe_and_unique() {
        assert_eq!(safe_name(" a/b:c. "), "a_b_c");
        assert_eq!(safe_name(".."), "_");
        assert_eq!(safe_name(""), "_");
        let mut u = UniquePaths::default();
        assert_eq!(u.claim("x/a.txt"), "x/a.txt");
        assert_eq!(u.claim("x/A.txt"), "x/A (2).txt");
        assert_eq!(u.claim("x/a.txt"), "x/a (3).txt");
        assert_eq!(u.claim("README"), "README");
        assert_eq!(u.claim("README"), "README (2)");
    }

    #[test]
    fn report_outcomes() {
        let mut r = ExportReport {
            exported: 2,
            ..Default::default()
        };
        assert_eq!(r.outcome(), Outcome::Success);
        r.failed = 1;
        assert_eq!(r.outcome(), Outcome::Partial);
        r.exported = 0;
        assert_eq!(r.outcome(), Outcome::Failed);
        r.cancelled = true;
        assert_eq!(r.outcome(), Outcome::Cancelled);
    }
}
