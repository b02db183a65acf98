//! Clock-aware blocking primitive.
//!
//! Every wait in the runtime goes through [`Waiter`]: a mutex-protected state, a condvar,
//! and a deadline read from the injected clock. With the system clock a wait blocks for
//! the remaining real time; with a manual clock it blocks until the state changes or the
//! test advances time (the clock wakes registered waiters). No wait polls.

use std::fmt;
use std::sync::{Arc, Weak};

use nv_core::clock::{ClockWaker, SharedClock};
use nv_core::time::MonotonicTs;
use parking_lot::{Condvar, Mutex, MutexGuard};

/// A value guarded by a mutex, plus a condvar that clock advances also signal.
pub struct Waiter<T> {
    state: Mutex<T>,
    cond: Condvar,
    clock: SharedClock,
    /// Registered with the clock weakly; lives exactly as long as the waiter.
    _hook: Arc<dyn ClockWaker>,
}

impl<T> fmt::Debug for Waiter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter").finish_non_exhaustive()
    }
}

struct WakeHook<T> {
    target: Weak<Waiter<T>>,
}

impl<T: Send + 'static> ClockWaker for WakeHook<T> {
    fn wake(&self) {
        if let Some(w) = self.target.upgrade() {
            // Taking the lock orders this notify after any waiter's predicate check, so a
            // waiter cannot miss the wake-up between checking and sleeping.
            drop(w.state.lock());
            w.cond.notify_all();
        }
    }
}

/// Outcome of a deadline wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    Ready,
    TimedOut,
}

impl<T: Send + 'static> Waiter<T> {
    pub fn new(state: T, clock: SharedClock) -> Arc<Self> {
        let waiter = Arc::new_cyclic(|weak: &Weak<Self>| {
            let hook: Arc<dyn ClockWaker> = Arc::new(WakeHook {
                target: weak.clone(),
            });
            Self {
                state: Mutex::new(state),
                cond: Condvar::new(),
                clock: clock.clone(),
                _hook: hook,
            }
        });
        waiter.clock.register_waker(Arc::downgrade(&waiter._hook));
        waiter
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock()
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Wakes every waiter (call after changing the state under the lock).
    pub fn notify_all(&self) {
        self.cond.notify_all();
    }

    pub fn notify_one(&self) {
        self.cond.notify_one();
    }

    /// Blocks until `ready(state)` holds or `deadline` (clock time) passes. `None` waits
    /// without a deadline.
    pub fn wait_until<'a>(
        &'a self,
        guard: &mut MutexGuard<'a, T>,
        deadline: Option<MonotonicTs>,
        mut ready: impl FnMut(&mut T) -> bool,
    ) -> WaitOutcome {
        loop {
            if ready(guard) {
                return WaitOutcome::Ready;
            }
            match deadline {
                None => self.cond.wait(guard),
                Some(d) => {
                    if self.clock.now() >= d {
                        return WaitOutcome::TimedOut;
                    }
                    match self.clock.wait_budget(d) {
                        Some(budget) => {
                            // Spurious or timed-out wake-ups loop back to the checks.
                            let _timed_out = self.cond.wait_for(guard, budget);
                        }
                        None => self.cond.wait(guard),
                    }
                }
            }
        }
    }
}

/// A one-shot slot: one side fills it once, the other waits for it with a deadline.
pub struct OneShot<T> {
    waiter: Arc<Waiter<Option<T>>>,
}

impl<T> fmt::Debug for OneShot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneShot").finish_non_exhaustive()
    }
}

impl<T> Clone for OneShot<T> {
    fn clone(&self) -> Self {
        Self {
            waiter: Arc::clone(&self.waiter),
        }
    }
}

impl<T: Send + 'static> OneShot<T> {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            waiter: Waiter::new(None, clock),
        }
    }
    pub fn put(&self, value: T) {
        *self.waiter.lock() = Some(value);
        self.waiter.notify_all();
    }
    /// Takes the value if present now.
    pub fn take(&self) -> Option<T> {
        self.waiter.lock().take()
    }
    /// Waits for the value until `deadline`.
    pub fn take_until(&self, deadline: MonotonicTs) -> Option<T> {
        let mut guard = self.waiter.lock();
        self.waiter
            .wait_until(&mut guard, Some(deadline), |v| v.is_some());
        guard.take()
    }
}

/// A fixed-period schedule on the injected clock for a thread that also waits for a stop flag.
///
/// The first tick is fixed when the ticker is made, on the thread that spawns the periodic
/// one, and each later tick counts from the time the previous tick was read. A deadline
/// computed by the periodic thread itself ("now + period" at the top of its loop) would be
/// pushed past a simulated clock's advance whenever that thread started, or finished its
/// previous tick, after the advance: it would then sleep until an advance that never comes.
#[derive(Debug)]
pub struct Ticker {
    next: MonotonicTs,
    period: std::time::Duration,
}

impl Ticker {
    pub fn new(clock: &SharedClock, period: std::time::Duration) -> Self {
        Self {
            next: clock.now() + period,
            period,
        }
    }

    /// Blocks until the next tick or until `stop` holds. Returns the clock time of the tick,
    /// or `None` once stopped.
    pub fn wait(&mut self, stop: &Waiter<bool>) -> Option<MonotonicTs> {
        {
            let mut stopped = stop.lock();
            stop.wait_until(&mut stopped, Some(self.next), |s| *s);
            if *stopped {
                return None;
            }
        }
        let now = stop.clock().now();
        self.next = now + self.period;
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nv_core::clock::{ManualClock, SystemClock};
    use std::time::Duration;

    #[test]
    fn manual_clock_deadline_fires_only_when_advanced() {
        let clock = ManualClock::new();
        let shared: SharedClock = clock.clone();
        let slot: OneShot<u32> = OneShot::new(shared.clone());
        let deadline = shared.now() + Duration::from_secs(5);
        let waiting = slot.clone();
        let t = std::thread::Builder::new()
            .name("waiter".into())
            .spawn(move || waiting.take_until(deadline))
            .unwrap();
        clock.advance(Duration::from_secs(4));
        assert!(!t.is_finished(), "deadline not reached yet");
        clock.advance(Duration::from_secs(1));
        assert_eq!(t.join().unwrap(), None);
    }

    #[test]
    fn value_arrives_before_deadline() {
        let clock = SystemClock::shared();
        let slot: OneShot<u32> = OneShot::new(clock.clone());
        let filler = slot.clone();
        let t = std::thread::Builder::new()
            .name("filler".into())
            .spawn(move || filler.put(7))
            .unwrap();
        let deadline = clock.now() + Duration::from_secs(3600);
        assert_eq!(slot.take_until(deadline), Some(7));
        t.join().unwrap();
    }

    #[test]
    fn ticker_sees_an_advance_made_before_its_thread_waits() {
        let clock = ManualClock::new();
        let shared: SharedClock = clock.clone();
        let stop = Waiter::new(false, shared.clone());
        let mut ticker = Ticker::new(&shared, Duration::from_millis(250));
        // The advance lands before the periodic thread has started to wait.
        clock.advance(Duration::from_secs(2));
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let waiting = Arc::clone(&stop);
        let t = std::thread::Builder::new()
            .name("ticker".into())
            .spawn(move || {
                tx.send(ticker.wait(&waiting)).unwrap();
                // A second tick needs another advance past the period.
                tx.send(ticker.wait(&waiting)).unwrap();
            })
            .unwrap();
        let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(first, Some(MonotonicTs::from_nanos(2_000_000_000)));
        // Wait until the thread parks on the clock, then a short advance must not tick.
        clock.advance(Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "ticked before its period");
        *stop.lock() = true;
        stop.notify_all();
        assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), None);
        t.join().unwrap();
    }
}
