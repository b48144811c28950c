//! Test databases: a temp SQLite file or a fresh PostgreSQL database.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use catalog::{
    AccountId, Backend, Catalog, CatalogKey, CatalogOptions, ConnectionId, DiscoveredEntity,
    Entity, EntityKind, EntityType, ManualClock, NewConnection, NewTask, RetryPolicy, Service,
    Task, TaskSettings,
};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Connection, Executor, PgConnection};

/// Where the tests find PostgreSQL (a database they may create databases
/// from). CI starts it; tests fail, never skip, when it is unreachable.
pub fn pg_admin_url() -> String {
    std::env::var("LIFEBOAT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn key() -> CatalogKey {
    CatalogKey::new([42; 32])
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// One test's database.
pub struct TestDb {
    pub catalog: Catalog,
    pub clock: ManualClock,
    pub url: String,
    pub backend: Backend,
}

pub fn options(clock: &ManualClock) -> CatalogOptions {
    CatalogOptions {
        max_connections: 8,
        clock: Arc::new(clock.clone()),
        retry: RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(600),
        },
        acquire_timeout: Duration::from_secs(20),
    }
}

impl TestDb {
    /// A separate raw pool, for reading and damaging rows behind the
    /// catalog's back.
    pub async fn raw(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        AnyPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await
            .expect("raw pool")
    }

    /// Open the same database again with another key.
    pub async fn reopen(&self, key: CatalogKey) -> catalog::Result<Catalog> {
        Catalog::open_with(&self.url, key, options(&self.clock)).await
    }

    pub async fn account(&self, name: &str) -> AccountId {
        self.catalog
            .create_account(name, "eu-west")
            .await
            .expect("account")
            .id
    }

    pub async fn connection(&self, account: AccountId) -> ConnectionId {
        self.catalog
            .create_connection(
                account,
                NewConnection {
                    tenant_id: format!("tenant-{}", uuid::Uuid::new_v4()),
                    client_id: "client-1".into(),
                    client_secret: "s3cr3t-value-xyz".into(),
                    graph_url: "http://127.0.0.1:1/graph".into(),
                    login_url: "http://127.0.0.1:1/login".into(),
                },
            )
            .await
            .expect("connection")
            .id
    }

    pub async fn task(&self, account: AccountId, service: Service) -> Task {
        let conn = self.connection(account).await;
        self.catalog
            .create_task(
                account,
                NewTask {
                    connection_id: conn,
                    service,
                    name: format!("{service} backup"),
                    settings: TaskSettings::default(),
                },
            )
            .await
            .expect("task")
    }

    pub async fn mailboxes(&self, account: AccountId, task: &Task, names: &[&str]) -> Vec<Entity> {
        let found: Vec<DiscoveredEntity> = names
            .iter()
            .map(|n| DiscoveredEntity {
                kind: EntityKind::Mailbox,
                external_id: format!("ext-{n}"),
                name: n.to_string(),
                email_or_url: Some(format!(
                    "{}@contoso.test",
                    n.to_lowercase().replace(' ', ".")
                )),
                entity_type: EntityType::User,
                properties: serde_json::json!({"department": "Sales", "city": "Oslo"}),
            })
            .collect();
        self.catalog
            .upsert_entities(account, task.id, &found, false)
            .await
            .expect("entities")
    }
}

/// Run `body` against a fresh database of `backend`, then remove it (also
/// when the body panics; the panic is then passed on).
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let clock = ManualClock::new(t0());
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("catalog.db").display()
            );
            let catalog = Catalog::open_with(&url, key(), options(&clock))
                .await
                .expect("open sqlite catalog");
            let outcome = tokio::spawn(body(TestDb {
                catalog,
                clock,
                url,
                backend,
            }))
            .await;
            drop(dir);
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        Backend::Postgres => {
            let admin_url = pg_admin_url();
            let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin_url} ({e}). The catalog tests need it: \
                     start it (.ci/run does) or point LIFEBOAT_TEST_PG_URL at one."
                )
            });
            let name = format!("lb_test_{}", uuid::Uuid::new_v4().simple());
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create test database");
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin_url);
            let url = format!("{base}/{name}");
            let outcome = match Catalog::open_with(&url, key(), options(&clock)).await {
                Ok(catalog) => {
                    tokio::spawn(body(TestDb {
                        catalog,
                        clock,
                        url,
                        backend,
                    }))
                    .await
                }
                Err(e) => {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                    panic!("open postgres catalog: {e}");
                }
            };
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .expect("drop test database");
            let _ = admin.close().await;
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

impl TestDb {
    pub fn clock_now(&self) -> DateTime<Utc> {
        use catalog::Clock;
        self.clock.now()
    }
}
