//! A simulator, a runtime on a fresh catalog (SQLite file or PostgreSQL
//! database) and a temp vault, and helpers to create tasks and run jobs.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use catalog::{
    AccountId, CatalogOptions, Entity, JobStatus, ManualClock, NewConnection, NewTask, Service,
    Task, TaskSettings,
};
use chrono::{TimeZone, Utc};
use graph_sim::{RunningSim, SimConfig};
use sqlx::{Connection, Executor, PgConnection};
use worker::{KeySource, Runtime, RuntimeOptions, Storage};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct Env {
    pub rt: Arc<Runtime>,
    pub sim: RunningSim,
    pub account: AccountId,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
}

pub fn pg_admin_url() -> String {
    std::env::var("LIFEBOAT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn sim_config() -> SimConfig {
    let mut cfg = SimConfig::new(25, 7);
    cfg.content_scale = 0.15;
    cfg
}

pub fn options(clock: &ManualClock) -> RuntimeOptions {
    RuntimeOptions {
        lease: Duration::from_secs(10),
        heartbeat: Duration::from_millis(200),
        progress_interval: Duration::from_millis(100),
        reclaim_interval: Duration::from_secs(1),
        poll_interval: Duration::from_millis(100),
        catalog: CatalogOptions {
            clock: Arc::new(clock.clone()),
            ..Default::default()
        },
        graph_root_pem: None,
    }
}

/// Run `body` with a fresh environment on `db`; the PostgreSQL database is
/// dropped afterwards (also when the body panics).
pub async fn run<F, Fut>(db: Db, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_with(db, sim_config(), body).await
}

pub async fn run_with<F, Fut>(db: Db, cfg: SimConfig, body: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0)
            .single()
            .expect("time"),
    );
    let sim = graph_sim::start(cfg, "127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("simulator starts");
    let (storage, key, pg) = match db {
        Db::Sqlite => (
            Storage::Embedded {
                data_dir: dir.path().join("data"),
            },
            None,
            None,
        ),
        Db::Postgres => {
            let admin_url = pg_admin_url();
            let mut admin = PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin_url} ({e})"));
            let name = format!("lb_worker_{}", uuid::Uuid::new_v4().simple());
            admin
                .execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("create database");
            let base = admin_url
                .rsplit_once('/')
                .map(|(b, _)| b)
                .unwrap_or(&admin_url);
            let key_file = dir.path().join("key");
            std::fs::write(&key_file, "ab".repeat(32)).expect("key file");
            (
                Storage::Remote {
                    database_url: format!("{base}/{name}"),
                    vault_url: dir.path().join("vault").display().to_string(),
                },
                Some(KeySource::File(key_file)),
                Some((admin, name)),
            )
        }
    };
    let rt = Runtime::open(&storage, key, options(&clock))
        .await
        .expect("runtime");
    let account = rt.account_by_name("test").await.expect("account");
    let outcome = tokio::spawn(body(Env {
        rt: rt.clone(),
        sim,
        account,
        clock,
        dir,
    }))
    .await;
    rt.catalog.close().await;
    if let Some((mut admin, name)) = pg {
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .expect("drop database");
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

impl Env {
    pub async fn task(&self, settings: TaskSettings) -> Task {
        self.task_in(self.account, settings).await
    }

    pub async fn task_in(&self, account: AccountId, settings: TaskSettings) -> Task {
        self.service_task_in(account, Service::Exchange, settings)
            .await
    }

    /// A task of `service` in the test account.
    pub async fn service_task(&self, service: Service, settings: TaskSettings) -> Task {
        self.service_task_in(self.account, service, settings).await
    }

    /// A task of `service` in `account`, on a connection to the simulator.
    pub async fn service_task_in(
        &self,
        account: AccountId,
        service: Service,
        settings: TaskSettings,
    ) -> Task {
        let cfg = self.sim.sim.cfg.clone();
        let conn = self
            .rt
            .connect(
                account,
                NewConnection {
                    tenant_id: cfg.tenant_id.clone(),
                    client_id: cfg.client_id.clone(),
                    client_secret: catalog::Secret::new(cfg.client_secret.clone()),
                    graph_url: self.sim.graph_url(),
                    login_url: self.sim.url.clone(),
                },
            )
            .await
            .expect("connection");
        self.rt
            .catalog
            .create_task(
                account,
                NewTask {
                    connection_id: conn.id,
                    service,
                    name: format!("{service}"),
                    settings,
                },
            )
            .await
            .expect("task")
    }

    pub async fn entities(&self, task: &Task) -> Vec<Entity> {
        worker::task_entities(&self.rt, task.account_id, task.id)
            .await
            .expect("entities")
    }

    /// The Graph client of a task's connection (to ask the simulator what
    /// Graph answers, as the product does).
    pub async fn graph(&self, task: &Task) -> graph::GraphClient {
        self.rt
            .graph(task.account_id, task.connection_id)
            .await
            .expect("graph client")
    }

    /// The simulator's ground truth of an entity (`users/ID`, `groups/ID`,
    /// `sites/ID`): its items.
    pub async fn truth(&self, what: &str) -> Vec<serde_json::Value> {
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/_sim/truth/{what}", self.sim.url))
            .send()
            .await
            .expect("truth call")
            .json()
            .await
            .expect("truth JSON");
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Run a worker until every given job has finished; returns the jobs.
    pub async fn run_jobs(&self, ids: &[catalog::JobId]) -> Vec<catalog::Job> {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let w = worker::Worker::new(self.rt.clone());
        let handle = tokio::spawn(w.run(2, async move {
            let _ = rx.wait_for(|v| *v).await;
        }));
        let jobs = self.wait_jobs(ids).await;
        let _ = tx.send(true);
        handle.await.expect("worker stops");
        jobs
    }

    pub async fn wait_jobs(&self, ids: &[catalog::JobId]) -> Vec<catalog::Job> {
        for _ in 0..1200 {
            let mut jobs = Vec::new();
            for id in ids {
                jobs.push(
                    self.rt
                        .catalog
                        .get_job(self.account, *id)
                        .await
                        .expect("job"),
                );
            }
            if jobs.iter().all(|j| {
                matches!(
                    j.status,
                    JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
                )
            }) {
                return jobs;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("jobs did not finish in 2 minutes");
    }

    pub async fn post_sim(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let r = reqwest::Client::new()
            .post(format!("{}{}", self.sim.url, path))
            .json(&body)
            .send()
            .await
            .expect("sim control call");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(serde_json::Value::Null)
    }
}
