//! The store's own monotonic time line.
//!
//! Callers pass frame timestamps, and a reconnect can restart PTS at zero. Letting time run
//! backwards would freeze age-based eviction (an age computed against a future `last_seen`
//! is zero) and break trajectory ordering. So a regression is clamped to the last time seen
//! and the jump is folded into an offset, after which the store's time advances with the
//! caller's again instead of staying stuck at the clamp.

use nv_core::time::MonotonicTs;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StoreClock {
    last: Option<MonotonicTs>,
    offset_nanos: u64,
    regressions: u64,
}

impl StoreClock {
    /// Maps a caller timestamp onto the store's time line.
    pub(crate) fn observe(&mut self, caller_ts: MonotonicTs) -> MonotonicTs {
        let shifted = caller_ts.as_nanos().saturating_add(self.offset_nanos);
        let ts = match self.last {
            Some(last) if shifted < last.as_nanos() => {
                self.offset_nanos = self.offset_nanos.saturating_add(last.as_nanos() - shifted);
                self.regressions += 1;
                last
            }
            _ => MonotonicTs::from_nanos(shifted),
        };
        self.last = Some(ts);
        ts
    }

    pub(crate) fn last(&self) -> Option<MonotonicTs> {
        self.last
    }

    pub(crate) fn regressions(&self) -> u64 {
        self.regressions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: u64) -> MonotonicTs {
        MonotonicTs::from_nanos(n)
    }

    #[test]
    fn forward_time_passes_through() {
        let mut clock = StoreClock::default();
        assert_eq!(clock.observe(ts(5)), ts(5));
        assert_eq!(clock.observe(ts(5)), ts(5));
        assert_eq!(clock.observe(ts(9)), ts(9));
        assert_eq!(clock.regressions(), 0);
    }

    #[test]
    fn regression_clamps_then_advances_from_the_clamp() {
        let mut clock = StoreClock::default();
        clock.observe(ts(1_000));
        assert_eq!(clock.observe(ts(10)), ts(1_000));
        assert_eq!(clock.regressions(), 1);
        assert_eq!(clock.observe(ts(30)), ts(1_020));
        assert_eq!(clock.observe(ts(5)), ts(1_020));
        assert_eq!(clock.regressions(), 2);
        assert_eq!(clock.last(), Some(ts(1_020)));
    }
}
