//! Tracker configuration.

use nv_core::error::{ConfigError, ConfigProblem};

use crate::kalman::KalmanParams;

/// What the tracker does when the view epoch changes (camera moved, feed restarted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum EpochPolicy {
    /// Drop every track: positions from the old view no longer line up. IDs keep
    /// counting up, so an ID is never reused within a tracker's life.
    #[default]
    Reset,
    /// Keep tracks but forget their velocities and coast history, so they re-anchor on
    /// the first detections of the new view (for small, known camera nudges).
    ReAnchor,
}

/// Tracker parameters. Frame counts are in processed frames.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerConfig {
    /// Detections at or above this confidence take part in the first association.
    pub high_confidence: f32,
    /// Detections below this are ignored; those in `[low, high)` only extend existing
    /// tracks (ByteTrack's second association), never start new ones.
    pub low_confidence: f32,
    /// Minimum confidence of an unmatched detection to start a new track.
    pub new_track_confidence: f32,
    /// Minimum IoU between a predicted track box and a high-confidence detection.
    pub min_iou_high: f32,
    /// Minimum IoU for the low-confidence association (stricter: those are often noise).
    pub min_iou_low: f32,
    /// Minimum IoU between a track's *last observed* box and a detection in the
    /// observation-centric recovery pass (catches tracks whose prediction drifted).
    pub min_iou_recovery: f32,
    /// Minimum IoU to extend a tentative track.
    pub min_iou_tentative: f32,
    /// Matched frames before a track is confirmed (1 confirms at birth).
    pub min_hits: u32,
    /// Consecutive unmatched frames a confirmed track coasts before it is lost.
    pub max_age_frames: u32,
    /// A track coasts at most this many frames per frame it was matched (and never more
    /// than `max_age_frames`): a track seen twice is weak evidence of an object (two
    /// overlapping false detections confirm one), and coasting it for a second would
    /// report a phantom; a track seen for seconds has earned the full `max_age_frames`.
    pub coast_frames_per_hit: u32,
    /// Only match detections of the track's class.
    pub class_aware: bool,
    /// Merge handling: a detection explained better by the union of several
    /// established tracks' predictions than by any one of them is a group (objects
    /// crossing, as a motion detector sees them). It updates none of them, so their
    /// sizes and velocities are not corrupted by the merged box: they coast on their
    /// predictions until they separate.
    pub merge_handling: bool,
    /// A track can be in a detection's group when at least this fraction of its
    /// predicted box lies inside the detection.
    pub merge_containment: f32,
    /// How much better (in IoU) the union of the group's predictions must fit the
    /// detection than the best single prediction.
    pub merge_margin: f32,
    /// End tracks that leave the picture instead of coasting them outside it for
    /// `max_age_frames`: a coasting track ends once less than `exit_visible_fraction` of
    /// its predicted box (extended to the object's full size where its last box was cut
    /// by an edge) lies inside the frame, or after `edge_exit_misses` consecutive misses
    /// when last seen touching an edge while moving out through it. A miss at the edge
    /// with most of the object still inside never ends a track (detectors drop boxes at
    /// the border all the time).
    pub end_tracks_at_frame_edge: bool,
    /// How close (normalised) to an edge a box must be to count as touching it.
    pub frame_edge_margin: f32,
    /// Consecutive misses after which a track last seen leaving through an edge ends.
    pub edge_exit_misses: u32,
    /// A coasting track whose predicted box, extended to the object's full size where
    /// its last observation was cut by an edge, is less visible than this has left.
    pub exit_visible_fraction: f32,
    /// Per coasted frame, the box's size velocity is multiplied by this (0 holds the size
    /// at once, 1 keeps the last rate).
    pub coast_size_damping: f32,
    /// While coasting, width and height stay within the last observed size divided or
    /// multiplied by this.
    pub coast_max_scale_change: f32,
    /// Smallest reported box side (normalised), for coasting boxes.
    pub min_box_side: f32,
    /// Also output tentative tracks (hidden by default, like ByteTrack and DeepStream).
    pub emit_tentative: bool,
    pub epoch_policy: EpochPolicy,
    pub kalman: KalmanParams,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_confidence: 0.5,
            low_confidence: 0.1,
            new_track_confidence: 0.6,
            min_iou_high: 0.2,
            min_iou_low: 0.5,
            min_iou_recovery: 0.2,
            min_iou_tentative: 0.3,
            min_hits: 2,
            max_age_frames: 30,
            coast_frames_per_hit: 2,
            class_aware: true,
            merge_handling: true,
            merge_containment: 0.5,
            merge_margin: 0.05,
            end_tracks_at_frame_edge: true,
            frame_edge_margin: 0.01,
            edge_exit_misses: 3,
            exit_visible_fraction: 0.3,
            coast_size_damping: 0.5,
            coast_max_scale_change: 1.5,
            min_box_side: 0.002,
            emit_tentative: false,
            epoch_policy: EpochPolicy::Reset,
            kalman: KalmanParams::default(),
        }
    }
}

impl TrackerConfig {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let unit = |name: &str, v: f32, problems: &mut Vec<ConfigProblem>| {
            if !(0.0..=1.0).contains(&v) {
                problems.push(ConfigProblem::invalid(name, v, "must be within [0, 1]"));
            }
        };
        unit(
            "tracker.high_confidence",
            self.high_confidence,
            &mut problems,
        );
        unit("tracker.low_confidence", self.low_confidence, &mut problems);
        unit(
            "tracker.new_track_confidence",
            self.new_track_confidence,
            &mut problems,
        );
        if self.low_confidence > self.high_confidence {
            problems.push(ConfigProblem::invalid(
                "tracker.low_confidence",
                self.low_confidence,
                "must not exceed high_confidence",
            ));
        }
        for (name, v) in [
            ("tracker.min_iou_high", self.min_iou_high),
            ("tracker.min_iou_low", self.min_iou_low),
            ("tracker.min_iou_recovery", self.min_iou_recovery),
            ("tracker.min_iou_tentative", self.min_iou_tentative),
            ("tracker.merge_containment", self.merge_containment),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                problems.push(ConfigProblem::invalid(name, v, "must be within (0, 1]"));
            }
        }
        if !(0.0..=0.5).contains(&self.frame_edge_margin) {
            problems.push(ConfigProblem::invalid(
                "tracker.frame_edge_margin",
                self.frame_edge_margin,
                "must be within [0, 0.5]",
            ));
        }
        for (name, v) in [
            ("tracker.exit_visible_fraction", self.exit_visible_fraction),
            ("tracker.coast_size_damping", self.coast_size_damping),
        ] {
            if !(0.0..=1.0).contains(&v) {
                problems.push(ConfigProblem::invalid(name, v, "must be within [0, 1]"));
            }
        }
        if !(self.coast_max_scale_change >= 1.0 && self.coast_max_scale_change <= 100.0) {
            problems.push(ConfigProblem::invalid(
                "tracker.coast_max_scale_change",
                self.coast_max_scale_change,
                "must be within [1, 100]",
            ));
        }
        if !(self.min_box_side > 0.0 && self.min_box_side <= 0.5) {
            problems.push(ConfigProblem::invalid(
                "tracker.min_box_side",
                self.min_box_side,
                "must be within (0, 0.5]",
            ));
        }
        if self.coast_frames_per_hit == 0 {
            problems.push(ConfigProblem::invalid(
                "tracker.coast_frames_per_hit",
                0,
                "must be at least 1",
            ));
        }
        if self.edge_exit_misses == 0 {
            problems.push(ConfigProblem::invalid(
                "tracker.edge_exit_misses",
                0,
                "must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.merge_margin) {
            problems.push(ConfigProblem::invalid(
                "tracker.merge_margin",
                self.merge_margin,
                "must be within [0, 1]",
            ));
        }
        if self.min_hits == 0 {
            problems.push(ConfigProblem::invalid(
                "tracker.min_hits",
                0,
                "must be at least 1",
            ));
        }
        let k = &self.kalman;
        for (name, v) in [
            ("tracker.kalman.position_noise", k.position_noise),
            ("tracker.kalman.velocity_noise", k.velocity_noise),
            ("tracker.kalman.measurement_noise", k.measurement_noise),
            (
                "tracker.kalman.initial_velocity_std",
                k.initial_velocity_std,
            ),
        ] {
            if !(v.is_finite() && v > 0.0) {
                problems.push(ConfigProblem::invalid(
                    name,
                    v,
                    "must be finite and positive",
                ));
            }
        }
        ConfigError::check(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_all_problems_are_listed() {
        assert!(TrackerConfig::default().validate().is_ok());
        let bad = TrackerConfig {
            high_confidence: 0.3,
            low_confidence: 0.4,
            min_iou_high: 0.0,
            min_hits: 0,
            ..TrackerConfig::default()
        };
        let err = bad.validate().unwrap_err();
        assert_eq!(err.problems.len(), 3, "{err}");
    }
}
