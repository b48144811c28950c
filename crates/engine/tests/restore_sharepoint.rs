//! SharePoint site restore against the tenant simulator: back up a site,
//! destroy (delete list items and lists, ransomware in a library, delete the
//! whole site), restore, and compare with the simulator's ground truth
//! (list items by the hash of their fields, library files by path and
//! BLAKE3).

use std::collections::BTreeMap;

use engine::progress::NoProgress;
use engine::restore::sharepoint::restore_site;
use engine::restore::{
    MemoryLog, RestoreCtx, RestoreMode, RestoreOptions, RestoreReport, Selection,
};
use engine::sharepoint::{SiteBackup, SiteBackupOptions, backup_site, discover_sites};
use engine::{Cancel, EngineError};
use graph::Request;
use graph_sim::SimConfig;
use serde_json::{Value, json};
use vault::SnapshotInfo;

mod common;
use common::{Env, env};

fn tenant(users: u32, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(users, seed);
    cfg.content_scale = 0.3;
    cfg
}

/// (workload, path) → hash, from the simulator's truth of a site.
type Truth = BTreeMap<(String, String), String>;

impl Env {
    async fn truth(&self, site: &str) -> Truth {
        let v: Value = self
            .http
            .get(format!("{}/_sim/truth/sites/{site}", self.sim.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|i| {
                (
                    (
                        i["workload"].as_str().unwrap().to_string(),
                        i["path"].as_str().unwrap().to_string(),
                    ),
                    i["hash"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    async fn backup(&self, site: &str) -> SnapshotInfo {
        let r = backup_site(SiteBackup {
            graph: &self.graph,
            vault: &self.account,
            site_id: site,
            parent: None,
            options: &SiteBackupOptions::default(),
            progress: &NoProgress,
            cancel: &Cancel::new(),
            meta: json!({}),
        })
        .await
        .unwrap();
        self.account
            .snapshot(&r.snapshot_id.unwrap())
            .await
            .unwrap()
    }

    /// A site with generic lists holding items, and library files.
    async fn content_site(&self) -> String {
        for s in discover_sites(&self.graph).await.unwrap() {
            let t = self.truth(&s.graph_id).await;
            let lists = t.keys().filter(|(w, _)| w == "list").count();
            let files = t.keys().filter(|(w, _)| w == "drive").count();
            if lists >= 3 && files >= 3 {
                return s.graph_id;
            }
        }
        panic!("no site with lists and files");
    }

    async fn restore(
        &self,
        snap: &SnapshotInfo,
        mode: RestoreMode,
        destination: Option<&str>,
    ) -> Result<(RestoreReport, MemoryLog, RestoreOptions), EngineError> {
        self.restore_selected(snap, mode, destination, Selection::everything())
            .await
    }

    /// A site with at least two pages.
    async fn pages_site(&self) -> String {
        for s in discover_sites(&self.graph).await.unwrap() {
            let t = self.truth(&s.graph_id).await;
            if pages(&t).len() >= 2 {
                return s.graph_id;
            }
        }
        panic!("no site with two pages");
    }

    async fn restore_selected(
        &self,
        snap: &SnapshotInfo,
        mode: RestoreMode,
        destination: Option<&str>,
        selection: Selection,
    ) -> Result<(RestoreReport, MemoryLog, RestoreOptions), EngineError> {
        let options = RestoreOptions::new(mode);
        let log = MemoryLog::default();
        let ctx = RestoreCtx {
            graph: &self.graph,
            vault: &self.account,
            snapshot: snap,
            selection: &selection,
            options: &options,
            destination,
            progress: &NoProgress,
            log: &log,
            cancel: &Cancel::new(),
        };
        let r = restore_site(&ctx).await?;
        Ok((r, log, options))
    }
}

/// Page file name → hash of its title, layout, title area, canvas (web
/// parts) and publication, from the truth.
fn pages(t: &Truth) -> BTreeMap<String, String> {
    t.iter()
        .filter(|((w, _), _)| w == "pages")
        .map(|((_, p), h)| (p.trim_start_matches("SitePages/").to_string(), h.clone()))
        .collect()
}

/// Log entries of pages.
fn page_entries(log: &MemoryLog) -> Vec<engine::restore::ItemLogEntry> {
    log.entries()
        .into_iter()
        .filter(|l| l.path.starts_with("pages/"))
        .collect()
}

/// List items whose fields can be compared (no attachments: Graph v1.0
/// cannot write them), keyed by "list/id" → hash; and the files.
fn comparable(t: &Truth, snap_lists_with_attachments: &[String]) -> Truth {
    t.iter()
        .filter(|((w, p), _)| {
            w == "drive" || (w == "list" && !snap_lists_with_attachments.contains(p))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// "list display name/item id" of stored items that have attachments.
async fn with_attachments(e: &Env, snap: &SnapshotInfo) -> Vec<String> {
    let mut out = Vec::new();
    for l in e.account.list_folder(snap, "lists").await.unwrap() {
        let meta: Value = serde_json::from_slice(l.node.meta()).unwrap();
        let display = meta["displayName"].as_str().unwrap().to_string();
        for i in e
            .account
            .list_folder(snap, &format!("lists/{}", l.name))
            .await
            .unwrap()
        {
            let b = e
                .account
                .read_item_bytes(snap, &format!("lists/{}/{}", l.name, i.name))
                .await
                .unwrap();
            let v: Value = serde_json::from_slice(&b).unwrap();
            if v["fields"]["Attachments"] == true {
                out.push(format!("{display}/{}", i.name));
            }
        }
    }
    out
}

/// List item values by content, ignoring ids (re-created items get new ids).
fn list_hashes(t: &Truth, list: &str) -> Vec<String> {
    let mut v: Vec<String> = t
        .iter()
        .filter(|((w, p), _)| w == "list" && p.starts_with(&format!("{list}/")))
        .map(|(_, h)| h.clone())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn replace_brings_back_deleted_items_lists_and_files() {
    let e = env(tenant(6, 401)).await;
    let site = e.content_site().await;
    let snap = e.backup(&site).await;
    let before = e.truth(&site).await;
    let att = with_attachments(&e, &snap).await;
    // Destroy: a whole list, some items of another, ransomware on the library.
    let lists: Vec<Value> = e
        .graph
        .get_all(&format!("/sites/{site}/lists"))
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l["list"]["template"] != "documentLibrary")
        .collect();
    let thinned = &lists[0];
    let gone = lists.get(1).unwrap_or(&lists[0]);
    let items = e
        .graph
        .get_all(&format!(
            "/sites/{site}/lists/{}/items",
            thinned["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
    for it in items.iter().take(2) {
        e.graph
            .send(Request::delete(format!(
                "/sites/{site}/lists/{}/items/{}",
                thinned["id"].as_str().unwrap(),
                it["id"].as_str().unwrap()
            )))
            .await
            .unwrap();
    }
    e.graph
        .send(Request::delete(format!(
            "/sites/{site}/lists/{}",
            gone["id"].as_str().unwrap()
        )))
        .await
        .unwrap();
    let drive: Value = e
        .graph
        .send(Request::get(format!("/sites/{site}/drive")))
        .await
        .unwrap()
        .json()
        .unwrap();
    e.control(
        &format!("/_sim/drives/{}/ransomware", drive["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_ne!(e.truth(&site).await, before);

    let (r, log, _) = e.restore(&snap, RestoreMode::Replace, None).await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", log.entries());
    assert!(r.containers_created >= 1, "the deleted list was re-created");
    let after = e.truth(&site).await;
    // Files: every original path with its original bytes.
    for ((w, p), h) in before.iter().filter(|((w, _), _)| w == "drive") {
        assert_eq!(after.get(&(w.clone(), p.clone())), Some(h), "{p}");
    }
    // List items: the same values (re-created ones under new ids).
    let cmp_before = comparable(&before, &att);
    for l in [&gone, &thinned] {
        let name = l["displayName"].as_str().unwrap();
        let want = list_hashes(&cmp_before, name);
        let got = list_hashes(&after, name);
        for h in &want {
            assert!(got.contains(h), "{name}: an item's fields came back");
        }
    }
}

#[tokio::test]
async fn bypass_leaves_edited_items_and_non_destructive_makes_new_lists() {
    let e = env(tenant(6, 402)).await;
    let site = e.content_site().await;
    let snap = e.backup(&site).await;
    let lists: Vec<Value> = e
        .graph
        .get_all(&format!("/sites/{site}/lists"))
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l["list"]["template"] != "documentLibrary")
        .collect();
    let l = &lists[0];
    let lid = l["id"].as_str().unwrap();
    let items = e
        .graph
        .get_all(&format!("/sites/{site}/lists/{lid}/items"))
        .await
        .unwrap();
    let edited = items[0]["id"].as_str().unwrap();
    e.graph
        .send(Request::json(
            graph::Method::PATCH,
            format!("/sites/{site}/lists/{lid}/items/{edited}/fields"),
            &json!({"Title": "edited after the backup"}),
        ))
        .await
        .unwrap();
    let edited_truth = e.truth(&site).await;
    let key = (
        "list".to_string(),
        format!("{}/{edited}", l["displayName"].as_str().unwrap()),
    );
    let (r, log, _) = e.restore(&snap, RestoreMode::Bypass, None).await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", log.entries());
    let restored: Vec<_> = log
        .entries()
        .into_iter()
        .filter(|l| l.outcome == engine::restore::ItemOutcome::Restored)
        .collect();
    assert_eq!(r.restored, 0, "nothing was missing: {restored:?}");
    assert!(r.skipped > 0);
    let after = e.truth(&site).await;
    assert_eq!(
        after.get(&key),
        edited_truth.get(&key),
        "bypass leaves the edit"
    );
    assert_eq!(after, edited_truth);

    let (r, log, options) = e
        .restore(&snap, RestoreMode::NonDestructive, None)
        .await
        .unwrap();
    assert_eq!(r.failed, 0, "{:?}", log.entries());
    let after = e.truth(&site).await;
    let name = format!(
        "{} ({})",
        l["displayName"].as_str().unwrap(),
        engine::restore::drive::restore_folder_name(&options)
    );
    let restored = list_hashes(&after, &name);
    assert_eq!(restored.len(), items.len(), "every item in the new list");
    // Library files under the restore folder, the originals untouched.
    let folder = engine::restore::drive::restore_folder_name(&options);
    assert!(
        after
            .keys()
            .any(|(w, p)| w == "drive" && p.contains(&format!("/{folder}/")))
    );
    for (k, v) in &edited_truth {
        assert_eq!(after.get(k), Some(v));
    }
}

#[tokio::test]
async fn a_deleted_site_comes_back_into_a_recreated_site_with_replace() {
    let e = env(tenant(6, 403)).await;
    let site = e.content_site().await;
    let snap = e.backup(&site).await;
    let before = e.truth(&site).await;
    let att = with_attachments(&e, &snap).await;
    e.control(&format!("/_sim/sites/{site}/delete"), json!({}))
        .await;
    // Restoring into the deleted site is refused with what to do.
    let Err(err) = e.restore(&snap, RestoreMode::Replace, None).await else {
        panic!("a restore into a deleted site must be refused");
    };
    assert!(matches!(err, EngineError::EntityGone(_)), "{err}");
    assert!(err.to_string().contains("re-created"), "{err}");
    // The administrator re-creates the site; the restore fills it.
    let new = e
        .control(
            "/_sim/sites",
            json!({"name": "restored-site", "displayName": "Restored site"}),
        )
        .await;
    let new_id = new["id"].as_str().unwrap();
    let (r, log, _) = e
        .restore(&snap, RestoreMode::Replace, Some(new_id))
        .await
        .unwrap();
    assert_eq!(r.failed, 0, "{:?}", log.entries());
    let after = e.truth(new_id).await;
    // Files by library and path, list items by value.
    let files = |t: &Truth| -> BTreeMap<String, String> {
        t.iter()
            .filter(|((w, _), _)| w == "drive")
            .map(|((_, p), h)| (p.clone(), h.clone()))
            .collect()
    };
    assert_eq!(files(&after), files(&before));
    let cmp = comparable(&before, &att);
    let lists: std::collections::BTreeSet<String> = cmp
        .keys()
        .filter(|(w, _)| w == "list")
        .map(|(_, p)| p.rsplit_once('/').unwrap().0.to_string())
        .collect();
    assert!(!lists.is_empty());
    for l in lists {
        let got = list_hashes(&after, &l);
        for h in list_hashes(&cmp, &l) {
            assert!(got.contains(&h), "{l}: an item came back");
        }
    }
    // Pages: every one back by name with its canvas, published.
    assert!(!pages(&before).is_empty());
    assert_eq!(pages(&after), pages(&before));
    assert!(
        !r.notes
            .iter()
            .any(|n| n.contains("Pages were not restored")),
        "{:?}",
        r.notes
    );
}

#[tokio::test]
async fn pages_come_back_with_their_web_parts_in_every_restore_mode() {
    let e = env(tenant(6, 404)).await;
    let site = e.pages_site().await;
    let snap = e.backup(&site).await;
    // The backup holds each page with its expanded canvas.
    let stored = e.account.list_folder(&snap, "pages").await.unwrap();
    assert!(stored.len() >= 2);
    for p in &stored {
        let b = e
            .account
            .read_item_bytes(&snap, &format!("pages/{}", p.name))
            .await
            .unwrap();
        let v: Value = serde_json::from_slice(&b).unwrap();
        let sections = v["canvasLayout"]["horizontalSections"].as_array().unwrap();
        assert!(!sections.is_empty(), "{v}");
        assert!(
            sections[0]["columns"][0]["webparts"][0]["@odata.type"]
                .as_str()
                .unwrap()
                .ends_with("WebPart")
        );
    }
    let before = pages(&e.truth(&site).await);
    // Delete one page; deface and publish another.
    let listed = e
        .graph
        .get_all(&format!("/sites/{site}/pages"))
        .await
        .unwrap();
    let name = |p: &Value| p["name"].as_str().unwrap().to_string();
    let (deleted, altered) = (&listed[0], &listed[1]);
    e.graph
        .send(Request::delete(format!(
            "/sites/{site}/pages/{}",
            deleted["id"].as_str().unwrap()
        )))
        .await
        .unwrap();
    let aid = altered["id"].as_str().unwrap();
    e.graph
        .send(Request::json(
            graph::Method::PATCH,
            format!("/sites/{site}/pages/{aid}/microsoft.graph.sitePage"),
            &json!({"title": "Defaced", "canvasLayout": {"horizontalSections": [{
                "layout": "oneColumn", "columns": [{"width": 12, "webparts": [
                    {"innerHtml": "<p>defaced</p>"}]}]}]}}),
        ))
        .await
        .unwrap();
    e.graph
        .send(Request::new(
            graph::Method::POST,
            format!("/sites/{site}/pages/{aid}/microsoft.graph.sitePage/publish"),
        ))
        .await
        .unwrap();
    let damaged = pages(&e.truth(&site).await);
    assert!(!damaged.contains_key(&name(deleted)));
    assert_ne!(damaged[&name(altered)], before[&name(altered)]);

    // Bypass: the deleted page comes back, the defaced one is left.
    let (r, log, _) = e.restore(&snap, RestoreMode::Bypass, None).await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", log.entries());
    let now = pages(&e.truth(&site).await);
    assert_eq!(now[&name(deleted)], before[&name(deleted)]);
    assert_eq!(now[&name(altered)], damaged[&name(altered)]);
    let entries = page_entries(&log);
    assert!(entries.iter().any(|l| l.name == name(deleted)
        && l.outcome == engine::restore::ItemOutcome::Restored));
    assert!(
        entries
            .iter()
            .any(|l| l.name == name(altered) && l.outcome == engine::restore::ItemOutcome::Skipped)
    );

    // Replace: the defaced page is written over and published again.
    let (r, log, _) = e.restore(&snap, RestoreMode::Replace, None).await.unwrap();
    assert_eq!(r.failed, 0, "{:?}", log.entries());
    assert_eq!(pages(&e.truth(&site).await), before);
    assert!(
        page_entries(&log)
            .iter()
            .any(|l| l.name == name(altered)
                && l.outcome == engine::restore::ItemOutcome::Overwritten)
    );

    // Non-destructive: a new page beside each original, the originals kept.
    let (r, log, options) = e
        .restore(&snap, RestoreMode::NonDestructive, None)
        .await
        .unwrap();
    assert_eq!(r.failed, 0, "{:?}", log.entries());
    let now = pages(&e.truth(&site).await);
    let folder = engine::restore::drive::restore_folder_name(&options);
    for (n, h) in &before {
        assert_eq!(now.get(n), Some(h), "{n} untouched");
        let stem = n.trim_end_matches(".aspx");
        assert_eq!(
            now.get(&format!("{stem} ({folder}).aspx")),
            Some(h),
            "{n} restored beside"
        );
    }
    assert_eq!(now.len(), 2 * before.len());

    // Duplicate: a copy under the duplicate suffix.
    let (_, log, options) = e
        .restore(&snap, RestoreMode::Duplicate, None)
        .await
        .unwrap();
    let entries = page_entries(&log);
    assert!(
        entries
            .iter()
            .all(|l| l.outcome == engine::restore::ItemOutcome::Restored),
        "{entries:?}"
    );
    let now = pages(&e.truth(&site).await);
    for (n, h) in &before {
        assert_eq!(
            now.get(&options.duplicate_name(n)),
            Some(h),
            "{n} duplicated"
        );
    }
    assert_eq!(now.len(), 3 * before.len());
}

#[tokio::test]
async fn a_single_page_is_restored_by_its_path() {
    let e = env(tenant(6, 405)).await;
    let site = e.pages_site().await;
    let snap = e.backup(&site).await;
    let before = pages(&e.truth(&site).await);
    let listed = e
        .graph
        .get_all(&format!("/sites/{site}/pages"))
        .await
        .unwrap();
    for p in &listed {
        e.graph
            .send(Request::delete(format!(
                "/sites/{site}/pages/{}",
                p["id"].as_str().unwrap()
            )))
            .await
            .unwrap();
    }
    assert!(pages(&e.truth(&site).await).is_empty());
    let chosen = &listed[1];
    let selection = Selection {
        items: vec![format!("pages/{}", chosen["id"].as_str().unwrap())],
        ..Selection::default()
    };
    let (r, log, _) = e
        .restore_selected(&snap, RestoreMode::Replace, None, selection)
        .await
        .unwrap();
    assert_eq!(r.failed, 0, "{:?}", log.entries());
    assert_eq!(r.restored, 1, "{:?}", log.entries());
    let n = chosen["name"].as_str().unwrap().to_string();
    let now = pages(&e.truth(&site).await);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now.get(&n), before.get(&n));
    // Restored pages are published, as Graph shows them.
    let p: Value = e
        .graph
        .send(Request::get(format!("/sites/{site}/pages")))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(p["value"][0]["publishingState"]["level"], "published");
}
