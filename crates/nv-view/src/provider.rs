//! The per-frame motion input of an observed camera.
//!
//! A provider turns whatever the deployment knows about camera motion (PTZ telemetry, an
//! ego-motion estimator, an external system) into a [`MotionReport`]. The runtime polls it
//! synchronously on the feed thread before any stage runs, so a slow provider delays the
//! whole feed: providers should read cached state, not block on the network.

use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;

use crate::ptz::{PtzEvent, PtzTelemetry};
use crate::state::{CameraMotionState, ViewSnapshot};
use crate::transform::GlobalTransformEstimate;

/// What the provider is given each frame.
#[derive(Debug)]
pub struct MotionPollContext<'a> {
    /// Timestamp of the frame being processed.
    pub ts: MonotonicTs,
    pub frame: &'a FrameEnvelope,
    /// The view as of the previous frame, e.g. to tag transform estimates with the version
    /// they were computed against.
    pub previous_view: &'a ViewSnapshot,
}

/// Everything a provider knows about camera motion at one frame. Every part is optional;
/// an empty report means "no information" and leaves the motion state `Unknown`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MotionReport {
    /// Current PTZ pose, if the camera reports one.
    pub ptz: Option<PtzTelemetry>,
    /// How the image moved since the previous frame.
    pub frame_transform: Option<GlobalTransformEstimate>,
    /// The provider's own verdict; overrides what the view tracker would derive.
    pub motion_hint: Option<CameraMotionState>,
    /// Discrete PTZ events since the previous poll, oldest first.
    pub ptz_events: Vec<PtzEvent>,
}

impl MotionReport {
    /// A report with no information.
    pub fn empty() -> Self {
        Self::default()
    }
    #[must_use]
    pub fn with_ptz(mut self, ptz: PtzTelemetry) -> Self {
        self.ptz = Some(ptz);
        self
    }
    #[must_use]
    pub fn with_frame_transform(mut self, estimate: GlobalTransformEstimate) -> Self {
        self.frame_transform = Some(estimate);
        self
    }
    #[must_use]
    pub fn with_motion_hint(mut self, hint: CameraMotionState) -> Self {
        self.motion_hint = Some(hint);
        self
    }
    #[must_use]
    pub fn with_ptz_event(mut self, event: PtzEvent) -> Self {
        self.ptz_events.push(event);
        self
    }
    /// Whether the report carries no information at all.
    pub fn is_empty(&self) -> bool {
        self.ptz.is_none()
            && self.frame_transform.is_none()
            && self.motion_hint.is_none()
            && self.ptz_events.is_empty()
    }
    /// The first preset recall among the events, if any.
    pub fn preset_recall(&self) -> Option<&str> {
        self.ptz_events.iter().find_map(|e| match e {
            PtzEvent::PresetRecall { preset_id, .. } => Some(preset_id.as_str()),
            PtzEvent::MoveStart { .. } | PtzEvent::MoveStop { .. } => None,
        })
    }
}

/// Supplies per-frame motion information for an observed camera.
///
/// `Send + Sync` because one provider may be shared by the feed thread and by whatever
/// updates it (a PTZ control connection); `poll` takes `&self` for the same reason, so
/// implementations keep their own interior state behind a lock or atomics.
pub trait ViewStateProvider: Send + Sync {
    fn poll(&self, ctx: &MotionPollContext<'_>) -> MotionReport;
}

#[cfg(test)]
mod tests {
    use super::*;
    use nv_core::id::FeedId;
    use nv_frame::PixelFormat;

    /// A provider that reports a fixed pose, to prove the trait is object-safe and usable.
    struct StaticPtz(PtzTelemetry);

    impl ViewStateProvider for StaticPtz {
        fn poll(&self, ctx: &MotionPollContext<'_>) -> MotionReport {
            MotionReport::empty().with_ptz(PtzTelemetry {
                ts: ctx.ts,
                ..self.0
            })
        }
    }

    #[test]
    fn provider_is_object_safe_and_sees_the_frame_ts() {
        let ts = MonotonicTs::from_nanos(42);
        let frame =
            FrameEnvelope::new_owned(FeedId::new(1), 0, ts, 1, 1, PixelFormat::Gray8, vec![0])
                .unwrap();
        let view = ViewSnapshot::default();
        let provider: Box<dyn ViewStateProvider> = Box::new(StaticPtz(PtzTelemetry::new(
            1.0,
            2.0,
            0.5,
            MonotonicTs::ZERO,
        )));
        let report = provider.poll(&MotionPollContext {
            ts,
            frame: &frame,
            previous_view: &view,
        });
        assert_eq!(report.ptz.map(|p| p.ts), Some(ts));
        assert!(!report.is_empty());
    }

    #[test]
    fn builders_and_preset_lookup() {
        assert!(MotionReport::empty().is_empty());
        let r = MotionReport::empty()
            .with_ptz_event(PtzEvent::MoveStart {
                ts: MonotonicTs::ZERO,
            })
            .with_ptz_event(PtzEvent::PresetRecall {
                preset_id: "gate".into(),
                ts: MonotonicTs::ZERO,
            })
            .with_motion_hint(CameraMotionState::Stable);
        assert_eq!(r.preset_recall(), Some("gate"));
        assert_eq!(r.motion_hint, Some(CameraMotionState::Stable));
    }
}
