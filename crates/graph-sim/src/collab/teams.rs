//! Teams: team, members, channels (standard, private, shared), channel
//! members, channel messages and replies, `messages/delta`, and the message
//! import flow ("migration mode").
//!
//! Import rules follow Microsoft's "Import third-party platform messages to
//! Teams using Microsoft Graph"
//! (<https://learn.microsoft.com/microsoftteams/platform/graph-api/import-messages/import-external-messages-to-teams>)
//! and the v1.0 pages team-post, channel-post, channel-post-messages,
//! channel-startmigration, channel-completemigration and team-completemigration.
//! An imported message or reply may carry its `reactions` (the import doc's
//! content scope: "Up to 250 reactions"), each by a user of the tenant.
//!
//! Channel members follow channel-post-members and channel-delete-members
//! (private and shared channels only; roles `owner` or empty; a disabled
//! user is 404), and "Private channels in Microsoft Teams": only members of
//! the team join a private channel, and leaving the team leaves its private
//! channels.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};

use super::{GroupState, Person, find_group, ms_time, parse_body, slot, truth_item};
use crate::delta::{DeltaLog, TokenFlavor};
use crate::directory::{self, Group};
use crate::error::{GraphError, GraphResult};
use crate::odata::{self, GraphCtx, PageLimits, decode_token, encode_token};
use crate::rng::{self, SimRng, pick, rng_for};
use crate::{ActivityReport, Sim, TruthItem, generation_anchor, graph_time};

const CHANNEL_NAMES: &[&str] = &[
    "Announcements",
    "Planning",
    "Design",
    "Engineering",
    "Budget",
    "Customers",
    "Releases",
    "Random",
    "Field Notes",
    "Hiring",
    "Support Escalations",
    "Q3 Launch",
];
const PRIVATE_NAMES: &[&str] = &[
    "Leads",
    "Contracts",
    "Salaries",
    "Incident Room",
    "Board Prep",
];
const REACTIONS: &[&str] = &["like", "heart", "laugh", "surprised", "sad", "angry"];
/// The import doc's content scope: "Up to 250 reactions" per imported message.
const MAX_IMPORTED_REACTIONS: usize = 250;

/// What a team is, besides what the directory group already says.
pub(crate) struct Team {
    pub created: DateTime<Utc>,
    pub internal_id: String,
    pub archived: bool,
    pub specialization: String,
    pub member_settings: Value,
    pub guest_settings: Value,
    pub messaging_settings: Value,
    pub fun_settings: Value,
    /// Created with `teamCreationMode: migration` and not yet completed.
    pub migration: bool,
    pub channels: Vec<Channel>,
    pub operations: Vec<Value>,
}

pub(crate) struct Channel {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub membership: String,
    pub created: DateTime<Utc>,
    pub original_created: Option<DateTime<Utc>>,
    /// `inProgress` or `completed` once a migration happened; `None` otherwise.
    pub migration: Option<&'static str>,
    /// Members of a private or shared channel: (user id, owner).
    pub members: Vec<(String, bool)>,
    pub generated: bool,
    /// Top-level messages (replies live inside them); generated on first use.
    pub msgs: Option<DeltaLog<Msg>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Author {
    User { id: String, name: String },
    App { id: String, name: String },
}

#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub id: String,
    pub reply_to: Option<String>,
    pub created: i64,
    pub modified: i64,
    pub edited: Option<i64>,
    pub deleted: Option<i64>,
    pub subject: Option<String>,
    pub html: bool,
    pub content: String,
    pub from: Author,
    pub importance: String,
    pub mentions: Vec<Person>,
    /// (reaction type, user id, time in ms)
    pub reactions: Vec<(String, String, i64)>,
    /// (id, name, contentUrl) of reference attachments (files).
    pub attachments: Vec<(String, String, String)>,
    pub replies: Vec<Msg>,
}

fn thread_id(seed: u64, labels: &[&str]) -> String {
    format!(
        "19:{}@thread.tacv2",
        rng::stable_guid(seed, labels).simple()
    )
}

fn default_settings() -> (Value, Value, Value, Value) {
    (
        json!({
            "allowCreateUpdateChannels": true,
            "allowDeleteChannels": true,
            "allowAddRemoveApps": true,
            "allowCreateUpdateRemoveTabs": true,
            "allowCreateUpdateRemoveConnectors": true,
            "allowCreatePrivateChannels": true
        }),
        json!({"allowCreateUpdateChannels": false, "allowDeleteChannels": false}),
        json!({
            "allowUserEditMessages": true,
            "allowUserDeleteMessages": true,
            "allowOwnerDeleteMessages": true,
            "allowTeamMentions": true,
            "allowChannelMentions": true
        }),
        json!({
            "allowGiphy": true,
            "giphyContentRating": "moderate",
            "allowStickersAndMemes": true,
            "allowCustomMemes": true
        }),
    )
}

impl Team {
    /// A team as the seed generates it for a generated group.
    pub fn generate(sim: &Sim, g: &Group, people: &[Person]) -> Team {
        let seed = sim.seed();
        let mut r = rng_for(seed, &["collab", &g.id, "team"]);
        let created =
            super::parse_time(&g.created) + chrono::Duration::hours(r.random_range(1..48));
        let internal_id = thread_id(seed, &["collab", &g.id, "general"]);
        let (mut ms, gs, mut msg, mut fun) = default_settings();
        if r.random_bool(0.2) {
            ms["allowCreatePrivateChannels"] = json!(false);
        }
        if r.random_bool(0.15) {
            msg["allowUserEditMessages"] = json!(false);
        }
        if r.random_bool(0.3) {
            fun["giphyContentRating"] = json!("strict");
        }
        let span = (generation_anchor() - created).num_days().max(2);
        let mut channels = vec![Channel {
            id: internal_id.clone(),
            name: "General".into(),
            description: Some(g.description.clone()),
            membership: "standard".into(),
            created,
            original_created: None,
            migration: None,
            members: Vec::new(),
            generated: true,
            msgs: None,
        }];
        let n_std = r.random_range(1..=3);
        let mut used: BTreeSet<&str> = BTreeSet::new();
        for i in 0..n_std {
            let name = *pick(&mut r, CHANNEL_NAMES);
            if !used.insert(name) {
                continue;
            }
            channels.push(Channel {
                id: thread_id(seed, &["collab", &g.id, "channel", &i.to_string()]),
                name: name.to_string(),
                description: Some(rng::title(&mut r, 3, 7)),
                membership: "standard".into(),
                created: created + chrono::Duration::days(r.random_range(0..span / 2 + 1)),
                original_created: None,
                migration: None,
                members: Vec::new(),
                generated: true,
                msgs: None,
            });
        }
        let n_private = if people.len() >= 2 {
            r.random_range(0..=2)
        } else {
            0
        };
        for i in 0..n_private {
            let name = *pick(&mut r, PRIVATE_NAMES);
            if !used.insert(name) {
                continue;
            }
            let want = r.random_range(2..=people.len().min(4));
            let mut members: Vec<(String, bool)> = Vec::new();
            // The first owner of the team owns the channel; others join at random.
            members.push((people[0].id.clone(), true));
            while members.len() < want {
                let p = &people[r.random_range(0..people.len())];
                if !members.iter().any(|(id, _)| id == &p.id) {
                    members.push((p.id.clone(), false));
                }
            }
            channels.push(Channel {
                id: thread_id(seed, &["collab", &g.id, "private", &i.to_string()]),
                name: name.to_string(),
                description: Some(rng::title(&mut r, 3, 7)),
                membership: "private".into(),
                created: created + chrono::Duration::days(r.random_range(0..span / 2 + 1)),
                original_created: None,
                migration: None,
                members,
                generated: true,
                msgs: None,
            });
        }
        Team {
            created,
            internal_id,
            archived: false,
            specialization: "none".into(),
            member_settings: ms,
            guest_settings: gs,
            messaging_settings: msg,
            fun_settings: fun,
            migration: false,
            channels,
            operations: Vec::new(),
        }
    }

    /// A new team (created through the API, or a group restored without its
    /// data): only the General channel, no messages.
    pub fn new_empty(sim: &Sim, g: &Group, created: DateTime<Utc>, migration: bool) -> Team {
        let internal_id = format!("19:{}@thread.tacv2", uuid::Uuid::new_v4().simple());
        let _ = sim;
        let (ms, gs, msg, fun) = default_settings();
        Team {
            created,
            internal_id: internal_id.clone(),
            archived: false,
            specialization: "none".into(),
            member_settings: ms,
            guest_settings: gs,
            messaging_settings: msg,
            fun_settings: fun,
            migration,
            channels: vec![Channel {
                id: internal_id,
                name: "General".into(),
                description: Some(g.description.clone()),
                membership: "standard".into(),
                created,
                original_created: None,
                migration: migration.then_some("inProgress"),
                members: Vec::new(),
                generated: false,
                msgs: Some(DeltaLog::new()),
            }],
            operations: Vec::new(),
        }
    }

    pub fn json(&self, sim: &Sim, g: &Group) -> Value {
        let tenant = &sim.cfg.tenant_id;
        let owners = g.owners.len();
        json!({
            "id": g.id,
            "createdDateTime": ms_time(self.created.timestamp_millis()),
            "displayName": g.display_name,
            "description": g.description,
            "internalId": self.internal_id,
            "classification": null,
            "specialization": self.specialization,
            "visibility": g.visibility.to_ascii_lowercase(),
            "webUrl": format!(
                "https://teams.microsoft.com/l/team/{}/conversations?groupId={}&tenantId={}",
                odata::encode(&self.internal_id), g.id, tenant
            ),
            "isArchived": self.archived,
            "tenantId": tenant,
            "memberSettings": self.member_settings,
            "guestSettings": self.guest_settings,
            "messagingSettings": self.messaging_settings,
            "funSettings": self.fun_settings,
            "summary": {
                "ownersCount": owners,
                "membersCount": g.members.len().saturating_sub(owners.min(g.members.len())),
                "guestsCount": 0
            }
        })
    }

    fn channel_mut(&mut self, cid: &str) -> GraphResult<&mut Channel> {
        self.channels
            .iter_mut()
            .find(|c| c.id.eq_ignore_ascii_case(cid))
            .ok_or_else(|| not_found(format!("Channel '{cid}' was not found in the team.")))
    }

    pub fn truth(&mut self, sim: &Sim, g: &Group, people: &[Person]) -> Vec<TruthItem> {
        let mut out = Vec::new();
        let meta = json!({
            "displayName": g.display_name,
            "description": g.description,
            "visibility": g.visibility.to_ascii_lowercase(),
            "memberSettings": self.member_settings,
            "guestSettings": self.guest_settings,
            "messagingSettings": self.messaging_settings,
            "funSettings": self.fun_settings,
            "members": g.members,
            "owners": g.owners,
        });
        out.push(truth_item("channels", "Team".into(), &g.id, "team", &meta));
        for ch in self.channels.iter_mut() {
            let cv = json!({
                "displayName": ch.name,
                "description": ch.description,
                "membershipType": ch.membership,
                "members": ch.members.iter().map(|(id, owner)| json!({"userId": id, "owner": owner})).collect::<Vec<_>>(),
            });
            out.push(truth_item(
                "channels",
                format!("Channels/{}", ch.name),
                &ch.id,
                "channel",
                &cv,
            ));
            let ch_name = ch.name.clone();
            let log = ensure_msgs(sim, g, people, ch);
            for m in log.values() {
                for x in std::iter::once(m).chain(m.replies.iter()) {
                    if x.deleted.is_some() {
                        continue;
                    }
                    // Reactions are user-visible; their order is not.
                    let mut reactions: Vec<(&str, &str, i64)> = x
                        .reactions
                        .iter()
                        .map(|(kind, uid, t)| (kind.as_str(), uid.as_str(), *t))
                        .collect();
                    reactions.sort();
                    let v = json!({
                        "body": {"contentType": if x.html {"html"} else {"text"}, "content": x.content},
                        "from": author_json(&x.from),
                        "createdDateTime": ms_time(x.created),
                        "subject": x.subject,
                        "reactions": reactions
                            .iter()
                            .map(|(kind, uid, t)| json!([kind, uid, ms_time(*t)]))
                            .collect::<Vec<_>>(),
                    });
                    out.push(truth_item(
                        "channels",
                        format!("Channels/{}/{}", ch_name, x.id),
                        &x.id,
                        "chatMessage",
                        &v,
                    ));
                }
            }
        }
        out
    }

    pub fn simulate_day(
        &mut self,
        sim: &Sim,
        g: &Group,
        people: &[Person],
        rng: &mut SimRng,
        report: &mut ActivityReport,
    ) {
        if self.migration {
            return;
        }
        let now = sim.now().timestamp_millis();
        if rng.random_bool(0.03) {
            let base = *pick(rng, CHANNEL_NAMES);
            let mut name = base.to_string();
            let mut n = 2;
            while self
                .channels
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(&name))
            {
                name = format!("{base} {n}");
                n += 1;
            }
            self.channels.push(Channel {
                id: format!("19:{}@thread.tacv2", uuid::Uuid::new_v4().simple()),
                name,
                description: Some(rng::title(rng, 3, 6)),
                membership: "standard".into(),
                created: sim.now(),
                original_created: None,
                migration: None,
                members: Vec::new(),
                generated: false,
                msgs: Some(DeltaLog::new()),
            });
            report.created += 1;
        }
        let idx = rng.random_range(0..self.channels.len());
        let ch = &mut self.channels[idx];
        if ch.migration == Some("inProgress") {
            return;
        }
        // Private and shared channels hear only from their own members.
        let authors: Vec<Person> = people
            .iter()
            .filter(|p| ch.membership == "standard" || ch.members.iter().any(|(id, _)| id == &p.id))
            .cloned()
            .collect();
        if authors.is_empty() {
            return;
        }
        let log = ensure_msgs(sim, g, people, ch);
        let mut used = used_ms(log);
        let author = |rng: &mut SimRng| {
            let p = &authors[rng.random_range(0..authors.len())];
            Author::User {
                id: p.id.clone(),
                name: p.name.clone(),
            }
        };
        for _ in 0..rng.random_range(0..=3) {
            let t = unique_ms(&mut used, now - rng.random_range(0..3_600_000));
            let who = author(rng);
            let n = rng.random_range(1..=3);
            let m = new_msg(t, None, who, rng::paragraph(rng, n), false);
            log.upsert(m.id.clone(), m, sim.next_seq());
            report.created += 1;
        }
        let ids: Vec<String> = log
            .iter()
            .filter(|(_, m)| m.deleted.is_none())
            .map(|(k, _)| k.to_string())
            .collect();
        if ids.is_empty() {
            return;
        }
        for _ in 0..rng.random_range(0..=2) {
            let pid = &ids[rng.random_range(0..ids.len())];
            let t = unique_ms(&mut used, now - rng.random_range(0..3_600_000));
            let m = new_msg(
                t,
                Some(pid.clone()),
                author(rng),
                rng::paragraph(rng, 1),
                false,
            );
            if let Some(parent) = log.get_mut(pid, sim.next_seq()) {
                parent.replies.push(m);
                report.created += 1;
            }
        }
        if rng.random_bool(0.3) {
            let id = &ids[rng.random_range(0..ids.len())];
            let text = rng::paragraph(rng, 2);
            if let Some(m) = log.get_mut(id, sim.next_seq()) {
                m.content = text;
                m.html = false;
                m.edited = Some(now);
                m.modified = now;
                report.modified += 1;
            }
        }
        if rng.random_bool(0.1) {
            let id = &ids[rng.random_range(0..ids.len())];
            if let Some(m) = log.get_mut(id, sim.next_seq()) {
                m.deleted = Some(now);
                m.modified = now;
                report.deleted += 1;
            }
        }
    }
}

fn new_msg(t: i64, reply_to: Option<String>, from: Author, content: String, html: bool) -> Msg {
    Msg {
        id: t.to_string(),
        reply_to,
        created: t,
        modified: t,
        edited: None,
        deleted: None,
        subject: None,
        html,
        content,
        from,
        importance: "normal".into(),
        mentions: Vec::new(),
        reactions: Vec::new(),
        attachments: Vec::new(),
        replies: Vec::new(),
    }
}

/// Every message id (a millisecond timestamp) in use in a channel.
fn used_ms(log: &DeltaLog<Msg>) -> BTreeSet<i64> {
    let mut s = BTreeSet::new();
    for m in log.values() {
        s.insert(m.created);
        for r in &m.replies {
            s.insert(r.created);
        }
    }
    s
}

fn unique_ms(used: &mut BTreeSet<i64>, mut t: i64) -> i64 {
    while used.contains(&t) {
        t += 1;
    }
    used.insert(t);
    t
}

/// The channel's messages, generated from the seed the first time.
pub(crate) fn ensure_msgs<'a>(
    sim: &Sim,
    g: &Group,
    people: &[Person],
    ch: &'a mut Channel,
) -> &'a mut DeltaLog<Msg> {
    if ch.msgs.is_none() {
        let log = if ch.generated {
            generate_msgs(sim, g, people, ch)
        } else {
            DeltaLog::new()
        };
        ch.msgs = Some(log);
    }
    ch.msgs.get_or_insert_with(DeltaLog::new)
}

fn generate_msgs(sim: &Sim, g: &Group, people: &[Person], ch: &Channel) -> DeltaLog<Msg> {
    let mut log = DeltaLog::new();
    let authors: Vec<&Person> = if ch.membership == "standard" {
        people.iter().collect()
    } else {
        people
            .iter()
            .filter(|p| ch.members.iter().any(|(id, _)| id == &p.id))
            .collect()
    };
    if authors.is_empty() {
        return log;
    }
    let mut r = rng_for(sim.seed(), &["collab", &g.id, "msgs", &ch.id]);
    let n = ((r.random_range(6..=24) as f64) * sim.cfg.content_scale).round() as usize;
    let start = ch.created.timestamp_millis() + 60_000;
    let end = (generation_anchor() - chrono::Duration::hours(2)).timestamp_millis();
    if end <= start {
        return log;
    }
    let mut times: Vec<i64> = (0..n).map(|_| r.random_range(start..end)).collect();
    times.sort();
    let mut used = BTreeSet::new();
    let person = |r: &mut SimRng| authors[r.random_range(0..authors.len())].clone();
    for t in times {
        let t = unique_ms(&mut used, t);
        let p = person(&mut r);
        let mut m = new_msg(
            t,
            None,
            Author::User {
                id: p.id.clone(),
                name: p.name.clone(),
            },
            {
                let k = r.random_range(1..=3);
                rng::paragraph(&mut r, k)
            },
            false,
        );
        if r.random_bool(0.2) {
            m.subject = Some(rng::title(&mut r, 2, 6));
        }
        if r.random_bool(0.05) {
            m.importance = "high".into();
        }
        if r.random_bool(0.15) {
            let who = person(&mut r);
            m.content = format!(
                "<p><at id=\"0\">{}</at> {}</p>",
                html_escape(&who.name),
                html_escape(&m.content)
            );
            m.html = true;
            m.mentions.push(who);
        }
        if r.random_bool(0.08) {
            let name = format!("{}.docx", rng::title(&mut r, 1, 3));
            let url = format!(
                "https://{}.sharepoint.com/sites/{}/Shared%20Documents/{}/{}",
                sim.cfg.domain.split('.').next().unwrap_or("contoso"),
                g.mail_nickname,
                odata::encode(&ch.name),
                odata::encode(&name)
            );
            let id = rng::stable_guid(sim.seed(), &["collab", &ch.id, "att", &m.id]).to_string();
            m.content = format!(
                "{}<attachment id=\"{id}\"></attachment>",
                if m.html {
                    m.content.clone()
                } else {
                    format!("<p>{}</p>", html_escape(&m.content))
                }
            );
            m.html = true;
            m.attachments.push((id, name, url));
        }
        let mut last = t;
        if r.random_bool(0.2) {
            for _ in 0..r.random_range(1..=3) {
                let at = t + r.random_range(60_000..86_400_000);
                let who = person(&mut r);
                let kind = *pick(&mut r, REACTIONS);
                m.reactions.push((kind.to_string(), who.id, at));
                last = last.max(at);
            }
        }
        if r.random_bool(0.35) {
            for _ in 0..r.random_range(1..=4) {
                let rt = unique_ms(&mut used, t + r.random_range(60_000..3 * 86_400_000));
                let rp = person(&mut r);
                let reply = new_msg(
                    rt,
                    Some(m.id.clone()),
                    Author::User {
                        id: rp.id,
                        name: rp.name,
                    },
                    rng::paragraph(&mut r, 1),
                    false,
                );
                m.replies.push(reply);
            }
            m.replies.sort_by_key(|x| x.created);
        }
        if r.random_bool(0.1) {
            let at = t + r.random_range(60_000..2 * 86_400_000);
            m.edited = Some(at);
            last = last.max(at);
        }
        if r.random_bool(0.04) {
            let at = t + r.random_range(60_000..86_400_000);
            m.deleted = Some(at);
            last = last.max(at);
        }
        m.modified = last;
        log.upsert(m.id.clone(), m, 0);
    }
    log
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn user_identity(id: &str, name: Option<&str>) -> Value {
    json!({
        "@odata.type": "#microsoft.graph.teamworkUserIdentity",
        "id": id,
        "displayName": name,
        "userIdentityType": "aadUser"
    })
}

fn author_json(a: &Author) -> Value {
    match a {
        Author::User { id, name } => json!({
            "application": null,
            "device": null,
            "user": user_identity(id, Some(name)),
        }),
        Author::App { id, name } => json!({
            "application": {
                "@odata.type": "#microsoft.graph.teamworkApplicationIdentity",
                "id": id,
                "displayName": name,
                "applicationIdentityType": "aadApplication"
            },
            "device": null,
            "user": null,
        }),
    }
}

/// Where a message lives, for its JSON.
struct Place<'a> {
    team: &'a str,
    channel: &'a str,
    tenant: &'a str,
}

fn msg_json(m: &Msg, at: &Place<'_>, expand_replies: bool) -> Value {
    let parent = m.reply_to.as_deref().unwrap_or(&m.id);
    let content = if m.deleted.is_some() {
        ""
    } else {
        m.content.as_str()
    };
    let mut v = json!({
        "@odata.type": "#microsoft.graph.chatMessage",
        "id": m.id,
        "replyToId": m.reply_to,
        "etag": m.modified.to_string(),
        "messageType": "message",
        "createdDateTime": ms_time(m.created),
        "lastModifiedDateTime": ms_time(m.modified),
        "lastEditedDateTime": m.edited.map(ms_time),
        "deletedDateTime": m.deleted.map(ms_time),
        "subject": m.subject,
        "summary": null,
        "chatId": null,
        "importance": m.importance,
        "locale": "en-us",
        "webUrl": format!(
            "https://teams.microsoft.com/l/message/{}/{}?groupId={}&tenantId={}&createdTime={}&parentMessageId={}",
            odata::encode(at.channel), m.id, at.team, at.tenant, m.created, parent
        ),
        "policyViolation": null,
        "eventDetail": null,
        "from": author_json(&m.from),
        "body": {"contentType": if m.html { "html" } else { "text" }, "content": content},
        "channelIdentity": {"teamId": at.team, "channelId": at.channel},
        "attachments": m.attachments.iter().map(|(id, name, url)| json!({
            "id": id, "contentType": "reference", "contentUrl": url, "content": null,
            "name": name, "thumbnailUrl": null, "teamsAppId": null
        })).collect::<Vec<_>>(),
        "mentions": m.mentions.iter().enumerate().map(|(i, p)| json!({
            "id": i, "mentionText": p.name,
            "mentioned": {"application": null, "device": null, "conversation": null,
                "user": user_identity(&p.id, Some(&p.name))}
        })).collect::<Vec<_>>(),
        "reactions": m.reactions.iter().map(|(kind, uid, t)| json!({
            "reactionType": kind, "displayName": null, "reactionContentUrl": null,
            "createdDateTime": ms_time(*t),
            "user": {"application": null, "device": null, "user": user_identity(uid, None)}
        })).collect::<Vec<_>>(),
        "messageHistory": [],
    });
    if expand_replies && m.reply_to.is_none() {
        v["replies"] = Value::Array(
            m.replies
                .iter()
                .take(1000)
                .map(|r| msg_json(r, at, false))
                .collect(),
        );
    }
    v
}

fn channel_json(sim: &Sim, g: &Group, ch: &Channel) -> Value {
    json!({
        "id": ch.id,
        "createdDateTime": ms_time(ch.created.timestamp_millis()),
        "displayName": ch.name,
        "description": ch.description,
        "isFavoriteByDefault": null,
        "email": "",
        "tenantId": sim.cfg.tenant_id,
        "webUrl": format!(
            "https://teams.microsoft.com/l/channel/{}/{}?groupId={}&tenantId={}",
            odata::encode(&ch.id), odata::encode(&ch.name), g.id, sim.cfg.tenant_id
        ),
        "membershipType": ch.membership,
        "isArchived": false,
        "layoutType": "post",
        "migrationMode": ch.migration,
        "originalCreatedDateTime": ch.original_created.map(|t| ms_time(t.timestamp_millis())),
    })
}

/// Teams answers a missing team, channel or message with `NotFound`.
fn not_found(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::NOT_FOUND, "NotFound", message)
}

fn team_not_found(id: &str) -> GraphError {
    not_found(format!("No team found with Group Id {id}"))
}

fn msg_not_found(id: &str) -> GraphError {
    not_found(format!("Message '{id}' was not found in the channel."))
}

/// The group of a team, its state, and a closure over the team.
fn with_team<R>(
    sim: &Sim,
    tid: &str,
    write: bool,
    f: impl FnOnce(&mut Team, &Group, &[Person]) -> GraphResult<R>,
) -> GraphResult<R> {
    let g = sim
        .directory
        .read()
        .group(tid)
        .cloned()
        .filter(|g| g.team)
        .ok_or_else(|| team_not_found(tid))?;
    let s = slot(sim, &g);
    let mut guard = if write { s.write() } else { s.read() };
    let state: &mut GroupState = &mut guard;
    let people = state.people.clone();
    let team = state.team.as_mut().ok_or_else(|| team_not_found(tid))?;
    f(team, &g, &people)
}

fn member_id(scope: &str, uid: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("0#{scope}#{uid}"))
}

fn member_json(sim: &Sim, scope: &str, uid: &str, owner: bool) -> Option<Value> {
    let dir = sim.directory.read();
    let u = dir.user(uid)?;
    Some(json!({
        "@odata.type": "#microsoft.graph.aadUserConversationMember",
        "id": member_id(scope, &u.id),
        "roles": if owner { vec!["owner"] } else { vec![] },
        "displayName": u.display_name,
        "visibleHistoryStartDateTime": "0001-01-01T00:00:00Z",
        "userId": u.id,
        "email": u.mail.clone().unwrap_or_else(|| u.upn.clone()),
        "tenantId": sim.cfg.tenant_id,
    }))
}

fn team_members(sim: &Sim, g: &Group) -> Vec<Value> {
    let mut ids: Vec<&String> = g.owners.iter().collect();
    for m in &g.members {
        if !ids.contains(&m) {
            ids.push(m);
        }
    }
    ids.into_iter()
        .filter_map(|id| member_json(sim, &g.id, id, g.owners.contains(id)))
        .collect()
}

/// The user id an `aadUserConversationMember`'s `user@odata.bind` points at.
fn bound_user(sim: &Sim, member: &Value) -> GraphResult<(String, bool)> {
    let bind = member
        .get("user@odata.bind")
        .and_then(Value::as_str)
        .or_else(|| member.get("userId").and_then(Value::as_str))
        .ok_or_else(|| GraphError::bad_request("Member must specify 'user@odata.bind'."))?;
    let key = if let (Some(a), Some(b)) = (bind.find("('"), bind.rfind("')")) {
        bind.get(a + 2..b).unwrap_or("")
    } else {
        bind.trim_end_matches('/').rsplit('/').next().unwrap_or("")
    };
    let uid = sim
        .directory
        .read()
        .user(key)
        .map(|u| u.id.clone())
        .ok_or_else(|| GraphError::directory_not_found(key))?;
    let owner = member
        .get("roles")
        .and_then(Value::as_array)
        .is_some_and(|r| {
            r.iter()
                .any(|x| x.as_str().is_some_and(|s| s.eq_ignore_ascii_case("owner")))
        });
    Ok((uid, owner))
}

fn parse_client_time(v: &Value, field: &str) -> GraphResult<Option<DateTime<Utc>>> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                GraphError::bad_request(format!("Invalid value '{s}' for property '{field}'."))
            }),
        Some(other) => Err(GraphError::bad_request(format!(
            "Invalid value '{other}' for property '{field}'."
        ))),
    }
}

fn location_headers(
    mut resp: Response,
    location: &str,
    content_location: Option<&str>,
) -> Response {
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(cl) = content_location.and_then(|c| HeaderValue::from_str(c).ok()) {
        resp.headers_mut().insert(header::CONTENT_LOCATION, cl);
    }
    resp
}

fn ctx_team(ctx: &GraphCtx, tid: &str) -> String {
    let _ = ctx;
    format!("teams('{tid}')")
}

// ---------------------------------------------------------------- handlers

async fn get_team(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
) -> GraphResult<Json<Value>> {
    let v = with_team(&sim, &tid, false, |team, g, _| Ok(team.json(&sim, g)))?;
    Ok(Json(odata::entity(&ctx, "teams", v, None)))
}

fn apply_team_patch(sim: &Sim, team: &mut Team, gid: &str, body: &Value) -> GraphResult<()> {
    for (field, target) in [
        ("memberSettings", &mut team.member_settings),
        ("guestSettings", &mut team.guest_settings),
        ("messagingSettings", &mut team.messaging_settings),
        ("funSettings", &mut team.fun_settings),
    ] {
        if let Some(Value::Object(m)) = body.get(field) {
            for (k, v) in m {
                if k.starts_with('@') {
                    continue;
                }
                target[k] = v.clone();
            }
        }
    }
    if let Some(v) = body.get("isArchived").and_then(Value::as_bool) {
        team.archived = v;
    }
    if let Some(v) = body.get("specialization").and_then(Value::as_str) {
        team.specialization = v.to_string();
    }
    let mut dir = sim.directory.write();
    if let Some(g) = dir.group_mut(gid) {
        if let Some(v) = body.get("displayName").and_then(Value::as_str) {
            g.display_name = v.to_string();
        }
        if let Some(v) = body.get("description").and_then(Value::as_str) {
            g.description = v.to_string();
        }
        if let Some(v) = body.get("visibility").and_then(Value::as_str) {
            g.visibility = match v.to_ascii_lowercase().as_str() {
                "public" => "Public".into(),
                "private" => "Private".into(),
                other => {
                    return Err(GraphError::bad_request(format!(
                        "Invalid value '{other}' for property 'visibility'."
                    )));
                }
            };
        }
    }
    Ok(())
}

async fn patch_team(
    State(sim): State<Arc<Sim>>,
    Path(tid): Path<String>,
    body: Bytes,
) -> GraphResult<StatusCode> {
    let body = parse_body(&body)?;
    with_team(&sim, &tid, true, |team, g, _| {
        apply_team_patch(&sim, team, &g.id, &body)
    })?;
    Ok(StatusCode::NO_CONTENT)
}

fn team_visibility(body: &Value) -> GraphResult<String> {
    match body.get("visibility").and_then(Value::as_str) {
        None => Ok("Private".into()),
        Some(v) if v.eq_ignore_ascii_case("private") => Ok("Private".into()),
        Some(v) if v.eq_ignore_ascii_case("public") => Ok("Public".into()),
        Some(v) => Err(GraphError::bad_request(format!(
            "Invalid value '{v}' for property 'visibility'."
        ))),
    }
}

/// `POST /teams`: a new team (and its group), answered with 202 and the
/// location of a teamsAsyncOperation, as team-post documents. With
/// `"@microsoft.graph.teamCreationMode": "migration"` the team is created in
/// migration mode with a back-dated `createdDateTime`.
async fn create_team(State(sim): State<Arc<Sim>>, body: Bytes) -> GraphResult<Response> {
    let body = parse_body(&body)?;
    if body
        .get("template@odata.bind")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(GraphError::bad_request(
            "A team template is required: set 'template@odata.bind'.",
        ));
    }
    let migration = match body.get("@microsoft.graph.teamCreationMode") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "migration" => true,
        Some(other) => {
            return Err(GraphError::bad_request(format!(
                "Invalid value '{other}' for instance attribute 'teamCreationMode'."
            )));
        }
    };
    let now = sim.now();
    let created = parse_client_time(&body, "createdDateTime")?;
    if let Some(c) = created {
        // Import doc, step one: a back-in-time createdDateTime needs teamCreationMode
        // "migration", and it may not lie in the future (400 for both).
        if !migration {
            return Err(GraphError::bad_request(
                "'createdDateTime' can only be set when '@microsoft.graph.teamCreationMode' is 'migration'.",
            ));
        }
        if c > now {
            return Err(GraphError::bad_request(
                "'createdDateTime' cannot be in the future.",
            ));
        }
    }
    let mut owners = Vec::new();
    let mut members = Vec::new();
    for m in body
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (uid, owner) = bound_user(&sim, m)?;
        let bind = format!("https://graph.microsoft.com/v1.0/users/{uid}");
        if owner {
            owners.push(json!(bind.clone()));
        }
        members.push(json!(bind));
    }
    if !migration && owners.is_empty() {
        return Err(GraphError::bad_request(
            "A team created with application permissions must have at least one owner in 'members'.",
        ));
    }
    let visibility = team_visibility(&body)?;
    let gbody = json!({
        "displayName": body.get("displayName").cloned().unwrap_or(Value::Null),
        "description": body.get("description").and_then(Value::as_str).unwrap_or(""),
        "visibility": visibility,
        "groupTypes": ["Unified"],
        "owners@odata.bind": owners,
        "members@odata.bind": members,
    });
    let g = directory::create_group_from(&sim, &gbody, true)?;
    let mut team = Team::new_empty(&sim, &g, created.unwrap_or(now), migration);
    apply_team_patch(
        &sim,
        &mut team,
        &g.id,
        &json!({
            "memberSettings": body.get("memberSettings").cloned().unwrap_or(Value::Null),
            "guestSettings": body.get("guestSettings").cloned().unwrap_or(Value::Null),
            "messagingSettings": body.get("messagingSettings").cloned().unwrap_or(Value::Null),
            "funSettings": body.get("funSettings").cloned().unwrap_or(Value::Null),
        }),
    )?;
    let op_id = uuid::Uuid::new_v4().to_string();
    team.operations.push(json!({
        "id": op_id,
        "operationType": "createTeam",
        "createdDateTime": graph_time(now),
        "status": "succeeded",
        "lastActionDateTime": graph_time(now),
        "attemptsCount": 1,
        "targetResourceId": g.id,
        "targetResourceLocation": format!("/teams('{}')", g.id),
        "error": null,
    }));
    let people = super::people_of(&sim, &g);
    sim.collab.groups.insert(
        &g.id,
        GroupState {
            people,
            team: Some(team),
            convs: Some(super::conversations::Convs::default()),
        },
    );
    let resp = StatusCode::ACCEPTED.into_response();
    Ok(location_headers(
        resp,
        &format!("/teams('{}')/operations('{op_id}')", g.id),
        Some(&format!("/teams('{}')", g.id)),
    ))
}

/// `PUT /groups/{id}/team`: turns an existing Microsoft 365 group into a team.
async fn put_group_team(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(gid): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_body(&body)?;
    let g = find_group(&sim, &gid)?;
    if !g.unified {
        return Err(GraphError::bad_request(
            "A team can only be created for a Microsoft 365 group.",
        ));
    }
    if g.team {
        return Err(GraphError::conflict(
            "Conflict",
            format!("A team already exists for group {}.", g.id),
        ));
    }
    let s = slot(&sim, &g);
    {
        let mut dir = sim.directory.write();
        if let Some(dg) = dir.group_mut(&g.id) {
            dg.team = true;
        }
    }
    let g = find_group(&sim, &g.id)?;
    let mut state = s.write();
    let mut team = Team::new_empty(&sim, &g, sim.now(), false);
    apply_team_patch(
        &sim,
        &mut team,
        &g.id,
        &json!({
            "memberSettings": body.get("memberSettings").cloned().unwrap_or(Value::Null),
            "guestSettings": body.get("guestSettings").cloned().unwrap_or(Value::Null),
            "messagingSettings": body.get("messagingSettings").cloned().unwrap_or(Value::Null),
            "funSettings": body.get("funSettings").cloned().unwrap_or(Value::Null),
        }),
    )?;
    let v = team.json(&sim, &g);
    state.team = Some(team);
    Ok((
        StatusCode::CREATED,
        Json(odata::entity(&ctx, "teams", v, None)),
    )
        .into_response())
}

async fn get_operation(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, oid)): Path<(String, String)>,
) -> GraphResult<Json<Value>> {
    let v = with_team(&sim, &tid, false, |team, _, _| {
        team.operations
            .iter()
            .find(|o| o["id"].as_str() == Some(oid.as_str()))
            .cloned()
            .ok_or_else(|| not_found(format!("Operation '{oid}' was not found.")))
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("{}/operations", ctx_team(&ctx, &tid)),
        v,
        None,
    )))
}

/// team: completeMigration (v1.0): 204; 400 when the team is not in migration
/// mode (import doc, step four).
async fn complete_team_migration(
    State(sim): State<Arc<Sim>>,
    Path(tid): Path<String>,
) -> GraphResult<StatusCode> {
    with_team(&sim, &tid, true, |team, _, _| {
        if !team.migration {
            return Err(GraphError::bad_request(
                "The team is not in migration mode.",
            ));
        }
        team.migration = false;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_members(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
) -> GraphResult<Json<Value>> {
    let g = with_team(&sim, &tid, false, |_, g, _| Ok(g.clone()))?;
    let items = team_members(&sim, &g);
    Ok(Json(odata::collection(
        &ctx,
        &format!("{}/members", ctx_team(&ctx, &tid)),
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

async fn get_member(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, mid)): Path<(String, String)>,
) -> GraphResult<Json<Value>> {
    let g = with_team(&sim, &tid, false, |_, g, _| Ok(g.clone()))?;
    let v = team_members(&sim, &g)
        .into_iter()
        .find(|m| m["id"].as_str() == Some(mid.as_str()))
        .ok_or_else(|| not_found(format!("Member '{mid}' was not found in the team.")))?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("{}/members", ctx_team(&ctx, &tid)),
        v,
        None,
    )))
}

/// Adds a member (or owner) to the team, which adds them to its group.
async fn add_member(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_body(&body)?;
    let (uid, owner) = bound_user(&sim, &body)?;
    refuse_disabled(&sim, &uid)?;
    let gid = with_team(&sim, &tid, false, |team, g, _| {
        if team.migration {
            // team: completeMigration: membership operations are barred in migration mode.
            return Err(GraphError::bad_request(
                "Members cannot be added while the team is in migration mode.",
            ));
        }
        Ok(g.id.clone())
    })?;
    {
        let mut dir = sim.directory.write();
        if let Some(g) = dir.group_mut(&gid) {
            if !g.members.contains(&uid) {
                g.members.push(uid.clone());
            }
            if owner && !g.owners.contains(&uid) {
                g.owners.push(uid.clone());
            }
        }
    }
    let v = member_json(&sim, &gid, &uid, owner)
        .ok_or_else(|| GraphError::directory_not_found(&uid))?;
    Ok((
        StatusCode::CREATED,
        Json(odata::entity(
            &ctx,
            &format!("{}/members", ctx_team(&ctx, &tid)),
            v,
            None,
        )),
    )
        .into_response())
}

async fn remove_member(
    State(sim): State<Arc<Sim>>,
    Path((tid, mid)): Path<(String, String)>,
) -> GraphResult<StatusCode> {
    let g = with_team(&sim, &tid, false, |_, g, _| Ok(g.clone()))?;
    let uid = g
        .members
        .iter()
        .chain(g.owners.iter())
        .find(|u| member_id(&g.id, u) == mid)
        .cloned()
        .ok_or_else(|| not_found(format!("Member '{mid}' was not found in the team.")))?;
    {
        let mut dir = sim.directory.write();
        if let Some(dg) = dir.group_mut(&g.id) {
            dg.members.retain(|m| m != &uid);
            dg.owners.retain(|m| m != &uid);
        }
    }
    left_team(&sim, &g.id, &uid);
    Ok(StatusCode::NO_CONTENT)
}

async fn list_channels(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
) -> GraphResult<Json<Value>> {
    let items = with_team(&sim, &tid, false, |team, g, _| {
        Ok(team
            .channels
            .iter()
            .map(|c| channel_json(&sim, g, c))
            .collect::<Vec<_>>())
    })?;
    Ok(Json(odata::collection(
        &ctx,
        &format!("{}/channels", ctx_team(&ctx, &tid)),
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

async fn get_channel(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid)): Path<(String, String)>,
) -> GraphResult<Json<Value>> {
    let v = with_team(&sim, &tid, false, |team, g, _| {
        let ch = team.channel_mut(&cid)?;
        Ok(channel_json(&sim, g, ch))
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("{}/channels", ctx_team(&ctx, &tid)),
        v,
        None,
    )))
}

async fn primary_channel(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
) -> GraphResult<Json<Value>> {
    let v = with_team(&sim, &tid, false, |team, g, _| {
        let ch = team
            .channels
            .first()
            .ok_or_else(|| not_found("The team has no General channel."))?;
        Ok(channel_json(&sim, g, ch))
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("{}/primaryChannel", ctx_team(&ctx, &tid)),
        v,
        None,
    )))
}

/// `POST /teams/{id}/channels`: 201 with the channel. With
/// `"@microsoft.graph.channelCreationMode": "migration"` the channel starts in
/// migration mode, back-dated to `createdDateTime` (channel-post, example 3).
async fn create_channel(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_body(&body)?;
    let name = body
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GraphError::bad_request("Property 'displayName' is required."))?
        .to_string();
    let migration = match body.get("@microsoft.graph.channelCreationMode") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) if s == "migration" => true,
        Some(other) => {
            return Err(GraphError::bad_request(format!(
                "Invalid value '{other}' for instance attribute 'channelCreationMode'."
            )));
        }
    };
    let now = sim.now();
    let created = parse_client_time(&body, "createdDateTime")?;
    if let Some(c) = created {
        if !migration {
            return Err(GraphError::bad_request(
                "'createdDateTime' can only be set when '@microsoft.graph.channelCreationMode' is 'migration'.",
            ));
        }
        if c > now {
            return Err(GraphError::bad_request(
                "'createdDateTime' cannot be in the future.",
            ));
        }
    }
    let membership = body
        .get("membershipType")
        .and_then(Value::as_str)
        .unwrap_or("standard")
        .to_string();
    if !matches!(membership.as_str(), "standard" | "private" | "shared") {
        return Err(GraphError::bad_request(format!(
            "Invalid value '{membership}' for property 'membershipType'."
        )));
    }
    let mut members = Vec::new();
    for m in body
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        members.push(bound_user(&sim, m)?);
    }
    if membership != "standard" && !members.iter().any(|(_, o)| *o) {
        return Err(GraphError::bad_request(
            "A private or shared channel created with application permissions needs an owner in 'members'.",
        ));
    }
    let v = with_team(&sim, &tid, true, |team, g, _| {
        if team
            .channels
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&name))
        {
            return Err(GraphError::bad_request(
                "Channel name already existed, please use other name.",
            ));
        }
        let ch = Channel {
            id: format!("19:{}@thread.tacv2", uuid::Uuid::new_v4().simple()),
            name: name.clone(),
            description: body
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            membership: membership.clone(),
            created: created.unwrap_or(now),
            original_created: None,
            migration: migration.then_some("inProgress"),
            members: if membership == "standard" {
                Vec::new()
            } else {
                members.clone()
            },
            generated: false,
            msgs: Some(DeltaLog::new()),
        };
        let v = channel_json(&sim, g, &ch);
        team.channels.push(ch);
        Ok(v)
    })?;
    let cid = v["id"].as_str().unwrap_or_default().to_string();
    let resp = (
        StatusCode::CREATED,
        Json(odata::entity(
            &ctx,
            &format!("{}/channels", ctx_team(&ctx, &tid)),
            v,
            None,
        )),
    )
        .into_response();
    Ok(if migration {
        location_headers(resp, &format!("/teams('{tid}')/channels('{cid}')"), None)
    } else {
        resp
    })
}

async fn patch_channel(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<StatusCode> {
    let body = parse_body(&body)?;
    with_team(&sim, &tid, true, |team, _, _| {
        if let Some(name) = body.get("displayName").and_then(Value::as_str) {
            let clash = team
                .channels
                .iter()
                .any(|c| !c.id.eq_ignore_ascii_case(&cid) && c.name.eq_ignore_ascii_case(name));
            if clash {
                return Err(GraphError::bad_request(
                    "Channel name already existed, please use other name.",
                ));
            }
            let is_general = team
                .channels
                .first()
                .is_some_and(|c| c.id.eq_ignore_ascii_case(&cid));
            if is_general && name != "General" {
                return Err(GraphError::bad_request(
                    "The General channel cannot be renamed.",
                ));
            }
        }
        let ch = team.channel_mut(&cid)?;
        if let Some(name) = body.get("displayName").and_then(Value::as_str) {
            ch.name = name.to_string();
        }
        if let Some(d) = body.get("description") {
            ch.description = d.as_str().map(str::to_string);
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_channel(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid)): Path<(String, String)>,
) -> GraphResult<StatusCode> {
    with_team(&sim, &tid, true, |team, _, _| {
        let pos = team
            .channels
            .iter()
            .position(|c| c.id.eq_ignore_ascii_case(&cid))
            .ok_or_else(|| not_found(format!("Channel '{cid}' was not found in the team.")))?;
        if pos == 0 {
            return Err(GraphError::bad_request(
                "The General channel cannot be deleted.",
            ));
        }
        team.channels.remove(pos);
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn channel_members(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid)): Path<(String, String)>,
) -> GraphResult<Json<Value>> {
    let items = with_team(&sim, &tid, false, |team, g, _| {
        let ch = team.channel_mut(&cid)?;
        if ch.membership == "standard" {
            return Ok(team_members(&sim, g));
        }
        Ok(ch
            .members
            .iter()
            .filter_map(|(uid, owner)| member_json(&sim, &ch.id, uid, *owner))
            .collect())
    })?;
    Ok(Json(odata::collection(
        &ctx,
        &format!("{}/channels('{cid}')/members", ctx_team(&ctx, &tid)),
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

/// A conversationMember's `roles`, as channel-post-members takes them:
/// "Must be `owner` or empty".
fn check_member_roles(member: &Value) -> GraphResult<()> {
    match member.get("roles") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(roles)) => {
            for r in roles {
                if !r.as_str().is_some_and(|s| s.eq_ignore_ascii_case("owner")) {
                    return Err(GraphError::bad_request(format!(
                        "Invalid role {r} for a channel member: it must be 'owner' or empty."
                    )));
                }
            }
            Ok(())
        }
        Some(other) => Err(GraphError::bad_request(format!(
            "Invalid value '{other}' for property 'roles'."
        ))),
    }
}

/// team-post-members and channel-post-members: "The response code 404 Not
/// Found is returned when you attempt to add a disabled/blocked user."
fn refuse_disabled(sim: &Sim, uid: &str) -> GraphResult<()> {
    match sim.directory.read().user(uid) {
        Some(u) if u.account_enabled => Ok(()),
        _ => Err(GraphError::directory_not_found(uid)),
    }
}

/// Private channels keep only members of their team: "If a team member
/// leaves or is removed from a team, that user is removed from all private
/// channels in the team" (Microsoft Teams, "Private channels in Microsoft
/// Teams"). Called when `uid` leaves group `gid`.
pub(crate) fn left_team(sim: &Sim, gid: &str, uid: &str) {
    // A team never generated will be generated from the group's members as
    // they are then; one generated before (even if dropped from memory since)
    // comes back from the people it was first made of, so it is changed.
    let generated =
        sim.collab.groups.existing(gid).is_some() || sim.collab.people.lock().contains_key(gid);
    let Some(g) = find_group(sim, gid).ok().filter(|g| g.team && generated) else {
        return;
    };
    let s = slot(sim, &g);
    let mut state = s.write();
    if let Some(team) = state.team.as_mut() {
        for ch in team
            .channels
            .iter_mut()
            .filter(|c| c.membership == "private")
        {
            ch.members.retain(|(m, _)| m != uid);
        }
    }
}

async fn add_channel_member(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_body(&body)?;
    check_member_roles(&body)?;
    let (uid, owner) = bound_user(&sim, &body)?;
    refuse_disabled(&sim, &uid)?;
    let scope = with_team(&sim, &tid, true, |team, g, _| {
        let ch = team.channel_mut(&cid)?;
        if ch.membership == "standard" {
            return Err(GraphError::bad_request(
                "Members can only be added to private or shared channels.",
            ));
        }
        if ch.migration == Some("inProgress") {
            return Err(GraphError::bad_request(
                "Members cannot be added while the channel is in migration mode.",
            ));
        }
        if !g.members.contains(&uid) && ch.membership == "private" {
            return Err(GraphError::bad_request(
                "The user must be a member of the team to join a private channel.",
            ));
        }
        match ch.members.iter_mut().find(|(id, _)| id == &uid) {
            Some(m) => m.1 = owner,
            None => ch.members.push((uid.clone(), owner)),
        }
        Ok(ch.id.clone())
    })?;
    let v = member_json(&sim, &scope, &uid, owner)
        .ok_or_else(|| GraphError::directory_not_found(&uid))?;
    Ok((
        StatusCode::CREATED,
        Json(odata::entity(
            &ctx,
            &format!("{}/channels('{cid}')/members", ctx_team(&ctx, &tid)),
            v,
            None,
        )),
    )
        .into_response())
}

async fn get_channel_member(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid, mid)): Path<(String, String, String)>,
) -> GraphResult<Json<Value>> {
    let v = with_team(&sim, &tid, false, |team, g, _| {
        let ch = team.channel_mut(&cid)?;
        let all = if ch.membership == "standard" {
            team_members(&sim, g)
        } else {
            ch.members
                .iter()
                .filter_map(|(uid, owner)| member_json(&sim, &ch.id, uid, *owner))
                .collect()
        };
        all.into_iter()
            .find(|m| m["id"].as_str() == Some(mid.as_str()))
            .ok_or_else(|| not_found(format!("Member '{mid}' was not found in the channel.")))
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("{}/channels('{cid}')/members", ctx_team(&ctx, &tid)),
        v,
        None,
    )))
}

/// channel-update-members (v1.0): the role of a member of a private or
/// shared channel ("owner" or empty); 200 OK with the conversationMember.
async fn update_channel_member(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid, mid)): Path<(String, String, String)>,
    body: Bytes,
) -> GraphResult<Json<Value>> {
    let body = parse_body(&body)?;
    check_member_roles(&body)?;
    let owner = body
        .get("roles")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty());
    let (scope, uid) = with_team(&sim, &tid, true, |team, _, _| {
        let ch = team.channel_mut(&cid)?;
        if ch.membership == "standard" {
            return Err(GraphError::bad_request(
                "Member roles can only be updated in private or shared channels.",
            ));
        }
        let chid = ch.id.clone();
        let m = ch
            .members
            .iter_mut()
            .find(|(uid, _)| member_id(&chid, uid) == mid)
            .ok_or_else(|| not_found(format!("Member '{mid}' was not found in the channel.")))?;
        if body.get("roles").is_some() {
            m.1 = owner;
        }
        Ok((chid, m.0.clone()))
    })?;
    let owner = with_team(&sim, &tid, false, |team, _, _| {
        let ch = team.channel_mut(&cid)?;
        Ok(ch.members.iter().any(|(u, o)| u == &uid && *o))
    })?;
    let v = member_json(&sim, &scope, &uid, owner)
        .ok_or_else(|| GraphError::directory_not_found(&uid))?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("{}/channels('{cid}')/members", ctx_team(&ctx, &tid)),
        v,
        None,
    )))
}

/// channel-delete-members (v1.0): 204 No Content; a member of a standard
/// channel is a member of the team and leaves through the team.
async fn remove_channel_member(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid, mid)): Path<(String, String, String)>,
) -> GraphResult<StatusCode> {
    with_team(&sim, &tid, true, |team, _, _| {
        let ch = team.channel_mut(&cid)?;
        if ch.membership == "standard" {
            return Err(GraphError::bad_request(
                "Members can only be removed from private or shared channels.",
            ));
        }
        if ch.migration == Some("inProgress") {
            return Err(GraphError::bad_request(
                "Members cannot be removed while the channel is in migration mode.",
            ));
        }
        let chid = ch.id.clone();
        let before = ch.members.len();
        ch.members.retain(|(uid, _)| member_id(&chid, uid) != mid);
        if ch.members.len() == before {
            return Err(not_found(format!(
                "Member '{mid}' was not found in the channel."
            )));
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn files_folder(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid)): Path<(String, String)>,
) -> GraphResult<Json<Value>> {
    let (gid, name) = with_team(&sim, &tid, false, |team, g, _| {
        let ch = team.channel_mut(&cid)?;
        Ok((g.id.clone(), ch.name.clone()))
    })?;
    let v = crate::files::channel_folder(&sim, &gid, &name).ok_or_else(|| {
        not_found(format!(
            "The files folder of channel '{cid}' was not found."
        ))
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("{}/channels('{cid}')/filesFolder", ctx_team(&ctx, &tid)),
        v,
        None,
    )))
}

/// channel: startMigration (v1.0): 204. `conversationCreationDateTime`, when
/// given, must be older than the channel's createdDateTime and replaces it.
async fn start_channel_migration(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<StatusCode> {
    let body = parse_body(&body)?;
    let at = parse_client_time(&body, "conversationCreationDateTime")?;
    with_team(&sim, &tid, true, |team, _, _| {
        let ch = team.channel_mut(&cid)?;
        if let Some(at) = at {
            if at >= ch.created {
                return Err(GraphError::bad_request(
                    "'conversationCreationDateTime' must be older than the channel's createdDateTime.",
                ));
            }
            if ch.original_created.is_none() {
                ch.original_created = Some(ch.created);
            }
            ch.created = at;
        }
        ch.migration = Some("inProgress");
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// channel: completeMigration (v1.0): 204; 400 for a channel that is not in
/// migration mode (import doc, step four). `migrationMode` becomes `completed`.
async fn complete_channel_migration(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid)): Path<(String, String)>,
) -> GraphResult<StatusCode> {
    with_team(&sim, &tid, true, |team, _, _| {
        let ch = team.channel_mut(&cid)?;
        if ch.migration != Some("inProgress") {
            return Err(GraphError::bad_request(
                "The channel is not in migration mode.",
            ));
        }
        ch.migration = Some("completed");
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

fn place_ctx<'a>(sim: &'a Sim, g: &'a Group, ch_id: &'a str) -> Place<'a> {
    Place {
        team: &g.id,
        channel: ch_id,
        tenant: &sim.cfg.tenant_id,
    }
}

fn expand_replies(ctx: &GraphCtx) -> bool {
    ctx.query.expand.as_deref().is_some_and(|e| {
        e.split(',')
            .any(|x| x.trim().eq_ignore_ascii_case("replies"))
    })
}

async fn list_messages(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid)): Path<(String, String)>,
) -> GraphResult<Json<Value>> {
    let expand = expand_replies(&ctx);
    let items = with_team(&sim, &tid, false, |team, g, people| {
        let ch = team.channel_mut(&cid)?;
        let chid = ch.id.clone();
        let log = ensure_msgs(&sim, g, people, ch);
        let at = place_ctx(&sim, g, &chid);
        let mut v: Vec<&Msg> = log.values().collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.created));
        Ok(v.into_iter()
            .map(|m| msg_json(m, &at, expand))
            .collect::<Vec<_>>())
    })?;
    Ok(Json(odata::collection(
        &ctx,
        &format!("{}/channels('{cid}')/messages", ctx_team(&ctx, &tid)),
        items,
        PageLimits::TEAMS,
        None,
    )?))
}

async fn get_message(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid, mid)): Path<(String, String, String)>,
) -> GraphResult<Json<Value>> {
    let expand = expand_replies(&ctx);
    let v = with_team(&sim, &tid, false, |team, g, people| {
        let ch = team.channel_mut(&cid)?;
        let chid = ch.id.clone();
        let log = ensure_msgs(&sim, g, people, ch);
        let m = log.get(&mid).ok_or_else(|| msg_not_found(&mid))?;
        Ok(msg_json(m, &place_ctx(&sim, g, &chid), expand))
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("{}/channels('{cid}')/messages", ctx_team(&ctx, &tid)),
        v,
        None,
    )))
}

async fn list_replies(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid, mid)): Path<(String, String, String)>,
) -> GraphResult<Json<Value>> {
    let items = with_team(&sim, &tid, false, |team, g, people| {
        let ch = team.channel_mut(&cid)?;
        let chid = ch.id.clone();
        let log = ensure_msgs(&sim, g, people, ch);
        let m = log.get(&mid).ok_or_else(|| msg_not_found(&mid))?;
        let at = place_ctx(&sim, g, &chid);
        let mut v: Vec<&Msg> = m.replies.iter().collect();
        v.sort_by_key(|m| std::cmp::Reverse(m.created));
        Ok(v.into_iter()
            .map(|r| msg_json(r, &at, false))
            .collect::<Vec<_>>())
    })?;
    Ok(Json(odata::collection(
        &ctx,
        &format!(
            "{}/channels('{cid}')/messages('{mid}')/replies",
            ctx_team(&ctx, &tid)
        ),
        items,
        PageLimits::TEAMS,
        None,
    )?))
}

async fn get_reply(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid, mid, rid)): Path<(String, String, String, String)>,
) -> GraphResult<Json<Value>> {
    let v = with_team(&sim, &tid, false, |team, g, people| {
        let ch = team.channel_mut(&cid)?;
        let chid = ch.id.clone();
        let log = ensure_msgs(&sim, g, people, ch);
        let m = log.get(&mid).ok_or_else(|| msg_not_found(&mid))?;
        let r = m
            .replies
            .iter()
            .find(|r| r.id == rid)
            .ok_or_else(|| msg_not_found(&rid))?;
        Ok(msg_json(r, &place_ctx(&sim, g, &chid), false))
    })?;
    Ok(Json(odata::entity(
        &ctx,
        &format!(
            "{}/channels('{cid}')/messages('{mid}')/replies",
            ctx_team(&ctx, &tid)
        ),
        v,
        None,
    )))
}

/// Reactions of an imported message, read from the body's `reactions`
/// (chatMessageReaction objects: `reactionType`, `createdDateTime`,
/// `user.user.id`). `None` when the body carries none. A malformed entry or
/// more than [`MAX_IMPORTED_REACTIONS`] is 400 here; a reacting user who is
/// not in the tenant is returned apart, refused (like an unknown `from`)
/// only once the import itself is allowed.
type Reactions = Vec<(String, String, i64)>;

fn import_reactions(
    sim: &Sim,
    body: &Value,
    now: DateTime<Utc>,
) -> GraphResult<(Option<Reactions>, Option<String>)> {
    let list = match body.get("reactions") {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::Array(a)) if a.is_empty() => return Ok((None, None)),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(GraphError::bad_request(
                "Invalid value for property 'reactions': expected a collection of chatMessageReaction.",
            ));
        }
    };
    if list.len() > MAX_IMPORTED_REACTIONS {
        return Err(GraphError::bad_request(format!(
            "An imported message can carry at most {MAX_IMPORTED_REACTIONS} reactions; this one has {}.",
            list.len()
        )));
    }
    let dir = sim.directory.read();
    let mut out = Vec::with_capacity(list.len());
    let mut stranger = None;
    for (i, r) in list.iter().enumerate() {
        if !r.is_object() {
            return Err(GraphError::bad_request(format!(
                "reactions[{i}] is not a chatMessageReaction object."
            )));
        }
        let kind = r
            .get("reactionType")
            .and_then(Value::as_str)
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                GraphError::bad_request(format!("reactions[{i}]: 'reactionType' is required."))
            })?;
        let at = parse_client_time(r, "createdDateTime")?.ok_or_else(|| {
            GraphError::bad_request(format!("reactions[{i}]: 'createdDateTime' is required."))
        })?;
        if at > now {
            return Err(GraphError::bad_request(format!(
                "reactions[{i}]: 'createdDateTime' cannot be in the future."
            )));
        }
        let uid = r
            .get("user")
            .and_then(|u| u.get("user"))
            .filter(|u| !u.is_null())
            .and_then(|u| u.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                GraphError::bad_request(format!(
                    "reactions[{i}]: 'user.user.id' is required: imported reactions must be by users."
                ))
            })?;
        let uid = match dir.user_any(uid) {
            Some(u) => u.id.clone(),
            None => {
                stranger.get_or_insert_with(|| uid.to_string());
                uid.to_string()
            }
        };
        out.push((kind.to_string(), uid, at.timestamp_millis()));
    }
    Ok((Some(out), stranger))
}

/// Posts a message or a reply. Import (back-dated `createdDateTime`, `from`,
/// `reactions`) is accepted only while the channel is in migration mode; otherwise Graph
/// answers 401 Unauthorized: application permissions may post channel
/// messages "only for migration" (channel-post-messages, Permissions note;
/// <https://learn.microsoft.com/graph/api/channel-post-messages>), with the
/// message Graph gives for it.
fn post_message(
    sim: &Sim,
    tid: &str,
    cid: &str,
    parent: Option<&str>,
    body: &Value,
) -> GraphResult<(Value, String)> {
    let content = body
        .get("body")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::bad_request("Property 'body' with 'content' is required."))?
        .to_string();
    let html = body
        .get("body")
        .and_then(|b| b.get("contentType"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let created = parse_client_time(body, "createdDateTime")?;
    let from = body.get("from").filter(|f| !f.is_null());
    let now = sim.now();
    let (reactions, reaction_stranger) = import_reactions(sim, body, now)?;
    let import = created.is_some() || from.is_some() || reactions.is_some();
    // An author from outside the tenant, refused once import is allowed.
    let mut stranger: Option<String> = None;
    let user_from = match from {
        Some(f) => {
            let u = f.get("user").filter(|u| !u.is_null()).ok_or_else(|| {
                GraphError::bad_request("Imported messages must be from a user ('from.user').")
            })?;
            let id = u
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| GraphError::bad_request("'from.user.id' is required."))?;
            let dir = sim.directory.read();
            if dir.user_any(id).is_none() {
                stranger = Some(id.to_string());
            }
            let name = u
                .get("displayName")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| dir.user_any(id).map(|x| x.display_name.clone()))
                .unwrap_or_default();
            let id = dir
                .user_any(id)
                .map(|x| x.id.clone())
                .unwrap_or_else(|| id.to_string());
            Some(Author::User { id, name })
        }
        None => None,
    };
    let subject = body
        .get("subject")
        .and_then(Value::as_str)
        .map(str::to_string);
    let importance = body
        .get("importance")
        .and_then(Value::as_str)
        .unwrap_or("normal")
        .to_string();
    let client_id = sim.cfg.client_id.clone();
    with_team(sim, tid, true, |team, g, people| {
        let ch = team.channel_mut(cid)?;
        let in_migration = ch.migration == Some("inProgress");
        let ch_created = ch.created;
        let chid = ch.id.clone();
        if import && !in_migration {
            return Err(GraphError::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Message POST is allowed in application-only context only for import purposes. Refer to https://docs.microsoft.com/microsoftteams/platform/graph-api/import-messages/import-external-messages-to-teams for more details.",
            ));
        }
        // Import doc: the author must be a user of the tenant.
        if let Some(id) = &stranger {
            return Err(GraphError::bad_request(format!(
                "The user '{id}' in 'from' does not belong to the tenant."
            )));
        }
        if let Some(id) = &reaction_stranger {
            return Err(GraphError::bad_request(format!(
                "The user '{id}' in 'reactions' does not belong to the tenant."
            )));
        }
        let author = if in_migration {
            // Import doc: author attribution is required while importing.
            user_from.clone().ok_or_else(|| {
                GraphError::bad_request("Messages imported in migration mode must set 'from'.")
            })?
        } else {
            Author::App {
                id: client_id.clone(),
                name: "Lifeboat".into(),
            }
        };
        let t = match created {
            Some(c) => {
                if c > now {
                    return Err(GraphError::bad_request(
                        "'createdDateTime' cannot be in the future.",
                    ));
                }
                // Import doc: the value must be later than the channel's createdDateTime.
                if c <= ch_created {
                    return Err(GraphError::bad_request(
                        "'createdDateTime' must be later than the channel's createdDateTime.",
                    ));
                }
                c.timestamp_millis()
            }
            None => now.timestamp_millis(),
        };
        let log = ensure_msgs(sim, g, people, ch);
        let mut used = used_ms(log);
        let t = if created.is_some() {
            // Import doc: createdDateTime must be unique to the millisecond (409).
            if used.contains(&t) {
                return Err(GraphError::conflict(
                    "Conflict",
                    "A message with the same createdDateTime already exists in the channel.",
                ));
            }
            t
        } else {
            unique_ms(&mut used, t)
        };
        let mut m = new_msg(t, parent.map(str::to_string), author, content.clone(), html);
        m.subject = if parent.is_none() {
            subject.clone()
        } else {
            None
        };
        m.importance = importance.clone();
        m.reactions = reactions.clone().unwrap_or_default();
        let at = place_ctx(sim, g, &chid);
        let v = msg_json(&m, &at, false);
        match parent {
            None => log.upsert(m.id.clone(), m, sim.next_seq()),
            Some(pid) => {
                let p = log
                    .get_mut(pid, sim.next_seq())
                    .ok_or_else(|| msg_not_found(pid))?;
                p.replies.push(m);
                p.replies.sort_by_key(|r| r.created);
            }
        }
        sim.stats.count("collab:messagesPosted");
        Ok((v, chid))
    })
}

async fn create_message(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_body(&body)?;
    let (v, _) = post_message(&sim, &tid, &cid, None, &body)?;
    Ok((
        StatusCode::CREATED,
        Json(odata::entity(
            &ctx,
            &format!("{}/channels('{cid}')/messages", ctx_team(&ctx, &tid)),
            v,
            None,
        )),
    )
        .into_response())
}

async fn create_reply(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid, mid)): Path<(String, String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_body(&body)?;
    let (v, _) = post_message(&sim, &tid, &cid, Some(&mid), &body)?;
    Ok((
        StatusCode::CREATED,
        Json(odata::entity(
            &ctx,
            &format!(
                "{}/channels('{cid}')/messages('{mid}')/replies",
                ctx_team(&ctx, &tid)
            ),
            v,
            None,
        )),
    )
        .into_response())
}

enum Change {
    Edit(Value),
    SoftDelete,
    Undelete,
}

fn change_message(
    sim: &Sim,
    tid: &str,
    cid: &str,
    mid: &str,
    rid: Option<&str>,
    change: Change,
) -> GraphResult<()> {
    let now = sim.now().timestamp_millis();
    with_team(sim, tid, true, |team, g, people| {
        let ch = team.channel_mut(cid)?;
        let log = ensure_msgs(sim, g, people, ch);
        if !log.contains(mid) {
            return Err(msg_not_found(mid));
        }
        let seq = sim.next_seq();
        let top = log.get_mut(mid, seq).ok_or_else(|| msg_not_found(mid))?;
        let m = match rid {
            None => top,
            Some(r) => top
                .replies
                .iter_mut()
                .find(|x| x.id == r)
                .ok_or_else(|| msg_not_found(r))?,
        };
        match change {
            Change::Edit(body) => {
                let mut edited = false;
                if let Some(b) = body.get("body") {
                    if let Some(c) = b.get("content").and_then(Value::as_str) {
                        m.content = c.to_string();
                        edited = true;
                    }
                    if let Some(t) = b.get("contentType").and_then(Value::as_str) {
                        m.html = t.eq_ignore_ascii_case("html");
                    }
                }
                if let Some(s) = body.get("subject") {
                    m.subject = s.as_str().map(str::to_string);
                    edited = true;
                }
                if let Some(i) = body.get("importance").and_then(Value::as_str) {
                    m.importance = i.to_string();
                }
                if edited {
                    m.edited = Some(now);
                }
            }
            Change::SoftDelete => m.deleted = Some(now),
            Change::Undelete => m.deleted = None,
        }
        m.modified = now;
        Ok(())
    })
}

async fn patch_message(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid, mid)): Path<(String, String, String)>,
    body: Bytes,
) -> GraphResult<StatusCode> {
    let body = parse_body(&body)?;
    change_message(&sim, &tid, &cid, &mid, None, Change::Edit(body))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn patch_reply(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid, mid, rid)): Path<(String, String, String, String)>,
    body: Bytes,
) -> GraphResult<StatusCode> {
    let body = parse_body(&body)?;
    change_message(&sim, &tid, &cid, &mid, Some(&rid), Change::Edit(body))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn soft_delete(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid, mid)): Path<(String, String, String)>,
) -> GraphResult<StatusCode> {
    change_message(&sim, &tid, &cid, &mid, None, Change::SoftDelete)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn undo_soft_delete(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid, mid)): Path<(String, String, String)>,
) -> GraphResult<StatusCode> {
    change_message(&sim, &tid, &cid, &mid, None, Change::Undelete)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn soft_delete_reply(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid, mid, rid)): Path<(String, String, String, String)>,
) -> GraphResult<StatusCode> {
    change_message(&sim, &tid, &cid, &mid, Some(&rid), Change::SoftDelete)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn undo_soft_delete_reply(
    State(sim): State<Arc<Sim>>,
    Path((tid, cid, mid, rid)): Path<(String, String, String, String)>,
) -> GraphResult<StatusCode> {
    change_message(&sim, &tid, &cid, &mid, Some(&rid), Change::Undelete)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Our `$skiptoken` / `$deltatoken`: the page size and `$expand=replies` of
/// the round, then the change log's own cursor, so links carry nothing else
/// (as chatMessage: delta documents).
fn wrap_token(size: usize, expand: bool, since: Option<i64>, inner: &str) -> String {
    let since = since.map(|t| t.to_string()).unwrap_or_else(|| "-".into());
    encode_token(&format!("cm|{size}|{}|{since}|{inner}", u8::from(expand)))
}

type Wrapped = (usize, bool, Option<i64>, String);

fn unwrap_token(tok: &str) -> Option<Wrapped> {
    let text = decode_token(tok)?;
    let mut parts = text.splitn(5, '|');
    if parts.next()? != "cm" {
        return None;
    }
    let size = parts.next()?.parse().ok()?;
    let expand = parts.next()? == "1";
    let since = match parts.next()? {
        "-" => None,
        t => Some(t.parse().ok()?),
    };
    Some((size, expand, since, parts.next()?.to_string()))
}

/// chatMessage: delta supports one filter: `lastModifiedDateTime gt <time>`.
fn delta_filter(ctx: &GraphCtx) -> GraphResult<Option<i64>> {
    let Some(f) = ctx.query.filter.as_deref() else {
        return Ok(None);
    };
    let words: Vec<&str> = f.split_whitespace().collect();
    let unsupported = || {
        GraphError::bad_request(
            "Only 'lastModifiedDateTime gt <dateTime>' is supported in $filter for this request.",
        )
    };
    match words.as_slice() {
        [prop, op, value]
            if prop.eq_ignore_ascii_case("lastModifiedDateTime")
                && op.eq_ignore_ascii_case("gt") =>
        {
            DateTime::parse_from_rfc3339(&value.trim_matches('\'').to_ascii_uppercase())
                .map(|t| Some(t.timestamp_millis()))
                .map_err(|_| unsupported())
        }
        _ => Err(unsupported()),
    }
}

/// `GET .../messages/delta`: top-level messages (without replies unless
/// `$expand=replies`), added or changed since the token; a message whose reply
/// chain changed counts as changed, and a deleted message comes back with
/// `deletedDateTime` set (Teams soft-deletes).
async fn messages_delta(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((tid, cid)): Path<(String, String)>,
) -> GraphResult<Json<Value>> {
    let token = ctx
        .query
        .skiptoken
        .as_deref()
        .or(ctx.query.deltatoken.as_deref());
    let (size, expand, since, inner) = match token {
        Some(t) => {
            let (s, e, f, i) = unwrap_token(t).ok_or_else(GraphError::sync_state_not_found)?;
            (s.clamp(1, PageLimits::TEAMS.max), e, f, Some(i))
        }
        None => (
            ctx.page_size(PageLimits::TEAMS.default, PageLimits::TEAMS.max),
            expand_replies(&ctx),
            delta_filter(&ctx)?,
            None,
        ),
    };
    let path = ctx.path.clone();
    let body = with_team(&sim, &tid, false, |team, g, people| {
        let ch = team.channel_mut(&cid)?;
        let chid = ch.id.clone();
        let log = ensure_msgs(&sim, g, people, ch);
        let scope = format!("collab:{}:{}", g.id, chid);
        let epoch = sim.delta_epoch();
        let now = sim.current_seq();
        let cursor = log.cursor(&scope, epoch, now, inner.as_deref(), TokenFlavor::Outlook)?;
        let page = log.page(&scope, epoch, cursor, now, size);
        let at = place_ctx(&sim, g, &chid);
        let mut items: Vec<Value> = page
            .changed
            .iter()
            // A filtered round reports reply chains changed after the time.
            .filter(|(_, m)| {
                since.is_none_or(|t| m.modified > t || m.replies.iter().any(|r| r.modified > t))
            })
            .map(|(_, m)| msg_json(m, &at, expand))
            .collect();
        items.extend(
            page.removed
                .iter()
                .map(|r| json!({"id": r.id, "@removed": {"reason": r.reason}})),
        );
        let mut out = serde_json::Map::new();
        out.insert(
            "@odata.context".into(),
            json!(format!("{}/$metadata#Collection(chatMessage)", ctx.base)),
        );
        if let Some(n) = page.next_token {
            out.insert(
                "@odata.nextLink".into(),
                json!(format!(
                    "{}{}?$skiptoken={}",
                    ctx.base,
                    path,
                    wrap_token(size, expand, since, &n)
                )),
            );
        }
        if let Some(d) = page.delta_token {
            out.insert(
                "@odata.deltaLink".into(),
                json!(format!(
                    "{}{}?$deltatoken={}",
                    ctx.base,
                    path,
                    wrap_token(size, expand, None, &d)
                )),
            );
        }
        out.insert("value".into(), Value::Array(items));
        Ok(Value::Object(out))
    })?;
    Ok(Json(body))
}

/// `GET /teams/{id}/channels/getAllMessages`: every message and reply of every channel.
async fn all_messages(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
) -> GraphResult<Json<Value>> {
    let items = with_team(&sim, &tid, false, |team, g, people| {
        let mut out = Vec::new();
        for ch in team.channels.iter_mut() {
            let chid = ch.id.clone();
            let log = ensure_msgs(&sim, g, people, ch);
            let at = place_ctx(&sim, g, &chid);
            for m in log.values() {
                out.push(msg_json(m, &at, false));
                for r in &m.replies {
                    out.push(msg_json(r, &at, false));
                }
            }
        }
        Ok(out)
    })?;
    Ok(Json(odata::collection(
        &ctx,
        "Collection(chatMessage)",
        items,
        PageLimits::TEAMS,
        None,
    )?))
}

async fn get_group_team(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(gid): Path<String>,
) -> GraphResult<Json<Value>> {
    find_group(&sim, &gid)?;
    let v = with_team(&sim, &gid, false, |team, g, _| Ok(team.json(&sim, g)))?;
    Ok(Json(odata::entity(
        &ctx,
        &format!("groups('{gid}')/team"),
        v,
        None,
    )))
}

/// The short form `GET /teams` and `joinedTeams` list teams in.
fn team_summary_json(sim: &Sim, g: &Group) -> Value {
    let archived = sim
        .collab
        .groups
        .existing(&g.id)
        .and_then(|s| s.read().team.as_ref().map(|t| t.archived))
        .unwrap_or(false);
    json!({
        "id": g.id,
        "displayName": g.display_name,
        "description": g.description,
        "visibility": g.visibility.to_ascii_lowercase(),
        "isArchived": archived,
        "tenantId": sim.cfg.tenant_id,
    })
}

async fn list_teams(State(sim): State<Arc<Sim>>, ctx: GraphCtx) -> GraphResult<Json<Value>> {
    let groups: Vec<Group> = sim
        .directory
        .read()
        .live_groups()
        .filter(|g| g.team)
        .cloned()
        .collect();
    let items = groups.iter().map(|g| team_summary_json(&sim, g)).collect();
    Ok(Json(odata::collection(
        &ctx,
        "teams",
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

async fn joined_teams(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(uid): Path<String>,
) -> GraphResult<Json<Value>> {
    let groups: Vec<Group> = {
        let dir = sim.directory.read();
        let u = dir
            .user(&uid)
            .ok_or_else(|| GraphError::directory_not_found(&uid))?;
        dir.live_groups()
            .filter(|g| g.team && (g.members.contains(&u.id) || g.owners.contains(&u.id)))
            .cloned()
            .collect()
    };
    let items = groups.iter().map(|g| team_summary_json(&sim, g)).collect();
    Ok(Json(odata::collection(
        &ctx,
        "teams",
        items,
        PageLimits::DIRECTORY,
        None,
    )?))
}

/// team: archive / unarchive: 202 with the location of a teamsAsyncOperation.
async fn archive_team(
    State(sim): State<Arc<Sim>>,
    Path(tid): Path<String>,
    uri: axum::http::Uri,
) -> GraphResult<Response> {
    let archive = !uri.path().ends_with("unarchive");
    let now = sim.now();
    let op_id = uuid::Uuid::new_v4().to_string();
    let gid = with_team(&sim, &tid, true, |team, g, _| {
        team.archived = archive;
        team.operations.push(json!({
            "id": op_id,
            "operationType": if archive { "archiveTeam" } else { "unarchiveTeam" },
            "createdDateTime": graph_time(now),
            "status": "succeeded",
            "lastActionDateTime": graph_time(now),
            "attemptsCount": 1,
            "targetResourceId": g.id,
            "targetResourceLocation": format!("/teams('{}')", g.id),
            "error": null,
        }));
        Ok(g.id.clone())
    })?;
    Ok(location_headers(
        StatusCode::ACCEPTED.into_response(),
        &format!("/teams('{gid}')/operations('{op_id}')"),
        None,
    ))
}

/// The General channel's id, for the `primaryChannel/...` paths.
fn general_id(sim: &Sim, tid: &str) -> GraphResult<String> {
    with_team(sim, tid, false, |team, _, _| {
        team.channels
            .first()
            .map(|c| c.id.clone())
            .ok_or_else(|| not_found("The team has no General channel."))
    })
}

async fn primary_messages(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
) -> GraphResult<Json<Value>> {
    let cid = general_id(&sim, &tid)?;
    list_messages(State(sim), ctx, Path((tid, cid))).await
}

async fn primary_post(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    let cid = general_id(&sim, &tid)?;
    create_message(State(sim), ctx, Path((tid, cid)), body).await
}

async fn primary_delta(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
) -> GraphResult<Json<Value>> {
    let cid = general_id(&sim, &tid)?;
    messages_delta(State(sim), ctx, Path((tid, cid))).await
}

async fn primary_members(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
) -> GraphResult<Json<Value>> {
    let cid = general_id(&sim, &tid)?;
    channel_members(State(sim), ctx, Path((tid, cid))).await
}

async fn primary_files(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(tid): Path<String>,
) -> GraphResult<Json<Value>> {
    let cid = general_id(&sim, &tid)?;
    files_folder(State(sim), ctx, Path((tid, cid))).await
}

pub fn routes() -> Router<Arc<Sim>> {
    const C: &str = "/teams/{tid}/channels/{cid}";
    Router::new()
        .route("/teams", get(list_teams).post(create_team))
        .route("/users/{uid}/joinedTeams", get(joined_teams))
        .route("/teams/{tid}/archive", post(archive_team))
        .route("/teams/{tid}/unarchive", post(archive_team))
        .route("/teams/{tid}", get(get_team).patch(patch_team))
        .route(
            "/groups/{gid}/team",
            get(get_group_team).put(put_group_team),
        )
        .route("/teams/{tid}/operations/{oid}", get(get_operation))
        .route(
            "/teams/{tid}/completeMigration",
            post(complete_team_migration),
        )
        .route("/teams/{tid}/members", get(list_members).post(add_member))
        .route(
            "/teams/{tid}/members/{mid}",
            get(get_member).delete(remove_member),
        )
        .route(
            "/teams/{tid}/channels",
            get(list_channels).post(create_channel),
        )
        .route("/teams/{tid}/channels/getAllMessages", get(all_messages))
        .route("/teams/{tid}/primaryChannel", get(primary_channel))
        .route(
            "/teams/{tid}/primaryChannel/messages",
            get(primary_messages).post(primary_post),
        )
        .route(
            "/teams/{tid}/primaryChannel/messages/delta",
            get(primary_delta),
        )
        .route("/teams/{tid}/primaryChannel/members", get(primary_members))
        .route(
            "/teams/{tid}/primaryChannel/filesFolder",
            get(primary_files),
        )
        .route("/teams/{tid}/allChannels", get(list_channels))
        .route(
            C,
            get(get_channel).patch(patch_channel).delete(delete_channel),
        )
        .route(&format!("{C}/allMembers"), get(channel_members))
        .route(
            &format!("{C}/members"),
            get(channel_members).post(add_channel_member),
        )
        .route(
            &format!("{C}/members/{{mid}}"),
            get(get_channel_member)
                .patch(update_channel_member)
                .delete(remove_channel_member),
        )
        .route(&format!("{C}/filesFolder"), get(files_folder))
        .route(
            &format!("{C}/startMigration"),
            post(start_channel_migration),
        )
        .route(
            &format!("{C}/completeMigration"),
            post(complete_channel_migration),
        )
        .route(
            &format!("{C}/messages"),
            get(list_messages).post(create_message),
        )
        .route(&format!("{C}/messages/delta"), get(messages_delta))
        .route(
            &format!("{C}/messages/{{mid}}"),
            get(get_message).patch(patch_message),
        )
        .route(
            &format!("{C}/messages/{{mid}}/softDelete"),
            post(soft_delete),
        )
        .route(
            &format!("{C}/messages/{{mid}}/undoSoftDelete"),
            post(undo_soft_delete),
        )
        .route(
            &format!("{C}/messages/{{mid}}/replies"),
            get(list_replies).post(create_reply),
        )
        .route(
            &format!("{C}/messages/{{mid}}/replies/{{rid}}"),
            get(get_reply).patch(patch_reply),
        )
        .route(
            &format!("{C}/messages/{{mid}}/replies/{{rid}}/softDelete"),
            post(soft_delete_reply),
        )
        .route(
            &format!("{C}/messages/{{mid}}/replies/{{rid}}/undoSoftDelete"),
            post(undo_soft_delete_reply),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SimConfig;

    /// A simulated tenant, one of its teams (id), a non-General channel
    /// of it put in migration mode (id), and two users of the tenant.
    fn migrating_channel() -> (Arc<Sim>, String, String, [String; 2]) {
        let sim = Sim::new(SimConfig::new(30, 7));
        let (tid, users) = {
            let dir = sim.directory.read();
            let g = dir
                .groups
                .iter()
                .find(|g| g.team && g.deleted.is_none())
                .expect("the tenant has a team");
            let users: Vec<String> = dir.users.iter().take(2).map(|u| u.id.clone()).collect();
            (g.id.clone(), [users[0].clone(), users[1].clone()])
        };
        let cid = with_team(&sim, &tid, true, |team, _, _| {
            let ch = team.channels.get_mut(1).expect("a channel besides General");
            ch.migration = Some("inProgress");
            Ok(ch.id.clone())
        })
        .unwrap();
        (sim, tid, cid, users)
    }

    fn reaction(kind: &str, uid: &str, at: &str) -> Value {
        json!({
            "reactionType": kind,
            "createdDateTime": at,
            "user": {"user": {"id": uid, "displayName": null, "userIdentityType": "aadUser"}}
        })
    }

    fn import_body(ms: i64, from: &str, reactions: Vec<Value>) -> Value {
        json!({
            "createdDateTime": ms_time(ms),
            "from": {"user": {"id": from, "displayName": "Someone", "userIdentityType": "aadUser"}},
            "body": {"contentType": "text", "content": format!("message {ms}")},
            "reactions": reactions,
        })
    }

    #[test]
    fn imported_reactions_are_kept_and_limited_to_250_by_tenant_users() {
        let (sim, tid, cid, [a, b]) = migrating_channel();
        let t = sim.now().timestamp_millis() - 86_400_000;
        let at = ms_time(t + 5_000);

        // Accepted: every reaction kept as given.
        let body = import_body(
            t,
            &a,
            vec![reaction("like", &b, &at), reaction("heart", &a, &at)],
        );
        let (v, _) = post_message(&sim, &tid, &cid, None, &body).unwrap();
        let got: Vec<(String, String, String)> = v["reactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["reactionType"].as_str().unwrap().to_string(),
                    r["user"]["user"]["id"].as_str().unwrap().to_string(),
                    r["createdDateTime"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("like".to_string(), b.clone(), at.clone()),
                ("heart".to_string(), a.clone(), at.clone())
            ]
        );
        // A reply carries its reactions too, and 250 is allowed.
        let mid = v["id"].as_str().unwrap().to_string();
        let many: Vec<Value> = (0..MAX_IMPORTED_REACTIONS)
            .map(|_| reaction("like", &b, &at))
            .collect();
        let (r, _) =
            post_message(&sim, &tid, &cid, Some(&mid), &import_body(t + 1, &b, many)).unwrap();
        assert_eq!(r["reactions"].as_array().unwrap().len(), 250);

        // 251 reactions: 400, and nothing is posted.
        let too_many: Vec<Value> = (0..=MAX_IMPORTED_REACTIONS)
            .map(|_| reaction("like", &b, &at))
            .collect();
        let err =
            post_message(&sim, &tid, &cid, None, &import_body(t + 2, &a, too_many)).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("at most 250"), "{}", err.message);

        // A reacting user who is not in the tenant: 400, like an unknown author.
        let stranger = uuid::Uuid::new_v4().to_string();
        let err = post_message(
            &sim,
            &tid,
            &cid,
            None,
            &import_body(t + 3, &a, vec![reaction("sad", &stranger, &at)]),
        )
        .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains(&stranger), "{}", err.message);

        // Malformed entries: 400 naming what is wrong.
        for (bad, says) in [
            (
                json!({"createdDateTime": at, "user": {"user": {"id": b}}}),
                "reactionType",
            ),
            (
                json!({"reactionType": "like", "user": {"user": {"id": b}}}),
                "createdDateTime",
            ),
            (
                json!({"reactionType": "like", "createdDateTime": at}),
                "user.user.id",
            ),
            (json!("like"), "chatMessageReaction"),
        ] {
            let err = post_message(&sim, &tid, &cid, None, &import_body(t + 4, &a, vec![bad]))
                .unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.contains(says), "{says}: {}", err.message);
        }
        let kept = with_team(&sim, &tid, false, |team, g, people| {
            let ch = team.channel_mut(&cid)?;
            let log = ensure_msgs(&sim, g, people, ch);
            Ok(log
                .values()
                .filter(|m| m.content.starts_with("message "))
                .count())
        })
        .unwrap();
        assert_eq!(kept, 1, "only the accepted message was posted");
    }

    #[test]
    fn reactions_outside_migration_are_refused_like_other_import_fields() {
        let (sim, tid, cid, [a, _]) = migrating_channel();
        with_team(&sim, &tid, true, |team, _, _| {
            team.channel_mut(&cid)?.migration = Some("completed");
            Ok(())
        })
        .unwrap();
        let at = ms_time(sim.now().timestamp_millis() - 1000);
        let body = json!({
            "body": {"contentType": "text", "content": "hello"},
            "reactions": [reaction("like", &a, &at)],
        });
        let err = post_message(&sim, &tid, &cid, None, &body).unwrap_err();
        assert_eq!(err.status, StatusCode::UNAUTHORIZED);
        // Without them the same post is an ordinary one.
        let plain = json!({"body": {"contentType": "text", "content": "hello"}});
        let (v, _) = post_message(&sim, &tid, &cid, None, &plain).unwrap();
        assert_eq!(v["reactions"], json!([]));
    }
}
