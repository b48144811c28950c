//! Throttling as Microsoft publishes it, fault injection, latency, and
//! request statistics.
//!
//! Limits enforced with `--throttle realistic`:
//! - Outlook (mail, contacts, calendars, tasks) per app and mailbox: 4
//!   concurrent requests, 10,000 requests per 10 minutes, 150 MB uploaded
//!   per 5 minutes. Each request inside a `$batch` counts.
//! - SharePoint and OneDrive per app per tenant: resource units per minute
//!   by tenant size (1,250 RU/min up to 1,000 licences, 2,500 up to 5,000,
//!   3,750 up to 15,000, 5,000 up to 50,000, 6,250 above), and per tenant
//!   per 5 minutes (18,750 / 37,500 / 56,250 / 75,000 / 93,750). A request
//!   costs 1 RU (single item, delta with a token, download), 2 RU (listings,
//!   delta without a token, writes) or 5 RU (permissions).
//! - Teams per app per tenant: GET channel message 20 rps, POST channel
//!   message 50 rps, other GETs 30 rps, other calls 30 rps; and at most 4
//!   requests per second on one team or channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use rand::Rng;
use serde::Serialize;

use crate::config::FaultKind;
use crate::error::GraphError;
use crate::{Sim, SimConfig, ThrottleMode};

/// Which service limits a request counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// An Outlook resource in the mailbox with this key (lower-cased id or UPN).
    Exchange { mailbox: String },
    /// SharePoint or OneDrive, with the request's resource-unit cost.
    SharePoint { cost: u32 },
    /// Teams; `scope` is the team or channel addressed.
    Teams { scope: String, class: TeamsClass },
    /// Directory and everything else.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeamsClass {
    GetMessage,
    PostMessage,
    OtherGet,
    Other,
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
    "inferenceclassification",
];
const GROUP_OUTLOOK_SEGMENTS: &[&str] = &[
    "calendar",
    "events",
    "calendarview",
    "conversations",
    "threads",
];
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

/// Classifies a request path below `/v1.0` (already normalised: no `()`).
pub fn classify(method: &Method, path: &str, query: &str) -> Resource {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let seg = |i: usize| segs.get(i).map(String::as_str).unwrap_or("");
    match seg(0) {
        "users" if OUTLOOK_SEGMENTS.contains(&seg(2)) => Resource::Exchange {
            mailbox: seg(1).to_string(),
        },
        "groups" if GROUP_OUTLOOK_SEGMENTS.contains(&seg(2)) => Resource::Exchange {
            mailbox: seg(1).to_string(),
        },
        "drives" | "sites" | "shares" => Resource::SharePoint {
            cost: ru_cost(method, &segs, query),
        },
        "users" | "groups" if matches!(seg(2), "drive" | "drives" | "sites") => {
            Resource::SharePoint {
                cost: ru_cost(method, &segs, query),
            }
        }
        "teams" => {
            let is_message = segs.iter().any(|s| s == "messages" || s == "replies");
            let scope = if seg(2) == "channels" && !seg(3).is_empty() {
                format!("{}/{}", seg(1), seg(3))
            } else {
                seg(1).to_string()
            };
            let class = match (method == Method::GET, is_message) {
                (true, true) => TeamsClass::GetMessage,
                (false, true) if method == Method::POST => TeamsClass::PostMessage,
                (true, false) => TeamsClass::OtherGet,
                _ => TeamsClass::Other,
            };
            Resource::Teams { scope, class }
        }
        _ => Resource::Other,
    }
}

fn ru_cost(method: &Method, segs: &[String], query: &str) -> u32 {
    let q = query.to_ascii_lowercase();
    if segs.iter().any(|s| s == "permissions" || s == "invite") || q.contains("expand=permissions")
    {
        return 5;
    }
    if method != Method::GET {
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

/// Counts in time buckets: a sliding window that costs a few bytes per key.
#[derive(Debug, Clone)]
struct Window {
    bucket: Duration,
    buckets: Vec<(u64, u64)>, // (bucket number, amount)
}

impl Window {
    fn new(span: Duration, buckets: usize) -> Self {
        Window {
            bucket: span / buckets as u32,
            buckets: vec![(0, 0); buckets],
        }
    }

    fn bucket_no(&self, start: Instant, now: Instant) -> u64 {
        (now.duration_since(start).as_millis() / self.bucket.as_millis().max(1)) as u64
    }

    fn total(&self, current: u64) -> u64 {
        let n = self.buckets.len() as u64;
        self.buckets
            .iter()
            .filter(|(b, _)| *b + n > current && *b <= current)
            .map(|(_, c)| c)
            .sum()
    }

    /// Adds `amount` if the window stays within `limit`; otherwise returns the
    /// seconds until enough of it has slid out.
    fn try_add(
        &mut self,
        start: Instant,
        now: Instant,
        amount: u64,
        limit: u64,
    ) -> Result<(), u64> {
        let current = self.bucket_no(start, now);
        if self.total(current) + amount > limit {
            // Oldest live bucket leaves the window after this many buckets.
            let n = self.buckets.len() as u64;
            let oldest = self
                .buckets
                .iter()
                .filter(|(b, c)| *c > 0 && *b + n > current)
                .map(|(b, _)| *b)
                .min()
                .unwrap_or(current);
            let wait_buckets = (oldest + n).saturating_sub(current).max(1);
            return Err((wait_buckets * self.bucket.as_millis() as u64)
                .div_ceil(1000)
                .max(1));
        }
        let slot = (current % self.buckets.len() as u64) as usize;
        if self.buckets[slot].0 != current {
            self.buckets[slot] = (current, 0);
        }
        self.buckets[slot].1 += amount;
        Ok(())
    }
}

#[derive(Default)]
struct MailboxState {
    inflight: u32,
    requests: Option<Window>,
    upload: Option<Window>,
}

pub struct Throttle {
    mode: ThrottleMode,
    start: Instant,
    mailboxes: Mutex<HashMap<String, MailboxState>>,
    sharepoint_app: Mutex<Window>,
    sharepoint_tenant: Mutex<Window>,
    teams: Mutex<HashMap<String, Window>>,
    ru_per_minute: u64,
    ru_per_5min: u64,
    fault_counter: AtomicU64,
}

pub const EXCHANGE_CONCURRENCY: u32 = 4;
pub const EXCHANGE_REQUESTS_PER_10_MIN: u64 = 10_000;
pub const EXCHANGE_UPLOAD_BYTES_PER_5_MIN: u64 = 150 * 1024 * 1024;

/// Resource units per minute (app) and per 5 minutes (tenant) for a tenant of this many licences.
pub fn sharepoint_limits(licenses: u64) -> (u64, u64) {
    match licenses {
        0..=1_000 => (1_250, 18_750),
        1_001..=5_000 => (2_500, 37_500),
        5_001..=15_000 => (3_750, 56_250),
        15_001..=50_000 => (5_000, 75_000),
        _ => (6_250, 93_750),
    }
}

impl Throttle {
    pub fn new(cfg: &SimConfig) -> Self {
        let (ru_per_minute, ru_per_5min) = sharepoint_limits(cfg.users as u64);
        Throttle {
            mode: cfg.throttle,
            start: Instant::now(),
            mailboxes: Mutex::new(HashMap::new()),
            sharepoint_app: Mutex::new(Window::new(Duration::from_secs(60), 12)),
            sharepoint_tenant: Mutex::new(Window::new(Duration::from_secs(300), 30)),
            teams: Mutex::new(HashMap::new()),
            ru_per_minute,
            ru_per_5min,
            fault_counter: AtomicU64::new(0),
        }
    }

    /// Admits a request or answers why not. The guard releases the request's
    /// concurrency slot when dropped.
    fn admit(
        &self,
        resource: &Resource,
        upload_bytes: u64,
    ) -> Result<Option<InflightGuard<'_>>, GraphError> {
        if self.mode == ThrottleMode::Off {
            return Ok(None);
        }
        let now = Instant::now();
        match resource {
            Resource::Exchange { mailbox } => {
                let mut map = self.mailboxes.lock();
                let st = map.entry(mailbox.clone()).or_default();
                if st.inflight >= EXCHANGE_CONCURRENCY {
                    return Err(GraphError::throttled(
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        1,
                    ));
                }
                let requests = st
                    .requests
                    .get_or_insert_with(|| Window::new(Duration::from_secs(600), 60));
                requests
                    .try_add(self.start, now, 1, EXCHANGE_REQUESTS_PER_10_MIN)
                    .map_err(|wait| {
                        GraphError::throttled(
                            "ApplicationThrottled",
                            "Application is over its Requests limit.",
                            wait,
                        )
                    })?;
                if upload_bytes > 0 {
                    let up = st
                        .upload
                        .get_or_insert_with(|| Window::new(Duration::from_secs(300), 30));
                    up.try_add(
                        self.start,
                        now,
                        upload_bytes,
                        EXCHANGE_UPLOAD_BYTES_PER_5_MIN,
                    )
                    .map_err(|wait| {
                        GraphError::throttled(
                            "ApplicationThrottled",
                            "Application is over its IncomingBytes limit.",
                            wait,
                        )
                    })?;
                }
                st.inflight += 1;
                Ok(Some(InflightGuard {
                    throttle: self,
                    mailbox: mailbox.clone(),
                }))
            }
            Resource::SharePoint { cost } => {
                let sp_err = |wait| {
                    GraphError::throttled(
                        "activityLimitReached",
                        "The request has been throttled",
                        wait,
                    )
                };
                self.sharepoint_app
                    .lock()
                    .try_add(self.start, now, *cost as u64, self.ru_per_minute)
                    .map_err(sp_err)?;
                self.sharepoint_tenant
                    .lock()
                    .try_add(self.start, now, *cost as u64, self.ru_per_5min)
                    .map_err(sp_err)?;
                Ok(None)
            }
            Resource::Teams { scope, class } => {
                let limit = match class {
                    TeamsClass::GetMessage => 20,
                    TeamsClass::PostMessage => 50,
                    TeamsClass::OtherGet | TeamsClass::Other => 30,
                };
                let teams_err =
                    |wait| GraphError::throttled("TooManyRequests", "Too many requests.", wait);
                let mut map = self.teams.lock();
                let class_key = format!("class:{class:?}");
                map.entry(class_key)
                    .or_insert_with(|| Window::new(Duration::from_secs(1), 4))
                    .try_add(self.start, now, 1, limit)
                    .map_err(teams_err)?;
                map.entry(format!("scope:{scope}"))
                    .or_insert_with(|| Window::new(Duration::from_secs(1), 4))
                    .try_add(self.start, now, 1, 4)
                    .map_err(teams_err)?;
                Ok(None)
            }
            Resource::Other => Ok(None),
        }
    }
}

struct InflightGuard<'a> {
    throttle: &'a Throttle,
    mailbox: String,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if let Some(st) = self.throttle.mailboxes.lock().get_mut(&self.mailbox) {
            st.inflight = st.inflight.saturating_sub(1);
        }
    }
}

/// Requests served, by service and outcome: what benchmarks read to report
/// Graph requests per item.
#[derive(Default)]
pub struct Stats {
    counts: Mutex<HashMap<String, u64>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub total: u64,
    pub by_key: std::collections::BTreeMap<String, u64>,
}

impl Stats {
    pub fn count(&self, key: &str) {
        *self.counts.lock().entry(key.to_string()).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let map = self.counts.lock();
        let by_key: std::collections::BTreeMap<String, u64> =
            map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let total = by_key
            .iter()
            .filter(|(k, _)| k.starts_with("service:"))
            .map(|(_, v)| v)
            .sum();
        StatsSnapshot { total, by_key }
    }

    pub fn reset(&self) {
        self.counts.lock().clear();
    }
}

fn service_name(r: &Resource) -> &'static str {
    match r {
        Resource::Exchange { .. } => "exchange",
        Resource::SharePoint { .. } => "sharepoint",
        Resource::Teams { .. } => "teams",
        Resource::Other => "directory",
    }
}

/// Applies the service limits to one Graph request (runs after authentication).
pub async fn limits(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let path = req
        .uri()
        .path()
        .strip_prefix("/v1.0")
        .unwrap_or(req.uri().path())
        .to_string();
    if path == "/$batch" {
        sim.stats.count("batch");
        return next.run(req).await;
    }
    let resource = classify(req.method(), &path, req.uri().query().unwrap_or(""));
    let mut mailbox_key = resource.clone();
    if let Resource::Exchange { mailbox } = &resource {
        // A mailbox may be addressed by id or UPN; both are one mailbox.
        if let Some(u) = sim.directory.read().user_any(mailbox) {
            mailbox_key = Resource::Exchange {
                mailbox: u.id.clone(),
            };
        }
    }
    let upload = if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        req.headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    } else {
        0
    };
    sim.stats
        .count(&format!("service:{}", service_name(&resource)));
    match sim.throttle.admit(&mailbox_key, upload) {
        Ok(guard) => {
            // Latency is server time: the request holds its concurrency slot meanwhile.
            if sim.cfg.latency_ms > 0 {
                tokio::time::sleep(Duration::from_millis(sim.cfg.latency_ms)).await;
            }
            let resp = next.run(req).await;
            drop(guard);
            sim.stats
                .count(&format!("status:{}", resp.status().as_u16()));
            resp
        }
        Err(e) => {
            sim.stats.count("throttled");
            sim.stats.count("status:429");
            e.into_response()
        }
    }
}

/// Injected faults, in front of everything Graph serves (latency is added in [`limits`]).
pub async fn faults(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let is_graph = path.starts_with("/v1.0/") || path.starts_with("/_download/");
    let (rate, kinds) = sim.faults();
    if !is_graph || rate <= 0.0 || kinds.is_empty() {
        return next.run(req).await;
    }
    let n = sim.throttle.fault_counter.fetch_add(1, Ordering::Relaxed);
    let mut rng = crate::rng::rng_for(sim.cfg.seed, &["fault", &n.to_string()]);
    if !rng.random_bool(rate) {
        return next.run(req).await;
    }
    let kind = kinds[rng.random_range(0..kinds.len())];
    sim.stats.count(&format!("fault:{kind:?}"));
    match kind {
        FaultKind::Unavailable => GraphError::unavailable(rng.random_range(1..=3)).into_response(),
        FaultKind::Throttled => GraphError::throttled(
            "TooManyRequests",
            "Too many requests. Please retry later.",
            rng.random_range(1..=3),
        )
        .into_response(),
        FaultKind::Drop => {
            // Headers go out, then the body breaks off: the client sees a dropped connection.
            let stream = futures::stream::iter(vec![
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"value\":[")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected fault",
                )),
            ]);
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        FaultKind::Malformed => {
            let resp = next.run(req).await;
            let (parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
                .await
                .unwrap_or_default();
            let cut = bytes.slice(..bytes.len() / 2);
            let mut parts = parts;
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(cut))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_and_costs() {
        let get = Method::GET;
        assert_eq!(
            classify(&get, "/users/abc/mailFolders/inbox/messages", ""),
            Resource::Exchange {
                mailbox: "abc".into()
            }
        );
        assert_eq!(
            classify(&get, "/drives/d/root/delta", ""),
            Resource::SharePoint { cost: 2 }
        );
        assert_eq!(
            classify(&get, "/drives/d/root/delta", "token=x"),
            Resource::SharePoint { cost: 1 }
        );
        assert_eq!(
            classify(&get, "/drives/d/items/i/content", ""),
            Resource::SharePoint { cost: 1 }
        );
        assert_eq!(
            classify(&get, "/drives/d/items/i/permissions", ""),
            Resource::SharePoint { cost: 5 }
        );
        assert_eq!(
            classify(&Method::PUT, "/drives/d/items/i/content", ""),
            Resource::SharePoint { cost: 2 }
        );
        assert_eq!(classify(&get, "/users/abc", ""), Resource::Other);
        assert!(matches!(
            classify(&get, "/teams/t/channels/c/messages", ""),
            Resource::Teams {
                class: TeamsClass::GetMessage,
                ..
            }
        ));
    }

    #[test]
    fn window_enforces_its_limit_and_says_how_long_to_wait() {
        let start = Instant::now();
        let mut w = Window::new(Duration::from_secs(600), 60);
        for _ in 0..10 {
            w.try_add(start, start, 1, 10).unwrap();
        }
        let wait = w.try_add(start, start, 1, 10).unwrap_err();
        assert!(wait > 0 && wait <= 600);
        // Once the window has slid past, requests are admitted again.
        w.try_add(start, start + Duration::from_secs(601), 1, 10)
            .unwrap();
    }

    #[test]
    fn exchange_concurrency_is_four_per_mailbox() {
        let mut cfg = SimConfig::new(5, 1);
        cfg.throttle = ThrottleMode::Realistic;
        let t = Throttle::new(&cfg);
        let r = Resource::Exchange {
            mailbox: "m".into(),
        };
        let guards: Vec<_> = (0..4).map(|_| t.admit(&r, 0).unwrap()).collect();
        let e = t.admit(&r, 0).err().unwrap();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        // Another mailbox is unaffected.
        assert!(
            t.admit(
                &Resource::Exchange {
                    mailbox: "other".into()
                },
                0
            )
            .is_ok()
        );
        drop(guards);
        assert!(t.admit(&r, 0).is_ok());
    }
}
