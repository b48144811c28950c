//! iCalendar (RFC 5545) from Microsoft Graph event JSON, with a VTIMEZONE
//! for every non-UTC zone used.
//!
//! Series masters carry RRULE; cancelled occurrences become EXDATE on the
//! master; changed occurrences (Graph `type: "exception"`) become VEVENTs
//! with the master's UID and a RECURRENCE-ID.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use icalendar::{Calendar, Component, Event, EventLike, Property};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum IcsError {
    #[error("event {id}: missing or invalid field {field}")]
    Field { id: String, field: &'static str },
    #[error("event {id}: unknown time zone {zone:?}")]
    UnknownTimeZone { id: String, zone: String },
    #[error("event {id}: unsupported recurrence pattern {pattern:?}")]
    Recurrence { id: String, pattern: String },
    #[error("time zone definition could not be built: {0}")]
    TimeZone(String),
}

/// Windows zone names Graph returns, mapped to IANA ids (CLDR windowsZones, territory 001).
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("UTC", "UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("India Standard Time", "Asia/Kolkata"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("Mountain Standard Time", "America/Denver"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Central Standard Time", "America/Chicago"),
    ("Eastern Standard Time", "America/New_York"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
];

fn zone(id: &str, name: &str) -> Result<Tz, IcsError> {
    let iana = WINDOWS_ZONES
        .iter()
        .find(|(w, _)| *w == name)
        .map(|(_, i)| *i)
        .unwrap_or(name);
    iana.parse::<Tz>().map_err(|_| IcsError::UnknownTimeZone {
        id: id.to_string(),
        zone: name.to_string(),
    })
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn parse_local(id: &str, s: &str, field: &'static str) -> Result<NaiveDateTime, IcsError> {
    let trimmed = s.trim_end_matches('Z');
    NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| IcsError::Field {
        id: id.to_string(),
        field,
    })
}

/// A Graph dateTimeTimeZone resolved to its zone and local time.
struct When {
    tz: Tz,
    local: NaiveDateTime,
}

fn when(event: &Value, id: &str, key: &'static str) -> Result<When, IcsError> {
    let dt = text(event, &[key, "dateTime"]).ok_or(IcsError::Field {
        id: id.to_string(),
        field: key,
    })?;
    let tz_name = text(event, &[key, "timeZone"]).unwrap_or("UTC");
    Ok(When {
        tz: zone(id, tz_name)?,
        local: parse_local(id, dt, key)?,
    })
}

fn format_local(t: NaiveDateTime) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

fn format_utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn date_property(key: &str, w: &When, all_day: bool) -> Property {
    if all_day {
        let mut p = Property::new(key, w.local.format("%Y%m%d").to_string());
        p.add_parameter("VALUE", "DATE");
        p
    } else if w.tz == Tz::UTC {
        Property::new(key, format!("{}Z", format_local(w.local)))
    } else {
        let mut p = Property::new(key, format_local(w.local));
        p.add_parameter("TZID", w.tz.name());
        p
    }
}

fn to_utc(w: &When) -> DateTime<Utc> {
    w.tz.from_local_datetime(&w.local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| w.local.and_utc())
}

/// The instant a Graph `dateTimeTimeZone` field (`start`, `end`,
/// `dueDateTime`…) of `item` names, in UTC; Windows zone names are resolved
/// as for iCalendar.
pub fn graph_time_utc(item: &Value, key: &'static str) -> Result<DateTime<Utc>, IcsError> {
    let id = text(item, &["id"]).unwrap_or("?");
    Ok(to_utc(&when(item, id, key)?))
}

/// The calendar date of `instant` in the zone of `event`'s start (the date
/// Outlook and Graph give an occurrence of a series).
pub fn local_date(event: &Value, instant: DateTime<Utc>) -> Result<NaiveDate, IcsError> {
    let id = text(event, &["id"]).unwrap_or("?");
    let start = when(event, id, "start")?;
    Ok(instant.with_timezone(&start.tz).date_naive())
}

const DAY_CODES: [(&str, &str); 7] = [
    ("sunday", "SU"),
    ("monday", "MO"),
    ("tuesday", "TU"),
    ("wednesday", "WE"),
    ("thursday", "TH"),
    ("friday", "FR"),
    ("saturday", "SA"),
];

fn rrule(id: &str, recurrence: &Value, start: &When) -> Result<String, IcsError> {
    let pattern = recurrence.get("pattern").ok_or(IcsError::Field {
        id: id.to_string(),
        field: "recurrence.pattern",
    })?;
    let kind = text(pattern, &["type"]).unwrap_or("");
    let interval = pattern
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    let days: Vec<&str> = pattern
        .get("daysOfWeek")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|d| {
                    DAY_CODES
                        .iter()
                        .find(|c| c.0 == d.to_lowercase())
                        .map(|c| c.1)
                })
                .collect()
        })
        .unwrap_or_default();
    let index = match text(pattern, &["index"]).unwrap_or("first") {
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "last" => -1,
        _ => 1,
    };
    let by_days = |n: Option<i32>| {
        days.iter()
            .map(|d| {
                n.map(|n| format!("{n}{d}"))
                    .unwrap_or_else(|| d.to_string())
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let day_of_month = pattern
        .get("dayOfMonth")
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(start.local.day()));
    let month = pattern
        .get("month")
        .and_then(Value::as_u64)
        .unwrap_or(u64::from(start.local.month()));
    let mut rule = match kind {
        "daily" => format!("FREQ=DAILY;INTERVAL={interval}"),
        "weekly" => format!("FREQ=WEEKLY;INTERVAL={interval};BYDAY={}", by_days(None)),
        "absoluteMonthly" => format!("FREQ=MONTHLY;INTERVAL={interval};BYMONTHDAY={day_of_month}"),
        "relativeMonthly" => format!(
            "FREQ=MONTHLY;INTERVAL={interval};BYDAY={}",
            by_days(Some(index))
        ),
        "absoluteYearly" => {
            format!("FREQ=YEARLY;INTERVAL={interval};BYMONTH={month};BYMONTHDAY={day_of_month}")
        }
        "relativeYearly" => format!(
            "FREQ=YEARLY;INTERVAL={interval};BYMONTH={month};BYDAY={}",
            by_days(Some(index))
        ),
        other => {
            return Err(IcsError::Recurrence {
                id: id.to_string(),
                pattern: other.to_string(),
            });
        }
    };
    if kind.contains("eekly") && days.is_empty() || kind.starts_with("relative") && days.is_empty()
    {
        return Err(IcsError::Recurrence {
            id: id.to_string(),
            pattern: format!("{kind} without daysOfWeek"),
        });
    }
    if let Some(first) = text(pattern, &["firstDayOfWeek"])
        .and_then(|d| DAY_CODES.iter().find(|c| c.0 == d.to_lowercase()))
    {
        rule.push_str(&format!(";WKST={}", first.1));
    }
    let range = recurrence.get("range");
    match range.and_then(|r| text(r, &["type"])) {
        Some("numbered") => {
            let n = range
                .and_then(|r| r.get("numberOfOccurrences"))
                .and_then(Value::as_u64)
                .filter(|n| *n > 0);
            let n = n.ok_or(IcsError::Field {
                id: id.to_string(),
                field: "recurrence.range.numberOfOccurrences",
            })?;
            rule.push_str(&format!(";COUNT={n}"));
        }
        Some("endDate") => {
            let end = range
                .and_then(|r| text(r, &["endDate"]))
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
            let end = end.ok_or(IcsError::Field {
                id: id.to_string(),
                field: "recurrence.range.endDate",
            })?;
            // UNTIL is inclusive and in UTC when DTSTART has a zone: the end of that local day.
            let last = When {
                tz: start.tz,
                local: end.and_time(start.local.time()),
            };
            rule.push_str(&format!(";UNTIL={}", format_utc(to_utc(&last))));
        }
        _ => {}
    }
    Ok(rule)
}

/// Transitions of `tz` during `year`: (UTC instant, offset before, offset after), in seconds.
fn transitions(tz: Tz, year: i32) -> Vec<(NaiveDateTime, i32, i32)> {
    let offset_at = |t: NaiveDateTime| tz.offset_from_utc_datetime(&t).fix().local_minus_utc();
    let mut out = Vec::new();
    let Some(mut day) = NaiveDate::from_ymd_opt(year, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0))
    else {
        return out;
    };
    let mut prev = offset_at(day);
    while day.year() == year {
        let next = day + Duration::days(1);
        let off = offset_at(next);
        if off != prev {
            // Narrow down to the minute.
            let (mut lo, mut hi) = (0i64, 1440i64);
            while hi - lo > 1 {
                let mid = (lo + hi) / 2;
                if offset_at(day + Duration::minutes(mid)) == prev {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            out.push((day + Duration::minutes(hi), prev, off));
            prev = off;
        }
        day = next;
    }
    out
}

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.abs();
    format!("{sign}{:02}{:02}", s / 3600, (s % 3600) / 60)
}

fn vtimezone(tz: Tz, year: i32) -> String {
    let mut out = format!("BEGIN:VTIMEZONE\r\nTZID:{}\r\n", tz.name());
    let changes = transitions(tz, year);
    if changes.is_empty() {
        let off = tz
            .offset_from_utc_datetime(
                &NaiveDate::from_ymd_opt(year, 1, 1)
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .unwrap_or_default(),
            )
            .fix()
            .local_minus_utc();
        out.push_str(&format!(
            "BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:{0}\r\nTZOFFSETTO:{0}\r\nEND:STANDARD\r\n",
            offset_text(off)
        ));
    }
    for (at_utc, from, to) in changes {
        let local = at_utc + Duration::seconds(i64::from(from));
        let kind = if to > from { "DAYLIGHT" } else { "STANDARD" };
        let dim = NaiveDate::from_ymd_opt(local.year(), local.month() % 12 + 1, 1)
            .map(|d| {
                if local.month() == 12 {
                    31
                } else {
                    d.pred_opt().map(|p| p.day()).unwrap_or(28)
                }
            })
            .unwrap_or(28);
        let nth = if local.day() + 7 > dim {
            -1
        } else {
            ((local.day() - 1) / 7 + 1) as i32
        };
        let weekday = DAY_CODES[local.weekday().num_days_from_sunday() as usize].1;
        out.push_str(&format!(
            "BEGIN:{kind}\r\nDTSTART:{}\r\nRRULE:FREQ=YEARLY;BYMONTH={};BYDAY={nth}{weekday}\r\nTZOFFSETFROM:{}\r\nTZOFFSETTO:{}\r\nEND:{kind}\r\n",
            format_local(local),
            local.month(),
            offset_text(from),
            offset_text(to)
        ));
    }
    out.push_str("END:VTIMEZONE\r\n");
    out
}

fn add_people(event: &mut Event, graph: &Value) {
    if let Some(address) = text(graph, &["organizer", "emailAddress", "address"]) {
        let mut p = Property::new("ORGANIZER", format!("mailto:{address}"));
        if let Some(name) = text(graph, &["organizer", "emailAddress", "name"]) {
            p.add_parameter("CN", name);
        }
        event.append_property(p);
    }
    for attendee in graph
        .get("attendees")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(address) = text(attendee, &["emailAddress", "address"]) else {
            continue;
        };
        let mut p = Property::new("ATTENDEE", format!("mailto:{address}"));
        if let Some(name) = text(attendee, &["emailAddress", "name"]) {
            p.add_parameter("CN", name);
        }
        let role = match text(attendee, &["type"]) {
            Some("optional") => "OPT-PARTICIPANT",
            Some("resource") => "NON-PARTICIPANT",
            _ => "REQ-PARTICIPANT",
        };
        p.add_parameter("ROLE", role);
        let partstat = match text(attendee, &["status", "response"]) {
            Some("accepted") | Some("organizer") => "ACCEPTED",
            Some("declined") => "DECLINED",
            Some("tentativelyAccepted") => "TENTATIVE",
            _ => "NEEDS-ACTION",
        };
        p.add_parameter("PARTSTAT", partstat);
        event.append_multi_property(p);
    }
}

fn base_event(
    graph: &Value,
    id: &str,
    uid: &str,
    stamp: DateTime<Utc>,
) -> Result<(Event, When), IcsError> {
    let all_day = graph
        .get("isAllDay")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let start = when(graph, id, "start")?;
    let end = when(graph, id, "end")?;
    let mut event = Event::new();
    event.uid(uid).timestamp(stamp);
    event.append_property(date_property("DTSTART", &start, all_day));
    event.append_property(date_property("DTEND", &end, all_day));
    if let Some(subject) = text(graph, &["subject"]) {
        event.summary(subject);
    }
    if let Some(body) = text(graph, &["body", "content"]) {
        event.description(body);
    }
    if let Some(location) = text(graph, &["location", "displayName"]) {
        event.location(location);
    }
    add_people(&mut event, graph);
    Ok((event, start))
}

/// Builds one calendar from Graph events: single instances, series masters,
/// their exceptions and their cancelled occurrences (`isCancelled: true`,
/// `type: "occurrence"` or `"exception"`).
pub fn events_to_ics(events: &[Value], stamp: DateTime<Utc>) -> Result<String, IcsError> {
    let id_of = |e: &Value| text(e, &["id"]).unwrap_or("?").to_string();
    let masters: BTreeMap<String, &Value> = events
        .iter()
        .filter(|e| text(e, &["type"]) == Some("seriesMaster"))
        .map(|e| (id_of(e), e))
        .collect();
    let uid_of = |e: &Value| {
        text(e, &["iCalUId"])
            .map(str::to_string)
            .unwrap_or_else(|| id_of(e))
    };

    let mut zones: BTreeMap<String, (Tz, i32)> = BTreeMap::new();
    let mut vevents = Vec::new();
    for graph in events {
        let id = id_of(graph);
        let kind = text(graph, &["type"]).unwrap_or("singleInstance");
        let cancelled = graph
            .get("isCancelled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if matches!(kind, "occurrence" | "exception") {
            let master_id = text(graph, &["seriesMasterId"]).unwrap_or_default();
            let Some(master) = masters.get(master_id) else {
                return Err(IcsError::Field {
                    id,
                    field: "seriesMasterId",
                });
            };
            if !cancelled && kind == "occurrence" {
                continue; // generated by the RRULE
            }
            let original = text(graph, &["originalStart"])
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.with_timezone(&Utc))
                .ok_or(IcsError::Field {
                    id: id.clone(),
                    field: "originalStart",
                })?;
            if cancelled {
                continue; // becomes an EXDATE of its master, below
            }
            let (mut event, start) = base_event(graph, &id, &uid_of(master), stamp)?;
            zones
                .entry(start.tz.name().to_string())
                .or_insert((start.tz, start.local.year()));
            let master_start = when(master, &id, "start")?;
            let original_local = original.with_timezone(&master_start.tz).naive_local();
            event.append_property(date_property(
                "RECURRENCE-ID",
                &When {
                    tz: master_start.tz,
                    local: original_local,
                },
                false,
            ));
            vevents.push(event);
            continue;
        }
        if cancelled {
            continue; // a cancelled single meeting is not exported
        }
        let (mut event, start) = base_event(graph, &id, &uid_of(graph), stamp)?;
        let end = when(graph, &id, "end")?;
        for w in [&start, &end] {
            let year = w.local.year();
            zones
                .entry(w.tz.name().to_string())
                .and_modify(|z| z.1 = z.1.min(year))
                .or_insert((w.tz, year));
        }
        if kind == "seriesMaster" {
            let recurrence = graph.get("recurrence").ok_or(IcsError::Field {
                id: id.clone(),
                field: "recurrence",
            })?;
            event.add_property("RRULE", rrule(&id, recurrence, &start)?);
            let mut exdates: Vec<NaiveDateTime> = events
                .iter()
                .filter(|e| {
                    text(e, &["seriesMasterId"]) == Some(id.as_str())
                        && e.get("isCancelled").and_then(Value::as_bool) == Some(true)
                })
                .filter_map(|e| {
                    text(e, &["originalStart"]).and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                })
                .map(|t| t.with_timezone(&start.tz).naive_local())
                .collect();
            exdates.sort();
            for ex in exdates {
                event.append_multi_property(date_property(
                    "EXDATE",
                    &When {
                        tz: start.tz,
                        local: ex,
                    },
                    false,
                ));
            }
        }
        vevents.push(event);
    }

    let mut timezones = String::new();
    for (_, (tz, year)) in zones.iter().filter(|(_, (tz, _))| *tz != Tz::UTC) {
        timezones.push_str(&vtimezone(*tz, *year));
    }
    let mut calendar: Calendar = if timezones.is_empty() {
        Calendar::new()
    } else {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Lifeboat//Export//EN\r\n{timezones}END:VCALENDAR\r\n")
            .parse()
            .map_err(IcsError::TimeZone)?
    };
    calendar.append_property(Property::new("PRODID", "-//Lifeboat//Export//EN"));
    for event in vevents {
        calendar.push(event);
    }
    Ok(calendar.done().to_string())
}
