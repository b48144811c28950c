//! The worker loop: claim leased jobs, run up to N at once, return the jobs
//! of dead workers to the queue.
//!
//! A worker killed with SIGKILL loses nothing: its jobs' leases run out,
//! any worker's reclaim makes them pending again, and the next attempt
//! starts from the last committed snapshot (vault snapshots are
//! all-or-nothing).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use catalog::{Claimed, JobId, JobKind};
use parking_lot::Mutex;
use tokio::task::JoinSet;

use crate::jobs::{JOB_KINDS, JobEnd, run_backup_job, run_discovery_job};
use crate::progress::{JobProgressSink, JobSignals, keep_alive};
use crate::runtime::Runtime;

/// A job runner.
pub struct Worker {
    id: String,
    rt: Arc<Runtime>,
    running: Arc<Mutex<HashMap<JobId, Arc<JobSignals>>>>,
}

impl Worker {
    /// A worker with a unique id.
    pub fn new(rt: Arc<Runtime>) -> Self {
        let id = format!(
            "worker-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            id,
            rt,
            running: Default::default(),
        }
    }

    /// Its id (the lease owner of its jobs).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Run jobs, at most `concurrency` at once, until `shutdown` completes.
    /// Then running jobs are stopped and handed back to the queue, and this
    /// returns once they are.
    pub async fn run(self, concurrency: usize, shutdown: impl Future<Output = ()>) {
        let concurrency = concurrency.max(1);
        let opts = self.rt.options.clone();
        let mut set = JoinSet::new();
        let mut last_reclaim: Option<Instant> = None;
        tokio::pin!(shutdown);
        loop {
            if last_reclaim.is_none_or(|t| t.elapsed() >= opts.reclaim_interval) {
                last_reclaim = Some(Instant::now());
                match self.rt.catalog.reclaim_expired_leases().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(jobs = n, "returned jobs of stopped workers to the queue")
                    }
                    Err(e) => tracing::warn!(error = %e, "reclaiming expired leases failed"),
                }
            }
            while set.len() < concurrency {
                match self
                    .rt
                    .catalog
                    .claim_job(&self.id, opts.lease, &JOB_KINDS)
                    .await
                {
                    Ok(Some(claimed)) => {
                        let signals = Arc::new(JobSignals::default());
                        self.running.lock().insert(claimed.job.id, signals.clone());
                        let rt = self.rt.clone();
                        let running = self.running.clone();
                        set.spawn(async move {
                            let id = claimed.job.id;
                            execute(rt, claimed, signals).await;
                            running.lock().remove(&id);
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming a job failed");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = set.join_next(), if !set.is_empty() => {}
                _ = tokio::time::sleep(opts.poll_interval) => {}
            }
        }
        for s in self.running.lock().values() {
            s.shutdown();
        }
        while set.join_next().await.is_some() {}
    }
}

/// Run one claimed job with its keep-alive, and record how it ended.
pub async fn execute(rt: Arc<Runtime>, claimed: Claimed, signals: Arc<JobSignals>) {
    let sink = Arc::new(JobProgressSink::default());
    let done = Arc::new(tokio::sync::Notify::new());
    let beat = tokio::spawn(keep_alive(
        rt.clone(),
        claimed.lease.clone(),
        signals.clone(),
        sink.clone(),
        done.clone(),
    ));
    let end = match claimed.job.kind {
        JobKind::Backup => run_backup_job(&rt, &claimed, &signals, &sink).await,
        JobKind::Discovery => run_discovery_job(&rt, &claimed).await,
        JobKind::Purge => crate::purge::run_purge_job(&rt, &claimed).await,
        JobKind::Restore => crate::restore::run_restore_job(&rt, &claimed, &signals, &sink).await,
        JobKind::Export => crate::export::run_export_job(&rt, &claimed, &signals, &sink).await,
        other => JobEnd::Failed {
            error: format!("this worker does not run {other} jobs"),
            retryable: false,
        },
    };
    done.notify_one();
    let _ = beat.await;
    let lease = &claimed.lease;
    let recorded = match &end {
        JobEnd::Completed(result) => rt.catalog.complete_job(lease, result).await.map(|_| ()),
        JobEnd::Cancelled => rt.catalog.finish_cancelled(lease).await.map(|_| ()),
        JobEnd::Failed { error, retryable } => rt
            .catalog
            .fail_job(lease, error, *retryable)
            .await
            .map(|_| ()),
        JobEnd::Released => Ok(()),
    };
    match recorded {
        Ok(()) => {}
        Err(catalog::Error::LeaseLost) => {
            tracing::warn!(job = %lease.job_id, "the job's lease ran out before it finished; another attempt owns it")
        }
        Err(e) => {
            tracing::error!(job = %lease.job_id, error = %e, "recording the end of a job failed")
        }
    }
}
