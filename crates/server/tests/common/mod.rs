//! A real server on 127.0.0.1:0 over a fresh catalog: a temp SQLite file or
//! a throwaway PostgreSQL database (as in the catalog's tests).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use catalog::{
    AccountId, Backend, Catalog, CatalogKey, CatalogOptions, DiscoveredEntity, Entity, EntityKind,
    EntityType, ManualClock, NewUser, RetryPolicy, Role, Secret, TaskId, UserId,
};
use chrono::{DateTime, TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use server::{AppState, ServerConfig};
use sqlx::{Connection, Executor, PgConnection};

pub const PASSWORD: &str = "correct horse battery";

/// Where the tests find PostgreSQL; they fail, never skip, without it.
pub fn pg_admin_url() -> String {
    std::env::var("LIFEBOAT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// Nothing.
    None,
    /// Session cookie, with the CSRF header when `csrf` is set.
    Cookie {
        cookie: String,
        csrf: Option<String>,
    },
    /// `Authorization: Bearer ...`.
    Bearer(String),
}

/// A signed-in browser.
#[derive(Clone, Debug)]
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
    /// The whole Set-Cookie header of the sign-in.
    pub set_cookie: String,
}

impl Browser {
    /// Cookie and CSRF header: what a real page sends.
    pub fn auth(&self) -> Auth {
        Auth::Cookie {
            cookie: self.cookie.clone(),
            csrf: Some(self.csrf.clone()),
        }
    }

    /// The cookie alone (what a cross-site form would send, were the
    /// cookie not SameSite).
    pub fn cookie_only(&self) -> Auth {
        Auth::Cookie {
            cookie: self.cookie.clone(),
            csrf: None,
        }
    }
}

pub struct Env {
    pub catalog: Catalog,
    pub clock: ManualClock,
    pub base: String,
    pub http: reqwest::Client,
}

/// An answer: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected answer: {}",
            self.text
        );
        self.body
    }
}

impl Env {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
    ) -> Answer {
        self.raw(
            method,
            path,
            auth,
            body.map(|b| ("application/json", b.to_string())),
        )
        .await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<(&str, String)>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        match auth {
            Auth::None => {}
            Auth::Cookie { cookie, csrf } => {
                req = req.header("cookie", format!("{}={}", server::SESSION_COOKIE, cookie));
                if let Some(c) = csrf {
                    req = req.header("x-csrf-token", c);
                }
            }
            Auth::Bearer(t) => req = req.bearer_auth(t),
        }
        if let Some((content_type, b)) = body {
            req = req.header("content-type", content_type).body(b);
        }
        let resp = req.send().await.expect("request reaches the server");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Answer {
            status,
            body,
            text,
            headers,
        }
    }

    pub async fn get(&self, path: &str, auth: &Auth) -> Answer {
        self.request(Method::GET, path, auth, None).await
    }

    pub async fn post(&self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.request(Method::POST, path, auth, Some(body)).await
    }

    pub async fn patch(&self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.request(Method::PATCH, path, auth, Some(body)).await
    }

    pub async fn delete(&self, path: &str, auth: &Auth) -> Answer {
        self.request(Method::DELETE, path, auth, None).await
    }

    /// An account with one user of `role`.
    pub async fn account_with_user(
        &self,
        name: &str,
        email: &str,
        role: Role,
    ) -> (AccountId, UserId) {
        let a = self
            .catalog
            .create_account(name, "eu-west")
            .await
            .expect("account");
        let u = self.user(a.id, email, role).await;
        (a.id, u)
    }

    pub async fn user(&self, account: AccountId, email: &str, role: Role) -> UserId {
        self.catalog
            .create_user(
                account,
                NewUser {
                    email: email.into(),
                    display_name: email.split('@').next().unwrap_or(email).into(),
                    password: Secret::new(PASSWORD),
                    role,
                },
            )
            .await
            .expect("user")
            .id
    }

    /// Sign in through the API.
    pub async fn login(&self, email: &str) -> Browser {
        let a = self
            .post(
                "/api/session",
                &Auth::None,
                serde_json::json!({"email": email, "password": PASSWORD}),
            )
            .await;
        let set_cookie = a
            .headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = a.expect(200);
        let cookie = set_cookie
            .split(';')
            .next()
            .and_then(|kv| kv.strip_prefix(&format!("{}=", server::SESSION_COOKIE)))
            .unwrap_or_else(|| panic!("no session cookie in {set_cookie:?}"))
            .to_string();
        Browser {
            cookie,
            csrf: body["csrf_token"].as_str().expect("csrf token").to_string(),
            set_cookie,
        }
    }

    /// A task created through the API; returns its id.
    pub async fn create_task(&self, auth: &Auth, name: &str) -> String {
        let body = self
            .post(
                "/api/tasks",
                auth,
                serde_json::json!({
                    "service": "exchange",
                    "name": name,
                    "graph_url": "http://127.0.0.1:9/v1.0",
                    "login_url": "http://127.0.0.1:9",
                    "tenant": format!("tenant-{}", uuid::Uuid::new_v4()),
                    "client_id": "client-1",
                    "client_secret": "very-secret-value-123",
                }),
            )
            .await
            .expect(201);
        body["id"].as_str().expect("task id").to_string()
    }

    /// Mailboxes found by a (simulated) discovery.
    pub async fn mailboxes(&self, account: AccountId, task: &str, names: &[&str]) -> Vec<Entity> {
        let task: TaskId = task.parse().expect("task id");
        let found: Vec<DiscoveredEntity> = names
            .iter()
            .map(|n| DiscoveredEntity {
                kind: EntityKind::Mailbox,
                external_id: format!("ext-{n}"),
                name: n.to_string(),
                email_or_url: Some(format!("{}@contoso.test", n.to_lowercase())),
                entity_type: EntityType::User,
                properties: serde_json::json!({}),
            })
            .collect();
        self.catalog
            .upsert_entities(account, task, &found, false)
            .await
            .expect("entities")
    }
}

fn options(clock: &ManualClock) -> CatalogOptions {
    CatalogOptions {
        max_connections: 8,
        clock: Arc::new(clock.clone()),
        retry: RetryPolicy::default(),
        acquire_timeout: Duration::from_secs(20),
    }
}

async fn start(catalog: Catalog, clock: ManualClock) -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let state = AppState {
        catalog: catalog.clone(),
        clock: Arc::new(clock.clone()),
        config: ServerConfig {
            secure_cookies: false,
        },
        runtime: None,
    };
    tokio::spawn(server::serve(listener, state));
    Env {
        catalog,
        clock,
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
    }
}

/// Run `body` against a server on a fresh database of `backend`, then remove
/// the database (also when the body panics; the panic is passed on).
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let clock = ManualClock::new(t0());
    let key = CatalogKey::new([7; 32]);
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("catalog.db").display()
            );
            let catalog = Catalog::open_with(&url, key, options(&clock))
                .await
                .expect("open sqlite catalog");
            let outcome = tokio::spawn(body(start(catalog, clock).await)).await;
            drop(dir);
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        Backend::Postgres => {
            let admin_url = pg_admin_url();
            let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL is not reachable at {admin_url} ({e}). The server tests need it: \
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
            let outcome = match Catalog::open_with(&url, key, options(&clock)).await {
                Ok(catalog) => {
                    let env = start(catalog.clone(), clock).await;
                    let outcome = tokio::spawn(body(env)).await;
                    catalog.close().await;
                    outcome
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
