//! Simulator configuration.

use crate::rng::stable_guid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleMode {
    /// No throttling: the simulator answers as fast as it can.
    Off,
    /// Microsoft's published limits (Exchange per app and mailbox, SharePoint
    /// resource units per tenant, Teams per channel).
    Realistic,
}

/// Kinds of injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 503 with Retry-After.
    Unavailable,
    /// 429 with Retry-After.
    Throttled,
    /// The connection drops before the body is complete.
    Drop,
    /// A 200 whose JSON body is cut short.
    Malformed,
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "503" | "unavailable" => Ok(FaultKind::Unavailable),
            "429" | "throttled" => Ok(FaultKind::Throttled),
            "drop" => Ok(FaultKind::Drop),
            "malformed" => Ok(FaultKind::Malformed),
            other => Err(format!(
                "unknown fault kind '{other}' (use 503, 429, drop, malformed)"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub users: u32,
    pub seed: u64,
    pub tenant_id: String,
    pub domain: String,
    pub client_id: String,
    pub client_secret: String,
    pub throttle: ThrottleMode,
    pub latency_ms: u64,
    pub fault_rate: f64,
    pub fault_kinds: Vec<FaultKind>,
    /// Lifetime of issued access tokens (Graph: about an hour).
    pub token_lifetime_secs: u64,
    /// How many generated entities stay in memory before unchanged ones are dropped.
    pub cache_entities: usize,
    /// Scales how much content each generated entity holds (1.0 = the default tenant).
    pub content_scale: f64,
}

impl SimConfig {
    /// The tenant `--users N --seed S` describes, with ids and secret derived from the seed.
    pub fn new(users: u32, seed: u64) -> Self {
        let tenant_id = stable_guid(seed, &["tenant"]).to_string();
        let client_id = stable_guid(seed, &["client"]).to_string();
        let secret_bytes = stable_guid(seed, &["secret"]);
        SimConfig {
            users,
            seed,
            tenant_id,
            domain: format!("contoso{}.onmicrosoft.com", seed % 1000),
            client_id,
            client_secret: format!("sim~{}", secret_bytes.simple()),
            throttle: ThrottleMode::Off,
            latency_ms: 0,
            fault_rate: 0.0,
            fault_kinds: vec![
                FaultKind::Unavailable,
                FaultKind::Throttled,
                FaultKind::Drop,
            ],
            token_lifetime_secs: 3599,
            cache_entities: 500,
            content_scale: 1.0,
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::new(25, 1)
    }
}
