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
//! `upto`; later pages walk the same `(since, upto]` window by id. Whatever
//! changes while a client pages shows up in its next round, as with Graph.

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// No token: a full enumeration of what exists now.
    Initial,
    /// A page of a round: changes in `(since, upto]`, from `offset`.
    Page {
        since: Option<u64>,
        upto: u64,
        offset: usize,
    },
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
        let (since, upto, offset) = match cursor {
            Cursor::Initial => (None, now, 0),
            Cursor::Page {
                since,
                upto,
                offset,
            } => (since, upto, offset),
        };
        let in_window = |seq: u64| seq <= upto && since.is_none_or(|s| seq > s);
        let changed: Vec<(&str, &T)> = self
            .items
            .iter()
            .filter(|(_, t)| in_window(t.seq))
            .map(|(k, t)| (k.as_str(), &t.value))
            .collect();
        // An initial round reports what exists; removals only matter to a client that synced before.
        let removed: Vec<&Removal> = if since.is_some() {
            let mut r: Vec<&Removal> = self.removed.iter().filter(|r| in_window(r.seq)).collect();
            r.sort_by(|a, b| a.id.cmp(&b.id));
            r
        } else {
            Vec::new()
        };
        let total = changed.len() + removed.len();
        let end = (offset + page_size).min(total);
        let mut page_changed = Vec::new();
        let mut page_removed = Vec::new();
        for i in offset..end {
            if i < changed.len() {
                page_changed.push(changed[i]);
            } else {
                page_removed.push(removed[i - changed.len()]);
            }
        }
        let (next_token, delta_token) = if end < total {
            (
                Some(encode_cursor(
                    scope,
                    epoch,
                    Cursor::Page {
                        since,
                        upto,
                        offset: end,
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
                    Cursor::Page {
                        since: Some(upto),
                        upto: 0,
                        offset: 0,
                    },
                )),
            )
        };
        DeltaPage {
            changed: page_changed,
            removed: page_removed,
            next_token,
            delta_token,
        }
    }

    /// The token `?token=latest` answers with: changes from now on.
    pub fn latest_token(scope: &str, epoch: u64, now: u64) -> String {
        encode_cursor(
            scope,
            epoch,
            Cursor::Page {
                since: Some(now),
                upto: 0,
                offset: 0,
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
                offset: 0,
            } => {
                if s < self.floor || s > now {
                    return Err(flavor.gone());
                }
                Ok(Cursor::Page {
                    since: Some(s),
                    upto: now,
                    offset: 0,
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

fn encode_cursor(scope: &str, epoch: u64, cursor: Cursor) -> String {
    let text = match cursor {
        Cursor::Initial => format!("d1|{}|{}|i", scope_hash(scope), epoch),
        Cursor::Page {
            since,
            upto,
            offset,
        } => format!(
            "d1|{}|{}|{}|{}|{}",
            scope_hash(scope),
            epoch,
            since.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            upto,
            offset
        ),
    };
    encode_token(&text)
}

fn decode_cursor(token: &str) -> Option<(String, u64, Cursor)> {
    let text = decode_token(token)?;
    let parts: Vec<&str> = text.split('|').collect();
    if parts.first() != Some(&"d1") || parts.len() < 4 {
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
    Some((
        scope,
        epoch,
        Cursor::Page {
            since,
            upto: parts[4].parse().ok()?,
            offset: parts[5].parse().ok()?,
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
