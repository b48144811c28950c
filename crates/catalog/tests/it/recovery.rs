use catalog::{
    Error, JobItem, JobKind, NewJob, NewUser, Permission, Role, RunFinish, RunOutcome, Secret,
    Service, SubService,
};
use chrono::{Duration, FixedOffset, NaiveDate};

db_test!(
    async fn snapshots_calendar_and_as_of(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let task = db.task(acc, Service::Exchange).await;
        let es = db.mailboxes(acc, &task, &["Alice", "Bob"]).await;
        let (alice, bob) = (es[0].id, es[1].id);
        let t0 = crate::common::t0(); // 2026-03-10 12:00 UTC
        let day = Duration::days(1);
        // (start, snapshot, [(sub-service, outcome)])
        type Backup<'a> = (Duration, Option<&'a str>, &'a [(SubService, RunOutcome)]);
        let plan: [Backup; 5] = [
            (-day * 2, Some("s1"), &[(SubService::Mail, RunOutcome::Success), (SubService::Contacts, RunOutcome::Success)]),
            (-day - Duration::hours(4), Some("s2"), &[(SubService::Mail, RunOutcome::Partial), (SubService::Contacts, RunOutcome::Success)]),
            (-day + Duration::hours(6), Some("s3"), &[(SubService::Mail, RunOutcome::Success), (SubService::Contacts, RunOutcome::Success)]),
            // A backup that failed before committing left no snapshot.
            (-Duration::hours(2), None, &[(SubService::Mail, RunOutcome::Failed)]),
            (-Duration::hours(1), Some("s5"), &[(SubService::Mail, RunOutcome::Failed), (SubService::Contacts, RunOutcome::Success)]),
        ];
        for (off, snap, parts) in plan {
            for (i, (sub, outcome)) in parts.iter().enumerate() {
                let start = t0 + off + Duration::minutes(i as i64);
                let r = c.start_run_at(acc, alice, *sub, start).await.expect("start");
                let f = RunFinish { snapshot_id: snap.map(str::to_string), outcome: Some(*outcome), ..Default::default() };
                c.finish_run_at(acc, r.id, &f, start + Duration::minutes(5)).await.expect("finish");
            }
        }
        let rb = c.start_run_at(acc, bob, SubService::Mail, t0 - day).await.expect("start");
        c.finish_run_at(acc, rb.id, &RunFinish { snapshot_id: Some("bob-1".into()), outcome: Some(RunOutcome::Success), ..Default::default() }, t0 - day)
            .await
            .expect("finish");

        let all = c.entity_snapshots(acc, alice, t0 - day * 7, t0 + day).await.expect("snapshots");
        assert_eq!(all.iter().map(|s| s.snapshot_id.as_str()).collect::<Vec<_>>(), ["s5", "s3", "s2", "s1"]);
        assert_eq!(all.iter().map(|s| s.outcome).collect::<Vec<_>>(),
            [RunOutcome::Failed, RunOutcome::Success, RunOutcome::Partial, RunOutcome::Success]);
        assert_eq!(all[1].runs.len(), 2);
        assert_eq!(all[1].time, t0 - day + Duration::hours(6) + Duration::minutes(6), "the end of its last run");

        // As of: the newest restorable snapshot at or before the time.
        assert_eq!(c.snapshot_at(acc, alice, t0).await.expect("at").snapshot_id, "s3", "s5 is failed");
        assert_eq!(c.snapshot_at(acc, alice, t0 - day).await.expect("at").snapshot_id, "s2");
        assert!(matches!(c.snapshot_at(acc, alice, t0 - day * 3).await, Err(Error::NotFound(_))));
        // A snapshot id is found only through its own entity.
        assert_eq!(c.entity_snapshot(acc, alice, "s2").await.expect("s2").outcome, RunOutcome::Partial);
        assert!(matches!(c.entity_snapshot(acc, alice, "bob-1").await, Err(Error::NotFound(_))));
        let other = db.account("Fabrikam").await;
        assert!(matches!(c.entity_snapshot(other, alice, "s2").await, Err(Error::NotFound(_))));

        // Calendar in UTC: 8th (s1), 9th (s2 at 08:00, s3 at 18:00), 10th (s5).
        let d = |n| NaiveDate::from_ymd_opt(2026, 3, n).expect("date");
        let utc = FixedOffset::east_opt(0).expect("tz");
        let cal = c.backup_calendar(acc, alice, t0 - day * 7, t0 + day, utc).await.expect("calendar");
        assert_eq!(cal.iter().map(|x| x.day).collect::<Vec<_>>(), [d(8), d(9), d(10)]);
        assert_eq!(cal[1].snapshots.iter().map(|s| s.snapshot_id.as_str()).collect::<Vec<_>>(), ["s2", "s3"]);
        assert_eq!(cal[1].outcome, RunOutcome::Partial, "a day shows its worst backup");
        assert_eq!(cal[2].outcome, RunOutcome::Failed);
        // In UTC-10 the 9th's 08:00 backup falls on the 8th.
        let hawaii = FixedOffset::west_opt(10 * 3600).expect("tz");
        let cal = c.backup_calendar(acc, alice, t0 - day * 7, t0 + day, hawaii).await.expect("calendar");
        assert_eq!(cal.iter().map(|x| (x.day, x.snapshots.len())).collect::<Vec<_>>(), [(d(8), 2), (d(9), 1), (d(10), 1)]);
    }
);

db_test!(
    async fn job_items_are_appended_in_order_and_scoped(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let other = db.account("Fabrikam").await;
        let job = c.enqueue_job(acc, NewJob::new(JobKind::Restore, serde_json::json!({}))).await.expect("job").job().id;
        let item = |n: u32, outcome: &str| JobItem {
            seq: 0,
            path: format!("mail/F/{n}"),
            name: format!("Message {n}"),
            outcome: outcome.into(),
            detail: (outcome == "failed").then(|| "the mailbox is full".to_string()),
            bytes: u64::from(n) * 10,
        };
        c.append_job_items(acc, job, &[item(1, "restored"), item(2, "failed")]).await.expect("append");
        c.append_job_items(acc, job, &[item(3, "skipped")]).await.expect("append");
        let all = c.job_items(acc, job, None, 0, 100).await.expect("items");
        assert_eq!(all.iter().map(|i| (i.seq, i.name.as_str())).collect::<Vec<_>>(),
            [(0, "Message 1"), (1, "Message 2"), (2, "Message 3")]);
        let failed = c.job_items(acc, job, Some("failed"), 0, 100).await.expect("failed");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].detail.as_deref(), Some("the mailbox is full"));
        assert_eq!(c.job_items(acc, job, None, 1, 1).await.expect("page")[0].seq, 1);
        assert!(matches!(c.job_items(acc, job, None, 0, 0).await, Err(Error::InvalidInput(_))));
        // Another account neither reads nor writes this job's log.
        assert!(c.job_items(other, job, None, 0, 100).await.expect("other").is_empty());
        assert!(matches!(c.append_job_items(other, job, &[item(4, "restored")]).await, Err(Error::NotFound(_))));
    }
);

db_test!(
    async fn custom_permissions_replace_the_role_defaults(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let u = c
            .create_user(acc, NewUser {
                email: "op@contoso.example".into(),
                display_name: "Op".into(),
                password: Secret::new("correct horse battery"),
                role: Role::Operator,
            })
            .await
            .expect("user");
        assert!(u.may(Permission::Restore));
        assert!(!u.may(Permission::PreviewData), "operators preview only when granted");
        let u = c.set_user_permissions(acc, u.id, Some(&[Permission::PreviewData])).await.expect("set");
        assert!(u.may(Permission::PreviewData));
        assert!(!u.may(Permission::Restore), "a custom list is exactly what it says");
        assert_eq!(c.get_user(acc, u.id).await.expect("get").permissions, Some(vec![Permission::PreviewData]));
        let u = c.set_user_permissions(acc, u.id, None).await.expect("reset");
        assert!(u.may(Permission::Restore) && !u.may(Permission::PreviewData));
        let other = db.account("Fabrikam").await;
        assert!(matches!(c.set_user_permissions(other, u.id, None).await, Err(Error::NotFound(_))));
    }
);

db_test!(
    async fn sealed_secrets_and_signatures_are_bound_to_their_account(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let other = db.account("Fabrikam").await;
        let secret = Secret::new(r#"{"secret_access_key":"wJalrXUtnFEMI"}"#);
        let sealed = c.seal_secret(acc, "export-credentials", &secret).expect("seal");
        assert!(!sealed.contains("wJalrXUtnFEMI"));
        assert_eq!(c.open_secret(acc, "export-credentials", &sealed).expect("open"), secret);
        assert!(matches!(c.open_secret(other, "export-credentials", &sealed), Err(Error::Decrypt)));
        assert!(matches!(c.open_secret(acc, "connection", &sealed), Err(Error::Decrypt)));
        assert!(matches!(c.open_secret(acc, "export-credentials", "not base64!"), Err(Error::Decrypt)));

        let sig = c.sign(acc, "download", "job/1/file.pst/1700000000");
        assert!(c.verify_signature(acc, "download", "job/1/file.pst/1700000000", &sig));
        assert!(!c.verify_signature(acc, "download", "job/1/file.pst/1700000001", &sig));
        assert!(!c.verify_signature(other, "download", "job/1/file.pst/1700000000", &sig));
        assert!(!c.verify_signature(acc, "download", "job/1/file.pst/1700000000", "zz"));
    }
);
