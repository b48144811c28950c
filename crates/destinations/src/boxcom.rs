//! Box: files below [`CHUNKED_MIN`] go up in one multipart form POST
//! (`files/content`), larger ones through a chunked upload session (parts
//! of the size Box chooses, each with its SHA-1 in a `Digest` header, then
//! a commit with the part list and the whole file's SHA-1). A name already
//! in use in the folder gets a new version of that file, so an export
//! re-run overwrites. Sub-folders of a name are found or created.
//!
//! A chunked session needs the total size up front, so
//! [`Sink::create`] spools the bytes to a temporary file (deleted when the
//! upload ends) and uploads at `finish`; [`crate::upload_file`] uploads
//! straight from the file. Abort deletes an open session; a spooled file
//! that never reached Box leaves nothing there.

use crate::error::Redactor;
use crate::http::Http;
use crate::target::given;
use crate::{
    Credentials, DestinationError, FileUpload, OpenOptions, Sink, StoredFile, Target, check_name,
    read_part,
};
use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use sha1::Digest;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

const DEFAULT_API: &str = "https://api.box.com/2.0";
const DEFAULT_UPLOAD: &str = "https://upload.box.com/api/2.0";
/// Box's chunked upload API takes files of 20 MB and more; smaller ones go
/// up in one request (Box allows those up to 50 MB).
pub(crate) const CHUNKED_MIN: u64 = 20 * 1024 * 1024;
/// How often a commit answered with 202 (parts still being processed) is
/// asked again.
const COMMIT_ATTEMPTS: u32 = 20;
/// The multipart form boundary (cannot occur in the attributes JSON; Box
/// reads the file part by its declared boundary, not by scanning it).
const BOUNDARY: &str = "lifeboat-box-upload-7c1e5b2a9d";

/// The sink of [`crate::open`] for [`Target::Box`].
pub(crate) struct BoxSink {
    inner: Arc<BoxClient>,
}

struct BoxClient {
    http: Http,
    api: String,
    upload: String,
    folder_id: String,
    /// Ids of sub-folders already found or created, by path under the
    /// target folder.
    folders: tokio::sync::Mutex<HashMap<String, String>>,
}

impl BoxSink {
    pub(crate) fn new(
        target: &Target,
        creds: &Credentials,
        options: &OpenOptions,
    ) -> Result<Self, DestinationError> {
        let Target::Box {
            folder_id,
            endpoint,
            upload_endpoint,
        } = target
        else {
            return Err(DestinationError::BadTarget(target.describe()));
        };
        let token = given(&creds.access_token).unwrap_or_default();
        let base = |e: &Option<String>, default: &str| {
            e.as_deref()
                .unwrap_or(default)
                .trim_end_matches('/')
                .to_string()
        };
        Ok(BoxSink {
            inner: Arc::new(BoxClient {
                http: Http::new(
                    token,
                    options.max_retries,
                    target.describe(),
                    Redactor::new(creds),
                )?,
                api: base(endpoint, DEFAULT_API),
                upload: base(upload_endpoint, DEFAULT_UPLOAD),
                folder_id: folder_id.clone(),
                folders: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }
}

#[async_trait]
impl Sink for BoxSink {
    async fn create(&self, name: &str) -> Result<Box<dyn FileUpload>, DestinationError> {
        check_name(name)?;
        let spool = tempfile::NamedTempFile::new()
            .map_err(|e| DestinationError::io("temporary file for a Box upload", e))?;
        let file = spool
            .reopen()
            .map_err(|e| DestinationError::io("temporary file for a Box upload", e))?;
        Ok(Box::new(BoxUpload {
            client: self.inner.clone(),
            name: name.to_string(),
            file: tokio::fs::File::from_std(file),
            spool,
            size: 0,
        }))
    }

    async fn upload_path(
        &self,
        name: &str,
        path: &Path,
        _part_size: usize,
    ) -> Result<StoredFile, DestinationError> {
        check_name(name)?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| DestinationError::io(path.display().to_string(), e))?
            .len();
        self.inner.upload(name, path, size).await
    }
}

/// A [`Sink::create`] upload: bytes spooled to a temporary file.
struct BoxUpload {
    client: Arc<BoxClient>,
    name: String,
    file: tokio::fs::File,
    spool: tempfile::NamedTempFile,
    size: u64,
}

#[async_trait]
impl FileUpload for BoxUpload {
    async fn write(&mut self, bytes: Bytes) -> Result<(), DestinationError> {
        self.file
            .write_all(&bytes)
            .await
            .map_err(|e| DestinationError::io("temporary file for a Box upload", e))?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<StoredFile, DestinationError> {
        self.file
            .flush()
            .await
            .map_err(|e| DestinationError::io("temporary file for a Box upload", e))?;
        self.client
            .upload(&self.name, self.spool.path(), self.size)
            .await
    }

    async fn abort(self: Box<Self>) -> Result<(), DestinationError> {
        // Nothing reached Box yet; dropping the spool deletes it.
        Ok(())
    }
}

#[derive(Deserialize)]
struct Entries {
    entries: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    id: String,
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Session {
    id: String,
    part_size: u64,
}

#[derive(Deserialize)]
struct PartAnswer {
    part: serde_json::Value,
}

/// The id of the existing item a 409 `item_name_in_use` answer names
/// (`context_info.conflicts` is an object for uploads, a list for folders).
fn conflict_id(body: &serde_json::Value) -> Option<String> {
    let conflicts = body.get("context_info")?.get("conflicts")?;
    let first = match conflicts {
        serde_json::Value::Array(list) => list.first()?,
        other => other,
    };
    first.get("id")?.as_str().map(str::to_string)
}

fn sha1_header(digest: &[u8]) -> String {
    format!(
        "sha={}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

impl BoxClient {
    fn target(&self) -> &str {
        &self.http.target
    }

    /// The folder `dirs` (a `/`-separated path under the target folder,
    /// `""` for the target folder itself), created where missing.
    async fn folder(&self, dirs: &str) -> Result<String, DestinationError> {
        if dirs.is_empty() {
            return Ok(self.folder_id.clone());
        }
        let mut folders = self.folders.lock().await;
        let mut parent = self.folder_id.clone();
        let mut path = String::new();
        for segment in dirs.split('/') {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(segment);
            if let Some(id) = folders.get(&path) {
                parent = id.clone();
                continue;
            }
            let what = format!("creating folder {path}");
            let url = format!("{}/folders", self.api);
            let body = json!({ "name": segment, "parent": { "id": parent } });
            let resp = self
                .http
                .send(&what, |c| Ok(c.post(&url).json(&body)))
                .await?;
            let id = if resp.status().as_u16() == 409 {
                let answer: serde_json::Value = resp.json().await.unwrap_or_default();
                conflict_id(&answer).ok_or_else(|| DestinationError::Remote {
                    target: self.target().to_string(),
                    detail: format!("{what}: the name is taken by something that is not a folder"),
                    temporary: false,
                })?
            } else {
                let item: Item = self.http.json(&what, resp).await?;
                item.id
            };
            folders.insert(path.clone(), id.clone());
            parent = id;
        }
        Ok(parent)
    }

    /// Uploads the local file `path` of `size` bytes as `name`.
    async fn upload(
        &self,
        name: &str,
        path: &Path,
        size: u64,
    ) -> Result<StoredFile, DestinationError> {
        let (dirs, file_name) = name.rsplit_once('/').unwrap_or(("", name));
        let folder = self.folder(dirs).await?;
        let file_id = if size < CHUNKED_MIN {
            self.upload_direct(file_name, &folder, path, size).await?
        } else {
            self.upload_chunked(file_name, &folder, path, size).await?
        };
        Ok(StoredFile {
            name: name.to_string(),
            size,
            location: format!("Box file {file_id} in folder {folder}"),
        })
    }

    /// One multipart form POST (`attributes` then `file`), streamed from
    /// the file; on a name conflict, a new version of the existing file.
    async fn upload_direct(
        &self,
        file_name: &str,
        folder: &str,
        path: &Path,
        size: u64,
    ) -> Result<String, DestinationError> {
        let what = format!("uploading {file_name}");
        let url = format!("{}/files/content", self.upload);
        let attributes = json!({ "name": file_name, "parent": { "id": folder } });
        let resp = self.post_form(&what, &url, &attributes, path, size).await?;
        let resp = if resp.status().as_u16() == 409 {
            let answer: serde_json::Value = resp.json().await.unwrap_or_default();
            let Some(existing) = conflict_id(&answer) else {
                return Err(self.conflict_error(&what));
            };
            let url = format!("{}/files/{existing}/content", self.upload);
            let attributes = json!({ "name": file_name });
            self.post_form(
                &format!("uploading a new version of {file_name}"),
                &url,
                &attributes,
                path,
                size,
            )
            .await?
        } else {
            resp
        };
        self.stored(&what, resp, size).await
    }

    fn conflict_error(&self, what: &str) -> DestinationError {
        DestinationError::Remote {
            target: self.target().to_string(),
            detail: format!("{what}: the name is in use and Box did not say by what"),
            temporary: false,
        }
    }

    /// The id of the file a successful upload or commit answer describes,
    /// after checking the size Box reports.
    async fn stored(
        &self,
        what: &str,
        resp: reqwest::Response,
        size: u64,
    ) -> Result<String, DestinationError> {
        let answer: Entries = self.http.json(what, resp).await?;
        let Some(item) = answer.entries.into_iter().next() else {
            return Err(DestinationError::Remote {
                target: self.target().to_string(),
                detail: format!("{what}: Box answered without the file"),
                temporary: false,
            });
        };
        if let Some(stored) = item.size
            && stored != size
        {
            return Err(DestinationError::Remote {
                target: self.target().to_string(),
                detail: format!("{what}: Box stored {stored} bytes of {size}"),
                temporary: true,
            });
        }
        Ok(item.id)
    }

    async fn post_form(
        &self,
        what: &str,
        url: &str,
        attributes: &serde_json::Value,
        path: &Path,
        size: u64,
    ) -> Result<reqwest::Response, DestinationError> {
        let head = Bytes::from(format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attributes\"\r\n\r\n{attributes}\r\n\
             --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = Bytes::from(format!("\r\n--{BOUNDARY}--\r\n"));
        let length = head.len() as u64 + size + tail.len() as u64;
        let shown = path.display().to_string();
        self.http
            .send(what, |c| {
                // Reopened for every attempt: a retry sends the file again.
                let file =
                    std::fs::File::open(path).map_err(|e| DestinationError::io(&shown, e))?;
                let content = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
                use futures::StreamExt;
                let body = futures::stream::once(futures::future::ready(Ok(head.clone())))
                    .chain(content)
                    .chain(futures::stream::once(futures::future::ready(Ok(
                        tail.clone()
                    ))));
                Ok(c.post(url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/form-data; boundary={BOUNDARY}"),
                    )
                    .header(reqwest::header::CONTENT_LENGTH, length)
                    .body(reqwest::Body::wrap_stream(body)))
            })
            .await
    }

    /// Opens a session (for a new file, or a new version on a conflict),
    /// uploads the parts, commits; deletes the session on any failure.
    async fn upload_chunked(
        &self,
        file_name: &str,
        folder: &str,
        path: &Path,
        size: u64,
    ) -> Result<String, DestinationError> {
        let what = format!("opening an upload session for {file_name}");
        let url = format!("{}/files/upload_sessions", self.upload);
        let body = json!({ "folder_id": folder, "file_size": size, "file_name": file_name });
        let resp = self
            .http
            .send(&what, |c| Ok(c.post(&url).json(&body)))
            .await?;
        let resp = if resp.status().as_u16() == 409 {
            let answer: serde_json::Value = resp.json().await.unwrap_or_default();
            let Some(existing) = conflict_id(&answer) else {
                return Err(self.conflict_error(&what));
            };
            let url = format!("{}/files/{existing}/upload_sessions", self.upload);
            let body = json!({ "file_size": size, "file_name": file_name });
            self.http
                .send(&what, |c| Ok(c.post(&url).json(&body)))
                .await?
        } else {
            resp
        };
        let session: Session = self.http.json(&what, resp).await?;
        match self.send_session(&session, file_name, path, size).await {
            Ok(id) => Ok(id),
            Err(e) => {
                if let Err(abort) = self.abort_session(&session.id).await {
                    tracing::warn!(target_name = %self.target(), error = %abort, "could not delete a failed Box upload session");
                }
                Err(e)
            }
        }
    }

    async fn send_session(
        &self,
        session: &Session,
        file_name: &str,
        path: &Path,
        size: u64,
    ) -> Result<String, DestinationError> {
        let shown = path.display().to_string();
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| DestinationError::io(&shown, e))?;
        let part_size = usize::try_from(session.part_size.max(1)).unwrap_or(usize::MAX);
        let url = format!("{}/files/upload_sessions/{}", self.upload, session.id);
        let mut whole = sha1::Sha1::new();
        let mut parts = Vec::new();
        let mut offset = 0u64;
        while offset < size {
            let part = read_part(&mut file, part_size)
                .await
                .map_err(|e| DestinationError::io(&shown, e))?;
            if part.is_empty() {
                return Err(DestinationError::io(
                    &shown,
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "file shrank while uploading",
                    ),
                ));
            }
            whole.update(&part);
            let end = offset + part.len() as u64 - 1;
            let range = format!("bytes {offset}-{end}/{size}");
            let digest = sha1_header(&sha1::Sha1::digest(&part));
            let what = format!("uploading {range} of {file_name}");
            let resp = self
                .http
                .send(&what, |c| {
                    Ok(c.put(&url)
                        .header(reqwest::header::CONTENT_RANGE, &range)
                        .header("Digest", &digest)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(part.clone()))
                })
                .await?;
            let answer: PartAnswer = self.http.json(&what, resp).await?;
            parts.push(answer.part);
            offset = end + 1;
        }
        let digest = sha1_header(&whole.finalize());
        let what = format!("committing {file_name}");
        let commit_url = format!("{url}/commit");
        let body = json!({ "parts": parts, "attributes": {} });
        for _ in 0..COMMIT_ATTEMPTS {
            let resp = self
                .http
                .send(&what, |c| {
                    Ok(c.post(&commit_url).header("Digest", &digest).json(&body))
                })
                .await?;
            if resp.status().as_u16() == 202 {
                // Box is still processing the parts: ask again when it says.
                let wait = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .min(60);
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                continue;
            }
            return self.stored(&what, resp, size).await;
        }
        Err(DestinationError::Remote {
            target: self.target().to_string(),
            detail: format!(
                "{what}: Box was still processing the parts after {COMMIT_ATTEMPTS} tries"
            ),
            temporary: true,
        })
    }

    async fn abort_session(&self, session_id: &str) -> Result<(), DestinationError> {
        let what = "deleting an upload session";
        let url = format!("{}/files/upload_sessions/{session_id}", self.upload);
        let resp = self.http.send(what, |c| Ok(c.delete(&url))).await?;
        if resp.status().is_success() || resp.status().as_u16() == 404 {
            Ok(())
        } else {
            Err(self.http.error(what, resp).await)
        }
    }
}
