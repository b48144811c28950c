use catalog::{ActivityFilter, ActivityKind, ActivityStatus, NewActivity, Service};
use chrono::Duration;

db_test!(
    async fn activity_log_filters_and_csv_export(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let task = db.task(acc, Service::Exchange).await;
        let t0 = crate::common::t0();
        let entries = [
            (0, ActivityKind::Backup, Service::Exchange, ActivityStatus::Success, "Mail, \"HQ\"", "alice@contoso.test"),
            (1, ActivityKind::Backup, Service::Exchange, ActivityStatus::Failed, "Mail, \"HQ\"", "bob@contoso.test"),
            (2, ActivityKind::Restore, Service::Exchange, ActivityStatus::Success, "Mail, \"HQ\"", "alice@contoso.test"),
            (3, ActivityKind::Export, Service::OneDrive, ActivityStatus::Partial, "Drives", "https://contoso/personal/carol"),
            (30, ActivityKind::Backup, Service::Exchange, ActivityStatus::Success, "Mail, \"HQ\"", "alice@contoso.test"),
        ];
        for (h, kind, service, status, task_name, item) in entries {
            let mut a = NewActivity::new(kind, status);
            a.at = Some(t0 + Duration::hours(h));
            a.service = Some(service);
            a.task_id = Some(task.id);
            a.task_name = Some(task_name.into());
            a.item = Some(item.into());
            a.details = serde_json::json!({"items": h, "summary": "done, \"ok\""});
            c.log_activity(acc, a).await.expect("log");
        }
        let all = c.list_activity(acc, &ActivityFilter::default()).await.expect("all");
        assert_eq!(all.len(), 5);
        assert!(all[0].at > all[4].at, "newest first");

        let f = |f: ActivityFilter| async move { c.list_activity(acc, &f).await.expect("list").len() };
        assert_eq!(f(ActivityFilter { activity: Some(ActivityKind::Backup), ..Default::default() }).await, 3);
        assert_eq!(f(ActivityFilter { service: Some(Service::OneDrive), ..Default::default() }).await, 1);
        assert_eq!(f(ActivityFilter { status: Some(ActivityStatus::Success), ..Default::default() }).await, 3);
        assert_eq!(f(ActivityFilter { task_name: Some("mail".into()), ..Default::default() }).await, 4);
        assert_eq!(f(ActivityFilter { item: Some("ALICE".into()), ..Default::default() }).await, 3);
        assert_eq!(
            f(ActivityFilter { from: Some(t0 + Duration::hours(1)), to: Some(t0 + Duration::hours(3)), ..Default::default() })
                .await,
            2
        );
        let oldest = c
            .list_activity(acc, &ActivityFilter { oldest_first: true, limit: Some(2), ..Default::default() })
            .await
            .expect("list");
        assert_eq!(oldest.iter().map(|a| a.at).collect::<Vec<_>>(), vec![t0, t0 + Duration::hours(1)]);

        // CSV export, with a comma and a quote in fields.
        let mut out = Vec::new();
        let filter = ActivityFilter { activity: Some(ActivityKind::Backup), oldest_first: true, ..Default::default() };
        let n = c.export_activity_csv(acc, &filter, &mut out).await.expect("csv");
        assert_eq!(n, 3);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.starts_with("time,activity,service,status,task,item,details\n"), "{text}");
        assert!(text.contains("\"Mail, \"\"HQ\"\"\""), "quoted field: {text}");
        let mut rd = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = rd.records().collect::<Result<_, _>>().expect("parse back");
        assert_eq!(rows.len(), 3);
        assert_eq!(&rows[0][0], "2026-03-10T12:00:00Z");
        assert_eq!(&rows[0][1], "backup");
        assert_eq!(&rows[0][2], "exchange");
        assert_eq!(&rows[0][3], "success");
        assert_eq!(&rows[0][4], "Mail, \"HQ\"");
        assert_eq!(&rows[0][5], "alice@contoso.test");
        let details: serde_json::Value = serde_json::from_str(&rows[0][6]).expect("details JSON");
        assert_eq!(details["summary"], "done, \"ok\"");
        assert_eq!(&rows[1][3], "failed");
    }
);
