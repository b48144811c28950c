//! What the API sends and receives. Catalog types stay free of OpenAPI
//! concerns; these types describe the wire format and convert from them.

use catalog::{
    Account, ApiToken, BackupRun, Connection, ConnectionStatus, Entity, Job, Role, RunOutcome,
    Task, TaskSettings, TaskStatus, User,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the server answers.
    pub status: String,
}

/// A user (never with a password hash).
#[derive(Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// `owner`, `admin`, `operator` or `viewer`.
    #[schema(value_type = String, example = "admin")]
    pub role: Role,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.0,
            email: u.email,
            display_name: u.display_name,
            role: u.role,
            created_at: u.created_at,
            last_login_at: u.last_login_at,
        }
    }
}

/// An account.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    /// Id.
    pub id: Uuid,
    /// Organisation name.
    pub name: String,
    /// Data-centre region.
    pub region: String,
    /// `trial`, `active`, `suspended` or `closing`.
    pub status: String,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            id: a.id.0,
            name: a.name,
            region: a.region,
            status: a.status.as_str().to_string(),
        }
    }
}

/// `POST /api/session`.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// Email (any case).
    pub email: String,
    /// Password.
    pub password: String,
}

/// A new session: the cookie carries its token; mutating requests must send
/// `csrf_token` in the `X-CSRF-Token` header.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// Signed-in user.
    pub user: UserView,
    /// Their account.
    pub account: AccountView,
    /// Echo in `X-CSRF-Token` on POST/PATCH/DELETE.
    pub csrf_token: String,
}

/// `GET /api/me`: who the caller is.
#[derive(Serialize, ToSchema)]
pub struct MeView {
    /// Account.
    pub account: AccountView,
    /// Effective role.
    #[schema(value_type = String, example = "operator")]
    pub role: Role,
    /// The user, when signed in with a session.
    pub user: Option<UserView>,
    /// The API token, when called with one.
    pub token: Option<TokenView>,
    /// The session's CSRF token, when signed in with a session.
    pub csrf_token: Option<String>,
}

/// An API token (never its secret).
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// First characters, to recognise it (`lb_1a2b3c4d`).
    pub prefix: String,
    /// Role.
    #[schema(value_type = String, example = "operator")]
    pub role: Role,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last used.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id.0,
            name: t.name,
            prefix: t.prefix,
            role: t.role,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// `POST /api/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// Name.
    pub name: String,
    /// Role (default: the caller's; never above it).
    #[schema(value_type = Option<String>, example = "viewer")]
    pub role: Option<Role>,
}

/// A new API token: `secret` is shown this once.
#[derive(Serialize, ToSchema)]
pub struct IssuedTokenView {
    /// The token's record.
    pub token: TokenView,
    /// `lb_...`: send as `Authorization: Bearer lb_...`.
    pub secret: String,
}

/// A tenant connection (the client secret is never returned).
#[derive(Serialize, ToSchema)]
pub struct ConnectionView {
    /// Id.
    pub id: Uuid,
    /// Microsoft Entra tenant id.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Graph base URL.
    pub graph_url: String,
    /// Login base URL.
    pub login_url: String,
    /// Whether the credentials work.
    pub connected: bool,
    /// Why not, when disconnected.
    pub disconnected_reason: Option<String>,
}

impl From<Connection> for ConnectionView {
    fn from(c: Connection) -> Self {
        let (connected, disconnected_reason) = match c.status {
            ConnectionStatus::Connected => (true, None),
            ConnectionStatus::Disconnected { reason } => (false, Some(reason)),
        };
        Self {
            id: c.id.0,
            tenant: c.tenant_id,
            client_id: c.client_id,
            graph_url: c.graph_url,
            login_url: c.login_url,
            connected,
            disconnected_reason,
        }
    }
}

/// A backup task.
#[derive(Serialize, ToSchema)]
pub struct TaskView {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// `exchange`, `onedrive`, `sharepoint` or `teams`.
    pub service: String,
    /// `active` or `paused`.
    pub status: String,
    /// Settings (F-B3).
    #[schema(value_type = Object)]
    pub settings: TaskSettings,
    /// The tenant connection.
    pub connection: ConnectionView,
    /// When deletion was requested.
    pub deletion_requested_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// What an administrator should know about what this task can and
    /// cannot protect (e.g. why Exchange public folders are not offered).
    pub notices: Vec<String>,
}

impl TaskView {
    /// A task with its connection.
    pub fn new(t: Task, c: Connection) -> Self {
        Self {
            id: t.id.0,
            name: t.name,
            service: t.service.as_str().to_string(),
            status: t.status.as_str().to_string(),
            settings: t.settings,
            connection: c.into(),
            deletion_requested_at: t.deletion_requested_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
            notices: match t.service {
                catalog::Service::Exchange => {
                    vec![engine::exchange::PUBLIC_FOLDERS_NOTICE.to_string()]
                }
                _ => Vec::new(),
            },
        }
    }
}

/// `POST /api/tasks`: a task and the tenant connection it uses.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    /// `exchange`, `onedrive`, `sharepoint` or `teams`.
    #[schema(value_type = String, example = "exchange")]
    pub service: catalog::Service,
    /// Name.
    pub name: String,
    /// Graph base URL (`https://graph.microsoft.com/v1.0`).
    pub graph_url: String,
    /// Login base URL (`https://login.microsoftonline.com`).
    pub login_url: String,
    /// Microsoft Entra tenant id.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// Client secret (stored encrypted, never returned).
    pub client_secret: String,
    /// Settings (defaults when absent).
    #[schema(value_type = Option<Object>)]
    pub settings: Option<TaskSettings>,
}

/// `PATCH /api/tasks/{id}`: the fields to change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskRequest {
    /// New name.
    pub name: Option<String>,
    /// New settings (all of them).
    #[schema(value_type = Option<Object>)]
    pub settings: Option<TaskSettings>,
    /// `active` or `paused`.
    #[schema(value_type = Option<String>, example = "paused")]
    pub status: Option<TaskStatus>,
}

/// A protected entity.
#[derive(Serialize, ToSchema)]
pub struct EntityView {
    /// Id.
    pub id: Uuid,
    /// Task.
    pub task_id: Uuid,
    /// `mailbox`, `onedrive`, `site`, `group` or `team`.
    pub kind: String,
    /// Id in Microsoft 365.
    pub external_id: String,
    /// Name.
    pub name: String,
    /// Email or URL.
    pub email_or_url: Option<String>,
    /// `user`, `shared`, `group`, `team` or `site`.
    pub entity_type: String,
    /// Status (F-C2).
    pub status: String,
    /// Protected.
    pub active: bool,
    /// Last backup.
    pub last_backup_at: Option<DateTime<Utc>>,
    /// Stored size.
    pub backup_size_bytes: u64,
    /// Outcome of the last backup.
    pub last_outcome: Option<String>,
    /// Tag names.
    pub tags: Vec<String>,
}

impl From<Entity> for EntityView {
    fn from(e: Entity) -> Self {
        Self {
            id: e.id.0,
            task_id: e.task_id.0,
            kind: e.kind.as_str().to_string(),
            external_id: e.external_id,
            name: e.name,
            email_or_url: e.email_or_url,
            entity_type: e.entity_type.as_str().to_string(),
            status: e.status.as_str().to_string(),
            active: e.active,
            last_backup_at: e.last_backup_at,
            backup_size_bytes: e.backup_size_bytes,
            last_outcome: e.last_outcome.map(|o| o.as_str().to_string()),
            tags: e.tags.into_iter().map(|t| t.name).collect(),
        }
    }
}

/// A page of entities.
#[derive(Serialize, ToSchema)]
pub struct EntityPage {
    /// This page.
    pub items: Vec<EntityView>,
    /// Matching entities in all pages.
    pub total: u64,
}

/// Filters of `GET /api/tasks/{id}/entities`.
#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntityQuery {
    /// Comma-separated statuses (`scheduled,failed`).
    pub status: Option<String>,
    /// Name, email or URL contains this.
    pub search: Option<String>,
    /// Only active (true) or inactive (false) entities.
    pub active: Option<bool>,
    /// Page size (at most 1000).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// A selection of entities: some ids, or all of the task's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntitySelection {
    /// These entities.
    pub entity_ids: Option<Vec<Uuid>>,
    /// Every entity of the task.
    pub all: Option<bool>,
}

/// How many entities changed.
#[derive(Serialize, ToSchema)]
pub struct ChangedView {
    /// Count.
    pub changed: u64,
}

/// `POST /api/tasks/{id}/backup` (body optional: without it, every active
/// entity).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Only these entities (each must be active).
    pub entity_ids: Option<Vec<Uuid>>,
}

/// A job the request queued, or found already queued.
#[derive(Serialize, ToSchema)]
pub struct EnqueuedView {
    /// Job id.
    pub job_id: Uuid,
    /// Its entity.
    pub entity_id: Option<Uuid>,
    /// False when an identical job was already pending or running.
    pub new: bool,
}

/// Jobs queued by an action.
#[derive(Serialize, ToSchema)]
pub struct EnqueuedJobs {
    /// One per entity (or one for discovery).
    pub jobs: Vec<EnqueuedView>,
}

/// Progress of a job.
#[derive(Serialize, ToSchema)]
pub struct ProgressView {
    /// Items done.
    pub done_items: u64,
    /// Items in total, when known.
    pub total_items: Option<u64>,
    /// Bytes done.
    pub done_bytes: u64,
    /// Bytes in total, when known.
    pub total_bytes: Option<u64>,
    /// What it is doing.
    pub message: Option<String>,
}

/// A job.
#[derive(Serialize, ToSchema)]
pub struct JobView {
    /// Id.
    pub id: Uuid,
    /// `backup`, `restore`, `export`, `discovery`, `purge` or `verify`.
    pub kind: String,
    /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Service.
    pub service: Option<String>,
    /// Task.
    pub task_id: Option<Uuid>,
    /// Entity.
    pub entity_id: Option<Uuid>,
    /// Display name.
    pub title: Option<String>,
    /// Who started it.
    pub initiator: Option<String>,
    /// Progress.
    pub progress: ProgressView,
    /// A cancel was requested.
    pub cancel_requested: bool,
    /// Attempts so far.
    pub attempts: u32,
    /// Why it failed.
    pub error: Option<String>,
    /// What it produced.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Queued.
    pub created_at: DateTime<Utc>,
    /// Started.
    pub started_at: Option<DateTime<Utc>>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id.0,
            kind: j.kind.as_str().to_string(),
            status: j.status.as_str().to_string(),
            service: j.service.map(|s| s.as_str().to_string()),
            task_id: j.task_id.map(|t| t.0),
            entity_id: j.entity_id.map(|e| e.0),
            title: j.title,
            initiator: j.initiator,
            progress: ProgressView {
                done_items: j.progress.done_items,
                total_items: j.progress.total_items,
                done_bytes: j.progress.done_bytes,
                total_bytes: j.progress.total_bytes,
                message: j.progress.message,
            },
            cancel_requested: j.cancel_requested,
            attempts: j.attempts,
            error: j.error,
            result: j.result,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// Filters of `GET /api/jobs`.
#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only this task's jobs.
    pub task_id: Option<Uuid>,
    /// Comma-separated statuses (`pending,running`).
    pub status: Option<String>,
    /// Page size (at most 1000).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

/// Range of `GET .../runs` (default: everything).
#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Runs started at or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Runs started before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
}

/// Item counts of a run.
#[derive(Serialize, ToSchema, Clone)]
pub struct CountsView {
    /// New items.
    pub items_new: u64,
    /// Changed items.
    pub items_changed: u64,
    /// Deleted items.
    pub items_deleted: u64,
    /// Failed items.
    pub items_failed: u64,
    /// Bytes read from Microsoft 365.
    pub bytes_read: u64,
    /// Bytes stored after dedup and compression.
    pub bytes_stored: u64,
}

/// A backup run of one entity and sub-service.
#[derive(Serialize, ToSchema)]
pub struct RunView {
    /// Id.
    pub id: Uuid,
    /// Sub-service (`mail`, `contacts`, `drive`, ...).
    pub sub_service: String,
    /// The snapshot it wrote.
    pub snapshot_id: Option<String>,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// `success`, `partial`, `failed` or `cancelled`; none while running.
    pub outcome: Option<String>,
    /// Counts.
    pub counts: CountsView,
    /// Why it failed.
    pub error_summary: Option<String>,
}

impl From<&catalog::RunCounts> for CountsView {
    fn from(c: &catalog::RunCounts) -> Self {
        Self {
            items_new: c.items_new,
            items_changed: c.items_changed,
            items_deleted: c.items_deleted,
            items_failed: c.items_failed,
            bytes_read: c.bytes_read,
            bytes_stored: c.bytes_stored,
        }
    }
}

impl From<BackupRun> for RunView {
    fn from(r: BackupRun) -> Self {
        Self {
            id: r.id.0,
            sub_service: r.sub_service.as_str().to_string(),
            snapshot_id: r.snapshot_id,
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome.map(|o| o.as_str().to_string()),
            counts: (&r.counts).into(),
            error_summary: r.error_summary,
        }
    }
}

/// One sub-service's part of a snapshot.
#[derive(Serialize, ToSchema)]
pub struct SnapshotPart {
    /// Sub-service.
    pub sub_service: String,
    /// The run that wrote it.
    pub run_id: Uuid,
    /// Its outcome.
    pub outcome: Option<String>,
    /// Its counts.
    pub counts: CountsView,
}

/// A snapshot of an entity (one backup; several sub-service runs).
#[derive(Serialize, ToSchema)]
pub struct SnapshotView {
    /// Vault snapshot id.
    pub snapshot_id: String,
    /// When the backup finished (or started, if unfinished).
    pub time: DateTime<Utc>,
    /// The worst outcome of its runs.
    pub outcome: Option<String>,
    /// Per sub-service.
    pub sub_services: Vec<SnapshotPart>,
}

/// Worst first: a snapshot is as good as its worst run.
pub fn outcome_severity(o: Option<RunOutcome>) -> u8 {
    match o {
        Some(RunOutcome::Success) => 0,
        Some(RunOutcome::Partial) => 1,
        None => 2,
        Some(RunOutcome::Cancelled) => 3,
        Some(RunOutcome::Failed) => 4,
    }
}
