//! The index's home is the vault: its files are named objects of the account
//! (`search/v1/files/<file>`, sealed with the account's key); a local
//! directory is only a cache.
//!
//! - After each commit the writer uploads the files the cache has and the
//!   vault lacks (tantivy's segment files are immutable: a name is never
//!   rewritten), then `.managed.json`, then `meta.json` last, so a reader
//!   that sees a `meta.json` finds every file it names; then it deletes the
//!   files the cache no longer has (merged-away segments).
//! - Opening (or refreshing) pulls: if the vault's `meta.json` differs from
//!   the cache's, the missing files are downloaded and files the vault no
//!   longer has are dropped from the cache.
//!
//! One writer per account: [`Lease`] is the object `search/v1/lease`, created
//! only if absent (conditional PUT). A lease not renewed for [`LEASE_TTL`]
//! (by the store's clock) is taken over; the writer renews it at every
//! commit and checks, before uploading, that the lease is still its own.

use std::collections::HashSet;
use std::path::Path;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Prefix of the index's files in the vault.
pub const FILES: &str = "search/v1/files";
/// The writer lease.
pub const LEASE: &str = "search/v1/lease";
/// A lease not renewed for this long is abandoned.
pub const LEASE_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// tantivy's own lock files: local only.
fn is_local_only(name: &str) -> bool {
    name.starts_with(".tantivy-") || name.ends_with(".lock")
}

fn local_files(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file()
            && let Some(n) = e.file_name().to_str()
            && !is_local_only(n)
        {
            out.push(n.to_string());
        }
    }
    out.sort();
    Ok(out)
}

fn remote_name(file: &str) -> String {
    format!("{FILES}/{file}")
}

async fn remote_files(account: &vault::Account) -> Result<HashSet<String>> {
    let base = format!("{FILES}/");
    Ok(account
        .list_objects(FILES)
        .await?
        .into_iter()
        .filter_map(|o| o.name.strip_prefix(&base).map(str::to_string))
        .collect())
}

/// Make the cache hold what the vault holds. Returns whether anything changed.
/// A writer may delete merged-away files while we download: then we start
/// again from its newer `meta.json`.
pub async fn pull(account: &vault::Account, dir: &Path) -> Result<bool> {
    let mut attempt = 0;
    loop {
        match pull_once(account, dir).await {
            Err(Error::Vault(vault::Error::NotFound(_))) if attempt < 3 => attempt += 1,
            r => return r,
        }
    }
}

async fn pull_once(account: &vault::Account, dir: &Path) -> Result<bool> {
    std::fs::create_dir_all(dir)?;
    let remote_meta = match account.get_object(&remote_name("meta.json")).await {
        Ok(b) => b,
        Err(vault::Error::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    // (A NotFound below means a file vanished meanwhile: retried by `pull`.)
    let local_meta = std::fs::read(dir.join("meta.json")).ok();
    if local_meta.as_deref() == Some(remote_meta.as_slice()) {
        return Ok(false);
    }
    let remote = remote_files(account).await?;
    let local: HashSet<String> = local_files(dir)?.into_iter().collect();
    for f in &remote {
        if f != "meta.json" && (f == ".managed.json" || !local.contains(f)) {
            let bytes = account.get_object(&remote_name(f)).await?;
            write_atomic(&dir.join(f), &bytes)?;
        }
    }
    for f in local.difference(&remote) {
        let _ = std::fs::remove_file(dir.join(f));
    }
    write_atomic(&dir.join("meta.json"), &remote_meta)?;
    Ok(true)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("lb-tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Upload what the cache has and the vault lacks (see the module docs).
pub async fn push(account: &vault::Account, dir: &Path) -> Result<()> {
    let remote = remote_files(account).await?;
    let local = local_files(dir)?;
    let last = ["meta.json", ".managed.json"];
    for f in local.iter().filter(|f| !last.contains(&f.as_str())) {
        if !remote.contains(f) {
            let bytes = std::fs::read(dir.join(f))?;
            account.put_object(&remote_name(f), &bytes).await?;
        }
    }
    for f in last.iter().rev() {
        if let Ok(bytes) = std::fs::read(dir.join(f)) {
            account.put_object(&remote_name(f), &bytes).await?;
        }
    }
    let local: HashSet<String> = local.into_iter().collect();
    for f in remote.difference(&local) {
        account.delete_object(&remote_name(f)).await?;
    }
    Ok(())
}

/// Remove every index file from the vault (before a rebuild).
pub async fn clear(account: &vault::Account) -> Result<()> {
    for f in remote_files(account).await? {
        account.delete_object(&remote_name(&f)).await?;
    }
    Ok(())
}

#[derive(Serialize, Deserialize, PartialEq)]
struct LeaseBody {
    holder: String,
}

/// The single-writer lease of an account's index.
pub struct Lease {
    account: vault::Account,
    holder: String,
}

impl Lease {
    /// Take the lease, or fail with [`Error::Busy`] if a live writer holds it.
    pub async fn acquire(account: &vault::Account) -> Result<Lease> {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let holder = hex::encode(id);
        let body = serde_json::to_vec(&LeaseBody {
            holder: holder.clone(),
        })?;
        for _ in 0..2 {
            if account.put_object_new(LEASE, &body).await? {
                return Ok(Lease {
                    account: account.clone(),
                    holder,
                });
            }
            // Held: take it over only if abandoned, by the store's clock
            // (the listing's time and the probe's time are both the store's).
            let probe = "search/v1/clock";
            account.put_object(probe, b"").await?;
            let objects = account.list_objects("search/v1").await?;
            let at = |n: &str| objects.iter().find(|o| o.name == n).map(|o| o.modified);
            match (at(LEASE), at(probe)) {
                (Some(renewed), Some(now)) if now - renewed > LEASE_TTL => {
                    account.delete_object(LEASE).await?;
                }
                (None, _) => {}
                _ => return Err(Error::Busy),
            }
        }
        Err(Error::Busy)
    }

    /// Renew the lease; fails with [`Error::LeaseLost`] if another writer
    /// took it over meanwhile.
    pub async fn renew(&self) -> Result<()> {
        let current: Option<LeaseBody> = match self.account.get_object(LEASE).await {
            Ok(b) => serde_json::from_slice(&b).ok(),
            Err(vault::Error::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if current.map(|c| c.holder) != Some(self.holder.clone()) {
            return Err(Error::LeaseLost);
        }
        let body = serde_json::to_vec(&LeaseBody {
            holder: self.holder.clone(),
        })?;
        self.account.put_object(LEASE, &body).await?;
        Ok(())
    }

    /// Give the lease up.
    pub async fn release(self) -> Result<()> {
        if self.renew().await.is_ok() {
            self.account.delete_object(LEASE).await?;
        }
        Ok(())
    }
}
