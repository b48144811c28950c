//! Discovery: mailboxes become entities with their type and directory
//! properties; unlicensed ones only with the setting; auto-activation.

use catalog::{EntityStatus, EntityType, TaskSettings};

fn flag(e: &catalog::Entity, key: &str) -> Option<bool> {
    e.properties.get(key).and_then(|v| v.as_bool())
}

worker_test!(
    async fn discovery_creates_entities_and_respects_settings(env) {
        let task = env.task(TaskSettings::default()).await;
        let s = worker::discover_task(&env.rt, env.account, task.id, None)
            .await
            .expect("discovery");
        let entities = env.entities(&task).await;
        assert_eq!(s.found, entities.len());
        assert_eq!(s.new, entities.len());
        assert_eq!(s.activated, 0, "no auto-activation by default");
        assert!(s.notice.contains("Public folders"));
        assert!(entities.iter().all(|e| e.status == EntityStatus::NotActive && !e.active));
        assert!(entities.iter().any(|e| e.entity_type == EntityType::User));
        assert!(
            entities.iter().any(|e| e.entity_type == EntityType::Shared),
            "a 25-user tenant has shared mailboxes"
        );
        assert!(
            entities.iter().any(|e| flag(e, "accountEnabled") == Some(false)),
            "disabled accounts are kept and marked"
        );
        // Without the setting, no unlicensed user mailbox is offered.
        assert!(
            !entities
                .iter()
                .any(|e| e.entity_type == EntityType::User && flag(e, "licensed") == Some(false))
        );
        assert!(entities.iter().all(|e| e.email_or_url.is_some()));

        // Discovery again changes nothing.
        let again = worker::discover_task(&env.rt, env.account, task.id, None)
            .await
            .expect("discovery");
        assert_eq!((again.found, again.new, again.archived), (s.found, 0, 0));

        // With unlicensed mailboxes and auto-activation: at least as many,
        // and every new one active.
        let wide = env
            .task(TaskSettings {
                backup_unlicensed: true,
                auto_activate_new: true,
                ..Default::default()
            })
            .await;
        let w = worker::discover_task(&env.rt, env.account, wide.id, None)
            .await
            .expect("discovery");
        assert!(w.found >= s.found);
        assert_eq!(w.activated, w.found);
        let wide_entities = env.entities(&wide).await;
        assert!(wide_entities.iter().all(|e| e.active && e.status == EntityStatus::Scheduled));

        // Activity was logged.
        let log = env
            .rt
            .catalog
            .list_activity(env.account, &Default::default())
            .await
            .expect("activity");
        assert!(log.iter().filter(|a| a.activity == catalog::ActivityKind::Discovery).count() >= 3);
    }
);

worker_test!(
    async fn a_deleted_user_is_archived_by_discovery(env) {
        let task = env.task(TaskSettings::default()).await;
        worker::discover_task(&env.rt, env.account, task.id, None)
            .await
            .expect("discovery");
        let victim = env
            .entities(&task)
            .await
            .into_iter()
            .find(|e| e.entity_type == EntityType::User)
            .expect("a user");
        env.post_sim(&format!("/_sim/users/{}/delete", victim.external_id), serde_json::json!({}))
            .await;
        let s = worker::discover_task(&env.rt, env.account, task.id, None)
            .await
            .expect("discovery");
        assert_eq!(s.archived, 1);
        let after = env.rt.catalog.get_entity(env.account, victim.id).await.expect("entity");
        assert_eq!(after.status, EntityStatus::Archived);
        assert!(after.deleted_in_tenant_at.is_some());
    }
);
