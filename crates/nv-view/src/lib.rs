//! Camera view state.
//!
//! An output is only meaningful in the view it was computed in: if a PTZ camera moves,
//! zones and trajectories from before the move no longer line up. The view system tracks
//! that with an *epoch* (bumped on discontinuities) and a *version* (bumped on every
//! revision within an epoch).

mod state;

pub use state::{
    CameraMotionState, ContextValidity, DegradationReason, MotionSource, TransitionPhase,
    ViewEpoch, ViewSnapshot, ViewState, ViewVersion,
};
