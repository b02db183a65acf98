//! The `Stage` trait: the user extension point.

use nv_core::error::StageError;
use nv_core::id::{FeedId, StageId};
use nv_core::metrics::StageMetrics;
use nv_core::source::PixelFormat;
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;
use nv_view::{ViewEpoch, ViewSnapshot};

use crate::artifacts::{PerceptionArtifacts, StageOutput};
use crate::temporal::TemporalAccess;

/// What a stage does, for ordering checks and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StageCategory {
    FrameAnalysis,
    Association,
    TemporalAnalysis,
    Sink,
    #[default]
    Custom,
}

/// What a stage consumes and produces, checked by pipeline validation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageCapabilities {
    pub consumes_detections: bool,
    pub consumes_tracks: bool,
    pub consumes_temporal: bool,
    pub produces_detections: bool,
    pub produces_tracks: bool,
    pub produces_signals: bool,
    pub produces_scene_features: bool,
}

impl StageCapabilities {
    pub const fn new() -> Self {
        Self {
            consumes_detections: false,
            consumes_tracks: false,
            consumes_temporal: false,
            produces_detections: false,
            produces_tracks: false,
            produces_signals: false,
            produces_scene_features: false,
        }
    }
    pub const fn consumes_detections(mut self) -> Self {
        self.consumes_detections = true;
        self
    }
    pub const fn consumes_tracks(mut self) -> Self {
        self.consumes_tracks = true;
        self
    }
    pub const fn consumes_temporal(mut self) -> Self {
        self.consumes_temporal = true;
        self
    }
    pub const fn produces_detections(mut self) -> Self {
        self.produces_detections = true;
        self
    }
    pub const fn produces_tracks(mut self) -> Self {
        self.produces_tracks = true;
        self
    }
    pub const fn produces_signals(mut self) -> Self {
        self.produces_signals = true;
        self
    }
    pub const fn produces_scene_features(mut self) -> Self {
        self.produces_scene_features = true;
        self
    }
}

/// Inputs of one `process` call. Everything is borrowed for the duration of the call.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct StageContext<'a> {
    pub feed_id: FeedId,
    pub frame: &'a FrameEnvelope,
    /// Merged outputs of the stages that ran before this one on this frame.
    pub artifacts: &'a PerceptionArtifacts,
    /// One view snapshot per frame, shared by all stages.
    pub view: &'a ViewSnapshot,
    /// One temporal snapshot per frame, shared by all stages.
    pub temporal: &'a dyn TemporalAccess,
    /// This stage's counters before this call.
    pub metrics: StageMetrics,
    /// Runtime clock reading when the frame was dequeued.
    pub now: MonotonicTs,
}

impl<'a> StageContext<'a> {
    pub fn new(
        feed_id: FeedId,
        frame: &'a FrameEnvelope,
        artifacts: &'a PerceptionArtifacts,
        view: &'a ViewSnapshot,
        temporal: &'a dyn TemporalAccess,
        metrics: StageMetrics,
        now: MonotonicTs,
    ) -> Self {
        Self {
            feed_id,
            frame,
            artifacts,
            view,
            temporal,
            metrics,
            now,
        }
    }
}

impl std::fmt::Debug for StageContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageContext")
            .field("feed_id", &self.feed_id)
            .field("frame", self.frame)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// A processing step run on every frame of a feed, on that feed's thread.
///
/// Contract: `process` must not block on I/O (hand slow work to a sink or a batch
/// processor). Returning `Err` drops the frame (no output) and the feed continues; a
/// panic is caught and handled by the feed's restart policy.
pub trait Stage: Send + 'static {
    fn id(&self) -> StageId;

    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError>;

    /// Called before the first frame of each session. An error prevents the session.
    fn on_start(&mut self) -> Result<(), StageError> {
        Ok(())
    }

    /// Called after the last frame of each session. Errors are reported, not fatal.
    fn on_stop(&mut self) -> Result<(), StageError> {
        Ok(())
    }

    /// Called before the first frame of a new view epoch (camera moved, feed restarted).
    fn on_view_epoch_change(&mut self, _new_epoch: ViewEpoch) -> Result<(), StageError> {
        Ok(())
    }

    fn category(&self) -> StageCategory {
        StageCategory::Custom
    }

    fn capabilities(&self) -> Option<StageCapabilities> {
        None
    }

    /// Whether `process` may wait (on I/O, a device, another thread) rather than only
    /// compute. A feed with such a stage keeps a thread of its own when the runtime
    /// schedules feeds on a pool, so the wait never holds a pool thread. Default `false`.
    fn may_block(&self) -> bool {
        false
    }

    /// Pixel formats this stage reads. `None` means it does not read pixels or accepts
    /// any format; a feed decodes to its native format unless some stage needs otherwise.
    fn accepted_formats(&self) -> Option<&'static [PixelFormat]> {
        None
    }
}
