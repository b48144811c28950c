//! NDB layer of a Unicode PST ([MS-PST] 2.2): header, allocation maps, blocks,
//! data trees (XBLOCK/XXBLOCK), subnode trees (SLBLOCK/SIBLOCK) and the two
//! B-trees (NBT, BBT).
//!
//! Space is handed out by a bump allocator that skips the map pages, so the
//! file is written front to back and never rewritten except the map pages and
//! the header at the end. Because everything below the end of file is in use,
//! the allocation maps follow from the end-of-file offset alone. What stays in
//! memory is one `BbtEntry` (24 bytes) per block and one `NbtEntry` (24 bytes)
//! per top-level node.

use std::io::{Seek, SeekFrom, Write};

use super::PstError;

pub const PAGE_SIZE: u64 = 512;
pub const MAX_BLOCK_DATA: usize = 8192 - 16;
const BLOCK_TRAILER: usize = 16;
const AMAP_FIRST: u64 = 0x4400;
const DLIST_OFFSET: u64 = 0x4200;
/// Bytes one AMap page describes (496 bytes * 8 bits * 64 bytes).
const AMAP_SPAN: u64 = 496 * 8 * 64;
const FMAP_FIRST_INDEX: u64 = 128;
const FMAP_EVERY: u64 = 496;
const FPMAP_FIRST_INDEX: u64 = 128 * 64;
const FPMAP_EVERY: u64 = 496 * 64;
/// Entries per XBLOCK/XXBLOCK: (8176 - 8 header bytes) / 8.
const XBLOCK_FANOUT: usize = (MAX_BLOCK_DATA - 8) / 8;
const SLBLOCK_FANOUT: usize = (MAX_BLOCK_DATA - 8) / 24;
const SIBLOCK_FANOUT: usize = (MAX_BLOCK_DATA - 8) / 16;

const PTYPE_BBT: u8 = 0x80;
const PTYPE_NBT: u8 = 0x81;
const PTYPE_FMAP: u8 = 0x82;
const PTYPE_PMAP: u8 = 0x83;
const PTYPE_AMAP: u8 = 0x84;
const PTYPE_FPMAP: u8 = 0x85;
const PTYPE_DLIST: u8 = 0x86;

/// [MS-PST] 5.3: CRC-32 with the reflected 0xEDB88320 polynomial, no pre- or
/// post-inversion. crc32fast inverts on the way in and out, so starting it
/// from !0 and inverting its result gives exactly that.
pub fn crc(data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(u32::MAX);
    hasher.update(data);
    !hasher.finalize()
}

fn compute_sig(ib: u64, bid: u64) -> u16 {
    let v = ib ^ bid;
    ((v >> 16) as u16) ^ (v as u16)
}

#[derive(Clone, Copy)]
struct BbtEntry {
    bid: u64,
    ib: u64,
    cb: u16,
}

#[derive(Clone, Copy)]
pub struct NbtEntry {
    pub nid: u32,
    pub bid_data: u64,
    pub bid_sub: u64,
    pub nid_parent: u32,
}

/// One entry of a subnode tree (SLENTRY).
#[derive(Clone, Copy)]
pub struct SubnodeEntry {
    pub nid: u32,
    pub bid_data: u64,
    pub bid_sub: u64,
}

pub struct Ndb<W: Write + Seek> {
    out: W,
    /// First free byte; everything before it is allocated.
    eof: u64,
    next_bid: u64,
    next_page_bid: u64,
    blocks: Vec<BbtEntry>,
    nodes: Vec<NbtEntry>,
    /// Highest nid index handed out per nid type (header rgnid).
    next_nid_index: [u32; 32],
    /// Reused buffer for block images.
    scratch: Vec<u8>,
}

impl<W: Write + Seek> Ndb<W> {
    pub fn new(mut out: W) -> Result<Self, PstError> {
        // Reserve header, the gap and the DList page; they are written at finish.
        out.seek(SeekFrom::Start(0))?;
        Ok(Self {
            out,
            eof: AMAP_FIRST,
            next_bid: 4,
            next_page_bid: 1,
            blocks: Vec::new(),
            nodes: Vec::new(),
            next_nid_index: [0x400; 32],
            scratch: Vec::with_capacity(8192),
        })
    }

    /// Bytes written so far (a lower bound of the final file size).
    pub fn written(&self) -> u64 {
        self.eof
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn reserve_nid_index(&mut self, nid_type: u8, index: u32) {
        let slot = &mut self.next_nid_index[nid_type as usize & 31];
        *slot = (*slot).max(index + 1);
    }

    pub fn new_nid(&mut self, nid_type: u8) -> u32 {
        let slot = &mut self.next_nid_index[nid_type as usize & 31];
        let index = *slot;
        *slot += 1;
        (index << 5) | u32::from(nid_type)
    }

    /// Offset of the map pages that begin AMap region `k`, and how many there are.
    fn map_pages(k: u64) -> u64 {
        let mut pages = 1;
        if k.is_multiple_of(8) {
            pages += 1;
        }
        if k >= FMAP_FIRST_INDEX && (k - FMAP_FIRST_INDEX).is_multiple_of(FMAP_EVERY) {
            pages = 3;
        }
        if k >= FPMAP_FIRST_INDEX && (k - FPMAP_FIRST_INDEX).is_multiple_of(FPMAP_EVERY) {
            pages = 4;
        }
        pages
    }

    /// Allocates `size` bytes aligned to `align`, never overlapping map pages
    /// nor crossing into the next AMap region.
    fn alloc(&mut self, size: u64, align: u64) -> u64 {
        loop {
            let mut at = self.eof.div_ceil(align) * align;
            let k = (at - AMAP_FIRST) / AMAP_SPAN;
            let region = AMAP_FIRST + k * AMAP_SPAN;
            let data_start = region + Self::map_pages(k) * PAGE_SIZE;
            if at < data_start {
                at = data_start.div_ceil(align) * align;
            }
            if at + size <= region + AMAP_SPAN {
                self.eof = at + size;
                return at;
            }
            self.eof = region + AMAP_SPAN;
        }
    }

    fn take_bid(&mut self, internal: bool) -> u64 {
        let bid = self.next_bid | if internal { 2 } else { 0 };
        self.next_bid += 4;
        bid
    }

    /// Writes one block (data at most 8176 bytes) and returns its BID.
    pub fn write_block(&mut self, data: &[u8], internal: bool) -> Result<u64, PstError> {
        debug_assert!(data.len() <= MAX_BLOCK_DATA);
        let bid = self.take_bid(internal);
        let size = (data.len() + BLOCK_TRAILER).div_ceil(64) * 64;
        let ib = self.alloc(size as u64, 64);
        let mut image = std::mem::take(&mut self.scratch);
        image.clear();
        image.extend_from_slice(data);
        image.resize(size - BLOCK_TRAILER, 0);
        image.extend_from_slice(&(data.len() as u16).to_le_bytes());
        image.extend_from_slice(&compute_sig(ib, bid).to_le_bytes());
        image.extend_from_slice(&crc(data).to_le_bytes());
        image.extend_from_slice(&bid.to_le_bytes());
        self.out.seek(SeekFrom::Start(ib))?;
        self.out.write_all(&image)?;
        self.scratch = image;
        self.blocks.push(BbtEntry {
            bid,
            ib,
            cb: data.len() as u16,
        });
        Ok(bid)
    }

    /// Writes a node's data stream cut into blocks of at most 8176 bytes and
    /// returns the BID of its root (a data block, an XBLOCK or an XXBLOCK).
    pub fn write_data(&mut self, data: &[u8]) -> Result<u64, PstError> {
        if data.len() <= MAX_BLOCK_DATA {
            return self.write_block(data, false);
        }
        let mut tree = DataTreeWriter::default();
        for chunk in data.chunks(MAX_BLOCK_DATA) {
            tree.push_block(self, chunk)?;
        }
        tree.finish(self)
    }

    /// Writes a data tree from already-cut blocks (heap pages, row matrices).
    pub fn write_blocks(&mut self, blocks: &[Vec<u8>]) -> Result<u64, PstError> {
        if blocks.len() == 1 {
            return self.write_block(&blocks[0], false);
        }
        let mut tree = DataTreeWriter::default();
        for block in blocks {
            tree.push_block(self, block)?;
        }
        tree.finish(self)
    }

    /// Writes a subnode tree (SLBLOCKs, with an SIBLOCK above them when more
    /// than one is needed) and returns its root BID, or 0 when empty.
    pub fn write_subnodes(&mut self, mut entries: Vec<SubnodeEntry>) -> Result<u64, PstError> {
        if entries.is_empty() {
            return Ok(0);
        }
        entries.sort_by_key(|e| e.nid);
        let mut leaves = Vec::new();
        for chunk in entries.chunks(SLBLOCK_FANOUT) {
            let mut b = Vec::with_capacity(8 + chunk.len() * 24);
            b.extend_from_slice(&[0x02, 0x00]);
            b.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
            b.extend_from_slice(&[0; 4]);
            for e in chunk {
                b.extend_from_slice(&u64::from(e.nid).to_le_bytes());
                b.extend_from_slice(&e.bid_data.to_le_bytes());
                b.extend_from_slice(&e.bid_sub.to_le_bytes());
            }
            leaves.push((chunk[0].nid, self.write_block(&b, true)?));
        }
        if leaves.len() == 1 {
            return Ok(leaves[0].1);
        }
        if leaves.len() > SIBLOCK_FANOUT {
            return Err(PstError::TooLarge("subnodes of one item"));
        }
        let mut b = Vec::with_capacity(8 + leaves.len() * 16);
        b.extend_from_slice(&[0x02, 0x01]);
        b.extend_from_slice(&(leaves.len() as u16).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        for (nid, bid) in &leaves {
            b.extend_from_slice(&u64::from(*nid).to_le_bytes());
            b.extend_from_slice(&bid.to_le_bytes());
        }
        self.write_block(&b, true)
    }

    pub fn add_node(&mut self, entry: NbtEntry) {
        self.nodes.push(entry);
    }

    fn write_page(
        &mut self,
        ptype: u8,
        data: &[u8; 496],
        fixed_ib: Option<u64>,
    ) -> Result<(u64, u64), PstError> {
        let (ib, bid, sig) = match fixed_ib {
            Some(ib) => (ib, ib, 0),
            None => {
                let ib = self.alloc(PAGE_SIZE, PAGE_SIZE);
                let bid = self.next_page_bid;
                self.next_page_bid += 1;
                (ib, bid, compute_sig(ib, bid))
            }
        };
        let mut page = [0u8; 512];
        page[..496].copy_from_slice(data);
        page[496] = ptype;
        page[497] = ptype;
        page[498..500].copy_from_slice(&sig.to_le_bytes());
        page[500..504].copy_from_slice(&crc(data).to_le_bytes());
        page[504..512].copy_from_slice(&bid.to_le_bytes());
        self.out.seek(SeekFrom::Start(ib))?;
        self.out.write_all(&page)?;
        Ok((ib, bid))
    }

    /// Writes a B-tree from its leaf entries, laid out back to back (each
    /// `leaf_size` bytes, starting with its 8-byte key, sorted by key) and
    /// returns the BREF (bid, ib) of its root.
    fn write_btree(
        &mut self,
        ptype: u8,
        leaf_entries: &[u8],
        leaf_size: usize,
    ) -> Result<(u64, u64), PstError> {
        let per_leaf = 488 / leaf_size;
        let key_of = |entry: &[u8]| u64::from_le_bytes(entry[..8].try_into().unwrap_or([0; 8]));
        let mut level: Vec<(u64, u64, u64)> = Vec::new(); // (first key, bid, ib)
        let mut chunks: Vec<&[u8]> = leaf_entries.chunks(per_leaf * leaf_size).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            let mut data = [0u8; 496];
            data[..chunk.len()].copy_from_slice(chunk);
            data[488] = (chunk.len() / leaf_size) as u8;
            data[489] = per_leaf as u8;
            data[490] = leaf_size as u8;
            data[491] = 0;
            let (ib, bid) = self.write_page(ptype, &data, None)?;
            let first = if chunk.is_empty() { 0 } else { key_of(chunk) };
            level.push((first, bid, ib));
        }
        let mut depth = 0u8;
        while level.len() > 1 {
            depth += 1;
            let mut next = Vec::new();
            for chunk in level.chunks(20) {
                let mut data = [0u8; 496];
                for (i, (key, bid, ib)) in chunk.iter().enumerate() {
                    let o = i * 24;
                    data[o..o + 8].copy_from_slice(&key.to_le_bytes());
                    data[o + 8..o + 16].copy_from_slice(&bid.to_le_bytes());
                    data[o + 16..o + 24].copy_from_slice(&ib.to_le_bytes());
                }
                data[488] = chunk.len() as u8;
                data[489] = 20;
                data[490] = 24;
                data[491] = depth;
                let (ib, bid) = self.write_page(ptype, &data, None)?;
                next.push((chunk[0].0, bid, ib));
            }
            level = next;
        }
        Ok((level[0].1, level[0].2))
    }

    /// Writes both B-trees, the allocation maps and the header; returns the file size.
    pub fn finish(mut self) -> Result<(W, u64), PstError> {
        let mut nodes = std::mem::take(&mut self.nodes);
        nodes.sort_by_key(|n| n.nid);
        let mut nbt_leaves = Vec::with_capacity(nodes.len() * 32);
        for n in &nodes {
            nbt_leaves.extend_from_slice(&u64::from(n.nid).to_le_bytes());
            nbt_leaves.extend_from_slice(&n.bid_data.to_le_bytes());
            nbt_leaves.extend_from_slice(&n.bid_sub.to_le_bytes());
            nbt_leaves.extend_from_slice(&n.nid_parent.to_le_bytes());
            nbt_leaves.extend_from_slice(&[0; 4]);
        }
        drop(nodes);
        let nbt_root = self.write_btree(PTYPE_NBT, &nbt_leaves, 32)?;
        drop(nbt_leaves);
        let mut blocks = std::mem::take(&mut self.blocks);
        blocks.sort_by_key(|b| b.bid);
        let mut bbt_leaves = Vec::with_capacity(blocks.len() * 24);
        for b in &blocks {
            bbt_leaves.extend_from_slice(&b.bid.to_le_bytes());
            bbt_leaves.extend_from_slice(&b.ib.to_le_bytes());
            bbt_leaves.extend_from_slice(&b.cb.to_le_bytes());
            // cRef: one reference from the tree holding the block, one from the BBT.
            bbt_leaves.extend_from_slice(&2u16.to_le_bytes());
            bbt_leaves.extend_from_slice(&[0; 4]);
        }
        drop(blocks);
        let bbt_root = self.write_btree(PTYPE_BBT, &bbt_leaves, 24)?;
        drop(bbt_leaves);

        // The file ends at the end of the last AMap region.
        let used = self.eof;
        let regions = (used - AMAP_FIRST).div_ceil(AMAP_SPAN).max(1);
        let file_eof = AMAP_FIRST + regions * AMAP_SPAN;
        let mut amap_free = 0u64;
        let last_free_run = (file_eof - used) / 64;
        for k in 0..regions {
            let region = AMAP_FIRST + k * AMAP_SPAN;
            let mut bits = [0u8; 496];
            let allocated_units = (used.min(region + AMAP_SPAN) - region).div_ceil(64);
            for unit in 0..allocated_units {
                bits[(unit / 8) as usize] |= 0x80 >> (unit % 8);
            }
            amap_free += AMAP_SPAN - allocated_units * 64;
            self.write_page(PTYPE_AMAP, &bits, Some(region))?;
            if k % 8 == 0 {
                // PMaps are deprecated but must exist; every page is marked allocated.
                self.write_page(PTYPE_PMAP, &[0xFF; 496], Some(region + PAGE_SIZE))?;
            }
            if k >= FMAP_FIRST_INDEX && (k - FMAP_FIRST_INDEX).is_multiple_of(FMAP_EVERY) {
                let mut fmap = [0u8; 496];
                for (i, byte) in fmap.iter_mut().enumerate() {
                    if k + i as u64 == regions - 1 {
                        *byte = last_free_run.min(255) as u8;
                    }
                }
                self.write_page(PTYPE_FMAP, &fmap, Some(region + 2 * PAGE_SIZE))?;
            }
            if k >= FPMAP_FIRST_INDEX && (k - FPMAP_FIRST_INDEX).is_multiple_of(FPMAP_EVERY) {
                self.write_page(PTYPE_FPMAP, &[0u8; 496], Some(region + 3 * PAGE_SIZE))?;
            }
        }
        // An empty density list.
        self.write_page(PTYPE_DLIST, &[0u8; 496], Some(DLIST_OFFSET))?;
        // Extend the file to its full last region.
        self.out.seek(SeekFrom::Start(file_eof - 1))?;
        self.out.write_all(&[0])?;

        let header = self.header(
            file_eof,
            AMAP_FIRST + (regions - 1) * AMAP_SPAN,
            amap_free,
            nbt_root,
            bbt_root,
        );
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.flush()?;
        Ok((self.out, file_eof))
    }

    fn header(
        &self,
        file_eof: u64,
        amap_last: u64,
        amap_free: u64,
        nbt: (u64, u64),
        bbt: (u64, u64),
    ) -> [u8; 564] {
        let mut h = [0u8; 564];
        h[0..4].copy_from_slice(b"!BDN");
        h[8..10].copy_from_slice(b"SM");
        h[10..12].copy_from_slice(&23u16.to_le_bytes());
        h[12..14].copy_from_slice(&19u16.to_le_bytes());
        h[14] = 1;
        h[15] = 1;
        h[32..40].copy_from_slice(&self.next_page_bid.to_le_bytes());
        h[40..44].copy_from_slice(&1u32.to_le_bytes());
        for (i, index) in self.next_nid_index.iter().enumerate() {
            let o = 44 + i * 4;
            h[o..o + 4].copy_from_slice(&(index << 5 | i as u32).to_le_bytes());
        }
        let r = 180;
        h[r + 4..r + 12].copy_from_slice(&file_eof.to_le_bytes());
        h[r + 12..r + 20].copy_from_slice(&amap_last.to_le_bytes());
        h[r + 20..r + 28].copy_from_slice(&amap_free.to_le_bytes());
        h[r + 36..r + 44].copy_from_slice(&nbt.0.to_le_bytes());
        h[r + 44..r + 52].copy_from_slice(&nbt.1.to_le_bytes());
        h[r + 52..r + 60].copy_from_slice(&bbt.0.to_le_bytes());
        h[r + 60..r + 68].copy_from_slice(&bbt.1.to_le_bytes());
        h[r + 68] = 2; // fAMapValid: VALID_AMAP2
        // rgbFM and rgbFP are deprecated and filled with 0xFF.
        h[256..512].fill(0xFF);
        h[512] = 0x80;
        h[513] = 0; // NDB_CRYPT_NONE
        h[516..524].copy_from_slice(&self.next_bid.to_le_bytes());
        let partial = crc(&h[8..8 + 471]);
        h[4..8].copy_from_slice(&partial.to_le_bytes());
        let full = crc(&h[8..8 + 516]);
        h[524..528].copy_from_slice(&full.to_le_bytes());
        h
    }
}

/// Builds XBLOCKs (and an XXBLOCK above them) while data blocks stream out,
/// keeping at most 1021 BIDs per level in memory.
#[derive(Default)]
pub struct DataTreeWriter {
    total: u64,
    current: Vec<u64>,
    current_bytes: u64,
    xblocks: Vec<(u64, u64)>,
}

impl DataTreeWriter {
    pub fn push_block<W: Write + Seek>(
        &mut self,
        ndb: &mut Ndb<W>,
        data: &[u8],
    ) -> Result<(), PstError> {
        let bid = ndb.write_block(data, false)?;
        self.current.push(bid);
        self.current_bytes += data.len() as u64;
        self.total += data.len() as u64;
        if self.current.len() == XBLOCK_FANOUT {
            self.flush_xblock(ndb)?;
        }
        Ok(())
    }

    fn flush_xblock<W: Write + Seek>(&mut self, ndb: &mut Ndb<W>) -> Result<(), PstError> {
        if self.current.is_empty() {
            return Ok(());
        }
        let bid = write_xblock(ndb, 1, &self.current, self.current_bytes)?;
        self.xblocks.push((bid, self.current_bytes));
        self.current.clear();
        self.current_bytes = 0;
        Ok(())
    }

    pub fn finish<W: Write + Seek>(mut self, ndb: &mut Ndb<W>) -> Result<u64, PstError> {
        if self.xblocks.is_empty() && self.current.len() == 1 {
            return Ok(self.current[0]);
        }
        self.flush_xblock(ndb)?;
        if self.xblocks.len() == 1 {
            return Ok(self.xblocks[0].0);
        }
        if self.xblocks.len() > XBLOCK_FANOUT {
            return Err(PstError::TooLarge("one property value"));
        }
        let bids: Vec<u64> = self.xblocks.iter().map(|x| x.0).collect();
        write_xblock(ndb, 2, &bids, self.total)
    }
}

fn write_xblock<W: Write + Seek>(
    ndb: &mut Ndb<W>,
    level: u8,
    bids: &[u64],
    total: u64,
) -> Result<u64, PstError> {
    let total = u32::try_from(total).map_err(|_| PstError::TooLarge("one property value"))?;
    let mut b = Vec::with_capacity(8 + bids.len() * 8);
    b.push(0x01);
    b.push(level);
    b.extend_from_slice(&(bids.len() as u16).to_le_bytes());
    b.extend_from_slice(&total.to_le_bytes());
    for bid in bids {
        b.extend_from_slice(&bid.to_le_bytes());
    }
    ndb.write_block(&b, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_spec_definition() {
        // Bitwise reference of [MS-PST] 5.3 (no inversion).
        fn reference(data: &[u8]) -> u32 {
            let mut crc = 0u32;
            for &b in data {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0xEDB8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            crc
        }
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(crc(&data), reference(&data));
        assert_eq!(crc(&[]), 0);
    }

    #[test]
    fn many_nodes_make_a_multi_level_tree_with_valid_pages() {
        let mut ndb = Ndb::new(std::io::Cursor::new(Vec::new())).unwrap();
        for i in 0..1000u32 {
            let bid = ndb.write_block(&i.to_le_bytes(), false).unwrap();
            ndb.add_node(NbtEntry {
                nid: (0x1000 + i) << 5 | 4,
                bid_data: bid,
                bid_sub: 0,
                nid_parent: 0,
            });
        }
        let (out, eof) = ndb.finish().unwrap();
        let file = out.into_inner();
        assert_eq!(file.len() as u64, eof);
        let root = 180;
        let nbt_ib = u64::from_le_bytes(file[root + 44..root + 52].try_into().unwrap()) as usize;
        let page = &file[nbt_ib..nbt_ib + 512];
        assert_eq!(page[496], PTYPE_NBT);
        assert_eq!(
            page[491], 2,
            "1000 nodes / 15 per leaf / 20 per level: two levels above the leaves"
        );
        assert_eq!(
            u32::from_le_bytes(page[500..504].try_into().unwrap()),
            crc(&page[..496])
        );
        assert_eq!(
            u32::from_le_bytes(file[4..8].try_into().unwrap()),
            crc(&file[8..479])
        );
    }

    #[test]
    fn allocation_skips_map_pages() {
        let mut ndb = Ndb::new(std::io::Cursor::new(Vec::new())).unwrap();
        let first = ndb.alloc(64, 64);
        assert_eq!(
            first,
            AMAP_FIRST + 2 * PAGE_SIZE,
            "AMap and PMap come first"
        );
        ndb.eof = AMAP_FIRST + AMAP_SPAN - 32;
        let next = ndb.alloc(64, 64);
        assert_eq!(
            next,
            AMAP_FIRST + AMAP_SPAN + PAGE_SIZE,
            "second region has only an AMap"
        );
    }
}
