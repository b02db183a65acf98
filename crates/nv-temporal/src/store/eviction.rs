//! Retention: age expiry, the capacity safety net and trajectory pruning.

use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;
use nv_perception::TrackState;

use super::TemporalStore;

/// What one retention pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionSummary {
    /// Lost tracks older than `max_track_age`.
    pub expired: usize,
    /// Tracks evicted because the store held more than `max_concurrent_tracks`.
    pub evicted: usize,
    pub points_pruned: usize,
}

/// Eviction order: lower goes first. Confirmed tracks (and states this crate does not know)
/// are never evicted to make room, because they are the ones users act on.
fn eviction_rank(state: TrackState) -> Option<u8> {
    match state {
        TrackState::Lost => Some(0),
        TrackState::Coasted => Some(1),
        TrackState::Tentative => Some(2),
        _ => None,
    }
}

impl TemporalStore {
    /// Applies the retention policy at `now`:
    /// 1. evicts `Lost` tracks not seen for `max_track_age` or longer;
    /// 2. evicts by priority while over `max_concurrent_tracks` (a safety net; admission
    ///    already keeps the store within the cap);
    /// 3. prunes trajectories longer than `max_trajectory_points_per_track`.
    pub fn enforce_retention(&mut self, now: MonotonicTs) -> RetentionSummary {
        let now = self.observe_time(now);
        let max_age = self.policy.max_track_age;
        let before = self.tracks.len();
        self.tracks.retain(|_, history| {
            history.state() != TrackState::Lost
                || now.saturating_duration_since(history.last_seen()) < max_age
        });
        let mut summary = RetentionSummary {
            expired: before - self.tracks.len(),
            ..Default::default()
        };

        while self.tracks.len() > self.policy.max_concurrent_tracks {
            let Some(victim) = self.eviction_candidate() else {
                break;
            };
            self.tracks.remove(&victim);
            summary.evicted += 1;
        }

        let max_points = self.policy.max_trajectory_points_per_track;
        for history in self.tracks.values_mut() {
            if history.trajectory().total_points() > max_points {
                // Dropped before writing: a cached snapshot sharing the trajectory would force
                // a full copy of it instead of an in-place prune.
                self.cached_snapshot = None;
                summary.points_pruned += history.prune_trajectory(max_points);
            }
        }

        if summary != RetentionSummary::default() {
            self.cached_snapshot = None;
        }
        self.counters.tracks_expired += summary.expired as u64;
        self.counters.tracks_evicted += summary.evicted as u64;
        self.counters.trajectory_points_pruned += summary.points_pruned as u64;
        summary
    }

    /// The track to evict to make room: lowest rank, then oldest `last_seen`, then lowest id
    /// (so that ties resolve the same way every run).
    pub(super) fn eviction_candidate(&self) -> Option<TrackId> {
        self.tracks
            .iter()
            .filter_map(|(id, history)| {
                eviction_rank(history.state()).map(|rank| (rank, history.last_seen(), *id))
            })
            .min()
            .map(|(_, _, id)| id)
    }
}
