//! Control plane: wedged workers on remove, pause semantics, frame lag, diagnostics, config.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::{feed, runtime, wait_until, SHORT};
use nv_core::clock::ManualClock;
use nv_core::error::StageError;
use nv_perception::{Stage, StageContext, StageOutput, ValidationMode};
use nv_runtime::{
    BackpressurePolicy, CameraMode, FeedConfig, HealthEvent, NullSink, Runtime, SourceSpec,
    StageId, StopReason, SyntheticSpec,
};
use nv_test_util::{
    collect_events_until, tiny_synthetic, wait_for_event, BlockingStage, CollectingSink, NoOpStage,
    TEST_TIMEOUT,
};

#[test]
fn remove_feed_is_bounded_when_a_stage_hangs() {
    let rt = Runtime::builder()
        .feed_join_timeout(SHORT)
        .health_capacity(4096)
        .build()
        .unwrap();
    let mut health = rt.health_subscribe();
    let stuck = BlockingStage::new("stuck");
    let h = rt
        .add_feed(
            feed(None)
                .stage(stuck.clone())
                .output_sink(NullSink)
                .stage_stall_timeout(Duration::from_millis(100))
                .build()
                .unwrap(),
        )
        .unwrap();
    stuck.wait_entered();
    // The watchdog names the stuck stage before anyone tries to stop the feed.
    let ev = wait_for_event(&mut health, |e| {
        matches!(e, HealthEvent::StageStalled { .. })
    });
    assert!(
        matches!(ev, HealthEvent::StageStalled { stage_id, running_for_ms, .. } if stage_id.as_str() == "stuck" && running_for_ms >= 100),
        "{ev:?}"
    );
    rt.remove_feed(h.id()).unwrap();
    let ev = wait_for_event(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    assert!(
        matches!(
            ev,
            HealthEvent::FeedStopped {
                reason: StopReason::Fatal { .. },
                ..
            }
        ),
        "{ev:?}"
    );
    assert_eq!(
        rt.diagnostics().detached_threads,
        vec!["nv-feed-1".to_string()]
    );
    stuck.release();
    wait_until("detached worker finished", || {
        rt.diagnostics().detached_threads.is_empty()
    });
    assert!(!h.is_alive());
    // The worker's own exit does not add a second FeedStopped.
    rt.shutdown();
    while let Ok(e) = health.recv_timeout(TEST_TIMEOUT) {
        assert!(
            !matches!(e, HealthEvent::FeedStopped { .. }),
            "duplicate {e:?}"
        );
    }
}

#[test]
fn paused_feed_keeps_frames_queued_and_resumes() {
    let clock = ManualClock::new();
    let rt = Runtime::builder().clock(clock.clone()).build().unwrap();
    let sink = CollectingSink::new();
    let spec = SyntheticSpec {
        fps: Some(10.0),
        ..tiny_synthetic(Some(6))
    };
    let h = rt
        .add_feed(
            feed(None)
                .source(SourceSpec::synthetic(spec))
                .backpressure(BackpressurePolicy::drop_newest(4))
                .stage(NoOpStage("s"))
                .output_sink(sink.clone())
                .build()
                .unwrap(),
        )
        .unwrap();
    sink.wait_for(1);
    h.pause().unwrap();
    clock.advance(Duration::from_millis(300));
    wait_until("three frames queued", || {
        h.queue_telemetry().source_depth == 3
    });
    assert_eq!(h.metrics().frames_processed, 1);
    assert_eq!(h.diagnostics().queues.source_capacity, 4);
    h.resume().unwrap();
    sink.wait_for(4);
    clock.advance(Duration::from_secs(1));
    sink.wait_for(6);
    assert_eq!(
        sink.outputs()
            .iter()
            .map(|o| o.frame_seq)
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
}

#[test]
fn frame_lag_is_reported_with_exact_counts() {
    let rt = runtime();
    let mut health = rt.health_subscribe();
    let n = 25;
    rt.add_feed(
        feed(Some(n))
            .frame_lag_threshold(Duration::ZERO)
            .stage(NoOpStage("s"))
            .output_sink(NullSink)
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    let events = collect_events_until(&mut health, |e| {
        matches!(e, HealthEvent::FeedStopped { .. })
    });
    let lagged: u64 = events
        .iter()
        .map(|e| {
            if let HealthEvent::FrameLag { frames_lagged, .. } = e {
                *frames_lagged
            } else {
                0
            }
        })
        .sum();
    assert_eq!(lagged, n);
}

#[test]
fn diagnostics_report_stage_latency_and_feed_identity() {
    let rt = runtime();
    let sink = CollectingSink::new();
    let h = rt
        .add_feed(
            feed(Some(5))
                .name("door-cam".into())
                .stage(NoOpStage("a"))
                .stage(NoOpStage("b"))
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    sink.wait_for(5);
    wait_until("feed finished", || !h.is_alive());
    let d = h.diagnostics();
    assert_eq!(d.name, "door-cam");
    assert!(d.source.starts_with("synthetic:8x8"));
    assert_eq!(
        d.stages
            .iter()
            .map(|s| (s.stage_id.as_str(), s.metrics.frames_processed))
            .collect::<Vec<_>>(),
        vec![("a", 5), ("b", 5)]
    );
    assert_eq!(d.stages[0].latency.count, 5);
    assert_eq!(d.receive_to_sink.count, 5);
    assert_eq!(d.queue_hold.count, 5);
    let rd = rt.diagnostics();
    assert_eq!((rd.feed_count, rd.max_feeds), (1, 64));
}

#[test]
fn config_reports_every_problem_at_once() {
    let err = FeedConfig::builder()
        .backpressure(BackpressurePolicy::drop_oldest(0))
        .sink_queue_capacity(0)
        .max_fps(-1.0)
        .build()
        .unwrap_err();
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "source",
            "camera_mode",
            "output_sink",
            "stages",
            "backpressure.queue_depth",
            "sink_queue_capacity",
            "max_fps"
        ]
    );
    assert!(
        err.to_string()
            .contains("max_fps = -1: must be a finite rate above 0 and at most 1000"),
        "{err}"
    );
    let observed = feed(None)
        .camera_mode(CameraMode::Observed)
        .stage(NoOpStage("s"))
        .output_sink(NullSink)
        .build()
        .unwrap_err();
    assert_eq!(observed.problems[0].field, "view_provider");
    assert!(
        Runtime::builder()
            .max_feeds(0)
            .output_capacity(0)
            .build()
            .unwrap_err()
            .problems
            .len()
            == 2
    );
}

#[test]
fn validation_mode_error_refuses_misordered_stages() {
    struct NeedsDetections;
    impl Stage for NeedsDetections {
        fn id(&self) -> StageId {
            StageId::new("tracker")
        }
        fn process(&mut self, _ctx: &StageContext<'_>) -> Result<StageOutput, StageError> {
            Ok(StageOutput::empty())
        }
        fn capabilities(&self) -> Option<nv_perception::StageCapabilities> {
            Some(nv_perception::StageCapabilities::new().consumes_detections())
        }
    }
    let err = feed(None)
        .stage(NeedsDetections)
        .output_sink(NullSink)
        .validation_mode(ValidationMode::Error)
        .build()
        .unwrap_err();
    assert_eq!(err.problems[0].field, "stages");
    assert!(err.problems[0]
        .value
        .as_deref()
        .unwrap_or("")
        .contains("tracker consumes detections"));
}

/// Capacities from hostile input are refused by the builders with a typed error naming the
/// key, the value and the limit: nothing reaches an allocation sized by them.
#[test]
fn builders_refuse_capacities_above_the_documented_maxima() {
    let err = Runtime::builder()
        .health_capacity(1_000_000_000_000)
        .output_capacity(usize::MAX)
        .max_feeds(usize::MAX)
        .build()
        .unwrap_err();
    let text = err.to_string();
    for want in [
        "health_capacity = 1000000000000: must be at most 65536",
        &format!("output_capacity = {}: must be at most 16384", usize::MAX),
        &format!("max_feeds = {}: must be at most 10000", usize::MAX),
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    let err = feed(None)
        .stage(NoOpStage("s"))
        .output_sink(NullSink)
        .backpressure(BackpressurePolicy::block(1_000_000_000_000))
        .sink_queue_capacity(1_000_000_000_000)
        .restart(nv_core::policy::RestartPolicy::default().with_restart_delay(Duration::MAX))
        .build()
        .unwrap_err();
    let fields: Vec<&str> = err.problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "backpressure.queue_depth",
            "sink_queue_capacity",
            "restart.restart_delay"
        ],
        "{err}"
    );
    let err = feed(None)
        .source(SourceSpec::Rtsp {
            url: "rtsp://viewer:hunter2@/test".into(),
            transport: nv_core::source::RtspTransport::Tcp,
            security: nv_core::source::RtspSecurityPolicy::AllowInsecure,
        })
        .stage(NoOpStage("s"))
        .output_sink(NullSink)
        .build()
        .unwrap_err();
    assert_eq!(err.problems[0].field, "source");
    assert!(err.to_string().contains("has no host"), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
