//! S3 (moto), Azure Blob (Azurite) and GCS (gcp-storage-emulator) through
//! the destinations API, checked by reading the stores back directly.

mod common;
use common::*;
use destinations::{Credentials, DestinationError, StoredFile, Target};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;

const MIB: usize = 1024 * 1024;

async fn get(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    store
        .get(&Path::parse(key).unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn keys(store: &dyn ObjectStore) -> Vec<String> {
    use futures::TryStreamExt;
    let mut k: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    k.sort();
    k
}

/// The scenario every object store runs: a multi-part file through
/// `upload_file`, a small one through `create`, an aborted multi-part
/// upload; returns what `finish` said for the two files.
async fn upload_big_small_and_abort(
    target: &Target,
    creds: &Credentials,
    big: &[u8],
    small: &[u8],
) -> (StoredFile, StoredFile) {
    let sink = destinations::open(target, creds, None, "unused")
        .await
        .unwrap();
    let big_file = temp_file(big);
    let stored_big = destinations::upload_file(&*sink, "mailbox/Alice part 1.pst", big_file.path())
        .await
        .unwrap();
    assert_eq!(stored_big.size, big.len() as u64);
    let stored_small = write_in_pieces(&*sink, "mail/ä one.eml", small)
        .await
        .unwrap();
    assert_eq!(stored_small.size, small.len() as u64);
    let mut aborted = sink.create("mailbox/aborted.pst").await.unwrap();
    aborted
        .write(bytes::Bytes::from(noise(9, 12 * MIB)))
        .await
        .unwrap();
    aborted
        .write(bytes::Bytes::from(noise(10, 5 * MIB)))
        .await
        .unwrap();
    aborted.abort().await.unwrap();
    (stored_big, stored_small)
}

fn s3_creds(key: &str, secret: &str) -> Credentials {
    Credentials {
        access_key_id: Some(key.into()),
        secret_access_key: Some(secret.into()),
        ..Default::default()
    }
}

fn s3_reader(svc: &Service, bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(svc.url())
            .with_allow_http(true)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_multi_part_file_arrives_byte_for_byte_and_abort_leaves_nothing() {
    let moto = moto();
    s3_create_bucket(&moto, "exports");
    let target = Target::S3 {
        bucket: "exports".into(),
        prefix: "lifeboat/run-1".into(),
        region: None,
        endpoint: Some(moto.url()),
    };
    let big = noise(1, 20 * MIB + 7);
    let small = b"Subject: hi\r\n\r\nsmall".to_vec();
    let (b, s) = upload_big_small_and_abort(&target, &s3_creds("test", "test"), &big, &small).await;
    assert_eq!(
        b.location,
        "s3://exports/lifeboat/run-1/mailbox/Alice part 1.pst"
    );
    assert_eq!(s.location, "s3://exports/lifeboat/run-1/mail/ä one.eml");

    let store = s3_reader(&moto, "exports");
    assert_eq!(
        sha256_hex(&get(&*store, "lifeboat/run-1/mailbox/Alice part 1.pst").await),
        sha256_hex(&big)
    );
    assert_eq!(get(&*store, "lifeboat/run-1/mail/ä one.eml").await, small);
    assert_eq!(
        keys(&*store).await,
        vec![
            "lifeboat/run-1/mail/ä one.eml",
            "lifeboat/run-1/mailbox/Alice part 1.pst"
        ]
    );
    // The aborted multipart upload is gone too, not just invisible.
    let (status, listing) = http(
        moto.port,
        &format!(
            "GET /exports?uploads HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            moto.port
        ),
    );
    assert_eq!(status, 200, "{listing}");
    assert!(listing.contains("ListMultipartUploadsResult"), "{listing}");
    assert!(!listing.contains("<UploadId>"), "{listing}");

    // An export re-run overwrites.
    let sink = destinations::open(&target, &s3_creds("test", "test"), None, "x")
        .await
        .unwrap();
    write_in_pieces(&*sink, "mail/ä one.eml", b"second")
        .await
        .unwrap();
    assert_eq!(
        get(&*store, "lifeboat/run-1/mail/ä one.eml").await,
        b"second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_credentials_are_refused_clearly_without_the_secret() {
    let moto = moto();
    s3_create_bucket(&moto, "locked");
    moto_require_auth(&moto);
    let target = Target::parse(&format!("s3://locked/exports?endpoint={}", moto.url())).unwrap();
    let secret = "wrong-secret-9f8e7d6c5b4a";
    let sink = destinations::open(&target, &s3_creds("AKIAWRONGKEY000", secret), None, "x")
        .await
        .unwrap();
    for len in [100, 9 * MIB] {
        let err = write_in_pieces(&*sink, "a.bin", &noise(2, len))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, DestinationError::CredentialsRefused { .. }),
            "{msg}"
        );
        assert!(
            msg.starts_with("the credentials were refused by s3://locked/exports"),
            "{msg}"
        );
        assert!(
            !msg.contains(secret) && !format!("{err:?}").contains(secret),
            "{msg}"
        );
    }
}

fn azure_reader(svc: &Service, container: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(AZURITE_ACCOUNT)
            .with_access_key(AZURITE_KEY)
            .with_container_name(container)
            .with_endpoint(format!("{}/{AZURITE_ACCOUNT}", svc.url()))
            .with_allow_http(true)
            .build()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_multi_part_file_arrives_byte_for_byte_and_abort_leaves_nothing() {
    let azurite = azurite();
    azure_create_container(&azurite, "exports");
    let target = Target::Azure {
        account: AZURITE_ACCOUNT.into(),
        container: "exports".into(),
        prefix: "run-1".into(),
        endpoint: Some(format!("{}/{AZURITE_ACCOUNT}", azurite.url())),
    };
    let creds = Credentials {
        account_key: Some(AZURITE_KEY.into()),
        ..Default::default()
    };
    let big = noise(3, 20 * MIB + 11);
    let small = noise(4, 1000);
    let (b, _) = upload_big_small_and_abort(&target, &creds, &big, &small).await;
    assert_eq!(
        b.location,
        "az://devstoreaccount1/exports/run-1/mailbox/Alice part 1.pst"
    );
    let store = azure_reader(&azurite, "exports");
    assert_eq!(
        sha256_hex(&get(&*store, "run-1/mailbox/Alice part 1.pst").await),
        sha256_hex(&big)
    );
    assert_eq!(get(&*store, "run-1/mail/ä one.eml").await, small);
    assert_eq!(
        keys(&*store).await,
        vec!["run-1/mail/ä one.eml", "run-1/mailbox/Alice part 1.pst"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_wrong_key_is_refused_clearly_without_the_secret() {
    use base64::Engine;
    let azurite = azurite();
    azure_create_container(&azurite, "exports");
    let target = Target::parse(&format!(
        "az://{AZURITE_ACCOUNT}/exports/p?endpoint={}/{AZURITE_ACCOUNT}",
        azurite.url()
    ))
    .unwrap();
    let wrong = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    let creds = Credentials {
        account_key: Some(wrong.clone()),
        ..Default::default()
    };
    let sink = destinations::open(&target, &creds, None, "x")
        .await
        .unwrap();
    for len in [100, 9 * MIB] {
        let err = write_in_pieces(&*sink, "a.bin", &noise(5, len))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, DestinationError::CredentialsRefused { .. }),
            "{msg}"
        );
        assert!(
            msg.starts_with("the credentials were refused by az://devstoreaccount1/exports/p"),
            "{msg}"
        );
        assert!(
            !msg.contains(&wrong) && !format!("{err:?}").contains(&wrong),
            "{msg}"
        );
    }
}

fn gcs_target(svc: &Service) -> Target {
    Target::Gcs {
        bucket: "exports".into(),
        prefix: "run-1".into(),
        endpoint: Some(svc.url()),
    }
}

fn gcs_creds() -> Credentials {
    // The emulator accepts any token; a bearer token keeps object_store
    // from looking for Google's metadata server.
    Credentials {
        bearer_token: Some("emulator-token-123".into()),
        ..Default::default()
    }
}

/// An object's bytes through the JSON API (object_store's GCS reader
/// wants a Last-Modified header the emulator does not send).
async fn gcs_get(svc: &Service, key: &str) -> Vec<u8> {
    let name: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let resp = reqwest::get(format!(
        "{}/storage/v1/b/exports/o/{name}?alt=media",
        svc.url()
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200, "{key}");
    resp.bytes().await.unwrap().to_vec()
}

async fn gcs_keys(svc: &Service) -> Vec<String> {
    let listing: serde_json::Value = reqwest::get(format!("{}/storage/v1/b/exports/o", svc.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut k: Vec<String> = listing["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_multi_part_file_arrives_byte_for_byte_and_abort_leaves_nothing() {
    let emulator = gcs_emulator();
    gcs_create_bucket(&emulator, "exports");
    let big = noise(6, 20 * MIB + 13);
    let small = b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".to_vec();
    let (b, s) =
        upload_big_small_and_abort(&gcs_target(&emulator), &gcs_creds(), &big, &small).await;
    assert_eq!(b.location, "gs://exports/run-1/mailbox/Alice part 1.pst");
    assert_eq!(s.location, "gs://exports/run-1/mail/ä one.eml");
    assert_eq!(
        sha256_hex(&gcs_get(&emulator, "run-1/mailbox/Alice part 1.pst").await),
        sha256_hex(&big)
    );
    assert_eq!(gcs_get(&emulator, "run-1/mail/ä one.eml").await, small);
    assert_eq!(
        gcs_keys(&emulator).await,
        vec!["run-1/mail/ä one.eml", "run-1/mailbox/Alice part 1.pst"]
    );
    // Exactly one part, and an empty file.
    let sink = destinations::open(&gcs_target(&emulator), &gcs_creds(), None, "x")
        .await
        .unwrap();
    let one_part = noise(7, 8 * MIB);
    write_in_pieces(&*sink, "one-part.bin", &one_part)
        .await
        .unwrap();
    write_in_pieces(&*sink, "empty.bin", b"").await.unwrap();
    assert_eq!(
        sha256_hex(&gcs_get(&emulator, "run-1/one-part.bin").await),
        sha256_hex(&one_part)
    );
    assert_eq!(gcs_get(&emulator, "run-1/empty.bin").await, b"");
}

#[tokio::test]
async fn gcs_malformed_service_account_is_a_clear_error_without_the_key() {
    let creds = Credentials {
        service_account_json: Some(
            r#"{"private_key": "-----BEGIN PRIVATE KEY-----secretpart"#.into(),
        ),
        ..Default::default()
    };
    let err = destinations::open(&Target::parse("gs://exports/p").unwrap(), &creds, None, "x")
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(msg.contains("gs://exports/p"), "{msg}");
    assert!(!msg.contains("secretpart"), "{msg}");
}

/// The emulator accepts any token; GCS answers a bad one with 401 and a
/// JSON error, as this stand-in does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_refused_token_is_a_clear_error_without_the_token() {
    use axum::http::StatusCode;
    let app = axum::Router::new().fallback(|| async {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                serde_json::json!({"error": {"code": 401, "message": "Invalid Credentials"}}),
            ),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let target = Target::Gcs {
        bucket: "exports".into(),
        prefix: String::new(),
        endpoint: Some(base),
    };
    let token = "ya29.revoked-token-1234";
    let creds = Credentials {
        bearer_token: Some(token.into()),
        ..Default::default()
    };
    let sink = destinations::open(&target, &creds, None, "x")
        .await
        .unwrap();
    for len in [10, 9 * MIB] {
        let err = write_in_pieces(&*sink, "a.bin", &noise(1, len))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, DestinationError::CredentialsRefused { .. }),
            "{msg}"
        );
        assert!(
            msg.starts_with("the credentials were refused by gs://exports"),
            "{msg}"
        );
        assert!(msg.contains("Invalid Credentials"), "{msg}");
        assert!(
            !msg.contains(token) && !format!("{err:?}").contains(token),
            "{msg}"
        );
    }
}
