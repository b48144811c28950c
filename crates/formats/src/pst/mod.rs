//! A streaming Unicode PST writer ([MS-PST], wVer 23), written from
//! Microsoft's open specification.
//!
//! Items are written to the file as they are added; only what the tables
//! at the end need stays in memory: per block 24 bytes, per node 24 bytes,
//! per item one contents-table row (about 120 bytes plus its subject and
//! sender, cut to 255 characters each), per folder a few hundred bytes.
//!
//! ```no_run
//! # fn main() -> Result<(), formats::pst::PstError> {
//! use formats::pst::{Message, PstWriter};
//! let file = std::fs::File::create("out.pst")?;
//! let mut pst = PstWriter::create(file)?;
//! let inbox = pst.add_folder(pst.root(), "Inbox", "IPF.Note")?;
//! pst.add_message(inbox, &Message { subject: "Hello".into(), ..Default::default() })?;
//! pst.finish()?;
//! # Ok(()) }
//! ```

mod ltp;
mod model;
mod ndb;
mod recur;
mod split;

use std::collections::HashMap;
use std::io::{Seek, Write};

use chrono::{DateTime, Utc};

pub use ltp::Value;
use ltp::{Column, Subnodes, pt, write_pc, write_tc};
pub use model::*;
use ndb::{NbtEntry, Ndb, SubnodeEntry};
pub use split::{SPLIT_5_GB, SPLIT_20_GB, SplitFolderId, SplitPstWriter};

#[derive(Debug, thiserror::Error)]
pub enum PstError {
    #[error("PST output failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("PST limit exceeded: {0} is too large for a PST file")]
    TooLarge(&'static str),
    #[error("unknown folder id {0}")]
    UnknownFolder(u32),
    #[error("invalid item: {0}")]
    InvalidItem(String),
}

const NID_MESSAGE_STORE: u32 = 0x21;
const NID_NAME_TO_ID_MAP: u32 = 0x61;
const NID_ROOT_FOLDER: u32 = 0x122;
const NID_IPM_SUBTREE: u32 = 0x8022;
const NID_SEARCH_ROOT: u32 = 0x8042;
const NID_DELETED_ITEMS: u32 = 0x8062;
const NID_RECIPIENT_TABLE: u32 = 0x692;
const NID_ATTACHMENT_TABLE: u32 = 0x671;
const NID_TYPE_NORMAL_FOLDER: u8 = 0x02;
const NID_TYPE_NORMAL_MESSAGE: u8 = 0x04;
const NID_TYPE_ATTACHMENT: u8 = 0x05;
const NID_TYPE_HIERARCHY_TABLE: u32 = 0x0D;
const NID_TYPE_CONTENTS_TABLE: u32 = 0x0E;
const NID_TYPE_ASSOC_CONTENTS_TABLE: u32 = 0x0F;

/// Characters kept for strings repeated in a folder's contents table.
const TABLE_STRING_CHARS: usize = 255;

/// Property ids (PidTag*) used here.
mod tag {
    pub const IMPORTANCE: u16 = 0x0017;
    pub const MESSAGE_CLASS: u16 = 0x001A;
    pub const SUBJECT: u16 = 0x0037;
    pub const CLIENT_SUBMIT_TIME: u16 = 0x0039;
    pub const SENT_REPRESENTING_NAME: u16 = 0x0042;
    pub const SENT_REPRESENTING_ADDRTYPE: u16 = 0x0064;
    pub const SENT_REPRESENTING_EMAIL: u16 = 0x0065;
    pub const START_DATE: u16 = 0x0060;
    pub const END_DATE: u16 = 0x0061;
    pub const RECIPIENT_TYPE: u16 = 0x0C15;
    pub const SENDER_NAME: u16 = 0x0C1A;
    pub const SENDER_ADDRTYPE: u16 = 0x0C1E;
    pub const SENDER_EMAIL: u16 = 0x0C1F;
    pub const DISPLAY_BCC: u16 = 0x0E02;
    pub const DISPLAY_CC: u16 = 0x0E03;
    pub const DISPLAY_TO: u16 = 0x0E04;
    pub const MESSAGE_DELIVERY_TIME: u16 = 0x0E06;
    pub const MESSAGE_FLAGS: u16 = 0x0E07;
    pub const MESSAGE_SIZE: u16 = 0x0E08;
    pub const RESPONSIBILITY: u16 = 0x0E0F;
    pub const MESSAGE_STATUS: u16 = 0x0E17;
    pub const HASATTACH: u16 = 0x0E1B;
    pub const ATTACH_SIZE: u16 = 0x0E20;
    pub const ATTACH_NUM: u16 = 0x0E21;
    pub const RECORD_KEY: u16 = 0x0FF9;
    pub const OBJECT_TYPE: u16 = 0x0FFE;
    pub const BODY: u16 = 0x1000;
    pub const HTML: u16 = 0x1013;
    pub const NATIVE_BODY: u16 = 0x1016;
    pub const INTERNET_MESSAGE_ID: u16 = 0x1035;
    pub const FLAG_STATUS: u16 = 0x1090;
    pub const DISPLAY_NAME: u16 = 0x3001;
    pub const ADDRTYPE: u16 = 0x3002;
    pub const EMAIL_ADDRESS: u16 = 0x3003;
    pub const CREATION_TIME: u16 = 0x3007;
    pub const LAST_MODIFICATION_TIME: u16 = 0x3008;
    pub const SEARCH_KEY: u16 = 0x300B;
    pub const VALID_FOLDER_MASK: u16 = 0x35DF;
    pub const IPM_SUBTREE_ENTRYID: u16 = 0x35E0;
    pub const IPM_WASTEBASKET_ENTRYID: u16 = 0x35E3;
    pub const FINDER_ENTRYID: u16 = 0x35E7;
    pub const CONTENT_COUNT: u16 = 0x3602;
    pub const CONTENT_UNREAD: u16 = 0x3603;
    pub const SUBFOLDERS: u16 = 0x360A;
    pub const CONTAINER_CLASS: u16 = 0x3613;
    pub const ATTACH_DATA_BIN: u16 = 0x3701;
    pub const ATTACH_EXTENSION: u16 = 0x3703;
    pub const ATTACH_FILENAME: u16 = 0x3704;
    pub const ATTACH_METHOD: u16 = 0x3705;
    pub const ATTACH_LONG_FILENAME: u16 = 0x3707;
    pub const RENDERING_POSITION: u16 = 0x370B;
    pub const ATTACH_MIME_TAG: u16 = 0x370E;
    pub const DISPLAY_TYPE: u16 = 0x3900;
    pub const SMTP_ADDRESS: u16 = 0x39FE;
    pub const BUSINESS_PHONE: u16 = 0x3A08;
    pub const HOME_PHONE: u16 = 0x3A09;
    pub const GIVEN_NAME: u16 = 0x3A06;
    pub const SURNAME: u16 = 0x3A11;
    pub const COMPANY_NAME: u16 = 0x3A16;
    pub const TITLE: u16 = 0x3A17;
    pub const MOBILE_PHONE: u16 = 0x3A1C;
    pub const INTERNET_CPID: u16 = 0x3FDE;
    pub const SENDER_SMTP_ADDRESS: u16 = 0x5D01;
    pub const SENT_REPRESENTING_SMTP_ADDRESS: u16 = 0x5D02;
    pub const RECIPIENT_DISPLAY_NAME: u16 = 0x5FF6;
    pub const PST_PASSWORD: u16 = 0x67FF;
}

const PSETID_APPOINTMENT: [u8; 16] = guid(0x0006_2002);
const PSETID_TASK: [u8; 16] = guid(0x0006_2003);
const PSETID_ADDRESS: [u8; 16] = guid(0x0006_2004);
const PSETID_COMMON: [u8; 16] = guid(0x0006_2008);
const PSETID_NOTE: [u8; 16] = guid(0x0006_200E);

/// {xxxxxxxx-0000-0000-C000-000000000046} in its little-endian byte form.
const fn guid(data1: u32) -> [u8; 16] {
    let d = data1.to_le_bytes();
    [
        d[0], d[1], d[2], d[3], 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46,
    ]
}

/// A named property (property set and numeric LID).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Named {
    set: [u8; 16],
    lid: u32,
}

/// A folder handle returned by [`PstWriter::add_folder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FolderId(u32);

struct ContentsRow {
    nid: u32,
    importance: i32,
    message_class: String,
    subject: String,
    sender: String,
    display_to: String,
    submit_time: Option<i64>,
    delivery_time: Option<i64>,
    flags: i32,
    size: i32,
}

struct FolderState {
    nid: u32,
    parent: u32,
    name: String,
    container_class: Option<String>,
    children: Vec<u32>,
    rows: Vec<ContentsRow>,
    unread: i32,
}

/// The store-wide identity written into every entry id.
fn record_key() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

pub(crate) fn filetime(t: DateTime<Utc>) -> i64 {
    const EPOCH_DIFF_SECONDS: i64 = 11_644_473_600;
    (t.timestamp() + EPOCH_DIFF_SECONDS) * 10_000_000 + i64::from(t.timestamp_subsec_nanos() / 100)
}

fn truncate(s: &str, chars: usize) -> String {
    s.chars().take(chars).collect()
}

/// Everything an item is written from, whatever its kind.
struct ItemData<'a> {
    props: Vec<(u16, Value)>,
    named: Vec<(Named, Value)>,
    recipients: Vec<(&'a Mailbox, i32)>,
    attachments: &'a [Attachment],
}

pub struct PstWriter<W: Write + Seek> {
    ndb: Ndb<W>,
    record_key: [u8; 16],
    display_name: String,
    folders: Vec<FolderState>,
    folder_index: HashMap<u32, usize>,
    named: HashMap<Named, u16>,
    named_order: Vec<(Named, u16)>,
    items: u64,
}

impl<W: Write + Seek> PstWriter<W> {
    /// Starts a PST whose store is shown as "Lifeboat export".
    pub fn create(out: W) -> Result<Self, PstError> {
        Self::create_named(out, "Lifeboat export")
    }

    pub fn create_named(out: W, display_name: &str) -> Result<Self, PstError> {
        let mut ndb = Ndb::new(out)?;
        ndb.reserve_nid_index(NID_TYPE_NORMAL_FOLDER, NID_DELETED_ITEMS >> 5);
        let mut writer = Self {
            ndb,
            record_key: record_key(),
            display_name: display_name.to_string(),
            folders: Vec::new(),
            folder_index: HashMap::new(),
            named: HashMap::new(),
            named_order: Vec::new(),
            items: 0,
        };
        // Readers insist on a non-empty GUID stream: register one named
        // property up front.
        writer.named_id(Named {
            set: PSETID_COMMON,
            lid: 0x8516,
        });
        writer.push_folder(NID_ROOT_FOLDER, NID_ROOT_FOLDER, "", None);
        writer.push_folder(
            NID_IPM_SUBTREE,
            NID_ROOT_FOLDER,
            "Top of Personal Folders",
            None,
        );
        writer.push_folder(NID_SEARCH_ROOT, NID_ROOT_FOLDER, "Search Root", None);
        writer.push_folder(
            NID_DELETED_ITEMS,
            NID_IPM_SUBTREE,
            "Deleted Items",
            Some("IPF.Note"),
        );
        Ok(writer)
    }

    fn push_folder(&mut self, nid: u32, parent: u32, name: &str, class: Option<&str>) {
        if parent != nid
            && let Some(&p) = self.folder_index.get(&parent)
        {
            self.folders[p].children.push(nid);
        }
        self.folder_index.insert(nid, self.folders.len());
        self.folders.push(FolderState {
            nid,
            parent,
            name: name.to_string(),
            container_class: class.map(str::to_string),
            children: Vec::new(),
            rows: Vec::new(),
            unread: 0,
        });
    }

    /// The top of the folder tree that mail clients show.
    pub fn root(&self) -> FolderId {
        FolderId(NID_IPM_SUBTREE)
    }

    /// The mandatory "Deleted Items" folder.
    pub fn deleted_items(&self) -> FolderId {
        FolderId(NID_DELETED_ITEMS)
    }

    /// Bytes the file has reached so far.
    pub fn bytes_written(&self) -> u64 {
        self.ndb.written()
    }

    pub fn item_count(&self) -> u64 {
        self.items
    }

    /// Blocks and nodes held in memory for the final B-trees.
    pub fn index_entries(&self) -> (usize, usize) {
        (self.ndb.block_count(), self.ndb.node_count())
    }

    pub fn add_folder(
        &mut self,
        parent: FolderId,
        name: &str,
        container_class: &str,
    ) -> Result<FolderId, PstError> {
        if !self.folder_index.contains_key(&parent.0) || parent.0 == NID_ROOT_FOLDER {
            return Err(PstError::UnknownFolder(parent.0));
        }
        if name.is_empty() {
            return Err(PstError::InvalidItem("a folder needs a name".into()));
        }
        let nid = self.ndb.new_nid(NID_TYPE_NORMAL_FOLDER);
        self.push_folder(nid, parent.0, name, Some(container_class));
        Ok(FolderId(nid))
    }

    fn named_id(&mut self, named: Named) -> u16 {
        if let Some(id) = self.named.get(&named) {
            return *id;
        }
        let id = 0x8000 + self.named_order.len() as u16;
        self.named.insert(named, id);
        self.named_order.push((named, id));
        id
    }

    pub fn add_message(&mut self, folder: FolderId, message: &Message) -> Result<(), PstError> {
        let class = message
            .message_class
            .clone()
            .unwrap_or_else(|| "IPM.Note".into());
        let mut props = vec![
            (tag::MESSAGE_CLASS, Value::Unicode(class)),
            (tag::SUBJECT, Value::Unicode(message.subject.clone())),
            (tag::IMPORTANCE, Value::I32(importance(message.importance))),
        ];
        if let Some(from) = &message.from {
            sender_props(&mut props, from);
        }
        if let Some(t) = message.sent {
            props.push((tag::CLIENT_SUBMIT_TIME, Value::Time(filetime(t))));
        }
        if let Some(t) = message.received.or(message.sent) {
            props.push((tag::MESSAGE_DELIVERY_TIME, Value::Time(filetime(t))));
            props.push((tag::CREATION_TIME, Value::Time(filetime(t))));
            props.push((tag::LAST_MODIFICATION_TIME, Value::Time(filetime(t))));
        }
        body_props(
            &mut props,
            message.body_text.as_deref(),
            message.body_html.as_deref(),
        );
        if let Some(id) = &message.internet_message_id {
            props.push((tag::INTERNET_MESSAGE_ID, Value::Unicode(id.clone())));
        }
        if message.flagged {
            props.push((tag::FLAG_STATUS, Value::I32(2)));
        }
        let mut recipients = Vec::new();
        recipients.extend(message.to.iter().map(|m| (m, 1)));
        recipients.extend(message.cc.iter().map(|m| (m, 2)));
        recipients.extend(message.bcc.iter().map(|m| (m, 3)));
        let item = ItemData {
            props,
            named: Vec::new(),
            recipients,
            attachments: &message.attachments,
        };
        self.write_item(folder, item, message.read)
    }

    pub fn add_contact(&mut self, folder: FolderId, contact: &Contact) -> Result<(), PstError> {
        let mut props = vec![
            (tag::MESSAGE_CLASS, Value::Unicode("IPM.Contact".into())),
            (tag::SUBJECT, Value::Unicode(contact.display_name.clone())),
            (
                tag::DISPLAY_NAME,
                Value::Unicode(contact.display_name.clone()),
            ),
            (tag::IMPORTANCE, Value::I32(1)),
        ];
        let optional = [
            (tag::GIVEN_NAME, &contact.given_name),
            (tag::SURNAME, &contact.surname),
            (tag::COMPANY_NAME, &contact.company),
            (tag::TITLE, &contact.job_title),
            (tag::BUSINESS_PHONE, &contact.business_phone),
            (tag::MOBILE_PHONE, &contact.mobile_phone),
            (tag::HOME_PHONE, &contact.home_phone),
        ];
        for (id, value) in optional {
            if let Some(v) = value {
                props.push((id, Value::Unicode(v.clone())));
            }
        }
        body_props(&mut props, contact.notes.as_deref(), None);
        let mut named = vec![(
            Named {
                set: PSETID_ADDRESS,
                lid: 0x8005,
            },
            Value::Unicode(contact.display_name.clone()),
        )];
        // Email1..Email3: display name, address type, address, original display name.
        for (i, email) in contact.emails.iter().take(3).enumerate() {
            let base = 0x8080 + 0x10 * i as u32;
            let shown = format!("{} ({email})", contact.display_name);
            named.push((
                Named {
                    set: PSETID_ADDRESS,
                    lid: base,
                },
                Value::Unicode(shown),
            ));
            named.push((
                Named {
                    set: PSETID_ADDRESS,
                    lid: base + 2,
                },
                Value::Unicode("SMTP".into()),
            ));
            named.push((
                Named {
                    set: PSETID_ADDRESS,
                    lid: base + 3,
                },
                Value::Unicode(email.clone()),
            ));
            named.push((
                Named {
                    set: PSETID_ADDRESS,
                    lid: base + 4,
                },
                Value::Unicode(email.clone()),
            ));
        }
        let item = ItemData {
            props,
            named,
            recipients: Vec::new(),
            attachments: &[],
        };
        self.write_item(folder, item, true)
    }

    pub fn add_appointment(
        &mut self,
        folder: FolderId,
        appointment: &Appointment,
    ) -> Result<(), PstError> {
        if appointment.end < appointment.start {
            return Err(PstError::InvalidItem(format!(
                "appointment {:?} ends before it starts",
                appointment.subject
            )));
        }
        let start = Value::Time(filetime(appointment.start));
        let end = Value::Time(filetime(appointment.end));
        let mut props = vec![
            (tag::MESSAGE_CLASS, Value::Unicode("IPM.Appointment".into())),
            (tag::SUBJECT, Value::Unicode(appointment.subject.clone())),
            (tag::IMPORTANCE, Value::I32(1)),
            (tag::START_DATE, start.clone()),
            (tag::END_DATE, end.clone()),
        ];
        if let Some(organizer) = &appointment.organizer {
            sender_props(&mut props, organizer);
        }
        body_props(&mut props, appointment.body.as_deref(), None);
        let appt = |lid| Named {
            set: PSETID_APPOINTMENT,
            lid,
        };
        let common = |lid| Named {
            set: PSETID_COMMON,
            lid,
        };
        let mut named = vec![
            (appt(0x820D), start.clone()),
            (appt(0x820E), end.clone()),
            (appt(0x8205), Value::I32(2)),
            (appt(0x8215), Value::Bool(appointment.all_day)),
            (appt(0x8223), Value::Bool(appointment.recurrence.is_some())),
            (
                appt(0x8217),
                Value::I32(if appointment.attendees.is_empty() {
                    0
                } else {
                    1
                }),
            ),
            (common(0x8516), start.clone()),
            (common(0x8517), end.clone()),
        ];
        if let Some(location) = &appointment.location {
            named.push((appt(0x8208), Value::Unicode(location.clone())));
        }
        match &appointment.recurrence {
            Some(recurrence) => {
                let blob = recur::appointment_recurrence_blob(appointment, recurrence)?;
                named.push((appt(0x8216), Value::Binary(blob.bytes)));
                named.push((appt(0x8231), Value::I32(blob.recur_type)));
                named.push((appt(0x8235), Value::Time(blob.clip_start)));
                named.push((appt(0x8236), Value::Time(blob.clip_end)));
            }
            None => {
                named.push((appt(0x8235), start));
                named.push((appt(0x8236), end));
            }
        }
        let recipients = appointment.attendees.iter().map(|m| (m, 1)).collect();
        let item = ItemData {
            props,
            named,
            recipients,
            attachments: &[],
        };
        self.write_item(folder, item, true)
    }

    pub fn add_task(&mut self, folder: FolderId, task: &Task) -> Result<(), PstError> {
        if !(0.0..=1.0).contains(&task.percent_complete) {
            return Err(PstError::InvalidItem(format!(
                "task {:?} percent_complete outside 0..=1",
                task.subject
            )));
        }
        let mut props = vec![
            (tag::MESSAGE_CLASS, Value::Unicode("IPM.Task".into())),
            (tag::SUBJECT, Value::Unicode(task.subject.clone())),
            (tag::IMPORTANCE, Value::I32(importance(task.importance))),
        ];
        body_props(&mut props, task.body.as_deref(), None);
        let t = |lid| Named {
            set: PSETID_TASK,
            lid,
        };
        let status = match task.status {
            TaskStatus::NotStarted => 0,
            TaskStatus::InProgress => 1,
            TaskStatus::Completed => 2,
            TaskStatus::WaitingOnOthers => 3,
            TaskStatus::Deferred => 4,
        };
        let mut named = vec![
            (t(0x8101), Value::I32(status)),
            (t(0x8102), Value::Double(task.percent_complete)),
            (t(0x811C), Value::Bool(task.status == TaskStatus::Completed)),
            (t(0x8126), Value::Bool(false)),
        ];
        if let Some(start) = task.start {
            named.push((t(0x8104), Value::Time(filetime(start))));
        }
        if let Some(due) = task.due {
            named.push((t(0x8105), Value::Time(filetime(due))));
        }
        let item = ItemData {
            props,
            named,
            recipients: Vec::new(),
            attachments: &[],
        };
        self.write_item(folder, item, true)
    }

    pub fn add_note(&mut self, folder: FolderId, note: &Note) -> Result<(), PstError> {
        let subject = note.body.lines().next().unwrap_or_default().to_string();
        let mut props = vec![
            (tag::MESSAGE_CLASS, Value::Unicode("IPM.StickyNote".into())),
            (tag::SUBJECT, Value::Unicode(subject)),
            (tag::IMPORTANCE, Value::I32(1)),
        ];
        if let Some(t) = note.created {
            props.push((tag::CREATION_TIME, Value::Time(filetime(t))));
            props.push((tag::LAST_MODIFICATION_TIME, Value::Time(filetime(t))));
        }
        body_props(&mut props, Some(&note.body), None);
        let n = |lid| Named {
            set: PSETID_NOTE,
            lid,
        };
        let named = vec![
            (n(0x8B00), Value::I32(3)),
            (n(0x8B02), Value::I32(200)),
            (n(0x8B03), Value::I32(166)),
        ];
        let item = ItemData {
            props,
            named,
            recipients: Vec::new(),
            attachments: &[],
        };
        self.write_item(folder, item, true)
    }

    fn write_item(
        &mut self,
        folder: FolderId,
        item: ItemData<'_>,
        read: bool,
    ) -> Result<(), PstError> {
        let folder_pos = *self
            .folder_index
            .get(&folder.0)
            .ok_or(PstError::UnknownFolder(folder.0))?;
        if matches!(folder.0, NID_ROOT_FOLDER | NID_SEARCH_ROOT) {
            return Err(PstError::UnknownFolder(folder.0));
        }
        let ItemData {
            mut props,
            named,
            recipients,
            attachments,
        } = item;
        for (n, value) in named {
            let id = self.named_id(n);
            props.push((id, value));
        }
        let mut subnodes = Subnodes::default();
        let mut size: u64 = props.iter().map(|p| p.1.bytes().len() as u64 + 8).sum();

        // Recipients.
        let mut display = [Vec::new(), Vec::new(), Vec::new()];
        let mut rows = Vec::with_capacity(recipients.len());
        for (i, (mailbox, kind)) in recipients.iter().enumerate() {
            let name = if mailbox.name.is_empty() {
                &mailbox.email
            } else {
                &mailbox.name
            };
            display[(*kind as usize).clamp(1, 3) - 1].push(name.clone());
            rows.push((
                i as u32,
                vec![
                    Some(Value::I32(*kind)),
                    Some(Value::Bool(true)),
                    Some(Value::I32(6)),
                    Some(Value::Unicode(name.clone())),
                    Some(Value::Unicode("SMTP".into())),
                    Some(Value::Unicode(mailbox.email.clone())),
                    Some(Value::Binary(
                        format!("SMTP:{}\0", mailbox.email.to_uppercase()).into_bytes(),
                    )),
                    Some(Value::I32(0)),
                    Some(Value::Unicode(mailbox.email.clone())),
                    Some(Value::Unicode(name.clone())),
                ],
            ));
        }
        let recipient_columns = [
            Column {
                id: tag::RECIPIENT_TYPE,
                ptype: pt::I32,
            },
            Column {
                id: tag::RESPONSIBILITY,
                ptype: pt::BOOL,
            },
            Column {
                id: tag::OBJECT_TYPE,
                ptype: pt::I32,
            },
            Column {
                id: tag::DISPLAY_NAME,
                ptype: pt::UNICODE,
            },
            Column {
                id: tag::ADDRTYPE,
                ptype: pt::UNICODE,
            },
            Column {
                id: tag::EMAIL_ADDRESS,
                ptype: pt::UNICODE,
            },
            Column {
                id: tag::SEARCH_KEY,
                ptype: pt::BINARY,
            },
            Column {
                id: tag::DISPLAY_TYPE,
                ptype: pt::I32,
            },
            Column {
                id: tag::SMTP_ADDRESS,
                ptype: pt::UNICODE,
            },
            Column {
                id: tag::RECIPIENT_DISPLAY_NAME,
                ptype: pt::UNICODE,
            },
        ];
        let mut table_subnodes = Subnodes::default();
        let bid = write_tc(
            &mut self.ndb,
            &mut table_subnodes,
            &recipient_columns,
            &rows,
        )?;
        let bid_sub = self.ndb.write_subnodes(table_subnodes.entries)?;
        subnodes.entries.push(SubnodeEntry {
            nid: NID_RECIPIENT_TABLE,
            bid_data: bid,
            bid_sub,
        });
        for (id, names) in [tag::DISPLAY_TO, tag::DISPLAY_CC, tag::DISPLAY_BCC]
            .into_iter()
            .zip(&display)
        {
            if !names.is_empty() {
                props.push((id, Value::Unicode(names.join("; "))));
            }
        }

        // Attachments.
        if !attachments.is_empty() {
            let mut rows = Vec::with_capacity(attachments.len());
            for (i, attachment) in attachments.iter().enumerate() {
                let nid = subnodes.new_nid(NID_TYPE_ATTACHMENT);
                let data_len = i32::try_from(attachment.data.len())
                    .map_err(|_| PstError::TooLarge("an attachment"))?;
                size += attachment.data.len() as u64;
                let name = if attachment.name.is_empty() {
                    format!("attachment{}", i + 1)
                } else {
                    attachment.name.clone()
                };
                let mut attach_props = vec![
                    (tag::ATTACH_METHOD, Value::I32(1)),
                    (tag::ATTACH_SIZE, Value::I32(data_len)),
                    (tag::ATTACH_NUM, Value::I32(i as i32)),
                    (tag::RENDERING_POSITION, Value::I32(-1)),
                    (tag::DISPLAY_NAME, Value::Unicode(name.clone())),
                    (tag::ATTACH_FILENAME, Value::Unicode(name.clone())),
                    (tag::ATTACH_LONG_FILENAME, Value::Unicode(name.clone())),
                    (tag::OBJECT_TYPE, Value::I32(7)),
                ];
                if let Some(ext) = std::path::Path::new(&name)
                    .extension()
                    .and_then(|e| e.to_str())
                {
                    attach_props.push((tag::ATTACH_EXTENSION, Value::Unicode(format!(".{ext}"))));
                }
                if !attachment.mime_type.is_empty() {
                    attach_props.push((
                        tag::ATTACH_MIME_TAG,
                        Value::Unicode(attachment.mime_type.clone()),
                    ));
                }
                let mut attach_subnodes = Subnodes::default();
                // Large contents go straight to their subnode, without a copy.
                let mut stored = Vec::new();
                if attachment.data.len() > ltp::MAX_HEAP_ALLOC {
                    let nid = attach_subnodes.add_data(&mut self.ndb, &attachment.data)?;
                    stored.push((tag::ATTACH_DATA_BIN, pt::BINARY, nid));
                } else {
                    attach_props
                        .push((tag::ATTACH_DATA_BIN, Value::Binary(attachment.data.clone())));
                }
                let bid = ltp::write_pc_with_stored(
                    &mut self.ndb,
                    &mut attach_subnodes,
                    &mut attach_props,
                    &stored,
                )?;
                drop(attach_props);
                let bid_sub = self.ndb.write_subnodes(attach_subnodes.entries)?;
                subnodes.entries.push(SubnodeEntry {
                    nid,
                    bid_data: bid,
                    bid_sub,
                });
                rows.push((
                    nid,
                    vec![
                        Some(Value::I32(data_len)),
                        Some(Value::Unicode(name.clone())),
                        Some(Value::I32(1)),
                        Some(Value::I32(-1)),
                        Some(Value::Unicode(name)),
                    ],
                ));
            }
            let columns = [
                Column {
                    id: tag::ATTACH_SIZE,
                    ptype: pt::I32,
                },
                Column {
                    id: tag::ATTACH_FILENAME,
                    ptype: pt::UNICODE,
                },
                Column {
                    id: tag::ATTACH_METHOD,
                    ptype: pt::I32,
                },
                Column {
                    id: tag::RENDERING_POSITION,
                    ptype: pt::I32,
                },
                Column {
                    id: tag::ATTACH_LONG_FILENAME,
                    ptype: pt::UNICODE,
                },
            ];
            let mut table_subnodes = Subnodes::default();
            let bid = write_tc(&mut self.ndb, &mut table_subnodes, &columns, &rows)?;
            let bid_sub = self.ndb.write_subnodes(table_subnodes.entries)?;
            subnodes.entries.push(SubnodeEntry {
                nid: NID_ATTACHMENT_TABLE,
                bid_data: bid,
                bid_sub,
            });
        }

        let mut flags = 0;
        if read {
            flags |= 0x01;
        }
        if !attachments.is_empty() {
            flags |= 0x10;
        }
        let size = i32::try_from(size).unwrap_or(i32::MAX);
        props.push((tag::MESSAGE_FLAGS, Value::I32(flags)));
        props.push((tag::MESSAGE_SIZE, Value::I32(size)));
        props.push((tag::HASATTACH, Value::Bool(!attachments.is_empty())));
        props.push((tag::MESSAGE_STATUS, Value::I32(0)));

        let row = contents_row(&props, flags, size);
        let bid_data = write_pc(&mut self.ndb, &mut subnodes, &mut props)?;
        drop(props);
        let bid_sub = self.ndb.write_subnodes(subnodes.entries)?;
        let nid = self.ndb.new_nid(NID_TYPE_NORMAL_MESSAGE);
        self.ndb.add_node(NbtEntry {
            nid,
            bid_data,
            bid_sub,
            nid_parent: folder.0,
        });
        let folder = &mut self.folders[folder_pos];
        if !read {
            folder.unread += 1;
        }
        folder.rows.push(ContentsRow { nid, ..row });
        self.items += 1;
        Ok(())
    }

    fn entry_id(&self, nid: u32) -> Vec<u8> {
        let mut id = vec![0u8; 4];
        id.extend_from_slice(&self.record_key);
        id.extend_from_slice(&nid.to_le_bytes());
        id
    }

    fn write_node(
        &mut self,
        nid: u32,
        parent: u32,
        bid_data: u64,
        subnodes: Subnodes,
    ) -> Result<(), PstError> {
        let bid_sub = self.ndb.write_subnodes(subnodes.entries)?;
        self.ndb.add_node(NbtEntry {
            nid,
            bid_data,
            bid_sub,
            nid_parent: parent,
        });
        Ok(())
    }

    /// Writes folders, tables, the store and the B-trees; returns the output.
    pub fn finish(mut self) -> Result<W, PstError> {
        self.write_folders()?;
        self.write_store()?;
        self.write_name_map()?;
        self.write_templates()?;
        let (out, _) = self.ndb.finish()?;
        Ok(out)
    }

    fn write_folders(&mut self) -> Result<(), PstError> {
        let hierarchy_columns = [
            Column {
                id: tag::DISPLAY_NAME,
                ptype: pt::UNICODE,
            },
            Column {
                id: tag::CONTENT_COUNT,
                ptype: pt::I32,
            },
            Column {
                id: tag::CONTENT_UNREAD,
                ptype: pt::I32,
            },
            Column {
                id: tag::SUBFOLDERS,
                ptype: pt::BOOL,
            },
            Column {
                id: tag::CONTAINER_CLASS,
                ptype: pt::UNICODE,
            },
        ];
        let folders = std::mem::take(&mut self.folders);
        for folder in &folders {
            let mut props = vec![
                (tag::DISPLAY_NAME, Value::Unicode(folder.name.clone())),
                (tag::CONTENT_COUNT, Value::I32(folder.rows.len() as i32)),
                (tag::CONTENT_UNREAD, Value::I32(folder.unread)),
                (tag::SUBFOLDERS, Value::Bool(!folder.children.is_empty())),
            ];
            if let Some(class) = &folder.container_class {
                props.push((tag::CONTAINER_CLASS, Value::Unicode(class.clone())));
            }
            let mut subnodes = Subnodes::default();
            let bid = write_pc(&mut self.ndb, &mut subnodes, &mut props)?;
            self.write_node(folder.nid, folder.parent, bid, subnodes)?;

            let rows: Vec<_> = folder
                .children
                .iter()
                .filter_map(|child| self.folder_index.get(child).map(|&i| &folders[i]))
                .map(|child| {
                    (
                        child.nid,
                        vec![
                            Some(Value::Unicode(child.name.clone())),
                            Some(Value::I32(child.rows.len() as i32)),
                            Some(Value::I32(child.unread)),
                            Some(Value::Bool(!child.children.is_empty())),
                            child.container_class.clone().map(Value::Unicode),
                        ],
                    )
                })
                .collect();
            let index = folder.nid & !0x1F;
            let mut subnodes = Subnodes::default();
            let bid = write_tc(&mut self.ndb, &mut subnodes, &hierarchy_columns, &rows)?;
            self.write_node(index | NID_TYPE_HIERARCHY_TABLE, 0, bid, subnodes)?;

            let rows: Vec<_> = folder.rows.iter().map(contents_cells).collect();
            let mut subnodes = Subnodes::default();
            let bid = write_tc(&mut self.ndb, &mut subnodes, &CONTENTS_COLUMNS, &rows)?;
            self.write_node(index | NID_TYPE_CONTENTS_TABLE, 0, bid, subnodes)?;

            let mut subnodes = Subnodes::default();
            let bid = write_tc(&mut self.ndb, &mut subnodes, &CONTENTS_COLUMNS, &[])?;
            self.write_node(index | NID_TYPE_ASSOC_CONTENTS_TABLE, 0, bid, subnodes)?;
        }
        self.folders = folders;
        Ok(())
    }

    fn write_store(&mut self) -> Result<(), PstError> {
        let mut props = vec![
            (tag::RECORD_KEY, Value::Binary(self.record_key.to_vec())),
            (tag::DISPLAY_NAME, Value::Unicode(self.display_name.clone())),
            (
                tag::IPM_SUBTREE_ENTRYID,
                Value::Binary(self.entry_id(NID_IPM_SUBTREE)),
            ),
            (
                tag::IPM_WASTEBASKET_ENTRYID,
                Value::Binary(self.entry_id(NID_DELETED_ITEMS)),
            ),
            (
                tag::FINDER_ENTRYID,
                Value::Binary(self.entry_id(NID_SEARCH_ROOT)),
            ),
            // IPM subtree, wastebasket and finder entry ids are valid.
            (tag::VALID_FOLDER_MASK, Value::I32(0x89)),
            (tag::PST_PASSWORD, Value::I32(0)),
        ];
        let mut subnodes = Subnodes::default();
        let bid = write_pc(&mut self.ndb, &mut subnodes, &mut props)?;
        self.write_node(NID_MESSAGE_STORE, 0, bid, subnodes)
    }

    /// The name-to-id map ([MS-PST] 2.4.7): GUID stream, entry stream and hash buckets.
    fn write_name_map(&mut self) -> Result<(), PstError> {
        const BUCKETS: u32 = 251;
        let mut guids: Vec<[u8; 16]> = Vec::new();
        let mut entries = Vec::new();
        let mut buckets: Vec<Vec<u8>> = vec![Vec::new(); BUCKETS as usize];
        let string_entry;
        // One string-named property (PS_PUBLIC_STRINGS "Keywords") keeps the
        // string stream non-empty, which readers require.
        let keywords: Vec<u8> = "Keywords"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let mut strings = (keywords.len() as u32).to_le_bytes().to_vec();
        strings.extend_from_slice(&keywords);
        {
            let id = 0x8000 + self.named_order.len() as u16;
            let mut entry = 0u32.to_le_bytes().to_vec();
            entry.extend_from_slice(&((2u16 << 1) | 1).to_le_bytes());
            entry.extend_from_slice(&(id - 0x8000).to_le_bytes());
            let bucket = (ndb::crc(&keywords) ^ ((2u32 << 1) | 1)) % BUCKETS;
            buckets[bucket as usize].extend_from_slice(&entry);
            string_entry = entry;
        }
        for (named, id) in &self.named_order {
            let guid_index = match guids.iter().position(|g| g == &named.set) {
                Some(i) => i,
                None => {
                    guids.push(named.set);
                    guids.len() - 1
                }
            };
            // wGuid: 1 = PS_MAPI, 2 = PS_PUBLIC_STRINGS, 3.. = index into the GUID stream.
            let w_guid = (guid_index + 3) as u16;
            let mut entry = named.lid.to_le_bytes().to_vec();
            entry.extend_from_slice(&(w_guid << 1).to_le_bytes());
            entry.extend_from_slice(&(id - 0x8000).to_le_bytes());
            let bucket = (named.lid ^ (u32::from(w_guid) << 1)) % BUCKETS;
            buckets[bucket as usize].extend_from_slice(&entry);
            entries.extend_from_slice(&entry);
        }
        entries.extend_from_slice(&string_entry);
        let mut props = vec![
            (0x0001, Value::I32(BUCKETS as i32)),
            (0x0002, Value::Binary(guids.concat())),
            (0x0003, Value::Binary(entries)),
            (0x0004, Value::Binary(strings)),
        ];
        for (i, bucket) in buckets.into_iter().enumerate() {
            if !bucket.is_empty() {
                props.push((0x1000 + i as u16, Value::Binary(bucket)));
            }
        }
        let mut subnodes = Subnodes::default();
        let bid = write_pc(&mut self.ndb, &mut subnodes, &mut props)?;
        self.write_node(NID_NAME_TO_ID_MAP, 0, bid, subnodes)
    }

    /// Empty internal nodes and table templates a PST must have ([MS-PST] 2.7.1).
    fn write_templates(&mut self) -> Result<(), PstError> {
        for nid in [0x1E1, 0x201, 0x261] {
            let bid = self.ndb.write_block(&[], false)?;
            self.write_node(nid, 0, bid, Subnodes::default())?;
        }
        let hierarchy = [
            Column {
                id: tag::DISPLAY_NAME,
                ptype: pt::UNICODE,
            },
            Column {
                id: tag::CONTENT_COUNT,
                ptype: pt::I32,
            },
            Column {
                id: tag::CONTENT_UNREAD,
                ptype: pt::I32,
            },
            Column {
                id: tag::SUBFOLDERS,
                ptype: pt::BOOL,
            },
            Column {
                id: tag::CONTAINER_CLASS,
                ptype: pt::UNICODE,
            },
        ];
        let attachments = [
            Column {
                id: tag::ATTACH_SIZE,
                ptype: pt::I32,
            },
            Column {
                id: tag::ATTACH_FILENAME,
                ptype: pt::UNICODE,
            },
            Column {
                id: tag::ATTACH_METHOD,
                ptype: pt::I32,
            },
            Column {
                id: tag::RENDERING_POSITION,
                ptype: pt::I32,
            },
        ];
        let recipients = [
            Column {
                id: tag::RECIPIENT_TYPE,
                ptype: pt::I32,
            },
            Column {
                id: tag::DISPLAY_NAME,
                ptype: pt::UNICODE,
            },
            Column {
                id: tag::ADDRTYPE,
                ptype: pt::UNICODE,
            },
            Column {
                id: tag::EMAIL_ADDRESS,
                ptype: pt::UNICODE,
            },
        ];
        let templates: [(u32, &[Column]); 6] = [
            (0x60D, &hierarchy),
            (0x60E, &CONTENTS_COLUMNS),
            (0x60F, &CONTENTS_COLUMNS),
            (0x610, &CONTENTS_COLUMNS),
            (0x671, &attachments),
            (0x692, &recipients),
        ];
        for (nid, columns) in templates {
            let mut subnodes = Subnodes::default();
            let bid = write_tc(&mut self.ndb, &mut subnodes, columns, &[])?;
            self.write_node(nid, 0, bid, subnodes)?;
        }
        Ok(())
    }
}

const CONTENTS_COLUMNS: [Column; 10] = [
    Column {
        id: tag::IMPORTANCE,
        ptype: pt::I32,
    },
    Column {
        id: tag::MESSAGE_CLASS,
        ptype: pt::UNICODE,
    },
    Column {
        id: tag::SUBJECT,
        ptype: pt::UNICODE,
    },
    Column {
        id: tag::CLIENT_SUBMIT_TIME,
        ptype: pt::TIME,
    },
    Column {
        id: tag::SENT_REPRESENTING_NAME,
        ptype: pt::UNICODE,
    },
    Column {
        id: tag::DISPLAY_TO,
        ptype: pt::UNICODE,
    },
    Column {
        id: tag::MESSAGE_DELIVERY_TIME,
        ptype: pt::TIME,
    },
    Column {
        id: tag::MESSAGE_FLAGS,
        ptype: pt::I32,
    },
    Column {
        id: tag::MESSAGE_SIZE,
        ptype: pt::I32,
    },
    Column {
        id: tag::MESSAGE_STATUS,
        ptype: pt::I32,
    },
];

fn contents_row(props: &[(u16, Value)], flags: i32, size: i32) -> ContentsRow {
    let find = |id: u16| props.iter().find(|p| p.0 == id).map(|p| &p.1);
    let text = |id: u16| match find(id) {
        Some(Value::Unicode(s)) => truncate(s, TABLE_STRING_CHARS),
        _ => String::new(),
    };
    let time = |id: u16| match find(id) {
        Some(Value::Time(t)) => Some(*t),
        _ => None,
    };
    ContentsRow {
        nid: 0,
        importance: match find(tag::IMPORTANCE) {
            Some(Value::I32(i)) => *i,
            _ => 1,
        },
        message_class: text(tag::MESSAGE_CLASS),
        subject: text(tag::SUBJECT),
        sender: text(tag::SENT_REPRESENTING_NAME),
        display_to: text(tag::DISPLAY_TO),
        submit_time: time(tag::CLIENT_SUBMIT_TIME),
        delivery_time: time(tag::MESSAGE_DELIVERY_TIME),
        flags,
        size,
    }
}

fn contents_cells(row: &ContentsRow) -> (u32, Vec<Option<Value>>) {
    let text = |s: &String| (!s.is_empty()).then(|| Value::Unicode(s.clone()));
    (
        row.nid,
        vec![
            Some(Value::I32(row.importance)),
            text(&row.message_class),
            text(&row.subject),
            row.submit_time.map(Value::Time),
            text(&row.sender),
            text(&row.display_to),
            row.delivery_time.map(Value::Time),
            Some(Value::I32(row.flags)),
            Some(Value::I32(row.size)),
            Some(Value::I32(0)),
        ],
    )
}

fn importance(i: Importance) -> i32 {
    match i {
        Importance::Low => 0,
        Importance::Normal => 1,
        Importance::High => 2,
    }
}

fn sender_props(props: &mut Vec<(u16, Value)>, from: &Mailbox) {
    let name = if from.name.is_empty() {
        from.email.clone()
    } else {
        from.name.clone()
    };
    for (id, value) in [
        (tag::SENDER_NAME, name.clone()),
        (tag::SENDER_EMAIL, from.email.clone()),
        (tag::SENDER_ADDRTYPE, "SMTP".into()),
        (tag::SENDER_SMTP_ADDRESS, from.email.clone()),
        (tag::SENT_REPRESENTING_NAME, name),
        (tag::SENT_REPRESENTING_EMAIL, from.email.clone()),
        (tag::SENT_REPRESENTING_ADDRTYPE, "SMTP".into()),
        (tag::SENT_REPRESENTING_SMTP_ADDRESS, from.email.clone()),
    ] {
        props.push((id, Value::Unicode(value)));
    }
}

fn body_props(props: &mut Vec<(u16, Value)>, text: Option<&str>, html: Option<&str>) {
    if let Some(text) = text {
        props.push((tag::BODY, Value::Unicode(text.to_string())));
    }
    if let Some(html) = html {
        props.push((tag::HTML, Value::Binary(html.as_bytes().to_vec())));
        props.push((tag::INTERNET_CPID, Value::I32(65001)));
    }
    let native = if html.is_some() { 3 } else { 1 };
    props.push((tag::NATIVE_BODY, Value::I32(native)));
}
