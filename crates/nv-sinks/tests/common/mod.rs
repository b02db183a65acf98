//! Shared setup for the sink integration tests: real runtime outputs, real brokers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::{Duration, Instant};

use nv_core::error::StageError;
use nv_core::geometry::BBox;
use nv_core::policy::RestartPolicy;
use nv_perception::{
    CrossingDirection, DerivedSignal, Detection, DetectionId, EventKind, EventObject,
    PerceptionEvent, SceneFeature, SceneFeatureValue, SignalValue, Stage, StageContext, StageId,
    StageOutput, Track, TrackId, TrackObservation, TrackState,
};
use nv_runtime::output::FrameInclusion;
use nv_runtime::{CameraMode, FeedConfig, OutputSink, Runtime, SharedOutput, SourceSpec};
use nv_sinks::{OutputRecord, SinkStats, SinkStatsSnapshot};
use nv_test_util::broker::{Broker, Outage};
use nv_test_util::{tiny_synthetic, CollectingSink};

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One event of every kind, about track 7 (camera motion: about no object).
pub fn every_event_kind(ts: nv_core::time::MonotonicTs, b: BBox) -> Vec<PerceptionEvent> {
    let object = Some(EventObject {
        track_id: TrackId::new(7),
        class_id: 2,
        confidence: 0.9,
        bbox: b,
    });
    let dwell = Duration::from_millis(1500);
    [
        EventKind::ObjectAppeared,
        EventKind::ZoneEnter {
            zone: "door".into(),
        },
        EventKind::ZoneDwell {
            zone: "door".into(),
            dwell,
        },
        EventKind::ZoneExit {
            zone: "door".into(),
            dwell,
        },
        EventKind::LineCrossed {
            line: "gate".into(),
            direction: CrossingDirection::LeftToRight,
        },
        EventKind::ObjectLost,
    ]
    .into_iter()
    .map(|kind| PerceptionEvent::new(ts, kind, object))
    .chain([PerceptionEvent::new(
        ts,
        EventKind::CameraMotion {
            motion: "pan".into(),
        },
        None,
    )])
    .collect()
}

/// A stage that fills every part of the output: detections (one with an embedding), a
/// track, signals of each kind (one non-finite), a distribution scene feature and one
/// event of each kind.
#[derive(Debug)]
pub struct RichStage;

impl Stage for RichStage {
    fn id(&self) -> StageId {
        StageId::new("rich")
    }
    fn process(&mut self, ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
        let ts = ctx.frame.ts();
        let seq = ctx.frame.seq();
        let b = BBox::from_xywh(0.1, 0.2, 0.3, 0.4);
        let dets = vec![
            Detection::builder(DetectionId::new(1), 2, 0.9, b)
                .embedding(vec![0.5, -0.25])
                .build(),
            Detection::builder(DetectionId::new(2), 0, 0.4, BBox::new(0.5, 0.5, 0.6, 0.7)).build(),
        ];
        let state = if seq % 2 == 0 {
            TrackState::Confirmed
        } else {
            TrackState::Coasted
        };
        let track = Track::new(
            TrackId::new(7),
            2,
            state,
            TrackObservation::new(ts, b, 0.9, state, Some(DetectionId::new(1))),
        );
        let mut out = StageOutput::build()
            .detections(dets)
            .tracks(vec![track])
            .signal(DerivedSignal::new("count", SignalValue::Scalar(2.0), ts))
            .signal(DerivedSignal::new("nan", SignalValue::Scalar(f64::NAN), ts))
            .signal(DerivedSignal::new(
                "vec",
                SignalValue::Vector(vec![1.0, f64::INFINITY]),
                ts,
            ))
            .signal(DerivedSignal::new("flag", SignalValue::Boolean(true), ts))
            .signal(DerivedSignal::new(
                "zone",
                SignalValue::Categorical("door".into()),
                ts,
            ))
            .scene_feature(SceneFeature {
                name: "weather".into(),
                value: SceneFeatureValue::Distribution(vec![
                    ("sun".into(), 0.7),
                    ("rain".into(), 0.3),
                ]),
                confidence: Some(0.8),
                ts,
            })
            .finish();
        out.events = every_event_kind(ts, b);
        Ok(out)
    }
}

pub fn feed_config(frames: u64, sink: Box<dyn OutputSink>) -> FeedConfig {
    FeedConfig::builder()
        .source(SourceSpec::synthetic(tiny_synthetic(Some(frames))))
        .camera_mode(CameraMode::Fixed)
        .stage(RichStage)
        .frame_inclusion(FrameInclusion::sampled(2))
        .restart(RestartPolicy::never())
        .boxed_output_sink(sink)
        .lossless()
        .build()
        .unwrap()
}

/// `n` real outputs of one feed (synthetic source, [`RichStage`], every 2nd frame
/// carried), in order.
pub fn outputs(n: u64) -> Vec<SharedOutput> {
    let rt = Runtime::builder().build().unwrap();
    let sink = CollectingSink::new();
    rt.add_feed(feed_config(n, Box::new(sink.clone()))).unwrap();
    let out = sink.wait_for(usize::try_from(n).unwrap());
    rt.shutdown();
    assert_eq!(out.len() as u64, n);
    out
}

/// Runs one lossless feed of `n` frames through `sink` on a real runtime, waits until
/// `stats` counts all `n` delivered, then shuts the runtime down (dropping the sink).
/// Returns the outputs' idempotency keys in feed order.
pub fn run_feed(n: u64, sink: Box<dyn OutputSink>, stats: &SinkStats) -> Vec<String> {
    let rt = Runtime::builder().build().unwrap();
    let mut sub = rt.output_subscribe();
    rt.add_feed(feed_config(n, sink)).unwrap();
    let mut keys = Vec::new();
    while keys.len() < usize::try_from(n).unwrap() {
        let out = sub.recv_timeout(TIMEOUT).expect("output");
        keys.push(OutputRecord::from_output(&out).idempotency_key);
    }
    wait_stats(stats, "all delivered", |s| s.delivered == n);
    rt.shutdown();
    keys
}

/// Emits one output at a time, each after the previous one was delivered.
pub fn emit_paced(sink: &mut dyn OutputSink, stats: &SinkStats, outputs: &[SharedOutput]) {
    for o in outputs {
        let before = stats.delivered();
        sink.emit(o.clone());
        wait_stats(stats, "paced delivery", |s| s.delivered > before);
    }
}

/// Waits (on counter changes, not sleeps) until `pred` holds.
pub fn wait_stats(
    stats: &SinkStats,
    what: &str,
    pred: impl FnMut(&SinkStatsSnapshot) -> bool,
) -> SinkStatsSnapshot {
    let (snap, ok) = stats.wait_until(TIMEOUT, pred);
    assert!(ok, "timed out waiting for {what}: {snap:?}");
    snap
}

/// Polls a condition that has no event of its own, with a bounded deadline.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

pub fn key_of(payload: &[u8]) -> String {
    let r: OutputRecord = serde_json::from_slice(payload).unwrap();
    r.idempotency_key
}

pub fn keys(outputs: &[SharedOutput]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| OutputRecord::from_output(o).idempotency_key)
        .collect()
}

/// A broker outage that a sink with `buffer_records = 5` rides out, on 30 `outputs`: 10
/// records delivered one at a time, `received` (waits for what must have arrived by now),
/// the broker taken down by `outage`, 12 records emitted while it is down (5 fit: the 7
/// oldest are dropped and counted), the broker back on its port (the 5 buffered are
/// delivered), 8 more delivered one at a time. Returns the keys that must have arrived,
/// in order.
pub fn ride_out_outage(
    sink: &mut dyn OutputSink,
    stats: &SinkStats,
    outputs: &[SharedOutput],
    broker: &mut Broker,
    outage: Outage,
    received: impl FnOnce(),
) -> Vec<String> {
    assert_eq!(outputs.len(), 30, "the scenario's counts assume 30 outputs");
    emit_paced(sink, stats, &outputs[..10]);
    received();
    outage.apply(broker);
    wait_stats(stats, "disconnect noticed", |s| !s.connected);
    for o in &outputs[10..22] {
        sink.emit(o.clone());
    }
    assert_eq!(stats.dropped_by_buffer(), 7);
    broker.start();
    wait_stats(stats, "buffer delivered after reconnect", |s| {
        s.delivered == 15
    });
    emit_paced(sink, stats, &outputs[22..]);
    let keys = keys(outputs);
    keys[..10].iter().chain(&keys[17..]).cloned().collect()
}
