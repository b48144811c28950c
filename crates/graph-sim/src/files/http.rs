//! HTTP: every addressing form of drives, items, sites and lists, and the
//! pre-authenticated download and upload URLs.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value, json};

use super::drive::{self, DriveState, Item, Kind, Perm, Render};
use super::sites::{self, SiteMeta};
use super::{
    Conflict, DriveKey, UploadSession, app, drive_missing, drive_slot, group_site_meta,
    new_bytes_content, site_by_path, site_meta, site_state, user_drive_id,
};
use crate::Sim;
use crate::delta::{DeltaLog, TokenFlavor};
use crate::error::{GraphError, GraphResult};
use crate::graph_time;
use crate::odata::{self, GraphCtx, PageLimits};

/// Graph's limit for simple uploads (PUT content) is 250 MB; upload session
/// fragments must stay under 60 MiB.
const SIMPLE_UPLOAD_MAX: usize = 250 * 1024 * 1024;
const FRAGMENT_MAX: usize = 60 * 1024 * 1024;
const FRAGMENT_UNIT: u64 = 320 * 1024;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/drives/{*rest}", any(dispatch))
        .route("/users/{uid}/drive", any(dispatch))
        .route("/users/{uid}/drive/{*rest}", any(dispatch))
        .route("/users/{uid}/drives", any(dispatch))
        .route("/groups/{gid}/drive", any(dispatch))
        .route("/groups/{gid}/drive/{*rest}", any(dispatch))
        .route("/groups/{gid}/drives", any(dispatch))
        .route("/groups/{gid}/sites/{*rest}", any(dispatch))
        .route("/sites", any(dispatch))
        .route("/sites/{*rest}", any(dispatch))
        .layer(DefaultBodyLimit::max(SIMPLE_UPLOAD_MAX + 1024 * 1024))
}

pub fn public_routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_files/download/{token}", get(download))
        .route("/_files/upload/{sid}", any(upload_fragment))
        .layer(DefaultBodyLimit::max(FRAGMENT_MAX + 1024 * 1024))
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

fn ok(v: Value) -> GraphResult<Response> {
    Ok(json_response(StatusCode::OK, v))
}

fn body_json(body: &Bytes) -> GraphResult<Value> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| GraphError::invalid_request(format!("Invalid request body: {e}")))
}

async fn dispatch(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    method: Method,
    body: Bytes,
) -> Response {
    let segs = segments(&ctx.path);
    match route(&sim, &ctx, &method, &segs, body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn route(
    sim: &Sim,
    ctx: &GraphCtx,
    method: &Method,
    segs: &[String],
    body: Bytes,
) -> GraphResult<Response> {
    let s = |i: usize| segs.get(i).map(String::as_str);
    match s(0) {
        Some("drives") => {
            let id = s(1).ok_or_else(drive_missing)?;
            drive_ops(sim, ctx, method, id, &segs[2..], body)
        }
        Some("users") => {
            let uid = s(1).unwrap_or_default();
            match s(2) {
                Some("drive") => {
                    let d = user_drive_id(sim, uid)?;
                    drive_ops(sim, ctx, method, &d, &segs[3..], body)
                }
                Some("drives") if segs.len() == 3 => {
                    let d = user_drive_id(sim, uid)?;
                    let slot = drive_slot(sim, &d)?;
                    let v = drive_json(&slot.read());
                    ok(odata::collection(
                        ctx,
                        &format!("users('{uid}')/drives"),
                        vec![v],
                        PageLimits::DRIVE,
                        None,
                    )?)
                }
                _ => Err(GraphError::no_resource(&ctx.path)),
            }
        }
        Some("groups") => {
            let gid = s(1).unwrap_or_default();
            let site = group_site_meta(sim, gid)?;
            match s(2) {
                Some("drive") => {
                    let d = DriveKey::Library(site.id.clone(), 0).id();
                    drive_ops(sim, ctx, method, &d, &segs[3..], body)
                }
                Some("drives") if segs.len() == 3 => site_drives(sim, ctx, &site),
                Some("sites") if s(3) == Some("root") => {
                    site_ops(sim, ctx, method, &site, &segs[4..], body)
                }
                _ => Err(GraphError::no_resource(&ctx.path)),
            }
        }
        Some("sites") => {
            if segs.len() == 1 {
                return list_sites(sim, ctx, false);
            }
            let first = s(1).unwrap_or_default();
            if first.eq_ignore_ascii_case("getAllSites") && segs.len() == 2 {
                return list_sites(sim, ctx, true);
            }
            if let Some((host, p)) = first.split_once(":/") {
                let site = site_by_path(sim, host, p.strip_suffix(':').unwrap_or(p))?;
                return site_ops(sim, ctx, method, &site, &segs[2..], body);
            }
            if s(2) == Some("path") {
                let site = site_by_path(sim, first, s(3).unwrap_or_default())?;
                return site_ops(sim, ctx, method, &site, &segs[4.min(segs.len())..], body);
            }
            let site = site_meta(sim, first)?;
            site_ops(sim, ctx, method, &site, &segs[2..], body)
        }
        _ => Err(GraphError::no_resource(&ctx.path)),
    }
}

// ---- sites -----------------------------------------------------------------

fn list_sites(sim: &Sim, ctx: &GraphCtx, all: bool) -> GraphResult<Response> {
    let search = ctx
        .query
        .search
        .clone()
        .or_else(|| ctx.query.param("search").map(str::to_string));
    let mut v: Vec<Value> = Vec::new();
    for s in super::all_sites(sim) {
        if all && !s.is_collection_root() {
            continue;
        }
        if let Some(q) = &search {
            let q = q.trim_matches('"').to_lowercase();
            if q != "*"
                && !q.is_empty()
                && !s.display_name.to_lowercase().contains(&q)
                && !s.name.to_lowercase().contains(&q)
                && !s.description.to_lowercase().contains(&q)
            {
                continue;
            }
        }
        v.push(s.json(&sim.cfg.tenant_id));
    }
    if all && search.is_none() {
        v.extend(personal_sites(sim));
    }
    ok(odata::collection(ctx, "sites", v, PageLimits::SMALL, None)?)
}

/// The OneDrive (personal) site of every user with a drive, as
/// `getAllSites` lists them alongside the other sites (`isPersonalSite`
/// true, on the tenant's `-my` host). Only listed: the simulator serves a
/// OneDrive through `/users/{id}/drive`, not through its site.
fn personal_sites(sim: &Sim) -> Vec<Value> {
    let (tenant, _) = super::tenant_host(sim);
    let host = format!("{tenant}-my.sharepoint.com");
    let dir = sim.directory.read();
    dir.live_users()
        .filter(|u| u.has_drive())
        .map(|u| {
            let coll = crate::rng::stable_guid(sim.seed(), &["mysite-coll", &u.id]).to_string();
            let web = crate::rng::stable_guid(sim.seed(), &["mysite-web", &u.id]).to_string();
            let personal = u.upn.replace(['.', '@'], "_");
            let url = format!("https://{host}/personal/{personal}");
            json!({
                "id": format!("{host},{coll},{web}"),
                "name": u.display_name,
                "displayName": u.display_name,
                "description": "",
                "webUrl": url,
                "createdDateTime": u.created,
                "isPersonalSite": true,
                "siteCollection": {"hostname": host, "dataLocationCode": "NAM"},
                "sharepointIds": {"siteId": coll, "webId": web, "siteUrl": url, "tenantId": sim.cfg.tenant_id},
            })
        })
        .collect()
}

fn site_drives(sim: &Sim, ctx: &GraphCtx, site: &SiteMeta) -> GraphResult<Response> {
    let mut v = Vec::new();
    for i in 0..site.libs.len() {
        let slot = drive_slot(sim, &DriveKey::Library(site.id.clone(), i as u8).id())?;
        v.push(drive_json(&slot.read()));
    }
    ok(odata::collection(
        ctx,
        "drives",
        v,
        PageLimits::DRIVE,
        None,
    )?)
}

fn site_ops(
    sim: &Sim,
    ctx: &GraphCtx,
    method: &Method,
    site: &SiteMeta,
    rest: &[String],
    body: Bytes,
) -> GraphResult<Response> {
    let s = |i: usize| rest.get(i).map(String::as_str);
    let get = *method == Method::GET;
    match (s(0), s(1)) {
        (None, _) if get => ok(odata::entity(
            ctx,
            "sites",
            site.json(&sim.cfg.tenant_id),
            None,
        )),
        (Some("sites"), None) if get => {
            let v: Vec<Value> = super::all_sites(sim)
                .into_iter()
                .filter(|x| x.parent.as_deref() == Some(site.id.as_str()))
                .map(|x| x.json(&sim.cfg.tenant_id))
                .collect();
            ok(odata::collection(
                ctx,
                &format!("sites('{}')/sites", site.id),
                v,
                PageLimits::SMALL,
                None,
            )?)
        }
        (Some("drive"), _) => {
            let d = DriveKey::Library(site.id.clone(), 0).id();
            drive_ops(sim, ctx, method, &d, &rest[1..], body)
        }
        (Some("drives"), None) if get => site_drives(sim, ctx, site),
        (Some("drives"), Some(id)) => {
            let ok_drive = (0..site.libs.len())
                .any(|i| DriveKey::Library(site.id.clone(), i as u8).id() == id);
            if !ok_drive {
                return Err(drive_missing());
            }
            drive_ops(sim, ctx, method, id, &rest[2..], body)
        }
        (Some("lists"), _) => list_ops(sim, ctx, method, site, &rest[1..], body),
        (Some("pages"), _) => page_ops(sim, ctx, method, site, &rest[1..], body),
        _ if !get && rest.len() <= 2 => Err(GraphError::method_not_allowed()),
        _ => Err(GraphError::no_resource(&ctx.path)),
    }
}

/// The cast segment of a site page: `/pages/{id}/microsoft.graph.sitePage`,
/// or with Graph's namespace alias `graph.sitePage` (what msgraph-sdk sends).
const SITE_PAGE_CASTS: [&str; 2] = ["microsoft.graph.sitePage", "graph.sitePage"];

/// `/sites/{id}/pages…`: list, get (the canvas with `$expand=canvasLayout`
/// on the sitePage cast), create, update, publish and delete site pages.
fn page_ops(
    sim: &Sim,
    ctx: &GraphCtx,
    method: &Method,
    site: &SiteMeta,
    rest: &[String],
    body: Bytes,
) -> GraphResult<Response> {
    let s = |i: usize| rest.get(i).map(String::as_str);
    let slot = site_state(sim, site);
    let frag = format!("sites('{}')/pages", site.id);
    let missing = || GraphError::item_not_found("The page could not be found.");
    let expand_canvas = ctx
        .query
        .expand
        .as_deref()
        .is_some_and(|e| e.contains("canvasLayout"));
    let Some(pid) = s(0) else {
        return match *method {
            Method::GET => {
                let ss = slot.read();
                let v: Vec<Value> = ss
                    .pages
                    .iter()
                    .map(|p| sites::page_json(site, p, false))
                    .collect();
                ok(odata::collection(ctx, &frag, v, PageLimits::SMALL, None)?)
            }
            Method::POST => create_page(sim, site, &slot, body),
            _ => Err(GraphError::method_not_allowed()),
        };
    };
    let find = |ss: &sites::SiteState| ss.pages.iter().position(|p| p.id.eq_ignore_ascii_case(pid));
    let cast = match s(1) {
        None => false,
        Some(c) if SITE_PAGE_CASTS.iter().any(|k| k.eq_ignore_ascii_case(c)) => true,
        Some(_) => return Err(GraphError::no_resource(&ctx.path)),
    };
    match (method.clone(), s(2)) {
        (Method::GET, None) => {
            let ss = slot.read();
            let p = &ss.pages[find(&ss).ok_or_else(missing)?];
            // The canvas is a property of sitePage, not of baseSitePage: it
            // is only reachable through the cast.
            ok(odata::entity(
                ctx,
                &frag,
                sites::page_json(site, p, cast && expand_canvas),
                None,
            ))
        }
        (Method::DELETE, None) if !cast => {
            let mut ss = slot.write();
            let i = find(&ss).ok_or_else(missing)?;
            ss.pages.remove(i);
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::PATCH, None) if cast => {
            let b = body_json(&body)?;
            let Some(b) = b.as_object() else {
                return Err(GraphError::invalid_request("The body must be a sitePage."));
            };
            let mut ss = slot.write();
            let i = find(&ss).ok_or_else(missing)?;
            if let Some(name) = b.get("name").and_then(Value::as_str)
                && ss
                    .pages
                    .iter()
                    .enumerate()
                    .any(|(j, p)| j != i && p.name.eq_ignore_ascii_case(name))
            {
                return Err(name_taken(name));
            }
            let canvas = match b.get("canvasLayout") {
                Some(c) => Some(
                    sites::normalize_canvas(sim.seed(), pid, c)
                        .map_err(GraphError::invalid_request)?,
                ),
                None => None,
            };
            let now = sim.now();
            let p = &mut ss.pages[i];
            apply_page_fields(p, b);
            if let Some(c) = canvas {
                p.canvas = c;
            }
            checkout(p, now, app(sim));
            ok(odata::entity(
                ctx,
                &frag,
                sites::page_json(site, p, canvas_given(b)),
                None,
            ))
        }
        (Method::POST, Some("publish")) if cast && rest.len() == 3 => {
            let mut ss = slot.write();
            let i = find(&ss).ok_or_else(missing)?;
            let now = sim.now();
            let p = &mut ss.pages[i];
            if !p.published {
                p.published = true;
                p.major += 1;
                p.minor = 0;
                p.etag += 1;
                p.modified = now;
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::GET | Method::DELETE | Method::PATCH | Method::POST, _) if rest.len() <= 3 => {
            Err(GraphError::method_not_allowed())
        }
        _ => Err(GraphError::no_resource(&ctx.path)),
    }
}

fn canvas_given(b: &Map<String, Value>) -> bool {
    b.contains_key("canvasLayout")
}

/// SharePoint refuses a second page of the same file name in Site Pages.
/// The sitePage docs do not show this error; the simulator answers as for a
/// driveItem whose name is taken (409 `nameAlreadyExists`).
fn name_taken(name: &str) -> GraphError {
    GraphError::conflict(
        "nameAlreadyExists",
        format!("A page named '{name}' already exists in the Site Pages library."),
    )
}

/// The writable properties of a sitePage body (create and update).
fn apply_page_fields(p: &mut sites::Page, b: &Map<String, Value>) {
    if let Some(v) = b.get("name").and_then(Value::as_str) {
        p.name = v.to_string();
    }
    if let Some(v) = b.get("title").and_then(Value::as_str) {
        p.title = v.to_string();
    }
    if let Some(v) = b.get("pageLayout").and_then(Value::as_str) {
        p.layout = v.to_string();
    }
    if let Some(v) = b.get("showComments").and_then(Value::as_bool) {
        p.show_comments = v;
    }
    if let Some(v) = b.get("showRecommendedPages").and_then(Value::as_bool) {
        p.show_recommended = v;
    }
    if let Some(v) = b.get("titleArea").filter(|v| v.is_object()) {
        p.title_area = v.clone();
    }
}

/// A change checks the page out: a new minor (draft) version until publish.
fn checkout(p: &mut sites::Page, now: DateTime<Utc>, by: drive::Who) {
    p.published = false;
    p.minor += 1;
    p.etag += 1;
    p.modified = now;
    p.modified_by = by;
}

/// `POST /sites/{id}/pages`: a new page, checked out (a draft, version
/// 0.1) until it is published; 201 with the page.
fn create_page(
    sim: &Sim,
    site: &SiteMeta,
    slot: &crate::lazy::Slot<sites::SiteState>,
    body: Bytes,
) -> GraphResult<Response> {
    let b = body_json(&body)?;
    let Some(b) = b.as_object() else {
        return Err(GraphError::invalid_request("The body must be a sitePage."));
    };
    if b.get("@odata.type").and_then(Value::as_str) != Some("#microsoft.graph.sitePage") {
        return Err(GraphError::invalid_request(
            "The @odata.type of a created page must be #microsoft.graph.sitePage.",
        ));
    }
    let Some(name) = b
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
    else {
        return Err(GraphError::invalid_request("A page needs a name."));
    };
    let name = if name.to_lowercase().ends_with(".aspx") {
        name.to_string()
    } else {
        format!("{name}.aspx")
    };
    let seq = sim.next_seq();
    let id =
        crate::rng::stable_guid(sim.seed(), &["page-api", &site.id, &seq.to_string()]).to_string();
    let canvas = match b.get("canvasLayout") {
        Some(c) => {
            sites::normalize_canvas(sim.seed(), &id, c).map_err(GraphError::invalid_request)?
        }
        None => json!({"horizontalSections": []}),
    };
    let mut ss = slot.write();
    if ss.pages.iter().any(|p| p.name.eq_ignore_ascii_case(&name)) {
        return Err(name_taken(&name));
    }
    let now = sim.now();
    let title = name.trim_end_matches(".aspx").to_string();
    let mut p = sites::Page {
        id,
        name: name.clone(),
        title,
        layout: "article".into(),
        created: now,
        modified: now,
        by: app(sim),
        modified_by: app(sim),
        canvas,
        title_area: json!({}),
        show_comments: true,
        show_recommended: false,
        published: false,
        major: 0,
        minor: 1,
        etag: 1,
    };
    apply_page_fields(&mut p, b);
    p.name = name;
    let v = sites::page_json(site, &p, canvas_given(b));
    ss.pages.push(p);
    Ok(json_response(StatusCode::CREATED, v))
}

fn list_ops(
    sim: &Sim,
    ctx: &GraphCtx,
    method: &Method,
    site: &SiteMeta,
    rest: &[String],
    body: Bytes,
) -> GraphResult<Response> {
    let s = |i: usize| rest.get(i).map(String::as_str);
    let slot = site_state(sim, site);
    let tenant = sim.cfg.tenant_id.clone();
    let get = *method == Method::GET;
    let Some(lid) = s(0) else {
        if *method == Method::POST {
            return create_list(sim, site, &slot, body);
        }
        if !get {
            return Err(GraphError::method_not_allowed());
        }
        let ss = slot.read();
        let v: Vec<Value> = ss.lists.iter().map(|l| l.json(site, &tenant)).collect();
        return ok(odata::collection(
            ctx,
            &format!("sites('{}')/lists", site.id),
            v,
            PageLimits::SMALL,
            None,
        )?);
    };
    let li = {
        let ss = slot.read();
        ss.lists
            .iter()
            .position(|l| {
                l.id.eq_ignore_ascii_case(lid)
                    || l.display_name.eq_ignore_ascii_case(lid)
                    || l.name.eq_ignore_ascii_case(lid)
            })
            .ok_or_else(|| GraphError::item_not_found("List not found"))?
    };
    let frag = format!("sites('{}')/lists('{}')", site.id, lid);
    if rest.len() == 1 && *method == Method::DELETE {
        // `DELETE /sites/{id}/lists/{id}`. Libraries are not deleted here:
        // their drives are numbered by position in the site.
        let mut ss = slot.write();
        if ss.lists[li].lib.is_some() {
            return Err(GraphError::invalid_request(
                "The simulator does not delete document libraries.",
            ));
        }
        ss.lists.remove(li);
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    match (s(1), s(2), s(3)) {
        (None, _, _) if get => {
            let ss = slot.read();
            let l = &ss.lists[li];
            let mut v = l.json(site, &tenant);
            if ctx
                .query
                .expand
                .as_deref()
                .is_some_and(|e| e.contains("columns"))
            {
                v["columns"] = Value::Array(l.columns.iter().map(|c| c.json(&l.id)).collect());
            }
            ok(odata::entity(
                ctx,
                &format!("sites('{}')/lists", site.id),
                v,
                None,
            ))
        }
        (Some("columns"), None, _) if get => {
            let ss = slot.read();
            let l = &ss.lists[li];
            let v = l.columns.iter().map(|c| c.json(&l.id)).collect();
            ok(odata::collection(
                ctx,
                &format!("{frag}/columns"),
                v,
                PageLimits::SMALL,
                None,
            )?)
        }
        (Some("drive"), None, _) if get => {
            let lib = slot.read().lists[li]
                .lib
                .ok_or_else(|| GraphError::item_not_found("This list has no drive."))?;
            drive_ops(
                sim,
                ctx,
                method,
                &DriveKey::Library(site.id.clone(), lib).id(),
                &[],
                body,
            )
        }
        (Some("items"), None, _) => {
            let with_fields = ctx
                .query
                .expand
                .as_deref()
                .is_some_and(|e| e.starts_with("fields"));
            if get {
                let ss = slot.read();
                let l = &ss.lists[li];
                let v: Vec<Value> = match l.lib {
                    // A document library's items are its files and folders.
                    Some(lib) => {
                        let drive = drive_slot(sim, &DriveKey::Library(site.id.clone(), lib).id())?;
                        let st = drive.read();
                        st.items
                            .values()
                            .filter(|i| i.kind != Kind::Root)
                            .map(|i| library_item_json(&st, l, site, i, with_fields))
                            .collect()
                    }
                    None => l
                        .items
                        .values()
                        .map(|it| sites::item_json(l, site, it, with_fields))
                        .collect(),
                };
                return ok(odata::collection(
                    ctx,
                    &format!("{frag}/items"),
                    v,
                    PageLimits::SMALL,
                    None,
                )?);
            }
            if *method != Method::POST {
                return Err(GraphError::method_not_allowed());
            }
            let b = body_json(&body)?;
            let fields = b
                .get("fields")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut ss = slot.write();
            let l = &mut ss.lists[li];
            if l.lib.is_some() {
                return Err(GraphError::invalid_request(
                    "Files are added to a document library through its drive.",
                ));
            }
            let seq = sim.next_seq();
            let mut r = crate::rng::rng_for(sim.seed(), &["listitem-api", &seq.to_string()]);
            let item = l.new_item(sim.seed(), &mut r, Some(fields), sim.now(), app(sim));
            let v = sites::item_json(l, site, &item, true);
            l.items.upsert(item.id.clone(), item, seq);
            Ok(json_response(StatusCode::CREATED, v))
        }
        (Some("items"), Some("delta"), None) if get => list_delta(sim, ctx, site, &slot, li),
        (Some("items"), Some(iid), sub) => {
            let iid = iid.to_string();
            match (method.clone(), sub) {
                (Method::GET, None) => {
                    let ss = slot.read();
                    let l = &ss.lists[li];
                    let it = l.items.get(&iid).ok_or_else(list_item_missing)?;
                    let with_fields = ctx
                        .query
                        .expand
                        .as_deref()
                        .is_some_and(|e| e.starts_with("fields"));
                    ok(odata::entity(
                        ctx,
                        &format!("{frag}/items"),
                        sites::item_json(l, site, it, with_fields),
                        None,
                    ))
                }
                (Method::GET, Some("fields")) => {
                    let ss = slot.read();
                    let it = ss.lists[li].items.get(&iid).ok_or_else(list_item_missing)?;
                    ok(odata::entity(
                        ctx,
                        &format!("{frag}/items('{iid}')/fields"),
                        sites::fields_json(it),
                        None,
                    ))
                }
                (Method::PATCH, Some("fields")) | (Method::PATCH, None) => {
                    let b = body_json(&body)?;
                    let patch = if sub.is_none() {
                        b.get("fields")
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        b.as_object().cloned().unwrap_or_default()
                    };
                    let mut ss = slot.write();
                    let l = &mut ss.lists[li];
                    if !l.items.contains(&iid) {
                        return Err(list_item_missing());
                    }
                    let seq = sim.next_seq();
                    let now = sim.now();
                    let it = l.items.get_mut(&iid, seq).ok_or_else(list_item_missing)?;
                    for (k, v) in patch {
                        if k.starts_with('@')
                            || matches!(
                                k.as_str(),
                                "id" | "Modified" | "Created" | "ContentType" | "Attachments"
                            )
                        {
                            continue;
                        }
                        it.fields.insert(k, v);
                    }
                    it.modified = now;
                    it.modified_by = app(sim);
                    it.etag += 1;
                    let it = it.clone();
                    let l = &ss.lists[li];
                    if sub.is_some() {
                        ok(sites::fields_json(&it))
                    } else {
                        ok(sites::item_json(l, site, &it, true))
                    }
                }
                (Method::DELETE, None) => {
                    let mut ss = slot.write();
                    let seq = sim.next_seq();
                    ss.lists[li]
                        .items
                        .remove(&iid, seq, "deleted")
                        .ok_or_else(list_item_missing)?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(GraphError::no_resource(&ctx.path)),
            }
        }
        _ => Err(GraphError::no_resource(&ctx.path)),
    }
}

/// The list item of a file or folder in a document library.
fn library_item_json(
    st: &DriveState,
    l: &sites::ListState,
    site: &SiteMeta,
    it: &Item,
    with_fields: bool,
) -> Value {
    let etag = format!("\"{{{}}},{}\"", it.guid, it.etag);
    let (ct_id, ct_name) = if it.is_file() {
        ("0x0101008A1B2C3D4E5F60718293A4B5C6D7E8F9", "Document")
    } else {
        ("0x0120008A1B2C3D4E5F60718293A4B5C6D7E8F9", "Folder")
    };
    let mut v = json!({
        "@odata.etag": etag,
        "id": it.counter.to_string(),
        "eTag": etag,
        "createdDateTime": graph_time(it.created),
        "lastModifiedDateTime": graph_time(it.modified),
        "webUrl": st.web_url_of(&it.id),
        "createdBy": it.created_by.json(),
        "lastModifiedBy": it.modified_by.json(),
        "parentReference": {"id": l.id, "siteId": site.id},
        "contentType": {"id": ct_id, "name": ct_name},
        "sharepointIds": {"listId": l.id, "listItemId": it.counter.to_string(), "listItemUniqueId": it.guid.to_lowercase()},
    });
    if with_fields {
        v["fields"] = json!({
            "@odata.etag": etag,
            "id": it.counter.to_string(),
            "FileLeafRef": it.name,
            "ContentType": ct_name,
            "Created": graph_time(it.created),
            "Modified": graph_time(it.modified),
            "FileSizeDisplay": it.size().to_string(),
        });
    }
    v
}

/// `POST /sites/{id}/lists`: a generic list with the given columns, or a document library.
fn create_list(
    sim: &Sim,
    site: &SiteMeta,
    slot: &crate::lazy::Slot<sites::SiteState>,
    body: Bytes,
) -> GraphResult<Response> {
    let b = body_json(&body)?;
    let display = b
        .get("displayName")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
        .ok_or_else(|| GraphError::invalid_request("displayName is required."))?
        .to_string();
    let template = match b
        .pointer("/list/template")
        .and_then(Value::as_str)
        .unwrap_or("genericList")
    {
        "documentLibrary" => "documentLibrary",
        "contacts" => "contacts",
        "announcements" => "announcements",
        "events" => "events",
        "tasks" => "tasks",
        _ => "genericList",
    };
    let mut columns = vec![sites::Column {
        name: "Title".into(),
        display: "Title".into(),
        ty: "text",
        choices: vec![],
    }];
    for c in b
        .get("columns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = c.get("name").and_then(Value::as_str) else {
            return Err(GraphError::invalid_request("Every column needs a name."));
        };
        if name.eq_ignore_ascii_case("Title") {
            continue;
        }
        let ty = ["text", "number", "choice", "dateTime", "boolean"]
            .into_iter()
            .find(|t| c.get(*t).is_some())
            .unwrap_or("text");
        let choices = c
            .pointer("/choice/choices")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        columns.push(sites::Column {
            name: name.to_string(),
            display: c
                .get("displayName")
                .and_then(Value::as_str)
                .unwrap_or(name)
                .to_string(),
            ty,
            choices,
        });
    }
    if slot
        .read()
        .lists
        .iter()
        .any(|l| l.display_name.eq_ignore_ascii_case(&display))
    {
        return Err(name_exists());
    }
    let lib = if template == "documentLibrary" {
        Some(super::add_library(sim, &site.id, &display)?)
    } else {
        None
    };
    let seq = sim.next_seq();
    let id = match lib {
        Some(i) => crate::rng::stable_guid(sim.seed(), &["list", &site.id, "lib", &i.to_string()]),
        None => crate::rng::stable_guid(sim.seed(), &["list-api", &site.id, &seq.to_string()]),
    }
    .to_string();
    let list = sites::ListState {
        id,
        name: display.replace(' ', ""),
        display_name: display,
        template,
        created: sim.now(),
        columns,
        items: DeltaLog::new(),
        next_id: 1,
        lib,
    };
    let site = site_meta(sim, &site.id)?;
    let v = list.json(&site, &sim.cfg.tenant_id);
    slot.write().lists.push(list);
    Ok(json_response(StatusCode::CREATED, v))
}

fn list_item_missing() -> GraphError {
    GraphError::item_not_found("The specified list item was not found.")
}

fn list_delta(
    sim: &Sim,
    ctx: &GraphCtx,
    site: &SiteMeta,
    slot: &crate::lazy::Slot<sites::SiteState>,
    li: usize,
) -> GraphResult<Response> {
    let ss = slot.read();
    let l = &ss.lists[li];
    let scope = format!("list:{}:{}", site.id, l.id);
    let epoch = sim.delta_epoch();
    let now = sim.current_seq();
    let token = ctx.query.param("token");
    let context = ctx.context("Collection(listItem)");
    if token == Some("latest") {
        let t = DeltaLog::<sites::ListItem>::latest_token(&scope, epoch, now);
        return ok(
            json!({"@odata.context": context, "value": [], "@odata.deltaLink": ctx.link_with(&ctx.path, &["token"], &[("token", t)])}),
        );
    }
    let cursor = l
        .items
        .cursor(&scope, epoch, now, token, TokenFlavor::Drive)?;
    let size = ctx.page_size(200, 1000);
    let page = l.items.page(&scope, epoch, cursor, now, size);
    let mut value: Vec<Value> = page
        .changed
        .iter()
        .map(|(_, it)| {
            odata::project(
                sites::item_json(l, site, it, true),
                ctx.query.select.as_deref(),
                None,
            )
        })
        .collect();
    for r in &page.removed {
        value.push(json!({"id": r.id, "deleted": {"state": "deleted"}, "parentReference": {"id": l.id, "siteId": site.id}}));
    }
    let mut out = Map::new();
    out.insert("@odata.context".into(), json!(context));
    if let Some(n) = page.next_token {
        out.insert(
            "@odata.nextLink".into(),
            json!(ctx.link_with(&ctx.path, &["token"], &[("token", n)])),
        );
    }
    if let Some(d) = page.delta_token {
        out.insert(
            "@odata.deltaLink".into(),
            json!(ctx.link_with(&ctx.path, &["token"], &[("token", d)])),
        );
    }
    out.insert("value".into(), Value::Array(value));
    ok(Value::Object(out))
}

// ---- drives ----------------------------------------------------------------

pub fn drive_json(st: &DriveState) -> Value {
    let used = st.used();
    let total: u64 = 1024 * 1024 * 1024 * 1024;
    let modified = st
        .items
        .values()
        .map(|i| i.modified)
        .max()
        .unwrap_or(st.meta.created);
    let mut m = Map::new();
    m.insert("id".into(), json!(st.meta.id));
    m.insert("driveType".into(), json!(st.meta.drive_type));
    m.insert("name".into(), json!(st.meta.name));
    m.insert("description".into(), json!(st.meta.description));
    m.insert("createdDateTime".into(), json!(graph_time(st.meta.created)));
    m.insert("lastModifiedDateTime".into(), json!(graph_time(modified)));
    m.insert("webUrl".into(), json!(st.meta.web_url));
    m.insert(
        "createdBy".into(),
        json!({"user": {"displayName": "System Account"}}),
    );
    m.insert("owner".into(), st.meta.owner.clone());
    m.insert(
        "quota".into(),
        json!({"deleted": 0, "remaining": total.saturating_sub(used), "state": "normal", "total": total, "used": used}),
    );
    Value::Object(m)
}

pub(crate) fn render_item(
    sim: &Sim,
    st: &DriveState,
    id: &str,
    origin: &str,
    in_delta: bool,
) -> GraphResult<Value> {
    let agg = st.aggregates();
    let sign = |s: &str| sim.sign(s);
    let r = Render {
        origin,
        seed: sim.seed(),
        hashes: &sim.files.hashes,
        agg: &agg,
        in_delta,
        sign: &sign,
        now: sim.now().timestamp(),
    };
    let it = st.item(id)?;
    Ok(drive::item_json(st, it, &r))
}

/// What an item address names: an existing item, or a path below one that does not exist (yet).
enum Target {
    Item(String),
    Missing { parent: String, rest: Vec<String> },
}

fn drive_ops(
    sim: &Sim,
    ctx: &GraphCtx,
    method: &Method,
    drive_id: &str,
    rest: &[String],
    body: Bytes,
) -> GraphResult<Response> {
    let slot = drive_slot(sim, drive_id)?;
    let s = |i: usize| rest.get(i).map(String::as_str);
    if rest.is_empty() {
        if *method != Method::GET {
            return Err(GraphError::method_not_allowed());
        }
        return ok(odata::entity(ctx, "drives", drive_json(&slot.read()), None));
    }
    // SDKs percent-encode the `items/{id}:/a/b:` form, so the router sees it as one id.
    let expanded: Vec<String>;
    let rest = match (s(0), s(1)) {
        (Some("items"), Some(id)) if id.contains(":/") => {
            let (base, p) = id.split_once(":/").unwrap_or((id, ""));
            let p = p.strip_suffix(':').unwrap_or(p);
            expanded = ["items", base, "path", p]
                .into_iter()
                .map(str::to_string)
                .chain(rest[2..].iter().cloned())
                .collect();
            &expanded[..]
        }
        _ => rest,
    };
    let s = |i: usize| rest.get(i).map(String::as_str);
    let (base, mut i) = match (s(0), s(1)) {
        (Some("root"), _) => ("root".to_string(), 1),
        (Some("items"), Some(id)) => (id.to_string(), 2),
        _ => return Err(GraphError::no_resource(&ctx.path)),
    };
    let target = {
        let st = slot.read();
        let base_id = st.item(&base)?.id.clone();
        if s(i) == Some("path") {
            let p = s(i + 1).unwrap_or_default().to_string();
            i += 2;
            let parts: Vec<String> = p
                .split('/')
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect();
            let mut cur = base_id;
            let mut missing = None;
            for (k, seg) in parts.iter().enumerate() {
                match st.child_named(&cur, seg) {
                    Some(c) => cur = c.id.clone(),
                    None => {
                        missing = Some(parts[k..].to_vec());
                        break;
                    }
                }
            }
            match missing {
                Some(rest) => Target::Missing { parent: cur, rest },
                None => Target::Item(cur),
            }
        } else {
            Target::Item(base_id)
        }
    };
    let action: Vec<&str> = rest
        .get(i..)
        .unwrap_or(&[])
        .iter()
        .map(String::as_str)
        .collect();
    let o = ctx.origin.clone();
    match target {
        Target::Missing {
            parent,
            rest: names,
        } => match (method.clone(), action.as_slice()) {
            (Method::PUT, ["content"]) => {
                let conflict = Conflict::parse(
                    ctx.query.param("@microsoft.graph.conflictBehavior"),
                    Conflict::Replace,
                )?;
                simple_upload_new(sim, &slot, &parent, &names, conflict, body, &o)
            }
            (Method::POST, ["createUploadSession"]) => {
                let mut st = slot.write();
                let (parent, name) = make_dirs(sim, &mut st, &parent, &names)?;
                drop(st);
                create_session(sim, ctx, drive_id, &parent, &name, None, body)
            }
            _ => Err(drive::item_missing()),
        },
        Target::Item(id) => item_ops(sim, ctx, method, &slot, &id, &action, body, &o),
    }
}

/// Creates the missing folders of `names` but the last, returning the parent and the file name.
fn make_dirs(
    sim: &Sim,
    st: &mut DriveState,
    parent: &str,
    names: &[String],
) -> GraphResult<(String, String)> {
    let (last, dirs) = names.split_last().ok_or_else(drive::item_missing)?;
    let mut cur = parent.to_string();
    for d in dirs {
        cur = match st.child_named(&cur, d) {
            Some(c) if c.is_container() => c.id.clone(),
            Some(_) => {
                return Err(GraphError::conflict(
                    "nameAlreadyExists",
                    "A file with this name exists where a folder is needed.",
                ));
            }
            None => {
                let seq = sim.next_seq();
                st.add_item(
                    sim.seed(),
                    &cur,
                    d,
                    Kind::Folder,
                    sim.now(),
                    app(sim),
                    None,
                    seq,
                )
            }
        };
    }
    check_name(last)?;
    Ok((cur, last.clone()))
}

fn check_name(name: &str) -> GraphResult<()> {
    if name.is_empty()
        || name.len() > 400
        || name
            .chars()
            .any(|c| matches!(c, '"' | '*' | ':' | '<' | '>' | '?' | '/' | '\\' | '|'))
        || name.ends_with('.')
    {
        return Err(GraphError::invalid_request(format!(
            "The name '{name}' is not valid."
        )));
    }
    Ok(())
}

fn name_exists() -> GraphError {
    GraphError::conflict(
        "nameAlreadyExists",
        "The specified item name already exists.",
    )
}

#[allow(clippy::too_many_arguments)]
fn item_ops(
    sim: &Sim,
    ctx: &GraphCtx,
    method: &Method,
    slot: &crate::lazy::Slot<DriveState>,
    id: &str,
    action: &[&str],
    body: Bytes,
    o: &str,
) -> GraphResult<Response> {
    let drive_id = slot.read().meta.id.clone();
    let frag = format!("drives('{drive_id}')/items");
    match (method.clone(), action) {
        (Method::GET, []) => {
            let st = slot.read();
            let mut v = render_item(sim, &st, id, o, false)?;
            if ctx
                .query
                .expand
                .as_deref()
                .is_some_and(|e| e.split(',').any(|x| x.trim().starts_with("children")))
            {
                let kids: GraphResult<Vec<Value>> = st
                    .children(id)
                    .iter()
                    .map(|c| render_item(sim, &st, &c.id, o, false))
                    .collect();
                v["children"] = Value::Array(kids?);
            }
            ok(odata::entity(ctx, &frag, v, None))
        }
        (Method::GET, ["children"]) => {
            let st = slot.read();
            let it = st.item(id)?;
            if it.is_file() {
                return Ok(json_response(
                    StatusCode::OK,
                    json!({"@odata.context": ctx.context(&format!("{frag}('{id}')/children")), "value": []}),
                ));
            }
            let kids: GraphResult<Vec<Value>> = st
                .children(id)
                .iter()
                .map(|c| render_item(sim, &st, &c.id, o, false))
                .collect();
            ok(odata::collection(
                ctx,
                &format!("{frag}('{id}')/children"),
                kids?,
                PageLimits::DRIVE,
                None,
            )?)
        }
        (Method::POST, ["children"]) => create_child(sim, slot, id, body, o),
        (Method::GET | Method::HEAD, ["content"]) => {
            let st = slot.read();
            let it = st.item(id)?;
            let v = it.current().ok_or_else(drive::item_missing)?;
            Ok(redirect(&download_for(sim, &st, it, &v.id, o)))
        }
        (Method::PUT, ["content"]) => {
            if body.len() > SIMPLE_UPLOAD_MAX {
                return Err(GraphError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalidRequest",
                    "The request is too large for a simple upload; use an upload session.",
                ));
            }
            let conflict = Conflict::parse(
                ctx.query.param("@microsoft.graph.conflictBehavior"),
                Conflict::Replace,
            )?;
            let mut st = slot.write();
            let it = st.item(id)?;
            if it.is_container() {
                return Err(GraphError::invalid_request(
                    "Cannot upload content to a folder.",
                ));
            }
            let (id, parent, name) = (
                it.id.clone(),
                it.parent.clone().unwrap_or_default(),
                it.name.clone(),
            );
            match conflict {
                Conflict::Fail => Err(name_exists()),
                Conflict::Rename => {
                    let (status, id) = commit(
                        sim, &mut st, &parent, &name, None, conflict, body, None, None, None,
                    )?;
                    Ok(json_response(status, render_item(sim, &st, &id, o, false)?))
                }
                Conflict::Replace => {
                    new_version(sim, &mut st, &id, body, None, None)?;
                    ok(render_item(sim, &st, &id, o, false)?)
                }
            }
        }
        (Method::POST, ["createUploadSession"]) => {
            let (parent, name, existing) = {
                let st = slot.read();
                let it = st.item(id)?;
                if it.is_container() {
                    return Err(GraphError::invalid_request(
                        "An upload session needs a file name: address the new file by path.",
                    ));
                }
                (
                    it.parent.clone().unwrap_or_default(),
                    it.name.clone(),
                    it.id.clone(),
                )
            };
            // A session addressed at an existing file: `fail` refuses at once,
            // `rename` uploads beside it, `replace` (the default) makes a new version.
            let conflict = body_json(&body)?
                .get("item")
                .and_then(|i| i.get("@microsoft.graph.conflictBehavior"))
                .and_then(Value::as_str)
                .map(str::to_string);
            match Conflict::parse(conflict.as_deref(), Conflict::Replace)? {
                Conflict::Fail => Err(name_exists()),
                Conflict::Rename => create_session(sim, ctx, &drive_id, &parent, &name, None, body),
                Conflict::Replace => {
                    create_session(sim, ctx, &drive_id, &parent, &name, Some(existing), body)
                }
            }
        }
        (Method::PATCH, []) => patch_item(sim, slot, id, body, o),
        (Method::DELETE, []) => {
            let mut st = slot.write();
            let it = st.item(id)?;
            if it.kind == Kind::Root {
                return Err(GraphError::new(
                    StatusCode::FORBIDDEN,
                    "accessDenied",
                    "The root of a drive cannot be deleted.",
                ));
            }
            let id = it.id.clone();
            for x in st.subtree(&id).into_iter().rev() {
                let seq = sim.next_seq();
                st.items.remove(&x, seq, "deleted");
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::GET, ["delta"]) => delta(sim, ctx, slot, id, o),
        (Method::GET, ["versions"]) => {
            let st = slot.read();
            let it = st.item(id)?;
            let agg = Default::default();
            let sign = |s: &str| sim.sign(s);
            let r = render_ctx(sim, o, &agg, &sign);
            let v: Vec<Value> = it
                .versions
                .iter()
                .rev()
                .map(|v| drive::version_json(&st, it, v, &r))
                .collect();
            ok(odata::collection(
                ctx,
                &format!("{frag}('{id}')/versions"),
                v,
                PageLimits::DRIVE,
                None,
            )?)
        }
        (Method::GET, ["versions", vid]) => {
            let st = slot.read();
            let it = st.item(id)?;
            let v = it
                .versions
                .iter()
                .find(|v| v.id == *vid)
                .ok_or_else(version_missing)?;
            let agg = Default::default();
            let sign = |s: &str| sim.sign(s);
            let r = render_ctx(sim, o, &agg, &sign);
            ok(odata::entity(
                ctx,
                &format!("{frag}('{id}')/versions"),
                drive::version_json(&st, it, v, &r),
                None,
            ))
        }
        (Method::GET | Method::HEAD, ["versions", vid, "content"]) => {
            let st = slot.read();
            let it = st.item(id)?;
            let v = it
                .versions
                .iter()
                .find(|v| v.id == *vid)
                .ok_or_else(version_missing)?;
            Ok(redirect(&download_for(sim, &st, it, &v.id, o)))
        }
        (Method::POST, ["versions", vid, "restoreVersion"]) => {
            let mut st = slot.write();
            let it = st.item(id)?;
            let v = it
                .versions
                .iter()
                .find(|v| v.id == *vid)
                .cloned()
                .ok_or_else(version_missing)?;
            let id = it.id.clone();
            let seq = sim.next_seq();
            let now = sim.now();
            if let Some(it) = st.items.get_mut(&id, seq) {
                let n = format!("{}.0", it.versions.len() + 1);
                it.versions.push(drive::Version {
                    id: n,
                    content: v.content,
                    hashes: v.hashes,
                    modified: now,
                    by: app(sim),
                });
                it.modified = now;
                it.modified_by = app(sim);
                it.etag += 1;
                it.ctag += 1;
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::GET, ["permissions"]) => {
            let st = slot.read();
            let it = st.item(id)?;
            let v: Vec<Value> = it
                .perms
                .iter()
                .map(|p| drive::perm_json(&st, it, p))
                .collect();
            ok(odata::collection(
                ctx,
                &format!("{frag}('{id}')/permissions"),
                v,
                PageLimits::DRIVE,
                None,
            )?)
        }
        (Method::GET, ["permissions", pid]) => {
            let st = slot.read();
            let it = st.item(id)?;
            let p = it
                .perms
                .iter()
                .find(|p| p.id == *pid)
                .ok_or_else(perm_missing)?;
            ok(odata::entity(
                ctx,
                &format!("{frag}('{id}')/permissions"),
                drive::perm_json(&st, it, p),
                None,
            ))
        }
        (Method::DELETE, ["permissions", pid]) => {
            let mut st = slot.write();
            let id = st.item(id)?.id.clone();
            if !st.item(&id)?.perms.iter().any(|p| p.id == *pid) {
                return Err(perm_missing());
            }
            let seq = sim.next_seq();
            if let Some(it) = st.items.get_mut(&id, seq) {
                it.perms.retain(|p| p.id != *pid);
                it.etag += 1;
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Method::POST, ["invite"]) => invite(sim, ctx, slot, id, body),
        _ => Err(GraphError::no_resource(&ctx.path)),
    }
}

fn version_missing() -> GraphError {
    GraphError::item_not_found("The requested version could not be found.")
}

fn perm_missing() -> GraphError {
    GraphError::item_not_found("The requested permission could not be found.")
}

fn render_ctx<'a>(
    sim: &'a Sim,
    o: &'a str,
    agg: &'a std::collections::HashMap<String, (u64, u64)>,
    sign: &'a dyn Fn(&str) -> String,
) -> Render<'a> {
    Render {
        origin: o,
        seed: sim.seed(),
        hashes: &sim.files.hashes,
        agg,
        in_delta: false,
        sign,
        now: sim.now().timestamp(),
    }
}

fn download_for(sim: &Sim, st: &DriveState, it: &Item, vid: &str, o: &str) -> String {
    let agg = Default::default();
    let sign = |s: &str| sim.sign(s);
    let r = render_ctx(sim, o, &agg, &sign);
    drive::download_url(&r, &st.meta.id, &it.id, vid)
}

fn redirect(url: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn opt_time(v: &Value, key: &str) -> GraphResult<Option<DateTime<Utc>>> {
    match v.get(key).and_then(Value::as_str) {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| GraphError::invalid_request(format!("Invalid {key} '{s}'."))),
    }
}

/// `fileSystemInfo` dates given by the client: (created, last modified).
type FsDates = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn fs_info(v: &Value) -> GraphResult<FsDates> {
    match v.get("fileSystemInfo") {
        Some(f) => Ok((
            opt_time(f, "createdDateTime")?,
            opt_time(f, "lastModifiedDateTime")?,
        )),
        None => Ok((None, None)),
    }
}

fn create_child(
    sim: &Sim,
    slot: &crate::lazy::Slot<DriveState>,
    parent: &str,
    body: Bytes,
    o: &str,
) -> GraphResult<Response> {
    let b = body_json(&body)?;
    let name = b
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::invalid_request("A name is required."))?
        .to_string();
    check_name(&name)?;
    if b.get("folder").is_none() && b.get("file").is_none() {
        return Err(GraphError::invalid_request(
            "Either 'folder' or 'file' must be provided.",
        ));
    }
    let conflict = Conflict::parse(
        b.get("@microsoft.graph.conflictBehavior")
            .and_then(Value::as_str),
        Conflict::Fail,
    )?;
    let (fc, fm) = fs_info(&b)?;
    let mut st = slot.write();
    let p = st.item(parent)?;
    if p.is_file() {
        return Err(GraphError::invalid_request("The parent is not a folder."));
    }
    let parent = p.id.clone();
    let mut name = name;
    if let Some(existing) = st.child_named(&parent, &name).map(|i| i.id.clone()) {
        match conflict {
            Conflict::Fail => return Err(name_exists()),
            Conflict::Rename => name = st.free_name(&parent, &name),
            Conflict::Replace => {
                for x in st.subtree(&existing).into_iter().rev() {
                    let seq = sim.next_seq();
                    st.items.remove(&x, seq, "deleted");
                }
            }
        }
    }
    let seq = sim.next_seq();
    let now = sim.now();
    let (kind, content) = if b.get("folder").is_some() {
        (Kind::Folder, None)
    } else {
        (Kind::File, Some(new_bytes_content(sim, Bytes::new())))
    };
    let id = st.add_item(
        sim.seed(),
        &parent,
        &name,
        kind,
        now,
        app(sim),
        content,
        seq,
    );
    if let Some(it) = st.items.peek_mut(&id) {
        if let Some(t) = fc {
            it.fs_created = t;
        }
        if let Some(t) = fm {
            it.fs_modified = t;
        }
        it.description = b
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    Ok(json_response(
        StatusCode::CREATED,
        render_item(sim, &st, &id, o, false)?,
    ))
}

fn patch_item(
    sim: &Sim,
    slot: &crate::lazy::Slot<DriveState>,
    id: &str,
    body: Bytes,
    o: &str,
) -> GraphResult<Response> {
    let b = body_json(&body)?;
    let conflict = Conflict::parse(
        b.get("@microsoft.graph.conflictBehavior")
            .and_then(Value::as_str),
        Conflict::Fail,
    )?;
    let (fc, fm) = fs_info(&b)?;
    let mut st = slot.write();
    let it = st.item(id)?;
    let id = it.id.clone();
    let mut parent = it.parent.clone();
    let mut name = it.name.clone();
    if let Some(n) = b.get("name").and_then(Value::as_str) {
        check_name(n)?;
        name = n.to_string();
    }
    if let Some(pr) = b.get("parentReference") {
        let target = if let Some(pid) = pr.get("id").and_then(Value::as_str) {
            st.item(pid)?.id.clone()
        } else if let Some(path) = pr.get("path").and_then(Value::as_str) {
            let rel = path.split_once("root:").map(|(_, r)| r).unwrap_or(path);
            let root = st.root_id.clone();
            st.resolve_path(&root, rel)
                .map(|i| i.id.clone())
                .ok_or_else(drive::item_missing)?
        } else {
            parent.clone().unwrap_or_default()
        };
        if st.item(&target)?.is_file() {
            return Err(GraphError::invalid_request(
                "The destination is not a folder.",
            ));
        }
        if st.subtree(&id).contains(&target) {
            return Err(GraphError::invalid_request(
                "An item cannot be moved into itself.",
            ));
        }
        parent = Some(target);
    }
    if st.item(&id)?.kind == Kind::Root && (parent.is_some() || b.get("name").is_some()) {
        return Err(GraphError::invalid_request(
            "The root cannot be renamed or moved.",
        ));
    }
    if let Some(p) = &parent
        && let Some(other) = st
            .child_named(p, &name)
            .filter(|o| o.id != id)
            .map(|o| o.id.clone())
    {
        match conflict {
            Conflict::Fail => return Err(name_exists()),
            Conflict::Rename => name = st.free_name(p, &name),
            Conflict::Replace => {
                for x in st.subtree(&other).into_iter().rev() {
                    let seq = sim.next_seq();
                    st.items.remove(&x, seq, "deleted");
                }
            }
        }
    }
    let seq = sim.next_seq();
    let now = sim.now();
    if let Some(it) = st.items.get_mut(&id, seq) {
        it.name = name;
        it.parent = parent;
        if let Some(t) = fc {
            it.fs_created = t;
        }
        if let Some(t) = fm {
            it.fs_modified = t;
        }
        if let Some(d) = b.get("description").and_then(Value::as_str) {
            it.description = Some(d.to_string());
        }
        it.modified = now;
        it.modified_by = app(sim);
        it.etag += 1;
    }
    ok(render_item(sim, &st, &id, o, false)?)
}

/// A new version of an existing file with uploaded bytes.
fn new_version(
    sim: &Sim,
    st: &mut DriveState,
    id: &str,
    body: Bytes,
    fc: Option<DateTime<Utc>>,
    fm: Option<DateTime<Utc>>,
) -> GraphResult<()> {
    let (content, hashes) = new_bytes_content(sim, body);
    let seq = sim.next_seq();
    let now = sim.now();
    let it = st.items.get_mut(id, seq).ok_or_else(drive::item_missing)?;
    let n = format!("{}.0", it.versions.len() + 1);
    it.versions.push(drive::Version {
        id: n,
        content,
        hashes,
        modified: now,
        by: app(sim),
    });
    it.modified = now;
    it.modified_by = app(sim);
    it.fs_modified = fm.unwrap_or(now);
    if let Some(t) = fc {
        it.fs_created = t;
    }
    it.etag += 1;
    it.ctag += 1;
    Ok(())
}

fn simple_upload_new(
    sim: &Sim,
    slot: &crate::lazy::Slot<DriveState>,
    parent: &str,
    names: &[String],
    conflict: Conflict,
    body: Bytes,
    o: &str,
) -> GraphResult<Response> {
    if body.len() > SIMPLE_UPLOAD_MAX {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalidRequest",
            "The request is too large for a simple upload; use an upload session.",
        ));
    }
    let mut st = slot.write();
    let (parent, name) = make_dirs(sim, &mut st, parent, names)?;
    let (status, id) = commit(
        sim, &mut st, &parent, &name, None, conflict, body, None, None, None,
    )?;
    Ok(json_response(status, render_item(sim, &st, &id, o, false)?))
}

/// Puts uploaded bytes at `parent/name` (or as a new version of `existing`).
#[allow(clippy::too_many_arguments)]
fn commit(
    sim: &Sim,
    st: &mut DriveState,
    parent: &str,
    name: &str,
    existing: Option<&str>,
    conflict: Conflict,
    body: Bytes,
    fc: Option<DateTime<Utc>>,
    fm: Option<DateTime<Utc>>,
    description: Option<String>,
) -> GraphResult<(StatusCode, String)> {
    if let Some(e) = existing
        && st.items.contains(e)
    {
        new_version(sim, st, e, body, fc, fm)?;
        return Ok((StatusCode::OK, e.to_string()));
    }
    if st.items.get(parent).is_none() {
        return Err(drive::item_missing());
    }
    let mut name = name.to_string();
    if let Some(other) = st
        .child_named(parent, &name)
        .map(|i| (i.id.clone(), i.is_file()))
    {
        match conflict {
            Conflict::Fail => return Err(name_exists()),
            Conflict::Rename => name = st.free_name(parent, &name),
            Conflict::Replace if other.1 => {
                new_version(sim, st, &other.0, body, fc, fm)?;
                return Ok((StatusCode::OK, other.0));
            }
            Conflict::Replace => return Err(name_exists()),
        }
    }
    let content = new_bytes_content(sim, body);
    let seq = sim.next_seq();
    let now = sim.now();
    let id = st.add_item(
        sim.seed(),
        parent,
        &name,
        Kind::File,
        now,
        app(sim),
        Some(content),
        seq,
    );
    if let Some(it) = st.items.peek_mut(&id) {
        if let Some(t) = fc {
            it.fs_created = t;
        }
        if let Some(t) = fm {
            it.fs_modified = t;
        }
        it.description = description;
    }
    Ok((StatusCode::CREATED, id))
}

fn create_session(
    sim: &Sim,
    ctx: &GraphCtx,
    drive_id: &str,
    parent: &str,
    name: &str,
    existing: Option<String>,
    body: Bytes,
) -> GraphResult<Response> {
    let b = body_json(&body)?;
    let item = b.get("item").cloned().unwrap_or(json!({}));
    let conflict = Conflict::parse(
        item.get("@microsoft.graph.conflictBehavior")
            .and_then(Value::as_str),
        Conflict::Replace,
    )?;
    if let Some(n) = item.get("name").and_then(Value::as_str)
        && existing.is_none()
        && !n.eq_ignore_ascii_case(name)
    {
        return Err(GraphError::invalid_request(
            "The name in the request body does not match the name in the path.",
        ));
    }
    let (fc, fm) = fs_info(&item)?;
    if existing.is_none() && conflict == Conflict::Fail {
        let slot = drive_slot(sim, drive_id)?;
        if slot.read().child_named(parent, name).is_some() {
            return Err(name_exists());
        }
    }
    let total = b.get("fileSize").and_then(Value::as_u64);
    let sid = uuid::Uuid::new_v4().simple().to_string();
    let expires = Utc::now() + Duration::days(2);
    let sig = sim.sign(&format!("upload|{sid}"));
    let url = format!("{}/_files/upload/{sid}?sig={sig}", ctx.origin);
    sim.files.sessions.lock().insert(
        sid,
        UploadSession {
            drive: drive_id.to_string(),
            parent: parent.to_string(),
            name: name.to_string(),
            existing,
            conflict,
            fs_created: fc,
            fs_modified: fm,
            description: item
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            total,
            buf: Vec::new(),
            expires,
            done: None,
        },
    );
    ok(json!({
        "@odata.context": format!("{}/$metadata#microsoft.graph.uploadSession", ctx.base),
        "uploadUrl": url,
        "expirationDateTime": graph_time(expires),
        "nextExpectedRanges": [match total {
            Some(t) if t > 0 => format!("0-{}", t - 1),
            _ => "0-".to_string(),
        }],
    }))
}

// ---- delta -----------------------------------------------------------------

fn delta(
    sim: &Sim,
    ctx: &GraphCtx,
    slot: &crate::lazy::Slot<DriveState>,
    id: &str,
    o: &str,
) -> GraphResult<Response> {
    let st = slot.read();
    let it = st.item(id)?;
    if it.kind != Kind::Root {
        return Err(GraphError::invalid_request(
            "Delta is only supported on the root of a drive.",
        ));
    }
    let scope = format!("drive:{}", st.meta.id);
    let epoch = sim.delta_epoch();
    let now = sim.current_seq();
    let token = ctx.query.param("token");
    let context = ctx.context("Collection(driveItem)");
    if token == Some("latest") {
        let t = DeltaLog::<Item>::latest_token(&scope, epoch, now);
        return ok(
            json!({"@odata.context": context, "value": [], "@odata.deltaLink": ctx.link_with(&ctx.path, &["token"], &[("token", t)])}),
        );
    }
    let cursor = st
        .items
        .cursor(&scope, epoch, now, token, TokenFlavor::Drive)?;
    let size = ctx.page_size(200, 1000);
    let page = st.items.page(&scope, epoch, cursor, now, size);
    let agg = st.aggregates();
    let sign = |s: &str| sim.sign(s);
    let mut r = render_ctx(sim, o, &agg, &sign);
    r.in_delta = true;
    let mut value: Vec<Value> = page
        .changed
        .iter()
        .map(|(_, it)| {
            odata::project(
                drive::item_json(&st, it, &r),
                ctx.query.select.as_deref(),
                None,
            )
        })
        .collect();
    for rm in &page.removed {
        value.push(json!({
            "id": rm.id,
            "deleted": {"state": "deleted"},
            "parentReference": drive::parent_ref(&st, None, false),
        }));
    }
    let mut out = Map::new();
    out.insert("@odata.context".into(), json!(context));
    if let Some(n) = page.next_token {
        out.insert(
            "@odata.nextLink".into(),
            json!(ctx.link_with(&ctx.path, &["token"], &[("token", n)])),
        );
    }
    if let Some(d) = page.delta_token {
        out.insert(
            "@odata.deltaLink".into(),
            json!(ctx.link_with(&ctx.path, &["token"], &[("token", d)])),
        );
    }
    out.insert("value".into(), Value::Array(value));
    ok(Value::Object(out))
}

// ---- permissions -------------------------------------------------------------

fn invite(
    sim: &Sim,
    ctx: &GraphCtx,
    slot: &crate::lazy::Slot<DriveState>,
    id: &str,
    body: Bytes,
) -> GraphResult<Response> {
    let b = body_json(&body)?;
    let recipients = b
        .get("recipients")
        .and_then(Value::as_array)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| GraphError::invalid_request("At least one recipient is required."))?;
    let roles: Vec<String> = b
        .get("roles")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if roles.is_empty()
        || roles
            .iter()
            .any(|r| !matches!(r.as_str(), "read" | "write" | "owner"))
    {
        return Err(GraphError::invalid_request(
            "Roles must be 'read' or 'write'.",
        ));
    }
    let mut grantees = Vec::new();
    {
        let dir = sim.directory.read();
        for r in recipients {
            let key = r
                .get("objectId")
                .or_else(|| r.get("email"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let u = dir
                .user(key)
                .or_else(|| {
                    dir.live_users().find(|u| {
                        u.mail
                            .as_deref()
                            .is_some_and(|m| m.eq_ignore_ascii_case(key))
                    })
                })
                .ok_or_else(|| {
                    GraphError::invalid_request(format!(
                        "The recipient '{key}' could not be resolved."
                    ))
                })?;
            grantees.push(super::user_who(u));
        }
    }
    let mut st = slot.write();
    let id = st.item(id)?.id.clone();
    let seq = sim.next_seq();
    let drive_id = st.meta.id.clone();
    let mut added = Vec::new();
    if let Some(it) = st.items.get_mut(&id, seq) {
        for (k, g) in grantees.into_iter().enumerate() {
            let p = Perm {
                id: crate::rng::stable_guid(
                    sim.seed(),
                    &["invite", &drive_id, &id, &seq.to_string(), &k.to_string()],
                )
                .to_string(),
                roles: roles.clone(),
                link: None,
                grantee: Some(g),
            };
            it.perms.push(p.clone());
            added.push(p);
        }
        it.etag += 1;
    }
    let it = st.item(&id)?;
    let v: Vec<Value> = added.iter().map(|p| drive::perm_json(&st, it, p)).collect();
    ok(json!({"@odata.context": ctx.context("Collection(permission)"), "value": v}))
}

// ---- pre-authenticated URLs -------------------------------------------------

fn parse_range(h: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(v) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len)
    } else {
        let s: u64 = a.parse().map_err(|_| ())?;
        let e = if b.is_empty() {
            len
        } else {
            b.parse::<u64>().map_err(|_| ())?.saturating_add(1).min(len)
        };
        (s, e)
    };
    if start >= len || start >= end {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn download(
    State(sim): State<Arc<Sim>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    match download_inner(&sim, &token, q.get("sig").map(String::as_str), &headers) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn download_inner(
    sim: &Sim,
    token: &str,
    sig: Option<&str>,
    headers: &HeaderMap,
) -> GraphResult<Response> {
    if sig != Some(sim.sign(token).as_str()) {
        return Err(GraphError::unauthorized("The download URL is not valid."));
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| GraphError::unauthorized("The download URL is not valid."))?;
    let parts: Vec<&str> = raw.split('|').collect();
    let [drive_id, item_id, vid, exp] = parts.as_slice() else {
        return Err(GraphError::unauthorized("The download URL is not valid."));
    };
    let exp: i64 = exp.parse().unwrap_or(0);
    if exp < sim.now().timestamp() {
        return Err(GraphError::unauthorized("The download URL has expired."));
    }
    let slot = drive_slot(sim, drive_id)?;
    let (content, name, etag) = {
        let st = slot.read();
        let it = st.item(item_id)?;
        let v = it
            .versions
            .iter()
            .find(|v| v.id == *vid)
            .ok_or_else(drive::item_missing)?;
        (
            v.content.clone(),
            it.name.clone(),
            format!("\"{{{}}},{}\"", it.guid, it.etag),
        )
    };
    let len = content.len();
    let (status, start, end) = match parse_range(headers, len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Err(()) => {
            let mut r = GraphError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "invalidRange",
                "The requested range is not satisfiable.",
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    sim.stats.count("files.download");
    let seed = sim.seed();
    let stream = futures::stream::iter(
        content
            .chunks(seed, start, end)
            .map(Ok::<Bytes, std::io::Error>),
    );
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::content::mime_for_name(&name)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    let disp = format!("attachment; filename*=UTF-8''{}", odata::encode(&name));
    if let Ok(v) = HeaderValue::from_str(&disp) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{}", start, end - 1, len))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(r)
}

fn session_missing() -> GraphError {
    GraphError::item_not_found("The upload session was not found.")
}

async fn upload_fragment(
    State(sim): State<Arc<Sim>>,
    Path(sid): Path<String>,
    ctx: GraphCtx,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match upload_inner(&sim, &ctx, &sid, &method, &headers, body) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// The missing range, with its end when the file size is known (as OneDrive
/// for Business answers: `"327680-1048575"`).
fn session_status(s: &UploadSession) -> Value {
    let from = s.buf.len() as u64;
    let range = match s.total {
        Some(t) if t > from => format!("{from}-{}", t - 1),
        _ => format!("{from}-"),
    };
    json!({
        "expirationDateTime": graph_time(s.expires),
        "nextExpectedRanges": [range],
    })
}

fn upload_inner(
    sim: &Sim,
    ctx: &GraphCtx,
    sid: &str,
    method: &Method,
    headers: &HeaderMap,
    body: Bytes,
) -> GraphResult<Response> {
    if ctx.query.param("sig") != Some(sim.sign(&format!("upload|{sid}")).as_str()) {
        return Err(session_missing());
    }
    // The upload URL is pre-authenticated (its signature is checked above).
    // Graph documents that an Authorization header sent with it *may* be
    // answered 401; in practice Graph's upload URLs live on another host
    // (SharePoint), where Microsoft's SDKs attach no token. The simulator
    // serves them on its own host, where the SDK's LargeFileUploadTask does
    // attach its token, so the header is ignored here rather than refused
    // (our client sends none: `Request::pre_authenticated`).
    let mut sessions = sim.files.sessions.lock();
    if sessions.get(sid).is_some_and(|s| s.expires < Utc::now()) {
        sessions.remove(sid);
    }
    let done = sessions.get(sid).and_then(|s| {
        s.done
            .clone()
            .map(|(item, status)| (s.drive.clone(), item, status))
    });
    if let Some((drive, item, status)) = done {
        // Committed: only a retried final fragment is answered (with the item again).
        if *method != Method::PUT {
            if *method == Method::DELETE {
                sessions.remove(sid);
            }
            return Err(session_missing());
        }
        drop(sessions);
        let slot = drive_slot(sim, &drive)?;
        let st = slot.read();
        let v = render_item(sim, &st, &item, &ctx.origin, false)?;
        return Ok(json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            v,
        ));
    }
    match *method {
        Method::GET => {
            let s = sessions.get(sid).ok_or_else(session_missing)?;
            return ok(session_status(s));
        }
        Method::DELETE => {
            sessions.remove(sid).ok_or_else(session_missing)?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        Method::PUT => {}
        _ => return Err(GraphError::method_not_allowed()),
    }
    let s = sessions.get_mut(sid).ok_or_else(session_missing)?;
    let range = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            GraphError::invalid_request("The Content-Range header is missing or malformed.")
        })?;
    let (start, end, total) = parse_content_range(range).ok_or_else(|| {
        GraphError::invalid_request("The Content-Range header is missing or malformed.")
    })?;
    if Some(body.len() as u64) != (end - start).checked_add(1) {
        return Err(GraphError::invalid_request(
            "The Content-Range header length does not match the provided number of bytes.",
        ));
    }
    if body.len() > FRAGMENT_MAX {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalidRequest",
            "Fragments must be smaller than 60 MiB.",
        ));
    }
    if let Some(t) = s.total
        && t != total
    {
        return Err(GraphError::invalid_request(
            "The declared file size does not match the size of the upload session.",
        ));
    }
    if end >= total {
        return Err(GraphError::invalid_request(
            "The Content-Range is beyond the end of the file.",
        ));
    }
    let received = s.buf.len() as u64;
    // Graph answers both with 416 invalidRange ("fragmentOverlap" / out of order).
    if start < received {
        return Err(GraphError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "invalidRange",
            "Uploaded fragment overlaps with existing data.",
        ));
    }
    if start > received {
        return Err(GraphError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "invalidRange",
            "Uploaded fragment is out of order.",
        ));
    }
    let last = end + 1 == total;
    if !last && !(body.len() as u64).is_multiple_of(FRAGMENT_UNIT) {
        return Err(GraphError::invalid_request(
            "The fragment size must be a multiple of 320 KiB (327,680 bytes), except for the last fragment.",
        ));
    }
    s.total = Some(total);
    s.buf.extend_from_slice(&body);
    s.expires = Utc::now() + Duration::days(2);
    if !last {
        return Ok(json_response(StatusCode::ACCEPTED, session_status(s)));
    }
    // The last byte arrived: commit the file.
    let slot = drive_slot(sim, &s.drive)?;
    let mut st = slot.write();
    let bytes = Bytes::from(std::mem::take(&mut s.buf));
    let res = commit(
        sim,
        &mut st,
        &s.parent.clone(),
        &s.name.clone(),
        s.existing.clone().as_deref(),
        s.conflict,
        bytes.clone(),
        s.fs_created,
        s.fs_modified,
        s.description.clone(),
    );
    match res {
        Ok((status, id)) => {
            s.done = Some((id.clone(), status.as_u16()));
            let v = render_item(sim, &st, &id, &ctx.origin, false)?;
            Ok(json_response(status, v))
        }
        Err(e) => {
            // Kept until it expires, so the client can commit it under another name.
            s.buf = bytes.to_vec();
            Err(e)
        }
    }
}

fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let spec = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = spec.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, t) = (
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    );
    (a <= b).then_some((a, b, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_and_segments() {
        assert_eq!(parse_content_range("bytes 0-25/128"), Some((0, 25, 128)));
        assert_eq!(parse_content_range("bytes 5-2/128"), None);
        assert_eq!(
            segments("/drives/b!x/root/path/a%2Fb%20c.txt/content"),
            ["drives", "b!x", "root", "path", "a/b c.txt", "content"]
        );
    }
}
