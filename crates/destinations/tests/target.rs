//! Targets as URLs and JSON, credential checks, and secrets kept out of
//! `Debug` output.

use destinations::{Credentials, DestinationError, Target};

fn all_targets() -> Vec<Target> {
    vec![
        Target::Download,
        Target::S3 {
            bucket: "acme-exports".into(),
            prefix: "lifeboat/2026".into(),
            region: Some("eu-west-1".into()),
            endpoint: Some("https://s3.example.com:9000".into()),
        },
        Target::S3 {
            bucket: "acme".into(),
            prefix: String::new(),
            region: None,
            endpoint: None,
        },
        Target::Azure {
            account: "acmestore".into(),
            container: "exports".into(),
            prefix: "a/b".into(),
            endpoint: Some("http://127.0.0.1:10000/devstoreaccount1".into()),
        },
        Target::Gcs {
            bucket: "acme-gcs".into(),
            prefix: "x".into(),
            endpoint: None,
        },
        Target::Box {
            folder_id: "123456".into(),
            endpoint: None,
            upload_endpoint: Some("http://127.0.0.1:1/upload?x=1&y=2".into()),
        },
        Target::Dropbox {
            path: "/Backups/Exports Ü".into(),
            endpoint: Some("http://127.0.0.1:2/2".into()),
            content_endpoint: Some("http://127.0.0.1:3/2".into()),
        },
        Target::Dropbox {
            path: String::new(),
            endpoint: None,
            content_endpoint: None,
        },
    ]
}

#[test]
fn parse_round_trips_every_target_through_its_url_and_json() {
    for t in all_targets() {
        let url = t.to_url();
        assert_eq!(Target::parse(&url).unwrap(), t, "{url}");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), t, "{json}");
    }
}

#[test]
fn parse_reads_the_documented_forms() {
    assert_eq!(Target::parse(" Download ").unwrap(), Target::Download);
    assert_eq!(
        Target::parse("s3://bucket/some/prefix/").unwrap(),
        Target::S3 {
            bucket: "bucket".into(),
            prefix: "some/prefix".into(),
            region: None,
            endpoint: None
        }
    );
    assert_eq!(
        Target::parse("az://account/container/p").unwrap(),
        Target::Azure {
            account: "account".into(),
            container: "container".into(),
            prefix: "p".into(),
            endpoint: None
        }
    );
    assert_eq!(
        Target::parse("gs://bucket").unwrap(),
        Target::Gcs {
            bucket: "bucket".into(),
            prefix: String::new(),
            endpoint: None
        }
    );
    assert_eq!(
        Target::parse("box://0").unwrap(),
        Target::Box {
            folder_id: "0".into(),
            endpoint: None,
            upload_endpoint: None
        }
    );
    assert_eq!(
        Target::parse("dropbox:///path/in/dropbox").unwrap(),
        Target::Dropbox {
            path: "/path/in/dropbox".into(),
            endpoint: None,
            content_endpoint: None
        }
    );
    assert_eq!(
        serde_json::to_value(Target::parse("gs://bucket/p").unwrap()).unwrap(),
        serde_json::json!({"kind": "gcs", "bucket": "bucket", "prefix": "p", "endpoint": null})
    );
}

#[test]
fn parse_rejects_junk_with_a_clear_error() {
    for junk in [
        "",
        "downloads",
        "ftp://host/x",
        "s3://",
        "s3://Bad_Bucket!/x",
        "az://account",
        "az://acc-ount/container",
        "gs://ab",
        "box://",
        "box://12a",
        "dropbox://relative/path",
        "dropbox:///a/../b",
        "s3://bucket/p?colour=blue",
        "/local/path",
    ] {
        match Target::parse(junk) {
            Err(DestinationError::BadTarget(msg)) => {
                assert!(msg.contains(&format!("{junk:?}")), "{junk}: {msg}")
            }
            other => panic!("{junk:?} parsed as {other:?}"),
        }
    }
}

#[test]
fn describe_is_what_a_person_reads() {
    let d: Vec<String> = all_targets().iter().map(Target::describe).collect();
    assert_eq!(
        d,
        vec![
            "download link",
            "s3://acme-exports/lifeboat/2026",
            "s3://acme",
            "az://acmestore/exports/a/b",
            "gs://acme-gcs/x",
            "Box folder 123456",
            "Dropbox folder /Backups/Exports Ü",
            "Dropbox folder /",
        ]
    );
}

#[test]
fn check_credentials_names_what_is_missing() {
    let none = Credentials::default();
    let s3 = Target::parse("s3://bucket/p").unwrap();
    let err = s3.check_credentials(&none).unwrap_err().to_string();
    assert!(
        err.contains("s3://bucket/p") && err.contains("secret access key"),
        "{err}"
    );
    let half = Credentials {
        access_key_id: Some("AKIA".into()),
        secret_access_key: Some("  ".into()),
        ..Default::default()
    };
    assert!(s3.check_credentials(&half).is_err());
    let full = Credentials {
        access_key_id: Some("AKIA".into()),
        secret_access_key: Some("s".into()),
        ..Default::default()
    };
    assert!(s3.check_credentials(&full).is_ok());

    let az = Target::parse("az://acct/container").unwrap();
    assert!(az.check_credentials(&full).is_err());
    let sas = Credentials {
        sas_token: Some("sv=1&sig=x".into()),
        ..Default::default()
    };
    assert!(az.check_credentials(&sas).is_ok());

    let gs = Target::parse("gs://bucket").unwrap();
    assert!(gs.check_credentials(&sas).is_err());
    let bearer = Credentials {
        bearer_token: Some("ya29".into()),
        ..Default::default()
    };
    assert!(gs.check_credentials(&bearer).is_ok());

    let token = Credentials {
        access_token: Some("t".into()),
        ..Default::default()
    };
    for t in [
        Target::parse("box://1").unwrap(),
        Target::parse("dropbox:///x").unwrap(),
    ] {
        let err = t.check_credentials(&bearer).unwrap_err().to_string();
        assert!(err.contains("access token"), "{err}");
        assert!(t.check_credentials(&token).is_ok());
    }
    assert!(Target::Download.check_credentials(&none).is_ok());
}

#[test]
fn debug_of_credentials_shows_fields_but_no_secret() {
    let c = Credentials {
        access_key_id: Some("AKIAEXAMPLEKEYID".into()),
        secret_access_key: Some("wJalrXUtnFEMI/K7MDENG".into()),
        session_token: Some("FwoGZXIvYXdzEXAMPLE".into()),
        account_key: Some("Eby8vdM02xNOcqFl".into()),
        sas_token: Some("sv=2021&sig=abcdef".into()),
        service_account_json: Some(r#"{"private_key":"-----BEGIN"}"#.into()),
        bearer_token: Some("ya29.bearer".into()),
        access_token: Some("sl.dropbox-token".into()),
    };
    let shown = format!("{c:?} {c:#?}");
    for secret in c.clone().secret_strings() {
        assert!(!shown.contains(&secret), "{secret} in {shown}");
    }
    assert!(
        shown.contains("secret_access_key: Some(\"***\")"),
        "{shown}"
    );
    let empty = format!("{:?}", Credentials::default());
    assert!(empty.contains("access_token: None"), "{empty}");
    // Serializable for the vault, and back.
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<Credentials>(&json).unwrap(), c);
}

trait SecretStrings {
    fn secret_strings(self) -> Vec<String>;
}

impl SecretStrings for Credentials {
    fn secret_strings(self) -> Vec<String> {
        [
            self.access_key_id,
            self.secret_access_key,
            self.session_token,
            self.account_key,
            self.sas_token,
            self.service_account_json,
            self.bearer_token,
            self.access_token,
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[tokio::test]
async fn download_without_a_vault_is_a_clear_error() {
    let err = destinations::open(&Target::Download, &Credentials::default(), None, "e1")
        .await
        .err()
        .unwrap();
    assert!(matches!(err, DestinationError::NoVault), "{err}");
    assert!(err.to_string().contains("vault"));
}

#[tokio::test]
async fn open_checks_credentials_before_anything_else() {
    let err = destinations::open(
        &Target::parse("dropbox:///x").unwrap(),
        &Credentials::default(),
        None,
        "e1",
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(err, DestinationError::MissingCredentials { .. }),
        "{err}"
    );
}

#[test]
fn endpoints_given_beside_the_url_go_where_they_belong() {
    let t = Target::parse("s3://bucket/p")
        .and_then(|t| {
            t.with_endpoint(
                Some("http://127.0.0.1:9000".into()),
                Some("eu-west-1".into()),
            )
        })
        .expect("s3");
    match t {
        Target::S3 {
            endpoint, region, ..
        } => {
            assert_eq!(endpoint.as_deref(), Some("http://127.0.0.1:9000"));
            assert_eq!(region.as_deref(), Some("eu-west-1"));
        }
        other => panic!("not s3: {other:?}"),
    }
    let az = Target::parse("az://acct/cont/p")
        .and_then(|t| t.with_endpoint(Some("http://127.0.0.1:10000/acct".into()), None))
        .expect("azure");
    assert!(matches!(
        az,
        Target::Azure {
            endpoint: Some(_),
            ..
        }
    ));
    // Nothing given keeps what the URL said.
    let kept = Target::parse("gs://bucket/p?endpoint=http://127.0.0.1:9023")
        .and_then(|t| t.with_endpoint(None, Some(" ".into())))
        .expect("gcs");
    assert!(matches!(kept, Target::Gcs { endpoint: Some(e), .. } if e == "http://127.0.0.1:9023"));
    assert!(
        Target::Download
            .with_endpoint(Some("http://x".into()), None)
            .is_err()
    );
    let gcs = Target::parse("gs://bucket/p").expect("gcs");
    assert!(
        gcs.with_endpoint(None, Some("r".into())).is_err(),
        "a region is for S3 only"
    );
}
