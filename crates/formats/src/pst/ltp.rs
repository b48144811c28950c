//! LTP layer ([MS-PST] 2.3): heap-on-node, BTree-on-heap, property contexts
//! and table contexts, built in memory for one node and then written as a
//! data tree whose blocks are the heap pages.

use std::borrow::Cow;
use std::io::{Seek, Write};

use super::PstError;
use super::ndb::{MAX_BLOCK_DATA, Ndb, SubnodeEntry};

/// Largest single heap allocation.
pub const MAX_HEAP_ALLOC: usize = 3580;
const SIG_HN: u8 = 0xEC;
pub const CLIENT_PC: u8 = 0xBC;
pub const CLIENT_TC: u8 = 0x7C;
const CLIENT_BTH: u8 = 0xB5;
pub const NID_TYPE_LTP: u8 = 0x1F;

/// Property types ([MS-OXCDATA] 2.11.1).
pub mod pt {
    pub const I16: u16 = 0x0002;
    pub const I32: u16 = 0x0003;
    pub const DOUBLE: u16 = 0x0005;
    pub const BOOL: u16 = 0x000B;
    pub const I64: u16 = 0x0014;
    pub const UNICODE: u16 = 0x001F;
    pub const TIME: u16 = 0x0040;
    pub const BINARY: u16 = 0x0102;
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    I16(i16),
    I32(i32),
    Bool(bool),
    Double(f64),
    I64(i64),
    /// FILETIME: 100 ns ticks since 1601-01-01 UTC.
    Time(i64),
    Unicode(String),
    Binary(Vec<u8>),
}

impl Value {
    pub fn prop_type(&self) -> u16 {
        match self {
            Value::I16(_) => pt::I16,
            Value::I32(_) => pt::I32,
            Value::Bool(_) => pt::BOOL,
            Value::Double(_) => pt::DOUBLE,
            Value::I64(_) => pt::I64,
            Value::Time(_) => pt::TIME,
            Value::Unicode(_) => pt::UNICODE,
            Value::Binary(_) => pt::BINARY,
        }
    }

    /// Value stored in the 4 bytes of a PC record or TC cell, when it fits there.
    fn inline(&self) -> Option<u32> {
        match self {
            Value::I16(v) => Some(*v as u16 as u32),
            Value::I32(v) => Some(*v as u32),
            Value::Bool(v) => Some(u32::from(*v)),
            _ => None,
        }
    }

    /// The value as stored; binary values are borrowed, not copied.
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Value::I16(v) => Cow::Owned(v.to_le_bytes().to_vec()),
            Value::I32(v) => Cow::Owned(v.to_le_bytes().to_vec()),
            Value::Bool(v) => Cow::Owned(vec![u8::from(*v)]),
            Value::Double(v) => Cow::Owned(v.to_le_bytes().to_vec()),
            Value::I64(v) | Value::Time(v) => Cow::Owned(v.to_le_bytes().to_vec()),
            Value::Unicode(s) => Cow::Owned(s.encode_utf16().flat_map(u16::to_le_bytes).collect()),
            Value::Binary(b) => Cow::Borrowed(b),
        }
    }
}

/// Subnodes a node collects while its properties are laid out.
#[derive(Default)]
pub struct Subnodes {
    pub entries: Vec<SubnodeEntry>,
    next_index: u32,
}

impl Subnodes {
    pub fn new_nid(&mut self, nid_type: u8) -> u32 {
        self.next_index += 1;
        (self.next_index << 5) | u32::from(nid_type)
    }

    /// Stores `data` as a subnode of its own and returns the subnode's NID.
    pub fn add_data<W: Write + Seek>(
        &mut self,
        ndb: &mut Ndb<W>,
        data: &[u8],
    ) -> Result<u32, PstError> {
        let nid = self.new_nid(NID_TYPE_LTP);
        let bid_data = ndb.write_data(data)?;
        self.entries.push(SubnodeEntry {
            nid,
            bid_data,
            bid_sub: 0,
        });
        Ok(nid)
    }
}

struct HeapPage {
    data: Vec<u8>,
    starts: Vec<u16>,
}

fn page_header_len(index: usize) -> usize {
    if index == 0 {
        12
    } else if index >= 8 && (index - 8).is_multiple_of(128) {
        66
    } else {
        2
    }
}

/// A heap-on-node under construction.
pub struct Heap {
    client_sig: u8,
    user_root: u32,
    pages: Vec<HeapPage>,
}

impl Heap {
    pub fn new(client_sig: u8) -> Self {
        Self {
            client_sig,
            user_root: 0,
            pages: vec![HeapPage {
                data: Vec::new(),
                starts: Vec::new(),
            }],
        }
    }

    pub fn set_user_root(&mut self, hid: u32) {
        self.user_root = hid;
    }

    /// Allocates `bytes` (at most 3580) and returns its HID.
    pub fn alloc(&mut self, bytes: &[u8]) -> u32 {
        debug_assert!(bytes.len() <= MAX_HEAP_ALLOC);
        let aligned = bytes.len() + 1;
        let last = self.pages.len() - 1;
        let fits = |page: &HeapPage, index: usize| {
            let map = 4 + 2 * (page.starts.len() + 2);
            page_header_len(index) + page.data.len() + aligned + map <= MAX_BLOCK_DATA
                && page.starts.len() < 2047
        };
        if !fits(&self.pages[last], last) {
            self.pages.push(HeapPage {
                data: Vec::new(),
                starts: Vec::new(),
            });
        }
        let index = self.pages.len() - 1;
        let header = page_header_len(index);
        let page = &mut self.pages[index];
        page.starts.push((header + page.data.len()) as u16);
        // Sizes follow from the next start, so items are not padded; only the
        // page map is aligned.
        page.data.extend_from_slice(bytes);
        ((index as u32) << 16) | ((page.starts.len() as u32) << 5)
    }

    fn fill_level(page: &HeapPage, index: usize) -> u8 {
        let used = page_header_len(index) + page.data.len() + 4 + 2 * (page.starts.len() + 1);
        let free = MAX_BLOCK_DATA.saturating_sub(used);
        const LEVELS: [usize; 15] = [
            3584, 2560, 2048, 1792, 1536, 1280, 1024, 768, 512, 256, 128, 64, 32, 16, 8,
        ];
        LEVELS.iter().position(|&l| free >= l).unwrap_or(15) as u8
    }

    fn fill_levels(&self, first: usize, count: usize) -> Vec<u8> {
        let mut out = vec![0u8; count / 2];
        for i in 0..count {
            let level = self
                .pages
                .get(first + i)
                .map(|p| Self::fill_level(p, first + i))
                .unwrap_or(0);
            out[i / 2] |= level << ((i % 2) * 4);
        }
        out
    }

    /// Serialises the pages into node data blocks.
    pub fn into_blocks(self) -> Vec<Vec<u8>> {
        let mut blocks = Vec::with_capacity(self.pages.len());
        for (index, page) in self.pages.iter().enumerate() {
            let header = page_header_len(index);
            let end = header + page.data.len();
            let map_at = end.div_ceil(2) * 2;
            let mut b = Vec::with_capacity(map_at + 4 + 2 * (page.starts.len() + 1));
            b.extend_from_slice(&(map_at as u16).to_le_bytes());
            if index == 0 {
                b.push(SIG_HN);
                b.push(self.client_sig);
                b.extend_from_slice(&self.user_root.to_le_bytes());
                b.extend_from_slice(&self.fill_levels(0, 8));
            } else if header == 66 {
                b.extend_from_slice(&self.fill_levels(index, 128));
            }
            b.extend_from_slice(&page.data);
            b.resize(map_at, 0);
            b.extend_from_slice(&(page.starts.len() as u16).to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            for s in &page.starts {
                b.extend_from_slice(&s.to_le_bytes());
            }
            b.extend_from_slice(&(end as u16).to_le_bytes());
            blocks.push(b);
        }
        blocks
    }
}

/// Builds a BTree-on-heap from records sorted by key and returns the HID of its header.
pub fn build_bth(
    heap: &mut Heap,
    key_size: u8,
    data_size: u8,
    records: &[(Vec<u8>, Vec<u8>)],
) -> u32 {
    let mut levels = 0u8;
    let mut root = 0u32;
    if !records.is_empty() {
        let record_size = usize::from(key_size) + usize::from(data_size);
        let mut level: Vec<(Vec<u8>, u32)> = Vec::new();
        for chunk in records.chunks(MAX_HEAP_ALLOC / record_size) {
            let mut b = Vec::with_capacity(chunk.len() * record_size);
            for (k, d) in chunk {
                b.extend_from_slice(k);
                b.extend_from_slice(d);
            }
            level.push((chunk[0].0.clone(), heap.alloc(&b)));
        }
        while level.len() > 1 {
            levels += 1;
            let per = MAX_HEAP_ALLOC / (usize::from(key_size) + 4);
            let mut next = Vec::new();
            for chunk in level.chunks(per) {
                let mut b = Vec::new();
                for (k, hid) in chunk {
                    b.extend_from_slice(k);
                    b.extend_from_slice(&hid.to_le_bytes());
                }
                next.push((chunk[0].0.clone(), heap.alloc(&b)));
            }
            level = next;
        }
        root = level[0].1;
    }
    let mut header = vec![CLIENT_BTH, key_size, data_size, levels];
    header.extend_from_slice(&root.to_le_bytes());
    heap.alloc(&header)
}

/// Stores a variable-size value in the heap or, when too large, in a subnode;
/// returns the HNID.
fn store_variable<W: Write + Seek>(
    ndb: &mut Ndb<W>,
    heap: &mut Heap,
    subnodes: &mut Subnodes,
    bytes: &[u8],
) -> Result<u32, PstError> {
    if bytes.len() <= MAX_HEAP_ALLOC {
        Ok(heap.alloc(bytes))
    } else {
        subnodes.add_data(ndb, bytes)
    }
}

/// Writes a property context; returns the BID of its data tree. Empty
/// variable-size values are left out.
pub fn write_pc<W: Write + Seek>(
    ndb: &mut Ndb<W>,
    subnodes: &mut Subnodes,
    props: &mut Vec<(u16, Value)>,
) -> Result<u64, PstError> {
    write_pc_with_stored(ndb, subnodes, props, &[])
}

/// Like [`write_pc`], plus properties whose values the caller already
/// stored as subnodes: (property id, property type, subnode NID).
pub fn write_pc_with_stored<W: Write + Seek>(
    ndb: &mut Ndb<W>,
    subnodes: &mut Subnodes,
    props: &mut Vec<(u16, Value)>,
    stored: &[(u16, u16, u32)],
) -> Result<u64, PstError> {
    props.sort_by_key(|p| p.0);
    props.dedup_by_key(|p| p.0);
    let mut heap = Heap::new(CLIENT_PC);
    let mut records = Vec::with_capacity(props.len() + stored.len());
    for (id, ptype, nid) in stored {
        let mut data = ptype.to_le_bytes().to_vec();
        data.extend_from_slice(&nid.to_le_bytes());
        records.push((id.to_le_bytes().to_vec(), data));
    }
    for (id, value) in props.iter() {
        if stored.iter().any(|s| s.0 == *id) {
            continue;
        }
        let hnid = match value.inline() {
            Some(v) => v,
            None => {
                let bytes = value.bytes();
                // Zero-size heap items count as freed; readers treat them as gaps.
                if bytes.is_empty() {
                    continue;
                }
                store_variable(ndb, &mut heap, subnodes, &bytes)?
            }
        };
        let mut data = value.prop_type().to_le_bytes().to_vec();
        data.extend_from_slice(&hnid.to_le_bytes());
        records.push((id.to_le_bytes().to_vec(), data));
    }
    records.sort_by(|a, b| a.0.iter().rev().cmp(b.0.iter().rev()));
    let root = build_bth(&mut heap, 2, 6, &records);
    heap.set_user_root(root);
    ndb.write_blocks(&heap.into_blocks())
}

/// One column of a table context.
#[derive(Clone, Copy)]
pub struct Column {
    pub id: u16,
    pub ptype: u16,
}

fn cell_size(ptype: u16) -> usize {
    match ptype {
        pt::I16 => 2,
        pt::BOOL => 1,
        pt::I32 => 4,
        pt::I64 | pt::TIME | pt::DOUBLE => 8,
        _ => 4,
    }
}

pub const ROW_ID: u16 = 0x67F2;
pub const ROW_VER: u16 = 0x67F3;

/// Writes a table context whose rows are (row id, cells in `columns` order).
/// The row id and row version columns are added in front.
pub fn write_tc<W: Write + Seek>(
    ndb: &mut Ndb<W>,
    subnodes: &mut Subnodes,
    columns: &[Column],
    rows: &[(u32, Vec<Option<Value>>)],
) -> Result<u64, PstError> {
    let mut all = vec![
        Column {
            id: ROW_ID,
            ptype: pt::I32,
        },
        Column {
            id: ROW_VER,
            ptype: pt::I32,
        },
    ];
    all.extend_from_slice(columns);
    // Layout: 8- and 4-byte cells (row id and version first), then 2-, then 1-byte.
    let mut order: Vec<usize> = (0..all.len()).collect();
    order[2..].sort_by_key(|&i| (std::cmp::Reverse(cell_size(all[i].ptype)), all[i].id));
    let mut offsets = vec![0usize; all.len()];
    let mut ib = 0;
    let mut end4 = 0;
    let mut end2 = 0;
    for &i in &order {
        offsets[i] = ib;
        ib += cell_size(all[i].ptype);
        match cell_size(all[i].ptype) {
            s if s >= 4 => {
                end4 = ib;
                end2 = ib;
            }
            2 => end2 = ib,
            _ => {}
        }
    }
    let end1 = ib;
    let bitmap_len = all.len().div_ceil(8);
    let row_size = end1 + bitmap_len;
    // iBit follows the layout order.
    let mut bit = vec![0usize; all.len()];
    for (b, &i) in order.iter().enumerate() {
        bit[i] = b;
    }

    let mut heap = Heap::new(CLIENT_TC);
    let mut matrix = Vec::with_capacity(rows.len() * row_size);
    let mut row_index = Vec::with_capacity(rows.len());
    for (n, (row_id, cells)) in rows.iter().enumerate() {
        let mut row = vec![0u8; row_size];
        let put = |col: usize, bytes: &[u8], row: &mut Vec<u8>| {
            row[offsets[col]..offsets[col] + bytes.len()].copy_from_slice(bytes);
            row[end1 + bit[col] / 8] |= 0x80 >> (bit[col] % 8);
        };
        put(0, &row_id.to_le_bytes(), &mut row);
        put(1, &0u32.to_le_bytes(), &mut row);
        for (c, cell) in cells.iter().enumerate() {
            let Some(value) = cell else { continue };
            let col = c + 2;
            let bytes = value.bytes();
            match cell_size(all[col].ptype) {
                4 if value.inline().is_none() => {
                    if bytes.is_empty() {
                        continue;
                    }
                    let hnid = store_variable(ndb, &mut heap, subnodes, &bytes)?;
                    put(col, &hnid.to_le_bytes(), &mut row);
                }
                4 => put(col, &value.inline().unwrap_or(0).to_le_bytes(), &mut row),
                _ => put(col, &bytes, &mut row),
            }
        }
        matrix.push(row);
        row_index.push((
            row_id.to_le_bytes().to_vec(),
            (n as u32).to_le_bytes().to_vec(),
        ));
    }
    row_index.sort_by_key(|r| u32::from_le_bytes([r.0[0], r.0[1], r.0[2], r.0[3]]));
    let hid_row_index = build_bth(&mut heap, 4, 4, &row_index);

    let hnid_rows = if matrix.is_empty() {
        0
    } else if matrix.len() * row_size <= MAX_HEAP_ALLOC {
        heap.alloc(&matrix.concat())
    } else {
        // Rows never straddle blocks of the row matrix subnode.
        let per_block = MAX_BLOCK_DATA / row_size;
        let blocks: Vec<Vec<u8>> = matrix.chunks(per_block).map(|c| c.concat()).collect();
        let nid = subnodes.new_nid(NID_TYPE_LTP);
        let bid_data = ndb.write_blocks(&blocks)?;
        subnodes.entries.push(SubnodeEntry {
            nid,
            bid_data,
            bid_sub: 0,
        });
        nid
    };

    let mut info = vec![CLIENT_TC, all.len() as u8];
    for v in [end4, end2, end1, row_size] {
        info.extend_from_slice(&(v as u16).to_le_bytes());
    }
    info.extend_from_slice(&hid_row_index.to_le_bytes());
    info.extend_from_slice(&hnid_rows.to_le_bytes());
    info.extend_from_slice(&0u32.to_le_bytes());
    let mut descs: Vec<usize> = (0..all.len()).collect();
    descs.sort_by_key(|&i| (u32::from(all[i].id) << 16) | u32::from(all[i].ptype));
    for i in descs {
        let tag = (u32::from(all[i].id) << 16) | u32::from(all[i].ptype);
        info.extend_from_slice(&tag.to_le_bytes());
        info.extend_from_slice(&(offsets[i] as u16).to_le_bytes());
        info.push(cell_size(all[i].ptype) as u8);
        info.push(bit[i] as u8);
    }
    let root = heap.alloc(&info);
    heap.set_user_root(root);
    ndb.write_blocks(&heap.into_blocks())
}
