//! Backup jobs end to end: runs per sub-service sharing the snapshot,
//! incremental parents, cancel, deleted users.

use catalog::{EntityStatus, EntityType, JobStatus, RunOutcome, TaskSettings};
use serde_json::json;
use worker::BackupSummary;

/// Discover, activate one licensed, enabled user mailbox and return it.
async fn one_mailbox(env: &crate::common::Env) -> (catalog::Task, catalog::Entity) {
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

async fn backup(
    env: &crate::common::Env,
    task: &catalog::Task,
    e: &catalog::Entity,
) -> catalog::Job {
    // Backups of one entity happen one after another: time moves on
    // between them (the manual clock would otherwise give two runs the same
    // start, and "the latest" would be a coin toss).
    env.clock.advance(chrono::Duration::minutes(1));
    let enq = worker::enqueue_backups(&env.rt, task, Some(&[e.id]), "test", None)
        .await
        .expect("enqueue");
    assert_eq!(enq.jobs.len(), 1);
    env.run_jobs(&[enq.jobs[0].id]).await.remove(0)
}

fn summary(job: &catalog::Job) -> BackupSummary {
    serde_json::from_value(job.result.clone().expect("result")).expect("summary")
}

worker_test!(
    async fn backup_records_runs_and_the_next_one_is_incremental(env) {
        let (task, e) = one_mailbox(&env).await;
        let first = backup(&env, &task, &e).await;
        assert_eq!(first.status, JobStatus::Succeeded, "{:?}", first.error);
        let s1 = summary(&first);
        assert_eq!(s1.outcome, RunOutcome::Success);
        let snap1 = s1.snapshot_id.clone().expect("snapshot");
        assert_eq!(s1.parent_snapshot_id, None);
        assert_eq!(s1.parts.len(), 4);
        let entity = env.rt.catalog.get_entity(env.account, e.id).await.expect("entity");
        assert_eq!(entity.status, EntityStatus::Success);
        assert!(entity.last_backup_at.is_some());
        let runs = env
            .rt
            .catalog
            .latest_successful_runs(env.account, e.id)
            .await
            .expect("runs");
        assert_eq!(runs.len(), 4, "one run per sub-service");
        assert!(runs.iter().all(|r| r.snapshot_id.as_deref() == Some(snap1.as_str())));
        let mail1 = runs
            .iter()
            .find(|r| r.sub_service == catalog::SubService::Mail)
            .expect("mail run");
        assert!(mail1.counts.items_new > 0, "a first backup stores every message");
        assert!(mail1.delta_state.is_some());

        // A day of activity in this mailbox, then an incremental backup.
        env.post_sim(
            "/_sim/activity",
            json!({ "days": 1, "fraction": 1.0, "entities": [format!("user:{}", e.external_id)] }),
        )
        .await;
        let second = backup(&env, &task, &e).await;
        assert_eq!(second.status, JobStatus::Succeeded, "{:?}", second.error);
        let s2 = summary(&second);
        assert_eq!(s2.parent_snapshot_id.as_deref(), Some(snap1.as_str()));
        let snap2 = s2.snapshot_id.clone().expect("snapshot");
        assert_ne!(snap1, snap2);
        let vault = env.rt.vault_account(env.account).await.expect("vault");
        let info = vault
            .snapshot(&snap2.parse().expect("id"))
            .await
            .expect("snapshot info");
        assert_eq!(info.parent.map(|p| p.to_string()), Some(snap1.clone()));
        assert_eq!(info.meta.get("entity_id"), Some(&json!(e.id)));
        let changed: u64 = s2
            .parts
            .iter()
            .map(|p| p.counts.new + p.counts.changed + p.counts.deleted)
            .sum();
        assert!(changed > 0, "the activity shows in the runs");
        let mail2 = s2
            .parts
            .iter()
            .find(|p| p.sub_service == catalog::SubService::Mail)
            .expect("mail");
        assert!(
            mail2.counts.new < mail1.counts.items_new,
            "an incremental stores only what is new ({} vs {})",
            mail2.counts.new,
            mail1.counts.items_new
        );

        // Nothing happened since: nothing new, changed or deleted.
        let third = summary(&backup(&env, &task, &e).await);
        assert_eq!(third.parent_snapshot_id.as_deref(), Some(snap2.as_str()));
        for p in &third.parts {
            assert_eq!(
                (p.counts.new, p.counts.changed, p.counts.deleted),
                (0, 0, 0),
                "{:?} of an unchanged mailbox",
                p.sub_service
            );
        }
        let log = env
            .rt
            .catalog
            .list_activity(env.account, &Default::default())
            .await
            .expect("activity");
        assert!(log.iter().filter(|a| a.activity == catalog::ActivityKind::Backup).count() >= 12);
    }
);

worker_test!(
    async fn a_user_deleted_before_the_backup_is_archived(env) {
        let (task, e) = one_mailbox(&env).await;
        env.post_sim(&format!("/_sim/users/{}/delete", e.external_id), json!({}))
            .await;
        let job = backup(&env, &task, &e).await;
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.error);
        let s = summary(&job);
        assert!(s.note.as_deref().unwrap_or("").contains("no longer exists"));
        let entity = env.rt.catalog.get_entity(env.account, e.id).await.expect("entity");
        assert_eq!(entity.status, EntityStatus::Archived);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_backup_records_cancelled_and_commits_nothing() {
    let mut cfg = crate::common::sim_config();
    cfg.latency_ms = 80;
    crate::common::run_with(crate::common::Db::Sqlite, cfg, |env| async move {
        let (task, e) = one_mailbox(&env).await;
        let enq = worker::enqueue_backups(&env.rt, &task, Some(&[e.id]), "test", None)
            .await
            .expect("enqueue");
        let id = enq.jobs[0].id;
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let w = worker::Worker::new(env.rt.clone());
        let handle = tokio::spawn(w.run(1, async move {
            let _ = rx.wait_for(|v| *v).await;
        }));
        // Wait until the backup is under way, then cancel it.
        let mut seen_running = false;
        for _ in 0..300 {
            let j = env.rt.catalog.get_job(env.account, id).await.expect("job");
            // The job is claimed (running) a moment before its backup marks
            // the entity in process.
            if j.status == JobStatus::Running {
                let ent = env
                    .rt
                    .catalog
                    .get_entity(env.account, e.id)
                    .await
                    .expect("entity");
                if ent.status == EntityStatus::InProcess {
                    seen_running = true;
                    break;
                }
                assert_eq!(ent.status, EntityStatus::Scheduled, "{ent:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(seen_running);
        env.rt
            .catalog
            .request_cancel(env.account, id)
            .await
            .expect("cancel");
        let job = env.wait_jobs(&[id]).await.remove(0);
        let _ = tx.send(true);
        handle.await.expect("worker");
        assert_eq!(job.status, JobStatus::Cancelled);
        let from = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let to = env.rt.catalog.now() + chrono::Duration::days(1);
        let runs = env
            .rt
            .catalog
            .runs_for_entity(env.account, e.id, from, to)
            .await
            .expect("runs");
        assert_eq!(runs.len(), 4);
        assert!(
            runs.iter()
                .all(|r| r.outcome == Some(RunOutcome::Cancelled) && r.snapshot_id.is_none())
        );
        let vault = env.rt.vault_account(env.account).await.expect("vault");
        assert!(
            vault.snapshots().await.expect("snapshots").is_empty(),
            "nothing committed"
        );
        let ent = env
            .rt
            .catalog
            .get_entity(env.account, e.id)
            .await
            .expect("entity");
        assert_eq!(ent.status, EntityStatus::Scheduled);
    })
    .await;
}
