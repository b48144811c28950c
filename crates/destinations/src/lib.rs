//! # Destinations: where exports go
//!
//! An export job writes finished files (PST parts, ZIPs, EML, ICS, VCF —
//! possibly many GB) to the place the customer chose ([`Target`]) with the
//! secrets they gave ([`Credentials`]), streaming: no file is ever held in
//! memory whole.
//!
//! ```text
//! open(&target, &creds, vault_account, export_id) -> Box<dyn Sink>
//!   sink.create("mailbox/part-1.pst") -> Box<dyn FileUpload>
//!     upload.write(bytes)...  upload.finish() -> StoredFile | upload.abort()
//! upload_file(&*sink, name, path)      streams a local file in parts
//! ```
//!
//! | target   | how                                                          | memory per file           |
//! |----------|--------------------------------------------------------------|---------------------------|
//! | download | vault named objects `exports/<id>/<name hash>/<part>` + manifest | one part (8 MiB)       |
//! | S3/Azure | `object_store` multipart upload (one PUT below one part)     | about three parts         |
//! | GCS      | JSON API: one media upload below one part, else a resumable session | one part           |
//! | Box      | direct upload below 20 MiB, else a chunked upload session     | one part (size from Box)  |
//! | Dropbox  | upload session start / append_v2 / finish (overwrite)         | one part                  |
//!
//! Box's chunked upload needs the total size up front, so a Box
//! [`Sink::create`] spools the bytes to a temporary file (in the system's
//! temporary directory, deleted when the upload ends) and uploads at
//! `finish`; [`upload_file`] (size known) uploads straight from the file,
//! so exports to Box should prefer it.
//!
//! Box and Dropbox (and GCS) requests are retried on 429, 5xx and network
//! errors a bounded number of times ([`OpenOptions::max_retries`]), waiting
//! as `Retry-After` says; S3 and Azure use `object_store`'s own retries.
//!
//! Secrets never appear in `Debug` output, error messages or traces: text
//! from services and client libraries is scrubbed of every credential value
//! before it becomes a [`DestinationError`].

mod boxcom;
pub mod download;
mod dropbox;
mod error;
mod gcs;
mod http;
mod object;
mod target;

pub use error::DestinationError;
pub use target::{Credentials, Target};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

/// Default part size: what [`upload_file`] reads at a time, the multipart
/// part size of S3/Azure/GCS, the Dropbox chunk and the download target's
/// part. A multiple of 4 MiB (Dropbox) and above S3's 5 MiB minimum.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// Tuning for [`open_with`]. [`open`] uses the defaults.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Part size (see [`DEFAULT_PART_SIZE`]). S3 refuses parts below 5 MiB
    /// except the last; GCS rounds it up to a multiple of 256 KiB; Box
    /// chooses its own part size.
    pub part_size: usize,
    /// How many times a Box/Dropbox request is retried after 429/5xx or a
    /// network error (waiting as `Retry-After` says, else backing off).
    pub max_retries: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            part_size: DEFAULT_PART_SIZE,
            max_retries: 5,
        }
    }
}

/// Where a finished file landed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFile {
    /// The name it was created with (relative to the target).
    pub name: String,
    /// Bytes written.
    pub size: u64,
    /// A URL, key or id a person can find it by.
    pub location: String,
}

/// An opened destination.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Starts a file (name may contain '/' for sub-folders; it goes under the
    /// target's prefix/folder).
    async fn create(&self, name: &str) -> Result<Box<dyn FileUpload>, DestinationError>;

    /// Uploads a whole local file reading `part_size` bytes at a time. The
    /// default streams it through [`Sink::create`]; targets that can use a
    /// known size (Box's upload sessions) do better.
    async fn upload_path(
        &self,
        name: &str,
        path: &std::path::Path,
        part_size: usize,
    ) -> Result<StoredFile, DestinationError> {
        stream_file(self, name, path, part_size).await
    }
}

/// One file being written.
#[async_trait]
pub trait FileUpload: Send {
    /// Appends bytes.
    async fn write(&mut self, bytes: Bytes) -> Result<(), DestinationError>;
    /// Completes the file; returns where it landed.
    async fn finish(self: Box<Self>) -> Result<StoredFile, DestinationError>;
    /// Abandons a partial upload so nothing half-written remains (multipart
    /// abort, session cancel).
    async fn abort(self: Box<Self>) -> Result<(), DestinationError>;
}

/// Opens a target for writing. Download needs the vault account (else
/// [`DestinationError::NoVault`]). Credentials are checked first
/// ([`Target::check_credentials`]); whether the service accepts them shows
/// at the first request.
pub async fn open(
    target: &Target,
    creds: &Credentials,
    download: Option<&vault::Account>,
    export_id: &str,
) -> Result<Box<dyn Sink>, DestinationError> {
    open_with(target, creds, download, export_id, &OpenOptions::default()).await
}

/// [`open`] with explicit [`OpenOptions`].
pub async fn open_with(
    target: &Target,
    creds: &Credentials,
    download: Option<&vault::Account>,
    export_id: &str,
    options: &OpenOptions,
) -> Result<Box<dyn Sink>, DestinationError> {
    target.check_credentials(creds)?;
    let part_size = options.part_size.max(1);
    match target {
        Target::Download => {
            let account = download.ok_or(DestinationError::NoVault)?;
            Ok(Box::new(download::DownloadSink::new(
                account.clone(),
                export_id,
            )?))
        }
        Target::S3 { .. } | Target::Azure { .. } => {
            Ok(Box::new(object::ObjectSink::new(target, creds, part_size)?))
        }
        Target::Gcs { .. } => Ok(Box::new(gcs::GcsSink::new(target, creds, options)?)),
        Target::Box { .. } => Ok(Box::new(boxcom::BoxSink::new(target, creds, options)?)),
        Target::Dropbox { .. } => Ok(Box::new(dropbox::DropboxSink::new(target, creds, options)?)),
    }
}

/// Streams a local file into `sink` as `name` in parts of
/// [`DEFAULT_PART_SIZE`] bytes, aborting on error.
pub async fn upload_file(
    sink: &dyn Sink,
    name: &str,
    path: &std::path::Path,
) -> Result<StoredFile, DestinationError> {
    sink.upload_path(name, path, DEFAULT_PART_SIZE).await
}

/// The generic [`Sink::upload_path`]: read a part, write it, repeat; abort
/// the upload if anything fails.
pub(crate) async fn stream_file<S: Sink + ?Sized>(
    sink: &S,
    name: &str,
    path: &std::path::Path,
    part_size: usize,
) -> Result<StoredFile, DestinationError> {
    let shown = path.display().to_string();
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| DestinationError::io(&shown, e))?;
    let mut upload = sink.create(name).await?;
    loop {
        let part = match read_part(&mut file, part_size).await {
            Ok(p) => p,
            Err(e) => {
                abort_quietly(upload).await;
                return Err(DestinationError::io(&shown, e));
            }
        };
        if part.is_empty() {
            break;
        }
        if let Err(e) = upload.write(part).await {
            abort_quietly(upload).await;
            return Err(e);
        }
    }
    upload.finish().await
}

/// Reads up to `len` bytes (fewer only at the end of the file).
pub(crate) async fn read_part(file: &mut tokio::fs::File, len: usize) -> std::io::Result<Bytes> {
    // A part size chosen by a service (Box) is not trusted for the
    // allocation up front; the buffer grows as bytes arrive.
    let mut buf = Vec::with_capacity(len.min(4 * DEFAULT_PART_SIZE));
    let mut limited = file.take(len as u64);
    limited.read_to_end(&mut buf).await?;
    Ok(Bytes::from(buf))
}

async fn abort_quietly(upload: Box<dyn FileUpload>) {
    if let Err(e) = upload.abort().await {
        tracing::warn!(error = %e, "could not abort a failed upload");
    }
}

/// Checks an export file name: `/`-separated segments, none empty, `.` or
/// `..`, no control characters or backslashes.
pub(crate) fn check_name(name: &str) -> Result<(), DestinationError> {
    let ok = !name.is_empty()
        && name.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && !seg.chars().any(|c| c.is_control() || c == '\\')
        });
    if ok {
        Ok(())
    } else {
        Err(DestinationError::BadName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_sub_folders_pass_and_escapes_do_not() {
        for good in ["a.pst", "mailbox/part 1.pst", "Ünïcode/ä.eml"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "/abs", "a//b", "../x", "a/./b", "a\\b", "a\nb", "a/"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
