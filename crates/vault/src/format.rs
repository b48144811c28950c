//! Object headers: every stored object starts with `LBV`, a kind byte and a
//! little-endian u16 format version. Readers accept every version up to the
//! current one (STYLE.md "Versioned formats").

use crate::error::{Error, Result};

/// Bytes of [`Header`].
pub const HEADER_LEN: usize = 6;
const MAGIC: &[u8; 3] = b"LBV";

/// What an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Repository configuration (plaintext, checksummed).
    Config = b'C',
    /// Wrapped account data keys.
    KeyFile = b'K',
    /// A pack of encrypted blobs.
    Pack = b'P',
    /// The index of one pack.
    Index = b'I',
    /// A snapshot.
    Snapshot = b'S',
    /// A writer or gc lock.
    Lock = b'L',
    /// A gc condemnation list.
    Condemned = b'G',
    /// A merged index: the indexes of many packs.
    MergedIndex = b'M',
    /// A named object of the account (search index files, leases).
    Named = b'N',
}

/// Current format version of each kind.
pub fn current_version(kind: Kind) -> u16 {
    match kind {
        Kind::Config
        | Kind::KeyFile
        | Kind::Pack
        | Kind::Index
        | Kind::Snapshot
        | Kind::Lock
        | Kind::Condemned
        | Kind::MergedIndex
        | Kind::Named => 1,
    }
}

/// Object header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Object kind.
    pub kind: Kind,
    /// Format version.
    pub version: u16,
}

impl Header {
    /// The header new objects of `kind` are written with.
    pub fn current(kind: Kind) -> Self {
        Header {
            kind,
            version: current_version(kind),
        }
    }

    /// Serialise.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let v = self.version.to_le_bytes();
        [MAGIC[0], MAGIC[1], MAGIC[2], self.kind as u8, v[0], v[1]]
    }

    /// Parse and check kind and version.
    pub fn decode(bytes: &[u8], expected: Kind, name: &str) -> Result<Self> {
        if bytes.len() < HEADER_LEN || &bytes[..3] != MAGIC {
            return Err(Error::damaged(name, "bad magic"));
        }
        if bytes[3] != expected as u8 {
            return Err(Error::damaged(
                name,
                format!("expected a {expected:?} object"),
            ));
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        let supported = current_version(expected);
        if version == 0 {
            return Err(Error::damaged(name, "version 0"));
        }
        if version > supported {
            return Err(Error::UnsupportedVersion {
                object: name.to_string(),
                found: version,
                supported,
            });
        }
        Ok(Header {
            kind: expected,
            version,
        })
    }
}
