//! What the search tests share: the tenant simulator, a vault account,
//! backups made by the real engine, and a brute-force scan of a snapshot
//! that reads the vault directly, to compare every search with.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet};

use engine::Cancel;
use engine::progress::CountingProgress;
use graph::{GraphClient, GraphConfig, Secret};
use graph_sim::{RunningSim, SimConfig};
use search::{AsOf, ItemKind, Query, SearchIndex};
use serde_json::{Value, json};
use vault::{Node, SnapshotId, SnapshotInfo};

pub struct Env {
    pub sim: RunningSim,
    pub graph: GraphClient,
    pub http: reqwest::Client,
    pub repo: vault::Repository,
    pub account: vault::Account,
    pub dir: tempfile::TempDir,
}

pub const MASTER: [u8; 32] = [7; 32];

pub async fn env(users: u32, seed: u64, scale: f64) -> Env {
    let mut cfg = SimConfig::new(users, seed);
    cfg.content_scale = scale;
    let sim = graph_sim::start(cfg, "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let c = &sim.sim.cfg;
    let graph = GraphClient::new(
        GraphConfig::new(
            &sim.graph_url(),
            &sim.login_url(),
            &c.tenant_id,
            &c.client_id,
            Secret::new(c.client_secret.clone()),
        )
        .unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = vault::Repository::init(
        vault::Location::from_url(dir.path().to_str().unwrap()).unwrap(),
        vault::InitOptions {
            kdf_m_kib: 1024,
            kdf_t: 1,
            pack_size: 4 * 1024 * 1024,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let key = vault::MasterKey::from_bytes(MASTER).account_key("acct");
    let account = repo.open_or_init_account("acct", &key).await.unwrap();
    Env {
        sim,
        graph,
        http: reqwest::Client::new(),
        repo,
        account,
        dir,
    }
}

/// The entities a test indexes: (entity key, how to back it up).
#[derive(Clone, Debug)]
pub enum Entity {
    Mailbox(String),
    OneDrive(String),
    Site(String),
    Group { id: String, team: bool },
}

impl Entity {
    pub fn key(&self) -> String {
        match self {
            Entity::Mailbox(u) => format!("mailbox:{u}"),
            Entity::OneDrive(u) => format!("onedrive:{u}"),
            Entity::Site(s) => format!("site:{s}"),
            Entity::Group { id, .. } => format!("group:{id}"),
        }
    }

    /// The simulator's name of the entity for `/_sim/activity`.
    pub fn sim_name(&self) -> String {
        match self {
            Entity::Mailbox(u) | Entity::OneDrive(u) => format!("user:{u}"),
            Entity::Site(s) => format!("site:{s}"),
            Entity::Group { id, .. } => format!("group:{id}"),
        }
    }
}

impl Env {
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.sim.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// The first licensed, enabled user mailbox.
    pub async fn first_mailbox(&self) -> Entity {
        let mailboxes = engine::exchange::discover_mailboxes(
            &self.graph,
            &engine::exchange::DiscoveryOptions::default(),
        )
        .await
        .unwrap();
        let m = mailboxes
            .iter()
            .find(|m| {
                m.kind == engine::exchange::MailboxKind::User && m.licensed && m.account_enabled
            })
            .unwrap();
        Entity::Mailbox(m.graph_id.clone())
    }

    /// One mailbox, its OneDrive, a content site and a team.
    pub async fn entities(&self) -> Vec<Entity> {
        let mailboxes = engine::exchange::discover_mailboxes(
            &self.graph,
            &engine::exchange::DiscoveryOptions::default(),
        )
        .await
        .unwrap();
        let user = mailboxes
            .iter()
            .find(|m| {
                m.kind == engine::exchange::MailboxKind::User && m.licensed && m.account_enabled
            })
            .unwrap()
            .graph_id
            .clone();
        let drives = engine::onedrive::discover_drives(&self.graph)
            .await
            .unwrap();
        let drive_user = drives
            .iter()
            .find(|d| d.user_id == user)
            .unwrap_or(&drives[0])
            .user_id
            .clone();
        let sites = engine::sharepoint::discover_sites(&self.graph)
            .await
            .unwrap();
        let site = sites
            .iter()
            .find(|s| !s.is_sub_site)
            .unwrap()
            .graph_id
            .clone();
        let groups = engine::teams::discover_groups(&self.graph).await.unwrap();
        let team = groups
            .iter()
            .find(|g| g.kind == engine::teams::GroupKind::Team)
            .unwrap()
            .graph_id
            .clone();
        vec![
            Entity::Mailbox(user),
            Entity::OneDrive(drive_user),
            Entity::Site(site),
            Entity::Group {
                id: team,
                team: true,
            },
        ]
    }

    /// Back up an entity with the real engine; the snapshot's info.
    pub async fn backup(&self, e: &Entity, parent: Option<&SnapshotId>) -> SnapshotInfo {
        let progress = CountingProgress::default();
        let cancel = Cancel::new();
        let meta = json!({"test": true});
        let report = match e {
            Entity::Mailbox(u) => {
                engine::exchange::backup_mailbox(engine::exchange::MailboxBackup {
                    graph: &self.graph,
                    vault: &self.account,
                    mailbox_id: u,
                    parent,
                    options: &engine::exchange::BackupOptions::default(),
                    progress: &progress,
                    cancel: &cancel,
                    meta,
                })
                .await
                .unwrap()
            }
            Entity::OneDrive(u) => {
                engine::onedrive::backup_onedrive(engine::onedrive::OneDriveBackup {
                    graph: &self.graph,
                    vault: &self.account,
                    user_id: u,
                    parent,
                    options: &engine::onedrive::OneDriveOptions::default(),
                    progress: &progress,
                    cancel: &cancel,
                    meta,
                })
                .await
                .unwrap()
            }
            Entity::Site(s) => engine::sharepoint::backup_site(engine::sharepoint::SiteBackup {
                graph: &self.graph,
                vault: &self.account,
                site_id: s,
                parent,
                options: &engine::sharepoint::SiteBackupOptions::default(),
                progress: &progress,
                cancel: &cancel,
                meta,
            })
            .await
            .unwrap(),
            Entity::Group { id, team } => engine::teams::backup_group(engine::teams::GroupBackup {
                graph: &self.graph,
                vault: &self.account,
                group_id: id,
                is_team: *team,
                parent,
                options: &engine::teams::GroupBackupOptions::default(),
                progress: &progress,
                cancel: &cancel,
                meta,
            })
            .await
            .unwrap(),
        };
        let id = report.snapshot_id.expect("backup committed a snapshot");
        self.account.snapshot(&id).await.unwrap()
    }
}

// ---------------------------------------------------------------------------
// Brute force: every item of a snapshot with the text of each searchable
// field, read straight from the vault.

/// One item as the brute-force scan sees it.
#[derive(Clone, Debug)]
pub struct Item {
    pub path: String,
    pub kind: ItemKind,
    pub fields: HashMap<&'static str, String>,
    pub span: Option<(i64, i64)>,
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn addr(v: &Value) -> String {
    format!(
        "{} {}",
        s(v, "/emailAddress/name"),
        s(v, "/emailAddress/address")
    )
}

fn addrs(v: &Value, keys: &[&str]) -> String {
    keys.iter()
        .flat_map(|k| v[*k].as_array().cloned().unwrap_or_default())
        .map(|r| addr(&r))
        .collect::<Vec<_>>()
        .join(" ")
}

fn body(v: &Value) -> String {
    let c = s(v, "/body/content");
    if s(v, "/body/contentType").eq_ignore_ascii_case("html") {
        nanohtml2text::html2text(c)
    } else {
        c.to_string()
    }
}

fn who(v: &Value, key: &str) -> String {
    let u = ["user", "application", "device", "group"]
        .iter()
        .map(|k| &v[key][*k])
        .find(|x| !x.is_null())
        .unwrap_or(&Value::Null);
    format!(
        "{} {} {}",
        s(u, "/displayName"),
        s(u, "/email"),
        s(u, "/userPrincipalName")
    )
}

fn time(t: &str) -> Option<i64> {
    if t.is_empty() {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|d| d.and_utc().timestamp())
        })
        .ok()
}

fn all_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(x) if !x.starts_with('@') => out.push(x.clone()),
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| all_strings(x, out)),
        _ => {}
    }
}

pub async fn scan(account: &vault::Account, snap: &SnapshotInfo) -> Vec<Item> {
    let mut out = Vec::new();
    let walk = account.walk(snap, "").await.unwrap();
    let folder_meta: HashMap<String, Value> = walk
        .iter()
        .filter(|(_, n)| n.is_folder())
        .map(|(p, n)| {
            (
                p.clone(),
                serde_json::from_slice(n.meta()).unwrap_or(Value::Null),
            )
        })
        .collect();
    for (path, node) in &walk {
        let Node::Item { meta, content } = node else {
            continue;
        };
        let seg: Vec<&str> = path.split('/').collect();
        let read = || async { account.read_item_bytes(snap, path).await.unwrap() };
        let json_content = || async {
            serde_json::from_slice::<Value>(&account.read_item_bytes(snap, path).await.unwrap())
                .unwrap_or(Value::Null)
        };
        let mut f: HashMap<&'static str, String> = HashMap::new();
        let (kind, date, end) = match seg.as_slice() {
            ["mail", _, _] => {
                let m: Value = serde_json::from_slice(meta).unwrap();
                let mime = read().await;
                let parsed = mail_parser::MessageParser::default()
                    .parse(&mime[..])
                    .unwrap();
                let text = parsed
                    .body_text(0)
                    .map(|t| t.into_owned())
                    .or_else(|| parsed.body_html(0).map(|h| nanohtml2text::html2text(&h)))
                    .unwrap_or_default();
                f.insert("keyword", format!("{} {text}", s(&m, "/subject")));
                f.insert("subject", s(&m, "/subject").into());
                f.insert("from", addr(&m["from"]));
                f.insert(
                    "to",
                    addrs(&m, &["toRecipients", "ccRecipients", "bccRecipients"]),
                );
                let d = time(s(&m, "/receivedDateTime")).or(time(s(&m, "/sentDateTime")));
                (ItemKind::Mail, d, d)
            }
            ["contacts", _, _] => {
                let c = json_content().await;
                let name = [
                    "displayName",
                    "givenName",
                    "middleName",
                    "surname",
                    "nickName",
                ]
                .iter()
                .map(|k| s(&c, &format!("/{k}")))
                .collect::<Vec<_>>()
                .join(" ");
                let mut kw = vec![name.clone()];
                for e in c["emailAddresses"].as_array().cloned().unwrap_or_default() {
                    kw.push(format!("{} {}", s(&e, "/name"), s(&e, "/address")));
                }
                for k in ["companyName", "jobTitle", "personalNotes"] {
                    kw.push(s(&c, &format!("/{k}")).into());
                }
                f.insert("name", name);
                f.insert("keyword", kw.join(" "));
                let d = time(s(&c, "/createdDateTime"));
                (ItemKind::Contact, d, d)
            }
            ["calendar", _, _] | ["calendar", _] => {
                let e = json_content().await;
                let desc = body(&e);
                f.insert(
                    "keyword",
                    format!(
                        "{} {desc} {}",
                        s(&e, "/subject"),
                        s(&e, "/location/displayName")
                    ),
                );
                f.insert("subject", s(&e, "/subject").into());
                f.insert("description", desc);
                f.insert("owner", addr(&e["organizer"]));
                let start = time(s(&e, "/start/dateTime"));
                let end = time(s(&e, "/end/dateTime")).or(start);
                (ItemKind::Event, start, end)
            }
            ["tasks", _, _] => {
                let t = json_content().await;
                f.insert("keyword", format!("{} {}", s(&t, "/title"), body(&t)));
                let d = time(s(&t, "/dueDateTime/dateTime")).or(time(s(&t, "/createdDateTime")));
                (ItemKind::Task, d, d)
            }
            ["drive", "items", _] | ["drives", _, "items", _] => {
                let m: Value = serde_json::from_slice(meta).unwrap();
                if m.get("folder").is_some()
                    || m.get("package").is_some()
                    || m.get("root").is_some()
                {
                    continue;
                }
                let name = s(&m, "/name").to_string();
                let ext = name.rsplit_once('.').map(|x| x.1.to_ascii_lowercase());
                let texty = matches!(
                    ext.as_deref(),
                    Some(
                        "txt"
                            | "csv"
                            | "md"
                            | "markdown"
                            | "html"
                            | "htm"
                            | "json"
                            | "xml"
                            | "log"
                            | "tsv"
                            | "ics"
                            | "vcf"
                    )
                );
                let text = if texty && content.size > 0 && content.size <= 1024 * 1024 {
                    let raw = String::from_utf8_lossy(&read().await).into_owned();
                    if matches!(ext.as_deref(), Some("html" | "htm")) {
                        nanohtml2text::html2text(&raw)
                    } else {
                        raw
                    }
                } else {
                    String::new()
                };
                f.insert("keyword", format!("{name} {text}"));
                f.insert("file_name", name.clone());
                f.insert(
                    "author",
                    format!("{} {}", who(&m, "createdBy"), who(&m, "lastModifiedBy")),
                );
                let d = time(s(&m, "/lastModifiedDateTime"));
                let kind = if name.to_ascii_lowercase().ends_with(".one") {
                    ItemKind::Note
                } else {
                    ItemKind::File
                };
                (kind, d, d)
            }
            ["lists", _, _] => {
                let l = json_content().await;
                let mut words = Vec::new();
                all_strings(&l["fields"], &mut words);
                f.insert("keyword", words.join(" "));
                f.insert(
                    "author",
                    format!("{} {}", who(&l, "createdBy"), who(&l, "lastModifiedBy")),
                );
                let d = time(s(&l, "/lastModifiedDateTime"));
                (ItemKind::ListItem, d, d)
            }
            ["pages", _] => {
                let p = json_content().await;
                let mut html = Vec::new();
                all_strings(&p["canvasLayout"], &mut html);
                let canvas: Vec<String> =
                    html.iter().map(|h| nanohtml2text::html2text(h)).collect();
                f.insert(
                    "keyword",
                    format!(
                        "{} {} {} {}",
                        s(&p, "/title"),
                        s(&p, "/description"),
                        s(&p, "/name"),
                        canvas.join(" ")
                    ),
                );
                f.insert("file_name", s(&p, "/name").into());
                f.insert(
                    "author",
                    format!("{} {}", who(&p, "createdBy"), who(&p, "lastModifiedBy")),
                );
                let d = time(s(&p, "/lastModifiedDateTime"));
                (ItemKind::Page, d, d)
            }
            ["conversations", _, p] if !p.ends_with(".attachments") => {
                let post = json_content().await;
                f.insert("keyword", body(&post));
                f.insert("sender", addr(&post["from"]));
                let d = time(s(&post, "/receivedDateTime")).or(time(s(&post, "/createdDateTime")));
                (ItemKind::ConversationPost, d, d)
            }
            ["channels", c, m] if !m.ends_with(".replies") => {
                let msg = json_content().await;
                channel_fields(&mut f, &msg, &folder_meta[&format!("channels/{c}")]);
                let d = time(s(&msg, "/createdDateTime"));
                (ItemKind::ChannelMessage, d, d)
            }
            ["channels", c, r, _] if r.ends_with(".replies") => {
                let msg = json_content().await;
                channel_fields(&mut f, &msg, &folder_meta[&format!("channels/{c}")]);
                let d = time(s(&msg, "/createdDateTime"));
                (ItemKind::ChannelMessage, d, d)
            }
            _ => continue,
        };
        out.push(Item {
            path: path.clone(),
            kind,
            fields: f,
            span: date.map(|d| (d, end.unwrap_or(d).max(d))),
        });
    }
    out
}

fn channel_fields(f: &mut HashMap<&'static str, String>, msg: &Value, channel: &Value) {
    f.insert("keyword", format!("{} {}", s(msg, "/subject"), body(msg)));
    f.insert("channel", s(channel, "/displayName").into());
    let from = &msg["from"];
    let who = ["user", "application", "device", "group"]
        .iter()
        .map(|k| &from[*k])
        .find(|v| !v.is_null())
        .cloned()
        .unwrap_or(Value::Null);
    f.insert(
        "sender",
        format!(
            "{} {} {}",
            s(&who, "/displayName"),
            s(&who, "/email"),
            s(&who, "/userPrincipalName")
        ),
    );
}

/// Words as the index sees them: split at non-alphanumerics, lower-cased,
/// words of 40 bytes or more dropped.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .filter(|w| w.len() < 40)
        .collect()
}

fn field_of(q: &Query) -> Vec<(&'static str, &String)> {
    let mut out = Vec::new();
    for (name, v) in [
        ("keyword", &q.keyword),
        ("from", &q.from),
        ("to", &q.to),
        ("subject", &q.subject),
        ("name", &q.name),
        ("description", &q.description),
        ("owner", &q.owner),
        ("author", &q.author),
        ("file_name", &q.file_name),
        ("channel", &q.channel),
        ("sender", &q.sender),
    ] {
        if let Some(v) = v {
            out.push((name, v));
        }
    }
    out
}

/// Whether the brute-force scan counts `item` as a hit of `q`.
pub fn matches(item: &Item, q: &Query) -> bool {
    if !q.kinds.is_empty() && !q.kinds.contains(&item.kind) {
        return false;
    }
    for (name, value) in field_of(q) {
        let have: HashSet<String> = item
            .fields
            .get(name)
            .map(|t| words(t).into_iter().collect())
            .unwrap_or_default();
        if !words(value).iter().all(|w| have.contains(w)) {
            return false;
        }
    }
    if let Some((from, to)) = q.date_range {
        match item.span {
            Some((a, b)) => {
                if a > to.timestamp() || b < from.timestamp() {
                    return false;
                }
            }
            None => return false,
        }
    }
    true
}

pub fn brute(items: &[Item], q: &Query) -> BTreeSet<String> {
    items
        .iter()
        .filter(|i| matches(i, q))
        .map(|i| i.path.clone())
        .collect()
}

pub async fn hits(index: &SearchIndex, q: &Query) -> BTreeSet<String> {
    let mut q = q.clone();
    q.limit = 100_000;
    let hits = index.search(&q).await.unwrap();
    for h in &hits {
        assert_eq!(h.entity_key, q.entity_key);
    }
    let set: BTreeSet<String> = hits.iter().map(|h| h.path.clone()).collect();
    assert_eq!(set.len(), hits.len(), "one hit per item");
    set
}

/// A word of `text` worth searching for (4+ letters, not too common a
/// token): the `nth` one, cycling.
pub fn pick_word(text: &str, nth: usize) -> Option<String> {
    let ws: Vec<String> = words(text)
        .into_iter()
        .filter(|w| w.len() >= 4 && w.chars().all(char::is_alphabetic))
        .collect();
    if ws.is_empty() {
        None
    } else {
        Some(ws[nth % ws.len()].clone())
    }
}

/// Queries covering every F-E3 form that applies to the items found,
/// with values taken from those items.
pub fn queries(entity: &str, items: &[Item], as_of: AsOf) -> Vec<(String, Query)> {
    let base = Query {
        entity_key: entity.to_string(),
        as_of,
        ..Default::default()
    };
    let mut out = Vec::new();
    let of = |k: ItemKind| {
        items
            .iter()
            .filter(move |i| i.kind == k)
            .collect::<Vec<_>>()
    };
    let day = |t: i64| {
        (
            chrono::DateTime::from_timestamp(t - 86_400, 0).unwrap(),
            chrono::DateTime::from_timestamp(t + 86_400, 0).unwrap(),
        )
    };
    let field = |i: &Item, f: &str| i.fields.get(f).cloned().unwrap_or_default();
    let mut add = |label: &str, q: Query| out.push((label.to_string(), q));
    for (kind, forms) in [
        (
            ItemKind::Mail,
            &["keyword", "from", "to", "subject", "date"][..],
        ),
        (ItemKind::Contact, &["name"][..]),
        (ItemKind::Task, &["keyword"][..]),
        (
            ItemKind::Event,
            &["keyword", "description", "owner", "date"][..],
        ),
        (
            ItemKind::File,
            &["keyword", "author", "file_name", "date"][..],
        ),
        (ItemKind::ListItem, &["keyword", "author"][..]),
        (ItemKind::Page, &["keyword"][..]),
        (
            ItemKind::ChannelMessage,
            &["keyword", "channel", "sender", "date"][..],
        ),
        (ItemKind::ConversationPost, &["keyword", "sender"][..]),
    ] {
        let list = of(kind);
        if list.is_empty() {
            continue;
        }
        for (n, form) in forms.iter().enumerate() {
            let item = list[(n * 7 + 3) % list.len()];
            let mut q = base.clone();
            q.kinds = vec![kind];
            if *form == "date" {
                let Some((a, _)) = item.span else { continue };
                q.date_range = Some(day(a));
            } else {
                let text = field(item, form);
                // Keyword: a word of the body (not the title) when there is one.
                let Some(w) = pick_word(&text, n + 5) else {
                    continue;
                };
                let value = if *form == "from" || *form == "owner" || *form == "sender" {
                    // The whole sender: name and address, all words required.
                    text.clone()
                } else {
                    w
                };
                match *form {
                    "keyword" => q.keyword = Some(value),
                    "from" => q.from = Some(value),
                    "to" => q.to = Some(value),
                    "subject" => q.subject = Some(value),
                    "name" => q.name = Some(value),
                    "description" => q.description = Some(value),
                    "owner" => q.owner = Some(value),
                    "author" => q.author = Some(value),
                    "file_name" => q.file_name = Some(value),
                    "channel" => q.channel = Some(value),
                    "sender" => q.sender = Some(value),
                    _ => unreachable!(),
                }
            }
            add(&format!("{kind:?} by {form}"), q.clone());
            // The same without the kind filter: searches every kind at once.
            q.kinds.clear();
            add(&format!("{kind:?} by {form}, any kind"), q);
        }
    }
    // A keyword and a date range together.
    if let Some(m) = items
        .iter()
        .find(|i| i.span.is_some() && i.kind == ItemKind::Mail)
        && let Some(w) = pick_word(&field(m, "keyword"), 1)
    {
        let mut q = base.clone();
        q.keyword = Some(w);
        q.date_range = Some(day(m.span.unwrap().0));
        add("keyword and date", q);
    }
    out
}
