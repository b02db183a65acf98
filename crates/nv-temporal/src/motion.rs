//! Motion features of a trajectory segment, maintained incrementally.

use nv_core::geometry::Point2;
use nv_core::time::MonotonicTs;

/// Below this net displacement (normalised units) a heading is noise, so none is reported.
const MIN_HEADING_DISPLACEMENT: f64 = 1e-6;

/// Summary of how an object moved within one trajectory segment.
///
/// Distances are in normalised image units, speeds in normalised units per second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MotionFeatures {
    /// Sum of the distances between consecutive points.
    pub path_length: f32,
    /// Straight-line distance from the first point to the last.
    pub net_displacement: f32,
    /// `path_length` over the segment's duration; 0 while the segment spans no time.
    pub mean_speed: f32,
    /// Fastest step between two consecutive points with distinct timestamps.
    pub max_speed: f32,
    /// Direction of the net displacement, `atan2(dy, dx)` in image coordinates (y grows
    /// downwards, so positive angles turn clockwise on screen). `None` while the object has
    /// not moved.
    pub heading_rad: Option<f32>,
    /// Mean speed below the policy's stationary threshold. False until the segment spans
    /// time, because one instant says nothing about motion.
    pub is_stationary: bool,
}

/// Length of the step between two positions as the sums count it: `None` for a non-finite
/// step, so that one bad box from a tracker cannot poison a segment's sums for its whole life.
pub(crate) fn step_length(from: Point2, to: Point2) -> Option<f64> {
    Some(f64::from(from.distance(to))).filter(|step| step.is_finite())
}

/// Running sums from which [`MotionFeatures`] follow in O(1).
///
/// Sums are kept in f64 so that a long segment does not lose small steps to rounding.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct MotionAccumulator {
    first: Option<(MonotonicTs, Point2)>,
    last: Option<(MonotonicTs, Point2)>,
    path_length: f64,
    max_speed: f64,
    /// Timestamp of the point that ends the fastest step. Pruning the front only needs a
    /// rescan when it removes that step.
    max_speed_step_end: Option<MonotonicTs>,
}

impl MotionAccumulator {
    /// Rebuilds the sums from scratch; used after points were transformed.
    pub(crate) fn from_points(points: impl IntoIterator<Item = (MonotonicTs, Point2)>) -> Self {
        let mut acc = Self::default();
        for (ts, position) in points {
            acc.push(ts, position);
        }
        acc
    }

    pub(crate) fn push(&mut self, ts: MonotonicTs, position: Point2) {
        match self.last {
            Some((last_ts, last_position)) => {
                if let Some(step) = step_length(last_position, position) {
                    self.path_length += step;
                    let dt_secs = ts.saturating_duration_since(last_ts).as_secs_f64();
                    // `>=` keeps the newest of equally fast steps, which survives pruning
                    // longest.
                    if dt_secs > 0.0 && step / dt_secs >= self.max_speed {
                        self.max_speed = step / dt_secs;
                        self.max_speed_step_end = Some(ts);
                    }
                }
            }
            None => self.first = Some((ts, position)),
        }
        self.last = Some((ts, position));
    }

    /// Accounts for the points before `new_first` having been dropped, whose steps summed
    /// to `removed_path_length`. Returns false when the fastest step was among them: the
    /// maximum of what remains is then unknown and the caller must rebuild.
    #[must_use]
    pub(crate) fn drop_front(
        &mut self,
        removed_path_length: f64,
        new_first: (MonotonicTs, Point2),
    ) -> bool {
        if self
            .max_speed_step_end
            .is_some_and(|end| end <= new_first.0)
        {
            return false;
        }
        self.path_length = (self.path_length - removed_path_length).max(0.0);
        self.first = Some(new_first);
        true
    }

    pub(crate) fn features(&self, stationary_speed_threshold: f32) -> MotionFeatures {
        let (Some((first_ts, first)), Some((last_ts, last))) = (self.first, self.last) else {
            return MotionFeatures::default();
        };
        let dx = f64::from(last.x) - f64::from(first.x);
        let dy = f64::from(last.y) - f64::from(first.y);
        let net = dx.hypot(dy);
        let duration_secs = last_ts.saturating_duration_since(first_ts).as_secs_f64();
        let mean_speed = if duration_secs > 0.0 {
            self.path_length / duration_secs
        } else {
            0.0
        };
        let heading_rad =
            (net.is_finite() && net > MIN_HEADING_DISPLACEMENT).then(|| dy.atan2(dx) as f32);
        MotionFeatures {
            path_length: self.path_length as f32,
            net_displacement: net as f32,
            mean_speed: mean_speed as f32,
            max_speed: self.max_speed as f32,
            heading_rad,
            is_stationary: duration_secs > 0.0
                && mean_speed < f64::from(stationary_speed_threshold),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> MonotonicTs {
        MonotonicTs::from_nanos((secs * 1e9) as u64)
    }

    #[test]
    fn straight_line_motion() {
        let mut acc = MotionAccumulator::default();
        acc.push(at(0.0), Point2::new(0.1, 0.5));
        acc.push(at(1.0), Point2::new(0.2, 0.5));
        acc.push(at(2.0), Point2::new(0.4, 0.5));
        let m = acc.features(0.005);
        assert!((m.path_length - 0.3).abs() < 1e-6);
        assert!((m.net_displacement - 0.3).abs() < 1e-6);
        assert!((m.mean_speed - 0.15).abs() < 1e-6);
        assert!((m.max_speed - 0.2).abs() < 1e-6);
        assert_eq!(m.heading_rad, Some(0.0));
        assert!(!m.is_stationary);
    }

    #[test]
    fn heading_points_down_for_positive_y() {
        let acc = MotionAccumulator::from_points([
            (at(0.0), Point2::new(0.5, 0.1)),
            (at(1.0), Point2::new(0.5, 0.3)),
        ]);
        let heading = acc.features(0.005).heading_rad.unwrap();
        assert!((heading - std::f32::consts::FRAC_PI_2).abs() < 1e-6);
    }

    #[test]
    fn stationary_uses_threshold_and_needs_time() {
        let single = MotionAccumulator::from_points([(at(0.0), Point2::new(0.5, 0.5))]);
        assert!(!single.features(0.005).is_stationary);
        assert_eq!(single.features(0.005).heading_rad, None);

        let slow = MotionAccumulator::from_points([
            (at(0.0), Point2::new(0.5, 0.5)),
            (at(1.0), Point2::new(0.503, 0.5)),
        ]);
        assert!(slow.features(0.005).is_stationary);
        assert!(!slow.features(0.001).is_stationary);
    }

    #[test]
    fn equal_timestamps_do_not_produce_infinite_speed() {
        let acc = MotionAccumulator::from_points([
            (at(1.0), Point2::new(0.1, 0.1)),
            (at(1.0), Point2::new(0.9, 0.9)),
        ]);
        let m = acc.features(0.005);
        assert_eq!(m.max_speed, 0.0);
        assert_eq!(m.mean_speed, 0.0);
        assert!(m.path_length > 1.0);
    }

    #[test]
    fn dropping_the_front_keeps_sums_unless_the_fastest_step_goes() {
        let points = [
            (at(0.0), Point2::new(0.0, 0.5)),
            (at(1.0), Point2::new(0.1, 0.5)),
            (at(2.0), Point2::new(0.4, 0.5)),
            (at(3.0), Point2::new(0.5, 0.5)),
        ];
        let mut acc = MotionAccumulator::from_points(points);
        assert!(acc.drop_front(0.1, points[1]));
        let rebuilt = MotionAccumulator::from_points(points[1..].iter().copied());
        let (kept, fresh) = (acc.features(0.005), rebuilt.features(0.005));
        assert!((kept.path_length - fresh.path_length).abs() < 1e-6);
        assert_eq!(kept.max_speed, fresh.max_speed);
        assert_eq!(kept.heading_rad, fresh.heading_rad);
        assert!((kept.path_length - 0.4).abs() < 1e-6);
        // The 0.3/s step ends at t=2; dropping through it needs a rebuild.
        assert!(!acc.drop_front(0.3, points[2]));
    }

    #[test]
    fn non_finite_step_is_ignored() {
        let acc = MotionAccumulator::from_points([
            (at(0.0), Point2::new(0.1, 0.1)),
            (at(1.0), Point2::new(f32::NAN, 0.1)),
        ]);
        let m = acc.features(0.005);
        assert_eq!(m.path_length, 0.0);
        assert_eq!(m.heading_rad, None);
    }
}
