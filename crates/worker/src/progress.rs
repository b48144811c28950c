//! Job progress and liveness: the engine reports into a [`JobProgressSink`];
//! a keep-alive task writes it to the catalog (at most about once a second),
//! renews the lease, and turns a cancel request into `engine::Cancel`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use catalog::{JobProgress, Lease};
use engine::Cancel;
use engine::progress::Progress;
use parking_lot::Mutex;

use crate::runtime::Runtime;

/// Why a running job was asked to stop.
#[derive(Debug, Default)]
pub struct JobSignals {
    /// Stops the engine.
    pub cancel: Cancel,
    user_cancel: AtomicBool,
    lease_lost: AtomicBool,
    shutdown: AtomicBool,
}

/// Why a job stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A person asked (the job is recorded Cancelled).
    UserCancel,
    /// Another worker owns the job now (our lease ran out).
    LeaseLost,
    /// This worker is shutting down (the job goes back to the queue).
    Shutdown,
}

impl JobSignals {
    /// Stop because this worker shuts down.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }
    pub(crate) fn user_cancelled(&self) {
        self.user_cancel.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }
    pub(crate) fn lease_lost(&self) {
        self.lease_lost.store(true, Ordering::SeqCst);
        self.cancel.cancel();
    }
    /// Why the job was stopped, if it was.
    pub fn stop_reason(&self) -> Option<StopReason> {
        if self.lease_lost.load(Ordering::SeqCst) {
            Some(StopReason::LeaseLost)
        } else if self.user_cancel.load(Ordering::SeqCst) {
            Some(StopReason::UserCancel)
        } else if self.shutdown.load(Ordering::SeqCst) {
            Some(StopReason::Shutdown)
        } else {
            None
        }
    }
}

/// Collects the engine's progress for the keep-alive task.
#[derive(Debug, Default)]
pub struct JobProgressSink {
    done_items: AtomicU64,
    done_bytes: AtomicU64,
    total_items: AtomicU64,
    total_bytes: AtomicU64,
    stage: Mutex<String>,
    version: AtomicU64,
}

impl JobProgressSink {
    /// The progress as the catalog stores it.
    pub fn snapshot(&self) -> JobProgress {
        let total_items = self.total_items.load(Ordering::Relaxed);
        let total_bytes = self.total_bytes.load(Ordering::Relaxed);
        let stage = self.stage.lock().clone();
        JobProgress {
            done_items: self.done_items.load(Ordering::Relaxed),
            total_items: (total_items > 0).then_some(total_items),
            done_bytes: self.done_bytes.load(Ordering::Relaxed),
            total_bytes: (total_bytes > 0).then_some(total_bytes),
            message: (!stage.is_empty()).then_some(stage),
        }
    }
    fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
    fn touch(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
    }
}

impl Progress for JobProgressSink {
    fn set_stage(&self, stage: &str) {
        *self.stage.lock() = stage.to_string();
        self.touch();
    }
    fn set_total(&self, items: u64, bytes: u64) {
        self.total_items.store(items, Ordering::Relaxed);
        self.total_bytes.store(bytes, Ordering::Relaxed);
        self.touch();
    }
    fn advance(&self, items: u64, bytes: u64) {
        self.done_items.fetch_add(items, Ordering::Relaxed);
        self.done_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.touch();
    }
}

/// Renew the lease every `heartbeat`, write changed progress at most every
/// `progress_interval`, and flip the signals on a cancel request or a lost
/// lease, until `done` is notified.
pub(crate) async fn keep_alive(
    rt: Arc<Runtime>,
    lease: Lease,
    signals: Arc<JobSignals>,
    sink: Arc<JobProgressSink>,
    done: Arc<tokio::sync::Notify>,
) {
    let opts = &rt.options;
    let tick = opts.progress_interval.min(opts.heartbeat);
    let mut last_beat = Instant::now();
    let mut written = 0u64;
    loop {
        tokio::select! {
            _ = done.notified() => {
                // The job's last progress (items done of total) stays on
                // the finished job, for the jobs page and the CLI summary.
                if sink.version() != written
                    && let Err(e) = rt.catalog.update_progress(&lease, &sink.snapshot()).await
                {
                    tracing::debug!(job = %lease.job_id, error = %e, "final progress not written");
                }
                return;
            }
            _ = tokio::time::sleep(tick) => {}
        }
        if last_beat.elapsed() >= opts.heartbeat {
            last_beat = Instant::now();
            match rt.catalog.heartbeat(&lease, opts.lease).await {
                Ok(true) => signals.user_cancelled(),
                Ok(false) => {}
                Err(catalog::Error::LeaseLost) => {
                    signals.lease_lost();
                    return;
                }
                Err(e) => tracing::warn!(job = %lease.job_id, error = %e, "heartbeat failed"),
            }
        }
        let v = sink.version();
        if v != written {
            written = v;
            match rt.catalog.update_progress(&lease, &sink.snapshot()).await {
                Ok(true) => signals.user_cancelled(),
                Ok(false) => {}
                Err(catalog::Error::LeaseLost) => {
                    signals.lease_lost();
                    return;
                }
                Err(e) => tracing::warn!(job = %lease.job_id, error = %e, "progress update failed"),
            }
        }
    }
}
