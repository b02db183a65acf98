//! The OTLP exporter posts protobuf to a collector endpoint: a receiver on 127.0.0.1 decodes
//! the body with the official OpenTelemetry types and finds every metric of the table,
//! exact counts and the latency histograms' buckets.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use nv_core::clock::SystemClock;
use nv_metrics::{
    spawn_health_counter, BuildInfo, OtlpExporter, Scope, LATENCY_BUCKETS_SECONDS, METRICS,
};
use nv_runtime::{CameraMode, FeedConfig, Runtime, SourceSpec};
use nv_test_util::{tiny_synthetic, CollectingSink, EventStage};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point, Metric};
use prost::Message as _;

struct Request {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// Accepts one request, answers 200 with an empty export response, returns the request.
fn serve_one(listener: &TcpListener) -> Request {
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut length = 0usize;
    let mut content_type = String::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if let Some(v) = lower.strip_prefix("content-type:") {
            v.trim().clone_into(&mut content_type);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .unwrap();
    Request {
        path: request_line.split_whitespace().nth(1).unwrap().to_owned(),
        content_type,
        body,
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).map(|kv| {
        match kv.value.as_ref().unwrap().value.as_ref().unwrap() {
            any_value::Value::StringValue(s) => s.as_str(),
            other => panic!("{other:?}"),
        }
    })
}

fn find<'a>(metrics: &'a [Metric], name: &str) -> &'a Metric {
    metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn posts_every_metric_as_otlp_protobuf() {
    let rt = Runtime::builder().build().unwrap();
    let (health, _thread) = spawn_health_counter(rt.health_subscribe()).unwrap();
    let sink = CollectingSink::new();
    let feed = rt
        .add_feed(
            FeedConfig::builder()
                .name("cam".into())
                .source(SourceSpec::synthetic(tiny_synthetic(Some(12))))
                .camera_mode(CameraMode::Fixed)
                .stage(EventStage("s"))
                .output_sink(sink.clone())
                .lossless()
                .build()
                .unwrap(),
        )
        .unwrap();
    sink.wait_for(12);
    nv_test_util::wait_until("feed finished", || !feed.is_alive());
    // Health-event families have series once an event is counted.
    nv_test_util::wait_until("an event counted", || !health.snapshot().0.is_empty());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let exporter = OtlpExporter::start(
        rt.handle(),
        health,
        &endpoint,
        Duration::from_millis(50),
        "nv-test".into(),
        Some(BuildInfo {
            version: "9.9.9",
            commit: "c0ffee",
            features: "",
        }),
        SystemClock::shared(),
    )
    .unwrap();
    let request = serve_one(&listener);
    exporter.stop();
    assert_eq!(request.path, "/v1/metrics");
    assert_eq!(request.content_type, "application/x-protobuf");
    let req = ExportMetricsServiceRequest::decode(&request.body[..]).unwrap();
    let rm = &req.resource_metrics[0];
    assert_eq!(
        attr(&rm.resource.as_ref().unwrap().attributes, "service.name"),
        Some("nv-test")
    );
    let metrics = &rm.scope_metrics[0].metrics;

    // Every metric of the table that this runtime has series for (no batch coordinator).
    for def in METRICS.iter().filter(|d| d.scope() != Scope::Batch) {
        let m = find(metrics, &def.otlp_name());
        assert_eq!(m.unit, def.unit.ucum(), "{}", m.name);
        assert_eq!(m.description, def.help, "{}", m.name);
    }
    assert_eq!(
        metrics.len(),
        METRICS.iter().filter(|d| d.scope() != Scope::Batch).count()
            - usize::from(nv_metrics::ProcessStats::read().unwrap().max_fds.is_none())
    );

    let processed = find(metrics, "nv.feed.frames_processed");
    let Some(metric::Data::Sum(sum)) = &processed.data else {
        panic!("not a sum: {processed:?}");
    };
    assert!(sum.is_monotonic);
    let dp = &sum.data_points[0];
    assert_eq!(dp.value, Some(number_data_point::Value::AsDouble(12.0)));
    assert_eq!(attr(&dp.attributes, "feed"), Some("cam"));
    assert_eq!(attr(&dp.attributes, "feed_id"), Some("1"));

    // Analytics counted from the events: 12 frames, one entry and one crossing each.
    let crossings = find(metrics, "nv.feed.line_crossings");
    let Some(metric::Data::Sum(sum)) = &crossings.data else {
        panic!("not a sum: {crossings:?}");
    };
    let dp = &sum.data_points[0];
    assert_eq!(dp.value, Some(number_data_point::Value::AsDouble(12.0)));
    assert_eq!(attr(&dp.attributes, "line"), Some("gate"));
    assert_eq!(attr(&dp.attributes, "direction"), Some("right_to_left"));
    assert_eq!(attr(&dp.attributes, "class"), Some("3"));
    let occupancy = find(metrics, "nv.feed.zone_occupancy");
    let Some(metric::Data::Gauge(g)) = &occupancy.data else {
        panic!("not a gauge: {occupancy:?}");
    };
    assert_eq!(
        g.data_points[0].value,
        Some(number_data_point::Value::AsDouble(12.0))
    );
    assert_eq!(attr(&g.data_points[0].attributes, "zone"), Some("door"));

    let build = find(metrics, "nv.build.info");
    let Some(metric::Data::Gauge(g)) = &build.data else {
        panic!("not a gauge: {build:?}");
    };
    assert_eq!(attr(&g.data_points[0].attributes, "version"), Some("9.9.9"));

    // Latency histograms: 12 outputs, buckets over the shared bounds, summing to the count.
    for name in [
        "nv.feed.receive_to_sink",
        "nv.feed.receive_to_output",
        "nv.feed.queue_hold",
    ] {
        let m = find(metrics, name);
        let Some(metric::Data::Histogram(h)) = &m.data else {
            panic!("not a histogram: {m:?}");
        };
        let p = &h.data_points[0];
        assert_eq!(p.count, 12, "{name}");
        assert_eq!(
            p.explicit_bounds,
            LATENCY_BUCKETS_SECONDS.to_vec(),
            "{name}"
        );
        assert_eq!(p.bucket_counts.len(), LATENCY_BUCKETS_SECONDS.len() + 1);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 12, "{name}");
        assert!(
            p.sum.unwrap() > 0.0 && p.max.unwrap() <= p.sum.unwrap(),
            "{name}"
        );
        assert!(p.start_time_unix_nano > 0 && p.start_time_unix_nano <= p.time_unix_nano);
    }
    let stage = find(metrics, "nv.stage.latency");
    let Some(metric::Data::Histogram(h)) = &stage.data else {
        panic!("not a histogram: {stage:?}");
    };
    assert_eq!(attr(&h.data_points[0].attributes, "stage"), Some("s"));
    assert_eq!(h.data_points[0].count, 12);
}
