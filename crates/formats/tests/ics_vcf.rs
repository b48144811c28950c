//! iCalendar and vCard output parsed back with the independent `ical` crate.

use std::io::BufReader;

use chrono::{TimeZone, Utc};
use formats::ics::{IcsError, events_to_ics};
use formats::vcf::{VcfError, contact_to_vcard, contacts_to_vcf};
use ical::property::Property;
use serde_json::json;

fn prop<'a>(props: &'a [Property], name: &str) -> Vec<&'a Property> {
    props.iter().filter(|p| p.name == name).collect()
}

fn value(props: &[Property], name: &str) -> Option<String> {
    prop(props, name).first().and_then(|p| p.value.clone())
}

fn param(p: &Property, name: &str) -> Option<String> {
    p.params
        .as_ref()?
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.first().cloned())
}

fn graph_series() -> Vec<serde_json::Value> {
    vec![
        json!({
            "id": "AAMkMaster", "iCalUId": "040000008200E00074C5B7101A82E008-master", "type": "seriesMaster",
            "subject": "Weekly sync; planning, review", "body": {"contentType": "text", "content": "Agenda:\nitem 1"},
            "start": {"dateTime": "2026-03-02T09:00:00.0000000", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2026-03-02T09:30:00.0000000", "timeZone": "Pacific Standard Time"},
            "location": {"displayName": "Room 1"},
            "organizer": {"emailAddress": {"name": "Alice", "address": "alice@example.com"}},
            "attendees": [
                {"type": "required", "status": {"response": "accepted"}, "emailAddress": {"name": "Bob", "address": "bob@example.com"}},
                {"type": "optional", "status": {"response": "none"}, "emailAddress": {"name": "Carol", "address": "carol@example.com"}}
            ],
            "recurrence": {
                "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "sunday"},
                "range": {"type": "endDate", "startDate": "2026-03-02", "endDate": "2026-06-29"}
            }
        }),
        json!({"id": "AAMkOcc1", "type": "occurrence", "seriesMasterId": "AAMkMaster", "isCancelled": true,
               "originalStart": "2026-03-05T17:00:00Z",
               "start": {"dateTime": "2026-03-05T09:00:00.0000000", "timeZone": "Pacific Standard Time"},
               "end": {"dateTime": "2026-03-05T09:30:00.0000000", "timeZone": "Pacific Standard Time"}}),
        json!({"id": "AAMkExc1", "type": "exception", "seriesMasterId": "AAMkMaster",
               "originalStart": "2026-03-09T16:00:00Z", "subject": "Weekly sync (moved)",
               "start": {"dateTime": "2026-03-09T13:00:00.0000000", "timeZone": "Pacific Standard Time"},
               "end": {"dateTime": "2026-03-09T13:30:00.0000000", "timeZone": "Pacific Standard Time"}}),
        json!({"id": "AAMkSingle", "type": "singleInstance", "subject": "Dentist",
               "start": {"dateTime": "2026-04-01T08:00:00.0000000", "timeZone": "UTC"},
               "end": {"dateTime": "2026-04-01T09:00:00.0000000", "timeZone": "UTC"}}),
        json!({"id": "AAMkMonthly", "type": "seriesMaster", "subject": "Board",
               "start": {"dateTime": "2026-01-15T10:00:00.0000000", "timeZone": "Europe/Berlin"},
               "end": {"dateTime": "2026-01-15T11:00:00.0000000", "timeZone": "Europe/Berlin"},
               "recurrence": {"pattern": {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["thursday"], "index": "third"},
                              "range": {"type": "numbered", "numberOfOccurrences": 6}}}),
    ]
}

#[test]
fn graph_events_become_icalendar_with_time_zones() {
    let stamp = Utc
        .with_ymd_and_hms(2026, 11, 29, 0, 0, 0)
        .single()
        .expect("time");
    let text = events_to_ics(&graph_series(), stamp).expect("ics");
    assert!(text.lines().all(|l| l.len() <= 75), "lines are folded");
    let calendars: Vec<_> = ical::IcalParser::new(BufReader::new(text.as_bytes()))
        .collect::<Result<_, _>>()
        .expect("ical parses our output");
    assert_eq!(calendars.len(), 1);
    let cal = &calendars[0];

    let zones: Vec<String> = cal
        .timezones
        .iter()
        .filter_map(|z| value(&z.properties, "TZID"))
        .collect();
    assert_eq!(
        zones,
        vec![
            "America/Los_Angeles".to_string(),
            "Europe/Berlin".to_string()
        ]
    );
    let la = cal
        .timezones
        .iter()
        .find(|z| value(&z.properties, "TZID").as_deref() == Some("America/Los_Angeles"))
        .expect("LA zone");
    let rules: Vec<(String, String, String)> = la
        .transitions
        .iter()
        .map(|t| {
            (
                value(&t.properties, "DTSTART").unwrap_or_default(),
                value(&t.properties, "RRULE").unwrap_or_default(),
                value(&t.properties, "TZOFFSETTO").unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        rules.contains(&(
            "20260308T020000".into(),
            "FREQ=YEARLY;BYMONTH=3;BYDAY=2SU".into(),
            "-0700".into()
        )),
        "{rules:?}"
    );
    assert!(
        rules.contains(&(
            "20261101T020000".into(),
            "FREQ=YEARLY;BYMONTH=11;BYDAY=1SU".into(),
            "-0800".into()
        )),
        "{rules:?}"
    );

    assert_eq!(cal.events.len(), 4, "master, exception, single, monthly");
    let master = cal
        .events
        .iter()
        .find(|e| {
            value(&e.properties, "UID").as_deref()
                == Some("040000008200E00074C5B7101A82E008-master")
                && prop(&e.properties, "RECURRENCE-ID").is_empty()
        })
        .expect("master");
    let dtstart = prop(&master.properties, "DTSTART")[0];
    assert_eq!(dtstart.value.as_deref(), Some("20260302T090000"));
    assert_eq!(
        param(dtstart, "TZID").as_deref(),
        Some("America/Los_Angeles")
    );
    assert_eq!(
        value(&master.properties, "SUMMARY").as_deref(),
        Some("Weekly sync\\; planning\\, review")
    );
    assert_eq!(
        value(&master.properties, "RRULE").as_deref(),
        Some("FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TH;WKST=SU;UNTIL=20260629T160000Z")
    );
    let exdates: Vec<_> = prop(&master.properties, "EXDATE")
        .iter()
        .map(|p| (p.value.clone(), param(p, "TZID")))
        .collect();
    assert_eq!(
        exdates,
        vec![(
            Some("20260305T090000".to_string()),
            Some("America/Los_Angeles".to_string())
        )]
    );
    let attendees = prop(&master.properties, "ATTENDEE");
    assert_eq!(attendees.len(), 2);
    assert_eq!(
        param(attendees[1], "ROLE").as_deref(),
        Some("OPT-PARTICIPANT")
    );
    assert_eq!(
        value(&master.properties, "ORGANIZER").as_deref(),
        Some("mailto:alice@example.com")
    );

    let exception = cal
        .events
        .iter()
        .find(|e| !prop(&e.properties, "RECURRENCE-ID").is_empty())
        .expect("exception");
    assert_eq!(
        value(&exception.properties, "UID"),
        value(&master.properties, "UID")
    );
    let rid = prop(&exception.properties, "RECURRENCE-ID")[0];
    assert_eq!(
        rid.value.as_deref(),
        Some("20260309T090000"),
        "original start in the series' zone"
    );
    assert_eq!(
        value(&exception.properties, "DTSTART").as_deref(),
        Some("20260309T130000")
    );

    let single = cal
        .events
        .iter()
        .find(|e| value(&e.properties, "SUMMARY").as_deref() == Some("Dentist"))
        .expect("single");
    assert_eq!(
        value(&single.properties, "DTSTART").as_deref(),
        Some("20260401T080000Z")
    );
    let board = cal
        .events
        .iter()
        .find(|e| value(&e.properties, "SUMMARY").as_deref() == Some("Board"))
        .expect("monthly");
    assert_eq!(
        value(&board.properties, "RRULE").as_deref(),
        Some("FREQ=MONTHLY;INTERVAL=2;BYDAY=3TH;COUNT=6")
    );
}

#[test]
fn bad_events_give_clear_errors() {
    let stamp = Utc::now();
    let no_start = json!({"id": "x", "subject": "s"});
    assert!(matches!(
        events_to_ics(&[no_start], stamp),
        Err(IcsError::Field { field: "start", .. })
    ));
    let bad_zone = json!({"id": "y", "start": {"dateTime": "2026-01-01T00:00:00", "timeZone": "Mars Standard Time"},
                          "end": {"dateTime": "2026-01-01T01:00:00", "timeZone": "UTC"}});
    assert!(matches!(
        events_to_ics(&[bad_zone], stamp),
        Err(IcsError::UnknownTimeZone { .. })
    ));
    let orphan = json!({"id": "z", "type": "exception", "seriesMasterId": "nope"});
    assert!(events_to_ics(&[orphan], stamp).is_err());
}

#[test]
fn graph_contacts_become_vcards() {
    let contact = json!({
        "id": "AAMkContact1", "displayName": "Dan Brown", "givenName": "Dan", "surname": "Brown",
        "emailAddresses": [{"name": "Dan", "address": "dan@contoso.com"}, {"address": "dan@example.org"}],
        "mobilePhone": "+1 555 0100", "businessPhones": ["+1 555 0199"], "homePhones": [],
        "companyName": "Contoso, Ltd.", "department": "R&D", "jobTitle": "Engineer",
        "birthday": "1980-04-05T00:00:00Z",
        "businessAddress": {"street": "1 Main St", "city": "Springfield", "state": "IL", "postalCode": "62701", "countryOrRegion": "USA"},
        "personalNotes": "Met at the conference; likes tea.\nSecond line with a long tail that certainly passes the seventy-five octet limit of vCard lines"
    });
    let minimal =
        json!({"id": "AAMkContact2", "emailAddresses": [{"address": "only@example.com"}]});
    let text = contacts_to_vcf(&[contact, minimal]).expect("vcf");
    assert!(text.lines().all(|l| l.len() <= 75), "lines are folded");
    let cards: Vec<_> = ical::VcardParser::new(BufReader::new(text.as_bytes()))
        .collect::<Result<_, _>>()
        .expect("ical parses our vCards");
    assert_eq!(cards.len(), 2);
    let p = &cards[0].properties;
    assert_eq!(value(p, "VERSION").as_deref(), Some("4.0"));
    assert_eq!(value(p, "FN").as_deref(), Some("Dan Brown"));
    assert_eq!(value(p, "N").as_deref(), Some("Brown;Dan;;;"));
    let emails: Vec<_> = prop(p, "EMAIL")
        .iter()
        .filter_map(|e| e.value.clone())
        .collect();
    assert_eq!(
        emails,
        vec!["dan@contoso.com".to_string(), "dan@example.org".to_string()]
    );
    let tels: Vec<_> = prop(p, "TEL")
        .iter()
        .map(|t| (param(t, "TYPE"), t.value.clone()))
        .collect();
    assert!(
        tels.contains(&(Some("cell".into()), Some("tel:+1 555 0100".into()))),
        "{tels:?}"
    );
    assert_eq!(value(p, "ORG").as_deref(), Some("Contoso\\, Ltd.;R&D"));
    assert_eq!(value(p, "BDAY").as_deref(), Some("19800405"));
    assert_eq!(
        value(p, "ADR").as_deref(),
        Some(";;1 Main St;Springfield;IL;62701;USA")
    );
    let note = value(p, "NOTE").expect("note");
    assert!(
        note.starts_with("Met at the conference\\; likes tea.\\nSecond line"),
        "{note}"
    );
    assert!(
        note.ends_with("limit of vCard lines"),
        "unfolded intact: {note}"
    );
    assert_eq!(
        value(&cards[1].properties, "FN").as_deref(),
        Some("only@example.com")
    );

    assert!(matches!(
        contact_to_vcard(&json!({"id": "empty"})),
        Err(VcfError::Empty(_))
    ));
}
