//! Who is calling: a session cookie (browser; mutations need the CSRF
//! header) or an `lb_` API token. Sign-in, sign-out, `me`, and API tokens.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use catalog::{
    AccountId, ApiToken, ApiTokenId, NewApiToken, Permission, Role, Secret, Session, User,
};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::AppState;
use crate::dto::{IssuedTokenView, LoginRequest, MeView, NewTokenRequest, SessionView, TokenView};
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "lifeboat_session";
/// Header that must echo the session's CSRF token on mutating requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller proved who it is.
#[derive(Clone, Debug)]
pub enum Actor {
    /// A signed-in user (session cookie).
    User {
        /// The user.
        user: User,
        /// Their session.
        session: Session,
    },
    /// An API token.
    Token(ApiToken),
}

/// The authenticated caller. Every handler that touches account data takes
/// one and scopes every catalog call by `account_id`.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The caller's account: the only one it can see.
    pub account_id: AccountId,
    /// What it may do.
    pub role: Role,
    /// User or token.
    pub actor: Actor,
}

impl Principal {
    /// Refuse (403) unless the caller's role includes `needed`.
    pub fn require(&self, needed: Role) -> ApiResult<()> {
        if self.role.includes(needed) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "the {} role may not do this (needs {needed})",
                self.role
            )))
        }
    }

    /// Refuse (403) unless the caller may do `p`: a user by its custom
    /// permissions or its role, a token by its role.
    pub fn require_permission(&self, p: Permission) -> ApiResult<()> {
        let allowed = match &self.actor {
            Actor::User { user, .. } => user.may(p),
            Actor::Token(_) => self.role.grants(p),
        };
        if allowed {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the {p} permission, which you do not have"
            )))
        }
    }

    /// Refuse viewers: the check of every mutating handler.
    pub fn require_write(&self) -> ApiResult<()> {
        self.require(Role::Operator)
    }

    /// Who started a job, for the jobs page.
    pub fn initiator(&self) -> String {
        match &self.actor {
            Actor::User { user, .. } => user.email.clone(),
            Actor::Token(t) => format!("API token {}", t.name),
        }
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn bearer(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(ApiError::unauthenticated(
            "use Authorization: Bearer lb_... with an API token",
        )),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        // An Authorization header wins and never falls back to the cookie:
        // a bad token is an error, not an anonymous request.
        if let Some(token) = bearer(&parts.headers)? {
            let found = state.catalog.api_token_principal(token).await?;
            let Some(p) = found else {
                return Err(ApiError::unauthenticated(
                    "the API token is unknown or revoked",
                ));
            };
            return Ok(Principal {
                account_id: p.token.account_id,
                role: p.token.role,
                actor: Actor::Token(p.token),
            });
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(cookie) = jar.get(SESSION_COOKIE) else {
            return Err(ApiError::unauthenticated(
                "sign in (POST /api/session) or send an API token",
            ));
        };
        let Some(found) = state.catalog.session_by_token(cookie.value()).await? else {
            return Err(ApiError::unauthenticated(
                "the session has ended; sign in again",
            ));
        };
        if !is_safe(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            let expected = found.session.csrf_token.as_bytes();
            if sent.is_empty() || !bool::from(sent.ct_eq(expected)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "missing or wrong X-CSRF-Token header (use the csrf_token from sign-in)",
                ));
            }
        }
        Ok(Principal {
            account_id: found.user.account_id,
            role: found.user.role,
            actor: Actor::User {
                user: found.user,
                session: found.session,
            },
        })
    }
}

fn session_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.config.secure_cookies)
        .path("/")
        .build()
}

/// Sign in.
#[utoipa::path(post, path = "/api/session", tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; sets the `lifeboat_session` cookie", body = SessionView),
        (status = 401, description = "Wrong email or password", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<(CookieJar, ApiJson<SessionView>)> {
    let user = state
        .catalog
        .authenticate(&req.email, &Secret::new(req.password))
        .await?;
    let issued = state
        .catalog
        .create_session(user.account_id, user.id)
        .await?;
    let account = state.catalog.get_account(user.account_id).await?;
    let jar = jar.add(session_cookie(&state, issued.token.expose().to_string()));
    Ok((
        jar,
        ApiJson(SessionView {
            user: user.into(),
            account: account.into(),
            csrf_token: issued.session.csrf_token,
        }),
    ))
}

/// Sign out (ends the session of the cookie).
#[utoipa::path(delete, path = "/api/session", tag = "session",
    responses(
        (status = 204, description = "Signed out; the cookie is cleared"),
        (status = 400, description = "Called with an API token", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    principal: Principal,
    jar: CookieJar,
) -> ApiResult<(CookieJar, StatusCode)> {
    let Actor::User { session, .. } = &principal.actor else {
        return Err(ApiError::bad_request(
            "an API token has no session; revoke it with DELETE /api/tokens/{id}",
        ));
    };
    state
        .catalog
        .revoke_session(principal.account_id, session.id)
        .await?;
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/").build());
    Ok((jar, StatusCode::NO_CONTENT))
}

/// Who am I.
#[utoipa::path(get, path = "/api/me", tag = "session",
    responses(
        (status = 200, description = "The caller", body = MeView),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn me(State(state): State<AppState>, principal: Principal) -> ApiResult<ApiJson<MeView>> {
    let account = state.catalog.get_account(principal.account_id).await?;
    let (user, token, csrf_token) = match principal.actor {
        Actor::User { user, session } => (Some(user.into()), None, Some(session.csrf_token)),
        Actor::Token(t) => (None, Some(t.into()), None),
    };
    Ok(ApiJson(MeView {
        account: account.into(),
        role: principal.role,
        user,
        token,
        csrf_token,
    }))
}

/// The account's API tokens.
#[utoipa::path(get, path = "/api/tokens", tag = "tokens",
    responses((status = 200, description = "Tokens, oldest first (also revoked ones)", body = [TokenView])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<ApiJson<Vec<TokenView>>> {
    let tokens = state.catalog.list_api_tokens(principal.account_id).await?;
    Ok(ApiJson(tokens.into_iter().map(Into::into).collect()))
}

/// Create an API token (its secret is shown once).
#[utoipa::path(post, path = "/api/tokens", tag = "tokens",
    request_body = NewTokenRequest,
    responses(
        (status = 201, description = "Created", body = IssuedTokenView),
        (status = 403, description = "Role above the caller's, or a viewer", body = ErrorBody),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<NewTokenRequest>,
) -> ApiResult<(StatusCode, ApiJson<IssuedTokenView>)> {
    principal.require_write()?;
    let role = req.role.unwrap_or(principal.role);
    if !principal.role.includes(role) {
        return Err(ApiError::forbidden(format!(
            "a {} cannot create a token with the {role} role",
            principal.role
        )));
    }
    let created_by = match &principal.actor {
        Actor::User { user, .. } => Some(user.id),
        Actor::Token(_) => None,
    };
    let issued = state
        .catalog
        .create_api_token(
            principal.account_id,
            NewApiToken {
                name: req.name,
                role,
                created_by,
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(IssuedTokenView {
            secret: issued.plaintext.expose().to_string(),
            token: issued.token.into(),
        }),
    ))
}

/// Revoke an API token.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "tokens",
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 200, description = "Revoked", body = TokenView),
        (status = 404, description = "No such token in this account", body = ErrorBody),
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<TokenView>> {
    principal.require_write()?;
    let token = state
        .catalog
        .get_api_token(principal.account_id, ApiTokenId(id))
        .await?;
    if !principal.role.includes(token.role) {
        return Err(ApiError::forbidden(format!(
            "a {} cannot revoke a token with the {} role",
            principal.role, token.role
        )));
    }
    let revoked = state
        .catalog
        .revoke_api_token(principal.account_id, ApiTokenId(id))
        .await?;
    Ok(ApiJson(revoked.into()))
}
