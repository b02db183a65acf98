//! The epoch policy: per observed frame, decide what a camera move means for spatial state.
//!
//! Four answers, from cheapest to most disruptive:
//! - `Continue`: the view is unchanged (or changed too little to matter);
//! - `Degrade`: the view is moving; keep state but flag it as less trustworthy;
//! - `Compensate`: the view jumped but the jump is known precisely enough to re-map
//!   trajectories and zones with a transform;
//! - `Segment`: the view is a different one; start a new epoch and split trajectories.
//!
//! Every decision carries a reason with a stable text so health events, provenance and
//! dashboards can group on it without parsing prose.

use std::fmt;
use std::time::Duration;

use nv_core::geometry::AffineTransform2D;

use crate::provider::MotionReport;
use crate::state::{CameraMotionState, DegradationReason, ViewSnapshot};

/// Why a policy started a new epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SegmentReason {
    /// A PTZ preset was recalled: a different scene by definition.
    PresetRecall,
    /// Pan or tilt moved beyond the segment threshold and no confident transform allows
    /// compensation.
    PtzJump,
    /// Zoom moved beyond the segment threshold and no confident transform allows
    /// compensation.
    ZoomJump,
    /// Image displacement beyond the segment threshold and no confident transform allows
    /// compensation.
    LargeJump,
    /// A confident transform exists but rotates or scales more than compensation can be
    /// trusted with (the compensation ceiling).
    CompensationCeiling,
    /// The feed restarted; nothing about the previous session's view can be assumed.
    FeedRestart,
    /// A custom policy's own reason. Keep the text stable: it is a grouping key.
    Custom(&'static str),
}

impl SegmentReason {
    /// Stable text carried by `HealthEvent::ViewEpochChanged` and provenance.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PresetRecall => "preset_recall",
            Self::PtzJump => "ptz_jump",
            Self::ZoomJump => "zoom_jump",
            Self::LargeJump => "large_jump",
            Self::CompensationCeiling => "compensation_ceiling",
            Self::FeedRestart => "feed_restart",
            Self::Custom(text) => text,
        }
    }
}

impl fmt::Display for SegmentReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with this frame's view.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum EpochDecision {
    Continue,
    Degrade {
        reason: DegradationReason,
    },
    /// Re-map spatial state of the current epoch with `transform` (previous-frame
    /// coordinates to current-frame coordinates).
    Compensate {
        reason: DegradationReason,
        transform: AffineTransform2D,
    },
    Segment {
        reason: SegmentReason,
    },
}

impl EpochDecision {
    /// Stable name of the decision kind: `continue`, `degrade`, `compensate`, `segment`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Degrade { .. } => "degrade",
            Self::Compensate { .. } => "compensate",
            Self::Segment { .. } => "segment",
        }
    }
    /// Stable reason text; `None` for `Continue`.
    pub fn reason_str(&self) -> Option<&'static str> {
        match self {
            Self::Continue => None,
            Self::Degrade { reason } | Self::Compensate { reason, .. } => Some(reason.as_str()),
            Self::Segment { reason } => Some(reason.as_str()),
        }
    }
    pub fn is_segment(&self) -> bool {
        matches!(self, Self::Segment { .. })
    }
}

/// `kind` or `kind:reason`, e.g. `segment:preset_recall`, `degrade:ptz_moving`.
impl fmt::Display for EpochDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason_str() {
            Some(reason) => write!(f, "{}:{reason}", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}

/// What a policy sees.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct EpochPolicyContext<'a> {
    /// The view as of the previous frame (its `ptz` is the last reported pose).
    pub previous_view: &'a ViewSnapshot,
    pub current_report: &'a MotionReport,
    /// Motion state the view tracker derived for this frame.
    pub motion_state: CameraMotionState,
    /// How long the camera has been in this kind of motion state (stable / moving /
    /// unknown); zero on the frame it changed.
    pub state_duration: Duration,
}

impl<'a> EpochPolicyContext<'a> {
    pub fn new(
        previous_view: &'a ViewSnapshot,
        current_report: &'a MotionReport,
        motion_state: CameraMotionState,
        state_duration: Duration,
    ) -> Self {
        Self {
            previous_view,
            current_report,
            motion_state,
            state_duration,
        }
    }
}

/// Decides, per observed frame, what camera motion means for spatial state.
///
/// Called on the feed thread once per frame, before stages; must be cheap and must not
/// block. `Send + Sync` so a policy can be built on one thread and moved to the feed.
pub trait EpochPolicy: Send + Sync {
    fn decide(&self, ctx: &EpochPolicyContext<'_>) -> EpochDecision;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_text_is_stable() {
        let cases = [
            (EpochDecision::Continue, "continue"),
            (
                EpochDecision::Degrade {
                    reason: DegradationReason::PtzMoving,
                },
                "degrade:ptz_moving",
            ),
            (
                EpochDecision::Compensate {
                    reason: DegradationReason::LargeJump,
                    transform: AffineTransform2D::IDENTITY,
                },
                "compensate:large_jump",
            ),
            (
                EpochDecision::Segment {
                    reason: SegmentReason::PresetRecall,
                },
                "segment:preset_recall",
            ),
            (
                EpochDecision::Segment {
                    reason: SegmentReason::Custom("operator_reset"),
                },
                "segment:operator_reset",
            ),
        ];
        for (decision, text) in cases {
            assert_eq!(decision.to_string(), text);
        }
        assert_eq!(EpochDecision::Continue.reason_str(), None);
        assert!(EpochDecision::Segment {
            reason: SegmentReason::FeedRestart
        }
        .is_segment());
    }

    #[test]
    fn policy_is_object_safe() {
        struct AlwaysSegment;
        impl EpochPolicy for AlwaysSegment {
            fn decide(&self, _ctx: &EpochPolicyContext<'_>) -> EpochDecision {
                EpochDecision::Segment {
                    reason: SegmentReason::Custom("always"),
                }
            }
        }
        let policy: Box<dyn EpochPolicy> = Box::new(AlwaysSegment);
        let view = ViewSnapshot::default();
        let report = MotionReport::empty();
        let ctx =
            EpochPolicyContext::new(&view, &report, CameraMotionState::Unknown, Duration::ZERO);
        assert_eq!(policy.decide(&ctx).reason_str(), Some("always"));
    }
}
