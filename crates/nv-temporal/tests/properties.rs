//! Property tests over random operation sequences against the public API.

use std::time::Duration;

use nv_core::geometry::{AffineTransform2D, BBox};
use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;
use nv_perception::{TemporalAccess, Track, TrackObservation, TrackState};
use nv_temporal::{RetentionPolicy, TemporalSnapshot, TemporalStore, Trajectory, TrajectoryPoint};
use nv_view::ViewEpoch;
use proptest::prelude::*;

const MAX_TRACKS: usize = 5;
const MAX_OBSERVATIONS: usize = 4;
const MAX_POINTS: usize = 6;

fn policy() -> RetentionPolicy {
    RetentionPolicy {
        max_track_age: Duration::from_secs(3),
        max_observations_per_track: MAX_OBSERVATIONS,
        max_concurrent_tracks: MAX_TRACKS,
        max_trajectory_points_per_track: MAX_POINTS,
        stationary_speed_threshold: 0.005,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Commit {
        id: u64,
        state: TrackState,
        x: f32,
    },
    Frame {
        ids: Vec<(u64, TrackState)>,
        authoritative: bool,
    },
    End {
        id: u64,
    },
    Retention,
    Compensate {
        tx: f64,
    },
    BumpEpoch,
    Snapshot,
    Restart,
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    /// Milliseconds added to the caller's clock; a negative value simulates a PTS reset.
    dt_ms: i64,
}

fn state() -> impl Strategy<Value = TrackState> {
    prop_oneof![
        Just(TrackState::Tentative),
        Just(TrackState::Confirmed),
        Just(TrackState::Coasted),
        Just(TrackState::Lost),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..10, state(), 0.0f32..0.9).prop_map(|(id, state, x)| Op::Commit { id, state, x }),
        4 => (prop::collection::vec((0u64..10, state()), 0..8), any::<bool>())
            .prop_map(|(ids, authoritative)| Op::Frame { ids, authoritative }),
        1 => (0u64..10).prop_map(|id| Op::End { id }),
        3 => Just(Op::Retention),
        1 => (-0.1f64..0.1).prop_map(|tx| Op::Compensate { tx }),
        1 => Just(Op::BumpEpoch),
        3 => Just(Op::Snapshot),
        1 => Just(Op::Restart),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (op(), prop_oneof![20 => 0i64..1500, 1 => -5000i64..0])
        .prop_map(|(op, dt_ms)| Step { op, dt_ms })
}

fn track(id: u64, state: TrackState, x: f32, at: MonotonicTs) -> Track {
    let bbox = BBox::from_xywh(x, 0.3, 0.1, 0.1);
    Track::new(
        TrackId::new(id),
        1,
        state,
        TrackObservation::new(at, bbox, 0.8, state, None),
    )
}

/// A deep, independent copy of one track's observable state.
#[derive(Clone, Debug, PartialEq)]
struct TrackCopy {
    id: TrackId,
    class_id: u32,
    state: TrackState,
    current: (MonotonicTs, BBox),
    observations: Vec<(MonotonicTs, BBox, f32, TrackState)>,
    trajectory: Trajectory,
    first_seen: MonotonicTs,
    last_seen: MonotonicTs,
    epoch_at_creation: ViewEpoch,
}

fn copy_of(
    track: &Track,
    observations: &[TrackObservation],
    trajectory: &Trajectory,
    seen: (MonotonicTs, MonotonicTs),
    epoch_at_creation: ViewEpoch,
) -> TrackCopy {
    TrackCopy {
        id: track.id,
        class_id: track.class_id,
        state: track.state,
        current: (track.current.ts, track.current.bbox),
        observations: observations
            .iter()
            .map(|o| (o.ts, o.bbox, o.confidence, o.state))
            .collect(),
        trajectory: trajectory.clone(),
        first_seen: seen.0,
        last_seen: seen.1,
        epoch_at_creation,
    }
}

fn deep_copy_of_store(store: &TemporalStore) -> (ViewEpoch, Vec<TrackCopy>) {
    let tracks = store
        .tracks()
        .map(|(_, h)| {
            copy_of(
                h.track(),
                h.observations(),
                h.trajectory(),
                (h.first_seen(), h.last_seen()),
                h.view_epoch_at_creation(),
            )
        })
        .collect();
    (store.view_epoch(), tracks)
}

fn copy_of_snapshot(snapshot: &TemporalSnapshot) -> (ViewEpoch, Vec<TrackCopy>) {
    let tracks = snapshot
        .tracks()
        .map(|(_, t)| {
            copy_of(
                t.track(),
                t.observations(),
                t.trajectory(),
                (t.first_seen(), t.last_seen()),
                t.view_epoch_at_creation(),
            )
        })
        .collect();
    (snapshot.view_epoch(), tracks)
}

fn assert_trajectory_well_formed(trajectory: &Trajectory) -> Result<(), TestCaseError> {
    let points: Vec<&TrajectoryPoint> = trajectory.points().collect();
    prop_assert_eq!(points.len(), trajectory.total_points());
    prop_assert!(
        points.windows(2).all(|w| w[0].ts <= w[1].ts),
        "out of order: {:?}",
        points
    );
    let segments = trajectory.segments();
    for (i, segment) in segments.iter().enumerate() {
        prop_assert!(segment.point_count() > 0, "empty segment");
        prop_assert!(
            !segment.is_active() || i + 1 == segments.len(),
            "active segment not last"
        );
    }
    prop_assert!(segments
        .windows(2)
        .all(|w| w[0].view_epoch() <= w[1].view_epoch()));
    // Motion kept incrementally through pushes and prunes matches a fresh computation.
    for segment in segments {
        let points: Vec<&TrajectoryPoint> = segment.points().collect();
        let mut path_length = 0.0f64;
        let mut max_speed = 0.0f64;
        for w in points.windows(2) {
            let step = f64::from(w[0].position.distance(w[1].position));
            path_length += step;
            let dt = w[1].ts.saturating_duration_since(w[0].ts).as_secs_f64();
            if dt > 0.0 {
                max_speed = max_speed.max(step / dt);
            }
        }
        let motion = segment.motion();
        prop_assert!(
            (f64::from(motion.path_length) - path_length).abs() < 1e-4,
            "{:?}",
            motion
        );
        prop_assert!(
            (f64::from(motion.max_speed) - max_speed).abs() < 1e-3 * max_speed.max(1.0),
            "{:?} vs {}",
            motion,
            max_speed
        );
    }
    Ok(())
}

/// Which property a run checks; all runs drive the same operation mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Property {
    CapsHold,
    TrajectoriesOrdered,
    SnapshotsMatchDeepCopies,
}

fn run(steps: Vec<Step>, property: Property) -> Result<(), TestCaseError> {
    let mut store = TemporalStore::new(policy()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut caller_ns: u64 = 1_000_000_000;
    let mut epoch = ViewEpoch::INITIAL;
    let mut held: Vec<(TemporalSnapshot, (ViewEpoch, Vec<TrackCopy>))> = Vec::new();

    for Step { op, dt_ms } in steps {
        caller_ns = caller_ns.saturating_add_signed(dt_ms * 1_000_000);
        let now = MonotonicTs::from_nanos(caller_ns);
        match op {
            Op::Commit { id, state, x } => {
                store.commit_track(&track(id, state, x, now), now, epoch);
            }
            Op::Frame { ids, authoritative } => {
                let tracks: Vec<Track> = ids
                    .iter()
                    .map(|&(id, state)| track(id, state, 0.05 * id as f32, now))
                    .collect();
                let summary = store.commit_frame(&tracks, authoritative, now, epoch);
                prop_assert_eq!(
                    summary.admitted + summary.updated + summary.rejected,
                    tracks.len()
                );
                if authoritative {
                    for (id, _) in store.tracks() {
                        prop_assert!(ids.iter().any(|(i, _)| TrackId::new(*i) == id));
                    }
                }
            }
            Op::End { id } => {
                store.end_track(TrackId::new(id));
                prop_assert!(!store.contains(TrackId::new(id)));
            }
            Op::Retention => {
                store.enforce_retention(now);
                if property == Property::CapsHold {
                    for (_, history) in store.tracks() {
                        prop_assert!(history.trajectory().total_points() <= MAX_POINTS);
                        if history.state() == TrackState::Lost {
                            let age = store
                                .last_commit_ts()
                                .map(|now| now.saturating_duration_since(history.last_seen()));
                            prop_assert!(age.is_some_and(|age| age < policy().max_track_age));
                        }
                    }
                }
            }
            Op::Compensate { tx } => {
                store.apply_compensation(&AffineTransform2D::translation(tx, 0.0), epoch);
            }
            Op::BumpEpoch => {
                epoch = epoch.next();
                store.set_view_epoch(epoch);
            }
            Op::Snapshot => {
                // Held by every run, so that all properties also cover copy-on-write.
                let snapshot = store.snapshot();
                let copy = deep_copy_of_store(&store);
                prop_assert_eq!(&copy_of_snapshot(&snapshot), &copy);
                prop_assert_eq!(snapshot.track_count(), store.track_count());
                held.push((snapshot, copy));
            }
            Op::Restart => {
                store.clear_for_restart();
            }
        }

        match property {
            Property::CapsHold => {
                prop_assert!(store.track_count() <= MAX_TRACKS);
                for (_, history) in store.tracks() {
                    prop_assert!(history.observation_count() <= MAX_OBSERVATIONS);
                }
            }
            Property::TrajectoriesOrdered => {
                for (_, history) in store.tracks() {
                    prop_assert!(history.first_seen() <= history.last_seen());
                    assert_trajectory_well_formed(history.trajectory())?;
                }
            }
            Property::SnapshotsMatchDeepCopies => {
                // Snapshots taken earlier must not see anything that happened since.
                for (snapshot, copy) in &held {
                    prop_assert_eq!(&copy_of_snapshot(snapshot), copy);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn retention_never_exceeds_its_caps(steps in prop::collection::vec(step(), 1..80)) {
        run(steps, Property::CapsHold)?;
    }

    #[test]
    fn trajectories_stay_time_ordered(steps in prop::collection::vec(step(), 1..80)) {
        run(steps, Property::TrajectoriesOrdered)?;
    }

    #[test]
    fn snapshots_equal_deep_copies_of_the_store(steps in prop::collection::vec(step(), 1..80)) {
        run(steps, Property::SnapshotsMatchDeepCopies)?;
    }
}

#[test]
fn snapshot_of_fresh_store_is_empty() {
    let mut store = TemporalStore::new(policy()).unwrap();
    let snapshot = store.snapshot();
    assert_eq!(snapshot.track_count(), 0);
    assert!(snapshot.is_empty());
    assert_eq!(
        TemporalSnapshot::empty(ViewEpoch::new(3)).view_epoch(),
        ViewEpoch::new(3)
    );
}
