//! Per-frame read-only snapshot of a feed's temporal state, handed to stages.

use std::sync::Arc;

use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;
use nv_perception::{TemporalAccess, Track, TrackObservation};
use nv_view::ViewEpoch;

use crate::observations::ObservationWindow;
use crate::trajectory::Trajectory;

/// One track as of a snapshot. Shares its data with the store; never copied per frame.
#[derive(Debug)]
pub struct TrackSnapshot {
    track: Arc<Track>,
    observations: ObservationWindow,
    trajectory: Arc<Trajectory>,
    first_seen: MonotonicTs,
    last_seen: MonotonicTs,
    view_epoch_at_creation: ViewEpoch,
}

impl TrackSnapshot {
    pub(crate) fn new(
        track: Arc<Track>,
        observations: ObservationWindow,
        trajectory: Arc<Trajectory>,
        first_seen: MonotonicTs,
        last_seen: MonotonicTs,
        view_epoch_at_creation: ViewEpoch,
    ) -> Self {
        Self {
            track,
            observations,
            trajectory,
            first_seen,
            last_seen,
            view_epoch_at_creation,
        }
    }

    pub fn track(&self) -> &Track {
        &self.track
    }
    /// Recent observations, oldest first.
    pub fn observations(&self) -> &[TrackObservation] {
        self.observations.as_slice()
    }
    pub fn trajectory(&self) -> &Trajectory {
        &self.trajectory
    }
    pub fn first_seen(&self) -> MonotonicTs {
        self.first_seen
    }
    pub fn last_seen(&self) -> MonotonicTs {
        self.last_seen
    }
    pub fn view_epoch_at_creation(&self) -> ViewEpoch {
        self.view_epoch_at_creation
    }
}

/// Immutable state of every track at one frame. Cloning is one reference-count bump.
///
/// Holding a snapshot past the next commit is allowed but makes the store copy the shared
/// buffers of every track it then changes, so stages should drop it with the frame.
#[derive(Clone, Debug)]
pub struct TemporalSnapshot {
    view_epoch: ViewEpoch,
    /// Sorted by id, for binary-search lookup without building a map per frame.
    tracks: Arc<[(TrackId, Arc<TrackSnapshot>)]>,
}

impl TemporalSnapshot {
    /// A snapshot with no tracks.
    pub fn empty(view_epoch: ViewEpoch) -> Self {
        Self {
            view_epoch,
            tracks: Arc::from(Vec::new()),
        }
    }

    pub(crate) fn from_sorted(
        view_epoch: ViewEpoch,
        tracks: Vec<(TrackId, Arc<TrackSnapshot>)>,
    ) -> Self {
        debug_assert!(tracks.windows(2).all(|w| w[0].0 < w[1].0));
        Self {
            view_epoch,
            tracks: Arc::from(tracks),
        }
    }

    pub fn view_epoch(&self) -> ViewEpoch {
        self.view_epoch
    }
    pub fn len(&self) -> usize {
        self.tracks.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
    pub fn track(&self, id: TrackId) -> Option<&TrackSnapshot> {
        let index = self
            .tracks
            .binary_search_by_key(&id, |(key, _)| *key)
            .ok()?;
        self.tracks.get(index).map(|(_, entry)| &**entry)
    }
    /// Tracks in ascending id order.
    pub fn tracks(&self) -> impl ExactSizeIterator<Item = (TrackId, &TrackSnapshot)> + '_ {
        self.tracks.iter().map(|(id, entry)| (*id, &**entry))
    }
    /// Whether `self` and `other` share the entry for `id`, i.e. it did not change between them.
    pub fn shares_track_with(&self, other: &Self, id: TrackId) -> bool {
        let find = |s: &Self| {
            let index = s.tracks.binary_search_by_key(&id, |(key, _)| *key).ok()?;
            s.tracks.get(index).map(|(_, entry)| Arc::clone(entry))
        };
        matches!((find(self), find(other)), (Some(a), Some(b)) if Arc::ptr_eq(&a, &b))
    }
}

impl TemporalAccess for TemporalSnapshot {
    fn view_epoch(&self) -> ViewEpoch {
        self.view_epoch
    }
    fn track_count(&self) -> usize {
        self.tracks.len()
    }
    fn track_ids(&self) -> Vec<TrackId> {
        self.tracks.iter().map(|(id, _)| *id).collect()
    }
    fn get_track(&self, id: TrackId) -> Option<&Track> {
        self.track(id).map(TrackSnapshot::track)
    }
    fn recent_observations(&self, id: TrackId) -> &[TrackObservation] {
        self.track(id).map_or(&[], TrackSnapshot::observations)
    }
    fn first_seen(&self, id: TrackId) -> Option<MonotonicTs> {
        self.track(id).map(TrackSnapshot::first_seen)
    }
    fn last_seen(&self, id: TrackId) -> Option<MonotonicTs> {
        self.track(id).map(TrackSnapshot::last_seen)
    }
    fn trajectory_point_count(&self, id: TrackId) -> usize {
        self.track(id).map_or(0, |t| t.trajectory.total_points())
    }
    fn trajectory_segment_count(&self, id: TrackId) -> usize {
        self.track(id).map_or(0, |t| t.trajectory.segment_count())
    }
}
