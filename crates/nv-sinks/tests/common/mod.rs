//! Shared setup for the sink integration tests: outputs that fill every record field, real brokers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::time::{Duration, Instant};

use std::sync::Arc;

use nv_core::geometry::BBox;
use nv_core::id::{FeedId, StageId};
use nv_core::time::{MonotonicTs, WallTs};
use nv_frame::{FrameEnvelope, HostBytes, PixelFormat};
use nv_io::output::{Provenance, StageProvenance, StageResult, ViewProvenance};
use nv_io::{OutputEnvelope, OutputSink, SharedOutput};
use nv_perception::{
    CrossingDirection, DerivedSignal, Detection, DetectionId, DetectionSet, EventKind, EventObject,
    PerceptionEvent, SceneFeature, SceneFeatureValue, SignalValue, Track, TrackId,
    TrackObservation, TrackState,
};
use nv_sinks::{OutputRecord, SinkStats, SinkStatsSnapshot};
use nv_test_util::broker::{Broker, Outage};
use nv_view::ViewState;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// One event of every kind, about track 7 (camera motion: about no object).
pub fn every_event_kind(ts: MonotonicTs, b: BBox) -> Vec<PerceptionEvent> {
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

/// Output `seq` of feed 1, filling every part of the record: detections (one with an
/// embedding), a track, signals of each kind (one non-finite), a distribution scene
/// feature, one event of each kind, stage and view provenance; every 2nd output carries
/// its (tiny) frame. Sinks
/// are tested on outputs built here, not by running the engine: the engine's own tests
/// and the daemon's end-to-end tests cover the two together.
pub fn rich_output(seq: u64) -> SharedOutput {
    rich_output_of(FeedId::new(1), seq)
}

/// [`rich_output`] of another feed.
pub fn rich_output_of(feed: FeedId, seq: u64) -> SharedOutput {
    let ts = MonotonicTs::from_nanos(seq * 40_000_000);
    let wall = WallTs::from_micros(1_700_000_000_000_000 + seq * 40_000);
    let b = BBox::from_xywh(0.1, 0.2, 0.3, 0.4);
    let state = if seq % 2 == 0 {
        TrackState::Confirmed
    } else {
        TrackState::Coasted
    };
    let view = ViewState::fixed_initial();
    let provenance = Provenance {
        stages: vec![StageProvenance {
            stage_id: StageId::new("rich"),
            started_at: ts,
            finished_at: MonotonicTs::from_nanos(ts.as_nanos() + 250_000),
            result: StageResult::Ok,
        }]
        .into(),
        view: ViewProvenance {
            epoch: view.epoch,
            version: view.version,
            validity: view.validity,
            stability_score: view.stability_score,
            motion_source: view.motion_source,
            transition: view.transition,
            decision: None,
        },
        received_at: ts,
        dequeued_at: ts,
        completed_at: MonotonicTs::from_nanos(ts.as_nanos() + 300_000),
        frame_age: None,
        session: 1,
        run_id: 0x5eed,
        frame_included: seq % 2 == 0,
    };
    let mut out = OutputEnvelope::new(feed, seq, ts, wall, provenance);
    out.detections = DetectionSet::from(vec![
        Detection::builder(DetectionId::new(1), 2, 0.9, b)
            .embedding(vec![0.5, -0.25])
            .build(),
        Detection::builder(DetectionId::new(2), 0, 0.4, BBox::new(0.5, 0.5, 0.6, 0.7)).build(),
    ]);
    out.tracks = vec![Track::new(
        TrackId::new(7),
        2,
        state,
        TrackObservation::new(ts, b, 0.9, state, Some(DetectionId::new(1))),
    )];
    out.signals = vec![
        DerivedSignal::new("count", SignalValue::Scalar(2.0), ts),
        DerivedSignal::new("nan", SignalValue::Scalar(f64::NAN), ts),
        DerivedSignal::new("vec", SignalValue::Vector(vec![1.0, f64::INFINITY]), ts),
        DerivedSignal::new("flag", SignalValue::Boolean(true), ts),
        DerivedSignal::new("zone", SignalValue::Categorical("door".into()), ts),
    ];
    out.scene_features = vec![SceneFeature {
        name: "weather".into(),
        value: SceneFeatureValue::Distribution(vec![("sun".into(), 0.7), ("rain".into(), 0.3)]),
        confidence: Some(0.8),
        ts,
    }];
    out.events = every_event_kind(ts, b);
    if seq % 2 == 0 {
        let frame = FrameEnvelope::builder(feed, seq, ts, 4, 2, PixelFormat::Gray8)
            .wall_ts(wall)
            .host(HostBytes::from_vec(vec![0; 8]))
            .expect("an 4x2 gray frame");
        out.frame = Some(frame);
    }
    Arc::new(out)
}

/// `n` outputs of one feed ([`rich_output`] for seq 0..n), in order.
pub fn outputs(n: u64) -> Vec<SharedOutput> {
    (0..n).map(rich_output).collect()
}

/// Emits `n` outputs through `sink` in order, waits until `stats` counts all `n`
/// delivered, then drops the sink (as a feed's end does). Returns the outputs'
/// idempotency keys in order.
pub fn run_feed(n: u64, mut sink: Box<dyn OutputSink>, stats: &SinkStats) -> Vec<String> {
    let outputs = outputs(n);
    for o in &outputs {
        sink.emit(o.clone());
    }
    wait_stats(stats, "all delivered", |s| s.delivered == n);
    sink.flush();
    drop(sink);
    keys(&outputs)
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

/// Wall time every test health record is published at.
pub const HEALTH_WALL_MICROS: u64 = 1_764_068_400_000_000;

/// Health records as the daemon encodes them (run pinned to 0xabc, wall time pinned):
/// feed 1 (`yard`) is added, its source disconnects (a backend detail that quotes a URL
/// with credentials), then a runtime-wide event.
pub fn health_records() -> Vec<nv_io::HealthOutput> {
    use nv_core::error::MediaError;
    use nv_core::health::HealthEvent;
    let mut encoder = nv_sinks::HealthEncoder::with_run(0xabc);
    let wall = WallTs::from_micros(HEALTH_WALL_MICROS);
    [
        HealthEvent::FeedAdded {
            feed_id: FeedId::new(1),
            name: "yard".into(),
        },
        HealthEvent::SourceDisconnected {
            feed_id: FeedId::new(1),
            reason: MediaError::ConnectionFailed {
                redacted_url: "rtsp://***@10.0.0.5/live".into(),
                detail: "refused by rtsp://admin:hunter2@10.0.0.5/live".into(),
            },
        },
        HealthEvent::OutputLagged { messages_lost: 3 },
    ]
    .iter()
    .map(|e| encoder.encode(e, wall))
    .collect()
}

/// The exact records [`health_records`] encodes.
pub fn expected_health() -> Vec<serde_json::Value> {
    let common = |id: u64, event: &str, severity: &str, feed: Option<(u64, &str)>| {
        serde_json::json!({
            "schema_version": 1,
            "record": "health",
            "id": id,
            "wall_micros": HEALTH_WALL_MICROS,
            "event": event,
            "severity": severity,
            "feed_id": feed.map(|f| f.0),
            "feed": feed.map(|f| f.1),
            "idempotency_key": format!("0000000000000abc:health:{id}"),
        })
    };
    let with = |mut v: serde_json::Value, message: &str, data: serde_json::Value| {
        v["message"] = message.into();
        v["data"] = data;
        v
    };
    vec![
        with(
            common(1, "feed_added", "info", Some((1, "yard"))),
            "feed added: yard",
            serde_json::json!({ "name": "yard" }),
        ),
        with(
            common(2, "source_disconnected", "warning", Some((1, "yard"))),
            "source disconnected: connection failed: refused by rtsp://***@10.0.0.5/live (rtsp://***@10.0.0.5/live)",
            serde_json::json!({ "error": {
                "kind": "connection_failed",
                "message": "connection failed: refused by rtsp://***@10.0.0.5/live (rtsp://***@10.0.0.5/live)",
            } }),
        ),
        with(
            common(3, "output_lagged", "warning", None),
            "output subscribers missed 3 outputs",
            serde_json::json!({ "messages_lost": 3 }),
        ),
    ]
}

/// Checks that `payloads` are exactly [`expected_health`], in order, valid against the
/// shipped JSON Schema, and free of the credentials the events quoted.
pub fn assert_health_payloads(payloads: &[Vec<u8>]) {
    let schema: serde_json::Value = serde_json::from_str(nv_sinks::HEALTH_SCHEMA_V1).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let got: Vec<serde_json::Value> = payloads
        .iter()
        .map(|p| {
            let text = std::str::from_utf8(p).unwrap();
            assert!(!text.contains("hunter2"), "credentials in {text}");
            serde_json::from_str(text.trim_end()).unwrap()
        })
        .collect();
    for v in &got {
        assert!(validator.is_valid(v), "{v:#}");
    }
    assert_eq!(got, expected_health());
}
