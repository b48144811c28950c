//! Group and team backup cost against the simulator with Microsoft's
//! throttling and network latency: Graph requests per stored item for a
//! first backup and for an incremental after a simulated day, what an
//! unchanged team costs, wall time, peak memory. The document libraries are
//! left out (the drive bench measures them).
//!
//! `cargo bench -p engine --bench teams_backup -- --users 40 --latency-ms 20 --scale 2`

mod common;

use std::time::{Duration, Instant};

use engine::Cancel;
use engine::progress::NoProgress;
use engine::teams::{
    BackupReport, GroupBackup, GroupBackupOptions, GroupKind, SubService, backup_group,
    discover_groups,
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
}

fn args() -> Args {
    let mut a = Args {
        users: 40,
        latency_ms: 20,
        parallel: 4,
        scale: 2.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_default();
        match k.as_str() {
            "--users" => a.users = val().parse().unwrap_or(a.users),
            "--latency-ms" => a.latency_ms = val().parse().unwrap_or(a.latency_ms),
            "--parallel" => a.parallel = val().parse().unwrap_or(a.parallel),
            "--scale" => a.scale = val().parse().unwrap_or(a.scale),
            _ => {}
        }
    }
    a
}

/// (group id, is team, parent snapshot)
type Entity = (String, bool, Option<SnapshotId>);

async fn run_all(
    graph: &GraphClient,
    account: &vault::Account,
    groups: &[Entity],
    parallel: usize,
) -> (Vec<(String, BackupReport)>, Duration) {
    let start = Instant::now();
    let opts = GroupBackupOptions {
        sub_services: vec![
            SubService::Metadata,
            SubService::Conversations,
            SubService::Calendar,
            SubService::Channels,
        ],
        concurrency: 2,
    };
    let out = futures::stream::iter(groups.iter().cloned())
        .map(|(g, is_team, parent)| {
            let opts = &opts;
            async move {
                let r = backup_group(GroupBackup {
                    graph,
                    vault: account,
                    group_id: &g,
                    is_team,
                    parent: parent.as_ref(),
                    options: opts,
                    progress: &NoProgress,
                    cancel: &Cancel::new(),
                    meta: json!({}),
                })
                .await
                .expect("backup");
                (g, r)
            }
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
    let total: u64 = rs
        .iter()
        .flat_map(|(_, r)| r.parts.iter().map(|p| p.counts.total))
        .sum();
    println!(
        "{name:<12} groups {:>3}  items stored {:>6} (of {:>6})  requests {:>5}  req/stored item {:>5.2}  \
         req/item held {:>5.3}  wall {:>6.2}s",
        rs.len(),
        stored,
        total,
        requests,
        requests as f64 / stored.max(1) as f64,
        requests as f64 / total.max(1) as f64,
        wall.as_secs_f64(),
    );
    for sub in [
        SubService::Metadata,
        SubService::Conversations,
        SubService::Calendar,
        SubService::Channels,
    ] {
        let (s, t) = rs
            .iter()
            .filter_map(|(_, r)| r.part(sub))
            .fold((0, 0), |(s, t), p| {
                (s + p.counts.new + p.counts.changed, t + p.counts.total)
            });
        println!("  {sub:<14} stored {s:>6} of {t:>6}");
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let mut cfg = SimConfig::new(a.users, 2024);
    cfg.throttle = ThrottleMode::Realistic;
    cfg.latency_ms = a.latency_ms;
    cfg.content_scale = a.scale;
    let (sim, graph, account, _dir) = common::tenant(cfg).await;
    let found = discover_groups(&graph).await.expect("discovery");
    let teams = found.iter().filter(|g| g.kind == GroupKind::Team).count();
    println!(
        "Teams & Groups backup: {} groups ({teams} teams), latency {} ms, throttle realistic, {} at once",
        found.len(),
        a.latency_ms,
        a.parallel
    );
    let groups: Vec<Entity> = found
        .iter()
        .map(|g| (g.graph_id.clone(), g.kind == GroupKind::Team, None))
        .collect();
    let (first, wall) = run_all(&graph, &account, &groups, a.parallel).await;
    print_round("first", &first, wall);

    // A simulated day for all but one team, which stays unchanged.
    let quiet = groups
        .iter()
        .find(|g| g.1)
        .map(|g| g.0.clone())
        .unwrap_or_default();
    let active: Vec<String> = groups
        .iter()
        .filter(|g| g.0 != quiet)
        .map(|g| format!("group:{}", g.0))
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
    let next: Vec<Entity> = first
        .iter()
        .map(|(g, r)| {
            let is_team = groups.iter().any(|x| &x.0 == g && x.1);
            (g.clone(), is_team, r.snapshot_id.clone())
        })
        .collect();
    let (second, wall) = run_all(&graph, &account, &next, a.parallel).await;
    print_round("incremental", &second, wall);
    if let Some((_, r)) = second.iter().find(|(g, _)| *g == quiet) {
        let snap = account
            .snapshot(r.snapshot_id.as_ref().expect("snapshot"))
            .await
            .expect("snapshot");
        let channels = account
            .list_folder(&snap, "channels")
            .await
            .map(|f| f.len())
            .unwrap_or(0);
        let held: u64 = r.parts.iter().map(|p| p.counts.total).sum();
        println!(
            "unchanged team: {} requests for {channels} channels and {held} items",
            r.requests
        );
    }
    println!("peak memory {:.0} MiB", common::peak_rss_mib());
}
