//! Teams & Groups restore against the tenant simulator: back up a team or a
//! group, destroy parts of it through Graph and the simulator's controls,
//! restore, and compare the destination item by item with the snapshot and
//! the simulator's ground truth.

use std::collections::{HashMap, HashSet};

use engine::faults::Outcome;
use engine::progress::{NoProgress, Progress};
use engine::restore::teams::restore_group;
use engine::restore::{
    ItemOutcome, MemoryLog, RestoreCtx, RestoreMode, RestoreOptions, RestoreReport, Selection,
};
use engine::teams::{
    GroupBackup, GroupBackupOptions, GroupKind, SubService, backup_group, discover_groups,
};
use engine::{Cancel, EngineError};
use graph::Request;
use graph_sim::SimConfig;
use serde_json::{Value, json};
use vault::SnapshotInfo;

mod common;
use common::{Env, env};

fn tenant(seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(40, seed);
    cfg.content_scale = 0.4;
    cfg
}

fn options() -> GroupBackupOptions {
    GroupBackupOptions {
        sub_services: vec![
            SubService::Metadata,
            SubService::Conversations,
            SubService::Calendar,
            SubService::Channels,
        ],
        concurrency: 2,
    }
}

/// Cancels after a number of items.
struct CancelAfter<'a> {
    cancel: &'a Cancel,
    after: u64,
    done: std::sync::atomic::AtomicU64,
}

impl Progress for CancelAfter<'_> {
    fn advance(&self, items: u64, _bytes: u64) {
        let n = self
            .done
            .fetch_add(items, std::sync::atomic::Ordering::SeqCst)
            + items;
        if n >= self.after {
            self.cancel.cancel();
        }
    }
}

impl Env {
    async fn first(&self, kind: GroupKind) -> String {
        discover_groups(&self.graph)
            .await
            .unwrap()
            .into_iter()
            .find(|g| g.kind == kind)
            .unwrap()
            .graph_id
    }

    async fn backup(&self, group: &str, is_team: bool) -> SnapshotInfo {
        let r = backup_group(GroupBackup {
            graph: &self.graph,
            vault: &self.account,
            group_id: group,
            is_team,
            parent: None,
            options: &options(),
            progress: &NoProgress,
            cancel: &Cancel::new(),
            meta: json!({}),
        })
        .await
        .unwrap();
        assert_eq!(r.outcome(), Outcome::Success, "{r:?}");
        self.account
            .snapshot(r.snapshot_id.as_ref().unwrap())
            .await
            .unwrap()
    }

    async fn restore(
        &self,
        snap: &SnapshotInfo,
        mode: RestoreMode,
        destination: Option<&str>,
        progress: &dyn Progress,
        cancel: &Cancel,
    ) -> Result<(RestoreReport, Vec<engine::restore::ItemLogEntry>), EngineError> {
        let selection = Selection::everything();
        let opts = RestoreOptions::new(mode);
        let log = MemoryLog::default();
        let ctx = RestoreCtx {
            graph: &self.graph,
            vault: &self.account,
            snapshot: snap,
            selection: &selection,
            options: &opts,
            destination,
            progress,
            log: &log,
            cancel,
        };
        let r = restore_group(&ctx).await?;
        Ok((r, log.entries()))
    }

    async fn get(&self, url: &str) -> Value {
        self.graph
            .send(Request::get(url))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .json()
            .unwrap()
    }

    async fn all(&self, url: &str) -> Vec<Value> {
        self.graph.get_all(url).await.unwrap()
    }

    async fn send(&self, method: reqwest::Method, url: &str, body: Value) {
        self.graph
            .send(Request::json(method, url, &body))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    async fn truth(&self, group: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_sim/truth/groups/{group}", self.sim.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    async fn json_at(&self, snap: &SnapshotInfo, path: &str) -> Value {
        serde_json::from_slice(&self.account.read_item_bytes(snap, path).await.unwrap()).unwrap()
    }

    /// Every live message and reply of a channel as (createdDateTime ms,
    /// sender id, content).
    async fn messages(&self, team: &str, cid: &str) -> HashSet<(i64, String, String)> {
        let mut out = HashSet::new();
        for m in self
            .all(&format!(
                "/teams/{team}/channels/{cid}/messages?$expand=replies"
            ))
            .await
        {
            let replies = m["replies"].as_array().cloned().unwrap_or_default();
            for x in std::iter::once(&m).chain(replies.iter()) {
                let content = x["body"]["content"].as_str().unwrap_or_default();
                if !x["deletedDateTime"].is_null() || content.starts_with(PLACEHOLDER) {
                    continue;
                }
                out.insert(key(x));
            }
        }
        out
    }
}

/// How a restore stands in for a message deleted before the backup whose
/// replies it restores.
const PLACEHOLDER: &str = "(This message had been deleted before the backup";

fn key(m: &Value) -> (i64, String, String) {
    let t = chrono::DateTime::parse_from_rfc3339(m["createdDateTime"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    (
        t,
        m["from"]["user"]["id"]
            .as_str()
            .unwrap_or("app")
            .to_string(),
        m["body"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The snapshot's live, user-authored messages of each channel (by name).
async fn snapshot_messages(e: &Env, snap: &SnapshotInfo) -> HashMap<String, Vec<Value>> {
    let mut out = HashMap::new();
    for ch in e.account.list_folder(snap, "channels").await.unwrap() {
        let meta: Value = serde_json::from_slice(ch.node.meta()).unwrap();
        let name = meta["displayName"].as_str().unwrap().to_string();
        let folder = format!("channels/{}", ch.name);
        let mut msgs = Vec::new();
        for (path, node) in e.account.walk(snap, &folder).await.unwrap() {
            if node.is_folder() {
                continue;
            }
            let m = e.json_at(snap, &path).await;
            if m["deletedDateTime"].is_null() && m["from"]["user"].is_object() {
                msgs.push(m);
            }
        }
        out.insert(name, msgs);
    }
    out
}

/// Channel name -> id in a team.
async fn channels(e: &Env, team: &str) -> HashMap<String, String> {
    e.all(&format!("/teams/{team}/channels"))
        .await
        .iter()
        .map(|c| {
            (
                c["displayName"].as_str().unwrap().to_string(),
                c["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ids(v: &[Value]) -> HashSet<String> {
    v.iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// A message's reactions as (reactionType, user id, createdDateTime ms), sorted.
fn reactions(m: &Value) -> Vec<(String, String, i64)> {
    let mut out: Vec<_> = m["reactions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["reactionType"].as_str().unwrap().to_string(),
                r["user"]["user"]["id"].as_str().unwrap().to_string(),
                chrono::DateTime::parse_from_rfc3339(r["createdDateTime"].as_str().unwrap())
                    .unwrap()
                    .timestamp_millis(),
            )
        })
        .collect();
    out.sort();
    out
}

/// chatMessage truth items by "channel name/message id".
fn message_truth(truth: &[Value]) -> HashMap<String, String> {
    truth
        .iter()
        .filter(|t| t["kind"] == "chatMessage")
        .map(|t| {
            (
                t["path"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("Channels/")
                    .to_string(),
                t["hash"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn team_restore_brings_back_what_was_destroyed_and_skips_what_is_there() {
    let e = env(tenant(71)).await;
    let team = e.first(GroupKind::Team).await;
    let snap = e.backup(&team, true).await;
    let truth_before = message_truth(&e.truth(&team).await);
    let name = e.get(&format!("/groups/{team}")).await["displayName"].clone();
    let members_before = ids(&e.all(&format!("/groups/{team}/members")).await);
    let by_name = channels(&e, &team).await;
    let wanted = snapshot_messages(&e, &snap).await;

    // Destroy: a channel, some messages, a member, the name, events, threads.
    let (gone_name, gone_id) = by_name
        .iter()
        .find(|(n, _)| *n != "General" && wanted.get(*n).is_some_and(|m| !m.is_empty()))
        .map(|(n, i)| (n.clone(), i.clone()))
        .expect("a channel with messages besides General");
    e.send(
        reqwest::Method::DELETE,
        &format!("/teams/{team}/channels/{gone_id}"),
        json!(null),
    )
    .await;
    let general = by_name["General"].clone();
    let general_msgs = e
        .all(&format!("/teams/{team}/channels/{general}/messages"))
        .await;
    let mut soft_deleted = Vec::new();
    for m in general_msgs
        .iter()
        .filter(|m| m["deletedDateTime"].is_null() && m["from"]["user"].is_object())
        .take(2)
    {
        let id = m["id"].as_str().unwrap();
        e.send(
            reqwest::Method::POST,
            &format!("/teams/{team}/channels/{general}/messages/{id}/softDelete"),
            json!({}),
        )
        .await;
        soft_deleted.push(key(m));
    }
    let removed = e.all(&format!("/groups/{team}/members")).await;
    let owners = ids(&e.all(&format!("/groups/{team}/owners")).await);
    let removed = removed
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .find(|m| !owners.contains(m))
        .expect("a member who is not an owner");
    e.send(
        reqwest::Method::DELETE,
        &format!("/groups/{team}/members/{removed}/$ref"),
        json!(null),
    )
    .await;
    e.send(
        reqwest::Method::PATCH,
        &format!("/teams/{team}"),
        json!({"displayName": "Renamed by mistake"}),
    )
    .await;
    let events = e.all(&format!("/groups/{team}/events?$top=100")).await;
    let gone_event = events.first().expect("the team has events").clone();
    e.send(
        reqwest::Method::DELETE,
        &format!(
            "/groups/{team}/events/{}",
            gone_event["id"].as_str().unwrap()
        ),
        json!(null),
    )
    .await;
    let threads = e.all(&format!("/groups/{team}/threads")).await;
    let gone_thread = threads.first().expect("the team has conversations").clone();
    let gone_posts: Vec<String> = e
        .all(&format!(
            "/groups/{team}/threads/{}/posts",
            gone_thread["id"].as_str().unwrap()
        ))
        .await
        .iter()
        .map(|p| p["body"]["content"].as_str().unwrap().to_string())
        .collect();
    e.send(
        reqwest::Method::DELETE,
        &format!(
            "/groups/{team}/threads/{}",
            gone_thread["id"].as_str().unwrap()
        ),
        json!(null),
    )
    .await;

    let (r, log) = e
        .restore(
            &snap,
            RestoreMode::Replace,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.failed,
        0,
        "{:?}",
        log.iter()
            .filter(|l| l.outcome == ItemOutcome::Failed)
            .collect::<Vec<_>>()
    );
    assert_eq!(r.outcome(), Outcome::Success);
    assert!(
        r.containers_created >= 1,
        "the deleted channel was created again"
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("back-date group conversation posts")),
        "{:?}",
        r.notes
    );

    // The deleted channel is back with every message, original dates and senders.
    let now = channels(&e, &team).await;
    let back = now.get(&gone_name).expect("the deleted channel is back");
    let truth_after = message_truth(&e.truth(&team).await);
    let mut checked = 0;
    for m in &wanted[&gone_name] {
        let k = format!("{gone_name}/{}", m["id"].as_str().unwrap());
        assert_eq!(truth_after.get(&k), truth_before.get(&k), "{k}");
        checked += 1;
    }
    assert!(checked > 0);
    let have = e.messages(&team, back).await;
    let want: HashSet<_> = wanted[&gone_name].iter().map(key).collect();
    assert_eq!(
        have, want,
        "the restored channel holds exactly the snapshot's messages"
    );
    // Soft-deleted messages come back (one millisecond later: the deleted
    // one keeps its createdDateTime in the channel).
    let general_now = e.messages(&team, &general).await;
    for (t, from, content) in &soft_deleted {
        assert!(
            general_now
                .iter()
                .any(|(t2, f2, c2)| (t2 - t).abs() <= 1 && f2 == from && c2 == content),
            "soft-deleted message at {t} is back"
        );
    }
    // Messages that were there were skipped, not duplicated.
    for m in &wanted["General"] {
        let k = key(m);
        let n = general_now
            .iter()
            .filter(|(t, f, c)| (t - k.0).abs() <= 1 && *f == k.1 && *c == k.2)
            .count();
        assert_eq!(n, 1, "message {} once", m["id"]);
    }
    // Metadata, calendar and conversations.
    assert_eq!(e.get(&format!("/groups/{team}")).await["displayName"], name);
    let members_now = ids(&e.all(&format!("/groups/{team}/members")).await);
    assert!(members_now.is_superset(&members_before), "members are back");
    let events_now = e.all(&format!("/groups/{team}/events?$top=100")).await;
    assert!(
        events_now
            .iter()
            .any(|x| x["subject"] == gone_event["subject"]
                && x["start"] == gone_event["start"]
                && x["attendees"].as_array().is_none_or(|a| a.is_empty())),
        "the deleted event is back, without attendees"
    );
    let threads_now = e.all(&format!("/groups/{team}/threads")).await;
    let restored_thread = threads_now
        .iter()
        .find(|t| t["topic"] == gone_thread["topic"])
        .expect("the deleted thread is back");
    let posts_now: Vec<String> = e
        .all(&format!(
            "/groups/{team}/threads/{}/posts",
            restored_thread["id"].as_str().unwrap()
        ))
        .await
        .iter()
        .map(|p| p["body"]["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        posts_now.len(),
        gone_posts.len(),
        "every post of the thread"
    );

    // A second restore (bypass) finds everything present.
    let (again, log) = e
        .restore(
            &snap,
            RestoreMode::Bypass,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(again.failed, 0);
    let restored: Vec<_> = log
        .iter()
        .filter(|l| l.outcome == ItemOutcome::Restored && l.path.starts_with("channels/"))
        .collect();
    assert!(restored.is_empty(), "nothing restored twice: {restored:?}");
    assert_eq!(e.messages(&team, back).await, want);
}

#[tokio::test]
async fn deleted_team_is_restored_into_a_new_team_with_original_dates_and_people() {
    let e = env(tenant(72)).await;
    let team = e.first(GroupKind::Team).await;
    let snap = e.backup(&team, true).await;
    let truth_before = message_truth(&e.truth(&team).await);
    let name = e.get(&format!("/groups/{team}")).await["displayName"]
        .as_str()
        .unwrap()
        .to_string();
    let members = ids(&e.all(&format!("/groups/{team}/members")).await);
    let owners = ids(&e.all(&format!("/groups/{team}/owners")).await);
    let names: HashSet<String> = channels(&e, &team).await.into_keys().collect();
    let wanted = snapshot_messages(&e, &snap).await;
    e.control(&format!("/_sim/groups/{team}/delete"), json!({}))
        .await;

    let (r, log) = e
        .restore(
            &snap,
            RestoreMode::Bypass,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        r.failed,
        0,
        "{:?}",
        log.iter()
            .filter(|l| l.outcome == ItemOutcome::Failed)
            .collect::<Vec<_>>()
    );
    let new = r.destination.clone().expect("a new team");
    assert_ne!(new, team);
    let g = e.get(&format!("/groups/{new}")).await;
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(g["displayName"], json!(format!("{name} (Restored {date})")));
    let now = channels(&e, &new).await;
    assert_eq!(now.keys().cloned().collect::<HashSet<_>>(), names);
    let truth_after = message_truth(&e.truth(&new).await);
    let mut checked = 0;
    let mut reacted = 0;
    for (ch, msgs) in &wanted {
        for m in msgs {
            let k = format!("{ch}/{}", m["id"].as_str().unwrap());
            assert_eq!(
                truth_after.get(&k),
                truth_before.get(&k),
                "{k}: same date, sender, body, reactions"
            );
            checked += 1;
        }
        let have = e.messages(&new, &now[ch]).await;
        let want: HashSet<_> = msgs.iter().map(key).collect();
        assert_eq!(have, want, "channel {ch}");
        // Reactions: each restored message has its original's, by the same
        // users at the same times.
        let mut restored: HashMap<(i64, String, String), Value> = HashMap::new();
        for m in e
            .all(&format!(
                "/teams/{new}/channels/{}/messages?$expand=replies",
                now[ch]
            ))
            .await
        {
            for x in std::iter::once(&m).chain(m["replies"].as_array().into_iter().flatten()) {
                restored.insert(key(x), x.clone());
            }
        }
        for m in msgs {
            let back = &restored[&key(m)];
            assert_eq!(reactions(back), reactions(m), "reactions of {}", m["id"]);
            if !reactions(m).is_empty() {
                reacted += 1;
            }
        }
    }
    assert!(checked > 10, "the team had messages ({checked})");
    assert!(reacted > 0, "some restored messages had reactions");
    for c in now.values() {
        let ch = e.get(&format!("/teams/{new}/channels/{c}")).await;
        assert_ne!(ch["migrationMode"], json!("inProgress"), "{ch}");
    }
    assert_eq!(
        ids(&e.all(&format!("/groups/{new}/members")).await),
        members
    );
    assert_eq!(ids(&e.all(&format!("/groups/{new}/owners")).await), owners);
}

#[tokio::test]
async fn non_destructive_restores_channels_beside_the_originals() {
    let e = env(tenant(73)).await;
    let team = e.first(GroupKind::Team).await;
    let snap = e.backup(&team, true).await;
    let before = channels(&e, &team).await;
    let wanted = snapshot_messages(&e, &snap).await;
    let mut counts = HashMap::new();
    for (n, id) in &before {
        counts.insert(n.clone(), e.messages(&team, id).await.len());
    }
    let (r, _) = e
        .restore(
            &snap,
            RestoreMode::NonDestructive,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.failed, 0);
    assert_eq!(r.containers_created as usize, before.len());
    let after = channels(&e, &team).await;
    for (n, id) in &before {
        assert_eq!(
            e.messages(&team, id).await.len(),
            counts[n],
            "{n} untouched"
        );
        let copy = after
            .iter()
            .find(|(a, _)| a.starts_with(&format!("{n} (Restored ")))
            .unwrap_or_else(|| panic!("a restored copy of {n}"));
        let want: HashSet<_> = wanted[n].iter().map(key).collect();
        assert_eq!(e.messages(&team, copy.1).await, want, "{n}");
    }
}

#[tokio::test]
async fn group_restores_only_into_a_group_and_team_only_into_a_team() {
    let e = env(tenant(74)).await;
    let group = e.first(GroupKind::Group).await;
    let team = e.first(GroupKind::Team).await;
    let gsnap = e.backup(&group, false).await;
    let tsnap = e.backup(&team, true).await;
    let err = e
        .restore(
            &gsnap,
            RestoreMode::Bypass,
            Some(&team),
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("restores only into a group"),
        "{err}"
    );
    let err = e
        .restore(
            &tsnap,
            RestoreMode::Bypass,
            Some(&group),
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("restores only into a team"),
        "{err}"
    );
}

#[tokio::test]
async fn group_restore_brings_back_threads_events_members_and_name() {
    let e = env(tenant(75)).await;
    let group = e.first(GroupKind::Group).await;
    let snap = e.backup(&group, false).await;
    let name = e.get(&format!("/groups/{group}")).await["displayName"].clone();
    let members = ids(&e.all(&format!("/groups/{group}/members")).await);
    let owners = ids(&e.all(&format!("/groups/{group}/owners")).await);
    let threads = e.all(&format!("/groups/{group}/threads")).await;
    let topics: HashSet<String> = threads
        .iter()
        .map(|t| t["topic"].as_str().unwrap().to_string())
        .collect();
    for t in &threads {
        e.send(
            reqwest::Method::DELETE,
            &format!("/groups/{group}/threads/{}", t["id"].as_str().unwrap()),
            json!(null),
        )
        .await;
    }
    let events = e.all(&format!("/groups/{group}/events?$top=100")).await;
    for ev in events.iter().take(3) {
        e.send(
            reqwest::Method::DELETE,
            &format!("/groups/{group}/events/{}", ev["id"].as_str().unwrap()),
            json!(null),
        )
        .await;
    }
    let member = members
        .iter()
        .find(|m| !owners.contains(*m))
        .unwrap()
        .clone();
    e.send(
        reqwest::Method::DELETE,
        &format!("/groups/{group}/members/{member}/$ref"),
        json!(null),
    )
    .await;
    e.send(
        reqwest::Method::PATCH,
        &format!("/groups/{group}"),
        json!({"displayName": "Wrong"}),
    )
    .await;

    let (r, _) = e
        .restore(
            &snap,
            RestoreMode::Replace,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.failed, 0);
    assert_eq!(
        e.get(&format!("/groups/{group}")).await["displayName"],
        name
    );
    assert!(ids(&e.all(&format!("/groups/{group}/members")).await).contains(&member));
    let now: HashSet<String> = e
        .all(&format!("/groups/{group}/threads"))
        .await
        .iter()
        .map(|t| t["topic"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(now, topics, "every thread is back");
    let events_now = e.all(&format!("/groups/{group}/events?$top=100")).await;
    for ev in events.iter().take(3) {
        assert!(
            events_now
                .iter()
                .any(|x| x["subject"] == ev["subject"] && x["start"] == ev["start"]),
            "event {} is back",
            ev["subject"]
        );
    }
    assert_eq!(events_now.len(), events.len(), "no event duplicated");
}

#[tokio::test]
async fn cancel_mid_restore_leaves_whole_items_and_completed_channels() {
    let e = env(tenant(76)).await;
    let team = e.first(GroupKind::Team).await;
    let snap = e.backup(&team, true).await;
    let before = channels(&e, &team).await;
    let cancel = Cancel::new();
    let progress = CancelAfter {
        cancel: &cancel,
        after: 5,
        done: Default::default(),
    };
    let (r, log) = e
        .restore(&snap, RestoreMode::NonDestructive, None, &progress, &cancel)
        .await
        .unwrap();
    assert!(r.cancelled);
    assert_eq!(r.outcome(), Outcome::Cancelled);
    let total: usize = snapshot_messages(&e, &snap)
        .await
        .values()
        .map(Vec::len)
        .sum();
    assert!(
        log.len() < total,
        "stopped early ({} of {total})",
        log.len()
    );
    assert_eq!(log.len(), 5, "no item after the cancel");
    // Every channel left its migration; what was logged restored is there.
    let after = channels(&e, &team).await;
    let mut in_new_channels = 0;
    for (n, id) in &after {
        let ch = e.get(&format!("/teams/{team}/channels/{id}")).await;
        assert_ne!(
            ch["migrationMode"],
            json!("inProgress"),
            "{n} left in migration"
        );
        if !before.contains_key(n) {
            in_new_channels += e.messages(&team, id).await.len();
        }
    }
    let restored = log
        .iter()
        .filter(|l| l.outcome == ItemOutcome::Restored)
        .count();
    assert_eq!(in_new_channels, restored);
}

#[tokio::test]
async fn private_channel_members_removed_since_the_backup_are_added_back() {
    let e = env(tenant(77)).await;
    // A team with a private channel, and two team members outside it.
    let mut found = None;
    for g in discover_groups(&e.graph).await.unwrap() {
        if g.kind != GroupKind::Team {
            continue;
        }
        let team = g.graph_id;
        let group_members = ids(&e.all(&format!("/groups/{team}/members")).await);
        let group_owners = ids(&e.all(&format!("/groups/{team}/owners")).await);
        for c in e.all(&format!("/teams/{team}/channels")).await {
            if c["membershipType"] != "private" {
                continue;
            }
            let cid = c["id"].as_str().unwrap().to_string();
            let members = e
                .all(&format!("/teams/{team}/channels/{cid}/members"))
                .await;
            let inside: HashSet<String> = members
                .iter()
                .map(|m| m["userId"].as_str().unwrap().to_string())
                .collect();
            let plain: Vec<String> = members
                .iter()
                .filter(|m| m["roles"] == json!([]))
                .map(|m| m["userId"].as_str().unwrap().to_string())
                .filter(|u| !group_owners.contains(u))
                .collect();
            let outside: Vec<String> = group_members.difference(&inside).cloned().collect();
            if plain.len() >= 3 && outside.len() >= 2 {
                found = Some((team.clone(), cid, plain, outside));
                break;
            }
        }
        if found.is_some() {
            break;
        }
    }
    let (team, cid, plain, outside) = found.expect("a team with a suitable private channel");
    let (plain, gone, promoted) = (plain[0].clone(), plain[1].clone(), plain[2].clone());
    let (extra_owner, added_later) = (outside[0].clone(), outside[1].clone());
    let members_url = format!("/teams/{team}/channels/{cid}/members");
    let bind = |uid: &str, roles: Value| {
        json!({
            "@odata.type": "#microsoft.graph.aadUserConversationMember",
            "roles": roles,
            "user@odata.bind": format!("https://graph.microsoft.com/v1.0/users('{uid}')"),
        })
    };
    e.send(
        reqwest::Method::POST,
        &members_url,
        bind(&extra_owner, json!(["owner"])),
    )
    .await;
    let snap = e.backup(&team, true).await;
    let roles_before: HashMap<String, Value> = e
        .all(&members_url)
        .await
        .iter()
        .map(|m| {
            (
                m["userId"].as_str().unwrap().to_string(),
                m["roles"].clone(),
            )
        })
        .collect();

    // After the backup: the extra owner is removed from the channel, a
    // plain member leaves the team (and with it the private channel),
    // another is deleted from the directory, and someone new joins the
    // channel.
    let member_id = |m: &Vec<Value>, uid: &str| {
        m.iter()
            .find(|x| x["userId"] == uid)
            .map(|x| x["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let now = e.all(&members_url).await;
    e.send(
        reqwest::Method::DELETE,
        &format!("{members_url}/{}", member_id(&now, &extra_owner)),
        json!(null),
    )
    .await;
    e.send(
        reqwest::Method::DELETE,
        &format!("/groups/{team}/members/{plain}/$ref"),
        json!(null),
    )
    .await;
    e.send(
        reqwest::Method::DELETE,
        &format!("/users/{gone}"),
        json!(null),
    )
    .await;
    e.send(
        reqwest::Method::POST,
        &members_url,
        bind(&added_later, json!([])),
    )
    .await;
    // And a member is made an owner of the channel.
    e.send(
        reqwest::Method::PATCH,
        &format!("{members_url}/{}", member_id(&now, &promoted)),
        json!({"@odata.type": "#microsoft.graph.aadUserConversationMember", "roles": ["owner"]}),
    )
    .await;
    let now_roles = e.all(&members_url).await;
    assert_eq!(
        now_roles
            .iter()
            .find(|m| m["userId"] == promoted.as_str())
            .unwrap()["roles"],
        json!(["owner"])
    );
    let now: HashSet<String> = e
        .all(&members_url)
        .await
        .iter()
        .map(|m| m["userId"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !now.contains(&extra_owner) && !now.contains(&plain) && !now.contains(&gone),
        "{now:?}"
    );

    let (r, log) = e
        .restore(
            &snap,
            RestoreMode::Replace,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap();
    // Only the deleted user's group membership fails; the channel skips them.
    let failed: Vec<_> = log
        .iter()
        .filter(|l| l.outcome == ItemOutcome::Failed)
        .collect();
    assert!(
        failed
            .iter()
            .all(|l| l.path == format!("metadata/members/{gone}")
                || l.path == format!("metadata/owners/{gone}")),
        "{failed:?}"
    );
    assert_eq!(r.failed as usize, failed.len());
    let gone_item = log
        .iter()
        .find(|l| l.path == format!("metadata/channels/{cid}/members/{gone}"))
        .expect("an item for the deleted user");
    assert_eq!(gone_item.outcome, ItemOutcome::Skipped);
    assert!(
        gone_item
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("no longer exists")),
        "{gone_item:?}"
    );
    let after: HashMap<String, Value> = e
        .all(&members_url)
        .await
        .iter()
        .map(|m| {
            (
                m["userId"].as_str().unwrap().to_string(),
                m["roles"].clone(),
            )
        })
        .collect();
    assert_eq!(
        after.get(&extra_owner),
        Some(&json!(["owner"])),
        "the owner is back"
    );
    assert_eq!(after.get(&plain), Some(&json!([])), "the member is back");
    assert_eq!(
        after.get(&added_later),
        Some(&json!([])),
        "the newcomer stays"
    );
    for (uid, roles) in roles_before.iter().filter(|(u, _)| **u != gone) {
        assert_eq!(after.get(uid), Some(roles), "{uid} as at the backup");
    }
    assert!(!after.contains_key(&gone));
    assert_eq!(after.len(), roles_before.len(), "one newcomer, one deleted");
    assert!(ids(&e.all(&format!("/groups/{team}/members")).await).contains(&plain));
    for uid in [&extra_owner, &plain] {
        let path = format!("metadata/channels/{cid}/members/{uid}");
        let item = log
            .iter()
            .find(|l| l.path == path)
            .unwrap_or_else(|| panic!("an item for {path}"));
        assert_eq!(item.outcome, ItemOutcome::Restored, "{item:?}");
    }
    let skipped = log
        .iter()
        .filter(|l| {
            l.path
                .starts_with(&format!("metadata/channels/{cid}/members/"))
        })
        .filter(|l| l.outcome == ItemOutcome::Skipped)
        .count();
    assert_eq!(skipped, roles_before.len() - 3, "the others were there");
    let item = log
        .iter()
        .find(|l| l.path == format!("metadata/channels/{cid}/members/{promoted}"))
        .expect("an item for the promoted member");
    assert_eq!(item.outcome, ItemOutcome::Overwritten, "{item:?}");

    // Bypass finds everyone there: nothing added twice.
    let (again, log) = e
        .restore(
            &snap,
            RestoreMode::Bypass,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(again.failed, r.failed, "the deleted user again");
    assert!(
        !log.iter().any(|l| l.path.starts_with("metadata/channels/")
            && l.outcome == ItemOutcome::Restored),
        "nothing restored twice"
    );
}

/// The occurrences of a group series in July 2026, by date.
async fn group_instances(e: &Env, group: &str, id: &str) -> HashMap<String, Value> {
    e.all(&format!(
        "/groups/{group}/events/{id}/instances?startDateTime=2026-07-01T00:00:00Z\
         &endDateTime=2026-07-12T00:00:00Z"
    ))
    .await
    .into_iter()
    .map(|i| {
        (
            i["start"]["dateTime"].as_str().unwrap()[..10].to_string(),
            i,
        )
    })
    .collect()
}

fn sorted_days(days: &HashMap<String, Value>) -> Vec<String> {
    let mut d: Vec<String> = days.keys().cloned().collect();
    d.sort();
    d
}

#[tokio::test]
async fn group_calendar_series_come_back_with_their_changed_and_cancelled_occurrences() {
    let e = env(tenant(76)).await;
    let group = e.first(GroupKind::Group).await;
    let mut series = Vec::new();
    for subject in ["Sprint review", "Office hours"] {
        let v: Value = e
            .graph
            .send(Request::json(
                reqwest::Method::POST,
                format!("/groups/{group}/events"),
                &json!({
                    "subject": subject,
                    "start": {"dateTime": "2026-07-01T14:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2026-07-01T15:00:00", "timeZone": "UTC"},
                    "recurrence": {
                        "pattern": {"type": "daily", "interval": 1},
                        "range": {"type": "numbered", "startDate": "2026-07-01", "numberOfOccurrences": 6}
                    }
                }),
            ))
            .await
            .unwrap()
            .json()
            .unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        let days = group_instances(&e, &group, &id).await;
        assert_eq!(days.len(), 6);
        e.send(
            reqwest::Method::PATCH,
            &format!(
                "/groups/{group}/events/{}",
                days["2026-07-02"]["id"].as_str().unwrap()
            ),
            json!({"subject": format!("{subject} (moved room)")}),
        )
        .await;
        e.send(
            reqwest::Method::DELETE,
            &format!(
                "/groups/{group}/events/{}",
                days["2026-07-03"]["id"].as_str().unwrap()
            ),
            json!(null),
        )
        .await;
        series.push((subject, id));
    }
    let snap = e.backup(&group, false).await;
    let expected = [
        "2026-07-01",
        "2026-07-02",
        "2026-07-04",
        "2026-07-05",
        "2026-07-06",
    ];

    // One series is deleted, the other changed: an occurrence edited, another cancelled.
    e.send(
        reqwest::Method::DELETE,
        &format!("/groups/{group}/events/{}", series[0].1),
        json!(null),
    )
    .await;
    let days = group_instances(&e, &group, &series[1].1).await;
    e.send(
        reqwest::Method::PATCH,
        &format!(
            "/groups/{group}/events/{}",
            days["2026-07-04"]["id"].as_str().unwrap()
        ),
        json!({"subject": "Edited after the backup"}),
    )
    .await;
    e.send(
        reqwest::Method::DELETE,
        &format!(
            "/groups/{group}/events/{}",
            days["2026-07-05"]["id"].as_str().unwrap()
        ),
        json!(null),
    )
    .await;

    let (r, log) = e
        .restore(
            &snap,
            RestoreMode::Replace,
            None,
            &NoProgress,
            &Cancel::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.failed, 0, "{log:?}");
    let masters = e
        .all(&format!(
            "/groups/{group}/events?$top=200&$select=id,subject,type"
        ))
        .await;
    for (subject, _) in &series {
        let found: Vec<&Value> = masters
            .iter()
            .filter(|m| m["subject"] == json!(subject) && m["type"] == json!("seriesMaster"))
            .collect();
        assert_eq!(found.len(), 1, "{subject} once");
        let days = group_instances(&e, &group, found[0]["id"].as_str().unwrap()).await;
        assert_eq!(sorted_days(&days), expected, "{subject}");
        assert_eq!(
            days["2026-07-02"]["subject"],
            json!(format!("{subject} (moved room)")),
            "the changed occurrence of {subject}"
        );
        assert_eq!(days["2026-07-04"]["subject"], json!(subject));
    }
}
