//! Mailbox exports: PST (everything, in the mailbox's folder tree), EML
//! (mail), ICS (calendars) and VCF (contacts), from the snapshot layout of
//! [`crate::exchange`].
//!
//! PST items are built from what the snapshot holds: messages from their
//! Graph JSON (addresses, dates, flags) and their stored MIME (bodies,
//! attachments); contacts, events (with recurrence, exceptions and
//! cancelled occurrences) and To Do tasks from their Graph JSON.

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use formats::pst::{self, SplitFolderId, SplitPstWriter};
use futures::StreamExt;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::{Value, json};

use super::{
    ExportCtx, ExportFormat, Output, PREVIOUSLY_DELETED, UniquePaths, base_name, safe_name,
};
use crate::error::{EngineError, Result};
use crate::report::SubService;
use crate::restore::exchange::{parents_first, plan_folders};

/// A failure of one item, as a person reads it.
type ItemResult<T> = std::result::Result<T, String>;

fn str_at<'v>(v: &'v Value, k: &str) -> &'v str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn opt_str(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// How each mailbox sub-service is laid out and shown.
#[derive(Clone, Copy)]
struct Part {
    sub: SubService,
    root: &'static str,
    /// The folder JSON field holding its name.
    name_key: &'static str,
    /// The name of a folder whose stored description is missing.
    fallback: &'static str,
    /// PST container class.
    class: &'static str,
}

const PARTS: [Part; 4] = [
    Part {
        sub: SubService::Mail,
        root: "mail",
        name_key: "displayName",
        fallback: "Mail",
        class: "IPF.Note",
    },
    Part {
        sub: SubService::Contacts,
        root: "contacts",
        name_key: "displayName",
        fallback: "Contacts",
        class: "IPF.Contact",
    },
    Part {
        sub: SubService::Calendar,
        root: "calendar",
        name_key: "name",
        fallback: "Calendar",
        class: "IPF.Appointment",
    },
    Part {
        sub: SubService::Tasks,
        root: "tasks",
        name_key: "displayName",
        fallback: "Tasks",
        class: "IPF.Task",
    },
];

fn part_of(sub: SubService) -> Part {
    PARTS.into_iter().find(|p| p.sub == sub).unwrap_or(PARTS[0])
}

/// The folders of a sub-service in `snap`: (id, Graph JSON).
async fn snapshot_folders(
    ctx: &ExportCtx<'_>,
    snap: &vault::SnapshotInfo,
    root: &str,
    out: &Output<'_>,
) -> Result<Vec<(String, Value)>> {
    let entries = match ctx.vault.list_folder(snap, root).await {
        Ok(e) => e,
        Err(vault::Error::NoSuchEntry(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut found = Vec::new();
    for e in entries {
        if !e.node.is_folder() {
            continue;
        }
        let meta = match serde_json::from_slice::<Value>(e.node.meta()) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                out.note(format!(
                    "the stored description of folder {root}/{} is damaged; its items are \
                     exported into a folder named by its id",
                    e.name
                ));
                json!({"id": e.name, "displayName": e.name, "name": e.name})
            }
        };
        found.push((e.name, meta));
    }
    Ok(found)
}

/// The item names (ids) directly in a snapshot folder.
async fn item_ids(
    ctx: &ExportCtx<'_>,
    snap: &vault::SnapshotInfo,
    path: &str,
) -> Result<Vec<String>> {
    match ctx.vault.list_folder(snap, path).await {
        Ok(entries) => Ok(entries
            .into_iter()
            .filter(|e| !e.node.is_folder())
            .map(|e| e.name)
            .collect()),
        Err(vault::Error::NoSuchEntry(_)) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Whether a mail folder is part of Recoverable Items (hidden, or a
/// Recoverable Items well-known folder).
fn is_recoverable(meta: &Value) -> bool {
    meta.get("isHidden").and_then(Value::as_bool) == Some(true)
        || str_at(meta, "wellKnownName").starts_with("recoverableitems")
}

/// The folders of one sub-service that an export uses, with their names
/// and display paths.
struct FolderPlan {
    part: Part,
    /// Parents before children.
    folders: Vec<(String, Value)>,
    /// Folders whose every item is exported.
    whole: HashSet<String>,
    /// Folders exported (they or something below them is selected).
    needed: HashSet<String>,
    /// Folder id → parent folder id, when the parent is in the snapshot.
    parent: HashMap<String, String>,
}

impl FolderPlan {
    fn name(&self, meta: &Value, id: &str) -> String {
        opt_str(meta, self.part.name_key)
            .or_else(|| opt_str(meta, "displayName"))
            .unwrap_or_else(|| {
                if id.is_empty() {
                    self.part.fallback.to_string()
                } else {
                    id.to_string()
                }
            })
    }

    /// Display names from the top folder down to `id`.
    fn path(&self, id: &str) -> Vec<String> {
        let metas: HashMap<&str, &Value> =
            self.folders.iter().map(|(n, v)| (n.as_str(), v)).collect();
        let mut names = Vec::new();
        let mut cur = Some(id.to_string());
        let mut top = None;
        while let Some(c) = cur {
            if names.len() > 64 {
                break;
            }
            if let Some(m) = metas.get(c.as_str()) {
                names.push(self.name(m, &c));
                top = Some(*m);
            }
            cur = self.parent.get(&c).cloned();
        }
        // The backup keeps Recoverable Items' folders without their parent
        // (Graph reaches them only by their well-known names): they go under
        // a "Recoverable Items" folder, as Outlook shows them.
        if top.is_some_and(|m| str_at(m, "wellKnownName").starts_with("recoverableitems")) {
            names.push("Recoverable Items".to_string());
        }
        names.reverse();
        names
    }
}

/// Plans the folders of `part` in the exported snapshot: Recoverable Items
/// are left out unless asked for (legal holds) or named by the selection.
async fn plan(ctx: &ExportCtx<'_>, part: Part, out: &Output<'_>) -> Result<FolderPlan> {
    let all = snapshot_folders(ctx, ctx.snapshot, part.root, out).await?;
    let folders = keep_folders(ctx, part, all, Some(out));
    let (whole, needed) = plan_folders(ctx.selection, part.root, &folders);
    let ids: HashSet<&str> = folders.iter().map(|(n, _)| n.as_str()).collect();
    let parent = folders
        .iter()
        .filter_map(|(n, v)| {
            let p = str_at(v, "parentFolderId");
            ids.contains(p).then(|| (n.clone(), p.to_string()))
        })
        .collect();
    Ok(FolderPlan {
        part,
        folders: parents_first(&folders),
        whole,
        needed,
        parent,
    })
}

/// The folders of `part` an export may use: mail in Recoverable Items only
/// with `include_legal_holds` or when the selection names them.
fn keep_folders(
    ctx: &ExportCtx<'_>,
    part: Part,
    all: Vec<(String, Value)>,
    out: Option<&Output<'_>>,
) -> Vec<(String, Value)> {
    if part.sub != SubService::Mail || ctx.options.include_legal_holds {
        return all;
    }
    let ids: HashMap<&str, &Value> = all.iter().map(|(n, v)| (n.as_str(), v)).collect();
    let recoverable = |id: &str| {
        let mut cur = id;
        for _ in 0..64 {
            let Some(m) = ids.get(cur) else { return false };
            if is_recoverable(m) {
                return true;
            }
            cur = str_at(m, "parentFolderId");
        }
        false
    };
    let named = |id: &str| {
        let prefix = format!("mail/{id}");
        ctx.selection
            .folders
            .iter()
            .chain(&ctx.selection.items)
            .any(|p| {
                let p = p.trim_matches('/');
                p == prefix || p.starts_with(&format!("{prefix}/"))
            })
    };
    let drop: HashSet<String> = all
        .iter()
        .filter(|(n, _)| recoverable(n) && !named(n))
        .map(|(n, _)| n.clone())
        .collect();
    if !drop.is_empty()
        && let Some(out) = out
    {
        out.note(format!(
            "{} Recoverable Items folder(s) were left out; choose \"include legal holds\" to \
             export them",
            drop.len()
        ));
    }
    all.into_iter().filter(|(n, _)| !drop.contains(n)).collect()
}

/// The items of a planned folder that the export takes.
async fn selected_ids(ctx: &ExportCtx<'_>, plan: &FolderPlan, fid: &str) -> Result<Vec<String>> {
    let path = format!("{}/{fid}", plan.part.root);
    let whole = plan.whole.contains(fid);
    Ok(item_ids(ctx, ctx.snapshot, &path)
        .await?
        .into_iter()
        .filter(|id| whole || ctx.selection.covers(&format!("{path}/{id}")))
        .collect())
}

pub(crate) async fn export_mailbox(ctx: &ExportCtx<'_>, out: &Output<'_>) -> Result<()> {
    match ctx.options.format {
        ExportFormat::Pst => export_pst(ctx, out).await,
        ExportFormat::Eml => export_eml(ctx, out).await,
        ExportFormat::Ics => export_ics(ctx, out).await,
        ExportFormat::Vcf => export_vcf(ctx, out).await,
        ExportFormat::Zip => Err(EngineError::Invalid(
            "a mailbox cannot be exported as ZIP".into(),
        )),
    }
}

// ---------------------------------------------------------------- reading

/// A stored message: its Graph JSON and MIME.
async fn read_message(
    ctx: &ExportCtx<'_>,
    snap: &vault::SnapshotInfo,
    path: &str,
) -> ItemResult<(Value, Vec<u8>)> {
    let node = ctx
        .vault
        .lookup(snap, path)
        .await
        .map_err(|e| format!("could not be read from the backup: {e}"))?;
    let meta: Value = serde_json::from_slice(node.meta())
        .map_err(|e| format!("the stored message description is damaged: {e}"))?;
    if !meta.is_object() {
        return Err("the stored message description is damaged".into());
    }
    let mime = ctx
        .vault
        .read_item_bytes(snap, path)
        .await
        .map_err(|e| format!("could not be read from the backup: {e}"))?;
    Ok((meta, mime))
}

/// A stored JSON item (contact, event, task).
async fn read_json(
    ctx: &ExportCtx<'_>,
    snap: &vault::SnapshotInfo,
    path: &str,
) -> ItemResult<Value> {
    let bytes = ctx
        .vault
        .read_item_bytes(snap, path)
        .await
        .map_err(|e| format!("could not be read from the backup: {e}"))?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("the stored item is not a JSON object".into()),
        Err(e) => Err(format!("the stored item is damaged: {e}")),
    }
}

fn graph_time(v: &Value, k: &str) -> Option<DateTime<Utc>> {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn mailbox_of(v: &Value) -> Option<pst::Mailbox> {
    let e = v.get("emailAddress")?;
    let address = str_at(e, "address");
    let name = str_at(e, "name");
    if address.is_empty() && name.is_empty() {
        return None;
    }
    Some(pst::Mailbox::new(
        if name.is_empty() { address } else { name },
        address,
    ))
}

fn mailboxes(v: &Value, k: &str) -> Vec<pst::Mailbox> {
    v.get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(mailbox_of)
        .collect()
}

fn importance(v: &Value) -> pst::Importance {
    match str_at(v, "importance") {
        "low" => pst::Importance::Low,
        "high" => pst::Importance::High,
        _ => pst::Importance::Normal,
    }
}

fn from_parsed(a: Option<&mail_parser::Address<'_>>) -> Vec<pst::Mailbox> {
    a.into_iter()
        .flat_map(|a| a.iter())
        .filter_map(|x| {
            let address = x.address().unwrap_or_default().to_string();
            let name = x
                .name()
                .map(str::to_string)
                .unwrap_or_else(|| address.clone());
            (!address.is_empty() || !name.is_empty()).then(|| pst::Mailbox::new(name, address))
        })
        .collect()
}

/// A PST message from a stored message's Graph JSON and MIME.
fn message_from(meta: &Value, mime: &[u8]) -> ItemResult<pst::Message> {
    let parsed = MessageParser::default()
        .parse(mime)
        .ok_or("the stored MIME content cannot be read")?;
    let body_text = parsed.body_text(0).map(|b| b.into_owned());
    let body_html = if parsed
        .html_part(0)
        .is_some_and(|p| p.is_content_type("text", "html"))
    {
        parsed.body_html(0).map(|b| b.into_owned())
    } else {
        None
    };
    let mut attachments = Vec::new();
    for part in parsed.attachments() {
        let name = part
            .attachment_name()
            .map(str::to_string)
            .or_else(|| {
                part.message()
                    .and_then(|m| m.subject())
                    .map(|s| format!("{s}.eml"))
            })
            .unwrap_or_else(|| "attachment".into());
        let mime_type = part
            .content_type()
            .map(|c| match c.subtype() {
                Some(s) => format!("{}/{s}", c.ctype()),
                None => c.ctype().to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into());
        attachments.push(pst::Attachment {
            name,
            mime_type,
            data: part.contents().to_vec(),
        });
    }
    let subject = opt_str(meta, "subject")
        .or_else(|| parsed.subject().map(str::to_string))
        .unwrap_or_default();
    let from = meta
        .get("from")
        .and_then(mailbox_of)
        .or_else(|| from_parsed(parsed.from()).into_iter().next());
    let mut to = mailboxes(meta, "toRecipients");
    if to.is_empty() {
        to = from_parsed(parsed.to());
    }
    let mut cc = mailboxes(meta, "ccRecipients");
    if cc.is_empty() {
        cc = from_parsed(parsed.cc());
    }
    let bcc = mailboxes(meta, "bccRecipients");
    let flagged = meta
        .pointer("/flag/flagStatus")
        .and_then(Value::as_str)
        .is_some_and(|s| s == "flagged");
    Ok(pst::Message {
        message_class: None,
        subject,
        from,
        to,
        cc,
        bcc,
        sent: graph_time(meta, "sentDateTime").or_else(|| {
            parsed
                .date()
                .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
        }),
        received: graph_time(meta, "receivedDateTime"),
        body_text,
        body_html,
        read: meta.get("isRead").and_then(Value::as_bool).unwrap_or(true),
        flagged,
        importance: importance(meta),
        internet_message_id: opt_str(meta, "internetMessageId")
            .or_else(|| parsed.message_id().map(|m| format!("<{m}>"))),
        attachments,
    })
}

fn first_string(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

/// A PST contact from Graph contact JSON.
fn contact_from(v: &Value) -> pst::Contact {
    let emails: Vec<String> = v
        .get("emailAddresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| opt_str(e, "address"))
        .collect();
    let given = opt_str(v, "givenName");
    let surname = opt_str(v, "surname");
    let joined = [given.clone(), surname.clone()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    let display_name = opt_str(v, "displayName")
        .or_else(|| (!joined.is_empty()).then_some(joined))
        .or_else(|| opt_str(v, "companyName"))
        .or_else(|| emails.first().cloned())
        .unwrap_or_else(|| "(no name)".into());
    pst::Contact {
        display_name,
        given_name: given,
        surname,
        company: opt_str(v, "companyName"),
        job_title: opt_str(v, "jobTitle"),
        emails,
        business_phone: first_string(v, "businessPhones"),
        mobile_phone: opt_str(v, "mobilePhone"),
        home_phone: first_string(v, "homePhones"),
        notes: opt_str(v, "personalNotes"),
    }
}

/// The plain text of a Graph `body` ({contentType, content}).
fn body_text(v: &Value) -> Option<String> {
    let content = v.pointer("/body/content").and_then(Value::as_str)?;
    let text = if v
        .pointer("/body/contentType")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("html"))
    {
        nanohtml2text::html2text(content)
    } else {
        content.to_string()
    };
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The date a cancelled occurrence id ("OID.<master id>.<yyyy-mm-dd>") names.
fn cancelled_date(oid: &str) -> Option<NaiveDate> {
    oid.rsplit('.')
        .next()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

fn week_days(pattern: &Value) -> u8 {
    const DAYS: [&str; 7] = [
        "sunday",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
    ];
    pattern
        .get("daysOfWeek")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|d| DAYS.iter().position(|x| x.eq_ignore_ascii_case(d)))
        .fold(0u8, |bits, i| bits | (1 << i))
}

/// The PST recurrence of a series master, or why it cannot be written.
fn recurrence_from(ev: &Value, start: DateTime<Utc>) -> ItemResult<pst::Recurrence> {
    let r = ev.get("recurrence").ok_or("the series has no recurrence")?;
    let pattern = r.get("pattern").ok_or("the recurrence has no pattern")?;
    let num = |k: &str| pattern.get(k).and_then(Value::as_u64).unwrap_or(0);
    let interval = num("interval").max(1) as u32;
    let start_date = formats::ics::local_date(ev, start).map_err(|e| e.to_string())?;
    let kind = str_at(pattern, "type");
    let pattern = match kind {
        "daily" => pst::RecurrencePattern::Daily,
        "weekly" => {
            let days = week_days(pattern);
            pst::RecurrencePattern::Weekly {
                days: if days == 0 {
                    1 << chrono::Datelike::weekday(&start_date).num_days_from_sunday()
                } else {
                    days
                },
            }
        }
        "absoluteMonthly" => pst::RecurrencePattern::Monthly {
            day: num("dayOfMonth").clamp(1, 31) as u8,
        },
        "absoluteYearly" => pst::RecurrencePattern::Yearly {
            month: num("month").clamp(1, 12) as u8,
            day: num("dayOfMonth").clamp(1, 31) as u8,
        },
        "relativeMonthly" | "relativeYearly" => {
            let days = week_days(pattern);
            if days == 0 {
                return Err(format!("its {kind} recurrence names no days of the week"));
            }
            // Graph's weekIndex: first..fourth, last (default first).
            let nth = match str_at(pattern, "index") {
                "second" => 2,
                "third" => 3,
                "fourth" => 4,
                "last" => 5,
                _ => 1,
            };
            if kind == "relativeMonthly" {
                pst::RecurrencePattern::MonthlyNth { days, nth }
            } else {
                pst::RecurrencePattern::YearlyNth {
                    month: num("month").clamp(1, 12) as u8,
                    days,
                    nth,
                }
            }
        }
        other => {
            return Err(format!(
                "its recurrence pattern {other:?} cannot be written to a PST"
            ));
        }
    };
    let range = r.get("range").cloned().unwrap_or(Value::Null);
    let end = match str_at(&range, "type") {
        "endDate" => NaiveDate::parse_from_str(str_at(&range, "endDate"), "%Y-%m-%d")
            .map(pst::RecurrenceEnd::On)
            .unwrap_or(pst::RecurrenceEnd::Never),
        "numbered" => pst::RecurrenceEnd::After(
            range
                .get("numberOfOccurrences")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1) as u32,
        ),
        _ => pst::RecurrenceEnd::Never,
    };
    let mut deleted: Vec<NaiveDate> = ev
        .get("cancelledOccurrences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(cancelled_date)
        .collect();
    deleted.sort();
    deleted.dedup();
    let mut exceptions = Vec::new();
    for x in ev
        .get("exceptionOccurrences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(original) = graph_time(x, "originalStart") else {
            continue;
        };
        let original_date = formats::ics::local_date(ev, original).map_err(|e| e.to_string())?;
        let xs = formats::ics::graph_time_utc(x, "start").map_err(|e| e.to_string())?;
        let xe = formats::ics::graph_time_utc(x, "end").map_err(|e| e.to_string())?;
        exceptions.push(pst::Exception {
            original_date,
            start: xs,
            end: xe,
            subject: opt_str(x, "subject"),
            location: x
                .pointer("/location/displayName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        });
    }
    exceptions.sort_by_key(|x| x.original_date);
    exceptions.dedup_by_key(|x| x.original_date);
    Ok(pst::Recurrence {
        pattern,
        interval,
        end,
        deleted,
        exceptions,
    })
}

/// A PST appointment from Graph event JSON (series masters with their
/// recurrence, exceptions and cancelled occurrences). A series whose
/// pattern PST cannot hold is written as its first occurrence, with a note
/// in the returned detail.
fn appointment_from(ev: &Value) -> ItemResult<(pst::Appointment, Option<String>)> {
    let start = formats::ics::graph_time_utc(ev, "start").map_err(|e| e.to_string())?;
    let end = formats::ics::graph_time_utc(ev, "end").map_err(|e| e.to_string())?;
    let (recurrence, detail) = if str_at(ev, "type") == "seriesMaster" {
        match recurrence_from(ev, start) {
            Ok(r) => (Some(r), None),
            Err(why) => (
                None,
                Some(format!("exported as a single appointment: {why}")),
            ),
        }
    } else {
        (None, None)
    };
    Ok((
        pst::Appointment {
            subject: str_at(ev, "subject").to_string(),
            body: body_text(ev),
            location: ev
                .pointer("/location/displayName")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            start,
            end,
            all_day: ev.get("isAllDay").and_then(Value::as_bool).unwrap_or(false),
            organizer: ev.get("organizer").and_then(mailbox_of),
            attendees: mailboxes(ev, "attendees"),
            recurrence,
        },
        detail,
    ))
}

/// A PST task from To Do task JSON.
fn task_from(v: &Value) -> pst::Task {
    let when = |k: &'static str| {
        v.get(k)
            .filter(|x| x.is_object())
            .and_then(|_| formats::ics::graph_time_utc(v, k).ok())
    };
    let status = match str_at(v, "status") {
        "inProgress" => pst::TaskStatus::InProgress,
        "completed" => pst::TaskStatus::Completed,
        "waitingOnOthers" => pst::TaskStatus::WaitingOnOthers,
        "deferred" => pst::TaskStatus::Deferred,
        _ => pst::TaskStatus::NotStarted,
    };
    pst::Task {
        subject: str_at(v, "title").to_string(),
        body: body_text(v),
        start: when("startDateTime"),
        due: when("dueDateTime"),
        percent_complete: if status == pst::TaskStatus::Completed {
            1.0
        } else {
            0.0
        },
        status,
        importance: importance(v),
    }
}

fn item_name(sub: SubService, v: &Value) -> String {
    let n = match sub {
        SubService::Mail | SubService::Calendar => str_at(v, "subject"),
        SubService::Contacts => str_at(v, "displayName"),
        _ => str_at(v, "title"),
    };
    if n.is_empty() {
        "(no subject)".to_string()
    } else {
        n.to_string()
    }
}

// ---------------------------------------------------------------- PST

type PartWriter = BufWriter<std::fs::File>;

struct Pst<'o, F: FnMut(usize) -> std::io::Result<PartWriter>> {
    writer: SplitPstWriter<PartWriter, F>,
    /// Items written into each part.
    items: Vec<u64>,
    out: &'o Output<'o>,
}

impl<F: FnMut(usize) -> std::io::Result<PartWriter>> Pst<'_, F> {
    /// Counts an item into the part that holds it.
    fn counted(&mut self, written: std::result::Result<(), pst::PstError>) -> ItemResult<()> {
        written.map_err(|e| format!("could not be written to the PST: {e}"))?;
        let part = self.writer.part_count().saturating_sub(1);
        if self.items.len() <= part {
            self.items.resize(part + 1, 0);
        }
        self.items[part] += 1;
        Ok(())
    }

    /// Reads one stored item of `sub` from `snap` and adds it to `folder`.
    async fn add_item(
        &mut self,
        ctx: &ExportCtx<'_>,
        snap: &vault::SnapshotInfo,
        sub: SubService,
        path: &str,
        folder: SplitFolderId,
    ) {
        let mut detail = None;
        let result: ItemResult<(String, u64)> = async {
            if sub == SubService::Mail {
                let (meta, mime) = read_message(ctx, snap, path).await?;
                let name = item_name(sub, &meta);
                let m = message_from(&meta, &mime).map_err(|e| format!("{name}: {e}"))?;
                let w = self.writer.add_message(folder, &m);
                self.counted(w)?;
                return Ok((name, mime.len() as u64));
            }
            let v = read_json(ctx, snap, path).await?;
            let name = item_name(sub, &v);
            let w = match sub {
                SubService::Contacts => self.writer.add_contact(folder, &contact_from(&v)),
                SubService::Calendar => {
                    let (a, why) = appointment_from(&v).map_err(|e| format!("{name}: {e}"))?;
                    detail = why;
                    self.writer.add_appointment(folder, &a)
                }
                _ => self.writer.add_task(folder, &task_from(&v)),
            };
            self.counted(w)?;
            Ok((name, 0))
        }
        .await;
        match result {
            Ok((name, bytes)) => self.out.item(
                path,
                &name,
                crate::restore::ItemOutcome::Exported,
                detail,
                bytes,
            ),
            Err(why) => self
                .out
                .failed(path, path.rsplit('/').next().unwrap_or(path), why),
        }
    }
}

fn io_error(e: EngineError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

async fn export_pst(ctx: &ExportCtx<'_>, out: &Output<'_>) -> Result<()> {
    let base = base_name(ctx);
    let dir = ctx.staging_dir.to_path_buf();
    let part_name = |n: usize| format!("{base} ({}).pst", n + 1);
    let open_part = |n: usize| -> std::io::Result<PartWriter> {
        let (file, _) = out.create(&part_name(n)).map_err(io_error)?;
        Ok(BufWriter::with_capacity(1 << 20, file))
    };
    let writer = SplitPstWriter::new(open_part, ctx.options.split_limit(), ctx.entity_name)
        .map_err(|e| EngineError::Invalid(format!("the PST cannot be started: {e}")))?;
    let mut pst = Pst {
        writer,
        items: Vec::new(),
        out,
    };
    let pst_err = |e: pst::PstError| EngineError::Invalid(format!("PST output failed: {e}"));

    // Ids of every item the current snapshot holds (in the folders the
    // export may use), to tell which items of earlier snapshots were deleted.
    let mut present: HashSet<String> = HashSet::new();
    for part in PARTS {
        if !ctx.selection.touches(part.sub) {
            continue;
        }
        ctx.cancel.check()?;
        ctx.progress.set_stage(part.root);
        let plan = plan(ctx, part, out).await?;
        let mut mapped: HashMap<String, SplitFolderId> = HashMap::new();
        let mut recoverable_root = None;
        for (fid, meta) in &plan.folders {
            if ctx.options.include_deleted {
                let path = format!("{}/{fid}", part.root);
                for id in item_ids(ctx, ctx.snapshot, &path).await? {
                    present.insert(format!("{}/{id}", part.root));
                }
            }
            if !plan.needed.contains(fid) {
                continue;
            }
            let mut parent = plan.parent.get(fid).and_then(|p| mapped.get(p)).copied();
            if parent.is_none() && str_at(meta, "wellKnownName").starts_with("recoverableitems") {
                // Stored without its parent (see FolderPlan::path).
                let root = match recoverable_root {
                    Some(r) => r,
                    None => {
                        let r = pst
                            .writer
                            .add_folder(None, "Recoverable Items", part.class)
                            .map_err(pst_err)?;
                        recoverable_root = Some(r);
                        r
                    }
                };
                parent = Some(root);
            }
            let name = plan.name(meta, fid);
            // The mailbox's top-level Deleted Items becomes the PST's own
            // (every PST has one), rather than a second folder of that name.
            let folder = if part.root == "mail"
                && !plan.parent.contains_key(fid)
                && name.eq_ignore_ascii_case("Deleted Items")
            {
                pst.writer.deleted_items()
            } else {
                pst.writer
                    .add_folder(parent, &name, part.class)
                    .map_err(pst_err)?
            };
            mapped.insert(fid.clone(), folder);
        }
        for (fid, _) in &plan.folders {
            let Some(folder) = mapped.get(fid).copied() else {
                continue;
            };
            let path = format!("{}/{fid}", part.root);
            for id in selected_ids(ctx, &plan, fid).await? {
                ctx.cancel.check()?;
                pst.add_item(ctx, ctx.snapshot, part.sub, &format!("{path}/{id}"), folder)
                    .await;
            }
        }
    }
    if ctx.options.include_deleted {
        previously_deleted(ctx, out, &mut pst, &present).await?;
    }
    ctx.cancel.check()?;
    let parts = pst.writer.finish().map_err(pst_err)?;
    let count = parts.len();
    for (n, w) in parts.into_iter().enumerate() {
        w.into_inner()
            .map_err(|e| EngineError::Invalid(format!("PST output failed: {e}")))?
            .sync_all()
            .map_err(|e| EngineError::Invalid(format!("PST output failed: {e}")))?;
        let path: PathBuf = dir.join(part_name(n));
        let path = if count == 1 {
            out.rename(&path, &format!("{base}.pst"))?
        } else {
            path
        };
        out.finished(path, pst.items.get(n).copied().unwrap_or(0))?;
    }
    if count > 1 {
        out.note(format!(
            "the export was split into {count} PST files of at most {} bytes each",
            ctx.options.split_limit()
        ));
    }
    Ok(())
}

/// Adds the items earlier snapshots held that the exported one does not,
/// each in its latest backed-up version (earlier snapshots come newest
/// first), under "Previously deleted items" (mail directly, other kinds in
/// a sub-folder per kind).
async fn previously_deleted<F: FnMut(usize) -> std::io::Result<PartWriter>>(
    ctx: &ExportCtx<'_>,
    out: &Output<'_>,
    pst: &mut Pst<'_, F>,
    present: &HashSet<String>,
) -> Result<()> {
    let pst_err = |e: pst::PstError| EngineError::Invalid(format!("PST output failed: {e}"));
    let mut seen: HashSet<String> = HashSet::new();
    let mut top: Option<SplitFolderId> = None;
    let mut kinds: HashMap<&'static str, SplitFolderId> = HashMap::new();
    let mut found = 0u64;
    for snap in ctx.earlier {
        for part in PARTS {
            if !ctx.selection.touches(part.sub) {
                continue;
            }
            ctx.cancel.check()?;
            let all = snapshot_folders(ctx, snap, part.root, out).await?;
            let folders = keep_folders(ctx, part, all, None);
            let (whole, _) = plan_folders(ctx.selection, part.root, &folders);
            for (fid, _) in &folders {
                let path = format!("{}/{fid}", part.root);
                for id in item_ids(ctx, snap, &path).await? {
                    let key = format!("{}/{id}", part.root);
                    let item_path = format!("{path}/{id}");
                    if present.contains(&key)
                        || seen.contains(&key)
                        || !(whole.contains(fid) || ctx.selection.covers(&item_path))
                    {
                        continue;
                    }
                    ctx.cancel.check()?;
                    seen.insert(key);
                    let top_id = match top {
                        Some(t) => t,
                        None => {
                            let t = pst
                                .writer
                                .add_folder(None, PREVIOUSLY_DELETED, "IPF.Note")
                                .map_err(pst_err)?;
                            top = Some(t);
                            t
                        }
                    };
                    let folder = if part.sub == SubService::Mail {
                        top_id
                    } else {
                        match kinds.get(part.root) {
                            Some(f) => *f,
                            None => {
                                let f = pst
                                    .writer
                                    .add_folder(Some(top_id), part.fallback, part.class)
                                    .map_err(pst_err)?;
                                kinds.insert(part.root, f);
                                f
                            }
                        }
                    };
                    pst.add_item(ctx, snap, part.sub, &item_path, folder).await;
                    found += 1;
                }
            }
        }
    }
    if found > 0 {
        out.note(format!(
            "{found} item(s) that earlier backups held and this one no longer does are in \
             \"{PREVIOUSLY_DELETED}\""
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- EML

/// Writes a stored item's bytes, streamed from the vault, into `w`.
async fn copy_item(
    ctx: &ExportCtx<'_>,
    path: &str,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> ItemResult<u64> {
    let (_, mut stream) = ctx
        .vault
        .read_item(ctx.snapshot, path)
        .await
        .map_err(|e| format!("could not be read from the backup: {e}"))?;
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("could not be read from the backup: {e}"))?;
        write(&chunk).map_err(|e| format!("could not be written: {e}"))?;
        n += chunk.len() as u64;
    }
    Ok(n)
}

/// The subject of a stored message, from its Graph JSON (or its id when
/// that is damaged).
async fn subject_of(ctx: &ExportCtx<'_>, path: &str) -> String {
    match ctx.vault.lookup(ctx.snapshot, path).await {
        Ok(node) => serde_json::from_slice::<Value>(node.meta())
            .ok()
            .and_then(|v| opt_str(&v, "subject"))
            .unwrap_or_else(|| "(no subject)".into()),
        Err(_) => "(no subject)".into(),
    }
}

pub(super) fn zip_err(e: formats::zip::ZipExportError) -> String {
    format!("could not be written to the ZIP: {e}")
}

/// A ZIP output file being written.
pub(super) struct ZipOut {
    pub(super) zip: formats::zip::ZipExport<BufWriter<std::fs::File>>,
    path: PathBuf,
    pub(super) paths: UniquePaths,
    pub(super) items: u64,
}

impl ZipOut {
    pub(super) fn create(out: &Output<'_>, name: &str) -> Result<Self> {
        let (file, path) = out.create(name)?;
        Ok(Self {
            zip: formats::zip::ZipExport::new(BufWriter::with_capacity(1 << 20, file)),
            path,
            paths: UniquePaths::default(),
            items: 0,
        })
    }

    pub(super) fn add_bytes(
        &mut self,
        path: &str,
        data: &[u8],
        modified: DateTime<Utc>,
    ) -> ItemResult<()> {
        let path = self.paths.claim(path);
        self.zip
            .add_file(&path, Some(data.len() as u64), modified, data)
            .map_err(zip_err)?;
        self.items += 1;
        Ok(())
    }

    pub(super) fn finish(self, out: &Output<'_>) -> Result<()> {
        let w = self
            .zip
            .finish()
            .map_err(|e| EngineError::Invalid(format!("ZIP output failed: {e}")))?;
        w.into_inner()
            .map_err(|e| EngineError::Invalid(format!("ZIP output failed: {e}")))?
            .sync_all()
            .map_err(|e| EngineError::Invalid(format!("ZIP output failed: {e}")))?;
        out.finished(self.path, self.items)
    }
}

async fn export_eml(ctx: &ExportCtx<'_>, out: &Output<'_>) -> Result<()> {
    let plan = plan(ctx, part_of(SubService::Mail), out).await?;
    // (snapshot path, folder path in the archive)
    let mut jobs: Vec<(String, String)> = Vec::new();
    for (fid, _) in &plan.folders {
        if !plan.needed.contains(fid) {
            continue;
        }
        let folder = plan
            .path(fid)
            .iter()
            .map(|n| safe_name(n))
            .collect::<Vec<_>>()
            .join("/");
        for id in selected_ids(ctx, &plan, fid).await? {
            jobs.push((format!("mail/{fid}/{id}"), folder.clone()));
        }
    }
    ctx.progress.set_total(jobs.len() as u64, 0);
    let stamp = ctx.options.requested_at.format("%Y-%m-%d %H%M").to_string();
    if jobs.len() == 1 {
        let (path, _) = &jobs[0];
        let subject = subject_of(ctx, path).await;
        let (file, file_path) = out.create(&formats::eml::eml_file_name(&subject, &stamp))?;
        let mut w = BufWriter::new(file);
        match copy_item(ctx, path, |c| w.write_all(c)).await {
            Ok(n) => {
                w.flush()
                    .map_err(|e| EngineError::Invalid(format!("EML output failed: {e}")))?;
                out.exported(path, &subject, n);
                out.finished(file_path, 1)?;
            }
            Err(why) => {
                out.failed(path, &subject, why);
                drop(w);
                let _ = std::fs::remove_file(&file_path);
            }
        }
        return Ok(());
    }
    let mut zip = ZipOut::create(out, &format!("{}.zip", base_name(ctx)))?;
    for (n, (path, folder)) in jobs.iter().enumerate() {
        ctx.cancel.check()?;
        let subject = subject_of(ctx, path).await;
        let name = formats::eml::eml_file_name(&subject, &(n + 1).to_string());
        let entry = zip.paths.claim(&if folder.is_empty() {
            name
        } else {
            format!("{folder}/{name}")
        });
        // The MIME is streamed into the entry, never held whole.
        let begun = zip
            .zip
            .begin_file(&entry, None, ctx.options.requested_at)
            .map_err(zip_err);
        let result = match begun {
            Ok(()) => {
                let z = &mut zip.zip;
                copy_item(ctx, path, |c| {
                    z.write_chunk(c)
                        .map_err(|e| std::io::Error::other(e.to_string()))
                })
                .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(bytes) => {
                zip.items += 1;
                out.exported(path, &subject, bytes);
            }
            Err(why) => out.failed(path, &subject, why),
        }
    }
    zip.finish(out)
}

// ---------------------------------------------------------------- ICS / VCF

/// A stored event as the separate Graph events an iCalendar is built from:
/// the event (a series master without its embedded lists), its exception
/// occurrences and its cancelled occurrences.
pub(super) fn flatten_event(ev: &Value) -> Vec<Value> {
    let mut master = ev.clone();
    if let Value::Object(m) = &mut master {
        m.remove("exceptionOccurrences");
        m.remove("cancelledOccurrences");
    }
    let mut out = vec![master];
    if str_at(ev, "type") != "seriesMaster" {
        return out;
    }
    let id = str_at(ev, "id").to_string();
    for x in ev
        .get("exceptionOccurrences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut x = x.clone();
        if let Value::Object(m) = &mut x {
            m.insert("type".into(), json!("exception"));
            m.insert("seriesMasterId".into(), json!(id));
        }
        out.push(x);
    }
    // The occurrence's original start: the master's local start time on
    // the cancelled date, in the master's zone.
    let local_time = ev
        .pointer("/start/dateTime")
        .and_then(Value::as_str)
        .and_then(|s| {
            NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").ok()
        })
        .map(|t| t.time());
    let zone = ev
        .pointer("/start/timeZone")
        .cloned()
        .unwrap_or(json!("UTC"));
    for oid in ev
        .get("cancelledOccurrences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let (Some(date), Some(time)) = (cancelled_date(oid), local_time) else {
            continue;
        };
        let probe = json!({"id": id, "start": {
            "dateTime": date.and_time(time).format("%Y-%m-%dT%H:%M:%S").to_string(),
            "timeZone": zone,
        }});
        let Ok(original) = formats::ics::graph_time_utc(&probe, "start") else {
            continue;
        };
        out.push(json!({
            "id": oid,
            "type": "occurrence",
            "isCancelled": true,
            "seriesMasterId": id,
            "originalStart": original.to_rfc3339(),
        }));
    }
    out
}

/// One file per container (calendar or contact folder): its name and the
/// items it will hold.
struct Container {
    name: String,
    items: Vec<Value>,
}

/// Reads the selected JSON items of `sub`, per folder, checking each with
/// `usable` (a damaged item is a Failed entry).
async fn read_containers(
    ctx: &ExportCtx<'_>,
    out: &Output<'_>,
    sub: SubService,
    usable: impl Fn(&Value) -> ItemResult<Vec<Value>>,
) -> Result<Vec<Container>> {
    let plan = plan(ctx, part_of(sub), out).await?;
    let mut found = Vec::new();
    for (fid, _) in &plan.folders {
        if !plan.needed.contains(fid) {
            continue;
        }
        let ids = selected_ids(ctx, &plan, fid).await?;
        if ids.is_empty() {
            continue;
        }
        let mut items = Vec::new();
        for id in ids {
            ctx.cancel.check()?;
            let path = format!("{}/{fid}/{id}", plan.part.root);
            match read_json(ctx, ctx.snapshot, &path).await.and_then(|v| {
                let name = item_name(sub, &v);
                usable(&v)
                    .map(|x| (name.clone(), x))
                    .map_err(|e| format!("{name}: {e}"))
            }) {
                Ok((name, parts)) => {
                    out.exported(&path, &name, 0);
                    items.extend(parts);
                }
                Err(why) => out.failed(&path, &id, why),
            }
        }
        found.push(Container {
            name: plan.path(fid).join(" - "),
            items,
        });
    }
    Ok(found)
}

/// Writes one text file per container: a single file "<base>.<ext>", or a
/// ZIP of "<container>.<ext>" files when there are several.
fn write_texts(
    ctx: &ExportCtx<'_>,
    out: &Output<'_>,
    ext: &str,
    texts: Vec<(String, String, u64)>,
) -> Result<()> {
    if texts.is_empty() {
        return Ok(());
    }
    let fail = |e: std::io::Error| EngineError::Invalid(format!("output failed: {e}"));
    if texts.len() == 1 {
        let (_, text, items) = &texts[0];
        let (mut file, path) = out.create(&format!("{}.{ext}", base_name(ctx)))?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        return out.finished(path, *items);
    }
    let mut zip = ZipOut::create(out, &format!("{}.zip", base_name(ctx)))?;
    for (name, text, items) in texts {
        zip.add_bytes(
            &format!("{}.{ext}", safe_name(&name)),
            text.as_bytes(),
            ctx.options.requested_at,
        )
        .map_err(EngineError::Invalid)?;
        // The entry counts as the items it holds, not as one.
        zip.items = zip.items - 1 + items;
    }
    zip.finish(out)
}

async fn export_ics(ctx: &ExportCtx<'_>, out: &Output<'_>) -> Result<()> {
    let stamp = ctx.options.requested_at;
    let cals = read_containers(ctx, out, SubService::Calendar, |v| {
        let events = flatten_event(v);
        formats::ics::events_to_ics(&events, stamp).map_err(|e| e.to_string())?;
        Ok(events)
    })
    .await?;
    let mut texts = Vec::new();
    for c in cals {
        let count = c
            .items
            .iter()
            .filter(|e| !matches!(str_at(e, "type"), "exception" | "occurrence"))
            .count() as u64;
        let text = formats::ics::events_to_ics(&c.items, stamp)
            .map_err(|e| EngineError::Invalid(format!("calendar {}: {e}", c.name)))?;
        texts.push((c.name, text, count));
    }
    write_texts(ctx, out, "ics", texts)
}

async fn export_vcf(ctx: &ExportCtx<'_>, out: &Output<'_>) -> Result<()> {
    let folders = read_containers(ctx, out, SubService::Contacts, |v| {
        formats::vcf::contact_to_vcard(v).map_err(|e| e.to_string())?;
        Ok(vec![v.clone()])
    })
    .await?;
    let mut texts = Vec::new();
    for f in folders {
        let text = formats::vcf::contacts_to_vcf(&f.items)
            .map_err(|e| EngineError::Invalid(format!("contacts {}: {e}", f.name)))?;
        texts.push((f.name, text, f.items.len() as u64));
    }
    write_texts(ctx, out, "vcf", texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_flattens_into_master_exceptions_and_cancellations() {
        let ev = json!({
            "id": "M", "type": "seriesMaster", "subject": "Standup",
            "start": {"dateTime": "2026-01-05T09:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-01-05T09:15:00.0000000", "timeZone": "W. Europe Standard Time"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                           "range": {"type": "numbered", "numberOfOccurrences": 5, "startDate": "2026-01-05"}},
            "cancelledOccurrences": ["OID.M.2026-01-12"],
            "exceptionOccurrences": [{"id": "X", "originalStart": "2026-01-19T08:00:00Z", "subject": "Moved",
                "start": {"dateTime": "2026-01-19T10:00:00.0000000", "timeZone": "UTC"},
                "end": {"dateTime": "2026-01-19T10:15:00.0000000", "timeZone": "UTC"}}]
        });
        let flat = flatten_event(&ev);
        assert_eq!(flat.len(), 3);
        assert!(flat[0].get("exceptionOccurrences").is_none());
        assert_eq!(flat[1]["seriesMasterId"], "M");
        assert_eq!(flat[2]["originalStart"], "2026-01-12T08:00:00+00:00");
        let ics = formats::ics::events_to_ics(&flat, Utc::now()).unwrap();
        assert!(ics.contains("EXDATE"), "{ics}");
        assert!(ics.contains("RECURRENCE-ID"), "{ics}");

        let (a, why) = appointment_from(&ev).unwrap();
        assert!(why.is_none());
        let r = a.recurrence.unwrap();
        assert_eq!(r.pattern, pst::RecurrencePattern::Weekly { days: 0b10 });
        assert_eq!(r.end, pst::RecurrenceEnd::After(5));
        assert_eq!(
            r.deleted,
            vec![NaiveDate::from_ymd_opt(2026, 1, 12).unwrap()]
        );
        assert_eq!(
            r.exceptions[0].original_date,
            NaiveDate::from_ymd_opt(2026, 1, 19).unwrap()
        );
        assert_eq!(a.start.to_rfc3339(), "2026-01-05T08:00:00+00:00");
    }

    #[test]
    fn relative_patterns_keep_their_weekday_and_index() {
        let ev = json!({
            "id": "M", "type": "seriesMaster", "subject": "Board",
            "start": {"dateTime": "2026-01-05T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-01-05T10:00:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"], "index": "first"},
                           "range": {"type": "noEnd", "startDate": "2026-01-05"}}
        });
        let (a, why) = appointment_from(&ev).unwrap();
        assert!(why.is_none(), "{why:?}");
        assert_eq!(
            a.recurrence.expect("recurrence").pattern,
            pst::RecurrencePattern::MonthlyNth { days: 0b10, nth: 1 }
        );
        let mut yearly = ev.clone();
        yearly["recurrence"]["pattern"] = json!({"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"});
        let (a, _) = appointment_from(&yearly).unwrap();
        assert_eq!(
            a.recurrence.expect("recurrence").pattern,
            pst::RecurrencePattern::YearlyNth {
                month: 11,
                days: 0b1_0000,
                nth: 4
            }
        );
        let mut dayless = ev.clone();
        dayless["recurrence"]["pattern"]["daysOfWeek"] = json!([]);
        let (a, why) = appointment_from(&dayless).unwrap();
        assert!(a.recurrence.is_none());
        assert!(why.unwrap().contains("no days"));
        assert!(appointment_from(&json!({"id": "bad"})).is_err());
    }

    #[test]
    fn messages_take_addresses_from_json_and_bodies_from_mime() {
        let mime = b"From: A <a@x.test>\r\nTo: b@x.test\r\nSubject: Hi\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--B--\r\n";
        let meta = json!({"subject": "Hi there", "isRead": false, "importance": "high",
            "from": {"emailAddress": {"name": "Alice", "address": "a@x.test"}},
            "toRecipients": [{"emailAddress": {"name": "Bob", "address": "b@x.test"}}],
            "flag": {"flagStatus": "flagged"}, "receivedDateTime": "2026-01-01T10:00:00Z"});
        let m = message_from(&meta, mime).unwrap();
        assert_eq!(m.subject, "Hi there");
        assert_eq!(m.from.unwrap().name, "Alice");
        assert_eq!(m.to[0].email, "b@x.test");
        assert!(!m.read && m.flagged);
        assert_eq!(m.importance, pst::Importance::High);
        assert_eq!(m.body_text.as_deref().map(str::trim), Some("hello"));
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].data, vec![0, 1, 2, 3]);
        assert_eq!(m.attachments[0].name, "a.bin");
    }
}
