//! Injectable time.
//!
//! Every runtime decision that depends on time (throttle windows, restart windows, restart
//! delays, frame age, pop deadlines) reads a [`Clock`]. Production uses [`SystemClock`];
//! tests use [`ManualClock`] and move time on purpose instead of sleeping.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::time::{duration_nanos, MonotonicTs, WallTs};

/// Something that blocks on a condition and must re-check it when simulated time moves.
pub trait ClockWaker: Send + Sync {
    fn wake(&self);
}

/// Source of monotonic and wall time, plus the rule for how long a deadline wait blocks.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic time since this clock's origin.
    fn now(&self) -> MonotonicTs;
    /// Wall-clock time (for output stamps and frame age only).
    fn wall_now(&self) -> WallTs;
    /// How long a waiter whose deadline is `deadline` should block in real time before it
    /// re-checks. `None` means "block until woken": a simulated clock wakes registered
    /// waiters itself whenever it is advanced.
    fn wait_budget(&self, deadline: MonotonicTs) -> Option<Duration>;
    /// Registers a waiter to be woken when simulated time advances. Real clocks ignore it.
    fn register_waker(&self, waker: Weak<dyn ClockWaker>);
}

/// Shared handle to a clock.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: `Instant` for monotonic time, `SystemTime` for wall time.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> MonotonicTs {
        MonotonicTs::from_nanos(duration_nanos(self.origin.elapsed()))
    }
    fn wall_now(&self) -> WallTs {
        WallTs::now()
    }
    fn wait_budget(&self, deadline: MonotonicTs) -> Option<Duration> {
        Some(deadline.saturating_duration_since(self.now()))
    }
    fn register_waker(&self, _waker: Weak<dyn ClockWaker>) {}
}

/// A clock that moves only when told to. Waiters block until [`ManualClock::advance`]
/// wakes them, so tests never sleep to let time pass.
pub struct ManualClock {
    now_nanos: AtomicU64,
    wall_origin_micros: u64,
    wakers: Mutex<Vec<Weak<dyn ClockWaker>>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish_non_exhaustive()
    }
}

impl ManualClock {
    /// Starts at monotonic zero with wall time 2026-01-01T00:00:00Z.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            now_nanos: AtomicU64::new(0),
            wall_origin_micros: 1_767_225_600_000_000,
            wakers: Mutex::new(Vec::new()),
        })
    }

    /// Moves time forward and wakes every registered waiter.
    pub fn advance(&self, by: Duration) {
        self.now_nanos
            .fetch_add(duration_nanos(by), Ordering::SeqCst);
        let live: Vec<Arc<dyn ClockWaker>> = {
            let mut wakers = self.wakers.lock();
            wakers.retain(|w| w.strong_count() > 0);
            wakers.iter().filter_map(Weak::upgrade).collect()
        };
        for waker in live {
            waker.wake();
        }
    }

    /// Number of live registered waiters (lets tests know a thread is parked on the clock).
    pub fn waiter_count(&self) -> usize {
        self.wakers
            .lock()
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> MonotonicTs {
        MonotonicTs::from_nanos(self.now_nanos.load(Ordering::SeqCst))
    }
    fn wall_now(&self) -> WallTs {
        WallTs::from_micros(self.wall_origin_micros + self.now_nanos.load(Ordering::SeqCst) / 1_000)
    }
    fn wait_budget(&self, _deadline: MonotonicTs) -> Option<Duration> {
        None
    }
    fn register_waker(&self, waker: Weak<dyn ClockWaker>) {
        let mut wakers = self.wakers.lock();
        wakers.retain(|w| w.strong_count() > 0);
        wakers.push(waker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counter(AtomicUsize);
    impl ClockWaker for Counter {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn manual_clock_advances_and_wakes() {
        let clock = ManualClock::new();
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let weak: Weak<dyn ClockWaker> = Arc::downgrade(&counter) as Weak<dyn ClockWaker>;
        clock.register_waker(weak);
        assert_eq!(clock.now(), MonotonicTs::ZERO);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now().as_nanos(), 1_500_000_000);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(clock.wait_budget(MonotonicTs::from_nanos(u64::MAX)), None);
        drop(counter);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.waiter_count(), 0);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        assert_eq!(clock.wait_budget(a), Some(Duration::ZERO));
    }
}
