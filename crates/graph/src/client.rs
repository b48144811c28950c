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
use reqwest::Method;
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
    /// Sent without the bearer token: a pre-authenticated URL (an upload
    /// session's `uploadUrl`), which Graph may refuse with 401 when an
    /// Authorization header comes along.
    pub pre_authenticated: bool,
}

impl Request {
    pub fn new(method: reqwest::Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            pre_authenticated: false,
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
    /// Marks the URL as pre-authenticated: no bearer token is sent.
    pub fn pre_authenticated(mut self) -> Self {
        self.pre_authenticated = true;
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

/// A request budget: an optional concurrency limit and a sliding window of
/// what was spent (requests, or SharePoint resource units), with a pause
/// that a 429 or 503 imposes on everything sharing the budget.
struct Budget {
    slots: Option<Arc<Semaphore>>,
    window: Duration,
    state: Mutex<BudgetState>,
}

#[derive(Default)]
struct BudgetState {
    spent: VecDeque<(tokio::time::Instant, u32)>,
    in_window: u64,
    paused_until: Option<tokio::time::Instant>,
}

const MAILBOX_WINDOW: Duration = Duration::from_secs(600);
const SHAREPOINT_WINDOW: Duration = Duration::from_secs(60);
const TEAMS_WINDOW: Duration = Duration::from_secs(1);

impl Budget {
    fn new(window: Duration, concurrency: Option<usize>) -> Self {
        Self {
            slots: concurrency.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            window,
            state: Mutex::new(BudgetState::default()),
        }
    }

    /// Waits until `cost` more fits the window and any pause has passed.
    /// A cost above the whole limit is admitted alone in an empty window
    /// rather than never.
    async fn admit(&self, limit: u64, cost: u32) {
        loop {
            let wait = {
                let mut st = self.state.lock();
                let now = tokio::time::Instant::now();
                while let Some((t, c)) = st.spent.front().copied() {
                    if now.duration_since(t) < self.window {
                        break;
                    }
                    st.spent.pop_front();
                    st.in_window -= u64::from(c);
                }
                if let Some(until) = st.paused_until.filter(|u| *u > now) {
                    Some(until - now)
                } else if st.in_window + u64::from(cost) <= limit.max(1) || st.spent.is_empty() {
                    st.spent.push_back((now, cost));
                    st.in_window += u64::from(cost);
                    None
                } else {
                    let oldest = st.spent.front().map(|(t, _)| *t).unwrap_or(now);
                    Some(
                        (oldest + self.window)
                            .saturating_duration_since(now)
                            .max(Duration::from_millis(5)),
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
        let until = tokio::time::Instant::now() + d;
        if st.paused_until.is_none_or(|u| u < until) {
            st.paused_until = Some(until);
        }
    }
}

/// The budgets one request counts against.
#[derive(Default)]
struct Admission {
    budgets: Vec<(Arc<Budget>, u64, u32)>,
}

impl Admission {
    async fn admit(&self) -> GraphResult<Vec<tokio::sync::OwnedSemaphorePermit>> {
        let mut permits = Vec::new();
        for (b, limit, cost) in &self.budgets {
            if let Some(slots) = &b.slots {
                permits.push(
                    slots
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|e| GraphError::Config(e.to_string()))?,
                );
            }
            b.admit(*limit, *cost).await;
        }
        Ok(permits)
    }

    fn pause(&self, d: Duration) {
        for (b, _, _) in &self.budgets {
            b.pause(d);
        }
    }
}

struct Inner {
    cfg: GraphConfig,
    http: reqwest::Client,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    mailboxes: Mutex<HashMap<String, Arc<Budget>>>,
    /// SharePoint and OneDrive: resource units per minute, per app and tenant.
    sharepoint: Arc<Budget>,
    /// The tenant's resource-unit limit per minute (from the configuration,
    /// or detected from its licences).
    sharepoint_limit: std::sync::atomic::AtomicU32,
    /// Teams: requests per second on one team or channel.
    teams_scopes: Mutex<HashMap<String, Arc<Budget>>>,
    /// Teams: requests per second per app and tenant, by class.
    teams_classes: [Arc<Budget>; 3],
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

/// The service limits a request counts against, as Microsoft publishes them.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Service {
    /// Outlook (mail, contacts, calendars, tasks, group conversations): per
    /// app and mailbox.
    Outlook { mailbox: String },
    /// SharePoint and OneDrive: resource units per app and tenant.
    SharePoint { cost: u32 },
    /// Teams: per app and tenant by class, and per team or channel.
    Teams { scope: String, class: TeamsClass },
    /// Directory and the rest: no client-side budget.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TeamsClass {
    GetMessage,
    PostMessage,
    Other,
}

/// Collections whose listing costs 2 resource units.
const MULTI_ITEM_SEGMENTS: &[&str] = &[
    "children",
    "items",
    "lists",
    "versions",
    "columns",
    "sites",
    "drives",
    "delta",
    "search",
    "getallsites",
    "pages",
    "contenttypes",
    "attachments",
    "thumbnails",
];

fn service_of(method: &Method, url: &str) -> Service {
    if let Some(mailbox) = mailbox_of(url) {
        return Service::Outlook { mailbox };
    }
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let after = path
        .split("/v1.0/")
        .nth(1)
        .unwrap_or(path.trim_start_matches('/'));
    let segs: Vec<String> = after
        .trim_matches('/')
        .split('/')
        .map(|s| s.split('(').next().unwrap_or(s).to_ascii_lowercase())
        .collect();
    let seg = |i: usize| segs.get(i).map(String::as_str).unwrap_or("");
    let sharepoint = matches!(seg(0), "drives" | "sites" | "shares")
        || (matches!(seg(0), "users" | "groups") && matches!(seg(2), "drive" | "drives" | "sites"));
    if sharepoint {
        return Service::SharePoint {
            cost: resource_units(method, &segs, query),
        };
    }
    if seg(0) == "teams" {
        let is_message = segs.iter().any(|s| s == "messages" || s == "replies");
        let scope = if seg(2) == "channels" && !seg(3).is_empty() {
            format!("{}/{}", seg(1), seg(3))
        } else {
            seg(1).to_string()
        };
        let class = match (*method == Method::GET, *method == Method::POST, is_message) {
            (true, _, true) => TeamsClass::GetMessage,
            (_, true, true) => TeamsClass::PostMessage,
            _ => TeamsClass::Other,
        };
        return Service::Teams { scope, class };
    }
    Service::Other
}

/// SharePoint and OneDrive resource units per minute Microsoft grants an
/// app in a tenant with this many licences.
pub fn resource_units_for_licences(licences: u64) -> u32 {
    match licences {
        0..=1_000 => 1_250,
        1_001..=5_000 => 2_500,
        5_001..=15_000 => 3_750,
        15_001..=50_000 => 5_000,
        _ => 6_250,
    }
}

/// What a SharePoint or OneDrive request costs in resource units: 1 for a
/// single item, a download or a delta with a token; 2 for a listing, a
/// delta without a token or a write; 5 for permissions.
fn resource_units(method: &Method, segs: &[String], query: &str) -> u32 {
    let q = query.to_ascii_lowercase();
    if segs.iter().any(|s| s == "permissions" || s == "invite") || q.contains("expand=permissions")
    {
        return 5;
    }
    if *method != Method::GET && *method != Method::HEAD {
        return 2;
    }
    let last = segs.last().map(String::as_str).unwrap_or("");
    if last == "delta" {
        let with_token =
            q.contains("token=") || q.contains("deltatoken") || q.contains("skiptoken");
        return if with_token { 1 } else { 2 };
    }
    if last == "content" || last == "$value" {
        return 1;
    }
    if MULTI_ITEM_SEGMENTS.contains(&last) {
        2
    } else {
        1
    }
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
        let sharepoint_limit = cfg.sharepoint_resource_units_per_min;
        Ok(GraphClient {
            inner: Arc::new(Inner {
                cfg,
                http,
                token: tokio::sync::Mutex::new(None),
                mailboxes: Mutex::new(HashMap::new()),
                sharepoint: Arc::new(Budget::new(SHAREPOINT_WINDOW, None)),
                sharepoint_limit: std::sync::atomic::AtomicU32::new(sharepoint_limit),
                teams_scopes: Mutex::new(HashMap::new()),
                teams_classes: std::array::from_fn(|_| Arc::new(Budget::new(TEAMS_WINDOW, None))),
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

    /// The SharePoint and OneDrive resource units per minute this client
    /// keeps to.
    pub fn sharepoint_resource_units_per_min(&self) -> u32 {
        self.inner.sharepoint_limit.load(Ordering::Relaxed)
    }

    /// Sets the SharePoint and OneDrive resource units per minute.
    pub fn set_sharepoint_resource_units_per_min(&self, ru: u32) {
        self.inner
            .sharepoint_limit
            .store(ru.max(1), Ordering::Relaxed);
    }

    /// Sets the SharePoint and OneDrive budget from the tenant's size:
    /// Microsoft grants an app more resource units per minute in larger
    /// tenants (by licence count). Assigned licences (`consumedUnits`) are
    /// counted rather than purchased ones: never more than the tenant has,
    /// so the budget is never set above Microsoft's (which would only earn
    /// 429s). Returns the budget now in force.
    pub async fn detect_sharepoint_budget(&self) -> GraphResult<u32> {
        let skus = self.get_all("/subscribedSkus").await?;
        let licences: u64 = skus
            .iter()
            .filter(|s| s.get("appliesTo").and_then(Value::as_str) != Some("Company"))
            .filter_map(|s| s.get("consumedUnits").and_then(Value::as_u64))
            .sum();
        let ru = resource_units_for_licences(licences);
        self.set_sharepoint_resource_units_per_min(ru);
        Ok(ru)
    }

    fn mailbox(&self, key: &str) -> Arc<Budget> {
        let mut map = self.inner.mailboxes.lock();
        map.entry(key.to_string())
            .or_insert_with(|| {
                Arc::new(Budget::new(
                    MAILBOX_WINDOW,
                    Some(self.inner.cfg.mailbox_concurrency),
                ))
            })
            .clone()
    }

    /// The budgets a request to `url` counts against (see [`Service`]).
    fn admission(&self, method: &Method, url: &str) -> Admission {
        let cfg = &self.inner.cfg;
        let mut a = Admission::default();
        match service_of(method, url) {
            Service::Outlook { mailbox } => a.budgets.push((
                self.mailbox(&mailbox),
                cfg.mailbox_requests_per_10_min as u64,
                1,
            )),
            Service::SharePoint { cost } => a.budgets.push((
                self.inner.sharepoint.clone(),
                u64::from(self.inner.sharepoint_limit.load(Ordering::Relaxed)),
                cost,
            )),
            Service::Teams { scope, class } => {
                let scoped = self
                    .inner
                    .teams_scopes
                    .lock()
                    .entry(scope)
                    .or_insert_with(|| Arc::new(Budget::new(TEAMS_WINDOW, None)))
                    .clone();
                let (i, limit) = match class {
                    TeamsClass::GetMessage => (0, cfg.teams_get_messages_per_sec),
                    TeamsClass::PostMessage => (1, cfg.teams_post_messages_per_sec),
                    TeamsClass::Other => (2, cfg.teams_other_per_sec),
                };
                a.budgets
                    .push((self.inner.teams_classes[i].clone(), u64::from(limit), 1));
                a.budgets
                    .push((scoped, u64::from(cfg.teams_per_scope_per_sec), 1));
            }
            Service::Other => {}
        }
        a
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
        let admission = self.admission(&req.method, &url);
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
            let _slot = admission.admit().await?;
            let mut builder = self.inner.http.request(req.method.clone(), &url);
            if !req.pre_authenticated {
                builder = builder.bearer_auth(self.access_token().await?);
            }
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
                    // Everything sharing the budget waits (the mailbox, the
                    // tenant's SharePoint traffic, the channel), not just
                    // this request.
                    admission.pause(wait);
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
        let permit = match &m.slots {
            Some(slots) => slots.clone().acquire_many_owned(permits).await.ok(),
            None => None,
        };
        m.admit(
            self.inner.cfg.mailbox_requests_per_10_min as u64,
            u32::try_from(count).unwrap_or(u32::MAX),
        )
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
    fn sharepoint_and_teams_requests_are_classified_with_their_cost() {
        let get = Method::GET;
        assert_eq!(
            service_of(&get, "https://g/v1.0/drives/d/items/i/content"),
            Service::SharePoint { cost: 1 }
        );
        assert_eq!(
            service_of(&get, "/drives/d/root/delta"),
            Service::SharePoint { cost: 2 }
        );
        assert_eq!(
            service_of(&get, "/drives/d/root/delta?token=abc"),
            Service::SharePoint { cost: 1 }
        );
        assert_eq!(
            service_of(&get, "/users/u/drive/items/i/permissions"),
            Service::SharePoint { cost: 5 }
        );
        assert_eq!(
            service_of(&Method::PUT, "/sites/s/drive/items/i/content"),
            Service::SharePoint { cost: 2 }
        );
        assert_eq!(
            service_of(&get, "/groups/g/drives"),
            Service::SharePoint { cost: 2 }
        );
        assert_eq!(
            service_of(&get, "/teams/t/channels/c/messages/delta"),
            Service::Teams {
                scope: "t/c".into(),
                class: TeamsClass::GetMessage
            }
        );
        assert_eq!(
            service_of(&get, "/teams/t/members"),
            Service::Teams {
                scope: "t".into(),
                class: TeamsClass::Other
            }
        );
        assert_eq!(service_of(&get, "/users?$top=999"), Service::Other);
        assert!(matches!(
            service_of(&get, "/groups/g/threads"),
            Service::Outlook { .. }
        ));
    }

    #[test]
    fn the_resource_unit_budget_grows_with_the_tenant() {
        assert_eq!(resource_units_for_licences(0), 1_250);
        assert_eq!(resource_units_for_licences(1_000), 1_250);
        assert_eq!(resource_units_for_licences(1_001), 2_500);
        assert_eq!(resource_units_for_licences(15_000), 3_750);
        assert_eq!(resource_units_for_licences(50_000), 5_000);
        assert_eq!(resource_units_for_licences(50_001), 6_250);
    }

    #[tokio::test(start_paused = true)]
    async fn a_budget_holds_spending_to_its_window() {
        let b = Budget::new(Duration::from_secs(60), None);
        let start = tokio::time::Instant::now();
        // 10 RU per minute: five 2-RU listings fit, the sixth waits for the
        // first to leave the window.
        for _ in 0..5 {
            b.admit(10, 2).await;
        }
        assert!(start.elapsed() < Duration::from_secs(1));
        b.admit(10, 2).await;
        assert!(
            start.elapsed() >= Duration::from_secs(59),
            "{:?}",
            start.elapsed()
        );
        // A cost above the whole limit still goes through, alone.
        let b = Budget::new(Duration::from_secs(1), None);
        b.admit(3, 5).await;
        // A pause holds everything sharing the budget.
        b.pause(Duration::from_secs(30));
        let before = tokio::time::Instant::now();
        b.admit(100, 1).await;
        assert!(before.elapsed() >= Duration::from_secs(29));
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
        let b = Budget::new(MAILBOX_WINDOW, Some(4));
        b.admit(3, 3).await;
        let late = tokio::time::timeout(Duration::from_millis(50), b.admit(3, 1)).await;
        assert!(late.is_err(), "a fourth request in the window must wait");
    }
}
