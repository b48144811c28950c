//! Dropbox: every file goes up through an upload session
//! (`files/upload_session/start` with the first part, `append_v2` for the
//! following ones, `finish` with the last part and a commit in `overwrite`
//! mode, so an export re-run replaces its files). Nothing is visible in the
//! Dropbox before `finish`; an abandoned session cannot be deleted through
//! the API and expires on Dropbox's side (after 7 days), so `abort` only
//! stops sending.

use crate::error::Redactor;
use crate::http::Http;
use crate::target::given;
use crate::{
    Credentials, DestinationError, FileUpload, OpenOptions, Sink, StoredFile, Target, check_name,
};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

const DEFAULT_CONTENT: &str = "https://content.dropboxapi.com/2";

/// The sink of [`crate::open`] for [`Target::Dropbox`].
pub(crate) struct DropboxSink {
    http: Arc<Http>,
    content: String,
    folder: String,
    part_size: usize,
}

impl DropboxSink {
    pub(crate) fn new(
        target: &Target,
        creds: &Credentials,
        options: &OpenOptions,
    ) -> Result<Self, DestinationError> {
        let Target::Dropbox {
            path,
            content_endpoint,
            ..
        } = target
        else {
            return Err(DestinationError::BadTarget(target.describe()));
        };
        let token = given(&creds.access_token).unwrap_or_default();
        Ok(DropboxSink {
            http: Arc::new(Http::new(
                token,
                options.max_retries,
                target.describe(),
                Redactor::new(creds),
            )?),
            content: content_endpoint
                .as_deref()
                .unwrap_or(DEFAULT_CONTENT)
                .trim_end_matches('/')
                .to_string(),
            folder: path.trim_end_matches('/').to_string(),
            part_size: options.part_size.max(1),
        })
    }
}

#[async_trait]
impl Sink for DropboxSink {
    async fn create(&self, name: &str) -> Result<Box<dyn FileUpload>, DestinationError> {
        check_name(name)?;
        Ok(Box::new(DropboxUpload {
            http: self.http.clone(),
            content: self.content.clone(),
            name: name.to_string(),
            path: format!("{}/{name}", self.folder),
            part_size: self.part_size,
            buffer: BytesMut::new(),
            session_id: None,
            offset: 0,
        }))
    }
}

struct DropboxUpload {
    http: Arc<Http>,
    content: String,
    name: String,
    path: String,
    part_size: usize,
    buffer: BytesMut,
    session_id: Option<String>,
    /// Bytes the session has received.
    offset: u64,
}

#[derive(Deserialize)]
struct SessionStart {
    session_id: String,
}

#[derive(Deserialize)]
struct FileMetadata {
    path_display: Option<String>,
    size: u64,
}

/// JSON for the `Dropbox-API-Arg` header: HTTP headers carry ASCII only, so
/// every other character is escaped as `\uXXXX` (as Dropbox documents).
fn header_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() && c != '\x7f' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

impl DropboxUpload {
    /// One content-endpoint call with an argument header and a body.
    async fn call(
        &self,
        what: &str,
        endpoint: &str,
        arg: serde_json::Value,
        body: Bytes,
    ) -> Result<reqwest::Response, DestinationError> {
        let url = format!("{}/{endpoint}", self.content);
        let arg = header_json(&arg);
        self.http
            .send(what, |client| {
                Ok(client
                    .post(&url)
                    .header("Dropbox-API-Arg", &arg)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone()))
            })
            .await
    }

    /// Sends one part: starts the session with it, or appends it.
    async fn send_part(&mut self, part: Bytes) -> Result<(), DestinationError> {
        let len = part.len() as u64;
        match &self.session_id {
            None => {
                let resp = self
                    .call(
                        "starting an upload session",
                        "files/upload_session/start",
                        json!({ "close": false }),
                        part,
                    )
                    .await?;
                let started: SessionStart =
                    self.http.json("starting an upload session", resp).await?;
                self.session_id = Some(started.session_id);
            }
            Some(id) => {
                let what = format!("appending at offset {} of {}", self.offset, self.name);
                let resp = self
                    .call(
                        &what,
                        "files/upload_session/append_v2",
                        json!({ "cursor": { "session_id": id, "offset": self.offset }, "close": false }),
                        part,
                    )
                    .await?;
                if !resp.status().is_success() {
                    return self.confirm_received(&what, resp, len).await;
                }
            }
        }
        self.offset += len;
        Ok(())
    }
}

impl DropboxUpload {
    /// An append refused with `incorrect_offset` whose correct offset is
    /// just past this part: an earlier attempt arrived but its answer was
    /// lost (and the request retried), so the part is in. Anything else is
    /// an error.
    async fn confirm_received(
        &mut self,
        what: &str,
        resp: reqwest::Response,
        len: u64,
    ) -> Result<(), DestinationError> {
        if resp.status().as_u16() != 409 {
            return Err(self.http.error(what, resp).await);
        }
        let body = resp.bytes().await.unwrap_or_default();
        let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let correct = answer
            .pointer("/error/correct_offset")
            .and_then(|v| v.as_u64());
        if answer.pointer("/error/.tag").and_then(|v| v.as_str()) == Some("incorrect_offset")
            && correct == Some(self.offset + len)
        {
            self.offset += len;
            return Ok(());
        }
        let summary = answer
            .get("error_summary")
            .and_then(|v| v.as_str())
            .unwrap_or("conflict");
        Err(DestinationError::Remote {
            target: self.http.target.clone(),
            detail: format!("{what}: HTTP 409: {}", self.http.redactor.clean(summary)),
            temporary: false,
        })
    }
}

#[async_trait]
impl FileUpload for DropboxUpload {
    async fn write(&mut self, bytes: Bytes) -> Result<(), DestinationError> {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            // A full part is sent once more bytes arrive, so the last part
            // always travels with `finish`.
            if self.buffer.len() >= self.part_size {
                let part = self.buffer.split().freeze();
                self.send_part(part).await?;
            }
            let take = (self.part_size - self.buffer.len()).min(rest.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<StoredFile, DestinationError> {
        if self.session_id.is_none() {
            self.send_part(Bytes::new()).await?;
        }
        let last = self.buffer.split().freeze();
        let size = self.offset + last.len() as u64;
        let what = format!("committing {}", self.name);
        let resp = self
            .call(
                &what,
                "files/upload_session/finish",
                json!({
                    "cursor": { "session_id": self.session_id, "offset": self.offset },
                    "commit": { "path": self.path, "mode": "overwrite", "autorename": false, "mute": true },
                }),
                last,
            )
            .await?;
        let meta: FileMetadata = self.http.json(&what, resp).await?;
        if meta.size != size {
            return Err(DestinationError::Remote {
                target: self.http.target.clone(),
                detail: format!("{what}: Dropbox stored {} bytes of {size}", meta.size),
                temporary: true,
            });
        }
        Ok(StoredFile {
            name: self.name.clone(),
            size,
            location: format!(
                "Dropbox {}",
                meta.path_display.unwrap_or_else(|| self.path.clone())
            ),
        })
    }

    async fn abort(self: Box<Self>) -> Result<(), DestinationError> {
        // Dropbox has no call to cancel a session; unfinished sessions are
        // never visible and expire by themselves.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_json_escapes_everything_outside_ascii() {
        let v = json!({ "path": "/Exports/Müller 😀.pst" });
        let h = header_json(&v);
        assert!(h.is_ascii());
        assert!(h.contains("M\\u00fcller \\ud83d\\ude00.pst"), "{h}");
        let back: serde_json::Value = serde_json::from_str(&h).unwrap();
        assert_eq!(back, v);
    }
}
