//! Box uploads against an in-process imitation of Box's documented API
//! (tests/common/boxapi.rs), which checks what Box checks.

mod common;
use common::boxapi::{self, EXPORTS};
use common::*;
use destinations::{Credentials, DestinationError, OpenOptions};

const MIB: usize = 1024 * 1024;
const TOKEN: &str = "box-token-4f1c2a";

fn creds(token: &str) -> Credentials {
    Credentials {
        access_token: Some(token.into()),
        ..Default::default()
    }
}

fn quick() -> OpenOptions {
    OpenOptions {
        max_retries: 3,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_and_direct_uploads_arrive_byte_for_byte_in_sub_folders() {
    let server = boxapi::start(TOKEN, 8 * MIB as u64).await;
    server.state.lock().unwrap().commit_busy = true;
    let sink = destinations::open_with(&server.target(EXPORTS), &creds(TOKEN), None, "x", &quick())
        .await
        .unwrap();
    // 20 MiB + 3: a chunked session of parts 8, 8 and 4 MiB + 3 bytes.
    let big = noise(1, 20 * MIB + 3);
    let f = temp_file(&big);
    let stored = destinations::upload_file(&*sink, "mailbox/Alice part 1.pst", f.path())
        .await
        .unwrap();
    assert_eq!(stored.size, big.len() as u64);
    // Through create (spooled), also chunked.
    let big2 = noise(2, 21 * MIB);
    write_in_pieces(&*sink, "mailbox/Alice part 2.pst", &big2)
        .await
        .unwrap();
    // Small: one form POST.
    let small = b"From: x\r\n\r\nsmall".to_vec();
    write_in_pieces(&*sink, "mail/one.eml", &small)
        .await
        .unwrap();

    let st = server.state.lock().unwrap();
    let mailbox = st.folder_in(EXPORTS, "mailbox").expect("mailbox folder");
    let mail = st.folder_in(EXPORTS, "mail").expect("mail folder");
    let f1 = st.file_in(&mailbox, "Alice part 1.pst").unwrap();
    assert_eq!(
        stored.location,
        format!("Box file {} in folder {mailbox}", f1.id)
    );
    assert_eq!(f1.versions.len(), 1);
    assert_eq!(sha256_hex(&f1.versions[0]), sha256_hex(&big));
    let f2 = st.file_in(&mailbox, "Alice part 2.pst").unwrap();
    assert_eq!(sha256_hex(&f2.versions[0]), sha256_hex(&big2));
    assert_eq!(st.file_in(&mail, "one.eml").unwrap().versions, vec![small]);
    assert!(st.sessions.is_empty(), "sessions left open");
    assert!(
        !st.commit_busy,
        "the 202 answer to a commit was not retried"
    );
    assert_eq!(st.folders.len(), 4, "one folder per sub-folder name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_uploads_new_versions_small_and_chunked() {
    let server = boxapi::start(TOKEN, 8 * MIB as u64).await;
    for round in 0..2u64 {
        // A fresh sink each round: folders are found through 409 answers.
        let sink =
            destinations::open_with(&server.target(EXPORTS), &creds(TOKEN), None, "x", &quick())
                .await
                .unwrap();
        write_in_pieces(&*sink, "mail/one.eml", &noise(10 + round, 1000))
            .await
            .unwrap();
        let f = temp_file(&noise(20 + round, 20 * MIB));
        destinations::upload_file(&*sink, "mail/big.pst", f.path())
            .await
            .unwrap();
    }
    let st = server.state.lock().unwrap();
    let mail = st.folder_in(EXPORTS, "mail").unwrap();
    let small = st.file_in(&mail, "one.eml").unwrap();
    assert_eq!(small.versions, vec![noise(10, 1000), noise(11, 1000)]);
    let big = st.file_in(&mail, "big.pst").unwrap();
    assert_eq!(big.versions.len(), 2);
    assert_eq!(
        sha256_hex(&big.versions[1]),
        sha256_hex(&noise(21, 20 * MIB))
    );
    assert_eq!(st.files.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_refused_clearly_without_the_token() {
    let server = boxapi::start(TOKEN, 8 * MIB as u64).await;
    let wrong = "box-wrong-token-77aa";
    let sink = destinations::open_with(&server.target(EXPORTS), &creds(wrong), None, "x", &quick())
        .await
        .unwrap();
    for (name, len) in [("a.eml", 10), ("sub/b.pst", 20 * MIB)] {
        let err = write_in_pieces(&*sink, name, &noise(3, len))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, DestinationError::CredentialsRefused { .. }),
            "{msg}"
        );
        assert!(
            msg.starts_with("the credentials were refused by Box folder 100"),
            "{msg}"
        );
        assert!(
            !msg.contains(wrong) && !format!("{err:?}").contains(wrong),
            "{msg}"
        );
    }
    assert!(server.state.lock().unwrap().files.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_as_retry_after_says() {
    let server = boxapi::start(TOKEN, 8 * MIB as u64).await;
    server.state.lock().unwrap().throttle = 2;
    let sink = destinations::open_with(&server.target(EXPORTS), &creds(TOKEN), None, "x", &quick())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    write_in_pieces(&*sink, "a.eml", b"hello").await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let st = server.state.lock().unwrap();
    assert_eq!(st.throttled, 2);
    assert_eq!(
        st.file_in(EXPORTS, "a.eml").unwrap().versions,
        vec![b"hello".to_vec()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_and_failure_leave_nothing_behind() {
    let server = boxapi::start(TOKEN, 8 * MIB as u64).await;
    let sink = destinations::open_with(&server.target(EXPORTS), &creds(TOKEN), None, "x", &quick())
        .await
        .unwrap();
    // Aborted through create: nothing reached Box.
    let mut upload = sink.create("big.pst").await.unwrap();
    upload
        .write(bytes::Bytes::from(noise(4, 21 * MIB)))
        .await
        .unwrap();
    upload.abort().await.unwrap();
    // A chunked upload whose second part keeps failing: the session is
    // deleted, no file appears.
    server.state.lock().unwrap().fail_part_at = Some(8 * MIB as u64);
    let f = temp_file(&noise(5, 20 * MIB));
    let err = destinations::upload_file(&*sink, "big.pst", f.path())
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err}");
    assert!(err.to_string().contains("Box folder 100"), "{err}");
    let st = server.state.lock().unwrap();
    assert!(st.files.is_empty());
    assert!(st.sessions.is_empty());
    assert_eq!(st.deleted_sessions, 1);
}
