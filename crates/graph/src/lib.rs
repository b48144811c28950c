//! Lifeboat's Microsoft Graph client: one client for production
//! (graph.microsoft.com, login.microsoftonline.com) and the simulator alike;
//! the base URLs are configuration and nothing else differs.
//!
//! - [`config`]: endpoints, app credentials ([`Secret`] never prints), admin-consent URL.
//! - [`client`]: the pipeline. Client-credentials tokens cached and refreshed;
//!   the ISV User-Agent; at most 4 requests in flight and 10,000 per 10
//!   minutes per mailbox, which keeps every mailbox within Outlook's limits
//!   while many mailboxes run side by side; Retry-After honoured (a throttled
//!   mailbox pauses as a whole); transient failures retried with backoff.
//! - [`paging`]: next links, delta rounds (`@removed` and `deleted` facets), 410.
//! - [`batch`]: `$batch` with inner retries.
//! - [`models`]: typed views of what Lifeboat reads.

pub mod batch;
pub mod client;
pub mod config;
pub mod error;
pub mod models;
pub mod paging;

pub use batch::{BatchItem, BatchResult};
pub use client::{ClientStats, GraphClient, Request, Response, resource_units_for_licences};
pub use config::{GraphConfig, Secret};
pub use error::{ErrorClass, GraphError, GraphResult};
pub use paging::{DeltaChange, DeltaRound, Page};
/// HTTP methods, for building [`Request`]s without depending on reqwest.
pub use reqwest::Method;
