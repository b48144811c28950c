//! Snapshot trees: a folder is a sorted list of entries, serialised with
//! postcard behind a format-version byte and stored like any content
//! (content-defined chunks), so a huge folder where one item changed shares
//! most of its chunks with the previous version.

use crate::crypto::ChunkId;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Current tree format version (first byte of a serialised tree).
pub const TREE_VERSION: u8 = 1;

/// Stored bytes: total length and the ordered chunk ids.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Content {
    /// Length in bytes.
    pub size: u64,
    /// Chunks, in order.
    pub chunks: Vec<ChunkId>,
}

/// A node of a snapshot tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    /// An item: bytes plus small metadata (usually JSON).
    Item {
        /// Caller metadata.
        meta: Vec<u8>,
        /// The bytes.
        content: Content,
    },
    /// A folder: metadata plus the serialised child tree.
    Folder {
        /// Caller metadata.
        meta: Vec<u8>,
        /// The serialised [`Tree`].
        tree: Content,
    },
}

impl Node {
    /// Whether this is a folder.
    pub fn is_folder(&self) -> bool {
        matches!(self, Node::Folder { .. })
    }
    /// Metadata bytes.
    pub fn meta(&self) -> &[u8] {
        match self {
            Node::Item { meta, .. } | Node::Folder { meta, .. } => meta,
        }
    }
    /// Item size (0 for folders).
    pub fn size(&self) -> u64 {
        match self {
            Node::Item { content, .. } => content.size,
            Node::Folder { .. } => 0,
        }
    }
}

/// A named node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Name within its folder.
    pub name: String,
    /// The node.
    pub node: Node,
}

/// A folder's entries, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries sorted by name.
    pub entries: Vec<Entry>,
}

impl Tree {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![TREE_VERSION];
        out.extend_from_slice(&postcard::to_allocvec(self).expect("tree serialises"));
        out
    }

    pub(crate) fn decode(bytes: &[u8], what: &str) -> Result<Self> {
        match bytes.first() {
            Some(&TREE_VERSION) => {
                postcard::from_bytes(&bytes[1..]).map_err(|e| Error::damaged(what, e))
            }
            Some(v) => Err(Error::UnsupportedVersion {
                object: what.to_string(),
                found: *v as u16,
                supported: TREE_VERSION as u16,
            }),
            None => Err(Error::damaged(what, "empty tree")),
        }
    }

    /// Look up a child by name.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i].node)
    }
}

/// Bounded cache of decoded trees.
pub(crate) struct TreeCache {
    cap: usize,
    map: parking_lot::Mutex<HashMap<Content, Arc<Tree>>>,
}

impl TreeCache {
    pub fn new(cap: usize) -> Self {
        TreeCache {
            cap,
            map: parking_lot::Mutex::new(HashMap::new()),
        }
    }
    pub fn get(&self, c: &Content) -> Option<Arc<Tree>> {
        self.map.lock().get(c).cloned()
    }
    pub fn put(&self, c: Content, t: Arc<Tree>) {
        let mut m = self.map.lock();
        if m.len() >= self.cap {
            m.clear();
        }
        m.insert(c, t);
    }
}

/// Split a snapshot path ("a/b/c") into components, rejecting empty, "." and
/// ".." components. The empty path is the root.
pub fn split_path(path: &str) -> Result<Vec<&str>> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(Error::Invalid(format!("bad path {path:?}")));
    }
    Ok(parts)
}
