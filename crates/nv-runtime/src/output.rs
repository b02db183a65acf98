//! Outputs: one `OutputEnvelope` per processed frame, with full provenance.

use std::sync::Arc;
use std::time::Duration;

use nv_core::id::{FeedId, StageId};
use nv_core::metadata::TypedMetadata;
use nv_core::time::{MonotonicTs, WallTs};
use nv_frame::FrameEnvelope;
use nv_perception::{DerivedSignal, DetectionSet, SceneFeature, Track};
use nv_view::{
    ContextValidity, EpochDecision, MotionSource, TransitionPhase, ViewEpoch, ViewVersion,
};

/// What a stage did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StageResult {
    Ok,
    /// An earlier stage asked to skip the rest of the pipeline for this frame.
    Skipped,
}

/// Timing and result of one stage on one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageProvenance {
    pub stage_id: StageId,
    /// Runtime clock.
    pub started_at: MonotonicTs,
    pub finished_at: MonotonicTs,
    pub result: StageResult,
}

impl StageProvenance {
    pub fn latency(&self) -> Duration {
        self.finished_at.saturating_duration_since(self.started_at)
    }
}

/// The view the output was computed in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewProvenance {
    pub epoch: ViewEpoch,
    pub version: ViewVersion,
    pub validity: ContextValidity,
    pub stability_score: f32,
    pub motion_source: MotionSource,
    pub transition: TransitionPhase,
    /// The epoch policy's decision for this frame; `None` for fixed cameras.
    pub decision: Option<EpochDecision>,
}

/// Why an output says what it says: where the frame came from, how long each step took.
/// Runtime-clock timestamps are nanoseconds since the runtime's clock origin; media time
/// is the frame's own `ts`.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    pub stages: Vec<StageProvenance>,
    pub view: ViewProvenance,
    /// When the source handed the frame to the feed (runtime clock).
    pub received_at: MonotonicTs,
    /// When the feed worker took it off the queue.
    pub dequeued_at: MonotonicTs,
    /// When the last stage finished.
    pub completed_at: MonotonicTs,
    /// Wall-clock age of the frame when processing completed (`None` if the source gave
    /// no wall time).
    pub frame_age: Option<Duration>,
    /// Restart session that produced this output (0 = first).
    pub session: u32,
    pub frame_included: bool,
}

impl Provenance {
    pub fn queue_hold(&self) -> Duration {
        self.dequeued_at.saturating_duration_since(self.received_at)
    }
    pub fn pipeline_latency(&self) -> Duration {
        self.completed_at
            .saturating_duration_since(self.dequeued_at)
    }
    pub fn receive_to_complete(&self) -> Duration {
        self.completed_at
            .saturating_duration_since(self.received_at)
    }
}

/// Counts of the temporal admission decision for this frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmissionSummary {
    pub admitted: u32,
    pub rejected: u32,
}

/// Everything the runtime says about one frame.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OutputEnvelope {
    pub feed_id: FeedId,
    pub frame_seq: u64,
    /// Media timestamp of the frame.
    pub ts: MonotonicTs,
    pub wall_ts: WallTs,
    pub detections: DetectionSet,
    pub tracks: Vec<Track>,
    pub signals: Vec<DerivedSignal>,
    pub scene_features: Vec<SceneFeature>,
    /// Merged typed artifacts of every stage.
    pub metadata: TypedMetadata,
    pub provenance: Provenance,
    /// The frame itself, when the feed's [`FrameInclusion`] selected it.
    pub frame: Option<FrameEnvelope>,
    pub admission: AdmissionSummary,
}

/// Outputs are shared, never copied: the sink and every subscriber get the same `Arc`.
pub type SharedOutput = Arc<OutputEnvelope>;

/// Receives a feed's outputs on the feed's dedicated sink thread. May block (network,
/// disk) without slowing perception: the sink queue absorbs or drops.
pub trait OutputSink: Send + 'static {
    fn emit(&mut self, output: SharedOutput);
    /// Called once when the sink thread drains and exits (session end).
    fn flush(&mut self) {}
}

impl<F: FnMut(SharedOutput) + Send + 'static> OutputSink for F {
    fn emit(&mut self, output: SharedOutput) {
        self(output);
    }
}

/// Rebuilds a sink that was lost (its thread wedged past the shutdown timeout or panicked
/// while shutting down).
pub type SinkFactory = Box<dyn Fn() -> Box<dyn OutputSink> + Send + Sync>;

/// Discards everything (a feed whose outputs are only consumed through subscriptions).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl OutputSink for NullSink {
    fn emit(&mut self, _output: SharedOutput) {}
}

/// Which outputs carry the frame's pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum FrameInclusion {
    #[default]
    Never,
    Always,
    /// Every n-th output (the n-th, 2n-th, ...).
    Sampled {
        interval: u32,
    },
    /// About `target` frames per second, with the interval derived from the source's own
    /// timestamps (not the wall clock, which processing stalls distort). Until enough
    /// frames were seen, `fallback_interval` applies.
    TargetFps {
        target: f64,
        fallback_interval: u32,
    },
}

impl FrameInclusion {
    /// `0` = never, `1` = always.
    pub fn sampled(interval: u32) -> Self {
        match interval {
            0 => Self::Never,
            1 => Self::Always,
            n => Self::Sampled { interval: n },
        }
    }
    pub fn target_fps(target: f64, fallback_interval: u32) -> Self {
        if target.is_finite() && target > 0.0 {
            Self::TargetFps {
                target,
                fallback_interval: fallback_interval.max(1),
            }
        } else {
            Self::Never
        }
    }
}

/// Frames observed before `TargetFps` locks its interval.
pub const TARGET_FPS_WARMUP_FRAMES: usize = 30;

/// Per-feed state that applies a [`FrameInclusion`].
#[derive(Debug, Clone)]
pub(crate) struct InclusionState {
    policy: FrameInclusion,
    counter: u64,
    resolved: Option<u32>,
    first_ts: Option<MonotonicTs>,
    last_ts: MonotonicTs,
    seen: usize,
}

impl InclusionState {
    pub fn new(policy: FrameInclusion) -> Self {
        Self {
            policy,
            counter: 0,
            resolved: None,
            first_ts: None,
            last_ts: MonotonicTs::ZERO,
            seen: 0,
        }
    }

    /// Decides for the next output, given the frame's media timestamp.
    pub fn include(&mut self, ts: MonotonicTs) -> bool {
        let interval = match self.policy {
            FrameInclusion::Never => return false,
            FrameInclusion::Always => return true,
            FrameInclusion::Sampled { interval } => interval.max(1),
            FrameInclusion::TargetFps {
                target,
                fallback_interval,
            } => self.target_interval(target, fallback_interval, ts),
        };
        self.counter += 1;
        self.counter % u64::from(interval) == 0
    }

    fn target_interval(&mut self, target: f64, fallback: u32, ts: MonotonicTs) -> u32 {
        if let Some(i) = self.resolved {
            return i;
        }
        let first = *self.first_ts.get_or_insert(ts);
        self.last_ts = self.last_ts.max(ts);
        self.seen += 1;
        if self.seen >= TARGET_FPS_WARMUP_FRAMES {
            let span = self.last_ts.saturating_duration_since(first).as_secs_f64();
            if span > 0.0 {
                let source_fps = (self.seen - 1) as f64 / span;
                let interval = (source_fps / target).round().max(1.0);
                let resolved = if interval >= f64::from(u32::MAX) {
                    u32::MAX
                } else {
                    interval as u32
                };
                self.resolved = Some(resolved);
                return resolved;
            }
        }
        fallback.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_includes_every_nth() {
        let mut s = InclusionState::new(FrameInclusion::sampled(3));
        let picks: Vec<bool> = (0..7)
            .map(|i| s.include(MonotonicTs::from_nanos(i)))
            .collect();
        assert_eq!(picks, vec![false, false, true, false, false, true, false]);
        assert_eq!(FrameInclusion::sampled(0), FrameInclusion::Never);
        assert_eq!(FrameInclusion::sampled(1), FrameInclusion::Always);
        assert_eq!(FrameInclusion::target_fps(0.0, 5), FrameInclusion::Never);
    }

    #[test]
    fn target_fps_resolves_from_source_timestamps() {
        // 30 fps source (33.3 ms PTS spacing), target 5 fps => every 6th frame.
        let mut s = InclusionState::new(FrameInclusion::target_fps(5.0, 2));
        let ts = |i: u64| MonotonicTs::from_nanos(i * 33_333_333);
        for i in 0..(TARGET_FPS_WARMUP_FRAMES as u64 - 1) {
            s.include(ts(i));
        }
        assert_eq!(s.resolved, None);
        s.include(ts(TARGET_FPS_WARMUP_FRAMES as u64 - 1));
        assert_eq!(s.resolved, Some(6));
    }
}
