//! Teams & Groups restore throughput against the simulator with Teams'
//! throttling and network latency: every team is backed up (metadata,
//! conversations, calendar, channels with messages), then restored
//! non-destructively into itself, several teams at once. Channel messages go
//! through Graph's migration import, which Microsoft limits per channel, so
//! messages/min per team is the figure to watch. Prints items/min, Graph
//! requests per item and peak memory.
//!
//! `cargo bench -p engine --bench teams_restore -- --users 20 --latency-ms 20 --parallel 4 --scale 1`

mod common;

use std::time::{Duration, Instant};

use engine::Cancel;
use engine::progress::NoProgress;
use engine::restore::teams::restore_group;
use engine::restore::{
    MemoryLog, RestoreCtx, RestoreMode, RestoreOptions, RestoreReport, Selection,
};
use engine::teams::{
    GroupBackup, GroupBackupOptions, GroupKind, SubService, backup_group, discover_groups,
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
                restore_group(&ctx).await.expect("restore")
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    (out, start.elapsed())
}

#[tokio::main]
async fn main() {
    let a = common::MailboxArgs {
        users: 20,
        latency_ms: 20,
        parallel: 4,
        scale: 1.0,
    }
    .overridden_by_command_line();
    let mut cfg = SimConfig::new(a.users, 2024);
    cfg.throttle = ThrottleMode::Realistic;
    cfg.latency_ms = a.latency_ms;
    cfg.content_scale = a.scale;
    let (_sim, graph, account, _dir) = common::tenant(cfg).await;
    let teams: Vec<String> = discover_groups(&graph)
        .await
        .expect("discovery")
        .into_iter()
        .filter(|g| g.kind == GroupKind::Team)
        .map(|g| g.graph_id)
        .collect();
    let options = GroupBackupOptions {
        sub_services: vec![
            SubService::Metadata,
            SubService::Conversations,
            SubService::Calendar,
            SubService::Channels,
        ],
        concurrency: 2,
    };
    let mut snaps = Vec::new();
    for team in &teams {
        let r = backup_group(GroupBackup {
            graph: &graph,
            vault: &account,
            group_id: team,
            is_team: true,
            parent: None,
            options: &options,
            progress: &NoProgress,
            cancel: &Cancel::new(),
            meta: json!({}),
        })
        .await
        .expect("backup");
        snaps.push(
            account
                .snapshot(r.snapshot_id.as_ref().expect("snapshot"))
                .await
                .expect("snapshot info"),
        );
    }
    println!(
        "Teams restore (non-destructive): {} teams, latency {} ms, throttle realistic, {} at once",
        snaps.len(),
        a.latency_ms,
        a.parallel
    );
    let (rs, wall) = restore_all(&graph, &account, &snaps, a.parallel).await;
    let items: u64 = rs.iter().map(|r| r.restored + r.overwritten).sum();
    let failed: u64 = rs.iter().map(|r| r.failed).sum();
    let skipped: u64 = rs.iter().map(|r| r.skipped).sum();
    let requests: u64 = rs.iter().map(|r| r.requests).sum();
    let minutes = wall.as_secs_f64().max(1e-9) / 60.0;
    println!(
        "teams {:>3}  items restored {:>6}  skipped {:>4}  failed {:>3}  requests {:>6}  req/item {:>5.2}  \
         wall {:>6.2}s  items/min {:>8.0}  items/min/team {:>7.0}  peak MiB {:>6.1}",
        rs.len(),
        items,
        skipped,
        failed,
        requests,
        requests as f64 / items.max(1) as f64,
        wall.as_secs_f64(),
        items as f64 / minutes,
        items as f64 / minutes / rs.len().max(1) as f64,
        common::peak_rss_mib(),
    );
    let mut notes: Vec<&String> = rs.iter().flat_map(|r| r.notes.iter()).collect();
    notes.sort();
    notes.dedup();
    for n in notes.iter().take(5) {
        println!("note: {n}");
    }
}
