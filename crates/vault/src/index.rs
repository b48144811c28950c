//! The chunk index: where each chunk lives (pack, offset, length).
//!
//! On the store, each pack `data/xx/<pack>` has exactly one index object
//! `index/<pack>` (sealed, postcard), written only after the pack is durable.
//! In memory, an account's index is a hash map from the first 128 bits of the
//! keyed chunk id to a 16-byte location: 32 bytes of key and value plus the
//! hash table's control byte and spare capacity, about 40–50 bytes per chunk.
//! The full 256-bit id is kept on the store and checked on every read.

use crate::crypto::ChunkId;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Id of a pack: BLAKE3 of its bytes (so `verify` can check a pack without
/// keys, and a pack name never repeats for different content).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PackId(pub [u8; 32]);

impl PackId {
    /// Hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parse the hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Some(PackId(v.try_into().ok()?))
    }
}

impl std::fmt::Debug for PackId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

/// One blob of a pack, as stored in the pack's index object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BlobEntry {
    pub id: ChunkId,
    pub offset: u32,
    pub len: u32,
    pub raw_len: u32,
}

/// Body of an index object (format version in the object header).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PackIndex {
    pub pack: PackId,
    pub pack_len: u64,
    pub blobs: Vec<BlobEntry>,
}

/// Location of a chunk (16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobLoc {
    pub pack: u32,
    pub offset: u32,
    pub len: u32,
    pub raw_len: u32,
}

/// In-memory index of one account.
#[derive(Default)]
pub(crate) struct Index {
    pub packs: Vec<PackId>,
    pub pack_len: Vec<u64>,
    pub pack_pos: HashMap<PackId, u32>,
    pub blobs: HashMap<u128, BlobLoc>,
}

impl Index {
    pub fn add(&mut self, pi: &PackIndex) {
        if self.pack_pos.contains_key(&pi.pack) {
            return;
        }
        let pos = self.packs.len() as u32;
        self.packs.push(pi.pack);
        self.pack_len.push(pi.pack_len);
        self.pack_pos.insert(pi.pack, pos);
        self.blobs.reserve(pi.blobs.len());
        for b in &pi.blobs {
            self.blobs.insert(
                b.id.short(),
                BlobLoc {
                    pack: pos,
                    offset: b.offset,
                    len: b.len,
                    raw_len: b.raw_len,
                },
            );
        }
    }

    pub fn get(&self, id: &ChunkId) -> Option<(PackId, BlobLoc)> {
        let loc = self.blobs.get(&id.short())?;
        Some((self.packs[loc.pack as usize], *loc))
    }
}

impl crate::repo::Account {
    /// Bring the cached index up to date with the store: load index objects
    /// of new packs; rebuild if packs disappeared (after gc).
    pub(crate) async fn refresh_index(&self) -> Result<()> {
        use futures::StreamExt;
        let listed = self.inner.loc.list(&self.rel("index")).await?;
        let mut present = HashSet::new();
        for (name, _) in &listed {
            let hexid = name.rsplit('/').next().unwrap_or_default();
            if let Some(p) = PackId::from_hex(hexid) {
                present.insert(p);
            }
        }
        let missing: Vec<PackId> = {
            let mut idx = self.inner.index.write();
            if idx.packs.iter().any(|p| !present.contains(p)) {
                *idx = Index::default();
            }
            present
                .into_iter()
                .filter(|p| !idx.pack_pos.contains_key(p))
                .collect()
        };
        let loaded: Vec<Result<Option<PackIndex>>> = futures::stream::iter(missing)
            .map(|p| async move {
                match self.load_pack_index(p).await {
                    Ok(pi) => Ok(Some(pi)),
                    // Deleted by gc since the listing.
                    Err(Error::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut idx = self.inner.index.write();
        for pi in loaded {
            if let Some(pi) = pi? {
                idx.add(&pi);
            }
        }
        Ok(())
    }

    pub(crate) async fn load_pack_index(&self, pack: PackId) -> Result<PackIndex> {
        let name = self.index_name(&pack);
        let body = self.get_sealed(crate::format::Kind::Index, &name).await?;
        let pi: PackIndex = postcard::from_bytes(&body).map_err(|e| Error::damaged(&name, e))?;
        if pi.pack != pack {
            return Err(Error::damaged(&name, "index names another pack"));
        }
        Ok(pi)
    }
}
