//! Sink thread behaviour: panics, wedged sinks, reuse across restarts.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{feed, runtime, wait_until, SHORT};
use nv_core::policy::{RestartPolicy, RestartTrigger};
use nv_runtime::{HealthEvent, OutputSink, SharedOutput, StopReason};
use nv_test_util::{
    collect_events_until, CollectingSink, GateSink, NoOpStage, ScriptedStage, Step,
};

struct PanicOnce {
    calls: Arc<AtomicU64>,
}

impl OutputSink for PanicOnce {
    fn emit(&mut self, _o: SharedOutput) {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("sink exploded");
        }
    }
}

#[test]
fn sink_panic_is_reported_and_feed_continues() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let calls = Arc::new(AtomicU64::new(0));
    rt.add_feed(
        feed(Some(10))
            .stage(NoOpStage("s"))
            .output_sink(PanicOnce {
                calls: calls.clone(),
            })
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, HealthEvent::SinkPanic { .. }))
            .count(),
        1
    );
    assert!(matches!(
        events.last(),
        Some(HealthEvent::FeedStopped {
            reason: StopReason::EndOfStream,
            ..
        })
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 10);
}

#[test]
fn wedged_sink_is_detached_within_timeout_and_stop_is_reported_once() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let gate = GateSink::new();
    let h = rt
        .add_feed(
            feed(Some(3))
                .stage(NoOpStage("s"))
                .output_sink(gate.clone())
                .sink_shutdown_timeout(SHORT)
                .build()
                .unwrap(),
        )
        .unwrap();
    gate.wait_entered();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, HealthEvent::SinkTimeout { .. }))
            .count(),
        1
    );
    assert!(matches!(
        events.last(),
        Some(HealthEvent::FeedStopped {
            reason: StopReason::EndOfStream,
            ..
        })
    ));
    assert_eq!(
        rt.diagnostics().detached_threads,
        vec!["nv-sink-1".to_string()]
    );
    gate.open();
    wait_until("detached sink thread finished", || {
        rt.diagnostics().detached_threads.is_empty()
    });
    wait_until("worker finished", || !h.is_alive());
}

#[test]
fn sink_is_reused_across_restarts_and_factory_rebuilds_a_lost_one() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let sink = CollectingSink::new();
    let stage = ScriptedStage::new("p").then(Step::Ok).then(Step::Panic);
    let log = stage.log.clone();
    let restart = RestartPolicy::default()
        .with_max_restarts(3)
        .with_restart_delay(std::time::Duration::ZERO)
        .with_restart_on(RestartTrigger::SourceOrStagePanic);
    rt.add_feed(
        feed(Some(4))
            .restart(restart)
            .stage(stage)
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, HealthEvent::FeedRestarting { .. }))
            .count(),
        1
    );
    // Session 0: one output before the panic; session 1: all 4 frames. Same sink object.
    assert_eq!(sink.len(), 5);
    assert_eq!(sink.flushes(), 2);
    assert_eq!(log.get(&log.starts), 2);
    assert_eq!(
        log.get(&log.epoch_changes),
        1,
        "stages learn about the restart epoch"
    );
    let seqs: Vec<u64> = sink.outputs().iter().map(|o| o.frame_seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq monotonic across restarts: {seqs:?}"
    );
    let sessions: Vec<u32> = sink
        .outputs()
        .iter()
        .map(|o| o.provenance.session)
        .collect();
    assert_eq!(sessions, vec![0, 1, 1, 1, 1]);
    let epochs: Vec<u64> = sink
        .outputs()
        .iter()
        .map(|o| o.provenance.view.epoch.as_u64())
        .collect();
    assert_eq!(epochs, vec![0, 1, 1, 1, 1]);
}

#[test]
fn a_blocking_sink_is_reported_while_it_stalls_and_stop_still_works() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let gate = GateSink::new();
    let h = rt
        .add_feed(
            feed(None)
                .stage(NoOpStage("s"))
                .output_sink(gate.clone())
                .lossless()
                .sink_queue_capacity(1)
                .sink_shutdown_timeout(SHORT)
                .build()
                .unwrap(),
        )
        .unwrap();
    gate.wait_entered();
    // The feed is held by the sink (lossless): it says so, repeatedly, with growing times.
    let first = nv_test_util::wait_for_event(&mut health, |e| {
        matches!(e, HealthEvent::SinkStalled { .. })
    });
    let second = nv_test_util::wait_for_event(&mut health, |e| {
        matches!(e, HealthEvent::SinkStalled { .. })
    });
    let ms = |e: &HealthEvent| {
        if let HealthEvent::SinkStalled { blocked_for_ms, .. } = e {
            *blocked_for_ms
        } else {
            0
        }
    };
    assert!(ms(&second) > ms(&first));
    // Stopping is not blocked by the stuck sink: the queue is closed, the wedged sink
    // thread is detached after its timeout.
    rt.remove_feed(h.id()).unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert!(matches!(
        events.last(),
        Some(HealthEvent::FeedStopped {
            reason: StopReason::UserRequested,
            ..
        })
    ));
    gate.open();
}

/// A sink that declares it never blocks; records the thread each output arrived on.
#[derive(Clone, Default)]
struct InlineRecorder {
    seen: Arc<parking_lot::Mutex<Vec<(u64, String)>>>,
    flushes: Arc<AtomicU64>,
    panic_on: Option<u64>,
}

impl OutputSink for InlineRecorder {
    fn emit(&mut self, o: SharedOutput) {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.seen.lock().push((o.frame_seq, thread));
        assert_ne!(Some(o.frame_seq), self.panic_on, "sink exploded");
    }
    fn flush(&mut self) {
        self.flushes.fetch_add(1, Ordering::SeqCst);
    }
    fn may_block(&self) -> bool {
        false
    }
}

/// Records the thread each frame's stage call ran on.
#[derive(Clone, Default)]
struct StageThreads(Arc<parking_lot::Mutex<Vec<(u64, String)>>>);

impl nv_perception::Stage for StageThreads {
    fn id(&self) -> nv_runtime::StageId {
        nv_runtime::StageId::new("threads")
    }
    fn process(
        &mut self,
        ctx: &nv_perception::StageContext<'_>,
    ) -> Result<nv_perception::StageOutput, nv_core::error::StageError> {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.0.lock().push((ctx.frame.seq(), thread));
        Ok(nv_perception::StageOutput::empty())
    }
}

#[test]
fn a_sink_that_never_blocks_is_called_on_the_feed_worker_in_order() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let sink = InlineRecorder {
        panic_on: Some(3),
        ..InlineRecorder::default()
    };
    let stage = StageThreads::default();
    let n = 50u64;
    let h = rt
        .add_feed(
            feed(Some(n))
                .stage(stage.clone())
                .output_sink(sink.clone())
                .build()
                .unwrap(),
        )
        .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    let seen = sink.seen.lock().clone();
    assert_eq!(
        seen.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (0..n).collect::<Vec<_>>(),
        "every output once, in order"
    );
    // Each output reached the sink on the thread that had just run the frame's stages
    // (the feed's own thread, the pool thread running its task, or on the pool the
    // source's thread, which runs the task while it waits for room), with no hand-off.
    assert_eq!(seen, *stage.0.lock());
    let worker = format!("nv-feed-{}", h.id().as_u64());
    let source = format!("nv-synth-{}", h.id().as_u64());
    assert!(
        seen.iter()
            .all(|(_, t)| *t == worker || *t == source || t.starts_with("nv-pool-")),
        "{seen:?}"
    );
    // The panic lost nothing but itself, was reported once, and the feed went on.
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, HealthEvent::SinkPanic { .. }))
            .count(),
        1
    );
    assert!(matches!(
        events.last(),
        Some(HealthEvent::FeedStopped {
            reason: StopReason::EndOfStream,
            ..
        })
    ));
    assert_eq!(sink.flushes.load(Ordering::SeqCst), 1);
    let m = h.metrics();
    assert_eq!(m.outputs_to_sink, n);
    assert_eq!(h.queue_telemetry().sink_depth, 0);
    assert_eq!(h.diagnostics().receive_to_sink.count, n);
}
