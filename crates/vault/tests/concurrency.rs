//! Two-phase gc against concurrent writers.

mod common;
use common::*;
use std::sync::Arc;
use vault::{NoProgress, Repository};

/// The dangerous interleaving, step by step: a writer that loaded the index
/// before gc condemned some packs deduplicates against them; the sweep must
/// wait for it, and then keep the packs its snapshot references.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_never_deletes_what_an_older_writer_references() {
    let (_dir, loc, repo) = local_repo().await;
    let acct = repo
        .init_account("a", &key(1, "a"))
        .await
        .unwrap()
        .with_timing(fast_timing());
    let data = noise(1, 200_000);
    let w = acct.begin_snapshot(None).await.unwrap();
    w.put_bytes("x", Vec::new(), data.clone()).await.unwrap();
    let s1 = w.commit(serde_json::Value::Null).await.unwrap();
    acct.forget(&[s1]).await.unwrap();

    // Writer B starts (and loads the index) before the condemnation.
    let b_acct = Repository::open(loc.clone())
        .await
        .unwrap()
        .open_account("a", &key(1, "a"))
        .await
        .unwrap()
        .with_timing(fast_timing());
    let b = b_acct.begin_snapshot(None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = acct.gc().await.unwrap();
    assert!(r.condemned > 0, "{r:?}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    // B deduplicates against the condemned packs (it cannot know).
    b.put_bytes("x", Vec::new(), data.clone()).await.unwrap();
    assert!(b.stats().dup_chunks > 0);
    // A writer that starts now knows the condemnation and re-uploads.
    let c = acct.begin_snapshot(None).await.unwrap();
    c.put_bytes("y", Vec::new(), data.clone()).await.unwrap();
    assert_eq!(
        c.stats().dup_chunks,
        0,
        "a new writer must not use condemned packs"
    );

    // The sweep waits for B.
    let r = acct.gc().await.unwrap();
    assert_eq!(r.deleted_packs, 0, "{r:?}");
    assert!(r.waiting > 0);
    let sb = b.commit(serde_json::Value::Null).await.unwrap();
    let sc = c.commit(serde_json::Value::Null).await.unwrap();
    // Now the sweep runs and rescues what B's snapshot references.
    let r = acct.gc().await.unwrap();
    assert!(r.rescued > 0, "{r:?}");
    let fresh = Repository::open(loc.clone())
        .await
        .unwrap()
        .open_account("a", &key(1, "a"))
        .await
        .unwrap();
    for (id, name) in [(sb, "x"), (sc, "y")] {
        let snap = fresh.snapshot(&id).await.unwrap();
        assert_eq!(fresh.read_item_bytes(&snap, name).await.unwrap(), data);
    }
    let v = fresh.verify(true, &NoProgress).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
}

/// Two writers (separate handles, as separate processes would have) and a
/// gc loop with retention running at once for a few seconds; afterwards
/// every surviving snapshot reads back exactly and verify passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_and_gc_at_once() {
    let (_dir, loc, _repo) = local_repo().await;
    let open = |loc: vault::Location| async move {
        Repository::open(loc)
            .await
            .unwrap()
            .open_or_init_account("shared", &key(1, "shared"))
            .await
            .unwrap()
            .with_timing(fast_timing())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    type Written = Vec<(vault::SnapshotId, String, Vec<u8>)>;
    let expected: Arc<parking_lot::Mutex<Written>> = Default::default();
    let mut tasks = Vec::new();
    for writer in 0..2u64 {
        let acct = open(loc.clone()).await;
        let expected = expected.clone();
        tasks.push(tokio::spawn(async move {
            let mut parent = None;
            let mut round = 0u64;
            while std::time::Instant::now() < deadline {
                let w = acct.begin_snapshot(parent.as_ref()).await.unwrap();
                if parent.is_some() {
                    w.keep_from_parent("").await.unwrap();
                }
                // Content shared between writers and rounds, plus new content.
                let shared = noise(round % 3, 30_000);
                let own = noise(1000 + writer * 100 + round, 20_000);
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
                let id = w
                    .commit(serde_json::json!({ "writer": writer, "round": round }))
                    .await
                    .unwrap();
                expected
                    .lock()
                    .push((id.clone(), format!("{path}/shared"), shared));
                expected
                    .lock()
                    .push((id.clone(), format!("{path}/own"), own));
                parent = Some(id);
                round += 1;
            }
            round
        }));
    }
    let gc_acct = open(loc.clone()).await;
    let gc_task = tokio::spawn(async move {
        let mut runs = 0;
        let mut deleted = 0;
        while std::time::Instant::now() < deadline {
            let policy = vault::RetentionPolicy {
                keep_last: Some(3),
                ..Default::default()
            };
            gc_acct.apply_retention(&policy).await.unwrap();
            deleted += gc_acct.gc().await.unwrap().deleted_packs;
            runs += 1;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        (runs, deleted)
    });
    for t in tasks {
        assert!(
            t.await.unwrap() >= 2,
            "each writer completes several snapshots"
        );
    }
    let (runs, _deleted) = gc_task.await.unwrap();
    assert!(runs >= 2);
    let acct = open(loc.clone()).await;
    let live: Vec<vault::SnapshotId> = acct
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(!live.is_empty());
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
    // And garbage does go away once writers stop.
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
}

/// Forgetting a snapshot whose data is mixed in packs with live data:
/// gc copies the live chunks to new packs and deletes the old ones, and a
/// reader holding an old index still reads everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_repacks_mostly_unused_packs() {
    let (dir, loc, repo) = local_repo().await;
    let acct = repo
        .init_account("a", &key(1, "a"))
        .await
        .unwrap()
        .with_timing(fast_timing());
    let w = acct.begin_snapshot(None).await.unwrap();
    for i in 0..60u64 {
        w.put_bytes(&format!("m/{i}"), Vec::new(), noise(i, 3000))
            .await
            .unwrap();
    }
    let s1 = w.commit(serde_json::Value::Null).await.unwrap();
    let w = acct.begin_snapshot(Some(&s1)).await.unwrap();
    w.keep_from_parent("").await.unwrap();
    for i in 0..60u64 {
        if i % 4 != 0 {
            w.remove(&format!("m/{i}")).await.unwrap();
        }
    }
    let s2 = w.commit(serde_json::Value::Null).await.unwrap();
    // A reader that loaded the index before the repack.
    let reader = Repository::open(loc.clone())
        .await
        .unwrap()
        .open_account("a", &key(1, "a"))
        .await
        .unwrap();
    let snap2 = reader.snapshot(&s2).await.unwrap();
    assert_eq!(
        reader.read_item_bytes(&snap2, "m/0").await.unwrap(),
        noise(0, 3000)
    );

    let before: usize = all_files(dir.path()).iter().map(|(_, b)| b.len()).sum();
    acct.forget(&[s1]).await.unwrap();
    let r = acct.gc().await.unwrap();
    assert!(r.repacked > 0, "{r:?}");
    assert!(r.condemned >= r.repacked);
    let r = acct.gc().await.unwrap();
    assert!(r.deleted_packs > 0, "{r:?}");
    assert_eq!(r.rescued, 0, "{r:?}");
    let after: usize = all_files(dir.path()).iter().map(|(_, b)| b.len()).sum();
    assert!(
        after * 2 < before,
        "repository shrank from {before} to only {after}"
    );

    for i in (0..60u64).step_by(4) {
        assert_eq!(
            reader
                .read_item_bytes(&snap2, &format!("m/{i}"))
                .await
                .unwrap(),
            noise(i, 3000),
            "m/{i}"
        );
    }
    let v = acct.verify(true, &NoProgress).await.unwrap();
    assert!(v.ok(), "{:?}", v.problems);
    assert_eq!(v.unindexed_packs, 0);
}
