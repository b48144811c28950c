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
    fn key_length_checked() {
        assert!(CatalogKey::from_slice(&[0; 31]).is_err());
        assert!(CatalogKey::from_slice(&[0; 32]).is_ok());
    }
}
