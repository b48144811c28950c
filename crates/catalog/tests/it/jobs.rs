use std::collections::HashSet;
use std::time::Duration as StdDuration;

use catalog::{
    Enqueued, Error, JobCounts, JobFilter, JobKind, JobProgress, JobStatus, NewJob, Service,
    backup_dedupe_key,
};
use chrono::Duration;

const LEASE: StdDuration = StdDuration::from_secs(60);

db_test!(
    async fn concurrent_claimers_never_share_a_job(db) {
        let c = &db.catalog;
        let acc = db.account("A").await;
        let other = db.account("B").await;
        let mut enqueued = HashSet::new();
        for i in 0..12 {
            let owner = if i % 2 == 0 { acc } else { other };
            let j = c.enqueue_job(owner, NewJob::new(JobKind::Backup, serde_json::json!({ "n": i }))).await.expect("enqueue");
            enqueued.insert(j.job().id);
        }
        let claims = (0..30).map(|w| {
            let c = c.clone();
            tokio::spawn(async move { c.claim_job(&format!("worker-{w}"), LEASE, &[]).await })
        });
        let results = futures::future::join_all(claims).await;
        let mut got = Vec::new();
        for r in results {
            if let Some(cl) = r.expect("task").expect("claim") {
                assert_eq!(cl.job.status, JobStatus::Running);
                assert_eq!(cl.job.attempts, 1);
                assert_eq!(cl.job.lease_owner.as_deref(), Some(cl.lease.worker.as_str()));
                got.push(cl.job.id);
            }
        }
        let unique: HashSet<_> = got.iter().copied().collect();
        assert_eq!(got.len(), unique.len(), "a job was claimed twice");
        assert_eq!(unique, enqueued, "every job claimed exactly once");
        assert!(c.claim_job("late", LEASE, &[]).await.expect("claim").is_none());
    }
);

db_test!(
    async fn claim_order_kinds_and_not_before(db) {
        let c = &db.catalog;
        let acc = db.account("A").await;
        let low = c.enqueue_job(acc, NewJob::new(JobKind::Backup, serde_json::json!(1))).await.expect("e").job().id;
        db.clock.advance(Duration::seconds(1));
        let high = c
            .enqueue_job(acc, NewJob { priority: 10, ..NewJob::new(JobKind::Backup, serde_json::json!(2)) })
            .await
            .expect("e")
            .job()
            .id;
        let later = c
            .enqueue_job(
                acc,
                NewJob {
                    priority: 100,
                    not_before: Some(crate::common::t0() + Duration::hours(1)),
                    ..NewJob::new(JobKind::Backup, serde_json::json!(3))
                },
            )
            .await
            .expect("e")
            .job()
            .id;
        let export = c.enqueue_job(acc, NewJob::new(JobKind::Export, serde_json::json!(4))).await.expect("e").job().id;
        let first = c.claim_job("w", LEASE, &[JobKind::Backup]).await.expect("claim").expect("job");
        assert_eq!(first.job.id, high);
        let second = c.claim_job("w", LEASE, &[JobKind::Backup, JobKind::Restore]).await.expect("claim").expect("job");
        assert_eq!(second.job.id, low);
        assert!(c.claim_job("w", LEASE, &[JobKind::Backup]).await.expect("claim").is_none(), "not before its time");
        assert_eq!(c.claim_job("w", LEASE, &[]).await.expect("claim").expect("job").job.id, export);
        db.clock.advance(Duration::hours(1));
        assert_eq!(c.claim_job("w", LEASE, &[]).await.expect("claim").expect("job").job.id, later);
        assert!(matches!(c.claim_job(" ", LEASE, &[]).await, Err(Error::InvalidInput(_))));
        assert!(matches!(c.claim_job("w", StdDuration::ZERO, &[]).await, Err(Error::InvalidInput(_))));
    }
);

db_test!(
    async fn expired_lease_is_reclaimed_and_resumes(db) {
        let c = &db.catalog;
        let acc = db.account("A").await;
        let id = c.enqueue_job(acc, NewJob::new(JobKind::Restore, serde_json::json!({}))).await.expect("e").job().id;
        let first = c.claim_job("worker-1", StdDuration::from_secs(30), &[]).await.expect("claim").expect("job");
        let progress = JobProgress {
            done_items: 40,
            total_items: Some(100),
            done_bytes: 4096,
            total_bytes: None,
            message: Some("Inbox".into()),
        };
        assert!(!c.update_progress(&first.lease, &progress).await.expect("progress"));
        // The lease is extended by heartbeats...
        db.clock.advance(Duration::seconds(20));
        assert!(!c.heartbeat(&first.lease, StdDuration::from_secs(30)).await.expect("heartbeat"));
        db.clock.advance(Duration::seconds(20));
        assert_eq!(c.reclaim_expired_leases().await.expect("reclaim"), 0, "still leased");
        // ... until the worker dies.
        db.clock.advance(Duration::seconds(11));
        assert_eq!(c.reclaim_expired_leases().await.expect("reclaim"), 1);
        let j = c.get_job(acc, id).await.expect("job");
        assert_eq!(j.status, JobStatus::Pending);
        assert_eq!(j.lease_owner, None);
        // The same worker id claims it again: the old lease is fenced off.
        let second = c.claim_job("worker-1", StdDuration::from_secs(30), &[]).await.expect("claim").expect("job");
        assert_eq!(second.job.id, id);
        assert_eq!(second.job.attempts, 2);
        assert_eq!(second.job.progress, progress, "progress kept: the job resumes");
        assert!(matches!(c.heartbeat(&first.lease, LEASE).await, Err(Error::LeaseLost)));
        assert!(matches!(c.complete_job(&first.lease, &serde_json::json!({})).await, Err(Error::LeaseLost)));
        let done = c.complete_job(&second.lease, &serde_json::json!({"restored": 100})).await.expect("complete");
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.result, Some(serde_json::json!({"restored": 100})));
        assert!(done.finished_at.is_some());
        assert!(matches!(c.heartbeat(&second.lease, LEASE).await, Err(Error::LeaseLost)));

        // A job out of attempts whose worker dies fails.
        let id2 = c
            .enqueue_job(acc, NewJob { max_attempts: 1, ..NewJob::new(JobKind::Export, serde_json::json!({})) })
            .await
            .expect("e")
            .job()
            .id;
        c.claim_job("worker-2", StdDuration::from_secs(5), &[]).await.expect("claim").expect("job");
        db.clock.advance(Duration::seconds(6));
        assert_eq!(c.reclaim_expired_leases().await.expect("reclaim"), 1);
        let j2 = c.get_job(acc, id2).await.expect("job");
        assert_eq!(j2.status, JobStatus::Failed);
        assert!(j2.error.is_some());
    }
);

db_test!(
    async fn cancel_is_seen_by_heartbeat(db) {
        let c = &db.catalog;
        let acc = db.account("A").await;
        let running = c.enqueue_job(acc, NewJob::new(JobKind::Export, serde_json::json!({}))).await.expect("e").job().id;
        let claimed = c.claim_job("w", LEASE, &[]).await.expect("claim").expect("job");
        assert!(!c.heartbeat(&claimed.lease, LEASE).await.expect("heartbeat"));
        let j = c.request_cancel(acc, running).await.expect("cancel");
        assert_eq!(j.status, JobStatus::Running);
        assert!(j.cancel_requested);
        assert!(c.heartbeat(&claimed.lease, LEASE).await.expect("heartbeat"), "cancel seen");
        assert!(c.update_progress(&claimed.lease, &JobProgress::default()).await.expect("progress"));
        // A retryable failure after a cancel does not come back.
        let j = c.finish_cancelled(&claimed.lease).await.expect("cancelled");
        assert_eq!(j.status, JobStatus::Cancelled);
        assert!(j.finished_at.is_some());

        // A pending job is cancelled at once and never claimed.
        let pending = c.enqueue_job(acc, NewJob::new(JobKind::Backup, serde_json::json!({}))).await.expect("e").job().id;
        assert_eq!(c.request_cancel(acc, pending).await.expect("cancel").status, JobStatus::Cancelled);
        assert!(c.claim_job("w", LEASE, &[]).await.expect("claim").is_none());
        // Cancelling a finished job changes nothing.
        assert_eq!(c.request_cancel(acc, pending).await.expect("cancel").status, JobStatus::Cancelled);
    }
);

db_test!(
    async fn dedupe_prevents_two_active_backups_of_one_entity(db) {
        let c = &db.catalog;
        let acc = db.account("A").await;
        let task = db.task(acc, Service::Exchange).await;
        let es = db.mailboxes(acc, &task, &["Alice", "Bob"]).await;
        let job = |e: catalog::EntityId| NewJob::backup(task.id, e, Service::Exchange, serde_json::json!({ "entity": e }));
        let first = c.enqueue_job(acc, job(es[0].id)).await.expect("enqueue");
        let Enqueued::Created(first) = first else { panic!("first enqueue must create") };
        assert_eq!(first.dedupe_key, Some(backup_dedupe_key(es[0].id)));
        match c.enqueue_job(acc, job(es[0].id)).await.expect("enqueue") {
            Enqueued::Duplicate(j) => assert_eq!(j.id, first.id),
            other => panic!("expected duplicate, got {other:?}"),
        }
        // Another entity is not blocked.
        db.clock.advance(Duration::seconds(1));
        assert!(matches!(c.enqueue_job(acc, job(es[1].id)).await.expect("enqueue"), Enqueued::Created(_)));
        // Running still blocks.
        let claimed = c.claim_job("w", LEASE, &[]).await.expect("claim").expect("job");
        assert_eq!(claimed.job.id, first.id);
        assert!(matches!(c.enqueue_job(acc, job(es[0].id)).await.expect("enqueue"), Enqueued::Duplicate(_)));
        // Many concurrent "backup now" clicks: one job.
        let clicks = (0..8).map(|_| {
            let c = c.clone();
            let j = job(es[1].id);
            tokio::spawn(async move { c.enqueue_job(acc, j).await })
        });
        let ids: HashSet<_> = futures::future::join_all(clicks)
            .await
            .into_iter()
            .map(|r| r.expect("task").expect("enqueue").job().id)
            .collect();
        assert_eq!(ids.len(), 1);
        // Once finished, a new backup may be queued.
        c.complete_job(&claimed.lease, &serde_json::json!({})).await.expect("complete");
        match c.enqueue_job(acc, job(es[0].id)).await.expect("enqueue") {
            Enqueued::Created(j) => assert_ne!(j.id, first.id),
            other => panic!("expected a new job, got {other:?}"),
        }
        // The raw database refuses a second active row too.
        let active: Vec<_> = c
            .list_jobs(acc, &JobFilter { statuses: vec![JobStatus::Pending, JobStatus::Running], ..Default::default() })
            .await
            .expect("list");
        assert_eq!(active.len(), 2);
    }
);

db_test!(
    async fn failures_retry_with_backoff_then_fail(db) {
        let c = &db.catalog;
        let acc = db.account("A").await;
        let id = c
            .enqueue_job(acc, NewJob { max_attempts: 3, ..NewJob::new(JobKind::Backup, serde_json::json!({})) })
            .await
            .expect("e")
            .job()
            .id;
        let t0 = crate::common::t0();
        // Attempt 1 fails: back off 30 s.
        let a1 = c.claim_job("w", LEASE, &[]).await.expect("claim").expect("job");
        let j = c.fail_job(&a1.lease, "Graph returned 503", true).await.expect("fail");
        assert_eq!(j.status, JobStatus::Pending);
        assert_eq!(j.not_before, t0 + Duration::seconds(30));
        assert_eq!(j.error.as_deref(), Some("Graph returned 503"));
        assert!(c.claim_job("w", LEASE, &[]).await.expect("claim").is_none(), "backing off");
        db.clock.advance(Duration::seconds(30));
        // Attempt 2 fails: back off 60 s.
        let a2 = c.claim_job("w", LEASE, &[]).await.expect("claim").expect("job");
        assert_eq!(a2.job.attempts, 2);
        let j = c.fail_job(&a2.lease, "timeout", true).await.expect("fail");
        assert_eq!(j.not_before, t0 + Duration::seconds(90));
        db.clock.advance(Duration::seconds(59));
        assert!(c.claim_job("w", LEASE, &[]).await.expect("claim").is_none());
        db.clock.advance(Duration::seconds(1));
        // Attempt 3 is the last.
        let a3 = c.claim_job("w", LEASE, &[]).await.expect("claim").expect("job");
        let j = c.fail_job(&a3.lease, "timeout again", true).await.expect("fail");
        assert_eq!(j.status, JobStatus::Failed);
        assert_eq!(j.attempts, 3);
        assert!(j.finished_at.is_some());
        assert_eq!(c.get_job(acc, id).await.expect("job").status, JobStatus::Failed);
        db.clock.advance(Duration::hours(1));
        assert!(c.claim_job("w", LEASE, &[]).await.expect("claim").is_none());

        // A permanent failure does not retry.
        c.enqueue_job(acc, NewJob::new(JobKind::Backup, serde_json::json!({}))).await.expect("e");
        let a = c.claim_job("w", LEASE, &[]).await.expect("claim").expect("job");
        assert_eq!(c.fail_job(&a.lease, "consent revoked", false).await.expect("fail").status, JobStatus::Failed);
        assert!(matches!(
            c.enqueue_job(acc, NewJob { max_attempts: 0, ..NewJob::new(JobKind::Backup, serde_json::json!({})) }).await,
            Err(Error::InvalidInput(_))
        ));
    }
);

db_test!(
    async fn jobs_page_filters_and_counts(db) {
        let c = &db.catalog;
        let acc = db.account("A").await;
        let task = db.task(acc, Service::OneDrive).await;
        // An old job, outside the 7-day window.
        let old = c.enqueue_job(acc, NewJob::new(JobKind::Export, serde_json::json!({}))).await.expect("e").job().id;
        c.request_cancel(acc, old).await.expect("cancel");
        db.clock.advance(Duration::days(8));
        let since = db.clock_now() - catalog::JOBS_PAGE_WINDOW;
        let mut restore = NewJob::new(JobKind::Restore, serde_json::json!({}));
        restore.service = Some(Service::OneDrive);
        restore.task_id = Some(task.id);
        restore.initiator = Some("admin@contoso.test".into());
        restore.title = Some("Restore Alice".into());
        let r = c.enqueue_job(acc, restore).await.expect("e").job().clone();
        db.clock.advance(Duration::minutes(1));
        c.enqueue_job(acc, NewJob::new(JobKind::Export, serde_json::json!({}))).await.expect("e");
        db.clock.advance(Duration::minutes(1));
        c.enqueue_job(acc, NewJob::new(JobKind::Export, serde_json::json!({}))).await.expect("e");
        let cl = c.claim_job("w", LEASE, &[JobKind::Restore]).await.expect("claim").expect("job");
        c.complete_job(&cl.lease, &serde_json::json!({})).await.expect("done");
        let cl = c.claim_job("w", LEASE, &[]).await.expect("claim").expect("job");
        c.fail_job(&cl.lease, "boom", false).await.expect("fail");

        let recent = JobFilter { since: Some(since), ..Default::default() };
        let jobs = c.list_jobs(acc, &recent).await.expect("list");
        assert_eq!(jobs.len(), 3);
        assert!(jobs[0].created_at > jobs[2].created_at, "newest first");
        let oldest = c.list_jobs(acc, &JobFilter { oldest_first: true, ..recent.clone() }).await.expect("list");
        assert_eq!(oldest[0].id, r.id);
        let f = JobFilter { kinds: vec![JobKind::Restore], ..recent.clone() };
        let only = c.list_jobs(acc, &f).await.expect("list");
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].title.as_deref(), Some("Restore Alice"));
        assert_eq!(only[0].status, JobStatus::Succeeded);
        let f = JobFilter { statuses: vec![JobStatus::Failed], ..recent.clone() };
        assert_eq!(c.list_jobs(acc, &f).await.expect("list").len(), 1);
        let f = JobFilter { service: Some(Service::OneDrive), task_id: Some(task.id), initiator: Some("admin@contoso.test".into()), ..recent.clone() };
        assert_eq!(c.list_jobs(acc, &f).await.expect("list").len(), 1);
        assert_eq!(c.list_jobs(acc, &JobFilter::default()).await.expect("list").len(), 4);
        let counts = c.job_counts(acc, since).await.expect("counts");
        assert_eq!(counts, JobCounts { pending: 1, running: 0, succeeded: 1, failed: 1, cancelled: 0 });
    }
);
