//! Protected entities (F-C): mailboxes, drives, sites, groups and teams
//! discovered in a task's tenant.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::accounts::non_empty;
use crate::db::{Catalog, RowExt, Sql, args, like_contains, micros, q, to_json, u64_to_i64};
use crate::error::{Error, Result};
use crate::tags::Tag;
use crate::types::{
    AccountId, EntityId, EntityKind, EntityStatus, EntityType, RunOutcome, TagId, TaskId,
};

/// Largest page a listing returns.
pub const MAX_PAGE: u32 = 1000;

/// A protected (or protectable) entity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Id.
    pub id: EntityId,
    /// Owning account.
    pub account_id: AccountId,
    /// The task that discovered it.
    pub task_id: TaskId,
    /// What it is.
    pub kind: EntityKind,
    /// Its Microsoft Graph id.
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// Email address (mailboxes, groups) or URL (sites).
    pub email_or_url: Option<String>,
    /// Finer type (user, shared, group, team, site).
    pub entity_type: EntityType,
    /// Directory properties (department, city, ...), as a JSON object.
    pub properties: serde_json::Value,
    /// Status (F-C2).
    pub status: EntityStatus,
    /// Whether it is protected (counted as a protected unit).
    pub active: bool,
    /// When the last backup finished.
    pub last_backup_at: Option<DateTime<Utc>>,
    /// Stored size of its backups.
    pub backup_size_bytes: u64,
    /// Outcome of its last backup.
    pub last_outcome: Option<RunOutcome>,
    /// When it was found deleted in Microsoft 365 (its backups are archived).
    pub deleted_in_tenant_at: Option<DateTime<Utc>>,
    /// When deletion of its backups was requested (7-day grace).
    pub deletion_requested_at: Option<DateTime<Utc>>,
    /// Its tags, by name.
    pub tags: Vec<Tag>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// An entity as discovery sees it (insert or update by external id).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DiscoveredEntity {
    /// What it is.
    pub kind: EntityKind,
    /// Microsoft Graph id.
    pub external_id: String,
    /// Display name.
    pub name: String,
    /// Email or URL.
    pub email_or_url: Option<String>,
    /// Finer type.
    pub entity_type: EntityType,
    /// Directory properties (a JSON object).
    #[serde(default)]
    pub properties: serde_json::Value,
}

/// Filters of an entity listing (F-C2, F-C4).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EntityFilter {
    /// Only this task's entities.
    pub task_id: Option<TaskId>,
    /// Only entities with one of these statuses (empty = any).
    pub statuses: Vec<EntityStatus>,
    /// Name, email or URL contains this (case-insensitive).
    pub search: Option<String>,
    /// Only entities carrying this tag.
    pub tag_id: Option<TagId>,
    /// Only active (or only inactive) entities.
    pub active: Option<bool>,
    /// Page size (default and maximum [`MAX_PAGE`]).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: u32,
}

const COLS: &str = "e.id, e.account_id, e.task_id, e.kind, e.external_id, e.name, e.email_or_url, e.entity_type, \
    e.properties, e.status, e.active, e.last_backup_at, e.backup_size_bytes, e.last_outcome, e.deleted_in_tenant_at, \
    e.deletion_requested_at, e.created_at, e.updated_at";

fn entity_from_row(r: &AnyRow) -> Result<Entity> {
    Ok(Entity {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        task_id: r.parse("task_id")?,
        kind: r.parse("kind")?,
        external_id: r.text("external_id")?,
        name: r.text("name")?,
        email_or_url: r.opt_text("email_or_url")?,
        entity_type: r.parse("entity_type")?,
        properties: r.json("properties")?,
        status: r.parse("status")?,
        active: r.bool("active")?,
        last_backup_at: r.opt_time("last_backup_at")?,
        backup_size_bytes: r.uint("backup_size_bytes")?,
        last_outcome: r.opt_parse("last_outcome")?,
        deleted_in_tenant_at: r.opt_time("deleted_in_tenant_at")?,
        deletion_requested_at: r.opt_time("deletion_requested_at")?,
        tags: Vec::new(),
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

fn properties_json(v: &serde_json::Value) -> Result<String> {
    match v {
        serde_json::Value::Null => Ok("{}".into()),
        serde_json::Value::Object(_) => to_json(v),
        _ => Err(Error::InvalidInput(
            "entity properties must be a JSON object".into(),
        )),
    }
}

impl Catalog {
    /// Record what discovery found: insert new entities (status Not active,
    /// or Scheduled and active when `activate_new`), update name, address,
    /// type and properties of known ones. Status and history are kept.
    /// Returns the entities in input order.
    pub async fn upsert_entities(
        &self,
        account: AccountId,
        task: TaskId,
        found: &[DiscoveredEntity],
        activate_new: bool,
    ) -> Result<Vec<Entity>> {
        // Validate everything before writing anything.
        let mut prepared = Vec::with_capacity(found.len());
        for d in found {
            prepared.push((
                non_empty("external id", &d.external_id)?,
                non_empty("entity name", &d.name)?,
                properties_json(&d.properties)?,
            ));
        }
        // Fails with NotFound for another account's task (scoping).
        self.get_task(account, task).await?;
        let now = micros(self.now());
        let (status, active) = if activate_new {
            (EntityStatus::Scheduled, 1i64)
        } else {
            (EntityStatus::NotActive, 0i64)
        };
        let mut tx = self.begin_write().await?;
        for (d, (external_id, name, props)) in found.iter().zip(&prepared) {
            q(
                "INSERT INTO entities (id, account_id, task_id, kind, external_id, name, email_or_url, entity_type, properties, \
                 status, active, last_backup_at, backup_size_bytes, last_outcome, deleted_in_tenant_at, deletion_requested_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, 0, NULL, NULL, NULL, $12, $12) \
                 ON CONFLICT (task_id, external_id) DO UPDATE SET kind = $4, name = $6, email_or_url = $7, entity_type = $8, \
                 properties = $9, updated_at = $12",
                args![
                    EntityId::random().to_string(),
                    account.to_string(),
                    task.to_string(),
                    d.kind.as_str(),
                    external_id.clone(),
                    name.clone(),
                    d.email_or_url.clone(),
                    d.entity_type.as_str(),
                    props.clone(),
                    status.as_str(),
                    active,
                    now
                ],
            )
            .query()
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let mut out = Vec::with_capacity(found.len());
        for (external_id, _, _) in &prepared {
            out.push(
                self.get_entity_by_external_id(account, task, external_id)
                    .await?,
            );
        }
        Ok(out)
    }

    /// An entity of the account, with its tags.
    pub async fn get_entity(&self, account: AccountId, id: EntityId) -> Result<Entity> {
        let row = q(
            &format!("SELECT {COLS} FROM entities e WHERE e.account_id = $1 AND e.id = $2"),
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("entity"))?;
        let mut es = vec![entity_from_row(&row)?];
        self.attach_tags(account, &mut es).await?;
        es.pop().ok_or(Error::NotFound("entity"))
    }

    /// An entity by its Graph id within a task.
    pub async fn get_entity_by_external_id(
        &self,
        account: AccountId,
        task: TaskId,
        external_id: &str,
    ) -> Result<Entity> {
        let row = q(
            &format!("SELECT {COLS} FROM entities e WHERE e.account_id = $1 AND e.task_id = $2 AND e.external_id = $3"),
            args![account.to_string(), task.to_string(), external_id],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("entity"))?;
        let mut es = vec![entity_from_row(&row)?];
        self.attach_tags(account, &mut es).await?;
        es.pop().ok_or(Error::NotFound("entity"))
    }

    fn entity_filter_sql(account: AccountId, f: &EntityFilter, select: &str) -> Sql {
        let mut sql = Sql::new(select);
        sql.push(" FROM entities e WHERE e.account_id = ")
            .bind(account.to_string());
        if let Some(t) = f.task_id {
            sql.push_bind(" AND e.task_id = ", t.to_string());
        }
        if !f.statuses.is_empty() {
            sql.push(" AND e.status IN ")
                .bind_list(f.statuses.iter().map(|s| s.as_str()));
        }
        if let Some(s) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let pat = like_contains(s);
            sql.push_bind(" AND (LOWER(e.name) LIKE ", pat.clone())
                .push(" ESCAPE '\\'")
                .push_bind(" OR LOWER(COALESCE(e.email_or_url, '')) LIKE ", pat)
                .push(" ESCAPE '\\')");
        }
        if let Some(tag) = f.tag_id {
            sql.push(" AND EXISTS (SELECT 1 FROM entity_tags et WHERE et.entity_id = e.id AND et.account_id = ")
                .bind(account.to_string())
                .push_bind(" AND et.tag_id = ", tag.to_string())
                .push(")");
        }
        if let Some(a) = f.active {
            sql.push_bind(" AND e.active = ", i64::from(a));
        }
        sql
    }

    /// The account's entities matching `filter`, by name.
    pub async fn list_entities(
        &self,
        account: AccountId,
        filter: &EntityFilter,
    ) -> Result<Vec<Entity>> {
        let mut sql = Self::entity_filter_sql(account, filter, &format!("SELECT {COLS}"));
        let limit = filter.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE);
        sql.push(" ORDER BY e.name, e.id LIMIT ")
            .bind(i64::from(limit))
            .push(" OFFSET ")
            .bind(i64::from(filter.offset));
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut es = rows
            .iter()
            .map(entity_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.attach_tags(account, &mut es).await?;
        Ok(es)
    }

    /// How many entities match `filter` (ignoring limit/offset).
    pub async fn count_entities(&self, account: AccountId, filter: &EntityFilter) -> Result<u64> {
        let sql = Self::entity_filter_sql(account, filter, "SELECT COUNT(*) AS n");
        let row = sql.query().fetch_one(&self.pool).await?;
        row.uint("n")
    }

    async fn attach_tags(&self, account: AccountId, es: &mut [Entity]) -> Result<()> {
        if es.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new(
            "SELECT et.entity_id, t.id, t.name, t.created_at FROM entity_tags et JOIN tags t ON t.id = et.tag_id AND t.account_id = et.account_id \
             WHERE et.account_id = ",
        );
        sql.bind(account.to_string());
        sql.push(" AND et.entity_id IN ")
            .bind_list(es.iter().map(|e| e.id.to_string()));
        sql.push(" ORDER BY t.name");
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut by_entity: HashMap<EntityId, Vec<Tag>> = HashMap::new();
        for r in &rows {
            by_entity
                .entry(r.parse("entity_id")?)
                .or_default()
                .push(Tag {
                    id: r.parse("id")?,
                    account_id: account,
                    name: r.text("name")?,
                    created_at: r.time("created_at")?,
                });
        }
        for e in es {
            e.tags = by_entity.remove(&e.id).unwrap_or_default();
        }
        Ok(())
    }

    async fn update_entities(
        &self,
        account: AccountId,
        ids: &[EntityId],
        set: &str,
        values: Vec<crate::db::Arg>,
        extra_where: &str,
    ) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        // `set` uses $1..$n for `values`; the binds below continue from n+1.
        let mut sql = q(&format!("UPDATE entities SET {set}"), values);
        sql.push_bind(", updated_at = ", micros(self.now()))
            .push_bind(" WHERE account_id = ", account.to_string())
            .push(" AND id IN ")
            .bind_list(ids.iter().map(|i| i.to_string()))
            .push(extra_where);
        let done = sql.query().execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    /// Activate entities (F-C3): they become protected and Scheduled.
    /// Archived entities are left alone. Returns how many changed.
    pub async fn activate_entities(&self, account: AccountId, ids: &[EntityId]) -> Result<u64> {
        self.update_entities(
            account,
            ids,
            "active = 1, status = 'scheduled'",
            args![],
            " AND status <> 'archived'",
        )
        .await
    }

    /// Pause entities (F-C3): no backups until activated again.
    pub async fn pause_entities(&self, account: AccountId, ids: &[EntityId]) -> Result<u64> {
        self.update_entities(
            account,
            ids,
            "status = 'paused'",
            args![],
            " AND active = 1 AND status <> 'archived'",
        )
        .await
    }

    /// Deactivate entities: no longer protected (their backups stay).
    pub async fn deactivate_entities(&self, account: AccountId, ids: &[EntityId]) -> Result<u64> {
        self.update_entities(
            account,
            ids,
            "active = 0, status = 'not_active'",
            args![],
            " AND status <> 'archived'",
        )
        .await
    }

    /// Set an entity's status (the engine: In process, Backed up in another
    /// task, ...).
    pub async fn set_entity_status(
        &self,
        account: AccountId,
        id: EntityId,
        status: EntityStatus,
    ) -> Result<Entity> {
        let n = self
            .update_entities(account, &[id], "status = $1", args![status.as_str()], "")
            .await?;
        if n == 0 {
            return Err(Error::NotFound("entity"));
        }
        self.get_entity(account, id).await
    }

    /// Record the end of an entity's backup: last backup time, outcome,
    /// stored size, and the matching status.
    pub async fn record_entity_backup(
        &self,
        account: AccountId,
        id: EntityId,
        at: DateTime<Utc>,
        outcome: RunOutcome,
        backup_size_bytes: u64,
    ) -> Result<Entity> {
        let status = match outcome {
            RunOutcome::Success => EntityStatus::Success,
            RunOutcome::Partial => EntityStatus::Partial,
            RunOutcome::Failed | RunOutcome::Cancelled => EntityStatus::Failed,
        };
        let n = self
            .update_entities(
                account,
                &[id],
                "last_backup_at = $1, last_outcome = $2, backup_size_bytes = $3, \
                 status = CASE WHEN status IN ('archived', 'paused', 'not_active') THEN status ELSE $4 END",
                args![micros(at), outcome.as_str(), u64_to_i64(backup_size_bytes, "backup size")?, status.as_str()],
                "",
            )
            .await?;
        if n == 0 {
            return Err(Error::NotFound("entity"));
        }
        self.get_entity(account, id).await
    }

    /// The entity was deleted in Microsoft 365 (F-C6): it becomes Archived;
    /// its backups are kept per the task's archived retention.
    pub async fn mark_entity_deleted_in_tenant(
        &self,
        account: AccountId,
        id: EntityId,
    ) -> Result<Entity> {
        let n = self
            .update_entities(
                account,
                &[id],
                "status = 'archived', deleted_in_tenant_at = COALESCE(deleted_in_tenant_at, $1)",
                args![micros(self.now())],
                "",
            )
            .await?;
        if n == 0 {
            return Err(Error::NotFound("entity"));
        }
        self.get_entity(account, id).await
    }

    /// Request deletion of entities' backups (F-C3, 7-day grace).
    pub async fn request_entity_deletion(
        &self,
        account: AccountId,
        ids: &[EntityId],
    ) -> Result<u64> {
        self.update_entities(
            account,
            ids,
            "deletion_requested_at = COALESCE(deletion_requested_at, $1)",
            args![micros(self.now())],
            "",
        )
        .await
    }

    /// Cancel a pending deletion.
    pub async fn cancel_entity_deletion(
        &self,
        account: AccountId,
        ids: &[EntityId],
    ) -> Result<u64> {
        self.update_entities(account, ids, "deletion_requested_at = NULL", args![], "")
            .await
    }

    /// Settles which task protects an entity two tasks cover (SPEC F-C2
    /// "Backed up in another task"): the same Microsoft 365 object (same
    /// kind and Graph id, through a connection to the same tenant), or a
    /// group-connected site whose group a Teams & Groups task protects.
    /// Active entities of `task` covered by another task's protected entity
    /// become Backed up in another task; those no longer covered become
    /// Scheduled again. Returns (now covered elsewhere, released).
    pub async fn refresh_coverage(&self, account: AccountId, task: TaskId) -> Result<(u64, u64)> {
        let me = self.get_task(account, task).await?;
        // One connection per tenant and account (a UNIQUE constraint), so
        // "the same tenant" is "the same connection".
        let others: Vec<TaskId> = self
            .list_tasks(account, None)
            .await?
            .into_iter()
            .filter(|t| {
                t.id != task
                    && t.connection_id == me.connection_id
                    && t.deletion_requested_at.is_none()
            })
            .map(|t| t.id)
            .collect();
        // The other task's entity must itself be protected (not paused,
        // archived, pending deletion or covered in turn), so coverage never
        // chains: the first task to protect an object keeps it.
        let mut protected_elsewhere: std::collections::HashSet<(EntityKind, String)> =
            Default::default();
        for other in others {
            let mut sql = Sql::new(&format!(
                "SELECT {COLS} FROM entities e WHERE e.account_id = "
            ));
            sql.bind(account.to_string());
            sql.push_bind(" AND e.task_id = ", other.to_string());
            sql.push(
                " AND e.active = 1 AND e.deletion_requested_at IS NULL \
                 AND e.status NOT IN ('paused', 'archived', 'not_active', 'backed_up_in_another_task')",
            );
            for r in sql.query().fetch_all(&self.pool).await? {
                let e = entity_from_row(&r)?;
                protected_elsewhere.insert((e.kind, e.external_id));
            }
        }
        let mut sql = Sql::new(&format!(
            "SELECT {COLS} FROM entities e WHERE e.account_id = "
        ));
        sql.bind(account.to_string());
        sql.push_bind(" AND e.task_id = ", task.to_string());
        sql.push(" AND e.active = 1");
        let mine = sql
            .query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(entity_from_row)
            .collect::<Result<Vec<_>>>()?;
        let covered_elsewhere = |e: &Entity| {
            protected_elsewhere.contains(&(e.kind, e.external_id.clone()))
                || (e.kind == EntityKind::Site
                    && e.properties
                        .get("groupId")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|g| {
                            protected_elsewhere.contains(&(EntityKind::Group, g.to_string()))
                                || protected_elsewhere.contains(&(EntityKind::Team, g.to_string()))
                        }))
        };
        let mut now_covered = Vec::new();
        let mut released = Vec::new();
        for e in &mine {
            let covered = covered_elsewhere(e);
            match e.status {
                EntityStatus::Scheduled
                | EntityStatus::Success
                | EntityStatus::Partial
                | EntityStatus::Failed
                    if covered =>
                {
                    now_covered.push(e.id)
                }
                EntityStatus::BackedUpInAnotherTask if !covered => released.push(e.id),
                _ => {}
            }
        }
        let a = self
            .update_entities(
                account,
                &now_covered,
                "status = 'backed_up_in_another_task'",
                args![],
                "",
            )
            .await?;
        let b = self
            .update_entities(account, &released, "status = 'scheduled'", args![], "")
            .await?;
        Ok((a, b))
    }

    /// Remove an entity from the catalog with its runs, tags and rule
    /// matches (after its backups were purged from the vault). Jobs and the
    /// activity log keep their history.
    pub async fn delete_entity(&self, account: AccountId, id: EntityId) -> Result<()> {
        let done = q(
            "DELETE FROM entities WHERE account_id = $1 AND id = $2",
            args![account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("entity"));
        }
        Ok(())
    }

    /// [`Catalog::refresh_coverage`] for every task on the same tenant as
    /// `task`, the task itself first: activating or pausing an entity in one
    /// task can cover or release its twin in another. Returns how many
    /// entities changed status.
    pub async fn refresh_tenant_coverage(&self, account: AccountId, task: TaskId) -> Result<u64> {
        let me = self.get_task(account, task).await?;
        let mut changed = 0;
        let (a, b) = self.refresh_coverage(account, task).await?;
        changed += a + b;
        for t in self.list_tasks(account, None).await? {
            if t.id != task && t.connection_id == me.connection_id {
                let (a, b) = self.refresh_coverage(account, t.id).await?;
                changed += a + b;
            }
        }
        Ok(changed)
    }
}
