//! Keys, keyed chunk ids and authenticated encryption (XChaCha20-Poly1305).

use crate::error::{Error, Result};
use crate::format::{HEADER_LEN, Header};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;

/// A 32-byte secret whose `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub(crate) [u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub(crate) fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        Secret(k)
    }
}

/// The service-wide master key. It never encrypts data itself: it derives the
/// per-account key-encryption keys ([`AccountKey`]).
#[derive(Clone, Debug)]
pub struct MasterKey(Secret);

impl MasterKey {
    /// Wrap raw key bytes (e.g. read from a key file or a KMS).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        MasterKey(Secret(bytes))
    }

    /// Parse 64 hex digits (the key-file format of the CLI).
    pub fn from_hex(text: &str) -> Result<Self> {
        let raw =
            hex::decode(text.trim()).map_err(|_| Error::Invalid("key file is not hex".into()))?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| Error::Invalid("key file must hold 32 bytes (64 hex digits)".into()))?;
        Ok(Self::from_bytes(bytes))
    }

    /// Derive a master key from a password with Argon2id and the repository's
    /// salt and cost parameters.
    pub fn from_password(password: &str, kdf: &crate::repo::KdfParams) -> Result<Self> {
        let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(32))
            .map_err(|e| Error::Invalid(format!("kdf parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let salt = hex::decode(&kdf.salt).map_err(|_| Error::Invalid("kdf salt".into()))?;
        let mut out = [0u8; 32];
        argon
            .hash_password_into(password.as_bytes(), &salt, &mut out)
            .map_err(|e| Error::Invalid(format!("kdf: {e}")))?;
        Ok(Self::from_bytes(out))
    }

    /// The key-encryption key of one account.
    pub fn account_key(&self, account_id: &str) -> AccountKey {
        let mut material = Vec::with_capacity(32 + account_id.len());
        material.extend_from_slice(&self.0.0);
        material.extend_from_slice(account_id.as_bytes());
        AccountKey(Secret(blake3::derive_key(
            "lifeboat vault v1 account key-encryption key",
            &material,
        )))
    }
}

/// Per-account key-encryption key: wraps the account's random data keys.
/// Rotating it re-wraps the data keys; no data is re-encrypted.
#[derive(Clone, Debug)]
pub struct AccountKey(pub(crate) Secret);

impl AccountKey {
    /// Use raw bytes as an account key (for callers with their own KMS).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        AccountKey(Secret(bytes))
    }
}

/// The random keys of one account, stored wrapped in its key files.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct DataKeys {
    /// Encrypts every blob and object of the account.
    pub enc: Secret,
    /// Keys the BLAKE3 chunk ids.
    pub id: Secret,
    /// Seeds the FastCDC gear table, so chunk boundaries (visible as blob
    /// lengths to someone who could see them) do not fingerprint content.
    pub chunk_seed: u64,
}

impl DataKeys {
    pub fn generate() -> Self {
        DataKeys {
            enc: Secret::random(),
            id: Secret::random(),
            chunk_seed: rand::rng().next_u64(),
        }
    }

    /// Keyed BLAKE3 id of a plaintext chunk.
    pub fn chunk_id(&self, data: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.id.0, data).as_bytes())
    }
}

/// Id of a chunk: keyed BLAKE3 of its plaintext with the account's id key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// Hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// The first 128 bits, used as the in-memory index key.
    pub(crate) fn short(&self) -> u128 {
        u128::from_le_bytes(self.0[..16].try_into().expect("16 bytes"))
    }
}

impl std::fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", &self.to_hex()[..16])
    }
}

fn cipher(key: &Secret) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new((&key.0).into())
}

/// Encrypt `plain` into `out` as `nonce || ciphertext || tag`, with
/// `aad` authenticated.
pub(crate) fn seal_into(key: &Secret, aad: &[u8], plain: &[u8], out: &mut Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher(key)
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
        .expect("encryption cannot fail for in-memory buffers");
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
}

/// Decrypt `nonce || ciphertext || tag`.
pub(crate) fn open(key: &Secret, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher(key)
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

/// A whole stored object: header, then the sealed body. The header and a
/// caller-chosen binding (normally the object's name) are authenticated, so
/// an object cannot be swapped for another one of the same account.
pub(crate) fn seal_object(key: &Secret, header: Header, binding: &[u8], body: &[u8]) -> Vec<u8> {
    let h = header.encode();
    let mut aad = h.to_vec();
    aad.extend_from_slice(binding);
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(&h);
    seal_into(key, &aad, body, &mut out);
    out
}

/// Inverse of [`seal_object`]; checks header kind and version.
pub(crate) fn open_object(
    key: &Secret,
    expected: crate::format::Kind,
    binding: &[u8],
    object: &[u8],
    name: &str,
) -> Result<Vec<u8>> {
    let header = Header::decode(object, expected, name)?;
    let mut aad = header.encode().to_vec();
    aad.extend_from_slice(binding);
    open(key, &aad, &object[HEADER_LEN..])
        .ok_or_else(|| Error::damaged(name, "authentication failed"))
}

/// Blob (chunk) encryption inside packs: the plaintext is a flag byte
/// (0 = stored, 1 = zstd) and the payload; the chunk id is authenticated.
pub(crate) fn seal_blob(keys: &DataKeys, id: &ChunkId, data: &[u8], level: i32, out: &mut Vec<u8>) {
    let mut plain = Vec::with_capacity(data.len() + 1);
    plain.push(1u8);
    let compressed = zstd::bulk::compress(data, level).ok();
    match compressed {
        Some(c) if c.len() + 16 < data.len() => {
            plain.extend_from_slice(&c);
        }
        _ => {
            plain[0] = 0;
            plain.extend_from_slice(data);
        }
    }
    let mut aad = Vec::with_capacity(40);
    aad.extend_from_slice(b"lbv-blob");
    aad.extend_from_slice(&id.0);
    seal_into(&keys.enc, &aad, &plain, out);
}

/// Decrypt a blob, decompress it and check that its keyed hash is `id`.
pub(crate) fn open_blob(
    keys: &DataKeys,
    id: &ChunkId,
    sealed: &[u8],
    raw_len: u32,
) -> Option<Vec<u8>> {
    let mut aad = Vec::with_capacity(40);
    aad.extend_from_slice(b"lbv-blob");
    aad.extend_from_slice(&id.0);
    let plain = open(&keys.enc, &aad, sealed)?;
    let data = match plain.first()? {
        0 => plain[1..].to_vec(),
        1 => zstd::bulk::decompress(&plain[1..], raw_len as usize).ok()?,
        _ => return None,
    };
    if data.len() != raw_len as usize || keys.chunk_id(&data) != *id {
        return None;
    }
    Some(data)
}
