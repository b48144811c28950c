//! Files: drives, drive items, versions, permissions, upload sessions, sites, lists.
//! (Being written: see the workload brief.)

use std::sync::Arc;

use axum::Router;

use crate::error::{GraphError, GraphResult};
use crate::{ActivityReport, EntityRef, Sim, TruthItem, Workload};

pub struct FileStore {}

impl FileStore {
    pub fn new(_capacity: usize) -> Self {
        FileStore {}
    }
}

impl Workload for FileStore {
    fn name(&self) -> &'static str {
        "files"
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

/// Pre-authenticated download URLs (no bearer token, as Graph's are).
pub fn public_routes() -> Router<Arc<Sim>> {
    Router::new()
}

/// Ids of every site in the tenant.
pub fn site_ids(_sim: &Sim) -> Vec<String> {
    Vec::new()
}

/// Deletes a site and everything in it.
pub fn delete_site(_sim: &Sim, id: &str) -> GraphResult<()> {
    Err(GraphError::item_not_found(format!("Site {id} not found")))
}

/// Rewrites every file of a drive with high-entropy bytes and renames it, as ransomware does.
pub fn ransomware(_sim: &Sim, id: &str) -> GraphResult<u64> {
    Err(GraphError::item_not_found(format!("Drive {id} not found")))
}

/// The folder of a team channel in its group's document library (created on
/// first use), as the driveItem JSON `GET /teams/{id}/channels/{id}/filesFolder` returns.
pub fn channel_folder(
    _sim: &Sim,
    _group_id: &str,
    _channel_name: &str,
) -> Option<serde_json::Value> {
    None
}
