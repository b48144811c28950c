//! Exchange restores against the tenant simulator: back up a generated
//! mailbox, destroy and change part of it, restore with each restore type,
//! and compare the destination item by item with what the snapshot held and
//! what the restore type promises.

use std::collections::{HashMap, HashSet};

use engine::exchange::{BackupOptions, DiscoveryOptions, MailboxBackup, MailboxKind};
use engine::exchange::{backup_mailbox, discover_mailboxes};
use engine::progress::CountingProgress;
use engine::restore::exchange::restore_mailbox;
use engine::restore::{
    ItemLogEntry, ItemOutcome, MemoryLog, RestoreCtx, RestoreLog, RestoreMode, RestoreOptions,
    RestoreReport, Selection,
};
use engine::{Cancel, EngineError};
use graph::Request;
use graph_sim::SimConfig;
use reqwest::Method;
use serde_json::{Value, json};
use vault::{SnapshotId, SnapshotInfo};

mod common;
use common::{Env, env};

fn small_tenant(users: u32, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(users, seed);
    cfg.content_scale = 0.3;
    cfg
}

async fn users(e: &Env) -> Vec<String> {
    discover_mailboxes(&e.graph, &DiscoveryOptions::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == MailboxKind::User && m.licensed && m.account_enabled)
        .map(|m| m.graph_id)
        .collect()
}

async fn backup(e: &Env, user: &str) -> SnapshotInfo {
    let r = backup_mailbox(MailboxBackup {
        graph: &e.graph,
        vault: &e.account,
        mailbox_id: user,
        parent: None,
        options: &BackupOptions::default(),
        progress: &CountingProgress::default(),
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .unwrap();
    let id: SnapshotId = r.snapshot_id.clone().unwrap();
    e.account.snapshot(&id).await.unwrap()
}

async fn get(e: &Env, url: &str) -> Value {
    e.graph
        .send(Request::get(url).header("Prefer", "IdType=\"ImmutableId\""))
        .await
        .unwrap()
        .json()
        .unwrap()
}

async fn get_all(e: &Env, url: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some(url.to_string());
    while let Some(u) = next.take() {
        let v = get(e, &u).await;
        out.extend(v["value"].as_array().cloned().unwrap_or_default());
        next = v["@odata.nextLink"].as_str().map(str::to_string);
    }
    out
}

async fn send(e: &Env, method: Method, url: &str, body: Value) -> Value {
    let r = e
        .graph
        .send(Request::json(method, url, &body).header("Prefer", "IdType=\"ImmutableId\""))
        .await
        .unwrap();
    if r.body.is_empty() {
        Value::Null
    } else {
        r.json().unwrap()
    }
}

async fn delete(e: &Env, url: &str) {
    e.graph.send(Request::delete(url)).await.unwrap();
}

struct Run {
    report: RestoreReport,
    log: Vec<ItemLogEntry>,
    progress: engine::progress::ProgressState,
}

async fn restore(
    e: &Env,
    snap: &SnapshotInfo,
    options: &RestoreOptions,
    selection: &Selection,
    dest: Option<&str>,
) -> Result<Run, EngineError> {
    restore_logged(
        e,
        snap,
        options,
        selection,
        dest,
        &MemoryLog::default(),
        &Cancel::new(),
    )
    .await
}

async fn restore_logged(
    e: &Env,
    snap: &SnapshotInfo,
    options: &RestoreOptions,
    selection: &Selection,
    dest: Option<&str>,
    log: &MemoryLog,
    cancel: &Cancel,
) -> Result<Run, EngineError> {
    let progress = CountingProgress::default();
    let ctx = RestoreCtx {
        graph: &e.graph,
        vault: &e.account,
        snapshot: snap,
        selection,
        options,
        destination: dest,
        progress: &progress,
        log,
        cancel,
    };
    let report = restore_mailbox(&ctx).await?;
    Ok(Run {
        report,
        log: log.entries(),
        progress: progress.snapshot(),
    })
}

/// Full display paths of folders given as id -> (display name, parent id).
fn folder_paths(folders: &HashMap<String, (String, String)>) -> HashMap<String, String> {
    folders
        .keys()
        .map(|id| {
            let mut parts = Vec::new();
            let mut cur = id;
            while let Some((name, parent)) = folders.get(cur) {
                parts.push(name.clone());
                cur = parent;
                if parts.len() > 32 {
                    break;
                }
            }
            parts.reverse();
            (id.clone(), parts.join("/"))
        })
        .collect()
}

/// Snapshot mail: internetMessageId -> (folder path, Graph JSON), visible
/// folders only.
async fn snapshot_mail(e: &Env, snap: &SnapshotInfo) -> HashMap<String, (String, Value)> {
    let mut out = HashMap::new();
    let mut seen = HashSet::new();
    let mut metas = HashMap::new();
    for f in e.account.list_folder(snap, "mail").await.unwrap() {
        let meta: Value = serde_json::from_slice(f.node.meta()).unwrap();
        metas.insert(f.name.clone(), meta);
    }
    let tree: HashMap<String, (String, String)> = metas
        .iter()
        .map(|(id, m)| {
            (
                id.clone(),
                (
                    m["displayName"].as_str().unwrap_or_default().to_string(),
                    m["parentFolderId"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect();
    let paths = folder_paths(&tree);
    for (id, meta) in &metas {
        if meta["isHidden"] == json!(true) || meta.get("wellKnownName").is_some() {
            continue;
        }
        for m in e
            .account
            .list_folder(snap, &format!("mail/{id}"))
            .await
            .unwrap()
        {
            let v: Value = serde_json::from_slice(m.node.meta()).unwrap();
            let imid = v["internetMessageId"].as_str().unwrap().to_string();
            assert!(seen.insert(imid.clone()), "{imid} twice in the snapshot");
            out.insert(imid, (paths[id].clone(), v));
        }
    }
    out
}

/// Every mail folder of a mailbox (recursively): id -> (display name, parent id).
async fn mail_folders(e: &Env, user: &str) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    let mut todo = vec![format!("/users/{user}/mailFolders?$top=250")];
    while let Some(url) = todo.pop() {
        for f in get_all(e, &url).await {
            let id = f["id"].as_str().unwrap().to_string();
            todo.push(format!(
                "/users/{user}/mailFolders/{id}/childFolders?$top=250"
            ));
            out.insert(
                id,
                (
                    f["displayName"].as_str().unwrap_or_default().to_string(),
                    f["parentFolderId"].as_str().unwrap_or_default().to_string(),
                ),
            );
        }
    }
    out
}

const MSG_SELECT: &str = "id,subject,internetMessageId,receivedDateTime,sentDateTime,isRead,\
isDraft,flag,categories,parentFolderId,hasAttachments";

/// The messages of one folder.
async fn folder_messages(e: &Env, user: &str, folder: &str) -> Vec<Value> {
    get_all(
        e,
        &format!("/users/{user}/mailFolders/{folder}/messages?$select={MSG_SELECT}&$top=500"),
    )
    .await
}

/// Every visible message of a mailbox: (folder path, imid) -> JSON.
async fn mailbox_mail(e: &Env, user: &str) -> HashMap<(String, String), Vec<Value>> {
    let folders = mail_folders(e, user).await;
    let paths = folder_paths(&folders);
    let mut out: HashMap<(String, String), Vec<Value>> = HashMap::new();
    for id in folders.keys() {
        for m in folder_messages(e, user, id).await {
            let key = (
                paths[id].clone(),
                m["internetMessageId"].as_str().unwrap().to_string(),
            );
            out.entry(key).or_default().push(m);
        }
    }
    out
}

fn time_of(v: &Value) -> Option<i64> {
    v.as_str()
        .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp())
}

/// A restored message has the snapshot message's dates, read state, flag
/// and draft state.
fn assert_same_message(restored: &Value, snap: &Value) {
    let what = snap["subject"].as_str().unwrap_or_default();
    assert_eq!(
        restored["isDraft"], snap["isDraft"],
        "draft state of {what}"
    );
    if snap["isDraft"] != json!(true) {
        assert_eq!(restored["isDraft"], json!(false), "{what} is not a draft");
    }
    assert_eq!(restored["isRead"], snap["isRead"], "read state of {what}");
    assert_eq!(
        restored["flag"]["flagStatus"], snap["flag"]["flagStatus"],
        "flag of {what}"
    );
    assert_eq!(
        time_of(&restored["receivedDateTime"]),
        time_of(&snap["receivedDateTime"]),
        "received date of {what}"
    );
    if snap["isDraft"] != json!(true) {
        assert_eq!(
            time_of(&restored["sentDateTime"]),
            time_of(&snap["sentDateTime"]),
            "sent date of {what}"
        );
    }
    assert_eq!(restored["subject"], snap["subject"]);
}

fn failures(log: &[ItemLogEntry]) -> Vec<&ItemLogEntry> {
    log.iter()
        .filter(|l| l.outcome == ItemOutcome::Failed)
        .collect()
}

fn count(log: &[ItemLogEntry], outcome: ItemOutcome) -> usize {
    log.iter().filter(|l| l.outcome == outcome).count()
}

/// What the test destroys and changes after the backup.
struct Damage {
    deleted_mail: Vec<String>,
    changed_mail: Vec<(String, bool)>,
    deleted_folder_mail: Vec<String>,
    deleted_contact: String,
    changed_contact: (String, String),
    deleted_task: String,
    deleted_event: String,
}

async fn damage(e: &Env, user: &str, projects: &str) -> Damage {
    let inbox = folder_messages(e, user, "inbox").await;
    assert!(inbox.len() >= 6, "the inbox has mail");
    let mut deleted_mail = Vec::new();
    for m in &inbox[..3] {
        delete(
            e,
            &format!("/users/{user}/messages/{}", m["id"].as_str().unwrap()),
        )
        .await;
        deleted_mail.push(m["internetMessageId"].as_str().unwrap().to_string());
    }
    let mut changed_mail = Vec::new();
    for m in &inbox[3..5] {
        let now_read = !m["isRead"].as_bool().unwrap();
        send(
            e,
            Method::PATCH,
            &format!("/users/{user}/messages/{}", m["id"].as_str().unwrap()),
            json!({"isRead": now_read, "flag": {"flagStatus": "flagged"}}),
        )
        .await;
        changed_mail.push((
            m["internetMessageId"].as_str().unwrap().to_string(),
            now_read,
        ));
    }
    let deleted_folder_mail = folder_messages(e, user, projects)
        .await
        .iter()
        .map(|m| m["internetMessageId"].as_str().unwrap().to_string())
        .collect();
    delete(e, &format!("/users/{user}/mailFolders/{projects}")).await;

    let contacts = get_all(e, &format!("/users/{user}/contacts?$top=100")).await;
    assert!(contacts.len() >= 2, "the mailbox has contacts");
    let deleted_contact = contacts[0]["displayName"].as_str().unwrap().to_string();
    delete(
        e,
        &format!(
            "/users/{user}/contacts/{}",
            contacts[0]["id"].as_str().unwrap()
        ),
    )
    .await;
    let cid = contacts[1]["id"].as_str().unwrap().to_string();
    send(
        e,
        Method::PATCH,
        &format!("/users/{user}/contacts/{cid}"),
        json!({"jobTitle": "Changed by the test"}),
    )
    .await;
    let changed_contact = (
        cid,
        contacts[1]["jobTitle"].as_str().unwrap_or("").to_string(),
    );

    let lists = get_all(e, &format!("/users/{user}/todo/lists")).await;
    let mut deleted_task = String::new();
    for l in &lists {
        let lid = l["id"].as_str().unwrap();
        let tasks = get_all(e, &format!("/users/{user}/todo/lists/{lid}/tasks")).await;
        if let Some(t) = tasks.first() {
            deleted_task = t["title"].as_str().unwrap().to_string();
            delete(
                e,
                &format!(
                    "/users/{user}/todo/lists/{lid}/tasks/{}",
                    t["id"].as_str().unwrap()
                ),
            )
            .await;
            break;
        }
    }
    assert!(!deleted_task.is_empty(), "the mailbox has tasks");

    let events = get_all(
        e,
        &format!("/users/{user}/calendar/events?$top=100&$select=id,subject,type,recurrence"),
    )
    .await;
    let ev = events
        .iter()
        .find(|v| v["type"] == json!("singleInstance"))
        .expect("a single event");
    let deleted_event = ev["subject"].as_str().unwrap().to_string();
    delete(
        e,
        &format!("/users/{user}/events/{}", ev["id"].as_str().unwrap()),
    )
    .await;
    Damage {
        deleted_mail,
        changed_mail,
        deleted_folder_mail,
        deleted_contact,
        changed_contact,
        deleted_task,
        deleted_event,
    }
}

/// A user with a folder of their own holding two messages, and its backup.
async fn prepared(seed: u64) -> (Env, String, String, SnapshotInfo) {
    let e = env(small_tenant(6, seed)).await;
    let user = users(&e).await[0].clone();
    let projects = send(
        &e,
        Method::POST,
        &format!("/users/{user}/mailFolders"),
        json!({"displayName": "Projects"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let inbox = folder_messages(&e, &user, "inbox").await;
    for m in &inbox[inbox.len() - 2..] {
        send(
            &e,
            Method::POST,
            &format!("/users/{user}/messages/{}/move", m["id"].as_str().unwrap()),
            json!({"destinationId": projects}),
        )
        .await;
    }
    let snap = backup(&e, &user).await;
    (e, user, projects, snap)
}

#[tokio::test]
async fn bypass_then_replace_bring_back_what_was_deleted_and_treat_changes_as_promised() {
    let (e, user, projects, snap) = prepared(501).await;
    let in_snapshot = snapshot_mail(&e, &snap).await;
    let d = damage(&e, &user, &projects).await;

    // Bypass: deleted items come back, changed ones are left alone.
    let run = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::Bypass),
        &Selection::everything(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    let now = mailbox_mail(&e, &user).await;
    for imid in d.deleted_mail.iter().chain(&d.deleted_folder_mail) {
        let (folder, snap_msg) = &in_snapshot[imid];
        let back = now
            .get(&(folder.clone(), imid.clone()))
            .unwrap_or_else(|| panic!("{imid} back in {folder}"));
        assert_eq!(back.len(), 1, "{imid} restored once");
        assert_same_message(&back[0], snap_msg);
    }
    for (imid, read) in &d.changed_mail {
        let m = &now[&("Inbox".to_string(), imid.clone())];
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0]["isRead"],
            json!(*read),
            "bypass leaves a changed message alone"
        );
        assert_eq!(m[0]["flag"]["flagStatus"], json!("flagged"));
    }
    // Nothing doubled: every snapshot message is there exactly once.
    for (imid, (folder, _)) in &in_snapshot {
        let n = now.get(&(folder.clone(), imid.clone())).map_or(0, Vec::len);
        assert_eq!(n, 1, "{imid} in {folder}");
    }
    let contacts = get_all(&e, &format!("/users/{user}/contacts?$top=200")).await;
    assert_eq!(
        contacts
            .iter()
            .filter(|c| c["displayName"] == json!(d.deleted_contact))
            .count(),
        1,
        "the deleted contact is back once"
    );
    let changed = get(
        &e,
        &format!("/users/{user}/contacts/{}", d.changed_contact.0),
    )
    .await;
    assert_eq!(changed["jobTitle"], json!("Changed by the test"));
    let events = get_all(&e, &format!("/users/{user}/calendar/events?$top=200")).await;
    assert!(
        events
            .iter()
            .any(|v| v["subject"] == json!(d.deleted_event)),
        "the deleted event is back"
    );
    let mut titles = Vec::new();
    for l in get_all(&e, &format!("/users/{user}/todo/lists")).await {
        let lid = l["id"].as_str().unwrap();
        for t in get_all(&e, &format!("/users/{user}/todo/lists/{lid}/tasks")).await {
            titles.push(t["title"].as_str().unwrap().to_string());
        }
    }
    assert!(titles.contains(&d.deleted_task), "the deleted task is back");
    assert!(run.report.skipped > 0 && run.report.restored >= 7);

    // Replace: changed items get the snapshot's version.
    let run = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::Replace),
        &Selection::everything(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    assert!(run.report.overwritten > 0);
    let now = mailbox_mail(&e, &user).await;
    for (imid, (folder, snap_msg)) in &in_snapshot {
        let m = now
            .get(&(folder.clone(), imid.clone()))
            .unwrap_or_else(|| panic!("{imid} in {folder}"));
        assert_eq!(m.len(), 1, "{imid} once in {folder}");
        assert_eq!(
            m[0]["isRead"], snap_msg["isRead"],
            "replace restores read state"
        );
        assert_eq!(
            m[0]["flag"]["flagStatus"], snap_msg["flag"]["flagStatus"],
            "replace restores the flag"
        );
    }
    let changed = get(
        &e,
        &format!("/users/{user}/contacts/{}", d.changed_contact.0),
    )
    .await;
    assert_eq!(
        changed["jobTitle"].as_str().unwrap_or(""),
        d.changed_contact.1
    );
}

#[tokio::test]
async fn non_destructive_mirrors_the_snapshot_under_new_containers_and_touches_nothing() {
    let (e, user, projects, _) = prepared(502).await;
    // A daily series with one changed and one cancelled occurrence.
    let series = send(
        &e,
        Method::POST,
        &format!("/users/{user}/calendar/events"),
        json!({
            "subject": "Daily stand-up",
            "start": {"dateTime": "2026-06-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-06-01T09:15:00", "timeZone": "UTC"},
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2026-06-01", "numberOfOccurrences": 5}
            }
        }),
    )
    .await;
    let sid = series["id"].as_str().unwrap().to_string();
    let occurrences = get_all(
        &e,
        &format!(
            "/users/{user}/events/{sid}/instances?startDateTime=2026-06-01T00:00:00Z\
             &endDateTime=2026-06-06T00:00:00Z"
        ),
    )
    .await;
    assert_eq!(occurrences.len(), 5);
    send(
        &e,
        Method::PATCH,
        &format!("/users/{user}/events/{}", occurrences[1]["id"].as_str().unwrap()),
        json!({"subject": "Stand-up moved", "start": {"dateTime": "2026-06-02T10:00:00", "timeZone": "UTC"},
               "end": {"dateTime": "2026-06-02T10:15:00", "timeZone": "UTC"}}),
    )
    .await;
    delete(
        &e,
        &format!(
            "/users/{user}/events/{}",
            occurrences[3]["id"].as_str().unwrap()
        ),
    )
    .await;
    let snap = backup(&e, &user).await;
    let in_snapshot = snapshot_mail(&e, &snap).await;
    damage(&e, &user, &projects).await;
    let before = mailbox_mail(&e, &user).await;
    let mut options = RestoreOptions::new(RestoreMode::NonDestructive);
    options.tag = Some("Restored by Lifeboat".into());
    options.mark_restored = true;
    let run = restore(&e, &snap, &options, &Selection::everything(), None)
        .await
        .unwrap();
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    // Progress: every item found and counted once, every byte written.
    let p = &run.progress;
    let items = run.report.restored + run.report.overwritten + run.report.skipped;
    assert_eq!(p.done_items, items, "{p:?}");
    assert!(p.total_items >= p.done_items, "{p:?}");
    assert_eq!(
        run.report.skipped, 0,
        "an empty restore folder skips nothing"
    );
    assert!(p.total_bytes > 0 && p.done_bytes == p.total_bytes, "{p:?}");
    assert_eq!(p.done_bytes, run.report.bytes);
    let root_name = format!("{} (Restored)", options.restore_folder_name());
    assert_eq!(
        run.report.location.as_deref(),
        Some(options.restore_folder_name().as_str())
    );

    // Mail: one new top-level folder, the structure below it.
    let folders = mail_folders(&e, &user).await;
    let root = folders
        .iter()
        .find(|(_, (n, _))| *n == root_name)
        .map(|(id, _)| id.clone())
        .expect("the restore folder");
    let below: HashSet<&String> = {
        let mut set = HashSet::from([&root]);
        loop {
            let more: Vec<&String> = folders
                .iter()
                .filter(|(id, (_, p))| set.contains(p) && !set.contains(id))
                .map(|(id, _)| id)
                .collect();
            if more.is_empty() {
                break;
            }
            set.extend(more);
        }
        set
    };
    let names: HashSet<&str> = below.iter().map(|id| folders[*id].0.as_str()).collect();
    assert!(names.contains("Inbox (Restored)"), "{names:?}");
    assert!(names.contains("Projects (Restored)"), "{names:?}");
    let paths = folder_paths(&folders);
    let mut restored = HashMap::new();
    for id in &below {
        for m in folder_messages(&e, &user, id).await {
            let name = paths[*id]
                .strip_prefix(&format!("{root_name}/"))
                .unwrap_or_default()
                .split('/')
                .map(|p| p.trim_end_matches(" (Restored)"))
                .collect::<Vec<_>>()
                .join("/");
            restored.insert(
                (name, m["internetMessageId"].as_str().unwrap().to_string()),
                m,
            );
        }
    }
    assert_eq!(restored.len(), in_snapshot.len(), "every message, once");
    for (imid, (folder, snap_msg)) in &in_snapshot {
        let m = &restored[&(folder.clone(), imid.clone())];
        assert_same_message(m, snap_msg);
        assert!(
            m["categories"]
                .as_array()
                .unwrap()
                .contains(&json!("Restored by Lifeboat")),
            "tagged"
        );
    }
    // Originals untouched: everything outside the restore folder is as before.
    let after = mailbox_mail(&e, &user).await;
    let outside: HashMap<_, _> = after
        .into_iter()
        .filter(|(_, v)| !below.contains(&v[0]["parentFolderId"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(outside.len(), before.len());
    for (k, v) in &before {
        assert_eq!(outside[k][0]["isRead"], v[0]["isRead"], "{k:?} untouched");
    }

    // Contacts, calendar and To Do: one new container each.
    let cf = get_all(&e, &format!("/users/{user}/contactFolders")).await;
    let cf = cf
        .iter()
        .find(|f| f["displayName"] == json!(root_name))
        .expect("restore contact folder");
    assert!(!cf["id"].as_str().unwrap().is_empty());
    let cals = get_all(&e, &format!("/users/{user}/calendars")).await;
    let cal = cals
        .iter()
        .find(|c| c["name"] == json!(root_name))
        .expect("restore calendar");
    let cal_id = cal["id"].as_str().unwrap();
    let restored_events = get_all(
        &e,
        &format!("/users/{user}/calendars/{cal_id}/events?$top=500&$expand=exceptionOccurrences"),
    )
    .await;
    let mut snap_events = Vec::new();
    for c in e.account.list_folder(&snap, "calendar").await.unwrap() {
        for ev in e
            .account
            .list_folder(&snap, &format!("calendar/{}", c.name))
            .await
            .unwrap()
        {
            let v: Value = serde_json::from_slice(
                &e.account
                    .read_item_bytes(&snap, &format!("calendar/{}/{}", c.name, ev.name))
                    .await
                    .unwrap(),
            )
            .unwrap();
            snap_events.push(v);
        }
    }
    assert_eq!(restored_events.len(), snap_events.len());
    let n = |v: &Value| v["exceptionOccurrences"].as_array().map_or(0, Vec::len);
    assert!(
        snap_events.iter().any(|s| n(s) > 0),
        "the mailbox has series with exceptions"
    );
    for s in &snap_events {
        let r = restored_events
            .iter()
            .find(|r| r["subject"] == s["subject"] && r["start"] == s["start"])
            .unwrap_or_else(|| panic!("event {} restored", s["subject"]));
        assert_eq!(r["recurrence"], s["recurrence"], "series kept");
        assert_eq!(n(r), n(s), "exceptions of {}", s["subject"]);
        assert!(
            r["attendees"].as_array().is_none_or(Vec::is_empty),
            "no attendees, so no invitations"
        );
    }
    // The series came back with its exception and without its cancelled day.
    let restored_series = restored_events
        .iter()
        .find(|r| r["subject"] == json!("Daily stand-up"))
        .unwrap();
    let rid = restored_series["id"].as_str().unwrap();
    let occ = get_all(
        &e,
        &format!(
            "/users/{user}/events/{rid}/instances?startDateTime=2026-06-01T00:00:00Z\
             &endDateTime=2026-06-06T00:00:00Z"
        ),
    )
    .await;
    assert_eq!(occ.len(), 4, "the cancelled occurrence stays cancelled");
    let moved = occ
        .iter()
        .find(|o| o["subject"] == json!("Stand-up moved"))
        .expect("the exception is restored");
    assert!(
        moved["start"]["dateTime"]
            .as_str()
            .unwrap()
            .starts_with("2026-06-02T10:00"),
        "{moved}"
    );
    let lists = get_all(&e, &format!("/users/{user}/todo/lists")).await;
    assert!(lists.iter().any(|l| l["displayName"] == json!(root_name)));
    let stats: Value = e
        .http
        .get(format!("{}/_sim/stats", e.sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        stats.to_string().find("pim:invitationsSent").is_none(),
        "no invitation was sent: {stats}"
    );
}

#[tokio::test]
async fn restores_into_another_mailbox_and_a_recreated_user() {
    let e = env(small_tenant(6, 503)).await;
    let all = users(&e).await;
    let (user, other) = (all[0].clone(), all[1].clone());
    let snap = backup(&e, &user).await;
    let in_snapshot = snapshot_mail(&e, &snap).await;

    // Another mailbox (bypass): the messages land in its well-known folders.
    let run = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::Bypass),
        &Selection {
            sub_services: vec![engine::report::SubService::Mail],
            ..Default::default()
        },
        Some(&other),
    )
    .await
    .unwrap();
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    let now = mailbox_mail(&e, &other).await;
    for (imid, (folder, snap_msg)) in &in_snapshot {
        let m = now
            .get(&(folder.clone(), imid.clone()))
            .unwrap_or_else(|| panic!("{imid} in {folder} of the other mailbox"));
        assert_same_message(&m[0], snap_msg);
    }

    // The user is deleted: restoring into it is refused, into a re-created one works.
    e.control(&format!("/_sim/users/{user}/delete"), json!({}))
        .await;
    let err = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::Replace),
        &Selection::everything(),
        None,
    )
    .await
    .err()
    .expect("the mailbox is gone");
    assert!(matches!(err, EngineError::EntityGone(_)), "{err}");
    let created = send(
        &e,
        Method::POST,
        "/users",
        json!({"displayName": "Back Again", "userPrincipalName": "back.again@contoso.example",
               "accountEnabled": true}),
    )
    .await;
    let fresh = created["id"].as_str().unwrap().to_string();
    let run = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::Replace),
        &Selection::everything(),
        Some(&fresh),
    )
    .await
    .unwrap();
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    let now = mailbox_mail(&e, &fresh).await;
    for (imid, (folder, snap_msg)) in &in_snapshot {
        let m = now
            .get(&(folder.clone(), imid.clone()))
            .unwrap_or_else(|| panic!("{imid} in {folder} of the re-created mailbox"));
        assert_same_message(&m[0], snap_msg);
    }
    let contacts = get_all(&e, &format!("/users/{fresh}/contacts?$top=500")).await;
    assert!(
        !contacts.is_empty(),
        "contacts restored into the new mailbox"
    );
}

#[tokio::test]
async fn single_items_and_single_folders_restore_only_what_was_chosen() {
    let (e, user, projects, snap) = prepared(504).await;
    let projects_snap: Vec<String> = e
        .account
        .list_folder(&snap, &format!("mail/{projects}"))
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(projects_snap.len(), 2);
    let one = format!("mail/{projects}/{}", projects_snap[0]);
    let run = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::NonDestructive),
        &Selection {
            items: vec![one.clone()],
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(run.report.restored, 1, "{:?}", run.log);
    assert_eq!(run.log.len(), 1);
    assert_eq!(run.log[0].path, one);

    // A whole folder, after it was deleted (replace): exactly its messages come back.
    delete(&e, &format!("/users/{user}/mailFolders/{projects}")).await;
    let before = mail_folders(&e, &user).await;
    let run = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::Replace),
        &Selection {
            folders: vec![format!("mail/{projects}")],
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(run.report.restored, 2, "{:?}", run.log);
    assert_eq!(run.report.containers_created, 1);
    // The Projects folder the restore created (the mailbox also has a
    // generated Inbox/Projects, the deleted one in Deleted Items and the
    // non-destructive copy).
    let folders = mail_folders(&e, &user).await;
    let back: Vec<&String> = folders
        .iter()
        .filter(|(id, (n, _))| n == "Projects" && !before.contains_key(*id))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(back.len(), 1, "Projects is back once: {folders:?}");
    assert_eq!(folder_messages(&e, &user, back[0]).await.len(), 2);
}

/// Cancels after a few items.
struct CancelAfter<'a> {
    inner: MemoryLog,
    cancel: &'a Cancel,
    after: usize,
}

impl RestoreLog for CancelAfter<'_> {
    fn record(&self, entry: ItemLogEntry) {
        self.inner.record(entry);
        if self.inner.entries().len() >= self.after {
            self.cancel.cancel();
        }
    }
}

#[tokio::test]
async fn a_cancelled_restore_leaves_only_whole_items() {
    let e = env(small_tenant(6, 505)).await;
    let user = users(&e).await[0].clone();
    let snap = backup(&e, &user).await;
    let in_snapshot = snapshot_mail(&e, &snap).await;
    let cancel = Cancel::new();
    let log = CancelAfter {
        inner: MemoryLog::default(),
        cancel: &cancel,
        after: 5,
    };
    let options = RestoreOptions::new(RestoreMode::NonDestructive);
    let progress = CountingProgress::default();
    let selection = Selection::everything();
    let ctx = RestoreCtx {
        graph: &e.graph,
        vault: &e.account,
        snapshot: &snap,
        selection: &selection,
        options: &options,
        destination: None,
        progress: &progress,
        log: &log,
        cancel: &cancel,
    };
    let report = restore_mailbox(&ctx).await.unwrap();
    assert!(report.cancelled);
    let entries = log.inner.entries();
    assert!(entries.len() < in_snapshot.len(), "stopped early");
    // Every restored message exists whole (attachments and all); nothing else was written.
    let mut restored_ids = HashSet::new();
    for l in entries
        .iter()
        .filter(|l| l.outcome == ItemOutcome::Restored)
    {
        let id = l.detail.clone().unwrap();
        let m = get(
            &e,
            &format!("/users/{user}/messages/{id}?$select={MSG_SELECT}"),
        )
        .await;
        let imid = m["internetMessageId"].as_str().unwrap();
        let (_, s) = &in_snapshot[imid];
        assert_eq!(m["hasAttachments"], s["hasAttachments"], "{} whole", l.name);
        restored_ids.insert(id);
    }
    let folders = mail_folders(&e, &user).await;
    let root_name = options.restore_folder_name();
    let root = folders
        .iter()
        .find(|(_, (n, _))| *n == root_name)
        .map(|(id, _)| id.clone())
        .unwrap();
    let mut found = 0;
    for (id, (_, parent)) in &folders {
        if *parent == root {
            found += folder_messages(&e, &user, id).await.len();
        }
    }
    assert_eq!(found, restored_ids.len(), "only logged, whole items exist");
}

#[tokio::test]
async fn damaged_stored_items_fail_alone_and_duplicate_mode_is_refused() {
    let e = env(small_tenant(6, 506)).await;
    let user = users(&e).await[0].clone();
    let snap = backup(&e, &user).await;
    let folder = e.account.list_folder(&snap, "contacts").await.unwrap()[0]
        .name
        .clone();
    let good = e
        .account
        .list_folder(&snap, &format!("contacts/{folder}"))
        .await
        .unwrap()[0]
        .name
        .clone();
    // A snapshot holding one good contact and one whose stored JSON is cut off.
    let folder_node = e
        .account
        .lookup(&snap, &format!("contacts/{folder}"))
        .await
        .unwrap();
    let good_bytes = e
        .account
        .read_item_bytes(&snap, &format!("contacts/{folder}/{good}"))
        .await
        .unwrap();
    let writer = e.account.begin_snapshot(None).await.unwrap();
    writer.put_folder("contacts", b"{}".to_vec()).await.unwrap();
    writer
        .put_folder(&format!("contacts/{folder}"), folder_node.meta().to_vec())
        .await
        .unwrap();
    writer
        .put_bytes(
            &format!("contacts/{folder}/{good}"),
            b"{}".to_vec(),
            good_bytes,
        )
        .await
        .unwrap();
    writer
        .put_bytes(
            &format!("contacts/{folder}/damaged"),
            b"{}".to_vec(),
            b"{\"displayName\": \"half".to_vec(),
        )
        .await
        .unwrap();
    let id = writer.commit(snap.meta.clone()).await.unwrap();
    let damaged_snap = e.account.snapshot(&id).await.unwrap();
    let run = restore(
        &e,
        &damaged_snap,
        &RestoreOptions::new(RestoreMode::NonDestructive),
        &Selection {
            items: vec![
                format!("contacts/{folder}/damaged"),
                format!("contacts/{folder}/{good}"),
            ],
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(run.report.failed, 1, "{:?}", run.log);
    assert_eq!(run.report.restored, 1, "{:?}", run.log);
    let failed = run
        .log
        .iter()
        .find(|l| l.outcome == ItemOutcome::Failed)
        .unwrap();
    assert!(failed.detail.as_deref().unwrap().contains("damaged"));
    assert_eq!(count(&run.log, ItemOutcome::Restored), 1);

    let err = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::Duplicate),
        &Selection::everything(),
        None,
    )
    .await
    .err()
    .expect("duplicate is refused");
    assert!(matches!(err, EngineError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("duplicate"));
}

#[tokio::test]
async fn large_attachments_and_graph_draft_rules_survive_a_restore() {
    let e = env(small_tenant(6, 507)).await;
    let user = users(&e).await[0].clone();
    // The simulator keeps Graph's rules: a message created without
    // PR_MESSAGE_FLAGS is a draft, with it (no MSGFLAG_UNSENT) it is not,
    // and the flags cannot turn a draft into a sent message afterwards.
    let draft = send(
        &e,
        Method::POST,
        &format!("/users/{user}/mailFolders/inbox/messages"),
        json!({"subject": "no flags"}),
    )
    .await;
    assert_eq!(draft["isDraft"], json!(true));
    let patched = send(
        &e,
        Method::PATCH,
        &format!("/users/{user}/messages/{}", draft["id"].as_str().unwrap()),
        json!({"singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}]}),
    )
    .await;
    assert_eq!(
        patched["isDraft"],
        json!(true),
        "flags only count on create"
    );
    let received = send(
        &e,
        Method::POST,
        &format!("/users/{user}/mailFolders/inbox/messages"),
        json!({
            "subject": "Big attachment",
            "body": {"contentType": "text", "content": "see attached"},
            "singleValueExtendedProperties": [
                {"id": "Integer 0x0E07", "value": "1"},
                {"id": "SystemTime 0x0E06", "value": "2026-03-04T05:06:07Z"},
                {"id": "SystemTime 0x0039", "value": "2026-03-04T05:00:00Z"}
            ]
        }),
    )
    .await;
    assert_eq!(received["isDraft"], json!(false));
    let mid = received["id"].as_str().unwrap().to_string();
    // A 4.5 MB attachment, uploaded through an upload session.
    let data: Vec<u8> = (0..4_500_000u32).map(|i| (i % 251) as u8).collect();
    let session = send(
        &e,
        Method::POST,
        &format!("/users/{user}/messages/{mid}/attachments/createUploadSession"),
        json!({"AttachmentItem": {"attachmentType": "file", "name": "big.bin",
               "size": data.len(), "contentType": "application/octet-stream"}}),
    )
    .await;
    let url = session["uploadUrl"].as_str().unwrap();
    for (i, chunk) in data.chunks(3_276_800).enumerate() {
        let from = i * 3_276_800;
        let r = e
            .http
            .put(url)
            .header(
                "Content-Range",
                format!("bytes {from}-{}/{}", from + chunk.len() - 1, data.len()),
            )
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let snap = backup(&e, &user).await;
    let inbox = e
        .account
        .list_folder(&snap, "mail")
        .await
        .unwrap()
        .into_iter()
        .find(|f| {
            serde_json::from_slice::<Value>(f.node.meta()).unwrap()["displayName"] == json!("Inbox")
        })
        .unwrap()
        .name;
    let run = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::NonDestructive),
        &Selection {
            items: vec![format!("mail/{inbox}/{mid}")],
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    assert_eq!(run.report.restored, 1, "{:?}", run.log);
    let new_id = run.log[0].detail.clone().unwrap();
    let m = get(
        &e,
        &format!("/users/{user}/messages/{new_id}?$select={MSG_SELECT}"),
    )
    .await;
    assert_eq!(m["isDraft"], json!(false));
    assert_eq!(
        time_of(&m["receivedDateTime"]),
        time_of(&json!("2026-03-04T05:06:07Z"))
    );
    let atts = get_all(&e, &format!("/users/{user}/messages/{new_id}/attachments")).await;
    assert_eq!(atts.len(), 1);
    assert_eq!(atts[0]["name"], json!("big.bin"));
    let bytes = e
        .graph
        .send(Request::get(format!(
            "/users/{user}/messages/{new_id}/attachments/{}/$value",
            atts[0]["id"].as_str().unwrap()
        )))
        .await
        .unwrap()
        .body;
    assert_eq!(bytes.len(), data.len());
    assert!(
        bytes[..] == data[..],
        "the attachment is byte for byte the original"
    );
}

/// A counter of the simulator's (`/_sim/stats`), 0 when it never counted.
async fn sim_count(e: &Env, key: &str) -> u64 {
    let stats: Value = e
        .http
        .get(format!("{}/_sim/stats", e.sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["byKey"][key].as_u64().unwrap_or(0)
}

/// The internetMessageIds of a folder's messages (hidden or well-known folders too).
async fn message_ids(e: &Env, user: &str, folder: &str) -> Vec<String> {
    get_all(
        e,
        &format!("/users/{user}/mailFolders/{folder}/messages?$select=internetMessageId&$top=200"),
    )
    .await
    .iter()
    .map(|m| m["internetMessageId"].as_str().unwrap().to_string())
    .collect()
}

/// The child folder of `parent` (or a top-level one) named `name`, hidden ones included.
async fn find_folder(e: &Env, user: &str, parent: Option<&str>, name: &str) -> Option<Value> {
    let url = match parent {
        None => format!("/users/{user}/mailFolders?includeHiddenFolders=true&$top=250"),
        Some(p) => {
            format!("/users/{user}/mailFolders/{p}/childFolders?includeHiddenFolders=true&$top=250")
        }
    };
    get_all(e, &url)
        .await
        .into_iter()
        .find(|f| f["displayName"] == json!(name))
}

#[tokio::test]
async fn hidden_folders_and_recoverable_items_come_back_where_they_were() {
    let e = env(small_tenant(4, 511)).await;
    let user = users(&e).await[0].clone();
    // A hidden folder of an app, holding two messages.
    let hidden = send(
        &e,
        Method::POST,
        &format!("/users/{user}/mailFolders"),
        json!({"displayName": "App Data", "isHidden": true}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let inbox = folder_messages(&e, &user, "inbox").await;
    assert!(inbox.len() >= 6, "the inbox has mail");
    let mut in_hidden = Vec::new();
    for m in &inbox[..2] {
        send(
            &e,
            Method::POST,
            &format!("/users/{user}/messages/{}/move", m["id"].as_str().unwrap()),
            json!({"destinationId": hidden}),
        )
        .await;
        in_hidden.push(m["internetMessageId"].as_str().unwrap().to_string());
    }
    // Two messages soft-deleted (Graph's DELETE puts them in Recoverable Items).
    for m in &inbox[2..4] {
        delete(
            &e,
            &format!("/users/{user}/messages/{}", m["id"].as_str().unwrap()),
        )
        .await;
    }
    let soft_deleted = message_ids(&e, &user, "recoverableitemsdeletions").await;
    for m in &inbox[2..4] {
        assert!(soft_deleted.contains(&m["internetMessageId"].as_str().unwrap().to_string()));
    }
    // One permanently deleted: Graph puts it in Recoverable Items\Purges.
    send(
        &e,
        Method::POST,
        &format!(
            "/users/{user}/messages/{}/permanentDelete",
            inbox[4]["id"].as_str().unwrap()
        ),
        json!(null),
    )
    .await;
    let mut purged = message_ids(&e, &user, "recoverableitemspurges").await;
    purged.sort();
    assert!(purged.contains(&inbox[4]["internetMessageId"].as_str().unwrap().to_string()));
    let snap = backup(&e, &user).await;

    // Both are lost: the hidden folder deleted, the dumpster purged.
    delete(&e, &format!("/users/{user}/mailFolders/{hidden}")).await;
    let mut in_dumpster = Vec::new();
    for f in ["recoverableitemsdeletions", "recoverableitemspurges"] {
        in_dumpster.extend(
            get_all(
                &e,
                &format!("/users/{user}/mailFolders/{f}/messages?$select=id&$top=200"),
            )
            .await,
        );
    }
    for m in in_dumpster {
        delete(
            &e,
            &format!("/users/{user}/messages/{}", m["id"].as_str().unwrap()),
        )
        .await;
    }
    assert!(
        message_ids(&e, &user, "recoverableitemsdeletions")
            .await
            .is_empty()
    );
    assert!(find_folder(&e, &user, None, "App Data").await.is_none());
    let deleted_items_before = message_ids(&e, &user, "deleteditems").await;

    let run = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::Replace),
        &Selection::everything(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    let back = find_folder(&e, &user, None, "App Data")
        .await
        .expect("the hidden folder is back");
    assert_eq!(back["isHidden"], json!(true), "and hidden again: {back}");
    let visible = get_all(&e, &format!("/users/{user}/mailFolders?$top=250")).await;
    assert!(
        !visible
            .iter()
            .any(|f| f["displayName"] == json!("App Data")),
        "Outlook does not list it"
    );
    let mut got = message_ids(&e, &user, back["id"].as_str().unwrap()).await;
    got.sort();
    in_hidden.sort();
    assert_eq!(got, in_hidden, "its messages are back");
    let mut dumpster = message_ids(&e, &user, "recoverableitemsdeletions").await;
    dumpster.sort();
    let mut want = soft_deleted.clone();
    want.sort();
    assert_eq!(dumpster, want, "Recoverable Items holds what it held");
    let mut purges = message_ids(&e, &user, "recoverableitemspurges").await;
    purges.sort();
    assert_eq!(purges, purged, "and so do its Purges");
    assert_eq!(
        message_ids(&e, &user, "deleteditems").await,
        deleted_items_before,
        "nothing is left behind in Deleted Items"
    );

    // Again: nothing doubles, Recoverable Items is left as it is.
    let run = restore(
        &e,
        &snap,
        &RestoreOptions::new(RestoreMode::Replace),
        &Selection::everything(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    assert_eq!(
        message_ids(&e, &user, "recoverableitemsdeletions")
            .await
            .len(),
        soft_deleted.len()
    );
    assert_eq!(
        message_ids(&e, &user, "recoverableitemspurges").await.len(),
        purged.len()
    );
    assert!(
        run.log
            .iter()
            .filter(|l| l.detail.as_deref() == Some("already in Recoverable Items"))
            .count()
            >= soft_deleted.len() + purged.len()
    );

    // Non-destructive: soft-deleted mail where the user can see it.
    let options = RestoreOptions::new(RestoreMode::NonDestructive);
    let run = restore(&e, &snap, &options, &Selection::everything(), None)
        .await
        .unwrap();
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    let root = find_folder(&e, &user, None, &options.restore_folder_name())
        .await
        .expect("the restore folder");
    let root_id = root["id"].as_str().unwrap();
    let ri = find_folder(&e, &user, Some(root_id), "Recoverable Items")
        .await
        .expect("a Recoverable Items folder in the restore folder");
    assert_eq!(ri["isHidden"], json!(false), "{ri} {root}");
    let mut got = message_ids(&e, &user, ri["id"].as_str().unwrap()).await;
    got.sort();
    assert_eq!(got, want);
    let ri = find_folder(&e, &user, Some(root_id), "Recoverable Items (Purges)")
        .await
        .expect("a Purges folder in the restore folder");
    let mut got = message_ids(&e, &user, ri["id"].as_str().unwrap()).await;
    got.sort();
    assert_eq!(got, purged);
    let app = find_folder(&e, &user, Some(root_id), "App Data")
        .await
        .expect("the hidden folder in the restore folder");
    assert_eq!(app["isHidden"], json!(true));
}

/// The instances of a series between two days, by their date.
async fn instances_by_day(e: &Env, user: &str, id: &str) -> HashMap<String, Value> {
    get_all(
        e,
        &format!(
            "/users/{user}/events/{id}/instances?startDateTime=2026-07-01T00:00:00Z\
             &endDateTime=2026-07-12T00:00:00Z"
        ),
    )
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

async fn make_series(e: &Env, user: &str, subject: &str, attendees: Value) -> String {
    let v = send(
        e,
        Method::POST,
        &format!("/users/{user}/calendar/events"),
        json!({
            "subject": subject,
            "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-07-01T09:30:00", "timeZone": "UTC"},
            "attendees": attendees,
            "recurrence": {
                "pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": "2026-07-01", "numberOfOccurrences": 8}
            }
        }),
    )
    .await;
    v["id"].as_str().unwrap().to_string()
}

async fn change_occurrence(e: &Env, user: &str, occ: &Value, subject: &str) {
    send(
        e,
        Method::PATCH,
        &format!("/users/{user}/events/{}", occ["id"].as_str().unwrap()),
        json!({ "subject": subject }),
    )
    .await;
}

/// A replace restore of the snapshot's calendars alone.
async fn replace_calendar(e: &Env, snap: &SnapshotInfo) -> Run {
    restore(
        e,
        snap,
        &RestoreOptions::new(RestoreMode::Replace),
        &Selection {
            sub_services: vec![engine::report::SubService::Calendar],
            ..Selection::default()
        },
        None,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn replace_gives_an_existing_series_the_snapshot_occurrences() {
    let e = env(small_tenant(4, 512)).await;
    let user = users(&e).await[0].clone();
    let plain = make_series(&e, &user, "Plain series", json!([])).await;
    let meeting = make_series(
        &e,
        &user,
        "Team meeting",
        json!([{"emailAddress": {"name": "Ann Other", "address": "ann.other@example.com"},
                "type": "required"}]),
    )
    .await;
    // Before the backup each has one changed and one cancelled occurrence.
    for id in [&plain, &meeting] {
        let days = instances_by_day(&e, &user, id).await;
        assert_eq!(days.len(), 8);
        change_occurrence(&e, &user, &days["2026-07-02"], "Changed before the backup").await;
        delete(
            &e,
            &format!(
                "/users/{user}/events/{}",
                days["2026-07-03"]["id"].as_str().unwrap()
            ),
        )
        .await;
    }
    let snap = backup(&e, &user).await;

    // After it: the exception changed again, a plain occurrence changed,
    // another cancelled.
    for id in [&plain, &meeting] {
        let days = instances_by_day(&e, &user, id).await;
        change_occurrence(&e, &user, &days["2026-07-02"], "Changed again").await;
        change_occurrence(&e, &user, &days["2026-07-04"], "Changed after the backup").await;
        delete(
            &e,
            &format!(
                "/users/{user}/events/{}",
                days["2026-07-05"]["id"].as_str().unwrap()
            ),
        )
        .await;
    }
    let invitations = sim_count(&e, "pim:invitationsSent").await;
    let cancellations = sim_count(&e, "pim:cancellationsSent").await;

    let run = replace_calendar(&e, &snap).await;
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    assert_eq!(
        sim_count(&e, "pim:invitationsSent").await,
        invitations,
        "no invitations"
    );
    assert_eq!(
        sim_count(&e, "pim:cancellationsSent").await,
        cancellations,
        "no cancellations"
    );

    let events = get_all(
        &e,
        &format!("/users/{user}/calendar/events?$top=500&$select=id,subject,type,start"),
    )
    .await;
    // The series without attendees is made again, exactly as it was.
    let plains: Vec<&Value> = events
        .iter()
        .filter(|v| v["subject"] == json!("Plain series") && v["type"] == json!("seriesMaster"))
        .collect();
    assert_eq!(plains.len(), 1, "one plain series");
    let days = instances_by_day(&e, &user, plains[0]["id"].as_str().unwrap()).await;
    let mut dates: Vec<&String> = days.keys().collect();
    dates.sort();
    assert_eq!(
        dates,
        [
            "2026-07-01",
            "2026-07-02",
            "2026-07-04",
            "2026-07-05",
            "2026-07-06",
            "2026-07-07",
            "2026-07-08"
        ],
        "the occurrence cancelled before the backup stays cancelled; the later one is back"
    );
    assert_eq!(
        days["2026-07-02"]["subject"],
        json!("Changed before the backup")
    );
    assert_eq!(days["2026-07-04"]["subject"], json!("Plain series"));
    assert_eq!(days["2026-07-05"]["subject"], json!("Plain series"));

    // The meeting keeps its id and attendees; what can be undone is.
    let days = instances_by_day(&e, &user, &meeting).await;
    let mut dates: Vec<&String> = days.keys().collect();
    dates.sort();
    assert_eq!(
        dates,
        [
            "2026-07-01",
            "2026-07-02",
            "2026-07-04",
            "2026-07-06",
            "2026-07-07",
            "2026-07-08"
        ]
    );
    assert_eq!(
        days["2026-07-02"]["subject"],
        json!("Changed before the backup")
    );
    assert_eq!(
        days["2026-07-04"]["subject"],
        json!("Team meeting"),
        "reverted"
    );
    // Its occurrence cancelled since the backup is an event of its own.
    let single: Vec<&Value> = events
        .iter()
        .filter(|v| v["subject"] == json!("Team meeting") && v["type"] == json!("singleInstance"))
        .collect();
    assert_eq!(single.len(), 1, "{events:?}");
    assert!(
        single[0]["start"]["dateTime"]
            .as_str()
            .unwrap()
            .starts_with("2026-07-05T09:00"),
        "{}",
        single[0]
    );
    assert!(
        run.report
            .notes
            .iter()
            .any(|n| n.contains("separate events")),
        "{:?}",
        run.report.notes
    );

    // A second replace finds nothing left to do for either series.
    let run = replace_calendar(&e, &snap).await;
    assert_eq!(run.report.failed, 0, "{:?}", failures(&run.log));
    for name in ["Plain series", "Team meeting"] {
        let entry = run
            .log
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("{name} in the log"));
        assert_eq!(entry.outcome, ItemOutcome::Skipped, "{entry:?}");
    }
}
