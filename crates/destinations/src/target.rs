//! Where an export goes ([`Target`], no secrets: stored in job payloads and
//! shown in the UI) and the secrets it needs ([`Credentials`], stored only
//! encrypted and never printed).

use crate::DestinationError;
use serde::{Deserialize, Serialize};

/// Where an export goes, without secrets (this is stored in job payloads and
/// shown in the UI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// Kept in the account's vault (encrypted) for a 72-hour download link.
    Download,
    /// Amazon S3 or an S3-compatible store.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix the export's files go under ("" for the bucket root).
        prefix: String,
        /// Region (default `us-east-1`).
        region: Option<String>,
        /// Endpoint of an S3-compatible store (path-style requests are used).
        endpoint: Option<String>,
    },
    /// Azure Blob Storage.
    Azure {
        /// Storage account name.
        account: String,
        /// Container name.
        container: String,
        /// Blob name prefix.
        prefix: String,
        /// Endpoint including the account path (Azurite:
        /// `http://127.0.0.1:10000/devstoreaccount1`).
        endpoint: Option<String>,
    },
    /// Google Cloud Storage.
    Gcs {
        /// Bucket name.
        bucket: String,
        /// Object name prefix.
        prefix: String,
        /// Base URL of the storage API (an emulator's address).
        endpoint: Option<String>,
    },
    /// A Box folder.
    Box {
        /// Id of the folder files go into (`0` is the root).
        folder_id: String,
        /// API base (default `https://api.box.com/2.0`).
        endpoint: Option<String>,
        /// Upload API base (default `https://upload.box.com/api/2.0`).
        upload_endpoint: Option<String>,
    },
    /// A Dropbox folder.
    Dropbox {
        /// Folder path, starting with `/` (`""` is the root).
        path: String,
        /// RPC API base (default `https://api.dropboxapi.com/2`).
        endpoint: Option<String>,
        /// Content API base (default `https://content.dropboxapi.com/2`).
        content_endpoint: Option<String>,
    },
}

/// The customer's secrets for one export. `Debug` prints field names with
/// values redacted (`***`); never logged. Serializable (the job stores it
/// encrypted in the vault, not in the catalog).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// S3 access key id.
    pub access_key_id: Option<String>,
    /// S3 secret access key.
    pub secret_access_key: Option<String>,
    /// S3 session token (temporary credentials).
    pub session_token: Option<String>,
    /// Azure storage account key.
    pub account_key: Option<String>,
    /// Azure SAS token (query string, with or without a leading `?`).
    pub sas_token: Option<String>,
    /// GCS service account key file contents (JSON).
    pub service_account_json: Option<String>,
    /// OAuth bearer token: GCS (instead of a service account).
    pub bearer_token: Option<String>,
    /// OAuth access token: Box, Dropbox.
    pub access_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hide = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("Credentials")
            .field("access_key_id", &hide(&self.access_key_id))
            .field("secret_access_key", &hide(&self.secret_access_key))
            .field("session_token", &hide(&self.session_token))
            .field("account_key", &hide(&self.account_key))
            .field("sas_token", &hide(&self.sas_token))
            .field("service_account_json", &hide(&self.service_account_json))
            .field("bearer_token", &hide(&self.bearer_token))
            .field("access_token", &hide(&self.access_token))
            .finish()
    }
}

impl Credentials {
    /// Every value present (for redaction of text from elsewhere).
    pub(crate) fn secret_values(&self) -> Vec<&str> {
        [
            &self.access_key_id,
            &self.secret_access_key,
            &self.session_token,
            &self.account_key,
            &self.sas_token,
            &self.service_account_json,
            &self.bearer_token,
            &self.access_token,
        ]
        .into_iter()
        .filter_map(|v| v.as_deref())
        .collect()
    }
}

/// A credential that is present and not blank.
pub(crate) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Target {
    /// Parses `download`, `s3://bucket/prefix`, `az://account/container/prefix`,
    /// `gs://bucket/prefix`, `box://<folder id>`, `dropbox:///path/in/dropbox`
    /// (clear error for anything else). Optional settings follow as a query:
    /// `?region=..&endpoint=..` (S3), `?endpoint=..` (Azure, GCS, Box,
    /// Dropbox), `?upload_endpoint=..` (Box), `?content_endpoint=..`
    /// (Dropbox); [`Target::to_url`] writes the same form.
    pub fn parse(url: &str) -> Result<Target, DestinationError> {
        let url = url.trim();
        let bad = |why: &str| DestinationError::BadTarget(format!("{url:?}: {why}"));
        if url.eq_ignore_ascii_case("download") {
            return Ok(Target::Download);
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad(
                "expected `download` or a URL such as s3://bucket/prefix, az://account/container/prefix, \
                 gs://bucket/prefix, box://<folder id> or dropbox:///path",
            ));
        };
        let (body, query) = match rest.split_once('?') {
            Some((b, q)) => (b, q),
            None => (rest, ""),
        };
        let mut options: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut take = |key: &str| -> Option<String> {
            let at = options.iter().position(|(k, _)| k == key)?;
            Some(options.remove(at).1).filter(|v| !v.is_empty())
        };
        let target = match scheme.to_ascii_lowercase().as_str() {
            "s3" => {
                let (bucket, prefix) = split_first(body);
                check_bucket(bucket).map_err(|w| bad(&w))?;
                Target::S3 {
                    bucket: bucket.to_string(),
                    prefix: clean_prefix(prefix),
                    region: take("region"),
                    endpoint: take("endpoint"),
                }
            }
            "az" | "azure" => {
                let (account, rest) = split_first(body);
                let (container, prefix) = split_first(rest);
                if account.is_empty() || !account.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(bad("expected az://<storage account>/<container>/<prefix>"));
                }
                check_bucket(container).map_err(|w| bad(&w))?;
                Target::Azure {
                    account: account.to_string(),
                    container: container.to_string(),
                    prefix: clean_prefix(prefix),
                    endpoint: take("endpoint"),
                }
            }
            "gs" => {
                let (bucket, prefix) = split_first(body);
                check_bucket(bucket).map_err(|w| bad(&w))?;
                Target::Gcs {
                    bucket: bucket.to_string(),
                    prefix: clean_prefix(prefix),
                    endpoint: take("endpoint"),
                }
            }
            "box" => {
                let folder_id = body.trim_end_matches('/');
                if folder_id.is_empty() || !folder_id.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad(
                        "expected box://<numeric folder id> (0 is the root folder)",
                    ));
                }
                Target::Box {
                    folder_id: folder_id.to_string(),
                    endpoint: take("endpoint"),
                    upload_endpoint: take("upload_endpoint"),
                }
            }
            "dropbox" => {
                let Some(path) = body.strip_prefix('/') else {
                    return Err(bad("expected dropbox:///path/in/dropbox (three slashes)"));
                };
                let path = path.trim_end_matches('/');
                if path.split('/').any(|s| s == "." || s == "..") || path.contains("//") {
                    return Err(bad("the Dropbox path has an empty, `.` or `..` segment"));
                }
                Target::Dropbox {
                    path: if path.is_empty() {
                        String::new()
                    } else {
                        format!("/{path}")
                    },
                    endpoint: take("endpoint"),
                    content_endpoint: take("content_endpoint"),
                }
            }
            other => return Err(bad(&format!("unknown destination kind {other}://"))),
        };
        if let Some((key, _)) = options.first() {
            return Err(bad(&format!("unknown option {key:?}")));
        }
        Ok(target)
    }

    /// The URL form [`Target::parse`] reads, with every setting.
    pub fn to_url(&self) -> String {
        let query = |pairs: &[(&str, &Option<String>)]| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            let mut any = false;
            for (k, v) in pairs {
                if let Some(v) = v {
                    q.append_pair(k, v);
                    any = true;
                }
            }
            if any {
                format!("?{}", q.finish())
            } else {
                String::new()
            }
        };
        let join = |a: &str, b: &str| {
            if b.is_empty() {
                a.to_string()
            } else {
                format!("{a}/{b}")
            }
        };
        match self {
            Target::Download => "download".to_string(),
            Target::S3 {
                bucket,
                prefix,
                region,
                endpoint,
            } => format!(
                "s3://{}{}",
                join(bucket, prefix),
                query(&[("region", region), ("endpoint", endpoint)])
            ),
            Target::Azure {
                account,
                container,
                prefix,
                endpoint,
            } => format!(
                "az://{account}/{}{}",
                join(container, prefix),
                query(&[("endpoint", endpoint)])
            ),
            Target::Gcs {
                bucket,
                prefix,
                endpoint,
            } => format!(
                "gs://{}{}",
                join(bucket, prefix),
                query(&[("endpoint", endpoint)])
            ),
            Target::Box {
                folder_id,
                endpoint,
                upload_endpoint,
            } => format!(
                "box://{folder_id}{}",
                query(&[("endpoint", endpoint), ("upload_endpoint", upload_endpoint)])
            ),
            Target::Dropbox {
                path,
                endpoint,
                content_endpoint,
            } => format!(
                "dropbox://{}{}",
                if path.is_empty() { "/" } else { path },
                query(&[
                    ("endpoint", endpoint),
                    ("content_endpoint", content_endpoint)
                ])
            ),
        }
    }

    /// The target with an endpoint other than the public cloud's (an
    /// S3-compatible store, Azurite, a GCS emulator, a Box or Dropbox API
    /// host) and, for S3, a region, given beside its URL (API fields, CLI
    /// flags). What is given replaces what the URL's query said; an endpoint
    /// for a download or a region for anything but S3 is refused.
    pub fn with_endpoint(
        mut self,
        endpoint: Option<String>,
        region_given: Option<String>,
    ) -> Result<Target, DestinationError> {
        let endpoint = endpoint.filter(|e| !e.trim().is_empty());
        let region_given = region_given.filter(|r| !r.trim().is_empty());
        match &mut self {
            Target::S3 {
                endpoint: e,
                region,
                ..
            } => {
                *e = endpoint.or(e.take());
                *region = region_given.or(region.take());
                return Ok(self);
            }
            Target::Azure { endpoint: e, .. }
            | Target::Gcs { endpoint: e, .. }
            | Target::Box { endpoint: e, .. }
            | Target::Dropbox { endpoint: e, .. } => *e = endpoint.or(e.take()),
            Target::Download if endpoint.is_some() => {
                return Err(DestinationError::BadTarget(
                    "a download link has no endpoint; leave it out".into(),
                ));
            }
            Target::Download => {}
        }
        if region_given.is_some() {
            return Err(DestinationError::BadTarget(
                "only S3 destinations take a region".into(),
            ));
        }
        Ok(self)
    }

    /// What a person reads: "s3://bucket/prefix", "Box folder 123",
    /// "download link". Endpoints are left out (they may carry user info).
    pub fn describe(&self) -> String {
        let join = |scheme: &str, a: &str, b: &str| {
            if b.is_empty() {
                format!("{scheme}://{a}")
            } else {
                format!("{scheme}://{a}/{b}")
            }
        };
        match self {
            Target::Download => "download link".to_string(),
            Target::S3 { bucket, prefix, .. } => join("s3", bucket, prefix),
            Target::Azure {
                account,
                container,
                prefix,
                ..
            } => join("az", &format!("{account}/{container}"), prefix),
            Target::Gcs { bucket, prefix, .. } => join("gs", bucket, prefix),
            Target::Box { folder_id, .. } => format!("Box folder {folder_id}"),
            Target::Dropbox { path, .. } => {
                format!(
                    "Dropbox folder {}",
                    if path.is_empty() { "/" } else { path }
                )
            }
        }
    }

    /// Which credential fields the target needs (for clear errors before a
    /// job starts).
    pub fn check_credentials(&self, c: &Credentials) -> Result<(), DestinationError> {
        let missing = |what: &str| {
            Err(DestinationError::MissingCredentials {
                target: self.describe(),
                what: what.to_string(),
            })
        };
        match self {
            Target::Download => Ok(()),
            Target::S3 { .. } => {
                if given(&c.access_key_id).is_none() || given(&c.secret_access_key).is_none() {
                    missing("an access key id and a secret access key")
                } else {
                    Ok(())
                }
            }
            Target::Azure { .. } => {
                if given(&c.account_key).is_none() && given(&c.sas_token).is_none() {
                    missing("an account key or a SAS token")
                } else {
                    Ok(())
                }
            }
            Target::Gcs { .. } => {
                if given(&c.service_account_json).is_none() && given(&c.bearer_token).is_none() {
                    missing("a service account key (JSON) or an OAuth bearer token")
                } else {
                    Ok(())
                }
            }
            Target::Box { .. } | Target::Dropbox { .. } => {
                if given(&c.access_token).is_none() {
                    missing("an OAuth access token")
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// `first/rest...` → (`first`, `rest...`).
fn split_first(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches('/');
    s.split_once('/').unwrap_or((s, ""))
}

fn clean_prefix(p: &str) -> String {
    p.trim_matches('/').to_string()
}

/// Bucket and container names: lowercase letters, digits, `-`, `.`, `_`.
fn check_bucket(name: &str) -> Result<(), String> {
    if name.len() >= 3
        && name.len() <= 222
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
        })
    {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid bucket/container name (3+ lowercase letters, digits, '-', '.', '_')"
        ))
    }
}
