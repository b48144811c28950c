//! Operator commands on tasks, entities, backups, runs and snapshots, and
//! the worker. Every command is scoped to one account (`--account`).

mod backup;
mod demo;
mod export;
mod recover;
mod rule;
mod store;
mod task;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::sync::Arc;

use catalog::{AccountId, Entity, Task, TaskId};
use worker::Runtime;

pub use store::StoreArgs;

/// `lifeboat task ...`
#[derive(Args)]
pub struct TaskArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    cmd: task::TaskCmd,
}

/// `lifeboat entity ...`
#[derive(Args)]
pub struct EntityArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    cmd: task::EntityCmd,
}

/// `lifeboat rule ...`
#[derive(Args)]
pub struct RuleArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    cmd: rule::RuleCmd,
}

/// `lifeboat discover --task ID`
#[derive(Args)]
pub struct DiscoverArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The task.
    #[arg(long)]
    task: String,
}

/// `lifeboat backup ...`
#[derive(Args)]
pub struct BackupArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    cmd: backup::BackupCmd,
}

/// `lifeboat snapshot ...`
#[derive(Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    cmd: backup::SnapshotCmd,
}

/// `lifeboat run ...`
#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    cmd: backup::RunCmd,
}

/// `lifeboat worker`
#[derive(Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Jobs run at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Run jobs only; no scheduler in this process.
    #[arg(long)]
    no_scheduler: bool,
}

/// The operator subcommands (flattened into the binary's command list).
#[derive(Subcommand)]
pub enum OpsCommand {
    /// Backup tasks: create, list.
    Task(TaskArgs),
    /// Entities of a task: list, activate, pause.
    Entity(EntityArgs),
    /// Activation rules of a task: create (and apply), list, delete.
    Rule(RuleArgs),
    /// Discover the entities of a task now.
    Discover(DiscoverArgs),
    /// Run backups now.
    Backup(BackupArgs),
    /// Snapshots of an entity.
    Snapshot(SnapshotArgs),
    /// Backup runs of a task or entity.
    Run(RunArgs),
    /// Restore a backup of an entity (whole, sub-services, folders or items).
    Restore(recover::RestoreArgs),
    /// Export a backup of an entity as PST, EML, iCalendar, vCard or ZIP, to a
    /// download link or your S3, Azure, Google Cloud, Box or Dropbox storage.
    Export(export::ExportArgs),
    /// List what a backup of an entity holds, or preview one item.
    Browse(recover::BrowseArgs),
    /// Search an entity's backups (keywords and filters, as of a date).
    Search(recover::SearchArgs),
    /// Run jobs and the scheduler until SIGTERM or ctrl-c.
    Worker(WorkerArgs),
    /// Run the API server (with a worker and the scheduler unless --no-worker).
    Serve(demo::ServeArgs),
    /// Try Lifeboat: a simulated 25-user tenant, the API server and a worker on
    /// embedded defaults, a demo account and Exchange task, and a first backup.
    Demo(demo::DemoArgs),
}

/// Run an operator command.
pub async fn run(cmd: OpsCommand) -> Result<()> {
    match cmd {
        OpsCommand::Task(a) => {
            let ctx = Ctx::open(&a.store).await?;
            task::run_task(&ctx, a.cmd).await
        }
        OpsCommand::Entity(a) => {
            let ctx = Ctx::open(&a.store).await?;
            task::run_entity(&ctx, a.cmd).await
        }
        OpsCommand::Rule(a) => {
            let ctx = Ctx::open(&a.store).await?;
            rule::run_rule(&ctx, a.cmd).await
        }
        OpsCommand::Discover(a) => {
            let ctx = Ctx::open(&a.store).await?;
            let task = ctx.task(&a.task).await?;
            let s = worker::discover_task(&ctx.rt, ctx.account, task.id, None).await?;
            task::print_discovery(&s);
            Ok(())
        }
        OpsCommand::Backup(a) => {
            let ctx = Ctx::open(&a.store).await?;
            backup::run_backup(&ctx, a.cmd).await
        }
        OpsCommand::Snapshot(a) => {
            let ctx = Ctx::open(&a.store).await?;
            backup::run_snapshot(&ctx, a.cmd).await
        }
        OpsCommand::Run(a) => {
            let ctx = Ctx::open(&a.store).await?;
            backup::run_runs(&ctx, a.cmd).await
        }
        OpsCommand::Restore(a) => recover::run_restore(a).await,
        OpsCommand::Export(a) => export::run_export(a).await,
        OpsCommand::Browse(a) => recover::run_browse(a).await,
        OpsCommand::Search(a) => recover::run_search(a).await,
        OpsCommand::Serve(a) => demo::run_serve(a).await,
        OpsCommand::Demo(a) => demo::run_demo(a).await,
        OpsCommand::Worker(a) => {
            let ctx = Ctx::open(&a.store).await?;
            backup::run_worker(&ctx, a.concurrency, !a.no_scheduler).await
        }
    }
}

/// An opened runtime and the account commands are scoped to.
pub struct Ctx {
    pub rt: Arc<Runtime>,
    pub account: AccountId,
    pub account_name: String,
}

impl Ctx {
    async fn open(store: &StoreArgs) -> Result<Ctx> {
        let rt = store.open().await?;
        let account = rt
            .account_by_name(&store.account)
            .await
            .context("opening the account")?;
        Ok(Ctx {
            rt,
            account,
            account_name: store.account.clone(),
        })
    }

    /// A task of the account, by id.
    pub async fn task(&self, id: &str) -> Result<Task> {
        let tid: TaskId = id
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("'{id}' is not a task id"))?;
        match self.rt.catalog.get_task(self.account, tid).await {
            Ok(t) => Ok(t),
            Err(catalog::Error::NotFound(_)) => {
                bail!("task {id} not found in account '{}'", self.account_name)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Entities of a task by email (case-insensitive); every email must match.
    pub async fn entities_by_email(&self, task: &Task, emails: &[String]) -> Result<Vec<Entity>> {
        let all = worker::task_entities(&self.rt, self.account, task.id).await?;
        let mut out = Vec::new();
        for email in emails {
            let found = all.iter().find(|e| {
                e.email_or_url
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(email.trim()))
            });
            match found {
                Some(e) => out.push(e.clone()),
                None => bail!("no entity with the address '{email}' in task {}", task.id),
            }
        }
        Ok(out)
    }
}
