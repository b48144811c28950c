use catalog::{
    ActivityFilter, ActivityKind, ActivityStatus, Deactivation, EntityFilter, Error, JobFilter,
    JobKind, NewActivity, NewJob, NewRule, NewTask, RuleDefinition, RuleMode, RunFinish,
    RunOutcome, Service, SubService, TaskSettings, TaskStatus,
};

fn not_found<T: std::fmt::Debug>(r: catalog::Result<T>) {
    assert!(
        matches!(r, Err(Error::NotFound(_))),
        "expected not found, got {r:?}"
    );
}

db_test!(
    async fn account_b_cannot_see_or_change_account_a(db) {
        let c = &db.catalog;
        let a = db.account("A").await;
        let b = db.account("B").await;
        let conn_a = db.connection(a).await;
        let task = db.task(a, Service::Exchange).await;
        let es = db.mailboxes(a, &task, &["Alice"]).await;
        let e = es[0].id;
        let run = c.start_run(a, e, SubService::Mail).await.expect("run");
        let tag = c.create_tag(a, "VIP").await.expect("tag");
        c.apply_tag(a, tag.id, &[e]).await.expect("apply");
        let rule = c
            .create_rule(
                a,
                NewRule {
                    task_id: task.id,
                    definition: RuleDefinition::Csv { emails: vec![] },
                    mode: RuleMode::Once,
                    deactivation: Deactivation::Keep,
                },
            )
            .await
            .expect("rule");
        let job = c.enqueue_job(a, NewJob::new(JobKind::Export, serde_json::json!({}))).await.expect("job").job().clone();
        let mut act = NewActivity::new(ActivityKind::Backup, ActivityStatus::Success);
        act.entity_id = Some(e);
        c.log_activity(a, act).await.expect("activity");

        // Reads with B's id and A's object ids: not found.
        not_found(c.get_connection(b, conn_a).await);
        not_found(c.connection_secret(b, conn_a).await);
        not_found(c.get_task(b, task.id).await);
        not_found(c.get_entity(b, e).await);
        not_found(c.get_entity_by_external_id(b, task.id, "ext-Alice").await);
        not_found(c.get_run(b, run.id).await);
        not_found(c.run_failures(b, run.id).await);
        not_found(c.get_rule(b, rule.id).await);
        not_found(c.get_job(b, job.id).await);

        // Lists of B are empty.
        assert!(c.list_connections(b).await.expect("list").is_empty());
        assert!(c.list_tasks(b, None).await.expect("list").is_empty());
        assert!(c.list_entities(b, &EntityFilter::default()).await.expect("list").is_empty());
        assert!(c.list_entities(b, &EntityFilter { task_id: Some(task.id), ..Default::default() }).await.expect("list").is_empty());
        assert!(c.list_tags(b).await.expect("list").is_empty());
        assert!(c.list_rules(b, Some(task.id)).await.expect("list").is_empty());
        assert!(c.runs_for_entity(b, e, crate::common::t0() - chrono::Duration::days(1), crate::common::t0() + chrono::Duration::days(1)).await.expect("runs").is_empty());
        assert!(c.latest_successful_runs(b, e).await.expect("runs").is_empty());
        assert!(c.daily_items(b, e, 30).await.expect("chart").is_empty());
        assert!(c.list_jobs(b, &JobFilter::default()).await.expect("jobs").is_empty());
        assert!(c.list_activity(b, &ActivityFilter::default()).await.expect("activity").is_empty());

        // Changes with B's id: not found, or nothing changed.
        not_found(c.rename_task(b, task.id, "hijacked").await);
        not_found(c.set_task_status(b, task.id, TaskStatus::Paused).await);
        not_found(c.request_task_deletion(b, task.id).await);
        not_found(c.purge_task(b, task.id).await);
        not_found(c.set_connection_status(b, conn_a, catalog::ConnectionStatus::Connected).await);
        not_found(c.set_entity_status(b, e, catalog::EntityStatus::Paused).await);
        not_found(c.mark_entity_deleted_in_tenant(b, e).await);
        assert_eq!(c.activate_entities(b, &[e]).await.expect("activate"), 0);
        assert_eq!(c.pause_entities(b, &[e]).await.expect("pause"), 0);
        assert_eq!(c.request_entity_deletion(b, &[e]).await.expect("delete"), 0);
        not_found(c.apply_tag(b, tag.id, &[e]).await);
        not_found(c.delete_tag(b, tag.id).await);
        not_found(c.delete_rule(b, rule.id).await);
        not_found(c.finish_run(b, run.id, &RunFinish { outcome: Some(RunOutcome::Success), ..Default::default() }).await);
        not_found(c.start_run(b, e, SubService::Mail).await);
        not_found(c.request_cancel(b, job.id).await);
        // B's own tag cannot be put on A's entity.
        let tag_b = c.create_tag(b, "VIP").await.expect("same name in another account is fine");
        assert_eq!(c.apply_tag(b, tag_b.id, &[e]).await.expect("apply"), 0);
        // B cannot build a task on A's connection, nor upsert into A's task.
        not_found(
            c.create_task(
                b,
                NewTask { connection_id: conn_a, service: Service::Teams, name: "x".into(), settings: TaskSettings::default() },
            )
            .await,
        );
        not_found(c.upsert_entities(b, task.id, &[], false).await);

        // A's data is untouched.
        let t = c.get_task(a, task.id).await.expect("task");
        assert_eq!(t.name, task.name);
        assert_eq!(t.status, TaskStatus::Active);
        assert!(t.deletion_requested_at.is_none());
        let ent = c.get_entity(a, e).await.expect("entity");
        assert_eq!(ent.status, catalog::EntityStatus::NotActive);
        assert_eq!(ent.tags.len(), 1);
        assert_eq!(c.get_job(a, job.id).await.expect("job").status, catalog::JobStatus::Pending);
        assert!(c.get_run(a, run.id).await.expect("run").outcome.is_none());
    }
);
