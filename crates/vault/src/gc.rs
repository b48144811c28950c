//! Retention policies and two-phase garbage collection.

use crate::crypto::ChunkId;
use crate::error::{Error, Result};
use crate::format::Kind;
use crate::index::{PackId, PackIndex};
use crate::repo::Account;
use crate::snapshot::{SnapshotId, SnapshotInfo};
use crate::tree::{Content, Node};
use chrono::{DateTime, Datelike, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Which snapshots to keep. A snapshot is kept if any rule keeps it; an
/// empty policy keeps everything (unlimited retention).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Keep the newest N.
    pub keep_last: Option<usize>,
    /// Keep the newest snapshot of each of the last N days.
    pub keep_daily: Option<usize>,
    /// ... of each of the last N ISO weeks.
    pub keep_weekly: Option<usize>,
    /// ... of each of the last N months.
    pub keep_monthly: Option<usize>,
    /// Keep everything younger than N days.
    pub keep_within_days: Option<u32>,
}

impl RetentionPolicy {
    /// Whether the policy keeps everything.
    pub fn is_unlimited(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
            && self.keep_within_days.is_none()
    }

    /// Ids of the snapshots to forget, given all snapshots and the time now.
    pub fn to_forget(&self, snaps: &[SnapshotInfo], now: DateTime<Utc>) -> Vec<SnapshotId> {
        if self.is_unlimited() {
            return Vec::new();
        }
        let mut newest_first: Vec<&SnapshotInfo> = snaps.iter().collect();
        newest_first.sort_by_key(|s| std::cmp::Reverse(s.time));
        let mut keep: HashSet<&SnapshotId> = HashSet::new();
        if let Some(n) = self.keep_last {
            keep.extend(newest_first.iter().take(n).map(|s| &s.id));
        }
        let mut bucket = |n: Option<usize>, key: &dyn Fn(&DateTime<Utc>) -> (i32, u32)| {
            if let Some(n) = n {
                let mut seen = Vec::new();
                for s in &newest_first {
                    let k = key(&s.time);
                    if !seen.contains(&k) {
                        if seen.len() == n {
                            break;
                        }
                        seen.push(k);
                        keep.insert(&s.id);
                    }
                }
            }
        };
        bucket(self.keep_daily, &|t| (t.year(), t.ordinal()));
        bucket(self.keep_weekly, &|t| {
            let w = t.iso_week();
            (w.year(), w.week())
        });
        bucket(self.keep_monthly, &|t| (t.year(), t.month()));
        if let Some(d) = self.keep_within_days {
            let cutoff = now - chrono::Duration::days(d as i64);
            keep.extend(
                newest_first
                    .iter()
                    .filter(|s| s.time >= cutoff)
                    .map(|s| &s.id),
            );
        }
        newest_first
            .iter()
            .filter(|s| !keep.contains(&s.id))
            .map(|s| s.id.clone())
            .collect()
    }
}

/// What a gc run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    /// Packs newly condemned (deleted by a later run after the grace period).
    pub condemned: usize,
    /// Packs deleted.
    pub deleted_packs: usize,
    /// Bytes deleted.
    pub deleted_bytes: u64,
    /// Condemned packs that turned out to be referenced again and were kept.
    pub rescued: usize,
    /// Condemnation lists whose sweep waits (grace period or older writers).
    pub waiting: usize,
    /// Partly used packs kept as they are (more than half still used).
    pub partly_used: usize,
    /// Mostly unused packs whose live chunks were copied to new packs (the
    /// old packs are condemned).
    pub repacked: usize,
    /// Bytes of live chunks copied by repacking.
    pub repacked_bytes: u64,
    /// Packs left alone because they are under Object Lock retention.
    pub locked: usize,
    /// Objects whose Object Lock retention was extended to N days from now
    /// (packs still used, their index objects, key files, config).
    pub retention_extended: usize,
    /// The index compaction gc ran at its end.
    pub index: crate::compact::CompactReport,
}

/// Small index objects that make gc compact the index.
const GC_COMPACT_AT: usize = 16;

#[derive(Serialize, Deserialize)]
struct Condemned {
    packs: Vec<PackId>,
}

impl Account {
    /// Packs named in condemnation lists (writers must not dedup against them).
    pub(crate) async fn condemned_packs(&self) -> Result<HashSet<PackId>> {
        let mut out = HashSet::new();
        for (name, _) in self.inner.loc.list(&self.rel("gc")).await? {
            match self.inner.loc.get(&name).await {
                Ok(bytes) => {
                    let body = self.open(Kind::Condemned, &name, &bytes)?;
                    let c: Condemned =
                        postcard::from_bytes(&body).map_err(|e| Error::damaged(&name, e))?;
                    out.extend(c.packs);
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every chunk reachable from any snapshot (tree chunks included).
    pub(crate) async fn reachable(&self) -> Result<HashSet<u128>> {
        let mut seen_trees: HashSet<Content> = HashSet::new();
        let mut out = HashSet::new();
        for s in self.snapshots().await? {
            let mut stack = vec![s.root.clone()];
            while let Some(c) = stack.pop() {
                if !seen_trees.insert(c.clone()) {
                    continue;
                }
                out.extend(c.chunks.iter().map(ChunkId::short));
                let t = self.load_tree(&c).await?;
                for e in &t.entries {
                    match &e.node {
                        Node::Item { content, .. } => {
                            out.extend(content.chunks.iter().map(ChunkId::short))
                        }
                        Node::Folder { tree, .. } => stack.push(tree.clone()),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Apply a retention policy: forget the snapshots it does not keep.
    pub async fn apply_retention(&self, policy: &RetentionPolicy) -> Result<Vec<SnapshotId>> {
        let snaps = self.snapshots().await?;
        let now = Utc::now();
        let mut gone = policy.to_forget(&snaps, now);
        if let Some(days) = self.inner.config.object_lock_days {
            // Snapshots under retention stay, whatever the policy says.
            let locked: HashSet<&SnapshotId> = snaps
                .iter()
                .filter(|s| s.time + chrono::Duration::days(days as i64) > now)
                .map(|s| &s.id)
                .collect();
            gone.retain(|id| !locked.contains(id));
        }
        self.forget(&gone).await?;
        Ok(gone)
    }

    /// One gc run. Phase 2 first: delete packs of condemnation lists that
    /// are older than the grace period and older than every live writer,
    /// unless a snapshot references them again. Then phase 1: condemn
    /// packs nothing references. See the crate docs for why this is safe
    /// with concurrent writers.
    pub async fn gc(&self) -> Result<GcReport> {
        let mut report = GcReport::default();
        let lock = self.acquire_maintenance_lock("gc").await?;
        let result = self.gc_locked(&lock, &mut report).await;
        lock.release().await?;
        result.map(|_| report)
    }

    async fn gc_locked(&self, lock: &crate::lock::LockHandle, report: &mut GcReport) -> Result<()> {
        let timing = self.inner.timing.clone();
        let now = lock.started;
        let stale = chrono::Duration::from_std(timing.lock_stale).expect("duration");
        let grace = chrono::Duration::from_std(timing.gc_grace).expect("duration");
        let margin = chrono::Duration::from_std(timing.clock_margin).expect("duration");
        let live_writers: Vec<DateTime<Utc>> = self
            .list_locks()
            .await?
            .into_iter()
            .filter(|l| l.name != lock.name && now - l.refreshed <= stale)
            .map(|l| l.started)
            .collect();
        let lists = self.inner.loc.list(&self.rel("gc")).await?;
        let mut sweep: Vec<(String, Vec<PackId>)> = Vec::new();
        let mut condemned_anywhere: HashSet<PackId> = HashSet::new();
        for (name, meta) in &lists {
            let body = self.open(Kind::Condemned, name, &self.inner.loc.get(name).await?)?;
            let c: Condemned = postcard::from_bytes(&body).map_err(|e| Error::damaged(name, e))?;
            let t1 = meta.last_modified;
            let old_enough = now - t1 >= grace;
            let blocked = live_writers.iter().any(|s| *s <= t1 + margin);
            if old_enough && !blocked {
                sweep.push((name.clone(), c.packs));
            } else {
                report.waiting += 1;
                condemned_anywhere.extend(c.packs);
            }
        }
        // Index first, then the packs: a pack uploaded in between shows up
        // as unindexed (condemned, and rescued at the sweep if it is then
        // indexed and used), never the reverse.
        let listing = self.load_index_objects(false).await?;
        self.refresh_index().await?;
        let reachable = self.reachable().await?;
        // Pack contents come from the index objects themselves (the in-memory
        // map keeps one location per chunk, so a duplicate chunk would hide).
        let contents: &HashMap<PackId, PackIndex> = &listing.packs;
        let packs_listed = self.inner.loc.list(&self.rel("data")).await?;
        let mut sizes: HashMap<PackId, u64> = HashMap::new();
        let mut written_at: HashMap<PackId, DateTime<Utc>> = HashMap::new();
        for (name, meta) in &packs_listed {
            if let Some(p) = name.rsplit('/').next().and_then(PackId::from_hex) {
                sizes.insert(p, meta.size);
                written_at.insert(p, meta.last_modified);
            }
        }
        // Object Lock: a pack younger than the bucket's default retention
        // cannot be deleted (S3 would only hide it behind a delete marker),
        // so gc neither condemns nor repacks it, and a sweep skips it.
        let locked = |p: &PackId| -> bool {
            match (self.inner.config.object_lock_days, written_at.get(p)) {
                (Some(days), Some(t)) => *t + chrono::Duration::days(days as i64) + margin > now,
                _ => false,
            }
        };
        // Which packs hold each chunk, and the bytes of each pack still used.
        let mut holders: HashMap<u128, Vec<PackId>> = HashMap::new();
        for (p, pi) in contents.iter() {
            for b in &pi.blobs {
                holders.entry(b.id.short()).or_default().push(*p);
            }
        }
        let used_bytes = |p: &PackId| -> (u64, u64) {
            match contents.get(p) {
                Some(pi) => (
                    pi.blobs
                        .iter()
                        .filter(|b| reachable.contains(&b.id.short()))
                        .map(|b| b.len as u64)
                        .sum(),
                    pi.blobs.iter().map(|b| b.len as u64).sum(),
                ),
                None => (0, 0),
            }
        };
        // Phase 2: sweep. A condemned pack goes only if each of its reachable
        // chunks (a snapshot may have appeared since) is held by a pack that
        // is not being swept (e.g. the copy made by repacking).
        let doomed: HashSet<PackId> = sweep
            .iter()
            .flat_map(|(_, ps)| ps.iter().copied())
            .collect();
        let mut delete: Vec<PackId> = Vec::new();
        let mut delete_set: HashSet<PackId> = HashSet::new();
        for (_, packs) in &sweep {
            for p in packs {
                let needed = contents.get(p).is_some_and(|pi| {
                    pi.blobs.iter().any(|b| {
                        reachable.contains(&b.id.short())
                            && !holders
                                .get(&b.id.short())
                                .is_some_and(|hs| hs.iter().any(|h| !doomed.contains(h)))
                    })
                });
                if needed {
                    report.rescued += 1;
                } else if locked(p) {
                    report.locked += 1;
                } else if delete_set.insert(*p) {
                    delete.push(*p);
                }
            }
        }
        // Index objects first, then packs, then the lists: merged index
        // objects that describe a doomed pack are rewritten without it
        // (the new object written before the old one is deleted).
        for (name, ps) in &listing.merged {
            if !ps.iter().any(|p| delete_set.contains(p)) {
                continue;
            }
            let keep: Vec<PackIndex> = ps
                .iter()
                .filter(|p| !delete_set.contains(p))
                .filter_map(|p| contents.get(p).cloned())
                .collect();
            if !keep.is_empty() {
                self.write_merged(keep).await?;
            }
            self.inner.loc.delete(name).await?;
        }
        for p in &delete {
            self.inner.loc.delete(&self.index_name(p)).await?;
        }
        for p in &delete {
            self.inner.loc.delete(&self.pack_name(p)).await?;
            report.deleted_packs += 1;
            report.deleted_bytes += sizes.get(p).copied().unwrap_or(0);
            sizes.remove(p);
        }
        for (name, _) in &sweep {
            self.inner.loc.delete(name).await?;
        }
        // Phase 1: condemn unreferenced packs (indexed or orphaned), and
        // repack packs that are less than half used.
        let mut condemn = Vec::new();
        let mut repack = Vec::new();
        for p in sizes.keys() {
            if condemned_anywhere.contains(p) || doomed.contains(p) {
                continue;
            }
            if locked(p) {
                report.locked += 1;
                continue;
            }
            let (u, total) = used_bytes(p);
            if u == 0 {
                condemn.push(*p);
            } else if u * 2 < total {
                repack.push(*p);
            } else if u < total {
                report.partly_used += 1;
            }
        }
        if !repack.is_empty() {
            let moved = self.repack(&repack, contents, &reachable, report).await?;
            condemn.extend(moved);
        }
        if !condemn.is_empty() {
            condemn.sort();
            report.condemned = condemn.len();
            let mut id = [0u8; 16];
            rand::rng().fill_bytes(&mut id);
            let name = self.rel(&format!("gc/{}", hex::encode(id)));
            let body = postcard::to_allocvec(&Condemned { packs: condemn }).expect("serialises");
            self.inner
                .loc
                .put(&name, self.seal(Kind::Condemned, &name, &body))
                .await?;
        }
        // Object Lock: keep everything the remaining snapshots need locked
        // for the full retention from now, not just from its upload.
        if let Some(days) = self.inner.config.object_lock_days
            && self.inner.loc.can_extend_retention()
        {
            let mut objects: Vec<String> = vec!["config".to_string()];
            for (name, _) in self.inner.loc.list(&self.rel("keys")).await? {
                objects.push(name);
            }
            let live: HashSet<PackId> = contents
                .iter()
                .filter(|(p, pi)| {
                    !delete_set.contains(p)
                        && pi.blobs.iter().any(|b| reachable.contains(&b.id.short()))
                })
                .map(|(p, _)| *p)
                .collect();
            for p in &live {
                objects.push(self.pack_name(p));
            }
            for p in &listing.singles {
                if live.contains(p) {
                    objects.push(self.index_name(p));
                }
            }
            for (name, ps) in &listing.merged {
                if !ps.iter().any(|p| delete_set.contains(p)) {
                    objects.push(name.clone());
                }
            }
            report.retention_extended = self
                .extend_retention(objects, now + chrono::Duration::days(days as i64))
                .await?;
        }
        // Merge small index objects (gc already runs alone).
        report.index = self.compact_locked(GC_COMPACT_AT).await?;
        self.refresh_index().await?;
        Ok(())
    }
}

impl Account {
    /// Extend the retention of `objects` to `until`, in the mode the
    /// bucket's default retention gave the repository's config object.
    async fn extend_retention(&self, objects: Vec<String>, until: DateTime<Utc>) -> Result<usize> {
        use futures::StreamExt;
        let Some(mode) = self.inner.loc.retention_mode("config").await? else {
            // The bucket has no default retention: nothing to extend.
            return Ok(0);
        };
        let mode = &mode;
        let done: Vec<Result<bool>> = futures::stream::iter(objects)
            .map(|name| async move {
                match self.inner.loc.extend_retention(&name, mode, until).await {
                    Ok(()) => Ok(true),
                    Err(Error::NotFound(_)) => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut n = 0;
        for d in done {
            n += usize::from(d?);
        }
        Ok(n)
    }

    /// Copy the reachable chunks of `packs` into new packs (sealed bytes are
    /// copied after authenticating them; nothing is re-encrypted). Returns
    /// the packs that were fully copied and can be condemned.
    async fn repack(
        &self,
        packs: &[PackId],
        contents: &HashMap<PackId, PackIndex>,
        reachable: &HashSet<u128>,
        report: &mut GcReport,
    ) -> Result<Vec<PackId>> {
        use crate::index::BlobEntry;
        let pack_size = self.inner.config.pack_size as usize;
        let mut buf = crate::writer::new_pack_buf(pack_size + 1024 * 1024);
        let mut blobs: Vec<BlobEntry> = Vec::new();
        let mut copied: HashSet<u128> = HashSet::new();
        let mut done = Vec::new();
        let mut pending = Vec::new();
        for p in packs {
            let Some(pi) = contents.get(p) else { continue };
            let bytes = match self.inner.loc.get(&self.pack_name(p)).await {
                Ok(b) => b,
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let mut ok = true;
            let mut staged = Vec::new();
            for b in &pi.blobs {
                let k = b.id.short();
                if !reachable.contains(&k) || copied.contains(&k) {
                    continue;
                }
                let end = b.offset as usize + b.len as usize;
                let sealed = match bytes.get(b.offset as usize..end) {
                    Some(s) => s,
                    None => {
                        ok = false;
                        break;
                    }
                };
                if crate::crypto::open_blob(&self.inner.keys, &b.id, sealed, b.raw_len).is_none() {
                    // Damaged: leave the pack alone for verify to report.
                    ok = false;
                    break;
                }
                staged.push((b.clone(), sealed.to_vec()));
            }
            if !ok {
                continue;
            }
            for (b, sealed) in staged {
                copied.insert(b.id.short());
                report.repacked_bytes += sealed.len() as u64;
                blobs.push(BlobEntry {
                    id: b.id,
                    offset: buf.len() as u32,
                    len: sealed.len() as u32,
                    raw_len: b.raw_len,
                });
                buf.extend_from_slice(&sealed);
                if buf.len() >= pack_size {
                    let full = std::mem::replace(
                        &mut buf,
                        crate::writer::new_pack_buf(pack_size + 1024 * 1024),
                    );
                    pending.push((full, std::mem::take(&mut blobs)));
                }
            }
            report.repacked += 1;
            done.push(*p);
            for (data, bl) in pending.drain(..) {
                self.write_pack(data, bl).await?;
            }
        }
        if !blobs.is_empty() {
            self.write_pack(buf, blobs).await?;
        }
        Ok(done)
    }

    async fn write_pack(&self, data: Vec<u8>, blobs: Vec<crate::index::BlobEntry>) -> Result<()> {
        let id = PackId(*blake3::hash(&data).as_bytes());
        let pi = PackIndex {
            pack: id,
            pack_len: data.len() as u64,
            blobs,
        };
        crate::writer::upload(self.clone(), id, bytes::Bytes::from(data), pi).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotStats;
    use chrono::TimeZone;

    fn snap(i: u32, t: DateTime<Utc>) -> SnapshotInfo {
        SnapshotInfo {
            id: SnapshotId(format!("{i:032x}")),
            time: t,
            parent: None,
            root: Content::default(),
            meta: serde_json::Value::Null,
            stats: SnapshotStats::default(),
        }
    }

    #[test]
    fn retention_rules() {
        let base = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        // Two snapshots a day for 90 days.
        let snaps: Vec<SnapshotInfo> = (0..180)
            .map(|i| snap(i, base + chrono::Duration::hours(12 * i as i64)))
            .collect();
        let now = snaps.last().unwrap().time;
        let kept = |p: RetentionPolicy| snaps.len() - p.to_forget(&snaps, now).len();
        assert_eq!(
            kept(RetentionPolicy::default()),
            180,
            "empty policy keeps everything"
        );
        assert_eq!(
            kept(RetentionPolicy {
                keep_last: Some(5),
                ..Default::default()
            }),
            5
        );
        assert_eq!(
            kept(RetentionPolicy {
                keep_daily: Some(7),
                ..Default::default()
            }),
            7
        );
        assert_eq!(
            kept(RetentionPolicy {
                keep_weekly: Some(4),
                ..Default::default()
            }),
            4
        );
        assert_eq!(
            kept(RetentionPolicy {
                keep_monthly: Some(2),
                ..Default::default()
            }),
            2
        );
        // 10 days back inclusive at 12 h spacing: 21 snapshots.
        assert_eq!(
            kept(RetentionPolicy {
                keep_within_days: Some(10),
                ..Default::default()
            }),
            21
        );
        // Rules combine as a union; the newest is always kept by daily.
        let p = RetentionPolicy {
            keep_last: Some(3),
            keep_daily: Some(3),
            ..Default::default()
        };
        let forget = p.to_forget(&snaps, now);
        assert_eq!(snaps.len() - forget.len(), 4);
        assert!(!forget.contains(&snaps.last().unwrap().id));
        // Daily keeps the newest of each day.
        let p = RetentionPolicy {
            keep_daily: Some(1),
            ..Default::default()
        };
        assert_eq!(p.to_forget(&snaps, now).len(), 179);
    }
}
