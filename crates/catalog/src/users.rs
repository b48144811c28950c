//! Users, sign-in sessions and API tokens (F-A2, F-H2, F-X3).
//!
//! Credentials are never stored: passwords as argon2id PHC strings, session
//! and API tokens as the SHA-256 of 32 random bytes. A session or API token
//! is found by its hash; everything else is scoped by account.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;

use crate::accounts::non_empty;
use crate::crypto::Secret;
use crate::db::to_json;
use crate::db::{Catalog, RowExt, args, micros, q};
use crate::error::{Error, Result};
use crate::types::{AccountId, ApiTokenId, Permission, Role, SessionId, UserId};

/// A session ends after this long without a request.
pub const SESSION_IDLE: chrono::Duration = chrono::Duration::hours(12);
/// A session ends this long after sign-in, however active.
pub const SESSION_MAX: chrono::Duration = chrono::Duration::days(7);
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password accepted (argon2 would take any length; a bound keeps a
/// hostile request from costing much).
const MAX_PASSWORD_LEN: usize = 1024;
/// Prefix that marks a Lifeboat API token.
const API_TOKEN_PREFIX: &str = "lb_";
/// Characters of an API token shown in listings (after `lb_`).
const VISIBLE_PREFIX_LEN: usize = 8;
/// How stale `last_seen_at` may get before a request writes it again (one
/// write per minute per session, not one per request).
const LAST_SEEN_GRANULARITY: chrono::Duration = chrono::Duration::seconds(60);

/// A user of an account (the password hash stays inside the catalog).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Owning account.
    pub account_id: AccountId,
    /// Email as entered (sign-in compares case-insensitively).
    pub email: String,
    /// Name shown in the UI and the audit log.
    pub display_name: String,
    /// What the user may do.
    pub role: Role,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last successful sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
    /// A disabled user cannot sign in and its sessions stop working.
    pub disabled: bool,
    /// A custom user's permissions (F-H2); None means the role's.
    #[serde(default)]
    pub permissions: Option<Vec<Permission>>,
}

impl User {
    /// Whether the user may do `p`: its custom list when it has one, else
    /// its role's defaults.
    pub fn may(&self, p: Permission) -> bool {
        match &self.permissions {
            Some(list) => list.contains(&p),
            None => self.role.grants(p),
        }
    }
}

/// What is needed to create a user.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Email (unique across Lifeboat, case-insensitive).
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Password (at least [`MIN_PASSWORD_LEN`] characters).
    pub password: Secret,
    /// Role.
    pub role: Role,
}

/// A signed-in session (its token is not part of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Id.
    pub id: SessionId,
    /// Account.
    pub account_id: AccountId,
    /// Signed-in user.
    pub user_id: UserId,
    /// Token that mutating browser requests must echo (double submit).
    pub csrf_token: String,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last request (to about a minute).
    pub last_seen_at: DateTime<Utc>,
    /// Absolute end ([`SESSION_MAX`] after sign-in).
    pub expires_at: DateTime<Utc>,
    /// When it was revoked (signed out).
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Whether the session can be used at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && now < self.last_seen_at + SESSION_IDLE
    }
}

/// A new session and its token, which is handed out only here.
#[derive(Debug)]
pub struct IssuedSession {
    /// The session.
    pub session: Session,
    /// The bearer token (goes into the cookie).
    pub token: Secret,
}

/// A live session with its user.
#[derive(Clone, Debug)]
pub struct SessionUser {
    /// The session.
    pub session: Session,
    /// Its user.
    pub user: User,
}

/// An API token (its secret part is not part of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Id.
    pub id: ApiTokenId,
    /// Account.
    pub account_id: AccountId,
    /// Name given at creation.
    pub name: String,
    /// The first characters of the token (`lb_` and a few more), to
    /// recognise it.
    pub prefix: String,
    /// What the token may do.
    pub role: Role,
    /// User who created it.
    pub created_by: Option<UserId>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last used (to about a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What is needed to create an API token.
#[derive(Clone, Debug)]
pub struct NewApiToken {
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Creating user.
    pub created_by: Option<UserId>,
}

/// A new API token with its plaintext, which is handed out only here.
#[derive(Debug)]
pub struct IssuedApiToken {
    /// The token's record.
    pub token: ApiToken,
    /// `lb_...`: the bearer token.
    pub plaintext: Secret,
}

/// Who an API token speaks for.
#[derive(Clone, Debug)]
pub struct ApiTokenPrincipal {
    /// The token.
    pub token: ApiToken,
}

const USER_COLS: &str =
    "id, account_id, email, display_name, role, created_at, last_login_at, disabled, permissions";
const SESSION_COLS: &str =
    "id, account_id, user_id, csrf_token, created_at, last_seen_at, expires_at, revoked_at";
const TOKEN_COLS: &str =
    "id, account_id, name, prefix, role, created_by, created_at, last_used_at, revoked_at";

fn user_from_row(r: &AnyRow) -> Result<User> {
    Ok(User {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        email: r.text("email")?,
        display_name: r.text("display_name")?,
        role: r.parse("role")?,
        created_at: r.time("created_at")?,
        last_login_at: r.opt_time("last_login_at")?,
        disabled: r.bool("disabled")?,
        permissions: r.opt_json("permissions")?,
    })
}

fn session_from_row(r: &AnyRow) -> Result<Session> {
    Ok(Session {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        user_id: r.parse("user_id")?,
        csrf_token: r.text("csrf_token")?,
        created_at: r.time("created_at")?,
        last_seen_at: r.time("last_seen_at")?,
        expires_at: r.time("expires_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

fn token_from_row(r: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        name: r.text("name")?,
        prefix: r.text("prefix")?,
        role: r.parse("role")?,
        created_by: r.opt_parse("created_by")?,
        created_at: r.time("created_at")?,
        last_used_at: r.opt_time("last_used_at")?,
        revoked_at: r.opt_time("revoked_at")?,
    })
}

/// 32 random bytes from the thread's CSPRNG (seeded by the OS), as hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

fn check_email(email: &str) -> Result<String> {
    let e = non_empty("email", email)?;
    let valid = e.len() <= 320
        && !e.chars().any(char::is_whitespace)
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if !valid {
        return Err(Error::InvalidInput(format!(
            "{e:?} is not an email address"
        )));
    }
    Ok(e)
}

fn check_password(pw: &Secret) -> Result<()> {
    let n = pw.expose().chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(Error::InvalidInput(format!(
            "password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if pw.expose().len() > MAX_PASSWORD_LEN {
        return Err(Error::InvalidInput(format!(
            "password must have at most {MAX_PASSWORD_LEN} bytes"
        )));
    }
    Ok(())
}

/// Argon2id with the crate's defaults (the OWASP-recommended parameters).
fn hash_password(pw: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::InvalidInput(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::InvalidInput(format!("password cannot be hashed: {e}")))
}

/// Whether `pw` matches the PHC string `stored` (false for a damaged hash).
fn verify_password(pw: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash no password matches, verified for unknown emails so that they take
/// as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_hex()).unwrap_or_default())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    // Argon2 takes tens of milliseconds of CPU: keep it off the async
    // workers.
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::InvalidInput(format!("password check did not finish: {e}")))
}

impl Catalog {
    /// Create a user in an account. A used email (in any account, compared
    /// case-insensitively) is a conflict.
    pub async fn create_user(&self, account: AccountId, new: NewUser) -> Result<User> {
        let email = check_email(&new.email)?;
        let display_name = non_empty("display name", &new.display_name)?;
        check_password(&new.password)?;
        let pw = new.password.clone();
        let hash = blocking(move || hash_password(pw.expose())).await??;
        let u = User {
            id: UserId::random(),
            account_id: account,
            email,
            display_name,
            role: new.role,
            created_at: self.now(),
            last_login_at: None,
            disabled: false,
            permissions: None,
        };
        q(
            "INSERT INTO users (id, account_id, email, email_key, display_name, password_hash, role, created_at, last_login_at, disabled) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0)",
            args![
                u.id.to_string(),
                account.to_string(),
                u.email.clone(),
                email_key(&u.email),
                u.display_name.clone(),
                hash,
                u.role.as_str(),
                micros(u.created_at)
            ],
        )
        .query()
        .execute(&self.pool)
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict(_) => Error::Conflict(format!("a user with email {:?} exists", u.email)),
            Error::NotFound(_) => Error::NotFound("account"),
            other => other,
        })?;
        Ok(u)
    }

    /// Gives a user a custom permission list (F-H2), or back its role's
    /// defaults with None.
    pub async fn set_user_permissions(
        &self,
        account: AccountId,
        user: UserId,
        permissions: Option<&[Permission]>,
    ) -> Result<User> {
        let stored = permissions.map(|p| to_json(&p)).transpose()?;
        let done = q(
            "UPDATE users SET permissions = $1 WHERE account_id = $2 AND id = $3",
            args![stored, account.to_string(), user.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("user"));
        }
        self.get_user(account, user).await
    }

    /// A user of the account.
    pub async fn get_user(&self, account: AccountId, id: UserId) -> Result<User> {
        let row = q(
            &format!("SELECT {USER_COLS} FROM users WHERE account_id = $1 AND id = $2"),
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("user"))?;
        user_from_row(&row)
    }

    /// The account's users, oldest first.
    pub async fn list_users(&self, account: AccountId) -> Result<Vec<User>> {
        let rows = q(
            &format!("SELECT {USER_COLS} FROM users WHERE account_id = $1 ORDER BY created_at, id"),
            args![account.to_string()],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Disable or re-enable a user. Disabling ends the user's sessions.
    pub async fn set_user_disabled(
        &self,
        account: AccountId,
        id: UserId,
        disabled: bool,
    ) -> Result<User> {
        let done = q(
            "UPDATE users SET disabled = $1 WHERE account_id = $2 AND id = $3",
            args![i64::from(disabled), account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("user"));
        }
        if disabled {
            q(
                "UPDATE sessions SET revoked_at = $1 WHERE account_id = $2 AND user_id = $3 AND revoked_at IS NULL",
                args![micros(self.now()), account.to_string(), id.to_string()],
            )
            .query()
            .execute(&self.pool)
            .await?;
        }
        self.get_user(account, id).await
    }

    /// Check an email and password. Unknown email, wrong password and
    /// disabled user all give [`Error::InvalidCredentials`] after the same
    /// amount of work (an unknown email is checked against a decoy hash).
    /// On success the user's last sign-in time is recorded.
    pub async fn authenticate(&self, email: &str, password: &Secret) -> Result<User> {
        if password.expose().len() > MAX_PASSWORD_LEN {
            return Err(Error::InvalidCredentials);
        }
        let row = q(
            &format!("SELECT {USER_COLS}, password_hash FROM users WHERE email_key = $1"),
            args![email_key(email)],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?;
        let (user, stored) = match &row {
            Some(r) => (Some(user_from_row(r)?), Some(r.text("password_hash")?)),
            None => (None, None),
        };
        let pw = password.clone();
        let matches = blocking(move || match stored {
            Some(hash) => verify_password(pw.expose(), &hash),
            None => {
                // Same work as a real check; the decoy never matches.
                let _ = verify_password(pw.expose(), decoy_hash());
                false
            }
        })
        .await?;
        match user {
            Some(mut u) if matches && !u.disabled => {
                let now = self.now();
                q(
                    "UPDATE users SET last_login_at = $1 WHERE account_id = $2 AND id = $3",
                    args![micros(now), u.account_id.to_string(), u.id.to_string()],
                )
                .query()
                .execute(&self.pool)
                .await?;
                u.last_login_at = Some(now);
                Ok(u)
            }
            _ => Err(Error::InvalidCredentials),
        }
    }

    /// Start a session for a user of the account (after
    /// [`Catalog::authenticate`]). The token is returned only here.
    pub async fn create_session(&self, account: AccountId, user: UserId) -> Result<IssuedSession> {
        let u = self.get_user(account, user).await?;
        if u.disabled {
            return Err(Error::InvalidCredentials);
        }
        let now = self.now();
        let token = random_hex();
        let session = Session {
            id: SessionId::random(),
            account_id: account,
            user_id: user,
            csrf_token: random_hex(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + SESSION_MAX,
            revoked_at: None,
        };
        q(
            "INSERT INTO sessions (id, token_hash, account_id, user_id, csrf_token, created_at, last_seen_at, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, NULL)",
            args![
                session.id.to_string(),
                token_hash(&token),
                account.to_string(),
                user.to_string(),
                session.csrf_token.clone(),
                micros(now),
                micros(session.expires_at)
            ],
        )
        .query()
        .execute(&self.pool)
        .await?;
        Ok(IssuedSession {
            session,
            token: Secret::new(token),
        })
    }

    /// The live session a token belongs to, with its user; `None` for an
    /// unknown, revoked, idle-expired or expired token, or a disabled user.
    /// The token names the account, so this is not scoped by one. Marks the
    /// session as seen.
    pub async fn session_by_token(&self, token: &str) -> Result<Option<SessionUser>> {
        let row = q(
            &format!("SELECT {SESSION_COLS} FROM sessions WHERE token_hash = $1"),
            args![token_hash(token)],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut session = session_from_row(&row)?;
        let now = self.now();
        if !session.is_live(now) {
            return Ok(None);
        }
        let user = match self.get_user(session.account_id, session.user_id).await {
            Ok(u) if !u.disabled => u,
            Ok(_) | Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if now - session.last_seen_at >= LAST_SEEN_GRANULARITY {
            q(
                "UPDATE sessions SET last_seen_at = $1 WHERE id = $2",
                args![micros(now), session.id.to_string()],
            )
            .query()
            .execute(&self.pool)
            .await?;
            session.last_seen_at = now;
        }
        Ok(Some(SessionUser { session, user }))
    }

    /// End a session (sign out). Revoking twice is harmless.
    pub async fn revoke_session(&self, account: AccountId, id: SessionId) -> Result<()> {
        let done = q(
            "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE account_id = $2 AND id = $3",
            args![micros(self.now()), account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("session"));
        }
        Ok(())
    }

    /// Create an API token. Its plaintext (`lb_` + 64 hex digits) is
    /// returned only here; the catalog keeps its hash.
    pub async fn create_api_token(
        &self,
        account: AccountId,
        new: NewApiToken,
    ) -> Result<IssuedApiToken> {
        let name = non_empty("token name", &new.name)?;
        if name.chars().count() > 200 {
            return Err(Error::InvalidInput(
                "token name is longer than 200 characters".into(),
            ));
        }
        let plaintext = format!("{API_TOKEN_PREFIX}{}", random_hex());
        let prefix: String = plaintext
            .chars()
            .take(API_TOKEN_PREFIX.len() + VISIBLE_PREFIX_LEN)
            .collect();
        let token = ApiToken {
            id: ApiTokenId::random(),
            account_id: account,
            name,
            prefix,
            role: new.role,
            created_by: new.created_by,
            created_at: self.now(),
            last_used_at: None,
            revoked_at: None,
        };
        q(
            "INSERT INTO api_tokens (id, account_id, name, prefix, token_hash, role, created_by, created_at, last_used_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)",
            args![
                token.id.to_string(),
                account.to_string(),
                token.name.clone(),
                token.prefix.clone(),
                token_hash(&plaintext),
                token.role.as_str(),
                token.created_by.map(|u| u.to_string()),
                micros(token.created_at)
            ],
        )
        .query()
        .execute(&self.pool)
        .await
        .map_err(|e| match Error::from(e) {
            Error::NotFound(_) => Error::NotFound("account"),
            other => other,
        })?;
        Ok(IssuedApiToken {
            token,
            plaintext: Secret::new(plaintext),
        })
    }

    /// Who a bearer token speaks for; `None` for anything that is not a
    /// live API token. The token names the account, so this is not scoped
    /// by one. Records the use (to about a minute).
    pub async fn api_token_principal(&self, token: &str) -> Result<Option<ApiTokenPrincipal>> {
        if !token.starts_with(API_TOKEN_PREFIX) || token.len() > 128 {
            return Ok(None);
        }
        let row = q(
            &format!(
                "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
            ),
            args![token_hash(token)],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut token = token_from_row(&row)?;
        let now = self.now();
        if token
            .last_used_at
            .is_none_or(|t| now - t >= LAST_SEEN_GRANULARITY)
        {
            q(
                "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2",
                args![micros(now), token.id.to_string()],
            )
            .query()
            .execute(&self.pool)
            .await?;
            token.last_used_at = Some(now);
        }
        Ok(Some(ApiTokenPrincipal { token }))
    }

    /// The account's API tokens (also revoked ones), oldest first.
    pub async fn list_api_tokens(&self, account: AccountId) -> Result<Vec<ApiToken>> {
        let rows = q(
            &format!(
                "SELECT {TOKEN_COLS} FROM api_tokens WHERE account_id = $1 ORDER BY created_at, id"
            ),
            args![account.to_string()],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token_from_row).collect()
    }

    /// An API token of the account.
    pub async fn get_api_token(&self, account: AccountId, id: ApiTokenId) -> Result<ApiToken> {
        let row = q(
            &format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE account_id = $1 AND id = $2"),
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("API token"))?;
        token_from_row(&row)
    }

    /// Revoke an API token: it stops working at once. Revoking twice is
    /// harmless.
    pub async fn revoke_api_token(&self, account: AccountId, id: ApiTokenId) -> Result<ApiToken> {
        let done = q(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE account_id = $2 AND id = $3",
            args![micros(self.now()), account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("API token"));
        }
        self.get_api_token(account, id).await
    }
}
