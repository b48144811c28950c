//! What every engine test needs: the in-process tenant simulator, a Graph
//! client for it, a fresh vault account, and the simulator's control calls.
#![allow(dead_code)]

use graph::{GraphClient, GraphConfig, Secret};
use graph_sim::{RunningSim, SimConfig};
use serde_json::Value;

pub struct Env {
    pub sim: RunningSim,
    pub graph: GraphClient,
    pub http: reqwest::Client,
    pub account: vault::Account,
    _dir: tempfile::TempDir,
}

/// A simulator of `cfg` and a fresh vault account.
pub async fn env(cfg: SimConfig) -> Env {
    let sim = graph_sim::start(cfg, "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let c = &sim.sim.cfg;
    let graph = GraphClient::new(
        GraphConfig::new(
            &sim.graph_url(),
            &sim.login_url(),
            &c.tenant_id,
            &c.client_id,
            Secret::new(c.client_secret.clone()),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = vault::Repository::init(
        vault::Location::from_url(dir.path().to_str().unwrap()).unwrap(),
        vault::InitOptions {
            kdf_m_kib: 1024,
            kdf_t: 1,
            pack_size: 4 * 1024 * 1024,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let key = vault::MasterKey::from_bytes([7; 32]).account_key("acct");
    let account = repo.open_or_init_account("acct", &key).await.unwrap();
    Env {
        sim,
        graph,
        http: reqwest::Client::new(),
        account,
        _dir: dir,
    }
}

impl Env {
    /// POST to a simulator control endpoint (`/_sim/...`); it must succeed.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.sim.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }
}
