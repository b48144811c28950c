//! Writing a snapshot.

use crate::chunker;
use crate::crypto::{self, ChunkId};
use crate::error::{Error, Result};
use crate::format::{Header, Kind};
use crate::index::{BlobEntry, PackId, PackIndex};
use crate::lock::LockHandle;
use crate::repo::Account;
use crate::snapshot::{SnapshotId, SnapshotInfo, SnapshotStats};
use crate::tree::{Content, Entry, Node, Tree, split_path};
use bytes::Bytes;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes read from a stream before they are chunked.
const BATCH: usize = 8 * 1024 * 1024;
/// Packs uploaded concurrently.
const UPLOADS: usize = 2;

struct PackState {
    pending: HashSet<u128>,
    buf: Vec<u8>,
    blobs: Vec<BlobEntry>,
    stats: SnapshotStats,
}

struct Shared {
    account: Account,
    condemned: HashSet<PackId>,
    state: parking_lot::Mutex<PackState>,
    tx: parking_lot::Mutex<Option<tokio::sync::mpsc::Sender<(PackId, Bytes, PackIndex)>>>,
    /// Caps concurrent chunk processing at the number of cores, however
    /// many items the caller puts at once.
    cpu: tokio::sync::Semaphore,
}

enum Pending {
    Node(Node),
    Dir {
        meta: Vec<u8>,
        entries: BTreeMap<String, Pending>,
    },
}

/// An open snapshot. Methods take `&self`, so items can be put concurrently
/// (e.g. with `buffer_unordered`). Nothing is visible until [`commit`].
///
/// [`commit`]: SnapshotWriter::commit
pub struct SnapshotWriter {
    shared: Arc<Shared>,
    parent: Option<SnapshotInfo>,
    root: parking_lot::Mutex<Pending>,
    uploader: Option<tokio::task::JoinHandle<Result<Vec<PackIndex>>>>,
    lock: Option<LockHandle>,
}

pub(crate) fn new_pack_buf(cap: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(cap);
    v.extend_from_slice(&Header::current(Kind::Pack).encode());
    v
}

impl Shared {
    fn take_pack(&self, st: &mut PackState) -> Option<(PackId, Bytes, PackIndex)> {
        if st.blobs.is_empty() {
            return None;
        }
        let cap = self.account.inner.config.pack_size as usize + 1024 * 1024;
        let buf = std::mem::replace(&mut st.buf, new_pack_buf(cap));
        let blobs = std::mem::take(&mut st.blobs);
        let id = PackId(*blake3::hash(&buf).as_bytes());
        let pi = PackIndex {
            pack: id,
            pack_len: buf.len() as u64,
            blobs,
        };
        st.stats.packs += 1;
        Some((id, Bytes::from(buf), pi))
    }

    fn send_blocking(&self, pack: (PackId, Bytes, PackIndex)) -> Result<()> {
        let tx = self
            .tx
            .lock()
            .clone()
            .ok_or_else(|| Error::Task("writer closed".into()))?;
        tx.blocking_send(pack)
            .map_err(|_| Error::Task("pack uploader stopped (see the upload error)".into()))
    }

    /// Chunk, hash, dedup, compress, encrypt and pack. Runs on a blocking
    /// thread. Returns the chunk ids and how many bytes were consumed.
    fn process(&self, data: &[u8], eof: bool) -> Result<(Vec<ChunkId>, usize)> {
        let inner = &self.account.inner;
        let (ranges, consumed) =
            chunker::cut(&inner.config.chunker, inner.keys.chunk_seed, data, eof);
        let mut ids = Vec::with_capacity(ranges.len());
        for r in ranges {
            let chunk = &data[r];
            let id = inner.keys.chunk_id(chunk);
            ids.push(id);
            let is_new = {
                let known = match inner.index.read().get(&id) {
                    Some((pack, _)) => !self.condemned.contains(&pack),
                    None => false,
                };
                let mut st = self.state.lock();
                if known || !st.pending.insert(id.short()) {
                    st.stats.dup_chunks += 1;
                    false
                } else {
                    true
                }
            };
            if !is_new {
                continue;
            }
            let mut sealed = Vec::with_capacity(chunk.len() + 64);
            crypto::seal_blob(
                &inner.keys,
                &id,
                chunk,
                inner.config.zstd_level,
                &mut sealed,
            );
            let full = {
                let mut st = self.state.lock();
                let offset = st.buf.len() as u32;
                st.buf.extend_from_slice(&sealed);
                st.blobs.push(BlobEntry {
                    id,
                    offset,
                    len: sealed.len() as u32,
                    raw_len: chunk.len() as u32,
                });
                st.stats.new_chunks += 1;
                st.stats.new_bytes += chunk.len() as u64;
                st.stats.stored_bytes += sealed.len() as u64;
                if st.buf.len() >= inner.config.pack_size as usize {
                    self.take_pack(&mut st)
                } else {
                    None
                }
            };
            if let Some(p) = full {
                self.send_blocking(p)?;
            }
        }
        Ok((ids, consumed))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

pub(crate) async fn upload(
    account: Account,
    id: PackId,
    bytes: Bytes,
    pi: PackIndex,
) -> Result<PackIndex> {
    // The pack first, its index only once the pack is durable.
    account
        .inner
        .loc
        .put(&account.pack_name(&id), bytes)
        .await?;
    let name = account.index_name(&id);
    let body = postcard::to_allocvec(&pi).expect("index serialises");
    account
        .inner
        .loc
        .put(&name, account.seal(Kind::Index, &name, &body))
        .await?;
    Ok(pi)
}

impl Account {
    /// Start a snapshot. With a parent, [`SnapshotWriter::keep_from_parent`]
    /// can carry subtrees over by reference.
    pub async fn begin_snapshot(&self, parent: Option<&SnapshotId>) -> Result<SnapshotWriter> {
        // Protocol order matters (see the crate docs, "Garbage collection"):
        // lock first, then condemnation lists, index and parent.
        let lock = self.acquire_lock("writer").await?;
        let condemned = self.condemned_packs().await?;
        self.refresh_index().await?;
        let parent = match parent {
            Some(id) => Some(self.snapshot(id).await?),
            None => None,
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(PackId, Bytes, PackIndex)>(1);
        let account = self.clone();
        let uploader = tokio::spawn(async move {
            use futures::StreamExt;
            let mut running = futures::stream::FuturesUnordered::new();
            let mut done = Vec::new();
            let mut failed: Option<Error> = None;
            loop {
                tokio::select! {
                    msg = rx.recv(), if running.len() < UPLOADS && failed.is_none() => match msg {
                        Some((id, bytes, pi)) => running.push(upload(account.clone(), id, bytes, pi)),
                        None => break,
                    },
                    Some(r) = running.next(), if !running.is_empty() => match r {
                        Ok(pi) => done.push(pi),
                        Err(e) => { failed = Some(e); rx.close(); }
                    },
                    else => break,
                }
            }
            while let Some(r) = running.next().await {
                match r {
                    Ok(pi) => done.push(pi),
                    Err(e) => failed = Some(e),
                }
            }
            match failed {
                Some(e) => Err(e),
                None => Ok(done),
            }
        });
        let cap = self.inner.config.pack_size as usize + 1024 * 1024;
        Ok(SnapshotWriter {
            shared: Arc::new(Shared {
                account: self.clone(),
                condemned,
                state: parking_lot::Mutex::new(PackState {
                    pending: HashSet::new(),
                    buf: new_pack_buf(cap),
                    blobs: Vec::new(),
                    stats: SnapshotStats::default(),
                }),
                tx: parking_lot::Mutex::new(Some(tx)),
                cpu: tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                ),
            }),
            parent,
            root: parking_lot::Mutex::new(Pending::Dir {
                meta: Vec::new(),
                entries: BTreeMap::new(),
            }),
            uploader: Some(uploader),
            lock: Some(lock),
        })
    }
}

impl SnapshotWriter {
    /// The parent snapshot, if any.
    pub fn parent(&self) -> Option<&SnapshotInfo> {
        self.parent.as_ref()
    }

    /// Store bytes and return their content reference (no tree entry).
    pub async fn store_bytes(&self, data: Bytes) -> Result<Content> {
        let size = data.len() as u64;
        let shared = self.shared.clone();
        let _permit = self
            .shared
            .cpu
            .acquire()
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        let (chunks, _) = blocking(move || shared.process(&data, true)).await?;
        Ok(Content { size, chunks })
    }

    /// Store a stream and return its content reference (no tree entry).
    /// Memory use is bounded by one 8 MiB batch, whatever the stream length.
    pub async fn store_reader(&self, mut reader: impl AsyncRead + Unpin + Send) -> Result<Content> {
        let mut chunks = Vec::new();
        let mut size = 0u64;
        let mut buf: Vec<u8> = Vec::with_capacity(BATCH);
        loop {
            let mut eof = false;
            while buf.len() < BATCH {
                let before = buf.len();
                let n = (&mut reader)
                    .take((BATCH - before) as u64)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(Error::Input)?;
                if n == 0 {
                    eof = true;
                    break;
                }
            }
            let shared = self.shared.clone();
            let _permit = self
                .shared
                .cpu
                .acquire()
                .await
                .map_err(|e| Error::Task(e.to_string()))?;
            let (ids, consumed, back) = blocking(move || {
                let (ids, consumed) = shared.process(&buf, eof)?;
                Ok((ids, consumed, buf))
            })
            .await?;
            buf = back;
            chunks.extend(ids);
            if eof {
                size += buf.len() as u64;
                break;
            }
            size += consumed as u64;
            buf.drain(..consumed);
        }
        Ok(Content { size, chunks })
    }

    /// Put an item from a stream at `path` ("folder/sub/name"), creating
    /// folders as needed and replacing whatever was there.
    pub async fn put_item(
        &self,
        path: &str,
        meta: impl Into<Vec<u8>>,
        reader: impl AsyncRead + Unpin + Send,
    ) -> Result<Content> {
        split_path(path)?;
        let content = self.store_reader(reader).await?;
        self.put_node(
            path,
            Node::Item {
                meta: meta.into(),
                content: content.clone(),
            },
        )
        .await?;
        Ok(content)
    }

    /// Put an item from bytes.
    pub async fn put_bytes(
        &self,
        path: &str,
        meta: impl Into<Vec<u8>>,
        data: impl Into<Bytes>,
    ) -> Result<Content> {
        split_path(path)?;
        let content = self.store_bytes(data.into()).await?;
        self.put_node(
            path,
            Node::Item {
                meta: meta.into(),
                content: content.clone(),
            },
        )
        .await?;
        Ok(content)
    }

    /// Create a folder (or set its metadata if it exists).
    pub async fn put_folder(&self, path: &str, meta: impl Into<Vec<u8>>) -> Result<()> {
        let parts = split_path(path)?;
        let meta = meta.into();
        self.with_dir(&parts, true, move |p| {
            if let Pending::Dir { meta: m, .. } = p {
                *m = meta;
            }
        })
        .await
    }

    /// Put an existing node (e.g. an unchanged item looked up in the parent)
    /// at `path`, by reference.
    pub async fn put_node(&self, path: &str, node: Node) -> Result<()> {
        let parts = split_path(path)?;
        let (last, dir) = parts
            .split_last()
            .ok_or_else(|| Error::Invalid("empty path".into()))?;
        let name = last.to_string();
        {
            let mut st = self.shared.state.lock();
            st.stats.items += u64::from(!node.is_folder());
            st.stats.bytes += node.size();
        }
        self.with_dir(dir, true, move |p| {
            if let Pending::Dir { entries, .. } = p {
                entries.insert(name, Pending::Node(node));
            }
        })
        .await
    }

    /// Remove an entry (item or folder) if present.
    pub async fn remove(&self, path: &str) -> Result<()> {
        let parts = split_path(path)?;
        let (last, dir) = parts
            .split_last()
            .ok_or_else(|| Error::Invalid("empty path".into()))?;
        let name = last.to_string();
        self.with_dir(dir, false, move |p| {
            if let Pending::Dir { entries, .. } = p {
                entries.remove(&name);
            }
        })
        .await
    }

    /// Look up `path` in the parent snapshot.
    pub async fn parent_node(&self, path: &str) -> Result<Option<Node>> {
        let Some(parent) = &self.parent else {
            return Ok(None);
        };
        match self.shared.account.lookup(parent, path).await {
            Ok(n) => Ok(Some(n)),
            Err(Error::NoSuchEntry(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Carry the parent's entry at `path` (an item or a whole subtree; ""
    /// for the whole parent) into this snapshot by reference: nothing is
    /// read or rewritten. Later puts below it only rewrite the folders on
    /// their path. Returns false if the parent has no such entry.
    pub async fn keep_from_parent(&self, path: &str) -> Result<bool> {
        let parts = split_path(path)?;
        let Some(node) = self.parent_node(path).await? else {
            return Ok(false);
        };
        if parts.is_empty() {
            *self.root.lock() = Pending::Node(node);
            return Ok(true);
        }
        self.put_node(path, node).await?;
        Ok(true)
    }

    /// Run `f` on the pending folder at `parts`, expanding referenced
    /// folders from the store on the way.
    async fn with_dir(
        &self,
        parts: &[&str],
        create: bool,
        f: impl FnOnce(&mut Pending),
    ) -> Result<()> {
        let mut f = Some(f);
        loop {
            // Find the first referenced folder on the path that needs
            // expanding, without holding the lock across an await.
            let need = visit(&mut self.root.lock(), parts, create, &mut f);
            let Some(target) = need else { return Ok(()) };
            let tree = self.shared.account.load_tree(&target).await?;
            expand(&mut self.root.lock(), parts, &target, &tree);
        }
    }

    fn build<'a>(
        &'a self,
        p: Pending,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Node>> + Send + 'a>> {
        Box::pin(async move {
            match p {
                Pending::Node(n) => Ok(n),
                Pending::Dir { meta, entries } => {
                    let mut tree = Tree::default();
                    for (name, child) in entries {
                        let node = self.build(child).await?;
                        tree.entries.push(Entry { name, node });
                    }
                    let content = self.store_bytes(Bytes::from(tree.encode())).await?;
                    Ok(Node::Folder {
                        meta,
                        tree: content,
                    })
                }
            }
        })
    }

    /// Make the snapshot durable and visible; returns its id. Everything it
    /// references is written (packs, then their index objects) before the
    /// snapshot object itself.
    pub async fn commit(mut self, meta: serde_json::Value) -> Result<SnapshotId> {
        let root = std::mem::replace(
            &mut *self.root.lock(),
            Pending::Dir {
                meta: Vec::new(),
                entries: BTreeMap::new(),
            },
        );
        let root = match self.build(root).await? {
            Node::Folder { tree, .. } => tree,
            Node::Item { .. } => return Err(Error::Invalid("snapshot root is an item".into())),
        };
        let last = {
            let mut st = self.shared.state.lock();
            self.shared.take_pack(&mut st)
        };
        let tx = self.shared.tx.lock().take();
        if let (Some(p), Some(tx)) = (last, &tx) {
            tx.send(p)
                .await
                .map_err(|_| Error::Task("pack uploader stopped (see the upload error)".into()))?;
        }
        drop(tx);
        let uploader = self.uploader.take().expect("commit once");
        let written = uploader.await.map_err(|e| Error::Task(e.to_string()))??;
        let lock = self.lock.take().expect("commit once");
        lock.check_fresh()?;
        let account = self.shared.account.clone();
        let stats = self.shared.state.lock().stats.clone();
        let info = SnapshotInfo {
            id: SnapshotId::random(),
            time: chrono::Utc::now(),
            parent: self.parent.as_ref().map(|p| p.id.clone()),
            root,
            meta,
            stats,
        };
        account.write_snapshot(&info).await?;
        {
            let mut idx = account.inner.index.write();
            for pi in &written {
                idx.add(pi);
            }
        }
        lock.release().await?;
        account.inner.index.write().singles += written.len();
        account.maybe_compact().await;
        Ok(info.id)
    }

    /// Current statistics.
    pub fn stats(&self) -> SnapshotStats {
        self.shared.state.lock().stats.clone()
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        // Abandoned writer: stop uploads; its lock lapses (the refresh task is
        // aborted) and its packs become garbage for gc.
        if let Some(u) = self.uploader.take() {
            u.abort();
        }
        // Dropping the lock handle stops its refresh and deletes it.
        drop(self.lock.take());
    }
}

fn empty_dir() -> Pending {
    Pending::Dir {
        meta: Vec::new(),
        entries: BTreeMap::new(),
    }
}

/// Walk to `parts` and apply `f` there; returns the tree to expand first if
/// a referenced folder is on the way.
fn visit<F: FnOnce(&mut Pending)>(
    cur: &mut Pending,
    parts: &[&str],
    create: bool,
    f: &mut Option<F>,
) -> Option<Content> {
    match cur {
        Pending::Node(Node::Folder { tree, .. }) => return Some(tree.clone()),
        Pending::Node(Node::Item { .. }) => {
            if !create {
                return None;
            }
            *cur = empty_dir();
        }
        Pending::Dir { .. } => {}
    }
    match parts.split_first() {
        None => {
            if let Some(f) = f.take() {
                f(cur);
            }
            None
        }
        Some((first, rest)) => {
            let Pending::Dir { entries, .. } = cur else {
                unreachable!("made a folder above")
            };
            if !entries.contains_key(*first) {
                if !create {
                    return None;
                }
                entries.insert(first.to_string(), empty_dir());
            }
            visit(entries.get_mut(*first).expect("present"), rest, create, f)
        }
    }
}

/// Replace the referenced folder `target` on the path by its entries.
fn expand(cur: &mut Pending, parts: &[&str], target: &Content, tree: &Tree) {
    if let Pending::Node(Node::Folder { tree: t, meta }) = cur {
        if t != target {
            return;
        }
        let meta = std::mem::take(meta);
        let entries = tree
            .entries
            .iter()
            .map(|e| (e.name.clone(), Pending::Node(e.node.clone())))
            .collect();
        *cur = Pending::Dir { meta, entries };
        return;
    }
    if let (Pending::Dir { entries, .. }, Some((first, rest))) = (cur, parts.split_first())
        && let Some(n) = entries.get_mut(*first)
    {
        expand(n, rest, target, tree);
    }
}
