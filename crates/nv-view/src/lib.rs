//! Camera view state.
//!
//! An output is only meaningful in the view it was computed in: if a PTZ camera moves,
//! zones and trajectories from before the move no longer line up. The view system tracks
//! that with an *epoch* (bumped on discontinuities) and a *version* (bumped whenever the
//! view state changes within an epoch).
//!
//! Per observed frame the runtime polls a [`ViewStateProvider`] for a [`MotionReport`] and
//! hands it to the feed's [`ViewTracker`], which derives the motion state, asks the
//! [`EpochPolicy`] (by default [`DefaultEpochPolicy`]) for an [`EpochDecision`] and
//! produces the frame's [`ViewSnapshot`]. User data defined in a view is wrapped in a
//! [`ViewBoundContext`] to detect when it goes stale.

mod bound;
mod default_policy;
mod derive;
mod epoch;
mod provider;
mod ptz;
mod state;
mod tracker;
mod transform;
mod validate;

pub use bound::{BoundContextValidity, ViewBoundContext};
pub use default_policy::DefaultEpochPolicy;
pub use epoch::{EpochDecision, EpochPolicy, EpochPolicyContext, SegmentReason};
pub use provider::{MotionPollContext, MotionReport, ViewStateProvider};
pub use ptz::{wrap_angle_delta_deg, PtzDelta, PtzEvent, PtzTelemetry};
pub use state::{
    CameraMotionState, ContextValidity, DegradationReason, MotionSource, TransitionPhase,
    ViewEpoch, ViewSnapshot, ViewState, ViewVersion,
};
pub use tracker::{ViewSettings, ViewTracker, ViewUpdate};
pub use transform::{
    affine_axis_scales, affine_max_scale_change, affine_rotation_deg, affine_scale_ratio,
    GlobalTransformEstimate, TransformEstimationMethod,
};
