//! One test per branch of the default policy.

use std::time::Duration;

use nv_core::geometry::AffineTransform2D;
use nv_core::time::MonotonicTs;

use super::*;
use crate::ptz::{PtzEvent, PtzTelemetry};
use crate::state::{ViewSnapshot, ViewState, ViewVersion};
use crate::transform::{GlobalTransformEstimate, TransformEstimationMethod};

fn pose(pan_deg: f32, tilt_deg: f32, zoom: f32) -> PtzTelemetry {
    PtzTelemetry::new(pan_deg, tilt_deg, zoom, MonotonicTs::ZERO)
}

fn view_at(ptz: Option<PtzTelemetry>) -> ViewSnapshot {
    let mut state = ViewState::observed_initial();
    state.ptz = ptz;
    ViewSnapshot::new(state)
}

fn estimate(transform: AffineTransform2D, confidence: f32) -> GlobalTransformEstimate {
    GlobalTransformEstimate::new(
        transform,
        confidence,
        TransformEstimationMethod::FeatureMatching,
        ViewVersion::INITIAL,
    )
}

fn rotation(angle_deg: f64) -> AffineTransform2D {
    let (s, c) = angle_deg.to_radians().sin_cos();
    AffineTransform2D::new([c, -s, 0.0, s, c, 0.0])
}

fn moving(displacement: f32) -> CameraMotionState {
    CameraMotionState::Moving {
        angular_velocity_deg_per_sec: None,
        displacement: Some(displacement),
    }
}

fn decide_with(
    policy: &DefaultEpochPolicy,
    previous: Option<PtzTelemetry>,
    report: &MotionReport,
    motion: CameraMotionState,
) -> EpochDecision {
    let view = view_at(previous);
    policy.decide(&EpochPolicyContext::new(
        &view,
        report,
        motion,
        Duration::ZERO,
    ))
}

fn decide(
    previous: Option<PtzTelemetry>,
    report: &MotionReport,
    motion: CameraMotionState,
) -> EpochDecision {
    decide_with(&DefaultEpochPolicy::default(), previous, report, motion)
}

fn segment(reason: SegmentReason) -> EpochDecision {
    EpochDecision::Segment { reason }
}

fn degrade(reason: DegradationReason) -> EpochDecision {
    EpochDecision::Degrade { reason }
}

#[test]
fn reference_thresholds() {
    let p = DefaultEpochPolicy::default();
    assert_eq!(p.segment_angle_threshold_deg, 15.0);
    assert_eq!(p.segment_zoom_threshold, 0.3);
    assert_eq!(p.segment_displacement_threshold, 0.25);
    assert_eq!(p.compensate_min_confidence, 0.8);
    assert!(p.degrade_on_small_motion);
    assert_eq!(p.ptz_deadband, 0.01);
    assert_eq!(p.max_compensation_rotation_deg, 5.0);
    assert_eq!(p.max_compensation_scale_change, 0.10);
}

#[test]
fn preset_recall_segments_even_without_motion() {
    let report = MotionReport::empty()
        .with_ptz(pose(0.0, 0.0, 0.0))
        .with_ptz_event(PtzEvent::PresetRecall {
            preset_id: "1".into(),
            ts: MonotonicTs::ZERO,
        });
    let d = decide(
        Some(pose(0.0, 0.0, 0.0)),
        &report,
        CameraMotionState::Stable,
    );
    assert_eq!(d, segment(SegmentReason::PresetRecall));
}

#[test]
fn large_pan_without_transform_segments() {
    let report = MotionReport::empty().with_ptz(pose(30.0, 0.0, 0.0));
    let d = decide(
        Some(pose(10.0, 0.0, 0.0)),
        &report,
        CameraMotionState::Unknown,
    );
    assert_eq!(d, segment(SegmentReason::PtzJump));
}

#[test]
fn large_tilt_with_confident_transform_compensates() {
    let t = AffineTransform2D::translation(0.0, 0.3);
    let report = MotionReport::empty()
        .with_ptz(pose(0.0, 20.0, 0.0))
        .with_frame_transform(estimate(t, 0.8));
    let d = decide(
        Some(pose(0.0, 0.0, 0.0)),
        &report,
        CameraMotionState::Unknown,
    );
    assert_eq!(
        d,
        EpochDecision::Compensate {
            reason: DegradationReason::LargeJump,
            transform: t
        }
    );
}

#[test]
fn large_pan_with_unconfident_transform_segments() {
    let report = MotionReport::empty()
        .with_ptz(pose(40.0, 0.0, 0.0))
        .with_frame_transform(estimate(AffineTransform2D::translation(0.3, 0.0), 0.79));
    let d = decide(
        Some(pose(0.0, 0.0, 0.0)),
        &report,
        CameraMotionState::Unknown,
    );
    assert_eq!(d, segment(SegmentReason::PtzJump));
}

#[test]
fn zoom_jump_segments_or_compensates() {
    let previous = Some(pose(0.0, 0.0, 0.1));
    let report = MotionReport::empty().with_ptz(pose(0.0, 0.0, 0.5));
    assert_eq!(
        decide(previous, &report, CameraMotionState::Unknown),
        segment(SegmentReason::ZoomJump)
    );
    // A confident 5% zoom transform is within the ceiling.
    let t = AffineTransform2D::scale(1.05, 1.05);
    let report = report.with_frame_transform(estimate(t, 0.95));
    assert_eq!(
        decide(previous, &report, CameraMotionState::Unknown),
        EpochDecision::Compensate {
            reason: DegradationReason::ZoomChange,
            transform: t
        }
    );
}

#[test]
fn pan_across_the_seam_is_small_motion_not_a_jump() {
    // 179° -> -179° is a 2° pan: degrade, not a 358° jump.
    let report = MotionReport::empty().with_ptz(pose(-179.0, 0.0, 0.0));
    let d = decide(
        Some(pose(179.0, 0.0, 0.0)),
        &report,
        CameraMotionState::Unknown,
    );
    assert_eq!(d, degrade(DegradationReason::PtzMoving));
    // 170° -> -170° is a 20° pan: a jump.
    let report = MotionReport::empty().with_ptz(pose(-170.0, 0.0, 0.0));
    let d = decide(
        Some(pose(170.0, 0.0, 0.0)),
        &report,
        CameraMotionState::Unknown,
    );
    assert_eq!(d, segment(SegmentReason::PtzJump));
}

#[test]
fn small_ptz_motion_degrades_and_zoom_only_names_zoom() {
    let report = MotionReport::empty().with_ptz(pose(1.0, 0.0, 0.0));
    assert_eq!(
        decide(
            Some(pose(0.0, 0.0, 0.0)),
            &report,
            CameraMotionState::Unknown
        ),
        degrade(DegradationReason::PtzMoving)
    );
    let report = MotionReport::empty().with_ptz(pose(0.0, 0.0, 0.1));
    assert_eq!(
        decide(
            Some(pose(0.0, 0.0, 0.0)),
            &report,
            CameraMotionState::Unknown
        ),
        degrade(DegradationReason::ZoomChange)
    );
}

#[test]
fn small_motion_continues_when_degrade_disabled() {
    let policy = DefaultEpochPolicy {
        degrade_on_small_motion: false,
        ..DefaultEpochPolicy::default()
    };
    let report = MotionReport::empty().with_ptz(pose(1.0, 0.0, 0.0));
    let d = decide_with(
        &policy,
        Some(pose(0.0, 0.0, 0.0)),
        &report,
        CameraMotionState::Unknown,
    );
    assert_eq!(d, EpochDecision::Continue);
    let d = decide_with(&policy, None, &MotionReport::empty(), moving(0.1));
    assert_eq!(d, EpochDecision::Continue);
}

#[test]
fn ptz_within_deadband_continues() {
    let report = MotionReport::empty().with_ptz(pose(0.005, -0.005, 0.005));
    let d = decide(
        Some(pose(0.0, 0.0, 0.0)),
        &report,
        CameraMotionState::Stable,
    );
    assert_eq!(d, EpochDecision::Continue);
}

#[test]
fn ptz_within_deadband_falls_through_to_motion_state() {
    let report = MotionReport::empty()
        .with_ptz(pose(0.0, 0.0, 0.0))
        .with_ptz_event(PtzEvent::MoveStart {
            ts: MonotonicTs::ZERO,
        });
    let motion = CameraMotionState::Moving {
        angular_velocity_deg_per_sec: None,
        displacement: None,
    };
    let d = decide(Some(pose(0.0, 0.0, 0.0)), &report, motion);
    assert_eq!(d, degrade(DegradationReason::PtzMoving));
}

#[test]
fn first_ptz_sample_has_nothing_to_compare_with() {
    let report = MotionReport::empty().with_ptz(pose(90.0, 0.0, 0.0));
    assert_eq!(
        decide(None, &report, CameraMotionState::Unknown),
        EpochDecision::Continue
    );
}

#[test]
fn large_displacement_compensates_or_segments() {
    let t = AffineTransform2D::translation(0.3, 0.0);
    let report = MotionReport::empty().with_frame_transform(estimate(t, 0.9));
    assert_eq!(
        decide(None, &report, moving(0.3)),
        EpochDecision::Compensate {
            reason: DegradationReason::LargeJump,
            transform: t
        }
    );
    let report = MotionReport::empty().with_frame_transform(estimate(t, 0.5));
    assert_eq!(
        decide(None, &report, moving(0.3)),
        segment(SegmentReason::LargeJump)
    );
    // Hint-only large move: nothing to compensate with.
    assert_eq!(
        decide(None, &MotionReport::empty(), moving(0.3)),
        segment(SegmentReason::LargeJump)
    );
}

#[test]
fn compensation_ceiling_refuses_large_rotation() {
    let t = rotation(6.0).then(&AffineTransform2D::translation(0.3, 0.0));
    let report = MotionReport::empty().with_frame_transform(estimate(t, 0.99));
    assert_eq!(
        decide(None, &report, moving(0.3)),
        segment(SegmentReason::CompensationCeiling)
    );
    let t = rotation(4.0).then(&AffineTransform2D::translation(0.3, 0.0));
    let report = MotionReport::empty().with_frame_transform(estimate(t, 0.99));
    assert!(matches!(
        decide(None, &report, moving(0.3)),
        EpochDecision::Compensate { .. }
    ));
}

#[test]
fn compensation_ceiling_refuses_large_scale_change() {
    let previous = Some(pose(0.0, 0.0, 0.1));
    let report = MotionReport::empty()
        .with_ptz(pose(0.0, 0.0, 0.5))
        .with_frame_transform(estimate(AffineTransform2D::scale(1.25, 1.25), 0.99));
    assert_eq!(
        decide(previous, &report, CameraMotionState::Unknown),
        segment(SegmentReason::CompensationCeiling)
    );
    // Anisotropic stretch: area preserved, but an axis changes by 20%.
    let report = MotionReport::empty().with_frame_transform(estimate(
        AffineTransform2D::new([1.2, 0.0, 0.3, 0.0, 1.0 / 1.2, 0.0]),
        0.99,
    ));
    assert_eq!(
        decide(None, &report, moving(0.3)),
        segment(SegmentReason::CompensationCeiling)
    );
}

#[test]
fn non_finite_transform_or_confidence_never_compensates() {
    let t = AffineTransform2D::new([f64::NAN, 0.0, 0.3, 0.0, 1.0, 0.0]);
    let report = MotionReport::empty().with_frame_transform(estimate(t, 0.99));
    assert_eq!(
        decide(None, &report, moving(0.3)),
        segment(SegmentReason::CompensationCeiling)
    );
    let t = AffineTransform2D::translation(0.3, 0.0);
    let report = MotionReport::empty().with_frame_transform(estimate(t, f32::NAN));
    assert_eq!(
        decide(None, &report, moving(0.3)),
        segment(SegmentReason::LargeJump)
    );
}

#[test]
fn small_displacement_degrades() {
    let report = MotionReport::empty()
        .with_frame_transform(estimate(AffineTransform2D::translation(0.05, 0.0), 0.9));
    assert_eq!(
        decide(None, &report, moving(0.05)),
        degrade(DegradationReason::InferredMotionLowConfidence)
    );
}

#[test]
fn stable_and_unknown_continue() {
    let report = MotionReport::empty();
    assert_eq!(
        decide(None, &report, CameraMotionState::Stable),
        EpochDecision::Continue
    );
    assert_eq!(
        decide(None, &report, CameraMotionState::Unknown),
        EpochDecision::Continue
    );
}

#[test]
fn validate_reports_every_bad_field() {
    assert!(DefaultEpochPolicy::default().validate().is_ok());
    let policy = DefaultEpochPolicy {
        segment_angle_threshold_deg: 0.0,
        compensate_min_confidence: 1.5,
        ptz_deadband: f32::NAN,
        ..DefaultEpochPolicy::default()
    };
    let err = policy.validate().unwrap_err();
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "epoch_policy.segment_angle_threshold_deg",
            "epoch_policy.compensate_min_confidence",
            "epoch_policy.ptz_deadband",
        ]
    );
}
