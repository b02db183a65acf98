//! Everything the store remembers about one track.

use std::sync::Arc;

use nv_core::geometry::AffineTransform2D;
use nv_core::time::MonotonicTs;
use nv_perception::{Track, TrackObservation, TrackState};
use nv_view::ViewEpoch;

use crate::observations::ObservationRing;
use crate::retention::RetentionPolicy;
use crate::snapshot::TrackSnapshot;
use crate::trajectory::{SegmentBoundary, Trajectory, TrajectoryPoint};

/// One track's temporal state.
///
/// Track and trajectory sit behind `Arc`s so that snapshots share them; they are written in
/// place when no snapshot holds them and copied on write otherwise.
#[derive(Debug)]
pub struct TrackHistory {
    track: Arc<Track>,
    observations: ObservationRing,
    trajectory: Arc<Trajectory>,
    first_seen: MonotonicTs,
    last_seen: MonotonicTs,
    view_epoch_at_creation: ViewEpoch,
    /// Snapshot entry built since the last change. Every mutation drops it *before* writing,
    /// because holding it would keep the shared buffers from being written in place.
    cached_snapshot: Option<Arc<TrackSnapshot>>,
}

impl TrackHistory {
    pub(crate) fn new(
        track: &Track,
        now: MonotonicTs,
        epoch: ViewEpoch,
        policy: &RetentionPolicy,
    ) -> Self {
        let mut history = Self {
            track: Arc::new(track.clone()),
            observations: ObservationRing::new(policy.max_observations_per_track),
            trajectory: Arc::new(Trajectory::new(policy.stationary_speed_threshold)),
            first_seen: now,
            last_seen: now,
            view_epoch_at_creation: epoch,
            cached_snapshot: None,
        };
        history.record_motion(track, now, epoch);
        history
    }

    pub fn track(&self) -> &Track {
        &self.track
    }
    pub fn state(&self) -> TrackState {
        self.track.state
    }
    /// Recent observations, oldest first, at most `max_observations_per_track`.
    pub fn observations(&self) -> &[TrackObservation] {
        self.observations.as_slice()
    }
    pub fn observation_count(&self) -> usize {
        self.observations.len()
    }
    pub fn trajectory(&self) -> &Trajectory {
        &self.trajectory
    }
    /// Store time of the first commit.
    pub fn first_seen(&self) -> MonotonicTs {
        self.first_seen
    }
    /// Store time of the latest commit.
    pub fn last_seen(&self) -> MonotonicTs {
        self.last_seen
    }
    pub fn view_epoch_at_creation(&self) -> ViewEpoch {
        self.view_epoch_at_creation
    }

    /// Records the track as observed at `now` (an update of an existing history).
    pub(crate) fn record(&mut self, track: &Track, now: MonotonicTs, epoch: ViewEpoch) {
        self.cached_snapshot = None;
        match Arc::get_mut(&mut self.track) {
            Some(latest) => latest.clone_from(track),
            None => self.track = Arc::new(track.clone()),
        }
        self.last_seen = now;
        self.record_motion(track, now, epoch);
    }

    fn record_motion(&mut self, track: &Track, now: MonotonicTs, epoch: ViewEpoch) {
        self.observations.push(track.current.clone());
        let trajectory = Arc::make_mut(&mut self.trajectory);
        // A lost track's box is the tracker's last prediction, not a sighting, so it ends the
        // segment instead of extending it.
        if track.state == TrackState::Lost {
            trajectory.close_active(SegmentBoundary::TrackLost);
        } else {
            trajectory.push_point(TrajectoryPoint::from_bbox(now, track.current.bbox), epoch);
        }
    }

    pub(crate) fn close_segment(&mut self, boundary: SegmentBoundary) {
        if self.trajectory.active_segment().is_some() {
            self.cached_snapshot = None;
            Arc::make_mut(&mut self.trajectory).close_active(boundary);
        }
    }

    /// Returns the points dropped.
    pub(crate) fn prune_trajectory(&mut self, max_points: usize) -> usize {
        if self.trajectory.total_points() <= max_points {
            return 0;
        }
        self.cached_snapshot = None;
        Arc::make_mut(&mut self.trajectory).prune_to(max_points)
    }

    pub(crate) fn compensate(&mut self, transform: &AffineTransform2D, epoch: ViewEpoch) -> bool {
        let applies = self
            .trajectory
            .active_segment()
            .is_some_and(|segment| segment.view_epoch() == epoch);
        if applies {
            self.cached_snapshot = None;
            Arc::make_mut(&mut self.trajectory).compensate(transform, epoch);
        }
        applies
    }

    /// The shared snapshot entry, rebuilt only if the history changed since the last call.
    pub(crate) fn snapshot_entry(&mut self) -> Arc<TrackSnapshot> {
        if let Some(cached) = &self.cached_snapshot {
            return Arc::clone(cached);
        }
        let entry = Arc::new(TrackSnapshot::new(
            Arc::clone(&self.track),
            self.observations.window(),
            Arc::clone(&self.trajectory),
            self.first_seen,
            self.last_seen,
            self.view_epoch_at_creation,
        ));
        self.cached_snapshot = Some(Arc::clone(&entry));
        entry
    }
}
