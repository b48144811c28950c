use catalog::{
    ActivationRule, Deactivation, Error, Frequency, NewRule, NewTask, Retention, RuleDefinition,
    RuleKind, RuleMode, Service, TaskSettings, TaskStatus, UrlMatch,
};

db_test!(
    async fn task_crud_settings_and_deletion_grace(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let conn = db.connection(acc).await;
        let t = c
            .create_task(
                acc,
                NewTask {
                    connection_id: conn,
                    service: Service::Exchange,
                    name: "Mail".into(),
                    settings: TaskSettings::default(),
                },
            )
            .await
            .expect("create");
        assert!(t.settings.index_for_search, "search indexing is on by default");
        assert_eq!(t.settings.retention, Retention::Unlimited);
        assert_eq!(t.status, TaskStatus::Active);
        assert_eq!(c.get_task(acc, t.id).await.expect("get"), t);

        let settings = TaskSettings {
            index_for_search: false,
            backup_unlicensed: true,
            auto_activate_new: true,
            archived_retention_days: Some(90),
            frequency: Frequency::ThreeTimesADay,
            backup_hour_utc: 23,
            region: "EU".into(),
            retention: Retention::Months(18),
        };
        let t2 = c.update_task_settings(acc, t.id, &settings).await.expect("settings");
        assert_eq!(t2.settings, settings);
        assert_eq!(c.rename_task(acc, t.id, "Exchange (HQ)").await.expect("rename").name, "Exchange (HQ)");
        assert_eq!(c.set_task_status(acc, t.id, TaskStatus::Paused).await.expect("pause").status, TaskStatus::Paused);

        let od = c
            .create_task(
                acc,
                NewTask {
                    connection_id: conn,
                    service: Service::OneDrive,
                    name: "Drives".into(),
                    settings: TaskSettings { retention: Retention::Years(7), ..TaskSettings::default() },
                },
            )
            .await
            .expect("create");
        assert_eq!(c.list_tasks(acc, None).await.expect("list").len(), 2);
        assert_eq!(c.list_tasks(acc, Some(Service::OneDrive)).await.expect("list"), vec![od.clone()]);

        // Deletion: 7-day grace, cancellable.
        let req = c.request_task_deletion(acc, od.id).await.expect("delete");
        assert_eq!(req.purge_after(), Some(crate::common::t0() + chrono::Duration::days(7)));
        db.clock.advance(chrono::Duration::days(6));
        assert!(c.tasks_due_for_purge().await.expect("due").is_empty());
        assert!(c.cancel_task_deletion(acc, od.id).await.expect("cancel").deletion_requested_at.is_none());
        c.request_task_deletion(acc, od.id).await.expect("delete");
        db.clock.advance(chrono::Duration::days(7));
        let due = c.tasks_due_for_purge().await.expect("due");
        assert_eq!(due.iter().map(|t| t.id).collect::<Vec<_>>(), vec![od.id]);
        c.purge_task(acc, od.id).await.expect("purge");
        assert!(matches!(c.get_task(acc, od.id).await, Err(Error::NotFound(_))));

        // Bad settings are refused.
        let bad = TaskSettings { backup_hour_utc: 24, ..TaskSettings::default() };
        assert!(matches!(c.update_task_settings(acc, t.id, &bad).await, Err(Error::InvalidInput(_))));
        let bad = TaskSettings { retention: Retention::Days(0), ..TaskSettings::default() };
        assert!(matches!(c.update_task_settings(acc, t.id, &bad).await, Err(Error::InvalidInput(_))));
        assert!(matches!(c.rename_task(acc, t.id, "").await, Err(Error::InvalidInput(_))));
        // A connection that does not exist.
        let missing = c
            .create_task(
                acc,
                NewTask {
                    connection_id: catalog::ConnectionId::random(),
                    service: Service::Teams,
                    name: "x".into(),
                    settings: TaskSettings::default(),
                },
            )
            .await;
        assert!(matches!(missing, Err(Error::NotFound(_))), "{missing:?}");
    }
);

db_test!(
    async fn activation_rules_crud(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let task = db.task(acc, Service::SharePoint).await;
        let r1 = c
            .create_rule(
                acc,
                NewRule {
                    task_id: task.id,
                    definition: RuleDefinition::Property {
                        property: "department".into(),
                        values: vec!["Sales".into(), "R&D".into()],
                    },
                    mode: RuleMode::Recurring,
                    deactivation: Deactivation::Pause,
                },
            )
            .await
            .expect("create");
        assert_eq!(r1.definition.kind(), RuleKind::Property);
        db.clock.advance(chrono::Duration::seconds(1));
        let r2 = c
            .create_rule(
                acc,
                NewRule {
                    task_id: task.id,
                    definition: RuleDefinition::Url { match_: UrlMatch::BeginsWith, value: "https://contoso/sites/hr".into() },
                    mode: RuleMode::Once,
                    deactivation: Deactivation::Keep,
                },
            )
            .await
            .expect("create");
        assert_eq!(c.get_rule(acc, r1.id).await.expect("get"), r1);
        let listed: Vec<ActivationRule> = c.list_rules(acc, Some(task.id)).await.expect("list");
        assert_eq!(listed, vec![r1.clone(), r2.clone()]);
        let def = RuleDefinition::Group { group_id: "g-1".into(), group_name: "Finance".into() };
        let upd = c.update_rule(acc, r1.id, &def, RuleMode::Recurring, Deactivation::Delete).await.expect("update");
        assert_eq!(upd.definition, def);
        assert_eq!(upd.deactivation, Deactivation::Delete);
        c.mark_rule_evaluated(acc, r1.id).await.expect("evaluated");
        assert_eq!(c.get_rule(acc, r1.id).await.expect("get").last_evaluated_at, Some(db.clock_now()));
        c.delete_rule(acc, r2.id).await.expect("delete");
        assert_eq!(c.list_rules(acc, None).await.expect("list").len(), 1);
        assert!(matches!(c.delete_rule(acc, r2.id).await, Err(Error::NotFound(_))));
        let csv = RuleDefinition::Csv { emails: vec!["a@contoso.test".into()] };
        let r3 = c
            .create_rule(
                acc,
                NewRule { task_id: task.id, definition: csv.clone(), mode: RuleMode::Once, deactivation: Deactivation::Keep },
            )
            .await
            .expect("csv rule");
        assert_eq!(c.get_rule(acc, r3.id).await.expect("get").definition, csv);
    }
);
