//! Search (SPEC F-E3) for workers and API servers: every successful backup
//! of a task that indexes for search feeds the account's index with what
//! changed since the entity's last indexed snapshot; searches read the
//! index from the vault through a local cache; the index can be rebuilt
//! from the vault alone.
//!
//! The entity's last indexed snapshot is kept in the vault beside the
//! index (a named object per entity), so a backup whose indexing failed or
//! was skipped (another worker held the index) is caught up by the next
//! one: it indexes the difference from the last snapshot really indexed.

use std::path::PathBuf;
use std::time::Duration;

use catalog::{AccountId, Entity, EntityId};
use search::{Hit, IndexStats, Query, SearchIndex};

use crate::error::{Result, WorkerError};
use crate::runtime::Runtime;

/// How long indexing waits for another writer of the account's index.
const BUSY_WAIT: Duration = Duration::from_secs(60);

fn state_name(entity: EntityId) -> String {
    format!("search-state/{entity}")
}

fn writer_cache(rt: &Runtime, account: AccountId) -> PathBuf {
    rt.cache_dir()
        .join("search")
        .join(account.to_string())
        .join("writer")
}

fn reader_cache(rt: &Runtime, account: AccountId) -> PathBuf {
    // One reader directory per process: a writer in another process on this
    // machine never rewrites files under a reader's memory maps.
    rt.cache_dir()
        .join("search")
        .join(account.to_string())
        .join(format!("reader-{}", std::process::id()))
}

impl From<search::Error> for WorkerError {
    fn from(e: search::Error) -> Self {
        WorkerError::Search(e.to_string())
    }
}

/// Indexes snapshot `snapshot_id` of `entity`: the difference from the
/// entity's last indexed snapshot, or everything when there is none.
pub async fn index_backup(
    rt: &Runtime,
    account: AccountId,
    entity: EntityId,
    snapshot_id: &str,
) -> Result<IndexStats> {
    let vault = rt.vault_account(account).await?;
    let snapshot = vault.snapshot(&snapshot_id.parse()?).await?;
    let parent = match vault.get_object(&state_name(entity)).await {
        Ok(bytes) => {
            let id = String::from_utf8_lossy(&bytes).to_string();
            match id.parse() {
                // A parent that was purged since is no use: index everything.
                Ok(id) => vault.snapshot(&id).await.ok(),
                Err(_) => None,
            }
        }
        Err(vault::Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if parent.as_ref().is_some_and(|p| p.id == snapshot.id) {
        return Ok(IndexStats::default());
    }
    let cache = writer_cache(rt, account);
    let started = tokio::time::Instant::now();
    let mut index = loop {
        match SearchIndex::open_writer(vault.clone(), &cache).await {
            Ok(i) => break i,
            Err(search::Error::Busy) if started.elapsed() < BUSY_WAIT => {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let result = index
        .index_snapshot(&entity.to_string(), &snapshot, parent.as_ref())
        .await;
    let closed = index.close().await;
    let stats = result?;
    closed?;
    vault
        .put_object(&state_name(entity), snapshot.id.0.to_string().as_bytes())
        .await?;
    Ok(stats)
}

/// Whether `q` asks for anything (keywords or a filter): an empty search
/// would list a whole mailbox, which is what browse is for.
pub fn has_criteria(q: &Query) -> bool {
    let texts = [
        &q.keyword,
        &q.from,
        &q.to,
        &q.subject,
        &q.name,
        &q.description,
        &q.owner,
        &q.author,
        &q.file_name,
        &q.channel,
        &q.sender,
    ];
    texts
        .iter()
        .any(|t| t.as_deref().is_some_and(|t| !t.trim().is_empty()))
        || q.date_range.is_some()
        || !q.kinds.is_empty()
}

/// Searches `entity`'s backups with `query` (its entity key is set here).
pub async fn search_entity(
    rt: &Runtime,
    account: AccountId,
    entity: &Entity,
    mut query: Query,
) -> Result<Vec<Hit>> {
    let vault = rt.vault_account(account).await?;
    query.entity_key = entity.id.to_string();
    let index = SearchIndex::open_reader(vault, &reader_cache(rt, account)).await?;
    Ok(index.search(&query).await?)
}

/// Recreates the account's index from the vault alone: every snapshot of
/// every entity of the account's tasks that index for search.
pub async fn rebuild_index(rt: &Runtime, account: AccountId) -> Result<IndexStats> {
    let vault = rt.vault_account(account).await?;
    let mut per_entity: Vec<(String, Vec<vault::SnapshotInfo>)> = Vec::new();
    let mut latest: Vec<(EntityId, vault::SnapshotId)> = Vec::new();
    let snapshots = vault.snapshots().await?;
    for task in rt.catalog.list_tasks(account, None).await? {
        if !task.settings.index_for_search {
            continue;
        }
        for e in crate::jobs::task_entities(rt, account, task.id).await? {
            let key = e.id.to_string();
            let mut mine: Vec<vault::SnapshotInfo> = snapshots
                .iter()
                .filter(|s| s.meta.get("entity_id").and_then(|v| v.as_str()) == Some(key.as_str()))
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            mine.sort_by_key(|s| s.time);
            if let Some(last) = mine.last() {
                latest.push((e.id, last.id.clone()));
            }
            per_entity.push((key, mine));
        }
    }
    let mut index = SearchIndex::open_writer(vault.clone(), &writer_cache(rt, account)).await?;
    let result = index.rebuild(&per_entity).await;
    let closed = index.close().await;
    let stats = result?;
    closed?;
    for (entity, snap) in latest {
        vault
            .put_object(&state_name(entity), snap.0.to_string().as_bytes())
            .await?;
    }
    Ok(stats)
}
