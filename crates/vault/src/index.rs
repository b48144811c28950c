//! The chunk index: where each chunk lives (pack, offset, length).
//!
//! On the store, a writer gives each pack `data/xx/<pack>` its own small
//! index object `index/<pack>` (sealed, postcard), written only after the
//! pack is durable. Index compaction later merges many of them into a few
//! *merged* index objects `index/m-<random>` (up to [`MERGED_MAX_BLOBS`]
//! chunks each), written before the objects they supersede are deleted. A
//! pack may therefore be described by several index objects at once (after
//! a crash between the two steps); loading deduplicates by pack id.
//!
//! In memory, an account's index is a hash map from the first 128 bits of the
//! keyed chunk id to a 16-byte location: 32 bytes of key and value plus the
//! hash table's control byte and spare capacity, about 40–50 bytes per chunk.
//! Each pack costs another ~80 bytes (its id twice, its length, and the name
//! of the merged object holding it). The full 256-bit id is kept on the store
//! and checked on every read.

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

/// Body of a merged index object (`index/m-<id>`, kind
/// [`Kind::MergedIndex`](crate::format::Kind::MergedIndex)): the indexes of
/// many packs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct MergedIndex {
    pub packs: Vec<PackIndex>,
}

/// Most chunks described by one merged index object (about 45 bytes each
/// on the store, so at most ~9 MB per object).
pub const MERGED_MAX_BLOBS: usize = 200_000;

/// Name prefix of merged index objects inside `index/`.
pub(crate) const MERGED_PREFIX: &str = "m-";

/// An object under `index/`, classified by its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum IndexObject {
    /// `index/<pack>`: the index of one pack.
    Single(PackId),
    /// `index/m-<id>`: a merged index (the full object name).
    Merged(String),
}

impl IndexObject {
    pub fn classify(name: &str) -> Option<Self> {
        let last = name.rsplit('/').next().unwrap_or_default();
        if let Some(rest) = last.strip_prefix(MERGED_PREFIX) {
            if rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(IndexObject::Merged(name.to_string()));
            }
            return None;
        }
        PackId::from_hex(last).map(IndexObject::Single)
    }
}

/// In-memory index of one account.
#[derive(Default)]
pub(crate) struct Index {
    pub packs: Vec<PackId>,
    pub pack_len: Vec<u64>,
    pub pack_pos: HashMap<PackId, u32>,
    pub blobs: HashMap<u128, BlobLoc>,
    /// Merged index objects already loaded, with the packs they describe.
    pub merged: HashMap<String, Vec<PackId>>,
    /// Single (one-pack) index objects seen at the last refresh.
    pub singles: usize,
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

/// Everything the index objects of an account say, as read by one
/// consistent pass (see [`Account::load_index_objects`]).
#[derive(Default)]
pub(crate) struct IndexListing {
    /// Each indexed pack once, with its blobs.
    pub packs: HashMap<PackId, PackIndex>,
    /// Single index objects present.
    pub singles: Vec<PackId>,
    /// Merged index objects present, with the packs each describes.
    pub merged: Vec<(String, Vec<PackId>)>,
    /// Objects under `index/` whose name is not an index object.
    pub unexpected: Vec<String>,
    /// Index objects that exist but cannot be read (name, error).
    pub unreadable: Vec<(String, Error)>,
}

/// How often a refresh re-lists when index objects change under it.
const REFRESH_ATTEMPTS: usize = 8;

enum Loaded {
    Single(PackIndex),
    Merged(String, MergedIndex),
    Gone,
    Unreadable(String, Error),
}

impl crate::repo::Account {
    async fn load_objects(
        &self,
        objects: Vec<IndexObject>,
        tolerate_damage: bool,
    ) -> Result<Vec<Loaded>> {
        use futures::StreamExt;
        let loaded: Vec<Result<Loaded>> = futures::stream::iter(objects)
            .map(|o| async move {
                let (name, r) = match &o {
                    IndexObject::Single(p) => (
                        self.index_name(p),
                        self.load_pack_index(*p).await.map(Loaded::Single),
                    ),
                    IndexObject::Merged(name) => (
                        name.clone(),
                        self.load_merged_index(name)
                            .await
                            .map(|m| Loaded::Merged(name.clone(), m)),
                    ),
                };
                match r {
                    Ok(l) => Ok(l),
                    // Deleted (by gc or compaction) since the listing.
                    Err(Error::NotFound(_)) => Ok(Loaded::Gone),
                    Err(e @ (Error::Damaged { .. } | Error::UnsupportedVersion { .. }))
                        if tolerate_damage =>
                    {
                        Ok(Loaded::Unreadable(name, e))
                    }
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        loaded.into_iter().collect()
    }

    /// Read every index object (single and merged) in one consistent pass:
    /// if an object listed disappears before it is read (compaction merged
    /// it, or gc removed it), the listing is repeated, because its packs may
    /// now be described by an object the first listing did not contain. So
    /// the result never has a gap: every pack indexed throughout the call is
    /// in it. With `tolerate_damage`, unreadable objects are reported
    /// instead of failing the call (verify).
    pub(crate) async fn load_index_objects(&self, tolerate_damage: bool) -> Result<IndexListing> {
        for _ in 0..REFRESH_ATTEMPTS {
            let mut out = IndexListing::default();
            let mut objects = Vec::new();
            for (name, _) in self.inner.loc.list(&self.rel("index")).await? {
                match IndexObject::classify(&name) {
                    Some(o) => objects.push(o),
                    None => out.unexpected.push(name),
                }
            }
            let mut gone = false;
            for l in self.load_objects(objects, tolerate_damage).await? {
                match l {
                    Loaded::Single(pi) => {
                        out.singles.push(pi.pack);
                        out.packs.entry(pi.pack).or_insert(pi);
                    }
                    Loaded::Merged(name, m) => {
                        out.merged
                            .push((name, m.packs.iter().map(|p| p.pack).collect()));
                        for pi in m.packs {
                            out.packs.entry(pi.pack).or_insert(pi);
                        }
                    }
                    Loaded::Gone => gone = true,
                    Loaded::Unreadable(name, e) => out.unreadable.push((name, e)),
                }
            }
            if !gone {
                return Ok(out);
            }
        }
        Err(Error::Task(format!(
            "index objects kept changing during {REFRESH_ATTEMPTS} listings; try again"
        )))
    }

    /// Bring the cached index up to date with the store: load index objects
    /// not seen yet; rebuild if packs disappeared (after gc). Merged objects
    /// already loaded are not read again, so a refresh costs one listing
    /// plus one GET per new index object.
    pub(crate) async fn refresh_index(&self) -> Result<()> {
        for _ in 0..REFRESH_ATTEMPTS {
            let listed = self.inner.loc.list(&self.rel("index")).await?;
            let mut singles = HashSet::new();
            let mut merged_names = Vec::new();
            for (name, _) in &listed {
                match IndexObject::classify(name) {
                    Some(IndexObject::Single(p)) => {
                        singles.insert(p);
                    }
                    Some(IndexObject::Merged(n)) => merged_names.push(n),
                    None => {}
                }
            }
            // Merged objects not loaded yet, and the packs of those loaded.
            let (new_merged, mut present) = {
                let idx = self.inner.index.read();
                let mut present: HashSet<PackId> = singles.clone();
                let mut new_merged = Vec::new();
                for n in &merged_names {
                    match idx.merged.get(n) {
                        Some(ps) => present.extend(ps.iter().copied()),
                        None => new_merged.push(IndexObject::Merged(n.clone())),
                    }
                }
                (new_merged, present)
            };
            let mut gone = false;
            let mut loaded_merged = Vec::new();
            for l in self.load_objects(new_merged, false).await? {
                match l {
                    Loaded::Merged(name, m) => {
                        present.extend(m.packs.iter().map(|p| p.pack));
                        loaded_merged.push((name, m));
                    }
                    Loaded::Gone => gone = true,
                    Loaded::Single(_) | Loaded::Unreadable(..) => {}
                }
            }
            if gone {
                continue;
            }
            let missing: Vec<IndexObject> = {
                let mut idx = self.inner.index.write();
                if idx.packs.iter().any(|p| !present.contains(p)) {
                    // Packs were deleted: rebuild from scratch.
                    *idx = Index::default();
                    drop(idx);
                    continue;
                }
                idx.merged.retain(|n, _| merged_names.contains(n));
                for (name, m) in loaded_merged {
                    for pi in &m.packs {
                        idx.add(pi);
                    }
                    idx.merged
                        .insert(name, m.packs.iter().map(|p| p.pack).collect());
                }
                idx.singles = singles.len();
                singles
                    .into_iter()
                    .filter(|p| !idx.pack_pos.contains_key(p))
                    .map(IndexObject::Single)
                    .collect()
            };
            for l in self.load_objects(missing, false).await? {
                match l {
                    Loaded::Single(pi) => self.inner.index.write().add(&pi),
                    Loaded::Gone => gone = true,
                    Loaded::Merged(..) | Loaded::Unreadable(..) => {}
                }
            }
            if !gone {
                return Ok(());
            }
        }
        Err(Error::Task(format!(
            "index objects kept changing during {REFRESH_ATTEMPTS} listings; try again"
        )))
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

    pub(crate) async fn load_merged_index(&self, name: &str) -> Result<MergedIndex> {
        let body = self
            .get_sealed(crate::format::Kind::MergedIndex, name)
            .await?;
        postcard::from_bytes(&body).map_err(|e| Error::damaged(name, e))
    }

    /// Write merged index objects describing `packs` (split at
    /// [`MERGED_MAX_BLOBS`] chunks); returns their names.
    pub(crate) async fn write_merged(&self, packs: Vec<PackIndex>) -> Result<Vec<String>> {
        use rand::RngCore;
        let mut groups: Vec<Vec<PackIndex>> = Vec::new();
        let mut blobs = 0usize;
        for pi in packs {
            if groups.is_empty() || blobs + pi.blobs.len() > MERGED_MAX_BLOBS {
                groups.push(Vec::new());
                blobs = 0;
            }
            blobs += pi.blobs.len();
            groups.last_mut().expect("pushed").push(pi);
        }
        let mut names = Vec::new();
        for packs in groups.into_iter().filter(|g| !g.is_empty()) {
            let mut id = [0u8; 16];
            rand::rng().fill_bytes(&mut id);
            let name = self.rel(&format!("index/{MERGED_PREFIX}{}", hex::encode(id)));
            let body = postcard::to_allocvec(&MergedIndex { packs }).expect("index serialises");
            self.inner
                .loc
                .put(
                    &name,
                    self.seal(crate::format::Kind::MergedIndex, &name, &body),
                )
                .await?;
            names.push(name);
        }
        Ok(names)
    }
}
