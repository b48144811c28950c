//! Browsing snapshots (SPEC F-E2) against the tenant simulator: mailboxes,
//! OneDrives, sites and teams are backed up with the real backup functions,
//! then browsed; what the listings show is compared with the simulator's
//! ground truth and with what Microsoft Graph says of the same items.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use engine::Cancel;
use engine::browse::{ItemEntry, Listing, Page, browse, changed_between, preview};
use engine::exchange::{
    BackupOptions, DiscoveryOptions, MailboxBackup, MailboxKind, backup_mailbox, discover_mailboxes,
};
use engine::faults::Outcome;
use engine::onedrive::{OneDriveBackup, OneDriveOptions, backup_onedrive, discover_drives};
use engine::progress::NoProgress;
use engine::sharepoint::{SiteBackup, SiteBackupOptions, backup_site, discover_sites};
use engine::teams::{GroupBackup, GroupBackupOptions, GroupKind, backup_group, discover_groups};
use graph::Request;
use graph_sim::SimConfig;
use serde_json::{Value, json};
use vault::{SnapshotId, SnapshotInfo};

mod common;
use common::{Env, env};

fn tenant(users: u32, seed: u64, scale: f64) -> SimConfig {
    let mut cfg = SimConfig::new(users, seed);
    cfg.content_scale = scale;
    cfg
}

const IMMUTABLE: (&str, &str) = ("Prefer", "IdType=\"ImmutableId\"");

impl Env {
    async fn truth(&self, what: &str, id: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_sim/truth/{what}/{id}", self.sim.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    async fn get(&self, url: &str) -> Value {
        self.graph
            .send(Request::get(url).header(IMMUTABLE.0, IMMUTABLE.1))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .json()
            .unwrap()
    }

    async fn post(&self, url: &str, body: Value) -> Value {
        self.graph
            .send(Request::json(reqwest::Method::POST, url, &body).header(IMMUTABLE.0, IMMUTABLE.1))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .json()
            .unwrap()
    }

    async fn snap(&self, id: &SnapshotId) -> SnapshotInfo {
        self.account.snapshot(id).await.unwrap()
    }

    async fn browse(&self, snap: &SnapshotInfo, path: &str) -> Listing {
        browse(&self.account, snap, path, Page::default())
            .await
            .unwrap_or_else(|e| panic!("browse {path:?}: {e}"))
    }

    /// Every item of a level, read `limit` at a time; each page is checked
    /// against the listing's total.
    async fn all_items(&self, snap: &SnapshotInfo, path: &str, limit: usize) -> Vec<ItemEntry> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let l = browse(&self.account, snap, path, Page { offset, limit })
                .await
                .unwrap_or_else(|e| panic!("browse {path:?} at {offset}: {e}"));
            assert_eq!(l.offset, offset as u64);
            let expected = (l.total_items as usize).saturating_sub(offset).min(limit);
            assert_eq!(l.items.len(), expected, "page at {offset} of {path}");
            out.extend(l.items);
            offset += limit;
            if offset >= l.total_items as usize {
                return out;
            }
        }
    }
}

/// The snapshot's top shows one card per part, with the part's count and outcome.
async fn assert_cards_equal_parts(e: &Env, snap: &SnapshotInfo) -> Listing {
    let top = e.browse(snap, "").await;
    let parts = snap.meta["parts"].as_array().unwrap();
    assert!(!parts.is_empty());
    assert_eq!(top.cards.len(), parts.len());
    for (card, part) in top.cards.iter().zip(parts) {
        assert_eq!(card.sub_service, part["subService"].as_str().unwrap());
        assert_eq!(
            card.items,
            part["items"].as_u64().unwrap(),
            "{}",
            card.sub_service
        );
        assert_eq!(card.outcome, part["outcome"]);
        assert!(!card.path.is_empty());
    }
    assert!(top.folders.is_empty() && top.items.is_empty());
    top
}

fn id_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

fn recipient(v: &Value) -> Option<String> {
    let name = v["emailAddress"]["name"].as_str().filter(|s| !s.is_empty());
    let addr = v["emailAddress"]["address"]
        .as_str()
        .filter(|s| !s.is_empty());
    match (name, addr) {
        (Some(n), Some(a)) if n != a => Some(format!("{n} <{a}>")),
        (Some(n), _) => Some(n.to_string()),
        (None, a) => a.map(str::to_string),
    }
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Well-known folders in Outlook's order, then the others alphabetically,
/// then folders of earlier restores (SPEC F-E2).
fn outlook_order(names: &[String]) -> Vec<String> {
    const WELL_KNOWN: [&str; 12] = [
        "Inbox",
        "Drafts",
        "Sent Items",
        "Deleted Items",
        "Junk Email",
        "Archive",
        "Conversation History",
        "Outbox",
        "Recoverable Items",
        "Recoverable Items (Purges)",
        "Recoverable Items (Versions)",
        "In-Place Archive",
    ];
    let restored = |n: &str| n.starts_with("Restored ") || n.ends_with(" (Restored)");
    let mut out: Vec<String> = WELL_KNOWN
        .iter()
        .filter(|w| names.iter().any(|n| n == *w))
        .map(|w| w.to_string())
        .collect();
    let mut others: Vec<String> = names
        .iter()
        .filter(|n| !WELL_KNOWN.contains(&n.as_str()) && !restored(n))
        .cloned()
        .collect();
    others.sort_by_key(|n| n.to_lowercase());
    out.extend(others);
    out.extend(names.iter().filter(|n| restored(n)).cloned());
    out
}

#[tokio::test]
async fn a_mailbox_is_browsed_in_outlook_order_with_the_columns_graph_shows() {
    let e = env(tenant(4, 901, 0.3)).await;
    let users: Vec<String> = discover_mailboxes(&e.graph, &DiscoveryOptions::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == MailboxKind::User && m.licensed && m.account_enabled)
        .map(|m| m.graph_id)
        .collect();
    let mut user = None;
    for u in &users {
        let t = e.truth("users", u).await;
        if t.iter().filter(|i| i["workload"] == "mail").count() > 20 {
            user = Some(u.clone());
            break;
        }
    }
    let u = user.expect("a mailbox with mail");

    // A restore's folder and a user's folder created before the normal
    // ones sort after them; a message moved into a nested folder.
    let restored = e
        .post(
            &format!("/users/{u}/mailFolders"),
            json!({"displayName": "Restored 2026-11-01 09:00:00"}),
        )
        .await;
    let zeta = e
        .post(
            &format!("/users/{u}/mailFolders"),
            json!({"displayName": "Zeta"}),
        )
        .await;
    let child = e
        .post(
            &format!(
                "/users/{u}/mailFolders/{}/childFolders",
                zeta["id"].as_str().unwrap()
            ),
            json!({"displayName": "Child"}),
        )
        .await;
    let inbox = e
        .get(&format!(
            "/users/{u}/mailFolders/inbox/messages?$top=1&$select=id"
        ))
        .await;
    let moved = inbox["value"][0]["id"].as_str().unwrap().to_string();
    e.post(
        &format!("/users/{u}/messages/{moved}/move"),
        json!({"destinationId": child["id"]}),
    )
    .await;

    let report = backup_mailbox(MailboxBackup {
        graph: &e.graph,
        vault: &e.account,
        mailbox_id: &u,
        parent: None,
        options: &BackupOptions::default(),
        progress: &NoProgress,
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .unwrap();
    assert_eq!(report.outcome(), Outcome::Success, "{:?}", report.parts);
    let snap = e.snap(report.snapshot_id.as_ref().unwrap()).await;

    let top = assert_cards_equal_parts(&e, &snap).await;
    let paths: Vec<&str> = top.cards.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["mail", "contacts", "calendar", "tasks"]);

    // Top-level folders in Outlook order.
    let mail = e.browse(&snap, "mail").await;
    let names: Vec<String> = mail.folders.iter().map(|f| f.name.clone()).collect();
    assert_eq!(names, outlook_order(&names), "{names:?}");
    assert_eq!(names[0], "Inbox");
    assert_eq!(names.last().unwrap(), "Restored 2026-11-01 09:00:00");
    assert!(names.contains(&"Zeta".to_string()) && names.contains(&"Recoverable Items".into()));
    let restored_path = format!("mail/{}", restored["id"].as_str().unwrap());
    assert!(mail.folders.iter().any(|f| f.path == restored_path));

    // Every message of every folder (Recoverable Items aside: the truth is
    // what users see), paged 7 at a time, each exactly once, with the
    // columns of the truth and of Graph.
    let truth: HashMap<String, String> = e
        .truth("users", &u)
        .await
        .into_iter()
        .filter(|i| i["workload"] == "mail")
        .map(|i| {
            (
                i["id"].as_str().unwrap().into(),
                i["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut seen: BTreeMap<String, ItemEntry> = BTreeMap::new();
    let mut folder_paths: HashMap<String, String> = HashMap::new();
    let mut stack: Vec<String> = mail
        .folders
        .iter()
        .filter(|f| f.name != "Recoverable Items")
        .map(|f| f.path.clone())
        .collect();
    while let Some(path) = stack.pop() {
        let level = e.browse(&snap, &path).await;
        assert_eq!(level.path, path);
        assert_eq!(level.breadcrumbs[1].path, "mail");
        assert_eq!(level.breadcrumbs.last().unwrap().path, path);
        let human: Vec<&str> = level.breadcrumbs[2..]
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        stack.extend(level.folders.iter().map(|f| f.path.clone()));
        let items = e.all_items(&snap, &path, 7).await;
        assert_eq!(items.len() as u64, level.total_items);
        for it in items {
            assert_eq!(it.kind, "message");
            folder_paths.insert(id_of(&it.path).to_string(), human.join("/"));
            assert!(
                seen.insert(it.path.clone(), it).is_none(),
                "listed twice: {path}"
            );
        }
    }
    let ids: BTreeSet<&str> = seen.keys().map(|p| id_of(p)).collect();
    let want: BTreeSet<&str> = truth.keys().map(String::as_str).collect();
    assert_eq!(ids, want, "every message of the mailbox, exactly once");
    assert_eq!(
        folder_paths[&moved], "Zeta/Child",
        "a nested folder's breadcrumbs"
    );
    for (path, it) in &seen {
        let id = id_of(path);
        let t = &truth[id];
        assert_eq!(
            t,
            &format!(
                "{}/{}",
                folder_paths[id],
                it.columns["subject"].as_str().unwrap()
            )
        );
        assert_eq!(it.name, it.columns["subject"].as_str().unwrap());
        let g = e
            .get(&format!(
                "/users/{u}/messages/{id}?$select=from,receivedDateTime,subject"
            ))
            .await;
        assert_eq!(it.columns["from"], json!(recipient(&g["from"])), "{path}");
        assert_eq!(it.columns["date"], g["receivedDateTime"], "{path}");
        assert_eq!(it.columns["subject"], g["subject"], "{path}");
    }
    // Newest first.
    let inbox_path = &mail.folders[0].path;
    let first_page = e.browse(&snap, inbox_path).await;
    let dates: Vec<&str> = first_page
        .items
        .iter()
        .map(|i| i.columns["date"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "{dates:?}");
    assert_eq!(mail.folders[0].item_count, Some(first_page.total_items));

    // A message's preview: headers, text and attachment names.
    let with_att = seen
        .values()
        .find(|i| i.columns["hasAttachments"] == true)
        .expect("a message with attachments");
    let id = id_of(&with_att.path);
    let p = preview(&e.account, &snap, &with_att.path).await.unwrap();
    assert_eq!(p.kind, "message");
    assert_eq!(p.title, with_att.columns["subject"].as_str().unwrap());
    assert_eq!(p.fields["subject"], with_att.columns["subject"]);
    let g = e.get(&format!("/users/{u}/messages/{id}")).await;
    let from_addr = g["from"]["emailAddress"]["address"].as_str().unwrap();
    assert!(p.fields["from"].as_str().unwrap().contains(from_addr));
    let to_addr = g["toRecipients"][0]["emailAddress"]["address"]
        .as_str()
        .unwrap();
    assert!(p.fields["to"].as_str().unwrap().contains(to_addr));
    let atts = e
        .get(&format!("/users/{u}/messages/{id}/attachments"))
        .await;
    let mut want: Vec<String> = atts["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect();
    let mut got: Vec<String> = p.attachments.iter().map(|a| a.name.clone()).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(p.attachments.iter().all(|a| a.size > 0));
    let text_body = e
        .graph
        .send(
            Request::get(format!("/users/{u}/messages/{id}"))
                .header(IMMUTABLE.0, IMMUTABLE.1)
                .header("Prefer", "outlook.body-content-type=\"text\""),
        )
        .await
        .unwrap()
        .json::<Value>()
        .unwrap();
    let body = words(text_body["body"]["content"].as_str().unwrap());
    let start: String = body.chars().take(40).collect();
    assert!(!start.is_empty());
    let text = words(p.text.as_deref().unwrap_or_default());
    assert!(text.contains(&start), "{text:?} holds {start:?}");
    assert!(!text.contains("<html") && !text.contains("<script"));

    // Contacts, calendars and To Do lists: every container, every item.
    let mut contact_folders_compared = 0;
    for sub in ["contacts", "calendar", "tasks"] {
        let level = e.browse(&snap, sub).await;
        let card = top.cards.iter().find(|c| c.path == sub).unwrap();
        let mut n = 0;
        let mut stack: Vec<String> = level.folders.iter().map(|f| f.path.clone()).collect();
        while let Some(path) = stack.pop() {
            let l = e.browse(&snap, &path).await;
            stack.extend(l.folders.iter().map(|f| f.path.clone()));
            let items = e.all_items(&snap, &path, 5).await;
            n += items.len() as u64;
            for it in &items {
                let p = preview(&e.account, &snap, &it.path).await.unwrap();
                assert_eq!(p.title, it.name);
            }
            if sub == "contacts" && !items.is_empty() {
                let fid = id_of(&path);
                let g = e
                    .graph
                    .get_all(&format!(
                        "/users/{u}/contactFolders/{fid}/contacts?$top=100"
                    ))
                    .await
                    .unwrap();
                let mut want: Vec<(Value, Value, Value)> = g
                    .iter()
                    .map(|c| {
                        (
                            c["displayName"].clone(),
                            c["emailAddresses"][0]["address"].clone(),
                            c["companyName"].clone(),
                        )
                    })
                    .collect();
                let mut got: Vec<(Value, Value, Value)> = items
                    .iter()
                    .map(|i| {
                        (
                            i.columns["name"].clone(),
                            i.columns["email"].clone(),
                            i.columns["company"].clone(),
                        )
                    })
                    .collect();
                want.sort_by_key(|w| w.0.to_string());
                got.sort_by_key(|w| w.0.to_string());
                assert_eq!(got, want, "contacts of {path}");
                contact_folders_compared += 1;
            }
            if sub == "tasks" {
                for it in &items {
                    assert!(
                        it.columns.contains_key("status") && it.columns.contains_key("dueDate")
                    );
                }
            }
        }
        assert_eq!(
            n, card.items,
            "{sub}: the card counts what the folders hold"
        );
    }

    assert!(contact_folders_compared > 0);

    // Unknown paths are errors that name them.
    for bad in [
        "mail/nope/nothing",
        "mail/nope",
        "drive/items/x",
        "contacts/../x",
    ] {
        let err = preview(&e.account, &snap, bad).await.unwrap_err();
        assert!(err.to_string().contains(bad), "{err}");
    }
    let err = browse(&e.account, &snap, "mail/nope", Page::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("mail/nope"), "{err}");
    let err = preview(&e.account, &snap, "mail").await.unwrap_err();
    assert!(err.to_string().contains("folder"), "{err}");
}

#[tokio::test]
async fn a_onedrive_folder_lists_what_truth_has_and_changes_are_listed_between_snapshots() {
    let e = env(tenant(6, 902, 1.0)).await;
    let mut chosen = None;
    for d in discover_drives(&e.graph).await.unwrap() {
        let t = e.truth("users", &d.user_id).await;
        let files: Vec<Value> = t.into_iter().filter(|i| i["workload"] == "drive").collect();
        if files
            .iter()
            .any(|f| f["path"].as_str().unwrap().matches('/').count() >= 2)
        {
            chosen = Some((d, files));
            break;
        }
    }
    let (d, truth) = chosen.expect("a OneDrive with folders");
    let backup = |parent: Option<SnapshotId>| {
        let e = &e;
        let user = d.user_id.clone();
        async move {
            let r = backup_onedrive(OneDriveBackup {
                graph: &e.graph,
                vault: &e.account,
                user_id: &user,
                parent: parent.as_ref(),
                options: &OneDriveOptions::default(),
                progress: &NoProgress,
                cancel: &Cancel::new(),
                meta: json!({}),
            })
            .await
            .unwrap();
            assert_eq!(r.outcome(), Outcome::Success, "{:?}", r.parts);
            r.snapshot_id.unwrap()
        }
    };
    let s1 = backup(None).await;
    let snap1 = e.snap(&s1).await;
    let top = assert_cards_equal_parts(&e, &snap1).await;
    assert_eq!(top.cards[0].path, "drive");

    // Truth, by folder path: the files directly in it.
    let mut by_folder: BTreeMap<String, BTreeMap<String, (String, u64)>> = BTreeMap::new();
    for f in &truth {
        let path = f["path"]
            .as_str()
            .unwrap()
            .strip_prefix("OneDrive/")
            .unwrap();
        let (folder, name) = path.rsplit_once('/').unwrap_or(("", path));
        by_folder.entry(folder.to_string()).or_default().insert(
            f["id"].as_str().unwrap().to_string(),
            (name.to_string(), f["size"].as_u64().unwrap()),
        );
    }
    // Walk the tree from the root: each folder lists exactly the files the
    // truth has there, and reaches every folder that holds files.
    let mut reached = BTreeSet::new();
    let mut stack = vec![("drive".to_string(), String::new())];
    while let Some((path, human)) = stack.pop() {
        let level = e.browse(&snap1, &path).await;
        let items = e.all_items(&snap1, &path, 3).await;
        let got: BTreeMap<String, (String, u64)> = items
            .iter()
            .map(|i| {
                assert_eq!(i.kind, "file");
                (
                    id_of(&i.path).to_string(),
                    (i.name.clone(), i.columns["size"].as_u64().unwrap()),
                )
            })
            .collect();
        assert_eq!(got.len(), items.len(), "each file once in {human:?}");
        assert_eq!(
            got,
            by_folder.get(&human).cloned().unwrap_or_default(),
            "the files of {human:?}"
        );
        reached.insert(human.clone());
        let crumbs: Vec<&str> = level.breadcrumbs[2..]
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(crumbs.join("/"), human);
        for f in &level.folders {
            let below = if human.is_empty() {
                f.name.clone()
            } else {
                format!("{human}/{}", f.name)
            };
            stack.push((f.path.clone(), below));
        }
    }
    for folder in by_folder.keys() {
        assert!(reached.contains(folder), "{folder} is reachable");
    }

    // Edit one file, delete another, add a third; the changed listing
    // names exactly those.
    let drive = &d.drive_id;
    let (deep_folder, files) = by_folder
        .iter()
        .find(|(k, v)| !k.is_empty() && v.len() >= 2)
        .expect("a folder with two files");
    let mut ids = files.keys();
    let edited = ids.next().unwrap().clone();
    let deleted = ids.next().unwrap().clone();
    let _ = deep_folder;
    e.graph
        .send(Request::bytes(
            reqwest::Method::PUT,
            format!("/drives/{drive}/items/{edited}/content"),
            "application/octet-stream",
            Bytes::from_static(b"edited by the browse test"),
        ))
        .await
        .unwrap();
    e.graph
        .send(Request::delete(format!("/drives/{drive}/items/{deleted}")))
        .await
        .unwrap();
    let parent = e.get(&format!("/drives/{drive}/items/{edited}")).await["parentReference"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let added = e
        .graph
        .send(Request::bytes(
            reqwest::Method::PUT,
            format!("/drives/{drive}/items/{parent}:/browse-notes.txt:/content"),
            "text/plain",
            Bytes::from_static(b"line one\nline two\n"),
        ))
        .await
        .unwrap()
        .json::<Value>()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let s2 = backup(Some(s1.clone())).await;
    let snap2 = e.snap(&s2).await;
    let changes = changed_between(&e.account, &snap1, &snap2).await.unwrap();
    let files: BTreeMap<String, String> = changes
        .iter()
        .filter(|c| c.kind == "file")
        .map(|c| (id_of(&c.path).to_string(), c.change.clone().unwrap()))
        .collect();
    let want: BTreeMap<String, String> = [
        (edited.clone(), "modified".to_string()),
        (deleted.clone(), "removed".to_string()),
        (added.clone(), "added".to_string()),
    ]
    .into_iter()
    .collect();
    assert_eq!(files, want, "{changes:?}");
    let removed = changes.iter().find(|c| id_of(&c.path) == deleted).unwrap();
    assert_eq!(removed.name, files_name(&by_folder, &deleted));
    assert!(
        changes
            .iter()
            .all(|c| c.kind != "folder" || c.change.as_deref() != Some("modified"))
    );

    // Previews: a text file's text, another file's metadata.
    let p = preview(&e.account, &snap2, &format!("drive/items/{added}"))
        .await
        .unwrap();
    assert_eq!(p.title, "browse-notes.txt");
    assert_eq!(p.fields["size"], 18);
    assert_eq!(p.text.as_deref(), Some("line one\nline two\n"));
    let p = preview(&e.account, &snap1, &format!("drive/items/{deleted}"))
        .await
        .unwrap();
    assert_eq!(p.kind, "file");
    assert_eq!(p.title, files_name(&by_folder, &deleted));
    let err = preview(&e.account, &snap2, &format!("drive/items/{deleted}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&deleted), "{err}");
}

fn files_name(by_folder: &BTreeMap<String, BTreeMap<String, (String, u64)>>, id: &str) -> String {
    by_folder
        .values()
        .find_map(|f| f.get(id))
        .map(|(n, _)| n.clone())
        .unwrap()
}

#[tokio::test]
async fn a_site_shows_its_lists_pages_and_libraries() {
    let e = env(tenant(4, 903, 0.3)).await;
    let mut chosen = None;
    for s in discover_sites(&e.graph).await.unwrap() {
        let t = e.truth("sites", &s.graph_id).await;
        let lists = t.iter().filter(|i| i["workload"] == "list").count();
        let pages = t.iter().filter(|i| i["workload"] == "pages").count();
        let files = t.iter().filter(|i| i["workload"] == "drive").count();
        if lists >= 3 && pages >= 1 && files >= 1 {
            chosen = Some((s.graph_id, t));
            break;
        }
    }
    let (site, truth) = chosen.expect("a site with lists, pages and files");
    let r = backup_site(SiteBackup {
        graph: &e.graph,
        vault: &e.account,
        site_id: &site,
        parent: None,
        options: &SiteBackupOptions::default(),
        progress: &NoProgress,
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .unwrap();
    assert_eq!(r.outcome(), Outcome::Success, "{:?}", r.parts);
    let snap = e.snap(r.snapshot_id.as_ref().unwrap()).await;
    let top = assert_cards_equal_parts(&e, &snap).await;
    let mut paths: Vec<&str> = top.cards.iter().map(|c| c.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["drives", "site"]);

    // Lists: every item of every list, by list name.
    let site_level = e.browse(&snap, "site").await;
    let mut got: BTreeSet<String> = BTreeSet::new();
    for f in &site_level.folders {
        let items = e.all_items(&snap, &f.path, 4).await;
        assert_eq!(f.item_count, Some(items.len() as u64), "{}", f.name);
        for it in items {
            if f.path == "pages" {
                assert_eq!(it.kind, "page");
                got.insert(format!(
                    "pages:SitePages/{}",
                    it.columns["name"].as_str().unwrap()
                ));
            } else {
                assert_eq!(it.kind, "listItem");
                assert!(it.columns["fields"].is_object());
                assert_eq!(it.columns["title"], it.columns["fields"]["Title"]);
                got.insert(format!("list:{}/{}", f.name, id_of(&it.path)));
            }
        }
    }
    let want: BTreeSet<String> = truth
        .iter()
        .filter(|i| i["workload"] == "list" || i["workload"] == "pages")
        .map(|i| {
            format!(
                "{}:{}",
                i["workload"].as_str().unwrap(),
                i["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(got, want);

    // Libraries: named as the truth names them, their files reachable.
    let libs = e.browse(&snap, "drives").await;
    let mut files = BTreeSet::new();
    for lib in &libs.folders {
        let mut stack = vec![(lib.path.clone(), lib.name.clone())];
        while let Some((path, human)) = stack.pop() {
            let level = e.browse(&snap, &path).await;
            assert_eq!(level.breadcrumbs[1].path, "drives");
            assert_eq!(level.breadcrumbs[2].path, lib.path);
            for it in e.all_items(&snap, &path, 50).await {
                files.insert(format!("{human}/{}", it.name));
            }
            for f in level.folders {
                stack.push((f.path, format!("{human}/{}", f.name)));
            }
        }
    }
    let want: BTreeSet<String> = truth
        .iter()
        .filter(|i| i["workload"] == "drive")
        .map(|i| i["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(files, want);

    // A list item's preview shows its fields.
    let first_list = site_level
        .folders
        .iter()
        .find(|f| f.path != "pages")
        .unwrap();
    let item = &e.all_items(&snap, &first_list.path, 1).await[0];
    let p = preview(&e.account, &snap, &item.path).await.unwrap();
    assert_eq!(p.kind, "listItem");
    assert_eq!(p.fields["fields"], item.columns["fields"]);

    // A deleted list item is listed as removed between two snapshots, with
    // the columns the older snapshot had.
    let (_, list_id, item_id) = {
        let mut s = item.path.split('/');
        (s.next().unwrap(), s.next().unwrap(), s.next().unwrap())
    };
    e.graph
        .send(Request::delete(format!(
            "/sites/{site}/lists/{list_id}/items/{item_id}"
        )))
        .await
        .unwrap();
    let r2 = backup_site(SiteBackup {
        graph: &e.graph,
        vault: &e.account,
        site_id: &site,
        parent: Some(&snap.id),
        options: &SiteBackupOptions::default(),
        progress: &NoProgress,
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .unwrap();
    let snap2 = e.snap(r2.snapshot_id.as_ref().unwrap()).await;
    let changes = changed_between(&e.account, &snap, &snap2).await.unwrap();
    let list_changes: Vec<&ItemEntry> = changes.iter().filter(|c| c.kind == "listItem").collect();
    assert_eq!(list_changes.len(), 1, "{changes:?}");
    assert_eq!(list_changes[0].path, item.path);
    assert_eq!(list_changes[0].change.as_deref(), Some("removed"));
    assert_eq!(list_changes[0].columns["fields"], item.columns["fields"]);
}

#[tokio::test]
async fn a_team_shows_its_channels_replies_conversations_and_members() {
    let e = env(tenant(6, 904, 0.6)).await;
    let team = discover_groups(&e.graph)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.kind == GroupKind::Team)
        .expect("a team")
        .graph_id;
    let r = backup_group(GroupBackup {
        graph: &e.graph,
        vault: &e.account,
        group_id: &team,
        is_team: true,
        parent: None,
        options: &GroupBackupOptions::default(),
        progress: &NoProgress,
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .unwrap();
    assert_eq!(r.outcome(), Outcome::Success, "{:?}", r.parts);
    let snap = e.snap(r.snapshot_id.as_ref().unwrap()).await;
    let top = assert_cards_equal_parts(&e, &snap).await;
    let paths: BTreeSet<&str> = top.cards.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "metadata",
            "conversations",
            "calendar",
            "drives",
            "channels"
        ]
        .into()
    );
    let truth = e.truth("groups", &team).await;

    // Channel messages and their replies, by channel name, as the truth has
    // them (deleted messages are listed too, marked deleted).
    let channels = e.browse(&snap, "channels").await;
    assert!(!channels.folders.is_empty());
    let mut got = BTreeSet::new();
    let mut a_reply = None;
    for ch in &channels.folders {
        let items = e.all_items(&snap, &ch.path, 6).await;
        for it in items {
            assert_eq!(it.kind, "channelMessage");
            assert!(it.columns["date"].is_string());
            if !it.columns.contains_key("deleted") {
                got.insert(format!("Channels/{}/{}", ch.name, id_of(&it.path)));
            }
            if let Some(rp) = it.columns.get("repliesPath").and_then(Value::as_str) {
                let replies = e.all_items(&snap, rp, 2).await;
                assert_eq!(it.columns["replies"], json!(replies.len()));
                for reply in replies {
                    assert_eq!(reply.kind, "reply");
                    got.insert(format!("Channels/{}/{}", ch.name, id_of(&reply.path)));
                    a_reply.get_or_insert(reply);
                }
            }
        }
    }
    let want: BTreeSet<String> = truth
        .iter()
        .filter(|i| i["workload"] == "channels" && i["kind"] == "chatMessage")
        .map(|i| i["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
    let reply = a_reply.expect("a message with replies");
    let p = preview(&e.account, &snap, &reply.path).await.unwrap();
    assert!(
        p.text
            .as_deref()
            .is_some_and(|t| !t.is_empty() && !t.contains('<'))
    );

    // Conversations: every post of every thread.
    let threads = e.browse(&snap, "conversations").await;
    let mut posts = BTreeSet::new();
    for t in &threads.folders {
        for it in e.all_items(&snap, &t.path, 3).await {
            assert_eq!(it.kind, "post");
            assert!(it.columns["from"].is_string() && it.columns["date"].is_string());
            posts.insert(id_of(&it.path).to_string());
        }
    }
    let want: BTreeSet<String> = truth
        .iter()
        .filter(|i| i["workload"] == "conversations")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(posts, want);

    // Metadata: the members as Graph lists them.
    let meta = e.all_items(&snap, "metadata", 10).await;
    let members = meta.iter().find(|m| m.path == "metadata/members").unwrap();
    let listed = e
        .graph
        .get_all(&format!("/groups/{team}/members"))
        .await
        .unwrap();
    assert_eq!(members.columns["count"], json!(listed.len()));
    assert!(meta.iter().any(|m| m.path == "metadata/team"));
}
