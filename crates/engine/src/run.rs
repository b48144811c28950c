//! What every workload's backup shares: the ledger of a snapshot's parts
//! (delta state carried from the parent, per-sub-service outcome and item
//! totals, the commit with its metadata), and the Graph calls all of them
//! make the same way (delta rounds that fall back to a full enumeration when
//! the token expired, paged listings), counted as requests.
//!
//! A snapshot's metadata always holds `kind`, `delta` (the delta state, keyed
//! by sub-service name) and `parts` (`[{subService, outcome, items}]`), plus
//! whatever the caller adds (task, entity, job ids).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use graph::{DeltaChange, GraphClient, GraphError, Request};
use serde_json::{Map, Value, json};
use vault::{Node, SnapshotInfo, SnapshotWriter};

use crate::error::{EngineError, Result};
use crate::faults::{FaultBus, Outcome};
use crate::progress::Progress;
use crate::report::{BackupReport, ItemCounts, SubService, SubServiceReport};

/// The parts of one snapshot being written: what the parent left (delta
/// state, item totals) and what each sub-service did this time.
pub struct Ledger {
    state: Map<String, Value>,
    parent_totals: HashMap<String, u64>,
    parts: Vec<SubServiceReport>,
}

impl Ledger {
    /// A ledger continuing from `parent` (the parent snapshot's metadata).
    pub fn new(parent: Option<&SnapshotInfo>) -> Self {
        let state = match parent.and_then(|p| p.meta.get("delta")) {
            Some(Value::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        let parent_totals = parent
            .and_then(|p| p.meta.get("parts"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        Some((
                            p.get("subService")?.as_str()?.to_string(),
                            p.get("items")?.as_u64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            state,
            parent_totals,
            parts: Vec::new(),
        }
    }

    /// The delta state the parent left for `sub` (Null when none).
    pub fn prev_state(&self, sub: SubService) -> Value {
        self.state.get(sub.as_str()).cloned().unwrap_or(Value::Null)
    }

    /// Whether no part has been recorded yet.
    pub fn is_first(&self) -> bool {
        self.parts.is_empty()
    }

    /// The parts recorded so far.
    pub fn parts(&self) -> &[SubServiceReport] {
        &self.parts
    }

    /// Records what one sub-service did. Its new delta state replaces the
    /// parent's; an error fails the part (what it saved stays: the outcome
    /// is then Partial or Failed). Cancellation is handed back so the caller
    /// stops at once.
    pub fn record(
        &mut self,
        sub: SubService,
        result: Result<Value>,
        mut bus: FaultBus,
        mut counts: ItemCounts,
    ) -> Result<()> {
        let mut error = None;
        match result {
            Ok(new_state) => {
                self.state.insert(sub.as_str().into(), new_state);
            }
            Err(EngineError::Cancelled) => {
                self.parts.push(SubServiceReport {
                    sub_service: sub,
                    outcome: Outcome::Cancelled,
                    counts,
                    failures: Vec::new(),
                    notes: Vec::new(),
                    error: None,
                });
                return Err(EngineError::Cancelled);
            }
            Err(e) => {
                error = Some(e.to_string());
                bus.fail(e.to_string());
            }
        }
        counts.failed = bus.item_failures.len() as u64;
        counts.total = (self.parent_totals.get(sub.as_str()).copied().unwrap_or(0) + counts.new)
            .saturating_sub(counts.deleted);
        let done = counts.new + counts.changed + counts.deleted;
        self.parts.push(SubServiceReport {
            sub_service: sub,
            outcome: bus.outcome(done.max(u64::from(error.is_none()))),
            counts,
            failures: bus.item_failures,
            notes: bus.recovered,
            error,
        });
        Ok(())
    }

    /// The report of a cancelled backup: nothing was committed.
    pub fn cancelled(mut self, requests: u64) -> BackupReport {
        for p in &mut self.parts {
            p.outcome = Outcome::Cancelled;
        }
        BackupReport {
            snapshot_id: None,
            parts: self.parts,
            delta_state: Value::Null,
            bytes_stored: 0,
            requests,
        }
    }

    /// Commits the snapshot. `kind` names the workload
    /// ("exchange-mailbox", "onedrive", ...); `engine_meta` holds the
    /// workload's own fields and `caller_meta` the caller's (task, entity
    /// ids), which never override the engine's.
    pub async fn commit(
        self,
        writer: SnapshotWriter,
        kind: &str,
        engine_meta: Value,
        caller_meta: &Value,
        requests: u64,
        progress: &dyn Progress,
    ) -> Result<BackupReport> {
        let delta_state = Value::Object(self.state);
        let mut meta = json!({
            "kind": kind,
            "delta": delta_state,
            "parts": self.parts.iter().map(|p| json!({
                "subService": p.sub_service.as_str(),
                "outcome": p.outcome,
                "items": p.counts.total,
            })).collect::<Vec<_>>(),
        });
        if let Value::Object(m) = &mut meta {
            for extra in [&engine_meta, caller_meta] {
                if let Value::Object(extra) = extra {
                    for (k, v) in extra {
                        m.entry(k.clone()).or_insert(v.clone());
                    }
                }
            }
        }
        let stored = writer.stats().stored_bytes;
        let id = writer.commit(meta).await?;
        progress.finish();
        Ok(BackupReport {
            snapshot_id: Some(id),
            parts: self.parts,
            delta_state,
            bytes_stored: stored,
            requests,
        })
    }
}

/// Opens a snapshot that starts as a copy of the parent (by reference: no
/// data is read or written), with the parent's info.
pub async fn begin(
    vault: &vault::Account,
    parent: Option<&vault::SnapshotId>,
) -> Result<(SnapshotWriter, Option<SnapshotInfo>)> {
    let parent_info = match parent {
        Some(id) => Some(vault.snapshot(id).await?),
        None => None,
    };
    let writer = vault.begin_snapshot(parent).await?;
    if parent_info.is_some() {
        writer.keep_from_parent("").await?;
    }
    Ok((writer, parent_info))
}

/// Removes Graph's `@odata.*` annotations (context, etag, links), which
/// change between calls without the item changing.
pub fn strip_annotations(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|k, _| !k.starts_with("@odata."));
    }
}

/// The `id` of a Graph object, when it has a non-empty one.
pub fn id_of(v: &Value) -> Option<&str> {
    v.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A Graph id as a vault path segment (they never contain '/', but a
/// hostile or broken answer must not be able to escape its folder).
pub fn seg(id: &str) -> Result<&str> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(EngineError::Invalid(format!(
            "Microsoft Graph returned an unusable id {id:?}"
        )));
    }
    Ok(id)
}

/// The JSON metadata of a vault node, when it is JSON.
pub fn meta_json(node: &Node) -> Option<Value> {
    serde_json::from_slice(node.meta()).ok()
}

/// Counts the Graph requests of one backup.
#[derive(Debug, Default)]
pub struct Requests(AtomicU64);

impl Requests {
    /// Adds `n` requests.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Requests so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One delta round's outcome.
pub struct Round {
    /// What changed (everything, on a first or resynced round).
    pub changes: Vec<DeltaChange>,
    /// The link the next round starts from.
    pub link: String,
    /// The previous link had expired: this round enumerated everything,
    /// so whatever it does not list is gone.
    pub resynced: bool,
}

/// A whole delta round from `prev`, or from `fresh` when there is no
/// previous link or it has expired (410), in which case the round is a full
/// enumeration and says so. `make` builds the request for a URL (headers,
/// page size).
pub async fn delta_round(
    graph: &GraphClient,
    requests: &Requests,
    make: impl Fn(&str) -> Request,
    fresh: &str,
    prev: Option<&str>,
) -> Result<Round> {
    if let Some(link) = prev {
        match graph.delta_round(make(link)).await {
            Ok(r) => {
                requests.add(r.pages as u64);
                return Ok(Round {
                    changes: r.changes,
                    link: r.delta_link,
                    resynced: false,
                });
            }
            Err(GraphError::DeltaExpired { .. }) => {
                requests.add(1);
                tracing::info!(fresh, "delta token expired; enumerating again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let r = graph.delta_round(make(fresh)).await?;
    requests.add(r.pages as u64);
    Ok(Round {
        changes: r.changes,
        link: r.delta_link,
        resynced: prev.is_some(),
    })
}

/// Every item of a paged collection, counting the pages as requests. The
/// first request's headers are sent with every page.
pub async fn get_all(
    graph: &GraphClient,
    requests: &Requests,
    first: Request,
) -> Result<Vec<Value>> {
    let headers = first.headers.clone();
    let mut out = Vec::new();
    let mut req = Some(first);
    while let Some(r) = req.take() {
        requests.add(1);
        let page = graph.page(r).await?;
        out.extend(page.items);
        req = page.next_link.map(|n| Request {
            headers: headers.clone(),
            ..Request::get(n)
        });
    }
    Ok(out)
}

/// The entries of a folder of the parent snapshot (empty without a parent
/// or without that folder).
pub async fn parent_entries(
    vault: &vault::Account,
    parent: Option<&SnapshotInfo>,
    path: &str,
) -> Result<Vec<vault::Entry>> {
    let Some(parent) = parent else {
        return Ok(Vec::new());
    };
    match vault.list_folder(parent, path).await {
        Ok(e) => Ok(e),
        Err(vault::Error::NoSuchEntry(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// What every sub-service backup gets: the tenant, the vault, the snapshot
/// being written and its parent, where progress goes, the cancel flag and
/// the request counter. Workload functions take `&PartCtx` plus their own
/// arguments, a [`FaultBus`] and [`ItemCounts`], and return their new delta
/// state, so that they compose: a team's backup calls the drive backup for
/// its site's libraries.
pub struct PartCtx<'a> {
    /// The tenant's Graph client.
    pub graph: &'a GraphClient,
    /// The account's vault.
    pub vault: &'a vault::Account,
    /// The snapshot being written (it starts as a copy of the parent).
    pub writer: &'a SnapshotWriter,
    /// The parent snapshot, if any.
    pub parent: Option<&'a SnapshotInfo>,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
    /// Checked between items.
    pub cancel: &'a crate::Cancel,
    /// Graph requests made so far.
    pub requests: &'a Requests,
}

impl PartCtx<'_> {
    /// Stops with [`EngineError::Cancelled`] once cancel was asked.
    pub fn check_cancel(&self) -> Result<()> {
        self.cancel.check()
    }

    /// The entries of a folder of the parent snapshot.
    pub async fn parent_entries(&self, path: &str) -> Result<Vec<vault::Entry>> {
        parent_entries(self.vault, self.parent, path).await
    }

    /// Every item of a paged collection.
    pub async fn get_all(&self, first: Request) -> Result<Vec<Value>> {
        get_all(self.graph, self.requests, first).await
    }

    /// A delta round (see [`delta_round`]).
    pub async fn delta_round(
        &self,
        make: impl Fn(&str) -> Request,
        fresh: &str,
        prev: Option<&str>,
    ) -> Result<Round> {
        delta_round(self.graph, self.requests, make, fresh, prev).await
    }
}
