//! Shared helpers for the simulator's HTTP tests: start a simulator on a free
//! port, get a token the way a daemon app does, and call Graph.
#![allow(dead_code)]

use graph_sim::{RunningSim, SimConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct TestSim {
    pub running: RunningSim,
    pub http: reqwest::Client,
    pub token: String,
}

impl TestSim {
    pub async fn start(users: u32, seed: u64) -> TestSim {
        Self::with_config(SimConfig::new(users, seed)).await
    }

    pub async fn with_config(cfg: SimConfig) -> TestSim {
        let running = graph_sim::start(cfg, "127.0.0.1:0".parse().unwrap(), false)
            .await
            .expect("simulator starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let token = fetch_token(&http, &running).await;
        TestSim {
            running,
            http,
            token,
        }
    }

    pub fn sim(&self) -> &graph_sim::Sim {
        &self.running.sim
    }

    /// Absolute URL of a Graph path (`/users` → `http://127.0.0.1:PORT/v1.0/users`); absolute URLs pass through.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}/v1.0{}", self.running.url, path)
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("request sent")
    }

    /// A JSON call; the body is `null` when the response has none.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let r = self.send(method, path, body, &[]).await;
        let status = r.status();
        let bytes = r.bytes().await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
        };
        (status, v)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> StatusCode {
        self.call(Method::DELETE, path, None).await.0
    }

    /// GET that must succeed.
    pub async fn ok(&self, path: &str) -> Value {
        let (s, v) = self.get(path).await;
        assert!(s.is_success(), "GET {path} -> {s}: {v}");
        v
    }

    /// Every item of a collection, following `@odata.nextLink`.
    pub async fn get_all(&self, path: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut next = Some(self.url(path));
        while let Some(url) = next {
            let v = self.ok(&url).await;
            out.extend(v["value"].as_array().cloned().unwrap_or_default());
            next = v["@odata.nextLink"].as_str().map(str::to_string);
        }
        out
    }

    /// A whole delta round: every page's items, and the `@odata.deltaLink` it ends with.
    pub async fn delta_round(&self, start: &str) -> (Vec<Value>, String) {
        let mut out = Vec::new();
        let mut url = self.url(start);
        loop {
            let v = self.ok(&url).await;
            out.extend(v["value"].as_array().cloned().unwrap_or_default());
            if let Some(n) = v["@odata.nextLink"].as_str() {
                url = n.to_string();
                continue;
            }
            let d = v["@odata.deltaLink"]
                .as_str()
                .unwrap_or_else(|| panic!("delta page without links: {v}"));
            return (out, d.to_string());
        }
    }

    /// Calls the `/_sim` control API.
    pub async fn control(&self, method: Method, path: &str, body: Value) -> Value {
        let r = self
            .http
            .request(method, format!("{}{}", self.running.url, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let s = r.status();
        let bytes = r.bytes().await.unwrap();
        assert!(
            s.is_success(),
            "control {path} -> {s}: {}",
            String::from_utf8_lossy(&bytes)
        );
        if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        }
    }

    /// The id of the first live user matching a predicate on its JSON.
    pub async fn user_where(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let users = self.get_all("/users?$select=id,displayName,mail,userPrincipalName,accountEnabled,assignedLicenses").await;
        users
            .into_iter()
            .find(|u| pred(u))
            .expect("a matching user")
    }
}

pub async fn fetch_token(http: &reqwest::Client, running: &RunningSim) -> String {
    let cfg = &running.sim.cfg;
    let r = http
        .post(format!(
            "{}/{}/oauth2/v2.0/token",
            running.url, cfg.tenant_id
        ))
        .form(&[
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", cfg.client_secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}
