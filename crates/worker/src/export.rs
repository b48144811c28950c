//! Export jobs (SPEC F-E7, F-E8, F-F): turn a backup into standard files
//! (PST, EML, iCalendar, vCard, ZIP) with the engine, then hand them to the
//! destination the customer chose: a download link valid 72 hours, or their
//! own Amazon S3 / S3-compatible, Azure Blob, Google Cloud Storage, Box or
//! Dropbox storage.
//!
//! The customer's credentials travel in the job payload sealed with the
//! catalog key (bound to the account), are opened only by the worker that
//! runs the job, and never appear in logs, errors or results.
//!
//! Files are staged on this worker's local disk (a PST is written with
//! seeks) and removed as soon as they are uploaded; downloads are kept in
//! the account's vault, encrypted like everything else, so any API server
//! can serve the link, and they are deleted when the link expires.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use catalog::{
    AccountId, ActivityKind, ActivityStatus, Claimed, Entity, EntityId, EntityKind, JobId, NewJob,
    Secret, Task, TaskId,
};
use chrono::{DateTime, Duration, Utc};
use destinations::{Credentials, Target};
use engine::export::{ExportCtx, ExportOptions, ExportReport, ExportedFile};
use engine::faults::Outcome;
use engine::progress::Progress;
use engine::restore::{Selection, SnapshotKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Result, WorkerError};
use crate::jobs::JobEnd;
use crate::progress::{JobProgressSink, JobSignals};
use crate::restore::{CatalogLog, stopped};
use crate::runtime::Runtime;

/// How long a download link works after the export finished (F-E7).
pub const DOWNLOAD_VALID_FOR: Duration = Duration::hours(72);

/// What the sealed credentials are for: part of what binds them.
const CREDENTIALS_PURPOSE: &str = "export-credentials";

/// What download links are signed for.
pub const DOWNLOAD_PURPOSE: &str = "export-download";

/// What an export job is asked to do (its payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The task the entity belongs to.
    pub task_id: TaskId,
    /// The entity whose backup is exported.
    pub entity_id: EntityId,
    /// The snapshot; without it, `at`; without both, the latest.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Export the newest backup taken at or before this time.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// What to export (nothing chosen: everything).
    #[serde(default)]
    pub selection: Selection,
    /// Format and its options.
    pub options: ExportOptions,
    /// Where the files go (no secrets in it).
    pub target: Target,
    /// The credentials the target needs, sealed with the catalog key for
    /// this account; set by [`enqueue_export`].
    #[serde(default)]
    pub sealed_credentials: Option<String>,
}

/// One file an export produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportedFileView {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Items it holds.
    pub items: u64,
    /// Where it landed (object key, URL or id at the destination).
    pub location: String,
    /// For downloads: the signed link (a path on the API server), valid
    /// until the summary's `expires_at` and only for this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What a finished export job reports (its result).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportSummary {
    /// The snapshot exported.
    pub snapshot_id: String,
    /// When it was taken.
    pub snapshot_time: DateTime<Utc>,
    /// Where the files went, as a person reads it.
    pub destination: String,
    /// The files.
    pub files: Vec<ExportedFileView>,
    /// Downloads: when the links stop working and the files are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The outcome.
    pub outcome: Outcome,
    /// What the engine did.
    pub report: ExportReport,
}

impl ExportSummary {
    /// Items exported.
    pub fn items(&self) -> u64 {
        self.report.exported
    }

    /// Bytes of all files.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// The kind of snapshot an entity's backups are.
pub fn snapshot_kind(kind: EntityKind) -> SnapshotKind {
    match kind {
        EntityKind::Mailbox => SnapshotKind::Mailbox,
        EntityKind::OneDrive => SnapshotKind::OneDrive,
        EntityKind::Site => SnapshotKind::Site,
        EntityKind::Group => SnapshotKind::Group,
        EntityKind::Team => SnapshotKind::Team,
    }
}

/// Enqueues an export job for `request` after checking what can be checked
/// without running it: the entity is the task's and the account's, the
/// snapshot (when named) is the entity's, the format suits the data and the
/// selection, and the credentials hold what the target needs. The
/// credentials are sealed into the payload. Returns the job.
pub async fn enqueue_export(
    catalog: &catalog::Catalog,
    account: AccountId,
    request: &ExportRequest,
    credentials: &Credentials,
    initiator: Option<String>,
) -> Result<catalog::Job> {
    let entity = catalog.get_entity(account, request.entity_id).await?;
    if entity.task_id != request.task_id {
        return Err(WorkerError::Invalid(format!(
            "entity {} is not in task {}",
            request.entity_id, request.task_id
        )));
    }
    let task = catalog.get_task(account, entity.task_id).await?;
    if let Some(s) = &request.snapshot_id {
        catalog.entity_snapshot(account, entity.id, s).await?;
    }
    let kind = snapshot_kind(entity.kind);
    request
        .selection
        .validate(kind.sub_services())
        .map_err(WorkerError::Invalid)?;
    engine::export::check(kind, &request.selection, request.options.format)
        .map_err(WorkerError::Invalid)?;
    request
        .target
        .check_credentials(credentials)
        .map_err(|e| WorkerError::Invalid(e.to_string()))?;
    let mut request = request.clone();
    request.sealed_credentials = Some(seal_credentials(catalog, account, credentials)?);
    let mut job = NewJob::new(
        catalog::JobKind::Export,
        serde_json::to_value(&request).map_err(|e| WorkerError::Invalid(e.to_string()))?,
    );
    job.service = Some(task.service);
    job.task_id = Some(task.id);
    job.entity_id = Some(entity.id);
    job.initiator = initiator;
    job.title = Some(format!(
        "Export {} as {} to {}",
        entity.email_or_url.as_deref().unwrap_or(&entity.name),
        request.options.format.as_str().to_uppercase(),
        request.target.describe()
    ));
    // A person waits for an export: it goes before scheduled backups.
    job.priority = 10;
    Ok(catalog.enqueue_job(account, job).await?.job().clone())
}

fn seal_credentials(
    catalog: &catalog::Catalog,
    account: AccountId,
    credentials: &Credentials,
) -> Result<String> {
    let text = serde_json::to_string(credentials)
        .map_err(|e| WorkerError::Invalid(format!("export credentials: {e}")))?;
    Ok(catalog.seal_secret(account, CREDENTIALS_PURPOSE, &Secret::new(text))?)
}

fn open_credentials(
    catalog: &catalog::Catalog,
    account: AccountId,
    sealed: Option<&str>,
) -> Result<Credentials> {
    let Some(sealed) = sealed else {
        return Ok(Credentials::default());
    };
    let secret = catalog
        .open_secret(account, CREDENTIALS_PURPOSE, sealed)
        .map_err(|_| {
            WorkerError::Invalid(
                "the export's credentials cannot be opened with this installation's key".into(),
            )
        })?;
    // The error names no field value: serde's message could quote the secret.
    serde_json::from_str(secret.expose())
        .map_err(|_| WorkerError::Invalid("the export's credentials are damaged".into()))
}

/// The signed path that downloads `file` of export job `job` until
/// `expires` (a path on the API server; clients put their base URL before
/// it).
pub fn download_url(
    catalog: &catalog::Catalog,
    account: AccountId,
    job: JobId,
    file: &str,
    expires: DateTime<Utc>,
) -> String {
    let expires = expires.timestamp();
    let sig = catalog.sign(
        account,
        DOWNLOAD_PURPOSE,
        &download_message(job, file, expires),
    );
    format!(
        "/api/exports/{job}/download?file={}&expires={expires}&sig={sig}",
        url::form_urlencoded::byte_serialize(file.as_bytes()).collect::<String>()
    )
}

/// What a download link's signature covers.
pub fn download_message(job: JobId, file: &str, expires: i64) -> String {
    format!("{job}\n{file}\n{expires}")
}

pub(crate) async fn run_export_job(
    rt: &Runtime,
    claimed: &Claimed,
    signals: &Arc<JobSignals>,
    sink: &Arc<JobProgressSink>,
) -> JobEnd {
    let staging = rt
        .cache_dir()
        .join("exports")
        .join(claimed.job.id.to_string());
    let end = match export(rt, claimed, signals, sink, &staging).await {
        Ok(end) => end,
        Err(e) => {
            let error = e.to_string();
            let _ = log_export_activity(
                rt,
                claimed,
                None,
                None,
                ActivityStatus::Failed,
                json!({ "error": error }),
            )
            .await;
            JobEnd::Failed {
                retryable: e.is_retryable(),
                error,
            }
        }
    };
    // Whatever happened, nothing of the export stays on this disk.
    let _ = tokio::fs::remove_dir_all(&staging).await;
    end
}

async fn export(
    rt: &Runtime,
    claimed: &Claimed,
    signals: &Arc<JobSignals>,
    sink: &Arc<JobProgressSink>,
    staging: &Path,
) -> Result<JobEnd> {
    let job = &claimed.job;
    let account = job.account_id;
    let request: ExportRequest = serde_json::from_value(job.payload.clone())
        .map_err(|e| WorkerError::Invalid(format!("export job payload: {e}")))?;
    let credentials =
        open_credentials(&rt.catalog, account, request.sealed_credentials.as_deref())?;
    let entity = rt.catalog.get_entity(account, request.entity_id).await?;
    let task = rt.catalog.get_task(account, entity.task_id).await?;
    let (chosen, vault, snapshot) = crate::restore::resolve_snapshot(
        rt,
        account,
        &entity,
        request.snapshot_id.as_deref(),
        request.at,
    )
    .await?;
    let kind = SnapshotKind::of(&snapshot)?;
    request
        .selection
        .validate(kind.sub_services())
        .map_err(WorkerError::Invalid)?;
    engine::export::check(kind, &request.selection, request.options.format)
        .map_err(WorkerError::Invalid)?;
    let earlier = if request.options.include_deleted {
        earlier_snapshots(
            rt,
            account,
            &entity,
            &vault,
            chosen.time,
            &chosen.snapshot_id,
        )
        .await?
    } else {
        Vec::new()
    };

    // A retried job starts from an empty staging directory.
    let _ = tokio::fs::remove_dir_all(staging).await;
    tokio::fs::create_dir_all(staging)
        .await
        .map_err(|e| WorkerError::Invalid(format!("creating {}: {e}", staging.display())))?;

    let (log, flusher) = CatalogLog::start(rt.catalog.clone(), account, job.id);
    let entity_name = entity
        .email_or_url
        .clone()
        .unwrap_or_else(|| entity.name.clone());
    let result = run_engine_export(EngineInputs {
        vault: vault.clone(),
        snapshot,
        earlier,
        selection: request.selection.clone(),
        options: request.options.clone(),
        entity_name,
        staging: staging.to_path_buf(),
        sink: sink.clone(),
        log,
        cancel: signals.cancel.clone(),
    })
    .await?;
    let flushed = flusher.await;
    let (report, files) = match result {
        Ok(r) => r,
        Err(engine::EngineError::Cancelled) => {
            log_export_activity(
                rt,
                claimed,
                Some(&task),
                Some(&entity),
                ActivityStatus::Cancelled,
                json!({}),
            )
            .await?;
            return Ok(stopped(signals));
        }
        Err(e) => return Err(e.into()),
    };
    flushed.map_err(|e| WorkerError::Invalid(format!("writing the export's item log: {e}")))??;
    if report.cancelled || signals.cancel.is_cancelled() {
        log_export_activity(
            rt,
            claimed,
            Some(&task),
            Some(&entity),
            ActivityStatus::Cancelled,
            json!({}),
        )
        .await?;
        return Ok(stopped(signals));
    }

    // Hand the files over.
    sink.set_stage("uploading");
    let destination = destinations::open(
        &request.target,
        &credentials,
        Some(&vault),
        &job.id.to_string(),
    )
    .await
    .map_err(|e| WorkerError::Invalid(e.to_string()))?;
    let is_download = matches!(request.target, Target::Download);
    let expires_at = is_download.then(|| rt.catalog.now() + DOWNLOAD_VALID_FOR);
    let mut views = Vec::with_capacity(files.len());
    for file in &files {
        if signals.cancel.is_cancelled() {
            if is_download {
                let _ = destinations::download::delete(&vault, &job.id.to_string()).await;
            }
            log_export_activity(
                rt,
                claimed,
                Some(&task),
                Some(&entity),
                ActivityStatus::Cancelled,
                json!({}),
            )
            .await?;
            return Ok(stopped(signals));
        }
        let stored = destinations::upload_file(destination.as_ref(), &file.name, &file.path)
            .await
            .map_err(|e| WorkerError::Invalid(format!("uploading {}: {e}", file.name)))?;
        // The staged copy goes as soon as the destination has it.
        let _ = tokio::fs::remove_file(&file.path).await;
        views.push(ExportedFileView {
            url: expires_at.map(|t| download_url(&rt.catalog, account, job.id, &file.name, t)),
            name: file.name.clone(),
            size: stored.size,
            items: file.items,
            location: stored.location,
        });
    }

    let outcome = report.outcome();
    let summary = ExportSummary {
        snapshot_id: chosen.snapshot_id.clone(),
        snapshot_time: chosen.time,
        destination: request.target.describe(),
        files: views,
        expires_at,
        outcome,
        report,
    };
    let status = match outcome {
        Outcome::Success => ActivityStatus::Success,
        Outcome::Partial => ActivityStatus::Partial,
        Outcome::Failed => ActivityStatus::Failed,
        Outcome::Cancelled => ActivityStatus::Cancelled,
    };
    log_export_activity(
        rt,
        claimed,
        Some(&task),
        Some(&entity),
        status,
        json!({
            "snapshot_id": summary.snapshot_id,
            "format": request.options.format,
            "destination": summary.destination,
            "items": summary.items(),
            "failed": summary.report.failed,
            "size": summary.size(),
            "files": summary.files.iter().map(|f| json!({
                "name": f.name, "size": f.size, "url": f.url,
            })).collect::<Vec<_>>(),
            "expires_at": summary.expires_at,
        }),
    )
    .await?;
    Ok(JobEnd::Completed(
        serde_json::to_value(&summary).unwrap_or(Value::Null),
    ))
}

/// The entity's restorable snapshots older than the one exported, newest
/// first, for "previously deleted items". A snapshot the vault no longer
/// has (retention removed it) is passed over.
async fn earlier_snapshots(
    rt: &Runtime,
    account: AccountId,
    entity: &Entity,
    vault: &vault::Account,
    before: DateTime<Utc>,
    exported: &str,
) -> Result<Vec<vault::SnapshotInfo>> {
    let listed = rt
        .catalog
        .entity_snapshots(account, entity.id, DateTime::<Utc>::MIN_UTC, before)
        .await?;
    let mut out = Vec::new();
    for s in listed
        .iter()
        .filter(|s| s.snapshot_id != exported && s.is_restorable())
    {
        let Ok(id) = s.snapshot_id.parse::<vault::SnapshotId>() else {
            continue;
        };
        match vault.snapshot(&id).await {
            Ok(info) => out.push(info),
            Err(vault::Error::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

struct EngineInputs {
    vault: vault::Account,
    snapshot: vault::SnapshotInfo,
    earlier: Vec<vault::SnapshotInfo>,
    selection: Selection,
    options: ExportOptions,
    entity_name: String,
    staging: PathBuf,
    sink: Arc<JobProgressSink>,
    log: CatalogLog,
    cancel: engine::Cancel,
}

/// Runs the engine's export on a thread of its own, like the restore (see
/// `run_engine_restore`): it reads the vault and writes local files, and
/// its futures need not be `Send`.
async fn run_engine_export(
    inputs: EngineInputs,
) -> Result<engine::Result<(ExportReport, Vec<ExportedFile>)>> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            let EngineInputs {
                vault,
                snapshot,
                earlier,
                selection,
                options,
                entity_name,
                staging,
                sink,
                log,
                cancel,
            } = inputs;
            let ctx = ExportCtx {
                vault: &vault,
                snapshot: &snapshot,
                earlier: &earlier,
                selection: &selection,
                options: &options,
                entity_name: &entity_name,
                staging_dir: &staging,
                progress: sink.as_ref(),
                log: &log,
                cancel: &cancel,
            };
            let r = engine::export::export(&ctx).await;
            // The log's sender goes here, so its writer sees the end.
            drop(log);
            r
        })
    })
    .await
    .map_err(|e| WorkerError::Invalid(format!("the export stopped unexpectedly: {e}")))
}

async fn log_export_activity(
    rt: &Runtime,
    claimed: &Claimed,
    task: Option<&Task>,
    entity: Option<&Entity>,
    status: ActivityStatus,
    details: Value,
) -> Result<()> {
    crate::restore::log_job_activity(
        rt,
        claimed,
        ActivityKind::Export,
        task,
        entity,
        status,
        details,
    )
    .await
}

/// Deletes the downloadable files of exports whose links have expired (or
/// whose job is gone or did not succeed), in every account. Returns how many
/// exports were deleted. Run from the scheduler.
pub async fn sweep_expired_downloads(rt: &Runtime, now: DateTime<Utc>) -> Result<usize> {
    let mut deleted = 0;
    for account in rt.catalog.list_accounts().await? {
        let vault = rt.vault_account(account.id).await?;
        for export_id in destinations::download::exports(&vault)
            .await
            .map_err(|e| WorkerError::Invalid(e.to_string()))?
        {
            if download_is_live(rt, account.id, &export_id, now).await? {
                continue;
            }
            destinations::download::delete(&vault, &export_id)
                .await
                .map_err(|e| WorkerError::Invalid(e.to_string()))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Whether the download files of `export_id` must be kept: its job is
/// still running, or succeeded and its link has not expired.
async fn download_is_live(
    rt: &Runtime,
    account: AccountId,
    export_id: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let Ok(id) = export_id.parse::<JobId>() else {
        return Ok(false);
    };
    let job = match rt.catalog.get_job(account, id).await {
        Ok(j) => j,
        Err(catalog::Error::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    Ok(match job.status {
        catalog::JobStatus::Pending | catalog::JobStatus::Running => true,
        catalog::JobStatus::Succeeded => job
            .result
            .as_ref()
            .and_then(|r| r.get("expires_at"))
            .and_then(|t| serde_json::from_value::<DateTime<Utc>>(t.clone()).ok())
            .is_some_and(|t| t > now),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_messages_differ_by_every_part() {
        let job = JobId::random();
        let base = download_message(job, "a.pst", 100);
        assert_ne!(base, download_message(JobId::random(), "a.pst", 100));
        assert_ne!(base, download_message(job, "b.pst", 100));
        assert_ne!(base, download_message(job, "a.pst", 101));
        // A name cannot shift into the expiry.
        assert_ne!(
            download_message(job, "a\n1", 100),
            download_message(job, "a", 1100)
        );
    }
}
