//! Retention policy: the bounds that keep one feed's temporal state from growing without limit.

use std::time::Duration;

use nv_core::error::{ConfigError, ConfigProblem};

/// Bounds on one feed's temporal state.
///
/// Every bound is a hard cap except `max_track_age`, which is an expiry applied by
/// [`TemporalStore::enforce_retention`](crate::TemporalStore::enforce_retention).
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionPolicy {
    /// How long a `Lost` track is kept after it was last seen before it is evicted.
    pub max_track_age: Duration,
    /// Length of each track's ring of recent observations.
    pub max_observations_per_track: usize,
    /// Tracks held at once. A new track beyond this evicts a non-confirmed one or is rejected.
    pub max_concurrent_tracks: usize,
    /// Trajectory points kept per track, over all of its segments.
    pub max_trajectory_points_per_track: usize,
    /// A segment whose mean speed is below this is stationary, in normalised units per second.
    /// Configurable because the right value depends on the scene scale: 0.005 suits a wide
    /// outdoor view, but a close-up view needs a larger one.
    pub stationary_speed_threshold: f32,
}

impl RetentionPolicy {
    pub const DEFAULT_MAX_TRACK_AGE: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_OBSERVATIONS_PER_TRACK: usize = 100;
    pub const DEFAULT_MAX_CONCURRENT_TRACKS: usize = 500;
    pub const DEFAULT_MAX_TRAJECTORY_POINTS_PER_TRACK: usize = 1000;
    pub const DEFAULT_STATIONARY_SPEED_THRESHOLD: f32 = 0.005;

    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.max_track_age.is_zero() {
            problems.push(ConfigProblem::invalid(
                "retention.max_track_age",
                format_args!("{} s", self.max_track_age.as_secs_f64()),
                "must be greater than zero",
            ));
        }
        let at_least_one = [
            (
                "retention.max_observations_per_track",
                self.max_observations_per_track,
            ),
            (
                "retention.max_concurrent_tracks",
                self.max_concurrent_tracks,
            ),
            (
                "retention.max_trajectory_points_per_track",
                self.max_trajectory_points_per_track,
            ),
        ];
        for (field, value) in at_least_one {
            if value == 0 {
                problems.push(ConfigProblem::invalid(field, value, "must be at least 1"));
            }
        }
        let threshold = self.stationary_speed_threshold;
        if !threshold.is_finite() || threshold < 0.0 {
            problems.push(ConfigProblem::invalid(
                "retention.stationary_speed_threshold",
                threshold,
                "must be finite and not negative",
            ));
        }
        ConfigError::check(problems)
    }
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            max_track_age: Self::DEFAULT_MAX_TRACK_AGE,
            max_observations_per_track: Self::DEFAULT_MAX_OBSERVATIONS_PER_TRACK,
            max_concurrent_tracks: Self::DEFAULT_MAX_CONCURRENT_TRACKS,
            max_trajectory_points_per_track: Self::DEFAULT_MAX_TRAJECTORY_POINTS_PER_TRACK,
            stationary_speed_threshold: Self::DEFAULT_STATIONARY_SPEED_THRESHOLD,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let policy = RetentionPolicy::default();
        assert!(policy.validate().is_ok());
        assert_eq!(policy.max_track_age, Duration::from_secs(30));
        assert_eq!(policy.max_observations_per_track, 100);
        assert_eq!(policy.max_concurrent_tracks, 500);
        assert_eq!(policy.max_trajectory_points_per_track, 1000);
        assert_eq!(policy.stationary_speed_threshold, 0.005);
    }

    #[test]
    fn validation_lists_every_problem() {
        let policy = RetentionPolicy {
            max_track_age: Duration::ZERO,
            max_observations_per_track: 0,
            max_concurrent_tracks: 0,
            max_trajectory_points_per_track: 0,
            stationary_speed_threshold: f32::NAN,
        };
        let err = policy.validate().unwrap_err();
        assert_eq!(err.problems.len(), 5, "{err}");
        let text = err.to_string();
        for field in [
            "max_track_age",
            "max_observations_per_track",
            "max_concurrent_tracks",
            "max_trajectory_points_per_track",
            "stationary_speed_threshold",
        ] {
            assert!(text.contains(field), "{field} missing from {text}");
        }
    }

    #[test]
    fn negative_threshold_rejected() {
        let policy = RetentionPolicy {
            stationary_speed_threshold: -0.1,
            ..Default::default()
        };
        assert_eq!(policy.validate().unwrap_err().problems.len(), 1);
    }
}
