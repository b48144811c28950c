use catalog::{
    DiscoveredEntity, EntityFilter, EntityKind, EntityStatus, EntityType, Error, RunOutcome,
    Service,
};

db_test!(
    async fn entities_discovery_status_and_filters(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let task = db.task(acc, Service::Exchange).await;
        let es = db.mailboxes(acc, &task, &["Alice Adams", "Bob Brown", "Carol 100% Cole", "Dave Dunn"]).await;
        assert_eq!(es.len(), 4);
        assert!(es.iter().all(|e| e.status == EntityStatus::NotActive && !e.active));
        assert_eq!(es[0].properties["department"], "Sales");

        // Discovery again: names and properties update, status is kept.
        c.activate_entities(acc, &[es[0].id, es[1].id]).await.expect("activate");
        db.clock.advance(chrono::Duration::hours(1));
        let again = c
            .upsert_entities(
                acc,
                task.id,
                &[DiscoveredEntity {
                    kind: EntityKind::Mailbox,
                    external_id: "ext-Alice Adams".into(),
                    name: "Alice Smith".into(),
                    email_or_url: Some("alice.smith@contoso.test".into()),
                    entity_type: EntityType::Shared,
                    properties: serde_json::json!({"department": "Legal"}),
                }],
                false,
            )
            .await
            .expect("upsert");
        assert_eq!(again[0].id, es[0].id);
        assert_eq!(again[0].name, "Alice Smith");
        assert_eq!(again[0].entity_type, EntityType::Shared);
        assert_eq!(again[0].status, EntityStatus::Scheduled);
        assert!(again[0].active);
        assert_eq!(again[0].properties["department"], "Legal");
        assert_eq!(c.get_entity_by_external_id(acc, task.id, "ext-Bob Brown").await.expect("by ext").id, es[1].id);

        // Filters.
        let all = c.list_entities(acc, &EntityFilter { task_id: Some(task.id), ..Default::default() }).await.expect("list");
        assert_eq!(all.len(), 4);
        let scheduled = EntityFilter { statuses: vec![EntityStatus::Scheduled], ..Default::default() };
        assert_eq!(c.count_entities(acc, &scheduled).await.expect("count"), 2);
        let search = |s: &str| EntityFilter { search: Some(s.into()), ..Default::default() };
        let found = c.list_entities(acc, &search("bob")).await.expect("search");
        assert_eq!(found.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), vec!["Bob Brown"]);
        // LIKE wildcards in the search are literal.
        let found = c.list_entities(acc, &search("100%")).await.expect("search");
        assert_eq!(found.len(), 1);
        assert_eq!(c.count_entities(acc, &search("%")).await.expect("count"), 1);
        assert_eq!(c.count_entities(acc, &search("_")).await.expect("count"), 0);
        // Search also looks at the address.
        assert_eq!(c.count_entities(acc, &search("DAVE.DUNN@")).await.expect("count"), 1);
        let page = c
            .list_entities(acc, &EntityFilter { limit: Some(2), offset: 1, ..Default::default() })
            .await
            .expect("page");
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].name, "Bob Brown");

        // Tags.
        let vip = c.create_tag(acc, "VIP").await.expect("tag");
        assert!(matches!(c.create_tag(acc, "VIP").await, Err(Error::Conflict(_))));
        let other = c.create_tag(acc, "Board").await.expect("tag");
        assert_eq!(c.apply_tag(acc, vip.id, &[es[1].id, es[2].id]).await.expect("apply"), 2);
        assert_eq!(c.apply_tag(acc, vip.id, &[es[1].id]).await.expect("apply again"), 0);
        c.apply_tag(acc, other.id, &[es[1].id]).await.expect("apply");
        let tagged = c.list_entities(acc, &EntityFilter { tag_id: Some(vip.id), ..Default::default() }).await.expect("list");
        assert_eq!(tagged.iter().map(|e| e.id).collect::<Vec<_>>(), vec![es[1].id, es[2].id]);
        let bob = c.get_entity(acc, es[1].id).await.expect("get");
        assert_eq!(bob.tags.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), vec!["Board", "VIP"]);
        assert_eq!(c.remove_tag(acc, vip.id, &[es[1].id]).await.expect("remove"), 1);
        assert_eq!(c.count_entities(acc, &EntityFilter { tag_id: Some(vip.id), ..Default::default() }).await.expect("n"), 1);
        assert_eq!(c.rename_tag(acc, other.id, "Directors").await.expect("rename").name, "Directors");
        assert_eq!(c.list_tags(acc).await.expect("tags").len(), 2);
        c.delete_tag(acc, other.id).await.expect("delete tag");
        assert!(c.get_entity(acc, es[1].id).await.expect("get").tags.is_empty());

        // Status changes.
        assert_eq!(c.pause_entities(acc, &[es[0].id]).await.expect("pause"), 1);
        assert_eq!(c.get_entity(acc, es[0].id).await.expect("get").status, EntityStatus::Paused);
        let done = c
            .record_entity_backup(acc, es[1].id, db.clock_now(), RunOutcome::Partial, 12_345)
            .await
            .expect("record");
        assert_eq!(done.status, EntityStatus::Partial);
        assert_eq!(done.backup_size_bytes, 12_345);
        assert_eq!(done.last_outcome, Some(RunOutcome::Partial));
        assert!(done.last_backup_at.is_some());
        let gone = c.mark_entity_deleted_in_tenant(acc, es[1].id).await.expect("archive");
        assert_eq!(gone.status, EntityStatus::Archived);
        assert!(gone.deleted_in_tenant_at.is_some());
        // Archived entities are not re-activated by a bulk action.
        assert_eq!(c.activate_entities(acc, &[es[1].id]).await.expect("activate"), 0);
        assert_eq!(
            c.set_entity_status(acc, es[3].id, EntityStatus::BackedUpInAnotherTask).await.expect("status").status,
            EntityStatus::BackedUpInAnotherTask
        );
        assert_eq!(c.request_entity_deletion(acc, &[es[2].id, es[3].id]).await.expect("delete"), 2);
        assert!(c.get_entity(acc, es[2].id).await.expect("get").deletion_requested_at.is_some());
        assert_eq!(c.cancel_entity_deletion(acc, &[es[2].id]).await.expect("cancel"), 1);
        assert!(c.get_entity(acc, es[2].id).await.expect("get").deletion_requested_at.is_none());
        assert_eq!(c.deactivate_entities(acc, &[es[0].id]).await.expect("deactivate"), 1);
        assert!(!c.get_entity(acc, es[0].id).await.expect("get").active);

        // Auto-activation of new entities.
        let new = c
            .upsert_entities(
                acc,
                task.id,
                &[DiscoveredEntity {
                    kind: EntityKind::Mailbox,
                    external_id: "ext-new".into(),
                    name: "New Hire".into(),
                    email_or_url: None,
                    entity_type: EntityType::User,
                    properties: serde_json::Value::Null,
                }],
                true,
            )
            .await
            .expect("upsert");
        assert_eq!(new[0].status, EntityStatus::Scheduled);
        assert!(new[0].active);
    }
);

db_test!(
    async fn two_tasks_covering_one_object_back_it_up_once(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let sites = db.task(acc, Service::SharePoint).await;
        // A second task on the same tenant connection, and a Teams task.
        let second = c
            .create_task(
                acc,
                catalog::NewTask {
                    connection_id: sites.connection_id,
                    service: Service::SharePoint,
                    name: "Sites again".into(),
                    settings: Default::default(),
                },
            )
            .await
            .expect("task");
        let teams = c
            .create_task(
                acc,
                catalog::NewTask {
                    connection_id: sites.connection_id,
                    service: Service::Teams,
                    name: "Teams".into(),
                    settings: Default::default(),
                },
            )
            .await
            .expect("task");
        let site = |id: &str, group: Option<&str>| DiscoveredEntity {
            kind: EntityKind::Site,
            external_id: id.into(),
            name: id.into(),
            email_or_url: Some(format!("https://contoso.sharepoint.com/sites/{id}")),
            entity_type: EntityType::Site,
            properties: match group {
                Some(g) => serde_json::json!({ "groupId": g }),
                None => serde_json::json!({}),
            },
        };
        let first = c.upsert_entities(acc, sites.id, &[site("hr", None), site("sales", Some("g-sales"))], true).await.expect("upsert");
        assert_eq!(c.refresh_coverage(acc, sites.id).await.expect("coverage"), (0, 0));
        // The second task activates the same site: it is backed up in the first.
        let dup = c.upsert_entities(acc, second.id, &[site("hr", None)], true).await.expect("upsert");
        assert_eq!(c.refresh_coverage(acc, second.id).await.expect("coverage"), (1, 0));
        assert_eq!(c.get_entity(acc, dup[0].id).await.expect("get").status, EntityStatus::BackedUpInAnotherTask);
        // The first task's own entity is untouched (first come, first kept).
        assert_eq!(c.refresh_coverage(acc, sites.id).await.expect("coverage"), (0, 0));
        assert_eq!(c.get_entity(acc, first[0].id).await.expect("get").status, EntityStatus::Scheduled);
        // A Teams task protecting the site's group covers the group site.
        c.upsert_entities(
            acc,
            teams.id,
            &[DiscoveredEntity {
                kind: EntityKind::Team,
                external_id: "g-sales".into(),
                name: "Sales".into(),
                email_or_url: Some("sales@contoso.test".into()),
                entity_type: EntityType::Team,
                properties: serde_json::json!({}),
            }],
            true,
        )
        .await
        .expect("upsert");
        assert_eq!(c.refresh_coverage(acc, sites.id).await.expect("coverage"), (1, 0));
        assert_eq!(c.get_entity(acc, first[1].id).await.expect("get").status, EntityStatus::BackedUpInAnotherTask);
        // Pausing the first task's site releases the second task's copy.
        c.pause_entities(acc, &[first[0].id]).await.expect("pause");
        assert_eq!(c.refresh_coverage(acc, second.id).await.expect("coverage"), (0, 1));
        assert_eq!(c.get_entity(acc, dup[0].id).await.expect("get").status, EntityStatus::Scheduled);
        // Another account's tasks never cover this account's entities.
        let other = db.account("Fabrikam").await;
        let other_task = db.task(other, Service::SharePoint).await;
        c.upsert_entities(other, other_task.id, &[site("hr", None)], true).await.expect("upsert");
        assert_eq!(c.refresh_coverage(other, other_task.id).await.expect("coverage"), (0, 0));
        assert!(matches!(c.refresh_coverage(other, sites.id).await, Err(Error::NotFound(_))));
    }
);

db_test!(
    async fn rules_remember_what_they_activated(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let task = db.task(acc, Service::Exchange).await;
        let es = db.mailboxes(acc, &task, &["Alice Adams", "Bob Brown"]).await;
        let rule = c
            .create_rule(
                acc,
                catalog::NewRule {
                    task_id: task.id,
                    definition: catalog::RuleDefinition::Group { group_id: "g1".into(), group_name: "Sales".into() },
                    mode: catalog::RuleMode::Recurring,
                    deactivation: catalog::Deactivation::Pause,
                },
            )
            .await
            .expect("rule");
        c.record_rule_matches(acc, rule.id, &[es[0].id, es[1].id]).await.expect("record");
        c.record_rule_matches(acc, rule.id, &[es[0].id]).await.expect("record again");
        let mut want = vec![es[0].id, es[1].id];
        want.sort_by_key(|e| e.to_string());
        assert_eq!(c.rule_matches(acc, rule.id).await.expect("matches"), want);
        c.forget_rule_matches(acc, rule.id, &[es[1].id]).await.expect("forget");
        assert_eq!(c.rule_matches(acc, rule.id).await.expect("matches"), vec![es[0].id]);
        // Scoped to the account.
        let other = db.account("Fabrikam").await;
        assert!(c.rule_matches(other, rule.id).await.expect("matches").is_empty());
        assert!(c.record_rule_matches(other, rule.id, &[es[0].id]).await.is_err());
        // Deleting the rule forgets its matches.
        c.delete_rule(acc, rule.id).await.expect("delete");
        assert!(c.rule_matches(acc, rule.id).await.expect("matches").is_empty());
    }
);
