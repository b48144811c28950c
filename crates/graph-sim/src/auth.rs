//! Identity: the Microsoft identity platform endpoints a daemon app uses
//! (OpenID configuration, client-credentials tokens, admin consent) and the
//! bearer-token check in front of every Graph call.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::error::GraphError;
use crate::{Sim, SimConfig};

/// Application permissions a backup app is granted by admin consent.
pub const APP_ROLES: &[&str] = &[
    "User.Read.All",
    "Group.Read.All",
    "Mail.ReadWrite",
    "Contacts.ReadWrite",
    "Calendars.ReadWrite",
    "Tasks.ReadWrite.All",
    "Files.ReadWrite.All",
    "Sites.FullControl.All",
    "ChannelMessage.Read.All",
    "Teamwork.Migrate.All",
    "TeamSettings.ReadWrite.All",
    "Group.ReadWrite.All",
    "MailboxSettings.Read",
];

/// The identity platform's view of our one app registration.
pub struct AuthState {
    key: [u8; 32],
    consent_granted: AtomicBool,
    secret_expired: AtomicBool,
}

/// What a validated token says about its caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub app_id: String,
}

impl AuthState {
    pub fn new(cfg: &SimConfig) -> Self {
        let key = *blake3::hash(format!("{}:{}:token-key", cfg.seed, cfg.client_secret).as_bytes())
            .as_bytes();
        AuthState {
            key,
            consent_granted: AtomicBool::new(true),
            secret_expired: AtomicBool::new(false),
        }
    }

    pub fn sign(&self, data: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(data.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn set_consent(&self, granted: bool) {
        self.consent_granted.store(granted, Ordering::SeqCst);
    }

    pub fn consent_granted(&self) -> bool {
        self.consent_granted.load(Ordering::SeqCst)
    }

    pub fn set_secret_expired(&self, expired: bool) {
        self.secret_expired.store(expired, Ordering::SeqCst);
    }

    /// A signed JWT in the shape of an Entra ID app-only access token.
    pub fn issue(&self, sim: &Sim) -> (String, u64) {
        let now = chrono::Utc::now().timestamp();
        let lifetime = sim.cfg.token_lifetime_secs;
        let tid = &sim.cfg.tenant_id;
        let header = json!({"typ": "JWT", "alg": "HS256", "kid": "graph-sim"});
        let claims = json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{tid}/"),
            "iat": now, "nbf": now, "exp": now + lifetime as i64,
            "app_displayname": "Lifeboat",
            "appid": sim.cfg.client_id,
            "appidacr": "1",
            "idp": format!("https://sts.windows.net/{tid}/"),
            "idtyp": "app",
            "oid": crate::rng::stable_guid(sim.cfg.seed, &["service-principal"]).to_string(),
            "roles": APP_ROLES,
            "sub": crate::rng::stable_guid(sim.cfg.seed, &["service-principal"]).to_string(),
            "tid": tid,
            "ver": "1.0",
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.sign(&signing_input);
        (
            format!(
                "{signing_input}.{}",
                URL_SAFE_NO_PAD.encode(hex::decode(sig).unwrap_or_default())
            ),
            lifetime,
        )
    }

    /// Checks a bearer token as Graph would.
    pub fn validate(&self, sim: &Sim, token: &str) -> Result<Caller, GraphError> {
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(GraphError::unauthorized(
                "IDX14100: JWT is not well formed, there are no dots (.). The token needs to be in JWS or JWE Compact Serialization Format.",
            ));
        }
        let signing_input = format!("{}.{}", parts[0], parts[1]);
        let expected =
            URL_SAFE_NO_PAD.encode(hex::decode(self.sign(&signing_input)).unwrap_or_default());
        if expected != parts[2] {
            return Err(GraphError::unauthorized(
                "Access token validation failure. Invalid signature.",
            ));
        }
        let claims: Value = URL_SAFE_NO_PAD
            .decode(parts[1])
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| GraphError::unauthorized("Access token validation failure."))?;
        if claims["tid"].as_str() != Some(sim.cfg.tenant_id.as_str()) {
            return Err(GraphError::unauthorized(
                "Access token validation failure. Invalid audience.",
            ));
        }
        let exp = claims["exp"].as_i64().unwrap_or(0);
        if exp <= chrono::Utc::now().timestamp() {
            return Err(GraphError::unauthorized(
                "Lifetime validation failed, the token is expired.",
            ));
        }
        Ok(Caller {
            app_id: claims["appid"].as_str().unwrap_or_default().to_string(),
        })
    }
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/{tenant}/adminconsent", get(admin_consent))
        .route("/{tenant}/v2.0/adminconsent", get(admin_consent))
}

fn tenant_matches(sim: &Sim, tenant: &str) -> bool {
    tenant.eq_ignore_ascii_case(&sim.cfg.tenant_id) || tenant.eq_ignore_ascii_case(&sim.cfg.domain)
}

/// An identity-platform error body (AADSTS code and all).
fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace = uuid::Uuid::new_v4();
    let corr = uuid::Uuid::new_v4();
    let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ");
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"),
        "error_codes": [code],
        "timestamp": ts.to_string(),
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, Json(body)).into_response()
}

async fn openid_configuration(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    if !tenant_matches(&sim, &tenant) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| sim.listen_host());
    let origin = format!("{}://{}", sim.scheme(), host);
    let tid = &sim.cfg.tenant_id;
    Json(json!({
        "token_endpoint": format!("{origin}/{tid}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{origin}/{tid}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{origin}/{tid}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{origin}/{tid}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{origin}/{tid}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{origin}/{tid}/oauth2/v2.0/logout"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    }))
    .into_response()
}

async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !tenant_matches(&sim, &tenant) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
        );
    }
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if grant != "client_credentials" {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    let client_id = form.get("client_id").map(String::as_str).unwrap_or("");
    if client_id != sim.cfg.client_id {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{}'.",
                sim.cfg.tenant_id
            ),
        );
    }
    if form.get("client_secret").map(String::as_str) != Some(sim.cfg.client_secret.as_str()) {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    if sim.auth.secret_expired.load(Ordering::SeqCst) {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
            &format!("The provided client secret keys for app '{client_id}' are expired."),
        );
    }
    let scope = form.get("scope").map(String::as_str).unwrap_or("");
    if !scope.split_whitespace().any(|s| s.ends_with("/.default")) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let (access_token, lifetime) = sim.auth.issue(&sim);
    Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access_token,
    }))
    .into_response()
}

async fn admin_consent(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(redirect) = q.get("redirect_uri") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'redirect_uri'.",
        );
    };
    let Ok(mut url) = url::Url::parse(redirect) else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50011,
            "The redirect URI specified in the request is not valid.",
        );
    };
    let state = q.get("state").cloned().unwrap_or_default();
    {
        let mut pairs = url.query_pairs_mut();
        if !tenant_matches(&sim, &tenant) && !matches!(tenant.as_str(), "common" | "organizations")
        {
            pairs.append_pair("error", "invalid_request");
            pairs.append_pair(
                "error_description",
                &format!("AADSTS90002: Tenant '{tenant}' not found."),
            );
        } else if q.get("client_id").map(String::as_str) != Some(sim.cfg.client_id.as_str()) {
            pairs.append_pair("error", "unauthorized_client");
            pairs.append_pair(
                "error_description",
                "AADSTS700016: Application was not found in the directory.",
            );
        } else {
            sim.auth.set_consent(true);
            pairs.append_pair("admin_consent", "True");
            pairs.append_pair("tenant", &sim.cfg.tenant_id);
            if q.contains_key("scope") {
                pairs.append_pair("scope", "https://graph.microsoft.com/.default");
            }
        }
        pairs.append_pair("state", &state);
    }
    Redirect::to(url.as_str()).into_response()
}

/// Rejects Graph calls without a valid token, as Graph does (401 with
/// `WWW-Authenticate`), and calls from an app whose consent was revoked (403).
pub async fn require_token(State(sim): State<Arc<Sim>>, mut req: Request, next: Next) -> Response {
    let header_value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = header_value
        .strip_prefix("Bearer ")
        .or_else(|| header_value.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    let result = if token.is_empty() {
        Err(GraphError::unauthorized("Access token is empty."))
    } else {
        sim.auth.validate(&sim, token)
    };
    match result {
        Ok(caller) => {
            if !sim.auth.consent_granted() {
                return GraphError::new(
                    StatusCode::FORBIDDEN,
                    "Authorization_RequestDenied",
                    "Insufficient privileges to complete the operation.",
                )
                .into_response();
            }
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            let mut r = e.into_response();
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                ),
            );
            r
        }
    }
}
