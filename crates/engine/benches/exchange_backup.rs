//! Exchange backup cost against the simulator with Microsoft's throttling
//! and network latency: Graph requests per item for a first backup and for
//! an incremental after a simulated day, what an unchanged mailbox costs,
//! wall time against the throttle-imposed lower bound, items/s, peak memory.
//!
//! `cargo bench -p engine --bench exchange_backup -- --users 12 --latency-ms 20`

mod common;

use std::time::{Duration, Instant};

use engine::Cancel;
use engine::exchange::{
    BackupOptions, BackupReport, DiscoveryOptions, MailboxBackup, backup_mailbox,
    discover_mailboxes,
};
use engine::progress::NoProgress;
use futures::StreamExt;
use graph::GraphClient;
use graph_sim::{SimConfig, ThrottleMode};
use serde_json::{Value, json};
use vault::SnapshotId;

async fn run_all(
    graph: &GraphClient,
    account: &vault::Account,
    users: &[(String, Option<SnapshotId>)],
    parallel: usize,
) -> (Vec<(String, BackupReport)>, Duration) {
    let start = Instant::now();
    let opts = BackupOptions::default();
    let out: Vec<(String, BackupReport)> = futures::stream::iter(users.iter().cloned())
        .map(|(u, parent)| {
            let opts = &opts;
            async move {
                let r = backup_mailbox(MailboxBackup {
                    graph,
                    vault: account,
                    mailbox_id: &u,
                    parent: parent.as_ref(),
                    options: opts,
                    progress: &NoProgress,
                    cancel: &Cancel::new(),
                    meta: json!({}),
                })
                .await
                .expect("backup");
                (u, r)
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    (out, start.elapsed())
}

fn items(r: &BackupReport) -> (u64, u64) {
    let changed: u64 = r
        .parts
        .iter()
        .map(|p| p.counts.new + p.counts.changed)
        .sum();
    let total: u64 = r.parts.iter().map(|p| p.counts.total).sum();
    (changed, total)
}

fn print_round(name: &str, rs: &[(String, BackupReport)], wall: Duration, latency: Duration) {
    let requests: u64 = rs.iter().map(|(_, r)| r.requests).sum();
    let stored: u64 = rs.iter().map(|(_, r)| items(r).0).sum();
    let total: u64 = rs.iter().map(|(_, r)| items(r).1).sum();
    let bytes: u64 = rs
        .iter()
        .flat_map(|(_, r)| r.parts.iter().map(|p| p.counts.bytes_read))
        .sum();
    // Each mailbox allows 4 requests in flight: its requests cannot finish
    // faster than requests x latency / 4; mailboxes run in parallel.
    let bound = rs
        .iter()
        .map(|(_, r)| latency.as_secs_f64() * r.requests as f64 / 4.0)
        .fold(0.0, f64::max);
    println!(
        "{name:<12} mailboxes {:>3}  items stored {:>7} (of {:>7})  requests {:>6}  req/stored item {:>6.2}  \
         MiB read {:>7.1}  wall {:>6.2}s  lower bound {:>5.2}s  items/s {:>7.0}",
        rs.len(),
        stored,
        total,
        requests,
        requests as f64 / stored.max(1) as f64,
        bytes as f64 / 1048576.0,
        wall.as_secs_f64(),
        bound,
        stored as f64 / wall.as_secs_f64().max(1e-9),
    );
}

#[tokio::main]
async fn main() {
    let a = common::MailboxArgs {
        users: 12,
        latency_ms: 20,
        parallel: 8,
        scale: 1.0,
    }
    .overridden_by_command_line();
    let mut cfg = SimConfig::new(a.users, 2024);
    cfg.throttle = ThrottleMode::Realistic;
    cfg.latency_ms = a.latency_ms;
    cfg.content_scale = a.scale;
    let (sim, graph, account, _dir) = common::tenant(cfg).await;
    let mailboxes = discover_mailboxes(&graph, &DiscoveryOptions::default())
        .await
        .expect("discovery");
    let latency = Duration::from_millis(a.latency_ms);
    println!(
        "Exchange backup: {} mailboxes, latency {} ms, throttle realistic, {} mailboxes at once",
        mailboxes.len(),
        a.latency_ms,
        a.parallel
    );
    let users: Vec<(String, Option<SnapshotId>)> = mailboxes
        .iter()
        .map(|m| (m.graph_id.clone(), None))
        .collect();
    let (first, wall) = run_all(&graph, &account, &users, a.parallel).await;
    print_round("first", &first, wall, latency);

    // A simulated day for all but one mailbox, which stays unchanged.
    let quiet = users[0].0.clone();
    let active: Vec<String> = users[1..]
        .iter()
        .map(|(u, _)| format!("user:{u}"))
        .collect();
    let http = reqwest::Client::new();
    let report: Value = http
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
        .map(|(u, r)| (u.clone(), r.snapshot_id.clone()))
        .collect();
    let (second, wall) = run_all(&graph, &account, &next, a.parallel).await;
    print_round("incremental", &second, wall, latency);
    if let Some((_, r)) = second.iter().find(|(u, _)| *u == quiet) {
        let snap = account
            .snapshot(r.snapshot_id.as_ref().expect("snapshot"))
            .await
            .expect("snapshot");
        let folders = account
            .list_folder(&snap, "mail")
            .await
            .map(|f| f.len())
            .unwrap_or(0);
        let lists = account
            .list_folder(&snap, "tasks")
            .await
            .map(|f| f.len())
            .unwrap_or(0);
        let cfolders = account
            .list_folder(&snap, "contacts")
            .await
            .map(|f| f.len())
            .unwrap_or(0);
        let cals = account
            .list_folder(&snap, "calendar")
            .await
            .map(|f| f.len())
            .unwrap_or(0);
        println!(
            "unchanged mailbox: {} requests for {} mail folders, {} contact folders, {} calendars, {} task lists \
             ({} folders in all)",
            r.requests,
            folders,
            cfolders,
            cals,
            lists,
            folders + cfolders + cals + lists
        );
    }
    println!("peak memory {:.0} MiB", common::peak_rss_mib());
}
