//! One site backup: a vault snapshot that starts from the parent and applies
//! what changed (see the module docs of [`super`] for the layout).

use std::collections::{BTreeSet, HashSet};

use graph::{DeltaChange, Request};
use serde_json::{Map, Value, json};
use vault::Node;

use super::{SNAPSHOT_FORMAT, SNAPSHOT_KIND, SiteBackup, SiteSubService};
use crate::error::{EngineError, Result};
use crate::faults::FaultBus;
use crate::report::{BackupReport, ItemCounts};
use crate::run::{self, Ledger, PartCtx, Requests, id_of, meta_json, seg, strip_annotations};

/// Backs up one site: its lists, list items and pages, and its document
/// libraries. A site that no longer exists gives [`EngineError::EntityGone`]
/// and commits nothing; a cancelled backup commits nothing either.
pub async fn backup_site(job: SiteBackup<'_>) -> Result<BackupReport> {
    let site_id = seg(job.site_id)?;
    let (writer, parent_info) = run::begin(job.vault, job.parent).await?;
    let requests = Requests::default();
    let ctx = PartCtx {
        graph: job.graph,
        vault: job.vault,
        writer: &writer,
        parent: parent_info.as_ref(),
        progress: job.progress,
        cancel: job.cancel,
        requests: &requests,
    };
    let mut ledger = Ledger::new(parent_info.as_ref());
    if job.cancel.is_cancelled() {
        return Ok(ledger.cancelled(0));
    }
    // The site first: it tells a deleted site apart before anything else.
    requests.add(1);
    let site = match job
        .graph
        .send(Request::get(format!("/sites/{site_id}")))
        .await
    {
        Ok(r) => {
            let mut v: Value = r.json()?;
            strip_annotations(&mut v);
            v
        }
        Err(e) if e.is_not_found() => {
            return Err(EngineError::EntityGone(format!("site {site_id}")));
        }
        Err(e) => return Err(e.into()),
    };
    for sub in &job.options.sub_services {
        let sub = *sub;
        let name = crate::report::SubService::from(sub);
        job.progress.set_stage(name.as_str());
        let prev = ledger.prev_state(name);
        let mut bus = FaultBus::default();
        let mut counts = ItemCounts::default();
        let result = match sub {
            SiteSubService::Site => {
                backup_content(&ctx, site_id, &site, &prev, &mut bus, &mut counts).await
            }
            SiteSubService::Drive => {
                backup_libraries(&ctx, site_id, &prev, &mut bus, &mut counts).await
            }
        };
        if let Err(e) = &result
            && is_not_found(e)
            && site_gone(&ctx, site_id).await
        {
            return Err(EngineError::EntityGone(format!("site {site_id}")));
        }
        if let Err(EngineError::Cancelled) = ledger.record(name, result, bus, counts) {
            return Ok(ledger.cancelled(requests.get()));
        }
    }
    if job.cancel.is_cancelled() {
        return Ok(ledger.cancelled(requests.get()));
    }
    let text = |k: &str| site.get(k).cloned().unwrap_or(Value::Null);
    let engine_meta = json!({
        "format": SNAPSHOT_FORMAT,
        "site": site_id,
        "webUrl": text("webUrl"),
        "displayName": text("displayName"),
    });
    ledger
        .commit(
            writer,
            SNAPSHOT_KIND,
            engine_meta,
            &job.meta,
            requests.get(),
            job.progress,
        )
        .await
}

fn is_not_found(e: &EngineError) -> bool {
    matches!(e, EngineError::Graph(g) if g.is_not_found())
}

/// Whether the site was deleted (while its backup ran).
async fn site_gone(ctx: &PartCtx<'_>, site_id: &str) -> bool {
    ctx.requests.add(1);
    match ctx
        .graph
        .send(Request::get(format!("/sites/{site_id}?$select=id")))
        .await
    {
        Err(e) => e.is_not_found(),
        Ok(_) => false,
    }
}

/// A readable reason for an item that could not be read.
fn reason(e: &graph::GraphError) -> String {
    format!("{e} ({})", e.guidance())
}

/// The `{eTag, lastModifiedDateTime}` an item's stored metadata holds, used
/// to tell whether it changed.
fn version_of(v: &Value) -> Value {
    json!({
        "eTag": v.get("eTag").cloned().unwrap_or(Value::Null),
        "lastModifiedDateTime": v.get("lastModifiedDateTime").cloned().unwrap_or(Value::Null),
    })
}

/// Whether the parent snapshot holds `path` at this version.
fn same_version(old: Option<&Node>, v: &Value) -> bool {
    let new = version_of(v);
    new["eTag"].is_string()
        && old
            .and_then(meta_json)
            .is_some_and(|m| version_of(&m) == new)
}

/// How many items a sub-tree of the parent snapshot holds.
async fn items_below(ctx: &PartCtx<'_>, path: &str) -> Result<u64> {
    let mut n = 0;
    let mut stack = vec![path.to_string()];
    while let Some(p) = stack.pop() {
        for e in ctx.parent_entries(&p).await? {
            if e.node.is_folder() {
                stack.push(format!("{p}/{}", e.name));
            } else {
                n += 1;
            }
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------- libraries

/// Every document library through the drive backup. The state is a map
/// drive id → that drive's state; a library that could not be read keeps
/// its previous state (and its stored content), so the next run picks it up
/// where it was.
async fn backup_libraries(
    ctx: &PartCtx<'_>,
    site_id: &str,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let drives = ctx
        .get_all(Request::get(format!("/sites/{site_id}/drives")))
        .await?;
    let prev_states = prev.as_object().cloned().unwrap_or_default();
    let mut states = Map::new();
    let mut listed = HashSet::new();
    for d in &drives {
        ctx.check_cancel()?;
        let id = id_of(d).ok_or_else(|| {
            EngineError::Invalid(format!(
                "Microsoft Graph listed a document library of site {site_id} without an id"
            ))
        })?;
        let id = seg(id)?;
        listed.insert(id.to_string());
        let name = d.get("name").and_then(Value::as_str).unwrap_or(id);
        ctx.progress.set_stage(&format!("drive {name}"));
        let prev_state = prev_states.get(id).cloned().unwrap_or(Value::Null);
        let root = format!("drives/{id}");
        let mut drive_bus = FaultBus::default();
        let mut drive_counts = ItemCounts::default();
        let result = crate::drive::backup_drive(
            ctx,
            &root,
            id,
            &prev_state,
            &mut drive_bus,
            &mut drive_counts,
        )
        .await;
        match result {
            Ok(state) => {
                states.insert(id.to_string(), state);
            }
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(e) => {
                if !prev_state.is_null() {
                    states.insert(id.to_string(), prev_state);
                }
                drive_bus.item_failed(
                    id,
                    root,
                    format!("document library {name} could not be backed up: {e}"),
                );
            }
        }
        bus.merge(drive_bus);
        counts.new += drive_counts.new;
        counts.changed += drive_counts.changed;
        counts.deleted += drive_counts.deleted;
        counts.bytes_read += drive_counts.bytes_read;
    }
    // Libraries that disappeared: whatever the parent stored or tracked.
    let mut before: BTreeSet<String> = prev_states.keys().cloned().collect();
    before.extend(
        ctx.parent_entries("drives")
            .await?
            .into_iter()
            .map(|e| e.name),
    );
    for id in before {
        if listed.contains(&id) {
            continue;
        }
        let path = format!("drives/{}", seg(&id)?);
        counts.deleted += items_below(ctx, &path).await?;
        ctx.writer.remove(&path).await?;
    }
    Ok(Value::Object(states))
}

// ---------------------------------------------------------------- site content

/// Site metadata, lists with their items, and pages. The state holds each
/// list's item delta link: `{"lists": {list id: link}}`.
async fn backup_content(
    ctx: &PartCtx<'_>,
    site_id: &str,
    site: &Value,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let site_bytes = serde_json::to_vec(site).map_err(|e| EngineError::Invalid(e.to_string()))?;
    ctx.writer
        .put_bytes(
            "site",
            serde_json::to_vec(&version_of(site)).unwrap_or_default(),
            site_bytes,
        )
        .await?;
    let links = backup_lists(ctx, site_id, prev, bus, counts).await?;
    backup_pages(ctx, site_id, bus, counts).await?;
    Ok(json!({ "lists": links }))
}

/// Whether a list is a library (documents, pages, pictures, forms...):
/// those are drives, backed up as such, or the site's pages.
fn is_library(list: &Value) -> bool {
    list.pointer("/list/template")
        .and_then(Value::as_str)
        .is_some_and(|t| t.to_ascii_lowercase().ends_with("library"))
}

async fn backup_lists(
    ctx: &PartCtx<'_>,
    site_id: &str,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Map<String, Value>> {
    let lists = ctx
        .get_all(Request::get(format!("/sites/{site_id}/lists")))
        .await?;
    let prev_links: Map<String, Value> = prev
        .get("lists")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let before: Vec<String> = ctx
        .parent_entries("lists")
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    ctx.writer.put_folder("lists", b"{}".to_vec()).await?;
    let mut links = Map::new();
    let mut listed = HashSet::new();
    let mut with_attachments = 0u64;
    for mut list in lists {
        ctx.check_cancel()?;
        strip_annotations(&mut list);
        let lid = id_of(&list).ok_or_else(|| {
            EngineError::Invalid(format!(
                "Microsoft Graph listed a list of site {site_id} without an id"
            ))
        })?;
        let lid = seg(lid)?.to_string();
        if is_library(&list) {
            continue;
        }
        listed.insert(lid.clone());
        let folder = format!("lists/{lid}");
        let name = list
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or(&lid)
            .to_string();
        ctx.progress.set_stage(&format!("list {name}"));
        let prev_link = prev_links.get(&lid).and_then(Value::as_str);
        // The list's own JSON and columns, read again only when it changed.
        let old = ctx.writer.parent_node(&folder).await?;
        if !same_version(old.as_ref(), &list) {
            ctx.requests.add(1);
            match ctx
                .graph
                .send(Request::get(format!(
                    "/sites/{site_id}/lists/{lid}?$expand=columns"
                )))
                .await
            {
                Ok(r) => {
                    let mut full: Value = r.json()?;
                    strip_annotations(&mut full);
                    ctx.writer
                        .put_folder(&folder, serde_json::to_vec(&full).unwrap_or_default())
                        .await?;
                }
                Err(e) => {
                    if let Some(l) = prev_link {
                        links.insert(lid.clone(), json!(l));
                    }
                    bus.item_failed(&lid, &folder, format!("list {name}: {}", reason(&e)));
                    continue;
                }
            }
        }
        let fresh = format!("/sites/{site_id}/lists/{lid}/items/delta?$expand=fields");
        let round = match ctx
            .delta_round(|url: &str| Request::get(url), &fresh, prev_link)
            .await
        {
            Ok(r) => r,
            Err(EngineError::Graph(e)) => {
                if let Some(l) = prev_link {
                    links.insert(lid.clone(), json!(l));
                }
                bus.item_failed(
                    &lid,
                    &folder,
                    format!("items of list {name} could not be read: {}", reason(&e)),
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut seen = HashSet::new();
        let mut changed = Vec::new();
        for c in round.changes {
            match c {
                DeltaChange::Removed { id, .. } => {
                    let path = format!("{folder}/{}", seg(&id)?);
                    if ctx.writer.parent_node(&path).await?.is_some() {
                        counts.deleted += 1;
                    }
                    seen.remove(&id);
                    ctx.writer.remove(&path).await?;
                }
                DeltaChange::Changed(mut v) => {
                    strip_annotations(&mut v);
                    let Some(id) = id_of(&v).map(str::to_string) else {
                        bus.item_failed(
                            "",
                            &folder,
                            format!("list {name}: Microsoft Graph returned an item without an id"),
                        );
                        continue;
                    };
                    seg(&id)?;
                    seen.insert(id);
                    changed.push(v);
                }
            }
        }
        if round.resynced {
            bus.recovered(format!(
                "list {name}: delta token expired, enumerated again"
            ));
            for e in ctx.parent_entries(&folder).await? {
                if !seen.contains(&e.name) {
                    ctx.writer.remove(&format!("{folder}/{}", e.name)).await?;
                    counts.deleted += 1;
                }
            }
        }
        ctx.progress.set_total(changed.len() as u64, 0);
        for v in changed {
            ctx.check_cancel()?;
            let id = id_of(&v).unwrap_or_default().to_string();
            let path = format!("{folder}/{id}");
            let item = match with_fields(ctx, site_id, &lid, &id, v).await {
                Ok(Some(item)) => item,
                // Deleted since the delta round: the next round says so.
                Ok(None) => {
                    ctx.writer.remove(&path).await?;
                    continue;
                }
                Err(why) => {
                    bus.item_failed(&id, &path, format!("list {name}: {why}"));
                    continue;
                }
            };
            if item.pointer("/fields/Attachments").and_then(Value::as_bool) == Some(true) {
                with_attachments += 1;
            }
            store_json(ctx, &path, &item, counts).await?;
            ctx.progress.advance(1, 0);
        }
        links.insert(lid, json!(round.link));
    }
    for id in before {
        if !listed.contains(&id) {
            let path = format!("lists/{id}");
            counts.deleted += items_below(ctx, &path).await?;
            ctx.writer.remove(&path).await?;
        }
    }
    if with_attachments > 0 {
        bus.recovered(format!(
            "{with_attachments} list items stored in this run have attachments: Microsoft Graph does \
not expose list item attachments, so their fields were backed up and the attached files were not"
        ));
    }
    Ok(links)
}

/// The item with its fields: the delta item when it carries them, else read
/// on its own. `Ok(None)` when it no longer exists.
async fn with_fields(
    ctx: &PartCtx<'_>,
    site_id: &str,
    lid: &str,
    id: &str,
    mut v: Value,
) -> std::result::Result<Option<Value>, String> {
    if !v.get("fields").is_some_and(Value::is_object) {
        ctx.requests.add(1);
        let req = Request::get(format!(
            "/sites/{site_id}/lists/{lid}/items/{id}?$expand=fields"
        ));
        v = match ctx.graph.send(req).await {
            Ok(r) => r.json().map_err(|e| e.to_string())?,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(reason(&e)),
        };
        if id_of(&v) != Some(id) {
            return Err("Microsoft Graph answered with another item than the one asked for".into());
        }
        strip_annotations(&mut v);
    }
    if let Some(f) = v.get_mut("fields") {
        strip_annotations(f);
    }
    Ok(Some(v))
}

/// Stores a JSON record whose metadata is its version; a record the parent
/// held at the same version is not counted as changed.
async fn store_json(
    ctx: &PartCtx<'_>,
    path: &str,
    v: &Value,
    counts: &mut ItemCounts,
) -> Result<()> {
    let old = ctx.writer.parent_node(path).await?;
    let bytes = serde_json::to_vec(v).map_err(|e| EngineError::Invalid(e.to_string()))?;
    match &old {
        Some(_) if same_version(old.as_ref(), v) => {}
        Some(_) => counts.changed += 1,
        None => counts.new += 1,
    }
    counts.bytes_read += bytes.len() as u64;
    ctx.writer
        .put_bytes(
            path,
            serde_json::to_vec(&version_of(v)).unwrap_or_default(),
            bytes,
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- pages

/// Site pages. Graph has no delta for them: the listing (one request per
/// page of 200) tells which changed, and only those are read in full.
async fn backup_pages(
    ctx: &PartCtx<'_>,
    site_id: &str,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<()> {
    ctx.progress.set_stage("pages");
    let pages = match ctx
        .get_all(Request::get(format!("/sites/{site_id}/pages")))
        .await
    {
        Ok(p) => p,
        // A site without a Site Pages library has no pages.
        Err(EngineError::Graph(e)) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    let before: Vec<String> = ctx
        .parent_entries("pages")
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    ctx.writer.put_folder("pages", b"{}".to_vec()).await?;
    let mut listed = HashSet::new();
    for mut p in pages {
        ctx.check_cancel()?;
        strip_annotations(&mut p);
        let pid = id_of(&p).ok_or_else(|| {
            EngineError::Invalid(format!(
                "Microsoft Graph listed a page of site {site_id} without an id"
            ))
        })?;
        let pid = seg(pid)?.to_string();
        listed.insert(pid.clone());
        let path = format!("pages/{pid}");
        let old = ctx.writer.parent_node(&path).await?;
        if same_version(old.as_ref(), &p) {
            continue;
        }
        ctx.requests.add(1);
        let req = Request::get(format!(
            "/sites/{site_id}/pages/{pid}/microsoft.graph.sitePage?$expand=canvasLayout"
        ));
        match ctx.graph.send(req).await {
            Ok(r) => {
                let mut full: Value = match r.json() {
                    Ok(v) => v,
                    Err(e) => {
                        bus.item_failed(&pid, &path, e.to_string());
                        continue;
                    }
                };
                if id_of(&full).is_some_and(|id| !id.eq_ignore_ascii_case(&pid)) {
                    bus.item_failed(
                        &pid,
                        &path,
                        "Microsoft Graph answered with another page than the one asked for",
                    );
                    continue;
                }
                strip_annotations(&mut full);
                store_json(ctx, &path, &full, counts).await?;
                ctx.progress.advance(1, 0);
            }
            Err(e) if e.is_not_found() => {
                listed.remove(&pid);
            }
            Err(e) => bus.item_failed(&pid, &path, reason(&e)),
        }
    }
    for id in before {
        if !listed.contains(&id) {
            ctx.writer.remove(&format!("pages/{id}")).await?;
            counts.deleted += 1;
        }
    }
    Ok(())
}
