//! JSON batching: up to 20 requests per round trip. Inner requests count
//! against their mailbox's budget like any other; inner 429s and 503s are
//! retried after their Retry-After, the rest returned to the caller.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::client::{GraphClient, Request, mailbox_of};
use crate::error::{GraphError, GraphResult};

pub const MAX_BATCH: usize = 20;

#[derive(Debug, Clone)]
pub struct BatchItem {
    pub id: String,
    pub method: String,
    /// Relative to the Graph base, e.g. `/users/{id}/messages/{mid}`.
    pub url: String,
    pub headers: Map<String, Value>,
    pub body: Option<Value>,
}

impl BatchItem {
    pub fn get(id: impl Into<String>, url: impl Into<String>) -> Self {
        BatchItem {
            id: id.into(),
            method: "GET".into(),
            url: url.into(),
            headers: Map::new(),
            body: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BatchResult {
    pub id: String,
    pub status: u16,
    pub headers: Map<String, Value>,
    pub body: Value,
}

impl BatchResult {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl GraphClient {
    /// Runs the items (any number; sent 20 at a time) and returns one result per item, in order.
    pub async fn batch(&self, items: Vec<BatchItem>) -> GraphResult<Vec<BatchResult>> {
        let order: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
        let mut done: HashMap<String, BatchResult> = HashMap::new();
        let mut pending = items;
        let mut waited = Duration::ZERO;
        while !pending.is_empty() {
            let chunk: Vec<BatchItem> = pending.drain(..pending.len().min(MAX_BATCH)).collect();
            let results = self.batch_once(&chunk).await?;
            let mut retry_wait = Duration::ZERO;
            for (item, result) in chunk.into_iter().zip(results) {
                if matches!(result.status, 429 | 503) {
                    let secs = result
                        .headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                        .and_then(|(_, v)| v.as_str().and_then(|s| s.parse().ok()).or(v.as_u64()))
                        .unwrap_or(2);
                    let wait = Duration::from_secs(secs);
                    if let Some(m) = mailbox_of(&item.url) {
                        self.pause_mailbox(&m, wait);
                    }
                    retry_wait = retry_wait.max(wait);
                    pending.push(item);
                } else {
                    done.insert(result.id.clone(), result);
                }
            }
            if !retry_wait.is_zero() {
                waited += retry_wait;
                if waited.as_secs() > self.config().max_throttle_wait_secs {
                    return Err(GraphError::Throttled {
                        request: "POST /$batch".into(),
                        waited_secs: waited.as_secs(),
                    });
                }
                tokio::time::sleep(retry_wait).await;
            }
        }
        order
            .into_iter()
            .map(|id| {
                done.remove(&id).ok_or_else(|| GraphError::Decode {
                    request: "POST /$batch".into(),
                    detail: format!("no response for request '{id}'"),
                })
            })
            .collect()
    }

    async fn batch_once(&self, chunk: &[BatchItem]) -> GraphResult<Vec<BatchResult>> {
        // Inner requests use their mailboxes' budgets; hold the mailboxes' slots while the batch runs.
        let mut per_mailbox: HashMap<String, usize> = HashMap::new();
        for i in chunk {
            if let Some(m) = mailbox_of(&i.url) {
                *per_mailbox.entry(m).or_default() += 1;
            }
        }
        let mut permits = Vec::new();
        let mut mailboxes: Vec<_> = per_mailbox.into_iter().collect();
        mailboxes.sort();
        for (m, n) in mailboxes {
            permits.push(self.admit_batch_items(&m, n).await);
        }
        let requests: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let mut r = json!({"id": i.id, "method": i.method, "url": i.url});
                if !i.headers.is_empty() {
                    r["headers"] = Value::Object(i.headers.clone());
                }
                if let Some(b) = &i.body {
                    r["body"] = b.clone();
                    if !i
                        .headers
                        .keys()
                        .any(|k| k.eq_ignore_ascii_case("content-type"))
                    {
                        r["headers"]["Content-Type"] = json!("application/json");
                    }
                }
                r
            })
            .collect();
        let resp = self
            .send(Request::json(
                reqwest::Method::POST,
                "/$batch",
                &json!({ "requests": requests }),
            ))
            .await?;
        drop(permits);
        let v: Value = resp.json()?;
        let arr = v["responses"]
            .as_array()
            .ok_or_else(|| GraphError::Decode {
                request: resp.request.clone(),
                detail: "no 'responses' array".into(),
            })?;
        let mut by_id: HashMap<String, BatchResult> = HashMap::new();
        for r in arr {
            let id = r["id"].as_str().unwrap_or_default().to_string();
            by_id.insert(
                id.clone(),
                BatchResult {
                    id,
                    status: r["status"].as_u64().unwrap_or(0) as u16,
                    headers: r["headers"].as_object().cloned().unwrap_or_default(),
                    body: r.get("body").cloned().unwrap_or(Value::Null),
                },
            );
        }
        chunk
            .iter()
            .map(|i| {
                by_id.remove(&i.id).ok_or_else(|| GraphError::Decode {
                    request: resp.request.clone(),
                    detail: format!("no response for request '{}'", i.id),
                })
            })
            .collect()
    }
}
