//! Browse, preview, search and restore through the API on a real runtime
//! (SQLite catalog, local vault) and the tenant simulator: a backed-up
//! mailbox is listed, previewed only by callers with the preview
//! permission, searched, and an item restored by its path; another account
//! reaches none of it.

#[allow(dead_code)] // each test file uses part of the shared harness
mod common;

use std::sync::Arc;
use std::time::Duration;

use catalog::{
    EntityType, JobStatus, NewConnection, NewTask, Permission, Role, Service, TaskSettings,
};
use common::Env;
use serde_json::{Value, json};

async fn run_jobs(
    rt: &Arc<worker::Runtime>,
    account: catalog::AccountId,
    ids: &[catalog::JobId],
) -> Vec<catalog::Job> {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let w = worker::Worker::new(rt.clone());
    let handle = tokio::spawn(w.run(2, async move {
        let _ = rx.wait_for(|v| *v).await;
    }));
    let mut jobs = Vec::new();
    for _ in 0..1200 {
        jobs.clear();
        for id in ids {
            jobs.push(rt.catalog.get_job(account, *id).await.expect("job"));
        }
        if jobs.iter().all(|j| {
            matches!(
                j.status,
                JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
            )
        }) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = tx.send(true);
    handle.await.expect("worker stops");
    jobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_preview_search_and_restore_on_a_real_backup() {
    let mut cfg = graph_sim::SimConfig::new(8, 11);
    cfg.content_scale = 0.1;
    cfg.latency_ms = 0;
    let sim = graph_sim::start(cfg, "127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("simulator");
    let dir = tempfile::tempdir().expect("temp dir");
    let rt = worker::Runtime::open(
        &worker::Storage::Embedded {
            data_dir: dir.path().join("data"),
        },
        None,
        worker::RuntimeOptions::default(),
    )
    .await
    .expect("runtime");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let state = server::AppState::new(
        rt.catalog.clone(),
        server::ServerConfig {
            secure_cookies: false,
        },
    )
    .with_runtime(rt.clone());
    tokio::spawn(server::serve(listener, state));
    let env = Env {
        catalog: rt.catalog.clone(),
        clock: catalog::ManualClock::new(chrono::Utc::now()),
        base,
        http: reqwest::Client::new(),
    };

    let (account, _) = env.account_with_user("A", "ada@a.test", Role::Admin).await;
    let op = env.user(account, "otto@a.test", Role::Operator).await;
    env.account_with_user("B", "bob@b.test", Role::Owner).await;
    let ada = env.login("ada@a.test").await.auth();
    let otto_browser = env.login("otto@a.test").await;
    let otto = otto_browser.auth();
    let bob_browser = env.login("bob@b.test").await;
    let bob = bob_browser.auth();

    // A task on the simulator, one mailbox backed up.
    let c = &sim.sim.cfg;
    let conn = rt
        .connect(
            account,
            NewConnection {
                tenant_id: c.tenant_id.clone(),
                client_id: c.client_id.clone(),
                client_secret: catalog::Secret::new(c.client_secret.clone()),
                graph_url: sim.graph_url(),
                login_url: sim.url.clone(),
            },
        )
        .await
        .expect("connection");
    let task = rt
        .catalog
        .create_task(
            account,
            NewTask {
                connection_id: conn.id,
                service: Service::Exchange,
                name: "Mail".into(),
                settings: TaskSettings::default(),
            },
        )
        .await
        .expect("task");
    worker::discover_task(&rt, account, task.id, None)
        .await
        .expect("discovery");
    let mailbox = worker::task_entities(&rt, account, task.id)
        .await
        .expect("entities")
        .into_iter()
        .find(|e| {
            e.entity_type == EntityType::User
                && e.properties.get("licensed") == Some(&json!(true))
                && e.properties.get("accountEnabled") == Some(&json!(true))
        })
        .expect("a licensed user");
    rt.catalog
        .activate_entities(account, &[mailbox.id])
        .await
        .expect("activate");
    let enq = worker::enqueue_backups(&rt, &task, Some(&[mailbox.id]), "test", None)
        .await
        .expect("enqueue");
    let backup = run_jobs(&rt, account, &[enq.jobs[0].id]).await.remove(0);
    assert_eq!(backup.status, JobStatus::Succeeded, "{:?}", backup.error);
    let base = format!("/api/tasks/{}/entities/{}", task.id, mailbox.id);

    // Browse: cards, then the Inbox, as an operator.
    let top = env.get(&format!("{base}/browse"), &otto).await.expect(200);
    assert_eq!(top["cards"].as_array().map(Vec::len), Some(4), "{top}");
    assert!(top["snapshotId"].is_string());
    let mail = env
        .get(&format!("{base}/browse?path=mail"), &otto)
        .await
        .expect(200);
    assert_eq!(mail["folders"][0]["name"], "Inbox", "{mail}");
    let inbox = mail["folders"][0]["path"]
        .as_str()
        .expect("path")
        .to_string();
    let listing = env
        .get(
            &format!("{base}/browse?path={}&limit=3", urlencode(&inbox)),
            &otto,
        )
        .await
        .expect(200);
    assert!(
        listing["items"].as_array().map(Vec::len).unwrap_or(0) > 0,
        "{listing}"
    );
    let item: Value = listing["items"][0].clone();
    let path = item["path"].as_str().expect("item path").to_string();
    let subject = item["columns"]["subject"]
        .as_str()
        .expect("subject")
        .to_string();
    assert_eq!(
        env.get(&format!("{base}/browse?path=nowhere/at/all"), &otto)
            .await
            .status,
        400
    );

    // Preview: refused to the operator until granted; the admin may.
    let preview_url = format!("{base}/preview?path={}", urlencode(&path));
    let refused = env.get(&preview_url, &otto).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    let shown = env.get(&preview_url, &ada).await.expect(200);
    assert_eq!(shown["title"], subject.as_str(), "{shown}");
    rt.catalog
        .set_user_permissions(
            account,
            op,
            Some(&[Permission::PreviewData, Permission::Restore]),
        )
        .await
        .expect("grant");
    env.get(&preview_url, &otto).await.expect(200);

    // Search by subject finds the item.
    let q: String = subject
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let hits = env
        .get(&format!("{base}/search?subject={}", urlencode(&q)), &otto)
        .await
        .expect(200);
    assert!(
        hits["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .any(|h| h["path"] == path.as_str()),
        "{q}: {hits}"
    );
    assert_eq!(
        env.get(&format!("{base}/search"), &otto).await.status,
        400,
        "a search needs criteria"
    );

    // Restore that item as a copy beside the mailbox (non-destructive) and read its log.
    let job = env
        .post(
            &format!("{base}/restore"),
            &otto,
            json!({"mode": "non-destructive", "items": [path]}),
        )
        .await
        .expect(202);
    let job_id: catalog::JobId = job["id"].as_str().expect("id").parse().expect("job id");
    let done = run_jobs(&rt, account, &[job_id]).await.remove(0);
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.error);
    assert_eq!(
        done.result
            .as_ref()
            .map(|r| r["report"]["restored"].clone()),
        Some(json!(1)),
        "{:?}",
        done.result
    );
    let items = env
        .get(&format!("/api/jobs/{job_id}/items"), &otto)
        .await
        .expect(200);
    assert_eq!(items[0]["outcome"], "restored", "{items}");
    assert_eq!(items[0]["path"], path.as_str());

    // What changed between two times with one backup between them: the
    // same backup on both sides, so nothing; a reversed range is refused.
    let now = chrono::Utc::now();
    let changes = env
        .get(
            &format!(
                "{base}/changes?from={}&to={}",
                urlencode(&now.to_rfc3339()),
                urlencode(&now.to_rfc3339())
            ),
            &otto,
        )
        .await
        .expect(200);
    assert_eq!(changes["fromSnapshotId"], changes["toSnapshotId"]);
    assert_eq!(changes["items"], json!([]));
    let earlier = (now - chrono::Duration::days(1)).to_rfc3339();
    let a = env
        .get(
            &format!(
                "{base}/changes?from={}&to={}",
                urlencode(&now.to_rfc3339()),
                urlencode(&earlier)
            ),
            &otto,
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    let a = env
        .get(
            &format!(
                "{base}/changes?from={}&to={}",
                urlencode(&earlier),
                urlencode(&now.to_rfc3339())
            ),
            &otto,
        )
        .await;
    assert_eq!(a.status, 404, "no backup a day ago: {}", a.text);

    // Export: refused without the permission, then the mailbox's mail as a
    // PST behind a signed download link that only this account can use.
    let export_body = json!({"format": "pst", "sub_services": ["mail"], "destination": "download"});
    let refused = env
        .post(&format!("{base}/export"), &otto, export_body.clone())
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    rt.catalog
        .set_user_permissions(
            account,
            op,
            Some(&[
                Permission::PreviewData,
                Permission::Restore,
                Permission::Export,
            ]),
        )
        .await
        .expect("grant export");
    let bad = env
        .post(
            &format!("{base}/export"),
            &otto,
            json!({"format": "vcf", "sub_services": ["mail"], "destination": "download"}),
        )
        .await;
    assert_eq!(bad.status, 400, "mail is not a vCard: {}", bad.text);
    let bad = env
        .post(
            &format!("{base}/export"),
            &otto,
            json!({"format": "pst", "destination": "s3://bucket/p"}),
        )
        .await;
    assert_eq!(bad.status, 400, "S3 without credentials: {}", bad.text);
    let bad = env
        .post(
            &format!("{base}/export"),
            &otto,
            json!({"format": "pst", "destination": "ftp://x"}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let job = env
        .post(&format!("{base}/export"), &otto, export_body)
        .await
        .expect(202);
    let export_id: catalog::JobId = job["id"].as_str().expect("id").parse().expect("job id");
    let done = run_jobs(&rt, account, &[export_id]).await.remove(0);
    assert_eq!(done.status, JobStatus::Succeeded, "{:?}", done.error);
    let result = done.result.clone().expect("result");
    let file = &result["files"][0];
    let url = file["url"].as_str().expect("a download link").to_string();
    let size = file["size"].as_u64().expect("size");
    let (status, bytes) = download(&env, &url, &Some(otto_browser.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(&bytes[..4], b"!BDN", "a PST");
    // Another account's user, a forged signature, a link made longer: refused.
    assert_eq!(
        download(&env, &url, &Some(bob_browser.clone())).await.0,
        404
    );
    let flipped = if url.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{flipped}", &url[..url.len() - 1]);
    assert_eq!(
        download(&env, &forged, &Some(otto_browser.clone())).await.0,
        403
    );
    let expires = result["expires_at"].as_str().expect("expiry");
    let expires = chrono::DateTime::parse_from_rfc3339(expires)
        .expect("time")
        .timestamp();
    let longer = url.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 86_400),
    );
    assert_eq!(
        download(&env, &longer, &Some(otto_browser.clone())).await.0,
        403
    );
    assert_eq!(download(&env, &url, &None).await.0, 401);

    // Another account reaches none of it.
    for url in [
        format!("{base}/browse"),
        preview_url.clone(),
        format!("{base}/search?q=a"),
        format!("{base}/calendar"),
        format!("/api/jobs/{job_id}/items"),
        format!("/api/jobs/{export_id}/items"),
    ] {
        assert_eq!(env.get(&url, &bob).await.status, 404, "{url}");
    }
    rt.catalog.close().await;
}

/// GETs a download link as `who` (None: signed out): status and bytes.
async fn download(env: &Env, url: &str, who: &Option<common::Browser>) -> (u16, Vec<u8>) {
    let mut req = env.http.get(format!("{}{}", env.base, url));
    if let Some(b) = who {
        req = req.header("cookie", format!("{}={}", server::SESSION_COOKIE, b.cookie));
    }
    let resp = req.send().await.expect("request reaches the server");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
