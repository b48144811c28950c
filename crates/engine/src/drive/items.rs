//! One drive item of a backup: deciding what to fetch (content only when it
//! changed, versions only with new content, permissions only when sharing
//! changed), then fetching it, a few items at a time, streaming content
//! straight into the vault.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use graph::{GraphError, Request};
use serde_json::{Value, json};
use vault::{Content, Node};

use super::{DOWNLOADS_IN_FLIGHT, is_file, to_vec, with_retry};
use crate::error::{EngineError, Result};
use crate::faults::FaultBus;
use crate::report::ItemCounts;
use crate::run::{PartCtx, id_of, meta_json, seg, strip_annotations};

use super::ATTEMPTS;

/// Hashes Graph gives for file content, strongest first. Any one that both
/// the stored and the listed metadata have decides whether the content changed.
const CONTENT_HASHES: &[&str] = &["sha256Hash", "quickXorHash", "sha1Hash", "crc32Hash"];

/// What to do with the content of one changed item.
pub(super) enum PlanKind {
    /// Exactly as the parent snapshot has it (listed again by a resync).
    Unchanged,
    /// A folder, a package (OneNote notebook) or the root: metadata only.
    Container,
    /// A file whose content is unchanged: new metadata, stored content.
    Reuse(Content),
    /// A file with new content.
    Download,
}

/// One changed item and what to fetch for it.
pub(super) struct Plan {
    pub id: String,
    /// The driveItem JSON to store.
    pub meta: Value,
    pub kind: PlanKind,
    pub is_file: bool,
    /// Content size Graph reports (files), checked against what is downloaded.
    pub size: Option<u64>,
    /// The parent snapshot's node of the item, put back if this run fails
    /// to back the item up (so that the next run tries again).
    old: Option<Node>,
    /// Read the item's permissions.
    fetch_permissions: bool,
    /// The item is no longer shared: forget stored permissions.
    drop_permissions: bool,
}

/// Whether two driveItem JSONs describe the same content.
fn same_content(old: &Value, new: &Value) -> bool {
    let size = |v: &Value| v.get("size").and_then(Value::as_u64);
    if size(old) != size(new) {
        return false;
    }
    let hash = |v: &Value, k: &str| {
        v.get("file")
            .and_then(|f| f.get("hashes"))
            .and_then(|h| h.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    for k in CONTENT_HASHES {
        if let (Some(a), Some(b)) = (hash(old, k), hash(new, k)) {
            return a == b;
        }
    }
    // No common hash (some SharePoint files have none): the cTag changes
    // exactly when the content does.
    match (old.get("cTag"), new.get("cTag")) {
        (Some(a), Some(b)) if !a.is_null() => a == b,
        _ => false,
    }
}

/// Decides what to fetch for a changed item and counts it.
pub(super) async fn plan(
    ctx: &PartCtx<'_>,
    root: &str,
    id: &str,
    mut v: Value,
    old: Option<Node>,
    counts: &mut ItemCounts,
) -> Result<Plan> {
    strip_annotations(&mut v);
    let shared_changed = v.get("@microsoft.graph.sharedChanged").is_some();
    // Instance annotations (the pre-authenticated download URL, change
    // flags) are not the item's state.
    if let Value::Object(m) = &mut v {
        m.retain(|k, _| !k.starts_with('@'));
    }
    let old_meta = old.as_ref().and_then(meta_json);
    let file = is_file(Some(&v));
    let size = v.get("size").and_then(Value::as_u64);
    let kind = match (&old, &old_meta) {
        // A resync lists every item: most are as the parent has them.
        (Some(Node::Item { .. }), Some(m)) if *m == v => PlanKind::Unchanged,
        _ if !file => PlanKind::Container,
        (Some(Node::Item { content, .. }), Some(m)) if is_file(Some(m)) && same_content(m, &v) => {
            PlanKind::Reuse(content.clone())
        }
        _ => PlanKind::Download,
    };
    if file && !matches!(kind, PlanKind::Unchanged) {
        if is_file(old_meta.as_ref()) {
            counts.changed += 1;
        } else {
            counts.new += 1;
        }
    }
    let shared = v.get("shared").is_some_and(|s| !s.is_null());
    let stored_permissions = ctx
        .writer
        .parent_node(&format!("{root}/permissions/{id}"))
        .await?;
    // Permissions are stored with the eTag they were read at.
    let read_at = stored_permissions
        .as_ref()
        .and_then(meta_json)
        .and_then(|m| m.get("eTag").cloned());
    let fetch_permissions = shared && (shared_changed || read_at.as_ref() != v.get("eTag"));
    Ok(Plan {
        id: id.to_string(),
        meta: v,
        kind,
        is_file: file,
        size,
        old,
        fetch_permissions,
        drop_permissions: !shared && stored_permissions.is_some(),
    })
}

/// Carries out the plans, a few at a time. Item failures go to `bus`;
/// returns the ids of the items that failed (the next run tries them again).
pub(super) async fn run_plans(
    ctx: &PartCtx<'_>,
    root: &str,
    drive_id: &str,
    plans: Vec<Plan>,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Vec<String>> {
    let results: Vec<(String, Option<Node>, std::result::Result<u64, Failure>)> =
        futures::stream::iter(plans)
            .map(|p| async move {
                let r = back_up_item(ctx, root, drive_id, &p).await;
                ctx.progress.advance(1, r.as_ref().map(|b| *b).unwrap_or(0));
                (p.id, p.old, r)
            })
            .buffer_unordered(DOWNLOADS_IN_FLIGHT)
            .collect()
            .await;
    let mut failed = Vec::new();
    let mut cancelled = false;
    for (id, old, r) in results {
        match r {
            Ok(bytes) => counts.bytes_read += bytes,
            Err(Failure::Cancelled) => cancelled = true,
            Err(Failure::Vault(e)) => return Err(e.into()),
            Err(Failure::Item(reason)) => {
                // Back to what the parent had: the snapshot never pairs new
                // metadata with old content, and the next run tries again.
                let path = format!("{root}/items/{id}");
                match old {
                    Some(node) => ctx.writer.put_node(&path, node).await?,
                    None => ctx.writer.remove(&path).await?,
                }
                bus.item_failed(id.clone(), path, reason);
                failed.push(id);
            }
        }
    }
    if cancelled {
        return Err(EngineError::Cancelled);
    }
    Ok(failed)
}

/// Why one item could not be backed up.
enum Failure {
    /// Cancel was asked.
    Cancelled,
    /// The vault failed: the whole backup stops.
    Vault(vault::Error),
    /// This item failed, for a reason a person can read.
    Item(String),
}

impl From<vault::Error> for Failure {
    fn from(e: vault::Error) -> Self {
        Failure::Vault(e)
    }
}

fn graph_failure(what: &str, e: &GraphError) -> Failure {
    Failure::Item(format!("{what}: {e} ({})", e.guidance()))
}

/// Backs up one item; returns the bytes downloaded.
async fn back_up_item(
    ctx: &PartCtx<'_>,
    root: &str,
    drive_id: &str,
    p: &Plan,
) -> std::result::Result<u64, Failure> {
    if ctx.cancel.is_cancelled() {
        return Err(Failure::Cancelled);
    }
    let id = p.id.as_str();
    let path = format!("{root}/items/{id}");
    let meta = to_vec(&p.meta);
    let mut bytes = 0;
    match &p.kind {
        PlanKind::Unchanged => {}
        PlanKind::Container => {
            ctx.writer
                .put_node(
                    &path,
                    Node::Item {
                        meta,
                        content: Content::default(),
                    },
                )
                .await?;
        }
        PlanKind::Reuse(content) => {
            ctx.writer
                .put_node(
                    &path,
                    Node::Item {
                        meta,
                        content: content.clone(),
                    },
                )
                .await?;
        }
        PlanKind::Download => {
            let url = format!("/drives/{drive_id}/items/{id}/content");
            let content = match download(ctx, &url, p.size).await {
                Ok(c) => c,
                Err(Download::Gone) => {
                    // Deleted since the delta round: the next round says so.
                    ctx.writer.remove(&path).await?;
                    return Ok(0);
                }
                Err(Download::Failed(f)) => return Err(f),
            };
            bytes += content.size;
            ctx.writer
                .put_node(&path, Node::Item { meta, content })
                .await?;
            bytes += back_up_versions(ctx, root, drive_id, p).await?;
        }
    }
    if p.fetch_permissions {
        let url = format!("/drives/{drive_id}/items/{id}/permissions");
        let mut perms = match with_retry(|| ctx.get_all(Request::get(url.as_str()))).await {
            Ok(v) => v,
            Err(EngineError::Graph(e)) if e.is_not_found() => {
                ctx.writer.remove(&path).await?;
                return Ok(bytes);
            }
            Err(EngineError::Graph(e)) => return Err(graph_failure("permissions", &e)),
            Err(e) => return Err(Failure::Item(format!("permissions: {e}"))),
        };
        perms.iter_mut().for_each(strip_annotations);
        ctx.writer
            .put_bytes(
                &format!("{root}/permissions/{id}"),
                to_vec(&json!({"eTag": p.meta.get("eTag")})),
                to_vec(&Value::Array(perms)),
            )
            .await?;
    } else if p.drop_permissions {
        ctx.writer
            .remove(&format!("{root}/permissions/{id}"))
            .await?;
    }
    Ok(bytes)
}

/// Stores the older versions of a file whose content changed: each version
/// once (versions are immutable), the one that was current in the parent
/// from the parent's content. Returns the bytes downloaded.
async fn back_up_versions(
    ctx: &PartCtx<'_>,
    root: &str,
    drive_id: &str,
    p: &Plan,
) -> std::result::Result<u64, Failure> {
    let id = p.id.as_str();
    let url = format!("/drives/{drive_id}/items/{id}/versions");
    let listed = match with_retry(|| ctx.get_all(Request::get(url.as_str()))).await {
        Ok(v) => v,
        Err(EngineError::Graph(e)) if e.is_not_found() => return Ok(0),
        Err(EngineError::Graph(e)) => return Err(graph_failure("versions", &e)),
        Err(e) => return Err(Failure::Item(format!("versions: {e}"))),
    };
    let folder = format!("{root}/versions/{id}");
    let parent_current = ctx
        .writer
        .parent_node(&folder)
        .await?
        .as_ref()
        .and_then(meta_json)
        .and_then(|m| m.get("current").and_then(Value::as_str).map(str::to_string));
    let stored: HashSet<String> = ctx
        .parent_entries(&folder)
        .await
        .map_err(|e| Failure::Item(format!("versions: {e}")))?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let old_content = match &p.old {
        Some(Node::Item { content, .. }) => Some(content.clone()),
        _ => None,
    };
    // Graph lists the newest version (the current content) first.
    let current = listed.first().and_then(id_of).map(str::to_string);
    ctx.writer
        .put_folder(&folder, to_vec(&json!({ "current": current })))
        .await?;
    let mut bytes = 0;
    let mut listed_ids = HashSet::new();
    for mut v in listed.into_iter().skip(1) {
        let Some(vid) = id_of(&v).map(str::to_string) else {
            return Err(Failure::Item(
                "Microsoft Graph listed a version without an id".into(),
            ));
        };
        let vid = seg(&vid)
            .map_err(|e| Failure::Item(e.to_string()))?
            .to_string();
        listed_ids.insert(vid.clone());
        if stored.contains(&vid) {
            continue;
        }
        strip_annotations(&mut v);
        if let Value::Object(m) = &mut v {
            m.retain(|k, _| !k.starts_with('@'));
        }
        let meta = to_vec(&v);
        let vpath = format!("{folder}/{vid}");
        let content = match (&old_content, &parent_current) {
            (Some(c), Some(cur)) if *cur == vid => c.clone(),
            _ => {
                let size = v.get("size").and_then(Value::as_u64);
                let url = format!("/drives/{drive_id}/items/{id}/versions/{vid}/content");
                match download(ctx, &url, size).await {
                    Ok(c) => {
                        bytes += c.size;
                        c
                    }
                    // Removed by version retention since the listing.
                    Err(Download::Gone) => continue,
                    Err(Download::Failed(f)) => return Err(f),
                }
            }
        };
        ctx.writer
            .put_node(&vpath, Node::Item { meta, content })
            .await?;
    }
    for gone in stored.difference(&listed_ids) {
        ctx.writer.remove(&format!("{folder}/{gone}")).await?;
    }
    Ok(bytes)
}

/// Why a download did not give content.
enum Download {
    /// The item (or version) no longer exists.
    Gone,
    Failed(Failure),
}

/// Streams content into the vault (Graph redirects `/content` to a
/// pre-authenticated URL, which the client follows); memory use is bounded
/// by the vault's batch, whatever the size. A connection that breaks off,
/// or content shorter or longer than Graph said, is downloaded again.
async fn download(
    ctx: &PartCtx<'_>,
    url: &str,
    expected: Option<u64>,
) -> std::result::Result<Content, Download> {
    let mut attempt = 1;
    loop {
        if ctx.cancel.is_cancelled() {
            return Err(Download::Failed(Failure::Cancelled));
        }
        ctx.requests.add(1);
        let reason = match ctx.graph.send_streaming(Request::get(url)).await {
            Err(e) if e.is_not_found() => return Err(Download::Gone),
            Err(e) if e.class() != graph::ErrorClass::Transient => {
                return Err(Download::Failed(graph_failure("download", &e)));
            }
            Err(e) => format!("{e} ({})", e.guidance()),
            Ok(resp) => {
                let stream = resp
                    .bytes_stream()
                    .map_err(|e| std::io::Error::other(e.to_string()));
                let reader = tokio_util::io::StreamReader::new(stream);
                match ctx.writer.store_reader(reader).await {
                    Ok(c) if expected.is_none_or(|n| n == c.size) => return Ok(c),
                    Ok(c) => format!(
                        "the download gave {} bytes where Microsoft Graph announced {}",
                        c.size,
                        expected.unwrap_or_default()
                    ),
                    Err(vault::Error::Input(e)) => format!("the download broke off: {e}"),
                    Err(e) => return Err(Download::Failed(Failure::Vault(e))),
                }
            }
        };
        if attempt >= ATTEMPTS {
            return Err(Download::Failed(Failure::Item(reason)));
        }
        tracing::debug!(url, reason, "download failed; trying again");
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_compared_by_hash_then_ctag() {
        let a = json!({"size": 3, "cTag": "c1", "file": {"hashes": {"quickXorHash": "q1"}}});
        let renamed = json!({"size": 3, "cTag": "c1", "name": "b", "file": {"hashes": {"quickXorHash": "q1"}}});
        let rewritten =
            json!({"size": 3, "cTag": "c2", "file": {"hashes": {"quickXorHash": "q2"}}});
        let no_hash = json!({"size": 3, "cTag": "c1", "file": {}});
        let no_hash_changed = json!({"size": 3, "cTag": "c2", "file": {}});
        let resized = json!({"size": 4, "cTag": "c1", "file": {"hashes": {"quickXorHash": "q1"}}});
        assert!(same_content(&a, &renamed));
        assert!(!same_content(&a, &rewritten));
        assert!(same_content(&a, &no_hash));
        assert!(!same_content(&a, &no_hash_changed));
        assert!(!same_content(&a, &resized));
        assert!(!same_content(&json!({}), &json!({})));
    }
}
