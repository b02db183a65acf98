//! The per-feed temporal store.
//!
//! Owned by the feed's executor and mutated only between frames, so it needs no locking;
//! stages see it through [`TemporalSnapshot`]s.

mod commit;
mod eviction;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use nv_core::error::ConfigError;
use nv_core::geometry::AffineTransform2D;
use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;
use nv_view::ViewEpoch;

use crate::clock::StoreClock;
use crate::history::TrackHistory;
use crate::retention::RetentionPolicy;
use crate::snapshot::TemporalSnapshot;
use crate::trajectory::SegmentBoundary;

pub use commit::{CommitOutcome, FrameCommitSummary};
pub use eviction::RetentionSummary;

/// Running totals over the store's lifetime, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TemporalCounters {
    /// New tracks admitted.
    pub tracks_admitted: u64,
    /// New tracks refused because the store was full of confirmed tracks.
    pub tracks_rejected: u64,
    /// Tracks ended because an authoritative track set no longer contained them.
    pub tracks_ended: u64,
    /// Lost tracks evicted for exceeding `max_track_age`.
    pub tracks_expired: u64,
    /// Tracks evicted to make room (admission pre-eviction and the retention safety net).
    pub tracks_evicted: u64,
    pub trajectory_points_pruned: u64,
    /// Calls whose timestamp was earlier than the store's time (e.g. PTS reset on reconnect).
    pub time_regressions: u64,
}

/// Temporal state of one feed: a history per track, bounded by a [`RetentionPolicy`].
#[derive(Debug)]
pub struct TemporalStore {
    policy: RetentionPolicy,
    /// Ordered so that snapshots come out sorted without a sort per frame.
    tracks: BTreeMap<TrackId, TrackHistory>,
    view_epoch: ViewEpoch,
    clock: StoreClock,
    counters: TemporalCounters,
    /// Last snapshot, reused while nothing changed. Dropped before any write for the same
    /// reason as the per-track cache (see `TrackHistory`).
    cached_snapshot: Option<TemporalSnapshot>,
    /// Reused per frame by `commit_frame` to avoid an allocation.
    scratch_ids: Vec<TrackId>,
}

impl TemporalStore {
    /// Creates an empty store; fails if the policy is invalid.
    pub fn new(policy: RetentionPolicy) -> Result<Self, ConfigError> {
        policy.validate()?;
        Ok(Self {
            policy,
            tracks: BTreeMap::new(),
            view_epoch: ViewEpoch::INITIAL,
            clock: StoreClock::default(),
            counters: TemporalCounters::default(),
            cached_snapshot: None,
            scratch_ids: Vec::new(),
        })
    }

    pub fn policy(&self) -> &RetentionPolicy {
        &self.policy
    }
    pub fn view_epoch(&self) -> ViewEpoch {
        self.view_epoch
    }
    /// Sets the current epoch. Segments split lazily, when each track is next committed.
    pub fn set_view_epoch(&mut self, epoch: ViewEpoch) {
        if self.view_epoch != epoch {
            self.cached_snapshot = None;
            self.view_epoch = epoch;
        }
    }
    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
    pub fn get(&self, id: TrackId) -> Option<&TrackHistory> {
        self.tracks.get(&id)
    }
    pub fn contains(&self, id: TrackId) -> bool {
        self.tracks.contains_key(&id)
    }
    /// Histories in ascending id order.
    pub fn tracks(&self) -> impl ExactSizeIterator<Item = (TrackId, &TrackHistory)> + '_ {
        self.tracks.iter().map(|(id, history)| (*id, history))
    }
    pub fn track_ids(&self) -> Vec<TrackId> {
        self.tracks.keys().copied().collect()
    }
    pub fn counters(&self) -> TemporalCounters {
        TemporalCounters {
            time_regressions: self.clock.regressions(),
            ..self.counters
        }
    }
    pub fn time_regressions(&self) -> u64 {
        self.clock.regressions()
    }
    /// The store's latest time: never decreases, even when callers' timestamps do.
    pub fn last_commit_ts(&self) -> Option<MonotonicTs> {
        self.clock.last()
    }

    /// A read-only view of the current state. Unchanged tracks reuse the entry built for
    /// the previous snapshot, so the cost is one reference-count bump per unchanged track
    /// plus a rebuild of each changed one; with no change at all it is a single bump.
    pub fn snapshot(&mut self) -> TemporalSnapshot {
        if let Some(cached) = &self.cached_snapshot {
            return cached.clone();
        }
        let entries = self
            .tracks
            .iter_mut()
            .map(|(id, history)| (*id, history.snapshot_entry()))
            .collect();
        let snapshot = TemporalSnapshot::from_sorted(self.view_epoch, entries);
        self.cached_snapshot = Some(snapshot.clone());
        snapshot
    }

    /// Applies camera-motion compensation to the active segments recorded in `epoch`, so
    /// that their points line up with the current view. Returns the segments transformed.
    /// Track boxes and observations are the tracker's and stay as reported.
    pub fn apply_compensation(&mut self, transform: &AffineTransform2D, epoch: ViewEpoch) -> usize {
        // Dropped before writing, even if nothing turns out to apply, so that trajectories
        // the cached snapshot shares can be written in place.
        self.cached_snapshot = None;
        self.tracks
            .values_mut()
            .map(|history| history.compensate(transform, epoch))
            .filter(|&done| done)
            .count()
    }

    /// Closes every active segment with `FeedRestart` and empties the store, returning the
    /// closed histories. The store's clock keeps running, so time stays monotonic across
    /// the restart even if the new session's timestamps start over.
    pub fn clear_for_restart(&mut self) -> Vec<TrackHistory> {
        self.cached_snapshot = None;
        std::mem::take(&mut self.tracks)
            .into_values()
            .map(|mut history| {
                history.close_segment(SegmentBoundary::FeedRestart);
                history
            })
            .collect()
    }

    fn observe_time(&mut self, caller_ts: MonotonicTs) -> MonotonicTs {
        self.clock.observe(caller_ts)
    }
}
