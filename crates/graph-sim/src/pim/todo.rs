//! Microsoft To Do: `/users/{id}/todo/lists`, tasks, checklist items, delta.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::recur::Recurrence;
use super::{
    Item, Kind, Mailbox, Owner, Resp, Task, TaskList, apply_props, body_error, canonical_hash,
    created_json, delta_response, dt_tz, item_id, make, no_content, ok_json, open_user, parse_body,
    parse_dttz, path_part,
};
use crate::delta::DeltaLog;
use crate::error::{GraphError, GraphResult};
use crate::odata::{self, GraphCtx, PageLimits};
use crate::rng::{self, SimRng};
use crate::{ActivityReport, Sim, TruthItem};

const TASK_PROPS: &[(&str, Kind)] = &[
    ("body", Kind::Obj),
    ("categories", Kind::Arr),
    ("completedDateTime", Kind::Obj),
    ("dueDateTime", Kind::Obj),
    ("importance", Kind::Str),
    ("isReminderOn", Kind::Bool),
    ("recurrence", Kind::Obj),
    ("reminderDateTime", Kind::Obj),
    ("startDateTime", Kind::Obj),
    ("status", Kind::Str),
    ("title", Kind::Str),
];
const TASK_READ_ONLY: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "bodyLastModifiedDateTime",
    "hasAttachments",
];
const STATUSES: &[&str] = &[
    "notStarted",
    "inProgress",
    "completed",
    "waitingOnOthers",
    "deferred",
];
const IMPORTANCE: &[&str] = &["low", "normal", "high"];

fn not_found() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

fn list_props(name: &str, wellknown: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("displayName".into(), json!(name));
    m.insert("wellknownListName".into(), json!(wellknown));
    m
}

pub(crate) fn add_default_list(mb: &mut Mailbox, at: DateTime<Utc>) {
    let id = mb.default_list.clone();
    mb.lists.upsert(
        id.clone(),
        TaskList {
            item: Item::new(id, at, list_props("Tasks", "defaultList")),
            tasks: DeltaLog::new(),
        },
        1,
    );
}

fn task_defaults() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("title".into(), json!(""));
    m.insert("body".into(), json!({"content": "", "contentType": "text"}));
    m.insert("importance".into(), json!("normal"));
    m.insert("status".into(), json!("notStarted"));
    m.insert("isReminderOn".into(), json!(false));
    m.insert("categories".into(), json!([]));
    m
}

fn task_props(rng: &mut SimRng, created: DateTime<Utc>) -> Map<String, Value> {
    let mut m = task_defaults();
    m.insert("title".into(), json!(rng::title(rng, 2, 6)));
    if rng.random_bool(0.5) {
        m.insert(
            "body".into(),
            json!({"content": rng::paragraph(rng, 1), "contentType": "text"}),
        );
    }
    m.insert("importance".into(), json!(*rng::pick(rng, IMPORTANCE)));
    let due = created.date_naive() + Duration::days(rng.random_range(1..40));
    if rng.random_bool(0.7) {
        m.insert(
            "dueDateTime".into(),
            dt_tz(due.and_hms_opt(0, 0, 0).unwrap_or_default()),
        );
    }
    if rng.random_bool(0.3) {
        m.insert("isReminderOn".into(), json!(true));
        m.insert(
            "reminderDateTime".into(),
            dt_tz(due.and_hms_opt(9, 0, 0).unwrap_or_default()),
        );
    }
    if rng.random_bool(0.2) {
        m.insert(
            "startDateTime".into(),
            dt_tz(
                created
                    .date_naive()
                    .and_hms_opt(0, 0, 0)
                    .unwrap_or_default(),
            ),
        );
    }
    if rng.random_bool(0.1) {
        let wd = super::recur::weekday_name(chrono::Datelike::weekday(&due));
        m.insert(
            "recurrence".into(),
            json!({"pattern": {"type": "weekly", "interval": 1, "month": 0, "dayOfMonth": 0, "daysOfWeek": [wd], "firstDayOfWeek": "sunday", "index": "first"},
                "range": {"type": "noEnd", "startDate": due.to_string(), "endDate": "0001-01-01", "recurrenceTimeZone": "UTC", "numberOfOccurrences": 0}}),
        );
    }
    if rng.random_bool(0.2) {
        m.insert("categories".into(), json!(["Blue category"]));
    }
    m
}

fn complete(m: &mut Map<String, Value>, at: DateTime<Utc>) {
    m.insert("status".into(), json!("completed"));
    m.insert("completedDateTime".into(), dt_tz(at.naive_utc()));
}

const LIST_NAMES: &[&str] = &["Groceries", "Project launch", "Travel", "Reading list"];

pub(crate) fn generate(sim: &Sim, mb: &mut Mailbox, rng: &mut SimRng) {
    let seed = sim.seed();
    let anchor = crate::generation_anchor();
    let owner = mb.owner_id.clone();
    let mut lists = vec![(mb.default_list.clone(), make::scaled(sim, 8))];
    let extra = *rng::pick(rng, LIST_NAMES);
    let lid = item_id(seed, &["pim", &owner, "list", "0"]);
    mb.lists.upsert(
        lid.clone(),
        TaskList {
            item: Item::new(
                lid.clone(),
                anchor - Duration::days(200),
                list_props(extra, "none"),
            ),
            tasks: DeltaLog::new(),
        },
        1,
    );
    lists.push((lid, make::scaled(sim, 4)));
    for (lid, n) in lists {
        let Some(list) = mb.lists.peek_mut(&lid) else {
            continue;
        };
        for i in 0..n {
            let id = item_id(seed, &["pim", &owner, "task", &lid, &i.to_string()]);
            let created = anchor - Duration::minutes(rng.random_range(60..200 * 24 * 60));
            let mut props = task_props(rng, created);
            let mut item = Item::new(id.clone(), created, Map::new());
            if rng.random_bool(0.3) {
                let done = created + Duration::days(rng.random_range(1..10));
                complete(&mut props, done.min(anchor));
                item.modified = done.min(anchor);
            } else if rng.random_bool(0.2) {
                props.insert("status".into(), json!("inProgress"));
            }
            item.props = props;
            let mut checklist = Vec::new();
            if rng.random_bool(0.3) {
                for c in 0..rng.random_range(1..4) {
                    let cid = item_id(seed, &["pim", &owner, "check", &id, &c.to_string()]);
                    let mut p = Map::new();
                    p.insert("displayName".into(), json!(rng::title(rng, 1, 3)));
                    p.insert("isChecked".into(), json!(rng.random_bool(0.4)));
                    checklist.push(Item::new(cid, created, p));
                }
            }
            list.tasks.upsert(id, Task { item, checklist }, 1);
        }
    }
}

// ---------------------------------------------------------------- rendering

fn etag(item: &Item) -> String {
    format!("W/\"{}\"", item.change_key())
}

fn list_json(l: &TaskList) -> Value {
    json!({
        "@odata.etag": etag(&l.item),
        "id": l.item.id,
        "displayName": l.item.str("displayName"),
        "isOwner": true,
        "isShared": false,
        "wellknownListName": l.item.str("wellknownListName"),
    })
}

fn task_json(t: &Task) -> Value {
    let mut m = Map::new();
    m.insert("@odata.etag".into(), json!(etag(&t.item)));
    m.insert("id".into(), json!(t.item.id));
    for (k, v) in &t.item.props {
        if v.is_null() {
            continue;
        }
        m.insert(k.clone(), v.clone());
    }
    m.insert("hasAttachments".into(), json!(false));
    m.insert(
        "createdDateTime".into(),
        json!(crate::graph_time(t.item.created)),
    );
    m.insert(
        "lastModifiedDateTime".into(),
        json!(crate::graph_time(t.item.modified)),
    );
    m.insert(
        "bodyLastModifiedDateTime".into(),
        json!(crate::graph_time(t.item.modified)),
    );
    Value::Object(m)
}

fn checklist_json(c: &Item) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(c.id));
    m.insert("displayName".into(), json!(c.str("displayName")));
    let checked = c
        .props
        .get("isChecked")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    m.insert("isChecked".into(), json!(checked));
    m.insert(
        "createdDateTime".into(),
        json!(crate::graph_time(c.created)),
    );
    if checked {
        m.insert(
            "checkedDateTime".into(),
            json!(crate::graph_time(c.modified)),
        );
    }
    Value::Object(m)
}

pub(crate) fn truth(mb: &Mailbox) -> Vec<TruthItem> {
    let mut out = Vec::new();
    for (_, l) in mb.lists.iter() {
        let lname = path_part(l.item.str("displayName"));
        for (tid, t) in l.tasks.iter() {
            let mut v = t.item.props.clone();
            v.retain(|_, x| !x.is_null());
            let items: Vec<Value> = t
                .checklist
                .iter()
                .map(|c| json!({"displayName": c.str("displayName"), "isChecked": c.props.get("isChecked").cloned().unwrap_or(json!(false))}))
                .collect();
            if !items.is_empty() {
                v.insert("checklistItems".into(), json!(items));
            }
            let (hash, size) = canonical_hash(&Value::Object(v));
            out.push(TruthItem {
                workload: "tasks".into(),
                path: format!("Tasks/{lname}/{}", path_part(t.item.str("title"))),
                id: tid.to_string(),
                kind: "todoTask".into(),
                size,
                hash,
            });
        }
    }
    out
}

pub(crate) fn simulate_day(
    sim: &Sim,
    mb: &mut Mailbox,
    rng: &mut SimRng,
    report: &mut ActivityReport,
) {
    let now = sim.now();
    let list_ids: Vec<String> = mb.lists.iter().map(|(k, _)| k.to_string()).collect();
    if list_ids.is_empty() {
        return;
    }
    for _ in 0..rng.random_range(0..=2u32) {
        let lid = list_ids[rng.random_range(0..list_ids.len())].clone();
        let id = mb.fresh_id(sim.seed(), "task");
        let props = task_props(rng, now);
        if let Some(l) = mb.lists.peek_mut(&lid) {
            l.tasks.upsert(
                id.clone(),
                Task {
                    item: Item::new(id, now, props),
                    checklist: Vec::new(),
                },
                sim.next_seq(),
            );
            report.created += 1;
        }
    }
    let lid = list_ids[rng.random_range(0..list_ids.len())].clone();
    let complete_one = rng.random_bool(0.5);
    let delete_one = rng.random_bool(0.2);
    let pick_a: f64 = rng.random();
    let pick_b: f64 = rng.random();
    if let Some(l) = mb.lists.peek_mut(&lid) {
        let open: Vec<String> = l
            .tasks
            .iter()
            .filter(|(_, t)| t.item.str("status") != "completed")
            .map(|(k, _)| k.to_string())
            .collect();
        if complete_one && !open.is_empty() {
            let id = &open[((open.len() as f64 * pick_a) as usize).min(open.len() - 1)];
            // Completed at a time of today drawn from the seed, so the same
            // seed completes tasks identically whenever it runs the same day.
            let done = now
                .date_naive()
                .and_hms_opt(8 + (pick_b * 9.0) as u32, (pick_a * 59.0) as u32, 0)
                .map(|t| t.and_utc())
                .unwrap_or(now);
            if let Some(t) = l.tasks.get_mut(id, sim.next_seq()) {
                complete(&mut t.item.props, done);
                t.item.touch(now);
                report.modified += 1;
            }
        }
        let all: Vec<String> = l.tasks.iter().map(|(k, _)| k.to_string()).collect();
        if delete_one && !all.is_empty() {
            let id = &all[((all.len() as f64 * pick_b) as usize).min(all.len() - 1)];
            if l.tasks.remove(id, sim.next_seq(), "deleted").is_some() {
                report.deleted += 1;
            }
        }
    }
}

// ---------------------------------------------------------------- handlers

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/users/{id}/todo/lists", get(lists).post(create_list))
        .route("/users/{id}/todo/lists/delta", get(lists_delta))
        .route(
            "/users/{id}/todo/lists/{lid}",
            get(get_list).patch(patch_list).delete(delete_list),
        )
        .route(
            "/users/{id}/todo/lists/{lid}/tasks",
            get(tasks).post(create_task),
        )
        .route("/users/{id}/todo/lists/{lid}/tasks/delta", get(tasks_delta))
        .route(
            "/users/{id}/todo/lists/{lid}/tasks/{tid}",
            get(get_task).patch(patch_task).delete(delete_task),
        )
        .route(
            "/users/{id}/todo/lists/{lid}/tasks/{tid}/checklistItems",
            get(checklist).post(create_check),
        )
        .route(
            "/users/{id}/todo/lists/{lid}/tasks/{tid}/checklistItems/{cid}",
            get(get_check).patch(patch_check).delete(delete_check),
        )
}

fn ctx_lists(owner: &Owner) -> String {
    format!("{}/todo/lists", owner.context)
}

async fn lists(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let items: Vec<Value> = mb.lists.values().map(list_json).collect();
    Ok(ok_json(odata::collection(
        &ctx,
        &ctx_lists(&owner),
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

async fn lists_delta(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let scope = format!("pim:todolists:{}", mb.owner_id);
    Ok(ok_json(delta_response(
        &sim,
        &ctx,
        &mb.lists,
        &scope,
        "todoTaskList",
        list_json,
    )?))
}

async fn create_list(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let body = parse_body(&body)?;
    let mut props = list_props("", "none");
    apply_props(
        &mut props,
        &body,
        &[("displayName", Kind::Str)],
        &["id", "isOwner", "isShared", "wellknownListName"],
        "todoTaskList",
    )?;
    if props
        .get("displayName")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Err(body_error("The displayName of a task list is required."));
    }
    let mut mb = owner.slot.write();
    let lid = mb.fresh_id(sim.seed(), "list");
    let l = TaskList {
        item: Item::new(lid.clone(), sim.now(), props),
        tasks: DeltaLog::new(),
    };
    let v = list_json(&l);
    mb.lists.upsert(lid, l, sim.next_seq());
    Ok(created_json(odata::entity(
        &ctx,
        &ctx_lists(&owner),
        v,
        None,
    )))
}

async fn get_list(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let l = mb.lists.get(&lid).ok_or_else(not_found)?;
    Ok(ok_json(odata::entity(
        &ctx,
        &ctx_lists(&owner),
        list_json(l),
        None,
    )))
}

async fn patch_list(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let body = parse_body(&body)?;
    let mut mb = owner.slot.write();
    let mut props = mb.lists.get(&lid).ok_or_else(not_found)?.item.props.clone();
    apply_props(
        &mut props,
        &body,
        &[("displayName", Kind::Str)],
        &["id", "isOwner", "isShared", "wellknownListName"],
        "todoTaskList",
    )?;
    let now = sim.now();
    let l = mb
        .lists
        .get_mut(&lid, sim.next_seq())
        .ok_or_else(not_found)?;
    l.item.props = props;
    l.item.touch(now);
    let v = list_json(l);
    Ok(ok_json(odata::entity(&ctx, &ctx_lists(&owner), v, None)))
}

async fn delete_list(State(sim): State<Arc<Sim>>, Path((id, lid)): Path<(String, String)>) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mut mb = owner.slot.write();
    if lid == mb.default_list {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "invalidRequest",
            "The default task list cannot be deleted.",
        ));
    }
    mb.lists
        .remove(&lid, sim.next_seq(), "deleted")
        .ok_or_else(not_found)?;
    Ok(no_content())
}

fn ctx_tasks(owner: &Owner, lid: &str) -> String {
    format!("{}/todo/lists('{lid}')/tasks", owner.context)
}

async fn tasks(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let l = mb.lists.get(&lid).ok_or_else(not_found)?;
    let items: Vec<Value> = l.tasks.values().map(task_json).collect();
    Ok(ok_json(odata::collection(
        &ctx,
        &ctx_tasks(&owner, &lid),
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

async fn tasks_delta(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let l = mb.lists.get(&lid).ok_or_else(not_found)?;
    let scope = format!("pim:todotasks:{}:{lid}", mb.owner_id);
    Ok(ok_json(delta_response(
        &sim, &ctx, &l.tasks, &scope, "todoTask", task_json,
    )?))
}

/// Validates and fills task properties a client sent.
fn apply_task(
    props: &mut Map<String, Value>,
    body: &Map<String, Value>,
    now: DateTime<Utc>,
) -> GraphResult<()> {
    apply_props(props, body, TASK_PROPS, TASK_READ_ONLY, "todoTask")?;
    if let Some(s) = props.get("status").and_then(Value::as_str)
        && !STATUSES.contains(&s)
    {
        return Err(body_error(&format!(
            "Requested value '{s}' was not found in the taskStatus enumeration."
        )));
    }
    if let Some(s) = props.get("importance").and_then(Value::as_str)
        && !IMPORTANCE.contains(&s)
    {
        return Err(body_error(&format!(
            "Requested value '{s}' was not found in the importance enumeration."
        )));
    }
    for k in [
        "dueDateTime",
        "startDateTime",
        "reminderDateTime",
        "completedDateTime",
    ] {
        if let Some(v) = body.get(k).filter(|v| !v.is_null()) {
            let (t, _) = parse_dttz(v, k)?;
            props.insert(k.into(), dt_tz(t));
        }
    }
    if let Some(r) = props.get("recurrence").filter(|r| !r.is_null()) {
        Recurrence::parse(r)?;
    }
    let completed = props.get("status").and_then(Value::as_str) == Some("completed");
    if completed && props.get("completedDateTime").is_none_or(Value::is_null) {
        props.insert("completedDateTime".into(), dt_tz(now.naive_utc()));
    }
    if !completed && !body.contains_key("completedDateTime") {
        props.remove("completedDateTime");
    }
    Ok(())
}

async fn create_task(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let body = parse_body(&body)?;
    let now = sim.now();
    let mut props = task_defaults();
    // Checklist items may come inline with a new task.
    let mut body = body;
    let inline = match body.remove("checklistItems") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(body_error("checklistItems must be a collection.")),
    };
    let mut checks = Vec::new();
    for c in &inline {
        let Value::Object(c) = c else {
            return Err(body_error("Each checklist item must be an object."));
        };
        let mut p = Map::new();
        p.insert("isChecked".into(), json!(false));
        apply_props(&mut p, c, CHECK_PROPS, CHECK_READ_ONLY, "checklistItem")?;
        checks.push(p);
    }
    apply_task(&mut props, &body, now)?;
    let mut mb = owner.slot.write();
    if !mb.lists.contains(&lid) {
        return Err(not_found());
    }
    let tid = mb.fresh_id(sim.seed(), "task");
    let mut checklist = Vec::new();
    for p in checks {
        let cid = mb.fresh_id(sim.seed(), "check");
        checklist.push(Item::new(cid, now, p));
    }
    let t = Task {
        item: Item::new(tid.clone(), now, props),
        checklist,
    };
    let v = task_json(&t);
    let l = mb.lists.peek_mut(&lid).ok_or_else(not_found)?;
    l.tasks.upsert(tid, t, sim.next_seq());
    Ok(created_json(odata::entity(
        &ctx,
        &ctx_tasks(&owner, &lid),
        v,
        None,
    )))
}

async fn get_task(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid, tid)): Path<(String, String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let t = mb
        .lists
        .get(&lid)
        .and_then(|l| l.tasks.get(&tid))
        .ok_or_else(not_found)?;
    let mut v = task_json(t);
    if ctx
        .query
        .expand
        .as_deref()
        .is_some_and(|e| e.contains("checklistItems"))
    {
        let items: Vec<Value> = t.checklist.iter().map(checklist_json).collect();
        if let Value::Object(m) = &mut v {
            m.insert("checklistItems".into(), json!(items));
        }
    }
    Ok(ok_json(odata::entity(
        &ctx,
        &ctx_tasks(&owner, &lid),
        v,
        None,
    )))
}

async fn patch_task(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid, tid)): Path<(String, String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let body = parse_body(&body)?;
    let now = sim.now();
    let mut mb = owner.slot.write();
    let l = mb.lists.peek_mut(&lid).ok_or_else(not_found)?;
    let mut props = l.tasks.get(&tid).ok_or_else(not_found)?.item.props.clone();
    apply_task(&mut props, &body, now)?;
    let t = l
        .tasks
        .get_mut(&tid, sim.next_seq())
        .ok_or_else(not_found)?;
    t.item.props = props;
    t.item.touch(now);
    let v = task_json(t);
    Ok(ok_json(odata::entity(
        &ctx,
        &ctx_tasks(&owner, &lid),
        v,
        None,
    )))
}

async fn delete_task(
    State(sim): State<Arc<Sim>>,
    Path((id, lid, tid)): Path<(String, String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mut mb = owner.slot.write();
    let l = mb.lists.peek_mut(&lid).ok_or_else(not_found)?;
    l.tasks
        .remove(&tid, sim.next_seq(), "deleted")
        .ok_or_else(not_found)?;
    Ok(no_content())
}

fn ctx_check(owner: &Owner, lid: &str, tid: &str) -> String {
    format!(
        "{}/todo/lists('{lid}')/tasks('{tid}')/checklistItems",
        owner.context
    )
}

async fn checklist(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid, tid)): Path<(String, String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let t = mb
        .lists
        .get(&lid)
        .and_then(|l| l.tasks.get(&tid))
        .ok_or_else(not_found)?;
    let items: Vec<Value> = t.checklist.iter().map(checklist_json).collect();
    Ok(ok_json(odata::collection(
        &ctx,
        &ctx_check(&owner, &lid, &tid),
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

const CHECK_PROPS: &[(&str, Kind)] = &[("displayName", Kind::Str), ("isChecked", Kind::Bool)];
const CHECK_READ_ONLY: &[&str] = &["id", "createdDateTime", "checkedDateTime"];

async fn create_check(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid, tid)): Path<(String, String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let body = parse_body(&body)?;
    let mut props = Map::new();
    props.insert("isChecked".into(), json!(false));
    apply_props(
        &mut props,
        &body,
        CHECK_PROPS,
        CHECK_READ_ONLY,
        "checklistItem",
    )?;
    let now = sim.now();
    let mut mb = owner.slot.write();
    let cid = mb.fresh_id(sim.seed(), "check");
    let l = mb.lists.peek_mut(&lid).ok_or_else(not_found)?;
    let t = l
        .tasks
        .get_mut(&tid, sim.next_seq())
        .ok_or_else(not_found)?;
    let c = Item::new(cid, now, props);
    let v = checklist_json(&c);
    t.checklist.push(c);
    t.item.touch(now);
    Ok(created_json(odata::entity(
        &ctx,
        &ctx_check(&owner, &lid, &tid),
        v,
        None,
    )))
}

async fn get_check(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid, tid, cid)): Path<(String, String, String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mb = owner.slot.read();
    let c = mb
        .lists
        .get(&lid)
        .and_then(|l| l.tasks.get(&tid))
        .and_then(|t| t.checklist.iter().find(|c| c.id == cid))
        .ok_or_else(not_found)?;
    Ok(ok_json(odata::entity(
        &ctx,
        &ctx_check(&owner, &lid, &tid),
        checklist_json(c),
        None,
    )))
}

async fn patch_check(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, lid, tid, cid)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let body = parse_body(&body)?;
    let now = sim.now();
    let mut mb = owner.slot.write();
    let l = mb.lists.peek_mut(&lid).ok_or_else(not_found)?;
    let current = l
        .tasks
        .get(&tid)
        .and_then(|t| t.checklist.iter().find(|c| c.id == cid))
        .ok_or_else(not_found)?;
    let mut props = current.props.clone();
    apply_props(
        &mut props,
        &body,
        CHECK_PROPS,
        CHECK_READ_ONLY,
        "checklistItem",
    )?;
    let t = l
        .tasks
        .get_mut(&tid, sim.next_seq())
        .ok_or_else(not_found)?;
    t.item.touch(now);
    let c = t
        .checklist
        .iter_mut()
        .find(|c| c.id == cid)
        .ok_or_else(not_found)?;
    c.props = props;
    c.touch(now);
    let v = checklist_json(c);
    Ok(ok_json(odata::entity(
        &ctx,
        &ctx_check(&owner, &lid, &tid),
        v,
        None,
    )))
}

async fn delete_check(
    State(sim): State<Arc<Sim>>,
    Path((id, lid, tid, cid)): Path<(String, String, String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let now = sim.now();
    let mut mb = owner.slot.write();
    let l = mb.lists.peek_mut(&lid).ok_or_else(not_found)?;
    if !l
        .tasks
        .get(&tid)
        .is_some_and(|t| t.checklist.iter().any(|c| c.id == cid))
    {
        return Err(not_found());
    }
    let t = l
        .tasks
        .get_mut(&tid, sim.next_seq())
        .ok_or_else(not_found)?;
    t.checklist.retain(|c| c.id != cid);
    t.item.touch(now);
    Ok(no_content())
}
