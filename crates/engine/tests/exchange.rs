//! Exchange backups against the tenant simulator: every snapshot equals the
//! simulator's ground truth at its moment, item by item and byte for byte,
//! through activity, moves, deletions, faults and expired delta tokens.

use std::collections::{HashMap, HashSet};

use engine::exchange::{
    BackupOptions, BackupReport, DiscoveryOptions, MailboxBackup, MailboxKind, backup_mailbox,
    discover_mailboxes,
};
use engine::progress::CountingProgress;
use engine::{Cancel, EngineError};
use graph::Request;
use graph_sim::SimConfig;
use graph_sim::config::FaultKind;
use serde_json::{Value, json};
use vault::{Node, SnapshotId, SnapshotInfo};

mod common;
use common::{Env, env};

fn small_tenant(users: u32, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(users, seed);
    cfg.content_scale = 0.3;
    cfg
}

impl Env {
    async fn truth(&self, user: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_sim/truth/users/{user}", self.sim.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_else(|| v.as_array().cloned().unwrap_or_default())
    }

    async fn licensed_users(&self) -> Vec<String> {
        let found = discover_mailboxes(&self.graph, &DiscoveryOptions::default())
            .await
            .unwrap();
        found
            .into_iter()
            .filter(|m| m.kind == MailboxKind::User && m.licensed && m.account_enabled)
            .map(|m| m.graph_id)
            .collect()
    }

    async fn backup(&self, user: &str, parent: Option<&SnapshotId>) -> BackupReport {
        self.backup_with(user, parent, &Cancel::new())
            .await
            .unwrap()
    }

    async fn backup_with(
        &self,
        user: &str,
        parent: Option<&SnapshotId>,
        cancel: &Cancel,
    ) -> Result<BackupReport, EngineError> {
        let progress = CountingProgress::default();
        backup_mailbox(MailboxBackup {
            graph: &self.graph,
            vault: &self.account,
            mailbox_id: user,
            parent,
            options: &BackupOptions::default(),
            progress: &progress,
            cancel,
            meta: json!({"test": true}),
        })
        .await
    }

    async fn get(&self, url: &str) -> Value {
        self.graph
            .send(Request::get(url).header("Prefer", "IdType=\"ImmutableId\""))
            .await
            .unwrap()
            .json()
            .unwrap()
    }
}

fn strip(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|k, _| !k.starts_with("@odata."));
    }
    v
}

/// Every item of a snapshot sub-tree: (folder id, item id) -> node.
async fn items(
    account: &vault::Account,
    snap: &SnapshotInfo,
    root: &str,
) -> HashMap<(String, String), Node> {
    let mut out = HashMap::new();
    let folders = match account.list_folder(snap, root).await {
        Ok(f) => f,
        Err(vault::Error::NoSuchEntry(_)) => return out,
        Err(e) => panic!("{e}"),
    };
    for f in folders {
        for e in account
            .list_folder(snap, &format!("{root}/{}", f.name))
            .await
            .unwrap()
        {
            out.insert((f.name.clone(), e.name), e.node);
        }
    }
    out
}

async fn item_json(account: &vault::Account, snap: &SnapshotInfo, path: &str) -> Value {
    serde_json::from_slice(&account.read_item_bytes(snap, path).await.unwrap()).unwrap()
}

/// The snapshot holds exactly what the simulator holds now.
async fn assert_matches_truth(e: &Env, user: &str, id: &SnapshotId) {
    let snap = e.account.snapshot(id).await.unwrap();
    let truth = e.truth(user).await;
    assert!(!truth.is_empty(), "the simulated mailbox has content");
    // Mail: byte for byte (BLAKE3 of the MIME), and nothing extra outside
    // the hidden folders and Recoverable Items the truth leaves out.
    let mail = items(&e.account, &snap, "mail").await;
    let extra: HashSet<String> = snap.meta["delta"]["mail"]["extra"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let by_id: HashMap<&str, &(String, String)> = mail.keys().map(|k| (k.1.as_str(), k)).collect();
    let truth_mail: Vec<&Value> = truth.iter().filter(|t| t["workload"] == "mail").collect();
    assert!(!truth_mail.is_empty());
    for t in &truth_mail {
        let tid = t["id"].as_str().unwrap();
        let key = by_id
            .get(tid)
            .unwrap_or_else(|| panic!("message {} ({}) missing from the snapshot", tid, t["path"]));
        let path = format!("mail/{}/{}", key.0, key.1);
        let bytes = e.account.read_item_bytes(&snap, &path).await.unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            t["hash"].as_str().unwrap(),
            "MIME of {} differs",
            t["path"]
        );
    }
    let truth_ids: HashSet<&str> = truth_mail
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for (folder, id) in mail.keys() {
        if !extra.contains(folder) {
            assert!(
                truth_ids.contains(id.as_str()),
                "message {id} in folder {folder} no longer exists"
            );
        }
    }
    // Contacts and tasks: the stored JSON is what Graph returns for the item now.
    let contacts = items(&e.account, &snap, "contacts").await;
    let truth_contacts: HashSet<&str> = truth
        .iter()
        .filter(|t| t["workload"] == "contacts")
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let stored: HashSet<&str> = contacts.keys().map(|k| k.1.as_str()).collect();
    assert_eq!(stored, truth_contacts, "contact ids");
    for (fid, cid) in contacts.keys().take(15) {
        let now = strip(
            e.get(&format!(
                "/users/{user}/contactFolders/{fid}/contacts/{cid}"
            ))
            .await,
        );
        let kept = item_json(&e.account, &snap, &format!("contacts/{fid}/{cid}")).await;
        assert_eq!(kept, now, "contact {cid}");
    }
    let tasks = items(&e.account, &snap, "tasks").await;
    let truth_tasks: HashSet<&str> = truth
        .iter()
        .filter(|t| t["workload"] == "tasks")
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let stored: HashSet<&str> = tasks.keys().map(|k| k.1.as_str()).collect();
    assert_eq!(stored, truth_tasks, "task ids");
    for (lid, tid) in tasks.keys().take(15) {
        let now = strip(
            e.get(&format!(
                "/users/{user}/todo/lists/{lid}/tasks/{tid}?$expand=checklistItems"
            ))
            .await,
        );
        let kept = item_json(&e.account, &snap, &format!("tasks/{lid}/{tid}")).await;
        assert_eq!(kept, now, "task {tid}");
    }
    // Calendar: every event (series masters hold their exceptions).
    let events = items(&e.account, &snap, "calendar").await;
    let mut stored: HashSet<String> = HashSet::new();
    for (cid, eid) in events.keys() {
        stored.insert(eid.clone());
        let kept = item_json(&e.account, &snap, &format!("calendar/{cid}/{eid}")).await;
        if let Some(x) = kept.get("exceptionOccurrences").and_then(Value::as_array) {
            for o in x {
                stored.insert(o["id"].as_str().unwrap().to_string());
            }
        }
    }
    let truth_events: HashSet<String> = truth
        .iter()
        .filter(|t| t["workload"] == "calendar")
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(stored, truth_events, "event ids");
    for (cid, eid) in events.keys().take(10) {
        let kept = item_json(&e.account, &snap, &format!("calendar/{cid}/{eid}")).await;
        assert_eq!(
            kept["changeKey"],
            e.get(&format!("/users/{user}/events/{eid}?$select=changeKey"))
                .await["changeKey"],
            "event {eid} is current"
        );
    }
}

fn part<'a>(r: &'a BackupReport, name: &str) -> &'a engine::exchange::SubServiceReport {
    r.parts
        .iter()
        .find(|p| p.sub_service.as_str() == name)
        .unwrap()
}

#[tokio::test]
async fn discovery_finds_user_and_shared_mailboxes_and_unlicensed_only_when_asked() {
    let e = env(small_tenant(120, 41)).await;
    let default = discover_mailboxes(&e.graph, &DiscoveryOptions::default())
        .await
        .unwrap();
    let all = discover_mailboxes(
        &e.graph,
        &DiscoveryOptions {
            include_unlicensed: true,
        },
    )
    .await
    .unwrap();
    assert!(default.iter().any(|m| m.kind == MailboxKind::Shared));
    assert!(
        default
            .iter()
            .all(|m| m.licensed || m.kind == MailboxKind::Shared)
    );
    assert!(
        all.len() > default.len(),
        "unlicensed user mailboxes appear only with the setting"
    );
    assert!(
        all.iter()
            .any(|m| !m.licensed && m.kind == MailboxKind::User)
    );
    let ids: HashSet<&str> = all.iter().map(|m| m.graph_id.as_str()).collect();
    assert_eq!(ids.len(), all.len(), "no mailbox twice");
}

#[tokio::test]
async fn backups_equal_ground_truth_through_activity_moves_and_deletions() {
    let e = env(small_tenant(8, 42)).await;
    let users = e.licensed_users().await;
    let user = users[0].clone();
    // A folder of the user's own with two messages in it, to move later.
    let projects: Value = e
        .graph
        .send(Request::json(
            reqwest::Method::POST,
            format!("/users/{user}/mailFolders"),
            &json!({"displayName": "Projects"}),
        ))
        .await
        .unwrap()
        .json()
        .unwrap();
    let two = e
        .get(&format!(
            "/users/{user}/mailFolders/inbox/messages?$top=2&$select=id"
        ))
        .await;
    for m in two["value"].as_array().unwrap() {
        e.graph
            .send(Request::json(
                reqwest::Method::POST,
                format!("/users/{user}/messages/{}/move", m["id"].as_str().unwrap()),
                &json!({"destinationId": projects["id"]}),
            ))
            .await
            .unwrap();
    }
    let first = e.backup(&user, None).await;
    assert_eq!(
        first.outcome(),
        engine::faults::Outcome::Success,
        "{:?}",
        first.parts
    );
    let s1 = first.snapshot_id.clone().unwrap();
    assert!(part(&first, "mail").counts.new > 0);
    assert_matches_truth(&e, &user, &s1).await;

    // A day of activity, a folder of ours moved under Inbox, a message deleted.
    e.control(
        "/_sim/activity",
        json!({"days": 1, "entities": [format!("user:{user}")]}),
    )
    .await;
    let inbox = e.get(&format!("/users/{user}/mailFolders/inbox")).await;
    e.graph
        .send(Request::json(
            reqwest::Method::POST,
            format!(
                "/users/{user}/mailFolders/{}/move",
                projects["id"].as_str().unwrap()
            ),
            &json!({"destinationId": inbox["id"]}),
        ))
        .await
        .unwrap();
    let msgs = e
        .get(&format!(
            "/users/{user}/mailFolders/inbox/messages?$top=2&$select=id"
        ))
        .await;
    let victim = msgs["value"][0]["id"].as_str().unwrap().to_string();
    e.graph
        .send(Request::delete(format!("/users/{user}/messages/{victim}")))
        .await
        .unwrap();

    let second = e.backup(&user, Some(&s1)).await;
    assert_eq!(
        second.outcome(),
        engine::faults::Outcome::Success,
        "{:?}",
        second.parts
    );
    let s2 = second.snapshot_id.clone().unwrap();
    let mail = part(&second, "mail");
    assert!(mail.counts.new > 0, "new mail arrived: {:?}", mail.counts);
    assert!(
        mail.counts.deleted > 0 || mail.counts.changed > 0,
        "{:?}",
        mail.counts
    );
    assert_matches_truth(&e, &user, &s2).await;
    assert!(
        second.requests < first.requests,
        "an incremental costs less than a full backup ({} vs {})",
        second.requests,
        first.requests
    );
    // The deleted message went to Deleted Items: still in the snapshot, in
    // another folder; the first snapshot is unchanged.
    let snap1 = e.account.snapshot(&s1).await.unwrap();
    let in_first = items(&e.account, &snap1, "mail").await;
    assert!(in_first.keys().any(|k| k.1 == victim));
    assert_matches_truth_count(&e, &s1, first.parts[0].counts.total).await;

    // Nothing changed: about one request per folder, nothing downloaded.
    let third = e.backup(&user, Some(&s2)).await;
    let folders_now = e
        .account
        .list_folder(&e.account.snapshot(&s2).await.unwrap(), "mail")
        .await
        .unwrap()
        .len() as u64;
    assert_eq!(part(&third, "mail").counts.new, 0);
    assert_eq!(part(&third, "mail").counts.bytes_read, 0);
    assert!(
        third.requests <= folders_now + 20,
        "unchanged mailbox: {} requests for {} mail folders",
        third.requests,
        folders_now
    );
    assert_matches_truth(&e, &user, third.snapshot_id.as_ref().unwrap()).await;
}

async fn assert_matches_truth_count(e: &Env, id: &SnapshotId, expected_mail: u64) {
    let snap = e.account.snapshot(id).await.unwrap();
    let n = items(&e.account, &snap, "mail").await.len() as u64;
    assert_eq!(n, expected_mail, "the report's total matches the snapshot");
}

#[tokio::test]
async fn faults_token_expiry_and_expired_delta_tokens_lose_nothing() {
    let mut cfg = small_tenant(6, 43);
    cfg.token_lifetime_secs = 2;
    let e = env(cfg).await;
    let user = e.licensed_users().await[0].clone();
    let first = e.backup(&user, None).await;
    let s1 = first.snapshot_id.unwrap();
    assert_matches_truth(&e, &user, &s1).await;
    e.control(
        "/_sim/activity",
        json!({"days": 2, "entities": [format!("user:{user}")]}),
    )
    .await;
    // 5% of requests fail with 429/503 or a dropped connection from now on,
    // and every delta token handed out so far is invalid.
    e.sim.sim.set_faults(
        0.05,
        vec![
            FaultKind::Throttled,
            FaultKind::Unavailable,
            FaultKind::Drop,
        ],
    );
    e.control("/_sim/delta/invalidate", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let second = e.backup(&user, Some(&s1)).await;
    assert_eq!(
        second.outcome(),
        engine::faults::Outcome::Success,
        "{:?}",
        second.parts
    );
    assert!(
        second
            .parts
            .iter()
            .any(|p| p.notes.iter().any(|n| n.contains("expired"))),
        "the resync is reported: {:?}",
        second.parts
    );
    e.sim.sim.set_faults(0.0, Vec::new());
    assert_matches_truth(&e, &user, second.snapshot_id.as_ref().unwrap()).await;
}

#[tokio::test]
async fn a_cancelled_backup_commits_nothing_and_a_deleted_user_is_reported_gone() {
    let e = env(small_tenant(6, 44)).await;
    let users = e.licensed_users().await;
    let cancel = Cancel::new();
    cancel.cancel();
    let r = e.backup_with(&users[0], None, &cancel).await;
    match r {
        Ok(r) => assert!(r.snapshot_id.is_none()),
        Err(err) => assert!(matches!(err, EngineError::Cancelled), "{err}"),
    }
    assert!(e.account.snapshots().await.unwrap().is_empty());

    let gone = users[1].clone();
    e.control(&format!("/_sim/users/{gone}/delete"), json!({}))
        .await;
    let err = e
        .backup_with(&gone, None, &Cancel::new())
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::EntityGone(_)), "{err}");
}
