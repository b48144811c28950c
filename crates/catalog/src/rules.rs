//! Activation rules (F-C5): stored definitions only; evaluating them is the
//! engine's job.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::db::{Catalog, RowExt, Sql, args, micros, q, to_json};
use crate::error::{Error, Result};
use crate::types::{AccountId, RuleId, TaskId, str_enum};

str_enum! {
    /// What a rule matches on.
    RuleKind {
        /// A directory property with chosen values.
        Property = "property",
        /// Membership of a Microsoft 365 group.
        Group = "group",
        /// A SharePoint URL pattern.
        Url = "url",
        /// An imported CSV of account emails.
        Csv = "csv",
    }

    /// Whether a rule runs once or is re-evaluated daily.
    RuleMode {
        /// Applied once.
        Once = "once",
        /// Re-evaluated every day.
        Recurring = "recurring",
    }

    /// What happens to an entity that stops matching a recurring rule.
    Deactivation {
        /// Stays protected.
        Keep = "keep",
        /// Protection paused.
        Pause = "pause",
        /// Its backups are deleted (with the usual grace period).
        Delete = "delete",
    }

    /// How a URL rule compares.
    UrlMatch {
        /// The URL begins with the value.
        BeginsWith = "begins_with",
        /// The URL ends with the value.
        EndsWith = "ends_with",
        /// The URL contains the value.
        Contains = "contains",
    }
}

/// What a rule selects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RuleDefinition {
    /// Entities whose directory property has one of the values.
    Property {
        /// Property name (department, city, ...).
        property: String,
        /// Accepted values.
        values: Vec<String>,
    },
    /// Members of a group.
    Group {
        /// Graph id of the group.
        group_id: String,
        /// Its display name (for the UI).
        #[serde(default)]
        group_name: String,
    },
    /// Sites whose URL matches.
    Url {
        /// How to compare.
        #[serde(rename = "match")]
        match_: UrlMatch,
        /// The text to compare with.
        value: String,
    },
    /// Accounts listed in an imported CSV.
    Csv {
        /// The "Account Email" values.
        emails: Vec<String>,
    },
}

impl RuleDefinition {
    /// The kind of this definition.
    pub fn kind(&self) -> RuleKind {
        match self {
            RuleDefinition::Property { .. } => RuleKind::Property,
            RuleDefinition::Group { .. } => RuleKind::Group,
            RuleDefinition::Url { .. } => RuleKind::Url,
            RuleDefinition::Csv { .. } => RuleKind::Csv,
        }
    }
}

/// An activation rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationRule {
    /// Id.
    pub id: RuleId,
    /// Owning account.
    pub account_id: AccountId,
    /// The task whose entities it activates.
    pub task_id: TaskId,
    /// What it matches.
    pub definition: RuleDefinition,
    /// Once or recurring.
    pub mode: RuleMode,
    /// What happens to entities that stop matching.
    pub deactivation: Deactivation,
    /// When it was last evaluated.
    pub last_evaluated_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// What is needed to create a rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewRule {
    /// The task.
    pub task_id: TaskId,
    /// What it matches.
    pub definition: RuleDefinition,
    /// Once or recurring.
    pub mode: RuleMode,
    /// On leaving: keep, pause or delete.
    pub deactivation: Deactivation,
}

const COLS: &str = "id, account_id, task_id, kind, definition, mode, deactivation, last_evaluated_at, created_at, updated_at";

fn rule_from_row(r: &AnyRow) -> Result<ActivationRule> {
    let kind: RuleKind = r.parse("kind")?;
    let definition: RuleDefinition = r.json("definition")?;
    if definition.kind() != kind {
        return Err(Error::Corrupt(format!(
            "rule kind {kind} does not match its definition"
        )));
    }
    Ok(ActivationRule {
        id: r.parse("id")?,
        account_id: r.parse("account_id")?,
        task_id: r.parse("task_id")?,
        definition,
        mode: r.parse("mode")?,
        deactivation: r.parse("deactivation")?,
        last_evaluated_at: r.opt_time("last_evaluated_at")?,
        created_at: r.time("created_at")?,
        updated_at: r.time("updated_at")?,
    })
}

impl Catalog {
    /// Create a rule on one of the account's tasks.
    pub async fn create_rule(&self, account: AccountId, new: NewRule) -> Result<ActivationRule> {
        let now = self.now();
        let r = ActivationRule {
            id: RuleId::random(),
            account_id: account,
            task_id: new.task_id,
            definition: new.definition,
            mode: new.mode,
            deactivation: new.deactivation,
            last_evaluated_at: None,
            created_at: now,
            updated_at: now,
        };
        q(
            &format!("INSERT INTO activation_rules ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $8)"),
            args![
                r.id.to_string(),
                account.to_string(),
                r.task_id.to_string(),
                r.definition.kind().as_str(),
                to_json(&r.definition)?,
                r.mode.as_str(),
                r.deactivation.as_str(),
                micros(now)
            ],
        )
        .query()
        .execute(&self.pool)
        .await
        .map_err(|e| match Error::from(e) {
            Error::NotFound(_) => Error::NotFound("task"),
            other => other,
        })?;
        Ok(r)
    }

    /// A rule of the account.
    pub async fn get_rule(&self, account: AccountId, id: RuleId) -> Result<ActivationRule> {
        let row = q(
            &format!("SELECT {COLS} FROM activation_rules WHERE account_id = $1 AND id = $2"),
            args![account.to_string(), id.to_string()],
        )
        .query()
        .fetch_optional(&self.pool)
        .await?
        .ok_or(Error::NotFound("rule"))?;
        rule_from_row(&row)
    }

    /// The account's rules (optionally of one task), oldest first.
    pub async fn list_rules(
        &self,
        account: AccountId,
        task: Option<TaskId>,
    ) -> Result<Vec<ActivationRule>> {
        let mut sql = Sql::new(&format!(
            "SELECT {COLS} FROM activation_rules WHERE account_id = "
        ));
        sql.bind(account.to_string());
        if let Some(t) = task {
            sql.push_bind(" AND task_id = ", t.to_string());
        }
        sql.push(" ORDER BY created_at, id");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(rule_from_row).collect()
    }

    /// Change a rule's definition, mode and deactivation setting.
    pub async fn update_rule(
        &self,
        account: AccountId,
        id: RuleId,
        definition: &RuleDefinition,
        mode: RuleMode,
        deactivation: Deactivation,
    ) -> Result<ActivationRule> {
        let done = q(
            "UPDATE activation_rules SET kind = $1, definition = $2, mode = $3, deactivation = $4, updated_at = $5 \
             WHERE account_id = $6 AND id = $7",
            args![
                definition.kind().as_str(),
                to_json(definition)?,
                mode.as_str(),
                deactivation.as_str(),
                micros(self.now()),
                account.to_string(),
                id.to_string()
            ],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("rule"));
        }
        self.get_rule(account, id).await
    }

    /// Note that a rule was evaluated now.
    pub async fn mark_rule_evaluated(&self, account: AccountId, id: RuleId) -> Result<()> {
        let done = q(
            "UPDATE activation_rules SET last_evaluated_at = $1 WHERE account_id = $2 AND id = $3",
            args![micros(self.now()), account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("rule"));
        }
        Ok(())
    }

    /// Delete a rule.
    pub async fn delete_rule(&self, account: AccountId, id: RuleId) -> Result<()> {
        let done = q(
            "DELETE FROM activation_rules WHERE account_id = $1 AND id = $2",
            args![account.to_string(), id.to_string()],
        )
        .query()
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("rule"));
        }
        Ok(())
    }

    /// Remember that `rule` activated these entities (or still matches them).
    pub async fn record_rule_matches(
        &self,
        account: AccountId,
        rule: RuleId,
        entities: &[crate::types::EntityId],
    ) -> Result<()> {
        let now = micros(self.now());
        let mut tx = self.begin_write().await?;
        for e in entities {
            q(
                "INSERT INTO rule_entities (account_id, rule_id, entity_id, matched_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (account_id, rule_id, entity_id) DO UPDATE SET matched_at = $4",
                args![account.to_string(), rule.to_string(), e.to_string(), now],
            )
            .query()
            .execute(&mut *tx)
            .await
            .map_err(|e| match Error::from(e) {
                Error::NotFound(_) => Error::NotFound("entity"),
                other => other,
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The entities `rule` has activated and that still matched it when it
    /// was last evaluated.
    pub async fn rule_matches(
        &self,
        account: AccountId,
        rule: RuleId,
    ) -> Result<Vec<crate::types::EntityId>> {
        let rows = q(
            "SELECT entity_id FROM rule_entities WHERE account_id = $1 AND rule_id = $2 ORDER BY entity_id",
            args![account.to_string(), rule.to_string()],
        )
        .query()
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.parse("entity_id")).collect()
    }

    /// Forget that `rule` matched these entities (they left its scope).
    pub async fn forget_rule_matches(
        &self,
        account: AccountId,
        rule: RuleId,
        entities: &[crate::types::EntityId],
    ) -> Result<()> {
        if entities.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new("DELETE FROM rule_entities WHERE account_id = ");
        sql.bind(account.to_string());
        sql.push_bind(" AND rule_id = ", rule.to_string());
        sql.push(" AND entity_id IN ")
            .bind_list(entities.iter().map(|e| e.to_string()));
        sql.query().execute(&self.pool).await?;
        Ok(())
    }
}

/// A row of an imported CSV that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvProblem {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// What was wrong, for a person.
    pub reason: String,
}

/// The "Account Email" column of an imported CSV. Every row that is not
/// used is reported with its line and why; none is silently dropped.
/// Fails only when the file has no such column or is not CSV at all.
pub fn parse_account_csv(text: &str) -> Result<(Vec<String>, Vec<CsvProblem>)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::InvalidInput(format!("the CSV cannot be read: {e}")))?
        .clone();
    let column = headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case("Account Email"))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "the CSV needs an \"Account Email\" column; its header is \"{}\"",
                headers.iter().collect::<Vec<_>>().join(",")
            ))
        })?;
    let mut emails = Vec::new();
    let mut problems = Vec::new();
    let mut seen: std::collections::HashMap<String, u64> = Default::default();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                problems.push(CsvProblem {
                    line,
                    reason: format!("not valid CSV: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(str::is_empty) {
            problems.push(CsvProblem {
                line,
                reason: "empty row".into(),
            });
            continue;
        }
        let Some(email) = record.get(column).filter(|s| !s.is_empty()) else {
            problems.push(CsvProblem {
                line,
                reason: "no Account Email on this row".into(),
            });
            continue;
        };
        if !looks_like_email(email) {
            problems.push(CsvProblem {
                line,
                reason: format!("\"{email}\" is not an email address"),
            });
            continue;
        }
        let key = email.to_ascii_lowercase();
        if let Some(first) = seen.get(&key) {
            problems.push(CsvProblem {
                line,
                reason: format!("{email} repeats line {first}"),
            });
            continue;
        }
        seen.insert(key.clone(), line);
        emails.push(key);
    }
    Ok((emails, problems))
}

fn looks_like_email(s: &str) -> bool {
    let mut parts = s.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_used_or_reported_never_dropped() {
        let text = "\u{feff}Name,Account Email\n\
                    Alice,alice@contoso.test\n\
                    Bob,  BOB@Contoso.test \n\
                    Empty,\n\
                    ,\n\
                    Carol,carol-at-contoso\n\
                    Again,Alice@contoso.test\n\
                    Dan,dan@contoso.test,extra\n";
        let (emails, problems) = parse_account_csv(text).unwrap();
        assert_eq!(
            emails,
            vec!["alice@contoso.test", "bob@contoso.test", "dan@contoso.test"]
        );
        let lines: Vec<u64> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7], "{problems:?}");
        assert!(problems[2].reason.contains("not an email"));
        assert!(problems[3].reason.contains("repeats line 2"));
        // 7 data rows: 3 used + 4 reported.
        assert_eq!(emails.len() + problems.len(), 7);
    }

    #[test]
    fn a_csv_without_the_column_is_refused_with_its_header() {
        let e = parse_account_csv("Name,Mail\nA,a@b.c\n").unwrap_err();
        assert!(e.to_string().contains("Account Email"), "{e}");
        assert!(e.to_string().contains("Name,Mail"), "{e}");
    }
}
