//! The test and demo control API under `/_sim` (not Graph): simulated user
//! activity, disasters, ground truth and knobs. It needs no token: it is for
//! the operator of the simulator, not for the app under test.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{GraphError, GraphResult};
use crate::{ActivityReport, EntityRef, Sim, TruthItem, directory, files, mail};

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/info", get(info))
        .route("/_sim/stats", get(stats))
        .route("/_sim/stats/reset", post(reset_stats))
        .route("/_sim/activity", post(activity))
        .route("/_sim/clock/advance", post(advance_clock))
        .route("/_sim/users/{id}/delete", post(delete_user))
        .route("/_sim/groups/{id}/delete", post(delete_group))
        .route("/_sim/sites/{id}/delete", post(delete_site))
        .route("/_sim/sites", post(create_site))
        .route(
            "/_sim/users/{id}/mailFolders/{folder}/purge",
            post(purge_folder),
        )
        .route("/_sim/drives/{id}/ransomware", post(ransomware))
        .route("/_sim/truth/users/{id}", get(truth_user))
        .route("/_sim/truth/groups/{id}", get(truth_group))
        .route("/_sim/truth/sites/{id}", get(truth_site))
        .route("/_sim/delta/invalidate", post(invalidate_delta))
        .route("/_sim/faults", post(set_faults))
        .route("/_sim/consent", post(consent))
        .route("/_sim/secret", post(secret))
}

async fn info(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let dir = sim.directory.read();
    Json(json!({
        "tenantId": sim.cfg.tenant_id,
        "domain": sim.cfg.domain,
        "clientId": sim.cfg.client_id,
        "clientSecret": sim.cfg.client_secret,
        "seed": sim.cfg.seed,
        "users": dir.live_users().count(),
        "groups": dir.live_groups().count(),
        "now": crate::graph_time(sim.now()),
        "throttle": format!("{:?}", sim.cfg.throttle),
    }))
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(serde_json::to_value(sim.stats.snapshot()).unwrap_or_default())
}

async fn reset_stats(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.stats.reset();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityRequest {
    #[serde(default = "one")]
    days: u32,
    /// Share of entities that see activity each day (0..=1).
    #[serde(default = "full")]
    fraction: f64,
    /// Only these entities (`user:ID`, `group:ID`, `site:ID`); all when absent.
    #[serde(default)]
    entities: Option<Vec<String>>,
}

fn one() -> u32 {
    1
}
fn full() -> f64 {
    1.0
}

fn parse_entity(s: &str) -> GraphResult<EntityRef> {
    match s.split_once(':') {
        Some(("user", id)) => Ok(EntityRef::User(id.to_string())),
        Some(("group", id)) => Ok(EntityRef::Group(id.to_string())),
        Some(("site", id)) => Ok(EntityRef::Site(id.to_string())),
        _ => Err(GraphError::bad_request(format!(
            "Unknown entity '{s}': use user:ID, group:ID or site:ID."
        ))),
    }
}

/// Every entity that holds data: mailbox users, groups, and sites.
pub fn all_entities(sim: &Sim) -> Vec<EntityRef> {
    let mut out: Vec<EntityRef> = {
        let dir = sim.directory.read();
        let mut v: Vec<EntityRef> = dir
            .live_users()
            .map(|u| EntityRef::User(u.id.clone()))
            .collect();
        v.extend(dir.live_groups().map(|g| EntityRef::Group(g.id.clone())));
        v
    };
    out.extend(files::site_ids(sim).into_iter().map(EntityRef::Site));
    out
}

/// Simulates `days` days of what people do, advancing the tenant's clock a day each.
pub fn simulate_days(
    sim: &Sim,
    days: u32,
    fraction: f64,
    only: Option<Vec<EntityRef>>,
) -> ActivityReport {
    let mut total = ActivityReport::default();
    for _ in 0..days {
        sim.advance_clock(86_400);
        let day = sim.next_activity_day();
        if only.is_none() {
            let mut rng =
                crate::rng::rng_for(sim.seed(), &["directory-activity", &day.to_string()]);
            directory::simulate_directory_day(sim, &mut rng, &mut total);
        }
        let entities = only.clone().unwrap_or_else(|| all_entities(sim));
        for entity in entities {
            let key = serde_json::to_string(&entity).unwrap_or_default();
            let mut rng = crate::rng::rng_for(sim.seed(), &["activity", &day.to_string(), &key]);
            if fraction < 1.0 && !rng.random_bool(fraction.clamp(0.0, 1.0)) {
                continue;
            }
            for w in sim.workloads() {
                w.simulate_day(sim, &entity, &mut rng, &mut total);
            }
        }
    }
    total
}

async fn activity(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<ActivityRequest>,
) -> GraphResult<Json<Value>> {
    let only = req
        .entities
        .map(|v| {
            v.iter()
                .map(|s| parse_entity(s))
                .collect::<GraphResult<Vec<_>>>()
        })
        .transpose()?;
    let sim2 = sim.clone();
    let report =
        tokio::task::spawn_blocking(move || simulate_days(&sim2, req.days, req.fraction, only))
            .await
            .map_err(|e| {
                GraphError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internalServerError",
                    e.to_string(),
                )
            })?;
    Ok(Json(
        json!({"days": req.days, "report": report, "now": crate::graph_time(sim.now())}),
    ))
}

#[derive(Deserialize)]
struct AdvanceRequest {
    #[serde(default)]
    days: i64,
    #[serde(default)]
    hours: i64,
}

async fn advance_clock(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<AdvanceRequest>,
) -> Json<Value> {
    sim.advance_clock(req.days * 86_400 + req.hours * 3_600);
    Json(json!({"now": crate::graph_time(sim.now())}))
}

async fn delete_user(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> GraphResult<StatusCode> {
    directory::delete_user_now(&sim, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_group(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> GraphResult<StatusCode> {
    directory::delete_group_now(&sim, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_site(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> GraphResult<StatusCode> {
    files::delete_site(&sim, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSite {
    name: String,
    display_name: String,
}

/// An administrator creates a site (Graph v1.0 cannot): the first step of
/// restoring a deleted site.
async fn create_site(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<NewSite>,
) -> GraphResult<Json<Value>> {
    let id = files::create_site(&sim, &req.name, &req.display_name)?;
    Ok(Json(json!({ "id": id })))
}

async fn purge_folder(
    State(sim): State<Arc<Sim>>,
    Path((id, folder)): Path<(String, String)>,
) -> GraphResult<Json<Value>> {
    let n = mail::purge_folder(&sim, &id, &folder)?;
    Ok(Json(json!({"deleted": n})))
}

async fn ransomware(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let n = files::ransomware(&sim, &id)?;
    Ok(Json(json!({"encrypted": n})))
}

fn truth_of(sim: &Sim, entity: EntityRef) -> Json<Value> {
    let mut items: Vec<TruthItem> = Vec::new();
    for w in sim.workloads() {
        items.extend(w.truth(sim, &entity));
    }
    items.sort_by(|a, b| {
        (a.workload.as_str(), a.path.as_str(), a.id.as_str()).cmp(&(
            b.workload.as_str(),
            b.path.as_str(),
            b.id.as_str(),
        ))
    });
    Json(json!({"entity": entity, "at": crate::graph_time(sim.now()), "items": items}))
}

async fn truth_user(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let uid = sim
        .directory
        .read()
        .user(&id)
        .map(|u| u.id.clone())
        .ok_or_else(|| GraphError::directory_not_found(&id))?;
    Ok(truth_of(&sim, EntityRef::User(uid)))
}

async fn truth_group(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    let gid = sim
        .directory
        .read()
        .group(&id)
        .map(|g| g.id.clone())
        .ok_or_else(|| GraphError::directory_not_found(&id))?;
    Ok(truth_of(&sim, EntityRef::Group(gid)))
}

async fn truth_site(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
) -> GraphResult<Json<Value>> {
    Ok(truth_of(&sim, EntityRef::Site(id)))
}

#[derive(Deserialize)]
struct FaultsRequest {
    /// Share of Graph requests that fail (0 turns injection off).
    rate: f64,
    /// `503`, `429`, `drop`, `malformed`; all but `malformed` when absent.
    #[serde(default)]
    kinds: Option<Vec<String>>,
}

/// Changes fault injection while the simulator serves.
async fn set_faults(
    State(sim): State<Arc<Sim>>,
    Json(req): Json<FaultsRequest>,
) -> GraphResult<Json<Value>> {
    let kinds = match req.kinds {
        Some(k) => k
            .iter()
            .map(|s| s.parse::<crate::config::FaultKind>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(GraphError::bad_request)?,
        None => vec![
            crate::config::FaultKind::Unavailable,
            crate::config::FaultKind::Throttled,
            crate::config::FaultKind::Drop,
        ],
    };
    if !(0.0..=1.0).contains(&req.rate) {
        return Err(GraphError::bad_request("rate must be between 0 and 1"));
    }
    sim.set_faults(req.rate, kinds);
    let (rate, kinds) = sim.faults();
    Ok(Json(
        json!({"rate": rate, "kinds": kinds.iter().map(|k| format!("{k:?}")).collect::<Vec<_>>()}),
    ))
}

async fn invalidate_delta(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.invalidate_delta_tokens();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Flag {
    #[serde(default)]
    granted: Option<bool>,
    #[serde(default)]
    expired: Option<bool>,
}

async fn consent(State(sim): State<Arc<Sim>>, Json(f): Json<Flag>) -> StatusCode {
    sim.auth.set_consent(f.granted.unwrap_or(true));
    StatusCode::NO_CONTENT
}

async fn secret(State(sim): State<Arc<Sim>>, Json(f): Json<Flag>) -> StatusCode {
    sim.auth.set_secret_expired(f.expired.unwrap_or(false));
    StatusCode::NO_CONTENT
}
