//! # Formats: what Lifeboat exports
//!
//! - [`pst`]: a streaming Unicode PST writer of our own ([MS-PST]), with
//!   [`pst::SplitPstWriter`] for 5 GB / 20 GB parts.
//! - [`eml`]: the stored MIME, byte for byte.
//! - [`zip`]: streamed ZIP with ZIP64.

pub mod eml;
pub mod pst;
pub mod zip;
