//! OneDrive backup cost against the simulator (SharePoint resource-unit
//! throttling, network latency): Graph requests per item and bytes/s for
//! (a) a drive of many small files, (b) a drive with a few large files and
//! (c) an incremental of both after a simulated day of activity; peak memory.
//!
//! `cargo bench -p engine --bench drive_backup -- --small 2000 --large 4 --large-mib 64 --latency-ms 20 [--throttle off]`

mod common;

use std::time::Instant;

use engine::Cancel;
use engine::onedrive::{OneDriveBackup, OneDriveOptions, backup_onedrive, discover_drives};
use engine::progress::NoProgress;
use engine::report::{BackupReport, SubService};
use graph::GraphClient;
use graph_sim::{SimConfig, ThrottleMode};
use serde_json::{Value, json};
use vault::SnapshotId;

async fn backup(
    graph: &GraphClient,
    account: &vault::Account,
    user: &str,
    parent: Option<&SnapshotId>,
) -> (BackupReport, f64) {
    let start = Instant::now();
    let r = backup_onedrive(OneDriveBackup {
        graph,
        vault: account,
        user_id: user,
        parent,
        options: &OneDriveOptions::default(),
        progress: &NoProgress,
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .expect("backup");
    (r, start.elapsed().as_secs_f64())
}

fn print(name: &str, r: &BackupReport, secs: f64) {
    let c = r.part(SubService::Drive).expect("drive part").counts;
    let items = c.new + c.changed + c.deleted;
    println!(
        "{name:<22} outcome {:?}  files in snapshot {:>6}  new {:>5} changed {:>4} deleted {:>4}  \
         requests {:>6}  req/changed item {:>5.2}  MiB read {:>8.1}  wall {:>6.2}s  MiB/s {:>7.1}  items/s {:>7.0}  peak RSS {:>6.0} MiB",
        r.outcome(),
        c.total,
        c.new,
        c.changed,
        c.deleted,
        r.requests,
        r.requests as f64 / items.max(1) as f64,
        c.bytes_read as f64 / 1048576.0,
        secs,
        c.bytes_read as f64 / 1048576.0 / secs.max(1e-9),
        items as f64 / secs.max(1e-9),
        common::peak_rss_mib(),
    );
}

#[tokio::main]
async fn main() {
    let a = common::DriveArgs {
        small: 2000,
        large: 4,
        large_mib: 64,
        latency_ms: 20,
        throttle: ThrottleMode::Realistic,
    }
    .overridden_by_command_line();
    let mut cfg = SimConfig::new(12, 2025);
    cfg.throttle = a.throttle;
    cfg.latency_ms = a.latency_ms;
    let (sim, graph, account, _dir) = common::tenant(cfg).await;
    let drives = discover_drives(&graph).await.expect("discovery");
    assert!(drives.len() >= 2, "two OneDrives");
    let (small, large) = (&drives[0], &drives[1]);
    println!(
        "OneDrive backup: latency {} ms, throttle {:?}; {} small files added to one drive, {} x {} MiB to another",
        a.latency_ms, a.throttle, a.small, a.large, a.large_mib
    );

    // (a) Many small files (1-32 KiB) on top of the generated drive.
    for i in 0..a.small {
        let size = 1024 + (i * 7919) % (31 * 1024);
        graph_sim::files::add_generated_file(
            &sim.sim,
            &small.drive_id,
            &format!("small {i:05}.txt"),
            size,
        )
        .expect("small file");
    }
    let (s1, secs) = backup(&graph, &account, &small.user_id, None).await;
    print("(a) many small files", &s1, secs);

    // (b) A few large files (streamed).
    for i in 0..a.large {
        graph_sim::files::add_generated_file(
            &sim.sim,
            &large.drive_id,
            &format!("large {i}.mp4"),
            a.large_mib * 1024 * 1024,
        )
        .expect("large file");
    }
    let (l1, secs) = backup(&graph, &account, &large.user_id, None).await;
    print("(b) few large files", &l1, secs);

    // (c) A simulated day on both drives, then incrementals.
    let report: Value = reqwest::Client::new()
        .post(format!("{}/_sim/activity", sim.url))
        .json(&json!({"days": 1, "entities": [format!("user:{}", small.user_id), format!("user:{}", large.user_id)]}))
        .send()
        .await
        .expect("activity")
        .json()
        .await
        .expect("activity report");
    println!("activity: {}", report["report"]);
    let (s2, secs) = backup(&graph, &account, &small.user_id, s1.snapshot_id.as_ref()).await;
    print("(c) incremental (a)", &s2, secs);
    let (l2, secs) = backup(&graph, &account, &large.user_id, l1.snapshot_id.as_ref()).await;
    print("(c) incremental (b)", &l2, secs);
    let (s3, secs) = backup(&graph, &account, &small.user_id, s2.snapshot_id.as_ref()).await;
    print("unchanged (a)", &s3, secs);
}
