//! Opening an `object_store` backend from a URL, and small helpers around it
//! that attach the object path to every error.

use crate::error::{Error, Result};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A backend plus the prefix under which the repository lives.
#[derive(Clone, Debug)]
pub struct Location {
    /// The store.
    pub store: Arc<dyn ObjectStore>,
    /// Prefix inside the store ("" for the root).
    pub prefix: String,
    counters: Arc<Counters>,
    object_lock: Option<Arc<S3ObjectLock>>,
}

/// What it takes to call the S3 Object Lock API, which `object_store` does
/// not cover: the store (for object URLs and credentials), its region and
/// an HTTP client. Requests are signed with `object_store`'s own SigV4
/// signer.
#[derive(Debug)]
struct S3ObjectLock {
    s3: object_store::aws::AmazonS3,
    region: String,
    http: reqwest::Client,
}

#[derive(Debug, Default)]
struct Counters {
    get: AtomicU64,
    list: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
    head: AtomicU64,
}

/// Requests made through a [`Location`] (and its clones) so far, by kind.
/// Ranged GETs count as GETs; a listing counts once however many pages
/// the backend needed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestCounts {
    /// GET (whole or ranged).
    pub get: u64,
    /// LIST.
    pub list: u64,
    /// PUT.
    pub put: u64,
    /// DELETE.
    pub delete: u64,
    /// HEAD.
    pub head: u64,
}

impl std::ops::Sub for RequestCounts {
    type Output = RequestCounts;
    fn sub(self, o: RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get - o.get,
            list: self.list - o.list,
            put: self.put - o.put,
            delete: self.delete - o.delete,
            head: self.head - o.head,
        }
    }
}

/// An S3 builder configured from the environment (`AWS_*` variables, like
/// `AmazonS3Builder::from_env`) that sends a SHA-256 checksum with every
/// upload and announces it with `x-amz-sdk-checksum-algorithm`: S3 refuses
/// uploads into a bucket with Object Lock default retention unless they
/// carry `Content-MD5` or that header. The checksum also lets the server
/// reject a body damaged in transit.
pub fn s3_builder_from_env() -> object_store::aws::AmazonS3Builder {
    let mut headers = object_store::HeaderMap::new();
    headers.insert(
        "x-amz-sdk-checksum-algorithm",
        object_store::HeaderValue::from_static("SHA256"),
    );
    let mut builder = object_store::aws::AmazonS3Builder::new()
        .with_client_options(object_store::ClientOptions::new().with_default_headers(headers))
        .with_checksum_algorithm(object_store::aws::Checksum::SHA256);
    for (key, value) in std::env::vars() {
        if key.starts_with("AWS_")
            && let Ok(config_key) = key.to_ascii_lowercase().parse()
        {
            builder = builder.with_config(config_key, value);
        }
    }
    builder
}

impl Location {
    /// Wrap an already-built store.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into().trim_matches('/').to_string();
        Location {
            store,
            prefix,
            counters: Arc::default(),
            object_lock: None,
        }
    }

    /// Let the vault extend S3 Object Lock retention of objects of this
    /// location (gc does, see the crate docs "Object Lock"). `s3` must be
    /// the store this location uses. [`Location::from_url`] does this for
    /// `s3://` URLs.
    pub fn with_s3_object_lock(
        mut self,
        s3: object_store::aws::AmazonS3,
        region: impl Into<String>,
    ) -> Self {
        self.object_lock = Some(Arc::new(S3ObjectLock {
            s3,
            region: region.into(),
            http: reqwest::Client::new(),
        }));
        self
    }

    /// Whether [`Location::with_s3_object_lock`] was given.
    pub(crate) fn can_extend_retention(&self) -> bool {
        self.object_lock.is_some()
    }

    /// A signed S3 request on one object with a sub-resource query.
    async fn object_lock_call(
        &self,
        method: http::Method,
        rel: &str,
        query: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response> {
        use object_store::signer::Signer;
        use sha2::Digest;
        let fail = |e: String| Error::Store {
            path: rel.to_string(),
            source: object_store::Error::Generic {
                store: "S3 Object Lock",
                source: e.into(),
            },
        };
        let Some(ol) = &self.object_lock else {
            return Err(Error::Invalid("no S3 Object Lock access configured".into()));
        };
        let path = self.path(rel);
        let mut url = ol
            .s3
            .signed_url(method.clone(), &path, std::time::Duration::from_secs(60))
            .await
            .map_err(|e| Error::store(rel, e))?;
        url.set_query(Some(query));
        let credential =
            object_store::CredentialProvider::get_credential(ol.s3.credentials().as_ref())
                .await
                .map_err(|e| Error::store(rel, e))?;
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str());
        if !body.is_empty() {
            use base64::Engine;
            let sum = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
            builder = builder
                .header("content-type", "application/xml")
                .header("x-amz-sdk-checksum-algorithm", "SHA256")
                .header("x-amz-checksum-sha256", sum);
        }
        let mut request = builder
            .body(object_store::client::HttpRequestBody::from(body.clone()))
            .map_err(|e| fail(e.to_string()))?;
        object_store::aws::AwsAuthorizer::new(&credential, "s3", &ol.region)
            .try_authorize(&mut request, None)
            .map_err(|e| Error::store(rel, e))?;
        let mut rb = ol.http.request(method, url.as_str()).body(body);
        for (k, v) in request.headers() {
            rb = rb.header(k.as_str(), v.as_bytes());
        }
        rb.send().await.map_err(|e| fail(e.to_string()))
    }

    /// The Object Lock mode (`COMPLIANCE` or `GOVERNANCE`) of an object's
    /// current version, if it has one.
    pub(crate) async fn retention_mode(&self, rel: &str) -> Result<Option<String>> {
        let resp = self
            .object_lock_call(http::Method::HEAD, rel, "", Vec::new())
            .await?;
        if !resp.status().is_success() {
            return Err(Error::Store {
                path: rel.to_string(),
                source: object_store::Error::Generic {
                    store: "S3 Object Lock",
                    source: format!("HEAD answered {}", resp.status()).into(),
                },
            });
        }
        Ok(resp
            .headers()
            .get("x-amz-object-lock-mode")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string))
    }

    /// Set the retention of an object's current version to `mode` until
    /// `until` (PutObjectRetention). S3 only ever lets COMPLIANCE retention
    /// grow, which is all the vault asks for.
    pub(crate) async fn extend_retention(
        &self,
        rel: &str,
        mode: &str,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<()> {
        self.count(|c| &c.put);
        let body = format!(
            r#"<Retention xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Mode>{mode}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>"#,
            until.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let resp = self
            .object_lock_call(http::Method::PUT, rel, "retention", body.into_bytes())
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        if status == 404 || status == 405 {
            // Deleted meanwhile (405: the current version is a delete marker).
            return Err(Error::NotFound(rel.to_string()));
        }
        let text = resp.text().await.unwrap_or_default();
        Err(Error::Store {
            path: rel.to_string(),
            source: object_store::Error::Generic {
                store: "S3 Object Lock",
                source: format!("PutObjectRetention answered {status}: {text}").into(),
            },
        })
    }

    /// Requests made so far through this location and its clones.
    pub fn request_counts(&self) -> RequestCounts {
        let c = &self.counters;
        RequestCounts {
            get: c.get.load(Ordering::Relaxed),
            list: c.list.load(Ordering::Relaxed),
            put: c.put.load(Ordering::Relaxed),
            delete: c.delete.load(Ordering::Relaxed),
            head: c.head.load(Ordering::Relaxed),
        }
    }

    fn count(&self, which: fn(&Counters) -> &AtomicU64) {
        which(&self.counters).fetch_add(1, Ordering::Relaxed);
    }

    /// Open a URL: a local path (default), `file://`, `s3://bucket/prefix`,
    /// `az://container/prefix` (also `azure://`, `abfs://`), or
    /// `gs://bucket/prefix`. Credentials and endpoints come from the
    /// environment in each SDK's usual variables (`AWS_*`, `AZURE_*`,
    /// `GOOGLE_*`).
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let bad = |e: object_store::Error| Error::store(url, e);
        match scheme.as_deref() {
            None | Some("file") => {
                let path = url.strip_prefix("file://").unwrap_or(url);
                std::fs::create_dir_all(path)
                    .map_err(|e| Error::Invalid(format!("cannot create {path}: {e}")))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(path)
                    .map_err(bad)?
                    // No automatic cleanup of empty directories: it races
                    // with concurrent writers creating files in them.
                    .with_fsync(true);
                Ok(Location::new(Arc::new(fs), ""))
            }
            Some(s) => {
                let parsed =
                    url::Url::parse(url).map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
                let prefix = parsed.path().trim_matches('/').to_string();
                let store: Arc<dyn ObjectStore> = match s {
                    "s3" | "s3a" => {
                        let builder = s3_builder_from_env().with_url(url);
                        let region = builder
                            .get_config_value(&object_store::aws::AmazonS3ConfigKey::Region)
                            .unwrap_or_else(|| "us-east-1".to_string());
                        let s3 = builder.build().map_err(bad)?;
                        return Ok(Location::new(Arc::new(s3.clone()), prefix)
                            .with_s3_object_lock(s3, region));
                    }
                    "az" | "azure" | "abfs" | "abfss" | "adl" => Arc::new(
                        object_store::azure::MicrosoftAzureBuilder::from_env()
                            .with_url(url)
                            .build()
                            .map_err(bad)?,
                    ),
                    "gs" => Arc::new(
                        object_store::gcp::GoogleCloudStorageBuilder::from_env()
                            .with_url(url)
                            .build()
                            .map_err(bad)?,
                    ),
                    other => {
                        return Err(Error::Invalid(format!("unsupported URL scheme {other}://")));
                    }
                };
                Ok(Location::new(store, prefix))
            }
        }
    }

    /// Full path of a repository-relative name.
    pub(crate) fn path(&self, rel: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rel)
        } else {
            Path::from(format!("{}/{}", self.prefix, rel))
        }
    }

    pub(crate) async fn get(&self, rel: &str) -> Result<Bytes> {
        let p = self.path(rel);
        self.count(|c| &c.get);
        let r = self.store.get(&p).await.map_err(|e| Error::store(rel, e))?;
        r.bytes().await.map_err(|e| Error::store(rel, e))
    }

    pub(crate) async fn get_range(&self, rel: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        let p = self.path(rel);
        self.count(|c| &c.get);
        self.store
            .get_range(&p, range)
            .await
            .map_err(|e| Error::store(rel, e))
    }

    pub(crate) async fn head(&self, rel: &str) -> Result<ObjectMeta> {
        let p = self.path(rel);
        self.count(|c| &c.head);
        self.store.head(&p).await.map_err(|e| Error::store(rel, e))
    }

    pub(crate) async fn exists(&self, rel: &str) -> Result<bool> {
        match self.head(rel).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn put(&self, rel: &str, data: impl Into<Bytes>) -> Result<()> {
        let p = self.path(rel);
        self.count(|c| &c.put);
        self.store
            .put(&p, PutPayload::from(data.into()))
            .await
            .map_err(|e| Error::store(rel, e))?;
        Ok(())
    }

    /// Create only if absent. Returns false if it already existed. Falls
    /// back to check-then-put on backends without conditional writes.
    pub(crate) async fn put_new(&self, rel: &str, data: impl Into<Bytes>) -> Result<bool> {
        let p = self.path(rel);
        let data: Bytes = data.into();
        self.count(|c| &c.put);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&p, PutPayload::from(data.clone()), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::NotImplemented { .. }) => {
                if self.exists(rel).await? {
                    return Ok(false);
                }
                self.put(rel, data).await?;
                Ok(true)
            }
            Err(e) => Err(Error::store(rel, e)),
        }
    }

    pub(crate) async fn delete(&self, rel: &str) -> Result<()> {
        let p = self.path(rel);
        self.count(|c| &c.delete);
        match self.store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::store(rel, e)),
        }
    }

    /// All objects under a repository-relative directory, with their names
    /// relative to the repository.
    pub(crate) async fn list(&self, rel_dir: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let p = self.path(rel_dir);
        self.count(|c| &c.list);
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|e| Error::store(rel_dir, e))?;
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        Ok(metas
            .into_iter()
            .map(|m| (m.location.as_ref()[strip..].to_string(), m))
            .collect())
    }
}
