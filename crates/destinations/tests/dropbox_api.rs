//! Dropbox uploads against an in-process imitation of Dropbox's documented
//! upload session API (tests/common/dropboxapi.rs).

mod common;
use common::dropboxapi;
use common::*;
use destinations::{Credentials, DestinationError, OpenOptions};

const MIB: usize = 1024 * 1024;
const TOKEN: &str = "sl.dropbox-token-93bd";

fn creds(token: &str) -> Credentials {
    Credentials {
        access_token: Some(token.into()),
        ..Default::default()
    }
}

fn parts_of(part_size: usize) -> OpenOptions {
    OpenOptions {
        part_size,
        max_retries: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_part_and_small_files_arrive_byte_for_byte() {
    let server = dropboxapi::start(TOKEN).await;
    let sink = destinations::open_with(
        &server.target("/Exports/Run 1"),
        &creds(TOKEN),
        None,
        "x",
        &parts_of(4 * MIB),
    )
    .await
    .unwrap();
    let big = noise(1, 20 * MIB + 5);
    let f = temp_file(&big);
    let stored = destinations::upload_file(&*sink, "mailbox/Müller part 1.pst", f.path())
        .await
        .unwrap();
    assert_eq!(stored.size, big.len() as u64);
    assert_eq!(
        stored.location,
        "Dropbox /Exports/Run 1/mailbox/Müller part 1.pst"
    );
    let small = b"BEGIN:VCARD\r\nEND:VCARD\r\n".to_vec();
    write_in_pieces(&*sink, "contacts.vcf", &small)
        .await
        .unwrap();
    write_in_pieces(&*sink, "empty.txt", b"").await.unwrap();

    let got = server
        .file("/Exports/Run 1/mailbox/Müller part 1.pst")
        .unwrap();
    assert_eq!(sha256_hex(&got), sha256_hex(&big));
    assert_eq!(server.file("/Exports/Run 1/contacts.vcf").unwrap(), small);
    assert_eq!(server.file("/Exports/Run 1/empty.txt").unwrap(), b"");
    let st = server.state.lock().unwrap();
    // start + 4 appends + finish for the big file, in 4 MiB parts.
    assert_eq!(
        &st.bodies[..6],
        &[4 * MIB, 4 * MIB, 4 * MIB, 4 * MIB, 4 * MIB, 5],
        "{:?}",
        st.bodies
    );
    assert!(st.sessions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_overwrites() {
    let server = dropboxapi::start(TOKEN).await;
    let sink = destinations::open_with(
        &server.target(""),
        &creds(TOKEN),
        None,
        "x",
        &parts_of(4 * MIB),
    )
    .await
    .unwrap();
    write_in_pieces(&*sink, "a.zip", &noise(2, 9 * MIB))
        .await
        .unwrap();
    write_in_pieces(&*sink, "a.zip", &noise(3, 100))
        .await
        .unwrap();
    assert_eq!(server.file("/a.zip").unwrap(), noise(3, 100));
    assert_eq!(server.state.lock().unwrap().files.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_is_refused_clearly_without_the_token() {
    let server = dropboxapi::start(TOKEN).await;
    let wrong = "sl.wrong-token-5566";
    let sink = destinations::open_with(
        &server.target("/E"),
        &creds(wrong),
        None,
        "x",
        &parts_of(4 * MIB),
    )
    .await
    .unwrap();
    let err = write_in_pieces(&*sink, "a.eml", b"x").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, DestinationError::CredentialsRefused { .. }),
        "{msg}"
    );
    assert!(
        msg.starts_with("the credentials were refused by Dropbox folder /E"),
        "{msg}"
    );
    assert!(msg.contains("invalid_access_token"), "{msg}");
    assert!(
        !msg.contains(wrong) && !format!("{err:?}").contains(wrong),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_waited_out_and_abort_leaves_no_file() {
    let server = dropboxapi::start(TOKEN).await;
    server.state.lock().unwrap().throttle = 1;
    let sink = destinations::open_with(
        &server.target("/E"),
        &creds(TOKEN),
        None,
        "x",
        &parts_of(4 * MIB),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    write_in_pieces(&*sink, "a.eml", b"hello").await.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(server.state.lock().unwrap().throttled, 1);
    assert_eq!(server.file("/E/a.eml").unwrap(), b"hello");

    let mut upload = sink.create("b.pst").await.unwrap();
    upload
        .write(bytes::Bytes::from(noise(4, 10 * MIB)))
        .await
        .unwrap();
    upload.abort().await.unwrap();
    assert!(server.file("/E/b.pst").is_none());
    assert_eq!(server.state.lock().unwrap().files.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_whose_answer_was_lost_is_not_sent_twice() {
    let server = dropboxapi::start(TOKEN).await;
    server.state.lock().unwrap().lose_append_answer = true;
    let sink = destinations::open_with(
        &server.target("/E"),
        &creds(TOKEN),
        None,
        "x",
        &parts_of(4 * MIB),
    )
    .await
    .unwrap();
    let data = noise(7, 13 * MIB);
    write_in_pieces(&*sink, "c.pst", &data).await.unwrap();
    assert_eq!(
        sha256_hex(&server.file("/E/c.pst").unwrap()),
        sha256_hex(&data)
    );
    assert!(!server.state.lock().unwrap().lose_append_answer);
}
