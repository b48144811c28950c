//! Crash safety: a writer process killed with SIGKILL at random points
//! leaves a repository that verify passes and where the next write works.

mod common;
use common::*;
use std::time::Duration;
use vault::{Location, NoProgress, Node, Repository};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points() {
    kill_9_rounds(6, &[]).await;
}

/// The same with the index compacted after every commit, so kills land
/// inside compactions (between writing a merged index object and deleting
/// what it supersedes) as well as in writes and gc.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_index_compaction() {
    kill_9_rounds(5, &["compact"]).await;
}

async fn kill_9_rounds(rounds: u64, args: &[&str]) {
    let (dir, loc, _repo) = local_repo().await;
    let exe = env!("CARGO_BIN_EXE_vault-torture");
    let mut total_commits = 0;
    for round in 0..rounds {
        let mut child = std::process::Command::new(exe)
            .arg(dir.path())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn vault-torture");
        // Count committed snapshots as the child reports them.
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = {
            let commits = commits.clone();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for _ in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        };
        if round == 0 {
            // Make sure at least one kill lands on a repository with
            // committed snapshots, however slow the machine.
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while commits.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "torture writer committed nothing in 60 s"
                );
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("torture writer exited early ({status})");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let wait_ms = 150 + (rand::random::<u64>() % 1200) + round * 50;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "torture writer exited early ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        counter.join().unwrap();
        total_commits += commits.load(std::sync::atomic::Ordering::SeqCst);

        // The repository is consistent: every snapshot is complete.
        let acct = Repository::open(loc.clone())
            .await
            .unwrap()
            .open_account("torture", &master(7).account_key("torture"))
            .await
            .unwrap();
        let report = acct.verify(round % 2 == 1, &NoProgress).await.unwrap();
        assert!(
            report.ok(),
            "after kill {round} at {wait_ms} ms: {:?}",
            report.problems
        );
        for s in acct.snapshots().await.unwrap() {
            for (path, node) in acct.walk(&s, "").await.unwrap() {
                if let Node::Item { content, .. } = node {
                    let bytes = acct.read_item_bytes(&s, &path).await.unwrap();
                    assert_eq!(bytes.len() as u64, content.size);
                }
            }
        }
    }
    assert!(
        total_commits > 0,
        "the writer never committed: the test would prove nothing"
    );
    if args.contains(&"compact") {
        assert!(
            all_files(dir.path())
                .iter()
                .any(|(n, _)| n.contains("/index/m-")),
            "the writers compacted the index"
        );
    }

    // The next write completes, and gc cleans up what the dead writers left
    // (their locks go stale after `lock_stale`).
    let timing = vault::Timing {
        lock_stale: Duration::from_secs(2),
        ..fast_timing()
    };
    let acct = Repository::open(Location::from_url(dir.path().to_str().unwrap()).unwrap())
        .await
        .unwrap()
        .open_account("torture", &master(7).account_key("torture"))
        .await
        .unwrap()
        .with_timing(timing);
    let parent = acct.snapshots().await.unwrap().last().map(|s| s.id.clone());
    let w = acct.begin_snapshot(parent.as_ref()).await.unwrap();
    w.keep_from_parent("").await.unwrap();
    w.put_bytes("after/crash", Vec::new(), noise(99, 30_000))
        .await
        .unwrap();
    let id = w.commit(serde_json::Value::Null).await.unwrap();
    let snap = acct.snapshot(&id).await.unwrap();
    assert_eq!(
        acct.read_item_bytes(&snap, "after/crash").await.unwrap(),
        noise(99, 30_000)
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    acct.gc().await.unwrap();
    acct.gc().await.unwrap();
    let report = acct.verify(true, &NoProgress).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(
        report.unindexed_packs, 0,
        "gc removes packs of killed writers"
    );
}
