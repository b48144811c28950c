//! The download-link target on a real (local) vault: finished files only,
//! byte-for-byte reads, sealed per account, delete removes everything.

mod common;
use common::*;
use destinations::{Credentials, DestinationError, Target, download};
use futures::TryStreamExt;

async fn read_all(
    vault: &vault::Account,
    export: &str,
    name: &str,
) -> Result<Vec<u8>, DestinationError> {
    let parts: Vec<bytes::Bytes> = download::read(vault, export, name).try_collect().await?;
    Ok(parts.concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_list_read_isolate_and_delete() {
    let (dir, repo) = local_repo().await;
    let alice = repo
        .init_account("alice", &account_key(1, "alice"))
        .await
        .unwrap();
    let bob = repo
        .init_account("bob", &account_key(1, "bob"))
        .await
        .unwrap();
    let sink = destinations::open(
        &Target::Download,
        &Credentials::default(),
        Some(&alice),
        "exp-1",
    )
    .await
    .unwrap();

    // A 20 MiB file (three parts of 8 MiB) through upload_file, a small one
    // through create, and one left unfinished.
    let big = noise(1, 20 * 1024 * 1024 + 123);
    let big_file = temp_file(&big);
    let stored =
        destinations::upload_file(&*sink, "mailbox/Alice Ünïcode part 1.pst", big_file.path())
            .await
            .unwrap();
    assert_eq!(stored.size, big.len() as u64);
    assert_eq!(stored.name, "mailbox/Alice Ünïcode part 1.pst");
    let small = b"From: a@example.com\r\n\r\nhello".to_vec();
    write_in_pieces(&*sink, "mail/one.eml", &small)
        .await
        .unwrap();
    let mut unfinished = sink.create("mail/unfinished.eml").await.unwrap();
    unfinished
        .write(bytes::Bytes::from(noise(2, 9 * 1024 * 1024)))
        .await
        .unwrap();

    let listed = download::list(&alice, "exp-1").await.unwrap();
    let names: Vec<(&str, u64)> = listed.iter().map(|f| (f.name.as_str(), f.size)).collect();
    assert_eq!(
        names,
        vec![
            ("mail/one.eml", small.len() as u64),
            ("mailbox/Alice Ünïcode part 1.pst", big.len() as u64)
        ]
    );
    assert!(matches!(
        read_all(&alice, "exp-1", "mail/unfinished.eml").await,
        Err(DestinationError::NoSuchFile { .. })
    ));

    // Byte for byte, streamed in parts of at most 8 MiB.
    let parts: Vec<bytes::Bytes> =
        download::read(&alice, "exp-1", "mailbox/Alice Ünïcode part 1.pst")
            .try_collect()
            .await
            .unwrap();
    assert_eq!(parts.len(), 3);
    assert!(
        parts
            .iter()
            .all(|p| p.len() <= destinations::DEFAULT_PART_SIZE)
    );
    assert_eq!(sha256_hex(&parts.concat()), sha256_hex(&big));
    assert_eq!(
        read_all(&alice, "exp-1", "mail/one.eml").await.unwrap(),
        small
    );

    // Nothing readable at rest.
    let marker = &big[5_000_000..5_000_064];
    for (path, bytes) in all_files(dir.path()) {
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "plaintext in {path}"
        );
        assert!(!path.contains("Alice"), "file name visible in {path}");
    }

    // Another account of the same repository sees and reads nothing.
    assert!(download::list(&bob, "exp-1").await.unwrap().is_empty());
    assert!(read_all(&bob, "exp-1", "mail/one.eml").await.is_err());

    // Aborting the unfinished file leaves none of its parts.
    let before = all_files(dir.path()).len();
    unfinished.abort().await.unwrap();
    assert_eq!(all_files(dir.path()).len(), before - 1);

    // Rewriting a name replaces it, shorter, without leftover parts.
    let shorter = noise(3, 8 * 1024 * 1024 + 5);
    write_in_pieces(&*sink, "mailbox/Alice Ünïcode part 1.pst", &shorter)
        .await
        .unwrap();
    assert_eq!(
        read_all(&alice, "exp-1", "mailbox/Alice Ünïcode part 1.pst")
            .await
            .unwrap(),
        shorter
    );
    let objects = alice.list_objects("exports/exp-1").await.unwrap();
    // one.eml: 1 part + manifest; the rewritten file: 2 parts + manifest
    // (its old third part is gone).
    assert_eq!(objects.len(), 5, "{objects:?}");

    // An empty file is a file too.
    write_in_pieces(&*sink, "empty.txt", b"").await.unwrap();
    assert_eq!(read_all(&alice, "exp-1", "empty.txt").await.unwrap(), b"");

    download::delete(&alice, "exp-1").await.unwrap();
    assert!(download::list(&alice, "exp-1").await.unwrap().is_empty());
    assert!(alice.list_objects("exports").await.unwrap().is_empty());
    assert!(read_all(&alice, "exp-1", "mail/one.eml").await.is_err());
}

#[tokio::test]
async fn a_damaged_part_is_reported_not_served() {
    let (dir, repo) = local_repo().await;
    let alice = repo
        .init_account("alice", &account_key(2, "alice"))
        .await
        .unwrap();
    let sink = destinations::open(
        &Target::Download,
        &Credentials::default(),
        Some(&alice),
        "exp-2",
    )
    .await
    .unwrap();
    write_in_pieces(&*sink, "f.bin", &noise(4, 100_000))
        .await
        .unwrap();
    let part = all_files(dir.path())
        .into_iter()
        .find(|(p, _)| p.ends_with("p000000"))
        .unwrap();
    let path = dir.path().join(&part.0);
    let mut bytes = part.1;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(path, bytes).unwrap();
    let err = read_all(&alice, "exp-2", "f.bin").await.unwrap_err();
    assert!(
        matches!(err, DestinationError::Vault(vault::Error::Damaged { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn bad_export_ids_and_names_are_refused() {
    let (_dir, repo) = local_repo().await;
    let alice = repo
        .init_account("alice", &account_key(3, "alice"))
        .await
        .unwrap();
    assert!(matches!(
        destinations::open(
            &Target::Download,
            &Credentials::default(),
            Some(&alice),
            "../x"
        )
        .await,
        Err(DestinationError::BadTarget(_))
    ));
    let sink = destinations::open(
        &Target::Download,
        &Credentials::default(),
        Some(&alice),
        "e",
    )
    .await
    .unwrap();
    for bad in ["", "../x", "a//b", "/abs"] {
        assert!(
            matches!(sink.create(bad).await, Err(DestinationError::BadName(_))),
            "{bad:?}"
        );
    }
}
