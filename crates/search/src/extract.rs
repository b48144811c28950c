//! From a snapshot entry to the searchable fields of one item version.
//!
//! The search crate reads snapshots by their layout only (it depends on the
//! vault, not on the engine). The conventions it relies on, as the engine
//! writes them (paths relative to the snapshot root; `<x>` an id segment):
//!
//! ```text
//! mail/<folder>/<message>            content: MIME; meta: Graph message JSON     -> mail
//! contacts/<folder>/<contact>        content: Graph contact JSON                 -> contact
//! calendar/<calendar>/<event>        content: Graph event JSON (mailboxes)       -> event
//! calendar/<event>                   content: Graph event JSON (groups)          -> event
//! tasks/<list>/<task>                content: Graph To Do task JSON              -> task
//! [drives/<drive>/ | drive/]items/<item>
//!                                    meta: driveItem JSON; content: file bytes   -> file
//!                                    (OneNote sections, `.one`, count as notes;
//!                                    folders, packages and the root are skipped)
//! lists/<list>/<item>                content: listItem JSON with `fields`        -> list item
//! pages/<page>                       content: sitePage JSON                      -> page
//! channels/<channel>/<message>       content: chatMessage JSON; the channel's JSON
//! channels/<channel>/<m>.replies/<r> is the folder meta of channels/<channel>  -> channel message
//! conversations/<thread>/<post>      content: post JSON; folder meta: thread     -> conversation post
//! ```
//!
//! Anything else (drive versions and permissions, metadata records,
//! attachments of posts) is not a searchable item and is skipped.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Text-like files whose content is indexed, by extension.
const TEXT_EXTENSIONS: &[&str] = &[
    "txt", "csv", "md", "markdown", "html", "htm", "json", "xml", "log", "tsv", "ics", "vcf",
];

/// Files larger than this are indexed by name and metadata only.
pub const TEXT_FILE_CAP: u64 = 1024 * 1024;

/// What an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// An email message.
    Mail,
    /// A contact.
    Contact,
    /// A calendar event.
    Event,
    /// A To Do task.
    Task,
    /// A note (a OneNote section file).
    Note,
    /// A file of a OneDrive or document library.
    File,
    /// An item of a SharePoint list.
    ListItem,
    /// A SharePoint site page.
    Page,
    /// A Teams channel message or reply.
    ChannelMessage,
    /// A post of a group conversation.
    ConversationPost,
}

impl ItemKind {
    /// Every kind.
    pub const ALL: [ItemKind; 10] = [
        ItemKind::Mail,
        ItemKind::Contact,
        ItemKind::Event,
        ItemKind::Task,
        ItemKind::Note,
        ItemKind::File,
        ItemKind::ListItem,
        ItemKind::Page,
        ItemKind::ChannelMessage,
        ItemKind::ConversationPost,
    ];

    /// The name stored in the index.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Mail => "mail",
            ItemKind::Contact => "contact",
            ItemKind::Event => "event",
            ItemKind::Task => "task",
            ItemKind::Note => "note",
            ItemKind::File => "file",
            ItemKind::ListItem => "list_item",
            ItemKind::Page => "page",
            ItemKind::ChannelMessage => "channel_message",
            ItemKind::ConversationPost => "conversation_post",
        }
    }

    /// Inverse of [`ItemKind::as_str`].
    pub fn parse(s: &str) -> Option<ItemKind> {
        ItemKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where the bytes of an item must come from to extract it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Mail: MIME content, Graph JSON meta.
    Mail,
    /// Content is a Graph JSON record (contacts, events, tasks, list items, pages, posts).
    JsonContent(ItemKind),
    /// A channel message; the channel is the folder `channels/<id>`.
    ChannelMessage {
        /// The channel folder's path.
        channel_path: String,
    },
    /// A drive item: driveItem JSON meta, file bytes content.
    DriveItem,
}

/// How to read the item at `path`, or `None` if it is not a searchable item.
pub fn classify(path: &str) -> Option<Layout> {
    let s: Vec<&str> = path.split('/').collect();
    match s.as_slice() {
        ["mail", _, _] => Some(Layout::Mail),
        ["contacts", _, _] => Some(Layout::JsonContent(ItemKind::Contact)),
        ["calendar", _, _] | ["calendar", _] => Some(Layout::JsonContent(ItemKind::Event)),
        ["tasks", _, _] => Some(Layout::JsonContent(ItemKind::Task)),
        ["drive", "items", _] | ["drives", _, "items", _] => Some(Layout::DriveItem),
        ["lists", _, _] => Some(Layout::JsonContent(ItemKind::ListItem)),
        ["pages", _] => Some(Layout::JsonContent(ItemKind::Page)),
        ["conversations", _, post] if !post.ends_with(".attachments") => {
            Some(Layout::JsonContent(ItemKind::ConversationPost))
        }
        ["channels", c, m] if !m.ends_with(".replies") => Some(Layout::ChannelMessage {
            channel_path: format!("channels/{c}"),
        }),
        ["channels", c, r, _] if r.ends_with(".replies") => Some(Layout::ChannelMessage {
            channel_path: format!("channels/{c}"),
        }),
        _ => None,
    }
}

/// Whether a drive item's content is worth reading for its text.
pub fn wants_file_text(meta: &Value, size: u64) -> bool {
    size > 0 && size <= TEXT_FILE_CAP && text_extension(str_at(meta, &["name"])).is_some()
}

fn text_extension(name: &str) -> Option<String> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    TEXT_EXTENSIONS.contains(&ext.as_str()).then_some(ext)
}

/// The searchable fields of one item version. Text fields hold plain text;
/// dates are seconds since the Unix epoch (UTC).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemFields {
    /// Kind (set by the extractor).
    pub kind: Option<ItemKind>,
    /// What a result list shows (subject, name, title).
    pub title: String,
    /// Free text: everything a keyword search looks at.
    pub keyword: String,
    /// Mail sender (name and address).
    pub from: String,
    /// Mail recipients: to, cc, bcc (names and addresses).
    pub to: String,
    /// Mail subject.
    pub subject: String,
    /// Contact name (display, given, middle, surname, nickname).
    pub name: String,
    /// Event description (body text).
    pub description: String,
    /// Event organizer.
    pub owner: String,
    /// Drive/site authors: created by, last modified by (names and emails).
    pub author: String,
    /// File name.
    pub file_name: String,
    /// Teams channel name.
    pub channel: String,
    /// Teams/conversation sender.
    pub sender: String,
    /// The item's date (received, start, due, modified, created).
    pub date: Option<i64>,
    /// End of the item's time span (events); `date` for others.
    pub date_end: Option<i64>,
}

/// Read a string at a JSON path ("" when absent).
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

/// Parse a Graph date-time ("2024-01-02T03:04:05Z", or without a zone, which
/// Graph uses with a separate `timeZone`, read as UTC).
pub fn parse_time(s: &str) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// "name address" of a Graph recipient (`{"emailAddress": {name, address}}`).
fn recipient(v: &Value) -> String {
    join(&[
        str_at(v, &["emailAddress", "name"]),
        str_at(v, &["emailAddress", "address"]),
    ])
}

fn recipients(v: &Value, keys: &[&str]) -> String {
    let mut out = Vec::new();
    for k in keys {
        if let Some(list) = v.get(k).and_then(Value::as_array) {
            out.extend(list.iter().map(recipient));
        }
    }
    out.join(" ")
}

/// Plain text of a Graph `itemBody` (`{"contentType": "html"|"text", "content"}`).
fn body_text(body: &Value) -> String {
    let content = str_at(body, &["content"]);
    if str_at(body, &["contentType"]).eq_ignore_ascii_case("html") {
        html_to_text(content)
    } else {
        content.to_string()
    }
}

/// Text of an HTML fragment or page.
pub fn html_to_text(html: &str) -> String {
    nanohtml2text::html2text(html)
}

/// A Graph identitySet's user (or application) name and email.
fn identity(v: &Value) -> String {
    let who = ["user", "application", "device", "group"]
        .iter()
        .find_map(|k| v.get(k).filter(|x| !x.is_null()))
        .unwrap_or(&Value::Null);
    join(&[
        str_at(who, &["displayName"]),
        str_at(who, &["email"]),
        str_at(who, &["userPrincipalName"]),
    ])
}

/// Mail: the Graph JSON meta and the MIME content.
pub fn mail(meta: &Value, mime: &[u8]) -> ItemFields {
    let subject = str_at(meta, &["subject"]).to_string();
    let body = mime_body_text(mime);
    let date = parse_time(str_at(meta, &["receivedDateTime"]))
        .or_else(|| parse_time(str_at(meta, &["sentDateTime"])));
    ItemFields {
        kind: Some(ItemKind::Mail),
        title: subject.clone(),
        keyword: join(&[&subject, &body]),
        from: meta.get("from").map(recipient).unwrap_or_default(),
        to: recipients(meta, &["toRecipients", "ccRecipients", "bccRecipients"]),
        subject,
        date,
        date_end: date,
        ..Default::default()
    }
}

/// The text of a MIME message's body: its text part, else its HTML part as
/// text ("" if the MIME does not parse).
pub fn mime_body_text(mime: &[u8]) -> String {
    let Some(msg) = mail_parser::MessageParser::default().parse(mime) else {
        return String::new();
    };
    if let Some(t) = msg.body_text(0) {
        return t.into_owned();
    }
    msg.body_html(0)
        .map(|h| html_to_text(&h))
        .unwrap_or_default()
}

/// A record whose content is Graph JSON.
pub fn json_item(kind: ItemKind, v: &Value) -> ItemFields {
    match kind {
        ItemKind::Contact => contact(v),
        ItemKind::Event => event(v),
        ItemKind::Task => task(v),
        ItemKind::ListItem => list_item(v),
        ItemKind::Page => page(v),
        ItemKind::ConversationPost => post(v),
        ItemKind::Mail | ItemKind::Note | ItemKind::File | ItemKind::ChannelMessage => {
            ItemFields::default()
        }
    }
}

fn contact(v: &Value) -> ItemFields {
    let name = join(&[
        str_at(v, &["displayName"]),
        str_at(v, &["givenName"]),
        str_at(v, &["middleName"]),
        str_at(v, &["surname"]),
        str_at(v, &["nickName"]),
    ]);
    let emails = v
        .get("emailAddresses")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .map(|e| join(&[str_at(e, &["name"]), str_at(e, &["address"])]))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let date = parse_time(str_at(v, &["createdDateTime"]));
    ItemFields {
        kind: Some(ItemKind::Contact),
        title: str_at(v, &["displayName"]).to_string(),
        keyword: join(&[
            &name,
            &emails,
            str_at(v, &["companyName"]),
            str_at(v, &["jobTitle"]),
            str_at(v, &["personalNotes"]),
        ]),
        name,
        date,
        date_end: date,
        ..Default::default()
    }
}

fn event(v: &Value) -> ItemFields {
    let subject = str_at(v, &["subject"]).to_string();
    let description = v.get("body").map(body_text).unwrap_or_default();
    let start = parse_time(str_at(v, &["start", "dateTime"]));
    let end = parse_time(str_at(v, &["end", "dateTime"])).or(start);
    ItemFields {
        kind: Some(ItemKind::Event),
        title: subject.clone(),
        keyword: join(&[
            &subject,
            &description,
            str_at(v, &["location", "displayName"]),
        ]),
        subject,
        description,
        owner: v.get("organizer").map(recipient).unwrap_or_default(),
        date: start,
        date_end: end,
        ..Default::default()
    }
}

fn task(v: &Value) -> ItemFields {
    let title = str_at(v, &["title"]).to_string();
    let body = v.get("body").map(body_text).unwrap_or_default();
    let date = parse_time(str_at(v, &["dueDateTime", "dateTime"]))
        .or_else(|| parse_time(str_at(v, &["createdDateTime"])));
    ItemFields {
        kind: Some(ItemKind::Task),
        keyword: join(&[&title, &body]),
        title,
        date,
        date_end: date,
        ..Default::default()
    }
}

/// Every string value below a JSON value, joined.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn authors(v: &Value) -> String {
    join(&[
        &v.get("createdBy").map(identity).unwrap_or_default(),
        &v.get("lastModifiedBy").map(identity).unwrap_or_default(),
    ])
}

fn list_item(v: &Value) -> ItemFields {
    let fields = v.get("fields").unwrap_or(&Value::Null);
    let mut text = Vec::new();
    strings(fields, &mut text);
    let text: Vec<String> = text.into_iter().filter(|s| !s.starts_with('@')).collect();
    let date = parse_time(str_at(v, &["lastModifiedDateTime"]));
    ItemFields {
        kind: Some(ItemKind::ListItem),
        title: str_at(fields, &["Title"]).to_string(),
        keyword: text.join(" "),
        author: authors(v),
        date,
        date_end: date,
        ..Default::default()
    }
}

fn page(v: &Value) -> ItemFields {
    let title = str_at(v, &["title"]).to_string();
    let mut html = Vec::new();
    if let Some(c) = v.get("canvasLayout") {
        strings(c, &mut html);
    }
    let canvas: Vec<String> = html.iter().map(|h| html_to_text(h)).collect();
    let date = parse_time(str_at(v, &["lastModifiedDateTime"]));
    ItemFields {
        kind: Some(ItemKind::Page),
        keyword: join(&[
            &title,
            str_at(v, &["description"]),
            str_at(v, &["name"]),
            &canvas.join(" "),
        ]),
        title,
        file_name: str_at(v, &["name"]).to_string(),
        author: authors(v),
        date,
        date_end: date,
        ..Default::default()
    }
}

fn post(v: &Value) -> ItemFields {
    let body = v.get("body").map(body_text).unwrap_or_default();
    let sender = v.get("from").map(recipient).unwrap_or_default();
    let date = parse_time(str_at(v, &["receivedDateTime"]))
        .or_else(|| parse_time(str_at(v, &["createdDateTime"])));
    ItemFields {
        kind: Some(ItemKind::ConversationPost),
        title: body.chars().take(80).collect(),
        keyword: body,
        sender,
        date,
        date_end: date,
        ..Default::default()
    }
}

/// A channel message or reply, with its channel's JSON.
pub fn channel_message(v: &Value, channel: &Value) -> ItemFields {
    let subject = str_at(v, &["subject"]);
    let body = v.get("body").map(body_text).unwrap_or_default();
    let sender = v
        .get("from")
        .filter(|f| !f.is_null())
        .map(identity)
        .unwrap_or_default();
    let date = parse_time(str_at(v, &["createdDateTime"]));
    let title = if subject.is_empty() {
        body.chars().take(80).collect()
    } else {
        subject.to_string()
    };
    ItemFields {
        kind: Some(ItemKind::ChannelMessage),
        title,
        keyword: join(&[subject, &body]),
        subject: subject.to_string(),
        channel: str_at(channel, &["displayName"]).to_string(),
        sender,
        date,
        date_end: date,
        ..Default::default()
    }
}

/// A drive item (`None` for folders, packages and the root, which are not
/// searchable items) with the text of its content when it is a text file.
pub fn drive_item(meta: &Value, text: Option<&[u8]>) -> Option<ItemFields> {
    if meta.get("folder").is_some() || meta.get("package").is_some() || meta.get("root").is_some() {
        return None;
    }
    let name = str_at(meta, &["name"]).to_string();
    let body = match (text, text_extension(&name)) {
        (Some(bytes), Some(ext)) => {
            let s = String::from_utf8_lossy(bytes);
            if ext == "html" || ext == "htm" {
                html_to_text(&s)
            } else {
                s.into_owned()
            }
        }
        _ => String::new(),
    };
    let lower = name.to_ascii_lowercase();
    let kind = if lower.ends_with(".one") {
        ItemKind::Note
    } else {
        ItemKind::File
    };
    let date = parse_time(str_at(meta, &["lastModifiedDateTime"]));
    Some(ItemFields {
        kind: Some(kind),
        title: name.clone(),
        keyword: join(&[&name, &body]),
        author: authors(meta),
        file_name: name,
        date,
        date_end: date,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_are_classified_by_layout() {
        assert_eq!(classify("mail/f/m"), Some(Layout::Mail));
        assert_eq!(classify("mail/f"), None);
        assert_eq!(
            classify("calendar/e"),
            Some(Layout::JsonContent(ItemKind::Event))
        );
        assert_eq!(classify("drives/d/items/i"), Some(Layout::DriveItem));
        assert_eq!(classify("drive/versions/i/v"), None);
        assert_eq!(classify("conversations/t/p.attachments"), None);
        assert_eq!(
            classify("channels/c/m.replies/r"),
            Some(Layout::ChannelMessage {
                channel_path: "channels/c".into()
            })
        );
        assert_eq!(classify("channels/c/m.replies"), None);
    }

    #[test]
    fn an_event_keeps_its_span_organizer_and_description_text() {
        let f = json_item(
            ItemKind::Event,
            &json!({"subject": "Budget review", "body": {"contentType": "html", "content": "<p>Bring <b>numbers</b></p>"},
                    "organizer": {"emailAddress": {"name": "Adele Vance", "address": "adele@x.com"}},
                    "start": {"dateTime": "2024-03-01T10:00:00.0000000", "timeZone": "UTC"},
                    "end": {"dateTime": "2024-03-01T11:00:00.0000000", "timeZone": "UTC"}}),
        );
        assert_eq!(f.owner, "Adele Vance adele@x.com");
        assert!(f.description.contains("numbers") && !f.description.contains('<'));
        assert_eq!(f.date_end.unwrap() - f.date.unwrap(), 3600);
    }

    #[test]
    fn a_mime_body_is_read_as_text() {
        let mime = b"From: a@b.c\r\nSubject: Hi\r\nContent-Type: text/html\r\n\r\n<p>Hello <i>world</i></p>\r\n";
        let t = mime_body_text(mime);
        assert!(t.contains("Hello") && t.contains("world") && !t.contains("<p>"));
    }
}
