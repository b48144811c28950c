//! Collaboration: group conversations, teams, channels, channel messages, migration import.
//! (Being written: see the workload brief.)

use std::sync::Arc;

use axum::Router;

use crate::{ActivityReport, EntityRef, Sim, TruthItem, Workload};

pub struct CollabStore {}

impl CollabStore {
    pub fn new(_capacity: usize) -> Self {
        CollabStore {}
    }
}

impl Workload for CollabStore {
    fn name(&self) -> &'static str {
        "collab"
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
