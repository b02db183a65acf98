//! OTLP/HTTP (JSON) export: the same figures as the Prometheus exposition, pushed to an
//! OpenTelemetry collector's `/v1/metrics` on an interval by a named thread.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nv_core::clock::SharedClock;
use nv_io::sync::Waiter;
use nv_runtime::{RuntimeDiagnostics, RuntimeHandle};
use serde_json::{json, Value};

use crate::health::HealthCounters;

fn attr(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn gauge(name: &str, unit: &str, points: Vec<Value>) -> Value {
    json!({ "name": name, "unit": unit, "gauge": { "dataPoints": points } })
}

fn counter(name: &str, points: Vec<Value>) -> Value {
    // Cumulative temporality (2): values are totals since the feed started.
    json!({ "name": name, "sum": { "dataPoints": points, "aggregationTemporality": 2, "isMonotonic": true } })
}

fn point(value: f64, time_nanos: u64, attributes: Vec<Value>) -> Value {
    json!({ "asDouble": value, "timeUnixNano": time_nanos.to_string(), "attributes": attributes })
}

/// One OTLP `ExportMetricsServiceRequest` (JSON encoding) for a diagnostics snapshot.
pub fn otlp_request(
    diag: &RuntimeDiagnostics,
    health: &HealthCounters,
    service_name: &str,
) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let feed_attrs = |f: &nv_runtime::FeedDiagnostics| {
        vec![
            attr("feed_id", &f.feed_id.as_u64().to_string()),
            attr("feed", &f.name),
        ]
    };
    let per_feed = |get: &dyn Fn(&nv_runtime::FeedDiagnostics) -> f64| -> Vec<Value> {
        diag.feeds
            .iter()
            .map(|f| point(get(f), now, feed_attrs(f)))
            .collect()
    };
    let mut metrics = vec![
        gauge(
            "nv.runtime.uptime",
            "s",
            vec![point(diag.uptime.as_secs_f64(), now, vec![])],
        ),
        gauge(
            "nv.runtime.feeds",
            "1",
            vec![point(diag.feed_count as f64, now, vec![])],
        ),
        counter(
            "nv.runtime.output_messages_lost",
            vec![point(diag.output_messages_lost as f64, now, vec![])],
        ),
        gauge(
            "nv.feed.alive",
            "1",
            per_feed(&|f| f64::from(u8::from(f.alive))),
        ),
        counter(
            "nv.feed.frames_received",
            per_feed(&|f| f.metrics.frames_received as f64),
        ),
        counter(
            "nv.feed.frames_processed",
            per_feed(&|f| f.metrics.frames_processed as f64),
        ),
        counter(
            "nv.feed.frames_dropped",
            per_feed(&|f| f.metrics.frames_dropped() as f64),
        ),
        counter(
            "nv.feed.restarts",
            per_feed(&|f| f64::from(f.metrics.restarts)),
        ),
        gauge(
            "nv.feed.queue.source_depth",
            "1",
            per_feed(&|f| f.queues.source_depth as f64),
        ),
        gauge(
            "nv.feed.queue.sink_depth",
            "1",
            per_feed(&|f| f.queues.sink_depth as f64),
        ),
        gauge(
            "nv.feed.latency.receive_to_sink.p99",
            "s",
            per_feed(&|f| f.receive_to_sink.quantile(0.99).as_secs_f64()),
        ),
        gauge(
            "nv.feed.tracks_active",
            "1",
            per_feed(&|f| f.metrics.tracks_active as f64),
        ),
    ];
    let (rows, _) = health.snapshot();
    metrics.push(counter(
        "nv.health.events",
        rows.iter()
            .map(|(event, feed, n, _)| {
                point(
                    *n as f64,
                    now,
                    vec![attr("event", event), attr("feed_id", &feed.to_string())],
                )
            })
            .collect(),
    ));
    json!({
        "resourceMetrics": [{
            "resource": { "attributes": [attr("service.name", service_name)] },
            "scopeMetrics": [{ "scope": { "name": "nextvision", "version": env!("CARGO_PKG_VERSION") }, "metrics": metrics }]
        }]
    })
}

/// Pushes metrics to `endpoint` (e.g. `http://127.0.0.1:4318`) every `interval`.
#[derive(Debug)]
pub struct OtlpExporter {
    stop: Arc<Waiter<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpExporter {
    pub fn start(
        runtime: RuntimeHandle,
        health: HealthCounters,
        endpoint: &str,
        interval: Duration,
        service_name: String,
        clock: SharedClock,
    ) -> std::io::Result<Self> {
        let url = format!("{}/v1/metrics", endpoint.trim_end_matches('/'));
        let stop = Waiter::new(false, clock.clone());
        let s = Arc::clone(&stop);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let thread = std::thread::Builder::new().name("nv-otlp".into()).spawn(move || loop {
            {
                let deadline = clock.now() + interval;
                let mut stopped = s.lock();
                s.wait_until(&mut stopped, Some(deadline), |stop| *stop);
                if *stopped {
                    return;
                }
            }
            let body = otlp_request(&runtime.diagnostics(), &health, &service_name).to_string();
            if let Err(e) = agent.post(&url).header("Content-Type", "application/json").send(body.as_bytes()) {
                tracing::warn!(error = %nv_core::security::sanitize_error_string(&e.to_string()), "OTLP export failed");
            }
        })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the exporter (the pending interval is not flushed).
    pub fn stop(mut self) {
        *self.stop.lock() = true;
        self.stop.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("OTLP exporter thread panicked");
            }
        }
    }
}
