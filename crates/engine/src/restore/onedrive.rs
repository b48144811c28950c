//! OneDrive restore (SPEC F-E5): a `onedrive` snapshot (drive layout under
//! [`crate::onedrive::ONEDRIVE_ROOT`]) written into a user's OneDrive, the
//! original one or another user's. Another tenant is simply a `ctx.graph`
//! signed in to that tenant, with a user of it as destination.

use graph::Request;
use serde_json::Value;

use super::{RestoreCtx, RestoreReport, SnapshotKind, Tally};
use crate::error::{EngineError, Result};
use crate::onedrive::ONEDRIVE_ROOT;
use crate::report::SubService;
use crate::run::seg;

/// Restores a OneDrive snapshot. The destination is `ctx.destination` (a
/// user id, whose drive is `/users/{id}/drive`), or else the snapshot's own
/// user, or else its drive id.
pub async fn restore_onedrive(ctx: &RestoreCtx<'_>) -> Result<RestoreReport> {
    if SnapshotKind::of(ctx.snapshot)? != SnapshotKind::OneDrive {
        return Err(EngineError::Invalid(format!(
            "snapshot {} is not a OneDrive backup",
            ctx.snapshot.id.0
        )));
    }
    ctx.selection
        .validate(SnapshotKind::OneDrive.sub_services())
        .map_err(EngineError::Invalid)?;
    let tally = Tally::new(ctx);
    let meta = &ctx.snapshot.meta;
    let user = ctx
        .destination
        .or_else(|| meta.get("user").and_then(Value::as_str));
    let drive_id = match user {
        Some(u) => user_drive(ctx, &tally, seg(u)?).await?,
        None => meta
            .get("driveId")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                EngineError::Invalid("the snapshot names neither its user nor its drive".into())
            })?,
    };
    if ctx.selection.touches(SubService::Drive) {
        super::drive::restore_drive_tree(ctx, &tally, ONEDRIVE_ROOT, &drive_id).await?;
    }
    let mut report = tally.report(ctx.cancel.is_cancelled());
    report.destination = Some(drive_id);
    if ctx.options.mode == super::RestoreMode::NonDestructive {
        report.location = Some(super::drive::restore_folder_name(ctx.options));
    }
    ctx.progress.finish();
    Ok(report)
}

/// The id of the user's OneDrive; a user without one is the destination gone.
async fn user_drive(ctx: &RestoreCtx<'_>, tally: &Tally<'_>, user: &str) -> Result<String> {
    tally.requests(1);
    match ctx
        .graph
        .send(Request::get(format!("/users/{user}/drive?$select=id")))
        .await
    {
        Ok(r) => r
            .json::<Value>()?
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                EngineError::Invalid(format!(
                    "Microsoft Graph described the OneDrive of user {user} without an id"
                ))
            }),
        Err(e) if e.is_not_found() => Err(EngineError::EntityGone(format!(
            "the OneDrive of user {user}"
        ))),
        Err(e) => Err(e.into()),
    }
}
