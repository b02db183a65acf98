//! View state types.

use std::fmt;
use std::sync::Arc;

use nv_core::geometry::AffineTransform2D;

use crate::ptz::PtzTelemetry;

/// Discontinuity generation of a camera view. Bumped when the view changes so much that
/// earlier spatial state (zones, trajectories) no longer applies, and on feed restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewEpoch(u64);

impl ViewEpoch {
    pub const INITIAL: Self = Self(0);
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

impl fmt::Display for ViewEpoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch-{}", self.0)
    }
}

/// Revision counter of the view state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewVersion(u64);

impl ViewVersion {
    pub const INITIAL: Self = Self(0);
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
    /// Versions elapsed since `earlier` (0 if `earlier` is newer).
    pub const fn versions_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Whether the camera is moving.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum CameraMotionState {
    Stable,
    Moving {
        angular_velocity_deg_per_sec: Option<f32>,
        displacement: Option<f32>,
    },
    Unknown,
}

impl CameraMotionState {
    /// Moving *or* unknown: the transition FSM and the policy treat "we cannot tell" as
    /// moving, because assuming stability is what silently corrupts trajectories.
    pub fn is_moving_or_unknown(self) -> bool {
        !matches!(self, Self::Stable)
    }
    /// Stable text for provenance and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "stable",
            Self::Moving { .. } => "moving",
            Self::Unknown => "unknown",
        }
    }
}

/// Where motion information came from.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum MotionSource {
    Telemetry,
    Inferred { confidence: f32 },
    External,
    None,
}

impl MotionSource {
    /// Stable text for provenance and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telemetry => "telemetry",
            Self::Inferred { .. } => "inferred",
            Self::External => "external",
            Self::None => "none",
        }
    }
}

/// Phase of a camera move. `MoveStart` and `MoveEnd` last exactly one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionPhase {
    Settled,
    MoveStart,
    Moving,
    MoveEnd,
}

impl TransitionPhase {
    /// Next phase given whether the camera is moving this frame.
    #[must_use]
    pub fn next(self, is_moving: bool) -> Self {
        match (self, is_moving) {
            (Self::Settled | Self::MoveEnd, true) => Self::MoveStart,
            (Self::MoveStart | Self::Moving, true) => Self::Moving,
            (Self::MoveStart | Self::Moving, false) => Self::MoveEnd,
            (Self::Settled | Self::MoveEnd, false) => Self::Settled,
        }
    }
    /// Stable text for provenance and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Settled => "settled",
            Self::MoveStart => "move_start",
            Self::Moving => "moving",
            Self::MoveEnd => "move_end",
        }
    }
}

/// Why a view is degraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DegradationReason {
    PtzMoving,
    LargeJump,
    ZoomChange,
    OcclusionOrBlur,
    InferredMotionLowConfidence,
    Unknown,
}

impl DegradationReason {
    /// Stable text carried by `HealthEvent::ViewDegraded` and provenance; never reworded.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PtzMoving => "ptz_moving",
            Self::LargeJump => "large_jump",
            Self::ZoomChange => "zoom_change",
            Self::OcclusionOrBlur => "occlusion_or_blur",
            Self::InferredMotionLowConfidence => "inferred_motion_low_confidence",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for DegradationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether spatial context computed in this view can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContextValidity {
    Valid,
    Degraded { reason: DegradationReason },
    Invalid,
}

impl ContextValidity {
    pub fn is_valid(self) -> bool {
        matches!(self, Self::Valid)
    }
    /// The degradation reason, if degraded.
    pub fn degradation_reason(self) -> Option<DegradationReason> {
        match self {
            Self::Degraded { reason } => Some(reason),
            Self::Valid | Self::Invalid => None,
        }
    }
}

/// The view state of a feed at one frame.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ViewState {
    pub epoch: ViewEpoch,
    pub version: ViewVersion,
    pub motion: CameraMotionState,
    pub motion_source: MotionSource,
    pub transition: TransitionPhase,
    /// Last PTZ pose reported in this session (`None` for fixed cameras and providers
    /// without telemetry). Its `ts` is when that pose was first reported: a repeat of the
    /// same pose is not a view change (see `ViewTracker`).
    pub ptz: Option<PtzTelemetry>,
    /// Accumulated transform from the epoch's reference view to the current view.
    pub global_transform: AffineTransform2D,
    pub validity: ContextValidity,
    /// 0 (unusable) to 1 (fully stable).
    pub stability_score: f32,
}

impl ViewState {
    /// Initial state of a fixed camera: stable, valid, score 1.
    pub fn fixed_initial() -> Self {
        Self {
            epoch: ViewEpoch::INITIAL,
            version: ViewVersion::INITIAL,
            motion: CameraMotionState::Stable,
            motion_source: MotionSource::None,
            transition: TransitionPhase::Settled,
            ptz: None,
            global_transform: AffineTransform2D::IDENTITY,
            validity: ContextValidity::Valid,
            stability_score: 1.0,
        }
    }
    /// Initial state of an observed camera: unknown until the provider reports.
    pub fn observed_initial() -> Self {
        Self {
            motion: CameraMotionState::Unknown,
            validity: ContextValidity::Degraded {
                reason: DegradationReason::Unknown,
            },
            stability_score: 0.0,
            ..Self::fixed_initial()
        }
    }
}

/// Cheap, shareable, read-only view of a [`ViewState`] handed to stages.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewSnapshot(Arc<ViewState>);

impl ViewSnapshot {
    pub fn new(state: ViewState) -> Self {
        Self(Arc::new(state))
    }
    pub fn epoch(&self) -> ViewEpoch {
        self.0.epoch
    }
    pub fn version(&self) -> ViewVersion {
        self.0.version
    }
    pub fn motion(&self) -> CameraMotionState {
        self.0.motion
    }
    pub fn motion_source(&self) -> MotionSource {
        self.0.motion_source
    }
    pub fn transition(&self) -> TransitionPhase {
        self.0.transition
    }
    pub fn ptz(&self) -> Option<PtzTelemetry> {
        self.0.ptz
    }
    pub fn global_transform(&self) -> AffineTransform2D {
        self.0.global_transform
    }
    pub fn validity(&self) -> ContextValidity {
        self.0.validity
    }
    pub fn stability_score(&self) -> f32 {
        self.0.stability_score
    }
    pub fn as_view_state(&self) -> &ViewState {
        &self.0
    }
    /// Whether both snapshots share one allocation (an unchanged view is handed out again
    /// without copying).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for ViewSnapshot {
    fn default() -> Self {
        Self::new(ViewState::fixed_initial())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_fsm() {
        use TransitionPhase::*;
        let seq: Vec<_> = [true, true, false, false]
            .iter()
            .scan(Settled, |p, m| {
                *p = p.next(*m);
                Some(*p)
            })
            .collect();
        assert_eq!(seq, vec![MoveStart, Moving, MoveEnd, Settled]);
        assert_eq!(MoveEnd.next(true), MoveStart);
    }

    #[test]
    fn counters() {
        assert_eq!(ViewEpoch::INITIAL.next().as_u64(), 1);
        assert_eq!(ViewVersion::new(5).versions_since(ViewVersion::new(2)), 3);
        assert_eq!(ViewVersion::new(1).versions_since(ViewVersion::new(2)), 0);
        assert_eq!(ViewSnapshot::default().stability_score(), 1.0);
        assert_eq!(ViewState::observed_initial().stability_score, 0.0);
    }
}
