#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::mpsc;

use nv_core::clock::{Clock, ManualClock, SystemClock};
use nv_test_util::wait_until;

use super::task::IDLE;
use super::*;

/// Runs `turns` turns, recording `(id, turn)` in `log`, then finishes.
struct Counted {
    id: usize,
    turns: usize,
    done: usize,
    log: Arc<Mutex<Vec<(usize, usize)>>>,
}

impl Task for Counted {
    fn run(&mut self, _cx: &TaskCx<'_>) -> Poll {
        self.done += 1;
        self.log.lock().push((self.id, self.done));
        if self.done == self.turns {
            Poll::Done
        } else {
            Poll::Yield
        }
    }
    fn help(&mut self, cx: &TaskCx<'_>) -> Poll {
        self.run(cx)
    }
    fn on_panic(&mut self) {}
}

/// Holds its pool thread until released.
struct Gate {
    entered: mpsc::SyncSender<()>,
    release: mpsc::Receiver<()>,
}

impl Task for Gate {
    fn run(&mut self, _cx: &TaskCx<'_>) -> Poll {
        self.entered.send(()).unwrap();
        self.release.recv().unwrap();
        Poll::Done
    }
    fn on_panic(&mut self) {}
}

fn gate(pool: &Pool) -> (Arc<TaskCell>, mpsc::Receiver<()>, mpsc::SyncSender<()>) {
    let (entered_tx, entered) = mpsc::sync_channel(1);
    let (release, release_rx) = mpsc::sync_channel(1);
    let task = pool.task(Box::new(Gate {
        entered: entered_tx,
        release: release_rx,
    }));
    (task, entered, release)
}

fn one_thread(clock: SharedClock) -> Pool {
    Pool::start(PoolConfig::new(1, 256 * 1024), clock).unwrap()
}

#[test]
fn runnable_tasks_take_turns_round_robin_on_one_thread() {
    let pool = one_thread(SystemClock::shared());
    // Hold the only thread so every task is queued before any runs.
    let (g, entered, release) = gate(&pool);
    g.schedule();
    entered.recv().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..4)
        .map(|id| {
            pool.task(Box::new(Counted {
                id,
                turns: 3,
                done: 0,
                log: Arc::clone(&log),
            }))
        })
        .collect();
    for t in &tasks {
        t.schedule();
        // Scheduling a runnable task again adds nothing: it is queued once.
        t.schedule();
    }
    release.send(()).unwrap();
    wait_until("condition", || tasks.iter().all(|t| t.is_done()));
    let expected: Vec<(usize, usize)> = (1..=3)
        .flat_map(|turn| (0..4).map(move |id| (id, turn)))
        .collect();
    assert_eq!(*log.lock(), expected);
    pool.shutdown(SystemClock::shared().now() + Duration::from_secs(5));
}

/// Idles until scheduled; counts its turns. On its first turn it is scheduled again
/// while it runs (as a frame arriving mid-turn would).
struct Idler {
    turns: Arc<AtomicUsize>,
}

impl Task for Idler {
    fn run(&mut self, cx: &TaskCx<'_>) -> Poll {
        if self.turns.fetch_add(1, Ordering::SeqCst) == 0 {
            cx.cell.schedule();
        }
        Poll::Idle
    }
    fn on_panic(&mut self) {}
}

#[test]
fn a_task_scheduled_while_it_runs_runs_once_more() {
    let pool = one_thread(SystemClock::shared());
    let (g, entered, release) = gate(&pool);
    g.schedule();
    entered.recv().unwrap();
    let turns = Arc::new(AtomicUsize::new(0));
    let t = pool.task(Box::new(Idler {
        turns: Arc::clone(&turns),
    }));
    t.schedule();
    t.schedule();
    release.send(()).unwrap();
    // Queued once, run once, scheduled during that turn: exactly two turns.
    wait_until("two turns", || {
        turns.load(Ordering::SeqCst) == 2 && t.state.load(Ordering::SeqCst) == IDLE
    });
    t.schedule();
    wait_until("a third turn", || {
        turns.load(Ordering::SeqCst) == 3 && t.state.load(Ordering::SeqCst) == IDLE
    });
    pool.shutdown(SystemClock::shared().now() + Duration::from_secs(5));
}

/// Arms its timer at `at` on the first turn, counts later turns.
struct Sleeper {
    at: MonotonicTs,
    turns: Arc<AtomicUsize>,
}

impl Task for Sleeper {
    fn run(&mut self, cx: &TaskCx<'_>) -> Poll {
        if self.turns.fetch_add(1, Ordering::SeqCst) == 0 {
            cx.wake_at(self.at);
        }
        Poll::Idle
    }
    fn on_panic(&mut self) {}
}

#[test]
fn the_timer_follows_the_injected_clock() {
    let clock = ManualClock::new();
    let pool = one_thread(clock.clone());
    let turns = Arc::new(AtomicUsize::new(0));
    let t = pool.task(Box::new(Sleeper {
        at: clock.now() + Duration::from_secs(10),
        turns: Arc::clone(&turns),
    }));
    t.schedule();
    wait_until("condition", || {
        turns.load(Ordering::SeqCst) == 1 && t.state.load(Ordering::SeqCst) == IDLE
    });
    clock.advance(Duration::from_secs(9));
    // Not due: the timer thread has nothing to do; the task stays idle at one turn.
    assert_eq!(
        t.timer_at.load(Ordering::SeqCst),
        (clock.now() + Duration::from_secs(1)).as_nanos()
    );
    clock.advance(Duration::from_secs(1));
    wait_until("condition", || turns.load(Ordering::SeqCst) == 2);
    assert_eq!(t.timer_at.load(Ordering::SeqCst), 0);
    pool.shutdown(clock.now() + Duration::from_secs(5));
}

#[test]
fn a_stuck_turn_gets_a_spare_thread_which_leaves_when_it_returns() {
    let clock = ManualClock::new();
    let pool = one_thread(clock.clone());
    let (g, entered, release) = gate(&pool);
    g.schedule();
    entered.recv().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let other = pool.task(Box::new(Counted {
        id: 7,
        turns: 2,
        done: 0,
        log: Arc::clone(&log),
    }));
    other.schedule();
    // Within `blocked_after`, the one stuck thread is all there is.
    pool.check(clock.now());
    assert_eq!(pool.thread_count(), 1);
    assert!(log.lock().is_empty());
    clock.advance(Duration::from_secs(1));
    pool.check(clock.now());
    assert_eq!(pool.thread_count(), 2, "one spare for the one stuck thread");
    wait_until("condition", || other.is_done());
    assert_eq!(*log.lock(), [(7, 1), (7, 2)]);
    // Checks while it is still stuck do not add more.
    pool.check(clock.now());
    assert_eq!(pool.thread_count(), 2);
    release.send(()).unwrap();
    // The gate's thread counts as stuck until its turn has fully ended: look until the
    // check sees it back.
    wait_until("the spare left", || {
        pool.check(clock.now());
        pool.thread_count() == 1
    });
    pool.shutdown(clock.now() + Duration::from_secs(5));
}

#[test]
fn spares_are_capped_at_three_per_pool_thread() {
    let clock = ManualClock::new();
    let pool = one_thread(clock.clone());
    let mut gates = Vec::new();
    // The pool thread and then each spare get stuck in turn.
    for expected_threads in 1..=4 {
        let (g, entered, release) = gate(&pool);
        g.schedule();
        entered.recv().unwrap();
        gates.push((g, release));
        clock.advance(Duration::from_secs(1));
        pool.check(clock.now());
        assert_eq!(pool.thread_count(), (expected_threads + 1).min(4));
    }
    assert_eq!(
        pool.thread_count(),
        4,
        "1 pool thread + 3 spares, all stuck"
    );
    for (g, release) in gates {
        release.send(()).unwrap();
        wait_until("condition", || g.is_done());
    }
    wait_until("the spares left", || {
        pool.check(clock.now());
        pool.thread_count() == 1
    });
    pool.shutdown(clock.now() + Duration::from_secs(5));
}

#[test]
fn scheduler_from_test_env_parses() {
    // Only the parser: the environment is the suite runner's.
    let pool = Scheduler::Pool { threads: 0 };
    assert_eq!(Scheduler::default(), pool);
    assert_eq!(Scheduler::parse_test_env(None), pool);
    assert_eq!(Scheduler::parse_test_env(Some("pool")), pool);
    assert_eq!(
        Scheduler::parse_test_env(Some("threads")),
        Scheduler::ThreadPerFeed
    );
    assert_eq!(
        Scheduler::parse_test_env(Some("pool:3")),
        Scheduler::Pool { threads: 3 }
    );
    assert_eq!(Scheduler::parse_test_env(Some("bogus")), pool);
}

/// Takes every queued number, noting the thread that took it; as a pool turn or a helper's.
struct Drainer {
    queue: Arc<crate::queue::BoundedQueue<u32>>,
    taken: Arc<Mutex<Vec<(u32, String)>>>,
}

impl Drainer {
    fn drain(&mut self) -> Poll {
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        while let Some((n, _)) = self.queue.try_pop() {
            self.taken.lock().push((n, thread.clone()));
        }
        Poll::Idle
    }
}

impl Task for Drainer {
    fn run(&mut self, _cx: &TaskCx<'_>) -> Poll {
        self.drain()
    }
    fn help(&mut self, _cx: &TaskCx<'_>) -> Poll {
        self.drain()
    }
    fn on_panic(&mut self) {}
}

#[test]
fn a_producer_blocked_on_a_full_queue_runs_its_consumer_while_the_pool_is_held() {
    let pool = one_thread(SystemClock::shared());
    let (g, entered, release) = gate(&pool);
    g.schedule();
    entered.recv().unwrap();
    let queue = crate::queue::BoundedQueue::new(4, SystemClock::shared());
    let taken = Arc::new(Mutex::new(Vec::new()));
    let task = pool.task(Box::new(Drainer {
        queue: Arc::clone(&queue),
        taken: Arc::clone(&taken),
    }));
    queue.set_consumer_signal(task.signal());
    queue.set_consumer_helper(task.helper());
    // The only pool thread is held: without the helper the fifth push would wait for it.
    let q = Arc::clone(&queue);
    std::thread::Builder::new()
        .name("producer".into())
        .spawn(move || {
            for n in 0..20 {
                assert!(matches!(
                    q.push(n, crate::queue::Overflow::Block),
                    crate::queue::Push::Accepted
                ));
            }
        })
        .unwrap()
        .join()
        .unwrap();
    // Each full queue was drained on the producer's thread, in order; the last four wait.
    let on_producer: Vec<(u32, String)> = (0..16).map(|n| (n, "producer".into())).collect();
    assert_eq!(*taken.lock(), on_producer);
    assert_eq!(queue.len(), 4);
    // Scheduled at the first push and taken by the helper four times: one handle queued.
    assert_eq!(pool.inner.run.lock().tasks.len(), 1);
    release.send(()).unwrap();
    wait_until("the pool took the rest", || taken.lock().len() == 20);
    let rest: Vec<(u32, String)> = (16..20).map(|n| (n, "nv-pool-0".into())).collect();
    assert_eq!(taken.lock()[16..], rest[..]);
    wait_until("task idle", || {
        task.state.load(Ordering::SeqCst) == IDLE && pool.inner.run.lock().tasks.is_empty()
    });
    pool.shutdown(SystemClock::shared().now() + Duration::from_secs(5));
}

#[test]
fn a_task_running_on_the_pool_is_not_helped() {
    let pool = one_thread(SystemClock::shared());
    let (g, entered, release) = gate(&pool);
    g.schedule();
    entered.recv().unwrap();
    // The gate's turn is running: a helper may not take it, and the pool's turn goes on.
    assert!(!g.help());
    let task = pool.task(Box::new(Counted {
        id: 0,
        turns: 1,
        done: 0,
        log: Arc::new(Mutex::new(Vec::new())),
    }));
    // Not scheduled yet: nothing to help with.
    assert!(!task.help());
    task.schedule();
    assert!(task.help());
    assert!(task.is_done());
    release.send(()).unwrap();
    // The stale handle of the helped task is skipped; the pool finishes the gate.
    wait_until("gate done", || {
        g.is_done() && pool.inner.run.lock().tasks.is_empty()
    });
    pool.shutdown(SystemClock::shared().now() + Duration::from_secs(5));
}

/// Wakes `other` (into its thread's next-task slot), then holds its thread until released.
struct WakeThenHold {
    other: Arc<TaskCell>,
    gate: Gate,
}

impl Task for WakeThenHold {
    fn run(&mut self, cx: &TaskCx<'_>) -> Poll {
        self.other.schedule();
        self.gate.run(cx)
    }
    fn on_panic(&mut self) {}
}

#[test]
fn a_task_woken_by_a_turn_that_gets_stuck_is_run_by_another_thread() {
    let clock = ManualClock::new();
    let pool = one_thread(clock.clone());
    let log = Arc::new(Mutex::new(Vec::new()));
    let other = pool.task(Box::new(Counted {
        id: 3,
        turns: 1,
        done: 0,
        log: Arc::clone(&log),
    }));
    let (entered_tx, entered) = mpsc::sync_channel(1);
    let (release, release_rx) = mpsc::sync_channel(1);
    let holder = pool.task(Box::new(WakeThenHold {
        other: Arc::clone(&other),
        gate: Gate {
            entered: entered_tx,
            release: release_rx,
        },
    }));
    holder.schedule();
    entered.recv().unwrap();
    // `other` waits in the stuck thread's next-task slot, not in the run queue.
    assert!(pool.inner.run.lock().tasks.is_empty());
    assert!(!other.is_done());
    clock.advance(Duration::from_secs(1));
    pool.check(clock.now());
    // The check hands it to the run queue, where the spare takes it.
    wait_until("the woken task ran", || other.is_done());
    assert_eq!(*log.lock(), [(3, 1)]);
    release.send(()).unwrap();
    wait_until("holder done", || holder.is_done());
    pool.shutdown(clock.now() + Duration::from_secs(5));
}
