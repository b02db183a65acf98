//! HTTP webhook sink against a tiny scripted HTTP server on 127.0.0.1.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_stats, TIMEOUT};
use nv_io::OutputSink;
use nv_sinks::{OutputRecord, Records, Secret, SinkStats, WebhookSink, WebhookSinkConfig};
use nv_test_util::port::RefusedPort;
use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
struct Seen {
    requests: usize,
    /// Keys of accepted (2xx) requests, in arrival order.
    accepted: Vec<String>,
    api_keys: Vec<String>,
    /// Accepted records, as JSON.
    records: Vec<serde_json::Value>,
}

#[derive(Debug)]
struct Script {
    /// Answer 503 to this many requests first.
    fail_first: usize,
    /// Answer 503 while set.
    gated: bool,
    /// Answer this status to everything (overrides the above).
    always: Option<u16>,
}

#[derive(Debug)]
struct Server {
    url: String,
    script: Mutex<Script>,
    seen: Mutex<Seen>,
    changed: Condvar,
}

impl Server {
    fn start(script: Script) -> Arc<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = Arc::new(Self {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            script: Mutex::new(script),
            seen: Mutex::new(Seen::default()),
            changed: Condvar::new(),
        });
        let s = Arc::clone(&server);
        std::thread::Builder::new()
            .name("test-http".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    s.handle(conn);
                }
            })
            .unwrap();
        server
    }

    fn handle(&self, conn: std::net::TcpStream) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut len = 0usize;
        let mut api_key = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            if lower.starts_with("x-api-key:") {
                api_key = line["x-api-key:".len()..].trim().to_owned();
            }
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let status = {
            let mut script = self.script.lock();
            let mut seen = self.seen.lock();
            seen.requests += 1;
            let status = if let Some(s) = script.always {
                s
            } else if script.fail_first > 0 {
                script.fail_first -= 1;
                503
            } else if script.gated {
                503
            } else {
                200
            };
            if status == 200 {
                // Frame and event records both carry `idempotency_key`.
                let records: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
                seen.accepted.extend(
                    records
                        .iter()
                        .map(|r| r["idempotency_key"].as_str().unwrap().to_owned()),
                );
                seen.records.extend(records);
                seen.api_keys.push(api_key);
            }
            self.changed.notify_all();
            status
        };
        let mut conn = conn;
        let _ignored = conn.write_all(
            format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
    }

    fn wait_seen(&self, what: &str, mut pred: impl FnMut(&Seen) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = self.seen.lock();
        while !pred(&seen) {
            assert!(
                !self.changed.wait_until(&mut seen, deadline).timed_out(),
                "timed out waiting for {what}: {seen:?}"
            );
        }
    }
}

fn config(url: &str) -> WebhookSinkConfig {
    let mut c = WebhookSinkConfig::new(url);
    c.retry_initial_ms = 5;
    c.retry_max_ms = 40;
    c.batch_max_delay_ms = 20;
    c
}

#[test]
fn failing_endpoint_is_retried_and_every_record_arrives_once_in_order() {
    let server = Server::start(Script {
        fail_first: 3,
        gated: false,
        always: None,
    });
    let mut c = config(&server.url);
    c.batch_max_records = 8;
    c.headers.insert("X-Api-Key".into(), Secret::new("k3y"));
    let stats = SinkStats::new();
    let sink = WebhookSink::start(c, stats.clone()).unwrap();
    let keys = common::run_feed(30, Box::new(sink), &stats);
    let seen = server.seen.lock();
    assert_eq!(seen.accepted, keys);
    assert!(seen.api_keys.iter().all(|k| k == "k3y"));
    let s = stats.snapshot();
    assert_eq!(
        (
            s.delivered,
            s.failed,
            s.dropped_by_buffer,
            s.retries,
            s.buffered
        ),
        (30, 0, 0, 3, 0)
    );
}

#[test]
fn buffer_bound_drops_oldest_and_counts_exactly() {
    let server = Server::start(Script {
        fail_first: 0,
        gated: true,
        always: None,
    });
    let mut c = config(&server.url);
    c.batch_max_records = 1;
    c.buffer_records = 5;
    let stats = SinkStats::new();
    let mut sink = WebhookSink::start(c, stats.clone()).unwrap();
    let outputs = common::outputs(13);
    sink.emit(outputs[0].clone());
    // The first record is in flight (being retried) once the server has seen it.
    server.wait_seen("first attempt", |s| s.requests >= 1);
    for o in &outputs[1..] {
        sink.emit(o.clone());
    }
    assert_eq!(stats.dropped_by_buffer(), 7);
    server.script.lock().gated = false;
    wait_stats(&stats, "survivors delivered", |s| s.delivered == 6);
    let keys = common::keys(&outputs);
    let mut expected = vec![keys[0].clone()];
    expected.extend_from_slice(&keys[8..]);
    assert_eq!(server.seen.lock().accepted, expected);
    drop(sink);
    let s = stats.snapshot();
    assert_eq!((s.delivered, s.failed, s.dropped_by_buffer), (6, 0, 7));
    assert!(s.retries >= 1);
}

#[test]
fn client_errors_fail_the_batch_without_retrying() {
    let server = Server::start(Script {
        fail_first: 0,
        gated: false,
        always: Some(400),
    });
    let mut c = config(&server.url);
    c.batch_max_records = 1;
    let stats = SinkStats::new();
    let mut sink = WebhookSink::start(c, stats.clone()).unwrap();
    for o in common::outputs(3) {
        sink.emit(o);
    }
    wait_stats(&stats, "3 failed", |s| s.failed == 3);
    assert_eq!(stats.snapshot().retries, 0);
}

#[test]
fn unreachable_endpoint_never_blocks_emit_and_drop_is_bounded() {
    let refused = RefusedPort::new();
    let mut c = config(&format!("http://127.0.0.1:{}/x", refused.port()));
    c.flush_timeout_ms = 300;
    c.buffer_records = 10;
    let stats = SinkStats::new();
    let mut sink = WebhookSink::start(c, stats.clone()).unwrap();
    let started = Instant::now();
    for o in common::outputs(50) {
        sink.emit(o);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    wait_stats(&stats, "retrying", |s| s.retries >= 2);
    let started = Instant::now();
    drop(sink);
    assert!(started.elapsed() < Duration::from_secs(5));
    let s = stats.snapshot();
    assert_eq!(s.delivered, 0);
    assert_eq!(s.failed + s.dropped_by_buffer, 50, "{s:?}");
    assert_eq!(s.buffered, 0);
}

/// `records = ["events"]`: the hook receives event records only, each once, in order.
#[test]
fn events_only_webhook_receives_every_event_and_no_frame() {
    let server = Server::start(Script {
        fail_first: 1,
        gated: false,
        always: None,
    });
    let mut c = config(&server.url);
    c.records = Records::EVENTS;
    let stats = SinkStats::new();
    let mut sink = WebhookSink::start(c, stats.clone()).unwrap();
    // 5 frames, 7 events each (one of every kind, see `common::rich_output`).
    let outputs = common::outputs(5);
    for o in &outputs {
        sink.emit(o.clone());
    }
    wait_stats(&stats, "all delivered", |s| s.delivered == 35);
    drop(sink);
    let seen = server.seen.lock();
    assert_eq!(seen.records.len(), 35);
    assert!(seen.records.iter().all(|r| r["record"] == "event"));
    let want: Vec<String> = outputs
        .iter()
        .flat_map(|o| {
            let key = OutputRecord::from_output(o).idempotency_key;
            (0..7).map(move |i| format!("{key}:{i}"))
        })
        .collect();
    assert_eq!(seen.accepted, want);
    let s = stats.snapshot();
    assert_eq!(
        (s.received, s.delivered, s.failed, s.retries),
        (35, 35, 0, 1)
    );
}

/// `records = ["health"]`: the hook receives the health records, exactly, and no frame.
#[test]
fn health_only_webhook_receives_exact_health_records() {
    let server = Server::start(Script {
        fail_first: 0,
        gated: false,
        always: None,
    });
    let mut c = config(&server.url);
    c.records = Records::HEALTH;
    let stats = SinkStats::new();
    let mut sink = WebhookSink::start(c, stats.clone()).unwrap();
    assert!(sink.selects_health());
    for o in common::outputs(2) {
        sink.emit(o);
    }
    for h in common::health_records() {
        sink.emit_health(&h);
    }
    wait_stats(&stats, "all delivered", |s| s.delivered == 3);
    drop(sink);
    let seen = server.seen.lock();
    let payloads: Vec<Vec<u8>> = seen
        .records
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap())
        .collect();
    common::assert_health_payloads(&payloads);
    assert_eq!(stats.snapshot().received, 3);
}
