//! Snapshot objects (`snapshots/<id>`): sealed JSON naming the root tree.

use crate::error::{Error, Result};
use crate::format::Kind;
use crate::repo::Account;
use crate::tree::Content;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Snapshot id (128 random bits, hex).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SnapshotId(pub String);

impl SnapshotId {
    pub(crate) fn random() -> Self {
        let mut b = [0u8; 16];
        rand::rng().fill_bytes(&mut b);
        SnapshotId(hex::encode(b))
    }
}

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SnapshotId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(SnapshotId(s.to_ascii_lowercase()))
        } else {
            Err(Error::Invalid(format!("bad snapshot id {s:?}")))
        }
    }
}

/// What a snapshot wrote.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotStats {
    /// Items in the snapshot that were put or carried (not those inside
    /// subtrees carried as a whole).
    pub items: u64,
    /// Their bytes.
    pub bytes: u64,
    /// New chunks stored.
    pub new_chunks: u64,
    /// Chunks that were already stored.
    pub dup_chunks: u64,
    /// Plaintext bytes of new chunks.
    pub new_bytes: u64,
    /// Stored (compressed, encrypted) bytes of new chunks.
    pub stored_bytes: u64,
    /// Packs written.
    pub packs: u64,
}

/// A snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SnapshotInfo {
    /// Id.
    pub id: SnapshotId,
    /// Commit time.
    pub time: DateTime<Utc>,
    /// Parent snapshot.
    pub parent: Option<SnapshotId>,
    /// Root tree.
    pub root: Content,
    /// Caller metadata (task, entity, delta tokens...); stored encrypted.
    pub meta: serde_json::Value,
    /// Statistics.
    pub stats: SnapshotStats,
}

impl Account {
    fn snapshot_name(&self, id: &SnapshotId) -> String {
        self.rel(&format!("snapshots/{}", id.0))
    }

    pub(crate) async fn write_snapshot(&self, info: &SnapshotInfo) -> Result<()> {
        let name = self.snapshot_name(&info.id);
        let body = serde_json::to_vec(info).expect("snapshot serialises");
        let body = zstd::bulk::compress(&body, 3).map_err(|e| Error::Task(e.to_string()))?;
        self.inner
            .loc
            .put(&name, self.seal(Kind::Snapshot, &name, &body))
            .await
    }

    pub(crate) fn decode_snapshot(&self, name: &str, bytes: &[u8]) -> Result<SnapshotInfo> {
        let body = self.open(Kind::Snapshot, name, bytes)?;
        let body = zstd::stream::decode_all(&body[..]).map_err(|e| Error::damaged(name, e))?;
        serde_json::from_slice(&body).map_err(|e| Error::damaged(name, e))
    }

    /// One snapshot.
    pub async fn snapshot(&self, id: &SnapshotId) -> Result<SnapshotInfo> {
        let name = self.snapshot_name(id);
        let bytes = self.inner.loc.get(&name).await?;
        self.decode_snapshot(&name, &bytes)
    }

    /// All snapshots of the account, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        use futures::StreamExt;
        let names = self.inner.loc.list(&self.rel("snapshots")).await?;
        let loaded: Vec<Result<Option<SnapshotInfo>>> = futures::stream::iter(names)
            .map(|(name, _)| async move {
                match self.inner.loc.get(&name).await {
                    Ok(bytes) => self.decode_snapshot(&name, &bytes).map(Some),
                    // Forgotten concurrently.
                    Err(Error::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut out = Vec::new();
        for s in loaded {
            if let Some(s) = s? {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Delete snapshots (their data goes at the next gc). With Object Lock
    /// configured, snapshots still under retention are refused (nothing is
    /// deleted then).
    pub async fn forget(&self, ids: &[SnapshotId]) -> Result<()> {
        if let Some(days) = self.inner.config.object_lock_days {
            for id in ids {
                let s = self.snapshot(id).await?;
                let until = s.time + chrono::Duration::days(days as i64);
                if until > Utc::now() {
                    return Err(Error::Retained(id.0.clone(), until.to_rfc3339()));
                }
            }
        }
        for id in ids {
            self.inner.loc.delete(&self.snapshot_name(id)).await?;
        }
        Ok(())
    }
}
