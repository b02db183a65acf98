//! Tasks and their scheduling state: what the pool runs, and how a task becomes runnable
//! (at most once in the run queue; scheduled while running = runs once more).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use nv_core::time::MonotonicTs;
use parking_lot::Mutex;

use super::PoolInner;
use crate::queue::{QueueHelper, QueueSignal};

/// What a task's turn ended with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Poll {
    /// More work is ready: run again after the other runnable tasks.
    Yield,
    /// Nothing to do until scheduled again (queue signal, control change, timer).
    Idle,
    /// Finished for good.
    Done,
}

/// A unit of work the pool runs.
pub(crate) trait Task: Send + 'static {
    fn run(&mut self, cx: &TaskCx<'_>) -> Poll;
    /// A turn on a producer's thread (see [`TaskCell::help`]): the part of the task's work
    /// that may run there. `Yield` hands what is left to the pool. Default: nothing.
    fn help(&mut self, _cx: &TaskCx<'_>) -> Poll {
        Poll::Yield
    }
    /// Whether a turn may block for long (a sink's delivery): tasks it wakes then go to
    /// the run queue rather than wait in its thread's next-task slot. Default `false`.
    fn may_block(&self) -> bool {
        false
    }
    /// The task panicked out of `run` or `help`; it will not run again.
    fn on_panic(&mut self);
}

pub(super) const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
/// Running, and scheduled again meanwhile: runs once more when this turn ends.
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;
/// The low bits hold one of the states above.
const STATE: u8 = 0b0111;
/// A handle of the task is in the run queue. A helper (a producer running the task on its
/// own thread) takes a scheduled task without taking its handle out of the run queue; the
/// pool thread that pops that handle later finds the task no longer scheduled and skips
/// it. While the bit is set, scheduling the task pushes no second handle, so the run
/// queue still holds each task at most once.
const IN_QUEUE: u8 = 0b1000;

/// A task with its scheduling state.
pub(crate) struct TaskCell {
    pub(super) state: AtomicU8,
    /// Clock nanos of the armed timer; 0 = none.
    pub(super) timer_at: AtomicU64,
    body: Mutex<Option<Box<dyn Task>>>,
    pool: Weak<PoolInner>,
    /// [`Task::may_block`], read once.
    pub(super) may_block: bool,
}

impl std::fmt::Debug for TaskCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskCell")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Who runs a turn: a pool thread, or a producer helping (see [`TaskCell::help`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runner {
    Pool,
    Helper,
}

impl TaskCell {
    pub(super) fn new(task: Box<dyn Task>, pool: Weak<PoolInner>) -> Arc<Self> {
        Arc::new(Self {
            state: AtomicU8::new(IDLE),
            timer_at: AtomicU64::new(0),
            may_block: task.may_block(),
            body: Mutex::new(Some(task)),
            pool,
        })
    }

    /// Makes the task runnable (no-op if it already is, or finished).
    pub fn schedule(self: &Arc<Self>) {
        let mut cur = self.state.load(Ordering::Acquire);
        let push = loop {
            let (next, push) = match cur & STATE {
                IDLE => (SCHEDULED | IN_QUEUE, cur & IN_QUEUE == 0),
                RUNNING => (NOTIFIED | (cur & IN_QUEUE), false),
                _ => return,
            };
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break push,
                Err(actual) => cur = actual,
            }
        };
        if push {
            if let Some(pool) = self.pool.upgrade() {
                pool.push_woken(Arc::clone(self));
            }
        }
    }

    pub fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) & STATE == DONE
    }

    /// A signal that schedules this task without keeping it alive.
    pub fn signal(self: &Arc<Self>) -> Arc<dyn QueueSignal> {
        Arc::new(WeakTask(Arc::downgrade(self)))
    }

    /// The same, as the helper a producer blocked on the task's full queue runs.
    pub fn helper(self: &Arc<Self>) -> Arc<dyn QueueHelper> {
        Arc::new(WeakTask(Arc::downgrade(self)))
    }

    /// A pool thread popped this task's handle: runs a turn, unless a helper took the
    /// task meanwhile (then the handle was stale and the task is not scheduled now).
    pub(super) fn run_turn(self: &Arc<Self>, pool: &PoolInner) {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            let state = cur & STATE;
            let next = if state == SCHEDULED { RUNNING } else { state };
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if state == SCHEDULED => break,
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
        self.turn(pool, Runner::Pool);
    }

    /// Runs one helper turn of a scheduled task on this (non-pool) thread: a producer that
    /// would park on the task's full queue does the task's work instead (see
    /// [`Task::help`]). `false`: the task was not scheduled (running elsewhere, idle,
    /// done), or the pool has as many helpers as threads already.
    pub fn help(self: &Arc<Self>) -> bool {
        let Some(pool) = self.pool.upgrade() else {
            return false;
        };
        let Some(_helping) = pool.enter_helper() else {
            return false;
        };
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & STATE != SCHEDULED {
                return false;
            }
            match self.state.compare_exchange_weak(
                cur,
                RUNNING | (cur & IN_QUEUE),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        self.turn(&pool, Runner::Helper);
        true
    }

    fn turn(self: &Arc<Self>, pool: &PoolInner, runner: Runner) {
        let mut body = self.body.lock();
        let Some(task) = body.as_mut() else {
            self.state.store(DONE, Ordering::Release);
            return;
        };
        let cx = TaskCx { cell: self, pool };
        let poll = match std::panic::catch_unwind(AssertUnwindSafe(|| match runner {
            Runner::Pool => task.run(&cx),
            Runner::Helper => task.help(&cx),
        })) {
            Ok(p) => p,
            Err(_) => {
                tracing::error!("a pool task panicked; it will not run again");
                if std::panic::catch_unwind(AssertUnwindSafe(|| task.on_panic())).is_err() {
                    tracing::error!("a pool task's panic handler panicked");
                }
                Poll::Done
            }
        };
        if poll == Poll::Done {
            self.state.store(DONE, Ordering::Release);
            // Release the feed's resources now rather than when the last handle goes.
            let finished = body.take();
            drop(body);
            drop(finished);
            return;
        }
        drop(body);
        let mut cur = self.state.load(Ordering::Acquire);
        let push = loop {
            // Scheduled while running: its new work may have arrived after the task
            // looked, so it runs again.
            let again = poll == Poll::Yield || cur & STATE == NOTIFIED;
            let next = if again {
                SCHEDULED | IN_QUEUE
            } else {
                IDLE | (cur & IN_QUEUE)
            };
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break again && cur & IN_QUEUE == 0,
                Err(actual) => cur = actual,
            }
        };
        if push {
            match runner {
                Runner::Pool => pool.requeue(Arc::clone(self)),
                Runner::Helper => pool.push(Arc::clone(self)),
            }
        }
    }
}

struct WeakTask(Weak<TaskCell>);

impl QueueSignal for WeakTask {
    fn signal(&self) {
        if let Some(t) = self.0.upgrade() {
            t.schedule();
        }
    }
}

impl QueueHelper for WeakTask {
    fn help(&self) {
        if let Some(t) = self.0.upgrade() {
            let _ran = t.help();
        }
    }
}

/// What a running task may ask of the pool.
pub(crate) struct TaskCx<'a> {
    pub(super) cell: &'a Arc<TaskCell>,
    pool: &'a PoolInner,
}

impl TaskCx<'_> {
    /// Schedules the task at `at` (clock time), unless it runs earlier anyway; the task
    /// checks what is due when it runs.
    pub fn wake_at(&self, at: MonotonicTs) {
        self.pool.timer.arm(self.cell, at);
    }
}
