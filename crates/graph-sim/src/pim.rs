//! PIM: contacts and contact folders, calendars and events, To Do lists and tasks.
//! (Being written: see the workload brief.)

use std::sync::Arc;

use axum::Router;

use crate::{ActivityReport, EntityRef, Sim, TruthItem, Workload};

pub struct PimStore {}

impl PimStore {
    pub fn new(_capacity: usize) -> Self {
        PimStore {}
    }
}

impl Workload for PimStore {
    fn name(&self) -> &'static str {
        "pim"
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
