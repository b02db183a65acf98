//! View tracker sequences: decisions applied, versions, epochs, stability, restart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::default_policy::DefaultEpochPolicy;
use crate::ptz::{PtzEvent, PtzTelemetry};
use crate::state::{MotionSource, ViewVersion};
use crate::transform::{GlobalTransformEstimate, TransformEstimationMethod};

const FRAME_NS: u64 = 40_000_000;

fn ts(frame: u64) -> MonotonicTs {
    MonotonicTs::from_nanos(frame * FRAME_NS)
}

fn observed() -> ViewTracker {
    observed_with(ViewSettings::default())
}

fn observed_with(settings: ViewSettings) -> ViewTracker {
    ViewTracker::new(
        CameraMode::Observed,
        Box::new(DefaultEpochPolicy::default()),
        settings,
    )
}

fn ptz(pan_deg: f32, frame: u64) -> MotionReport {
    MotionReport::empty().with_ptz(PtzTelemetry::new(pan_deg, 0.0, 0.0, ts(frame)))
}

fn stable() -> MotionReport {
    MotionReport::empty().with_motion_hint(CameraMotionState::Stable)
}

fn moving_hint() -> MotionReport {
    MotionReport::empty().with_motion_hint(CameraMotionState::Moving {
        angular_velocity_deg_per_sec: None,
        displacement: Some(0.05),
    })
}

fn feature_transform(transform: AffineTransform2D, confidence: f32) -> MotionReport {
    MotionReport::empty().with_frame_transform(GlobalTransformEstimate::new(
        transform,
        confidence,
        TransformEstimationMethod::FeatureMatching,
        ViewVersion::INITIAL,
    ))
}

/// Runs reports through a tracker, frame numbers from 0.
fn run(tracker: &mut ViewTracker, reports: &[MotionReport]) -> Vec<ViewUpdate> {
    reports
        .iter()
        .enumerate()
        .map(|(i, r)| tracker.update(r, ts(i as u64)))
        .collect()
}

#[test]
fn initial_states() {
    let fixed = ViewTracker::new(
        CameraMode::Fixed,
        Box::new(DefaultEpochPolicy::default()),
        ViewSettings::default(),
    );
    assert_eq!(
        fixed.snapshot().as_view_state(),
        &ViewState::fixed_initial()
    );
    assert_eq!(
        observed().snapshot().as_view_state(),
        &ViewState::observed_initial()
    );
}

#[test]
fn fixed_camera_never_changes() {
    let mut tracker = ViewTracker::new(
        CameraMode::Fixed,
        Box::new(DefaultEpochPolicy::default()),
        ViewSettings::default(),
    );
    let before = tracker.snapshot().clone();
    let jump = ptz(90.0, 1).with_ptz_event(PtzEvent::PresetRecall {
        preset_id: "p".into(),
        ts: ts(1),
    });
    for update in run(&mut tracker, &[ptz(0.0, 0), jump, moving_hint()]) {
        assert!(update.snapshot.ptr_eq(&before));
        assert_eq!(update.decision, None);
        assert_eq!(update.epoch_changed, None);
        assert!(!update.version_changed);
    }
}

#[test]
fn ptz_pan_sweep_degrades_then_segments() {
    let mut tracker = observed();
    let reports = [
        ptz(0.0, 0),
        ptz(0.0, 1),
        ptz(2.0, 2),
        ptz(4.0, 3),
        ptz(30.0, 4),
        ptz(30.0, 5),
    ];
    let updates = run(&mut tracker, &reports);
    // First sample: nothing to compare with.
    assert_eq!(updates[0].decision, Some(EpochDecision::Continue));
    assert_eq!(updates[0].snapshot.motion(), CameraMotionState::Unknown);
    assert_eq!(updates[0].snapshot.motion_source(), MotionSource::Telemetry);
    // Same pose: stable, valid.
    assert_eq!(updates[1].snapshot.motion(), CameraMotionState::Stable);
    assert!(updates[1].snapshot.validity().is_valid());
    // Small pans degrade and report the reason.
    for u in &updates[2..4] {
        assert_eq!(u.degraded, Some(DegradationReason::PtzMoving));
        assert_eq!(
            u.snapshot.validity(),
            ContextValidity::Degraded {
                reason: DegradationReason::PtzMoving
            }
        );
        assert!(matches!(
            u.snapshot.motion(),
            CameraMotionState::Moving { angular_velocity_deg_per_sec: Some(v), .. } if (v - 50.0).abs() < 1e-3
        ));
    }
    assert_eq!(updates[2].snapshot.transition(), TransitionPhase::MoveStart);
    assert_eq!(updates[3].snapshot.transition(), TransitionPhase::Moving);
    // 26° jump: new epoch.
    let seg = &updates[4];
    assert_eq!(
        seg.decision,
        Some(EpochDecision::Segment {
            reason: SegmentReason::PtzJump
        })
    );
    assert_eq!(seg.epoch_changed, Some(ViewEpoch::new(1)));
    assert_eq!(seg.snapshot.epoch(), ViewEpoch::new(1));
    assert_eq!(seg.snapshot.validity(), ContextValidity::Valid);
    assert_eq!(seg.snapshot.transition(), TransitionPhase::MoveStart);
    assert_eq!(seg.snapshot.stability_score(), 0.0);
    assert_eq!(seg.degraded, None);
    // Then the camera holds still at the new pose.
    assert_eq!(updates[5].decision, Some(EpochDecision::Continue));
    assert_eq!(updates[5].snapshot.transition(), TransitionPhase::MoveEnd);
    assert_eq!(updates[5].epoch_changed, None);
}

#[test]
fn version_increments_only_on_change() {
    let mut tracker = observed_with(ViewSettings {
        stability_settle_frames: 2,
        ..ViewSettings::default()
    });
    let updates = run(&mut tracker, &vec![stable(); 8]);
    let versions: Vec<u64> = updates
        .iter()
        .map(|u| u.snapshot.version().as_u64())
        .collect();
    // Frame 0: unknown -> stable (score 0.5, Settled); frame 1: score 1.0; then nothing
    // changes and the same allocation is handed out.
    assert_eq!(versions, vec![1, 2, 2, 2, 2, 2, 2, 2]);
    assert!(updates[2..]
        .iter()
        .all(|u| u.snapshot.ptr_eq(&updates[1].snapshot)));
    assert!(updates[1].version_changed && !updates[2].version_changed);
    // A repeated PTZ pose with a new timestamp is not a change either. The first sample
    // is Unknown motion (MoveStart), then Stable walks the FSM back to Settled.
    let changed: Vec<bool> = (10..15)
        .map(|f| tracker.update(&ptz(5.0, f), ts(f)).version_changed)
        .collect();
    assert_eq!(changed, vec![true, true, true, false, false]);
    assert_eq!(tracker.snapshot().ptz().map(|p| p.ts), Some(ts(10)));
    assert_eq!(tracker.snapshot().transition(), TransitionPhase::Settled);
}

#[test]
fn stability_settles_over_the_configured_window() {
    let mut tracker = observed_with(ViewSettings {
        stability_settle_frames: 4,
        ..ViewSettings::default()
    });
    let scores: Vec<f32> = run(&mut tracker, &vec![stable(); 5])
        .iter()
        .map(|u| u.snapshot.stability_score())
        .collect();
    assert_eq!(scores, vec![0.25, 0.5, 0.75, 1.0, 1.0]);

    let mut tracker = observed_with(ViewSettings {
        stability_settle_frames: 0,
        ..ViewSettings::default()
    });
    assert_eq!(
        tracker.update(&stable(), ts(0)).snapshot.stability_score(),
        1.0
    );

    // Default window of 10 reaches exactly 1.0 on the 10th frame.
    let mut tracker = observed();
    let updates = run(&mut tracker, &vec![stable(); 10]);
    assert!(updates[8].snapshot.stability_score() < 1.0);
    assert_eq!(updates[9].snapshot.stability_score(), 1.0);
}

#[test]
fn degrade_and_compensate_lower_stability() {
    let mut tracker = observed_with(ViewSettings {
        stability_settle_frames: 1,
        ..ViewSettings::default()
    });
    assert_eq!(
        tracker.update(&stable(), ts(0)).snapshot.stability_score(),
        1.0
    );
    let u = tracker.update(&moving_hint(), ts(1));
    assert_eq!(
        u.degraded,
        Some(DegradationReason::InferredMotionLowConfidence)
    );
    assert!((u.snapshot.stability_score() - 0.8).abs() < 1e-6);

    let jump = AffineTransform2D::translation(0.3, 0.0);
    let u = tracker.update(&feature_transform(jump, 0.9), ts(2));
    assert_eq!(u.compensation, Some(jump));
    assert_eq!(u.degraded, None);
    assert!((u.snapshot.stability_score() - 0.7).abs() < 1e-6);
    assert_eq!(
        u.snapshot.validity(),
        ContextValidity::Degraded {
            reason: DegradationReason::LargeJump
        }
    );
    assert_eq!(
        u.snapshot.motion_source(),
        MotionSource::Inferred { confidence: 0.9 }
    );
    // Compensations accumulate into the global transform until the next segment.
    let u = tracker.update(&feature_transform(jump, 0.9), ts(3));
    assert!((u.snapshot.global_transform().m[2] - 0.6).abs() < 1e-9);
    let u = tracker.update(
        &feature_transform(AffineTransform2D::translation(0.5, 0.0), 0.6),
        ts(4),
    );
    assert!(u.decision.is_some_and(|d| d.is_segment()));
    assert_eq!(u.snapshot.global_transform(), AffineTransform2D::IDENTITY);
}

#[test]
fn transition_fsm_through_the_tracker() {
    let mut tracker = observed();
    let phases: Vec<TransitionPhase> = run(
        &mut tracker,
        &[stable(), moving_hint(), moving_hint(), stable(), stable()],
    )
    .iter()
    .map(|u| u.snapshot.transition())
    .collect();
    use TransitionPhase::*;
    assert_eq!(phases, vec![Settled, MoveStart, Moving, MoveEnd, Settled]);
}

#[test]
fn empty_reports_leave_motion_unknown_and_validity_degraded() {
    let mut tracker = observed();
    let updates = run(&mut tracker, &vec![MotionReport::empty(); 4]);
    let last = &updates[3].snapshot;
    assert_eq!(last.motion(), CameraMotionState::Unknown);
    assert_eq!(last.motion_source(), MotionSource::None);
    assert_eq!(
        last.validity(),
        ContextValidity::Degraded {
            reason: DegradationReason::Unknown
        }
    );
    // Unknown counts as moving for the FSM; after MoveStart -> Moving nothing changes.
    assert_eq!(last.transition(), TransitionPhase::Moving);
    assert!(!updates[3].version_changed);
}

#[test]
fn hint_only_reports_are_external() {
    let mut tracker = observed();
    let u = tracker.update(&stable(), ts(0));
    assert_eq!(u.snapshot.motion_source(), MotionSource::External);
}

#[test]
fn preset_recall_segments() {
    let mut tracker = observed();
    run(&mut tracker, &[ptz(0.0, 0), ptz(0.0, 1)]);
    let recall = ptz(0.0, 2).with_ptz_event(PtzEvent::PresetRecall {
        preset_id: "gate".into(),
        ts: ts(2),
    });
    let u = tracker.update(&recall, ts(2));
    assert_eq!(u.epoch_changed, Some(ViewEpoch::new(1)));
    assert_eq!(
        u.decision.map(|d| d.to_string()).as_deref(),
        Some("segment:preset_recall")
    );
}

#[test]
fn restart_bumps_epoch_and_resets() {
    let mut tracker = observed_with(ViewSettings {
        stability_settle_frames: 1,
        ..ViewSettings::default()
    });
    run(&mut tracker, &[ptz(0.0, 0), ptz(0.0, 1), ptz(3.0, 2)]);
    let before = tracker.snapshot().clone();
    assert_eq!(before.transition(), TransitionPhase::MoveStart);
    let u = tracker.restart();
    assert_eq!(u.epoch_changed, Some(before.epoch().next()));
    assert_eq!(u.snapshot.version(), before.version().next());
    assert_eq!(
        u.decision,
        Some(EpochDecision::Segment {
            reason: SegmentReason::FeedRestart
        })
    );
    assert_eq!(u.snapshot.transition(), TransitionPhase::Settled);
    assert_eq!(u.snapshot.stability_score(), 0.0);
    assert_eq!(u.snapshot.ptz(), None);
    // The PTZ memory is gone: the next sample is a first sample, not a 90° jump.
    let next = tracker.update(&ptz(90.0, 3), ts(3));
    assert_eq!(next.decision, Some(EpochDecision::Continue));

    let mut fixed = ViewTracker::new(
        CameraMode::Fixed,
        Box::new(DefaultEpochPolicy::default()),
        ViewSettings::default(),
    );
    let u = fixed.restart();
    assert_eq!(u.snapshot.epoch(), ViewEpoch::new(1));
    assert_eq!(u.snapshot.stability_score(), 1.0);
    assert!(u.snapshot.validity().is_valid());
}

/// Records what the policy was shown.
struct Recording(Arc<Mutex<Vec<(CameraMotionState, Duration)>>>);

impl EpochPolicy for Recording {
    fn decide(&self, ctx: &EpochPolicyContext<'_>) -> EpochDecision {
        self.0
            .lock()
            .unwrap()
            .push((ctx.motion_state, ctx.state_duration));
        EpochDecision::Continue
    }
}

#[test]
fn policy_sees_motion_state_duration() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut tracker = ViewTracker::new(
        CameraMode::Observed,
        Box::new(Recording(Arc::clone(&seen))),
        ViewSettings::default(),
    );
    run(
        &mut tracker,
        &[stable(), stable(), stable(), moving_hint(), moving_hint()],
    );
    let durations: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, d)| d.as_nanos() as u64 / FRAME_NS)
        .collect();
    assert_eq!(durations, vec![0, 1, 2, 0, 1]);
    // Time going backwards is a zero duration, not a panic.
    tracker.update(&moving_hint(), ts(0));
    assert_eq!(
        seen.lock().unwrap().last().map(|(_, d)| *d),
        Some(Duration::ZERO)
    );
}

#[test]
fn debug_does_not_require_a_debug_policy() {
    let text = format!("{:?}", observed());
    assert!(text.starts_with("ViewTracker"));
}

#[test]
fn settings_validate_and_builder() {
    let settings = ViewSettings::default().with_stability_settle_frames(0);
    assert_eq!(settings.stability_settle_frames, 0);
    assert!(settings.validate().is_ok());
    let bad = ViewSettings {
        degrade_stability_penalty: -0.1,
        stable_translation: f32::INFINITY,
        ..ViewSettings::default()
    };
    let err = bad.validate().unwrap_err();
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        vec!["view.degrade_stability_penalty", "view.stable_translation"]
    );
}
