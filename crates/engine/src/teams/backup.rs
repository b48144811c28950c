//! One group or team backup: a vault snapshot that starts from the parent
//! and applies what changed (see [`super`] for the layout and for how each
//! sub-service stays incremental).

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use graph::{BatchItem, DeltaChange, Request};
use serde_json::{Map, Value, json};
use vault::Node;

use super::{GroupBackup, GroupBackupOptions};
use crate::error::{EngineError, Result};
use crate::faults::FaultBus;
use crate::report::{BackupReport, ItemCounts, SubService};
use crate::run::{Ledger, PartCtx, Requests, id_of, meta_json, seg, strip_annotations};

/// Every event property, because `cancelledOccurrences` is only returned
/// when selected by name (the same list the mailbox calendar asks for).
const EVENT_SELECT: &str = "id,changeKey,createdDateTime,lastModifiedDateTime,categories,\
originalStartTimeZone,originalEndTimeZone,iCalUId,uid,reminderMinutesBeforeStart,isReminderOn,\
hasAttachments,subject,bodyPreview,body,importance,sensitivity,isAllDay,isCancelled,isOrganizer,\
responseRequested,seriesMasterId,showAs,type,webLink,onlineMeetingUrl,isOnlineMeeting,\
onlineMeetingProvider,allowNewTimeProposals,isDraft,hideAttendees,responseStatus,start,end,\
location,locations,recurrence,attendees,organizer,onlineMeeting,transactionId,cancelledOccurrences";

/// Teams' largest page of channel messages, replies and delta.
const TEAMS_PAGE: usize = 50;

/// `$expand=replies` brings at most this many replies of a message; a
/// message with that many has its replies read through `/replies`.
const EXPANDED_REPLIES_MAX: usize = 1000;

/// What a restore needs of a member or owner.
const MEMBER_SELECT: &str = "id,displayName,userPrincipalName,mail";

/// The group being backed up.
struct Group<'a> {
    ctx: &'a PartCtx<'a>,
    id: &'a str,
    is_team: bool,
    concurrency: usize,
}

/// Backs up one Microsoft 365 group or team into a new snapshot.
pub async fn backup_group(job: GroupBackup<'_>) -> Result<BackupReport> {
    let gid = seg(job.group_id)?;
    let (writer, parent_info) = crate::run::begin(job.vault, job.parent).await?;
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
    let g = Group {
        ctx: &ctx,
        id: gid,
        is_team: job.is_team,
        concurrency: job.options.concurrency.max(1),
    };
    let mut ledger = Ledger::new(parent_info.as_ref());
    // The channel list read for the metadata serves the channels part too.
    let mut channel_list: Option<Vec<Value>> = None;
    let mut done = HashSet::new();
    for &sub in &job.options.sub_services {
        // Other workloads' sub-services (mail, site) are not a group's.
        if !GroupBackupOptions::ALL.contains(&sub) || !done.insert(sub) {
            continue;
        }
        if sub == SubService::Channels && !job.is_team {
            continue;
        }
        job.progress.set_stage(sub.as_str());
        let prev = ledger.prev_state(sub);
        let mut bus = FaultBus::default();
        let mut counts = ItemCounts::default();
        let result = match sub {
            SubService::Metadata => {
                backup_metadata(&g, &mut channel_list, &mut bus, &mut counts).await
            }
            SubService::Conversations => backup_conversations(&g, &mut bus, &mut counts).await,
            SubService::Calendar => backup_calendar(&g, &mut bus, &mut counts).await,
            SubService::Drive => backup_drives(&g, &prev, &mut bus, &mut counts).await,
            _ => backup_channels(&g, channel_list.take(), &prev, &mut bus, &mut counts).await,
        };
        if let Err(e) = &result
            && is_not_found(e)
            && group_gone(&g).await
        {
            return Err(EngineError::EntityGone(format!("group {gid}")));
        }
        if let Err(EngineError::Cancelled) = ledger.record(sub, result, bus, counts) {
            return Ok(ledger.cancelled(requests.get()));
        }
    }
    if job.cancel.is_cancelled() {
        return Ok(ledger.cancelled(requests.get()));
    }
    let n = requests.get();
    let kind = if job.is_team { "team" } else { "group" };
    ledger
        .commit(
            writer,
            kind,
            json!({ "group": gid, "isTeam": job.is_team }),
            &job.meta,
            n,
            job.progress,
        )
        .await
}

fn is_not_found(e: &EngineError) -> bool {
    matches!(e, EngineError::Graph(g) if g.is_not_found())
}

/// Whether the group itself was deleted (rather than one of its parts
/// missing).
async fn group_gone(g: &Group<'_>) -> bool {
    g.ctx.requests.add(1);
    match g
        .ctx
        .graph
        .send(Request::get(format!("/groups/{}?$select=id", g.id)))
        .await
    {
        Err(e) => e.is_not_found(),
        Ok(_) => false,
    }
}

/// A reason a person can act on.
fn explain(e: &EngineError) -> String {
    match e {
        EngineError::Graph(g) => format!("{g} ({})", g.guidance()),
        other => other.to_string(),
    }
}

/// Errors that stop the whole part rather than one item: the vault failing,
/// or cancellation.
fn is_fatal(e: &EngineError) -> bool {
    matches!(e, EngineError::Vault(_) | EngineError::Cancelled)
}

fn add_counts(to: &mut ItemCounts, from: &ItemCounts) {
    to.new += from.new;
    to.changed += from.changed;
    to.deleted += from.deleted;
    to.bytes_read += from.bytes_read;
}

/// One Graph object.
async fn get_json(ctx: &PartCtx<'_>, url: &str) -> Result<Value> {
    ctx.requests.add(1);
    let mut v: Value = ctx.graph.send(Request::get(url)).await?.json()?;
    if !v.is_object() {
        return Err(EngineError::Invalid(format!(
            "Microsoft Graph answered {url} with something that is not an object"
        )));
    }
    strip_annotations(&mut v);
    Ok(v)
}

/// Every item of a collection, without annotations.
async fn list(ctx: &PartCtx<'_>, url: String) -> Result<Vec<Value>> {
    let mut items = ctx.get_all(Request::get(url)).await?;
    items.iter_mut().for_each(strip_annotations);
    Ok(items)
}

/// Stores a JSON record as an item and counts it as new, changed or (same
/// bytes as the parent's) unchanged.
async fn store_record(
    ctx: &PartCtx<'_>,
    path: &str,
    v: &Value,
    meta: Value,
    counts: &mut ItemCounts,
) -> Result<()> {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    counts.bytes_read += bytes.len() as u64;
    let content = ctx.writer.store_bytes(bytes::Bytes::from(bytes)).await?;
    match ctx.writer.parent_node(path).await? {
        None => counts.new += 1,
        Some(Node::Item { content: old, .. }) if old == content => {}
        Some(_) => counts.changed += 1,
    }
    ctx.writer
        .put_node(
            path,
            Node::Item {
                meta: serde_json::to_vec(&meta).unwrap_or_default(),
                content,
            },
        )
        .await?;
    Ok(())
}

/// How many items the parent snapshot holds at or below `path`.
async fn parent_items(ctx: &PartCtx<'_>, path: &str) -> Result<u64> {
    let Some(parent) = ctx.parent else {
        return Ok(0);
    };
    match ctx.vault.walk(parent, path).await {
        Ok(nodes) => Ok(nodes.iter().filter(|(_, n)| !n.is_folder()).count() as u64),
        Err(vault::Error::NoSuchEntry(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Removes `path` from the snapshot, counting the items it held.
async fn remove_counted(ctx: &PartCtx<'_>, path: &str, counts: &mut ItemCounts) -> Result<()> {
    counts.deleted += parent_items(ctx, path).await?;
    ctx.writer.remove(path).await?;
    Ok(())
}

// ---------------------------------------------------------------- metadata

async fn backup_metadata(
    g: &Group<'_>,
    channel_list: &mut Option<Vec<Value>>,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let ctx = g.ctx;
    let id = g.id;
    ctx.check_cancel()?;
    let group = get_json(ctx, &format!("/groups/{id}")).await?;
    store_record(ctx, "metadata/group", &group, json!({}), counts).await?;
    let members = list(
        ctx,
        format!("/groups/{id}/members?$select={MEMBER_SELECT}&$top=999"),
    )
    .await?;
    store_record(
        ctx,
        "metadata/members",
        &Value::Array(members),
        json!({}),
        counts,
    )
    .await?;
    let owners = list(
        ctx,
        format!("/groups/{id}/owners?$select={MEMBER_SELECT}&$top=999"),
    )
    .await?;
    store_record(
        ctx,
        "metadata/owners",
        &Value::Array(owners),
        json!({}),
        counts,
    )
    .await?;
    if !g.is_team {
        return Ok(Value::Null);
    }
    ctx.check_cancel()?;
    let team = get_json(ctx, &format!("/teams/{id}")).await?;
    store_record(ctx, "metadata/team", &team, json!({}), counts).await?;
    let team_members = list(ctx, format!("/teams/{id}/members")).await?;
    store_record(
        ctx,
        "metadata/teamMembers",
        &Value::Array(team_members),
        json!({}),
        counts,
    )
    .await?;
    let channels = list(ctx, format!("/teams/{id}/channels")).await?;
    let mut records = Vec::new();
    let mut complete = true;
    for ch in &channels {
        ctx.check_cancel()?;
        let mut rec = ch.clone();
        let membership = ch.get("membershipType").and_then(Value::as_str);
        if matches!(membership, Some("private" | "shared")) {
            let name = ch
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let cid = match id_of(ch).map(seg) {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    bus.item_failed("", format!("channels/{name}"), e.to_string());
                    complete = false;
                    continue;
                }
                None => {
                    bus.item_failed(
                        "",
                        format!("channels/{name}"),
                        "Microsoft Graph listed a channel without an id",
                    );
                    complete = false;
                    continue;
                }
            };
            match list(ctx, format!("/teams/{id}/channels/{cid}/members")).await {
                Ok(m) => rec["members"] = Value::Array(m),
                Err(e) if is_fatal(&e) => return Err(e),
                Err(e) => {
                    bus.item_failed(
                        cid,
                        format!("channels/{name}"),
                        format!("the channel's members could not be read: {}", explain(&e)),
                    );
                    complete = false;
                }
            }
        }
        records.push(rec);
    }
    // A record missing some channel's members would lose what the parent
    // knew: keep the parent's until the members can be read.
    if complete || ctx.writer.parent_node("metadata/channels").await?.is_none() {
        store_record(
            ctx,
            "metadata/channels",
            &Value::Array(records),
            json!({}),
            counts,
        )
        .await?;
    }
    *channel_list = Some(channels);
    Ok(Value::Null)
}

// ---------------------------------------------------------------- conversations

async fn backup_conversations(
    g: &Group<'_>,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let ctx = g.ctx;
    ctx.check_cancel()?;
    let threads = list(ctx, format!("/groups/{}/threads?$top=50", g.id)).await?;
    ctx.writer
        .put_folder("conversations", b"{}".to_vec())
        .await?;
    let before: HashMap<String, Option<String>> = ctx
        .parent_entries("conversations")
        .await?
        .into_iter()
        .map(|e| {
            let last = meta_json(&e.node).and_then(|m| {
                m.get("lastDeliveredDateTime")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
            (e.name, last)
        })
        .collect();
    let mut listed = HashSet::new();
    let mut work = Vec::new();
    for t in threads {
        let tid = match id_of(&t).map(seg) {
            Some(Ok(tid)) => tid.to_string(),
            Some(Err(e)) => {
                bus.item_failed("", "conversations", e.to_string());
                continue;
            }
            None => {
                bus.item_failed(
                    "",
                    "conversations",
                    "Microsoft Graph listed a conversation thread without an id",
                );
                continue;
            }
        };
        listed.insert(tid.clone());
        // A thread gets no new post without its lastDeliveredDateTime
        // moving (posts cannot be edited): an unchanged one is carried.
        let last = t.get("lastDeliveredDateTime").and_then(Value::as_str);
        if last.is_some() && before.get(&tid).is_some_and(|b| b.as_deref() == last) {
            continue;
        }
        work.push((tid, t));
    }
    for tid in before.keys() {
        if !listed.contains(tid) {
            remove_counted_posts(ctx, &format!("conversations/{tid}"), counts).await?;
        }
    }
    let results: Vec<(String, ItemCounts, Result<()>)> = futures::stream::iter(work)
        .map(|(tid, t)| async move {
            let mut c = ItemCounts::default();
            let r = sync_thread(g, &tid, t, &mut c).await;
            (tid, c, r)
        })
        .buffer_unordered(g.concurrency)
        .collect()
        .await;
    for (tid, c, r) in results {
        add_counts(counts, &c);
        match r {
            Ok(()) => {}
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => bus.item_failed(
                tid.as_str(),
                format!("conversations/{tid}"),
                format!("the conversation could not be read: {}", explain(&e)),
            ),
        }
    }
    Ok(Value::Null)
}

/// Removes a thread, counting its posts (not their attachments).
async fn remove_counted_posts(
    ctx: &PartCtx<'_>,
    folder: &str,
    counts: &mut ItemCounts,
) -> Result<()> {
    let posts = ctx
        .parent_entries(folder)
        .await?
        .iter()
        .filter(|e| !e.node.is_folder())
        .count() as u64;
    counts.deleted += posts;
    ctx.writer.remove(folder).await?;
    Ok(())
}

/// Reads a changed thread's posts and stores the new ones. Posts cannot be
/// edited, so one the parent holds is carried as it is; the thread's JSON is
/// written last, so a thread that failed half-way is read again next time.
async fn sync_thread(
    g: &Group<'_>,
    tid: &str,
    thread: Value,
    counts: &mut ItemCounts,
) -> Result<()> {
    let ctx = g.ctx;
    ctx.check_cancel()?;
    let folder = format!("conversations/{tid}");
    let base = format!("/groups/{}/threads/{tid}/posts", g.id);
    let posts = list(ctx, format!("{base}?$top=50")).await?;
    let old: HashSet<String> = ctx
        .parent_entries(&folder)
        .await?
        .into_iter()
        .filter(|e| !e.node.is_folder())
        .map(|e| e.name)
        .collect();
    let mut now = HashSet::new();
    for mut p in posts {
        let pid = id_of(&p)
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "Microsoft Graph listed a post without an id in thread {tid}"
                ))
            })?
            .to_string();
        seg(&pid)?;
        now.insert(pid.clone());
        if old.contains(&pid) {
            continue;
        }
        ctx.check_cancel()?;
        let atts_folder = format!("{folder}/{pid}.attachments");
        if p.get("hasAttachments").and_then(Value::as_bool) == Some(true) {
            let atts = list(ctx, format!("{base}/{pid}/attachments")).await?;
            let mut listed = Vec::new();
            for a in atts {
                let aid = id_of(&a)
                    .ok_or_else(|| {
                        EngineError::Invalid(format!(
                            "Microsoft Graph listed an attachment without an id on post {pid}"
                        ))
                    })?
                    .to_string();
                seg(&aid)?;
                let summary = json!({
                    "id": aid,
                    "name": a.get("name"),
                    "contentType": a.get("contentType"),
                    "size": a.get("size"),
                    "isInline": a.get("isInline"),
                });
                // Attachments are part of their post, not items of their own.
                let mut sink = ItemCounts::default();
                store_record(
                    ctx,
                    &format!("{atts_folder}/{aid}"),
                    &a,
                    summary.clone(),
                    &mut sink,
                )
                .await?;
                counts.bytes_read += sink.bytes_read;
                listed.push(summary);
            }
            p["attachments"] = Value::Array(listed);
        }
        store_record(ctx, &format!("{folder}/{pid}"), &p, json!({}), counts).await?;
        ctx.progress.advance(1, 0);
    }
    for pid in old.difference(&now) {
        counts.deleted += 1;
        ctx.writer.remove(&format!("{folder}/{pid}")).await?;
        ctx.writer
            .remove(&format!("{folder}/{pid}.attachments"))
            .await?;
    }
    ctx.writer
        .put_folder(&folder, serde_json::to_vec(&thread).unwrap_or_default())
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- calendar

async fn backup_calendar(
    g: &Group<'_>,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let ctx = g.ctx;
    let id = g.id;
    ctx.check_cancel()?;
    // The cheap listing: ids and change keys only.
    let listing = list(
        ctx,
        format!("/groups/{id}/events?$select=id,changeKey&$top=1000"),
    )
    .await?;
    ctx.writer.put_folder("calendar", b"{}".to_vec()).await?;
    let stored: HashMap<String, Option<Value>> = ctx
        .parent_entries("calendar")
        .await?
        .into_iter()
        .map(|e| {
            let ck = meta_json(&e.node).and_then(|m| m.get("changeKey").cloned());
            (e.name, ck)
        })
        .collect();
    let mut listed = HashSet::new();
    let mut fetch = Vec::new();
    for ev in &listing {
        let eid = match id_of(ev).map(seg) {
            Some(Ok(eid)) => eid,
            Some(Err(e)) => {
                bus.item_failed("", "calendar", e.to_string());
                continue;
            }
            None => {
                bus.item_failed(
                    "",
                    "calendar",
                    "Microsoft Graph listed an event without an id",
                );
                continue;
            }
        };
        listed.insert(eid.to_string());
        let ck = ev.get("changeKey").filter(|c| !c.is_null());
        match stored.get(eid) {
            Some(Some(old)) if Some(old) == ck => {}
            _ => fetch.push(eid.to_string()),
        }
    }
    for eid in stored.keys() {
        if !listed.contains(eid) {
            ctx.writer.remove(&format!("calendar/{eid}")).await?;
            counts.deleted += 1;
        }
    }
    ctx.check_cancel()?;
    // Changed events in $batches of 20: one round trip per 20 events.
    let items: Vec<BatchItem> = fetch
        .iter()
        .map(|eid| {
            BatchItem::get(
                eid.clone(),
                format!(
                    "/groups/{id}/events/{eid}?$select={EVENT_SELECT}&$expand=exceptionOccurrences"
                ),
            )
        })
        .collect();
    ctx.requests.add(items.len() as u64);
    let results = if items.is_empty() {
        Vec::new()
    } else {
        ctx.graph.batch(items).await?
    };
    for r in results {
        ctx.check_cancel()?;
        let path = format!("calendar/{}", seg(&r.id)?);
        // An inner answer that is not the event asked for is retried once
        // on its own; it is never stored.
        let got = if r.is_success() && id_of(&r.body) == Some(r.id.as_str()) {
            Ok(Some(r.body))
        } else if r.status == 404 {
            Ok(None)
        } else {
            fetch_event(g, &r.id).await
        };
        match got {
            Ok(Some(mut v)) => {
                strip_annotations(&mut v);
                let meta = json!({"changeKey": v.get("changeKey")});
                store_record(ctx, &path, &v, meta, counts).await?;
            }
            // Deleted between the listing and the fetch.
            Ok(None) => remove_counted(ctx, &path, counts).await?,
            Err(reason) => bus.item_failed(r.id, path, reason),
        }
        ctx.progress.advance(1, 0);
    }
    Ok(Value::Null)
}

/// One event on its own: `Ok(None)` when it no longer exists.
async fn fetch_event(g: &Group<'_>, eid: &str) -> std::result::Result<Option<Value>, String> {
    g.ctx.requests.add(1);
    let req = Request::get(format!(
        "/groups/{}/events/{eid}?$select={EVENT_SELECT}&$expand=exceptionOccurrences",
        g.id
    ));
    match g.ctx.graph.send(req).await {
        Ok(resp) => match resp.json::<Value>() {
            Ok(v) if id_of(&v) == Some(eid) => Ok(Some(v)),
            Ok(_) => {
                Err("Microsoft Graph answered with another item than the event asked for".into())
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(format!("{e} ({})", e.guidance())),
    }
}

// ---------------------------------------------------------------- drives

async fn backup_drives(
    g: &Group<'_>,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let ctx = g.ctx;
    ctx.check_cancel()?;
    let drives = list(ctx, format!("/groups/{}/drives", g.id)).await?;
    ctx.writer
        .put_folder("drives", serde_json::to_vec(&drives).unwrap_or_default())
        .await?;
    let mut state = Map::new();
    let mut listed = HashSet::new();
    for d in &drives {
        ctx.check_cancel()?;
        let did = match id_of(d).map(seg) {
            Some(Ok(did)) => did,
            Some(Err(e)) => {
                bus.item_failed("", "drives", e.to_string());
                continue;
            }
            None => {
                bus.item_failed("", "drives", "Microsoft Graph listed a drive without an id");
                continue;
            }
        };
        listed.insert(did.to_string());
        let root = format!("drives/{did}");
        let p = prev.get(did).cloned().unwrap_or(Value::Null);
        match crate::drive::backup_drive(ctx, &root, did, &p, bus, counts).await {
            Ok(s) => {
                state.insert(did.to_string(), s);
            }
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(e) => {
                bus.item_failed(
                    did,
                    root,
                    format!(
                        "the document library could not be backed up: {}",
                        explain(&e)
                    ),
                );
                // What the parent holds of it stays, and so does its state.
                if !p.is_null() {
                    state.insert(did.to_string(), p);
                }
            }
        }
    }
    for e in ctx.parent_entries("drives").await? {
        if !listed.contains(&e.name) {
            remove_counted(ctx, &format!("drives/{}", e.name), counts).await?;
        }
    }
    Ok(Value::Object(state))
}

// ---------------------------------------------------------------- channels

async fn backup_channels(
    g: &Group<'_>,
    channel_list: Option<Vec<Value>>,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let ctx = g.ctx;
    ctx.check_cancel()?;
    let channels = match channel_list {
        Some(c) => c,
        None => list(ctx, format!("/teams/{}/channels", g.id)).await?,
    };
    ctx.writer.put_folder("channels", b"{}".to_vec()).await?;
    let prev_links = prev
        .get("links")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut links = Map::new();
    let mut present = HashSet::new();
    for ch in channels {
        ctx.check_cancel()?;
        let cid = match id_of(&ch).map(seg) {
            Some(Ok(cid)) => cid.to_string(),
            Some(Err(e)) => {
                bus.item_failed("", "channels", e.to_string());
                continue;
            }
            None => {
                bus.item_failed(
                    "",
                    "channels",
                    "Microsoft Graph listed a channel without an id",
                );
                continue;
            }
        };
        present.insert(cid.clone());
        let folder = format!("channels/{cid}");
        ctx.writer
            .put_folder(&folder, serde_json::to_vec(&ch).unwrap_or_default())
            .await?;
        let prev_link = prev_links.get(&cid).and_then(Value::as_str);
        match sync_channel(g, &cid, prev_link, bus, counts).await {
            Ok(Some(link)) => {
                links.insert(cid, json!(link));
            }
            Ok(None) => {}
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => {
                bus.item_failed(
                    cid.as_str(),
                    folder,
                    format!("the channel could not be read: {}", explain(&e)),
                );
                // What the parent holds of it stays; the next backup goes
                // on from the same point.
                if let Some(l) = prev_link {
                    links.insert(cid, json!(l));
                }
            }
        }
    }
    for e in ctx.parent_entries("channels").await? {
        if !present.contains(&e.name) {
            remove_counted(ctx, &format!("channels/{}", e.name), counts).await?;
        }
    }
    Ok(json!({ "links": links }))
}

/// One channel's messages. Returns the delta link the next backup starts
/// from: the new one, or the previous one (None on a first backup) when
/// some message could not be read, so that its change is read again.
async fn sync_channel(
    g: &Group<'_>,
    cid: &str,
    prev_link: Option<&str>,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Option<String>> {
    let ctx = g.ctx;
    let base = format!("/teams/{}/channels/{cid}/messages", g.id);
    let folder = format!("channels/{cid}");
    // A fresh round only has to yield a link (the listing below reads the
    // channel), so it asks for what changed from now on: next to nothing.
    let since = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let fresh =
        format!("{base}/delta?$top={TEAMS_PAGE}&$filter=lastModifiedDateTime%20gt%20{since}");
    let round = ctx
        .delta_round(|u: &str| Request::get(u), &fresh, prev_link)
        .await?;
    let failures_before = bus.item_failures.len();
    if prev_link.is_none() || round.resynced {
        if round.resynced {
            bus.recovered(format!(
                "channel {cid}: delta token expired, the whole channel was read again"
            ));
        }
        read_whole_channel(g, cid, bus, counts).await?;
    } else {
        // The last state of each message the round reports, in order.
        let mut order: Vec<String> = Vec::new();
        let mut latest: HashMap<String, Option<Value>> = HashMap::new();
        for c in round.changes {
            let (mid, state) = match c {
                DeltaChange::Removed { id, .. } => match seg(&id) {
                    Ok(_) => (id, None),
                    Err(e) => {
                        bus.item_failed(id.as_str(), folder.as_str(), e.to_string());
                        continue;
                    }
                },
                DeltaChange::Changed(mut m) => {
                    strip_annotations(&mut m);
                    let Some(mid) = message_id(&m, &folder, bus) else {
                        continue;
                    };
                    if let Some(o) = m.as_object_mut() {
                        o.remove("replies");
                    }
                    (mid, Some(m))
                }
            };
            if latest.insert(mid.clone(), state).is_none() {
                order.push(mid);
            }
        }
        let mut work = Vec::new();
        let mut removed = Vec::new();
        for mid in order {
            match latest.remove(&mid).flatten() {
                Some(m) => work.push((mid, m, None)),
                None => removed.push(mid),
            }
        }
        // Each changed message costs a request for its replies; past the
        // pages of the whole listing, reading the channel again is cheaper.
        let known = ctx
            .parent_entries(&folder)
            .await?
            .iter()
            .filter(|e| !e.node.is_folder())
            .count();
        let listing_pages = (known + work.len()).div_ceil(TEAMS_PAGE);
        if work.len() > listing_pages {
            read_whole_channel(g, cid, bus, counts).await?;
        } else {
            for mid in removed {
                remove_thread(ctx, &folder, &mid, counts).await?;
            }
            store_messages(g, cid, work, bus, counts).await?;
        }
    }
    if bus.item_failures.len() > failures_before {
        return Ok(prev_link.map(str::to_string));
    }
    Ok(Some(round.link))
}

/// Reads a whole channel from its listing, every message with its replies,
/// and drops what the parent had that the channel no longer has. Delta only
/// reaches back eight months and leaves replies out; the listing has every
/// message, and up to a thousand replies of each in the same page.
async fn read_whole_channel(
    g: &Group<'_>,
    cid: &str,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<()> {
    let ctx = g.ctx;
    let base = format!("/teams/{}/channels/{cid}/messages", g.id);
    let folder = format!("channels/{cid}");
    let listing = list(ctx, format!("{base}?$top={TEAMS_PAGE}&$expand=replies")).await?;
    let mut seen = HashSet::new();
    let mut work = Vec::new();
    for mut m in listing {
        let Some(mid) = message_id(&m, &folder, bus) else {
            continue;
        };
        seen.insert(mid.clone());
        let replies = m.get("replies").cloned();
        let more = m.get("replies@odata.nextLink").is_some();
        if let Some(o) = m.as_object_mut() {
            o.remove("replies");
            o.remove("replies@odata.nextLink");
        }
        let replies = match replies {
            Some(Value::Array(r)) if !more && r.len() < EXPANDED_REPLIES_MAX => Some(r),
            _ => None,
        };
        work.push((mid, m, replies));
    }
    store_messages(g, cid, work, bus, counts).await?;
    for e in ctx.parent_entries(&folder).await? {
        // Reply folders go with their message.
        if !e.node.is_folder() && !seen.contains(&e.name) {
            remove_thread(ctx, &folder, &e.name, counts).await?;
        }
    }
    Ok(())
}

/// A message's id as a path segment, or a recorded failure.
fn message_id(m: &Value, folder: &str, bus: &mut FaultBus) -> Option<String> {
    match id_of(m).map(seg) {
        Some(Ok(mid)) => Some(mid.to_string()),
        Some(Err(e)) => {
            bus.item_failed("", folder, e.to_string());
            None
        }
        None => {
            bus.item_failed("", folder, "Microsoft Graph listed a message without an id");
            None
        }
    }
}

/// Stores messages with their replies; replies not given are read (a few
/// messages at a time: Teams allows a handful of requests per second on
/// one channel).
async fn store_messages(
    g: &Group<'_>,
    cid: &str,
    work: Vec<(String, Value, Option<Vec<Value>>)>,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<()> {
    let ctx = g.ctx;
    let base = format!("/teams/{}/channels/{cid}/messages", g.id);
    let folder = format!("channels/{cid}");
    let (base, folder) = (base.as_str(), folder.as_str());
    let results: Vec<(String, ItemCounts, Result<()>)> = futures::stream::iter(work)
        .map(|(mid, m, replies)| async move {
            let mut c = ItemCounts::default();
            let r = async {
                ctx.check_cancel()?;
                let replies = match replies {
                    Some(r) => r,
                    None => {
                        match list(ctx, format!("{base}/{mid}/replies?$top={TEAMS_PAGE}")).await {
                            Ok(r) => r,
                            // Gone since the delta round: the next round says so.
                            Err(e) if is_not_found(&e) => {
                                return remove_thread(ctx, folder, &mid, &mut c).await;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                };
                store_thread(ctx, folder, &mid, &m, replies, &mut c).await
            }
            .await;
            ctx.progress.advance(1, 0);
            (mid, c, r)
        })
        .buffer_unordered(g.concurrency)
        .collect()
        .await;
    for (mid, c, r) in results {
        add_counts(counts, &c);
        match r {
            Ok(()) => {}
            Err(e) if is_fatal(&e) => return Err(e),
            Err(e) => bus.item_failed(
                mid.as_str(),
                format!("{folder}/{mid}"),
                format!("the message could not be read: {}", explain(&e)),
            ),
        }
    }
    Ok(())
}

/// The metadata kept next to a chat message.
fn message_meta(m: &Value) -> Value {
    json!({
        "lastModifiedDateTime": m.get("lastModifiedDateTime"),
        "deleted": m.get("deletedDateTime").is_some_and(|d| !d.is_null()),
    })
}

/// Stores a top-level message and its live replies, replacing what the
/// parent had for it.
async fn store_thread(
    ctx: &PartCtx<'_>,
    folder: &str,
    mid: &str,
    m: &Value,
    replies: Vec<Value>,
    counts: &mut ItemCounts,
) -> Result<()> {
    store_record(ctx, &format!("{folder}/{mid}"), m, message_meta(m), counts).await?;
    let replies_folder = format!("{folder}/{mid}.replies");
    let old: HashSet<String> = ctx
        .parent_entries(&replies_folder)
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut now = HashSet::new();
    for mut r in replies {
        strip_annotations(&mut r);
        let rid = id_of(&r)
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "Microsoft Graph listed a reply without an id under message {mid}"
                ))
            })?
            .to_string();
        seg(&rid)?;
        // A deleted reply has nothing left to keep.
        if r.get("deletedDateTime").is_some_and(|d| !d.is_null()) {
            continue;
        }
        store_record(
            ctx,
            &format!("{replies_folder}/{rid}"),
            &r,
            message_meta(&r),
            counts,
        )
        .await?;
        now.insert(rid);
    }
    if now.is_empty() {
        ctx.writer.remove(&replies_folder).await?;
    }
    for rid in old.difference(&now) {
        counts.deleted += 1;
        ctx.writer
            .remove(&format!("{replies_folder}/{rid}"))
            .await?;
    }
    Ok(())
}

/// Removes a top-level message and its replies, counting them.
async fn remove_thread(
    ctx: &PartCtx<'_>,
    folder: &str,
    mid: &str,
    counts: &mut ItemCounts,
) -> Result<()> {
    remove_counted(ctx, &format!("{folder}/{mid}"), counts).await?;
    remove_counted(ctx, &format!("{folder}/{mid}.replies"), counts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_message_ids_are_item_failures_not_paths() {
        let mut bus = FaultBus::default();
        let folder = "channels/c";
        assert_eq!(message_id(&json!({"id": "../x"}), folder, &mut bus), None);
        assert_eq!(message_id(&json!({"id": "a/b"}), folder, &mut bus), None);
        assert_eq!(
            message_id(&json!({"subject": "no id"}), folder, &mut bus),
            None
        );
        assert_eq!(
            message_id(&json!({"id": "1717000000000"}), folder, &mut bus).as_deref(),
            Some("1717000000000")
        );
        assert_eq!(bus.item_failures.len(), 3);
        assert!(bus.item_failures[1].reason.contains("unusable id"));
        assert!(bus.item_failures[2].reason.contains("without an id"));
    }
}
