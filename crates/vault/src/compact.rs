//! Index compaction: merging many small index objects into a few merged
//! ones, so that opening an account reads a handful of objects instead of
//! one per pack.
//!
//! Crash safety: the merged objects are written (and durable) before any
//! object they supersede is deleted, so a kill at any point leaves packs
//! described twice, never not at all; loading deduplicates by pack id and a
//! later compaction removes the leftovers.
//!
//! Concurrency: compaction and gc run one at a time (both take a
//! maintenance lock, see `acquire_maintenance_lock`), because gc rewrites
//! merged objects when it deletes packs, and a compaction running at the
//! same time could otherwise re-describe a pack gc has just deleted. Writers
//! only ever add single index objects, which compaction never deletes unless
//! it has merged them, so writers need no coordination with it. Readers load
//! the index in one gap-free pass (see `load_index_objects`).

use crate::error::{Error, Result};
use crate::index::{IndexListing, MERGED_MAX_BLOBS, PackId};
use crate::repo::Account;
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashSet;

/// What an index compaction did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CompactReport {
    /// Index objects before.
    pub objects_before: usize,
    /// Index objects after.
    pub objects_after: usize,
    /// Merged index objects written.
    pub written: usize,
    /// Superseded index objects deleted.
    pub deleted: usize,
    /// Packs described by the objects written.
    pub packs: usize,
}

/// Superseded index objects deleted concurrently.
const DELETES_AT_ONCE: usize = 16;

/// Default number of single index objects above which a writer compacts
/// the index after its commit.
pub const DEFAULT_COMPACT_AT: usize = 128;

impl Account {
    /// Merge the account's small index objects (one per pack, and merged
    /// objects less than half full) into as few merged objects as possible,
    /// if there are at least `min_objects` (and at least 2) of them. Fails
    /// with [`Error::Busy`] while a gc or another compaction runs.
    pub async fn compact_index(&self, min_objects: usize) -> Result<CompactReport> {
        let lock = self.acquire_maintenance_lock("compact").await?;
        let result = self.compact_locked(min_objects).await;
        lock.release().await?;
        let report = result?;
        self.refresh_index().await?;
        Ok(report)
    }

    /// The compaction itself; the caller holds a maintenance lock.
    pub(crate) async fn compact_locked(&self, min_objects: usize) -> Result<CompactReport> {
        let listing = self.load_index_objects(false).await?;
        self.compact_listing(&listing, min_objects).await
    }

    pub(crate) async fn compact_listing(
        &self,
        listing: &IndexListing,
        min_objects: usize,
    ) -> Result<CompactReport> {
        let mut report = CompactReport {
            objects_before: listing.singles.len() + listing.merged.len(),
            ..Default::default()
        };
        report.objects_after = report.objects_before;
        let blobs_of = |p: &PackId| listing.packs.get(p).map_or(0, |pi| pi.blobs.len());
        let small_merged: Vec<&(String, Vec<PackId>)> = listing
            .merged
            .iter()
            .filter(|(_, ps)| ps.iter().map(blobs_of).sum::<usize>() * 2 < MERGED_MAX_BLOBS)
            .collect();
        let candidates = listing.singles.len() + small_merged.len();
        if candidates < min_objects.max(2) {
            return Ok(report);
        }
        let mut packs: HashSet<PackId> = listing.singles.iter().copied().collect();
        for (_, ps) in &small_merged {
            packs.extend(ps.iter().copied());
        }
        let mut merged: Vec<_> = packs
            .iter()
            .filter_map(|p| listing.packs.get(p).cloned())
            .collect();
        merged.sort_by_key(|pi| pi.pack);
        report.packs = merged.len();
        // 1. The merged objects, durable before anything is deleted.
        let written = self.write_merged(merged).await?;
        report.written = written.len();
        // 2. What they supersede. A kill here leaves duplicates only.
        let mut superseded: Vec<String> = small_merged.iter().map(|(n, _)| n.clone()).collect();
        superseded.extend(listing.singles.iter().map(|p| self.index_name(p)));
        let deleted: Vec<Result<()>> = futures::stream::iter(superseded)
            .map(|name| async move { self.inner.loc.delete(&name).await })
            .buffer_unordered(DELETES_AT_ONCE)
            .collect()
            .await;
        for d in deleted {
            d?;
            report.deleted += 1;
        }
        report.objects_after = report.objects_before + report.written - report.deleted;
        Ok(report)
    }

    /// After a commit: compact if the account has accumulated enough single
    /// index objects. Never fails the caller: the snapshot is already
    /// committed and compaction can happen at any later time.
    pub(crate) async fn maybe_compact(&self) {
        let at = self.inner.compact_at;
        if at == 0 || self.inner.index.read().singles < at {
            return;
        }
        match self.compact_index(at).await {
            Ok(r) => tracing::debug!(?r, "index compacted after commit"),
            Err(Error::Busy(why)) => tracing::debug!(why, "index compaction skipped"),
            Err(e) => tracing::warn!(error = %e, "index compaction after commit failed"),
        }
    }
}
