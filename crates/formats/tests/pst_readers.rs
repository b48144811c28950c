//! Every PST written here is opened by three independent readers and what
//! they extract is compared with the source items.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use common::{OpItem, outlook_pst_items, pff_field, pffexport, readpst};
use formats::pst::*;
use mail_parser::{MessageParser, MimeHeaders};
use outlook_pst::ltp::prop_context::PropertyValue;
use sha2::{Digest, Sha256};

const APPOINTMENT_SET: u32 = 0x0006_2002;
const TASK_SET: u32 = 0x0006_2003;
const ADDRESS_SET: u32 = 0x0006_2004;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test time")
        .with_timezone(&Utc)
}

fn filetime(t: DateTime<Utc>) -> i64 {
    (t.timestamp() + 11_644_473_600) * 10_000_000 + i64::from(t.timestamp_subsec_nanos() / 100)
}

fn sample_message(i: usize) -> Message {
    Message {
        subject: format!("Quarterly report {i} — café"),
        from: Some(Mailbox::new("Alice Smith", "alice@example.com")),
        to: vec![
            Mailbox::new("Bob Jones", "bob@example.com"),
            Mailbox::new("Eve", "eve@example.com"),
        ],
        cc: vec![Mailbox::new("Carol", "carol@example.com")],
        bcc: vec![Mailbox::new("Dave", "dave@example.com")],
        sent: Some(at("2026-03-01T10:00:00Z") + Duration::minutes(i as i64)),
        received: Some(at("2026-03-01T10:00:05Z") + Duration::minutes(i as i64)),
        body_text: Some(format!("Hello Bob,\nplease find report {i} attached.\n")),
        body_html: Some(format!(
            "<html><body><p>Hello Bob, report <b>{i}</b></p></body></html>"
        )),
        read: i.is_multiple_of(2),
        flagged: i.is_multiple_of(3),
        importance: Importance::High,
        internet_message_id: Some(format!("<msg{i}@example.com>")),
        attachments: vec![Attachment {
            name: format!("report{i}.csv"),
            mime_type: "text/csv".into(),
            data: format!("a,b\n{i},2\n").into_bytes(),
        }],
        ..Default::default()
    }
}

fn recurring_meeting() -> Appointment {
    let start = at("2026-01-07T09:30:00Z");
    Appointment {
        subject: "Team standup".into(),
        body: Some("Daily sync".into()),
        location: Some("Room 42".into()),
        start,
        end: start + Duration::minutes(15),
        organizer: Some(Mailbox::new("Alice Smith", "alice@example.com")),
        attendees: vec![Mailbox::new("Bob Jones", "bob@example.com")],
        recurrence: Some(Recurrence {
            pattern: RecurrencePattern::Weekly { days: 0b0010_1010 },
            interval: 1,
            end: RecurrenceEnd::After(10),
            deleted: vec![NaiveDate::from_ymd_opt(2026, 1, 9).expect("date")],
            exceptions: vec![Exception {
                original_date: NaiveDate::from_ymd_opt(2026, 1, 12).expect("date"),
                start: at("2026-01-12T11:00:00Z"),
                end: at("2026-01-12T11:30:00Z"),
                subject: Some("Standup (moved)".into()),
                location: Some("Room 7".into()),
            }],
        }),
        ..Default::default()
    }
}

fn one_off_meeting() -> Appointment {
    let start = Utc
        .with_ymd_and_hms(2026, 2, 14, 12, 0, 0)
        .single()
        .expect("time");
    Appointment {
        subject: "Lunch".into(),
        start,
        end: start + Duration::hours(1),
        location: Some("Cafeteria".into()),
        ..Default::default()
    }
}

fn contact() -> Contact {
    Contact {
        display_name: "Dan Brown".into(),
        given_name: Some("Dan".into()),
        surname: Some("Brown".into()),
        company: Some("Contoso".into()),
        job_title: Some("Engineer".into()),
        emails: vec!["dan@contoso.com".into(), "dan.brown@example.org".into()],
        mobile_phone: Some("+1 555 0100".into()),
        ..Default::default()
    }
}

fn task() -> Task {
    Task {
        subject: "File taxes".into(),
        body: Some("Before April".into()),
        due: Some(at("2026-04-15T00:00:00Z")),
        status: TaskStatus::InProgress,
        percent_complete: 0.25,
        ..Default::default()
    }
}

fn note() -> Note {
    Note {
        body: "Buy milk\nand bread".into(),
        created: Some(at("2026-01-02T08:00:00Z")),
    }
}

fn value_time(v: Option<&PropertyValue>) -> Option<i64> {
    match v? {
        PropertyValue::Time(t) => Some(*t),
        _ => None,
    }
}

fn recipients_emails(item: &OpItem) -> BTreeSet<String> {
    item.recipients
        .iter()
        .filter_map(|r| r.get(&0x3003).and_then(common::text))
        .collect()
}

#[test]
fn every_item_kind_reads_back_in_all_three_readers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mailbox.pst");
    let messages: Vec<Message> = (0..3).map(sample_message).collect();
    // Text and HTML that stay in the heap (each under 3580 bytes) but together
    // overflow one 8 kB heap page.
    let two_pages = Message {
        subject: "Two heap pages".into(),
        body_text: Some("x".repeat(1700)),
        body_html: Some(format!("<p>{}</p>", "y".repeat(3500))),
        internet_message_id: Some(format!("<{}@example.com>", "z".repeat(1500))),
        ..Default::default()
    };
    let long_body = Message {
        subject: "Long body".into(),
        body_text: Some("0123456789abcdef\n".repeat(600)),
        ..Default::default()
    };
    {
        let file = std::fs::File::create(&path).expect("create");
        let mut pst = PstWriter::create(file).expect("writer");
        let inbox = pst
            .add_folder(pst.root(), "Inbox", "IPF.Note")
            .expect("inbox");
        let projects = pst
            .add_folder(inbox, "Projects", "IPF.Note")
            .expect("projects");
        let calendar = pst
            .add_folder(pst.root(), "Calendar", "IPF.Appointment")
            .expect("calendar");
        let contacts = pst
            .add_folder(pst.root(), "Contacts", "IPF.Contact")
            .expect("contacts");
        let tasks = pst
            .add_folder(pst.root(), "Tasks", "IPF.Task")
            .expect("tasks");
        let notes = pst
            .add_folder(pst.root(), "Notes", "IPF.StickyNote")
            .expect("notes");
        for m in &messages {
            pst.add_message(inbox, m).expect("message");
        }
        pst.add_message(projects, &long_body).expect("long body");
        pst.add_message(projects, &two_pages)
            .expect("two heap pages");
        pst.add_appointment(calendar, &recurring_meeting())
            .expect("appointment");
        pst.add_appointment(calendar, &one_off_meeting())
            .expect("appointment");
        pst.add_contact(contacts, &contact()).expect("contact");
        pst.add_task(tasks, &task()).expect("task");
        pst.add_note(notes, &note()).expect("note");
        pst.finish().expect("finish");
    }

    // outlook-pst
    let (folders, items) = outlook_pst_items(&path);
    let folders: BTreeSet<_> = folders.into_iter().collect();
    for f in [
        "Inbox",
        "Inbox/Projects",
        "Calendar",
        "Contacts",
        "Tasks",
        "Notes",
        "Deleted Items",
    ] {
        assert!(
            folders.contains(f),
            "outlook-pst misses folder {f}: {folders:?}"
        );
    }
    let by_subject: BTreeMap<String, &OpItem> = items
        .iter()
        .map(|i| (i.text(0x0037).unwrap_or_default(), i))
        .collect();
    for m in &messages {
        let item = by_subject
            .get(&m.subject)
            .unwrap_or_else(|| panic!("outlook-pst misses {:?}", m.subject));
        assert_eq!(item.folder, "Inbox");
        assert_eq!(item.text(0x0C1F).as_deref(), Some("alice@example.com"));
        assert_eq!(item.text(0x1000), m.body_text);
        assert_eq!(item.text(0x1013), m.body_html);
        assert_eq!(item.text(0x1035), m.internet_message_id);
        assert_eq!(value_time(item.props.get(&0x0039)), m.sent.map(filetime));
        let expected: BTreeSet<String> = [
            "bob@example.com",
            "eve@example.com",
            "carol@example.com",
            "dave@example.com",
        ]
        .map(String::from)
        .into();
        assert_eq!(recipients_emails(item), expected);
        assert_eq!(
            item.attachments,
            vec![(m.attachments[0].name.clone(), m.attachments[0].data.clone())]
        );
        let read =
            matches!(item.props.get(&0x0E07), Some(PropertyValue::Integer32(f)) if f & 1 == 1);
        assert_eq!(read, m.read);
    }
    let long = by_subject.get("Long body").expect("long body item");
    assert_eq!(long.folder, "Inbox/Projects");
    assert_eq!(
        long.text(0x1000),
        long_body.body_text,
        "a body over the heap limit lives in a subnode"
    );
    let paged = by_subject.get("Two heap pages").expect("two-page item");
    assert_eq!(paged.text(0x1000), two_pages.body_text);
    assert_eq!(paged.text(0x1013), two_pages.body_html);
    assert_eq!(paged.text(0x1035), two_pages.internet_message_id);
    let meeting = by_subject.get("Team standup").expect("appointment");
    assert_eq!(
        value_time(meeting.named.get(&(APPOINTMENT_SET, 0x820D))),
        Some(filetime(recurring_meeting().start))
    );
    assert_eq!(
        value_time(meeting.named.get(&(APPOINTMENT_SET, 0x820E))),
        Some(filetime(recurring_meeting().end))
    );
    assert_eq!(
        meeting.named_text(APPOINTMENT_SET, 0x8208).as_deref(),
        Some("Room 42")
    );
    assert!(matches!(
        meeting.named.get(&(APPOINTMENT_SET, 0x8216)),
        Some(PropertyValue::Binary(_))
    ));
    let person = by_subject.get("Dan Brown").expect("contact");
    assert_eq!(
        person.named_text(ADDRESS_SET, 0x8083).as_deref(),
        Some("dan@contoso.com")
    );
    assert_eq!(
        person.named_text(ADDRESS_SET, 0x8093).as_deref(),
        Some("dan.brown@example.org")
    );
    assert_eq!(person.text(0x3A06).as_deref(), Some("Dan"));
    let todo = by_subject.get("File taxes").expect("task");
    assert!(matches!(
        todo.named.get(&(TASK_SET, 0x8101)),
        Some(PropertyValue::Integer32(1))
    ));
    assert_eq!(
        value_time(todo.named.get(&(TASK_SET, 0x8105))),
        Some(filetime(at("2026-04-15T00:00:00Z")))
    );
    let memo = by_subject.get("Buy milk").expect("note");
    assert_eq!(memo.text(0x1000).as_deref(), Some("Buy milk\nand bread"));
    assert_eq!(memo.text(0x001A).as_deref(), Some("IPM.StickyNote"));

    // readpst
    let files = readpst(&path, &dir.path().join("readpst"));
    let under = |folder: &str| -> Vec<&Vec<u8>> {
        files
            .iter()
            .filter(|(k, _)| k.rsplit_once('/').map(|(d, _)| d) == Some(folder))
            .map(|(_, v)| v)
            .collect()
    };
    let inbox_mail = under("Lifeboat export/Inbox");
    assert_eq!(
        inbox_mail.len(),
        messages.len(),
        "readpst files: {:?}",
        files.keys().collect::<Vec<_>>()
    );
    let mut seen = BTreeSet::new();
    for raw in inbox_mail {
        let parsed = MessageParser::default()
            .parse(raw.as_slice())
            .expect("readpst wrote a parseable message");
        let subject = parsed.subject().expect("subject").to_string();
        let source = messages
            .iter()
            .find(|m| m.subject == subject)
            .unwrap_or_else(|| panic!("readpst subject {subject:?}"));
        let from = parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_string);
        assert_eq!(from.as_deref(), Some("alice@example.com"));
        assert_eq!(
            parsed.body_text(0).map(|b| b.trim_end().to_string()),
            source.body_text.as_ref().map(|b| b.trim_end().to_string())
        );
        assert_eq!(
            parsed.body_html(0).map(|b| b.trim_end().to_string()),
            source.body_html.clone()
        );
        let to = parsed
            .to()
            .map(|t| {
                t.iter()
                    .filter_map(|a| a.name())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        assert_eq!(to, vec!["Bob Jones".to_string(), "Eve".to_string()]);
        let attachment = parsed.attachments().next().expect("attachment");
        assert_eq!(
            attachment.attachment_name(),
            Some(source.attachments[0].name.as_str())
        );
        assert_eq!(attachment.contents(), source.attachments[0].data.as_slice());
        seen.insert(subject);
    }
    assert_eq!(seen.len(), messages.len());
    let project_mail = under("Lifeboat export/Inbox/Projects");
    assert_eq!(project_mail.len(), 2);
    for raw in project_mail {
        let parsed = MessageParser::default()
            .parse(raw.as_slice())
            .expect("parse");
        let source = if parsed.subject() == Some("Long body") {
            &long_body
        } else {
            &two_pages
        };
        assert_eq!(
            parsed.body_text(0).map(|b| b.trim_end().to_string()),
            source.body_text.clone().map(|b| b.trim_end().to_string())
        );
        if let Some(html) = &source.body_html {
            assert_eq!(
                parsed
                    .body_html(0)
                    .map(|b| b.trim_end().to_string())
                    .as_ref(),
                Some(html)
            );
        }
    }
    let events: Vec<String> = under("Lifeboat export/Calendar")
        .into_iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(events.len(), 2);
    let standup = events
        .iter()
        .find(|e| e.contains("SUMMARY:Team standup"))
        .expect("readpst exports the meeting");
    assert!(
        standup.contains("DTSTART;VALUE=DATE-TIME:20260107T093000Z"),
        "{standup}"
    );
    assert!(
        standup.contains("DTEND;VALUE=DATE-TIME:20260107T094500Z"),
        "{standup}"
    );
    assert!(
        standup.contains("RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO;WE;FR"),
        "{standup}"
    );
    assert!(standup.contains("LOCATION:Room 42"), "{standup}");
    let lunch = events
        .iter()
        .find(|e| e.contains("SUMMARY:Lunch"))
        .expect("lunch");
    assert!(
        lunch.contains("DTSTART;VALUE=DATE-TIME:20260214T120000Z"),
        "{lunch}"
    );
    let cards = under("Lifeboat export/Contacts");
    let card = String::from_utf8_lossy(cards[0]);
    assert!(
        card.contains("FN:Dan Brown") && card.contains("EMAIL:dan@contoso.com"),
        "{card}"
    );

    // pffexport
    let files = pffexport(&path, &dir.path().join("pff"));
    let text = |k: &str| {
        String::from_utf8_lossy(files.get(k).unwrap_or_else(|| {
            panic!(
                "pffexport lacks {k}: {:?}",
                files.keys().collect::<Vec<_>>()
            )
        }))
        .into_owned()
    };
    let top = "Top of Personal Folders";
    let mut pff_subjects = BTreeSet::new();
    for n in 1..=messages.len() {
        let dir = format!("{top}/Inbox/Message{n:05}");
        let headers = text(&format!("{dir}/OutlookHeaders.txt"));
        let subject = pff_field(&headers, "Subject").expect("subject");
        let source = messages
            .iter()
            .find(|m| m.subject == subject)
            .unwrap_or_else(|| panic!("pffexport subject {subject:?}"));
        assert_eq!(
            pff_field(&headers, "Sender email address").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(Some(text(&format!("{dir}/Message.txt"))), source.body_text);
        assert_eq!(Some(text(&format!("{dir}/Message.html"))), source.body_html);
        let recipients = text(&format!("{dir}/Recipients.txt"));
        for email in [
            "bob@example.com",
            "eve@example.com",
            "carol@example.com",
            "dave@example.com",
        ] {
            assert!(recipients.contains(email), "{recipients}");
        }
        let attachment = files
            .get(&format!(
                "{dir}/Attachments/1_{}",
                source.attachments[0].name
            ))
            .expect("pffexport attachment");
        assert_eq!(attachment, &source.attachments[0].data);
        pff_subjects.insert(subject);
    }
    assert_eq!(pff_subjects.len(), messages.len());
    let project_bodies: BTreeSet<String> = (1..=2)
        .map(|n| text(&format!("{top}/Inbox/Projects/Message{n:05}/Message.txt")))
        .collect();
    let expected_bodies: BTreeSet<String> = [&long_body, &two_pages]
        .iter()
        .filter_map(|m| m.body_text.clone())
        .collect();
    assert_eq!(project_bodies, expected_bodies);
    let appointments: Vec<String> = (1..=2)
        .map(|n| text(&format!("{top}/Calendar/Appointment{n:05}/Appointment.txt")))
        .collect();
    let standup = appointments
        .iter()
        .find(|a| a.contains("Team standup"))
        .expect("pffexport meeting");
    assert_eq!(
        pff_field(standup, "Start time").as_deref(),
        Some("Jan 07, 2026 09:30:00.000000000 UTC")
    );
    assert_eq!(
        pff_field(standup, "End time").as_deref(),
        Some("Jan 07, 2026 09:45:00.000000000 UTC")
    );
    assert_eq!(pff_field(standup, "Location").as_deref(), Some("Room 42"));
    // 10 weekly occurrences on Mon/Wed/Fri from Wed 7 Jan end on Wed 28 Jan.
    assert_eq!(
        pff_field(standup, "Last effective time").as_deref(),
        Some("Jan 28, 2026 00:00:00.000000000 UTC")
    );
    let contact_txt = text(&format!("{top}/Contacts/Contact00001/Contact.txt"));
    assert_eq!(
        pff_field(&contact_txt, "Email address 1").as_deref(),
        Some("dan@contoso.com")
    );
    assert_eq!(
        pff_field(&contact_txt, "Given name").as_deref(),
        Some("Dan")
    );
    assert_eq!(pff_field(&contact_txt, "Surname").as_deref(), Some("Brown"));
    let task_txt = text(&format!("{top}/Tasks/Task00001/Task.txt"));
    assert_eq!(
        pff_field(&task_txt, "Subject").as_deref(),
        Some("File taxes")
    );
    assert_eq!(
        pff_field(&task_txt, "Due date").as_deref(),
        Some("Apr 15, 2026 00:00:00.000000000 UTC")
    );
    let note_txt = text(&format!("{top}/Notes/Note00001/Note.txt"));
    assert!(note_txt.contains("Buy milk\nand bread"), "{note_txt}");
}

fn sha(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

#[test]
fn thousands_of_items_with_large_attachments_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.pst");
    // 9 MB needs an XXBLOCK (an XBLOCK holds 1021 * 8176 bytes); 200 kB an XBLOCK.
    let huge: Vec<u8> = (0..9_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let medium: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    const PER_FOLDER: usize = 1500;
    let folder_names = ["Archive", "Archive/2025", "Archive/2025/Q4"];
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    {
        let file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        let mut pst = PstWriter::create(file).expect("writer");
        let a = pst
            .add_folder(pst.root(), "Archive", "IPF.Note")
            .expect("folder");
        let b = pst.add_folder(a, "2025", "IPF.Note").expect("folder");
        let c = pst.add_folder(b, "Q4", "IPF.Note").expect("folder");
        for (f, folder) in [a, b, c].into_iter().enumerate() {
            for i in 0..PER_FOLDER {
                let subject = format!("{} message {i}", folder_names[f]);
                let mut m = Message {
                    subject: subject.clone(),
                    from: Some(Mailbox::new("Sender", format!("s{i}@example.com"))),
                    to: vec![Mailbox::new("Rcpt", "r@example.com")],
                    body_text: Some(if i % 100 == 0 {
                        format!("{i} ").repeat(2000)
                    } else {
                        format!("short {i}")
                    }),
                    ..Default::default()
                };
                if f == 2 && i == 7 {
                    m.attachments.push(Attachment {
                        name: "huge.bin".into(),
                        mime_type: "application/octet-stream".into(),
                        data: huge.clone(),
                    });
                }
                if f == 1 && i == 3 {
                    m.attachments.push(Attachment {
                        name: "medium.bin".into(),
                        mime_type: "application/octet-stream".into(),
                        data: medium.clone(),
                    });
                }
                pst.add_message(folder, &m).expect("message");
                expected.insert(subject, folder_names[f].to_string());
            }
        }
        pst.finish().expect("finish");
    }

    // outlook-pst
    let (_, items) = outlook_pst_items(&path);
    assert_eq!(items.len(), expected.len());
    for item in &items {
        let subject = item.text(0x0037).expect("subject");
        assert_eq!(expected.get(&subject), Some(&item.folder), "{subject}");
        let i: usize = subject
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("index");
        if i.is_multiple_of(100) {
            assert_eq!(
                item.text(0x1000).map(|b| b.len()),
                Some(format!("{i} ").len() * 2000)
            );
        }
        if let Some((name, data)) = item.attachments.first() {
            let want = if name == "huge.bin" { &huge } else { &medium };
            assert_eq!(sha(data), sha(want), "{name}");
        }
    }
    assert_eq!(
        items.iter().filter(|i| !i.attachments.is_empty()).count(),
        2
    );

    // readpst
    let files = readpst(&path, &dir.path().join("readpst"));
    let mut subjects = BTreeMap::new();
    let mut huge_seen = false;
    for (name, raw) in &files {
        let parsed = MessageParser::default()
            .parse(raw.as_slice())
            .expect("parse");
        let subject = parsed.subject().expect("subject").to_string();
        let folder = name
            .strip_prefix("Lifeboat export/")
            .and_then(|n| n.rsplit_once('/'))
            .map(|(d, _)| d.to_string())
            .expect("folder");
        subjects.insert(subject, folder);
        if let Some(a) = parsed
            .attachments()
            .find(|a| a.attachment_name() == Some("huge.bin"))
        {
            assert_eq!(sha(a.contents()), sha(&huge));
            huge_seen = true;
        }
    }
    let missing: Vec<_> = expected
        .iter()
        .filter(|(k, v)| subjects.get(*k) != Some(v))
        .take(5)
        .collect();
    let extra: Vec<_> = subjects
        .iter()
        .filter(|(k, v)| expected.get(*k) != Some(v))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "readpst differs: missing {missing:?}, unexpected {extra:?}"
    );
    assert_eq!(subjects.len(), expected.len());
    assert!(huge_seen, "readpst extracted the 9 MB attachment");

    // pffexport
    let files = pffexport(&path, &dir.path().join("pff"));
    let mut count = 0;
    for (name, raw) in &files {
        if name.ends_with("/OutlookHeaders.txt") {
            let subject = pff_field(&String::from_utf8_lossy(raw), "Subject").expect("subject");
            let folder = name
                .strip_prefix("Top of Personal Folders/")
                .and_then(|n| n.rsplitn(3, '/').nth(2))
                .expect("folder");
            assert_eq!(
                expected.get(&subject).map(String::as_str),
                Some(folder),
                "{name}"
            );
            count += 1;
        }
        if name.ends_with("/Attachments/1_huge.bin") {
            assert_eq!(sha(raw), sha(&huge));
        }
        if name.ends_with("/Attachments/1_medium.bin") {
            assert_eq!(sha(raw), sha(&medium));
        }
    }
    assert_eq!(count, expected.len());
    assert!(files.keys().any(|k| k.ends_with("/Attachments/1_huge.bin")));
}

#[test]
fn split_writer_repeats_folders_and_bounds_each_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limit = 3_000_000u64;
    let paths: Vec<_> = (0..10)
        .map(|n| dir.path().join(format!("part{n}.pst")))
        .collect();
    let open_paths = paths.clone();
    let mut split = SplitPstWriter::new(
        move |n| std::fs::File::create(&open_paths[n]),
        limit,
        "Split",
    )
    .expect("split writer");
    let inbox = split.add_folder(None, "Inbox", "IPF.Note").expect("folder");
    let old = split
        .add_folder(Some(inbox), "Old", "IPF.Note")
        .expect("folder");
    let mut subjects = BTreeSet::new();
    for i in 0..40 {
        let subject = format!("split {i}");
        let m = Message {
            subject: subject.clone(),
            attachments: vec![Attachment {
                name: "x.bin".into(),
                mime_type: String::new(),
                data: vec![i as u8; 200_000],
            }],
            ..Default::default()
        };
        split
            .add_message(if i % 2 == 0 { inbox } else { old }, &m)
            .expect("message");
        subjects.insert(subject);
    }
    let parts = split.finish().expect("finish");
    assert!(
        parts.len() >= 3,
        "8 MB of attachments over 3 MB parts: {}",
        parts.len()
    );
    drop(parts);
    let mut seen = BTreeSet::new();
    for (n, path) in paths.iter().enumerate().filter(|(_, p)| p.exists()) {
        let size = std::fs::metadata(path).expect("size").len();
        assert!(size <= limit, "part {n} is {size} bytes");
        let (folders, items) = outlook_pst_items(path);
        assert!(folders.contains(&"Inbox/Old".to_string()), "{folders:?}");
        for item in items {
            assert!(
                seen.insert(item.text(0x0037).expect("subject")),
                "an item is in one part only"
            );
        }
        let rp = readpst(path, &dir.path().join(format!("rp{n}")));
        assert!(!rp.is_empty());
        let pff = pffexport(path, &dir.path().join(format!("pff{n}")));
        assert!(pff.keys().any(|k| k.ends_with("OutlookHeaders.txt")));
    }
    assert_eq!(seen, subjects);
}

#[test]
fn bad_input_gives_clear_errors() {
    let mut pst = PstWriter::create(std::io::Cursor::new(Vec::new())).expect("writer");
    let inbox = pst
        .add_folder(pst.root(), "Inbox", "IPF.Note")
        .expect("folder");
    assert!(matches!(
        pst.add_folder(pst.root(), "", "IPF.Note"),
        Err(PstError::InvalidItem(_))
    ));
    let start = at("2026-01-01T10:00:00Z");
    let backwards = Appointment {
        subject: "x".into(),
        start,
        end: start - Duration::hours(1),
        ..Default::default()
    };
    assert!(matches!(
        pst.add_appointment(inbox, &backwards),
        Err(PstError::InvalidItem(_))
    ));
    let bad_task = Task {
        subject: "t".into(),
        percent_complete: 1.5,
        ..Default::default()
    };
    assert!(matches!(
        pst.add_task(inbox, &bad_task),
        Err(PstError::InvalidItem(_))
    ));
    let no_days = Appointment {
        subject: "r".into(),
        start,
        end: start + Duration::hours(1),
        recurrence: Some(Recurrence {
            pattern: RecurrencePattern::Weekly { days: 0 },
            interval: 1,
            end: RecurrenceEnd::Never,
            deleted: vec![],
            exceptions: vec![],
        }),
        ..Default::default()
    };
    assert!(matches!(
        pst.add_appointment(inbox, &no_days),
        Err(PstError::InvalidItem(_))
    ));
    let mut other = PstWriter::create(std::io::Cursor::new(Vec::new())).expect("writer");
    let foreign = other
        .add_folder(other.root(), "A", "IPF.Note")
        .expect("folder");
    let _ = other.add_folder(foreign, "B", "IPF.Note").expect("folder");
    let unknown = other.add_folder(foreign, "C", "IPF.Note").expect("folder");
    assert!(matches!(
        pst.add_message(unknown, &Message::default()),
        Err(PstError::UnknownFolder(_))
    ));
    // The writer is still usable after refusing items.
    pst.add_message(
        inbox,
        &Message {
            subject: "still fine".into(),
            ..Default::default()
        },
    )
    .expect("message");
    let bytes = pst.finish().expect("finish").into_inner();
    assert_eq!(&bytes[..4], b"!BDN");
    assert!(SplitPstWriter::new(|_| Ok(std::io::Cursor::new(Vec::new())), 10, "x").is_err());
}

#[test]
fn relative_monthly_and_yearly_series_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nth.pst");
    let file = std::fs::File::create(&path).expect("create");
    let mut pst = PstWriter::create_named(file, "Nth").expect("writer");
    let calendar = pst
        .add_folder(pst.root(), "Calendar", "IPF.Appointment")
        .expect("folder");
    let start = at("2026-01-05T09:00:00Z"); // the first Monday of January
    let board = Appointment {
        subject: "Board meeting".into(),
        start,
        end: start + Duration::hours(1),
        recurrence: Some(Recurrence {
            pattern: RecurrencePattern::MonthlyNth { days: 0b10, nth: 1 },
            interval: 1,
            end: RecurrenceEnd::After(6),
            deleted: vec![],
            exceptions: vec![],
        }),
        ..Default::default()
    };
    let thanks_start = at("2026-11-26T18:00:00Z"); // the fourth Thursday of November
    let dinner = Appointment {
        subject: "Thanksgiving dinner".into(),
        start: thanks_start,
        end: thanks_start + Duration::hours(3),
        recurrence: Some(Recurrence {
            pattern: RecurrencePattern::YearlyNth {
                month: 11,
                days: 0b1_0000,
                nth: 4,
            },
            interval: 1,
            end: RecurrenceEnd::Never,
            deleted: vec![],
            exceptions: vec![],
        }),
        ..Default::default()
    };
    pst.add_appointment(calendar, &board).expect("board");
    pst.add_appointment(calendar, &dinner).expect("dinner");
    pst.finish().expect("finish");

    // outlook-pst: both items, with a recurrence blob.
    let (_, items) = outlook_pst_items(&path);
    for subject in ["Board meeting", "Thanksgiving dinner"] {
        let item = items
            .iter()
            .find(|i| i.text(0x0037).as_deref() == Some(subject))
            .unwrap_or_else(|| panic!("outlook-pst finds {subject}"));
        assert!(matches!(
            item.named.get(&(APPOINTMENT_SET, 0x8216)),
            Some(PropertyValue::Binary(_))
        ));
    }
    // readpst turns the blob into RRULEs: monthly on the first Monday six
    // times, and yearly on the fourth Thursday of November.
    let files = readpst(&path, &dir.path().join("readpst"));
    let events: Vec<String> = files
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .filter(|t| t.contains("BEGIN:VEVENT"))
        .collect();
    let board = events
        .iter()
        .find(|e| e.contains("SUMMARY:Board meeting"))
        .expect("readpst exports the board meeting");
    assert!(board.contains("FREQ=MONTHLY"), "{board}");
    assert!(board.contains("COUNT=6"), "{board}");
    assert!(board.contains("MO"), "{board}");
    let dinner = events
        .iter()
        .find(|e| e.contains("SUMMARY:Thanksgiving dinner"))
        .expect("readpst exports the dinner");
    assert!(dinner.contains("FREQ=YEARLY"), "{dinner}");
    assert!(dinner.contains("TH"), "{dinner}");
    // pffexport reads both.
    let exported = pffexport(&path, &dir.path().join("pff"));
    let texts: Vec<String> = exported
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    for subject in ["Board meeting", "Thanksgiving dinner"] {
        assert!(
            texts.iter().any(|t| t.contains(subject)),
            "pffexport finds {subject}"
        );
    }
}
