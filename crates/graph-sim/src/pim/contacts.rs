//! Contacts and contact folders: `/users/{id}/contactFolders`, `/contacts`, delta.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::{
    ContactFolder, Item, Kind, Mailbox, Owner, Resp, apply_props, body_error, canonical_hash,
    created_json, delta_response, item_id, make, no_content, ok_json, open_user, parse_body,
    path_part,
};
use crate::delta::DeltaLog;
use crate::error::GraphError;
use crate::odata::{self, GraphCtx, PageLimits};
use crate::rng::{self, SimRng};
use crate::{ActivityReport, Sim, TruthItem};

const CONTACT_PROPS: &[(&str, Kind)] = &[
    ("assistantName", Kind::Str),
    ("birthday", Kind::Str),
    ("businessAddress", Kind::Obj),
    ("businessHomePage", Kind::Str),
    ("businessPhones", Kind::Arr),
    ("categories", Kind::Arr),
    ("children", Kind::Arr),
    ("companyName", Kind::Str),
    ("department", Kind::Str),
    ("displayName", Kind::Str),
    ("emailAddresses", Kind::Arr),
    ("fileAs", Kind::Str),
    ("generation", Kind::Str),
    ("givenName", Kind::Str),
    ("homeAddress", Kind::Obj),
    ("homePhones", Kind::Arr),
    ("imAddresses", Kind::Arr),
    ("initials", Kind::Str),
    ("jobTitle", Kind::Str),
    ("manager", Kind::Str),
    ("middleName", Kind::Str),
    ("mobilePhone", Kind::Str),
    ("nickName", Kind::Str),
    ("officeLocation", Kind::Str),
    ("otherAddress", Kind::Obj),
    ("personalNotes", Kind::Str),
    ("profession", Kind::Str),
    ("spouseName", Kind::Str),
    ("surname", Kind::Str),
    ("title", Kind::Str),
    ("yomiCompanyName", Kind::Str),
    ("yomiGivenName", Kind::Str),
    ("yomiSurname", Kind::Str),
];

const READ_ONLY: &[&str] = &[
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "parentFolderId",
];

/// Every contact property Graph returns, empty.
fn contact_defaults() -> Map<String, Value> {
    let mut m = Map::new();
    for (name, kind) in CONTACT_PROPS {
        let v = match kind {
            Kind::Arr => json!([]),
            Kind::Obj => json!({}),
            _ => Value::Null,
        };
        m.insert((*name).to_string(), v);
    }
    m.insert("fileAs".into(), json!(""));
    m
}

pub(crate) fn add_default_folder(mb: &mut Mailbox, at: DateTime<Utc>) {
    let id = mb.default_folder.clone();
    let root = format!("{}AAAB", &id[..id.len().saturating_sub(4)]);
    let item = Item::new(id.clone(), at, folder_props("Contacts", &root));
    mb.folders.upsert(
        id,
        ContactFolder {
            item,
            contacts: DeltaLog::new(),
        },
        1,
    );
}

fn folder_props(name: &str, parent: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("displayName".into(), json!(name));
    m.insert("parentFolderId".into(), json!(parent));
    m
}

const FOLDER_NAMES: &[&str] = &["Suppliers", "Family", "Clients", "Partners", "Recruiting"];
const SUB_NAMES: &[&str] = &["Europe", "Archive", "Key accounts", "Friends"];

/// A generated person for a contact.
pub(crate) fn contact_props(rng: &mut SimRng, domain_hint: &str) -> Map<String, Value> {
    let given = *rng::pick(rng, rng::FIRST_NAMES);
    let surname = *rng::pick(rng, rng::LAST_NAMES);
    let company = if rng.random_bool(0.7) {
        rng::pick(rng, rng::COMPANIES).to_string()
    } else {
        format!("{} {}", rng::pick(rng, rng::LAST_NAMES), "Ltd")
    };
    let slug: String = format!("{given}.{surname}")
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let domain = if rng.random_bool(0.5) {
        domain_hint.to_string()
    } else {
        format!(
            "{}.example.com",
            company.split(' ').next().unwrap_or("mail").to_lowercase()
        )
    };
    let (city, country, _) = *rng::pick(rng, rng::CITIES);
    let mut m = contact_defaults();
    let display = format!("{given} {surname}");
    m.insert("givenName".into(), json!(given));
    m.insert("surname".into(), json!(surname));
    m.insert("displayName".into(), json!(display));
    m.insert("fileAs".into(), json!(format!("{surname}, {given}")));
    let mut emails = vec![json!({"name": display, "address": format!("{slug}@{domain}")})];
    if rng.random_bool(0.3) {
        emails.push(json!({"name": display, "address": format!("{slug}@outlook.example.org")}));
    }
    m.insert("emailAddresses".into(), json!(emails));
    m.insert(
        "businessPhones".into(),
        json!([format!("+1 425 555 {:04}", rng.random_range(0..10_000))]),
    );
    if rng.random_bool(0.7) {
        m.insert(
            "mobilePhone".into(),
            json!(format!("+1 206 555 {:04}", rng.random_range(0..10_000))),
        );
    }
    if rng.random_bool(0.3) {
        m.insert(
            "homePhones".into(),
            json!([format!("+1 360 555 {:04}", rng.random_range(0..10_000))]),
        );
    }
    m.insert("companyName".into(), json!(company));
    m.insert("jobTitle".into(), json!(rng::pick(rng, rng::JOB_TITLES)));
    m.insert("department".into(), json!(rng::pick(rng, rng::DEPARTMENTS)));
    m.insert(
        "businessAddress".into(),
        json!({
            "street": format!("{} {} Street", rng.random_range(1..999), rng::pick(rng, rng::LAST_NAMES)),
            "city": city,
            "state": "",
            "countryOrRegion": country,
            "postalCode": format!("{:05}", rng.random_range(10_000..99_999)),
        }),
    );
    if rng.random_bool(0.5) {
        m.insert(
            "birthday".into(),
            json!(format!(
                "{}-{:02}-{:02}T11:59:00Z",
                rng.random_range(1955..2003),
                rng.random_range(1..=12),
                rng.random_range(1..=28)
            )),
        );
    }
    if rng.random_bool(0.4) {
        m.insert("personalNotes".into(), json!(rng::paragraph(rng, 2)));
    }
    if rng.random_bool(0.3) {
        m.insert(
            "categories".into(),
            json!([*rng::pick(
                rng,
                &["Red category", "Blue category", "Green category", "VIP"]
            )]),
        );
    }
    m
}

pub(crate) fn generate(sim: &Sim, mb: &mut Mailbox, rng: &mut SimRng) {
    let seed = sim.seed();
    let owner = mb.owner_id.clone();
    let domain = sim.cfg.domain.clone();
    let anchor = crate::generation_anchor();
    let mut folders = vec![(mb.default_folder.clone(), make::scaled(sim, 10))];
    let n_children = rng.random_range(1..=2usize);
    for c in 0..n_children {
        let name = FOLDER_NAMES[(c + rng.random_range(0..FOLDER_NAMES.len())) % FOLDER_NAMES.len()];
        let id = item_id(seed, &["pim", &owner, "folder", &c.to_string()]);
        if mb
            .folders
            .values()
            .any(|f| f.item.str("displayName") == name)
        {
            continue;
        }
        let at = anchor - Duration::days(rng.random_range(200..390));
        mb.folders.upsert(
            id.clone(),
            ContactFolder {
                item: Item::new(id.clone(), at, folder_props(name, &mb.default_folder)),
                contacts: DeltaLog::new(),
            },
            1,
        );
        folders.push((id.clone(), make::scaled(sim, 4)));
        if c == 0 {
            let sub = *rng::pick(rng, SUB_NAMES);
            let sid = item_id(seed, &["pim", &owner, "folder", &c.to_string(), "sub"]);
            mb.folders.upsert(
                sid.clone(),
                ContactFolder {
                    item: Item::new(sid.clone(), at, folder_props(sub, &id)),
                    contacts: DeltaLog::new(),
                },
                1,
            );
            folders.push((sid, make::scaled(sim, 3)));
        }
    }
    for (fid, n) in folders {
        let Some(folder) = mb.folders.peek_mut(&fid) else {
            continue;
        };
        for i in 0..n {
            let id = item_id(seed, &["pim", &owner, "contact", &fid, &i.to_string()]);
            let created = anchor - Duration::minutes(rng.random_range(60..400 * 24 * 60));
            let mut item = Item::new(id.clone(), created, contact_props(rng, &domain));
            if rng.random_bool(0.3) {
                item.modified = created + Duration::minutes(rng.random_range(1..30 * 24 * 60));
                item.version = 2;
            }
            folder.contacts.upsert(id, item, 1);
        }
    }
}

// ---------------------------------------------------------------- rendering

fn contact_json(c: &Item, folder: &str) -> Value {
    let mut m = c.outlook_json();
    m.insert("parentFolderId".into(), json!(folder));
    Value::Object(m)
}

fn folder_json(f: &ContactFolder) -> Value {
    json!({
        "id": f.item.id,
        "displayName": f.item.str("displayName"),
        "parentFolderId": f.item.str("parentFolderId"),
    })
}

/// `Contacts`, `Suppliers`, `Suppliers/Europe`: a folder's path from the default folder.
fn folder_path(mb: &Mailbox, id: &str) -> String {
    let mut parts = Vec::new();
    let mut cur = id.to_string();
    for _ in 0..32 {
        let Some(f) = mb.folders.get(&cur) else { break };
        if cur == mb.default_folder {
            if parts.is_empty() {
                parts.push("Contacts".to_string());
            }
            break;
        }
        parts.push(path_part(f.item.str("displayName")));
        cur = f.item.str("parentFolderId").to_string();
    }
    parts.reverse();
    parts.join("/")
}

fn visible(c: &Item) -> Value {
    Value::Object(c.props.clone())
}

pub(crate) fn truth(mb: &Mailbox) -> Vec<TruthItem> {
    let mut out = Vec::new();
    for (fid, f) in mb.folders.iter() {
        let path = folder_path(mb, fid);
        for (cid, c) in f.contacts.iter() {
            let (hash, size) = canonical_hash(&visible(c));
            out.push(TruthItem {
                workload: "contacts".into(),
                path: format!("Contacts/{path}/{}", path_part(c.str("displayName"))),
                id: cid.to_string(),
                kind: "contact".into(),
                size,
                hash,
            });
        }
    }
    out
}

// ---------------------------------------------------------------- activity

pub(crate) fn simulate_day(
    sim: &Sim,
    mb: &mut Mailbox,
    rng: &mut SimRng,
    report: &mut ActivityReport,
) {
    let now = sim.now();
    let folder_ids: Vec<String> = mb.folders.iter().map(|(k, _)| k.to_string()).collect();
    if folder_ids.is_empty() {
        return;
    }
    for _ in 0..rng.random_range(0..=2u32) {
        let fid = folder_ids[rng.random_range(0..folder_ids.len())].clone();
        let id = mb.fresh_id(sim.seed(), "contact");
        let props = contact_props(rng, &sim.cfg.domain);
        if let Some(f) = mb.folders.peek_mut(&fid) {
            f.contacts
                .upsert(id.clone(), Item::new(id, now, props), sim.next_seq());
            report.created += 1;
        }
    }
    for _ in 0..rng.random_range(0..=2u32) {
        let fid = folder_ids[rng.random_range(0..folder_ids.len())].clone();
        let Some(f) = mb.folders.peek_mut(&fid) else {
            continue;
        };
        let ids: Vec<String> = f.contacts.iter().map(|(k, _)| k.to_string()).collect();
        if ids.is_empty() {
            continue;
        }
        let cid = ids[rng.random_range(0..ids.len())].clone();
        let phone = format!("+1 206 555 {:04}", rng.random_range(0..10_000));
        let title = rng::pick(rng, rng::JOB_TITLES).to_string();
        if let Some(c) = f.contacts.get_mut(&cid, sim.next_seq()) {
            c.props.insert("mobilePhone".into(), json!(phone));
            c.props.insert("jobTitle".into(), json!(title));
            c.touch(now);
            report.modified += 1;
        }
    }
    if rng.random_bool(0.3) {
        let fid = folder_ids[rng.random_range(0..folder_ids.len())].clone();
        if let Some(f) = mb.folders.peek_mut(&fid) {
            let ids: Vec<String> = f.contacts.iter().map(|(k, _)| k.to_string()).collect();
            if !ids.is_empty() {
                let cid = &ids[rng.random_range(0..ids.len())];
                if f.contacts.remove(cid, sim.next_seq(), "deleted").is_some() {
                    report.deleted += 1;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- handlers

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/users/{id}/contactFolders",
            get(list_folders).post(create_folder),
        )
        .route("/users/{id}/contactFolders/delta", get(folders_delta))
        .route(
            "/users/{id}/contactFolders/{fid}",
            get(get_folder).patch(patch_folder).delete(delete_folder),
        )
        .route(
            "/users/{id}/contactFolders/{fid}/childFolders",
            get(list_children).post(create_child),
        )
        .route(
            "/users/{id}/contactFolders/{fid}/contacts",
            get(list_in_folder).post(create_in_folder),
        )
        .route(
            "/users/{id}/contactFolders/{fid}/contacts/delta",
            get(delta_in_folder),
        )
        .route(
            "/users/{id}/contactFolders/{fid}/contacts/{cid}",
            get(get_in_folder)
                .patch(patch_in_folder)
                .delete(delete_in_folder),
        )
        .route(
            "/users/{id}/contacts",
            get(list_default).post(create_default),
        )
        .route("/users/{id}/contacts/delta", get(delta_default))
        .route(
            "/users/{id}/contacts/{cid}",
            get(get_contact).patch(patch_contact).delete(delete_contact),
        )
}

fn resolve_folder(mb: &Mailbox, fid: &str) -> Result<String, GraphError> {
    if fid.eq_ignore_ascii_case("contacts") {
        return Ok(mb.default_folder.clone());
    }
    if mb.folders.contains(fid) {
        Ok(fid.to_string())
    } else {
        Err(GraphError::outlook_not_found())
    }
}

fn list_folder_children(ctx: &GraphCtx, owner: &Owner, parent: &str, fragment: &str) -> Resp {
    let mb = owner.slot.read();
    let items: Vec<Value> = mb
        .folders
        .values()
        .filter(|f| f.item.str("parentFolderId") == parent)
        .map(folder_json)
        .collect();
    Ok(ok_json(odata::collection(
        ctx,
        fragment,
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

async fn list_folders(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    let owner = open_user(&sim, &id)?;
    let parent = owner.slot.read().default_folder.clone();
    list_folder_children(
        &ctx,
        &owner,
        &parent,
        &format!("{}/contactFolders", owner.context),
    )
}

async fn list_children(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let parent = resolve_folder(&owner.slot.read(), &fid)?;
    list_folder_children(
        &ctx,
        &owner,
        &parent,
        &format!("{}/contactFolders('{parent}')/childFolders", owner.context),
    )
}

fn create_folder_in(sim: &Sim, ctx: &GraphCtx, owner: &Owner, parent: &str, body: &[u8]) -> Resp {
    let body = parse_body(body)?;
    let mut props = Map::new();
    apply_props(
        &mut props,
        &body,
        &[("displayName", Kind::Str)],
        &["id", "parentFolderId"],
        "contactFolder",
    )?;
    let name = props
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| body_error("The displayName of a contact folder is required."))?
        .to_string();
    let mut mb = owner.slot.write();
    if mb.folders.values().any(|f| {
        f.item.str("parentFolderId") == parent
            && f.item.str("displayName").eq_ignore_ascii_case(&name)
    }) {
        return Err(GraphError::conflict(
            "ErrorFolderExists",
            "A folder with the specified name already exists.",
        ));
    }
    let id = mb.fresh_id(sim.seed(), "folder");
    let f = ContactFolder {
        item: Item::new(id.clone(), sim.now(), folder_props(&name, parent)),
        contacts: DeltaLog::new(),
    };
    let v = folder_json(&f);
    mb.folders.upsert(id, f, sim.next_seq());
    Ok(created_json(odata::entity(
        ctx,
        &format!("{}/contactFolders", owner.context),
        v,
        None,
    )))
}

async fn create_folder(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let parent = owner.slot.read().default_folder.clone();
    create_folder_in(&sim, &ctx, &owner, &parent, &body)
}

async fn create_child(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let parent = resolve_folder(&owner.slot.read(), &fid)?;
    create_folder_in(&sim, &ctx, &owner, &parent, &body)
}

async fn get_folder(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let fid = resolve_folder(&mb, &fid)?;
    let f = mb
        .folders
        .get(&fid)
        .ok_or_else(GraphError::outlook_not_found)?;
    Ok(ok_json(odata::entity(
        &ctx,
        &format!("{}/contactFolders", owner.context),
        folder_json(f),
        None,
    )))
}

async fn patch_folder(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let body = parse_body(&body)?;
    let mut mb = owner.slot.write();
    let fid = resolve_folder(&mb, &fid)?;
    let now = sim.now();
    let f = mb
        .folders
        .get_mut(&fid, sim.next_seq())
        .ok_or_else(GraphError::outlook_not_found)?;
    apply_props(
        &mut f.item.props,
        &body,
        &[("displayName", Kind::Str)],
        &["id", "parentFolderId"],
        "contactFolder",
    )?;
    f.item.touch(now);
    let v = folder_json(f);
    Ok(ok_json(odata::entity(
        &ctx,
        &format!("{}/contactFolders", owner.context),
        v,
        None,
    )))
}

async fn delete_folder(
    State(sim): State<Arc<Sim>>,
    Path((id, fid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mut mb = owner.slot.write();
    let fid = resolve_folder(&mb, &fid)?;
    if fid == mb.default_folder {
        return Err(GraphError::new(
            axum::http::StatusCode::FORBIDDEN,
            "ErrorDeleteDistinguishedFolder",
            "Distinguished folders cannot be deleted.",
        ));
    }
    // The folder and everything below it.
    let mut doomed = vec![fid.clone()];
    let mut i = 0;
    while i < doomed.len() {
        let parent = doomed[i].clone();
        doomed.extend(
            mb.folders
                .iter()
                .filter(|(_, f)| f.item.str("parentFolderId") == parent)
                .map(|(k, _)| k.to_string()),
        );
        i += 1;
    }
    for d in doomed {
        mb.folders.remove(&d, sim.next_seq(), "deleted");
    }
    Ok(no_content())
}

async fn folders_delta(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let scope = format!("pim:cfolders:{}", mb.owner_id);
    Ok(ok_json(delta_response(
        &sim,
        &ctx,
        &mb.folders,
        &scope,
        "contactFolder",
        folder_json,
    )?))
}

fn list_contacts(ctx: &GraphCtx, owner: &Owner, fid: &str) -> Resp {
    let mb = owner.slot.read();
    let fid = resolve_folder(&mb, fid)?;
    let f = mb
        .folders
        .get(&fid)
        .ok_or_else(GraphError::outlook_not_found)?;
    let items: Vec<Value> = f.contacts.values().map(|c| contact_json(c, &fid)).collect();
    let fragment = if fid == mb.default_folder && !ctx.path.contains("/contactFolders/") {
        format!("{}/contacts", owner.context)
    } else {
        format!("{}/contactFolders('{fid}')/contacts", owner.context)
    };
    Ok(ok_json(odata::collection(
        ctx,
        &fragment,
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

fn create_contact(sim: &Sim, ctx: &GraphCtx, owner: &Owner, fid: &str, body: &[u8]) -> Resp {
    let body = parse_body(body)?;
    let mut props = contact_defaults();
    apply_props(&mut props, &body, CONTACT_PROPS, READ_ONLY, "contact")?;
    let has_name = props
        .get("displayName")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has_name {
        let parts: Vec<&str> = ["givenName", "middleName", "surname"]
            .iter()
            .filter_map(|k| props.get(*k).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
            .collect();
        let name = if parts.is_empty() {
            props
                .get("companyName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        } else {
            parts.join(" ")
        };
        props.insert("displayName".into(), json!(name));
    }
    let mut mb = owner.slot.write();
    let fid = resolve_folder(&mb, fid)?;
    let id = mb.fresh_id(sim.seed(), "contact");
    let item = Item::new(id.clone(), sim.now(), props);
    let v = contact_json(&item, &fid);
    let f = mb
        .folders
        .peek_mut(&fid)
        .ok_or_else(GraphError::outlook_not_found)?;
    f.contacts.upsert(id, item, sim.next_seq());
    Ok(created_json(odata::entity(
        ctx,
        &format!("{}/contacts", owner.context),
        v,
        None,
    )))
}

/// The folder holding a contact (`fid` limits the search to one folder).
fn find_contact(mb: &Mailbox, fid: Option<&str>, cid: &str) -> Result<String, GraphError> {
    match fid {
        Some(f) => {
            let f = resolve_folder(mb, f)?;
            mb.folders
                .get(&f)
                .filter(|x| x.contacts.contains(cid))
                .map(|_| f)
                .ok_or_else(GraphError::outlook_not_found)
        }
        None => mb
            .folders
            .iter()
            .find(|(_, x)| x.contacts.contains(cid))
            .map(|(k, _)| k.to_string())
            .ok_or_else(GraphError::outlook_not_found),
    }
}

fn get_one(ctx: &GraphCtx, owner: &Owner, fid: Option<&str>, cid: &str) -> Resp {
    let mb = owner.slot.read();
    let f = find_contact(&mb, fid, cid)?;
    let c = mb
        .folders
        .get(&f)
        .and_then(|x| x.contacts.get(cid))
        .ok_or_else(GraphError::outlook_not_found)?;
    Ok(ok_json(odata::entity(
        ctx,
        &format!("{}/contacts", owner.context),
        contact_json(c, &f),
        None,
    )))
}

fn patch_one(
    sim: &Sim,
    ctx: &GraphCtx,
    owner: &Owner,
    fid: Option<&str>,
    cid: &str,
    body: &[u8],
) -> Resp {
    let body = parse_body(body)?;
    let mut mb = owner.slot.write();
    let f = find_contact(&mb, fid, cid)?;
    let now = sim.now();
    let folder = mb
        .folders
        .peek_mut(&f)
        .ok_or_else(GraphError::outlook_not_found)?;
    // Validate on a copy so a bad body changes nothing.
    let mut props = folder
        .contacts
        .get(cid)
        .ok_or_else(GraphError::outlook_not_found)?
        .props
        .clone();
    apply_props(&mut props, &body, CONTACT_PROPS, READ_ONLY, "contact")?;
    let c = folder
        .contacts
        .get_mut(cid, sim.next_seq())
        .ok_or_else(GraphError::outlook_not_found)?;
    c.props = props;
    c.touch(now);
    let v = contact_json(c, &f);
    Ok(ok_json(odata::entity(
        ctx,
        &format!("{}/contacts", owner.context),
        v,
        None,
    )))
}

fn delete_one(sim: &Sim, owner: &Owner, fid: Option<&str>, cid: &str) -> Resp {
    let mut mb = owner.slot.write();
    let f = find_contact(&mb, fid, cid)?;
    mb.folders
        .peek_mut(&f)
        .and_then(|x| x.contacts.remove(cid, sim.next_seq(), "deleted"))
        .ok_or_else(GraphError::outlook_not_found)?;
    Ok(no_content())
}

fn contacts_delta(sim: &Sim, ctx: &GraphCtx, owner: &Owner, fid: &str) -> Resp {
    let mb = owner.slot.read();
    let fid = resolve_folder(&mb, fid)?;
    let f = mb
        .folders
        .get(&fid)
        .ok_or_else(GraphError::outlook_not_found)?;
    let scope = format!("pim:contacts:{}:{fid}", mb.owner_id);
    Ok(ok_json(delta_response(
        sim,
        ctx,
        &f.contacts,
        &scope,
        "contact",
        |c| contact_json(c, &fid),
    )?))
}

async fn list_default(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    let owner = open_user(&sim, &id)?;
    list_contacts(&ctx, &owner, "contacts")
}

async fn list_in_folder(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    list_contacts(&ctx, &owner, &fid)
}

async fn create_default(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    create_contact(&sim, &ctx, &owner, "contacts", &body)
}

async fn create_in_folder(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    create_contact(&sim, &ctx, &owner, &fid, &body)
}

async fn delta_default(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    let owner = open_user(&sim, &id)?;
    contacts_delta(&sim, &ctx, &owner, "contacts")
}

async fn delta_in_folder(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    contacts_delta(&sim, &ctx, &owner, &fid)
}

async fn get_contact(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, cid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    get_one(&ctx, &owner, None, &cid)
}

async fn get_in_folder(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, fid, cid)): Path<(String, String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    get_one(&ctx, &owner, Some(&fid), &cid)
}

async fn patch_contact(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, cid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    patch_one(&sim, &ctx, &owner, None, &cid, &body)
}

async fn patch_in_folder(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, fid, cid)): Path<(String, String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    patch_one(&sim, &ctx, &owner, Some(&fid), &cid, &body)
}

async fn delete_contact(
    State(sim): State<Arc<Sim>>,
    Path((id, cid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    delete_one(&sim, &owner, None, &cid)
}

async fn delete_in_folder(
    State(sim): State<Arc<Sim>>,
    Path((id, fid, cid)): Path<(String, String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    delete_one(&sim, &owner, Some(&fid), &cid)
}
