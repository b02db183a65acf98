//! Temporal state and camera view wired into the executor.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;

use common::{feed, runtime};
use nv_core::error::StageError;
use nv_core::geometry::BBox;
use nv_core::id::TrackId;
use nv_perception::{Stage, StageContext, StageOutput, Track, TrackObservation, TrackState};
use nv_runtime::{CameraMode, HealthEvent, StageId};
use nv_temporal::RetentionPolicy;
use nv_test_util::{collect_events_until, CollectingSink};
use nv_view::{MotionPollContext, MotionReport, PtzTelemetry, ViewEpoch, ViewStateProvider};
use parking_lot::Mutex;

/// Emits a scripted track set per frame (`None` = produce no tracks that frame).
struct ScriptedTracker {
    script: Vec<Option<Vec<(u64, TrackState)>>>,
}

impl Stage for ScriptedTracker {
    fn id(&self) -> StageId {
        StageId::new("tracker")
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let i = usize::try_from(ctx.frame.seq()).unwrap();
        let Some(Some(set)) = self.script.get(i) else {
            return Ok(StageOutput::empty());
        };
        let x = i as f32 * 0.01;
        let tracks = set
            .iter()
            .map(|(id, state)| {
                let obs = TrackObservation::new(
                    ctx.frame.ts(),
                    BBox::new(x, 0.1, x + 0.1, 0.2),
                    0.9,
                    *state,
                    None,
                );
                Track::new(TrackId::new(*id), 0, *state, obs)
            })
            .collect();
        Ok(StageOutput::with_tracks(tracks))
    }
}

/// Per frame: seq, tracks in the snapshot, trajectory segments per track (by id).
type Seen = Vec<(u64, usize, Vec<usize>)>;

/// Records what the temporal snapshot showed on each frame, and epoch notifications.
#[derive(Clone, Default)]
struct Observer {
    seen: Arc<Mutex<Seen>>,
    epochs: Arc<Mutex<Vec<u64>>>,
}

impl Stage for Observer {
    fn id(&self) -> StageId {
        StageId::new("observer")
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let mut ids = ctx.temporal.track_ids();
        ids.sort();
        let segments = ids
            .iter()
            .map(|id| ctx.temporal.trajectory_segment_count(*id))
            .collect();
        self.seen
            .lock()
            .push((ctx.frame.seq(), ctx.temporal.track_count(), segments));
        Ok(StageOutput::empty())
    }
    fn on_view_epoch_change(&mut self, e: ViewEpoch) -> Result<(), StageError> {
        self.epochs.lock().push(e.as_u64());
        Ok(())
    }
}

#[test]
fn authoritative_track_sets_end_missing_tracks_and_stages_see_the_store() {
    let rt = runtime();
    let observer = Observer::default();
    let c = TrackState::Confirmed;
    let tracker = ScriptedTracker {
        script: vec![
            Some(vec![(1, c), (2, c)]),
            Some(vec![(1, c)]),
            None,
            Some(vec![(1, c)]),
        ],
    };
    let sink = CollectingSink::new();
    let h = rt
        .add_feed(
            feed(Some(4))
                .stage(tracker)
                .stage(observer.clone())
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    let out = sink.wait_for(4);
    // Stages see the store as of the previous frame: 0, 2 (both admitted), 1 (track 2
    // ended by the authoritative set), 1 (a frame without tracks ends nothing).
    let counts: Vec<usize> = observer.seen.lock().iter().map(|(_, n, _)| *n).collect();
    assert_eq!(counts, vec![0, 2, 1, 1]);
    assert_eq!(
        (out[0].admission.admitted, out[0].admission.rejected),
        (2, 0)
    );
    assert_eq!(out[1].admission.admitted, 0);
    common::wait_until("feed finished", || !h.is_alive());
    assert_eq!(h.metrics().tracks_active, 1);
}

#[test]
fn admission_rejections_are_reported_and_outputs_keep_every_track() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let c = TrackState::Confirmed;
    let tracker = ScriptedTracker {
        script: vec![Some(vec![(1, c), (2, c), (3, c)])],
    };
    let sink = CollectingSink::new();
    let retention = RetentionPolicy {
        max_concurrent_tracks: 2,
        ..RetentionPolicy::default()
    };
    rt.add_feed(
        feed(Some(1))
            .retention(retention)
            .stage(tracker)
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    let out = sink.outputs();
    assert_eq!(out[0].tracks.len(), 3);
    assert_eq!(
        (out[0].admission.admitted, out[0].admission.rejected),
        (2, 1)
    );
    let rejected: u64 = events
        .iter()
        .map(|e| {
            if let HealthEvent::TrackAdmissionRejected { rejected_count, .. } = e {
                *rejected_count
            } else {
                0
            }
        })
        .sum();
    assert_eq!(rejected, 1);
}

/// Reports a scripted pan angle per frame.
struct PanScript(Vec<f32>);

impl ViewStateProvider for PanScript {
    fn poll(&self, ctx: &MotionPollContext<'_>) -> MotionReport {
        let i = usize::try_from(ctx.frame.seq()).unwrap_or(usize::MAX);
        let pan_deg = self.0.get(i).copied().unwrap_or(0.0);
        MotionReport::default().with_ptz(PtzTelemetry {
            pan_deg,
            tilt_deg: 0.0,
            zoom: 0.0,
            ts: ctx.ts,
        })
    }
}

#[test]
fn ptz_jump_starts_a_new_epoch_before_the_frames_stages_run() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let observer = Observer::default();
    let c = TrackState::Confirmed;
    let tracker = ScriptedTracker {
        script: vec![Some(vec![(7, c)]); 6],
    };
    let sink = CollectingSink::new();
    // Steady at 0 degrees, then a 40-degree jump at frame 3: the view is discontinuous.
    let provider = Arc::new(PanScript(vec![0.0, 0.0, 0.0, 40.0, 40.0, 40.0]));
    rt.add_feed(
        feed(Some(6))
            .camera_mode(CameraMode::Observed)
            .view_provider(provider)
            .stage(tracker)
            .stage(observer.clone())
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    let out = sink.outputs();
    let epochs: Vec<u64> = out
        .iter()
        .map(|o| o.provenance.view.epoch.as_u64())
        .collect();
    assert_eq!(epochs, vec![0, 0, 0, 1, 1, 1]);
    assert!(
        out.iter().all(|o| o.provenance.view.decision.is_some()),
        "observed feeds record the decision"
    );
    assert_eq!(*observer.epochs.lock(), vec![1]);
    let changed: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let HealthEvent::ViewEpochChanged { epoch, reason, .. } = e {
                Some((*epoch, reason.clone()))
            } else {
                None
            }
        })
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, 1);
    assert!(changed[0].1.starts_with("segment"), "{}", changed[0].1);
    // Track 7's trajectory was split lazily when it was next committed in epoch 1.
    let segments: Vec<Vec<usize>> = observer
        .seen
        .lock()
        .iter()
        .map(|(_, _, s)| s.clone())
        .collect();
    assert_eq!(segments[3], vec![1]);
    assert_eq!(segments[5], vec![2]);
}

#[test]
fn small_ptz_motion_degrades_with_throttled_exact_counts() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    // Creep 1 degree per frame: beyond the deadband, below the segment threshold.
    let pans: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let sink = CollectingSink::new();
    rt.add_feed(
        feed(Some(10))
            .camera_mode(CameraMode::Observed)
            .view_provider(Arc::new(PanScript(pans)))
            .stage(Observer::default())
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    let degraded_outputs = sink
        .outputs()
        .iter()
        .filter(|o| {
            matches!(
                o.provenance.view.decision,
                Some(nv_view::EpochDecision::Degrade { .. })
            )
        })
        .count() as u64;
    assert!(degraded_outputs >= 8, "{degraded_outputs}");
    let reported: u64 = events
        .iter()
        .map(|e| {
            if let HealthEvent::ViewDegraded { frames, .. } = e {
                *frames
            } else {
                0
            }
        })
        .sum();
    assert_eq!(reported, degraded_outputs);
    let event_count = events
        .iter()
        .filter(|e| matches!(e, HealthEvent::ViewDegraded { .. }))
        .count();
    assert!(
        event_count <= 2,
        "throttled, not one per frame: {event_count}"
    );
}

#[test]
fn restart_clears_temporal_state_and_bumps_the_epoch() {
    let rt = runtime();
    let observer = Observer::default();
    let c = TrackState::Confirmed;
    struct PanicOnce(bool);
    impl Stage for PanicOnce {
        fn id(&self) -> StageId {
            StageId::new("panic-once")
        }
        fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
            if !self.0 && ctx.frame.seq() == 2 {
                self.0 = true;
                panic!("boom");
            }
            Ok(StageOutput::empty())
        }
    }
    let restart =
        nv_core::policy::RestartPolicy::default().with_restart_delay(std::time::Duration::ZERO);
    let tracker = ScriptedTracker {
        script: vec![Some(vec![(1, c)]); 3],
    };
    let sink = CollectingSink::new();
    rt.add_feed(
        feed(Some(3))
            .restart(restart)
            .stage(tracker)
            .stage(observer.clone())
            .stage(PanicOnce(false))
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    sink.wait_for(2);
    common::wait_until("second session done", || observer.seen.lock().len() >= 4);
    let seen = observer.seen.lock().clone();
    // Session 0: frames 0, 1, 2 (panics); the restart clears the store, so the next
    // session's first frame sees no tracks although the tracker script only covers seq < 3.
    assert_eq!(seen[3].1, 0);
    assert_eq!(*observer.epochs.lock(), vec![1]);
}
