//! Mailbox export to PST: a generated mailbox of about N MB (its stored
//! MIME and JSON) is backed up from the simulator, then exported to PST;
//! prints MB/s, items/s and peak memory (which should stay flat as N grows:
//! only the PST writer's index grows with the item count).
//!
//! `cargo bench -p engine --bench export` (200 MB, under a minute in the
//! dev profile); a multi-GB run: `cargo bench -p engine --bench export --
//! --mb 4000 --split-gb 5` (the mailbox's generator scale is calibrated
//! from a small mailbox first, so N is approximate).

mod common;

use std::time::Instant;

use engine::Cancel;
use engine::exchange::{
    BackupOptions, DiscoveryOptions, MailboxBackup, MailboxKind, backup_mailbox, discover_mailboxes,
};
use engine::export::{ExportCtx, ExportFormat, ExportOptions, PstSplit, export};
use engine::progress::NoProgress;
use engine::restore::{MemoryLog, Selection};
use graph_sim::SimConfig;
use serde_json::json;
use vault::SnapshotInfo;

struct Args {
    mb: f64,
    split_gb: u64,
}

fn args() -> Args {
    let mut a = Args {
        mb: 200.0,
        split_gb: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().unwrap_or_default();
        match k.as_str() {
            "--mb" => a.mb = val().parse().unwrap_or(a.mb),
            "--split-gb" => a.split_gb = val().parse().unwrap_or(a.split_gb),
            _ => {}
        }
    }
    a
}

/// Backs up the first licensed mailbox of a tenant generated at `scale`.
async fn mailbox_snapshot(
    scale: f64,
) -> (
    SnapshotInfo,
    vault::Account,
    graph_sim::RunningSim,
    tempfile::TempDir,
) {
    let mut cfg = SimConfig::new(1, 4242);
    cfg.content_scale = scale;
    let (sim, graph, account, dir) = common::tenant(cfg).await;
    let user = discover_mailboxes(&graph, &DiscoveryOptions::default())
        .await
        .expect("discovery")
        .into_iter()
        .find(|m| m.kind == MailboxKind::User && m.licensed)
        .expect("a mailbox")
        .graph_id;
    let r = backup_mailbox(MailboxBackup {
        graph: &graph,
        vault: &account,
        mailbox_id: &user,
        parent: None,
        options: &BackupOptions::default(),
        progress: &NoProgress,
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .expect("backup");
    let snap = account
        .snapshot(&r.snapshot_id.expect("snapshot"))
        .await
        .expect("snapshot info");
    (snap, account, sim, dir)
}

/// Bytes of everything the snapshot stores (MIME and JSON items).
async fn stored_bytes(account: &vault::Account, snap: &SnapshotInfo) -> u64 {
    account
        .walk(snap, "")
        .await
        .expect("walk")
        .iter()
        .map(|(_, n)| n.size())
        .sum()
}

#[tokio::main]
async fn main() {
    let a = args();
    // Calibrate: how many stored bytes one unit of the generator's scale gives.
    let probe_scale = 0.5;
    let (probe, account, sim, dir) = mailbox_snapshot(probe_scale).await;
    let per_scale = stored_bytes(&account, &probe).await as f64 / probe_scale;
    drop((account, sim, dir));
    let scale = (a.mb * 1e6 / per_scale.max(1.0)).max(0.05);

    let t = Instant::now();
    let (snap, account, _sim, _dir) = mailbox_snapshot(scale).await;
    let stored = stored_bytes(&account, &snap).await;
    println!(
        "mailbox: scale {scale:.2}, {:.1} MB stored, backed up in {:.1}s",
        stored as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let staging = tempfile::tempdir().expect("staging");
    let mut options = ExportOptions::new(ExportFormat::Pst);
    options.pst_split = if a.split_gb <= 5 {
        PstSplit::Gb5
    } else {
        PstSplit::Gb20
    };
    let log = MemoryLog::default();
    let cancel = Cancel::new();
    let selection = Selection::everything();
    let before = common::peak_rss_mib();
    let t = Instant::now();
    let (report, files) = export(&ExportCtx {
        vault: &account,
        snapshot: &snap,
        earlier: &[],
        selection: &selection,
        options: &options,
        entity_name: "bench",
        staging_dir: staging.path(),
        progress: &NoProgress,
        log: &log,
        cancel: &cancel,
    })
    .await
    .expect("export");
    let secs = t.elapsed().as_secs_f64().max(1e-9);
    println!(
        "PST export: {} items ({} failed), {} file(s), {:.1} MB written, {:.1}s, \
         {:.1} MB/s stored read, {:.0} items/s, peak MiB {:.1} (before export {:.1})",
        report.exported,
        report.failed,
        files.len(),
        report.bytes as f64 / 1e6,
        secs,
        stored as f64 / 1e6 / secs,
        report.exported as f64 / secs,
        common::peak_rss_mib(),
        before,
    );
}
