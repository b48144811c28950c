//! Recovery (SPEC F-E): the backup calendar of an entity, restore jobs and
//! their per-item logs.

use axum::extract::State;
use axum::http::StatusCode;
use catalog::{JobId, Permission};
use chrono::{DateTime, FixedOffset, Utc};
use engine::restore::{RestoreMode, RestoreOptions, Selection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::dto::JobView;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use crate::tasks::task_entity;

/// The calendar's range and time zone.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CalendarQuery {
    /// From (RFC 3339); default 31 days before `to`.
    pub from: Option<DateTime<Utc>>,
    /// To (RFC 3339, exclusive); default now.
    pub to: Option<DateTime<Utc>>,
    /// The viewer's offset from UTC in minutes (e.g. 60 for UTC+1), so days
    /// are the viewer's days; default 0.
    pub tz_offset_minutes: Option<i32>,
}

/// One backup on the calendar.
#[derive(Serialize, ToSchema)]
pub struct CalendarSnapshotView {
    /// Snapshot id (pass to browse and restore).
    pub snapshot_id: String,
    /// When it was taken.
    pub time: DateTime<Utc>,
    /// `success`, `partial`, `failed` or `cancelled`.
    pub outcome: String,
}

/// One day of the backup calendar.
#[derive(Serialize, ToSchema)]
pub struct CalendarDayView {
    /// The day (YYYY-MM-DD, in the asked time zone).
    pub day: String,
    /// The day's worst outcome (the day's colour on the calendar).
    pub outcome: String,
    /// The day's backups by time.
    pub snapshots: Vec<CalendarSnapshotView>,
}

/// The backup calendar of an entity (F-E1): the days with backups, the
/// outcome of each, several a day by time.
#[utoipa::path(get, path = "/api/tasks/{id}/entities/{eid}/calendar", tag = "recovery",
    params(("id" = Uuid, Path, description = "Task id"), ("eid" = Uuid, Path, description = "Entity id"), CalendarQuery),
    responses(
        (status = 200, description = "Days with backups, earliest first", body = [CalendarDayView]),
        (status = 400, description = "Bad range or time zone", body = ErrorBody),
        (status = 404, description = "No such task or entity in this account", body = ErrorBody),
    ))]
pub async fn calendar(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, eid)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<CalendarQuery>,
) -> ApiResult<ApiJson<Vec<CalendarDayView>>> {
    let entity = task_entity(&state, &principal, id, eid).await?;
    let to = query.to.unwrap_or_else(|| state.clock.now());
    let from = query.from.unwrap_or(to - chrono::Duration::days(31));
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    let minutes = query.tz_offset_minutes.unwrap_or(0);
    let tz = FixedOffset::east_opt(minutes * 60).ok_or_else(|| {
        ApiError::bad_request(format!(
            "tz_offset_minutes {minutes} is not a time zone offset (-1439..1439)"
        ))
    })?;
    let days = state
        .catalog
        .backup_calendar(principal.account_id, entity.id, from, to, tz)
        .await?;
    Ok(ApiJson(
        days.into_iter()
            .map(|d| CalendarDayView {
                day: d.day.to_string(),
                outcome: d.outcome.as_str().to_string(),
                snapshots: d
                    .snapshots
                    .into_iter()
                    .map(|s| CalendarSnapshotView {
                        snapshot_id: s.snapshot_id,
                        time: s.time,
                        outcome: s.outcome.as_str().to_string(),
                    })
                    .collect(),
            })
            .collect(),
    ))
}

/// Where a restore writes.
#[derive(Deserialize, ToSchema)]
pub struct DestinationBody {
    /// Another entity of the account (mailbox, OneDrive, site, group, team).
    pub entity_id: Option<Uuid>,
    /// Or an object by its Microsoft 365 id (a re-created user or site, a
    /// site in another tenant) ...
    pub external_id: Option<String>,
    /// ... through this connection of the account.
    pub connection_id: Option<Uuid>,
}

/// A restore request (F-E4..F-E6).
#[derive(Deserialize, ToSchema)]
pub struct RestoreBody {
    /// The backup to restore; without it `at`; without both the latest.
    pub snapshot_id: Option<String>,
    /// Restore the newest backup taken at or before this time (RFC 3339).
    pub at: Option<DateTime<Utc>>,
    /// `non-destructive`, `replace`, `bypass` or `duplicate` (drives and sites).
    pub mode: String,
    /// Sub-services restored whole (`mail`, `contacts`, `calendar`, `tasks`,
    /// `drive`, `site`, `channels`, `conversations`, `metadata`).
    #[serde(default)]
    pub sub_services: Vec<String>,
    /// Snapshot paths of folders, as browse gives them.
    #[serde(default)]
    pub folders: Vec<String>,
    /// Snapshot paths of single items, as browse and search give them.
    #[serde(default)]
    pub items: Vec<String>,
    /// Where (default: the entity itself).
    pub destination: Option<DestinationBody>,
    /// Exchange: a category added to restored items.
    pub tag: Option<String>,
    /// Exchange: mark created folders and calendars as restored.
    #[serde(default)]
    pub mark_restored: bool,
    /// Back the destination up before restoring into it.
    #[serde(default)]
    pub snapshot_destination_first: bool,
    /// Drives: restore earlier versions too, in order.
    #[serde(default)]
    pub include_versions: bool,
}

/// Restore a backup of an entity: queues a restore job.
#[utoipa::path(post, path = "/api/tasks/{id}/entities/{eid}/restore", tag = "recovery",
    params(("id" = Uuid, Path, description = "Task id"), ("eid" = Uuid, Path, description = "Entity id")),
    request_body = RestoreBody,
    responses(
        (status = 202, description = "The queued restore job", body = JobView),
        (status = 400, description = "Bad mode, selection or destination", body = ErrorBody),
        (status = 403, description = "The caller may not restore", body = ErrorBody),
        (status = 404, description = "No such task, entity, snapshot or destination in this account", body = ErrorBody),
    ))]
pub async fn restore(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, eid)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<RestoreBody>,
) -> ApiResult<(StatusCode, ApiJson<JobView>)> {
    principal.require_permission(Permission::Restore)?;
    let entity = task_entity(&state, &principal, id, eid).await?;
    let mode: RestoreMode = body
        .mode
        .parse()
        .map_err(|e: engine::restore::UnknownMode| ApiError::bad_request(e.to_string()))?;
    let sub_services = parse_sub_services(&body.sub_services)?;
    let destination = match body.destination {
        None => None,
        Some(DestinationBody {
            entity_id: Some(e),
            external_id: None,
            connection_id: None,
        }) => Some(worker::RestoreDestination::Entity {
            entity_id: catalog::EntityId(e),
        }),
        Some(DestinationBody {
            entity_id: None,
            external_id: Some(x),
            connection_id: Some(c),
        }) => {
            // The connection must be the account's.
            state
                .catalog
                .get_connection(principal.account_id, catalog::ConnectionId(c))
                .await?;
            Some(worker::RestoreDestination::External {
                connection_id: catalog::ConnectionId(c),
                external_id: x,
            })
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "a destination is either entity_id, or external_id with connection_id",
            ));
        }
    };
    let mut options = RestoreOptions::new(mode);
    options.requested_at = state.clock.now();
    options.tag = body.tag.filter(|t| !t.trim().is_empty());
    options.mark_restored = body.mark_restored;
    options.include_versions = body.include_versions;
    let request = worker::RestoreRequest {
        task_id: entity.task_id,
        entity_id: entity.id,
        snapshot_id: body.snapshot_id,
        at: body.at,
        selection: Selection {
            sub_services,
            folders: body.folders,
            items: body.items,
        },
        options,
        destination,
        snapshot_destination_first: body.snapshot_destination_first,
    };
    let job = worker::enqueue_restore(
        &state.catalog,
        principal.account_id,
        &request,
        Some(principal.initiator()),
    )
    .await
    .map_err(|e| match e {
        worker::WorkerError::Catalog(c) => ApiError::from(c),
        other => ApiError::bad_request(other.to_string()),
    })?;
    Ok((StatusCode::ACCEPTED, ApiJson(job.into())))
}

/// Sub-service names as the API takes them (`mail`, `drive`, ...).
pub(crate) fn parse_sub_services(names: &[String]) -> ApiResult<Vec<engine::SubService>> {
    names
        .iter()
        .map(|s| {
            serde_json::from_value::<engine::SubService>(serde_json::Value::String(s.clone()))
                .map_err(|_| ApiError::bad_request(format!("unknown sub-service {s:?}")))
        })
        .collect()
}

/// A page of a job's item log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobItemsQuery {
    /// Only items with this outcome (`restored`, `overwritten`, `skipped`, `failed`; `exported` for exports).
    pub outcome: Option<String>,
    /// Items to skip.
    pub offset: Option<u64>,
    /// Page size (1..1000, default 100).
    pub limit: Option<u32>,
}

/// One item of a restore or export job.
#[derive(Serialize, ToSchema)]
pub struct JobItemView {
    /// Order in the job.
    pub seq: u64,
    /// Snapshot path.
    pub path: String,
    /// Subject, file name, contact name.
    pub name: String,
    /// What happened.
    pub outcome: String,
    /// Why, or where it went.
    pub detail: Option<String>,
    /// Bytes written.
    pub bytes: u64,
}

/// The per-item log of a restore or export job, in order.
#[utoipa::path(get, path = "/api/jobs/{id}/items", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id"), JobItemsQuery),
    responses(
        (status = 200, description = "Items, in order", body = [JobItemView]),
        (status = 400, description = "Bad page", body = ErrorBody),
        (status = 404, description = "No such job in this account", body = ErrorBody),
    ))]
pub async fn job_items(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<JobItemsQuery>,
) -> ApiResult<ApiJson<Vec<JobItemView>>> {
    let job = state
        .catalog
        .get_job(principal.account_id, JobId(id))
        .await?;
    let items = state
        .catalog
        .job_items(
            principal.account_id,
            job.id,
            query.outcome.as_deref(),
            query.offset.unwrap_or(0),
            query.limit.unwrap_or(100),
        )
        .await?;
    Ok(ApiJson(
        items
            .into_iter()
            .map(|i| JobItemView {
                seq: i.seq,
                path: i.path,
                name: i.name,
                outcome: i.outcome,
                detail: i.detail,
                bytes: i.bytes,
            })
            .collect(),
    ))
}

/// Which backup to read and where in it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BrowseQuery {
    /// The backup (a calendar snapshot id); without it `at`; without both the latest.
    pub snapshot_id: Option<String>,
    /// The newest backup taken at or before this time (RFC 3339).
    pub at: Option<DateTime<Utc>>,
    /// Snapshot path of the level to list ("" or absent: the sub-service cards).
    pub path: Option<String>,
    /// Items to skip.
    pub offset: Option<usize>,
    /// Items per page (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// The runtime that reads backups, or 503 on a server started without one.
pub(crate) fn backup_reader(state: &AppState) -> ApiResult<std::sync::Arc<worker::Runtime>> {
    state.runtime.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this API server cannot read backups (it was started without a vault)",
        )
    })
}

/// The vault snapshot `query` names, checked to be the entity's.
async fn chosen_snapshot(
    state: &AppState,
    principal: &Principal,
    entity: &catalog::Entity,
    snapshot_id: Option<&str>,
    at: Option<DateTime<Utc>>,
) -> ApiResult<(vault::Account, vault::SnapshotInfo)> {
    let rt = backup_reader(state)?;
    let account = principal.account_id;
    let chosen = match (snapshot_id, at) {
        (Some(id), _) => {
            state
                .catalog
                .entity_snapshot(account, entity.id, id)
                .await?
        }
        (None, Some(at)) => state.catalog.snapshot_at(account, entity.id, at).await?,
        (None, None) => {
            state
                .catalog
                .snapshot_at(account, entity.id, state.clock.now())
                .await?
        }
    };
    let vault = rt
        .vault_account(account)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let id: vault::SnapshotId = chosen
        .snapshot_id
        .parse()
        .map_err(|_| ApiError::not_found("snapshot"))?;
    let snapshot = vault.snapshot(&id).await.map_err(|e| match e {
        vault::Error::NotFound(_) => ApiError::not_found("snapshot"),
        other => ApiError::internal(&other),
    })?;
    Ok((vault, snapshot))
}

/// Runs `work` to completion on a blocking thread. The browse futures
/// borrow across awaits in ways the compiler cannot prove `Send` for every
/// lifetime, which axum handlers must be; driving them on a thread of their
/// own needs only the inputs to be `Send`.
async fn off_thread<F, Fut, T>(work: F) -> ApiResult<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(work()))
        .await
        .map_err(|e| ApiError::internal(&e))
}

fn engine_error(e: engine::EngineError) -> ApiError {
    match e {
        engine::EngineError::Invalid(m) => ApiError::bad_request(m),
        engine::EngineError::Vault(vault::Error::NoSuchEntry(p)) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("nothing at {p:?} in this backup"),
        ),
        other => ApiError::internal(&other),
    }
}

/// Browse a backup (F-E2): the sub-service cards, then folders in Outlook
/// order and items with the columns of their type, a page at a time.
/// Every entry's `path` can be passed back here, to preview, and to restore.
#[utoipa::path(get, path = "/api/tasks/{id}/entities/{eid}/browse", tag = "recovery",
    params(("id" = Uuid, Path, description = "Task id"), ("eid" = Uuid, Path, description = "Entity id"), BrowseQuery),
    responses(
        (status = 200, description = "One level of the backup", body = Object),
        (status = 400, description = "A path that is not a level of this backup", body = ErrorBody),
        (status = 404, description = "No such task, entity, backup or path in this account", body = ErrorBody),
    ))]
pub async fn browse(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, eid)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<BrowseQuery>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    let entity = task_entity(&state, &principal, id, eid).await?;
    let (vault, snapshot) = chosen_snapshot(
        &state,
        &principal,
        &entity,
        query.snapshot_id.as_deref(),
        query.at,
    )
    .await?;
    let page = engine::browse::Page {
        offset: query.offset.unwrap_or(0),
        limit: query.limit.unwrap_or(0),
    };
    let path = query.path.clone().unwrap_or_default();
    let (listing, snapshot) = off_thread(move || async move {
        let l = engine::browse::browse(&vault, &snapshot, &path, page).await;
        (l, snapshot)
    })
    .await?;
    let listing = listing.map_err(engine_error)?;
    let mut v = serde_json::to_value(listing).map_err(|e| ApiError::internal(&e))?;
    if let serde_json::Value::Object(m) = &mut v {
        m.insert(
            "snapshotId".into(),
            serde_json::json!(snapshot.id.0.to_string()),
        );
        m.insert("snapshotTime".into(), serde_json::json!(snapshot.time));
    }
    Ok(ApiJson(v))
}

/// Which item to preview.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewQuery {
    /// The backup; without it `at`; without both the latest.
    pub snapshot_id: Option<String>,
    /// The newest backup taken at or before this time (RFC 3339).
    pub at: Option<DateTime<Utc>>,
    /// The item's snapshot path, as browse and search give it.
    pub path: String,
}

/// Preview a backed-up item's content (F-E2): only for callers with the
/// "preview backed-up data" permission.
#[utoipa::path(get, path = "/api/tasks/{id}/entities/{eid}/preview", tag = "recovery",
    params(("id" = Uuid, Path, description = "Task id"), ("eid" = Uuid, Path, description = "Entity id"), PreviewQuery),
    responses(
        (status = 200, description = "The item's content for display", body = Object),
        (status = 403, description = "The caller may not preview backed-up data", body = ErrorBody),
        (status = 404, description = "No such task, entity, backup or item in this account", body = ErrorBody),
    ))]
pub async fn preview(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, eid)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<PreviewQuery>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    principal.require_permission(Permission::PreviewData)?;
    let entity = task_entity(&state, &principal, id, eid).await?;
    let (vault, snapshot) = chosen_snapshot(
        &state,
        &principal,
        &entity,
        query.snapshot_id.as_deref(),
        query.at,
    )
    .await?;
    let path = query.path.clone();
    let preview =
        off_thread(move || async move { engine::browse::preview(&vault, &snapshot, &path).await })
            .await?
            .map_err(engine_error)?;
    Ok(ApiJson(
        serde_json::to_value(preview).map_err(|e| ApiError::internal(&e))?,
    ))
}

/// A search of one entity's backups (F-E3). Every given filter must match;
/// text matches when all its words occur.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Keywords (mail subject and body, names, task and note text, event
    /// text, file names and text, messages).
    pub q: Option<String>,
    /// Mail sender.
    pub from: Option<String>,
    /// Mail recipient.
    pub to: Option<String>,
    /// Mail subject.
    pub subject: Option<String>,
    /// Contact name.
    pub name: Option<String>,
    /// Event description.
    pub description: Option<String>,
    /// Event organizer.
    pub owner: Option<String>,
    /// File author.
    pub author: Option<String>,
    /// File name.
    pub file_name: Option<String>,
    /// Teams channel.
    pub channel: Option<String>,
    /// Message or post sender.
    pub sender: Option<String>,
    /// Items dated on or after (RFC 3339).
    pub date_from: Option<DateTime<Utc>>,
    /// Items dated on or before (RFC 3339).
    pub date_to: Option<DateTime<Utc>>,
    /// Only these kinds, comma-separated (mail, contact, event, task, note,
    /// file, list_item, page, channel_message, post).
    pub kinds: Option<String>,
    /// Search the backup with this id (as it was then) ...
    pub snapshot_id: Option<String>,
    /// ... or the newest backup taken at or before this time; without both,
    /// what the latest backups hold.
    pub at: Option<DateTime<Utc>>,
    /// At most this many results (1..1000, default 100).
    pub limit: Option<usize>,
}

/// One search result.
#[derive(Serialize, ToSchema)]
pub struct SearchHitView {
    /// The item's snapshot path: pass it to preview, or to restore as an item.
    pub path: String,
    /// mail, contact, event, task, note, file, list_item, page, channel_message, post.
    pub kind: String,
    /// Subject, name or title.
    pub title: String,
    /// Its date.
    pub date: Option<DateTime<Utc>>,
    /// The first backup holding this version of it.
    pub backed_up_since: DateTime<Utc>,
    /// Relevance.
    pub score: f32,
}

/// The result of a search.
#[derive(Serialize, ToSchema)]
pub struct SearchResults {
    /// The backup searched (None: the latest of each item).
    pub snapshot_id: Option<String>,
    /// Hits, best first.
    pub hits: Vec<SearchHitView>,
}

/// Search an entity's backups (F-E3), as of a chosen backup or the latest.
#[utoipa::path(get, path = "/api/tasks/{id}/entities/{eid}/search", tag = "recovery",
    params(("id" = Uuid, Path, description = "Task id"), ("eid" = Uuid, Path, description = "Entity id"), SearchQuery),
    responses(
        (status = 200, description = "Matching items, best first", body = SearchResults),
        (status = 400, description = "No criteria, or a bad kind or range", body = ErrorBody),
        (status = 404, description = "No such task, entity or backup in this account", body = ErrorBody),
    ))]
pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, eid)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> ApiResult<ApiJson<SearchResults>> {
    let entity = task_entity(&state, &principal, id, eid).await?;
    let rt = backup_reader(&state)?;
    let account = principal.account_id;
    // "As of" a backup is the vault snapshot's own time: the index keys
    // versions by it.
    let chosen = match (&query.snapshot_id, query.at) {
        (None, None) => None,
        (id, at) => {
            let (_, snap) = chosen_snapshot(&state, &principal, &entity, id.as_deref(), at).await?;
            Some(snap)
        }
    };
    let kinds = match query.kinds.as_deref() {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                search::ItemKind::parse(k)
                    .ok_or_else(|| ApiError::bad_request(format!("unknown kind {k:?}")))
            })
            .collect::<ApiResult<Vec<_>>>()?,
    };
    let date_range = match (query.date_from, query.date_to) {
        (None, None) => None,
        (f, t) => {
            let f = f.unwrap_or(DateTime::UNIX_EPOCH);
            let t = t.unwrap_or(DateTime::<Utc>::MAX_UTC);
            if f > t {
                return Err(ApiError::bad_request("date_from is after date_to"));
            }
            Some((f, t))
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit is 1 to 1000"));
    }
    let as_of = chosen
        .as_ref()
        .map(|snap| search::AsOf::Time(snap.time))
        .unwrap_or_default();
    let q = search::Query {
        entity_key: String::new(),
        as_of,
        keyword: query.q,
        from: query.from,
        to: query.to,
        subject: query.subject,
        name: query.name,
        description: query.description,
        owner: query.owner,
        author: query.author,
        file_name: query.file_name,
        channel: query.channel,
        sender: query.sender,
        date_range,
        kinds,
        limit,
    };
    if !worker::search::has_criteria(&q) {
        return Err(ApiError::bad_request(
            "give keywords or at least one filter to search",
        ));
    }
    let hits =
        off_thread(
            move || async move { worker::search::search_entity(&rt, account, &entity, q).await },
        )
        .await?
        .map_err(|e| ApiError::internal(&e))?;
    Ok(ApiJson(SearchResults {
        snapshot_id: chosen.map(|s| s.id.0.to_string()),
        hits: hits
            .into_iter()
            .map(|h| SearchHitView {
                path: h.path,
                kind: h.kind.as_str().to_string(),
                title: h.title,
                date: h.date,
                backed_up_since: h.version_from,
                score: h.score,
            })
            .collect(),
    }))
}

/// A "changed from/to" range (F-E2).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// The backup at or before this time is the "from" side (RFC 3339).
    pub from: DateTime<Utc>,
    /// The backup at or before this time is the "to" side (RFC 3339).
    pub to: DateTime<Utc>,
}

/// What changed in a drive or site between the backups of a date range
/// (F-E2): files, folders, list items and pages added, modified or
/// removed, each with the columns of the backup that has it.
#[utoipa::path(get, path = "/api/tasks/{id}/entities/{eid}/changes", tag = "recovery",
    params(("id" = Uuid, Path, description = "Task id"), ("eid" = Uuid, Path, description = "Entity id"), ChangesQuery),
    responses(
        (status = 200, description = "The two backups compared and what changed", body = Object),
        (status = 400, description = "from is not before to", body = ErrorBody),
        (status = 404, description = "No such task or entity, or no backup at or before from", body = ErrorBody),
    ))]
pub async fn changes(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, eid)): ApiPath<(Uuid, Uuid)>,
    ApiQuery(query): ApiQuery<ChangesQuery>,
) -> ApiResult<ApiJson<serde_json::Value>> {
    if query.from > query.to {
        return Err(ApiError::bad_request("from must not be after to"));
    }
    let entity = task_entity(&state, &principal, id, eid).await?;
    let (vault, older) =
        chosen_snapshot(&state, &principal, &entity, None, Some(query.from)).await?;
    let (_, newer) = chosen_snapshot(&state, &principal, &entity, None, Some(query.to)).await?;
    let ids = (older.id.0.to_string(), newer.id.0.to_string());
    let items =
        off_thread(
            move || async move { engine::browse::changed_between(&vault, &older, &newer).await },
        )
        .await?
        .map_err(engine_error)?;
    Ok(ApiJson(serde_json::json!({
        "fromSnapshotId": ids.0,
        "toSnapshotId": ids.1,
        "items": items,
    })))
}
