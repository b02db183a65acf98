//! The OTLP exporter posts well-formed JSON to a collector endpoint.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use nv_core::clock::SystemClock;
use nv_metrics::{spawn_health_counter, OtlpExporter};
use nv_runtime::{CameraMode, FeedConfig, Runtime, SourceSpec};
use nv_test_util::{tiny_synthetic, CollectingSink, NoOpStage};

/// Accepts one request, answers 200, returns its path and body.
fn serve_one(listener: &TcpListener) -> (String, String) {
    let (stream, _) = listener.accept().unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let mut stream = stream;
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .unwrap();
    (
        request_line.split_whitespace().nth(1).unwrap().to_owned(),
        String::from_utf8(body).unwrap(),
    )
}

#[test]
fn posts_otlp_json_metrics() {
    let rt = Runtime::builder().build().unwrap();
    let (health, _thread) = spawn_health_counter(rt.health_subscribe()).unwrap();
    let sink = CollectingSink::new();
    rt.add_feed(
        FeedConfig::builder()
            .name("cam".into())
            .source(SourceSpec::synthetic(tiny_synthetic(Some(12))))
            .camera_mode(CameraMode::Fixed)
            .stage(NoOpStage("s"))
            .output_sink(sink.clone())
            .lossless()
            .build()
            .unwrap(),
    )
    .unwrap();
    sink.wait_for(12);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let exporter = OtlpExporter::start(
        rt.handle(),
        health,
        &endpoint,
        Duration::from_millis(50),
        "nv-test".into(),
        SystemClock::shared(),
    )
    .unwrap();
    let (path, body) = serve_one(&listener);
    exporter.stop();
    assert_eq!(path, "/v1/metrics");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rm = &v["resourceMetrics"][0];
    assert_eq!(
        rm["resource"]["attributes"][0]["value"]["stringValue"],
        "nv-test"
    );
    let metrics = rm["scopeMetrics"][0]["metrics"].as_array().unwrap();
    let processed = metrics
        .iter()
        .find(|m| m["name"] == "nv.feed.frames_processed")
        .unwrap();
    assert_eq!(processed["sum"]["isMonotonic"], true);
    let dp = &processed["sum"]["dataPoints"][0];
    assert_eq!(dp["asDouble"], 12.0);
    assert!(dp["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["key"] == "feed" && a["value"]["stringValue"] == "cam"));
}
