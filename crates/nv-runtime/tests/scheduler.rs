//! The pool scheduler (`Scheduler::Pool`): per-feed order and exact counts with many feeds
//! on one thread, and the rule for a stage stuck on a pool thread. The rest of the suite
//! runs on the pool too with `NV_TEST_SCHEDULER=pool`.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::feed;
use nv_core::clock::ManualClock;
use nv_core::error::MediaError;
use nv_core::source::{PixelFormat, SourceSpec};
use nv_core::time::MonotonicTs;
use nv_frame::FrameEnvelope;
use nv_runtime::source::{
    FrameSink, PushOutcome, Source, SourceContext, SourceFactory, TickOutcome,
};
use nv_runtime::{FeedHandle, HealthEvent, NullSink, Runtime, Scheduler, StopReason};
use nv_test_util::{collect_events_until, wait_until, BlockingStage, CollectingSink, NoOpStage};
use parking_lot::Mutex;

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

/// A feed whose every frame goes to `stuck` (whose first call holds its thread). Its
/// source never waits for room, so it never runs the feed's turn on its own thread (under
/// `Block` it would, once the queue is full): the stage gets stuck on a pool thread.
fn add_stuck_feed(rt: &Runtime, stuck: &BlockingStage) -> FeedHandle {
    rt.add_feed(
        feed(None)
            .backpressure(nv_runtime::BackpressurePolicy::drop_oldest(4))
            .stage(stuck.clone())
            .output_sink(NullSink)
            .build()
            .unwrap(),
    )
    .unwrap()
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
    let a = add_stuck_feed(&rt, &stuck);
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

/// A [`CollectingSink`] that promises never to block: called on the feed's own turn.
#[derive(Clone, Default)]
struct InlineCollecting(CollectingSink);

impl nv_runtime::OutputSink for InlineCollecting {
    fn emit(&mut self, output: nv_runtime::SharedOutput) {
        self.0.emit(output);
    }
    fn may_block(&self) -> bool {
        false
    }
}

/// A source that hands its `FrameSink` to the test, which pushes from its own thread.
#[derive(Clone, Default)]
struct HandOver(Arc<Mutex<Option<FrameSink>>>);

impl SourceFactory for HandOver {
    fn handles(&self, spec: &SourceSpec) -> bool {
        matches!(spec, SourceSpec::TestPattern { .. })
    }
    fn create(&self, _ctx: &SourceContext) -> Result<Box<dyn Source>, MediaError> {
        Ok(Box::new(self.clone()))
    }
}

impl Source for HandOver {
    fn start(&mut self, sink: FrameSink) -> Result<(), MediaError> {
        *self.0.lock() = Some(sink);
        Ok(())
    }
    fn tick(&mut self, _now: MonotonicTs) -> TickOutcome {
        TickOutcome::running()
    }
    fn stop(&mut self) {}
}

#[test]
fn a_block_feed_goes_on_on_its_source_thread_while_the_only_pool_thread_is_stuck() {
    // The clock stands still, so no spare thread ever starts: whatever feed b gets done
    // while feed a's stage holds the only pool thread, its producer's thread did.
    let clock = ManualClock::new();
    let source = HandOver::default();
    let rt = Runtime::builder()
        .clock(clock.clone())
        .health_capacity(4096)
        .scheduler(Scheduler::Pool { threads: 1 })
        .source_factory(Arc::new(source.clone()))
        .build()
        .unwrap();
    let sink = InlineCollecting::default();
    let b = rt
        .add_feed(
            feed(None)
                .source(SourceSpec::TestPattern {
                    pattern: "hand-over".into(),
                    width: 2,
                    height: 2,
                    fps: 1,
                    frame_count: None,
                })
                .backpressure(nv_runtime::BackpressurePolicy::block(4))
                .stage(NoOpStage("s"))
                .output_sink(sink.clone())
                .build()
                .unwrap(),
        )
        .unwrap();
    wait_until("feed b's source started", || source.0.lock().is_some());
    let frames = source.0.lock().clone().unwrap();
    let stuck = BlockingStage::new("stuck");
    let a = add_stuck_feed(&rt, &stuck);
    // Should the producer wait for the pool after all, the failed test still ends.
    let _release = stuck.release_on_drop();
    stuck.wait_entered();
    let pushed = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&pushed);
    let producer = std::thread::Builder::new()
        .name("producer".into())
        .spawn(move || {
            for _ in 0..20 {
                let frame = FrameEnvelope::new_owned(
                    frames.feed_id(),
                    frames.next_seq(),
                    frames.clock().now(),
                    2,
                    2,
                    PixelFormat::Gray8,
                    vec![0; 4],
                )
                .unwrap();
                assert_eq!(frames.push(frame), PushOutcome::Accepted);
                count.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    wait_until("every frame pushed", || pushed.load(Ordering::SeqCst) == 20);
    producer.join().unwrap();
    // Every push that found the queue full ran the waiting frames first: all 20 frames
    // got in, and all but the last queueful went through the stages to the sink.
    assert_eq!(sink.0.len(), 16);
    assert_eq!(rt.diagnostics().pool_threads, 1);
    // The pool thread comes back and takes the rest, in order.
    stuck.release();
    let seqs: Vec<u64> = sink.0.wait_for(20).iter().map(|o| o.frame_seq).collect();
    assert_eq!(seqs, (0..20).collect::<Vec<_>>());
    rt.remove_feed(a.id()).unwrap();
    rt.remove_feed(b.id()).unwrap();
}
