//! Where Graph and the identity platform are, and who we are to them.
//! Production and the simulator differ only in the two base URLs.

use std::fmt;

use url::Url;

use crate::error::GraphError;

/// A secret that never shows in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

pub const MICROSOFT_GRAPH: &str = "https://graph.microsoft.com/v1.0";
pub const MICROSOFT_LOGIN: &str = "https://login.microsoftonline.com";

#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `https://graph.microsoft.com/v1.0` in production.
    pub graph_url: Url,
    /// `https://login.microsoftonline.com` in production.
    pub login_url: Url,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Sent on every request. Microsoft asks ISVs to decorate traffic as
    /// `ISV|Company|App/Version`, which also gets better throttling treatment.
    pub user_agent: String,
    /// Outlook allows 4 concurrent requests per app and mailbox.
    pub mailbox_concurrency: usize,
    /// Outlook allows 10,000 requests per app and mailbox per 10 minutes.
    pub mailbox_requests_per_10_min: usize,
    /// SharePoint and OneDrive resource units per minute, per app and
    /// tenant. Microsoft grants 1,250 up to 1,000 licences, 2,500 up to
    /// 5,000, 3,750 up to 15,000, 5,000 up to 50,000 and 6,250 above.
    pub sharepoint_resource_units_per_min: u32,
    /// Teams: GET channel messages per second, per app and tenant (20).
    pub teams_get_messages_per_sec: u32,
    /// Teams: POST channel messages per second, per app and tenant (50).
    pub teams_post_messages_per_sec: u32,
    /// Teams: other calls per second, per app and tenant (30).
    pub teams_other_per_sec: u32,
    /// Teams: requests per second on one team or channel (4).
    pub teams_per_scope_per_sec: u32,
    /// Requests in flight across the whole tenant.
    pub max_in_flight: usize,
    /// Attempts for transient failures (5xx, dropped connections).
    pub max_attempts: u32,
    /// Longest total wait on throttling for one request before giving up.
    pub max_throttle_wait_secs: u64,
    /// Extra trusted root certificate (PEM), e.g. a simulator's throwaway CA.
    pub extra_root_pem: Option<String>,
}

impl GraphConfig {
    /// Microsoft's production endpoints.
    pub fn microsoft(tenant: &str, client_id: &str, client_secret: Secret) -> Self {
        Self::new(
            MICROSOFT_GRAPH,
            MICROSOFT_LOGIN,
            tenant,
            client_id,
            client_secret,
        )
        .expect("constant URLs are valid")
    }

    pub fn new(
        graph_url: &str,
        login_url: &str,
        tenant: &str,
        client_id: &str,
        client_secret: Secret,
    ) -> Result<Self, GraphError> {
        let parse = |u: &str| {
            Url::parse(u.trim_end_matches('/'))
                .map_err(|e| GraphError::Config(format!("'{u}' is not a URL: {e}")))
        };
        Ok(GraphConfig {
            graph_url: parse(graph_url)?,
            login_url: parse(login_url)?,
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            client_secret,
            user_agent: format!("ISV|Lifeboat|Lifeboat/{}", env!("CARGO_PKG_VERSION")),
            mailbox_concurrency: 4,
            mailbox_requests_per_10_min: 10_000,
            sharepoint_resource_units_per_min: 1_250,
            teams_get_messages_per_sec: 20,
            teams_post_messages_per_sec: 50,
            teams_other_per_sec: 30,
            teams_per_scope_per_sec: 4,
            max_in_flight: 64,
            max_attempts: 6,
            max_throttle_wait_secs: 1800,
            extra_root_pem: None,
        })
    }

    /// The token endpoint of the tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_url.as_str().trim_end_matches('/'),
            self.tenant
        )
    }

    /// Where a Global Administrator grants admin consent; the identity platform
    /// redirects to `redirect_uri` with `admin_consent=True&tenant=...&state=...`.
    pub fn admin_consent_url(&self, redirect_uri: &str, state: &str) -> String {
        let mut url = self.login_url.clone();
        url.set_path(&format!(
            "/{}/adminconsent",
            if self.tenant.is_empty() {
                "organizations"
            } else {
                &self.tenant
            }
        ));
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id)
            .append_pair("state", state)
            .append_pair("redirect_uri", redirect_uri);
        url.to_string()
    }

    /// An absolute URL for a Graph path (`/users`), or the URL itself when absolute.
    pub fn url_for(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!(
                "{}/{}",
                self.graph_url.as_str().trim_end_matches('/'),
                path_or_url.trim_start_matches('/')
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = GraphConfig::microsoft("t", "c", Secret::new("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn production_urls_and_consent() {
        let c = GraphConfig::microsoft("contoso.onmicrosoft.com", "abc", Secret::new("s"));
        assert_eq!(
            c.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(
            c.url_for("/users"),
            "https://graph.microsoft.com/v1.0/users"
        );
        let consent = c.admin_consent_url("https://app.example/cb", "s1");
        assert!(consent.starts_with(
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/adminconsent?client_id=abc"
        ));
        assert!(consent.contains("redirect_uri=https%3A%2F%2Fapp.example%2Fcb"));
        assert!(c.user_agent.starts_with("ISV|Lifeboat|Lifeboat/"));
    }
}
