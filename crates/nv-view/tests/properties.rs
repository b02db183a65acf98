//! Property tests of the view tracker over random report sequences, through the public API
//! only (as the runtime uses it).

use nv_core::camera::CameraMode;
use nv_core::geometry::AffineTransform2D;
use nv_core::time::MonotonicTs;
use nv_view::{
    CameraMotionState, ContextValidity, DefaultEpochPolicy, GlobalTransformEstimate, MotionReport,
    PtzEvent, PtzTelemetry, TransformEstimationMethod, ViewSettings, ViewTracker, ViewVersion,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Action {
    /// A frame `dt_ns` after the previous one (0 allowed: duplicate timestamps happen).
    Frame {
        report: MotionReport,
        dt_ns: u64,
    },
    Restart,
}

fn ptz() -> impl Strategy<Value = PtzTelemetry> {
    // Small pose changes dominate (so Degrade and Continue occur), with occasional jumps.
    (
        prop_oneof![3 => -2.0f32..2.0, 1 => -400.0f32..400.0],
        -2.0f32..2.0,
        0.0f32..1.0,
    )
        .prop_map(|(pan, tilt, zoom)| PtzTelemetry::new(pan, tilt, zoom, MonotonicTs::ZERO))
}

fn transform() -> impl Strategy<Value = GlobalTransformEstimate> {
    (
        -0.4f64..0.4,
        -0.4f64..0.4,
        -10.0f64..10.0,
        0.8f64..1.2,
        0.0f32..1.0,
        0usize..3,
    )
        .prop_map(|(tx, ty, angle_deg, scale, confidence, method)| {
            let (s, c) = angle_deg.to_radians().sin_cos();
            let method = [
                TransformEstimationMethod::FeatureMatching,
                TransformEstimationMethod::PtzModel,
                TransformEstimationMethod::External,
            ][method];
            GlobalTransformEstimate::new(
                AffineTransform2D::new([scale * c, -scale * s, tx, scale * s, scale * c, ty]),
                confidence,
                method,
                ViewVersion::INITIAL,
            )
        })
}

fn hint() -> impl Strategy<Value = CameraMotionState> {
    prop_oneof![
        Just(CameraMotionState::Stable),
        Just(CameraMotionState::Unknown),
        proptest::option::of(0.0f32..0.5).prop_map(|displacement| CameraMotionState::Moving {
            angular_velocity_deg_per_sec: None,
            displacement,
        }),
    ]
}

fn event() -> impl Strategy<Value = PtzEvent> {
    prop_oneof![
        Just(PtzEvent::MoveStart {
            ts: MonotonicTs::ZERO
        }),
        Just(PtzEvent::MoveStop {
            ts: MonotonicTs::ZERO
        }),
        Just(PtzEvent::PresetRecall {
            preset_id: "p".to_owned(),
            ts: MonotonicTs::ZERO
        }),
    ]
}

fn report() -> impl Strategy<Value = MotionReport> {
    (
        proptest::option::of(ptz()),
        proptest::option::of(transform()),
        proptest::option::weighted(0.2, hint()),
        proptest::collection::vec(event(), 0..2),
    )
        .prop_map(
            |(ptz, frame_transform, motion_hint, ptz_events)| MotionReport {
                ptz,
                frame_transform,
                motion_hint,
                ptz_events,
            },
        )
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        30 => (report(), 0u64..80_000_000).prop_map(|(report, dt_ns)| Action::Frame { report, dt_ns }),
        1 => Just(Action::Restart),
    ]
}

fn tracker(mode: CameraMode, settle_frames: u32) -> ViewTracker {
    let mut settings = ViewSettings::default();
    settings.stability_settle_frames = settle_frames;
    ViewTracker::new(mode, Box::new(DefaultEpochPolicy::default()), settings)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn epochs_and_versions_never_decrease(
        actions in proptest::collection::vec(action(), 1..120),
        settle_frames in 0u32..20,
        fixed in proptest::bool::weighted(0.2),
    ) {
        let mode = if fixed { CameraMode::Fixed } else { CameraMode::Observed };
        let mut tracker = tracker(mode, settle_frames);
        let mut now = 0u64;
        for action in actions {
            let before = tracker.snapshot().clone();
            let update = match action {
                Action::Frame { report, dt_ns } => {
                    now += dt_ns;
                    tracker.update(&report, MonotonicTs::from_nanos(now))
                }
                Action::Restart => tracker.restart(),
            };
            let after = &update.snapshot;
            prop_assert!(after.epoch() >= before.epoch());
            prop_assert!(after.version() >= before.version());
            prop_assert!(after.version().versions_since(before.version()) <= 1);
            // Epoch changes are announced, by exactly one, and always revise the version.
            prop_assert_eq!(update.epoch_changed.is_some(), after.epoch() != before.epoch());
            if let Some(epoch) = update.epoch_changed {
                prop_assert_eq!(epoch, before.epoch().next());
                prop_assert!(update.version_changed);
            }
            // Same version means the very same state.
            prop_assert_eq!(update.version_changed, after.version() != before.version());
            if !update.version_changed {
                prop_assert!(after.ptr_eq(&before));
            }
            prop_assert!((0.0..=1.0).contains(&after.stability_score()));
            prop_assert!(after.validity() != ContextValidity::Invalid);
            prop_assert!(after.ptr_eq(tracker.snapshot()));
            if fixed {
                prop_assert_eq!(update.decision.is_some(), update.epoch_changed.is_some());
                prop_assert_eq!(after.stability_score(), 1.0);
                prop_assert_eq!(after.motion(), CameraMotionState::Stable);
            }
        }
    }
}
