//! Export jobs end to end: a mailbox exported as PST to a download kept in
//! the vault, with its item log, activity and signed links; credentials that
//! never appear in payloads, errors or logs; links that expire and files
//! swept after them; and accounts that can never export each other's data.

use catalog::{EntityType, JobStatus, TaskSettings};
use destinations::{Credentials, Target};
use engine::export::{ExportFormat, ExportOptions};
use engine::restore::Selection;
use futures::StreamExt;
use serde_json::json;
use worker::{BackupSummary, ExportRequest, ExportSummary};

use crate::common::Env;

/// Discover and activate the first licensed, enabled mailbox.
async fn mailbox(env: &Env) -> (catalog::Task, catalog::Entity) {
    let task = env.task(TaskSettings::default()).await;
    worker::discover_task(&env.rt, env.account, task.id, None)
        .await
        .expect("discovery");
    let e = env
        .entities(&task)
        .await
        .into_iter()
        .find(|e| {
            e.entity_type == EntityType::User
                && e.properties.get("licensed") == Some(&json!(true))
                && e.properties.get("accountEnabled") == Some(&json!(true))
        })
        .expect("a licensed user");
    env.rt
        .catalog
        .activate_entities(env.account, &[e.id])
        .await
        .expect("activate");
    (task, e)
}

async fn backup(env: &Env, task: &catalog::Task, e: &catalog::Entity) -> BackupSummary {
    env.clock.advance(chrono::Duration::minutes(10));
    let enq = worker::enqueue_backups(&env.rt, task, Some(&[e.id]), "test", None)
        .await
        .expect("enqueue");
    let job = env.run_jobs(&[enq.jobs[0].id]).await.remove(0);
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
    serde_json::from_value(job.result.expect("result")).expect("summary")
}

fn request(
    task: &catalog::Task,
    e: &catalog::Entity,
    format: ExportFormat,
    target: Target,
) -> ExportRequest {
    ExportRequest {
        task_id: task.id,
        entity_id: e.id,
        snapshot_id: None,
        at: None,
        selection: Selection {
            sub_services: vec![engine::SubService::Mail],
            ..Default::default()
        },
        options: ExportOptions::new(format),
        target,
        sealed_credentials: None,
    }
}

worker_test!(
    async fn a_mailbox_exported_to_a_download_link(env) {
        let (task, alice) = mailbox(&env).await;
        backup(&env, &task, &alice).await;
        let messages = env
            .truth(&format!("users/{}", alice.external_id))
            .await
            .into_iter()
            .filter(|i| i["workload"] == "mail")
            .count() as u64;
        assert!(messages > 0);

        let req = request(&task, &alice, ExportFormat::Pst, Target::Download);
        let job = worker::enqueue_export(&env.rt.catalog, env.account, &req, &Credentials::default(), Some("test".into()))
            .await
            .expect("enqueue");
        let job = env.run_jobs(&[job.id]).await.remove(0);
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        let s: ExportSummary = serde_json::from_value(job.result.clone().expect("result")).expect("summary");
        assert_eq!(s.report.exported, messages, "{:?}", s.report);
        assert_eq!(s.report.failed, 0);
        assert_eq!(s.files.len(), 1, "{:?}", s.files);
        let file = &s.files[0];
        assert!(file.name.ends_with(".pst"), "{}", file.name);
        let expires = s.expires_at.expect("a download expires");
        assert_eq!(expires, env.rt.catalog.now() + worker::export::DOWNLOAD_VALID_FOR);
        let url = file.url.clone().expect("a link");
        assert!(url.starts_with(&format!("/api/exports/{}/download?file=", job.id)), "{url}");

        // The file is in the vault, whole, and a PST.
        let vault = env.rt.vault_account(env.account).await.expect("vault");
        let listed = destinations::download::list(&vault, &job.id.to_string()).await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size, file.size);
        let mut bytes = Vec::new();
        let mut stream = destinations::download::read(&vault, &job.id.to_string(), &file.name);
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk.expect("chunk"));
        }
        assert_eq!(bytes.len() as u64, file.size);
        assert_eq!(&bytes[..4], b"!BDN", "a PST starts with its magic");
        // Nothing stays on the worker's disk.
        let staging = env.rt.cache_dir().join("exports").join(job.id.to_string());
        assert!(!staging.exists(), "{} was left behind", staging.display());

        // Log, progress and activity.
        let log = env.rt.catalog.job_items(env.account, job.id, None, 0, 1000).await.expect("log");
        assert_eq!(log.len() as u64, messages);
        assert!(log.iter().all(|i| i.path.starts_with("mail/") && i.outcome == "exported"), "{:?}", &log[..1]);
        assert_eq!(job.progress.done_items, messages);
        let activity = env
            .rt
            .catalog
            .list_activity(env.account, &catalog::ActivityFilter::default())
            .await
            .expect("activity");
        let a = activity
            .iter()
            .find(|a| a.activity == catalog::ActivityKind::Export && a.job_id == Some(job.id))
            .expect("an export activity");
        assert_eq!(a.details["items"], json!(messages));

        // The link's signature is the account's: another account's key check fails.
        let other = env.rt.account_by_name("other").await.expect("account");
        let message = worker::export::download_message(job.id, &file.name, expires.timestamp());
        let sig = url.rsplit("sig=").next().expect("sig");
        assert!(env.rt.catalog.verify_signature(env.account, worker::export::DOWNLOAD_PURPOSE, &message, sig));
        assert!(!env.rt.catalog.verify_signature(other, worker::export::DOWNLOAD_PURPOSE, &message, sig));
        // Another account's vault has no such export.
        let theirs = env.rt.vault_account(other).await.expect("their vault");
        assert!(destinations::download::list(&theirs, &job.id.to_string()).await.map(|l| l.is_empty()).unwrap_or(true));

        // Swept only once the link expired.
        assert_eq!(worker::sweep_expired_downloads(&env.rt, env.rt.catalog.now()).await.expect("sweep"), 0);
        assert_eq!(destinations::download::list(&vault, &job.id.to_string()).await.expect("list").len(), 1);
        let later = expires + chrono::Duration::minutes(1);
        assert_eq!(worker::sweep_expired_downloads(&env.rt, later).await.expect("sweep"), 1);
        assert!(destinations::download::list(&vault, &job.id.to_string()).await.expect("list").is_empty());
    }
);

worker_test!(
    async fn credentials_stay_sealed_and_bad_requests_are_refused(env) {
        let (task, alice) = mailbox(&env).await;
        backup(&env, &task, &alice).await;
        const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
        // An S3 endpoint nothing listens on: the upload fails, after the
        // export itself ran.
        let mut target = Target::parse("s3://exports/lifeboat").expect("target");
        if let Target::S3 { endpoint, region, .. } = &mut target {
            *endpoint = Some("http://127.0.0.1:9".into());
            *region = Some("us-east-1".into());
        }
        let creds = Credentials {
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some(SECRET.into()),
            ..Default::default()
        };
        let req = request(&task, &alice, ExportFormat::Pst, target.clone());
        let job = worker::enqueue_export(&env.rt.catalog, env.account, &req, &creds, None).await.expect("enqueue");
        assert!(!job.payload.to_string().contains(SECRET), "the payload holds the secret");
        assert!(job.payload["sealed_credentials"].is_string());
        let job = env.run_jobs(&[job.id]).await.remove(0);
        assert_eq!(job.status, JobStatus::Failed);
        let error = job.error.clone().unwrap_or_default();
        assert!(!error.contains(SECRET), "{error}");
        let activity = env
            .rt
            .catalog
            .list_activity(env.account, &catalog::ActivityFilter::default())
            .await
            .expect("activity");
        assert!(activity.iter().all(|a| !a.details.to_string().contains(SECRET)));

        // Missing credentials, a format that does not suit the data, and a
        // foreign account are refused before anything runs.
        let e = worker::enqueue_export(&env.rt.catalog, env.account, &req, &Credentials::default(), None)
            .await
            .expect_err("no credentials");
        assert!(matches!(e, worker::WorkerError::Invalid(_)), "{e}");
        let mut bad = request(&task, &alice, ExportFormat::Vcf, Target::Download);
        bad.selection = Selection { sub_services: vec![engine::SubService::Mail], ..Default::default() };
        let e = worker::enqueue_export(&env.rt.catalog, env.account, &bad, &Credentials::default(), None)
            .await
            .expect_err("mail as vCard");
        assert!(matches!(e, worker::WorkerError::Invalid(_)), "{e}");
        let mut bad = request(&task, &alice, ExportFormat::Zip, Target::Download);
        bad.selection = Selection { sub_services: vec![engine::SubService::Drive], ..Default::default() };
        assert!(worker::enqueue_export(&env.rt.catalog, env.account, &bad, &Credentials::default(), None).await.is_err());
        let other = env.rt.account_by_name("other").await.expect("account");
        let ok = request(&task, &alice, ExportFormat::Pst, Target::Download);
        let e = worker::enqueue_export(&env.rt.catalog, other, &ok, &Credentials::default(), None)
            .await
            .expect_err("foreign entity");
        assert!(matches!(e, worker::WorkerError::Catalog(catalog::Error::NotFound(_))), "{e}");
    }
);
