//! How fast the simulator serves and how much memory it holds.
//!
//! `cargo bench -p graph-sim --bench sim_throughput [-- --users N --seconds S]`
//!
//! The simulator runs on a single-threaded runtime of its own (one core); the
//! load comes from another runtime with 16 concurrent clients. For each
//! request mix it prints requests per second and latency percentiles, then the
//! process's resident memory after a given number of mailboxes and drives were
//! generated, to show that memory stays bounded at 10,000 users.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use graph_sim::SimConfig;
use serde_json::Value;

struct Target {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Target {
    async fn get(&self, url: &str) -> Option<Value> {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}/v1.0{}", self.base, url)
        };
        let r = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    async fn get_bytes(&self, url: &str) -> Option<usize> {
        let url = if url.starts_with("http") {
            url.to_string()
        } else {
            format!("{}/v1.0{}", self.base, url)
        };
        let r = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.bytes().await.ok().map(|b| b.len())
    }
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn measure<F, Fut>(name: &str, seconds: u64, workers: usize, make: F)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let make = Arc::new(make);
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(parking_lot::Mutex::new(Vec::<u32>::new()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (make, ok, failed, latencies, counter) = (
            make.clone(),
            ok.clone(),
            failed.clone(),
            latencies.clone(),
            counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if make(n).await {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                local.push(t.elapsed().as_micros() as u32);
            }
            latencies.lock().extend(local);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut lat = latencies.lock().clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "{name:<34} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>7.2} ms   ({} ok, {} failed)",
        ok as f64 / seconds as f64,
        pct(0.50),
        pct(0.99),
        ok,
        failed.load(Ordering::Relaxed)
    );
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let users = arg("--users", 10_000) as u32;
    let seconds = arg("--seconds", 5);
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    // The simulator: one thread, one core.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let running = graph_sim::start(
                SimConfig::new(users, 42),
                "127.0.0.1:0".parse().expect("addr"),
                false,
            )
            .await
            .expect("start");
            tx.send((running.url.clone(), running.sim.cfg.clone()))
                .expect("send");
            std::future::pending::<()>().await;
        });
    });
    let (base, cfg) = rx.recv().expect("simulator started");
    let started_in = start.elapsed();
    let (rss0, _) = rss_kib();
    let load = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    load.block_on(async move {
        let http = reqwest::Client::new();
        let form = [
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", cfg.client_secret.as_str()),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let tok: Value = http
            .post(format!("{base}/{}/oauth2/v2.0/token", cfg.tenant_id))
            .form(&form)
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        let t = Arc::new(Target {
            base: base.clone(),
            token: tok["access_token"].as_str().unwrap_or_default().to_string(),
            http,
        });
        println!("graph-sim benchmark: {users} users, simulator on one core, {seconds} s per mix");
        println!(
            "started in {:.2} s, resident memory {:.1} MiB",
            started_in.as_secs_f64(),
            rss0 as f64 / 1024.0
        );

        let ids: (Vec<String>, Vec<String>) = {
            let mut out = Vec::new();
            let mut drives = Vec::new();
            let mut next = Some("/users?$top=999&$select=id,mail,assignedLicenses".to_string());
            while let Some(u) = next {
                let Some(v) = t.get(&u).await else { break };
                for x in v["value"].as_array().into_iter().flatten() {
                    let id = x["id"].as_str().unwrap_or_default().to_string();
                    if x["mail"].is_string() {
                        out.push(id.clone());
                    }
                    if x["assignedLicenses"]
                        .as_array()
                        .is_some_and(|l| !l.is_empty())
                    {
                        drives.push(id);
                    }
                }
                next = v["@odata.nextLink"].as_str().map(str::to_string);
            }
            (out, drives)
        };
        let (ids, drive_ids) = (Arc::new(ids.0), Arc::new(ids.1));

        let (tt, ii) = (t.clone(), ids.clone());
        measure("GET /users/{id}", seconds, 16, move |n| {
            let (t, ids) = (tt.clone(), ii.clone());
            async move {
                t.get(&format!("/users/{}", ids[(n as usize * 7919) % ids.len()]))
                    .await
                    .is_some()
            }
        })
        .await;
        let tt = t.clone();
        measure("GET /users?$top=100 (page)", seconds, 16, move |n| {
            let t = tt.clone();
            async move {
                t.get(&format!(
                    "/users?$top=100&$skip={}",
                    (n * 100) % users as u64
                ))
                .await
                .is_some()
            }
        })
        .await;
        // Mail, drives: the first 200 mailboxes, generated on first touch.
        let (tt, ii) = (t.clone(), ids.clone());
        measure("GET inbox messages (top 50)", seconds, 16, move |n| {
            let (t, ids) = (tt.clone(), ii.clone());
            async move {
                t.get(&format!(
                    "/users/{}/mailFolders/inbox/messages?$top=50",
                    ids[n as usize % ids.len().min(200)]
                ))
                .await
                .is_some()
            }
        })
        .await;
        let (tt, ii) = (t.clone(), ids.clone());
        measure("inbox messages delta (first page)", seconds, 16, move |n| {
            let (t, ids) = (tt.clone(), ii.clone());
            async move {
                t.get(&format!(
                    "/users/{}/mailFolders/inbox/messages/delta",
                    ids[n as usize % ids.len().min(200)]
                ))
                .await
                .is_some()
            }
        })
        .await;
        let (tt, ii) = (t.clone(), ids.clone());
        measure("GET message $value (MIME)", seconds, 16, move |n| {
            let (t, ids) = (tt.clone(), ii.clone());
            async move {
                let uid = &ids[n as usize % ids.len().min(50)];
                let Some(v) = t
                    .get(&format!("/users/{uid}/messages?$top=5&$select=id"))
                    .await
                else {
                    return false;
                };
                let Some(mid) = v["value"][(n % 5) as usize]["id"].as_str() else {
                    return false;
                };
                t.get_bytes(&format!("/users/{uid}/messages/{mid}/$value"))
                    .await
                    .is_some()
            }
        })
        .await;
        let (tt, ii) = (t.clone(), drive_ids.clone());
        measure(
            "drive root children (OneDrive users)",
            seconds,
            16,
            move |n| {
                let (t, ids) = (tt.clone(), ii.clone());
                async move {
                    t.get(&format!(
                        "/users/{}/drive/root/children",
                        ids[n as usize % ids.len().min(200)]
                    ))
                    .await
                    .is_some()
                }
            },
        )
        .await;
        let (rss, hwm) = rss_kib();
        println!(
            "after generating up to 200 mailboxes and drives: resident {:.1} MiB (peak {:.1} MiB)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
        // Touch many more mailboxes: memory must stay bounded (unchanged ones are evicted).
        let touched = ids.len().min(3000);
        for uid in ids.iter().take(touched) {
            let _ = t
                .get(&format!(
                    "/users/{uid}/mailFolders/inbox/messages?$top=1&$select=id"
                ))
                .await;
        }
        let (rss, hwm) = rss_kib();
        println!(
            "after touching {touched} mailboxes: resident {:.1} MiB (peak {:.1} MiB)",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    });
}
