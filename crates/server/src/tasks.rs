//! Backup tasks, their entities, discovery and backup requests, runs and
//! snapshots.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use catalog::{
    Entity, EntityFilter, EntityId, EntityStatus, JobKind, NewConnection, NewJob, NewTask, Secret,
    Task, TaskId,
};
use chrono::DateTime;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::dto::{
    BackupRequest, ChangedView, CountsView, CreateTaskRequest, EnqueuedJobs, EnqueuedView,
    EntityPage, EntityQuery, EntitySelection, EntityView, RunQuery, RunView, SnapshotPart,
    SnapshotView, TaskView, UpdateTaskRequest, outcome_severity,
};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};

/// Largest selection one request may name.
const MAX_SELECTION: usize = 1000;

/// Parse a comma-separated filter (`scheduled,failed`); an unknown value
/// is a 400.
pub(crate) fn parse_comma_list<T>(what: &str, s: Option<&str>) -> ApiResult<Vec<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    s.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ApiError::bad_request(format!("{what}: {e}")))
            })
            .collect()
    })
    .unwrap_or_else(|| Ok(Vec::new()))
}

async fn task_view(state: &AppState, task: Task) -> ApiResult<TaskView> {
    let conn = state
        .catalog
        .get_connection(task.account_id, task.connection_id)
        .await?;
    Ok(TaskView::new(task, conn))
}

/// The account's tasks.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks",
    responses((status = 200, description = "Tasks, oldest first", body = [TaskView])))]
pub async fn list_tasks(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<ApiJson<Vec<TaskView>>> {
    let tasks = state.catalog.list_tasks(principal.account_id, None).await?;
    let conns = state.catalog.list_connections(principal.account_id).await?;
    let mut views = Vec::with_capacity(tasks.len());
    for t in tasks {
        let Some(c) = conns.iter().find(|c| c.id == t.connection_id) else {
            return Err(ApiError::internal(&format!(
                "task {} has no connection {}",
                t.id, t.connection_id
            )));
        };
        views.push(TaskView::new(t, c.clone()));
    }
    Ok(ApiJson(views))
}

/// Create a task with its tenant connection. A tenant already connected in
/// this account with the same URLs is reused and re-authorised with the
/// given credentials.
#[utoipa::path(post, path = "/api/tasks", tag = "tasks",
    request_body = CreateTaskRequest,
    responses(
        (status = 201, description = "Created", body = TaskView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "The tenant is connected with other URLs", body = ErrorBody),
    ))]
pub async fn create_task(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(req): ApiJson<CreateTaskRequest>,
) -> ApiResult<(StatusCode, ApiJson<TaskView>)> {
    principal.require_write()?;
    let account = principal.account_id;
    let c = &state.catalog;
    if req.client_secret.trim().is_empty() {
        return Err(ApiError::bad_request("client secret must not be empty"));
    }
    let secret = Secret::new(req.client_secret);
    let existing = c
        .list_connections(account)
        .await?
        .into_iter()
        .find(|conn| conn.tenant_id == req.tenant.trim());
    let conn = match existing {
        Some(conn) if conn.graph_url == req.graph_url && conn.login_url == req.login_url => {
            c.reauthorize_connection(account, conn.id, &req.client_id, &secret)
                .await?
        }
        Some(_) => {
            return Err(ApiError::conflict(
                "this tenant is already connected with other Graph or login URLs",
            ));
        }
        None => {
            c.create_connection(
                account,
                NewConnection {
                    tenant_id: req.tenant,
                    client_id: req.client_id,
                    client_secret: secret,
                    graph_url: req.graph_url,
                    login_url: req.login_url,
                },
            )
            .await?
        }
    };
    let task = c
        .create_task(
            account,
            NewTask {
                connection_id: conn.id,
                service: req.service,
                name: req.name,
                settings: req.settings.unwrap_or_default(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, ApiJson(TaskView::new(task, conn))))
}

/// A task.
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 404, description = "No such task in this account", body = ErrorBody),
    ))]
pub async fn get_task(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<TaskView>> {
    let task = state
        .catalog
        .get_task(principal.account_id, TaskId(id))
        .await?;
    Ok(ApiJson(task_view(&state, task).await?))
}

/// Rename a task, replace its settings, pause or resume it.
#[utoipa::path(patch, path = "/api/tasks/{id}", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    request_body = UpdateTaskRequest,
    responses(
        (status = 200, description = "The changed task", body = TaskView),
        (status = 404, description = "No such task in this account", body = ErrorBody),
    ))]
pub async fn update_task(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<UpdateTaskRequest>,
) -> ApiResult<ApiJson<TaskView>> {
    principal.require_write()?;
    let account = principal.account_id;
    let id = TaskId(id);
    let c = &state.catalog;
    let mut task = c.get_task(account, id).await?;
    if let Some(name) = &req.name {
        task = c.rename_task(account, id, name).await?;
    }
    if let Some(settings) = &req.settings {
        task = c.update_task_settings(account, id, settings).await?;
    }
    if let Some(status) = req.status {
        task = c.set_task_status(account, id, status).await?;
    }
    Ok(ApiJson(task_view(&state, task).await?))
}

/// The task's entities.
#[utoipa::path(get, path = "/api/tasks/{id}/entities", tag = "entities",
    params(("id" = Uuid, Path, description = "Task id"), EntityQuery),
    responses(
        (status = 200, description = "A page of entities, by name", body = EntityPage),
        (status = 404, description = "No such task in this account", body = ErrorBody),
    ))]
pub async fn list_entities(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<EntityQuery>,
) -> ApiResult<ApiJson<EntityPage>> {
    let task = state
        .catalog
        .get_task(principal.account_id, TaskId(id))
        .await?;
    let filter = EntityFilter {
        task_id: Some(task.id),
        statuses: parse_comma_list::<EntityStatus>("status", query.status.as_deref())?,
        search: query.search.filter(|s| !s.trim().is_empty()),
        tag_id: None,
        active: query.active,
        limit: query.limit,
        offset: query.offset.unwrap_or(0),
    };
    let items = state
        .catalog
        .list_entities(principal.account_id, &filter)
        .await?;
    let total = state
        .catalog
        .count_entities(principal.account_id, &filter)
        .await?;
    Ok(ApiJson(EntityPage {
        items: items.into_iter().map(EntityView::from).collect(),
        total,
    }))
}

/// Every entity of a task matching `filter` (all pages).
async fn all_entities(
    state: &AppState,
    principal: &Principal,
    mut filter: EntityFilter,
) -> ApiResult<Vec<Entity>> {
    let mut out = Vec::new();
    filter.offset = 0;
    filter.limit = Some(catalog::MAX_PAGE);
    loop {
        let page = state
            .catalog
            .list_entities(principal.account_id, &filter)
            .await?;
        let n = page.len();
        out.extend(page);
        if n < catalog::MAX_PAGE as usize {
            return Ok(out);
        }
        filter.offset += catalog::MAX_PAGE;
    }
}

/// The named entities, each of which must belong to the task (else 404).
async fn selected_entities(
    state: &AppState,
    principal: &Principal,
    task: TaskId,
    ids: &[Uuid],
) -> ApiResult<Vec<Entity>> {
    if ids.len() > MAX_SELECTION {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_SELECTION} entities per request"
        )));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let e = match state
            .catalog
            .get_entity(principal.account_id, EntityId(*id))
            .await
        {
            Ok(e) if e.task_id == task => e,
            Ok(_) | Err(catalog::Error::NotFound(_)) => {
                return Err(ApiError::not_found(&format!("entity {id}")));
            }
            Err(e) => return Err(e.into()),
        };
        out.push(e);
    }
    Ok(out)
}

async fn selection_ids(
    state: &AppState,
    principal: &Principal,
    task: TaskId,
    sel: &EntitySelection,
) -> ApiResult<Vec<EntityId>> {
    match (&sel.entity_ids, sel.all.unwrap_or(false)) {
        (Some(_), true) => Err(ApiError::bad_request(
            "give either entity_ids or all: true, not both",
        )),
        (Some(ids), false) => Ok(selected_entities(state, principal, task, ids)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect()),
        (None, true) => Ok(all_entities(
            state,
            principal,
            EntityFilter {
                task_id: Some(task),
                ..EntityFilter::default()
            },
        )
        .await?
        .into_iter()
        .map(|e| e.id)
        .collect()),
        (None, false) => Err(ApiError::bad_request("give entity_ids: [...] or all: true")),
    }
}

/// Activate entities: they become protected.
#[utoipa::path(post, path = "/api/tasks/{id}/entities/activate", tag = "entities",
    params(("id" = Uuid, Path, description = "Task id")),
    request_body = EntitySelection,
    responses(
        (status = 200, description = "How many changed", body = ChangedView),
        (status = 404, description = "No such task or entity in this account", body = ErrorBody),
    ))]
pub async fn activate_entities(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(sel): ApiJson<EntitySelection>,
) -> ApiResult<ApiJson<ChangedView>> {
    set_protection(&state, &principal, id, &sel, true).await
}

/// Pause entities: no backups until activated again.
#[utoipa::path(post, path = "/api/tasks/{id}/entities/pause", tag = "entities",
    params(("id" = Uuid, Path, description = "Task id")),
    request_body = EntitySelection,
    responses(
        (status = 200, description = "How many changed", body = ChangedView),
        (status = 404, description = "No such task or entity in this account", body = ErrorBody),
    ))]
pub async fn pause_entities(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(sel): ApiJson<EntitySelection>,
) -> ApiResult<ApiJson<ChangedView>> {
    set_protection(&state, &principal, id, &sel, false).await
}

/// Activates (or pauses) the selected entities of a task of the caller's account.
async fn set_protection(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
    sel: &EntitySelection,
    activate: bool,
) -> ApiResult<ApiJson<ChangedView>> {
    principal.require_write()?;
    let task = state
        .catalog
        .get_task(principal.account_id, TaskId(id))
        .await?;
    let ids = selection_ids(state, principal, task.id, sel).await?;
    let mut changed = 0;
    for chunk in ids.chunks(MAX_SELECTION) {
        changed += if activate {
            state
                .catalog
                .activate_entities(principal.account_id, chunk)
                .await?
        } else {
            state
                .catalog
                .pause_entities(principal.account_id, chunk)
                .await?
        };
    }
    // An entity another task of the tenant already protects shows "Backed
    // up in another task"; pausing one releases its twin.
    state
        .catalog
        .refresh_tenant_coverage(principal.account_id, task.id)
        .await?;
    Ok(ApiJson(ChangedView { changed }))
}

/// Queue discovery of the task's entities.
#[utoipa::path(post, path = "/api/tasks/{id}/discover", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 202, description = "Queued (or already queued)", body = EnqueuedJobs),
        (status = 404, description = "No such task in this account", body = ErrorBody),
    ))]
pub async fn discover(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, ApiJson<EnqueuedJobs>)> {
    principal.require_write()?;
    let task = state
        .catalog
        .get_task(principal.account_id, TaskId(id))
        .await?;
    let job = NewJob {
        dedupe_key: Some(format!("discovery:{}", task.id)),
        service: Some(task.service),
        task_id: Some(task.id),
        initiator: Some(principal.initiator()),
        title: Some(format!("Discovery: {}", task.name)),
        ..NewJob::new(JobKind::Discovery, serde_json::json!({}))
    };
    let done = state.catalog.enqueue_job(principal.account_id, job).await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(EnqueuedJobs {
            jobs: vec![EnqueuedView {
                job_id: done.job().id.0,
                entity_id: None,
                new: matches!(done, catalog::Enqueued::Created(_)),
            }],
        }),
    ))
}

fn backs_up(e: &Entity) -> bool {
    e.active && !matches!(e.status, EntityStatus::Paused | EntityStatus::Archived)
}

/// Back up now: one job per active entity of the task (or of the named
/// ones). An entity already queued or running is not queued twice.
#[utoipa::path(post, path = "/api/tasks/{id}/backup", tag = "tasks",
    params(("id" = Uuid, Path, description = "Task id")),
    request_body(content = BackupRequest, description = "Optional: only these entities"),
    responses(
        (status = 202, description = "Queued jobs", body = EnqueuedJobs),
        (status = 404, description = "No such task or entity in this account", body = ErrorBody),
        (status = 409, description = "A named entity is not active", body = ErrorBody),
    ))]
pub async fn backup(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    body: Bytes,
) -> ApiResult<(StatusCode, ApiJson<EnqueuedJobs>)> {
    principal.require_write()?;
    // The body is optional, so it is parsed here rather than by an
    // extractor that would insist on one.
    let req: BackupRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BackupRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))?
    };
    let task = state
        .catalog
        .get_task(principal.account_id, TaskId(id))
        .await?;
    let entities = match &req.entity_ids {
        Some(ids) => {
            let es = selected_entities(&state, &principal, task.id, ids).await?;
            if let Some(e) = es.iter().find(|e| !backs_up(e)) {
                return Err(ApiError::conflict(format!(
                    "entity {} ({}) is {}; activate it first",
                    e.id, e.name, e.status
                )));
            }
            es
        }
        None => all_entities(
            &state,
            &principal,
            EntityFilter {
                task_id: Some(task.id),
                active: Some(true),
                ..EntityFilter::default()
            },
        )
        .await?
        .into_iter()
        .filter(backs_up)
        .collect(),
    };
    let mut jobs = Vec::with_capacity(entities.len());
    for e in entities {
        let job = NewJob {
            initiator: Some(principal.initiator()),
            title: Some(format!("Backup: {}", e.name)),
            ..NewJob::backup(task.id, e.id, task.service, serde_json::json!({}))
        };
        let done = state.catalog.enqueue_job(principal.account_id, job).await?;
        jobs.push(EnqueuedView {
            job_id: done.job().id.0,
            entity_id: Some(e.id.0),
            new: matches!(done, catalog::Enqueued::Created(_)),
        });
    }
    Ok((StatusCode::ACCEPTED, ApiJson(EnqueuedJobs { jobs })))
}

/// The entity, which must belong to the task (else 404).
pub(crate) async fn task_entity(
    state: &AppState,
    principal: &Principal,
    task: Uuid,
    entity: Uuid,
) -> ApiResult<Entity> {
    let task = state
        .catalog
        .get_task(principal.account_id, TaskId(task))
        .await?;
    Ok(selected_entities(state, principal, task.id, &[entity])
        .await?
        .remove(0))
}

async fn entity_runs(
    state: &AppState,
    principal: &Principal,
    entity: &Entity,
    query: &RunQuery,
) -> ApiResult<Vec<catalog::BackupRun>> {
    let from = query.from.unwrap_or(DateTime::UNIX_EPOCH);
    let to = query
        .to
        .unwrap_or_else(|| state.clock.now() + chrono::Duration::days(1));
    let mut runs = state
        .catalog
        .runs_for_entity(principal.account_id, entity.id, from, to)
        .await?;
    runs.reverse();
    Ok(runs)
}

/// Backup runs of an entity, newest first.
#[utoipa::path(get, path = "/api/tasks/{id}/entities/{eid}/runs", tag = "entities",
    params(("id" = Uuid, Path, description = "Task id"), ("eid" = Uuid, Path, description = "Entity id"), RunQuery),
    responses(
        (status = 200, description = "Runs, newest first", body = [RunView]),
        (status = 404, description = "No such task or entity in this account", body = ErrorBody),
    ))]
pub async fn list_runs(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, eid)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> ApiResult<ApiJson<Vec<RunView>>> {
    let entity = task_entity(&state, &principal, id, eid).await?;
    let runs = entity_runs(&state, &principal, &entity, &query).await?;
    Ok(ApiJson(runs.into_iter().map(RunView::from).collect()))
}

/// Snapshots of an entity (one per backup, covering its sub-service runs),
/// newest first.
#[utoipa::path(get, path = "/api/tasks/{id}/entities/{eid}/snapshots", tag = "entities",
    params(("id" = Uuid, Path, description = "Task id"), ("eid" = Uuid, Path, description = "Entity id"), RunQuery),
    responses(
        (status = 200, description = "Snapshots, newest first", body = [SnapshotView]),
        (status = 404, description = "No such task or entity in this account", body = ErrorBody),
    ))]
pub async fn list_snapshots(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, eid)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<RunQuery>,
) -> ApiResult<ApiJson<Vec<SnapshotView>>> {
    let entity = task_entity(&state, &principal, id, eid).await?;
    let runs = entity_runs(&state, &principal, &entity, &query).await?;
    let mut by_snapshot: BTreeMap<String, Vec<catalog::BackupRun>> = BTreeMap::new();
    for r in runs {
        if let Some(s) = r.snapshot_id.clone() {
            by_snapshot.entry(s).or_default().push(r);
        }
    }
    let mut snapshots: Vec<SnapshotView> = by_snapshot
        .into_iter()
        .map(|(snapshot_id, mut runs)| {
            runs.sort_by_key(|r| r.sub_service.as_str());
            let time = runs
                .iter()
                .map(|r| r.finished_at.unwrap_or(r.started_at))
                .max()
                .unwrap_or(DateTime::UNIX_EPOCH);
            let outcome = runs
                .iter()
                .map(|r| r.outcome)
                .max_by_key(|o| outcome_severity(*o))
                .flatten()
                .map(|o| o.as_str().to_string());
            SnapshotView {
                snapshot_id,
                time,
                outcome,
                sub_services: runs
                    .iter()
                    .map(|r| SnapshotPart {
                        sub_service: r.sub_service.as_str().to_string(),
                        run_id: r.id.0,
                        outcome: r.outcome.map(|o| o.as_str().to_string()),
                        counts: CountsView::from(&r.counts),
                    })
                    .collect(),
            }
        })
        .collect();
    snapshots.sort_by(|a, b| b.time.cmp(&a.time).then(b.snapshot_id.cmp(&a.snapshot_id)));
    Ok(ApiJson(snapshots))
}
