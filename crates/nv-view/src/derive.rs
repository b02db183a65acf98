//! Deriving a frame's motion source and motion state from a provider report.
//!
//! Pure functions so the rules can be tested on their own and read in one place; the view
//! tracker only feeds them its memory (last PTZ sample, move latch).

use crate::provider::MotionReport;
use crate::ptz::{PtzEvent, PtzTelemetry};
use crate::state::{CameraMotionState, MotionSource};
use crate::transform::{affine_max_scale_change, affine_rotation_deg, TransformEstimationMethod};

/// Thresholds for calling a frame transform "stable". Part of `ViewSettings`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct StableTransformThresholds {
    /// A transform must be *more* confident than this to say anything about motion.
    pub min_confidence: f32,
    /// Below this translation (normalised units) the image did not shift.
    pub translation: f32,
    /// Below this rotation the image did not roll.
    pub rotation_deg: f32,
    /// Below this relative scale change the image did not zoom.
    pub scale_change: f32,
}

/// Where this frame's motion information came from.
///
/// - PTZ telemetry or PTZ events present → `Telemetry` (the camera itself said so);
/// - else a frame transform: `FeatureMatching` → `Inferred{confidence}`, `PtzModel` and
///   `External` → `External` (knowledge from outside the image);
/// - else a motion hint alone → `External`;
/// - else `None`.
pub(crate) fn motion_source(report: &MotionReport) -> MotionSource {
    if report.ptz.is_some() || !report.ptz_events.is_empty() {
        return MotionSource::Telemetry;
    }
    if let Some(estimate) = report.frame_transform {
        return match estimate.method {
            TransformEstimationMethod::FeatureMatching => MotionSource::Inferred {
                confidence: estimate.confidence,
            },
            TransformEstimationMethod::PtzModel | TransformEstimationMethod::External => {
                MotionSource::External
            }
        };
    }
    if report.motion_hint.is_some() {
        return MotionSource::External;
    }
    MotionSource::None
}

/// Inputs remembered across frames that motion derivation needs.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct MotionMemory {
    /// Last PTZ sample received (with its own timestamp, for angular velocity).
    pub last_ptz: Option<PtzTelemetry>,
    /// Last MoveStart/MoveStop event seen: `Some(true)` while between a start and a stop.
    /// Used only when no telemetry pair is available, so a camera that never sends
    /// MoveStop cannot stay "moving" once it reports poses.
    pub moving_latch: Option<bool>,
}

impl MotionMemory {
    /// Folds this frame's events into the latch (last event wins).
    pub(crate) fn observe_events(&mut self, events: &[PtzEvent]) {
        for event in events {
            match event {
                PtzEvent::MoveStart { .. } => self.moving_latch = Some(true),
                PtzEvent::MoveStop { .. } => self.moving_latch = Some(false),
                PtzEvent::PresetRecall { .. } => {}
            }
        }
    }
}

/// This frame's motion state. First rule that applies:
/// 1. the provider's `motion_hint`;
/// 2. a frame transform more confident than the threshold: `Stable` when translation,
///    rotation and scale change are all below their thresholds, else
///    `Moving{displacement: translation}`;
/// 3. a PTZ sample and a previous sample: `Moving{angular_velocity}` when any axis moved
///    beyond `ptz_deadband` (or a MoveStart arrived with this frame), else `Stable`;
/// 4. the MoveStart/MoveStop latch: `Moving` or `Stable`;
/// 5. `Unknown`.
///
/// `memory` is the state *before* this frame, with this frame's events already folded in.
pub(crate) fn motion_state(
    report: &MotionReport,
    memory: &MotionMemory,
    stable: &StableTransformThresholds,
    ptz_deadband: f32,
) -> CameraMotionState {
    if let Some(hint) = report.motion_hint {
        return hint;
    }
    if let Some(estimate) = report.frame_transform {
        if estimate.confidence > stable.min_confidence {
            let translation = estimate.displacement_magnitude();
            let still = translation < f64::from(stable.translation)
                && affine_rotation_deg(&estimate.transform).abs() < f64::from(stable.rotation_deg)
                && affine_max_scale_change(&estimate.transform) < f64::from(stable.scale_change);
            return if still {
                CameraMotionState::Stable
            } else {
                CameraMotionState::Moving {
                    angular_velocity_deg_per_sec: None,
                    displacement: Some(translation as f32),
                }
            };
        }
    }
    if let (Some(current), Some(previous)) = (report.ptz, memory.last_ptz) {
        let delta = current.delta_since(&previous);
        let move_started = report
            .ptz_events
            .iter()
            .any(|e| matches!(e, PtzEvent::MoveStart { .. }));
        if delta.exceeds(ptz_deadband) || move_started {
            let dt_secs = current
                .ts
                .checked_duration_since(previous.ts)
                .map_or(0.0, |d| d.as_secs_f64());
            let angular_velocity_deg_per_sec =
                (dt_secs > 0.0).then(|| (f64::from(delta.max_angle_deg()) / dt_secs) as f32);
            return CameraMotionState::Moving {
                angular_velocity_deg_per_sec,
                displacement: None,
            };
        }
        return CameraMotionState::Stable;
    }
    match memory.moving_latch {
        Some(true) => CameraMotionState::Moving {
            angular_velocity_deg_per_sec: None,
            displacement: None,
        },
        Some(false) => CameraMotionState::Stable,
        None => CameraMotionState::Unknown,
    }
}

#[cfg(test)]
#[path = "derive_tests.rs"]
mod tests;
