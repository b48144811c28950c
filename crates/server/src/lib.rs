//! Lifeboat's REST API server (axum).
//!
//! [`router`] builds the API over an [`AppState`] (a catalog, a clock and
//! configuration); [`serve`] runs it on a listener. Every route is described
//! in the OpenAPI document at `GET /api/openapi.json`, generated from the
//! same handler annotations that register the routes, so the document and
//! the router cannot drift apart.
//!
//! Callers authenticate with the `lifeboat_session` cookie from
//! `POST /api/session` (mutating requests must then echo the session's CSRF
//! token in `X-CSRF-Token`) or with `Authorization: Bearer lb_...`. Every
//! handler works inside the caller's account only; another account's ids are
//! answered with 404, exactly like ids that do not exist.

#![warn(missing_docs)]

use std::sync::Arc;

use axum::extract::Extension;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use catalog::{Catalog, Clock, SystemClock};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub mod auth;
pub mod dto;
pub mod error;
pub mod exports;
pub mod jobs;
pub mod recovery;
pub mod rules;
pub mod tasks;

pub use auth::{Actor, CSRF_HEADER, Principal, SESSION_COOKIE};
pub use error::ApiError;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Mark the session cookie `Secure` (true behind HTTPS; false only for
    /// plain-HTTP development and tests).
    pub secure_cookies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            secure_cookies: true,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The catalog.
    pub catalog: Catalog,
    /// Where "now" comes from (the catalog's clock in tests).
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: ServerConfig,
    /// The vault and the rest of the runtime, for reading backups (browse,
    /// preview, search). None on an API server given only a catalog: those
    /// calls then answer 503.
    pub runtime: Option<Arc<worker::Runtime>>,
}

impl AppState {
    /// State on the system clock.
    pub fn new(catalog: Catalog, config: ServerConfig) -> Self {
        Self {
            catalog,
            clock: Arc::new(SystemClock),
            config,
            runtime: None,
        }
    }

    /// State that can also read backups through `runtime`.
    pub fn with_runtime(mut self, runtime: Arc<worker::Runtime>) -> Self {
        self.runtime = Some(runtime);
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("catalog", &self.catalog)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "Session from POST /api/session; mutating requests also need X-CSRF-Token",
            ))),
        );
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lb_...")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lifeboat API",
        description = "Microsoft 365 backup: tasks, protected entities, jobs, runs and snapshots."
    ),
    modifiers(&SecuritySchemes),
    security(("session" = []), ("token" = [])),
    tags(
        (name = "session", description = "Sign-in and the caller"),
        (name = "tokens", description = "API tokens"),
        (name = "tasks", description = "Backup tasks and actions on them"),
        (name = "entities", description = "Protected mailboxes, drives, sites and teams"),
        (name = "jobs", description = "Queued and running work"),
        (name = "recovery", description = "Backup calendar, browsing, search and restore"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, description = "The server answers", body = dto::Health)))]
async fn healthz() -> Json<dto::Health> {
    Json(dto::Health {
        status: "ok".into(),
    })
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
async fn openapi_json(Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>) -> Response {
    Json(doc.as_ref()).into_response()
}

fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(openapi_json))
        .routes(routes!(auth::login, auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::list_tokens, auth::create_token))
        .routes(routes!(auth::revoke_token))
        .routes(routes!(tasks::list_tasks, tasks::create_task))
        .routes(routes!(tasks::get_task, tasks::update_task))
        .routes(routes!(tasks::list_entities))
        .routes(routes!(tasks::activate_entities))
        .routes(routes!(tasks::pause_entities))
        .routes(routes!(tasks::discover))
        .routes(routes!(tasks::backup))
        .routes(routes!(tasks::list_runs))
        .routes(routes!(tasks::list_snapshots))
        .routes(routes!(rules::list_rules, rules::create_rule))
        .routes(routes!(rules::delete_rule))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(recovery::job_items))
        .routes(routes!(recovery::calendar))
        .routes(routes!(recovery::restore))
        .routes(routes!(recovery::browse))
        .routes(routes!(recovery::preview))
        .routes(routes!(recovery::search))
        .routes(routes!(recovery::changes))
        .routes(routes!(exports::export))
        .routes(routes!(exports::download))
}

/// The OpenAPI document of every route [`router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("route")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// The API.
pub fn router(state: AppState) -> Router {
    let (router, doc) = api_router().split_for_parts();
    router
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(Extension(Arc::new(doc)))
        .with_state(state)
}

/// Serve the API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    axum::serve(listener, router(state)).await
}
