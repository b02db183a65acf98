//! Metrics export for NextVision.
//!
//! [`render_prometheus`] turns a [`RuntimeDiagnostics`] snapshot plus [`HealthCounters`]
//! into the Prometheus text exposition format (0.0.4): every feed, stage, queue and batch
//! figure, latency histograms, and a counter per health event type. Reading is a snapshot
//! of atomics: scraping never blocks perception.

mod health;
mod otlp;
mod process;
mod prometheus;

pub use health::{spawn_health_counter, HealthCounters};
pub use otlp::{otlp_request, OtlpExporter};
pub use process::{render_build_info, render_process_metrics, BuildInfo, ProcessStats};
pub use prometheus::{render_prometheus, LATENCY_BUCKETS_SECONDS};

pub use nv_runtime::RuntimeDiagnostics;
