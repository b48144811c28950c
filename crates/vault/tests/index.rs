//! Index compaction: many one-pack index objects merged into a few, the
//! merged objects written before the small ones are deleted, so that an
//! interruption leaves duplicates and never a gap; safe with writers and gc
//! running at the same time.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use vault::{Account, Location, NoProgress, Repository, SnapshotId};

fn index_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    all_files(dir)
        .into_iter()
        .filter(|(n, _)| n.contains("/index/"))
        .collect()
}

async fn open(loc: Location, name: &str) -> Account {
    Repository::open(loc)
        .await
        .unwrap()
        .open_or_init_account(name, &key(1, name))
        .await
        .unwrap()
        .with_timing(fast_timing())
}

/// `rounds` snapshots, each replacing three items with new content; returns
/// the snapshot ids and the items of the last one.
async fn write_rounds(
    acct: &Account,
    rounds: u64,
    seed: u64,
) -> (Vec<SnapshotId>, BTreeMap<String, Vec<u8>>) {
    let mut ids: Vec<SnapshotId> = Vec::new();
    let mut items = BTreeMap::new();
    for round in 0..rounds {
        let w = acct.begin_snapshot(ids.last()).await.unwrap();
        if !ids.is_empty() {
            w.keep_from_parent("").await.unwrap();
        }
        for i in 0..3u64 {
            let path = format!("f{}/{i}", round % 4);
            let data = noise(seed + round * 100 + i, 30_000);
            w.put_bytes(&path, Vec::new(), data.clone()).await.unwrap();
            items.insert(path, data);
        }
        ids.push(w.commit(serde_json::Value::Null).await.unwrap());
    }
    (ids, items)
}

async fn check_items(acct: &Account, id: &SnapshotId, items: &BTreeMap<String, Vec<u8>>) {
    let snap = acct.snapshot(id).await.unwrap();
    for (path, data) in items {
        assert_eq!(
            &acct.read_item_bytes(&snap, path).await.unwrap(),
            data,
            "{path}"
        );
    }
}

/// Opening an account and reading one item: the requests it takes.
async fn open_and_read(path: &std::path::Path, id: &SnapshotId) -> vault::RequestCounts {
    let loc = Location::from_url(path.to_str().unwrap()).unwrap();
    let acct = open(loc.clone(), "a").await;
    let before = loc.request_counts();
    let snap = acct.snapshot(id).await.unwrap();
    acct.read_item_bytes(&snap, "f0/0").await.unwrap();
    loc.request_counts() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_index_objects() {
    let (dir, loc, _repo) = local_repo().await;
    let acct = open(loc.clone(), "a").await.with_index_compaction(0);
    let (ids, items) = write_rounds(&acct, 24, 0).await;
    let before = index_files(dir.path()).len();
    assert!(before >= 40, "one index object per pack: {before}");
    let reads_before = open_and_read(dir.path(), ids.last().unwrap()).await;

    let r = acct.compact_index(2).await.unwrap();
    assert_eq!(r.objects_before, before);
    assert_eq!(r.deleted, before);
    assert_eq!(r.written, 1);
    assert_eq!(r.objects_after, 1);
    assert_eq!(r.packs, before);
    assert_eq!(index_files(dir.path()).len(), 1);
    let reads_after = open_and_read(dir.path(), ids.last().unwrap()).await;
    assert!(
        reads_after.get + before as u64 - 1 <= reads_before.get,
        "opening reads one index object instead of {before}: {reads_before:?} -> {reads_after:?}"
    );
    // Nothing to do a second time.
    let again = acct.compact_index(2).await.unwrap();
    assert_eq!((again.written, again.deleted), (0, 0));

    let fresh = open(loc.clone(), "a").await;
    check_items(&fresh, ids.last().unwrap(), &items).await;
    let v = fresh.verify(true, &NoProgress).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.index_objects, 1);
    assert_eq!(v.unindexed_packs, 0);
    // Writers keep adding one-pack objects next to the merged one; gc still
    // works across both forms (and compacts again).
    let (ids2, items2) = write_rounds(&fresh, 20, 1_000_000).await;
    let all: Vec<SnapshotId> = fresh
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .filter(|id| id != ids2.last().unwrap())
        .collect();
    fresh.forget(&all).await.unwrap();
    let r1 = fresh.gc().await.unwrap();
    assert!(r1.index.deleted >= 16, "gc compacts: {r1:?}");
    // The sweep deletes packs described by the merged object, which is
    // rewritten without them.
    let r = fresh.gc().await.unwrap();
    assert!(r.deleted_packs > 0, "{r:?}");
    let v = fresh.verify(true, &NoProgress).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert!(v.index_objects <= 3, "{}", v.index_objects);
    check_items(&open(loc.clone(), "a").await, ids2.last().unwrap(), &items2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_compact_automatically() {
    let (dir, loc, _repo) = local_repo().await;
    let acct = open(loc.clone(), "a").await.with_index_compaction(8);
    let mut most = 0;
    let mut ids = Vec::new();
    let mut items = BTreeMap::new();
    for batch in 0..3 {
        let (i, it) = write_rounds(&acct, 6, batch * 1_000_000).await;
        most = most.max(index_files(dir.path()).len());
        ids = i;
        items = it;
    }
    let count = index_files(dir.path()).len();
    assert!(
        count < 8 + 4,
        "index objects stay few: {count} (at most {most} at a time)"
    );
    let fresh = open(loc, "a").await;
    check_items(&fresh, ids.last().unwrap(), &items).await;
    let v = fresh.verify(false, &NoProgress).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
}

/// A compaction killed after writing its merged object, or half-way
/// through deleting what it supersedes, leaves packs described twice:
/// readers, verify and gc accept that, and the next compaction tidies up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_compaction_leaves_duplicates_never_gaps() {
    let (dir, loc, _repo) = local_repo().await;
    let acct = open(loc.clone(), "a").await.with_index_compaction(0);
    let (ids, items) = write_rounds(&acct, 10, 0).await;
    let singles = index_files(dir.path());
    acct.compact_index(2).await.unwrap();
    let restore = |files: &[(String, Vec<u8>)]| {
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
    };
    // Killed half-way through the deletions, then right after the write.
    for part in [&singles[..singles.len() / 2], &singles[..]] {
        restore(part);
        assert_eq!(index_files(dir.path()).len(), part.len() + 1);
        let fresh = open(loc.clone(), "a").await;
        check_items(&fresh, ids.last().unwrap(), &items).await;
        let v = fresh.verify(true, &NoProgress).await.unwrap();
        assert!(v.ok(), "{:?}", v.problems);
        assert_eq!(v.unindexed_packs, 0);
        assert_eq!(v.index_objects, part.len() + 1);
    }
    // gc over duplicates: deletes garbage packs from both forms.
    let keep = ids.last().unwrap().clone();
    let old: Vec<SnapshotId> = ids.iter().filter(|i| **i != keep).cloned().collect();
    acct.forget(&old).await.unwrap();
    acct.gc().await.unwrap();
    let r = acct.gc().await.unwrap();
    assert!(r.deleted_packs > 0, "{r:?}");
    let fresh = open(loc.clone(), "a").await;
    let v = fresh.verify(true, &NoProgress).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.unindexed_packs, 0);
    check_items(&fresh, &keep, &items).await;
    let r = fresh.compact_index(2).await.unwrap();
    assert_eq!(r.objects_after, 1, "{r:?}");
    let v = fresh.verify(true, &NoProgress).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
}

/// Two writers, a gc loop with retention and a compaction loop at once;
/// every surviving snapshot reads back exactly and verify passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_with_writers_and_gc_at_once() {
    let (_dir, loc, _repo) = local_repo().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    type Written = Vec<(SnapshotId, String, Vec<u8>)>;
    let expected: Arc<parking_lot::Mutex<Written>> = Default::default();
    let mut writers = Vec::new();
    for writer in 0..2u64 {
        let acct = open(loc.clone(), "shared").await.with_index_compaction(3);
        let expected = expected.clone();
        writers.push(tokio::spawn(async move {
            let mut parent: Option<SnapshotId> = None;
            let mut round = 0u64;
            while std::time::Instant::now() < deadline {
                let w = acct.begin_snapshot(parent.as_ref()).await.unwrap();
                if parent.is_some() {
                    w.keep_from_parent("").await.unwrap();
                }
                let shared = noise(round % 3, 30_000);
                let own = noise(1000 + writer * 100 + round, 40_000);
                let path = format!("w{writer}/r{round}");
                w.put_bytes(&format!("{path}/shared"), Vec::new(), shared.clone())
                    .await
                    .unwrap();
                w.put_bytes(&format!("{path}/own"), Vec::new(), own.clone())
                    .await
                    .unwrap();
                if round >= 2 {
                    w.remove(&format!("w{writer}/r{}", round - 2))
                        .await
                        .unwrap();
                }
                let id = w.commit(serde_json::Value::Null).await.unwrap();
                let mut e = expected.lock();
                e.push((id.clone(), format!("{path}/shared"), shared));
                e.push((id.clone(), format!("{path}/own"), own));
                drop(e);
                parent = Some(id);
                round += 1;
            }
            round
        }));
    }
    let gc_acct = open(loc.clone(), "shared").await;
    let gc_task = tokio::spawn(async move {
        let (mut runs, mut deleted) = (0, 0);
        while std::time::Instant::now() < deadline {
            gc_acct
                .apply_retention(&vault::RetentionPolicy {
                    keep_last: Some(3),
                    ..Default::default()
                })
                .await
                .unwrap();
            match gc_acct.gc().await {
                Ok(r) => {
                    deleted += r.deleted_packs;
                    runs += 1;
                }
                Err(vault::Error::Busy(_)) => {}
                Err(e) => panic!("gc: {e}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
        (runs, deleted)
    });
    let compact_acct = open(loc.clone(), "shared").await;
    let compact_task = tokio::spawn(async move {
        let mut merged = 0;
        while std::time::Instant::now() < deadline {
            match compact_acct.compact_index(2).await {
                Ok(r) => merged += r.deleted,
                Err(vault::Error::Busy(_)) => {}
                Err(e) => panic!("compaction: {e}"),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        merged
    });
    for t in writers {
        assert!(t.await.unwrap() >= 2, "each writer completes snapshots");
    }
    let (runs, _) = gc_task.await.unwrap();
    let merged = compact_task.await.unwrap();
    assert!(runs >= 1, "gc ran");
    assert!(merged > 0, "compaction merged index objects");
    let acct = open(loc.clone(), "shared").await;
    let live: Vec<SnapshotId> = acct
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let mut checked = 0;
    let list = expected.lock().clone();
    for (id, path, data) in list {
        if live.contains(&id) {
            let snap = acct.snapshot(&id).await.unwrap();
            assert_eq!(
                acct.read_item_bytes(&snap, &path).await.unwrap(),
                data,
                "{id}:{path}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 2);
    let v = acct.verify(true, &NoProgress).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    // Garbage still goes away once writers stop.
    acct.apply_retention(&vault::RetentionPolicy {
        keep_last: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    acct.gc().await.unwrap();
    let r = acct.gc().await.unwrap();
    assert!(r.deleted_packs > 0, "{r:?}");
    let v = acct.verify(true, &NoProgress).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.unindexed_packs, 0);
}
