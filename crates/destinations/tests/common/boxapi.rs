//! An imitation of Box's upload API, as documented, with its validation:
//! bearer token (401 otherwise), folders (`POST /folders`, 409 with the
//! existing folder on a name clash), direct uploads (`POST
//! /files/content`, multipart form with `attributes` before `file`; 409
//! `item_name_in_use` naming the existing file; new versions through `POST
//! /files/{id}/content`) and chunked upload sessions (at least 20,000,000
//! bytes; parts of exactly `part_size` bytes except the last, at offsets
//! that are multiples of it, `Content-Range` and `Digest: sha=` checked;
//! commit with the exact part list and the whole file's SHA-1; `DELETE` to
//! abort). The API lives under `/2.0`, uploads under `/upload/2.0`.
// Handlers answer early with a ready axum `Response` as the error value;
// its size does not matter in a test server.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use base64::Engine;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

pub const ROOT: &str = "0";
pub const EXPORTS: &str = "100";
/// Box's documented minimum for chunked uploads.
pub const CHUNKED_MIN: u64 = 20_000_000;

#[derive(Clone, Debug)]
pub struct BoxFile {
    pub id: String,
    pub name: String,
    pub parent: String,
    /// Every version's bytes, oldest first.
    pub versions: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub struct Session {
    pub folder: String,
    pub name: String,
    /// Set when the session makes a new version of an existing file.
    pub file_id: Option<String>,
    pub size: u64,
    /// Parts by offset: (part id, bytes, hex sha1).
    pub parts: BTreeMap<u64, (String, Vec<u8>, String)>,
}

#[derive(Default)]
pub struct BoxState {
    pub token: String,
    pub part_size: u64,
    next_id: u64,
    /// id → (parent, name)
    pub folders: HashMap<String, (String, String)>,
    pub files: HashMap<String, BoxFile>,
    pub sessions: HashMap<String, Session>,
    /// Answer the next this-many requests with 429 and `Retry-After: 1`.
    pub throttle: u32,
    /// Answer the first commit with 202 (parts still processing).
    pub commit_busy: bool,
    /// Refuse the part at this offset with 500 on every attempt.
    pub fail_part_at: Option<u64>,
    pub requests: u32,
    pub throttled: u32,
    pub deleted_sessions: u32,
}

impl BoxState {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("{}", 900_000 + self.next_id)
    }

    pub fn file_in(&self, folder: &str, name: &str) -> Option<&BoxFile> {
        self.files
            .values()
            .find(|f| f.parent == folder && f.name == name)
    }

    pub fn folder_in(&self, parent: &str, name: &str) -> Option<String> {
        self.folders
            .iter()
            .find(|(_, (p, n))| p == parent && n == name)
            .map(|(id, _)| id.clone())
    }
}

pub type Shared = Arc<Mutex<BoxState>>;

pub struct BoxServer {
    pub state: Shared,
    pub base: String,
    _task: tokio::task::JoinHandle<()>,
}

impl BoxServer {
    pub fn target(&self, folder_id: &str) -> destinations::Target {
        destinations::Target::Box {
            folder_id: folder_id.to_string(),
            endpoint: Some(format!("{}/2.0", self.base)),
            upload_endpoint: Some(format!("{}/upload/2.0", self.base)),
        }
    }
}

pub async fn start(token: &str, part_size: u64) -> BoxServer {
    let mut st = BoxState {
        token: token.to_string(),
        part_size,
        ..Default::default()
    };
    st.folders
        .insert(ROOT.to_string(), (String::new(), "All Files".to_string()));
    st.folders.insert(
        EXPORTS.to_string(),
        (ROOT.to_string(), "Exports".to_string()),
    );
    let state: Shared = Arc::new(Mutex::new(st));
    let app = Router::new()
        .route("/2.0/folders", post(create_folder))
        .route("/upload/2.0/files/content", post(upload_new))
        .route("/upload/2.0/files/{id}/content", post(upload_version))
        .route("/upload/2.0/files/upload_sessions", post(session_new))
        .route(
            "/upload/2.0/files/{id}/upload_sessions",
            post(session_version),
        )
        .route(
            "/upload/2.0/files/upload_sessions/{id}",
            put(session_part).delete(session_delete),
        )
        .route(
            "/upload/2.0/files/upload_sessions/{id}/commit",
            post(session_commit),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    BoxServer {
        state,
        base,
        _task: task,
    }
}

fn error(status: StatusCode, code: &str, message: &str, context: Option<Value>) -> Response {
    let mut body = json!({
        "type": "error", "status": status.as_u16(), "code": code, "message": message,
    });
    if let Some(c) = context {
        body["context_info"] = c;
    }
    (status, axum::Json(body)).into_response()
}

/// Checks the token and the throttle; `Err` is the answer to give.
fn gate(st: &mut BoxState, headers: &HeaderMap) -> Result<(), Response> {
    st.requests += 1;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", st.token) {
        // Box answers 401 with an empty body and a WWW-Authenticate header.
        return Err((
            StatusCode::UNAUTHORIZED,
            [(
                "www-authenticate",
                "Bearer realm=\"Service\", error=\"invalid_token\"",
            )],
        )
            .into_response());
    }
    if st.throttle > 0 {
        st.throttle -= 1;
        st.throttled += 1;
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({"type":"error","status":429,"code":"rate_limit_exceeded","message":"Request rate limit exceeded"})),
        )
            .into_response());
    }
    Ok(())
}

fn file_json(f: &BoxFile) -> Value {
    let data = f.versions.last().cloned().unwrap_or_default();
    json!({
        "type": "file", "id": f.id, "name": f.name, "size": data.len(),
        "sha1": hex::encode(Sha1::digest(&data)),
        "parent": {"type": "folder", "id": f.parent},
    })
}

fn entries(f: &BoxFile) -> Response {
    (
        StatusCode::CREATED,
        axum::Json(json!({"total_count": 1, "entries": [file_json(f)]})),
    )
        .into_response()
}

async fn create_folder(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = s.lock().unwrap();
    if let Err(r) = gate(&mut st, &headers) {
        return r;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "invalid JSON", None);
    };
    let (Some(name), Some(parent)) = (v["name"].as_str(), v["parent"]["id"].as_str()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "name and parent.id required",
            None,
        );
    };
    if !st.folders.contains_key(parent) {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "parent folder not found",
            None,
        );
    }
    if let Some(existing) = st.folder_in(parent, name) {
        return error(
            StatusCode::CONFLICT,
            "item_name_in_use",
            "Item with the same name already exists",
            Some(json!({"conflicts": [{"type": "folder", "id": existing, "name": name}]})),
        );
    }
    let id = st.id();
    st.folders
        .insert(id.clone(), (parent.to_string(), name.to_string()));
    (
        StatusCode::CREATED,
        axum::Json(json!({"type": "folder", "id": id, "name": name})),
    )
        .into_response()
}

/// Splits a multipart form body into (name, bytes) parts, in order.
fn form_parts(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Response> {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, "bad_request", m, None);
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(boundary) = ct
        .strip_prefix("multipart/form-data; boundary=")
        .map(|b| b.trim_matches('"').to_string())
    else {
        return Err(bad("expected multipart/form-data"));
    };
    let delim = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let Some(mut at) = find(body, &delim, 0) else {
        return Err(bad("no boundary"));
    };
    loop {
        at += delim.len();
        if body[at..].starts_with(b"--") {
            break;
        }
        let head_end = find(body, b"\r\n\r\n", at).ok_or_else(|| bad("part without headers"))?;
        let head = String::from_utf8_lossy(&body[at..head_end]).to_string();
        let name = head
            .split("name=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_string();
        let mut end_delim = b"\r\n".to_vec();
        end_delim.extend_from_slice(&delim);
        let next = find(body, &end_delim, head_end + 4).ok_or_else(|| bad("unterminated part"))?;
        parts.push((name, body[head_end + 4..next].to_vec()));
        at = next + 2;
    }
    Ok(parts)
}

/// (attributes, file bytes) of an upload form, attributes first as Box
/// requires.
fn upload_form(headers: &HeaderMap, body: &[u8]) -> Result<(Value, Vec<u8>), Response> {
    let parts = form_parts(headers, body)?;
    match parts.as_slice() {
        [(a, attrs), (f, data)] if a == "attributes" && f == "file" => {
            let attrs = serde_json::from_slice(attrs).map_err(|_| {
                error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "attributes are not JSON",
                    None,
                )
            })?;
            Ok((attrs, data.clone()))
        }
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected the attributes part, then the file part",
            None,
        )),
    }
}

fn conflict(existing: &BoxFile) -> Response {
    error(
        StatusCode::CONFLICT,
        "item_name_in_use",
        "Item with the same name already exists",
        Some(json!({"conflicts": {"type": "file", "id": existing.id, "name": existing.name}})),
    )
}

async fn upload_new(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = s.lock().unwrap();
    if let Err(r) = gate(&mut st, &headers) {
        return r;
    }
    let (attrs, data) = match upload_form(&headers, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (Some(name), Some(parent)) = (attrs["name"].as_str(), attrs["parent"]["id"].as_str())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "name and parent.id required",
            None,
        );
    };
    if !st.folders.contains_key(parent) {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "parent folder not found",
            None,
        );
    }
    if let Some(existing) = st.file_in(parent, name) {
        return conflict(existing);
    }
    let id = st.id();
    let f = BoxFile {
        id: id.clone(),
        name: name.to_string(),
        parent: parent.to_string(),
        versions: vec![data],
    };
    st.files.insert(id, f.clone());
    entries(&f)
}

async fn upload_version(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.lock().unwrap();
    if let Err(r) = gate(&mut st, &headers) {
        return r;
    }
    let (_, data) = match upload_form(&headers, &body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(f) = st.files.get_mut(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "file not found", None);
    };
    f.versions.push(data);
    let f = f.clone();
    entries(&f)
}

fn session_json(id: &str, st: &BoxState, size: u64) -> Response {
    let total_parts = size.div_ceil(st.part_size);
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "type": "upload_session", "id": id, "part_size": st.part_size,
            "total_parts": total_parts, "num_parts_processed": 0,
            "session_expires_at": "2099-01-01T00:00:00Z",
        })),
    )
        .into_response()
}

fn check_session_size(size: Option<u64>) -> Result<u64, Response> {
    match size {
        Some(s) if s >= CHUNKED_MIN => Ok(s),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "file_size_too_small",
            "File size is less than minimum allowed for this API",
            None,
        )),
    }
}

async fn session_new(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = s.lock().unwrap();
    if let Err(r) = gate(&mut st, &headers) {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let (Some(folder), Some(name)) = (v["folder_id"].as_str(), v["file_name"].as_str()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "folder_id and file_name required",
            None,
        );
    };
    let size = match check_session_size(v["file_size"].as_u64()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !st.folders.contains_key(folder) {
        return error(StatusCode::NOT_FOUND, "not_found", "folder not found", None);
    }
    if let Some(existing) = st.file_in(folder, name) {
        return conflict(existing);
    }
    let id = format!("S{}", st.id());
    st.sessions.insert(
        id.clone(),
        Session {
            folder: folder.to_string(),
            name: name.to_string(),
            file_id: None,
            size,
            parts: BTreeMap::new(),
        },
    );
    session_json(&id, &st, size)
}

async fn session_version(
    State(s): State<Shared>,
    Path(file_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.lock().unwrap();
    if let Err(r) = gate(&mut st, &headers) {
        return r;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let size = match check_session_size(v["file_size"].as_u64()) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(f) = st.files.get(&file_id).cloned() else {
        return error(StatusCode::NOT_FOUND, "not_found", "file not found", None);
    };
    let id = format!("S{}", st.id());
    st.sessions.insert(
        id.clone(),
        Session {
            folder: f.parent.clone(),
            name: v["file_name"].as_str().unwrap_or(&f.name).to_string(),
            file_id: Some(file_id),
            size,
            parts: BTreeMap::new(),
        },
    );
    session_json(&id, &st, size)
}

fn digest_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("digest")?
        .to_str()
        .ok()?
        .strip_prefix("sha=")
        .map(str::to_string)
}

async fn session_part(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.lock().unwrap();
    if let Err(r) = gate(&mut st, &headers) {
        return r;
    }
    let part_size = st.part_size;
    let fail_at = st.fail_part_at;
    let Some(session) = st.sessions.get_mut(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "upload session not found",
            None,
        );
    };
    let range = headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes "))
        .and_then(|r| {
            let (span, total) = r.split_once('/')?;
            let (a, b) = span.split_once('-')?;
            Some((
                a.parse::<u64>().ok()?,
                b.parse::<u64>().ok()?,
                total.parse::<u64>().ok()?,
            ))
        });
    let Some((start, end, total)) = range else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "missing or malformed Content-Range",
            None,
        );
    };
    let len = body.len() as u64;
    let last = end + 1 == session.size;
    if total != session.size
        || end < start
        || end - start + 1 != len
        || start % part_size != 0
        || end >= session.size
        || (!last && len != part_size)
        || (last && len > part_size)
    {
        return error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "requested_range_not_satisfiable",
            "Content-Range does not match the session's part size or file size",
            None,
        );
    }
    let sha = Sha1::digest(&body);
    let expected = base64::engine::general_purpose::STANDARD.encode(sha);
    if digest_of(&headers).as_deref() != Some(expected.as_str()) {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "The Digest header does not match the part's SHA-1",
            None,
        );
    }
    if fail_at == Some(start) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "injected",
            None,
        );
    }
    let part_id = format!("{:08X}", start / part_size + 0xA000);
    let sha_hex = hex::encode(sha);
    session
        .parts
        .insert(start, (part_id.clone(), body.to_vec(), sha_hex.clone()));
    (
        StatusCode::OK,
        axum::Json(
            json!({"part": {"part_id": part_id, "offset": start, "size": len, "sha1": sha_hex}}),
        ),
    )
        .into_response()
}

async fn session_commit(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.lock().unwrap();
    if let Err(r) = gate(&mut st, &headers) {
        return r;
    }
    let Some(session) = st.sessions.get(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "upload session not found",
            None,
        );
    };
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let expected: Vec<Value> = session
        .parts
        .iter()
        .map(|(offset, (pid, data, sha))| {
            json!({"part_id": pid, "offset": offset, "size": data.len(), "sha1": sha})
        })
        .collect();
    if v["parts"].as_array() != Some(&expected) {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the parts list does not match the uploaded parts",
            None,
        );
    }
    let whole: Vec<u8> = session
        .parts
        .values()
        .flat_map(|(_, d, _)| d.iter().copied())
        .collect();
    if whole.len() as u64 != session.size {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "parts do not cover the file",
            None,
        );
    }
    let expected_digest = base64::engine::general_purpose::STANDARD.encode(Sha1::digest(&whole));
    if digest_of(&headers).as_deref() != Some(expected_digest.as_str()) {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "The Digest header does not match the file's SHA-1",
            None,
        );
    }
    if st.commit_busy {
        st.commit_busy = false;
        return (StatusCode::ACCEPTED, [("retry-after", "1")]).into_response();
    }
    let Some(session) = st.sessions.remove(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "upload session not found",
            None,
        );
    };
    let f = match session.file_id {
        Some(fid) => {
            let Some(f) = st.files.get_mut(&fid) else {
                return error(StatusCode::NOT_FOUND, "not_found", "file not found", None);
            };
            f.versions.push(whole);
            f.clone()
        }
        None => {
            if let Some(existing) = st.file_in(&session.folder, &session.name) {
                return conflict(existing);
            }
            let fid = st.id();
            let f = BoxFile {
                id: fid.clone(),
                name: session.name,
                parent: session.folder,
                versions: vec![whole],
            };
            st.files.insert(fid, f.clone());
            f
        }
    };
    entries(&f)
}

async fn session_delete(
    State(s): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap();
    if let Err(r) = gate(&mut st, &headers) {
        return r;
    }
    if st.sessions.remove(&id).is_some() {
        st.deleted_sessions += 1;
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            "upload session not found",
            None,
        )
    }
}
