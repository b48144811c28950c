//! Encryption of connection secrets at rest.
//!
//! Client secrets are sealed with XChaCha20-Poly1305 under a 32-byte key given
//! when the catalog is opened. The stored value is `version (1 byte) || nonce
//! (24 bytes) || ciphertext+tag`; the additional data binds the ciphertext to
//! its account and connection so a sealed secret cannot be moved to another
//! row.

use std::fmt;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// The 32-byte key that encrypts secrets in the catalog.
#[derive(Clone)]
pub struct CatalogKey([u8; 32]);

impl CatalogKey {
    /// Wrap raw key bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Build a key from a slice, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::InvalidInput(format!("catalog key must be 32 bytes, got {}", bytes.len()))
        })?;
        Ok(Self(arr))
    }
}

impl fmt::Debug for CatalogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CatalogKey(<redacted>)")
    }
}

/// A secret string (a client secret). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for handing to the token endpoint.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Seals and opens secrets with the catalog key.
#[derive(Clone)]
pub(crate) struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// Keys the MACs of signed links, derived from the catalog key so that
    /// a signature and a sealed secret never share a key.
    mac_key: [u8; 32],
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(<redacted>)")
    }
}

impl SecretBox {
    pub(crate) fn new(key: &CatalogKey) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new((&key.0).into()),
            mac_key: blake3::derive_key("lifeboat catalog link signing v1", &key.0),
        }
    }

    pub(crate) fn seal(&self, secret: &Secret, aad: &str) -> Result<Vec<u8>> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.0.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::InvalidInput("secret cannot be encrypted".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub(crate) fn open(&self, sealed: &[u8], aad: &str) -> Result<Secret> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != VERSION {
            return Err(Error::Decrypt);
        }
        let nonce = XNonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        let pt = self
            .cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Error::Decrypt)?;
        String::from_utf8(pt)
            .map(Secret)
            .map_err(|_| Error::Decrypt)
    }
}

impl crate::Catalog {
    /// Seals `secret` for `account` and `purpose` (for example
    /// "export-credentials"), for a job payload or any other row that must
    /// carry a secret: the text returned holds no plaintext, and opens only
    /// through this catalog's key, for the same account and purpose, so a
    /// payload copied into another account's job cannot be opened there.
    pub fn seal_secret(
        &self,
        account: crate::AccountId,
        purpose: &str,
        secret: &Secret,
    ) -> Result<String> {
        use base64::Engine as _;
        let sealed = self.secrets.seal(secret, &purpose_aad(account, purpose))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    /// Opens what [`seal_secret`](crate::Catalog::seal_secret) sealed.
    pub fn open_secret(
        &self,
        account: crate::AccountId,
        purpose: &str,
        sealed: &str,
    ) -> Result<Secret> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|_| Error::Decrypt)?;
        self.secrets.open(&bytes, &purpose_aad(account, purpose))
    }
}

impl crate::Catalog {
    /// A signature (hex) over `message` for `account` and `purpose`: what
    /// makes a download link unforgeable. Only holders of the catalog key
    /// (API servers and workers of this installation) can make one, and it
    /// is bound to the account, so a link never works for another account.
    pub fn sign(&self, account: crate::AccountId, purpose: &str, message: &str) -> String {
        self.secrets
            .mac(account, purpose, message)
            .to_hex()
            .to_string()
    }

    /// Whether `signature` is [`sign`](crate::Catalog::sign)'s for these
    /// inputs (compared in constant time).
    pub fn verify_signature(
        &self,
        account: crate::AccountId,
        purpose: &str,
        message: &str,
        signature: &str,
    ) -> bool {
        blake3::Hash::from_hex(signature)
            .map(|given| given == self.secrets.mac(account, purpose, message))
            .unwrap_or(false)
    }
}

impl SecretBox {
    fn mac(&self, account: crate::AccountId, purpose: &str, message: &str) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.mac_key);
        // Lengths first, so no two (purpose, message) pairs hash alike.
        let aad = purpose_aad(account, purpose);
        h.update(&(aad.len() as u64).to_le_bytes());
        h.update(aad.as_bytes());
        h.update(message.as_bytes());
        h.finalize()
    }
}

fn purpose_aad(account: crate::AccountId, purpose: &str) -> String {
    format!("lifeboat/sealed/{account}/{purpose}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let b = SecretBox::new(&CatalogKey::new([7; 32]));
        let s = Secret::new("hunter2");
        let sealed = b.seal(&s, "a/c").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(b.open(&sealed, "a/c").unwrap(), s);
        assert!(matches!(b.open(&sealed, "a/other"), Err(Error::Decrypt)));
        let other = SecretBox::new(&CatalogKey::new([8; 32]));
        assert!(matches!(other.open(&sealed, "a/c"), Err(Error::Decrypt)));
        assert!(matches!(b.open(&[1, 2], "a/c"), Err(Error::Decrypt)));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn signatures_bind_key_and_message() {
        let b = SecretBox::new(&CatalogKey::new([7; 32]));
        let account = crate::AccountId(uuid::Uuid::new_v4());
        let other_account = crate::AccountId(uuid::Uuid::new_v4());
        let sig = b.mac(account, "download", "job/file/123");
        assert_eq!(sig, b.mac(account, "download", "job/file/123"));
        assert_ne!(sig, b.mac(account, "download", "job/file/124"));
        assert_ne!(sig, b.mac(other_account, "download", "job/file/123"));
        assert_ne!(sig, b.mac(account, "other", "job/file/123"));
        let other = SecretBox::new(&CatalogKey::new([8; 32]));
        assert_ne!(sig, other.mac(account, "download", "job/file/123"));
    }

    #[test]
    fn key_length_checked() {
        assert!(CatalogKey::from_slice(&[0; 31]).is_err());
        assert!(CatalogKey::from_slice(&[0; 32]).is_ok());
    }
}
