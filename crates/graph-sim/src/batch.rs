//! JSON batching (`POST /v1.0/$batch`): up to 20 requests, `dependsOn`
//! ordering with 424 for failed dependencies, and inner responses (429s
//! included) reported per request as Graph does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::Sim;
use crate::error::GraphError;
use crate::server::normalize_uri;

pub const MAX_BATCH_REQUESTS: usize = 20;

pub async fn handle(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match run(&sim, &headers, &body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

struct Step {
    id: String,
    method: String,
    url: String,
    headers: Map<String, Value>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn parse_steps(body: &[u8]) -> Result<Vec<Step>, GraphError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| GraphError::bad_request(format!("Invalid batch payload: {e}")))?;
    let requests = v.get("requests").and_then(Value::as_array).ok_or_else(|| {
        GraphError::bad_request("Invalid batch payload: the 'requests' array is missing.")
    })?;
    if requests.len() > MAX_BATCH_REQUESTS {
        return Err(GraphError::bad_request(format!(
            "The batch request contains {} requests; at most {MAX_BATCH_REQUESTS} are allowed.",
            requests.len()
        )));
    }
    let mut steps = Vec::new();
    for r in requests {
        let field = |n: &str| r.get(n).and_then(Value::as_str).map(str::to_string);
        let id = field("id")
            .ok_or_else(|| GraphError::bad_request("A batch request is missing its 'id'."))?;
        if steps.iter().any(|s: &Step| s.id == id) {
            return Err(GraphError::bad_request(format!(
                "Batch request ids must be unique; '{id}' is repeated."
            )));
        }
        let method = field("method").ok_or_else(|| {
            GraphError::bad_request(format!("Batch request '{id}' is missing its 'method'."))
        })?;
        let url = field("url").ok_or_else(|| {
            GraphError::bad_request(format!("Batch request '{id}' is missing its 'url'."))
        })?;
        let depends_on = r
            .get("dependsOn")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        steps.push(Step {
            id,
            method: method.to_ascii_uppercase(),
            url,
            headers: r
                .get("headers")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            body: r.get("body").cloned(),
            depends_on,
        });
    }
    for s in &steps {
        for d in &s.depends_on {
            if !steps.iter().any(|o| &o.id == d) {
                return Err(GraphError::bad_request(format!(
                    "Batch request '{}' depends on unknown request '{d}'.",
                    s.id
                )));
            }
        }
    }
    Ok(steps)
}

async fn run(sim: &Arc<Sim>, outer: &HeaderMap, body: &[u8]) -> Result<Value, GraphError> {
    let steps = parse_steps(body)?;
    let router = sim.router().ok_or_else(|| GraphError::unavailable(1))?;
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut responses = Vec::new();
    let mut remaining: Vec<&Step> = steps.iter().collect();
    // Run in order, each step after its dependencies.
    while !remaining.is_empty() {
        let pos = remaining
            .iter()
            .position(|s| s.depends_on.iter().all(|d| statuses.contains_key(d)))
            .ok_or_else(|| GraphError::bad_request("Batch dependencies form a cycle."))?;
        let step = remaining.remove(pos);
        if step
            .depends_on
            .iter()
            .any(|d| !(200..300).contains(statuses.get(d).copied().as_ref().unwrap_or(&0)))
        {
            statuses.insert(step.id.clone(), 424);
            responses.push(json!({
                "id": step.id,
                "status": 424,
                "headers": {"Content-Type": "application/json"},
                "body": {"error": {"code": "FailedDependency", "message": "Dependency of this request failed."}}
            }));
            continue;
        }
        let (status, resp) = dispatch(&router, outer, step).await;
        statuses.insert(step.id.clone(), status);
        responses.push(resp);
    }
    Ok(json!({ "responses": responses }))
}

async fn dispatch(router: &axum::Router, outer: &HeaderMap, step: &Step) -> (u16, Value) {
    let mut url = step.url.clone();
    if let Some(i) = url.find("/v1.0/") {
        url = url[i + 5..].to_string();
    }
    if !url.starts_with('/') {
        url = format!("/{url}");
    }
    let uri = normalize_uri(&format!("/v1.0{url}"));
    let mut builder = Request::builder().method(step.method.as_str()).uri(uri);
    for name in [header::AUTHORIZATION, header::HOST] {
        if let Some(v) = outer.get(&name) {
            builder = builder.header(name, v);
        }
    }
    let mut content_type: Option<String> = None;
    for (k, v) in &step.headers {
        if let Some(s) = v.as_str() {
            if k.eq_ignore_ascii_case("content-type") {
                content_type = Some(s.to_string());
            }
            builder = builder.header(k.as_str(), s);
        }
    }
    let body = match &step.body {
        None | Some(Value::Null) => Body::empty(),
        Some(Value::String(s)) if content_type.as_deref().is_some_and(|c| !c.contains("json")) => {
            Body::from(s.clone())
        }
        Some(v) => {
            if content_type.is_none() {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
            }
            Body::from(v.to_string())
        }
    };
    let req = match builder.body(body) {
        Ok(r) => r,
        Err(e) => {
            let err = GraphError::bad_request(format!("Invalid batch request '{}': {e}", step.id));
            return (
                400,
                json!({"id": step.id, "status": 400, "body": err.body("batch")}),
            );
        }
    };
    let resp = match router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for name in [
        "content-type",
        "location",
        "retry-after",
        "etag",
        "odata-version",
    ] {
        if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(canonical(name), json!(v));
        }
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.contains("json"));
    let bytes = match axum::body::to_bytes(resp.into_body(), 256 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            // The inner response broke off (an injected dropped connection):
            // Graph reports such an inner failure as a retryable 503.
            let status = StatusCode::SERVICE_UNAVAILABLE.as_u16();
            let out = json!({"id": step.id, "status": status,
                "headers": {"Retry-After": "1", "Content-Type": "application/json"},
                "body": {"error": {"code": "serviceNotAvailable",
                    "message": "The service is temporarily unavailable. Retry later."}}});
            return (status, out);
        }
    };
    let mut out = json!({"id": step.id, "status": status, "headers": headers});
    if !bytes.is_empty() {
        out["body"] = if is_json {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
        } else {
            // Graph returns non-JSON inner bodies base64-encoded.
            json!(base64::engine::general_purpose::STANDARD.encode(&bytes))
        };
    }
    if status == StatusCode::NO_CONTENT.as_u16() {
        out.as_object_mut().map(|o| o.remove("body"));
    }
    (status, out)
}

fn canonical(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
