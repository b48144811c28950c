//! `verify`: structure only, or full (read and authenticate every byte).

use crate::crypto::{self, ChunkId};
use crate::error::{Error, Result};
use crate::format::{Header, Kind};
use crate::index::{PackId, PackIndex};
use crate::progress::Progress;
use crate::repo::Account;
use crate::tree::{Content, Node};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// One problem: the damaged or missing object and the items it affects.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// Object path in the store.
    pub object: String,
    /// What is wrong.
    pub reason: String,
    /// Affected items as "snapshot-id:path" (at most 20 listed).
    pub items: Vec<String>,
}

/// Result of a verify run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Packs seen.
    pub packs: usize,
    /// Chunks referenced by snapshots.
    pub chunks: usize,
    /// Bytes read and authenticated (full mode).
    pub bytes_checked: u64,
    /// Index objects (one-pack and merged).
    pub index_objects: usize,
    /// Packs not referenced by any index (left by interrupted writers;
    /// harmless, gc removes them).
    pub unindexed_packs: usize,
    /// Problems found. Empty means the repository is healthy.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether no problem was found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const MAX_ITEMS: usize = 20;

impl Account {
    /// Check the account. `full` reads and authenticates every stored byte.
    pub async fn verify(&self, full: bool, progress: &dyn Progress) -> Result<VerifyReport> {
        let mut r = VerifyReport::default();
        let mut problem = |object: String, reason: String, items: Vec<String>| {
            r.problems.push(Problem {
                object,
                reason,
                items,
            });
        };
        // Packs and index objects.
        let mut pack_sizes: HashMap<PackId, (String, u64)> = HashMap::new();
        for (name, meta) in self.inner.loc.list(&self.rel("data")).await? {
            match name.rsplit('/').next().and_then(PackId::from_hex) {
                Some(p) if name == self.pack_name(&p) => {
                    pack_sizes.insert(p, (name, meta.size));
                }
                _ => problem(name, "unexpected object in data/".into(), vec![]),
            }
        }
        // Index objects, single and merged, in one gap-free pass; a pack
        // described by several of them (a compaction was interrupted) is
        // fine and counted once.
        let listing = self.load_index_objects(true).await?;
        for name in listing.unexpected {
            problem(name, "unexpected object in index/".into(), vec![]);
        }
        for (name, e) in listing.unreadable {
            problem(name, e.to_string(), vec![]);
        }
        r.index_objects = listing.singles.len() + listing.merged.len();
        let mut indexes: Vec<PackIndex> = listing.packs.into_values().collect();
        indexes.sort_by_key(|pi| pi.pack);
        for pi in &indexes {
            match pack_sizes.get(&pi.pack) {
                None => problem(
                    self.pack_name(&pi.pack),
                    "pack is missing (named by its index)".into(),
                    vec![],
                ),
                Some((pn, size)) if *size != pi.pack_len => problem(
                    pn.clone(),
                    format!("size {size}, index says {}", pi.pack_len),
                    vec![],
                ),
                _ => {}
            }
        }
        let indexed: HashSet<PackId> = indexes.iter().map(|p| p.pack).collect();
        r.packs = pack_sizes.len();
        r.unindexed_packs = pack_sizes.keys().filter(|p| !indexed.contains(p)).count();
        // Chunk -> (pack name, entry) from the index objects.
        let mut where_: HashMap<u128, PackId> = HashMap::new();
        for pi in &indexes {
            for b in &pi.blobs {
                where_.insert(b.id.short(), pi.pack);
            }
        }
        // Other small objects.
        for dir in ["gc", "locks"] {
            for (name, _) in self.inner.loc.list(&self.rel(dir)).await? {
                let kind = if dir == "gc" {
                    Kind::Condemned
                } else {
                    Kind::Lock
                };
                match self.inner.loc.get(&name).await {
                    Ok(bytes) => {
                        if let Err(e) = self.open(kind, &name, &bytes) {
                            problem(name, e.to_string(), vec![]);
                        }
                    }
                    Err(Error::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        // Snapshots and trees: every referenced chunk must be indexed.
        self.refresh_index().await.ok();
        let mut users: HashMap<u128, Vec<String>> = HashMap::new();
        let mut seen_trees: HashSet<Content> = HashSet::new();
        let snaps = self.inner.loc.list(&self.rel("snapshots")).await?;
        progress.set_length(snaps.len() as u64);
        for (name, _) in snaps {
            progress.inc(1);
            let snap = match self
                .inner
                .loc
                .get(&name)
                .await
                .and_then(|b| self.decode_snapshot(&name, &b))
            {
                Ok(s) => s,
                Err(e) => {
                    problem(name, e.to_string(), vec![]);
                    continue;
                }
            };
            r.snapshots += 1;
            let mut stack: Vec<(String, Content)> = vec![(String::new(), snap.root.clone())];
            while let Some((path, c)) = stack.pop() {
                let label = format!("{}:/{}", snap.id, path);
                let mut note = |id: &ChunkId, label: &str| {
                    let u = users.entry(id.short()).or_default();
                    if u.len() < MAX_ITEMS {
                        u.push(label.to_string());
                    }
                };
                for id in &c.chunks {
                    note(id, &label);
                }
                if !seen_trees.insert(c.clone()) {
                    continue;
                }
                let missing: Vec<&ChunkId> = c
                    .chunks
                    .iter()
                    .filter(|id| !where_.contains_key(&id.short()))
                    .collect();
                if let Some(id) = missing.first() {
                    problem(
                        format!("chunk {}", id.to_hex()),
                        "folder chunk is missing".into(),
                        vec![label],
                    );
                    continue;
                }
                let tree = match self.load_tree(&c).await {
                    Ok(t) => t,
                    Err(e) => {
                        let object = match e {
                            Error::Damaged { ref object, .. } => object.clone(),
                            _ => format!("tree of {label}"),
                        };
                        problem(object, format!("folder unreadable: {e}"), vec![label]);
                        continue;
                    }
                };
                for e in &tree.entries {
                    let p = if path.is_empty() {
                        e.name.clone()
                    } else {
                        format!("{path}/{}", e.name)
                    };
                    match &e.node {
                        Node::Folder { tree, .. } => stack.push((p, tree.clone())),
                        Node::Item { content, .. } => {
                            let label = format!("{}:/{}", snap.id, p);
                            for id in &content.chunks {
                                note(id, &label);
                                if !where_.contains_key(&id.short()) {
                                    problem(
                                        format!("chunk {}", id.to_hex()),
                                        "chunk is missing".into(),
                                        vec![label.clone()],
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        r.chunks = users.len();
        if !full {
            return Ok(r);
        }
        // Full: read every pack, check its hash, header and every blob.
        progress.set_length(pack_sizes.values().map(|(_, s)| *s).sum());
        for pi in &indexes {
            let Some((name, _)) = pack_sizes.get(&pi.pack) else {
                continue;
            };
            let bytes = match self.inner.loc.get(name).await {
                Ok(b) => b,
                Err(e) => {
                    problem(name.clone(), e.to_string(), vec![]);
                    continue;
                }
            };
            progress.inc(bytes.len() as u64);
            r.bytes_checked += bytes.len() as u64;
            let mut bad_items = Vec::new();
            let mut reasons = Vec::new();
            if blake3::hash(&bytes).as_bytes() != &pi.pack.0 {
                reasons.push("content does not match its name".to_string());
            }
            if let Err(e) = Header::decode(&bytes, Kind::Pack, name) {
                reasons.push(e.to_string());
            }
            let keys = self.inner.keys.clone();
            let blobs = pi.blobs.clone();
            let data = bytes.clone();
            let failed: Vec<ChunkId> = tokio::task::spawn_blocking(move || {
                blobs
                    .iter()
                    .filter(|b| {
                        let end = b.offset as usize + b.len as usize;
                        end > data.len()
                            || crypto::open_blob(
                                &keys,
                                &b.id,
                                &data[b.offset as usize..end],
                                b.raw_len,
                            )
                            .is_none()
                    })
                    .map(|b| b.id)
                    .collect()
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
            if !failed.is_empty() {
                reasons.push(format!("{} chunk(s) fail authentication", failed.len()));
                for id in &failed {
                    if let Some(u) = users.get(&id.short()) {
                        for l in u {
                            if bad_items.len() < MAX_ITEMS && !bad_items.contains(l) {
                                bad_items.push(l.clone());
                            }
                        }
                    }
                }
            }
            if !reasons.is_empty() {
                problem(name.clone(), reasons.join("; "), bad_items);
            }
        }
        progress.finish();
        Ok(r)
    }
}
