//! Progress of long work, reported through a sink the caller chooses: a
//! terminal progress bar, job progress in the catalog, or nothing in tests.

/// Receives progress. Implementations must be cheap: the engine calls them per item.
pub trait Progress: Send + Sync {
    /// What is being done now ("Inbox", "Documents/Reports").
    fn set_stage(&self, _stage: &str) {}
    /// Total items and bytes, when known (they may grow as enumeration proceeds).
    fn set_total(&self, _items: u64, _bytes: u64) {}
    /// Items and bytes just completed.
    fn advance(&self, _items: u64, _bytes: u64) {}
    /// The work is over.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Progress that remembers totals; useful for tests and for sinks that poll.
#[derive(Default)]
pub struct CountingProgress {
    state: parking_lot::Mutex<ProgressState>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProgressState {
    pub stage: String,
    pub total_items: u64,
    pub total_bytes: u64,
    pub done_items: u64,
    pub done_bytes: u64,
    pub finished: bool,
}

impl CountingProgress {
    pub fn snapshot(&self) -> ProgressState {
        self.state.lock().clone()
    }
}

impl Progress for CountingProgress {
    fn set_stage(&self, stage: &str) {
        self.state.lock().stage = stage.to_string();
    }
    fn set_total(&self, items: u64, bytes: u64) {
        let mut s = self.state.lock();
        s.total_items = items;
        s.total_bytes = bytes;
    }
    fn advance(&self, items: u64, bytes: u64) {
        let mut s = self.state.lock();
        s.done_items += items;
        s.done_bytes += bytes;
    }
    fn finish(&self) {
        self.state.lock().finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_progress_adds_up() {
        let p = CountingProgress::default();
        let sink: &dyn Progress = &p;
        sink.set_stage("Inbox");
        sink.set_total(10, 1000);
        sink.advance(3, 300);
        sink.advance(2, 50);
        sink.finish();
        let s = p.snapshot();
        assert_eq!(
            (
                s.stage.as_str(),
                s.done_items,
                s.done_bytes,
                s.total_items,
                s.finished
            ),
            ("Inbox", 5, 350, 10, true)
        );
        NoProgress.advance(1, 1);
    }
}
