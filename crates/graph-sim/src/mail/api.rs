//! Graph mail endpoints: mail folders, messages, attachments, delta, and the
//! Outlook attachment upload URL.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::mime;
use super::{
    Addr, Att, AttData, Body, F_DELETED, F_DRAFTS, F_RECOVERABLE, F_RI_DELETIONS, F_RI_PURGES,
    F_ROOT, Folder, Mailbox, Msg, MsgView, UploadSession, hkey,
};
use crate::delta::{DeltaLog, TokenFlavor};
use crate::error::{GraphError, GraphResult};
use crate::odata::{self, GraphCtx, PageLimits};
use crate::{Sim, graph_time};

type St = State<Arc<Sim>>;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/users/{id}/mailFolders",
            get(list_top_folders).post(create_top_folder),
        )
        .route("/users/{id}/mailFolders/delta", get(folders_delta))
        .route(
            "/users/{id}/mailFolders/{fid}",
            get(get_folder).patch(patch_folder).delete(delete_folder),
        )
        .route(
            "/users/{id}/mailFolders/{fid}/childFolders",
            get(list_child_folders).post(create_child_folder),
        )
        .route(
            "/users/{id}/mailFolders/{fid}/childFolders/{cid}",
            get(get_child_folder),
        )
        .route(
            "/users/{id}/mailFolders/{fid}/childFolders/{cid}/messages",
            get(list_child_folder_messages),
        )
        .route(
            "/users/{id}/mailFolders/{fid}/childFolders/{cid}/messages/delta",
            get(child_messages_delta),
        )
        .route("/users/{id}/mailFolders/{fid}/move", post(move_folder))
        .route(
            "/users/{id}/mailFolders/{fid}/messages",
            get(list_folder_messages).post(create_folder_message),
        )
        .route(
            "/users/{id}/mailFolders/{fid}/messages/delta",
            get(messages_delta),
        )
        .route(
            "/users/{id}/mailFolders/{fid}/messages/{mid}",
            get(f_get_message)
                .patch(f_patch_message)
                .delete(f_delete_message),
        )
        .route(
            "/users/{id}/mailFolders/{fid}/messages/{mid}/$value",
            get(f_message_value),
        )
        .route(
            "/users/{id}/mailFolders/{fid}/messages/{mid}/attachments",
            get(f_list_attachments),
        )
        .route(
            "/users/{id}/messages",
            get(list_all_messages).post(create_message),
        )
        .route(
            "/users/{id}/messages/{mid}",
            get(get_message).patch(patch_message).delete(delete_message),
        )
        .route("/users/{id}/messages/{mid}/$value", get(message_value))
        .route("/users/{id}/messages/{mid}/move", post(move_message))
        .route("/users/{id}/messages/{mid}/copy", post(copy_message))
        .route(
            "/users/{id}/messages/{mid}/permanentDelete",
            post(permanent_delete),
        )
        .route(
            "/users/{id}/messages/{mid}/attachments",
            get(list_attachments).post(add_attachment),
        )
        .route(
            "/users/{id}/messages/{mid}/attachments/createUploadSession",
            post(create_upload_session),
        )
        .route(
            "/users/{id}/messages/{mid}/attachments/{aid}",
            get(get_attachment).delete(delete_attachment),
        )
        .route(
            "/users/{id}/messages/{mid}/attachments/{aid}/$value",
            get(attachment_value),
        )
        // MIME uploads and attachment JSON are larger than axum's default limit.
        .layer(DefaultBodyLimit::max(MAX_REQUEST))
}

/// The upload URL of attachment upload sessions (an Outlook URL carrying
/// its own authorization, so outside `/v1.0` and its bearer token).
pub fn public_routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/api/v2.0/Users/{u}/Messages/{m}/AttachmentSessions/{s}",
            put(upload_chunk).delete(delete_upload_session),
        )
        .layer(DefaultBodyLimit::max(MAX_CHUNK + 1024 * 1024))
}

/// The largest request body the mail endpoints read (a 150 MB message as base64 MIME).
const MAX_REQUEST: usize = 210 * 1024 * 1024;

// Helpers ---------------------------------------------------------------

fn respond(ctx: &GraphCtx, status: StatusCode, v: Value) -> Response {
    let mut r = (status, axum::Json(v)).into_response();
    if !ctx.prefer.applied.is_empty()
        && let Ok(h) = HeaderValue::from_str(&ctx.prefer.applied.join(","))
    {
        r.headers_mut().insert("preference-applied", h);
    }
    r
}

fn parse_json(body: &Bytes) -> GraphResult<Value> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| GraphError::bad_request(format!("Unable to read JSON request payload: {e}")))
}

fn expand_ext(ctx: &GraphCtx) -> Option<Vec<String>> {
    let e = ctx.query.expand.as_deref()?;
    if !e
        .to_ascii_lowercase()
        .contains("singlevalueextendedproperties")
    {
        return None;
    }
    let mut ids = Vec::new();
    let mut rest = e;
    while let Some(i) = rest.find('\'') {
        let after = &rest[i + 1..];
        match after.find('\'') {
            Some(j) => {
                ids.push(after[..j].to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    Some(ids)
}

fn view(ctx: &GraphCtx) -> MsgView<'_> {
    MsgView {
        immutable: ctx.prefer.immutable_id,
        body_text: ctx.prefer.body_text,
        select: ctx.query.select.as_deref(),
        expand_ext: expand_ext(ctx),
    }
}

/// The request with `$select` widened so that expanded properties survive projection.
fn ctx_for_projection(ctx: &GraphCtx) -> GraphCtx {
    let mut c = ctx.clone();
    if expand_ext(ctx).is_some()
        && let Some(sel) = &mut c.query.select
    {
        sel.push("singleValueExtendedProperties".into());
        sel.push("singleValueExtendedProperties@odata.context".into());
    }
    c
}

fn folder_of(mb: &Mailbox, fid: &str) -> GraphResult<u64> {
    mb.resolve_folder(fid)
        .ok_or_else(GraphError::outlook_not_found)
}

fn msg_of(mb: &Mailbox, mid: &str) -> GraphResult<u64> {
    mb.resolve_msg(mid)
        .ok_or_else(GraphError::outlook_not_found)
}

fn include_hidden(ctx: &GraphCtx) -> bool {
    ctx.query
        .param("includeHiddenFolders")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn recipients(v: &Value, k: &str) -> GraphResult<Option<Vec<Addr>>> {
    let Some(arr) = v.get(k) else {
        return Ok(None);
    };
    if arr.is_null() {
        return Ok(Some(Vec::new()));
    }
    let arr = arr
        .as_array()
        .ok_or_else(|| GraphError::bad_request(format!("Property '{k}' must be a collection.")))?;
    arr.iter()
        .map(recipient)
        .collect::<GraphResult<Vec<_>>>()
        .map(Some)
}

fn recipient(v: &Value) -> GraphResult<Addr> {
    let e = v
        .get("emailAddress")
        .ok_or_else(|| GraphError::bad_request("A recipient needs an emailAddress."))?;
    let address = str_of(e, "address").unwrap_or_default();
    let name = str_of(e, "name").unwrap_or_else(|| address.clone());
    Ok(Addr::new(name, address))
}

// Folders ---------------------------------------------------------------

fn folder_list(ctx: &GraphCtx, mb: &Mailbox, parent: u64, fragment: &str) -> GraphResult<Value> {
    let hidden = include_hidden(ctx);
    // Recoverable Items lives beside Top of Information Store (in the
    // mailbox's non-IPM root), not below it: `includeHiddenFolders` does not
    // list it; only its well-known names reach it.
    let in_dumpster = mb.is_recoverable(parent);
    let items: Vec<Value> = mb
        .children(parent)
        .into_iter()
        .filter(|f| in_dumpster || !mb.is_recoverable(f.key))
        .filter(|f| hidden || !f.hidden)
        .map(|f| mb.folder_json(f))
        .collect();
    odata::collection(ctx, fragment, items, PageLimits::OUTLOOK, None)
}

async fn list_top_folders(
    State(sim): St,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mb = slot.read();
    let v = folder_list(
        &ctx,
        &mb,
        F_ROOT,
        &format!("users('{}')/mailFolders", mb.uid),
    )?;
    Ok(respond(&ctx, StatusCode::OK, v))
}

async fn list_child_folders(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mb = slot.read();
    let f = folder_of(&mb, &fid)?;
    let v = folder_list(
        &ctx,
        &mb,
        f,
        &format!("users('{}')/mailFolders('{fid}')/childFolders", mb.uid),
    )?;
    Ok(respond(&ctx, StatusCode::OK, v))
}

async fn get_folder(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mb = slot.read();
    let f = folder_of(&mb, &fid)?;
    let folder = mb.folder(f).ok_or_else(GraphError::outlook_not_found)?;
    let v = odata::entity(
        &ctx,
        &format!("users('{}')/mailFolders", mb.uid),
        mb.folder_json(folder),
        None,
    );
    Ok(respond(&ctx, StatusCode::OK, v))
}

async fn get_child_folder(
    state: St,
    ctx: GraphCtx,
    Path((id, _fid, cid)): Path<(String, String, String)>,
) -> GraphResult<Response> {
    get_folder(state, ctx, Path((id, cid))).await
}

fn create_folder_in(
    sim: &Sim,
    ctx: &GraphCtx,
    id: &str,
    parent: Option<&str>,
    body: &Bytes,
) -> GraphResult<Response> {
    let body = parse_json(body)?;
    let name = str_of(&body, "displayName")
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            GraphError::bad_request("The folder name (displayName) is missing or empty.")
        })?;
    let slot = sim.mail.mailbox(sim, id)?;
    let mut mb = slot.write();
    let parent = match parent {
        Some(p) => folder_of(&mb, p)?,
        None => F_ROOT,
    };
    if mb
        .children(parent)
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case(&name))
    {
        return Err(GraphError::conflict(
            "ErrorFolderExists",
            "A folder with the specified name already exists.",
        ));
    }
    let seq = sim.next_seq();
    let key = mb.new_folder(parent, &name, seq);
    if body.get("isHidden").and_then(Value::as_bool) == Some(true)
        && let Some(f) = mb.folders.peek_mut(&hkey(key))
    {
        f.hidden = true;
    }
    let folder = mb.folder(key).ok_or_else(GraphError::outlook_not_found)?;
    let v = odata::entity(
        ctx,
        &format!("users('{}')/mailFolders", mb.uid),
        mb.folder_json(folder),
        None,
    );
    Ok(respond(ctx, StatusCode::CREATED, v))
}

async fn create_top_folder(
    State(sim): St,
    ctx: GraphCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    create_folder_in(&sim, &ctx, &id, None, &body)
}

async fn create_child_folder(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    create_folder_in(&sim, &ctx, &id, Some(&fid), &body)
}

async fn patch_folder(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_json(&body)?;
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let f = folder_of(&mb, &fid)?;
    if f == F_ROOT {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
        ));
    }
    if let Some(name) = str_of(&body, "displayName") {
        if name.trim().is_empty() {
            return Err(GraphError::bad_request(
                "The folder name (displayName) is missing or empty.",
            ));
        }
        let parent = mb.folder(f).map(|x| x.parent).unwrap_or(F_ROOT);
        if mb
            .children(parent)
            .iter()
            .any(|x| x.key != f && x.name.eq_ignore_ascii_case(&name))
        {
            return Err(GraphError::conflict(
                "ErrorFolderExists",
                "A folder with the specified name already exists.",
            ));
        }
        let seq = sim.next_seq();
        if let Some(folder) = mb.folders.get_mut(&hkey(f), seq) {
            folder.name = name;
        }
    }
    let folder = mb.folder(f).ok_or_else(GraphError::outlook_not_found)?;
    let v = odata::entity(
        &ctx,
        &format!("users('{}')/mailFolders", mb.uid),
        mb.folder_json(folder),
        None,
    );
    Ok(respond(&ctx, StatusCode::OK, v))
}

fn distinguished(mb: &Mailbox, f: u64) -> bool {
    mb.folder(f).is_some_and(|x| x.well_known.is_some())
}

/// Removes a folder subtree and its messages for good.
fn purge_subtree(sim: &Sim, mb: &mut Mailbox, f: u64) -> u64 {
    let mut n = 0;
    for k in mb.subtree(f).into_iter().rev() {
        let keys: Vec<u64> = mb
            .msgs
            .get(&k)
            .map(|l| {
                l.iter()
                    .map(|(x, _)| u64::from_str_radix(x, 16).unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default();
        for key in keys {
            let seq = sim.next_seq();
            if mb.take_msg(key, seq).is_some() {
                n += 1;
            }
        }
        let seq = sim.next_seq();
        mb.folders.remove(&hkey(k), seq, "deleted");
        mb.msgs.remove(&k);
    }
    n
}

async fn delete_folder(
    State(sim): St,
    Path((id, fid)): Path<(String, String)>,
) -> GraphResult<StatusCode> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let f = folder_of(&mb, &fid)?;
    if distinguished(&mb, f) {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorDeleteDistinguishedFolder",
            "Distinguished folders cannot be deleted.",
        ));
    }
    if mb.is_below(f, F_DELETED) || mb.is_recoverable(f) {
        purge_subtree(&sim, &mut mb, f);
    } else {
        let seq = sim.next_seq();
        if let Some(folder) = mb.folders.get_mut(&hkey(f), seq) {
            folder.parent = F_DELETED;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn move_folder(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_json(&body)?;
    let dest = str_of(&body, "destinationId")
        .ok_or_else(|| GraphError::bad_request("destinationId is required."))?;
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let f = folder_of(&mb, &fid)?;
    let d = folder_of(&mb, &dest)?;
    if distinguished(&mb, f) {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorMoveDistinguishedFolder",
            "Distinguished folders cannot be moved.",
        ));
    }
    if mb.is_below(d, f) {
        return Err(GraphError::bad_request(
            "A folder cannot be moved into itself or one of its subfolders.",
        ));
    }
    let seq = sim.next_seq();
    if let Some(folder) = mb.folders.get_mut(&hkey(f), seq) {
        folder.parent = d;
    }
    let folder = mb.folder(f).ok_or_else(GraphError::outlook_not_found)?;
    let v = odata::entity(
        &ctx,
        &format!("users('{}')/mailFolders", mb.uid),
        mb.folder_json(folder),
        None,
    );
    Ok(respond(&ctx, StatusCode::CREATED, v))
}

fn delta_token(ctx: &GraphCtx) -> Option<String> {
    ctx.query
        .skiptoken
        .clone()
        .or_else(|| ctx.query.deltatoken.clone())
}

fn delta_page_size(ctx: &GraphCtx) -> usize {
    ctx.prefer.max_page_size.unwrap_or(10).clamp(1, 1000)
}

fn delta_links(
    ctx: &GraphCtx,
    body: &mut Map<String, Value>,
    next: Option<String>,
    delta: Option<String>,
) {
    let drop = ["$skiptoken", "$deltatoken"];
    if let Some(n) = next {
        body.insert(
            "@odata.nextLink".into(),
            json!(ctx.link_with(&ctx.path, &drop, &[("$skiptoken", n)])),
        );
    }
    if let Some(d) = delta {
        body.insert(
            "@odata.deltaLink".into(),
            json!(ctx.link_with(&ctx.path, &drop, &[("$deltatoken", d)])),
        );
    }
}

async fn folders_delta(
    State(sim): St,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mb = slot.read();
    let scope = format!("mail:{}:folders", mb.uid);
    let epoch = sim.delta_epoch();
    let now = sim.current_seq();
    let token = delta_token(&ctx);
    let cursor = mb
        .folders
        .cursor(&scope, epoch, now, token.as_deref(), TokenFlavor::Outlook)?;
    let page = mb
        .folders
        .page(&scope, epoch, cursor, now, delta_page_size(&ctx));
    let hidden = include_hidden(&ctx);
    let mut value = Vec::new();
    for (_, f) in &page.changed {
        if f.key == F_ROOT || mb.is_recoverable(f.key) || (!hidden && f.hidden) {
            continue;
        }
        value.push(odata::project(
            mb.folder_json(f),
            ctx.query.select.as_deref(),
            None,
        ));
    }
    for r in &page.removed {
        let key = u64::from_str_radix(&r.id, 16).unwrap_or(0);
        value.push(json!({
            "@odata.type": "#microsoft.graph.mailFolder",
            "id": mb.folder_id(key),
            "@removed": {"reason": r.reason},
        }));
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(ctx.context("Collection(mailFolder)")),
    );
    delta_links(&ctx, &mut body, page.next_token, page.delta_token);
    body.insert("value".into(), Value::Array(value));
    Ok(respond(&ctx, StatusCode::OK, Value::Object(body)))
}

// Messages --------------------------------------------------------------

fn message_list(
    sim: &Sim,
    ctx: &GraphCtx,
    mb: &Mailbox,
    folders: &[u64],
    fragment: &str,
) -> GraphResult<Value> {
    let v = view(ctx);
    let mut msgs: Vec<(u64, &Msg)> = folders
        .iter()
        .flat_map(|f| mb.folder_msgs(*f).map(move |m| (*f, m)))
        .collect();
    msgs.sort_by(|a, b| b.1.received.cmp(&a.1.received).then(b.1.key.cmp(&a.1.key)));
    // Only build the page's JSON when nothing needs the whole list.
    let needs_all = ctx.query.filter.is_some() || ctx.query.orderby.is_some() || ctx.query.count;
    let c = ctx_for_projection(ctx);
    if needs_all {
        let items: Vec<Value> = msgs
            .iter()
            .map(|(f, m)| mb.msg_json(sim, *f, m, &v))
            .collect();
        return odata::collection(&c, fragment, items, PageLimits::OUTLOOK, None);
    }
    // Cheap placeholders for the rest keep paging identical to `collection`.
    let offset = match &ctx.query.skiptoken {
        Some(t) => odata::decode_token(t)
            .and_then(|s| s.strip_prefix("o:").and_then(|n| n.parse().ok()))
            .ok_or_else(|| GraphError::bad_request("Invalid $skiptoken."))?,
        None => ctx.query.skip.unwrap_or(0),
    };
    let size = ctx.page_size(PageLimits::OUTLOOK.default, PageLimits::OUTLOOK.max);
    let items: Vec<Value> = msgs
        .iter()
        .enumerate()
        .map(|(i, (f, m))| {
            if i >= offset && i < offset + size {
                mb.msg_json(sim, *f, m, &v)
            } else {
                Value::Null
            }
        })
        .collect();
    odata::collection(&c, fragment, items, PageLimits::OUTLOOK, None)
}

fn visible_folders(mb: &Mailbox) -> Vec<u64> {
    mb.folders
        .values()
        .filter(|f| f.key != F_ROOT && !f.hidden && !mb.is_recoverable(f.key))
        .map(|f| f.key)
        .collect()
}

async fn list_all_messages(
    State(sim): St,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mb = slot.read();
    let folders = visible_folders(&mb);
    let v = message_list(
        &sim,
        &ctx,
        &mb,
        &folders,
        &format!("users('{}')/messages", mb.uid),
    )?;
    Ok(respond(&ctx, StatusCode::OK, v))
}

async fn list_folder_messages(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mb = slot.read();
    let f = folder_of(&mb, &fid)?;
    let v = message_list(
        &sim,
        &ctx,
        &mb,
        &[f],
        &format!("users('{}')/mailFolders('{fid}')/messages", mb.uid),
    )?;
    Ok(respond(&ctx, StatusCode::OK, v))
}

async fn list_child_folder_messages(
    state: St,
    ctx: GraphCtx,
    Path((id, _fid, cid)): Path<(String, String, String)>,
) -> GraphResult<Response> {
    list_folder_messages(state, ctx, Path((id, cid))).await
}

fn message_delta(sim: &Sim, ctx: &GraphCtx, id: &str, fid: &str) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(sim, id)?;
    let mb = slot.read();
    let f = folder_of(&mb, fid)?;
    let empty = DeltaLog::new();
    let log = mb.msgs.get(&f).unwrap_or(&empty);
    let scope = format!("mail:{}:{}", mb.uid, f);
    let epoch = sim.delta_epoch();
    let now = sim.current_seq();
    let token = delta_token(ctx);
    let cursor = log.cursor(&scope, epoch, now, token.as_deref(), TokenFlavor::Outlook)?;
    let since = match cursor {
        crate::delta::Cursor::Page { since, .. } => since,
        crate::delta::Cursor::Initial => None,
    };
    let page = log.page(&scope, epoch, cursor, now, delta_page_size(ctx));
    let change_type = ctx.query.param("changeType").map(str::to_ascii_lowercase);
    if let Some(ct) = &change_type
        && !matches!(ct.as_str(), "created" | "updated" | "deleted")
    {
        return Err(GraphError::bad_request(format!(
            "Invalid value '{ct}' for changeType."
        )));
    }
    let filter = ctx.query.parsed_filter()?;
    let v = view(ctx);
    let mut value = Vec::new();
    for (_, m) in &page.changed {
        let created = since.is_none_or(|s| m.created_seq > s);
        match change_type.as_deref() {
            Some("created") if !created => continue,
            Some("updated") if created => continue,
            Some("deleted") => continue,
            _ => {}
        }
        let mut j = mb.msg_json(sim, f, m, &v);
        if let Some(flt) = &filter
            && !flt.matches(&j)
        {
            continue;
        }
        if let Value::Object(o) = &mut j {
            o.insert("@odata.type".into(), json!("#microsoft.graph.message"));
        }
        let c = ctx_for_projection(ctx);
        value.push(odata::project(j, c.query.select.as_deref(), None));
    }
    if !matches!(change_type.as_deref(), Some("created" | "updated")) {
        for r in &page.removed {
            let key = u64::from_str_radix(&r.id, 16).unwrap_or(0);
            value.push(json!({
                "@odata.type": "#microsoft.graph.message",
                "id": mb.msg_id(key, f, ctx.prefer.immutable_id),
                "@removed": {"reason": r.reason},
            }));
        }
    }
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(ctx.context("Collection(message)")),
    );
    delta_links(ctx, &mut body, page.next_token, page.delta_token);
    body.insert("value".into(), Value::Array(value));
    Ok(respond(ctx, StatusCode::OK, Value::Object(body)))
}

async fn messages_delta(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
) -> GraphResult<Response> {
    message_delta(&sim, &ctx, &id, &fid)
}

async fn child_messages_delta(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, _fid, cid)): Path<(String, String, String)>,
) -> GraphResult<Response> {
    message_delta(&sim, &ctx, &id, &cid)
}

fn message_entity(sim: &Sim, ctx: &GraphCtx, mb: &Mailbox, key: u64) -> GraphResult<Value> {
    let (f, m) = mb.msg(key).ok_or_else(GraphError::outlook_not_found)?;
    let j = mb.msg_json(sim, f, m, &view(ctx));
    let c = ctx_for_projection(ctx);
    Ok(odata::entity(
        &c,
        &format!("users('{}')/messages", mb.uid),
        j,
        None,
    ))
}

async fn get_message(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, mid)): Path<(String, String)>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mb = slot.read();
    let key = msg_of(&mb, &mid)?;
    let v = message_entity(&sim, &ctx, &mb, key)?;
    Ok(respond(&ctx, StatusCode::OK, v))
}

async fn f_get_message(
    state: St,
    ctx: GraphCtx,
    Path((id, _fid, mid)): Path<(String, String, String)>,
) -> GraphResult<Response> {
    get_message(state, ctx, Path((id, mid))).await
}

async fn message_value(
    State(sim): St,
    Path((id, mid)): Path<(String, String)>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let bytes = {
        let mb = slot.read();
        let key = msg_of(&mb, &mid)?;
        let (_, m) = mb.msg(key).ok_or_else(GraphError::outlook_not_found)?;
        mime::render(&sim, &mb, m)
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain")],
        bytes,
    )
        .into_response())
}

async fn f_message_value(
    state: St,
    Path((id, _fid, mid)): Path<(String, String, String)>,
) -> GraphResult<Response> {
    message_value(state, Path((id, mid))).await
}

fn flag_of(v: &Value) -> Option<String> {
    v.get("flag")
        .and_then(|f| f.get("flagStatus"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn categories_of(v: &Value) -> GraphResult<Option<Vec<String>>> {
    match v.get("categories") {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        )),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(_) => Err(GraphError::bad_request(
            "Property 'categories' must be a collection of strings.",
        )),
    }
}

fn ext_props(v: &Value) -> Vec<(String, String)> {
    v.get("singleValueExtendedProperties")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((str_of(p, "id")?, str_of(p, "value")?)))
                .collect()
        })
        .unwrap_or_default()
}

fn ext_value<'a>(ext: &'a [(String, String)], tag: &str) -> Option<&'a str> {
    let norm = |s: &str| {
        s.to_ascii_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("0x0", "0x")
    };
    let want = norm(tag);
    ext.iter()
        .find(|(id, _)| norm(id) == want)
        .map(|(_, v)| v.as_str())
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn merge_ext(m: &mut Msg, ext: Vec<(String, String)>) {
    for (id, val) in ext {
        match m.ext.iter_mut().find(|(i, _)| i.eq_ignore_ascii_case(&id)) {
            Some(slot) => slot.1 = val,
            None => m.ext.push((id, val)),
        }
    }
}

fn apply_patch(m: &mut Msg, v: &Value) -> GraphResult<()> {
    if let Some(b) = v.get("isRead").and_then(Value::as_bool) {
        m.is_read = b;
    }
    if let Some(f) = flag_of(v) {
        if !matches!(f.as_str(), "notFlagged" | "flagged" | "complete") {
            return Err(GraphError::bad_request(format!(
                "Invalid flagStatus '{f}'."
            )));
        }
        m.flag = f;
    }
    if let Some(c) = categories_of(v)? {
        m.categories = c;
    }
    if let Some(s) = str_of(v, "subject") {
        m.subject = s;
    }
    if let Some(i) = str_of(v, "importance") {
        let i = i.to_ascii_lowercase();
        if !matches!(i.as_str(), "low" | "normal" | "high") {
            return Err(GraphError::bad_request(format!(
                "Invalid importance '{i}'."
            )));
        }
        m.importance = i;
    }
    if let Some(c) = str_of(v, "inferenceClassification") {
        m.focused = c.eq_ignore_ascii_case("focused");
    }
    if let Some(b) = v.get("body") {
        let html = str_of(b, "contentType").is_none_or(|c| c.eq_ignore_ascii_case("html"));
        m.body = Body::Given {
            html,
            content: str_of(b, "content").unwrap_or_default(),
        };
        m.raw = None;
    }
    if let Some(r) = recipients(v, "toRecipients")? {
        m.to = r;
    }
    if let Some(r) = recipients(v, "ccRecipients")? {
        m.cc = r;
    }
    if let Some(r) = recipients(v, "bccRecipients")? {
        m.bcc = r;
    }
    if let Some(r) = recipients(v, "replyTo")? {
        m.reply_to = r;
    }
    if let Some(f) = v.get("from").filter(|x| !x.is_null()) {
        m.from = recipient(f)?;
    }
    if let Some(f) = v.get("sender").filter(|x| !x.is_null()) {
        m.sender = recipient(f)?;
    }
    if let Some(b) = v.get("isReadReceiptRequested").and_then(Value::as_bool) {
        m.read_receipt = b;
    }
    merge_ext(m, ext_props(v));
    Ok(())
}

async fn patch_message(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_json(&body)?;
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let key = msg_of(&mb, &mid)?;
    // Validate on a copy, so a bad request changes nothing.
    let mut copy = mb
        .msg(key)
        .map(|(_, m)| m.clone())
        .ok_or_else(GraphError::outlook_not_found)?;
    apply_patch(&mut copy, &body)?;
    copy.touch(sim.now());
    let seq = sim.next_seq();
    if let Some(m) = mb.msg_mut(key, seq) {
        *m = copy;
    }
    let v = message_entity(&sim, &ctx, &mb, key)?;
    Ok(respond(&ctx, StatusCode::OK, v))
}

async fn f_patch_message(
    state: St,
    ctx: GraphCtx,
    Path((id, _fid, mid)): Path<(String, String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    patch_message(state, ctx, Path((id, mid)), body).await
}

async fn delete_message(
    State(sim): St,
    Path((id, mid)): Path<(String, String)>,
) -> GraphResult<StatusCode> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let key = msg_of(&mb, &mid)?;
    let folder = mb.loc.get(&key).copied().unwrap_or(0);
    let seq = sim.next_seq();
    if mb.is_recoverable(folder) {
        mb.take_msg(key, seq);
    } else {
        let now = sim.now();
        mb.move_msg(key, F_RI_DELETIONS, seq, now);
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn f_delete_message(
    state: St,
    Path((id, _fid, mid)): Path<(String, String, String)>,
) -> GraphResult<StatusCode> {
    delete_message(state, Path((id, mid))).await
}

async fn permanent_delete(
    State(sim): St,
    Path((id, mid)): Path<(String, String)>,
) -> GraphResult<StatusCode> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let key = msg_of(&mb, &mid)?;
    let folder = mb.loc.get(&key).copied().unwrap_or(0);
    let seq = sim.next_seq();
    if folder == F_RI_PURGES {
        mb.take_msg(key, seq);
    } else {
        let now = sim.now();
        mb.move_msg(key, F_RI_PURGES, seq, now);
    }
    Ok(StatusCode::NO_CONTENT)
}

fn destination(mb: &Mailbox, body: &Bytes) -> GraphResult<u64> {
    let body = parse_json(body)?;
    let dest = str_of(&body, "destinationId")
        .or_else(|| str_of(&body, "DestinationId"))
        .ok_or_else(|| GraphError::bad_request("destinationId is required."))?;
    mb.resolve_folder(&dest)
        .filter(|f| *f != F_RECOVERABLE)
        .ok_or_else(GraphError::outlook_not_found)
}

async fn move_message(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let key = msg_of(&mb, &mid)?;
    let dest = destination(&mb, &body)?;
    if mb.loc.get(&key) != Some(&dest) {
        let seq = sim.next_seq();
        let now = sim.now();
        mb.move_msg(key, dest, seq, now);
    }
    let v = message_entity(&sim, &ctx, &mb, key)?;
    Ok(respond(&ctx, StatusCode::CREATED, v))
}

async fn copy_message(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let key = msg_of(&mb, &mid)?;
    let dest = destination(&mb, &body)?;
    let mut copy = mb
        .msg(key)
        .map(|(_, m)| m.clone())
        .ok_or_else(GraphError::outlook_not_found)?;
    let seq = sim.next_seq();
    let now = sim.now();
    copy.key = mb.alloc_key();
    copy.created_seq = seq;
    copy.created = now;
    copy.modified = now;
    copy.change = 0;
    let new_key = copy.key;
    mb.insert_msg(dest, copy, seq);
    let v = message_entity(&sim, &ctx, &mb, new_key)?;
    Ok(respond(&ctx, StatusCode::CREATED, v))
}

fn new_imid(sim: &Sim, seq: u64) -> String {
    let g = crate::rng::stable_guid(sim.seed(), &["mail", "new-imid", &seq.to_string()]);
    let hex = g.simple().to_string().to_ascii_uppercase();
    format!("<{}@{}.namprd07.prod.outlook.com>", &hex[..24], &hex[..12])
}

fn conv_for(sim: &Sim, label: &str, at: DateTime<Utc>) -> (String, Vec<u8>) {
    let g = crate::rng::stable_guid(sim.seed(), &["mail", "conv", label]);
    let mut id = vec![0x00, 0x03, 0x24, 0x10];
    id.extend_from_slice(g.as_bytes());
    let mut idx = vec![0x01];
    let ft = (at.timestamp().max(0) as u64 + 11_644_473_600) * 10_000_000;
    idx.extend_from_slice(&ft.to_be_bytes()[..5]);
    idx.extend_from_slice(g.as_bytes());
    (base64::engine::general_purpose::URL_SAFE.encode(&id), idx)
}

fn blank_msg(sim: &Sim, mb: &Mailbox, seq: u64, now: DateTime<Utc>) -> Msg {
    let conv = conv_for(sim, &format!("new:{}:{seq}", mb.uid), now);
    Msg {
        key: 0,
        created_seq: seq,
        subject: String::new(),
        from: mb.owner.clone(),
        sender: mb.owner.clone(),
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        reply_to: Vec::new(),
        internet_message_id: new_imid(sim, seq),
        in_reply_to: None,
        references: Vec::new(),
        conversation_id: conv.0,
        conversation_index: conv.1,
        thread_topic: String::new(),
        created: now,
        modified: now,
        received: now,
        sent: Some(now),
        is_read: true,
        is_draft: true,
        flag: "notFlagged".into(),
        categories: Vec::new(),
        importance: "normal".into(),
        focused: true,
        read_receipt: false,
        body: Body::Given {
            html: false,
            content: String::new(),
        },
        atts: Vec::new(),
        next_att: 1,
        delivery: None,
        raw: None,
        ext: Vec::new(),
        change: 0,
    }
}

/// An attached Outlook item (a message), kept as its MIME (`message/rfc822`).
fn item_attachment(
    sim: &Sim,
    mb: &Mailbox,
    v: &Value,
    key: u64,
    now: DateTime<Utc>,
) -> GraphResult<Att> {
    let item = v
        .get("item")
        .filter(|i| i.is_object())
        .ok_or_else(|| GraphError::bad_request("An itemAttachment needs an item."))?;
    let t = str_of(item, "@odata.type").unwrap_or_else(|| "#microsoft.graph.message".into());
    if !t.to_ascii_lowercase().ends_with("message") {
        return Err(GraphError::bad_request(
            "Only messages can be attached as items here.",
        ));
    }
    let seq = sim.current_seq();
    let mut m = msg_from_json(sim, mb, item, seq)?;
    m.key = u64::MAX - key;
    let bytes = mime::render(sim, mb, &m);
    let name = str_of(v, "name").unwrap_or_else(|| m.subject.clone());
    Ok(Att {
        key,
        name,
        content_type: ITEM_CT.into(),
        size: bytes.len() as u64,
        inline: v.get("isInline").and_then(Value::as_bool).unwrap_or(false),
        content_id: None,
        modified: now,
        data: AttData::Bytes(Arc::new(bytes)),
    })
}

/// Content type that marks an item attachment.
pub(crate) const ITEM_CT: &str = "message/rfc822";

fn file_attachment(v: &Value, key: u64, now: DateTime<Utc>) -> GraphResult<Att> {
    let t = str_of(v, "@odata.type").unwrap_or_default();
    if !t.to_ascii_lowercase().ends_with("fileattachment") {
        return Err(GraphError::bad_request(
            "Only #microsoft.graph.fileAttachment attachments are supported here.",
        ));
    }
    let name = str_of(v, "name")
        .ok_or_else(|| GraphError::bad_request("The attachment name is required."))?;
    let bytes = STANDARD
        .decode(str_of(v, "contentBytes").unwrap_or_default())
        .map_err(|_| GraphError::bad_request("contentBytes is not valid base64."))?;
    Ok(Att {
        key,
        name,
        content_type: str_of(v, "contentType").unwrap_or_else(|| "application/octet-stream".into()),
        size: bytes.len() as u64,
        inline: v.get("isInline").and_then(Value::as_bool).unwrap_or(false),
        content_id: str_of(v, "contentId"),
        modified: now,
        data: AttData::Bytes(Arc::new(bytes)),
    })
}

fn is_text_plain(ctx: &GraphCtx) -> bool {
    ctx.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/plain"))
}

fn msg_from_mime(sim: &Sim, mb: &Mailbox, body: &Bytes, seq: u64) -> GraphResult<Msg> {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let raw = STANDARD.decode(text.as_bytes()).map_err(|_| {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.",
        )
    })?;
    let p = mime::parse(&raw).ok_or_else(|| {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentConversionFailed",
            "The MIME content could not be converted.",
        )
    })?;
    let now = sim.now();
    let mut m = blank_msg(sim, mb, seq, now);
    m.subject = p.subject.clone();
    m.thread_topic = p.subject.trim_start_matches("RE: ").to_string();
    if let Some(f) = p.from {
        m.sender = p.sender.unwrap_or_else(|| f.clone());
        m.from = f;
    }
    m.to = p.to;
    m.cc = p.cc;
    m.bcc = p.bcc;
    m.reply_to = p.reply_to;
    if let Some(id) = p.message_id {
        m.internet_message_id = id;
    }
    m.in_reply_to = p.in_reply_to;
    m.references = p.references;
    m.sent = Some(p.date.unwrap_or(now));
    m.importance = p.importance.unwrap_or_else(|| "normal".into());
    m.body = match (p.html, p.text) {
        (Some(h), _) => Body::Given {
            html: true,
            content: h,
        },
        (None, Some(t)) => Body::Given {
            html: false,
            content: t,
        },
        (None, None) => Body::Given {
            html: false,
            content: String::new(),
        },
    };
    for a in p.attachments {
        let key = m.next_att;
        m.next_att += 1;
        m.atts.push(Att {
            key,
            name: a.name,
            content_type: a.content_type,
            size: a.bytes.len() as u64,
            inline: a.inline,
            content_id: a.content_id,
            modified: now,
            data: AttData::Bytes(Arc::new(a.bytes)),
        });
    }
    m.raw = Some(Arc::new(raw));
    // Graph: a message created from MIME is a draft.
    m.is_draft = true;
    Ok(m)
}

fn msg_from_json(sim: &Sim, mb: &Mailbox, v: &Value, seq: u64) -> GraphResult<Msg> {
    let now = sim.now();
    let mut m = blank_msg(sim, mb, seq, now);
    apply_patch(&mut m, v)?;
    m.thread_topic = m.subject.clone();
    if let Some(id) = str_of(v, "internetMessageId") {
        m.internet_message_id = id;
    }
    if let Some(atts) = v.get("attachments").and_then(Value::as_array) {
        for a in atts {
            let key = m.next_att;
            m.next_att += 1;
            m.atts.push(file_attachment(a, key, now)?);
        }
    }
    // PR_MESSAGE_FLAGS without MSGFLAG_UNSENT (8) makes a sent/received message.
    if let Some(flags) =
        ext_value(&m.ext, "Integer 0x0E07").and_then(|s| s.trim().parse::<i64>().ok())
    {
        m.is_draft = flags & 8 != 0;
        m.is_read = flags & 1 != 0;
    }
    if let Some(t) = ext_value(&m.ext, "SystemTime 0x0039").and_then(parse_time) {
        m.sent = Some(t);
    }
    if let Some(t) = ext_value(&m.ext, "SystemTime 0x0E06").and_then(parse_time) {
        m.received = t;
    }
    if !m.is_draft && ext_value(&m.ext, "SystemTime 0x0E06").is_none() {
        m.received = m.sent.unwrap_or(now);
    }
    if let Some(b) = v.get("isRead").and_then(Value::as_bool) {
        m.is_read = b;
    }
    Ok(m)
}

fn create_in(
    sim: &Sim,
    ctx: &GraphCtx,
    id: &str,
    folder: Option<&str>,
    body: &Bytes,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(sim, id)?;
    let mut mb = slot.write();
    let f = match folder {
        Some(fid) => folder_of(&mb, fid)?,
        None => F_DRAFTS,
    };
    let seq = sim.next_seq();
    let mut m = if is_text_plain(ctx) {
        msg_from_mime(sim, &mb, body, seq)?
    } else {
        msg_from_json(sim, &mb, &parse_json(body)?, seq)?
    };
    m.key = mb.alloc_key();
    let key = m.key;
    mb.insert_msg(f, m, seq);
    let v = message_entity(sim, ctx, &mb, key)?;
    Ok(respond(ctx, StatusCode::CREATED, v))
}

async fn create_message(
    State(sim): St,
    ctx: GraphCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> GraphResult<Response> {
    create_in(&sim, &ctx, &id, None, &body)
}

async fn create_folder_message(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, fid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    create_in(&sim, &ctx, &id, Some(&fid), &body)
}

// Attachments -----------------------------------------------------------

async fn list_attachments(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, mid)): Path<(String, String)>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mb = slot.read();
    let key = msg_of(&mb, &mid)?;
    let (_, m) = mb.msg(key).ok_or_else(GraphError::outlook_not_found)?;
    let with_bytes = ctx
        .query
        .select
        .as_ref()
        .is_none_or(|s| s.iter().any(|x| x.eq_ignore_ascii_case("contentBytes")));
    let items: Vec<Value> = m
        .atts
        .iter()
        .map(|a| mb.att_json(&sim, key, a, with_bytes))
        .collect();
    let v = odata::collection(
        &ctx,
        &format!("users('{}')/messages('{mid}')/attachments", mb.uid),
        items,
        PageLimits::OUTLOOK,
        None,
    )?;
    Ok(respond(&ctx, StatusCode::OK, v))
}

async fn f_list_attachments(
    state: St,
    ctx: GraphCtx,
    Path((id, _fid, mid)): Path<(String, String, String)>,
) -> GraphResult<Response> {
    list_attachments(state, ctx, Path((id, mid))).await
}

fn find_att<'a>(mb: &Mailbox, m: &'a Msg, key: u64, aid: &str) -> GraphResult<&'a Att> {
    let a = mb
        .resolve_att(key, aid)
        .ok_or_else(GraphError::outlook_not_found)?;
    m.atts
        .iter()
        .find(|x| x.key == a)
        .ok_or_else(GraphError::outlook_not_found)
}

async fn get_attachment(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, mid, aid)): Path<(String, String, String)>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mb = slot.read();
    let key = msg_of(&mb, &mid)?;
    let (_, m) = mb.msg(key).ok_or_else(GraphError::outlook_not_found)?;
    let a = find_att(&mb, m, key, &aid)?;
    let with_bytes = ctx
        .query
        .select
        .as_ref()
        .is_none_or(|s| s.iter().any(|x| x.eq_ignore_ascii_case("contentBytes")));
    let v = odata::entity(
        &ctx,
        &format!("users('{}')/messages('{mid}')/attachments", mb.uid),
        mb.att_json(&sim, key, a, with_bytes),
        None,
    );
    Ok(respond(&ctx, StatusCode::OK, v))
}

async fn attachment_value(
    State(sim): St,
    Path((id, mid, aid)): Path<(String, String, String)>,
) -> GraphResult<Response> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let (bytes, ct) = {
        let mb = slot.read();
        let key = msg_of(&mb, &mid)?;
        let (_, m) = mb.msg(key).ok_or_else(GraphError::outlook_not_found)?;
        let a = find_att(&mb, m, key, &aid)?;
        (mime::att_bytes(&sim, a), a.content_type.clone())
    };
    let ct = HeaderValue::from_str(&ct)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, ct)],
        bytes.as_ref().clone(),
    )
        .into_response())
}

async fn add_attachment(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_json(&body)?;
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let key = msg_of(&mb, &mid)?;
    let now = sim.now();
    let next = mb
        .msg(key)
        .map(|(_, m)| m.next_att)
        .ok_or_else(GraphError::outlook_not_found)?;
    let is_item = str_of(&body, "@odata.type")
        .is_some_and(|t| t.to_ascii_lowercase().ends_with("itemattachment"));
    let att = if is_item {
        item_attachment(&sim, &mb, &body, next, now)?
    } else {
        file_attachment(&body, next, now)?
    };
    if att.size > 3 * 1024 * 1024 {
        return Err(GraphError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ErrorAttachmentSizeLimitExceeded",
            "Attachments of 3 MB or more must be uploaded with createUploadSession.",
        ));
    }
    let seq = sim.next_seq();
    if let Some(m) = mb.msg_mut(key, seq) {
        m.next_att += 1;
        m.atts.push(att.clone());
        m.raw = None;
        m.touch(now);
    }
    let v = odata::entity(
        &ctx,
        &format!("users('{}')/messages('{mid}')/attachments", mb.uid),
        mb.att_json(&sim, key, &att, true),
        None,
    );
    Ok(respond(&ctx, StatusCode::CREATED, v))
}

async fn delete_attachment(
    State(sim): St,
    Path((id, mid, aid)): Path<(String, String, String)>,
) -> GraphResult<StatusCode> {
    let slot = sim.mail.mailbox(&sim, &id)?;
    let mut mb = slot.write();
    let key = msg_of(&mb, &mid)?;
    let a = {
        let (_, m) = mb.msg(key).ok_or_else(GraphError::outlook_not_found)?;
        find_att(&mb, m, key, &aid)?.key
    };
    let seq = sim.next_seq();
    let now = sim.now();
    if let Some(m) = mb.msg_mut(key, seq) {
        m.atts.retain(|x| x.key != a);
        m.raw = None;
        m.touch(now);
    }
    Ok(StatusCode::NO_CONTENT)
}

const MAX_UPLOAD: u64 = 150 * 1024 * 1024;
const MAX_CHUNK: usize = 4 * 1024 * 1024;

async fn create_upload_session(
    State(sim): St,
    ctx: GraphCtx,
    Path((id, mid)): Path<(String, String)>,
    body: Bytes,
) -> GraphResult<Response> {
    let body = parse_json(&body)?;
    let item = body
        .get("AttachmentItem")
        .or_else(|| body.get("attachmentItem"))
        .ok_or_else(|| GraphError::bad_request("AttachmentItem is required."))?;
    let kind = str_of(item, "attachmentType").unwrap_or_else(|| "file".into());
    if !kind.eq_ignore_ascii_case("file") {
        return Err(GraphError::bad_request(
            "Only attachmentType 'file' can be uploaded in a session.",
        ));
    }
    let name = str_of(item, "name")
        .ok_or_else(|| GraphError::bad_request("AttachmentItem.name is required."))?;
    let size = item
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| GraphError::bad_request("AttachmentItem.size is required."))?;
    if size == 0 || size > MAX_UPLOAD {
        return Err(GraphError::bad_request(format!(
            "The attachment size {size} is outside the allowed range (1 byte to 150 MB)."
        )));
    }
    let slot = sim.mail.mailbox(&sim, &id)?;
    let (uid, key, imm) = {
        let mb = slot.read();
        let key = msg_of(&mb, &mid)?;
        (mb.uid.clone(), key, mb.immutable_id(key))
    };
    let seq = sim.next_seq();
    let sid = odata::encode_token(&format!("us:{uid}:{key}:{seq}"));
    let expires = sim.now() + chrono::Duration::hours(6);
    sim.mail.sessions.lock().insert(
        sid.clone(),
        UploadSession {
            uid: uid.clone(),
            msg_key: key,
            name,
            content_type: str_of(item, "contentType")
                .unwrap_or_else(|| "application/octet-stream".into()),
            size,
            inline: item
                .get("isInline")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            content_id: str_of(item, "contentId"),
            data: Vec::new(),
            expires,
        },
    );
    let url = format!(
        "{}/api/v2.0/Users('{}@{}')/Messages('{}')/AttachmentSessions('{}')?authtoken={}",
        ctx.origin,
        odata::encode(&uid),
        sim.cfg.tenant_id,
        odata::encode(&imm),
        sid,
        sim.sign(&sid)
    );
    let v = json!({
        "@odata.context": format!("{}/$metadata#microsoft.graph.uploadSession", ctx.base),
        "uploadUrl": url,
        "expirationDateTime": graph_time(expires),
        "nextExpectedRanges": ["0-"],
    });
    Ok(respond(&ctx, StatusCode::CREATED, v))
}

fn outlook_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn session_auth(sim: &Sim, sid: &str, query: Option<&str>) -> bool {
    let token = query.and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("authtoken"))
            .map(|(_, v)| v.to_string())
    });
    token.is_some_and(|t| t == sim.sign(sid))
}

fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let v = v.trim().strip_prefix("bytes")?.trim();
    let (range, total) = v.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((
        a.trim().parse().ok()?,
        b.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

async fn upload_chunk(
    State(sim): St,
    Path((_u, _m, sid)): Path<(String, String, String)>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    if !session_auth(&sim, &sid, uri.query()) {
        return outlook_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The authentication token in the upload URL is missing or invalid.",
        );
    }
    let mut sessions = sim.mail.sessions.lock();
    let Some(s) = sessions.get_mut(&sid) else {
        return outlook_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The upload session was not found or has expired.",
        );
    };
    if s.expires < sim.now() {
        sessions.remove(&sid);
        return outlook_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The upload session was not found or has expired.",
        );
    }
    let Some((start, end, total)) = headers
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_content_range)
    else {
        return outlook_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "The Content-Range header is missing or malformed.",
        );
    };
    if total != s.size {
        return outlook_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "The total size in Content-Range does not match the size of the upload session.",
        );
    }
    if end < start || end >= total || (end - start + 1) as usize != body.len() {
        return outlook_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "The Content-Range does not match the length of the request body.",
        );
    }
    if body.len() > MAX_CHUNK {
        return outlook_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "A chunk can be at most 4 MB.",
        );
    }
    if start != s.data.len() as u64 {
        let next = s.data.len();
        let mut r = (
            StatusCode::RANGE_NOT_SATISFIABLE,
            axum::Json(json!({
                "error": {"code": "ErrorInvalidRange",
                          "message": format!("The uploaded range must start at byte {next}.")},
                "NextExpectedRanges": [format!("{next}")],
            })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        r.headers_mut().remove(header::CONTENT_LENGTH);
        return r;
    }
    s.data.extend_from_slice(&body);
    if (s.data.len() as u64) < s.size {
        let v = json!({
            "@odata.context": format!("{}/api/v2.0/$metadata#Users('{}')/Messages('{}')/AttachmentSessions/$entity", "https://outlook.office.com", s.uid, s.msg_key),
            "ExpirationDateTime": graph_time(s.expires),
            "NextExpectedRanges": [format!("{}", s.data.len())],
        });
        return (StatusCode::OK, axum::Json(v)).into_response();
    }
    let Some(s) = sessions.remove(&sid) else {
        return outlook_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The upload session was not found.",
        );
    };
    drop(sessions);
    let Ok(slot) = sim.mail.mailbox(&sim, &s.uid) else {
        return outlook_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The message no longer exists.",
        );
    };
    let mut mb = slot.write();
    let now = sim.now();
    let seq = sim.next_seq();
    let Some(m) = mb.msg_mut(s.msg_key, seq) else {
        return outlook_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The message no longer exists.",
        );
    };
    let akey = m.next_att;
    m.next_att += 1;
    m.atts.push(Att {
        key: akey,
        name: s.name,
        content_type: s.content_type,
        size: s.data.len() as u64,
        inline: s.inline,
        content_id: s.content_id,
        modified: now,
        data: AttData::Bytes(Arc::new(s.data)),
    });
    m.raw = None;
    m.touch(now);
    let location = format!(
        "https://outlook.office.com/api/v2.0/Users('{}')/Messages('{}')/Attachments('{}')",
        mb.uid,
        mb.immutable_id(s.msg_key),
        mb.att_id(s.msg_key, akey)
    );
    let mut r = StatusCode::CREATED.into_response();
    if let Ok(h) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    r
}

async fn delete_upload_session(
    State(sim): St,
    Path((_u, _m, sid)): Path<(String, String, String)>,
    uri: axum::http::Uri,
) -> Response {
    if !session_auth(&sim, &sid, uri.query()) {
        return outlook_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The authentication token in the upload URL is missing or invalid.",
        );
    }
    match sim.mail.sessions.lock().remove(&sid) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => outlook_error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The upload session was not found or has expired.",
        ),
    }
}

#[allow(dead_code)]
fn _folder_unused(_: &Folder) {}
