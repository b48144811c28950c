//! Collaboration: Microsoft 365 group conversations (threads, posts,
//! attachments) and Microsoft Teams (teams, members, channels, private channel
//! members, channel messages and replies, message delta, and the message
//! import ("migration") flow).
//!
//! State is per group, generated from the seed on first use ([`GroupState`]):
//! team metadata and the channel list up front, each channel's messages only
//! when someone first looks at that channel. Everything a client or simulated
//! activity changes goes through [`DeltaLog`](crate::delta::DeltaLog), so
//! `messages/delta` reports exactly what changed.

mod conversations;
mod teams;

pub(crate) use teams::left_team;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::directory::Group;
use crate::error::{GraphError, GraphResult};
use crate::lazy::{LazyMap, Slot};
use crate::rng::SimRng;
use crate::{ActivityReport, EntityRef, Sim, TruthItem, Workload};

pub struct CollabStore {
    groups: LazyMap<GroupState>,
    /// The people each group's content was first generated from. Kept when
    /// the state itself is evicted, so a group generated again after its
    /// membership changed (a user deleted, say) comes back identical.
    people: Mutex<HashMap<String, Vec<Person>>>,
}

impl CollabStore {
    pub fn new(capacity: usize) -> Self {
        CollabStore {
            groups: LazyMap::new(capacity),
            people: Mutex::new(HashMap::new()),
        }
    }

    /// How many groups' collaboration state is in memory now.
    pub fn groups_in_memory(&self) -> usize {
        self.groups.len()
    }
}

/// A directory user as collaboration content shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Person {
    pub id: String,
    pub name: String,
    pub mail: String,
}

/// Everything one group holds in this workload.
pub(crate) struct GroupState {
    /// The people content was generated from (owners first), so lazily
    /// generated channels stay consistent with the rest of the group.
    people: Vec<Person>,
    team: Option<teams::Team>,
    convs: Option<conversations::Convs>,
}

impl GroupState {
    fn generate(sim: &Sim, g: &Group, people: Vec<Person>) -> GroupState {
        let team = g.team.then(|| {
            if g.generated {
                teams::Team::generate(sim, g, &people)
            } else {
                teams::Team::new_empty(sim, g, parse_time(&g.created), false)
            }
        });
        let convs = g.unified.then(|| {
            if g.generated {
                conversations::Convs::generate(sim, g, &people)
            } else {
                conversations::Convs::default()
            }
        });
        GroupState {
            people,
            team,
            convs,
        }
    }
}

/// Owners first, then members, as directory users.
pub(crate) fn people_of(sim: &Sim, g: &Group) -> Vec<Person> {
    let dir = sim.directory.read();
    let mut out: Vec<Person> = Vec::new();
    for id in g.owners.iter().chain(g.members.iter()) {
        if out.iter().any(|p| &p.id == id) {
            continue;
        }
        if let Some(u) = dir.user(id) {
            out.push(Person {
                id: u.id.clone(),
                name: u.display_name.clone(),
                mail: u.mail.clone().unwrap_or_else(|| u.upn.clone()),
            });
        }
    }
    out
}

/// A live group by id.
pub(crate) fn find_group(sim: &Sim, id: &str) -> GraphResult<Group> {
    sim.directory
        .read()
        .group(id)
        .cloned()
        .ok_or_else(|| GraphError::directory_not_found(id))
}

/// The group's collaboration state, generated on first use.
pub(crate) fn slot(sim: &Sim, g: &Group) -> Arc<Slot<GroupState>> {
    if let Some(s) = sim.collab.groups.existing(&g.id) {
        return s;
    }
    let people = sim
        .collab
        .people
        .lock()
        .entry(g.id.clone())
        .or_insert_with(|| people_of(sim, g))
        .clone();
    sim.collab
        .groups
        .get(&g.id, || GroupState::generate(sim, g, people))
}

/// Graph's chatMessage time format: UTC with milliseconds.
pub(crate) fn ms_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub(crate) fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| crate::generation_anchor())
}

/// A request body as JSON (an empty body is an empty object).
pub(crate) fn parse_body(bytes: &Bytes) -> GraphResult<Value> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Value::Object(Map::new()));
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| GraphError::bad_request(format!("Invalid request body: {e}")))?;
    if !v.is_object() {
        return Err(GraphError::bad_request(
            "Invalid request body: a JSON object is expected.",
        ));
    }
    Ok(v)
}

/// JSON with object keys sorted at every level: the form truth hashes are taken of.
pub(crate) fn canonical(v: &Value) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    // Build the text by hand so the order does not depend on serde_json's map features.
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    write(&m[*k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(&sort(v), &mut out);
    out
}

pub(crate) fn truth_item(
    workload: &str,
    path: String,
    id: &str,
    kind: &str,
    v: &Value,
) -> TruthItem {
    let text = canonical(v);
    TruthItem {
        workload: workload.to_string(),
        path,
        id: id.to_string(),
        kind: kind.to_string(),
        size: text.len() as u64,
        hash: crate::rng::hash_hex(text.as_bytes()),
    }
}

impl Workload for CollabStore {
    fn name(&self) -> &'static str {
        "collab"
    }

    fn truth(&self, sim: &Sim, entity: &EntityRef) -> Vec<TruthItem> {
        let EntityRef::Group(id) = entity else {
            return Vec::new();
        };
        let Ok(g) = find_group(sim, id) else {
            return Vec::new();
        };
        let s = slot(sim, &g);
        let mut state = s.read();
        let mut out = Vec::new();
        let people = state.people.clone();
        if let Some(team) = state.team.as_mut() {
            out.extend(team.truth(sim, &g, &people));
        }
        if let Some(convs) = state.convs.as_ref() {
            out.extend(convs.truth());
        }
        out
    }

    fn simulate_day(
        &self,
        sim: &Sim,
        entity: &EntityRef,
        rng: &mut SimRng,
        report: &mut ActivityReport,
    ) {
        let EntityRef::Group(id) = entity else {
            return;
        };
        let Ok(g) = find_group(sim, id) else {
            return;
        };
        // Whoever belongs to the group today is who posts today.
        let people = people_of(sim, &g);
        if people.is_empty() {
            return;
        }
        let s = slot(sim, &g);
        let mut state = s.write();
        if let Some(team) = state.team.as_mut() {
            team.simulate_day(sim, &g, &people, rng, report);
        }
        if let Some(convs) = state.convs.as_mut() {
            convs.simulate_day(sim, &g, &people, rng, report);
        }
    }

    fn entity_deleted(&self, _sim: &Sim, entity: &EntityRef) {
        if let EntityRef::Group(id) = entity {
            self.groups.remove(id);
            self.people.lock().remove(id);
        }
    }
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .merge(conversations::routes())
        .merge(teams::routes())
}
