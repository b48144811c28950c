//! Mail: user and shared mailboxes with mail folders, messages (JSON and
//! MIME), attachments, upload sessions and delta.
//!
//! A mailbox is generated on first use from the seed (see [`generate`]); only
//! metadata is kept in memory: bodies, MIME and attachment bytes are
//! generated again whenever a client asks for them, except what clients
//! uploaded. Mail sent inside the tenant is derived from the sender's
//! deterministic sent list, so every recipient's copy can be generated without
//! generating the sender's mailbox (see [`generate::generate`]).
//!
//! Ids: a message has an immutable id (stable across moves, what
//! `Prefer: IdType="ImmutableId"` returns) and a REST id that also encodes
//! the folder it is in, so that a move gives it a new REST id as Graph does.

mod api;
pub(crate) mod generate;
pub(crate) mod mime;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::delta::DeltaLog;
use crate::directory::UserKind;
use crate::error::{GraphError, GraphResult};
use crate::lazy::{LazyMap, Slot};
use crate::{ActivityReport, EntityRef, Sim, TruthItem, Workload, graph_time};

pub use api::{public_routes, routes};

// Well-known folder keys.
pub(crate) const F_ROOT: u64 = 1;
pub(crate) const F_INBOX: u64 = 2;
pub(crate) const F_DRAFTS: u64 = 3;
pub(crate) const F_SENT: u64 = 4;
pub(crate) const F_DELETED: u64 = 5;
pub(crate) const F_JUNK: u64 = 6;
pub(crate) const F_ARCHIVE: u64 = 7;
pub(crate) const F_OUTBOX: u64 = 8;
pub(crate) const F_CONVHIST: u64 = 9;
pub(crate) const F_RECOVERABLE: u64 = 10;
pub(crate) const F_RI_DELETIONS: u64 = 11;
pub(crate) const F_RI_PURGES: u64 = 12;
pub(crate) const F_RI_VERSIONS: u64 = 13;
/// First key of folders users create.
pub(crate) const F_USER: u64 = 100;

/// (key, parent, display name, well-known name, hidden)
pub(crate) const WELL_KNOWN: &[(u64, u64, &str, &str, bool)] = &[
    (
        F_ROOT,
        0,
        "Top of Information Store",
        "msgfolderroot",
        false,
    ),
    (F_INBOX, F_ROOT, "Inbox", "inbox", false),
    (F_DRAFTS, F_ROOT, "Drafts", "drafts", false),
    (F_SENT, F_ROOT, "Sent Items", "sentitems", false),
    (F_DELETED, F_ROOT, "Deleted Items", "deleteditems", false),
    (F_JUNK, F_ROOT, "Junk Email", "junkemail", false),
    (F_ARCHIVE, F_ROOT, "Archive", "archive", false),
    (F_OUTBOX, F_ROOT, "Outbox", "outbox", false),
    (
        F_CONVHIST,
        F_ROOT,
        "Conversation History",
        "conversationhistory",
        false,
    ),
    (
        F_RECOVERABLE,
        F_ROOT,
        "Recoverable Items",
        "recoverableitemsroot",
        true,
    ),
    (
        F_RI_DELETIONS,
        F_RECOVERABLE,
        "Deletions",
        "recoverableitemsdeletions",
        true,
    ),
    (
        F_RI_PURGES,
        F_RECOVERABLE,
        "Purges",
        "recoverableitemspurges",
        true,
    ),
    (
        F_RI_VERSIONS,
        F_RECOVERABLE,
        "Versions",
        "recoverableitemsversions",
        true,
    ),
];

const TAG_MSG: [u8; 4] = [0x00, 0x03, 0x24, 0x00];
const TAG_IMMUTABLE: [u8; 4] = [0x00, 0x09, 0x00, 0x2e];
const TAG_FOLDER: [u8; 4] = [0x00, 0x03, 0x24, 0x01];
const TAG_ATTACH: [u8; 4] = [0x00, 0x03, 0x24, 0x02];

/// A name and SMTP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub name: String,
    pub address: String,
}

impl Addr {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Addr {
        Addr {
            name: name.into(),
            address: address.into(),
        }
    }

    pub fn json(&self) -> Value {
        json!({"emailAddress": {"name": self.name, "address": self.address}})
    }
}

#[derive(Debug, Clone)]
pub enum Body {
    /// Generated from the seed under this label (plain text + HTML alternative).
    Gen { label: String },
    /// Given by a client.
    Given { html: bool, content: String },
}

#[derive(Debug, Clone)]
pub enum AttData {
    /// An attachment of the tenant-wide pool (the same bytes in many messages).
    Pool(u32),
    /// Bytes generated from the seed under this label.
    Gen {
        label: String,
        len: usize,
        compressible: bool,
    },
    /// Uploaded by a client.
    Bytes(Arc<Vec<u8>>),
}

#[derive(Debug, Clone)]
pub struct Att {
    pub key: u64,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub inline: bool,
    pub content_id: Option<String>,
    pub modified: DateTime<Utc>,
    pub data: AttData,
}

/// How an inbound copy was delivered (its Received and X-MS-Exchange headers).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub label: String,
    pub internal: bool,
}

#[derive(Debug, Clone)]
pub struct Msg {
    pub key: u64,
    pub created_seq: u64,
    pub subject: String,
    pub from: Addr,
    pub sender: Addr,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub bcc: Vec<Addr>,
    pub reply_to: Vec<Addr>,
    pub internet_message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub conversation_id: String,
    pub conversation_index: Vec<u8>,
    pub thread_topic: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub received: DateTime<Utc>,
    pub sent: Option<DateTime<Utc>>,
    pub is_read: bool,
    pub is_draft: bool,
    pub flag: String,
    pub categories: Vec<String>,
    pub importance: String,
    pub focused: bool,
    pub read_receipt: bool,
    pub body: Body,
    pub atts: Vec<Att>,
    pub next_att: u64,
    pub delivery: Option<Delivery>,
    /// MIME a client uploaded: `$value` answers it verbatim.
    pub raw: Option<Arc<Vec<u8>>>,
    /// singleValueExtendedProperties (id, value).
    pub ext: Vec<(String, String)>,
    pub change: u32,
}

impl Msg {
    pub fn has_attachments(&self) -> bool {
        self.atts.iter().any(|a| !a.inline)
    }

    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.change += 1;
        self.modified = now;
    }
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub key: u64,
    pub parent: u64,
    pub name: String,
    pub well_known: Option<&'static str>,
    pub hidden: bool,
}

/// One mailbox: its folders (one delta log for the hierarchy) and the
/// messages of each folder (one delta log per folder).
pub struct Mailbox {
    pub uid: String,
    pub guid: [u8; 16],
    pub owner: Addr,
    pub folders: DeltaLog<Folder>,
    pub msgs: BTreeMap<u64, DeltaLog<Msg>>,
    /// Message key → folder key.
    pub loc: BTreeMap<u64, u64>,
    pub next_key: u64,
    pub next_folder: u64,
}

pub(crate) fn hkey(k: u64) -> String {
    format!("{k:016x}")
}

fn unhkey(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap_or(0)
}

impl Mailbox {
    pub fn empty(sim: &Sim, uid: &str, owner: Addr) -> Mailbox {
        let g = crate::rng::stable_guid(sim.seed(), &["mailbox", uid]);
        let mut mb = Mailbox {
            uid: uid.to_string(),
            guid: *g.as_bytes(),
            owner,
            folders: DeltaLog::new(),
            msgs: BTreeMap::new(),
            loc: BTreeMap::new(),
            next_key: 1,
            next_folder: F_USER,
        };
        for &(key, parent, name, wk, hidden) in WELL_KNOWN {
            mb.put_folder(
                Folder {
                    key,
                    parent,
                    name: name.to_string(),
                    well_known: Some(wk),
                    hidden,
                },
                0,
            );
        }
        mb
    }

    pub fn put_folder(&mut self, f: Folder, seq: u64) {
        self.msgs.entry(f.key).or_default();
        self.folders.upsert(hkey(f.key), f, seq);
    }

    pub fn folder(&self, key: u64) -> Option<&Folder> {
        self.folders.get(&hkey(key))
    }

    pub fn new_folder(&mut self, parent: u64, name: &str, seq: u64) -> u64 {
        let key = self.next_folder;
        self.next_folder += 1;
        self.put_folder(
            Folder {
                key,
                parent,
                name: name.to_string(),
                well_known: None,
                hidden: self.folder(parent).is_some_and(|p| p.hidden),
            },
            seq,
        );
        key
    }

    pub fn children(&self, key: u64) -> Vec<&Folder> {
        self.folders.values().filter(|f| f.parent == key).collect()
    }

    /// The folder and every folder below it.
    pub fn subtree(&self, key: u64) -> Vec<u64> {
        let mut out = vec![key];
        let mut i = 0;
        while i < out.len() {
            let k = out[i];
            out.extend(self.children(k).iter().map(|f| f.key));
            i += 1;
        }
        out
    }

    pub fn is_below(&self, key: u64, ancestor: u64) -> bool {
        let mut cur = Some(key);
        while let Some(k) = cur {
            if k == ancestor {
                return true;
            }
            cur = self.folder(k).map(|f| f.parent).filter(|p| *p != 0);
        }
        false
    }

    /// `Inbox/Projects/2025`
    pub fn folder_path(&self, key: u64) -> String {
        let mut parts = Vec::new();
        let mut cur = key;
        while cur != F_ROOT && cur != 0 {
            match self.folder(cur) {
                Some(f) => {
                    parts.push(f.name.clone());
                    cur = f.parent;
                }
                None => break,
            }
        }
        parts.reverse();
        parts.join("/")
    }

    pub fn alloc_key(&mut self) -> u64 {
        let k = self.next_key;
        self.next_key += 1;
        k
    }

    pub fn insert_msg(&mut self, folder: u64, msg: Msg, seq: u64) {
        self.loc.insert(msg.key, folder);
        let key = msg.key;
        self.msgs
            .entry(folder)
            .or_default()
            .upsert(hkey(key), msg, seq);
    }

    pub fn msg(&self, key: u64) -> Option<(u64, &Msg)> {
        let f = *self.loc.get(&key)?;
        self.msgs.get(&f)?.get(&hkey(key)).map(|m| (f, m))
    }

    /// Mutable access recording a change at `seq`.
    pub fn msg_mut(&mut self, key: u64, seq: u64) -> Option<&mut Msg> {
        let f = *self.loc.get(&key)?;
        self.msgs.get_mut(&f)?.get_mut(&hkey(key), seq)
    }

    /// Takes a message out of its folder (reported to that folder's delta as deleted).
    pub fn take_msg(&mut self, key: u64, seq: u64) -> Option<(u64, Msg)> {
        let f = self.loc.remove(&key)?;
        let m = self.msgs.get_mut(&f)?.remove(&hkey(key), seq, "deleted")?;
        Some((f, m))
    }

    pub fn move_msg(&mut self, key: u64, dest: u64, seq: u64, now: DateTime<Utc>) -> bool {
        let Some((_, mut m)) = self.take_msg(key, seq) else {
            return false;
        };
        m.touch(now);
        self.insert_msg(dest, m, seq);
        true
    }

    pub fn folder_msgs(&self, key: u64) -> impl Iterator<Item = &Msg> {
        self.msgs.get(&key).into_iter().flat_map(|l| l.values())
    }

    pub fn is_recoverable(&self, key: u64) -> bool {
        self.is_below(key, F_RECOVERABLE)
    }

    // Ids ---------------------------------------------------------------

    fn enc(&self, tag: [u8; 4], a: u64, b: Option<u64>) -> String {
        let mut bytes = Vec::with_capacity(36);
        bytes.extend_from_slice(&tag);
        bytes.extend_from_slice(&self.guid);
        bytes.extend_from_slice(&a.to_be_bytes());
        if let Some(b) = b {
            bytes.extend_from_slice(&b.to_be_bytes());
        }
        URL_SAFE.encode(bytes)
    }

    fn dec(&self, id: &str) -> Option<([u8; 4], u64, Option<u64>)> {
        let bytes = URL_SAFE
            .decode(id.trim())
            .or_else(|_| STANDARD.decode(id.trim()))
            .ok()?;
        if bytes.len() != 28 && bytes.len() != 36 {
            return None;
        }
        if bytes[4..20] != self.guid {
            return None;
        }
        let tag: [u8; 4] = bytes[..4].try_into().ok()?;
        let a = u64::from_be_bytes(bytes[20..28].try_into().ok()?);
        let b = if bytes.len() == 36 {
            Some(u64::from_be_bytes(bytes[28..36].try_into().ok()?))
        } else {
            None
        };
        Some((tag, a, b))
    }

    pub fn folder_id(&self, key: u64) -> String {
        self.enc(TAG_FOLDER, key, None)
    }

    pub fn rest_id(&self, key: u64, folder: u64) -> String {
        self.enc(TAG_MSG, key, Some(folder))
    }

    pub fn immutable_id(&self, key: u64) -> String {
        self.enc(TAG_IMMUTABLE, key, None)
    }

    pub fn msg_id(&self, key: u64, folder: u64, immutable: bool) -> String {
        if immutable {
            self.immutable_id(key)
        } else {
            self.rest_id(key, folder)
        }
    }

    pub fn att_id(&self, msg: u64, att: u64) -> String {
        self.enc(TAG_ATTACH, msg, Some(att))
    }

    /// A folder by id or well-known name.
    pub fn resolve_folder(&self, id: &str) -> Option<u64> {
        if let Some(&(key, ..)) = WELL_KNOWN.iter().find(|w| w.3.eq_ignore_ascii_case(id)) {
            return self.folder(key).map(|f| f.key);
        }
        match self.dec(id)? {
            (TAG_FOLDER, key, None) => self.folder(key).map(|f| f.key),
            _ => None,
        }
    }

    /// A message by REST id (valid only while it stays in its folder) or immutable id.
    pub fn resolve_msg(&self, id: &str) -> Option<u64> {
        match self.dec(id)? {
            (TAG_IMMUTABLE, key, None) => self.loc.contains_key(&key).then_some(key),
            (TAG_MSG, key, Some(f)) => (self.loc.get(&key) == Some(&f)).then_some(key),
            _ => None,
        }
    }

    pub fn resolve_att(&self, msg: u64, id: &str) -> Option<u64> {
        match self.dec(id)? {
            (TAG_ATTACH, m, Some(a)) if m == msg => Some(a),
            _ => None,
        }
    }

    pub fn change_key(&self, key: u64, change: u32) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&self.guid);
        h.update(&key.to_le_bytes());
        h.update(&change.to_le_bytes());
        let mut bytes = vec![0x09, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00];
        bytes.extend_from_slice(&h.finalize().as_bytes()[..16]);
        bytes.extend_from_slice(&change.to_be_bytes());
        STANDARD.encode(bytes)
    }

    // JSON -------------------------------------------------------------

    pub fn folder_json(&self, f: &Folder) -> Value {
        let children = self.children(f.key).len();
        let mut total = 0u64;
        let mut unread = 0u64;
        for m in self.folder_msgs(f.key) {
            total += 1;
            if !m.is_read {
                unread += 1;
            }
        }
        json!({
            "id": self.folder_id(f.key),
            "displayName": f.name,
            "parentFolderId": if f.parent == 0 { self.folder_id(F_ROOT) } else { self.folder_id(f.parent) },
            "childFolderCount": children,
            "unreadItemCount": unread,
            "totalItemCount": total,
            "isHidden": f.hidden,
        })
    }
}

/// What a message JSON should contain.
pub struct MsgView<'a> {
    pub immutable: bool,
    pub body_text: bool,
    pub select: Option<&'a [String]>,
    pub expand_ext: Option<Vec<String>>,
}

impl MsgView<'_> {
    pub fn wants(&self, prop: &str) -> bool {
        match self.select {
            None => true,
            Some(sel) => sel.iter().any(|s| s == "*" || s.eq_ignore_ascii_case(prop)),
        }
    }

    fn selected_explicitly(&self, prop: &str) -> bool {
        self.select
            .is_some_and(|sel| sel.iter().any(|s| s.eq_ignore_ascii_case(prop)))
    }
}

fn dtz(t: DateTime<Utc>) -> Value {
    json!({"dateTime": format!("{}.0000000", t.format("%Y-%m-%dT%H:%M:%S")), "timeZone": "UTC"})
}

impl Mailbox {
    pub fn msg_json(&self, sim: &Sim, folder: u64, m: &Msg, view: &MsgView<'_>) -> Value {
        let id = self.msg_id(m.key, folder, view.immutable);
        let ck = self.change_key(m.key, m.change);
        let mut v = serde_json::Map::new();
        v.insert("@odata.etag".into(), json!(format!("W/\"{ck}\"")));
        v.insert("id".into(), json!(id));
        let mut put = |k: &str, val: Value| {
            if view.wants(k) {
                v.insert(k.to_string(), val);
            }
        };
        put("createdDateTime", json!(graph_time(m.created)));
        put("lastModifiedDateTime", json!(graph_time(m.modified)));
        put("changeKey", json!(ck));
        put("categories", json!(m.categories));
        put("receivedDateTime", json!(graph_time(m.received)));
        put("sentDateTime", json!(m.sent.map(graph_time)));
        put("hasAttachments", json!(m.has_attachments()));
        put("internetMessageId", json!(m.internet_message_id));
        put("subject", json!(m.subject));
        let needs_body = view.wants("body") || view.wants("bodyPreview");
        let (text, html) = if needs_body || view.selected_explicitly("uniqueBody") {
            mime::body_texts(sim, m)
        } else {
            (String::new(), String::new())
        };
        put("bodyPreview", json!(preview(&text)));
        put("importance", json!(m.importance));
        put("parentFolderId", json!(self.folder_id(folder)));
        put("conversationId", json!(m.conversation_id));
        put(
            "conversationIndex",
            json!(STANDARD.encode(&m.conversation_index)),
        );
        put("isDeliveryReceiptRequested", json!(false));
        put("isReadReceiptRequested", json!(m.read_receipt));
        put("isRead", json!(m.is_read));
        put("isDraft", json!(m.is_draft));
        put(
            "webLink",
            json!(format!(
                "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
                crate::odata::encode(&self.immutable_id(m.key))
            )),
        );
        put(
            "inferenceClassification",
            json!(if m.focused { "focused" } else { "other" }),
        );
        let body = if view.body_text {
            json!({"contentType": "text", "content": text})
        } else {
            json!({"contentType": "html", "content": html})
        };
        if view.selected_explicitly("uniqueBody") {
            v.insert("uniqueBody".into(), body.clone());
        }
        if view.wants("body") {
            v.insert("body".into(), body);
        }
        let mut put = |k: &str, val: Value| {
            if view.wants(k) {
                v.insert(k.to_string(), val);
            }
        };
        put("sender", m.sender.json());
        put("from", m.from.json());
        put(
            "toRecipients",
            Value::Array(m.to.iter().map(Addr::json).collect()),
        );
        put(
            "ccRecipients",
            Value::Array(m.cc.iter().map(Addr::json).collect()),
        );
        put(
            "bccRecipients",
            Value::Array(m.bcc.iter().map(Addr::json).collect()),
        );
        put(
            "replyTo",
            Value::Array(m.reply_to.iter().map(Addr::json).collect()),
        );
        let flag = match m.flag.as_str() {
            "flagged" => json!({"flagStatus": "flagged",
                "startDateTime": dtz(m.modified), "dueDateTime": dtz(m.modified + chrono::Duration::days(7))}),
            "complete" => json!({"flagStatus": "complete", "completedDateTime": dtz(m.modified)}),
            _ => json!({"flagStatus": "notFlagged"}),
        };
        put("flag", flag);
        if view.selected_explicitly("internetMessageHeaders") {
            let headers: Vec<Value> = mime::header_list(sim, self, m)
                .into_iter()
                .map(|(n, val)| json!({"name": n, "value": val}))
                .collect();
            v.insert("internetMessageHeaders".into(), Value::Array(headers));
        }
        if let Some(ids) = &view.expand_ext {
            let props: Vec<Value> = m
                .ext
                .iter()
                .filter(|(id, _)| ids.is_empty() || ids.iter().any(|w| w.eq_ignore_ascii_case(id)))
                .map(|(id, val)| json!({"id": id, "value": val}))
                .collect();
            v.insert(
                "singleValueExtendedProperties@odata.context".into(),
                json!(format!(
                    "https://graph.microsoft.com/v1.0/$metadata#users('{}')/messages('{}')/singleValueExtendedProperties",
                    self.uid, id
                )),
            );
            v.insert("singleValueExtendedProperties".into(), Value::Array(props));
        }
        Value::Object(v)
    }

    pub fn att_json(&self, sim: &Sim, msg: u64, a: &Att, with_bytes: bool) -> Value {
        if a.content_type == api::ITEM_CT {
            return json!({
                "@odata.type": "#microsoft.graph.itemAttachment",
                "id": self.att_id(msg, a.key),
                "lastModifiedDateTime": graph_time(a.modified),
                "name": a.name,
                "contentType": a.content_type,
                "size": a.size,
                "isInline": a.inline,
            });
        }
        let mut v = json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "@odata.mediaContentType": a.content_type,
            "id": self.att_id(msg, a.key),
            "lastModifiedDateTime": graph_time(a.modified),
            "name": a.name,
            "contentType": a.content_type,
            "size": a.size,
            "isInline": a.inline,
            "contentId": a.content_id,
            "contentLocation": null,
        });
        if with_bytes {
            v["contentBytes"] = json!(STANDARD.encode(&*mime::att_bytes(sim, a)));
        }
        v
    }
}

pub(crate) fn preview(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.chars().take(255).collect()
}

/// An attachment upload session (the `uploadUrl` of `createUploadSession`).
pub(crate) struct UploadSession {
    pub uid: String,
    pub msg_key: u64,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub inline: bool,
    pub content_id: Option<String>,
    pub data: Vec<u8>,
    pub expires: DateTime<Utc>,
}

pub struct MailStore {
    boxes: LazyMap<Mailbox>,
    pub(crate) sessions: Mutex<BTreeMap<String, UploadSession>>,
}

impl MailStore {
    pub fn new(capacity: usize) -> Self {
        MailStore {
            boxes: LazyMap::new(capacity),
            sessions: Mutex::new(BTreeMap::new()),
        }
    }

    /// The mailbox of a user (by id or UPN), generated on first use; Graph's
    /// errors for unknown users and users without a mailbox.
    pub(crate) fn mailbox(&self, sim: &Sim, user: &str) -> GraphResult<Arc<Slot<Mailbox>>> {
        let u = sim
            .directory
            .read()
            .user(user)
            .cloned()
            .ok_or_else(|| invalid_user(user))?;
        if !u.has_mailbox {
            return Err(crate::directory::mailbox_not_enabled());
        }
        Ok(self.boxes.get(&u.id, || generate::generate(sim, &u)))
    }

    fn existing_or_generated(&self, sim: &Sim, uid: &str) -> Option<Arc<Slot<Mailbox>>> {
        self.mailbox(sim, uid).ok()
    }
}

/// Graph's answer for a user that does not exist on a mailbox resource.
pub fn invalid_user(id: &str) -> GraphError {
    GraphError::new(
        axum::http::StatusCode::NOT_FOUND,
        "ErrorInvalidUser",
        format!("The requested user '{id}' is invalid."),
    )
}

impl Workload for MailStore {
    fn name(&self) -> &'static str {
        "mail"
    }

    fn truth(&self, sim: &Sim, entity: &EntityRef) -> Vec<TruthItem> {
        let EntityRef::User(uid) = entity else {
            return Vec::new();
        };
        let Some(slot) = self.existing_or_generated(sim, uid) else {
            return Vec::new();
        };
        let mb = slot.read();
        let mut out = Vec::new();
        for f in mb.folders.values() {
            if f.hidden || mb.is_recoverable(f.key) || f.key == F_ROOT {
                continue;
            }
            let path = mb.folder_path(f.key);
            for m in mb.folder_msgs(f.key) {
                let bytes = mime::render(sim, &mb, m);
                out.push(TruthItem {
                    workload: "mail".into(),
                    path: format!("{path}/{}", m.subject),
                    id: mb.immutable_id(m.key),
                    kind: "message".into(),
                    size: bytes.len() as u64,
                    hash: crate::rng::hash_hex(&bytes),
                });
            }
        }
        out
    }

    fn simulate_day(
        &self,
        sim: &Sim,
        entity: &EntityRef,
        rng: &mut crate::rng::SimRng,
        report: &mut ActivityReport,
    ) {
        let EntityRef::User(uid) = entity else {
            return;
        };
        let Some(slot) = self.existing_or_generated(sim, uid) else {
            return;
        };
        let deliveries = {
            let mut mb = slot.write();
            generate::simulate_day(sim, &mut mb, rng, report)
        };
        for (rcpt, msg) in deliveries {
            let Some(slot) = self.existing_or_generated(sim, &rcpt) else {
                continue;
            };
            let mut mb = slot.write();
            let seq = sim.next_seq();
            let mut msg = msg;
            msg.key = mb.alloc_key();
            msg.created_seq = seq;
            mb.insert_msg(F_INBOX, msg, seq);
            report.created += 1;
        }
    }

    fn entity_deleted(&self, sim: &Sim, entity: &EntityRef) {
        if let EntityRef::User(uid) = entity {
            self.boxes.remove(uid);
            self.sessions.lock().retain(|_, s| &s.uid != uid);
            let _ = sim;
        }
    }
}

/// Deletes every message in a folder and its subfolders (a mass deletion for
/// disaster tests); returns how many.
pub fn purge_folder(sim: &Sim, user: &str, folder: &str) -> GraphResult<u64> {
    let slot = sim.mail.mailbox(sim, user)?;
    let mut mb = slot.write();
    let fkey = mb
        .resolve_folder(folder)
        .ok_or_else(GraphError::outlook_not_found)?;
    let mut n = 0;
    for f in mb.subtree(fkey) {
        let keys: Vec<u64> = mb
            .msgs
            .get(&f)
            .map(|l| l.iter().map(|(k, _)| unhkey(k)).collect())
            .unwrap_or_default();
        for k in keys {
            let seq = sim.next_seq();
            if mb.take_msg(k, seq).is_some() {
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Whether a user kind sends mail of its own (shared mailboxes mostly receive).
pub(crate) fn sends_mail(kind: UserKind) -> bool {
    kind != UserKind::Shared
}
