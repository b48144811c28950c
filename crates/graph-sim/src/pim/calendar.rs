//! Calendars and events of users and Microsoft 365 groups: `/calendars`,
//! `/calendar`, `/events`, `/instances`, `/calendarView` and `calendarView/delta`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use super::recur::{Recurrence, weekday_name};
use super::{
    Calendar, Event, Item, Kind, Mailbox, Owner, Resp, apply_props, body_error, canonical_hash,
    created_json, delta_page_size, dt_tz, item_id, make, no_content, ok_json, open_group,
    open_user, parse_body, parse_dttz, parse_naive, path_part, removed_json, stored_dt,
};
use crate::delta::{Cursor, DeltaLog};
use crate::error::{GraphError, GraphResult};
use crate::odata::{self, GraphCtx, PageLimits};
use crate::rng::{self, SimRng};
use crate::{ActivityReport, Sim, TruthItem};

const EVENT_PROPS: &[(&str, Kind)] = &[
    ("allowNewTimeProposals", Kind::Bool),
    ("attendees", Kind::Arr),
    ("body", Kind::Obj),
    ("categories", Kind::Arr),
    ("end", Kind::Obj),
    ("hideAttendees", Kind::Bool),
    ("importance", Kind::Str),
    ("isAllDay", Kind::Bool),
    ("isOnlineMeeting", Kind::Bool),
    ("isReminderOn", Kind::Bool),
    ("location", Kind::Obj),
    ("locations", Kind::Arr),
    ("onlineMeetingProvider", Kind::Str),
    ("organizer", Kind::Obj),
    ("recurrence", Kind::Obj),
    ("reminderMinutesBeforeStart", Kind::Int),
    ("responseRequested", Kind::Bool),
    ("sensitivity", Kind::Str),
    ("showAs", Kind::Str),
    ("start", Kind::Obj),
    ("subject", Kind::Str),
    ("transactionId", Kind::Str),
];

const EVENT_READ_ONLY: &[&str] = &[
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "bodyPreview",
    "hasAttachments",
    "iCalUId",
    "isCancelled",
    "isDraft",
    "isOrganizer",
    "onlineMeeting",
    "onlineMeetingUrl",
    "originalEndTimeZone",
    "originalStart",
    "originalStartTimeZone",
    "responseStatus",
    "seriesMasterId",
    "type",
    "webLink",
    "cancelledOccurrences",
    "calendar",
];

const CALENDAR_COLORS: &[(&str, &str)] = &[
    ("auto", ""),
    ("lightBlue", "#a6d1f5"),
    ("lightGreen", "#87d28e"),
    ("lightOrange", "#fcab73"),
    ("lightGray", "#c0c0c0"),
    ("lightYellow", "#f4d07a"),
    ("lightTeal", "#79dcdc"),
    ("lightPink", "#ee7da0"),
    ("lightBrown", "#d8b48c"),
    ("lightRed", "#f08080"),
];

const NO_TIME: &str = "0001-01-01T00:00:00Z";

// ---------------------------------------------------------------- ids

fn occ_id(master: &str, date: NaiveDate) -> String {
    format!(
        "AAMkOc{}",
        URL_SAFE_NO_PAD.encode(format!("{master}|{}", date.format("%Y%m%d")))
    )
}

fn parse_occ(id: &str) -> Option<(String, NaiveDate)> {
    let rest = id.strip_prefix("AAMkOc")?;
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(rest).ok()?).ok()?;
    let (master, date) = text.rsplit_once('|')?;
    Some((
        master.to_string(),
        NaiveDate::parse_from_str(date, "%Y%m%d").ok()?,
    ))
}

fn cancelled_ref(master: &str, date: NaiveDate) -> String {
    format!("OID.{master}.{}", date.format("%Y-%m-%d"))
}

// ---------------------------------------------------------------- model helpers

fn event_defaults(owner_name: &str, owner_address: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("subject".into(), json!(""));
    m.insert("body".into(), json!({"contentType": "html", "content": ""}));
    m.insert("importance".into(), json!("normal"));
    m.insert("sensitivity".into(), json!("normal"));
    m.insert("showAs".into(), json!("busy"));
    m.insert("isAllDay".into(), json!(false));
    m.insert("isCancelled".into(), json!(false));
    m.insert("isOnlineMeeting".into(), json!(false));
    m.insert("onlineMeetingProvider".into(), json!("unknown"));
    m.insert("onlineMeeting".into(), Value::Null);
    m.insert("isReminderOn".into(), json!(true));
    m.insert("reminderMinutesBeforeStart".into(), json!(15));
    m.insert("responseRequested".into(), json!(true));
    m.insert("allowNewTimeProposals".into(), json!(true));
    m.insert("hideAttendees".into(), json!(false));
    m.insert("categories".into(), json!([]));
    m.insert("attendees".into(), json!([]));
    m.insert("recurrence".into(), Value::Null);
    m.insert("transactionId".into(), Value::Null);
    m.insert("location".into(), location(""));
    m.insert("locations".into(), json!([]));
    m.insert(
        "organizer".into(),
        json!({"emailAddress": {"name": owner_name, "address": owner_address}}),
    );
    m
}

fn location(name: &str) -> Value {
    if name.is_empty() {
        json!({"displayName": "", "locationType": "default", "uniqueIdType": "unknown", "address": {}, "coordinates": {}})
    } else {
        json!({"displayName": name, "locationType": "default", "uniqueId": name, "uniqueIdType": "private", "address": {}, "coordinates": {}})
    }
}

fn attendee(name: &str, address: &str, kind: &str, response: &str, time: &str) -> Value {
    json!({
        "type": kind,
        "status": {"response": response, "time": time},
        "emailAddress": {"name": name, "address": address},
    })
}

/// Fills what Graph fills in client-sent properties: attendee status, location
/// shape, a complete recurrence, UTC start/end with their original time zones.
fn normalize(props: &mut Map<String, Value>, body: &Map<String, Value>) -> GraphResult<()> {
    for (name, tz_name) in [
        ("start", "originalStartTimeZone"),
        ("end", "originalEndTimeZone"),
    ] {
        if let Some(v) = body.get(name).filter(|v| !v.is_null()) {
            let (t, tz) = parse_dttz(v, name)?;
            props.insert(name.into(), dt_tz(t));
            props.insert(tz_name.into(), json!(tz));
        }
    }
    if let (Some(s), Some(e)) = (stored_dt(props, "start"), stored_dt(props, "end"))
        && e < s
    {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "The end time of the event must be after its start time.",
        ));
    }
    if let Some(Value::Array(list)) = props.get_mut("attendees") {
        for a in list.iter_mut() {
            let Some(m) = a.as_object_mut() else {
                return Err(body_error("Each attendee must be an object."));
            };
            let addr_ok = m
                .get("emailAddress")
                .and_then(|e| e.get("address"))
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty());
            if !addr_ok {
                return Err(GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "ErrorInvalidRecipients",
                    "At least one recipient isn't valid. An attendee needs an email address.",
                ));
            }
            if !m.get("type").is_some_and(Value::is_string) {
                m.insert("type".into(), json!("required"));
            }
            if !m.get("status").is_some_and(Value::is_object) {
                m.insert(
                    "status".into(),
                    json!({"response": "none", "time": NO_TIME}),
                );
            }
        }
    }
    if body.contains_key("location") {
        let name = props
            .get("location")
            .and_then(|l| l.get("displayName"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mut loc = location(&name);
        if let (Some(Value::Object(given)), Value::Object(l)) = (props.get("location"), &mut loc) {
            for (k, v) in given {
                l.insert(k.clone(), v.clone());
            }
        }
        let locs = if name.is_empty() {
            json!([])
        } else {
            json!([loc.clone()])
        };
        props.insert("location".into(), loc);
        if !body.contains_key("locations") {
            props.insert("locations".into(), locs);
        }
    }
    if let Some(r) = props.get("recurrence").filter(|r| !r.is_null()).cloned() {
        let rec = Recurrence::parse(&r)?;
        props.insert("recurrence".into(), recurrence_json(&rec));
    }
    Ok(())
}

/// A recurrence the way Graph returns it: every field present.
fn recurrence_json(r: &Recurrence) -> Value {
    use super::recur::{PatternKind, RangeEnd, WeekIndex};
    let kind = match r.kind {
        PatternKind::Daily => "daily",
        PatternKind::Weekly => "weekly",
        PatternKind::AbsoluteMonthly => "absoluteMonthly",
        PatternKind::RelativeMonthly => "relativeMonthly",
        PatternKind::AbsoluteYearly => "absoluteYearly",
        PatternKind::RelativeYearly => "relativeYearly",
    };
    let index = match r.index {
        WeekIndex::First => "first",
        WeekIndex::Second => "second",
        WeekIndex::Third => "third",
        WeekIndex::Fourth => "fourth",
        WeekIndex::Last => "last",
    };
    let (range_type, end_date, count) = match r.end {
        RangeEnd::EndDate(d) => ("endDate", d.to_string(), 0),
        RangeEnd::NoEnd => ("noEnd", "0001-01-01".to_string(), 0),
        RangeEnd::Numbered(n) => ("numbered", "0001-01-01".to_string(), n),
    };
    let days: Vec<&str> = r.days_of_week.iter().map(|d| weekday_name(*d)).collect();
    json!({
        "pattern": {
            "type": kind,
            "interval": r.interval,
            "month": r.month,
            "dayOfMonth": r.day_of_month,
            "daysOfWeek": days,
            "firstDayOfWeek": weekday_name(r.first_day_of_week),
            "index": index,
        },
        "range": {
            "type": range_type,
            "startDate": r.start.to_string(),
            "endDate": end_date,
            "recurrenceTimeZone": "UTC",
            "numberOfOccurrences": count,
        }
    })
}

fn recurrence_of(ev: &Event) -> Option<Recurrence> {
    ev.item
        .props
        .get("recurrence")
        .filter(|r| !r.is_null())
        .and_then(|r| Recurrence::parse(r).ok())
}

fn attendee_addresses(props: &Map<String, Value>) -> Vec<String> {
    props
        .get("attendees")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|a| a.get("emailAddress")?.get("address")?.as_str())
                .map(str::to_ascii_lowercase)
                .collect()
        })
        .unwrap_or_default()
}

fn is_organizer(mb: &Mailbox, props: &Map<String, Value>) -> bool {
    props
        .get("organizer")
        .and_then(|o| o.get("emailAddress"))
        .and_then(|e| e.get("address"))
        .and_then(Value::as_str)
        .is_none_or(|a| a.eq_ignore_ascii_case(&mb.owner_address))
}

fn body_preview(props: &Map<String, Value>) -> String {
    let content = props
        .get("body")
        .and_then(|b| b.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = String::new();
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    out.chars().take(255).collect()
}

fn ical_uid(id: &str) -> String {
    let h = blake3::hash(id.as_bytes()).to_hex();
    format!(
        "040000008200E00074C5B7101A82E00800000000{}",
        h[..48].to_ascii_uppercase()
    )
}

// ---------------------------------------------------------------- rendering

struct View<'a> {
    mb: &'a Mailbox,
    base_web: String,
    /// `$select` names `cancelledOccurrences`.
    with_cancelled: bool,
}

impl<'a> View<'a> {
    fn new(mb: &'a Mailbox, ctx: &GraphCtx) -> View<'a> {
        View {
            mb,
            base_web: "https://outlook.office365.com/owa/?itemid=".into(),
            with_cancelled: ctx.query.select.as_ref().is_some_and(|s| {
                s.iter()
                    .any(|x| x.eq_ignore_ascii_case("cancelledOccurrences"))
            }),
        }
    }

    fn common(&self, item: &Item, props: &Map<String, Value>, id: &str) -> Map<String, Value> {
        let mut m = item.outlook_json();
        for (k, v) in props {
            m.insert(k.clone(), v.clone());
        }
        m.insert("id".into(), json!(id));
        m.insert("bodyPreview".into(), json!(body_preview(props)));
        m.insert("hasAttachments".into(), json!(false));
        m.insert("isDraft".into(), json!(false));
        let organizer = is_organizer(self.mb, props);
        m.insert("isOrganizer".into(), json!(organizer));
        if organizer {
            m.insert(
                "responseStatus".into(),
                json!({"response": "organizer", "time": NO_TIME}),
            );
        } else if !m.contains_key("responseStatus") {
            m.insert(
                "responseStatus".into(),
                json!({"response": "notResponded", "time": NO_TIME}),
            );
        }
        m.insert("onlineMeetingUrl".into(), Value::Null);
        m.insert(
            "webLink".into(),
            json!(format!(
                "{}{}&exvsurl=1&path=/calendar/item",
                self.base_web,
                odata::encode(id)
            )),
        );
        if !m.contains_key("originalStartTimeZone") {
            m.insert("originalStartTimeZone".into(), json!("UTC"));
        }
        if !m.contains_key("originalEndTimeZone") {
            m.insert("originalEndTimeZone".into(), json!("UTC"));
        }
        m.insert("iCalUId".into(), json!(ical_uid(id)));
        m
    }

    /// A single instance or a series master.
    fn event(&self, ev: &Event) -> Value {
        let mut m = self.common(&ev.item, &ev.item.props, &ev.item.id);
        let master = recurrence_of(ev).is_some();
        m.insert(
            "type".into(),
            json!(if master {
                "seriesMaster"
            } else {
                "singleInstance"
            }),
        );
        m.insert("seriesMasterId".into(), Value::Null);
        if self.with_cancelled {
            let list: Vec<String> = ev
                .cancelled
                .iter()
                .map(|d| cancelled_ref(&ev.item.id, *d))
                .collect();
            m.insert("cancelledOccurrences".into(), json!(list));
        }
        Value::Object(m)
    }

    /// An occurrence (or, with an exception, the changed occurrence) of a series.
    fn instance(&self, ev: &Event, date: NaiveDate) -> Value {
        let (start, dur) = series_time(ev);
        let ostart = date.and_time(start.time());
        let id = occ_id(&ev.item.id, date);
        let mut props = ev.item.props.clone();
        props.insert("start".into(), dt_tz(ostart));
        props.insert("end".into(), dt_tz(ostart + dur));
        props.insert("recurrence".into(), Value::Null);
        let (item, kind) = match ev.exceptions.get(&date) {
            Some(x) => {
                for (k, v) in &x.props {
                    props.insert(k.clone(), v.clone());
                }
                (x, "exception")
            }
            None => (&ev.item, "occurrence"),
        };
        let mut m = self.common(item, &props, &id);
        m.insert("type".into(), json!(kind));
        m.insert("seriesMasterId".into(), json!(ev.item.id));
        m.insert(
            "originalStart".into(),
            json!(crate::graph_time(DateTime::from_naive_utc_and_offset(
                ostart, Utc
            ))),
        );
        if self.with_cancelled {
            m.insert("cancelledOccurrences".into(), json!([]));
        }
        Value::Object(m)
    }
}

/// The master's start and duration.
fn series_time(ev: &Event) -> (NaiveDateTime, Duration) {
    let start = stored_dt(&ev.item.props, "start").unwrap_or_default();
    let end = stored_dt(&ev.item.props, "end").unwrap_or(start);
    (start, end - start)
}

/// Occurrence dates of a series (cancelled ones excluded) whose time span
/// (after exceptions) overlaps `[from, to)`.
fn instances_in(ev: &Event, from: NaiveDateTime, to: NaiveDateTime) -> Vec<NaiveDate> {
    let Some(rec) = recurrence_of(ev) else {
        return Vec::new();
    };
    let (start, dur) = series_time(ev);
    let mut out = Vec::new();
    let until = to.date() + Duration::days(1);
    let slack = dur.num_days() + 1;
    for d in rec.dates_until(until) {
        if ev.cancelled.contains(&d) {
            continue;
        }
        let (s, e) = match ev.exceptions.get(&d) {
            Some(x) => (
                stored_dt(&x.props, "start").unwrap_or(d.and_time(start.time())),
                stored_dt(&x.props, "end").unwrap_or(d.and_time(start.time()) + dur),
            ),
            None => {
                if d + Duration::days(slack) < from.date() {
                    continue;
                }
                let s = d.and_time(start.time());
                (s, s + dur)
            }
        };
        if s < to && (e > from || (e == s && s >= from)) {
            out.push(d);
        }
    }
    // Exceptions moved into the window from a date after it.
    for (d, x) in &ev.exceptions {
        if *d > until
            && !ev.cancelled.contains(d)
            && let (Some(s), Some(e)) = (stored_dt(&x.props, "start"), stored_dt(&x.props, "end"))
            && s < to
            && e > from
        {
            out.push(*d);
        }
    }
    out
}

fn is_series_date(ev: &Event, date: NaiveDate) -> bool {
    recurrence_of(ev).is_some_and(|r| r.dates_until(date).last() == Some(&date))
}

fn calendar_json(mb: &Mailbox, c: &Calendar) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(c.item.id));
    m.insert("name".into(), json!(c.item.str("name")));
    m.insert(
        "color".into(),
        c.item.props.get("color").cloned().unwrap_or(json!("auto")),
    );
    m.insert(
        "hexColor".into(),
        c.item.props.get("hexColor").cloned().unwrap_or(json!("")),
    );
    let default = c.item.id == mb.default_calendar;
    m.insert("isDefaultCalendar".into(), json!(default));
    m.insert("changeKey".into(), json!(c.item.change_key()));
    m.insert("canShare".into(), json!(!mb.is_group));
    m.insert("canViewPrivateItems".into(), json!(true));
    m.insert("canEdit".into(), json!(true));
    m.insert("isRemovable".into(), json!(!default));
    m.insert("isTallyingResponses".into(), json!(!mb.is_group));
    m.insert(
        "allowedOnlineMeetingProviders".into(),
        json!(["teamsForBusiness"]),
    );
    m.insert(
        "defaultOnlineMeetingProvider".into(),
        json!("teamsForBusiness"),
    );
    m.insert(
        "owner".into(),
        json!({"name": mb.owner_name, "address": mb.owner_address}),
    );
    Value::Object(m)
}

// ---------------------------------------------------------------- generation

pub(crate) fn add_default_calendar(mb: &mut Mailbox, at: DateTime<Utc>) {
    let mut props = Map::new();
    props.insert("name".into(), json!("Calendar"));
    props.insert("color".into(), json!("auto"));
    props.insert("hexColor".into(), json!(""));
    mb.calendars.push(Calendar {
        item: Item::new(mb.default_calendar.clone(), at, props),
        events: DeltaLog::new(),
        tombstones: Default::default(),
    });
}

const EXTRA_CALENDARS: &[&str] = &["Project deadlines", "Team offsite", "Personal", "On call"];
const ROOMS: &[&str] = &[
    "Conference Room Adams",
    "Conference Room Baker",
    "Microsoft Teams Meeting",
    "Building 4 / 2nd floor",
    "Café Rialto",
    "",
];

/// A generated event's properties starting at `start`.
fn event_props(
    rng: &mut SimRng,
    mb: &Mailbox,
    people: &[(String, String)],
    start: NaiveDateTime,
    all_day: bool,
    meeting: bool,
) -> Map<String, Value> {
    let mut p = event_defaults(&mb.owner_name, &mb.owner_address);
    let subject = rng::title(rng, 2, 5);
    p.insert("subject".into(), json!(subject));
    p.insert(
        "body".into(),
        json!({"contentType": "html", "content": format!("<html><body><p>{}</p></body></html>", rng::paragraph(rng, 2))}),
    );
    let (s, e) = if all_day {
        let d = start.date().and_hms_opt(0, 0, 0).unwrap_or(start);
        (d, d + Duration::days(1))
    } else {
        let mins = [30, 30, 60, 60, 90, 120][rng.random_range(0..6usize)];
        (start, start + Duration::minutes(mins))
    };
    p.insert("start".into(), dt_tz(s));
    p.insert("end".into(), dt_tz(e));
    p.insert("originalStartTimeZone".into(), json!("UTC"));
    p.insert("originalEndTimeZone".into(), json!("UTC"));
    p.insert("isAllDay".into(), json!(all_day));
    if all_day {
        p.insert("showAs".into(), json!("free"));
        p.insert("reminderMinutesBeforeStart".into(), json!(1080));
    }
    let room = *rng::pick(rng, ROOMS);
    let loc = location(room);
    p.insert("location".into(), loc.clone());
    p.insert(
        "locations".into(),
        if room.is_empty() {
            json!([])
        } else {
            json!([loc])
        },
    );
    if rng.random_bool(0.15) {
        p.insert("importance".into(), json!("high"));
    }
    if rng.random_bool(0.1) {
        p.insert("sensitivity".into(), json!("private"));
    }
    if rng.random_bool(0.2) {
        p.insert(
            "categories".into(),
            json!([*rng::pick(
                rng,
                &["Blue category", "Green category", "Travel", "Customer"]
            )]),
        );
    }
    if rng.random_bool(0.4) {
        p.insert("isOnlineMeeting".into(), json!(true));
        p.insert("onlineMeetingProvider".into(), json!("teamsForBusiness"));
        p.insert(
            "onlineMeeting".into(),
            json!({"joinUrl": format!("https://teams.microsoft.com/l/meetup-join/19%3ameeting_{}%40thread.v2/0", rng.random_range(100_000..999_999))}),
        );
    }
    if meeting && !people.is_empty() {
        let received = rng.random_bool(0.35);
        let n = rng.random_range(1..=people.len().min(4));
        let mut list = Vec::new();
        let organizer = if received {
            people[rng.random_range(0..people.len())].clone()
        } else {
            (mb.owner_name.clone(), mb.owner_address.clone())
        };
        for i in 0..n {
            let (name, addr) = &people[(i * 7 + n) % people.len()];
            if addr.eq_ignore_ascii_case(&organizer.1)
                || list
                    .iter()
                    .any(|a: &Value| a["emailAddress"]["address"] == json!(addr))
            {
                continue;
            }
            let kind = if rng.random_bool(0.75) {
                "required"
            } else {
                "optional"
            };
            let resp = *rng::pick(
                rng,
                &[
                    "accepted",
                    "accepted",
                    "tentativelyAccepted",
                    "declined",
                    "none",
                ],
            );
            let time = if resp == "none" {
                NO_TIME.to_string()
            } else {
                crate::graph_time(DateTime::from_naive_utc_and_offset(
                    s - Duration::days(2),
                    Utc,
                ))
            };
            list.push(attendee(name, addr, kind, resp, &time));
        }
        if received {
            list.push(attendee(
                &mb.owner_name,
                &mb.owner_address,
                "required",
                "accepted",
                NO_TIME,
            ));
            p.insert(
                "organizer".into(),
                json!({"emailAddress": {"name": organizer.0, "address": organizer.1}}),
            );
            p.insert(
                "responseStatus".into(),
                json!({"response": *rng::pick(rng, &["accepted", "tentativelyAccepted"]), "time": crate::graph_time(DateTime::from_naive_utc_and_offset(s - Duration::days(3), Utc))}),
            );
        }
        p.insert("attendees".into(), json!(list));
    }
    p
}

/// A recurrence that has `start` as its first occurrence.
fn gen_recurrence(rng: &mut SimRng, start: NaiveDate, all_day: bool) -> Value {
    let wd = weekday_name(start.weekday());
    let r = if all_day {
        json!({"pattern": {"type": "absoluteYearly", "interval": 1, "month": start.month(), "dayOfMonth": start.day()},
            "range": {"type": "noEnd", "startDate": start.to_string()}})
    } else {
        match rng.random_range(0..5u32) {
            0 => json!({"pattern": {"type": "daily", "interval": 1},
                "range": {"type": "numbered", "startDate": start.to_string(), "numberOfOccurrences": rng.random_range(5..12)}}),
            1 => {
                json!({"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": [wd], "firstDayOfWeek": "sunday"},
                "range": {"type": "noEnd", "startDate": start.to_string()}})
            }
            2 => {
                json!({"pattern": {"type": "weekly", "interval": 2, "daysOfWeek": [wd], "firstDayOfWeek": "monday"},
                "range": {"type": "endDate", "startDate": start.to_string(), "endDate": (start + Duration::days(180)).to_string()}})
            }
            3 => {
                let idx = ["first", "second", "third", "fourth", "last"]
                    [((start.day() - 1) / 7) as usize];
                json!({"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": [wd], "index": idx},
                    "range": {"type": "numbered", "startDate": start.to_string(), "numberOfOccurrences": 8}})
            }
            _ => {
                json!({"pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": start.day()},
                "range": {"type": "endDate", "startDate": start.to_string(), "endDate": (start + Duration::days(365)).to_string()}})
            }
        }
    };
    Recurrence::parse(&r)
        .map(|x| recurrence_json(&x))
        .unwrap_or(Value::Null)
}

fn gen_time(rng: &mut SimRng, around: NaiveDate, before: i64, after: i64) -> NaiveDateTime {
    let d = around + Duration::days(rng.random_range(-before..=after));
    d.and_hms_opt(
        rng.random_range(8..17),
        [0, 30][rng.random_range(0..2usize)],
        0,
    )
    .unwrap_or_default()
}

fn fill_calendar(
    sim: &Sim,
    mb: &Mailbox,
    cal: &mut Calendar,
    rng: &mut SimRng,
    people: &[(String, String)],
    singles: usize,
    masters: usize,
) {
    let seed = sim.seed();
    let anchor = crate::generation_anchor();
    let today = anchor.date_naive();
    let cal_id = cal.item.id.clone();
    for i in 0..singles + masters {
        let master = i >= singles;
        let all_day = rng.random_bool(if master { 0.15 } else { 0.1 });
        let start = if master {
            gen_time(rng, today, 150, 10)
        } else {
            gen_time(rng, today, 120, 60)
        };
        let meeting = rng.random_bool(0.6);
        let mut props = event_props(rng, mb, people, start, all_day, meeting);
        if master {
            props.insert(
                "recurrence".into(),
                gen_recurrence(rng, start.date(), all_day),
            );
        }
        let id = item_id(
            seed,
            &["pim", &mb.owner_id, "event", &cal_id, &i.to_string()],
        );
        let created_naive = start.min(today.and_hms_opt(0, 0, 0).unwrap_or(start))
            - Duration::days(rng.random_range(1..30));
        let created = DateTime::from_naive_utc_and_offset(created_naive, Utc);
        let mut ev = Event {
            item: Item::new(id.clone(), created, props),
            exceptions: Default::default(),
            cancelled: Default::default(),
        };
        if master {
            let dates = recurrence_of(&ev)
                .map(|r| r.dates_until(today + Duration::days(60)))
                .unwrap_or_default();
            if dates.len() > 3 {
                // One changed occurrence and, sometimes, one cancelled one.
                let d = dates[rng.random_range(1..dates.len())];
                let (st, dur) = series_time(&ev);
                let moved = d.and_time(st.time()) + Duration::hours(rng.random_range(1..3));
                let mut x = Map::new();
                x.insert("start".into(), dt_tz(moved));
                x.insert("end".into(), dt_tz(moved + dur));
                if rng.random_bool(0.5) {
                    x.insert(
                        "subject".into(),
                        json!(format!("{} (moved)", ev.item.str("subject"))),
                    );
                }
                let xid = occ_id(&id, d);
                let mut xi = Item::new(xid, created + Duration::days(1), x);
                xi.version = 2;
                ev.exceptions.insert(d, xi);
                if rng.random_bool(0.6) {
                    let c = dates[rng.random_range(1..dates.len())];
                    if c != d {
                        ev.cancelled.insert(c);
                    }
                }
                ev.item.modified = created + Duration::days(1);
                ev.item.version = 3;
            }
        }
        cal.events.upsert(id, ev, 1);
    }
}

pub(crate) fn generate(sim: &Sim, mb: &mut Mailbox, rng: &mut SimRng, people: &[(String, String)]) {
    let seed = sim.seed();
    let (singles, masters) = if mb.is_group {
        (make::scaled(sim, 8), make::scaled(sim, 2))
    } else {
        (make::scaled(sim, 20), make::scaled(sim, 4))
    };
    let mut cals = std::mem::take(&mut mb.calendars);
    if let Some(default) = cals.first_mut() {
        fill_calendar(sim, mb, default, rng, people, singles, masters);
    }
    if !mb.is_group {
        let extra = rng.random_range(1..=2usize);
        let first = rng.random_range(0..EXTRA_CALENDARS.len());
        for i in 0..extra {
            let name = EXTRA_CALENDARS[(first + i) % EXTRA_CALENDARS.len()];
            let (color, hex) = CALENDAR_COLORS[1 + (first + i) % (CALENDAR_COLORS.len() - 1)];
            let id = item_id(seed, &["pim", &mb.owner_id, "calendar", &i.to_string()]);
            let mut props = Map::new();
            props.insert("name".into(), json!(name));
            props.insert("color".into(), json!(color));
            props.insert("hexColor".into(), json!(hex));
            let mut cal = Calendar {
                item: Item::new(id, crate::generation_anchor() - Duration::days(300), props),
                events: DeltaLog::new(),
                tombstones: Default::default(),
            };
            fill_calendar(
                sim,
                mb,
                &mut cal,
                rng,
                people,
                make::scaled(sim, 5),
                make::scaled(sim, 1),
            );
            cals.push(cal);
        }
    }
    mb.calendars = cals;
}

// ---------------------------------------------------------------- truth

fn visible(props: &Map<String, Value>) -> Map<String, Value> {
    let mut m = props.clone();
    for k in [
        "iCalUId",
        "transactionId",
        "responseStatus",
        "onlineMeeting",
        "originalStartTimeZone",
        "originalEndTimeZone",
    ] {
        m.remove(k);
    }
    if let Some(Value::Array(list)) = m.get_mut("attendees") {
        for a in list.iter_mut() {
            if let Some(o) = a.as_object_mut() {
                o.remove("status");
            }
        }
    }
    m
}

pub(crate) fn truth(mb: &Mailbox) -> Vec<TruthItem> {
    let mut out = Vec::new();
    for cal in &mb.calendars {
        let cname = path_part(cal.item.str("name"));
        for (id, ev) in cal.events.iter() {
            let mut v = visible(&ev.item.props);
            if !ev.cancelled.is_empty() {
                let dates: Vec<String> = ev.cancelled.iter().map(|d| d.to_string()).collect();
                v.insert("cancelledOccurrences".into(), json!(dates));
            }
            let (hash, size) = canonical_hash(&Value::Object(v));
            out.push(TruthItem {
                workload: "calendar".into(),
                path: format!("Calendar/{cname}/{}", path_part(ev.item.str("subject"))),
                id: id.to_string(),
                kind: "event".into(),
                size,
                hash,
            });
            let (start, dur) = series_time(ev);
            for (d, x) in &ev.exceptions {
                let mut v = visible(&ev.item.props);
                v.remove("recurrence");
                let os = d.and_time(start.time());
                v.insert("start".into(), dt_tz(os));
                v.insert("end".into(), dt_tz(os + dur));
                for (k, val) in visible(&x.props) {
                    v.insert(k, val);
                }
                v.insert("originalStart".into(), json!(os.to_string()));
                let subject = v
                    .get("subject")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let (hash, size) = canonical_hash(&Value::Object(v));
                out.push(TruthItem {
                    workload: "calendar".into(),
                    path: format!("Calendar/{cname}/{}", path_part(&subject)),
                    id: x.id.clone(),
                    kind: "event".into(),
                    size,
                    hash,
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------- activity

pub(crate) fn simulate_day(
    sim: &Sim,
    mb: &mut Mailbox,
    rng: &mut SimRng,
    people: &[(String, String)],
    report: &mut ActivityReport,
) {
    let now = sim.now();
    let today = now.date_naive();
    let default = mb.default_calendar.clone();
    // New meetings, some recurring.
    for _ in 0..rng.random_range(0..=2u32) {
        let start = gen_time(rng, today, -1, 20);
        let all_day = rng.random_bool(0.05);
        let mut props = event_props(rng, mb, people, start, all_day, true);
        if rng.random_bool(0.25) {
            props.insert(
                "recurrence".into(),
                gen_recurrence(rng, start.date(), all_day),
            );
        }
        let id = mb.fresh_id(sim.seed(), "event");
        let ev = Event {
            item: Item::new(id.clone(), now, props),
            exceptions: Default::default(),
            cancelled: Default::default(),
        };
        if let Some(cal) = mb.calendar_mut(&default) {
            cal.events.upsert(id, ev, sim.next_seq());
            report.created += 1;
        }
    }
    let Some(cal) = mb.calendar_mut(&default) else {
        return;
    };
    let ids: Vec<(String, bool)> = cal
        .events
        .iter()
        .map(|(k, e)| (k.to_string(), recurrence_of(e).is_some()))
        .collect();
    let singles: Vec<&String> = ids.iter().filter(|(_, m)| !m).map(|(k, _)| k).collect();
    let masters: Vec<&String> = ids.iter().filter(|(_, m)| *m).map(|(k, _)| k).collect();
    if !singles.is_empty() && rng.random_bool(0.4) {
        let id = singles[rng.random_range(0..singles.len())].clone();
        let room = *rng::pick(rng, ROOMS);
        let subject = rng::title(rng, 2, 5);
        if let Some(ev) = cal.events.get_mut(&id, sim.next_seq()) {
            ev.item.props.insert("location".into(), location(room));
            ev.item.props.insert("subject".into(), json!(subject));
            ev.item.touch(now);
            report.modified += 1;
        }
    }
    if !masters.is_empty() && rng.random_bool(0.5) {
        let id = masters[rng.random_range(0..masters.len())].clone();
        let cancel = rng.random_bool(0.4);
        let hours = rng.random_range(1..4);
        let pick: f64 = rng.random();
        if let Some(ev) = cal.events.get(&id) {
            let dates: Vec<NaiveDate> = recurrence_of(ev)
                .map(|r| r.dates_until(today + Duration::days(60)))
                .unwrap_or_default()
                .into_iter()
                .filter(|d| !ev.cancelled.contains(d))
                .collect();
            if !dates.is_empty() {
                let d = dates[((dates.len() as f64 * pick) as usize).min(dates.len() - 1)];
                let (st, dur) = series_time(ev);
                if let Some(ev) = cal.events.get_mut(&id, sim.next_seq()) {
                    if cancel {
                        ev.cancelled.insert(d);
                        ev.exceptions.remove(&d);
                        report.deleted += 1;
                    } else {
                        let moved = d.and_time(st.time()) + Duration::hours(hours);
                        let x = ev
                            .exceptions
                            .entry(d)
                            .or_insert_with(|| Item::new(occ_id(&id, d), now, Map::new()));
                        x.props.insert("start".into(), dt_tz(moved));
                        x.props.insert("end".into(), dt_tz(moved + dur));
                        x.touch(now);
                        report.modified += 1;
                    }
                    ev.item.touch(now);
                }
            }
        }
    }
    if !singles.is_empty() && rng.random_bool(0.15) {
        let id = singles[rng.random_range(0..singles.len())].clone();
        if cal.events.remove(&id, sim.next_seq(), "deleted").is_some() {
            report.deleted += 1;
        }
    }
}

// ---------------------------------------------------------------- routes

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(
            "/users/{id}/calendars",
            get(u_list_calendars).post(u_create_calendar),
        )
        .route(
            "/users/{id}/calendars/{cid}",
            get(u_get_calendar)
                .patch(u_patch_calendar)
                .delete(u_delete_calendar),
        )
        .route(
            "/users/{id}/calendars/{cid}/events",
            get(u_list_cal_events).post(u_create_cal_event),
        )
        .route(
            "/users/{id}/calendars/{cid}/events/{eid}",
            get(u_get_cal_event)
                .patch(u_patch_cal_event)
                .delete(u_delete_cal_event),
        )
        .route("/users/{id}/calendars/{cid}/calendarView", get(u_cal_view))
        .route("/users/{id}/calendar", get(u_default_calendar))
        .route(
            "/users/{id}/calendar/events",
            get(u_list_events).post(u_create_event),
        )
        .route("/users/{id}/calendar/calendarView", get(u_view))
        .route(
            "/users/{id}/events",
            get(u_list_events).post(u_create_event),
        )
        .route(
            "/users/{id}/events/{eid}",
            get(u_get_event).patch(u_patch_event).delete(u_delete_event),
        )
        .route("/users/{id}/events/{eid}/instances", get(u_instances))
        .route("/users/{id}/calendarView", get(u_view))
        .route("/users/{id}/calendarView/delta", get(u_view_delta))
        .route("/groups/{id}/calendar", get(g_default_calendar))
        .route(
            "/groups/{id}/calendar/events",
            get(g_list_events).post(g_create_event),
        )
        .route("/groups/{id}/calendar/calendarView", get(g_view))
        .route(
            "/groups/{id}/events",
            get(g_list_events).post(g_create_event),
        )
        .route(
            "/groups/{id}/events/{eid}",
            get(g_get_event).patch(g_patch_event).delete(g_delete_event),
        )
        .route("/groups/{id}/events/{eid}/instances", get(g_instances))
        .route("/groups/{id}/calendarView", get(g_view))
}

fn resolve_calendar(mb: &Mailbox, cid: Option<&str>) -> GraphResult<String> {
    match cid {
        None => Ok(mb.default_calendar.clone()),
        Some(c) if c.eq_ignore_ascii_case("calendar") => Ok(mb.default_calendar.clone()),
        Some(c) => mb
            .calendar(c)
            .map(|x| x.item.id.clone())
            .ok_or_else(GraphError::outlook_not_found),
    }
}

// ---- calendars

fn list_calendars(ctx: &GraphCtx, owner: &Owner) -> Resp {
    let mb = owner.slot.read();
    let items: Vec<Value> = mb.calendars.iter().map(|c| calendar_json(&mb, c)).collect();
    Ok(ok_json(odata::collection(
        ctx,
        &format!("{}/calendars", owner.context),
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

fn get_calendar(ctx: &GraphCtx, owner: &Owner, cid: Option<&str>) -> Resp {
    let mb = owner.slot.read();
    let cid = resolve_calendar(&mb, cid)?;
    let c = mb
        .calendar(&cid)
        .ok_or_else(GraphError::outlook_not_found)?;
    let fragment = if ctx.path.ends_with("/calendar") {
        format!("{}/calendar", owner.context)
    } else {
        format!("{}/calendars", owner.context)
    };
    let v = calendar_json(&mb, c);
    let out = odata::entity(ctx, &fragment, v, None);
    // `/calendar` is a single-valued navigation: no `/$entity` suffix.
    Ok(ok_json(out))
}

const CALENDAR_WRITABLE: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("color", Kind::Str),
    ("hexColor", Kind::Str),
];
const CALENDAR_READ_ONLY: &[&str] = &[
    "id",
    "changeKey",
    "isDefaultCalendar",
    "canEdit",
    "canShare",
    "canViewPrivateItems",
    "isRemovable",
    "isTallyingResponses",
    "owner",
    "allowedOnlineMeetingProviders",
    "defaultOnlineMeetingProvider",
];

fn check_color(props: &mut Map<String, Value>) -> GraphResult<()> {
    if let Some(c) = props.get("color").and_then(Value::as_str) {
        let Some((_, hex)) = CALENDAR_COLORS.iter().find(|(n, _)| *n == c) else {
            return Err(body_error(&format!(
                "The value '{c}' is not a valid calendarColor."
            )));
        };
        if !props.contains_key("hexColor") {
            props.insert("hexColor".into(), json!(hex));
        }
    }
    Ok(())
}

async fn u_list_calendars(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> Resp {
    list_calendars(&ctx, &open_user(&sim, &id)?)
}

async fn u_create_calendar(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let body = parse_body(&body)?;
    let mut props = Map::new();
    props.insert("color".into(), json!("auto"));
    props.insert("hexColor".into(), json!(""));
    apply_props(
        &mut props,
        &body,
        CALENDAR_WRITABLE,
        CALENDAR_READ_ONLY,
        "calendar",
    )?;
    let pre_hex = body.contains_key("hexColor");
    if !pre_hex {
        props.remove("hexColor");
    }
    check_color(&mut props)?;
    props.entry("hexColor").or_insert(json!(""));
    let name = props
        .get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| body_error("The calendar name is required."))?
        .to_string();
    let mut mb = owner.slot.write();
    if mb
        .calendars
        .iter()
        .any(|c| c.item.str("name").eq_ignore_ascii_case(&name))
    {
        return Err(GraphError::conflict(
            "ErrorFolderExists",
            "A folder with the specified name already exists.",
        ));
    }
    let cid = mb.fresh_id(sim.seed(), "calendar");
    let cal = Calendar {
        item: Item::new(cid, sim.now(), props),
        events: DeltaLog::new(),
        tombstones: Default::default(),
    };
    let v = calendar_json(&mb, &cal);
    mb.calendars.push(cal);
    Ok(created_json(odata::entity(
        &ctx,
        &format!("{}/calendars", owner.context),
        v,
        None,
    )))
}

async fn u_get_calendar(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, cid)): Path<(String, String)>,
) -> Resp {
    get_calendar(&ctx, &open_user(&sim, &id)?, Some(&cid))
}

async fn u_patch_calendar(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, cid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let body = parse_body(&body)?;
    let mut mb = owner.slot.write();
    let cid = resolve_calendar(&mb, Some(&cid))?;
    let now = sim.now();
    let mut props = mb
        .calendar(&cid)
        .map(|c| c.item.props.clone())
        .ok_or_else(GraphError::outlook_not_found)?;
    apply_props(
        &mut props,
        &body,
        CALENDAR_WRITABLE,
        CALENDAR_READ_ONLY,
        "calendar",
    )?;
    if body.contains_key("color") && !body.contains_key("hexColor") {
        props.remove("hexColor");
    }
    check_color(&mut props)?;
    props.entry("hexColor").or_insert(json!(""));
    let cal = mb
        .calendar_mut(&cid)
        .ok_or_else(GraphError::outlook_not_found)?;
    cal.item.props = props;
    cal.item.touch(now);
    let mbr: &Mailbox = &mb;
    let v = mbr
        .calendar(&cid)
        .map(|c| calendar_json(mbr, c))
        .unwrap_or(Value::Null);
    Ok(ok_json(odata::entity(
        &ctx,
        &format!("{}/calendars", owner.context),
        v,
        None,
    )))
}

async fn u_delete_calendar(
    State(sim): State<Arc<Sim>>,
    Path((id, cid)): Path<(String, String)>,
) -> Resp {
    let owner = open_user(&sim, &id)?;
    let mut mb = owner.slot.write();
    let cid = resolve_calendar(&mb, Some(&cid))?;
    if cid == mb.default_calendar {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRequest",
            "The default calendar cannot be deleted.",
        ));
    }
    mb.calendars.retain(|c| c.item.id != cid);
    Ok(no_content())
}

async fn u_default_calendar(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> Resp {
    get_calendar(&ctx, &open_user(&sim, &id)?, None)
}

async fn g_default_calendar(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
) -> Resp {
    get_calendar(&ctx, &open_group(&sim, &id)?, None)
}

// ---- events

fn list_events(ctx: &GraphCtx, owner: &Owner, cid: Option<&str>) -> Resp {
    let mb = owner.slot.read();
    let cid = resolve_calendar(&mb, cid)?;
    let cal = mb
        .calendar(&cid)
        .ok_or_else(GraphError::outlook_not_found)?;
    let view = View::new(&mb, ctx);
    let expand = ctx
        .query
        .expand
        .as_deref()
        .is_some_and(|e| e.contains("exceptionOccurrences"));
    let items: Vec<Value> = cal
        .events
        .values()
        .map(|e| {
            let mut v = view.event(e);
            if expand && let Value::Object(m) = &mut v {
                let list: Vec<Value> = e.exceptions.keys().map(|d| view.instance(e, *d)).collect();
                m.insert("exceptionOccurrences".into(), json!(list));
            }
            v
        })
        .collect();
    let fragment = if ctx.path.contains("/calendars/") {
        format!("{}/calendars('{cid}')/events", owner.context)
    } else {
        format!("{}/events", owner.context)
    };
    Ok(ok_json(odata::collection(
        ctx,
        &fragment,
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

/// Counts the meeting messages Exchange would send for a change by the organizer.
fn count_messages(
    sim: &Sim,
    mb: &Mailbox,
    before: Option<&Map<String, Value>>,
    after: Option<&Map<String, Value>>,
) {
    let organizer = after.or(before).is_some_and(|p| is_organizer(mb, p));
    if !organizer {
        return;
    }
    let old = before.map(attendee_addresses).unwrap_or_default();
    let new = after.map(attendee_addresses).unwrap_or_default();
    let me = mb.owner_address.to_ascii_lowercase();
    for a in new.iter().filter(|a| !old.contains(a) && **a != me) {
        let _ = a;
        sim.stats.count("pim:invitationsSent");
    }
    for a in old.iter().filter(|a| !new.contains(a) && **a != me) {
        let _ = a;
        sim.stats.count("pim:cancellationsSent");
    }
    if let (Some(b), Some(a)) = (before, after) {
        let changed = [
            "subject",
            "start",
            "end",
            "location",
            "body",
            "recurrence",
            "isAllDay",
        ]
        .iter()
        .any(|k| b.get(*k) != a.get(*k));
        if changed {
            for x in new.iter().filter(|x| old.contains(x) && **x != me) {
                let _ = x;
                sim.stats.count("pim:updatesSent");
            }
        }
    }
}

fn create_event(sim: &Sim, ctx: &GraphCtx, owner: &Owner, cid: Option<&str>, body: &[u8]) -> Resp {
    let body = parse_body(body)?;
    let mut mb = owner.slot.write();
    let cid = resolve_calendar(&mb, cid)?;
    let mut props = event_defaults(&mb.owner_name, &mb.owner_address);
    apply_props(&mut props, &body, EVENT_PROPS, EVENT_READ_ONLY, "event")?;
    for req in ["start", "end"] {
        if props.get(req).is_none_or(Value::is_null) {
            return Err(GraphError::new(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidRequest",
                format!("The event's {req} time is required."),
            ));
        }
    }
    normalize(&mut props, &body)?;
    if props.get("organizer").is_none_or(Value::is_null) {
        props.insert(
            "organizer".into(),
            json!({"emailAddress": {"name": mb.owner_name, "address": mb.owner_address}}),
        );
    }
    let id = mb.fresh_id(sim.seed(), "event");
    let ev = Event {
        item: Item::new(id.clone(), sim.now(), props),
        exceptions: Default::default(),
        cancelled: Default::default(),
    };
    count_messages(sim, &mb, None, Some(&ev.item.props));
    let v = View::new(&mb, ctx).event(&ev);
    let cal = mb
        .calendar_mut(&cid)
        .ok_or_else(GraphError::outlook_not_found)?;
    cal.events.upsert(id, ev, sim.next_seq());
    Ok(created_json(odata::entity(
        ctx,
        &format!("{}/events", owner.context),
        v,
        None,
    )))
}

/// Where an event id points: calendar, series master (or single) and occurrence date.
fn locate(
    mb: &Mailbox,
    cid: Option<&str>,
    eid: &str,
) -> GraphResult<(String, String, Option<NaiveDate>)> {
    let cals: Vec<&Calendar> = match cid {
        Some(c) => {
            let c = resolve_calendar(mb, Some(c))?;
            mb.calendar(&c).into_iter().collect()
        }
        None => mb.calendars.iter().collect(),
    };
    if let Some((master, date)) = parse_occ(eid) {
        for c in &cals {
            if let Some(ev) = c.events.get(&master) {
                let valid = !ev.cancelled.contains(&date)
                    && (ev.exceptions.contains_key(&date) || is_series_date(ev, date));
                if valid {
                    return Ok((c.item.id.clone(), master, Some(date)));
                }
                return Err(GraphError::outlook_not_found());
            }
        }
        return Err(GraphError::outlook_not_found());
    }
    for c in &cals {
        if c.events.contains(eid) {
            return Ok((c.item.id.clone(), eid.to_string(), None));
        }
    }
    Err(GraphError::outlook_not_found())
}

fn get_event(ctx: &GraphCtx, owner: &Owner, cid: Option<&str>, eid: &str) -> Resp {
    let mb = owner.slot.read();
    let (cal, master, date) = locate(&mb, cid, eid)?;
    let ev = mb
        .calendar(&cal)
        .and_then(|c| c.events.get(&master))
        .ok_or_else(GraphError::outlook_not_found)?;
    let view = View::new(&mb, ctx);
    let mut v = match date {
        Some(d) => view.instance(ev, d),
        None => view.event(ev),
    };
    if date.is_none()
        && ctx
            .query
            .expand
            .as_deref()
            .is_some_and(|e| e.contains("exceptionOccurrences"))
    {
        let list: Vec<Value> = ev
            .exceptions
            .keys()
            .map(|d| view.instance(ev, *d))
            .collect();
        if let Value::Object(m) = &mut v {
            m.insert("exceptionOccurrences".into(), json!(list));
        }
    }
    Ok(ok_json(odata::entity(
        ctx,
        &format!("{}/events", owner.context),
        v,
        None,
    )))
}

fn patch_event(
    sim: &Sim,
    ctx: &GraphCtx,
    owner: &Owner,
    cid: Option<&str>,
    eid: &str,
    body: &[u8],
) -> Resp {
    let body = parse_body(body)?;
    let mut mb = owner.slot.write();
    let (cal_id, master, date) = locate(&mb, cid, eid)?;
    let now = sim.now();
    let ev = mb
        .calendar(&cal_id)
        .and_then(|c| c.events.get(&master))
        .cloned()
        .ok_or_else(GraphError::outlook_not_found)?;
    let mut updated = ev.clone();
    let before_full;
    let after_full;
    match date {
        None => {
            let mut props = ev.item.props.clone();
            apply_props(&mut props, &body, EVENT_PROPS, EVENT_READ_ONLY, "event")?;
            normalize(&mut props, &body)?;
            let series_changed = props.get("recurrence") != ev.item.props.get("recurrence")
                || (recurrence_of(&ev).is_some()
                    && (props.get("start") != ev.item.props.get("start")));
            if series_changed {
                // A changed pattern drops the series' exceptions, as Outlook does.
                updated.exceptions.clear();
                updated.cancelled.clear();
            }
            before_full = ev.item.props.clone();
            updated.item.props = props;
            updated.item.touch(now);
            after_full = updated.item.props.clone();
        }
        Some(d) => {
            if body.contains_key("recurrence") {
                return Err(GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "ErrorInvalidRequest",
                    "An occurrence of a series cannot have its own recurrence.",
                ));
            }
            let (st, dur) = series_time(&ev);
            let os = d.and_time(st.time());
            let mut base = ev.item.props.clone();
            base.insert("start".into(), dt_tz(os));
            base.insert("end".into(), dt_tz(os + dur));
            let mut x = ev
                .exceptions
                .get(&d)
                .cloned()
                .unwrap_or_else(|| Item::new(occ_id(&master, d), now, Map::new()));
            let mut full = base.clone();
            for (k, v) in &x.props {
                full.insert(k.clone(), v.clone());
            }
            before_full = full.clone();
            apply_props(&mut full, &body, EVENT_PROPS, EVENT_READ_ONLY, "event")?;
            normalize(&mut full, &body)?;
            // Keep only what differs from the series.
            x.props = full
                .iter()
                .filter(|(k, v)| base.get(*k) != Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            x.touch(now);
            after_full = full;
            updated.exceptions.insert(d, x);
            updated.item.touch(now);
        }
    }
    count_messages(sim, &mb, Some(&before_full), Some(&after_full));
    let seq = sim.next_seq();
    let view_ev = updated.clone();
    let cal = mb
        .calendar_mut(&cal_id)
        .ok_or_else(GraphError::outlook_not_found)?;
    if let Some(slot) = cal.events.get_mut(&master, seq) {
        *slot = updated;
    }
    let view = View::new(&mb, ctx);
    let v = match date {
        Some(d) => view.instance(&view_ev, d),
        None => view.event(&view_ev),
    };
    Ok(ok_json(odata::entity(
        ctx,
        &format!("{}/events", owner.context),
        v,
        None,
    )))
}

fn delete_event(sim: &Sim, owner: &Owner, cid: Option<&str>, eid: &str) -> Resp {
    let mut mb = owner.slot.write();
    let (cal_id, master, date) = locate(&mb, cid, eid)?;
    let props = mb
        .calendar(&cal_id)
        .and_then(|c| c.events.get(&master))
        .map(|e| e.item.props.clone())
        .ok_or_else(GraphError::outlook_not_found)?;
    count_messages(sim, &mb, Some(&props), None);
    let seq = sim.next_seq();
    let cal = mb
        .calendar_mut(&cal_id)
        .ok_or_else(GraphError::outlook_not_found)?;
    match date {
        Some(d) => {
            if let Some(ev) = cal.events.get_mut(&master, seq) {
                ev.cancelled.insert(d);
                ev.exceptions.remove(&d);
                ev.item.touch(sim.now());
            }
        }
        None => {
            if let Some(ev) = cal.events.remove(&master, seq, "deleted")
                && recurrence_of(&ev).is_some()
            {
                cal.tombstones.insert(master, ev);
            }
        }
    }
    Ok(no_content())
}

fn window(ctx: &GraphCtx) -> GraphResult<(NaiveDateTime, NaiveDateTime)> {
    let missing = || {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    };
    let s = ctx.query.param("startDateTime").ok_or_else(missing)?;
    let e = ctx.query.param("endDateTime").ok_or_else(missing)?;
    let bad = |v: &str| {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidParameter",
            format!("The parameter '{v}' is not a valid date-time."),
        )
    };
    let s = parse_naive(s).ok_or_else(|| bad(s))?;
    let e = parse_naive(e).ok_or_else(|| bad(e))?;
    Ok((s, e))
}

fn view_items(
    view: &View<'_>,
    cal: &Calendar,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Vec<Value> {
    let mut out: Vec<(NaiveDateTime, Value)> = Vec::new();
    for ev in cal.events.values() {
        if recurrence_of(ev).is_some() {
            for d in instances_in(ev, from, to) {
                let v = view.instance(ev, d);
                let s = stored_start(&v);
                out.push((s, v));
            }
        } else {
            let s = stored_dt(&ev.item.props, "start").unwrap_or_default();
            let e = stored_dt(&ev.item.props, "end").unwrap_or(s);
            if s < to && (e > from || (e == s && s >= from)) {
                out.push((s, view.event(ev)));
            }
        }
    }
    out.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1["id"].as_str().cmp(&b.1["id"].as_str()))
    });
    out.into_iter().map(|(_, v)| v).collect()
}

fn stored_start(v: &Value) -> NaiveDateTime {
    v.get("start")
        .and_then(|s| s.get("dateTime"))
        .and_then(Value::as_str)
        .and_then(parse_naive)
        .unwrap_or_default()
}

fn calendar_view(ctx: &GraphCtx, owner: &Owner, cid: Option<&str>) -> Resp {
    let (from, to) = window(ctx)?;
    let mb = owner.slot.read();
    let cid = resolve_calendar(&mb, cid)?;
    let cal = mb
        .calendar(&cid)
        .ok_or_else(GraphError::outlook_not_found)?;
    let view = View::new(&mb, ctx);
    let items = view_items(&view, cal, from, to);
    Ok(ok_json(odata::collection(
        ctx,
        &format!("{}/calendarView", owner.context),
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

fn instances(ctx: &GraphCtx, owner: &Owner, eid: &str) -> Resp {
    let (from, to) = window(ctx)?;
    let mb = owner.slot.read();
    let (cal, master, date) = locate(&mb, None, eid)?;
    let ev = mb
        .calendar(&cal)
        .and_then(|c| c.events.get(&master))
        .ok_or_else(GraphError::outlook_not_found)?;
    let view = View::new(&mb, ctx);
    let items: Vec<Value> = if date.is_some() {
        Vec::new()
    } else {
        instances_in(ev, from, to)
            .into_iter()
            .map(|d| view.instance(ev, d))
            .collect()
    };
    let mut items = items;
    items.sort_by_key(stored_start);
    Ok(ok_json(odata::collection(
        ctx,
        &format!("{}/events('{master}')/instances", owner.context),
        items,
        PageLimits::OUTLOOK,
        None,
    )?))
}

// ---- calendarView delta (own tokens: the window travels inside them)

fn cv_token(
    scope: &str,
    epoch: u64,
    since: Option<u64>,
    upto: u64,
    after: &str,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> String {
    let h = blake3::hash(scope.as_bytes()).to_hex();
    // Keyset paging: the token remembers the last id returned, not an offset,
    // so an event changing while a client pages cannot hide another one.
    let after = hex::encode(after.as_bytes());
    odata::encode_token(&format!(
        "cv2|{}|{epoch}|{}|{upto}|x{after}|{}|{}",
        &h[..16],
        since.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        from.and_utc().timestamp(),
        to.and_utc().timestamp()
    ))
}

type CvCursor = (Option<u64>, u64, String, NaiveDateTime, NaiveDateTime);

fn cv_decode(scope: &str, epoch: u64, token: &str) -> Option<CvCursor> {
    let text = odata::decode_token(token)?;
    let p: Vec<&str> = text.split('|').collect();
    if p.len() != 8 || p[0] != "cv2" {
        return None;
    }
    let h = blake3::hash(scope.as_bytes()).to_hex();
    if p[1] != &h[..16] || p[2].parse::<u64>().ok()? != epoch {
        return None;
    }
    let since = if p[3] == "-" {
        None
    } else {
        Some(p[3].parse().ok()?)
    };
    let from = DateTime::from_timestamp(p[6].parse().ok()?, 0)?.naive_utc();
    let to = DateTime::from_timestamp(p[7].parse().ok()?, 0)?.naive_utc();
    if ![from, to].iter().all(|t| (1..=9000).contains(&t.year())) {
        return None;
    }
    let after = String::from_utf8(hex::decode(p[5].strip_prefix('x')?).ok()?).ok()?;
    Some((since, p[4].parse().ok()?, after, from, to))
}

fn view_delta(sim: &Sim, ctx: &GraphCtx, owner: &Owner) -> Resp {
    let mb = owner.slot.read();
    let cal = mb
        .calendar(&mb.default_calendar)
        .ok_or_else(GraphError::outlook_not_found)?;
    let scope = format!("pim:calview:{}:{}", mb.owner_id, cal.item.id);
    let epoch = sim.delta_epoch();
    let now = sim.current_seq();
    let token = ctx
        .query
        .skiptoken
        .as_deref()
        .or(ctx.query.deltatoken.as_deref());
    let (since, upto, after, from, to) = match token {
        None => {
            let (f, t) = window(ctx)?;
            (None, now, String::new(), f, t)
        }
        Some(tok) => {
            let (since, upto, after, f, t) =
                cv_decode(&scope, epoch, tok).ok_or_else(GraphError::sync_state_not_found)?;
            if upto == 0 {
                // A delta link: the next round starts now.
                let s = since.ok_or_else(GraphError::sync_state_not_found)?;
                if s > now {
                    return Err(GraphError::sync_state_not_found());
                }
                (since, now, String::new(), f, t)
            } else {
                (since, upto, after, f, t)
            }
        }
    };
    let page = cal.events.page(
        &scope,
        epoch,
        Cursor::Page {
            since,
            upto,
            after: None,
        },
        now,
        usize::MAX,
    );
    let view = View::new(&mb, ctx);
    let view = View {
        with_cancelled: false,
        ..view
    };
    let mut all: Vec<Value> = Vec::new();
    for (id, ev) in &page.changed {
        if recurrence_of(ev).is_some() {
            let mut inst = instances_in(ev, from, to);
            inst.sort();
            for d in inst {
                all.push(view.instance(ev, d));
            }
            if since.is_some() {
                for d in &ev.cancelled {
                    let s = d.and_time(series_time(ev).0.time());
                    if s < to && s + Duration::days(1) > from {
                        all.push(removed_json("event", &occ_id(id, *d), "deleted"));
                    }
                }
            }
        } else {
            let s = stored_dt(&ev.item.props, "start").unwrap_or_default();
            let e = stored_dt(&ev.item.props, "end").unwrap_or(s);
            if s < to && (e > from || (e == s && s >= from)) {
                all.push(view.event(ev));
            } else if since.is_some() {
                all.push(removed_json("event", id, "deleted"));
            }
        }
    }
    for r in &page.removed {
        match cal.tombstones.get(&r.id) {
            Some(ev) => {
                for d in instances_in(ev, from, to) {
                    all.push(removed_json("event", &occ_id(&r.id, d), "deleted"));
                }
            }
            None => all.push(removed_json("event", &r.id, "deleted")),
        }
    }
    let size = delta_page_size(ctx).max(1);
    let id_of = |v: &Value| v["id"].as_str().unwrap_or_default().to_string();
    all.sort_by_key(|v| id_of(v));
    let start = if after.is_empty() {
        0
    } else {
        all.partition_point(|v| id_of(v) <= after)
    };
    let end = start.saturating_add(size).min(all.len());
    let value: Vec<Value> = all
        .get(start..end)
        .map(<[Value]>::to_vec)
        .unwrap_or_default();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#Collection(event)", ctx.base)),
    );
    let drop = ["$skiptoken", "$deltatoken", "startDateTime", "endDateTime"];
    if end < all.len() {
        let last = value.last().map(id_of).unwrap_or_default();
        let t = cv_token(&scope, epoch, since, upto, &last, from, to);
        body.insert(
            "@odata.nextLink".into(),
            json!(ctx.link_with(&ctx.path, &drop, &[("$skiptoken", t)])),
        );
    } else {
        let t = cv_token(&scope, epoch, Some(upto), 0, "", from, to);
        body.insert(
            "@odata.deltaLink".into(),
            json!(ctx.link_with(&ctx.path, &drop, &[("$deltatoken", t)])),
        );
    }
    body.insert("value".into(), Value::Array(value));
    Ok(ok_json(Value::Object(body)))
}

// ---- thin handlers

async fn u_list_events(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    list_events(&ctx, &open_user(&sim, &id)?, None)
}
async fn u_list_cal_events(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, cid)): Path<(String, String)>,
) -> Resp {
    list_events(&ctx, &open_user(&sim, &id)?, Some(&cid))
}
async fn g_list_events(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    list_events(&ctx, &open_group(&sim, &id)?, None)
}
async fn u_create_event(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Resp {
    create_event(&sim, &ctx, &open_user(&sim, &id)?, None, &body)
}
async fn u_create_cal_event(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, cid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    create_event(&sim, &ctx, &open_user(&sim, &id)?, Some(&cid), &body)
}
async fn g_create_event(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path(id): Path<String>,
    body: Bytes,
) -> Resp {
    create_event(&sim, &ctx, &open_group(&sim, &id)?, None, &body)
}
async fn u_get_event(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, eid)): Path<(String, String)>,
) -> Resp {
    get_event(&ctx, &open_user(&sim, &id)?, None, &eid)
}
async fn u_get_cal_event(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, cid, eid)): Path<(String, String, String)>,
) -> Resp {
    get_event(&ctx, &open_user(&sim, &id)?, Some(&cid), &eid)
}
async fn g_get_event(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, eid)): Path<(String, String)>,
) -> Resp {
    get_event(&ctx, &open_group(&sim, &id)?, None, &eid)
}
async fn u_patch_event(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, eid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    patch_event(&sim, &ctx, &open_user(&sim, &id)?, None, &eid, &body)
}
async fn u_patch_cal_event(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, cid, eid)): Path<(String, String, String)>,
    body: Bytes,
) -> Resp {
    patch_event(&sim, &ctx, &open_user(&sim, &id)?, Some(&cid), &eid, &body)
}
async fn g_patch_event(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, eid)): Path<(String, String)>,
    body: Bytes,
) -> Resp {
    patch_event(&sim, &ctx, &open_group(&sim, &id)?, None, &eid, &body)
}
async fn u_delete_event(
    State(sim): State<Arc<Sim>>,
    Path((id, eid)): Path<(String, String)>,
) -> Resp {
    delete_event(&sim, &open_user(&sim, &id)?, None, &eid)
}
async fn u_delete_cal_event(
    State(sim): State<Arc<Sim>>,
    Path((id, cid, eid)): Path<(String, String, String)>,
) -> Resp {
    delete_event(&sim, &open_user(&sim, &id)?, Some(&cid), &eid)
}
async fn g_delete_event(
    State(sim): State<Arc<Sim>>,
    Path((id, eid)): Path<(String, String)>,
) -> Resp {
    delete_event(&sim, &open_group(&sim, &id)?, None, &eid)
}
async fn u_instances(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, eid)): Path<(String, String)>,
) -> Resp {
    instances(&ctx, &open_user(&sim, &id)?, &eid)
}
async fn g_instances(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, eid)): Path<(String, String)>,
) -> Resp {
    instances(&ctx, &open_group(&sim, &id)?, &eid)
}
async fn u_view(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    calendar_view(&ctx, &open_user(&sim, &id)?, None)
}
async fn u_cal_view(
    State(sim): State<Arc<Sim>>,
    ctx: GraphCtx,
    Path((id, cid)): Path<(String, String)>,
) -> Resp {
    calendar_view(&ctx, &open_user(&sim, &id)?, Some(&cid))
}
async fn g_view(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    calendar_view(&ctx, &open_group(&sim, &id)?, None)
}
async fn u_view_delta(State(sim): State<Arc<Sim>>, ctx: GraphCtx, Path(id): Path<String>) -> Resp {
    view_delta(&sim, &ctx, &open_user(&sim, &id)?)
}
