//! Identity endpoints, token checks, the directory, paging, `$batch`.

mod common;

use common::TestSim;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn token_endpoint_errors_look_like_entra_id() {
    let t = TestSim::start(10, 3).await;
    let cfg = &t.sim().cfg;
    let post = |form: Vec<(&'static str, String)>| {
        let url = format!("{}/{}/oauth2/v2.0/token", t.running.url, cfg.tenant_id);
        let http = t.http.clone();
        async move { http.post(url).form(&form).send().await.unwrap() }
    };
    let base = |secret: &str| {
        vec![
            ("client_id", cfg.client_id.clone()),
            ("client_secret", secret.to_string()),
            ("grant_type", "client_credentials".to_string()),
            ("scope", "https://graph.microsoft.com/.default".to_string()),
        ]
    };
    let r = post(base("wrong")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_client");
    assert_eq!(v["error_codes"][0], 7000215);

    let mut bad_scope = base(&cfg.client_secret);
    bad_scope[3].1 = "User.Read".into();
    let v: Value = post(bad_scope).await.json().await.unwrap();
    assert_eq!(v["error"], "invalid_scope");

    let r = t
        .http
        .post(format!("{}/not-a-tenant/oauth2/v2.0/token", t.running.url))
        .form(&base(&cfg.client_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    let r = post(base(&cfg.client_secret)).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
}

#[tokio::test]
async fn graph_rejects_missing_forged_and_expired_tokens() {
    let mut cfg = graph_sim::SimConfig::new(5, 4);
    cfg.token_lifetime_secs = 1;
    let t = TestSim::with_config(cfg).await;
    let r = t.http.get(t.url("/users")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("www-authenticate").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
    assert!(v["error"]["innerError"]["request-id"].is_string());

    let forged = format!("{}x", &t.token[..t.token.len() - 1]);
    let r = t
        .http
        .get(t.url("/users"))
        .bearer_auth(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    assert_eq!(t.get("/users").await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, v) = t.get("/users").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(v["error"]["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn admin_consent_redirects_back_with_the_tenant() {
    let t = TestSim::start(5, 5).await;
    let cfg = &t.sim().cfg;
    let url = format!(
        "{}/common/adminconsent?client_id={}&state=xyz&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
        t.running.url, cfg.client_id
    );
    let r = t.http.get(url).send().await.unwrap();
    assert!(r.status().is_redirection());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("https://app.example/cb?"), "{loc}");
    assert!(loc.contains("admin_consent=True"));
    assert!(loc.contains(&format!("tenant={}", cfg.tenant_id)));
    assert!(loc.contains("state=xyz"));

    // Revoked consent: tokens still issue, Graph answers 403.
    t.control(
        reqwest::Method::POST,
        "/_sim/consent",
        json!({"granted": false}),
    )
    .await;
    assert_eq!(t.get("/users").await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn users_page_select_filter_and_lookup_by_upn() {
    let t = TestSim::start(40, 6).await;
    let (s, page) = t.get("/users?$top=7").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["value"].as_array().unwrap().len(), 7);
    let next = page["@odata.nextLink"].as_str().unwrap();
    assert!(
        next.starts_with(&t.running.url),
        "nextLink is absolute on our host: {next}"
    );
    // Default property set: no accountEnabled unless selected.
    assert!(page["value"][0].get("accountEnabled").is_none());
    assert!(page["value"][0].get("userPrincipalName").is_some());
    let all = t.get_all("/users?$top=7").await;
    assert_eq!(all.len(), 40);
    let ids: std::collections::HashSet<_> = all
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 40, "paging neither repeats nor skips");

    let disabled = t
        .get_all("/users?$filter=accountEnabled eq false&$select=id,accountEnabled")
        .await;
    assert!(disabled.iter().all(|u| u["accountEnabled"] == false));
    let (s, v) = t
        .get("/users?$filter=assignedLicenses/$count ne 0&$count=true")
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "advanced queries need ConsistencyLevel: eventual: {v}"
    );
    let r = t
        .send(
            reqwest::Method::GET,
            "/users?$filter=assignedLicenses/$count ne 0&$count=true&$select=id,assignedLicenses",
            None,
            &[("ConsistencyLevel", "eventual")],
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert!(v["@odata.count"].as_u64().unwrap() > 20);

    let admin = &all[0];
    let upn = admin["userPrincipalName"].as_str().unwrap();
    let by_upn = t.ok(&format!("/users/{upn}")).await;
    assert_eq!(by_upn["id"], admin["id"]);
    let (s, v) = t.get("/users/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "Request_ResourceNotFound");

    // The same seed gives the same tenant.
    let again = TestSim::start(40, 6).await;
    let all2 = again.get_all("/users?$top=7").await;
    assert_eq!(all, all2);
}

#[tokio::test]
async fn shared_unlicensed_and_disabled_accounts_exist_and_are_told_apart() {
    let t = TestSim::start(120, 7).await;
    let users = t
        .get_all("/users?$select=id,accountEnabled,assignedLicenses,mail")
        .await;
    let mut shared = 0;
    for u in &users {
        let (s, v) = t
            .get(&format!(
                "/users/{}/mailboxSettings",
                u["id"].as_str().unwrap()
            ))
            .await;
        if s == StatusCode::OK && v["userPurpose"] == "shared" {
            shared += 1;
            assert_eq!(u["accountEnabled"], false);
        } else if s == StatusCode::NOT_FOUND {
            assert_eq!(v["error"]["code"], "MailboxNotEnabledForRESTAPI");
            assert!(u["assignedLicenses"].as_array().unwrap().is_empty());
        }
    }
    assert!(shared > 0);
    assert!(users.iter().any(
        |u| u["assignedLicenses"].as_array().unwrap().is_empty() && u["accountEnabled"] == true
    ));
    assert!(
        users
            .iter()
            .any(|u| !u["assignedLicenses"].as_array().unwrap().is_empty()
                && u["accountEnabled"] == false)
    );
}

#[tokio::test]
async fn groups_teams_members_owners_and_deletion() {
    let t = TestSim::start(30, 8).await;
    let teams = t
        .get_all("/groups?$filter=resourceProvisioningOptions/Any(x:x eq 'Team')")
        .await;
    assert!(!teams.is_empty());
    let unified = t
        .get_all("/groups?$filter=groupTypes/any(c:c eq 'Unified')")
        .await;
    assert!(unified.len() >= teams.len());
    let g = &teams[0];
    let gid = g["id"].as_str().unwrap();
    let members = t.get_all(&format!("/groups/{gid}/members")).await;
    let owners = t.get_all(&format!("/groups/{gid}/owners")).await;
    assert!(!members.is_empty() && !owners.is_empty());
    assert_eq!(members[0]["@odata.type"], "#microsoft.graph.user");
    for o in &owners {
        assert!(
            members.iter().any(|m| m["id"] == o["id"]),
            "owners are members"
        );
    }
    t.control(
        reqwest::Method::POST,
        &format!("/_sim/groups/{gid}/delete"),
        json!({}),
    )
    .await;
    assert_eq!(
        t.get(&format!("/groups/{gid}")).await.0,
        StatusCode::NOT_FOUND
    );
    let deleted = t
        .get_all("/directory/deletedItems/microsoft.graph.group")
        .await;
    assert!(deleted.iter().any(|d| d["id"] == g["id"]));
}

#[tokio::test]
async fn batch_runs_dependencies_and_limits_size() {
    let t = TestSim::start(10, 9).await;
    let (s, v) = t
        .post(
            "/$batch",
            json!({"requests": [
                {"id": "1", "method": "GET", "url": "/users?$top=1"},
                {"id": "2", "method": "GET", "url": "/users/does-not-exist", "dependsOn": ["1"]},
                {"id": "3", "method": "GET", "url": "/organization", "dependsOn": ["2"]},
                {"id": "4", "method": "GET", "url": "organization"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let by_id = |id: &str| {
        v["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("2")["status"], 404);
    assert_eq!(by_id("3")["status"], 424);
    assert_eq!(by_id("4")["status"], 200);
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    let (s, _) = t.post("/$batch", json!({ "requests": too_many })).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_graph_errors() {
    let t = TestSim::start(5, 10).await;
    let (s, v) = t.get("/nothingHere").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["code"].is_string());
    let (s, v) = t
        .call(reqwest::Method::PUT, "/users", Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(v["error"]["message"].is_string());
}

#[tokio::test]
async fn users_delta_reports_exactly_what_changed() {
    let t = TestSim::start(30, 11).await;
    let (all, link) = t
        .delta_round("/users/delta?$select=id,displayName,accountEnabled")
        .await;
    assert_eq!(all.len(), 30);
    let (none, link) = t.delta_round(&link).await;
    assert!(none.is_empty(), "nothing changed: {none:?}");
    let victim = all[3]["id"].as_str().unwrap().to_string();
    let renamed = all[4]["id"].as_str().unwrap().to_string();
    t.control(
        reqwest::Method::POST,
        &format!("/_sim/users/{victim}/delete"),
        json!({}),
    )
    .await;
    assert_eq!(
        t.patch(
            &format!("/users/{renamed}"),
            json!({"displayName": "Renamed Person"})
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (s, created) = t
        .post("/users", json!({"displayName": "New Hire", "userPrincipalName": "new.hire@x.onmicrosoft.com", "mailNickname": "new.hire", "accountEnabled": true}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (changes, link) = t.delta_round(&link).await;
    assert_eq!(changes.len(), 3, "{changes:?}");
    let removed: Vec<&Value> = changes
        .iter()
        .filter(|c| c.get("@removed").is_some())
        .collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["id"], victim.as_str());
    assert_eq!(removed[0]["@removed"]["reason"], "changed");
    assert!(
        changes
            .iter()
            .any(|c| c["id"] == renamed.as_str() && c["displayName"] == "Renamed Person")
    );
    assert!(changes.iter().any(|c| c["id"] == created["id"]));
    // Invalidated tokens are gone (410).
    t.control(reqwest::Method::POST, "/_sim/delta/invalidate", json!({}))
        .await;
    assert_eq!(t.get(&link).await.0, StatusCode::GONE);
}

#[tokio::test]
async fn simulated_days_bring_joiners_and_leavers_deterministically() {
    let run = || async {
        let t = TestSim::start(40, 12).await;
        let (_, link) = t
            .delta_round("/users/delta?$select=id,displayName,accountEnabled")
            .await;
        let v = t
            .control(reqwest::Method::POST, "/_sim/activity", json!({"days": 20}))
            .await;
        let (changes, _) = t.delta_round(&link).await;
        (v["report"].clone(), changes)
    };
    let (report, changes) = run().await;
    let joined = report["usersJoined"].as_u64().unwrap();
    let left = report["usersLeft"].as_u64().unwrap();
    assert!(joined > 0, "{report}");
    assert!(
        changes.len() as u64 <= joined + left && changes.len() as u64 >= joined,
        "{changes:?}"
    );
    assert!(changes.iter().any(|c| c["accountEnabled"] == true));
    // The same seed and the same calls give the same tenant.
    let (report2, changes2) = run().await;
    assert_eq!(report, report2);
    assert_eq!(changes, changes2);
}
