//! The three independent PST readers the tests check our files with:
//! Microsoft's `outlook-pst` crate, libpst's `readpst` and libpff's `pffexport`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use outlook_pst::UnicodePstFile;
use outlook_pst::ltp::prop_context::PropertyValue;
use outlook_pst::ltp::table_context::TableContext;
use outlook_pst::messaging::attachment::{Attachment as _, AttachmentData, UnicodeAttachment};
use outlook_pst::messaging::message::{Message as _, UnicodeMessage};
use outlook_pst::messaging::store::{Store as _, UnicodeStore};
use outlook_pst::ndb::node_id::NodeId;

/// One item as `outlook-pst` sees it.
#[derive(Debug, Default, Clone)]
pub struct OpItem {
    pub folder: String,
    pub props: BTreeMap<u16, PropertyValue>,
    /// Named properties by (property set Data1, LID).
    pub named: BTreeMap<(u32, u32), PropertyValue>,
    pub recipients: Vec<BTreeMap<u16, PropertyValue>>,
    pub attachments: Vec<(String, Vec<u8>)>,
}

impl OpItem {
    pub fn text(&self, id: u16) -> Option<String> {
        text(self.props.get(&id)?)
    }
    pub fn named_text(&self, set: u32, lid: u32) -> Option<String> {
        text(self.named.get(&(set, lid))?)
    }
}

pub fn text(v: &PropertyValue) -> Option<String> {
    match v {
        PropertyValue::Unicode(s) => Some(s.to_string()),
        PropertyValue::Binary(b) => Some(String::from_utf8_lossy(b.buffer()).into_owned()),
        _ => None,
    }
}

fn table_rows(table: &Rc<dyn TableContext>) -> Vec<(u32, BTreeMap<u16, PropertyValue>)> {
    let context = table.context();
    let mut out = Vec::new();
    for row in table.rows_matrix() {
        let mut cells = BTreeMap::new();
        let columns = row.columns(context).expect("row columns");
        for (column, value) in context.columns().iter().zip(columns) {
            if let Some(value) = value {
                let v = table.read_column(&value, column.prop_type()).expect("cell");
                cells.insert(column.prop_id(), v);
            }
        }
        out.push((u32::from(row.id()), cells));
    }
    out
}

/// Walks the IPM subtree through hierarchy and contents tables.
pub fn outlook_pst_items(path: &Path) -> (Vec<String>, Vec<OpItem>) {
    let pst = UnicodePstFile::open(path).expect("outlook-pst opens the file");
    let store = UnicodeStore::read(Rc::new(pst)).expect("outlook-pst reads the store");
    let map = store.named_property_map().expect("named property map");
    let props = map.properties();
    let guids = props
        .get(0x0002)
        .and_then(|v| match v {
            PropertyValue::Binary(b) => Some(b.buffer().to_vec()),
            _ => None,
        })
        .unwrap_or_default();
    let entries = props
        .get(0x0003)
        .and_then(|v| match v {
            PropertyValue::Binary(b) => Some(b.buffer().to_vec()),
            _ => None,
        })
        .expect("name-to-id entry stream");
    let mut named_ids = BTreeMap::new();
    for e in entries.chunks(8) {
        let lid = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let w_guid = u16::from_le_bytes([e[4], e[5]]) >> 1;
        if e[4] & 1 == 1 || w_guid < 3 {
            continue; // string-named or a well-known set
        }
        let index = u16::from_le_bytes([e[6], e[7]]);
        let g = (usize::from(w_guid) - 3) * 16;
        let data1 = u32::from_le_bytes([guids[g], guids[g + 1], guids[g + 2], guids[g + 3]]);
        named_ids.insert(0x8000 + index, (data1, lid));
    }

    let mut folders = Vec::new();
    let mut items = Vec::new();
    let root = store
        .properties()
        .ipm_sub_tree_entry_id()
        .expect("IPM subtree entry id");
    let mut stack = vec![(root, String::new())];
    while let Some((entry, parent_path)) = stack.pop() {
        let folder = store.open_folder(&entry).expect("open folder");
        let name = folder.properties().display_name().expect("folder name");
        let path = if parent_path.is_empty() && folders.is_empty() {
            String::new()
        } else if parent_path.is_empty() {
            name.clone()
        } else {
            format!("{parent_path}/{name}")
        };
        assert!(
            folder.associated_table().is_some(),
            "associated contents table of {path}"
        );
        if !path.is_empty() {
            folders.push(path.clone());
        } else {
            folders.push("/".into());
        }
        if let Some(contents) = folder.contents_table() {
            for (row_id, _) in table_rows(contents) {
                let eid = store
                    .properties()
                    .make_entry_id(NodeId::from(row_id))
                    .expect("entry id");
                let message =
                    UnicodeMessage::read(store.clone(), &eid, None).expect("open message");
                let mut item = OpItem {
                    folder: path.clone(),
                    ..Default::default()
                };
                for (id, v) in message.properties().iter() {
                    if let Some(named) = named_ids.get(id) {
                        item.named.insert(*named, v.clone());
                    }
                    item.props.insert(*id, v.clone());
                }
                if let Some(recipients) = message.recipient_table() {
                    item.recipients = table_rows(recipients).into_iter().map(|r| r.1).collect();
                }
                if let Some(attachments) = message.attachment_table() {
                    for (row_id, _) in table_rows(attachments) {
                        let a =
                            UnicodeAttachment::read(message.clone(), NodeId::from(row_id), None)
                                .expect("open attachment");
                        let name = a
                            .properties()
                            .get(0x3707)
                            .and_then(text)
                            .unwrap_or_default();
                        let data = match a.data() {
                            Some(AttachmentData::Binary(b)) => b.buffer().to_vec(),
                            _ => panic!("attachment {name} has no binary data"),
                        };
                        items_push_attachment(&mut item, name, data);
                    }
                }
                items.push(item);
            }
        }
        if let Some(hierarchy) = folder.hierarchy_table() {
            for (row_id, _) in table_rows(hierarchy) {
                let eid = store
                    .properties()
                    .make_entry_id(NodeId::from(row_id))
                    .expect("entry id");
                stack.push((eid, path.clone()));
            }
        }
    }
    (folders, items)
}

fn items_push_attachment(item: &mut OpItem, name: String, data: Vec<u8>) {
    item.attachments.push((name, data));
}

/// Runs `readpst` and returns the files it wrote, relative to its output dir.
pub fn readpst(path: &Path, out: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(out).expect("readpst output dir");
    let status = Command::new("readpst")
        .args(["-D", "-e", "-8", "-b", "-cv", "-q", "-j", "0", "-o"])
        .arg(out)
        .arg(path)
        .status()
        .expect("readpst is installed (Debian package pst-utils)");
    assert!(status.success(), "readpst failed on {}", path.display());
    files_under(out)
}

/// Runs `pffexport` and returns the files it wrote, relative to its export dir.
pub fn pffexport(path: &Path, target: &Path) -> BTreeMap<String, Vec<u8>> {
    let status = Command::new("pffexport")
        .args(["-m", "all", "-f", "all", "-q", "-t"])
        .arg(target)
        .arg(path)
        .status()
        .expect("pffexport is installed (Debian package pff-tools)");
    assert!(status.success(), "pffexport failed on {}", path.display());
    let mut dir = target.as_os_str().to_owned();
    dir.push(".export");
    files_under(&PathBuf::from(dir))
}

fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let entry = entry.expect("dir entry");
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&p).expect("read file"));
            }
        }
    }
    out
}

/// The value of a "Label:\t\tvalue" line in a pffexport text file.
pub fn pff_field(text: &str, label: &str) -> Option<String> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(label)
                .and_then(|rest| rest.strip_prefix(':'))
        })
        .map(|v| v.trim().to_string())
}
