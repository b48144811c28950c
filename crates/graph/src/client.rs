//! The request pipeline: tokens, the ISV User-Agent, per-mailbox concurrency
//! and request budgets, Retry-After, retries with backoff. Workload code never
//! handles throttling itself; it calls [`GraphClient::send`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use rand::Rng;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::config::GraphConfig;
use crate::error::{GraphError, GraphResult};

/// One Graph request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    /// A path below the Graph base (`/users`) or an absolute URL (a next or delta link).
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
}

impl Request {
    pub fn new(method: reqwest::Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(reqwest::Method::GET, url)
    }
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(reqwest::Method::DELETE, url)
    }
    pub fn json(method: reqwest::Method, url: impl Into<String>, body: &Value) -> Self {
        let mut r = Self::new(method, url);
        r.body = Some(Bytes::from(body.to_string()));
        r.header("Content-Type", "application/json")
    }
    pub fn bytes(
        method: reqwest::Method,
        url: impl Into<String>,
        content_type: &str,
        body: Bytes,
    ) -> Self {
        let mut r = Self::new(method, url);
        r.body = Some(body);
        r.header("Content-Type", content_type)
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
    /// `Prefer: odata.maxpagesize=N`.
    pub fn page_size(self, n: usize) -> Self {
        self.header("Prefer", &format!("odata.maxpagesize={n}"))
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `METHOD path` of the request, for error messages.
    pub request: String,
}

impl Response {
    pub fn json<T: DeserializeOwned>(&self) -> GraphResult<T> {
        serde_json::from_slice(&self.body).map_err(|e| GraphError::Decode {
            request: self.request.clone(),
            detail: e.to_string(),
        })
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Counters of what the pipeline did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClientStats {
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    pub tokens: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    tokens: AtomicU64,
}

struct CachedToken {
    value: String,
    refresh_at: Instant,
}

/// Budget of one mailbox: a concurrency limit and a sliding window of request times.
struct MailboxBudget {
    slots: Arc<Semaphore>,
    state: Mutex<BudgetState>,
}

#[derive(Default)]
struct BudgetState {
    sent: VecDeque<Instant>,
    paused_until: Option<Instant>,
}

const WINDOW: Duration = Duration::from_secs(600);

impl MailboxBudget {
    /// Waits until one more request fits the 10-minute window and any pause has passed.
    async fn admit(&self, limit: usize, count: usize) {
        loop {
            let wait = {
                let mut st = self.state.lock();
                let now = Instant::now();
                while st
                    .sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    st.sent.pop_front();
                }
                if let Some(until) = st.paused_until.filter(|u| *u > now) {
                    Some(until - now)
                } else if st.sent.len() + count <= limit {
                    st.sent.extend(std::iter::repeat_n(now, count));
                    None
                } else {
                    let oldest = st.sent.front().copied().unwrap_or(now);
                    Some(
                        (oldest + WINDOW)
                            .saturating_duration_since(now)
                            .max(Duration::from_millis(10)),
                    )
                }
            };
            match wait {
                None => return,
                Some(d) => tokio::time::sleep(d).await,
            }
        }
    }

    fn pause(&self, d: Duration) {
        let mut st = self.state.lock();
        let until = Instant::now() + d;
        if st.paused_until.is_none_or(|u| u < until) {
            st.paused_until = Some(until);
        }
    }
}

struct Inner {
    cfg: GraphConfig,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    mailboxes: Mutex<HashMap<String, Arc<MailboxBudget>>>,
    in_flight: Semaphore,
    counters: Counters,
}

/// A Microsoft Graph client for one tenant connection. Cheap to clone.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

const OUTLOOK_SEGMENTS: &[&str] = &[
    "messages",
    "mailfolders",
    "contactfolders",
    "contacts",
    "calendar",
    "calendars",
    "events",
    "calendarview",
    "calendargroups",
    "todo",
    "outlook",
    "mailboxsettings",
    "conversations",
    "threads",
];

/// The mailbox a request counts against, if it is an Outlook request.
pub fn mailbox_of(url: &str) -> Option<String> {
    let path = url.split('?').next().unwrap_or(url);
    let after = path
        .split("/v1.0/")
        .nth(1)
        .unwrap_or(path.trim_start_matches('/'));
    let segs: Vec<&str> = after.split('/').collect();
    let kind = segs.first().copied().unwrap_or("");
    let sub = segs
        .get(2)
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    ((kind == "users" || kind == "groups") && OUTLOOK_SEGMENTS.contains(&sub.as_str()))
        .then(|| segs[1].to_ascii_lowercase())
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .to_string();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(&v).ok()?;
    let secs = (when.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
    Some(Duration::from_secs(secs))
}

fn backoff(attempt: u32) -> Duration {
    let base = 250u64 * (1u64 << attempt.min(6));
    let jitter = rand::rng().random_range(0..=base / 2);
    Duration::from_millis(base + jitter)
}

/// An error and its causes on one line: reqwest's own message rarely says why.
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        parts.push(err.to_string());
        source = err.source();
    }
    parts.join(": ")
}

/// A TLS certificate the client does not trust will not be trusted on a retry either.
fn is_certificate_error(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if err.to_string().to_ascii_lowercase().contains("certificate") {
            return true;
        }
        source = err.source();
    }
    false
}

/// `GET /users/{id}/messages` without query or host, for messages and logs.
fn describe(method: &reqwest::Method, url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    let path = path.split("/v1.0").nth(1).unwrap_or(path);
    format!("{method} {path}")
}

fn api_error(request: &str, status: u16, body: &[u8]) -> GraphError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v["error"]["code"].as_str().unwrap_or("unknown").to_string();
    let message = v["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).to_string());
    if status == 410 {
        return GraphError::DeltaExpired {
            request: request.to_string(),
            code,
        };
    }
    GraphError::Api {
        request: request.to_string(),
        status,
        code,
        message,
    }
}

impl GraphClient {
    pub fn new(cfg: GraphConfig) -> GraphResult<Self> {
        let mut builder = reqwest::Client::builder()
            .user_agent(cfg.user_agent.clone())
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(600))
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(pem) = &cfg.extra_root_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| GraphError::Config(format!("bad root certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| GraphError::Config(e.to_string()))?;
        let in_flight = Semaphore::new(cfg.max_in_flight.max(1));
        Ok(GraphClient {
            inner: Arc::new(Inner {
                cfg,
                http,
                token: tokio::sync::Mutex::new(None),
                mailboxes: Mutex::new(HashMap::new()),
                in_flight,
                counters: Counters::default(),
            }),
        })
    }

    pub fn config(&self) -> &GraphConfig {
        &self.inner.cfg
    }

    pub fn stats(&self) -> ClientStats {
        let c = &self.inner.counters;
        ClientStats {
            requests: c.requests.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            throttled: c.throttled.load(Ordering::Relaxed),
            tokens: c.tokens.load(Ordering::Relaxed),
        }
    }

    fn mailbox(&self, key: &str) -> Arc<MailboxBudget> {
        let mut map = self.inner.mailboxes.lock();
        map.entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(MailboxBudget {
                    slots: Arc::new(Semaphore::new(self.inner.cfg.mailbox_concurrency.max(1))),
                    state: Mutex::new(BudgetState::default()),
                })
            })
            .clone()
    }

    /// A valid access token, fetched or refreshed (5 minutes before expiry) as needed.
    pub async fn access_token(&self) -> GraphResult<String> {
        let mut guard = self.inner.token.lock().await;
        if let Some(t) = guard.as_ref().filter(|t| t.refresh_at > Instant::now()) {
            return Ok(t.value.clone());
        }
        let cfg = &self.inner.cfg;
        let form = [
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", cfg.client_secret.expose()),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let mut attempt = 0;
        let resp = loop {
            match self
                .inner
                .http
                .post(cfg.token_url())
                .form(&form)
                .send()
                .await
            {
                Ok(r) if r.status().is_server_error() && attempt + 1 < cfg.max_attempts => {}
                Ok(r) => break r,
                Err(e) if attempt + 1 >= cfg.max_attempts || is_certificate_error(&e) => {
                    return Err(GraphError::Transport {
                        request: "POST token".into(),
                        attempts: attempt + 1,
                        detail: error_chain(&e),
                    });
                }
                Err(_) => {}
            }
            attempt += 1;
            tokio::time::sleep(backoff(attempt)).await;
        };
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(GraphError::Token {
                tenant: cfg.tenant.clone(),
                error: body["error"].as_str().unwrap_or("unknown").to_string(),
                aadsts: body["error_codes"][0].as_u64().unwrap_or(0) as u32,
                description: body["error_description"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string(),
            });
        }
        let value = body["access_token"]
            .as_str()
            .ok_or_else(|| GraphError::Decode {
                request: "POST token".into(),
                detail: "no access_token in the answer".into(),
            })?
            .to_string();
        let lifetime = body["expires_in"].as_u64().unwrap_or(3599);
        // Refresh early: five minutes before expiry, or halfway for short-lived tokens.
        let margin = if lifetime > 600 { 300 } else { lifetime / 2 };
        self.inner.counters.tokens.fetch_add(1, Ordering::Relaxed);
        *guard = Some(CachedToken {
            value: value.clone(),
            refresh_at: Instant::now() + Duration::from_secs(lifetime - margin),
        });
        Ok(value)
    }

    async fn forget_token(&self) {
        *self.inner.token.lock().await = None;
    }

    /// Sends a request through the pipeline and reads the whole answer.
    pub async fn send(&self, req: Request) -> GraphResult<Response> {
        let label = describe(&req.method, &req.url);
        let (status, headers, resp) = self.dispatch(&req, &label).await?;
        let body = resp.bytes().await.map_err(|e| GraphError::Transport {
            request: label.clone(),
            attempts: 1,
            detail: e.to_string(),
        })?;
        Ok(Response {
            status,
            headers,
            body,
            request: label,
        })
    }

    /// Sends a request and hands back the unread body, for streaming large content.
    pub async fn send_streaming(&self, req: Request) -> GraphResult<reqwest::Response> {
        let label = describe(&req.method, &req.url);
        Ok(self.dispatch(&req, &label).await?.2)
    }

    pub async fn get_json<T: DeserializeOwned>(&self, url: &str) -> GraphResult<T> {
        self.send(Request::get(url)).await?.json()
    }

    async fn dispatch(
        &self,
        req: &Request,
        label: &str,
    ) -> GraphResult<(u16, HeaderMap, reqwest::Response)> {
        let cfg = &self.inner.cfg;
        let url = cfg.url_for(&req.url);
        let mailbox = mailbox_of(&url).map(|m| self.mailbox(&m));
        let mut attempt: u32 = 0;
        let mut throttle_waited = Duration::ZERO;
        let mut refreshed = false;
        loop {
            let _global = self
                .inner
                .in_flight
                .acquire()
                .await
                .map_err(|e| GraphError::Config(e.to_string()))?;
            let _slot = match &mailbox {
                Some(m) => {
                    let permit = m
                        .slots
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|e| GraphError::Config(e.to_string()))?;
                    m.admit(cfg.mailbox_requests_per_10_min, 1).await;
                    Some(permit)
                }
                None => None,
            };
            let token = self.access_token().await?;
            let mut builder = self
                .inner
                .http
                .request(req.method.clone(), &url)
                .bearer_auth(&token);
            for (k, v) in &req.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            if let Some(b) = &req.body {
                builder = builder.body(b.clone());
            }
            self.inner.counters.requests.fetch_add(1, Ordering::Relaxed);
            let result = builder.send().await;
            let resp = match result {
                Err(e) => {
                    attempt += 1;
                    if attempt >= cfg.max_attempts || is_certificate_error(&e) {
                        return Err(GraphError::Transport {
                            request: label.to_string(),
                            attempts: attempt,
                            detail: error_chain(&e),
                        });
                    }
                    self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(request = label, error = %e, "transport error, retrying");
                    drop(_slot);
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Ok(r) => r,
            };
            let status = resp.status().as_u16();
            if status < 400 {
                let headers = resp.headers().clone();
                return Ok((status, headers, resp));
            }
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            match status {
                401 if !refreshed => {
                    refreshed = true;
                    self.forget_token().await;
                    continue;
                }
                429 | 503 | 502 | 504 => {
                    let hinted = retry_after(&headers);
                    if status != 429 && hinted.is_none() {
                        attempt += 1;
                        if attempt >= cfg.max_attempts {
                            return Err(api_error(label, status, &body));
                        }
                    }
                    let wait = hinted.unwrap_or_else(|| backoff(attempt));
                    throttle_waited += wait;
                    if throttle_waited.as_secs() > cfg.max_throttle_wait_secs {
                        return Err(GraphError::Throttled {
                            request: label.to_string(),
                            waited_secs: throttle_waited.as_secs(),
                        });
                    }
                    self.inner
                        .counters
                        .throttled
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = &mailbox {
                        // The whole mailbox waits, not just this request.
                        m.pause(wait);
                    }
                    drop(_slot);
                    tracing::debug!(
                        request = label,
                        status,
                        wait_ms = wait.as_millis() as u64,
                        "throttled, waiting"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                500 | 507 | 509 => {
                    attempt += 1;
                    if attempt >= cfg.max_attempts {
                        return Err(api_error(label, status, &body));
                    }
                    self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
                    drop(_slot);
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                _ => return Err(api_error(label, status, &body)),
            }
        }
    }

    /// Reserves budget for `count` requests to `mailbox` sent inside a `$batch`.
    pub(crate) async fn admit_batch_items(
        &self,
        mailbox: &str,
        count: usize,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let m = self.mailbox(mailbox);
        let permits = count.min(self.inner.cfg.mailbox_concurrency).max(1) as u32;
        let permit = m.slots.clone().acquire_many_owned(permits).await.ok();
        m.admit(self.inner.cfg.mailbox_requests_per_10_min, count)
            .await;
        permit
    }

    pub(crate) fn pause_mailbox(&self, mailbox: &str, d: Duration) {
        self.mailbox(mailbox).pause(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn outlook_requests_count_against_their_mailbox() {
        assert_eq!(
            mailbox_of("https://g/v1.0/users/ABC/mailFolders/inbox/messages"),
            Some("abc".into())
        );
        assert_eq!(
            mailbox_of("/users/abc/messages/x/$value"),
            Some("abc".into())
        );
        assert_eq!(mailbox_of("/groups/g1/conversations"), Some("g1".into()));
        assert_eq!(mailbox_of("/users/abc"), None);
        assert_eq!(mailbox_of("/drives/d/root/delta"), None);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let mut h = HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let when = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        h.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_str(&when).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(d.as_secs() >= 28 && d.as_secs() <= 30);
    }

    #[tokio::test]
    async fn the_window_holds_requests_beyond_the_budget() {
        let b = MailboxBudget {
            slots: Arc::new(Semaphore::new(4)),
            state: Mutex::new(BudgetState::default()),
        };
        b.admit(3, 3).await;
        let late = tokio::time::timeout(Duration::from_millis(50), b.admit(3, 1)).await;
        assert!(late.is_err(), "a fourth request in the window must wait");
    }
}
