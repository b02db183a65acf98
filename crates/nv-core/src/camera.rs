//! Camera mode: every feed must say whether its view can move.

/// Whether the camera's view can change. There is deliberately no default: a wrong guess
/// silently corrupts trajectories when a PTZ camera moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CameraMode {
    /// The view never moves; no view provider is polled.
    Fixed,
    /// The view may move (PTZ, handheld); a view provider must be supplied.
    Observed,
}
