//! Field checks shared by the configurable types of this crate. Each pushes a
//! `ConfigProblem` naming the dotted field, so a config with several mistakes reports all
//! of them at once.

use nv_core::error::ConfigProblem;

/// Finite and strictly positive (a threshold of 0 would fire on every frame).
pub(crate) fn positive(problems: &mut Vec<ConfigProblem>, field: &str, value: f32) {
    if !(value.is_finite() && value > 0.0) {
        problems.push(ConfigProblem::invalid(
            field,
            value,
            "must be finite and greater than zero",
        ));
    }
}

/// Finite and not negative.
pub(crate) fn non_negative(problems: &mut Vec<ConfigProblem>, field: &str, value: f32) {
    if !(value.is_finite() && value >= 0.0) {
        problems.push(ConfigProblem::invalid(
            field,
            value,
            "must be finite and at least zero",
        ));
    }
}

/// Within [0, 1] (confidences, stability penalties).
pub(crate) fn unit_interval(problems: &mut Vec<ConfigProblem>, field: &str, value: f32) {
    if !(0.0..=1.0).contains(&value) {
        problems.push(ConfigProblem::invalid(
            field,
            value,
            "must be between 0 and 1",
        ));
    }
}
