//! Documented maxima for every capacity, count, size, duration and rate a user can set.
//!
//! Each limit is far above any sensible setting and far below what would exhaust a host:
//! a queue of 4,096 full-HD frames is already 12 GiB. Builders refuse values above these
//! with a [`ConfigProblem`] naming the key, the value and the limit, so no path reaches an
//! allocation sized by user input (the reference system aborted on `queue_depth = 10^12`).
//! The README's "Limits" table lists the same numbers; keep them in step.

use std::fmt::Display;
use std::time::Duration;

use crate::error::ConfigProblem;

/// Feeds one runtime may run (`max_feeds`); each is at least one thread.
pub const MAX_FEEDS: usize = 10_000;
/// Frames waiting between a source and its feed worker (`queue_depth`).
pub const MAX_QUEUE_DEPTH: usize = 4_096;
/// Outputs waiting for a feed's sink thread (`sink_queue_capacity`).
pub const MAX_SINK_QUEUE_CAPACITY: usize = 16_384;
/// Health events kept for a lagging subscriber (`health_capacity`).
pub const MAX_HEALTH_CAPACITY: usize = 65_536;
/// Outputs kept for a lagging output subscriber (`output_capacity`).
pub const MAX_OUTPUT_CAPACITY: usize = 16_384;
/// Threads of the pool scheduler (`pool_threads`).
pub const MAX_POOL_THREADS: usize = 256;
/// Stack of a feed worker thread, in bytes.
pub const MAX_WORKER_STACK_BYTES: usize = 256 * 1024 * 1024;
/// Any frame rate (`max_fps`, `snapshot_fps`, synthetic sources).
pub const MAX_FPS: f64 = 1_000.0;
/// Any timeout, window or delay given in seconds (`*_secs`): one week.
pub const MAX_DURATION_SECS: f64 = 7.0 * 24.0 * 3600.0;
/// Any timeout or delay given in milliseconds (`*_ms`): one day.
pub const MAX_DURATION_MS: u64 = 24 * 3600 * 1000;
/// `max_restarts` within one restart window.
pub const MAX_RESTARTS: u32 = 100_000;
/// Records a network sink buffers while its broker is away (`buffer_records`).
pub const MAX_BUFFER_RECORDS: u64 = 1_000_000;
/// Records in one webhook request (`batch_max_records`).
pub const MAX_BATCH_RECORDS: u64 = 100_000;
/// Size of one output file before rotation (`max_bytes`): 1 TiB.
pub const MAX_FILE_BYTES: u64 = 1 << 40;
/// Rotated files kept (`max_files`).
pub const MAX_FILES: u64 = 1_000_000;
/// Width or height of a synthetic or test-pattern frame, in pixels.
pub const MAX_FRAME_SIDE_PX: u32 = 8_192;
/// Moving objects drawn by a synthetic source.
pub const MAX_SYNTHETIC_OBJECTS: u32 = 1_000;
/// Length of a source URL or path, in bytes.
pub const MAX_SOURCE_BYTES: usize = 8_192;
/// Length of a feed or sink name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A problem when `value` exceeds `max`: "`field` = value: must be at most max".
pub fn at_most<T: PartialOrd + Display>(field: &str, value: T, max: T) -> Option<ConfigProblem> {
    (value > max).then(|| ConfigProblem::invalid(field, &value, format!("must be at most {max}")))
}

/// A problem unless `secs` is finite and within `0..=MAX_DURATION_SECS` (and above zero
/// when `positive`).
pub fn seconds(field: &str, secs: f64, positive: bool) -> Option<ConfigProblem> {
    let low_ok = if positive { secs > 0.0 } else { secs >= 0.0 };
    if !secs.is_finite() || !low_ok {
        let bound = if positive { "above 0" } else { "at least 0" };
        return Some(ConfigProblem::invalid(
            field,
            secs,
            format!("must be a finite number of seconds {bound} and at most {MAX_DURATION_SECS}"),
        ));
    }
    at_most(field, secs, MAX_DURATION_SECS)
}

/// A problem unless `d` is at most [`MAX_DURATION_SECS`].
pub fn duration(field: &str, d: Duration) -> Option<ConfigProblem> {
    (d.as_secs_f64() > MAX_DURATION_SECS).then(|| {
        ConfigProblem::invalid(
            field,
            format_args!("{}s", d.as_secs_f64()),
            format!("must be at most {MAX_DURATION_SECS}s"),
        )
    })
}

/// A problem unless `fps` is finite, above 0 and at most [`MAX_FPS`].
pub fn fps(field: &str, fps: f64) -> Option<ConfigProblem> {
    if fps.is_finite() && fps > 0.0 && fps <= MAX_FPS {
        None
    } else {
        Some(ConfigProblem::invalid(
            field,
            fps,
            format!("must be a finite rate above 0 and at most {MAX_FPS}"),
        ))
    }
}

/// Converts validated seconds to a `Duration`, saturating instead of panicking on values
/// that slipped past validation.
pub fn saturating_secs(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs.min(MAX_DURATION_SECS)).unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_key_value_and_limit() {
        let p = at_most("queue_depth", 1_000_000_000_000usize, MAX_QUEUE_DEPTH).unwrap();
        assert_eq!(
            p.to_string(),
            "queue_depth = 1000000000000: must be at most 4096"
        );
        assert!(at_most("queue_depth", 4_096usize, MAX_QUEUE_DEPTH).is_none());
        assert!(seconds("delay_secs", -1.0, false).is_some());
        assert!(seconds("delay_secs", 0.0, false).is_none());
        assert!(seconds("timeout_secs", 0.0, true).is_some());
        assert!(seconds("x", f64::INFINITY, false).is_some());
        assert!(seconds("x", f64::NAN, false).is_some());
        assert!(fps("snapshot_fps", f64::INFINITY).is_some());
        assert!(fps("snapshot_fps", 30.0).is_none());
        assert_eq!(
            saturating_secs(f64::INFINITY).as_secs_f64(),
            MAX_DURATION_SECS
        );
        assert_eq!(saturating_secs(-3.0), Duration::ZERO);
        assert!(duration("x", Duration::MAX).is_some());
    }
}
