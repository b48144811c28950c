//! `lifeboat sim`: run the Microsoft 365 tenant simulator.

use std::net::SocketAddr;

use anyhow::Context;
use graph_sim::config::FaultKind;
use graph_sim::{SimConfig, ThrottleMode};

#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8765")]
    pub listen: SocketAddr,
    /// Number of users in the generated tenant.
    #[arg(long, default_value_t = 25)]
    pub users: u32,
    /// Seed: the same seed gives the same tenant.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// `off` (default) or `realistic` (Microsoft's published limits).
    #[arg(long, default_value = "off", value_parser = parse_throttle)]
    pub throttle: ThrottleMode,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of Graph requests that fail (0.0..=1.0).
    #[arg(long, default_value_t = 0.0)]
    pub fault_rate: f64,
    /// Kinds of injected faults: 503, 429, drop, malformed.
    #[arg(long, value_delimiter = ',', default_value = "503,429,drop")]
    pub faults: Vec<FaultKind>,
    /// Lifetime of access tokens in seconds.
    #[arg(long, default_value_t = 3599)]
    pub token_lifetime: u64,
    /// Serve HTTPS with a self-signed certificate (written to --cert-out).
    #[arg(long)]
    pub tls: bool,
    /// Where to write the certificate clients must trust (with --tls).
    #[arg(long)]
    pub cert_out: Option<std::path::PathBuf>,
    /// Scales how much content each mailbox, drive and site holds.
    #[arg(long, default_value_t = 1.0)]
    pub content_scale: f64,
}

fn parse_throttle(s: &str) -> Result<ThrottleMode, String> {
    match s {
        "off" => Ok(ThrottleMode::Off),
        "realistic" => Ok(ThrottleMode::Realistic),
        other => Err(format!(
            "unknown throttle mode '{other}' (use off or realistic)"
        )),
    }
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.fault_rate),
        "--fault-rate must be between 0 and 1"
    );
    let mut cfg = SimConfig::new(args.users, args.seed);
    cfg.throttle = args.throttle;
    cfg.latency_ms = args.latency_ms;
    cfg.fault_rate = args.fault_rate;
    cfg.fault_kinds = args.faults;
    cfg.token_lifetime_secs = args.token_lifetime;
    cfg.content_scale = args.content_scale;
    let running = graph_sim::start(cfg.clone(), args.listen, args.tls)
        .await
        .with_context(|| format!("starting the simulator on {}", args.listen))?;
    if let (Some(pem), Some(path)) = (&running.ca_pem, &args.cert_out) {
        std::fs::write(path, pem)
            .with_context(|| format!("writing the certificate to {}", path.display()))?;
    }
    println!("graph-sim listening on {}", running.url);
    println!("graph base URL:  {}/v1.0", running.url);
    println!("login URL:       {}", running.url);
    println!("tenant id:       {}", cfg.tenant_id);
    println!("client id:       {}", cfg.client_id);
    println!("client secret:   {}", cfg.client_secret);
    println!("users:           {} (seed {})", cfg.users, cfg.seed);
    if let Some(path) = &args.cert_out {
        println!("certificate:     {}", path.display());
    }
    use std::io::Write;
    std::io::stdout().flush().ok();
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    running.shutdown();
    Ok(())
}
