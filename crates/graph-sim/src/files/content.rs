//! File content: generated from the seed block by block (never held whole in
//! memory, so a 300 MB file costs nothing until it is read, and then only a
//! block at a time), or bytes a client uploaded.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rand::RngCore;

use super::qxh::QuickXor;
use crate::rng::{content_bytes, rng_for};

/// Generated content is produced in blocks of this size; any block can be
/// generated on its own, so range requests start anywhere.
pub const BLOCK: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenKind {
    /// Text-like (compressible).
    Text,
    /// Binary, starting with the format's magic bytes.
    Binary(&'static [u8]),
    /// High-entropy bytes with no header (what ransomware writes).
    Noise,
}

#[derive(Debug, Clone)]
pub enum Content {
    Gen {
        key: Arc<str>,
        len: u64,
        kind: GenKind,
    },
    Bytes(Bytes),
}

impl Content {
    pub fn len(&self) -> u64 {
        match self {
            Content::Gen { len, .. } => *len,
            Content::Bytes(b) => b.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `[start, end)` (the caller keeps ranges small, or uses [`Content::chunks`]).
    pub fn read(&self, seed: u64, start: u64, end: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity((end.saturating_sub(start)) as usize);
        for c in self.chunks(seed, start, end) {
            out.extend_from_slice(&c);
        }
        out
    }

    /// Lazily generated pieces covering `[start, end)`.
    pub fn chunks(
        &self,
        seed: u64,
        start: u64,
        end: u64,
    ) -> impl Iterator<Item = Bytes> + Send + use<> {
        let end = end.min(self.len());
        let this = self.clone();
        let first = start / BLOCK;
        let last = if end == 0 { 0 } else { end.div_ceil(BLOCK) };
        (first..last).filter_map(move |b| {
            let bstart = b * BLOCK;
            let from = start.max(bstart);
            let to = end.min(bstart + BLOCK);
            if from >= to {
                return None;
            }
            Some(match &this {
                Content::Bytes(bytes) => bytes.slice(from as usize..to as usize),
                Content::Gen { key, len, kind } => {
                    let block = gen_block(seed, key, *len, *kind, b);
                    Bytes::from(block).slice((from - bstart) as usize..(to - bstart) as usize)
                }
            })
        })
    }
}

fn gen_block(seed: u64, key: &str, len: u64, kind: GenKind, index: u64) -> Vec<u8> {
    let bstart = index * BLOCK;
    let size = (len - bstart).min(BLOCK) as usize;
    let idx = index.to_string();
    let mut block = match kind {
        GenKind::Text => content_bytes(seed, &["file", key, &idx], size, true),
        GenKind::Binary(_) | GenKind::Noise => {
            let mut rng = rng_for(seed, &["file", key, &idx]);
            let mut v = vec![0u8; size];
            rng.fill_bytes(&mut v);
            v
        }
    };
    if let (GenKind::Binary(magic), 0) = (kind, index) {
        let n = magic.len().min(block.len());
        block[..n].copy_from_slice(&magic[..n]);
    }
    block
}

/// QuickXorHash (base64) and BLAKE3 (hex) of some content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashes {
    pub quick_xor: String,
    pub blake3: String,
}

pub fn hash_content(seed: u64, c: &Content) -> Hashes {
    let mut q = QuickXor::new();
    let mut b = blake3::Hasher::new();
    for chunk in c.chunks(seed, 0, c.len()) {
        q.update(&chunk);
        b.update(&chunk);
    }
    Hashes {
        quick_xor: q.base64(),
        blake3: b.finalize().to_hex().to_string(),
    }
}

/// Hashes of content, computed once per distinct content (generated content
/// by its key; uploaded bytes are hashed when they arrive).
#[derive(Default)]
pub struct HashCache {
    map: Mutex<HashMap<String, Hashes>>,
}

impl HashCache {
    pub fn get(&self, seed: u64, c: &Content) -> Hashes {
        let Content::Gen { key, len, .. } = c else {
            return hash_content(seed, c);
        };
        let key = format!("{key}:{len}");
        if let Some(h) = self.map.lock().get(&key) {
            return h.clone();
        }
        let h = hash_content(seed, c);
        self.map.lock().insert(key, h.clone());
        h
    }
}

/// MIME type, generator kind and a typical size range (bytes) for an extension.
pub fn file_type(ext: &str) -> (&'static str, GenKind) {
    const ZIP: &[u8] = b"PK\x03\x04\x14\x00\x06\x00";
    match ext {
        "docx" => (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            GenKind::Binary(ZIP),
        ),
        "xlsx" => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            GenKind::Binary(ZIP),
        ),
        "pptx" => (
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            GenKind::Binary(ZIP),
        ),
        "pdf" => (
            "application/pdf",
            GenKind::Binary(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
        ),
        "jpg" => (
            "image/jpeg",
            GenKind::Binary(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"),
        ),
        "png" => ("image/png", GenKind::Binary(b"\x89PNG\r\n\x1a\n")),
        "mp4" => ("video/mp4", GenKind::Binary(b"\x00\x00\x00\x18ftypmp42")),
        "zip" => ("application/x-zip-compressed", GenKind::Binary(ZIP)),
        "one" => (
            "application/msonenote",
            GenKind::Binary(b"\xe4\x52\x5c\x7b\x8c\xd8\xa7\x4d"),
        ),
        "onetoc2" => (
            "application/msonenote",
            GenKind::Binary(b"\xa1\x2f\xff\x43\xd9\xef\x76\x4c"),
        ),
        "txt" => ("text/plain", GenKind::Text),
        "csv" => ("text/csv", GenKind::Text),
        "md" => ("text/markdown", GenKind::Text),
        _ => ("application/octet-stream", GenKind::Noise),
    }
}

pub fn mime_for_name(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    file_type(&ext.to_ascii_lowercase()).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_the_whole_and_are_deterministic() {
        let c = Content::Gen {
            key: "k".into(),
            len: 3 * BLOCK + 17,
            kind: GenKind::Binary(b"%PDF"),
        };
        let all = c.read(7, 0, c.len());
        assert_eq!(all.len() as u64, c.len());
        assert_eq!(&all[..4], b"%PDF");
        assert_eq!(
            c.read(7, BLOCK - 5, BLOCK + 9),
            all[(BLOCK - 5) as usize..(BLOCK + 9) as usize]
        );
        assert_eq!(c.read(7, 0, c.len()), all);
        let t = Content::Gen {
            key: "t".into(),
            len: 1000,
            kind: GenKind::Text,
        };
        assert!(t.read(7, 0, 1000).iter().all(|b| *b != 0));
    }
}
