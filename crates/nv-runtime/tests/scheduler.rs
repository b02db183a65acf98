//! The pool scheduler (`Scheduler::Pool`): per-feed order and exact counts with many feeds
//! on one thread, and the rule for a stage stuck on a pool thread. The rest of the suite
//! runs on the pool too with `NV_TEST_SCHEDULER=pool`.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::feed;
use nv_core::clock::ManualClock;
use nv_runtime::{HealthEvent, NullSink, Runtime, Scheduler, StopReason};
use nv_test_util::{collect_events_until, wait_until, BlockingStage, CollectingSink, NoOpStage};

fn pool_runtime(threads: usize) -> Runtime {
    Runtime::builder()
        .health_capacity(8192)
        .max_feeds(256)
        .scheduler(Scheduler::Pool { threads })
        .build()
        .unwrap()
}

#[test]
fn twenty_feeds_on_one_pool_thread_all_finish_in_order_and_lose_nothing() {
    let rt = pool_runtime(1);
    let mut health = rt.health_subscribe();
    let frames = 50u64;
    let feeds: Vec<_> = (0..20)
        .map(|_| {
            let sink = CollectingSink::new();
            let h = rt
                .add_feed(
                    feed(Some(frames))
                        .stage(NoOpStage("a"))
                        .stage(NoOpStage("b"))
                        .output_sink(sink.clone())
                        .build()
                        .unwrap(),
                )
                .unwrap();
            (h, sink)
        })
        .collect();
    let mut stopped = 0;
    let _events = collect_events_until(&mut health, |e| {
        if let HealthEvent::FeedStopped { reason, .. } = e {
            assert_eq!(*reason, StopReason::EndOfStream);
            stopped += 1;
        }
        stopped == feeds.len()
    });
    for (h, sink) in &feeds {
        let seqs: Vec<u64> = sink.outputs().iter().map(|o| o.frame_seq).collect();
        assert_eq!(seqs, (0..frames).collect::<Vec<_>>(), "feed {}", h.id());
        let m = h.metrics();
        assert_eq!(m.frames_processed, frames);
        assert_eq!(m.drops, [0; nv_runtime::DropReason::ALL.len()]);
        assert_eq!(m.outputs_to_sink, frames);
    }
    let d = rt.diagnostics();
    assert_eq!(d.pool_threads, 1);
    assert!(d.detached_threads.is_empty());
}

#[test]
fn a_stage_stuck_on_the_only_pool_thread_gets_a_spare_for_the_other_feeds() {
    let clock = ManualClock::new();
    let rt = Runtime::builder()
        .clock(clock.clone())
        .health_capacity(4096)
        .scheduler(Scheduler::Pool { threads: 1 })
        .build()
        .unwrap();
    let stuck = BlockingStage::new("stuck");
    // A source that never waits for room never runs the feed's turn on its own thread
    // (under `Block` it would, once the queue is full): the stage gets stuck on the pool.
    let a = rt
        .add_feed(
            feed(None)
                .backpressure(nv_runtime::BackpressurePolicy::drop_oldest(4))
                .stage(stuck.clone())
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    stuck.wait_entered();
    let sink = CollectingSink::new();
    let b = rt
        .add_feed(
            feed(Some(20))
                .stage(NoOpStage("s"))
                .output_sink(sink.clone())
                .build()
                .unwrap(),
        )
        .unwrap();
    // The only pool thread is inside `stuck`: feed b cannot have run at all.
    assert_eq!(b.metrics().frames_processed, 0);
    assert_eq!(rt.diagnostics().pool_threads, 1);
    // Past `blocked_after` (1 s), the watchdog's next look starts one spare. Time moves in
    // watchdog periods until it has (the watchdog may not be parked on its first deadline
    // yet), then stands still: no further look can start another.
    clock.advance(Duration::from_secs(1));
    wait_until("a spare started", || {
        clock.advance(Duration::from_millis(250));
        rt.diagnostics().pool_threads == 2
    });
    wait_until("feed b finished on the spare", || !b.is_alive());
    assert_eq!(sink.len(), 20);
    assert_eq!(b.metrics().frames_processed, 20);
    assert_eq!(rt.diagnostics().pool_threads, 2);
    // The stuck call returns; once nothing is stuck, the spare leaves at the next look.
    stuck.release();
    wait_until("feed a back on the pool", || {
        a.metrics().frames_processed > 0
    });
    rt.remove_feed(a.id()).unwrap();
    wait_until("the spare left", || {
        clock.advance(Duration::from_millis(250));
        rt.diagnostics().pool_threads == 1
    });
    assert!(rt.diagnostics().detached_threads.is_empty());
}
