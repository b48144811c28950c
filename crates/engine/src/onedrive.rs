//! OneDrive for Business (SPEC F-D2): which users have a OneDrive, and the
//! backup of one user's OneDrive.
//!
//! A OneDrive backup is one vault snapshot (kind `onedrive`) with a single
//! part, [`SubService::Drive`], laid out by [`crate::drive`] under the
//! folder [`ONEDRIVE_ROOT`]:
//!
//! ```text
//! drive/drive                        the drive's Graph JSON
//! drive/items/<item id>              each driveItem (content: the file's bytes)
//! drive/versions/<item id>/<version> older versions of files
//! drive/permissions/<item id>        sharing permissions of shared items
//! ```

use graph::models::{USER_SELECT, User};
use graph::{BatchItem, GraphClient, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Cancel;
use crate::error::{EngineError, Result};
use crate::exchange::directory_properties;
use crate::faults::FaultBus;
use crate::progress::Progress;
use crate::report::{BackupReport, ItemCounts, SubService};
use crate::run::{self, Ledger, PartCtx, Requests, seg};

/// The snapshot folder a user's OneDrive is backed up into.
pub const ONEDRIVE_ROOT: &str = "drive";

/// A user's OneDrive found in the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiscoveredDrive {
    /// The user's Graph id (the backup addresses the drive as `/users/{id}/drive`).
    pub user_id: String,
    /// The drive's Graph id.
    pub drive_id: String,
    /// The user's display name.
    pub display_name: String,
    /// The user's sign-in name.
    pub user_principal_name: Option<String>,
    /// Primary SMTP address (or the UPN when the user has no mail attribute).
    pub email: Option<String>,
    /// Where the OneDrive is in a browser.
    pub web_url: Option<String>,
    /// Bytes used, when Graph reports the quota.
    pub used_bytes: Option<u64>,
    /// False for disabled accounts (leavers): still backed up, shown as disabled.
    pub account_enabled: bool,
    /// Directory properties for filters and rules (department, city, ...).
    pub properties: Value,
}

/// Every user with a OneDrive. Users are listed once; their drives are asked
/// in `$batch`es of 20 (a 404 means the user has no OneDrive: no license,
/// or never provisioned).
pub async fn discover_drives(graph: &GraphClient) -> Result<Vec<DiscoveredDrive>> {
    let users: Vec<User> = graph
        .get_all_typed(&format!("/users?$select={USER_SELECT}&$top=999"))
        .await?;
    let mut items = Vec::new();
    for u in &users {
        if seg(&u.id).is_err() {
            return Err(EngineError::Invalid(format!(
                "Microsoft Graph listed a user with an unusable id {:?}",
                u.id
            )));
        }
        items.push(BatchItem::get(
            u.id.clone(),
            format!("/users/{}/drive?$select=id,webUrl,driveType,quota", u.id),
        ));
    }
    let results = if items.is_empty() {
        Vec::new()
    } else {
        graph.batch(items).await?
    };
    let by_user: std::collections::HashMap<String, graph::BatchResult> =
        results.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut out = Vec::new();
    for u in &users {
        let Some(r) = by_user.get(&u.id) else {
            continue;
        };
        if r.status == 404 {
            continue;
        }
        if !r.is_success() {
            let why = r.body["error"]["message"]
                .as_str()
                .unwrap_or("no reason given");
            return Err(EngineError::Invalid(format!(
                "could not read the OneDrive of {} ({}): {} {why}",
                u.user_principal_name.as_deref().unwrap_or(&u.id),
                u.id,
                r.status
            )));
        }
        let Some(drive_id) = r.body.get("id").and_then(Value::as_str) else {
            return Err(EngineError::Invalid(format!(
                "Microsoft Graph described the OneDrive of user {} without an id",
                u.id
            )));
        };
        out.push(DiscoveredDrive {
            user_id: u.id.clone(),
            drive_id: drive_id.to_string(),
            display_name: u
                .display_name
                .clone()
                .or_else(|| u.user_principal_name.clone())
                .unwrap_or_else(|| u.id.clone()),
            user_principal_name: u.user_principal_name.clone(),
            email: u.mail.clone().or_else(|| u.user_principal_name.clone()),
            web_url: r
                .body
                .get("webUrl")
                .and_then(Value::as_str)
                .map(str::to_string),
            used_bytes: r.body.pointer("/quota/used").and_then(Value::as_u64),
            account_enabled: u.account_enabled.unwrap_or(true),
            properties: directory_properties(u),
        });
    }
    Ok(out)
}

/// How a OneDrive backup runs. The drive backup's own limits (downloads in
/// flight, page sizes) are the same for every workload that backs up
/// drives; this holds what is particular to OneDrive.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OneDriveOptions {
    /// Stage name shown in progress instead of "drive" (e.g. the user's name).
    pub stage: Option<String>,
}

/// One OneDrive backup.
pub struct OneDriveBackup<'a> {
    /// The tenant's Graph client.
    pub graph: &'a GraphClient,
    /// The account's vault.
    pub vault: &'a vault::Account,
    /// The user whose OneDrive is backed up (Graph id).
    pub user_id: &'a str,
    /// The snapshot of the previous backup of this OneDrive, if any: the new
    /// one starts from it and its delta link.
    pub parent: Option<&'a vault::SnapshotId>,
    /// Options.
    pub options: &'a OneDriveOptions,
    /// Where progress goes.
    pub progress: &'a dyn Progress,
    /// Checked between items.
    pub cancel: &'a Cancel,
    /// Caller metadata stored with the snapshot (task, entity ids), merged
    /// into the engine's own.
    pub meta: Value,
}

/// Backs up one user's OneDrive into a new snapshot. A deleted user (or a
/// user whose OneDrive is gone) is [`EngineError::EntityGone`]; a cancelled
/// backup commits nothing.
pub async fn backup_onedrive(job: OneDriveBackup<'_>) -> Result<BackupReport> {
    let user = seg(job.user_id)?;
    let requests = Requests::default();
    let drive_id = match user_drive_id(job.graph, &requests, user).await? {
        Some(id) => id,
        None => {
            return Err(EngineError::EntityGone(
                if user_exists(job.graph, &requests, user).await? {
                    format!("the OneDrive of user {user}")
                } else {
                    format!("user {user}")
                },
            ));
        }
    };
    let (writer, parent_info) = run::begin(job.vault, job.parent).await?;
    let ctx = PartCtx {
        graph: job.graph,
        vault: job.vault,
        writer: &writer,
        parent: parent_info.as_ref(),
        progress: job.progress,
        cancel: job.cancel,
        requests: &requests,
    };
    let mut ledger = Ledger::new(parent_info.as_ref());
    job.progress
        .set_stage(job.options.stage.as_deref().unwrap_or("drive"));
    let prev = ledger.prev_state(SubService::Drive);
    // A drive that is not the one the parent saw (re-provisioned) starts over.
    let prev = match prev.get("driveId").and_then(Value::as_str) {
        Some(id) if id != drive_id => {
            writer.remove(ONEDRIVE_ROOT).await?;
            Value::Null
        }
        _ => prev,
    };
    let mut bus = FaultBus::default();
    let mut counts = ItemCounts::default();
    let result =
        crate::drive::backup_drive(&ctx, ONEDRIVE_ROOT, &drive_id, &prev, &mut bus, &mut counts)
            .await
            .map(|mut state| {
                if let Value::Object(m) = &mut state {
                    m.insert("driveId".into(), json!(drive_id));
                }
                state
            });
    if let Err(EngineError::Cancelled) = ledger.record(SubService::Drive, result, bus, counts) {
        return Ok(ledger.cancelled(requests.get()));
    }
    if job.cancel.is_cancelled() {
        return Ok(ledger.cancelled(requests.get()));
    }
    ledger
        .commit(
            writer,
            "onedrive",
            json!({ "user": user, "driveId": drive_id }),
            &job.meta,
            requests.get(),
            job.progress,
        )
        .await
}

/// The id of the user's OneDrive, or None when the user has none (404).
async fn user_drive_id(
    graph: &GraphClient,
    requests: &Requests,
    user: &str,
) -> Result<Option<String>> {
    let url = format!("/users/{user}/drive?$select=id");
    let read = crate::drive::with_retry(|| async {
        requests.add(1);
        Ok(graph
            .send(Request::get(url.as_str()))
            .await?
            .json::<Value>()?)
    })
    .await;
    match read {
        Ok(v) => match v.get("id").and_then(Value::as_str) {
            Some(id) => Ok(Some(seg(id)?.to_string())),
            None => Err(EngineError::Invalid(format!(
                "Microsoft Graph described the OneDrive of user {user} without an id"
            ))),
        },
        Err(EngineError::Graph(e)) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}
/// Whether the user still exists in the directory.
async fn user_exists(graph: &GraphClient, requests: &Requests, user: &str) -> Result<bool> {
    let url = format!("/users/{user}?$select=id");
    let read = crate::drive::with_retry(|| async {
        requests.add(1);
        Ok(graph
            .send(Request::get(url.as_str()))
            .await?
            .json::<Value>()?)
    })
    .await;
    match read {
        Ok(_) => Ok(true),
        Err(EngineError::Graph(e)) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
