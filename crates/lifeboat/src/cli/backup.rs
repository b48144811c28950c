//! `lifeboat backup run`, `snapshot list`, `run list`, `worker`.

use anyhow::{Result, bail};
use clap::Subcommand;
use std::io::IsTerminal;
use std::time::Duration;

use catalog::{JobStatus, RunOutcome};
use serde_json::json;
use worker::{BackupSummary, Scheduler, Worker};

use super::Ctx;

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Back up a task's active entities (or the named ones) now.
    Run {
        /// The task.
        #[arg(long)]
        task: String,
        /// Only these entities (by address); repeatable.
        #[arg(long = "entity")]
        entities: Vec<String>,
        /// Run a worker in this process until every job finished.
        #[arg(long)]
        wait: bool,
        /// Print a JSON summary (with --wait) or the job ids.
        #[arg(long)]
        json: bool,
        /// Jobs run at once by the in-process worker.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
}

#[derive(Subcommand)]
pub enum SnapshotCmd {
    /// List the snapshots of an entity.
    List {
        /// The task.
        #[arg(long)]
        task: String,
        /// The entity's address.
        #[arg(long)]
        entity: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum RunCmd {
    /// List backup runs (one per entity and sub-service and backup).
    List {
        /// The task.
        #[arg(long)]
        task: String,
        /// Only this entity (by address).
        #[arg(long)]
        entity: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub async fn run_worker(ctx: &Ctx, concurrency: usize, with_scheduler: bool) -> Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let sched = with_scheduler.then(|| {
        tokio::spawn(
            Scheduler::new(ctx.rt.clone()).run(Duration::from_secs(60), stopped(rx.clone())),
        )
    });
    let w = Worker::new(ctx.rt.clone());
    eprintln!(
        "worker {} running (concurrency {concurrency}); ctrl-c or SIGTERM stops it",
        w.id()
    );
    let job = tokio::spawn(w.run(concurrency, stopped(rx)));
    shutdown_signal().await;
    eprintln!("stopping: running jobs go back to the queue");
    let _ = tx.send(true);
    let _ = job.await;
    if let Some(s) = sched {
        let _ = s.await;
    }
    Ok(())
}

pub async fn run_backup(ctx: &Ctx, cmd: BackupCmd) -> Result<()> {
    let BackupCmd::Run {
        task,
        entities,
        wait,
        json,
        concurrency,
    } = cmd;
    let task = ctx.task(&task).await?;
    let only = if entities.is_empty() {
        None
    } else {
        Some(
            ctx.entities_by_email(&task, &entities)
                .await?
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
        )
    };
    let enq = worker::enqueue_backups(&ctx.rt, &task, only.as_deref(), "cli", None).await?;
    if enq.jobs.is_empty() {
        bail!(
            "task {} has no active entities; activate some with `lifeboat entity activate`",
            task.id
        );
    }
    let ids: Vec<_> = enq.jobs.iter().map(|j| j.id).collect();
    if !wait {
        if json {
            println!("{}", serde_json::to_string_pretty(&json!({ "jobs": ids }))?);
        } else {
            for id in &ids {
                println!("{id}");
            }
        }
        return Ok(());
    }
    let jobs = run_jobs_until_done(ctx, &ids, concurrency, "mailboxes").await?;
    let mut any_failed = false;
    let mut out = Vec::new();
    for j in &jobs {
        let summary: Option<BackupSummary> = j
            .result
            .as_ref()
            .and_then(|r| serde_json::from_value(r.clone()).ok());
        let failed = j.status != JobStatus::Succeeded
            || summary
                .as_ref()
                .is_some_and(|s| matches!(s.outcome, RunOutcome::Failed | RunOutcome::Cancelled));
        any_failed |= failed;
        out.push(json!({
            "job_id": j.id,
            "job_status": j.status,
            "entity_id": j.entity_id,
            "error": j.error,
            "summary": summary,
        }));
        if !json {
            match &summary {
                Some(s) => {
                    let items: u64 = s
                        .parts
                        .iter()
                        .map(|p| p.counts.new + p.counts.changed)
                        .sum();
                    println!(
                        "{:<40}  {:<9}  snapshot {}  {} new/changed items{}",
                        s.email.as_deref().unwrap_or(&s.name),
                        s.outcome,
                        s.snapshot_id.as_deref().unwrap_or("-"),
                        items,
                        s.note
                            .as_deref()
                            .map(|n| format!("  ({n})"))
                            .unwrap_or_default()
                    );
                }
                None => println!(
                    "{:<40}  {:<9}  {}",
                    j.title.as_deref().unwrap_or("backup"),
                    j.status,
                    j.error.as_deref().unwrap_or("")
                ),
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "entities": out }))?
        );
    }
    if any_failed {
        bail!("some backups failed");
    }
    Ok(())
}

/// Runs a worker in this process until every job in `ids` has finished,
/// with a progress bar on a terminal: over the jobs when there are several
/// (`unit` names them), over the items of the one job otherwise.
pub(super) async fn run_jobs_until_done(
    ctx: &Ctx,
    ids: &[catalog::JobId],
    concurrency: usize,
    unit: &str,
) -> Result<Vec<catalog::Job>> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let w = Worker::new(ctx.rt.clone());
    let mut stop = rx.clone();
    let handle = tokio::spawn(w.run(concurrency, async move {
        let _ = stop.wait_for(|v| *v).await;
    }));
    drop(rx);
    let single = ids.len() == 1;
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(ids.len() as u64);
        let template = if single {
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} items  {msg}".to_string()
        } else {
            format!("{{spinner}} {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}  {{msg}}")
        };
        b.set_style(
            indicatif::ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        b
    });
    let jobs = loop {
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            jobs.push(ctx.rt.catalog.get_job(ctx.account, *id).await?);
        }
        let finished = jobs
            .iter()
            .filter(|j| {
                matches!(
                    j.status,
                    JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
                )
            })
            .count();
        if let Some(b) = &bar {
            if single {
                let p = &jobs[0].progress;
                b.set_length(p.total_items.unwrap_or(0).max(p.done_items));
                b.set_position(p.done_items);
                b.set_message(p.message.clone().unwrap_or_default());
            } else {
                let items: u64 = jobs.iter().map(|j| j.progress.done_items).sum();
                b.set_position(finished as u64);
                b.set_message(format!("{items} items"));
            }
        }
        if finished == jobs.len() {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let _ = tx.send(true);
    let _ = handle.await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(jobs)
}

pub async fn run_snapshot(ctx: &Ctx, cmd: SnapshotCmd) -> Result<()> {
    let SnapshotCmd::List { task, entity, json } = cmd;
    let task = ctx.task(&task).await?;
    let entity = ctx
        .entities_by_email(&task, std::slice::from_ref(&entity))
        .await?
        .remove(0);
    let vault = ctx.rt.vault_account(ctx.account).await?;
    let id = entity.id.to_string();
    let mut snaps: Vec<_> = vault
        .snapshots()
        .await?
        .into_iter()
        .filter(|s| s.meta.get("entity_id").and_then(|v| v.as_str()) == Some(id.as_str()))
        .collect();
    snaps.sort_by_key(|s| s.time);
    if json {
        let out: Vec<_> = snaps
            .iter()
            .map(|s| {
                json!({
                    "id": s.id, "time": s.time, "parent": s.parent,
                    "parts": s.meta.get("parts"), "stats": s.stats,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{:<32}  {:<23}  {:>10}  parent", "id", "time", "items");
        for s in snaps {
            println!(
                "{:<32}  {:<23}  {:>10}  {}",
                s.id,
                s.time.format("%Y-%m-%d %H:%M:%S UTC"),
                s.stats.items,
                s.parent
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    Ok(())
}

pub async fn run_runs(ctx: &Ctx, cmd: RunCmd) -> Result<()> {
    let RunCmd::List { task, entity, json } = cmd;
    let task = ctx.task(&task).await?;
    let entities = match entity {
        Some(e) => ctx.entities_by_email(&task, &[e]).await?,
        None => worker::task_entities(&ctx.rt, ctx.account, task.id).await?,
    };
    let from = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let to = ctx.rt.catalog.now() + chrono::Duration::days(1);
    let mut runs = Vec::new();
    for e in &entities {
        runs.extend(
            ctx.rt
                .catalog
                .runs_for_entity(ctx.account, e.id, from, to)
                .await?,
        );
    }
    runs.sort_by_key(|r| r.started_at);
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        println!(
            "{:<23}  {:<36}  {:<9}  {:<9}  {:>6} {:>6} {:>6} {:>6}  snapshot",
            "started", "entity", "part", "outcome", "new", "chg", "del", "fail"
        );
        for r in runs {
            let c = r.counts;
            println!(
                "{:<23}  {:<36}  {:<9}  {:<9}  {:>6} {:>6} {:>6} {:>6}  {}",
                r.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
                r.entity_id,
                r.sub_service,
                r.outcome
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "running".into()),
                c.items_new,
                c.items_changed,
                c.items_deleted,
                c.items_failed,
                r.snapshot_id.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}
