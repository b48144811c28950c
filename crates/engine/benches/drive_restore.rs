//! OneDrive restore throughput against the simulator with SharePoint's
//! resource-unit throttling and network latency: a drive of many small files
//! and one of a few large files are backed up, then restored
//! (non-destructive, into a new folder of the same drive) through upload
//! sessions. Prints files/min, MiB/s, Graph requests per file and peak
//! memory.
//!
//! `cargo bench -p engine --bench drive_restore -- --small 500 --large 2 --large-mib 32 --latency-ms 20 [--throttle off]`

mod common;

use std::time::Instant;

use engine::Cancel;
use engine::onedrive::{OneDriveBackup, OneDriveOptions, backup_onedrive, discover_drives};
use engine::progress::NoProgress;
use engine::restore::onedrive::restore_onedrive;
use engine::restore::{
    MemoryLog, RestoreCtx, RestoreMode, RestoreOptions, RestoreReport, Selection,
};
use graph::GraphClient;
use graph_sim::{SimConfig, ThrottleMode};
use serde_json::json;

/// Backs `user`'s OneDrive up, then restores the snapshot non-destructively.
async fn backup_and_restore(
    graph: &GraphClient,
    account: &vault::Account,
    user: &str,
) -> (RestoreReport, f64) {
    let backup = backup_onedrive(OneDriveBackup {
        graph,
        vault: account,
        user_id: user,
        parent: None,
        options: &OneDriveOptions::default(),
        progress: &NoProgress,
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .expect("backup");
    let snapshot = account
        .snapshot(backup.snapshot_id.as_ref().expect("snapshot"))
        .await
        .expect("snapshot info");
    let options = RestoreOptions::new(RestoreMode::NonDestructive);
    let log = MemoryLog::default();
    let cancel = Cancel::new();
    let ctx = RestoreCtx {
        graph,
        vault: account,
        snapshot: &snapshot,
        selection: &Selection::everything(),
        options: &options,
        destination: None,
        progress: &NoProgress,
        log: &log,
        cancel: &cancel,
    };
    let start = Instant::now();
    let report = restore_onedrive(&ctx).await.expect("restore");
    (report, start.elapsed().as_secs_f64())
}

fn print(name: &str, r: &RestoreReport, secs: f64) {
    let files = r.restored + r.overwritten;
    println!(
        "{name:<18} files restored {:>6}  failed {:>3}  requests {:>6}  req/file {:>5.2}  MiB {:>8.1}  \
         wall {:>6.2}s  files/min {:>8.0}  MiB/s {:>6.1}  peak RSS {:>6.0} MiB",
        files,
        r.failed,
        r.requests,
        r.requests as f64 / files.max(1) as f64,
        r.bytes as f64 / 1048576.0,
        secs,
        files as f64 / (secs.max(1e-9) / 60.0),
        r.bytes as f64 / 1048576.0 / secs.max(1e-9),
        common::peak_rss_mib(),
    );
}

#[tokio::main]
async fn main() {
    let a = common::DriveArgs {
        small: 500,
        large: 2,
        large_mib: 32,
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
        "OneDrive restore (non-destructive): latency {} ms, throttle {:?}; {} small files on one drive, \
         {} x {} MiB on another",
        a.latency_ms, a.throttle, a.small, a.large, a.large_mib
    );
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
    for i in 0..a.large {
        graph_sim::files::add_generated_file(
            &sim.sim,
            &large.drive_id,
            &format!("large {i}.mp4"),
            a.large_mib * 1024 * 1024,
        )
        .expect("large file");
    }
    let (r, secs) = backup_and_restore(&graph, &account, &small.user_id).await;
    print("many small files", &r, secs);
    let (r, secs) = backup_and_restore(&graph, &account, &large.user_id).await;
    print("few large files", &r, secs);
}
