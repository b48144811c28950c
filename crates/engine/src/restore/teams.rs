//! Teams & Groups restore (SPEC F-E6): a `team` or `group` snapshot (layout in
//! [`crate::teams`]) back into its team or group, another one of the same
//! kind, or (a deleted team) a new "(Restored yyyy-MM-dd)" team.
//!
//! Order, as the SPEC asks: channels and their messages, then (wired by the
//! caller) the group's files, calendar, conversations, and last the metadata
//! (members, owners, name, settings).
//!
//! Channel messages go through Microsoft Graph's message import ("Import
//! third-party platform messages to Teams using Microsoft Graph"): a channel
//! is put in migration mode (created with `channelCreationMode: migration`,
//! or `startMigration` on an existing one, moving its `createdDateTime` back
//! with `conversationCreationDateTime` when older messages come back), each
//! message is posted with its original `createdDateTime` and `from`, replies
//! under their message, then `completeMigration`. Import rules shape what we
//! do: a `createdDateTime` must be unique to the millisecond in its channel
//! (409 otherwise), so a message deleted in the destination comes back one
//! millisecond later; only users can be authors, so app messages are
//! skipped; and an existing message cannot be overwritten or back-dated.
//! A new team is created in migration mode; its General channel is
//! completed after the others (completing General first marks the team
//! migrated) and the team last, before members are added (migration mode
//! bars membership changes).
//!
//! Reactions travel with their message or reply: the import takes "up to
//! 250 reactions" (the import doc's content scope), each by a user of the
//! tenant. So only reactions by users are sent, the earliest 250 of a
//! message; one by a user deleted since the backup makes Graph refuse the
//! whole message (400), and only then are the reacting users looked up and
//! the message imported again without the reactions of those gone. A note
//! counts every reaction left out, by reason. An existing message's
//! reactions cannot be changed, like the rest of it.
//!
//! Private and shared channels that still exist keep their members as they
//! are now plus, in the metadata step (replace and bypass; after every
//! migration is completed, since migration mode bars membership changes),
//! every member of the backup they lost, with their role (`owner` or
//! member), each an item of the report; in replace, a member whose role
//! changed since gets the backup's role again (channel-update-members).
//! Nobody is removed. Teams keeps only
//! team members in a private channel (and takes whoever leaves the team out
//! of its private channels), so a user not in the team joins it first;
//! users no longer in the directory are skipped with a note. A channel this
//! restore creates gets its members when it is created; a non-destructive
//! restore writes only into channels it creates.
//!
//! The group calendar: missing events are created (series with their
//! changed and cancelled occurrences); replace patches what differs in an
//! existing event and gives an existing series the snapshot's occurrences
//! ([`super::series`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use graph::Request;
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::series::{Reconcile, Series, changed_fields, graph_reason as reason};
use super::{ItemOutcome, RestoreCtx, RestoreMode, RestoreReport, SnapshotKind, Tally};
use crate::error::{EngineError, Result};
use crate::report::SubService;

/// The properties of an event restored as they were (attendees left out:
/// adding them would send invitations).
const EVENT_FIELDS: &[&str] = &[
    "subject",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "isAllDay",
    "recurrence",
    "showAs",
    "importance",
    "sensitivity",
    "categories",
    "isReminderOn",
    "reminderMinutesBeforeStart",
];

/// The properties of a stored group event that a restore writes.
fn event_fields(ev: &Value) -> serde_json::Map<String, Value> {
    EVENT_FIELDS
        .iter()
        .filter_map(|f| {
            ev.get(*f)
                .filter(|v| !v.is_null())
                .map(|v| ((*f).to_string(), v.clone()))
        })
        .collect()
}

/// Graph imports at most this many reactions with a message (the import
/// doc's content scope: "Up to 250 reactions").
const MAX_REACTIONS: usize = 250;

/// Restores a group or team snapshot (see the module docs).
pub async fn restore_group(ctx: &RestoreCtx<'_>) -> Result<RestoreReport> {
    let kind = SnapshotKind::of(ctx.snapshot)?;
    if !matches!(kind, SnapshotKind::Group | SnapshotKind::Team) {
        return Err(EngineError::Invalid(format!(
            "snapshot {} is not a group or team backup",
            ctx.snapshot.id.0
        )));
    }
    ctx.selection
        .validate(kind.sub_services())
        .map_err(EngineError::Invalid)?;
    let is_team = kind == SnapshotKind::Team;
    let original = ctx
        .snapshot
        .meta
        .get("group")
        .and_then(Value::as_str)
        .map(str::to_string);
    let tally = Tally::new(ctx);
    let mut run = Run {
        ctx,
        tally: &tally,
        dest: String::new(),
        is_team,
        created_team: false,
        users: Mutex::new(HashMap::new()),
        reactions_over_limit: AtomicU64::new(0),
        reactions_not_by_users: AtomicU64::new(0),
        reactions_of_gone_users: AtomicU64::new(0),
    };
    let target = ctx.destination.map(str::to_string).or(original.clone());
    let found = match &target {
        Some(t) => run.find_destination(t).await?,
        None => None,
    };
    match found {
        Some(id) => run.dest = id,
        None if ctx.destination.is_none() && is_team => {
            run.create_team().await?;
        }
        None => {
            return Err(EngineError::EntityGone(format!(
                "group {} (choose another group to restore into)",
                target.unwrap_or_default()
            )));
        }
    }
    ctx.progress.set_stage("channels");
    let sel = ctx.selection;
    let mut cancelled = false;
    if is_team && (sel.touches(SubService::Channels) || run.created_team) {
        cancelled = run.restore_channels().await?;
    }
    if !cancelled && sel.touches(SubService::Drive) {
        ctx.progress.set_stage("files");
        cancelled = run.restore_files().await?;
    }
    if !cancelled && sel.touches(SubService::Calendar) {
        ctx.progress.set_stage("calendar");
        cancelled = run.restore_calendar().await?;
    }
    if !cancelled && sel.touches(SubService::Conversations) {
        ctx.progress.set_stage("conversations");
        cancelled = run.restore_conversations().await?;
    }
    if !cancelled && (sel.touches(SubService::Metadata) || run.created_team) {
        ctx.progress.set_stage("metadata");
        cancelled = run.restore_metadata().await?;
    }
    let mut report = tally.report(cancelled || ctx.cancel.is_cancelled());
    if run.created_team
        || ctx
            .destination
            .is_some_and(|d| Some(d) != original.as_deref())
    {
        report.destination = Some(run.dest.clone());
    }
    Ok(report)
}

/// A restore in progress.
struct Run<'c, 'a> {
    ctx: &'c RestoreCtx<'a>,
    tally: &'c Tally<'a>,
    /// The destination group's id.
    dest: String,
    is_team: bool,
    /// The destination team was created by this restore (the original was gone).
    created_team: bool,
    /// Whether each user id looked up so far exists in the directory.
    users: Mutex<HashMap<String, bool>>,
    /// Reactions left out of imported messages: beyond Graph's 250 on a
    /// message, by an app rather than a user, by a user no longer in the
    /// directory.
    reactions_over_limit: AtomicU64,
    reactions_not_by_users: AtomicU64,
    reactions_of_gone_users: AtomicU64,
}

/// A message already in a destination channel.
struct Present {
    id: String,
    parent: Option<String>,
    from: Option<String>,
    content: String,
    deleted: bool,
}

/// A channel being restored into, with what it holds.
struct Target {
    id: String,
    name: String,
    /// Messages and replies by `createdDateTime` in milliseconds.
    present: HashMap<i64, Present>,
    /// Whether migration mode was entered (and must be completed).
    migrating: bool,
    /// The channel's createdDateTime in milliseconds; imported messages
    /// must be later.
    created: Option<i64>,
}

fn millis(v: &Value, field: &str) -> Option<i64> {
    v.get(field)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
}

fn ms_text(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn str_of<'v>(v: &'v Value, field: &str) -> &'v str {
    v.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn user_of(m: &Value) -> Option<&Value> {
    m.get("from")
        .and_then(|f| f.get("user"))
        .filter(|u| !u.is_null())
}

fn is_deleted(m: &Value) -> bool {
    m.get("deletedDateTime").is_some_and(|d| !d.is_null())
}

fn content_of(m: &Value) -> &str {
    m.get("body")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn bind_user(uid: &str) -> String {
    format!("https://graph.microsoft.com/v1.0/users('{uid}')")
}

impl Run<'_, '_> {
    fn cancelled(&self) -> bool {
        self.ctx.cancel.is_cancelled()
    }

    async fn send(&self, req: Request) -> Result<graph::Response, graph::GraphError> {
        self.tally.requests(1);
        self.ctx.graph.send(req).await
    }

    async fn post(&self, url: &str, body: &Value) -> Result<graph::Response, graph::GraphError> {
        self.send(Request::json(graph::Method::POST, url, body))
            .await
    }

    async fn get(&self, url: &str) -> Result<Value, graph::GraphError> {
        self.send(Request::get(url)).await?.json()
    }

    /// Every item of a collection.
    async fn list(&self, url: &str) -> Result<Vec<Value>, graph::GraphError> {
        let mut out = Vec::new();
        let mut next = Some(url.to_string());
        while let Some(u) = next.take() {
            self.tally.requests(1);
            let page = self.ctx.graph.page(Request::get(u)).await?;
            out.extend(page.items);
            next = page.next_link;
        }
        Ok(out)
    }

    async fn snapshot_json(&self, path: &str) -> Result<Option<Value>> {
        match self
            .ctx
            .vault
            .read_item_bytes(self.ctx.snapshot, path)
            .await
        {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                EngineError::Invalid(format!("the snapshot's {path} is not JSON: {e}"))
            }),
            Err(vault::Error::NoSuchEntry(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn snapshot_folder(&self, path: &str) -> Result<Vec<vault::Entry>> {
        match self.ctx.vault.list_folder(self.ctx.snapshot, path).await {
            Ok(e) => Ok(e),
            Err(vault::Error::NoSuchEntry(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// The destination group's id when it exists and is of the snapshot's
    /// kind; `None` when it does not exist; an error when it is of the other kind.
    async fn find_destination(&self, id: &str) -> Result<Option<String>> {
        let g = match self
            .get(&format!(
                "/groups/{id}?$select=id,displayName,resourceProvisioningOptions"
            ))
            .await
        {
            Ok(g) => g,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let has_team = g
            .get("resourceProvisioningOptions")
            .and_then(Value::as_array)
            .is_some_and(|o| o.iter().any(|x| x.as_str() == Some("Team")));
        let name = str_of(&g, "displayName");
        if has_team != self.is_team {
            let (what, other) = if self.is_team {
                ("team", "a group without a team")
            } else {
                ("group", "a team")
            };
            return Err(EngineError::Invalid(format!(
                "a {what} backup restores only into a {what}: \"{name}\" ({id}) is {other}"
            )));
        }
        Ok(Some(str_of(&g, "id").to_string()).filter(|s| !s.is_empty()))
    }

    /// The original team is gone: a new one in migration mode, named for the
    /// restore and back-dated to the original's creation.
    async fn create_team(&mut self) -> Result<()> {
        let group = self
            .snapshot_json("metadata/group")
            .await?
            .unwrap_or_default();
        let team = self
            .snapshot_json("metadata/team")
            .await?
            .unwrap_or_default();
        let name = match str_of(&group, "displayName") {
            "" => "Team",
            n => n,
        };
        let display = format!(
            "{name} (Restored {})",
            self.ctx.options.requested_at.format("%Y-%m-%d")
        );
        let mut body = json!({
            "@microsoft.graph.teamCreationMode": "migration",
            "template@odata.bind": "https://graph.microsoft.com/v1.0/teamsTemplates('standard')",
            "displayName": display,
            "description": str_of(&group, "description"),
        });
        // A team is public or private (a hidden-membership group is private).
        if let Some(v) = group.get("visibility").and_then(Value::as_str) {
            let v = if v.eq_ignore_ascii_case("public") {
                "public"
            } else {
                "private"
            };
            body["visibility"] = json!(v);
        }
        let created = millis(&team, "createdDateTime")
            .or_else(|| millis(&group, "createdDateTime"))
            .filter(|c| *c <= Utc::now().timestamp_millis());
        if let Some(c) = created {
            body["createdDateTime"] = json!(ms_text(c));
        }
        let resp = self.post("/teams", &body).await?;
        let loc = resp
            .header("Content-Location")
            .or_else(|| resp.header("Location"))
            .unwrap_or_default()
            .to_string();
        let id = loc
            .find("teams('")
            .map(|i| &loc[i + 7..])
            .and_then(|s| s.split('\'').next())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "Microsoft Graph created a team without saying where ({loc:?})"
                ))
            })?
            .to_string();
        // The creation is asynchronous: wait for the operation to finish.
        if let Some(op) = resp.header("Location").map(str::to_string) {
            for attempt in 0..30u64 {
                match self.get(&op).await {
                    Ok(v) if str_of(&v, "status") == "succeeded" => break,
                    Ok(v) if str_of(&v, "status") == "failed" => {
                        return Err(EngineError::Invalid(format!(
                            "Microsoft Graph could not create the team \"{display}\": {}",
                            v.get("error").cloned().unwrap_or_default()
                        )));
                    }
                    _ => {
                        tokio::time::sleep(std::time::Duration::from_millis(200 * (attempt + 1)))
                            .await
                    }
                }
            }
        }
        self.tally.container_created();
        self.tally.note(format!(
            "The team no longer existed: restored into a new team \"{display}\"."
        ));
        self.dest = id;
        self.created_team = true;
        Ok(())
    }

    // ------------------------------------------------------------ channels

    /// Returns whether the restore was cancelled.
    async fn restore_channels(&self) -> Result<bool> {
        let records: Vec<Value> = self
            .snapshot_json("metadata/channels")
            .await?
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        let dest_channels = self.list(&format!("/teams/{}/channels", self.dest)).await?;
        let mut used_names: HashSet<String> = dest_channels
            .iter()
            .map(|c| str_of(c, "displayName").to_ascii_lowercase())
            .collect();
        let mode = self.ctx.options.mode;
        let mut general: Option<Target> = None;
        let mut others: Vec<Target> = Vec::new();
        let mut cancelled = false;
        for entry in self.snapshot_folder("channels").await? {
            if !entry.node.is_folder() {
                continue;
            }
            let folder = format!("channels/{}", entry.name);
            if !self.ctx.selection.reaches(&folder) {
                continue;
            }
            if self.cancelled() {
                cancelled = true;
                break;
            }
            let meta: Value = serde_json::from_slice(entry.node.meta()).unwrap_or_default();
            let record = records
                .iter()
                .find(|r| str_of(r, "id") == entry.name)
                .cloned()
                .unwrap_or(meta);
            let name = str_of(&record, "displayName").to_string();
            let is_general = name.eq_ignore_ascii_case("General");
            let messages = self.snapshot_messages(&folder).await?;
            let earliest = messages
                .iter()
                .filter_map(|(m, _)| millis(m, "createdDateTime"))
                .min();
            // Where this channel's messages go.
            let existing = if mode == RestoreMode::NonDestructive && !self.created_team {
                None
            } else if self.created_team {
                dest_channels
                    .iter()
                    .find(|c| str_of(c, "displayName").eq_ignore_ascii_case(&name))
            } else {
                dest_channels
                    .iter()
                    .find(|c| str_of(c, "id") == entry.name)
                    .or_else(|| {
                        dest_channels
                            .iter()
                            .find(|c| str_of(c, "displayName").eq_ignore_ascii_case(&name))
                    })
            };
            let target = match existing {
                Some(c) => {
                    let id = str_of(c, "id").to_string();
                    let present = self.present_messages(&id).await;
                    let present = match present {
                        Ok(p) => p,
                        Err(e) => {
                            self.fail_all(
                                &folder,
                                &messages,
                                &format!(
                                    "the channel's messages could not be read: {}",
                                    reason(&e)
                                ),
                            );
                            continue;
                        }
                    };
                    Target {
                        id,
                        name: str_of(c, "displayName").to_string(),
                        present,
                        // A team created in migration mode has its General
                        // channel in migration mode already.
                        migrating: self.created_team,
                        created: millis(c, "createdDateTime"),
                    }
                }
                None => {
                    let new_name = if mode == RestoreMode::NonDestructive && !self.created_team {
                        let base = format!(
                            "{name} ({})",
                            self.ctx
                                .options
                                .requested_at
                                .format("Restored %Y-%m-%d %H%M%S")
                        );
                        let mut n = base.clone();
                        let mut i = 2;
                        while used_names.contains(&n.to_ascii_lowercase()) {
                            n = format!("{base} {i}");
                            i += 1;
                        }
                        n
                    } else {
                        name.clone()
                    };
                    match self.create_channel(&record, &new_name, earliest).await {
                        Ok((id, created)) => {
                            used_names.insert(new_name.to_ascii_lowercase());
                            self.tally.container_created();
                            Target {
                                id,
                                name: new_name,
                                present: HashMap::new(),
                                migrating: true,
                                created,
                            }
                        }
                        Err(e) => {
                            self.fail_all(
                                &folder,
                                &messages,
                                &format!("the channel \"{new_name}\" could not be created: {e}"),
                            );
                            continue;
                        }
                    }
                }
            };
            let mut target = target;
            let done = self
                .import_messages(&folder, &mut target, &messages, earliest)
                .await;
            if is_general && existing.is_some() {
                general = Some(target);
            } else {
                others.push(target);
            }
            match done {
                Ok(false) => {}
                Ok(true) => {
                    cancelled = true;
                    break;
                }
                Err(e) => {
                    // Complete what was started before giving up.
                    self.finish_migrations(&others, &general).await;
                    return Err(e);
                }
            }
        }
        self.finish_migrations(&others, &general).await;
        self.note_left_out_reactions();
        if self.created_team
            && let Err(e) = self
                .post(
                    &format!("/teams/{}/completeMigration", self.dest),
                    &json!({}),
                )
                .await
        {
            self.tally.note(format!(
                "The new team's migration could not be completed: {}",
                reason(&e)
            ));
        }
        Ok(cancelled)
    }

    /// Completes the migration of every channel that entered it, General
    /// last (completing General first marks a migrated team as done).
    async fn finish_migrations(&self, others: &[Target], general: &Option<Target>) {
        for t in others.iter().chain(general.iter()) {
            if !t.migrating {
                continue;
            }
            let url = format!("/teams/{}/channels/{}/completeMigration", self.dest, t.id);
            if let Err(e) = self.post(&url, &json!({})).await {
                self.tally.note(format!(
                    "The import into channel \"{}\" could not be completed: {}",
                    t.name,
                    reason(&e)
                ));
            }
        }
    }

    /// One note for every reaction an import left out, by reason.
    fn note_left_out_reactions(&self) {
        let over = self.reactions_over_limit.load(Ordering::Relaxed);
        if over > 0 {
            self.tally.note(format!(
                "{over} reactions were not restored: Microsoft Graph imports at most \
                 {MAX_REACTIONS} reactions with a message (the earliest were kept)."
            ));
        }
        let apps = self.reactions_not_by_users.load(Ordering::Relaxed);
        if apps > 0 {
            self.tally.note(format!(
                "{apps} reactions were not restored because they were not by a user (an \
                 app's, or one kept without its type or time): Microsoft Graph imports only \
                 reactions by users."
            ));
        }
        let gone = self.reactions_of_gone_users.load(Ordering::Relaxed);
        if gone > 0 {
            self.tally.note(format!(
                "{gone} reactions by users no longer in the directory were not restored."
            ));
        }
    }

    /// Whether the user exists in the directory (asked once per user).
    async fn user_exists(&self, uid: &str) -> Result<bool, graph::GraphError> {
        if let Some(known) = self.users.lock().get(uid) {
            return Ok(*known);
        }
        let exists = match self.get(&format!("/users/{uid}?$select=id")).await {
            Ok(_) => true,
            Err(e) if e.is_not_found() => false,
            Err(e) => return Err(e),
        };
        self.users.lock().insert(uid.to_string(), exists);
        Ok(exists)
    }

    /// A message's reactions as the import takes them (see
    /// [`reactions_for_import`]), counting what is left out.
    fn import_reactions(&self, m: &Value) -> Vec<Value> {
        let r = reactions_for_import(m, Utc::now().timestamp_millis());
        self.reactions_over_limit
            .fetch_add(r.over_limit, Ordering::Relaxed);
        self.reactions_not_by_users
            .fetch_add(r.not_by_users, Ordering::Relaxed);
        r.kept
    }

    /// `reactions` without those by users no longer in the directory;
    /// `None` when every reacting user exists.
    async fn reactions_of_present_users(
        &self,
        reactions: &[Value],
    ) -> Result<Option<Vec<Value>>, graph::GraphError> {
        let mut kept = Vec::with_capacity(reactions.len());
        for r in reactions {
            let uid = r["user"]["user"]["id"].as_str().unwrap_or_default();
            if self.user_exists(uid).await? {
                kept.push(r.clone());
            }
        }
        if kept.len() == reactions.len() {
            return Ok(None);
        }
        self.reactions_of_gone_users
            .fetch_add((reactions.len() - kept.len()) as u64, Ordering::Relaxed);
        Ok(Some(kept))
    }

    fn fail_all(&self, folder: &str, messages: &[(Value, Vec<Value>)], why: &str) {
        for (m, replies) in messages {
            for x in std::iter::once(m).chain(replies) {
                if is_deleted(x) {
                    continue;
                }
                let path = format!("{folder}/{}", str_of(x, "id"));
                self.tally.item(
                    &path,
                    &message_name(x),
                    ItemOutcome::Failed,
                    Some(why.into()),
                    0,
                );
            }
        }
    }

    /// The snapshot's top-level messages of a channel, oldest first, each
    /// with its replies (oldest first).
    async fn snapshot_messages(&self, folder: &str) -> Result<Vec<(Value, Vec<Value>)>> {
        let mut out = Vec::new();
        for e in self.snapshot_folder(folder).await? {
            if e.node.is_folder() {
                continue;
            }
            let Some(m) = self.snapshot_json(&format!("{folder}/{}", e.name)).await? else {
                continue;
            };
            let mut replies = Vec::new();
            for r in self
                .snapshot_folder(&format!("{folder}/{}.replies", e.name))
                .await?
            {
                let p = format!("{folder}/{}.replies/{}", e.name, r.name);
                if let Some(v) = self.snapshot_json(&p).await? {
                    replies.push(v);
                }
            }
            replies.sort_by_key(|r| millis(r, "createdDateTime").unwrap_or(0));
            out.push((m, replies));
        }
        out.sort_by_key(|(m, _)| millis(m, "createdDateTime").unwrap_or(0));
        Ok(out)
    }

    /// What a destination channel holds, by createdDateTime.
    async fn present_messages(
        &self,
        cid: &str,
    ) -> Result<HashMap<i64, Present>, graph::GraphError> {
        let url = format!(
            "/teams/{}/channels/{cid}/messages?$top=50&$expand=replies",
            self.dest
        );
        let mut out = HashMap::new();
        for m in self.list(&url).await? {
            let replies = m
                .get("replies")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let parent = str_of(&m, "id").to_string();
            for (x, p) in
                std::iter::once((&m, None)).chain(replies.iter().map(|r| (r, Some(parent.clone()))))
            {
                if let Some(ms) = millis(x, "createdDateTime") {
                    out.insert(
                        ms,
                        Present {
                            id: str_of(x, "id").to_string(),
                            parent: p,
                            from: user_of(x)
                                .and_then(|u| u.get("id"))
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            content: content_of(x).to_string(),
                            deleted: is_deleted(x),
                        },
                    );
                }
            }
        }
        Ok(out)
    }

    /// Creates a channel in migration mode, back-dated to its first message.
    async fn create_channel(
        &self,
        record: &Value,
        name: &str,
        earliest: Option<i64>,
    ) -> std::result::Result<(String, Option<i64>), String> {
        let membership = match str_of(record, "membershipType") {
            "" => "standard",
            m => m,
        };
        let mut body = json!({
            "@microsoft.graph.channelCreationMode": "migration",
            "displayName": name,
            "membershipType": membership,
        });
        if let Some(d) = record.get("description").filter(|d| !d.is_null()) {
            body["description"] = d.clone();
        }
        let now = Utc::now().timestamp_millis();
        // Imported messages must be later than the channel's creation.
        let created = [millis(record, "createdDateTime"), earliest.map(|e| e - 1)]
            .into_iter()
            .flatten()
            .min()
            .map(|c| c.min(now));
        if let Some(c) = created {
            body["createdDateTime"] = json!(ms_text(c));
        }
        if membership != "standard" {
            let members: Vec<Value> = record
                .get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let uid = m.get("userId").and_then(Value::as_str)?;
                    Some(json!({
                        "@odata.type": "#microsoft.graph.aadUserConversationMember",
                        "user@odata.bind": bind_user(uid),
                        "roles": m.get("roles").cloned().unwrap_or(json!([])),
                    }))
                })
                .collect();
            body["members"] = Value::Array(members);
        }
        let url = format!("/teams/{}/channels", self.dest);
        let resp = match self.post(&url, &body).await {
            Ok(r) => r,
            // A member deleted from the directory since the backup makes
            // Graph refuse the channel (404): look the members up only then,
            // and create it with those still there.
            Err(e) if e.is_not_found() && body["members"].is_array() => {
                let mut kept = Vec::new();
                let mut gone = 0;
                for m in body["members"].as_array().into_iter().flatten() {
                    let bound = str_of(m, "user@odata.bind");
                    let uid = bound
                        .rsplit("('")
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches("')");
                    if self.user_exists(uid).await.map_err(|e| reason(&e))? {
                        kept.push(m.clone());
                    } else {
                        gone += 1;
                    }
                }
                if gone == 0 {
                    return Err(reason(&e));
                }
                self.tally.note(format!(
                    "Channel \"{name}\" was created without {gone} of its members: they no \
                     longer exist in the directory."
                ));
                body["members"] = Value::Array(kept);
                self.post(&url, &body).await.map_err(|e| reason(&e))?
            }
            Err(e) => return Err(reason(&e)),
        };
        let v: Value = resp.json().map_err(|e| e.to_string())?;
        let id = Some(str_of(&v, "id").to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| "Microsoft Graph answered without the channel's id".to_string())?;
        Ok((id, millis(&v, "createdDateTime")))
    }

    /// Imports the messages the channel lacks. Returns whether the restore
    /// was cancelled.
    async fn import_messages(
        &self,
        folder: &str,
        target: &mut Target,
        messages: &[(Value, Vec<Value>)],
        earliest: Option<i64>,
    ) -> Result<bool> {
        let mode = self.ctx.options.mode;
        let mut used: BTreeSet<i64> = target.present.keys().copied().collect();
        let mut noted_changed = false;
        for (m, replies) in messages {
            let mpath = format!("{folder}/{}", str_of(m, "id"));
            let reply_paths: Vec<String> = replies
                .iter()
                .map(|r| format!("{folder}/{}.replies/{}", str_of(m, "id"), str_of(r, "id")))
                .collect();
            let wanted_top = !is_deleted(m) && self.ctx.selection.covers(&mpath);
            let wanted_replies: Vec<usize> = (0..replies.len())
                .filter(|&i| self.ctx.selection.covers(&reply_paths[i]))
                .collect();
            if !wanted_top && wanted_replies.is_empty() {
                continue;
            }
            if self.cancelled() {
                return Ok(true);
            }
            // The destination's copy of the top-level message, or a new one.
            let ms = millis(m, "createdDateTime");
            let here = ms
                .and_then(|t| target.present.get(&t))
                .filter(|p| p.parent.is_none() && (!p.deleted || is_deleted(m)))
                .or_else(|| ms.and_then(|t| restored_copy(&target.present, t, m, false)));
            let parent_id = match here {
                Some(p) => {
                    if wanted_top {
                        let same = p.from.as_deref() == user_id(m) && p.content == content_of(m);
                        let detail = if same {
                            "already in the channel".to_string()
                        } else {
                            if mode == RestoreMode::Replace && !noted_changed {
                                noted_changed = true;
                                self.tally.note(
                                    "Microsoft Graph cannot overwrite or back-date an existing \
                                     channel message: messages changed since the backup were \
                                     left as they are.",
                                );
                            }
                            "in the channel, changed since the backup (a channel message \
                             cannot be overwritten)"
                                .to_string()
                        };
                        self.tally.item(
                            &mpath,
                            &message_name(m),
                            ItemOutcome::Skipped,
                            Some(detail),
                            0,
                        );
                    }
                    Some(p.id.clone())
                }
                _ => {
                    if user_of(m).is_none() {
                        let why =
                            "posted by an app: Microsoft Graph imports messages only from users";
                        if wanted_top {
                            self.tally.item(
                                &mpath,
                                &message_name(m),
                                ItemOutcome::Skipped,
                                Some(why.into()),
                                0,
                            );
                        }
                        for &i in &wanted_replies {
                            self.tally.item(
                                &reply_paths[i],
                                &message_name(&replies[i]),
                                ItemOutcome::Skipped,
                                Some(format!("its message was {why}")),
                                0,
                            );
                        }
                        continue;
                    }
                    self.ensure_migration(target, earliest).await?;
                    let placeholder = is_deleted(m);
                    match self.import(target, None, m, &mut used, placeholder).await {
                        Ok(id) => {
                            if wanted_top {
                                self.tally.item(
                                    &mpath,
                                    &message_name(m),
                                    ItemOutcome::Restored,
                                    Some(id.clone()),
                                    content_of(m).len() as u64,
                                );
                            }
                            Some(id)
                        }
                        Err(why) => {
                            if wanted_top {
                                self.tally.item(
                                    &mpath,
                                    &message_name(m),
                                    ItemOutcome::Failed,
                                    Some(why.clone()),
                                    0,
                                );
                            }
                            for &i in &wanted_replies {
                                self.tally.item(
                                    &reply_paths[i],
                                    &message_name(&replies[i]),
                                    ItemOutcome::Failed,
                                    Some(format!("its message could not be restored: {why}")),
                                    0,
                                );
                            }
                            continue;
                        }
                    }
                }
            };
            let Some(parent_id) = parent_id else { continue };
            for &i in &wanted_replies {
                if self.cancelled() {
                    return Ok(true);
                }
                let r = &replies[i];
                let rms = millis(r, "createdDateTime");
                // A reply still in the channel counts as present even when
                // it sits under a deleted copy of its message (Teams keeps
                // showing it there): importing it again would show it twice.
                let here = rms
                    .and_then(|t| target.present.get(&t))
                    .filter(|p| p.parent.is_some() && !p.deleted)
                    .or_else(|| rms.and_then(|t| restored_copy(&target.present, t, r, true)));
                if let Some(p) = here {
                    let same = p.from.as_deref() == user_id(r) && p.content == content_of(r);
                    let detail = if same {
                        "already in the channel"
                    } else {
                        "in the channel, changed since the backup (a channel message cannot be \
                         overwritten)"
                    };
                    self.tally.item(
                        &reply_paths[i],
                        &message_name(r),
                        ItemOutcome::Skipped,
                        Some(detail.into()),
                        0,
                    );
                    continue;
                }
                if user_of(r).is_none() {
                    self.tally.item(
                        &reply_paths[i],
                        &message_name(r),
                        ItemOutcome::Skipped,
                        Some(
                            "posted by an app: Microsoft Graph imports messages only from users"
                                .into(),
                        ),
                        0,
                    );
                    continue;
                }
                self.ensure_migration(target, earliest).await?;
                let (outcome, detail) = match self
                    .import(target, Some(&parent_id), r, &mut used, false)
                    .await
                {
                    Ok(id) => (ItemOutcome::Restored, id),
                    Err(why) => (ItemOutcome::Failed, why),
                };
                let bytes = if outcome == ItemOutcome::Restored {
                    content_of(r).len() as u64
                } else {
                    0
                };
                self.tally.item(
                    &reply_paths[i],
                    &message_name(r),
                    outcome,
                    Some(detail),
                    bytes,
                );
            }
        }
        Ok(false)
    }

    /// Puts a channel in migration mode (when it is not already), and
    /// moves its creation back before the oldest message to import when
    /// that is not later: an imported createdDateTime must be later than
    /// the channel's, and startMigration's conversationCreationDateTime
    /// may only move it back.
    async fn ensure_migration(&self, target: &mut Target, earliest: Option<i64>) -> Result<()> {
        let backdate = match (earliest, target.created) {
            (Some(e), Some(c)) if e <= c => Some(e - 1),
            _ => None,
        };
        if target.migrating && backdate.is_none() {
            return Ok(());
        }
        let mut body = json!({});
        if let Some(b) = backdate {
            body["conversationCreationDateTime"] = json!(ms_text(b));
        }
        self.post(
            &format!("/teams/{}/channels/{}/startMigration", self.dest, target.id),
            &body,
        )
        .await?;
        target.migrating = true;
        if backdate.is_some() {
            target.created = backdate;
        }
        Ok(())
    }

    /// Imports one message (or reply) with its original date and author;
    /// a date already taken in the channel moves to the next free
    /// millisecond (Graph answers 409 to a duplicate). Returns the new id.
    async fn import(
        &self,
        target: &mut Target,
        parent: Option<&str>,
        m: &Value,
        used: &mut BTreeSet<i64>,
        placeholder: bool,
    ) -> std::result::Result<String, String> {
        let now = Utc::now().timestamp_millis();
        let mut t = millis(m, "createdDateTime").unwrap_or(now).min(now);
        while used.contains(&t) {
            t += 1;
        }
        let user = user_of(m).cloned().unwrap_or_default();
        let mut body = json!({
            "createdDateTime": ms_text(t),
            "from": {"user": {
                "id": user.get("id"),
                "displayName": user.get("displayName"),
                "userIdentityType": "aadUser",
            }},
            "body": m.get("body").cloned().unwrap_or(json!({"contentType": "text", "content": ""})),
        });
        if placeholder {
            body["body"] = json!({
                "contentType": "text",
                "content": "(This message had been deleted before the backup; its replies are restored below it.)",
            });
        }
        if parent.is_none()
            && let Some(s) = m.get("subject").filter(|s| !s.is_null())
        {
            body["subject"] = s.clone();
        }
        if let Some(i) = m.get("importance").filter(|s| !s.is_null()) {
            body["importance"] = i.clone();
        }
        // The body refers to its file attachments and mentions by id
        // (`<attachment id>`, `<at id>`): they travel with it.
        for field in ["attachments", "mentions"] {
            if let Some(a) = m
                .get(field)
                .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
            {
                body[field] = a.clone();
            }
        }
        // A placeholder stands for a deleted message: no reactions on it.
        let reactions = if placeholder {
            Vec::new()
        } else {
            self.import_reactions(m)
        };
        if !reactions.is_empty() {
            body["reactions"] = Value::Array(reactions.clone());
        }
        let url = match parent {
            None => format!("/teams/{}/channels/{}/messages", self.dest, target.id),
            Some(p) => format!(
                "/teams/{}/channels/{}/messages/{p}/replies",
                self.dest, target.id
            ),
        };
        let resp = match self.post(&url, &body).await {
            Ok(r) => r,
            // Graph refuses the whole message for a reacting user it does
            // not know (one deleted since the backup): ask which users are
            // gone only then, and import the message without theirs.
            Err(e) if e.status() == Some(400) && !reactions.is_empty() => {
                match self.reactions_of_present_users(&reactions).await {
                    Ok(Some(kept)) => {
                        body["reactions"] = Value::Array(kept);
                        self.post(&url, &body).await.map_err(|e| reason(&e))?
                    }
                    Ok(None) => return Err(reason(&e)),
                    Err(lookup) => return Err(reason(&lookup)),
                }
            }
            Err(e) => return Err(reason(&e)),
        };
        used.insert(t);
        let v: Value = resp.json().map_err(|e| e.to_string())?;
        let id = str_of(&v, "id").to_string();
        target.present.insert(
            t,
            Present {
                id: id.clone(),
                parent: parent.map(str::to_string),
                from: user_id(m).map(str::to_string),
                content: content_of(&body).to_string(),
                deleted: false,
            },
        );
        Ok(id)
    }

    // ------------------------------------------------------------ calendar

    /// The group's files: its libraries (`drives/<driveId>/…`) into the
    /// destination group's site, matched by name. Returns whether the
    /// restore was cancelled.
    async fn restore_files(&self) -> Result<bool> {
        let site = self
            .get(&format!("/groups/{}/sites/root?$select=id", self.dest))
            .await?;
        let Some(site_id) = site.get("id").and_then(Value::as_str) else {
            return Err(EngineError::Invalid(format!(
                "Graph gave group {}'s site without an id",
                self.dest
            )));
        };
        super::sharepoint::restore_site_libraries(self.ctx, self.tally, site_id).await?;
        Ok(self.ctx.cancel.is_cancelled())
    }

    async fn restore_calendar(&self) -> Result<bool> {
        let events = self.snapshot_folder("calendar").await?;
        if events.is_empty() {
            return Ok(false);
        }
        let present = self
            .list(&format!(
                "/groups/{}/events?$select=id,changeKey,subject,start&$top=1000",
                self.dest
            ))
            .await?;
        let by_id: HashMap<&str, &Value> = present.iter().map(|e| (str_of(e, "id"), e)).collect();
        let mode = self.ctx.options.mode;
        if mode == RestoreMode::NonDestructive {
            self.tally.note(
                "A group has one calendar, so a non-destructive restore adds the missing \
                 events to it and leaves existing ones alone.",
            );
        }

        let mut wrote_events = false;
        for e in events {
            if self.cancelled() {
                return Ok(true);
            }
            let path = format!("calendar/{}", e.name);
            if e.node.is_folder() || !self.ctx.selection.covers(&path) {
                continue;
            }
            let Some(ev) = self.snapshot_json(&path).await? else {
                continue;
            };
            let name = match str_of(&ev, "subject") {
                "" => "(no subject)".to_string(),
                s => s.to_string(),
            };
            let same_start = |x: &&Value| {
                str_of(x, "subject") == str_of(&ev, "subject")
                    && x.get("start").and_then(|s| s.get("dateTime"))
                        == ev.get("start").and_then(|s| s.get("dateTime"))
            };
            let existing = by_id
                .get(e.name.as_str())
                .copied()
                .or_else(|| present.iter().find(same_start));
            let body = Value::Object(event_fields(&ev));
            let (outcome, detail) = match existing {
                Some(x) if x.get("changeKey") == ev.get("changeKey") => {
                    (ItemOutcome::Skipped, "unchanged".to_string())
                }
                Some(x) if mode == RestoreMode::Replace => {
                    match self.replace_event(str_of(x, "id"), &ev, &body).await {
                        Ok(d) => (ItemOutcome::Overwritten, d),
                        Err(e) => (ItemOutcome::Failed, e),
                    }
                }
                Some(_) => (
                    ItemOutcome::Skipped,
                    "present in the calendar; left as it is".to_string(),
                ),
                None => match self.create_event(&ev, &body).await {
                    Ok(id) => (ItemOutcome::Restored, id),
                    Err(e) => (ItemOutcome::Failed, e),
                },
            };
            if matches!(outcome, ItemOutcome::Restored | ItemOutcome::Overwritten) {
                wrote_events = true;
            }
            self.tally.item(&path, &name, outcome, Some(detail), 0);
        }
        if wrote_events {
            self.tally
                .note("Restored events carry no attendees, so that no invitations are sent.");
        }
        Ok(false)
    }

    /// The group calendar's series writer.
    fn series(&self) -> Series<'_> {
        Series {
            graph: self.ctx.graph,
            tally: self.tally,
            owner: format!("/groups/{}", self.dest),
            fields: event_fields,
            tag: None,
            immutable_ids: false,
        }
    }

    /// A snapshot event created in the group calendar, a series with its
    /// changed and cancelled occurrences (whole or not at all).
    async fn create_event(&self, ev: &Value, body: &Value) -> Result<String, String> {
        let created: Value = self
            .post(&format!("/groups/{}/events", self.dest), body)
            .await
            .map_err(|e| reason(&e))?
            .json()
            .map_err(|e| e.to_string())?;
        let id = str_of(&created, "id").to_string();
        if id.is_empty() {
            return Err("Microsoft Graph created the event without an id".into());
        }
        if ev.get("recurrence").is_some_and(|r| !r.is_null())
            && let Err(e) = self.series().apply(&id, ev).await
        {
            let _ = self
                .send(Request::delete(format!(
                    "/groups/{}/events/{id}",
                    self.dest
                )))
                .await;
            return Err(e);
        }
        Ok(id)
    }

    /// Replace for an event still in the group calendar: its values, and a
    /// series' occurrences (see [`super::series`]).
    async fn replace_event(&self, id: &str, ev: &Value, body: &Value) -> Result<String, String> {
        let url = format!("/groups/{}/events/{id}", self.dest);
        // Only what differs: Graph sends a meeting's attendees an update for
        // every patch of it.
        let cur = self.get(&url).await.map_err(|e| reason(&e))?;
        let diff = changed_fields(&event_fields(ev), &cur);
        if !diff.is_empty() {
            self.send(Request::json(
                graph::Method::PATCH,
                url.clone(),
                &Value::Object(diff),
            ))
            .await
            .map_err(|e| reason(&e))?;
        }
        if ev.get("recurrence").is_none_or(Value::is_null) {
            return Ok(id.to_string());
        }
        let create_url = format!("/groups/{}/events", self.dest);
        match self.series().reconcile(id, ev, &create_url).await? {
            Reconcile::Done(r) => Ok(std::iter::once(id.to_string())
                .chain(r.describe())
                .collect::<Vec<_>>()
                .join("; ")),
            Reconcile::Recreate => {
                match self.send(Request::delete(url)).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(reason(&e)),
                }
                let new_id = self.create_event(ev, body).await?;
                Ok(format!(
                    "series made again as {new_id}: occurrences cancelled since the backup \
                     cannot be brought back any other way"
                ))
            }
        }
    }

    // ------------------------------------------------------------ conversations

    async fn restore_conversations(&self) -> Result<bool> {
        let threads = self.snapshot_folder("conversations").await?;
        if threads.is_empty() {
            return Ok(false);
        }
        let present: HashSet<String> = self
            .list(&format!("/groups/{}/threads?$select=id", self.dest))
            .await?
            .iter()
            .map(|t| str_of(t, "id").to_string())
            .collect();
        let mut restored_any = false;
        for t in threads {
            let folder = format!("conversations/{}", t.name);
            if !t.node.is_folder() || !self.ctx.selection.reaches(&folder) {
                continue;
            }
            let thread: Value = serde_json::from_slice(t.node.meta()).unwrap_or_default();
            let topic = match str_of(&thread, "topic") {
                "" => "(no subject)".to_string(),
                s => s.to_string(),
            };
            let mut posts = Vec::new();
            for p in self.snapshot_folder(&folder).await? {
                let path = format!("{folder}/{}", p.name);
                if p.node.is_folder() || !self.ctx.selection.covers(&path) {
                    continue;
                }
                if let Some(v) = self.snapshot_json(&path).await? {
                    posts.push((path, v));
                }
            }
            posts.sort_by_key(|(_, p)| millis(p, "receivedDateTime").unwrap_or(0));
            // The destination's thread and the posts it has.
            let mut dest_thread: Option<String> = None;
            let mut have: HashSet<String> = HashSet::new();
            if present.contains(&t.name) {
                match self
                    .list(&format!(
                        "/groups/{}/threads/{}/posts?$select=id",
                        self.dest, t.name
                    ))
                    .await
                {
                    Ok(ps) => {
                        dest_thread = Some(t.name.clone());
                        have = ps.iter().map(|p| str_of(p, "id").to_string()).collect();
                    }
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        for (path, p) in &posts {
                            self.tally.item(
                                path,
                                &topic,
                                ItemOutcome::Failed,
                                Some(format!(
                                    "the conversation could not be read: {}",
                                    reason(&e)
                                )),
                                0,
                            );
                            let _ = p;
                        }
                        continue;
                    }
                }
            }
            for (path, p) in &posts {
                if self.cancelled() {
                    return Ok(true);
                }
                if have.contains(str_of(p, "id")) {
                    self.tally.item(
                        path,
                        &topic,
                        ItemOutcome::Skipped,
                        Some("already in the conversation (a post cannot be changed)".into()),
                        0,
                    );
                    continue;
                }
                let post = self.post_body(path, p).await?;
                let bytes = content_of(p).len() as u64;
                let result = match &dest_thread {
                    Some(tid) => self
                        .post(
                            &format!("/groups/{}/threads/{tid}/reply", self.dest),
                            &json!({ "post": post }),
                        )
                        .await
                        .map(|_| tid.clone()),
                    None => match self
                        .post(
                            &format!("/groups/{}/threads", self.dest),
                            &json!({ "topic": topic, "posts": [post] }),
                        )
                        .await
                    {
                        Ok(r) => {
                            let v: Value = r.json().unwrap_or_default();
                            let tid = str_of(&v, "id").to_string();
                            dest_thread = Some(tid.clone()).filter(|s| !s.is_empty());
                            Ok(tid)
                        }
                        Err(e) => Err(e),
                    },
                };
                match result {
                    Ok(tid) => {
                        restored_any = true;
                        self.tally
                            .item(path, &topic, ItemOutcome::Restored, Some(tid), bytes)
                    }
                    Err(e) => {
                        self.tally
                            .item(path, &topic, ItemOutcome::Failed, Some(reason(&e)), 0)
                    }
                }
            }
        }
        if restored_any {
            self.tally.note(
                "Microsoft Graph cannot back-date group conversation posts: restored posts \
                 carry the date of the restore.",
            );
        }
        Ok(false)
    }

    /// A post as Graph's reply takes it, with its attachments' bytes.
    async fn post_body(&self, path: &str, p: &Value) -> Result<Value> {
        let mut atts = Vec::new();
        for a in p
            .get("attachments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let apath = format!("{path}.attachments/{}", str_of(a, "id"));
            if let Some(full) = self.snapshot_json(&apath).await? {
                atts.push(json!({
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": full.get("name"),
                    "contentType": full.get("contentType"),
                    "contentBytes": full.get("contentBytes"),
                }));
            }
        }
        let mut post = json!({
            "body": p.get("body").cloned().unwrap_or(json!({"contentType": "html", "content": ""})),
        });
        if !atts.is_empty() {
            post["attachments"] = Value::Array(atts);
        }
        Ok(post)
    }

    // ------------------------------------------------------------ metadata

    async fn restore_metadata(&self) -> Result<bool> {
        let mode = self.ctx.options.mode;
        let group = self
            .snapshot_json("metadata/group")
            .await?
            .unwrap_or_default();
        let team = self.snapshot_json("metadata/team").await?;
        let name = str_of(&group, "displayName").to_string();
        // Name, description and settings: replace mode, or a team this
        // restore created (which keeps its "(Restored …)" name).
        if mode == RestoreMode::Replace || self.created_team {
            let mut patch = json!({});
            if !self.created_team {
                patch["displayName"] = json!(name);
            }
            if let Some(d) = group.get("description").filter(|d| !d.is_null()) {
                patch["description"] = d.clone();
            }
            let (url, what) = match &team {
                Some(t) if self.is_team => {
                    for f in [
                        "memberSettings",
                        "guestSettings",
                        "messagingSettings",
                        "funSettings",
                    ] {
                        if let Some(v) = t.get(f).filter(|v| v.is_object()) {
                            patch[f] = v.clone();
                        }
                    }
                    (format!("/teams/{}", self.dest), "team")
                }
                _ => (format!("/groups/{}", self.dest), "group"),
            };
            let outcome = match self
                .send(Request::json(graph::Method::PATCH, url, &patch))
                .await
            {
                Ok(_) => (ItemOutcome::Overwritten, None),
                Err(e) => (ItemOutcome::Failed, Some(reason(&e))),
            };
            self.tally.item(
                &format!("metadata/{what}"),
                &format!("{name} (name, description, settings)"),
                outcome.0,
                outcome.1,
                0,
            );
        }
        for (file, role) in [
            ("metadata/members", "members"),
            ("metadata/owners", "owners"),
        ] {
            if self.cancelled() {
                return Ok(true);
            }
            let wanted = self
                .snapshot_json(file)
                .await?
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            let present: HashSet<String> = self
                .list(&format!("/groups/{}/{role}?$select=id&$top=999", self.dest))
                .await?
                .iter()
                .map(|m| str_of(m, "id").to_string())
                .collect();
            for m in wanted {
                let uid = str_of(&m, "id");
                if uid.is_empty() {
                    continue;
                }
                let who = match str_of(&m, "userPrincipalName") {
                    "" => str_of(&m, "displayName").to_string(),
                    u => u.to_string(),
                };
                let path = format!("{file}/{uid}");
                if present.contains(uid) {
                    self.tally.item(
                        &path,
                        &who,
                        ItemOutcome::Skipped,
                        Some(format!("already one of the {role}")),
                        0,
                    );
                    continue;
                }
                let body = json!({
                    "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{uid}")
                });
                let (outcome, detail) = match self
                    .post(&format!("/groups/{}/{role}/$ref", self.dest), &body)
                    .await
                {
                    Ok(_) => (ItemOutcome::Restored, None),
                    Err(e) if e.is_not_found() => (
                        ItemOutcome::Failed,
                        Some("the user no longer exists in the directory".to_string()),
                    ),
                    Err(e) => (ItemOutcome::Failed, Some(reason(&e))),
                };
                self.tally.item(&path, &who, outcome, detail, 0);
            }
        }
        if self.is_team {
            return self.restore_channel_members().await;
        }
        Ok(false)
    }

    /// Members (and owners) of private and shared channels that are still in
    /// the destination team but lost members since the backup: each missing
    /// one is added back with their role, into a private channel only after
    /// joining the team (Teams keeps only team members in a private channel,
    /// and removes from them whoever leaves the team). Nobody is removed. A
    /// channel this restore created got its members when created, and a
    /// non-destructive restore leaves existing channels alone.
    async fn restore_channel_members(&self) -> Result<bool> {
        if self.created_team || self.ctx.options.mode == RestoreMode::NonDestructive {
            return Ok(false);
        }
        let records: Vec<Value> = self
            .snapshot_json("metadata/channels")
            .await?
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        let with_members: Vec<&Value> = records
            .iter()
            .filter(|r| matches!(str_of(r, "membershipType"), "private" | "shared"))
            .filter(|r| r.get("members").is_some_and(Value::is_array))
            .collect();
        if with_members.is_empty() {
            return Ok(false);
        }
        let dest_channels = self.list(&format!("/teams/{}/channels", self.dest)).await?;
        let mut in_team: Option<HashSet<String>> = None;
        for record in with_members {
            let cid = str_of(record, "id");
            let name = str_of(record, "displayName");
            let wanted: Vec<&Value> = record
                .get("members")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|m| !str_of(m, "userId").is_empty())
                .filter(|m| {
                    self.ctx.selection.covers(&format!(
                        "metadata/channels/{cid}/members/{}",
                        str_of(m, "userId")
                    ))
                })
                .collect();
            if wanted.is_empty() {
                continue;
            }
            // The same channel: by id, or (re-created by an earlier restore) by name.
            let Some(dest) = dest_channels
                .iter()
                .find(|c| str_of(c, "id") == cid)
                .or_else(|| {
                    dest_channels
                        .iter()
                        .find(|c| str_of(c, "displayName").eq_ignore_ascii_case(name))
                })
                .filter(|c| str_of(c, "membershipType") == str_of(record, "membershipType"))
            else {
                continue;
            };
            let dest_id = str_of(dest, "id");
            let private = str_of(dest, "membershipType") == "private";
            let members_url = format!("/teams/{}/channels/{dest_id}/members", self.dest);
            // user id -> (membership id, is owner)
            let present: HashMap<String, (String, bool)> = self
                .list(&members_url)
                .await?
                .iter()
                .map(|m| {
                    (
                        str_of(m, "userId").to_string(),
                        (str_of(m, "id").to_string(), has_owner_role(m)),
                    )
                })
                .collect();
            for m in wanted {
                if self.cancelled() {
                    return Ok(true);
                }
                let uid = str_of(m, "userId");
                let owner = has_owner_role(m);
                let path = format!("metadata/channels/{cid}/members/{uid}");
                let who = match (str_of(m, "displayName"), str_of(m, "email")) {
                    ("", "") => uid.to_string(),
                    (n, "") | ("", n) => format!("{n} ({name})"),
                    (n, e) => format!("{n} <{e}> ({name})"),
                };
                let role = if owner { "owner" } else { "member" };
                if let Some((membership, is_owner)) = present.get(uid) {
                    let was = if *is_owner { "an owner" } else { "a member" };
                    let (outcome, detail) = if *is_owner == owner {
                        (
                            ItemOutcome::Skipped,
                            format!("already a {role} of the channel"),
                        )
                    } else if self.ctx.options.mode == RestoreMode::Replace {
                        // channel-update-members: the role as it was.
                        let body = json!({
                            "@odata.type": "#microsoft.graph.aadUserConversationMember",
                            "roles": if owner { json!(["owner"]) } else { json!([]) },
                        });
                        match self
                            .send(Request::json(
                                graph::Method::PATCH,
                                format!("{members_url}/{membership}"),
                                &body,
                            ))
                            .await
                        {
                            Ok(_) => (
                                ItemOutcome::Overwritten,
                                format!("{was} of the channel again a {role}, as at the backup"),
                            ),
                            Err(e) => (ItemOutcome::Failed, reason(&e)),
                        }
                    } else {
                        (
                            ItemOutcome::Skipped,
                            format!(
                                "in the channel as {was}, a {role} at the backup; left as it is"
                            ),
                        )
                    };
                    self.tally.item(&path, &who, outcome, Some(detail), 0);
                    continue;
                }
                let (outcome, detail) = self
                    .add_channel_member(&members_url, uid, owner, private, &mut in_team)
                    .await;
                self.tally.item(&path, &who, outcome, Some(detail), 0);
            }
        }
        Ok(false)
    }

    /// Adds `uid` to a channel (joining the team first when the channel is
    /// private and they are not in it). `in_team` caches the team's members.
    async fn add_channel_member(
        &self,
        members_url: &str,
        uid: &str,
        owner: bool,
        private: bool,
        in_team: &mut Option<HashSet<String>>,
    ) -> (ItemOutcome, String) {
        match self.user_exists(uid).await {
            Ok(true) => {}
            Ok(false) => {
                return (
                    ItemOutcome::Skipped,
                    "the user no longer exists in the directory".to_string(),
                );
            }
            Err(e) => return (ItemOutcome::Failed, reason(&e)),
        }
        let mut joined_team = false;
        if private {
            if in_team.is_none() {
                match self
                    .list(&format!(
                        "/groups/{}/members?$select=id&$top=999",
                        self.dest
                    ))
                    .await
                {
                    Ok(ms) => {
                        *in_team = Some(ms.iter().map(|m| str_of(m, "id").to_string()).collect())
                    }
                    Err(e) => {
                        return (
                            ItemOutcome::Failed,
                            format!("the team's members could not be read: {}", reason(&e)),
                        );
                    }
                }
            }
            if !in_team.as_ref().is_some_and(|t| t.contains(uid)) {
                let body = json!({
                    "@odata.type": "#microsoft.graph.aadUserConversationMember",
                    "roles": [],
                    "user@odata.bind": bind_user(uid),
                });
                if let Err(e) = self
                    .post(&format!("/teams/{}/members", self.dest), &body)
                    .await
                {
                    return (
                        ItemOutcome::Failed,
                        format!(
                            "a private channel takes only members of the team, and adding \
                             the user to the team failed: {}",
                            reason(&e)
                        ),
                    );
                }
                if let Some(t) = in_team.as_mut() {
                    t.insert(uid.to_string());
                }
                joined_team = true;
            }
        }
        let body = json!({
            "@odata.type": "#microsoft.graph.aadUserConversationMember",
            "roles": if owner { json!(["owner"]) } else { json!([]) },
            "user@odata.bind": bind_user(uid),
        });
        let role = if owner { "owner" } else { "member" };
        match self.post(members_url, &body).await {
            Ok(_) if joined_team => (
                ItemOutcome::Restored,
                format!("added back as {role}, after joining the team again"),
            ),
            Ok(_) => (ItemOutcome::Restored, format!("added back as {role}")),
            Err(e) => (ItemOutcome::Failed, reason(&e)),
        }
    }
}

/// Whether a conversationMember has the owner role.
fn has_owner_role(m: &Value) -> bool {
    m.get("roles").and_then(Value::as_array).is_some_and(|r| {
        r.iter()
            .any(|x| x.as_str().is_some_and(|s| s.eq_ignore_ascii_case("owner")))
    })
}

/// How far after its original time an earlier restore may have put a
/// message whose millisecond was taken (by its own deleted copy).
const MOVED_WITHIN_MS: i64 = 1000;

/// A live copy of `m` that an earlier restore imported a little after its
/// original time (a deleted copy held that millisecond): same sender and
/// text, within [`MOVED_WITHIN_MS`].
fn restored_copy<'p>(
    present: &'p HashMap<i64, Present>,
    ms: i64,
    m: &Value,
    reply: bool,
) -> Option<&'p Present> {
    (ms + 1..=ms + MOVED_WITHIN_MS).find_map(|t| {
        present.get(&t).filter(|p| {
            !p.deleted
                && p.parent.is_some() == reply
                && p.from.as_deref() == user_id(m)
                && p.content == content_of(m)
        })
    })
}

/// What the import takes of a message's reactions.
struct ImportReactions {
    /// chatMessageReactions by users, in the message's order.
    kept: Vec<Value>,
    /// Left out beyond [`MAX_REACTIONS`] (the latest ones).
    over_limit: u64,
    /// Left out for not being by a user (an app's, or kept without type or time).
    not_by_users: u64,
}

/// A message's reactions as the import body takes them: by users only, the
/// earliest [`MAX_REACTIONS`] in their original order, none later than
/// `now_ms` (Graph refuses a time in the future; a source clock may run ahead).
fn reactions_for_import(m: &Value, now_ms: i64) -> ImportReactions {
    let all = m
        .get("reactions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut not_by_users = 0;
    let mut by_users: Vec<(i64, Value)> = Vec::new();
    for r in all {
        let user = r
            .get("user")
            .and_then(|u| u.get("user"))
            .filter(|u| u.get("id").is_some_and(Value::is_string));
        let (Some(user), Some(kind), Some(at)) = (
            user,
            r.get("reactionType").filter(|k| k.is_string()),
            millis(r, "createdDateTime"),
        ) else {
            not_by_users += 1;
            continue;
        };
        let mut reaction = json!({
            "reactionType": kind,
            "createdDateTime": ms_text(at.min(now_ms)),
            "user": {"user": {
                "id": user.get("id"),
                "displayName": user.get("displayName"),
                "userIdentityType": "aadUser",
            }},
        });
        if let Some(d) = r.get("displayName").filter(|d| !d.is_null()) {
            reaction["displayName"] = d.clone();
        }
        by_users.push((at, reaction));
    }
    let mut over_limit = 0;
    if by_users.len() > MAX_REACTIONS {
        // The earliest keep their place; a tie keeps the earlier in the list.
        let mut order: Vec<usize> = (0..by_users.len()).collect();
        order.sort_by_key(|&i| (by_users[i].0, i));
        let keep: HashSet<usize> = order.into_iter().take(MAX_REACTIONS).collect();
        over_limit = (by_users.len() - MAX_REACTIONS) as u64;
        by_users = by_users
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, r)| r)
            .collect();
    }
    ImportReactions {
        kept: by_users.into_iter().map(|(_, r)| r).collect(),
        over_limit,
        not_by_users,
    }
}

fn user_id(m: &Value) -> Option<&str> {
    user_of(m).and_then(|u| u.get("id")).and_then(Value::as_str)
}

/// What a person calls a chat message: its subject, or the start of its text.
fn message_name(m: &Value) -> String {
    if let Some(s) = m
        .get("subject")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return s.to_string();
    }
    let text = content_of(m);
    let mut out: String = text.chars().take(60).collect();
    if text.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_and_times() {
        assert_eq!(message_name(&json!({"subject": "Plan"})), "Plan");
        let long = "x".repeat(80);
        let n = message_name(&json!({"body": {"content": long}}));
        assert_eq!(n.chars().count(), 61);
        let ms = millis(&json!({"t": "2024-01-02T03:04:05.678Z"}), "t").unwrap();
        assert_eq!(ms_text(ms), "2024-01-02T03:04:05.678Z");
        assert_eq!(millis(&json!({"t": "nope"}), "t"), None);
    }

    fn reaction(kind: &str, uid: &str, ms: i64) -> Value {
        json!({
            "reactionType": kind,
            "displayName": null,
            "createdDateTime": ms_text(ms),
            "user": {"application": null, "device": null,
                     "user": {"id": uid, "displayName": null, "userIdentityType": "aadUser"}},
        })
    }

    #[test]
    fn reactions_for_import_keep_users_earliest_250_in_order() {
        let base = 1_700_000_000_000;
        // 260 by users, latest first, and one by an app.
        let mut list: Vec<Value> = (0..260)
            .map(|i| reaction("like", &format!("u{i}"), base + 1000 * (260 - i)))
            .collect();
        list.insert(
            3,
            json!({"reactionType": "like", "createdDateTime": ms_text(base),
                   "user": {"application": {"id": "app"}, "user": null}}),
        );
        let r = reactions_for_import(&json!({ "reactions": list }), i64::MAX);
        assert_eq!(r.kept.len(), MAX_REACTIONS);
        assert_eq!(r.over_limit, 10);
        assert_eq!(r.not_by_users, 1);
        // The ten latest (u0..u9) are left out; the rest keep their order.
        let users: Vec<&str> = r
            .kept
            .iter()
            .map(|x| x["user"]["user"]["id"].as_str().unwrap())
            .collect();
        let want: Vec<String> = (10..260).map(|i| format!("u{i}")).collect();
        assert_eq!(users, want);
        assert_eq!(r.kept[0]["createdDateTime"], json!(ms_text(base + 250_000)));

        // A time ahead of now comes back as now; few reactions are all kept.
        let now = base + 5;
        let r = reactions_for_import(
            &json!({"reactions": [reaction("heart", "a", base), reaction("sad", "b", base + 60_000)]}),
            now,
        );
        assert_eq!((r.over_limit, r.not_by_users), (0, 0));
        let times: Vec<&Value> = r.kept.iter().map(|x| &x["createdDateTime"]).collect();
        assert_eq!(times, [&json!(ms_text(base)), &json!(ms_text(now))]);
        assert_eq!(r.kept[1]["reactionType"], "sad");
        assert!(reactions_for_import(&json!({}), now).kept.is_empty());
    }
}
