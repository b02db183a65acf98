//! Writing observed tracks into the store: admission control, updates and track ending.

use nv_core::id::TrackId;
use nv_core::time::MonotonicTs;
use nv_perception::Track;
use nv_view::ViewEpoch;

use super::TemporalStore;
use crate::history::TrackHistory;
use crate::trajectory::SegmentBoundary;

/// What happened to one committed track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommitOutcome {
    /// A new track was stored (possibly after evicting a less valuable one).
    Admitted,
    /// An existing track was updated. Updates are never refused.
    Updated,
    /// A new track was refused: the store is at capacity and holds only confirmed tracks.
    Rejected,
}

/// What one frame's commit did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCommitSummary {
    /// New tracks stored.
    pub admitted: usize,
    /// Existing tracks updated.
    pub updated: usize,
    /// New tracks refused for lack of capacity.
    pub rejected: usize,
    /// Tracks ended because the authoritative set no longer contained them.
    pub ended: usize,
}

impl TemporalStore {
    /// Records `track` as observed at `now` in view `epoch`.
    ///
    /// A new track at `max_concurrent_tracks` first evicts the least valuable track (lost,
    /// then coasted, then tentative; oldest `last_seen` first). Confirmed tracks are never
    /// evicted, so when only they remain the new track is rejected.
    pub fn commit_track(
        &mut self,
        track: &Track,
        now: MonotonicTs,
        epoch: ViewEpoch,
    ) -> CommitOutcome {
        let now = self.observe_time(now);
        self.set_view_epoch(epoch);
        self.commit_at(track, now, epoch)
    }

    /// Commits one frame's track set.
    ///
    /// When `authoritative` (a stage produced the complete set this frame), stored tracks
    /// missing from it are ended first, so that their capacity is free for the frame's new
    /// tracks instead of causing spurious rejections under ID churn.
    pub fn commit_frame(
        &mut self,
        tracks: &[Track],
        authoritative: bool,
        now: MonotonicTs,
        epoch: ViewEpoch,
    ) -> FrameCommitSummary {
        let now = self.observe_time(now);
        self.set_view_epoch(epoch);
        let mut summary = FrameCommitSummary::default();
        if authoritative {
            summary.ended = self.end_tracks_missing_from(tracks);
        }
        for track in tracks {
            match self.commit_at(track, now, epoch) {
                CommitOutcome::Admitted => summary.admitted += 1,
                CommitOutcome::Updated => summary.updated += 1,
                CommitOutcome::Rejected => summary.rejected += 1,
            }
        }
        summary
    }

    /// Closes the track's active segment with `TrackEnded` and removes it, returning its
    /// final history.
    pub fn end_track(&mut self, id: TrackId) -> Option<TrackHistory> {
        let mut history = self.tracks.remove(&id)?;
        self.cached_snapshot = None;
        history.close_segment(SegmentBoundary::TrackEnded);
        self.counters.tracks_ended += 1;
        Some(history)
    }

    fn end_tracks_missing_from(&mut self, tracks: &[Track]) -> usize {
        let mut present = std::mem::take(&mut self.scratch_ids);
        present.clear();
        present.extend(tracks.iter().map(|t| t.id));
        // Trackers usually emit tracks in id order, so the sort is mostly a linear check.
        if !present.is_sorted() {
            present.sort_unstable();
        }
        let before = self.tracks.len();
        // `retain` visits ids in ascending order, so one cursor walks `present` alongside.
        let mut cursor = 0;
        self.tracks.retain(|id, _| {
            while present.get(cursor).is_some_and(|p| p < id) {
                cursor += 1;
            }
            present.get(cursor) == Some(id)
        });
        // Ended histories are dropped with the map entry; closing their segments first would
        // be invisible to anyone, so `retain` is enough.
        let ended = before - self.tracks.len();
        self.scratch_ids = present;
        if ended > 0 {
            self.cached_snapshot = None;
            self.counters.tracks_ended += ended as u64;
        }
        ended
    }

    fn commit_at(&mut self, track: &Track, now: MonotonicTs, epoch: ViewEpoch) -> CommitOutcome {
        self.cached_snapshot = None;
        if let Some(history) = self.tracks.get_mut(&track.id) {
            history.record(track, now, epoch);
            return CommitOutcome::Updated;
        }
        if self.tracks.len() >= self.policy.max_concurrent_tracks {
            let Some(victim) = self.eviction_candidate() else {
                self.counters.tracks_rejected += 1;
                return CommitOutcome::Rejected;
            };
            self.tracks.remove(&victim);
            self.counters.tracks_evicted += 1;
        }
        self.tracks
            .insert(track.id, TrackHistory::new(track, now, epoch, &self.policy));
        self.counters.tracks_admitted += 1;
        CommitOutcome::Admitted
    }
}
