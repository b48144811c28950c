//! Opening an account before and after index compaction: writes a
//! repository with about PACKS small packs (one index object each), then
//! measures a cold open (open the repository and the account, read one
//! item, which loads the whole index) with the requests it made, compacts
//! the index, and measures again.
//!
//! Usage: `vault-index-bench [REPO_URL] [PACKS]`
//! (default: a temporary directory, 1000 packs; for S3 give
//! `s3://bucket/prefix` with `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, ... set).

use std::time::Instant;
use vault::{InitOptions, Location, MasterKey, Repository, RequestCounts};

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const PACK: u32 = 16 * 1024;
const PER_SNAPSHOT: u64 = 100;

async fn cold_open(
    url: &str,
    key: &vault::AccountKey,
    item: &str,
) -> Result<(f64, RequestCounts), vault::Error> {
    let loc = Location::from_url(url)?;
    let start = Instant::now();
    let acct = Repository::open(loc.clone())
        .await?
        .open_account("bench", key)
        .await?;
    let snaps = acct.snapshots().await?;
    let last = snaps
        .last()
        .ok_or_else(|| vault::Error::Invalid("no snapshot".into()))?;
    acct.read_item_bytes(last, item).await?;
    Ok((start.elapsed().as_secs_f64(), loc.request_counts()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile_dir()?;
    let url = std::env::args().nth(1).unwrap_or_else(|| tmp.clone());
    let packs: u64 = match std::env::args().nth(2) {
        Some(n) => n.parse()?,
        None => 1000,
    };
    let loc = Location::from_url(&url)?;
    let repo = Repository::init(
        loc.clone(),
        InitOptions {
            chunker: vault::ChunkerParams {
                min: 1024,
                avg: 4096,
                max: 16 * 1024,
            },
            pack_size: PACK,
            kdf_m_kib: 1024,
            kdf_t: 1,
            ..Default::default()
        },
    )
    .await?;
    let key = MasterKey::from_bytes([3; 32]).account_key("bench");
    let acct = repo
        .init_account("bench", &key)
        .await?
        .with_index_compaction(0);
    let write_start = Instant::now();
    let mut parent = None;
    let mut written = 0u64;
    let mut round = 0u64;
    while written < packs {
        let w = acct.begin_snapshot(parent.as_ref()).await?;
        if parent.is_some() {
            w.keep_from_parent("").await?;
        }
        for i in 0..PER_SNAPSHOT {
            w.put_bytes(
                &format!("r{round}/{i}"),
                Vec::new(),
                noise(round * PER_SNAPSHOT + i, PACK as usize),
            )
            .await?;
        }
        written += w.stats().packs;
        let id = w.commit(serde_json::Value::Null).await?;
        written += 1; // the last pack, flushed by commit
        parent = Some(id);
        round += 1;
    }
    let item = "r0/0";
    println!(
        "wrote {round} snapshots, about {written} packs in {:.1} s to {url}",
        write_start.elapsed().as_secs_f64()
    );
    let (t_before, c_before) = cold_open(&url, &key, item).await?;
    let start = Instant::now();
    let report = acct.compact_index(2).await?;
    let t_compact = start.elapsed().as_secs_f64();
    let (t_after, c_after) = cold_open(&url, &key, item).await?;
    println!(
        "index objects: {} before, {} after compaction ({:.2} s to compact {} packs)",
        report.objects_before, report.objects_after, t_compact, report.packs
    );
    println!(
        "cold open + first read, before: {:.3} s, {} GET, {} LIST, {} HEAD",
        t_before, c_before.get, c_before.list, c_before.head
    );
    println!(
        "cold open + first read, after:  {:.3} s, {} GET, {} LIST, {} HEAD",
        t_after, c_after.get, c_after.list, c_after.head
    );
    if url == tmp {
        std::fs::remove_dir_all(&tmp)?;
    }
    Ok(())
}

fn tempfile_dir() -> std::io::Result<String> {
    let dir = std::env::temp_dir().join(format!("vault-index-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.to_string_lossy().into_owned())
}
