//! S3 Object Lock on a real S3 server (moto in server mode): a bucket with
//! Object Lock and a default COMPLIANCE retention, a repository initialised
//! with `object_lock_days`, and proof that every object is locked, that
//! forget refuses, that gc leaves locked packs alone without failing, and
//! that verify passes.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use vault::{InitOptions, Location, NoProgress, Repository};

const BUCKET: &str = "locked-vault";
const REGION: &str = "us-east-1";

struct Response {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

/// One SigV4-signed request to moto (signed with object_store's own signer,
/// so it is the same signature the vault sends).
async fn s3(
    svc: &Service,
    method: http::Method,
    path_and_query: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Response {
    use object_store::client::HttpRequestBody;
    let url = format!("http://127.0.0.1:{}{path_and_query}", svc.port);
    let mut builder = http::Request::builder().method(method.clone()).uri(&url);
    for (k, v) in headers {
        builder = builder.header(*k, v);
    }
    let mut request = builder
        .body(HttpRequestBody::from(body.clone()))
        .expect("request");
    let credential = object_store::aws::AwsCredential {
        key_id: "test".into(),
        secret_key: "test".into(),
        token: None,
    };
    object_store::aws::AwsAuthorizer::new(&credential, "s3", REGION)
        .try_authorize(&mut request, None)
        .expect("sign");
    let client = reqwest::Client::new();
    let mut rb = client.request(method, &url).body(body);
    for (k, v) in request.headers() {
        rb = rb.header(k.as_str(), v.as_bytes());
    }
    let resp = rb.send().await.expect("moto answers");
    let status = resp.status().as_u16();
    let mut out_headers = http::HeaderMap::new();
    for (k, v) in resp.headers() {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_str().as_bytes()),
            http::HeaderValue::from_bytes(v.as_bytes()),
        ) {
            out_headers.insert(k, v);
        }
    }
    let body = resp.text().await.unwrap_or_default();
    Response {
        status,
        headers: out_headers,
        body,
    }
}

/// Every (key, version id, is-delete-marker) under `prefix`.
async fn versions(svc: &Service, prefix: &str) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    let mut marker = String::new();
    loop {
        let r = s3(
            svc,
            http::Method::GET,
            &format!("/{BUCKET}?versions&prefix={prefix}{marker}"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, 200, "ListObjectVersions: {}", r.body);
        for (tag, is_marker) in [("Version", false), ("DeleteMarker", true)] {
            for part in r.body.split(&format!("<{tag}>")).skip(1) {
                let part = part.split(&format!("</{tag}>")).next().unwrap_or_default();
                out.push((
                    xml_field(part, "Key"),
                    xml_field(part, "VersionId"),
                    is_marker,
                ));
            }
        }
        if xml_field(&r.body, "IsTruncated") != "true" {
            break;
        }
        marker = format!(
            "&key-marker={}&version-id-marker={}",
            xml_field(&r.body, "NextKeyMarker"),
            xml_field(&r.body, "NextVersionIdMarker")
        );
    }
    out
}

fn xml_field(xml: &str, field: &str) -> String {
    xml.split(&format!("<{field}>"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("</{field}>")).next())
        .unwrap_or_default()
        .to_string()
}

/// Create the bucket with Object Lock and a default COMPLIANCE retention.
async fn locked_bucket(svc: &Service, days: u32) {
    let r = s3(
        svc,
        http::Method::PUT,
        &format!("/{BUCKET}"),
        &[("x-amz-bucket-object-lock-enabled", "true".into())],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200, "CreateBucket: {}", r.body);
    let config = format!(
        r#"<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>{days}</Days></DefaultRetention></Rule></ObjectLockConfiguration>"#
    );
    let r = s3(
        svc,
        http::Method::PUT,
        &format!("/{BUCKET}?object-lock"),
        &[("content-type", "application/xml".into())],
        config.into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "PutObjectLockConfiguration: {}", r.body);
}

fn location(svc: &Service) -> Location {
    // The production builder (checksums that Object Lock buckets demand),
    // pointed at moto.
    let store = vault::s3_builder_from_env()
        .with_bucket_name(BUCKET)
        .with_region(REGION)
        .with_endpoint(format!("http://127.0.0.1:{}", svc.port))
        .with_allow_http(true)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_virtual_hosted_style_request(false)
        .build()
        .unwrap();
    Location::new(Arc::new(store.clone()), "repo").with_s3_object_lock(store, REGION)
}

async fn retained_until(svc: &Service, key: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let r = s3(
        svc,
        http::Method::HEAD,
        &format!("/{BUCKET}/{key}"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200, "HEAD {key}");
    r.headers
        .get("x-amz-object-lock-retain-until-date")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
        .unwrap_or_else(|| panic!("{key} has a retain-until date"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_lock_on_s3() {
    let svc = moto();
    let days = 1;
    locked_bucket(&svc, days).await;
    let loc = location(&svc);
    let repo = Repository::init(
        loc.clone(),
        InitOptions {
            object_lock_days: Some(days),
            ..small_opts()
        },
    )
    .await
    .unwrap();
    let acct = repo
        .init_account("locked", &key(1, "locked"))
        .await
        .unwrap()
        .with_timing(fast_timing());

    // Three snapshots, the later ones replacing items of the earlier ones.
    let mut ids = Vec::new();
    let mut parent = None;
    for round in 0..3u64 {
        let w = acct.begin_snapshot(parent.as_ref()).await.unwrap();
        if parent.is_some() {
            w.keep_from_parent("").await.unwrap();
        }
        for i in 0..3u64 {
            w.put_bytes(
                &format!("box/{i}"),
                Vec::new(),
                noise(round * 10 + i, 50_000),
            )
            .await
            .unwrap();
        }
        let id = w.commit(serde_json::Value::Null).await.unwrap();
        parent = Some(id.clone());
        ids.push(id);
    }
    let data_keys = |v: Vec<(String, String, bool)>| -> Vec<String> {
        v.into_iter()
            .filter(|(k, _, m)| !m && k.contains("/data/"))
            .map(|(k, _, _)| k)
            .collect()
    };
    let committed_packs = data_keys(versions(&svc, "repo/").await);
    // Garbage: a writer that uploads packs and is then abandoned.
    {
        let w = acct.begin_snapshot(None).await.unwrap();
        w.put_bytes("abandoned", Vec::new(), noise(999, 400_000))
            .await
            .unwrap();
        drop(w);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let abandoned_pack = data_keys(versions(&svc, "repo/").await)
        .into_iter()
        .find(|k| !committed_packs.contains(k))
        .expect("the abandoned writer uploaded a pack");

    // (a) Every object version the vault wrote is locked in COMPLIANCE mode
    // until at least `days` after now-ish, and a delete of that version is
    // refused.
    let before = versions(&svc, "repo/").await;
    let data_versions: Vec<&(String, String, bool)> = before
        .iter()
        .filter(|(k, _, m)| !m && !k.contains("/locks/"))
        .collect();
    assert!(
        data_versions
            .iter()
            .filter(|(k, _, _)| k.contains("/data/"))
            .count()
            >= 6,
        "several packs written: {before:?}"
    );
    let soon = chrono::Utc::now() + chrono::Duration::hours(23);
    for (k, v, _) in &data_versions {
        let r = s3(
            &svc,
            http::Method::HEAD,
            &format!("/{BUCKET}/{k}?versionId={v}"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, 200, "HEAD {k}");
        assert_eq!(
            r.headers
                .get("x-amz-object-lock-mode")
                .and_then(|v| v.to_str().ok()),
            Some("COMPLIANCE"),
            "{k} is locked"
        );
        let until = r
            .headers
            .get("x-amz-object-lock-retain-until-date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc3339(v).ok())
            .unwrap_or_else(|| panic!("{k} has a retain-until date"));
        assert!(until > soon, "{k} retained until {until}");
    }
    let (pack_key, pack_version, _) = data_versions
        .iter()
        .find(|(k, _, _)| k.contains("/data/"))
        .unwrap();
    let r = s3(
        &svc,
        http::Method::DELETE,
        &format!("/{BUCKET}/{pack_key}?versionId={pack_version}"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 403, "deleting a locked version is refused");
    // (moto's GetObjectRetention answers with the object's body, so the
    // retention is read from HEAD above, as S3 also reports it there.)
    let r = s3(
        &svc,
        http::Method::HEAD,
        &format!("/{BUCKET}/{pack_key}"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 200, "the pack is still there");

    // (b) forget of a snapshot under retention is refused, nothing deleted.
    let err = acct.forget(&ids[..1]).await.unwrap_err();
    assert!(matches!(err, vault::Error::Retained(_, _)), "{err}");
    let gone = acct
        .apply_retention(&vault::RetentionPolicy {
            keep_last: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(gone.is_empty(), "retention skips locked snapshots");
    assert_eq!(acct.snapshots().await.unwrap().len(), 3);

    // (c) gc neither condemns nor deletes locked packs, and does not fail.
    // It extends the retention of what the snapshots still use, so data
    // the newest snapshot shares with older ones stays locked for the
    // full retention from now.
    let oldest_pack = committed_packs[0].clone();
    let until_before = retained_until(&svc, &oldest_pack).await;
    let garbage_until_before = retained_until(&svc, &abandoned_pack).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r1 = acct.gc().await.unwrap();
    assert!(r1.retention_extended > 6, "{r1:?}");
    let until_after = retained_until(&svc, &oldest_pack).await;
    assert!(
        until_after > until_before,
        "retention of {oldest_pack} extended: {until_before} -> {until_after}"
    );
    assert_eq!(
        retained_until(&svc, &abandoned_pack).await,
        garbage_until_before,
        "garbage is not kept longer"
    );
    let r2 = acct.gc().await.unwrap();
    assert!(
        r1.locked > 0,
        "the abandoned writer's packs are locked: {r1:?}"
    );
    assert_eq!((r1.condemned, r1.deleted_packs), (0, 0), "{r1:?}");
    assert_eq!((r2.condemned, r2.deleted_packs), (0, 0), "{r2:?}");
    let after = versions(&svc, "repo/").await;
    let markers: BTreeMap<&str, &str> = after
        .iter()
        .filter(|(k, _, m)| *m && (k.contains("/data/") || k.contains("/snapshots/")))
        .map(|(k, v, _)| (k.as_str(), v.as_str()))
        .collect();
    assert!(
        markers.is_empty(),
        "nothing hid a pack or snapshot behind a delete marker: {markers:?}"
    );
    for (k, v, _) in &data_versions {
        assert!(
            after.iter().any(|(k2, v2, m)| k2 == k && v2 == v && !m),
            "{k} version {v} still stored"
        );
    }

    // (d) verify passes and the data reads back, from a fresh handle.
    let fresh = Repository::open(location(&svc))
        .await
        .unwrap()
        .open_account("locked", &key(1, "locked"))
        .await
        .unwrap();
    let report = fresh.verify(true, &NoProgress).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.snapshots, 3);
    let last = fresh.snapshot(&ids[2]).await.unwrap();
    assert_eq!(
        fresh.read_item_bytes(&last, "box/1").await.unwrap(),
        noise(21, 50_000)
    );
}
