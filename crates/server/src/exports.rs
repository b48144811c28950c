//! Exports (SPEC F-E7, F-F2): queue an export of a backup to a download
//! link or the customer's storage, and serve the download link.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use catalog::{JobId, JobKind, JobStatus, Permission};
use chrono::{DateTime, Utc};
use destinations::{Credentials, Target};
use engine::export::{ExportFormat, ExportOptions, PstSplit};
use engine::restore::Selection;
use futures::StreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::dto::JobView;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::recovery::{backup_reader, parse_sub_services};
use crate::tasks::task_entity;

/// The customer's credentials for the destination. Used for the job only:
/// sealed with the installation's key in the job, never returned or logged.
#[derive(Deserialize, ToSchema, Default)]
pub struct CredentialsBody {
    /// S3: access key id.
    pub access_key_id: Option<String>,
    /// S3: secret access key.
    pub secret_access_key: Option<String>,
    /// S3: session token (temporary credentials).
    pub session_token: Option<String>,
    /// Azure: storage account key.
    pub account_key: Option<String>,
    /// Azure: SAS token.
    pub sas_token: Option<String>,
    /// Google Cloud Storage: service account key (JSON text).
    pub service_account_json: Option<String>,
    /// Google Cloud Storage: OAuth bearer token.
    pub bearer_token: Option<String>,
    /// Box, Dropbox: OAuth access token.
    pub access_token: Option<String>,
}

impl From<CredentialsBody> for Credentials {
    fn from(b: CredentialsBody) -> Self {
        Credentials {
            access_key_id: b.access_key_id,
            secret_access_key: b.secret_access_key,
            session_token: b.session_token,
            account_key: b.account_key,
            sas_token: b.sas_token,
            service_account_json: b.service_account_json,
            bearer_token: b.bearer_token,
            access_token: b.access_token,
        }
    }
}

/// An export request (F-E7).
#[derive(Deserialize, ToSchema)]
pub struct ExportBody {
    /// The backup to export; without it `at`; without both the latest.
    pub snapshot_id: Option<String>,
    /// Export the newest backup taken at or before this time (RFC 3339).
    pub at: Option<DateTime<Utc>>,
    /// Sub-services exported whole.
    #[serde(default)]
    pub sub_services: Vec<String>,
    /// Snapshot paths of folders, as browse gives them.
    #[serde(default)]
    pub folders: Vec<String>,
    /// Snapshot paths of single items, as browse and search give them.
    #[serde(default)]
    pub items: Vec<String>,
    /// `pst`, `eml`, `ics`, `vcf` or `zip`.
    pub format: String,
    /// PST: split into parts of `5gb` or `20gb` (default).
    pub pst_split: Option<String>,
    /// Mailbox PST: include Recoverable Items (legal and litigation holds).
    #[serde(default)]
    pub include_legal_holds: bool,
    /// Include items deleted before this backup that earlier backups hold.
    #[serde(default)]
    pub include_deleted: bool,
    /// `download`, `s3://bucket/prefix`, `az://account/container/prefix`,
    /// `gs://bucket/prefix`, `box://<folder id>` or `dropbox:///path`.
    pub destination: String,
    /// S3-compatible, Azure or GCS endpoint other than the public cloud's.
    pub endpoint: Option<String>,
    /// S3: the bucket's region.
    pub region: Option<String>,
    /// What the destination needs to be written.
    #[serde(default)]
    pub credentials: Option<CredentialsBody>,
}

/// Export a backup of an entity: queues an export job.
#[utoipa::path(post, path = "/api/tasks/{id}/entities/{eid}/export", tag = "recovery",
    params(("id" = Uuid, Path, description = "Task id"), ("eid" = Uuid, Path, description = "Entity id")),
    request_body = ExportBody,
    responses(
        (status = 202, description = "The queued export job", body = JobView),
        (status = 400, description = "Bad format, selection, destination or credentials", body = ErrorBody),
        (status = 403, description = "The caller may not export", body = ErrorBody),
        (status = 404, description = "No such task, entity or snapshot in this account", body = ErrorBody),
    ))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, eid)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<ExportBody>,
) -> ApiResult<(StatusCode, ApiJson<JobView>)> {
    principal.require_permission(Permission::Export)?;
    let entity = task_entity(&state, &principal, id, eid).await?;
    let format: ExportFormat = body
        .format
        .parse()
        .map_err(|e: engine::export::UnknownFormat| ApiError::bad_request(e.to_string()))?;
    let pst_split = match body.pst_split.as_deref() {
        None => PstSplit::default(),
        Some(s) => s
            .parse()
            .map_err(|e: engine::export::UnknownSplit| ApiError::bad_request(e.to_string()))?,
    };
    let target = Target::parse(&body.destination)
        .and_then(|t| t.with_endpoint(body.endpoint, body.region))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut options = ExportOptions::new(format);
    options.pst_split = pst_split;
    options.include_legal_holds = body.include_legal_holds;
    options.include_deleted = body.include_deleted;
    options.requested_at = state.clock.now();
    let request = worker::ExportRequest {
        task_id: entity.task_id,
        entity_id: entity.id,
        snapshot_id: body.snapshot_id,
        at: body.at,
        selection: Selection {
            sub_services: parse_sub_services(&body.sub_services)?,
            folders: body.folders,
            items: body.items,
        },
        options,
        target,
        sealed_credentials: None,
    };
    let credentials: Credentials = body.credentials.unwrap_or_default().into();
    let job = worker::enqueue_export(
        &state.catalog,
        principal.account_id,
        &request,
        &credentials,
        Some(principal.initiator()),
    )
    .await
    .map_err(|e| match e {
        worker::WorkerError::Catalog(c) => ApiError::from(c),
        other => ApiError::bad_request(other.to_string()),
    })?;
    Ok((StatusCode::ACCEPTED, ApiJson(job.into())))
}

/// A signed download link's parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// The file's name, as the job's result lists it.
    pub file: String,
    /// When the link stops working (Unix seconds).
    pub expires: i64,
    /// The link's signature.
    pub sig: String,
}

/// Download a file of a finished export (F-E7: a link valid 72 hours). The
/// link is signed for the caller's account: it works only for a signed-in
/// user or token of that account, and only until it expires.
#[utoipa::path(get, path = "/api/exports/{id}/download", tag = "recovery",
    params(("id" = Uuid, Path, description = "Export job id"), DownloadQuery),
    responses(
        (status = 200, description = "The file's bytes", content_type = "application/octet-stream"),
        (status = 403, description = "The link is not valid for this account", body = ErrorBody),
        (status = 404, description = "No such export or file in this account", body = ErrorBody),
        (status = 410, description = "The link has expired", body = ErrorBody),
    ))]
pub async fn download(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<DownloadQuery>,
) -> ApiResult<Response> {
    let account = principal.account_id;
    let job = state.catalog.get_job(account, JobId(id)).await?;
    if job.kind != JobKind::Export || job.status != JobStatus::Succeeded {
        return Err(ApiError::not_found("export"));
    }
    let message = worker::export::download_message(job.id, &q.file, q.expires);
    if !state
        .catalog
        .verify_signature(account, worker::export::DOWNLOAD_PURPOSE, &message, &q.sig)
    {
        return Err(ApiError::forbidden(
            "this download link is not valid for this account",
        ));
    }
    if state.clock.now().timestamp() >= q.expires {
        return Err(ApiError::new(
            StatusCode::GONE,
            "expired",
            "this download link has expired (links work for 72 hours); export again",
        ));
    }
    let rt = backup_reader(&state)?;
    let vault = rt
        .vault_account(account)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let export_id = job.id.to_string();
    let files = destinations::download::list(&vault, &export_id)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let Some(file) = files.into_iter().find(|f| f.name == q.file) else {
        return Err(ApiError::not_found("file"));
    };
    let stream = destinations::download::read(&vault, &export_id, &file.name)
        .map(|r| r.map_err(std::io::Error::other));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII
/// fallback and the exact name.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact: String = url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{exact}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_keeps_ascii_and_encodes_the_rest() {
        assert_eq!(
            content_disposition("Alice 2026.pst"),
            "attachment; filename=\"Alice 2026.pst\"; filename*=UTF-8''Alice%202026.pst"
        );
        let d = content_disposition("Zoë \"x\".zip");
        assert!(d.starts_with("attachment; filename=\"Zo_ _x_.zip\""), "{d}");
        assert!(
            d.ends_with("filename*=UTF-8''Zo%C3%AB%20%22x%22.zip"),
            "{d}"
        );
    }
}
