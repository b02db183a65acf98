//! Per-feed temporal state for NextVision.
//!
//! A [`TemporalStore`] remembers, for each track a feed's stages report, its latest state, a
//! bounded ring of recent observations, and a [`Trajectory`] cut into segments at view
//! epoch changes and lifecycle boundaries, with [`MotionFeatures`] per segment. A
//! [`RetentionPolicy`] bounds all of it. Stages read the state through a cheap per-frame
//! [`TemporalSnapshot`], which implements [`nv_perception::TemporalAccess`].
//!
//! Times stored here are on the store's own time line, which never runs backwards even when
//! the feed's timestamps do (for example when PTS restarts after a reconnect).

mod clock;
mod history;
mod motion;
mod observations;
mod retention;
mod snapshot;
mod store;
mod trajectory;

pub use history::TrackHistory;
pub use motion::MotionFeatures;
pub use retention::RetentionPolicy;
pub use snapshot::{TemporalSnapshot, TrackSnapshot};
pub use store::{
    CommitOutcome, FrameCommitSummary, RetentionSummary, TemporalCounters, TemporalStore,
};
pub use trajectory::{SegmentBoundary, Trajectory, TrajectoryPoint, TrajectorySegment};
