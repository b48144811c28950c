//! Browsing a snapshot (SPEC F-E2): what a person choosing what to restore
//! or export sees. [`browse`] lists one level of a snapshot (the top: one
//! card per sub-service; below it folders and items with the columns of
//! their type), [`changed_between`] lists what changed in a drive or site
//! between two snapshots, and [`preview`] shows one item's content.
//!
//! Every path given out is a snapshot path in the layouts documented in the
//! workload modules ([`crate::exchange`], [`crate::drive`],
//! [`crate::sharepoint`], [`crate::teams`]): the same paths a restore
//! [`Selection`](crate::restore::Selection) and [`preview`] accept, so a
//! user interface passes them straight on. Paths that are only navigation
//! (the top "" and a sub-service's root such as "mail" or "drives") are the
//! sub-service's folder in the snapshot as well.
//!
//! Cost: a level is one vault read of the folder's tree (trees are cached),
//! plus, for records whose columns live in their content (contacts, events,
//! tasks, list items, posts, channel messages), one read per item of the
//! requested page only. Mail and files keep their Graph JSON as metadata in
//! the tree, so their listings are sorted in full (newest mail first) and
//! still cost one read.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use mail_parser::{MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use vault::{Node, SnapshotInfo};

use crate::error::{EngineError, Result};
use crate::restore::SnapshotKind;
use crate::run::meta_json;

/// Items listed when the caller asks for no particular page size.
pub const DEFAULT_LIMIT: usize = 100;
/// The largest page a listing returns.
pub const MAX_LIMIT: usize = 1000;
/// Characters of a message's text shown in a listing column.
const TEXT_COLUMN_CHARS: usize = 200;
/// Files up to this size whose type is text-like have their text previewed.
const TEXT_PREVIEW_BYTES: u64 = 1024 * 1024;
/// Records whose content is read at once when a page is listed.
const READS_IN_FLIGHT: usize = 8;

/// Which items of a level a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Page {
    /// Items skipped.
    pub offset: usize,
    /// Items returned at most (capped at [`MAX_LIMIT`]; 0 means the default).
    pub limit: usize,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Page {
    fn limit(self) -> usize {
        match self.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        }
    }

    fn range(self, len: usize) -> std::ops::Range<usize> {
        let start = self.offset.min(len);
        start..(start + self.limit()).min(len)
    }
}

/// One sub-service of a snapshot, as the top of a listing shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Card {
    /// The sub-service ("mail", "drive", ...).
    pub sub_service: String,
    /// What a person calls it.
    pub title: String,
    /// The path to browse into.
    pub path: String,
    /// Items the snapshot holds of it.
    pub items: u64,
    /// How its backup ended (success, partial, failed).
    pub outcome: Value,
}

/// One step of the way from the top of a snapshot to a listed level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Crumb {
    /// Its path.
    pub path: String,
    /// What a person calls it.
    pub name: String,
}

/// A folder-like thing below a listed level: a mail folder, a calendar, a
/// drive folder, a list, a channel, a conversation thread...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FolderEntry {
    /// Its path (browse it to go in).
    pub path: String,
    /// What a person calls it.
    pub name: String,
    /// Items directly in it, where known without reading them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_count: Option<u64>,
}

/// An item in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemEntry {
    /// Its path (for restore, export and [`preview`]).
    pub path: String,
    /// What it is: message, contact, event, task, file, folder, listItem,
    /// page, post, channelMessage, reply, metadata.
    pub kind: String,
    /// What a person calls it (subject, name, title).
    pub name: String,
    /// The columns of its kind (SPEC F-E2).
    pub columns: Map<String, Value>,
    /// For [`changed_between`]: added, modified or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
}

/// One level of a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    /// The level's path ("" is the top).
    pub path: String,
    /// What a person calls it.
    pub title: String,
    /// The way here from the top, the top first and this level last.
    pub breadcrumbs: Vec<Crumb>,
    /// At the top: one card per sub-service.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub cards: Vec<Card>,
    /// Folders below this level, in the order a person expects.
    pub folders: Vec<FolderEntry>,
    /// The requested page of this level's items.
    pub items: Vec<ItemEntry>,
    /// Items at this level in all (every page).
    pub total_items: u64,
    /// The page's first item's position.
    pub offset: u64,
    /// The page size used.
    pub limit: u64,
}

/// An attachment of a previewed message or post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentInfo {
    /// File name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// MIME type, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// One item's content, for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// The item's path.
    pub path: String,
    /// What it is (as in [`ItemEntry::kind`]).
    pub kind: String,
    /// What a person calls it.
    pub title: String,
    /// Headers (mail) or main fields (everything else).
    pub fields: Map<String, Value>,
    /// The text: a message's or post's body as plain text (HTML converted,
    /// scripts and styles dropped), a text file's content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Attachments, by name and size.
    pub attachments: Vec<AttachmentInfo>,
}

/// Lists the level of `snapshot` at `path`: "" gives one card per
/// sub-service; any other path is a folder-like thing of the snapshot's
/// layout. Items come a page at a time.
pub async fn browse(
    vault: &vault::Account,
    snapshot: &SnapshotInfo,
    path: &str,
    page: Page,
) -> Result<Listing> {
    let kind = SnapshotKind::of(snapshot)?;
    let path = path.trim_matches('/');
    let b = Browser {
        vault,
        snap: snapshot,
        kind,
    };
    let mut listing = if path.is_empty() {
        b.top()
    } else {
        b.level(path, page).await?
    };
    listing.offset = page.range(listing.total_items as usize).start as u64;
    listing.limit = page.limit() as u64;
    Ok(listing)
}

/// What changed in the drives (and, for sites, the lists and pages) of a
/// snapshot from `older` to `newer` (SPEC F-E2's "changed from/to"): files
/// and list items added, modified or removed, and folders added or removed
/// (a folder whose only change is its size or date, because something in it
/// changed, is not listed). Entries carry the columns of the snapshot that
/// has the item (the older one for removals).
pub async fn changed_between(
    vault: &vault::Account,
    older: &SnapshotInfo,
    newer: &SnapshotInfo,
) -> Result<Vec<ItemEntry>> {
    let kind = SnapshotKind::of(newer)?;
    if SnapshotKind::of(older)? != kind {
        return Err(EngineError::Invalid(format!(
            "snapshots {} and {} are of different kinds",
            older.id.0, newer.id.0
        )));
    }
    let changes = vault.diff(older, newer).await?;
    let old_b = Browser {
        vault,
        snap: older,
        kind,
    };
    let new_b = Browser {
        vault,
        snap: newer,
        kind,
    };
    let mut old_drives: HashMap<String, DriveIndex> = HashMap::new();
    let mut new_drives: HashMap<String, DriveIndex> = HashMap::new();
    let mut out = Vec::new();
    for change in changes {
        let (path, what) = match &change {
            vault::Change::Added(p) => (p, "added"),
            vault::Change::Modified(p) => (p, "modified"),
            vault::Change::Removed(p) => (p, "removed"),
        };
        let (b, drives) = if what == "removed" {
            (&old_b, &mut old_drives)
        } else {
            (&new_b, &mut new_drives)
        };
        let segs: Vec<&str> = path.split('/').collect();
        let entry = if let Some((root, id)) = drive_item_of(&segs) {
            if !drives.contains_key(&root) {
                let index = b.drive_index(&root).await?;
                drives.insert(root.clone(), index);
            }
            let Some(index) = drives.get(&root) else {
                continue;
            };
            let Some(mut e) = index.entry(id) else {
                continue;
            };
            if e.kind == "folder" && what == "modified" {
                continue;
            }
            e.columns
                .insert("folder".into(), json!(index.folder_path(id)));
            Some(e)
        } else if kind == SnapshotKind::Site
            && ((segs.len() == 3 && segs[0] == "lists") || (segs.len() == 2 && segs[0] == "pages"))
        {
            let record = b.record(path).await?;
            Some(record_entry(path, &segs, &record))
        } else {
            None
        };
        if let Some(mut e) = entry {
            e.change = Some(what.to_string());
            out.push(e);
        }
    }
    Ok(out)
}

/// Shows the item at `path` of `snapshot`: a message's headers, text and
/// attachment names; a record's main fields; a file's name, size, type and
/// (small text files) text.
pub async fn preview(
    vault: &vault::Account,
    snapshot: &SnapshotInfo,
    path: &str,
) -> Result<Preview> {
    let kind = SnapshotKind::of(snapshot)?;
    let path = path.trim_matches('/');
    let b = Browser {
        vault,
        snap: snapshot,
        kind,
    };
    let node = b.lookup(path).await?;
    let Node::Item { meta, content } = node else {
        return Err(EngineError::Invalid(format!(
            "{path:?} is a folder of snapshot {}, not an item",
            snapshot.id.0
        )));
    };
    let segs: Vec<&str> = path.split('/').collect();
    if kind == SnapshotKind::Mailbox && segs.len() == 3 && segs[0] == "mail" {
        let bytes = read_bytes(vault, &content).await?;
        return mail_preview(path, &bytes);
    }
    if let Some((root, id)) = drive_item_of(&segs) {
        let m = parse_json(&meta, path)?;
        let e = file_entry(&root, id, &m, content.size);
        let mut fields = e.columns.clone();
        let content_type = m
            .pointer("/file/mimeType")
            .and_then(Value::as_str)
            .map(str::to_string);
        fields.insert("contentType".into(), json!(content_type));
        let text = if e.kind == "file"
            && content.size <= TEXT_PREVIEW_BYTES
            && is_text_like(content_type.as_deref(), &e.name)
        {
            let bytes = read_bytes(vault, &content).await?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            None
        };
        return Ok(Preview {
            path: path.to_string(),
            kind: e.kind,
            title: e.name,
            fields,
            text,
            attachments: Vec::new(),
        });
    }
    // Everything else is a JSON record (in its content, or, when the
    // content is empty, in its metadata).
    let bytes = read_bytes(vault, &content).await?;
    let record = if bytes.is_empty() {
        parse_json(&meta, path)?
    } else {
        parse_json(&bytes, path)?
    };
    let e = record_entry(path, &segs, &record);
    let mut fields = e.columns;
    fields.remove("text");
    let text = body_text(&record).or_else(|| {
        record
            .get("personalNotes")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    });
    let attachments = record
        .get("attachments")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| AttachmentInfo {
                    name: str_at(x, "/name").unwrap_or_default(),
                    size: x.get("size").and_then(Value::as_u64).unwrap_or(0),
                    content_type: str_at(x, "/contentType"),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Preview {
        path: path.to_string(),
        kind: e.kind,
        title: e.name,
        fields,
        text,
        attachments,
    })
}

/// One snapshot being browsed.
struct Browser<'a> {
    vault: &'a vault::Account,
    snap: &'a SnapshotInfo,
    kind: SnapshotKind,
}

impl Browser<'_> {
    /// The node at `path`, or an error naming the path when the snapshot
    /// has none.
    async fn lookup(&self, path: &str) -> Result<Node> {
        self.vault
            .lookup(self.snap, path)
            .await
            .map_err(|e| self.not_found(path, e))
    }

    fn not_found(&self, path: &str, e: vault::Error) -> EngineError {
        match e {
            vault::Error::NoSuchEntry(_)
            | vault::Error::WrongKind(_)
            | vault::Error::Invalid(_) => EngineError::Invalid(format!(
                "{path:?} is not in snapshot {} of {}",
                self.snap.id.0,
                self.snap.time.format("%Y-%m-%d %H:%M UTC")
            )),
            e => EngineError::Vault(e),
        }
    }

    /// The entries of the folder at `path`.
    async fn entries(&self, path: &str) -> Result<Vec<vault::Entry>> {
        match self.lookup(path).await? {
            Node::Folder { tree, .. } => Ok(self.vault.load_tree(&tree).await?.entries.clone()),
            Node::Item { .. } => Err(EngineError::Invalid(format!(
                "{path:?} is an item of snapshot {}, not a folder",
                self.snap.id.0
            ))),
        }
    }

    /// The entries of `path`, or none when the snapshot has no such folder
    /// (a sub-service that was never backed up).
    async fn entries_or_none(&self, path: &str) -> Result<Vec<vault::Entry>> {
        match self.vault.lookup(self.snap, path).await {
            Ok(Node::Folder { tree, .. }) => Ok(self.vault.load_tree(&tree).await?.entries.clone()),
            Ok(Node::Item { .. }) | Err(vault::Error::NoSuchEntry(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// The JSON record at `path` (its content, or its metadata when the
    /// content is empty).
    async fn record(&self, path: &str) -> Result<Value> {
        match self.lookup(path).await? {
            Node::Item { meta, content } => {
                let bytes = read_bytes(self.vault, &content).await?;
                if bytes.is_empty() {
                    parse_json(&meta, path)
                } else {
                    parse_json(&bytes, path)
                }
            }
            Node::Folder { meta, .. } => parse_json(&meta, path),
        }
    }

    fn crumbs(&self) -> Vec<Crumb> {
        vec![Crumb {
            path: String::new(),
            name: self
                .snap
                .time
                .format("Backup of %Y-%m-%d %H:%M UTC")
                .to_string(),
        }]
    }

    /// The top: one card per sub-service the snapshot's metadata lists.
    fn top(&self) -> Listing {
        let cards = self
            .snap
            .meta
            .get("parts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| {
                        let sub = p.get("subService")?.as_str()?.to_string();
                        Some(Card {
                            title: sub_service_title(&sub).to_string(),
                            path: self.sub_service_path(&sub),
                            items: p.get("items").and_then(Value::as_u64).unwrap_or(0),
                            outcome: p.get("outcome").cloned().unwrap_or(Value::Null),
                            sub_service: sub,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let crumbs = self.crumbs();
        Listing {
            path: String::new(),
            title: crumbs[0].name.clone(),
            breadcrumbs: crumbs,
            cards,
            folders: Vec::new(),
            items: Vec::new(),
            total_items: 0,
            offset: 0,
            limit: 0,
        }
    }

    /// Where a sub-service's data lies in this kind of snapshot.
    fn sub_service_path(&self, sub: &str) -> String {
        match (self.kind, sub) {
            (SnapshotKind::OneDrive, "drive") => crate::onedrive::ONEDRIVE_ROOT.to_string(),
            (_, "drive") => "drives".to_string(),
            (_, s) => s.to_string(),
        }
    }

    /// A level below the top.
    async fn level(&self, path: &str, page: Page) -> Result<Listing> {
        let segs: Vec<&str> = path.split('/').collect();
        let kind = self.kind;
        if let Some(root) = drive_root_of(kind, &segs) {
            let folder = match segs.len() - root.split('/').count() {
                0 => None,
                2 if segs[segs.len() - 2] == "items" => Some(segs[segs.len() - 1]),
                _ => return Err(self.unknown(path)),
            };
            return self.drive_level(path, &root, folder, page).await;
        }
        match (kind, segs.as_slice()) {
            (SnapshotKind::Mailbox, [sub @ ("mail" | "contacts")]) => {
                self.folder_tree_level(sub, None, page).await
            }
            (SnapshotKind::Mailbox, [sub @ ("mail" | "contacts"), id]) => {
                self.folder_tree_level(sub, Some(id), page).await
            }
            (SnapshotKind::Mailbox, [sub @ ("calendar" | "tasks")])
            | (SnapshotKind::Group | SnapshotKind::Team, [sub @ ("conversations" | "channels")])
            | (SnapshotKind::Site, [sub @ "lists"]) => self.containers_level(sub).await,
            (SnapshotKind::Mailbox, [sub @ ("calendar" | "tasks"), id])
            | (
                SnapshotKind::Group | SnapshotKind::Team,
                [sub @ ("conversations" | "channels"), id],
            )
            | (SnapshotKind::Site, [sub @ "lists", id]) => {
                let title = self.container_name(sub, id).await?;
                let mut crumbs = self.crumbs();
                crumbs.push(Crumb {
                    path: sub.to_string(),
                    name: sub_service_title(sub).to_string(),
                });
                crumbs.push(Crumb {
                    path: path.to_string(),
                    name: title.clone(),
                });
                self.records_level(path, title, crumbs, page).await
            }
            (SnapshotKind::Team, ["channels", cid, replies]) if replies.ends_with(".replies") => {
                let channel = self.container_name("channels", cid).await?;
                let mut crumbs = self.crumbs();
                crumbs.push(Crumb {
                    path: "channels".into(),
                    name: sub_service_title("channels").into(),
                });
                crumbs.push(Crumb {
                    path: format!("channels/{cid}"),
                    name: channel,
                });
                crumbs.push(Crumb {
                    path: path.to_string(),
                    name: "Replies".into(),
                });
                self.records_level(path, "Replies".into(), crumbs, page)
                    .await
            }
            (SnapshotKind::Group | SnapshotKind::Team, [sub @ ("calendar" | "metadata")])
            | (SnapshotKind::Site, [sub @ "pages"]) => {
                let mut crumbs = self.crumbs();
                let title = sub_service_title(sub).to_string();
                crumbs.push(Crumb {
                    path: path.to_string(),
                    name: title.clone(),
                });
                self.records_level(path, title, crumbs, page).await
            }
            (SnapshotKind::Site, ["site"]) => self.site_level(page).await,
            (SnapshotKind::Site | SnapshotKind::Group | SnapshotKind::Team, ["drives"]) => {
                self.libraries_level().await
            }
            _ => Err(self.unknown(path)),
        }
    }

    fn unknown(&self, path: &str) -> EngineError {
        EngineError::Invalid(format!(
            "{path:?} is not a folder of snapshot {} of {}",
            self.snap.id.0,
            self.snap.time.format("%Y-%m-%d %H:%M UTC")
        ))
    }

    /// Mail and contact folders: stored flat, the hierarchy in each one's
    /// `parentFolderId`. `folder` None is the sub-service's root.
    async fn folder_tree_level(
        &self,
        sub: &str,
        folder: Option<&str>,
        page: Page,
    ) -> Result<Listing> {
        let all = self.entries(sub).await?;
        let metas: HashMap<&str, Value> = all
            .iter()
            .filter(|e| e.node.is_folder())
            .map(|e| (e.name.as_str(), meta_json(&e.node).unwrap_or(Value::Null)))
            .collect();
        if let Some(id) = folder
            && !metas.contains_key(id)
        {
            return Err(self.unknown(&format!("{sub}/{id}")));
        }
        // Children: folders whose parent is `folder`, or, at the root,
        // whose parent is not a stored folder (the mailbox's root folder).
        let mut children: Vec<(&str, &Value)> = metas
            .iter()
            .filter(|(_, m)| {
                let parent = m.get("parentFolderId").and_then(Value::as_str);
                match folder {
                    Some(f) => parent == Some(f),
                    None => parent.is_none_or(|p| !metas.contains_key(p)),
                }
            })
            .map(|(id, m)| (*id, m))
            .collect();
        if sub == "mail" {
            children.sort_by_cached_key(|(id, m)| (outlook_rank(m), id.to_string()));
        } else {
            children.sort_by_cached_key(|(id, m)| {
                (
                    display_name(m).unwrap_or_default().to_lowercase(),
                    id.to_string(),
                )
            });
        }
        let mut folders = Vec::with_capacity(children.len());
        for (id, m) in children {
            let path = format!("{sub}/{id}");
            let count = self.item_count(&path).await?;
            folders.push(FolderEntry {
                name: display_name(m).unwrap_or_else(|| id.to_string()),
                path,
                item_count: Some(count),
            });
        }
        let mut crumbs = self.crumbs();
        crumbs.push(Crumb {
            path: sub.to_string(),
            name: sub_service_title(sub).to_string(),
        });
        let Some(id) = folder else {
            return Ok(Listing {
                path: sub.to_string(),
                title: sub_service_title(sub).to_string(),
                breadcrumbs: crumbs,
                cards: Vec::new(),
                folders,
                items: Vec::new(),
                total_items: 0,
                offset: 0,
                limit: 0,
            });
        };
        // The way down: parents up to the root, then reversed.
        let mut chain = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            let Some(m) = metas.get(c) else { break };
            if chain.len() > metas.len() {
                return Err(EngineError::Invalid(format!(
                    "{sub}/{id}: its parent folders form a loop"
                )));
            }
            chain.push(Crumb {
                path: format!("{sub}/{c}"),
                name: display_name(m).unwrap_or_else(|| c.to_string()),
            });
            cur = m.get("parentFolderId").and_then(Value::as_str);
        }
        chain.reverse();
        crumbs.extend(chain);
        let title = crumbs.last().map(|c| c.name.clone()).unwrap_or_default();
        let path = format!("{sub}/{id}");
        if sub == "mail" {
            // Messages keep their Graph JSON as metadata: the whole folder is
            // sorted (newest first, as Outlook shows it) from one tree read.
            let entries = self.entries(&path).await?;
            let mut msgs: Vec<(String, Value, u64)> = entries
                .into_iter()
                .filter(|e| !e.node.is_folder())
                .map(|e| {
                    let m = meta_json(&e.node).unwrap_or(Value::Null);
                    (e.name, m, e.node.size())
                })
                .collect();
            msgs.sort_by(|a, b| {
                let date = |m: &Value| str_at(m, "/receivedDateTime").unwrap_or_default();
                date(&b.1).cmp(&date(&a.1)).then_with(|| a.0.cmp(&b.0))
            });
            let total = msgs.len();
            let items = msgs[page.range(total)]
                .iter()
                .map(|(mid, m, size)| mail_entry(&format!("{path}/{mid}"), m, *size))
                .collect();
            return Ok(Listing {
                path,
                title,
                breadcrumbs: crumbs,
                cards: Vec::new(),
                folders,
                items,
                total_items: total as u64,
                offset: 0,
                limit: 0,
            });
        }
        let mut listing = self.records_level(&path, title, crumbs, page).await?;
        listing.folders = folders;
        Ok(listing)
    }

    /// Items directly in the folder at `path`.
    async fn item_count(&self, path: &str) -> Result<u64> {
        Ok(self
            .entries_or_none(path)
            .await?
            .iter()
            .filter(|e| !e.node.is_folder())
            .count() as u64)
    }

    /// The name of a container (calendar, To Do list, list, channel, thread)
    /// from its folder metadata.
    async fn container_name(&self, sub: &str, id: &str) -> Result<String> {
        let path = format!("{sub}/{id}");
        let node = self.lookup(&path).await?;
        if !node.is_folder() {
            return Err(self.unknown(&path));
        }
        let m = meta_json(&node).unwrap_or(Value::Null);
        Ok(container_title(&m).unwrap_or_else(|| id.to_string()))
    }

    /// A sub-service whose folders are containers of records, all at one
    /// level: calendars, To Do lists, threads, channels, lists.
    async fn containers_level(&self, sub: &str) -> Result<Listing> {
        let entries = self.entries(sub).await?;
        let mut folders = Vec::new();
        for e in entries.iter().filter(|e| e.node.is_folder()) {
            let m = meta_json(&e.node).unwrap_or(Value::Null);
            let path = format!("{sub}/{}", e.name);
            let count = self.item_count(&path).await?;
            folders.push(FolderEntry {
                name: container_title(&m).unwrap_or_else(|| e.name.clone()),
                path,
                item_count: Some(count),
            });
        }
        folders.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then_with(|| a.path.cmp(&b.path))
        });
        let mut crumbs = self.crumbs();
        crumbs.push(Crumb {
            path: sub.to_string(),
            name: sub_service_title(sub).to_string(),
        });
        Ok(Listing {
            path: sub.to_string(),
            title: sub_service_title(sub).to_string(),
            breadcrumbs: crumbs,
            cards: Vec::new(),
            folders,
            items: Vec::new(),
            total_items: 0,
            offset: 0,
            limit: 0,
        })
    }

    /// The items (JSON records) directly in the folder at `path`, a page of
    /// them read. Sub-folders that belong to an item (a post's attachments,
    /// a message's replies) are not listed as folders: the item's columns
    /// point to them.
    async fn records_level(
        &self,
        path: &str,
        title: String,
        crumbs: Vec<Crumb>,
        page: Page,
    ) -> Result<Listing> {
        let entries = self.entries(path).await?;
        let below: HashSet<&str> = entries
            .iter()
            .filter(|e| e.node.is_folder())
            .map(|e| e.name.as_str())
            .collect();
        let records: Vec<&vault::Entry> = entries.iter().filter(|e| !e.node.is_folder()).collect();
        let total = records.len();
        let chosen = &records[page.range(total)];
        let segs: Vec<&str> = path.split('/').collect();
        let items: Vec<ItemEntry> = futures::stream::iter(chosen.iter().map(|e| {
            let item_path = format!("{path}/{}", e.name);
            let replies = format!("{}.replies", e.name);
            let has_replies = below.contains(replies.as_str());
            let segs = &segs;
            async move {
                let record = self.record(&item_path).await?;
                let mut item_segs = segs.clone();
                item_segs.push(e.name.as_str());
                let mut entry = record_entry(&item_path, &item_segs, &record);
                if has_replies {
                    let rp = format!("{path}/{replies}");
                    let n = self.item_count(&rp).await?;
                    entry.columns.insert("replies".into(), json!(n));
                    entry.columns.insert("repliesPath".into(), json!(rp));
                }
                Ok::<_, EngineError>(entry)
            }
        }))
        .buffered(READS_IN_FLIGHT)
        .try_collect()
        .await?;
        Ok(Listing {
            path: path.to_string(),
            title,
            breadcrumbs: crumbs,
            cards: Vec::new(),
            folders: Vec::new(),
            items,
            total_items: total as u64,
            offset: 0,
            limit: 0,
        })
    }

    /// A site's own part: its lists and its pages.
    async fn site_level(&self, _page: Page) -> Result<Listing> {
        let lists = self.containers_level("lists").await;
        let mut folders = match lists {
            Ok(l) => l.folders,
            Err(EngineError::Invalid(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        let pages = self.item_count("pages").await?;
        folders.push(FolderEntry {
            path: "pages".into(),
            name: sub_service_title("pages").into(),
            item_count: Some(pages),
        });
        let mut crumbs = self.crumbs();
        crumbs.push(Crumb {
            path: "site".into(),
            name: sub_service_title("site").into(),
        });
        Ok(Listing {
            path: "site".into(),
            title: sub_service_title("site").into(),
            breadcrumbs: crumbs,
            cards: Vec::new(),
            folders,
            items: Vec::new(),
            total_items: 0,
            offset: 0,
            limit: 0,
        })
    }

    /// A site's or group's document libraries.
    async fn libraries_level(&self) -> Result<Listing> {
        let mut folders = Vec::new();
        for e in self.entries("drives").await? {
            if !e.node.is_folder() {
                continue;
            }
            let root = format!("drives/{}", e.name);
            folders.push(FolderEntry {
                name: self.library_name(&root).await,
                item_count: None,
                path: root,
            });
        }
        folders.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.path.cmp(&b.path)));
        let mut crumbs = self.crumbs();
        crumbs.push(Crumb {
            path: "drives".into(),
            name: sub_service_title("drive").into(),
        });
        Ok(Listing {
            path: "drives".into(),
            title: sub_service_title("drive").into(),
            breadcrumbs: crumbs,
            cards: Vec::new(),
            folders,
            items: Vec::new(),
            total_items: 0,
            offset: 0,
            limit: 0,
        })
    }

    /// A drive's name from its stored drive JSON ("Documents").
    async fn library_name(&self, root: &str) -> String {
        let id = root.rsplit('/').next().unwrap_or(root).to_string();
        match self.vault.lookup(self.snap, &format!("{root}/drive")).await {
            Ok(n) => meta_json(&n)
                .and_then(|m| str_at(&m, "/name"))
                .unwrap_or(id),
            Err(_) => id,
        }
    }

    /// Every item of the drive backed up into `root`, indexed by parent.
    async fn drive_index(&self, root: &str) -> Result<DriveIndex> {
        let entries = self.entries_or_none(&format!("{root}/items")).await?;
        let mut index = DriveIndex {
            root: root.to_string(),
            ..Default::default()
        };
        for e in entries {
            let meta = meta_json(&e.node).ok_or_else(|| {
                EngineError::Invalid(format!(
                    "{root}/items/{}: stored metadata is not JSON",
                    e.name
                ))
            })?;
            if meta.get("root").is_some() {
                index.root_id = Some(e.name.clone());
            } else if let Some(p) = str_at(&meta, "/parentReference/id") {
                index.children.entry(p).or_default().push(e.name.clone());
            }
            index.items.insert(e.name, (meta, e.node.size()));
        }
        Ok(index)
    }

    /// A drive folder: its sub-folders and its files, by name.
    async fn drive_level(
        &self,
        path: &str,
        root: &str,
        folder: Option<&str>,
        page: Page,
    ) -> Result<Listing> {
        let index = self.drive_index(root).await?;
        let folder_id = match folder {
            Some(f) if index.items.contains_key(f) => f.to_string(),
            Some(_) => return Err(self.unknown(path)),
            None => index.root_id.clone().ok_or_else(|| {
                EngineError::Invalid(format!(
                    "{root} of snapshot {} has no root folder",
                    self.snap.id.0
                ))
            })?,
        };
        let mut folders = Vec::new();
        let mut files = Vec::new();
        for id in index.children.get(&folder_id).into_iter().flatten() {
            let Some(e) = index.entry(id) else { continue };
            if e.kind == "folder" {
                folders.push(FolderEntry {
                    item_count: Some(index.children.get(id).map_or(0, |c| c.len() as u64)),
                    path: e.path,
                    name: e.name,
                });
            } else {
                files.push(e);
            }
        }
        let by_name = |a: &str, b: &str| a.to_lowercase().cmp(&b.to_lowercase()).then(a.cmp(b));
        folders.sort_by(|a, b| by_name(&a.name, &b.name));
        files.sort_by(|a, b| by_name(&a.name, &b.name).then_with(|| a.path.cmp(&b.path)));
        let total = files.len();
        let items = files.drain(page.range(total)).collect();

        let mut crumbs = self.crumbs();
        let library = if self.kind == SnapshotKind::OneDrive {
            "OneDrive".to_string()
        } else {
            crumbs.push(Crumb {
                path: "drives".into(),
                name: sub_service_title("drive").into(),
            });
            self.library_name(root).await
        };
        crumbs.push(Crumb {
            path: root.to_string(),
            name: library,
        });
        let mut chain = Vec::new();
        let mut cur = Some(folder_id.clone());
        while let Some(c) = cur {
            if Some(&c) == index.root_id.as_ref() || chain.len() > index.items.len() {
                break;
            }
            let Some((m, _)) = index.items.get(&c) else {
                break;
            };
            chain.push(Crumb {
                path: format!("{root}/items/{c}"),
                name: str_at(m, "/name").unwrap_or_else(|| c.clone()),
            });
            cur = str_at(m, "/parentReference/id");
        }
        chain.reverse();
        crumbs.extend(chain);
        Ok(Listing {
            path: path.to_string(),
            title: crumbs.last().map(|c| c.name.clone()).unwrap_or_default(),
            breadcrumbs: crumbs,
            cards: Vec::new(),
            folders,
            items,
            total_items: total as u64,
            offset: 0,
            limit: 0,
        })
    }
}

/// The items of one stored drive, by id and by parent.
#[derive(Default)]
struct DriveIndex {
    root: String,
    root_id: Option<String>,
    items: HashMap<String, (Value, u64)>,
    children: HashMap<String, Vec<String>>,
}

impl DriveIndex {
    fn entry(&self, id: &str) -> Option<ItemEntry> {
        let (m, size) = self.items.get(id)?;
        Some(file_entry(&self.root, id, m, *size))
    }

    /// Names of the folders from the drive's root down to the item's
    /// parent, joined with '/'.
    fn folder_path(&self, id: &str) -> String {
        let mut names = Vec::new();
        let mut cur = self
            .items
            .get(id)
            .and_then(|(m, _)| str_at(m, "/parentReference/id"));
        while let Some(c) = cur {
            if Some(&c) == self.root_id.as_ref() || names.len() > self.items.len() {
                break;
            }
            let Some((m, _)) = self.items.get(&c) else {
                break;
            };
            names.push(str_at(m, "/name").unwrap_or_else(|| c.clone()));
            cur = str_at(m, "/parentReference/id");
        }
        names.reverse();
        names.join("/")
    }
}

/// The drive root of a path into a drive: "drive" (OneDrive) or
/// "drives/<drive id>" (sites, groups), when `segs` is in a drive.
fn drive_root_of(kind: SnapshotKind, segs: &[&str]) -> Option<String> {
    match (kind, segs) {
        (SnapshotKind::OneDrive, ["drive", ..]) => Some("drive".into()),
        (SnapshotKind::Site | SnapshotKind::Group | SnapshotKind::Team, ["drives", d, ..]) => {
            Some(format!("drives/{d}"))
        }
        _ => None,
    }
}

/// The drive root and item id of a drive item's path.
fn drive_item_of<'a>(segs: &[&'a str]) -> Option<(String, &'a str)> {
    match segs {
        ["drive", "items", id] => Some(("drive".into(), id)),
        ["drives", d, "items", id] => Some((format!("drives/{d}"), id)),
        _ => None,
    }
}

/// Outlook's order of well-known folders (SPEC F-E2): by well-known name
/// where the stored JSON has one (Graph's v1.0 mailFolder has none, but our
/// backup adds it where it asks for a folder by that name), else by display
/// name. Then other folders alphabetically, then folders created by earlier
/// restores.
const OUTLOOK_ORDER: [(&str, &str); 13] = [
    ("inbox", "Inbox"),
    ("drafts", "Drafts"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("junkemail", "Junk Email"),
    ("archive", "Archive"),
    ("conversationhistory", "Conversation History"),
    ("outbox", "Outbox"),
    ("recoverableitemsroot", "Recoverable Items"),
    ("recoverableitemsdeletions", "Recoverable Items"),
    ("recoverableitemspurges", "Recoverable Items (Purges)"),
    ("recoverableitemsversions", "Recoverable Items (Versions)"),
    ("archivemsgfolderroot", "In-Place Archive"),
];

fn outlook_rank(folder: &Value) -> (u8, usize, String) {
    let name = display_name(folder).unwrap_or_default();
    let well_known = str_at(folder, "/wellKnownName");
    let pos = match &well_known {
        Some(w) => OUTLOOK_ORDER
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(w)),
        None => OUTLOOK_ORDER.iter().position(|(_, n)| *n == name),
    };
    if let Some(p) = pos {
        return (0, p, String::new());
    }
    if name.starts_with("Restored ") || name.ends_with(" (Restored)") {
        return (2, 0, name.to_lowercase());
    }
    (1, 0, name.to_lowercase())
}

fn display_name(v: &Value) -> Option<String> {
    // The backup keeps Recoverable Items' Deletions (soft-deleted mail, known
    // by the name Outlook gives it), Purges and Versions without their parent.
    if let Some(wk) = str_at(v, "/wellKnownName")
        && wk.starts_with("recoverableitems")
        && let Some((_, name)) = OUTLOOK_ORDER.iter().find(|(k, _)| *k == wk)
    {
        return Some((*name).to_string());
    }
    str_at(v, "/displayName")
}

fn container_title(v: &Value) -> Option<String> {
    display_name(v)
        .or_else(|| str_at(v, "/topic"))
        .or_else(|| str_at(v, "/name"))
        .filter(|s| !s.is_empty())
}

fn sub_service_title(sub: &str) -> &'static str {
    match sub {
        "mail" => "Mail",
        "contacts" => "Contacts",
        "calendar" => "Calendar",
        "tasks" => "Tasks",
        "drive" | "drives" => "Files",
        "site" => "Lists and pages",
        "lists" => "Lists",
        "pages" => "Pages",
        "conversations" => "Conversations",
        "channels" => "Channels",
        "metadata" => "Settings and members",
        _ => "Other",
    }
}

/// Stored bytes in memory (records, messages and small files only).
async fn read_bytes(vault: &vault::Account, content: &vault::Content) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(content.size as usize);
    let mut stream = vault.read_content(content);
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

fn str_at(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn parse_json(bytes: &[u8], path: &str) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| EngineError::Invalid(format!("{path}: the stored record is not JSON ({e})")))
}

/// "Name <address>" of a Graph recipient.
fn recipient(v: &Value) -> Option<String> {
    let name = str_at(v, "/emailAddress/name").filter(|s| !s.is_empty());
    let addr = str_at(v, "/emailAddress/address").filter(|s| !s.is_empty());
    match (name, addr) {
        (Some(n), Some(a)) if n != a => Some(format!("{n} <{a}>")),
        (Some(n), _) => Some(n),
        (None, a) => a,
    }
}

/// A message's listing entry, from its stored Graph JSON.
fn mail_entry(path: &str, m: &Value, size: u64) -> ItemEntry {
    let subject = str_at(m, "/subject").unwrap_or_default();
    let mut c = Map::new();
    c.insert("from".into(), json!(m.get("from").and_then(recipient)));
    c.insert("subject".into(), json!(subject));
    c.insert("date".into(), json!(str_at(m, "/receivedDateTime")));
    c.insert(
        "hasAttachments".into(),
        json!(
            m.get("hasAttachments")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
    );
    c.insert("size".into(), json!(size));
    ItemEntry {
        path: path.to_string(),
        kind: "message".into(),
        name: subject,
        columns: c,
        change: None,
    }
}

/// A drive item's listing entry, from its stored driveItem JSON.
fn file_entry(root: &str, id: &str, m: &Value, stored_size: u64) -> ItemEntry {
    let is_file = m.get("file").is_some();
    let name = str_at(m, "/name").unwrap_or_else(|| id.to_string());
    let mut c = Map::new();
    c.insert("name".into(), json!(name));
    let size = if is_file {
        m.get("size").and_then(Value::as_u64).unwrap_or(stored_size)
    } else {
        m.get("size").and_then(Value::as_u64).unwrap_or(0)
    };
    c.insert("size".into(), json!(size));
    c.insert("modified".into(), json!(str_at(m, "/lastModifiedDateTime")));
    c.insert(
        "modifiedBy".into(),
        json!(
            str_at(m, "/lastModifiedBy/user/displayName")
                .or_else(|| str_at(m, "/lastModifiedBy/application/displayName"))
        ),
    );
    if m.get("package").is_some() {
        c.insert("package".into(), json!(str_at(m, "/package/type")));
    }
    ItemEntry {
        path: format!("{root}/items/{id}"),
        kind: if is_file { "file" } else { "folder" }.into(),
        name,
        columns: c,
        change: None,
    }
}

/// The plain text of a record's `body` (HTML converted, scripts dropped).
fn body_text(record: &Value) -> Option<String> {
    let body = record.get("body")?;
    let content = body.get("content").and_then(Value::as_str)?;
    let html = body
        .get("contentType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    Some(if html {
        mail_parser::decoders::html::html_to_text(content)
    } else {
        content.to_string()
    })
}

fn truncate(s: &str, chars: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn text_column(record: &Value) -> Option<String> {
    body_text(record)
        .or_else(|| str_at(record, "/bodyPreview"))
        .map(|t| truncate(&t, TEXT_COLUMN_CHARS))
}

/// The entry of a JSON record at `path` (split into `segs`): its kind, name
/// and columns follow from where it lies.
fn record_entry(path: &str, segs: &[&str], r: &Value) -> ItemEntry {
    let (kind, name, c) = match segs {
        ["contacts", ..] => ("contact", str_at(r, "/displayName"), contact_columns(r)),
        ["tasks", ..] => {
            let mut c = Map::new();
            c.insert("subject".into(), json!(str_at(r, "/title")));
            c.insert("status".into(), json!(str_at(r, "/status")));
            c.insert("dueDate".into(), json!(str_at(r, "/dueDateTime/dateTime")));
            ("task", str_at(r, "/title"), c)
        }
        ["calendar", ..] => {
            let mut c = Map::new();
            c.insert("subject".into(), json!(str_at(r, "/subject")));
            c.insert("start".into(), json!(str_at(r, "/start/dateTime")));
            c.insert("end".into(), json!(str_at(r, "/end/dateTime")));
            c.insert(
                "description".into(),
                json!(
                    str_at(r, "/bodyPreview")
                        .filter(|s| !s.is_empty())
                        .or_else(|| body_text(r).map(|t| truncate(&t, TEXT_COLUMN_CHARS)))
                ),
            );
            c.insert("location".into(), json!(str_at(r, "/location/displayName")));
            ("event", str_at(r, "/subject"), c)
        }
        ["lists", ..] => {
            let mut c = Map::new();
            let title = str_at(r, "/fields/Title");
            c.insert("title".into(), json!(title));
            let fields: Map<String, Value> = r
                .get("fields")
                .and_then(Value::as_object)
                .map(|f| {
                    f.iter()
                        .filter(|(k, _)| !k.starts_with('@') && !k.starts_with('_'))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            c.insert("fields".into(), Value::Object(fields));
            c.insert("modified".into(), json!(str_at(r, "/lastModifiedDateTime")));
            ("listItem", title, c)
        }
        ["pages", ..] => {
            let mut c = Map::new();
            let title = str_at(r, "/title").or_else(|| str_at(r, "/name"));
            c.insert("title".into(), json!(title));
            c.insert("name".into(), json!(str_at(r, "/name")));
            c.insert("modified".into(), json!(str_at(r, "/lastModifiedDateTime")));
            ("page", title, c)
        }
        ["conversations", ..] => {
            let mut c = Map::new();
            let from = r.get("from").and_then(recipient);
            c.insert("from".into(), json!(from));
            c.insert(
                "date".into(),
                json!(str_at(r, "/receivedDateTime").or_else(|| str_at(r, "/createdDateTime"))),
            );
            let text = text_column(r);
            c.insert("text".into(), json!(text));
            let kind = if segs.len() > 3 { "attachment" } else { "post" };
            let name = if kind == "attachment" {
                str_at(r, "/name")
            } else {
                text.clone().or(from)
            };
            (kind, name, c)
        }
        ["channels", ..] => {
            let mut c = Map::new();
            let from = str_at(r, "/from/user/displayName")
                .or_else(|| str_at(r, "/from/application/displayName"));
            c.insert("from".into(), json!(from));
            c.insert("date".into(), json!(str_at(r, "/createdDateTime")));
            let text = text_column(r);
            c.insert("text".into(), json!(text));
            if let Some(d) = str_at(r, "/deletedDateTime") {
                c.insert("deleted".into(), json!(d));
            }
            let kind = if segs.len() > 3 {
                "reply"
            } else {
                "channelMessage"
            };
            (
                kind,
                str_at(r, "/subject").filter(|s| !s.is_empty()).or(text),
                c,
            )
        }
        ["metadata", what] => {
            let mut c = Map::new();
            if let Some(a) = r.as_array() {
                c.insert("count".into(), json!(a.len()));
            } else {
                c.insert("displayName".into(), json!(str_at(r, "/displayName")));
                c.insert("description".into(), json!(str_at(r, "/description")));
            }
            ("metadata", Some(metadata_title(what).to_string()), c)
        }
        ["site"] => {
            let mut c = Map::new();
            c.insert("webUrl".into(), json!(str_at(r, "/webUrl")));
            ("site", display_name(r), c)
        }
        _ => {
            let mut c = Map::new();
            c.insert("displayName".into(), json!(display_name(r)));
            ("record", display_name(r), c)
        }
    };
    let fallback = segs.last().copied().unwrap_or_default().to_string();
    ItemEntry {
        path: path.to_string(),
        kind: kind.into(),
        name: name.filter(|n| !n.is_empty()).unwrap_or(fallback),
        columns: c,
        change: None,
    }
}

fn metadata_title(what: &str) -> &str {
    match what {
        "group" => "Group",
        "team" => "Team settings",
        "members" => "Members",
        "owners" => "Owners",
        "teamMembers" => "Team members and roles",
        "channels" => "Channels",
        other => other,
    }
}

fn contact_columns(r: &Value) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("name".into(), json!(str_at(r, "/displayName")));
    c.insert(
        "email".into(),
        json!(str_at(r, "/emailAddresses/0/address")),
    );
    let phone = str_at(r, "/mobilePhone")
        .filter(|s| !s.is_empty())
        .or_else(|| str_at(r, "/businessPhones/0"))
        .or_else(|| str_at(r, "/homePhones/0"));
    c.insert("phone".into(), json!(phone));
    let address = ["businessAddress", "homeAddress", "otherAddress"]
        .iter()
        .filter_map(|k| r.get(*k))
        .map(|a| {
            ["street", "city", "state", "postalCode", "countryOrRegion"]
                .iter()
                .filter_map(|f| a.get(*f).and_then(Value::as_str))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .find(|s| !s.is_empty());
    c.insert("address".into(), json!(address));
    c.insert("jobTitle".into(), json!(str_at(r, "/jobTitle")));
    c.insert("company".into(), json!(str_at(r, "/companyName")));
    c
}

/// Whether a file's type says it is text a person can read as is.
fn is_text_like(content_type: Option<&str>, name: &str) -> bool {
    if let Some(t) = content_type {
        let t = t.to_ascii_lowercase();
        if t.starts_with("text/")
            || t.ends_with("+xml")
            || t.ends_with("+json")
            || matches!(
                t.as_str(),
                "application/json" | "application/xml" | "application/javascript"
            )
        {
            return true;
        }
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    matches!(
        ext.as_deref(),
        Some(
            "txt"
                | "md"
                | "csv"
                | "tsv"
                | "log"
                | "json"
                | "xml"
                | "yaml"
                | "yml"
                | "ini"
                | "cfg"
                | "conf"
                | "html"
                | "htm"
                | "css"
                | "js"
                | "ts"
                | "rs"
                | "py"
                | "sh"
                | "sql"
        )
    )
}

/// A message's preview from its stored MIME.
fn mail_preview(path: &str, mime: &[u8]) -> Result<Preview> {
    let msg = MessageParser::default().parse(mime).ok_or_else(|| {
        EngineError::Invalid(format!("{path}: the stored message is not readable MIME"))
    })?;
    let addrs = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
        a.map(|a| {
            a.iter()
                .map(|x| match (&x.name, &x.address) {
                    (Some(n), Some(ad)) if n != ad => format!("{n} <{ad}>"),
                    (Some(n), _) => n.to_string(),
                    (None, Some(ad)) => ad.to_string(),
                    (None, None) => String::new(),
                })
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
    };
    let subject = msg.subject().unwrap_or_default().to_string();
    let mut fields = Map::new();
    fields.insert("from".into(), json!(addrs(msg.from()).join(", ")));
    fields.insert("to".into(), json!(addrs(msg.to()).join(", ")));
    fields.insert("cc".into(), json!(addrs(msg.cc()).join(", ")));
    fields.insert("subject".into(), json!(subject));
    fields.insert("date".into(), json!(msg.date().map(|d| d.to_rfc3339())));
    // body_text gives the text part, or the HTML part converted to text
    // (scripts and styles dropped): never markup a browser would run.
    let text = msg.body_text(0).map(|t| t.into_owned());
    let attachments = msg
        .attachments()
        .map(|a| AttachmentInfo {
            name: a
                .attachment_name()
                .map(str::to_string)
                .or_else(|| a.message().and_then(|m| m.subject()).map(str::to_string))
                .unwrap_or_else(|| "(unnamed)".into()),
            size: a.contents().len() as u64,
            content_type: a.content_type().map(|ct| match ct.subtype() {
                Some(s) => format!("{}/{s}", ct.ctype()),
                None => ct.ctype().to_string(),
            }),
        })
        .collect();
    Ok(Preview {
        path: path.to_string(),
        kind: "message".into(),
        title: subject,
        fields,
        text,
        attachments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlook_order_puts_well_known_first_and_restored_last() {
        let f = |name: &str, wk: Option<&str>| {
            let mut v = json!({"displayName": name});
            if let Some(w) = wk {
                v["wellKnownName"] = json!(w);
            }
            v
        };
        let mut folders = [
            f("Zeta", None),
            f("Restored 2026-01-01 00:00:00", None),
            f("Sent Items", None),
            f("alpha", None),
            f("Boîte de réception", Some("inbox")),
            f("Projects (Restored)", None),
            f("Outbox", None),
            f("In-Place Archive", None),
            f("Recoverable Items", None),
        ];
        folders.sort_by_cached_key(outlook_rank);
        let names: Vec<String> = folders.iter().filter_map(display_name).collect();
        assert_eq!(
            names,
            [
                "Boîte de réception",
                "Sent Items",
                "Outbox",
                "Recoverable Items",
                "In-Place Archive",
                "alpha",
                "Zeta",
                "Projects (Restored)",
                "Restored 2026-01-01 00:00:00",
            ]
        );
    }

    #[test]
    fn pages_are_clamped() {
        let p = Page {
            offset: 8,
            limit: 5,
        };
        assert_eq!(p.range(10), 8..10);
        assert_eq!(p.range(3), 3..3);
        let big = Page {
            offset: 0,
            limit: 1_000_000,
        };
        assert_eq!(big.range(5000), 0..MAX_LIMIT);
        assert_eq!(
            Page {
                offset: 0,
                limit: 0
            }
            .range(500),
            0..DEFAULT_LIMIT
        );
        let asked: Page = serde_json::from_value(json!({"offset": 40})).unwrap();
        assert_eq!(
            asked,
            Page {
                offset: 40,
                limit: DEFAULT_LIMIT
            }
        );
    }

    #[test]
    fn bad_mime_and_bad_json_are_errors_not_panics() {
        let e = parse_json(b"{not json", "contacts/F/C").unwrap_err();
        assert!(e.to_string().contains("contacts/F/C"), "{e}");
        // Anything parses as some message; an empty one previews as empty.
        let p = mail_preview("mail/F/M", b"").map(|p| p.title);
        assert!(p.is_err() || p.is_ok_and(|t| t.is_empty()));
        let html = json!({"body": {"contentType": "html", "content": "<p>Hi<script>alert(1)</script></p>"}});
        let t = body_text(&html).unwrap();
        assert!(t.contains("Hi") && !t.contains("alert"), "{t}");
    }

    #[test]
    fn text_is_truncated_on_a_character_boundary() {
        assert_eq!(truncate("héllo wörld", 4), "héll…");
        assert_eq!(truncate("short", 10), "short");
    }
}
