//! SharePoint site restore (SPEC F-E5): a `sharepoint-site` snapshot (layout
//! in [`crate::sharepoint`]) written into the original site or another one.
//!
//! - Document libraries (`drives/<drive id>`) are matched to the
//!   destination's libraries by name; a missing one is created as a
//!   document library. Each is restored with
//!   [`super::drive::restore_drive_tree`], so files, folders, versions and
//!   the restore types behave as for OneDrive.
//! - Generic lists (`lists/<list id>`) are matched by display name; a
//!   missing list is created with its columns. A non-destructive restore
//!   writes into a new list "<list> (Restored …)". Items are matched by id
//!   only when the destination list is the very list backed up (ids are
//!   the list's own); replace overwrites the fields of a present item and
//!   re-creates a missing one (with a new id: Graph cannot choose ids),
//!   bypass only re-creates missing ones, duplicate creates every item anew.
//!   Only writable columns are written (system fields such as Created,
//!   Author or Attachments are Graph's).
//! - Pages (`pages/<page id>`, the sitePage JSON with its `canvasLayout`
//!   expanded) are re-created with `POST /sites/{id}/pages` from their
//!   writable properties (name, title, pageLayout, titleArea, comments and
//!   recommended pages switches, and the canvas with its sections, columns
//!   and web parts), then published. Pages are matched by file name.
//!   Replace updates a present page (`PATCH …/microsoft.graph.sitePage`)
//!   and publishes it; bypass leaves a present page; non-destructive
//!   creates "<name> (Restored …).aspx" beside the original; duplicate
//!   creates "<name> <suffix>.aspx".
//!
//! # Deleted sites
//!
//! Microsoft Graph v1.0 cannot create a SharePoint site. A deleted site is
//! restored in two steps: an administrator re-creates it (SharePoint admin
//! center; the simulator's `POST /_sim/sites`), then the snapshot is
//! restored into the new site's id with replace.

use std::collections::HashMap;

use graph::{Method, Request};
use serde_json::{Map, Value, json};

use super::{ItemOutcome, RestoreCtx, RestoreMode, RestoreReport, Selection, SnapshotKind, Tally};
use crate::error::{EngineError, Result};
use crate::report::SubService;
use crate::run::{meta_json, seg};

/// Restores a site snapshot into `ctx.destination` (a site id) or the
/// snapshot's own site.
pub async fn restore_site(ctx: &RestoreCtx<'_>) -> Result<RestoreReport> {
    if SnapshotKind::of(ctx.snapshot)? != SnapshotKind::Site {
        return Err(EngineError::Invalid(format!(
            "snapshot {} is not a SharePoint site backup",
            ctx.snapshot.id.0
        )));
    }
    ctx.selection
        .validate(SnapshotKind::Site.sub_services())
        .map_err(EngineError::Invalid)?;
    let tally = Tally::new(ctx);
    let site = match ctx.destination {
        Some(d) => d.to_string(),
        None => ctx
            .snapshot
            .meta
            .get("site")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| EngineError::Invalid("the snapshot does not name its site".into()))?,
    };
    let site = seg(&site)?.to_string();
    let w = SiteWriter {
        ctx,
        tally: &tally,
        site: &site,
    };
    w.check_site().await?;
    if drives_selected(ctx.selection) {
        w.restore_libraries().await?;
    }
    if !ctx.cancel.is_cancelled() && lists_selected(ctx.selection) {
        w.restore_lists().await?;
    }
    if !ctx.cancel.is_cancelled() && pages_selected(ctx.selection) {
        w.restore_pages().await?;
    }
    let mut report = tally.report(ctx.cancel.is_cancelled());
    report.destination = Some(site);
    if ctx.options.mode == RestoreMode::NonDestructive {
        report.location = Some(super::drive::restore_folder_name(ctx.options));
    }
    ctx.progress.finish();
    Ok(report)
}

fn drives_selected(sel: &Selection) -> bool {
    sel.is_everything() || sel.sub_services.contains(&SubService::Drive) || sel.reaches("drives")
}

fn lists_selected(sel: &Selection) -> bool {
    sel.is_everything() || sel.sub_services.contains(&SubService::Site) || sel.reaches("lists")
}

fn pages_selected(sel: &Selection) -> bool {
    sel.is_everything() || sel.sub_services.contains(&SubService::Site) || sel.reaches("pages")
}

/// Fields Graph sets itself, never written back.
const SYSTEM_FIELDS: &[&str] = &[
    "id",
    "ID",
    "ContentType",
    "Created",
    "Modified",
    "AuthorLookupId",
    "EditorLookupId",
    "Attachments",
    "Edit",
    "LinkTitle",
    "LinkTitleNoMenu",
    "ItemChildCount",
    "FolderChildCount",
    "DocIcon",
    "AppAuthorLookupId",
    "AppEditorLookupId",
    "_UIVersionString",
    "_ComplianceFlags",
    "_ComplianceTag",
    "_ComplianceTagWrittenTime",
    "_ComplianceTagUserId",
];

/// Restores the document libraries (`drives/…`) of a site, group or team
/// snapshot into the site `site_id`: matched by name, created when missing.
pub(crate) async fn restore_site_libraries(
    ctx: &RestoreCtx<'_>,
    tally: &Tally<'_>,
    site_id: &str,
) -> Result<()> {
    SiteWriter {
        ctx,
        tally,
        site: site_id,
    }
    .restore_libraries()
    .await
}

struct SiteWriter<'c, 'a> {
    ctx: &'c RestoreCtx<'a>,
    tally: &'c Tally<'a>,
    site: &'c str,
}

impl SiteWriter<'_, '_> {
    async fn send(&self, req: Request) -> Result<graph::Response> {
        self.tally.requests(1);
        Ok(self.ctx.graph.send(req).await?)
    }

    async fn get(&self, url: String) -> Result<Value> {
        Ok(self.send(Request::get(url)).await?.json()?)
    }

    /// All pages of a collection.
    async fn get_all(&self, url: String) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(url);
        while let Some(u) = next {
            let v = self.get(u).await?;
            if let Some(a) = v.get("value").and_then(Value::as_array) {
                out.extend(a.iter().cloned());
            }
            next = v
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        Ok(out)
    }

    async fn check_site(&self) -> Result<()> {
        match self.get(format!("/sites/{}?$select=id", self.site)).await {
            Ok(_) => Ok(()),
            Err(EngineError::Graph(g)) if g.is_not_found() => {
                Err(EngineError::EntityGone(format!(
                    "site {} (a deleted site must first be re-created by an administrator, then \
                 restored into with replace)",
                    self.site
                )))
            }
            Err(e) => Err(e),
        }
    }

    async fn folder_entries(&self, path: &str) -> Result<Vec<vault::Entry>> {
        match self.ctx.vault.list_folder(self.ctx.snapshot, path).await {
            Ok(e) => Ok(e),
            Err(vault::Error::NotFound(_) | vault::Error::NoSuchEntry(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    // ------------------------------------------------------------ libraries

    async fn restore_libraries(&self) -> Result<()> {
        let entries = self.folder_entries("drives").await?;
        if entries.is_empty() {
            return Ok(());
        }
        let mut dest: HashMap<String, String> = HashMap::new();
        for d in self
            .get_all(format!("/sites/{}/drives?$select=id,name", self.site))
            .await?
        {
            if let (Some(id), Some(name)) = (
                d.get("id").and_then(Value::as_str),
                d.get("name").and_then(Value::as_str),
            ) {
                dest.insert(name.to_lowercase(), id.to_string());
            }
        }
        let everything = Selection::everything();
        for e in entries {
            if self.ctx.cancel.is_cancelled() {
                return Ok(());
            }
            let root = format!("drives/{}", e.name);
            let sel = self.ctx.selection;
            let whole = sel.is_everything()
                || sel.sub_services.contains(&SubService::Drive)
                || sel.covers(&root);
            if !whole && !sel.reaches(&root) {
                continue;
            }
            // The drive's Graph JSON is the metadata of `<root>/drive`.
            let drive = match self
                .ctx
                .vault
                .lookup(self.ctx.snapshot, &format!("{root}/drive"))
                .await
            {
                Ok(n) => meta_json(&n).unwrap_or(Value::Null),
                Err(_) => Value::Null,
            };
            let Some(name) = drive
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
            else {
                self.tally.item(
                    &root,
                    &e.name,
                    ItemOutcome::Failed,
                    Some("the snapshot does not name this library".into()),
                    0,
                );
                continue;
            };
            let dest_id = match dest.get(&name.to_lowercase()) {
                Some(id) => id.clone(),
                None => match self.create_library(&name).await {
                    Ok(id) => id,
                    Err(err) => {
                        if matches!(&err, EngineError::Graph(g) if g.class() == graph::ErrorClass::Connection)
                        {
                            return Err(err);
                        }
                        self.tally.item(
                            &root,
                            &name,
                            ItemOutcome::Failed,
                            Some(format!("the library could not be created: {err}")),
                            0,
                        );
                        continue;
                    }
                },
            };
            let sub = RestoreCtx {
                selection: if whole { &everything } else { sel },
                ..*self.ctx
            };
            super::drive::restore_drive_tree(&sub, self.tally, &root, &dest_id).await?;
        }
        Ok(())
    }

    /// Creates a document library; returns its drive's id.
    async fn create_library(&self, name: &str) -> Result<String> {
        let body = json!({"displayName": name, "list": {"template": "documentLibrary"}});
        let list: Value = self
            .send(Request::json(
                Method::POST,
                format!("/sites/{}/lists", self.site),
                &body,
            ))
            .await?
            .json()?;
        self.tally.container_created();
        let lid = list
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| EngineError::Invalid("Graph created a list without an id".into()))?;
        let drive = self
            .get(format!("/sites/{}/lists/{lid}/drive?$select=id", self.site))
            .await?;
        drive
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| EngineError::Invalid("Graph gave a library without a drive".into()))
    }

    // ---------------------------------------------------------------- lists

    async fn restore_lists(&self) -> Result<()> {
        let entries = self.folder_entries("lists").await?;
        if entries.is_empty() {
            return Ok(());
        }
        let existing = self
            .get_all(format!("/sites/{}/lists?$select=id,displayName", self.site))
            .await?;
        for e in entries {
            if self.ctx.cancel.is_cancelled() {
                return Ok(());
            }
            let folder = format!("lists/{}", e.name);
            let sel = self.ctx.selection;
            if !(lists_selected(sel)
                && (sel.is_everything()
                    || sel.sub_services.contains(&SubService::Site)
                    || sel.reaches(&folder)))
            {
                continue;
            }
            let meta = meta_json(&e.node).unwrap_or(Value::Null);
            let display = meta
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or(&e.name)
                .to_string();
            let wanted = if self.ctx.options.mode == RestoreMode::NonDestructive {
                format!(
                    "{display} ({})",
                    super::drive::restore_folder_name(self.ctx.options)
                )
            } else {
                display.clone()
            };
            let found = existing.iter().find(|l| {
                l.get("displayName")
                    .and_then(Value::as_str)
                    .is_some_and(|d| d.eq_ignore_ascii_case(&wanted))
            });
            let dest_list = match found.and_then(|l| l.get("id").and_then(Value::as_str)) {
                Some(id) => id.to_string(),
                None => match self.create_list(&wanted, &meta).await {
                    Ok(id) => id,
                    Err(err) => {
                        if matches!(&err, EngineError::Graph(g) if g.class() == graph::ErrorClass::Connection)
                        {
                            return Err(err);
                        }
                        self.tally.item(
                            &folder,
                            &display,
                            ItemOutcome::Failed,
                            Some(format!("the list could not be created: {err}")),
                            0,
                        );
                        continue;
                    }
                },
            };
            let same_list = dest_list == e.name;
            self.restore_items(&folder, &display, &meta, &dest_list, same_list)
                .await?;
        }
        Ok(())
    }

    /// Creates a generic list with the stored list's writable columns.
    async fn create_list(&self, name: &str, meta: &Value) -> Result<String> {
        let template = meta
            .pointer("/list/template")
            .and_then(Value::as_str)
            .unwrap_or("genericList");
        let body = json!({
            "displayName": name,
            "columns": creatable_columns(meta),
            "list": {"template": template},
        });
        let v: Value = self
            .send(Request::json(
                Method::POST,
                format!("/sites/{}/lists", self.site),
                &body,
            ))
            .await?
            .json()?;
        self.tally.container_created();
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| EngineError::Invalid("Graph created a list without an id".into()))
    }

    async fn restore_items(
        &self,
        folder: &str,
        list_name: &str,
        meta: &Value,
        dest_list: &str,
        same_list: bool,
    ) -> Result<()> {
        let writable = writable_columns(meta);
        let mode = self.ctx.options.mode;
        let present: std::collections::HashSet<String> =
            if same_list && matches!(mode, RestoreMode::Replace | RestoreMode::Bypass) {
                self.get_all(format!(
                    "/sites/{}/lists/{dest_list}/items?$select=id",
                    self.site
                ))
                .await?
                .iter()
                .filter_map(|i| i.get("id").and_then(Value::as_str).map(str::to_string))
                .collect()
            } else {
                Default::default()
            };
        let entries = self.folder_entries(folder).await?;
        let sel = self.ctx.selection;
        for e in entries {
            if self.ctx.cancel.is_cancelled() {
                return Ok(());
            }
            let path = format!("{folder}/{}", e.name);
            if !(sel.is_everything()
                || sel.sub_services.contains(&SubService::Site)
                || sel.covers(&path))
            {
                continue;
            }
            let name = format!("{list_name}/{}", e.name);
            let item: Value = match self
                .ctx
                .vault
                .read_item_bytes(self.ctx.snapshot, &path)
                .await
            {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(v) => v,
                    Err(_) => {
                        self.tally.item(
                            &path,
                            &name,
                            ItemOutcome::Failed,
                            Some("the stored item is not readable JSON".into()),
                            0,
                        );
                        continue;
                    }
                },
                Err(err) => return Err(err.into()),
            };
            let fields = writable_fields(&item, &writable);
            let size = serde_json::to_vec(&fields).map_or(0, |b| b.len() as u64);
            let exists = present.contains(&e.name);
            let result = match (mode, exists) {
                (RestoreMode::Bypass, true) => {
                    self.tally.item(
                        &path,
                        &name,
                        ItemOutcome::Skipped,
                        Some("present in the destination; bypass leaves it".into()),
                        0,
                    );
                    continue;
                }
                (RestoreMode::Replace, true) => self
                    .send(Request::json(
                        Method::PATCH,
                        format!(
                            "/sites/{}/lists/{dest_list}/items/{}/fields",
                            self.site, e.name
                        ),
                        &fields,
                    ))
                    .await
                    .map(|_| (ItemOutcome::Overwritten, None)),
                _ => self
                    .send(Request::json(
                        Method::POST,
                        format!("/sites/{}/lists/{dest_list}/items", self.site),
                        &json!({ "fields": fields }),
                    ))
                    .await
                    .and_then(|r| Ok(r.json::<Value>()?))
                    .map(|v| {
                        (
                            ItemOutcome::Restored,
                            v.get("id").and_then(Value::as_str).map(str::to_string),
                        )
                    }),
            };
            match result {
                Ok((outcome, detail)) => self.tally.item(&path, &name, outcome, detail, size),
                Err(EngineError::Graph(g)) if g.class() != graph::ErrorClass::Connection => {
                    self.tally.item(
                        &path,
                        &name,
                        ItemOutcome::Failed,
                        Some(format!("{g} ({})", g.guidance())),
                        0,
                    )
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

impl SiteWriter<'_, '_> {
    // ---------------------------------------------------------------- pages

    async fn restore_pages(&self) -> Result<()> {
        let entries = self.folder_entries("pages").await?;
        if entries.is_empty() {
            return Ok(());
        }
        // Destination pages by lower-cased file name → id.
        let mut present: HashMap<String, String> = HashMap::new();
        match self
            .get_all(format!("/sites/{}/pages?$select=id,name", self.site))
            .await
        {
            Ok(pages) => {
                for p in pages {
                    if let (Some(id), Some(name)) = (
                        p.get("id").and_then(Value::as_str),
                        p.get("name").and_then(Value::as_str),
                    ) {
                        present.insert(name.to_lowercase(), id.to_string());
                    }
                }
            }
            // A site without a Site Pages library lists no pages; creating
            // one then fails per page, with Graph's reason.
            Err(EngineError::Graph(g)) if g.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let sel = self.ctx.selection;
        for e in entries {
            if self.ctx.cancel.is_cancelled() {
                return Ok(());
            }
            let path = format!("pages/{}", e.name);
            if !(sel.is_everything()
                || sel.sub_services.contains(&SubService::Site)
                || sel.covers(&path))
            {
                continue;
            }
            let stored: Value = match self
                .ctx
                .vault
                .read_item_bytes(self.ctx.snapshot, &path)
                .await
            {
                Ok(b) => match serde_json::from_slice(&b) {
                    Ok(v) => v,
                    Err(_) => {
                        self.tally.item(
                            &path,
                            &e.name,
                            ItemOutcome::Failed,
                            Some("the stored page is not readable JSON".into()),
                            0,
                        );
                        continue;
                    }
                },
                Err(err) => return Err(err.into()),
            };
            let Some(name) = stored.get("name").and_then(Value::as_str) else {
                self.tally.item(
                    &path,
                    &e.name,
                    ItemOutcome::Failed,
                    Some("the stored page has no file name".into()),
                    0,
                );
                continue;
            };
            match self.restore_page(&stored, name, &mut present).await {
                Ok((outcome, detail, bytes)) => {
                    self.tally.item(&path, name, outcome, detail, bytes)
                }
                Err(EngineError::Graph(g)) if g.class() != graph::ErrorClass::Connection => {
                    self.tally.item(
                        &path,
                        name,
                        ItemOutcome::Failed,
                        Some(format!("{g} ({})", g.guidance())),
                        0,
                    )
                }
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Writes one stored page per the restore mode; what happened, a
    /// detail (the name written) and the bytes sent.
    async fn restore_page(
        &self,
        stored: &Value,
        name: &str,
        present: &mut HashMap<String, String>,
    ) -> Result<(ItemOutcome, Option<String>, u64)> {
        let options = self.ctx.options;
        let target = match options.mode {
            RestoreMode::NonDestructive => {
                page_name_with(name, &super::drive::restore_folder_name(options))
            }
            RestoreMode::Duplicate => options.duplicate_name(name),
            RestoreMode::Replace | RestoreMode::Bypass => name.to_string(),
        };
        let existing = present.get(&target.to_lowercase()).cloned();
        let mut body = page_body(stored);
        if let Value::Object(m) = &mut body {
            m.insert("name".into(), json!(target));
        }
        let bytes = serde_json::to_vec(&body).map_or(0, |b| b.len() as u64);
        match (options.mode, existing) {
            (RestoreMode::Replace, Some(id)) => {
                // The name stays; the rest is written over and published.
                if let Value::Object(m) = &mut body {
                    m.remove("name");
                    m.remove("@odata.type");
                }
                self.send(Request::json(
                    Method::PATCH,
                    format!(
                        "/sites/{}/pages/{}/microsoft.graph.sitePage",
                        self.site,
                        seg(&id)?
                    ),
                    &body,
                ))
                .await?;
                self.publish_page(&id).await?;
                Ok((ItemOutcome::Overwritten, None, bytes))
            }
            (RestoreMode::Replace, None) | (RestoreMode::Bypass, None) => {
                self.create_page(&body, &target, present).await?;
                Ok((ItemOutcome::Restored, None, bytes))
            }
            (RestoreMode::Bypass, Some(_)) => Ok((
                ItemOutcome::Skipped,
                Some("present in the destination; bypass leaves it".into()),
                0,
            )),
            (_, Some(_)) => Ok((
                ItemOutcome::Skipped,
                Some(format!(
                    "a page named {target} is already in the destination; it is not overwritten"
                )),
                0,
            )),
            (_, None) => {
                self.create_page(&body, &target, present).await?;
                Ok((ItemOutcome::Restored, Some(target), bytes))
            }
        }
    }

    /// Creates a page and publishes it (a created page is a draft).
    async fn create_page(
        &self,
        body: &Value,
        name: &str,
        present: &mut HashMap<String, String>,
    ) -> Result<()> {
        let created: Value = self
            .send(Request::json(
                Method::POST,
                format!("/sites/{}/pages", self.site),
                body,
            ))
            .await?
            .json()?;
        let id = created
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| EngineError::Invalid("Graph created a page without an id".into()))?
            .to_string();
        present.insert(name.to_lowercase(), id.clone());
        self.publish_page(&id).await
    }

    async fn publish_page(&self, id: &str) -> Result<()> {
        self.send(Request::new(
            Method::POST,
            format!(
                "/sites/{}/pages/{}/microsoft.graph.sitePage/publish",
                self.site,
                seg(id)?
            ),
        ))
        .await?;
        Ok(())
    }
}

/// The writable properties of a sitePage in the shape `POST /pages` takes
/// (Graph's "Create a page in the site pages list"): read-only properties
/// (id, eTag, dates, createdBy, webUrl, publishingState…) and OData
/// annotations are left out. Section, column and web part ids stay: the
/// documented request carries them.
fn page_body(stored: &Value) -> Value {
    const WRITABLE: [&str; 7] = [
        "name",
        "title",
        "description",
        "pageLayout",
        "showComments",
        "showRecommendedPages",
        "titleArea",
    ];
    let mut m = Map::new();
    m.insert("@odata.type".into(), json!("#microsoft.graph.sitePage"));
    for k in WRITABLE {
        if let Some(v) = stored.get(k).filter(|v| !v.is_null()) {
            m.insert(k.into(), without_annotations(v));
        }
    }
    if let Some(canvas) = stored.get("canvasLayout").and_then(Value::as_object) {
        let mut c = Map::new();
        for k in ["horizontalSections", "verticalSection"] {
            if let Some(v) = canvas.get(k).filter(|v| !v.is_null()) {
                c.insert(k.into(), without_annotations(v));
            }
        }
        m.insert("canvasLayout".into(), Value::Object(c));
    }
    Value::Object(m)
}

/// `v` without OData annotations, except the `@odata.type` that tells a
/// text web part from a standard one.
fn without_annotations(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() == "@odata.type" || !k.contains("@odata."))
                .map(|(k, v)| (k.clone(), without_annotations(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_annotations).collect()),
        other => other.clone(),
    }
}

/// A page file name with a suffix before `.aspx` ("News.aspx", "Restored
/// 2024-01-02 03.04.05" → "News (Restored 2024-01-02 03.04.05).aspx").
fn page_name_with(name: &str, suffix: &str) -> String {
    let stem = name
        .len()
        .checked_sub(5)
        .filter(|&i| name.is_char_boundary(i) && name[i..].eq_ignore_ascii_case(".aspx"))
        .map_or(name, |i| &name[..i]);
    format!("{stem} ({suffix}).aspx")
}

/// Names of the stored list's columns that can be written.
fn writable_columns(meta: &Value) -> Vec<String> {
    meta.get("columns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("readOnly").and_then(Value::as_bool) != Some(true))
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
        .filter(|n| !SYSTEM_FIELDS.contains(&n.as_str()))
        .collect()
}

/// The stored columns in the shape `POST /lists` takes: custom, writable
/// columns with their type facet (Title comes with every list).
fn creatable_columns(meta: &Value) -> Vec<Value> {
    const TYPES: [&str; 5] = ["text", "number", "choice", "dateTime", "boolean"];
    meta.get("columns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("readOnly").and_then(Value::as_bool) != Some(true))
        .filter(|c| c.get("hidden").and_then(Value::as_bool) != Some(true))
        .filter(|c| c.get("name").and_then(Value::as_str) != Some("Title"))
        .filter_map(|c| {
            let name = c.get("name").and_then(Value::as_str)?;
            let mut m = Map::new();
            m.insert("name".into(), json!(name));
            if let Some(d) = c.get("displayName") {
                m.insert("displayName".into(), d.clone());
            }
            let ty = TYPES.iter().find(|t| c.get(**t).is_some())?;
            m.insert((*ty).into(), c[*ty].clone());
            Some(Value::Object(m))
        })
        .collect()
}

/// The item's fields that belong to writable columns.
fn writable_fields(item: &Value, writable: &[String]) -> Value {
    let mut out = Map::new();
    if let Some(f) = item.get("fields").and_then(Value::as_object) {
        for (k, v) in f {
            if k.starts_with('@') || SYSTEM_FIELDS.contains(&k.as_str()) {
                continue;
            }
            if writable.is_empty() || writable.iter().any(|w| w == k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_body_keeps_the_canvas_and_leaves_read_only_properties() {
        let stored = json!({
            "@odata.context": "x", "@odata.type": "#microsoft.graph.sitePage",
            "id": "p1", "eTag": "\"{P1},3\"", "name": "News.aspx", "title": "News",
            "pageLayout": "article", "createdBy": {"user": {}}, "webUrl": "u",
            "publishingState": {"level": "published", "versionId": "1.0"},
            "titleArea": {"layout": "plain"},
            "canvasLayout": {"id": "c", "@odata.type": "#microsoft.graph.canvasLayout",
                "horizontalSections@odata.context": "y",
                "horizontalSections": [{"id": "1", "layout": "oneColumn", "columns": [
                    {"id": "1", "width": 12, "webparts": [
                        {"@odata.type": "#microsoft.graph.textWebPart", "id": "w", "innerHtml": "<p>hi</p>"}]}]}]},
        });
        let b = page_body(&stored);
        assert_eq!(b["@odata.type"], "#microsoft.graph.sitePage");
        for gone in [
            "id",
            "eTag",
            "createdBy",
            "webUrl",
            "publishingState",
            "@odata.context",
        ] {
            assert!(b.get(gone).is_none(), "{gone}");
        }
        assert_eq!(b["titleArea"]["layout"], "plain");
        let c = &b["canvasLayout"];
        assert!(c.get("id").is_none() && c.get("horizontalSections@odata.context").is_none());
        assert_eq!(
            c["horizontalSections"][0]["columns"][0]["webparts"][0]["innerHtml"],
            "<p>hi</p>"
        );
        assert_eq!(
            page_name_with("News.aspx", "Restored 2024-01-02 03.04.05"),
            "News (Restored 2024-01-02 03.04.05).aspx"
        );
        assert_eq!(page_name_with("x", "s"), "x (s).aspx");
    }

    #[test]
    fn only_writable_fields_are_written_back() {
        let meta = json!({"columns": [
            {"name": "Title", "text": {}},
            {"name": "Status", "choice": {"choices": ["a"]}},
            {"name": "Computed", "readOnly": true, "text": {}},
        ]});
        let item = json!({"fields": {
            "@odata.etag": "x", "id": "3", "Title": "t", "Status": "a",
            "Computed": "c", "Created": "2020-01-01T00:00:00Z",
        }});
        assert_eq!(
            writable_fields(&item, &writable_columns(&meta)),
            json!({"Title": "t", "Status": "a"})
        );
        let cols = creatable_columns(&meta);
        assert_eq!(cols.len(), 1);
        assert_eq!(cols[0]["name"], "Status");
        assert_eq!(cols[0]["choice"]["choices"][0], "a");
    }
}
