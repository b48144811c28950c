//! Tags (F-C4): named labels on entities, unique per account.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::accounts::non_empty;
use crate::db::{Catalog, RowExt, Sql, args, micros, q};
use crate::error::{Error, Result};
use crate::types::{AccountId, EntityId, TagId};

/// A tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Id.
    pub id: TagId,
    /// Owning account.
    pub account_id: AccountId,
    /// Name (unique in the account).
    pub name: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

fn tag_from_row(r: &AnyRow) -> Result<Tag> {
    Ok(Tag {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        name: r.text("name")?,
        created_at: r.time("created_at")?,
    })
}

impl Catalog {
    /// Create a tag; a duplicate name in the account is a conflict.
    pub async fn create_tag(&self, account: AccountId, name: &str) -> Result<Tag> {
        let t = Tag {
            id: TagId::random(),
            account_id: account,
            name: non_empty("tag name", name)?,
            created_at: self.now(),
        };
        q(
            "INSERT INTO tags (id, account_id, name, created_at) VALUES ($1, $2, $3, $4)",
            args![
                t.id.to_string(),
                account.to_string(),
                t.name.clone(),
                micros(t.created_at)
            ],
        )
        .query()
        .execute(&self.pool)
        .await
        .map_err(|e| match Error::from(e) {
            Error::Conflict(_) => Error::Conflict(format!("a tag named {:?} exists", t.name)),
            Error::NotFound(_) => Error::NotFound("account"),
            other => other,
        })?;
        Ok(t)
    }

    /// The account's tags, by name.
    pub async fn list_tags(&self, account: AccountId) -> Result<Vec<Tag>> {
        let rows = q(
            "SELECT id, account_id, name, created_at FROM tags WHERE account_id = $1 ORDER BY name",
            args![account.to_string()],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tag_from_row).collect()
    }

    /// Rename a tag.
    pub async fn rename_tag(&self, account: AccountId, id: TagId, name: &str) -> Result<Tag> {
        let name = non_empty("tag name", name)?;
        let done = q(
            "UPDATE tags SET name = $1 WHERE account_id = $2 AND id = $3",
            args![name, account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("tag"));
        }
        let row = q(
            "SELECT id, account_id, name, created_at FROM tags WHERE account_id = $1 AND id = $2",
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_one(&self.pool)
        .await?;
        tag_from_row(&row)
    }

    /// Delete a tag (it disappears from every entity).
    pub async fn delete_tag(&self, account: AccountId, id: TagId) -> Result<()> {
        let done = q(
            "DELETE FROM tags WHERE account_id = $1 AND id = $2",
            args![account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("tag"));
        }
        Ok(())
    }

    /// Put a tag on the selected entities (already tagged ones are left as
    /// they are; ids of other accounts' entities are ignored). Returns how
    /// many entities got the tag.
    pub async fn apply_tag(
        &self,
        account: AccountId,
        tag: TagId,
        entities: &[EntityId],
    ) -> Result<u64> {
        self.require_tag(account, tag).await?;
        if entities.is_empty() {
            return Ok(0);
        }
        let mut sql = Sql::new(
            "INSERT INTO entity_tags (account_id, entity_id, tag_id) SELECT e.account_id, e.id, ",
        );
        sql.bind(tag.to_string())
            .push(" FROM entities e WHERE e.account_id = ")
            .bind(account.to_string())
            .push(" AND e.id IN ")
            .bind_list(entities.iter().map(|e| e.to_string()))
            .push(" ON CONFLICT DO NOTHING");
        Ok(sql.query().execute(&self.pool).await?.rows_affected())
    }

    /// Take a tag off the selected entities. Returns how many lost it.
    pub async fn remove_tag(
        &self,
        account: AccountId,
        tag: TagId,
        entities: &[EntityId],
    ) -> Result<u64> {
        self.require_tag(account, tag).await?;
        if entities.is_empty() {
            return Ok(0);
        }
        let mut sql = Sql::new("DELETE FROM entity_tags WHERE account_id = ");
        sql.bind(account.to_string())
            .push_bind(" AND tag_id = ", tag.to_string())
            .push(" AND entity_id IN ")
            .bind_list(entities.iter().map(|e| e.to_string()));
        Ok(sql.query().execute(&self.pool).await?.rows_affected())
    }

    async fn require_tag(&self, account: AccountId, tag: TagId) -> Result<()> {
        q(
            "SELECT id FROM tags WHERE account_id = $1 AND id = $2",
            args![account.to_string(), tag.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("tag"))?;
        Ok(())
    }
}
