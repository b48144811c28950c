//! OneDrive restore against the tenant simulator: back up, destroy
//! (ransomware, deletions, edits), restore with each restore type, and
//! compare the destination with the simulator's ground truth, file by file
//! (path, size, BLAKE3), and with Graph (times, versions).

use std::collections::BTreeMap;

use engine::onedrive::{DiscoveredDrive, OneDriveBackup, OneDriveOptions, backup_onedrive};
use engine::progress::NoProgress;
use engine::restore::onedrive::restore_onedrive;
use engine::restore::{
    ItemOutcome, MemoryLog, RestoreCtx, RestoreMode, RestoreOptions, RestoreReport, Selection,
};
use engine::{Cancel, EngineError};
use futures::StreamExt;
use graph::{GraphClient, GraphConfig, Request, Secret};
use graph_sim::{RunningSim, SimConfig};
use serde_json::{Value, json};
use vault::{SnapshotId, SnapshotInfo};

mod common;
use common::{Env, env};

fn tenant(users: u32, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(users, seed);
    cfg.content_scale = 1.0;
    cfg
}

/// path → (size, BLAKE3 hex) of every file of a user's OneDrive.
type Files = BTreeMap<String, (u64, String)>;

async fn truth_of(http: &reqwest::Client, url: &str, user: &str) -> Files {
    let v: Value = http
        .get(format!("{url}/_sim/truth/users/{user}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["workload"] == "drive")
        .map(|i| {
            let path = i["path"].as_str().unwrap();
            (
                path.strip_prefix("OneDrive/").unwrap_or(path).to_string(),
                (
                    i["size"].as_u64().unwrap(),
                    i["hash"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

impl Env {
    async fn truth(&self, user: &str) -> Files {
        truth_of(&self.http, &self.sim.url, user).await
    }

    async fn get(&self, path: &str) -> Value {
        self.graph
            .send(Request::get(path))
            .await
            .unwrap()
            .json()
            .unwrap()
    }

    async fn backup(&self, user: &str) -> SnapshotInfo {
        let r = backup_onedrive(OneDriveBackup {
            graph: &self.graph,
            vault: &self.account,
            user_id: user,
            parent: None,
            options: &OneDriveOptions::default(),
            progress: &NoProgress,
            cancel: &Cancel::new(),
            meta: json!({}),
        })
        .await
        .unwrap();
        let id: SnapshotId = r.snapshot_id.unwrap();
        self.account.snapshot(&id).await.unwrap()
    }

    /// A user whose OneDrive holds files in folders.
    async fn some_drive(&self) -> DiscoveredDrive {
        let drives = engine::onedrive::discover_drives(&self.graph)
            .await
            .unwrap();
        for d in drives {
            let t = self.truth(&d.user_id).await;
            if t.len() >= 4 && t.keys().any(|p| p.contains('/')) {
                return d;
            }
        }
        panic!("no OneDrive with files in folders");
    }
}

/// The files a snapshot holds: path → (size, BLAKE3), read from the vault.
async fn snapshot_files(e: &Env, snap: &SnapshotInfo) -> Files {
    let items = engine::drive::stored_items(&e.account, snap, "drive")
        .await
        .unwrap();
    let mut out = Files::new();
    for it in items.iter().filter(|i| i.is_file()) {
        let mut h = blake3::Hasher::new();
        let mut n = 0u64;
        let mut s = e.account.read_content(&it.content);
        while let Some(c) = s.next().await {
            let c = c.unwrap();
            n += c.len() as u64;
            h.update(&c);
        }
        out.insert(it.path.clone(), (n, h.finalize().to_hex().to_string()));
    }
    out
}

struct Run<'a> {
    graph: &'a GraphClient,
    e: &'a Env,
    snap: &'a SnapshotInfo,
    selection: Selection,
    options: RestoreOptions,
    destination: Option<&'a str>,
    cancel: Cancel,
    log: MemoryLog,
}

impl<'a> Run<'a> {
    fn new(e: &'a Env, snap: &'a SnapshotInfo, mode: RestoreMode) -> Self {
        Run {
            graph: &e.graph,
            e,
            snap,
            selection: Selection::everything(),
            options: RestoreOptions::new(mode),
            destination: None,
            cancel: Cancel::new(),
            log: MemoryLog::default(),
        }
    }

    async fn go(&self) -> Result<RestoreReport, EngineError> {
        let ctx = RestoreCtx {
            graph: self.graph,
            vault: &self.e.account,
            snapshot: self.snap,
            selection: &self.selection,
            options: &self.options,
            destination: self.destination,
            progress: &NoProgress,
            log: &self.log,
            cancel: &self.cancel,
        };
        restore_onedrive(&ctx).await
    }
}

/// `files` as they should appear below `prefix` ("" or "Restored …/").
fn under(files: &Files, prefix: &str) -> Files {
    files
        .iter()
        .map(|(p, v)| (format!("{prefix}{p}"), v.clone()))
        .collect()
}

fn assert_contains(truth: &Files, want: &Files) {
    for (p, v) in want {
        assert_eq!(truth.get(p), Some(v), "{p} in the destination");
    }
}

#[tokio::test]
async fn ransomware_is_undone_by_replace_with_original_bytes_and_times() {
    let e = env(tenant(4, 301)).await;
    let d = e.some_drive().await;
    let snap = e.backup(&d.user_id).await;
    let before = snapshot_files(&e, &snap).await;
    assert_eq!(before, e.truth(&d.user_id).await, "the backup is the truth");
    e.control(
        &format!("/_sim/drives/{}/ransomware", d.drive_id),
        json!({}),
    )
    .await;
    let hit = e.truth(&d.user_id).await;
    assert!(hit.keys().all(|p| p.ends_with(".lockbit")));

    let run = Run::new(&e, &snap, RestoreMode::Replace);
    let r = run.go().await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", run.log.entries());
    assert_eq!(r.restored as usize, before.len());
    let after = e.truth(&d.user_id).await;
    assert_contains(&after, &before);
    // Times as they were: every restored file's fileSystemInfo.
    let items = engine::drive::stored_items(&e.account, &snap, "drive")
        .await
        .unwrap();
    for it in items.iter().filter(|i| i.is_file()).take(5) {
        let v = e
            .get(&format!("/drives/{}/root:/{}:", d.drive_id, it.path))
            .await;
        for k in ["createdDateTime", "lastModifiedDateTime"] {
            assert_eq!(
                v["fileSystemInfo"][k], it.meta["fileSystemInfo"][k],
                "{} {k}",
                it.path
            );
        }
    }
    // A second replace overwrites what the first restored.
    let again = Run::new(&e, &snap, RestoreMode::Replace)
        .go()
        .await
        .unwrap();
    assert_eq!(again.overwritten as usize, before.len());
    assert_eq!(again.restored, 0);
    assert_contains(&e.truth(&d.user_id).await, &before);
}

#[tokio::test]
async fn non_destructive_restores_into_a_new_folder_and_touches_nothing() {
    let e = env(tenant(4, 302)).await;
    let d = e.some_drive().await;
    let snap = e.backup(&d.user_id).await;
    let before = snapshot_files(&e, &snap).await;
    e.control(
        &format!("/_sim/drives/{}/ransomware", d.drive_id),
        json!({}),
    )
    .await;
    let hit = e.truth(&d.user_id).await;
    let run = Run::new(&e, &snap, RestoreMode::NonDestructive);
    let r = run.go().await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", run.log.entries());
    let folder = engine::restore::drive::restore_folder_name(&run.options);
    assert_eq!(r.location.as_deref(), Some(folder.as_str()));
    let after = e.truth(&d.user_id).await;
    assert_contains(&after, &under(&before, &format!("{folder}/")));
    assert_contains(&after, &hit);
    assert_eq!(after.len(), hit.len() + before.len());
}

#[tokio::test]
async fn bypass_brings_back_deleted_files_and_leaves_edits() {
    let e = env(tenant(4, 303)).await;
    let d = e.some_drive().await;
    let snap = e.backup(&d.user_id).await;
    let before = snapshot_files(&e, &snap).await;
    let items = engine::drive::stored_items(&e.account, &snap, "drive")
        .await
        .unwrap();
    let files: Vec<_> = items.iter().filter(|i| i.is_file()).collect();
    let (edited, deleted) = (files[0], files[1]);
    e.graph
        .send(Request::bytes(
            graph::Method::PUT,
            format!("/drives/{}/items/{}/content", d.drive_id, edited.id),
            "text/plain",
            bytes::Bytes::from_static(b"edited by its owner"),
        ))
        .await
        .unwrap();
    e.graph
        .send(Request::delete(format!(
            "/drives/{}/items/{}",
            d.drive_id, deleted.id
        )))
        .await
        .unwrap();
    let edited_now = e.truth(&d.user_id).await[&edited.path].clone();

    let run = Run::new(&e, &snap, RestoreMode::Bypass);
    let r = run.go().await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", run.log.entries());
    assert_eq!(r.restored, 1, "only the deleted file comes back");
    assert_eq!(r.skipped as usize, before.len() - 1);
    let after = e.truth(&d.user_id).await;
    assert_eq!(after[&deleted.path], before[&deleted.path]);
    assert_eq!(after[&edited.path], edited_now, "bypass leaves the edit");
    assert_ne!(after[&edited.path], before[&edited.path]);
}

#[tokio::test]
async fn duplicate_writes_every_file_beside_the_original_with_the_timestamp() {
    let e = env(tenant(4, 304)).await;
    let d = e.some_drive().await;
    let snap = e.backup(&d.user_id).await;
    let before = snapshot_files(&e, &snap).await;
    let mut run = Run::new(&e, &snap, RestoreMode::Duplicate);
    run.options.requested_at = "2023-04-01T00:05:25Z".parse().unwrap();
    let r = run.go().await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", run.log.entries());
    let after = e.truth(&d.user_id).await;
    assert_eq!(after.len(), 2 * before.len());
    for (p, v) in &before {
        assert_eq!(after.get(p), Some(v), "the original {p} is untouched");
        let (dir, name) = p.rsplit_once('/').map_or(("", p.as_str()), |(a, b)| (a, b));
        let dup = run.options.duplicate_name(name);
        let dup = if dir.is_empty() {
            dup
        } else {
            format!("{dir}/{dup}")
        };
        assert!(dup.contains("20230401000525"));
        assert_eq!(after.get(&dup), Some(v), "{dup}");
    }
}

#[tokio::test]
async fn a_single_file_and_a_single_folder_can_be_selected() {
    let e = env(tenant(4, 305)).await;
    let d = e.some_drive().await;
    let snap = e.backup(&d.user_id).await;
    let before = snapshot_files(&e, &snap).await;
    let items = engine::drive::stored_items(&e.account, &snap, "drive")
        .await
        .unwrap();
    // Everything deleted from the drive root down.
    let kids = e
        .get(&format!("/drives/{}/root/children", d.drive_id))
        .await;
    for k in kids["value"].as_array().unwrap() {
        e.graph
            .send(Request::delete(format!(
                "/drives/{}/items/{}",
                d.drive_id,
                k["id"].as_str().unwrap()
            )))
            .await
            .unwrap();
    }
    assert!(e.truth(&d.user_id).await.is_empty());
    let nested = items
        .iter()
        .find(|i| i.is_file() && i.path.contains('/'))
        .unwrap();
    let mut run = Run::new(&e, &snap, RestoreMode::Replace);
    run.selection.items = vec![format!("drive/items/{}", nested.id)];
    let r = run.go().await.unwrap();
    assert_eq!((r.restored, r.failed), (1, 0), "{:?}", run.log.entries());
    let after = e.truth(&d.user_id).await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[&nested.path], before[&nested.path],
        "parents re-created"
    );

    let folder = items
        .iter()
        .find(|i| !i.is_file() && i.meta.get("root").is_none() && i.meta.get("folder").is_some())
        .unwrap();
    let mut run = Run::new(&e, &snap, RestoreMode::Replace);
    run.selection.folders = vec![format!("drive/items/{}", folder.id)];
    run.go().await.unwrap();
    let after = e.truth(&d.user_id).await;
    let want: Files = before
        .iter()
        .filter(|(p, _)| p.starts_with(&format!("{}/", folder.path)) || **p == nested.path)
        .map(|(p, v)| (p.clone(), v.clone()))
        .collect();
    assert!(want.len() > 1);
    assert_eq!(after, want);
}

#[tokio::test]
async fn versions_come_back_oldest_first_and_a_large_file_in_fragments() {
    let e = env(tenant(4, 306)).await;
    let d = e.some_drive().await;
    const BIG: u64 = 40 * 1024 * 1024;
    graph_sim::files::add_generated_file(&e.sim.sim, &d.drive_id, "big.mp4", BIG).unwrap();
    // A file with a history: three uploads.
    let mut sizes = Vec::new();
    for (i, body) in ["first", "second draft", "third and final text"]
        .iter()
        .enumerate()
    {
        let r: Value = e
            .graph
            .send(Request::bytes(
                graph::Method::PUT,
                format!("/drives/{}/root:/notes/history.txt:/content", d.drive_id),
                "text/plain",
                bytes::Bytes::from(body.to_string()),
            ))
            .await
            .unwrap()
            .json()
            .unwrap();
        assert!(r["id"].is_string(), "{i}");
        sizes.push(body.len() as u64);
    }
    let snap = e.backup(&d.user_id).await;
    let before = snapshot_files(&e, &snap).await;
    let items = engine::drive::stored_items(&e.account, &snap, "drive")
        .await
        .unwrap();
    let hist = items
        .iter()
        .find(|i| i.path == "notes/history.txt")
        .unwrap();
    let big = items.iter().find(|i| i.path == "big.mp4").unwrap();

    // Into another user's OneDrive, with versions.
    let drives = engine::onedrive::discover_drives(&e.graph).await.unwrap();
    let other = drives.iter().find(|x| x.user_id != d.user_id).unwrap();
    let mut run = Run::new(&e, &snap, RestoreMode::Replace);
    run.options.include_versions = true;
    run.destination = Some(&other.user_id);
    run.selection.items = vec![
        format!("drive/items/{}", hist.id),
        format!("drive/items/{}", big.id),
    ];
    e.http
        .post(format!("{}/_sim/stats/reset", e.sim.url))
        .send()
        .await
        .unwrap();
    let r = run.go().await.unwrap();
    assert_eq!((r.restored, r.failed), (2, 0), "{:?}", run.log.entries());
    let after = e.truth(&other.user_id).await;
    assert_eq!(after["big.mp4"], before["big.mp4"]);
    assert_eq!(after["notes/history.txt"], before["notes/history.txt"]);
    // The history is in order: oldest first, sizes as written.
    let v = e
        .get(&format!(
            "/drives/{}/root:/notes/history.txt:/versions",
            other.drive_id
        ))
        .await;
    let mut got: Vec<u64> = v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["size"].as_u64().unwrap())
        .collect();
    got.reverse(); // Graph lists the newest first.
    assert_eq!(got, sizes);
    // The large file went through several fragments of the session.
    assert!(r.requests >= 8 + 2, "{} requests", r.requests);
    assert_eq!(r.bytes, BIG + sizes.iter().sum::<u64>());
}

#[tokio::test]
async fn cancel_abandons_the_open_upload_and_leaves_no_partial_file() {
    let e = env(tenant(4, 307)).await;
    let d = e.some_drive().await;
    const BIG: u64 = 60 * 1024 * 1024;
    graph_sim::files::add_generated_file(&e.sim.sim, &d.drive_id, "huge.bin", BIG).unwrap();
    let snap = e.backup(&d.user_id).await;
    e.graph
        .send(Request::delete(format!(
            "/drives/{}/root:/huge.bin:",
            d.drive_id
        )))
        .await
        .unwrap();
    let items = engine::drive::stored_items(&e.account, &snap, "drive")
        .await
        .unwrap();
    let big = items.iter().find(|i| i.path == "huge.bin").unwrap();
    let mut run = Run::new(&e, &snap, RestoreMode::Replace);
    run.selection.items = vec![format!("drive/items/{}", big.id)];
    let sim = e.sim.sim.clone();
    let (r, _) = tokio::join!(run.go(), async {
        // Cancel once the session has taken its first fragment.
        loop {
            if graph_sim::files::upload_sessions(&sim)
                .iter()
                .any(|(n, got)| n == "huge.bin" && *got > 0)
            {
                run.cancel.cancel();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    });
    let r = r.unwrap();
    assert!(r.cancelled);
    assert_eq!(r.restored, 0);
    assert!(
        !e.truth(&d.user_id).await.contains_key("huge.bin"),
        "no partial file"
    );
    assert!(
        graph_sim::files::upload_sessions(&e.sim.sim).is_empty(),
        "the session was abandoned"
    );
    assert!(
        run.log
            .entries()
            .iter()
            .all(|l| l.outcome != ItemOutcome::Restored)
    );
}

/// A second simulated tenant and a client signed in to it.
async fn second_tenant(seed: u64) -> (RunningSim, GraphClient) {
    let sim = graph_sim::start(tenant(3, seed), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let c = &sim.sim.cfg;
    let graph = GraphClient::new(
        GraphConfig::new(
            &sim.graph_url(),
            &sim.login_url(),
            &c.tenant_id,
            &c.client_id,
            Secret::new(c.client_secret.clone()),
        )
        .unwrap(),
    )
    .unwrap();
    (sim, graph)
}

#[tokio::test]
async fn another_tenant_is_a_destination_like_any_other() {
    let e = env(tenant(4, 308)).await;
    let d = e.some_drive().await;
    let snap = e.backup(&d.user_id).await;
    let before = snapshot_files(&e, &snap).await;
    let (sim2, graph2) = second_tenant(309).await;
    let drives2 = engine::onedrive::discover_drives(&graph2).await.unwrap();
    let dest = &drives2[0];
    let mut run = Run::new(&e, &snap, RestoreMode::NonDestructive);
    run.graph = &graph2;
    run.destination = Some(&dest.user_id);
    let r = run.go().await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", run.log.entries());
    let folder = engine::restore::drive::restore_folder_name(&run.options);
    let after = truth_of(&e.http, &sim2.url, &dest.user_id).await;
    assert_contains(&after, &under(&before, &format!("{folder}/")));
    // The source tenant saw no write.
    assert_eq!(e.truth(&d.user_id).await, before);
}

#[tokio::test]
async fn a_user_without_a_onedrive_is_refused_up_front() {
    let e = env(tenant(3, 310)).await;
    let d = e.some_drive().await;
    let snap = e.backup(&d.user_id).await;
    let mut run = Run::new(&e, &snap, RestoreMode::Replace);
    run.destination = Some("no-such-user");
    let err = run.go().await.unwrap_err();
    assert!(matches!(err, EngineError::EntityGone(_)), "{err}");
}
