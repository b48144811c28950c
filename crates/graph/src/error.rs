//! One error type for everything the Graph client can run into, with what a
//! caller (and ultimately a person) needs: which request, whether retrying
//! can help, and what to do about it.

use thiserror::Error;

/// How an error should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The tenant connection does not work (consent revoked, secret wrong or
    /// expired): every request will fail until an administrator acts.
    Connection,
    /// This request failed for good (not found, bad request, forbidden).
    Permanent,
    /// Retrying later may succeed (the pipeline already retried).
    Transient,
}

#[derive(Debug, Error)]
pub enum GraphError {
    /// Graph answered with an error body.
    #[error("{request}: Graph answered {status} {code}: {message}")]
    Api {
        request: String,
        status: u16,
        code: String,
        message: String,
    },

    /// The identity platform refused to issue a token.
    #[error("sign-in to tenant {tenant} failed: {error} (AADSTS{aadsts}): {description}")]
    Token {
        tenant: String,
        error: String,
        aadsts: u32,
        description: String,
    },

    /// The delta token is no longer valid: the caller must start a full enumeration.
    #[error("{request}: the delta token expired or is invalid ({code}); a full resync is needed")]
    DeltaExpired { request: String, code: String },

    /// The response was not what Graph documents (bad JSON, missing fields).
    #[error("{request}: unexpected response: {detail}")]
    Decode { request: String, detail: String },

    /// The network failed (connection refused, reset, timed out) after retries.
    #[error("{request}: transport error after {attempts} attempts: {detail}")]
    Transport {
        request: String,
        attempts: u32,
        detail: String,
    },

    /// Still throttled after the pipeline's patience ran out.
    #[error("{request}: still throttled after waiting {waited_secs} s")]
    Throttled { request: String, waited_secs: u64 },

    /// A URL or configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl GraphError {
    pub fn class(&self) -> ErrorClass {
        match self {
            GraphError::Token { .. } => ErrorClass::Connection,
            GraphError::Api { status: 401, .. } => ErrorClass::Connection,
            GraphError::Api {
                status: 403, code, ..
            } if code == "Authorization_RequestDenied" => ErrorClass::Connection,
            GraphError::Api { status, .. } if *status == 429 || *status >= 500 => {
                ErrorClass::Transient
            }
            GraphError::Api { .. } | GraphError::Decode { .. } | GraphError::Config(_) => {
                ErrorClass::Permanent
            }
            GraphError::DeltaExpired { .. } => ErrorClass::Permanent,
            GraphError::Transport { .. } | GraphError::Throttled { .. } => ErrorClass::Transient,
        }
    }

    /// Graph's error code, when Graph sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            GraphError::Api { code, .. } | GraphError::DeltaExpired { code, .. } => Some(code),
            GraphError::Token { error, .. } => Some(error),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Api { status, .. } => Some(*status),
            GraphError::DeltaExpired { .. } => Some(410),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// What a person can do about it.
    pub fn guidance(&self) -> &'static str {
        match self {
            GraphError::Token {
                aadsts: 7000215, ..
            } => "The client secret is wrong. Enter the secret's value (not its id) again.",
            GraphError::Token {
                aadsts: 7000222, ..
            } => {
                "The client secret has expired. Create a new secret and re-authorise the connection."
            }
            GraphError::Token { aadsts: 700016, .. } => {
                "The application is not registered in this tenant. Ask a Global Administrator to grant admin consent."
            }
            GraphError::Token { .. } => {
                "The tenant refused to sign the application in. Re-authorise the connection."
            }
            GraphError::Api { status: 403, .. } => {
                "Access was denied. Admin consent may have been revoked: re-authorise the connection."
            }
            GraphError::Api { status: 404, .. } => "The item no longer exists in Microsoft 365.",
            GraphError::DeltaExpired { .. } => {
                "Nothing to do: the next backup enumerates everything and fetches only what changed."
            }
            GraphError::Throttled { .. } | GraphError::Transport { .. } => {
                "Microsoft 365 is busy or unreachable; the next run retries automatically."
            }
            GraphError::Api { .. } | GraphError::Decode { .. } => {
                "Unexpected answer from Microsoft Graph; retrying later may help."
            }
            GraphError::Config(_) => "Check the connection settings.",
        }
    }
}

pub type GraphResult<T> = Result<T, GraphError>;
