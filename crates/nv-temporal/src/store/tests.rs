use std::time::Duration;

use nv_core::geometry::{AffineTransform2D, BBox};
use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;
use nv_perception::{TemporalAccess, Track, TrackObservation, TrackState};
use nv_view::ViewEpoch;

use super::*;
use crate::store::commit::CommitOutcome;

const E0: ViewEpoch = ViewEpoch::INITIAL;
const E1: ViewEpoch = ViewEpoch::new(1);

fn secs(s: f64) -> MonotonicTs {
    MonotonicTs::from_nanos((s * 1e9) as u64)
}

fn track(id: u64, state: TrackState, x: f32, at: MonotonicTs) -> Track {
    let bbox = BBox::from_xywh(x, 0.4, 0.1, 0.2);
    Track::new(
        TrackId::new(id),
        0,
        state,
        TrackObservation::new(at, bbox, 0.9, state, None),
    )
}

fn store_with(policy: RetentionPolicy) -> TemporalStore {
    TemporalStore::new(policy).unwrap()
}

fn small_cap(cap: usize) -> TemporalStore {
    store_with(RetentionPolicy {
        max_concurrent_tracks: cap,
        ..Default::default()
    })
}

fn commit(store: &mut TemporalStore, id: u64, state: TrackState, at: f64) -> CommitOutcome {
    store.commit_track(
        &track(id, state, 0.1, secs(at)),
        secs(at),
        store.view_epoch(),
    )
}

fn ids(store: &TemporalStore) -> Vec<u64> {
    store.track_ids().iter().map(|id| id.as_u64()).collect()
}

#[test]
fn invalid_policy_is_refused() {
    let policy = RetentionPolicy {
        max_concurrent_tracks: 0,
        ..Default::default()
    };
    assert!(TemporalStore::new(policy).is_err());
}

#[test]
fn admission_evicts_lost_then_coasted_then_tentative_oldest_first() {
    let mut store = small_cap(5);
    commit(&mut store, 5, TrackState::Confirmed, 0.5);
    commit(&mut store, 1, TrackState::Tentative, 1.0);
    commit(&mut store, 2, TrackState::Coasted, 2.0);
    commit(&mut store, 3, TrackState::Lost, 3.0);
    commit(&mut store, 4, TrackState::Lost, 4.0);
    assert_eq!(store.track_count(), 5);

    let mut evicted = Vec::new();
    for new_id in 10..14 {
        let before = ids(&store);
        assert_eq!(
            commit(&mut store, new_id, TrackState::Confirmed, 5.0),
            CommitOutcome::Admitted
        );
        evicted.extend(
            before
                .into_iter()
                .filter(|id| !store.contains(TrackId::new(*id))),
        );
        assert_eq!(store.track_count(), 5);
    }
    // Lost (older first), then coasted, then tentative; the old confirmed track survives.
    assert_eq!(evicted, vec![3, 4, 2, 1]);
    assert!(store.contains(TrackId::new(5)));
    assert_eq!(store.counters().tracks_evicted, 4);
    assert_eq!(store.time_regressions(), 0);
}

#[test]
fn full_store_of_confirmed_rejects_new_but_accepts_updates() {
    let mut store = small_cap(2);
    commit(&mut store, 1, TrackState::Confirmed, 0.0);
    commit(&mut store, 2, TrackState::Confirmed, 0.0);
    assert_eq!(
        commit(&mut store, 3, TrackState::Tentative, 1.0),
        CommitOutcome::Rejected
    );
    assert!(!store.contains(TrackId::new(3)));
    assert_eq!(
        commit(&mut store, 1, TrackState::Confirmed, 1.0),
        CommitOutcome::Updated
    );
    assert_eq!(store.counters().tracks_rejected, 1);
    assert_eq!(ids(&store), vec![1, 2]);
}

#[test]
fn lost_tracks_expire_after_max_track_age() {
    let mut store = store_with(RetentionPolicy {
        max_track_age: Duration::from_secs(10),
        ..Default::default()
    });
    commit(&mut store, 1, TrackState::Lost, 0.0);
    commit(&mut store, 3, TrackState::Confirmed, 0.0);
    commit(&mut store, 4, TrackState::Coasted, 0.0);
    commit(&mut store, 2, TrackState::Lost, 5.0);

    assert_eq!(store.enforce_retention(secs(9.9)).expired, 0);
    // Age equal to the limit already expires.
    let summary = store.enforce_retention(secs(10.0));
    assert_eq!(summary.expired, 1);
    assert_eq!(ids(&store), vec![2, 3, 4]);
    assert_eq!(store.enforce_retention(secs(15.0)).expired, 1);
    // Only lost tracks age out.
    assert_eq!(store.enforce_retention(secs(1000.0)).expired, 0);
    assert_eq!(ids(&store), vec![3, 4]);
    assert_eq!(store.counters().tracks_expired, 2);
}

#[test]
fn observation_ring_is_capped_at_commit() {
    let mut store = store_with(RetentionPolicy {
        max_observations_per_track: 3,
        ..Default::default()
    });
    for frame in 0..10 {
        let at = secs(f64::from(frame));
        store.commit_track(&track(1, TrackState::Confirmed, 0.1, at), at, E0);
    }
    let history = store.get(TrackId::new(1)).unwrap();
    let stamps: Vec<_> = history.observations().iter().map(|o| o.ts).collect();
    assert_eq!(stamps, vec![secs(7.0), secs(8.0), secs(9.0)]);
    assert_eq!(history.first_seen(), secs(0.0));
    assert_eq!(history.last_seen(), secs(9.0));
}

#[test]
fn trajectory_points_are_pruned_below_the_cap() {
    let mut store = store_with(RetentionPolicy {
        max_trajectory_points_per_track: 16,
        ..Default::default()
    });
    for frame in 0..17 {
        let at = secs(f64::from(frame));
        store.commit_track(
            &track(1, TrackState::Confirmed, 0.01 * frame as f32, at),
            at,
            E0,
        );
    }
    let summary = store.enforce_retention(secs(17.0));
    assert_eq!(summary.points_pruned, 1);
    let trajectory = store.get(TrackId::new(1)).unwrap().trajectory();
    assert_eq!(trajectory.total_points(), 16);
    assert_eq!(trajectory.points().next().unwrap().ts, secs(1.0));
    let motion = trajectory.active_segment().unwrap().motion();
    assert!((motion.path_length - 0.15).abs() < 1e-5, "{motion:?}");
    assert!((motion.mean_speed - 0.01).abs() < 1e-5, "{motion:?}");
    assert_eq!(
        store.enforce_retention(secs(17.0)),
        RetentionSummary::default()
    );
}

#[test]
fn epoch_change_splits_segment_when_track_is_next_committed() {
    let mut store = TemporalStore::new(RetentionPolicy::default()).unwrap();
    store.commit_track(
        &track(1, TrackState::Confirmed, 0.1, secs(0.0)),
        secs(0.0),
        E0,
    );
    store.commit_track(
        &track(2, TrackState::Confirmed, 0.5, secs(0.0)),
        secs(0.0),
        E0,
    );
    store.commit_track(
        &track(1, TrackState::Confirmed, 0.2, secs(1.0)),
        secs(1.0),
        E0,
    );

    store.set_view_epoch(E1);
    // Lazily: nothing splits until a track is committed in the new epoch.
    assert_eq!(
        store
            .get(TrackId::new(1))
            .unwrap()
            .trajectory()
            .segment_count(),
        1
    );

    store.commit_track(
        &track(1, TrackState::Confirmed, 0.6, secs(2.0)),
        secs(2.0),
        E1,
    );
    let trajectory = store.get(TrackId::new(1)).unwrap().trajectory();
    assert_eq!(trajectory.segment_count(), 2);
    let boundary = SegmentBoundary::EpochChange { from: E0, to: E1 };
    assert_eq!(trajectory.segments()[0].closed_by(), Some(boundary));
    assert_eq!(trajectory.segments()[1].opened_by(), boundary);
    assert_eq!(trajectory.active_segment().unwrap().view_epoch(), E1);
    assert_eq!(
        store
            .get(TrackId::new(2))
            .unwrap()
            .trajectory()
            .segment_count(),
        1
    );
    assert_eq!(
        store.get(TrackId::new(1)).unwrap().view_epoch_at_creation(),
        E0
    );
}

#[test]
fn authoritative_frame_ends_missing_tracks_before_admitting_new_ones() {
    let mut store = small_cap(2);
    let frame0 = [
        track(1, TrackState::Confirmed, 0.1, secs(0.0)),
        track(2, TrackState::Confirmed, 0.3, secs(0.0)),
    ];
    let summary = store.commit_frame(&frame0, true, secs(0.0), E0);
    assert_eq!(
        summary,
        FrameCommitSummary {
            admitted: 2,
            ..Default::default()
        }
    );

    // Full of confirmed tracks, yet the new ids fit because the missing ones end first.
    let frame1 = [
        track(2, TrackState::Confirmed, 0.3, secs(1.0)),
        track(3, TrackState::Tentative, 0.5, secs(1.0)),
    ];
    let summary = store.commit_frame(&frame1, true, secs(1.0), E0);
    assert_eq!(
        summary,
        FrameCommitSummary {
            admitted: 1,
            updated: 1,
            rejected: 0,
            ended: 1
        }
    );
    assert_eq!(ids(&store), vec![2, 3]);
    assert_eq!(store.counters().tracks_ended, 1);
}

#[test]
fn non_authoritative_frame_ends_nothing() {
    let mut store = small_cap(2);
    let frame0 = [
        track(1, TrackState::Confirmed, 0.1, secs(0.0)),
        track(2, TrackState::Confirmed, 0.3, secs(0.0)),
    ];
    store.commit_frame(&frame0, true, secs(0.0), E0);
    let summary = store.commit_frame(&[], false, secs(1.0), E0);
    assert_eq!(summary, FrameCommitSummary::default());
    let summary = store.commit_frame(
        &[track(3, TrackState::Confirmed, 0.5, secs(2.0))],
        false,
        secs(2.0),
        E0,
    );
    assert_eq!(summary.rejected, 1);
    assert_eq!(ids(&store), vec![1, 2]);
}

#[test]
fn end_track_closes_with_track_ended() {
    let mut store = TemporalStore::new(RetentionPolicy::default()).unwrap();
    commit(&mut store, 1, TrackState::Confirmed, 0.0);
    let ended = store.end_track(TrackId::new(1)).unwrap();
    assert_eq!(
        ended.trajectory().segments()[0].closed_by(),
        Some(SegmentBoundary::TrackEnded)
    );
    assert!(store.is_empty());
    assert!(store.end_track(TrackId::new(1)).is_none());
}

#[test]
fn reported_loss_closes_segment_and_keeps_track() {
    let mut store = TemporalStore::new(RetentionPolicy::default()).unwrap();
    commit(&mut store, 1, TrackState::Confirmed, 0.0);
    commit(&mut store, 1, TrackState::Lost, 1.0);
    commit(&mut store, 1, TrackState::Lost, 2.0);
    let history = store.get(TrackId::new(1)).unwrap();
    assert_eq!(history.state(), TrackState::Lost);
    let trajectory = history.trajectory();
    assert_eq!(trajectory.segment_count(), 1);
    assert_eq!(trajectory.total_points(), 1);
    assert_eq!(
        trajectory.segments()[0].closed_by(),
        Some(SegmentBoundary::TrackLost)
    );
    // Reacquired: a new segment opens, naming the loss as its cause.
    commit(&mut store, 1, TrackState::Confirmed, 3.0);
    let trajectory = store.get(TrackId::new(1)).unwrap().trajectory();
    assert_eq!(
        trajectory.active_segment().unwrap().opened_by(),
        SegmentBoundary::TrackLost
    );
}

#[test]
fn time_regression_is_clamped_and_counted() {
    let mut store = TemporalStore::new(RetentionPolicy {
        max_track_age: Duration::from_secs(10),
        ..Default::default()
    })
    .unwrap();
    commit(&mut store, 1, TrackState::Confirmed, 100.0);
    // Reconnect: PTS starts over.
    commit(&mut store, 1, TrackState::Lost, 0.5);
    assert_eq!(store.time_regressions(), 1);
    assert_eq!(store.counters().time_regressions, 1);
    let history = store.get(TrackId::new(1)).unwrap();
    assert_eq!(history.last_seen(), secs(100.0));
    assert_eq!(store.last_commit_ts(), Some(secs(100.0)));

    // Time advances again from the clamp, so the lost track still ages out on schedule.
    assert_eq!(store.enforce_retention(secs(9.0)).expired, 0);
    assert_eq!(store.enforce_retention(secs(10.5)).expired, 1);
    assert_eq!(store.time_regressions(), 1);
}

#[test]
fn trajectory_stays_ordered_across_a_time_regression() {
    let mut store = TemporalStore::new(RetentionPolicy::default()).unwrap();
    for at in [5.0, 6.0, 0.0, 1.0, 0.5] {
        commit(&mut store, 1, TrackState::Confirmed, at);
    }
    let stamps: Vec<_> = store
        .get(TrackId::new(1))
        .unwrap()
        .trajectory()
        .points()
        .map(|p| p.ts)
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert_eq!(store.time_regressions(), 2);
}

#[test]
fn clear_for_restart_closes_every_segment() {
    let mut store = TemporalStore::new(RetentionPolicy::default()).unwrap();
    commit(&mut store, 1, TrackState::Confirmed, 0.0);
    commit(&mut store, 2, TrackState::Tentative, 0.0);
    let closed = store.clear_for_restart();
    assert_eq!(closed.len(), 2);
    for history in &closed {
        let last = history.trajectory().segments().last().unwrap();
        assert_eq!(last.closed_by(), Some(SegmentBoundary::FeedRestart));
    }
    assert!(store.is_empty());
    assert_eq!(store.snapshot().track_count(), 0);
}

#[test]
fn compensation_touches_only_active_segments_of_the_epoch() {
    let mut store = TemporalStore::new(RetentionPolicy::default()).unwrap();
    store.commit_track(
        &track(1, TrackState::Confirmed, 0.1, secs(0.0)),
        secs(0.0),
        E0,
    );
    store.commit_track(
        &track(2, TrackState::Confirmed, 0.1, secs(0.0)),
        secs(0.0),
        E0,
    );
    store.commit_track(
        &track(2, TrackState::Confirmed, 0.1, secs(1.0)),
        secs(1.0),
        E1,
    );
    let shift = AffineTransform2D::translation(0.2, 0.0);
    assert_eq!(store.apply_compensation(&shift, E1), 1);
    let moved = store.get(TrackId::new(2)).unwrap().trajectory();
    assert!(
        (moved
            .active_segment()
            .unwrap()
            .first_point()
            .unwrap()
            .position
            .x
            - 0.35)
            .abs()
            < 1e-5
    );
    assert!((moved.segments()[0].first_point().unwrap().position.x - 0.15).abs() < 1e-5);
    let untouched = store.get(TrackId::new(1)).unwrap().trajectory();
    assert_eq!(untouched.active_segment().unwrap().compensation_count(), 0);
    // The tracker's own box is left as reported.
    assert!(
        (store
            .get(TrackId::new(2))
            .unwrap()
            .track()
            .current
            .bbox
            .x_min
            - 0.1)
            .abs()
            < 1e-6
    );
}

#[test]
fn snapshot_reuses_unchanged_tracks_and_stays_frozen() {
    let mut store = TemporalStore::new(RetentionPolicy::default()).unwrap();
    store.commit_track(
        &track(1, TrackState::Confirmed, 0.1, secs(0.0)),
        secs(0.0),
        E0,
    );
    store.commit_track(
        &track(2, TrackState::Confirmed, 0.5, secs(0.0)),
        secs(0.0),
        E0,
    );
    let first = store.snapshot();
    store.commit_track(
        &track(1, TrackState::Confirmed, 0.2, secs(1.0)),
        secs(1.0),
        E0,
    );
    let second = store.snapshot();

    assert!(second.shares_track_with(&first, TrackId::new(2)));
    assert!(!second.shares_track_with(&first, TrackId::new(1)));
    // The earlier snapshot still shows the state it was taken at.
    assert_eq!(first.recent_observations(TrackId::new(1)).len(), 1);
    assert_eq!(first.trajectory_point_count(TrackId::new(1)), 1);
    assert_eq!(second.recent_observations(TrackId::new(1)).len(), 2);
    assert_eq!(second.trajectory_point_count(TrackId::new(1)), 2);
    assert_eq!(second.last_seen(TrackId::new(1)), Some(secs(1.0)));
    assert_eq!(second.first_seen(TrackId::new(1)), Some(secs(0.0)));

    // Nothing changed: the same snapshot comes back.
    let third = store.snapshot();
    assert!(third.shares_track_with(&second, TrackId::new(1)));
}

#[test]
fn snapshot_implements_temporal_access() {
    let mut store = TemporalStore::new(RetentionPolicy::default()).unwrap();
    store.commit_track(
        &track(7, TrackState::Confirmed, 0.1, secs(0.0)),
        secs(0.0),
        E1,
    );
    store.commit_track(
        &track(3, TrackState::Tentative, 0.1, secs(0.0)),
        secs(0.0),
        E1,
    );
    let snapshot = store.snapshot();
    let access: &dyn TemporalAccess = &snapshot;
    assert_eq!(access.view_epoch(), E1);
    assert_eq!(access.track_count(), 2);
    assert_eq!(access.track_ids(), vec![TrackId::new(3), TrackId::new(7)]);
    assert_eq!(
        access.get_track(TrackId::new(7)).unwrap().state,
        TrackState::Confirmed
    );
    assert!(access.get_track(TrackId::new(8)).is_none());
    assert!(access.recent_observations(TrackId::new(8)).is_empty());
    assert_eq!(access.trajectory_segment_count(TrackId::new(3)), 1);
    assert_eq!(access.trajectory_segment_count(TrackId::new(8)), 0);
    assert_eq!(access.first_seen(TrackId::new(8)), None);
}
