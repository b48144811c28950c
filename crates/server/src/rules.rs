//! Activation rules (SPEC F-C5): create (by directory property, group
//! membership, CSV of account emails, or SharePoint URL), list, delete. A new
//! rule is applied by a worker right after a fresh discovery; recurring rules
//! run again after every daily discovery.

use axum::extract::State;
use axum::http::StatusCode;
use catalog::{
    ActivationRule, Deactivation, JobKind, NewJob, NewRule, RuleDefinition, RuleId, RuleMode,
    TaskId, parse_account_csv,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};

/// A rule to create. Give either `definition` or `csv` (the text of a CSV
/// file with an "Account Email" column).
#[derive(Deserialize, ToSchema)]
pub struct CreateRuleRequest {
    /// `{"kind": "property", "property": "department", "values": ["Sales"]}`,
    /// `{"kind": "group", "group_id": "…"}`,
    /// `{"kind": "url", "match": "begins_with", "value": "https://…/sites/hr"}`.
    #[schema(value_type = Option<Object>)]
    pub definition: Option<RuleDefinition>,
    /// A CSV file's text with an "Account Email" column.
    pub csv: Option<String>,
    /// `once` (default) or `recurring` (re-evaluated after every daily discovery).
    #[schema(value_type = Option<String>, example = "recurring")]
    pub mode: Option<RuleMode>,
    /// For recurring rules, what happens to an entity that leaves the rule's
    /// scope: `keep` (default), `pause` or `delete`.
    #[schema(value_type = Option<String>, example = "pause")]
    pub deactivation: Option<Deactivation>,
}

/// A rule.
#[derive(Serialize, ToSchema)]
pub struct RuleView {
    /// Id.
    pub id: Uuid,
    /// Its task.
    pub task_id: Uuid,
    /// What it matches.
    #[schema(value_type = Object)]
    pub definition: RuleDefinition,
    /// `once` or `recurring`.
    #[schema(value_type = String)]
    pub mode: RuleMode,
    /// `keep`, `pause` or `delete`.
    #[schema(value_type = String)]
    pub deactivation: Deactivation,
    /// When a worker last applied it.
    pub last_evaluated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<ActivationRule> for RuleView {
    fn from(r: ActivationRule) -> Self {
        Self {
            id: r.id.0,
            task_id: r.task_id.0,
            definition: r.definition,
            mode: r.mode,
            deactivation: r.deactivation,
            last_evaluated_at: r.last_evaluated_at,
            created_at: r.created_at,
        }
    }
}

/// A CSV row that was not used, and why.
#[derive(Serialize, ToSchema)]
pub struct CsvProblemView {
    /// 1-based line (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// A created rule, the job that applies it, and the CSV rows not used.
#[derive(Serialize, ToSchema)]
pub struct CreatedRule {
    /// The rule.
    pub rule: RuleView,
    /// The discovery job that applies it.
    pub job_id: Uuid,
    /// CSV rows not used (empty for other kinds).
    pub csv_problems: Vec<CsvProblemView>,
}

/// The task's activation rules, oldest first.
#[utoipa::path(get, path = "/api/tasks/{id}/rules", tag = "rules",
    params(("id" = Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "Rules", body = [RuleView]),
        (status = 404, description = "No such task in this account", body = ErrorBody),
    ))]
pub async fn list_rules(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<ApiJson<Vec<RuleView>>> {
    let account = principal.account_id;
    let task = state.catalog.get_task(account, TaskId(id)).await?;
    let rules = state.catalog.list_rules(account, Some(task.id)).await?;
    Ok(ApiJson(rules.into_iter().map(RuleView::from).collect()))
}

/// Create an activation rule; a worker applies it after a fresh discovery.
#[utoipa::path(post, path = "/api/tasks/{id}/rules", tag = "rules",
    params(("id" = Uuid, Path, description = "Task id")),
    request_body = CreateRuleRequest,
    responses(
        (status = 201, description = "Created; applied by the job", body = CreatedRule),
        (status = 400, description = "Bad rule or CSV", body = ErrorBody),
        (status = 404, description = "No such task in this account", body = ErrorBody),
    ))]
pub async fn create_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CreateRuleRequest>,
) -> ApiResult<(StatusCode, ApiJson<CreatedRule>)> {
    principal.require_write()?;
    let account = principal.account_id;
    let task = state.catalog.get_task(account, TaskId(id)).await?;
    let (definition, problems) = match (req.definition, req.csv) {
        (Some(d), None) => (d, Vec::new()),
        (None, Some(text)) => {
            let (emails, problems) = parse_account_csv(&text)?;
            if emails.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "the CSV has no usable Account Email rows ({} rows reported)",
                    problems.len()
                )));
            }
            (RuleDefinition::Csv { emails }, problems)
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either a rule definition or a CSV, not both or neither",
            ));
        }
    };
    validate(&definition, task.service)?;
    let rule = state
        .catalog
        .create_rule(
            account,
            NewRule {
                task_id: task.id,
                definition,
                mode: req.mode.unwrap_or(RuleMode::Once),
                deactivation: req.deactivation.unwrap_or(Deactivation::Keep),
            },
        )
        .await?;
    let job = NewJob {
        dedupe_key: Some(format!("rule:{}", rule.id)),
        service: Some(task.service),
        task_id: Some(task.id),
        initiator: Some(principal.initiator()),
        title: Some(format!("Activation rule on {}", task.name)),
        ..NewJob::new(
            JobKind::Discovery,
            serde_json::json!({ "task_id": task.id, "rule_id": rule.id }),
        )
    };
    let job = state.catalog.enqueue_job(account, job).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedRule {
            rule: rule.into(),
            job_id: job.job().id.0,
            csv_problems: problems
                .into_iter()
                .map(|p| CsvProblemView {
                    line: p.line,
                    reason: p.reason,
                })
                .collect(),
        }),
    ))
}

/// Rule kinds each service accepts, with values that make sense.
fn validate(d: &RuleDefinition, service: catalog::Service) -> ApiResult<()> {
    use catalog::Service;
    match d {
        RuleDefinition::Property { property, values } => {
            if property.trim().is_empty() || values.iter().all(|v| v.trim().is_empty()) {
                return Err(ApiError::bad_request(
                    "a property rule needs a property and at least one value",
                ));
            }
        }
        RuleDefinition::Group { group_id, .. } => {
            if group_id.trim().is_empty() {
                return Err(ApiError::bad_request("a group rule needs the group's id"));
            }
            if matches!(service, Service::SharePoint | Service::Teams) {
                return Err(ApiError::bad_request(
                    "group membership selects users: use it on Exchange or OneDrive tasks",
                ));
            }
        }
        RuleDefinition::Url { value, .. } => {
            if value.trim().is_empty() {
                return Err(ApiError::bad_request("a URL rule needs a value"));
            }
            if !matches!(service, Service::SharePoint | Service::OneDrive) {
                return Err(ApiError::bad_request(
                    "URL rules select sites: use them on SharePoint or OneDrive tasks",
                ));
            }
        }
        RuleDefinition::Csv { emails } => {
            if emails.is_empty() {
                return Err(ApiError::bad_request("a CSV rule needs addresses"));
            }
        }
    }
    Ok(())
}

/// Delete a rule. Entities it activated stay as they are.
#[utoipa::path(delete, path = "/api/rules/{id}", tag = "rules",
    params(("id" = Uuid, Path, description = "Rule id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such rule in this account", body = ErrorBody),
    ))]
pub async fn delete_rule(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    principal.require_write()?;
    state
        .catalog
        .delete_rule(principal.account_id, RuleId(id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
