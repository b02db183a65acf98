//! JSON objects of the metric table, one per scope, for the HTTP API.
//!
//! Keys are [`MetricDef::json_key`]; a metric with labels of its own becomes nested
//! objects keyed by those labels' values (in the table's order); a histogram becomes
//! `{count, sum_seconds, bucket_bounds_seconds, bucket_counts, p50_micros, p99_micros,
//! max_micros}` with the same buckets as the Prometheus and OTLP exports.

use nv_runtime::{BatchMetrics, FeedDiagnostics, RuntimeDiagnostics, StageDiagnostics};
use serde_json::{json, Map, Value};

use crate::process::{BuildInfo, ProcessStats};
use crate::table::{
    HealthRows, MetricDef, Point, Points, Read, Sample, LATENCY_BUCKETS_SECONDS, METRICS,
};

/// A number as JSON: whole values as integers (counts stay `u64` for clients).
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(&v) {
        json!(v as u64)
    } else {
        json!(v)
    }
}

fn sample(s: &Sample) -> Value {
    match s {
        Sample::Number(v) => number(*v),
        Sample::Histogram(b) => {
            let micros = |secs: f64| json!((secs * 1e6).round() as u64);
            json!({
                "count": b.count,
                "sum_seconds": b.sum_seconds,
                "bucket_bounds_seconds": LATENCY_BUCKETS_SECONDS,
                "bucket_counts": b.counts,
                "p50_micros": micros(b.p50_seconds),
                "p99_micros": micros(b.p99_seconds),
                "max_micros": micros(b.max_seconds),
            })
        }
    }
}

/// The value of one metric: a scalar or histogram, or nested objects by label value.
fn nest(def: &MetricDef, points: &[Point]) -> Value {
    if def.labels.is_empty() {
        return points.first().map_or(Value::Null, |p| sample(&p.value));
    }
    let mut root = Map::new();
    for p in points {
        // The metric's own labels are the last ones (the scope's come first).
        let own = &p.labels[p.labels.len().saturating_sub(def.labels.len())..];
        let mut at = &mut root;
        for (i, (_, v)) in own.iter().enumerate() {
            if i + 1 == own.len() {
                at.insert(v.clone(), sample(&p.value));
            } else {
                let next = at.entry(v.clone()).or_insert_with(|| json!({}));
                at = match next {
                    Value::Object(m) => m,
                    _ => break,
                };
            }
        }
    }
    Value::Object(root)
}

/// The object of every row that `read` accepts (it returns false for other scopes).
fn object(read: impl Fn(&Read, &mut Points) -> bool) -> Value {
    let mut out = Map::new();
    for def in METRICS {
        let mut p = Points::new(Vec::new(), def);
        if !read(&def.read, &mut p) || (p.out.is_empty() && def.labels.is_empty()) {
            continue;
        }
        out.insert(def.json_key().to_owned(), nest(def, &p.out));
    }
    Value::Object(out)
}

/// The object of the rows that `Read::$variant` reads from `$value`.
macro_rules! scope_object {
    ($variant:ident, $value:expr) => {
        object(|r, p| match r {
            Read::$variant(f) => {
                f($value, p);
                true
            }
            _ => false,
        })
    };
}

/// Feed-scoped metrics of one feed.
pub fn feed_metrics(d: &FeedDiagnostics) -> Value {
    scope_object!(Feed, d)
}

/// Stage-scoped metrics of one stage.
pub fn stage_metrics(s: &StageDiagnostics) -> Value {
    scope_object!(Stage, s)
}

/// Batch-scoped metrics of one coordinator.
pub fn batch_metrics(b: &BatchMetrics) -> Value {
    scope_object!(Batch, b)
}

/// Runtime-wide metrics.
pub fn runtime_metrics(d: &RuntimeDiagnostics) -> Value {
    scope_object!(Runtime, d)
}

/// Health-event counters.
pub fn health_metrics(h: &HealthRows) -> Value {
    scope_object!(Health, h)
}

/// Process figures.
pub fn process_metrics(s: &ProcessStats) -> Value {
    scope_object!(Process, s)
}

/// Build information.
pub fn build_metrics(b: &BuildInfo<'_>) -> Value {
    scope_object!(Build, b)
}
