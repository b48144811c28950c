//! S3 and Azure Blob through `object_store` (GCS: see `gcs.rs`). A file smaller than one
//! part goes up in a single PUT (cheap for many small EML/ICS files); from
//! the first full part on it is a multipart upload with at most
//! [`MAX_PARTS_IN_FLIGHT`] parts uploading at once, aborted if anything
//! fails so no orphan parts remain.

use crate::error::Redactor;
use crate::target::given;
use crate::{Credentials, DestinationError, FileUpload, Sink, StoredFile, Target, check_name};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;
use tokio::task::JoinSet;

/// Parts uploading concurrently per file (memory: this many parts plus the
/// one filling).
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// The sink of [`crate::open`] for S3 and Azure targets.
pub(crate) struct ObjectSink {
    store: Arc<dyn ObjectStore>,
    /// Key prefix inside the bucket/container ("" for none).
    prefix: String,
    /// `s3://bucket`, `az://account/container`: what a
    /// person reads before the key.
    url_base: String,
    target: String,
    part_size: usize,
    redactor: Redactor,
}

fn allow_http(endpoint: &Option<String>) -> bool {
    endpoint
        .as_deref()
        .is_some_and(|e| e.to_ascii_lowercase().starts_with("http://"))
}

impl ObjectSink {
    pub(crate) fn new(
        target: &Target,
        creds: &Credentials,
        part_size: usize,
    ) -> Result<Self, DestinationError> {
        let redactor = Redactor::new(creds);
        let described = target.describe();
        let build_error = |e: object_store::Error| {
            DestinationError::BadTarget(format!("{described}: {}", redactor.clean(&e.to_string())))
        };
        let (store, prefix, url_base): (Arc<dyn ObjectStore>, &String, String) = match target {
            Target::S3 {
                bucket,
                prefix,
                region,
                endpoint,
            } => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region.as_deref().unwrap_or("us-east-1"))
                    .with_access_key_id(given(&creds.access_key_id).unwrap_or_default())
                    .with_secret_access_key(given(&creds.secret_access_key).unwrap_or_default());
                if let Some(token) = given(&creds.session_token) {
                    b = b.with_token(token);
                }
                if let Some(endpoint) = endpoint {
                    b = b
                        .with_endpoint(endpoint.trim_end_matches('/'))
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(allow_http(&Some(endpoint.clone())));
                }
                (
                    Arc::new(b.build().map_err(build_error)?),
                    prefix,
                    format!("s3://{bucket}"),
                )
            }
            Target::Azure {
                account,
                container,
                prefix,
                endpoint,
            } => {
                let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_container_name(container);
                if let Some(key) = given(&creds.account_key) {
                    b = b.with_access_key(key);
                } else if let Some(sas) = given(&creds.sas_token) {
                    b = b.with_config(object_store::azure::AzureConfigKey::SasKey, sas);
                }
                if let Some(endpoint) = endpoint {
                    b = b
                        .with_endpoint(endpoint.trim_end_matches('/').to_string())
                        .with_allow_http(allow_http(&Some(endpoint.clone())));
                }
                (
                    Arc::new(b.build().map_err(build_error)?),
                    prefix,
                    format!("az://{account}/{container}"),
                )
            }
            _ => {
                return Err(DestinationError::BadTarget(format!(
                    "{described} is not an object store"
                )));
            }
        };
        Ok(ObjectSink {
            store,
            prefix: prefix.clone(),
            url_base,
            target: described,
            part_size,
            redactor,
        })
    }

    fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

#[async_trait]
impl Sink for ObjectSink {
    async fn create(&self, name: &str) -> Result<Box<dyn FileUpload>, DestinationError> {
        check_name(name)?;
        let key = self.key(name);
        // `Path::parse` keeps the name as given; `Path::from` would
        // percent-encode every non-ASCII character into the key itself.
        let path = Path::parse(&key).map_err(|_| DestinationError::BadName(key.clone()))?;
        Ok(Box::new(ObjectUpload {
            store: self.store.clone(),
            path,
            location: format!("{}/{key}", self.url_base),
            name: name.to_string(),
            target: self.target.clone(),
            redactor: self.redactor.clone(),
            part_size: self.part_size,
            buffer: BytesMut::new(),
            multipart: None,
            size: 0,
        }))
    }
}

/// A multipart upload under way: the store's handle and the parts still
/// uploading.
struct Multipart {
    upload: Box<dyn MultipartUpload>,
    in_flight: JoinSet<object_store::Result<()>>,
}

struct ObjectUpload {
    store: Arc<dyn ObjectStore>,
    path: Path,
    location: String,
    name: String,
    target: String,
    redactor: Redactor,
    part_size: usize,
    buffer: BytesMut,
    multipart: Option<Multipart>,
    size: u64,
}

/// Maps an `object_store` error to ours, scrubbed of secrets.
pub(crate) fn store_error(
    target: &str,
    redactor: &Redactor,
    e: object_store::Error,
) -> DestinationError {
    let detail = redactor.clean(&e.to_string());
    let target = target.to_string();
    match e {
        object_store::Error::Unauthenticated { .. }
        | object_store::Error::PermissionDenied { .. } => {
            DestinationError::CredentialsRefused { target, detail }
        }
        object_store::Error::NotFound { .. } => DestinationError::NotFound { target, detail },
        object_store::Error::Generic { .. } => DestinationError::Remote {
            target,
            detail,
            temporary: true,
        },
        _ => DestinationError::Remote {
            target,
            detail,
            temporary: false,
        },
    }
}

impl ObjectUpload {
    fn fail(&self, e: object_store::Error) -> DestinationError {
        store_error(&self.target, &self.redactor, e)
    }

    /// Waits until fewer than `limit` parts are uploading; the first failed
    /// part's error is returned.
    async fn drain(&mut self, limit: usize) -> Result<(), DestinationError> {
        let Some(mp) = self.multipart.as_mut() else {
            return Ok(());
        };
        while mp.in_flight.len() >= limit.max(1) {
            match mp.in_flight.join_next().await {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(e))) => return Err(store_error(&self.target, &self.redactor, e)),
                Some(Err(join)) => {
                    return Err(DestinationError::Remote {
                        target: self.target.clone(),
                        detail: format!("a part upload stopped: {join}"),
                        temporary: true,
                    });
                }
            }
        }
        Ok(())
    }

    /// Starts uploading one part, after waiting for room.
    async fn send_part(&mut self, part: Bytes) -> Result<(), DestinationError> {
        if self.multipart.is_none() {
            let upload = self
                .store
                .put_multipart(&self.path)
                .await
                .map_err(|e| self.fail(e))?;
            self.multipart = Some(Multipart {
                upload,
                in_flight: JoinSet::new(),
            });
        }
        self.drain(MAX_PARTS_IN_FLIGHT).await?;
        if let Some(mp) = self.multipart.as_mut() {
            let fut = mp.upload.put_part(PutPayload::from(part));
            mp.in_flight.spawn(fut);
        }
        Ok(())
    }

    async fn complete(&mut self) -> Result<(), DestinationError> {
        if self.multipart.is_none() {
            let whole = self.buffer.split().freeze();
            self.store
                .put(&self.path, PutPayload::from(whole))
                .await
                .map_err(|e| self.fail(e))?;
            return Ok(());
        }
        if !self.buffer.is_empty() {
            let last = self.buffer.split().freeze();
            self.send_part(last).await?;
        }
        self.drain(1).await?;
        let Some(mp) = self.multipart.as_mut() else {
            return Ok(());
        };
        mp.upload
            .complete()
            .await
            .map_err(|e| store_error(&self.target, &self.redactor, e))?;
        self.multipart = None;
        Ok(())
    }

    async fn abort_upload(&mut self) -> Result<(), DestinationError> {
        self.buffer = BytesMut::new();
        let Some(mut mp) = self.multipart.take() else {
            return Ok(());
        };
        // Parts still uploading would otherwise land after the abort.
        mp.in_flight.abort_all();
        while mp.in_flight.join_next().await.is_some() {}
        mp.upload.abort().await.map_err(|e| self.fail(e))
    }
}

#[async_trait]
impl FileUpload for ObjectUpload {
    async fn write(&mut self, bytes: Bytes) -> Result<(), DestinationError> {
        self.size += bytes.len() as u64;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            // A full part is sent only once more bytes arrive: a file of
            // exactly one part still goes up in one PUT.
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
        if let Err(e) = self.complete().await {
            if let Err(abort) = self.abort_upload().await {
                tracing::warn!(target_name = %self.target, error = %abort, "abort after a failed upload failed");
            }
            return Err(e);
        }
        Ok(StoredFile {
            name: self.name.clone(),
            size: self.size,
            location: self.location.clone(),
        })
    }

    async fn abort(mut self: Box<Self>) -> Result<(), DestinationError> {
        self.abort_upload().await
    }
}
