//! One mailbox backup: a vault snapshot that starts from the parent and
//! applies what changed (see the module docs of [`super`] for the layout).

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use graph::{BatchItem, DeltaChange, GraphClient, Request};
use serde_json::{Map, Value, json};
use vault::{Node, SnapshotInfo, SnapshotWriter};

use super::{ExchangeSubService, MailboxBackup};
use crate::error::{EngineError, Result};
use crate::faults::FaultBus;
use crate::report::{BackupReport, ItemCounts};
use crate::run::{self, Ledger, Requests, Round, id_of, meta_json, seg, strip_annotations};

/// Metadata of messages asked from delta: everything a listing shows, plus
/// what tells us whether the MIME changed (see [`MIME_FINGERPRINT`]).
const MESSAGE_SELECT: &str = "id,parentFolderId,subject,from,sender,toRecipients,ccRecipients,\
bccRecipients,replyTo,receivedDateTime,sentDateTime,createdDateTime,lastModifiedDateTime,changeKey,\
isRead,isDraft,flag,importance,categories,hasAttachments,internetMessageId,conversationId,\
inferenceClassification,bodyPreview";

/// Properties whose change means the message's MIME changed. Microsoft
/// Graph lets these change only on drafts, except importance and categories
/// (which Exchange writes into the MIME headers); read state, flags and
/// moves leave the MIME alone, so for those the stored MIME is reused and
/// only the metadata is rewritten — no download.
const MIME_FINGERPRINT: &[&str] = &[
    "subject",
    "importance",
    "categories",
    "internetMessageId",
    "hasAttachments",
    "sentDateTime",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "isDraft",
];

/// Every event property, because `cancelledOccurrences` is only returned
/// when selected by name.
const EVENT_SELECT: &str = "id,changeKey,createdDateTime,lastModifiedDateTime,categories,\
originalStartTimeZone,originalEndTimeZone,iCalUId,uid,reminderMinutesBeforeStart,isReminderOn,\
hasAttachments,subject,bodyPreview,body,importance,sensitivity,isAllDay,isCancelled,isOrganizer,\
responseRequested,seriesMasterId,showAs,type,webLink,onlineMeetingUrl,isOnlineMeeting,\
onlineMeetingProvider,allowNewTimeProposals,isDraft,hideAttendees,responseStatus,start,end,\
location,locations,recurrence,attendees,organizer,onlineMeeting,transactionId,cancelledOccurrences";

const DELTA_PAGE: usize = 200;

/// Outlook ids that survive moves (messages, events, contacts).
const IMMUTABLE_IDS: (&str, &str) = ("Prefer", "IdType=\"ImmutableId\"");

struct Ctx<'a> {
    graph: &'a GraphClient,
    vault: &'a vault::Account,
    writer: &'a SnapshotWriter,
    parent: Option<&'a SnapshotInfo>,
    user: &'a str,
    progress: &'a dyn crate::progress::Progress,
    cancel: &'a crate::Cancel,
    concurrency: usize,
    requests: Requests,
}

fn same_fingerprint(old: &Value, new: &Value) -> bool {
    if new.get("isDraft").and_then(Value::as_bool).unwrap_or(false) {
        return false;
    }
    MIME_FINGERPRINT.iter().all(|k| old.get(*k) == new.get(*k))
}

impl Ctx<'_> {
    fn counted(&self, n: u64) {
        self.requests.add(n);
    }

    /// A whole delta round from `prev` (or from `fresh` without one, or
    /// when `prev` has expired).
    async fn round(&self, fresh: &str, prev: Option<&str>, page: usize) -> Result<Round> {
        let req = |url: &str| {
            Request::get(url)
                .header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1)
                .page_size(page)
        };
        run::delta_round(self.graph, &self.requests, req, fresh, prev).await
    }

    /// The entries of a folder of the parent snapshot (empty without one).
    async fn parent_entries(&self, path: &str) -> Result<Vec<vault::Entry>> {
        run::parent_entries(self.vault, self.parent, path).await
    }

    async fn parent_node(&self, path: &str) -> Result<Option<Node>> {
        Ok(self.writer.parent_node(path).await?)
    }

    /// Folder-level sync shared by mail folders, contact folders and To Do
    /// lists: writes changed folders' metadata, removes deleted ones, and
    /// returns the ids of the folders that now exist.
    async fn sync_folders(
        &self,
        root: &str,
        fresh: &str,
        prev: Option<&str>,
        extra: Vec<Value>,
    ) -> Result<(Vec<String>, String)> {
        let round = self.round(fresh, prev, DELTA_PAGE).await?;
        self.writer.put_folder(root, b"{}".to_vec()).await?;
        let before: Vec<String> = self
            .parent_entries(root)
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect();
        let mut present: BTreeMap<String, ()> = BTreeMap::new();
        if !round.resynced {
            for id in &before {
                present.insert(id.clone(), ());
            }
        }
        let mut changed = Vec::new();
        for c in round.changes {
            match c {
                DeltaChange::Changed(v) => changed.push(v),
                DeltaChange::Removed { id, .. } => {
                    present.remove(&id);
                }
            }
        }
        changed.extend(extra);
        for mut v in changed {
            strip_annotations(&mut v);
            let Some(id) = id_of(&v).map(str::to_string) else {
                continue;
            };
            self.writer
                .put_folder(
                    &format!("{root}/{}", seg(&id)?),
                    serde_json::to_vec(&v).unwrap_or_default(),
                )
                .await?;
            present.insert(id, ());
        }
        for id in &before {
            if !present.contains_key(id) {
                self.writer.remove(&format!("{root}/{id}")).await?;
            }
        }
        Ok((present.into_keys().collect(), round.link))
    }

    /// Every item of a collection, counting the pages as requests.
    async fn get_all(&self, first: Request) -> Result<Vec<Value>> {
        run::get_all(self.graph, &self.requests, first).await
    }
}

/// What an item sync wants done with one changed item.
enum Fetch {
    /// Reuse stored content, rewrite metadata.
    Reuse(Node),
    /// Download.
    Download,
}

pub async fn backup_mailbox(job: MailboxBackup<'_>) -> Result<BackupReport> {
    let (writer, parent_info) = run::begin(job.vault, job.parent).await?;
    let ctx = Ctx {
        graph: job.graph,
        vault: job.vault,
        writer: &writer,
        parent: parent_info.as_ref(),
        user: job.mailbox_id,
        progress: job.progress,
        cancel: job.cancel,
        concurrency: job.options.concurrency.max(1),
        requests: Requests::default(),
    };
    let mut ledger = Ledger::new(parent_info.as_ref());
    for sub in &job.options.sub_services {
        let sub = *sub;
        job.progress.set_stage(sub.as_str());
        let prev = ledger.prev_state(sub.into());
        let mut bus = FaultBus::default();
        let mut counts = ItemCounts::default();
        let result = match sub {
            ExchangeSubService::Mail => backup_mail(&ctx, &prev, &mut bus, &mut counts).await,
            ExchangeSubService::Contacts => {
                backup_contacts(&ctx, &prev, &mut bus, &mut counts).await
            }
            ExchangeSubService::Calendar => backup_calendar(&ctx, &mut bus, &mut counts).await,
            ExchangeSubService::Tasks => backup_tasks(&ctx, &prev, &mut bus, &mut counts).await,
        };
        if let Err(e) = &result
            && ledger.is_first()
            && is_gone(e)
            && user_gone(&ctx).await
        {
            return Err(EngineError::EntityGone(format!(
                "mailbox {}",
                job.mailbox_id
            )));
        }
        if let Err(EngineError::Cancelled) = ledger.record(sub.into(), result, bus, counts) {
            return Ok(ledger.cancelled(ctx.requests.get()));
        }
    }
    job.cancel.check().map_err(|_| EngineError::Cancelled)?;
    let requests = ctx.requests.get();
    ledger
        .commit(
            writer,
            "exchange-mailbox",
            json!({ "mailbox": job.mailbox_id }),
            &job.meta,
            requests,
            job.progress,
        )
        .await
}

fn is_gone(e: &EngineError) -> bool {
    matches!(e, EngineError::Graph(g) if g.is_not_found())
}

/// Whether the user behind the mailbox was deleted.
async fn user_gone(ctx: &Ctx<'_>) -> bool {
    ctx.counted(1);
    match ctx
        .graph
        .send(Request::get(format!("/users/{}?$select=id", ctx.user)))
        .await
    {
        Err(e) => e.is_not_found(),
        Ok(_) => false,
    }
}

fn link_of<'v>(prev: &'v Value, key: &str) -> Option<&'v str> {
    prev.get(key).and_then(Value::as_str)
}

fn links_of(prev: &Value, key: &str) -> HashMap<String, String> {
    prev.get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- mail

/// The Recoverable Items folders a mailbox backup keeps, by well-known name.
pub(crate) const RECOVERABLE_ITEMS: [&str; 3] = [
    "recoverableitemsdeletions",
    "recoverableitemspurges",
    "recoverableitemsversions",
];

async fn backup_mail(
    ctx: &Ctx<'_>,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let u = ctx.user;
    // Folders Graph's folder delta does not report: hidden top-level
    // folders and Recoverable Items (soft-deleted mail).
    let mut extra = Vec::new();
    let top = ctx
        .get_all(
            Request::get(format!(
                "/users/{u}/mailFolders?includeHiddenFolders=true&$top=250"
            ))
            .header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1),
        )
        .await?;
    for f in top {
        if f.get("isHidden").and_then(Value::as_bool) == Some(true) {
            extra.push(f);
        }
    }
    // Recoverable Items: soft-deleted mail (Deletions), and what a hold
    // keeps (Purges; Versions, the originals of items changed under a hold).
    // Graph reaches them only by their well-known names.
    for (i, wk) in RECOVERABLE_ITEMS.iter().enumerate() {
        ctx.counted(1);
        match ctx
            .graph
            .send(
                Request::get(format!("/users/{u}/mailFolders/{wk}"))
                    .header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1),
            )
            .await
        {
            Ok(r) => {
                let mut v: Value = r.json()?;
                if let Value::Object(m) = &mut v {
                    m.insert("wellKnownName".into(), json!(wk));
                }
                extra.push(v);
            }
            Err(e) if e.is_not_found() && i == 0 => {
                bus.skip(
                    "Recoverable Items",
                    "the mailbox has no Recoverable Items folder",
                );
                break;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let extra_ids: HashSet<String> = extra.iter().filter_map(id_of).map(str::to_string).collect();
    // Hidden folders that disappeared are not reported by the folder delta:
    // forget those the previous run saw and this one does not.
    let prev_extra: Vec<String> = prev
        .get("extra")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for id in &prev_extra {
        if !extra_ids.contains(id) {
            ctx.writer.remove(&format!("mail/{}", seg(id)?)).await?;
        }
    }
    let (folders, folders_link) = ctx
        .sync_folders(
            "mail",
            &format!("/users/{u}/mailFolders/delta"),
            link_of(prev, "folders"),
            extra,
        )
        .await?;
    let folders: Vec<String> = folders
        .into_iter()
        .filter(|f| !prev_extra.contains(f) || extra_ids.contains(f))
        .collect();
    let prev_links = links_of(prev, "messages");
    // Phase 1: every folder's delta round (metadata only; proportional to
    // what changed, except on the first backup of a folder).
    let rounds: Vec<(String, Result<Round>)> = futures::stream::iter(folders.iter().cloned())
        .map(|fid| {
            let prev_link = prev_links.get(&fid).cloned();
            async move {
                let fresh =
                    format!("/users/{u}/mailFolders/{fid}/messages/delta?$select={MESSAGE_SELECT}");
                let r = ctx.round(&fresh, prev_link.as_deref(), DELTA_PAGE).await;
                (fid, r)
            }
        })
        .buffer_unordered(ctx.concurrency)
        .collect()
        .await;
    ctx.cancel.check()?;
    let mut links = Map::new();
    let mut ok_rounds = Vec::new();
    for (fid, r) in rounds {
        match r {
            Ok(round) => ok_rounds.push((fid, round)),
            Err(e) => {
                // Keep the old link (and the items the parent had): the
                // next run picks the folder up where it was.
                if let Some(l) = prev_links.get(&fid) {
                    links.insert(fid.clone(), json!(l));
                }
                bus.item_failed(
                    &fid,
                    format!("mail/{fid}"),
                    format!("folder could not be read: {e}"),
                );
            }
        }
    }
    // Phase 2: removals, remembering what was removed so that a message
    // moved between folders keeps its stored MIME.
    let mut moved_from: HashMap<String, Node> = HashMap::new();
    let mut changed: Vec<(String, Value)> = Vec::new();
    for (fid, round) in &mut ok_rounds {
        let folder = format!("mail/{fid}");
        let mut seen = HashSet::new();
        for c in std::mem::take(&mut round.changes) {
            match c {
                DeltaChange::Removed { id, .. } => {
                    let path = format!("{folder}/{}", seg(&id)?);
                    if let Some(node) = ctx.parent_node(&path).await? {
                        moved_from.insert(id.clone(), node);
                        counts.deleted += 1;
                    }
                    ctx.writer.remove(&path).await?;
                }
                DeltaChange::Changed(mut v) => {
                    strip_annotations(&mut v);
                    if let Some(id) = id_of(&v) {
                        seen.insert(id.to_string());
                        changed.push((fid.clone(), v));
                    }
                }
            }
        }
        if round.resynced {
            bus.recovered(format!(
                "mail folder {fid}: delta token expired, enumerated again"
            ));
            for e in ctx.parent_entries(&folder).await? {
                if !seen.contains(&e.name) {
                    ctx.writer.remove(&format!("{folder}/{}", e.name)).await?;
                    counts.deleted += 1;
                }
            }
        }
        links.insert(fid.clone(), json!(round.link));
    }
    // A move shows up as a removal here and an addition there.
    let moved_ids: HashSet<&str> = changed
        .iter()
        .filter_map(|(_, v)| id_of(v))
        .filter(|id| moved_from.contains_key(*id))
        .collect();
    counts.deleted -= moved_ids.len() as u64;
    // Phase 3: changed and new messages.
    ctx.progress.set_total(changed.len() as u64, 0);
    let mut plans = Vec::with_capacity(changed.len());
    for (fid, v) in changed {
        let id = id_of(&v).unwrap_or_default().to_string();
        let path = format!("mail/{fid}/{}", seg(&id)?);
        let old = match ctx.parent_node(&path).await? {
            Some(n) => Some(n),
            None => moved_from.get(&id).cloned(),
        };
        let fetch = match &old {
            Some(n @ Node::Item { .. })
                if meta_json(n).is_some_and(|m| same_fingerprint(&m, &v)) =>
            {
                Fetch::Reuse(n.clone())
            }
            _ => Fetch::Download,
        };
        if old.is_some() {
            counts.changed += 1;
        } else {
            counts.new += 1;
        }
        plans.push((path, v, fetch));
    }
    let results: Vec<(String, std::result::Result<u64, String>)> = futures::stream::iter(plans)
        .map(|(path, v, fetch)| async move {
            let r = store_message(ctx, &path, &v, fetch).await;
            ctx.progress.advance(1, *r.as_ref().unwrap_or(&0));
            (path, r)
        })
        .buffer_unordered(ctx.concurrency)
        .collect()
        .await;
    for (path, r) in results {
        match r {
            Ok(bytes) => counts.bytes_read += bytes,
            Err(reason) if reason == "cancelled" => return Err(EngineError::Cancelled),
            Err(reason) => {
                let id = path.rsplit('/').next().unwrap_or_default().to_string();
                bus.item_failed(id, path, reason);
            }
        }
    }
    ctx.cancel.check()?;
    Ok(json!({
        "folders": folders_link,
        "messages": links,
        "extra": extra_ids.into_iter().collect::<Vec<_>>(),
    }))
}

/// Stores one message; returns the bytes downloaded. Errors are reasons a
/// person can read.
async fn store_message(
    ctx: &Ctx<'_>,
    path: &str,
    meta: &Value,
    fetch: Fetch,
) -> std::result::Result<u64, String> {
    if ctx.cancel.is_cancelled() {
        return Err("cancelled".into());
    }
    let meta_bytes = serde_json::to_vec(meta).unwrap_or_default();
    match fetch {
        Fetch::Reuse(Node::Item { content, .. }) => {
            ctx.writer
                .put_node(
                    path,
                    Node::Item {
                        meta: meta_bytes,
                        content,
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(0)
        }
        _ => {
            let id = path.rsplit('/').next().unwrap_or_default();
            ctx.counted(1);
            let resp = match ctx
                .graph
                .send_streaming(
                    Request::get(format!("/users/{}/messages/{id}/$value", ctx.user))
                        .header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1),
                )
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_not_found() => {
                    // Deleted since the delta round: the next round says so.
                    let _ = ctx.writer.remove(path).await;
                    return Ok(0);
                }
                Err(e) => return Err(format!("{e} ({})", e.guidance())),
            };
            let stream = resp
                .bytes_stream()
                .map_err(|e| std::io::Error::other(e.to_string()));
            let reader = tokio_util::io::StreamReader::new(stream);
            let content = ctx
                .writer
                .put_item(path, meta_bytes, reader)
                .await
                .map_err(|e| format!("could not store the message: {e}"))?;
            Ok(content.size)
        }
    }
}

// ---------------------------------------------------------------- contacts

async fn backup_contacts(
    ctx: &Ctx<'_>,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let u = ctx.user;
    let (folders, folders_link) = ctx
        .sync_folders(
            "contacts",
            &format!("/users/{u}/contactFolders/delta"),
            link_of(prev, "folders"),
            Vec::new(),
        )
        .await?;
    let prev_links = links_of(prev, "contacts");
    let mut links = Map::new();
    for fid in folders {
        ctx.cancel.check()?;
        let fresh = format!("/users/{u}/contactFolders/{fid}/contacts/delta");
        let Some(round) = folder_round(
            ctx,
            &fresh,
            &format!("contacts/{fid}"),
            &fid,
            &prev_links,
            &mut links,
            bus,
        )
        .await
        else {
            continue;
        };
        apply_json_round(
            ctx,
            &format!("contacts/{fid}"),
            round,
            bus,
            counts,
            |v| async move { Ok(v) },
        )
        .await
        .map(|link| links.insert(fid.clone(), json!(link)))?;
    }
    Ok(json!({"folders": folders_link, "contacts": links}))
}

/// One container's delta round. When it cannot be read, its previous link is
/// kept (the next run picks it up where it was), the failure is recorded,
/// and `None` is returned.
async fn folder_round(
    ctx: &Ctx<'_>,
    fresh: &str,
    path: &str,
    id: &str,
    prev_links: &HashMap<String, String>,
    links: &mut Map<String, Value>,
    bus: &mut FaultBus,
) -> Option<Round> {
    let prev = prev_links.get(id);
    match ctx.round(fresh, prev.map(String::as_str), DELTA_PAGE).await {
        Ok(r) => Some(r),
        Err(e) => {
            if let Some(l) = prev {
                links.insert(id.to_string(), json!(l));
            }
            bus.item_failed(id, path, format!("could not be read: {e}"));
            None
        }
    }
}

/// Applies a delta round of JSON items (contacts, tasks) to `folder`:
/// removals, then changed items stored as their JSON (after `expand`).
async fn apply_json_round<F, Fut>(
    ctx: &Ctx<'_>,
    folder: &str,
    round: Round,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
    expand: F,
) -> Result<String>
where
    F: Fn(Value) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Value, String>>,
{
    let mut seen = HashSet::new();
    let mut changed = Vec::new();
    for c in round.changes {
        match c {
            DeltaChange::Removed { id, .. } => {
                let path = format!("{folder}/{}", seg(&id)?);
                if ctx.parent_node(&path).await?.is_some() {
                    counts.deleted += 1;
                }
                ctx.writer.remove(&path).await?;
            }
            DeltaChange::Changed(mut v) => {
                strip_annotations(&mut v);
                if let Some(id) = id_of(&v) {
                    seen.insert(id.to_string());
                    changed.push(v);
                }
            }
        }
    }
    if round.resynced {
        bus.recovered(format!("{folder}: delta token expired, enumerated again"));
        for e in ctx.parent_entries(folder).await? {
            if !seen.contains(&e.name) {
                ctx.writer.remove(&format!("{folder}/{}", e.name)).await?;
                counts.deleted += 1;
            }
        }
    }
    for v in changed {
        ctx.cancel.check()?;
        let id = id_of(&v).unwrap_or_default().to_string();
        let path = format!("{folder}/{}", seg(&id)?);
        let v = match expand(v).await {
            Ok(v) => v,
            Err(reason) => {
                bus.item_failed(id, path, reason);
                continue;
            }
        };
        store_json(ctx, &path, &v, counts).await?;
        ctx.progress.advance(1, 0);
    }
    Ok(round.link)
}

/// Stores a JSON record as an item whose metadata is its change key;
/// unchanged records (same canonical JSON) are not counted as changed.
async fn store_json(ctx: &Ctx<'_>, path: &str, v: &Value, counts: &mut ItemCounts) -> Result<()> {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let meta = json!({"changeKey": v.get("changeKey")});
    match ctx.parent_node(path).await? {
        Some(_) => counts.changed += 1,
        None => counts.new += 1,
    }
    counts.bytes_read += bytes.len() as u64;
    ctx.writer
        .put_bytes(path, serde_json::to_vec(&meta).unwrap_or_default(), bytes)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------- calendar

async fn backup_calendar(
    ctx: &Ctx<'_>,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let u = ctx.user;
    let calendars = ctx
        .get_all(
            Request::get(format!("/users/{u}/calendars?$top=250"))
                .header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1),
        )
        .await?;
    let before: Vec<String> = ctx
        .parent_entries("calendar")
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    ctx.writer.put_folder("calendar", b"{}".to_vec()).await?;
    let mut now = HashSet::new();
    for mut cal in calendars {
        strip_annotations(&mut cal);
        let Some(cid) = id_of(&cal).map(str::to_string) else {
            continue;
        };
        now.insert(cid.clone());
        let folder = format!("calendar/{}", seg(&cid)?);
        ctx.writer
            .put_folder(&folder, serde_json::to_vec(&cal).unwrap_or_default())
            .await?;
        // The cheap listing: ids and change keys only.
        let listing = match ctx
            .get_all(
                Request::get(format!(
                    "/users/{u}/calendars/{cid}/events?$select=id,changeKey&$top=1000"
                ))
                .header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1),
            )
            .await
        {
            Ok(l) => l,
            Err(e) => {
                bus.item_failed(&cid, folder, format!("calendar could not be read: {e}"));
                continue;
            }
        };
        let stored: HashMap<String, Option<Value>> = ctx
            .parent_entries(&folder)
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
            let Some(id) = id_of(ev) else { continue };
            listed.insert(id.to_string());
            let ck = ev.get("changeKey").cloned();
            match stored.get(id) {
                Some(old) if old.is_some() && *old == ck => {}
                _ => fetch.push(id.to_string()),
            }
        }
        for id in stored.keys() {
            if !listed.contains(id) {
                ctx.writer.remove(&format!("{folder}/{id}")).await?;
                counts.deleted += 1;
            }
        }
        // Changed events in $batches of 20: one round trip per 20 events.
        let items: Vec<BatchItem> = fetch
            .iter()
            .map(|id| {
                let mut b = BatchItem::get(
                    id.clone(),
                    format!(
                        "/users/{u}/events/{id}?$select={EVENT_SELECT}&$expand=exceptionOccurrences"
                    ),
                );
                b.headers
                    .insert(IMMUTABLE_IDS.0.into(), json!(IMMUTABLE_IDS.1));
                b
            })
            .collect();
        ctx.cancel.check()?;
        ctx.counted(items.len() as u64);
        let results = if items.is_empty() {
            Vec::new()
        } else {
            ctx.graph.batch(items).await?
        };
        for r in results {
            let path = format!("{folder}/{}", seg(&r.id)?);
            // An inner answer that is not the event asked for is retried
            // once on its own; it is never stored.
            let got = if r.is_success() && id_of(&r.body) == Some(r.id.as_str()) {
                Ok(Some(r.body))
            } else if r.status == 404 {
                Ok(None)
            } else {
                fetch_event(ctx, &r.id).await
            };
            match got {
                Ok(Some(mut v)) => {
                    strip_annotations(&mut v);
                    store_json(ctx, &path, &v, counts).await?;
                }
                // Deleted between the listing and the fetch.
                Ok(None) => ctx.writer.remove(&path).await?,
                Err(reason) => bus.item_failed(r.id, path, reason),
            }
            ctx.progress.advance(1, 0);
        }
    }
    for id in before {
        if !now.contains(&id) {
            ctx.writer.remove(&format!("calendar/{id}")).await?;
        }
    }
    Ok(Value::Null)
}

/// One event on its own: `Ok(None)` when it no longer exists.
async fn fetch_event(ctx: &Ctx<'_>, id: &str) -> std::result::Result<Option<Value>, String> {
    ctx.counted(1);
    let req = Request::get(format!(
        "/users/{}/events/{id}?$select={EVENT_SELECT}&$expand=exceptionOccurrences",
        ctx.user
    ))
    .header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1);
    match ctx.graph.send(req).await {
        Ok(resp) => match resp.json::<Value>() {
            Ok(v) if id_of(&v) == Some(id) => Ok(Some(v)),
            Ok(_) => {
                Err("Microsoft Graph answered with another item than the event asked for".into())
            }
            Err(e) => Err(e.to_string()),
        },
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(format!("{e} ({})", e.guidance())),
    }
}

// ---------------------------------------------------------------- tasks

async fn backup_tasks(
    ctx: &Ctx<'_>,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let u = ctx.user;
    let (lists, lists_link) = ctx
        .sync_folders(
            "tasks",
            &format!("/users/{u}/todo/lists/delta"),
            link_of(prev, "lists"),
            Vec::new(),
        )
        .await?;
    let prev_links = links_of(prev, "tasks");
    let mut links = Map::new();
    for lid in lists {
        ctx.cancel.check()?;
        let fresh = format!("/users/{u}/todo/lists/{lid}/tasks/delta");
        let Some(round) = folder_round(
            ctx,
            &fresh,
            &format!("tasks/{lid}"),
            &lid,
            &prev_links,
            &mut links,
            bus,
        )
        .await
        else {
            continue;
        };
        let lid2 = lid.clone();
        let link = apply_json_round(ctx, &format!("tasks/{lid}"), round, bus, counts, |v| {
            let lid = lid2.clone();
            async move {
                // Checklist items are a navigation delta does not carry.
                let id = id_of(&v).unwrap_or_default().to_string();
                ctx.counted(1);
                match ctx
                    .graph
                    .send(Request::get(format!(
                        "/users/{u}/todo/lists/{lid}/tasks/{id}?$expand=checklistItems"
                    )))
                    .await
                {
                    Ok(r) => {
                        let mut full: Value = r.json().map_err(|e| e.to_string())?;
                        strip_annotations(&mut full);
                        Ok(full)
                    }
                    Err(e) => Err(format!("{e} ({})", e.guidance())),
                }
            }
        })
        .await?;
        links.insert(lid.clone(), json!(link));
    }
    Ok(json!({"lists": lists_link, "tasks": links}))
}
