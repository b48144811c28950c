//! The fault bus of a run: item failures, recoverable errors and deliberately
//! skipped items are kept apart, each with its reason, and the run's outcome
//! (SPEC F-D6) is computed from them, never guessed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Some items failed; they are named in the run's log.
    Partial,
    /// Nothing useful was done, with a reason a person understands.
    Failed,
    Cancelled,
}

/// One item that could not be backed up (or restored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailure {
    pub item_id: String,
    /// Where a person finds it: "Inbox/Projects/Quarterly report".
    pub path: String,
    pub reason: String,
}

/// An item left out on purpose, and why (e.g. "public folders: no API access since October 2026").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct FaultBus {
    pub item_failures: Vec<ItemFailure>,
    /// Errors that did not stop the run (a retried request, a resynced delta).
    pub recovered: Vec<String>,
    pub skipped: Vec<Skipped>,
    /// The error that stopped the run, if one did.
    pub fatal: Option<String>,
    pub cancelled: bool,
}

impl FaultBus {
    pub fn item_failed(
        &mut self,
        item_id: impl Into<String>,
        path: impl Into<String>,
        reason: impl Into<String>,
    ) {
        self.item_failures.push(ItemFailure {
            item_id: item_id.into(),
            path: path.into(),
            reason: reason.into(),
        });
    }

    pub fn recovered(&mut self, what: impl Into<String>) {
        self.recovered.push(what.into());
    }

    pub fn skip(&mut self, what: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skipped {
            what: what.into(),
            reason: reason.into(),
        });
    }

    pub fn fail(&mut self, reason: impl Into<String>) {
        self.fatal.get_or_insert_with(|| reason.into());
    }

    /// The outcome, given how many items were done successfully.
    pub fn outcome(&self, items_done: u64) -> Outcome {
        if self.cancelled {
            Outcome::Cancelled
        } else if self.fatal.is_some() {
            // A run that stopped early but saved items is still partial: what it saved is restorable.
            if items_done > 0 {
                Outcome::Partial
            } else {
                Outcome::Failed
            }
        } else if self.item_failures.is_empty() {
            Outcome::Success
        } else if items_done == 0 {
            Outcome::Failed
        } else {
            Outcome::Partial
        }
    }

    /// One line for the activity log.
    pub fn summary(&self, items_done: u64) -> String {
        let mut s = format!("{items_done} items");
        if !self.item_failures.is_empty() {
            s.push_str(&format!(", {} failed", self.item_failures.len()));
        }
        if !self.skipped.is_empty() {
            s.push_str(&format!(", {} skipped", self.skipped.len()));
        }
        if let Some(f) = &self.fatal {
            s.push_str(&format!("; stopped: {f}"));
        }
        s
    }

    pub fn merge(&mut self, other: FaultBus) {
        self.item_failures.extend(other.item_failures);
        self.recovered.extend(other.recovered);
        self.skipped.extend(other.skipped);
        if self.fatal.is_none() {
            self.fatal = other.fatal;
        }
        self.cancelled |= other.cancelled;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_faults() {
        let mut bus = FaultBus::default();
        assert_eq!(bus.outcome(10), Outcome::Success);
        bus.recovered("delta token expired; full enumeration");
        bus.skip("Public folders", "no API access since October 2026");
        assert_eq!(
            bus.outcome(10),
            Outcome::Success,
            "recovered errors and skips do not degrade a run"
        );
        bus.item_failed("m1", "Inbox/Big", "413 from Graph");
        assert_eq!(bus.outcome(10), Outcome::Partial);
        assert_eq!(bus.outcome(0), Outcome::Failed);
        let mut fatal = FaultBus::default();
        fatal.fail("consent revoked");
        fatal.fail("second reason is not kept");
        assert_eq!(fatal.outcome(0), Outcome::Failed);
        assert_eq!(fatal.outcome(3), Outcome::Partial);
        assert_eq!(fatal.fatal.as_deref(), Some("consent revoked"));
        bus.merge(fatal);
        assert!(
            bus.summary(10).contains("1 failed")
                && bus.summary(10).contains("stopped: consent revoked")
        );
        bus.cancelled = true;
        assert_eq!(bus.outcome(10), Outcome::Cancelled);
    }
}
