//! Recurring events: making a destination series' occurrences what the
//! snapshot's were. Shared by mailbox calendars and group calendars.
//!
//! A stored series master carries its `exceptionOccurrences` (each with its
//! `originalStart`) and `cancelledOccurrences` (`OID.<master id>.<yyyy-mm-dd>`).
//! Graph has no call that writes either list: an exception is made by
//! patching an occurrence found through `/instances`, a cancellation by
//! deleting one. That is enough for a series the restore creates ([`Series::apply`]).
//!
//! A series that still exists (replace) may have changed since the backup in
//! two ways Graph cannot undo directly ([`Series::reconcile`]):
//! - An occurrence changed since the backup stays an exception: it is patched
//!   back to the series' own values, which makes it look and behave like a
//!   plain occurrence again.
//! - An occurrence cancelled since the backup cannot be un-cancelled. A
//!   series without attendees is deleted and created again from the snapshot
//!   (nobody is told). A meeting cannot be: deleting it would send every
//!   attendee a cancellation, and Graph cannot recreate it without inviting
//!   them again. Each lost occurrence of a meeting comes back as an event of
//!   its own at the occurrence's time, with the attendees listed in its body.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;
use graph::{GraphClient, GraphError, Request, Response};
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::Tally;
use crate::run::id_of;

/// A failure of one item, as a person reads it.
pub(super) type ItemResult<T> = std::result::Result<T, String>;

/// The properties an occurrence shares with its series and that a restore
/// writes back when it reverts an occurrence changed since the backup.
const OCCURRENCE_FIELDS: &[&str] = &[
    "subject",
    "body",
    "location",
    "locations",
    "isAllDay",
    "showAs",
    "importance",
    "sensitivity",
    "categories",
    "isReminderOn",
    "reminderMinutesBeforeStart",
];

/// Writes a snapshot series' occurrences into a destination calendar.
pub(super) struct Series<'s> {
    pub graph: &'s GraphClient,
    pub tally: &'s Tally<'s>,
    /// `/users/{id}` or `/groups/{id}`: whose `events` collection holds the series.
    pub owner: String,
    /// The stored JSON of an event (or exception) as a body Graph accepts.
    pub fields: fn(&Value) -> Map<String, Value>,
    /// A category every item the restore writes gets.
    pub tag: Option<&'s str>,
    /// Mailbox restores address items by immutable id.
    pub immutable_ids: bool,
}

/// What [`Series::reconcile`] did to an existing series.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reconciled {
    /// Occurrences changed since the backup, patched back to the series' values.
    pub reverted: usize,
    /// The snapshot's exceptions and cancellations written.
    pub applied: usize,
    /// Occurrences of a meeting cancelled since the backup, restored as events of their own.
    pub standalone: usize,
}

impl Reconciled {
    pub fn changed(&self) -> bool {
        self.reverted + self.applied + self.standalone > 0
    }

    /// What a person reads in the item log about the occurrences.
    pub fn describe(&self) -> Vec<String> {
        let mut d = Vec::new();
        if self.reverted > 0 {
            d.push(format!(
                "{} occurrence(s) changed since the backup reverted",
                self.reverted
            ));
        }
        if self.standalone > 0 {
            d.push(format!(
                "{} occurrence(s) cancelled since the backup restored as separate events",
                self.standalone
            ));
        }
        d
    }
}

/// The way [`Series::reconcile`] asks its caller to go on.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reconcile {
    /// The series now has the snapshot's occurrences (as far as Graph allows).
    Done(Reconciled),
    /// Occurrences were cancelled since the backup and the series has no
    /// attendees: delete it and create it again from the snapshot.
    Recreate,
}

impl Series<'_> {
    /// `req` asking for the ids the restore addresses items by.
    fn ids(&self, req: Request) -> Request {
        if self.immutable_ids {
            req.header("Prefer", "IdType=\"ImmutableId\"")
        } else {
            req
        }
    }

    async fn send(&self, req: Request) -> Result<Response, GraphError> {
        self.tally.requests(1);
        self.graph.send(self.ids(req)).await
    }

    async fn send_json(&self, method: Method, url: String, body: &Value) -> ItemResult<Value> {
        let r = self
            .send(Request::json(method, url, body))
            .await
            .map_err(|e| graph_reason(&e))?;
        if r.body.is_empty() {
            return Ok(Value::Null);
        }
        r.json::<Value>().map_err(|e| e.to_string())
    }

    fn event_url(&self, id: &str) -> String {
        format!("{}/events/{id}", self.owner)
    }

    /// The instances of `master` whose original start is on `day` (yyyy-mm-dd).
    async fn instances_on(&self, master: &str, day: &str) -> ItemResult<Vec<Value>> {
        let mut out = Vec::new();
        let mut next = Some(format!(
            "{}/instances?startDateTime={day}T00:00:00Z&endDateTime={day}T23:59:59Z\
             &$select=id,originalStart,start",
            self.event_url(master)
        ));
        while let Some(url) = next.take() {
            self.tally.requests(1);
            let page = self
                .graph
                .page(self.ids(Request::get(url)))
                .await
                .map_err(|e| graph_reason(&e))?;
            out.extend(page.items);
            next = page.next_link;
        }
        Ok(out
            .into_iter()
            .filter(|i| day_of(str_at(i, "originalStart")) == day)
            .collect())
    }

    /// A series just created from `snap`: its exceptions patched and its
    /// cancelled occurrences deleted.
    pub async fn apply(&self, master: &str, snap: &Value) -> ItemResult<usize> {
        self.apply_to(master, snap, None).await
    }

    /// [`Series::apply`] to a series whose state is `current` (with its
    /// `cancelledOccurrences` and `exceptionOccurrences`): occurrences that
    /// already are as in the snapshot are left alone.
    async fn apply_to(
        &self,
        master: &str,
        snap: &Value,
        current: Option<&Value>,
    ) -> ItemResult<usize> {
        let already_cancelled: BTreeSet<String> = current
            .map(|c| cancelled_days(c).collect())
            .unwrap_or_default();
        let mut written = 0;
        for x in exceptions(snap) {
            let original = str_at(x, "originalStart");
            let day = day_of(original);
            if day.is_empty() || already_cancelled.contains(day) {
                continue;
            }
            let mut patch = (self.fields)(x);
            patch.remove("recurrence");
            add_tag(&mut patch, self.tag);
            let same = current
                .and_then(|c| exceptions(c).find(|y| day_of(str_at(y, "originalStart")) == day))
                .is_some_and(|y| patch.iter().all(|(k, v)| same_value(k, y.get(k), v)));
            if same {
                continue;
            }
            let found = self.instances_on(master, day).await?;
            let Some(inst) = found.iter().find_map(id_of) else {
                continue;
            };
            self.send_json(Method::PATCH, self.event_url(inst), &Value::Object(patch))
                .await?;
            written += 1;
        }
        for day in cancelled_days(snap) {
            if already_cancelled.contains(&day) {
                continue;
            }
            for i in self
                .instances_on(master, &day)
                .await?
                .iter()
                .filter_map(id_of)
            {
                match self.send(Request::delete(self.event_url(i))).await {
                    Ok(_) => written += 1,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(graph_reason(&e)),
                }
            }
        }
        Ok(written)
    }

    /// An existing series (its master already given the snapshot's values)
    /// made to have the snapshot's occurrences; see the module docs.
    /// Standalone events for lost meeting occurrences go to `create_url`.
    pub async fn reconcile(
        &self,
        master: &str,
        snap: &Value,
        create_url: &str,
    ) -> ItemResult<Reconcile> {
        let select = OCCURRENCE_FIELDS.join(",");
        let cur = self
            .send(Request::get(format!(
                "{}?$select={select},start,end,recurrence,attendees,cancelledOccurrences\
                 &$expand=exceptionOccurrences",
                self.event_url(master)
            )))
            .await
            .map_err(|e| graph_reason(&e))?
            .json::<Value>()
            .map_err(|e| e.to_string())?;
        if cur.get("recurrence").is_none_or(Value::is_null) {
            return Ok(Reconcile::Done(Reconciled::default()));
        }
        let snap_cancelled: BTreeSet<String> = cancelled_days(snap).collect();
        let cur_cancelled: BTreeSet<String> = cancelled_days(&cur).collect();
        let lost: Vec<&String> = cur_cancelled.difference(&snap_cancelled).collect();
        let is_meeting = cur
            .get("attendees")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !lost.is_empty() && !is_meeting {
            return Ok(Reconcile::Recreate);
        }
        let mut done = Reconciled::default();

        // Occurrences changed since the backup go back to the series' values.
        let snap_exceptions: BTreeSet<&str> = exceptions(snap)
            .map(|x| day_of(str_at(x, "originalStart")))
            .collect();
        for x in exceptions(&cur) {
            let original = str_at(x, "originalStart");
            let day = day_of(original);
            if day.is_empty() || snap_exceptions.contains(day) || snap_cancelled.contains(day) {
                continue;
            }
            let Some(id) = id_of(x) else { continue };
            let mut body = occurrence_of(&cur, day);
            add_tag(&mut body, self.tag);
            if body.iter().all(|(k, v)| same_value(k, x.get(k), v)) {
                // Reverted by an earlier restore: an exception only in name.
                continue;
            }
            self.send_json(Method::PATCH, self.event_url(id), &Value::Object(body))
                .await?;
            done.reverted += 1;
        }

        done.applied = self.apply_to(master, snap, Some(&cur)).await?;

        // A meeting's occurrences cancelled since the backup: events of their
        // own (unless an earlier restore made them already).
        for day in lost {
            let mut body =
                match exceptions(snap).find(|x| day_of(str_at(x, "originalStart")) == day) {
                    Some(x) => {
                        let mut b = (self.fields)(x);
                        b.remove("recurrence");
                        b
                    }
                    None => occurrence_of(&cur, day),
                };
            attendees_into_body(&mut body, snap);
            add_tag(&mut body, self.tag);
            if self.single_exists(day, &body).await? {
                continue;
            }
            self.send_json(Method::POST, create_url.to_string(), &Value::Object(body))
                .await?;
            done.standalone += 1;
        }
        if done.standalone > 0 {
            self.tally.note(
                "Occurrences of meetings cancelled since the backup were restored as separate \
                 events: Microsoft Graph cannot restore a cancelled occurrence of a meeting \
                 without sending it to the attendees again.",
            );
        }
        Ok(Reconcile::Done(done))
    }

    /// Whether a single event with `body`'s subject and start is on `day`.
    async fn single_exists(&self, day: &str, body: &Map<String, Value>) -> ItemResult<bool> {
        let subject = body
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let start = body
            .get("start")
            .map(|s| str_at(s, "dateTime"))
            .unwrap_or_default();
        let url = format!(
            "{}/calendarView?startDateTime={day}T00:00:00Z&endDateTime={day}T23:59:59Z\
             &$select=subject,start,type&$top=200",
            self.owner
        );
        self.tally.requests(1);
        let page = self
            .graph
            .page(self.ids(Request::get(url)))
            .await
            .map_err(|e| graph_reason(&e))?;
        Ok(page.items.iter().any(|v| {
            str_at(v, "type") == "singleInstance"
                && str_at(v, "subject") == subject
                && same_value(
                    "start.dateTime",
                    v.get("start").and_then(|s| s.get("dateTime")),
                    &json!(start),
                )
        }))
    }
}

/// Whether the destination's `cur` value of property `key` already is the
/// snapshot's `want` (Graph adds fields to complex values, and returns
/// date-times with more precision than it was given).
pub(super) fn same_value(key: &str, cur: Option<&Value>, want: &Value) -> bool {
    let Some(cur) = cur else { return false };
    match (cur, want) {
        (Value::Object(c), Value::Object(w)) => w
            .iter()
            .all(|(k, x)| same_value(&format!("{key}.{k}"), c.get(k), x)),
        (Value::String(c), Value::String(w)) if key.ends_with("dateTime") => {
            c.get(..19) == w.get(..19)
        }
        _ => cur == want,
    }
}

/// The series `ev`'s occurrence on `day`, as an event body of its own: the
/// series' shared values, its time of day and duration on that day.
fn occurrence_of(ev: &Value, day: &str) -> Map<String, Value> {
    let mut body = Map::new();
    for k in OCCURRENCE_FIELDS {
        if let Some(v) = ev.get(*k).filter(|v| !v.is_null()) {
            body.insert((*k).to_string(), v.clone());
        }
    }
    let start = ev.get("start");
    let end = ev.get("end");
    let parse = |t: Option<&Value>| {
        let s = t.map(|t| str_at(t, "dateTime")).unwrap_or_default();
        NaiveDateTime::parse_from_str(s.get(..19).unwrap_or(s), "%Y-%m-%dT%H:%M:%S").ok()
    };
    if let (Some(s), Some(e), Ok(d)) = (
        parse(start),
        parse(end),
        chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d"),
    ) {
        let os = d.and_time(s.time());
        let oe = os + (e - s);
        let zone = |t: Option<&Value>| {
            t.map(|t| str_at(t, "timeZone"))
                .filter(|z| !z.is_empty())
                .unwrap_or("UTC")
                .to_string()
        };
        body.insert(
            "start".into(),
            json!({"dateTime": os.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": zone(start)}),
        );
        body.insert(
            "end".into(),
            json!({"dateTime": oe.format("%Y-%m-%dT%H:%M:%S").to_string(), "timeZone": zone(end)}),
        );
    }
    body
}

fn exceptions(ev: &Value) -> impl Iterator<Item = &Value> {
    ev.get("exceptionOccurrences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The days of a series' cancelled occurrences (`OID.<master>.<yyyy-mm-dd>`).
fn cancelled_days(ev: &Value) -> impl Iterator<Item = String> + '_ {
    ev.get("cancelledOccurrences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|c| c.rsplit('.').next().filter(|d| d.len() == 10))
        .map(str::to_string)
}

/// The date part of a Graph timestamp.
fn day_of(t: &str) -> &str {
    t.get(..10).unwrap_or_default()
}

pub(super) fn str_at<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// A Graph error as a person reads it, with what to do about it.
pub(super) fn graph_reason(e: &GraphError) -> String {
    format!("{e} ({})", e.guidance())
}

/// The properties of `body` whose value `cur` (the destination's copy)
/// does not already have: what a replace patches.
pub(super) fn changed_fields(body: &Map<String, Value>, cur: &Value) -> Map<String, Value> {
    body.iter()
        .filter(|(k, v)| !same_value(k, cur.get(k.as_str()), v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Adds `tag` to the `categories` of `m`.
pub(super) fn add_tag(m: &mut Map<String, Value>, tag: Option<&str>) {
    let Some(tag) = tag.filter(|t| !t.is_empty()) else {
        return;
    };
    let mut cats: Vec<Value> = m
        .get("categories")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !cats.iter().any(|c| c.as_str() == Some(tag)) {
        cats.push(json!(tag));
    }
    m.insert("categories".into(), Value::Array(cats));
}

/// Attendees cannot be restored without Graph inviting them again: they
/// are listed at the end of the body instead.
pub(super) fn attendees_into_body(body: &mut Map<String, Value>, ev: &Value) {
    let Some(list) = ev.get("attendees").and_then(Value::as_array) else {
        return;
    };
    let names: Vec<String> = list
        .iter()
        .filter_map(|a| a.get("emailAddress"))
        .map(|e| {
            let (n, a) = (str_at(e, "name"), str_at(e, "address"));
            if n.is_empty() {
                a.to_string()
            } else {
                format!("{n} <{a}>")
            }
        })
        .collect();
    if names.is_empty() {
        return;
    }
    let line = format!("Attendees (restored from backup): {}", names.join("; "));
    let (ctype, content) = match body.get("body") {
        Some(b) => (
            str_at(b, "contentType").to_string(),
            str_at(b, "content").to_string(),
        ),
        None => ("text".into(), String::new()),
    };
    if content.contains(&line) {
        return;
    }
    let content = if ctype.eq_ignore_ascii_case("html") {
        let esc = line
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        if content.contains(&esc) {
            return;
        }
        format!("{content}<p>{esc}</p>")
    } else if content.is_empty() {
        line
    } else {
        format!("{content}\n\n{line}")
    };
    body.insert(
        "body".into(),
        json!({"contentType": if ctype.is_empty() { "text".to_string() } else { ctype }, "content": content}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_occurrence_keeps_the_series_time_of_day_and_duration() {
        let ev = json!({
            "subject": "Standup",
            "start": {"dateTime": "2026-01-05T09:30:00.0000000", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-01-05T10:15:00.0000000", "timeZone": "W. Europe Standard Time"},
            "recurrence": {"pattern": {}},
            "attendees": [],
        });
        let o = occurrence_of(&ev, "2026-02-11");
        assert_eq!(o["subject"], json!("Standup"));
        assert_eq!(o["start"]["dateTime"], json!("2026-02-11T09:30:00"));
        assert_eq!(o["end"]["dateTime"], json!("2026-02-11T10:15:00"));
        assert_eq!(o["start"]["timeZone"], json!("W. Europe Standard Time"));
        assert!(!o.contains_key("recurrence") && !o.contains_key("attendees"));
    }

    #[test]
    fn cancelled_days_come_from_the_occurrence_ids() {
        let ev = json!({"cancelledOccurrences": ["OID.AAMk.x.2026-03-02", "garbage", "OID.AAMk.2026-03-09"]});
        let days: Vec<String> = cancelled_days(&ev).collect();
        assert_eq!(days, ["2026-03-02", "2026-03-09"]);
    }

    #[test]
    fn the_attendee_line_is_added_once() {
        let ev = json!({"attendees": [{"emailAddress": {"name": "Ann", "address": "ann@x.test"}}]});
        let mut body = Map::new();
        body.insert(
            "body".into(),
            json!({"contentType": "html", "content": "<p>hi</p>"}),
        );
        attendees_into_body(&mut body, &ev);
        let once = body.clone();
        attendees_into_body(&mut body, &ev);
        assert_eq!(body, once);
        assert!(
            body["body"]["content"]
                .as_str()
                .unwrap()
                .contains("Ann &lt;ann@x.test&gt;")
        );
    }
}
