//! # Search: a per-account full-text index over backed-up items
//!
//! One document per item *version* (SPEC F-E3): an item of an entity's
//! snapshot, with the fields every search form of F-E3 asks for, and its
//! validity range:
//! - `valid_from`: the time of the first snapshot that holds this version;
//! - `valid_to`: the time of the first snapshot where it changed or
//!   vanished (`i64::MAX` while current).
//!
//! So "as of snapshot S" is `valid_from <= S.time < valid_to`, and the
//! index grows with what changes, not with the number of snapshots.
//!
//! ```text
//! SearchIndex::open_writer(account, cache)   takes the account's writer lease
//!   .index_snapshot(entity, &snap, Some(&parent))   diff-driven feeding
//!   .rebuild(&[(entity, snapshots in time order)])  from the vault alone
//!   .close()
//! SearchIndex::open_reader(account, cache)   any machine; .refresh() pulls
//!   .search(&Query) -> Vec<Hit>
//! ```
//!
//! The index lives in the vault (see [`sync`]): its files are sealed named
//! objects of the account, the local directory is a cache, and an index
//! opened on a machine with an empty cache downloads it. Another account's
//! key does not open them. Which snapshot paths are items, and how each is
//! read, is documented in [`extract`].
//!
//! Matching: text fields are split at every non-alphanumeric character and
//! lower-cased (tantivy's default tokenizer; words over 40 bytes are
//! dropped); a query value matches a field when every one of its words is a
//! word of the field. A date range `[from, to]` matches items whose span
//! (`date..=date_end`; events: start..end) overlaps it.

pub mod error;
pub mod extract;
pub mod sync;

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tantivy::collector::{Count, TopDocs};
use tantivy::indexer::NoMergePolicy;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query as TQuery, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, STORED, STRING, Schema, TEXT, Value as _,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use error::{Error, Result};
pub use extract::{ItemFields, ItemKind};

/// `valid_to` of a current version.
pub const CURRENT: i64 = i64::MAX;

/// Segments kept before they are merged into one (fewer files to upload
/// and download, faster queries).
const MERGE_AT_SEGMENTS: usize = 8;

/// Memory the index writer buffers before it writes a segment.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;

/// The schema's fields.
#[derive(Clone, Copy)]
struct Fields {
    doc_id: Field,
    entity: Field,
    open_key: Field,
    open_entity: Field,
    kind: Field,
    keyword: Field,
    from: Field,
    to: Field,
    subject: Field,
    name: Field,
    description: Field,
    owner: Field,
    author: Field,
    file_name: Field,
    channel: Field,
    sender: Field,
    date: Field,
    date_end: Field,
    valid_from: Field,
    valid_to: Field,
    record: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let num = NumericOptions::default().set_indexed().set_fast();
    let f = Fields {
        doc_id: b.add_text_field("doc_id", STRING),
        entity: b.add_text_field("entity", STRING),
        open_key: b.add_text_field("open_key", STRING),
        open_entity: b.add_text_field("open_entity", STRING),
        kind: b.add_text_field("kind", STRING),
        keyword: b.add_text_field("keyword", TEXT),
        from: b.add_text_field("from", TEXT),
        to: b.add_text_field("to", TEXT),
        subject: b.add_text_field("subject", TEXT),
        name: b.add_text_field("name", TEXT),
        description: b.add_text_field("description", TEXT),
        owner: b.add_text_field("owner", TEXT),
        author: b.add_text_field("author", TEXT),
        file_name: b.add_text_field("file_name", TEXT),
        channel: b.add_text_field("channel", TEXT),
        sender: b.add_text_field("sender", TEXT),
        date: b.add_i64_field("date", num.clone()),
        date_end: b.add_i64_field("date_end", num.clone()),
        valid_from: b.add_i64_field("valid_from", num.clone()),
        valid_to: b.add_i64_field("valid_to", num),
        record: b.add_text_field("record", STORED),
    };
    (b.build(), f)
}

/// One item version as stored (the `record` field): enough to show a hit
/// and to re-add the document when its version is closed.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Version {
    entity: String,
    path: String,
    valid_from: i64,
    valid_to: i64,
    fields: ItemFields,
}

const SEP: char = '\u{1f}';

fn open_key(entity: &str, path: &str) -> String {
    format!("{entity}{SEP}{path}")
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// When to search.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AsOf {
    /// The versions current now.
    #[default]
    Latest,
    /// The versions a snapshot taken at this time held (pass the snapshot's
    /// `time`).
    Time(DateTime<Utc>),
}

/// A search (SPEC F-E3). Every given filter must match; text values match
/// when all their words occur in the field.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// The entity (mailbox, drive, site, group) searched.
    pub entity_key: String,
    /// Which versions.
    pub as_of: AsOf,
    /// Free text (mail subject and body, contact names, task and note text,
    /// event subject and description, file names and text, messages).
    pub keyword: Option<String>,
    /// Mail sender.
    pub from: Option<String>,
    /// Mail recipient (to, cc, bcc).
    pub to: Option<String>,
    /// Mail subject.
    pub subject: Option<String>,
    /// Contact name.
    pub name: Option<String>,
    /// Event description.
    pub description: Option<String>,
    /// Event organizer.
    pub owner: Option<String>,
    /// File or page author (created or last modified by).
    pub author: Option<String>,
    /// File name.
    pub file_name: Option<String>,
    /// Teams channel name.
    pub channel: Option<String>,
    /// Message or post sender.
    pub sender: Option<String>,
    /// Items whose date span overlaps `[from, to]`.
    pub date_range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Only these kinds (all when empty).
    pub kinds: Vec<ItemKind>,
    /// At most this many hits (best first); 0 means 100.
    pub limit: usize,
}

/// A search result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Hit {
    /// The entity it belongs to.
    pub entity_key: String,
    /// Its path in the snapshot (what a restore or export selects).
    pub path: String,
    /// What it is.
    pub kind: ItemKind,
    /// Subject, name or title.
    pub title: String,
    /// Its date (received, start, due, modified).
    pub date: Option<DateTime<Utc>>,
    /// Time of the first snapshot holding this version.
    pub version_from: DateTime<Utc>,
    /// Relevance (higher is better).
    pub score: f32,
}

/// What one [`SearchIndex::index_snapshot`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Versions added.
    pub added: u64,
    /// Versions closed (changed or vanished).
    pub closed: u64,
    /// Items whose content could not be parsed (indexed with what was readable).
    pub unreadable: u64,
}

/// An account's search index.
pub struct SearchIndex {
    account: vault::Account,
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    writer: Option<IndexWriter>,
    lease: Option<sync::Lease>,
    f: Fields,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("account", &self.account)
            .field("cache", &self.dir)
            .field("writer", &self.writer.is_some())
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Open the account's index for searching, with `cache` as its local
    /// directory (downloaded from the vault if the cache is empty or old).
    pub async fn open_reader(account: vault::Account, cache: &Path) -> Result<SearchIndex> {
        Self::open(account, cache).await
    }

    /// Open the account's index for writing: takes the account's writer
    /// lease ([`Error::Busy`] if another writer holds it).
    pub async fn open_writer(account: vault::Account, cache: &Path) -> Result<SearchIndex> {
        let lease = sync::Lease::acquire(&account).await?;
        let opened = match Self::open(account, cache).await {
            Ok(s) => s
                .index
                .writer_with_num_threads(1, WRITER_MEMORY)
                .map(|w| (s, w))
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        match opened {
            Ok((mut s, w)) => {
                // Merges run in `commit`, so that the files uploaded always
                // match the `meta.json` uploaded with them.
                w.set_merge_policy(Box::new(NoMergePolicy));
                s.writer = Some(w);
                s.lease = Some(lease);
                Ok(s)
            }
            Err(e) => {
                lease.release().await?;
                Err(e)
            }
        }
    }

    async fn open(account: vault::Account, cache: &Path) -> Result<SearchIndex> {
        sync::pull(&account, cache).await?;
        let (schema, f) = schema();
        let dir = tantivy::directory::MmapDirectory::open(cache)?;
        let index = Index::open_or_create(dir, schema)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            account,
            dir: cache.to_path_buf(),
            index,
            reader,
            writer: None,
            lease: None,
            f,
        })
    }

    /// Pull what other writers committed since this index was opened.
    pub async fn refresh(&mut self) -> Result<()> {
        if self.writer.is_none() && sync::pull(&self.account, &self.dir).await? {
            self.reader.reload()?;
        }
        Ok(())
    }

    /// Give up the writer lease (readers: nothing to do).
    pub async fn close(mut self) -> Result<()> {
        if let Some(w) = self.writer.take() {
            w.wait_merging_threads()?;
        }
        if let Some(l) = self.lease.take() {
            l.release().await?;
        }
        Ok(())
    }

    /// Index one snapshot of an entity: with its `parent` (the entity's
    /// previous indexed snapshot), only what changed between them; without,
    /// every item (closing the entity's open versions it no longer holds).
    /// Committed and uploaded to the vault before it returns. Indexing a
    /// snapshot again changes nothing.
    pub async fn index_snapshot(
        &mut self,
        entity_key: &str,
        snapshot: &vault::SnapshotInfo,
        parent: Option<&vault::SnapshotInfo>,
    ) -> Result<IndexStats> {
        if self.writer.is_none() {
            return Err(Error::ReadOnly);
        }
        let t = micros(snapshot.time);
        let mut open = self.open_versions(entity_key)?;
        let mut stats = IndexStats::default();
        let mut channels: HashMap<String, Value> = HashMap::new();
        let mut present: HashSet<String> = HashSet::new();
        let changes: Vec<(String, bool)> = match parent {
            Some(p) => self
                .account
                .diff(p, snapshot)
                .await?
                .into_iter()
                .map(|c| match c {
                    vault::Change::Added(p) | vault::Change::Modified(p) => (p, true),
                    vault::Change::Removed(p) => (p, false),
                })
                .collect(),
            None => self
                .account
                .walk(snapshot, "")
                .await?
                .into_iter()
                .filter(|(_, n)| !n.is_folder())
                .map(|(p, _)| (p, true))
                .collect(),
        };
        for (path, exists) in changes {
            let Some(layout) = extract::classify(&path) else {
                continue;
            };
            if exists {
                present.insert(path.clone());
                if open.get(&path).is_some_and(|v| v.valid_from == t) {
                    continue;
                }
                let node = self.account.lookup(snapshot, &path).await?;
                if node.is_folder() {
                    continue;
                }
                let fields = self
                    .read_fields(snapshot, &path, &node, &layout, &mut channels, &mut stats)
                    .await?;
                if let Some(old) = open.remove(&path) {
                    self.close_version(old, t)?;
                    stats.closed += 1;
                }
                let Some(fields) = fields else { continue };
                self.add_version(Version {
                    entity: entity_key.to_string(),
                    path,
                    valid_from: t,
                    valid_to: CURRENT,
                    fields,
                })?;
                stats.added += 1;
            } else if let Some(old) = open.remove(&path)
                && old.valid_from < t
            {
                self.close_version(old, t)?;
                stats.closed += 1;
            }
        }
        if parent.is_none() {
            for (path, old) in open {
                if !present.contains(&path) && old.valid_from < t {
                    self.close_version(old, t)?;
                    stats.closed += 1;
                }
            }
        }
        self.commit().await?;
        Ok(stats)
    }

    /// Recreate the index from the vault alone: every entity's snapshots,
    /// each list in time order (oldest first).
    pub async fn rebuild(
        &mut self,
        entities: &[(String, Vec<vault::SnapshotInfo>)],
    ) -> Result<IndexStats> {
        let Some(w) = &mut self.writer else {
            return Err(Error::ReadOnly);
        };
        w.delete_all_documents()?;
        w.commit()?;
        self.reader.reload()?;
        let mut total = IndexStats::default();
        for (entity, snaps) in entities {
            let mut sorted: Vec<&vault::SnapshotInfo> = snaps.iter().collect();
            sorted.sort_by_key(|s| s.time);
            let mut parent = None;
            for s in sorted {
                let st = self.index_snapshot(entity, s, parent).await?;
                total.added += st.added;
                total.closed += st.closed;
                total.unreadable += st.unreadable;
                parent = Some(s);
            }
        }
        Ok(total)
    }

    async fn read_fields(
        &self,
        snapshot: &vault::SnapshotInfo,
        path: &str,
        node: &vault::Node,
        layout: &extract::Layout,
        channels: &mut HashMap<String, Value>,
        stats: &mut IndexStats,
    ) -> Result<Option<ItemFields>> {
        use extract::Layout;
        let json = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
        Ok(match layout {
            Layout::Mail => {
                let meta = json(node.meta()).unwrap_or(Value::Null);
                let mime = self.account.read_item_bytes(snapshot, path).await?;
                if meta.is_null() {
                    stats.unreadable += 1;
                }
                Some(extract::mail(&meta, &mime))
            }
            Layout::JsonContent(kind) => {
                let bytes = self.account.read_item_bytes(snapshot, path).await?;
                match json(&bytes) {
                    Some(v) => Some(extract::json_item(*kind, &v)),
                    None => {
                        stats.unreadable += 1;
                        Some(ItemFields {
                            kind: Some(*kind),
                            ..Default::default()
                        })
                    }
                }
            }
            Layout::ChannelMessage { channel_path } => {
                if !channels.contains_key(channel_path) {
                    let meta = match self.account.lookup(snapshot, channel_path).await {
                        Ok(n) => json(n.meta()).unwrap_or(Value::Null),
                        Err(vault::Error::NoSuchEntry(_)) => Value::Null,
                        Err(e) => return Err(e.into()),
                    };
                    channels.insert(channel_path.clone(), meta);
                }
                let channel = channels.get(channel_path).unwrap_or(&Value::Null);
                let bytes = self.account.read_item_bytes(snapshot, path).await?;
                match json(&bytes) {
                    Some(v) => Some(extract::channel_message(&v, channel)),
                    None => {
                        stats.unreadable += 1;
                        Some(ItemFields {
                            kind: Some(ItemKind::ChannelMessage),
                            ..Default::default()
                        })
                    }
                }
            }
            Layout::DriveItem => {
                let Some(meta) = json(node.meta()) else {
                    stats.unreadable += 1;
                    return Ok(None);
                };
                let text = if extract::wants_file_text(&meta, node.size()) {
                    Some(self.account.read_item_bytes(snapshot, path).await?)
                } else {
                    None
                };
                extract::drive_item(&meta, text.as_deref())
            }
        })
    }

    fn writer(&self) -> Result<&IndexWriter> {
        self.writer.as_ref().ok_or(Error::ReadOnly)
    }

    /// The entity's current versions by path.
    fn open_versions(&self, entity: &str) -> Result<HashMap<String, Version>> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(
            Term::from_field_text(self.f.open_entity, entity),
            IndexRecordOption::Basic,
        );
        let n = searcher.search(&q, &Count)?;
        let mut out = HashMap::new();
        if n == 0 {
            return Ok(out);
        }
        for (_, addr) in searcher.search(&q, &TopDocs::with_limit(n).order_by_score())? {
            let v = self.version_at(&searcher, addr)?;
            out.insert(v.path.clone(), v);
        }
        Ok(out)
    }

    fn version_at(&self, searcher: &tantivy::Searcher, addr: DocAddress) -> Result<Version> {
        let doc: TantivyDocument = searcher.doc(addr)?;
        let record = doc
            .get_first(self.f.record)
            .and_then(|v| v.as_str())
            .unwrap_or("");
        Ok(serde_json::from_str(record)?)
    }

    fn doc_id(v: &Version) -> String {
        format!("{}{SEP}{}{SEP}{}", v.entity, v.path, v.valid_from)
    }

    fn add_version(&self, v: Version) -> Result<()> {
        let f = &self.f;
        let x = &v.fields;
        let mut doc = TantivyDocument::new();
        doc.add_text(f.doc_id, Self::doc_id(&v));
        doc.add_text(f.entity, &v.entity);
        if v.valid_to == CURRENT {
            doc.add_text(f.open_key, open_key(&v.entity, &v.path));
            doc.add_text(f.open_entity, &v.entity);
        }
        if let Some(k) = x.kind {
            doc.add_text(f.kind, k.as_str());
        }
        for (field, text) in [
            (f.keyword, &x.keyword),
            (f.from, &x.from),
            (f.to, &x.to),
            (f.subject, &x.subject),
            (f.name, &x.name),
            (f.description, &x.description),
            (f.owner, &x.owner),
            (f.author, &x.author),
            (f.file_name, &x.file_name),
            (f.channel, &x.channel),
            (f.sender, &x.sender),
        ] {
            if !text.is_empty() {
                doc.add_text(field, text);
            }
        }
        if let Some(d) = x.date {
            doc.add_i64(f.date, d);
            doc.add_i64(f.date_end, x.date_end.unwrap_or(d).max(d));
        }
        doc.add_i64(f.valid_from, v.valid_from);
        doc.add_i64(f.valid_to, v.valid_to);
        doc.add_text(f.record, serde_json::to_string(&v)?);
        self.writer()?.add_document(doc)?;
        Ok(())
    }

    fn close_version(&self, mut v: Version, at: i64) -> Result<()> {
        self.writer()?
            .delete_term(Term::from_field_text(self.f.doc_id, &Self::doc_id(&v)));
        v.valid_to = at;
        self.add_version(v)
    }

    async fn commit(&mut self) -> Result<()> {
        let lease = self.lease.as_ref().ok_or(Error::ReadOnly)?;
        lease.renew().await?;
        let w = self.writer.as_mut().ok_or(Error::ReadOnly)?;
        w.commit()?;
        let segments = self.index.searchable_segment_ids()?;
        if segments.len() >= MERGE_AT_SEGMENTS {
            w.merge(&segments).wait()?;
        }
        w.garbage_collect_files().wait()?;
        self.reader.reload()?;
        sync::push(&self.account, &self.dir).await?;
        Ok(())
    }

    fn words(&self, field: Field, text: &str) -> Result<Vec<String>> {
        let mut analyzer = self.index.tokenizer_for_field(field)?;
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            out.push(t.text.clone());
        }
        Ok(out)
    }

    /// Run a search. Only the query's entity is searched.
    pub async fn search(&self, q: &Query) -> Result<Vec<Hit>> {
        let f = &self.f;
        let mut must: Vec<Box<dyn TQuery>> = vec![Box::new(TermQuery::new(
            Term::from_field_text(f.entity, &q.entity_key),
            IndexRecordOption::Basic,
        ))];
        let t = match q.as_of {
            AsOf::Latest => CURRENT - 1,
            AsOf::Time(t) => micros(t),
        };
        must.push(Box::new(RangeQuery::new(
            Bound::Unbounded,
            Bound::Included(Term::from_field_i64(f.valid_from, t)),
        )));
        must.push(Box::new(RangeQuery::new(
            Bound::Excluded(Term::from_field_i64(f.valid_to, t)),
            Bound::Unbounded,
        )));
        for (field, value) in [
            (f.keyword, &q.keyword),
            (f.from, &q.from),
            (f.to, &q.to),
            (f.subject, &q.subject),
            (f.name, &q.name),
            (f.description, &q.description),
            (f.owner, &q.owner),
            (f.author, &q.author),
            (f.file_name, &q.file_name),
            (f.channel, &q.channel),
            (f.sender, &q.sender),
        ] {
            let Some(value) = value else { continue };
            for w in self.words(field, value)? {
                must.push(Box::new(TermQuery::new(
                    Term::from_field_text(field, &w),
                    IndexRecordOption::WithFreqs,
                )));
            }
        }
        if let Some((from, to)) = q.date_range {
            must.push(Box::new(RangeQuery::new(
                Bound::Unbounded,
                Bound::Included(Term::from_field_i64(f.date, to.timestamp())),
            )));
            must.push(Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_i64(f.date_end, from.timestamp())),
                Bound::Unbounded,
            )));
        }
        if !q.kinds.is_empty() {
            let any: Vec<(Occur, Box<dyn TQuery>)> = q
                .kinds
                .iter()
                .map(|k| {
                    let tq: Box<dyn TQuery> = Box::new(TermQuery::new(
                        Term::from_field_text(f.kind, k.as_str()),
                        IndexRecordOption::Basic,
                    ));
                    (Occur::Should, tq)
                })
                .collect();
            must.push(Box::new(BooleanQuery::new(any)));
        }
        must.push(Box::new(AllQuery));
        let query = BooleanQuery::intersection(must);
        let limit = if q.limit == 0 { 100 } else { q.limit };
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let v = self.version_at(&searcher, addr)?;
            // Never trust the index alone across entities.
            if v.entity != q.entity_key {
                continue;
            }
            hits.push(Hit {
                entity_key: v.entity,
                path: v.path,
                kind: v.fields.kind.unwrap_or(ItemKind::File),
                title: v.fields.title,
                date: v
                    .fields
                    .date
                    .and_then(|d| DateTime::<Utc>::from_timestamp(d, 0)),
                version_from: DateTime::<Utc>::from_timestamp_micros(v.valid_from)
                    .unwrap_or_default(),
                score,
            });
        }
        Ok(hits)
    }
}
