//! Restore jobs (SPEC F-E4..F-E6, F-E8, F-F): find the snapshot asked for
//! (by id, "as of" a date, or the latest), check the destination belongs to
//! the same account and can take this kind of data, optionally back the
//! destination up first, run the engine's restore with job progress, a
//! per-item log in the catalog and prompt cancel, and record an activity
//! entry (the completion event the notifier sends mail from).

use std::sync::Arc;

use catalog::{
    AccountId, ActivityKind, ActivityStatus, Claimed, ConnectionId, Entity, EntityId, EntityKind,
    EntitySnapshot, EntityStatus, JobItem, NewActivity, NewJob, Task, TaskId,
};
use chrono::{DateTime, Utc};
use engine::faults::Outcome;
use engine::restore::{
    ItemLogEntry, RestoreCtx, RestoreLog, RestoreOptions, RestoreReport, Selection,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::error::{Result, WorkerError};
use crate::jobs::JobEnd;
use crate::progress::{JobProgressSink, JobSignals, StopReason};
use crate::runtime::Runtime;

/// What a restore job is asked to do (its payload).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreRequest {
    /// The task the entity belongs to.
    pub task_id: TaskId,
    /// The entity whose backup is restored.
    pub entity_id: EntityId,
    /// The snapshot; without it, `at`; without both, the latest.
    #[serde(default)]
    pub snapshot_id: Option<String>,
    /// Restore the newest backup taken at or before this time.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    /// What to restore (nothing chosen: everything).
    #[serde(default)]
    pub selection: Selection,
    /// How.
    pub options: RestoreOptions,
    /// Where; without it, the entity itself.
    #[serde(default)]
    pub destination: Option<RestoreDestination>,
    /// Back the destination up before writing into it (F-E4).
    #[serde(default)]
    pub snapshot_destination_first: bool,
}

/// Where a restore writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", untagged)]
pub enum RestoreDestination {
    /// Another entity known to the account (another mailbox, site, team),
    /// in any of its tasks: its task's connection is used.
    Entity {
        /// The catalog entity.
        entity_id: EntityId,
    },
    /// An object by its Microsoft 365 id through one of the account's
    /// connections: a re-created user or site, or a site in another tenant.
    External {
        /// The connection (tenant) to write through.
        connection_id: ConnectionId,
        /// The Graph id of the user, site or group.
        external_id: String,
    },
}

/// What a finished restore job reports (its result).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestoreSummary {
    /// The snapshot restored from.
    pub snapshot_id: String,
    /// When it was taken.
    pub snapshot_time: DateTime<Utc>,
    /// The Graph id written into.
    pub destination: Option<String>,
    /// The outcome.
    pub outcome: Outcome,
    /// What the engine did.
    pub report: RestoreReport,
    /// The snapshot of the destination taken first, when asked.
    pub destination_snapshot_id: Option<String>,
}

/// Enqueues a restore job for `request`, after checking what can be
/// checked without running it: the task and entity exist in the account,
/// the snapshot (when named) is the entity's. Returns the job.
pub async fn enqueue_restore(
    catalog: &catalog::Catalog,
    account: AccountId,
    request: &RestoreRequest,
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
    if let Some(RestoreDestination::Entity { entity_id }) = &request.destination {
        // Scoped by account: another account's entity is not found.
        let dest = catalog.get_entity(account, *entity_id).await?;
        if !compatible(entity.kind, dest.kind) {
            return Err(WorkerError::Invalid(format!(
                "a {} can be restored only into a {}, and {} is a {}",
                entity.kind, entity.kind, dest.name, dest.kind
            )));
        }
    }
    let mut job = NewJob::new(
        catalog::JobKind::Restore,
        serde_json::to_value(request).map_err(|e| WorkerError::Invalid(e.to_string()))?,
    );
    job.service = Some(task.service);
    job.task_id = Some(task.id);
    job.entity_id = Some(entity.id);
    job.initiator = initiator;
    job.title = Some(format!(
        "Restore {} ({})",
        entity.email_or_url.as_deref().unwrap_or(&entity.name),
        request.options.mode
    ));
    // A person waits for a restore: it goes before scheduled backups.
    job.priority = 10;
    Ok(catalog.enqueue_job(account, job).await?.job().clone())
}

pub(crate) async fn run_restore_job(
    rt: &Runtime,
    claimed: &Claimed,
    signals: &Arc<JobSignals>,
    sink: &Arc<JobProgressSink>,
) -> JobEnd {
    match restore(rt, claimed, signals, sink).await {
        Ok(end) => end,
        Err(e) => {
            let error = e.to_string();
            let _ = log_restore_activity(
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
    }
}

/// The destination, resolved.
struct Target {
    graph: graph::GraphClient,
    /// The Graph id; None lets the engine create one (a gone team).
    external_id: Option<String>,
    /// The catalog entity, when the destination is one.
    entity: Option<Entity>,
}

async fn restore(
    rt: &Runtime,
    claimed: &Claimed,
    signals: &Arc<JobSignals>,
    sink: &Arc<JobProgressSink>,
) -> Result<JobEnd> {
    let job = &claimed.job;
    let account = job.account_id;
    let request: RestoreRequest = serde_json::from_value(job.payload.clone())
        .map_err(|e| WorkerError::Invalid(format!("restore job payload: {e}")))?;
    let entity = rt.catalog.get_entity(account, request.entity_id).await?;
    let task = rt.catalog.get_task(account, entity.task_id).await?;
    let (chosen, vault, snapshot) = resolve_snapshot(
        rt,
        account,
        &entity,
        request.snapshot_id.as_deref(),
        request.at,
    )
    .await?;
    let kind = engine::restore::SnapshotKind::of(&snapshot)?;
    request
        .selection
        .validate(kind.sub_services())
        .map_err(WorkerError::Invalid)?;
    let target =
        resolve_destination(rt, account, &task, &entity, request.destination.as_ref()).await?;

    let mut destination_snapshot_id = None;
    if request.snapshot_destination_first {
        destination_snapshot_id =
            back_up_destination_first(rt, claimed, signals, sink, &entity, target.entity.as_ref())
                .await?;
        if signals.cancel.is_cancelled() {
            return Ok(stopped(signals));
        }
    }

    let (log, flusher) = CatalogLog::start(rt.catalog.clone(), account, job.id);
    let result = run_engine_restore(
        target.graph.clone(),
        vault.clone(),
        snapshot,
        request.selection.clone(),
        request.options.clone(),
        target.external_id.clone(),
        sink.clone(),
        log,
        signals.cancel.clone(),
    )
    .await?;
    let flushed = flusher.await;
    let report = match result {
        Ok(r) => r,
        Err(engine::EngineError::Cancelled) => {
            log_restore_activity(
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
    flushed.map_err(|e| WorkerError::Invalid(format!("writing the restore's item log: {e}")))??;
    let outcome = report.outcome();
    let summary = RestoreSummary {
        snapshot_id: chosen.snapshot_id.clone(),
        snapshot_time: chosen.time,
        destination: report.destination.clone().or(target.external_id.clone()),
        outcome,
        report,
        destination_snapshot_id,
    };
    let status = match outcome {
        Outcome::Success => ActivityStatus::Success,
        Outcome::Partial => ActivityStatus::Partial,
        Outcome::Failed => ActivityStatus::Failed,
        Outcome::Cancelled => ActivityStatus::Cancelled,
    };
    log_restore_activity(
        rt,
        claimed,
        Some(&task),
        Some(&entity),
        status,
        json!({
            "snapshot_id": summary.snapshot_id,
            "mode": request.options.mode,
            "restored": summary.report.restored,
            "overwritten": summary.report.overwritten,
            "skipped": summary.report.skipped,
            "failed": summary.report.failed,
            "destination": summary.destination,
            "location": summary.report.location,
        }),
    )
    .await?;
    if outcome == Outcome::Cancelled {
        return Ok(stopped(signals));
    }
    Ok(JobEnd::Completed(
        serde_json::to_value(&summary).unwrap_or(Value::Null),
    ))
}

/// The snapshot a restore or export asked for: by id, else the newest at or
/// before `at`, else the latest; always one of `entity`'s.
pub(crate) async fn resolve_snapshot(
    rt: &Runtime,
    account: AccountId,
    entity: &Entity,
    snapshot_id: Option<&str>,
    at: Option<DateTime<Utc>>,
) -> Result<(EntitySnapshot, vault::Account, vault::SnapshotInfo)> {
    let chosen = match (snapshot_id, at) {
        (Some(id), _) => rt.catalog.entity_snapshot(account, entity.id, id).await?,
        (None, Some(at)) => rt.catalog.snapshot_at(account, entity.id, at).await?,
        (None, None) => {
            rt.catalog
                .snapshot_at(account, entity.id, rt.catalog.now())
                .await?
        }
    };
    let vault = rt.vault_account(account).await?;
    let snapshot = vault.snapshot(&chosen.snapshot_id.parse()?).await?;
    Ok((chosen, vault, snapshot))
}

/// How a job that stopped early ends, by why it stopped.
pub(crate) fn stopped(signals: &JobSignals) -> JobEnd {
    match signals.stop_reason() {
        Some(StopReason::LeaseLost) => JobEnd::Released,
        Some(StopReason::Shutdown) => JobEnd::Failed {
            error: "the worker shut down; the restore will run again".into(),
            retryable: true,
        },
        _ => JobEnd::Cancelled,
    }
}

/// Runs the engine's restore on a thread of its own. Some workload
/// restores hold borrows across awaits that the compiler cannot prove
/// `Send` for every lifetime, which a job spawned on the runtime must be;
/// driving the restore with `block_on` on a blocking-pool thread needs only
/// its (owned) inputs to be `Send`.
#[allow(clippy::too_many_arguments)]
async fn run_engine_restore(
    graph: graph::GraphClient,
    vault: vault::Account,
    snapshot: vault::SnapshotInfo,
    selection: Selection,
    options: RestoreOptions,
    destination: Option<String>,
    sink: Arc<JobProgressSink>,
    log: CatalogLog,
    cancel: engine::Cancel,
) -> Result<engine::Result<RestoreReport>> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            let ctx = RestoreCtx {
                graph: &graph,
                vault: &vault,
                snapshot: &snapshot,
                selection: &selection,
                options: &options,
                destination: destination.as_deref(),
                progress: sink.as_ref(),
                log: &log,
                cancel: &cancel,
            };
            let r = engine::restore::restore(&ctx).await;
            // The log's sender goes here, so its writer sees the end.
            drop(log);
            r
        })
    })
    .await
    .map_err(|e| WorkerError::Invalid(format!("the restore stopped unexpectedly: {e}")))
}

/// Which kinds of entity can receive a restore of `from` (F-E6: a group
/// only into a group, a team only into a team).
fn compatible(from: EntityKind, to: EntityKind) -> bool {
    from == to
}

async fn resolve_destination(
    rt: &Runtime,
    account: AccountId,
    task: &Task,
    entity: &Entity,
    destination: Option<&RestoreDestination>,
) -> Result<Target> {
    match destination {
        None => {
            if entity.status == EntityStatus::Archived && entity.kind != EntityKind::Team {
                return Err(WorkerError::Invalid(format!(
                    "the {} {} was deleted in Microsoft 365: restore it into another {} \
                     (or one re-created for it) by choosing a destination",
                    entity.kind, entity.name, entity.kind
                )));
            }
            let graph = rt.graph(account, task.connection_id).await?;
            // A deleted team is restored into a new team the engine creates.
            let external_id =
                (entity.status != EntityStatus::Archived).then(|| entity.external_id.clone());
            Ok(Target {
                graph,
                external_id,
                entity: Some(entity.clone()),
            })
        }
        Some(RestoreDestination::Entity { entity_id }) => {
            // get_entity is scoped by account: another account's entity is not found.
            let dest = rt.catalog.get_entity(account, *entity_id).await?;
            if !compatible(entity.kind, dest.kind) {
                return Err(WorkerError::Invalid(format!(
                    "a {} can be restored only into a {}, and {} is a {}",
                    entity.kind, entity.kind, dest.name, dest.kind
                )));
            }
            if dest.status == EntityStatus::Archived {
                return Err(WorkerError::Invalid(format!(
                    "{} was deleted in Microsoft 365 and cannot receive a restore",
                    dest.name
                )));
            }
            let dest_task = rt.catalog.get_task(account, dest.task_id).await?;
            let graph = rt.graph(account, dest_task.connection_id).await?;
            Ok(Target {
                graph,
                external_id: Some(dest.external_id.clone()),
                entity: Some(dest),
            })
        }
        Some(RestoreDestination::External {
            connection_id,
            external_id,
        }) => {
            if external_id.trim().is_empty() {
                return Err(WorkerError::Invalid("the destination id is empty".into()));
            }
            // rt.graph checks the connection is the account's.
            let graph = rt.graph(account, *connection_id).await?;
            Ok(Target {
                graph,
                external_id: Some(external_id.clone()),
                entity: None,
            })
        }
    }
}

/// Backs the destination up before the restore writes into it, when it is
/// an entity the account protects; returns the snapshot taken.
async fn back_up_destination_first(
    rt: &Runtime,
    claimed: &Claimed,
    signals: &Arc<JobSignals>,
    sink: &Arc<JobProgressSink>,
    source: &Entity,
    dest: Option<&Entity>,
) -> Result<Option<String>> {
    let Some(dest) = dest.filter(|d| d.status != EntityStatus::Archived) else {
        return Err(WorkerError::Invalid(format!(
            "a snapshot of the destination was asked for, but the destination of {}'s restore \
             is not an entity Lifeboat backs up",
            source.name
        )));
    };
    let mut backup = claimed.clone();
    backup.job.entity_id = Some(dest.id);
    backup.job.payload = json!({ "entity_id": dest.id });
    match crate::jobs::run_backup_job(rt, &backup, signals, sink).await {
        JobEnd::Completed(v) => Ok(v
            .get("snapshot_id")
            .and_then(Value::as_str)
            .map(str::to_string)),
        JobEnd::Failed { error, retryable } => Err(if retryable {
            WorkerError::Invalid(format!("backing up the destination first failed: {error}"))
        } else {
            WorkerError::Invalid(format!(
                "backing up the destination first failed, so nothing was restored: {error}"
            ))
        }),
        JobEnd::Cancelled | JobEnd::Released => Ok(None),
    }
}

async fn log_restore_activity(
    rt: &Runtime,
    claimed: &Claimed,
    task: Option<&Task>,
    entity: Option<&Entity>,
    status: ActivityStatus,
    details: Value,
) -> Result<()> {
    log_job_activity(
        rt,
        claimed,
        ActivityKind::Restore,
        task,
        entity,
        status,
        details,
    )
    .await
}

/// Records how a restore or export job went in the activity log: the
/// completion event the notifier sends mail from.
pub(crate) async fn log_job_activity(
    rt: &Runtime,
    claimed: &Claimed,
    kind: ActivityKind,
    task: Option<&Task>,
    entity: Option<&Entity>,
    status: ActivityStatus,
    details: Value,
) -> Result<()> {
    let mut entry = NewActivity::new(kind, status);
    entry.service = task.map(|t| t.service);
    entry.task_id = task.map(|t| t.id);
    entry.task_name = task.map(|t| t.name.clone());
    entry.entity_id = entity.map(|e| e.id);
    entry.item = entity.map(|e| e.email_or_url.clone().unwrap_or_else(|| e.name.clone()));
    entry.job_id = Some(claimed.job.id);
    entry.details = details;
    rt.catalog
        .log_activity(claimed.job.account_id, entry)
        .await?;
    Ok(())
}

/// Items written to the catalog at once.
const LOG_BATCH: usize = 200;

/// The per-item log, written to the catalog in batches by a task of its
/// own (the engine logs from synchronous code, per item).
pub(crate) struct CatalogLog {
    tx: mpsc::UnboundedSender<ItemLogEntry>,
}

impl CatalogLog {
    pub(crate) fn start(
        catalog: catalog::Catalog,
        account: AccountId,
        job: catalog::JobId,
    ) -> (Self, tokio::task::JoinHandle<catalog::Result<()>>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<ItemLogEntry>();
        let flusher = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(LOG_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < LOG_BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let items: Vec<JobItem> = batch
                    .drain(..)
                    .map(|e| JobItem {
                        seq: 0,
                        path: e.path,
                        name: e.name,
                        outcome: e.outcome.as_str().to_string(),
                        detail: e.detail,
                        bytes: e.bytes,
                    })
                    .collect();
                catalog.append_job_items(account, job, &items).await?;
            }
            Ok(())
        });
        (Self { tx }, flusher)
    }
}

impl RestoreLog for CatalogLog {
    fn record(&self, entry: ItemLogEntry) {
        // The receiver lives until this sender is dropped.
        let _ = self.tx.send(entry);
    }
}
