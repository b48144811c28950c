//! Reading snapshots: items (streaming), folders, subtrees, diffs.

use crate::crypto::{self, ChunkId};
use crate::error::{Error, Result};
use crate::index::{BlobLoc, PackId};
use crate::repo::Account;
use crate::snapshot::SnapshotInfo;
use crate::tree::{Content, Entry, Node, Tree, split_path};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::sync::Arc;

/// Consecutive chunks of one pack, read with one ranged GET.
type Run = Vec<(ChunkId, Option<(PackId, BlobLoc)>)>;

/// Chunks fetched ahead when streaming an item.
const READ_AHEAD: usize = 8;

/// A difference between two snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Change {
    /// Only in the newer snapshot.
    Added(String),
    /// Only in the older snapshot.
    Removed(String),
    /// In both, with different content or metadata.
    Modified(String),
}

impl Account {
    pub(crate) async fn locate(&self, id: &ChunkId) -> Result<(PackId, BlobLoc)> {
        if let Some(l) = self.inner.index.read().get(id) {
            return Ok(l);
        }
        self.refresh_index().await?;
        self.inner
            .index
            .read()
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("chunk {}", id.to_hex())))
    }

    /// Read one chunk: ranged GET, decrypt, decompress, check its keyed id.
    pub(crate) async fn read_chunk(&self, id: ChunkId) -> Result<Bytes> {
        let (mut pack, mut loc) = self.locate(&id).await?;
        let mut name = self.pack_name(&pack);
        let range = |l: &BlobLoc| l.offset as u64..l.offset as u64 + l.len as u64;
        let sealed = match self.inner.loc.get_range(&name, range(&loc)).await {
            Ok(b) => b,
            Err(Error::NotFound(_)) => {
                // gc repacked the chunk and deleted the old pack since our
                // index was loaded: reload and retry once.
                self.refresh_index().await?;
                (pack, loc) = self.locate(&id).await?;
                name = self.pack_name(&pack);
                self.inner.loc.get_range(&name, range(&loc)).await?
            }
            Err(e) => return Err(e),
        };
        let _ = pack;
        let account = self.clone();
        tokio::task::spawn_blocking(move || {
            crypto::open_blob(&account.inner.keys, &id, &sealed, loc.raw_len)
                .map(Bytes::from)
                .ok_or_else(|| {
                    Error::damaged(&name, format!("chunk {} fails authentication", id.to_hex()))
                })
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Stream stored content chunk by chunk. Chunks stored next to each
    /// other in one pack (the usual case: a writer packs an item's new
    /// chunks in order) are fetched with one ranged GET of up to 4 MiB;
    /// a few such reads run ahead.
    pub fn read_content(&self, content: &Content) -> BoxStream<'static, Result<Bytes>> {
        const MAX_RUN: u64 = 4 * 1024 * 1024;
        const MAX_GAP: u64 = 64 * 1024;
        let mut runs: Vec<Run> = Vec::new();
        {
            let idx = self.inner.index.read();
            for id in &content.chunks {
                let loc = idx.get(id);
                let joins = match (
                    runs.last().and_then(|r| r.last()),
                    runs.last().and_then(|r| r.first()),
                ) {
                    (Some((_, Some((pp, pl)))), Some((_, Some((_, first))))) => match &loc {
                        Some((p, l)) => {
                            p == pp
                                && l.offset as u64 >= pl.offset as u64 + pl.len as u64
                                && (l.offset as u64) <= pl.offset as u64 + pl.len as u64 + MAX_GAP
                                && (l.offset as u64 + l.len as u64) - first.offset as u64 <= MAX_RUN
                        }
                        None => false,
                    },
                    _ => false,
                };
                if joins {
                    runs.last_mut().expect("non-empty").push((*id, loc));
                } else {
                    runs.push(vec![(*id, loc)]);
                }
            }
        }
        let account = self.clone();
        futures::stream::iter(runs)
            .map(move |run| {
                let a = account.clone();
                async move { a.read_run(run).await }
            })
            .buffered(READ_AHEAD)
            .map_ok(|v| futures::stream::iter(v.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    async fn read_run(&self, run: Run) -> Result<Vec<Bytes>> {
        let single = |a: Account, run: Run| async move {
            let mut out = Vec::with_capacity(run.len());
            for (id, _) in run {
                out.push(a.read_chunk(id).await?);
            }
            Ok::<_, Error>(out)
        };
        let (Some((pack, first)), Some((_, last))) = (run[0].1, run[run.len() - 1].1) else {
            return single(self.clone(), run).await;
        };
        if run.len() == 1 {
            return single(self.clone(), run).await;
        }
        let name = self.pack_name(&pack);
        let start = first.offset as u64;
        let end = last.offset as u64 + last.len as u64;
        let bytes = match self.inner.loc.get_range(&name, start..end).await {
            Ok(b) => b,
            // Repacked and deleted since our index was loaded.
            Err(Error::NotFound(_)) => return single(self.clone(), run).await,
            Err(e) => return Err(e),
        };
        let keys = self.inner.keys.clone();
        tokio::task::spawn_blocking(move || {
            run.iter()
                .map(|(id, loc)| {
                    let l = loc.expect("located").1;
                    let from = (l.offset as u64 - start) as usize;
                    let sealed = &bytes[from..from + l.len as usize];
                    crypto::open_blob(&keys, id, sealed, l.raw_len)
                        .map(Bytes::from)
                        .ok_or_else(|| {
                            Error::damaged(
                                &name,
                                format!("chunk {} fails authentication", id.to_hex()),
                            )
                        })
                })
                .collect()
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    pub(crate) async fn read_all(&self, content: &Content) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(content.size as usize);
        let mut s = self.read_content(content);
        while let Some(b) = s.try_next().await? {
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    /// Load and decode a tree (cached).
    pub async fn load_tree(&self, content: &Content) -> Result<Arc<Tree>> {
        if let Some(t) = self.inner.trees.get(content) {
            return Ok(t);
        }
        let bytes = self.read_all(content).await?;
        let what = content
            .chunks
            .first()
            .map(|c| format!("tree {}", c.to_hex()))
            .unwrap_or_default();
        let tree = Arc::new(Tree::decode(&bytes, &what)?);
        self.inner.trees.put(content.clone(), tree.clone());
        Ok(tree)
    }

    /// The node at `path` ("" is the root folder).
    pub async fn lookup(&self, snap: &SnapshotInfo, path: &str) -> Result<Node> {
        let mut node = Node::Folder {
            meta: Vec::new(),
            tree: snap.root.clone(),
        };
        for part in split_path(path)? {
            let Node::Folder { tree, .. } = &node else {
                return Err(Error::NoSuchEntry(path.to_string()));
            };
            let t = self.load_tree(tree).await?;
            node = t
                .get(part)
                .cloned()
                .ok_or_else(|| Error::NoSuchEntry(path.to_string()))?;
        }
        Ok(node)
    }

    /// Stream an item's bytes.
    pub async fn read_item(
        &self,
        snap: &SnapshotInfo,
        path: &str,
    ) -> Result<(Vec<u8>, BoxStream<'static, Result<Bytes>>)> {
        match self.lookup(snap, path).await? {
            Node::Item { meta, content } => Ok((meta, self.read_content(&content))),
            Node::Folder { .. } => Err(Error::WrongKind(format!("{path} is a folder"))),
        }
    }

    /// An item's bytes in memory (for small items).
    pub async fn read_item_bytes(&self, snap: &SnapshotInfo, path: &str) -> Result<Vec<u8>> {
        match self.lookup(snap, path).await? {
            Node::Item { content, .. } => self.read_all(&content).await,
            Node::Folder { .. } => Err(Error::WrongKind(format!("{path} is a folder"))),
        }
    }

    /// The entries of a folder.
    pub async fn list_folder(&self, snap: &SnapshotInfo, path: &str) -> Result<Vec<Entry>> {
        match self.lookup(snap, path).await? {
            Node::Folder { tree, .. } => Ok(self.load_tree(&tree).await?.entries.clone()),
            Node::Item { .. } => Err(Error::WrongKind(format!("{path} is an item"))),
        }
    }

    /// Every entry below `path`, depth first, with paths relative to the
    /// snapshot root.
    pub async fn walk(&self, snap: &SnapshotInfo, path: &str) -> Result<Vec<(String, Node)>> {
        let start = self.lookup(snap, path).await?;
        let mut out = Vec::new();
        let base = split_path(path)?.join("/");
        let mut stack = vec![(base, start)];
        while let Some((p, node)) = stack.pop() {
            if let Node::Folder { tree, .. } = &node {
                let t = self.load_tree(tree).await?;
                for e in t.entries.iter().rev() {
                    let child = if p.is_empty() {
                        e.name.clone()
                    } else {
                        format!("{p}/{}", e.name)
                    };
                    stack.push((child, e.node.clone()));
                }
            }
            if !p.is_empty() {
                out.push((p, node));
            }
        }
        Ok(out)
    }

    /// Differences from `old` to `new`. Shared subtrees are skipped without
    /// being read, so the cost is proportional to what changed.
    pub async fn diff(&self, old: &SnapshotInfo, new: &SnapshotInfo) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        let mut stack = vec![(
            String::new(),
            Some(old.root.clone()),
            Some(new.root.clone()),
        )];
        while let Some((p, a, b)) = stack.pop() {
            if a == b {
                continue;
            }
            let ta = match &a {
                Some(c) => self.load_tree(c).await?,
                None => Arc::new(Tree::default()),
            };
            let tb = match &b {
                Some(c) => self.load_tree(c).await?,
                None => Arc::new(Tree::default()),
            };
            let join = |n: &str| {
                if p.is_empty() {
                    n.to_string()
                } else {
                    format!("{p}/{n}")
                }
            };
            let mut names: Vec<&str> = ta
                .entries
                .iter()
                .chain(tb.entries.iter())
                .map(|e| e.name.as_str())
                .collect();
            names.sort();
            names.dedup();
            for n in names {
                let (x, y) = (ta.get(n), tb.get(n));
                match (x, y) {
                    (Some(x), Some(y)) if x == y => {}
                    (
                        Some(Node::Folder { tree: t1, meta: m1 }),
                        Some(Node::Folder { tree: t2, meta: m2 }),
                    ) => {
                        if m1 != m2 {
                            out.push(Change::Modified(join(n)));
                        }
                        stack.push((join(n), Some(t1.clone()), Some(t2.clone())));
                    }
                    (Some(_), Some(_)) => out.push(Change::Modified(join(n))),
                    (Some(x), None) => {
                        out.push(Change::Removed(join(n)));
                        if let Node::Folder { tree, .. } = x {
                            stack.push((join(n), Some(tree.clone()), None));
                        }
                    }
                    (None, Some(y)) => {
                        out.push(Change::Added(join(n)));
                        if let Node::Folder { tree, .. } = y {
                            stack.push((join(n), None, Some(tree.clone())));
                        }
                    }
                    (None, None) => {}
                }
            }
        }
        out.sort_by(|a, b| change_path(a).cmp(change_path(b)));
        Ok(out)
    }
}

fn change_path(c: &Change) -> &str {
    match c {
        Change::Added(p) | Change::Removed(p) | Change::Modified(p) => p,
    }
}
