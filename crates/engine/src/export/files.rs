//! ZIP exports of drives, sites, groups and teams: one archive holding
//!
//! - OneDrive: the files at their drive paths;
//! - site: one top folder per document library, `Lists/<list>.json` (the
//!   items' fields) and `Pages/<page>.json`;
//! - group / team: `Files/<library>/…` (the group site's libraries),
//!   `Channels/<channel>.html` (messages with their replies),
//!   `Conversations/<topic>.html` (posts) with their attachments beside,
//!   and `Calendar.ics`.
//!
//! Only each file's latest version is exported. With `include_deleted`,
//! files earlier snapshots held and this one does not are added under
//! `Previously deleted items/<path>`, each in its latest backed-up version.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;

use super::mailbox::{ZipOut, flatten_event, zip_err};
use super::{ExportCtx, Output, PREVIOUSLY_DELETED, base_name, safe_name};
use crate::drive::{StoredItem, stored_items};
use crate::error::{EngineError, Result};
use crate::report::SubService;
use crate::restore::SnapshotKind;
use crate::restore::drive::{node_path, selected};

fn str_at<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn time_at(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Entries of a snapshot folder; a folder the snapshot lacks is empty.
async fn entries(
    ctx: &ExportCtx<'_>,
    snap: &vault::SnapshotInfo,
    path: &str,
) -> Result<Vec<vault::Entry>> {
    match ctx.vault.list_folder(snap, path).await {
        Ok(e) => Ok(e),
        Err(vault::Error::NoSuchEntry(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// The drive items stored under `root`; a drive the snapshot lacks is empty.
async fn drive_items(
    ctx: &ExportCtx<'_>,
    snap: &vault::SnapshotInfo,
    root: &str,
) -> Result<Vec<StoredItem>> {
    match stored_items(ctx.vault, snap, root).await {
        Ok(items) => Ok(items),
        Err(EngineError::Vault(vault::Error::NoSuchEntry(_))) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

pub(crate) async fn export_files(
    ctx: &ExportCtx<'_>,
    kind: SnapshotKind,
    out: &Output<'_>,
) -> Result<()> {
    let mut zip = ZipOut::create(out, &format!("{}.zip", base_name(ctx)))?;
    if ctx.selection.touches(SubService::Drive) {
        for (root, prefix) in libraries(ctx, kind).await? {
            ctx.cancel.check()?;
            ctx.progress.set_stage(&root);
            export_drive(ctx, out, &mut zip, &root, &prefix).await?;
        }
    }
    if matches!(kind, SnapshotKind::Site) && ctx.selection.touches(SubService::Site) {
        export_lists(ctx, out, &mut zip).await?;
        export_pages(ctx, out, &mut zip).await?;
    }
    if matches!(kind, SnapshotKind::Team) && ctx.selection.touches(SubService::Channels) {
        export_channels(ctx, out, &mut zip).await?;
    }
    if matches!(kind, SnapshotKind::Group | SnapshotKind::Team) {
        if ctx.selection.touches(SubService::Conversations) {
            export_conversations(ctx, out, &mut zip).await?;
        }
        if ctx.selection.touches(SubService::Calendar) {
            export_calendar(ctx, out, &mut zip).await?;
        }
    }
    ctx.cancel.check()?;
    zip.finish(out)
}

/// The drives of a snapshot: (snapshot folder, path prefix in the archive).
async fn libraries(ctx: &ExportCtx<'_>, kind: SnapshotKind) -> Result<Vec<(String, String)>> {
    if kind == SnapshotKind::OneDrive {
        return Ok(vec![("drive".into(), String::new())]);
    }
    let top = if kind == SnapshotKind::Site {
        ""
    } else {
        "Files/"
    };
    let mut found = Vec::new();
    let mut names = HashSet::new();
    for e in entries(ctx, ctx.snapshot, "drives").await? {
        if !e.node.is_folder() {
            continue;
        }
        let root = format!("drives/{}", e.name);
        let name = match ctx
            .vault
            .lookup(ctx.snapshot, &format!("{root}/drive"))
            .await
        {
            Ok(node) => serde_json::from_slice::<Value>(node.meta())
                .ok()
                .map(|v| str_at(&v, "name").to_string())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| e.name.clone()),
            Err(_) => e.name.clone(),
        };
        let mut name = safe_name(&name);
        if !names.insert(name.to_lowercase()) {
            name = format!("{name} ({})", e.name);
        }
        found.push((root, format!("{top}{name}/")));
    }
    Ok(found)
}

/// Streams one stored file into the archive at `path`; an unreadable file
/// is dropped from the archive and reported.
async fn add_content(
    ctx: &ExportCtx<'_>,
    zip: &mut ZipOut,
    path: &str,
    content: &vault::Content,
    modified: DateTime<Utc>,
) -> std::result::Result<u64, String> {
    let path = zip.paths.claim(path);
    zip.zip
        .begin_file(&path, Some(content.size), modified)
        .map_err(zip_err)?;
    let mut stream = ctx.vault.read_content(content);
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let written = match chunk {
            Ok(c) => zip
                .zip
                .write_chunk(&c)
                .map(|()| c.len() as u64)
                .map_err(zip_err),
            Err(e) => Err(format!("could not be read from the backup: {e}")),
        };
        match written {
            Ok(len) => n += len,
            Err(why) => {
                let _ = zip.zip.abort_file();
                return Err(why);
            }
        }
    }
    zip.items += 1;
    Ok(n)
}

fn modified_of(meta: &Value, fallback: DateTime<Utc>) -> DateTime<Utc> {
    time_at(meta, "/fileSystemInfo/lastModifiedDateTime")
        .or_else(|| time_at(meta, "/lastModifiedDateTime"))
        .unwrap_or(fallback)
}

async fn export_drive(
    ctx: &ExportCtx<'_>,
    out: &Output<'_>,
    zip: &mut ZipOut,
    root: &str,
    prefix: &str,
) -> Result<()> {
    let items = drive_items(ctx, ctx.snapshot, root).await?;
    let chosen = selected(ctx.selection, root, &items);
    let fallback = ctx.snapshot.time;
    for it in &chosen {
        ctx.cancel.check()?;
        let path = format!("{prefix}{}", it.path);
        if !it.is_file() {
            let dir = zip.paths.claim(&format!("{path}/"));
            if let Err(e) = zip.zip.add_directory(&dir) {
                out.failed(&node_path(root, &it.id), &it.path, zip_err(e));
            }
            continue;
        }
        match add_content(
            ctx,
            zip,
            &path,
            &it.content,
            modified_of(&it.meta, fallback),
        )
        .await
        {
            Ok(n) => out.exported(&node_path(root, &it.id), &it.path, n),
            Err(why) => out.failed(&node_path(root, &it.id), &it.path, why),
        }
    }
    if !ctx.options.include_deleted || ctx.earlier.is_empty() {
        return Ok(());
    }
    let present: HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    let mut seen: HashSet<String> = HashSet::new();
    let mut found = 0u64;
    for snap in ctx.earlier {
        ctx.cancel.check()?;
        let earlier = match drive_items(ctx, snap, root).await {
            Ok(items) => items,
            Err(e) => {
                out.note(format!(
                    "the backup of {} could not be read for deleted files: {e}",
                    snap.time.format("%Y-%m-%d %H:%M")
                ));
                continue;
            }
        };
        for it in selected(ctx.selection, root, &earlier) {
            if !it.is_file() || present.contains(it.id.as_str()) || !seen.insert(it.id.clone()) {
                continue;
            }
            ctx.cancel.check()?;
            let path = format!("{PREVIOUSLY_DELETED}/{prefix}{}", it.path);
            match add_content(
                ctx,
                zip,
                &path,
                &it.content,
                modified_of(&it.meta, snap.time),
            )
            .await
            {
                Ok(n) => {
                    found += 1;
                    out.item(
                        &node_path(root, &it.id),
                        &it.path,
                        crate::restore::ItemOutcome::Exported,
                        Some(format!(
                            "deleted before this backup; from the backup of {}",
                            snap.time.format("%Y-%m-%d %H:%M")
                        )),
                        n,
                    )
                }
                Err(why) => out.failed(&node_path(root, &it.id), &it.path, why),
            }
        }
    }
    if found > 0 {
        out.note(format!(
            "{found} file(s) that earlier backups held and this one no longer does are in \
             \"{PREVIOUSLY_DELETED}/{prefix}\""
        ));
    }
    Ok(())
}

/// A stored JSON record.
async fn read_json(ctx: &ExportCtx<'_>, path: &str) -> std::result::Result<Value, String> {
    let bytes = ctx
        .vault
        .read_item_bytes(ctx.snapshot, path)
        .await
        .map_err(|e| format!("could not be read from the backup: {e}"))?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| "the stored record is damaged (not a JSON object)".to_string())
}

fn folder_meta(e: &vault::Entry) -> Value {
    serde_json::from_slice(e.node.meta()).unwrap_or(Value::Null)
}

/// Writes a text file built piece by piece into the archive.
struct TextEntry<'z> {
    zip: &'z mut ZipOut,
    failed: Option<String>,
}

impl<'z> TextEntry<'z> {
    fn begin(zip: &'z mut ZipOut, path: &str, modified: DateTime<Utc>) -> Self {
        let path = zip.paths.claim(path);
        let failed = zip.zip.begin_file(&path, None, modified).err().map(zip_err);
        Self { zip, failed }
    }

    fn push(&mut self, text: &str) {
        if self.failed.is_none()
            && let Err(e) = self.zip.zip.write_chunk(text.as_bytes())
        {
            self.failed = Some(zip_err(e));
        }
    }

    fn end(self) -> Result<()> {
        match self.failed {
            None => {
                self.zip.items += 1;
                Ok(())
            }
            Some(why) => Err(EngineError::Invalid(format!("ZIP output failed: {why}"))),
        }
    }
}

async fn export_lists(ctx: &ExportCtx<'_>, out: &Output<'_>, zip: &mut ZipOut) -> Result<()> {
    for list in entries(ctx, ctx.snapshot, "lists").await? {
        if !list.node.is_folder() || !ctx.selection.reaches(&format!("lists/{}", list.name)) {
            continue;
        }
        let meta = folder_meta(&list);
        let name = Some(str_at(&meta, "displayName"))
            .filter(|n| !n.is_empty())
            .unwrap_or(&list.name)
            .to_string();
        let path = format!("lists/{}", list.name);
        let items: Vec<String> = entries(ctx, ctx.snapshot, &path)
            .await?
            .into_iter()
            .filter(|e| !e.node.is_folder())
            .map(|e| e.name)
            .filter(|id| ctx.selection.covers(&format!("{path}/{id}")))
            .collect();
        if items.is_empty() {
            continue;
        }
        let mut entry = TextEntry::begin(
            zip,
            &format!("Lists/{}.json", safe_name(&name)),
            ctx.snapshot.time,
        );
        entry.push("[\n");
        let mut first = true;
        for id in items {
            ctx.cancel.check()?;
            let item_path = format!("{path}/{id}");
            match read_json(ctx, &item_path).await {
                Ok(v) => {
                    let record = v.get("fields").cloned().unwrap_or(v);
                    let text = serde_json::to_string_pretty(&record).unwrap_or_default();
                    if !first {
                        entry.push(",\n");
                    }
                    first = false;
                    entry.push(&text);
                    out.exported(&item_path, &format!("{name}/{id}"), text.len() as u64);
                }
                Err(why) => out.failed(&item_path, &format!("{name}/{id}"), why),
            }
        }
        entry.push("\n]\n");
        entry.end()?;
    }
    Ok(())
}

async fn export_pages(ctx: &ExportCtx<'_>, out: &Output<'_>, zip: &mut ZipOut) -> Result<()> {
    for page in entries(ctx, ctx.snapshot, "pages").await? {
        let path = format!("pages/{}", page.name);
        if page.node.is_folder() || !ctx.selection.covers(&path) {
            continue;
        }
        ctx.cancel.check()?;
        match read_json(ctx, &path).await {
            Ok(v) => {
                let title = [str_at(&v, "title"), str_at(&v, "name")]
                    .into_iter()
                    .find(|t| !t.is_empty())
                    .unwrap_or(&page.name)
                    .to_string();
                let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                let modified = time_at(&v, "/lastModifiedDateTime").unwrap_or(ctx.snapshot.time);
                match zip.add_bytes(
                    &format!("Pages/{}.json", safe_name(&title)),
                    text.as_bytes(),
                    modified,
                ) {
                    Ok(()) => out.exported(&path, &title, text.len() as u64),
                    Err(why) => out.failed(&path, &title, why),
                }
            }
            Err(why) => out.failed(&path, &page.name, why),
        }
    }
    Ok(())
}

/// Text made safe inside HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const HTML_HEAD: &str = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>";
const HTML_STYLE: &str = "</title><style>body{font-family:sans-serif;max-width:60em;margin:auto}\
article{border-bottom:1px solid #ddd;padding:.5em 0}header{color:#555;font-size:90%}\
blockquote{margin-left:2em;border-left:3px solid #ccc;padding-left:1em}</style></head><body>\n";

/// One message or post as HTML: who, when, subject and body (Teams and
/// Outlook bodies are HTML already; text bodies are escaped).
fn message_html(v: &Value) -> String {
    let who = [
        "/from/user/displayName",
        "/from/emailAddress/name",
        "/from/application/displayName",
    ]
    .iter()
    .filter_map(|p| v.pointer(p).and_then(Value::as_str))
    .find(|s| !s.is_empty())
    .unwrap_or("(unknown)");
    let when = ["createdDateTime", "receivedDateTime"]
        .iter()
        .map(|k| str_at(v, k))
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let subject = str_at(v, "subject");
    let body = if v.get("deletedDateTime").is_some_and(|d| !d.is_null()) {
        "<i>(this message was deleted)</i>".to_string()
    } else {
        let content = v
            .pointer("/body/content")
            .and_then(Value::as_str)
            .unwrap_or("");
        if v.pointer("/body/contentType")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("html"))
        {
            content.to_string()
        } else {
            format!("<pre>{}</pre>", escape(content))
        }
    };
    let subject = if subject.is_empty() {
        String::new()
    } else {
        format!(" — <b>{}</b>", escape(subject))
    };
    format!(
        "<header><b>{}</b> {}{subject}</header>\n<div>{body}</div>\n",
        escape(who),
        escape(when)
    )
}

async fn export_channels(ctx: &ExportCtx<'_>, out: &Output<'_>, zip: &mut ZipOut) -> Result<()> {
    for channel in entries(ctx, ctx.snapshot, "channels").await? {
        let path = format!("channels/{}", channel.name);
        if !channel.node.is_folder() || !ctx.selection.reaches(&path) {
            continue;
        }
        let meta = folder_meta(&channel);
        let name = Some(str_at(&meta, "displayName"))
            .filter(|n| !n.is_empty())
            .unwrap_or(&channel.name)
            .to_string();
        let listed = entries(ctx, ctx.snapshot, &path).await?;
        let messages: Vec<String> = listed
            .iter()
            .filter(|e| !e.node.is_folder())
            .map(|e| e.name.clone())
            .filter(|id| ctx.selection.covers(&format!("{path}/{id}")))
            .collect();
        if messages.is_empty() {
            continue;
        }
        let with_replies: HashSet<String> = listed
            .iter()
            .filter(|e| e.node.is_folder())
            .filter_map(|e| e.name.strip_suffix(".replies").map(str::to_string))
            .collect();
        ctx.progress.set_stage(&format!("channel {name}"));
        let mut entry = TextEntry::begin(
            zip,
            &format!("Channels/{}.html", safe_name(&name)),
            ctx.snapshot.time,
        );
        entry.push(&format!(
            "{HTML_HEAD}{}{HTML_STYLE}<h1>{}</h1>\n",
            escape(&name),
            escape(&name)
        ));
        for id in messages {
            ctx.cancel.check()?;
            let item_path = format!("{path}/{id}");
            let message = match read_json(ctx, &item_path).await {
                Ok(v) => v,
                Err(why) => {
                    out.failed(&item_path, &id, why);
                    continue;
                }
            };
            entry.push("<article>\n");
            entry.push(&message_html(&message));
            if with_replies.contains(&id) {
                let replies_path = format!("{item_path}.replies");
                for r in entries(ctx, ctx.snapshot, &replies_path).await? {
                    let reply_path = format!("{replies_path}/{}", r.name);
                    match read_json(ctx, &reply_path).await {
                        Ok(v) => {
                            entry.push("<blockquote>\n");
                            entry.push(&message_html(&v));
                            entry.push("</blockquote>\n");
                        }
                        Err(why) => out.failed(&reply_path, &r.name, why),
                    }
                }
            }
            entry.push("</article>\n");
            let subject = str_at(&message, "subject");
            out.exported(
                &item_path,
                if subject.is_empty() { &id } else { subject },
                0,
            );
        }
        entry.push("</body></html>\n");
        entry.end()?;
    }
    Ok(())
}

async fn export_conversations(
    ctx: &ExportCtx<'_>,
    out: &Output<'_>,
    zip: &mut ZipOut,
) -> Result<()> {
    use base64::Engine;
    for thread in entries(ctx, ctx.snapshot, "conversations").await? {
        let path = format!("conversations/{}", thread.name);
        if !thread.node.is_folder() || !ctx.selection.reaches(&path) {
            continue;
        }
        let meta = folder_meta(&thread);
        let topic = Some(str_at(&meta, "topic"))
            .filter(|n| !n.is_empty())
            .unwrap_or(&thread.name)
            .to_string();
        let listed = entries(ctx, ctx.snapshot, &path).await?;
        let posts: Vec<String> = listed
            .iter()
            .filter(|e| !e.node.is_folder())
            .map(|e| e.name.clone())
            .filter(|id| ctx.selection.covers(&format!("{path}/{id}")))
            .collect();
        if posts.is_empty() {
            continue;
        }
        let base = format!("Conversations/{}", safe_name(&topic));
        let mut attachments: Vec<(String, String)> = Vec::new();
        {
            let mut entry = TextEntry::begin(zip, &format!("{base}.html"), ctx.snapshot.time);
            entry.push(&format!(
                "{HTML_HEAD}{}{HTML_STYLE}<h1>{}</h1>\n",
                escape(&topic),
                escape(&topic)
            ));
            for id in &posts {
                ctx.cancel.check()?;
                let item_path = format!("{path}/{id}");
                match read_json(ctx, &item_path).await {
                    Ok(v) => {
                        entry.push("<article>\n");
                        entry.push(&message_html(&v));
                        entry.push("</article>\n");
                        out.exported(&item_path, &topic, 0);
                    }
                    Err(why) => {
                        out.failed(&item_path, &topic, why);
                        continue;
                    }
                }
                let att_dir = format!("{item_path}.attachments");
                if listed.iter().any(|e| e.name == format!("{id}.attachments")) {
                    for a in entries(ctx, ctx.snapshot, &att_dir).await? {
                        attachments.push((format!("{att_dir}/{}", a.name), a.name));
                    }
                }
            }
            entry.push("</body></html>\n");
            entry.end()?;
        }
        for (att_path, att_id) in attachments {
            ctx.cancel.check()?;
            let result = read_json(ctx, &att_path).await.and_then(|v| {
                let name = Some(str_at(&v, "name"))
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&att_id)
                    .to_string();
                let data = base64::engine::general_purpose::STANDARD
                    .decode(str_at(&v, "contentBytes"))
                    .map_err(|e| format!("the stored attachment is damaged: {e}"))?;
                zip.add_bytes(
                    &format!("{base} attachments/{}", safe_name(&name)),
                    &data,
                    ctx.snapshot.time,
                )?;
                Ok((name, data.len() as u64))
            });
            match result {
                Ok((name, n)) => out.exported(&att_path, &name, n),
                Err(why) => out.failed(&att_path, &att_id, why),
            }
        }
    }
    Ok(())
}

async fn export_calendar(ctx: &ExportCtx<'_>, out: &Output<'_>, zip: &mut ZipOut) -> Result<()> {
    let stamp = ctx.options.requested_at;
    let mut events = Vec::new();
    let mut count = 0u64;
    for e in entries(ctx, ctx.snapshot, "calendar").await? {
        let path = format!("calendar/{}", e.name);
        if e.node.is_folder() || !ctx.selection.covers(&path) {
            continue;
        }
        ctx.cancel.check()?;
        let result = read_json(ctx, &path).await.and_then(|v| {
            let flat = flatten_event(&v);
            formats::ics::events_to_ics(&flat, stamp).map_err(|e| e.to_string())?;
            Ok((str_at(&v, "subject").to_string(), flat))
        });
        match result {
            Ok((subject, flat)) => {
                events.extend(flat);
                count += 1;
                out.exported(&path, &subject, 0);
            }
            Err(why) => out.failed(&path, &e.name, why),
        }
    }
    if count == 0 {
        return Ok(());
    }
    let text = formats::ics::events_to_ics(&events, stamp)
        .map_err(|e| EngineError::Invalid(format!("the calendar cannot be written: {e}")))?;
    zip.add_bytes("Calendar.ics", text.as_bytes(), stamp)
        .map_err(EngineError::Invalid)?;
    zip.items = zip.items - 1 + count;
    Ok(())
}
