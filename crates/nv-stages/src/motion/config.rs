//! Motion detector configuration.

use nv_core::error::{ConfigError, ConfigProblem};

/// Motion detector parameters. "Grid" is the downscaled analysis image.
#[derive(Clone, Debug, PartialEq)]
pub struct MotionConfig {
    /// Width of the analysis grid in pixels (height follows the frame's aspect ratio).
    /// Frames narrower than this are analysed at full resolution.
    pub grid_width_px: u32,
    /// Per-frame background adaptation where no motion is seen, in (0, 1]. Absorbs slow
    /// lighting drift: a ramp of `d` grey levels per frame lags by about `d / rate`.
    pub learning_rate: f32,
    /// Adaptation where motion is seen, in [0, learning_rate]. Small but non-zero: a
    /// stopped object stays detected for `~1 / rate` frames, and a background revealed
    /// after a long stop ("ghost") eventually fades.
    pub foreground_learning_rate: f32,
    /// Absolute grey-level difference from the background that counts as motion.
    pub diff_threshold_levels: u8,
    /// Subtract the median frame-to-background difference before thresholding, so a
    /// global brightness change (auto exposure, clouds) is not motion.
    pub compensate_global_illumination: bool,
    /// Apply a 3x3 opening (removes isolated specks) then closing (fills pinholes).
    pub morphology: bool,
    /// Smallest blob reported, in grid pixels.
    pub min_area_grid_px: u32,
    /// At most this many detections per frame (largest first).
    pub max_detections: usize,
    /// Frames used to learn the background before detections are reported.
    pub warmup_frames: u32,
    /// Class ID given to motion detections.
    pub class_id: u32,
    /// Return `StageControl::SkipRemaining` on frames without motion (cheap gating of
    /// expensive later stages).
    pub skip_remaining_when_still: bool,
    /// Foreground that has not changed for this many frames is learned into the
    /// background at `learning_rate` (0 = never). Removes ghosts (objects present while
    /// the model warmed up, or the background revealed when a parked object leaves); a
    /// stopped object is likewise absorbed after this long.
    pub static_absorb_frames: u32,
    /// Tell global motion (camera pan or shake, exposure jump) from objects: on such a
    /// frame no boxes are reported, the `motion.global` signal says what happened, and
    /// the background restarts from the new picture (see `global.rs`).
    pub detect_global_motion: bool,
    /// Largest frame-to-frame camera shift looked for, in grid pixels (8 of a 160-wide
    /// grid is 5% of the width per frame).
    pub global_max_shift_grid_px: u32,
    /// Fraction of the grid that must change from one frame to the next before a shift
    /// of the whole picture is considered, in (0, 1].
    pub global_min_changed_fraction: f32,
    /// Median frame-to-frame brightness change, in grey levels, that is an exposure jump.
    pub exposure_jump_levels: u8,
}

impl Default for MotionConfig {
    fn default() -> Self {
        Self {
            grid_width_px: 160,
            learning_rate: 0.05,
            foreground_learning_rate: 0.002,
            diff_threshold_levels: 25,
            compensate_global_illumination: true,
            morphology: true,
            min_area_grid_px: 6,
            max_detections: 256,
            warmup_frames: 5,
            class_id: 0,
            skip_remaining_when_still: false,
            static_absorb_frames: 150,
            detect_global_motion: true,
            global_max_shift_grid_px: 8,
            global_min_changed_fraction: 0.25,
            exposure_jump_levels: 12,
        }
    }
}

impl MotionConfig {
    /// Checks every field and reports all problems at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if !(4..=4096).contains(&self.grid_width_px) {
            problems.push(ConfigProblem::invalid(
                "motion.grid_width_px",
                self.grid_width_px,
                "must be within [4, 4096]",
            ));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            problems.push(ConfigProblem::invalid(
                "motion.learning_rate",
                self.learning_rate,
                "must be within (0, 1]",
            ));
        }
        if !(self.foreground_learning_rate >= 0.0
            && self.foreground_learning_rate <= self.learning_rate)
        {
            problems.push(ConfigProblem::invalid(
                "motion.foreground_learning_rate",
                self.foreground_learning_rate,
                "must be within [0, learning_rate]",
            ));
        }
        if self.diff_threshold_levels == 0 {
            problems.push(ConfigProblem::invalid(
                "motion.diff_threshold_levels",
                0,
                "must be at least 1",
            ));
        }
        if self.min_area_grid_px == 0 {
            problems.push(ConfigProblem::invalid(
                "motion.min_area_grid_px",
                0,
                "must be at least 1",
            ));
        }
        if self.max_detections == 0 {
            problems.push(ConfigProblem::invalid(
                "motion.max_detections",
                0,
                "must be at least 1",
            ));
        }
        if !(1..=64).contains(&self.global_max_shift_grid_px) {
            problems.push(ConfigProblem::invalid(
                "motion.global_max_shift_grid_px",
                self.global_max_shift_grid_px,
                "must be within [1, 64]",
            ));
        }
        if !(self.global_min_changed_fraction > 0.0 && self.global_min_changed_fraction <= 1.0) {
            problems.push(ConfigProblem::invalid(
                "motion.global_min_changed_fraction",
                self.global_min_changed_fraction,
                "must be within (0, 1]",
            ));
        }
        if self.exposure_jump_levels == 0 {
            problems.push(ConfigProblem::invalid(
                "motion.exposure_jump_levels",
                0,
                "must be at least 1",
            ));
        }
        ConfigError::check(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_problem() {
        assert!(MotionConfig::default().validate().is_ok());
        let bad = MotionConfig {
            grid_width_px: 1,
            learning_rate: 0.0,
            foreground_learning_rate: 0.5,
            diff_threshold_levels: 0,
            global_max_shift_grid_px: 0,
            global_min_changed_fraction: 1.5,
            exposure_jump_levels: 0,
            ..MotionConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().problems.len(), 7);
    }
}
