//! # Formats: what Lifeboat exports
//!
//! - [`pst`]: a streaming Unicode PST writer of our own ([MS-PST]), with
//!   [`pst::SplitPstWriter`] for 5 GB / 20 GB parts.
//! - [`eml`]: the stored MIME, byte for byte.
//! - [`ics`]: iCalendar from Graph events, with VTIMEZONEs.
//! - [`vcf`]: vCard 4.0 from Graph contacts.
//! - [`zip`]: streamed ZIP with ZIP64.

pub mod eml;
pub mod ics;
pub mod pst;
pub mod vcf;
pub mod zip;
