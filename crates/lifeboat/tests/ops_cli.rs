//! The operator CLI through the real binary: tasks, entities, backups, runs,
//! snapshots; accounts that never see each other; a worker killed with
//! SIGKILL mid-backup whose job completes on the next start.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use graph_sim::{RunningSim, SimConfig};
use serde_json::Value;

fn sim_config() -> SimConfig {
    let mut cfg = SimConfig::new(25, 7);
    cfg.content_scale = 0.15;
    cfg
}

struct Cli {
    data: PathBuf,
    secret_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        let dir = tempfile::tempdir().expect("temp dir");
        Cli {
            data: dir.path().join("data"),
            secret_file: dir.path().join("secret"),
            _dir: dir,
        }
    }

    fn cmd(&self, account: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lifeboat"));
        // The storage options belong to each operator command (global
        // within it), so they go after the subcommand.
        c.args(args)
            .arg("--data")
            .arg(&self.data)
            .args(["--account", account])
            .env_remove("LIFEBOAT_MASTER_KEY_FILE")
            .env_remove("LIFEBOAT_VAULT_PASSWORD")
            .env_remove("LIFEBOAT_CLIENT_SECRET")
            .env_remove("LIFEBOAT_DATABASE_URL")
            .env_remove("LIFEBOAT_VAULT");
        c
    }

    /// Run, expecting success; returns stdout.
    fn ok(&self, account: &str, args: &[&str]) -> String {
        let out = self.run(account, args);
        assert!(
            out.status.success(),
            "lifeboat {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    fn json(&self, account: &str, args: &[&str]) -> Value {
        let s = self.ok(account, args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {s}"))
    }

    /// Run, expecting failure; returns stderr.
    fn fails(&self, account: &str, args: &[&str]) -> String {
        let out = self.run(account, args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "lifeboat {args:?} should fail");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        stderr
    }

    fn run(&self, account: &str, args: &[&str]) -> Output {
        self.cmd(account, args).output().expect("run lifeboat")
    }

    fn create_task(&self, account: &str, sim: &RunningSim, extra: &[&str]) -> String {
        self.create_service_task(account, sim, "exchange", extra)
    }

    /// `lifeboat task create --service SERVICE ...` on the simulator; the
    /// printed task id.
    fn create_service_task(
        &self,
        account: &str,
        sim: &RunningSim,
        service: &str,
        extra: &[&str],
    ) -> String {
        std::fs::write(&self.secret_file, &sim.sim.cfg.client_secret).expect("secret file");
        let graph = sim.graph_url();
        let secret = self.secret_file.display().to_string();
        let mut args = vec![
            "task",
            "create",
            "--service",
            service,
            "--graph-url",
            &graph,
            "--login-url",
            &sim.url,
            "--tenant",
            &sim.sim.cfg.tenant_id,
            "--client-id",
            &sim.sim.cfg.client_id,
            "--client-secret-file",
            &secret,
            "--name",
            "Mail",
        ];
        args.extend_from_slice(extra);
        self.ok(account, &args).trim().to_string()
    }
}

async fn start_sim(cfg: SimConfig) -> RunningSim {
    graph_sim::start(cfg, "127.0.0.1:0".parse().expect("addr"), false)
        .await
        .expect("simulator starts")
}

/// The address of a licensed, enabled user mailbox.
fn a_user(entities: &Value) -> String {
    entities
        .as_array()
        .expect("array")
        .iter()
        .find(|e| {
            e["entity_type"] == "user"
                && e["properties"]["licensed"] == true
                && e["properties"]["accountEnabled"] == true
        })
        .and_then(|e| e["email_or_url"].as_str())
        .expect("a licensed user")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_entity_backup_run_and_snapshot_commands() {
    let sim = start_sim(sim_config()).await;
    let cli = Cli::new();
    let task = cli.create_task("default", &sim, &["--frequency", "daily", "--hour", "3"]);
    assert_eq!(task.len(), 36, "prints the task id: {task}");
    let tasks = cli.json("default", &["task", "list", "--json"]);
    assert_eq!(tasks[0]["id"], task.as_str());
    assert_eq!(tasks[0]["settings"]["backup_hour_utc"], 3);
    let entities = cli.json("default", &["entity", "list", "--task", &task, "--json"]);
    assert!(entities.as_array().expect("array").len() > 5);
    let email = a_user(&entities);
    let table = cli.ok("default", &["entity", "list", "--task", &task]);
    assert!(table.contains(&email) && table.contains("not_active"));

    // Nothing active yet: a backup of everything has nothing to do.
    let err = cli.fails("default", &["backup", "run", "--task", &task, "--wait"]);
    assert!(err.contains("no active entities"), "{err}");

    cli.ok("default", &["entity", "activate", "--task", &task, &email]);
    let summary = cli.json(
        "default",
        &[
            "backup", "run", "--task", &task, "--entity", &email, "--wait", "--json",
        ],
    );
    let entry = &summary["entities"][0];
    assert_eq!(entry["job_status"], "succeeded", "{summary}");
    assert_eq!(entry["summary"]["outcome"], "success");
    let snapshot = entry["summary"]["snapshot_id"]
        .as_str()
        .expect("snapshot id")
        .to_string();
    assert_eq!(
        entry["summary"]["parts"].as_array().expect("parts").len(),
        4
    );

    let snaps = cli.json(
        "default",
        &[
            "snapshot", "list", "--task", &task, "--entity", &email, "--json",
        ],
    );
    assert_eq!(snaps.as_array().expect("array").len(), 1);
    assert_eq!(snaps[0]["id"], snapshot.as_str());
    let runs = cli.json(
        "default",
        &["run", "list", "--task", &task, "--entity", &email, "--json"],
    );
    let runs = runs.as_array().expect("array");
    assert_eq!(runs.len(), 4);
    assert!(
        runs.iter()
            .all(|r| r["snapshot_id"] == snapshot.as_str() && r["outcome"] == "success")
    );
    let listed = cli.json("default", &["entity", "list", "--task", &task, "--json"]);
    let me = listed
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["email_or_url"] == email.as_str())
        .expect("entity");
    assert_eq!(me["status"], "success");

    // Pause, and discovery again.
    cli.ok("default", &["entity", "pause", "--task", &task, &email]);
    cli.ok("default", &["discover", "--task", &task]);
    let listed = cli.json("default", &["entity", "list", "--task", &task, "--json"]);
    assert!(
        listed
            .as_array()
            .expect("array")
            .iter()
            .any(|e| e["status"] == "paused")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_never_see_each_other_and_bad_input_is_an_error() {
    let sim = start_sim(sim_config()).await;
    let cli = Cli::new();
    let task = cli.create_task("a", &sim, &["--auto-activate"]);
    let entities = cli.json("a", &["entity", "list", "--task", &task, "--json"]);
    let email = a_user(&entities);
    cli.json(
        "a",
        &[
            "backup", "run", "--task", &task, "--entity", &email, "--wait", "--json",
        ],
    );

    assert_eq!(
        cli.json("b", &["task", "list", "--json"]),
        Value::Array(vec![])
    );
    for args in [
        vec!["entity", "list", "--task", &task],
        vec!["entity", "activate", "--task", &task, "--all"],
        vec!["discover", "--task", &task],
        vec!["backup", "run", "--task", &task, "--wait"],
        vec![
            "snapshot", "list", "--task", &task, "--entity", &email, "--json",
        ],
        vec!["run", "list", "--task", &task],
    ] {
        let err = cli.fails("b", &args);
        assert!(err.contains("not found in account 'b'"), "{args:?}: {err}");
    }
    // Bad input in the owner's account.
    let err = cli.fails(
        "a",
        &["entity", "activate", "--task", &task, "nobody@nowhere.test"],
    );
    assert!(err.contains("nobody@nowhere.test"), "{err}");
    let err = cli.fails("a", &["entity", "list", "--task", "not-a-uuid"]);
    assert!(err.contains("not a task id"), "{err}");
    let err = cli.fails("a", &["entity", "activate", "--task", &task]);
    assert!(err.contains("--all"), "{err}");
    // The secret is never taken from the command line.
    let err = cli.fails(
        "a",
        &[
            "task",
            "create",
            "--tenant",
            "t",
            "--client-id",
            "c",
            "--client-secret",
            "s",
            "--name",
            "n",
        ],
    );
    assert!(err.contains("--client-secret"), "{err}");
    let err = cli.fails(
        "a",
        &[
            "task",
            "create",
            "--tenant",
            "t",
            "--client-id",
            "c",
            "--name",
            "n",
        ],
    );
    assert!(err.contains("LIFEBOAT_CLIENT_SECRET"), "{err}");
    // The master key file is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cli.data.join("master.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "master.key must not be readable by others");
    }
}

async fn open_runtime(data: &Path) -> std::sync::Arc<worker::Runtime> {
    worker::Runtime::open(
        &worker::Storage::Embedded {
            data_dir: data.to_path_buf(),
        },
        None,
        Default::default(),
    )
    .await
    .expect("runtime")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_backup_loses_nothing() {
    let mut cfg = sim_config();
    cfg.latency_ms = 100;
    let sim = start_sim(cfg).await;
    let cli = Cli::new();
    let task = cli.create_task("default", &sim, &[]);
    let entities = cli.json("default", &["entity", "list", "--task", &task, "--json"]);
    let email = a_user(&entities);
    cli.ok("default", &["entity", "activate", "--task", &task, &email]);

    let fast = ["--lease-secs", "3", "--reclaim-secs", "1"];
    let mut args = vec![
        "backup", "run", "--task", &task, "--entity", &email, "--wait",
    ];
    args.extend_from_slice(&fast);
    let mut first = cli
        .cmd("default", &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");

    let rt = open_runtime(&cli.data).await;
    let account = rt.account_by_name("default").await.expect("account");
    let job_of = |jobs: Vec<catalog::Job>| jobs.into_iter().next();
    // Kill it once it has made progress.
    let started = Instant::now();
    let job_id = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the backup never made progress"
        );
        let jobs = rt
            .catalog
            .list_jobs(account, &Default::default())
            .await
            .expect("jobs");
        if let Some(j) = job_of(jobs)
            && j.status == catalog::JobStatus::Running
            && j.progress.done_items > 0
        {
            break j.id;
        }
        assert!(
            first.try_wait().expect("wait").is_none(),
            "the backup ended before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let vault = rt.vault_account(account).await.expect("vault");
    assert!(
        vault.snapshots().await.expect("snapshots").is_empty(),
        "nothing committed yet"
    );

    // A worker starts; the dead worker's lease runs out and the job runs again.
    let mut wargs = vec!["worker", "--concurrency", "2", "--no-scheduler"];
    wargs.extend_from_slice(&fast);
    let mut second = cli
        .cmd("default", &wargs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker");
    let job = loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the job never completed"
        );
        let j = rt.catalog.get_job(account, job_id).await.expect("job");
        if matches!(
            j.status,
            catalog::JobStatus::Succeeded
                | catalog::JobStatus::Failed
                | catalog::JobStatus::Cancelled
        ) {
            break j;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // SAFETY: sending SIGTERM to our own child process.
    unsafe {
        libc::kill(second.id() as i32, libc::SIGTERM);
    }
    let status = second.wait().expect("worker exits");
    assert!(status.success(), "the worker stops cleanly on SIGTERM");

    assert_eq!(job.status, catalog::JobStatus::Succeeded, "{:?}", job.error);
    assert!(job.attempts >= 2, "the job ran again after the kill");
    let summary: worker::BackupSummary =
        serde_json::from_value(job.result.clone().expect("result")).expect("summary");
    assert_eq!(summary.outcome, catalog::RunOutcome::Success);
    let report = vault
        .verify(true, &vault::NoProgress)
        .await
        .expect("verify");
    assert!(report.ok(), "{:?}", report.problems);
    let snaps = vault.snapshots().await.expect("snapshots");
    assert_eq!(snaps.len(), 1);
    // The snapshot is complete: every part is in it, as many items as a
    // fresh full backup of the same mailbox in another data directory finds.
    let parts = snaps[0].meta["parts"].as_array().expect("parts").clone();
    assert_eq!(parts.len(), 4);
    assert!(parts.iter().all(|p| p["outcome"] == "success"));
    // The interrupted attempt's runs were closed, not left open.
    let runs = cli.json("default", &["run", "list", "--task", &task, "--json"]);
    let runs = runs.as_array().expect("runs");
    assert!(runs.iter().all(|r| !r["outcome"].is_null()));
    assert!(runs.iter().any(|r| {
        r["error_summary"]
            .as_str()
            .is_some_and(|s| s.contains("interrupted"))
    }));

    let clean = Cli::new();
    let t2 = clean.create_task("default", &sim, &[]);
    clean.ok("default", &["entity", "activate", "--task", &t2, &email]);
    let fresh = clean.json(
        "default",
        &[
            "backup", "run", "--task", &t2, "--entity", &email, "--wait", "--json",
        ],
    );
    let fresh_parts = fresh["entities"][0]["summary"]["parts"]
        .as_array()
        .expect("parts")
        .clone();
    for p in &fresh_parts {
        let sub = p["sub_service"].as_str().expect("name");
        let ours = parts
            .iter()
            .find(|q| q["subService"] == sub)
            .unwrap_or_else(|| panic!("{sub} missing"));
        assert_eq!(ours["items"], p["counts"]["total"], "{sub} item count");
    }
}

/// The sites of a SharePoint task whose URL contains `part` (as a rule
/// compares: case-insensitively).
fn sites_containing(entities: &Value, part: &str) -> Vec<String> {
    entities
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| {
            e["email_or_url"]
                .as_str()
                .is_some_and(|u| u.to_lowercase().contains(&part.to_lowercase()))
        })
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect()
}

fn active_ids(entities: &Value) -> Vec<String> {
    let mut v: Vec<String> = entities
        .as_array()
        .expect("array")
        .iter()
        .filter(|e| e["active"] == true)
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharepoint_task_and_url_rules_through_the_cli() {
    let mut cfg = SimConfig::new(10, 17);
    cfg.content_scale = 0.1;
    let sim = start_sim(cfg).await;
    let cli = Cli::new();
    let task = cli.create_service_task("default", &sim, "sharepoint", &[]);
    assert_eq!(task.len(), 36, "prints the task id: {task}");
    let tasks = cli.json("default", &["task", "list", "--json"]);
    assert_eq!(tasks[0]["service"], "sharepoint");
    let entities = cli.json("default", &["entity", "list", "--task", &task, "--json"]);
    let all = entities.as_array().expect("array").len();
    assert!(all >= 2, "sites are discovered");
    assert!(
        entities
            .as_array()
            .expect("array")
            .iter()
            .all(|e| e["kind"] == "site")
    );

    // Two site paths that select some sites, not all, and not the same ones.
    let mut parts: Vec<(String, Vec<String>)> = Vec::new();
    for e in entities.as_array().expect("array") {
        let url = e["email_or_url"].as_str().expect("url");
        let Some(path) = url.split_once("/sites/").map(|(_, p)| p) else {
            continue;
        };
        let part = format!("/sites/{}", path.split('/').next().unwrap_or(path));
        let matched = sites_containing(&entities, &part);
        if !matched.is_empty()
            && matched.len() < all
            && parts
                .iter()
                .all(|(_, m)| m.iter().all(|id| !matched.contains(id)))
        {
            parts.push((part, matched));
        }
        if parts.len() == 2 {
            break;
        }
    }
    assert_eq!(parts.len(), 2, "two distinct site paths");
    let (first, first_sites) = parts[0].clone();
    let (second, second_sites) = parts[1].clone();

    // A once rule: prints its id, and the counts on stderr.
    let out = cli.run(
        "default",
        &[
            "rule",
            "create",
            "--task",
            &task,
            "--url-contains",
            &first.to_uppercase(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rule = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert_eq!(rule.len(), 36, "prints the rule id: {rule}");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let n = first_sites.len();
    assert!(
        stderr.contains(&format!("{n} entities match; {n} activated now")),
        "{stderr}"
    );
    let entities = cli.json("default", &["entity", "list", "--task", &task, "--json"]);
    let mut want = first_sites.clone();
    want.sort();
    assert_eq!(active_ids(&entities), want, "exactly the matching sites");

    // A recurring rule, as JSON: its own counts.
    let created = cli.json(
        "default",
        &[
            "rule",
            "create",
            "--task",
            &task,
            "--url-contains",
            &second,
            "--recurring",
            "--on-leave",
            "pause",
            "--json",
        ],
    );
    let recurring = created["rule"]["id"].as_str().expect("id").to_string();
    assert_eq!(created["rule"]["mode"], "recurring");
    assert_eq!(created["rule"]["deactivation"], "pause");
    assert_eq!(created["outcome"]["matched"], second_sites.len());
    assert_eq!(
        created["outcome"]["activated"],
        second_sites.len(),
        "the sites this rule activated: {created}"
    );

    let rules = cli.json("default", &["rule", "list", "--task", &task, "--json"]);
    let ids: Vec<&str> = rules
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&rule.as_str()) && ids.contains(&recurring.as_str()));
    let url_rule = rules
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["id"] == rule.as_str())
        .expect("the rule");
    assert_eq!(url_rule["definition"]["kind"], "url");
    assert_eq!(url_rule["definition"]["match"], "contains");
    let table = cli.ok("default", &["rule", "list", "--task", &task]);
    assert!(
        table.contains(&rule) && table.contains("URL contains"),
        "{table}"
    );

    // Another account sees none of it.
    let err = cli.fails("b", &["rule", "list", "--task", &task]);
    assert!(err.contains("not found in account 'b'"), "{err}");
    let err = cli.fails("b", &["rule", "delete", &rule]);
    assert!(err.contains("not found"), "{err}");

    // Bad input.
    let err = cli.fails("default", &["rule", "create", "--task", &task]);
    assert!(err.contains("choose what the rule matches"), "{err}");
    let err = cli.fails(
        "default",
        &[
            "rule",
            "create",
            "--task",
            &task,
            "--url-contains",
            "a",
            "--url-ends-with",
            "b",
        ],
    );
    assert!(err.contains("only one"), "{err}");
    let err = cli.fails("default", &["rule", "delete", "not-a-rule"]);
    assert!(err.contains("not a rule id"), "{err}");

    // Deleted; the entities it activated stay as they are.
    cli.ok("default", &["rule", "delete", &rule]);
    let rules = cli.json("default", &["rule", "list", "--task", &task, "--json"]);
    assert_eq!(rules.as_array().map(Vec::len), Some(1));
    assert_eq!(rules[0]["id"], recurring.as_str());
    let err = cli.fails("default", &["rule", "delete", &rule]);
    assert!(err.contains("not found"), "{err}");
    let entities = cli.json("default", &["entity", "list", "--task", &task, "--json"]);
    let mut want: Vec<String> = first_sites.into_iter().chain(second_sites).collect();
    want.sort();
    assert_eq!(active_ids(&entities), want);
}

/// Browse, search and restore through the CLI: a message deleted in the
/// tenant is found in the backup by browsing and by searching its subject,
/// restored by its path, and back in the mailbox; another account finds
/// nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_search_and_restore_through_the_cli() {
    let sim = start_sim(sim_config()).await;
    let cli = Cli::new();
    let task = cli.create_task("default", &sim, &[]);
    let entities = cli.json("default", &["entity", "list", "--task", &task, "--json"]);
    let email = a_user(&entities);
    cli.ok("default", &["entity", "activate", "--task", &task, &email]);
    cli.json(
        "default",
        &[
            "backup", "run", "--task", &task, "--entity", &email, "--wait", "--json",
        ],
    );

    // The top of the backup: one card per sub-service; then the mail folders.
    let top = cli.json(
        "default",
        &["browse", "--task", &task, "--entity", &email, "--json"],
    );
    let cards: Vec<&str> = top["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .map(|c| c["subService"].as_str().expect("sub-service"))
        .collect();
    assert_eq!(cards, ["mail", "contacts", "calendar", "tasks"], "{top}");
    let mail = cli.json(
        "default",
        &[
            "browse", "--task", &task, "--entity", &email, "mail", "--json",
        ],
    );
    assert_eq!(mail["folders"][0]["name"], "Inbox", "Outlook order: {mail}");
    // The fullest folder (generated mailboxes are small).
    let fullest = mail["folders"]
        .as_array()
        .expect("folders")
        .iter()
        .filter(|f| f["name"] != "Deleted Items")
        .max_by_key(|f| f["itemCount"].as_u64().unwrap_or(0))
        .unwrap_or_else(|| panic!("mail folders: {mail}"));
    assert!(fullest["itemCount"].as_u64().unwrap_or(0) > 0, "{mail}");
    let inbox_path = fullest["path"].as_str().expect("path").to_string();
    let listing = cli.json(
        "default",
        &[
            "browse",
            "--task",
            &task,
            "--entity",
            &email,
            &inbox_path,
            "--limit",
            "5",
            "--json",
        ],
    );
    let item = &listing["items"][0];
    let item_path = item["path"].as_str().expect("item path").to_string();
    let subject = item["columns"]["subject"]
        .as_str()
        .expect("subject")
        .to_string();

    // Search finds it by its subject.
    let hits = cli.json(
        "default",
        &[
            "search",
            "--task",
            &task,
            "--entity",
            &email,
            "--subject",
            &subject,
            "--json",
        ],
    );
    assert!(
        hits.as_array()
            .expect("hits")
            .iter()
            .any(|h| h["path"] == item_path.as_str()),
        "searching {subject:?} finds {item_path}: {hits}"
    );
    let none = cli.fails(
        "default",
        &["search", "--task", &task, "--entity", &email, "--json"],
    );
    assert!(none.contains("keywords"), "{none}");

    // Delete it in the tenant, then restore that one item by its path.
    let message_id = item_path.rsplit('/').next().expect("message id");
    let user = entities
        .as_array()
        .expect("array")
        .iter()
        .find(|e| e["email_or_url"] == email.as_str())
        .and_then(|e| e["external_id"].as_str())
        .expect("user id")
        .to_string();
    let graph_url = sim.graph_url();
    let token = sim_token(&sim).await;
    // Export that message as EML and the mail as a PST into a directory.
    let out = tempfile::tempdir().expect("out dir");
    let out_dir = out.path().to_str().expect("utf-8 path").to_string();
    let exported = cli.json(
        "default",
        &[
            "export", "--task", &task, "--entity", &email, "--item", &item_path, "--format", "eml",
            "--to", "download", "--out", &out_dir, "--wait", "--json",
        ],
    );
    assert_eq!(exported["job_status"], "succeeded", "{exported}");
    assert_eq!(exported["summary"]["report"]["exported"], 1, "{exported}");
    let saved = exported["saved"][0]
        .as_str()
        .expect("a saved file")
        .to_string();
    assert!(saved.ends_with(".eml"), "{saved}");
    let eml = std::fs::read(&saved).expect("read the .eml");
    let mime = reqwest::Client::new()
        .get(format!(
            "{graph_url}/users/{user}/messages/{message_id}/$value"
        ))
        .header("Prefer", "IdType=\"ImmutableId\"")
        .bearer_auth(&token)
        .send()
        .await
        .expect("MIME")
        .bytes()
        .await
        .expect("MIME bytes");
    assert_eq!(
        eml,
        mime.to_vec(),
        "the .eml is the message's MIME, byte for byte"
    );
    let exported = cli.json(
        "default",
        &[
            "export",
            "--task",
            &task,
            "--entity",
            &email,
            "--sub-service",
            "mail",
            "--format",
            "pst",
            "--out",
            &out_dir,
            "--wait",
            "--json",
        ],
    );
    assert_eq!(exported["job_status"], "succeeded", "{exported}");
    let pst = std::fs::read(exported["saved"][0].as_str().expect("a saved PST")).expect("read");
    assert_eq!(&pst[..4], b"!BDN", "a PST");
    assert_eq!(
        pst.len() as u64,
        exported["summary"]["files"][0]["size"]
            .as_u64()
            .expect("size")
    );
    let err = cli.fails(
        "default",
        &[
            "export",
            "--task",
            &task,
            "--entity",
            &email,
            "--sub-service",
            "mail",
            "--format",
            "vcf",
        ],
    );
    assert!(
        err.to_lowercase().contains("vcf") || err.to_lowercase().contains("vcard"),
        "{err}"
    );
    let err = cli.fails(
        "default",
        &[
            "export",
            "--task",
            &task,
            "--entity",
            &email,
            "--format",
            "pst",
            "--to",
            "s3://bucket/prefix",
        ],
    );
    assert!(
        err.contains("AWS") || err.to_lowercase().contains("credential"),
        "{err}"
    );

    // A hard delete: the message leaves what the user (and the truth) sees.
    let r = reqwest::Client::new()
        .post(format!(
            "{graph_url}/users/{user}/messages/{message_id}/permanentDelete"
        ))
        .header("Prefer", "IdType=\"ImmutableId\"")
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert!(r.status().is_success(), "{}", r.status());
    // Messages with this subject in the mailbox, by the simulator's truth.
    let count = |subject: &str| {
        let url = format!("{}/_sim/truth/users/{user}", sim.url);
        let suffix = format!("/{subject}");
        async move {
            let v: Value = reqwest::Client::new()
                .get(url)
                .send()
                .await
                .expect("truth")
                .json()
                .await
                .expect("json");
            v["items"]
                .as_array()
                .expect("items")
                .iter()
                .filter(|i| {
                    i["workload"] == "mail"
                        && i["path"].as_str().is_some_and(|p| p.ends_with(&suffix))
                })
                .count()
        }
    };
    let before = count(&subject).await;
    let restored = cli.json(
        "default",
        &[
            "restore", "--task", &task, "--entity", &email, "--item", &item_path, "--mode",
            "bypass", "--wait", "--json",
        ],
    );
    assert_eq!(restored["job_status"], "succeeded", "{restored}");
    assert_eq!(restored["summary"]["report"]["restored"], 1, "{restored}");
    assert_eq!(
        count(&subject).await,
        before + 1,
        "the message is back in the Inbox"
    );

    // A bad mode is refused by the CLI; another account knows no such entity.
    let err = cli.fails(
        "default",
        &[
            "restore",
            "--task",
            &task,
            "--entity",
            &email,
            "--mode",
            "overwrite",
        ],
    );
    assert!(err.contains("overwrite"), "{err}");
    let err = cli.fails("other", &["browse", "--task", &task, "--entity", &email]);
    assert!(err.contains("not found"), "{err}");
}

/// A token for the simulator's Graph, as the product gets one.
async fn sim_token(sim: &RunningSim) -> String {
    let c = &sim.sim.cfg;
    let v: Value = reqwest::Client::new()
        .post(format!("{}/{}/oauth2/v2.0/token", sim.url, c.tenant_id))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token JSON");
    v["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}
