//! OneDrive backups against the tenant simulator: every snapshot equals the
//! simulator's ground truth at its moment (path, size and BLAKE3 of every
//! file, read back from the vault), through activity, renames, ransomware,
//! large files, expired delta tokens, faults, cancellation and deleted users.

use std::collections::BTreeMap;

use engine::faults::Outcome;
use engine::onedrive::{
    DiscoveredDrive, OneDriveBackup, OneDriveOptions, backup_onedrive, discover_drives,
};
use engine::progress::{NoProgress, Progress};
use engine::{BackupReport, Cancel, EngineError, SubService};
use futures::StreamExt;
use graph::Request;
use graph_sim::SimConfig;
use graph_sim::config::FaultKind;
use serde_json::{Value, json};
use vault::{Node, SnapshotId, SnapshotInfo};

mod common;
use common::{Env, env};

fn small_tenant(users: u32, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(users, seed);
    cfg.content_scale = 1.0;
    cfg
}

/// One file: (path, size, BLAKE3 hex), keyed by item id.
type Files = BTreeMap<String, (String, u64, String)>;

impl Env {
    /// The simulator's ground truth of the user's OneDrive.
    async fn truth(&self, user: &str) -> Files {
        let v: Value = self
            .http
            .get(format!("{}/_sim/truth/users/{user}", self.sim.url))
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
                (
                    i["id"].as_str().unwrap().to_string(),
                    (
                        i["path"].as_str().unwrap().to_string(),
                        i["size"].as_u64().unwrap(),
                        i["hash"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect()
    }

    async fn get(&self, path: &str) -> Value {
        self.graph
            .send(Request::get(path))
            .await
            .unwrap()
            .json()
            .unwrap()
    }

    /// A user with a OneDrive that holds files.
    async fn drives(&self) -> Vec<DiscoveredDrive> {
        discover_drives(&self.graph).await.unwrap()
    }

    async fn backup_with(
        &self,
        user: &str,
        parent: Option<&SnapshotId>,
        cancel: &Cancel,
        progress: &dyn Progress,
    ) -> Result<BackupReport, EngineError> {
        backup_onedrive(OneDriveBackup {
            graph: &self.graph,
            vault: &self.account,
            user_id: user,
            parent,
            options: &OneDriveOptions::default(),
            progress,
            cancel,
            meta: json!({"task": "t1"}),
        })
        .await
    }

    async fn backup(&self, user: &str, parent: Option<&SnapshotId>) -> BackupReport {
        self.backup_with(user, parent, &Cancel::new(), &NoProgress)
            .await
            .unwrap()
    }

    async fn snap(&self, id: &SnapshotId) -> SnapshotInfo {
        self.account.snapshot(id).await.unwrap()
    }

    /// The files a snapshot holds, with paths rebuilt from the flat,
    /// id-keyed layout and content read back and hashed.
    async fn files(&self, id: &SnapshotId) -> Files {
        let snap = self.snap(id).await;
        let entries = self
            .account
            .list_folder(&snap, "drive/items")
            .await
            .unwrap();
        let metas: BTreeMap<String, Value> = entries
            .iter()
            .map(|e| {
                (
                    e.name.clone(),
                    serde_json::from_slice(e.node.meta()).unwrap(),
                )
            })
            .collect();
        let mut out = Files::new();
        for e in &entries {
            let meta = &metas[&e.name];
            if meta.get("file").is_none() {
                continue;
            }
            let mut names = vec![meta["name"].as_str().unwrap().to_string()];
            let mut cur = meta["parentReference"]["id"].as_str().map(str::to_string);
            while let Some(p) = cur {
                let pm = metas.get(&p).expect("every parent is in the snapshot");
                if pm.get("root").is_some() {
                    break;
                }
                names.push(pm["name"].as_str().unwrap().to_string());
                cur = pm["parentReference"]["id"].as_str().map(str::to_string);
            }
            names.reverse();
            let Node::Item { content, .. } = &e.node else {
                panic!("{} is a folder", e.name)
            };
            let (size, hash) = self.hash(content).await;
            out.insert(
                e.name.clone(),
                (format!("OneDrive/{}", names.join("/")), size, hash),
            );
        }
        out
    }

    async fn hash(&self, content: &vault::Content) -> (u64, String) {
        let mut h = blake3::Hasher::new();
        let mut n = 0u64;
        let mut s = self.account.read_content(content);
        while let Some(b) = s.next().await {
            let b = b.unwrap();
            n += b.len() as u64;
            h.update(&b);
        }
        (n, h.finalize().to_hex().to_string())
    }

    async fn assert_matches_truth(&self, user: &str, id: &SnapshotId) -> Files {
        let truth = self.truth(user).await;
        assert!(!truth.is_empty(), "the drive has files");
        let files = self.files(id).await;
        assert_eq!(files.len(), truth.len(), "same number of files");
        for (k, t) in &truth {
            assert_eq!(files.get(k), Some(t), "file {k}");
        }
        truth
    }
}

fn drive_part(r: &BackupReport) -> &engine::SubServiceReport {
    r.part(SubService::Drive).expect("a drive part")
}

/// A user whose OneDrive has files.
async fn some_drive(e: &Env) -> DiscoveredDrive {
    drive_where(e, |_| true).await
}

/// A user whose OneDrive has files and passes `want`.
async fn drive_where(e: &Env, want: impl Fn(&Files) -> bool) -> DiscoveredDrive {
    for d in e.drives().await {
        let t = e.truth(&d.user_id).await;
        if !t.is_empty() && want(&t) {
            return d;
        }
    }
    panic!("no such OneDrive in the tenant");
}

#[tokio::test]
async fn discovery_lists_every_user_with_a_onedrive() {
    let e = env(small_tenant(25, 61)).await;
    let drives = e.drives().await;
    assert!(!drives.is_empty());
    let users = e.get("/users?$select=id,assignedLicenses&$top=999").await;
    let users = users["value"].as_array().unwrap();
    for u in users {
        let uid = u["id"].as_str().unwrap();
        let has = e
            .graph
            .send(Request::get(format!("/users/{uid}/drive")))
            .await
            .ok()
            .map(|r| {
                r.json::<Value>().unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            });
        let found = drives.iter().find(|d| d.user_id == uid);
        assert_eq!(found.map(|d| d.drive_id.clone()), has, "user {uid}");
    }
    let d = &drives[0];
    assert!(
        d.web_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    );
    assert!(d.user_principal_name.is_some() && d.email.is_some());
    assert!(d.properties.get("licensed").is_some());
    assert!(
        drives.len() < users.len(),
        "users without a license have no OneDrive"
    );
}

#[tokio::test]
async fn first_backup_then_incrementals_match_the_truth_and_cost_what_changed() {
    let e = env(small_tenant(12, 62)).await;
    // One with OneNote notebooks (their sections are .one files).
    let d = drive_where(&e, |t| t.values().any(|f| f.0.ends_with(".one"))).await;
    let user = d.user_id.as_str();

    let first = e.backup(user, None).await;
    assert_eq!(first.outcome(), Outcome::Success, "{:?}", first.parts);
    let s1 = first.snapshot_id.clone().unwrap();
    let truth1 = e.assert_matches_truth(user, &s1).await;
    let part = drive_part(&first);
    assert_eq!(part.counts.new, truth1.len() as u64);
    assert_eq!(part.counts.total, truth1.len() as u64);
    assert!(
        part.counts.bytes_read >= truth1.values().map(|t| t.1).sum::<u64>(),
        "every file downloaded once (and older versions)"
    );
    let snap1 = e.snap(&s1).await;
    assert_eq!(snap1.meta["kind"], "onedrive");
    assert_eq!(snap1.meta["task"], "t1");
    assert_eq!(snap1.meta["driveId"], json!(d.drive_id));

    // Older versions, permissions and OneNote notebooks are in the snapshot.
    let versions = e.account.walk(&snap1, "drive/versions").await.unwrap();
    let older: Vec<&(String, Node)> = versions.iter().filter(|(_, n)| !n.is_folder()).collect();
    assert!(!older.is_empty(), "some files have older versions");
    for (path, node) in older.iter().take(5) {
        let (item, vid) = path
            .trim_start_matches("drive/versions/")
            .split_once('/')
            .unwrap();
        let Node::Item { content, .. } = node else {
            unreachable!()
        };
        let want = e
            .http
            .get(format!(
                "{}/drives/{}/items/{item}/versions/{vid}/content",
                e.sim.graph_url(),
                d.drive_id
            ))
            .bearer_auth(e.graph.access_token().await.unwrap())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let (size, hash) = e.hash(content).await;
        assert_eq!(size, want.len() as u64, "version {path}");
        assert_eq!(hash, blake3::hash(&want).to_hex().to_string());
    }
    let items = e.account.list_folder(&snap1, "drive/items").await.unwrap();
    let shared: Vec<String> = items
        .iter()
        .filter(|i| serde_json::from_slice::<Value>(i.node.meta()).unwrap()["shared"].is_object())
        .map(|i| i.name.clone())
        .collect();
    let perms = e
        .account
        .list_folder(&snap1, "drive/permissions")
        .await
        .unwrap();
    assert!(!shared.is_empty());
    assert_eq!(
        perms.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        {
            let mut s = shared.clone();
            s.sort();
            s
        },
        "permissions of exactly the shared items"
    );
    let p0: Value = serde_json::from_slice(
        &e.account
            .read_item_bytes(&snap1, &format!("drive/permissions/{}", perms[0].name))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        p0.as_array()
            .is_some_and(|a| !a.is_empty() && a[0]["roles"].is_array())
    );
    assert!(
        items.iter().any(|i| {
            serde_json::from_slice::<Value>(i.node.meta()).unwrap()["package"]["type"] == "oneNote"
        }),
        "OneNote notebooks are kept as packages"
    );
    assert!(
        truth1.values().any(|t| t.0.ends_with(".one")),
        "and their sections as files"
    );

    // Two days of activity: new, changed, renamed, moved and deleted files.
    let act = e
        .control(
            "/_sim/activity",
            json!({"days": 3, "entities": [format!("user:{user}")]}),
        )
        .await;
    assert!(act["report"]["created"].as_u64().unwrap() > 0, "{act}");
    let second = e.backup(user, Some(&s1)).await;
    assert_eq!(second.outcome(), Outcome::Success, "{:?}", second.parts);
    let s2 = second.snapshot_id.clone().unwrap();
    e.assert_matches_truth(user, &s2).await;
    assert!(
        second.requests * 4 < first.requests,
        "an incremental costs far less than the first backup ({} vs {})",
        second.requests,
        first.requests
    );
    println!(
        "{} files: first backup {} requests, incremental after activity {} ({:?})",
        truth1.len(),
        first.requests,
        second.requests,
        drive_part(&second).counts
    );
    // The engine's own view of a snapshot gives the same paths.
    let stored = engine::drive::stored_items(&e.account, &e.snap(&s2).await, "drive")
        .await
        .unwrap();
    let truth2 = e.truth(user).await;
    let files: Vec<&engine::drive::StoredItem> = stored.iter().filter(|i| i.is_file()).collect();
    assert_eq!(files.len(), truth2.len());
    for f in files {
        assert_eq!(format!("OneDrive/{}", f.path), truth2[&f.id].0);
        assert_eq!(f.content.size, truth2[&f.id].1);
    }
    // The first snapshot still holds what was there then.
    assert_eq!(e.files(&s1).await, truth1);

    // A rename and a move only: metadata, no download.
    let (fid, _) = e.files(&s2).await.into_iter().next().unwrap();
    let root = e.get(&format!("/drives/{}/root", d.drive_id)).await;
    e.graph
        .send(Request::json(
            reqwest::Method::PATCH,
            format!("/drives/{}/items/{fid}", d.drive_id),
            &json!({"name": "renamed by test.bin", "parentReference": {"id": root["id"]}}),
        ))
        .await
        .unwrap();
    let third = e.backup(user, Some(&s2)).await;
    assert_eq!(third.outcome(), Outcome::Success, "{:?}", third.parts);
    let s3 = third.snapshot_id.clone().unwrap();
    let truth3 = e.assert_matches_truth(user, &s3).await;
    assert_eq!(truth3[&fid].0, "OneDrive/renamed by test.bin");
    assert_eq!(drive_part(&third).counts.bytes_read, 0, "no download");
    assert_eq!(drive_part(&third).counts.changed, 1);
    assert!(third.requests <= 6, "{} requests", third.requests);

    // Nothing changed: the drive, one delta page and the drive lookup.
    let fourth = e.backup(user, Some(&s3)).await;
    assert_eq!(fourth.outcome(), Outcome::Success);
    assert!(fourth.requests <= 3, "{} requests", fourth.requests);
    e.assert_matches_truth(user, fourth.snapshot_id.as_ref().unwrap())
        .await;
}

#[tokio::test]
async fn after_ransomware_the_new_snapshot_has_the_encrypted_files_and_the_old_one_the_originals() {
    let e = env(small_tenant(6, 63)).await;
    let d = some_drive(&e).await;
    let user = d.user_id.as_str();
    let first = e.backup(user, None).await;
    let s1 = first.snapshot_id.clone().unwrap();
    let originals = e.assert_matches_truth(user, &s1).await;

    let r = e
        .control(
            &format!("/_sim/drives/{}/ransomware", d.drive_id),
            json!({}),
        )
        .await;
    assert_eq!(r["encrypted"].as_u64().unwrap(), originals.len() as u64);
    let second = e.backup(user, Some(&s1)).await;
    assert_eq!(second.outcome(), Outcome::Success, "{:?}", second.parts);
    let s2 = second.snapshot_id.clone().unwrap();
    let encrypted = e.assert_matches_truth(user, &s2).await;
    assert!(encrypted.values().all(|t| t.0.ends_with(".lockbit")));
    // The previous snapshot still holds the originals, byte for byte.
    assert_eq!(e.files(&s1).await, originals);
    // The originals became older versions: kept from the parent, not
    // downloaded again; only the encrypted content was read.
    assert_eq!(
        drive_part(&second).counts.bytes_read,
        encrypted.values().map(|t| t.1).sum::<u64>()
    );
    let snap2 = e.snap(&s2).await;
    for (id, (_, size, hash)) in originals.iter().take(10) {
        let folder = format!("drive/versions/{id}");
        let vs = e.account.list_folder(&snap2, &folder).await.unwrap();
        let mut found = false;
        for v in vs {
            if let Node::Item { content, .. } = &v.node {
                found |= e.hash(content).await == (*size, hash.clone());
            }
        }
        assert!(
            found,
            "the original of {id} is a version in the new snapshot"
        );
    }
}

/// The permissions a snapshot holds for an item (None when it has none).
async fn stored_permissions(e: &Env, id: &SnapshotId, item: &str) -> Option<Value> {
    let snap = e.snap(id).await;
    let bytes = e
        .account
        .read_item_bytes(&snap, &format!("drive/permissions/{item}"))
        .await
        .ok()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn sharing_changes_reread_the_permissions_of_those_items_only() {
    let e = env(small_tenant(6, 69)).await;
    let d = some_drive(&e).await;
    let user = d.user_id.as_str();
    let first = e.backup(user, None).await;
    let s1 = first.snapshot_id.clone().unwrap();
    e.assert_matches_truth(user, &s1).await;
    let snap1 = e.snap(&s1).await;
    let items = e.account.list_folder(&snap1, "drive/items").await.unwrap();
    let meta = |i: &vault::Entry| serde_json::from_slice::<Value>(i.node.meta()).unwrap();
    let unshared = items
        .iter()
        .find(|i| meta(i)["file"].is_object() && meta(i).get("shared").is_none())
        .unwrap()
        .name
        .clone();
    assert!(stored_permissions(&e, &s1, &unshared).await.is_none());
    // A file shared with a colleague.
    let colleague = e
        .drives()
        .await
        .into_iter()
        .find(|x| x.user_id != user)
        .unwrap();
    e.graph
        .send(Request::json(
            reqwest::Method::POST,
            format!("/drives/{}/items/{unshared}/invite", d.drive_id),
            &json!({"recipients": [{"objectId": colleague.user_id}], "roles": ["write"],
                    "requireSignIn": true, "sendInvitation": false}),
        ))
        .await
        .unwrap();
    let second = e.backup(user, Some(&s1)).await;
    assert_eq!(second.outcome(), Outcome::Success, "{:?}", second.parts);
    let s2 = second.snapshot_id.clone().unwrap();
    let perms = stored_permissions(&e, &s2, &unshared)
        .await
        .expect("the new grant is backed up");
    assert_eq!(perms.as_array().unwrap().len(), 1, "{perms}");
    assert_eq!(perms[0]["roles"], json!(["write"]));
    assert_eq!(
        perms[0]["grantedToV2"]["user"]["id"],
        json!(colleague.user_id),
        "{perms}"
    );
    assert_eq!(drive_part(&second).counts.bytes_read, 0, "no download");
    // The drive, one delta page, the permissions of that one item, the
    // drive lookup.
    assert!(second.requests <= 4, "{} requests", second.requests);

    // The grant withdrawn: the item is no longer shared.
    let pid = perms[0]["id"].as_str().unwrap();
    e.graph
        .send(Request::delete(format!(
            "/drives/{}/items/{unshared}/permissions/{pid}",
            d.drive_id
        )))
        .await
        .unwrap();
    let third = e.backup(user, Some(&s2)).await;
    let s3 = third.snapshot_id.clone().unwrap();
    assert!(stored_permissions(&e, &s3, &unshared).await.is_none());
    assert!(stored_permissions(&e, &s2, &unshared).await.is_some());
    e.assert_matches_truth(user, &s3).await;
}

fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as u64 * 1024
}

#[tokio::test]
async fn a_large_file_is_streamed_into_the_vault() {
    let e = env(small_tenant(4, 64)).await;
    let d = some_drive(&e).await;
    let user = d.user_id.as_str();
    let first = e.backup(user, None).await;
    let s1 = first.snapshot_id.clone().unwrap();
    const BIG: u64 = 160 * 1024 * 1024;
    let id = graph_sim::files::add_generated_file(&e.sim.sim, &d.drive_id, "big video.mp4", BIG)
        .unwrap();
    let before = peak_rss_bytes();
    let second = e.backup(user, Some(&s1)).await;
    let grew = peak_rss_bytes().saturating_sub(before);
    assert_eq!(second.outcome(), Outcome::Success, "{:?}", second.parts);
    let files = e
        .assert_matches_truth(user, second.snapshot_id.as_ref().unwrap())
        .await;
    assert_eq!(files[&id].1, BIG);
    assert!(drive_part(&second).counts.bytes_read >= BIG);
    assert!(
        grew < BIG / 2,
        "peak memory grew by {} MiB for a {} MiB file",
        grew >> 20,
        BIG >> 20
    );
}

#[tokio::test]
async fn an_expired_delta_token_enumerates_again_and_finds_deletions() {
    let e = env(small_tenant(6, 65)).await;
    let d = some_drive(&e).await;
    let user = d.user_id.as_str();
    let first = e.backup(user, None).await;
    let s1 = first.snapshot_id.clone().unwrap();
    let truth1 = e.assert_matches_truth(user, &s1).await;
    // A file deleted, and a folder with whatever it holds.
    let victim = truth1.keys().next().unwrap().clone();
    e.graph
        .send(Request::delete(format!(
            "/drives/{}/items/{victim}",
            d.drive_id
        )))
        .await
        .unwrap();
    let kids = e
        .get(&format!("/drives/{}/root/children", d.drive_id))
        .await;
    let folder = kids["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["folder"]["childCount"].as_u64().unwrap_or(0) > 0)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    e.graph
        .send(Request::delete(format!(
            "/drives/{}/items/{folder}",
            d.drive_id
        )))
        .await
        .unwrap();
    e.control("/_sim/delta/invalidate", json!({})).await;

    let second = e.backup(user, Some(&s1)).await;
    assert_eq!(second.outcome(), Outcome::Success, "{:?}", second.parts);
    let part = drive_part(&second);
    assert!(
        part.notes.iter().any(|n| n.contains("expired")),
        "{:?}",
        part.notes
    );
    let s2 = second.snapshot_id.clone().unwrap();
    let truth2 = e.assert_matches_truth(user, &s2).await;
    assert!(!truth2.contains_key(&victim));
    assert_eq!(
        part.counts.deleted,
        (truth1.len() - truth2.len()) as u64,
        "{:?}",
        part.counts
    );
    assert_eq!(
        part.counts.bytes_read, 0,
        "nothing else changed: no download"
    );
    let snap2 = e.snap(&s2).await;
    assert!(
        e.account
            .lookup(&snap2, &format!("drive/items/{folder}"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn with_five_percent_faults_nothing_is_lost() {
    let mut cfg = small_tenant(6, 66);
    cfg.token_lifetime_secs = 2;
    let e = env(cfg).await;
    let d = some_drive(&e).await;
    let user = d.user_id.as_str();
    e.sim.sim.set_faults(
        0.05,
        vec![
            FaultKind::Throttled,
            FaultKind::Unavailable,
            FaultKind::Drop,
            FaultKind::Malformed,
        ],
    );
    let first = e.backup(user, None).await;
    let part = drive_part(&first);
    assert!(
        matches!(first.outcome(), Outcome::Success | Outcome::Partial),
        "{:?}",
        first.parts
    );
    e.control(
        "/_sim/activity",
        json!({"days": 1, "entities": [format!("user:{user}")]}),
    )
    .await;
    let failed_first = part.failures.len();
    let second = e
        .backup(user, Some(first.snapshot_id.as_ref().unwrap()))
        .await;
    e.sim.sim.set_faults(0.0, Vec::new());
    let stats = e.sim.sim.stats.snapshot();
    let injected: u64 = stats
        .by_key
        .iter()
        .filter(|(k, _)| k.starts_with("fault:"))
        .map(|(_, v)| v)
        .sum();
    assert!(injected > 0, "faults were injected: {:?}", stats.by_key);
    // Retries absorb the faults; an item that still failed is named, and
    // the next run (without faults) tries it again.
    assert!(
        matches!(second.outcome(), Outcome::Success | Outcome::Partial),
        "{:?}",
        second.parts
    );
    let third = e
        .backup(user, Some(second.snapshot_id.as_ref().unwrap()))
        .await;
    assert_eq!(third.outcome(), Outcome::Success, "{:?}", third.parts);
    e.assert_matches_truth(user, third.snapshot_id.as_ref().unwrap())
        .await;
    if second.outcome() == Outcome::Success {
        e.assert_matches_truth(user, second.snapshot_id.as_ref().unwrap())
            .await;
    }
    println!(
        "{injected} faults injected; item failures: first {failed_first}, second {}",
        drive_part(&second).failures.len()
    );
}

/// Cancels the backup once a few items are done.
struct CancelAfter<'a> {
    cancel: &'a Cancel,
    after: u64,
    done: std::sync::atomic::AtomicU64,
}

impl Progress for CancelAfter<'_> {
    fn advance(&self, items: u64, _bytes: u64) {
        let n = self
            .done
            .fetch_add(items, std::sync::atomic::Ordering::SeqCst);
        if n + items >= self.after {
            self.cancel.cancel();
        }
    }
}

#[tokio::test]
async fn a_cancelled_backup_commits_nothing_and_a_deleted_user_is_gone() {
    let e = env(small_tenant(6, 67)).await;
    let d = some_drive(&e).await;
    let user = d.user_id.as_str();
    let cancel = Cancel::new();
    let progress = CancelAfter {
        cancel: &cancel,
        after: 3,
        done: Default::default(),
    };
    match e.backup_with(user, None, &cancel, &progress).await {
        Ok(r) => {
            assert!(r.snapshot_id.is_none());
            assert_eq!(r.outcome(), Outcome::Cancelled);
        }
        Err(err) => assert!(matches!(err, EngineError::Cancelled), "{err}"),
    }
    assert!(e.account.snapshots().await.unwrap().is_empty());

    e.control(&format!("/_sim/users/{user}/delete"), json!({}))
        .await;
    let err = e
        .backup_with(user, None, &Cancel::new(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::EntityGone(w) if w.contains(user)),
        "{err}"
    );
    assert!(e.account.snapshots().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_user_without_a_onedrive_is_reported_gone_not_failed() {
    let e = env(small_tenant(25, 68)).await;
    let with: Vec<String> = e.drives().await.into_iter().map(|d| d.user_id).collect();
    let users = e.get("/users?$select=id&$top=999").await;
    let without = users["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .find(|u| !with.contains(u))
        .expect("an unlicensed user");
    let err = e
        .backup_with(&without, None, &Cancel::new(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::EntityGone(w) if w.contains("OneDrive")),
        "{err}"
    );
}
