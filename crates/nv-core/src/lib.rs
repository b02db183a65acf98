//! Shared vocabulary for every NextVision crate.
//!
//! Nothing here spawns threads or touches media: ids, timestamps and clocks, normalised
//! geometry, typed metadata, source/policy vocabulary, errors, health events, metric
//! snapshots and credential redaction.

pub mod camera;
pub mod clock;
pub mod error;
pub mod feed_state;
pub mod geometry;
pub mod health;
pub mod id;
pub mod limits;
pub mod metadata;
pub mod metrics;
pub mod policy;
pub mod security;
pub mod source;
pub mod time;
pub mod url;

pub use camera::CameraMode;
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use error::{
    ConfigError, ErrorKind, FailureKind, MediaError, NvError, RuntimeError, StageError,
};
pub use feed_state::{FeedState, LastError};
pub use geometry::{AffineTransform2D, BBox, Point2, Polygon};
pub use health::{DropReason, HealthEvent, StopReason};
pub use id::{DetectionId, FeedId, StageId, TrackId};
pub use metadata::TypedMetadata;
pub use time::{MonotonicTs, WallTs};
