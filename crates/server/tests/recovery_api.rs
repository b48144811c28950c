//! The recovery API over HTTP, on SQLite and PostgreSQL: the backup
//! calendar (F-E1), queueing restores (F-E4..F-E6) with their checks,
//! permissions and cross-account isolation, and a job's per-item log.

#[allow(dead_code)] // each test file uses part of the shared harness
mod common;

use catalog::{JobId, JobItem, Role, RunFinish, RunOutcome, SubService};
use chrono::Duration;
use common::Env;
use serde_json::json;

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

api_test!(
    async fn calendar_restore_and_item_log(env) {
        let (account, _) = env.account_with_user("A", "ada@a.test", Role::Admin).await;
        let viewer = env.user(account, "vic@a.test", Role::Viewer).await;
        let _ = viewer;
        env.account_with_user("B", "bob@b.test", Role::Owner).await;
        let ada = env.login("ada@a.test").await.auth();
        let vic = env.login("vic@a.test").await.auth();
        let bob = env.login("bob@b.test").await.auth();
        let task = env.create_task(&ada, "Mail").await;
        let es = env.mailboxes(account, &task, &["Alice", "Bea"]).await;
        let (alice, bea) = (&es[0], &es[1]);

        // Two backups on the 9th, one failed on the 10th (t0 = 2026-03-10 12:00 UTC).
        let t0 = common::t0();
        let c = &env.catalog;
        for (off, snap, outcome) in [
            (Duration::hours(-30), "snap-a", RunOutcome::Success),
            (Duration::hours(-20), "snap-b", RunOutcome::Partial),
            (Duration::hours(-2), "snap-c", RunOutcome::Failed),
        ] {
            let r = c.start_run_at(account, alice.id, SubService::Mail, t0 + off).await.expect("run");
            c.finish_run_at(account, r.id, &RunFinish { snapshot_id: Some(snap.into()), outcome: Some(outcome), ..Default::default() }, t0 + off + Duration::minutes(5))
                .await
                .expect("finish");
        }
        let base = format!("/api/tasks/{task}/entities/{}", alice.id);
        let cal = env.get(&format!("{base}/calendar"), &vic).await.expect(200);
        let days: Vec<&str> = cal.as_array().expect("days").iter().map(|d| d["day"].as_str().expect("day")).collect();
        assert_eq!(days, ["2026-03-09", "2026-03-10"], "{cal}");
        assert_eq!(cal[0]["outcome"], "partial");
        assert_eq!(cal[0]["snapshots"].as_array().map(Vec::len), Some(2));
        assert_eq!(cal[0]["snapshots"][0]["snapshot_id"], "snap-a");
        assert_eq!(cal[1]["outcome"], "failed");
        // Days are the viewer's: at UTC+14 the 9th's 06:00 and 16:00 backups are on the 9th and 10th.
        let cal = env.get(&format!("{base}/calendar?tz_offset_minutes=840"), &vic).await.expect(200);
        let days: Vec<&str> = cal.as_array().expect("days").iter().map(|d| d["day"].as_str().expect("day")).collect();
        assert_eq!(days, ["2026-03-09", "2026-03-10", "2026-03-11"], "{cal}");
        assert_eq!(env.get(&format!("{base}/calendar?tz_offset_minutes=5000"), &vic).await.status, 400);
        // Another account sees no such entity.
        assert_eq!(env.get(&format!("{base}/calendar"), &bob).await.status, 404);

        // A restore is queued as a job with what was asked.
        let job = env
            .post(&format!("{base}/restore"), &ada, json!({
                "snapshot_id": "snap-b",
                "mode": "non-destructive",
                "sub_services": ["contacts"],
                "items": ["mail/F1/M1"],
                "destination": {"entity_id": bea.id.0},
                "tag": "Restored",
                "mark_restored": true,
                "snapshot_destination_first": true,
            }))
            .await
            .expect(202);
        assert_eq!(job["kind"], "restore", "{job}");
        assert_eq!(job["status"], "pending");
        let job_id: JobId = job["id"].as_str().expect("id").parse().expect("job id");
        let stored = c.get_job(account, job_id).await.expect("job");
        let p = &stored.payload;
        assert_eq!(p["snapshot_id"], "snap-b");
        assert_eq!(p["options"]["mode"], "non-destructive");
        assert_eq!(p["options"]["tag"], "Restored");
        assert_eq!(p["options"]["markRestored"], true);
        assert_eq!(p["selection"]["subServices"], json!(["contacts"]));
        assert_eq!(p["selection"]["items"], json!(["mail/F1/M1"]));
        assert_eq!(p["destination"]["entity_id"], bea.id.0.to_string());
        assert_eq!(p["snapshot_destination_first"], true);
        assert_eq!(stored.entity_id, Some(alice.id));

        // What is refused, and how.
        for (body, status) in [
            (json!({"mode": "overwrite"}), 400),
            (json!({"mode": "replace", "sub_services": ["everything"]}), 400),
            (json!({"mode": "replace", "snapshot_id": "snap-of-someone-else"}), 404),
            (json!({"mode": "replace", "destination": {"entity_id": uuid::Uuid::new_v4()}}), 404),
            (json!({"mode": "replace", "destination": {"external_id": "u-1"}}), 400),
            (json!({"mode": "replace", "destination": {"external_id": "u-1", "connection_id": uuid::Uuid::new_v4()}}), 404),
        ] {
            let a = env.post(&format!("{base}/restore"), &ada, body.clone()).await;
            assert_eq!(a.status, status, "{body}: {}", a.text);
        }
        // A viewer may not restore; another account cannot reach the entity.
        assert_eq!(env.post(&format!("{base}/restore"), &vic, json!({"mode": "replace"})).await.status, 403);
        assert_eq!(env.post(&format!("{base}/restore"), &bob, json!({"mode": "replace"})).await.status, 404);

        // The per-item log, paged and filtered, and only within the account.
        let item = |n: u32, outcome: &str| JobItem { seq: 0, path: format!("mail/F1/M{n}"), name: format!("Message {n}"), outcome: outcome.into(), detail: None, bytes: 100 };
        c.append_job_items(account, job_id, &[item(1, "restored"), item(2, "failed"), item(3, "skipped")]).await.expect("log");
        let items = env.get(&format!("/api/jobs/{job_id}/items"), &vic).await.expect(200);
        assert_eq!(items.as_array().map(Vec::len), Some(3));
        let failed = env.get(&format!("/api/jobs/{job_id}/items?outcome=failed"), &vic).await.expect(200);
        assert_eq!(failed[0]["name"], "Message 2");
        let page = env.get(&format!("/api/jobs/{job_id}/items?offset=2&limit=1"), &vic).await.expect(200);
        assert_eq!(page[0]["seq"], 2);
        assert_eq!(env.get(&format!("/api/jobs/{job_id}/items?limit=5000"), &vic).await.status, 400);
        assert_eq!(env.get(&format!("/api/jobs/{job_id}/items"), &bob).await.status, 404);
    }
);
