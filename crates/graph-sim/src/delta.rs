//! Change tracking shared by every delta-capable collection.
//!
//! Every mutation in the tenant takes the next value of one tenant-wide
//! sequence. A collection remembers, per item, the sequence of its last change
//! and, per removed item, the sequence of its removal. A delta token is just
//! "changes after sequence S" for one collection (plus the epoch in which it
//! was issued, so that the simulator can invalidate tokens on demand), so
//! tokens are stateless and cost the simulator nothing to keep.
//!
//! Paging a delta round is stable: the first page fixes the upper sequence
//! `upto`; later pages walk the same `(since, upto]` window in id order,
//! resuming after the last id returned (keyset paging, never offsets: an
//! item that changes while a client pages leaves the window without shifting
//! the others). Whatever changes while a client pages shows up in its next
//! round, as with Graph.

use std::collections::BTreeMap;

use crate::error::{GraphError, GraphResult};
use crate::odata::{decode_token, encode_token};

#[derive(Debug, Clone)]
pub struct Tracked<T> {
    pub seq: u64,
    pub value: T,
}

#[derive(Debug, Clone)]
pub struct Removal {
    pub seq: u64,
    pub id: String,
    /// Graph's `@removed.reason`: "deleted" or "changed".
    pub reason: &'static str,
}

/// A collection of items with change tracking, keyed by stable id.
#[derive(Debug, Clone)]
pub struct DeltaLog<T> {
    items: BTreeMap<String, Tracked<T>>,
    removed: Vec<Removal>,
    /// Tokens from before this sequence are expired (their removals were pruned).
    floor: u64,
}

impl<T> Default for DeltaLog<T> {
    fn default() -> Self {
        Self {
            items: BTreeMap::new(),
            removed: Vec::new(),
            floor: 0,
        }
    }
}

/// Where a delta request starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// No token: a full enumeration of what exists now.
    Initial,
    /// A page of a round: changes in `(since, upto]`, after `after`.
    Page {
        since: Option<u64>,
        upto: u64,
        after: Option<Position>,
    },
}

/// The last entry a page returned: changed items come first (by id), then removals (by id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub removals: bool,
    pub id: String,
}

/// One page of a delta round.
pub struct DeltaPage<'a, T> {
    pub changed: Vec<(&'a str, &'a T)>,
    pub removed: Vec<&'a Removal>,
    /// Token for the next page, when there is one.
    pub next_token: Option<String>,
    /// Token for the next round, on the last page.
    pub delta_token: Option<String>,
}

/// How a token failure is reported: Outlook and drives use different codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFlavor {
    Outlook,
    Drive,
}

impl TokenFlavor {
    fn gone(self) -> GraphError {
        match self {
            TokenFlavor::Outlook => GraphError::sync_state_not_found(),
            TokenFlavor::Drive => GraphError::resync_required(),
        }
    }
}

impl<T> DeltaLog<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        self.items.get(id).map(|t| &t.value)
    }

    pub fn get_tracked(&self, id: &str) -> Option<&Tracked<T>> {
        self.items.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.items.contains_key(id)
    }

    /// Mutable access that records a change at `seq`.
    pub fn get_mut(&mut self, id: &str, seq: u64) -> Option<&mut T> {
        self.items.get_mut(id).map(|t| {
            t.seq = seq;
            &mut t.value
        })
    }

    /// Mutable access that does not count as a change (bookkeeping only).
    pub fn peek_mut(&mut self, id: &str) -> Option<&mut T> {
        self.items.get_mut(id).map(|t| &mut t.value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.items.iter().map(|(k, v)| (k.as_str(), &v.value))
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.items.values().map(|t| &t.value)
    }

    /// Inserts or replaces an item, as changed at `seq`.
    pub fn upsert(&mut self, id: impl Into<String>, value: T, seq: u64) {
        let id = id.into();
        self.removed.retain(|r| r.id != id);
        self.items.insert(id, Tracked { seq, value });
    }

    /// Removes an item, recording the removal at `seq`.
    pub fn remove(&mut self, id: &str, seq: u64, reason: &'static str) -> Option<T> {
        let t = self.items.remove(id)?;
        self.removed.push(Removal {
            seq,
            id: id.to_string(),
            reason,
        });
        Some(t.value)
    }

    /// Forgets removals up to `seq`: tokens issued before it expire, as Graph's do.
    pub fn expire_before(&mut self, seq: u64) {
        self.removed.retain(|r| r.seq > seq);
        self.floor = self.floor.max(seq);
    }

    /// A page of the delta round `cursor` describes; `now` is the tenant's current sequence.
    pub fn page(
        &self,
        scope: &str,
        epoch: u64,
        cursor: Cursor,
        now: u64,
        page_size: usize,
    ) -> DeltaPage<'_, T> {
        let (since, upto, after) = match cursor {
            Cursor::Initial => (None, now, None),
            Cursor::Page { since, upto, after } => (since, upto, after),
        };
        let page_size = page_size.max(1);
        let in_window = |seq: u64| seq <= upto && since.is_none_or(|s| seq > s);
        let mut changed = Vec::new();
        let mut removed: Vec<&Removal> = Vec::new();
        let mut more = false;
        let in_removals = after.as_ref().is_some_and(|p| p.removals);
        if !in_removals {
            let start = match &after {
                Some(p) => std::ops::Bound::Excluded(p.id.clone()),
                None => std::ops::Bound::Unbounded,
            };
            for (k, t) in self.items.range((start, std::ops::Bound::Unbounded)) {
                if !in_window(t.seq) {
                    continue;
                }
                if changed.len() == page_size {
                    more = true;
                    break;
                }
                changed.push((k.as_str(), &t.value));
            }
        }
        // An initial round reports what exists; removals only matter to a client that synced before.
        if since.is_some() && !more {
            let mut candidates: Vec<&Removal> = self
                .removed
                .iter()
                .filter(|r| in_window(r.seq))
                .filter(|r| match &after {
                    Some(p) if p.removals => r.id > p.id,
                    _ => true,
                })
                .collect();
            candidates.sort_by(|a, b| a.id.cmp(&b.id));
            let room = page_size - changed.len();
            if candidates.len() > room {
                more = true;
                candidates.truncate(room);
            }
            removed = candidates;
        }
        let last = match (removed.last(), changed.last()) {
            (Some(r), _) => Some(Position {
                removals: true,
                id: r.id.clone(),
            }),
            (None, Some((id, _))) => Some(Position {
                removals: false,
                id: id.to_string(),
            }),
            (None, None) => after.clone(),
        };
        let (next_token, delta_token) = if more {
            (
                Some(encode_cursor(
                    scope,
                    epoch,
                    &Cursor::Page {
                        since,
                        upto,
                        after: last,
                    },
                )),
                None,
            )
        } else {
            (
                None,
                Some(encode_cursor(
                    scope,
                    epoch,
                    &Cursor::Page {
                        since: Some(upto),
                        upto: 0,
                        after: None,
                    },
                )),
            )
        };
        DeltaPage {
            changed,
            removed,
            next_token,
            delta_token,
        }
    }

    /// The token `?token=latest` answers with: changes from now on.
    pub fn latest_token(scope: &str, epoch: u64, now: u64) -> String {
        encode_cursor(
            scope,
            epoch,
            &Cursor::Page {
                since: Some(now),
                upto: 0,
                after: None,
            },
        )
    }

    /// Decodes a token for this collection. A token for another collection, from
    /// an earlier epoch, expired, or garbled gets Graph's 410.
    pub fn cursor(
        &self,
        scope: &str,
        epoch: u64,
        now: u64,
        token: Option<&str>,
        flavor: TokenFlavor,
    ) -> GraphResult<Cursor> {
        let Some(token) = token else {
            return Ok(Cursor::Initial);
        };
        let (tok_scope, tok_epoch, cursor) = decode_cursor(token).ok_or_else(|| flavor.gone())?;
        if tok_scope != scope_hash(scope) || tok_epoch != epoch {
            return Err(flavor.gone());
        }
        match cursor {
            // A delta link: the round starts now.
            Cursor::Page {
                since: Some(s),
                upto: 0,
                after: None,
            } => {
                if s < self.floor || s > now {
                    return Err(flavor.gone());
                }
                Ok(Cursor::Page {
                    since: Some(s),
                    upto: now,
                    after: None,
                })
            }
            Cursor::Page { since, .. } if since.is_some_and(|s| s < self.floor) => {
                Err(flavor.gone())
            }
            c => Ok(c),
        }
    }
}

fn scope_hash(scope: &str) -> String {
    blake3::hash(scope.as_bytes()).to_hex()[..16].to_string()
}

fn encode_cursor(scope: &str, epoch: u64, cursor: &Cursor) -> String {
    let text = match cursor {
        Cursor::Initial => format!("d2|{}|{}|i", scope_hash(scope), epoch),
        Cursor::Page { since, upto, after } => format!(
            "d2|{}|{}|{}|{}|{}",
            scope_hash(scope),
            epoch,
            since.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            upto,
            match after {
                None => "-".to_string(),
                Some(p) => format!(
                    "{}{}",
                    if p.removals { 'r' } else { 'c' },
                    hex::encode(p.id.as_bytes())
                ),
            }
        ),
    };
    encode_token(&text)
}

fn decode_cursor(token: &str) -> Option<(String, u64, Cursor)> {
    let text = decode_token(token)?;
    let parts: Vec<&str> = text.split('|').collect();
    if parts.first() != Some(&"d2") || parts.len() < 4 {
        return None;
    }
    let scope = parts[1].to_string();
    let epoch = parts[2].parse().ok()?;
    if parts[3] == "i" {
        return Some((scope, epoch, Cursor::Initial));
    }
    if parts.len() != 6 {
        return None;
    }
    let since = if parts[3] == "-" {
        None
    } else {
        Some(parts[3].parse().ok()?)
    };
    let after = match parts[5] {
        "-" => None,
        p => {
            let (kind, id) = p.split_at(1);
            let id = String::from_utf8(hex::decode(id).ok()?).ok()?;
            Some(Position {
                removals: kind == "r",
                id,
            })
        }
    };
    Some((
        scope,
        epoch,
        Cursor::Page {
            since,
            upto: parts[4].parse().ok()?,
            after,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<T>(p: &DeltaPage<'_, T>) -> Vec<String> {
        p.changed.iter().map(|(k, _)| k.to_string()).collect()
    }

    #[test]
    fn rounds_report_exactly_the_changes() {
        let mut log = DeltaLog::new();
        let mut seq = 0;
        for i in 0..5 {
            seq += 1;
            log.upsert(format!("m{i}"), i, seq);
        }
        let first = log.page("s", 0, Cursor::Initial, seq, 3);
        assert_eq!(ids(&first), ["m0", "m1", "m2"]);
        let next = log
            .cursor(
                "s",
                0,
                seq,
                first.next_token.as_deref(),
                TokenFlavor::Outlook,
            )
            .unwrap();
        // A change while paging shows in the next round, not this one.
        seq += 1;
        *log.get_mut("m4", seq).unwrap() = 40;
        let second = log.page("s", 0, next, seq, 3);
        assert_eq!(ids(&second), ["m3"]);
        let token = second.delta_token.unwrap();
        seq += 1;
        log.remove("m1", seq, "deleted");
        seq += 1;
        log.upsert("m9", 9, seq);
        let c = log
            .cursor("s", 0, seq, Some(&token), TokenFlavor::Outlook)
            .unwrap();
        let round2 = log.page("s", 0, c, seq, 10);
        assert_eq!(ids(&round2), ["m4", "m9"]);
        assert_eq!(
            round2
                .removed
                .iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>(),
            ["m1"]
        );
        let c = log
            .cursor(
                "s",
                0,
                seq,
                round2.delta_token.as_deref(),
                TokenFlavor::Outlook,
            )
            .unwrap();
        let empty = log.page("s", 0, c, seq, 10);
        assert!(empty.changed.is_empty() && empty.removed.is_empty());
    }

    #[test]
    fn a_change_while_paging_never_hides_another_item() {
        let mut log = DeltaLog::new();
        let mut seq = 0;
        for i in 0..6 {
            seq += 1;
            log.upsert(format!("m{i}"), i, seq);
        }
        let first = log.page("s", 0, Cursor::Initial, seq, 2);
        assert_eq!(ids(&first), ["m0", "m1"]);
        let mut seen = ids(&first);
        let next = first.next_token.clone();
        // m1 (already returned) and m2 (not yet) change mid-round.
        seq += 1;
        *log.get_mut("m1", seq).unwrap() = 10;
        seq += 1;
        *log.get_mut("m2", seq).unwrap() = 20;
        let mut cursor = log
            .cursor("s", 0, seq, next.as_deref(), TokenFlavor::Outlook)
            .unwrap();
        let delta_token = loop {
            let p = log.page("s", 0, cursor, seq, 2);
            seen.extend(ids(&p));
            match p.next_token {
                Some(t) => {
                    cursor = log
                        .cursor("s", 0, seq, Some(&t), TokenFlavor::Outlook)
                        .unwrap()
                }
                None => break p.delta_token.unwrap(),
            }
        };
        assert_eq!(
            seen,
            ["m0", "m1", "m3", "m4", "m5"],
            "m2 left this round without shifting m3 out"
        );
        let c = log
            .cursor("s", 0, seq, Some(&delta_token), TokenFlavor::Outlook)
            .unwrap();
        assert_eq!(
            ids(&log.page("s", 0, c, seq, 10)),
            ["m1", "m2"],
            "the next round brings both changes"
        );
    }

    #[test]
    fn removals_page_after_changes() {
        let mut log = DeltaLog::new();
        for i in 0..4 {
            log.upsert(format!("a{i}"), i, 1);
        }
        let base = log
            .page("s", 0, Cursor::Initial, 1, 10)
            .delta_token
            .unwrap();
        log.remove("a0", 2, "deleted");
        log.remove("a1", 3, "deleted");
        log.upsert("b", 9, 4);
        let mut cursor = log
            .cursor("s", 0, 4, Some(&base), TokenFlavor::Outlook)
            .unwrap();
        let mut got = Vec::new();
        loop {
            let p = log.page("s", 0, cursor, 4, 1);
            got.extend(ids(&p));
            got.extend(p.removed.iter().map(|r| format!("-{}", r.id)));
            match p.next_token {
                Some(t) => {
                    cursor = log
                        .cursor("s", 0, 4, Some(&t), TokenFlavor::Outlook)
                        .unwrap()
                }
                None => break,
            }
        }
        assert_eq!(got, ["b", "-a0", "-a1"]);
    }

    #[test]
    fn bad_foreign_stale_and_expired_tokens_are_gone() {
        let mut log: DeltaLog<u32> = DeltaLog::new();
        log.upsert("a", 1, 1);
        let p = log.page("s", 0, Cursor::Initial, 1, 10);
        let tok = p.delta_token.unwrap();
        assert!(
            log.cursor("s", 0, 1, Some("garbage"), TokenFlavor::Outlook)
                .unwrap_err()
                .status
                == 410
        );
        assert!(
            log.cursor("other", 0, 1, Some(&tok), TokenFlavor::Drive)
                .unwrap_err()
                .code
                == "resyncRequired"
        );
        assert!(
            log.cursor("s", 1, 1, Some(&tok), TokenFlavor::Outlook)
                .is_err()
        );
        log.expire_before(5);
        assert_eq!(
            log.cursor("s", 0, 6, Some(&tok), TokenFlavor::Outlook)
                .unwrap_err()
                .code,
            "SyncStateNotFound"
        );
    }
}
