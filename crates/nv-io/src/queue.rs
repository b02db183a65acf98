//! The bounded queue used between threads (source → feed worker, feed worker → sink).
//!
//! One mutex-protected `VecDeque` with two condvars. Producers and consumers are woken
//! only when the other side is actually parked, so a busy pipeline pays no futex calls.
//! Rejected items are handed back so the caller can count and report them.

use std::collections::VecDeque;
use std::sync::Arc;

use nv_core::clock::SharedClock;
use nv_core::time::MonotonicTs;
use parking_lot::{Condvar, Mutex, MutexGuard};

use nv_core::clock::ClockWaker;

/// What a full queue does with a new item (defined with the other policies in nv-core).
pub use nv_core::policy::Overflow;

/// Result of a push.
#[derive(Debug)]
pub enum Push<T> {
    Accepted,
    /// Accepted after evicting the oldest item, which is returned.
    Evicted(T),
    /// Queue full under `DropNewest`: the item is returned.
    Rejected(T),
    /// Queue closed: the item is returned.
    Closed(T),
    /// `Block` with a deadline: no space before the deadline; the item is returned.
    TimedOut(T),
}

/// Result of a pop.
#[derive(Debug)]
pub enum Pop<T> {
    /// An item and the clock time it was pushed.
    Item(T, MonotonicTs),
    /// Closed and empty.
    Closed,
    /// Woken by [`BoundedQueue::wake`] (control-plane change).
    Woken,
    TimedOut,
}

struct State<T> {
    items: VecDeque<(T, MonotonicTs)>,
    closed: bool,
    wake_pending: bool,
    consumers_parked: usize,
    producers_parked: usize,
    /// A pool task pushed under `Block` into a full queue and wants the producer signal
    /// once the queue has drained to half its capacity (see [`QueueSignals`]).
    producer_armed: bool,
}

/// Callbacks for consumers and producers that are tasks on a scheduler rather than
/// threads parked on the queue's condvars.
pub trait QueueSignal: Send + Sync {
    fn signal(&self);
}

/// A consumer task that a producer blocked on the full queue may run on its own thread
/// for one turn instead of parking (see [`BoundedQueue::set_consumer_helper`]).
pub trait QueueHelper: Send + Sync {
    /// Runs one turn of the consumer here if nobody else is running it and it may run on
    /// a foreign thread now (else does nothing); the producer looks at the queue again
    /// either way.
    fn help(&self);
}

/// The queue's optional task-side signals, set once.
struct QueueSignals {
    /// Called when the queue goes from empty to non-empty, on `wake` and on `close`.
    consumer: std::sync::OnceLock<Arc<dyn QueueSignal>>,
    /// Called when an armed producer (see [`BoundedQueue::try_push_or_arm`]) may push again.
    producer: std::sync::OnceLock<Arc<dyn QueueSignal>>,
    /// Run by a producer that would park under `Block` (see [`QueueHelper`]).
    helper: std::sync::OnceLock<Arc<dyn QueueHelper>>,
}

/// Bounded multi-producer queue with per-push overflow policy.
pub struct BoundedQueue<T> {
    state: Mutex<State<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
    clock: SharedClock,
    hook: Mutex<Option<Arc<dyn ClockWaker>>>,
    signals: QueueSignals,
}

impl<T> std::fmt::Debug for BoundedQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedQueue")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

struct QueueHook<T> {
    queue: std::sync::Weak<BoundedQueue<T>>,
}

impl<T: Send + 'static> ClockWaker for QueueHook<T> {
    fn wake(&self) {
        if let Some(q) = self.queue.upgrade() {
            drop(q.state.lock());
            q.not_empty.notify_all();
            q.not_full.notify_all();
        }
    }
}

impl<T: Send + 'static> BoundedQueue<T> {
    /// `capacity` is clamped to at least 1.
    pub fn new(capacity: usize, clock: SharedClock) -> Arc<Self> {
        let capacity = capacity.max(1);
        let queue = Arc::new(Self {
            state: Mutex::new(State {
                // Grows on demand: a huge capacity costs nothing until it is used.
                items: VecDeque::with_capacity(capacity.min(64)),
                closed: false,
                wake_pending: false,
                consumers_parked: 0,
                producers_parked: 0,
                producer_armed: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
            clock,
            hook: Mutex::new(None),
            signals: QueueSignals {
                consumer: std::sync::OnceLock::new(),
                producer: std::sync::OnceLock::new(),
                helper: std::sync::OnceLock::new(),
            },
        });
        let hook: Arc<dyn ClockWaker> = Arc::new(QueueHook {
            queue: Arc::downgrade(&queue),
        });
        queue.clock.register_waker(Arc::downgrade(&hook));
        *queue.hook.lock() = Some(hook);
        queue
    }

    /// Sets the consumer's task signal (once; later calls are ignored). It is called
    /// when an item lands in an empty queue, on [`wake`](Self::wake) and on
    /// [`close`](Self::close): a consumer task that stops on an empty queue is
    /// scheduled again by the next push.
    pub fn set_consumer_signal(&self, signal: Arc<dyn QueueSignal>) {
        let _already = self.signals.consumer.set(signal);
    }

    /// Sets the producer's task signal (once); see [`try_push_or_arm`](Self::try_push_or_arm).
    pub fn set_producer_signal(&self, signal: Arc<dyn QueueSignal>) {
        let _already = self.signals.producer.set(signal);
    }

    /// Sets the consumer a producer blocked under `Block` runs itself (once; later calls
    /// are ignored). A producer that finds the queue full then first asks the helper to
    /// run the consumer's turn on the producer's thread: the producer could not go on
    /// anyway, and running the consumer there saves two thread switches (the producer's
    /// park and the consumer's wake-up) per turn. Once per wait: if the queue is still
    /// full afterwards (the consumer is running elsewhere, or held), the producer parks.
    pub fn set_consumer_helper(&self, helper: Arc<dyn QueueHelper>) {
        let _already = self.signals.helper.set(helper);
    }

    fn signal_consumer(&self) {
        if let Some(s) = self.signals.consumer.get() {
            s.signal();
        }
    }

    fn signal_producer(&self) {
        if let Some(s) = self.signals.producer.get() {
            s.signal();
        }
    }

    /// `Block` for a producer that must not park (a task on a scheduler): pushes if
    /// there is room; if the queue is full, hands the item back as [`Push::TimedOut`] and
    /// arms the producer signal, which fires once the queue has drained to half its
    /// capacity (or is closed or drained).
    pub fn try_push_or_arm(&self, item: T) -> Push<T> {
        let mut st = self.state.lock();
        if st.closed {
            return Push::Closed(item);
        }
        if st.items.len() >= self.capacity {
            st.producer_armed = true;
            return Push::TimedOut(item);
        }
        let was_empty = st.items.is_empty();
        st.items.push_back((item, self.clock.now()));
        let wake = st.consumers_parked > 0;
        drop(st);
        if wake {
            self.not_empty.notify_one();
        }
        if was_empty {
            self.signal_consumer();
        }
        Push::Accepted
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Pushes `item` under `overflow`. `Block` waits for space (or close) without a
    /// deadline: lossless pipelines apply backpressure all the way to the producer.
    pub fn push(&self, item: T, overflow: Overflow) -> Push<T> {
        self.push_until(item, overflow, None)
    }

    /// Like [`push`](Self::push); under `Block`, gives up at `deadline` (clock time) and
    /// hands the item back as [`Push::TimedOut`].
    pub fn push_until(
        &self,
        item: T,
        overflow: Overflow,
        deadline: Option<MonotonicTs>,
    ) -> Push<T> {
        let mut st = self.state.lock();
        if st.closed {
            return Push::Closed(item);
        }
        let mut result = Push::Accepted;
        if st.items.len() >= self.capacity {
            match overflow {
                Overflow::DropNewest => return Push::Rejected(item),
                Overflow::DropOldest => {
                    if let Some((old, _)) = st.items.pop_front() {
                        result = Push::Evicted(old);
                    }
                }
                Overflow::Block => {
                    let mut may_help = true;
                    while st.items.len() >= self.capacity && !st.closed {
                        if may_help {
                            may_help = false;
                            if let Some(h) = self.signals.helper.get() {
                                // Whether it ran or not, the queue may have drained while
                                // unlocked (and nobody was parked to be woken): look again.
                                MutexGuard::unlocked(&mut st, || h.help());
                                continue;
                            }
                        }
                        let budget = match deadline {
                            None => None,
                            Some(d) => {
                                if self.clock.now() >= d {
                                    return Push::TimedOut(item);
                                }
                                self.clock.wait_budget(d)
                            }
                        };
                        st.producers_parked += 1;
                        match budget {
                            Some(b) => {
                                let _timed_out = self.not_full.wait_for(&mut st, b);
                            }
                            None => self.not_full.wait(&mut st),
                        }
                        st.producers_parked -= 1;
                        may_help = true;
                    }
                    if st.closed {
                        return Push::Closed(item);
                    }
                }
            }
        }
        let was_empty = st.items.is_empty();
        st.items.push_back((item, self.clock.now()));
        let wake = st.consumers_parked > 0;
        drop(st);
        if wake {
            self.not_empty.notify_one();
        }
        if was_empty {
            self.signal_consumer();
        }
        result
    }

    /// Pops the next item. Priority: a pending wake first (control changes apply at once),
    /// then queued items, then close, so frames queued before end-of-stream are still
    /// processed. Waits until `deadline`
    /// (clock time; `None` = no deadline).
    pub fn pop(&self, deadline: Option<MonotonicTs>) -> Pop<T> {
        self.pop_inner(deadline, true)
    }

    /// [`pop`](Self::pop) without waiting and without waking producers: a consumer task
    /// that pops a burst calls [`release_producers`](Self::release_producers) once at the
    /// end of its turn, so a producer blocked on the full queue is woken once per burst
    /// instead of once per half a queue (with many feeds on few cores, each wake-up is a
    /// futex call the consumer pays).
    pub fn pop_deferred(&self) -> Pop<T> {
        self.pop_inner(Some(MonotonicTs::ZERO), false)
    }

    /// Wakes the producers a [`pop_deferred`](Self::pop_deferred) burst left due.
    pub fn release_producers(&self) {
        let mut st = self.state.lock();
        let wake_producers = self.producers_due(&st);
        let armed = self.take_armed(&mut st);
        drop(st);
        if wake_producers {
            self.not_full.notify_all();
        }
        if armed {
            self.signal_producer();
        }
    }

    fn pop_inner(&self, deadline: Option<MonotonicTs>, wake: bool) -> Pop<T> {
        let mut st = self.state.lock();
        loop {
            // A control-plane wake (pause, stop, source tick request) is answered before
            // queued items so it takes effect at once; the items stay queued.
            if st.wake_pending {
                st.wake_pending = false;
                return Pop::Woken;
            }
            if let Some((item, pushed_at)) = st.items.pop_front() {
                let wake_producers = wake && self.producers_due(&st);
                let armed = wake && self.take_armed(&mut st);
                drop(st);
                if wake_producers {
                    self.not_full.notify_all();
                }
                if armed {
                    self.signal_producer();
                }
                return Pop::Item(item, pushed_at);
            }
            if st.closed {
                return Pop::Closed;
            }
            let budget = match deadline {
                None => None,
                Some(d) => {
                    if self.clock.now() >= d {
                        return Pop::TimedOut;
                    }
                    self.clock.wait_budget(d)
                }
            };
            st.consumers_parked += 1;
            match budget {
                Some(b) => {
                    let _timed_out = self.not_empty.wait_for(&mut st, b);
                }
                None => self.not_empty.wait(&mut st),
            }
            st.consumers_parked -= 1;
        }
    }

    /// Non-blocking pop.
    pub fn try_pop(&self) -> Option<(T, MonotonicTs)> {
        let mut st = self.state.lock();
        let item = st.items.pop_front();
        let wake_producers = item.is_some() && self.producers_due(&st);
        let armed = item.is_some() && self.take_armed(&mut st);
        drop(st);
        if wake_producers {
            self.not_full.notify_all();
        }
        if armed {
            self.signal_producer();
        }
        item
    }

    /// Disarms and reports an armed producer once the queue is at half capacity or below
    /// (the same mark as parked producers).
    fn take_armed(&self, st: &mut State<T>) -> bool {
        if st.producer_armed && st.items.len() <= self.capacity / 2 {
            st.producer_armed = false;
            return true;
        }
        false
    }

    /// Takes a pending [`wake`](Self::wake) without popping (for a consumer task, which
    /// learns of control changes elsewhere and only needs to know a wake was asked for).
    pub fn take_wake(&self) -> bool {
        std::mem::take(&mut self.state.lock().wake_pending)
    }

    /// Producers blocked on a full queue are woken once it has drained to half its
    /// capacity, not after every pop: a saturated `Block` pipeline then switches threads
    /// once per `capacity / 2` items instead of once per item, and the producer refills
    /// in a burst. No deadlock: a consumer parks only on an empty queue, which is below
    /// the mark, and `close`/`drain` wake everyone.
    fn producers_due(&self, st: &State<T>) -> bool {
        st.producers_parked > 0 && st.items.len() <= self.capacity / 2
    }

    /// Makes a parked (or the next) `pop` return [`Pop::Woken`], ahead of queued items.
    pub fn wake(&self) {
        let mut st = self.state.lock();
        st.wake_pending = true;
        drop(st);
        self.not_empty.notify_all();
        self.signal_consumer();
    }

    /// Closes the queue: pushes fail, pops drain what is left, blocked producers return.
    pub fn close(&self) {
        let mut st = self.state.lock();
        st.closed = true;
        let armed = std::mem::take(&mut st.producer_armed);
        drop(st);
        self.not_empty.notify_all();
        self.not_full.notify_all();
        self.signal_consumer();
        if armed {
            self.signal_producer();
        }
    }

    /// Removes and returns everything queued.
    pub fn drain(&self) -> Vec<T> {
        let mut st = self.state.lock();
        let items: Vec<T> = st.items.drain(..).map(|(t, _)| t).collect();
        let armed = std::mem::take(&mut st.producer_armed);
        drop(st);
        self.not_full.notify_all();
        if armed {
            self.signal_producer();
        }
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nv_core::clock::{Clock, ManualClock, SystemClock};
    use proptest::prelude::*;
    use std::time::Duration;

    fn queue(cap: usize) -> Arc<BoundedQueue<u32>> {
        BoundedQueue::new(cap, SystemClock::shared())
    }

    /// The consumer drains the queue elsewhere while the producer asks for help: nobody
    /// was parked, so nobody is woken.
    struct DrainedElsewhere(std::sync::Weak<BoundedQueue<u32>>);

    impl QueueHelper for DrainedElsewhere {
        fn help(&self) {
            if let Some(q) = self.0.upgrade() {
                while q.try_pop().is_some() {}
            }
        }
    }

    #[test]
    fn a_producer_looks_again_after_asking_for_help() {
        let q = queue(2);
        q.set_consumer_helper(Arc::new(DrainedElsewhere(Arc::downgrade(&q))));
        q.push(1, Overflow::Block);
        q.push(2, Overflow::Block);
        // Full: the helper empties it (nobody is parked, so nobody is woken); the push
        // must see the room instead of parking for a wake-up that never comes.
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let q2 = Arc::clone(&q);
        let pusher = std::thread::Builder::new()
            .name("pusher".into())
            .spawn(move || {
                let pushed = matches!(q2.push(3, Overflow::Block), Push::Accepted);
                done_tx.send(pushed).unwrap();
            })
            .unwrap();
        let pushed = done.recv_timeout(Duration::from_secs(30));
        if pushed.is_err() {
            q.close();
        }
        pusher.join().unwrap();
        assert_eq!(pushed, Ok(true));
        assert!(matches!(q.try_pop(), Some((3, _))));
    }

    #[test]
    fn drop_oldest_and_newest_exact() {
        let q = queue(2);
        assert!(matches!(q.push(1, Overflow::DropOldest), Push::Accepted));
        assert!(matches!(q.push(2, Overflow::DropOldest), Push::Accepted));
        assert!(matches!(q.push(3, Overflow::DropOldest), Push::Evicted(1)));
        assert!(matches!(q.push(4, Overflow::DropNewest), Push::Rejected(4)));
        assert!(matches!(q.pop(None), Pop::Item(2, _)));
        assert!(matches!(q.pop(None), Pop::Item(3, _)));
    }

    #[test]
    fn items_before_close_then_closed() {
        let q = queue(4);
        q.push(1, Overflow::Block);
        q.close();
        assert!(matches!(q.push(2, Overflow::Block), Push::Closed(2)));
        assert!(matches!(q.pop(None), Pop::Item(1, _)));
        assert!(matches!(q.pop(None), Pop::Closed));
    }

    #[test]
    fn wake_returns_woken_once() {
        let q = queue(1);
        q.wake();
        assert!(matches!(q.pop(None), Pop::Woken));
        q.push(5, Overflow::Block);
        q.wake();
        assert!(
            matches!(q.pop(None), Pop::Woken),
            "a wake is answered before items"
        );
        assert!(
            matches!(q.pop(None), Pop::Item(5, _)),
            "and the item stays queued"
        );
    }

    #[test]
    fn block_waits_for_space_and_close_releases() {
        let q = queue(1);
        q.push(1, Overflow::Block);
        let producer = Arc::clone(&q);
        let t = std::thread::Builder::new()
            .name("producer".into())
            .spawn(move || matches!(producer.push(2, Overflow::Block), Push::Accepted))
            .unwrap();
        assert!(matches!(q.pop(None), Pop::Item(1, _)));
        assert!(matches!(q.pop(None), Pop::Item(2, _)));
        assert!(t.join().unwrap());
        q.push(3, Overflow::Block);
        let producer = Arc::clone(&q);
        let t = std::thread::Builder::new()
            .name("producer".into())
            .spawn(move || matches!(producer.push(4, Overflow::Block), Push::Closed(4)))
            .unwrap();
        // Wait until the producer is parked, observed through the queue's own state.
        while q.state.lock().producers_parked == 0 {
            std::thread::yield_now();
        }
        q.close();
        assert!(t.join().unwrap());
    }

    /// Fills `q` (capacity 4) with 0..4 and returns a thread parked pushing 4; it
    /// returns whether that push was accepted.
    fn parked_producer_of_a_full_queue(
        q: &Arc<BoundedQueue<u32>>,
    ) -> std::thread::JoinHandle<bool> {
        for i in 0..4 {
            q.push(i, Overflow::Block);
        }
        let producer = Arc::clone(q);
        let t = std::thread::Builder::new()
            .name("producer".into())
            .spawn(move || matches!(producer.push(4, Overflow::Block), Push::Accepted))
            .unwrap();
        while q.state.lock().producers_parked == 0 {
            std::thread::yield_now();
        }
        t
    }

    #[test]
    fn a_blocked_producer_is_woken_at_half_capacity() {
        let q = queue(4);
        let t = parked_producer_of_a_full_queue(&q);
        assert!(matches!(q.pop(None), Pop::Item(0, _)));
        // Three left, above the mark: the producer is not woken for one free slot.
        assert_eq!(q.state.lock().producers_parked, 1);
        assert!(matches!(q.pop(None), Pop::Item(1, _)));
        // Two left: woken, it completes its push.
        assert!(t.join().unwrap());
        let rest: Vec<u32> = std::iter::from_fn(|| q.try_pop().map(|(i, _)| i)).collect();
        assert_eq!(rest, [2, 3, 4]);
    }

    #[test]
    fn a_deferred_burst_wakes_the_blocked_producer_once_at_its_end() {
        let q = queue(4);
        let producer_signal = Arc::new(CountSignal::default());
        q.set_producer_signal(Arc::clone(&producer_signal) as Arc<dyn QueueSignal>);
        let t = parked_producer_of_a_full_queue(&q);
        for i in 0..4 {
            assert!(matches!(q.pop_deferred(), Pop::Item(x, _) if x == i));
        }
        assert!(matches!(q.pop_deferred(), Pop::TimedOut), "empty: no wait");
        // Empty, far below the mark, and still parked: the burst defers the wake.
        assert_eq!(q.state.lock().producers_parked, 1);
        q.release_producers();
        assert!(t.join().unwrap());
        assert!(matches!(q.try_pop(), Some((4, _))));
        // An armed task producer is signalled by the release too, once.
        for i in 0..4 {
            assert!(matches!(q.try_push_or_arm(i), Push::Accepted));
        }
        assert!(matches!(q.try_push_or_arm(9), Push::TimedOut(9)));
        while matches!(q.pop_deferred(), Pop::Item(..)) {}
        assert_eq!(producer_signal.count(), 0);
        q.release_producers();
        q.release_producers();
        assert_eq!(producer_signal.count(), 1);
    }

    #[test]
    fn deadline_follows_manual_clock() {
        let clock = ManualClock::new();
        let q: Arc<BoundedQueue<u32>> = BoundedQueue::new(1, clock.clone());
        let deadline = clock.now() + Duration::from_secs(10);
        let consumer = Arc::clone(&q);
        let t = std::thread::Builder::new()
            .name("consumer".into())
            .spawn(move || matches!(consumer.pop(Some(deadline)), Pop::TimedOut))
            .unwrap();
        while q.state.lock().consumers_parked == 0 {
            std::thread::yield_now();
        }
        clock.advance(Duration::from_secs(9));
        assert!(!t.is_finished());
        clock.advance(Duration::from_secs(1));
        assert!(t.join().unwrap());
    }

    #[derive(Default)]
    struct CountSignal(std::sync::atomic::AtomicUsize);

    impl QueueSignal for CountSignal {
        fn signal(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    impl CountSignal {
        fn count(&self) -> usize {
            self.0.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[test]
    fn consumer_signal_fires_on_empty_to_non_empty_wake_and_close() {
        let q = queue(4);
        let consumer = Arc::new(CountSignal::default());
        q.set_consumer_signal(Arc::clone(&consumer) as Arc<dyn QueueSignal>);
        q.push(1, Overflow::Block);
        q.push(2, Overflow::Block);
        assert_eq!(consumer.count(), 1, "only the push into the empty queue");
        assert!(q.try_pop().is_some());
        q.push(3, Overflow::Block);
        assert_eq!(consumer.count(), 1, "the queue was not empty");
        while q.try_pop().is_some() {}
        q.push(4, Overflow::DropOldest);
        assert_eq!(consumer.count(), 2);
        q.wake();
        assert!(q.take_wake());
        assert!(!q.take_wake(), "a wake is taken once");
        assert_eq!(consumer.count(), 3);
        q.close();
        assert_eq!(consumer.count(), 4);
    }

    #[test]
    fn an_armed_producer_is_signalled_at_half_capacity_once() {
        let q = queue(4);
        let producer = Arc::new(CountSignal::default());
        q.set_producer_signal(Arc::clone(&producer) as Arc<dyn QueueSignal>);
        for i in 0..4 {
            assert!(matches!(q.try_push_or_arm(i), Push::Accepted));
        }
        assert!(matches!(q.try_push_or_arm(4), Push::TimedOut(4)));
        assert!(q.try_pop().is_some());
        assert_eq!(producer.count(), 0, "three left, above the mark");
        assert!(q.try_pop().is_some());
        assert_eq!(producer.count(), 1, "two left: signalled");
        assert!(q.try_pop().is_some());
        assert_eq!(producer.count(), 1, "disarmed after one signal");
        // Armed again, then the queue closes: the producer hears of it.
        for i in 0..3 {
            assert!(matches!(q.try_push_or_arm(i), Push::Accepted));
        }
        assert!(matches!(q.try_push_or_arm(9), Push::TimedOut(9)));
        q.close();
        assert_eq!(producer.count(), 2);
        assert!(matches!(q.try_push_or_arm(9), Push::Closed(9)));
    }

    #[derive(Clone, Debug)]
    enum Op {
        PushOldest,
        PushNewest,
        Pop,
    }

    proptest! {
        /// The queue behaves like a VecDeque model with the same capacity rules, and every
        /// item is accounted for exactly once (delivered, evicted, rejected or queued).
        #[test]
        fn matches_model(cap in 1usize..6, ops in prop::collection::vec(prop_oneof![Just(Op::PushOldest), Just(Op::PushNewest), Just(Op::Pop)], 0..200)) {
            let q = queue(cap);
            let mut model: VecDeque<u32> = VecDeque::new();
            let (mut next, mut delivered, mut evicted, mut rejected) = (0u32, 0u64, 0u64, 0u64);
            for op in ops {
                match op {
                    Op::PushOldest | Op::PushNewest => {
                        let overflow = if matches!(op, Op::PushOldest) { Overflow::DropOldest } else { Overflow::DropNewest };
                        let r = q.push(next, overflow);
                        if model.len() >= cap {
                            if overflow == Overflow::DropOldest {
                                let old = model.pop_front().unwrap();
                                prop_assert!(matches!(r, Push::Evicted(x) if x == old));
                                model.push_back(next);
                                evicted += 1;
                            } else {
                                prop_assert!(matches!(r, Push::Rejected(x) if x == next));
                                rejected += 1;
                            }
                        } else {
                            prop_assert!(matches!(r, Push::Accepted));
                            model.push_back(next);
                        }
                        next += 1;
                    }
                    Op::Pop => match (q.try_pop(), model.pop_front()) {
                        (Some((a, _)), Some(b)) => { prop_assert_eq!(a, b); delivered += 1; }
                        (None, None) => {}
                        (a, b) => prop_assert!(false, "queue {:?} vs model {:?}", a.map(|x| x.0), b),
                    },
                }
                prop_assert!(q.len() <= cap);
            }
            prop_assert_eq!(delivered + evicted + rejected + q.len() as u64, u64::from(next));
        }
    }
}
