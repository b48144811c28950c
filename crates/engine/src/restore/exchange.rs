//! Exchange restore (SPEC F-E4): a mailbox snapshot (layout in
//! [`crate::exchange`]) back into the original mailbox or another one.
//!
//! How each kind of item is written, and why:
//!
//! - **Mail** is created from its Graph JSON (`POST …/mailFolders/{id}/messages`)
//!   with the body and attachments taken from the stored MIME, and three
//!   extended properties that Exchange only accepts when an item is created:
//!   `PR_MESSAGE_FLAGS` (0x0E07; without `MSGFLAG_UNSENT` the message is a
//!   received/sent message, not a draft; `MSGFLAG_READ` keeps the read
//!   state), `PR_MESSAGE_DELIVERY_TIME` (0x0E06, the received date) and
//!   `PR_CLIENT_SUBMIT_TIME` (0x0039, the sent date). A MIME upload
//!   (`Content-Type: text/plain`, base64) would always give a draft, and
//!   `PR_MESSAGE_FLAGS` cannot change after the first save. Attachments
//!   under 3 MB are posted as `fileAttachment`s; larger ones go through an
//!   attachment upload session. A message whose attachments cannot all be
//!   written is deleted again, so a message is restored whole or not at all.
//! - **Events**: Microsoft Graph sends invitations to every attendee of an
//!   event it creates and offers no switch to prevent it, so events are
//!   created without attendees; the attendee list is kept as a line at the
//!   end of the body. Series are created with their recurrence, then each
//!   exception occurrence is patched and each cancelled occurrence deleted
//!   (found through `/instances` on its original date). Replace patches only
//!   what differs (every patch of a meeting sends its attendees an update)
//!   and gives an existing series the snapshot's occurrences
//!   ([`super::series`]).
//! - **Contacts** and **To Do tasks** are created from their JSON (tasks with
//!   their checklist items).
//!
//! Folders: well-known mail folders map to the destination's own (found by
//! asking the original mailbox which of its folders are well-known, or by
//! their English display names when it is gone); other folders are matched
//! by display name under their mapped parent and created when missing.
//! Hidden folders come back hidden (`isHidden` on create). Soft-deleted mail
//! (Recoverable Items\Deletions) goes back into the destination's Recoverable
//! Items, where nothing is replaced. In
//! non-destructive mode everything goes below one new folder per
//! sub-service (a mail folder, a contact folder, a calendar, a To Do list)
//! named [`RestoreOptions::restore_folder_name`].
//!
//! An item "exists" in its destination folder when it has the same Graph id
//! (destination = original mailbox), or the same stable key: the
//! `internetMessageId` for mail, the `iCalUId` or subject + start for
//! events, display name + first e-mail address for contacts, the title for
//! tasks. Replace overwrites existing items (mail whose content is
//! unchanged gets its read state, flag and categories patched; otherwise
//! the existing message is deleted and the snapshot's created), bypass
//! leaves them alone.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use graph::{BatchItem, GraphClient, Request};
use mail_parser::{MessageParser, MimeHeaders};
use reqwest::Method;
use serde_json::{Map, Value, json};
use vault::SnapshotInfo;

use super::series::{
    Reconcile, Series, add_tag, attendees_into_body, changed_fields, graph_reason, str_at,
};
use super::{ItemOutcome, RestoreCtx, RestoreMode, RestoreReport, SnapshotKind, Tally};
use crate::error::{EngineError, Result};
use crate::report::SubService;
use crate::run::id_of;

/// Outlook ids that survive moves, as the backup stored them.
const IMMUTABLE_IDS: (&str, &str) = ("Prefer", "IdType=\"ImmutableId\"");

/// Attachments this large or larger need an upload session (Graph's limit
/// for `POST /attachments`).
const UPLOAD_SESSION_THRESHOLD: usize = 3 * 1024 * 1024;

/// Chunk size of attachment uploads (a multiple of 320 KiB, under 4 MB).
const UPLOAD_CHUNK: usize = 10 * 320 * 1024;

/// The well-known mail folders a restore maps onto the destination's own,
/// with their display names in an English mailbox (used when the original
/// mailbox is gone and cannot say which of its folders they were).
const WELL_KNOWN_MAIL: &[(&str, &str)] = &[
    ("inbox", "Inbox"),
    ("drafts", "Drafts"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("junkemail", "Junk Email"),
    ("archive", "Archive"),
    ("outbox", "Outbox"),
    ("conversationhistory", "Conversation History"),
];

/// Message properties copied from the stored Graph JSON into the create body.
const MESSAGE_COPY: &[&str] = &[
    "subject",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "importance",
    "internetMessageId",
    "isRead",
    "inferenceClassification",
];

/// Properties Graph computes and refuses (or ignores) on create/update.
const READ_ONLY: &[&str] = &[
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "parentFolderId",
    "bodyPreview",
    "hasAttachments",
    "iCalUId",
    "uid",
    "isCancelled",
    "isDraft",
    "isOrganizer",
    "onlineMeeting",
    "onlineMeetingUrl",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "responseStatus",
    "seriesMasterId",
    "type",
    "webLink",
    "cancelledOccurrences",
    "exceptionOccurrences",
    "calendar",
    "attendees",
    "checklistItems",
    "attachments",
    "photo",
    "flag@odata.type",
];

/// Restores the mailbox snapshot `ctx.snapshot` (whole, or what
/// `ctx.selection` names) into `ctx.destination` or the snapshot's own
/// mailbox.
pub async fn restore_mailbox(ctx: &RestoreCtx<'_>) -> Result<RestoreReport> {
    if ctx.options.mode == RestoreMode::Duplicate {
        return Err(EngineError::Invalid(
            "the duplicate restore type is for drives and sites; restore a mailbox as \
             non-destructive, replace or bypass"
                .into(),
        ));
    }
    let kind = SnapshotKind::of(ctx.snapshot)?;
    if kind != SnapshotKind::Mailbox {
        return Err(EngineError::Invalid(format!(
            "snapshot {} is not a mailbox backup",
            ctx.snapshot.id.0
        )));
    }
    ctx.selection
        .validate(kind.sub_services())
        .map_err(EngineError::Invalid)?;
    let source = ctx
        .snapshot
        .meta
        .get("mailbox")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let dest = match ctx.destination {
        Some(d) => d.to_string(),
        None if !source.is_empty() => source.clone(),
        None => {
            return Err(EngineError::Invalid(format!(
                "snapshot {} does not name its mailbox; choose a destination mailbox",
                ctx.snapshot.id.0
            )));
        }
    };
    let tally = Tally::new(ctx);
    let r = Restorer {
        ctx,
        graph: ctx.graph,
        snap: ctx.snapshot,
        same_mailbox: dest == source,
        source,
        dest,
        tally,
        folder_name: ctx.options.restore_folder_name(),
    };
    r.check_destination().await?;
    let mut location = None;
    for sub in [
        SubService::Mail,
        SubService::Contacts,
        SubService::Calendar,
        SubService::Tasks,
    ] {
        if !ctx.selection.touches(sub) || ctx.cancel.is_cancelled() {
            continue;
        }
        ctx.progress.set_stage(sub.as_str());
        let done = match sub {
            SubService::Mail => r.mail().await,
            SubService::Contacts => r.contacts().await,
            SubService::Calendar => r.calendar().await,
            _ => r.tasks().await,
        };
        match done {
            Ok(()) => {}
            Err(e @ EngineError::EntityGone(_)) => return Err(e),
            Err(EngineError::Graph(g)) if g.status() == Some(401) || g.status() == Some(403) => {
                return Err(EngineError::Graph(g));
            }
            // The sub-service as a whole failed: it counts as a failed item,
            // so the report is Partial or Failed rather than Success.
            Err(e) => r.tally.item(
                sub.as_str(),
                sub.as_str(),
                ItemOutcome::Failed,
                Some(format!("{sub} could not be restored: {e}")),
                0,
            ),
        }
    }
    if ctx.options.mode == RestoreMode::NonDestructive {
        location = Some(r.folder_name.clone());
    }
    let mut report = r.tally.report(ctx.cancel.is_cancelled());
    report.location = location;
    report.destination = Some(r.dest.clone());
    Ok(report)
}

/// A destination container: the mailbox's default one of its kind, or one by id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// Well-known name (mail) or the default folder/calendar/list.
    Known(String),
    /// A Graph id.
    Id(String),
}

impl Place {
    fn seg(&self) -> &str {
        match self {
            Place::Known(s) | Place::Id(s) => s,
        }
    }
}

/// One item of a folder to restore.
struct Job {
    path: String,
    id: String,
}

/// Where the messages of one snapshot folder go.
struct Target<'p> {
    place: &'p Place,
    existing: &'p Existing,
    /// A folder of the destination's Recoverable Items: messages are created
    /// elsewhere and put there, and nothing there is replaced.
    dumpster: Option<Dumpster>,
}

/// The folders of Recoverable Items a mailbox backup keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dumpster {
    /// Soft-deleted mail.
    Deletions,
    /// Mail deleted from Deletions (or permanently), kept until purged or
    /// for as long as a hold lasts.
    Purges,
    /// Originals of items changed under a hold; Exchange alone writes there.
    Versions,
}

impl Dumpster {
    fn of(folder: &Value) -> Option<Self> {
        match str_at(folder, "wellKnownName") {
            "recoverableitemsdeletions" => Some(Self::Deletions),
            "recoverableitemspurges" => Some(Self::Purges),
            "recoverableitemsversions" => Some(Self::Versions),
            _ => None,
        }
    }

    fn well_known(self) -> &'static str {
        match self {
            Self::Deletions => "recoverableitemsdeletions",
            Self::Purges => "recoverableitemspurges",
            Self::Versions => "recoverableitemsversions",
        }
    }

    /// The visible folder a non-destructive restore puts its mail in.
    fn visible_name(self) -> &'static str {
        match self {
            Self::Deletions => "Recoverable Items",
            Self::Purges => "Recoverable Items (Purges)",
            Self::Versions => "Recoverable Items (Versions)",
        }
    }
}

struct Restorer<'a> {
    ctx: &'a RestoreCtx<'a>,
    graph: &'a GraphClient,
    snap: &'a SnapshotInfo,
    source: String,
    dest: String,
    same_mailbox: bool,
    tally: Tally<'a>,
    folder_name: String,
}

/// A failure of one item, as a person reads it.
type ItemResult<T> = std::result::Result<T, String>;

/// `v` without what Graph refuses on create, nulls and OData annotations.
fn writable(v: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Value::Object(m) = v {
        for (k, x) in m {
            if READ_ONLY.contains(&k.as_str()) || k.starts_with('@') || k.contains("@odata") {
                continue;
            }
            if x.is_null() {
                continue;
            }
            out.insert(k.clone(), x.clone());
        }
    }
    out
}

impl<'a> Restorer<'a> {
    fn u(&self) -> &str {
        &self.dest
    }

    fn mode(&self) -> RestoreMode {
        self.ctx.options.mode
    }

    /// The name a container the restore creates gets.
    fn created_name(&self, name: &str) -> String {
        if self.ctx.options.mark_restored {
            format!("{name} (Restored)")
        } else {
            name.to_string()
        }
    }

    async fn send(&self, req: Request) -> std::result::Result<graph::Response, graph::GraphError> {
        self.tally.requests(1);
        self.graph
            .send(req.header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1))
            .await
    }

    async fn send_json(&self, method: Method, url: String, body: &Value) -> ItemResult<Value> {
        let r = self
            .send(Request::json(method, url, body))
            .await
            .map_err(|e| graph_reason(&e))?;
        if r.body.is_empty() {
            return Ok(Value::Null);
        }
        r.json::<Value>().map_err(|e| e.to_string())
    }

    async fn get_all(&self, url: String) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(Request::get(url).header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1));
        while let Some(r) = next.take() {
            self.tally.requests(1);
            let page = self.graph.page(r).await?;
            out.extend(page.items);
            next = page
                .next_link
                .map(|n| Request::get(n).header(IMMUTABLE_IDS.0, IMMUTABLE_IDS.1));
        }
        Ok(out)
    }

    /// The destination mailbox must exist: a deleted user is re-created (or
    /// another chosen) first.
    async fn check_destination(&self) -> Result<()> {
        match self
            .send(Request::get(format!("/users/{}?$select=id", self.dest)))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Err(EngineError::EntityGone(format!(
                "mailbox {} (re-create the user or choose another mailbox to restore into)",
                self.dest
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The folders (node name, Graph JSON) of a sub-service in the snapshot.
    async fn snapshot_folders(&self, root: &str) -> Result<Vec<(String, Value)>> {
        let entries = match self.ctx.vault.list_folder(self.snap, root).await {
            Ok(e) => e,
            Err(vault::Error::NoSuchEntry(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for e in entries {
            if !e.node.is_folder() {
                continue;
            }
            let meta = match serde_json::from_slice::<Value>(e.node.meta()) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    // Its items may still be fine: restore them under the folder's id.
                    self.tally.note(format!(
                        "the stored description of folder {root}/{} is damaged; its items \
                         are restored into a folder named by its id",
                        e.name
                    ));
                    json!({"id": e.name, "displayName": e.name})
                }
            };
            out.push((e.name, meta));
        }
        Ok(out)
    }

    /// The items of a snapshot folder that the selection covers.
    async fn selected_items(&self, folder_path: &str, whole: bool) -> Result<Vec<Job>> {
        let entries = self.ctx.vault.list_folder(self.snap, folder_path).await?;
        let mut bytes = 0;
        let jobs: Vec<Job> = entries
            .into_iter()
            .filter(|e| !e.node.is_folder())
            .filter(|e| {
                whole
                    || self
                        .ctx
                        .selection
                        .covers(&format!("{folder_path}/{}", e.name))
            })
            .map(|e| {
                bytes += e.node.size();
                Job {
                    path: format!("{folder_path}/{}", e.name),
                    id: e.name,
                }
            })
            .collect();
        self.tally.plan(jobs.len() as u64, bytes);
        Ok(jobs)
    }

    fn plan_folders(
        &self,
        root: &str,
        folders: &[(String, Value)],
    ) -> (HashSet<String>, HashSet<String>) {
        plan_folders(self.ctx.selection, root, folders)
    }

    fn parents_first(folders: &[(String, Value)]) -> Vec<(String, Value)> {
        parents_first(folders)
    }

    /// Runs `f` on each job with the restore's concurrency; a job that
    /// starts after cancellation does nothing.
    async fn for_each<F, Fut>(&self, jobs: Vec<Job>, f: F)
    where
        F: Fn(Job) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let f = &f;
        futures::stream::iter(jobs)
            .map(|j| async move {
                if !self.ctx.cancel.is_cancelled() {
                    f(j).await;
                }
            })
            .buffer_unordered(self.ctx.options.concurrency.max(1))
            .collect::<Vec<()>>()
            .await;
    }

    // ------------------------------------------------------------ mail

    /// Which snapshot folders were which well-known folder, by asking the
    /// original mailbox (when it still exists) or by display name.
    async fn well_known_of(&self, folders: &[(String, Value)]) -> HashMap<String, String> {
        let mut out = HashMap::new();
        if !self.source.is_empty() {
            let items: Vec<BatchItem> = WELL_KNOWN_MAIL
                .iter()
                .map(|(wk, _)| {
                    let mut b = BatchItem::get(
                        *wk,
                        format!("/users/{}/mailFolders/{wk}?$select=id", self.source),
                    );
                    b.headers
                        .insert(IMMUTABLE_IDS.0.into(), json!(IMMUTABLE_IDS.1));
                    b
                })
                .collect();
            self.tally.requests(items.len() as u64);
            if let Ok(results) = self.graph.batch(items).await {
                for r in results {
                    if r.is_success()
                        && let Some(id) = id_of(&r.body)
                    {
                        out.insert(id.to_string(), r.id.clone());
                    }
                }
            }
        }
        if out.is_empty() {
            let ids: HashSet<&str> = folders.iter().map(|(n, _)| n.as_str()).collect();
            for (n, v) in folders {
                if ids.contains(str_at(v, "parentFolderId")) {
                    continue;
                }
                let name = str_at(v, "displayName");
                if let Some((wk, _)) = WELL_KNOWN_MAIL
                    .iter()
                    .find(|(_, d)| d.eq_ignore_ascii_case(name))
                {
                    out.insert(n.clone(), wk.to_string());
                }
            }
        }
        out
    }

    async fn mail_children(&self, parent: Option<&Place>) -> Result<Vec<Value>> {
        let u = self.u();
        let url = match parent {
            None => format!("/users/{u}/mailFolders?$top=250&includeHiddenFolders=true"),
            Some(p) => format!(
                "/users/{u}/mailFolders/{}/childFolders?$top=250&includeHiddenFolders=true",
                p.seg()
            ),
        };
        self.get_all(url).await
    }

    /// The child of `parent` named `name`, created (hidden when `hidden`)
    /// when missing.
    async fn mail_folder(&self, parent: Option<&Place>, name: &str, hidden: bool) -> Result<Place> {
        if let Some(f) = self
            .mail_children(parent)
            .await?
            .into_iter()
            .find(|f| str_at(f, "displayName").eq_ignore_ascii_case(name))
            && let Some(id) = id_of(&f)
        {
            return Ok(Place::Id(id.to_string()));
        }
        let created_name = self.created_name(name);
        if created_name != name
            && let Some(f) = self
                .mail_children(parent)
                .await?
                .into_iter()
                .find(|f| str_at(f, "displayName").eq_ignore_ascii_case(&created_name))
            && let Some(id) = id_of(&f)
        {
            return Ok(Place::Id(id.to_string()));
        }
        let u = self.u();
        let url = match parent {
            None => format!("/users/{u}/mailFolders"),
            Some(p) => format!("/users/{u}/mailFolders/{}/childFolders", p.seg()),
        };
        let mut body = json!({ "displayName": created_name });
        if hidden {
            body["isHidden"] = json!(true);
        }
        let v = self
            .send_json(Method::POST, url, &body)
            .await
            .map_err(EngineError::Invalid)?;
        self.tally.container_created();
        id_of(&v)
            .map(|id| Place::Id(id.to_string()))
            .ok_or_else(|| EngineError::Invalid("Graph created a folder without an id".into()))
    }

    async fn mail(&self) -> Result<()> {
        let folders = self.snapshot_folders("mail").await?;
        let (whole, needed) = self.plan_folders("mail", &folders);
        let wk = self.well_known_of(&folders).await;
        let root = match self.mode() {
            RestoreMode::NonDestructive if !needed.is_empty() => {
                Some(self.mail_folder(None, &self.folder_name, false).await?)
            }
            _ => None,
        };
        let ids: HashSet<&str> = folders.iter().map(|(n, _)| n.as_str()).collect();
        let mut mapped: HashMap<String, Place> = HashMap::new();
        let mut hidden_restored = 0;
        for (fid, meta) in Self::parents_first(&folders) {
            if !needed.contains(&fid) || self.ctx.cancel.is_cancelled() {
                continue;
            }
            let name = str_at(&meta, "displayName").to_string();
            let parent_id = str_at(&meta, "parentFolderId");
            let parent = if ids.contains(parent_id) {
                match mapped.get(parent_id) {
                    Some(p) => Some(p.clone()),
                    None => continue,
                }
            } else {
                None
            };
            let hidden = meta.get("isHidden").and_then(Value::as_bool) == Some(true);
            let dumpster = Dumpster::of(&meta);
            // Recoverable Items go back to the destination's own (soft-deleted
            // mail where Outlook's "Recover deleted items" finds it); a
            // non-destructive restore shows them in folders of their own.
            let (place, dumpster) = match (&root, parent, wk.get(&fid), dumpster) {
                (Some(r), _, _, Some(d)) => (
                    self.mail_folder(Some(r), d.visible_name(), false).await?,
                    None,
                ),
                (None, _, _, Some(d)) => (Place::Known(d.well_known().into()), Some(d)),
                (None, None, Some(known), None) => (Place::Known(known.clone()), None),
                (Some(r), None, _, None) => (self.mail_folder(Some(r), &name, hidden).await?, None),
                (_, p, _, None) => (self.mail_folder(p.as_ref(), &name, hidden).await?, None),
            };
            if hidden && dumpster.is_none() && root.is_none() {
                hidden_restored += 1;
            }
            mapped.insert(fid.clone(), place.clone());
            let path = format!("mail/{fid}");
            let jobs = self.selected_items(&path, whole.contains(&fid)).await?;
            if jobs.is_empty() {
                continue;
            }
            if dumpster == Some(Dumpster::Versions) {
                for j in jobs {
                    self.tally.item(
                        &j.path,
                        &j.id,
                        ItemOutcome::Skipped,
                        Some(
                            "Exchange alone writes Recoverable Items\\Versions; restore \
                             non-destructively or export with legal holds to get it"
                                .into(),
                        ),
                        0,
                    );
                }
                continue;
            }
            let existing = self.existing_messages(&place).await?;
            let target = Target {
                place: &place,
                existing: &existing,
                dumpster,
            };
            let target = &target;
            self.for_each(jobs, |j| async move {
                self.restore_message(j, target).await;
            })
            .await;
        }
        if hidden_restored > 0 {
            self.tally.note(format!(
                "{hidden_restored} hidden folder(s) were restored as hidden folders: Outlook \
                 does not show them, as it did not before"
            ));
        }
        Ok(())
    }

    /// The messages of a destination folder: (by id, by internetMessageId).
    async fn existing_messages(&self, place: &Place) -> Result<Existing> {
        let items = self
            .get_all(format!(
                "/users/{}/mailFolders/{}/messages?$select=id,internetMessageId,subject,isRead,\
                 flag,categories,importance,hasAttachments&$top=500",
                self.u(),
                place.seg()
            ))
            .await?;
        Ok(Existing::new(items, |v| {
            Some(str_at(v, "internetMessageId").to_string()).filter(|s| !s.is_empty())
        }))
    }

    async fn restore_message(&self, job: Job, target: &Target<'_>) {
        let (place, existing) = (target.place, target.existing);
        let (meta, mime) = match self.read_message(&job.path).await {
            Ok(x) => x,
            Err(reason) => {
                self.tally
                    .item(&job.path, &job.id, ItemOutcome::Failed, Some(reason), 0);
                return;
            }
        };
        let subject = str_at(&meta, "subject").to_string();
        let name = if subject.is_empty() {
            "(no subject)".to_string()
        } else {
            subject
        };
        let key = str_at(&meta, "internetMessageId").to_string();
        let found = existing.find(self.same_mailbox.then_some(job.id.as_str()), Some(&key));
        let mut outcome = ItemOutcome::Restored;
        if let Some(old) = found {
            if target.dumpster.is_some() {
                // Exchange keeps Recoverable Items for itself: what is there
                // is neither changed nor deleted by a restore.
                self.tally.item(
                    &job.path,
                    &name,
                    ItemOutcome::Skipped,
                    Some("already in Recoverable Items".into()),
                    0,
                );
                return;
            }
            match self.mode() {
                RestoreMode::Bypass | RestoreMode::NonDestructive => {
                    self.tally.item(
                        &job.path,
                        &name,
                        ItemOutcome::Skipped,
                        Some("already in the mailbox".into()),
                        0,
                    );
                    return;
                }
                _ => {}
            }
            let old_id = str_at(old, "id").to_string();
            // Same content: read state, flag and categories are all that can differ.
            if same_content(old, &meta) {
                let mut patch = Map::new();
                for k in ["isRead", "flag", "categories"] {
                    if let Some(v) = meta.get(k) {
                        patch.insert(k.into(), v.clone());
                    }
                }
                add_tag(&mut patch, self.ctx.options.tag.as_deref());
                let r = self
                    .send_json(
                        Method::PATCH,
                        format!("/users/{}/messages/{old_id}", self.u()),
                        &Value::Object(patch),
                    )
                    .await;
                let (o, d) = match r {
                    Ok(_) => (ItemOutcome::Overwritten, Some(old_id)),
                    Err(e) => (ItemOutcome::Failed, Some(e)),
                };
                self.tally.item(&job.path, &name, o, d, 0);
                return;
            }
            if let Err(e) = self
                .send(Request::delete(format!(
                    "/users/{}/messages/{old_id}",
                    self.u()
                )))
                .await
                && !e.is_not_found()
            {
                self.tally.item(
                    &job.path,
                    &name,
                    ItemOutcome::Failed,
                    Some(format!(
                        "the existing message could not be replaced: {}",
                        graph_reason(&e)
                    )),
                    0,
                );
                return;
            }
            outcome = ItemOutcome::Overwritten;
        }
        let bytes = mime.len() as u64;
        let created = match target.dumpster {
            Some(d) => self.create_in_recoverable_items(d, &meta, &mime).await,
            None => self.create_message(place, &meta, &mime).await,
        };
        match created {
            Ok(id) => self.tally.item(&job.path, &name, outcome, Some(id), bytes),
            Err(e) => self
                .tally
                .item(&job.path, &name, ItemOutcome::Failed, Some(e), 0),
        }
    }

    /// A message back into a folder of Recoverable Items, created in
    /// Deleted Items first. Into Deletions it is moved (Graph's move takes
    /// any well-known folder name); into Purges it goes through
    /// `permanentDelete`, which Graph documents as placing a message in the
    /// Purges folder. A message that cannot be put there is removed again.
    async fn create_in_recoverable_items(
        &self,
        to: Dumpster,
        meta: &Value,
        mime: &[u8],
    ) -> ItemResult<String> {
        let id = self
            .create_message(&Place::Known("deleteditems".into()), meta, mime)
            .await?;
        let u = self.u();
        let put = match to {
            Dumpster::Purges => self
                .send(Request::new(
                    Method::POST,
                    format!("/users/{u}/messages/{id}/permanentDelete"),
                ))
                .await
                .map(|_| Value::Null)
                .map_err(|e| graph_reason(&e)),
            _ => {
                self.send_json(
                    Method::POST,
                    format!("/users/{u}/messages/{id}/move"),
                    &json!({ "destinationId": to.well_known() }),
                )
                .await
            }
        };
        match put {
            Ok(v) => Ok(id_of(&v).unwrap_or(&id).to_string()),
            Err(e) => {
                let _ = self
                    .send(Request::delete(format!(
                        "/users/{}/messages/{id}",
                        self.u()
                    )))
                    .await;
                Err(format!(
                    "could not be put back into Recoverable Items ({}): {e}",
                    to.well_known()
                ))
            }
        }
    }

    async fn read_message(&self, path: &str) -> ItemResult<(Value, Vec<u8>)> {
        let node = self
            .ctx
            .vault
            .lookup(self.snap, path)
            .await
            .map_err(|e| format!("could not be read from the backup: {e}"))?;
        let meta: Value = serde_json::from_slice(node.meta())
            .map_err(|e| format!("the stored message description is damaged: {e}"))?;
        if !meta.is_object() {
            return Err("the stored message description is damaged".into());
        }
        let mime = self
            .ctx
            .vault
            .read_item_bytes(self.snap, path)
            .await
            .map_err(|e| format!("could not be read from the backup: {e}"))?;
        Ok((meta, mime))
    }

    /// Creates the message (not a draft, with its dates, read state and
    /// flag) and its attachments; returns its id. On any failure the
    /// half-made message is deleted again.
    async fn create_message(&self, place: &Place, meta: &Value, mime: &[u8]) -> ItemResult<String> {
        let parsed = MessageParser::default()
            .parse(mime)
            .ok_or("the stored MIME content cannot be read")?;
        let mut body = Map::new();
        for k in MESSAGE_COPY {
            if let Some(v) = meta.get(*k).filter(|v| !v.is_null()) {
                body.insert((*k).to_string(), v.clone());
            }
        }
        if let Some(flag) = meta.get("flag").and_then(Value::as_object) {
            let f: Map<String, Value> = flag
                .iter()
                .filter(|(k, v)| !v.is_null() && !k.starts_with('@'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            body.insert("flag".into(), Value::Object(f));
        }
        if let Some(c) = meta.get("categories").filter(|c| c.is_array()) {
            body.insert("categories".into(), c.clone());
        }
        add_tag(&mut body, self.ctx.options.tag.as_deref());
        let (ctype, content) = if parsed.html_body_count() > 0
            && parsed
                .html_part(0)
                .is_some_and(|p| p.is_content_type("text", "html"))
        {
            ("html", parsed.body_html(0).unwrap_or_default().into_owned())
        } else {
            ("text", parsed.body_text(0).unwrap_or_default().into_owned())
        };
        body.insert(
            "body".into(),
            json!({"contentType": ctype, "content": content}),
        );
        let is_draft = meta.get("isDraft").and_then(Value::as_bool) == Some(true);
        let is_read = meta.get("isRead").and_then(Value::as_bool).unwrap_or(true);
        // MSGFLAG_READ = 1, MSGFLAG_UNSENT = 8.
        let flags = u32::from(is_read) | if is_draft { 8 } else { 0 };
        let mut ext = vec![json!({"id": "Integer 0x0E07", "value": flags.to_string()})];
        if let Some(t) = meta.get("receivedDateTime").and_then(Value::as_str) {
            ext.push(json!({"id": "SystemTime 0x0E06", "value": t}));
        }
        if let Some(t) = meta.get("sentDateTime").and_then(Value::as_str) {
            ext.push(json!({"id": "SystemTime 0x0039", "value": t}));
        }
        body.insert("singleValueExtendedProperties".into(), Value::Array(ext));
        let created = self
            .send_json(
                Method::POST,
                format!("/users/{}/mailFolders/{}/messages", self.u(), place.seg()),
                &Value::Object(body),
            )
            .await?;
        let id = id_of(&created)
            .ok_or("Microsoft Graph created the message without an id")?
            .to_string();
        for part in parsed.attachments() {
            let name = part
                .attachment_name()
                .map(str::to_string)
                .or_else(|| {
                    part.message()
                        .and_then(|m| m.subject())
                        .map(|s| format!("{s}.eml"))
                })
                .unwrap_or_else(|| "attachment".into());
            let ct = part
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{s}", c.ctype()),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "application/octet-stream".into());
            let inline = part.content_disposition().is_some_and(|d| d.is_inline());
            let cid = part.content_id().map(str::to_string);
            let r = self
                .add_attachment(&id, &name, &ct, inline, cid, part.contents())
                .await;
            if let Err(e) = r {
                let _ = self
                    .send(Request::delete(format!(
                        "/users/{}/messages/{id}",
                        self.u()
                    )))
                    .await;
                return Err(format!("attachment {name:?} could not be written: {e}"));
            }
        }
        Ok(id)
    }

    async fn add_attachment(
        &self,
        msg: &str,
        name: &str,
        content_type: &str,
        inline: bool,
        content_id: Option<String>,
        data: &[u8],
    ) -> ItemResult<()> {
        use base64::Engine;
        let u = self.u();
        if data.len() < UPLOAD_SESSION_THRESHOLD {
            let mut a = json!({
                "@odata.type": "#microsoft.graph.fileAttachment",
                "name": name,
                "contentType": content_type,
                "isInline": inline,
                "contentBytes": base64::engine::general_purpose::STANDARD.encode(data),
            });
            if let Some(c) = content_id {
                a["contentId"] = json!(c);
            }
            self.send_json(
                Method::POST,
                format!("/users/{u}/messages/{msg}/attachments"),
                &a,
            )
            .await?;
            return Ok(());
        }
        let mut item = json!({
            "attachmentType": "file",
            "name": name,
            "size": data.len(),
            "contentType": content_type,
            "isInline": inline,
        });
        if let Some(c) = content_id {
            item["contentId"] = json!(c);
        }
        let session = self
            .send_json(
                Method::POST,
                format!("/users/{u}/messages/{msg}/attachments/createUploadSession"),
                &json!({"AttachmentItem": item}),
            )
            .await?;
        let url = str_at(&session, "uploadUrl").to_string();
        if url.is_empty() {
            return Err("the upload session has no upload URL".into());
        }
        let total = data.len();
        let mut at = 0;
        while at < total {
            let end = (at + UPLOAD_CHUNK).min(total);
            // The upload URL carries its own authorization: no bearer token
            // (the client's retries and budgets still apply).
            let req = Request::bytes(
                Method::PUT,
                &url,
                "application/octet-stream",
                bytes::Bytes::copy_from_slice(&data[at..end]),
            )
            .header("Content-Range", &format!("bytes {at}-{}/{total}", end - 1))
            .pre_authenticated();
            self.tally.requests(1);
            if let Err(e) = self.graph.send(req).await {
                // Abandon the session, so no half attachment remains.
                self.tally.requests(1);
                let _ = self
                    .graph
                    .send(Request::delete(&url).pre_authenticated())
                    .await;
                return Err(format!("upload failed: {}", graph_reason(&e)));
            }
            at = end;
        }
        Ok(())
    }

    // ------------------------------------------------------------ contacts

    async fn contacts(&self) -> Result<()> {
        let folders = self.snapshot_folders("contacts").await?;
        let (whole, needed) = self.plan_folders("contacts", &folders);
        let ids: HashSet<&str> = folders.iter().map(|(n, _)| n.as_str()).collect();
        let root = match self.mode() {
            RestoreMode::NonDestructive if !needed.is_empty() => Some(
                self.contact_folder(&Place::Known("contacts".into()), &self.folder_name)
                    .await?,
            ),
            _ => None,
        };
        let mut mapped: HashMap<String, Place> = HashMap::new();
        for (fid, meta) in Self::parents_first(&folders) {
            if !needed.contains(&fid) || self.ctx.cancel.is_cancelled() {
                continue;
            }
            let parent_id = str_at(&meta, "parentFolderId");
            let name = str_at(&meta, "displayName").to_string();
            let place = if ids.contains(parent_id) {
                let Some(p) = mapped.get(parent_id).cloned() else {
                    continue;
                };
                self.contact_folder(&p, &name).await?
            } else {
                // The default Contacts folder (its parent is the mailbox root).
                match &root {
                    Some(r) => self.contact_folder(r, &name).await?,
                    None => Place::Known("contacts".into()),
                }
            };
            mapped.insert(fid.clone(), place.clone());
            let path = format!("contacts/{fid}");
            let jobs = self.selected_items(&path, whole.contains(&fid)).await?;
            if jobs.is_empty() {
                continue;
            }
            let existing = Existing::new(
                self.get_all(format!("{}?$top=500", self.contacts_url(&place)))
                    .await?,
                contact_key,
            );
            let (existing, place) = (&existing, &place);
            self.for_each(jobs, |j| async move {
                let url = self.contacts_url(place);
                self.restore_json(j, &url, existing, Kind::Contact).await;
            })
            .await;
        }
        Ok(())
    }

    fn contacts_url(&self, place: &Place) -> String {
        match place {
            Place::Known(_) => format!("/users/{}/contacts", self.u()),
            Place::Id(id) => format!("/users/{}/contactFolders/{id}/contacts", self.u()),
        }
    }

    async fn contact_folder(&self, parent: &Place, name: &str) -> Result<Place> {
        let u = self.u();
        let url = match parent {
            Place::Known(_) => format!("/users/{u}/contactFolders"),
            Place::Id(id) => format!("/users/{u}/contactFolders/{id}/childFolders"),
        };
        let created_name = self.created_name(name);
        let children = self.get_all(format!("{url}?$top=250")).await?;
        if let Some(f) = children.iter().find(|f| {
            let n = str_at(f, "displayName");
            n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(&created_name)
        }) && let Some(id) = id_of(f)
        {
            return Ok(Place::Id(id.to_string()));
        }
        let v = self
            .send_json(Method::POST, url, &json!({"displayName": created_name}))
            .await
            .map_err(EngineError::Invalid)?;
        self.tally.container_created();
        id_of(&v)
            .map(|id| Place::Id(id.to_string()))
            .ok_or_else(|| EngineError::Invalid("Graph created a folder without an id".into()))
    }

    // ------------------------------------------------------------ calendar

    async fn calendar(&self) -> Result<()> {
        let cals = self.snapshot_folders("calendar").await?;
        let (whole, needed) = self.plan_folders("calendar", &cals);
        if needed.is_empty() {
            return Ok(());
        }
        let u = self.u().to_string();
        let dest_cals = self
            .get_all(format!("/users/{u}/calendars?$top=250"))
            .await?;
        let root = match self.mode() {
            RestoreMode::NonDestructive => Some(
                self.named_container(
                    &dest_cals,
                    "name",
                    &self.folder_name,
                    format!("/users/{u}/calendars"),
                    "name",
                )
                .await?,
            ),
            _ => None,
        };
        for (cid, meta) in cals {
            if !needed.contains(&cid) || self.ctx.cancel.is_cancelled() {
                continue;
            }
            let place = match &root {
                Some(r) => r.clone(),
                None if meta.get("isDefaultCalendar").and_then(Value::as_bool) == Some(true) => {
                    Place::Known("calendar".into())
                }
                None => {
                    self.named_container(
                        &dest_cals,
                        "name",
                        str_at(&meta, "name"),
                        format!("/users/{u}/calendars"),
                        "name",
                    )
                    .await?
                }
            };
            let path = format!("calendar/{cid}");
            let jobs = self.selected_items(&path, whole.contains(&cid)).await?;
            if jobs.is_empty() {
                continue;
            }
            let url = self.events_url(&place);
            let existing = Existing::new(
                self.get_all(format!("{url}?$select=id,iCalUId,subject,start&$top=500"))
                    .await?,
                event_key,
            );
            let (existing, url) = (&existing, &url);
            self.for_each(jobs, |j| async move {
                self.restore_json(j, url, existing, Kind::Event).await;
            })
            .await;
        }
        Ok(())
    }

    fn events_url(&self, place: &Place) -> String {
        match place {
            Place::Known(_) => format!("/users/{}/calendar/events", self.u()),
            Place::Id(id) => format!("/users/{}/calendars/{id}/events", self.u()),
        }
    }

    /// The container in `list` whose `key` is `name`, or a new one made by
    /// posting `{field: name}` to `create_url`.
    async fn named_container(
        &self,
        list: &[Value],
        key: &str,
        name: &str,
        create_url: String,
        field: &str,
    ) -> Result<Place> {
        let created_name = self.created_name(name);
        if let Some(c) = list.iter().find(|c| {
            let n = str_at(c, key);
            n.eq_ignore_ascii_case(name) || n.eq_ignore_ascii_case(&created_name)
        }) && let Some(id) = id_of(c)
        {
            return Ok(Place::Id(id.to_string()));
        }
        let v = self
            .send_json(Method::POST, create_url, &json!({ field: created_name }))
            .await
            .map_err(EngineError::Invalid)?;
        self.tally.container_created();
        id_of(&v)
            .map(|id| Place::Id(id.to_string()))
            .ok_or_else(|| EngineError::Invalid("Graph created a container without an id".into()))
    }

    // ------------------------------------------------------------ tasks

    async fn tasks(&self) -> Result<()> {
        let lists = self.snapshot_folders("tasks").await?;
        let (whole, needed) = self.plan_folders("tasks", &lists);
        if needed.is_empty() {
            return Ok(());
        }
        let u = self.u().to_string();
        let dest_lists = self.get_all(format!("/users/{u}/todo/lists")).await?;
        let root = match self.mode() {
            RestoreMode::NonDestructive => Some(
                self.named_container(
                    &dest_lists,
                    "displayName",
                    &self.folder_name,
                    format!("/users/{u}/todo/lists"),
                    "displayName",
                )
                .await?,
            ),
            _ => None,
        };
        for (lid, meta) in lists {
            if !needed.contains(&lid) || self.ctx.cancel.is_cancelled() {
                continue;
            }
            let place = match &root {
                Some(r) => r.clone(),
                None if str_at(&meta, "wellknownListName") == "defaultList" => match dest_lists
                    .iter()
                    .find(|l| str_at(l, "wellknownListName") == "defaultList")
                    .and_then(id_of)
                {
                    Some(id) => Place::Id(id.to_string()),
                    None => {
                        self.named_container(
                            &dest_lists,
                            "displayName",
                            str_at(&meta, "displayName"),
                            format!("/users/{u}/todo/lists"),
                            "displayName",
                        )
                        .await?
                    }
                },
                None => {
                    self.named_container(
                        &dest_lists,
                        "displayName",
                        str_at(&meta, "displayName"),
                        format!("/users/{u}/todo/lists"),
                        "displayName",
                    )
                    .await?
                }
            };
            let path = format!("tasks/{lid}");
            let jobs = self.selected_items(&path, whole.contains(&lid)).await?;
            if jobs.is_empty() {
                continue;
            }
            let url = format!("/users/{u}/todo/lists/{}/tasks", place.seg());
            let existing = Existing::new(self.get_all(url.clone()).await?, |v| {
                Some(str_at(v, "title").to_string()).filter(|s| !s.is_empty())
            });
            let (existing, url) = (&existing, &url);
            self.for_each(jobs, |j| async move {
                self.restore_json(j, url, existing, Kind::Task).await;
            })
            .await;
        }
        Ok(())
    }

    // ------------------------------------------------------------ JSON items

    /// Restores one contact, event or task stored as Graph JSON into the
    /// collection at `url`.
    async fn restore_json(&self, job: Job, url: &str, existing: &Existing, kind: Kind) {
        let (v, bytes): (Value, u64) =
            match self.ctx.vault.read_item_bytes(self.snap, &job.path).await {
                Err(e) => {
                    self.tally.item(
                        &job.path,
                        &job.id,
                        ItemOutcome::Failed,
                        Some(format!("could not be read from the backup: {e}")),
                        0,
                    );
                    return;
                }
                Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v @ Value::Object(_)) => (v, bytes.len() as u64),
                    Ok(_) | Err(_) => {
                        self.tally.item(
                            &job.path,
                            &job.id,
                            ItemOutcome::Failed,
                            Some(format!("the stored {} is damaged", kind.noun())),
                            0,
                        );
                        return;
                    }
                },
            };
        let name = kind.name_of(&v);
        let key = kind.key_of(&v);
        let found = existing
            .find(self.same_mailbox.then_some(job.id.as_str()), key.as_deref())
            .or_else(|| existing.find(None, v.get("iCalUId").and_then(Value::as_str)));
        let mut body = writable(&v);
        add_tag(&mut body, self.ctx.options.tag.as_deref());
        if kind == Kind::Event {
            attendees_into_body(&mut body, &v);
        }
        if let Some(old) = found {
            if self.mode() != RestoreMode::Replace {
                self.tally.item(
                    &job.path,
                    &name,
                    ItemOutcome::Skipped,
                    Some("already in the mailbox".into()),
                    0,
                );
                return;
            }
            let old_id = str_at(old, "id");
            if kind == Kind::Event {
                let (o, d, b) = match self.replace_event(old_id, &v, url).await {
                    Ok((true, d)) => (ItemOutcome::Overwritten, d, bytes),
                    Ok((false, d)) => (ItemOutcome::Skipped, d, 0),
                    Err(e) => (ItemOutcome::Failed, e, 0),
                };
                self.tally.item(&job.path, &name, o, Some(d), b);
                return;
            }
            if kind == Kind::Task {
                // To Do refuses null for some properties: send what the snapshot has.
                body.remove("id");
            }
            let r = self
                .send_json(
                    Method::PATCH,
                    self.item_url(kind, url, old_id),
                    &Value::Object(body),
                )
                .await;
            let (o, d) = match r {
                Ok(_) => (ItemOutcome::Overwritten, Some(old_id.to_string())),
                Err(e) => (ItemOutcome::Failed, Some(e)),
            };
            self.tally.item(&job.path, &name, o, d, bytes);
            return;
        }
        let created = match self
            .send_json(Method::POST, url.to_string(), &Value::Object(body))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.tally
                    .item(&job.path, &name, ItemOutcome::Failed, Some(e), 0);
                return;
            }
        };
        let Some(new_id) = id_of(&created).map(str::to_string) else {
            self.tally.item(
                &job.path,
                &name,
                ItemOutcome::Failed,
                Some("Microsoft Graph created the item without an id".into()),
                0,
            );
            return;
        };
        let rest = match kind {
            Kind::Event => self.series().apply(&new_id, &v).await.map(|_| ()),
            Kind::Task => self.add_checklist(url, &new_id, &v).await,
            Kind::Contact => Ok(()),
        };
        match rest {
            Ok(()) => self
                .tally
                .item(&job.path, &name, ItemOutcome::Restored, Some(new_id), bytes),
            Err(e) => {
                // Whole or nothing: take the half-made item away again.
                let _ = self
                    .send(Request::delete(self.item_url(kind, url, &new_id)))
                    .await;
                self.tally
                    .item(&job.path, &name, ItemOutcome::Failed, Some(e), 0);
            }
        }
    }

    /// The mailbox's series writer.
    fn series(&self) -> Series<'_> {
        Series {
            graph: self.graph,
            tally: &self.tally,
            owner: format!("/users/{}", self.u()),
            fields: writable,
            tag: self.ctx.options.tag.as_deref(),
            immutable_ids: true,
        }
    }

    /// Replace for an event that is still in the calendar: only what differs
    /// from the snapshot is patched (Graph sends an update to a meeting's
    /// attendees for every patch of its organizer's copy), then a series gets
    /// the snapshot's occurrences. Returns whether anything was written, and
    /// what to log.
    async fn replace_event(
        &self,
        old_id: &str,
        v: &Value,
        url: &str,
    ) -> ItemResult<(bool, String)> {
        let u = self.u();
        let cur: Value = self
            .send(Request::get(format!("/users/{u}/events/{old_id}")))
            .await
            .map_err(|e| graph_reason(&e))?
            .json()
            .map_err(|e| e.to_string())?;
        let is_meeting = cur
            .get("attendees")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let mut body = writable(v);
        add_tag(&mut body, self.ctx.options.tag.as_deref());
        if !is_meeting {
            // The copy in the calendar has no attendees of its own.
            attendees_into_body(&mut body, v);
        }
        let diff = changed_fields(&body, &cur);
        let patched = !diff.is_empty();
        if patched {
            self.send_json(
                Method::PATCH,
                format!("/users/{u}/events/{old_id}"),
                &Value::Object(diff),
            )
            .await?;
        }
        if v.get("recurrence").is_none_or(Value::is_null) {
            let d = if patched {
                old_id.to_string()
            } else {
                "already as in the backup".to_string()
            };
            return Ok((patched, d));
        }
        let series = self.series();
        match series.reconcile(old_id, v, url).await? {
            Reconcile::Done(r) => {
                let mut d = r.describe();
                let changed = patched || r.changed();
                if d.is_empty() {
                    d.push(if changed {
                        old_id.to_string()
                    } else {
                        "already as in the backup".to_string()
                    });
                }
                Ok((changed, d.join("; ")))
            }
            Reconcile::Recreate => {
                // Occurrences were cancelled since the backup and nobody is
                // invited: the series is made again from the snapshot.
                match self
                    .send(Request::delete(format!("/users/{u}/events/{old_id}")))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(graph_reason(&e)),
                }
                let mut body = writable(v);
                add_tag(&mut body, self.ctx.options.tag.as_deref());
                attendees_into_body(&mut body, v);
                let created = self
                    .send_json(Method::POST, url.to_string(), &Value::Object(body))
                    .await?;
                let new_id = id_of(&created)
                    .ok_or("Microsoft Graph created the series without an id")?
                    .to_string();
                if let Err(e) = series.apply(&new_id, v).await {
                    let _ = self
                        .send(Request::delete(format!("/users/{u}/events/{new_id}")))
                        .await;
                    return Err(e);
                }
                Ok((
                    true,
                    format!(
                        "series made again as {new_id}: occurrences cancelled since the backup \
                         cannot be brought back any other way"
                    ),
                ))
            }
        }
    }

    /// The URL of one item of the collection at `url` (events and contacts
    /// are addressed through the mailbox-wide collections, which take any
    /// calendar's or folder's items).
    fn item_url(&self, kind: Kind, url: &str, id: &str) -> String {
        match kind {
            Kind::Event => format!("/users/{}/events/{id}", self.u()),
            Kind::Contact => format!("/users/{}/contacts/{id}", self.u()),
            Kind::Task => format!("{url}/{id}"),
        }
    }

    async fn add_checklist(&self, url: &str, task: &str, v: &Value) -> ItemResult<()> {
        let Some(items) = v.get("checklistItems").and_then(Value::as_array) else {
            return Ok(());
        };
        for c in items {
            let mut body = Map::new();
            for k in ["displayName", "isChecked"] {
                if let Some(x) = c.get(k).filter(|x| !x.is_null()) {
                    body.insert(k.into(), x.clone());
                }
            }
            self.send_json(
                Method::POST,
                format!("{url}/{task}/checklistItems"),
                &Value::Object(body),
            )
            .await?;
        }
        Ok(())
    }
}

/// The kinds of JSON items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Contact,
    Event,
    Task,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Contact => "contact",
            Kind::Event => "event",
            Kind::Task => "task",
        }
    }

    fn name_of(self, v: &Value) -> String {
        let n = match self {
            Kind::Contact => str_at(v, "displayName"),
            Kind::Event => str_at(v, "subject"),
            Kind::Task => str_at(v, "title"),
        };
        if n.is_empty() {
            format!("(unnamed {})", self.noun())
        } else {
            n.to_string()
        }
    }

    fn key_of(self, v: &Value) -> Option<String> {
        match self {
            Kind::Contact => contact_key(v),
            Kind::Event => event_key(v),
            Kind::Task => Some(str_at(v, "title").to_string()).filter(|s| !s.is_empty()),
        }
    }
}

/// Display name + first e-mail address, lower-cased.
fn contact_key(v: &Value) -> Option<String> {
    let name = str_at(v, "displayName").to_lowercase();
    let email = v
        .get("emailAddresses")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .map(|e| str_at(e, "address").to_lowercase())
        .unwrap_or_default();
    (!name.is_empty() || !email.is_empty()).then(|| format!("{name}\u{1f}{email}"))
}

/// Subject + start (an event created by a restore gets a new iCalUId, so
/// the iCalUId alone cannot recognise it).
fn event_key(v: &Value) -> Option<String> {
    let subject = str_at(v, "subject");
    let start = v.get("start")?;
    let at = str_at(start, "dateTime");
    let at = at.get(..19).unwrap_or(at);
    Some(format!(
        "{subject}\u{1f}{at}\u{1f}{}",
        str_at(start, "timeZone")
    ))
}

/// Whether a destination message has the snapshot message's content (only
/// read state, flag and categories may differ).
fn same_content(dest: &Value, snap: &Value) -> bool {
    ["subject", "importance", "hasAttachments"]
        .iter()
        .all(|k| dest.get(*k) == snap.get(*k))
}

/// What a destination container holds, indexed by id and by stable key.
struct Existing {
    by_id: HashMap<String, Value>,
    by_key: HashMap<String, String>,
}

impl Existing {
    fn new(items: Vec<Value>, key: impl Fn(&Value) -> Option<String>) -> Self {
        let mut by_id = HashMap::new();
        let mut by_key = HashMap::new();
        for v in items {
            let Some(id) = id_of(&v).map(str::to_string) else {
                continue;
            };
            if let Some(k) = key(&v).filter(|k| !k.is_empty()) {
                by_key.entry(k).or_insert_with(|| id.clone());
            }
            if let Some(ical) = v.get("iCalUId").and_then(Value::as_str) {
                by_key.entry(ical.to_string()).or_insert_with(|| id.clone());
            }
            by_id.insert(id, v);
        }
        Self { by_id, by_key }
    }

    fn find(&self, id: Option<&str>, key: Option<&str>) -> Option<&Value> {
        if let Some(v) = id.and_then(|i| self.by_id.get(i)) {
            return Some(v);
        }
        let k = key.filter(|k| !k.is_empty())?;
        self.by_key.get(k).and_then(|id| self.by_id.get(id))
    }
}

/// Which folders are restored whole (selected themselves or below a
/// selected folder in the hierarchy) and which are needed (they or a
/// descendant hold something selected). Returns (whole, needed).
pub(crate) fn plan_folders(
    selection: &super::Selection,
    root: &str,
    folders: &[(String, Value)],
) -> (HashSet<String>, HashSet<String>) {
    let ids: HashSet<&str> = folders.iter().map(|(n, _)| n.as_str()).collect();
    let parent_of: HashMap<&str, &str> = folders
        .iter()
        .filter_map(|(n, v)| {
            let p = str_at(v, "parentFolderId");
            ids.contains(p).then_some((n.as_str(), p))
        })
        .collect();
    let chain = |start: &str| {
        let mut out = vec![start.to_string()];
        let mut cur = start;
        for _ in 0..64 {
            match parent_of.get(cur) {
                Some(p) => {
                    out.push(p.to_string());
                    cur = p;
                }
                None => break,
            }
        }
        out
    };
    let mut whole = HashSet::new();
    let mut needed = HashSet::new();
    for (n, _) in folders {
        let c = chain(n);
        if c.iter().any(|f| selection.covers(&format!("{root}/{f}"))) {
            whole.insert(n.clone());
        }
        if selection.reaches(&format!("{root}/{n}")) {
            needed.extend(c);
        }
    }
    needed.extend(whole.iter().cloned());
    // Ancestors of whole folders are needed to rebuild the path.
    for n in whole.clone() {
        needed.extend(chain(&n));
    }
    (whole, needed)
}

/// Folders in an order where parents come before children.
pub(crate) fn parents_first(folders: &[(String, Value)]) -> Vec<(String, Value)> {
    let ids: HashSet<&str> = folders.iter().map(|(n, _)| n.as_str()).collect();
    let mut depth: HashMap<&str, usize> = HashMap::new();
    let parent: HashMap<&str, &str> = folders
        .iter()
        .map(|(n, v)| (n.as_str(), str_at(v, "parentFolderId")))
        .collect();
    for (n, _) in folders {
        let mut d = 0;
        let mut cur = n.as_str();
        while let Some(p) = parent.get(cur).filter(|p| ids.contains(**p)) {
            d += 1;
            cur = p;
            if d > 64 {
                break;
            }
        }
        depth.insert(n.as_str(), d);
    }
    let mut out = folders.to_vec();
    out.sort_by_key(|(n, _)| depth.get(n.as_str()).copied().unwrap_or(0));
    out
}
