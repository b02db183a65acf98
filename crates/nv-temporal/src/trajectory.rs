//! Trajectories: a track's positions over time, cut into segments at causal boundaries.
//!
//! A segment never spans a view epoch change, so every point in it is in the same image
//! coordinate frame and motion computed over it is meaningful.

use std::collections::vec_deque;
use std::collections::VecDeque;
use std::time::Duration;

use nv_core::geometry::{AffineTransform2D, BBox, Point2};
use nv_core::time::MonotonicTs;
use nv_view::ViewEpoch;

use crate::motion::{step_length, MotionAccumulator, MotionFeatures};

/// One position of a track.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrajectoryPoint {
    /// Store time of the commit that produced the point (never goes backwards).
    pub ts: MonotonicTs,
    /// Centre of `bbox`.
    pub position: Point2,
    pub bbox: BBox,
}

impl TrajectoryPoint {
    pub fn from_bbox(ts: MonotonicTs, bbox: BBox) -> Self {
        Self {
            ts,
            position: bbox.center(),
            bbox,
        }
    }
}

/// Why a segment started or ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SegmentBoundary {
    /// First segment of a track.
    TrackCreated,
    /// The camera view changed discontinuously; points before and after are not comparable.
    EpochChange { from: ViewEpoch, to: ViewEpoch },
    /// The feed restarted and all temporal state was dropped.
    FeedRestart,
    /// The tracker reported the track lost.
    TrackLost,
    /// The track disappeared from an authoritative track set.
    TrackEnded,
}

/// A run of points within one view epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct TrajectorySegment {
    view_epoch: ViewEpoch,
    points: VecDeque<TrajectoryPoint>,
    accumulator: MotionAccumulator,
    stationary_speed_threshold: f32,
    opened_by: SegmentBoundary,
    closed_by: Option<SegmentBoundary>,
    compensation: AffineTransform2D,
    compensation_count: u32,
}

impl TrajectorySegment {
    fn new(
        view_epoch: ViewEpoch,
        opened_by: SegmentBoundary,
        stationary_speed_threshold: f32,
    ) -> Self {
        Self {
            view_epoch,
            points: VecDeque::new(),
            accumulator: MotionAccumulator::default(),
            stationary_speed_threshold,
            opened_by,
            closed_by: None,
            compensation: AffineTransform2D::IDENTITY,
            compensation_count: 0,
        }
    }

    pub fn view_epoch(&self) -> ViewEpoch {
        self.view_epoch
    }
    /// Points, oldest first.
    pub fn points(&self) -> vec_deque::Iter<'_, TrajectoryPoint> {
        self.points.iter()
    }
    pub fn point_count(&self) -> usize {
        self.points.len()
    }
    pub fn first_point(&self) -> Option<&TrajectoryPoint> {
        self.points.front()
    }
    pub fn last_point(&self) -> Option<&TrajectoryPoint> {
        self.points.back()
    }
    /// Motion over the segment's points; O(1), from sums kept up to date on every change.
    pub fn motion(&self) -> MotionFeatures {
        self.accumulator.features(self.stationary_speed_threshold)
    }
    pub fn opened_by(&self) -> SegmentBoundary {
        self.opened_by
    }
    /// `None` while the segment is active.
    pub fn closed_by(&self) -> Option<SegmentBoundary> {
        self.closed_by
    }
    pub fn is_active(&self) -> bool {
        self.closed_by.is_none()
    }
    /// Cumulative transform applied to this segment's points by camera-motion compensation.
    pub fn compensation(&self) -> &AffineTransform2D {
        &self.compensation
    }
    pub fn compensation_count(&self) -> u32 {
        self.compensation_count
    }
    /// Time between the first and the last point.
    pub fn duration(&self) -> Duration {
        match (self.points.front(), self.points.back()) {
            (Some(first), Some(last)) => last.ts.saturating_duration_since(first.ts),
            _ => Duration::ZERO,
        }
    }

    fn push(&mut self, point: TrajectoryPoint) {
        self.accumulator.push(point.ts, point.position);
        self.points.push_back(point);
    }

    fn recompute_motion(&mut self) {
        self.accumulator =
            MotionAccumulator::from_points(self.points.iter().map(|p| (p.ts, p.position)));
    }

    fn drop_front(&mut self, count: usize) {
        let count = count.min(self.points.len());
        let removed_path_length: f64 = self
            .points
            .iter()
            .zip(self.points.iter().skip(1))
            .take(count)
            .filter_map(|(a, b)| step_length(a.position, b.position))
            .sum();
        self.points.drain(..count);
        let kept_sums = match self.points.front() {
            Some(first) => self
                .accumulator
                .drop_front(removed_path_length, (first.ts, first.position)),
            None => false,
        };
        if !kept_sums {
            self.recompute_motion();
        }
    }

    fn compensate(&mut self, transform: &AffineTransform2D) {
        for point in &mut self.points {
            point.bbox = transform.apply_bbox(&point.bbox);
            point.position = transform.apply(point.position);
        }
        self.compensation = self.compensation.then(transform);
        self.compensation_count = self.compensation_count.saturating_add(1);
        self.recompute_motion();
    }
}

/// A track's segments, oldest first; only the last one can be active.
///
/// Every segment holds at least one point: segments are opened only when a point arrives.
#[derive(Clone, Debug, PartialEq)]
pub struct Trajectory {
    segments: Vec<TrajectorySegment>,
    total_points: usize,
    stationary_speed_threshold: f32,
}

impl Trajectory {
    pub(crate) fn new(stationary_speed_threshold: f32) -> Self {
        Self {
            segments: Vec::new(),
            total_points: 0,
            stationary_speed_threshold,
        }
    }

    pub fn segments(&self) -> &[TrajectorySegment] {
        &self.segments
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    pub fn active_segment(&self) -> Option<&TrajectorySegment> {
        self.segments.last().filter(|s| s.is_active())
    }
    pub fn total_points(&self) -> usize {
        self.total_points
    }
    pub fn is_empty(&self) -> bool {
        self.total_points == 0
    }
    /// All points over all segments, oldest first.
    pub fn points(&self) -> impl DoubleEndedIterator<Item = &TrajectoryPoint> + '_ {
        self.segments.iter().flat_map(TrajectorySegment::points)
    }

    /// Appends a point observed in `epoch`, first splitting off a new segment when the
    /// active one belongs to another epoch or when there is no active segment.
    pub(crate) fn push_point(&mut self, point: TrajectoryPoint, epoch: ViewEpoch) {
        let opened_by = match self.segments.last_mut() {
            Some(active) if active.is_active() && active.view_epoch == epoch => None,
            Some(active) if active.is_active() => {
                let boundary = SegmentBoundary::EpochChange {
                    from: active.view_epoch,
                    to: epoch,
                };
                active.closed_by = Some(boundary);
                Some(boundary)
            }
            // Reopening after a close: an epoch change since then is the more useful cause to
            // report, otherwise whatever closed the previous segment separates the two.
            Some(closed) if closed.view_epoch != epoch => Some(SegmentBoundary::EpochChange {
                from: closed.view_epoch,
                to: epoch,
            }),
            Some(closed) => Some(closed.closed_by.unwrap_or(SegmentBoundary::TrackCreated)),
            None => Some(SegmentBoundary::TrackCreated),
        };
        if let Some(boundary) = opened_by {
            self.segments.push(TrajectorySegment::new(
                epoch,
                boundary,
                self.stationary_speed_threshold,
            ));
        }
        if let Some(active) = self.segments.last_mut() {
            active.push(point);
            self.total_points += 1;
        }
    }

    /// Closes the active segment; false when there was none.
    pub(crate) fn close_active(&mut self, boundary: SegmentBoundary) -> bool {
        match self.segments.last_mut() {
            Some(active) if active.is_active() => {
                active.closed_by = Some(boundary);
                true
            }
            _ => false,
        }
    }

    /// Drops the oldest points until at most `max_points` remain: whole closed segments
    /// first, then the front of the oldest surviving segment. Returns the points dropped.
    pub(crate) fn prune_to(&mut self, max_points: usize) -> usize {
        let mut excess = self.total_points.saturating_sub(max_points);
        let before = self.total_points;
        let whole = self
            .segments
            .iter()
            .take_while(|s| {
                let fits = !s.is_active() && s.point_count() <= excess;
                if fits {
                    excess -= s.point_count();
                }
                fits
            })
            .count();
        self.segments.drain(..whole);
        if excess > 0 {
            if let Some(first) = self.segments.first_mut() {
                first.drop_front(excess);
            }
        }
        self.total_points = self
            .segments
            .iter()
            .map(TrajectorySegment::point_count)
            .sum();
        before - self.total_points
    }

    /// Transforms the active segment's points when it belongs to `epoch`; true if it did.
    pub(crate) fn compensate(&mut self, transform: &AffineTransform2D, epoch: ViewEpoch) -> bool {
        match self.segments.last_mut() {
            Some(active) if active.is_active() && active.view_epoch == epoch => {
                active.compensate(transform);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(secs: u64, x: f32) -> TrajectoryPoint {
        TrajectoryPoint::from_bbox(
            MonotonicTs::from_nanos(secs * 1_000_000_000),
            BBox::new(x, 0.4, x + 0.1, 0.6),
        )
    }

    const E0: ViewEpoch = ViewEpoch::INITIAL;
    const E1: ViewEpoch = ViewEpoch::new(1);

    #[test]
    fn first_point_opens_track_created_segment() {
        let mut t = Trajectory::new(0.005);
        assert!(t.active_segment().is_none());
        t.push_point(point(0, 0.1), E0);
        let seg = t.active_segment().unwrap();
        assert_eq!(seg.opened_by(), SegmentBoundary::TrackCreated);
        assert!((seg.first_point().unwrap().position.x - 0.15).abs() < 1e-6);
    }

    #[test]
    fn epoch_change_splits_segment() {
        let mut t = Trajectory::new(0.005);
        t.push_point(point(0, 0.1), E0);
        t.push_point(point(1, 0.2), E0);
        t.push_point(point(2, 0.3), E1);
        assert_eq!(t.segment_count(), 2);
        let boundary = SegmentBoundary::EpochChange { from: E0, to: E1 };
        assert_eq!(t.segments()[0].closed_by(), Some(boundary));
        assert_eq!(t.segments()[1].opened_by(), boundary);
        assert_eq!(t.segments()[1].view_epoch(), E1);
        assert_eq!(t.total_points(), 3);
    }

    #[test]
    fn reopen_after_loss_names_the_loss() {
        let mut t = Trajectory::new(0.005);
        t.push_point(point(0, 0.1), E0);
        assert!(t.close_active(SegmentBoundary::TrackLost));
        assert!(!t.close_active(SegmentBoundary::TrackLost));
        t.push_point(point(1, 0.2), E0);
        assert_eq!(t.segments()[1].opened_by(), SegmentBoundary::TrackLost);
        t.close_active(SegmentBoundary::TrackLost);
        t.push_point(point(2, 0.2), E1);
        assert_eq!(
            t.segments()[2].opened_by(),
            SegmentBoundary::EpochChange { from: E0, to: E1 }
        );
    }

    #[test]
    fn prune_drops_whole_closed_segments_then_front() {
        let mut t = Trajectory::new(0.005);
        for s in 0..3 {
            t.push_point(point(s, 0.1), E0);
        }
        for s in 3..8 {
            t.push_point(point(s, 0.1 * s as f32 / 8.0), E1);
        }
        assert_eq!(t.total_points(), 8);
        // 4 to drop: the 3-point closed segment, then one point of the active one.
        assert_eq!(t.prune_to(4), 4);
        assert_eq!(t.segment_count(), 1);
        assert_eq!(t.total_points(), 4);
        assert_eq!(t.points().next().unwrap().ts.as_nanos(), 4_000_000_000);
        let seg = t.active_segment().unwrap();
        assert_eq!(seg.duration(), Duration::from_secs(3));
        let expected_path = 0.1 * 3.0 / 8.0;
        assert!((seg.motion().path_length - expected_path).abs() < 1e-5);
    }

    #[test]
    fn prune_trims_a_closed_segment_bigger_than_the_excess() {
        let mut t = Trajectory::new(0.005);
        for s in 0..5 {
            t.push_point(point(s, 0.1), E0);
        }
        t.push_point(point(5, 0.1), E1);
        assert_eq!(t.prune_to(4), 2);
        assert_eq!(t.segment_count(), 2);
        assert_eq!(t.segments()[0].point_count(), 3);
        assert_eq!(t.prune_to(10), 0);
    }

    #[test]
    fn compensation_moves_points_of_active_segment_in_epoch_only() {
        let mut t = Trajectory::new(0.005);
        t.push_point(point(0, 0.1), E0);
        t.push_point(point(1, 0.2), E0);
        let shift = AffineTransform2D::translation(0.1, 0.0);
        assert!(!t.compensate(&shift, E1));
        assert!(t.compensate(&shift, E0));
        assert!(t.compensate(&shift, E0));
        let seg = t.active_segment().unwrap();
        assert_eq!(seg.compensation_count(), 2);
        assert!((seg.compensation().m[2] - 0.2).abs() < 1e-9);
        let first = seg.first_point().unwrap();
        assert!((first.position.x - 0.35).abs() < 1e-5);
        assert!((first.bbox.x_min - 0.3).abs() < 1e-5);
        // A pure translation keeps the path length.
        assert!((seg.motion().path_length - 0.1).abs() < 1e-5);
    }
}
