//! The per-feed view state machine.
//!
//! The runtime owns one [`ViewTracker`] per feed and calls [`ViewTracker::update`] once per
//! frame, before any stage, with the provider's report (observed cameras) and
//! [`ViewTracker::restart`] when the feed session restarts. The tracker derives motion,
//! consults the epoch policy and applies its decision:
//!
//! | decision   | validity         | stability                    | epoch | transition       |
//! |------------|------------------|------------------------------|-------|------------------|
//! | Continue   | Valid if stable  | +1/settle_frames if stable   | –     | FSM step         |
//! | Degrade    | Degraded{reason} | −degrade penalty             | –     | FSM step         |
//! | Compensate | Degraded{reason} | −compensate penalty          | –     | FSM step         |
//! | Segment    | Valid            | 0                            | +1    | forced MoveStart |
//!
//! The version increments only when the resulting state differs from the previous one, so
//! an unchanged view hands out the same `ViewSnapshot` allocation and bound contexts stay
//! `Current`. A fixed camera never changes except for the epoch bump of a restart.

use std::fmt;

use nv_core::camera::CameraMode;
use nv_core::error::ConfigError;
use nv_core::geometry::AffineTransform2D;
use nv_core::time::MonotonicTs;

use crate::derive::{self, MotionMemory, StableTransformThresholds};
use crate::epoch::{EpochDecision, EpochPolicy, EpochPolicyContext, SegmentReason};
use crate::provider::MotionReport;
use crate::state::{
    CameraMotionState, ContextValidity, DegradationReason, TransitionPhase, ViewEpoch,
    ViewSnapshot, ViewState,
};
use crate::validate;

/// Tunables of the view tracker. `Default` reproduces the reference behaviour.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ViewSettings {
    /// Consecutive stable `Continue` frames for the stability score to climb from 0 to 1
    /// (the settling window). 0 behaves as 1.
    pub stability_settle_frames: u32,
    /// Stability lost on each `Degrade`.
    pub degrade_stability_penalty: f32,
    /// Stability lost on each `Compensate`.
    pub compensate_stability_penalty: f32,
    /// A frame transform must be more confident than this to decide the motion state.
    pub transform_min_confidence: f32,
    /// Below this frame-transform translation (normalised units) the image is still.
    pub stable_translation: f32,
    /// Below this frame-transform rotation (degrees) the image is still.
    pub stable_rotation_deg: f32,
    /// Below this frame-transform relative scale change the image is still.
    pub stable_scale_change: f32,
    /// PTZ pose changes at or below this are noise when deriving the motion state
    /// (degrees for pan/tilt, normalised units for zoom).
    pub ptz_motion_deadband: f32,
}

impl Default for ViewSettings {
    fn default() -> Self {
        Self {
            stability_settle_frames: 10,
            degrade_stability_penalty: 0.2,
            compensate_stability_penalty: 0.1,
            transform_min_confidence: 0.5,
            stable_translation: 0.01,
            stable_rotation_deg: 0.5,
            stable_scale_change: 0.01,
            ptz_motion_deadband: 0.01,
        }
    }
}

impl ViewSettings {
    #[must_use]
    pub fn with_stability_settle_frames(mut self, frames: u32) -> Self {
        self.stability_settle_frames = frames;
        self
    }

    /// Checks every field and reports all problems at once (fields are named
    /// `view.<field>`). `stability_settle_frames = 0` is accepted and means "settle at once".
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let p = &mut problems;
        validate::unit_interval(
            p,
            "view.degrade_stability_penalty",
            self.degrade_stability_penalty,
        );
        validate::unit_interval(
            p,
            "view.compensate_stability_penalty",
            self.compensate_stability_penalty,
        );
        validate::unit_interval(
            p,
            "view.transform_min_confidence",
            self.transform_min_confidence,
        );
        validate::non_negative(p, "view.stable_translation", self.stable_translation);
        validate::non_negative(p, "view.stable_rotation_deg", self.stable_rotation_deg);
        validate::non_negative(p, "view.stable_scale_change", self.stable_scale_change);
        validate::non_negative(p, "view.ptz_motion_deadband", self.ptz_motion_deadband);
        ConfigError::check(problems)
    }

    fn stable_thresholds(&self) -> StableTransformThresholds {
        StableTransformThresholds {
            min_confidence: self.transform_min_confidence,
            translation: self.stable_translation,
            rotation_deg: self.stable_rotation_deg,
            scale_change: self.stable_scale_change,
        }
    }
    fn settle_step(&self) -> f32 {
        1.0 / self.stability_settle_frames.max(1) as f32
    }
}

/// The result of one tracker step.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ViewUpdate {
    /// The view for this frame (the previous allocation when nothing changed).
    pub snapshot: ViewSnapshot,
    /// The policy's decision; `None` for fixed cameras. A restart reports
    /// `Segment(feed_restart)`.
    pub decision: Option<EpochDecision>,
    /// The new epoch when it changed (Segment or restart): the runtime calls
    /// `on_view_epoch_change` and emits `ViewEpochChanged` with `decision` as its reason.
    pub epoch_changed: Option<ViewEpoch>,
    /// The reason when the policy degraded the view this frame (for `ViewDegraded`, which
    /// the runtime throttles).
    pub degraded: Option<DegradationReason>,
    /// The transform to apply to the current epoch's spatial state when the policy chose
    /// `Compensate` (previous-frame to current-frame coordinates).
    pub compensation: Option<AffineTransform2D>,
    /// Whether the version changed this step.
    pub version_changed: bool,
}

impl ViewUpdate {
    fn unchanged(snapshot: ViewSnapshot) -> Self {
        Self {
            snapshot,
            decision: None,
            epoch_changed: None,
            degraded: None,
            compensation: None,
            version_changed: false,
        }
    }
}

/// Per-feed view state machine. Not `Sync`-shared: it lives on the feed thread.
pub struct ViewTracker {
    mode: CameraMode,
    policy: Box<dyn EpochPolicy>,
    settings: ViewSettings,
    current: ViewSnapshot,
    memory: MotionMemory,
    /// When the current kind of motion state (stable / moving / unknown) began.
    motion_kind_since: Option<MonotonicTs>,
}

impl fmt::Debug for ViewTracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewTracker")
            .field("mode", &self.mode)
            .field("settings", &self.settings)
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl ViewTracker {
    pub fn new(mode: CameraMode, policy: Box<dyn EpochPolicy>, settings: ViewSettings) -> Self {
        Self {
            mode,
            policy,
            settings,
            current: ViewSnapshot::new(initial_state(mode)),
            memory: MotionMemory::default(),
            motion_kind_since: None,
        }
    }

    pub fn mode(&self) -> CameraMode {
        self.mode
    }
    pub fn settings(&self) -> &ViewSettings {
        &self.settings
    }
    /// The current view (what stages of the next frame would see without an update).
    pub fn snapshot(&self) -> &ViewSnapshot {
        &self.current
    }

    /// One frame. `now` is the frame's timestamp; it only measures how long the motion
    /// state has lasted, so a timestamp going backwards yields a zero duration, not an error.
    pub fn update(&mut self, report: &MotionReport, now: MonotonicTs) -> ViewUpdate {
        if self.mode == CameraMode::Fixed {
            return ViewUpdate::unchanged(self.current.clone());
        }

        self.memory.observe_events(&report.ptz_events);
        let motion = derive::motion_state(
            report,
            &self.memory,
            &self.settings.stable_thresholds(),
            self.settings.ptz_motion_deadband,
        );
        if let Some(ptz) = report.ptz {
            self.memory.last_ptz = Some(ptz);
        }

        let previous = self.current.as_view_state();
        let since = match self.motion_kind_since {
            Some(since) if previous.motion.as_str() == motion.as_str() => since,
            _ => now,
        };
        self.motion_kind_since = Some(since);
        let ctx = EpochPolicyContext::new(
            &self.current,
            report,
            motion,
            now.saturating_duration_since(since),
        );
        let decision = self.policy.decide(&ctx);

        let mut next = previous.clone();
        next.motion = motion;
        next.motion_source = derive::motion_source(report);
        if let Some(ptz) = report.ptz {
            // Keep the first report of a pose: a repeated pose is not a view change.
            if !previous.ptz.is_some_and(|p| p.same_pose(&ptz)) {
                next.ptz = Some(ptz);
            }
        }

        let mut update = ViewUpdate::unchanged(self.current.clone());
        update.decision = Some(decision);
        self.apply(&mut next, &decision, &mut update);

        if next != *previous {
            next.version = previous.version.next();
            self.current = ViewSnapshot::new(next);
            update.snapshot = self.current.clone();
            update.version_changed = true;
        }
        update
    }

    /// Applies the decision's effects to `next` and records them in `update`.
    fn apply(&self, next: &mut ViewState, decision: &EpochDecision, update: &mut ViewUpdate) {
        match *decision {
            EpochDecision::Continue => {
                if next.motion == CameraMotionState::Stable {
                    next.validity = ContextValidity::Valid;
                    next.stability_score =
                        settle_toward_one(next.stability_score, self.settings.settle_step());
                }
            }
            EpochDecision::Degrade { reason } => {
                next.validity = ContextValidity::Degraded { reason };
                next.stability_score = lower(
                    next.stability_score,
                    self.settings.degrade_stability_penalty,
                );
                update.degraded = Some(reason);
            }
            EpochDecision::Compensate { reason, transform } => {
                next.validity = ContextValidity::Degraded { reason };
                next.stability_score = lower(
                    next.stability_score,
                    self.settings.compensate_stability_penalty,
                );
                next.global_transform = next.global_transform.then(&transform);
                update.compensation = Some(transform);
            }
            EpochDecision::Segment { .. } => {
                next.epoch = next.epoch.next();
                next.validity = ContextValidity::Valid;
                next.stability_score = 0.0;
                next.transition = TransitionPhase::MoveStart;
                // A new epoch has a new reference view.
                next.global_transform = AffineTransform2D::IDENTITY;
                update.epoch_changed = Some(next.epoch);
                return;
            }
        }
        next.transition = next.transition.next(next.motion.is_moving_or_unknown());
    }

    /// A new feed session: bump the epoch and forget everything else about the view
    /// (motion, transition, stability, PTZ pose, accumulated transform). Applies to fixed
    /// cameras too, because the restart itself is a discontinuity for stages.
    pub fn restart(&mut self) -> ViewUpdate {
        let previous = self.current.as_view_state();
        let mut next = initial_state(self.mode);
        next.epoch = previous.epoch.next();
        next.version = previous.version.next();
        let epoch = next.epoch;
        self.current = ViewSnapshot::new(next);
        self.memory = MotionMemory::default();
        self.motion_kind_since = None;
        ViewUpdate {
            snapshot: self.current.clone(),
            decision: Some(EpochDecision::Segment {
                reason: SegmentReason::FeedRestart,
            }),
            epoch_changed: Some(epoch),
            degraded: None,
            compensation: None,
            version_changed: true,
        }
    }
}

/// Fixed cameras start stable and valid; anything else starts unknown until a report
/// arrives (`CameraMode` is non-exhaustive, and assuming stability is the unsafe guess).
fn initial_state(mode: CameraMode) -> ViewState {
    if mode == CameraMode::Fixed {
        ViewState::fixed_initial()
    } else {
        ViewState::observed_initial()
    }
}

/// One settling step toward 1. Snaps to exactly 1 when within rounding of it, so the
/// settling window takes exactly `stability_settle_frames` frames from 0.
fn settle_toward_one(score: f32, step: f32) -> f32 {
    let raised = score + step;
    if raised >= 1.0 - step * 1e-3 {
        1.0
    } else {
        raised
    }
}

fn lower(score: f32, penalty: f32) -> f32 {
    (score - penalty.max(0.0)).clamp(0.0, 1.0)
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
