//! One error type for every destination. Messages name the target as a
//! person reads it ([`crate::Target::describe`]) and never contain a secret:
//! text that comes from a remote service or a client library passes through
//! [`Redactor`] first.

use crate::Credentials;

/// What went wrong while sending an export somewhere.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// The destination URL or description is not one we understand.
    #[error("not a valid export destination: {0}")]
    BadTarget(String),
    /// A credential the target needs was not given.
    #[error("{target} needs {what}")]
    MissingCredentials {
        /// The target, described.
        target: String,
        /// Which credential fields, in words.
        what: String,
    },
    /// The service answered 401/403 (or equivalent): the secrets are wrong,
    /// expired or lack permission.
    #[error("the credentials were refused by {target}: {detail}")]
    CredentialsRefused {
        /// The target, described.
        target: String,
        /// The service's own explanation (secrets removed).
        detail: String,
    },
    /// The bucket, container or folder does not exist.
    #[error("{target} does not exist or is not visible with these credentials: {detail}")]
    NotFound {
        /// The target, described.
        target: String,
        /// The service's own explanation (secrets removed).
        detail: String,
    },
    /// The service refused or failed the request for another reason.
    #[error("{target} failed: {detail}")]
    Remote {
        /// The target, described.
        target: String,
        /// The service's own explanation (secrets removed).
        detail: String,
        /// Whether trying again later may help (throttling, 5xx, network).
        temporary: bool,
    },
    /// A file name that cannot be stored (empty segment, `..`, control
    /// characters).
    #[error("bad export file name {0:?}")]
    BadName(String),
    /// The export is kept for download but no vault account was given.
    #[error("the download link target needs the account's vault, which was not given")]
    NoVault,
    /// The requested file is not among the export's finished files.
    #[error("export {export_id} has no finished file {name:?}")]
    NoSuchFile {
        /// The export.
        export_id: String,
        /// The file asked for.
        name: String,
    },
    /// The vault failed (download target).
    #[error("the vault failed while keeping the export for download: {0}")]
    Vault(#[from] vault::Error),
    /// A local file could not be read (or the temporary copy written).
    #[error("local file {path}: {source}")]
    Io {
        /// Which file.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

impl DestinationError {
    /// Whether trying the same thing again later may succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            DestinationError::Remote { temporary, .. } => *temporary,
            DestinationError::Vault(vault::Error::Store { .. }) => true,
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        DestinationError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Removes every secret of a set of credentials (and signature-like query
/// parameters of URLs) from text that came from elsewhere, so an error
/// message or log line can never carry them.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

/// Query parameters whose values are secrets in SAS and pre-signed URLs.
const SECRET_PARAMS: [&str; 5] = [
    "sig=",
    "X-Amz-Signature=",
    "X-Amz-Security-Token=",
    "X-Goog-Signature=",
    "access_token=",
];

impl Redactor {
    pub(crate) fn new(creds: &Credentials) -> Self {
        let mut secrets: Vec<String> = creds
            .secret_values()
            .into_iter()
            .filter(|s| s.len() >= 4)
            .map(str::to_string)
            .collect();
        // Long ones first, so a secret containing another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub(crate) fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
            let encoded =
                url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
            if encoded != *secret && out.contains(&encoded) {
                out = out.replace(&encoded, "***");
            }
        }
        for param in SECRET_PARAMS {
            out = redact_param(&out, param);
        }
        out
    }
}

/// Replaces the value after every `param` (up to `&`, whitespace, a quote
/// or a closing bracket) with `***`.
fn redact_param(text: &str, param: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(param) {
        let value_start = at + param.len();
        out.push_str(&rest[..value_start]);
        out.push_str("***");
        let tail = &rest[value_start..];
        let end = tail
            .find(|c: char| c == '&' || c == '"' || c == ')' || c == '\'' || c.is_whitespace())
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redactor_removes_secrets_plain_and_url_encoded_and_signatures() {
        let creds = Credentials {
            secret_access_key: Some("s3cr3t/+key".into()),
            access_token: Some("tok-123456".into()),
            ..Default::default()
        };
        let r = Redactor::new(&creds);
        let text =
            "GET https://x/y?sig=abc%2Fdef&sv=1 key s3cr3t/+key enc s3cr3t%2F%2Bkey (tok-123456)";
        let clean = r.clean(text);
        assert!(!clean.contains("s3cr3t"), "{clean}");
        assert!(!clean.contains("tok-123456"), "{clean}");
        assert!(!clean.contains("abc%2Fdef"), "{clean}");
        assert!(clean.contains("sig=***&sv=1"), "{clean}");
    }
}
