//! Feed configuration, shared state and the user-facing handle.

pub mod analytics;
pub mod config;
mod handle;
pub(crate) mod shared;
pub(crate) mod status;

pub use analytics::{FeedAnalytics, ZoneCounts};
pub use config::{FeedConfig, FeedConfigBuilder};
pub use handle::{FeedDiagnostics, FeedHandle, QueueTelemetry, StageDiagnostics};
