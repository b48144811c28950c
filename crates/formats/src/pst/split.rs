//! Splitting an export over several PST files of bounded size.

use std::io::{Seek, Write};

use super::{Appointment, Contact, FolderId, Message, Note, PstError, PstWriter, Task};

/// 5 GB, the smaller size offered to users.
pub const SPLIT_5_GB: u64 = 5_000_000_000;
/// 20 GB, the larger size offered to users.
pub const SPLIT_20_GB: u64 = 20_000_000_000;

/// A folder of a split export, valid in every part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SplitFolderId(usize);

struct FolderSpec {
    parent: Option<SplitFolderId>,
    name: String,
    class: String,
    /// The store's own Deleted Items folder, not a new one.
    builtin_deleted: bool,
}

/// Writes items into a sequence of PSTs, starting a new file (with the whole
/// folder hierarchy repeated) whenever the next item would take the current
/// file past `limit` bytes. A single item larger than the limit still gets a
/// file of its own.
pub struct SplitPstWriter<W: Write + Seek, F: FnMut(usize) -> std::io::Result<W>> {
    open_part: F,
    limit: u64,
    display_name: String,
    folders: Vec<FolderSpec>,
    deleted_items: Option<SplitFolderId>,
    current: Option<(PstWriter<W>, Vec<FolderId>)>,
    finished: Vec<W>,
}

/// Bytes an item will take in the file, slightly over-estimated.
fn estimate(strings: usize, binary: usize, recipients: usize) -> u64 {
    let raw = strings as u64 * 2 + binary as u64 + recipients as u64 * 256 + 4096;
    raw + raw / 64
}

fn text_len(parts: &[Option<&str>]) -> usize {
    parts.iter().flatten().map(|s| s.len()).sum()
}

impl<W: Write + Seek, F: FnMut(usize) -> std::io::Result<W>> SplitPstWriter<W, F> {
    /// `open_part(n)` creates the output for part n (0-based).
    pub fn new(open_part: F, limit: u64, display_name: &str) -> Result<Self, PstError> {
        if limit < 1_000_000 {
            return Err(PstError::InvalidItem(format!(
                "split limit {limit} is below 1 MB"
            )));
        }
        Ok(Self {
            open_part,
            limit,
            display_name: display_name.to_string(),
            folders: Vec::new(),
            deleted_items: None,
            current: None,
            finished: Vec::new(),
        })
    }

    pub fn add_folder(
        &mut self,
        parent: Option<SplitFolderId>,
        name: &str,
        container_class: &str,
    ) -> Result<SplitFolderId, PstError> {
        if let Some(p) = parent
            && p.0 >= self.folders.len()
        {
            return Err(PstError::UnknownFolder(p.0 as u32));
        }
        let id = SplitFolderId(self.folders.len());
        self.folders.push(FolderSpec {
            parent,
            name: name.to_string(),
            class: container_class.to_string(),
            builtin_deleted: false,
        });
        if let Some((pst, ids)) = &mut self.current {
            let parent = parent.map(|p| ids[p.0]).unwrap_or(pst.root());
            let folder = pst.add_folder(parent, name, container_class)?;
            ids.push(folder);
        }
        Ok(id)
    }

    /// The store's own Deleted Items folder in every part (every PST has
    /// one), so a mailbox's Deleted Items does not appear twice.
    pub fn deleted_items(&mut self) -> SplitFolderId {
        if let Some(id) = self.deleted_items {
            return id;
        }
        let id = SplitFolderId(self.folders.len());
        self.folders.push(FolderSpec {
            parent: None,
            name: String::new(),
            class: String::new(),
            builtin_deleted: true,
        });
        if let Some((pst, ids)) = &mut self.current {
            ids.push(pst.deleted_items());
        }
        self.deleted_items = Some(id);
        id
    }

    /// Parts finished so far plus the open one.
    pub fn part_count(&self) -> usize {
        self.finished.len() + usize::from(self.current.is_some())
    }

    fn open(&mut self, size: u64) -> Result<(), PstError> {
        if let Some((pst, _)) = &self.current {
            let (blocks, nodes) = pst.index_entries();
            // B-tree pages, folder tables and the last AMap region still to come.
            let closing = (blocks as u64 + nodes as u64) * 32 + pst.item_count() * 300 + 300_000;
            if pst.item_count() > 0 && pst.bytes_written() + size + closing > self.limit {
                let (pst, _) = self.current.take().ok_or(PstError::UnknownFolder(0))?;
                self.finished.push(pst.finish()?);
            }
        }
        if self.current.is_none() {
            let out = (self.open_part)(self.finished.len())?;
            // The first part carries the plain name; later ones are numbered.
            let name = match self.finished.len() {
                0 => self.display_name.clone(),
                n => format!("{} ({})", self.display_name, n + 1),
            };
            let mut pst = PstWriter::create_named(out, &name)?;
            let mut ids: Vec<FolderId> = Vec::with_capacity(self.folders.len());
            for spec in &self.folders {
                if spec.builtin_deleted {
                    ids.push(pst.deleted_items());
                    continue;
                }
                let parent = spec.parent.map(|p| ids[p.0]).unwrap_or(pst.root());
                ids.push(pst.add_folder(parent, &spec.name, &spec.class)?);
            }
            self.current = Some((pst, ids));
        }
        Ok(())
    }

    fn target(
        &mut self,
        folder: SplitFolderId,
        size: u64,
    ) -> Result<(&mut PstWriter<W>, FolderId), PstError> {
        if folder.0 >= self.folders.len() {
            return Err(PstError::UnknownFolder(folder.0 as u32));
        }
        self.open(size)?;
        let (pst, ids) = self
            .current
            .as_mut()
            .ok_or(PstError::UnknownFolder(folder.0 as u32))?;
        Ok((pst, ids[folder.0]))
    }

    pub fn add_message(&mut self, folder: SplitFolderId, m: &Message) -> Result<(), PstError> {
        let strings = m.subject.len() + text_len(&[m.body_text.as_deref()]);
        let binary = m.body_html.as_ref().map_or(0, String::len)
            + m.attachments
                .iter()
                .map(|a| a.data.len() + 512)
                .sum::<usize>();
        let (pst, id) = self.target(
            folder,
            estimate(strings, binary, m.to.len() + m.cc.len() + m.bcc.len()),
        )?;
        pst.add_message(id, m)
    }

    pub fn add_contact(&mut self, folder: SplitFolderId, c: &Contact) -> Result<(), PstError> {
        let (pst, id) = self.target(
            folder,
            estimate(
                c.display_name.len() + text_len(&[c.notes.as_deref()]) + 512,
                0,
                0,
            ),
        )?;
        pst.add_contact(id, c)
    }

    pub fn add_appointment(
        &mut self,
        folder: SplitFolderId,
        a: &Appointment,
    ) -> Result<(), PstError> {
        let strings = a.subject.len() + text_len(&[a.body.as_deref(), a.location.as_deref()]);
        let exceptions = a
            .recurrence
            .as_ref()
            .map_or(0, |r| r.exceptions.len() * 256 + r.deleted.len() * 4);
        let (pst, id) = self.target(folder, estimate(strings, exceptions, a.attendees.len()))?;
        pst.add_appointment(id, a)
    }

    pub fn add_task(&mut self, folder: SplitFolderId, t: &Task) -> Result<(), PstError> {
        let (pst, id) = self.target(
            folder,
            estimate(t.subject.len() + text_len(&[t.body.as_deref()]), 0, 0),
        )?;
        pst.add_task(id, t)
    }

    pub fn add_note(&mut self, folder: SplitFolderId, n: &Note) -> Result<(), PstError> {
        let (pst, id) = self.target(folder, estimate(n.body.len(), 0, 0))?;
        pst.add_note(id, n)
    }

    /// Finishes the open part and returns every part's output in order.
    pub fn finish(mut self) -> Result<Vec<W>, PstError> {
        if self.current.is_none() {
            self.open(0)?;
        }
        if let Some((pst, _)) = self.current.take() {
            self.finished.push(pst.finish()?);
        }
        Ok(self.finished)
    }
}
