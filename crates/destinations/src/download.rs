//! The download-link target: export files kept in the account's vault as
//! named objects (sealed with the account's key like everything else) until
//! the link expires.
//!
//! ```text
//! objects/exports/<export id>/<file key>/p000000   parts of 8 MiB
//! objects/exports/<export id>/<file key>/p000001
//! objects/exports/<export id>/<file key>/manifest  written by finish: name, size, parts
//! ```
//! `<file key>` is a hash of the file's name (vault object names allow
//! only letters, digits, `.`, `-`, `_`; export names may contain anything),
//! the real name lives in the manifest. A file is listed only once its
//! manifest exists, so a half-written file is never offered. Rewriting a
//! name first removes its manifest, and `finish` removes parts left over
//! from a longer earlier version.

use crate::{DEFAULT_PART_SIZE, DestinationError, FileUpload, Sink, StoredFile, check_name};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use sha2::Digest;

/// Format version of the manifest.
const MANIFEST_VERSION: u16 = 1;

#[derive(Serialize, Deserialize)]
struct Manifest {
    version: u16,
    name: String,
    size: u64,
    parts: u32,
    part_size: u64,
}

fn export_dir(export_id: &str) -> Result<String, DestinationError> {
    let ok = !export_id.is_empty()
        && export_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && export_id != "."
        && export_id != "..";
    if ok {
        Ok(format!("exports/{export_id}"))
    } else {
        Err(DestinationError::BadTarget(format!(
            "export id {export_id:?} (letters, digits, '-', '_', '.' only)"
        )))
    }
}

fn file_dir(export_dir: &str, name: &str) -> String {
    let digest = sha2::Sha256::digest(name.as_bytes());
    format!("{export_dir}/{}", hex::encode(&digest[..16]))
}

fn part_name(file_dir: &str, index: u32) -> String {
    format!("{file_dir}/p{index:06}")
}

fn location(export_id: &str, name: &str) -> String {
    format!("download link of export {export_id}: {name}")
}

async fn read_manifest(
    vault: &vault::Account,
    object: &str,
) -> Result<Option<Manifest>, DestinationError> {
    match vault.get_object(object).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            DestinationError::Vault(vault::Error::Damaged {
                object: object.to_string(),
                reason: format!("export manifest: {e}"),
            })
        }),
        Err(vault::Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Deletes every object under `dir` whose part index is at least `from`
/// (all of them, manifest included, for `None`).
async fn delete_parts(
    vault: &vault::Account,
    dir: &str,
    from: Option<u32>,
) -> Result<(), DestinationError> {
    for object in vault.list_objects(dir).await? {
        let keep = match (from, object.name.rsplit('/').next()) {
            (Some(from), Some(last)) => match last.strip_prefix('p').map(str::parse::<u32>) {
                Some(Ok(index)) => index < from,
                _ => true,
            },
            _ => false,
        };
        if !keep {
            vault.delete_object(&object.name).await?;
        }
    }
    Ok(())
}

/// The sink of [`crate::open`] for [`crate::Target::Download`].
pub(crate) struct DownloadSink {
    vault: vault::Account,
    export_id: String,
    dir: String,
}

impl DownloadSink {
    pub(crate) fn new(vault: vault::Account, export_id: &str) -> Result<Self, DestinationError> {
        Ok(DownloadSink {
            dir: export_dir(export_id)?,
            vault,
            export_id: export_id.to_string(),
        })
    }
}

#[async_trait]
impl Sink for DownloadSink {
    async fn create(&self, name: &str) -> Result<Box<dyn FileUpload>, DestinationError> {
        check_name(name)?;
        let dir = file_dir(&self.dir, name);
        // A rewrite of the same name is unfinished until its own finish.
        self.vault.delete_object(&format!("{dir}/manifest")).await?;
        Ok(Box::new(DownloadUpload {
            vault: self.vault.clone(),
            export_id: self.export_id.clone(),
            name: name.to_string(),
            dir,
            buffer: BytesMut::new(),
            parts: 0,
            size: 0,
        }))
    }
}

struct DownloadUpload {
    vault: vault::Account,
    export_id: String,
    name: String,
    dir: String,
    buffer: BytesMut,
    parts: u32,
    size: u64,
}

impl DownloadUpload {
    async fn put_part(&mut self, part: &[u8]) -> Result<(), DestinationError> {
        self.vault
            .put_object(&part_name(&self.dir, self.parts), part)
            .await?;
        self.parts += 1;
        Ok(())
    }
}

#[async_trait]
impl FileUpload for DownloadUpload {
    async fn write(&mut self, bytes: Bytes) -> Result<(), DestinationError> {
        self.size += bytes.len() as u64;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let room = DEFAULT_PART_SIZE - self.buffer.len();
            let take = room.min(rest.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buffer.len() == DEFAULT_PART_SIZE {
                let part = self.buffer.split().freeze();
                self.put_part(&part).await?;
            }
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<StoredFile, DestinationError> {
        if !self.buffer.is_empty() {
            let part = self.buffer.split().freeze();
            self.put_part(&part).await?;
        }
        delete_parts(&self.vault, &self.dir, Some(self.parts)).await?;
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            name: self.name.clone(),
            size: self.size,
            parts: self.parts,
            part_size: DEFAULT_PART_SIZE as u64,
        };
        let json = serde_json::to_vec(&manifest).map_err(|e| {
            DestinationError::BadName(format!("{}: cannot encode manifest: {e}", self.name))
        })?;
        self.vault
            .put_object(&format!("{}/manifest", self.dir), &json)
            .await?;
        Ok(StoredFile {
            location: location(&self.export_id, &self.name),
            name: self.name.clone(),
            size: self.size,
        })
    }

    async fn abort(self: Box<Self>) -> Result<(), DestinationError> {
        delete_parts(&self.vault, &self.dir, None).await
    }
}

/// Files of export `export_id` kept in the vault: name + size (finished
/// files only, sorted by name).
pub async fn list(
    vault: &vault::Account,
    export_id: &str,
) -> Result<Vec<StoredFile>, DestinationError> {
    let dir = export_dir(export_id)?;
    let mut out = Vec::new();
    for object in vault.list_objects(&dir).await? {
        if !object.name.ends_with("/manifest") {
            continue;
        }
        if let Some(m) = read_manifest(vault, &object.name).await? {
            out.push(StoredFile {
                location: location(export_id, &m.name),
                name: m.name,
                size: m.size,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Where [`read`] is between parts.
enum ReadState {
    Start,
    Parts {
        manifest: Manifest,
        next: u32,
        seen: u64,
    },
    Done,
}

/// The file's bytes as a stream, decrypted part by part (memory: one part).
/// Fails with [`DestinationError::NoSuchFile`] if the file is not a finished
/// file of this export in this account's vault, and with a vault error if a
/// part is missing, damaged or of the wrong size.
pub fn read(
    vault: &vault::Account,
    export_id: &str,
    name: &str,
) -> BoxStream<'static, Result<Bytes, DestinationError>> {
    let vault = vault.clone();
    let export_id = export_id.to_string();
    let name = name.to_string();
    futures::stream::try_unfold(ReadState::Start, move |state| {
        let vault = vault.clone();
        let export_id = export_id.clone();
        let name = name.clone();
        async move {
            let dir = file_dir(&export_dir(&export_id)?, &name);
            let (manifest, next, seen) = match state {
                ReadState::Done => return Ok(None),
                ReadState::Parts {
                    manifest,
                    next,
                    seen,
                } => (manifest, next, seen),
                ReadState::Start => {
                    let object = format!("{dir}/manifest");
                    match read_manifest(&vault, &object).await? {
                        Some(m) if m.name == name => (m, 0, 0),
                        _ => return Err(DestinationError::NoSuchFile { export_id, name }),
                    }
                }
            };
            if next == manifest.parts {
                if seen != manifest.size {
                    return Err(damaged(&dir, "parts are shorter than the manifest says"));
                }
                return Ok(None);
            }
            let bytes = Bytes::from(vault.get_object(&part_name(&dir, next)).await?);
            let seen = seen + bytes.len() as u64;
            let last = next + 1 == manifest.parts;
            if (!last && bytes.len() as u64 != manifest.part_size) || seen > manifest.size {
                return Err(damaged(&part_name(&dir, next), "part of the wrong size"));
            }
            let state = if last && seen == manifest.size {
                ReadState::Done
            } else {
                ReadState::Parts {
                    manifest,
                    next: next + 1,
                    seen,
                }
            };
            Ok(Some((bytes, state)))
        }
    })
    .boxed()
}

fn damaged(object: &str, reason: &str) -> DestinationError {
    DestinationError::Vault(vault::Error::Damaged {
        object: object.to_string(),
        reason: reason.to_string(),
    })
}

/// The ids of every export with objects in the account's vault (finished
/// or not), sorted: what a sweep of expired downloads looks at.
pub async fn exports(vault: &vault::Account) -> Result<Vec<String>, DestinationError> {
    let mut ids: Vec<String> = vault
        .list_objects("exports")
        .await?
        .into_iter()
        .filter_map(|o| {
            o.name
                .strip_prefix("exports/")
                .and_then(|rest| rest.split('/').next())
                .map(str::to_string)
        })
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Deletes every object of the export (after 72 hours, or on account
/// removal). Deleting an export that has nothing left is not an error.
pub async fn delete(vault: &vault::Account, export_id: &str) -> Result<(), DestinationError> {
    let dir = export_dir(export_id)?;
    for object in vault.list_objects(&dir).await? {
        vault.delete_object(&object.name).await?;
    }
    Ok(())
}
