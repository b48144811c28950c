//! SharePoint site backup cost against the simulator with Microsoft's
//! throttling and network latency: Graph requests for a first backup of
//! every site, for an incremental after a simulated day, and for an
//! unchanged site; wall time, items/s, peak memory. Lists, items and pages
//! only unless `--libraries` is given (the document libraries go through
//! the drive backup).
//!
//! `cargo bench -p engine --bench sharepoint_backup -- --users 40 --latency-ms 20 --scale 4`

mod common;

use std::time::{Duration, Instant};

use engine::Cancel;
use engine::progress::NoProgress;
use engine::sharepoint::{
    BackupReport, SiteBackup, SiteBackupOptions, SiteSubService, backup_site, discover_sites,
};
use futures::StreamExt;
use graph::GraphClient;
use graph_sim::{SimConfig, ThrottleMode};
use serde_json::{Value, json};
use vault::SnapshotId;

struct Args {
    users: u32,
    latency_ms: u64,
    parallel: usize,
    scale: f64,
    libraries: bool,
}

fn args() -> Args {
    let mut a = Args {
        users: 40,
        latency_ms: 20,
        parallel: 4,
        scale: 4.0,
        libraries: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_default();
        match k.as_str() {
            "--users" => a.users = val().parse().unwrap_or(a.users),
            "--latency-ms" => a.latency_ms = val().parse().unwrap_or(a.latency_ms),
            "--parallel" => a.parallel = val().parse().unwrap_or(a.parallel),
            "--scale" => a.scale = val().parse().unwrap_or(a.scale),
            "--libraries" => a.libraries = true,
            _ => {}
        }
    }
    a
}

async fn run_all(
    graph: &GraphClient,
    account: &vault::Account,
    sites: &[(String, Option<SnapshotId>)],
    opts: &SiteBackupOptions,
    parallel: usize,
) -> (Vec<(String, BackupReport)>, Duration) {
    let start = Instant::now();
    let out = futures::stream::iter(sites.iter().cloned())
        .map(|(s, parent)| async move {
            let r = backup_site(SiteBackup {
                graph,
                vault: account,
                site_id: &s,
                parent: parent.as_ref(),
                options: opts,
                progress: &NoProgress,
                cancel: &Cancel::new(),
                meta: json!({}),
            })
            .await
            .expect("backup");
            (s, r)
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    (out, start.elapsed())
}

fn print_round(name: &str, rs: &[(String, BackupReport)], wall: Duration) {
    let requests: u64 = rs.iter().map(|(_, r)| r.requests).sum();
    let stored: u64 = rs
        .iter()
        .flat_map(|(_, r)| r.parts.iter().map(|p| p.counts.new + p.counts.changed))
        .sum();
    let deleted: u64 = rs
        .iter()
        .flat_map(|(_, r)| r.parts.iter().map(|p| p.counts.deleted))
        .sum();
    let total: u64 = rs
        .iter()
        .flat_map(|(_, r)| r.parts.iter().map(|p| p.counts.total))
        .sum();
    println!(
        "{name:<12} sites {:>3}  items stored {:>6} deleted {:>4} (of {:>6})  requests {:>5}  \
         req/site {:>5.1}  wall {:>6.2}s  items/s {:>7.0}",
        rs.len(),
        stored,
        deleted,
        total,
        requests,
        requests as f64 / rs.len().max(1) as f64,
        wall.as_secs_f64(),
        stored as f64 / wall.as_secs_f64().max(1e-9),
    );
}

#[tokio::main]
async fn main() {
    let a = args();
    let mut cfg = SimConfig::new(a.users, 2024);
    cfg.throttle = ThrottleMode::Realistic;
    cfg.latency_ms = a.latency_ms;
    cfg.content_scale = a.scale;
    let (sim, graph, account, _dir) = common::tenant(cfg).await;
    let start = Instant::now();
    let found = discover_sites(&graph).await.expect("discovery");
    println!(
        "discovery: {} sites ({} sub-sites, {} group team sites) in {:.2}s",
        found.len(),
        found.iter().filter(|s| s.is_sub_site).count(),
        found.iter().filter(|s| s.group_id.is_some()).count(),
        start.elapsed().as_secs_f64()
    );
    let opts = if a.libraries {
        SiteBackupOptions::default()
    } else {
        SiteBackupOptions {
            sub_services: vec![SiteSubService::Site],
        }
    };
    println!(
        "SharePoint backup: latency {} ms, throttle realistic, {} sites at once, content scale {}",
        a.latency_ms, a.parallel, a.scale
    );
    let sites: Vec<(String, Option<SnapshotId>)> =
        found.iter().map(|s| (s.graph_id.clone(), None)).collect();
    let (first, wall) = run_all(&graph, &account, &sites, &opts, a.parallel).await;
    print_round("first", &first, wall);

    // A simulated day for all but one site, which stays unchanged.
    let quiet = sites[0].0.clone();
    let active: Vec<String> = sites[1..]
        .iter()
        .map(|(s, _)| format!("site:{s}"))
        .collect();
    let report: Value = reqwest::Client::new()
        .post(format!("{}/_sim/activity", sim.url))
        .json(&json!({"days": 1, "entities": active}))
        .send()
        .await
        .expect("activity")
        .json()
        .await
        .expect("activity report");
    println!("activity: {}", report["report"]);
    let next: Vec<(String, Option<SnapshotId>)> = first
        .iter()
        .map(|(s, r)| (s.clone(), r.snapshot_id.clone()))
        .collect();
    let (second, wall) = run_all(&graph, &account, &next, &opts, a.parallel).await;
    print_round("incremental", &second, wall);
    if let Some((_, r)) = second.iter().find(|(s, _)| *s == quiet) {
        let snap = account
            .snapshot(r.snapshot_id.as_ref().expect("snapshot"))
            .await
            .expect("snapshot");
        let lists = account
            .list_folder(&snap, "lists")
            .await
            .map(|f| f.len())
            .unwrap_or(0);
        println!("unchanged site: {} requests for {lists} lists", r.requests);
    }
    println!("peak memory {:.0} MiB", common::peak_rss_mib());
}
