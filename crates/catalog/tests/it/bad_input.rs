use std::time::Duration;

use catalog::{Catalog, CatalogOptions, DiscoveredEntity, EntityKind, EntityType, Error, Service};

db_test!(
    async fn unknown_enum_or_bad_json_in_a_row_is_an_error(db) {
        let c = &db.catalog;
        let acc = db.account("A").await;
        let task = db.task(acc, Service::Exchange).await;
        let es = db.mailboxes(acc, &task, &["Alice"]).await;
        let raw = db.raw().await;
        sqlx::query("UPDATE backup_tasks SET service = 'fax' WHERE id = $1")
            .bind(task.id.to_string())
            .execute(&raw)
            .await
            .expect("damage");
        let err = c.get_task(acc, task.id).await.expect_err("unknown service");
        assert!(matches!(err, Error::Corrupt(_)), "{err:?}");
        assert!(err.to_string().contains("fax"), "{err}");
        assert!(matches!(c.list_tasks(acc, None).await, Err(Error::Corrupt(_))));

        sqlx::query("UPDATE entities SET properties = 'not json', status = 'sleeping' WHERE id = $1")
            .bind(es[0].id.to_string())
            .execute(&raw)
            .await
            .expect("damage");
        assert!(matches!(c.get_entity(acc, es[0].id).await, Err(Error::Corrupt(_))));
        assert!(matches!(c.list_entities(acc, &Default::default()).await, Err(Error::Corrupt(_))));

        sqlx::query("UPDATE accounts SET status = 'zombie' WHERE id = $1")
            .bind(acc.to_string())
            .execute(&raw)
            .await
            .expect("damage");
        assert!(matches!(c.get_account(acc).await, Err(Error::Corrupt(_))));

        // Bad input from callers.
        let bad_props = DiscoveredEntity {
            kind: EntityKind::Mailbox,
            external_id: "x".into(),
            name: "X".into(),
            email_or_url: None,
            entity_type: EntityType::User,
            properties: serde_json::json!([1, 2]),
        };
        assert!(matches!(c.create_tag(acc, "").await, Err(Error::InvalidInput(_))));
        let other = db.account("B").await;
        let t2 = db.task(other, Service::Teams).await;
        assert!(matches!(c.upsert_entities(other, t2.id, &[bad_props], false).await, Err(Error::InvalidInput(_))));
        assert!("sleeping".parse::<catalog::EntityStatus>().is_err());
        assert!("not-a-uuid".parse::<catalog::TaskId>().is_err());
    }
);

db_test!(
    async fn bad_catalog_urls_are_errors(db) {
        let opts = CatalogOptions { acquire_timeout: Duration::from_secs(2), ..crate::common::options(&db.clock) };
        for url in ["", "nonsense", "mysql://root@localhost/x", "http://example.test/db", "postgres://user:pw@[::1/x"] {
            let r = Catalog::open_with(url, crate::common::key(), opts.clone()).await;
            let err = r.expect_err(url);
            assert!(!err.to_string().contains("pw"), "secret in error text: {err}");
            assert!(matches!(err, Error::InvalidUrl(_)) || url.starts_with("postgres"), "{url}: {err:?}");
        }
        // A path that cannot exist, on this backend's kind of URL.
        let url = match db.backend {
            catalog::Backend::Sqlite => "sqlite:///nonexistent-dir-lifeboat/x/catalog.db".to_string(),
            catalog::Backend::Postgres => "postgres://postgres@127.0.0.1:1/none".to_string(),
        };
        let err = Catalog::open_with(&url, crate::common::key(), opts).await.expect_err("unreachable");
        assert!(!err.guidance().is_empty());
        // The working catalog is still fine.
        db.catalog.list_accounts().await.expect("still works");
    }
);
