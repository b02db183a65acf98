//! PTZ telemetry and events, and the pose arithmetic the epoch policy needs.
//!
//! Pan is an angle on a circle: a camera panning from 179° to -179° moved 2°, not 358°.
//! Every pan comparison therefore goes through [`wrap_angle_delta_deg`]. Tilt is a bounded
//! mechanical range on real PTZ heads (roughly -90°..90°), so it is compared directly.

use nv_core::time::MonotonicTs;

/// One pose report from a PTZ head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PtzTelemetry {
    /// Pan angle in degrees. Any range; comparisons are wrap-aware.
    pub pan_deg: f32,
    /// Tilt angle in degrees.
    pub tilt_deg: f32,
    /// Normalised zoom: 0 = widest, 1 = tightest. Vendor zoom ratios must be mapped into
    /// this range by the provider so thresholds mean the same thing on every camera.
    pub zoom: f32,
    /// When the pose was sampled.
    pub ts: MonotonicTs,
}

impl PtzTelemetry {
    pub const fn new(pan_deg: f32, tilt_deg: f32, zoom: f32, ts: MonotonicTs) -> Self {
        Self {
            pan_deg,
            tilt_deg,
            zoom,
            ts,
        }
    }

    /// Pose change from `previous` to `self` (pan wrap-aware).
    pub fn delta_since(&self, previous: &Self) -> PtzDelta {
        PtzDelta {
            pan_deg: wrap_angle_delta_deg(previous.pan_deg, self.pan_deg),
            tilt_deg: self.tilt_deg - previous.tilt_deg,
            zoom: self.zoom - previous.zoom,
        }
    }

    /// Same pose, ignoring the timestamp. Exact comparison on purpose: this decides whether
    /// the view state changed, and jitter handling belongs to the policy's deadband.
    pub fn same_pose(&self, other: &Self) -> bool {
        self.pan_deg == other.pan_deg && self.tilt_deg == other.tilt_deg && self.zoom == other.zoom
    }
}

/// Signed pose change between two telemetry samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PtzDelta {
    /// Shortest signed pan rotation, in (-180, 180].
    pub pan_deg: f32,
    pub tilt_deg: f32,
    /// Change of normalised zoom.
    pub zoom: f32,
}

impl PtzDelta {
    /// Largest absolute angular change (pan or tilt), in degrees.
    pub fn max_angle_deg(&self) -> f32 {
        self.pan_deg.abs().max(self.tilt_deg.abs())
    }
    /// Absolute zoom change.
    pub fn zoom_abs(&self) -> f32 {
        self.zoom.abs()
    }
    /// Whether any axis moved by more than `deadband` (degrees for pan/tilt, normalised
    /// units for zoom).
    pub fn exceeds(&self, deadband: f32) -> bool {
        self.max_angle_deg() > deadband || self.zoom_abs() > deadband
    }
}

/// Shortest signed rotation from `from_deg` to `to_deg`, in (-180, 180]. Non-finite input
/// yields NaN, which every threshold comparison treats as "not exceeded"; providers are
/// expected to report finite angles.
pub fn wrap_angle_delta_deg(from_deg: f32, to_deg: f32) -> f32 {
    // Compute in f64 so that large absolute angles (multi-turn encoders) keep precision.
    let raw = f64::from(to_deg) - f64::from(from_deg);
    let mut wrapped = raw.rem_euclid(360.0);
    if wrapped > 180.0 {
        wrapped -= 360.0;
    }
    wrapped as f32
}

/// A discrete PTZ event reported alongside (or instead of) telemetry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PtzEvent {
    /// The head started moving (operator joystick, tour, auto-tracking).
    MoveStart { ts: MonotonicTs },
    /// The head stopped.
    MoveStop { ts: MonotonicTs },
    /// The head was sent to a stored preset: the view is a different scene even if the
    /// telemetry sample for this frame still shows the old pose.
    PresetRecall { preset_id: String, ts: MonotonicTs },
}

impl PtzEvent {
    pub fn ts(&self) -> MonotonicTs {
        match self {
            Self::MoveStart { ts } | Self::MoveStop { ts } | Self::PresetRecall { ts, .. } => *ts,
        }
    }
    /// Stable text for provenance and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::MoveStart { .. } => "move_start",
            Self::MoveStop { .. } => "move_stop",
            Self::PresetRecall { .. } => "preset_recall",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn pan_delta_wraps_around_the_seam() {
        assert!(close(wrap_angle_delta_deg(179.0, -179.0), 2.0));
        assert!(close(wrap_angle_delta_deg(-179.0, 179.0), -2.0));
        assert!(close(wrap_angle_delta_deg(359.0, 1.0), 2.0));
        assert!(close(wrap_angle_delta_deg(10.0, 40.0), 30.0));
        assert!(close(wrap_angle_delta_deg(0.0, 180.0), 180.0));
        assert!(close(wrap_angle_delta_deg(0.0, 720.5), 0.5));
        assert!(wrap_angle_delta_deg(0.0, f32::NAN).is_nan());
    }

    #[test]
    fn delta_and_deadband() {
        let a = PtzTelemetry::new(179.5, 10.0, 0.2, MonotonicTs::ZERO);
        let b = PtzTelemetry::new(-179.5, 12.0, 0.25, MonotonicTs::from_nanos(1));
        let d = b.delta_since(&a);
        assert!(close(d.pan_deg, 1.0) && close(d.tilt_deg, 2.0) && close(d.zoom, 0.05));
        assert!(close(d.max_angle_deg(), 2.0));
        assert!(d.exceeds(1.5) && !d.exceeds(2.5));
        assert!(!PtzDelta::default().exceeds(0.0));
    }

    #[test]
    fn same_pose_ignores_timestamp() {
        let a = PtzTelemetry::new(1.0, 2.0, 0.5, MonotonicTs::ZERO);
        let b = PtzTelemetry {
            ts: MonotonicTs::from_nanos(9),
            ..a
        };
        assert!(a.same_pose(&b));
        assert!(!a.same_pose(&PtzTelemetry { zoom: 0.6, ..a }));
    }

    #[test]
    fn event_text_is_stable() {
        let e = PtzEvent::PresetRecall {
            preset_id: "dock".into(),
            ts: MonotonicTs::from_nanos(5),
        };
        assert_eq!(
            (e.as_str(), e.ts()),
            ("preset_recall", MonotonicTs::from_nanos(5))
        );
        assert_eq!(
            PtzEvent::MoveStop {
                ts: MonotonicTs::ZERO
            }
            .as_str(),
            "move_stop"
        );
    }
}
