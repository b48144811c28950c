//! The REST API over HTTP, on SQLite and on PostgreSQL: sign-in, CSRF, API
//! tokens, roles, tasks → entities → jobs, runs and snapshots, bad input,
//! cross-account isolation, and the OpenAPI document.

mod common;

use std::collections::BTreeSet;

use catalog::{Role, RunCounts, RunFinish, RunOutcome, SubService};
use common::{Auth, Env};
use reqwest::Method;
use serde_json::{Value, json};

/// Expand one test body into a SQLite and a PostgreSQL test.
macro_rules! api_test {
    (async fn $name:ident($env:ident) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::common::run(catalog::Backend::Sqlite, |$env: Env| async move $body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::common::run(catalog::Backend::Postgres, |$env: Env| async move $body).await;
            }
        }
    };
}

fn ids(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_string())
        .collect()
}

api_test!(
    async fn sign_in_me_and_sign_out(env) {
        env.account_with_user("Contoso", "Ada@Contoso.test", Role::Owner).await;

        // Wrong password and unknown email answer alike.
        let wrong = env
            .post("/api/session", &Auth::None, json!({"email": "ada@contoso.test", "password": "nope nope nope"}))
            .await;
        let unknown = env
            .post("/api/session", &Auth::None, json!({"email": "eve@contoso.test", "password": common::PASSWORD}))
            .await;
        assert_eq!(wrong.status, 401);
        assert_eq!(wrong.code(), "unauthenticated");
        assert!(wrong.headers.get("set-cookie").is_none());
        assert_eq!(unknown.status, 401);
        assert_eq!(wrong.body, unknown.body);

        let browser = env.login("ADA@contoso.test").await;
        let flags = browser.set_cookie.to_ascii_lowercase();
        assert!(flags.contains("httponly"), "{flags}");
        assert!(flags.contains("samesite=strict"), "{flags}");
        assert!(flags.contains("path=/"), "{flags}");

        let me = env.get("/api/me", &browser.cookie_only()).await.expect(200);
        assert_eq!(me["user"]["email"], "Ada@Contoso.test");
        assert_eq!(me["role"], "owner");
        assert_eq!(me["account"]["name"], "Contoso");
        assert_eq!(me["csrf_token"], browser.csrf.as_str());
        assert!(!me.to_string().contains("password"));

        assert_eq!(env.get("/api/me", &Auth::None).await.status, 401);
        let forged = Auth::Cookie { cookie: "f".repeat(64), csrf: None };
        assert_eq!(env.get("/api/me", &forged).await.status, 401);

        // Signing out is a mutation: it needs the CSRF header.
        let no_csrf = env.delete("/api/session", &browser.cookie_only()).await;
        assert_eq!(no_csrf.status, 403);
        assert_eq!(no_csrf.code(), "csrf");
        let out = env.delete("/api/session", &browser.auth()).await;
        assert_eq!(out.status, 204, "{}", out.text);
        let cleared = out.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(cleared.starts_with("lifeboat_session="), "{cleared}");
        assert_eq!(env.get("/api/me", &browser.cookie_only()).await.status, 401);

        // Disabling a user ends its sessions at once and bars sign-in.
        let again = env.login("ada@contoso.test").await;
        let me = env.get("/api/me", &again.auth()).await.expect(200);
        let account: catalog::AccountId = me["account"]["id"].as_str().expect("id").parse().expect("uuid");
        let user: catalog::UserId = me["user"]["id"].as_str().expect("id").parse().expect("uuid");
        env.catalog.set_user_disabled(account, user, true).await.expect("disable");
        assert_eq!(env.get("/api/me", &again.auth()).await.status, 401);
        let barred = env
            .post("/api/session", &Auth::None, json!({"email": "ada@contoso.test", "password": common::PASSWORD}))
            .await;
        assert_eq!(barred.status, 401);
        assert_eq!(barred.body, unknown.body);
    }
);

api_test!(
    async fn cookie_mutations_need_the_csrf_header(env) {
        env.account_with_user("Contoso", "ada@contoso.test", Role::Admin).await;
        let browser = env.login("ada@contoso.test").await;
        let body = json!({
            "service": "exchange", "name": "Mail", "graph_url": "http://127.0.0.1:9/v1.0",
            "login_url": "http://127.0.0.1:9", "tenant": "t-1", "client_id": "c", "client_secret": "s-1234567",
        });
        let missing = env.post("/api/tasks", &browser.cookie_only(), body.clone()).await;
        assert_eq!(missing.status, 403);
        assert_eq!(missing.code(), "csrf");
        let wrong = Auth::Cookie { cookie: browser.cookie.clone(), csrf: Some("0".repeat(64)) };
        assert_eq!(env.post("/api/tasks", &wrong, body.clone()).await.code(), "csrf");
        assert!(env.get("/api/tasks", &browser.cookie_only()).await.expect(200).as_array().expect("list").is_empty());
        env.post("/api/tasks", &browser.auth(), body).await.expect(201);
        assert_eq!(env.get("/api/tasks", &browser.cookie_only()).await.expect(200).as_array().expect("list").len(), 1);
    }
);

api_test!(
    async fn api_tokens_work_until_revoked(env) {
        env.account_with_user("Contoso", "ada@contoso.test", Role::Operator).await;
        let browser = env.login("ada@contoso.test").await;

        // Not above the creator's role.
        let above = env.post("/api/tokens", &browser.auth(), json!({"name": "root", "role": "admin"})).await;
        assert_eq!(above.status, 403, "{}", above.text);

        let issued = env.post("/api/tokens", &browser.auth(), json!({"name": "ci"})).await.expect(201);
        let secret = issued["secret"].as_str().expect("secret").to_string();
        assert!(secret.starts_with("lb_"), "{secret}");
        assert_eq!(issued["token"]["role"], "operator");
        let token = Auth::Bearer(secret.clone());

        let me = env.get("/api/me", &token).await.expect(200);
        assert_eq!(me["token"]["name"], "ci");
        assert!(me["user"].is_null());
        // A token needs no CSRF header: it is not sent by browsers on their own.
        let task = env.create_task(&token, "Mail").await;
        env.get(&format!("/api/tasks/{task}"), &token).await.expect(200);

        let listed = env.get("/api/tokens", &browser.auth()).await;
        assert!(!listed.text.contains(&secret[3..]), "a listing showed the secret");
        let listed = listed.expect(200);
        assert_eq!(listed.as_array().expect("list").len(), 1);
        assert_eq!(listed[0]["prefix"].as_str().map(|p| secret.starts_with(p)), Some(true));
        assert!(listed[0]["last_used_at"].is_string());

        let id = issued["token"]["id"].as_str().expect("id");
        let revoked = env.delete(&format!("/api/tokens/{id}"), &browser.auth()).await.expect(200);
        assert!(revoked["revoked_at"].is_string());
        let after = env.get("/api/tasks", &token).await;
        assert_eq!(after.status, 401);
        assert_eq!(after.code(), "unauthenticated");

        for bad in ["lb_0000", "Basic abc", "not-a-token"] {
            let auth = Auth::Bearer(bad.into());
            assert_eq!(env.get("/api/me", &auth).await.status, 401, "{bad}");
        }
        // A bad Authorization header is refused even with a good cookie.
        let both = env
            .http
            .get(format!("{}/api/me", env.base))
            .header("cookie", format!("lifeboat_session={}", browser.cookie))
            .header("authorization", "Bearer lb_nope")
            .send()
            .await
            .expect("request");
        assert_eq!(both.status(), 401);
    }
);

api_test!(
    async fn viewers_read_but_cannot_change_anything(env) {
        let (account, _) = env.account_with_user("Contoso", "ada@contoso.test", Role::Admin).await;
        env.user(account, "vic@contoso.test", Role::Viewer).await;
        let admin = env.login("ada@contoso.test").await;
        let task = env.create_task(&admin.auth(), "Mail").await;
        let es = env.mailboxes(account, &task, &["Alice"]).await;
        let eid = es[0].id;
        let viewer_token = env
            .post("/api/tokens", &admin.auth(), json!({"name": "dashboard", "role": "viewer"}))
            .await
            .expect(201)["secret"]
            .as_str()
            .expect("secret")
            .to_string();
        let viewer = env.login("vic@contoso.test").await;
        let job = env.post(&format!("/api/tasks/{task}/discover"), &admin.auth(), json!({})).await.expect(202);
        let job = job["jobs"][0]["job_id"].as_str().expect("job").to_string();

        for auth in [viewer.auth(), Auth::Bearer(viewer_token)] {
            env.get("/api/tasks", &auth).await.expect(200);
            env.get(&format!("/api/tasks/{task}/entities"), &auth).await.expect(200);
            env.get(&format!("/api/jobs/{job}"), &auth).await.expect(200);
            let mutations = [
                (Method::POST, "/api/tasks".to_string(), json!({"service": "exchange", "name": "x", "graph_url": "http://a", "login_url": "http://a", "tenant": "t", "client_id": "c", "client_secret": "s"})),
                (Method::PATCH, format!("/api/tasks/{task}"), json!({"name": "renamed"})),
                (Method::POST, format!("/api/tasks/{task}/entities/activate"), json!({"entity_ids": [eid]})),
                (Method::POST, format!("/api/tasks/{task}/entities/pause"), json!({"all": true})),
                (Method::POST, format!("/api/tasks/{task}/discover"), json!({})),
                (Method::POST, format!("/api/tasks/{task}/backup"), json!({})),
                (Method::POST, format!("/api/jobs/{job}/cancel"), json!({})),
                (Method::POST, "/api/tokens".to_string(), json!({"name": "more"})),
            ];
            for (method, path, body) in mutations {
                let a = env.request(method.clone(), &path, &auth, Some(body)).await;
                assert_eq!(a.status, 403, "{method} {path}: {}", a.text);
                assert_eq!(a.code(), "forbidden");
            }
        }
        let task_now = env.get(&format!("/api/tasks/{task}"), &admin.auth()).await.expect(200);
        assert_eq!(task_now["name"], "Mail");
        let job_now = env.get(&format!("/api/jobs/{job}"), &admin.auth()).await.expect(200);
        assert_eq!(job_now["status"], "pending");
    }
);

api_test!(
    async fn tasks_entities_discovery_backup_and_cancel(env) {
        let (account, _) = env.account_with_user("Contoso", "ada@contoso.test", Role::Owner).await;
        let b = env.login("ada@contoso.test").await;
        let auth = b.auth();

        let created = env
            .post(
                "/api/tasks",
                &auth,
                json!({
                    "service": "exchange", "name": "Mailboxes", "graph_url": "http://127.0.0.1:9/v1.0",
                    "login_url": "http://127.0.0.1:9", "tenant": "tenant-1", "client_id": "app-1",
                    "client_secret": "the-client-secret-42", "settings": {"backup_hour_utc": 3, "frequency": "weekly"},
                }),
            )
            .await;
        assert!(!created.text.contains("the-client-secret-42"), "the secret came back");
        let created = created.expect(201);
        let task = created["id"].as_str().expect("id").to_string();
        assert_eq!(created["service"], "exchange");
        assert!(
            created["notices"][0]
                .as_str()
                .is_some_and(|n| n.contains("Public folders")),
            "an Exchange task says why public folders are not offered: {created}"
        );
        assert_eq!(created["status"], "active");
        assert_eq!(created["settings"]["backup_hour_utc"], 3);
        assert_eq!(created["connection"]["tenant"], "tenant-1");
        assert_eq!(created["connection"]["connected"], true);
        let conn: catalog::ConnectionId = created["connection"]["id"].as_str().expect("conn").parse().expect("uuid");
        let stored = env.catalog.connection_secret(account, conn).await.expect("secret");
        assert_eq!(stored.expose(), "the-client-secret-42");

        // A second task on the same tenant reuses the connection.
        let onedrive = env
            .post(
                "/api/tasks",
                &auth,
                json!({
                    "service": "onedrive", "name": "Drives", "graph_url": "http://127.0.0.1:9/v1.0",
                    "login_url": "http://127.0.0.1:9", "tenant": "tenant-1", "client_id": "app-1",
                    "client_secret": "the-client-secret-43",
                }),
            )
            .await
            .expect(201);
        assert_eq!(onedrive["connection"]["id"], created["connection"]["id"]);

        let list = env.get("/api/tasks", &auth).await.expect(200);
        assert_eq!(list.as_array().expect("list").len(), 2);
        assert!(!list.to_string().contains("client_secret"));

        let patched = env
            .patch(&format!("/api/tasks/{task}"), &auth, json!({"name": "Exchange", "status": "paused"}))
            .await
            .expect(200);
        assert_eq!(patched["name"], "Exchange");
        assert_eq!(patched["status"], "paused");
        assert_eq!(patched["settings"]["frequency"], "weekly");
        let bad_hour = env.patch(&format!("/api/tasks/{task}"), &auth, json!({"settings": {"backup_hour_utc": 24}})).await;
        assert_eq!(bad_hour.status, 400, "{}", bad_hour.text);
        assert_eq!(env.patch(&format!("/api/tasks/{task}"), &auth, json!({"name": "  "})).await.status, 400);

        // Discovery is queued once, however often it is asked for.
        let d1 = env.post(&format!("/api/tasks/{task}/discover"), &auth, json!({})).await.expect(202);
        let d2 = env.post(&format!("/api/tasks/{task}/discover"), &auth, json!({})).await.expect(202);
        assert_eq!(d1["jobs"][0]["new"], true);
        assert_eq!(d2["jobs"][0]["new"], false);
        assert_eq!(d1["jobs"][0]["job_id"], d2["jobs"][0]["job_id"]);
        let discovery = env.get(&format!("/api/jobs/{}", d1["jobs"][0]["job_id"].as_str().expect("id")), &auth).await.expect(200);
        assert_eq!(discovery["kind"], "discovery");
        assert_eq!(discovery["task_id"], task.as_str());
        assert_eq!(discovery["initiator"], "ada@contoso.test");

        // What the worker's discovery would record.
        let es = env.mailboxes(account, &task, &["Alice", "Bob", "Carol"]).await;
        let (alice, bob, carol) = (es[0].id.to_string(), es[1].id.to_string(), es[2].id.to_string());
        let page = env.get(&format!("/api/tasks/{task}/entities"), &auth).await.expect(200);
        assert_eq!(page["total"], 3);
        assert_eq!(page["items"][0]["name"], "Alice");
        assert_eq!(page["items"][0]["status"], "not_active");

        let act = env
            .post(&format!("/api/tasks/{task}/entities/activate"), &auth, json!({"entity_ids": [alice, bob]}))
            .await
            .expect(200);
        assert_eq!(act["changed"], 2);
        let paused = env
            .post(&format!("/api/tasks/{task}/entities/pause"), &auth, json!({"entity_ids": [bob]}))
            .await
            .expect(200);
        assert_eq!(paused["changed"], 1);
        let active = env.get(&format!("/api/tasks/{task}/entities?active=true"), &auth).await.expect(200);
        assert_eq!(active["total"], 2);
        let scheduled = env.get(&format!("/api/tasks/{task}/entities?status=scheduled"), &auth).await.expect(200);
        assert_eq!(scheduled["total"], 1);
        assert_eq!(scheduled["items"][0]["id"], alice.as_str());
        let searched = env.get(&format!("/api/tasks/{task}/entities?search=CAR"), &auth).await.expect(200);
        assert_eq!(searched["items"][0]["id"], carol.as_str());
        let paged = env.get(&format!("/api/tasks/{task}/entities?limit=1&offset=1"), &auth).await.expect(200);
        assert_eq!(paged["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(paged["items"][0]["name"], "Bob");
        assert_eq!(paged["total"], 3);
        let bad_status = env.get(&format!("/api/tasks/{task}/entities?status=sleepy"), &auth).await;
        assert_eq!(bad_status.status, 400);

        // Backup now: only active, unpaused entities; twice is harmless.
        let first = env.request(Method::POST, &format!("/api/tasks/{task}/backup"), &auth, None).await.expect(202);
        let jobs = first["jobs"].as_array().expect("jobs");
        assert_eq!(jobs.len(), 1, "{first}");
        assert_eq!(jobs[0]["entity_id"], alice.as_str());
        assert_eq!(jobs[0]["new"], true);
        let again = env.post(&format!("/api/tasks/{task}/backup"), &auth, json!({"entity_ids": [alice]})).await.expect(202);
        assert_eq!(again["jobs"][0]["new"], false);
        assert_eq!(again["jobs"][0]["job_id"], jobs[0]["job_id"]);
        let inactive = env.post(&format!("/api/tasks/{task}/backup"), &auth, json!({"entity_ids": [carol]})).await;
        assert_eq!(inactive.status, 409, "{}", inactive.text);
        env.post(&format!("/api/tasks/{task}/entities/activate"), &auth, json!({"all": true})).await.expect(200);
        let all = env.post(&format!("/api/tasks/{task}/backup"), &auth, json!({})).await.expect(202);
        let news: Vec<bool> = all["jobs"].as_array().expect("jobs").iter().map(|j| j["new"].as_bool().unwrap_or(false)).collect();
        assert_eq!(news.len(), 3);
        assert_eq!(news.iter().filter(|n| **n).count(), 2);

        let backup_job = jobs[0]["job_id"].as_str().expect("id").to_string();
        let job = env.get(&format!("/api/jobs/{backup_job}"), &auth).await.expect(200);
        assert_eq!(job["kind"], "backup");
        assert_eq!(job["status"], "pending");
        assert_eq!(job["service"], "exchange");
        assert_eq!(job["entity_id"], alice.as_str());

        let listed = env.get(&format!("/api/jobs?task_id={task}"), &auth).await.expect(200);
        assert_eq!(listed.as_array().map(Vec::len), Some(4));
        let other_task = onedrive["id"].as_str().expect("id");
        let none = env.get(&format!("/api/jobs?task_id={other_task}"), &auth).await.expect(200);
        assert_eq!(none.as_array().map(Vec::len), Some(0));

        let cancelled = env.post(&format!("/api/jobs/{backup_job}/cancel"), &auth, json!({})).await.expect(200);
        assert_eq!(cancelled["status"], "cancelled");
        let pending = env.get("/api/jobs?status=pending", &auth).await.expect(200);
        assert_eq!(pending.as_array().map(Vec::len), Some(3));
        let done = env.get("/api/jobs?status=cancelled,failed", &auth).await.expect(200);
        assert_eq!(ids(&done), BTreeSet::from([backup_job.clone()]));
        assert_eq!(env.get("/api/jobs?status=asleep", &auth).await.status, 400);
        // A cancelled backup may be asked for again.
        let fresh = env.post(&format!("/api/tasks/{task}/backup"), &auth, json!({"entity_ids": [alice]})).await.expect(202);
        assert_eq!(fresh["jobs"][0]["new"], true);
    }
);

api_test!(
    async fn runs_and_snapshots_newest_first(env) {
        let (account, _) = env.account_with_user("Contoso", "ada@contoso.test", Role::Owner).await;
        let b = env.login("ada@contoso.test").await;
        let auth = b.auth();
        let task = env.create_task(&auth, "Mail").await;
        let es = env.mailboxes(account, &task, &["Alice"]).await;
        let e = es[0].id;
        let c = &env.catalog;
        // Two backups: each writes one snapshot covering mail and contacts.
        let mut run_ids = Vec::new();
        for (day, snapshot, mail_outcome) in [(0, "snap-1", RunOutcome::Success), (1, "snap-2", RunOutcome::Partial)] {
            env.clock.set(common::t0() + chrono::Duration::days(day));
            for (sub, outcome, new) in [(SubService::Mail, mail_outcome, 10), (SubService::Contacts, RunOutcome::Success, 2)] {
                let run = c.start_run(account, e, sub).await.expect("run");
                env.clock.advance(chrono::Duration::minutes(5));
                c.finish_run(
                    account,
                    run.id,
                    &RunFinish {
                        snapshot_id: Some(snapshot.into()),
                        outcome: Some(outcome),
                        counts: RunCounts { items_new: new, ..RunCounts::default() },
                        ..RunFinish::default()
                    },
                )
                .await
                .expect("finish");
                run_ids.push(run.id.to_string());
            }
        }
        // A day went by: the morning's session ended after 12 idle hours.
        let idle = env.get("/api/me", &auth).await;
        assert_eq!(idle.status, 401, "{}", idle.text);
        let b = env.login("ada@contoso.test").await;
        let auth = b.auth();
        let runs = env.get(&format!("/api/tasks/{task}/entities/{e}/runs"), &auth).await.expect(200);
        let got: Vec<&str> = runs.as_array().expect("runs").iter().map(|r| r["id"].as_str().unwrap_or("")).collect();
        let want: Vec<&str> = run_ids.iter().rev().map(String::as_str).collect();
        assert_eq!(got, want);
        assert_eq!(runs[0]["counts"]["items_new"], 2);

        let from = (common::t0() + chrono::Duration::hours(12)).to_rfc3339();
        let recent = env
            .http
            .get(format!("{}/api/tasks/{task}/entities/{e}/runs", env.base))
            .query(&[("from", from.as_str())])
            .header("cookie", format!("lifeboat_session={}", b.cookie))
            .send()
            .await
            .expect("request");
        assert_eq!(recent.status(), 200);
        let recent: Value = recent.json().await.expect("json");
        assert_eq!(recent.as_array().map(Vec::len), Some(2));

        let snaps = env.get(&format!("/api/tasks/{task}/entities/{e}/snapshots"), &auth).await.expect(200);
        let snaps = snaps.as_array().expect("snapshots");
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0]["snapshot_id"], "snap-2");
        assert_eq!(snaps[0]["outcome"], "partial");
        assert_eq!(snaps[1]["outcome"], "success");
        let parts = snaps[0]["sub_services"].as_array().expect("parts");
        let subs: Vec<&str> = parts.iter().map(|p| p["sub_service"].as_str().unwrap_or("")).collect();
        assert_eq!(subs, ["contacts", "mail"]);
        assert_eq!(parts[1]["counts"]["items_new"], 10);
        let t = chrono::DateTime::parse_from_rfc3339(snaps[0]["time"].as_str().expect("time")).expect("rfc3339");
        assert_eq!(t, common::t0() + chrono::Duration::days(1) + chrono::Duration::minutes(10));

        // The entity must belong to the task in the URL.
        let other = env.create_task(&auth, "Other").await;
        let wrong = env.get(&format!("/api/tasks/{other}/entities/{e}/runs"), &auth).await;
        assert_eq!(wrong.status, 404);
    }
);

api_test!(
    async fn bad_input_gets_clear_json_errors(env) {
        env.account_with_user("Contoso", "ada@contoso.test", Role::Owner).await;
        let b = env.login("ada@contoso.test").await;
        let auth = b.auth();
        let task = env.create_task(&auth, "Mail").await;

        let garbage = env.raw(Method::POST, "/api/tasks", &auth, Some(("application/json", "{not json".into()))).await;
        assert_eq!(garbage.status, 400);
        assert_eq!(garbage.code(), "bad_request");
        assert!(garbage.body["error"]["message"].as_str().unwrap_or("").contains("JSON"), "{}", garbage.text);
        let wrong_type = env.post("/api/tasks", &auth, json!({"service": "fax", "name": 1})).await;
        assert_eq!(wrong_type.status, 400, "{}", wrong_type.text);
        let missing = env.post("/api/tasks", &auth, json!({"service": "exchange"})).await;
        assert_eq!(missing.status, 400, "{}", missing.text);
        let not_json = env.raw(Method::POST, "/api/tasks", &auth, Some(("text/plain", "hi".into()))).await;
        assert_eq!(not_json.status, 415);
        let bad_url = env
            .post(
                "/api/tasks",
                &auth,
                json!({"service": "exchange", "name": "x", "graph_url": "ftp://x", "login_url": "http://x", "tenant": "t9", "client_id": "c", "client_secret": "s"}),
            )
            .await;
        assert_eq!(bad_url.status, 400, "{}", bad_url.text);
        let login_garbage = env.raw(Method::POST, "/api/session", &common::Auth::None, Some(("application/json", "[]".into()))).await;
        assert_eq!(login_garbage.status, 400);

        let bad_id = env.get("/api/tasks/not-a-uuid", &auth).await;
        assert_eq!(bad_id.status, 400);
        assert_eq!(bad_id.code(), "bad_request");
        let unknown = env.get(&format!("/api/tasks/{}", uuid::Uuid::new_v4()), &auth).await;
        assert_eq!(unknown.status, 404);
        assert_eq!(unknown.code(), "not_found");
        assert_eq!(env.get("/api/nothing-here", &auth).await.code(), "not_found");
        let wrong_method = env.request(Method::PUT, "/api/tasks", &auth, None).await;
        assert_eq!(wrong_method.status, 405);
        assert_eq!(wrong_method.code(), "method_not_allowed");
        let both = env.post(&format!("/api/tasks/{task}/entities/activate"), &auth, json!({"entity_ids": [], "all": true})).await;
        assert_eq!(both.status, 400);
        let neither = env.post(&format!("/api/tasks/{task}/entities/activate"), &auth, json!({})).await;
        assert_eq!(neither.status, 400);
        let unknown_entity = env
            .post(&format!("/api/tasks/{task}/entities/activate"), &auth, json!({"entity_ids": [uuid::Uuid::new_v4()]}))
            .await;
        assert_eq!(unknown_entity.status, 404);
        let bad_limit = env.get(&format!("/api/tasks/{task}/entities?limit=-1"), &auth).await;
        assert_eq!(bad_limit.status, 400);
        let bad_backup = env.raw(Method::POST, &format!("/api/tasks/{task}/backup"), &auth, Some(("application/json", "{]".into()))).await;
        assert_eq!(bad_backup.status, 400);
        let health = env.get("/healthz", &common::Auth::None).await.expect(200);
        assert_eq!(health["status"], "ok");
    }
);

api_test!(
    async fn another_account_sees_nothing_and_gets_404_everywhere(env) {
        let (a, _) = env.account_with_user("A", "ada@a.test", Role::Owner).await;
        env.account_with_user("B", "bob@b.test", Role::Owner).await;
        let alice = env.login("ada@a.test").await;
        let bob = env.login("bob@b.test").await;
        let bob_token = env.post("/api/tokens", &bob.auth(), json!({"name": "b"})).await.expect(201)["secret"]
            .as_str()
            .expect("secret")
            .to_string();

        // A: a task, an active entity, jobs, a run, a token.
        let task = env.create_task(&alice.auth(), "A mail").await;
        let es = env.mailboxes(a, &task, &["Alice"]).await;
        let e = es[0].id;
        env.catalog.activate_entities(a, &[e]).await.expect("activate");
        let backup = env.post(&format!("/api/tasks/{task}/backup"), &alice.auth(), json!({})).await.expect(202);
        let job = backup["jobs"][0]["job_id"].as_str().expect("job").to_string();
        let run = env.catalog.start_run(a, e, SubService::Mail).await.expect("run");
        env.catalog
            .finish_run(a, run.id, &RunFinish { snapshot_id: Some("s1".into()), outcome: Some(RunOutcome::Success), ..RunFinish::default() })
            .await
            .expect("finish");
        let a_token = env.post("/api/tokens", &alice.auth(), json!({"name": "a"})).await.expect(201);
        let a_token_id = a_token["token"]["id"].as_str().expect("id").to_string();

        for b_auth in [bob.auth(), Auth::Bearer(bob_token.clone())] {
            let gets = [
                format!("/api/tasks/{task}"),
                format!("/api/tasks/{task}/entities"),
                format!("/api/tasks/{task}/entities/{e}/runs"),
                format!("/api/tasks/{task}/entities/{e}/snapshots"),
                format!("/api/jobs/{job}"),
            ];
            for path in &gets {
                let ans = env.get(path, &b_auth).await;
                assert_eq!(ans.status, 404, "GET {path}: {}", ans.text);
                assert_eq!(ans.code(), "not_found");
            }
            let mutations = [
                (Method::PATCH, format!("/api/tasks/{task}"), json!({"name": "pwned"})),
                (Method::POST, format!("/api/tasks/{task}/entities/activate"), json!({"entity_ids": [e]})),
                (Method::POST, format!("/api/tasks/{task}/entities/pause"), json!({"all": true})),
                (Method::POST, format!("/api/tasks/{task}/discover"), json!({})),
                (Method::POST, format!("/api/tasks/{task}/backup"), json!({})),
                (Method::POST, format!("/api/jobs/{job}/cancel"), json!({})),
                (Method::DELETE, format!("/api/tokens/{a_token_id}"), Value::Null),
            ];
            for (method, path, body) in mutations {
                let body = (!body.is_null()).then_some(body);
                let ans = env.request(method.clone(), &path, &b_auth, body).await;
                assert_eq!(ans.status, 404, "{method} {path}: {}", ans.text);
            }
            // B's own task cannot reach A's entity either.
            let b_task = env.create_task(&b_auth, "B mail").await;
            for path in [format!("/api/tasks/{b_task}/entities/{e}/runs"), format!("/api/tasks/{b_task}/entities/{e}/snapshots")] {
                assert_eq!(env.get(&path, &b_auth).await.status, 404, "{path}");
            }
            let sel = env.post(&format!("/api/tasks/{b_task}/entities/activate"), &b_auth, json!({"entity_ids": [e]})).await;
            assert_eq!(sel.status, 404);
            let sel = env.post(&format!("/api/tasks/{b_task}/backup"), &b_auth, json!({"entity_ids": [e]})).await;
            assert_eq!(sel.status, 404);

            // Lists hold only B's things.
            let tasks = env.get("/api/tasks", &b_auth).await.expect(200);
            assert!(!ids(&tasks).contains(&task));
            let jobs = env.get("/api/jobs", &b_auth).await.expect(200);
            assert!(!ids(&jobs).contains(&job));
            let jobs = env.get(&format!("/api/jobs?task_id={task}"), &b_auth).await.expect(200);
            assert_eq!(jobs.as_array().map(Vec::len), Some(0));
            let tokens = env.get("/api/tokens", &b_auth).await.expect(200);
            assert!(!ids(&tokens).contains(&a_token_id));
            assert_eq!(env.get("/api/me", &b_auth).await.expect(200)["account"]["name"], "B");
        }

        // Nothing of A changed.
        let t = env.get(&format!("/api/tasks/{task}"), &alice.auth()).await.expect(200);
        assert_eq!(t["name"], "A mail");
        let j = env.get(&format!("/api/jobs/{job}"), &alice.auth()).await.expect(200);
        assert_eq!(j["status"], "pending");
        let ents = env.get(&format!("/api/tasks/{task}/entities"), &alice.auth()).await.expect(200);
        assert_eq!(ents["items"][0]["status"], "scheduled");
        let toks = env.get("/api/tokens", &alice.auth()).await.expect(200);
        assert!(toks[0]["revoked_at"].is_null());
        let jobs = env.get("/api/jobs", &alice.auth()).await.expect(200);
        assert_eq!(jobs.as_array().map(Vec::len), Some(1));
    }
);

/// Every route the server answers, as `METHOD path`.
const ROUTES: &[&str] = &[
    "GET /api/jobs/{id}/items",
    "GET /api/tasks/{id}/entities/{eid}/calendar",
    "POST /api/tasks/{id}/entities/{eid}/restore",
    "POST /api/tasks/{id}/entities/{eid}/export",
    "GET /api/exports/{id}/download",
    "GET /api/tasks/{id}/entities/{eid}/browse",
    "GET /api/tasks/{id}/entities/{eid}/preview",
    "GET /api/tasks/{id}/entities/{eid}/search",
    "GET /api/tasks/{id}/entities/{eid}/changes",
    "GET /healthz",
    "GET /api/openapi.json",
    "POST /api/session",
    "DELETE /api/session",
    "GET /api/me",
    "GET /api/tokens",
    "POST /api/tokens",
    "DELETE /api/tokens/{id}",
    "GET /api/tasks",
    "POST /api/tasks",
    "GET /api/tasks/{id}",
    "PATCH /api/tasks/{id}",
    "GET /api/tasks/{id}/entities",
    "POST /api/tasks/{id}/entities/activate",
    "POST /api/tasks/{id}/entities/pause",
    "POST /api/tasks/{id}/discover",
    "POST /api/tasks/{id}/backup",
    "GET /api/tasks/{id}/entities/{eid}/runs",
    "GET /api/tasks/{id}/entities/{eid}/snapshots",
    "GET /api/tasks/{id}/rules",
    "POST /api/tasks/{id}/rules",
    "DELETE /api/rules/{id}",
    "GET /api/jobs",
    "GET /api/jobs/{id}",
    "POST /api/jobs/{id}/cancel",
];

api_test!(
    async fn openapi_document_lists_exactly_the_served_routes(env) {
        let doc = env.get("/api/openapi.json", &Auth::None).await.expect(200);
        let version = doc["openapi"].as_str().expect("openapi version");
        assert!(version.starts_with("3.1."), "{version}");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "patch", "delete", "head", "options"].contains(&method.as_str()) {
                    documented.insert(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        let expected: BTreeSet<String> = ROUTES.iter().map(|r| r.to_string()).collect();
        assert_eq!(documented, expected);
        assert!(doc["components"]["schemas"]["TaskView"].is_object());
        assert!(doc["components"]["securitySchemes"]["token"].is_object());

        // Each listed route is served: unauthenticated it is refused or
        // answered, never "no such route" (404) or "wrong method" (405).
        let id = uuid::Uuid::new_v4().to_string();
        for route in ROUTES {
            let (method, path) = route.split_once(' ').expect("METHOD path");
            let path = path.replace("{id}", &id).replace("{eid}", &id);
            let method: Method = method.parse().expect("method");
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let ans = env.request(method.clone(), &path, &Auth::None, body).await;
            assert!(
                [200, 400, 401].contains(&ans.status.as_u16()),
                "{route}: {} {}",
                ans.status,
                ans.text
            );
        }
        // And a route that is not listed is not served.
        assert_eq!(env.get("/api/users", &Auth::None).await.status, 404);
        assert_eq!(env.request(Method::DELETE, "/api/tasks", &Auth::None, None).await.status, 405);
    }
);

#[test]
fn openapi_function_matches_the_served_document() {
    let doc = serde_json::to_value(server::openapi()).expect("serialise");
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    let listed: BTreeSet<&str> = ROUTES
        .iter()
        .filter_map(|r| r.split_once(' ').map(|(_, p)| p))
        .collect();
    assert_eq!(paths, listed);
}
