//! OTLP/HTTP export: every metric of the table (histograms included), encoded as protobuf
//! with the official OpenTelemetry message types and pushed to a collector's
//! `/v1/metrics` on an interval by a named thread.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nv_core::clock::SharedClock;
use nv_io::sync::{Ticker, Waiter};
use nv_runtime::RuntimeHandle;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;

use crate::health::HealthCounters;
use crate::process::BuildInfo;
use crate::table::{collect, Kind, Point, Sample, Snapshot, LATENCY_BUCKETS_SECONDS};

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
    }
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One `ExportMetricsServiceRequest` for a snapshot. Counters and histograms are
/// cumulative since the runtime started (`start_time_unix_nano`).
pub fn otlp_request(snap: &Snapshot<'_>, service_name: &str) -> ExportMetricsServiceRequest {
    let now = SystemTime::now();
    let time = unix_nanos(now);
    let start = unix_nanos(now.checked_sub(snap.runtime.uptime).unwrap_or(UNIX_EPOCH));
    let attributes = |p: &Point| p.labels.iter().map(|(k, v)| attr(k, v)).collect::<Vec<_>>();
    let number = |p: &Point| {
        let value = match &p.value {
            Sample::Number(v) => *v,
            Sample::Histogram(b) => b.count as f64,
        };
        NumberDataPoint {
            attributes: attributes(p),
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: Some(number_data_point::Value::AsDouble(value)),
            ..Default::default()
        }
    };
    let cumulative = AggregationTemporality::Cumulative as i32;
    let metrics = collect(snap)
        .into_iter()
        .filter(|f| !f.points.is_empty())
        .map(|f| {
            let data = match f.def.kind {
                Kind::Counter => metric::Data::Sum(Sum {
                    data_points: f.points.iter().map(number).collect(),
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                }),
                Kind::Gauge => metric::Data::Gauge(Gauge {
                    data_points: f.points.iter().map(number).collect(),
                }),
                Kind::Histogram => metric::Data::Histogram(Histogram {
                    data_points: f
                        .points
                        .iter()
                        .filter_map(|p| match &p.value {
                            Sample::Histogram(b) => Some(HistogramDataPoint {
                                attributes: attributes(p),
                                start_time_unix_nano: start,
                                time_unix_nano: time,
                                count: b.count,
                                sum: Some(b.sum_seconds),
                                bucket_counts: b.counts.to_vec(),
                                explicit_bounds: LATENCY_BUCKETS_SECONDS.to_vec(),
                                max: Some(b.max_seconds),
                                ..Default::default()
                            }),
                            Sample::Number(_) => None,
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                }),
            };
            Metric {
                name: f.def.otlp_name(),
                description: f.def.help.to_owned(),
                unit: f.def.unit.ucum().to_owned(),
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![attr("service.name", service_name)],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "nextvision".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The protobuf body of [`otlp_request`].
pub fn otlp_body(snap: &Snapshot<'_>, service_name: &str) -> Vec<u8> {
    otlp_request(snap, service_name).encode_to_vec()
}

/// Pushes metrics to `endpoint` (e.g. `http://127.0.0.1:4318`) every `interval`.
#[derive(Debug)]
pub struct OtlpExporter {
    stop: Arc<Waiter<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpExporter {
    /// With `build`, each export also carries `nv_build_info` and the process figures.
    pub fn start(
        runtime: RuntimeHandle,
        health: HealthCounters,
        endpoint: &str,
        interval: Duration,
        service_name: String,
        build: Option<BuildInfo<'static>>,
        clock: SharedClock,
    ) -> std::io::Result<Self> {
        let url = format!("{}/v1/metrics", endpoint.trim_end_matches('/'));
        let stop = Waiter::new(false, clock.clone());
        let s = Arc::clone(&stop);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut ticker = Ticker::new(&clock, interval);
        let thread = std::thread::Builder::new().name("nv-otlp".into()).spawn(move || loop {
            if ticker.wait(&s).is_none() {
                return;
            }
            let diag = runtime.diagnostics();
            let mut snap = Snapshot::new(&diag, &health);
            if let Some(b) = build {
                snap = snap.with_process(b);
            }
            let body = otlp_body(&snap, &service_name);
            if let Err(e) = agent.post(&url).header("Content-Type", "application/x-protobuf").send(&body[..]) {
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
