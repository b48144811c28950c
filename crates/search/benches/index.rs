//! Indexing throughput and query latency over a generated tenant: the
//! simulator's mailboxes, OneDrives and teams are backed up by the real
//! engine into a local vault, then indexed; then a mix of searches runs.
//!
//! `cargo bench -p search --bench index` (env `BENCH_USERS`, default 20).

use std::time::{Duration, Instant};

use engine::Cancel;
use engine::progress::CountingProgress;
use graph::{GraphClient, GraphConfig, Secret};
use search::{AsOf, ItemKind, Query, SearchIndex};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let users: u32 = std::env::var("BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let cfg = graph_sim::SimConfig::new(users, 3);
    let sim = graph_sim::start(cfg, "127.0.0.1:0".parse().expect("address"), false)
        .await
        .expect("simulator");
    let c = &sim.sim.cfg;
    let graph = GraphClient::new(
        GraphConfig::new(
            &sim.graph_url(),
            &sim.login_url(),
            &c.tenant_id,
            &c.client_id,
            Secret::new(c.client_secret.clone()),
        )
        .expect("config"),
    )
    .expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = vault::Repository::init(
        vault::Location::from_url(dir.path().to_str().expect("utf-8 path")).expect("location"),
        vault::InitOptions {
            kdf_m_kib: 1024,
            kdf_t: 1,
            ..Default::default()
        },
    )
    .await
    .expect("repo");
    let account = repo
        .open_or_init_account(
            "bench",
            &vault::MasterKey::from_bytes([9; 32]).account_key("bench"),
        )
        .await
        .expect("account");

    let progress = CountingProgress::default();
    let cancel = Cancel::new();
    let mailboxes = engine::exchange::discover_mailboxes(&graph, &Default::default())
        .await
        .expect("discovery");
    let started = Instant::now();
    let mut snaps = Vec::new();
    for m in &mailboxes {
        let r = engine::exchange::backup_mailbox(engine::exchange::MailboxBackup {
            graph: &graph,
            vault: &account,
            mailbox_id: &m.graph_id,
            parent: None,
            options: &Default::default(),
            progress: &progress,
            cancel: &cancel,
            meta: json!({}),
        })
        .await
        .expect("mailbox backup");
        if let Some(id) = r.snapshot_id {
            snaps.push((format!("mailbox:{}", m.graph_id), id));
        }
    }
    for d in engine::onedrive::discover_drives(&graph)
        .await
        .expect("drives")
    {
        let r = engine::onedrive::backup_onedrive(engine::onedrive::OneDriveBackup {
            graph: &graph,
            vault: &account,
            user_id: &d.user_id,
            parent: None,
            options: &Default::default(),
            progress: &progress,
            cancel: &cancel,
            meta: json!({}),
        })
        .await
        .expect("onedrive backup");
        if let Some(id) = r.snapshot_id {
            snaps.push((format!("onedrive:{}", d.user_id), id));
        }
    }
    for g in engine::teams::discover_groups(&graph)
        .await
        .expect("groups")
    {
        let r = engine::teams::backup_group(engine::teams::GroupBackup {
            graph: &graph,
            vault: &account,
            group_id: &g.graph_id,
            is_team: g.kind == engine::teams::GroupKind::Team,
            parent: None,
            options: &Default::default(),
            progress: &progress,
            cancel: &cancel,
            meta: json!({}),
        })
        .await
        .expect("group backup");
        if let Some(id) = r.snapshot_id {
            snaps.push((format!("group:{}", g.graph_id), id));
        }
    }
    println!(
        "tenant: {users} users, {} snapshots backed up in {:.1?}",
        snaps.len(),
        started.elapsed()
    );

    let cache = tempfile::tempdir().expect("tempdir");
    let mut index = SearchIndex::open_writer(account.clone(), cache.path())
        .await
        .expect("writer");
    let started = Instant::now();
    let mut items = 0u64;
    for (key, id) in &snaps {
        let info = account.snapshot(id).await.expect("snapshot");
        items += index
            .index_snapshot(key, &info, None)
            .await
            .expect("index")
            .added;
    }
    let took = started.elapsed();
    println!(
        "indexed {items} item versions in {took:.2?}: {:.0} items/s (including vault reads and upload of the index)",
        items as f64 / took.as_secs_f64()
    );
    let stored: u64 = account
        .list_objects("search")
        .await
        .expect("list")
        .iter()
        .map(|o| o.stored_size)
        .sum();
    println!("index in the vault: {:.1} MiB", stored as f64 / 1048576.0);

    let words = [
        "meeting", "budget", "report", "project", "review", "contoso",
    ];
    let mut lat: Vec<Duration> = Vec::new();
    for (i, (key, _)) in snaps.iter().enumerate() {
        for (j, w) in words.iter().enumerate() {
            let q = Query {
                entity_key: key.clone(),
                as_of: AsOf::Latest,
                keyword: Some((*w).to_string()),
                kinds: if (i + j) % 2 == 0 {
                    vec![]
                } else {
                    vec![ItemKind::Mail, ItemKind::File]
                },
                limit: 50,
                ..Default::default()
            };
            let t = Instant::now();
            let _ = index.search(&q).await.expect("search");
            lat.push(t.elapsed());
        }
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize];
    println!(
        "{} keyword queries: p50 {:.2?}, p95 {:.2?}, max {:.2?}",
        lat.len(),
        pct(0.5),
        pct(0.95),
        pct(1.0)
    );

    let reader_cache = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let _reader = SearchIndex::open_reader(account.clone(), reader_cache.path())
        .await
        .expect("reader");
    println!(
        "opening the index on an empty cache (download): {:.2?}",
        t.elapsed()
    );
    index.close().await.expect("close");
}
