//! Restore of a drive tree (SPEC F-E5): the files and folders a snapshot
//! holds under a drive folder (layout in [`crate::drive`]) written into a
//! destination drive. OneDrive, SharePoint libraries and the team/group
//! sites all go through [`restore_drive_tree`].
//!
//! # Selection
//!
//! Selection paths are the snapshot paths of item nodes
//! (`<root>/items/<item id>`) or of the whole drive (`<root>`, or the Drive
//! sub-service). A selected file is restored alone; a selected folder (in
//! `folders` or `items`, either list) brings everything below it by the path
//! rebuilt from the snapshot, whatever the ids below it. The folders above a
//! selected item are re-created as needed, so the structure is kept.
//!
//! # Modes
//!
//! - Non-destructive: everything goes below a new folder named
//!   [`restore_folder_name`] at the drive root, the
//!   structure kept below it; a retried job writes into the same folder.
//! - Replace: a file missing at its path comes back; one present is
//!   overwritten (a new version of the existing item, so its own history
//!   stays).
//! - Bypass: missing files come back; present ones are left alone.
//! - Duplicate: every restored file is written as
//!   [`super::RestoreOptions::duplicate_name`] beside whatever exists; folders are
//!   merged, not duplicated.
//!
//! # Uploads
//!
//! Files go through upload sessions (`createUploadSession`, with the
//! conflict behaviour and the `fileSystemInfo` times in the session's
//! `item`), in fragments of a multiple of 320 KiB, streamed from the vault,
//! so memory does not grow with file size. The fragments are sent to the
//! pre-authenticated `uploadUrl` without the bearer token, as Graph asks.
//! Empty files cannot go through a session (its Content-Range would be
//! empty), so they are a simple PUT followed by a PATCH of their times.
//! With `include_versions`, a file's older versions are uploaded first,
//! oldest first, each a new version of the same item, then the current one,
//! so the destination's history is in order.
//!
//! Cancellation is checked between items and between the fragments of an
//! item's first upload: an open session is then abandoned (DELETE on its
//! URL), so no partial file appears. Once a file's first upload committed,
//! its remaining versions are finished, so the item is whole.
//!
//! OneNote notebooks (packages) come back as plain folders holding their
//! section files: Graph v1.0 cannot create a package item.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use graph::Method;
use graph::Request;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{ItemOutcome, RestoreCtx, RestoreMode, Tally};
use crate::drive::{StoredItem, stored_items};
use crate::error::{EngineError, Result};
use crate::run::meta_json;

/// Fragment size of upload sessions: 16 × 320 KiB (5 MiB). Graph requires a
/// multiple of 320 KiB below 60 MiB; 5 MiB keeps memory low and requests few.
pub const FRAGMENT: usize = 16 * 320 * 1024;

/// The non-destructive restore folder's name in a drive: the restore's
/// folder name with ':' (which OneDrive and SharePoint refuse in names)
/// written as '.' ("Restored 2026-11-29 14.05.09").
pub fn restore_folder_name(options: &super::RestoreOptions) -> String {
    options.restore_folder_name().replace(':', ".")
}

/// Restores the drive stored under the snapshot folder `root` (e.g.
/// `drive`, `drives/<drive id>`) into the drive `dest_drive_id`, with the
/// selection and mode of `ctx`. Item failures go to the tally; an error is
/// returned only when nothing can proceed (the destination drive is gone,
/// the connection fails, the snapshot is unreadable).
pub async fn restore_drive_tree(
    ctx: &RestoreCtx<'_>,
    tally: &Tally<'_>,
    root: &str,
    dest_drive_id: &str,
) -> Result<()> {
    let root = root.trim_matches('/');
    let dest = crate::run::seg(dest_drive_id)?;
    let items = stored_items(ctx.vault, ctx.snapshot, root).await?;
    let chosen = selected(ctx.selection, root, &items);
    if chosen.is_empty() {
        return Ok(());
    }
    ctx.progress.set_stage(root);
    tally.plan(
        chosen.iter().filter(|i| i.is_file()).count() as u64,
        chosen
            .iter()
            .filter(|i| i.is_file())
            .map(|i| i.content.size)
            .sum(),
    );
    let w = Writer {
        ctx,
        tally,
        drive: dest,
        folders: Mutex::new(HashMap::new()),
    };
    // The destination's base folder: the drive root, or the restore folder.
    let root_id = w.root_id().await?;
    let base = if ctx.options.mode == RestoreMode::NonDestructive {
        let name = restore_folder_name(ctx.options);
        w.ensure_child_folder(&root_id, &name, None).await?
    } else {
        root_id
    };
    w.folders.lock().insert(String::new(), base);

    // Folders first, parents before children (sorted by path), so each
    // file finds its parent; then the files, a few at a time.
    for it in chosen.iter().filter(|i| !i.is_file()) {
        if ctx.cancel.is_cancelled() {
            return Ok(());
        }
        if let Err(e) = w.ensure_path(&it.path, Some(&it.meta)).await {
            fatal_or(e, |why| {
                tally.item(
                    &node_path(root, &it.id),
                    &it.path,
                    ItemOutcome::Failed,
                    Some(format!("the folder could not be created: {why}")),
                    0,
                )
            })?;
        }
    }
    let files: Vec<&StoredItem> = chosen.iter().copied().filter(|i| i.is_file()).collect();
    let results: Vec<Result<()>> = futures::stream::iter(files)
        .map(|it| {
            let w = &w;
            async move {
                if ctx.cancel.is_cancelled() {
                    return Ok(());
                }
                w.restore_file(root, it).await
            }
        })
        .buffer_unordered(ctx.options.concurrency.max(1))
        .collect()
        .await;
    for r in results {
        r?;
    }
    if chosen.iter().any(|i| i.meta.get("package").is_some()) {
        tally.note(
            "OneNote notebooks were restored as folders holding their sections: \
             Microsoft Graph cannot create a notebook package.",
        );
    }
    Ok(())
}

/// The snapshot path of an item node.
pub(crate) fn node_path(root: &str, id: &str) -> String {
    format!("{root}/items/{id}")
}

/// The items to restore (without the drive root), folders before files,
/// parents before children. A folder named by the selection brings what its
/// rebuilt path holds.
pub(crate) fn selected<'a>(
    sel: &super::Selection,
    root: &str,
    items: &'a [StoredItem],
) -> Vec<&'a StoredItem> {
    let named_folders: Vec<&str> = items
        .iter()
        .filter(|i| !i.is_file() && i.meta.get("root").is_none())
        .filter(|i| sel.covers(&node_path(root, &i.id)))
        .map(|i| i.path.as_str())
        .collect();
    let mut out: Vec<&StoredItem> = items
        .iter()
        .filter(|i| i.meta.get("root").is_none() && !i.path.is_empty())
        .filter(|i| {
            sel.covers(&node_path(root, &i.id))
                || named_folders
                    .iter()
                    .any(|f| i.path.starts_with(&format!("{f}/")))
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Turns a Graph error into an item failure (`item` is called with the
/// reason) unless it means nothing else can proceed either.
fn fatal_or(e: EngineError, item: impl FnOnce(String)) -> Result<()> {
    match &e {
        EngineError::Graph(g) if g.class() == graph::ErrorClass::Connection => Err(e),
        EngineError::Vault(_) | EngineError::Cancelled => Err(e),
        EngineError::Graph(g) => {
            item(format!("{g} ({})", g.guidance()));
            Ok(())
        }
        other => {
            item(other.to_string());
            Ok(())
        }
    }
}

/// Percent-encodes one path segment for a Graph URL.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `fileSystemInfo` times to give Graph: the stored item's own, or its
/// Graph times when it has none.
fn file_system_info(meta: &Value) -> Value {
    let pick = |k: &str| {
        meta.pointer(&format!("/fileSystemInfo/{k}"))
            .or_else(|| meta.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let mut m = serde_json::Map::new();
    if let Some(c) = pick("createdDateTime") {
        m.insert("createdDateTime".into(), json!(c));
    }
    if let Some(t) = pick("lastModifiedDateTime") {
        m.insert("lastModifiedDateTime".into(), json!(t));
    }
    Value::Object(m)
}

/// One upload: what to send and where.
struct Upload<'a> {
    /// The content.
    content: &'a vault::Content,
    /// createdDateTime / lastModifiedDateTime to set.
    times: Value,
}

/// Where an upload goes.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// A new file `name` in folder `parent`, with a conflict behaviour.
    New {
        parent: &'a str,
        name: &'a str,
        conflict: &'static str,
    },
    /// A new version of the existing file `id`.
    Existing(&'a str),
}

/// Writes into one destination drive.
struct Writer<'c, 'a> {
    ctx: &'c RestoreCtx<'a>,
    tally: &'c Tally<'a>,
    drive: &'c str,
    /// Destination folder ids by relative path ("" = the base folder).
    folders: Mutex<HashMap<String, String>>,
}

impl Writer<'_, '_> {
    async fn send(&self, req: Request) -> Result<graph::Response> {
        self.tally.requests(1);
        Ok(self.ctx.graph.send(req).await?)
    }

    async fn root_id(&self) -> Result<String> {
        let v: Value = self
            .send(Request::get(format!(
                "/drives/{}/root?$select=id",
                self.drive
            )))
            .await
            .map_err(|e| match e {
                EngineError::Graph(g) if g.is_not_found() => {
                    EngineError::EntityGone(format!("drive {}", self.drive))
                }
                e => e,
            })?
            .json()?;
        id_in(&v)
    }

    /// The child `name` of folder `parent`, if any: (id, is a file).
    async fn child(&self, parent: &str, name: &str) -> Result<Option<(String, bool)>> {
        let url = format!(
            "/drives/{}/items/{parent}:/{}:?$select=id,file,folder,package",
            self.drive,
            encode_segment(name)
        );
        match self.send(Request::get(url)).await {
            Ok(r) => {
                let v: Value = r.json()?;
                Ok(Some((id_in(&v)?, v.get("file").is_some())))
            }
            Err(EngineError::Graph(g)) if g.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The folder `name` below `parent`, created when missing (with the
    /// stored item's times, when `meta` is given).
    async fn ensure_child_folder(
        &self,
        parent: &str,
        name: &str,
        meta: Option<&Value>,
    ) -> Result<String> {
        match self.child(parent, name).await? {
            Some((id, false)) => return Ok(id),
            Some((_, true)) => {
                return Err(EngineError::Invalid(format!(
                    "a file named {name:?} is where a folder is needed"
                )));
            }
            None => {}
        }
        let mut body = json!({
            "name": name,
            "folder": {},
            "@microsoft.graph.conflictBehavior": "fail",
        });
        if let Some(m) = meta {
            body["fileSystemInfo"] = file_system_info(m);
        }
        let url = format!("/drives/{}/items/{parent}/children", self.drive);
        match self.send(Request::json(Method::POST, url, &body)).await {
            Ok(r) => {
                self.tally.container_created();
                id_in(&r.json()?)
            }
            // Created meanwhile by a concurrent task or an earlier try.
            Err(EngineError::Graph(g)) if g.status() == Some(409) => {
                match self.child(parent, name).await? {
                    Some((id, false)) => Ok(id),
                    _ => Err(EngineError::Graph(g)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The destination folder for the relative path `path`, creating what
    /// is missing on the way.
    async fn ensure_path(&self, path: &str, meta: Option<&Value>) -> Result<String> {
        if let Some(id) = self.folders.lock().get(path) {
            return Ok(id.clone());
        }
        let (parent_path, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", path),
        };
        let parent = Box::pin(self.ensure_path(parent_path, None)).await?;
        let id = self.ensure_child_folder(&parent, name, meta).await?;
        self.folders.lock().insert(path.to_string(), id.clone());
        Ok(id)
    }

    /// Restores one file per the mode; its outcome goes to the tally.
    async fn restore_file(&self, root: &str, it: &StoredItem) -> Result<()> {
        let snap_path = node_path(root, &it.id);
        let fail = |why: String| {
            self.tally
                .item(&snap_path, &it.path, ItemOutcome::Failed, Some(why), 0)
        };
        match self.restore_file_inner(root, it).await {
            Ok(Some((outcome, detail, bytes))) => {
                self.tally
                    .item(&snap_path, &it.path, outcome, detail, bytes);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => fatal_or(e, fail),
        }
    }

    /// What happened to the file, or None when it was cancelled before
    /// anything was written.
    async fn restore_file_inner(
        &self,
        root: &str,
        it: &StoredItem,
    ) -> Result<Option<(ItemOutcome, Option<String>, u64)>> {
        let (parent_path, name) = match it.path.rsplit_once('/') {
            Some((p, n)) => (p, n),
            None => ("", it.path.as_str()),
        };
        let parent = self.ensure_path(parent_path, None).await?;
        let mode = self.ctx.options.mode;
        let dup_name;
        let (target, outcome) = match mode {
            RestoreMode::Duplicate => {
                dup_name = self.ctx.options.duplicate_name(name);
                (
                    Target::New {
                        parent: &parent,
                        name: &dup_name,
                        conflict: "rename",
                    },
                    ItemOutcome::Restored,
                )
            }
            RestoreMode::NonDestructive | RestoreMode::Replace | RestoreMode::Bypass => {
                match self.child(&parent, name).await? {
                    None => (
                        Target::New {
                            parent: &parent,
                            name,
                            conflict: "fail",
                        },
                        ItemOutcome::Restored,
                    ),
                    Some((_, false)) => {
                        return Ok(Some((
                            ItemOutcome::Failed,
                            Some(format!("a folder named {name:?} is where the file belongs")),
                            0,
                        )));
                    }
                    Some((_, true)) if mode == RestoreMode::Bypass => {
                        return Ok(Some((
                            ItemOutcome::Skipped,
                            Some("present in the destination; bypass leaves it".into()),
                            0,
                        )));
                    }
                    // Replace, or a retried non-destructive restore
                    // meeting its own earlier copy.
                    Some((_, true)) => (
                        Target::New {
                            parent: &parent,
                            name,
                            conflict: "replace",
                        },
                        ItemOutcome::Overwritten,
                    ),
                }
            }
        };
        let outcome = if mode == RestoreMode::NonDestructive {
            ItemOutcome::Restored
        } else {
            outcome
        };

        let mut uploads: Vec<Upload<'_>> = Vec::new();
        let older;
        if self.ctx.options.include_versions {
            older = self.older_versions(root, &it.id).await?;
            for (meta, content) in &older {
                uploads.push(Upload {
                    content,
                    times: json!({
                        "createdDateTime": file_system_info(&it.meta)["createdDateTime"],
                        "lastModifiedDateTime": meta.get("lastModifiedDateTime").cloned().unwrap_or(Value::Null),
                    }),
                });
            }
        }
        uploads.push(Upload {
            content: &it.content,
            times: file_system_info(&it.meta),
        });

        let mut bytes = 0;
        let mut item_id: Option<String> = None;
        for up in &uploads {
            let t = match &item_id {
                None => target,
                Some(id) => Target::Existing(id),
            };
            // Only the first upload may be abandoned: after it the item
            // exists and is finished whole.
            let cancellable = item_id.is_none();
            match self.upload(t, up, cancellable).await? {
                Some(id) => item_id = Some(id),
                None => return Ok(None),
            }
            bytes += up.content.size;
        }
        Ok(Some((outcome, item_id, bytes)))
    }

    /// The stored older versions of a file, oldest first, without the one
    /// that is its current content.
    async fn older_versions(&self, root: &str, id: &str) -> Result<Vec<(Value, vault::Content)>> {
        let folder = format!("{root}/versions/{id}");
        let entries = match self.ctx.vault.list_folder(self.ctx.snapshot, &folder).await {
            Ok(e) => e,
            Err(vault::Error::NotFound(_) | vault::Error::NoSuchEntry(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let current = match self.ctx.vault.lookup(self.ctx.snapshot, &folder).await {
            Ok(n) => meta_json(&n)
                .and_then(|m| m.get("current").and_then(Value::as_str).map(str::to_string)),
            Err(_) => None,
        };
        let mut out: Vec<(Value, vault::Content)> = Vec::new();
        for e in entries {
            if Some(&e.name) == current.as_ref() {
                continue;
            }
            let meta = meta_json(&e.node).unwrap_or(Value::Null);
            if let vault::Node::Item { content, .. } = e.node {
                out.push((meta, content));
            }
        }
        // Oldest first: by modification time, then by version label
        // ("1.0" < "2.0" < "10.0").
        out.sort_by(|(a, _), (b, _)| {
            let t = |v: &Value| {
                v.get("lastModifiedDateTime")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let label = |v: &Value| {
                v.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .split('.')
                    .map(|p| p.parse::<u64>().unwrap_or(0))
                    .collect::<Vec<_>>()
            };
            t(a).cmp(&t(b)).then(label(a).cmp(&label(b)))
        });
        Ok(out)
    }

    /// Uploads one content as `target`; the resulting item's id, or None
    /// when cancelled (the session then abandoned).
    async fn upload(
        &self,
        target: Target<'_>,
        up: &Upload<'_>,
        cancellable: bool,
    ) -> Result<Option<String>> {
        let times = strip_nulls(up.times.clone());
        if up.content.size == 0 {
            return self.upload_empty(target, times).await.map(Some);
        }
        let (url, conflict) = match &target {
            Target::New {
                parent,
                name,
                conflict,
            } => (
                format!(
                    "/drives/{}/items/{parent}:/{}:/createUploadSession",
                    self.drive,
                    encode_segment(name)
                ),
                *conflict,
            ),
            Target::Existing(id) => (
                format!("/drives/{}/items/{id}/createUploadSession", self.drive),
                "replace",
            ),
        };
        let body = json!({
            "item": {
                "@microsoft.graph.conflictBehavior": conflict,
                "fileSystemInfo": times,
            },
        });
        let session: Value = self
            .send(Request::json(Method::POST, url, &body))
            .await?
            .json()?;
        let upload_url = session
            .get("uploadUrl")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                EngineError::Invalid("Microsoft Graph gave an upload session without a URL".into())
            })?
            .to_string();
        match self
            .send_fragments(&upload_url, up.content, cancellable)
            .await
        {
            Ok(Some(v)) => id_in(&v).map(Some),
            Ok(None) => {
                self.abandon(&upload_url).await;
                Ok(None)
            }
            Err(e) => {
                self.abandon(&upload_url).await;
                Err(e)
            }
        }
    }

    /// Streams the content into the session, fragment by fragment; the
    /// committed item, or None when cancelled between fragments.
    async fn send_fragments(
        &self,
        url: &str,
        content: &vault::Content,
        cancellable: bool,
    ) -> Result<Option<Value>> {
        let total = content.size;
        let mut stream = self
            .ctx
            .vault
            .read_content(content)
            .map_err(EngineError::from);
        let mut buf = BytesMut::with_capacity(FRAGMENT);
        let mut sent: u64 = 0;
        let mut last: Option<Value> = None;
        loop {
            let chunk = stream.try_next().await?;
            let done = chunk.is_none();
            if let Some(c) = chunk {
                buf.extend_from_slice(&c);
            }
            while buf.len() >= FRAGMENT || (done && !buf.is_empty()) {
                if cancellable && self.ctx.cancel.is_cancelled() {
                    return Ok(None);
                }
                let n = buf.len().min(FRAGMENT);
                let part: Bytes = buf.split_to(n).freeze();
                let end = sent + n as u64 - 1;
                let req = Request::bytes(Method::PUT, url, "application/octet-stream", part)
                    .header("Content-Range", &format!("bytes {sent}-{end}/{total}"))
                    .pre_authenticated();
                let r = self.send(req).await?;
                sent = end + 1;
                if sent == total {
                    last = Some(r.json()?);
                }
            }
            if done {
                break;
            }
        }
        if sent != total {
            return Err(EngineError::Invalid(format!(
                "the stored content held {sent} bytes where {total} were recorded"
            )));
        }
        last.map(Some).ok_or_else(|| {
            EngineError::Invalid("Microsoft Graph did not return the uploaded file".into())
        })
    }

    /// Abandons an upload session, so no partial file remains (Graph also
    /// drops it when it expires; a failure here is only logged).
    async fn abandon(&self, url: &str) {
        let r = self.send(Request::delete(url).pre_authenticated()).await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "could not delete an upload session");
        }
    }

    /// An empty file: a simple PUT (a session cannot carry zero bytes),
    /// then its times.
    async fn upload_empty(&self, target: Target<'_>, times: Value) -> Result<String> {
        let url = match &target {
            Target::New {
                parent,
                name,
                conflict,
            } => format!(
                "/drives/{}/items/{parent}:/{}:/content?@microsoft.graph.conflictBehavior={conflict}",
                self.drive,
                encode_segment(name)
            ),
            Target::Existing(id) => format!("/drives/{}/items/{id}/content", self.drive),
        };
        let v: Value = self
            .send(Request::bytes(
                Method::PUT,
                url,
                "application/octet-stream",
                Bytes::new(),
            ))
            .await?
            .json()?;
        let id = id_in(&v)?;
        let patch = json!({ "fileSystemInfo": times });
        self.send(Request::json(
            Method::PATCH,
            format!("/drives/{}/items/{id}", self.drive),
            &patch,
        ))
        .await?;
        Ok(id)
    }
}

fn strip_nulls(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    v
}

fn id_in(v: &Value) -> Result<String> {
    v.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| EngineError::Invalid("Microsoft Graph answered without an item id".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_as_one_path_segment() {
        assert_eq!(encode_segment("a b/c?.txt"), "a%20b%2Fc%3F.txt");
        assert_eq!(encode_segment("Façade"), "Fa%C3%A7ade");
    }

    #[test]
    fn file_system_times_prefer_the_items_own() {
        let meta = json!({
            "createdDateTime": "2024-01-01T00:00:00Z",
            "lastModifiedDateTime": "2024-02-01T00:00:00Z",
            "fileSystemInfo": {"lastModifiedDateTime": "2020-05-05T00:00:00Z"},
        });
        assert_eq!(
            file_system_info(&meta),
            json!({
                "createdDateTime": "2024-01-01T00:00:00Z",
                "lastModifiedDateTime": "2020-05-05T00:00:00Z",
            })
        );
    }

    #[test]
    fn the_restore_folder_name_is_a_valid_drive_name() {
        let mut o = super::super::RestoreOptions::new(RestoreMode::NonDestructive);
        o.requested_at = "2023-04-01T00:05:25Z".parse().unwrap();
        assert_eq!(restore_folder_name(&o), "Restored 2023-04-01 00.05.25");
    }
}
