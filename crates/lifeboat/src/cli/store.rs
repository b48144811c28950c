//! Where the catalog and vault are: `--data DIR` (embedded) or
//! `--database-url` and `--vault` (production); the master key from
//! LIFEBOAT_MASTER_KEY_FILE, LIFEBOAT_VAULT_PASSWORD, or DIR/master.key.

use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use worker::{KeySource, Runtime, RuntimeOptions, Storage};

/// Storage and account options shared by every operator command.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// Data directory of the embedded setup (SQLite catalog, local vault,
    /// generated master key).
    #[arg(
        long,
        global = true,
        env = "LIFEBOAT_DATA",
        default_value = "./lifeboat-data"
    )]
    pub data: PathBuf,
    /// Catalog database URL (postgres://... or sqlite://...), with --vault.
    #[arg(long, global = true, env = "LIFEBOAT_DATABASE_URL", requires = "vault")]
    pub database_url: Option<String>,
    /// Vault URL (a path, s3://, az://, gs://), with --database-url.
    #[arg(long, global = true, env = "LIFEBOAT_VAULT", requires = "database_url")]
    pub vault: Option<String>,
    /// The account every command is scoped to (created on first use).
    #[arg(
        long,
        global = true,
        env = "LIFEBOAT_ACCOUNT",
        default_value = "default"
    )]
    pub account: String,
    /// Job lease in seconds (how soon another worker takes over the jobs of
    /// a worker that died).
    #[arg(long, global = true, default_value_t = 120, hide = true)]
    pub lease_secs: u64,
    /// How often dead workers' jobs are looked for, in seconds.
    #[arg(long, global = true, default_value_t = 30, hide = true)]
    pub reclaim_secs: u64,
}

impl StoreArgs {
    /// Open the runtime.
    pub async fn open(&self) -> Result<Arc<Runtime>> {
        let storage = match (&self.database_url, &self.vault) {
            (Some(database_url), Some(vault_url)) => Storage::Remote {
                database_url: database_url.clone(),
                vault_url: vault_url.clone(),
            },
            (None, None) => Storage::Embedded {
                data_dir: self.data.clone(),
            },
            _ => bail!("--database-url and --vault go together"),
        };
        let key = if let Some(f) = std::env::var_os("LIFEBOAT_MASTER_KEY_FILE") {
            Some(KeySource::File(PathBuf::from(f)))
        } else {
            std::env::var("LIFEBOAT_VAULT_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(KeySource::Password)
        };
        if self.lease_secs < 2 {
            bail!("--lease-secs must be at least 2");
        }
        let lease = Duration::from_secs(self.lease_secs);
        let options = RuntimeOptions {
            lease,
            heartbeat: (lease / 4).max(Duration::from_millis(500)),
            reclaim_interval: Duration::from_secs(self.reclaim_secs.max(1)),
            poll_interval: Duration::from_millis(500),
            ..Default::default()
        };
        Ok(Runtime::open(&storage, key, options).await?)
    }
}
