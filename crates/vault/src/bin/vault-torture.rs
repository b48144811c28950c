//! Writes snapshots to a local vault repository in a loop until killed, and
//! runs gc now and then. The crash tests kill it with SIGKILL at random
//! points and then check the repository.
//!
//! Usage: `vault-torture REPO_DIR [compact]`  (prints each committed
//! snapshot id). With `compact`, the index is compacted after every commit,
//! so kills often land inside an index compaction.

use std::io::Write;
use vault::{Location, MasterKey, Repository, Timing};

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 251) as u8
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: vault-torture REPO_DIR")?;
    let repo = Repository::open(Location::from_url(&dir)?).await?;
    let key = MasterKey::from_bytes([7; 32]).account_key("torture");
    let acct = repo
        .open_or_init_account("torture", &key)
        .await?
        .with_timing(Timing {
            lock_stale: std::time::Duration::from_secs(20),
            lock_refresh: std::time::Duration::from_millis(500),
            gc_grace: std::time::Duration::ZERO,
            clock_margin: std::time::Duration::from_secs(1),
        })
        .with_index_compaction(if std::env::args().nth(2).as_deref() == Some("compact") {
            2
        } else {
            vault::DEFAULT_COMPACT_AT
        });
    let mut parent = acct.snapshots().await?.last().map(|s| s.id.clone());
    let start: u64 = rand::random::<u32>() as u64;
    for round in start.. {
        let w = acct.begin_snapshot(parent.as_ref()).await?;
        if parent.is_some() {
            w.keep_from_parent("").await?;
        }
        for i in 0..6u64 {
            let len = 1000 + ((round * 7919 + i * 104_729) % 60_000) as usize;
            let data = noise(round * 16 + i, len);
            w.put_bytes(
                &format!("r{}/item{i}", round % 5),
                format!("{{\"round\":{round}}}").into_bytes(),
                data,
            )
            .await?;
        }
        let id = w.commit(serde_json::json!({ "round": round })).await?;
        println!("{id}");
        std::io::stdout().flush()?;
        parent = Some(id);
        if round % 4 == 0 {
            let policy = vault::RetentionPolicy {
                keep_last: Some(3),
                ..Default::default()
            };
            acct.apply_retention(&policy).await?;
            match acct.gc().await {
                // A gc of a killed predecessor still holds a live lock.
                Ok(_) | Err(vault::Error::Busy(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
