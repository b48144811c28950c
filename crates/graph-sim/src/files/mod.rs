//! Files: OneDrive and SharePoint. Drives (every licensed user's OneDrive and
//! the document libraries of every site) with folder trees, files of
//! realistic types and sizes (generated from the seed block by block, never
//! held in memory), versions, sharing permissions and OneNote notebooks (as
//! their files: Graph's OneNote API no longer allows app-only access); upload
//! sessions; drive delta; sites (root, communication, group team sites,
//! sub-sites), lists with columns and items, list item delta and site pages.

mod content;
mod drive;
mod http;
mod qxh;
mod sites;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use axum::Router;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde_json::{Value, json};

pub use content::{BLOCK, Content, GenKind, hash_content};
pub use drive::{DriveKey, Kind, Who};
pub use qxh::{QuickXor, quick_xor_base64};

use crate::error::{GraphError, GraphResult};
use crate::lazy::{LazyMap, Slot};
use crate::rng::{self, SimRng, pick};
use crate::{ActivityReport, EntityRef, Sim, TruthItem, Workload};
use content::HashCache;
use drive::{DriveMeta, DriveState, GenSpec};
use sites::{SiteKind, SiteMeta, SiteState};

/// An upload in progress (`createUploadSession`).
pub(crate) struct UploadSession {
    pub drive: String,
    pub parent: String,
    pub name: String,
    /// The file being replaced, when the session was created on an existing item.
    pub existing: Option<String>,
    pub conflict: Conflict,
    pub fs_created: Option<DateTime<Utc>>,
    pub fs_modified: Option<DateTime<Utc>>,
    pub description: Option<String>,
    pub total: Option<u64>,
    pub buf: Vec<u8>,
    pub expires: DateTime<Utc>,
    /// Set once the last byte arrived and the file was committed: the item
    /// and the status it was answered with (a retried final fragment gets
    /// the same answer again).
    pub done: Option<(String, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Fail,
    Replace,
    Rename,
}

impl Conflict {
    pub fn parse(s: Option<&str>, default: Conflict) -> GraphResult<Conflict> {
        match s.map(|s| s.to_ascii_lowercase()) {
            None => Ok(default),
            Some(s) if s == "fail" => Ok(Conflict::Fail),
            Some(s) if s == "replace" => Ok(Conflict::Replace),
            Some(s) if s == "rename" => Ok(Conflict::Rename),
            Some(s) => Err(GraphError::invalid_request(format!(
                "Invalid value '{s}' for @microsoft.graph.conflictBehavior."
            ))),
        }
    }
}

pub struct FileStore {
    drives: LazyMap<DriveState>,
    site_states: LazyMap<SiteState>,
    /// Every site; generated on first use, group sites added per group.
    sites: RwLock<Option<BTreeMap<String, SiteMeta>>>,
    /// Drives that were deleted (with their user or site).
    gone: RwLock<HashSet<String>>,
    /// How many directory groups the registry has seen (group sites are added for new ones).
    synced_groups: std::sync::atomic::AtomicUsize,
    pub(crate) sessions: Mutex<HashMap<String, UploadSession>>,
    pub(crate) hashes: HashCache,
}

impl FileStore {
    pub fn new(capacity: usize) -> Self {
        FileStore {
            drives: LazyMap::new(capacity),
            site_states: LazyMap::new(capacity),
            sites: RwLock::new(None),
            gone: RwLock::new(HashSet::new()),
            synced_groups: std::sync::atomic::AtomicUsize::new(usize::MAX),
            sessions: Mutex::new(HashMap::new()),
            hashes: HashCache::default(),
        }
    }
}

/// `contoso123` and `contoso123.sharepoint.com` for the tenant's domain.
pub(crate) fn tenant_host(sim: &Sim) -> (String, String) {
    let t = sim
        .cfg
        .domain
        .split('.')
        .next()
        .unwrap_or("contoso")
        .to_string();
    let host = format!("{t}.sharepoint.com");
    (t, host)
}

pub(crate) fn origin(sim: &Sim) -> String {
    format!("{}://{}", sim.scheme(), sim.listen_host())
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| crate::generation_anchor())
}

pub(crate) fn app(sim: &Sim) -> Who {
    Who::App {
        id: sim.cfg.client_id.clone(),
    }
}

fn user_who(u: &crate::directory::User) -> Who {
    Who::User {
        id: u.id.clone(),
        name: u.display_name.clone(),
    }
}

// ---- sites ---------------------------------------------------------------

fn with_registry<R>(sim: &Sim, f: impl FnOnce(&mut BTreeMap<String, SiteMeta>) -> R) -> R {
    let store = &sim.files;
    let mut g = store.sites.write();
    if g.is_none() {
        let (_, host) = tenant_host(sim);
        *g = Some(sites::generate_registry(sim.seed(), &host, sim.cfg.users));
    }
    // Group team sites: one per unified group, added when the directory has groups it has not seen.
    let n_groups = sim.directory.read().groups.len();
    if store
        .synced_groups
        .swap(n_groups, std::sync::atomic::Ordering::Relaxed)
        == n_groups
    {
        return f(g.as_mut().expect("registry initialised above"));
    }
    let groups: Vec<(String, String, String, String, bool, bool)> = {
        let dir = sim.directory.read();
        dir.groups
            .iter()
            .filter(|g| g.unified)
            .map(|g| {
                (
                    g.id.clone(),
                    g.mail_nickname.clone(),
                    g.display_name.clone(),
                    g.created.clone(),
                    g.generated,
                    g.deleted.is_some(),
                )
            })
            .collect()
    };
    let reg = g.as_mut().expect("registry initialised above");
    let (_, host) = tenant_host(sim);
    let known: HashSet<String> = reg
        .values()
        .filter_map(|s| match &s.kind {
            SiteKind::Group(gid) => Some(gid.clone()),
            _ => None,
        })
        .collect();
    for (gid, nick, display, created, generated, deleted) in groups {
        if deleted || known.contains(&gid) {
            continue;
        }
        let s = sites::group_site(
            sim.seed(),
            &host,
            &gid,
            &nick,
            &display,
            parse_time(&created),
            generated,
        );
        reg.insert(s.id.clone(), s);
    }
    f(reg)
}

/// A live site by id (`root`, a hostname, or `host,collection,web`).
pub(crate) fn site_meta(sim: &Sim, id: &str) -> GraphResult<SiteMeta> {
    let (_, host) = tenant_host(sim);
    with_registry(sim, |reg| {
        let found = if id.eq_ignore_ascii_case("root") || id.eq_ignore_ascii_case(&host) {
            reg.values().find(|s| s.kind == SiteKind::Root)
        } else {
            reg.get(id).or_else(|| {
                reg.values().find(|s| {
                    s.id.eq_ignore_ascii_case(id)
                        || id.eq_ignore_ascii_case(&format!("{},{}", s.host, s.coll))
                            && s.is_collection_root()
                })
            })
        };
        found
            .filter(|s| !s.deleted)
            .cloned()
            .ok_or_else(|| GraphError::item_not_found("Requested site could not be found"))
    })
}

pub(crate) fn site_by_path(sim: &Sim, host: &str, path: &str) -> GraphResult<SiteMeta> {
    let want = format!("/{}", path.trim_matches('/'));
    let want = if want == "/" { String::new() } else { want };
    with_registry(sim, |reg| {
        reg.values()
            .find(|s| {
                !s.deleted
                    && s.host.eq_ignore_ascii_case(host)
                    && s.path.eq_ignore_ascii_case(&want)
            })
            .cloned()
            .ok_or_else(|| GraphError::item_not_found("Requested site could not be found"))
    })
}

pub(crate) fn all_sites(sim: &Sim) -> Vec<SiteMeta> {
    with_registry(sim, |reg| {
        reg.values().filter(|s| !s.deleted).cloned().collect()
    })
}

pub(crate) fn group_site_meta(sim: &Sim, gid: &str) -> GraphResult<SiteMeta> {
    let g = sim
        .directory
        .read()
        .group(gid)
        .map(|g| (g.id.clone(), g.unified))
        .ok_or_else(|| GraphError::directory_not_found(gid))?;
    if !g.1 {
        return Err(GraphError::item_not_found(
            "Requested site could not be found",
        ));
    }
    with_registry(sim, |reg| {
        reg.values()
            .find(|s| s.kind == SiteKind::Group(g.0.clone()) && !s.deleted)
            .cloned()
            .ok_or_else(|| GraphError::item_not_found("Requested site could not be found"))
    })
}

fn site_people(sim: &Sim, site: &SiteMeta) -> Vec<Who> {
    let dir = sim.directory.read();
    if let SiteKind::Group(gid) = &site.kind
        && let Some(g) = dir.group_any(gid)
    {
        let v: Vec<Who> = g
            .members
            .iter()
            .filter_map(|m| dir.user_any(m))
            .map(user_who)
            .collect();
        if !v.is_empty() {
            return v;
        }
    }
    let licensed: Vec<&crate::directory::User> = dir
        .users
        .iter()
        .filter(|u| u.generated && u.has_drive())
        .collect();
    if licensed.is_empty() {
        return Vec::new();
    }
    let mut r = rng::rng_for(sim.seed(), &["site-people", &site.id]);
    (0..6)
        .map(|_| user_who(licensed[r.random_range(0..licensed.len())]))
        .collect()
}

pub(crate) fn site_state(sim: &Sim, site: &SiteMeta) -> Arc<Slot<SiteState>> {
    sim.files.site_states.get(&site.id, || {
        let people = site_people(sim, site);
        SiteState::generate(sim.seed(), site, &people, sim.cfg.content_scale)
    })
}

// ---- drives --------------------------------------------------------------

pub(crate) fn user_drive_id(sim: &Sim, uid: &str) -> GraphResult<String> {
    let dir = sim.directory.read();
    let u = dir
        .user(uid)
        .ok_or_else(|| GraphError::directory_not_found(uid))?;
    if !u.has_drive() {
        return Err(mysite_not_found());
    }
    Ok(DriveKey::User(u.id.clone()).id())
}

fn mysite_not_found() -> GraphError {
    GraphError::new(
        axum::http::StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "User's mysite not found.",
    )
}

pub(crate) fn drive_missing() -> GraphError {
    GraphError::item_not_found("The drive cannot be found.")
}

/// The drive with this id, generated on first use.
pub(crate) fn drive_slot(sim: &Sim, drive_id: &str) -> GraphResult<Arc<Slot<DriveState>>> {
    if sim.files.gone.read().contains(drive_id) {
        return Err(drive_missing());
    }
    let key = DriveKey::parse(drive_id).ok_or_else(drive_missing)?;
    if let Some(s) = sim.files.drives.existing(drive_id) {
        return Ok(s);
    }
    let (meta, spec) = match &key {
        DriveKey::User(uid) => {
            let dir = sim.directory.read();
            let u = dir
                .user(uid)
                .filter(|u| u.has_drive())
                .ok_or_else(drive_missing)?;
            let (tenant, _) = tenant_host(sim);
            let personal = u.upn.replace(['.', '@'], "_");
            let n = dir.users.len().max(1);
            let mut people = vec![user_who(u), user_who(u), user_who(u)];
            for off in [1usize, 7] {
                let c = &dir.users[(u.index as usize + off) % n];
                if c.id != u.id {
                    people.push(user_who(c));
                }
            }
            let meta = DriveMeta {
                id: drive_id.to_string(),
                key: key.clone(),
                drive_type: "business",
                name: "OneDrive".into(),
                description: String::new(),
                web_url: format!(
                    "https://{tenant}-my.sharepoint.com/personal/{personal}/Documents"
                ),
                created: parse_time(&u.created),
                owner: json!({"user": {"id": u.id, "displayName": u.display_name}}),
                site_id: None,
                list_id: rng::stable_guid(sim.seed(), &["mysite-list", &u.id]).to_string(),
            };
            let spec = GenSpec {
                seed: sim.seed(),
                scale: sim.cfg.content_scale,
                generated: u.generated,
                people,
                extra_folders: Vec::new(),
                personal: true,
            };
            (meta, spec)
        }
        DriveKey::Library(sid, lib) => {
            let site = site_meta(sim, sid).map_err(|_| drive_missing())?;
            let name = site
                .libs
                .get(*lib as usize)
                .cloned()
                .ok_or_else(drive_missing)?;
            let url_name = if *lib == 0 {
                "Shared%20Documents".to_string()
            } else {
                crate::odata::encode(&name)
            };
            let owner = match &site.kind {
                SiteKind::Group(gid) => {
                    let dir = sim.directory.read();
                    let dn = dir
                        .group_any(gid)
                        .map(|g| g.display_name.clone())
                        .unwrap_or_default();
                    json!({"group": {"id": gid, "displayName": dn}})
                }
                _ => json!({"user": {"displayName": "System Account"}}),
            };
            let list_id =
                rng::stable_guid(sim.seed(), &["list", &site.id, "lib", &lib.to_string()])
                    .to_string();
            let meta = DriveMeta {
                id: drive_id.to_string(),
                key: key.clone(),
                drive_type: "documentLibrary",
                name: name.clone(),
                description: String::new(),
                web_url: format!("{}/{}", site.web_url(), url_name),
                created: site.created,
                owner,
                site_id: Some(site.id.clone()),
                list_id,
            };
            let extra = if *lib == 0 && matches!(site.kind, SiteKind::Group(_)) && site.generated {
                vec!["General".to_string()]
            } else {
                Vec::new()
            };
            let spec = GenSpec {
                seed: sim.seed(),
                scale: sim.cfg.content_scale,
                generated: site.generated && (*lib as usize) < site.generated_libs,
                people: site_people(sim, &site),
                extra_folders: extra,
                personal: false,
            };
            (meta, spec)
        }
    };
    Ok(sim
        .files
        .drives
        .get(drive_id, || DriveState::generate(meta, &spec)))
}

fn drive_ids_of_site(site: &SiteMeta) -> Vec<String> {
    (0..site.libs.len())
        .map(|i| DriveKey::Library(site.id.clone(), i as u8).id())
        .collect()
}

fn drop_drive(sim: &Sim, id: &str) {
    sim.files.gone.write().insert(id.to_string());
    sim.files.drives.remove(id);
    sim.files.sessions.lock().retain(|_, s| s.drive != id);
}

// ---- public API for the rest of the simulator ------------------------------

pub fn routes() -> Router<Arc<Sim>> {
    http::routes()
}

/// Pre-authenticated download and upload URLs (no bearer token, as Graph's are).
pub fn public_routes() -> Router<Arc<Sim>> {
    http::public_routes()
}

/// Ids of every site in the tenant.
pub fn site_ids(sim: &Sim) -> Vec<String> {
    all_sites(sim).into_iter().map(|s| s.id).collect()
}

/// Deletes a site and everything in it (its sub-sites, libraries and lists).
pub fn delete_site(sim: &Sim, id: &str) -> GraphResult<()> {
    let site = site_meta(sim, id)?;
    let mut doomed = vec![site.clone()];
    with_registry(sim, |reg| {
        let mut i = 0;
        while i < doomed.len() {
            let pid = doomed[i].id.clone();
            doomed.extend(
                reg.values()
                    .filter(|s| s.parent.as_deref() == Some(pid.as_str()) && !s.deleted)
                    .cloned(),
            );
            i += 1;
        }
        for s in &doomed {
            if let Some(m) = reg.get_mut(&s.id) {
                m.deleted = true;
            }
        }
    });
    for s in &doomed {
        for d in drive_ids_of_site(s) {
            drop_drive(sim, &d);
        }
        sim.files.site_states.remove(&s.id);
    }
    Ok(())
}

/// Rewrites every file of a drive with high-entropy bytes, as a new version,
/// and renames it with a ransom extension, as ransomware syncing through the
/// OneDrive client does. Earlier versions stay readable. Returns the count.
pub fn ransomware(sim: &Sim, id: &str) -> GraphResult<u64> {
    let slot = drive_slot(sim, id)?;
    let mut st = slot.write();
    let now = sim.now();
    let files: Vec<String> = st
        .items
        .values()
        .filter(|i| i.is_file())
        .map(|i| i.id.clone())
        .collect();
    let by = st
        .items
        .values()
        .find(|i| i.is_file())
        .map(|i| i.modified_by.clone())
        .unwrap_or_else(|| app(sim));
    let mut n = 0;
    for fid in files {
        let seq = sim.next_seq();
        let drive_id = st.meta.id.clone();
        if let Some(it) = st.items.get_mut(&fid, seq) {
            let len = it.size() + 16 + (it.size() % 4096);
            let vid = format!("{}.0", it.versions.len() + 1);
            it.versions.push(drive::Version {
                id: vid,
                content: Content::Gen {
                    key: format!("ransom/{drive_id}/{fid}/{seq}").into(),
                    len,
                    kind: GenKind::Noise,
                },
                hashes: None,
                modified: now,
                by: by.clone(),
            });
            it.name = format!("{}.lockbit", it.name);
            it.modified = now;
            it.fs_modified = now;
            it.modified_by = by.clone();
            it.etag += 1;
            it.ctag += 1;
            n += 1;
        }
    }
    Ok(n)
}

/// The folder of a team channel in its group's document library (created on
/// first use), as the driveItem JSON `GET /teams/{id}/channels/{id}/filesFolder` returns.
pub fn channel_folder(sim: &Sim, group_id: &str, channel_name: &str) -> Option<serde_json::Value> {
    let site = group_site_meta(sim, group_id).ok()?;
    let drive_id = DriveKey::Library(site.id.clone(), 0).id();
    let slot = drive_slot(sim, &drive_id).ok()?;
    let existing = {
        let st = slot.read();
        st.child_named(&st.root_id, channel_name)
            .filter(|i| i.is_container())
            .map(|i| i.id.clone())
    };
    let mut st = match existing {
        Some(_) => slot.read(),
        None => slot.write(),
    };
    let id = match existing {
        Some(id) => id,
        None => {
            let root = st.root_id.clone();
            let seq = sim.next_seq();
            let now = sim.now();
            let name = channel_name.to_string();
            st.add_item(
                sim.seed(),
                &root,
                &name,
                Kind::Folder,
                now,
                app(sim),
                None,
                seq,
            )
        }
    };
    let o = origin(sim);
    let v = http::render_item(sim, &st, &id, &o, false).ok()?;
    Some(v)
}

/// Adds a generated file of `size` bytes (content from the seed, never held
/// in memory) at `path` in a drive, as if a user had it there already; for
/// tests and benchmarks of large downloads. Returns the item id.
pub fn add_generated_file(sim: &Sim, drive_id: &str, path: &str, size: u64) -> GraphResult<String> {
    let slot = drive_slot(sim, drive_id)?;
    let mut st = slot.write();
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let root = st.root_id.clone();
    let parent = st
        .resolve_path(&root, dir)
        .map(|i| i.id.clone())
        .ok_or_else(drive::item_missing)?;
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let (_, kind) = content::file_type(&ext);
    let seq = sim.next_seq();
    let c = Content::Gen {
        key: format!("added/{drive_id}/{path}/{seq}").into(),
        len: size,
        kind,
    };
    Ok(st.add_item(
        sim.seed(),
        &parent,
        name,
        Kind::File,
        sim.now(),
        app(sim),
        Some((c, None)),
        seq,
    ))
}

// ---- truth and activity -----------------------------------------------------

fn drive_truth(sim: &Sim, drive_id: &str, prefix: &str, out: &mut Vec<TruthItem>) {
    let Ok(slot) = drive_slot(sim, drive_id) else {
        return;
    };
    let st = slot.read();
    for it in st.items.values().filter(|i| i.is_file()) {
        let Some(v) = it.current() else { continue };
        let h = drive::hashes_of(sim.seed(), &sim.files.hashes, v);
        out.push(TruthItem {
            workload: "drive".into(),
            path: format!("{prefix}/{}", st.path_of(&it.id).join("/")),
            id: it.id.clone(),
            kind: "driveItem".into(),
            size: v.content.len(),
            hash: h.blake3,
        });
    }
}

fn site_truth(sim: &Sim, site: &SiteMeta, out: &mut Vec<TruthItem>) {
    for (i, lib) in site.libs.iter().enumerate() {
        drive_truth(
            sim,
            &DriveKey::Library(site.id.clone(), i as u8).id(),
            lib,
            out,
        );
    }
    let slot = site_state(sim, site);
    let ss = slot.read();
    for list in ss.lists.iter().filter(|l| l.lib.is_none()) {
        for it in list.items.values() {
            let atts: Vec<Value> = it
                .attachments
                .iter()
                .map(|a| json!({"name": a.name, "size": a.content.len(), "hash": hash_content(sim.seed(), &a.content).blake3}))
                .collect();
            let canon = json!({"fields": it.fields, "attachments": atts}).to_string();
            out.push(TruthItem {
                workload: "list".into(),
                path: format!("{}/{}", list.display_name, it.id),
                id: it.id.clone(),
                kind: "listItem".into(),
                size: canon.len() as u64,
                hash: rng::hash_hex(canon.as_bytes()),
            });
        }
    }
    for p in &ss.pages {
        let canon = p.truth_canon();
        out.push(TruthItem {
            workload: "pages".into(),
            path: format!("SitePages/{}", p.name),
            id: p.id.clone(),
            kind: "sitePage".into(),
            size: canon.len() as u64,
            hash: rng::hash_hex(canon.as_bytes()),
        });
    }
}

fn drive_activity(sim: &Sim, drive_id: &str, r: &mut SimRng, report: &mut ActivityReport) {
    let Ok(slot) = drive_slot(sim, drive_id) else {
        return;
    };
    let actions = r.random_range(0..=5);
    if actions == 0 {
        return;
    }
    let mut st = slot.write();
    let by = st
        .items
        .values()
        .find(|i| matches!(i.created_by, Who::User { .. }))
        .map(|i| i.created_by.clone())
        .unwrap_or_else(|| app(sim));
    for _ in 0..actions {
        let now = sim.now();
        let containers: Vec<String> = st
            .items
            .values()
            .filter(|i| i.is_container())
            .map(|i| i.id.clone())
            .collect();
        let files: Vec<String> = st
            .items
            .values()
            .filter(|i| i.is_file())
            .map(|i| i.id.clone())
            .collect();
        let roll: f64 = r.random();
        let seq = sim.next_seq();
        let drive = st.meta.id.clone();
        if roll < 0.35 || files.is_empty() {
            let parent = pick(r, &containers).clone();
            let ext = *pick(r, &["docx", "xlsx", "pptx", "pdf", "txt", "jpg"]);
            let name = st.free_name(&parent, &format!("{}.{ext}", rng::title(r, 1, 4)));
            let (_, kind) = content::file_type(ext);
            let c = Content::Gen {
                key: format!("act/{drive}/{seq}").into(),
                len: r.random_range(2_000..3_000_000),
                kind,
            };
            st.add_item(
                sim.seed(),
                &parent,
                &name,
                Kind::File,
                now,
                by.clone(),
                Some((c, None)),
                seq,
            );
            report.created += 1;
        } else if roll < 0.6 {
            let fid = pick(r, &files).clone();
            let len = r.random_range(2_000..3_000_000);
            if let Some(it) = st.items.get_mut(&fid, seq) {
                let kind = match &it.current().map(|v| v.content.clone()) {
                    Some(Content::Gen { kind, .. }) => *kind,
                    _ => GenKind::Noise,
                };
                let vid = format!("{}.0", it.versions.len() + 1);
                it.versions.push(drive::Version {
                    id: vid,
                    content: Content::Gen {
                        key: format!("act/{drive}/{seq}").into(),
                        len,
                        kind,
                    },
                    hashes: None,
                    modified: now,
                    by: by.clone(),
                });
                it.modified = now;
                it.fs_modified = now;
                it.modified_by = by.clone();
                it.etag += 1;
                it.ctag += 1;
            }
            report.modified += 1;
        } else if roll < 0.7 {
            let fid = pick(r, &files).clone();
            let parent = st
                .items
                .get(&fid)
                .and_then(|i| i.parent.clone())
                .unwrap_or_default();
            let ext = st
                .items
                .get(&fid)
                .and_then(|i| i.name.rsplit_once('.').map(|(_, e)| e.to_string()))
                .unwrap_or_default();
            let name = st.free_name(&parent, &format!("{}.{ext}", rng::title(r, 1, 4)));
            if let Some(it) = st.items.get_mut(&fid, seq) {
                it.name = name;
                it.modified = now;
                it.etag += 1;
            }
            report.modified += 1;
        } else if roll < 0.8 {
            let fid = pick(r, &files).clone();
            let target = pick(r, &containers).clone();
            let name = st
                .items
                .get(&fid)
                .map(|i| i.name.clone())
                .unwrap_or_default();
            let name = st.free_name(&target, &name);
            if let Some(it) = st.items.get_mut(&fid, seq) {
                it.parent = Some(target);
                it.name = name;
                it.etag += 1;
            }
            report.moved += 1;
        } else if roll < 0.9 {
            let fid = pick(r, &files).clone();
            st.items.remove(&fid, seq, "deleted");
            report.deleted += 1;
        } else {
            let parent = pick(r, &containers).clone();
            let name = st.free_name(&parent, &rng::title(r, 1, 3));
            st.add_item(
                sim.seed(),
                &parent,
                &name,
                Kind::Folder,
                now,
                by.clone(),
                None,
                seq,
            );
            report.created += 1;
        }
    }
}

fn list_activity(sim: &Sim, site: &SiteMeta, r: &mut SimRng, report: &mut ActivityReport) {
    let slot = site_state(sim, site);
    let people = site_people(sim, site);
    let Some(by) = people.first().cloned() else {
        return;
    };
    let mut ss = slot.write();
    let generic: Vec<usize> = ss
        .lists
        .iter()
        .enumerate()
        .filter(|(_, l)| l.lib.is_none())
        .map(|(i, _)| i)
        .collect();
    if generic.is_empty() || r.random_bool(0.5) {
        return;
    }
    let li = *pick(r, &generic);
    let list = &mut ss.lists[li];
    let now = sim.now();
    let seq = sim.next_seq();
    let ids: Vec<String> = list.items.iter().map(|(k, _)| k.to_string()).collect();
    let roll: f64 = r.random();
    if roll < 0.4 || ids.is_empty() {
        let item = list.new_item(sim.seed(), r, None, now, by);
        let id = item.id.clone();
        list.items.upsert(id, item, seq);
        report.created += 1;
    } else if roll < 0.85 {
        let id = pick(r, &ids).clone();
        let cols = list.columns.clone();
        if let Some(it) = list.items.get_mut(&id, seq) {
            let c = pick(r, &cols);
            it.fields.insert(c.name.clone(), sites::field_value(r, c));
            it.modified = now;
            it.modified_by = by;
            it.etag += 1;
        }
        report.modified += 1;
    } else {
        let id = pick(r, &ids).clone();
        list.items.remove(&id, seq, "deleted");
        report.deleted += 1;
    }
}

impl Workload for FileStore {
    fn name(&self) -> &'static str {
        "files"
    }

    fn truth(&self, sim: &Sim, entity: &EntityRef) -> Vec<TruthItem> {
        let mut out = Vec::new();
        match entity {
            EntityRef::User(uid) => {
                if let Ok(d) = user_drive_id(sim, uid) {
                    drive_truth(sim, &d, "OneDrive", &mut out);
                }
            }
            EntityRef::Group(gid) => {
                if let Ok(site) = group_site_meta(sim, gid) {
                    site_truth(sim, &site, &mut out);
                }
            }
            EntityRef::Site(sid) => {
                if let Ok(site) = site_meta(sim, sid) {
                    site_truth(sim, &site, &mut out);
                }
            }
        }
        out
    }

    fn simulate_day(
        &self,
        sim: &Sim,
        entity: &EntityRef,
        rng: &mut SimRng,
        report: &mut ActivityReport,
    ) {
        match entity {
            EntityRef::User(uid) => {
                if let Ok(d) = user_drive_id(sim, uid) {
                    drive_activity(sim, &d, rng, report);
                }
            }
            // A group's team site is a site of its own: it sees activity as one.
            EntityRef::Group(_) => {}
            EntityRef::Site(sid) => {
                if let Ok(site) = site_meta(sim, sid) {
                    drive_activity(
                        sim,
                        &DriveKey::Library(site.id.clone(), 0).id(),
                        rng,
                        report,
                    );
                    list_activity(sim, &site, rng, report);
                }
            }
        }
    }

    fn entity_deleted(&self, sim: &Sim, entity: &EntityRef) {
        match entity {
            EntityRef::User(uid) => drop_drive(sim, &DriveKey::User(uid.clone()).id()),
            EntityRef::Group(gid) => {
                let site = with_registry(sim, |reg| {
                    reg.values()
                        .find(|s| s.kind == SiteKind::Group(gid.clone()) && !s.deleted)
                        .cloned()
                });
                if let Some(s) = site {
                    let _ = delete_site(sim, &s.id);
                }
            }
            EntityRef::Site(sid) => {
                let _ = delete_site(sim, sid);
            }
        }
    }
}

pub(crate) fn new_bytes_content(sim: &Sim, b: Bytes) -> (Content, Option<content::Hashes>) {
    let h = drive::bytes_hashes(sim.seed(), &b);
    (Content::Bytes(b), Some(h))
}

/// Adds a document library to a site (a list created with the documentLibrary
/// template); returns its index.
pub(crate) fn add_library(sim: &Sim, site_id: &str, name: &str) -> GraphResult<u8> {
    with_registry(sim, |reg| {
        let s = reg
            .get_mut(site_id)
            .filter(|s| !s.deleted)
            .ok_or_else(|| GraphError::item_not_found("Requested site could not be found"))?;
        if s.libs.len() >= u8::MAX as usize {
            return Err(GraphError::invalid_request("Too many libraries."));
        }
        s.libs.push(name.to_string());
        Ok((s.libs.len() - 1) as u8)
    })
}

/// Open upload sessions (for tests of abandoned uploads): the file name
/// each would create and the bytes it has received so far.
pub fn upload_sessions(sim: &Sim) -> Vec<(String, u64)> {
    sim.files
        .sessions
        .lock()
        .values()
        .map(|s| (s.name.clone(), s.buf.len() as u64))
        .collect()
}

/// Creates an empty communication site at `/sites/{name}` with one
/// "Documents" library, as an administrator does in the SharePoint admin
/// center (Graph v1.0 cannot create sites). Returns its Graph id. A live
/// site already at that path is a conflict; a deleted one is replaced by a
/// new site with new ids, as SharePoint does.
pub fn create_site(sim: &Sim, name: &str, display: &str) -> GraphResult<String> {
    if name.is_empty() || name.contains('/') {
        return Err(GraphError::invalid_request(
            "The site URL name is not valid.",
        ));
    }
    let (_, host) = tenant_host(sim);
    let path = format!("/sites/{name}");
    let seq = sim.next_seq().to_string();
    let coll =
        crate::rng::stable_guid(sim.seed(), &["site-coll", "created", name, &seq]).to_string();
    let web = crate::rng::stable_guid(sim.seed(), &["site-web", "created", name, &seq]).to_string();
    let now = sim.now();
    with_registry(sim, |reg| {
        if reg
            .values()
            .any(|s| !s.deleted && s.path.eq_ignore_ascii_case(&path))
        {
            return Err(GraphError::conflict(
                "nameAlreadyExists",
                "A site already exists at this URL.",
            ));
        }
        let site = SiteMeta {
            id: format!("{host},{coll},{web}"),
            coll,
            web,
            host,
            name: name.to_string(),
            display_name: display.to_string(),
            description: String::new(),
            path,
            kind: SiteKind::Communication,
            created: now,
            modified: now,
            parent: None,
            libs: vec!["Documents".into()],
            generated_libs: 0,
            generated: false,
            deleted: false,
        };
        let id = site.id.clone();
        reg.insert(id.clone(), site);
        Ok(id)
    })
}
