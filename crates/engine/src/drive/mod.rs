//! OneDrive and document libraries (SPEC F-D2, F-D3): the backup of one
//! drive into a folder of a snapshot. OneDrive backups, SharePoint site
//! backups and group/team backups all go through [`backup_drive`].
//!
//! # Layout
//!
//! A drive backed up into the snapshot folder `<root>` is laid out flat, by
//! the items' immutable Graph ids, so that a move or a rename is a metadata
//! change and never a new copy of the content:
//!
//! ```text
//! <root>/drive                         meta: the drive's Graph JSON (quota, owner, webUrl)
//! <root>/items/<item id>               meta: the driveItem JSON (name, parentReference,
//!                                      file/folder/package facets, hashes, timestamps,
//!                                      createdBy/lastModifiedBy, shared);
//!                                      content: the file's bytes (empty for folders,
//!                                      packages such as OneNote notebooks, and the root)
//! <root>/versions/<item id>/           meta: {"current": <version id of the content above>}
//! <root>/versions/<item id>/<version>  meta: the driveItemVersion JSON; content: that older
//!                                      version's bytes
//! <root>/permissions/<item id>         meta: {"eTag"}; content: the item's permissions (JSON array)
//! ```
//!
//! The tree is rebuilt from each item's `parentReference.id`; the root item
//! carries the `root` facet. OneNote notebooks are packages (folders with a
//! `package` facet) whose sections are ordinary files, so they are backed up
//! like any other part of the tree.
//!
//! # Incremental backups
//!
//! The snapshot starts as a by-reference copy of its parent and applies one
//! round of the drive's delta (`/drives/{id}/root/delta`, the link kept in
//! the returned state). An expired link (410) gives a full enumeration,
//! compared with the parent's entries to find what was deleted.
//!
//! - Content is downloaded (streamed from the pre-authenticated URL that
//!   `/content` redirects to, never held whole in memory) only when it
//!   changed: the file's `quickXorHash`/`sha256Hash` (or its `cTag`, when
//!   Graph gives no hash) is compared with the stored metadata; a rename, a
//!   move or any other metadata change reuses the stored content.
//! - Versions are listed only for files whose content changed (a new version
//!   is a content change). Versions are immutable: one already stored is
//!   never downloaded again, and the version that was current in the parent
//!   reuses the parent's content (so after ransomware rewrote every file,
//!   the originals kept as versions cost no download).
//! - Permissions are read only for shared items (`shared` facet) that are
//!   new, whose eTag changed or that delta flags with
//!   `@microsoft.graph.sharedChanged` (asked for with
//!   `Prefer: deltashowsharingchanges`); an item no longer shared loses its
//!   stored permissions.
//!
//! Version retention in Microsoft 365 can delete old versions: a file whose
//! content changed has its stored versions reconciled with the listing;
//! versions of unchanged files are carried as they were.

mod items;

use std::collections::{HashMap, HashSet};
use std::future::Future;

use graph::{DeltaChange, GraphError, Request};
use serde_json::{Value, json};

use crate::error::{EngineError, Result};
use crate::faults::FaultBus;
use crate::report::ItemCounts;
use crate::run::{PartCtx, Round, id_of, meta_json, seg, strip_annotations};

use items::PlanKind;

/// Downloads in flight for one drive.
const DOWNLOADS_IN_FLIGHT: usize = 4;

/// Items per delta page (Graph allows up to 1000 for drives; large pages
/// keep the first enumeration of a big drive to few requests).
const DELTA_PAGE: usize = 500;

/// Delta preferences: report deletions as `deleted` facets, include items
/// below permission gaps, and flag sharing changes so that permissions are
/// re-read exactly when they changed.
const DELTA_PREFER: &str = "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges, hierarchicalsharing";

/// Attempts at a Graph read (a delta round, a listing, a download) when the
/// connection drops mid-answer or the answer is cut short (the pipeline
/// retries 429/503 by itself, but not a body that breaks off).
const ATTEMPTS: u32 = 3;

/// Backs up the drive `drive_id` into the snapshot folder `root` (e.g.
/// `drives/<drive id>`), starting from `prev`, the delta state this
/// function returned for the same drive last time (Null on a first backup).
/// Returns the new delta state.
pub async fn backup_drive(
    ctx: &PartCtx<'_>,
    root: &str,
    drive_id: &str,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let drive_id = seg(drive_id)?;
    ctx.check_cancel()?;
    // The drive itself: name, owner, quota, web URL.
    let mut drive = get_json(ctx, &format!("/drives/{drive_id}")).await?;
    strip_annotations(&mut drive);
    ctx.writer
        .put_bytes(&format!("{root}/drive"), to_vec(&drive), Vec::new())
        .await?;

    let prev_link = prev.get("deltaLink").and_then(Value::as_str);
    let round = delta_round(ctx, drive_id, prev_link).await?;
    if round.resynced {
        bus.recovered(format!(
            "drive {drive_id}: delta token expired, enumerated again"
        ));
    }
    ctx.check_cancel()?;

    // The same item may appear more than once in a round: the last
    // occurrence is its state.
    let mut changes = Changes::default();
    for change in round.changes {
        match change {
            DeltaChange::Removed { id, .. } => changes.note(id, None, root, bus),
            DeltaChange::Changed(v) => match id_of(&v) {
                Some(id) => changes.note(id.to_string(), Some(v), root, bus),
                None => bus.item_failed(
                    "",
                    root,
                    "Microsoft Graph listed a drive item without an id; it was skipped",
                ),
            },
        }
    }
    // Items that failed last time and that this round does not bring again:
    // read them once more, so that a failure is not forgotten once the
    // delta link has moved past it.
    for id in retry_ids(prev) {
        if changes.latest.contains_key(&id) || seg(&id).is_err() {
            continue;
        }
        ctx.check_cancel()?;
        match get_json(ctx, &format!("/drives/{drive_id}/items/{id}")).await {
            Ok(v) if id_of(&v) == Some(id.as_str()) => changes.note(id, Some(v), root, bus),
            Ok(_) => bus.item_failed(
                id.clone(),
                format!("{root}/items/{id}"),
                "Microsoft Graph answered with another item than the one asked for",
            ),
            Err(EngineError::Graph(e)) if e.is_not_found() => changes.note(id, None, root, bus),
            Err(EngineError::Graph(e)) => bus.item_failed(
                id.clone(),
                format!("{root}/items/{id}"),
                format!("{e} ({})", e.guidance()),
            ),
            Err(e) => return Err(e),
        }
    }

    let mut removed_container = false;
    let mut gone: Vec<String> = Vec::new();
    let mut plans = Vec::new();
    let Changes { order, mut latest } = changes;
    for id in &order {
        let path = format!("{root}/items/{id}");
        let old = ctx.writer.parent_node(&path).await?;
        match latest.remove(id).flatten() {
            None => {
                if let Some(old) = &old {
                    if is_file(meta_json(old).as_ref()) {
                        counts.deleted += 1;
                    } else {
                        removed_container = true;
                    }
                }
                remove_item(ctx, root, id).await?;
                gone.push(id.clone());
            }
            Some(v) => plans.push(items::plan(ctx, root, id, v, old, counts).await?),
        }
    }
    if round.resynced {
        // A full enumeration lists everything that exists: whatever the
        // parent has that it did not list is gone.
        let seen: HashSet<&str> = order.iter().map(String::as_str).collect();
        for e in ctx.parent_entries(&format!("{root}/items")).await? {
            if !seen.contains(e.name.as_str()) {
                if is_file(meta_json(&e.node).as_ref()) {
                    counts.deleted += 1;
                } else {
                    removed_container = true;
                }
                remove_item(ctx, root, &e.name).await?;
                gone.push(e.name);
            }
        }
    }
    let kept: Vec<(String, Option<String>, bool)> = plans
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                parent_id(&p.meta).map(str::to_string),
                p.is_file,
            )
        })
        .collect();

    ctx.progress.set_total(
        plans.len() as u64,
        plans
            .iter()
            .filter(|p| matches!(p.kind, PlanKind::Download))
            .filter_map(|p| p.size)
            .sum::<u64>(),
    );
    let failed = items::run_plans(ctx, root, drive_id, plans, bus, counts).await?;
    ctx.check_cancel()?;

    if removed_container {
        // What the snapshot holds now: the parent's items, this round applied.
        let mut tree: HashMap<String, (Option<String>, bool)> = HashMap::new();
        for e in ctx.parent_entries(&format!("{root}/items")).await? {
            let meta = meta_json(&e.node);
            let parent = meta.as_ref().and_then(parent_id).map(str::to_string);
            tree.insert(e.name, (parent, is_file(meta.as_ref())));
        }
        for id in &gone {
            tree.remove(id);
        }
        for (id, parent, file) in kept {
            tree.insert(id, (parent, file));
        }
        prune_orphans(ctx, root, tree, counts).await?;
    }
    Ok(json!({ "deltaLink": round.link, "retry": failed }))
}

/// What a delta round (and the retries) said about each item, in the order
/// first seen; the last occurrence of an item is its state (None: removed).
#[derive(Default)]
struct Changes {
    order: Vec<String>,
    latest: HashMap<String, Option<Value>>,
}

impl Changes {
    fn note(&mut self, id: String, state: Option<Value>, root: &str, bus: &mut FaultBus) {
        if id.is_empty() {
            return;
        }
        if seg(&id).is_err() {
            bus.item_failed(
                id.clone(),
                root,
                format!("Microsoft Graph returned an unusable item id {id:?}"),
            );
            return;
        }
        if self.latest.insert(id.clone(), state).is_none() {
            self.order.push(id);
        }
    }
}

/// The items the previous run could not back up.
fn retry_ids(prev: &Value) -> Vec<String> {
    prev.get("retry")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// One delta round of the drive, tried again when the connection breaks
/// off mid-answer.
async fn delta_round(ctx: &PartCtx<'_>, drive_id: &str, prev: Option<&str>) -> Result<Round> {
    let make = |url: &str| {
        Request::get(url)
            .page_size(DELTA_PAGE)
            .header("Prefer", DELTA_PREFER)
    };
    let fresh = format!("/drives/{drive_id}/root/delta");
    with_retry(|| ctx.delta_round(make, &fresh, prev)).await
}

/// One Graph object, read again when the answer broke off.
pub(crate) async fn get_json(ctx: &PartCtx<'_>, url: &str) -> Result<Value> {
    with_retry(|| async {
        ctx.requests.add(1);
        Ok(ctx.graph.send(Request::get(url)).await?.json::<Value>()?)
    })
    .await
}

/// Runs a Graph read again when it failed for a transient reason (a
/// dropped connection, an answer cut short).
pub(crate) async fn with_retry<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if attempt < ATTEMPTS && retryable_read(&e) => attempt += 1,
            other => return other,
        }
    }
}

/// Transient trouble, or a JSON answer cut short by a broken connection.
fn retryable_read(e: &EngineError) -> bool {
    matches!(e, EngineError::Graph(GraphError::Decode { .. })) || e.is_retryable()
}

/// Forgets an item: its metadata and content, versions and permissions.
async fn remove_item(ctx: &PartCtx<'_>, root: &str, id: &str) -> Result<()> {
    ctx.writer.remove(&format!("{root}/items/{id}")).await?;
    ctx.writer.remove(&format!("{root}/versions/{id}")).await?;
    ctx.writer
        .remove(&format!("{root}/permissions/{id}"))
        .await?;
    Ok(())
}

/// Whether stored or listed driveItem JSON is a file (has content).
fn is_file(meta: Option<&Value>) -> bool {
    meta.and_then(|m| m.get("file"))
        .is_some_and(Value::is_object)
}

/// The id of an item's parent, from its `parentReference`.
fn parent_id(meta: &Value) -> Option<&str> {
    meta.get("parentReference")
        .and_then(|p| p.get("id"))
        .and_then(Value::as_str)
}

/// Removes items whose parent is no longer in the snapshot. Graph may report
/// only a deleted folder and not everything below it; in the flat layout
/// the children would otherwise stay. `tree` maps every item the snapshot
/// now holds to its parent's id. Costs no Graph request, and only runs when
/// a folder was deleted.
async fn prune_orphans(
    ctx: &PartCtx<'_>,
    root: &str,
    mut tree: HashMap<String, (Option<String>, bool)>,
    counts: &mut ItemCounts,
) -> Result<()> {
    loop {
        let orphans: Vec<String> = tree
            .iter()
            .filter(|(_, (parent, _))| parent.as_ref().is_some_and(|p| !tree.contains_key(p)))
            .map(|(id, _)| id.clone())
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        for id in orphans {
            if let Some((_, file)) = tree.remove(&id) {
                counts.deleted += u64::from(file);
            }
            remove_item(ctx, root, &id).await?;
        }
    }
}

fn to_vec(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A drive item as a snapshot holds it, with its path in the drive.
#[derive(Debug, Clone)]
pub struct StoredItem {
    /// The item's Graph id.
    pub id: String,
    /// Names from the drive's root down to the item, joined with '/'
    /// (empty for the root itself).
    pub path: String,
    /// The driveItem JSON.
    pub meta: Value,
    /// The file's bytes (empty for folders, packages and the root).
    pub content: vault::Content,
}

impl StoredItem {
    /// Whether the item is a file (has content).
    pub fn is_file(&self) -> bool {
        is_file(Some(&self.meta))
    }
}

/// Every item of the drive backed up into `root` of a snapshot, with paths
/// rebuilt from the flat layout (for restore, export and browsing). An item
/// whose parent chain does not reach the root is reported as an error.
pub async fn stored_items(
    vault: &vault::Account,
    snap: &vault::SnapshotInfo,
    root: &str,
) -> Result<Vec<StoredItem>> {
    let entries = vault.list_folder(snap, &format!("{root}/items")).await?;
    let mut metas: HashMap<String, (Value, vault::Content)> = HashMap::new();
    for e in entries {
        let meta = meta_json(&e.node).ok_or_else(|| {
            EngineError::Invalid(format!(
                "{root}/items/{}: stored metadata is not JSON",
                e.name
            ))
        })?;
        let content = match e.node {
            vault::Node::Item { content, .. } => content,
            vault::Node::Folder { .. } => vault::Content::default(),
        };
        metas.insert(e.name, (meta, content));
    }
    let mut out = Vec::with_capacity(metas.len());
    for (id, (meta, content)) in &metas {
        let mut names = Vec::new();
        let mut cur: Option<(&str, &Value)> = Some((id.as_str(), meta));
        while let Some((cid, m)) = cur {
            if m.get("root").is_some() {
                break;
            }
            if names.len() > metas.len() {
                return Err(EngineError::Invalid(format!(
                    "{root}/items/{id}: its parents form a loop"
                )));
            }
            names.push(m.get("name").and_then(Value::as_str).unwrap_or(cid));
            let pid = parent_id(m)
                .ok_or_else(|| EngineError::Invalid(format!("{root}/items/{cid}: no parent")))?;
            cur = Some(
                metas
                    .get_key_value(pid)
                    .map(|(k, (m, _))| (k.as_str(), m))
                    .ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "{root}/items/{id}: parent {pid} is not in the snapshot"
                        ))
                    })?,
            );
        }
        names.reverse();
        out.push(StoredItem {
            id: id.clone(),
            path: names.join("/"),
            meta: meta.clone(),
            content: content.clone(),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_ids_from_graph_are_item_failures_not_panics() {
        let mut bus = FaultBus::default();
        let mut changes = Changes::default();
        changes.note(
            "a/../b".into(),
            Some(json!({"id": "a/../b"})),
            "drive",
            &mut bus,
        );
        changes.note("..".into(), None, "drive", &mut bus);
        changes.note(String::new(), None, "drive", &mut bus);
        changes.note(
            "ok1".into(),
            Some(json!({"id": "ok1", "name": "old"})),
            "drive",
            &mut bus,
        );
        changes.note(
            "ok1".into(),
            Some(json!({"id": "ok1", "name": "new"})),
            "drive",
            &mut bus,
        );
        assert_eq!(changes.order, vec!["ok1".to_string()]);
        assert_eq!(
            changes.latest["ok1"].as_ref().unwrap()["name"],
            "new",
            "the last occurrence in a round is the item's state"
        );
        assert_eq!(bus.item_failures.len(), 2);
        assert!(bus.item_failures[0].reason.contains("unusable"));
    }

    #[test]
    fn retry_state_reads_only_strings() {
        let prev = json!({"deltaLink": "x", "retry": ["a", 3, null, "b"]});
        assert_eq!(retry_ids(&prev), vec!["a".to_string(), "b".to_string()]);
        assert!(retry_ids(&Value::Null).is_empty());
    }
}
