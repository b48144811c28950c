//! PIM: contacts and contact folders, calendars and events, To Do lists and tasks.
//!
//! State is per mailbox (a user with `has_mailbox`, or a Microsoft 365 group's
//! calendar), generated on first use from the seed and kept in a [`LazyMap`].
//! Items keep their user-visible properties as Graph JSON (`props`), so what a
//! client PATCHes is what it reads back; ids, change keys and timestamps are
//! bookkeeping next to them. Every collection that Graph tracks with delta is
//! a [`DeltaLog`].
//!
//! Meeting invitations: creating or updating an event with attendees in a
//! calendar whose owner is the organizer makes Exchange send meeting requests;
//! the simulator counts one `pim:invitationsSent` per attendee it would send to,
//! `pim:updatesSent` for updates and `pim:cancellationsSent` for cancellations.
//! Graph v1.0 has no "send to none" switch (EWS's `SendMeetingInvitations`);
//! a client that must not notify anyone can only create events without
//! attendees, or keep the original `organizer` (someone else): an event whose
//! organizer is not the calendar's owner is the owner's copy of someone else's
//! meeting and sends nothing.

mod calendar;
mod contacts;
mod make;
pub mod recur;
mod todo;
mod tz;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};

use crate::delta::DeltaLog;
use crate::error::{GraphError, GraphResult};
use crate::lazy::{LazyMap, Slot};
use crate::{ActivityReport, EntityRef, Sim, TruthItem, Workload};

/// One Outlook item: its id, bookkeeping, and user-visible properties as Graph JSON.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub id: String,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    pub version: u32,
    pub props: Map<String, Value>,
}

impl Item {
    pub fn new(id: String, at: DateTime<Utc>, props: Map<String, Value>) -> Item {
        Item {
            id,
            created: at,
            modified: at,
            version: 1,
            props,
        }
    }

    pub fn change_key(&self) -> String {
        let h = blake3::hash(format!("{}|{}", self.id, self.version).as_bytes());
        URL_SAFE_NO_PAD.encode(&h.as_bytes()[..15])
    }

    pub fn touch(&mut self, at: DateTime<Utc>) {
        self.modified = at.max(self.modified);
        self.version += 1;
    }

    pub fn str(&self, name: &str) -> &str {
        self.props.get(name).and_then(Value::as_str).unwrap_or("")
    }

    /// `@odata.etag`, `id`, timestamps and `changeKey`, then the properties.
    pub fn outlook_json(&self) -> Map<String, Value> {
        let ck = self.change_key();
        let mut m = Map::new();
        m.insert("@odata.etag".into(), json!(format!("W/\"{ck}\"")));
        m.insert("id".into(), json!(self.id));
        m.insert(
            "createdDateTime".into(),
            json!(crate::graph_time(self.created)),
        );
        m.insert(
            "lastModifiedDateTime".into(),
            json!(crate::graph_time(self.modified)),
        );
        m.insert("changeKey".into(), json!(ck));
        for (k, v) in &self.props {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ContactFolder {
    /// `displayName`, `parentFolderId`.
    pub item: Item,
    pub contacts: DeltaLog<Item>,
}

#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub item: Item,
    /// Changed occurrences of a series, by original date: the properties that differ.
    pub exceptions: BTreeMap<NaiveDate, Item>,
    /// Deleted occurrences of a series.
    pub cancelled: BTreeSet<NaiveDate>,
}

#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    pub item: Item,
    pub events: DeltaLog<Event>,
    /// Deleted series masters, to report their occurrences as removed in delta.
    pub tombstones: BTreeMap<String, Event>,
}

#[derive(Debug, Clone)]
pub(crate) struct Task {
    pub item: Item,
    pub checklist: Vec<Item>,
}

#[derive(Debug, Clone)]
pub(crate) struct TaskList {
    pub item: Item,
    pub tasks: DeltaLog<Task>,
}

/// Everything PIM one mailbox (or one group's calendar) holds.
#[derive(Debug, Clone)]
pub(crate) struct Mailbox {
    pub owner_id: String,
    pub owner_name: String,
    pub owner_address: String,
    pub is_group: bool,
    pub default_folder: String,
    pub folders: DeltaLog<ContactFolder>,
    pub default_calendar: String,
    /// Calendars in creation order.
    pub calendars: Vec<Calendar>,
    pub default_list: String,
    pub lists: DeltaLog<TaskList>,
    /// Counter for ids of items created through the API.
    pub created_count: u64,
}

impl Mailbox {
    pub fn calendar(&self, id: &str) -> Option<&Calendar> {
        self.calendars.iter().find(|c| c.item.id == id)
    }
    pub fn calendar_mut(&mut self, id: &str) -> Option<&mut Calendar> {
        self.calendars.iter_mut().find(|c| c.item.id == id)
    }

    /// A fresh id for an item created through the API or by activity.
    pub fn fresh_id(&mut self, seed: u64, kind: &str) -> String {
        self.created_count += 1;
        let n = self.created_count.to_string();
        item_id(seed, &[kind, &self.owner_id, "new", &n])
    }
}

/// An Outlook-looking item id, stable for `(seed, labels)`.
pub(crate) fn item_id(seed: u64, labels: &[&str]) -> String {
    let g = crate::rng::stable_guid(seed, labels);
    let mut bytes = vec![0u8, 0, 0x4d, 0x6b];
    bytes.extend_from_slice(g.as_bytes());
    bytes.extend_from_slice(&g.as_bytes()[..6]);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub struct PimStore {
    boxes: LazyMap<Mailbox>,
}

impl PimStore {
    pub fn new(capacity: usize) -> Self {
        PimStore {
            boxes: LazyMap::new(capacity),
        }
    }
}

/// A resolved mailbox: whose it is and its state.
pub(crate) struct Owner {
    /// `users('id')` or `groups('id')`, for `@odata.context`.
    pub context: String,
    pub slot: Arc<Slot<Mailbox>>,
}

pub(crate) fn open_user(sim: &Sim, key: &str) -> GraphResult<Owner> {
    let user = sim
        .directory
        .read()
        .user(key)
        .cloned()
        .ok_or_else(|| GraphError::directory_not_found(key))?;
    if !user.has_mailbox {
        return Err(crate::directory::mailbox_not_enabled());
    }
    let address = user.mail.clone().unwrap_or_else(|| user.upn.clone());
    let slot = sim.pim.boxes.get(&format!("u:{}", user.id), || {
        make::user_mailbox(sim, &user.id, &user.display_name, &address, user.generated)
    });
    Ok(Owner {
        context: format!("users('{}')", user.id),
        slot,
    })
}

pub(crate) fn open_group(sim: &Sim, key: &str) -> GraphResult<Owner> {
    let group = sim
        .directory
        .read()
        .group(key)
        .cloned()
        .ok_or_else(|| GraphError::directory_not_found(key))?;
    if !group.unified {
        return Err(crate::directory::mailbox_not_enabled());
    }
    let address = group
        .mail
        .clone()
        .unwrap_or_else(|| format!("{}@{}", group.mail_nickname, sim.cfg.domain));
    // Attendees come from the seed, not the group's current members, so a
    // calendar generated again after eviction is the same.
    let members: Vec<(String, String)> = Vec::new();
    let slot = sim.pim.boxes.get(&format!("g:{}", group.id), || {
        make::group_mailbox(
            sim,
            &group.id,
            &group.display_name,
            &address,
            &members,
            group.generated,
        )
    });
    Ok(Owner {
        context: format!("groups('{}')", group.id),
        slot,
    })
}

// ---------------------------------------------------------------- helpers

/// Parses a JSON object body; anything else is Graph's 400.
pub(crate) fn parse_body(bytes: &[u8]) -> GraphResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(body_error("The request body must be a JSON object.")),
        Err(e) => Err(body_error(&format!(
            "Invalid JSON in the request body: {e}"
        ))),
    }
}

pub(crate) fn body_error(msg: &str) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "RequestBodyRead", msg.to_string())
}

/// Property kinds for light type checks of client input.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Bool,
    Int,
    Arr,
    Obj,
}

/// Applies a client's properties to `props`: known writable ones are type
/// checked and stored, read-only ones and annotations ignored, unknown ones a 400.
pub(crate) fn apply_props(
    props: &mut Map<String, Value>,
    body: &Map<String, Value>,
    writable: &[(&str, Kind)],
    read_only: &[&str],
    type_name: &str,
) -> GraphResult<()> {
    for (k, v) in body {
        if k.starts_with('@') || k.contains("@odata.") {
            continue;
        }
        if read_only.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            continue;
        }
        let Some((name, kind)) = writable.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)) else {
            return Err(body_error(&format!(
                "The property '{k}' does not exist on type 'microsoft.graph.{type_name}'. Make sure to only use property names that are defined by the type."
            )));
        };
        let ok = match (kind, v) {
            (_, Value::Null) => true,
            (Kind::Str, Value::String(_)) => true,
            (Kind::Bool, Value::Bool(_)) => true,
            (Kind::Int, Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Kind::Arr, Value::Array(_)) => true,
            (Kind::Obj, Value::Object(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(body_error(&format!(
                "Cannot convert the literal '{v}' to the expected type of property '{name}'."
            )));
        }
        props.insert((*name).to_string(), v.clone());
    }
    Ok(())
}

/// Graph's `dateTimeTimeZone` format for a UTC instant.
pub(crate) fn dt_tz(t: NaiveDateTime) -> Value {
    use chrono::Timelike;
    let text = format!(
        "{}.{:07}",
        t.format("%Y-%m-%dT%H:%M:%S"),
        t.nanosecond() % 1_000_000_000 / 100
    );
    json!({"dateTime": text, "timeZone": "UTC"})
}

/// Parses a date-time as clients send it (`2026-05-01T09:00:00`, with
/// fractions, `Z` or an offset, or a bare date), as UTC.
pub(crate) fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    use chrono::Datelike;
    // Outlook's calendar spans years 1601..4500; anything far outside is refused,
    // which also keeps date arithmetic from overflowing.
    parse_naive_any(s).filter(|t| (1..=9000).contains(&t.year()))
}

fn parse_naive_any(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).naive_utc());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), f) {
            return Some(t);
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// A `dateTimeTimeZone` a client sent: its instant in UTC (common Windows and
/// IANA zones with US/EU daylight saving; unknown zones are taken as UTC) and
/// the zone name as sent.
pub(crate) fn parse_dttz(v: &Value, name: &str) -> GraphResult<(NaiveDateTime, String)> {
    let s = v
        .get("dateTime")
        .and_then(Value::as_str)
        .ok_or_else(|| body_error(&format!("{name}.dateTime is required.")))?;
    let t = parse_naive(s).ok_or_else(|| {
        body_error(&format!(
            "Cannot convert the literal '{s}' to the expected type 'Edm.DateTime'."
        ))
    })?;
    let tz = v
        .get("timeZone")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("UTC")
        .to_string();
    Ok((tz::to_utc(t, &tz), tz))
}

/// The instant in a stored `dateTimeTimeZone`.
pub(crate) fn stored_dt(props: &Map<String, Value>, name: &str) -> Option<NaiveDateTime> {
    props
        .get(name)
        .and_then(|v| v.get("dateTime"))
        .and_then(Value::as_str)
        .and_then(parse_naive)
}

pub(crate) fn removed_json(type_name: &str, id: &str, reason: &str) -> Value {
    json!({
        "@odata.type": format!("#microsoft.graph.{type_name}"),
        "id": id,
        "@removed": {"reason": reason},
    })
}

/// Canonical JSON (sorted keys) hashed with BLAKE3: the truth hash of non-file items.
pub(crate) fn canonical_hash(v: &Value) -> (String, u64) {
    // serde_json's Map is ordered by key here, so serialising is canonical.
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    (crate::rng::hash_hex(&bytes), bytes.len() as u64)
}

/// Turns `a/b` style names into path segments that cannot break a truth path.
pub(crate) fn path_part(s: &str) -> String {
    let t = s.replace('/', "_");
    if t.is_empty() { "(untitled)".into() } else { t }
}

// ---------------------------------------------------------------- workload

impl Workload for PimStore {
    fn name(&self) -> &'static str {
        "pim"
    }

    fn truth(&self, sim: &Sim, entity: &EntityRef) -> Vec<TruthItem> {
        let owner = match entity {
            EntityRef::User(id) => open_user(sim, id),
            EntityRef::Group(id) => open_group(sim, id),
            EntityRef::Site(_) => return Vec::new(),
        };
        let Ok(owner) = owner else {
            return Vec::new();
        };
        let mb = owner.slot.read();
        let mut out = Vec::new();
        if !mb.is_group {
            out.extend(contacts::truth(&mb));
            out.extend(todo::truth(&mb));
        }
        out.extend(calendar::truth(&mb));
        out
    }

    fn simulate_day(
        &self,
        sim: &Sim,
        entity: &EntityRef,
        rng: &mut crate::rng::SimRng,
        report: &mut ActivityReport,
    ) {
        let owner = match entity {
            EntityRef::User(id) => open_user(sim, id),
            EntityRef::Group(id) => open_group(sim, id),
            EntityRef::Site(_) => return,
        };
        let Ok(owner) = owner else { return };
        let attendees = make::colleagues(sim, rng, 3);
        let mut mb = owner.slot.write();
        if !mb.is_group {
            contacts::simulate_day(sim, &mut mb, rng, report);
            todo::simulate_day(sim, &mut mb, rng, report);
        }
        calendar::simulate_day(sim, &mut mb, rng, &attendees, report);
    }

    fn entity_deleted(&self, _sim: &Sim, entity: &EntityRef) {
        match entity {
            EntityRef::User(id) => {
                self.boxes.remove(&format!("u:{id}"));
            }
            EntityRef::Group(id) => {
                self.boxes.remove(&format!("g:{id}"));
            }
            EntityRef::Site(_) => {}
        }
    }
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .merge(contacts::routes())
        .merge(calendar::routes())
        .merge(todo::routes())
}

// ---------------------------------------------------------------- responses

pub(crate) fn ok_json(v: Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    axum::Json(v).into_response()
}

pub(crate) fn created_json(v: Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

pub(crate) fn no_content() -> axum::response::Response {
    use axum::response::IntoResponse;
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) type Resp = GraphResult<axum::response::Response>;

/// Page size of a delta round: `Prefer: odata.maxpagesize`, else Outlook's 10.
pub(crate) fn delta_page_size(ctx: &crate::odata::GraphCtx) -> usize {
    ctx.prefer.max_page_size.unwrap_or(10).clamp(1, 1000)
}

/// One page of an Outlook-flavoured delta round over `log` (`$skiptoken` /
/// `$deltatoken` links, `@removed` entries, 410 `SyncStateNotFound`).
pub(crate) fn delta_response<T>(
    sim: &Sim,
    ctx: &crate::odata::GraphCtx,
    log: &DeltaLog<T>,
    scope: &str,
    type_name: &str,
    render: impl Fn(&T) -> Value,
) -> GraphResult<Value> {
    let token = ctx
        .query
        .skiptoken
        .as_deref()
        .or(ctx.query.deltatoken.as_deref());
    let epoch = sim.delta_epoch();
    let now = sim.current_seq();
    let cursor = log.cursor(scope, epoch, now, token, crate::delta::TokenFlavor::Outlook)?;
    let page = log.page(scope, epoch, cursor, now, delta_page_size(ctx));
    let select = ctx.query.select.as_deref();
    let mut value: Vec<Value> = page
        .changed
        .iter()
        .map(|(_, t)| crate::odata::project(render(t), select, None))
        .collect();
    value.extend(
        page.removed
            .iter()
            .map(|r| removed_json(type_name, &r.id, r.reason)),
    );
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#Collection({type_name})", ctx.base)),
    );
    if let Some(t) = page.next_token {
        body.insert(
            "@odata.nextLink".into(),
            json!(ctx.link_with(
                &ctx.path,
                &["$skiptoken", "$deltatoken"],
                &[("$skiptoken", t)]
            )),
        );
    }
    if let Some(t) = page.delta_token {
        body.insert(
            "@odata.deltaLink".into(),
            json!(ctx.link_with(
                &ctx.path,
                &["$skiptoken", "$deltatoken"],
                &[("$deltatoken", t)]
            )),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok(Value::Object(body))
}
