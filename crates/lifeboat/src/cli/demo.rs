//! `lifeboat serve` (the API server, with a worker and the scheduler in the
//! same process unless told otherwise) and `lifeboat demo` (all of that plus
//! a simulated tenant, a demo account, user and Exchange task, and a first
//! backup).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use catalog::{JobStatus, NewConnection, NewTask, NewUser, Role, Service, TaskSettings};
use clap::Args;
use rand::Rng;
use worker::{Runtime, Scheduler, Worker};

use super::{Ctx, StoreArgs};

/// `lifeboat serve`
#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address of the web/API server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve only; run workers as separate `lifeboat worker` processes.
    #[arg(long)]
    no_worker: bool,
    /// Jobs the in-process worker runs at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Mark session cookies Secure (set when served behind HTTPS).
    #[arg(long)]
    secure_cookies: bool,
}

/// `lifeboat demo`
#[derive(Args)]
pub struct DemoArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address of the web/API server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Address of the simulated Microsoft 365 tenant (kept stable so that a
    /// second `demo` run continues the same task).
    #[arg(long, default_value = "127.0.0.1:8025")]
    sim_listen: SocketAddr,
    /// Users in the simulated tenant.
    #[arg(long, default_value_t = 25)]
    users: u32,
    /// Seed of the simulated tenant.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Set up and run the first backup, then exit instead of serving.
    #[arg(long)]
    exit_after_backup: bool,
}

const DEMO_EMAIL: &str = "admin@demo.lifeboat.local";
/// The demo's tasks, one per service; the first is backed up before the
/// demo reports, the others in the background.
const DEMO_TASKS: [(Service, &str); 4] = [
    (Service::Exchange, "Demo tenant: Exchange"),
    (Service::OneDrive, "Demo tenant: OneDrive"),
    (Service::SharePoint, "Demo tenant: SharePoint"),
    (Service::Teams, "Demo tenant: Teams & Groups"),
];

/// A demo task by name, created (with the tenant's connection) on the
/// first run.
async fn demo_task(
    rt: &Runtime,
    account: catalog::AccountId,
    sim: &graph_sim::RunningSim,
    service: Service,
    name: &str,
) -> Result<catalog::Task> {
    if let Some(t) = rt
        .catalog
        .list_tasks(account, None)
        .await?
        .into_iter()
        .find(|t| t.name == name)
    {
        return Ok(t);
    }
    let c = &sim.sim.cfg;
    let conn = rt
        .connect(
            account,
            NewConnection {
                tenant_id: c.tenant_id.clone(),
                client_id: c.client_id.clone(),
                client_secret: catalog::Secret::new(c.client_secret.clone()),
                graph_url: sim.graph_url(),
                login_url: sim.login_url(),
            },
        )
        .await
        .context("connecting the simulated tenant (a data directory from a demo on another --sim-listen address cannot be reused)")?;
    Ok(rt
        .catalog
        .create_task(
            account,
            NewTask {
                connection_id: conn.id,
                service,
                name: name.into(),
                settings: TaskSettings {
                    auto_activate_new: true,
                    ..Default::default()
                },
            },
        )
        .await?)
}
const CREDENTIALS_FILE: &str = "demo-credentials.txt";

/// Background roles of a serving process; dropping the sender stops them.
struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    fn start(rt: &Arc<Runtime>, concurrency: usize) -> Self {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|v| *v).await;
        };
        let handles = vec![
            tokio::spawn(Worker::new(rt.clone()).run(concurrency, stopped(rx.clone()))),
            tokio::spawn(Scheduler::new(rt.clone()).run(Duration::from_secs(60), stopped(rx))),
        ];
        Background { stop, handles }
    }

    async fn shutdown(self) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
    }
}

async fn start_api(
    rt: &Arc<Runtime>,
    listen: SocketAddr,
    secure_cookies: bool,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let state = server::AppState::new(rt.catalog.clone(), server::ServerConfig { secure_cookies })
        .with_runtime(rt.clone());
    let handle = tokio::spawn(async move {
        if let Err(e) = server::serve(listener, state).await {
            eprintln!("the API server stopped: {e}");
        }
    });
    Ok((addr, handle))
}

/// `lifeboat serve`.
pub async fn run_serve(a: ServeArgs) -> Result<()> {
    let rt = a.store.open().await?;
    let (addr, api) = start_api(&rt, a.listen, a.secure_cookies).await?;
    let bg = (!a.no_worker).then(|| Background::start(&rt, a.concurrency));
    eprintln!(
        "Lifeboat API on http://{addr}/api (OpenAPI: http://{addr}/api/openapi.json){}",
        if bg.is_some() {
            ", with a worker and the scheduler"
        } else {
            ""
        }
    );
    super::backup::shutdown_signal().await;
    api.abort();
    if let Some(bg) = bg {
        bg.shutdown().await;
    }
    Ok(())
}

/// `lifeboat demo`.
pub async fn run_demo(a: DemoArgs) -> Result<()> {
    let mut cfg = graph_sim::SimConfig::new(a.users, a.seed);
    cfg.latency_ms = 0;
    let sim = graph_sim::start(cfg, a.sim_listen, false)
        .await
        .with_context(|| format!("starting the simulated tenant on {}", a.sim_listen))?;
    let ctx = Ctx::open(&a.store).await?;
    let rt = ctx.rt.clone();

    // The tasks (one per service), their connection and their entities,
    // all reused on a second run.
    let mut tasks = Vec::new();
    for (service, name) in DEMO_TASKS {
        let task = demo_task(&rt, ctx.account, &sim, service, name).await?;
        let found = worker::discover_task(&rt, ctx.account, task.id, None)
            .await
            .with_context(|| format!("discovering the demo tenant for {name}"))?;
        eprint!("{name}: ");
        super::task::print_discovery(&found);
        let ids: Vec<_> = worker::task_entities(&rt, ctx.account, task.id)
            .await?
            .into_iter()
            .filter(|e| e.deleted_in_tenant_at.is_none())
            .map(|e| e.id)
            .collect();
        rt.catalog.activate_entities(ctx.account, &ids).await?;
        tasks.push(task);
    }
    // Group team sites are backed up with their groups by the Teams task.
    for t in &tasks {
        let (covered, _) = rt.catalog.refresh_coverage(ctx.account, t.id).await?;
        if covered > 0 {
            println!(
                "{}: {covered} entities are Backed up in another task (group team sites go with their groups)",
                t.name
            );
        }
    }
    let task = tasks[0].clone();
    let password = demo_user(&rt, ctx.account, &a.store.data).await?;

    let (addr, api) = start_api(&rt, a.listen, false).await?;
    let bg = Background::start(&rt, 4);
    let enq = worker::enqueue_backups(&rt, &task, None, "demo", None).await?;
    let jobs: Vec<_> = enq.jobs.iter().map(|j| j.id).collect();
    eprintln!("backing up {} mailboxes...", jobs.len());
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(jobs.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} mailboxes  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    });
    let (ok, failed) = loop {
        let mut done = 0;
        let mut items = 0;
        let (mut ok, mut failed) = (0, 0);
        for id in &jobs {
            let j = rt.catalog.get_job(ctx.account, *id).await?;
            items += j.progress.done_items;
            match j.status {
                JobStatus::Succeeded => {
                    done += 1;
                    ok += 1
                }
                JobStatus::Failed | JobStatus::Cancelled => {
                    done += 1;
                    failed += 1
                }
                _ => {}
            }
        }
        if let Some(b) = &bar {
            b.set_position(done);
            b.set_message(format!("{items} items"));
        }
        if done as usize == jobs.len() {
            break (ok, failed);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!("Backup: {ok} mailboxes backed up, {failed} failed.");
    println!();
    println!("Lifeboat demo");
    println!("  API:          http://{addr}/api   (OpenAPI: http://{addr}/api/openapi.json)");
    println!("  Sign in:      {DEMO_EMAIL} / {password}");
    println!(
        "  Tenant:       simulated Microsoft 365 tenant at {}",
        sim.url
    );
    println!("  Task:         {} ({})", task.name, task.id);
    println!("  Data:         {}", a.store.data.display());
    println!(
        "  Try:          lifeboat entity list --task {}   |   lifeboat snapshot list --task {} --entity <email> --json",
        task.id, task.id
    );
    if a.exit_after_backup {
        api.abort();
        bg.shutdown().await;
        return Ok(());
    }
    // The other services' first backups run in the background: SharePoint
    // and OneDrive are held to Microsoft's resource-unit budget, so a whole
    // tenant takes minutes, as it would against Microsoft 365.
    for t in &tasks[1..] {
        let enq = worker::enqueue_backups(&rt, t, None, "demo", None).await?;
        println!(
            "  {}: {} backups queued (task {}; follow them with lifeboat run list --task {})",
            t.name,
            enq.jobs.len(),
            t.id,
            t.id
        );
    }
    println!("Serving until ctrl-c.");
    super::backup::shutdown_signal().await;
    api.abort();
    bg.shutdown().await;
    Ok(())
}

/// The demo's sign-in: created with a random password on the first run; the
/// password is kept (mode 0600) in the data directory so a second run can
/// show it again.
async fn demo_user(rt: &Runtime, account: catalog::AccountId, data: &Path) -> Result<String> {
    let file = data.join(CREDENTIALS_FILE);
    let users = rt.catalog.list_users(account).await?;
    if users
        .iter()
        .any(|u| u.email.eq_ignore_ascii_case(DEMO_EMAIL))
    {
        return Ok(std::fs::read_to_string(&file)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| format!("(unchanged; see {})", file.display())));
    }
    let password: String = {
        let mut r = rand::rng();
        (0..16)
            .map(|_| {
                let c = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
                c[r.random_range(0..c.len())] as char
            })
            .collect()
    };
    rt.catalog
        .create_user(
            account,
            NewUser {
                email: DEMO_EMAIL.into(),
                display_name: "Demo administrator".into(),
                password: catalog::Secret::new(password.clone()),
                role: Role::Owner,
            },
        )
        .await?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(&file)
        .and_then(|mut f| f.write_all(password.as_bytes()))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(password)
}
