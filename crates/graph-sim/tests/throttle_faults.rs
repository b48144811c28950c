//! Realistic throttling and injected faults over HTTP.

mod common;

use common::TestSim;
use graph_sim::config::FaultKind;
use graph_sim::{SimConfig, ThrottleMode};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn exchange_allows_10000_requests_per_mailbox_per_10_minutes() {
    let mut cfg = SimConfig::new(10, 21);
    cfg.throttle = ThrottleMode::Realistic;
    let t = TestSim::with_config(cfg).await;
    let users = t.get_all("/users?$select=id,mail").await;
    let with_mail: Vec<&Value> = users.iter().filter(|u| u["mail"].is_string()).collect();
    let (a, b) = (
        with_mail[0]["id"].as_str().unwrap(),
        with_mail[1]["id"].as_str().unwrap(),
    );
    let path = format!("/users/{a}/mailboxSettings");
    // 500 batches of 20: each inner request counts against the mailbox.
    let batch: Vec<Value> = (0..20)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": path}))
        .collect();
    for _ in 0..500 {
        let (s, v) = t.post("/$batch", json!({ "requests": batch })).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            v["responses"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == 200)
        );
    }
    let r = t.send(reqwest::Method::GET, &path, None, &[]).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=600).contains(&retry));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "ApplicationThrottled");
    // Inside a batch the throttled request is an inner 429 with its Retry-After.
    let (_, v) = t
        .post(
            "/$batch",
            json!({"requests": [{"id": "1", "method": "GET", "url": path}]}),
        )
        .await;
    assert_eq!(v["responses"][0]["status"], 429);
    assert!(v["responses"][0]["headers"]["Retry-After"].is_string());
    // The same mailbox by UPN is the same budget; another mailbox is unaffected.
    let upn = with_mail[0]["mail"].as_str().unwrap();
    assert_eq!(
        t.get(&format!("/users/{upn}/mailboxSettings")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        t.get(&format!("/users/{b}/mailboxSettings")).await.0,
        StatusCode::OK
    );
    let stats = t
        .control(reqwest::Method::GET, "/_sim/stats", json!({}))
        .await;
    assert!(stats["byKey"]["throttled"].as_u64().unwrap() >= 3);
}

#[tokio::test]
async fn sharepoint_resource_units_are_a_tenant_budget_per_minute() {
    let mut cfg = SimConfig::new(10, 22);
    cfg.throttle = ThrottleMode::Realistic;
    let t = TestSim::with_config(cfg).await;
    // 1,250 RU per minute for a small tenant: listings cost 2, so 625 pass and the next is refused,
    // whatever the answer to the listing itself is.
    let mut refused = None;
    for i in 0..700 {
        let (s, v) = t.get("/sites/getAllSites").await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(v["error"]["code"], "activityLimitReached");
            refused = Some(i);
            break;
        }
    }
    assert_eq!(refused, Some(625));
}

#[tokio::test]
async fn throttling_is_off_by_default() {
    let t = TestSim::start(5, 23).await;
    let u = t.get_all("/users?$select=id").await;
    let path = format!("/users/{}/mailboxSettings", u[0]["id"].as_str().unwrap());
    for _ in 0..50 {
        let s = t.get(&path).await.0;
        assert!(s == StatusCode::OK || s == StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn injected_faults_are_503_429_dropped_or_malformed() {
    let mut cfg = SimConfig::new(5, 24);
    cfg.fault_rate = 0.5;
    cfg.fault_kinds = vec![
        FaultKind::Unavailable,
        FaultKind::Throttled,
        FaultKind::Drop,
        FaultKind::Malformed,
    ];
    let t = TestSim::with_config(cfg).await;
    let (mut ok, mut unavailable, mut throttled, mut broken) = (0, 0, 0, 0);
    for _ in 0..200 {
        match t
            .http
            .get(t.url("/users"))
            .bearer_auth(&t.token)
            .send()
            .await
        {
            Err(_) => broken += 1,
            Ok(r) => {
                let status = r.status();
                let retry = r.headers().get("retry-after").is_some();
                match (status, r.bytes().await) {
                    (_, Err(_)) => broken += 1,
                    (StatusCode::SERVICE_UNAVAILABLE, Ok(_)) => {
                        assert!(retry);
                        unavailable += 1
                    }
                    (StatusCode::TOO_MANY_REQUESTS, Ok(_)) => {
                        assert!(retry);
                        throttled += 1
                    }
                    (StatusCode::OK, Ok(b)) => {
                        if serde_json::from_slice::<Value>(&b).is_ok() {
                            ok += 1
                        } else {
                            broken += 1
                        }
                    }
                    (s, _) => panic!("unexpected status {s}"),
                }
            }
        }
    }
    assert!(
        ok > 50 && unavailable > 5 && throttled > 5 && broken > 5,
        "{ok} {unavailable} {throttled} {broken}"
    );
}

#[tokio::test]
async fn invalidated_delta_tokens_and_clock_controls() {
    let t = TestSim::start(5, 25).await;
    let info = t
        .control(reqwest::Method::GET, "/_sim/info", json!({}))
        .await;
    let before = info["now"].as_str().unwrap().to_string();
    let after = t
        .control(
            reqwest::Method::POST,
            "/_sim/clock/advance",
            json!({"days": 3}),
        )
        .await;
    assert!(after["now"].as_str().unwrap() > before.as_str());
    let epoch = t.sim().delta_epoch();
    t.control(reqwest::Method::POST, "/_sim/delta/invalidate", json!({}))
        .await;
    assert_eq!(t.sim().delta_epoch(), epoch + 1);
}
