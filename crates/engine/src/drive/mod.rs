//! OneDrive and document libraries (SPEC F-D2, F-D3): the backup of one
//! drive into a folder of a snapshot. OneDrive backups, SharePoint site
//! backups and group/team backups all go through [`backup_drive`].
//!
//! (Being built: this signature is the contract the SharePoint and Teams
//! backups compose with.)

use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::faults::FaultBus;
use crate::report::ItemCounts;
use crate::run::PartCtx;

/// Backs up the drive `drive_id` into the snapshot folder `root` (e.g.
/// `drives/<drive id>`), starting from `prev`, the delta state this
/// function returned for the same drive last time (Null on a first backup).
/// Returns the new delta state.
pub async fn backup_drive(
    ctx: &PartCtx<'_>,
    root: &str,
    drive_id: &str,
    prev: &Value,
    bus: &mut FaultBus,
    counts: &mut ItemCounts,
) -> Result<Value> {
    let _ = (ctx, prev, bus, counts);
    Err(EngineError::Invalid(format!(
        "drive backup of {drive_id} into {root} is not built yet"
    )))
}
