//! Coalescing of per-frame health events.
//!
//! First occurrence: emit at once. While the condition persists: at most one event per
//! window, carrying the count since the previous event. `flush` emits the remainder, so
//! the counts in emitted events always sum to the number of occurrences.

use std::time::Duration;

use nv_core::time::MonotonicTs;

/// Default throttle window.
pub const DEFAULT_THROTTLE_WINDOW: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct Throttle {
    window: Duration,
    pending: u64,
    last_emit: Option<MonotonicTs>,
}

impl Throttle {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            pending: 0,
            last_emit: None,
        }
    }

    /// Records `n` occurrences at `now`; returns the count to emit, if an event is due.
    pub fn record(&mut self, n: u64, now: MonotonicTs) -> Option<u64> {
        self.pending += n;
        let due = match self.last_emit {
            None => true,
            Some(last) => now.saturating_duration_since(last) >= self.window,
        };
        if due && self.pending > 0 {
            self.last_emit = Some(now);
            Some(std::mem::take(&mut self.pending))
        } else {
            None
        }
    }

    /// Returns the count not yet emitted, if any, and resets the burst so the next
    /// occurrence is emitted at once.
    pub fn flush(&mut self) -> Option<u64> {
        self.last_emit = None;
        (self.pending > 0).then(|| std::mem::take(&mut self.pending))
    }

    pub fn pending(&self) -> u64 {
        self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(ms: u64) -> MonotonicTs {
        MonotonicTs::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn first_immediate_then_windowed() {
        let mut t = Throttle::new(Duration::from_secs(1));
        assert_eq!(t.record(1, at(0)), Some(1));
        assert_eq!(t.record(1, at(100)), None);
        assert_eq!(t.record(1, at(999)), None);
        assert_eq!(t.record(1, at(1000)), Some(3));
        assert_eq!(t.record(1, at(1001)), None);
        assert_eq!(t.flush(), Some(1));
        assert_eq!(t.flush(), None);
        assert_eq!(t.record(1, at(1002)), Some(1), "new burst emits at once");
    }

    proptest! {
        #[test]
        fn counts_are_conserved(steps in prop::collection::vec((1u64..5, 0u64..700), 0..300)) {
            let mut t = Throttle::new(Duration::from_secs(1));
            let (mut now, mut total, mut emitted, mut events) = (0u64, 0u64, 0u64, 0u64);
            for (n, dt) in steps {
                now += dt;
                total += n;
                if let Some(c) = t.record(n, at(now)) { emitted += c; events += 1; }
            }
            emitted += t.flush().unwrap_or(0);
            prop_assert_eq!(emitted, total);
            // At most one event per window plus the first.
            prop_assert!(events <= now / 1000 + 1);
        }
    }
}
