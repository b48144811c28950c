//! Confidentiality and integrity: no plaintext at rest, per-account
//! isolation, tamper detection naming the damaged object, key rotation.

mod common;
use common::*;
use vault::{Location, NoProgress, Repository};

const MARKER: &str = "LIFEBOAT-MARKER-a1b2c3d4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_at_rest() {
    let (dir, _loc, repo) = local_repo().await;
    let acct = repo.init_account(MARKER, &key(1, MARKER)).await.unwrap();
    let w = acct.begin_snapshot(None).await.unwrap();
    // Compressible (repeated marker), incompressible with one marker, in
    // names, folder names, item metadata and snapshot metadata.
    let compressible = MARKER.repeat(5000);
    let mut incompressible = noise(9, 50_000);
    incompressible[20_000..20_000 + MARKER.len()].copy_from_slice(MARKER.as_bytes());
    w.put_bytes(
        &format!("{MARKER}/folder/{MARKER}.eml"),
        format!(r#"{{"s":"{MARKER}"}}"#).into_bytes(),
        compressible.clone(),
    )
    .await
    .unwrap();
    w.put_bytes(
        "x/small",
        MARKER.as_bytes().to_vec(),
        MARKER.as_bytes().to_vec(),
    )
    .await
    .unwrap();
    w.put_bytes("x/noise", Vec::new(), incompressible)
        .await
        .unwrap();
    let id = w
        .commit(serde_json::json!({ "delta": MARKER }))
        .await
        .unwrap();
    // Sanity: the data is there and readable with the key.
    let snap = acct.snapshot(&id).await.unwrap();
    let got = acct
        .read_item_bytes(&snap, &format!("{MARKER}/folder/{MARKER}.eml"))
        .await
        .unwrap();
    assert_eq!(got, compressible.as_bytes());

    let files = all_files(dir.path());
    assert!(files.len() >= 5);
    let needles: Vec<Vec<u8>> = vec![
        MARKER.as_bytes().to_vec(),
        MARKER.to_lowercase().into_bytes(),
        hex::encode(MARKER).into_bytes(),
        // Also look for the marker inside a zstd frame (a compressor that
        // kept literals would expose it): compress and search the middle.
        MARKER.as_bytes()[4..20].to_vec(),
    ];
    for (name, bytes) in &files {
        assert!(!name.contains(MARKER), "marker in object name {name}");
        for n in &needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == &n[..]),
                "plaintext found in {name}"
            );
        }
        // Try to decompress every suffix that starts with a zstd magic.
        for (i, w) in bytes.windows(4).enumerate() {
            if w == [0x28, 0xb5, 0x2f, 0xfd]
                && let Ok(d) = zstd::stream::decode_all(&bytes[i..])
            {
                assert!(
                    !d.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()),
                    "compressed plaintext in {name}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_isolated() {
    let (_dir, loc, repo) = local_repo().await;
    let a = repo.init_account("alice", &key(1, "alice")).await.unwrap();
    let b = repo.init_account("bob", &key(1, "bob")).await.unwrap();
    assert_ne!(a.dir(), b.dir());
    let data = noise(5, 100_000);
    let wa = a.begin_snapshot(None).await.unwrap();
    let ca = wa.put_bytes("f", Vec::new(), data.clone()).await.unwrap();
    let sa = wa.commit(serde_json::Value::Null).await.unwrap();
    let wb = b.begin_snapshot(None).await.unwrap();
    let cb = wb.put_bytes("f", Vec::new(), data.clone()).await.unwrap();
    let stats_b = wb.stats();
    let sb = wb.commit(serde_json::Value::Null).await.unwrap();
    // Same content, different keyed ids: no account can confirm that another
    // stored some content, and nothing is deduplicated across accounts.
    assert!(ca.chunks.iter().all(|c| !cb.chunks.contains(c)));
    assert_eq!(stats_b.dup_chunks, 0);
    assert!(stats_b.new_bytes >= data.len() as u64);
    // Alice's key opens neither Bob's account nor (through her own account)
    // his snapshots.
    let repo2 = Repository::open(loc.clone()).await.unwrap();
    assert!(matches!(
        repo2.open_account("bob", &key(1, "alice")).await,
        Err(vault::Error::WrongKey(_))
    ));
    assert!(matches!(
        repo2.open_account("bob", &key(2, "bob")).await,
        Err(vault::Error::WrongKey(_))
    ));
    assert!(a.snapshot(&sb).await.is_err());
    assert!(a.snapshots().await.unwrap().iter().all(|s| s.id != sb));
    // Her own still works.
    let snap = a.snapshot(&sa).await.unwrap();
    assert_eq!(a.read_item_bytes(&snap, "f").await.unwrap(), data);
    // An account that was never created is reported as such.
    assert!(matches!(
        repo2.open_account("carol", &key(1, "carol")).await,
        Err(vault::Error::NoAccount)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_rewraps() {
    let (_dir, loc, repo) = local_repo().await;
    let old = key(1, "acct");
    let new = key(2, "acct");
    let a = repo.init_account("acct", &old).await.unwrap();
    let w = a.begin_snapshot(None).await.unwrap();
    w.put_bytes("x", Vec::new(), b"data".to_vec())
        .await
        .unwrap();
    let id = w.commit(serde_json::Value::Null).await.unwrap();
    repo.rewrap_account("acct", &old, &new).await.unwrap();
    let repo = Repository::open(loc).await.unwrap();
    assert!(matches!(
        repo.open_account("acct", &old).await,
        Err(vault::Error::WrongKey(_))
    ));
    let a = repo.open_account("acct", &new).await.unwrap();
    let snap = a.snapshot(&id).await.unwrap();
    assert_eq!(a.read_item_bytes(&snap, "x").await.unwrap(), b"data");
    // Password-derived master keys are deterministic per repository.
    let m1 = repo.master_key_from_password("pw").unwrap();
    let m2 = repo.master_key_from_password("pw").unwrap();
    let m3 = repo.master_key_from_password("pw2").unwrap();
    let a1 = repo
        .init_account("pw-acct", &m1.account_key("pw-acct"))
        .await
        .unwrap();
    drop(a1);
    repo.open_account("pw-acct", &m2.account_key("pw-acct"))
        .await
        .unwrap();
    assert!(
        repo.open_account("pw-acct", &m3.account_key("pw-acct"))
            .await
            .is_err()
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for (rel, bytes) in all_files(from) {
        let p = to.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// Flip one byte in each stored object in turn: verify (full) or opening the
/// repository must fail and name that object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tamper_is_detected_and_named() {
    let (dir, _loc, repo) = local_repo().await;
    let acct = repo.init_account("t", &key(1, "t")).await.unwrap();
    let w = acct.begin_snapshot(None).await.unwrap();
    w.put_bytes("a/one", b"{}".to_vec(), noise(1, 150_000))
        .await
        .unwrap();
    w.put_bytes("a/two", b"{}".to_vec(), b"two".to_vec())
        .await
        .unwrap();
    let s1 = w.commit(serde_json::Value::Null).await.unwrap();
    let w = acct.begin_snapshot(Some(&s1)).await.unwrap();
    w.keep_from_parent("").await.unwrap();
    w.put_bytes("b/three", b"{}".to_vec(), noise(2, 5_000))
        .await
        .unwrap();
    w.commit(serde_json::Value::Null).await.unwrap();
    let clean = acct.verify(true, &NoProgress).await.unwrap();
    assert!(clean.ok(), "{:?}", clean.problems);

    let files = all_files(dir.path());
    assert!(files.len() >= 8, "{files:?}");
    for (i, (name, bytes)) in files.iter().enumerate() {
        for pos in [0usize, bytes.len() / 2, bytes.len() - 1] {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), copy.path());
            let mut damaged = bytes.clone();
            damaged[pos] ^= 0x40 | (i as u8 & 0x3f) | 1;
            std::fs::write(copy.path().join(name), damaged).unwrap();
            let loc = Location::from_url(copy.path().to_str().unwrap()).unwrap();
            let outcome = async {
                let repo = Repository::open(loc).await?;
                let acct = repo.open_account("t", &key(1, "t")).await?;
                acct.verify(true, &NoProgress).await
            }
            .await;
            match outcome {
                Err(e) => assert!(
                    e.to_string().contains(name.as_str()),
                    "{name}@{pos}: error does not name it: {e}"
                ),
                Ok(report) => {
                    assert!(!report.ok(), "{name}@{pos}: damage not detected");
                    assert!(
                        report.problems.iter().any(|p| p.object == *name),
                        "{name}@{pos}: not named in {:?}",
                        report.problems
                    );
                    if name.contains("/data/") && pos > 0 {
                        assert!(
                            report.problems.iter().any(|p| !p.items.is_empty()),
                            "{name}@{pos}: affected items not named: {:?}",
                            report.problems
                        );
                    }
                }
            }
        }
    }
}

/// With Object Lock configured, snapshots under retention cannot be
/// forgotten, by id or by a retention policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_retention_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let loc = Location::from_url(dir.path().to_str().unwrap()).unwrap();
    let opts = vault::InitOptions {
        object_lock_days: Some(30),
        ..small_opts()
    };
    let repo = Repository::init(loc.clone(), opts).await.unwrap();
    let acct = repo.init_account("a", &key(1, "a")).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3u64 {
        let w = acct.begin_snapshot(None).await.unwrap();
        w.put_bytes("x", Vec::new(), noise(i, 1000)).await.unwrap();
        ids.push(w.commit(serde_json::Value::Null).await.unwrap());
    }
    assert!(matches!(
        acct.forget(&ids[..1]).await,
        Err(vault::Error::Retained(_, _))
    ));
    let gone = acct
        .apply_retention(&vault::RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(gone.is_empty());
    assert_eq!(acct.snapshots().await.unwrap().len(), 3);
    // The setting survives reopening.
    assert_eq!(
        Repository::open(loc)
            .await
            .unwrap()
            .config()
            .object_lock_days,
        Some(30)
    );
}

/// Reading an item whose pack was altered fails with the pack named; it
/// never returns altered bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_tampered_data_fails() {
    let (dir, _loc, repo) = local_repo().await;
    let acct = repo.init_account("r", &key(1, "r")).await.unwrap();
    let w = acct.begin_snapshot(None).await.unwrap();
    let data = noise(4, 40_000);
    w.put_bytes("big", Vec::new(), data.clone()).await.unwrap();
    let id = w.commit(serde_json::Value::Null).await.unwrap();
    let snap = acct.snapshot(&id).await.unwrap();
    assert_eq!(acct.read_item_bytes(&snap, "big").await.unwrap(), data);
    let packs: Vec<_> = all_files(dir.path())
        .into_iter()
        .filter(|(n, _)| n.contains("/data/"))
        .collect();
    for (name, bytes) in &packs {
        let mut b = bytes.clone();
        let mid = b.len() / 2;
        b[mid] ^= 1;
        std::fs::write(dir.path().join(name), b).unwrap();
    }
    let fresh = Repository::open(Location::from_url(dir.path().to_str().unwrap()).unwrap())
        .await
        .unwrap()
        .open_account("r", &key(1, "r"))
        .await
        .unwrap();
    let err = fresh.read_item_bytes(&snap, "big").await.unwrap_err();
    assert!(matches!(err, vault::Error::Damaged { .. }), "{err}");
    assert!(
        packs
            .iter()
            .any(|(n, _)| err.to_string().contains(n.as_str())),
        "{err}"
    );
}
