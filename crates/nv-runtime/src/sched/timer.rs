//! The pool's timer thread (`nv-pool-timer`): schedules tasks at clock deadlines (source
//! ticks, restart delays, sink drain deadlines, sink stall reports). Waits go through the
//! injected clock, so a manual clock drives it in tests.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use nv_core::clock::SharedClock;
use nv_core::time::MonotonicTs;
use parking_lot::Mutex;

use super::TaskCell;
use crate::sync::Waiter;

struct Entry {
    at: u64,
    task: Weak<TaskCell>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed: the heap's top is the earliest deadline.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.at.cmp(&self.at)
    }
}

#[derive(Default)]
struct State {
    heap: BinaryHeap<Entry>,
    /// A new earliest deadline (or stop): the thread recomputes its wait.
    changed: bool,
    stopped: bool,
}

/// Heap entries beyond this many per live entry trigger a compaction (stale entries are
/// left behind when a task moves its deadline earlier), keeping the heap bounded.
const COMPACT_FACTOR: usize = 4;
const COMPACT_MIN: usize = 1024;

pub(crate) struct Timer {
    state: Arc<Waiter<State>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Timer {
    pub fn start(clock: SharedClock) -> std::io::Result<Self> {
        let state = Waiter::new(State::default(), clock.clone());
        let s = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("nv-pool-timer".into())
            .stack_size(128 * 1024)
            .spawn(move || run(&s, &clock))?;
        Ok(Self {
            state,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Schedules `task` at `at`. One entry per task is live (its `timer_at`); an earlier
    /// deadline adds an entry, a later one is picked up when the earlier entry fires.
    pub fn arm(&self, task: &Arc<TaskCell>, at: MonotonicTs) {
        let at = at.as_nanos().max(1);
        loop {
            let prev = task.timer_at.load(Ordering::Acquire);
            if prev == at {
                return;
            }
            let swapped = task
                .timer_at
                .compare_exchange(prev, at, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            if !swapped {
                // The timer thread fired (cleared) it meanwhile: look again.
                continue;
            }
            if prev != 0 && prev < at {
                // The earlier entry stays; when it fires it finds the later deadline.
                return;
            }
            break;
        }
        let mut st = self.state.lock();
        if st.stopped {
            return;
        }
        let earliest = st.heap.peek().map_or(u64::MAX, |e| e.at);
        st.heap.push(Entry {
            at,
            task: Arc::downgrade(task),
        });
        if st.heap.len() > COMPACT_MIN && st.heap.len() > COMPACT_FACTOR * live(&st.heap) {
            let entries = std::mem::take(&mut st.heap).into_vec();
            st.heap = entries
                .into_iter()
                .filter(|e| {
                    e.task
                        .upgrade()
                        .is_some_and(|t| t.timer_at.load(Ordering::Acquire) == e.at)
                })
                .collect();
        }
        if at < earliest {
            st.changed = true;
            drop(st);
            self.state.notify_all();
        }
    }

    pub fn stop(&self) {
        self.state.lock().stopped = true;
        self.state.notify_all();
        if let Some(t) = self.thread.lock().take() {
            if t.join().is_err() {
                tracing::error!("pool timer thread panicked");
            }
        }
    }
}

fn live(heap: &BinaryHeap<Entry>) -> usize {
    heap.iter().filter(|e| e.task.strong_count() > 0).count()
}

fn run(state: &Waiter<State>, clock: &SharedClock) {
    let mut due: Vec<Arc<TaskCell>> = Vec::new();
    loop {
        {
            let mut st = state.lock();
            if st.stopped {
                return;
            }
            let now = clock.now().as_nanos();
            let mut requeue = Vec::new();
            while st.heap.peek().is_some_and(|e| e.at <= now) {
                let Some(e) = st.heap.pop() else { break };
                let Some(task) = e.task.upgrade() else {
                    continue;
                };
                let current = task.timer_at.load(Ordering::Acquire);
                if current == 0 {
                    continue;
                }
                if current <= now {
                    // A concurrent re-arm wins: its own entry (or this requeue) covers it.
                    if task
                        .timer_at
                        .compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                    {
                        due.push(task);
                    } else {
                        requeue.push(Entry {
                            at: e.at,
                            task: e.task,
                        });
                    }
                } else {
                    // The task moved its deadline later while this entry was queued.
                    requeue.push(Entry {
                        at: current,
                        task: e.task,
                    });
                }
            }
            st.heap.extend(requeue);
            if due.is_empty() {
                let next = st.heap.peek().map(|e| MonotonicTs::from_nanos(e.at));
                st.changed = false;
                state.wait_until(&mut st, next, |s| s.changed || s.stopped);
                continue;
            }
        }
        for task in due.drain(..) {
            task.schedule();
        }
    }
}
