//! The scheduler: feed workers and sink delivery as tasks on a small pool of named threads
//! sized to the cores, instead of one or two OS threads per feed.
//!
//! A task is scheduled when it has work (a frame landed in its empty queue, a control
//! change, a timer, a sink queue that drained) and runs on one pool thread at a time, for
//! at most a quantum of work, then goes to the back of the run queue if more is pending:
//! per-task order is kept and every runnable task gets a turn. The run queue holds each
//! task at most once, so it is bounded by the number of tasks (feeds x 2).
//!
//! Stuck calls: a task cannot be interrupted, so a stage or sink stuck inside a call holds
//! its pool thread. The runtime's watchdog asks the pool every check period how many
//! threads have been inside one task for longer than `blocked_after`; for each such thread
//! the pool starts one spare thread (`nv-pool-spare-{n}`), up to `max_spares`, so the
//! other feeds keep `threads` running threads. Spares leave when the blocked threads come
//! back. Beyond `max_spares` stuck calls, the remaining threads serve everyone (and when
//! all are stuck, other feeds wait: their queues fill and drop by their own policy,
//! counted). See ARCHITECTURE.md.

mod spin;
mod task;
mod timer;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use nv_core::clock::SharedClock;
use nv_core::time::MonotonicTs;
use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::sync::Waiter;
pub(crate) use task::{Poll, Task, TaskCell, TaskCx};
pub(crate) use timer::Timer;

/// How feeds get their threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheduler {
    /// One OS thread per feed (`nv-feed-{id}`) plus one per session for a sink that may
    /// block (`nv-sink-{id}`).
    ThreadPerFeed,
    /// The default: feed workers and sink delivery run as tasks on `threads` pool threads
    /// (`nv-pool-{n}`; 0 = one per core). Feeds whose stages may block
    /// ([`Stage::may_block`](nv_perception::Stage::may_block)) or that use a batch point
    /// keep a dedicated thread. Under [`Overflow::Block`](nv_core::policy::Overflow), a
    /// source that finds its feed's queue full runs the feed's stages (and an inline sink)
    /// on its own thread until there is room, instead of waiting for a pool thread.
    Pool { threads: usize },
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::Pool { threads: 0 }
    }
}

impl Scheduler {
    /// The scheduler a test suite asks for with `NV_TEST_SCHEDULER=threads` (thread per
    /// feed), `pool` or `pool:N`; the default otherwise. Read by
    /// [`RuntimeBuilder`](crate::RuntimeBuilder)'s default only, so a whole suite (the
    /// daemon's too) runs on either scheduler unchanged.
    pub fn from_test_env() -> Self {
        Self::parse_test_env(std::env::var("NV_TEST_SCHEDULER").ok().as_deref())
    }

    fn parse_test_env(v: Option<&str>) -> Self {
        match v.map(str::trim) {
            Some("threads") => Self::ThreadPerFeed,
            Some("pool") => Self::Pool { threads: 0 },
            Some(other) => other
                .strip_prefix("pool:")
                .and_then(|n| n.parse().ok())
                .map_or_else(Self::default, |threads| Self::Pool { threads }),
            None => Self::default(),
        }
    }
}

/// Where a pool thread's next-task slot is (see `PoolInner::push_woken`).
#[derive(Default)]
struct NextSlot {
    /// Address of the pool this thread serves; 0 off the pool (or while the slot is
    /// closed, running the slot's own task).
    pool: usize,
    slot: Option<Arc<Slot>>,
}

thread_local! {
    static NEXT: std::cell::RefCell<NextSlot> = std::cell::RefCell::new(NextSlot::default());
}

/// Frames (or outputs) a task handles per turn before yielding to the next task.
pub(crate) const QUANTUM: usize = 16;

/// Pool sizing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolConfig {
    pub threads: usize,
    pub max_spares: usize,
    pub blocked_after: Duration,
    pub stack_size: usize,
    /// How long a pool thread that ran out of work spins, watching for a new task, before
    /// it parks (one thread at a time, and only a busy one: `spin.rs`).
    pub spin: Duration,
}

impl PoolConfig {
    /// `threads` = 0 means one per core (the builder refuses more than
    /// `MAX_POOL_THREADS`). Spares: up to 3 per pool thread, so the pool never exceeds
    /// 4 x `threads` threads, even with every one of them stuck.
    pub fn new(threads: usize, stack_size: usize) -> Self {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        } else {
            threads
        };
        Self {
            threads,
            max_spares: threads * 3,
            blocked_after: Duration::from_secs(1),
            stack_size,
            spin: spin::SPIN,
        }
    }
}

struct RunQueue {
    tasks: VecDeque<Arc<TaskCell>>,
    shutdown: bool,
    /// Spare threads that may leave (the pool has more running threads than it needs).
    spares_to_retire: usize,
    /// Parked threads, most recently parked last: a new task wakes the last one, whose
    /// cache is the warmest (a lone feed then keeps to one thread).
    idle: Vec<Arc<Slot>>,
    /// Threads spinning for work (0 or 1): while one spins, a new task wakes nobody.
    spinning: usize,
}

impl RunQueue {
    fn wake_one(&mut self) {
        if self.spinning > 0 {
            return;
        }
        if let Some(s) = self.idle.pop() {
            s.wake.notify_one();
        }
    }

    fn wake_all(&mut self) {
        for s in self.idle.drain(..) {
            s.wake.notify_one();
        }
    }
}

/// One pool thread's view for the stuck-call check.
#[derive(Default)]
struct Slot {
    /// Clock nanos + 1 when its current task turn began; 0 when idle.
    busy_since: AtomicU64,
    /// Where the thread parks (with the run queue's lock).
    wake: Condvar,
    /// The task to run right after the current turn (see `PoolInner::push_woken`). Kept
    /// here rather than in a thread-local so the stuck-call check can hand it to another
    /// thread when the current turn does not come back.
    next: Mutex<Option<Arc<TaskCell>>>,
}

pub(crate) struct PoolInner {
    config: PoolConfig,
    clock: SharedClock,
    run: Mutex<RunQueue>,
    /// `run.tasks.len()`, readable without the lock by a spinning thread.
    queued: AtomicUsize,
    slots: Mutex<Vec<Arc<Slot>>>,
    handles: Mutex<Vec<(String, JoinHandle<()>)>>,
    /// Threads still running their loop; shutdown waits for it to reach zero.
    alive: Arc<Waiter<usize>>,
    spares: AtomicUsize,
    spare_seq: AtomicUsize,
    /// Producers running a task turn on their own thread now (see `TaskCell::help`); at
    /// most `config.threads`, so stages run on at most twice as many threads as cores.
    helpers: AtomicUsize,
    timer: Timer,
}

impl std::fmt::Debug for PoolInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.config.threads)
            .finish_non_exhaustive()
    }
}

/// The pool and its timer thread.
#[derive(Clone, Debug)]
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

impl Pool {
    pub fn start(config: PoolConfig, clock: SharedClock) -> std::io::Result<Self> {
        let inner = Arc::new(PoolInner {
            config,
            clock: clock.clone(),
            run: Mutex::new(RunQueue {
                tasks: VecDeque::new(),
                shutdown: false,
                spares_to_retire: 0,
                idle: Vec::new(),
                spinning: 0,
            }),
            queued: AtomicUsize::new(0),
            slots: Mutex::new(Vec::new()),
            handles: Mutex::new(Vec::new()),
            alive: Waiter::new(0, clock.clone()),
            spares: AtomicUsize::new(0),
            spare_seq: AtomicUsize::new(0),
            helpers: AtomicUsize::new(0),
            timer: Timer::start(clock)?,
        });
        for i in 0..config.threads {
            if let Err(e) = inner.spawn_thread(format!("nv-pool-{i}"), false) {
                Pool { inner }.shutdown(MonotonicTs::ZERO);
                return Err(e);
            }
        }
        Ok(Self { inner })
    }

    /// Wraps `task`; it runs once scheduled.
    pub fn task(&self, task: Box<dyn Task>) -> Arc<TaskCell> {
        TaskCell::new(task, Arc::downgrade(&self.inner))
    }

    /// The stuck-call check, run by the watchdog: one spare per pool thread blocked in a
    /// task turn for longer than `blocked_after`, up to `max_spares`.
    pub fn check(&self, now: MonotonicTs) {
        let inner = &self.inner;
        let mut stranded = Vec::new();
        let blocked = inner
            .slots
            .lock()
            .iter()
            .filter(|s| {
                let since = s.busy_since.load(Ordering::Acquire);
                since != 0
                    && now.saturating_duration_since(MonotonicTs::from_nanos(since - 1))
                        >= inner.config.blocked_after
            })
            .inspect(|s| stranded.extend(s.next.lock().take()))
            .count();
        // A task woken into a stuck thread's next-task slot would wait for that turn.
        for task in stranded {
            inner.push(task);
        }
        let want = blocked.min(inner.config.max_spares);
        let have = inner.spares.load(Ordering::Acquire);
        {
            let mut run = inner.run.lock();
            if run.shutdown {
                return;
            }
            run.spares_to_retire = have.saturating_sub(want);
            if have > want {
                run.wake_all();
            }
        }
        for _ in have..want {
            let n = inner.spare_seq.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = inner.spawn_thread(format!("nv-pool-spare-{n}"), true) {
                tracing::error!(error = %e, "cannot start a spare pool thread");
                break;
            }
        }
    }

    /// Threads of the pool now (pool threads plus spares).
    pub fn thread_count(&self) -> usize {
        *self.inner.alive.lock()
    }

    /// Stops the pool threads and the timer, waiting until `deadline`; threads still
    /// inside a task turn then are handed to `detached`.
    pub fn shutdown_into(
        &self,
        deadline: MonotonicTs,
        detached: &crate::detached::DetachedThreads,
    ) {
        {
            let mut run = self.inner.run.lock();
            run.shutdown = true;
            run.wake_all();
        }
        self.inner.timer.stop();
        {
            let alive = &self.inner.alive;
            let mut n = alive.lock();
            alive.wait_until(&mut n, Some(deadline), |n| *n == 0);
        }
        for (name, handle) in self.inner.handles.lock().drain(..) {
            if handle.is_finished() {
                if handle.join().is_err() {
                    tracing::error!(thread = %name, "pool thread panicked");
                }
            } else {
                detached.add(name, handle);
            }
        }
    }

    fn shutdown(&self, deadline: MonotonicTs) {
        self.shutdown_into(deadline, &crate::detached::DetachedThreads::default());
    }
}

impl PoolInner {
    /// A task made runnable by a signal. Signalled from a task turn on one of this pool's
    /// threads (a feed task waking its sink task, say), it goes to that thread's next-task
    /// slot and runs right after the current turn, on a warm cache, instead of behind
    /// every queued task: a frame's sink delivery then follows its stages at once, as on a
    /// dedicated thread. One task per slot; the slot's task runs next only once in a row.
    fn push_woken(&self, task: Arc<TaskCell>) {
        let me = std::ptr::from_ref(self) as usize;
        let rest = NEXT.with(|next| {
            let next = next.borrow();
            match next.slot.as_ref() {
                Some(slot) if next.pool == me => {
                    let mut slot = slot.next.lock();
                    if slot.is_none() {
                        *slot = Some(task);
                        None
                    } else {
                        Some(task)
                    }
                }
                _ => Some(task),
            }
        });
        if let Some(task) = rest {
            self.push(task);
        }
    }

    /// Back of the run queue from the thread that just ran it, without waking another
    /// thread: this one takes the queue's head next, so a lone busy task stays on its
    /// thread instead of bouncing between pool threads every turn.
    fn requeue(&self, task: Arc<TaskCell>) {
        let mut run = self.run.lock();
        run.tasks.push_back(task);
        self.queued.store(run.tasks.len(), Ordering::Release);
    }

    /// A helper's place, or `None` when `config.threads` producers are helping already.
    fn enter_helper(&self) -> Option<HelperPlace<'_>> {
        self.helpers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.config.threads).then_some(n + 1)
            })
            .ok()
            .map(|_| HelperPlace(&self.helpers))
    }

    fn push(&self, task: Arc<TaskCell>) {
        let mut run = self.run.lock();
        run.tasks.push_back(task);
        self.queued.store(run.tasks.len(), Ordering::Release);
        run.wake_one();
    }

    /// Spins up to `config.spin` until a task is queued.
    fn spin_for_work(&self) {
        let start = std::time::Instant::now();
        while self.queued.load(Ordering::Acquire) == 0 {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            if start.elapsed() >= self.config.spin {
                break;
            }
        }
    }

    fn spawn_thread(self: &Arc<Self>, name: String, spare: bool) -> std::io::Result<()> {
        let slot = Arc::new(Slot::default());
        self.slots.lock().push(Arc::clone(&slot));
        *self.alive.lock() += 1;
        if spare {
            self.spares.fetch_add(1, Ordering::AcqRel);
        }
        let inner = Arc::clone(self);
        let result = std::thread::Builder::new()
            .name(name.clone())
            .stack_size(self.config.stack_size)
            .spawn(move || inner.thread_loop(&slot, spare));
        match result {
            Ok(handle) => {
                self.handles.lock().push((name, handle));
                Ok(())
            }
            Err(e) => {
                self.thread_exited(None, spare);
                Err(e)
            }
        }
    }

    fn run_on(self: &Arc<Self>, slot: &Slot, task: &Arc<TaskCell>) {
        slot.busy_since.store(
            self.clock.now().as_nanos().saturating_add(1),
            Ordering::Release,
        );
        task.run_turn(self);
        slot.busy_since.store(0, Ordering::Release);
    }

    fn thread_loop(self: &Arc<Self>, slot: &Arc<Slot>, spare: bool) {
        let me = std::ptr::from_ref(&**self) as usize;
        NEXT.with(|n| {
            let mut n = n.borrow_mut();
            n.pool = me;
            n.slot = Some(Arc::clone(slot));
        });
        let mut duty = spin::Duty::new();
        loop {
            let task = {
                let mut run = self.run.lock();
                let mut spun = false;
                let task = loop {
                    if run.shutdown {
                        break None;
                    }
                    if spare && run.spares_to_retire > 0 {
                        run.spares_to_retire -= 1;
                        // A task this thread requeued is left to the others.
                        if !run.tasks.is_empty() {
                            run.wake_one();
                        }
                        break None;
                    }
                    if let Some(t) = run.tasks.pop_front() {
                        self.queued.store(run.tasks.len(), Ordering::Release);
                        break Some(t);
                    }
                    if !spun
                        && run.spinning == 0
                        && !self.config.spin.is_zero()
                        && duty.should_spin()
                    {
                        spun = true;
                        run.spinning += 1;
                        MutexGuard::unlocked(&mut run, || self.spin_for_work());
                        run.spinning -= 1;
                        continue;
                    }
                    if !run.idle.iter().any(|s| Arc::ptr_eq(s, slot)) {
                        run.idle.push(Arc::clone(slot));
                    }
                    slot.wake.wait(&mut run);
                };
                // Woken by a pop (gone from the list) or spuriously (still in it).
                run.idle.retain(|s| !Arc::ptr_eq(s, slot));
                task
            };
            let Some(task) = task else {
                break;
            };
            let turn_began = std::time::Instant::now();
            // What a turn that may not come back wakes must not wait for it in the slot.
            NEXT.with(|n| n.borrow_mut().pool = if task.may_block { 0 } else { me });
            self.run_on(slot, &task);
            NEXT.with(|n| n.borrow_mut().pool = me);
            // The task that turn woke, if any, runs now; what that one wakes is queued.
            let next = slot.next.lock().take();
            if let Some(next) = next {
                // What this thread requeued must not wait behind the slot's task.
                let mut run = self.run.lock();
                if !run.tasks.is_empty() {
                    run.wake_one();
                }
                drop(run);
                NEXT.with(|n| n.borrow_mut().pool = 0);
                self.run_on(slot, &next);
                NEXT.with(|n| n.borrow_mut().pool = me);
            }
            duty.add_busy(turn_began.elapsed());
        }
        NEXT.with(|n| {
            let mut n = n.borrow_mut();
            n.pool = 0;
            n.slot = None;
            let next = slot.next.lock().take();
            if let Some(t) = next {
                self.push(t);
            }
        });
        self.thread_exited(Some(slot), spare);
    }

    fn thread_exited(&self, slot: Option<&Arc<Slot>>, spare: bool) {
        if let Some(slot) = slot {
            self.slots.lock().retain(|s| !Arc::ptr_eq(s, slot));
        }
        if spare {
            self.spares.fetch_sub(1, Ordering::AcqRel);
        }
        *self.alive.lock() -= 1;
        self.alive.notify_all();
        // Finished spares' handles are reaped here so a long-lived pool does not collect them.
        if let Some(mut handles) = self.handles.try_lock() {
            handles.retain(|(_, h)| !h.is_finished());
        }
    }
}

/// One of the pool's helper places, given back on drop.
struct HelperPlace<'a>(&'a AtomicUsize);

impl Drop for HelperPlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests;
