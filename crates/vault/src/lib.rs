//! # Vault: Lifeboat's storage engine
//!
//! Encrypted, deduplicated, point-in-time storage of *items* (an email, a
//! file version, a JSON record: bytes plus small metadata) in folders, on any
//! `object_store` backend (local disk, S3 and compatibles, Azure Blob, GCS).
//!
//! ```text
//! Repository::open(Location::from_url(url)?)       one bucket/prefix
//!   .open_account(account_id, &master.account_key(account_id))
//!     .begin_snapshot(parent)  -> SnapshotWriter  put_item / put_bytes /
//!                                                  keep_from_parent / remove
//!       .commit(meta_json)     -> SnapshotId
//!     .snapshots() .lookup() .read_item() .list_folder() .walk() .diff()
//!     .apply_retention(policy) .gc() .verify(full)
//! ```
//!
//! ## Keys
//! A service-wide [`MasterKey`] (from a KMS, a key file, or a password
//! through Argon2id with the repository's salt) derives one key-encryption
//! key per account ([`AccountKey`]). Each account has random *data keys*: an
//! encryption key (XChaCha20-Poly1305), an id key (keyed BLAKE3 chunk ids)
//! and a FastCDC gear seed. They are stored wrapped by the account key in
//! `keys/`; rotating the account (or master) key re-wraps them
//! ([`Repository::rewrap_account`]) without touching data. Accounts never
//! share chunks: ids are keyed per account, so no account can read, or even
//! confirm the existence of, another account's content.
//!
//! ## On-store layout
//! ```text
//! config                                   plaintext JSON + BLAKE3 checksum:
//!                                          repo id, chunker, pack size, KDF salt
//! accounts/<loc>/keys/<kid>                data keys wrapped by the account key
//! accounts/<loc>/data/<xx>/<pack>          packs: header + encrypted blobs
//! accounts/<loc>/index/<pack>              sealed list of the pack's blobs
//! accounts/<loc>/index/m-<id>              sealed merged index of many packs
//! accounts/<loc>/snapshots/<id>            sealed snapshot (root tree, metadata)
//! accounts/<loc>/locks/<id>                sealed leases of writers and gc
//! accounts/<loc>/gc/<id>                   sealed gc condemnation lists
//! accounts/<loc>/objects/<name>            sealed named objects (search index files)
//! ```
//! `<loc>` is a hash of the repository id and the account id, so account
//! ids are not visible. `<pack>` is the BLAKE3 hash of the pack's bytes.
//! Every object starts with a header: `LBV`, a kind byte and a u16 format
//! version (see [`mod@format`]); readers accept all versions up to their own.
//! Sealed objects are `header || nonce || ciphertext || tag` with the header
//! and the object's name authenticated, so objects cannot be swapped. A
//! blob in a pack is `nonce || ciphertext || tag` of a flag byte (stored or
//! zstd) and the chunk, with the chunk id authenticated; on read the chunk
//! is also re-hashed and compared with its id. Nothing is readable at rest:
//! item names, folder structure, metadata and snapshot metadata live only in
//! encrypted trees and snapshot objects.
//!
//! Items are cut with FastCDC (4/16/128 KiB by default); an item smaller
//! than the minimum is stored whole as one chunk. Folders are trees
//! serialised with postcard and stored like items, so they are chunked and
//! deduplicated too: a snapshot that changes one item of a large mailbox
//! folder stores a few new chunks of that folder, and untouched subtrees are
//! shared by reference.
//!
//! ## Index memory
//! The in-memory index maps the first 128 bits of a chunk id to a 16-byte
//! location (pack number, offset, length, plaintext length): a 32-byte slot
//! plus one control byte in a hash table that is between 7/16 and 7/8 full,
//! i.e. 38–75 bytes per unique chunk, about 50 on average (≈ 3 MB per GB of
//! unique data at the 16 KiB average chunk; 64 MB for 20 GB). Pack ids
//! (32 bytes) and lengths are stored once per pack (about 80 bytes per pack
//! with the bookkeeping of merged index objects, i.e. 0.1 byte per chunk at
//! 1,000 chunks per pack). 128 bits suffice in
//! memory because ids are keyed (nobody can construct collisions); the full
//! 256-bit id is authenticated on every read. A writer additionally keeps a
//! 16-byte entry per new chunk of the snapshot in progress, and at most
//! 1 + 1 + 2 packs (16 MiB each) in memory while they upload. While the
//! index loads, one merged index object at a time is held decoded (about
//! 60 bytes per chunk it describes, at most 200,000 chunks: 12 MB).
//!
//! ## Index compaction
//! A writer gives each pack its own small index object, so after thousands
//! of packs opening an account would list and GET thousands of objects.
//! Compaction (like restic's and kopia's index merging) merges the one-pack
//! objects, and merged objects less than half full, into merged objects of
//! up to [`MERGED_MAX_BLOBS`] chunks (`index/m-<random>`). It runs after a
//! writer's commit once [`DEFAULT_COMPACT_AT`] one-pack objects exist
//! ([`Account::with_index_compaction`]), at the end of every gc, and on
//! demand ([`Account::compact_index`], `lifeboat vault compact-index`).
//! * *Crash-safe*: the merged objects are durable before anything they
//!   supersede is deleted; a kill in between leaves packs described twice
//!   (loading deduplicates by pack id, verify counts them once, the next
//!   compaction removes the leftovers), never a pack without an index.
//! * *Gap-free loading*: if an index object disappears between the listing
//!   and its GET (merged or deleted meanwhile), the loader lists again, so a
//!   reader, writer or gc never sees an indexed pack as unindexed.
//! * *Concurrency*: writers only add one-pack objects, which compaction
//!   deletes only after merging them. gc and compaction run one at a time
//!   (each takes a maintenance lock and backs off with [`Error::Busy`] if
//!   another live one exists; gc first waits up to a minute for a
//!   compaction), because gc rewrites merged objects when it deletes packs
//!   (the rewritten object first, then the old one, then the packs), and a
//!   compaction running at that moment could describe a pack again right
//!   after gc deleted it, which a later writer would then deduplicate
//!   against.

//! ## Crash safety
//! Objects are immutable and written whole (object stores make a PUT
//! atomic; the local backend writes a temporary file, fsyncs and renames).
//! A writer uploads a pack, then that pack's index object, and only after
//! every pack and index of the snapshot (including its tree chunks) is
//! durable does it PUT the snapshot object. So a snapshot, once visible,
//! references only durable chunks. A kill at any point leaves at most packs
//! without an index, or indexed packs no snapshot references: both are
//! invisible to readers, reported by `verify` as unindexed (not as damage)
//! and removed by gc. The next writer never trusts a chunk it has not seen
//! in an index object, so it re-uploads anything a dead writer left
//! half-done. Several writers can run at once: every name they create is
//! random or content-addressed, so they never overwrite each other.
//!
//! ## Garbage collection
//! `forget`/retention deletes snapshot objects only. `gc` is two-phase and
//! never deletes what a concurrent writer may still reference:
//! 1. *Condemn*: compute the chunks reachable from all snapshots; packs
//!    with no reachable chunk (and packs without an index) are listed in a
//!    new `gc/<id>` object. Its store timestamp is T1. Nothing is deleted.
//! 2. *Sweep* (a later run): a list is swept only if it is older than the
//!    grace period **and** no live writer lock started before T1 (+ clock
//!    margin). Reachability is then recomputed over the current snapshots
//!    and only still-unreferenced packs are deleted (index entries first:
//!    their one-pack objects deleted and merged objects rewritten without
//!    them; then the packs).
//!
//! Writers take their lock *before* they read the condemnation lists, the
//! index and the parent snapshot, and never deduplicate against condemned
//! packs. So a writer that started after T1 cannot reference a condemned
//! pack, and a writer that started before T1 blocks the sweep until it ends.
//! Locks are refreshed periodically; gc ignores locks not refreshed for
//! `lock_stale`, and a writer refuses to commit if its own last refresh is
//! older than half of that. All times compared are the store's clock.
//!
//! Packs that are less than half used are *repacked* in phase 1: their
//! reachable chunks are authenticated and their sealed bytes copied (not
//! re-encrypted) into new packs, whose index objects are written before the
//! old packs are condemned. The sweep deletes a condemned pack only if every
//! reachable chunk in it is also held by a pack that is not being swept, so
//! a repack interrupted at any point loses nothing. Readers whose cached
//! index points at a deleted pack reload the index and retry once.
//!
//! ## Object Lock
//! For immutable backups (S3 Object Lock), the operator:
//! 1. creates the bucket with Object Lock enabled (this turns versioning
//!    on): `aws s3api create-bucket --bucket B --object-lock-enabled-for-bucket`;
//! 2. gives it a default retention of N days, COMPLIANCE (nobody, the root
//!    account included, can shorten it) or GOVERNANCE (principals with
//!    `s3:BypassGovernanceRetention` can): `aws s3api
//!    put-object-lock-configuration --bucket B --object-lock-configuration
//!    '{"ObjectLockEnabled":"Enabled","Rule":{"DefaultRetention":{"Mode":"COMPLIANCE","Days":N}}}'`;
//! 3. adds a lifecycle rule that expires noncurrent versions (after a day)
//!    and expired delete markers: whatever the vault deletes (its locks,
//!    gc lists, superseded index objects; packs and snapshots once their
//!    retention ended) stays stored, and billed, as a noncurrent version
//!    until that rule removes it, which S3 allows only after its retention;
//! 4. initialises the repository with the same N:
//!    `lifeboat vault init --repo s3://B/prefix --object-lock-days N`.
//!
//! Every object version is then immutable for N days from its upload,
//! whatever credentials an attacker holds: a DELETE without a version id
//! only adds a delete marker, a DELETE of the version is refused. The vault
//! uploads with a SHA-256 checksum and `x-amz-sdk-checksum-algorithm`
//! ([`s3_builder_from_env`]), without which S3 refuses uploads into such a
//! bucket. It honours the retention: `forget` refuses ([`Error::Retained`])
//! and retention policies skip snapshots younger than N days, and gc never
//! condemns, repacks or deletes a pack younger than N days (counted in
//! [`GcReport::locked`]), so it never hides a retained pack behind a delete
//! marker; it collects such packs once their retention has ended.
//!
//! The bucket default covers every object the vault writes (each is new,
//! so each gets the default retention; no per-object headers are needed at
//! upload). It is not enough for old data: a pack's default retention runs
//! from its upload, while a new snapshot that deduplicates against it needs
//! it for N days from the snapshot. So every gc run extends, with
//! PutObjectRetention (signed with `object_store`'s SigV4 signer, in the
//! mode the bucket gave the `config` object), the retention of every pack
//! a snapshot still uses, of the index objects describing them, of the key
//! files and of the config to N days from the run
//! ([`GcReport::retention_extended`]); garbage is not extended and expires.
//! Run gc at least every few days (N days minus the gap between gc runs is
//! the guaranteed immutability of shared data). This needs the location to
//! know it is on S3: [`Location::from_url`] with `s3://` does that, a
//! hand-built store needs [`Location::with_s3_object_lock`]. The
//! credentials need `s3:PutObjectRetention` (and, for GOVERNANCE,
//! nothing more: extending never needs the bypass permission).

#![warn(missing_docs)]

mod chunker;
mod compact;
mod crypto;
mod error;
pub mod format;
mod gc;
mod index;
mod lock;
mod objects;
mod progress;
mod reader;
mod repo;
mod snapshot;
mod store;
mod tree;
mod verify;
mod writer;

pub use compact::{CompactReport, DEFAULT_COMPACT_AT};
pub use crypto::{AccountKey, ChunkId, MasterKey};
pub use error::{Error, Result};
pub use gc::{GcReport, RetentionPolicy};
pub use index::{MERGED_MAX_BLOBS, PackId};
pub use objects::NamedObject;
pub use progress::{NoProgress, Progress};
pub use reader::Change;
pub use repo::{Account, ChunkerParams, InitOptions, KdfParams, RepoConfig, Repository, Timing};
pub use snapshot::{SnapshotId, SnapshotInfo, SnapshotStats};
pub use store::{Location, RequestCounts, s3_builder_from_env};
pub use tree::{Content, Entry, Node, Tree, split_path};
pub use writer::SnapshotWriter;
