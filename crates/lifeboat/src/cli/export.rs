//! `lifeboat export`: export a backup of an entity, whole or in part, as
//! PST, EML, iCalendar, vCard or ZIP, to a download link or the customer's
//! storage (SPEC F-E7).
//!
//! Credentials come from the environment, never from flags (which other
//! users of the machine can read in the process list): `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (S3); `AZURE_STORAGE_KEY` or
//! `AZURE_STORAGE_SAS_TOKEN` (Azure); `GOOGLE_APPLICATION_CREDENTIALS` (a
//! service account key file) or `GCS_BEARER_TOKEN` (Google Cloud Storage);
//! `BOX_ACCESS_TOKEN` (Box); `DROPBOX_ACCESS_TOKEN` (Dropbox).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use futures::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use catalog::JobStatus;
use destinations::{Credentials, Target};
use engine::export::{ExportFormat, ExportOptions, PstSplit};
use worker::{ExportRequest, ExportSummary};

use super::recover::SourceArgs;
use super::{Ctx, StoreArgs};

/// `lifeboat export ...`
#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    source: SourceArgs,
    /// pst, eml, ics, vcf or zip.
    #[arg(long)]
    format: ExportFormat,
    /// PST: split into parts of 5gb or 20gb.
    #[arg(long, default_value = "20gb")]
    split: PstSplit,
    /// Mailbox PST: include Recoverable Items (legal and litigation holds).
    #[arg(long)]
    legal_holds: bool,
    /// Include items deleted before this backup that earlier backups hold.
    #[arg(long)]
    deleted: bool,
    /// download, s3://bucket/prefix, az://account/container/prefix,
    /// gs://bucket/prefix, box://FOLDER_ID or dropbox:///path.
    #[arg(long, default_value = "download")]
    to: String,
    /// An S3-compatible, Azure or GCS endpoint other than the public cloud's.
    #[arg(long)]
    endpoint: Option<String>,
    /// S3: the bucket's region.
    #[arg(long)]
    region: Option<String>,
    /// Downloads: save the exported files into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run a worker in this process until the export finished.
    #[arg(long)]
    wait: bool,
    /// Print a JSON summary (with --wait) or the job id.
    #[arg(long)]
    json: bool,
}

/// `lifeboat export`.
pub async fn run_export(a: ExportArgs) -> Result<()> {
    if a.out.is_some() && !(a.wait && a.to == "download") {
        bail!("--out saves a download: use it with --to download and --wait");
    }
    let ctx = Ctx::open(&a.store).await?;
    let (task, entity) = a.source.resolve(&ctx).await?;
    let target = Target::parse(&a.to)?.with_endpoint(a.endpoint.clone(), a.region.clone())?;
    let credentials = credentials_from_env(&target)?;
    let request = ExportRequest {
        task_id: task.id,
        entity_id: entity.id,
        snapshot_id: a.source.snapshot.clone(),
        at: a.source.at()?,
        selection: a.source.selection()?,
        options: ExportOptions {
            pst_split: a.split,
            include_legal_holds: a.legal_holds,
            include_deleted: a.deleted,
            requested_at: ctx.rt.catalog.now(),
            ..ExportOptions::new(a.format)
        },
        target,
        sealed_credentials: None,
    };
    let job = worker::enqueue_export(
        &ctx.rt.catalog,
        ctx.account,
        &request,
        &credentials,
        Some("cli".into()),
    )
    .await
    .context("queueing the export")?;
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
    let job = super::backup::run_jobs_until_done(&ctx, &[job.id], 1, "exports")
        .await?
        .remove(0);
    let summary: Option<ExportSummary> = job
        .result
        .as_ref()
        .and_then(|r| serde_json::from_value(r.clone()).ok());
    let mut saved = Vec::new();
    if let (Some(dir), Some(s), JobStatus::Succeeded) = (&a.out, &summary, job.status) {
        saved = save_download(&ctx, &job.id.to_string(), s, dir).await?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "job_id": job.id,
                "job_status": job.status,
                "error": job.error,
                "summary": summary,
                "saved": saved,
            }))?
        );
    } else if let Some(s) = &summary {
        println!(
            "{} items exported ({} failed, {} skipped) from the backup of {} to {}: {} file(s), {} bytes",
            s.report.exported,
            s.report.failed,
            s.report.skipped,
            s.snapshot_time.format("%Y-%m-%d %H:%M:%S UTC"),
            s.destination,
            s.files.len(),
            s.size(),
        );
        for f in &s.files {
            match &f.url {
                Some(url) => println!("  {}  {} bytes  {url}", f.name, f.size),
                None => println!("  {}  {} bytes  {}", f.name, f.size, f.location),
            }
        }
        if let Some(t) = s.expires_at {
            println!(
                "the download link works until {} for users of this account",
                t.format("%Y-%m-%d %H:%M UTC")
            );
        }
        for p in &saved {
            println!("saved {}", p.display());
        }
        for n in &s.report.notes {
            println!("note: {n}");
        }
        if s.report.failed > 0 {
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
        (JobStatus::Succeeded, Some(s)) => bail!("{} items could not be exported", s.report.failed),
        (status, _) => bail!(
            "the export {status}: {}",
            job.error.as_deref().unwrap_or("see the job's log")
        ),
    }
}

/// The credentials `target` needs, from the environment.
fn credentials_from_env(target: &Target) -> Result<Credentials> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut c = Credentials::default();
    match target {
        Target::Download => {}
        Target::S3 { .. } => {
            c.access_key_id = var("AWS_ACCESS_KEY_ID");
            c.secret_access_key = var("AWS_SECRET_ACCESS_KEY");
            c.session_token = var("AWS_SESSION_TOKEN");
        }
        Target::Azure { .. } => {
            c.account_key = var("AZURE_STORAGE_KEY");
            c.sas_token = var("AZURE_STORAGE_SAS_TOKEN");
        }
        Target::Gcs { .. } => {
            if let Some(path) = var("GOOGLE_APPLICATION_CREDENTIALS") {
                c.service_account_json =
                    Some(std::fs::read_to_string(&path).with_context(|| {
                        format!("reading GOOGLE_APPLICATION_CREDENTIALS ({path})")
                    })?);
            }
            c.bearer_token = var("GCS_BEARER_TOKEN");
        }
        Target::Box { .. } => c.access_token = var("BOX_ACCESS_TOKEN"),
        Target::Dropbox { .. } => c.access_token = var("DROPBOX_ACCESS_TOKEN"),
    }
    target.check_credentials(&c).map_err(|e| {
        let vars = match target {
            Target::Download => "",
            Target::S3 { .. } => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            Target::Azure { .. } => "AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN",
            Target::Gcs { .. } => "GOOGLE_APPLICATION_CREDENTIALS or GCS_BEARER_TOKEN",
            Target::Box { .. } => "BOX_ACCESS_TOKEN",
            Target::Dropbox { .. } => "DROPBOX_ACCESS_TOKEN",
        };
        anyhow::anyhow!("{e}: set {vars} in the environment")
    })?;
    Ok(c)
}

/// Writes a finished download's files into `dir`, streamed from the vault.
async fn save_download(
    ctx: &Ctx,
    export_id: &str,
    summary: &ExportSummary,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    let vault = ctx.rt.vault_account(ctx.account).await?;
    let mut saved = Vec::new();
    for f in &summary.files {
        // File names come from the export; keep only the last component so
        // a name can never leave `dir`.
        let name = Path::new(&f.name)
            .file_name()
            .context("an exported file has no name")?;
        let path = dir.join(name);
        let mut out = tokio::fs::File::create(&path)
            .await
            .with_context(|| format!("creating {}", path.display()))?;
        let mut stream = destinations::download::read(&vault, export_id, &f.name);
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?).await?;
        }
        out.flush().await?;
        saved.push(path);
    }
    Ok(saved)
}
