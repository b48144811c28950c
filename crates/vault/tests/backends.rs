//! The same scenario on every backend: init, snapshot, incremental snapshot
//! from a parent, read back, list, walk, diff, forget, gc, full verify.

mod common;
use common::*;
use futures::TryStreamExt;
use vault::{Change, Location, NoProgress, Node, Repository};

async fn scenario(loc: Location) {
    let repo = Repository::init(loc.clone(), small_opts()).await.unwrap();
    assert!(matches!(
        Repository::init(loc.clone(), small_opts()).await,
        Err(vault::Error::AlreadyExists(_))
    ));
    let repo2 = Repository::open(loc.clone()).await.unwrap();
    assert_eq!(repo.config().repo_id, repo2.config().repo_id);
    let acct = repo
        .init_account("tenant-1", &key(1, "tenant-1"))
        .await
        .unwrap()
        .with_timing(fast_timing());

    let big = noise(1, 300_000);
    let w = acct.begin_snapshot(None).await.unwrap();
    w.put_bytes(
        "Inbox/a.eml",
        br#"{"subject":"a"}"#.to_vec(),
        b"hello".to_vec(),
    )
    .await
    .unwrap();
    w.put_item("Inbox/big.bin", b"{}".to_vec(), &big[..])
        .await
        .unwrap();
    w.put_bytes("Sent/b.eml", b"{}".to_vec(), b"bye".to_vec())
        .await
        .unwrap();
    w.put_bytes("Archive/2020/c.eml", b"{}".to_vec(), noise(2, 20_000))
        .await
        .unwrap();
    w.put_bytes("empty", b"{}".to_vec(), Vec::new())
        .await
        .unwrap();
    w.put_bytes("Old/gone.bin", b"{}".to_vec(), noise(3, 400_000))
        .await
        .unwrap();
    let s1 = w
        .commit(serde_json::json!({"task": "t1", "delta": {"Inbox": "tok1"}}))
        .await
        .unwrap();

    // Reopen from scratch (no cache) and read.
    let acct2 = Repository::open(loc.clone())
        .await
        .unwrap()
        .open_account("tenant-1", &key(1, "tenant-1"))
        .await
        .unwrap();
    let snaps = acct2.snapshots().await.unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].id, s1);
    assert_eq!(snaps[0].meta["delta"]["Inbox"], "tok1");
    let snap1 = snaps[0].clone();
    assert_eq!(
        acct2.read_item_bytes(&snap1, "Inbox/a.eml").await.unwrap(),
        b"hello"
    );
    assert_eq!(acct2.read_item_bytes(&snap1, "empty").await.unwrap(), b"");
    let (meta, stream) = acct2.read_item(&snap1, "Inbox/big.bin").await.unwrap();
    assert_eq!(meta, b"{}");
    let parts: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    assert!(parts.len() > 10, "a 300 kB item is chunked");
    assert_eq!(parts.concat(), big);
    let names: Vec<String> = acct2
        .list_folder(&snap1, "Inbox")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["a.eml", "big.bin"]);
    let walked: Vec<String> = acct2
        .walk(&snap1, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(walked.contains(&"Archive/2020/c.eml".to_string()));
    assert!(matches!(
        acct2.read_item_bytes(&snap1, "Inbox/nope").await,
        Err(vault::Error::NoSuchEntry(_))
    ));

    // Incremental: keep everything, change one item, add one, drop one.
    let w = acct.begin_snapshot(Some(&s1)).await.unwrap();
    assert!(w.keep_from_parent("").await.unwrap());
    w.put_bytes(
        "Inbox/a.eml",
        br#"{"subject":"a2"}"#.to_vec(),
        b"hello again".to_vec(),
    )
    .await
    .unwrap();
    w.put_bytes("Inbox/new.eml", b"{}".to_vec(), b"new".to_vec())
        .await
        .unwrap();
    w.remove("Sent/b.eml").await.unwrap();
    w.remove("Old").await.unwrap();
    let stats = w.stats();
    let s2 = w.commit(serde_json::json!({"task": "t2"})).await.unwrap();
    assert!(
        stats.new_bytes < 10_000,
        "incremental wrote {} bytes",
        stats.new_bytes
    );
    let snap2 = acct.snapshot(&s2).await.unwrap();
    assert_eq!(snap2.parent.as_ref(), Some(&s1));
    assert_eq!(
        acct.read_item_bytes(&snap2, "Inbox/big.bin").await.unwrap(),
        big
    );
    assert_eq!(
        acct.read_item_bytes(&snap2, "Inbox/a.eml").await.unwrap(),
        b"hello again"
    );
    // The untouched subtree is shared by reference.
    let (Node::Folder { tree: t1, .. }, Node::Folder { tree: t2, .. }) = (
        acct.lookup(&snap1, "Archive").await.unwrap(),
        acct.lookup(&snap2, "Archive").await.unwrap(),
    ) else {
        panic!("Archive is a folder")
    };
    assert_eq!(t1, t2);
    let diff = acct.diff(&snap1, &snap2).await.unwrap();
    assert_eq!(
        diff,
        vec![
            Change::Modified("Inbox/a.eml".into()),
            Change::Added("Inbox/new.eml".into()),
            Change::Removed("Old".into()),
            Change::Removed("Old/gone.bin".into()),
            Change::Removed("Sent/b.eml".into()),
        ]
    );

    // Forget the first snapshot; two gc runs (grace 0) delete its garbage.
    acct.forget(std::slice::from_ref(&s1)).await.unwrap();
    let r1 = acct.gc().await.unwrap();
    assert!(r1.condemned > 0);
    let r2 = acct.gc().await.unwrap();
    assert!(r2.deleted_packs > 0, "{r2:?}");
    let report = acct.verify(true, &NoProgress).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.snapshots, 1);
    assert_eq!(
        acct.read_item_bytes(&snap2, "Inbox/big.bin").await.unwrap(),
        big
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_disk() {
    let dir = tempfile::tempdir().unwrap();
    scenario(Location::from_url(dir.path().to_str().unwrap()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_moto() {
    let svc = moto();
    scenario(s3_location(&svc, "vault-test")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_azurite() {
    let svc = azurite();
    scenario(azure_location(&svc, "vault-test")).await;
}
