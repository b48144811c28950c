//! One drive (a OneDrive or a document library): its items with their
//! versions and permissions, generated from the seed, and the JSON Graph
//! gives for them.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::content::{Content, HashCache, Hashes, file_type, hash_content};
use crate::delta::DeltaLog;
use crate::error::{GraphError, GraphResult};
use crate::rng::{self, SimRng, pick, rng_for, stable_guid};
use crate::{generation_anchor, graph_time};

/// Who a drive belongs to; the drive id encodes it, so any drive can be found
/// (and generated) from its id alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DriveKey {
    /// A user's OneDrive, by user id.
    User(String),
    /// Document library `lib` (0 = "Documents") of a site.
    Library(String, u8),
}

impl DriveKey {
    pub fn id(&self) -> String {
        let raw = match self {
            DriveKey::User(u) => format!("u|{u}"),
            DriveKey::Library(s, l) => format!("s|{s}|{l}"),
        };
        format!("b!{}", URL_SAFE_NO_PAD.encode(raw.as_bytes()))
    }

    pub fn parse(id: &str) -> Option<DriveKey> {
        let raw = URL_SAFE_NO_PAD.decode(id.strip_prefix("b!")?).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.split('|');
        match (parts.next()?, parts.next()?, parts.next()) {
            ("u", u, None) => Some(DriveKey::User(u.to_string())),
            ("s", s, Some(l)) => Some(DriveKey::Library(s.to_string(), l.parse().ok()?)),
            _ => None,
        }
    }
}

/// A person or the app, as `createdBy` / `lastModifiedBy` show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    User { id: String, name: String },
    App { id: String },
}

impl Who {
    pub fn json(&self) -> Value {
        match self {
            Who::User { id, name } => json!({"user": {"id": id, "displayName": name}}),
            Who::App { id } => json!({
                "application": {"id": id, "displayName": "Lifeboat"},
                "user": {"displayName": "SharePoint App"}
            }),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Version {
    /// "1.0", "2.0", ...
    pub id: String,
    pub content: Content,
    /// Known up front for uploaded bytes; generated content is hashed on demand.
    pub hashes: Option<Hashes>,
    pub modified: DateTime<Utc>,
    pub by: Who,
}

#[derive(Debug, Clone)]
pub struct Perm {
    pub id: String,
    pub roles: Vec<String>,
    /// A sharing link (`view`/`edit`, scope), or a direct grant.
    pub link: Option<(String, String)>,
    pub grantee: Option<Who>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Root,
    Folder,
    File,
    /// A OneNote notebook: a folder with the `package` facet.
    Notebook,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub guid: String,
    /// Creation order within the drive (the list item id in a document library).
    pub counter: u64,
    pub name: String,
    pub parent: Option<String>,
    pub kind: Kind,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub fs_created: DateTime<Utc>,
    pub fs_modified: DateTime<Utc>,
    pub created_by: Who,
    pub modified_by: Who,
    /// Oldest first; the last one is the current content.
    pub versions: Vec<Version>,
    pub etag: u32,
    pub ctag: u32,
    pub perms: Vec<Perm>,
    pub description: Option<String>,
}

impl Item {
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }
    pub fn is_container(&self) -> bool {
        !self.is_file()
    }
    pub fn current(&self) -> Option<&Version> {
        self.versions.last()
    }
    pub fn size(&self) -> u64 {
        self.current().map(|v| v.content.len()).unwrap_or(0)
    }
}

/// Everything about a drive that is not its items.
#[derive(Debug, Clone)]
pub struct DriveMeta {
    pub id: String,
    #[allow(dead_code)]
    pub key: DriveKey,
    /// `business` or `documentLibrary`.
    pub drive_type: &'static str,
    pub name: String,
    pub description: String,
    pub web_url: String,
    pub created: DateTime<Utc>,
    pub owner: Value,
    pub site_id: Option<String>,
    /// Library's list id (document libraries), for sharePointIds.
    #[allow(dead_code)]
    pub list_id: String,
}

pub struct DriveState {
    pub meta: DriveMeta,
    pub items: DeltaLog<Item>,
    pub root_id: String,
    pub next_counter: u64,
}

/// What drives are generated with.
pub struct GenSpec {
    pub seed: u64,
    pub scale: f64,
    /// Empty drives hold only their root (created through the API).
    pub generated: bool,
    /// People who create and edit content (first = owner for OneDrives).
    pub people: Vec<Who>,
    /// Extra top-level folders (channel folders of a team site).
    pub extra_folders: Vec<String>,
    pub personal: bool,
}

fn b32(bytes: &[u8]) -> String {
    const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHA[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHA[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

impl DriveState {
    /// Item ids look like OneDrive for Business ones (`01` + 32 base32
    /// characters); their first characters grow with creation order, so a
    /// delta round lists parents before their children.
    pub fn new_ids(&mut self, seed: u64) -> (String, String, u64) {
        let n = self.next_counter;
        self.next_counter += 1;
        let g = stable_guid(seed, &["driveitem", &self.meta.id, &n.to_string()]);
        let mut head = [0u8; 5];
        head.copy_from_slice(&(n << 24).to_be_bytes()[..5]);
        let id = format!("01{}{}", b32(&head), &b32(&g.as_bytes()[..15])[..24]);
        (id, g.to_string().to_uppercase(), n)
    }

    pub fn empty(meta: DriveMeta, seed: u64, created_by: Who) -> DriveState {
        let mut st = DriveState {
            meta,
            items: DeltaLog::new(),
            root_id: String::new(),
            next_counter: 0,
        };
        let (id, guid, counter) = st.new_ids(seed);
        let t = st.meta.created;
        st.root_id = id.clone();
        st.items.upsert(
            id.clone(),
            Item {
                id,
                guid,
                counter,
                name: "root".into(),
                parent: None,
                kind: Kind::Root,
                created: t,
                modified: t,
                fs_created: t,
                fs_modified: t,
                created_by: created_by.clone(),
                modified_by: created_by,
                versions: Vec::new(),
                etag: 1,
                ctag: 1,
                perms: Vec::new(),
                description: None,
            },
            0,
        );
        st
    }

    pub fn generate(meta: DriveMeta, spec: &GenSpec) -> DriveState {
        let owner = spec.people.first().cloned().unwrap_or(Who::User {
            id: String::new(),
            name: "System Account".into(),
        });
        let mut st = DriveState::empty(meta, spec.seed, owner);
        for name in &spec.extra_folders {
            let t = st.meta.created + Duration::days(1);
            let by = st.items.get(&st.root_id).map(|r| r.created_by.clone());
            if let Some(by) = by {
                let root = st.root_id.clone();
                st.add_item(spec.seed, &root, name, Kind::Folder, t, by, None, 0);
            }
        }
        if !spec.generated || spec.people.is_empty() {
            return st;
        }
        let mut r = rng_for(spec.seed, &["drive", &st.meta.id]);
        let scale = spec.scale.max(0.0);
        let n_files = ((r.random_range(12..45) as f64) * scale).round() as usize;
        let n_folders = (n_files / 5).max(usize::from(n_files > 0));
        let root = st.root_id.clone();
        let mut folders: Vec<(String, usize)> = vec![(root.clone(), 0)];
        let top: &[&str] = if spec.personal {
            &[
                "Documents",
                "Pictures",
                "Desktop",
                "Attachments",
                "Microsoft Teams Chat Files",
            ]
        } else {
            &["General", "Projects", "Policies", "Shared", "Templates"]
        };
        for (i, name) in top.iter().enumerate() {
            if i >= 2 + n_folders / 2 {
                break;
            }
            let t = random_time(&mut r, &st.meta.created);
            let by = pick(&mut r, &spec.people).clone();
            // A team site's channel folder ("General") may already be
            // there: names are unique among siblings, so it is reused.
            let id = match st.child_named(&root, name).filter(|i| i.is_container()) {
                Some(existing) => existing.id.clone(),
                None => st.add_item(spec.seed, &root, name, Kind::Folder, t, by, None, 0),
            };
            folders.push((id, 1));
        }
        for _ in 0..n_folders {
            let (parent, depth) = folders[r.random_range(0..folders.len())].clone();
            if depth >= 5 {
                continue;
            }
            // Names are unique among siblings in a real drive; the
            // generator may draw the same title twice.
            let name = st.free_name(&parent, &rng::title(&mut r, 1, 3));
            let t = random_time(&mut r, &st.meta.created);
            let by = pick(&mut r, &spec.people).clone();
            let id = st.add_item(spec.seed, &parent, &name, Kind::Folder, t, by, None, 0);
            folders.push((id, depth + 1));
        }
        for _ in 0..n_files {
            let (parent, _) = folders[r.random_range(0..folders.len())].clone();
            st.generate_file(spec, &mut r, &parent, None, None);
        }
        // A few large files: tens to hundreds of MB, generated only when read.
        if r.random_bool((0.08 * scale).clamp(0.0, 1.0)) {
            let (parent, _) = folders[r.random_range(0..folders.len())].clone();
            let ext = *pick(&mut r, &["mp4", "zip", "pptx"]);
            let size = r.random_range(20_000_000..300_000_000u64);
            let name = format!("{}.{ext}", rng::title(&mut r, 2, 4));
            st.generate_file(spec, &mut r, &parent, Some(name), Some(size));
        }
        // A OneNote notebook, as its files in the drive.
        if r.random_bool(0.5) {
            let parent = if spec.personal {
                let t = random_time(&mut r, &st.meta.created);
                let by = spec.people[0].clone();
                st.add_item(spec.seed, &root, "Notebooks", Kind::Folder, t, by, None, 0)
            } else {
                root.clone()
            };
            let title = format!("{} Notebook", rng::title(&mut r, 1, 2));
            let t = random_time(&mut r, &st.meta.created);
            let by = pick(&mut r, &spec.people).clone();
            let nb = st.add_item(spec.seed, &parent, &title, Kind::Notebook, t, by, None, 0);
            st.generate_file(
                spec,
                &mut r,
                &nb,
                Some("Open Notebook.onetoc2".into()),
                Some(4_096),
            );
            for _ in 0..r.random_range(1..4) {
                let sec = format!("{}.one", rng::title(&mut r, 1, 2));
                let size = r.random_range(20_000..2_000_000);
                st.generate_file(spec, &mut r, &nb, Some(sec), Some(size));
            }
        }
        // Sharing: links and direct grants on some items.
        let ids: Vec<String> = st.items.iter().map(|(k, _)| k.to_string()).collect();
        for id in ids {
            if id == st.root_id {
                continue;
            }
            let roll: f64 = r.random();
            let mut perms = Vec::new();
            if roll < 0.12 {
                let (t, roles) = if r.random_bool(0.5) {
                    ("view", "read")
                } else {
                    ("edit", "write")
                };
                perms.push(Perm {
                    id: stable_guid(spec.seed, &["perm", &st.meta.id, &id, "l"]).to_string(),
                    roles: vec![roles.into()],
                    link: Some((t.into(), "organization".into())),
                    grantee: None,
                });
            }
            if roll > 0.9 {
                let who = pick(&mut r, &spec.people).clone();
                perms.push(Perm {
                    id: stable_guid(spec.seed, &["perm", &st.meta.id, &id, "g"]).to_string(),
                    roles: vec![if r.random_bool(0.5) { "read" } else { "write" }.into()],
                    link: None,
                    grantee: Some(who),
                });
            }
            if let Some(it) = st.items.peek_mut(&id) {
                it.perms = perms;
            }
        }
        st
    }

    fn generate_file(
        &mut self,
        spec: &GenSpec,
        r: &mut SimRng,
        parent: &str,
        name: Option<String>,
        size: Option<u64>,
    ) {
        let (name, ext) = match name {
            Some(n) => {
                let ext = n
                    .rsplit_once('.')
                    .map(|(_, e)| e.to_string())
                    .unwrap_or_default();
                (n, ext)
            }
            None => {
                let ext = *pick(
                    r,
                    &[
                        "docx", "docx", "xlsx", "xlsx", "pptx", "pdf", "pdf", "jpg", "png", "txt",
                        "csv", "md",
                    ],
                );
                (format!("{}.{ext}", rng::title(r, 1, 4)), ext.to_string())
            }
        };
        let (lo, hi): (u64, u64) = match ext.as_str() {
            "docx" => (12_000, 2_000_000),
            "xlsx" => (8_000, 4_000_000),
            "pptx" => (150_000, 15_000_000),
            "pdf" => (40_000, 8_000_000),
            "jpg" | "png" => (60_000, 5_000_000),
            _ => (200, 60_000),
        };
        let name = self.free_name(parent, &name);
        let base = size.unwrap_or_else(|| log_uniform(r, lo, hi));
        let n_versions = if r.random_bool(0.3) {
            r.random_range(2..=5)
        } else {
            1
        };
        let t0 = random_time(r, &self.meta.created);
        let by = pick(r, &spec.people).clone();
        let (_, kind) = file_type(&ext);
        let id = self.add_item(
            spec.seed,
            parent,
            &name,
            Kind::File,
            t0,
            by.clone(),
            None,
            0,
        );
        let mut t = t0;
        let mut versions = Vec::new();
        for v in 0..n_versions {
            if v > 0 {
                t += Duration::minutes(r.random_range(30..60 * 24 * 20));
            }
            let len = match size {
                Some(s) => s,
                None => (base as f64 * r.random_range(0.8..1.2)) as u64,
            }
            .max(1);
            versions.push(Version {
                id: format!("{}.0", v + 1),
                content: Content::Gen {
                    key: format!("{}/{}/{}", self.meta.id, id, v).into(),
                    len,
                    kind,
                },
                hashes: None,
                modified: t.min(generation_anchor()),
                by: if v == 0 {
                    by.clone()
                } else {
                    pick(r, &spec.people).clone()
                },
            });
        }
        if let Some(it) = self.items.peek_mut(&id) {
            it.modified = versions.last().map(|v| v.modified).unwrap_or(t0);
            it.fs_modified = it.modified;
            it.modified_by = versions.last().map(|v| v.by.clone()).unwrap_or(by);
            it.etag = versions.len() as u32;
            it.ctag = versions.len() as u32;
            it.versions = versions;
        }
    }

    /// Adds an item (as changed at `seq`) and returns its id.
    #[allow(clippy::too_many_arguments)]
    pub fn add_item(
        &mut self,
        seed: u64,
        parent: &str,
        name: &str,
        kind: Kind,
        t: DateTime<Utc>,
        by: Who,
        content: Option<(Content, Option<Hashes>)>,
        seq: u64,
    ) -> String {
        let (id, guid, counter) = self.new_ids(seed);
        let versions = content
            .map(|(c, h)| {
                vec![Version {
                    id: "1.0".into(),
                    content: c,
                    hashes: h,
                    modified: t,
                    by: by.clone(),
                }]
            })
            .unwrap_or_default();
        self.items.upsert(
            id.clone(),
            Item {
                id: id.clone(),
                guid,
                counter,
                name: name.to_string(),
                parent: Some(parent.to_string()),
                kind,
                created: t,
                modified: t,
                fs_created: t,
                fs_modified: t,
                created_by: by.clone(),
                modified_by: by,
                versions,
                etag: 1,
                ctag: 1,
                perms: Vec::new(),
                description: None,
            },
            seq,
        );
        id
    }

    pub fn children(&self, id: &str) -> Vec<&Item> {
        let mut v: Vec<&Item> = self
            .items
            .values()
            .filter(|i| i.parent.as_deref() == Some(id))
            .collect();
        v.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then(a.id.cmp(&b.id))
        });
        v
    }

    pub fn child_named(&self, parent: &str, name: &str) -> Option<&Item> {
        self.items
            .values()
            .find(|i| i.parent.as_deref() == Some(parent) && i.name.eq_ignore_ascii_case(name))
    }

    /// The item at `path` (slash separated, relative to `from`).
    pub fn resolve_path(&self, from: &str, path: &str) -> Option<&Item> {
        let mut cur = self.items.get(from)?;
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            cur = self.child_named(&cur.id, seg)?;
        }
        Some(cur)
    }

    /// Path segments from the root (exclusive) to the item (inclusive).
    pub fn path_of(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = self.items.get(id);
        while let Some(it) = cur {
            if it.kind == Kind::Root {
                break;
            }
            out.push(it.name.clone());
            cur = it.parent.as_deref().and_then(|p| self.items.get(p));
        }
        out.reverse();
        out
    }

    /// Ids of the item and everything under it.
    pub fn subtree(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_string()];
        let mut i = 0;
        while i < out.len() {
            let cur = out[i].clone();
            out.extend(
                self.items
                    .values()
                    .filter(|c| c.parent.as_deref() == Some(cur.as_str()))
                    .map(|c| c.id.clone()),
            );
            i += 1;
        }
        out
    }

    /// Total size and child count of every container.
    pub fn aggregates(&self) -> HashMap<String, (u64, u64)> {
        let mut agg: HashMap<String, (u64, u64)> = HashMap::new();
        for it in self.items.values() {
            if let Some(p) = &it.parent {
                agg.entry(p.clone()).or_default().1 += 1;
            }
            if it.is_file() {
                let size = it.size();
                let mut cur = it.parent.clone();
                while let Some(p) = cur {
                    agg.entry(p.clone()).or_default().0 += size;
                    cur = self.items.get(&p).and_then(|x| x.parent.clone());
                }
            }
        }
        agg
    }

    /// A name that is free in `parent`: `name 1.ext`, `name 2.ext`, ... as OneDrive renames.
    pub fn free_name(&self, parent: &str, name: &str) -> String {
        if self.child_named(parent, name).is_none() {
            return name.to_string();
        }
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_string(), format!(".{e}")),
            _ => (name.to_string(), String::new()),
        };
        (1..)
            .map(|i| format!("{stem} {i}{ext}"))
            .find(|n| self.child_named(parent, n).is_none())
            .unwrap_or_else(|| name.to_string())
    }

    pub fn item(&self, id: &str) -> GraphResult<&Item> {
        let key = if id.eq_ignore_ascii_case("root") {
            self.root_id.as_str()
        } else {
            id
        };
        self.items.get(key).ok_or_else(item_missing)
    }

    pub fn used(&self) -> u64 {
        self.items
            .values()
            .filter(|i| i.is_file())
            .map(|i| i.versions.iter().map(|v| v.content.len()).sum::<u64>())
            .sum()
    }

    pub fn web_url_of(&self, id: &str) -> String {
        let p = self.path_of(id);
        if p.is_empty() {
            return self.meta.web_url.clone();
        }
        let enc: Vec<String> = p.iter().map(|s| crate::odata::encode(s)).collect();
        format!("{}/{}", self.meta.web_url, enc.join("/"))
    }
}

pub fn item_missing() -> GraphError {
    GraphError::item_not_found("The resource could not be found.")
}

fn random_time(r: &mut SimRng, after: &DateTime<Utc>) -> DateTime<Utc> {
    let span = (generation_anchor() - *after).num_minutes().max(60);
    *after + Duration::minutes(r.random_range(1..span))
}

fn log_uniform(r: &mut SimRng, lo: u64, hi: u64) -> u64 {
    let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
    r.random_range(a..b).exp() as u64
}

/// How an item is rendered.
pub struct Render<'a> {
    pub origin: &'a str,
    pub seed: u64,
    pub hashes: &'a HashCache,
    pub agg: &'a HashMap<String, (u64, u64)>,
    /// Delta omits `parentReference.path`.
    pub in_delta: bool,
    /// Signs pre-authenticated download URLs.
    pub sign: &'a dyn Fn(&str) -> String,
    pub now: i64,
}

pub fn hashes_of(seed: u64, cache: &HashCache, v: &Version) -> Hashes {
    match &v.hashes {
        Some(h) => h.clone(),
        None => cache.get(seed, &v.content),
    }
}

pub fn bytes_hashes(seed: u64, b: &Bytes) -> Hashes {
    hash_content(seed, &Content::Bytes(b.clone()))
}

/// A pre-authenticated download URL for one version of an item, valid an hour.
pub fn download_url(r: &Render<'_>, drive: &str, item: &str, version: &str) -> String {
    let exp = r.now + 3600;
    let t = URL_SAFE_NO_PAD.encode(format!("{drive}|{item}|{version}|{exp}").as_bytes());
    let sig = (r.sign)(&t);
    format!("{}/_files/download/{t}?sig={sig}", r.origin)
}

pub fn parent_ref(st: &DriveState, parent: Option<&str>, with_path: bool) -> Value {
    let mut m = Map::new();
    m.insert("driveType".into(), json!(st.meta.drive_type));
    m.insert("driveId".into(), json!(st.meta.id));
    if let Some(p) = parent {
        m.insert("id".into(), json!(p));
        if with_path {
            let segs = st.path_of(p);
            let path = if segs.is_empty() {
                format!("/drives/{}/root:", st.meta.id)
            } else {
                format!("/drives/{}/root:/{}", st.meta.id, segs.join("/"))
            };
            m.insert("path".into(), json!(path));
        }
    }
    if let Some(s) = &st.meta.site_id {
        m.insert("siteId".into(), json!(s));
    }
    Value::Object(m)
}

pub fn item_json(st: &DriveState, it: &Item, r: &Render<'_>) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(it.id));
    m.insert("name".into(), json!(it.name));
    m.insert(
        "eTag".into(),
        json!(format!("\"{{{}}},{}\"", it.guid, it.etag)),
    );
    m.insert(
        "cTag".into(),
        json!(format!("\"c:{{{}}},{}\"", it.guid, it.ctag)),
    );
    let (agg_size, child_count) = r.agg.get(&it.id).copied().unwrap_or((0, 0));
    let size = if it.is_file() { it.size() } else { agg_size };
    m.insert("size".into(), json!(size));
    m.insert("createdDateTime".into(), json!(graph_time(it.created)));
    m.insert(
        "lastModifiedDateTime".into(),
        json!(graph_time(it.modified)),
    );
    m.insert("webUrl".into(), json!(st.web_url_of(&it.id)));
    m.insert("createdBy".into(), it.created_by.json());
    m.insert("lastModifiedBy".into(), it.modified_by.json());
    if let Some(d) = &it.description {
        m.insert("description".into(), json!(d));
    }
    m.insert(
        "parentReference".into(),
        parent_ref(st, it.parent.as_deref(), !r.in_delta),
    );
    m.insert(
        "fileSystemInfo".into(),
        json!({"createdDateTime": graph_time(it.fs_created), "lastModifiedDateTime": graph_time(it.fs_modified)}),
    );
    match it.kind {
        Kind::Root => {
            m.insert("root".into(), json!({}));
            m.insert("folder".into(), json!({"childCount": child_count}));
        }
        Kind::Folder => {
            m.insert("folder".into(), json!({"childCount": child_count}));
        }
        Kind::Notebook => {
            m.insert("package".into(), json!({"type": "oneNote"}));
        }
        Kind::File => {
            if let Some(v) = it.current() {
                let h = hashes_of(r.seed, r.hashes, v);
                m.insert(
                    "file".into(),
                    json!({"mimeType": super::content::mime_for_name(&it.name), "hashes": {"quickXorHash": h.quick_xor}}),
                );
                m.insert(
                    "@microsoft.graph.downloadUrl".into(),
                    json!(download_url(r, &st.meta.id, &it.id, &v.id)),
                );
            }
        }
    }
    if !it.perms.is_empty() {
        m.insert("shared".into(), json!({"scope": if it.perms.iter().any(|p| p.link.is_some()) { "organization" } else { "users" }}));
    }
    Value::Object(m)
}

pub fn version_json(st: &DriveState, it: &Item, v: &Version, r: &Render<'_>) -> Value {
    json!({
        "id": v.id,
        "lastModifiedDateTime": graph_time(v.modified),
        "lastModifiedBy": v.by.json(),
        "size": v.content.len(),
        "@microsoft.graph.downloadUrl": download_url(r, &st.meta.id, &it.id, &v.id),
    })
}

pub fn perm_json(st: &DriveState, it: &Item, p: &Perm) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(p.id));
    m.insert("roles".into(), json!(p.roles));
    if let Some((t, scope)) = &p.link {
        m.insert(
            "link".into(),
            json!({"type": t, "scope": scope, "webUrl": format!("{}?share={}", st.web_url_of(&it.id), &p.id[..8]), "preventsDownload": false}),
        );
        m.insert("shareId".into(), json!(format!("u!{}", &p.id)));
        m.insert("hasPassword".into(), json!(false));
    }
    if let Some(g) = &p.grantee {
        m.insert("grantedToV2".into(), g.json());
        m.insert("grantedTo".into(), g.json());
    }
    Value::Object(m)
}
