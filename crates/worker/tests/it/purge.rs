//! Retention of what is no longer protected: an entity deleted in Microsoft
//! 365 keeps its backups for the task's archived-retention days, then they
//! are purged; a requested deletion waits out its 7-day grace period; a
//! deleted task goes whole. Nothing is purged early, and a cancelled
//! deletion keeps everything.

use catalog::{ActivityKind, EntityStatus, EntityType, JobKind, JobStatus, TaskSettings};
use serde_json::{Value, json};

async fn protected_mailboxes(
    env: &crate::common::Env,
    settings: TaskSettings,
    n: usize,
) -> (catalog::Task, Vec<catalog::Entity>) {
    let task = env.task(settings).await;
    worker::discover_task(&env.rt, env.account, task.id, None)
        .await
        .expect("discovery");
    let chosen: Vec<catalog::Entity> = env
        .entities(&task)
        .await
        .into_iter()
        .filter(|e| {
            e.entity_type == EntityType::User
                && e.properties.get("licensed") == Some(&json!(true))
                && e.properties.get("accountEnabled") == Some(&json!(true))
        })
        .take(n)
        .collect();
    assert_eq!(chosen.len(), n);
    let ids: Vec<_> = chosen.iter().map(|e| e.id).collect();
    env.rt
        .catalog
        .activate_entities(env.account, &ids)
        .await
        .expect("activate");
    env.clock.advance(chrono::Duration::minutes(1));
    let enq = worker::enqueue_backups(&env.rt, &task, Some(&ids), "test", None)
        .await
        .expect("enqueue");
    let jobs = env
        .run_jobs(&enq.jobs.iter().map(|j| j.id).collect::<Vec<_>>())
        .await;
    assert!(
        jobs.iter().all(|j| j.status == JobStatus::Succeeded),
        "{jobs:?}"
    );
    // No scheduled backups from here on: the tests count snapshots.
    let task = env
        .rt
        .catalog
        .set_task_status(env.account, task.id, catalog::TaskStatus::Paused)
        .await
        .expect("pause");
    (task, chosen)
}

async fn snapshots_of(env: &crate::common::Env, e: &catalog::Entity) -> usize {
    let vault = env.rt.vault_account(env.account).await.expect("vault");
    let id = e.id.to_string();
    vault
        .snapshots()
        .await
        .expect("snapshots")
        .iter()
        .filter(|s| s.meta.get("entity_id").and_then(Value::as_str) == Some(id.as_str()))
        .count()
}

async fn run_due_purges(env: &crate::common::Env) -> usize {
    let sched = worker::Scheduler::new(env.rt.clone());
    let report = sched.tick(env.rt.catalog.now()).await.expect("tick");
    let purges: Vec<catalog::JobId> = env
        .rt
        .catalog
        .list_jobs(env.account, &catalog::JobFilter::default())
        .await
        .expect("jobs")
        .into_iter()
        .filter(|j| j.kind == JobKind::Purge && j.status == JobStatus::Pending)
        .map(|j| j.id)
        .collect();
    assert_eq!(purges.len(), report.purges);
    let done = env.run_jobs(&purges).await;
    assert!(
        done.iter().all(|j| j.status == JobStatus::Succeeded),
        "{done:?}"
    );
    report.purges
}

worker_test!(
    async fn archived_backups_are_kept_for_the_tasks_days_then_purged(env) {
        let settings = TaskSettings {
            archived_retention_days: Some(30),
            ..Default::default()
        };
        let (_task, es) = protected_mailboxes(&env, settings, 2).await;
        let (gone, kept) = (&es[0], &es[1]);
        assert_eq!(snapshots_of(&env, gone).await, 1);
        env.post_sim(&format!("/_sim/users/{}/delete", gone.external_id), json!({})).await;
        // Discovery archives it (F-C6); its backups stay.
        let task = env.rt.catalog.get_task(env.account, gone.task_id).await.expect("task");
        worker::discover_task(&env.rt, env.account, task.id, None).await.expect("discovery");
        let archived = env.rt.catalog.get_entity(env.account, gone.id).await.expect("entity");
        assert_eq!(archived.status, EntityStatus::Archived);
        assert!(archived.deleted_in_tenant_at.is_some());

        // Day 29: nothing is purged.
        env.clock.advance(chrono::Duration::days(29));
        assert_eq!(run_due_purges(&env).await, 0);
        assert_eq!(snapshots_of(&env, gone).await, 1);

        // Day 31: the archived entity's backups go, the other's stay.
        env.clock.advance(chrono::Duration::days(2));
        assert_eq!(run_due_purges(&env).await, 1);
        assert_eq!(snapshots_of(&env, gone).await, 0);
        assert_eq!(snapshots_of(&env, kept).await, 1);
        assert!(matches!(
            env.rt.catalog.get_entity(env.account, gone.id).await,
            Err(catalog::Error::NotFound(_))
        ));
        assert!(env.rt.catalog.get_entity(env.account, kept.id).await.is_ok());
        let log = env
            .rt
            .catalog
            .list_activity(env.account, &catalog::ActivityFilter::default())
            .await
            .expect("activity");
        assert!(log.iter().any(|a| a.activity == ActivityKind::Deletion && a.entity_id == Some(gone.id)));
        // The next tick has nothing more to do.
        assert_eq!(run_due_purges(&env).await, 0);
    }
);

worker_test!(
    async fn archived_backups_kept_forever_by_default(env) {
        let (task, es) = protected_mailboxes(&env, TaskSettings::default(), 1).await;
        env.post_sim(&format!("/_sim/users/{}/delete", es[0].external_id), json!({})).await;
        worker::discover_task(&env.rt, env.account, task.id, None).await.expect("discovery");
        env.clock.advance(chrono::Duration::days(3650));
        assert_eq!(run_due_purges(&env).await, 0);
        assert_eq!(snapshots_of(&env, &es[0]).await, 1);
    }
);

worker_test!(
    async fn a_requested_deletion_waits_its_grace_period_and_can_be_cancelled(env) {
        let (task, es) = protected_mailboxes(&env, TaskSettings::default(), 2).await;
        let c = &env.rt.catalog;
        c.request_entity_deletion(env.account, &[es[0].id, es[1].id]).await.expect("request");
        env.clock.advance(chrono::Duration::days(6));
        assert_eq!(run_due_purges(&env).await, 0);
        // One deletion is cancelled within the grace period.
        c.cancel_entity_deletion(env.account, &[es[1].id]).await.expect("cancel");
        env.clock.advance(chrono::Duration::days(2));
        assert_eq!(run_due_purges(&env).await, 1);
        assert_eq!(snapshots_of(&env, &es[0]).await, 0);
        assert_eq!(snapshots_of(&env, &es[1]).await, 1);

        // A deleted task goes whole after its grace period.
        c.request_task_deletion(env.account, task.id).await.expect("delete task");
        env.clock.advance(chrono::Duration::days(8));
        assert_eq!(run_due_purges(&env).await, 1);
        assert_eq!(snapshots_of(&env, &es[1]).await, 0);
        assert!(matches!(c.get_task(env.account, task.id).await, Err(catalog::Error::NotFound(_))));
    }
);
