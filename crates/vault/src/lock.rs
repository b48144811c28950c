//! Leases of writers and gc, stored as sealed objects under `locks/`.
//!
//! A lock records the store's timestamp of its first write (`started`) and
//! is rewritten every `lock_refresh`; the store's last-modified time of the
//! object is the last refresh. All comparisons use the store's clock, so
//! clock skew between machines does not matter; a writer measures its own
//! lease age with a local monotonic clock from *before* each refresh write,
//! which can only overestimate it.

use crate::error::Result;
use crate::format::Kind;
use crate::repo::Account;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Lock kinds of operations that must not run concurrently with each other.
pub(crate) const MAINTENANCE_KINDS: [&str; 2] = ["gc", "compact"];

/// How long a gc waits for a running index compaction.
const COMPACTION_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Serialize, Deserialize)]
pub(crate) struct LockBody {
    pub kind: String,
    pub pid: u32,
    pub started: Option<DateTime<Utc>>,
}

pub(crate) struct LockHandle {
    pub name: String,
    pub started: DateTime<Utc>,
    last_ok: Arc<parking_lot::Mutex<Instant>>,
    /// Held by the refresh task while it writes; `true` once released, so
    /// no refresh can recreate the lock after its deletion.
    stopped: Arc<tokio::sync::Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
    account: Account,
}

/// A lock as seen by gc.
pub(crate) struct LockInfo {
    pub name: String,
    /// "writer", "gc" or "compact" ("" if unreadable).
    pub kind: String,
    pub started: DateTime<Utc>,
    pub refreshed: DateTime<Utc>,
}

impl Account {
    pub(crate) async fn acquire_lock(&self, kind: &str) -> Result<LockHandle> {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let name = self.rel(&format!("locks/{}", hex::encode(id)));
        let body = |started: Option<DateTime<Utc>>| {
            serde_json::to_vec(&LockBody {
                kind: kind.to_string(),
                pid: std::process::id(),
                started,
            })
            .expect("lock serialises")
        };
        let before = Instant::now();
        self.inner
            .loc
            .put(&name, self.seal(Kind::Lock, &name, &body(None)))
            .await?;
        let started = self.inner.loc.head(&name).await?.last_modified;
        let last_ok = Arc::new(parking_lot::Mutex::new(before));
        let stopped = Arc::new(tokio::sync::Mutex::new(false));
        let task = {
            let stopped = stopped.clone();
            let account = self.clone();
            let name = name.clone();
            let last_ok = last_ok.clone();
            let every = self.inner.timing.lock_refresh;
            let bytes = body(Some(started));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let guard = stopped.lock().await;
                    if *guard {
                        break;
                    }
                    let t = Instant::now();
                    let sealed = account.seal(Kind::Lock, &name, &bytes);
                    if account.inner.loc.put(&name, sealed).await.is_ok() {
                        *last_ok.lock() = t;
                    }
                    drop(guard);
                }
            })
        };
        Ok(LockHandle {
            name,
            started,
            last_ok,
            stopped,
            task,
            account: self.clone(),
        })
    }

    /// A lock for gc or index compaction, which run one at a time: both
    /// rewrite or delete index objects. Taken like any lock, then every
    /// other live maintenance lock is looked for; if there is one, ours is
    /// released and [`Error::Busy`](crate::Error::Busy) returned. Two
    /// processes racing both write before they list, so at least one sees
    /// the other (S3, Azure and GCS list consistently after a write). A gc
    /// first waits (up to a minute) for a running compaction, which is
    /// short, instead of failing.
    pub(crate) async fn acquire_maintenance_lock(&self, kind: &str) -> Result<LockHandle> {
        let stale = chrono::Duration::from_std(self.inner.timing.lock_stale)
            .unwrap_or(chrono::Duration::MAX);
        let patience = self.inner.timing.lock_stale.min(COMPACTION_PATIENCE);
        let deadline = Instant::now() + patience;
        loop {
            let lock = self.acquire_lock(kind).await?;
            let other = match self.list_locks().await {
                Ok(locks) => locks.into_iter().find(|l| {
                    l.name != lock.name
                        && MAINTENANCE_KINDS.contains(&l.kind.as_str())
                        && lock.started - l.refreshed <= stale
                }),
                Err(e) => {
                    lock.release().await?;
                    return Err(e);
                }
            };
            let Some(other) = other else {
                return Ok(lock);
            };
            lock.release().await?;
            if kind == "gc" && other.kind == "compact" && Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
            return Err(crate::Error::Busy(format!(
                "a {} started at {} holds {}",
                other.kind, other.started, other.name
            )));
        }
    }

    /// All locks with their start and refresh times (store clock).
    pub(crate) async fn list_locks(&self) -> Result<Vec<LockInfo>> {
        let mut out = Vec::new();
        for (name, meta) in self.inner.loc.list(&self.rel("locks")).await? {
            let (started, kind) = match self.inner.loc.get(&name).await {
                Ok(bytes) => match self
                    .open(Kind::Lock, &name, &bytes)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<LockBody>(&b).ok())
                {
                    // Never refreshed: its last-modified time is its start.
                    Some(LockBody {
                        started: None,
                        kind,
                        ..
                    }) => (Some(meta.last_modified), kind),
                    Some(b) => (b.started, b.kind),
                    // Unreadable: treat as started long ago (safe direction).
                    None => (None, String::new()),
                },
                Err(crate::Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            out.push(LockInfo {
                name,
                kind,
                started: started.unwrap_or(DateTime::<Utc>::MIN_UTC),
                refreshed: meta.last_modified,
            });
        }
        Ok(out)
    }
}

impl LockHandle {
    /// Err if the lease may have expired in the eyes of a gc.
    pub fn check_fresh(&self) -> Result<()> {
        let age = self.last_ok.lock().elapsed();
        if age * 2 > self.account.inner.timing.lock_stale {
            return Err(crate::Error::LockExpired);
        }
        Ok(())
    }

    pub async fn release(self) -> Result<()> {
        *self.stopped.lock().await = true;
        self.task.abort();
        self.account.inner.loc.delete(&self.name).await
    }
}

impl Drop for LockHandle {
    fn drop(&mut self) {
        // Dropped without release (abandoned writer): stop refreshing and
        // delete the lock in the background; if that cannot happen the lock
        // simply goes stale.
        let stopped = self.stopped.clone();
        let loc = self.account.inner.loc.clone();
        let name = self.name.clone();
        let task = self.task.abort_handle();
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                *stopped.lock().await = true;
                task.abort();
                let _ = loc.delete(&name).await;
            });
        } else {
            task.abort();
        }
    }
}
