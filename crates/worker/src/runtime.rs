//! Everything a job needs: the catalog, the vault, the master key, and one
//! Graph client per tenant connection.
//!
//! The Graph clients are cached per connection so that every job of one
//! tenant shares one token cache and the per-mailbox throttling budgets;
//! two clients for one tenant would each believe they had the whole budget.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog::{AccountId, Catalog, CatalogKey, CatalogOptions, ConnectionId};
use chrono::{DateTime, Utc};
use graph::{GraphClient, GraphConfig};
use parking_lot::Mutex;
use rand::RngCore;
use vault::{Location, MasterKey, Repository};

use crate::error::{Result, WorkerError};

/// Where the catalog and the vault live.
#[derive(Clone, Debug)]
pub enum Storage {
    /// Everything under one directory: `DIR/catalog.db` (SQLite), `DIR/vault`
    /// and, unless another key source is given, `DIR/master.key`.
    Embedded {
        /// The data directory.
        data_dir: PathBuf,
    },
    /// Production: a catalog URL (PostgreSQL or SQLite) and a vault URL
    /// (a path, `s3://`, `az://`, `gs://`).
    Remote {
        /// Catalog URL.
        database_url: String,
        /// Vault URL.
        vault_url: String,
    },
}

/// Where the master key comes from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A file holding 64 hex digits (LIFEBOAT_MASTER_KEY_FILE).
    File(PathBuf),
    /// A password, stretched with the vault's Argon2id parameters
    /// (LIFEBOAT_VAULT_PASSWORD).
    Password(String),
}

/// Timings of the worker loop; tests shorten them.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// How long a claimed job is leased without a heartbeat.
    pub lease: Duration,
    /// How often a running job renews its lease and looks for a cancel
    /// request. Well below `lease`.
    pub heartbeat: Duration,
    /// Least time between two progress writes of one job.
    pub progress_interval: Duration,
    /// How often a worker returns jobs of dead workers to the queue.
    pub reclaim_interval: Duration,
    /// How long an idle worker waits before looking for jobs again.
    pub poll_interval: Duration,
    /// Catalog pool and clock.
    pub catalog: CatalogOptions,
    /// Extra trusted root certificate (PEM) for Graph, e.g. a simulator's.
    pub graph_root_pem: Option<String>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            heartbeat: Duration::from_secs(20),
            progress_interval: Duration::from_secs(1),
            reclaim_interval: Duration::from_secs(30),
            poll_interval: Duration::from_secs(2),
            catalog: CatalogOptions::default(),
            graph_root_pem: None,
        }
    }
}

/// The shared state of a worker process (and of CLI commands).
pub struct Runtime {
    /// The catalog.
    pub catalog: Catalog,
    /// The vault repository.
    pub vault: Repository,
    master: MasterKey,
    /// Timings.
    pub options: RuntimeOptions,
    graphs: Mutex<HashMap<ConnectionId, (DateTime<Utc>, GraphClient)>>,
    vaults: tokio::sync::Mutex<HashMap<AccountId, vault::Account>>,
    cache_dir: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}

/// The file name of the generated master key in a data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

impl Runtime {
    /// Open (creating on first use) the catalog and the vault.
    pub async fn open(
        storage: &Storage,
        key: Option<KeySource>,
        options: RuntimeOptions,
    ) -> Result<Arc<Runtime>> {
        let cache_dir = match storage {
            Storage::Embedded { data_dir } => data_dir.join("cache"),
            // Local disk is only a cache (ARCHITECTURE): anything here can
            // be deleted and is fetched again from the vault.
            Storage::Remote { .. } => std::env::var_os("LIFEBOAT_CACHE_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| std::env::temp_dir().join("lifeboat-cache")),
        };
        let (database_url, vault_url, key) = match storage {
            Storage::Embedded { data_dir } => {
                std::fs::create_dir_all(data_dir)
                    .map_err(|e| WorkerError::io(format!("creating {}", data_dir.display()), e))?;
                let key = key.unwrap_or_else(|| KeySource::File(data_dir.join(MASTER_KEY_FILE)));
                if let KeySource::File(p) = &key
                    && p == &data_dir.join(MASTER_KEY_FILE)
                {
                    ensure_key_file(p)?;
                }
                let db = data_dir.join("catalog.db");
                (
                    format!("sqlite://{}?mode=rwc", db.display()),
                    data_dir.join("vault").display().to_string(),
                    key,
                )
            }
            Storage::Remote {
                database_url,
                vault_url,
            } => (
                database_url.clone(),
                vault_url.clone(),
                key.ok_or_else(|| {
                    WorkerError::Config(
                        "a master key is needed: set LIFEBOAT_MASTER_KEY_FILE (64 hex digits) \
                         or LIFEBOAT_VAULT_PASSWORD"
                            .into(),
                    )
                })?,
            ),
        };
        let vault = open_or_init_vault(&vault_url).await?;
        let master_bytes = match &key {
            KeySource::File(p) => read_key_file(p)?,
            KeySource::Password(pw) => password_key(pw, &vault.config().kdf)?,
        };
        let catalog_key = CatalogKey::new(blake3::derive_key(
            "lifeboat catalog connection-secret key v1",
            &master_bytes,
        ));
        let catalog =
            Catalog::open_with(&database_url, catalog_key, options.catalog.clone()).await?;
        Ok(Arc::new(Runtime {
            catalog,
            vault,
            master: MasterKey::from_bytes(master_bytes),
            options,
            graphs: Mutex::new(HashMap::new()),
            vaults: tokio::sync::Mutex::new(HashMap::new()),
            cache_dir,
        }))
    }

    /// This process's local cache (search index files); never the only copy
    /// of anything.
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The account called `name`, created on first use.
    pub async fn account_by_name(&self, name: &str) -> Result<AccountId> {
        let name = name.trim();
        if name.is_empty() {
            return Err(WorkerError::Config(
                "the account name must not be empty".into(),
            ));
        }
        if let Some(a) = self
            .catalog
            .list_accounts()
            .await?
            .into_iter()
            .find(|a| a.name == name)
        {
            return Ok(a.id);
        }
        Ok(self.catalog.create_account(name, "local").await?.id)
    }

    /// The account's connection to a tenant: created, or (an account has one
    /// connection per tenant) the existing one with the new credentials.
    pub async fn connect(
        &self,
        account: AccountId,
        new: catalog::NewConnection,
    ) -> Result<catalog::Connection> {
        let existing = self
            .catalog
            .list_connections(account)
            .await?
            .into_iter()
            .find(|c| c.tenant_id == new.tenant_id.trim());
        match existing {
            None => Ok(self.catalog.create_connection(account, new).await?),
            Some(c) => {
                let same =
                    |a: &str, b: &str| a.trim_end_matches('/') == b.trim().trim_end_matches('/');
                if !same(&c.graph_url, &new.graph_url) || !same(&c.login_url, &new.login_url) {
                    return Err(WorkerError::Config(format!(
                        "this account is already connected to tenant {} through {} and {}",
                        c.tenant_id, c.graph_url, c.login_url
                    )));
                }
                Ok(self
                    .catalog
                    .reauthorize_connection(account, c.id, &new.client_id, &new.client_secret)
                    .await?)
            }
        }
    }

    /// The account's vault (opened, or created on first use).
    pub async fn vault_account(&self, account: AccountId) -> Result<vault::Account> {
        let mut cache = self.vaults.lock().await;
        if let Some(a) = cache.get(&account) {
            return Ok(a.clone());
        }
        let id = account.to_string();
        let acct = self
            .vault
            .open_or_init_account(&id, &self.master.account_key(&id))
            .await?;
        cache.insert(account, acct.clone());
        Ok(acct)
    }

    /// The Graph client of a connection, shared by every job of the tenant.
    pub async fn graph(&self, account: AccountId, connection: ConnectionId) -> Result<GraphClient> {
        let conn = self.catalog.get_connection(account, connection).await?;
        if let Some((at, client)) = self.graphs.lock().get(&connection)
            && *at == conn.updated_at
        {
            return Ok(client.clone());
        }
        let secret = self.catalog.connection_secret(account, connection).await?;
        let mut cfg = GraphConfig::new(
            &conn.graph_url,
            &conn.login_url,
            &conn.tenant_id,
            &conn.client_id,
            graph::Secret::new(secret.expose()),
        )?;
        cfg.extra_root_pem = self.options.graph_root_pem.clone();
        let client = GraphClient::new(cfg)?;
        // Larger tenants get a larger SharePoint budget from Microsoft; a
        // failed lookup keeps the smallest tier, which is never too much.
        match client.detect_sharepoint_budget().await {
            Ok(ru) => {
                tracing::debug!(tenant = %conn.tenant_id, ru, "SharePoint resource units per minute")
            }
            Err(e) => {
                tracing::warn!(tenant = %conn.tenant_id, error = %e, "tenant size unknown; keeping 1,250 resource units per minute")
            }
        }
        self.graphs
            .lock()
            .insert(connection, (conn.updated_at, client.clone()));
        Ok(client)
    }
}

async fn open_or_init_vault(url: &str) -> Result<Repository> {
    let loc = Location::from_url(url)?;
    match Repository::open(loc.clone()).await {
        Err(vault::Error::NoRepository(_)) => {
            match Repository::init(loc.clone(), vault::InitOptions::default()).await {
                // Another process created it first.
                Err(vault::Error::AlreadyExists(_)) => Ok(Repository::open(loc).await?),
                r => Ok(r?),
            }
        }
        r => Ok(r?),
    }
}

fn read_key_file(path: &Path) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| WorkerError::io(format!("reading the master key {}", path.display()), e))?;
    let raw = hex::decode(text.trim()).map_err(|_| {
        WorkerError::Config(format!(
            "master key {} is not hex (it must hold 64 hex digits)",
            path.display()
        ))
    })?;
    raw.try_into().map_err(|_| {
        WorkerError::Config(format!(
            "master key {} must hold 32 bytes (64 hex digits)",
            path.display()
        ))
    })
}

/// Create a random key file (mode 0600) unless one exists. Written to a
/// temporary file and linked into place, so a concurrent reader never sees
/// half a key and two processes starting at once agree on one key.
fn ensure_key_file(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".master.key.{}", uuid::Uuid::new_v4().simple()));
    let io = |e| WorkerError::io(format!("writing the master key {}", path.display()), e);
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(io)?;
        f.write_all(hex::encode(bytes).as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// The master key from a password: the same Argon2id derivation, with the
/// repository's salt and costs, as `vault::MasterKey::from_password` (whose
/// bytes are not exposed, and the catalog key is derived from them too).
fn password_key(password: &str, kdf: &vault::KdfParams) -> Result<[u8; 32]> {
    let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32))
        .map_err(|e| WorkerError::Config(format!("vault kdf parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = hex::decode(&kdf.salt)
        .map_err(|_| WorkerError::Config("vault kdf salt is not hex".into()))?;
    let mut out = [0u8; 32];
    argon
        .hash_password_into(password.as_bytes(), &salt, &mut out)
        .map_err(|e| WorkerError::Config(format!("vault kdf: {e}")))?;
    Ok(out)
}
