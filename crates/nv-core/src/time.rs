//! Timestamps. All durations use `std::time::Duration`.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

/// Monotonic timestamp in nanoseconds.
///
/// Two domains use it: media time (frame PTS, made monotonic per feed by the source) and the
/// runtime clock (nanoseconds since the clock's origin). Provenance says which is which.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonotonicTs(u64);

impl MonotonicTs {
    pub const ZERO: Self = Self(0);

    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// `None` when `earlier` is after `self`.
    pub fn checked_duration_since(self, earlier: Self) -> Option<Duration> {
        self.0.checked_sub(earlier.0).map(Duration::from_nanos)
    }
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_nanos(d)))
    }
}

impl Add<Duration> for MonotonicTs {
    type Output = Self;
    fn add(self, rhs: Duration) -> Self {
        self.saturating_add(rhs)
    }
}

impl fmt::Display for MonotonicTs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", self.as_secs_f64())
    }
}

/// Wall-clock time in microseconds since the Unix epoch. Used for output and frame age only,
/// never for ordering. Zero means unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WallTs(u64);

impl WallTs {
    pub const UNKNOWN: Self = Self(0);

    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }
    pub const fn as_micros(self) -> u64 {
        self.0
    }
    pub const fn is_known(self) -> bool {
        self.0 != 0
    }
    /// The system's wall clock now.
    pub fn now() -> Self {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Self(micros)
    }
    /// `None` if either is unknown or `earlier` is later.
    pub fn checked_duration_since(self, earlier: Self) -> Option<Duration> {
        if !self.is_known() || !earlier.is_known() {
            return None;
        }
        self.0.checked_sub(earlier.0).map(Duration::from_micros)
    }
}

/// Saturating conversion for durations that exceed 584 years.
pub fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_arithmetic() {
        let a = MonotonicTs::from_nanos(1_000);
        let b = a + Duration::from_nanos(500);
        assert_eq!(b.as_nanos(), 1_500);
        assert_eq!(b.checked_duration_since(a), Some(Duration::from_nanos(500)));
        assert_eq!(a.checked_duration_since(b), None);
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert_eq!(
            MonotonicTs::from_nanos(u64::MAX) + Duration::from_secs(1),
            MonotonicTs::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn wall_unknown_has_no_age() {
        let now = WallTs::from_micros(10);
        assert_eq!(now.checked_duration_since(WallTs::UNKNOWN), None);
        assert_eq!(
            now.checked_duration_since(WallTs::from_micros(4)),
            Some(Duration::from_micros(6))
        );
        assert!(WallTs::now().is_known());
    }
}
