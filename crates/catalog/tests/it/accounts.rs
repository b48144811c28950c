use catalog::{AccountStatus, Backend, CatalogKey, ConnectionStatus, Error, NewConnection, Secret};
use sqlx::Row;

db_test!(
    async fn migrations_from_empty(db) {
        let raw = db.raw().await;
        for table in [
            "accounts",
            "connections",
            "backup_tasks",
            "entities",
            "tags",
            "entity_tags",
            "activation_rules",
            "rule_entities",
            "backup_runs",
            "backup_run_failures",
            "activity",
            "jobs",
        ] {
            let n: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
                .fetch_one(&raw)
                .await
                .unwrap_or_else(|e| panic!("{table}: {e}"))
                .get("n");
            assert_eq!(n, 0, "{table} starts empty");
        }
        // Opening again finds the schema current and changes nothing.
        let again = db.reopen(crate::common::key()).await.expect("reopen");
        assert_eq!(again.backend(), db.backend);
        assert!(again.list_accounts().await.expect("list").is_empty());
        if db.backend == Backend::Sqlite {
            assert!(db.url.starts_with("sqlite://") && !db.url.contains(":memory:"));
        }
    }
);

db_test!(
    async fn account_crud(db) {
        let c = &db.catalog;
        let a = c.create_account("Contoso", "eu-west").await.expect("create");
        assert_eq!(a.status, AccountStatus::Trial);
        assert_eq!(a.created_at, crate::common::t0());
        assert_eq!(c.get_account(a.id).await.expect("get"), a);
        db.clock.advance(chrono::Duration::minutes(5));
        let b = c.create_account("Fabrikam", "us-east").await.expect("create");
        let renamed = c.rename_account(a.id, "Contoso Ltd").await.expect("rename");
        assert_eq!(renamed.name, "Contoso Ltd");
        assert!(renamed.updated_at > a.updated_at);
        let active = c.set_account_status(b.id, AccountStatus::Active).await.expect("status");
        assert_eq!(active.status, AccountStatus::Active);
        let all = c.list_accounts().await.expect("list");
        assert_eq!(all.iter().map(|x| x.id).collect::<Vec<_>>(), vec![a.id, b.id]);
        assert!(matches!(c.get_account(catalog::AccountId::random()).await, Err(Error::NotFound(_))));
        assert!(matches!(c.create_account("  ", "eu").await, Err(Error::InvalidInput(_))));
    }
);

db_test!(
    async fn connection_crud_and_secret_encrypted(db) {
        let c = &db.catalog;
        let acc = db.account("Contoso").await;
        let conn = c
            .create_connection(
                acc,
                NewConnection {
                    tenant_id: "tenant-a".into(),
                    client_id: "app-1".into(),
                    client_secret: Secret::new("Very$ecretClientValue"),
                    graph_url: "https://graph.example.test".into(),
                    login_url: "https://login.example.test".into(),
                },
            )
            .await
            .expect("create");
        assert_eq!(conn.status, ConnectionStatus::Connected);
        assert_eq!(c.get_connection(acc, conn.id).await.expect("get"), conn);
        assert_eq!(c.list_connections(acc).await.expect("list"), vec![conn.clone()]);
        assert_eq!(c.connection_secret(acc, conn.id).await.expect("secret").expose(), "Very$ecretClientValue");

        // The raw row holds no plaintext.
        let raw = db.raw().await;
        let row = sqlx::query("SELECT client_secret FROM connections WHERE id = $1")
            .bind(conn.id.to_string())
            .fetch_one(&raw)
            .await
            .expect("raw row");
        let stored: Vec<u8> = row.get("client_secret");
        assert!(stored.len() > "Very$ecretClientValue".len());
        assert!(!stored.windows(6).any(|w| w == b"Very$e"), "plaintext in the row");
        let dump = format!("{conn:?} {:?}", c.connection_secret(acc, conn.id).await.expect("secret"));
        assert!(!dump.contains("Very$ecret"), "Debug shows the secret: {dump}");
        let new = NewConnection {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new("Very$ecretClientValue"),
            graph_url: "https://g".into(),
            login_url: "https://l".into(),
        };
        assert!(!format!("{new:?}").contains("Very$ecret"));

        // Another key cannot read it.
        let other = db.reopen(CatalogKey::new([1; 32])).await.expect("reopen");
        assert!(matches!(other.connection_secret(acc, conn.id).await, Err(Error::Decrypt)));

        // Disconnect with a reason, then re-authorise.
        db.clock.advance(chrono::Duration::hours(1));
        let off = c
            .set_connection_status(acc, conn.id, ConnectionStatus::Disconnected { reason: "consent revoked".into() })
            .await
            .expect("disconnect");
        assert_eq!(off.status, ConnectionStatus::Disconnected { reason: "consent revoked".into() });
        let on = c.reauthorize_connection(acc, conn.id, "app-2", &Secret::new("new-secret")).await.expect("reauth");
        assert_eq!(on.status, ConnectionStatus::Connected);
        assert_eq!(on.client_id, "app-2");
        assert_eq!(c.connection_secret(acc, conn.id).await.expect("secret").expose(), "new-secret");

        // One connection per tenant and account.
        let dup = c
            .create_connection(
                acc,
                NewConnection {
                    tenant_id: "tenant-a".into(),
                    client_id: "x".into(),
                    client_secret: "y".into(),
                    graph_url: "https://g".into(),
                    login_url: "https://l".into(),
                },
            )
            .await;
        assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
        let bad = c
            .create_connection(
                acc,
                NewConnection {
                    tenant_id: "t2".into(),
                    client_id: "x".into(),
                    client_secret: "y".into(),
                    graph_url: "ftp://g".into(),
                    login_url: "https://l".into(),
                },
            )
            .await;
        assert!(matches!(bad, Err(Error::InvalidInput(_))));
    }
);
