//! Mail: mail folders, messages (MIME and JSON), attachments, delta.
//! (Being written: see the workload brief.)

use std::sync::Arc;

use axum::Router;

use crate::error::{GraphError, GraphResult};
use crate::{ActivityReport, EntityRef, Sim, TruthItem, Workload};

pub struct MailStore {}

impl MailStore {
    pub fn new(_capacity: usize) -> Self {
        MailStore {}
    }
}

impl Workload for MailStore {
    fn name(&self) -> &'static str {
        "mail"
    }
    fn truth(&self, _sim: &Sim, _entity: &EntityRef) -> Vec<TruthItem> {
        Vec::new()
    }
    fn simulate_day(
        &self,
        _sim: &Sim,
        _entity: &EntityRef,
        _rng: &mut crate::rng::SimRng,
        _report: &mut ActivityReport,
    ) {
    }
    fn entity_deleted(&self, _sim: &Sim, _entity: &EntityRef) {}
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
}

/// Deletes every message in a folder (a mass deletion for disaster tests).
pub fn purge_folder(_sim: &Sim, _user: &str, _folder: &str) -> GraphResult<u64> {
    Err(GraphError::outlook_not_found())
}
