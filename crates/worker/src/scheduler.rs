//! The scheduler: per active task, enqueue backups of its active entities
//! at each slot of its frequency and hour (UTC), and a discovery once a day.
//!
//! The last slot is kept in the catalog and claimed atomically, so a
//! restarted scheduler neither skips nor repeats a slot, and several
//! schedulers (one per worker process) enqueue each slot once. Backup jobs
//! are deduplicated per entity, so an entity still being backed up from the
//! previous slot is not queued twice.

use std::sync::Arc;
use std::time::Duration;

use catalog::{EntityStatus, JobKind, NewJob, Task, TaskStatus};
use chrono::{DateTime, Utc};
use engine::schedule::{Frequency, is_due};
use serde_json::json;

use crate::error::Result;
use crate::jobs::task_entities;
use crate::runtime::Runtime;

/// Slot kind of scheduled backups.
pub const BACKUP_SLOT: &str = "backup";
/// Slot kind of the daily discovery.
pub const DISCOVERY_SLOT: &str = "discovery";

/// What one tick enqueued.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    /// Backup jobs created (duplicates of running ones not counted).
    pub backups: usize,
    /// Discovery jobs created.
    pub discoveries: usize,
    /// Purge jobs created (backups past retention or grace).
    pub purges: usize,
    /// Expired export downloads deleted.
    pub expired_exports: usize,
}

/// How often expired export downloads are looked for: listing them costs
/// a store request per account, and an hour late is within "72 hours".
const EXPORT_SWEEP_EVERY: chrono::Duration = chrono::Duration::hours(1);

/// The scheduler.
pub struct Scheduler {
    rt: Arc<Runtime>,
    /// When expired export downloads were last swept.
    last_export_sweep: parking_lot::Mutex<Option<DateTime<Utc>>>,
}

fn frequency(f: catalog::Frequency) -> Frequency {
    match f {
        catalog::Frequency::Daily => Frequency::Daily,
        catalog::Frequency::Every3Days => Frequency::Every3Days,
        catalog::Frequency::Weekly => Frequency::Weekly,
        catalog::Frequency::ThreeTimesADay => Frequency::ThreeTimesADay,
    }
}

impl Scheduler {
    /// A scheduler on the runtime's catalog.
    pub fn new(rt: Arc<Runtime>) -> Self {
        Self {
            rt,
            last_export_sweep: parking_lot::Mutex::new(None),
        }
    }

    /// Enqueue what is due at `now`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport> {
        let mut report = TickReport::default();
        let sweep_due = {
            let mut last = self.last_export_sweep.lock();
            let due = last.is_none_or(|t| now - t >= EXPORT_SWEEP_EVERY);
            if due {
                *last = Some(now);
            }
            due
        };
        if sweep_due {
            match crate::export::sweep_expired_downloads(&self.rt, now).await {
                Ok(n) => report.expired_exports = n,
                Err(e) => tracing::warn!(error = %e, "sweeping expired exports failed"),
            }
        }
        for account in self.rt.catalog.list_accounts().await? {
            for task in self.rt.catalog.list_tasks(account.id, None).await? {
                match crate::purge::enqueue_purges(&self.rt, &task, now).await {
                    Ok(n) => report.purges += n,
                    Err(e) => {
                        tracing::warn!(task = %task.id, error = %e, "purge scheduling failed")
                    }
                }
                if task.status != TaskStatus::Active || task.deletion_requested_at.is_some() {
                    continue;
                }
                if let Err(e) = self.tick_task(&task, now, &mut report).await {
                    tracing::warn!(task = %task.id, error = %e, "scheduling failed");
                }
            }
        }
        Ok(report)
    }

    async fn tick_task(
        &self,
        task: &Task,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<()> {
        let catalog = &self.rt.catalog;
        let account = task.account_id;
        let hour = u32::from(task.settings.backup_hour_utc);
        let last = catalog
            .last_schedule_slot(account, task.id, DISCOVERY_SLOT)
            .await?;
        if let Some(slot) = is_due(Frequency::Daily, hour, last, now)
            && catalog
                .claim_schedule_slot(account, task.id, DISCOVERY_SLOT, slot)
                .await?
        {
            let mut job = NewJob::new(JobKind::Discovery, json!({ "task_id": task.id }));
            job.task_id = Some(task.id);
            job.service = Some(task.service);
            job.dedupe_key = Some(format!("discovery:{}", task.id));
            job.initiator = Some("schedule".into());
            job.title = Some(format!("Discovery of {}", task.name));
            // Before the backups of the same slot.
            job.priority = 1;
            if let catalog::Enqueued::Created(_) = catalog.enqueue_job(account, job).await? {
                report.discoveries += 1;
            }
        }
        let freq = frequency(task.settings.frequency);
        let last = catalog
            .last_schedule_slot(account, task.id, BACKUP_SLOT)
            .await?;
        if let Some(slot) = is_due(freq, hour, last, now)
            && catalog
                .claim_schedule_slot(account, task.id, BACKUP_SLOT, slot)
                .await?
        {
            report.backups += enqueue_backups(&self.rt, task, None, "schedule", Some(slot))
                .await?
                .created;
        }
        Ok(())
    }

    /// Tick every `every` until `shutdown` completes.
    pub async fn run(self, every: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.tick(self.rt.catalog.now()).await {
                Ok(r) if r != TickReport::default() => {
                    tracing::info!(
                        backups = r.backups,
                        discoveries = r.discoveries,
                        purges = r.purges,
                        "scheduled"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler tick failed"),
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

/// Backup jobs enqueued for a task.
#[derive(Debug, Default, Clone)]
pub struct EnqueuedBackups {
    /// New jobs.
    pub created: usize,
    /// Every job (new, or the running/pending one of the same entity).
    pub jobs: Vec<catalog::Job>,
}

/// Whether an entity is backed up by schedules and "back up all".
pub fn is_protected(e: &catalog::Entity) -> bool {
    e.active
        && !matches!(
            e.status,
            EntityStatus::Paused
                | EntityStatus::Archived
                | EntityStatus::NotActive
                | EntityStatus::BackedUpInAnotherTask
        )
        && e.deletion_requested_at.is_none()
}

/// Enqueue backups of the task's protected entities, or of `only` those
/// (which must belong to the task). One job per entity at a time.
pub async fn enqueue_backups(
    rt: &Runtime,
    task: &Task,
    only: Option<&[catalog::EntityId]>,
    initiator: &str,
    slot: Option<DateTime<Utc>>,
) -> Result<EnqueuedBackups> {
    let mut out = EnqueuedBackups::default();
    for e in task_entities(rt, task.account_id, task.id).await? {
        let wanted = match only {
            Some(ids) => ids.contains(&e.id),
            None => is_protected(&e),
        };
        if !wanted {
            continue;
        }
        let mut job = NewJob::backup(
            task.id,
            e.id,
            task.service,
            json!({ "entity_id": e.id, "slot": slot }),
        );
        job.initiator = Some(initiator.to_string());
        job.title = Some(format!(
            "Backup of {}",
            e.email_or_url.as_deref().unwrap_or(&e.name)
        ));
        match rt.catalog.enqueue_job(task.account_id, job).await? {
            catalog::Enqueued::Created(j) => {
                out.created += 1;
                out.jobs.push(j);
            }
            catalog::Enqueued::Duplicate(j) => out.jobs.push(j),
        }
    }
    Ok(out)
}
