//! Progress reporting: the engine knows no UI.

/// A sink for progress of long operations.
pub trait Progress: Send + Sync {
    /// Total amount of work, when known.
    fn set_length(&self, _len: u64) {}
    /// Work done since the last call.
    fn inc(&self, _delta: u64) {}
    /// Finished.
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}
