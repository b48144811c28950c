//! Bulk activation (SPEC F-C5): rules that select a task's entities by
//! directory property, Microsoft 365 group membership, an imported CSV of
//! account emails, or a SharePoint URL pattern. A rule runs once or is
//! re-evaluated every day after discovery: new matches are activated, and
//! entities that left its scope are kept, paused or deleted as the rule says.
//! Only entities a rule itself activated are ever deactivated by it.

use std::collections::{BTreeSet, HashSet};

use catalog::{
    AccountId, ActivationRule, ActivityKind, ActivityStatus, Deactivation, Entity, EntityId,
    EntityStatus, NewActivity, RuleDefinition, RuleMode, TaskId, UrlMatch,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Result, WorkerError};

use crate::jobs::task_entities;
use crate::runtime::Runtime;
pub use catalog::{CsvProblem, parse_account_csv};

/// What applying a rule did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// The rule.
    pub rule_id: String,
    /// Entities matching it now.
    pub matched: usize,
    /// Of those, activated now.
    pub activated: usize,
    /// Entities it activated earlier that left its scope.
    pub left: usize,
    /// What happened to those: "kept", "paused" or "deleted".
    pub on_leave: String,
    /// Entities now backed up in another task of the tenant.
    pub backed_up_elsewhere: u64,
    /// CSV addresses with no entity in the task.
    pub unmatched: Vec<String>,
}

/// A directory property's value as the text a rule compares with.
fn property_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The addresses an entity answers to (primary address, UPN, mail).
fn addresses(e: &Entity) -> Vec<String> {
    let mut out: Vec<String> = e
        .email_or_url
        .iter()
        .cloned()
        .chain(
            ["userPrincipalName", "mail"]
                .iter()
                .filter_map(|k| e.properties.get(*k).and_then(Value::as_str))
                .map(str::to_string),
        )
        .map(|s| s.to_ascii_lowercase())
        .collect();
    out.dedup();
    out
}

/// The user ids in a group, through nested groups.
async fn group_members(graph: &graph::GraphClient, group: &str) -> Result<HashSet<String>> {
    let mut users = HashSet::new();
    let mut seen = HashSet::new();
    let mut queue = vec![group.to_string()];
    while let Some(g) = queue.pop() {
        if !seen.insert(g.clone()) {
            continue;
        }
        let members = graph
            .get_all(&format!(
                "/groups/{g}/members?$select=id,mail,userPrincipalName&$top=999"
            ))
            .await?;
        for m in members {
            let Some(id) = m.get("id").and_then(Value::as_str) else {
                continue;
            };
            let kind = m.get("@odata.type").and_then(Value::as_str).unwrap_or("");
            if kind.ends_with(".group") {
                queue.push(id.to_string());
            } else {
                users.insert(id.to_string());
            }
        }
    }
    Ok(users)
}

/// The task's entities a rule selects, and (for CSV rules) the addresses
/// that matched nothing.
async fn select(
    rt: &Runtime,
    account: AccountId,
    task: TaskId,
    rule: &ActivationRule,
    entities: &[Entity],
) -> Result<(Vec<EntityId>, Vec<String>)> {
    let mut unmatched = Vec::new();
    let chosen: Vec<EntityId> = match &rule.definition {
        RuleDefinition::Property { property, values } => {
            let wanted: Vec<String> = values.iter().map(|v| v.trim().to_lowercase()).collect();
            entities
                .iter()
                .filter(|e| {
                    e.properties
                        .get(property)
                        .and_then(property_text)
                        .is_some_and(|v| wanted.contains(&v.trim().to_lowercase()))
                })
                .map(|e| e.id)
                .collect()
        }
        RuleDefinition::Group { group_id, .. } => {
            let t = rt.catalog.get_task(account, task).await?;
            let graph = rt.graph(account, t.connection_id).await?;
            let members = group_members(&graph, group_id).await?;
            entities
                .iter()
                .filter(|e| members.contains(&e.external_id))
                .map(|e| e.id)
                .collect()
        }
        RuleDefinition::Url { match_, value } => {
            let v = value.trim().to_lowercase();
            if v.is_empty() {
                return Err(WorkerError::Invalid("a URL rule needs a value".into()));
            }
            entities
                .iter()
                .filter(|e| {
                    e.email_or_url.as_deref().is_some_and(|u| {
                        let u = u.to_lowercase();
                        match match_ {
                            UrlMatch::BeginsWith => u.starts_with(&v),
                            UrlMatch::EndsWith => {
                                u.trim_end_matches('/').ends_with(v.trim_end_matches('/'))
                            }
                            UrlMatch::Contains => u.contains(&v),
                        }
                    })
                })
                .map(|e| e.id)
                .collect()
        }
        RuleDefinition::Csv { emails } => {
            let mut out = Vec::new();
            for email in emails {
                let email = email.trim().to_ascii_lowercase();
                let found: Vec<EntityId> = entities
                    .iter()
                    .filter(|e| addresses(e).contains(&email))
                    .map(|e| e.id)
                    .collect();
                if found.is_empty() {
                    unmatched.push(email);
                }
                out.extend(found);
            }
            out
        }
    };
    let unique: BTreeSet<EntityId> = chosen.into_iter().collect();
    Ok((unique.into_iter().collect(), unmatched))
}

/// Applies a rule now: activates what it matches, records the matches, and
/// for a recurring rule handles entities that left its scope.
pub async fn apply_rule(
    rt: &Runtime,
    account: AccountId,
    rule: &ActivationRule,
) -> Result<RuleOutcome> {
    // The rule must be this account's: checked before anything is read or
    // changed (the catalog scopes every later call too).
    let rule = &rt.catalog.get_rule(account, rule.id).await?;
    let entities = task_entities(rt, account, rule.task_id).await?;
    let (matched, unmatched) = select(rt, account, rule.task_id, rule, &entities).await?;
    let to_activate: Vec<EntityId> = entities
        .iter()
        .filter(|e| matched.contains(&e.id))
        .filter(|e| {
            e.deletion_requested_at.is_none()
                && e.status != EntityStatus::Archived
                && (!e.active || e.status == EntityStatus::NotActive)
        })
        .map(|e| e.id)
        .collect();
    let activated = rt.catalog.activate_entities(account, &to_activate).await? as usize;
    let before: HashSet<EntityId> = rt
        .catalog
        .rule_matches(account, rule.id)
        .await?
        .into_iter()
        .collect();
    rt.catalog
        .record_rule_matches(account, rule.id, &matched)
        .await?;
    let now: HashSet<EntityId> = matched.iter().copied().collect();
    let left: Vec<EntityId> = before.difference(&now).copied().collect();
    let on_leave = if rule.mode == RuleMode::Recurring && !left.is_empty() {
        match rule.deactivation {
            Deactivation::Keep => "kept",
            Deactivation::Pause => {
                rt.catalog.pause_entities(account, &left).await?;
                // A paused entity may release its twin in another task.
                rt.catalog
                    .refresh_tenant_coverage(account, rule.task_id)
                    .await?;
                "paused"
            }
            Deactivation::Delete => {
                rt.catalog.request_entity_deletion(account, &left).await?;
                "deleted"
            }
        }
    } else {
        "kept"
    };
    rt.catalog
        .forget_rule_matches(account, rule.id, &left)
        .await?;
    rt.catalog.mark_rule_evaluated(account, rule.id).await?;
    let (backed_up_elsewhere, _) = rt.catalog.refresh_coverage(account, rule.task_id).await?;
    let outcome = RuleOutcome {
        rule_id: rule.id.to_string(),
        matched: matched.len(),
        activated,
        left: left.len(),
        on_leave: on_leave.to_string(),
        backed_up_elsewhere,
        unmatched,
    };
    let task = rt.catalog.get_task(account, rule.task_id).await?;
    let mut entry = NewActivity::new(ActivityKind::Activation, ActivityStatus::Success);
    entry.service = Some(task.service);
    entry.task_id = Some(task.id);
    entry.task_name = Some(task.name.clone());
    entry.details = json!({
        "rule": rule.definition,
        "mode": rule.mode,
        "outcome": outcome,
    });
    rt.catalog.log_activity(account, entry).await?;
    Ok(outcome)
}

/// Re-evaluates the task's recurring rules (after the daily discovery).
/// A rule that fails (a group deleted in the tenant, say) is logged and the
/// others still run.
pub async fn evaluate_recurring_rules(
    rt: &Runtime,
    account: AccountId,
    task: TaskId,
) -> Result<Vec<RuleOutcome>> {
    let mut out = Vec::new();
    for rule in rt.catalog.list_rules(account, Some(task)).await? {
        if rule.mode != RuleMode::Recurring {
            continue;
        }
        match apply_rule(rt, account, &rule).await {
            Ok(o) => out.push(o),
            Err(e) => {
                tracing::warn!(rule = %rule.id, error = %e, "activation rule failed");
                let mut entry = NewActivity::new(ActivityKind::Activation, ActivityStatus::Failed);
                entry.task_id = Some(task);
                entry.details = json!({ "rule": rule.definition, "error": e.to_string() });
                rt.catalog.log_activity(account, entry).await?;
            }
        }
    }
    Ok(out)
}
