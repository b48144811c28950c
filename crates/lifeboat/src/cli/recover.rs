//! `lifeboat restore`: restore a backup of an entity, whole or in part, into
//! it or another entity, with a restore type (SPEC F-E4..F-E6).

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;
use serde_json::json;

use catalog::{Entity, JobStatus, Task};
use engine::restore::{RestoreMode, RestoreOptions, Selection};
use worker::{RestoreDestination, RestoreRequest, RestoreSummary};

use super::{Ctx, StoreArgs};

/// Which backup of which entity, and what of it (restore and export).
#[derive(Args)]
pub struct SourceArgs {
    /// The task.
    #[arg(long)]
    pub task: String,
    /// The entity whose backup is used (address or site URL).
    #[arg(long)]
    pub entity: String,
    /// The backup (snapshot id, as `lifeboat snapshot list` shows).
    #[arg(long, conflicts_with = "at")]
    pub snapshot: Option<String>,
    /// The newest backup taken at or before this time (RFC 3339, or a date
    /// meaning the end of that day, UTC).
    #[arg(long)]
    pub at: Option<String>,
    /// These sub-services whole (mail, contacts, calendar, tasks, drive,
    /// site, channels, conversations, metadata); repeatable.
    #[arg(long = "sub-service")]
    pub sub_services: Vec<String>,
    /// This folder (snapshot path, as `lifeboat browse` shows); repeatable.
    #[arg(long = "folder")]
    pub folders: Vec<String>,
    /// This item (snapshot path, as `lifeboat browse` and `search` show);
    /// repeatable.
    #[arg(long = "item")]
    pub items: Vec<String>,
}

impl SourceArgs {
    /// The task and entity named.
    pub async fn resolve(&self, ctx: &Ctx) -> Result<(Task, Entity)> {
        let task = ctx.task(&self.task).await?;
        let entity = ctx
            .entities_by_email(&task, std::slice::from_ref(&self.entity))
            .await?
            .remove(0);
        Ok((task, entity))
    }

    /// What was chosen.
    pub fn selection(&self) -> Result<Selection> {
        let sub_services = self
            .sub_services
            .iter()
            .map(|s| {
                serde_json::from_value::<engine::SubService>(json!(s))
                    .map_err(|_| anyhow::anyhow!("unknown sub-service '{s}'"))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Selection {
            sub_services,
            folders: self.folders.clone(),
            items: self.items.clone(),
        })
    }

    /// `--at`, parsed.
    pub fn at(&self) -> Result<Option<DateTime<Utc>>> {
        self.at.as_deref().map(parse_at).transpose()
    }
}

/// `lifeboat restore ...`
#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    source: SourceArgs,
    /// Restore into this entity of the account instead (address or URL).
    #[arg(long, conflicts_with = "to_id")]
    to: Option<String>,
    /// Restore into the object with this Microsoft 365 id (a re-created
    /// user or site) through the task's connection.
    #[arg(long)]
    to_id: Option<String>,
    /// non-destructive, replace, bypass or duplicate (drives and sites).
    #[arg(long)]
    mode: RestoreMode,
    /// Exchange: add this category to restored items.
    #[arg(long)]
    tag: Option<String>,
    /// Exchange: mark created folders and calendars as restored.
    #[arg(long)]
    mark_restored: bool,
    /// Back the destination up before restoring into it.
    #[arg(long)]
    snapshot_destination: bool,
    /// Drives: restore earlier versions of files too, in order.
    #[arg(long)]
    versions: bool,
    /// Run a worker in this process until the restore finished.
    #[arg(long)]
    wait: bool,
    /// Print a JSON summary (with --wait) or the job id.
    #[arg(long)]
    json: bool,
}

/// `lifeboat restore`.
pub async fn run_restore(a: RestoreArgs) -> Result<()> {
    let ctx = Ctx::open(&a.store).await?;
    let (task, entity) = a.source.resolve(&ctx).await?;
    let destination = match (&a.to, &a.to_id) {
        (Some(to), _) => Some(RestoreDestination::Entity {
            entity_id: find_destination(&ctx, &task, &entity, to).await?.id,
        }),
        (None, Some(id)) => Some(RestoreDestination::External {
            connection_id: task.connection_id,
            external_id: id.clone(),
        }),
        (None, None) => None,
    };
    let mut options = RestoreOptions::new(a.mode);
    options.tag = a.tag.clone();
    options.mark_restored = a.mark_restored;
    options.include_versions = a.versions;
    let request = RestoreRequest {
        task_id: task.id,
        entity_id: entity.id,
        snapshot_id: a.source.snapshot.clone(),
        at: a.source.at()?,
        selection: a.source.selection()?,
        options,
        destination,
        snapshot_destination_first: a.snapshot_destination,
    };
    let job = worker::enqueue_restore(&ctx.rt.catalog, ctx.account, &request, Some("cli".into()))
        .await
        .context("queueing the restore")?;
    if !a.wait {
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({ "job": job.id }))?
            );
        } else {
            println!("{}", job.id);
        }
        return Ok(());
    }
    let job = super::backup::run_jobs_until_done(&ctx, &[job.id], 1, "restores")
        .await?
        .remove(0);
    let summary: Option<RestoreSummary> = job
        .result
        .as_ref()
        .and_then(|r| serde_json::from_value(r.clone()).ok());
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "job_id": job.id,
                "job_status": job.status,
                "error": job.error,
                "summary": summary,
            }))?
        );
    } else if let Some(s) = &summary {
        let r = &s.report;
        println!(
            "{}: {} restored, {} overwritten, {} skipped, {} failed ({} bytes) from the backup of {}",
            outcome_word(s.outcome),
            r.restored,
            r.overwritten,
            r.skipped,
            r.failed,
            r.bytes,
            s.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC"),
        );
        if let Some(l) = &r.location {
            println!("restored into: {l}");
        }
        for n in &r.notes {
            println!("note: {n}");
        }
        if r.failed > 0 {
            let failed = ctx
                .rt
                .catalog
                .job_items(ctx.account, job.id, Some("failed"), 0, 20)
                .await?;
            for f in failed {
                println!("failed: {}  {}", f.name, f.detail.as_deref().unwrap_or(""));
            }
        }
    } else {
        println!(
            "{}: {}",
            job.status,
            job.error.as_deref().unwrap_or("no result")
        );
    }
    match (job.status, summary) {
        (JobStatus::Succeeded, Some(s)) if s.report.failed == 0 => Ok(()),
        (JobStatus::Succeeded, Some(s)) => bail!("{} items could not be restored", s.report.failed),
        (status, _) => bail!(
            "the restore {status}: {}",
            job.error.as_deref().unwrap_or("see the job's log")
        ),
    }
}

/// `lifeboat browse ...`
#[derive(Args)]
pub struct BrowseArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The task.
    #[arg(long)]
    task: String,
    /// The entity (address or site URL).
    #[arg(long)]
    entity: String,
    /// The backup (snapshot id); without it --at; without both the latest.
    #[arg(long, conflicts_with = "at")]
    snapshot: Option<String>,
    /// The newest backup taken at or before this time (RFC 3339 or a date).
    #[arg(long)]
    at: Option<String>,
    /// The level to list (a snapshot path from an earlier listing); none
    /// lists the sub-services.
    path: Option<String>,
    /// Items to skip.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Items to list.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Show this item's content instead of listing (needs the preview permission in the UI).
    #[arg(long)]
    preview: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// The snapshot `snapshot`/`at` name for `entity` (the latest without
/// either), checked to be the entity's.
async fn chosen_snapshot(
    ctx: &Ctx,
    entity: &Entity,
    snapshot: Option<&str>,
    at: Option<&str>,
) -> Result<(vault::Account, vault::SnapshotInfo)> {
    let catalog = &ctx.rt.catalog;
    let chosen = match (snapshot, at) {
        (Some(id), _) => catalog.entity_snapshot(ctx.account, entity.id, id).await,
        (None, Some(at)) => {
            catalog
                .snapshot_at(ctx.account, entity.id, parse_at(at)?)
                .await
        }
        (None, None) => {
            catalog
                .snapshot_at(ctx.account, entity.id, catalog.now())
                .await
        }
    }
    .with_context(|| format!("finding the backup of {}", entity.name))?;
    let vault = ctx.rt.vault_account(ctx.account).await?;
    let snap = vault.snapshot(&chosen.snapshot_id.parse()?).await?;
    Ok((vault, snap))
}

/// `lifeboat browse`.
pub async fn run_browse(a: BrowseArgs) -> Result<()> {
    let ctx = Ctx::open(&a.store).await?;
    let task = ctx.task(&a.task).await?;
    let entity = ctx
        .entities_by_email(&task, std::slice::from_ref(&a.entity))
        .await?
        .remove(0);
    let (vault, snap) =
        chosen_snapshot(&ctx, &entity, a.snapshot.as_deref(), a.at.as_deref()).await?;
    let path = a.path.clone().unwrap_or_default();
    if a.preview {
        let p = engine::browse::preview(&vault, &snap, &path).await?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&p)?);
        } else {
            println!("{}", p.title);
            for (k, v) in &p.fields {
                println!("{k}: {}", plain(v));
            }
            for att in &p.attachments {
                println!("attachment: {} ({} bytes)", att.name, att.size);
            }
            if let Some(t) = &p.text {
                println!("\n{t}");
            }
        }
        return Ok(());
    }
    let page = engine::browse::Page {
        offset: a.offset,
        limit: a.limit,
    };
    let listing = engine::browse::browse(&vault, &snap, &path, page).await?;
    if a.json {
        let mut v = serde_json::to_value(&listing)?;
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("snapshotId".into(), json!(snap.id.0.to_string()));
            m.insert("snapshotTime".into(), json!(snap.time));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} — backup of {}",
        listing.title,
        snap.time.format("%Y-%m-%d %H:%M:%S UTC")
    );
    for c in &listing.cards {
        println!(
            "[{}] {:>8} items  {}  {}",
            c.title,
            c.items,
            plain(&c.outcome),
            c.path
        );
    }
    for f in &listing.folders {
        let n = f
            .item_count
            .map(|n| format!("{n:>8}"))
            .unwrap_or_else(|| "        ".into());
        println!("{}/ {n}  {}", f.name, f.path);
    }
    for i in &listing.items {
        let cols: Vec<String> = i.columns.values().map(plain).collect();
        println!("{}  {}  {}", i.name, cols.join(" | "), i.path);
    }
    if listing.total_items > listing.offset + listing.items.len() as u64 {
        println!(
            "… {} more items (--offset {})",
            listing.total_items - listing.offset - listing.items.len() as u64,
            listing.offset + listing.items.len() as u64
        );
    }
    Ok(())
}

/// `lifeboat search ...`
#[derive(Args)]
pub struct SearchArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The task.
    #[arg(long)]
    task: String,
    /// The entity (address or site URL).
    #[arg(long)]
    entity: String,
    /// Keywords.
    query: Option<String>,
    /// Search the backup taken at or before this time (RFC 3339 or a date)
    /// as it was then; without it, what the latest backups hold.
    #[arg(long)]
    at: Option<String>,
    /// Mail sender.
    #[arg(long)]
    from: Option<String>,
    /// Mail recipient.
    #[arg(long)]
    to: Option<String>,
    /// Mail subject.
    #[arg(long)]
    subject: Option<String>,
    /// Contact name.
    #[arg(long)]
    name: Option<String>,
    /// File name.
    #[arg(long)]
    file_name: Option<String>,
    /// File author.
    #[arg(long)]
    author: Option<String>,
    /// Teams channel.
    #[arg(long)]
    channel: Option<String>,
    /// Message sender.
    #[arg(long)]
    sender: Option<String>,
    /// Only these kinds (mail, contact, event, task, note, file, list_item,
    /// page, channel_message, post); repeatable.
    #[arg(long = "kind")]
    kinds: Vec<String>,
    /// At most this many results.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Rebuild the account's search index from the vault first.
    #[arg(long)]
    rebuild: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `lifeboat search`.
pub async fn run_search(a: SearchArgs) -> Result<()> {
    let ctx = Ctx::open(&a.store).await?;
    let task = ctx.task(&a.task).await?;
    let entity = ctx
        .entities_by_email(&task, std::slice::from_ref(&a.entity))
        .await?
        .remove(0);
    if a.rebuild {
        let stats = worker::search::rebuild_index(&ctx.rt, ctx.account).await?;
        eprintln!(
            "index rebuilt from the vault: {} item versions",
            stats.added
        );
    }
    let as_of = match &a.at {
        Some(at) => {
            let (_, snap) = chosen_snapshot(&ctx, &entity, None, Some(at)).await?;
            search::AsOf::Time(snap.time)
        }
        None => search::AsOf::Latest,
    };
    let kinds = a
        .kinds
        .iter()
        .map(|k| search::ItemKind::parse(k).ok_or_else(|| anyhow::anyhow!("unknown kind '{k}'")))
        .collect::<Result<Vec<_>>>()?;
    let q = search::Query {
        entity_key: String::new(),
        as_of,
        keyword: a.query.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
        subject: a.subject.clone(),
        name: a.name.clone(),
        file_name: a.file_name.clone(),
        author: a.author.clone(),
        channel: a.channel.clone(),
        sender: a.sender.clone(),
        kinds,
        limit: a.limit,
        ..Default::default()
    };
    if !worker::search::has_criteria(&q) {
        bail!("give keywords or at least one filter (--from, --subject, --kind ...)");
    }
    let hits = worker::search::search_entity(&ctx.rt, ctx.account, &entity, q).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
        return Ok(());
    }
    if hits.is_empty() {
        println!("nothing found");
    }
    for h in &hits {
        println!(
            "{:<15} {:<20} {}  {}",
            h.kind.as_str(),
            h.date
                .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
            h.title,
            h.path
        );
    }
    Ok(())
}

/// A JSON value as a person reads it (strings without quotes).
fn plain(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn outcome_word(o: engine::faults::Outcome) -> &'static str {
    use engine::faults::Outcome;
    match o {
        Outcome::Success => "restored",
        Outcome::Partial => "partly restored",
        Outcome::Failed => "failed",
        Outcome::Cancelled => "cancelled",
    }
}

/// The destination entity named `to`: in the same task first, then in any
/// task of the account, of the same kind.
async fn find_destination(ctx: &Ctx, task: &Task, source: &Entity, to: &str) -> Result<Entity> {
    if let Ok(mut found) = ctx.entities_by_email(task, &[to.to_string()]).await {
        return Ok(found.remove(0));
    }
    for t in ctx
        .rt
        .catalog
        .list_tasks(ctx.account, Some(task.service))
        .await?
        .into_iter()
        .filter(|t| t.id != task.id)
    {
        if let Ok(mut found) = ctx.entities_by_email(&t, &[to.to_string()]).await {
            let e = found.remove(0);
            if e.kind == source.kind {
                return Ok(e);
            }
        }
    }
    bail!("no {} with the address '{to}' in this account", source.kind)
}

/// An `--at` value: RFC 3339, or a date meaning the end of that day (UTC).
fn parse_at(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("'{s}' is neither a date (2026-11-29) nor a time (2026-11-29T14:00:00Z)")
    })?;
    d.and_hms_opt(23, 59, 59)
        .map(|t| t.and_utc())
        .context("a date out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_accepts_times_and_dates_and_refuses_the_rest() {
        assert_eq!(
            parse_at("2026-11-29T14:00:00+01:00").unwrap().to_rfc3339(),
            "2026-11-29T13:00:00+00:00"
        );
        assert_eq!(
            parse_at("2026-11-29").unwrap().to_rfc3339(),
            "2026-11-29T23:59:59+00:00"
        );
        let e = parse_at("yesterday").unwrap_err().to_string();
        assert!(e.contains("yesterday"), "{e}");
    }
}
