//! Motion source and motion state derivation rules.

use nv_core::geometry::AffineTransform2D;
use nv_core::time::MonotonicTs;

use super::*;
use crate::state::ViewVersion;
use crate::transform::GlobalTransformEstimate;

const THRESHOLDS: StableTransformThresholds = StableTransformThresholds {
    min_confidence: 0.5,
    translation: 0.01,
    rotation_deg: 0.5,
    scale_change: 0.01,
};

fn estimate(
    transform: AffineTransform2D,
    confidence: f32,
    method: TransformEstimationMethod,
) -> GlobalTransformEstimate {
    GlobalTransformEstimate::new(transform, confidence, method, ViewVersion::INITIAL)
}

fn pose_at(pan_deg: f32, secs: u64) -> PtzTelemetry {
    PtzTelemetry::new(
        pan_deg,
        0.0,
        0.0,
        MonotonicTs::from_nanos(secs * 1_000_000_000),
    )
}

fn derive(report: &MotionReport, memory: &MotionMemory) -> CameraMotionState {
    motion_state(report, memory, &THRESHOLDS, 0.01)
}

#[test]
fn source_telemetry_wins_over_everything() {
    let report = MotionReport::empty()
        .with_ptz(pose_at(0.0, 0))
        .with_frame_transform(estimate(
            AffineTransform2D::IDENTITY,
            0.9,
            TransformEstimationMethod::FeatureMatching,
        ))
        .with_motion_hint(CameraMotionState::Stable);
    assert_eq!(motion_source(&report), MotionSource::Telemetry);
    let events_only = MotionReport::empty().with_ptz_event(PtzEvent::MoveStart {
        ts: MonotonicTs::ZERO,
    });
    assert_eq!(motion_source(&events_only), MotionSource::Telemetry);
}

#[test]
fn source_from_transform_method() {
    let t = AffineTransform2D::IDENTITY;
    let fm = MotionReport::empty().with_frame_transform(estimate(
        t,
        0.7,
        TransformEstimationMethod::FeatureMatching,
    ));
    assert_eq!(
        motion_source(&fm),
        MotionSource::Inferred { confidence: 0.7 }
    );
    for method in [
        TransformEstimationMethod::PtzModel,
        TransformEstimationMethod::External,
    ] {
        let r = MotionReport::empty().with_frame_transform(estimate(t, 0.7, method));
        assert_eq!(motion_source(&r), MotionSource::External, "{method:?}");
    }
}

#[test]
fn source_hint_only_is_external_and_empty_is_none() {
    let hint = MotionReport::empty().with_motion_hint(CameraMotionState::Stable);
    assert_eq!(motion_source(&hint), MotionSource::External);
    assert_eq!(motion_source(&MotionReport::empty()), MotionSource::None);
}

#[test]
fn hint_overrides_derived_motion() {
    let report = MotionReport::empty()
        .with_motion_hint(CameraMotionState::Unknown)
        .with_frame_transform(estimate(
            AffineTransform2D::IDENTITY,
            1.0,
            TransformEstimationMethod::FeatureMatching,
        ));
    assert_eq!(
        derive(&report, &MotionMemory::default()),
        CameraMotionState::Unknown
    );
}

#[test]
fn confident_transform_decides_stable_or_moving() {
    let method = TransformEstimationMethod::FeatureMatching;
    let still = MotionReport::empty().with_frame_transform(estimate(
        AffineTransform2D::translation(0.005, 0.0),
        0.9,
        method,
    ));
    assert_eq!(
        derive(&still, &MotionMemory::default()),
        CameraMotionState::Stable
    );

    let shifted = MotionReport::empty().with_frame_transform(estimate(
        AffineTransform2D::translation(0.03, 0.04),
        0.9,
        method,
    ));
    assert_eq!(
        derive(&shifted, &MotionMemory::default()),
        CameraMotionState::Moving {
            angular_velocity_deg_per_sec: None,
            displacement: Some(0.05)
        }
    );

    // Pure zoom: no translation, but not stable.
    let zoomed = MotionReport::empty().with_frame_transform(estimate(
        AffineTransform2D::scale(1.05, 1.05),
        0.9,
        method,
    ));
    assert!(matches!(
        derive(&zoomed, &MotionMemory::default()),
        CameraMotionState::Moving { displacement: Some(d), .. } if d == 0.0
    ));
}

#[test]
fn unconfident_transform_says_nothing() {
    let report = MotionReport::empty().with_frame_transform(estimate(
        AffineTransform2D::translation(0.3, 0.0),
        0.5,
        TransformEstimationMethod::FeatureMatching,
    ));
    assert_eq!(
        derive(&report, &MotionMemory::default()),
        CameraMotionState::Unknown
    );
}

#[test]
fn ptz_deltas_give_moving_with_angular_velocity_or_stable() {
    let memory = MotionMemory {
        last_ptz: Some(pose_at(10.0, 1)),
        moving_latch: None,
    };
    let moved = MotionReport::empty().with_ptz(pose_at(14.0, 3));
    assert_eq!(
        derive(&moved, &memory),
        CameraMotionState::Moving {
            angular_velocity_deg_per_sec: Some(2.0),
            displacement: None
        }
    );
    let same_ts = MotionReport::empty().with_ptz(pose_at(14.0, 1));
    assert!(matches!(
        derive(&same_ts, &memory),
        CameraMotionState::Moving {
            angular_velocity_deg_per_sec: None,
            ..
        }
    ));
    let still = MotionReport::empty().with_ptz(pose_at(10.005, 3));
    assert_eq!(derive(&still, &memory), CameraMotionState::Stable);
}

#[test]
fn first_ptz_sample_is_unknown() {
    let report = MotionReport::empty().with_ptz(pose_at(10.0, 1));
    assert_eq!(
        derive(&report, &MotionMemory::default()),
        CameraMotionState::Unknown
    );
}

#[test]
fn move_start_with_unchanged_pose_is_moving() {
    let memory = MotionMemory {
        last_ptz: Some(pose_at(10.0, 1)),
        moving_latch: Some(true),
    };
    let report = MotionReport::empty()
        .with_ptz(pose_at(10.0, 2))
        .with_ptz_event(PtzEvent::MoveStart {
            ts: MonotonicTs::ZERO,
        });
    assert!(derive(&report, &memory).is_moving_or_unknown());
    // Without the event this frame, telemetry is authoritative even if the latch is set.
    let report = MotionReport::empty().with_ptz(pose_at(10.0, 3));
    assert_eq!(derive(&report, &memory), CameraMotionState::Stable);
}

#[test]
fn latch_follows_events_when_no_telemetry() {
    let mut memory = MotionMemory::default();
    assert_eq!(
        derive(&MotionReport::empty(), &memory),
        CameraMotionState::Unknown
    );
    memory.observe_events(&[PtzEvent::MoveStart {
        ts: MonotonicTs::ZERO,
    }]);
    assert!(matches!(
        derive(&MotionReport::empty(), &memory),
        CameraMotionState::Moving { .. }
    ));
    memory.observe_events(&[
        PtzEvent::MoveStart {
            ts: MonotonicTs::ZERO,
        },
        PtzEvent::MoveStop {
            ts: MonotonicTs::ZERO,
        },
    ]);
    assert_eq!(
        derive(&MotionReport::empty(), &memory),
        CameraMotionState::Stable
    );
}
