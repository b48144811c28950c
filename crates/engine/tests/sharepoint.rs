//! SharePoint site backups against the tenant simulator: discovery, and
//! snapshots whose list items and pages equal the simulator's ground truth
//! (BLAKE3 of the same canonical JSON) through activity, deletions, expired
//! delta links, faults, cancellation and a deleted site.

use std::collections::{HashMap, HashSet};

use engine::faults::Outcome;
use engine::progress::CountingProgress;
use engine::sharepoint::{
    BackupReport, DiscoveredSite, SiteBackup, SiteBackupOptions, SiteSubService, backup_site,
    discover_sites,
};
use engine::{Cancel, EngineError, SubService};
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

/// Lists, items and pages only: the document libraries' part depends on
/// the drive backup (see `document_libraries_equal_ground_truth`).
fn site_only() -> SiteBackupOptions {
    SiteBackupOptions {
        sub_services: vec![SiteSubService::Site],
    }
}

impl Env {
    async fn truth(&self, site: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_sim/truth/sites/{site}", self.sim.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    async fn backup(
        &self,
        site: &str,
        parent: Option<&SnapshotId>,
        options: &SiteBackupOptions,
    ) -> BackupReport {
        self.backup_with(site, parent, options, &Cancel::new())
            .await
            .unwrap()
    }

    async fn backup_with(
        &self,
        site: &str,
        parent: Option<&SnapshotId>,
        options: &SiteBackupOptions,
        cancel: &Cancel,
    ) -> Result<BackupReport, EngineError> {
        let progress = CountingProgress::default();
        backup_site(SiteBackup {
            graph: &self.graph,
            vault: &self.account,
            site_id: site,
            parent,
            options,
            progress: &progress,
            cancel,
            meta: json!({"test": true}),
        })
        .await
    }

    /// A site with generic lists (with items) and pages.
    async fn content_site(&self) -> String {
        for s in discover_sites(&self.graph).await.unwrap() {
            let truth = self.truth(&s.graph_id).await;
            let lists = truth.iter().filter(|t| t["workload"] == "list").count();
            let pages = truth.iter().filter(|t| t["workload"] == "pages").count();
            if lists >= 3 && pages >= 1 {
                return s.graph_id;
            }
        }
        panic!("the simulated tenant has a site with list items and pages");
    }

    async fn generic_lists(&self, site: &str) -> Vec<Value> {
        self.graph
            .get_all(&format!("/sites/{site}/lists"))
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l["list"]["template"] != "documentLibrary")
            .collect()
    }
}

fn part(r: &BackupReport, sub: SubService) -> &engine::SubServiceReport {
    r.part(sub)
        .unwrap_or_else(|| panic!("no {sub} part in {:?}", r.parts))
}

fn hash(s: &str) -> String {
    blake3::hash(s.as_bytes()).to_hex().to_string()
}

/// The canonical JSON the simulator hashes for a list item: its own fields
/// (without what SharePoint adds to every item) and its attachments.
fn list_item_canon(item: &Value) -> String {
    let mut fields = item["fields"].as_object().cloned().unwrap_or_default();
    for k in ["id", "ContentType", "Modified", "Created", "Attachments"] {
        fields.remove(k);
    }
    fields.retain(|k, _| !k.starts_with('@'));
    json!({"fields": fields, "attachments": []}).to_string()
}

/// A page as the simulator's truth hashes it: title, layout, title area and
/// canvas (web parts included, ids left out) and whether it is published.
fn page_canon(page: &Value) -> String {
    // Graph types the canvas itself; the truth keeps only its content.
    let mut canvas = page["canvasLayout"].clone();
    if let Some(m) = canvas.as_object_mut() {
        m.remove("@odata.type");
    }
    json!({
        "title": page["title"],
        "pageLayout": page["pageLayout"],
        "titleArea": without_ids(&page["titleArea"]),
        "canvasLayout": without_ids(&canvas),
        "published": page["publishingState"]["level"] == "published",
    })
    .to_string()
}

/// `v` without `id` members and OData annotations other than `@odata.type`.
fn without_ids(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    k.as_str() != "id" && (k.as_str() == "@odata.type" || !k.contains("@odata."))
                })
                .map(|(k, v)| (k.clone(), without_ids(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_ids).collect()),
        other => other.clone(),
    }
}

async fn json_at(account: &vault::Account, snap: &SnapshotInfo, path: &str) -> Value {
    serde_json::from_slice(&account.read_item_bytes(snap, path).await.unwrap()).unwrap()
}

/// What a snapshot holds of a site's lists: "list display name/item id" →
/// (hash of the canonical JSON, whether the item has attachments).
async fn stored_list_items(
    account: &vault::Account,
    snap: &SnapshotInfo,
) -> HashMap<String, (String, bool)> {
    let mut out = HashMap::new();
    let lists = match account.list_folder(snap, "lists").await {
        Ok(l) => l,
        Err(vault::Error::NoSuchEntry(_)) => return out,
        Err(e) => panic!("{e}"),
    };
    for l in lists {
        let meta: Value = serde_json::from_slice(l.node.meta()).unwrap();
        assert_eq!(
            meta["id"].as_str(),
            Some(l.name.as_str()),
            "list folder meta"
        );
        assert!(
            meta["columns"].as_array().is_some_and(|c| !c.is_empty()),
            "list {} is stored with its columns",
            l.name
        );
        let display = meta["displayName"].as_str().unwrap().to_string();
        for e in account
            .list_folder(snap, &format!("lists/{}", l.name))
            .await
            .unwrap()
        {
            let item = json_at(account, snap, &format!("lists/{}/{}", l.name, e.name)).await;
            assert_eq!(item["id"].as_str(), Some(e.name.as_str()));
            let attachments = item["fields"]["Attachments"] == true;
            out.insert(
                format!("{display}/{}", e.name),
                (hash(&list_item_canon(&item)), attachments),
            );
        }
    }
    out
}

/// The snapshot's list items and pages are exactly the simulator's now.
async fn assert_matches_truth(e: &Env, site: &str, id: &SnapshotId) {
    let snap = e.account.snapshot(id).await.unwrap();
    assert_eq!(snap.meta["kind"], "sharepoint-site");
    assert_eq!(snap.meta["site"], site);
    assert_eq!(snap.meta["format"], 1);
    let truth = e.truth(site).await;
    let stored = stored_list_items(&e.account, &snap).await;
    let truth_items: Vec<&Value> = truth.iter().filter(|t| t["workload"] == "list").collect();
    assert!(!truth_items.is_empty(), "the site has list items");
    let mut checked = 0;
    for t in &truth_items {
        let path = t["path"].as_str().unwrap();
        let (h, attachments) = stored
            .get(path)
            .unwrap_or_else(|| panic!("list item {path} missing from the snapshot"));
        if *attachments {
            // Graph does not expose attachment content: the truth's hash
            // covers it, ours cannot. The fields are compared through the
            // item itself below.
            continue;
        }
        assert_eq!(h, t["hash"].as_str().unwrap(), "list item {path} differs");
        checked += 1;
    }
    assert!(checked > 0, "some list items were compared byte for byte");
    let truth_paths: HashSet<&str> = truth_items
        .iter()
        .map(|t| t["path"].as_str().unwrap())
        .collect();
    let stored_paths: HashSet<&str> = stored.keys().map(String::as_str).collect();
    assert_eq!(stored_paths, truth_paths, "list items");
    // Pages: same canonical JSON, same set.
    let truth_pages: HashMap<&str, &str> = truth
        .iter()
        .filter(|t| t["workload"] == "pages")
        .map(|t| (t["id"].as_str().unwrap(), t["hash"].as_str().unwrap()))
        .collect();
    let pages = e.account.list_folder(&snap, "pages").await.unwrap();
    let ids: HashSet<&str> = pages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(ids, truth_pages.keys().copied().collect(), "pages");
    for p in &pages {
        let page = json_at(&e.account, &snap, &format!("pages/{}", p.name)).await;
        assert_eq!(
            hash(&page_canon(&page)),
            truth_pages[p.name.as_str()],
            "page {}",
            p.name
        );
    }
    // The site's own JSON.
    let s = json_at(&e.account, &snap, "site").await;
    assert_eq!(s["id"], site);
}

async fn count_list_items(e: &Env, id: &SnapshotId) -> usize {
    let snap = e.account.snapshot(id).await.unwrap();
    stored_list_items(&e.account, &snap).await.len()
}

#[tokio::test]
async fn discovery_lists_collections_and_sub_sites_without_personal_sites() {
    let e = env(small_tenant(12, 51)).await;
    let found: Vec<DiscoveredSite> = discover_sites(&e.graph).await.unwrap();
    // getAllSites lists OneDrive sites: they are left out.
    let listed = e.graph.get_all("/sites/getAllSites").await.unwrap();
    assert!(listed.iter().any(|s| s["isPersonalSite"] == true));
    assert!(
        found
            .iter()
            .all(|s| !s.web_url.contains("-my.sharepoint.com")),
        "no personal sites"
    );
    let ids: HashSet<&str> = found.iter().map(|s| s.graph_id.as_str()).collect();
    assert_eq!(ids.len(), found.len(), "no site twice");
    // Every site of the tenant (search lists sub-sites too), and no other.
    let all: HashSet<String> = e
        .graph
        .get_all("/sites?search=*")
        .await
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        all.iter().map(String::as_str).collect::<HashSet<_>>(),
        "every site"
    );
    // Sub-sites, with their parent.
    let subs: Vec<&DiscoveredSite> = found.iter().filter(|s| s.is_sub_site).collect();
    assert!(!subs.is_empty(), "sub-sites are found");
    for s in &subs {
        let parent = s.parent_id.as_deref().unwrap();
        assert!(
            ids.contains(parent),
            "the parent of {} is listed",
            s.web_url
        );
        let under: Vec<Value> = e
            .graph
            .get_all(&format!("/sites/{parent}/sites"))
            .await
            .unwrap();
        assert!(under.iter().any(|x| x["id"] == s.graph_id.as_str()));
        assert_eq!(s.properties["isSubSite"], true);
    }
    // Group-connected team sites carry their group.
    let groups = e
        .graph
        .get_all("/groups?$select=id,groupTypes")
        .await
        .unwrap();
    let unified: Vec<&str> = groups
        .iter()
        .filter(|g| {
            g["groupTypes"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "Unified"))
        })
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert!(!unified.is_empty());
    for gid in &unified {
        let site: Value = e
            .graph
            .send(Request::get(format!("/groups/{gid}/sites/root")))
            .await
            .unwrap()
            .json()
            .unwrap();
        let d = found
            .iter()
            .find(|s| s.graph_id == site["id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("the team site of group {gid} is found"));
        assert_eq!(d.group_id.as_deref(), Some(*gid));
    }
    let with_group = found.iter().filter(|s| s.group_id.is_some()).count();
    assert_eq!(with_group, unified.len(), "only team sites are marked");
}

#[tokio::test]
async fn site_backups_equal_ground_truth_through_activity_and_cost_what_changed() {
    let e = env(small_tenant(10, 52)).await;
    let site = e.content_site().await;
    let first = e.backup(&site, None, &site_only()).await;
    assert_eq!(
        part(&first, SubService::Site).outcome,
        Outcome::Success,
        "{:?}",
        first.parts
    );
    assert!(part(&first, SubService::Site).counts.new > 0);
    let s1 = first.snapshot_id.clone().unwrap();
    assert_matches_truth(&e, &site, &s1).await;
    assert_eq!(
        count_list_items(&e, &s1).await as u64
            + e.account
                .list_folder(&e.account.snapshot(&s1).await.unwrap(), "pages")
                .await
                .unwrap()
                .len() as u64,
        part(&first, SubService::Site).counts.total,
        "the report's total is what the snapshot holds"
    );

    // Activity, plus a change, an addition and a deletion of our own.
    e.control(
        "/_sim/activity",
        json!({"days": 2, "entities": [format!("site:{site}")]}),
    )
    .await;
    let list = e.generic_lists(&site).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let items = e
        .graph
        .get_all(&format!("/sites/{site}/lists/{list}/items"))
        .await
        .unwrap();
    let changed = items[0]["id"].as_str().unwrap().to_string();
    let victim = items[1]["id"].as_str().unwrap().to_string();
    e.graph
        .send(Request::json(
            reqwest::Method::PATCH,
            format!("/sites/{site}/lists/{list}/items/{changed}/fields"),
            &json!({"Title": "Changed by the test"}),
        ))
        .await
        .unwrap();
    e.graph
        .send(Request::json(
            reqwest::Method::POST,
            format!("/sites/{site}/lists/{list}/items"),
            &json!({"fields": {"Title": "Added by the test"}}),
        ))
        .await
        .unwrap();
    e.graph
        .send(Request::delete(format!(
            "/sites/{site}/lists/{list}/items/{victim}"
        )))
        .await
        .unwrap();

    let second = e.backup(&site, Some(&s1), &site_only()).await;
    let p = part(&second, SubService::Site);
    assert_eq!(p.outcome, Outcome::Success, "{:?}", second.parts);
    assert!(p.counts.new >= 1, "{:?}", p.counts);
    assert!(p.counts.changed >= 1, "{:?}", p.counts);
    assert!(p.counts.deleted >= 1, "{:?}", p.counts);
    let s2 = second.snapshot_id.clone().unwrap();
    assert_matches_truth(&e, &site, &s2).await;
    assert!(
        second.requests < first.requests,
        "an incremental costs less than a full backup ({} vs {})",
        second.requests,
        first.requests
    );
    // The first snapshot still holds the deleted item.
    let snap1 = e.account.snapshot(&s1).await.unwrap();
    let kept = json_at(&e.account, &snap1, &format!("lists/{list}/{victim}")).await;
    assert_eq!(kept["id"], victim.as_str());

    println!(
        "site backup requests: first {}, after activity {}",
        first.requests, second.requests
    );
    // Nothing changed: one delta round per list plus the listings.
    let lists = e.generic_lists(&site).await.len() as u64;
    let third = e.backup(&site, Some(&s2), &site_only()).await;
    let p = part(&third, SubService::Site);
    assert_eq!(
        (p.counts.new, p.counts.changed, p.counts.deleted),
        (0, 0, 0),
        "{:?}",
        p.counts
    );
    assert!(
        third.requests <= 3 + lists,
        "an unchanged site costs {} requests for {lists} lists",
        third.requests
    );
    println!("site backup requests: unchanged {}", third.requests);
    assert_matches_truth(&e, &site, third.snapshot_id.as_ref().unwrap()).await;
}

#[tokio::test]
async fn an_expired_list_delta_link_enumerates_again_and_drops_what_is_gone() {
    let e = env(small_tenant(10, 53)).await;
    let site = e.content_site().await;
    let first = e.backup(&site, None, &site_only()).await;
    let s1 = first.snapshot_id.unwrap();
    let list = e.generic_lists(&site).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let items = e
        .graph
        .get_all(&format!("/sites/{site}/lists/{list}/items"))
        .await
        .unwrap();
    let victim = items[0]["id"].as_str().unwrap().to_string();
    e.graph
        .send(Request::delete(format!(
            "/sites/{site}/lists/{list}/items/{victim}"
        )))
        .await
        .unwrap();
    e.control(
        "/_sim/activity",
        json!({"days": 1, "entities": [format!("site:{site}")]}),
    )
    .await;
    e.control("/_sim/delta/invalidate", json!({})).await;
    let second = e.backup(&site, Some(&s1), &site_only()).await;
    let p = part(&second, SubService::Site);
    assert_eq!(p.outcome, Outcome::Success, "{:?}", second.parts);
    assert!(
        p.notes.iter().any(|n| n.contains("expired")),
        "the resync is reported: {:?}",
        p.notes
    );
    assert!(p.counts.deleted >= 1, "{:?}", p.counts);
    let s2 = second.snapshot_id.unwrap();
    assert_matches_truth(&e, &site, &s2).await;
    let snap2 = e.account.snapshot(&s2).await.unwrap();
    assert!(
        e.account
            .read_item_bytes(&snap2, &format!("lists/{list}/{victim}"))
            .await
            .is_err(),
        "the deleted item is gone from the new snapshot"
    );
}

#[tokio::test]
async fn lists_created_and_deleted_follow_the_site() {
    let e = env(small_tenant(10, 58)).await;
    let site = e.content_site().await;
    let first = e.backup(&site, None, &site_only()).await;
    let s1 = first.snapshot_id.unwrap();
    let doomed = e.generic_lists(&site).await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doomed_items = e
        .graph
        .get_all(&format!("/sites/{site}/lists/{doomed}/items"))
        .await
        .unwrap()
        .len() as u64;
    assert!(doomed_items > 0);
    e.graph
        .send(Request::delete(format!("/sites/{site}/lists/{doomed}")))
        .await
        .unwrap();
    let created: Value = e
        .graph
        .send(Request::json(
            reqwest::Method::POST,
            format!("/sites/{site}/lists"),
            &json!({
                "displayName": "Backup test list",
                "columns": [{"name": "Amount", "number": {}}],
                "list": {"template": "genericList"},
            }),
        ))
        .await
        .unwrap()
        .json()
        .unwrap();
    let new_list = created["id"].as_str().unwrap().to_string();
    for n in 0..3 {
        e.graph
            .send(Request::json(
                reqwest::Method::POST,
                format!("/sites/{site}/lists/{new_list}/items"),
                &json!({"fields": {"Title": format!("Row {n}"), "Amount": n}}),
            ))
            .await
            .unwrap();
    }
    let second = e.backup(&site, Some(&s1), &site_only()).await;
    let p = part(&second, SubService::Site);
    assert_eq!(p.outcome, Outcome::Success, "{:?}", second.parts);
    assert!(p.counts.new >= 3, "{:?}", p.counts);
    assert!(p.counts.deleted >= doomed_items, "{:?}", p.counts);
    let s2 = second.snapshot_id.clone().unwrap();
    assert_matches_truth(&e, &site, &s2).await;
    let snap2 = e.account.snapshot(&s2).await.unwrap();
    let lists: Vec<String> = e
        .account
        .list_folder(&snap2, "lists")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert!(lists.contains(&new_list));
    assert!(!lists.contains(&doomed), "the deleted list is gone");
    assert_eq!(
        count_list_items(&e, &s2).await as u64
            + e.account.list_folder(&snap2, "pages").await.unwrap().len() as u64,
        p.counts.total,
        "the report's total is what the snapshot holds"
    );
}

#[tokio::test]
async fn faults_and_throttling_lose_nothing() {
    let mut cfg = small_tenant(10, 54);
    cfg.token_lifetime_secs = 2;
    let e = env(cfg).await;
    let site = e.content_site().await;
    let first = e.backup(&site, None, &site_only()).await;
    let s1 = first.snapshot_id.unwrap();
    e.control(
        "/_sim/activity",
        json!({"days": 3, "entities": [format!("site:{site}")]}),
    )
    .await;
    e.sim.sim.set_faults(
        0.1,
        vec![
            FaultKind::Throttled,
            FaultKind::Unavailable,
            FaultKind::Drop,
        ],
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let second = e.backup(&site, Some(&s1), &site_only()).await;
    assert_eq!(
        part(&second, SubService::Site).outcome,
        Outcome::Success,
        "{:?}",
        second.parts
    );
    e.sim.sim.set_faults(0.0, Vec::new());
    assert_matches_truth(&e, &site, second.snapshot_id.as_ref().unwrap()).await;
}

#[tokio::test]
async fn malformed_answers_give_an_error_not_a_panic() {
    let e = env(small_tenant(6, 55)).await;
    let site = e.content_site().await;
    e.sim.sim.set_faults(1.0, vec![FaultKind::Malformed]);
    let r = e
        .backup_with(&site, None, &site_only(), &Cancel::new())
        .await;
    e.sim.sim.set_faults(0.0, Vec::new());
    match r {
        Err(err) => assert!(!err.to_string().is_empty()),
        Ok(report) => assert_ne!(report.outcome(), Outcome::Success, "{:?}", report.parts),
    }
}

/// Asks for cancellation as soon as one item is done.
struct CancelAfterFirstItem(Cancel);

impl engine::progress::Progress for CancelAfterFirstItem {
    fn advance(&self, _items: u64, _bytes: u64) {
        self.0.cancel();
    }
}

#[tokio::test]
async fn a_cancelled_backup_commits_nothing_and_a_deleted_site_is_reported_gone() {
    let e = env(small_tenant(8, 56)).await;
    let site = e.content_site().await;
    let cancel = Cancel::new();
    cancel.cancel();
    match e
        .backup_with(&site, None, &SiteBackupOptions::default(), &cancel)
        .await
    {
        Ok(r) => assert!(r.snapshot_id.is_none()),
        Err(err) => assert!(matches!(err, EngineError::Cancelled), "{err}"),
    }
    assert!(e.account.snapshots().await.unwrap().is_empty());
    // Cancelled half-way, after the first stored item: nothing committed.
    let cancel = Cancel::new();
    let progress = CancelAfterFirstItem(cancel.clone());
    let r = backup_site(SiteBackup {
        graph: &e.graph,
        vault: &e.account,
        site_id: &site,
        parent: None,
        options: &site_only(),
        progress: &progress,
        cancel: &cancel,
        meta: json!({}),
    })
    .await;
    assert!(cancel.is_cancelled());
    match r {
        Ok(r) => {
            assert!(r.snapshot_id.is_none());
            assert_eq!(part(&r, SubService::Site).outcome, Outcome::Cancelled);
        }
        Err(err) => assert!(matches!(err, EngineError::Cancelled), "{err}"),
    }
    assert!(e.account.snapshots().await.unwrap().is_empty());

    let first = e.backup(&site, None, &site_only()).await;
    let s1 = first.snapshot_id.unwrap();
    let held = count_list_items(&e, &s1).await;
    assert!(held > 0);
    e.control(&format!("/_sim/sites/{site}/delete"), json!({}))
        .await;
    let err = e
        .backup_with(
            &site,
            Some(&s1),
            &SiteBackupOptions::default(),
            &Cancel::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::EntityGone(_)), "{err}");
    assert_eq!(
        e.account.snapshots().await.unwrap().len(),
        1,
        "nothing committed for the deleted site"
    );
    // The old snapshot stays readable.
    assert_eq!(count_list_items(&e, &s1).await, held);
    let snap = e.account.snapshot(&s1).await.unwrap();
    assert_eq!(
        json_at(&e.account, &snap, "site").await["id"],
        site.as_str()
    );
}

/// Every file of the site's document libraries, byte for byte. Needs the
/// drive backup (crates/engine/src/drive), built separately: until it is
/// merged, `backup_drive` answers "not built yet" and this test fails.
#[tokio::test]
async fn document_libraries_equal_ground_truth() {
    let e = env(small_tenant(10, 57)).await;
    let site = e.content_site().await;
    let first = e.backup(&site, None, &SiteBackupOptions::default()).await;
    assert_eq!(first.outcome(), Outcome::Success, "{:?}", first.parts);
    let s1 = first.snapshot_id.clone().unwrap();
    assert_libraries_match(&e, &site, &s1).await;
    e.control(
        "/_sim/activity",
        json!({"days": 2, "entities": [format!("site:{site}")]}),
    )
    .await;
    let second = e
        .backup(&site, Some(&s1), &SiteBackupOptions::default())
        .await;
    assert_eq!(second.outcome(), Outcome::Success, "{:?}", second.parts);
    let s2 = second.snapshot_id.clone().unwrap();
    assert_libraries_match(&e, &site, &s2).await;
    assert_matches_truth(&e, &site, &s2).await;
    let drives = e
        .graph
        .get_all(&format!("/sites/{site}/drives"))
        .await
        .unwrap();
    let state = &second.delta_state["drive"];
    for d in &drives {
        assert!(
            state.get(d["id"].as_str().unwrap()).is_some(),
            "delta state of library {}",
            d["name"]
        );
    }
}

/// Each "drive" truth item is stored under `drives/` (found by its id, as
/// an entry name or in its JSON metadata) with the same BLAKE3.
async fn assert_libraries_match(e: &Env, site: &str, id: &SnapshotId) {
    let snap = e.account.snapshot(id).await.unwrap();
    let mut by_id: HashMap<String, String> = HashMap::new();
    let mut stack = vec!["drives".to_string()];
    while let Some(p) = stack.pop() {
        for entry in e.account.list_folder(&snap, &p).await.unwrap() {
            let path = format!("{p}/{}", entry.name);
            match &entry.node {
                Node::Folder { .. } => stack.push(path),
                Node::Item { meta, .. } => {
                    by_id.insert(entry.name.clone(), path.clone());
                    if let Ok(m) = serde_json::from_slice::<Value>(meta)
                        && let Some(i) = m["id"].as_str()
                    {
                        by_id.insert(i.to_string(), path);
                    }
                }
            }
        }
    }
    let truth = e.truth(site).await;
    let files: Vec<&Value> = truth.iter().filter(|t| t["workload"] == "drive").collect();
    assert!(!files.is_empty(), "the site's libraries have files");
    for t in files {
        let tid = t["id"].as_str().unwrap();
        let path = by_id
            .get(tid)
            .unwrap_or_else(|| panic!("file {} missing from the snapshot", t["path"]));
        let bytes = e.account.read_item_bytes(&snap, path).await.unwrap();
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            t["hash"].as_str().unwrap(),
            "content of {}",
            t["path"]
        );
    }
}
