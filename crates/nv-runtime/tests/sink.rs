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
