//! The account's jobs: list, show, cancel.

use axum::extract::State;
use catalog::{JobFilter, JobId, JobStatus, TaskId};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::dto::{JobQuery, JobView};
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::tasks::parse_comma_list;

/// The account's jobs, newest first.
#[utoipa::path(get, path = "/api/jobs", tag = "jobs",
    params(JobQuery),
    responses(
        (status = 200, description = "Jobs, newest first", body = [JobView]),
        (status = 400, description = "Bad filter", body = ErrorBody),
    ))]
pub async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<JobQuery>,
) -> ApiResult<ApiJson<Vec<JobView>>> {
    let filter = JobFilter {
        statuses: parse_comma_list::<JobStatus>("status", query.status.as_deref())?,
        task_id: query.task_id.map(TaskId),
        limit: query.limit,
        offset: query.offset.unwrap_or(0),
        ..JobFilter::default()
    };
    let jobs = state
        .catalog
        .list_jobs(principal.account_id, &filter)
        .await?;
    Ok(ApiJson(jobs.into_iter().map(JobView::from).collect()))
}

/// A job.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job in this account", body = ErrorBody),
    ))]
pub async fn get_job(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<JobView>> {
    let job = state
        .catalog
        .get_job(principal.account_id, JobId(id))
        .await?;
    Ok(ApiJson(job.into()))
}

/// Cancel a job: a pending one at once, a running one at its worker's next
/// heartbeat. A finished job is returned unchanged.
#[utoipa::path(post, path = "/api/jobs/{id}/cancel", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job after the request", body = JobView),
        (status = 404, description = "No such job in this account", body = ErrorBody),
    ))]
pub async fn cancel_job(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<JobView>> {
    principal.require_write()?;
    let job = state
        .catalog
        .request_cancel(principal.account_id, JobId(id))
        .await?;
    Ok(ApiJson(job.into()))
}
