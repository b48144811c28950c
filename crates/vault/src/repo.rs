//! Repository configuration, accounts and their key files.

use crate::crypto::{self, AccountKey, DataKeys, MasterKey};
use crate::error::{Error, Result};
use crate::format::{HEADER_LEN, Header, Kind};
use crate::index::Index;
use crate::store::Location;
use crate::tree::TreeCache;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// FastCDC parameters (bytes).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Minimum chunk size; smaller items are stored whole.
    pub min: u32,
    /// Average chunk size.
    pub avg: u32,
    /// Maximum chunk size.
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: 4 * 1024,
            avg: 16 * 1024,
            max: 128 * 1024,
        }
    }
}

/// Argon2id parameters and salt for password-derived master keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KdfParams {
    /// Algorithm name (always "argon2id").
    pub alg: String,
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
    /// Salt, hex.
    pub salt: String,
}

/// The plaintext repository configuration object (`config`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Random repository id.
    pub repo_id: String,
    /// Creation time.
    pub created: DateTime<Utc>,
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// zstd level.
    pub zstd_level: i32,
    /// Password KDF.
    pub kdf: KdfParams,
    /// S3 Object Lock: the bucket's default retention in days (the bucket
    /// is created with Object Lock and a default COMPLIANCE retention by
    /// the operator). Snapshots younger than this cannot be forgotten.
    #[serde(default)]
    pub object_lock_days: Option<u32>,
}

/// Options for [`Repository::init`].
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// Target pack size (default 16 MiB).
    pub pack_size: u32,
    /// zstd level (default 3).
    pub zstd_level: i32,
    /// Argon2 memory in KiB (default 64 MiB).
    pub kdf_m_kib: u32,
    /// Argon2 iterations (default 3).
    pub kdf_t: u32,
    /// Object Lock retention of the bucket, in days (see [`RepoConfig`]).
    pub object_lock_days: Option<u32>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            pack_size: 16 * 1024 * 1024,
            zstd_level: 3,
            kdf_m_kib: 64 * 1024,
            kdf_t: 3,
            object_lock_days: None,
        }
    }
}

/// Timing knobs of the locking and gc protocol.
#[derive(Clone, Debug)]
pub struct Timing {
    /// A lock not refreshed for this long belongs to a dead process.
    pub lock_stale: Duration,
    /// How often a live writer refreshes its lock (must be well below
    /// `lock_stale`).
    pub lock_refresh: Duration,
    /// Minimum age of a condemnation list before its packs may be deleted.
    pub gc_grace: Duration,
    /// Margin for clock granularity of the store (S3 has 1 s resolution).
    pub clock_margin: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lock_stale: Duration::from_secs(30 * 60),
            lock_refresh: Duration::from_secs(5 * 60),
            gc_grace: Duration::from_secs(60 * 60),
            clock_margin: Duration::from_secs(2),
        }
    }
}

const CONFIG: &str = "config";

/// A repository: one bucket/prefix holding any number of sealed accounts.
#[derive(Clone, Debug)]
pub struct Repository {
    pub(crate) loc: Location,
    config: RepoConfig,
}

fn encode_config(cfg: &RepoConfig) -> Vec<u8> {
    let mut out = Header::current(Kind::Config).encode().to_vec();
    out.extend_from_slice(&serde_json::to_vec_pretty(cfg).expect("config serialises"));
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

fn decode_config(bytes: &[u8]) -> Result<RepoConfig> {
    Header::decode(bytes, Kind::Config, CONFIG)?;
    if bytes.len() < HEADER_LEN + 32 {
        return Err(Error::damaged(CONFIG, "truncated"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(Error::damaged(CONFIG, "checksum mismatch"));
    }
    serde_json::from_slice(&body[HEADER_LEN..]).map_err(|e| Error::damaged(CONFIG, e))
}

impl Repository {
    /// Create a new repository at `loc`.
    pub async fn init(loc: Location, opts: InitOptions) -> Result<Self> {
        if loc.exists(CONFIG).await? {
            return Err(Error::AlreadyExists(loc.path(CONFIG).to_string()));
        }
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let config = RepoConfig {
            repo_id: hex::encode(id),
            created: Utc::now(),
            chunker: opts.chunker,
            pack_size: opts.pack_size,
            zstd_level: opts.zstd_level,
            kdf: KdfParams {
                alg: "argon2id".into(),
                m_kib: opts.kdf_m_kib,
                t: opts.kdf_t,
                p: 1,
                salt: hex::encode(salt),
            },
            object_lock_days: opts.object_lock_days,
        };
        if !loc.put_new(CONFIG, encode_config(&config)).await? {
            return Err(Error::AlreadyExists(loc.path(CONFIG).to_string()));
        }
        Ok(Repository { loc, config })
    }

    /// Open an existing repository.
    pub async fn open(loc: Location) -> Result<Self> {
        let bytes = match loc.get(CONFIG).await {
            Ok(b) => b,
            Err(Error::NotFound(_)) => return Err(Error::NoRepository(loc.path("").to_string())),
            Err(e) => return Err(e),
        };
        let config = decode_config(&bytes)?;
        Ok(Repository { loc, config })
    }

    /// The configuration.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// Derive the master key from a password with this repository's KDF.
    pub fn master_key_from_password(&self, password: &str) -> Result<MasterKey> {
        MasterKey::from_password(password, &self.config.kdf)
    }

    /// The directory of an account. Derived from the repository id and the
    /// account id, so names of accounts are not visible in the store.
    pub(crate) fn account_dir(&self, account_id: &str) -> String {
        let mut material = self.config.repo_id.as_bytes().to_vec();
        material.push(0);
        material.extend_from_slice(account_id.as_bytes());
        let h = blake3::derive_key("lifeboat vault v1 account locator", &material);
        format!("accounts/{}", &hex::encode(h)[..32])
    }

    async fn key_files(&self, dir: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .loc
            .list(&format!("{dir}/keys"))
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        Ok(names)
    }

    async fn unwrap_keys(&self, dir: &str, key: &AccountKey) -> Result<(DataKeys, Vec<String>)> {
        let names = self.key_files(dir).await?;
        if names.is_empty() {
            return Err(Error::NoAccount);
        }
        let mut found: Option<DataKeys> = None;
        let mut opened = Vec::new();
        let mut damaged = None;
        let tried = names.join(", ");
        for name in names {
            let bytes = self.loc.get(&name).await?;
            match crypto::open_object(&key.0, Kind::KeyFile, dir.as_bytes(), &bytes, &name) {
                Ok(plain) => {
                    let keys: DataKeys =
                        postcard::from_bytes(&plain).map_err(|e| Error::damaged(&name, e))?;
                    if found.is_none() {
                        found = Some(keys);
                    }
                    opened.push(name);
                }
                Err(e @ Error::UnsupportedVersion { .. }) => return Err(e),
                Err(e @ Error::Damaged { .. }) if !e.to_string().contains("authentication") => {
                    damaged = Some(e)
                }
                Err(_) => {}
            }
        }
        match found {
            Some(k) => Ok((k, opened)),
            None => Err(damaged.unwrap_or(Error::WrongKey(tried))),
        }
    }

    fn wrap_keys(dir: &str, key: &AccountKey, keys: &DataKeys) -> Vec<u8> {
        let plain = postcard::to_allocvec(keys).expect("keys serialise");
        crypto::seal_object(
            &key.0,
            Header::current(Kind::KeyFile),
            dir.as_bytes(),
            &plain,
        )
    }

    fn account(&self, dir: String, keys: DataKeys, timing: Timing) -> Account {
        Account {
            inner: Arc::new(AccountInner {
                loc: self.loc.clone(),
                dir,
                keys,
                config: self.config.clone(),
                timing,
                index: parking_lot::RwLock::new(Index::default()),
                trees: TreeCache::new(4096),
                compact_at: crate::compact::DEFAULT_COMPACT_AT,
            }),
        }
    }

    /// Create an account (fails with [`Error::AlreadyExists`] if it exists).
    pub async fn init_account(&self, account_id: &str, key: &AccountKey) -> Result<Account> {
        let dir = self.account_dir(account_id);
        let keys = DataKeys::generate();
        let name = format!("{dir}/keys/0");
        if !self
            .loc
            .put_new(&name, Self::wrap_keys(&dir, key, &keys))
            .await?
        {
            return Err(Error::AlreadyExists(format!("account {name}")));
        }
        Ok(self.account(dir, keys, Timing::default()))
    }

    /// Open an account.
    pub async fn open_account(&self, account_id: &str, key: &AccountKey) -> Result<Account> {
        let dir = self.account_dir(account_id);
        let (keys, _) = self.unwrap_keys(&dir, key).await?;
        Ok(self.account(dir, keys, Timing::default()))
    }

    /// Open an account, creating it on first use.
    pub async fn open_or_init_account(
        &self,
        account_id: &str,
        key: &AccountKey,
    ) -> Result<Account> {
        match self.open_account(account_id, key).await {
            Err(Error::NoAccount) => match self.init_account(account_id, key).await {
                Err(Error::AlreadyExists(_)) => self.open_account(account_id, key).await,
                r => r,
            },
            r => r,
        }
    }

    /// Key rotation: re-wrap the account's data keys under `new` and remove
    /// the key files that `old` opened. No data is rewritten.
    pub async fn rewrap_account(
        &self,
        account_id: &str,
        old: &AccountKey,
        new: &AccountKey,
    ) -> Result<()> {
        let dir = self.account_dir(account_id);
        let (keys, opened) = self.unwrap_keys(&dir, old).await?;
        let mut kid = [0u8; 8];
        rand::rng().fill_bytes(&mut kid);
        let name = format!("{dir}/keys/{}", hex::encode(kid));
        self.loc
            .put(&name, Self::wrap_keys(&dir, new, &keys))
            .await?;
        for o in opened {
            self.loc.delete(&o).await?;
        }
        Ok(())
    }
}

/// One account of a repository, opened with its key. Cheap to clone.
#[derive(Clone)]
pub struct Account {
    pub(crate) inner: Arc<AccountInner>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) struct AccountInner {
    pub loc: Location,
    pub dir: String,
    pub keys: DataKeys,
    pub config: RepoConfig,
    pub timing: Timing,
    pub index: parking_lot::RwLock<Index>,
    pub trees: TreeCache,
    /// Single index objects that make a writer compact after its commit
    /// (0: never).
    pub compact_at: usize,
}

impl Account {
    /// Replace the locking/gc timing (tests use short values).
    pub fn with_timing(self, timing: Timing) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|arc| AccountInner {
            loc: arc.loc.clone(),
            dir: arc.dir.clone(),
            keys: arc.keys.clone(),
            config: arc.config.clone(),
            timing: arc.timing.clone(),
            index: parking_lot::RwLock::new(Index::default()),
            trees: TreeCache::new(4096),
            compact_at: arc.compact_at,
        });
        Account {
            inner: Arc::new(AccountInner { timing, ..inner }),
        }
    }

    /// Compact the index after a commit once this many single (one-pack)
    /// index objects exist; 0 turns automatic compaction off
    /// ([`Account::compact_index`] and gc still compact). Default
    /// [`DEFAULT_COMPACT_AT`](crate::DEFAULT_COMPACT_AT).
    pub fn with_index_compaction(self, at: usize) -> Self {
        let inner = Arc::try_unwrap(self.inner).unwrap_or_else(|arc| AccountInner {
            loc: arc.loc.clone(),
            dir: arc.dir.clone(),
            keys: arc.keys.clone(),
            config: arc.config.clone(),
            timing: arc.timing.clone(),
            index: parking_lot::RwLock::new(Index::default()),
            trees: TreeCache::new(4096),
            compact_at: arc.compact_at,
        });
        Account {
            inner: Arc::new(AccountInner {
                compact_at: at,
                ..inner
            }),
        }
    }

    /// The account's directory in the store (for operators).
    pub fn dir(&self) -> &str {
        &self.inner.dir
    }

    pub(crate) fn rel(&self, sub: &str) -> String {
        format!("{}/{}", self.inner.dir, sub)
    }

    pub(crate) fn pack_name(&self, pack: &crate::index::PackId) -> String {
        let h = pack.to_hex();
        format!("{}/data/{}/{}", self.inner.dir, &h[..2], h)
    }

    pub(crate) fn index_name(&self, pack: &crate::index::PackId) -> String {
        format!("{}/index/{}", self.inner.dir, pack.to_hex())
    }

    /// Seal a small object of this account, bound to its name.
    pub(crate) fn seal(&self, kind: Kind, name: &str, body: &[u8]) -> Vec<u8> {
        crypto::seal_object(
            &self.inner.keys.enc,
            Header::current(kind),
            name.as_bytes(),
            body,
        )
    }

    /// Open a small object of this account.
    pub(crate) fn open(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        crypto::open_object(&self.inner.keys.enc, kind, name.as_bytes(), bytes, name)
    }

    /// Read and open an object.
    pub(crate) async fn get_sealed(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let bytes = self.inner.loc.get(name).await?;
        self.open(kind, name, &bytes)
    }
}
