//! Exchange restore throughput against the simulator with Microsoft's
//! throttling and network latency: items restored per minute for one
//! mailbox, then for several mailboxes restored at once (tenant-wide), with
//! Graph requests per item and peak memory.
//!
//! `cargo bench -p engine --bench exchange_restore -- --users 6 --latency-ms 20 --parallel 4`

mod common;

use std::time::{Duration, Instant};

use engine::Cancel;
use engine::exchange::{
    BackupOptions, DiscoveryOptions, MailboxBackup, MailboxKind, backup_mailbox, discover_mailboxes,
};
use engine::progress::NoProgress;
use engine::restore::exchange::restore_mailbox;
use engine::restore::{
    MemoryLog, RestoreCtx, RestoreMode, RestoreOptions, RestoreReport, Selection,
};
use futures::StreamExt;
use graph::GraphClient;
use graph_sim::{SimConfig, ThrottleMode};
use serde_json::json;
use vault::SnapshotInfo;

async fn restore_all(
    graph: &GraphClient,
    account: &vault::Account,
    snaps: &[SnapshotInfo],
    parallel: usize,
) -> (Vec<RestoreReport>, Duration) {
    let start = Instant::now();
    let options = RestoreOptions::new(RestoreMode::NonDestructive);
    let selection = Selection::everything();
    let out = futures::stream::iter(snaps.iter())
        .map(|snap| {
            let (options, selection) = (&options, &selection);
            async move {
                let log = MemoryLog::default();
                let cancel = Cancel::new();
                let ctx = RestoreCtx {
                    graph,
                    vault: account,
                    snapshot: snap,
                    selection,
                    options,
                    destination: None,
                    progress: &NoProgress,
                    log: &log,
                    cancel: &cancel,
                };
                restore_mailbox(&ctx).await.expect("restore")
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    (out, start.elapsed())
}

fn print_round(name: &str, rs: &[RestoreReport], wall: Duration) {
    let items: u64 = rs.iter().map(|r| r.restored + r.overwritten).sum();
    let failed: u64 = rs.iter().map(|r| r.failed).sum();
    let requests: u64 = rs.iter().map(|r| r.requests).sum();
    let minutes = wall.as_secs_f64().max(1e-9) / 60.0;
    println!(
        "{name:<12} mailboxes {:>3}  items restored {:>6}  failed {:>3}  requests {:>6}  \
         req/item {:>5.2}  wall {:>6.2}s  items/min {:>8.0}  items/min/mailbox {:>7.0}  peak MiB {:>6.1}",
        rs.len(),
        items,
        failed,
        requests,
        requests as f64 / items.max(1) as f64,
        wall.as_secs_f64(),
        items as f64 / minutes,
        items as f64 / minutes / rs.len().max(1) as f64,
        common::peak_rss_mib(),
    );
}

#[tokio::main]
async fn main() {
    let a = common::MailboxArgs {
        users: 6,
        latency_ms: 20,
        parallel: 4,
        scale: 0.5,
    }
    .overridden_by_command_line();
    let mut cfg = SimConfig::new(a.users, 2025);
    cfg.throttle = ThrottleMode::Realistic;
    cfg.latency_ms = a.latency_ms;
    cfg.content_scale = a.scale;
    let (_sim, graph, account, _dir) = common::tenant(cfg).await;
    let mailboxes: Vec<String> = discover_mailboxes(&graph, &DiscoveryOptions::default())
        .await
        .expect("discovery")
        .into_iter()
        .filter(|m| m.kind == MailboxKind::User && m.licensed)
        .map(|m| m.graph_id)
        .collect();
    let mut snaps = Vec::new();
    for u in &mailboxes {
        let r = backup_mailbox(MailboxBackup {
            graph: &graph,
            vault: &account,
            mailbox_id: u,
            parent: None,
            options: &BackupOptions::default(),
            progress: &NoProgress,
            cancel: &Cancel::new(),
            meta: json!({}),
        })
        .await
        .expect("backup");
        let id = r.snapshot_id.expect("snapshot");
        snaps.push(account.snapshot(&id).await.expect("snapshot info"));
    }
    println!(
        "Exchange restore (non-destructive): {} mailboxes, latency {} ms, throttle realistic, \
         {} mailboxes at once",
        snaps.len(),
        a.latency_ms,
        a.parallel
    );
    let (one, wall) = restore_all(&graph, &account, &snaps[..1], 1).await;
    print_round("one mailbox", &one, wall);
    let rest = &snaps[1..];
    let (many, wall) = restore_all(&graph, &account, rest, a.parallel).await;
    print_round("tenant", &many, wall);
}
