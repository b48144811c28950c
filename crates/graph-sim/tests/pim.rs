//! PIM: contacts, calendars and events (recurrence, calendarView, delta,
//! invitations), group calendars, To Do; errors, activity, truth, determinism.

mod common;

use common::TestSim;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A generated user with a mailbox.
fn mailbox_user(t: &TestSim) -> String {
    let dir = t.sim().directory.read();
    dir.users
        .iter()
        .find(|u| u.has_mailbox && u.generated && u.deleted.is_none())
        .map(|u| u.id.clone())
        .expect("a mailbox user")
}

fn stat(t: &TestSim, key: &str) -> u64 {
    t.sim()
        .stats
        .snapshot()
        .by_key
        .get(key)
        .copied()
        .unwrap_or(0)
}

fn ids(items: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .filter(|i| i.get("@removed").is_none())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn removed(items: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .filter(|i| i.get("@removed").is_some())
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn contact_folders_contacts_crud_and_delta() {
    let t = TestSim::start(6, 11).await;
    let u = mailbox_user(&t);
    let folders = t.get_all(&format!("/users/{u}/contactFolders")).await;
    assert!(!folders.is_empty() && folders.len() <= 2, "{folders:?}");
    let default = t.ok(&format!("/users/{u}/contactFolders/contacts")).await;
    assert_eq!(default["displayName"], "Contacts");
    for f in &folders {
        assert_eq!(f["parentFolderId"], default["id"]);
    }
    let all_folders = t
        .delta_round(&format!("/users/{u}/contactFolders/delta"))
        .await
        .0;
    assert!(
        all_folders.len() >= folders.len() + 2,
        "default and a nested folder too"
    );
    let nested = all_folders
        .iter()
        .find(|f| folders.iter().any(|p| p["id"] == f["parentFolderId"]))
        .expect("a nested folder");
    let nested_id = nested["id"].as_str().unwrap();
    let kids = t
        .get_all(&format!(
            "/users/{u}/contactFolders/{}/childFolders",
            nested["parentFolderId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ids(&kids), vec![nested_id.to_string()]);

    let contacts = t.get_all(&format!("/users/{u}/contacts")).await;
    assert_eq!(contacts.len(), 10);
    let c = &contacts[0];
    for p in [
        "givenName",
        "surname",
        "displayName",
        "emailAddresses",
        "businessPhones",
        "mobilePhone",
        "homePhones",
        "companyName",
        "jobTitle",
        "department",
        "businessAddress",
        "birthday",
        "personalNotes",
        "categories",
        "changeKey",
        "createdDateTime",
        "lastModifiedDateTime",
        "parentFolderId",
        "@odata.etag",
        "fileAs",
        "imAddresses",
        "homeAddress",
    ] {
        assert!(c.get(p).is_some(), "contact lacks {p}: {c}");
    }
    assert_eq!(c["parentFolderId"], default["id"]);
    let in_nested = t
        .get_all(&format!("/users/{u}/contactFolders/{nested_id}/contacts"))
        .await;
    assert_eq!(in_nested.len(), 3);

    // Delta: initial round, then exactly the changes.
    let (first, link) = t.delta_round(&format!("/users/{u}/contacts/delta")).await;
    assert_eq!(ids(&first), ids(&contacts));
    assert!(link.contains("$deltatoken="));
    let (s, created) = t
        .post(
            &format!("/users/{u}/contacts"),
            json!({"givenName": "Pat", "surname": "Lee", "emailAddresses": [{"address": "pat@example.com", "name": "Pat Lee"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    assert_eq!(created["displayName"], "Pat Lee");
    let new_id = created["id"].as_str().unwrap().to_string();
    let victim = contacts[1]["id"].as_str().unwrap().to_string();
    let changed = contacts[2]["id"].as_str().unwrap().to_string();
    assert_eq!(
        t.delete(&format!("/users/{u}/contacts/{victim}")).await,
        StatusCode::NO_CONTENT
    );
    let (s, v) = t
        .patch(
            &format!("/users/{u}/contacts/{changed}"),
            json!({"jobTitle": "CEO"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["jobTitle"], "CEO");
    assert_ne!(v["changeKey"], contacts[2]["changeKey"]);
    let (round, link2) = t.delta_round(&link).await;
    let mut want = vec![new_id.clone(), changed.clone()];
    want.sort();
    assert_eq!(ids(&round), want);
    assert_eq!(removed(&round), vec![victim.clone()]);
    assert_eq!(
        round.iter().find(|i| i["id"] == json!(victim)).unwrap()["@removed"]["reason"],
        "deleted"
    );
    let (empty, _) = t.delta_round(&link2).await;
    assert!(empty.is_empty(), "{empty:?}");

    // Paging a round with a small page size has no gaps or repeats.
    let r = t
        .send(
            reqwest::Method::GET,
            &format!("/users/{u}/contacts/delta"),
            None,
            &[("Prefer", "odata.maxpagesize=3")],
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["value"].as_array().unwrap().len(), 3);
    assert!(
        v["@odata.nextLink"]
            .as_str()
            .unwrap()
            .contains("$skiptoken=")
    );

    // Folders: create, nested create, duplicate, delete.
    let (s, f) = t
        .post(
            &format!("/users/{u}/contactFolders"),
            json!({"displayName": "Restored"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let fid = f["id"].as_str().unwrap();
    let (s, _) = t
        .post(
            &format!("/users/{u}/contactFolders"),
            json!({"displayName": "Restored"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, sub) = t
        .post(
            &format!("/users/{u}/contactFolders/{fid}/childFolders"),
            json!({"displayName": "Inner"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(sub["parentFolderId"], json!(fid));
    let (s, c2) = t
        .post(
            &format!("/users/{u}/contactFolders/{fid}/contacts"),
            json!({"displayName": "Only Name"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(c2["parentFolderId"], json!(fid));
    assert_eq!(
        t.delete(&format!("/users/{u}/contactFolders/{fid}")).await,
        StatusCode::NO_CONTENT
    );
    let (s, e) = t
        .get(&format!("/users/{u}/contactFolders/{fid}/contacts"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "ErrorItemNotFound");

    // Errors.
    let (s, e) = t
        .patch(
            &format!("/users/{u}/contacts/{new_id}"),
            json!({"noSuchProperty": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    let (s, e) = t.get(&format!("/users/{u}/contacts/{victim}")).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("ErrorItemNotFound"))
    );
    let (s, e) = t
        .get(&format!("/users/{u}/contacts/delta?$deltatoken=garbage"))
        .await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(e["error"]["code"], "SyncStateNotFound");
}

#[tokio::test]
async fn users_without_mailbox_and_unknown_users() {
    let t = TestSim::start(30, 12).await;
    let no_mb = t
        .sim()
        .directory
        .read()
        .users
        .iter()
        .find(|u| !u.has_mailbox)
        .map(|u| u.id.clone());
    if let Some(id) = no_mb {
        for p in [
            "contacts",
            "events",
            "calendars",
            "todo/lists",
            "contactFolders",
        ] {
            let (s, e) = t.get(&format!("/users/{id}/{p}")).await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            assert_eq!(e["error"]["code"], "MailboxNotEnabledForRESTAPI");
        }
    }
    let (s, e) = t
        .get("/users/00000000-0000-0000-0000-000000000000/events")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "Request_ResourceNotFound");
}

#[tokio::test]
async fn calendars_events_and_recurrence_expansion() {
    let t = TestSim::start(6, 21).await;
    let u = mailbox_user(&t);
    let cals = t.get_all(&format!("/users/{u}/calendars")).await;
    assert!((2..=3).contains(&cals.len()), "{cals:?}");
    assert_eq!(cals[0]["isDefaultCalendar"], true);
    assert_eq!(cals[0]["name"], "Calendar");
    for p in [
        "name",
        "color",
        "hexColor",
        "isDefaultCalendar",
        "canEdit",
        "owner",
        "changeKey",
    ] {
        assert!(cals[1].get(p).is_some(), "{p}");
    }
    let default = t.ok(&format!("/users/{u}/calendar")).await;
    assert_eq!(default["id"], cals[0]["id"]);

    let events = t.get_all(&format!("/users/{u}/events")).await;
    assert_eq!(events.len(), 24);
    assert!(
        events
            .iter()
            .all(|e| e["type"] == "singleInstance" || e["type"] == "seriesMaster")
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "seriesMaster")
            .count(),
        4
    );
    let other = t
        .get_all(&format!(
            "/users/{u}/calendars/{}/events",
            cals[1]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(other.len(), 6);

    // A new series: weekly on Monday and Wednesday, six occurrences.
    let (s, master) = t
        .post(
            &format!("/users/{u}/events"),
            json!({
                "subject": "Standup",
                "start": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2026-03-02T10:30:00", "timeZone": "UTC"},
                "recurrence": {
                    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"]},
                    "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 6}
                }
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{master}");
    assert_eq!(master["type"], "seriesMaster");
    assert_eq!(master["recurrence"]["range"]["recurrenceTimeZone"], "UTC");
    let mid = master["id"].as_str().unwrap();
    let window = "startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-01T00:00:00Z";
    let inst = t
        .get_all(&format!("/users/{u}/events/{mid}/instances?{window}"))
        .await;
    let starts: Vec<&str> = inst
        .iter()
        .map(|i| i["start"]["dateTime"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-03-02T10:00:00.0000000",
            "2026-03-04T10:00:00.0000000",
            "2026-03-09T10:00:00.0000000",
            "2026-03-11T10:00:00.0000000",
            "2026-03-16T10:00:00.0000000",
            "2026-03-18T10:00:00.0000000"
        ]
    );
    assert!(
        inst.iter()
            .all(|i| i["type"] == "occurrence" && i["seriesMasterId"] == json!(mid))
    );
    // Move the third, cancel the fourth.
    let third = inst[2]["id"].as_str().unwrap().to_string();
    let fourth = inst[3]["id"].as_str().unwrap().to_string();
    let (s, x) = t
        .patch(
            &format!("/users/{u}/events/{third}"),
            json!({"subject": "Standup (moved)", "start": {"dateTime": "2026-03-10T14:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-10T14:30:00", "timeZone": "UTC"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{x}");
    assert_eq!(x["type"], "exception");
    assert_eq!(x["originalStart"], "2026-03-09T10:00:00Z");
    assert_eq!(
        t.delete(&format!("/users/{u}/events/{fourth}")).await,
        StatusCode::NO_CONTENT
    );
    let (s, _) = t.get(&format!("/users/{u}/events/{fourth}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let inst = t
        .get_all(&format!("/users/{u}/events/{mid}/instances?{window}"))
        .await;
    let got: Vec<(String, String)> = inst
        .iter()
        .map(|i| {
            (
                i["start"]["dateTime"].as_str().unwrap()[..16].to_string(),
                i["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("2026-03-02T10:00", "occurrence"),
        ("2026-03-04T10:00", "occurrence"),
        ("2026-03-10T14:00", "exception"),
        ("2026-03-16T10:00", "occurrence"),
        ("2026-03-18T10:00", "occurrence"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    let m = t
        .ok(&format!(
            "/users/{u}/events/{mid}?$select=subject,cancelledOccurrences"
        ))
        .await;
    assert_eq!(
        m["cancelledOccurrences"],
        json!([format!("OID.{mid}.2026-03-11")])
    );
    let ex = t.ok(&format!("/users/{u}/events/{third}")).await;
    assert_eq!(ex["subject"], "Standup (moved)");
    let m = t
        .ok(&format!(
            "/users/{u}/events/{mid}?$expand=exceptionOccurrences"
        ))
        .await;
    assert_eq!(m["exceptionOccurrences"].as_array().unwrap().len(), 1);
    assert_eq!(m["exceptionOccurrences"][0]["id"], json!(third));
    let listed = t
        .get_all(&format!(
            "/users/{u}/events?$expand=exceptionOccurrences&$top=100"
        ))
        .await;
    let lm = listed.iter().find(|e| e["id"] == json!(mid)).unwrap();
    assert_eq!(lm["exceptionOccurrences"][0]["subject"], "Standup (moved)");
    // The calendar view shows the series' instances, not the master.
    let view = t
        .get_all(&format!("/users/{u}/calendarView?startDateTime=2026-03-10T00:00:00&endDateTime=2026-03-17T00:00:00"))
        .await;
    assert!(view.iter().all(|e| e["type"] != "seriesMaster"));
    let ours: Vec<&Value> = view
        .iter()
        .filter(|e| e["seriesMasterId"] == json!(mid))
        .collect();
    assert_eq!(ours.len(), 2, "moved exception and the 16th");
    let (s, _) = t
        .get(&format!("/users/{u}/calendarView?startDateTime=+262143-01-01T00:00:00Z&endDateTime=+262143-12-31T00:00:00Z"))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = t
        .get(&format!("/users/{u}/events/{mid}/instances?startDateTime=9000-12-01T00:00:00Z&endDateTime=9000-12-31T23:59:59Z"))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = t.get(&format!("/users/{u}/calendarView")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["code"], "ErrorInvalidParameter");
    // Changing the pattern drops exceptions and cancellations.
    let (s, _) = t
        .patch(
            &format!("/users/{u}/events/{mid}"),
            json!({"recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "endDate", "startDate": "2026-03-02", "endDate": "2026-03-04"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let inst = t
        .get_all(&format!("/users/{u}/events/{mid}/instances?{window}"))
        .await;
    assert_eq!(inst.len(), 3);
    let (s, e) = t
        .post(&format!("/users/{u}/events"), json!({"subject": "x", "start": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T11:00:00", "timeZone": "UTC"}, "recurrence": {"pattern": {"type": "weekly"}, "range": {"type": "noEnd", "startDate": "2026-03-02"}}}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    // Calendars: create, conflict, events in it, delete.
    let (s, c) = t
        .post(
            &format!("/users/{u}/calendars"),
            json!({"name": "Restore", "color": "lightGreen"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["hexColor"], "#87d28e");
    let cid = c["id"].as_str().unwrap();
    let (s, _) = t
        .post(&format!("/users/{u}/calendars"), json!({"name": "Restore"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = t
        .post(&format!("/users/{u}/calendars/{cid}/events"), json!({"subject": "In restore", "start": {"dateTime": "2026-03-02T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T11:00:00", "timeZone": "UTC"}}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        t.get_all(&format!("/users/{u}/calendars/{cid}/events"))
            .await
            .len(),
        1
    );
    let (_, pst) = t
        .post(
            &format!("/users/{u}/calendars/{cid}/events"),
            json!({"subject": "Pacific", "start": {"dateTime": "2026-01-15T09:00:00", "timeZone": "Pacific Standard Time"}, "end": {"dateTime": "2026-01-15T10:00:00", "timeZone": "Pacific Standard Time"}}),
        )
        .await;
    assert_eq!(pst["start"]["dateTime"], "2026-01-15T17:00:00.0000000");
    assert_eq!(pst["start"]["timeZone"], "UTC");
    assert_eq!(pst["originalStartTimeZone"], "Pacific Standard Time");
    assert_eq!(
        t.delete(&format!("/users/{u}/calendars/{cid}")).await,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn calendar_view_delta_reports_exactly_the_changes() {
    let t = TestSim::start(6, 31).await;
    let u = mailbox_user(&t);
    let start =
        "/calendarView/delta?startDateTime=2026-01-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z";
    let (first, link) = t.delta_round(&format!("/users/{u}{start}")).await;
    assert!(!first.is_empty());
    assert!(first.iter().all(|e| e["type"] != "seriesMaster"));
    assert!(removed(&first).is_empty());
    let view = t
        .get_all(&format!("/users/{u}/calendarView?startDateTime=2026-01-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z&$top=1000"))
        .await;
    assert_eq!(ids(&first), ids(&view));
    assert!(link.contains("$deltatoken=") && !link.contains("startDateTime"));

    // Small pages: the same set, no repeats.
    let r = t
        .send(
            reqwest::Method::GET,
            &format!("/users/{u}{start}"),
            None,
            &[("Prefer", "odata.maxpagesize=4")],
        )
        .await;
    let v: Value = r.json().await.unwrap();
    let mut paged: Vec<Value> = v["value"].as_array().unwrap().clone();
    let mut next = v["@odata.nextLink"].as_str().map(str::to_string);
    while let Some(n) = next {
        let v = t.ok(&n).await;
        paged.extend(v["value"].as_array().unwrap().clone());
        next = v["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(paged.len(), first.len());
    assert_eq!(ids(&paged), ids(&first));

    // Mutations: a new event, a changed one, a deleted one, a cancelled occurrence.
    let (_, new) = t
        .post(&format!("/users/{u}/events"), json!({"subject": "New", "start": {"dateTime": "2026-07-01T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-07-01T10:00:00", "timeZone": "UTC"}}))
        .await;
    let singles: Vec<&Value> = first
        .iter()
        .filter(|e| e["type"] == "singleInstance")
        .collect();
    let changed = singles[0]["id"].as_str().unwrap().to_string();
    let deleted = singles[1]["id"].as_str().unwrap().to_string();
    t.patch(
        &format!("/users/{u}/events/{changed}"),
        json!({"subject": "Changed"}),
    )
    .await;
    t.delete(&format!("/users/{u}/events/{deleted}")).await;
    let occ = first
        .iter()
        .find(|e| e["type"] == "occurrence")
        .expect("an occurrence");
    let occ_id = occ["id"].as_str().unwrap().to_string();
    let master = occ["seriesMasterId"].as_str().unwrap().to_string();
    assert_eq!(
        t.delete(&format!("/users/{u}/events/{occ_id}")).await,
        StatusCode::NO_CONTENT
    );

    let (round, link2) = t.delta_round(&link).await;
    let mut want_changed: Vec<String> = first
        .iter()
        .filter(|e| e["seriesMasterId"] == json!(master) && e["id"] != json!(occ_id))
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    want_changed.push(new["id"].as_str().unwrap().to_string());
    want_changed.push(changed.clone());
    want_changed.sort();
    assert_eq!(ids(&round), want_changed);
    let rem = removed(&round);
    assert!(rem.contains(&deleted) && rem.contains(&occ_id), "{rem:?}");
    let (empty, _) = t.delta_round(&link2).await;
    assert!(empty.is_empty(), "{empty:?}");

    // Invalidated and garbled tokens: 410 SyncStateNotFound.
    t.control(reqwest::Method::POST, "/_sim/delta/invalidate", json!({}))
        .await;
    let (s, e) = t.get(&link2).await;
    assert_eq!(s, StatusCode::GONE);
    assert_eq!(e["error"]["code"], "SyncStateNotFound");
    let (s, _) = t
        .get(&format!("/users/{u}/calendarView/delta?$deltatoken=abc"))
        .await;
    assert_eq!(s, StatusCode::GONE);
}

#[tokio::test]
async fn invitations_are_counted_as_exchange_sends_them() {
    let t = TestSim::start(6, 41).await;
    let u = mailbox_user(&t);
    let when = json!({"start": {"dateTime": "2026-08-01T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-08-01T10:00:00", "timeZone": "UTC"}});
    let with = |extra: Value| {
        let mut b = when.clone();
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let base = stat(&t, "pim:invitationsSent");
    let (s, _) = t
        .post(
            &format!("/users/{u}/events"),
            with(json!({"subject": "Alone"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(stat(&t, "pim:invitationsSent"), base);
    let attendees = json!([
        {"emailAddress": {"address": "a@example.com", "name": "A"}, "type": "required"},
        {"emailAddress": {"address": "b@example.com", "name": "B"}, "type": "optional"}
    ]);
    let (_, ev) = t
        .post(
            &format!("/users/{u}/events"),
            with(json!({"subject": "Meeting", "attendees": attendees})),
        )
        .await;
    assert_eq!(stat(&t, "pim:invitationsSent"), base + 2);
    assert_eq!(ev["attendees"][0]["status"]["response"], "none");
    assert_eq!(ev["isOrganizer"], true);
    // Adding an attendee later still invites (Graph has no way around it).
    let eid = ev["id"].as_str().unwrap();
    let mut more = attendees.as_array().unwrap().clone();
    more.push(json!({"emailAddress": {"address": "c@example.com"}}));
    t.patch(
        &format!("/users/{u}/events/{eid}"),
        json!({"attendees": more}),
    )
    .await;
    assert_eq!(stat(&t, "pim:invitationsSent"), base + 3);
    t.patch(
        &format!("/users/{u}/events/{eid}"),
        json!({"subject": "Meeting v2"}),
    )
    .await;
    assert_eq!(stat(&t, "pim:updatesSent"), 3);
    t.delete(&format!("/users/{u}/events/{eid}")).await;
    assert_eq!(stat(&t, "pim:cancellationsSent"), 3);
    // Someone else's meeting (restored with its organizer): nothing is sent.
    let (_, ev) = t
        .post(
            &format!("/users/{u}/events"),
            with(json!({"subject": "Theirs", "attendees": attendees, "organizer": {"emailAddress": {"address": "boss@example.com", "name": "Boss"}}})),
        )
        .await;
    assert_eq!(ev["isOrganizer"], false);
    assert_eq!(stat(&t, "pim:invitationsSent"), base + 3);
    // Simulated activity is not counted as client-caused invitations.
    t.control(reqwest::Method::POST, "/_sim/activity", json!({"days": 2}))
        .await;
    assert_eq!(stat(&t, "pim:invitationsSent"), base + 3);
}

#[tokio::test]
async fn group_calendars() {
    let t = TestSim::start(10, 51).await;
    let gid = {
        let dir = t.sim().directory.read();
        dir.groups.iter().find(|g| g.unified).map(|g| g.id.clone())
    };
    let Some(gid) = gid else { return };
    let cal = t.ok(&format!("/groups/{gid}/calendar")).await;
    assert_eq!(cal["isDefaultCalendar"], true);
    let events = t.get_all(&format!("/groups/{gid}/events")).await;
    assert_eq!(events.len(), 10);
    let view = t
        .get_all(&format!("/groups/{gid}/calendarView?startDateTime=2025-01-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z"))
        .await;
    assert!(!view.is_empty());
    let (s, ev) = t
        .post(&format!("/groups/{gid}/events"), json!({"subject": "All hands", "start": {"dateTime": "2026-08-01T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-08-01T10:00:00", "timeZone": "UTC"}}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let eid = ev["id"].as_str().unwrap();
    assert_eq!(
        t.ok(&format!("/groups/{gid}/events/{eid}")).await["subject"],
        "All hands"
    );
    let truth = t
        .control(
            reqwest::Method::GET,
            &format!("/_sim/truth/groups/{gid}"),
            json!({}),
        )
        .await;
    assert!(
        truth["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["path"] == "Calendar/Calendar/All hands")
    );
    let non_unified = {
        let dir = t.sim().directory.read();
        dir.groups.iter().find(|g| !g.unified).map(|g| g.id.clone())
    };
    if let Some(g) = non_unified {
        let (s, _) = t.get(&format!("/groups/{g}/events")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    t.control(
        reqwest::Method::POST,
        &format!("/_sim/groups/{gid}/delete"),
        json!({}),
    )
    .await;
    let (s, _) = t.get(&format!("/groups/{gid}/events")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn todo_lists_tasks_checklists_and_delta() {
    let t = TestSim::start(6, 61).await;
    let u = mailbox_user(&t);
    let lists = t.get_all(&format!("/users/{u}/todo/lists")).await;
    assert_eq!(lists.len(), 2);
    let default = lists
        .iter()
        .find(|l| l["wellknownListName"] == "defaultList")
        .expect("default list");
    assert_eq!(default["displayName"], "Tasks");
    let lid = default["id"].as_str().unwrap();
    let tasks = t
        .get_all(&format!("/users/{u}/todo/lists/{lid}/tasks"))
        .await;
    assert_eq!(tasks.len(), 8);
    for p in [
        "title",
        "body",
        "status",
        "importance",
        "isReminderOn",
        "createdDateTime",
        "lastModifiedDateTime",
        "bodyLastModifiedDateTime",
        "categories",
        "@odata.etag",
    ] {
        assert!(tasks[0].get(p).is_some(), "{p}");
    }
    let (first, link) = t
        .delta_round(&format!("/users/{u}/todo/lists/{lid}/tasks/delta"))
        .await;
    assert_eq!(ids(&first), ids(&tasks));
    let (s, task) = t
        .post(
            &format!("/users/{u}/todo/lists/{lid}/tasks"),
            json!({"title": "Restore test", "dueDateTime": {"dateTime": "2026-09-01T00:00:00", "timeZone": "UTC"}, "importance": "high"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{task}");
    let tid = task["id"].as_str().unwrap();
    let (s, done) = t
        .patch(
            &format!("/users/{u}/todo/lists/{lid}/tasks/{tid}"),
            json!({"status": "completed"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(done["completedDateTime"]["dateTime"].is_string());
    let gone = tasks[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        t.delete(&format!("/users/{u}/todo/lists/{lid}/tasks/{gone}"))
            .await,
        StatusCode::NO_CONTENT
    );
    let (s, ci) = t
        .post(
            &format!("/users/{u}/todo/lists/{lid}/tasks/{tid}/checklistItems"),
            json!({"displayName": "step one"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let ciid = ci["id"].as_str().unwrap();
    let (_, ci2) = t
        .patch(
            &format!("/users/{u}/todo/lists/{lid}/tasks/{tid}/checklistItems/{ciid}"),
            json!({"isChecked": true}),
        )
        .await;
    assert_eq!(ci2["isChecked"], true);
    assert_eq!(
        t.get_all(&format!(
            "/users/{u}/todo/lists/{lid}/tasks/{tid}/checklistItems"
        ))
        .await
        .len(),
        1
    );
    let (s, inline) = t
        .post(
            &format!("/users/{u}/todo/lists/{lid}/tasks"),
            json!({"title": "With steps", "checklistItems": [{"displayName": "a"}, {"displayName": "b", "isChecked": true}]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{inline}");
    let iid = inline["id"].as_str().unwrap();
    let got = t
        .ok(&format!(
            "/users/{u}/todo/lists/{lid}/tasks/{iid}?$expand=checklistItems"
        ))
        .await;
    assert_eq!(got["checklistItems"].as_array().unwrap().len(), 2);
    assert_eq!(got["checklistItems"][1]["isChecked"], true);
    let (round, _) = t.delta_round(&link).await;
    let mut want = vec![tid.to_string(), iid.to_string()];
    want.sort();
    assert_eq!(ids(&round), want);
    assert_eq!(removed(&round), vec![gone.clone()]);
    let (s, e) = t
        .patch(
            &format!("/users/{u}/todo/lists/{lid}/tasks/{tid}"),
            json!({"status": "sleeping"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    // Lists: create, delta, delete; the default list stays.
    let (lfirst, llink) = t.delta_round(&format!("/users/{u}/todo/lists/delta")).await;
    assert_eq!(lfirst.len(), 2);
    let (s, nl) = t
        .post(
            &format!("/users/{u}/todo/lists"),
            json!({"displayName": "Restored"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(nl["wellknownListName"], "none");
    let (lround, _) = t.delta_round(&llink).await;
    assert_eq!(ids(&lround), vec![nl["id"].as_str().unwrap().to_string()]);
    let (s, _) = t
        .call(
            reqwest::Method::DELETE,
            &format!("/users/{u}/todo/lists/{lid}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, e) = t.get(&format!("/users/{u}/todo/lists/nope/tasks")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
}

#[tokio::test]
async fn activity_truth_and_determinism() {
    let a = TestSim::start(6, 71).await;
    let b = TestSim::start(6, 71).await;
    let u = mailbox_user(&a);
    for p in [
        "/contacts?$top=100",
        "/events?$top=100",
        "/calendars",
        "/todo/lists",
        "/contactFolders",
    ] {
        let x = a.ok(&format!("/users/{u}{p}")).await;
        let y = b.ok(&format!("/users/{u}{p}")).await;
        assert_eq!(x["value"], y["value"], "{p}");
    }
    let ta = a
        .control(
            reqwest::Method::GET,
            &format!("/_sim/truth/users/{u}"),
            json!({}),
        )
        .await;
    let tb = b
        .control(
            reqwest::Method::GET,
            &format!("/_sim/truth/users/{u}"),
            json!({}),
        )
        .await;
    assert_eq!(ta["items"], tb["items"]);
    let items = ta["items"].as_array().unwrap();
    let paths: Vec<&str> = items.iter().filter_map(|i| i["path"].as_str()).collect();
    assert!(paths.iter().any(|p| p.starts_with("Contacts/Contacts/")));
    assert!(paths.iter().any(|p| p.starts_with("Calendar/Calendar/")));
    assert!(paths.iter().any(|p| p.starts_with("Tasks/Tasks/")));
    assert!(items.iter().any(|i| i["workload"] == "calendar" && i["id"].as_str().unwrap().starts_with("AAMkOc")), "exceptions are in the truth");

    // Activity shows up in delta and in the truth, the same for the same seed.
    let (_, link_a) = a.delta_round(&format!("/users/{u}/contacts/delta")).await;
    let (_, tlink_a) = a
        .delta_round(&format!(
            "/users/{u}/todo/lists/{}/tasks/delta",
            a.get_all(&format!("/users/{u}/todo/lists")).await[0]["id"]
                .as_str()
                .unwrap()
        ))
        .await;
    let ra = a
        .control(
            reqwest::Method::POST,
            "/_sim/activity",
            json!({"days": 3, "entities": [format!("user:{u}")]}),
        )
        .await;
    assert!(ra["report"]["created"].as_u64().unwrap() > 0);
    let rb = b
        .control(
            reqwest::Method::POST,
            "/_sim/activity",
            json!({"days": 3, "entities": [format!("user:{u}")]}),
        )
        .await;
    assert_eq!(ra["report"], rb["report"]);
    let tb2 = b
        .control(
            reqwest::Method::GET,
            &format!("/_sim/truth/users/{u}"),
            json!({}),
        )
        .await;
    let ta2 = a
        .control(
            reqwest::Method::GET,
            &format!("/_sim/truth/users/{u}"),
            json!({}),
        )
        .await;
    let strip = |v: &Value| -> Vec<(String, String)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["path"].as_str().unwrap().to_string(),
                    i["hash"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert_ne!(strip(&ta2), strip(&ta));
    assert_eq!(strip(&ta2), strip(&tb2));
    let (contacts_round, _) = a.delta_round(&link_a).await;
    let (tasks_round, _) = a.delta_round(&tlink_a).await;
    assert!(!(contacts_round.is_empty() && tasks_round.is_empty()));

    // A deleted user's PIM data goes with it.
    a.control(
        reqwest::Method::POST,
        &format!("/_sim/users/{u}/delete"),
        json!({}),
    )
    .await;
    let (s, _) = a.get(&format!("/users/{u}/contacts")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
