//! Purging backups that are no longer kept: entities deleted in Microsoft
//! 365 once the task's "keep archived backups" period is over (SPEC F-C6,
//! F-B3), entities whose deletion was requested once the 7-day grace period
//! is over (F-C3), and whole tasks likewise (F-B4). Purging forgets the
//! entity's snapshots in the vault (their data goes at the next gc) and then
//! removes the entity from the catalog, in that order: a purge killed half
//! way leaves the entity in place and runs again.

use catalog::{
    AccountId, ActivityKind, ActivityStatus, Claimed, DELETION_GRACE, Entity, EntityId,
    EntityStatus, JobKind, NewActivity, NewJob, Task, TaskId,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Result, WorkerError};
use crate::jobs::{JobEnd, task_entities};
use crate::runtime::Runtime;

/// Why an entity's backups are purged.
pub fn purge_reason(task: &Task, e: &Entity, now: DateTime<Utc>) -> Option<String> {
    if let Some(at) = e.deletion_requested_at
        && at + DELETION_GRACE <= now
    {
        return Some("its deletion was requested and the 7-day grace period is over".into());
    }
    if e.status == EntityStatus::Archived
        && let (Some(gone), Some(days)) = (
            e.deleted_in_tenant_at,
            task.settings.archived_retention_days,
        )
        && gone + chrono::Duration::days(i64::from(days)) <= now
    {
        return Some(format!(
            "it was deleted in Microsoft 365 on {} and the task keeps archived backups {days} days",
            gone.format("%Y-%m-%d")
        ));
    }
    None
}

/// What a purge removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeSummary {
    /// Entities purged.
    pub entities: Vec<PurgedEntity>,
    /// Whether the whole task was removed.
    pub task_removed: bool,
}

/// One purged entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgedEntity {
    /// The entity.
    pub entity_id: EntityId,
    /// Its name.
    pub name: String,
    /// Snapshots forgotten in the vault.
    pub snapshots: usize,
    /// Why.
    pub reason: String,
}

/// Enqueue purge jobs for the task's entities whose backups are due to go,
/// and for the task itself when its deletion grace period is over. Returns
/// the number of jobs created.
pub async fn enqueue_purges(rt: &Runtime, task: &Task, now: DateTime<Utc>) -> Result<usize> {
    let mut created = 0;
    let whole_task = task
        .deletion_requested_at
        .is_some_and(|t| t + DELETION_GRACE <= now);
    let mut jobs = Vec::new();
    if whole_task {
        let mut job = NewJob::new(
            JobKind::Purge,
            json!({ "task_id": task.id, "whole_task": true }),
        );
        job.dedupe_key = Some(format!("purge-task:{}", task.id));
        job.title = Some(format!("Purge of the deleted task {}", task.name));
        jobs.push(job);
    } else {
        for e in task_entities(rt, task.account_id, task.id).await? {
            if purge_reason(task, &e, now).is_none() {
                continue;
            }
            let mut job = NewJob::new(
                JobKind::Purge,
                json!({ "task_id": task.id, "entity_id": e.id }),
            );
            job.entity_id = Some(e.id);
            job.dedupe_key = Some(format!("purge:{}", e.id));
            job.title = Some(format!(
                "Purge of the backups of {}",
                e.email_or_url.as_deref().unwrap_or(&e.name)
            ));
            jobs.push(job);
        }
    }
    for mut job in jobs {
        job.task_id = Some(task.id);
        job.service = Some(task.service);
        job.initiator = Some("retention".into());
        if let catalog::Enqueued::Created(_) = rt.catalog.enqueue_job(task.account_id, job).await? {
            created += 1;
        }
    }
    Ok(created)
}

/// Forget every snapshot of an entity and remove it from the catalog. The
/// reason is checked again at run time (a deletion cancelled, or an entity
/// back in the tenant, since the job was queued keeps its backups) unless
/// the whole task is going.
pub async fn purge_entity(
    rt: &Runtime,
    account: AccountId,
    task: &Task,
    entity: &Entity,
    whole_task: bool,
) -> Result<Option<PurgedEntity>> {
    let reason = if whole_task {
        "its task was deleted and the 7-day grace period is over".to_string()
    } else {
        match purge_reason(task, entity, rt.catalog.now()) {
            Some(r) => r,
            None => return Ok(None),
        }
    };
    let vault = rt.vault_account(account).await?;
    let mine = entity.id.to_string();
    let snapshots: Vec<vault::SnapshotId> = vault
        .snapshots()
        .await?
        .into_iter()
        .filter(|s| s.meta.get("entity_id").and_then(Value::as_str) == Some(mine.as_str()))
        .map(|s| s.id)
        .collect();
    vault.forget(&snapshots).await?;
    rt.catalog.delete_entity(account, entity.id).await?;
    let mut entry = NewActivity::new(ActivityKind::Deletion, ActivityStatus::Success);
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
    entry.details = json!({ "snapshots": snapshots.len(), "reason": reason });
    rt.catalog.log_activity(account, entry).await?;
    Ok(Some(PurgedEntity {
        entity_id: entity.id,
        name: entity.name.clone(),
        snapshots: snapshots.len(),
        reason,
    }))
}

/// Purge one task's due entities, or the whole task.
pub async fn purge(
    rt: &Runtime,
    account: AccountId,
    task_id: TaskId,
    only: Option<EntityId>,
    whole_task: bool,
) -> Result<PurgeSummary> {
    let task = rt.catalog.get_task(account, task_id).await?;
    if whole_task
        && task
            .deletion_requested_at
            .is_none_or(|t| t + DELETION_GRACE > rt.catalog.now())
    {
        return Err(WorkerError::Invalid(format!(
            "task {} is not due for purging (its deletion was cancelled or its grace period is not over)",
            task.id
        )));
    }
    let mut summary = PurgeSummary {
        entities: Vec::new(),
        task_removed: false,
    };
    for e in task_entities(rt, account, task.id).await? {
        if only.is_some_and(|id| id != e.id) {
            continue;
        }
        if let Some(p) = purge_entity(rt, account, &task, &e, whole_task).await? {
            summary.entities.push(p);
        }
    }
    if whole_task {
        rt.catalog.purge_task(account, task.id).await?;
        summary.task_removed = true;
    }
    Ok(summary)
}

pub(crate) async fn run_purge_job(rt: &Runtime, claimed: &Claimed) -> JobEnd {
    let job = &claimed.job;
    let id = |k: &str| {
        job.payload
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let task = job.task_id.or_else(|| id("task_id")?.parse().ok());
    let Some(task) = task else {
        return JobEnd::Failed {
            error: "purge job without a task".into(),
            retryable: false,
        };
    };
    let entity = job.entity_id.or_else(|| id("entity_id")?.parse().ok());
    let whole = job.payload.get("whole_task").and_then(Value::as_bool) == Some(true);
    match purge(rt, job.account_id, task, entity, whole).await {
        Ok(s) => JobEnd::Completed(serde_json::to_value(s).unwrap_or(Value::Null)),
        // Snapshots under Object Lock retention cannot go yet: retried later
        // by the next tick, not by hammering the store.
        Err(e) => JobEnd::Failed {
            retryable: e.is_retryable(),
            error: e.to_string(),
        },
    }
}
