//! `lifeboat task ...`, `lifeboat entity ...`.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::path::PathBuf;

use catalog::{NewConnection, NewTask, Service, TaskSettings};

use super::Ctx;

#[derive(Subcommand)]
pub enum TaskCmd {
    /// Connect a tenant and create a backup task; prints the task id and
    /// discovers the mailboxes right away. The client secret is read from
    /// --client-secret-file or LIFEBOAT_CLIENT_SECRET, never from the
    /// command line (it would show in process listings).
    Create {
        /// The service: exchange, onedrive, sharepoint or teams.
        #[arg(long, default_value = "exchange")]
        service: String,
        /// Microsoft Graph base URL.
        #[arg(long, default_value = "https://graph.microsoft.com/v1.0")]
        graph_url: String,
        /// Login (token) base URL.
        #[arg(long, default_value = "https://login.microsoftonline.com")]
        login_url: String,
        /// Microsoft Entra tenant id.
        #[arg(long)]
        tenant: String,
        /// Application (client) id.
        #[arg(long)]
        client_id: String,
        /// File holding the client secret.
        #[arg(long)]
        client_secret_file: Option<PathBuf>,
        /// Task name.
        #[arg(long)]
        name: String,
        /// daily, every_3_days, weekly or three_times_a_day.
        #[arg(long, default_value = "daily")]
        frequency: String,
        /// Hour (UTC) backups start.
        #[arg(long, default_value_t = 2)]
        hour: u8,
        /// Also back up mailboxes of unlicensed users.
        #[arg(long)]
        include_unlicensed: bool,
        /// Activate newly discovered mailboxes automatically.
        #[arg(long)]
        auto_activate: bool,
    },
    /// List the account's tasks.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum EntityCmd {
    /// List the entities of a task.
    List {
        /// The task.
        #[arg(long)]
        task: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Protect entities (by address, or --all).
    Activate {
        /// The task.
        #[arg(long)]
        task: String,
        /// Every entity of the task.
        #[arg(long, conflicts_with = "emails")]
        all: bool,
        /// Addresses.
        emails: Vec<String>,
    },
    /// Pause protection of entities (by address, or --all).
    Pause {
        /// The task.
        #[arg(long)]
        task: String,
        /// Every entity of the task.
        #[arg(long, conflicts_with = "emails")]
        all: bool,
        /// Addresses.
        emails: Vec<String>,
    },
}

fn read_secret(file: Option<&PathBuf>) -> Result<String> {
    let secret = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the client secret from {}", f.display()))?,
        None => std::env::var("LIFEBOAT_CLIENT_SECRET").map_err(|_| {
            anyhow::anyhow!(
                "the client secret is needed: --client-secret-file FILE or LIFEBOAT_CLIENT_SECRET"
            )
        })?,
    };
    let secret = secret.trim().to_string();
    if secret.is_empty() {
        bail!("the client secret is empty");
    }
    Ok(secret)
}

pub fn print_discovery(s: &worker::DiscoverySummary) {
    eprintln!(
        "discovery: {} found ({} new, {} activated), {} archived",
        s.found, s.new, s.activated, s.archived
    );
    if s.backed_up_elsewhere > 0 {
        eprintln!(
            "{} entities are already backed up in another task of this tenant",
            s.backed_up_elsewhere
        );
    }
    for r in &s.rules {
        eprintln!(
            "rule {}: {} match, {} activated, {} left ({})",
            r.rule_id, r.matched, r.activated, r.left, r.on_leave
        );
    }
    if !s.notice.is_empty() {
        eprintln!("note: {}", s.notice);
    }
}

pub async fn run_task(ctx: &Ctx, cmd: TaskCmd) -> Result<()> {
    match cmd {
        TaskCmd::Create {
            service,
            graph_url,
            login_url,
            tenant,
            client_id,
            client_secret_file,
            name,
            frequency,
            hour,
            include_unlicensed,
            auto_activate,
        } => {
            let service: Service = service
                .parse()
                .map_err(|e| anyhow::anyhow!("--service: {e}"))?;
            let frequency: catalog::Frequency = frequency
                .parse()
                .map_err(|e| anyhow::anyhow!("--frequency: {e}"))?;
            if hour > 23 {
                bail!("--hour must be 0..=23");
            }
            let secret = read_secret(client_secret_file.as_ref())?;
            let conn = ctx
                .rt
                .connect(
                    ctx.account,
                    NewConnection {
                        tenant_id: tenant,
                        client_id,
                        client_secret: catalog::Secret::new(secret),
                        graph_url,
                        login_url,
                    },
                )
                .await?;
            let task = ctx
                .rt
                .catalog
                .create_task(
                    ctx.account,
                    NewTask {
                        connection_id: conn.id,
                        service,
                        name,
                        settings: TaskSettings {
                            backup_unlicensed: include_unlicensed,
                            auto_activate_new: auto_activate,
                            frequency,
                            backup_hour_utc: hour,
                            ..Default::default()
                        },
                    },
                )
                .await?;
            println!("{}", task.id);
            let s = worker::discover_task(&ctx.rt, ctx.account, task.id, None)
                .await
                .context("the task was created, but discovering its mailboxes failed (run `lifeboat discover` again)")?;
            print_discovery(&s);
            Ok(())
        }
        TaskCmd::List { json } => {
            let tasks = ctx.rt.catalog.list_tasks(ctx.account, None).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tasks)?);
            } else {
                println!(
                    "{:<36}  {:<10}  {:<8}  {:<18}  name",
                    "id", "service", "status", "schedule"
                );
                for t in tasks {
                    println!(
                        "{:<36}  {:<10}  {:<8}  {:<18}  {}",
                        t.id,
                        t.service,
                        t.status,
                        format!(
                            "{} {:02}:00 UTC",
                            t.settings.frequency, t.settings.backup_hour_utc
                        ),
                        t.name
                    );
                }
            }
            Ok(())
        }
    }
}

pub async fn run_entity(ctx: &Ctx, cmd: EntityCmd) -> Result<()> {
    match cmd {
        EntityCmd::List { task, json } => {
            let task = ctx.task(&task).await?;
            let entities = worker::task_entities(&ctx.rt, ctx.account, task.id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&entities)?);
            } else {
                println!(
                    "{:<28}  {:<40}  {:<7}  {:<12}  last backup",
                    "name", "email", "type", "status"
                );
                for e in entities {
                    println!(
                        "{:<28}  {:<40}  {:<7}  {:<12}  {}",
                        e.name,
                        e.email_or_url.as_deref().unwrap_or("-"),
                        e.entity_type,
                        e.status,
                        e.last_backup_at
                            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
            Ok(())
        }
        EntityCmd::Activate { task, all, emails } | EntityCmd::Pause { task, all, emails }
            if !all && emails.is_empty() =>
        {
            let _ = task;
            bail!("name the entities by address, or pass --all")
        }
        EntityCmd::Activate { task, all, emails } => {
            let task = ctx.task(&task).await?;
            let ids = pick(ctx, &task, all, &emails).await?;
            let n = ctx.rt.catalog.activate_entities(ctx.account, &ids).await?;
            ctx.rt
                .catalog
                .refresh_tenant_coverage(ctx.account, task.id)
                .await?;
            eprintln!("activated {n} entities");
            Ok(())
        }
        EntityCmd::Pause { task, all, emails } => {
            let task = ctx.task(&task).await?;
            let ids = pick(ctx, &task, all, &emails).await?;
            let n = ctx.rt.catalog.pause_entities(ctx.account, &ids).await?;
            ctx.rt
                .catalog
                .refresh_tenant_coverage(ctx.account, task.id)
                .await?;
            eprintln!("paused {n} entities");
            Ok(())
        }
    }
}

async fn pick(
    ctx: &Ctx,
    task: &catalog::Task,
    all: bool,
    emails: &[String],
) -> Result<Vec<catalog::EntityId>> {
    Ok(if all {
        worker::task_entities(&ctx.rt, ctx.account, task.id)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect()
    } else {
        ctx.entities_by_email(task, emails)
            .await?
            .into_iter()
            .map(|e| e.id)
            .collect()
    })
}
