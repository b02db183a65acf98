//! Metrics export for NextVision.
//!
//! One metric table ([`METRICS`]) declares every figure: name, kind, unit, help, labels and
//! how it is read from a [`Snapshot`] (runtime diagnostics, health-event counters, process
//! and build figures). Three encodings walk it: the Prometheus text exposition
//! ([`render`]), OTLP/HTTP protobuf ([`otlp_request`], [`OtlpExporter`]) and the API's JSON
//! ([`json`]). Reading is a snapshot of atomics: exporting never blocks perception.

mod health;
pub mod json;
mod otlp;
mod process;
mod prometheus;
mod table;

pub use health::{spawn_health_counter, HealthCounters};
pub use otlp::{otlp_body, otlp_request, OtlpExporter};
pub use process::{BuildInfo, ProcessStats};
pub use prometheus::{render, render_prometheus};
pub use table::{
    collect, Buckets, Family, HealthRows, Kind, MetricDef, Point, Points, Read, Sample, Scope,
    Snapshot, Unit, LATENCY_BUCKETS_SECONDS, METRICS,
};

pub use nv_runtime::RuntimeDiagnostics;
