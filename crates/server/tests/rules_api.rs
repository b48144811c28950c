//! The activation rules API (SPEC F-C5) over HTTP, on SQLite and on
//! PostgreSQL: create from a definition or a CSV (bad rows reported by
//! line), bad requests, list, delete, roles and cross-account isolation.

#[allow(dead_code)] // each test file uses part of the shared harness
mod common;

use catalog::Role;
use common::{Auth, Env};
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

/// A task of `service` created through the API; its id.
async fn service_task(env: &Env, auth: &Auth, service: &str) -> String {
    env.post(
        "/api/tasks",
        auth,
        json!({
            "service": service,
            "name": format!("{service} task"),
            "graph_url": "http://127.0.0.1:9/v1.0",
            "login_url": "http://127.0.0.1:9",
            "tenant": format!("tenant-{}", uuid::Uuid::new_v4()),
            "client_id": "client-1",
            "client_secret": "very-secret-value-123",
        }),
    )
    .await
    .expect(201)["id"]
        .as_str()
        .expect("task id")
        .to_string()
}

fn rule_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

api_test!(
    async fn rules_are_created_listed_and_deleted_within_their_account(env) {
        let (account, _) = env.account_with_user("A", "ada@a.test", Role::Admin).await;
        env.user(account, "vic@a.test", Role::Viewer).await;
        env.account_with_user("B", "bob@b.test", Role::Owner).await;
        let ada = env.login("ada@a.test").await.auth();
        let vic = env.login("vic@a.test").await.auth();
        let bob = env.login("bob@b.test").await.auth();
        let sites = service_task(&env, &ada, "sharepoint").await;
        let mail = service_task(&env, &ada, "exchange").await;

        // A URL rule on the SharePoint task, recurring with pause.
        let created = env
            .post(
                &format!("/api/tasks/{sites}/rules"),
                &ada,
                json!({
                    "definition": {"kind": "url", "match": "begins_with", "value": "https://contoso.sharepoint.com/sites/hr"},
                    "mode": "recurring",
                    "deactivation": "pause",
                }),
            )
            .await
            .expect(201);
        let url_rule = created["rule"]["id"].as_str().expect("rule id").to_string();
        assert_eq!(created["rule"]["task_id"], sites.as_str());
        assert_eq!(created["rule"]["definition"]["kind"], "url");
        assert_eq!(created["rule"]["definition"]["match"], "begins_with");
        assert_eq!(created["rule"]["mode"], "recurring");
        assert_eq!(created["rule"]["deactivation"], "pause");
        assert_eq!(created["csv_problems"], json!([]));
        // The discovery job that applies it, with the rule in its payload.
        let job_id = created["job_id"].as_str().expect("job id");
        let job = env.get(&format!("/api/jobs/{job_id}"), &ada).await.expect(200);
        assert_eq!(job["kind"], "discovery", "{job}");

        // A CSV with bad rows: created, the bad rows reported by line.
        let csv = "Account Email,Name\nann@a.test,Ann\nnot-an-address,Bad\n,Nobody\nbea@a.test,Bea\n";
        let created = env
            .post(&format!("/api/tasks/{mail}/rules"), &ada, json!({ "csv": csv }))
            .await
            .expect(201);
        let csv_rule = created["rule"]["id"].as_str().expect("rule id").to_string();
        assert_eq!(created["rule"]["definition"]["kind"], "csv");
        assert_eq!(created["rule"]["definition"]["emails"].as_array().map(Vec::len), Some(2));
        assert_eq!(created["rule"]["mode"], "once");
        let lines: Vec<u64> = created["csv_problems"]
            .as_array()
            .expect("problems")
            .iter()
            .map(|p| p["line"].as_u64().expect("line"))
            .collect();
        assert_eq!(lines, vec![3, 4], "{}", created["csv_problems"]);
        assert!(created["csv_problems"][0]["reason"].as_str().unwrap_or("").contains("not-an-address"));

        // Bad requests: neither, both, a CSV without usable rows or without
        // the column, a rule kind the service cannot use, an empty value.
        let bad = [
            (mail.clone(), json!({})),
            (mail.clone(), json!({"csv": csv, "definition": {"kind": "csv", "emails": ["a@a.test"]}})),
            (mail.clone(), json!({"csv": "Account Email\nnope\n"})),
            (mail.clone(), json!({"csv": "Email\nann@a.test\n"})),
            (mail.clone(), json!({"definition": {"kind": "url", "match": "contains", "value": "hr"}})),
            (sites.clone(), json!({"definition": {"kind": "group", "group_id": "g-1"}})),
            (sites.clone(), json!({"definition": {"kind": "url", "match": "contains", "value": "  "}})),
        ];
        for (task, body) in bad {
            let a = env.post(&format!("/api/tasks/{task}/rules"), &ada, body.clone()).await;
            assert_eq!(a.status, 400, "{body}: {}", a.text);
        }

        // Listed per task.
        let list = env.get(&format!("/api/tasks/{sites}/rules"), &ada).await.expect(200);
        assert_eq!(rule_ids(&list), vec![url_rule.clone()]);
        let list = env.get(&format!("/api/tasks/{mail}/rules"), &ada).await.expect(200);
        assert_eq!(rule_ids(&list), vec![csv_rule.clone()]);

        // A viewer reads but cannot change.
        env.get(&format!("/api/tasks/{sites}/rules"), &vic).await.expect(200);
        let denied = env
            .post(
                &format!("/api/tasks/{sites}/rules"),
                &vic,
                json!({"definition": {"kind": "url", "match": "contains", "value": "hr"}}),
            )
            .await;
        assert_eq!(denied.status, 403, "{}", denied.text);
        assert_eq!(env.delete(&format!("/api/rules/{url_rule}"), &vic).await.status, 403);

        // Another account sees none of it.
        assert_eq!(env.get(&format!("/api/tasks/{sites}/rules"), &bob).await.status, 404);
        let foreign = env
            .post(
                &format!("/api/tasks/{sites}/rules"),
                &bob,
                json!({"definition": {"kind": "url", "match": "contains", "value": "hr"}}),
            )
            .await;
        assert_eq!(foreign.status, 404, "{}", foreign.text);
        assert_eq!(env.delete(&format!("/api/rules/{url_rule}"), &bob).await.status, 404);

        // Deleted by its account; a second delete is 404.
        env.delete(&format!("/api/rules/{url_rule}"), &ada).await.expect(204);
        let list = env.get(&format!("/api/tasks/{sites}/rules"), &ada).await.expect(200);
        assert!(rule_ids(&list).is_empty());
        assert_eq!(env.delete(&format!("/api/rules/{url_rule}"), &ada).await.status, 404);
        assert_eq!(env.delete("/api/rules/not-a-uuid", &ada).await.status, 400);
        let list = env.get(&format!("/api/tasks/{mail}/rules"), &ada).await.expect(200);
        assert_eq!(rule_ids(&list), vec![csv_rule]);
    }
);
