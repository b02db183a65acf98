//! Cross-feed batching: dispatch rules, routing, failures, timeouts, fairness, shutdown.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{feed, runtime, wait_until};
use nv_core::error::{NvError, RuntimeError, StageError};
use nv_core::geometry::BBox;
use nv_core::id::DetectionId;
use nv_perception::{BatchEntry, BatchProcessor, Detection, StageOutput};
use nv_runtime::{BatchConfig, HealthEvent, NullSink, Runtime, StageId};
use nv_test_util::{collect_events_until, CollectingSink, NoOpStage, TEST_TIMEOUT};
use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct Shared {
    batches: Mutex<Vec<Vec<u64>>>,
    gate_closed: Mutex<bool>,
    gate: Condvar,
    entered: AtomicU64,
    stops: AtomicU64,
}

/// Tags each entry with a detection whose id is the feed id; scripted failures and a gate.
struct Tagger {
    id: &'static str,
    shared: Arc<Shared>,
    fail_batches: Vec<u64>,
    panic_batches: Vec<u64>,
    calls: u64,
    start: Result<(), ()>,
    start_delay: Option<Duration>,
}

impl Tagger {
    fn new(id: &'static str) -> (Self, Arc<Shared>) {
        let shared = Arc::new(Shared::default());
        (
            Self {
                id,
                shared: shared.clone(),
                fail_batches: vec![],
                panic_batches: vec![],
                calls: 0,
                start: Ok(()),
                start_delay: None,
            },
            shared,
        )
    }
}

impl Shared {
    fn close_gate(&self) {
        *self.gate_closed.lock() = true;
    }
    fn open_gate(&self) {
        *self.gate_closed.lock() = false;
        self.gate.notify_all();
    }
    fn batch_feeds(&self) -> Vec<Vec<u64>> {
        self.batches.lock().clone()
    }
}

impl BatchProcessor for Tagger {
    fn id(&self) -> StageId {
        StageId::new(self.id)
    }
    fn process(&mut self, entries: &mut [BatchEntry]) -> Result<(), StageError> {
        self.shared.entered.fetch_add(1, Ordering::SeqCst);
        {
            let mut closed = self.shared.gate_closed.lock();
            while *closed {
                self.shared.gate.wait(&mut closed);
            }
        }
        let call = self.calls;
        self.calls += 1;
        self.shared
            .batches
            .lock()
            .push(entries.iter().map(|e| e.feed_id.as_u64()).collect());
        if self.panic_batches.contains(&call) {
            panic!("model crashed");
        }
        if self.fail_batches.contains(&call) {
            return Err(StageError::processing(self.id(), "inference failed"));
        }
        for e in entries.iter_mut() {
            let d = Detection::builder(
                DetectionId::new(e.feed_id.as_u64()),
                0,
                0.5,
                BBox::new(0.0, 0.0, 0.1, 0.1),
            )
            .build();
            e.output = Some(StageOutput::with_detections(vec![d]));
        }
        Ok(())
    }
    fn on_start(&mut self) -> Result<(), StageError> {
        if let Some(d) = self.start_delay {
            std::thread::sleep(d);
        }
        self.start.map_err(|()| StageError::DependencyUnavailable {
            stage_id: self.id(),
            detail: "model file missing".into(),
        })
    }
    fn on_stop(&mut self) -> Result<(), StageError> {
        self.shared.stops.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn full_batches_dispatch_at_once_and_results_go_back_to_their_feed() {
    let rt = runtime();
    let (p, shared) = Tagger::new("tagger");
    let batch = rt.create_batch(p, BatchConfig::new(2, HOUR)).unwrap();
    let sinks: Vec<CollectingSink> = (0..2).map(|_| CollectingSink::new()).collect();
    let feeds: Vec<_> = sinks
        .iter()
        .map(|s| {
            rt.add_feed(
                feed(Some(10))
                    .batch(batch.clone())
                    .stage(NoOpStage("post"))
                    .output_sink(s.clone())
                    .lossless()
                    .build()
                    .unwrap(),
            )
            .unwrap()
        })
        .collect();
    for (f, s) in feeds.iter().zip(&sinks) {
        let out = s.wait_for(10);
        assert!(
            out.iter()
                .all(|o| o.detections.detections[0].id.as_u64() == f.id().as_u64()),
            "routed to its feed"
        );
        assert_eq!(
            out[0]
                .provenance
                .stages
                .iter()
                .map(|p| p.stage_id.as_str())
                .collect::<Vec<_>>(),
            vec!["tagger", "post"]
        );
    }
    // With one item in flight per feed and two feeds, every batch is exactly full.
    assert!(shared.batch_feeds().iter().all(|b| b.len() == 2));
    let m = batch.metrics();
    assert_eq!(
        (m.batches_dispatched, m.items_processed, m.items_rejected),
        (10, 20, 0)
    );
    assert!((m.avg_fill_ratio() - 1.0).abs() < 1e-9);
}

#[test]
fn partial_batches_dispatch_after_max_latency() {
    let rt = runtime();
    let (p, shared) = Tagger::new("tagger");
    let latency = Duration::from_millis(20);
    let batch = rt.create_batch(p, BatchConfig::new(4, latency)).unwrap();
    let sink = CollectingSink::new();
    rt.add_feed(
        feed(Some(3))
            .batch(batch.clone())
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    sink.wait_for(3);
    assert_eq!(shared.batch_feeds(), vec![vec![1], vec![1], vec![1]]);
    let m = batch.metrics();
    assert_eq!(m.formation.count, 3);
    assert!(
        m.formation.quantile(0.0) >= latency,
        "{:?}",
        m.formation.quantile(0.0)
    );
}

#[test]
fn processor_errors_and_panics_fail_only_their_batch() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let (mut p, _shared) = Tagger::new("tagger");
    p.fail_batches = vec![1];
    p.panic_batches = vec![3];
    let batch = rt.create_batch(p, BatchConfig::new(1, HOUR)).unwrap();
    let sink = CollectingSink::new();
    let h = rt
        .add_feed(
            feed(Some(6))
                .batch(batch.clone())
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
        sink.outputs()
            .iter()
            .map(|o| o.frame_seq)
            .collect::<Vec<_>>(),
        vec![0, 2, 4, 5]
    );
    assert_eq!(h.metrics().dropped(nv_runtime::DropReason::Batch), 2);
    let m = batch.metrics();
    assert_eq!(
        (m.items_processed, m.items_failed, m.consecutive_errors),
        (4, 2, 0)
    );
    rt.shutdown();
    let mut all = events;
    while let Ok(e) = health.recv_timeout(TEST_TIMEOUT) {
        all.push(e);
    }
    let reported: u64 = all
        .iter()
        .map(|e| {
            if let HealthEvent::BatchError { count, .. } = e {
                *count
            } else {
                0
            }
        })
        .sum();
    assert_eq!(reported, 2, "each failed batch reported once, not per feed");
    assert!(!all.iter().any(|e| matches!(
        e,
        HealthEvent::StageError { .. } | HealthEvent::StagePanic { .. }
    )));
}

#[test]
fn full_submission_queue_rejects_without_blocking_the_feed() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let (p, shared) = Tagger::new("tagger");
    shared.close_gate();
    let batch = rt
        .create_batch(p, BatchConfig::new(1, HOUR).with_queue_capacity(1))
        .unwrap();
    let add = |frames: u64, sink: &CollectingSink| {
        rt.add_feed(
            feed(Some(frames))
                .batch(batch.clone())
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap()
    };
    let (a, b, c) = (
        CollectingSink::new(),
        CollectingSink::new(),
        CollectingSink::new(),
    );
    add(1, &a);
    wait_until("first item in the processor", || {
        shared.entered.load(Ordering::SeqCst) == 1
    });
    add(1, &b);
    wait_until("second item queued", || batch.metrics().pending_items == 1);
    // The queue is full: every frame of a third feed is refused at once, and that feed
    // runs to its end without waiting for the processor.
    let third = add(3, &c);
    wait_until("third feed finished", || !third.is_alive());
    assert_eq!(batch.metrics().items_rejected, 3);
    assert_eq!(third.metrics().dropped(nv_runtime::DropReason::Batch), 3);
    shared.open_gate();
    let mut stopped = 0;
    let mut rejected_events = 0;
    while stopped < 3 {
        match health.recv_timeout(TEST_TIMEOUT).unwrap() {
            HealthEvent::FeedStopped { .. } => stopped += 1,
            HealthEvent::BatchSubmissionRejected { dropped_count, .. } => {
                rejected_events += dropped_count
            }
            _ => {}
        }
    }
    assert_eq!(rejected_events, 3);
    assert_eq!((a.len(), b.len(), c.len()), (1, 1, 0));
}

#[test]
fn hung_processor_is_bounded_by_response_timeout_and_shutdown_does_not_deadlock() {
    let rt = Runtime::builder()
        .feed_join_timeout(Duration::from_millis(300))
        .health_capacity(4096)
        .build()
        .unwrap();
    let mut health = rt.health_subscribe();
    let (p, shared) = Tagger::new("hung");
    shared.close_gate();
    let config = BatchConfig::new(1, Duration::from_millis(5))
        .with_response_timeout(Duration::from_millis(100));
    let batch = rt.create_batch(p, config).unwrap();
    rt.add_feed(
        feed(Some(3))
            .batch(batch.clone())
            .output_sink(NullSink)
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    let sum = |f: &dyn Fn(&HealthEvent) -> u64| events.iter().map(f).sum::<u64>();
    assert_eq!(
        sum(&|e| if let HealthEvent::BatchTimeout {
            timed_out_count, ..
        } = e
        {
            *timed_out_count
        } else {
            0
        }),
        1
    );
    // The orphan still occupies the feed's single in-flight slot.
    assert_eq!(
        sum(
            &|e| if let HealthEvent::BatchInFlightExceeded { rejected_count, .. } = e {
                *rejected_count
            } else {
                0
            }
        ),
        2
    );
    let m = batch.metrics();
    assert_eq!((m.items_timed_out, m.items_in_flight_rejected), (1, 2));
    let t = Instant::now();
    rt.shutdown();
    assert!(t.elapsed() < TEST_TIMEOUT);
    shared.open_gate();
}

#[test]
fn shutdown_drains_queued_items_before_on_stop() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let (p, shared) = Tagger::new("tagger");
    shared.close_gate();
    let batch = rt.create_batch(p, BatchConfig::new(1, HOUR)).unwrap();
    for _ in 0..2 {
        rt.add_feed(
            feed(None)
                .batch(batch.clone())
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    wait_until("one processing, one queued", || {
        shared.entered.load(Ordering::SeqCst) == 1 && batch.metrics().pending_items == 1
    });
    let handle = rt.handle();
    let closer = std::thread::Builder::new()
        .name("shutdown".into())
        .spawn(move || handle.shutdown())
        .unwrap();
    wait_until("coordinator told to stop", || !batch.is_running());
    shared.open_gate();
    closer.join().unwrap();
    assert_eq!(shared.stops.load(Ordering::SeqCst), 1);
    assert_eq!(
        shared.batch_feeds().len(),
        1,
        "the queued item was answered, not processed"
    );
    let mut stopped = 0;
    while let Ok(e) = health.recv_timeout(TEST_TIMEOUT) {
        assert!(
            !matches!(e, HealthEvent::StageError { .. }),
            "expected shutdown is silent: {e:?}"
        );
        stopped += u32::from(matches!(e, HealthEvent::FeedStopped { .. }));
    }
    assert_eq!(stopped, 2);
}

#[test]
fn removing_a_batch_is_reported_once_per_feed() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let (p, shared) = Tagger::new("tagger");
    let batch = rt.create_batch(p, BatchConfig::new(1, HOUR)).unwrap();
    let h = rt
        .add_feed(
            feed(None)
                .batch(batch.clone())
                .output_sink(NullSink)
                .build()
                .unwrap(),
        )
        .unwrap();
    wait_until("some frames batched", || {
        batch.metrics().items_processed > 3
    });
    rt.remove_batch(StageId::new("tagger")).unwrap();
    assert_eq!(shared.stops.load(Ordering::SeqCst), 1);
    let ev =
        nv_test_util::wait_for_event(&mut health, |e| matches!(e, HealthEvent::StageError { .. }));
    assert!(matches!(ev, HealthEvent::StageError { count: 1, .. }));
    let before = h.metrics().dropped(nv_runtime::DropReason::Batch);
    wait_until("frames keep being dropped at the batch point", || {
        h.metrics().dropped(nv_runtime::DropReason::Batch) > before + 10
    });
    rt.remove_feed(h.id()).unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, HealthEvent::StageError { .. })),
        "reported once per session"
    );
    assert!(matches!(
        rt.remove_batch(StageId::new("tagger")),
        Err(RuntimeError::BatchNotFound { .. })
    ));
}

#[test]
fn create_batch_validates_starts_and_refuses_duplicates() {
    let rt = runtime();
    let bad = rt
        .create_batch(Tagger::new("t").0, BatchConfig::new(0, Duration::ZERO))
        .unwrap_err();
    let NvError::Config(c) = bad else {
        panic!("{bad}")
    };
    assert_eq!(c.problems.len(), 2);

    let (mut failing, _) = Tagger::new("broken");
    failing.start = Err(());
    let err = rt
        .create_batch(failing, BatchConfig::default())
        .unwrap_err();
    assert!(matches!(
        &err,
        NvError::Runtime(RuntimeError::BatchStartFailed { .. })
    ));
    assert!(std::error::Error::source(&err).is_some() || err.to_string().contains("broken"));

    let (mut slow, _) = Tagger::new("slow");
    slow.start_delay = Some(Duration::from_millis(500));
    let err = rt
        .create_batch(
            slow,
            BatchConfig::default().with_startup_timeout(Duration::from_millis(50)),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        NvError::Runtime(RuntimeError::BatchStartTimedOut { .. })
    ));

    let rt = Arc::new(runtime());
    let winners: Vec<bool> = (0..4)
        .map(|_| {
            let rt = Arc::clone(&rt);
            std::thread::Builder::new()
                .name("creator".into())
                .spawn(move || {
                    rt.create_batch(Tagger::new("same").0, BatchConfig::default())
                        .is_ok()
                })
                .unwrap()
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert_eq!(winners.iter().filter(|w| **w).count(), 1);
}

#[test]
fn a_fast_and_a_slow_feed_both_get_served() {
    let rt = runtime();
    let (p, shared) = Tagger::new("tagger");
    // Batches of one, queue room for one item per feed: every batch is a choice between
    // the two feeds, made by the fair formation order.
    let batch = rt
        .create_batch(p, BatchConfig::new(1, HOUR).with_queue_capacity(2))
        .unwrap();
    let fast = CollectingSink::new();
    let slow = CollectingSink::new();
    rt.add_feed(
        feed(Some(200))
            .batch(batch.clone())
            .output_sink(fast.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    rt.add_feed(
        feed(Some(20))
            .batch(batch.clone())
            .output_sink(slow.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    fast.wait_for(200);
    slow.wait_for(20);
    assert_eq!(batch.metrics().items_rejected, 0);
    let per_feed = |f: u64| {
        shared
            .batch_feeds()
            .iter()
            .flatten()
            .filter(|x| **x == f)
            .count()
    };
    assert_eq!((per_feed(1), per_feed(2)), (200, 20));
}
