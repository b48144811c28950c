//! Exports against the tenant simulator: back up a generated mailbox or
//! OneDrive, export it, and compare the files with what the snapshot holds
//! and what the simulator's ground truth says, reading PSTs back with
//! `outlook-pst` and `readpst`, ZIPs with the `zip` crate, ICS and VCF with
//! the `ical` crate.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufReader, Read};
use std::path::Path;

use engine::exchange::{BackupOptions, DiscoveryOptions, MailboxBackup, MailboxKind};
use engine::exchange::{backup_mailbox, discover_mailboxes};
use engine::export::{
    ExportCtx, ExportFormat, ExportOptions, ExportReport, ExportedFile, PREVIOUSLY_DELETED, export,
};
use engine::faults::Outcome;
use engine::onedrive::{OneDriveBackup, OneDriveOptions, backup_onedrive};
use engine::progress::{CountingProgress, NoProgress, Progress};
use engine::restore::{ItemLogEntry, ItemOutcome, MemoryLog, Selection};
use engine::{Cancel, EngineError};
use graph::Request;
use graph_sim::SimConfig;
use mail_parser::MessageParser;
use serde_json::{Value, json};
use vault::{SnapshotId, SnapshotInfo};

mod common;
use common::{Env, env};

#[path = "../../formats/tests/common/mod.rs"]
mod pst_readers;
use pst_readers::{outlook_pst_items, readpst};

fn tenant(users: u32, seed: u64, scale: f64) -> SimConfig {
    let mut cfg = SimConfig::new(users, seed);
    cfg.content_scale = scale;
    cfg
}

async fn users(e: &Env) -> Vec<String> {
    discover_mailboxes(&e.graph, &DiscoveryOptions::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.kind == MailboxKind::User && m.licensed && m.account_enabled)
        .map(|m| m.graph_id)
        .collect()
}

async fn backup(e: &Env, user: &str, parent: Option<&SnapshotId>) -> SnapshotInfo {
    let r = backup_mailbox(MailboxBackup {
        graph: &e.graph,
        vault: &e.account,
        mailbox_id: user,
        parent,
        options: &BackupOptions::default(),
        progress: &CountingProgress::default(),
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .unwrap();
    e.account.snapshot(&r.snapshot_id.unwrap()).await.unwrap()
}

struct Run {
    report: ExportReport,
    files: Vec<ExportedFile>,
    log: Vec<ItemLogEntry>,
    dir: tempfile::TempDir,
}

async fn run_export(
    e: &Env,
    snap: &SnapshotInfo,
    earlier: &[SnapshotInfo],
    selection: &Selection,
    options: &ExportOptions,
) -> Result<Run, EngineError> {
    run_export_with(
        e,
        snap,
        earlier,
        selection,
        options,
        &NoProgress,
        &Cancel::new(),
    )
    .await
}

async fn run_export_with(
    e: &Env,
    snap: &SnapshotInfo,
    earlier: &[SnapshotInfo],
    selection: &Selection,
    options: &ExportOptions,
    progress: &dyn Progress,
    cancel: &Cancel,
) -> Result<Run, EngineError> {
    let dir = tempfile::tempdir().unwrap();
    let log = MemoryLog::default();
    let ctx = ExportCtx {
        vault: &e.account,
        snapshot: snap,
        earlier,
        selection,
        options,
        entity_name: "Alex Wilber",
        staging_dir: dir.path(),
        progress,
        log: &log,
        cancel,
    };
    let (report, files) = export(&ctx).await?;
    Ok(Run {
        report,
        files,
        log: log.entries(),
        dir,
    })
}

fn options(format: ExportFormat) -> ExportOptions {
    let mut o = ExportOptions::new(format);
    o.requested_at = "2026-11-29T14:05:00Z".parse().unwrap();
    o
}

fn failures(log: &[ItemLogEntry]) -> Vec<&ItemLogEntry> {
    log.iter()
        .filter(|l| l.outcome == ItemOutcome::Failed)
        .collect()
}

fn is_recoverable(m: &Value) -> bool {
    m["isHidden"] == json!(true)
        || m["wellKnownName"]
            .as_str()
            .is_some_and(|w| w.starts_with("recoverableitems"))
}

/// The snapshot's mail folders: id → (display path, Graph JSON), with
/// whether the folder is in Recoverable Items.
async fn mail_folders(e: &Env, snap: &SnapshotInfo) -> HashMap<String, (String, Value, bool)> {
    let mut metas = HashMap::new();
    for f in e.account.list_folder(snap, "mail").await.unwrap() {
        let meta: Value = serde_json::from_slice(f.node.meta()).unwrap();
        metas.insert(f.name.clone(), meta);
    }
    let mut out = HashMap::new();
    for id in metas.keys() {
        let mut names = Vec::new();
        let mut recoverable = false;
        let mut cur = id.clone();
        while let Some(m) = metas.get(&cur) {
            names.push(m["displayName"].as_str().unwrap().to_string());
            recoverable |= is_recoverable(m);
            cur = m["parentFolderId"].as_str().unwrap_or_default().to_string();
        }
        names.reverse();
        out.insert(
            id.clone(),
            (names.join("/"), metas[id].clone(), recoverable),
        );
    }
    out
}

/// Snapshot mail of the visible folders: folder path → sorted subjects.
async fn snapshot_subjects(e: &Env, snap: &SnapshotInfo) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, (path, _, recoverable)) in mail_folders(e, snap).await {
        if recoverable {
            continue;
        }
        for m in e
            .account
            .list_folder(snap, &format!("mail/{id}"))
            .await
            .unwrap()
        {
            let v: Value = serde_json::from_slice(m.node.meta()).unwrap();
            out.entry(path.clone())
                .or_default()
                .push(v["subject"].as_str().unwrap_or_default().to_string());
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

const PR_SUBJECT: u16 = 0x0037;
const PR_MESSAGE_CLASS: u16 = 0x001A;
const PR_SENDER_NAME: u16 = 0x0C1A;

/// PST mail (IPM.Note items): folder path → sorted subjects.
fn pst_subjects(path: &Path) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let (folders, items) = outlook_pst_items(path);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in &items {
        if i.text(PR_MESSAGE_CLASS).as_deref() == Some("IPM.Note") {
            out.entry(i.folder.clone())
                .or_default()
                .push(i.text(PR_SUBJECT).unwrap_or_default());
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    (folders, out)
}

#[tokio::test]
async fn a_whole_mailbox_becomes_one_pst_that_outlook_pst_and_readpst_read() {
    let e = env(tenant(3, 701, 0.3)).await;
    let user = users(&e).await[0].clone();
    let snap = backup(&e, &user, None).await;
    let run = run_export(
        &e,
        &snap,
        &[],
        &Selection::everything(),
        &options(ExportFormat::Pst),
    )
    .await
    .unwrap();
    assert!(failures(&run.log).is_empty(), "{:?}", failures(&run.log));
    assert_eq!(run.report.outcome(), Outcome::Success);
    assert_eq!(run.files.len(), 1, "{:?}", run.report);
    let file = &run.files[0];
    assert_eq!(file.name, "Alex Wilber 2026-11-29 1405.pst");
    assert_eq!(file.size, std::fs::metadata(&file.path).unwrap().len());
    assert_eq!(run.report.bytes, file.size);
    assert_eq!(file.items, run.report.exported);

    // Folder paths and the subjects in each equal the snapshot's.
    let want = snapshot_subjects(&e, &snap).await;
    assert!(want.contains_key("Inbox"), "{:?}", want.keys());
    let (folders, got) = pst_subjects(&file.path);
    for (path, subjects) in &want {
        assert!(folders.contains(path), "{path} in {folders:?}");
        if !subjects.is_empty() {
            assert_eq!(got.get(path), Some(subjects), "subjects of {path}");
        }
    }
    let mail_total: usize = want.values().map(Vec::len).sum();
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), mail_total);
    assert!(
        !folders.iter().any(|f| f.contains("Recoverable Items")),
        "no legal hold content unless asked: {folders:?}"
    );
    // Contacts, calendars and tasks are in their own folders.
    let (_, items) = outlook_pst_items(&file.path);
    for class in ["IPM.Contact", "IPM.Appointment", "IPM.Task"] {
        assert!(
            items
                .iter()
                .any(|i| i.text(PR_MESSAGE_CLASS).as_deref() == Some(class)),
            "{class} items in the PST"
        );
    }

    // Senders and attachment bytes of messages with attachments.
    let mut checked_attachment = false;
    for (id, (path, _, recoverable)) in mail_folders(&e, &snap).await {
        if recoverable {
            continue;
        }
        for m in e
            .account
            .list_folder(&snap, &format!("mail/{id}"))
            .await
            .unwrap()
        {
            let meta: Value = serde_json::from_slice(m.node.meta()).unwrap();
            let subject = meta["subject"].as_str().unwrap_or_default();
            let in_pst: Vec<_> = items
                .iter()
                .filter(|i| i.folder == path && i.text(PR_SUBJECT).as_deref() == Some(subject))
                .collect();
            assert!(!in_pst.is_empty(), "{subject} in {path}");
            if let Some(name) = meta["from"]["emailAddress"]["name"].as_str() {
                assert!(
                    in_pst
                        .iter()
                        .any(|i| i.text(PR_SENDER_NAME).as_deref() == Some(name)),
                    "sender of {subject}"
                );
            }
            if checked_attachment || meta["hasAttachments"] != json!(true) {
                continue;
            }
            let mime = e
                .account
                .read_item_bytes(&snap, &format!("mail/{id}/{}", m.name))
                .await
                .unwrap();
            let parsed = MessageParser::default().parse(&mime).unwrap();
            let want: Vec<Vec<u8>> = parsed
                .attachments()
                .map(|a| a.contents().to_vec())
                .collect();
            if want.is_empty() || in_pst.len() != 1 {
                continue;
            }
            let got: Vec<Vec<u8>> = in_pst[0]
                .attachments
                .iter()
                .map(|(_, d)| d.clone())
                .collect();
            assert_eq!(got, want, "attachment bytes of {subject}");
            checked_attachment = true;
        }
    }
    assert!(checked_attachment, "a message with attachments was checked");

    // readpst: one .eml per message in each mail folder, same subjects.
    let rp = readpst(&file.path, &run.dir.path().join("readpst"));
    let mut by_folder: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, raw) in &rp {
        // readpst's top directory is the store's display name ("Alex Wilber (1)").
        let Some((folder, _)) = name
            .split_once('/')
            .and_then(|(store, n)| store.starts_with("Alex Wilber").then_some(n))
            .and_then(|n| n.rsplit_once('/'))
        else {
            continue;
        };
        if !want.contains_key(folder) {
            continue;
        }
        let Some(parsed) = MessageParser::default().parse(raw.as_slice()) else {
            continue;
        };
        if parsed.subject().is_none() && parsed.from().is_none() {
            continue;
        }
        by_folder
            .entry(folder.to_string())
            .or_default()
            .push(parsed.subject().unwrap_or_default().to_string());
    }
    for v in by_folder.values_mut() {
        v.sort();
    }
    for (path, subjects) in &want {
        if subjects.is_empty() {
            continue;
        }
        assert_eq!(
            by_folder.get(path),
            Some(subjects),
            "readpst subjects of {path}: {:?}",
            rp.keys().take(20).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn a_small_split_limit_gives_several_parts_that_each_open() {
    let e = env(tenant(3, 702, 1.0)).await;
    let user = users(&e).await[0].clone();
    let snap = backup(&e, &user, None).await;
    let mut o = options(ExportFormat::Pst);
    o.pst_split_bytes = Some(1_000_000);
    let sel = Selection {
        sub_services: vec![engine::SubService::Mail],
        ..Default::default()
    };
    let run = run_export(&e, &snap, &[], &sel, &o).await.unwrap();
    assert!(failures(&run.log).is_empty(), "{:?}", failures(&run.log));
    assert!(run.files.len() >= 2, "{:?}", run.report.files);
    let want = snapshot_subjects(&e, &snap).await;
    let mut all: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, f) in run.files.iter().enumerate() {
        assert_eq!(
            f.name,
            format!("Alex Wilber 2026-11-29 1405 ({}).pst", n + 1)
        );
        let (folders, got) = pst_subjects(&f.path);
        assert!(folders.contains(&"Inbox".to_string()), "{folders:?}");
        assert_eq!(
            got.values().map(Vec::len).sum::<usize>() as u64,
            f.items,
            "items of {}",
            f.name
        );
        for (k, v) in got {
            all.entry(k).or_default().extend(v);
        }
        assert!(!readpst(&f.path, &run.dir.path().join(format!("rp{n}"))).is_empty());
    }
    for v in all.values_mut() {
        v.sort();
    }
    let want: BTreeMap<_, _> = want.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    assert_eq!(all, want, "every message is in exactly one part");
}

#[tokio::test]
async fn legal_holds_and_previously_deleted_items_are_added_on_request() {
    let e = env(tenant(3, 703, 0.3)).await;
    let user = users(&e).await[0].clone();
    let first = backup(&e, &user, None).await;
    let folders = mail_folders(&e, &first).await;
    assert!(
        folders.values().any(|(_, _, r)| *r),
        "the snapshot holds Recoverable Items"
    );
    // Delete one inbox message in the tenant, then back up again.
    let inbox = e
        .graph
        .send(
            Request::get(format!(
                "/users/{user}/mailFolders/inbox/messages?$select=id,subject&$top=5"
            ))
            .header("Prefer", "IdType=\"ImmutableId\""),
        )
        .await
        .unwrap()
        .json::<Value>()
        .unwrap();
    let victim = inbox["value"][0].clone();
    let subject = victim["subject"].as_str().unwrap().to_string();
    e.graph
        .send(Request::delete(format!(
            "/users/{user}/messages/{}",
            victim["id"].as_str().unwrap()
        )))
        .await
        .unwrap();
    let second = backup(&e, &user, Some(&first.id)).await;

    // Without options: no Recoverable Items, no earlier items.
    let plain = run_export(
        &e,
        &second,
        std::slice::from_ref(&first),
        &Selection::everything(),
        &options(ExportFormat::Pst),
    )
    .await
    .unwrap();
    let (folders, got) = pst_subjects(&plain.files[0].path);
    assert!(!folders.iter().any(|f| f.starts_with("Recoverable Items")));
    assert!(!folders.iter().any(|f| f == PREVIOUSLY_DELETED));
    assert!(!got.get("Inbox").unwrap().contains(&subject));

    // include_deleted: the deleted message is back, under its own folder.
    let mut o = options(ExportFormat::Pst);
    o.include_deleted = true;
    let with_deleted = run_export(
        &e,
        &second,
        std::slice::from_ref(&first),
        &Selection::everything(),
        &o,
    )
    .await
    .unwrap();
    assert!(failures(&with_deleted.log).is_empty());
    let (_, got) = pst_subjects(&with_deleted.files[0].path);
    let deleted = got
        .get(PREVIOUSLY_DELETED)
        .expect("a previously deleted folder");
    assert!(deleted.contains(&subject), "{deleted:?}");
    assert!(
        with_deleted.report.exported > plain.report.exported,
        "{:?} vs {:?}",
        with_deleted.report,
        plain.report
    );

    // include_legal_holds: the Recoverable Items folders and their mail.
    let mut o = options(ExportFormat::Pst);
    o.include_legal_holds = true;
    let holds = run_export(&e, &second, &[], &Selection::everything(), &o)
        .await
        .unwrap();
    let (folders, got) = pst_subjects(&holds.files[0].path);
    let recoverable: Vec<&String> = folders
        .iter()
        .filter(|f| f.starts_with("Recoverable Items"))
        .collect();
    assert!(!recoverable.is_empty(), "{folders:?}");
    let held: usize = got
        .iter()
        .filter(|(k, _)| k.starts_with("Recoverable Items"))
        .map(|(_, v)| v.len())
        .sum();
    let mut stored_held = 0;
    for (id, (_, _, r)) in mail_folders(&e, &second).await {
        if r {
            stored_held += e
                .account
                .list_folder(&second, &format!("mail/{id}"))
                .await
                .unwrap()
                .len();
        }
    }
    assert_eq!(held, stored_held);
    assert!(holds.report.exported > plain.report.exported || stored_held == 0);
}

fn zip_entries(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = BTreeMap::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        if f.is_dir() {
            continue;
        }
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        out.insert(f.name().unwrap().to_string(), data);
    }
    out
}

#[tokio::test]
async fn mail_exports_as_eml_calendars_as_ics_contacts_as_vcf_and_others_are_refused() {
    let e = env(tenant(3, 704, 0.3)).await;
    let user = users(&e).await[0].clone();
    let snap = backup(&e, &user, None).await;
    let folders = mail_folders(&e, &snap).await;
    let inbox = folders
        .iter()
        .find(|(_, (p, _, _))| p == "Inbox")
        .map(|(id, _)| id.clone())
        .unwrap();
    let sent = folders
        .iter()
        .find(|(_, (p, _, _))| p == "Sent Items")
        .map(|(id, _)| id.clone())
        .unwrap();
    let names = |f: String| {
        let e = &e;
        let snap = &snap;
        async move {
            e.account
                .list_folder(snap, &format!("mail/{f}"))
                .await
                .unwrap()
                .into_iter()
                .map(|x| format!("mail/{f}/{}", x.name))
                .collect::<Vec<_>>()
        }
    };
    let inbox_items = names(inbox.clone()).await;
    let sent_items = names(sent.clone()).await;

    // One message: one .eml, the stored MIME byte for byte.
    let one = Selection {
        items: vec![inbox_items[0].clone()],
        ..Default::default()
    };
    let run = run_export(&e, &snap, &[], &one, &options(ExportFormat::Eml))
        .await
        .unwrap();
    assert_eq!(run.files.len(), 1);
    assert!(run.files[0].name.ends_with(".eml"), "{}", run.files[0].name);
    let stored = e
        .account
        .read_item_bytes(&snap, &inbox_items[0])
        .await
        .unwrap();
    assert_eq!(std::fs::read(&run.files[0].path).unwrap(), stored);

    // Several from two folders: a ZIP of .eml files by folder path.
    let several = Selection {
        items: vec![
            inbox_items[0].clone(),
            inbox_items[1].clone(),
            sent_items[0].clone(),
        ],
        ..Default::default()
    };
    let run = run_export(&e, &snap, &[], &several, &options(ExportFormat::Eml))
        .await
        .unwrap();
    assert_eq!(run.files.len(), 1);
    assert_eq!(run.files[0].name, "Alex Wilber 2026-11-29 1405.zip");
    assert_eq!(run.files[0].items, 3);
    let entries = zip_entries(&run.files[0].path);
    assert_eq!(entries.len(), 3, "{:?}", entries.keys());
    for item in &several.items {
        let stored = e.account.read_item_bytes(&snap, item).await.unwrap();
        let folder = if item.contains(&inbox) {
            "Inbox/"
        } else {
            "Sent Items/"
        };
        assert!(
            entries
                .iter()
                .any(|(k, v)| k.starts_with(folder) && k.ends_with(".eml") && *v == stored),
            "{item} in {:?}",
            entries.keys()
        );
    }

    // A calendar: one .ics with its events.
    let cal = e.account.list_folder(&snap, "calendar").await.unwrap();
    let (cal_id, events) = {
        let mut best = (String::new(), Vec::new());
        for c in cal.iter().filter(|c| c.node.is_folder()) {
            let items = e
                .account
                .list_folder(&snap, &format!("calendar/{}", c.name))
                .await
                .unwrap();
            if items.len() > best.1.len() {
                best = (c.name.clone(), items);
            }
        }
        best
    };
    assert!(!events.is_empty(), "a calendar with events");
    let mut want_subjects = HashSet::new();
    let mut want_count = 0;
    for ev in &events {
        let v: Value = serde_json::from_slice(
            &e.account
                .read_item_bytes(&snap, &format!("calendar/{cal_id}/{}", ev.name))
                .await
                .unwrap(),
        )
        .unwrap();
        if v["isCancelled"] == json!(true) {
            continue;
        }
        want_count += 1;
        want_subjects.insert(v["subject"].as_str().unwrap_or_default().to_string());
    }
    let sel = Selection {
        folders: vec![format!("calendar/{cal_id}")],
        ..Default::default()
    };
    let run = run_export(&e, &snap, &[], &sel, &options(ExportFormat::Ics))
        .await
        .unwrap();
    assert!(failures(&run.log).is_empty(), "{:?}", failures(&run.log));
    assert_eq!(run.files.len(), 1);
    assert!(run.files[0].name.ends_with(".ics"));
    let text = std::fs::read_to_string(&run.files[0].path).unwrap();
    let cals: Vec<_> = ical::IcalParser::new(BufReader::new(text.as_bytes()))
        .collect::<Result<_, _>>()
        .unwrap();
    let value = |props: &[ical::property::Property], name: &str| {
        props
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
    };
    let masters: Vec<_> = cals[0]
        .events
        .iter()
        .filter(|ev| value(&ev.properties, "RECURRENCE-ID").is_none())
        .collect();
    assert_eq!(masters.len(), want_count);
    let got: HashSet<String> = masters
        .iter()
        .map(|ev| value(&ev.properties, "SUMMARY").unwrap_or_default())
        .collect();
    assert_eq!(got, want_subjects);

    // Contacts: one .vcf per folder with the contacts' names.
    // A contact folder with contacts and no sub-folders (those would make
    // it several .vcf files in a ZIP).
    let contact_folders = e.account.list_folder(&snap, "contacts").await.unwrap();
    let parents: HashSet<String> = contact_folders
        .iter()
        .filter_map(|f| {
            serde_json::from_slice::<Value>(f.node.meta())
                .ok()
                .and_then(|m| m["parentFolderId"].as_str().map(str::to_string))
        })
        .collect();
    let mut folder = None;
    for f in contact_folders
        .iter()
        .filter(|f| !parents.contains(&f.name))
    {
        let n = e
            .account
            .list_folder(&snap, &format!("contacts/{}", f.name))
            .await
            .unwrap()
            .len();
        if n > 0 {
            folder = Some(f.name.clone());
            break;
        }
    }
    let folder = folder.expect("a contact folder with contacts");
    let mut want_names = HashSet::new();
    for c in e
        .account
        .list_folder(&snap, &format!("contacts/{folder}"))
        .await
        .unwrap()
    {
        let v: Value = serde_json::from_slice(
            &e.account
                .read_item_bytes(&snap, &format!("contacts/{folder}/{}", c.name))
                .await
                .unwrap(),
        )
        .unwrap();
        want_names.insert(v["displayName"].as_str().unwrap().to_string());
    }
    let sel = Selection {
        folders: vec![format!("contacts/{folder}")],
        ..Default::default()
    };
    let run = run_export(&e, &snap, &[], &sel, &options(ExportFormat::Vcf))
        .await
        .unwrap();
    assert_eq!(run.files.len(), 1);
    assert!(run.files[0].name.ends_with(".vcf"), "{}", run.files[0].name);
    let text = std::fs::read_to_string(&run.files[0].path).unwrap();
    let cards: Vec<_> = ical::VcardParser::new(BufReader::new(text.as_bytes()))
        .collect::<Result<_, _>>()
        .unwrap();
    let got: HashSet<String> = cards
        .iter()
        .filter_map(|c| value(&c.properties, "FN"))
        .collect();
    assert_eq!(got, want_names);

    // Refusals, with the reason, and nothing written.
    for (sel, format, want) in [
        (
            sel.clone(),
            ExportFormat::Eml,
            "contacts cannot be exported as EML; choose VCF or PST",
        ),
        (
            Selection::everything(),
            ExportFormat::Eml,
            "cannot be exported as EML; choose PST",
        ),
        (
            Selection {
                sub_services: vec![engine::SubService::Tasks],
                ..Default::default()
            },
            ExportFormat::Ics,
            "tasks cannot be exported as ICS; choose PST",
        ),
        (
            Selection::everything(),
            ExportFormat::Zip,
            "cannot be exported as ZIP",
        ),
    ] {
        let err = run_export(&e, &snap, &[], &sel, &options(format))
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains(want), "{err} vs {want}");
    }
}

/// path → (size, BLAKE3 hex) of every file of a user's OneDrive, per the
/// simulator's ground truth.
async fn drive_truth(e: &Env, user: &str) -> BTreeMap<String, (u64, String)> {
    let v: Value = e
        .http
        .get(format!("{}/_sim/truth/users/{user}", e.sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["workload"] == "drive")
        .map(|i| {
            let path = i["path"].as_str().unwrap();
            (
                path.strip_prefix("OneDrive/").unwrap_or(path).to_string(),
                (
                    i["size"].as_u64().unwrap(),
                    i["hash"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

async fn backup_drive(e: &Env, user: &str, parent: Option<&SnapshotId>) -> SnapshotInfo {
    let r = backup_onedrive(OneDriveBackup {
        graph: &e.graph,
        vault: &e.account,
        user_id: user,
        parent,
        options: &OneDriveOptions::default(),
        progress: &NoProgress,
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .unwrap();
    e.account.snapshot(&r.snapshot_id.unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_onedrive_exports_as_a_zip_equal_to_the_truth_with_deleted_files_on_request() {
    let e = env(tenant(4, 705, 1.0)).await;
    let mut chosen = None;
    for d in engine::onedrive::discover_drives(&e.graph).await.unwrap() {
        let t = drive_truth(&e, &d.user_id).await;
        if t.len() >= 4 && t.keys().any(|p| p.contains('/')) {
            chosen = Some((d, t));
            break;
        }
    }
    let (drive, truth) = chosen.expect("a OneDrive with files in folders");
    let first = backup_drive(&e, &drive.user_id, None).await;
    let run = run_export(
        &e,
        &first,
        &[],
        &Selection::everything(),
        &options(ExportFormat::Zip),
    )
    .await
    .unwrap();
    assert!(failures(&run.log).is_empty(), "{:?}", failures(&run.log));
    assert_eq!(run.files.len(), 1);
    assert_eq!(run.files[0].items, truth.len() as u64);
    let entries = zip_entries(&run.files[0].path);
    let got: BTreeMap<String, (u64, String)> = entries
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v.len() as u64, blake3::hash(v).to_hex().to_string()),
            )
        })
        .collect();
    assert_eq!(got, truth);

    // Delete a file in the tenant; the next snapshot lacks it, and an
    // export with include_deleted brings it back from the first.
    let items = engine::drive::stored_items(&e.account, &first, "drive")
        .await
        .unwrap();
    let victim = items
        .iter()
        .find(|i| i.is_file() && i.path.contains('/'))
        .unwrap();
    let drive_id = first_drive_id(&e, &drive.user_id).await;
    e.graph
        .send(Request::delete(format!(
            "/drives/{drive_id}/items/{}",
            victim.id
        )))
        .await
        .unwrap();
    let second = backup_drive(&e, &drive.user_id, Some(&first.id)).await;
    let plain = run_export(
        &e,
        &second,
        &[],
        &Selection::everything(),
        &options(ExportFormat::Zip),
    )
    .await
    .unwrap();
    let plain_entries = zip_entries(&plain.files[0].path);
    assert!(!plain_entries.contains_key(&victim.path));
    let mut o = options(ExportFormat::Zip);
    o.include_deleted = true;
    let run = run_export(
        &e,
        &second,
        std::slice::from_ref(&first),
        &Selection::everything(),
        &o,
    )
    .await
    .unwrap();
    let entries = zip_entries(&run.files[0].path);
    let back = &entries[&format!("{PREVIOUSLY_DELETED}/{}", victim.path)];
    assert_eq!(
        blake3::hash(back).to_hex().to_string(),
        truth[&victim.path].1
    );
    assert_eq!(entries.len(), plain_entries.len() + 1);
}

async fn first_drive_id(e: &Env, user: &str) -> String {
    e.graph
        .send(Request::get(format!("/users/{user}/drive")))
        .await
        .unwrap()
        .json::<Value>()
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Cancels the export once `after` items are done.
struct CancelAfter {
    cancel: Cancel,
    after: u64,
    done: std::sync::atomic::AtomicU64,
}

impl Progress for CancelAfter {
    fn advance(&self, items: u64, _bytes: u64) {
        let n = self
            .done
            .fetch_add(items, std::sync::atomic::Ordering::SeqCst)
            + items;
        if n >= self.after {
            self.cancel.cancel();
        }
    }
}

#[tokio::test]
async fn a_cancelled_export_leaves_nothing_and_a_damaged_item_fails_alone() {
    let e = env(tenant(3, 706, 0.3)).await;
    let user = users(&e).await[0].clone();
    let snap = backup(&e, &user, None).await;
    for format in [ExportFormat::Pst, ExportFormat::Eml] {
        let cancel = Cancel::new();
        let progress = CancelAfter {
            cancel: cancel.clone(),
            after: 3,
            done: Default::default(),
        };
        let sel = Selection {
            sub_services: vec![engine::SubService::Mail],
            ..Default::default()
        };
        let run = run_export_with(&e, &snap, &[], &sel, &options(format), &progress, &cancel)
            .await
            .unwrap();
        assert!(run.report.cancelled);
        assert_eq!(run.report.outcome(), Outcome::Cancelled);
        assert!(run.files.is_empty() && run.report.files.is_empty());
        assert_eq!(
            std::fs::read_dir(run.dir.path()).unwrap().count(),
            0,
            "{format}: no partial output is left"
        );
        assert!(run.report.exported >= 3);
    }

    // A snapshot with one good message and one whose description is damaged.
    let folders = mail_folders(&e, &snap).await;
    let (inbox, (_, inbox_meta, _)) = folders.iter().find(|(_, (p, _, _))| p == "Inbox").unwrap();
    let good = e
        .account
        .list_folder(&snap, &format!("mail/{inbox}"))
        .await
        .unwrap()[0]
        .clone();
    let good_path = format!("mail/{inbox}/{}", good.name);
    let mime = e.account.read_item_bytes(&snap, &good_path).await.unwrap();
    let writer = e.account.begin_snapshot(None).await.unwrap();
    writer.put_folder("mail", b"{}".to_vec()).await.unwrap();
    writer
        .put_folder(
            &format!("mail/{inbox}"),
            serde_json::to_vec(inbox_meta).unwrap(),
        )
        .await
        .unwrap();
    writer
        .put_bytes(&good_path, good.node.meta().to_vec(), mime)
        .await
        .unwrap();
    writer
        .put_bytes(
            &format!("mail/{inbox}/damaged"),
            b"{\"subject\": \"half".to_vec(),
            b"From: x@y\r\n\r\nbody".to_vec(),
        )
        .await
        .unwrap();
    let id = writer.commit(snap.meta.clone()).await.unwrap();
    let damaged = e.account.snapshot(&id).await.unwrap();
    let run = run_export(
        &e,
        &damaged,
        &[],
        &Selection::everything(),
        &options(ExportFormat::Pst),
    )
    .await
    .unwrap();
    assert_eq!(run.report.failed, 1, "{:?}", run.log);
    assert_eq!(run.report.exported, 1, "{:?}", run.log);
    assert_eq!(run.report.outcome(), Outcome::Partial);
    let failed = failures(&run.log)[0];
    assert_eq!(failed.path, format!("mail/{inbox}/damaged"));
    assert!(failed.detail.as_deref().unwrap().contains("damaged"));
    let (_, got) = pst_subjects(&run.files[0].path);
    assert_eq!(got["Inbox"].len(), 1);
}

#[tokio::test]
async fn a_team_exports_as_a_zip_of_its_files_channels_conversations_and_calendar() {
    use engine::teams::{
        GroupBackup, GroupBackupOptions, GroupKind, backup_group, discover_groups,
    };
    let mut cfg = SimConfig::new(40, 707);
    cfg.content_scale = 0.4;
    let e = env(cfg).await;
    let team = discover_groups(&e.graph)
        .await
        .unwrap()
        .into_iter()
        .find(|g| g.kind == GroupKind::Team)
        .unwrap()
        .graph_id;
    let r = backup_group(GroupBackup {
        graph: &e.graph,
        vault: &e.account,
        group_id: &team,
        is_team: true,
        parent: None,
        options: &GroupBackupOptions {
            sub_services: vec![
                engine::SubService::Metadata,
                engine::SubService::Conversations,
                engine::SubService::Calendar,
                engine::SubService::Channels,
                engine::SubService::Drive,
            ],
            concurrency: 2,
        },
        progress: &NoProgress,
        cancel: &Cancel::new(),
        meta: json!({}),
    })
    .await
    .unwrap();
    let snap = e
        .account
        .snapshot(r.snapshot_id.as_ref().unwrap())
        .await
        .unwrap();
    let run = run_export(
        &e,
        &snap,
        &[],
        &Selection::everything(),
        &options(ExportFormat::Zip),
    )
    .await
    .unwrap();
    assert!(failures(&run.log).is_empty(), "{:?}", failures(&run.log));
    let entries = zip_entries(&run.files[0].path);

    // Library files: as many as the snapshot's drives hold, same bytes.
    let mut stored_files = 0;
    for d in e.account.list_folder(&snap, "drives").await.unwrap() {
        for it in engine::drive::stored_items(&e.account, &snap, &format!("drives/{}", d.name))
            .await
            .unwrap()
            .iter()
            .filter(|i| i.is_file())
        {
            stored_files += 1;
            assert!(
                entries
                    .keys()
                    .any(|k| k.starts_with("Files/") && k.ends_with(&it.path)),
                "{} in {:?}",
                it.path,
                entries.keys().collect::<Vec<_>>()
            );
        }
    }
    assert_eq!(
        entries.keys().filter(|k| k.starts_with("Files/")).count(),
        stored_files
    );

    // Channels: one page each, one article per top-level message.
    let mut channels_with_messages = 0;
    for c in e.account.list_folder(&snap, "channels").await.unwrap() {
        let meta: Value = serde_json::from_slice(c.node.meta()).unwrap();
        let messages = e
            .account
            .list_folder(&snap, &format!("channels/{}", c.name))
            .await
            .unwrap()
            .iter()
            .filter(|m| !m.node.is_folder())
            .count();
        if messages == 0 {
            continue;
        }
        channels_with_messages += 1;
        let name = meta["displayName"].as_str().unwrap();
        let page = entries
            .iter()
            .find(|(k, _)| k.starts_with("Channels/") && k.contains(name))
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
            .unwrap_or_else(|| panic!("channel {name} in {:?}", entries.keys()));
        assert_eq!(page.matches("<article>").count(), messages, "{name}");
    }
    assert!(channels_with_messages > 0);
    assert_eq!(
        entries
            .keys()
            .filter(|k| k.starts_with("Channels/"))
            .count(),
        channels_with_messages
    );

    // Conversations and the calendar.
    let threads = e.account.list_folder(&snap, "conversations").await.unwrap();
    assert_eq!(
        entries
            .keys()
            .filter(|k| k.starts_with("Conversations/") && k.ends_with(".html"))
            .count(),
        threads.len()
    );
    let events = e.account.list_folder(&snap, "calendar").await.unwrap();
    if !events.is_empty() {
        let text = String::from_utf8(entries["Calendar.ics"].clone()).unwrap();
        let cals: Vec<_> = ical::IcalParser::new(BufReader::new(text.as_bytes()))
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!cals[0].events.is_empty());
    }
    assert_eq!(run.report.outcome(), Outcome::Success);
}
