//! Coalesced health events that build themselves once and flush on their own deadline.
//!
//! A [`Coalesced`] owns one kind of event for one owner (a feed, a stage, a batch point, a
//! sink queue): the function that builds the event from a count and the detail gathered
//! since the previous event, a [`Throttle`], and the health sender. The first occurrence is
//! emitted at once; later ones at most once per window, carrying the count since the
//! previous event. A count still pending when its window has passed is emitted by the
//! engine's timer thread ([`Coalescers::poll`], driven by the injected clock) even if no
//! further occurrence comes, and the rest on [`Coalesced::flush`] or drop. So the counts
//! of emitted events always sum to the occurrences, and no owner has to remember to flush.

use std::sync::{Arc, Weak};
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::health::HealthEvent;
use nv_core::time::MonotonicTs;
use parking_lot::Mutex;

use crate::broadcast;
use crate::throttle::Throttle;

type Build<D> = Box<dyn Fn(u64, D) -> HealthEvent + Send + Sync>;

struct State<D> {
    throttle: Throttle,
    /// Gathered since the previous event (the latest error, the peak age, ...).
    detail: D,
}

struct Slot<D> {
    state: Mutex<State<D>>,
    build: Build<D>,
    health: broadcast::Sender<HealthEvent>,
    clock: SharedClock,
}

impl<D: Default> Slot<D> {
    /// Emits `count` with the detail gathered so far; called with the state locked, so
    /// events of one slot leave in the order their counts were taken.
    fn emit(&self, state: &mut State<D>, count: u64) {
        let detail = std::mem::take(&mut state.detail);
        self.health.send((self.build)(count, detail));
    }

    fn flush(&self) {
        let mut state = self.state.lock();
        if let Some(count) = state.throttle.flush() {
            self.emit(&mut state, count);
        }
    }
}

/// What the timer thread calls.
trait Due: Send + Sync {
    fn poll(&self, now: MonotonicTs);
}

impl<D: Default + Send> Due for Slot<D> {
    fn poll(&self, now: MonotonicTs) {
        let mut state = self.state.lock();
        // Zero new occurrences: emits the pending count once its window has passed.
        if let Some(count) = state.throttle.record(0, now) {
            self.emit(&mut state, count);
        }
    }
}

/// The coalescers of one runtime, polled by its timer thread (weak: dropping a
/// [`Coalesced`] removes it).
#[derive(Default)]
pub struct Coalescers {
    slots: Mutex<Vec<Weak<dyn Due>>>,
}

impl std::fmt::Debug for Coalescers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescers")
            .field("slots", &self.slots.lock().len())
            .finish()
    }
}

impl Coalescers {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Emits every pending count whose window has passed at `now`.
    pub fn poll(&self, now: MonotonicTs) {
        let live: Vec<Arc<dyn Due>> = {
            let mut slots = self.slots.lock();
            slots.retain(|w| w.strong_count() > 0);
            slots.iter().filter_map(Weak::upgrade).collect()
        };
        for slot in live {
            slot.poll(now);
        }
    }
}

/// One coalesced event kind (see the module docs). `D` is the detail gathered between
/// events; it starts at `D::default()` after each event.
pub struct Coalesced<D: Default + Send + 'static> {
    slot: Arc<Slot<D>>,
}

impl<D: Default + Send + 'static> std::fmt::Debug for Coalesced<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalesced")
            .field("pending", &self.slot.state.lock().throttle.pending())
            .finish()
    }
}

impl<D: Default + Send + 'static> Coalesced<D> {
    pub fn new(
        registry: &Coalescers,
        window: Duration,
        health: broadcast::Sender<HealthEvent>,
        clock: SharedClock,
        build: impl Fn(u64, D) -> HealthEvent + Send + Sync + 'static,
    ) -> Self {
        let slot = Arc::new(Slot {
            state: Mutex::new(State {
                throttle: Throttle::new(window),
                detail: D::default(),
            }),
            build: Box::new(build),
            health,
            clock,
        });
        let weak: Weak<dyn Due> = Arc::downgrade(&slot) as Weak<dyn Due>;
        registry.slots.lock().push(weak);
        Self { slot }
    }

    /// Counts `n` occurrences at the clock's now, folding their detail in with `gather`;
    /// emits the event if one is due.
    pub fn record(&self, n: u64, gather: impl FnOnce(&mut D)) {
        self.record_at(n, self.slot.clock.now(), gather);
    }

    /// [`Self::record`] at a time the caller already read.
    pub fn record_at(&self, n: u64, now: MonotonicTs, gather: impl FnOnce(&mut D)) {
        let mut state = self.slot.state.lock();
        gather(&mut state.detail);
        if let Some(count) = state.throttle.record(n, now) {
            self.slot.emit(&mut state, count);
        }
    }

    /// Emits what is pending now and starts a new burst (the next occurrence is emitted
    /// at once).
    pub fn flush(&self) {
        self.slot.flush();
    }
}

impl<D: Default + Send + 'static> Drop for Coalesced<D> {
    fn drop(&mut self) {
        self.slot.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nv_core::clock::{Clock, ManualClock};
    use nv_core::id::FeedId;

    fn lag(feed: u64, count: u64, peak: u64) -> HealthEvent {
        HealthEvent::FrameLag {
            feed_id: FeedId::new(feed),
            frame_age_ms: peak,
            frames_lagged: count,
        }
    }

    fn drain(rx: &mut broadcast::Receiver<HealthEvent>) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        while let Ok(HealthEvent::FrameLag {
            frame_age_ms,
            frames_lagged,
            ..
        }) = rx.try_recv()
        {
            out.push((frames_lagged, frame_age_ms));
        }
        out
    }

    #[test]
    fn pending_counts_leave_on_their_deadline_and_sum_exactly() {
        let clock = ManualClock::new();
        let tx = broadcast::channel(64);
        let mut rx = tx.subscribe();
        let registry = Coalescers::new();
        let c: Coalesced<u64> = Coalesced::new(
            &registry,
            Duration::from_secs(1),
            tx,
            clock.clone(),
            |count, peak| lag(1, count, peak),
        );
        let peak = |age: u64| move |p: &mut u64| *p = (*p).max(age);
        c.record(1, peak(10));
        c.record(1, peak(30));
        c.record(1, peak(20));
        assert_eq!(drain(&mut rx), vec![(1, 10)], "first at once");
        registry.poll(clock.now());
        assert_eq!(drain(&mut rx), vec![], "window not over");
        clock.advance(Duration::from_secs(1));
        registry.poll(clock.now());
        assert_eq!(
            drain(&mut rx),
            vec![(2, 30)],
            "pending left on its own deadline"
        );
        registry.poll(clock.now());
        assert_eq!(drain(&mut rx), vec![], "nothing pending");
        c.record(4, peak(5));
        drop(c);
        assert_eq!(drain(&mut rx), vec![(4, 5)], "the rest on drop");
        registry.poll(clock.now());
        assert!(
            registry.slots.lock().is_empty(),
            "dropped slots leave the registry"
        );
    }
}
