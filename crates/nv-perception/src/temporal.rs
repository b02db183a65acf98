//! Read access to a feed's temporal state, as seen by stages.

use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;
use nv_view::ViewEpoch;

use crate::track::{Track, TrackObservation};

/// Object-safe read API over a per-frame snapshot of the temporal store.
pub trait TemporalAccess {
    fn view_epoch(&self) -> ViewEpoch;
    fn track_count(&self) -> usize;
    fn track_ids(&self) -> Vec<TrackId>;
    fn get_track(&self, id: TrackId) -> Option<&Track>;
    /// Most recent observations, oldest first.
    fn recent_observations(&self, id: TrackId) -> &[TrackObservation];
    fn first_seen(&self, id: TrackId) -> Option<MonotonicTs>;
    fn last_seen(&self, id: TrackId) -> Option<MonotonicTs>;
    fn trajectory_point_count(&self, id: TrackId) -> usize;
    fn trajectory_segment_count(&self, id: TrackId) -> usize;
}

/// Empty temporal state (no tracks), for feeds without a temporal store and for tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullTemporalAccess {
    pub epoch: ViewEpoch,
}

impl TemporalAccess for NullTemporalAccess {
    fn view_epoch(&self) -> ViewEpoch {
        self.epoch
    }
    fn track_count(&self) -> usize {
        0
    }
    fn track_ids(&self) -> Vec<TrackId> {
        Vec::new()
    }
    fn get_track(&self, _id: TrackId) -> Option<&Track> {
        None
    }
    fn recent_observations(&self, _id: TrackId) -> &[TrackObservation] {
        &[]
    }
    fn first_seen(&self, _id: TrackId) -> Option<MonotonicTs> {
        None
    }
    fn last_seen(&self, _id: TrackId) -> Option<MonotonicTs> {
        None
    }
    fn trajectory_point_count(&self, _id: TrackId) -> usize {
        0
    }
    fn trajectory_segment_count(&self, _id: TrackId) -> usize {
        0
    }
}
