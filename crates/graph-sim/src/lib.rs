//! A Microsoft 365 tenant simulator that speaks Microsoft Graph v1.0.
//!
//! No machine of ours reaches Microsoft, so every backup, restore, test and
//! benchmark of Lifeboat runs against this simulator. It serves the identity
//! endpoints (client-credentials tokens, admin consent) and the Graph subset a
//! backup product uses, with Graph's paths, JSON shapes, paging, delta,
//! `$batch`, throttling and errors, over a seeded, deterministic tenant that is
//! generated lazily (so 10,000 users start in seconds). A control API under
//! `/_sim` simulates user activity, disasters (deleted mailboxes, sites and
//! teams; mass deletions; ransomware) and dumps ground truth to compare
//! restores against.
//!
//! Layout: the core (this file, `odata`, `filter`, `delta`, `lazy`, `auth`,
//! `throttle`, `batch`, `control`, `directory`) and one module per workload
//! (`mail`, `pim`, `files`, `collab`), each implementing [`Workload`].

pub mod auth;
pub mod batch;
pub mod collab;
pub mod config;
pub mod control;
pub mod delta;
pub mod directory;
pub mod error;
pub mod files;
pub mod filter;
pub mod lazy;
pub mod mail;
pub mod odata;
pub mod pim;
pub mod rng;
pub mod server;
pub mod throttle;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use parking_lot::RwLock;
use serde::Serialize;

pub use config::{SimConfig, ThrottleMode};
pub use error::{GraphError, GraphResult};
pub use server::{RunningSim, start};

/// Generated content is dated before this instant, so the same seed gives
/// the same tenant whatever day it runs.
pub fn generation_anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .expect("valid constant date")
}

/// Graph's date-time format (UTC, `Z`, no fractional seconds).
pub fn graph_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An entity of the tenant that workloads hold data for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "type", content = "id", rename_all = "camelCase")]
pub enum EntityRef {
    /// A user or shared mailbox, by directory object id.
    User(String),
    /// A Microsoft 365 group (and its team, if it has one), by object id.
    Group(String),
    /// A SharePoint site, by site id.
    Site(String),
}

/// One item of ground truth: what a restore of the entity must give back.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TruthItem {
    /// `mail`, `contacts`, `calendar`, `tasks`, `drive`, `list`, `conversations`, `channels`, ...
    pub workload: String,
    /// Human path of the item, e.g. `Inbox/Projects/Quarterly report` or `Documents/a.docx`.
    pub path: String,
    pub id: String,
    /// Graph type name: `message`, `event`, `driveItem`, ...
    pub kind: String,
    pub size: u64,
    /// BLAKE3 (hex) of the item's content: MIME for mail, bytes for files,
    /// canonical JSON of the user-visible fields for everything else.
    pub hash: String,
}

/// What a day of simulated activity did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityReport {
    pub created: u64,
    pub modified: u64,
    pub moved: u64,
    pub deleted: u64,
    /// Directory changes: people who joined (new, empty mailbox and drive) or left (account disabled).
    pub users_joined: u64,
    pub users_left: u64,
}

impl ActivityReport {
    pub fn add(&mut self, o: &ActivityReport) {
        self.created += o.created;
        self.modified += o.modified;
        self.moved += o.moved;
        self.deleted += o.deleted;
        self.users_joined += o.users_joined;
        self.users_left += o.users_left;
    }
}

/// A family of Graph resources with its own state: mail, PIM (contacts,
/// calendars, tasks), files (drives, sites, lists), collaboration (groups'
/// conversations, teams, channels).
pub trait Workload: Send + Sync {
    fn name(&self) -> &'static str;
    /// Every item the entity holds in this workload right now.
    fn truth(&self, sim: &Sim, entity: &EntityRef) -> Vec<TruthItem>;
    /// One day of what people do: new, changed, moved and deleted items.
    fn simulate_day(
        &self,
        sim: &Sim,
        entity: &EntityRef,
        rng: &mut rng::SimRng,
        report: &mut ActivityReport,
    );
    /// The entity was deleted in the tenant: its data goes with it.
    fn entity_deleted(&self, sim: &Sim, entity: &EntityRef);
}

/// The simulated tenant and everything serving it.
pub struct Sim {
    pub cfg: SimConfig,
    clock_offset_secs: AtomicI64,
    seq: AtomicU64,
    delta_epoch: AtomicU64,
    activity_day: AtomicU64,
    pub directory: RwLock<directory::Directory>,
    pub mail: mail::MailStore,
    pub pim: pim::PimStore,
    pub files: files::FileStore,
    pub collab: collab::CollabStore,
    pub throttle: throttle::Throttle,
    pub auth: auth::AuthState,
    pub stats: throttle::Stats,
    /// Injected faults: the share of Graph requests that fail and how.
    /// Starts from the configuration; `/_sim/faults` changes it at run time.
    faults: RwLock<(f64, Vec<config::FaultKind>)>,
    scheme: OnceLock<&'static str>,
    listen_host: OnceLock<String>,
    /// The router itself, for `$batch` to dispatch inner requests through.
    router: OnceLock<Router>,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Arc<Sim> {
        let directory = directory::Directory::generate(&cfg);
        let cap = cfg.cache_entities;
        Arc::new(Sim {
            clock_offset_secs: AtomicI64::new(0),
            seq: AtomicU64::new(1),
            delta_epoch: AtomicU64::new(0),
            activity_day: AtomicU64::new(0),
            directory: RwLock::new(directory),
            mail: mail::MailStore::new(cap),
            pim: pim::PimStore::new(cap),
            files: files::FileStore::new(cap),
            collab: collab::CollabStore::new(cap),
            throttle: throttle::Throttle::new(&cfg),
            auth: auth::AuthState::new(&cfg),
            stats: throttle::Stats::default(),
            faults: RwLock::new((cfg.fault_rate, cfg.fault_kinds.clone())),
            scheme: OnceLock::new(),
            listen_host: OnceLock::new(),
            router: OnceLock::new(),
            cfg,
        })
    }

    pub fn seed(&self) -> u64 {
        self.cfg.seed
    }

    /// The tenant's clock: wall-clock time plus whatever simulated days have passed.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.clock_offset_secs.load(Ordering::Relaxed))
    }

    /// The tenant's clock truncated to the hour, for generated activity:
    /// two simulators of one seed that run the same activity moments apart
    /// then produce the same items byte for byte (a MIME `Date` header has
    /// second resolution, so the wall clock would make them differ now and
    /// then). Everything generated from it lies in the past.
    pub fn activity_now(&self) -> DateTime<Utc> {
        use chrono::{DurationRound, TimeDelta};
        let now = self.now();
        now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now)
    }

    pub fn advance_clock(&self, secs: i64) {
        self.clock_offset_secs.fetch_add(secs, Ordering::Relaxed);
    }

    /// The next value of the tenant-wide change sequence.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The sequence of the latest change.
    pub fn current_seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Delta tokens carry this epoch; bumping it invalidates every token.
    pub fn delta_epoch(&self) -> u64 {
        self.delta_epoch.load(Ordering::SeqCst)
    }

    /// Numbers the simulated days, so that activity is the same for the same sequence of calls.
    pub fn next_activity_day(&self) -> u64 {
        self.activity_day.fetch_add(1, Ordering::SeqCst)
    }

    /// The fault injection in force: (share of requests, kinds).
    pub fn faults(&self) -> (f64, Vec<config::FaultKind>) {
        self.faults.read().clone()
    }

    /// Changes fault injection while serving (a rate of 0 turns it off).
    pub fn set_faults(&self, rate: f64, kinds: Vec<config::FaultKind>) {
        *self.faults.write() = (rate.clamp(0.0, 1.0), kinds);
    }

    pub fn invalidate_delta_tokens(&self) {
        self.delta_epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn workloads(&self) -> [&dyn Workload; 4] {
        [&self.mail, &self.pim, &self.files, &self.collab]
    }

    pub fn scheme(&self) -> &'static str {
        self.scheme.get().copied().unwrap_or("http")
    }

    pub fn listen_host(&self) -> String {
        self.listen_host
            .get()
            .cloned()
            .unwrap_or_else(|| "127.0.0.1".into())
    }

    pub(crate) fn set_endpoint(&self, scheme: &'static str, host: String) {
        let _ = self.scheme.set(scheme);
        let _ = self.listen_host.set(host);
    }

    pub(crate) fn router(&self) -> Option<Router> {
        self.router.get().cloned()
    }

    pub(crate) fn set_router(&self, r: Router) {
        let _ = self.router.set(r);
    }

    /// HMAC-SHA256 (hex) under the simulator's own key: tokens and
    /// pre-authenticated download URLs.
    pub fn sign(&self, data: &str) -> String {
        self.auth.sign(data)
    }
}
