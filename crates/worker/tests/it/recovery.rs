//! Restore jobs end to end: the snapshot chosen by id, by date or latest;
//! what a restore brings back, checked against the simulator's truth; the
//! per-item log; a deleted mailbox; and accounts that can never restore
//! each other's data.

use std::collections::BTreeMap;

use catalog::{EntityType, JobStatus, TaskSettings};
use engine::restore::{RestoreMode, RestoreOptions, Selection};
use serde_json::json;
use worker::{BackupSummary, RestoreDestination, RestoreRequest, RestoreSummary};

use crate::common::Env;

/// Discover and activate the first two licensed, enabled mailboxes.
async fn two_mailboxes(env: &Env) -> (catalog::Task, catalog::Entity, catalog::Entity) {
    let task = env.task(TaskSettings::default()).await;
    worker::discover_task(&env.rt, env.account, task.id, None)
        .await
        .expect("discovery");
    let mut es: Vec<_> = env
        .entities(&task)
        .await
        .into_iter()
        .filter(|e| {
            e.entity_type == EntityType::User
                && e.properties.get("licensed") == Some(&json!(true))
                && e.properties.get("accountEnabled") == Some(&json!(true))
        })
        .take(2)
        .collect();
    assert_eq!(es.len(), 2, "two licensed users");
    env.rt
        .catalog
        .activate_entities(env.account, &[es[0].id, es[1].id])
        .await
        .expect("activate");
    let b = es.remove(1);
    (task, es.remove(0), b)
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

/// The mailbox's messages in the simulator: folder path and subject → count.
async fn mail_truth(env: &Env, user: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for i in env.truth(&format!("users/{user}")).await {
        if i["workload"] == "mail" {
            *out.entry(i["path"].as_str().expect("path").to_string())
                .or_default() += 1;
        }
    }
    out
}

fn request(task: &catalog::Task, e: &catalog::Entity, mode: RestoreMode) -> RestoreRequest {
    RestoreRequest {
        task_id: task.id,
        entity_id: e.id,
        snapshot_id: None,
        at: None,
        selection: Selection {
            sub_services: vec![engine::SubService::Mail],
            ..Default::default()
        },
        options: RestoreOptions::new(mode),
        destination: None,
        snapshot_destination_first: false,
    }
}

async fn restore(env: &Env, req: &RestoreRequest) -> (catalog::Job, Option<RestoreSummary>) {
    let job = worker::enqueue_restore(&env.rt.catalog, env.account, req, Some("test".into()))
        .await
        .expect("enqueue restore");
    let job = env.run_jobs(&[job.id]).await.remove(0);
    let summary = job
        .result
        .clone()
        .map(|r| serde_json::from_value(r).expect("restore summary"));
    (job, summary)
}

/// Deletes `n` messages of the user's fullest folder through Graph; how many.
async fn delete_messages(env: &Env, task: &catalog::Task, user: &str, n: usize) -> usize {
    let graph = env.graph(task).await;
    // The fullest top-level folder other than Deleted Items (generated
    // mailboxes are small, and any folder will do).
    let folders: serde_json::Value = graph
        .get_json(&format!("/users/{user}/mailFolders?$top=100"))
        .await
        .expect("folders");
    let folder = folders["value"]
        .as_array()
        .expect("folders")
        .iter()
        .filter(|f| f["displayName"] != "Deleted Items")
        .max_by_key(|f| f["totalItemCount"].as_u64().unwrap_or(0))
        .and_then(|f| f["id"].as_str())
        .expect("a mail folder")
        .to_string();
    let page: serde_json::Value = graph
        .get_json(&format!(
            "/users/{user}/mailFolders/{folder}/messages?$select=id,subject&$top={n}"
        ))
        .await
        .expect("messages");
    let ids: Vec<String> = page["value"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_string())
        .collect();
    // Hard deletes: the messages leave the mailbox (Recoverable Items is
    // not part of what a person sees, nor of the simulator's truth).
    for id in &ids {
        graph
            .send(graph::Request::json(
                graph::Method::POST,
                format!("/users/{user}/messages/{id}/permanentDelete"),
                &json!({}),
            ))
            .await
            .expect("delete");
    }
    ids.len()
}

worker_test!(
    async fn deleted_mail_comes_back_from_the_chosen_backup(env) {
        let (task, alice, _bob) = two_mailboxes(&env).await;
        let user = alice.external_id.clone();
        let before = mail_truth(&env, &user).await;
        let first = backup(&env, &task, &alice).await;
        let snap1 = first.snapshot_id.clone().expect("snapshot");
        let between = env.rt.catalog.now();

        let deleted = delete_messages(&env, &task, &user, 3).await;
        assert_eq!(deleted, 3);
        let second = backup(&env, &task, &alice).await;
        assert_ne!(second.snapshot_id.as_deref(), Some(snap1.as_str()));
        assert_ne!(mail_truth(&env, &user).await, before, "the messages are gone");

        // The latest backup no longer has them: a bypass restore from it
        // brings nothing back.
        let (job, s) = restore(&env, &request(&task, &alice, RestoreMode::Bypass)).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        let s = s.expect("summary");
        assert_eq!(s.snapshot_id, second.snapshot_id.clone().expect("snapshot"));
        assert_eq!(s.report.restored, 0, "{:?}", s.report);
        assert!(s.report.skipped > 0, "what exists is left alone");

        // "As of" the time between the backups picks the first, which does.
        let mut req = request(&task, &alice, RestoreMode::Bypass);
        req.at = Some(between);
        let (job, s) = restore(&env, &req).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        let s = s.expect("summary");
        assert_eq!(s.snapshot_id, snap1);
        assert_eq!(s.report.restored, 3, "{:?}", s.report);
        assert_eq!(s.report.failed, 0, "{:?}", s.report);
        assert_eq!(mail_truth(&env, &user).await, before, "the mailbox is as it was");

        // The per-item log names every item, and the job reported progress.
        let log = env.rt.catalog.job_items(env.account, job.id, None, 0, 1000).await.expect("log");
        assert_eq!(log.len() as u64, s.report.restored + s.report.skipped + s.report.overwritten);
        assert_eq!(log.iter().filter(|i| i.outcome == "restored").count(), 3);
        assert!(log.iter().all(|i| i.path.starts_with("mail/")), "{:?}", &log[..3.min(log.len())]);
        assert_eq!(job.progress.done_items, log.len() as u64);
        // The restore is in the activity log, the completion event the notifier reads.
        let activity = env
            .rt
            .catalog
            .list_activity(env.account, &catalog::ActivityFilter::default())
            .await
            .expect("activity");
        assert!(activity.iter().any(|a| a.activity == catalog::ActivityKind::Restore && a.job_id == Some(job.id)));
    }
);

worker_test!(
    async fn a_restore_into_another_mailbox_and_a_deleted_one(env) {
        let (task, alice, bob) = two_mailboxes(&env).await;
        backup(&env, &task, &alice).await;
        let bob_before = mail_truth(&env, &bob.external_id).await;

        // Non-destructive into Bob: a new folder, Bob's own mail untouched.
        let mut req = request(&task, &alice, RestoreMode::NonDestructive);
        req.selection = Selection { folders: vec![], items: vec![], sub_services: vec![engine::SubService::Mail] };
        req.destination = Some(RestoreDestination::Entity { entity_id: bob.id });
        req.snapshot_destination_first = true;
        let (job, s) = restore(&env, &req).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        let s = s.expect("summary");
        assert!(s.report.restored > 0);
        // Bob was backed up before anything was written into his mailbox.
        let first = s.destination_snapshot_id.clone().expect("a snapshot of the destination first");
        let bobs = env.rt.catalog.entity_snapshot(env.account, bob.id, &first).await.expect("Bob's snapshot");
        assert!(bobs.is_restorable());
        let vault = env.rt.vault_account(env.account).await.expect("vault");
        let snap = vault.snapshot(&first.parse().expect("snapshot id")).await.expect("snapshot");
        assert!(vault.list_folder(&snap, "mail").await.expect("mail").iter().all(|f| {
            let meta: serde_json::Value = serde_json::from_slice(f.node.meta()).unwrap_or_default();
            meta["displayName"] != req.options.restore_folder_name().as_str()
        }), "the snapshot was taken before the restore folder existed");
        let bob_after = mail_truth(&env, &bob.external_id).await;
        let folder = req.options.restore_folder_name();
        for (path, n) in &bob_before {
            assert_eq!(bob_after.get(path), Some(n), "{path} is untouched");
        }
        let restored: usize = bob_after.iter().filter(|(p, _)| p.starts_with(&folder)).map(|(_, n)| n).sum();
        assert_eq!(restored as u64, s.report.restored);

        // Alice is deleted: restoring into "herself" is refused with a way out.
        env.post_sim(&format!("/_sim/users/{}/delete", alice.external_id), json!({})).await;
        backup(&env, &task, &alice).await; // archives her
        let (job, _) = restore(&env, &request(&task, &alice, RestoreMode::Replace)).await;
        assert_eq!(job.status, JobStatus::Failed);
        assert!(job.error.as_deref().unwrap_or("").contains("deleted"), "{:?}", job.error);
    }
);

worker_test!(
    async fn no_account_restores_anothers_backups(env) {
        let (task, alice, _bob) = two_mailboxes(&env).await;
        let s = backup(&env, &task, &alice).await;
        let other = env.rt.account_by_name("other").await.expect("account");
        let other_task = env.task_in(other, TaskSettings::default()).await;

        // Another account cannot name this entity, its snapshot, or use it as a destination.
        let mut req = request(&task, &alice, RestoreMode::Replace);
        let e = worker::enqueue_restore(&env.rt.catalog, other, &req, None).await.expect_err("foreign entity");
        assert!(matches!(e, worker::WorkerError::Catalog(catalog::Error::NotFound(_))), "{e}");
        req.snapshot_id = Some("0".repeat(32));
        let e = worker::enqueue_restore(&env.rt.catalog, env.account, &req, None).await.expect_err("unknown snapshot");
        assert!(matches!(e, worker::WorkerError::Catalog(catalog::Error::NotFound(_))), "{e}");
        worker::discover_task(&env.rt, other, other_task.id, None).await.expect("discovery");
        let theirs = env.entities(&other_task).await.into_iter().find(|e| e.entity_type == EntityType::User).expect("a user");
        req.snapshot_id = s.snapshot_id.clone();
        req.destination = Some(RestoreDestination::Entity { entity_id: theirs.id });
        let e = worker::enqueue_restore(&env.rt.catalog, env.account, &req, None).await.expect_err("foreign destination");
        assert!(matches!(e, worker::WorkerError::Catalog(catalog::Error::NotFound(_))), "{e}");
        // A connection of another account cannot be written through either.
        req.destination = Some(RestoreDestination::External { connection_id: other_task.connection_id, external_id: alice.external_id.clone() });
        let (job, _) = restore(&env, &req).await;
        assert_eq!(job.status, JobStatus::Failed);
    }
);
