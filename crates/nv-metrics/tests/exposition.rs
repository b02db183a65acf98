//! The exposition parses with a real Prometheus parser and carries exact counts.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use nv_metrics::{render_prometheus, spawn_health_counter};
use nv_runtime::{CameraMode, FeedConfig, Runtime, SourceSpec};
use nv_test_util::{tiny_synthetic, CollectingSink, NoOpStage, ScriptedStage, Step};

#[test]
fn exposition_parses_and_reports_exact_counts() {
    let rt = Runtime::builder().build().unwrap();
    let (health, thread) = spawn_health_counter(rt.health_subscribe()).unwrap();
    let sink = CollectingSink::new();
    let feed = rt
        .add_feed(
            FeedConfig::builder()
                .name("door \"cam\"".into())
                .source(SourceSpec::synthetic(tiny_synthetic(Some(20))))
                .camera_mode(CameraMode::Fixed)
                .stage(ScriptedStage::new("flaky").then(Step::Ok).then(Step::Err))
                .stage(NoOpStage("noop"))
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    sink.wait_for(19);
    nv_test_util::wait_until("feed finished", || !feed.is_alive());
    let diag = rt.diagnostics();
    rt.shutdown();
    thread.join().unwrap();
    let text = render_prometheus(&diag, &health);
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("missing {name} {labels:?}"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("not a scalar: {name}"),
        }
    };
    assert_eq!(
        value("nv_feed_frames_processed_total", &[("feed_id", "1")]),
        19.0
    );
    assert_eq!(
        value(
            "nv_feed_frames_dropped_total",
            &[("feed_id", "1"), ("reason", "stage_error")]
        ),
        1.0
    );
    assert_eq!(value("nv_stage_errors_total", &[("stage", "flaky")]), 1.0);
    assert_eq!(
        value(
            "nv_health_occurrences_total",
            &[("event", "stage_error"), ("feed_id", "1")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "nv_health_events_total",
            &[("event", "feed_stopped"), ("feed_id", "1")]
        ),
        1.0
    );
    assert!(text.contains("feed=\"door \\\"cam\\\"\""), "label escaped");
    // One state series per state name; only the current one (a finished file) is 1.
    for state in nv_core::FeedState::NAMES {
        let expected = if state == "stopped" { 1.0 } else { 0.0 };
        assert_eq!(
            value("nv_feed_state", &[("feed_id", "1"), ("state", state)]),
            expected,
            "{state}"
        );
    }
    let hist = scrape
        .samples
        .iter()
        .find(|s| s.metric == "nv_feed_receive_to_sink_seconds")
        .unwrap();
    match &hist.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().unwrap().count, 19.0);
            assert!(
                buckets.windows(2).all(|w| w[0].count <= w[1].count),
                "cumulative"
            );
        }
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(!text.contains("synthetic:"), "no source strings in labels");
}
