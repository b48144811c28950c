//! The HTTP side of Box and Dropbox: one client with the bearer token,
//! bounded retries on 429/5xx and network errors that honour
//! `Retry-After`, and error answers turned into [`DestinationError`]s
//! without secrets.

use crate::DestinationError;
use crate::error::Redactor;
use std::time::Duration;

/// Longest wait we accept from a `Retry-After` header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub(crate) struct Http {
    client: reqwest::Client,
    token: String,
    max_retries: u32,
    pub(crate) target: String,
    pub(crate) redactor: Redactor,
}

impl Http {
    pub(crate) fn new(
        token: &str,
        max_retries: u32,
        target: String,
        redactor: Redactor,
    ) -> Result<Self, DestinationError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // GCS answers 308 to a resumable chunk: not a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DestinationError::BadTarget(format!("{target}: HTTP client: {e}")))?;
        Ok(Http {
            client,
            token: token.to_string(),
            max_retries,
            target,
            redactor,
        })
    }

    /// Sends the request `build` makes (called again for every attempt, so
    /// bodies are rebuilt), with the bearer token. Retries 429, 5xx and
    /// network errors up to `max_retries` times; any other answer is
    /// returned as is. `what` names the operation in errors.
    pub(crate) async fn send<F>(
        &self,
        what: &str,
        build: F,
    ) -> Result<reqwest::Response, DestinationError>
    where
        F: Fn(&reqwest::Client) -> Result<reqwest::RequestBuilder, DestinationError>,
    {
        self.send_as(what, &self.token, build).await
    }

    /// [`Http::send`] with another bearer token (one that is refreshed,
    /// like a GCS service account's).
    pub(crate) async fn send_as<F>(
        &self,
        what: &str,
        token: &str,
        build: F,
    ) -> Result<reqwest::Response, DestinationError>
    where
        F: Fn(&reqwest::Client) -> Result<reqwest::RequestBuilder, DestinationError>,
    {
        let mut attempt = 0u32;
        loop {
            let request = build(&self.client)?.bearer_auth(token);
            let wait = match request.send().await {
                Err(e) if e.is_builder() || attempt >= self.max_retries => {
                    return Err(self.network(what, e));
                }
                Err(_) => backoff(attempt),
                Ok(resp) => {
                    let status = resp.status();
                    if !retryable(status) {
                        return Ok(resp);
                    }
                    if attempt >= self.max_retries {
                        return Err(self.error(what, resp).await);
                    }
                    retry_after(&resp).unwrap_or_else(|| backoff(attempt))
                }
            };
            attempt += 1;
            tracing::debug!(target_name = %self.target, what, attempt, wait_ms = wait.as_millis() as u64, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn network(&self, what: &str, e: reqwest::Error) -> DestinationError {
        let temporary = !e.is_builder();
        DestinationError::Remote {
            target: self.target.clone(),
            detail: format!(
                "{what}: {}",
                self.redactor.clean(&e.without_url().to_string())
            ),
            temporary,
        }
    }

    /// Turns an unsuccessful answer into an error: 401/403 refuse the
    /// credentials, 404 is not found, 429/5xx are temporary.
    pub(crate) async fn error(&self, what: &str, resp: reqwest::Response) -> DestinationError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let detail = format!(
            "{what}: HTTP {status}: {}",
            self.redactor.clean(&summary(&body))
        );
        let target = self.target.clone();
        match status.as_u16() {
            401 | 403 => DestinationError::CredentialsRefused { target, detail },
            404 => DestinationError::NotFound { target, detail },
            s => DestinationError::Remote {
                target,
                detail,
                temporary: s == 429 || (s >= 500 && s != 501 && s != 505),
            },
        }
    }

    /// The JSON body of a successful answer, or the error it is.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        resp: reqwest::Response,
    ) -> Result<T, DestinationError> {
        if !resp.status().is_success() {
            return Err(self.error(what, resp).await);
        }
        let bytes = resp.bytes().await.map_err(|e| self.network(what, e))?;
        serde_json::from_slice(&bytes).map_err(|e| DestinationError::Remote {
            target: self.target.clone(),
            detail: format!("{what}: unexpected answer: {e}"),
            temporary: false,
        })
    }
}

/// Throttling and server errors, except those that say the request can
/// never work (501 Not Implemented, 505 HTTP Version Not Supported).
fn retryable(status: reqwest::StatusCode) -> bool {
    status.as_u16() == 429 || (status.is_server_error() && !matches!(status.as_u16(), 501 | 505))
}

/// `Retry-After` in seconds (HTTP dates are not used by Box or Dropbox).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let secs: f64 = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs).min(MAX_RETRY_AFTER))
}

/// 0.5 s, 1 s, 2 s, ... up to 30 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(30))
}

/// What a service said, briefly: Dropbox's `error_summary`, Box's `code`
/// and `message`, else the start of the body.
fn summary(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(s) = v.get("error_summary").and_then(|s| s.as_str()) {
            return s.to_string();
        }
        // GCS (JSON API): {"error": {"code": 401, "message": "..."}}
        if let Some(m) = v.pointer("/error/message").and_then(|s| s.as_str()) {
            return m.to_string();
        }
        let code = v.get("code").and_then(|s| s.as_str());
        let message = v.get("message").and_then(|s| s.as_str());
        match (code, message) {
            (Some(c), Some(m)) => return format!("{c}: {m}"),
            (Some(c), None) => return c.to_string(),
            (None, Some(m)) => return m.to_string(),
            _ => {}
        }
    }
    body.chars().take(300).collect()
}
