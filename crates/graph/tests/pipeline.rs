//! The Graph client against the tenant simulator: tokens, paging, errors,
//! throttling, faults, batching.

use std::time::Duration;

use graph::{BatchItem, ErrorClass, GraphClient, GraphConfig, GraphError, Request, Secret};
use graph_sim::config::FaultKind;
use graph_sim::{RunningSim, SimConfig, ThrottleMode};
use serde_json::Value;

async fn sim(cfg: SimConfig) -> RunningSim {
    graph_sim::start(cfg, "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap()
}

fn client_for(s: &RunningSim, secret: &str) -> GraphClient {
    let c = &s.sim.cfg;
    let cfg = GraphConfig::new(
        &s.graph_url(),
        &s.login_url(),
        &c.tenant_id,
        &c.client_id,
        Secret::new(secret),
    )
    .unwrap();
    GraphClient::new(cfg).unwrap()
}

fn client(s: &RunningSim) -> GraphClient {
    client_for(s, &s.sim.cfg.client_secret.clone())
}

#[tokio::test]
async fn tokens_are_cached_and_refreshed_before_they_expire() {
    let mut cfg = SimConfig::new(12, 31);
    cfg.token_lifetime_secs = 2;
    let s = sim(cfg).await;
    let g = client(&s);
    for _ in 0..5 {
        g.get_json::<Value>("/users?$top=1").await.unwrap();
    }
    assert_eq!(g.stats().tokens, 1);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    g.get_json::<Value>("/users?$top=1").await.unwrap();
    assert_eq!(
        g.stats().tokens,
        2,
        "a fresh token replaced the expired one"
    );
}

#[tokio::test]
async fn paging_follows_next_links_without_repeats() {
    let s = sim(SimConfig::new(40, 32)).await;
    let g = client(&s);
    let users: Vec<graph::models::User> = g
        .get_all_typed(&format!(
            "/users?$top=7&$select={}",
            graph::models::USER_SELECT
        ))
        .await
        .unwrap();
    assert_eq!(users.len(), 40);
    let ids: std::collections::HashSet<_> = users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids.len(), 40);
    assert!(users.iter().any(|u| !u.is_licensed()));
    assert!(g.stats().requests >= 6);
}

#[tokio::test]
async fn connection_problems_are_classified_with_guidance() {
    let s = sim(SimConfig::new(5, 33)).await;
    let bad = client_for(&s, "not-the-secret");
    let e = bad.get_json::<Value>("/users").await.unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::Token {
                aadsts: 7000215,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.class(), ErrorClass::Connection);
    assert!(e.guidance().contains("secret"));
    assert!(
        !format!("{e}").contains("not-the-secret"),
        "the secret never appears in errors"
    );

    let g = client(&s);
    let e = g
        .get_json::<Value>("/users/00000000-0000-0000-0000-000000000000")
        .await
        .unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(e.code(), Some("Request_ResourceNotFound"));
    assert!(
        format!("{e}").contains("GET /users/00000000"),
        "errors name the request: {e}"
    );

    s.sim.auth.set_consent(false);
    let e = g.get_json::<Value>("/users").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Connection);
}

#[tokio::test]
async fn injected_503s_429s_and_dropped_connections_are_survived() {
    let mut cfg = SimConfig::new(20, 34);
    cfg.fault_rate = 0.3;
    cfg.fault_kinds = vec![
        FaultKind::Unavailable,
        FaultKind::Throttled,
        FaultKind::Drop,
    ];
    let s = sim(cfg).await;
    let g = client(&s);
    for _ in 0..5 {
        let users = g.get_all("/users?$top=5").await.unwrap();
        assert_eq!(users.len(), 20);
    }
    let st = g.stats();
    assert!(st.retries + st.throttled > 2, "{st:?}");
}

#[tokio::test]
async fn malformed_json_is_an_error_naming_the_request() {
    let mut cfg = SimConfig::new(5, 35);
    cfg.fault_rate = 1.0;
    cfg.fault_kinds = vec![FaultKind::Malformed];
    let s = sim(cfg).await;
    let e = client(&s).get_json::<Value>("/users").await.unwrap_err();
    assert!(matches!(e, GraphError::Decode { .. }), "{e}");
    assert!(format!("{e}").contains("GET /users"));
}

#[tokio::test]
async fn many_concurrent_requests_to_one_mailbox_never_exceed_its_limits() {
    let mut cfg = SimConfig::new(6, 36);
    cfg.throttle = ThrottleMode::Realistic;
    cfg.latency_ms = 15;
    let s = sim(cfg).await;
    let g = client(&s);
    let admin: Value = g.get_json("/users?$top=1&$select=id").await.unwrap();
    let id = admin["value"][0]["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let g = g.clone();
        let path = format!("/users/{id}/mailboxSettings");
        tasks.push(tokio::spawn(
            async move { g.get_json::<Value>(&path).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stats = s.sim.stats.snapshot();
    assert_eq!(
        stats.by_key.get("throttled").copied().unwrap_or(0),
        0,
        "the client kept within 4 concurrent requests"
    );
    assert_eq!(g.stats().throttled, 0);
}

#[tokio::test]
async fn batches_of_any_size_come_back_in_order() {
    let s = sim(SimConfig::new(30, 37)).await;
    let g = client(&s);
    let users = g.get_all("/users?$select=id").await.unwrap();
    let mut items: Vec<BatchItem> = users
        .iter()
        .map(|u| {
            BatchItem::get(
                u["id"].as_str().unwrap(),
                format!("/users/{}", u["id"].as_str().unwrap()),
            )
        })
        .collect();
    items.push(BatchItem::get(
        "missing",
        "/users/00000000-0000-0000-0000-000000000000",
    ));
    let results = g.batch(items).await.unwrap();
    assert_eq!(results.len(), 31);
    for (u, r) in users.iter().zip(&results) {
        assert_eq!(r.status, 200);
        assert_eq!(r.body["id"], u["id"]);
    }
    assert_eq!(results[30].status, 404);
    // 31 requests need two round trips.
    assert_eq!(s.sim.stats.snapshot().by_key.get("batch").copied(), Some(2));
    let _ = Request::get("/users");
}

#[tokio::test]
async fn https_with_a_trusted_root_like_production() {
    let s = graph_sim::start(SimConfig::new(8, 38), "127.0.0.1:0".parse().unwrap(), true)
        .await
        .unwrap();
    assert!(s.url.starts_with("https://"));
    let c = &s.sim.cfg;
    let mut cfg = GraphConfig::new(
        &s.graph_url(),
        &s.login_url(),
        &c.tenant_id,
        &c.client_id,
        Secret::new(c.client_secret.clone()),
    )
    .unwrap();
    // Without trusting the simulator's CA the connection must fail.
    let untrusting = GraphClient::new(cfg.clone()).unwrap();
    let e = untrusting.get_json::<Value>("/users").await.unwrap_err();
    assert!(
        format!("{e}").contains("certificate"),
        "the error says why: {e}"
    );
    cfg.extra_root_pem = s.ca_pem.clone();
    let g = GraphClient::new(cfg).unwrap();
    let users = g.get_all("/users").await.unwrap();
    assert_eq!(users.len(), 8);
    assert!(users.iter().all(|u| u["@odata.nextLink"].is_null()));
}

#[tokio::test]
async fn the_sharepoint_budget_follows_the_tenants_licences() {
    let small = sim(SimConfig::new(25, 41)).await;
    let g = client(&small);
    assert_eq!(
        g.sharepoint_resource_units_per_min(),
        1_250,
        "the configured default"
    );
    g.set_sharepoint_resource_units_per_min(9);
    assert_eq!(g.detect_sharepoint_budget().await.unwrap(), 1_250);
    assert_eq!(g.sharepoint_resource_units_per_min(), 1_250);
    let large = sim(SimConfig::new(1_500, 42)).await;
    let g = client(&large);
    assert_eq!(g.detect_sharepoint_budget().await.unwrap(), 2_500);
    assert_eq!(g.sharepoint_resource_units_per_min(), 2_500);
}
