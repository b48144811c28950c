//! An imitation of Dropbox's upload session API, as documented, with its
//! validation: bearer token (401 `invalid_access_token` otherwise), the
//! `Dropbox-API-Arg` header as ASCII-only JSON, `Content-Type:
//! application/octet-stream`, `files/upload_session/start`, `append_v2`
//! and `finish` with the cursor offset checked (409 `incorrect_offset`
//! with the correct one), commit modes `add` (409 `path/conflict/file` if
//! the path exists) and `overwrite`, and 429 with `Retry-After` when asked
//! to throttle. Served under `/2`.
// Handlers answer early with a ready axum `Response` as the error value;
// its size does not matter in a test server.
#![allow(clippy::result_large_err)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct DropboxState {
    pub token: String,
    next_id: u64,
    /// session id → bytes so far
    pub sessions: HashMap<String, Vec<u8>>,
    /// lower-case path → (display path, bytes)
    pub files: HashMap<String, (String, Vec<u8>)>,
    /// Answer the next this-many requests with 429 and `Retry-After: 1`.
    pub throttle: u32,
    pub throttled: u32,
    /// Take the next append but answer 500, as if the answer was lost.
    pub lose_append_answer: bool,
    pub requests: u32,
    /// Sizes of the bodies received by start/append/finish, in order.
    pub bodies: Vec<usize>,
}

pub type Shared = Arc<Mutex<DropboxState>>;

pub struct DropboxServer {
    pub state: Shared,
    pub base: String,
    _task: tokio::task::JoinHandle<()>,
}

impl DropboxServer {
    pub fn target(&self, path: &str) -> destinations::Target {
        destinations::Target::Dropbox {
            path: path.to_string(),
            endpoint: Some(format!("{}/2", self.base)),
            content_endpoint: Some(format!("{}/2", self.base)),
        }
    }

    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.state
            .lock()
            .unwrap()
            .files
            .get(&path.to_lowercase())
            .map(|(_, d)| d.clone())
    }
}

pub async fn start(token: &str) -> DropboxServer {
    let state: Shared = Arc::new(Mutex::new(DropboxState {
        token: token.to_string(),
        ..Default::default()
    }));
    let app = Router::new()
        .route("/2/files/upload_session/start", post(session_start))
        .route("/2/files/upload_session/append_v2", post(session_append))
        .route("/2/files/upload_session/finish", post(session_finish))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    DropboxServer {
        state,
        base,
        _task: task,
    }
}

fn api_error(status: StatusCode, summary: &str, error: Value) -> Response {
    (
        status,
        axum::Json(json!({"error_summary": summary, "error": error})),
    )
        .into_response()
}

/// Token, throttle, content type and argument header; `Err` is the answer.
fn gate(st: &mut DropboxState, headers: &HeaderMap) -> Result<Value, Response> {
    st.requests += 1;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", st.token) {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            "invalid_access_token/..",
            json!({".tag": "invalid_access_token"}),
        ));
    }
    if st.throttle > 0 {
        st.throttle -= 1;
        st.throttled += 1;
        return Err((
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(json!({
                "error_summary": "too_many_requests/..",
                "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 1},
            })),
        )
            .into_response());
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct != "application/octet-stream" {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("Error in call: Bad HTTP \"Content-Type\" header: {ct:?}"),
        )
            .into_response());
    }
    let Some(arg) = headers.get("dropbox-api-arg") else {
        return Err((StatusCode::BAD_REQUEST, "missing Dropbox-API-Arg").into_response());
    };
    let text = std::str::from_utf8(arg.as_bytes()).unwrap_or("");
    if !text.is_ascii() {
        return Err((
            StatusCode::BAD_REQUEST,
            "Dropbox-API-Arg must be HTTP header safe (ASCII, non-ASCII escaped)",
        )
            .into_response());
    }
    serde_json::from_str(text)
        .map_err(|_| (StatusCode::BAD_REQUEST, "Dropbox-API-Arg is not JSON").into_response())
}

/// Checks the cursor and appends `body` to its session.
fn append(st: &mut DropboxState, cursor: &Value, body: &[u8]) -> Result<(), Response> {
    let (Some(id), Some(offset)) = (cursor["session_id"].as_str(), cursor["offset"].as_u64())
    else {
        return Err((
            StatusCode::BAD_REQUEST,
            "cursor needs session_id and offset",
        )
            .into_response());
    };
    let Some(data) = st.sessions.get_mut(id) else {
        return Err(api_error(
            StatusCode::CONFLICT,
            "lookup_failed/not_found/..",
            json!({".tag": "lookup_failed", "lookup_failed": {".tag": "not_found"}}),
        ));
    };
    if offset != data.len() as u64 {
        return Err(api_error(
            StatusCode::CONFLICT,
            "incorrect_offset/..",
            json!({".tag": "incorrect_offset", "correct_offset": data.len()}),
        ));
    }
    data.extend_from_slice(body);
    Ok(())
}

async fn session_start(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = s.lock().unwrap();
    if let Err(r) = gate(&mut st, &headers) {
        return r;
    }
    st.next_id += 1;
    let id = format!("AAAA-session-{}", st.next_id);
    st.bodies.push(body.len());
    st.sessions.insert(id.clone(), body.to_vec());
    axum::Json(json!({"session_id": id})).into_response()
}

async fn session_append(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = s.lock().unwrap();
    let arg = match gate(&mut st, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = append(&mut st, &arg["cursor"], &body) {
        return r;
    }
    st.bodies.push(body.len());
    if st.lose_append_answer {
        st.lose_append_answer = false;
        return (StatusCode::INTERNAL_SERVER_ERROR, "lost").into_response();
    }
    axum::Json(Value::Null).into_response()
}

async fn session_finish(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut st = s.lock().unwrap();
    let arg = match gate(&mut st, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let commit = &arg["commit"];
    let Some(path) = commit["path"].as_str() else {
        return (StatusCode::BAD_REQUEST, "commit.path required").into_response();
    };
    if !path.starts_with('/') || path.contains("//") {
        return api_error(
            StatusCode::CONFLICT,
            "path/malformed_path/..",
            json!({".tag": "path", "path": {".tag": "malformed_path"}}),
        );
    }
    let mode = commit["mode"].as_str().unwrap_or("add");
    if mode == "add" && st.files.contains_key(&path.to_lowercase()) {
        return api_error(
            StatusCode::CONFLICT,
            "path/conflict/file/..",
            json!({".tag": "path", "path": {".tag": "conflict", "conflict": {".tag": "file"}}}),
        );
    }
    if let Err(r) = append(&mut st, &arg["cursor"], &body) {
        return r;
    }
    st.bodies.push(body.len());
    let id = arg["cursor"]["session_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let data = st.sessions.remove(&id).unwrap_or_default();
    let size = data.len();
    st.files
        .insert(path.to_lowercase(), (path.to_string(), data));
    let name = path.rsplit('/').next().unwrap_or("");
    axum::Json(json!({
        ".tag": "file", "name": name, "id": format!("id:{}", path.len()),
        "path_lower": path.to_lowercase(), "path_display": path, "size": size,
    }))
    .into_response()
}
