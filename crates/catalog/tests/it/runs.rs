use catalog::{
    DailyItems, Error, ItemFailure, RunCounts, RunFinish, RunOutcome, Service, SubService,
};
use chrono::{Duration, NaiveDate};

fn counts(new: u64, changed: u64) -> RunCounts {
    RunCounts {
        items_new: new,
        items_changed: changed,
        bytes_read: 1000,
        bytes_stored: 400,
        ..Default::default()
    }
}

db_test!(
    async fn runs_record_failures_and_delta_state(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let task = db.task(acc, Service::Exchange).await;
        let e = db.mailboxes(acc, &task, &["Alice"]).await.remove(0);
        let run = c.start_run(acc, e.id, SubService::Mail).await.expect("start");
        assert_eq!(run.outcome, None);
        assert_eq!(run.task_id, task.id);
        db.clock.advance(Duration::minutes(3));
        let finish = RunFinish {
            snapshot_id: Some("snap-1".into()),
            outcome: Some(RunOutcome::Partial),
            counts: RunCounts { items_failed: 2, items_deleted: 1, ..counts(10, 5) },
            error_summary: Some("2 items could not be read".into()),
            failures: vec![
                ItemFailure { item_id: "m1".into(), path: "/Inbox".into(), reason: "message too large".into() },
                ItemFailure { item_id: "m2".into(), path: "/Inbox/Sub, \"x\"".into(), reason: "corrupt MIME".into() },
            ],
            delta_state: Some(serde_json::json!({"Inbox": "https://graph/delta?token=abc"})),
        };
        let done = c.finish_run(acc, run.id, &finish).await.expect("finish");
        assert_eq!(done.outcome, Some(RunOutcome::Partial));
        assert_eq!(done.snapshot_id.as_deref(), Some("snap-1"));
        assert_eq!(done.counts.items_new, 10);
        assert_eq!(done.counts.items_failed, 2);
        assert_eq!(done.finished_at, Some(crate::common::t0() + Duration::minutes(3)));
        assert_eq!(done.delta_state, finish.delta_state);
        assert_eq!(c.get_run(acc, run.id).await.expect("get"), done);
        assert_eq!(c.run_failures(acc, run.id).await.expect("failures"), finish.failures);
        // A run is finished once.
        assert!(matches!(c.finish_run(acc, run.id, &finish).await, Err(Error::NotFound(_))));
        // An outcome is required.
        let run2 = c.start_run(acc, e.id, SubService::Calendar).await.expect("start");
        assert!(matches!(c.finish_run(acc, run2.id, &RunFinish::default()).await, Err(Error::InvalidInput(_))));
    }
);

db_test!(
    async fn backup_calendar_latest_and_daily_chart(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let task = db.task(acc, Service::Exchange).await;
        let es = db.mailboxes(acc, &task, &["Alice", "Bob"]).await;
        let (alice, bob) = (es[0].id, es[1].id);
        let t0 = crate::common::t0(); // 2026-03-10 12:00
        let day = Duration::days(1);
        // (start offset, sub-service, outcome, new, changed)
        let plan = [
            (-day * 3, SubService::Mail, RunOutcome::Success, 100, 0),
            (-day * 3 + Duration::minutes(1), SubService::Contacts, RunOutcome::Success, 7, 0),
            (-day * 2, SubService::Mail, RunOutcome::Partial, 10, 4),
            (-day, SubService::Mail, RunOutcome::Failed, 0, 0),
            (-day + Duration::hours(8), SubService::Mail, RunOutcome::Success, 3, 2),
            (-day + Duration::hours(9), SubService::Contacts, RunOutcome::Cancelled, 1, 0),
            (Duration::hours(-1), SubService::Mail, RunOutcome::Failed, 0, 0),
        ];
        let mut ids = Vec::new();
        for (off, sub, outcome, new, changed) in plan {
            let r = c.start_run_at(acc, alice, sub, t0 + off).await.expect("start");
            let f = RunFinish { outcome: Some(outcome), counts: counts(new, changed), ..Default::default() };
            c.finish_run_at(acc, r.id, &f, t0 + off + Duration::minutes(10)).await.expect("finish");
            ids.push(r.id);
        }
        // Bob's runs never show up in Alice's queries.
        let rb = c.start_run_at(acc, bob, SubService::Mail, t0 - day).await.expect("start");
        c.finish_run_at(acc, rb.id, &RunFinish { outcome: Some(RunOutcome::Success), counts: counts(999, 0), ..Default::default() }, t0)
            .await
            .expect("finish");

        // Calendar: runs of 2026-03-09 (UTC).
        let d9 = NaiveDate::from_ymd_opt(2026, 3, 9).expect("date").and_hms_opt(0, 0, 0).expect("time").and_utc();
        let cal = c.runs_for_entity(acc, alice, d9, d9 + day).await.expect("calendar");
        assert_eq!(cal.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[3], ids[4], ids[5]]);
        let week = c.runs_for_entity(acc, alice, t0 - day * 7, t0 + day).await.expect("week");
        assert_eq!(week.len(), 7);

        // Latest successful (success or partial) per sub-service.
        let mail = c.latest_successful_run(acc, alice, SubService::Mail).await.expect("latest").expect("some");
        assert_eq!(mail.id, ids[4]);
        let contacts = c.latest_successful_run(acc, alice, SubService::Contacts).await.expect("latest").expect("some");
        assert_eq!(contacts.id, ids[1]);
        assert!(c.latest_successful_run(acc, alice, SubService::Tasks).await.expect("latest").is_none());
        let tiles = c.latest_successful_runs(acc, alice).await.expect("tiles");
        assert_eq!(tiles.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[1], ids[4]]);

        // Items per day per sub-service over 3 days (today = 2026-03-10).
        let chart = c.daily_items(acc, alice, 3).await.expect("chart");
        let d = |n| NaiveDate::from_ymd_opt(2026, 3, n).expect("date");
        assert_eq!(
            chart,
            vec![
                DailyItems { day: d(8), sub_service: SubService::Mail, items: 14 },
                DailyItems { day: d(9), sub_service: SubService::Contacts, items: 1 },
                DailyItems { day: d(9), sub_service: SubService::Mail, items: 5 },
                DailyItems { day: d(10), sub_service: SubService::Mail, items: 0 },
            ]
        );
        let chart30 = c.daily_items(acc, alice, 30).await.expect("chart");
        assert_eq!(chart30.first().map(|x| (x.day, x.items)), Some((d(7), 7)));
        assert_eq!(chart30.len(), 6);
        assert!(matches!(c.daily_items(acc, alice, 0).await, Err(Error::InvalidInput(_))));
    }
);
