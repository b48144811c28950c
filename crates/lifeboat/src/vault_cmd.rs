//! `lifeboat vault ...`: operator and benchmark commands on directories, so
//! the vault can be compared with restic file for file.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use futures::{StreamExt, TryStreamExt};
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use vault::{Account, Location, MasterKey, Node, Progress, Repository, SnapshotId, SnapshotInfo};

/// Vault operator commands.
#[derive(Args)]
pub struct VaultArgs {
    #[command(subcommand)]
    cmd: VaultCmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Repository: a local path, s3://bucket/prefix, az://container/prefix
    /// or gs://bucket/prefix (credentials from the environment).
    #[arg(long, env = "LIFEBOAT_VAULT_REPO")]
    repo: String,
    /// Account inside the repository.
    #[arg(long, default_value = "default", env = "LIFEBOAT_VAULT_ACCOUNT")]
    account: String,
    /// File holding the master key as 64 hex digits. Without it, the key is
    /// derived from LIFEBOAT_VAULT_PASSWORD.
    #[arg(long, env = "LIFEBOAT_VAULT_KEY_FILE")]
    key_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum VaultCmd {
    /// Create a repository (and the account).
    Init {
        #[command(flatten)]
        common: Common,
        /// Target pack size in MiB.
        #[arg(long, default_value_t = 16)]
        pack_mib: u32,
        /// Average chunk size in KiB (min is 1/4, max 8x).
        #[arg(long, default_value_t = 16)]
        avg_chunk_kib: u32,
        /// zstd level.
        #[arg(long, default_value_t = 3)]
        zstd_level: i32,
        /// The bucket has S3 Object Lock with this default retention (days):
        /// snapshots younger than that are never forgotten.
        #[arg(long)]
        object_lock_days: Option<u32>,
    },
    /// Back up a directory; prints the snapshot id.
    Backup {
        /// Directory to back up.
        dir: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Parent snapshot (default: the latest snapshot of the same directory).
        #[arg(long, conflicts_with = "no_parent")]
        parent: Option<String>,
        /// Read every file even if the parent has it unchanged.
        #[arg(long)]
        no_parent: bool,
        /// Files read concurrently.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
    /// Restore a snapshot (or a subtree with --path) into a directory.
    Restore {
        /// Snapshot id (or a unique prefix, or "latest").
        snapshot: String,
        #[command(flatten)]
        common: Common,
        /// Target directory.
        #[arg(long)]
        target: PathBuf,
        /// Subtree to restore.
        #[arg(long, default_value = "")]
        path: String,
        /// Files written concurrently.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
    /// List snapshots.
    Snapshots {
        #[command(flatten)]
        common: Common,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// List a folder of a snapshot.
    Ls {
        /// Snapshot id, prefix or "latest".
        snapshot: String,
        /// Folder path.
        #[arg(default_value = "")]
        path: String,
        #[command(flatten)]
        common: Common,
    },
    /// Show what changed between two snapshots.
    Diff {
        /// Older snapshot.
        old: String,
        /// Newer snapshot.
        new: String,
        #[command(flatten)]
        common: Common,
    },
    /// Check the repository; --full reads and authenticates every byte.
    Verify {
        #[command(flatten)]
        common: Common,
        /// Read everything.
        #[arg(long)]
        full: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Forget snapshots by id and/or by retention policy.
    Forget {
        /// Snapshot ids to forget.
        ids: Vec<String>,
        #[command(flatten)]
        common: Common,
        /// Keep the newest N.
        #[arg(long)]
        keep_last: Option<usize>,
        /// Keep one per day for N days.
        #[arg(long)]
        keep_daily: Option<usize>,
        /// Keep one per week for N weeks.
        #[arg(long)]
        keep_weekly: Option<usize>,
        /// Keep one per month for N months.
        #[arg(long)]
        keep_monthly: Option<usize>,
        /// Keep everything younger than N days.
        #[arg(long)]
        keep_within_days: Option<u32>,
        /// Run gc afterwards.
        #[arg(long)]
        gc: bool,
    },
    /// Key rotation: re-wrap the account's data keys under a new master key
    /// (from --new-key-file or LIFEBOAT_VAULT_NEW_PASSWORD). No data is
    /// rewritten; the old key stops working.
    Rekey {
        #[command(flatten)]
        common: Common,
        /// File with the new master key (64 hex digits).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Garbage collection (two-phase: a pack is deleted by a later run than
    /// the one that found it unused, after the grace period).
    Gc {
        #[command(flatten)]
        common: Common,
        /// Grace period in seconds between condemning and deleting.
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
    },
    /// Merge the account's small index objects (one per pack) into a few
    /// large ones, so opening the account reads a handful of objects. Writers
    /// and gc also do this on their own; this runs it now.
    CompactIndex {
        #[command(flatten)]
        common: Common,
        /// Compact only if at least this many small index objects exist.
        #[arg(long, default_value_t = 2)]
        min_objects: usize,
    },
}

/// Run a vault command.
pub async fn run(args: VaultArgs) -> Result<()> {
    // Chunking runs on many threads; with glibc's default of 8 arenas per
    // core the freed buffers of each thread stay resident and double the
    // peak memory of a backup. Two arenas cost no measurable speed here.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; called before the
    // heavy allocation starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    match args.cmd {
        VaultCmd::Init {
            common,
            pack_mib,
            avg_chunk_kib,
            zstd_level,
            object_lock_days,
        } => {
            let loc = Location::from_url(&common.repo)?;
            let avg = avg_chunk_kib * 1024;
            let opts = vault::InitOptions {
                chunker: vault::ChunkerParams {
                    min: (avg / 4).max(64),
                    avg,
                    max: avg * 8,
                },
                pack_size: pack_mib * 1024 * 1024,
                zstd_level,
                object_lock_days,
                ..Default::default()
            };
            let repo = Repository::init(loc, opts).await?;
            let master = master_key(&repo, &common)?;
            repo.init_account(&common.account, &master.account_key(&common.account))
                .await?;
            eprintln!(
                "created vault repository {} at {}",
                repo.config().repo_id,
                common.repo
            );
            Ok(())
        }
        VaultCmd::Backup {
            dir,
            common,
            parent,
            no_parent,
            jobs,
        } => backup(&common, &dir, parent, no_parent, jobs).await,
        VaultCmd::Restore {
            snapshot,
            common,
            target,
            path,
            jobs,
        } => {
            let acct = open(&common).await?;
            let snap = find_snapshot(&acct, &snapshot).await?;
            restore(&acct, &snap, &path, &target, jobs).await
        }
        VaultCmd::Snapshots { common, json } => {
            let acct = open(&common).await?;
            let snaps = acct.snapshots().await?;
            if json {
                let out: Vec<serde_json::Value> = snaps
                    .iter()
                    .map(|s| {
                        serde_json::json!({
                            "id": s.id, "time": s.time, "parent": s.parent,
                            "meta": s.meta, "stats": s.stats,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "{:<32}  {:<25}  {:>10}  {:>12}  source",
                    "id", "time", "items", "new bytes"
                );
                for s in snaps {
                    println!(
                        "{:<32}  {:<25}  {:>10}  {:>12}  {}",
                        s.id,
                        s.time.format("%Y-%m-%d %H:%M:%S UTC"),
                        s.stats.items,
                        s.stats.stored_bytes,
                        s.meta.get("source").and_then(|v| v.as_str()).unwrap_or("")
                    );
                }
            }
            Ok(())
        }
        VaultCmd::Ls {
            snapshot,
            path,
            common,
        } => {
            let acct = open(&common).await?;
            let snap = find_snapshot(&acct, &snapshot).await?;
            for e in acct.list_folder(&snap, &path).await? {
                let kind = if e.node.is_folder() { "d" } else { "-" };
                println!("{kind} {:>12}  {}", e.node.size(), e.name);
            }
            Ok(())
        }
        VaultCmd::Diff { old, new, common } => {
            let acct = open(&common).await?;
            let a = find_snapshot(&acct, &old).await?;
            let b = find_snapshot(&acct, &new).await?;
            for c in acct.diff(&a, &b).await? {
                match c {
                    vault::Change::Added(p) => println!("+ {p}"),
                    vault::Change::Removed(p) => println!("- {p}"),
                    vault::Change::Modified(p) => println!("M {p}"),
                }
            }
            Ok(())
        }
        VaultCmd::Verify { common, full, json } => {
            let acct = open(&common).await?;
            let bar = Bar::new(full);
            let report = acct.verify(full, &bar).await?;
            bar.finish();
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} snapshots, {} packs ({} unindexed, left by interrupted writers), {} chunks, {} bytes read",
                    report.snapshots,
                    report.packs,
                    report.unindexed_packs,
                    report.chunks,
                    report.bytes_checked
                );
                for p in &report.problems {
                    println!("DAMAGED {}: {}", p.object, p.reason);
                    for i in &p.items {
                        println!("    affects {i}");
                    }
                }
            }
            if !report.ok() {
                bail!("verify found {} problem(s)", report.problems.len());
            }
            println!("no problems found");
            Ok(())
        }
        VaultCmd::Forget {
            ids,
            common,
            keep_last,
            keep_daily,
            keep_weekly,
            keep_monthly,
            keep_within_days,
            gc,
        } => {
            let acct = open(&common).await?;
            let mut gone = Vec::new();
            for id in &ids {
                gone.push(find_snapshot(&acct, id).await?.id);
            }
            acct.forget(&gone).await?;
            let policy = vault::RetentionPolicy {
                keep_last,
                keep_daily,
                keep_weekly,
                keep_monthly,
                keep_within_days,
            };
            if !policy.is_unlimited() {
                gone.extend(acct.apply_retention(&policy).await?);
            }
            for id in &gone {
                println!("forgot {id}");
            }
            if gc {
                print_gc(&acct.gc().await?);
            }
            Ok(())
        }
        VaultCmd::Rekey {
            common,
            new_key_file,
        } => {
            let repo = Repository::open(Location::from_url(&common.repo)?).await?;
            let old = master_key(&repo, &common)?;
            let new = match new_key_file {
                Some(p) => MasterKey::from_hex(
                    &std::fs::read_to_string(&p).with_context(|| p.display().to_string())?,
                )?,
                None => match std::env::var("LIFEBOAT_VAULT_NEW_PASSWORD") {
                    Ok(pw) if !pw.is_empty() => repo.master_key_from_password(&pw)?,
                    _ => {
                        bail!("no new key: pass --new-key-file or set LIFEBOAT_VAULT_NEW_PASSWORD")
                    }
                },
            };
            let a = &common.account;
            repo.rewrap_account(a, &old.account_key(a), &new.account_key(a))
                .await?;
            eprintln!("account {a}: data keys re-wrapped under the new key");
            Ok(())
        }
        VaultCmd::Gc { common, grace_secs } => {
            let acct = open(&common).await?.with_timing(vault::Timing {
                gc_grace: Duration::from_secs(grace_secs),
                ..Default::default()
            });
            print_gc(&acct.gc().await?);
            Ok(())
        }
        VaultCmd::CompactIndex {
            common,
            min_objects,
        } => {
            let r = open(&common).await?.compact_index(min_objects).await?;
            println!(
                "index: {} objects before, {} after ({} merged objects written describing {} packs, {} superseded objects deleted)",
                r.objects_before, r.objects_after, r.written, r.packs, r.deleted
            );
            Ok(())
        }
    }
}

fn print_gc(r: &vault::GcReport) {
    println!(
        "gc: deleted {} packs ({} bytes), condemned {} (deleted by a later gc after the grace period), {} rescued, {} lists waiting, {} partly used packs kept, {} packs under object-lock retention kept, {} objects' retention extended, index objects {} -> {}",
        r.deleted_packs,
        r.deleted_bytes,
        r.condemned,
        r.rescued,
        r.waiting,
        r.partly_used,
        r.locked,
        r.retention_extended,
        r.index.objects_before,
        r.index.objects_after
    );
}

fn master_key(repo: &Repository, common: &Common) -> Result<MasterKey> {
    if let Some(path) = &common.key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?;
        return Ok(MasterKey::from_hex(&text)?);
    }
    match std::env::var("LIFEBOAT_VAULT_PASSWORD") {
        Ok(pw) if !pw.is_empty() => Ok(repo.master_key_from_password(&pw)?),
        _ => bail!("no key: set LIFEBOAT_VAULT_PASSWORD or pass --key-file"),
    }
}

async fn open(common: &Common) -> Result<Account> {
    let repo = Repository::open(Location::from_url(&common.repo)?).await?;
    let master = master_key(&repo, common)?;
    Ok(repo
        .open_account(&common.account, &master.account_key(&common.account))
        .await?)
}

async fn find_snapshot(acct: &Account, which: &str) -> Result<SnapshotInfo> {
    let snaps = acct.snapshots().await?;
    if which == "latest" {
        return snaps.last().cloned().context("no snapshots");
    }
    let matching: Vec<&SnapshotInfo> = snaps.iter().filter(|s| s.id.0.starts_with(which)).collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("no snapshot {which}"),
        _ => bail!("snapshot prefix {which} is ambiguous"),
    }
}

/// Progress bar on a terminal, nothing otherwise.
struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    fn new(bytes: bool) -> Self {
        if !std::io::stderr().is_terminal() {
            return Bar(None);
        }
        let pb = indicatif::ProgressBar::new(0);
        let tpl = if bytes {
            "{elapsed_precise} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{elapsed_precise} [{bar:40}] {pos}/{len}"
        };
        pb.set_style(
            indicatif::ProgressStyle::with_template(tpl)
                .expect("template")
                .progress_chars("=> "),
        );
        Bar(Some(pb))
    }
}

impl Progress for Bar {
    fn set_length(&self, len: u64) {
        if let Some(pb) = &self.0 {
            pb.set_length(len);
            pb.set_position(0);
        }
    }
    fn inc(&self, d: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(d);
        }
    }
    fn finish(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}

struct FileEntry {
    rel: String,
    abs: PathBuf,
    meta: serde_json::Value,
    size: u64,
    symlink: Option<String>,
}

fn file_meta(md: &std::fs::Metadata) -> serde_json::Value {
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    serde_json::json!({ "size": md.len(), "mtime_ns": mtime, "mode": md.permissions().mode() })
}

/// Walk a directory: files (and symlinks) plus every folder.
/// Folders with their metadata.
type Dirs = Vec<(String, serde_json::Value)>;

fn scan(root: &Path) -> Result<(Vec<FileEntry>, Dirs)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(&abs)
            .with_context(|| format!("reading {}", abs.display()))?
            .collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().to_string();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{}", name)
            };
            let md = std::fs::symlink_metadata(e.path())?;
            if md.is_dir() {
                dirs.push((
                    child_rel.clone(),
                    serde_json::json!({ "mode": md.permissions().mode() }),
                ));
                stack.push((e.path(), child_rel));
            } else if md.file_type().is_symlink() {
                let target = std::fs::read_link(e.path())?.to_string_lossy().to_string();
                files.push(FileEntry {
                    rel: child_rel,
                    abs: e.path(),
                    meta: serde_json::json!({ "symlink": target }),
                    size: 0,
                    symlink: Some(target),
                });
            } else if md.is_file() {
                files.push(FileEntry {
                    rel: child_rel,
                    abs: e.path(),
                    meta: file_meta(&md),
                    size: md.len(),
                    symlink: None,
                });
            }
        }
    }
    Ok((files, dirs))
}

async fn backup(
    common: &Common,
    dir: &Path,
    parent: Option<String>,
    no_parent: bool,
    jobs: usize,
) -> Result<()> {
    let started = std::time::Instant::now();
    let acct = open(common).await?;
    let source = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
    let source_s = source.to_string_lossy().to_string();
    let parent: Option<SnapshotId> = if no_parent {
        None
    } else if let Some(p) = parent {
        Some(find_snapshot(&acct, &p).await?.id)
    } else {
        acct.snapshots()
            .await?
            .into_iter()
            .rev()
            .find(|s| s.meta.get("source").and_then(|v| v.as_str()) == Some(&source_s))
            .map(|s| s.id)
    };
    let (files, dirs) = tokio::task::spawn_blocking(move || scan(&source)).await??;
    let total: u64 = files.iter().map(|f| f.size).sum();
    let bar = Bar::new(true);
    bar.set_length(total);
    let w = Arc::new(acct.begin_snapshot(parent.as_ref()).await?);
    for (rel, meta) in &dirs {
        w.put_folder(rel, serde_json::to_vec(meta)?).await?;
    }
    let unchanged = std::sync::atomic::AtomicU64::new(0);
    futures::stream::iter(files)
        .map(|f| {
            let w = w.clone();
            let bar = &bar;
            let unchanged = &unchanged;
            async move {
                let meta = serde_json::to_vec(&f.meta)?;
                if let Some(Node::Item { meta: pm, content }) = w.parent_node(&f.rel).await?
                    && pm == meta
                {
                    w.put_node(&f.rel, Node::Item { meta: pm, content }).await?;
                    bar.inc(f.size);
                    unchanged.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return anyhow::Ok(());
                }
                if let Some(target) = &f.symlink {
                    w.put_bytes(&f.rel, meta, target.clone().into_bytes())
                        .await?;
                } else if f.size <= 8 * 1024 * 1024 {
                    let data = tokio::fs::read(&f.abs)
                        .await
                        .with_context(|| f.abs.display().to_string())?;
                    w.put_bytes(&f.rel, meta, data).await?;
                } else {
                    let file = tokio::fs::File::open(&f.abs)
                        .await
                        .with_context(|| f.abs.display().to_string())?;
                    w.put_item(&f.rel, meta, file).await?;
                }
                bar.inc(f.size);
                Ok(())
            }
        })
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    let w = Arc::try_unwrap(w).map_err(|_| anyhow::anyhow!("writer still shared"))?;
    let stats = w.stats();
    let id = w
        .commit(serde_json::json!({ "source": source_s, "tool": "lifeboat vault backup" }))
        .await?;
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} items ({} unchanged from parent), {:.1} MB in {:.1} s ({:.1} MB/s); new: {} chunks, {:.1} MB raw, {:.1} MB stored; {} dup chunks",
        stats.items,
        unchanged.load(std::sync::atomic::Ordering::Relaxed),
        stats.bytes as f64 / 1e6,
        secs,
        stats.bytes as f64 / 1e6 / secs.max(1e-9),
        stats.new_chunks,
        stats.new_bytes as f64 / 1e6,
        stats.stored_bytes as f64 / 1e6,
        stats.dup_chunks
    );
    println!("{id}");
    Ok(())
}

async fn restore(
    acct: &Account,
    snap: &SnapshotInfo,
    path: &str,
    target: &Path,
    jobs: usize,
) -> Result<()> {
    let entries = acct.walk(snap, path).await?;
    let prefix = vault::split_path(path)?.join("/");
    let strip = |p: &str| -> String {
        if prefix.is_empty() {
            p.to_string()
        } else {
            p[prefix.len()..].trim_start_matches('/').to_string()
        }
    };
    std::fs::create_dir_all(target)?;
    let bar = Bar::new(true);
    bar.set_length(entries.iter().map(|(_, n)| n.size()).sum());
    let mut dirs = Vec::new();
    let mut items = Vec::new();
    for (p, node) in entries {
        let dest = target.join(strip(&p));
        match node {
            Node::Folder { meta, .. } => {
                std::fs::create_dir_all(&dest)?;
                dirs.push((dest, meta));
            }
            Node::Item { meta, content } => items.push((dest, meta, content)),
        }
    }
    futures::stream::iter(items)
        .map(|(dest, meta, content)| {
            let bar = &bar;
            async move {
                let m: serde_json::Value = serde_json::from_slice(&meta).unwrap_or_default();
                if let Some(parent) = dest.parent() {
                    tokio::fs::create_dir_all(parent).await?;
                }
                if let Some(link) = m.get("symlink").and_then(|v| v.as_str()) {
                    let _ = tokio::fs::remove_file(&dest).await;
                    tokio::fs::symlink(link, &dest).await?;
                    return anyhow::Ok(());
                }
                let mut file = tokio::fs::File::create(&dest).await?;
                let mut stream = acct.read_content(&content);
                while let Some(chunk) = stream.try_next().await? {
                    tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
                    bar.inc(chunk.len() as u64);
                }
                tokio::io::AsyncWriteExt::flush(&mut file).await?;
                let file = file.into_std().await;
                apply_meta(&file, &dest, &m)?;
                Ok(())
            }
        })
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    for (dest, meta) in dirs {
        let m: serde_json::Value = serde_json::from_slice(&meta).unwrap_or_default();
        if let Some(mode) = m.get("mode").and_then(|v| v.as_u64()) {
            std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode as u32))?;
        }
    }
    bar.finish();
    eprintln!("restored snapshot {} into {}", snap.id, target.display());
    Ok(())
}

fn apply_meta(file: &std::fs::File, dest: &Path, m: &serde_json::Value) -> Result<()> {
    if let Some(ns) = m.get("mtime_ns").and_then(|v| v.as_u64()) {
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_nanos(ns))?;
    }
    if let Some(mode) = m.get("mode").and_then(|v| v.as_u64()) {
        std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode as u32))?;
    }
    Ok(())
}
