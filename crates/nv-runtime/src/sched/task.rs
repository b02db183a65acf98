//! Tasks and their scheduling state: what the pool runs, and how a task becomes runnable
//! (at most once in the run queue; scheduled while running = runs once more).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};

use nv_core::time::MonotonicTs;
use parking_lot::Mutex;

use super::PoolInner;
use crate::queue::QueueSignal;

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
    /// The task panicked out of `run`; it will not run again.
    fn on_panic(&mut self);
}

pub(super) const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
/// Running, and scheduled again meanwhile: runs once more when this turn ends.
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// A task with its scheduling state.
pub(crate) struct TaskCell {
    pub(super) state: AtomicU8,
    /// Clock nanos of the armed timer; 0 = none.
    pub(super) timer_at: AtomicU64,
    body: Mutex<Option<Box<dyn Task>>>,
    pool: Weak<PoolInner>,
}

impl std::fmt::Debug for TaskCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskCell")
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TaskCell {
    pub(super) fn new(task: Box<dyn Task>, pool: Weak<PoolInner>) -> Arc<Self> {
        Arc::new(Self {
            state: AtomicU8::new(IDLE),
            timer_at: AtomicU64::new(0),
            body: Mutex::new(Some(task)),
            pool,
        })
    }

    /// Makes the task runnable (no-op if it already is, or finished).
    pub fn schedule(self: &Arc<Self>) {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            let next = match cur {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match self
                .state
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if cur == IDLE {
            if let Some(pool) = self.pool.upgrade() {
                pool.push_woken(Arc::clone(self));
            }
        }
    }

    pub fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// A signal that schedules this task without keeping it alive.
    pub fn signal(self: &Arc<Self>) -> Arc<dyn QueueSignal> {
        Arc::new(WeakTask(Arc::downgrade(self)))
    }

    pub(super) fn run_turn(self: &Arc<Self>, pool: &PoolInner) {
        self.state.store(RUNNING, Ordering::Release);
        let mut body = self.body.lock();
        let Some(task) = body.as_mut() else {
            self.state.store(DONE, Ordering::Release);
            return;
        };
        let cx = TaskCx { cell: self, pool };
        let poll = match std::panic::catch_unwind(AssertUnwindSafe(|| task.run(&cx))) {
            Ok(p) => p,
            Err(_) => {
                tracing::error!("a pool task panicked; it will not run again");
                if std::panic::catch_unwind(AssertUnwindSafe(|| task.on_panic())).is_err() {
                    tracing::error!("a pool task's panic handler panicked");
                }
                Poll::Done
            }
        };
        match poll {
            Poll::Done => {
                self.state.store(DONE, Ordering::Release);
                // Release the feed's resources now rather than when the last handle goes.
                let finished = body.take();
                drop(body);
                drop(finished);
            }
            Poll::Yield => {
                drop(body);
                self.state.store(SCHEDULED, Ordering::Release);
                pool.requeue(Arc::clone(self));
            }
            Poll::Idle => {
                drop(body);
                if self
                    .state
                    .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
                {
                    // Scheduled while running: its new work may have arrived after the
                    // task looked, so it runs again.
                    self.state.store(SCHEDULED, Ordering::Release);
                    pool.requeue(Arc::clone(self));
                }
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
