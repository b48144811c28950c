//! What a job does: discovery of a task's mailboxes, and the backup of one
//! mailbox, each recorded in the catalog (entities, runs, activity).

use std::collections::HashSet;
use std::sync::Arc;

use catalog::{
    AccountId, ActivityKind, ActivityStatus, Claimed, DiscoveredEntity, Entity, EntityFilter,
    EntityId, EntityKind, EntityStatus, EntityType, JobId, JobKind, NewActivity, RunCounts,
    RunFinish, RunOutcome, Service, SubService, Task, TaskId,
};
use engine::exchange::{
    BackupOptions, BackupReport, DiscoveryOptions, MailboxBackup, MailboxKind,
    PUBLIC_FOLDERS_NOTICE, SubServiceReport,
};
use engine::faults::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Result, WorkerError};
use crate::progress::{JobProgressSink, JobSignals, StopReason};
use crate::runtime::Runtime;

/// What discovery found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverySummary {
    /// Mailboxes in the tenant.
    pub found: usize,
    /// Of those, seen for the first time.
    pub new: usize,
    /// New ones activated (the task's auto-activation setting).
    pub activated: usize,
    /// Entities no longer in the tenant, now Archived.
    pub archived: usize,
    /// Entities of the task now backed up in another task of the tenant.
    #[serde(default)]
    pub backed_up_elsewhere: u64,
    /// What the task's recurring activation rules did.
    #[serde(default)]
    pub rules: Vec<crate::rules::RuleOutcome>,
    /// What an administrator should know about this service (public folders
    /// are not offered, say).
    pub notice: String,
}

/// The result of a backup job: what the CLI's `--json` summary and the API
/// show per entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupSummary {
    /// The entity.
    pub entity_id: EntityId,
    /// Its name.
    pub name: String,
    /// Its address.
    pub email: Option<String>,
    /// Worst outcome of its sub-services.
    pub outcome: RunOutcome,
    /// The snapshot written (none when nothing was committed).
    pub snapshot_id: Option<String>,
    /// The snapshot it continued from.
    pub parent_snapshot_id: Option<String>,
    /// Per sub-service.
    pub parts: Vec<PartSummary>,
    /// Bytes the vault stored.
    pub bytes_stored: u64,
    /// Graph requests made.
    pub requests: u64,
    /// Something a person should know (the mailbox was deleted, say).
    pub note: Option<String>,
}

/// One sub-service of a [`BackupSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartSummary {
    /// Which sub-service.
    pub sub_service: SubService,
    /// Its outcome.
    pub outcome: RunOutcome,
    /// Counts.
    pub counts: engine::exchange::ItemCounts,
    /// Failed items.
    pub failures: Vec<catalog::ItemFailure>,
    /// Recovered trouble worth showing.
    pub notes: Vec<String>,
    /// Why it stopped, when it did.
    pub error: Option<String>,
}

/// How a job ended, for the worker to record.
#[derive(Debug)]
pub(crate) enum JobEnd {
    Completed(Value),
    Cancelled,
    Failed {
        error: String,
        retryable: bool,
    },
    /// The lease was lost: another attempt owns the job; record nothing.
    Released,
}

fn sub_service(s: impl Into<engine::SubService>) -> SubService {
    match s.into() {
        engine::SubService::Mail => SubService::Mail,
        engine::SubService::Contacts => SubService::Contacts,
        engine::SubService::Calendar => SubService::Calendar,
        engine::SubService::Tasks => SubService::Tasks,
        engine::SubService::Drive => SubService::Drive,
        engine::SubService::Site => SubService::Site,
        engine::SubService::Conversations => SubService::Conversations,
        engine::SubService::Channels => SubService::Channels,
        engine::SubService::Metadata => SubService::Metadata,
    }
}

fn run_outcome(o: Outcome) -> RunOutcome {
    match o {
        Outcome::Success => RunOutcome::Success,
        Outcome::Partial => RunOutcome::Partial,
        Outcome::Failed => RunOutcome::Failed,
        Outcome::Cancelled => RunOutcome::Cancelled,
    }
}

fn activity_status(o: RunOutcome) -> ActivityStatus {
    match o {
        RunOutcome::Success => ActivityStatus::Success,
        RunOutcome::Partial => ActivityStatus::Partial,
        RunOutcome::Failed => ActivityStatus::Failed,
        RunOutcome::Cancelled => ActivityStatus::Cancelled,
    }
}

/// Every entity of a task (all pages).
pub async fn task_entities(rt: &Runtime, account: AccountId, task: TaskId) -> Result<Vec<Entity>> {
    let mut out = Vec::new();
    loop {
        let page = rt
            .catalog
            .list_entities(
                account,
                &EntityFilter {
                    task_id: Some(task),
                    offset: u32::try_from(out.len())
                        .map_err(|_| WorkerError::Invalid("too many entities".into()))?,
                    ..Default::default()
                },
            )
            .await?;
        let n = page.len();
        out.extend(page);
        if n < catalog::MAX_PAGE as usize {
            return Ok(out);
        }
    }
}

/// Discover the mailboxes of an Exchange task: new ones are added (and
/// activated when the task says so), known ones updated, and those gone
/// from the tenant archived. Logged in the activity log.
pub async fn discover_task(
    rt: &Runtime,
    account: AccountId,
    task_id: TaskId,
    job: Option<JobId>,
) -> Result<DiscoverySummary> {
    let task = rt.catalog.get_task(account, task_id).await?;
    let result = discover(rt, account, &task).await;
    let mut entry = NewActivity::new(
        ActivityKind::Discovery,
        if result.is_ok() {
            ActivityStatus::Success
        } else {
            ActivityStatus::Failed
        },
    );
    entry.service = Some(task.service);
    entry.task_id = Some(task.id);
    entry.task_name = Some(task.name.clone());
    entry.job_id = job;
    entry.details = match &result {
        Ok(s) => serde_json::to_value(s).unwrap_or(Value::Null),
        Err(e) => json!({ "error": e.to_string() }),
    };
    rt.catalog.log_activity(account, entry).await?;
    result
}

async fn discover(rt: &Runtime, account: AccountId, task: &Task) -> Result<DiscoverySummary> {
    let graph = rt.graph(account, task.connection_id).await?;
    let (found, notice) = discover_service(&graph, task).await?;
    let before: HashSet<String> = task_entities(rt, account, task.id)
        .await?
        .into_iter()
        .map(|e| e.external_id)
        .collect();
    let stored = rt
        .catalog
        .upsert_entities(account, task.id, &found, task.settings.auto_activate_new)
        .await?;
    let new = found
        .iter()
        .filter(|f| !before.contains(&f.external_id))
        .count();
    let activated = stored
        .iter()
        .filter(|e| !before.contains(&e.external_id) && e.active)
        .count();
    let present: HashSet<&str> = found.iter().map(|f| f.external_id.as_str()).collect();
    let mut archived = 0;
    for e in task_entities(rt, account, task.id).await? {
        if !present.contains(e.external_id.as_str()) && e.status != EntityStatus::Archived {
            rt.catalog
                .mark_entity_deleted_in_tenant(account, e.id)
                .await?;
            archived += 1;
        }
    }
    let rules = crate::rules::evaluate_recurring_rules(rt, account, task.id).await?;
    let (backed_up_elsewhere, _) = rt.catalog.refresh_coverage(account, task.id).await?;
    Ok(DiscoverySummary {
        found: found.len(),
        new,
        activated,
        archived,
        backed_up_elsewhere,
        rules,
        notice,
    })
}

/// What a task's service finds in the tenant, and what an administrator
/// should know about it.
async fn discover_service(
    graph: &graph::GraphClient,
    task: &Task,
) -> Result<(Vec<DiscoveredEntity>, String)> {
    fn with(properties: &Value, extra: &[(&str, Value)]) -> Value {
        let mut p = match properties {
            Value::Object(o) => o.clone(),
            _ => Default::default(),
        };
        for (k, v) in extra {
            p.insert((*k).into(), v.clone());
        }
        Value::Object(p)
    }
    Ok(match task.service {
        Service::Exchange => {
            let mailboxes = engine::exchange::discover_mailboxes(
                graph,
                &DiscoveryOptions {
                    include_unlicensed: task.settings.backup_unlicensed,
                },
            )
            .await?;
            let found = mailboxes
                .iter()
                .map(|m| DiscoveredEntity {
                    kind: EntityKind::Mailbox,
                    external_id: m.graph_id.clone(),
                    name: m.display_name.clone(),
                    email_or_url: m.email.clone(),
                    entity_type: match m.kind {
                        MailboxKind::User => EntityType::User,
                        MailboxKind::Shared => EntityType::Shared,
                    },
                    properties: with(
                        &m.properties,
                        &[
                            ("accountEnabled", json!(m.account_enabled)),
                            ("licensed", json!(m.licensed)),
                        ],
                    ),
                })
                .collect();
            (found, PUBLIC_FOLDERS_NOTICE.to_string())
        }
        Service::OneDrive => {
            let drives = engine::onedrive::discover_drives(graph).await?;
            let found = drives
                .iter()
                .map(|d| DiscoveredEntity {
                    kind: EntityKind::OneDrive,
                    external_id: d.user_id.clone(),
                    name: d.display_name.clone(),
                    email_or_url: d.email.clone(),
                    entity_type: EntityType::User,
                    properties: with(
                        &d.properties,
                        &[
                            ("accountEnabled", json!(d.account_enabled)),
                            ("driveId", json!(d.drive_id)),
                            ("webUrl", json!(d.web_url)),
                            ("userPrincipalName", json!(d.user_principal_name)),
                            ("usedBytes", json!(d.used_bytes)),
                        ],
                    ),
                })
                .collect();
            (
                found,
                "OneNote notebooks are backed up as the files they are in each OneDrive.".into(),
            )
        }
        Service::Teams => {
            let groups = engine::teams::discover_groups(graph).await?;
            let found = groups
                .iter()
                .map(|g| {
                    let (kind, entity_type) = match g.kind {
                        engine::teams::GroupKind::Team => (EntityKind::Team, EntityType::Team),
                        engine::teams::GroupKind::Group => (EntityKind::Group, EntityType::Group),
                    };
                    DiscoveredEntity {
                        kind,
                        external_id: g.graph_id.clone(),
                        name: g.display_name.clone(),
                        email_or_url: g.mail.clone(),
                        entity_type,
                        properties: with(&g.properties, &[("visibility", json!(g.visibility))]),
                    }
                })
                .collect();
            (found, String::new())
        }
        Service::SharePoint => {
            let sites = engine::sharepoint::discover_sites(graph).await?;
            let found = sites
                .iter()
                .map(|site| DiscoveredEntity {
                    kind: EntityKind::Site,
                    external_id: site.graph_id.clone(),
                    name: site.display_name.clone(),
                    email_or_url: Some(site.web_url.clone()),
                    entity_type: EntityType::Site,
                    properties: with(
                        &site.properties,
                        &[
                            ("isSubSite", json!(site.is_sub_site)),
                            ("parentId", json!(site.parent_id)),
                            ("groupId", json!(site.group_id)),
                            ("webUrl", json!(site.web_url)),
                        ],
                    ),
                })
                .collect();
            (
                found,
                "Group-connected team sites are also backed up with their group by a Teams & Groups \
task; when one is, the site shows \"Backed up in another task\"."
                    .into(),
            )
        }
    })
}

pub(crate) async fn run_discovery_job(rt: &Runtime, claimed: &Claimed) -> JobEnd {
    let job = &claimed.job;
    let task = job
        .task_id
        .or_else(|| job.payload.get("task_id")?.as_str()?.parse().ok());
    let Some(task) = task else {
        return JobEnd::Failed {
            error: "discovery job without a task".into(),
            retryable: false,
        };
    };
    let result = async {
        let mut summary = discover_task(rt, job.account_id, task, Some(job.id)).await?;
        // A rule just created (through the API) is applied on fresh discovery
        // results, whether it runs once or recurs.
        let rule = job
            .payload
            .get("rule_id")
            .and_then(Value::as_str)
            .map(|r| {
                r.parse::<catalog::RuleId>()
                    .map_err(|_| WorkerError::Invalid(format!("'{r}' is not a rule id")))
            })
            .transpose()?;
        if let Some(rule) = rule {
            let rule = rt.catalog.get_rule(job.account_id, rule).await?;
            if !summary
                .rules
                .iter()
                .any(|o| o.rule_id == rule.id.to_string())
            {
                let outcome = crate::rules::apply_rule(rt, job.account_id, &rule).await?;
                summary.rules.push(outcome);
            }
        }
        Ok::<_, WorkerError>(summary)
    }
    .await;
    match result {
        Ok(s) => JobEnd::Completed(serde_json::to_value(s).unwrap_or(Value::Null)),
        Err(e) => JobEnd::Failed {
            retryable: e.is_retryable(),
            error: e.to_string(),
        },
    }
}

pub(crate) async fn run_backup_job(
    rt: &Runtime,
    claimed: &Claimed,
    signals: &Arc<JobSignals>,
    sink: &Arc<JobProgressSink>,
) -> JobEnd {
    match backup_entity(rt, claimed, signals, sink).await {
        Ok(end) => end,
        Err(e) => JobEnd::Failed {
            retryable: e.is_retryable(),
            error: e.to_string(),
        },
    }
}

struct OpenRun {
    sub: engine::SubService,
    id: catalog::RunId,
}

async fn backup_entity(
    rt: &Runtime,
    claimed: &Claimed,
    signals: &Arc<JobSignals>,
    sink: &Arc<JobProgressSink>,
) -> Result<JobEnd> {
    let job = &claimed.job;
    let account = job.account_id;
    let entity_id = job
        .entity_id
        .or_else(|| job.payload.get("entity_id")?.as_str()?.parse().ok())
        .ok_or_else(|| WorkerError::Invalid("backup job without an entity".into()))?;
    let entity = rt.catalog.get_entity(account, entity_id).await?;
    let task = rt.catalog.get_task(account, entity.task_id).await?;
    let sub_services = sub_services_of(task.service, entity.kind).ok_or_else(|| {
        WorkerError::Invalid(format!(
            "a {} task cannot back up a {}",
            task.service, entity.kind
        ))
    })?;
    let mut summary = BackupSummary {
        entity_id,
        name: entity.name.clone(),
        email: entity.email_or_url.clone(),
        outcome: RunOutcome::Success,
        snapshot_id: None,
        parent_snapshot_id: None,
        parts: Vec::new(),
        bytes_stored: 0,
        requests: 0,
        note: None,
    };
    if entity.status == EntityStatus::Archived {
        summary.note = Some(format!(
            "the {} was deleted in Microsoft 365; its backups are kept",
            entity.kind
        ));
        return Ok(JobEnd::Completed(
            serde_json::to_value(&summary).unwrap_or(Value::Null),
        ));
    }
    let parent = rt
        .catalog
        .latest_successful_runs(account, entity_id)
        .await?
        .into_iter()
        .filter(|r| r.snapshot_id.is_some())
        .max_by_key(|r| r.started_at)
        .and_then(|r| r.snapshot_id);
    let parent_id = parent
        .as_deref()
        .map(|s| s.parse::<vault::SnapshotId>())
        .transpose()?;
    summary.parent_snapshot_id = parent.clone();
    let graph = rt.graph(account, task.connection_id).await?;
    let vault = rt.vault_account(account).await?;
    let status_before = match entity.status {
        EntityStatus::InProcess => EntityStatus::Scheduled,
        s => s,
    };
    rt.catalog
        .set_entity_status(account, entity_id, EntityStatus::InProcess)
        .await?;
    close_interrupted_runs(rt, account, entity_id).await?;
    let mut runs = Vec::new();
    for sub in &sub_services {
        let run = rt
            .catalog
            .start_run(account, entity_id, sub_service(*sub))
            .await?;
        runs.push(OpenRun {
            sub: *sub,
            id: run.id,
        });
    }
    let meta = json!({
        "account_id": account,
        "task_id": task.id,
        "entity_id": entity_id,
        "email": entity.email_or_url,
        "job_id": job.id,
    });
    let result = run_engine(
        &graph,
        &vault,
        &entity,
        parent_id.as_ref(),
        &sub_services,
        sink.as_ref(),
        &signals.cancel,
        meta,
    )
    .await;
    let report = match result {
        Ok(r) if r.snapshot_id.is_some() => r,
        Ok(_) | Err(engine::EngineError::Cancelled) => {
            return stopped(rt, claimed, &task, &entity, &runs, status_before, signals).await;
        }
        Err(engine::EngineError::EntityGone(what)) => {
            let note = format!(
                "{what} no longer exists in Microsoft 365; it is archived and its backups are kept"
            );
            finish_open_runs(rt, account, &runs, RunOutcome::Failed, &note).await?;
            rt.catalog
                .mark_entity_deleted_in_tenant(account, entity_id)
                .await?;
            log_entity_activity(
                rt,
                claimed,
                &task,
                &entity,
                None,
                ActivityStatus::Failed,
                json!({ "note": note }),
            )
            .await?;
            summary.outcome = RunOutcome::Failed;
            summary.note = Some(note);
            return Ok(JobEnd::Completed(
                serde_json::to_value(&summary).unwrap_or(Value::Null),
            ));
        }
        Err(e) => {
            let message = e.to_string();
            finish_open_runs(rt, account, &runs, RunOutcome::Failed, &message).await?;
            rt.catalog
                .record_entity_backup(
                    account,
                    entity_id,
                    rt.catalog.now(),
                    RunOutcome::Failed,
                    entity.backup_size_bytes,
                )
                .await?;
            log_entity_activity(
                rt,
                claimed,
                &task,
                &entity,
                None,
                ActivityStatus::Failed,
                json!({ "error": message }),
            )
            .await?;
            return Ok(JobEnd::Failed {
                retryable: e.is_retryable(),
                error: message,
            });
        }
    };
    record_report(rt, claimed, &task, &entity, &runs, &report, &mut summary).await?;
    if task.settings.index_for_search
        && let Some(snapshot) = &summary.snapshot_id
    {
        engine::progress::Progress::set_stage(sink.as_ref(), "indexing for search");
        // The backup stands whatever happens here: the next backup indexes
        // from the last snapshot that was indexed.
        if let Err(e) = crate::search::index_backup(rt, account, entity_id, snapshot).await {
            tracing::warn!(entity = %entity_id, error = %e, "search indexing failed");
            let note =
                format!("the search index was not updated ({e}); the next backup catches up");
            summary.note = Some(match summary.note.take() {
                Some(n) => format!("{n}; {note}"),
                None => note,
            });
        }
    }
    Ok(JobEnd::Completed(
        serde_json::to_value(&summary).unwrap_or(Value::Null),
    ))
}

/// The sub-services a backup of `kind` in a `service` task covers, in
/// order; None when the task cannot hold such an entity.
fn sub_services_of(service: Service, kind: EntityKind) -> Option<Vec<engine::SubService>> {
    use engine::SubService as S;
    Some(match (service, kind) {
        (Service::Exchange, EntityKind::Mailbox) => BackupOptions::default()
            .sub_services
            .into_iter()
            .map(Into::into)
            .collect(),
        (Service::OneDrive, EntityKind::OneDrive) => vec![S::Drive],
        (Service::SharePoint, EntityKind::Site) => vec![S::Site, S::Drive],
        (Service::Teams, EntityKind::Group) => {
            vec![S::Metadata, S::Conversations, S::Calendar, S::Drive]
        }
        (Service::Teams, EntityKind::Team) => engine::teams::GroupBackupOptions::ALL.to_vec(),
        _ => return None,
    })
}

/// Runs the engine's backup of one entity.
#[allow(clippy::too_many_arguments)]
async fn run_engine(
    graph: &graph::GraphClient,
    vault: &vault::Account,
    entity: &Entity,
    parent: Option<&vault::SnapshotId>,
    sub_services: &[engine::SubService],
    progress: &dyn engine::progress::Progress,
    cancel: &engine::Cancel,
    meta: Value,
) -> engine::Result<BackupReport> {
    match entity.kind {
        EntityKind::Mailbox => {
            let options = BackupOptions::default();
            engine::exchange::backup_mailbox(MailboxBackup {
                graph,
                vault,
                mailbox_id: &entity.external_id,
                parent,
                options: &options,
                progress,
                cancel,
                meta,
            })
            .await
        }
        EntityKind::OneDrive => {
            let options = engine::onedrive::OneDriveOptions {
                stage: Some(entity.name.clone()),
            };
            engine::onedrive::backup_onedrive(engine::onedrive::OneDriveBackup {
                graph,
                vault,
                user_id: &entity.external_id,
                parent,
                options: &options,
                progress,
                cancel,
                meta,
            })
            .await
        }
        EntityKind::Group | EntityKind::Team => {
            let options = engine::teams::GroupBackupOptions {
                sub_services: sub_services.to_vec(),
                ..Default::default()
            };
            engine::teams::backup_group(engine::teams::GroupBackup {
                graph,
                vault,
                group_id: &entity.external_id,
                is_team: entity.kind == EntityKind::Team,
                parent,
                options: &options,
                progress,
                cancel,
                meta,
            })
            .await
        }
        EntityKind::Site => {
            let options = engine::sharepoint::SiteBackupOptions::default();
            engine::sharepoint::backup_site(engine::sharepoint::SiteBackup {
                graph,
                vault,
                site_id: &entity.external_id,
                parent,
                options: &options,
                progress,
                cancel,
                meta,
            })
            .await
        }
    }
}

/// Runs left open by a worker that died mid-backup are closed as failed, so
/// that every run has an outcome and the next backup starts clean.
async fn close_interrupted_runs(rt: &Runtime, account: AccountId, entity: EntityId) -> Result<()> {
    let from = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let to = rt.catalog.now() + chrono::Duration::days(1);
    for run in rt
        .catalog
        .runs_for_entity(account, entity, from, to)
        .await?
    {
        if run.outcome.is_none() {
            let finish = RunFinish {
                outcome: Some(RunOutcome::Failed),
                error_summary: Some(
                    "interrupted: the worker stopped before the backup finished; it ran again"
                        .into(),
                ),
                ..Default::default()
            };
            match rt.catalog.finish_run(account, run.id, &finish).await {
                Ok(_) | Err(catalog::Error::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn finish_open_runs(
    rt: &Runtime,
    account: AccountId,
    runs: &[OpenRun],
    outcome: RunOutcome,
    why: &str,
) -> Result<()> {
    for r in runs {
        let finish = RunFinish {
            outcome: Some(outcome),
            error_summary: Some(why.to_string()),
            ..Default::default()
        };
        rt.catalog.finish_run(account, r.id, &finish).await?;
    }
    Ok(())
}

async fn stopped(
    rt: &Runtime,
    claimed: &Claimed,
    task: &Task,
    entity: &Entity,
    runs: &[OpenRun],
    status_before: EntityStatus,
    signals: &JobSignals,
) -> Result<JobEnd> {
    let account = claimed.job.account_id;
    let reason = signals.stop_reason();
    let why = match reason {
        Some(StopReason::UserCancel) | None => "cancelled",
        Some(StopReason::Shutdown) => "the worker shut down; the backup will run again",
        Some(StopReason::LeaseLost) => "the worker lost its lease; another attempt runs the backup",
    };
    finish_open_runs(rt, account, runs, RunOutcome::Cancelled, why).await?;
    if reason == Some(StopReason::LeaseLost) {
        return Ok(JobEnd::Released);
    }
    rt.catalog
        .set_entity_status(account, entity.id, status_before)
        .await?;
    log_entity_activity(
        rt,
        claimed,
        task,
        entity,
        None,
        ActivityStatus::Cancelled,
        json!({ "note": why }),
    )
    .await?;
    Ok(match reason {
        Some(StopReason::Shutdown) => JobEnd::Failed {
            error: why.into(),
            retryable: true,
        },
        _ => JobEnd::Cancelled,
    })
}

async fn record_report(
    rt: &Runtime,
    claimed: &Claimed,
    task: &Task,
    entity: &Entity,
    runs: &[OpenRun],
    report: &BackupReport,
    summary: &mut BackupSummary,
) -> Result<()> {
    let account = claimed.job.account_id;
    let snapshot = report.snapshot_id.as_ref().map(|s| s.to_string());
    let outcome = run_outcome(report.outcome());
    let mut bytes_left = report.bytes_stored;
    for run in runs {
        let part: Option<&SubServiceReport> =
            report.parts.iter().find(|p| p.sub_service == run.sub);
        let Some(part) = part else {
            // Not part of this backup: carried unchanged from the parent.
            let finish = RunFinish {
                snapshot_id: snapshot.clone(),
                outcome: Some(RunOutcome::Success),
                ..Default::default()
            };
            rt.catalog.finish_run(account, run.id, &finish).await?;
            continue;
        };
        let failures: Vec<catalog::ItemFailure> = part
            .failures
            .iter()
            .map(|f| catalog::ItemFailure {
                item_id: f.item_id.clone(),
                path: f.path.clone(),
                reason: f.reason.clone(),
            })
            .collect();
        // The vault reports stored bytes per snapshot, not per sub-service:
        // the first run carries them.
        let bytes_stored = std::mem::take(&mut bytes_left);
        let finish = RunFinish {
            snapshot_id: snapshot.clone(),
            outcome: Some(run_outcome(part.outcome)),
            counts: RunCounts {
                items_new: part.counts.new,
                items_changed: part.counts.changed,
                items_deleted: part.counts.deleted,
                items_failed: part.counts.failed,
                bytes_read: part.counts.bytes_read,
                bytes_stored,
            },
            error_summary: part.error.clone(),
            failures: failures.clone(),
            delta_state: report.delta_state.get(part.sub_service.as_str()).cloned(),
        };
        rt.catalog.finish_run(account, run.id, &finish).await?;
        log_entity_activity(
            rt,
            claimed,
            task,
            entity,
            Some(sub_service(part.sub_service)),
            activity_status(run_outcome(part.outcome)),
            json!({
                "snapshot_id": snapshot,
                "items_new": part.counts.new,
                "items_changed": part.counts.changed,
                "items_deleted": part.counts.deleted,
                "items_failed": part.counts.failed,
                "items_total": part.counts.total,
                "bytes_read": part.counts.bytes_read,
                "error": part.error,
            }),
        )
        .await?;
        summary.parts.push(PartSummary {
            sub_service: sub_service(part.sub_service),
            outcome: run_outcome(part.outcome),
            counts: part.counts,
            failures,
            notes: part.notes.clone(),
            error: part.error.clone(),
        });
    }
    rt.catalog
        .record_entity_backup(
            account,
            entity.id,
            rt.catalog.now(),
            outcome,
            entity.backup_size_bytes.saturating_add(report.bytes_stored),
        )
        .await?;
    summary.outcome = outcome;
    summary.snapshot_id = snapshot;
    summary.bytes_stored = report.bytes_stored;
    summary.requests = report.requests;
    Ok(())
}

async fn log_entity_activity(
    rt: &Runtime,
    claimed: &Claimed,
    task: &Task,
    entity: &Entity,
    sub: Option<SubService>,
    status: ActivityStatus,
    mut details: Value,
) -> Result<()> {
    if let (Some(sub), Value::Object(m)) = (sub, &mut details) {
        m.insert("sub_service".into(), json!(sub));
    }
    let mut entry = NewActivity::new(ActivityKind::Backup, status);
    entry.service = Some(task.service);
    entry.task_id = Some(task.id);
    entry.task_name = Some(task.name.clone());
    entry.entity_id = Some(entity.id);
    entry.item = Some(
        entity
            .email_or_url
            .clone()
            .unwrap_or_else(|| entity.name.clone()),
    );
    entry.job_id = Some(claimed.job.id);
    entry.details = details;
    rt.catalog
        .log_activity(claimed.job.account_id, entry)
        .await?;
    Ok(())
}

/// The kinds of job this worker runs.
pub const JOB_KINDS: [JobKind; 5] = [
    JobKind::Backup,
    JobKind::Discovery,
    JobKind::Purge,
    JobKind::Restore,
    JobKind::Export,
];
