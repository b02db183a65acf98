//! Allocations on the hot path, counted by a counting global allocator (this test binary
//! only). Each thread counts its own allocations, so the figures are exact: the sink
//! reads the count of the thread it runs on at every output.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, Mutex};

use common::{feed, wait_until};
use nv_core::clock::SystemClock;
use nv_runtime::{OutputSink, Runtime, Scheduler, SharedOutput};
use nv_test_util::NoOpStage;

struct Counting;

fn count() {
    // A thread being torn down has no counter left: its last allocations go uncounted.
    match ALLOCS.try_with(|c| c.set(c.get() + 1)) {
        Ok(()) | Err(_) => {}
    }
}

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the only addition is a
// thread-local counter that neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs_here() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Records, at every output, how many allocations the thread it runs on has made so far.
#[derive(Clone)]
struct AllocProbe {
    marks: Arc<Mutex<Vec<u64>>>,
    inline: bool,
}

impl OutputSink for AllocProbe {
    fn emit(&mut self, _output: SharedOutput) {
        let now = allocs_here();
        // The vector is sized up front, so recording allocates nothing.
        self.marks.lock().unwrap().push(now);
    }
    fn may_block(&self) -> bool {
        !self.inline
    }
}

/// Allocations between consecutive outputs, after the first `warmup` outputs. The counts
/// are per thread, so the scheduler is chosen here, not by the suite's environment: one
/// thread per feed, or a one-thread pool (feed and sink tasks then share that thread).
fn per_output(inline: bool, frames: u64, warmup: usize, scheduler: Scheduler) -> Vec<u64> {
    let rt = Runtime::builder()
        .health_capacity(4096)
        .scheduler(scheduler)
        .build()
        .unwrap();
    let marks = Arc::new(Mutex::new(Vec::with_capacity(frames as usize + 1)));
    // On the pool, a source blocked on a full queue runs the feed's turn on its own thread
    // (it allocates frames there too); a queue that never fills keeps every turn on the
    // pool thread being counted.
    let depth = match scheduler {
        Scheduler::Pool { .. } => frames as usize + 1,
        _ => 4,
    };
    let h = rt
        .add_feed(
            feed(Some(frames))
                .backpressure(nv_runtime::BackpressurePolicy::block(depth))
                .stage(NoOpStage("a"))
                .stage(NoOpStage("b"))
                .stage(NoOpStage("c"))
                .output_sink(AllocProbe {
                    marks: Arc::clone(&marks),
                    inline,
                })
                .build()
                .unwrap(),
        )
        .unwrap();
    wait_until("feed finished", || !h.is_alive());
    let marks = marks.lock().unwrap().clone();
    assert_eq!(marks.len() as u64, frames);
    marks[warmup..].windows(2).map(|w| w[1] - w[0]).collect()
}

#[test]
fn the_queue_hand_off_allocates_nothing() {
    let q = nv_io::queue::BoundedQueue::new(4, SystemClock::shared());
    for i in 0..4u32 {
        q.push(i, nv_runtime::Overflow::Block);
    }
    while q.try_pop().is_some() {}
    let before = allocs_here();
    for i in 0..10_000u32 {
        q.push(i, nv_runtime::Overflow::Block);
        assert!(matches!(q.pop(None), nv_io::queue::Pop::Item(x, _) if x == i));
    }
    assert_eq!(allocs_here() - before, 0);
}

#[test]
fn a_sink_thread_allocates_nothing_per_output() {
    // Counted on the sink thread: popping and delivering an output allocates nothing.
    let deltas = per_output(false, 300, 20, Scheduler::ThreadPerFeed);
    assert!(deltas.iter().all(|d| *d == 0), "{deltas:?}");
}

#[test]
fn the_feed_worker_allocates_nothing_per_frame() {
    // Counted on the feed worker with an inline sink: queue pop, stages, provenance and
    // the output envelope. The per-stage provenance lives inside the output, and the
    // output (one `Arc` shared by the sink and subscribers) is written into the
    // allocation of an earlier output nobody holds any more: nothing per frame, and
    // nothing for the hand-offs.
    // A rare timed health event (a frame-lag warning on a loaded machine, say) may add
    // its own allocations to one frame; the per-frame path itself allocates nothing.
    assert_nothing_per_frame(&per_output(true, 300, 20, Scheduler::ThreadPerFeed));
}

#[test]
fn a_feed_task_on_the_pool_allocates_nothing_per_frame() {
    // One pool thread runs the feed task with an inline sink: scheduling the task, its
    // timer and the quantum loop add nothing either.
    assert_nothing_per_frame(&per_output(true, 300, 20, Scheduler::Pool { threads: 1 }));
}

/// No allocation between outputs, but for at most one frame in fifty (a timed health
/// event on a loaded machine).
fn assert_nothing_per_frame(deltas: &[u64]) {
    let typical = deltas.iter().filter(|d| **d == 0).count();
    assert!(typical * 50 >= deltas.len() * 49, "{deltas:?}");
}
