//! What every engine benchmark sets up: the simulated tenant, a Graph
//! client for it and a fresh vault account; and peak memory.
#![allow(dead_code)]

use graph::{GraphClient, GraphConfig, Secret};
use graph_sim::{RunningSim, SimConfig};

/// Peak resident memory of this process, in MiB.
pub fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage only writes into the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

/// A simulator of `cfg`, a Graph client for it, and a fresh vault account
/// (kept in the returned directory, which must outlive the run).
pub async fn tenant(
    cfg: SimConfig,
) -> (RunningSim, GraphClient, vault::Account, tempfile::TempDir) {
    let sim = graph_sim::start(cfg, "127.0.0.1:0".parse().expect("address"), false)
        .await
        .expect("simulator");
    let c = &sim.sim.cfg;
    let graph = GraphClient::new(
        GraphConfig::new(
            &sim.graph_url(),
            &sim.login_url(),
            &c.tenant_id,
            &c.client_id,
            Secret::new(c.client_secret.clone()),
        )
        .expect("config"),
    )
    .expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = vault::Repository::init(
        vault::Location::from_url(dir.path().to_str().expect("utf-8 path")).expect("location"),
        vault::InitOptions {
            kdf_m_kib: 1024,
            kdf_t: 1,
            ..Default::default()
        },
    )
    .await
    .expect("repository");
    let key = vault::MasterKey::from_bytes([1; 32]).account_key("bench");
    let account = repo
        .open_or_init_account("bench", &key)
        .await
        .expect("account");
    (sim, graph, account, dir)
}

/// The options of the mailbox benchmarks, as `--users N --latency-ms N
/// --parallel N --scale X` on the command line.
pub struct MailboxArgs {
    /// Mailboxes in the simulated tenant.
    pub users: u32,
    /// Simulated Graph latency.
    pub latency_ms: u64,
    /// Mailboxes worked on at once.
    pub parallel: usize,
    /// The simulator's content scale.
    pub scale: f64,
}

impl MailboxArgs {
    /// These defaults, overridden by what the command line gives.
    pub fn overridden_by_command_line(mut self) -> Self {
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let mut val = || it.next().unwrap_or_default();
            match k.as_str() {
                "--users" => self.users = val().parse().unwrap_or(self.users),
                "--latency-ms" => self.latency_ms = val().parse().unwrap_or(self.latency_ms),
                "--parallel" => self.parallel = val().parse().unwrap_or(self.parallel),
                "--scale" => self.scale = val().parse().unwrap_or(self.scale),
                _ => {}
            }
        }
        self
    }
}

/// The options of the drive benchmarks, as `--small N --large N --large-mib
/// N --latency-ms N --throttle realistic|off` on the command line.
pub struct DriveArgs {
    /// Small files (1-32 KiB) added to one drive.
    pub small: u64,
    /// Large files added to another.
    pub large: u64,
    /// Size of each large file.
    pub large_mib: u64,
    /// Simulated Graph latency.
    pub latency_ms: u64,
    /// `realistic` (Microsoft's SharePoint resource-unit limits) or `off`.
    pub throttle: graph_sim::ThrottleMode,
}

impl DriveArgs {
    /// These defaults, overridden by what the command line gives.
    pub fn overridden_by_command_line(mut self) -> Self {
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let mut val = || it.next().unwrap_or_default();
            match k.as_str() {
                "--small" => self.small = val().parse().unwrap_or(self.small),
                "--large" => self.large = val().parse().unwrap_or(self.large),
                "--large-mib" => self.large_mib = val().parse().unwrap_or(self.large_mib),
                "--latency-ms" => self.latency_ms = val().parse().unwrap_or(self.latency_ms),
                "--throttle" => {
                    self.throttle = match val().as_str() {
                        "off" => graph_sim::ThrottleMode::Off,
                        _ => graph_sim::ThrottleMode::Realistic,
                    }
                }
                _ => {}
            }
        }
        self
    }
}
