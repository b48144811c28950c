//! Google Cloud Storage through its JSON API: a file of at most one part
//! is one `uploadType=media` request; a larger one is a resumable upload
//! session (parts of a multiple of 256 KiB sent in order with
//! `Content-Range`, the last one with the total size), cancelled with
//! `DELETE` on abort. Nothing is visible in the bucket before the last
//! part.
//!
//! Why not `object_store`'s GCS client like S3 and Azure: its multipart
//! upload is GCS's XML multipart API, and its single PUT requires an
//! `ETag` answer; neither is served by gcp-storage-emulator (nor by
//! fake-gcs-server, fsouza/fake-gcs-server#852), so it could not be tested
//! here, while resumable uploads are what Google recommends for large or
//! streamed files and the emulator implements them. `object_store` still
//! supplies the credentials: it turns a service account key into OAuth
//! tokens (and refreshes them) or uses the bearer token given.

use crate::error::Redactor;
use crate::http::Http;
use crate::object::store_error;
use crate::target::given;
use crate::{
    Credentials, DestinationError, FileUpload, OpenOptions, Sink, StoredFile, Target, check_name,
};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use object_store::gcp::GcpCredentialProvider;
use serde::Deserialize;
use std::sync::Arc;

const DEFAULT_BASE: &str = "https://storage.googleapis.com";
/// Resumable upload parts must be multiples of this (except the last).
const QUANTUM: usize = 256 * 1024;

/// The sink of [`crate::open`] for [`Target::Gcs`].
pub(crate) struct GcsSink {
    shared: Arc<GcsClient>,
    prefix: String,
    part_size: usize,
}

struct GcsClient {
    http: Http,
    credentials: GcpCredentialProvider,
    base: String,
    bucket: String,
}

impl GcsSink {
    pub(crate) fn new(
        target: &Target,
        creds: &Credentials,
        options: &OpenOptions,
    ) -> Result<Self, DestinationError> {
        let Target::Gcs {
            bucket,
            prefix,
            endpoint,
        } = target
        else {
            return Err(DestinationError::BadTarget(target.describe()));
        };
        let redactor = Redactor::new(creds);
        let described = target.describe();
        let mut builder =
            object_store::gcp::GoogleCloudStorageBuilder::new().with_bucket_name(bucket);
        if let Some(json) = given(&creds.service_account_json) {
            builder = builder.with_service_account_key(json);
        } else if let Some(token) = given(&creds.bearer_token) {
            builder = builder.with_bearer_token(token);
        }
        let store = builder.build().map_err(|e| {
            DestinationError::BadTarget(format!("{described}: {}", redactor.clean(&e.to_string())))
        })?;
        let part_size = options.part_size.max(QUANTUM).div_ceil(QUANTUM) * QUANTUM;
        Ok(GcsSink {
            shared: Arc::new(GcsClient {
                http: Http::new("", options.max_retries, described, redactor)?,
                credentials: store.credentials().clone(),
                base: endpoint
                    .as_deref()
                    .unwrap_or(DEFAULT_BASE)
                    .trim_end_matches('/')
                    .to_string(),
                bucket: bucket.clone(),
            }),
            prefix: prefix.clone(),
            part_size,
        })
    }
}

#[async_trait]
impl Sink for GcsSink {
    async fn create(&self, name: &str) -> Result<Box<dyn FileUpload>, DestinationError> {
        check_name(name)?;
        let key = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        };
        Ok(Box::new(GcsUpload {
            client: self.shared.clone(),
            name: name.to_string(),
            key,
            part_size: self.part_size,
            buffer: BytesMut::new(),
            session: None,
            sent: 0,
        }))
    }
}

struct GcsUpload {
    client: Arc<GcsClient>,
    name: String,
    key: String,
    part_size: usize,
    buffer: BytesMut,
    /// The resumable session's URI, once started.
    session: Option<String>,
    /// Bytes the session has received.
    sent: u64,
}

#[derive(Deserialize)]
struct ObjectResource {
    size: Option<String>,
}

impl GcsClient {
    async fn token(&self) -> Result<String, DestinationError> {
        let credential = self
            .credentials
            .as_ref()
            .get_credential()
            .await
            .map_err(|e| store_error(&self.http.target, &self.http.redactor, e))?;
        Ok(credential.bearer.clone())
    }

    fn upload_url(&self, upload_type: &str, key: &str) -> Result<url::Url, DestinationError> {
        let mut url = url::Url::parse(&format!("{}/upload/storage/v1/b/", self.base))
            .map_err(|e| DestinationError::BadTarget(format!("{}: {e}", self.http.target)))?;
        url.path_segments_mut()
            .map_err(|_| DestinationError::BadTarget(self.http.target.clone()))?
            .pop_if_empty()
            .push(&self.bucket)
            .push("o");
        url.query_pairs_mut()
            .append_pair("uploadType", upload_type)
            .append_pair("name", key);
        Ok(url)
    }

    /// Checks the size GCS reports for a finished object.
    async fn finished(
        &self,
        what: &str,
        resp: reqwest::Response,
        size: u64,
    ) -> Result<(), DestinationError> {
        let object: ObjectResource = self.http.json(what, resp).await?;
        match object.size.and_then(|s| s.parse::<u64>().ok()) {
            Some(stored) if stored != size => Err(DestinationError::Remote {
                target: self.http.target.clone(),
                detail: format!("{what}: GCS stored {stored} bytes of {size}"),
                temporary: true,
            }),
            _ => Ok(()),
        }
    }
}

impl GcsUpload {
    async fn start_session(&mut self) -> Result<String, DestinationError> {
        if let Some(uri) = &self.session {
            return Ok(uri.clone());
        }
        let what = format!("starting a resumable upload of {}", self.name);
        let url = self.client.upload_url("resumable", &self.key)?;
        let token = self.client.token().await?;
        let resp = self
            .client
            .http
            .send_as(&what, &token, |c| {
                Ok(c.post(url.clone())
                    .header("X-Upload-Content-Type", "application/octet-stream")
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/json; charset=UTF-8",
                    )
                    .body("{}"))
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.client.http.error(&what, resp).await);
        }
        let Some(uri) = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        else {
            return Err(DestinationError::Remote {
                target: self.client.http.target.clone(),
                detail: format!("{what}: no session URI in the answer"),
                temporary: false,
            });
        };
        self.session = Some(uri.clone());
        Ok(uri)
    }

    /// Sends one part of the session; `total` is set for the last one.
    async fn send_part(&mut self, part: Bytes, total: Option<u64>) -> Result<(), DestinationError> {
        let uri = self.start_session().await?;
        let len = part.len() as u64;
        let range = match (len, total) {
            (0, Some(t)) => format!("bytes */{t}"),
            (_, Some(t)) => format!("bytes {}-{}/{t}", self.sent, self.sent + len - 1),
            (_, None) => format!("bytes {}-{}/*", self.sent, self.sent + len - 1),
        };
        let what = format!("uploading {range} of {}", self.name);
        let token = self.client.token().await?;
        let resp = self
            .client
            .http
            .send_as(&what, &token, |c| {
                Ok(c.put(&uri)
                    .header(reqwest::header::CONTENT_RANGE, &range)
                    .body(part.clone()))
            })
            .await?;
        self.sent += len;
        match total {
            // 308 "resume incomplete": the part is stored, more expected.
            None if resp.status().as_u16() == 308 => Ok(()),
            None => Err(self.client.http.error(&what, resp).await),
            Some(t) => self.client.finished(&what, resp, t).await,
        }
    }

    async fn complete(&mut self) -> Result<u64, DestinationError> {
        let last = self.buffer.split().freeze();
        let total = self.sent + last.len() as u64;
        // An empty file goes through a session too (`bytes */0`): some
        // servers (the emulator) drop an empty media upload.
        if self.session.is_none() && total > 0 {
            let what = format!("uploading {}", self.name);
            let url = self.client.upload_url("media", &self.key)?;
            let token = self.client.token().await?;
            let resp = self
                .client
                .http
                .send_as(&what, &token, |c| {
                    Ok(c.post(url.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .body(last.clone()))
                })
                .await?;
            self.client.finished(&what, resp, total).await?;
        } else {
            self.send_part(last, Some(total)).await?;
        }
        Ok(total)
    }

    async fn cancel(&mut self) -> Result<(), DestinationError> {
        self.buffer = BytesMut::new();
        let Some(uri) = self.session.take() else {
            return Ok(());
        };
        let what = format!("cancelling the upload of {}", self.name);
        let token = self.client.token().await?;
        let resp = self
            .client
            .http
            .send_as(&what, &token, |c| Ok(c.delete(&uri)))
            .await?;
        match resp.status().as_u16() {
            // GCS answers 499 to a cancelled session; 404/410: already gone.
            200..=299 | 404 | 410 | 499 => Ok(()),
            // A server that cannot cancel sessions (the emulator): an
            // unfinished session never becomes an object and expires.
            501 => {
                tracing::debug!(target_name = %self.client.http.target, "resumable sessions cannot be cancelled here; it will expire");
                Ok(())
            }
            _ => Err(self.client.http.error(&what, resp).await),
        }
    }
}

#[async_trait]
impl FileUpload for GcsUpload {
    async fn write(&mut self, bytes: Bytes) -> Result<(), DestinationError> {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            // A full part is sent once more bytes arrive, so the last part
            // (which carries the total size) is sent by `finish`.
            if self.buffer.len() >= self.part_size {
                let part = self.buffer.split().freeze();
                self.send_part(part, None).await?;
            }
            let take = (self.part_size - self.buffer.len()).min(rest.len());
            self.buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<StoredFile, DestinationError> {
        match self.complete().await {
            Ok(size) => Ok(StoredFile {
                name: self.name.clone(),
                size,
                location: format!("gs://{}/{}", self.client.bucket, self.key),
            }),
            Err(e) => {
                if let Err(cancel) = self.cancel().await {
                    tracing::warn!(target_name = %self.client.http.target, error = %cancel, "could not cancel a failed GCS upload");
                }
                Err(e)
            }
        }
    }

    async fn abort(mut self: Box<Self>) -> Result<(), DestinationError> {
        self.cancel().await
    }
}
