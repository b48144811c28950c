//! # Formats: what Lifeboat exports
//!
//! - [`pst`]: a streaming Unicode PST writer of our own, written from
//!   Microsoft's open specification [MS-PST] (wVer 23, no encryption):
//!   folders, messages (recipients, plain/HTML bodies, attachments), contacts,
//!   appointments with recurrence (PidLidAppointmentRecur), tasks and notes;
//!   [`pst::SplitPstWriter`] cuts an export into 5 GB / 20 GB parts, repeating
//!   the folder tree in each. Items go to disk as they are added; memory
//!   grows only with the number of blocks and nodes (24 bytes each) and one
//!   contents-table row per item.
//! - [`eml`]: the stored MIME, byte for byte.
//! - [`ics`]: iCalendar (RFC 5545) from Graph events, with VTIMEZONEs.
//! - [`vcf`]: vCard 4.0 (RFC 6350) from Graph contacts.
//! - [`zip`]: streamed ZIP with ZIP64.
//!
//! Every PST the tests write is read back with three independent readers:
//! Microsoft's `outlook-pst` crate, libpst's `readpst` and libpff's
//! `pffexport`.

pub mod eml;
pub mod ics;
pub mod pst;
pub mod vcf;
pub mod zip;
