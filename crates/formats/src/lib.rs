//! # Formats: what Lifeboat exports
//!
//! - [`pst`]: a streaming Unicode PST writer of our own ([MS-PST]), with
//!   [`pst::SplitPstWriter`] for 5 GB / 20 GB parts.

pub mod pst;
