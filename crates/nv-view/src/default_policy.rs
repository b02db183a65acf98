//! The default epoch policy: thresholds on PTZ pose changes and image displacement, with a
//! ceiling on how large a transform may be before compensation is refused.
//!
//! Order of evaluation (first match wins):
//! 1. a `PresetRecall` event → `Segment(preset_recall)`;
//! 2. previous and current PTZ pose both known:
//!    - pan/tilt change (pan wrap-aware) > `segment_angle_threshold_deg` or zoom change >
//!      `segment_zoom_threshold` → compensate if a confident transform allows it, else
//!      `Segment(ptz_jump | zoom_jump)`;
//!    - any change > `ptz_deadband` → `Degrade(ptz_moving | zoom_change)` when
//!      `degrade_on_small_motion`, else `Continue`;
//! 3. motion state `Moving{displacement: Some(d)}` with `d > segment_displacement_threshold`
//!    → compensate if allowed, else `Segment(large_jump)`;
//! 4. any other `Moving` → `Degrade` when `degrade_on_small_motion`, else `Continue`;
//! 5. otherwise `Continue`.
//!
//! "Compensate if allowed" means: the report carries a frame transform with confidence ≥
//! `compensate_min_confidence`, *and* that transform is within the compensation ceiling
//! (rotation ≤ `max_compensation_rotation_deg`, scale change ≤
//! `max_compensation_scale_change`). Beyond the ceiling a re-mapped zone or trajectory is
//! more misleading than a fresh epoch, so the policy segments with `compensation_ceiling`.

use nv_core::error::ConfigError;

use crate::epoch::{EpochDecision, EpochPolicy, EpochPolicyContext, SegmentReason};
use crate::provider::MotionReport;
use crate::state::{CameraMotionState, DegradationReason};
use crate::transform::{affine_max_scale_change, affine_rotation_deg};
use crate::validate;

/// Threshold-based [`EpochPolicy`]; `Default` gives the reference thresholds.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DefaultEpochPolicy {
    /// Pan or tilt change per frame, in degrees, beyond which the view is a jump.
    pub segment_angle_threshold_deg: f32,
    /// Normalised zoom change per frame beyond which the view is a jump.
    pub segment_zoom_threshold: f32,
    /// Image displacement per frame (normalised units) beyond which the view is a jump.
    pub segment_displacement_threshold: f32,
    /// Minimum transform confidence to compensate instead of segmenting.
    pub compensate_min_confidence: f32,
    /// Degrade on motion below the jump thresholds (otherwise such motion is ignored).
    pub degrade_on_small_motion: bool,
    /// PTZ changes at or below this are telemetry noise: degrees for pan/tilt, normalised
    /// units for zoom.
    pub ptz_deadband: f32,
    /// Compensation ceiling: largest rotation, in degrees, a compensating transform may have.
    pub max_compensation_rotation_deg: f32,
    /// Compensation ceiling: largest relative scale change (0.1 = 10%) a compensating
    /// transform may have, along either axis.
    pub max_compensation_scale_change: f32,
}

impl Default for DefaultEpochPolicy {
    fn default() -> Self {
        Self {
            segment_angle_threshold_deg: 15.0,
            segment_zoom_threshold: 0.3,
            segment_displacement_threshold: 0.25,
            compensate_min_confidence: 0.8,
            degrade_on_small_motion: true,
            ptz_deadband: 0.01,
            max_compensation_rotation_deg: 5.0,
            max_compensation_scale_change: 0.10,
        }
    }
}

impl DefaultEpochPolicy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks every field and reports all problems at once (fields are named
    /// `epoch_policy.<field>`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let p = &mut problems;
        validate::positive(
            p,
            "epoch_policy.segment_angle_threshold_deg",
            self.segment_angle_threshold_deg,
        );
        validate::positive(
            p,
            "epoch_policy.segment_zoom_threshold",
            self.segment_zoom_threshold,
        );
        validate::positive(
            p,
            "epoch_policy.segment_displacement_threshold",
            self.segment_displacement_threshold,
        );
        validate::unit_interval(
            p,
            "epoch_policy.compensate_min_confidence",
            self.compensate_min_confidence,
        );
        validate::non_negative(p, "epoch_policy.ptz_deadband", self.ptz_deadband);
        validate::non_negative(
            p,
            "epoch_policy.max_compensation_rotation_deg",
            self.max_compensation_rotation_deg,
        );
        validate::non_negative(
            p,
            "epoch_policy.max_compensation_scale_change",
            self.max_compensation_scale_change,
        );
        ConfigError::check(problems)
    }

    /// A jump happened: compensate when a confident transform within the ceiling exists,
    /// otherwise segment with `fallback`.
    fn compensate_or_segment(
        &self,
        report: &MotionReport,
        reason: DegradationReason,
        fallback: SegmentReason,
    ) -> EpochDecision {
        let Some(estimate) = report.frame_transform else {
            return EpochDecision::Segment { reason: fallback };
        };
        // `is_ge` is false for NaN, so a NaN confidence counts as not confident.
        let confident = estimate
            .confidence
            .partial_cmp(&self.compensate_min_confidence)
            .is_some_and(std::cmp::Ordering::is_ge);
        if !confident {
            return EpochDecision::Segment { reason: fallback };
        }
        if !self.within_ceiling(&estimate.transform) {
            return EpochDecision::Segment {
                reason: SegmentReason::CompensationCeiling,
            };
        }
        EpochDecision::Compensate {
            reason,
            transform: estimate.transform,
        }
    }

    /// Whether a transform is small enough to compensate with. Non-finite transforms fail.
    fn within_ceiling(&self, transform: &nv_core::geometry::AffineTransform2D) -> bool {
        let rotation_deg = affine_rotation_deg(transform).abs();
        let scale_change = affine_max_scale_change(transform);
        rotation_deg <= f64::from(self.max_compensation_rotation_deg)
            && scale_change <= f64::from(self.max_compensation_scale_change)
    }

    /// Reason for degrading on small motion, named after the strongest evidence present.
    fn small_motion_reason(report: &MotionReport) -> DegradationReason {
        if report.ptz.is_some() || !report.ptz_events.is_empty() {
            DegradationReason::PtzMoving
        } else {
            DegradationReason::InferredMotionLowConfidence
        }
    }

    fn degrade_or_continue(&self, reason: DegradationReason) -> EpochDecision {
        if self.degrade_on_small_motion {
            EpochDecision::Degrade { reason }
        } else {
            EpochDecision::Continue
        }
    }
}

impl EpochPolicy for DefaultEpochPolicy {
    fn decide(&self, ctx: &EpochPolicyContext<'_>) -> EpochDecision {
        let report = ctx.current_report;
        if report.preset_recall().is_some() {
            return EpochDecision::Segment {
                reason: SegmentReason::PresetRecall,
            };
        }

        if let (Some(previous), Some(current)) = (ctx.previous_view.ptz(), report.ptz) {
            let delta = current.delta_since(&previous);
            let angle_jump = delta.max_angle_deg() > self.segment_angle_threshold_deg;
            let zoom_jump = delta.zoom_abs() > self.segment_zoom_threshold;
            if angle_jump || zoom_jump {
                let (reason, fallback) = if angle_jump {
                    (DegradationReason::LargeJump, SegmentReason::PtzJump)
                } else {
                    (DegradationReason::ZoomChange, SegmentReason::ZoomJump)
                };
                return self.compensate_or_segment(report, reason, fallback);
            }
            if delta.exceeds(self.ptz_deadband) {
                let zoom_only = delta.max_angle_deg() <= self.ptz_deadband;
                let reason = if zoom_only {
                    DegradationReason::ZoomChange
                } else {
                    DegradationReason::PtzMoving
                };
                return self.degrade_or_continue(reason);
            }
            // Pose within the deadband: fall through, the motion state may still say the
            // image moved (e.g. a MoveStart event before telemetry catches up).
        }

        match ctx.motion_state {
            CameraMotionState::Moving {
                displacement: Some(d),
                ..
            } if d > self.segment_displacement_threshold => self.compensate_or_segment(
                report,
                DegradationReason::LargeJump,
                SegmentReason::LargeJump,
            ),
            CameraMotionState::Moving { .. } => {
                self.degrade_or_continue(Self::small_motion_reason(report))
            }
            CameraMotionState::Stable | CameraMotionState::Unknown => EpochDecision::Continue,
        }
    }
}

#[cfg(test)]
#[path = "default_policy_tests.rs"]
mod tests;
